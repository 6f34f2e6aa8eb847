//! Destinations at rest on PostgreSQL (as `otpd-store-sqlite`'s `protect`): the check that the
//! configured server secret opens this database, and the sealing, at connect, of rows an
//! earlier release wrote in clear (listed in `unsealed` by migration 11), in batches that each
//! commit. Both run under the migration lock, so one node seals while the others wait.

use otpd_core::StoreError;
use otpd_core::vault::Vault;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::db_error;

/// Rows sealed per transaction.
const BATCH: i64 = 500;

/// Refuses a server secret that gives none of the keys this database was written with, and
/// records the vault's keys otherwise.
pub(crate) async fn check_keys(
    connection: &mut PgConnection,
    vault: &Vault,
    now: i64,
) -> Result<(), StoreError> {
    let known: Vec<i64> = sqlx::query_scalar("SELECT id FROM data_keys")
        .fetch_all(&mut *connection)
        .await
        .map_err(db_error)?;
    if let Some(why) = vault.refusal(&known) {
        return Err(StoreError::WrongKey(why));
    }
    for key in vault.key_ids() {
        sqlx::query("INSERT INTO data_keys (id, added_at) VALUES ($1, $2) ON CONFLICT DO NOTHING")
            .bind(i64::from(key.0))
            .bind(now)
            .execute(&mut *connection)
            .await
            .map_err(db_error)?;
    }
    Ok(())
}

/// Seals every row listed in `unsealed`, a batch per transaction, logging progress.
pub(crate) async fn seal_listed_rows(
    connection: &mut PgConnection,
    vault: &Vault,
) -> Result<(), StoreError> {
    let total: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM unsealed")
        .fetch_one(&mut *connection)
        .await
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
        let mut tx = sqlx::Connection::begin(&mut *connection)
            .await
            .map_err(db_error)?;
        let batch: Vec<(String, Uuid)> = sqlx::query_as("SELECT kind, id FROM unsealed LIMIT $1")
            .bind(BATCH)
            .fetch_all(&mut *tx)
            .await
            .map_err(db_error)?;
        if batch.is_empty() {
            break;
        }
        for (kind, id) in &batch {
            match kind.as_str() {
                "verification" => {
                    let clear: Option<String> = sqlx::query_scalar(
                        "SELECT to_index FROM verifications WHERE id = $1 AND to_sealed IS NULL",
                    )
                    .bind(id)
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(db_error)?;
                    if let Some(to) = clear {
                        sqlx::query(
                            "UPDATE verifications SET to_index = $1, to_sealed = $2, \
                             to_prefix = $3 WHERE id = $4",
                        )
                        .bind(vault.blind(&to).to_hex())
                        .bind(vault.seal(&to))
                        .bind(otpd_core::vault::clear_prefix(&to))
                        .bind(id)
                        .execute(&mut *tx)
                        .await
                        .map_err(db_error)?;
                    }
                }
                "event" => {
                    let data: Option<String> =
                        sqlx::query_scalar("SELECT data FROM events WHERE id = $1")
                            .bind(id)
                            .fetch_optional(&mut *tx)
                            .await
                            .map_err(db_error)?;
                    if let Some(data) = data {
                        let mut value: serde_json::Value = serde_json::from_str(&data)
                            .map_err(|_| StoreError::Corrupt("event data".into()))?;
                        otpd_core::events::seal_destination(&mut value, vault);
                        sqlx::query("UPDATE events SET data = $1 WHERE id = $2")
                            .bind(value.to_string())
                            .bind(id)
                            .execute(&mut *tx)
                            .await
                            .map_err(db_error)?;
                    }
                }
                "safe_number" => {
                    let clear: Option<String> =
                        sqlx::query_scalar("SELECT phone_index FROM safe_numbers WHERE id = $1")
                            .bind(id)
                            .fetch_optional(&mut *tx)
                            .await
                            .map_err(db_error)?;
                    if let Some(phone) = clear.filter(|p| p.starts_with('+')) {
                        sqlx::query(
                            "UPDATE safe_numbers SET phone_index = $1, phone_sealed = $2 \
                             WHERE id = $3",
                        )
                        .bind(vault.blind(&phone).to_hex())
                        .bind(vault.seal(&phone))
                        .bind(id)
                        .execute(&mut *tx)
                        .await
                        .map_err(db_error)?;
                    }
                }
                _ => {}
            }
            sqlx::query("DELETE FROM unsealed WHERE kind = $1 AND id = $2")
                .bind(kind)
                .bind(id)
                .execute(&mut *tx)
                .await
                .map_err(db_error)?;
        }
        tx.commit().await.map_err(db_error)?;
        done += batch.len() as i64;
        tracing::info!(sealed = done, of = total, "sealing destinations");
    }
    Ok(())
}
