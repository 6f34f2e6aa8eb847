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

/// Most verifications a report reads (a larger range answers 400: narrow it).
const REPORT_MAX_VERIFICATIONS: u32 = 200_000;

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
        (status = 400, description = "60200: a parameter is malformed, or the range holds more than 200,000 verifications with sends.", body = AdminError),
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
    let (rows, rollups) = state
        .verifier
        .manage()
        .report_sources(&otpd_core::events::AttemptFilter {
            account: Some(account),
            service,
            since: time("since")?,
            until: time("until")?,
            limit: REPORT_MAX_VERIFICATIONS + 1,
            ..Default::default()
        })
        .await
        .map_err(error::internal)?;
    if rows.len() > REPORT_MAX_VERIFICATIONS as usize {
        return Err(error::invalid_because(
            "since",
            "the range holds more than 200,000 verifications; narrow it",
        ));
    }
    let by =
        otpd_core::report::GroupBy::parse(group_by).unwrap_or(otpd_core::report::GroupBy::Channel);
    let rows: Vec<Value> = otpd_core::report::lifecycle(&rows, &rollups, by)
        .into_iter()
        .map(|group| {
            json!({
                "group": group.key,
                "verifications": group.total(),
                "FAILED": group.failed,
                "SENT": group.sent,
                "SUCCESS": group.success,
                "shares": {"FAILED": group.share(group.failed), "SENT": group.share(group.sent), "SUCCESS": group.share(group.success)},
                "secondsToApprove": {
                    "median": group.median_seconds_to_approve,
                    "p95": group.p95_seconds_to_approve,
                },
            })
        })
        .collect();
    Ok(Json(json!({"groupBy": group_by, "groups": rows})).into_response())
}
