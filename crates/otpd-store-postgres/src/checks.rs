//! Checks grouped per node (see `groups`). Each check committed on its own makes the database
//! flush its WAL once per check: checks measured about 2k/s with the backends waiting on
//! `WALWrite` / `WALSync`, a third of the rate of starts, which were already grouped. A group's
//! transaction locks its verifications (`FOR UPDATE`, in id order, so two groups never wait
//! on each other in a cycle), decides the checks in arrival order in memory (a later check of
//! one verification sees what an earlier one in the group decided, as if it had committed),
//! and writes every change with one statement.

use std::collections::HashMap;

use otpd_core::store::CheckResult;
use otpd_core::{
    Candidate, CheckOutcome, ServiceId, StoreError, Timestamp, Verification, VerificationId,
    decide_check,
};
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use super::groups::Grouped;
use super::{begin_keyed, db_error, rows, transition_kind};

/// One check of a typed code against verification `id` of `service`.
pub(crate) struct CheckCall {
    pub(crate) id: VerificationId,
    pub(crate) service: ServiceId,
    pub(crate) candidate: Candidate,
    pub(crate) now: Timestamp,
}

/// Checks' atomic steps.
pub(crate) struct Checks;

impl Grouped for Checks {
    type Call = CheckCall;
    type Answer = CheckResult;
    // A change is ~400 bytes of values (most of it the event's JSON): a full group's write
    // stays under one TLS record (see `starts::MESSAGE_BUDGET`).
    const MAX: usize = 24;
    const IN_FLIGHT: usize = 2;

    async fn together(
        pool: &PgPool,
        vault: &otpd_core::vault::Vault,
        calls: &[&CheckCall],
    ) -> Result<Vec<CheckResult>, StoreError> {
        check_group(pool, vault, calls).await
    }
}

/// What one check changed: the verification after it, and what the change records.
struct Change {
    after: Verification,
    kind: &'static str,
    callback: Option<String>,
    counter: Option<(String, i64)>,
    at: Timestamp,
}

/// One transaction for several checks; their results in order.
async fn check_group(
    pool: &PgPool,
    vault: &otpd_core::vault::Vault,
    calls: &[&CheckCall],
) -> Result<Vec<CheckResult>, StoreError> {
    let mut ids: Vec<Uuid> = calls.iter().map(|call| call.id.uuid()).collect();
    ids.sort_unstable();
    ids.dedup();
    let mut tx = begin_keyed(pool).await?;
    let rows = sqlx::query(concat!(
        "SELECT ",
        crate::verification_columns!(),
        " FROM verifications WHERE id = ANY($1) ORDER BY id FOR UPDATE"
    ))
    .bind(&ids)
    .fetch_all(&mut *tx)
    .await
    .map_err(db_error)?;
    let mut current: HashMap<VerificationId, Verification> = HashMap::with_capacity(rows.len());
    for row in &rows {
        let verification = rows::verification(row, vault)?;
        current.insert(verification.id, verification);
    }
    let mut results = Vec::with_capacity(calls.len());
    let mut changes = Vec::new();
    for call in calls {
        let Some(read) = current.get(&call.id) else {
            results.push(CheckResult {
                outcome: CheckOutcome::NotFound,
                verification: None,
            });
            continue;
        };
        if read.service_id != call.service {
            results.push(CheckResult {
                outcome: CheckOutcome::WrongService,
                verification: None,
            });
            continue;
        }
        let decision = decide_check(read, read.accepts(&call.candidate), call.now);
        let Some(kind) = transition_kind(read, decision.status, decision.attempts) else {
            // Nothing to write (an ended verification): the read is the answer.
            results.push(CheckResult {
                outcome: decision.outcome,
                verification: Some(read.clone()),
            });
            continue;
        };
        let mut after = read.clone();
        after.status = decision.status;
        after.attempts = decision.attempts;
        after.updated_at = call.now;
        let callback = after
            .callback_url
            .clone()
            .filter(|_| after.status != read.status);
        let counter = call
            .candidate
            .counting
            .counters(&after, vault)
            .for_outcome(decision.outcome)
            .cloned();
        results.push(CheckResult {
            outcome: decision.outcome,
            verification: Some(after.clone()),
        });
        current.insert(after.id, after.clone());
        changes.push(Change {
            after,
            kind,
            callback,
            counter,
            at: call.now,
        });
    }
    if !changes.is_empty() {
        write_changes(&mut tx, vault, &current, &changes).await?;
    }
    tx.commit().await.map_err(db_error)?;
    Ok(results)
}

/// One bound array: `value` of each item.
fn column<'a, T, U>(items: &'a [T], value: impl Fn(&'a T) -> U) -> Vec<U> {
    items.iter().map(value).collect()
}

/// Every verification's last state, and each change's event (with its webhook copies),
/// status callback and counter, in one statement.
async fn write_changes(
    connection: &mut PgConnection,
    vault: &otpd_core::vault::Vault,
    current: &HashMap<VerificationId, Verification>,
    changes: &[Change],
) -> Result<(), StoreError> {
    let mut changed_ids: Vec<VerificationId> = changes.iter().map(|c| c.after.id).collect();
    changed_ids.sort_unstable();
    changed_ids.dedup();
    let changed: Vec<&Verification> = changed_ids
        .iter()
        .filter_map(|id| current.get(id))
        .collect();
    let events: Vec<_> = changes
        .iter()
        .map(|c| otpd_core::events::verification_event(c.kind, &c.after, c.at, vault))
        .collect();
    let callbacks: Vec<&Change> = changes.iter().filter(|c| c.callback.is_some()).collect();
    let counted: Vec<(&str, i64, i64)> = changes
        .iter()
        .filter_map(|c| {
            let (key, window_ms) = c.counter.as_ref()?;
            Some((key.as_str(), c.at.0 - window_ms, c.at.0))
        })
        .collect();
    sqlx::query(
        "WITH u AS (UPDATE verifications SET status = s.status, attempts = s.attempts, \
         updated_at = s.at FROM unnest($1::uuid[], $2::text[], $3::int[], $4::int8[]) \
         AS s(id, status, attempts, at) WHERE verifications.id = s.id \
         AND verifications.id = ANY($1)), \
         e AS (INSERT INTO events (id, service_id, verification_id, kind, data, created_at) \
         SELECT * FROM unnest($5::uuid[], $6::uuid[], $7::uuid[], $8::text[], $9::text[], \
         $10::int8[])), \
         w AS (INSERT INTO webhook_deliveries (id, webhook_id, event_id, verification_id, \
         next_attempt_at, created_at, updated_at) \
         SELECT gen_random_uuid(), w.id, x.id, x.verification_id, x.at, x.at, x.at \
         FROM unnest($5::uuid[], $6::uuid[], $7::uuid[], $8::text[], $10::int8[]) \
         AS x(id, service_id, verification_id, kind, at) \
         JOIN webhooks w ON w.service_id = x.service_id AND w.enabled \
         AND (w.event_types = '*' OR w.event_types LIKE '%,' || x.kind || ',%')), \
         c AS (INSERT INTO callbacks (id, verification_id, url, status, next_attempt_at, \
         created_at, updated_at) SELECT c.id, c.verification_id, c.url, c.status, c.at, c.at, \
         c.at FROM unnest($11::uuid[], $12::uuid[], $13::text[], $14::text[], $15::int8[]) \
         AS c(id, verification_id, url, status, at)), \
         g AS (DELETE FROM rate_events r USING unnest($16::text[], $17::int8[]) AS g(key, before) \
         WHERE r.key = g.key AND r.at <= g.before AND r.key = ANY($16)) \
         INSERT INTO rate_events (key, at) SELECT * FROM unnest($16::text[], $18::int8[])",
    )
    .bind(column(&changed, |v| v.id.uuid()))
    .bind(column(&changed, |v| v.status.as_str()))
    .bind(column(&changed, |v| v.attempts as i32))
    .bind(column(&changed, |v| v.updated_at.0))
    .bind(column(&events, |e| e.id))
    .bind(column(&events, |e| e.service_id.uuid()))
    .bind(column(&events, |e| e.verification_id.map(|v| v.uuid())))
    .bind(column(&events, |e| e.kind.as_str()))
    .bind(column(&events, |e| e.data.to_string()))
    .bind(column(&events, |e| e.created_at.0))
    .bind(column(&callbacks, |_| Uuid::now_v7()))
    .bind(column(&callbacks, |c| c.after.id.uuid()))
    .bind(column(&callbacks, |c| {
        c.callback.as_deref().unwrap_or_default()
    }))
    .bind(column(&callbacks, |c| c.after.status.as_str()))
    .bind(column(&callbacks, |c| c.at.0))
    .bind(column(&counted, |c| c.0))
    .bind(column(&counted, |c| c.1))
    .bind(column(&counted, |c| c.2))
    .execute(&mut *connection)
    .await
    .map_err(db_error)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::TestSchema;
    use otpd_core::{CheckCounting, VerificationStatus, VerificationStore};
    use otpd_store_tests::Seed;
    use otpd_store_tests::{CODE, T0, sample, service, typed};

    /// A group decides its checks in arrival order, each seeing the ones before it: two
    /// wrong codes counted, the right one approves, a fourth finds it approved; a check of
    /// another service's verification and one of an unknown id change nothing. Each change
    /// writes its own event and counter.
    #[tokio::test]
    async fn a_group_decides_its_checks_in_order() {
        let Some(schema) = TestSchema::create().await else {
            return;
        };
        let store = schema.store().await;
        let service = service(&store).await;
        let other_service = otpd_store_tests::service(&store).await;
        let (mine, delivery) = sample(service, 3, Some("https://example.com/cb"));
        store.create_verification(&mine, &delivery).await.unwrap();
        let (theirs, their_delivery) = sample(other_service, 3, None);
        store
            .create_verification(&theirs, &their_delivery)
            .await
            .unwrap();
        let counting = CheckCounting {
            failures_window_ms: Some(60_000),
            ..Default::default()
        };
        let call = |id, service, code: &str| CheckCall {
            id,
            service,
            candidate: Candidate {
                counting,
                ..typed(id, code)
            },
            now: T0,
        };
        let calls = [
            call(mine.id, service, "000000"),
            call(theirs.id, service, CODE),
            call(mine.id, service, "111111"),
            call(VerificationId::generate(), service, CODE),
            call(mine.id, service, CODE),
            call(mine.id, service, CODE),
        ];
        let results = check_group(&store.pool, &store.vault, &calls.iter().collect::<Vec<_>>())
            .await
            .unwrap();
        let outcomes: Vec<_> = results.iter().map(|r| r.outcome).collect();
        assert_eq!(
            outcomes,
            [
                CheckOutcome::WrongCode,
                CheckOutcome::WrongService,
                CheckOutcome::WrongCode,
                CheckOutcome::NotFound,
                CheckOutcome::Approved,
                CheckOutcome::AlreadyApproved,
            ]
        );
        assert_eq!(results[2].verification.as_ref().unwrap().attempts, 2);

        let stored = store.verification(mine.id).await.unwrap().unwrap();
        assert_eq!(
            (stored.status, stored.attempts),
            (VerificationStatus::Approved, 2)
        );
        let untouched = store.verification(theirs.id).await.unwrap().unwrap();
        assert_eq!(
            (untouched.status, untouched.attempts),
            (VerificationStatus::Pending, 0)
        );
        let kinds: Vec<String> = sqlx::query_scalar(
            "SELECT kind FROM events WHERE verification_id = $1 AND kind LIKE 'verification.%' \
             AND kind <> 'verification.started' ORDER BY id",
        )
        .bind(mine.id.uuid())
        .fetch_all(&store.pool)
        .await
        .unwrap();
        assert_eq!(
            kinds,
            [
                "verification.check_failed",
                "verification.check_failed",
                "verification.approved"
            ]
        );
        let failures: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM rate_events")
            .fetch_one(&store.pool)
            .await
            .unwrap();
        assert_eq!(failures, 2, "each wrong code counted once");
        let callbacks: Vec<String> =
            sqlx::query_scalar("SELECT status FROM callbacks WHERE verification_id = $1")
                .bind(mine.id.uuid())
                .fetch_all(&store.pool)
                .await
                .unwrap();
        assert_eq!(
            callbacks,
            ["approved"],
            "a callback for the status change only"
        );
    }

    /// Two nodes (two stores, each with its own groups) checking two verifications at once,
    /// wrong codes only: each verification counts exactly its five attempts, one check ends
    /// it, and every later one finds it ended.
    #[tokio::test]
    async fn two_nodes_count_concurrent_wrong_codes_exactly() {
        let Some(schema) = TestSchema::create().await else {
            return;
        };
        let nodes = [schema.store().await, schema.store().await];
        let service = service(&nodes[0]).await;
        let mut ids = Vec::new();
        for _ in 0..2 {
            let (verification, delivery) = sample(service, 5, None);
            nodes[0]
                .create_verification(&verification, &delivery)
                .await
                .unwrap();
            ids.push(verification.id);
        }
        let mut checks = tokio::task::JoinSet::new();
        for n in 0..40 {
            let (node, id) = (nodes[n % 2].clone(), ids[(n / 2) % 2]);
            checks.spawn(async move {
                node.check_code(id, service, typed(id, "000000"), T0)
                    .await
                    .map(|result| (id, result.outcome))
            });
        }
        let mut outcomes: HashMap<VerificationId, Vec<CheckOutcome>> = HashMap::new();
        while let Some(joined) = checks.join_next().await {
            let (id, outcome) = joined.unwrap().expect("no check fails");
            outcomes.entry(id).or_default().push(outcome);
        }
        for id in &ids {
            let seen = &outcomes[id];
            let count = |wanted: CheckOutcome| seen.iter().filter(|&&o| o == wanted).count();
            assert_eq!(count(CheckOutcome::WrongCode), 4, "{seen:?}");
            assert_eq!(count(CheckOutcome::MaxAttemptsNow), 1, "{seen:?}");
            assert_eq!(count(CheckOutcome::AlreadyMaxAttempts), 15, "{seen:?}");
            let stored = nodes[1].verification(*id).await.unwrap().unwrap();
            assert_eq!(
                (stored.status, stored.attempts),
                (VerificationStatus::MaxAttemptsReached, 5)
            );
        }
    }
}
