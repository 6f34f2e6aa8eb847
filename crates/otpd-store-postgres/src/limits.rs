//! The abuse counters on PostgreSQL: rate events, quarantines, capped spends and the safe
//! list.

use otpd_core::store::{LimitStore, Quarantine, RateCount, SafeNumber, Spend};
use otpd_core::{AccountId, ServiceId, StoreError, Timestamp};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::{PgStore, QuarantineRow, add_spend, db_error};

impl LimitStore for PgStore {
    async fn rate_hit(
        &self,
        key: &str,
        window_ms: i64,
        limit: u32,
        now: Timestamp,
    ) -> Result<RateCount, StoreError> {
        let mut tx = self.pool.begin().await.map_err(db_error)?;
        // One counter at a time per key, on every node.
        sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1, 7))")
            .bind(key)
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
        sqlx::query("DELETE FROM rate_events WHERE key = $1 AND at <= $2")
            .bind(key)
            .bind(now.0 - window_ms)
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
        let (count, oldest) = rate_window(&mut tx, key, now.0 - window_ms).await?;
        if count >= limit {
            tx.commit().await.map_err(db_error)?;
            return Ok(RateCount {
                allowed: false,
                count,
                frees_at: oldest.map(|at| Timestamp(at + window_ms)),
            });
        }
        sqlx::query("INSERT INTO rate_events (key, at) VALUES ($1, $2)")
            .bind(key)
            .bind(now.0)
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
        tx.commit().await.map_err(db_error)?;
        Ok(RateCount {
            allowed: true,
            count: count + 1,
            frees_at: Some(Timestamp(oldest.unwrap_or(now.0) + window_ms)),
        })
    }

    async fn rate_count(
        &self,
        key: &str,
        window_ms: i64,
        now: Timestamp,
    ) -> Result<RateCount, StoreError> {
        let mut connection = self.pool.acquire().await.map_err(db_error)?;
        let (count, oldest) = rate_window(&mut connection, key, now.0 - window_ms).await?;
        Ok(RateCount {
            allowed: true,
            count,
            frees_at: oldest.map(|at| Timestamp(at + window_ms)),
        })
    }

    async fn quarantine(&self, quarantine: &Quarantine) -> Result<bool, StoreError> {
        let result = sqlx::query(
            "INSERT INTO quarantines (prefix, service_id, reason, until, created_at) \
             VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (prefix, service_id) DO UPDATE SET reason = excluded.reason, \
             until = excluded.until, created_at = excluded.created_at \
             WHERE quarantines.until <= excluded.created_at",
        )
        .bind(&quarantine.prefix)
        .bind(quarantine.service.map_or(uuid::Uuid::nil(), |id| id.uuid()))
        .bind(&quarantine.reason)
        .bind(quarantine.until.0)
        .bind(quarantine.created_at.0)
        .execute(&self.pool)
        .await
        .map_err(db_error)?;
        Ok(result.rows_affected() >= 1)
    }

    async fn active_quarantine(
        &self,
        prefix: &str,
        service: ServiceId,
        now: Timestamp,
    ) -> Result<Option<Quarantine>, StoreError> {
        let row: Option<QuarantineRow> = sqlx::query_as(
            "SELECT prefix, reason, until, created_at, service_id FROM quarantines \
             WHERE prefix = $1 AND service_id IN ($2, $3) AND until > $4 \
             ORDER BY service_id LIMIT 1",
        )
        .bind(prefix)
        .bind(uuid::Uuid::nil())
        .bind(service.uuid())
        .bind(now.0)
        .fetch_optional(&self.pool)
        .await
        .map_err(db_error)?;
        Ok(row.map(quarantine_of))
    }

    async fn quarantines(&self, now: Timestamp) -> Result<Vec<Quarantine>, StoreError> {
        let rows: Vec<QuarantineRow> = sqlx::query_as(
            "SELECT prefix, reason, until, created_at, service_id FROM quarantines \
             WHERE until > $1 ORDER BY created_at DESC, prefix, service_id",
        )
        .bind(now.0)
        .fetch_all(&self.pool)
        .await
        .map_err(db_error)?;
        Ok(rows.into_iter().map(quarantine_of).collect())
    }

    async fn lift_quarantine(
        &self,
        prefix: &str,
        service: Option<ServiceId>,
    ) -> Result<bool, StoreError> {
        let result = sqlx::query("DELETE FROM quarantines WHERE prefix = $1 AND service_id = $2")
            .bind(prefix)
            .bind(service.map_or(uuid::Uuid::nil(), |id| id.uuid()))
            .execute(&self.pool)
            .await
            .map_err(db_error)?;
        Ok(result.rows_affected() == 1)
    }

    async fn add_spend(&self, key: &str, amount: f64, cap: f64) -> Result<Option<f64>, StoreError> {
        let spend = Spend {
            key: key.to_string(),
            amount,
            cap,
        };
        let mut connection = self.pool.acquire().await.map_err(db_error)?;
        add_spend(&mut connection, &spend).await
    }

    async fn add_safe_number(
        &self,
        account: AccountId,
        entry: &SafeNumber,
    ) -> Result<SafeNumber, StoreError> {
        sqlx::query(
            "INSERT INTO safe_numbers (account_id, phone_index, id, created_at, phone_sealed) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (account_id, phone_index) DO NOTHING",
        )
        .bind(account.uuid())
        .bind(self.vault.blind(&entry.phone).to_hex())
        .bind(entry.id)
        .bind(entry.created_at.0)
        .bind(self.vault.seal(&entry.phone))
        .execute(&self.pool)
        .await
        .map_err(db_error)?;
        self.safe_number(account, &entry.phone)
            .await?
            .ok_or_else(|| StoreError::Database("safe number vanished".into()))
    }

    /// The table keeps the number's blind index only, so the number is the one looked up.
    async fn safe_number(
        &self,
        account: AccountId,
        phone: &str,
    ) -> Result<Option<SafeNumber>, StoreError> {
        let row: Option<(Uuid, i64)> = sqlx::query_as(
            "SELECT id, created_at FROM safe_numbers \
             WHERE account_id = $1 AND phone_index = ANY($2) LIMIT 1",
        )
        .bind(account.uuid())
        .bind(blind_hexes(&self.vault, phone))
        .fetch_optional(&self.pool)
        .await
        .map_err(db_error)?;
        Ok(row.map(|(id, created_at)| SafeNumber {
            id,
            phone: phone.to_string(),
            created_at: Timestamp(created_at),
        }))
    }

    async fn has_safe_numbers(&self, account: AccountId) -> Result<bool, StoreError> {
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM safe_numbers WHERE account_id = $1)")
            .bind(account.uuid())
            .fetch_one(&self.pool)
            .await
            .map_err(db_error)
    }

    async fn remove_safe_number(
        &self,
        account: AccountId,
        phone: &str,
    ) -> Result<bool, StoreError> {
        let result =
            sqlx::query("DELETE FROM safe_numbers WHERE account_id = $1 AND phone_index = ANY($2)")
                .bind(account.uuid())
                .bind(blind_hexes(&self.vault, phone))
                .execute(&self.pool)
                .await
                .map_err(db_error)?;
        Ok(result.rows_affected() == 1)
    }
}

fn quarantine_of((prefix, reason, until, created_at, service): QuarantineRow) -> Quarantine {
    Quarantine {
        prefix,
        service: (!service.is_nil()).then(|| ServiceId::from_uuid(service)),
        reason,
        until: Timestamp(until),
        created_at: Timestamp(created_at),
    }
}

/// Events of `key` after `since`, and the oldest of them.
async fn rate_window(
    connection: &mut PgConnection,
    key: &str,
    since: i64,
) -> Result<(u32, Option<i64>), StoreError> {
    let (count, oldest): (i64, Option<i64>) =
        sqlx::query_as("SELECT COUNT(*), MIN(at) FROM rate_events WHERE key = $1 AND at > $2")
            .bind(key)
            .bind(since)
            .fetch_one(&mut *connection)
            .await
            .map_err(db_error)?;
    Ok((count.clamp(0, u32::MAX as i64) as u32, oldest))
}

/// The blind indexes of `value` under every key of `vault` (a key rotation in progress leaves
/// rows under the previous ones until they are resealed).
pub(crate) fn blind_hexes(vault: &otpd_core::vault::Vault, value: &str) -> Vec<String> {
    vault.blinds(value).iter().map(|b| b.to_hex()).collect()
}
