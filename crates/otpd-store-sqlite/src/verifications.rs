//! The verifications on SQLite: the atomic start, the atomic check, status changes, resends
//! and expiry.

use otpd_core::events::status_kind;
use otpd_core::store::{
    CheckResult, DeliveryAttempt, ResendOutcome, StartDecision, StartPlan, VerificationStore,
};
use otpd_core::vault::Vault;
use otpd_core::{
    Candidate, CheckOutcome, CodeHash, ServiceId, StatusChange, StoreError, Timestamp,
    Verification, VerificationId, VerificationStatus, decide_check, decide_status_change,
};
use rusqlite::{Connection, params};
use uuid::Uuid;

use crate::rows;
use crate::rows::VERIFICATION_COLUMNS;
use crate::{
    EventRow, NewVerification, SqliteStore, add_rate_event, add_spend, db_error, execute,
    forget_rate_events, insert_delivery, insert_event, load_verification, query_all, query_one,
    rate_window,
};

impl VerificationStore for SqliteStore {
    async fn ping(&self) -> Result<(), StoreError> {
        self.read(|connection| {
            connection
                .query_row("SELECT 1", [], |_| Ok(()))
                .map_err(db_error)
        })
        .await
    }

    async fn start_verification(&self, plan: &StartPlan) -> Result<StartDecision, StoreError> {
        let new = NewVerification::new(&plan.verification, &plan.delivery, &self.vault());
        let plan = plan.clone();
        // The writer runs one job at a time, so reading the counters and then writing is
        // atomic; every refusal returns before the first write.
        self.write(move |connection| {
            let v = &plan.verification;
            let now = v.created_at.0;
            if plan.cooldown_seconds > 0 {
                let last_send = query_one(
                    connection,
                    "SELECT COALESCE((SELECT MAX(created_at) FROM deliveries \
                     WHERE verification_id = v.id), v.created_at) FROM verifications v \
                     WHERE service_id = ?1 AND to_index = ?2 AND expires_at > ?3 \
                     ORDER BY id DESC LIMIT 1",
                    params![v.service_id.as_bytes().as_slice(), new.to_index, now],
                    |row| rows::get::<i64>(row, 0),
                )?;
                if let Some(last_send) = last_send {
                    let allowed_at =
                        Timestamp(last_send).plus_seconds(i64::from(plan.cooldown_seconds));
                    if now < allowed_at.0 {
                        return Ok(StartDecision::Cooldown { allowed_at });
                    }
                }
            }
            if let Some(lockout) = &plan.lockout {
                let (count, oldest) =
                    rate_window(connection, &lockout.key, now - lockout.window_ms)?;
                if count >= lockout.max {
                    let frees_at = oldest.map(|at| Timestamp(at + lockout.window_ms));
                    return Ok(StartDecision::LockedOut { frees_at });
                }
            }
            for (index, hit) in plan.limits.iter().enumerate() {
                forget_rate_events(connection, &hit.key, now - hit.window_ms)?;
                if hit.max == u32::MAX {
                    continue;
                }
                let (count, oldest) = rate_window(connection, &hit.key, now - hit.window_ms)?;
                if count >= hit.max {
                    let frees_at = oldest.map(|at| Timestamp(at + hit.window_ms));
                    return Ok(StartDecision::Limited { index, frees_at });
                }
            }
            if let Some(spend) = &plan.spend
                && add_spend(connection, spend)?.is_none()
            {
                return Ok(StartDecision::OverBudget);
            }
            for hit in &plan.limits {
                add_rate_event(connection, &hit.key, now)?;
            }
            insert_verification(connection, &new)?;
            Ok(StartDecision::Created)
        })
        .await
    }

    async fn verification(&self, id: VerificationId) -> Result<Option<Verification>, StoreError> {
        let vault = self.vault();
        self.read_untouched_by_unconfirmed(move |connection| {
            load_verification(connection, &vault, id)
        })
        .await
    }

    async fn check_code(
        &self,
        id: VerificationId,
        service: ServiceId,
        candidate: Candidate,
        now: Timestamp,
    ) -> Result<CheckResult, StoreError> {
        let vault = self.vault();
        self.write(move |connection| {
            let Some(mut verification) = load_verification(connection, &vault, id)? else {
                return Ok(CheckResult {
                    outcome: CheckOutcome::NotFound,
                    verification: None,
                });
            };
            if verification.service_id != service {
                return Ok(CheckResult {
                    outcome: CheckOutcome::WrongService,
                    verification: None,
                });
            }
            let decision = decide_check(&verification, verification.accepts(&candidate), now);
            record_transition(
                connection,
                &vault,
                &mut verification,
                decision.status,
                decision.attempts,
                now,
            )?;
            let counters = candidate.counting.counters(&verification, &vault);
            if let Some((key, window_ms)) = counters.for_outcome(decision.outcome) {
                forget_rate_events(connection, key, now.0 - window_ms)?;
                add_rate_event(connection, key, now.0)?;
            }
            Ok(CheckResult {
                outcome: decision.outcome,
                verification: Some(verification),
            })
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
        let vault = self.vault();
        self.write(move |connection| {
            let Some(mut verification) = load_verification(connection, &vault, id)? else {
                return Ok(StatusChange::NotFound);
            };
            if verification.service_id != service {
                return Ok(StatusChange::WrongService);
            }
            let plan = decide_status_change(&verification, target, now);
            if let Some(status) = plan.record {
                let attempts = verification.attempts;
                record_transition(connection, &vault, &mut verification, status, attempts, now)?;
            }
            Ok(match plan.changed {
                true => StatusChange::Changed(Box::new(verification)),
                false => StatusChange::NotPending(Box::new(verification)),
            })
        })
        .await
    }

    async fn latest_for(
        &self,
        service: ServiceId,
        to: &str,
        now: Timestamp,
    ) -> Result<Option<Verification>, StoreError> {
        let vault = self.vault();
        // Under every key: a verification started before a key rotation and not yet resealed.
        let indexes: Vec<String> = vault.blinds(to).iter().map(|b| b.to_hex()).collect();
        self.read_untouched_by_unconfirmed(move |connection| {
            let mut newest: Option<Verification> = None;
            for index in &indexes {
                let found = query_one(
                    connection,
                    &format!(
                        "SELECT {VERIFICATION_COLUMNS} FROM verifications \
                         WHERE service_id = ?1 AND to_index = ?2 AND expires_at > ?3 \
                         ORDER BY id DESC LIMIT 1"
                    ),
                    params![service.as_bytes().as_slice(), index, now.0],
                    |row| rows::verification(row, &vault),
                )?;
                if let Some(found) = found
                    && newest
                        .as_ref()
                        .is_none_or(|n| found.id.uuid() > n.id.uuid())
                {
                    newest = Some(found);
                }
            }
            Ok(newest)
        })
        .await
    }

    async fn resend(
        &self,
        id: VerificationId,
        delivery: &DeliveryAttempt,
        new_hash: Option<CodeHash>,
        max_sends: u32,
        now: Timestamp,
    ) -> Result<ResendOutcome, StoreError> {
        let d = delivery.clone();
        let vault = self.vault();
        self.write(move |connection| {
            let Some(mut verification) = load_verification(connection, &vault, id)? else {
                return Ok(ResendOutcome::NotPending);
            };
            if verification.status_at(now) != VerificationStatus::Pending {
                return Ok(ResendOutcome::NotPending);
            }
            let sends: u32 = connection
                .prepare_cached("SELECT COUNT(*) FROM deliveries WHERE verification_id = ?1")
                .and_then(|mut statement| {
                    statement.query_row([id.as_bytes().as_slice()], |row| row.get(0))
                })
                .map_err(db_error)?;
            if sends >= max_sends {
                return Ok(ResendOutcome::TooManySends);
            }
            insert_delivery(connection, &d)?;
            insert_event(
                connection,
                &EventRow::delivery(verification.service_id, &d, now),
            )?;
            if let Some(hash) = new_hash {
                verification.code_hash = hash;
                verification.code_seed = None;
            }
            execute(
                connection,
                "UPDATE verifications SET code_hash = ?1, code_seed = ?2, updated_at = ?3 WHERE id = ?4",
                params![
                    verification.code_hash.0.as_slice(),
                    verification.code_seed.map(|seed| seed.0.to_vec()),
                    now.0,
                    id.as_bytes().as_slice()
                ],
            )?;
            verification.updated_at = now;
            Ok(ResendOutcome::Queued(Box::new(verification)))
        })
        .await
    }

    async fn expire_due(
        &self,
        now: Timestamp,
        limit: u32,
    ) -> Result<Vec<Verification>, StoreError> {
        let vault = self.vault();
        self.write(move |connection| {
            let due = query_all(
                connection,
                &format!(
                    "SELECT {VERIFICATION_COLUMNS} FROM verifications \
                     WHERE status = 'pending' AND expires_at <= ?1 ORDER BY expires_at LIMIT ?2"
                ),
                params![now.0, limit],
                |row| rows::verification(row, &vault),
            )?;
            let mut expired = Vec::with_capacity(due.len());
            for mut verification in due {
                let attempts = verification.attempts;
                record_transition(
                    connection,
                    &vault,
                    &mut verification,
                    VerificationStatus::Expired,
                    attempts,
                    now,
                )?;
                expired.push(verification);
            }
            Ok(expired)
        })
        .await
    }
}

fn insert_verification(connection: &Connection, new: &NewVerification) -> Result<(), StoreError> {
    let (v, d) = (&new.verification, &new.delivery);
    execute(
        connection,
        &format!(
            "INSERT OR FAIL INTO verifications ({VERIFICATION_COLUMNS}, to_index, to_prefix) VALUES \
             (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21, ?22, ?23, ?24, ?25, ?26, ?27)"
        ),
        params![
            v.id.as_bytes().as_slice(),
            v.service_id.as_bytes().as_slice(),
            new.to_sealed,
            v.country.map(|c| c.as_str().to_string()),
            v.channel.as_str(),
            v.status.as_str(),
            v.attempts,
            v.max_attempts.get(),
            v.ttl.get(),
            v.code_hash.0.as_slice(),
            v.pin_type.as_str(),
            v.pin_length.get(),
            v.template.as_str(),
            v.from.as_str(),
            v.track_id.map(|t| t.as_bytes().to_vec()),
            v.callback_url,
            v.cost,
            v.parts,
            v.created_at.0,
            v.expires_at.0,
            v.updated_at.0,
            v.code_seed.map(|seed| seed.0.to_vec()),
            v.amount,
            v.payee,
            v.locale,
            new.to_index,
            otpd_core::vault::clear_prefix(v.to.as_str()),
        ],
    )?;
    insert_delivery(connection, d)?;
    for event in &new.events {
        insert_event(connection, event)?;
    }
    Ok(())
}

fn record_transition(
    connection: &Connection,
    vault: &Vault,
    verification: &mut Verification,
    status: VerificationStatus,
    attempts: u32,
    now: Timestamp,
) -> Result<(), StoreError> {
    let changed = status != verification.status;
    if !changed && attempts == verification.attempts {
        return Ok(());
    }
    execute(
        connection,
        "UPDATE OR FAIL verifications SET status = ?1, attempts = ?2, updated_at = ?3 WHERE id = ?4",
        params![
            status.as_str(),
            attempts,
            now.0,
            verification.id.as_bytes().as_slice()
        ],
    )?;
    let counted = attempts > verification.attempts;
    verification.status = status;
    verification.attempts = attempts;
    verification.updated_at = now;
    let kind = if changed {
        status_kind(status)
    } else if counted {
        "verification.check_failed"
    } else {
        ""
    };
    if !kind.is_empty() {
        insert_event(
            connection,
            &EventRow::verification(kind, verification, now, vault),
        )?;
    }
    if let (true, Some(url)) = (changed, &verification.callback_url) {
        execute(
            connection,
            "INSERT INTO callbacks (id, verification_id, url, status, next_attempt_at, created_at, updated_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?5, ?5)",
            params![
                Uuid::now_v7().as_bytes().as_slice(),
                verification.id.as_bytes().as_slice(),
                url,
                status.as_str(),
                now.0
            ],
        )?;
    }
    Ok(())
}
