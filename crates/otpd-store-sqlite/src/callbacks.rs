//! The outbox of status callbacks on SQLite.

use otpd_core::store::{CallbackJob, CallbackStore};
use otpd_core::{StoreError, Timestamp, VerificationId, VerificationStatus};
use rusqlite::params;
use uuid::Uuid;

use crate::{SqliteStore, db_error, execute, load_verification, query_all};

impl CallbackStore for SqliteStore {
    async fn claim_due_callbacks(
        &self,
        now: Timestamp,
        lease_until: Timestamp,
        limit: u32,
    ) -> Result<Vec<CallbackJob>, StoreError> {
        let vault = self.vault();
        self.write(move |connection| {
            let claimed = query_all(
                connection,
                "UPDATE callbacks SET next_attempt_at = ?1 WHERE id IN \
                 (SELECT id FROM callbacks WHERE state = 'pending' AND next_attempt_at <= ?2 \
                  ORDER BY next_attempt_at LIMIT ?3) \
                 RETURNING id, verification_id, url, status, attempts",
                params![lease_until.0, now.0, limit],
                |row| {
                    let id: Vec<u8> = row.get(0).map_err(db_error)?;
                    let verification: Vec<u8> = row.get(1).map_err(db_error)?;
                    let status: String = row.get(3).map_err(db_error)?;
                    Ok((
                        Uuid::from_slice(&id)
                            .map_err(|_| StoreError::Corrupt("callback id".into()))?,
                        Uuid::from_slice(&verification)
                            .map_err(|_| StoreError::Corrupt("callback verification".into()))?,
                        row.get::<_, String>(2).map_err(db_error)?,
                        VerificationStatus::parse(&status)
                            .ok_or_else(|| StoreError::Corrupt("callback status".into()))?,
                        row.get::<_, u32>(4).map_err(db_error)?,
                    ))
                },
            )?;
            let mut jobs = Vec::with_capacity(claimed.len());
            for (id, verification_id, url, status, attempts) in claimed {
                let verification_id = VerificationId::from_uuid(verification_id);
                if let Some(verification) = load_verification(connection, &vault, verification_id)?
                {
                    jobs.push(CallbackJob {
                        id,
                        url,
                        verification,
                        status,
                        attempts,
                    });
                }
            }
            Ok(jobs)
        })
        .await
    }

    async fn callback_delivered(&self, id: Uuid, now: Timestamp) -> Result<(), StoreError> {
        self.write(move |connection| {
            execute(
                connection,
                "UPDATE callbacks SET state = 'delivered', attempts = attempts + 1, updated_at = ?1 WHERE id = ?2",
                params![now.0, id.as_bytes().as_slice()],
            )?;
            Ok(())
        })
        .await
    }

    async fn callback_failed(
        &self,
        id: Uuid,
        retry_at: Option<Timestamp>,
        error: &str,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let error = error.to_string();
        self.write(move |connection| {
            execute(
                connection,
                "UPDATE callbacks SET attempts = attempts + 1, last_error = ?1, updated_at = ?2, \
                 state = CASE WHEN ?3 IS NULL THEN 'failed' ELSE 'pending' END, \
                 next_attempt_at = COALESCE(?3, next_attempt_at) WHERE id = ?4",
                params![
                    error,
                    now.0,
                    retry_at.map(|t| t.0),
                    id.as_bytes().as_slice()
                ],
            )?;
            Ok(())
        })
        .await
    }
}
