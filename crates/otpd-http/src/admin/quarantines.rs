//! `/admin/v1/quarantines`: the SMS-pumping quarantines of an account's services (listed and
//! lifted here) and the server-wide ones (listed, read-only).

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use otpd_core::store::Quarantine;
use otpd_core::{Clock, ServiceId, Store};
use serde_json::{Value, json};

use super::AdminAccount;
use super::schemas::{AdminError, QuarantineList};
use crate::AppState;
use crate::twilio::error::{self, TwilioError};
use crate::twilio::owned_service;

fn quarantine_json(q: &Quarantine) -> Value {
    json!({
        "prefix": q.prefix,
        "scope": if q.service.is_some() { "service" } else { "server" },
        "serviceSid": q.service.map(|id| format!("VA{}", id.simple())),
        "reason": q.reason,
        "until": crate::twilio::wire::date(q.until),
        "createdAt": crate::twilio::wire::date(q.created_at),
    })
}

/// `GET /admin/v1/quarantines`: the prefixes quarantined now for the caller's services, and
/// the server-wide ones (read-only), newest first.
#[utoipa::path(
    get,
    path = "/admin/v1/quarantines",
    tag = "admin",
    summary = "List the quarantined number prefixes of the account's services",
    description = "Each item has `scope`: `service` (the account's own service, `serviceSid`; it may lift it) or `server` (set by the operator for every service; only the operator lifts it). Other accounts' quarantines are never listed.",
    security(("accountBasic" = [])),
    responses(
        (status = 200, description = "The quarantines, newest first.", body = QuarantineList),
        (status = 401, description = "20003: missing or wrong HTTP Basic credentials.", body = AdminError),
        (status = 500, description = "20500.", body = AdminError),
        (status = 503, description = "20503: the database is unavailable.", body = AdminError),
    )
)]
pub(crate) async fn quarantines<S: Store + Clone, C: Clock + Clone>(
    State(state): State<AppState<S, C>>,
    AdminAccount(account): AdminAccount,
) -> Result<Response, TwilioError> {
    let list = state
        .verifier
        .manage()
        .quarantines_of(account, false)
        .await
        .map_err(error::internal)?;
    let items: Vec<Value> = list.iter().map(quarantine_json).collect();
    Ok(Json(json!({ "quarantines": items })).into_response())
}

/// `DELETE /admin/v1/quarantines/{prefix}?serviceSid=VA…`: lifts the prefix's quarantine of
/// one of the caller's services (`serviceSid`), or of all of them (204); 404 when the caller
/// has none (another account's and server-wide quarantines are never lifted here).
#[utoipa::path(
    delete,
    path = "/admin/v1/quarantines/{prefix}",
    tag = "admin",
    summary = "Lift a quarantine of the account's services",
    security(("accountBasic" = [])),
    params(
        ("prefix" = String, Path, description = "The prefix, `+` and digits (URL-encode the `+` as `%2B`)."),
        ("serviceSid" = Option<String>, Query, description = "`VA…`: lift the quarantine of this service only; without it, of every service of the account."),
    ),
    responses(
        (status = 204, description = "Lifted."),
        (status = 400, description = "60200: `serviceSid` is not a `VA…` SID.", body = AdminError),
        (status = 404, description = "20404: none of the account's services has this prefix quarantined (another account's or a server-wide quarantine is not the account's to lift).", body = AdminError),
        (status = 401, description = "20003: missing or wrong HTTP Basic credentials.", body = AdminError),
        (status = 500, description = "20500.", body = AdminError),
        (status = 503, description = "20503: the database is unavailable.", body = AdminError),
    )
)]
pub(crate) async fn lift<S: Store + Clone, C: Clock + Clone>(
    State(state): State<AppState<S, C>>,
    Path(prefix): Path<String>,
    axum::extract::RawQuery(query): axum::extract::RawQuery,
    AdminAccount(account): AdminAccount,
    crate::twilio::Acting(by): crate::twilio::Acting,
) -> Result<Response, TwilioError> {
    use crate::twilio::form::{Params, sid_uuid};
    let path = format!("/admin/v1/quarantines/{prefix}");
    let params = Params::parse(query.unwrap_or_default().as_bytes());
    let services: Vec<ServiceId> = match params.get("serviceSid") {
        Some(sid) => {
            sid_uuid(sid, "VA").ok_or_else(|| error::invalid("serviceSid"))?;
            vec![owned_service(&state, account, sid, &path).await?.id]
        }
        None => state
            .verifier
            .manage()
            .quarantines_of(account, true)
            .await
            .map_err(error::internal)?
            .into_iter()
            .filter(|q| q.prefix == prefix)
            .filter_map(|q| q.service)
            .collect(),
    };
    let mut lifted = Vec::new();
    for service in services {
        if state
            .verifier
            .manage()
            .lift_quarantine(&prefix, service)
            .await
            .map_err(error::internal)?
        {
            lifted.push(service);
        }
    }
    if lifted.is_empty() {
        return Err(error::not_found(&path));
    }
    for service in lifted {
        tracing::warn!(prefix = %prefix, service = %service, "quarantine lifted through the admin API");
        let summary = serde_json::json!({
            "before": {"prefix": prefix, "serviceSid": format!("VA{}", service.simple())}
        });
        super::audit::record(&state, &by, account, "quarantine.lift", &prefix, summary).await?;
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}
