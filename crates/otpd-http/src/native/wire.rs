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

/// The OTP object (`NewOtpResponse`, `DataOtp`, and each callback item).
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OtpObject {
    otp_id: String,
    track_id: Option<String>,
    phone_number: String,
    country_iso: String,
    status: &'static str,
    cost: f64,
    parts: u32,
    max_attempts: u32,
    attempts: u32,
    ttl: u32,
    otp_callback_url: Option<String>,
    date_created: String,
    date_expires: String,
    /// otpd extension (responses only, not callbacks): FAILED / SENT / SUCCESS.
    #[serde(skip_serializing_if = "Option::is_none")]
    delivery_status: Option<&'static str>,
    /// otpd extension (responses only, not callbacks): every send with its transmission
    /// status.
    #[serde(skip_serializing_if = "Option::is_none")]
    deliveries: Option<Vec<DeliveryObject>>,
}

/// One send as the native API shows it.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DeliveryObject {
    delivery_id: String,
    channel: &'static str,
    status: &'static str,
    provider: Option<String>,
    provider_message_id: Option<String>,
    error_code: Option<String>,
    error: Option<String>,
    price: Option<f64>,
    price_unit: Option<String>,
    parts: Option<u32>,
    date_created: String,
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
