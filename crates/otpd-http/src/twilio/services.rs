//! `/v2/Services`: create, list (paged), fetch, update, delete. A Twilio Service is the same
//! core service a native application is bound to.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use otpd_core::store::ServiceRecord;
use otpd_core::{Clock, ServiceId, Store};
use otpd_core::{OtpSettings, PinLength, Template, Ttl};
use serde_json::json;

use super::error::{self, TwilioError};
use super::form::{Params, sid_uuid};
use super::{Acting, TwilioAccount, base_url, owned_service, wire};
use crate::AppState;
use crate::admin::audit::record;
use otpd_core::audit::before_after;

/// The message of services created through this API: Twilio's wording.
pub const TWILIO_TEMPLATE: &str = "Your {{name}} verification code is: {{pin}}";

const PASSKEY_ATTACHMENTS: &[&str] = &["platform", "cross-platform", "any"];
const PASSKEY_REQUIREMENTS: &[&str] = &["required", "preferred", "discouraged"];

fn one_of(params: &Params, name: &str, allowed: &[&str]) -> Result<Option<String>, TwilioError> {
    match params.get(name) {
        None => Ok(None),
        Some(v) if allowed.contains(&v) => Ok(Some(v.to_string())),
        Some(_) => Err(error::invalid_because(
            name,
            &format!("must be one of {}", allowed.join(", ")),
        )),
    }
}

/// Applies every parameter present in `params` (create and update share the set).
fn apply(
    params: &Params,
    name: &mut String,
    settings: &mut OtpSettings,
) -> Result<(), TwilioError> {
    if let Some(friendly) = params.text("FriendlyName", 32)? {
        *name = friendly;
    }
    if let Some(length) = params.int("CodeLength", 4, 10)? {
        settings.pin_length = PinLength::new(length).map_err(|_| error::invalid("CodeLength"))?;
    }
    if let Some(ttl) = params.int("Ttl", Ttl::MIN, Ttl::MAX)? {
        settings.ttl = Ttl::new(ttl).map_err(|_| error::invalid("Ttl"))?;
    }
    let o = &mut settings.options;
    for (key, flag) in [
        ("LookupEnabled", &mut o.lookup_enabled),
        ("SkipSmsToLandlines", &mut o.skip_sms_to_landlines),
        ("DtmfInputRequired", &mut o.dtmf_input_required),
        ("Psd2Enabled", &mut o.psd2_enabled),
        (
            "DoNotShareWarningEnabled",
            &mut o.do_not_share_warning_enabled,
        ),
        ("CustomCodeEnabled", &mut o.custom_code_enabled),
        ("Push.IncludeDate", &mut o.push_include_date),
        (
            "VerifyEventSubscriptionEnabled",
            &mut o.verify_event_subscription_enabled,
        ),
        ("DoForceCheckOnce", &mut o.do_force_check_once),
    ] {
        if let Some(value) = params.bool(key)? {
            *flag = value;
        }
    }
    let set = |slot: &mut Option<String>, value: Option<String>| {
        if value.is_some() {
            *slot = value;
        }
    };
    set(&mut o.tts_name, params.text("TtsName", 64)?);
    set(
        &mut o.default_template_sid,
        params.sid("DefaultTemplateSid", "HJ")?,
    );
    set(
        &mut o.push_apn_credential_sid,
        params.sid("Push.ApnCredentialSid", "CR")?,
    );
    set(
        &mut o.push_fcm_credential_sid,
        params.sid("Push.FcmCredentialSid", "CR")?,
    );
    set(&mut o.totp_issuer, params.text("Totp.Issuer", 64)?);
    set(
        &mut o.whatsapp_msg_service_sid,
        params.sid("Whatsapp.MsgServiceSid", "MG")?,
    );
    set(&mut o.whatsapp_from, params.text("Whatsapp.From", 64)?);
    set(
        &mut o.passkeys_relying_party_id,
        params.text("Passkeys.RelyingParty.Id", 253)?,
    );
    set(
        &mut o.passkeys_relying_party_name,
        params.text("Passkeys.RelyingParty.Name", 64)?,
    );
    set(
        &mut o.passkeys_authenticator_attachment,
        one_of(
            params,
            "Passkeys.AuthenticatorAttachment",
            PASSKEY_ATTACHMENTS,
        )?,
    );
    set(
        &mut o.passkeys_discoverable_credentials,
        one_of(
            params,
            "Passkeys.DiscoverableCredentials",
            PASSKEY_REQUIREMENTS,
        )?,
    );
    set(
        &mut o.passkeys_user_verification,
        one_of(params, "Passkeys.UserVerification", PASSKEY_REQUIREMENTS)?,
    );
    if let Some(origins) = params.get("Passkeys.RelyingParty.Origins") {
        o.passkeys_relying_party_origins = Some(
            origins
                .split(',')
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect(),
        );
    }
    for (key, slot, min, max) in [
        ("Totp.TimeStep", &mut o.totp_time_step, 20, 60),
        ("Totp.CodeLength", &mut o.totp_code_length, 3, 8),
        ("Totp.Skew", &mut o.totp_skew, 0, 2),
    ] {
        if let Some(value) = params.int(key, min, max)? {
            *slot = Some(value as u32);
        }
    }
    Ok(())
}

/// `POST /v2/Services`.
pub async fn create<S: Store + Clone, C: Clock + Clone>(
    State(state): State<AppState<S, C>>,
    headers: HeaderMap,
    TwilioAccount(account): TwilioAccount,
    Acting(by): Acting,
    body: Bytes,
) -> Result<Response, TwilioError> {
    let params = Params::parse(&body);
    params.required("FriendlyName")?;
    let mut name = String::new();
    let mut settings = OtpSettings {
        template: Template::new(TWILIO_TEMPLATE).expect("the built-in template has {{pin}}"),
        ..OtpSettings::default()
    };
    apply(&params, &mut name, &mut settings)?;
    let now = state.verifier.clock().now();
    let service = ServiceRecord {
        id: ServiceId::generate(),
        account_id: account,
        name,
        settings,
        created_at: now,
        updated_at: now,
    };
    state
        .verifier
        .manage()
        .create_service(&service)
        .await
        .map_err(error::internal)?;
    let summary = before_after(None, Some(&wire::service("", &service)));
    let sid = format!("VA{}", service.id.simple());
    record(&state, &by, account, "service.create", sid, summary).await?;
    let body = wire::service(&base_url(&state, &headers), &service);
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

/// `GET /v2/Services/{Sid}`.
pub async fn fetch<S: Store + Clone, C: Clock + Clone>(
    State(state): State<AppState<S, C>>,
    headers: HeaderMap,
    Path(sid): Path<String>,
    TwilioAccount(account): TwilioAccount,
) -> Result<Response, TwilioError> {
    let service = owned_service(&state, account, &sid, &format!("/Services/{sid}")).await?;
    Ok(Json(wire::service(&base_url(&state, &headers), &service)).into_response())
}

/// `POST /v2/Services/{Sid}`: every parameter optional.
pub async fn update<S: Store + Clone, C: Clock + Clone>(
    State(state): State<AppState<S, C>>,
    headers: HeaderMap,
    Path(sid): Path<String>,
    TwilioAccount(account): TwilioAccount,
    Acting(by): Acting,
    body: Bytes,
) -> Result<Response, TwilioError> {
    let path = format!("/Services/{sid}");
    let mut service = owned_service(&state, account, &sid, &path).await?;
    let before = wire::service("", &service);
    apply(
        &Params::parse(&body),
        &mut service.name,
        &mut service.settings,
    )?;
    service.updated_at = state.verifier.clock().now();
    if !state
        .verifier
        .manage()
        .update_service(&service)
        .await
        .map_err(error::internal)?
    {
        return Err(error::not_found(&path));
    }
    let summary = before_after(Some(&before), Some(&wire::service("", &service)));
    let target = format!("VA{}", service.id.simple());
    record(&state, &by, account, "service.update", target, summary).await?;
    Ok(Json(wire::service(&base_url(&state, &headers), &service)).into_response())
}

/// `DELETE /v2/Services/{Sid}`: 204.
pub async fn delete<S: Store + Clone, C: Clock + Clone>(
    State(state): State<AppState<S, C>>,
    Path(sid): Path<String>,
    TwilioAccount(account): TwilioAccount,
    Acting(by): Acting,
) -> Result<Response, TwilioError> {
    let path = format!("/Services/{sid}");
    let service = owned_service(&state, account, &sid, &path).await?;
    if !state
        .verifier
        .manage()
        .delete_service(service.id)
        .await
        .map_err(error::internal)?
    {
        return Err(error::not_found(&path));
    }
    let summary = before_after(Some(&wire::service("", &service)), None);
    let target = format!("VA{}", service.id.simple());
    record(&state, &by, account, "service.delete", target, summary).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `GET /v2/Services?PageSize=&Page=&PageToken=`: the list envelope with absolute page URLs.
/// Pages are keyset-based: the token is the SID of the last service of the previous page.
pub async fn list<S: Store + Clone, C: Clock + Clone>(
    State(state): State<AppState<S, C>>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
    TwilioAccount(account): TwilioAccount,
) -> Result<Response, TwilioError> {
    let params = Params::parse(query.unwrap_or_default().as_bytes());
    let page_size = params.int("PageSize", 1, 1000)?.unwrap_or(50);
    let page = params.int("Page", 0, i64::from(u32::MAX))?.unwrap_or(0);
    let after = match params.get("PageToken") {
        None => None,
        Some(token) => Some(
            sid_uuid(token, "PA")
                .map(ServiceId::from_uuid)
                .ok_or_else(|| error::invalid("PageToken"))?,
        ),
    };
    let mut services = state
        .verifier
        .manage()
        .services(account, after, page_size as u32 + 1)
        .await
        .map_err(error::internal)?;
    let more = services.len() > page_size as usize;
    services.truncate(page_size as usize);
    let base = base_url(&state, &headers);
    let list_url = format!("{base}/v2/Services");
    let page_url = |page: i64, token: Option<String>| match token {
        Some(token) => format!("{list_url}?PageSize={page_size}&Page={page}&PageToken={token}"),
        None => format!("{list_url}?PageSize={page_size}&Page={page}"),
    };
    let next = more.then(|| {
        let last = services.last().map(|s| format!("PA{}", s.id.simple()));
        page_url(page + 1, last)
    });
    let body = json!({
        "services": services.iter().map(|s| wire::service(&base, s)).collect::<Vec<_>>(),
        "meta": {
            "page": page,
            "page_size": page_size,
            "first_page_url": page_url(0, None),
            "previous_page_url": (page == 1).then(|| page_url(0, None)),
            "next_page_url": next,
            "key": "services",
            "url": page_url(page, params.get("PageToken").map(str::to_string)),
        },
    });
    Ok(Json(body).into_response())
}
