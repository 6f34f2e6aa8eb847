//! The outbox of status callbacks on PostgreSQL.

use otpd_core::store::VerificationStore;
use otpd_core::store::{CallbackJob, CallbackStore};
use otpd_core::{StoreError, Timestamp, VerificationId, VerificationStatus};
use sqlx::Row;
use uuid::Uuid;

use crate::{PgStore, db_error};

impl CallbackStore for PgStore {
    async fn claim_due_callbacks(
        &self,
        now: Timestamp,
        lease_until: Timestamp,
        limit: u32,
    ) -> Result<Vec<CallbackJob>, StoreError> {
        let rows = sqlx::query(
            "UPDATE callbacks SET next_attempt_at = $1 WHERE id IN \
             (SELECT id FROM callbacks WHERE state = 'pending' AND next_attempt_at <= $2 \
              ORDER BY next_attempt_at LIMIT $3 FOR UPDATE SKIP LOCKED) \
             RETURNING id, verification_id, url, status, attempts",
        )
        .bind(lease_until.0)
        .bind(now.0)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(db_error)?;
        let mut jobs = Vec::with_capacity(rows.len());
        for row in &rows {
            let verification_id: Uuid = row.try_get(1).map_err(db_error)?;
            let status: String = row.try_get(3).map_err(db_error)?;
            let attempts: i32 = row.try_get(4).map_err(db_error)?;
            let Some(verification) = self
                .verification(VerificationId::from_uuid(verification_id))
                .await?
            else {
                continue;
            };
            jobs.push(CallbackJob {
                id: row.try_get(0).map_err(db_error)?,
                url: row.try_get(2).map_err(db_error)?,
                verification,
                status: VerificationStatus::parse(&status)
                    .ok_or_else(|| StoreError::Corrupt("callback status".into()))?,
                attempts: attempts.max(0) as u32,
            });
        }
        Ok(jobs)
    }

    async fn callback_delivered(&self, id: Uuid, now: Timestamp) -> Result<(), StoreError> {
        sqlx::query("UPDATE callbacks SET state = 'delivered', attempts = attempts + 1, updated_at = $1 WHERE id = $2")
            .bind(now.0)
            .bind(id)
            .execute(&self.pool)
            .await
            .map_err(db_error)?;
        Ok(())
    }

    async fn callback_failed(
        &self,
        id: Uuid,
        retry_at: Option<Timestamp>,
        error: &str,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE callbacks SET attempts = attempts + 1, last_error = $1, updated_at = $2, \
             state = CASE WHEN $3::bigint IS NULL THEN 'failed' ELSE 'pending' END, \
             next_attempt_at = COALESCE($3, next_attempt_at) WHERE id = $4",
        )
        .bind(error)
        .bind(now.0)
        .bind(retry_at.map(|t| t.0))
        .bind(id)
        .execute(&self.pool)
        .await
        .map_err(db_error)?;
        Ok(())
    }
}
