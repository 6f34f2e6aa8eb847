//! Services: every service with its settings (code, lifetime, attempts, sender, templates per
//! locale, channels and fallbacks, routes, protections), and the form admins change the
//! everyday ones with, checked by the same core rules as the API.

use std::collections::HashMap;

use askama::Template as Html;
use axum::Form;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use otpd_core::operators::Permission;
use otpd_core::settings::{MaxAttempts, SenderId, Template, Ttl, message_rules, protection_rules};
use otpd_core::store::OperatorStore;
use otpd_core::store::ServiceRecord;
use otpd_core::{Channel, Clock, PinLength, ServiceId, Store};

use crate::render::{Chrome, When, show, when};
use crate::session::{Fields, Signed};
use crate::verifications::sid_uuid;
use crate::{ConsoleError, ConsoleState};

pub struct ServiceRow {
    pub sid: String,
    pub name: String,
    pub account: String,
    pub code_length: u8,
    pub ttl: u32,
    pub channels: String,
    pub updated: When,
}

#[derive(Html)]
#[template(path = "services.html")]
struct ListPage {
    chrome: Chrome,
    services: Vec<ServiceRow>,
}

/// `GET /console/services`.
pub async fn list<S, C>(
    State(state): State<ConsoleState<S, C>>,
    signed: Signed,
) -> Result<Response, ConsoleError>
where
    S: Store + OperatorStore + Clone,
    C: Clock + Clone,
{
    let manage = state.verifier.manage();
    let mut services = Vec::new();
    for account in manage.accounts().await? {
        for service in manage.services(account.id, None, 1000).await? {
            services.push(ServiceRow {
                sid: format!("VA{}", service.id.simple()),
                account: account.name.clone(),
                code_length: service.settings.pin_length.get(),
                ttl: service.settings.ttl.get(),
                channels: channels(&service),
                updated: when(service.updated_at),
                name: service.name,
            });
        }
    }
    show(ListPage {
        chrome: Chrome::new(&signed, state.dev_mode, "services"),
        services,
    })
}

fn channels(service: &ServiceRecord) -> String {
    let fallbacks: Vec<&str> = service
        .settings
        .fallback_channels
        .iter()
        .map(|c| c.as_str())
        .collect();
    if fallbacks.is_empty() {
        "as requested, no fallback".to_string()
    } else {
        format!("fallback: {}", fallbacks.join(" → "))
    }
}

/// One setting as the page lists it.
pub struct Fact {
    pub name: &'static str,
    pub value: String,
}

#[derive(Html)]
#[template(path = "service.html")]
struct ServicePage {
    chrome: Chrome,
    sid: String,
    name: String,
    code_length: String,
    ttl: String,
    max_attempts: String,
    sender: String,
    template: String,
    fallbacks: String,
    allowed_countries: String,
    blocked_countries: String,
    blocked_prefixes: String,
    daily_budget: String,
    costly: bool,
    facts: Vec<Fact>,
    /// `locale = template`, one per line.
    locale_templates: String,
    /// `channel[:country] = provider, provider`, one per line.
    routes: String,
    /// Field → what is wrong with the value posted.
    errors: HashMap<&'static str, String>,
    can_edit: bool,
}

impl ServicePage {
    fn error(&self, field: &str) -> &str {
        self.errors
            .get(field)
            .map(String::as_str)
            .unwrap_or_default()
    }

    fn of(chrome: Chrome, service: &ServiceRecord, can_edit: bool) -> ServicePage {
        let s = &service.settings;
        let facts = vec![
            Fact {
                name: "Code type",
                value: format!("{:?}", s.pin_type).to_lowercase(),
            },
            Fact {
                name: "Channels",
                value: channels(service),
            },
            Fact {
                name: "Resend cooldown",
                value: format!("{} s", s.resend_cooldown_seconds),
            },
            Fact {
                name: "Rate limits",
                value: if s.rate_limits.is_empty() {
                    "server defaults only".to_string()
                } else {
                    format!("{} programmable", s.rate_limits.len())
                },
            },
            Fact {
                name: "PSD2",
                value: if s.options.psd2_enabled { "on" } else { "off" }.to_string(),
            },
        ];
        ServicePage {
            chrome,
            sid: format!("VA{}", service.id.simple()),
            name: service.name.clone(),
            code_length: s.pin_length.get().to_string(),
            ttl: s.ttl.get().to_string(),
            max_attempts: s.max_attempts.get().to_string(),
            sender: s.from.as_str().to_string(),
            template: s.template.as_str().to_string(),
            fallbacks: s
                .fallback_channels
                .iter()
                .map(|c| c.as_str())
                .collect::<Vec<_>>()
                .join(", "),
            allowed_countries: s.allowed_countries.join(", "),
            blocked_countries: s.blocked_countries.join(", "),
            blocked_prefixes: s.blocked_prefixes.join(", "),
            daily_budget: s.daily_budget.map(|b| b.to_string()).unwrap_or_default(),
            costly: s.allow_costly_numbers,
            facts,
            locale_templates: s
                .locale_templates
                .iter()
                .map(|(locale, t)| format!("{locale} = {}", t.as_str()))
                .collect::<Vec<_>>()
                .join("\n"),
            routes: s
                .provider_routes
                .iter()
                .map(|(key, names)| format!("{key} = {}", names.join(", ")))
                .collect::<Vec<_>>()
                .join("\n"),
            errors: HashMap::new(),
            can_edit,
        }
    }
}

async fn service<S, C>(state: &ConsoleState<S, C>, sid: &str) -> Result<ServiceRecord, ConsoleError>
where
    S: Store + OperatorStore + Clone,
    C: Clock + Clone,
{
    let id = sid_uuid(sid, "VA")
        .map(ServiceId::from_uuid)
        .ok_or(ConsoleError::NotFound)?;
    state
        .verifier
        .manage()
        .service(id)
        .await?
        .ok_or(ConsoleError::NotFound)
}

/// `GET /console/services/{VA…}`.
pub async fn page<S, C>(
    State(state): State<ConsoleState<S, C>>,
    signed: Signed,
    Path(sid): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Response, ConsoleError>
where
    S: Store + OperatorStore + Clone,
    C: Clock + Clone,
{
    let record = service(&state, &sid).await?;
    let chrome = Chrome::new(&signed, state.dev_mode, "services")
        .with_notice(query.get("done").map(String::as_str));
    crate::render::show(ServicePage::of(
        chrome,
        &record,
        signed.may(Permission::ManageServices),
    ))
}

/// The `key = value` lines of a text area, each checked by `rule`; the first refused line
/// says why (with its number when there are several).
fn lines<T>(text: &str, rule: impl Fn(&str, &str) -> Result<T, String>) -> Result<Vec<T>, String> {
    text.lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty())
        .map(|(index, line)| {
            let at = |why: String| format!("line {}: {why}", index + 1);
            let (key, value) = line
                .split_once('=')
                .ok_or_else(|| at("expected key = value".to_string()))?;
            rule(key, value).map_err(at)
        })
        .collect()
}

/// A rule over a list setting: the normalised list or why it is refused.
type ListRule = fn(&[String]) -> Result<Vec<String>, String>;

/// `POST /console/services/{VA…}` with every field of the form: saves them, or answers the form again (422) with a message at
/// each field the core's rules refuse.
pub async fn update<S, C>(
    State(state): State<ConsoleState<S, C>>,
    signed: Signed,
    Path(sid): Path<String>,
    Form(form): Form<Fields>,
) -> Result<Response, ConsoleError>
where
    S: Store + OperatorStore + Clone,
    C: Clock + Clone,
{
    signed.post(&form, Permission::ManageServices)?;
    let before = service(&state, &sid).await?;
    let mut after = before.clone();
    let mut errors: HashMap<&'static str, String> = HashMap::new();
    let field = |name: &str| form.get(name).map(|v| v.trim()).unwrap_or_default();
    let number = |name: &'static str, errors: &mut HashMap<&'static str, String>| {
        let parsed = field(name).parse::<i64>().ok();
        if parsed.is_none() {
            errors.insert(name, "a whole number".into());
        }
        parsed
    };
    let name = field("name");
    if name.is_empty() || name.chars().count() > 64 {
        errors.insert("name", "1 to 64 characters".into());
    } else {
        after.name = name.to_string();
    }
    if let Some(value) = number("code_length", &mut errors) {
        match PinLength::new(value) {
            Ok(length) => after.settings.pin_length = length,
            Err(_) => {
                errors.insert(
                    "code_length",
                    format!("from {} to {}", PinLength::MIN, PinLength::MAX),
                );
            }
        }
    }
    if let Some(value) = number("ttl", &mut errors) {
        match Ttl::new(value) {
            Ok(ttl) => after.settings.ttl = ttl,
            Err(_) => {
                errors.insert("ttl", format!("from {} to {} seconds", Ttl::MIN, Ttl::MAX));
            }
        }
    }
    if let Some(value) = number("max_attempts", &mut errors) {
        match MaxAttempts::new(value) {
            Ok(max) => after.settings.max_attempts = max,
            Err(_) => {
                errors.insert(
                    "max_attempts",
                    format!("from {} to {}", MaxAttempts::MIN, MaxAttempts::MAX),
                );
            }
        }
    }
    match SenderId::new(field("sender")) {
        Ok(sender) => after.settings.from = sender,
        Err(error) => {
            errors.insert("sender", error.to_string());
        }
    }
    match Template::new(field("template")) {
        Ok(template) => after.settings.template = template,
        Err(error) => {
            errors.insert("template", error.to_string());
        }
    }
    let list = |name: &str| -> Vec<String> {
        field(name)
            .split([',', ' '])
            .map(str::trim)
            .filter(|item| !item.is_empty())
            .map(str::to_string)
            .collect()
    };
    let channels: Result<Vec<Channel>, String> = list("fallbacks")
        .iter()
        .map(|name| Channel::parse(name).ok_or_else(|| format!("'{name}' is not a channel")))
        .collect();
    match channels {
        Ok(channels) => after.settings.fallback_channels = channels,
        Err(why) => {
            errors.insert("fallbacks", why);
        }
    }
    let rules: [(&'static str, ListRule); 3] = [
        ("allowed_countries", protection_rules::countries),
        ("blocked_countries", protection_rules::countries),
        ("blocked_prefixes", protection_rules::prefixes),
    ];
    for (name, rule) in rules {
        match rule(&list(name)) {
            Ok(value) => match name {
                "allowed_countries" => after.settings.allowed_countries = value,
                "blocked_countries" => after.settings.blocked_countries = value,
                _ => after.settings.blocked_prefixes = value,
            },
            Err(why) => {
                errors.insert(name, why);
            }
        }
    }
    match field("daily_budget") {
        "" => after.settings.daily_budget = None,
        text => match text
            .parse::<f64>()
            .map_err(|_| "expected a number".to_string())
            .and_then(protection_rules::budget)
        {
            Ok(budget) => after.settings.daily_budget = Some(budget),
            Err(why) => {
                errors.insert("daily_budget", why);
            }
        },
    }
    after.settings.allow_costly_numbers = form.get("costly").is_some_and(|v| v == "on");
    match lines(field("locale_templates"), message_rules::locale_template) {
        Ok(templates) => after.settings.locale_templates = templates.into_iter().collect(),
        Err(why) => {
            errors.insert("locale_templates", why);
        }
    }
    match lines(field("routes"), message_rules::route) {
        Ok(routes) => after.settings.provider_routes = routes.into_iter().collect(),
        Err(why) => {
            errors.insert("routes", why);
        }
    }
    if !errors.is_empty() {
        let chrome = Chrome::new(&signed, state.dev_mode, "services");
        let mut page = ServicePage::of(chrome, &before, true);
        page.name = field("name").to_string();
        page.code_length = field("code_length").to_string();
        page.ttl = field("ttl").to_string();
        page.max_attempts = field("max_attempts").to_string();
        page.sender = field("sender").to_string();
        page.template = field("template").to_string();
        page.fallbacks = field("fallbacks").to_string();
        page.allowed_countries = field("allowed_countries").to_string();
        page.blocked_countries = field("blocked_countries").to_string();
        page.blocked_prefixes = field("blocked_prefixes").to_string();
        page.daily_budget = field("daily_budget").to_string();
        page.costly = form.get("costly").is_some_and(|v| v == "on");
        page.locale_templates = field("locale_templates").to_string();
        page.routes = field("routes").to_string();
        page.errors = errors;
        let mut response = crate::render::show(page)?;
        *response.status_mut() = StatusCode::UNPROCESSABLE_ENTITY;
        return Ok(response);
    }
    after.updated_at = state.verifier.clock().now();
    let manage = state.verifier.manage();
    if !manage.update_service(&after).await? {
        return Err(ConsoleError::NotFound);
    }
    let summary = otpd_core::audit::before_after(
        Some(&serde_json::json!({"name": before.name, "settings": before.settings})),
        Some(&serde_json::json!({"name": after.name, "settings": after.settings})),
    );
    manage
        .record(
            &signed.acted_by(),
            Some(after.account_id),
            "service.update",
            sid.clone(),
            summary,
        )
        .await?;
    Ok(Redirect::to(&format!("/console/services/{sid}?done=service-saved")).into_response())
}
