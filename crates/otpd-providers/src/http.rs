//! The HTTP plumbing every adapter of this crate shares: one exchange turned into a status and
//! a body (or a transient [`SendError`]), failures classified into the worker's classes, form
//! and query encoding, and the small wire helpers providers disagree on.

use otpd_delivery::SendError;

/// Classifies a failed HTTP exchange by status when the body says nothing more specific:
/// 429 and 5xx are worth retrying, 401/403 are this provider's configuration, anything
/// else is a rejection of this message.
pub fn classify_status(
    status: u16,
    code: impl Into<String>,
    message: impl Into<String>,
) -> SendError {
    match status {
        408 | 429 | 500..=599 => SendError::transient(code, message),
        401..=403 => SendError::provider(code, message),
        _ => SendError::rejected(code, message),
    }
}

/// A request that never got an HTTP answer (refused, reset, timed out): transient.
pub fn transport_error(error: &reqwest::Error) -> SendError {
    let what = if error.is_timeout() {
        "timeout"
    } else if error.is_connect() {
        "connect"
    } else {
        "transport"
    };
    SendError::transient(what, error.to_string())
}

/// `+14155552671` → `14155552671`, for APIs that want digits only.
pub fn digits_only(e164: &str) -> &str {
    e164.strip_prefix('+').unwrap_or(e164)
}

/// Joins a configured base URL (with or without a trailing slash) and a path.
pub fn join(base: &str, path: &str) -> String {
    format!(
        "{}/{}",
        base.trim_end_matches('/'),
        path.trim_start_matches('/')
    )
}

/// Refuses a message on a channel an SMS-only adapter cannot carry: a routing mistake of this
/// provider's configuration, so another provider may still take it.
pub fn sms_only(kind: &str, message: &otpd_delivery::Message) -> Result<(), SendError> {
    if message.channel == otpd_core::Channel::Sms {
        Ok(())
    } else {
        Err(SendError::provider(
            "channel",
            format!("{kind} only sends SMS, not {}", message.channel.as_str()),
        ))
    }
}

/// Sends a prepared request and reads the whole answer: `(status, body)`. A request that
/// gets no answer (refused, reset, timed out, body cut) is a transient failure.
pub async fn exchange(request: reqwest::RequestBuilder) -> Result<(u16, Vec<u8>), SendError> {
    let response = request.send().await.map_err(|e| transport_error(&e))?;
    let status = response.status().as_u16();
    let body = response.bytes().await.map_err(|e| transport_error(&e))?;
    Ok((status, body.to_vec()))
}

/// `application/x-www-form-urlencoded` text of `pairs`, in order (reqwest's `form` feature is
/// not enabled in this workspace, and repeated names need an ordered list anyway).
pub fn form_body<K: AsRef<str>, V: AsRef<str>>(pairs: &[(K, V)]) -> String {
    let mut serializer = url::form_urlencoded::Serializer::new(String::new());
    for (key, value) in pairs {
        serializer.append_pair(key.as_ref(), value.as_ref());
    }
    serializer.finish()
}

/// A short, single-line excerpt of a provider's body for error messages (never a message
/// text: providers do not echo it in errors we keep).
pub fn excerpt(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let line: String = text.chars().take(200).collect();
    line.replace(['\n', '\r'], " ")
}

/// Appends `name=value` (value form-encoded) to a URL's query.
pub fn with_query_param(url: &str, name: &str, value: &str) -> String {
    let pair = form_body(&[(name, value)]);
    let (base, fragment) = match url.split_once('#') {
        Some((base, fragment)) => (base, Some(fragment)),
        None => (url, None),
    };
    let separator = if base.contains('?') {
        if base.ends_with('?') || base.ends_with('&') {
            ""
        } else {
            "&"
        }
    } else {
        "?"
    };
    match fragment {
        Some(fragment) => format!("{base}{separator}{pair}#{fragment}"),
        None => format!("{base}{separator}{pair}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_map_to_the_worker_classes() {
        assert!(matches!(
            classify_status(429, "429", "x"),
            SendError::Transient { .. }
        ));
        assert!(matches!(
            classify_status(503, "503", "x"),
            SendError::Transient { .. }
        ));
        assert!(matches!(
            classify_status(401, "401", "x"),
            SendError::Provider { .. }
        ));
        assert!(matches!(
            classify_status(400, "400", "x"),
            SendError::Rejected { .. }
        ));
    }

    #[test]
    fn joins_with_one_slash() {
        assert_eq!(join("http://a/", "/b"), "http://a/b");
        assert_eq!(join("http://a", "b"), "http://a/b");
        assert_eq!(digits_only("+33612345678"), "33612345678");
    }

    #[test]
    fn query_params_are_appended_encoded() {
        assert_eq!(
            with_query_param("https://a/b", "token", "x y&z"),
            "https://a/b?token=x+y%26z"
        );
        assert_eq!(
            with_query_param("https://a/b?c=1", "token", "t"),
            "https://a/b?c=1&token=t"
        );
    }
}
