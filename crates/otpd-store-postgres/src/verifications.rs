//! The verifications on PostgreSQL: the atomic start, the atomic check, status changes, resends
//! and expiry.

use otpd_core::store::{
    CheckResult, DeliveryAttempt, ResendOutcome, StartDecision, StartPlan, VerificationStore,
};
use otpd_core::{
    Candidate, CodeHash, ServiceId, StatusChange, StoreError, Timestamp, Verification,
    VerificationId, VerificationStatus, decide_status_change,
};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::delivery_columns;
use crate::verification_columns;
use crate::{PgStore, bind_delivery, db_error, insert_event, transition_kind};
use crate::{checks, rows};

impl VerificationStore for PgStore {
    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map_err(db_error)?;
        Ok(())
    }

    async fn start_verification(&self, plan: &StartPlan) -> Result<StartDecision, StoreError> {
        self.starts.call(plan.clone()).await
    }

    async fn verification(&self, id: VerificationId) -> Result<Option<Verification>, StoreError> {
        let row = sqlx::query(concat!(
            "SELECT ",
            verification_columns!(),
            " FROM verifications WHERE id = $1"
        ))
        .bind(id.uuid())
        .fetch_optional(&self.pool)
        .await
        .map_err(db_error)?;
        row.as_ref()
            .map(|row| rows::verification(row, &self.vault))
            .transpose()
    }

    async fn check_code(
        &self,
        id: VerificationId,
        service: ServiceId,
        candidate: Candidate,
        now: Timestamp,
    ) -> Result<CheckResult, StoreError> {
        self.checks
            .call(checks::CheckCall {
                id,
                service,
                candidate,
                now,
            })
            .await
    }

    async fn set_status(
        &self,
        id: VerificationId,
        service: ServiceId,
        target: VerificationStatus,
        now: Timestamp,
    ) -> Result<StatusChange, StoreError> {
        let mut tx = self.pool.begin().await.map_err(db_error)?;
        let Some(mut verification) = load_for_update(&mut tx, &self.vault, id).await? else {
            return Ok(StatusChange::NotFound);
        };
        if verification.service_id != service {
            return Ok(StatusChange::WrongService);
        }
        let plan = decide_status_change(&verification, target, now);
        if let Some(status) = plan.record {
            let attempts = verification.attempts;
            record_transition(
                &mut tx,
                &self.vault,
                &mut verification,
                status,
                attempts,
                now,
            )
            .await?;
        }
        tx.commit().await.map_err(db_error)?;
        Ok(match plan.changed {
            true => StatusChange::Changed(Box::new(verification)),
            false => StatusChange::NotPending(Box::new(verification)),
        })
    }

    async fn latest_for(
        &self,
        service: ServiceId,
        to: &str,
        now: Timestamp,
    ) -> Result<Option<Verification>, StoreError> {
        let row = sqlx::query(concat!(
            "SELECT ",
            verification_columns!(),
            " FROM verifications WHERE service_id = $1 AND to_index = ANY($2) AND expires_at > $3 \
             ORDER BY id DESC LIMIT 1"
        ))
        .bind(service.uuid())
        .bind(crate::limits::blind_hexes(&self.vault, to))
        .bind(now.0)
        .fetch_optional(&self.pool)
        .await
        .map_err(db_error)?;
        row.as_ref()
            .map(|row| rows::verification(row, &self.vault))
            .transpose()
    }

    async fn resend(
        &self,
        id: VerificationId,
        delivery: &DeliveryAttempt,
        new_hash: Option<CodeHash>,
        max_sends: u32,
        now: Timestamp,
    ) -> Result<ResendOutcome, StoreError> {
        let mut tx = self.pool.begin().await.map_err(db_error)?;
        let Some(mut verification) = load_for_update(&mut tx, &self.vault, id).await? else {
            return Ok(ResendOutcome::NotPending);
        };
        if verification.status_at(now) != VerificationStatus::Pending {
            return Ok(ResendOutcome::NotPending);
        }
        let sends: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM deliveries WHERE verification_id = $1")
                .bind(id.uuid())
                .fetch_one(&mut *tx)
                .await
                .map_err(db_error)?;
        if sends >= i64::from(max_sends) {
            return Ok(ResendOutcome::TooManySends);
        }
        insert_delivery(&mut tx, delivery).await?;
        insert_event(
            &mut tx,
            &otpd_core::events::delivery_event(verification.service_id, delivery, now),
        )
        .await?;
        if let Some(hash) = new_hash {
            verification.code_hash = hash;
            verification.code_seed = None;
        }
        sqlx::query("UPDATE verifications SET code_hash = $1, code_seed = $2, updated_at = $3 WHERE id = $4")
            .bind(verification.code_hash.0.as_slice())
            .bind(verification.code_seed.map(|seed| seed.0.to_vec()))
            .bind(now.0)
            .bind(id.uuid())
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
        tx.commit().await.map_err(db_error)?;
        verification.updated_at = now;
        Ok(ResendOutcome::Queued(Box::new(verification)))
    }

    async fn expire_due(
        &self,
        now: Timestamp,
        limit: u32,
    ) -> Result<Vec<Verification>, StoreError> {
        let mut tx = self.pool.begin().await.map_err(db_error)?;
        let rows = sqlx::query(concat!(
            "SELECT ",
            verification_columns!(),
            " FROM verifications WHERE status = 'pending' AND expires_at <= $1 \
             ORDER BY expires_at LIMIT $2 FOR UPDATE SKIP LOCKED"
        ))
        .bind(now.0)
        .bind(i64::from(limit))
        .fetch_all(&mut *tx)
        .await
        .map_err(db_error)?;
        let mut expired = Vec::with_capacity(rows.len());
        for row in &rows {
            let mut verification = rows::verification(row, &self.vault)?;
            let attempts = verification.attempts;
            record_transition(
                &mut tx,
                &self.vault,
                &mut verification,
                VerificationStatus::Expired,
                attempts,
                now,
            )
            .await?;
            expired.push(verification);
        }
        tx.commit().await.map_err(db_error)?;
        Ok(expired)
    }
}

async fn load_for_update(
    connection: &mut PgConnection,
    vault: &otpd_core::vault::Vault,
    id: VerificationId,
) -> Result<Option<Verification>, StoreError> {
    let row = sqlx::query(concat!(
        "SELECT ",
        verification_columns!(),
        " FROM verifications WHERE id = $1 FOR UPDATE"
    ))
    .bind(id.uuid())
    .fetch_optional(&mut *connection)
    .await
    .map_err(db_error)?;
    row.as_ref()
        .map(|row| rows::verification(row, vault))
        .transpose()
}

async fn record_transition(
    connection: &mut PgConnection,
    vault: &otpd_core::vault::Vault,
    verification: &mut Verification,
    status: VerificationStatus,
    attempts: u32,
    now: Timestamp,
) -> Result<(), StoreError> {
    let changed = status != verification.status;
    if !changed && attempts == verification.attempts {
        return Ok(());
    }
    sqlx::query(
        "UPDATE verifications SET status = $1, attempts = $2, updated_at = $3 WHERE id = $4",
    )
    .bind(status.as_str())
    .bind(attempts as i32)
    .bind(now.0)
    .bind(verification.id.uuid())
    .execute(&mut *connection)
    .await
    .map_err(db_error)?;
    let kind = transition_kind(verification, status, attempts);
    verification.status = status;
    verification.attempts = attempts;
    verification.updated_at = now;
    if let Some(kind) = kind {
        insert_event(
            connection,
            &otpd_core::events::verification_event(kind, verification, now, vault),
        )
        .await?;
    }
    if let (true, Some(url)) = (changed, &verification.callback_url) {
        sqlx::query(
            "INSERT INTO callbacks (id, verification_id, url, status, next_attempt_at, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $5, $5)",
        )
        .bind(Uuid::now_v7())
        .bind(verification.id.uuid())
        .bind(url)
        .bind(status.as_str())
        .bind(now.0)
        .execute(&mut *connection)
        .await
        .map_err(db_error)?;
    }
    Ok(())
}

async fn insert_delivery(
    connection: &mut PgConnection,
    d: &DeliveryAttempt,
) -> Result<(), StoreError> {
    let query = sqlx::query(concat!(
        "INSERT INTO deliveries (",
        delivery_columns!(),
        ", lease_until) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $11, $12, $13, $14, $10)"
    ));
    bind_delivery(query, d)
        .execute(&mut *connection)
        .await
        .map_err(db_error)?;
    Ok(())
}
