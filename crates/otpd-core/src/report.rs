//! The verification lifecycle report: how many verifications ended FAILED, SENT or SUCCESS,
//! how long approval took and what sending cost, per group. The admin API's `/report` and the
//! console's insights both read it, from [`crate::manage::Management::report_sources`].

use std::collections::BTreeMap;

use crate::delivery::{DeliveryAttempt, TransmissionSummary};
use crate::retention::{ReportRollup, weighted_percentile};
use crate::verification::Verification;

/// What the report groups verifications by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupBy {
    Channel,
    /// ISO country of the destination (`none` for email).
    Country,
    /// The provider of the last send that had one.
    Provider,
    /// `VA…` SID.
    Service,
    /// UTC day of the start (`YYYY-MM-DD`); rolled-up days are not split by day and are
    /// left out.
    Day,
    /// One group, `all`.
    All,
}

impl GroupBy {
    /// The grouping named `text` as the API spells it.
    pub fn parse(text: &str) -> Option<GroupBy> {
        match text {
            "channel" => Some(GroupBy::Channel),
            "country" => Some(GroupBy::Country),
            "provider" => Some(GroupBy::Provider),
            "service" => Some(GroupBy::Service),
            "day" => Some(GroupBy::Day),
            _ => None,
        }
    }
}

/// One group's figures.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct LifecycleGroup {
    pub key: String,
    pub failed: u64,
    pub sent: u64,
    pub success: u64,
    /// Seconds from start to approval.
    pub median_seconds_to_approve: Option<f64>,
    pub p95_seconds_to_approve: Option<f64>,
    /// What providers said they charged (sum of prices, whatever the currency).
    pub spend: f64,
}

impl LifecycleGroup {
    /// Verifications in the group.
    pub fn total(&self) -> u64 {
        self.failed + self.sent + self.success
    }

    /// `n` as a share of the group (0 when empty).
    pub fn share(&self, n: u64) -> f64 {
        match self.total() {
            0 => 0.0,
            total => n as f64 / total as f64,
        }
    }
}

/// The report over live attempts (each with its verification, several attempts per
/// verification) and the rollups of purged days, groups in key order.
pub fn lifecycle(
    attempts: Vec<(DeliveryAttempt, Verification)>,
    rollups: Vec<ReportRollup>,
    by: GroupBy,
) -> Vec<LifecycleGroup> {
    #[derive(Default)]
    struct Group {
        figures: LifecycleGroup,
        seconds_to_approve: Vec<(f64, u64)>,
    }
    let mut verifications: BTreeMap<uuid::Uuid, (Verification, Vec<DeliveryAttempt>)> =
        BTreeMap::new();
    for (delivery, verification) in attempts {
        verifications
            .entry(verification.id.uuid())
            .or_insert_with(|| (verification, Vec::new()))
            .1
            .push(delivery);
    }
    let mut groups: BTreeMap<String, Group> = BTreeMap::new();
    if by != GroupBy::Day {
        for rollup in rollups {
            let key = match by {
                GroupBy::Country => rollup.country.unwrap_or_else(|| "none".to_string()),
                GroupBy::Provider => rollup.provider.unwrap_or_else(|| "none".to_string()),
                GroupBy::Service => format!("VA{}", rollup.service_id.simple()),
                GroupBy::All => "all".to_string(),
                _ => rollup.channel,
            };
            let group = groups.entry(key).or_default();
            group.figures.failed += rollup.failed;
            group.figures.sent += rollup.sent;
            group.figures.success += rollup.success;
            if let Some(seconds) = rollup.approve_seconds {
                group
                    .seconds_to_approve
                    .push((seconds as f64, rollup.success));
            }
        }
    }
    for (verification, sends) in verifications.values() {
        let key = match by {
            GroupBy::Country => verification
                .country
                .map_or("none".to_string(), |c| c.as_str().to_string()),
            GroupBy::Provider => sends
                .iter()
                .rev()
                .find_map(|d| d.provider.clone())
                .unwrap_or_else(|| "none".to_string()),
            GroupBy::Service => format!("VA{}", verification.service_id.simple()),
            GroupBy::Day => utc_day(verification.created_at.0),
            GroupBy::Channel => verification.channel.as_str().to_string(),
            GroupBy::All => "all".to_string(),
        };
        let group = groups.entry(key).or_default();
        group.figures.spend += sends.iter().filter_map(|d| d.price).sum::<f64>();
        match TransmissionSummary::of(verification.status, sends) {
            TransmissionSummary::Failed => group.figures.failed += 1,
            TransmissionSummary::Sent => group.figures.sent += 1,
            TransmissionSummary::Success => {
                group.figures.success += 1;
                group.seconds_to_approve.push((
                    (verification.updated_at.0 - verification.created_at.0) as f64 / 1000.0,
                    1,
                ));
            }
        }
    }
    groups
        .into_iter()
        .map(|(key, mut group)| LifecycleGroup {
            key,
            median_seconds_to_approve: weighted_percentile(&mut group.seconds_to_approve, 0.5),
            p95_seconds_to_approve: weighted_percentile(&mut group.seconds_to_approve, 0.95),
            ..group.figures
        })
        .collect()
}

/// `YYYY-MM-DD` of a Unix time in milliseconds, in UTC.
pub fn utc_day(unix_ms: i64) -> String {
    let days = unix_ms.div_euclid(86_400_000);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_days_are_civil_dates() {
        assert_eq!(utc_day(0), "1970-01-01");
        assert_eq!(utc_day(951_782_400_000), "2000-02-29");
        assert_eq!(utc_day(1_796_515_200_000 - 1), "2026-12-05");
        assert_eq!(utc_day(1_796_515_200_000), "2026-12-06");
    }
}
