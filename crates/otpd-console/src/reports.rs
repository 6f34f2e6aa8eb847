//! The lifecycle reports behind the overview and the insights page, computed at most once a
//! minute per window and kept in memory in between: reading 100,000 verifications takes a
//! few hundred milliseconds, serving the figures from memory well under one. A stale report
//! is served while one refresh runs in the background, so only the first view of a window
//! waits for the database.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use otpd_core::events::AttemptFilter;
use otpd_core::report::{GroupBy, LifecycleGroup, lifecycle};
use otpd_core::store::{OperatorStore, StoreError};
use otpd_core::{Clock, ServiceId, Store, Timestamp};

use crate::ConsoleState;

/// How old a report may be before a view starts its refresh.
pub const FRESH_SECONDS: i64 = 60;

/// A window nobody looked at for this long is dropped, so the map stays small.
const FORGET_AFTER_SECONDS: i64 = 15 * 60;

/// Most verifications one report reads; a wider window says it was cut.
pub const MAX_VERIFICATIONS: u32 = 200_000;

/// What a report covers: one service or all, over the last `days`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Window {
    pub service: Option<ServiceId>,
    pub days: u32,
}

impl Window {
    /// The window's start when it ends at `end`.
    pub fn since(&self, end: Timestamp) -> Timestamp {
        end.plus_seconds(-86_400 * i64::from(self.days))
    }
}

/// One window's figures, grouped every way the pages show them.
#[derive(Debug)]
pub struct Report {
    /// When the verifications were read.
    pub computed_at: Timestamp,
    pub overall: LifecycleGroup,
    pub by_day: Vec<LifecycleGroup>,
    pub by_country: Vec<LifecycleGroup>,
    pub by_channel: Vec<LifecycleGroup>,
    pub by_provider: Vec<LifecycleGroup>,
    /// The window held more than [`MAX_VERIFICATIONS`].
    pub cut: bool,
}

struct Slot {
    report: Arc<Report>,
    refreshing: bool,
    read_at: Timestamp,
}

/// The reports computed so far, one per window.
#[derive(Default)]
pub struct Reports {
    slots: Mutex<HashMap<Window, Slot>>,
    /// Held while a report is computed for a view that has none to show, so a burst of first
    /// views reads the database once.
    first_reads: tokio::sync::Mutex<()>,
}

/// What the cache holds for a window at `now`.
enum Held {
    Fresh(Arc<Report>),
    /// Stale; `true` when this view is the one to refresh it.
    Stale(Arc<Report>, bool),
    Missing,
}

impl Reports {
    fn held(&self, window: Window, now: Timestamp) -> Held {
        let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        slots.retain(|_, slot| now.0 - slot.read_at.0 < FORGET_AFTER_SECONDS * 1000);
        let Some(slot) = slots.get_mut(&window) else {
            return Held::Missing;
        };
        slot.read_at = now;
        if now.0 - slot.report.computed_at.0 < FRESH_SECONDS * 1000 {
            return Held::Fresh(slot.report.clone());
        }
        let refresh = !slot.refreshing;
        slot.refreshing = true;
        Held::Stale(slot.report.clone(), refresh)
    }

    fn keep(&self, window: Window, report: Arc<Report>, now: Timestamp) {
        let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        slots.insert(
            window,
            Slot {
                report,
                refreshing: false,
                read_at: now,
            },
        );
    }

    /// A failed background refresh lets the next view try again.
    fn refresh_failed(&self, window: Window) {
        let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(slot) = slots.get_mut(&window) {
            slot.refreshing = false;
        }
    }
}

/// The report of `window`: from memory when under a minute old; a stale one at once (its
/// refresh started in the background); computed now when there is none.
pub async fn report<S, C>(
    state: &ConsoleState<S, C>,
    window: Window,
) -> Result<Arc<Report>, StoreError>
where
    S: Store + OperatorStore + Clone,
    C: Clock + Clone,
{
    let now = state.verifier.clock().now();
    match state.reports().held(window, now) {
        Held::Fresh(report) | Held::Stale(report, false) => Ok(report),
        Held::Stale(report, true) => {
            let state = state.clone();
            tokio::spawn(async move {
                match compute(&state, window).await {
                    Ok(fresh) => state.reports().keep(window, Arc::new(fresh), now),
                    Err(error) => {
                        tracing::warn!(%error, "refreshing a console report failed");
                        state.reports().refresh_failed(window);
                    }
                }
            });
            Ok(report)
        }
        Held::Missing => {
            let _first = state.reports().first_reads.lock().await;
            if let Held::Fresh(report) = state.reports().held(window, now) {
                return Ok(report);
            }
            let report = Arc::new(compute(state, window).await?);
            state.reports().keep(window, report.clone(), now);
            Ok(report)
        }
    }
}

/// Reads the window's verifications and groups them.
async fn compute<S, C>(state: &ConsoleState<S, C>, window: Window) -> Result<Report, StoreError>
where
    S: Store + OperatorStore + Clone,
    C: Clock + Clone,
{
    let now = state.verifier.clock().now();
    let since = window.since(now);
    let (rows, rollups) = state
        .verifier
        .manage()
        .report_sources(&AttemptFilter {
            service: window.service,
            since: Some(since),
            newest_first: true,
            limit: MAX_VERIFICATIONS,
            ..Default::default()
        })
        .await?;
    let group = |by| lifecycle(&rows, &rollups, by);
    Ok(Report {
        computed_at: now,
        overall: group(GroupBy::All).into_iter().next().unwrap_or_default(),
        by_day: group(GroupBy::Day),
        by_country: group(GroupBy::Country),
        by_channel: group(GroupBy::Channel),
        by_provider: group(GroupBy::Provider),
        cut: rows.len() >= MAX_VERIFICATIONS as usize,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn window() -> Window {
        Window {
            service: None,
            days: 7,
        }
    }

    fn computed_at(ms: i64) -> Arc<Report> {
        Arc::new(Report {
            computed_at: Timestamp(ms),
            overall: LifecycleGroup::default(),
            by_day: Vec::new(),
            by_country: Vec::new(),
            by_channel: Vec::new(),
            by_provider: Vec::new(),
            cut: false,
        })
    }

    #[test]
    fn a_report_is_fresh_for_a_minute_then_one_view_refreshes_it() {
        let reports = Reports::default();
        assert!(matches!(
            reports.held(window(), Timestamp(0)),
            Held::Missing
        ));
        reports.keep(window(), computed_at(0), Timestamp(0));
        assert!(matches!(
            reports.held(window(), Timestamp(59_999)),
            Held::Fresh(_)
        ));
        assert!(matches!(
            reports.held(window(), Timestamp(60_000)),
            Held::Stale(_, true)
        ));
        assert!(
            matches!(
                reports.held(window(), Timestamp(60_001)),
                Held::Stale(_, false)
            ),
            "a second view while the refresh runs does not start another"
        );
        reports.refresh_failed(window());
        assert!(matches!(
            reports.held(window(), Timestamp(60_002)),
            Held::Stale(_, true)
        ));
        reports.keep(window(), computed_at(61_000), Timestamp(61_000));
        assert!(matches!(
            reports.held(window(), Timestamp(61_001)),
            Held::Fresh(_)
        ));
    }

    #[test]
    fn windows_nobody_reads_are_forgotten() {
        let reports = Reports::default();
        reports.keep(window(), computed_at(0), Timestamp(0));
        let other = Window {
            service: None,
            days: 1,
        };
        assert!(matches!(
            reports.held(other, Timestamp(FORGET_AFTER_SECONDS * 1000)),
            Held::Missing
        ));
        assert!(reports.slots.lock().unwrap().is_empty());
    }
}
