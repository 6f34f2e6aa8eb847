//! Retention: how long each kind of row is kept, the daily rollups that keep the Attempts
//! Summary and the admin report exact after their rows are purged, and one purge pass
//! (docs/data-protection.md, "Retention").

use crate::clock::Timestamp;
use crate::ids::ServiceId;
use crate::store::{RetentionStore, StoreError};

/// One UTC day in milliseconds.
pub const DAY_MS: i64 = 86_400_000;

/// The start of the UTC day `at` falls in.
pub fn day_start(at: Timestamp) -> Timestamp {
    Timestamp(at.0.div_euclid(DAY_MS) * DAY_MS)
}

/// The smallest UUID v7 stamped at `at`: ids below it were made before `at` (purges bound
/// their scans by the time-ordered primary keys with it).
pub fn id_bound(at: Timestamp) -> uuid::Uuid {
    let ms = at.0.max(0) as u64;
    let mut bytes = [0u8; 16];
    bytes[..6].copy_from_slice(&ms.to_be_bytes()[2..]);
    uuid::Uuid::from_bytes(bytes)
}

/// What a purge deletes, one window each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PurgeKind {
    /// Finished verifications (never pending ones) whose days are rolled up, with their
    /// deliveries and status callbacks.
    Verifications,
    /// Events (`GET /admin/v1/events`, the webhook payloads).
    Events,
    /// Finished (delivered or failed) status-callback and webhook-delivery logs.
    DeliveryLogs,
    /// Rate-limit and pumping counters past every window, lapsed quarantines and past days'
    /// budget spends.
    Counters,
}

impl PurgeKind {
    /// Every kind, in the order a pass purges them.
    pub const ALL: [PurgeKind; 4] = [
        PurgeKind::Verifications,
        PurgeKind::Events,
        PurgeKind::DeliveryLogs,
        PurgeKind::Counters,
    ];

    /// The metric label (`otpd_purged_rows_total{kind}`).
    pub fn as_str(self) -> &'static str {
        match self {
            PurgeKind::Verifications => "verifications",
            PurgeKind::Events => "events",
            PurgeKind::DeliveryLogs => "delivery_logs",
            PurgeKind::Counters => "counters",
        }
    }
}

/// The windows, in days (0: kept forever), and the batch size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetentionPolicy {
    pub verifications_days: u32,
    pub events_days: u32,
    pub delivery_logs_days: u32,
    pub counters_days: u32,
    /// Rows deleted per statement (each its own short transaction or writer job).
    pub batch: u32,
}

impl RetentionPolicy {
    /// The window of `kind` in days (0: kept forever).
    pub fn days(&self, kind: PurgeKind) -> u32 {
        match kind {
            PurgeKind::Verifications => self.verifications_days,
            PurgeKind::Events => self.events_days,
            PurgeKind::DeliveryLogs => self.delivery_logs_days,
            PurgeKind::Counters => self.counters_days,
        }
    }

    /// Rows of `kind` last changed before this are purged; `None` when kept forever.
    pub fn cutoff(&self, kind: PurgeKind, now: Timestamp) -> Option<Timestamp> {
        let days = self.days(kind);
        (days > 0).then(|| Timestamp(now.0 - i64::from(days) * DAY_MS))
    }
}

/// One group of one rolled-up day as the admin report reads it: verifications by the UTC day
/// of their first send, with whole seconds to approval for the approved ones.
#[derive(Debug, Clone, PartialEq)]
pub struct ReportRollup {
    pub service_id: ServiceId,
    /// The verification's channel.
    pub channel: String,
    pub country: Option<String>,
    /// The provider of its last send that had one.
    pub provider: Option<String>,
    /// Whole seconds from start to approval (the SUCCESS rows only).
    pub approve_seconds: Option<i64>,
    pub failed: u64,
    pub sent: u64,
    pub success: u64,
}

/// Rows one purge pass deleted, per kind, and the days it rolled up.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PurgeCounts {
    pub rolled_up_days: u64,
    pub deleted: Vec<(PurgeKind, u64)>,
}

/// Most days one pass rolls up (the first pass on an old database catches up over several).
const ROLLUPS_PER_PASS: u32 = 31;

/// One pass: rolls up every whole day older than the verifications window, then deletes
/// each kind's rows past its window one batch at a time until a batch comes back short.
/// Safe on several nodes at once: a day's rollup and its mark are one atomic step, and
/// deletes of rows already gone delete nothing.
pub async fn purge_pass<S: RetentionStore>(
    store: &S,
    policy: &RetentionPolicy,
    now: Timestamp,
) -> Result<PurgeCounts, StoreError> {
    let mut counts = PurgeCounts::default();
    let batch = policy.batch.max(1);
    if let Some(cutoff) = policy.cutoff(PurgeKind::Verifications, now) {
        let before = day_start(cutoff);
        for _ in 0..ROLLUPS_PER_PASS {
            if store.roll_up_next_day(before).await?.is_none() {
                break;
            }
            counts.rolled_up_days += 1;
        }
    }
    for kind in PurgeKind::ALL {
        let Some(cutoff) = policy.cutoff(kind, now) else {
            continue;
        };
        let mut total = 0;
        loop {
            let deleted = store.purge(kind, cutoff, batch).await?;
            total += deleted;
            if deleted < u64::from(batch) {
                break;
            }
        }
        counts.deleted.push((kind, total));
    }
    Ok(counts)
}

/// The `p` percentile (nearest rank) of weighted values, sorted here.
pub fn weighted_percentile(values: &mut [(f64, u64)], p: f64) -> Option<f64> {
    let total: u64 = values.iter().map(|(_, n)| n).sum();
    if total == 0 {
        return None;
    }
    values.sort_by(|a, b| a.0.total_cmp(&b.0));
    let rank = ((p * total as f64).ceil() as u64).clamp(1, total);
    let mut seen = 0;
    for (value, n) in values.iter() {
        seen += n;
        if seen >= rank {
            return Some(*value);
        }
    }
    values.last().map(|(v, _)| *v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weighted_percentile_matches_nearest_rank_over_repeated_values() {
        let mut values = vec![(3.0, 2), (1.0, 1), (10.0, 1)];
        // 1, 3, 3, 10
        assert_eq!(weighted_percentile(&mut values, 0.5), Some(3.0));
        assert_eq!(weighted_percentile(&mut values, 0.95), Some(10.0));
        assert_eq!(weighted_percentile(&mut [], 0.5), None);
    }

    #[test]
    fn a_window_of_zero_days_keeps_rows_forever() {
        let policy = RetentionPolicy {
            verifications_days: 0,
            events_days: 2,
            delivery_logs_days: 30,
            counters_days: 7,
            batch: 10,
        };
        assert_eq!(
            policy.cutoff(PurgeKind::Verifications, Timestamp(DAY_MS * 9)),
            None
        );
        assert_eq!(
            policy.cutoff(PurgeKind::Events, Timestamp(DAY_MS * 9)),
            Some(Timestamp(DAY_MS * 7))
        );
        assert_eq!(day_start(Timestamp(DAY_MS * 3 + 5)), Timestamp(DAY_MS * 3));
    }

    #[test]
    fn the_id_bound_sorts_below_every_id_made_at_or_after_its_time() {
        let at = Timestamp(1_700_000_000_123);
        let id = uuid::Uuid::new_v7(uuid::Timestamp::from_unix_time(
            1_700_000_000,
            123_000_000,
            0,
            0,
        ));
        assert!(id_bound(at) <= id);
        assert!(id_bound(Timestamp(at.0 + 1)) > id);
    }
}
