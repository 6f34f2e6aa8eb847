//! Starts grouped per node (see `groups`). Every start is one atomic step (locks, a read of
//! its counters and cooldown, then its rows). A group's transaction takes every lock of the
//! group in one sorted statement, reads every counter and cooldown in one statement, decides
//! the starts in arrival order in memory (a start sees the created ones before it in its group
//! as if they had committed), and writes the created ones with multi-row statements.

use std::collections::HashMap;

use otpd_core::store::{StartDecision, StartPlan};
use otpd_core::{StoreError, Timestamp};
use sqlx::PgPool;

use super::groups::Grouped;
use super::{NewStart, add_spend, db_error, insert_verifications};

/// The bytes of values one insert statement carries. sqlx does not set `TCP_NODELAY`, so a
/// message longer than one TLS record (16 KB) leaves the client in several writes, and the
/// last waits for the server's delayed ACK: 40 ms a statement (measured: a group's insert
/// took 45 ms over TLS, 2 ms without).
pub(crate) const MESSAGE_BUDGET: usize = 12 * 1024;

/// New verifications' atomic steps.
pub(crate) struct Starts;

impl Grouped for Starts {
    type Call = StartPlan;
    type Answer = StartDecision;
    // A group's lock and read statements stay well under `MESSAGE_BUDGET`.
    const MAX: usize = 32;
    const IN_FLIGHT: usize = 2;

    async fn together(
        pool: &PgPool,
        vault: &otpd_core::vault::Vault,
        plans: &[&StartPlan],
    ) -> Result<Vec<StartDecision>, StoreError> {
        start_group(pool, vault, plans).await
    }
}

/// What the group's earlier created starts add to a counter.
#[derive(Default, Clone, Copy)]
struct Added {
    count: i64,
    oldest: Option<i64>,
}

/// One transaction for several starts; their decisions in order.
async fn start_group(
    pool: &PgPool,
    vault: &otpd_core::vault::Vault,
    plans: &[&StartPlan],
) -> Result<Vec<StartDecision>, StoreError> {
    let recipients: Vec<String> = plans
        .iter()
        .map(|plan| {
            let v = &plan.verification;
            format!(
                "cool:{}:{}",
                v.service_id,
                vault.blind(v.to.as_str()).to_hex()
            )
        })
        .collect();
    let mut locks: Vec<&str> = Vec::new();
    for (plan, recipient) in plans.iter().zip(&recipients) {
        locks.extend(plan.limits.iter().map(|hit| hit.key.as_str()));
        if plan.cooldown_seconds > 0 {
            locks.push(recipient);
        }
    }
    locks.sort_unstable();
    locks.dedup();
    let mut tx = super::begin_keyed(pool).await?;
    if !locks.is_empty() {
        // Sorted keys, one statement: two groups (or a group and a lone start on another
        // node) never wait on each other in a cycle.
        sqlx::query(
            "SELECT pg_advisory_xact_lock(hashtextextended(k, 7)) FROM unnest($1::text[]) AS k",
        )
        .bind(&locks)
        .execute(&mut *tx)
        .await
        .map_err(db_error)?;
    }
    // Every counter of every start (its lockout first, then its limits) and every
    // cooldown's last send, in one statement after the locks.
    let mut counter_keys: Vec<&str> = Vec::new();
    let mut counter_since: Vec<i64> = Vec::new();
    let mut cooled_services = Vec::new();
    let mut cooled_recipients: Vec<String> = Vec::new();
    let mut cooled_now: Vec<i64> = Vec::new();
    for plan in plans {
        let now = plan.verification.created_at.0;
        for hit in plan.lockout.iter().chain(plan.limits.iter()) {
            counter_keys.push(&hit.key);
            counter_since.push(now - hit.window_ms);
        }
        if plan.cooldown_seconds > 0 {
            cooled_services.push(plan.verification.service_id.uuid());
            cooled_recipients.push(vault.blind(plan.verification.to.as_str()).to_hex());
            cooled_now.push(now);
        }
    }
    let rows: Vec<(i32, i64, i64, Option<i64>)> = sqlx::query_as(
        // LATERAL: one index lookup per counter and per recipient whatever the planner
        // guesses about the arrays (a generic plan once hash-joined a scan of rate_events).
        "SELECT 0, c.i, w.n, w.oldest \
         FROM unnest($1::text[], $2::bigint[]) WITH ORDINALITY AS c(key, since, i) \
         CROSS JOIN LATERAL (SELECT COUNT(*) AS n, MIN(r.at) AS oldest FROM rate_events r \
         WHERE r.key = c.key AND r.at > c.since) AS w \
         UNION ALL \
         SELECT 1, s.i, 0, (SELECT COALESCE((SELECT MAX(created_at) FROM deliveries \
         WHERE verification_id = v.id), v.created_at) FROM verifications v \
         WHERE v.service_id = s.service AND v.to_index = s.to_index AND v.expires_at > s.now \
         ORDER BY v.id DESC LIMIT 1) \
         FROM unnest($3::uuid[], $4::text[], $5::bigint[]) WITH ORDINALITY AS s(service, to_index, now, i)",
    )
    .bind(&counter_keys)
    .bind(&counter_since)
    .bind(&cooled_services)
    .bind(&cooled_recipients)
    .bind(&cooled_now)
    .fetch_all(&mut *tx)
    .await
    .map_err(db_error)?;
    let mut counts = vec![(0i64, None); counter_keys.len()];
    let mut last_sends = vec![None; cooled_now.len()];
    for (kind, ordinal, count, at) in rows {
        let index = usize::try_from(ordinal - 1).unwrap_or(usize::MAX);
        match kind {
            0 => {
                if let Some(slot) = counts.get_mut(index) {
                    *slot = (count, at);
                }
            }
            _ => {
                if let Some(slot) = last_sends.get_mut(index) {
                    *slot = at;
                }
            }
        }
    }
    // Decide in arrival order; what an earlier created start wrote counts for the later ones.
    let mut added: HashMap<&str, Added> = HashMap::new();
    let mut sent_to: HashMap<&str, i64> = HashMap::new();
    let mut decisions = Vec::with_capacity(plans.len());
    let mut created = Vec::new();
    let (mut next_counter, mut next_cooled) = (0, 0);
    for (plan, recipient) in plans.iter().zip(&recipients) {
        let v = &plan.verification;
        let now = v.created_at.0;
        let counters: Vec<&otpd_core::store::LimitHit> =
            plan.lockout.iter().chain(plan.limits.iter()).collect();
        let read = &counts[next_counter..next_counter + counters.len()];
        next_counter += counters.len();
        let last_send = if plan.cooldown_seconds > 0 {
            next_cooled += 1;
            last_sends[next_cooled - 1].max(sent_to.get(recipient.as_str()).copied())
        } else {
            None
        };
        let decision = decide(plan, &counters, read, last_send, &added, now);
        if decision == StartDecision::Created {
            if let Some(spend) = &plan.spend
                && add_spend(&mut tx, spend).await?.is_none()
            {
                decisions.push(StartDecision::OverBudget);
                continue;
            }
            let counted: Vec<&str> = plan.limits.iter().map(|hit| hit.key.as_str()).collect();
            let widest = plan.limits.iter().map(|hit| hit.window_ms).max();
            for key in &counted {
                let entry = added.entry(key).or_default();
                entry.count += 1;
                entry.oldest = entry.oldest.or(Some(now));
            }
            sent_to.insert(recipient.as_str(), now);
            created.push(NewStart {
                verification: v,
                delivery: &plan.delivery,
                counted,
                forget_before: now - widest.unwrap_or(0),
            });
        }
        decisions.push(decision);
    }
    for chunk in under_one_record(&created) {
        insert_verifications(&mut tx, vault, chunk).await?;
    }
    tx.commit().await.map_err(db_error)?;
    Ok(decisions)
}

/// The created starts in runs whose insert stays under [`MESSAGE_BUDGET`] (an estimate: the
/// variable-length values plus a fixed allowance for the rest of the row, its delivery and
/// its two events).
fn under_one_record<'a, 'b>(starts: &'b [NewStart<'a>]) -> Vec<&'b [NewStart<'a>]> {
    const FIXED: usize = 1_200;
    let mut runs = Vec::new();
    let (mut begin, mut bytes) = (0, 0);
    for (index, start) in starts.iter().enumerate() {
        let v = start.verification;
        let size = FIXED
            + v.template.as_str().len()
            + 2 * v.to.as_str().len()
            + v.from.as_str().len()
            + [&v.callback_url, &v.amount, &v.payee, &v.locale]
                .iter()
                .map(|text| text.as_ref().map_or(0, String::len))
                .sum::<usize>()
            + start
                .counted
                .iter()
                .map(|key| key.len() + 12)
                .sum::<usize>();
        if index > begin && bytes + size > MESSAGE_BUDGET {
            runs.push(&starts[begin..index]);
            (begin, bytes) = (index, 0);
        }
        bytes += size;
    }
    if begin < starts.len() {
        runs.push(&starts[begin..]);
    }
    runs
}

/// The cooldown, then the lockout and limits in order, with the group's earlier starts added
/// to what was read; the spend is decided by the caller (it is a write).
fn decide(
    plan: &StartPlan,
    counters: &[&otpd_core::store::LimitHit],
    read: &[(i64, Option<i64>)],
    last_send: Option<i64>,
    added: &HashMap<&str, Added>,
    now: i64,
) -> StartDecision {
    if let Some(last_send) = last_send {
        let allowed_at = Timestamp(last_send).plus_seconds(i64::from(plan.cooldown_seconds));
        if now < allowed_at.0 {
            return StartDecision::Cooldown { allowed_at };
        }
    }
    let lockouts = usize::from(plan.lockout.is_some());
    for (position, (hit, (count, oldest))) in counters.iter().zip(read).enumerate() {
        let extra = added.get(hit.key.as_str()).copied().unwrap_or_default();
        if count + extra.count < i64::from(hit.max) {
            continue;
        }
        let oldest = match (*oldest, extra.oldest) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let frees_at = oldest.map(|at| Timestamp(at + hit.window_ms));
        return match position.checked_sub(lockouts) {
            None => StartDecision::LockedOut { frees_at },
            Some(index) => StartDecision::Limited { index, frees_at },
        };
    }
    StartDecision::Created
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::TestSchema;
    use otpd_core::store::{LimitHit, Spend};
    use otpd_core::{LimitStore, VerificationStore};
    use otpd_store_tests::{T0, service, start_plan};

    /// A group's inserts are split so each stays under one TLS record, in order, each start
    /// once; a start larger than the budget still goes, alone.
    #[test]
    fn inserts_are_split_under_one_tls_record() {
        let service = otpd_core::ServiceId::generate();
        let mut plans: Vec<StartPlan> = (0..40)
            .map(|_| start_plan(service, 0, Vec::new()))
            .collect();
        plans[7].verification.amount = Some("x".repeat(2 * MESSAGE_BUDGET));
        let starts: Vec<NewStart> = plans
            .iter()
            .map(|plan| NewStart {
                verification: &plan.verification,
                delivery: &plan.delivery,
                counted: Vec::new(),
                forget_before: 0,
            })
            .collect();
        let runs = under_one_record(&starts);
        let ids: Vec<_> = runs
            .iter()
            .flat_map(|run| run.iter().map(|start| start.verification.id))
            .collect();
        let expected: Vec<_> = plans.iter().map(|plan| plan.verification.id).collect();
        assert_eq!(ids, expected, "every start once, in order");
        assert!(runs.len() >= 40 * 1_200 / MESSAGE_BUDGET, "{}", runs.len());
        let alone = runs
            .iter()
            .find(|run| run.iter().any(|start| start.verification.amount.is_some()))
            .unwrap();
        assert_eq!(alone.len(), 1, "the oversized start goes alone");
        assert!(
            runs.iter()
                .filter(|run| run.len() > 1)
                .all(|run| run.len() <= MESSAGE_BUDGET / 1_200)
        );
    }

    /// A group decides its starts in arrival order, each seeing the created ones before it
    /// as committed: a limit lets its maximum through, the cooldown one start per recipient,
    /// the cap the spends that fit; nothing refused is written.
    #[tokio::test]
    async fn a_group_decides_its_starts_in_order() {
        let Some(schema) = TestSchema::create().await else {
            return;
        };
        let store = schema.store().await;
        let (limited, cooled, spending) = (
            service(&store).await,
            service(&store).await,
            service(&store).await,
        );
        let window = 600_000;
        let limit = || {
            vec![LimitHit {
                key: "dest:group".into(),
                window_ms: window,
                max: 2,
            }]
        };
        let spend = |service| {
            let mut plan = start_plan(service, 0, Vec::new());
            plan.spend = Some(Spend {
                key: "spend:group".into(),
                amount: 0.6,
                cap: 1.0,
            });
            plan
        };
        let plans = [
            start_plan(limited, 0, limit()),
            start_plan(limited, 0, limit()),
            start_plan(limited, 0, limit()),
            start_plan(cooled, 30, Vec::new()),
            start_plan(cooled, 30, Vec::new()),
            spend(spending),
            spend(spending),
        ];
        let group: Vec<&StartPlan> = plans.iter().collect();
        let decisions = start_group(store.pool(), &store.vault, &group)
            .await
            .unwrap();
        assert_eq!(
            decisions,
            [
                StartDecision::Created,
                StartDecision::Created,
                StartDecision::Limited {
                    index: 0,
                    frees_at: Some(T0.plus_millis(window)),
                },
                StartDecision::Created,
                StartDecision::Cooldown {
                    allowed_at: T0.plus_seconds(30),
                },
                StartDecision::Created,
                StartDecision::OverBudget,
            ]
        );
        for (plan, decision) in plans.iter().zip(&decisions) {
            let written = store.verification(plan.verification.id).await.unwrap();
            assert_eq!(
                written.is_some(),
                *decision == StartDecision::Created,
                "{decision:?}"
            );
        }
        let counted = store.rate_count("dest:group", window, T0).await.unwrap();
        assert_eq!(counted.count, 2, "refused starts are not counted");
    }
}
