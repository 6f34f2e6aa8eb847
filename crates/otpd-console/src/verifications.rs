//! The overview, the verifications log (one row per send, newest first, with filters and
//! paging), a verification's page, and canceling a pending one.

use std::collections::HashMap;

use askama::Template;
use axum::Form;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use otpd_core::delivery::TransmissionSummary;
use otpd_core::events::{AttemptFilter, EventFilter};
use otpd_core::operators::Permission;
use otpd_core::store::OperatorStore;
use otpd_core::{
    Clock, DeliveryAttempt, ServiceId, Store, Timestamp, Verification, VerificationId,
    VerificationStatus,
};

use crate::numbers::{Entry, entry};
use crate::render::{Chrome, When, percent, segment, show, shown, when};
use crate::session::{Fields, Signed};
use crate::{ConsoleError, ConsoleState};

/// Rows per page of the log.
const PAGE_ROWS: u32 = 50;

/// Most sends one page reads when it also filters by provider, delivery or status (those
/// filters apply to what was read).
const SCAN_ROWS: u32 = 1000;

/// One send in the log.
pub struct LogRow {
    pub delivery: String,
    pub verification: String,
    pub at: When,
    pub to: String,
    pub to_link: String,
    pub service: String,
    pub channel: String,
    pub provider: String,
    pub delivery_status: String,
    pub summary: String,
    pub status: String,
}

#[derive(Template)]
#[template(path = "verifications.html")]
struct LogPage {
    chrome: Chrome,
    rows: Vec<LogRow>,
    services: Vec<(String, String)>,
    filter: HashMap<String, String>,
    next: Option<String>,
}

impl LogPage {
    fn value(&self, name: &str) -> &str {
        self.filter
            .get(name)
            .map(String::as_str)
            .unwrap_or_default()
    }

    fn selected(&self, name: &str, value: &str) -> bool {
        self.value(name) == value
    }
}

#[derive(Template)]
#[template(path = "overview.html")]
struct OverviewPage {
    chrome: Chrome,
    started: u64,
    approved: u64,
    conversion: String,
    /// When the day's figures were read.
    computed_at: When,
    quarantines: usize,
    rows: Vec<LogRow>,
}

/// `GET /console/`: the last 24 hours at a glance and the latest sends.
pub async fn overview<S, C>(
    State(state): State<ConsoleState<S, C>>,
    signed: Signed,
) -> Result<Response, ConsoleError>
where
    S: Store + OperatorStore + Clone,
    C: Clock + Clone,
{
    let manage = state.verifier.manage();
    let day = crate::reports::report(
        &state,
        crate::reports::Window {
            service: None,
            days: 1,
        },
    )
    .await?;
    let quarantines = manage.quarantines().await?.len();
    let latest = manage
        .attempts(&AttemptFilter {
            newest_first: true,
            limit: 10,
            ..Default::default()
        })
        .await?;
    let rows = log_rows(&state, &signed, latest).await?;
    show(OverviewPage {
        chrome: Chrome::new(&signed, state.dev_mode, "overview"),
        started: day.overall.total(),
        approved: day.overall.success,
        conversion: percent(day.overall.share(day.overall.success)),
        computed_at: when(day.computed_at),
        quarantines,
        rows,
    })
}

/// The log's rows for `attempts`, with service names.
async fn log_rows<S, C>(
    state: &ConsoleState<S, C>,
    signed: &Signed,
    attempts: Vec<(DeliveryAttempt, Verification)>,
) -> Result<Vec<LogRow>, ConsoleError>
where
    S: Store + OperatorStore + Clone,
    C: Clock + Clone,
{
    let manage = state.verifier.manage();
    let now = state.verifier.clock().now();
    let mut names: HashMap<ServiceId, String> = HashMap::new();
    let mut rows = Vec::with_capacity(attempts.len());
    for (delivery, verification) in attempts {
        let service = match names.get(&verification.service_id) {
            Some(name) => name.clone(),
            None => {
                let name = manage
                    .service(verification.service_id)
                    .await?
                    .map_or_else(|| "(deleted service)".to_string(), |s| s.name);
                names.insert(verification.service_id, name.clone());
                name
            }
        };
        let summary = TransmissionSummary::of(verification.status, std::slice::from_ref(&delivery));
        rows.push(LogRow {
            delivery: delivery.id.to_string(),
            verification: format!("VE{}", verification.id.simple()),
            at: when(delivery.created_at),
            to: shown(signed, &verification.to),
            to_link: segment(verification.to.as_str()),
            service,
            channel: delivery.channel.as_str().to_string(),
            provider: delivery.provider.clone().unwrap_or_else(|| "–".into()),
            delivery_status: delivery.status.as_str().to_string(),
            summary: summary.as_str().to_string(),
            status: verification.status_at(now).as_str().to_string(),
        });
    }
    Ok(rows)
}

/// A `YYYY-MM-DD` date as the start of that UTC day.
fn date(text: &str) -> Result<Option<Timestamp>, ConsoleError> {
    if text.is_empty() {
        return Ok(None);
    }
    let format = time::macros::format_description!("[year]-[month]-[day]");
    let day = time::Date::parse(text, &format)
        .map_err(|_| ConsoleError::BadRequest(format!("{text:?} is not a date (YYYY-MM-DD).")))?;
    let at = day.midnight().assume_utc().unix_timestamp();
    Ok(Some(Timestamp(at * 1000)))
}

/// `GET /console/verifications?service=&status=&channel=&country=&provider=&delivery=&since=&until=&before=`.
pub async fn log<S, C>(
    State(state): State<ConsoleState<S, C>>,
    signed: Signed,
    Query(filter): Query<HashMap<String, String>>,
) -> Result<Response, ConsoleError>
where
    S: Store + OperatorStore + Clone,
    C: Clock + Clone,
{
    let get = |name: &str| filter.get(name).map(|v| v.trim()).filter(|v| !v.is_empty());
    let service = match get("service") {
        Some(sid) => Some(ServiceId::from_uuid(sid_uuid(sid, "VA").ok_or_else(
            || ConsoleError::BadRequest("service: expected a VA… SID.".into()),
        )?)),
        None => None,
    };
    let before = match get("before") {
        Some(id) => Some(
            uuid::Uuid::parse_str(id)
                .map_err(|_| ConsoleError::BadRequest("before: not a page cursor.".into()))?,
        ),
        None => None,
    };
    let status = get("status")
        .map(|s| {
            VerificationStatus::parse(s).ok_or_else(|| {
                ConsoleError::BadRequest("status: not a verification status.".into())
            })
        })
        .transpose()?;
    let provider = get("provider").map(str::to_string);
    let delivery = get("delivery").map(str::to_ascii_uppercase);
    if delivery
        .as_deref()
        .is_some_and(|d| !matches!(d, "FAILED" | "SENT" | "SUCCESS"))
    {
        return Err(ConsoleError::BadRequest(
            "delivery: FAILED, SENT or SUCCESS.".into(),
        ));
    }
    let narrowed = status.is_some() || provider.is_some() || delivery.is_some();
    let store_filter = AttemptFilter {
        service,
        channel: get("channel").map(str::to_ascii_lowercase),
        country: get("country").map(str::to_ascii_uppercase),
        converted: (status == Some(VerificationStatus::Approved)).then_some(true),
        since: date(get("since").unwrap_or_default())?,
        until: date(get("until").unwrap_or_default())?.map(|t| t.plus_seconds(86_400)),
        newest_first: true,
        after: before,
        limit: if narrowed { SCAN_ROWS } else { PAGE_ROWS },
        ..Default::default()
    };
    let manage = state.verifier.manage();
    let read = manage.attempts(&store_filter).await?;
    let read_len = read.len();
    let last_read = read.last().map(|(d, _)| d.id.uuid());
    let now = state.verifier.clock().now();
    let mut kept: Vec<(DeliveryAttempt, Verification)> = read
        .into_iter()
        .filter(|(d, v)| {
            status.is_none_or(|s| v.status_at(now) == s)
                && provider
                    .as_deref()
                    .is_none_or(|p| d.provider.as_deref() == Some(p))
                && delivery.as_deref().is_none_or(|wanted| {
                    TransmissionSummary::of(v.status, std::slice::from_ref(d)).as_str() == wanted
                })
        })
        .collect();
    let mut next = None;
    if kept.len() > PAGE_ROWS as usize {
        kept.truncate(PAGE_ROWS as usize);
        next = kept.last().map(|(d, _)| d.id.uuid().to_string());
    } else if read_len == store_filter.limit as usize {
        next = last_read.map(|id| id.to_string());
    }
    let rows = log_rows(&state, &signed, kept).await?;
    let services = all_services(&state).await?;
    let next = next.map(|cursor| {
        let mut query: Vec<(String, String)> = filter
            .iter()
            .filter(|(name, value)| *name != "before" && !value.is_empty())
            .map(|(name, value)| (name.clone(), value.clone()))
            .collect();
        query.sort();
        query.push(("before".into(), cursor));
        url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(query)
            .finish()
    });
    show(LogPage {
        chrome: Chrome::new(&signed, state.dev_mode, "verifications"),
        rows,
        services,
        filter,
        next,
    })
}

/// Every service of every account as (`VA…`, name), for the filters.
pub async fn all_services<S, C>(
    state: &ConsoleState<S, C>,
) -> Result<Vec<(String, String)>, ConsoleError>
where
    S: Store + OperatorStore + Clone,
    C: Clock + Clone,
{
    let manage = state.verifier.manage();
    let mut out = Vec::new();
    for account in manage.accounts().await? {
        for service in manage.services(account.id, None, 1000).await? {
            out.push((format!("VA{}", service.id.simple()), service.name));
        }
    }
    Ok(out)
}

/// The UUID in a Twilio-style SID (`VA` + 32 hex digits).
pub fn sid_uuid(sid: &str, prefix: &str) -> Option<uuid::Uuid> {
    let hex = sid.strip_prefix(prefix)?;
    (hex.len() == 32)
        .then(|| uuid::Uuid::parse_str(hex).ok())
        .flatten()
}

/// One send on a verification's page.
pub struct SendRow {
    pub at: When,
    pub channel: String,
    pub provider: String,
    pub message_id: String,
    pub status: String,
    pub error: String,
    pub price: String,
}

#[derive(Template)]
#[template(path = "verification.html")]
struct DetailPage {
    chrome: Chrome,
    sid: String,
    to: String,
    to_link: String,
    service: String,
    service_sid: String,
    channel: String,
    status: String,
    attempts: u32,
    max_attempts: u32,
    created: When,
    expires: When,
    sends: Vec<SendRow>,
    entries: Vec<Entry>,
    can_cancel: bool,
}

/// `GET /console/verifications/{VE…}`.
pub async fn detail<S, C>(
    State(state): State<ConsoleState<S, C>>,
    signed: Signed,
    Path(sid): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Response, ConsoleError>
where
    S: Store + OperatorStore + Clone,
    C: Clock + Clone,
{
    let id = sid_uuid(&sid, "VE")
        .or_else(|| uuid::Uuid::parse_str(&sid).ok())
        .map(VerificationId::from_uuid)
        .ok_or(ConsoleError::NotFound)?;
    let manage = state.verifier.manage();
    let verification = manage
        .verification(id)
        .await?
        .ok_or(ConsoleError::NotFound)?;
    let service = manage
        .service(verification.service_id)
        .await?
        .ok_or(ConsoleError::NotFound)?;
    let sends = manage
        .deliveries(id)
        .await?
        .into_iter()
        .map(|d| SendRow {
            at: when(d.created_at),
            channel: d.channel.as_str().to_string(),
            provider: d.provider.clone().unwrap_or_else(|| "–".into()),
            message_id: d.provider_ref.clone().unwrap_or_else(|| "–".into()),
            status: d.status.as_str().to_string(),
            error: match (&d.error_code, &d.error) {
                (Some(code), _) => match crate::explain::error_meaning(code) {
                    Some(meaning) => format!("{code}: {meaning}"),
                    None => code.clone(),
                },
                (None, Some(error)) => error.clone(),
                (None, None) => String::new(),
            },
            price: d
                .price
                .map(|p| format!("{p} {}", d.price_unit.clone().unwrap_or_default()))
                .unwrap_or_default(),
        })
        .collect();
    let events = manage
        .events(&EventFilter {
            account: service.account_id,
            service: None,
            verification: Some(id),
            kind: None,
            since: None,
            until: None,
            after: None,
            limit: 1000,
        })
        .await?;
    let now = state.verifier.clock().now();
    let status = verification.status_at(now);
    let chrome = Chrome::new(&signed, state.dev_mode, "verifications")
        .with_notice(query.get("done").map(String::as_str));
    show(DetailPage {
        chrome,
        sid: format!("VE{}", verification.id.simple()),
        to: shown(&signed, &verification.to),
        to_link: segment(verification.to.as_str()),
        service: service.name,
        service_sid: format!("VA{}", service.id.simple()),
        channel: verification.channel.as_str().to_string(),
        status: status.as_str().to_string(),
        attempts: verification.attempts,
        max_attempts: verification.max_attempts.get(),
        created: when(verification.created_at),
        expires: when(verification.expires_at),
        sends,
        entries: events.iter().map(entry).collect(),
        can_cancel: status == VerificationStatus::Pending
            && signed.may(Permission::CancelVerification),
    })
}

/// `POST /console/verifications/{VE…}/cancel` (support, admin).
pub async fn cancel<S, C>(
    State(state): State<ConsoleState<S, C>>,
    signed: Signed,
    Path(sid): Path<String>,
    Form(form): Form<Fields>,
) -> Result<Response, ConsoleError>
where
    S: Store + OperatorStore + Clone,
    C: Clock + Clone,
{
    signed.post(&form, Permission::CancelVerification)?;
    let id = sid_uuid(&sid, "VE")
        .map(VerificationId::from_uuid)
        .ok_or(ConsoleError::NotFound)?;
    let manage = state.verifier.manage();
    let verification = manage
        .verification(id)
        .await?
        .ok_or(ConsoleError::NotFound)?;
    let service = manage.service(verification.service_id).await?;
    let change = state
        .verifier
        .set_status(verification.service_id, id, VerificationStatus::Canceled)
        .await?;
    if let otpd_core::StatusChange::Changed(_) = change {
        manage
            .record(
                &signed.acted_by(),
                service.map(|s| s.account_id),
                "verification.cancel",
                sid.clone(),
                serde_json::json!({"before": {"status": "pending"}, "after": {"status": "canceled"}}),
            )
            .await?;
    }
    Ok(Redirect::to(&format!("/console/verifications/{sid}?done=canceled")).into_response())
}
