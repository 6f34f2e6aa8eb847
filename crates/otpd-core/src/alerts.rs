//! Success-rate alerts: per service, when the approval rate of recent sends falls below a
//! fraction of its own baseline (with enough volume on both sides), an
//! `alert.approval_rate_dropped` event is stored (and pushed to the service's webhooks); when
//! it recovers, `alert.approval_rate_recovered`. The open alert is a row in the store, so on
//! several nodes exactly one reports each change.

use serde_json::json;
use uuid::Uuid;

use crate::clock::Timestamp;
use crate::events::{AttemptFilter, Event};
use crate::store::{DeliveryStore, EventStore, StoreError};

/// When an alert fires.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AlertPolicy {
    /// The recent window judged.
    pub window_seconds: u32,
    /// The baseline: the period before the window, this long.
    pub baseline_seconds: u32,
    /// Sends needed in the window and in the baseline before judging.
    pub min_volume: u64,
    /// The alert fires when the window's rate is below this fraction of the baseline's.
    pub drop_fraction: f64,
}

impl Default for AlertPolicy {
    fn default() -> Self {
        AlertPolicy {
            window_seconds: 1800,
            baseline_seconds: 86_400,
            min_volume: 20,
            drop_fraction: 0.5,
        }
    }
}

/// Judges every service with recent traffic; returns how many alerts opened or closed.
pub async fn check_alerts<S: EventStore + DeliveryStore>(
    store: &S,
    policy: &AlertPolicy,
    now: Timestamp,
) -> Result<usize, StoreError> {
    let window_start = now.plus_seconds(-i64::from(policy.window_seconds));
    let baseline_start = window_start.plus_seconds(-i64::from(policy.baseline_seconds));
    let mut changes = 0;
    for service in store.active_services(baseline_start).await? {
        let filter = |since, until| AttemptFilter {
            service: Some(service),
            since: Some(since),
            until: Some(until),
            limit: 1,
            ..AttemptFilter::default()
        };
        let current = store
            .attempt_summary(&filter(window_start, now.plus_millis(1)))
            .await?;
        let baseline = store
            .attempt_summary(&filter(baseline_start, window_start))
            .await?;
        if current.total < policy.min_volume || baseline.total < policy.min_volume {
            continue;
        }
        let rate = |s: crate::events::AttemptSummary| s.converted as f64 / s.total as f64;
        let (current_rate, baseline_rate) = (rate(current), rate(baseline));
        let key = format!("approval_rate:{service}");
        let dropped = current_rate < policy.drop_fraction * baseline_rate;
        let kind = if dropped && store.open_alert(&key, now).await? {
            tracing::warn!(service = %service, current_rate, baseline_rate, "approval rate dropped");
            "alert.approval_rate_dropped"
        } else if !dropped && store.close_alert(&key).await? {
            tracing::info!(service = %service, current_rate, baseline_rate, "approval rate recovered");
            "alert.approval_rate_recovered"
        } else {
            continue;
        };
        store
            .record_event(&Event {
                id: Uuid::now_v7(),
                service_id: service,
                verification_id: None,
                kind: kind.into(),
                data: json!({
                    "approvalRate": current_rate,
                    "baselineApprovalRate": baseline_rate,
                    "sends": current.total,
                    "baselineSends": baseline.total,
                    "windowSeconds": policy.window_seconds,
                    "dropFraction": policy.drop_fraction,
                }),
                created_at: now,
            })
            .await?;
        changes += 1;
    }
    Ok(changes)
}
