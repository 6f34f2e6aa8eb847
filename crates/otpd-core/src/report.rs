//! The verification lifecycle report: how many verifications ended FAILED, SENT or SUCCESS,
//! how long approval took and what sending cost, per group. The admin API's `/report` and the
//! console's insights both read it, from [`crate::manage::Management::report_sources`].

use std::collections::HashMap;

use crate::clock::Timestamp;
use crate::ids::ServiceId;
use crate::retention::{DAY_MS, ReportRollup, weighted_percentile};

/// One live verification as the report sees it, aggregated over its sends that match the
/// report's filter (the store computes it in one query: [`crate::store::DeliveryStore::report_rows`]).
#[derive(Debug, Clone, PartialEq)]
pub struct ReportRow {
    pub service_id: ServiceId,
    /// The verification's channel.
    pub channel: String,
    /// ISO country of the destination (`None` for email).
    pub country: Option<String>,
    /// The provider of its last send that had one.
    pub provider: Option<String>,
    /// The code was verified.
    pub approved: bool,
    /// It has sends and every one failed.
    pub all_failed: bool,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    /// The sum of its sends' prices (whatever the currency).
    pub spend: f64,
}

/// How the report classifies a verification.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Every send failed and the code was not verified: no message left the platform.
    Failed,
    /// A message left (or is still being tried) and the code was not verified.
    Sent,
    /// The code was verified.
    Success,
}

impl ReportRow {
    /// FAILED when every send failed and it was not approved, SUCCESS when approved, SENT
    /// otherwise (as [`crate::delivery::TransmissionSummary`] says of one verification).
    pub fn outcome(&self) -> Outcome {
        if self.approved {
            Outcome::Success
        } else if self.all_failed {
            Outcome::Failed
        } else {
            Outcome::Sent
        }
    }
}

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

/// A group's key before it is spelled: grouping compares these, so no row allocates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Key<'a> {
    Text(&'a str),
    Service(ServiceId),
    /// Days since 1970-01-01 (UTC).
    Day(i64),
}

impl Key<'_> {
    fn spell(self) -> String {
        match self {
            Key::Text(text) => text.to_string(),
            Key::Service(service) => format!("VA{}", service.simple()),
            Key::Day(day) => utc_day(day * DAY_MS),
        }
    }
}

/// One group's figures while rows are added.
#[derive(Default)]
struct Group {
    figures: LifecycleGroup,
    seconds_to_approve: Vec<(f64, u64)>,
}

/// The groups met so far, in the order met, and where each key's group is.
#[derive(Default)]
struct Grouping<'a> {
    index: HashMap<Key<'a>, usize>,
    groups: Vec<(Key<'a>, Group)>,
    /// The slot of the last key asked for: rows come in runs of one key (a day, a channel),
    /// which then skip the hash.
    last: Option<usize>,
}

impl<'a> Grouping<'a> {
    /// The group of `key`, new if it is the first of its key.
    fn group(&mut self, key: Key<'a>) -> &mut Group {
        let slot = match self.last {
            Some(last) if self.groups[last].0 == key => last,
            _ => *self.index.entry(key).or_insert_with(|| {
                self.groups.push((key, Group::default()));
                self.groups.len() - 1
            }),
        };
        self.last = Some(slot);
        &mut self.groups[slot].1
    }
}

/// The text, or `none`.
fn none_or(value: &Option<String>) -> &str {
    value.as_deref().unwrap_or("none")
}

/// The report over the live verifications (one row each) and the rollups of purged days,
/// groups in key order. Borrows both, so one read serves several groupings.
pub fn lifecycle(rows: &[ReportRow], rollups: &[ReportRollup], by: GroupBy) -> Vec<LifecycleGroup> {
    let mut grouping = Grouping::default();
    if by != GroupBy::Day {
        for rollup in rollups {
            let group = grouping.group(match by {
                GroupBy::Country => Key::Text(none_or(&rollup.country)),
                GroupBy::Provider => Key::Text(none_or(&rollup.provider)),
                GroupBy::Service => Key::Service(rollup.service_id),
                GroupBy::All => Key::Text("all"),
                _ => Key::Text(&rollup.channel),
            });
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
    for row in rows {
        let group = grouping.group(match by {
            GroupBy::Country => Key::Text(none_or(&row.country)),
            GroupBy::Provider => Key::Text(none_or(&row.provider)),
            GroupBy::Service => Key::Service(row.service_id),
            GroupBy::Day => Key::Day(row.created_at.0.div_euclid(DAY_MS)),
            GroupBy::Channel => Key::Text(&row.channel),
            GroupBy::All => Key::Text("all"),
        });
        group.figures.spend += row.spend;
        match row.outcome() {
            Outcome::Failed => group.figures.failed += 1,
            Outcome::Sent => group.figures.sent += 1,
            Outcome::Success => {
                group.figures.success += 1;
                group
                    .seconds_to_approve
                    .push(((row.updated_at.0 - row.created_at.0) as f64 / 1000.0, 1));
            }
        }
    }
    let mut out: Vec<LifecycleGroup> = grouping
        .groups
        .into_iter()
        .map(|(key, mut group)| LifecycleGroup {
            key: key.spell(),
            median_seconds_to_approve: weighted_percentile(&mut group.seconds_to_approve, 0.5),
            p95_seconds_to_approve: weighted_percentile(&mut group.seconds_to_approve, 0.95),
            ..group.figures
        })
        .collect();
    out.sort_by(|a, b| a.key.cmp(&b.key));
    out
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

    fn row(approved: bool, all_failed: bool) -> ReportRow {
        ReportRow {
            service_id: ServiceId::from_uuid(uuid::Uuid::from_u128(1)),
            channel: "sms".into(),
            country: Some("FR".into()),
            provider: Some("alpha".into()),
            approved,
            all_failed,
            created_at: Timestamp(1_796_515_200_000),
            updated_at: Timestamp(1_796_515_200_000),
            spend: 0.0,
        }
    }

    #[test]
    fn approval_wins_then_all_failed_sends_then_sent() {
        assert_eq!(row(true, false).outcome(), Outcome::Success);
        assert_eq!(
            row(true, true).outcome(),
            Outcome::Success,
            "approved out of band although every send failed"
        );
        assert_eq!(row(false, true).outcome(), Outcome::Failed);
        assert_eq!(row(false, false).outcome(), Outcome::Sent);
    }

    #[test]
    fn groups_count_outcomes_spend_and_seconds_to_approve() {
        let approved_in = |seconds: i64, provider: &str| ReportRow {
            updated_at: Timestamp(1_796_515_200_000 + seconds * 1000),
            provider: Some(provider.into()),
            spend: 0.5,
            ..row(true, false)
        };
        let rows = vec![
            approved_in(10, "alpha"),
            approved_in(30, "alpha"),
            approved_in(20, "beta"),
            ReportRow {
                spend: 0.25,
                ..row(false, true)
            },
            ReportRow {
                provider: None,
                country: None,
                channel: "email".into(),
                created_at: Timestamp(1_796_515_200_000 - 1),
                ..row(false, false)
            },
        ];
        let all = lifecycle(&rows, &[], GroupBy::All);
        assert_eq!(all.len(), 1);
        let all = &all[0];
        assert_eq!(
            (all.key.as_str(), all.failed, all.sent, all.success),
            ("all", 1, 1, 3)
        );
        assert_eq!(all.spend, 1.75);
        assert_eq!(all.median_seconds_to_approve, Some(20.0));
        assert_eq!(all.p95_seconds_to_approve, Some(30.0));

        let keys = |by| -> Vec<(String, u64)> {
            lifecycle(&rows, &[], by)
                .into_iter()
                .map(|g| (g.key.clone(), g.total()))
                .collect()
        };
        let owned = |pairs: &[(&str, u64)]| -> Vec<(String, u64)> {
            pairs.iter().map(|(k, n)| (k.to_string(), *n)).collect()
        };
        assert_eq!(
            keys(GroupBy::Provider),
            owned(&[("alpha", 3), ("beta", 1), ("none", 1)])
        );
        assert_eq!(keys(GroupBy::Country), owned(&[("FR", 4), ("none", 1)]));
        assert_eq!(keys(GroupBy::Channel), owned(&[("email", 1), ("sms", 4)]));
        assert_eq!(
            keys(GroupBy::Day),
            owned(&[("2026-12-05", 1), ("2026-12-06", 4)])
        );
        assert_eq!(
            keys(GroupBy::Service),
            owned(&[("VA00000000000000000000000000000001", 5)])
        );
    }

    #[test]
    fn rollups_join_their_groups_except_by_day() {
        let rows = vec![row(true, false)];
        let rollups = vec![ReportRollup {
            service_id: ServiceId::from_uuid(uuid::Uuid::from_u128(1)),
            channel: "sms".into(),
            country: Some("FR".into()),
            provider: Some("beta".into()),
            approve_seconds: Some(40),
            failed: 2,
            sent: 1,
            success: 3,
        }];
        let by_channel = lifecycle(&rows, &rollups, GroupBy::Channel);
        assert_eq!(by_channel.len(), 1);
        let sms = &by_channel[0];
        assert_eq!((sms.failed, sms.sent, sms.success), (2, 1, 4));
        // 0 s once, 40 s three times.
        assert_eq!(sms.median_seconds_to_approve, Some(40.0));
        let by_provider = lifecycle(&rows, &rollups, GroupBy::Provider);
        let keys: Vec<_> = by_provider.iter().map(|g| g.key.as_str()).collect();
        assert_eq!(keys, ["alpha", "beta"]);
        let by_day = lifecycle(&rows, &rollups, GroupBy::Day);
        assert_eq!(by_day.len(), 1);
        assert_eq!(by_day[0].total(), 1, "rolled-up days are left out by day");
    }
}
