//! `/admin/v1/services/{sid}/webhooks`: the webhooks subscribed to a service's events, and
//! each one's delivery log.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use otpd_core::{Clock, Store};
use serde_json::{Value, json};

use super::AdminAccount;
use super::schemas::{
    AdminError, NewWebhookRequest, WebhookDeliveryList, WebhookList, WebhookObject,
};
use super::strings;
use crate::AppState;
use crate::native::error::ErrorBody;
use crate::twilio::error::{self, TwilioError};
use crate::twilio::form::webhook_url;
use crate::twilio::owned_service;

fn webhook_json(
    state_signer: &otpd_core::auth::CallbackSigner,
    webhook: &otpd_core::events::Webhook,
) -> Value {
    json!({
        "id": format!("WH{}", webhook.id.simple()),
        "url": webhook.url,
        "eventTypes": webhook.event_types,
        "enabled": webhook.enabled,
        "friendlyName": webhook.friendly_name,
        "signingKey": state_signer.key_for(webhook.service_id),
        "createdAt": crate::twilio::wire::date(webhook.created_at),
    })
}

/// `POST /admin/v1/services/{sid}/webhooks` with `{url, eventTypes?, friendlyName?, enabled?}`.
#[utoipa::path(
    post,
    path = "/admin/v1/services/{sid}/webhooks",
    tag = "admin",
    summary = "Subscribe a webhook to a service's events",
    security(("accountBasic" = [])),
    params(("sid" = String, Path, description = "The service SID (`VA…`).")),
    request_body(content = NewWebhookRequest, content_type = "application/json"),
    responses(
        (status = 201, description = "The webhook, with its signing key.", body = WebhookObject),
        (status = 400, description = "20001: no `url`; 60200: a field is invalid or the body is not a JSON object.", body = AdminError),
        (status = 404, description = "20404: no such service of this account, or no such webhook.", body = AdminError),
        (status = 413, description = "`invalid_body` 1009 (native error body): the body is too large.", body = ErrorBody),
        (status = 401, description = "20003: missing or wrong HTTP Basic credentials.", body = AdminError),
        (status = 500, description = "20500.", body = AdminError),
        (status = 503, description = "20503: the database is unavailable.", body = AdminError),
    )
)]
pub(crate) async fn create_webhook<S: Store + Clone, C: Clock + Clone>(
    State(state): State<AppState<S, C>>,
    Path(sid): Path<String>,
    AdminAccount(account): AdminAccount,
    crate::twilio::Acting(by): crate::twilio::Acting,
    body: Bytes,
) -> Result<Response, TwilioError> {
    let path = format!("/admin/v1/services/{sid}/webhooks");
    let service = owned_service(&state, account, &sid, &path).await?;
    let Ok(Value::Object(fields)) = serde_json::from_slice::<Value>(&body) else {
        return Err(error::invalid_because("body", "expected a JSON object"));
    };
    let url = match fields.get("url") {
        Some(Value::String(url)) => webhook_url(&state.outbound, url, "url").await?,
        _ => return Err(error::missing("url")),
    };
    let event_types = strings(&fields, "eventTypes")?.unwrap_or_else(|| vec!["*".into()]);
    if event_types
        .iter()
        .any(|t| t.is_empty() || t.len() > 64 || t.contains(','))
    {
        return Err(error::invalid_because(
            "eventTypes",
            "event type names such as verification.approved, or *",
        ));
    }
    let friendly_name = match fields.get("friendlyName") {
        None => "webhook".to_string(),
        Some(Value::String(name)) if name.chars().count() <= 64 => name.clone(),
        Some(_) => {
            return Err(error::invalid_because(
                "friendlyName",
                "at most 64 characters",
            ));
        }
    };
    let enabled = match fields.get("enabled") {
        None => true,
        Some(Value::Bool(b)) => *b,
        Some(_) => return Err(error::invalid_because("enabled", "expected true or false")),
    };
    let now = state.verifier.clock().now();
    let webhook = otpd_core::events::Webhook {
        id: uuid::Uuid::now_v7(),
        service_id: service.id,
        url,
        event_types,
        enabled,
        friendly_name,
        created_at: now,
        updated_at: now,
    };
    state
        .verifier
        .manage()
        .create_webhook(&webhook)
        .await
        .map_err(error::internal)?;
    let shown = webhook_json(&state.signer, &webhook);
    let summary = otpd_core::audit::before_after(None, Some(&shown));
    let target = format!("WH{}", webhook.id.simple());
    super::audit::record(&state, &by, account, "webhook.create", target, summary).await?;
    Ok((
        StatusCode::CREATED,
        Json(webhook_json(&state.signer, &webhook)),
    )
        .into_response())
}

/// `GET /admin/v1/services/{sid}/webhooks`.
#[utoipa::path(
    get,
    path = "/admin/v1/services/{sid}/webhooks",
    tag = "admin",
    summary = "List a service's webhooks",
    security(("accountBasic" = [])),
    params(("sid" = String, Path, description = "The service SID (`VA…`).")),
    responses(
        (status = 200, description = "The webhooks.", body = WebhookList),
        (status = 404, description = "20404: no such service of this account, or no such webhook.", body = AdminError),
        (status = 401, description = "20003: missing or wrong HTTP Basic credentials.", body = AdminError),
        (status = 500, description = "20500.", body = AdminError),
        (status = 503, description = "20503: the database is unavailable.", body = AdminError),
    )
)]
pub(crate) async fn list_webhooks<S: Store + Clone, C: Clock + Clone>(
    State(state): State<AppState<S, C>>,
    Path(sid): Path<String>,
    AdminAccount(account): AdminAccount,
) -> Result<Response, TwilioError> {
    let path = format!("/admin/v1/services/{sid}/webhooks");
    let service = owned_service(&state, account, &sid, &path).await?;
    let list = state
        .verifier
        .manage()
        .webhooks(service.id)
        .await
        .map_err(error::internal)?;
    let items: Vec<Value> = list
        .iter()
        .map(|w| webhook_json(&state.signer, w))
        .collect();
    Ok(Json(json!({ "webhooks": items })).into_response())
}

fn webhook_id(text: &str, path: &str) -> Result<uuid::Uuid, TwilioError> {
    crate::twilio::form::sid_uuid(text, "WH")
        .or_else(|| crate::twilio::form::sid_uuid(text, "YW"))
        .ok_or_else(|| error::not_found(path))
}

/// `DELETE /admin/v1/services/{sid}/webhooks/{id}`.
#[utoipa::path(
    delete,
    path = "/admin/v1/services/{sid}/webhooks/{id}",
    tag = "admin",
    summary = "Delete a webhook and its pending posts",
    security(("accountBasic" = [])),
    params(("sid" = String, Path, description = "The service SID (`VA…`)."), ("id" = String, Path, description = "The webhook id (`WH…`).")),
    responses(
        (status = 204, description = "Deleted."),
        (status = 404, description = "20404: no such service of this account, or no such webhook.", body = AdminError),
        (status = 401, description = "20003: missing or wrong HTTP Basic credentials.", body = AdminError),
        (status = 500, description = "20500.", body = AdminError),
        (status = 503, description = "20503: the database is unavailable.", body = AdminError),
    )
)]
pub(crate) async fn delete_webhook<S: Store + Clone, C: Clock + Clone>(
    State(state): State<AppState<S, C>>,
    Path((sid, id)): Path<(String, String)>,
    AdminAccount(account): AdminAccount,
    crate::twilio::Acting(by): crate::twilio::Acting,
) -> Result<Response, TwilioError> {
    let path = format!("/admin/v1/services/{sid}/webhooks/{id}");
    let service = owned_service(&state, account, &sid, &path).await?;
    let id = webhook_id(&id, &path)?;
    let deleted = state
        .verifier
        .manage()
        .delete_webhook(service.id, id)
        .await
        .map_err(error::internal)?;
    if !deleted {
        return Err(error::not_found(&path));
    }
    let summary = json!({"before": {"serviceSid": format!("VA{}", service.id.simple())}});
    let target = format!("WH{}", id.simple());
    super::audit::record(&state, &by, account, "webhook.delete", target, summary).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `GET /admin/v1/services/{sid}/webhooks/{id}/deliveries`: the delivery log, newest first.
#[utoipa::path(
    get,
    path = "/admin/v1/services/{sid}/webhooks/{id}/deliveries",
    tag = "admin",
    summary = "A webhook's delivery log, newest first",
    security(("accountBasic" = [])),
    params(("sid" = String, Path, description = "The service SID (`VA…`)."), ("id" = String, Path, description = "The webhook id (`WH…`).")),
    responses(
        (status = 200, description = "The log.", body = WebhookDeliveryList),
        (status = 404, description = "20404: no such service of this account, or no such webhook.", body = AdminError),
        (status = 401, description = "20003: missing or wrong HTTP Basic credentials.", body = AdminError),
        (status = 500, description = "20500.", body = AdminError),
        (status = 503, description = "20503: the database is unavailable.", body = AdminError),
    )
)]
pub(crate) async fn webhook_deliveries<S: Store + Clone, C: Clock + Clone>(
    State(state): State<AppState<S, C>>,
    Path((sid, id)): Path<(String, String)>,
    AdminAccount(account): AdminAccount,
) -> Result<Response, TwilioError> {
    let path = format!("/admin/v1/services/{sid}/webhooks/{id}/deliveries");
    let service = owned_service(&state, account, &sid, &path).await?;
    let id = webhook_id(&id, &path)?;
    let owned = state
        .verifier
        .manage()
        .webhooks(service.id)
        .await
        .map_err(error::internal)?
        .iter()
        .any(|w| w.id == id);
    if !owned {
        return Err(error::not_found(&path));
    }
    let log = state
        .verifier
        .manage()
        .webhook_log(id, 200)
        .await
        .map_err(error::internal)?;
    let items: Vec<Value> = log
        .iter()
        .map(|entry| {
            json!({
                "eventId": format!("EV{}", entry.event_id.simple()),
                "eventType": entry.event_type,
                "state": entry.state,
                "attempts": entry.attempts,
                "lastStatus": entry.last_status,
                "lastLatencyMs": entry.last_latency_ms,
                "lastError": entry.last_error,
                "nextAttemptAt": entry.next_attempt_at.map(crate::twilio::wire::date),
                "updatedAt": crate::twilio::wire::date(entry.updated_at),
            })
        })
        .collect();
    Ok(Json(json!({ "deliveries": items })).into_response())
}
