//! `/admin/v1/report`: the verification lifecycle report support teams read (FAILED, SENT,
//! SUCCESS and time to approval, per channel, country, provider or service).

use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use otpd_core::{Clock, Store};
use serde_json::{Value, json};

use super::AdminAccount;
use super::schemas::{AdminError, Report};
use crate::AppState;
use crate::twilio::error::{self, TwilioError};

/// Most attempts a report reads (a larger range answers 400: narrow it).
const REPORT_MAX_ATTEMPTS: u32 = 200_000;

/// `GET /admin/v1/report?serviceSid=&since=&until=&groupBy=channel|country|provider|service`:
/// the support teams' lifecycle view: per group, how many verifications ended FAILED (no
/// message left), SENT (sent, never verified) and SUCCESS (verified), their shares, and the
/// median and p95 seconds from start to approval.
#[utoipa::path(
    get,
    path = "/admin/v1/report",
    tag = "admin",
    summary = "The verification lifecycle report",
    security(("accountBasic" = [])),
    params(("groupBy" = Option<String>, Query, description = "`channel` (default), `country`, `provider` or `service`"), ("serviceSid" = Option<String>, Query, description = "`VA…`"), ("since" = Option<i64>, Query, description = "Unix seconds, on send times"), ("until" = Option<i64>, Query, description = "Unix seconds, on send times")),
    responses(
        (status = 200, description = "Counts, shares and approval times per group.", body = Report),
        (status = 400, description = "60200: a parameter is malformed, or the range holds more than 200,000 sends.", body = AdminError),
        (status = 401, description = "20003: missing or wrong HTTP Basic credentials.", body = AdminError),
        (status = 500, description = "20500.", body = AdminError),
        (status = 503, description = "20503: the database is unavailable.", body = AdminError),
    )
)]
pub(crate) async fn report<S: Store + Clone, C: Clock + Clone>(
    State(state): State<AppState<S, C>>,
    axum::extract::RawQuery(query): axum::extract::RawQuery,
    AdminAccount(account): AdminAccount,
) -> Result<Response, TwilioError> {
    use crate::twilio::form::{Params, sid_uuid};
    use std::collections::BTreeMap;
    let params = Params::parse(query.unwrap_or_default().as_bytes());
    let time = |name: &str| -> Result<Option<otpd_core::Timestamp>, TwilioError> {
        Ok(params
            .int(name, 0, 100_000_000_000)?
            .map(|seconds| otpd_core::Timestamp(seconds * 1000)))
    };
    let service = match params.get("serviceSid") {
        None => None,
        Some(text) => Some(otpd_core::ServiceId::from_uuid(
            sid_uuid(text, "VA").ok_or_else(|| error::invalid("serviceSid"))?,
        )),
    };
    let group_by = params.get("groupBy").unwrap_or("channel");
    if !matches!(group_by, "channel" | "country" | "provider" | "service") {
        return Err(error::invalid_because(
            "groupBy",
            "channel, country, provider or service",
        ));
    }
    let (attempts, rollups) = state
        .verifier
        .manage()
        .report_sources(&otpd_core::events::AttemptFilter {
            account: Some(account),
            service,
            since: time("since")?,
            until: time("until")?,
            limit: REPORT_MAX_ATTEMPTS + 1,
            ..Default::default()
        })
        .await
        .map_err(error::internal)?;
    if attempts.len() > REPORT_MAX_ATTEMPTS as usize {
        return Err(error::invalid_because(
            "since",
            "the range holds more than 200,000 sends; narrow it",
        ));
    }
    // One row per verification: its sends and its state now.
    let mut verifications: BTreeMap<
        uuid::Uuid,
        (otpd_core::Verification, Vec<otpd_core::DeliveryAttempt>),
    > = BTreeMap::new();
    for (delivery, verification) in attempts {
        verifications
            .entry(verification.id.uuid())
            .or_insert_with(|| (verification, Vec::new()))
            .1
            .push(delivery);
    }
    #[derive(Default)]
    struct Group {
        failed: u64,
        sent: u64,
        success: u64,
        /// Seconds to approval, each with how many verifications took it.
        seconds_to_approve: Vec<(f64, u64)>,
    }
    let mut groups: BTreeMap<String, Group> = BTreeMap::new();
    // Days whose rows are purged answer from their rollups (whole seconds to approval).
    for rollup in rollups {
        let key = match group_by {
            "country" => rollup.country.unwrap_or_else(|| "none".to_string()),
            "provider" => rollup.provider.unwrap_or_else(|| "none".to_string()),
            "service" => format!("VA{}", rollup.service_id.simple()),
            _ => rollup.channel,
        };
        let group = groups.entry(key).or_default();
        group.failed += rollup.failed;
        group.sent += rollup.sent;
        group.success += rollup.success;
        if let Some(seconds) = rollup.approve_seconds {
            group
                .seconds_to_approve
                .push((seconds as f64, rollup.success));
        }
    }
    for (verification, sends) in verifications.values() {
        let key = match group_by {
            "country" => verification
                .country
                .map_or("none".to_string(), |c| c.as_str().to_string()),
            "provider" => sends
                .iter()
                .rev()
                .find_map(|d| d.provider.clone())
                .unwrap_or_else(|| "none".to_string()),
            "service" => format!("VA{}", verification.service_id.simple()),
            _ => verification.channel.as_str().to_string(),
        };
        let group = groups.entry(key).or_default();
        match otpd_core::TransmissionSummary::of(verification.status, sends) {
            otpd_core::TransmissionSummary::Failed => group.failed += 1,
            otpd_core::TransmissionSummary::Sent => group.sent += 1,
            otpd_core::TransmissionSummary::Success => {
                group.success += 1;
                group.seconds_to_approve.push((
                    (verification.updated_at.0 - verification.created_at.0) as f64 / 1000.0,
                    1,
                ));
            }
        }
    }
    let percentile = otpd_core::retention::weighted_percentile;
    let rows: Vec<Value> = groups
        .into_iter()
        .map(|(key, mut group)| {
            let total = group.failed + group.sent + group.success;
            let share = |n: u64| if total == 0 { 0.0 } else { n as f64 / total as f64 };
            json!({
                "group": key,
                "verifications": total,
                "FAILED": group.failed,
                "SENT": group.sent,
                "SUCCESS": group.success,
                "shares": {"FAILED": share(group.failed), "SENT": share(group.sent), "SUCCESS": share(group.success)},
                "secondsToApprove": {
                    "median": percentile(&mut group.seconds_to_approve, 0.5),
                    "p95": percentile(&mut group.seconds_to_approve, 0.95),
                },
            })
        })
        .collect();
    Ok(Json(json!({"groupBy": group_by, "groups": rows})).into_response())
}
