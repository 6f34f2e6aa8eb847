//! Insights: conversion and delivery over time and by country, channel and provider, time to
//! approval and spend per day, from the core's lifecycle report ([`crate::reports`]).

use std::collections::HashMap;

use askama::Template;
use axum::extract::{Query, State};
use axum::response::Response;
use otpd_core::report::LifecycleGroup;
use otpd_core::store::OperatorStore;
use otpd_core::{Clock, ServiceId, Store};

use crate::chart::{Series, stacked_bars};
use crate::render::{Chrome, When, percent, seconds, show, when};
use crate::reports::{self, Window};
use crate::session::Signed;
use crate::verifications::{all_services, sid_uuid};
use crate::{ConsoleError, ConsoleState};

/// One row of a breakdown table.
pub struct Line {
    pub key: String,
    pub total: u64,
    pub success: String,
    pub sent: String,
    pub failed: String,
    pub median: String,
    pub p95: String,
    pub spend: String,
}

impl Line {
    fn of(group: &LifecycleGroup) -> Line {
        Line {
            key: group.key.clone(),
            total: group.total(),
            success: percent(group.share(group.success)),
            sent: percent(group.share(group.sent)),
            failed: percent(group.share(group.failed)),
            median: seconds(group.median_seconds_to_approve),
            p95: seconds(group.p95_seconds_to_approve),
            spend: format!("{:.4}", group.spend),
        }
    }
}

/// One breakdown table.
pub struct Table {
    pub title: &'static str,
    pub heading: &'static str,
    pub lines: Vec<Line>,
}

#[derive(Template)]
#[template(path = "insights.html")]
struct InsightsPage {
    chrome: Chrome,
    days: u32,
    service: String,
    services: Vec<(String, String)>,
    overall: Line,
    /// When the figures were read (they are at most a minute old).
    computed_at: When,
    outcome_chart: String,
    spend_chart: String,
    tables: Vec<Table>,
    cut: bool,
}

/// `GET /console/insights?days=7&service=VA…`.
pub async fn page<S, C>(
    State(state): State<ConsoleState<S, C>>,
    signed: Signed,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Response, ConsoleError>
where
    S: Store + OperatorStore + Clone,
    C: Clock + Clone,
{
    let days: u32 = match query.get("days").map(String::as_str) {
        None | Some("") => 7,
        Some(text) => text
            .parse()
            .ok()
            .filter(|d| (1..=90).contains(d))
            .ok_or_else(|| ConsoleError::BadRequest("days: a whole number from 1 to 90.".into()))?,
    };
    let service_sid = query.get("service").cloned().unwrap_or_default();
    let service = if service_sid.is_empty() {
        None
    } else {
        Some(ServiceId::from_uuid(
            sid_uuid(&service_sid, "VA")
                .ok_or_else(|| ConsoleError::BadRequest("service: expected a VA… SID.".into()))?,
        ))
    };
    let window = Window { service, days };
    let report = reports::report(&state, window).await?;
    let since = window.since(report.computed_at);
    // Every day of the window, the quiet ones too, so the charts read as a time line.
    let day_keys: Vec<String> = (0..=i64::from(days))
        .map(|k| otpd_core::report::utc_day(since.0 + k * 86_400_000))
        .collect();
    let labels: Vec<String> = day_keys
        .iter()
        .map(|key| key.get(5..).unwrap_or(key).to_string())
        .collect();
    let on_day = |key: &str, value: &dyn Fn(&LifecycleGroup) -> f64| {
        report
            .by_day
            .iter()
            .find(|g| g.key == key)
            .map_or(0.0, value)
    };
    let per_day = |value: &dyn Fn(&LifecycleGroup) -> f64| -> Vec<f64> {
        day_keys.iter().map(|key| on_day(key, value)).collect()
    };
    let outcome_chart = stacked_bars(
        "Verifications per day by outcome",
        &labels,
        &[
            Series {
                name: "SUCCESS",
                class: "s-success",
                values: per_day(&|g| g.success as f64),
            },
            Series {
                name: "SENT",
                class: "s-sent",
                values: per_day(&|g| g.sent as f64),
            },
            Series {
                name: "FAILED",
                class: "s-failed",
                values: per_day(&|g| g.failed as f64),
            },
        ],
    );
    let spend_chart = stacked_bars(
        "Spend per day",
        &labels,
        &[Series {
            name: "spend",
            class: "s-spend",
            values: per_day(&|g| g.spend),
        }],
    );
    let lines = |groups: &[LifecycleGroup]| groups.iter().map(Line::of).collect::<Vec<_>>();
    show(InsightsPage {
        chrome: Chrome::new(&signed, state.dev_mode, "insights"),
        days,
        service: service_sid,
        services: all_services(&state).await?,
        overall: Line::of(&report.overall),
        computed_at: when(report.computed_at),
        outcome_chart,
        spend_chart,
        tables: vec![
            Table {
                title: "Per day",
                heading: "Day (UTC)",
                lines: lines(&report.by_day),
            },
            Table {
                title: "By country",
                heading: "Country",
                lines: lines(&report.by_country),
            },
            Table {
                title: "By channel",
                heading: "Channel",
                lines: lines(&report.by_channel),
            },
            Table {
                title: "By provider",
                heading: "Provider",
                lines: lines(&report.by_provider),
            },
        ],
        cut: report.cut,
    })
}
