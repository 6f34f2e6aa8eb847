//! What every HTTP adapter shares: classifying HTTP failures into [`SendError`] classes and
//! the small wire helpers providers disagree on.

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
}
