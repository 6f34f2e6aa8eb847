//! The dev inbox: what the console provider sent, for local use only (it shows codes).

use axum::Json;
use axum::extract::{Query, State};
use axum::response::{Html, IntoResponse, Response};
use otpd_core::{Clock, Store};
use serde::{Deserialize, Serialize};

use crate::AppState;

/// Optional filter of `/dev/inbox.json`.
#[derive(Debug, Deserialize)]
pub struct InboxQuery {
    /// Only messages to this number (E.164).
    to: Option<String>,
}

#[derive(Serialize)]
struct Item {
    to: String,
    channel: String,
    from: String,
    body: String,
    sent_at: String,
}

fn items<S, C>(state: &AppState<S, C>, to: Option<&str>) -> Vec<Item> {
    state
        .inbox
        .as_ref()
        .map(|inbox| inbox.newest_first(to))
        .unwrap_or_default()
        .into_iter()
        .map(|m| Item {
            sent_at: crate::rfc3339(m.sent_at),
            to: m.to,
            channel: m.channel,
            from: m.from,
            body: m.body,
        })
        .collect()
}

/// Whether the request names otpd by a loopback name or address: the inbox shows codes, so
/// a page on another site that rebinds its own name to 127.0.0.1 must not read it.
pub fn loopback_host(headers: &axum::http::HeaderMap) -> bool {
    let Some(host) = headers
        .get(axum::http::header::HOST)
        .and_then(|h| h.to_str().ok())
    else {
        return false;
    };
    let name = match host.strip_prefix('[') {
        Some(rest) => rest.split(']').next().unwrap_or_default(),
        None => host.rsplit_once(':').map_or(host, |(name, _)| name),
    };
    match name.parse::<std::net::IpAddr>() {
        Ok(ip) => ip.is_loopback(),
        Err(_) => {
            let name = name.trim_end_matches('.').to_ascii_lowercase();
            name == "localhost" || name.ends_with(".localhost")
        }
    }
}

/// `GET /dev/inbox.json?to=+15551234567`: newest first.
pub async fn inbox_json<S: Store + Clone, C: Clock + Clone>(
    State(state): State<AppState<S, C>>,
    headers: axum::http::HeaderMap,
    Query(query): Query<InboxQuery>,
) -> Response {
    if !loopback_host(&headers) {
        return crate::native::error::no_such_path().into_response();
    }
    // A `+` in a query string may arrive decoded as a space.
    let to = query.to.map(|t| {
        let t = t.trim();
        if t.starts_with('+') {
            t.to_string()
        } else {
            format!("+{t}")
        }
    });
    Json(items(&state, to.as_deref())).into_response()
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// `GET /dev/inbox`: a small page, newest first, refreshing every two seconds.
pub async fn inbox_page<S: Store + Clone, C: Clock + Clone>(
    State(state): State<AppState<S, C>>,
    headers: axum::http::HeaderMap,
) -> Response {
    if !loopback_host(&headers) {
        return crate::native::error::no_such_path().into_response();
    }
    let rows: String = items(&state, None)
        .iter()
        .map(|m| {
            format!(
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td><code>{}</code></td></tr>",
                escape(&m.sent_at),
                escape(&m.channel),
                escape(&m.to),
                escape(&m.from),
                escape(&m.body)
            )
        })
        .collect();
    let empty = if rows.is_empty() {
        "<p>No messages yet. Start a verification and it appears here.</p>"
    } else {
        ""
    };
    Html(format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><meta http-equiv=\"refresh\" content=\"2\">\
         <title>otpd dev inbox</title><style>body{{font-family:system-ui,sans-serif;margin:2rem}}\
         table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;padding:.4rem .6rem;text-align:left}}\
         .warn{{color:#a00}}</style></head><body><h1>otpd dev inbox</h1>\
         <p class=\"warn\">Dev mode: messages and codes are shown in clear. Never enable this in production.</p>\
         {empty}<table><thead><tr><th>sent at (UTC)</th><th>channel</th><th>to</th><th>from</th><th>message</th></tr></thead>\
         <tbody>{rows}</tbody></table></body></html>"
    ))
    .into_response()
}
