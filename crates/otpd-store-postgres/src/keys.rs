//! Key rotation on PostgreSQL: what is sealed under a previous key is resealed and re-indexed
//! under the current one, a batch per transaction.

use otpd_core::StoreError;
use otpd_core::store::KeyStore;
use otpd_core::vault::Vault;
use uuid::Uuid;

use crate::{PgStore, db_error};

/// The current key id as `to_sealed` bytes 2–5 hold it, and the `LIKE` pattern of event
/// details sealed under it.
fn current(vault: &Vault) -> (Vec<u8>, String) {
    (
        vault.current().0.to_be_bytes().to_vec(),
        format!(
            "%\"toSealed\":\"{}%",
            otpd_core::events::sealed_text_prefix(vault)
        ),
    )
}

impl KeyStore for PgStore {
    async fn reseal(&self, limit: u32) -> Result<u64, StoreError> {
        let vault = &self.vault;
        let (id, pattern) = current(vault);
        let limit = i64::from(limit);
        let mut moved = 0u64;
        let mut tx = self.pool.begin().await.map_err(db_error)?;
        let stale: Vec<(Uuid, Vec<u8>)> = sqlx::query_as(
            "SELECT id, to_sealed FROM verifications \
             WHERE substring(to_sealed from 2 for 4) <> $1 LIMIT $2 FOR UPDATE SKIP LOCKED",
        )
        .bind(&id)
        .bind(limit)
        .fetch_all(&mut *tx)
        .await
        .map_err(db_error)?;
        for (row, sealed) in stale {
            let to = vault.open(&sealed)?;
            sqlx::query("UPDATE verifications SET to_sealed = $1, to_index = $2 WHERE id = $3")
                .bind(vault.seal(&to))
                .bind(vault.blind(&to).to_hex())
                .bind(row)
                .execute(&mut *tx)
                .await
                .map_err(db_error)?;
            moved += 1;
        }
        let stale: Vec<(Uuid, Vec<u8>)> = sqlx::query_as(
            "SELECT id, phone_sealed FROM safe_numbers WHERE phone_sealed IS NOT NULL \
             AND substring(phone_sealed from 2 for 4) <> $1 LIMIT $2 FOR UPDATE SKIP LOCKED",
        )
        .bind(&id)
        .bind(limit)
        .fetch_all(&mut *tx)
        .await
        .map_err(db_error)?;
        for (row, sealed) in stale {
            let phone = vault.open(&sealed)?;
            sqlx::query(
                "UPDATE safe_numbers SET phone_sealed = $1, phone_index = $2 WHERE id = $3",
            )
            .bind(vault.seal(&phone))
            .bind(vault.blind(&phone).to_hex())
            .bind(row)
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
            moved += 1;
        }
        let stale: Vec<(Uuid, String)> = sqlx::query_as(
            "SELECT id, data FROM events WHERE data LIKE '%\"toSealed\":\"%' \
             AND data NOT LIKE $1 LIMIT $2 FOR UPDATE SKIP LOCKED",
        )
        .bind(&pattern)
        .bind(limit)
        .fetch_all(&mut *tx)
        .await
        .map_err(db_error)?;
        for (row, data) in stale {
            let mut value: serde_json::Value = serde_json::from_str(&data)
                .map_err(|_| StoreError::Corrupt("event data".into()))?;
            otpd_core::events::reveal_destination(&mut value, vault);
            otpd_core::events::seal_destination(&mut value, vault);
            sqlx::query("UPDATE events SET data = $1 WHERE id = $2")
                .bind(value.to_string())
                .bind(row)
                .execute(&mut *tx)
                .await
                .map_err(db_error)?;
            moved += 1;
        }
        // Operators' second-factor seeds: few rows, sealed as base64 text, checked in Rust.
        let seeds: Vec<(Uuid, String)> = sqlx::query_as(
            "SELECT id, totp_sealed FROM operators WHERE totp_sealed IS NOT NULL \
             FOR UPDATE SKIP LOCKED",
        )
        .fetch_all(&mut *tx)
        .await
        .map_err(db_error)?;
        for (row, sealed) in seeds {
            if moved >= limit as u64 {
                break;
            }
            if let Some(resealed) = otpd_core::operators::reseal_totp(vault, &sealed)? {
                sqlx::query("UPDATE operators SET totp_sealed = $1 WHERE id = $2")
                    .bind(resealed)
                    .bind(row)
                    .execute(&mut *tx)
                    .await
                    .map_err(db_error)?;
                moved += 1;
            }
        }
        tx.commit().await.map_err(db_error)?;
        Ok(moved)
    }

    async fn sealed_under_other_keys(&self) -> Result<u64, StoreError> {
        let (id, pattern) = current(&self.vault);
        let count: i64 = sqlx::query_scalar(
            "SELECT (SELECT COUNT(*) FROM verifications \
                     WHERE substring(to_sealed from 2 for 4) <> $1) \
             + (SELECT COUNT(*) FROM safe_numbers WHERE phone_sealed IS NOT NULL \
                AND substring(phone_sealed from 2 for 4) <> $1) \
             + (SELECT COUNT(*) FROM events WHERE data LIKE '%\"toSealed\":\"%' \
                AND data NOT LIKE $2)",
        )
        .bind(&id)
        .bind(&pattern)
        .fetch_one(&self.pool)
        .await
        .map_err(db_error)?;
        let seeds: Vec<String> =
            sqlx::query_scalar("SELECT totp_sealed FROM operators WHERE totp_sealed IS NOT NULL")
                .fetch_all(&self.pool)
                .await
                .map_err(db_error)?;
        let mut stale = 0u64;
        for sealed in seeds {
            if otpd_core::operators::reseal_totp(&self.vault, &sealed)?.is_some() {
                stale += 1;
            }
        }
        Ok(count.max(0) as u64 + stale)
    }
}
