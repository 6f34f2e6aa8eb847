//! The OTP object as SMS.CX clients expect it: all 13 keys, in schema order, `null` where
//! unset, dates as `YYYY-MM-DD HH:MM:SS` UTC.

use otpd_core::store::CallbackJob;
use otpd_core::{Timestamp, Verification, VerificationStatus};
use serde::Serialize;

/// The native spelling of a status.
pub fn status_name(status: VerificationStatus) -> &'static str {
    match status {
        VerificationStatus::Pending => "PENDING",
        VerificationStatus::Approved => "VERIFIED",
        VerificationStatus::Expired => "EXPIRED",
        VerificationStatus::Canceled => "CANCELLED",
        VerificationStatus::MaxAttemptsReached => "FAILED",
    }
}

/// `YYYY-MM-DD HH:MM:SS` in UTC.
pub fn date(timestamp: Timestamp) -> String {
    let format = time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]:[second]");
    time::OffsetDateTime::from_unix_timestamp(timestamp.unix_seconds())
        .ok()
        .and_then(|t| t.format(&format).ok())
        .unwrap_or_else(|| "1970-01-01 00:00:00".to_string())
}

/// The OTP object (`NewOtpResponse`, `DataOtp`, and each callback item). Every key but the
/// two otpd extensions is always present, `null` where unset.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct OtpObject {
    /// The verification's id: a lower-case UUID v7.
    #[schema(example = "01a2088a-b9aa-7443-bc2c-592ef51a50d3")]
    otp_id: String,
    /// The caller's `trackId`, in lower case.
    #[schema(required = true, example = "3b90b6d3-4fd6-40d8-9b2d-310cb50f201d")]
    track_id: Option<String>,
    /// The destination in E.164.
    #[schema(example = "+33612345678")]
    phone_number: String,
    /// ISO 3166-1 alpha-2 country of the number (`ZZ` for an email verification).
    #[schema(example = "FR")]
    country_iso: String,
    /// The verification status.
    #[schema(value_type = OtpStatus)]
    status: &'static str,
    /// `parts ×` the configured price of the destination country, else 0.
    cost: f64,
    /// SMS segments of the rendered message.
    parts: u32,
    /// Wrong PINs tolerated.
    max_attempts: u32,
    /// Wrong PINs counted so far.
    attempts: u32,
    /// Seconds the code is valid.
    ttl: u32,
    /// Where status callbacks go.
    #[schema(required = true)]
    otp_callback_url: Option<String>,
    /// `YYYY-MM-DD HH:MM:SS` UTC.
    #[schema(example = "2026-11-23 13:01:47")]
    date_created: String,
    /// `YYYY-MM-DD HH:MM:SS` UTC: `dateCreated + ttl`.
    #[schema(example = "2026-11-23 13:04:47")]
    date_expires: String,
    /// otpd extension (responses only, not callbacks): FAILED / SENT / SUCCESS.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<DeliveryStatus>)]
    delivery_status: Option<&'static str>,
    /// otpd extension (responses only, not callbacks): every send with its transmission
    /// status.
    #[serde(skip_serializing_if = "Option::is_none")]
    deliveries: Option<Vec<DeliveryObject>>,
}

/// A native verification status.
#[derive(utoipa::ToSchema)]
#[allow(dead_code, clippy::upper_case_acronyms)]
pub enum OtpStatus {
    /// Waiting for the right PIN.
    PENDING,
    /// The right PIN was given.
    VERIFIED,
    /// `dateExpires` passed.
    EXPIRED,
    /// Cancelled by the caller.
    CANCELLED,
    /// Too many wrong PINs.
    FAILED,
}

/// The one-word transmission summary (otpd extension): `SUCCESS` (verified), `FAILED` (no
/// message left otpd), `SENT` (otherwise).
#[derive(utoipa::ToSchema)]
#[allow(dead_code, clippy::upper_case_acronyms)]
pub enum DeliveryStatus {
    /// Every send failed.
    FAILED,
    /// A message left otpd; the code was not verified.
    SENT,
    /// The code was verified.
    SUCCESS,
}

/// One send as the native API shows it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeliveryObject {
    /// The send's id (UUID).
    delivery_id: String,
    /// `sms`, `whatsapp`, `call` or `email`.
    channel: &'static str,
    /// `queued`, `sent`, `delivered`, `undelivered` or `failed`.
    status: &'static str,
    /// The provider that took (or last tried) the send.
    #[schema(required = true)]
    provider: Option<String>,
    /// The provider's message id.
    #[schema(required = true)]
    provider_message_id: Option<String>,
    /// The provider's error code, if any.
    #[schema(required = true)]
    error_code: Option<String>,
    /// The error text, if any.
    #[schema(required = true)]
    error: Option<String>,
    /// What the provider charged, if it said.
    #[schema(required = true)]
    price: Option<f64>,
    /// The currency of `price`.
    #[schema(required = true)]
    price_unit: Option<String>,
    /// Segments the provider reported.
    #[schema(required = true)]
    parts: Option<u32>,
    /// `YYYY-MM-DD HH:MM:SS` UTC.
    date_created: String,
    /// `YYYY-MM-DD HH:MM:SS` UTC.
    date_updated: String,
}

impl OtpObject {
    /// The object for `verification`, reporting `status`.
    pub fn new(verification: &Verification, status: VerificationStatus) -> Self {
        OtpObject {
            otp_id: verification.id.to_string(),
            track_id: verification.track_id.map(|t| t.hyphenated().to_string()),
            phone_number: verification.to.as_str().to_string(),
            // Email verifications (started through the Twilio API) have no country; SMS.CX
            // clients insist on two letters, so they read "ZZ" (CLDR's unknown region).
            country_iso: verification
                .country
                .as_ref()
                .map_or("ZZ", |c| c.as_str())
                .to_string(),
            status: status_name(status),
            cost: verification.cost,
            parts: verification.parts,
            max_attempts: verification.max_attempts.get(),
            attempts: verification.attempts,
            ttl: verification.ttl.get(),
            otp_callback_url: verification.callback_url.clone(),
            date_created: date(verification.created_at),
            date_expires: date(verification.expires_at),
            delivery_status: None,
            deliveries: None,
        }
    }

    /// The object with its sends and their summary (API responses).
    pub fn with_deliveries(
        mut self,
        status: VerificationStatus,
        attempts: &[otpd_core::DeliveryAttempt],
    ) -> Self {
        self.delivery_status = Some(otpd_core::TransmissionSummary::of(status, attempts).as_str());
        self.deliveries = Some(
            attempts
                .iter()
                .map(|a| DeliveryObject {
                    delivery_id: a.id.to_string(),
                    channel: a.channel.as_str(),
                    status: a.status.as_str(),
                    provider: a.provider.clone(),
                    provider_message_id: a.provider_ref.clone(),
                    error_code: a.error_code.clone(),
                    error: a.error.clone(),
                    price: a.price,
                    price_unit: a.price_unit.clone(),
                    parts: a.segments,
                    date_created: date(a.created_at),
                    date_updated: date(a.updated_at),
                })
                .collect(),
        );
        self
    }
}

#[derive(Serialize)]
struct OtpUpdate<'a> {
    event: &'a str,
    data: [OtpObject; 1],
}

/// The `otp_update` callback body for one status change.
pub fn callback_body(job: &CallbackJob) -> String {
    let update = OtpUpdate {
        event: "otp_update",
        data: [OtpObject::new(&job.verification, job.status)],
    };
    serde_json::to_string(&update).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_use_the_smscx_format() {
        assert_eq!(date(Timestamp(1_666_083_707_000)), "2022-10-18 09:01:47");
    }
}
