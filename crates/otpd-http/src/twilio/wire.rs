//! Twilio's JSON shapes: snake_case keys, every documented key present (null when empty),
//! `YYYY-MM-DDTHH:MM:SSZ` timestamps, absolute `url`s pointing at this server.

use otpd_core::store::{DeliveryAttempt, ServiceRecord};
use otpd_core::{AccountId, Timestamp, Verification, VerificationStatus};
use serde_json::{Value, json};

/// Second-precision ISO 8601 in UTC with `Z` (what the Python SDK parses).
pub fn date(timestamp: Timestamp) -> String {
    let format =
        time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]Z");
    time::OffsetDateTime::from_unix_timestamp(timestamp.unix_seconds())
        .ok()
        .and_then(|t| t.format(&format).ok())
        .unwrap_or_else(|| "1970-01-01T00:00:00Z".to_string())
}

/// `AC` + 32 hex digits.
pub fn account_sid(id: AccountId) -> String {
    format!("AC{}", id.simple())
}

/// `VA` + 32 hex digits.
pub fn service_sid(service: &ServiceRecord) -> String {
    format!("VA{}", service.id.simple())
}

/// `VE` + 32 hex digits.
pub fn verification_sid(verification: &Verification) -> String {
    format!("VE{}", verification.id.simple())
}

/// A Service resource.
pub fn service(base: &str, service: &ServiceRecord) -> Value {
    let sid = service_sid(service);
    let url = format!("{base}/v2/Services/{sid}");
    let s = &service.settings;
    let o = &s.options;
    json!({
        "sid": sid,
        "account_sid": account_sid(service.account_id),
        "friendly_name": service.name,
        "code_length": s.pin_length.get(),
        "lookup_enabled": o.lookup_enabled,
        "psd2_enabled": o.psd2_enabled,
        "skip_sms_to_landlines": o.skip_sms_to_landlines,
        "dtmf_input_required": o.dtmf_input_required,
        "tts_name": o.tts_name,
        "do_not_share_warning_enabled": o.do_not_share_warning_enabled,
        "custom_code_enabled": o.custom_code_enabled,
        "push": {
            "include_date": o.push_include_date,
            "apn_credential_sid": o.push_apn_credential_sid,
            "fcm_credential_sid": o.push_fcm_credential_sid,
        },
        "totp": {
            "issuer": o.totp_issuer,
            "time_step": o.totp_time_step,
            "code_length": o.totp_code_length,
            "skew": o.totp_skew,
        },
        "whatsapp": { "msg_service_sid": o.whatsapp_msg_service_sid, "from": o.whatsapp_from },
        "passkeys": {
            "relying_party": {
                "id": o.passkeys_relying_party_id,
                "name": o.passkeys_relying_party_name,
                "origins": o.passkeys_relying_party_origins,
            },
            "authenticator_attachment": o.passkeys_authenticator_attachment,
            "discoverable_credentials": o.passkeys_discoverable_credentials,
            "user_verification": o.passkeys_user_verification,
        },
        "default_template_sid": o.default_template_sid,
        "verify_event_subscription_enabled": o.verify_event_subscription_enabled,
        "date_created": date(service.created_at),
        "date_updated": date(service.updated_at),
        "url": url,
        "links": {
            "verification_checks": format!("{url}/VerificationCheck"),
            "verifications": format!("{url}/Verifications"),
            "rate_limits": format!("{url}/RateLimits"),
            "messaging_configurations": format!("{url}/MessagingConfigurations"),
            "entities": format!("{url}/Entities"),
            "webhooks": format!("{url}/Webhooks"),
            "access_tokens": format!("{url}/AccessTokens"),
        },
        // otpd extensions (the SDKs keep unknown keys out of their objects but do not fail).
        "ttl": s.ttl.get(),
        "do_force_check_once": o.do_force_check_once,
    })
}

/// `lookup` when the service has `LookupEnabled`: the line type from the number ranges
/// (offline, so no carrier name or network codes), else `{}` as Twilio.
fn lookup(service: &ServiceRecord, verification: &Verification) -> Value {
    match &verification.to {
        otpd_core::Recipient::Phone(phone) if service.settings.options.lookup_enabled => json!({
            "carrier": {
                "type": phone.line_type().as_str(),
                "name": null,
                "mobile_country_code": null,
                "mobile_network_code": null,
                "error_code": null,
            },
        }),
        _ => json!({}),
    }
}

/// A Verification resource with its delivery attempts.
pub fn verification(
    base: &str,
    service: &ServiceRecord,
    verification: &Verification,
    status: VerificationStatus,
    attempts: &[DeliveryAttempt],
) -> Value {
    let sid = verification_sid(verification);
    let service_sid = service_sid(service);
    json!({
        "sid": sid,
        "service_sid": service_sid,
        "account_sid": account_sid(service.account_id),
        "to": verification.to.as_str(),
        "channel": verification.channel.as_str(),
        "status": status.as_str(),
        "valid": status == VerificationStatus::Approved,
        "date_created": date(verification.created_at),
        "date_updated": date(verification.updated_at),
        "lookup": lookup(service, verification),
        "amount": verification.amount,
        "payee": verification.payee,
        // Twilio's three keys, plus otpd's transmission details (extra keys are ignored by
        // the SDKs, which keep attempts as plain maps).
        "send_code_attempts": attempts.iter().map(|a| json!({
            "time": date(a.created_at),
            "channel": a.channel.as_str().to_ascii_uppercase(),
            "attempt_sid": format!("VL{}", a.id.simple()),
            "status": a.status.as_str(),
            "provider": a.provider,
            "message_sid": a.provider_ref,
            "error_code": a.error_code,
            "price": a.price,
            "price_unit": a.price_unit,
            "segments": a.segments,
        })).collect::<Vec<_>>(),
        "sna": null,
        "url": format!("{base}/v2/Services/{service_sid}/Verifications/{sid}"),
    })
}

/// A VerificationCheck result (no `url`, no `lookup`, no `send_code_attempts`).
pub fn check(service: &ServiceRecord, verification: &Verification) -> Value {
    json!({
        "sid": verification_sid(verification),
        "service_sid": service_sid(service),
        "account_sid": account_sid(service.account_id),
        "to": verification.to.as_str(),
        "channel": verification.channel.as_str(),
        "status": verification.status.as_str(),
        "valid": verification.status == VerificationStatus::Approved,
        "amount": verification.amount,
        "payee": verification.payee,
        "sna_attempts_error_codes": null,
        "date_created": date(verification.created_at),
        "date_updated": date(verification.updated_at),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_second_precision_zulu() {
        assert_eq!(date(Timestamp(1_438_286_400_123)), "2015-07-30T20:00:00Z");
    }
}
