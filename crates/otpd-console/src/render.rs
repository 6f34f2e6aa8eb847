//! What every page shares: the frame around it (navigation, search, the operator, the dev
//! banner), times, masked numbers, and rendering a template into a response.

use askama::Template;
use axum::response::{Html, IntoResponse, Response};
use otpd_core::Timestamp;
use otpd_core::operators::Permission;

use crate::ConsoleError;
use crate::session::Signed;

/// The frame of a signed-in page.
pub struct Chrome {
    pub email: String,
    pub role: &'static str,
    pub csrf: String,
    pub dev_mode: bool,
    /// The navigation entry to mark as current.
    pub section: &'static str,
    /// What the last action did, shown once at the top.
    pub notice: Option<String>,
}

impl Chrome {
    pub fn new(signed: &Signed, dev_mode: bool, section: &'static str) -> Chrome {
        Chrome {
            email: signed.operator.email.clone(),
            role: signed.operator.role.as_str(),
            csrf: signed.csrf(),
            dev_mode,
            section,
            notice: None,
        }
    }

    /// The frame with the notice an action's redirect asked for (`?done=`), from a fixed
    /// list: a page never echoes text from its address.
    pub fn with_notice(mut self, done: Option<&str>) -> Chrome {
        self.notice = done.and_then(notice_text).map(str::to_string);
        self
    }

    /// `aria-current` for a navigation entry.
    pub fn current(&self, section: &str) -> &'static str {
        if self.section == section {
            "page"
        } else {
            "false"
        }
    }
}

fn notice_text(done: &str) -> Option<&'static str> {
    Some(match done {
        "lifted" => "Quarantine lifted: starts to this prefix are sent again.",
        "safe-listed" => {
            "Number added to the safe list: its starts skip the rate limits and pumping checks."
        }
        "canceled" => "Verification canceled.",
        "key-revoked" => "API key revoked: it is refused from now on.",
        "service-saved" => "Service settings saved.",
        "replayed" => "The post is queued again: the webhook worker sends it within a second.",
        "signed-out-everywhere" => "Every other session of yours has ended.",
        _ => return None,
    })
}

/// A template rendered as a page.
pub fn show(template: impl Template) -> Result<Response, ConsoleError> {
    let body = template.render().map_err(ConsoleError::internal)?;
    Ok((
        [(axum::http::header::CACHE_CONTROL, "no-store")],
        Html(body),
    )
        .into_response())
}

/// A moment as pages show it: UTC text the browser's script turns into the operator's time
/// zone, with the UTC time kept on hover.
#[derive(Debug, Clone)]
pub struct When {
    /// RFC 3339, UTC (the `datetime` attribute).
    pub iso: String,
    /// `2026-12-06 10:42:07 UTC`.
    pub text: String,
}

pub fn when(at: Timestamp) -> When {
    let moment = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(at.0) * 1_000_000)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    let iso = moment
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    let text = format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02} UTC",
        moment.year(),
        u8::from(moment.month()),
        moment.day(),
        moment.hour(),
        moment.minute(),
        moment.second()
    );
    When { iso, text }
}

/// A destination as this operator may see it: whole for support and admins, masked for
/// viewers.
pub fn shown(signed: &Signed, to: &otpd_core::Recipient) -> String {
    if signed.may(Permission::SeeFullNumbers) {
        to.as_str().to_string()
    } else {
        to.masked()
    }
}

/// A duration in seconds as people read it (`4 s`, `2 min 5 s`).
pub fn seconds(value: Option<f64>) -> String {
    match value {
        None => "–".to_string(),
        Some(s) if s < 60.0 => format!("{s:.0} s"),
        Some(s) => format!("{} min {} s", (s / 60.0).floor(), (s % 60.0).round()),
    }
}

/// A share as a percentage.
pub fn percent(share: f64) -> String {
    format!("{:.1} %", share * 100.0)
}

/// Percent-encodes a path segment (a destination in a link).
pub fn segment(text: &str) -> String {
    url::form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_shown_in_utc_with_their_rfc3339_form() {
        let at = when(Timestamp(1_796_553_727_000));
        assert_eq!(at.text, "2026-12-06 10:42:07 UTC");
        assert_eq!(at.iso, "2026-12-06T10:42:07Z");
    }

    #[test]
    fn a_destination_in_a_link_is_percent_encoded() {
        assert_eq!(segment("+14155550100"), "%2B14155550100");
        assert_eq!(segment("a@b.example"), "a%40b.example");
    }
}
