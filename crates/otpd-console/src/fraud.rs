//! Fraud: the prefixes quarantined for SMS pumping (lift one) and the starts refused by a
//! protection in the last week, with the rule and its numbers (put a number on its account's
//! safe list from the row).

use std::collections::HashMap;

use askama::Template;
use axum::Form;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use otpd_core::abuse::SafeNumber;
use otpd_core::events::EventFilter;
use otpd_core::operators::Permission;
use otpd_core::store::OperatorStore;
use otpd_core::{AccountId, Clock, E164Phone, ServiceId, Store};
use serde_json::Value;

use crate::explain::refusal_meaning;
use crate::render::{Chrome, When, segment, show, when};
use crate::session::{Fields, Signed};
use crate::verifications::sid_uuid;
use crate::{ConsoleError, ConsoleState};

/// Refused starts shown per account.
const BLOCKED_ROWS: u32 = 200;

pub struct QuarantineRow {
    pub prefix: String,
    /// `VA…`, or empty for a server-wide quarantine.
    pub service_sid: String,
    pub service: String,
    pub reason: String,
    pub since: When,
    pub until: When,
}

pub struct BlockedRow {
    pub at: When,
    /// Whole for support and admins, masked for viewers.
    pub to: String,
    /// The whole number, for the safe-list form (only rendered for those who may add).
    pub phone: String,
    pub to_link: String,
    pub account: String,
    pub service: String,
    pub channel: String,
    pub reason: String,
    pub meaning: &'static str,
    pub detail: String,
    /// Whether the row offers "Add to safe list" (a phone, not yet on the list).
    pub listable: bool,
    /// A phone already on its account's safe list.
    pub on_list: bool,
}

/// An approval-rate alert (`alert.approval_rate_dropped` / `_recovered` events).
pub struct AlertRow {
    pub at: When,
    pub service: String,
    /// `open` (dropped, not recovered since) or `closed`.
    pub state: &'static str,
    pub what: String,
}

/// A service with a daily budget and what it spent today.
pub struct BudgetRow {
    pub service: String,
    pub spent: String,
    pub budget: String,
    pub share: String,
    /// `bad` at 80 % and above.
    pub tone: &'static str,
}

#[derive(Template)]
#[template(path = "fraud.html")]
struct FraudPage {
    chrome: Chrome,
    budgets: Vec<BudgetRow>,
    alerts: Vec<AlertRow>,
    quarantines: Vec<QuarantineRow>,
    blocked: Vec<BlockedRow>,
    can_lift: bool,
    can_safe_list: bool,
}

/// `GET /console/fraud`.
pub async fn page<S, C>(
    State(state): State<ConsoleState<S, C>>,
    signed: Signed,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Response, ConsoleError>
where
    S: Store + OperatorStore + Clone,
    C: Clock + Clone,
{
    let manage = state.verifier.manage();
    let now = state.verifier.clock().now();
    let mut names: HashMap<ServiceId, String> = HashMap::new();
    let mut budgets = Vec::new();
    let accounts = manage.accounts().await?;
    for account in &accounts {
        for service in manage.services(account.id, None, 1000).await? {
            if let Some((spent, budget)) = manage.spent_today(&service).await? {
                let share = if budget > 0.0 { spent / budget } else { 1.0 };
                budgets.push(BudgetRow {
                    service: service.name.clone(),
                    spent: format!("{spent:.4}"),
                    budget: format!("{budget:.4}"),
                    share: crate::render::percent(share),
                    tone: if share >= 0.8 { "bad" } else { "ok" },
                });
            }
            names.insert(service.id, service.name);
        }
    }
    let quarantines = manage
        .quarantines()
        .await?
        .into_iter()
        .map(|q| QuarantineRow {
            service_sid: q
                .service
                .map(|s| format!("VA{}", s.simple()))
                .unwrap_or_default(),
            service: q.service.map_or_else(
                || "every service".to_string(),
                |s| names.get(&s).cloned().unwrap_or_else(|| "(deleted)".into()),
            ),
            prefix: q.prefix,
            reason: q.reason,
            since: when(q.created_at),
            until: when(q.until),
        })
        .collect();
    let see_all = signed.may(Permission::SeeFullNumbers);
    let mut blocked = Vec::new();
    for account in &accounts {
        let events = manage
            .events(&EventFilter {
                account: account.id,
                service: None,
                verification: None,
                kind: Some("verification.blocked".into()),
                since: Some(now.plus_seconds(-7 * 86_400)),
                until: None,
                after: None,
                limit: BLOCKED_ROWS,
            })
            .await?;
        for event in events.iter().rev() {
            let data = &event.data;
            let text = |name: &str| data.get(name).and_then(Value::as_str).unwrap_or_default();
            let to = text("to").to_string();
            let recipient = otpd_core::Recipient::from_trusted(to.clone());
            let reason = text("reason").to_string();
            let phone = matches!(recipient, otpd_core::Recipient::Phone(_)) && !to.is_empty();
            let on_list = phone && manage.safe_number(account.id, &to).await?.is_some();
            let listable = phone && !on_list;
            blocked.push(BlockedRow {
                at: when(event.created_at),
                to: if see_all {
                    to.clone()
                } else {
                    recipient.masked()
                },
                phone: if see_all { to.clone() } else { String::new() },
                to_link: segment(&to),
                account: format!("AC{}", account.id.simple()),
                service: names
                    .get(&event.service_id)
                    .cloned()
                    .unwrap_or_else(|| "(deleted)".into()),
                channel: text("channel").to_string(),
                meaning: refusal_meaning(&reason),
                reason,
                detail: text("detail").to_string(),
                listable,
                on_list,
            });
        }
    }
    blocked.sort_by(|a, b| b.at.iso.cmp(&a.at.iso));
    let mut alert_events = Vec::new();
    for account in &accounts {
        for kind in [
            "alert.approval_rate_dropped",
            "alert.approval_rate_recovered",
        ] {
            alert_events.extend(
                manage
                    .events(&EventFilter {
                        account: account.id,
                        service: None,
                        verification: None,
                        kind: Some(kind.into()),
                        since: Some(now.plus_seconds(-30 * 86_400)),
                        until: None,
                        after: None,
                        limit: BLOCKED_ROWS,
                    })
                    .await?,
            );
        }
    }
    alert_events.sort_by_key(|e| std::cmp::Reverse((e.created_at, e.id)));
    let mut recovered_later: std::collections::HashSet<ServiceId> = Default::default();
    let mut alerts = Vec::new();
    for event in &alert_events {
        let rate = |name: &str| {
            crate::render::percent(event.data.get(name).and_then(Value::as_f64).unwrap_or(0.0))
        };
        let dropped = event.kind == "alert.approval_rate_dropped";
        let state = if dropped && !recovered_later.contains(&event.service_id) {
            "open"
        } else {
            "closed"
        };
        if !dropped {
            recovered_later.insert(event.service_id);
        }
        alerts.push(AlertRow {
            at: when(event.created_at),
            service: names
                .get(&event.service_id)
                .cloned()
                .unwrap_or_else(|| "(deleted)".into()),
            state,
            what: format!(
                "approval rate {} {} (baseline {})",
                if dropped {
                    "dropped to"
                } else {
                    "recovered to"
                },
                rate("approvalRate"),
                rate("baselineApprovalRate")
            ),
        });
    }
    let chrome = Chrome::new(&signed, state.dev_mode, "fraud")
        .with_notice(query.get("done").map(String::as_str));
    show(FraudPage {
        chrome,
        budgets,
        alerts,
        quarantines,
        blocked,
        can_lift: signed.may(Permission::LiftQuarantine),
        can_safe_list: signed.may(Permission::AddSafeNumber),
    })
}

/// `POST /console/fraud/quarantines/lift` with `prefix` and `service` (`VA…`, or empty for
/// a server-wide quarantine).
pub async fn lift<S, C>(
    State(state): State<ConsoleState<S, C>>,
    signed: Signed,
    Form(form): Form<Fields>,
) -> Result<Response, ConsoleError>
where
    S: Store + OperatorStore + Clone,
    C: Clock + Clone,
{
    signed.post(&form, Permission::LiftQuarantine)?;
    let prefix = form.get("prefix").map(|p| p.trim()).unwrap_or_default();
    if prefix.is_empty() {
        return Err(ConsoleError::BadRequest("prefix: missing.".into()));
    }
    let service = match form.get("service").map(|s| s.trim()).unwrap_or_default() {
        "" => None,
        sid => Some(ServiceId::from_uuid(sid_uuid(sid, "VA").ok_or_else(
            || ConsoleError::BadRequest("service: expected a VA… SID.".into()),
        )?)),
    };
    let manage = state.verifier.manage();
    if !manage.lift_any_quarantine(prefix, service).await? {
        return Err(ConsoleError::NotFound);
    }
    let account = match service {
        Some(id) => manage.service(id).await?.map(|s| s.account_id),
        None => None,
    };
    tracing::info!(prefix, "quarantine lifted from the console");
    manage
        .record(
            &signed.acted_by(),
            account,
            "quarantine.lift",
            prefix.to_string(),
            serde_json::json!({"before": {"status": "quarantined"}, "after": {"status": "lifted"}}),
        )
        .await?;
    Ok(Redirect::to("/console/fraud?done=lifted").into_response())
}

/// `POST /console/fraud/safe-list` with `account` (`AC…`) and `phone` (E.164): adds the
/// number to that account's safe list.
pub async fn safe_list<S, C>(
    State(state): State<ConsoleState<S, C>>,
    signed: Signed,
    Form(form): Form<Fields>,
) -> Result<Response, ConsoleError>
where
    S: Store + OperatorStore + Clone,
    C: Clock + Clone,
{
    signed.post(&form, Permission::AddSafeNumber)?;
    let account = form
        .get("account")
        .and_then(|sid| sid_uuid(sid.trim(), "AC"))
        .map(AccountId::from_uuid)
        .ok_or_else(|| ConsoleError::BadRequest("account: expected an AC… SID.".into()))?;
    let raw = form.get("phone").map(|p| p.trim()).unwrap_or_default();
    let (phone, _) = E164Phone::parse(raw, None).map_err(|_| {
        ConsoleError::BadRequest("phone: a number in international format (+14155550100).".into())
    })?;
    let manage = state.verifier.manage();
    if manage.accounts().await?.iter().all(|a| a.id != account) {
        return Err(ConsoleError::NotFound);
    }
    let entry = SafeNumber {
        id: uuid::Uuid::now_v7(),
        phone: phone.as_str().to_string(),
        created_at: state.verifier.clock().now(),
    };
    let stored = manage.add_safe_number(account, &entry).await?;
    tracing::info!(phone = %phone.masked(), "number added to the safe list from the console");
    manage
        .record(
            &signed.acted_by(),
            Some(account),
            "safe_number.add",
            format!("GN{}", stored.id.simple()),
            serde_json::json!({"after": {"phone_number": phone.masked()}}),
        )
        .await?;
    let back = match form.get("back").map(String::as_str) {
        Some("number") => format!(
            "/console/numbers/{}?done=safe-listed",
            segment(phone.as_str())
        ),
        _ => "/console/fraud?done=safe-listed".to_string(),
    };
    Ok(Redirect::to(&back).into_response())
}
