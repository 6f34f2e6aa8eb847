//! `/admin/v1/events`: an account's stored events, oldest first, paged by event id.

use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use otpd_core::{Clock, Store};
use serde_json::{Value, json};

use super::AdminAccount;
use super::schemas::{AdminError, EventPage};
use crate::AppState;
use crate::twilio::error::{self, TwilioError};

/// `GET /admin/v1/events?serviceSid=&verificationSid=&type=&since=&until=&pageToken=&pageSize=`:
/// the account's events, oldest first; `nextPageToken` continues after the last one.
#[utoipa::path(
    get,
    path = "/admin/v1/events",
    tag = "admin",
    summary = "List the account's events, oldest first",
    security(("accountBasic" = [])),
    params(("serviceSid" = Option<String>, Query, description = "`VA…`"), ("verificationSid" = Option<String>, Query, description = "`VE…` or a native `otpId`"), ("type" = Option<String>, Query, description = "An event type"), ("since" = Option<i64>, Query, description = "Unix seconds"), ("until" = Option<i64>, Query, description = "Unix seconds"), ("pageSize" = Option<u32>, Query, description = "1–1000, default 100"), ("pageToken" = Option<String>, Query, description = "The previous page's `nextPageToken`")),
    responses(
        (status = 200, description = "A page of events.", body = EventPage),
        (status = 400, description = "60200: a parameter is malformed or out of range.", body = AdminError),
        (status = 401, description = "20003: missing or wrong HTTP Basic credentials.", body = AdminError),
        (status = 500, description = "20500.", body = AdminError),
        (status = 503, description = "20503: the database is unavailable.", body = AdminError),
    )
)]
pub(crate) async fn events<S: Store + Clone, C: Clock + Clone>(
    State(state): State<AppState<S, C>>,
    axum::extract::RawQuery(query): axum::extract::RawQuery,
    AdminAccount(account): AdminAccount,
) -> Result<Response, TwilioError> {
    use crate::twilio::form::{Params, sid_uuid};
    let params = Params::parse(query.unwrap_or_default().as_bytes());
    let uuid_param = |name: &str, prefix: &str| -> Result<Option<uuid::Uuid>, TwilioError> {
        match params.get(name) {
            None => Ok(None),
            Some(text) => sid_uuid(text, prefix)
                .or_else(|| uuid::Uuid::parse_str(text).ok())
                .map(Some)
                .ok_or_else(|| error::invalid(name)),
        }
    };
    let time = |name: &str| -> Result<Option<otpd_core::Timestamp>, TwilioError> {
        Ok(params
            .int(name, 0, 100_000_000_000)?
            .map(|seconds| otpd_core::Timestamp(seconds * 1000)))
    };
    let limit = params.int("pageSize", 1, 1000)?.unwrap_or(100) as u32;
    let filter = otpd_core::events::EventFilter {
        account,
        service: uuid_param("serviceSid", "VA")?.map(otpd_core::ServiceId::from_uuid),
        verification: uuid_param("verificationSid", "VE")?
            .map(otpd_core::VerificationId::from_uuid),
        kind: params.get("type").map(str::to_string),
        since: time("since")?,
        until: time("until")?,
        after: uuid_param("pageToken", "EV")?,
        limit,
    };
    let events = state
        .verifier
        .manage()
        .events(&filter)
        .await
        .map_err(error::internal)?;
    let next = (events.len() == limit as usize)
        .then(|| events.last().map(|e| format!("EV{}", e.id.simple())))
        .flatten();
    let items: Vec<Value> = events
        .iter()
        .map(|e| {
            json!({
                "id": format!("EV{}", e.id.simple()),
                "type": e.kind,
                "serviceSid": format!("VA{}", e.service_id.simple()),
                "verificationSid": e.verification_id.map(|v| format!("VE{}", v.simple())),
                "createdAt": crate::twilio::wire::date(e.created_at),
                "data": e.data,
            })
        })
        .collect();
    Ok(Json(json!({"events": items, "nextPageToken": next})).into_response())
}
