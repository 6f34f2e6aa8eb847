//! `/admin/v1/services/{sid}/protection`: a service's protection settings (geo permissions,
//! block and safe lists, costly numbers, daily budget), read and changed field by field.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use otpd_core::settings::protection_rules;
use otpd_core::store::ServiceRecord;
use otpd_core::{Clock, Store};
use serde_json::{Map, Value, json};

use super::AdminAccount;
use super::schemas::{AdminError, Protection, ProtectionUpdate};
use super::strings;
use crate::AppState;
use crate::native::error::ErrorBody;
use crate::twilio::error::{self, TwilioError};
use crate::twilio::owned_service;

fn protection_json(service: &ServiceRecord) -> Value {
    let s = &service.settings;
    json!({
        "allowedCountries": s.allowed_countries,
        "blockedCountries": s.blocked_countries,
        "blockedPrefixes": s.blocked_prefixes,
        "safeList": s.safe_list,
        "allowCostlyNumbers": s.allow_costly_numbers,
        "dailyBudget": s.daily_budget,
    })
}

/// `GET /admin/v1/services/{sid}/protection`.
#[utoipa::path(
    get,
    path = "/admin/v1/services/{sid}/protection",
    tag = "admin",
    summary = "Read a service's protection settings",
    security(("accountBasic" = [])),
    params(("sid" = String, Path, description = "The service SID (`VA…`).")),
    responses(
        (status = 200, description = "The settings.", body = Protection),
        (status = 404, description = "20404: no such service of this account, or no such webhook.", body = AdminError),
        (status = 401, description = "20003: missing or wrong HTTP Basic credentials.", body = AdminError),
        (status = 500, description = "20500.", body = AdminError),
        (status = 503, description = "20503: the database is unavailable.", body = AdminError),
    )
)]
pub(crate) async fn protection<S: Store + Clone, C: Clock + Clone>(
    State(state): State<AppState<S, C>>,
    Path(sid): Path<String>,
    AdminAccount(account): AdminAccount,
) -> Result<Response, TwilioError> {
    let path = format!("/admin/v1/services/{sid}/protection");
    let service = owned_service(&state, account, &sid, &path).await?;
    Ok(Json(protection_json(&service)).into_response())
}

/// `PUT /admin/v1/services/{sid}/protection`: changes the fields given, checks each.
#[utoipa::path(
    put,
    path = "/admin/v1/services/{sid}/protection",
    tag = "admin",
    summary = "Change a service's protection settings",
    security(("accountBasic" = [])),
    params(("sid" = String, Path, description = "The service SID (`VA…`).")),
    request_body(content = ProtectionUpdate, content_type = "application/json"),
    responses(
        (status = 200, description = "The settings after the change.", body = Protection),
        (status = 400, description = "60200: an unknown field, a field with a bad value, or a body that is not a JSON object.", body = AdminError),
        (status = 404, description = "20404: no such service of this account, or no such webhook.", body = AdminError),
        (status = 413, description = "`invalid_body` 1009 (native error body): the body is too large.", body = ErrorBody),
        (status = 401, description = "20003: missing or wrong HTTP Basic credentials.", body = AdminError),
        (status = 500, description = "20500.", body = AdminError),
        (status = 503, description = "20503: the database is unavailable.", body = AdminError),
    )
)]
pub(crate) async fn update_protection<S: Store + Clone, C: Clock + Clone>(
    State(state): State<AppState<S, C>>,
    Path(sid): Path<String>,
    AdminAccount(account): AdminAccount,
    crate::twilio::Acting(by): crate::twilio::Acting,
    body: Bytes,
) -> Result<Response, TwilioError> {
    let path = format!("/admin/v1/services/{sid}/protection");
    let mut service = owned_service(&state, account, &sid, &path).await?;
    let before = protection_json(&service);
    let Ok(Value::Object(fields)) = serde_json::from_slice::<Value>(&body) else {
        return Err(error::invalid_because("body", "expected a JSON object"));
    };
    apply(&fields, &mut service)?;
    service.updated_at = state.verifier.clock().now();
    state
        .verifier
        .manage()
        .update_service(&service)
        .await
        .map_err(error::internal)?;
    let after = protection_json(&service);
    let summary = otpd_core::audit::before_after(Some(&before), Some(&after));
    let target = format!("VA{}", service.id.simple());
    super::audit::record(&state, &by, account, "protection.update", target, summary).await?;
    Ok(Json(after).into_response())
}

fn countries(fields: &Map<String, Value>, name: &str) -> Result<Option<Vec<String>>, TwilioError> {
    strings(fields, name)?
        .map(|list| {
            protection_rules::countries(&list).map_err(|why| error::invalid_because(name, &why))
        })
        .transpose()
}

fn apply(fields: &Map<String, Value>, service: &mut ServiceRecord) -> Result<(), TwilioError> {
    const KNOWN: &[&str] = &[
        "allowedCountries",
        "blockedCountries",
        "blockedPrefixes",
        "safeList",
        "allowCostlyNumbers",
        "dailyBudget",
    ];
    if let Some(unknown) = fields.keys().find(|k| !KNOWN.contains(&k.as_str())) {
        return Err(error::invalid_because(unknown, "unknown field"));
    }
    let settings = &mut service.settings;
    if let Some(list) = countries(fields, "allowedCountries")? {
        settings.allowed_countries = list;
    }
    if let Some(list) = countries(fields, "blockedCountries")? {
        settings.blocked_countries = list;
    }
    if let Some(list) = strings(fields, "blockedPrefixes")? {
        settings.blocked_prefixes = protection_rules::prefixes(&list)
            .map_err(|why| error::invalid_because("blockedPrefixes", &why))?;
    }
    if let Some(list) = strings(fields, "safeList")? {
        settings.safe_list = protection_rules::numbers(&list)
            .map_err(|why| error::invalid_because("safeList", &why))?;
    }
    match fields.get("allowCostlyNumbers") {
        None => {}
        Some(Value::Bool(allow)) => settings.allow_costly_numbers = *allow,
        Some(_) => {
            return Err(error::invalid_because(
                "allowCostlyNumbers",
                "expected true or false",
            ));
        }
    }
    match fields.get("dailyBudget") {
        None => {}
        Some(Value::Null) => settings.daily_budget = None,
        Some(Value::Number(n))
            if n.as_f64()
                .is_some_and(|v| protection_rules::budget(v).is_ok()) =>
        {
            settings.daily_budget = n.as_f64();
        }
        Some(_) => {
            return Err(error::invalid_because(
                "dailyBudget",
                "expected a non-negative number or null",
            ));
        }
    }
    Ok(())
}
