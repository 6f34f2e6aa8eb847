//! `otpd keys rotate` and `otpd keys status`: the server key for the operator.

use anyhow::{Context, bail};
use otpd_core::ServerSecret;
use otpd_core::store::KeyStore;
use otpd_core::vault::Vault;

use crate::{KeysCommand, load};

pub(crate) async fn keys(command: KeysCommand) -> anyhow::Result<()> {
    match command {
        KeysCommand::Rotate { common } => {
            let config = load(&common, None)?;
            if config.server_secret.is_some() {
                bail!(
                    "the server secret is set in the configuration: rotate it there (the new \
                     secret in server_secret, the old one first in previous_server_secrets; \
                     docs/data-protection.md, \"Key rotation\")"
                );
            }
            let (current, previous) = config.server_secrets()?;
            let fresh = ServerSecret::generate();
            let mut lines = vec![fresh.to_hex(), current.to_hex()];
            lines.extend(previous.iter().map(ServerSecret::to_hex));
            replace_private(&config.secret_file, &lines.join("\n"))?;
            let new_id = Vault::new(&fresh, &[]).current();
            let old_id = Vault::new(&current, &[]).current();
            println!(
                "new server key {new_id} (previous {old_id} kept) in {}",
                config.secret_file.display()
            );
            println!(
                "restart otpd: new values use {new_id}, and a background job reseals the old ones"
            );
            Ok(())
        }
        KeysCommand::Status { common } => {
            let config = load(&common, None)?;
            let (current, previous) = config.server_secrets()?;
            let vault = Vault::new(&current, &previous);
            let ids: Vec<String> = vault.key_ids().iter().map(ToString::to_string).collect();
            let store = otpd::open_store(&config).await?;
            let left = store.sealed_under_other_keys().await?;
            println!("current key: {}", ids[0]);
            println!(
                "previous keys: {}",
                if ids.len() > 1 {
                    ids[1..].join(", ")
                } else {
                    "none".into()
                }
            );
            println!("values still sealed under a previous key: {left}");
            if ids.len() > 1 && left == 0 {
                println!(
                    "the previous keys can be removed (docs/data-protection.md, \"Key rotation\")"
                );
            }
            Ok(())
        }
    }
}

/// Replaces the key file with `text`, readable by its owner only, through a new file renamed
/// over it (a crash leaves either the old or the new file, never half of one).
fn replace_private(path: &std::path::Path, text: &str) -> anyhow::Result<()> {
    let staged = path.with_extension("new");
    let _ = std::fs::remove_file(&staged);
    otpd::config::write_private(&staged, text)
        .with_context(|| format!("cannot write {}", staged.display()))?;
    std::fs::rename(&staged, path).with_context(|| format!("cannot replace {}", path.display()))
}
