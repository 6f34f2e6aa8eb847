//! Key rotation on SQLite: what is sealed under a previous key is resealed and re-indexed
//! under the current one, a batch per writer job.

use otpd_core::StoreError;
use otpd_core::store::KeyStore;
use otpd_core::vault::Vault;
use rusqlite::{Connection, params};

use crate::{SqliteStore, db_error, query_all, rows};

/// `to_sealed`/`phone_sealed` bytes 2–5 hold the key id; events are found by the base64
/// prefix of their `toSealed`.
struct Current {
    id: Vec<u8>,
    event_pattern: String,
}

fn current(vault: &Vault) -> Current {
    Current {
        id: vault.current().0.to_be_bytes().to_vec(),
        event_pattern: format!(
            "%\"toSealed\":\"{}%",
            otpd_core::events::sealed_text_prefix(vault)
        ),
    }
}

fn reseal_batch(connection: &Connection, vault: &Vault, limit: u32) -> Result<u64, StoreError> {
    let now = current(vault);
    let mut moved = 0u64;
    let stale: Vec<(Vec<u8>, Vec<u8>)> = query_all(
        connection,
        "SELECT id, to_sealed FROM verifications WHERE substr(to_sealed, 2, 4) <> ?1 LIMIT ?2",
        params![now.id, limit],
        |row| Ok((rows::get(row, 0)?, rows::get(row, 1)?)),
    )?;
    for (id, sealed) in stale {
        let to = vault.open(&sealed)?;
        connection
            .execute(
                "UPDATE verifications SET to_sealed = ?1, to_index = ?2 WHERE id = ?3",
                params![vault.seal(&to), vault.blind(&to).to_hex(), id],
            )
            .map_err(db_error)?;
        moved += 1;
    }
    let stale: Vec<(Vec<u8>, Vec<u8>)> = query_all(
        connection,
        "SELECT id, phone_sealed FROM safe_numbers \
         WHERE phone_sealed IS NOT NULL AND substr(phone_sealed, 2, 4) <> ?1 LIMIT ?2",
        params![now.id, limit],
        |row| Ok((rows::get(row, 0)?, rows::get(row, 1)?)),
    )?;
    for (id, sealed) in stale {
        let phone = vault.open(&sealed)?;
        connection
            .execute(
                "UPDATE OR REPLACE safe_numbers SET phone_sealed = ?1, phone_index = ?2 \
                 WHERE id = ?3",
                params![vault.seal(&phone), vault.blind(&phone).to_hex(), id],
            )
            .map_err(db_error)?;
        moved += 1;
    }
    let stale: Vec<(Vec<u8>, String)> = query_all(
        connection,
        "SELECT id, data FROM events WHERE data LIKE '%\"toSealed\":\"%' AND data NOT LIKE ?1 \
         LIMIT ?2",
        params![now.event_pattern, limit],
        |row| Ok((rows::get(row, 0)?, rows::get(row, 1)?)),
    )?;
    for (id, data) in stale {
        let mut value: serde_json::Value =
            serde_json::from_str(&data).map_err(|_| StoreError::Corrupt("event data".into()))?;
        otpd_core::events::reveal_destination(&mut value, vault);
        otpd_core::events::seal_destination(&mut value, vault);
        connection
            .execute(
                "UPDATE events SET data = ?1 WHERE id = ?2",
                params![value.to_string(), id],
            )
            .map_err(db_error)?;
        moved += 1;
    }
    // Operators' second-factor seeds: few rows, sealed as base64 text, checked in Rust.
    let seeds: Vec<(Vec<u8>, String)> = query_all(
        connection,
        "SELECT id, totp_sealed FROM operators WHERE totp_sealed IS NOT NULL",
        [],
        |row| Ok((rows::get(row, 0)?, rows::get(row, 1)?)),
    )?;
    for (id, sealed) in seeds {
        if moved >= u64::from(limit) {
            break;
        }
        if let Some(resealed) = otpd_core::operators::reseal_totp(vault, &sealed)? {
            connection
                .execute(
                    "UPDATE operators SET totp_sealed = ?1 WHERE id = ?2",
                    params![resealed, id],
                )
                .map_err(db_error)?;
            moved += 1;
        }
    }
    Ok(moved)
}

/// Operators' second-factor seeds sealed under another key than the current one.
fn stale_seeds(connection: &Connection, vault: &Vault) -> Result<u64, StoreError> {
    let seeds: Vec<String> = query_all(
        connection,
        "SELECT totp_sealed FROM operators WHERE totp_sealed IS NOT NULL",
        [],
        |row| rows::get(row, 0),
    )?;
    let mut stale = 0;
    for sealed in seeds {
        if otpd_core::operators::reseal_totp(vault, &sealed)?.is_some() {
            stale += 1;
        }
    }
    Ok(stale)
}

impl KeyStore for SqliteStore {
    async fn reseal(&self, limit: u32) -> Result<u64, StoreError> {
        let vault = self.vault();
        self.write(move |connection| reseal_batch(connection, &vault, limit))
            .await
    }

    async fn sealed_under_other_keys(&self) -> Result<u64, StoreError> {
        let vault = self.vault();
        let now = current(&vault);
        self.read(move |connection| {
            let seeds = stale_seeds(connection, &vault)?;
            connection
                .query_row(
                    "SELECT (SELECT COUNT(*) FROM verifications WHERE substr(to_sealed, 2, 4) <> ?1) \
                     + (SELECT COUNT(*) FROM safe_numbers \
                        WHERE phone_sealed IS NOT NULL AND substr(phone_sealed, 2, 4) <> ?1) \
                     + (SELECT COUNT(*) FROM events \
                        WHERE data LIKE '%\"toSealed\":\"%' AND data NOT LIKE ?2)",
                    params![now.id, now.event_pattern],
                    |row| row.get::<_, i64>(0),
                )
                .map(|n| n.max(0) as u64 + seeds)
                .map_err(db_error)
        })
        .await
    }
}
