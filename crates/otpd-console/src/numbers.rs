//! A number's (or an address's) timeline: every verification to it and every event of each,
//! refused starts included, in time order, in words — what support reads to answer "why
//! didn't my code arrive?". Never a code.

use std::collections::HashMap;

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use otpd_core::events::Event;
use otpd_core::operators::Permission;
use otpd_core::store::OperatorStore;
use otpd_core::{AccountId, Clock, Recipient, ServiceId, Store};
use serde_json::Value;

use crate::explain::{error_meaning, refusal_meaning};
use crate::render::{Chrome, When, segment, show, shown, when};
use crate::session::Signed;
use crate::{ConsoleError, ConsoleState};

/// `GET /console/search?q=`: to the timeline of the destination typed.
pub async fn search(Query(query): Query<HashMap<String, String>>) -> Response {
    let q = query.get("q").map(|q| q.trim()).unwrap_or_default();
    if q.is_empty() {
        return Redirect::to("/console/").into_response();
    }
    let to = match Recipient::parse(q, None) {
        Ok((recipient, _)) => recipient.as_str().to_string(),
        Err(_) => q.to_string(),
    };
    Redirect::to(&format!("/console/numbers/{}", segment(&to))).into_response()
}

/// One line of the timeline.
pub struct Entry {
    /// The event type (`delivery.provider_failed`, …): the page's `data-kind`.
    pub kind: String,
    pub at: When,
    /// What happened, in a sentence.
    pub title: String,
    /// The numbers behind it (provider, message id, error code and meaning).
    pub detail: String,
    /// `ok`, `bad` or `info`: the marker's colour, doubled by its icon and words.
    pub tone: &'static str,
    /// The verification it belongs to (`VE…`), if any.
    pub verification: Option<String>,
}

/// One verification to the destination, for the summary table.
pub struct Row {
    pub sid: String,
    pub service: String,
    pub channel: String,
    pub status: String,
    pub at: When,
}

#[derive(Template)]
#[template(path = "numbers.html")]
struct TimelinePage {
    chrome: Chrome,
    to: String,
    entries: Vec<Entry>,
    verifications: Vec<Row>,
    /// Accounts whose safe list holds the number.
    safe_listed: usize,
    /// Accounts whose starts to it were refused and whose safe list does not hold it: a
    /// button each (support and admins).
    can_safe_list: Vec<(String, String)>,
    phone: bool,
}

/// `GET /console/numbers/{to}`.
pub async fn timeline<S, C>(
    State(state): State<ConsoleState<S, C>>,
    signed: Signed,
    Path(text): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Response, ConsoleError>
where
    S: Store + OperatorStore + Clone,
    C: Clock + Clone,
{
    let (to, _) = Recipient::parse(&text, None).map_err(|_| {
        ConsoleError::BadRequest(
            "Type a phone number in international format (+14155550100) or an email address."
                .into(),
        )
    })?;
    let manage = state.verifier.manage();
    let records = manage.destination_records(None, &to).await?;
    let mut services: HashMap<ServiceId, Option<(String, AccountId)>> = HashMap::new();
    let mut service_of =
        async |id: ServiceId| -> Result<Option<(String, AccountId)>, ConsoleError> {
            if let Some(known) = services.get(&id) {
                return Ok(known.clone());
            }
            let found = manage.service(id).await?.map(|s| (s.name, s.account_id));
            services.insert(id, found.clone());
            Ok(found)
        };
    let mut events: Vec<&Event> = Vec::new();
    let mut rows = Vec::new();
    for item in &records.verifications {
        let v = &item.verification;
        let service = service_of(v.service_id)
            .await?
            .map_or_else(|| "(deleted service)".to_string(), |(name, _)| name);
        rows.push(Row {
            sid: format!("VE{}", v.id.simple()),
            service,
            channel: v.channel.as_str().to_string(),
            status: v.status.as_str().to_string(),
            at: when(v.created_at),
        });
        events.extend(item.events.iter());
    }
    events.extend(records.blocked_starts.iter());
    events.sort_by_key(|event| (event.created_at, event.id));
    let mut refused_accounts: Vec<AccountId> = Vec::new();
    for event in &records.blocked_starts {
        if let Some((_, account)) = service_of(event.service_id).await?
            && !refused_accounts.contains(&account)
        {
            refused_accounts.push(account);
        }
    }
    let listed: Vec<AccountId> = records.safe_list.iter().map(|s| s.account).collect();
    let phone = matches!(to, Recipient::Phone(_));
    let can_safe_list = if phone && signed.may(Permission::AddSafeNumber) {
        refused_accounts
            .into_iter()
            .filter(|account| !listed.contains(account))
            .map(|account| (format!("AC{}", account.simple()), account.to_string()))
            .collect()
    } else {
        Vec::new()
    };
    let entries = events.into_iter().map(entry).collect();
    let chrome = Chrome::new(&signed, state.dev_mode, "numbers")
        .with_notice(query.get("done").map(String::as_str));
    show(TimelinePage {
        chrome,
        to: shown(&signed, &to),
        entries,
        verifications: rows,
        safe_listed: listed.len(),
        can_safe_list,
        phone,
    })
}

fn text<'a>(data: &'a Value, name: &str) -> Option<&'a str> {
    data.get(name)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
}

fn code_words(data: &Value) -> String {
    match text(data, "errorCode") {
        Some(code) => match error_meaning(code) {
            Some(meaning) => format!("error {code}: {meaning}"),
            None => format!("error {code}"),
        },
        None => String::new(),
    }
}

/// The words for one event.
pub fn entry(event: &Event) -> Entry {
    let data = &event.data;
    let provider = text(data, "provider").unwrap_or("no provider");
    let channel = text(data, "channel").unwrap_or("sms");
    let message_id = text(data, "providerMessageId")
        .map(|id| format!("provider message id {id}"))
        .unwrap_or_default();
    let (title, detail, tone) = match event.kind.as_str() {
        "verification.blocked" => {
            let reason = text(data, "reason").unwrap_or("protection");
            (
                format!("Start refused ({reason}): {}", refusal_meaning(reason)),
                text(data, "detail").unwrap_or_default().to_string(),
                "bad",
            )
        }
        "verification.flagged" => {
            let mode = text(data, "mode").unwrap_or("monitor");
            (
                if mode == "shadow" {
                    "Answered but not sent: the pumping defence holds this prefix (shadow mode)"
                        .to_string()
                } else {
                    "Sent, but block mode would have refused it (pumping defence in monitor mode)"
                        .to_string()
                },
                text(data, "detail").unwrap_or_default().to_string(),
                "bad",
            )
        }
        "verification.started" => (
            format!("Verification started on {channel}"),
            format!(
                "{} attempts allowed",
                data.get("maxAttempts").and_then(Value::as_u64).unwrap_or(0)
            ),
            "info",
        ),
        "delivery.queued" => (
            format!("Message queued on {channel}"),
            text(data, "provider")
                .map(|p| format!("route starts with {p}"))
                .unwrap_or_default(),
            "info",
        ),
        "delivery.provider_failed" => (
            format!("{provider} failed to take the message; trying the next provider"),
            format!(
                "{}{}",
                code_words(data),
                text(data, "error")
                    .map(|e| format!(" — {e}"))
                    .unwrap_or_default()
            ),
            "bad",
        ),
        "delivery.sent" => (format!("{provider} accepted the message"), message_id, "ok"),
        "delivery.failed" => (
            format!("Delivery on {channel} failed at {provider}"),
            code_words(data),
            "bad",
        ),
        "delivery.delivered" => (
            format!("Receipt from {provider}: delivered to the handset"),
            message_id,
            "ok",
        ),
        "delivery.undelivered" => (
            format!("Receipt from {provider}: not delivered"),
            [code_words(data), message_id]
                .into_iter()
                .filter(|s| !s.is_empty())
                .collect::<Vec<_>>()
                .join("; "),
            "bad",
        ),
        "verification.check_failed" => (
            "A wrong code was entered".to_string(),
            format!(
                "attempt {} of {}",
                data.get("attempts").and_then(Value::as_u64).unwrap_or(0),
                data.get("maxAttempts").and_then(Value::as_u64).unwrap_or(0)
            ),
            "bad",
        ),
        "verification.approved" => (
            "Approved: the right code was entered".to_string(),
            String::new(),
            "ok",
        ),
        "verification.max_attempts_reached" => (
            "Too many wrong codes: the verification is closed".to_string(),
            String::new(),
            "bad",
        ),
        "verification.expired" => ("The code expired unused".to_string(), String::new(), "bad"),
        "verification.canceled" => ("Verification canceled".to_string(), String::new(), "info"),
        other => (other.to_string(), String::new(), "info"),
    };
    Entry {
        kind: event.kind.clone(),
        at: when(event.created_at),
        title,
        detail,
        tone,
        verification: event.verification_id.map(|id| format!("VE{}", id.simple())),
    }
}
