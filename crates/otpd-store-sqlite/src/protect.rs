//! Destinations at rest: the check that the configured server secret opens this database, and
//! the sealing, at open, of rows an earlier release wrote in clear (listed in `unsealed` by
//! migration 13), in batches that each commit, so an interrupted start resumes where it
//! stopped.

use otpd_core::StoreError;
use otpd_core::vault::Vault;
use rusqlite::{Connection, OptionalExtension, params};

use crate::db_error;

/// Rows sealed per transaction: small enough that a batch takes milliseconds.
const BATCH: i64 = 500;

/// Refuses a server secret that gives none of the keys this database was written with, and
/// records the vault's keys otherwise.
pub(crate) fn check_keys(
    connection: &Connection,
    vault: &Vault,
    now: i64,
) -> Result<(), StoreError> {
    let known: Vec<i64> = connection
        .prepare("SELECT id FROM data_keys")
        .and_then(|mut statement| {
            statement
                .query_map([], |row| row.get(0))?
                .collect::<rusqlite::Result<_>>()
        })
        .map_err(db_error)?;
    if let Some(why) = vault.refusal(&known) {
        return Err(StoreError::WrongKey(why));
    }
    for key in vault.key_ids() {
        connection
            .execute(
                "INSERT OR IGNORE INTO data_keys (id, added_at) VALUES (?1, ?2)",
                params![i64::from(key.0), now],
            )
            .map_err(db_error)?;
    }
    Ok(())
}

/// Seals every row listed in `unsealed`, a batch per transaction, logging progress.
pub(crate) fn seal_listed_rows(
    connection: &mut Connection,
    vault: &Vault,
) -> Result<(), StoreError> {
    let total: i64 = connection
        .query_row("SELECT COUNT(*) FROM unsealed", [], |row| row.get(0))
        .map_err(db_error)?;
    if total == 0 {
        return Ok(());
    }
    tracing::info!(
        rows = total,
        "sealing destinations an earlier release stored in clear"
    );

    let mut done = 0;
    loop {
        let transaction = connection.transaction().map_err(db_error)?;
        let batch: Vec<(String, Vec<u8>)> = transaction
            .prepare("SELECT kind, id FROM unsealed LIMIT ?1")
            .and_then(|mut statement| {
                statement
                    .query_map([BATCH], |row| Ok((row.get(0)?, row.get(1)?)))?
                    .collect::<rusqlite::Result<_>>()
            })
            .map_err(db_error)?;
        if batch.is_empty() {
            break;
        }
        for (kind, id) in &batch {
            match kind.as_str() {
                "verification" => seal_verification(&transaction, vault, id)?,
                "event" => seal_event(&transaction, vault, id)?,
                "safe_number" => seal_safe_number(&transaction, vault, id)?,
                _ => {}
            }
            transaction
                .execute(
                    "DELETE FROM unsealed WHERE kind = ?1 AND id = ?2",
                    params![kind, id],
                )
                .map_err(db_error)?;
        }
        transaction.commit().map_err(db_error)?;
        done += batch.len() as i64;
        tracing::info!(sealed = done, of = total, "sealing destinations");
    }
    // Freed pages and the WAL still hold the values as they were: rebuild the file (once, at
    // the upgrade) and empty the WAL.
    tracing::info!("rewriting the database file without the clear copies");
    connection.execute_batch("VACUUM").map_err(db_error)?;
    connection
        .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
        .map_err(db_error)?;
    Ok(())
}

fn seal_verification(connection: &Connection, vault: &Vault, id: &[u8]) -> Result<(), StoreError> {
    let clear: Option<String> = connection
        .query_row(
            "SELECT to_index FROM verifications WHERE id = ?1 AND to_sealed IS NULL",
            [id],
            |row| row.get(0),
        )
        .optional()
        .map_err(db_error)?;
    if let Some(to) = clear {
        connection
            .execute(
                "UPDATE verifications SET to_index = ?1, to_sealed = ?2, to_prefix = ?3 WHERE id = ?4",
                params![vault.blind(&to).to_hex(), vault.seal(&to), otpd_core::vault::clear_prefix(&to), id],
            )
            .map_err(db_error)?;
    }
    Ok(())
}

fn seal_event(connection: &Connection, vault: &Vault, id: &[u8]) -> Result<(), StoreError> {
    let data: Option<String> = connection
        .query_row("SELECT data FROM events WHERE id = ?1", [id], |row| {
            row.get(0)
        })
        .optional()
        .map_err(db_error)?;
    let Some(data) = data else { return Ok(()) };
    let mut value: serde_json::Value =
        serde_json::from_str(&data).map_err(|_| StoreError::Corrupt("event data".into()))?;
    otpd_core::events::seal_destination(&mut value, vault);
    connection
        .execute(
            "UPDATE events SET data = ?1 WHERE id = ?2",
            params![value.to_string(), id],
        )
        .map_err(db_error)?;
    Ok(())
}

fn seal_safe_number(connection: &Connection, vault: &Vault, id: &[u8]) -> Result<(), StoreError> {
    let clear: Option<String> = connection
        .query_row(
            "SELECT phone_index FROM safe_numbers WHERE id = ?1",
            [id],
            |row| row.get(0),
        )
        .optional()
        .map_err(db_error)?;
    if let Some(phone) = clear.filter(|p| p.starts_with('+')) {
        connection
            .execute(
                "UPDATE safe_numbers SET phone_index = ?1, phone_sealed = ?2 WHERE id = ?3",
                params![vault.blind(&phone).to_hex(), vault.seal(&phone), id],
            )
            .map_err(db_error)?;
    }
    Ok(())
}
