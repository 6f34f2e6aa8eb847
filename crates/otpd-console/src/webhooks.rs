//! Webhooks: every service's subscriptions and each one's delivery log (newest first, with
//! the last answer and error).

use askama::Template;
use axum::Form;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use otpd_core::operators::Permission;
use otpd_core::store::OperatorStore;
use otpd_core::{Clock, ServiceId, Store};

use crate::render::{Chrome, When, show, when};
use crate::session::{Fields, Signed};
use crate::verifications::sid_uuid;
use crate::{ConsoleError, ConsoleState};

/// Log rows shown per webhook.
const LOG_ROWS: u32 = 200;

pub struct HookRow {
    pub service_sid: String,
    pub service: String,
    pub id: String,
    pub name: String,
    pub url: String,
    pub events: String,
    pub enabled: bool,
}

#[derive(Template)]
#[template(path = "webhooks.html")]
struct ListPage {
    chrome: Chrome,
    hooks: Vec<HookRow>,
}

/// `GET /console/webhooks`.
pub async fn page<S, C>(
    State(state): State<ConsoleState<S, C>>,
    signed: Signed,
) -> Result<Response, ConsoleError>
where
    S: Store + OperatorStore + Clone,
    C: Clock + Clone,
{
    let manage = state.verifier.manage();
    let mut hooks = Vec::new();
    for account in manage.accounts().await? {
        for service in manage.services(account.id, None, 1000).await? {
            for hook in manage.webhooks(service.id).await? {
                hooks.push(HookRow {
                    service_sid: format!("VA{}", service.id.simple()),
                    service: service.name.clone(),
                    id: format!("WH{}", hook.id.simple()),
                    name: hook.friendly_name,
                    url: hook.url,
                    events: hook.event_types.join(", "),
                    enabled: hook.enabled,
                });
            }
        }
    }
    crate::render::show(ListPage {
        chrome: Chrome::new(&signed, state.dev_mode, "webhooks"),
        hooks,
    })
}

pub struct PostRow {
    /// The event's id (the replay form's field).
    pub event_id: String,
    pub at: When,
    pub event: String,
    pub state: String,
    pub attempts: u32,
    pub status: String,
    pub latency: String,
    pub error: String,
}

#[derive(Template)]
#[template(path = "webhook.html")]
struct LogPage {
    chrome: Chrome,
    service_sid: String,
    can_replay: bool,
    id: String,
    url: String,
    service: String,
    posts: Vec<PostRow>,
}

/// `GET /console/webhooks/{VA…}/{WH…}`: the delivery log.
pub async fn log<S, C>(
    State(state): State<ConsoleState<S, C>>,
    signed: Signed,
    Path((service_sid, id)): Path<(String, String)>,
    Query(query): Query<std::collections::HashMap<String, String>>,
) -> Result<Response, ConsoleError>
where
    S: Store + OperatorStore + Clone,
    C: Clock + Clone,
{
    let service = sid_uuid(&service_sid, "VA")
        .map(ServiceId::from_uuid)
        .ok_or(ConsoleError::NotFound)?;
    let hook_id = sid_uuid(&id, "WH").ok_or(ConsoleError::NotFound)?;
    let manage = state.verifier.manage();
    let record = manage
        .service(service)
        .await?
        .ok_or(ConsoleError::NotFound)?;
    let hook = manage
        .webhooks(service)
        .await?
        .into_iter()
        .find(|h| h.id == hook_id)
        .ok_or(ConsoleError::NotFound)?;
    let posts = manage
        .webhook_log(hook_id, LOG_ROWS)
        .await?
        .into_iter()
        .map(|entry| PostRow {
            event_id: entry.event_id.to_string(),
            at: when(entry.updated_at),
            event: entry.event_type,
            state: entry.state,
            attempts: entry.attempts,
            status: entry.last_status.map(|s| s.to_string()).unwrap_or_default(),
            latency: entry
                .last_latency_ms
                .map(|ms| format!("{ms} ms"))
                .unwrap_or_default(),
            error: entry.last_error.unwrap_or_default(),
        })
        .collect();
    show(LogPage {
        chrome: Chrome::new(&signed, state.dev_mode, "webhooks")
            .with_notice(query.get("done").map(String::as_str)),
        service_sid,
        can_replay: signed.may(Permission::ManageWebhooks),
        id,
        url: hook.url,
        service: record.name,
        posts,
    })
}

/// `POST /console/webhooks/{VA…}/{WH…}/replay` with `event`: posts a failed delivery again
/// (admins).
pub async fn replay<S, C>(
    State(state): State<ConsoleState<S, C>>,
    signed: Signed,
    Path((service_sid, id)): Path<(String, String)>,
    Form(form): Form<Fields>,
) -> Result<Response, ConsoleError>
where
    S: Store + OperatorStore + Clone,
    C: Clock + Clone,
{
    signed.post(&form, Permission::ManageWebhooks)?;
    let service = sid_uuid(&service_sid, "VA")
        .map(ServiceId::from_uuid)
        .ok_or(ConsoleError::NotFound)?;
    let hook_id = sid_uuid(&id, "WH").ok_or(ConsoleError::NotFound)?;
    let event = form
        .get("event")
        .and_then(|e| uuid::Uuid::parse_str(e.trim()).ok())
        .ok_or_else(|| ConsoleError::BadRequest("event: not an event id.".into()))?;
    let manage = state.verifier.manage();
    let record = manage
        .service(service)
        .await?
        .ok_or(ConsoleError::NotFound)?;
    if !manage
        .webhooks(service)
        .await?
        .iter()
        .any(|h| h.id == hook_id)
    {
        return Err(ConsoleError::NotFound);
    }
    if !manage.replay_webhook_post(hook_id, event).await? {
        return Err(ConsoleError::BadRequest(
            "Only a failed post can be replayed; this one is pending or delivered.".into(),
        ));
    }
    manage
        .record(
            &signed.acted_by(),
            Some(record.account_id),
            "webhook.replay",
            id.clone(),
            serde_json::json!({"event": event.to_string()}),
        )
        .await?;
    Ok(Redirect::to(&format!(
        "/console/webhooks/{service_sid}/{id}?done=replayed"
    ))
    .into_response())
}
