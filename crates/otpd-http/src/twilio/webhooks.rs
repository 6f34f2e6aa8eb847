//! Service webhooks the Twilio way (`/v2/Services/{Sid}/Webhooks`), over otpd's webhooks:
//! the same outbox, signature and retries as the admin API's. Event types are otpd's
//! (`verification.approved`, `delivery.sent`, …, or `*`); Twilio's factor/challenge types are
//! accepted and simply never fire, since otpd has no Push factors.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use otpd_core::events::Webhook;
use otpd_core::store::ServiceRecord;
use otpd_core::{Clock, Store};
use serde_json::{Value, json};

use super::error::{self, TwilioError};
use super::form::{Params, sid_uuid};
use super::wire::{account_sid, date, service_sid};
use super::{Acting, TwilioAccount, base_url, owned_service};
use crate::AppState;
use crate::admin::audit::record;
use otpd_core::audit::before_after;

fn webhook_json(base: &str, service: &ServiceRecord, webhook: &Webhook) -> Value {
    json!({
        "sid": format!("YW{}", webhook.id.simple()),
        "service_sid": service_sid(service),
        "account_sid": account_sid(service.account_id),
        "friendly_name": webhook.friendly_name,
        "event_types": webhook.event_types,
        "status": if webhook.enabled { "enabled" } else { "disabled" },
        "version": "v2",
        "webhook_url": webhook.url,
        "webhook_method": "POST",
        "date_created": date(webhook.created_at),
        "date_updated": date(webhook.updated_at),
        "url": format!("{base}/v2/Services/{}/Webhooks/YW{}", service_sid(service), webhook.id.simple()),
    })
}

fn event_types(params: &Params) -> Vec<String> {
    params
        .all("EventTypes")
        .into_iter()
        .flat_map(|v| {
            v.split(',')
                .map(|t| t.trim().to_string())
                .collect::<Vec<_>>()
        })
        .filter(|t| !t.is_empty())
        .collect()
}

fn status(params: &Params) -> Result<Option<bool>, TwilioError> {
    match params.get("Status") {
        None => Ok(None),
        Some("enabled") => Ok(Some(true)),
        Some("disabled") => Ok(Some(false)),
        Some(_) => Err(error::invalid("Status")),
    }
}

fn version(params: &Params) -> Result<(), TwilioError> {
    match params.get("Version") {
        None | Some("v1") | Some("v2") => Ok(()),
        Some(_) => Err(error::invalid("Version")),
    }
}

async fn find<S: Store + Clone, C: Clock + Clone>(
    state: &AppState<S, C>,
    service: &ServiceRecord,
    sid: &str,
    path: &str,
) -> Result<Webhook, TwilioError> {
    let id = sid_uuid(sid, "YW").ok_or_else(|| error::not_found(path))?;
    state
        .verifier
        .manage()
        .webhooks(service.id)
        .await
        .map_err(error::internal)?
        .into_iter()
        .find(|w| w.id == id)
        .ok_or_else(|| error::not_found(path))
}

/// `POST …/Webhooks`: `FriendlyName`, `EventTypes` (repeated), `WebhookUrl` required.
pub async fn create<S: Store + Clone, C: Clock + Clone>(
    State(state): State<AppState<S, C>>,
    headers: HeaderMap,
    Path(sid): Path<String>,
    TwilioAccount(account): TwilioAccount,
    Acting(by): Acting,
    body: Bytes,
) -> Result<Response, TwilioError> {
    let path = format!("/Services/{sid}/Webhooks");
    let service = owned_service(&state, account, &sid, &path).await?;
    let params = Params::parse(&body);
    let friendly_name = params.required("FriendlyName")?;
    if friendly_name.chars().count() > 64 {
        return Err(error::invalid_because(
            "FriendlyName",
            "at most 64 characters",
        ));
    }
    let types = event_types(&params);
    if types.is_empty() {
        return Err(error::missing("EventTypes"));
    }
    let url = super::form::webhook_url(
        &state.outbound,
        params.required("WebhookUrl")?,
        "WebhookUrl",
    )
    .await?;
    version(&params)?;
    let now = state.verifier.clock().now();
    let webhook = Webhook {
        id: uuid::Uuid::now_v7(),
        service_id: service.id,
        url,
        event_types: types,
        enabled: status(&params)?.unwrap_or(true),
        friendly_name: friendly_name.to_string(),
        created_at: now,
        updated_at: now,
    };
    state
        .verifier
        .manage()
        .create_webhook(&webhook)
        .await
        .map_err(error::internal)?;
    let summary = before_after(None, Some(&webhook_json("", &service, &webhook)));
    let target = format!("YW{}", webhook.id.simple());
    record(&state, &by, account, "webhook.create", target, summary).await?;
    let body = webhook_json(&base_url(&state, &headers), &service, &webhook);
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

/// `GET …/Webhooks`.
pub async fn list<S: Store + Clone, C: Clock + Clone>(
    State(state): State<AppState<S, C>>,
    headers: HeaderMap,
    Path(sid): Path<String>,
    TwilioAccount(account): TwilioAccount,
) -> Result<Response, TwilioError> {
    let path = format!("/Services/{sid}/Webhooks");
    let service = owned_service(&state, account, &sid, &path).await?;
    let base = base_url(&state, &headers);
    let items: Vec<Value> = state
        .verifier
        .manage()
        .webhooks(service.id)
        .await
        .map_err(error::internal)?
        .iter()
        .map(|w| webhook_json(&base, &service, w))
        .collect();
    let page_url = format!(
        "{base}/v2/Services/{}/Webhooks?PageSize=50&Page=0",
        service_sid(&service)
    );
    Ok(Json(json!({
        "webhooks": items,
        "meta": {"page": 0, "page_size": 50, "first_page_url": page_url, "previous_page_url": null,
                 "next_page_url": null, "key": "webhooks", "url": page_url},
    }))
    .into_response())
}

/// `GET …/Webhooks/{Sid}`.
pub async fn fetch<S: Store + Clone, C: Clock + Clone>(
    State(state): State<AppState<S, C>>,
    headers: HeaderMap,
    Path((sid, webhook_sid)): Path<(String, String)>,
    TwilioAccount(account): TwilioAccount,
) -> Result<Response, TwilioError> {
    let path = format!("/Services/{sid}/Webhooks/{webhook_sid}");
    let service = owned_service(&state, account, &sid, &path).await?;
    let webhook = find(&state, &service, &webhook_sid, &path).await?;
    Ok(Json(webhook_json(
        &base_url(&state, &headers),
        &service,
        &webhook,
    ))
    .into_response())
}

/// `POST …/Webhooks/{Sid}`: every parameter optional.
pub async fn update<S: Store + Clone, C: Clock + Clone>(
    State(state): State<AppState<S, C>>,
    headers: HeaderMap,
    Path((sid, webhook_sid)): Path<(String, String)>,
    TwilioAccount(account): TwilioAccount,
    Acting(by): Acting,
    body: Bytes,
) -> Result<Response, TwilioError> {
    let path = format!("/Services/{sid}/Webhooks/{webhook_sid}");
    let service = owned_service(&state, account, &sid, &path).await?;
    let mut webhook = find(&state, &service, &webhook_sid, &path).await?;
    let before = webhook_json("", &service, &webhook);
    let params = Params::parse(&body);
    if let Some(name) = params.text("FriendlyName", 64)? {
        webhook.friendly_name = name;
    }
    let types = event_types(&params);
    if !types.is_empty() {
        webhook.event_types = types;
    }
    if let Some(url) = params.get("WebhookUrl") {
        webhook.url = super::form::webhook_url(&state.outbound, url, "WebhookUrl").await?;
    }
    if let Some(enabled) = status(&params)? {
        webhook.enabled = enabled;
    }
    version(&params)?;
    webhook.updated_at = state.verifier.clock().now();
    if state
        .verifier
        .manage()
        .update_webhook(&webhook)
        .await
        .map_err(error::internal)?
    {
        let summary = before_after(Some(&before), Some(&webhook_json("", &service, &webhook)));
        let target = format!("YW{}", webhook.id.simple());
        record(&state, &by, account, "webhook.update", target, summary).await?;
    }
    Ok(Json(webhook_json(
        &base_url(&state, &headers),
        &service,
        &webhook,
    ))
    .into_response())
}

/// `DELETE …/Webhooks/{Sid}`.
pub async fn delete<S: Store + Clone, C: Clock + Clone>(
    State(state): State<AppState<S, C>>,
    Path((sid, webhook_sid)): Path<(String, String)>,
    TwilioAccount(account): TwilioAccount,
    Acting(by): Acting,
) -> Result<Response, TwilioError> {
    let path = format!("/Services/{sid}/Webhooks/{webhook_sid}");
    let service = owned_service(&state, account, &sid, &path).await?;
    let webhook = find(&state, &service, &webhook_sid, &path).await?;
    if state
        .verifier
        .manage()
        .delete_webhook(service.id, webhook.id)
        .await
        .map_err(error::internal)?
    {
        let summary = before_after(Some(&webhook_json("", &service, &webhook)), None);
        let target = format!("YW{}", webhook.id.simple());
        record(&state, &by, account, "webhook.delete", target, summary).await?;
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}
