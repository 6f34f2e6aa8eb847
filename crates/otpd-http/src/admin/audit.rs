//! `/admin/v1/audit`: the account's audit log, newest first, and [`record`], which the
//! handlers that change something call once the change succeeded.

use axum::Json;
use axum::extract::{RawQuery, State};
use axum::response::{IntoResponse, Response};
use otpd_core::audit::{ActedBy, AuditEntry, AuditFilter};
use otpd_core::{AccountId, Clock, Store, Timestamp};
use serde_json::{Value, json};

use super::AdminAccount;
use super::schemas::{AdminError, AuditPage};
use crate::AppState;
use crate::twilio::error::{self, TwilioError};
use crate::twilio::form::Params;

/// Appends the audit entry of a change that succeeded: `action` on `target` of `account`, by
/// `by`. A failure to append is logged and answered 500 (the change itself stays made).
pub(crate) async fn record<S: Store + Clone, C: Clock + Clone>(
    state: &AppState<S, C>,
    by: &ActedBy,
    account: AccountId,
    action: &str,
    target: impl Into<String>,
    summary: Value,
) -> Result<(), TwilioError> {
    let target = target.into();
    match state
        .verifier
        .manage()
        .record(by, Some(account), action, target.clone(), summary)
        .await
    {
        Ok(_) => Ok(()),
        Err(cause) => {
            tracing::error!(%action, %target, error = %cause, "a change was made but its audit entry could not be written");
            Err(error::internal(cause))
        }
    }
}

/// An entry as the admin API shows it.
pub fn entry_json(entry: &AuditEntry) -> Value {
    json!({
        "id": entry.id.to_string(),
        "position": entry.seq,
        "at": crate::rfc3339(entry.at),
        "actor": {"kind": entry.actor.kind(), "id": entry.actor.id()},
        "source": entry.source,
        "action": entry.action,
        "target": entry.target,
        "summary": entry.summary,
        "hash": hex::encode(entry.hash),
        "prevHash": hex::encode(entry.prev_hash),
    })
}

/// An RFC 3339 time parameter (400 60200 naming it otherwise).
fn time(params: &Params, name: &str) -> Result<Option<Timestamp>, TwilioError> {
    let Some(text) = params.get(name) else {
        return Ok(None);
    };
    time::OffsetDateTime::parse(text.trim(), &time::format_description::well_known::Rfc3339)
        .map(|t| Some(Timestamp((t.unix_timestamp_nanos() / 1_000_000) as i64)))
        .map_err(|_| error::invalid_because(name, "expected an RFC 3339 time"))
}

/// `GET /admin/v1/audit?action=&target=&actor=&since=&until=&pageSize=&pageToken=`: the
/// account's audit entries, newest first; `nextPageToken` continues with older ones.
#[utoipa::path(
    get,
    path = "/admin/v1/audit",
    tag = "admin",
    summary = "List the account's audit log, newest first",
    description = "Every change made to the account's resources (services, rate limits, buckets, webhooks, the safe list, protection settings, quarantines, credentials) through the APIs or the command line. Reads are not listed.",
    security(("accountBasic" = [])),
    params(("action" = Option<String>, Query, description = "An action, e.g. `service.update`"), ("target" = Option<String>, Query, description = "A resource, e.g. `VA…`"), ("actor" = Option<String>, Query, description = "An actor id: `AC…`, `SK…`, a CLI user"), ("since" = Option<String>, Query, description = "RFC 3339, inclusive"), ("until" = Option<String>, Query, description = "RFC 3339, exclusive"), ("pageSize" = Option<u32>, Query, description = "1–1000, default 50"), ("pageToken" = Option<String>, Query, description = "The previous page's `nextPageToken`")),
    responses(
        (status = 200, description = "A page of entries.", body = AuditPage),
        (status = 400, description = "60200: a parameter is malformed or out of range.", body = AdminError),
        (status = 401, description = "20003: missing or wrong HTTP Basic credentials.", body = AdminError),
        (status = 500, description = "20500.", body = AdminError),
        (status = 503, description = "20503: the database is unavailable.", body = AdminError),
    )
)]
pub(crate) async fn audit<S: Store + Clone, C: Clock + Clone>(
    State(state): State<AppState<S, C>>,
    RawQuery(query): RawQuery,
    AdminAccount(account): AdminAccount,
) -> Result<Response, TwilioError> {
    let params = Params::parse(query.unwrap_or_default().as_bytes());
    let limit = params.int("pageSize", 1, 1000)?.unwrap_or(50) as u32;
    let after = match params.get("pageToken") {
        None => None,
        Some(token) => Some(
            uuid::Uuid::try_parse(token.trim())
                .map_err(|_| error::invalid_because("pageToken", "not a page token"))?,
        ),
    };
    let text = |name: &str| params.text(name, 200);
    let filter = AuditFilter {
        account: Some(account),
        actor: text("actor")?,
        action: text("action")?,
        target: text("target")?,
        since: time(&params, "since")?,
        until: time(&params, "until")?,
        after,
        limit,
    };
    let entries = state
        .verifier
        .manage()
        .audit(&filter)
        .await
        .map_err(error::internal)?;
    let next = (entries.len() == limit as usize)
        .then(|| entries.last().map(|e| e.id.to_string()))
        .flatten();
    let items: Vec<Value> = entries.iter().map(entry_json).collect();
    Ok(Json(json!({"entries": items, "nextPageToken": next})).into_response())
}
