//! `otpd audit list` and `otpd audit verify`: the audit log for the operator.

use anyhow::{Context, bail};
use otpd_core::AuditStore;
use otpd_core::audit::{AuditFilter, ChainCheck};

use crate::{AuditCommand, load};

/// Entries read per query while checking the chain.
const VERIFY_PAGE: u32 = 1000;

pub(crate) async fn audit(command: AuditCommand) -> anyhow::Result<()> {
    match command {
        AuditCommand::List {
            common,
            account,
            action,
            limit,
            json,
        } => {
            let config = load(&common, None)?;
            let account = account
                .as_deref()
                .map(|sid| {
                    sid.strip_prefix("AC")
                        .filter(|hex| hex.len() == 32)
                        .and_then(|hex| uuid::Uuid::try_parse(hex).ok())
                        .map(otpd_core::AccountId::from_uuid)
                        .context("--account: expected AC followed by 32 hex digits")
                })
                .transpose()?;
            if limit == 0 {
                bail!("--limit must be at least 1");
            }
            let store = otpd::open_store(&config).await?;
            let filter = AuditFilter {
                account,
                action,
                limit,
                ..Default::default()
            };
            let entries = store.audit(&filter).await?;
            if json {
                let items: Vec<serde_json::Value> = entries
                    .iter()
                    .map(otpd_http::admin::audit::entry_json)
                    .collect();
                println!("{}", serde_json::Value::Array(items));
            } else if entries.is_empty() {
                println!("no audit entry");
            } else {
                for e in &entries {
                    println!(
                        "{:>6}  {}  {}:{}  {}  {}  {}  {}",
                        e.seq,
                        otpd_http::rfc3339(e.at),
                        e.actor.kind(),
                        e.actor.id(),
                        e.source.as_deref().unwrap_or("-"),
                        e.action,
                        e.target,
                        e.summary
                    );
                }
            }
            Ok(())
        }
        AuditCommand::Verify { common } => {
            let config = load(&common, None)?;
            let store = otpd::open_store(&config).await?;
            let mut check = ChainCheck::default();
            loop {
                let page = store.audit_chain(check.last_seq(), VERIFY_PAGE).await?;
                if page.is_empty() {
                    break;
                }
                for entry in &page {
                    if let Err(broken) = check.next(entry) {
                        bail!(
                            "audit chain broken at entry {} (position {}): {}",
                            broken.id,
                            broken.position,
                            broken.reason
                        );
                    }
                }
            }
            println!("audit chain intact: {} entries", check.checked());
            Ok(())
        }
    }
}
