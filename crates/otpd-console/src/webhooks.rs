//! Webhooks: every service's subscriptions and each one's delivery log (newest first, with
//! the last answer and error).

use askama::Template;
use axum::extract::{Path, State};
use axum::response::Response;
use otpd_core::store::OperatorStore;
use otpd_core::{Clock, ServiceId, Store};

use crate::render::{Chrome, When, show, when};
use crate::session::Signed;
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
        chrome: Chrome::new(&signed, state.dev_mode, "webhooks"),
        id,
        url: hook.url,
        service: record.name,
        posts,
    })
}
