//! The OpenAPI 3.1 document of the native and admin APIs, generated from the handlers'
//! annotations (`GET /openapi.json`), and a self-contained page that renders it (`GET /docs`).
//! The Twilio Verify v2 dialect follows Twilio's public specification instead.

use std::sync::OnceLock;

use axum::http::header;
use axum::response::{Html, IntoResponse, Response};
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::{admin, native};

/// Where Twilio publishes the specification the Twilio dialect follows.
pub const TWILIO_SPEC: &str =
    "https://github.com/twilio/twilio-oai/blob/main/spec/json/twilio_verify_v2.json";

/// The document.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "otpd",
        description = "OTP verification service. This document covers the native API (SMS.CX-compatible: `/oauth/*`, `/otp`) and the admin API (`/admin/v1`). The Twilio Verify v2 dialect served under `/v2` follows Twilio's public specification at https://github.com/twilio/twilio-oai/blob/main/spec/json/twilio_verify_v2.json and is not repeated here."
    ),
    paths(
        native::token::issue,
        native::token::revoke,
        native::otp::create,
        native::otp::read,
        native::otp::verify,
        native::otp::cancel,
        admin::quarantines::quarantines,
        admin::quarantines::lift,
        admin::events::events,
        admin::audit::audit,
        admin::destinations::export,
        admin::destinations::erase,
        admin::report::report,
        admin::protection::protection,
        admin::protection::update_protection,
        admin::webhooks::list_webhooks,
        admin::webhooks::create_webhook,
        admin::webhooks::delete_webhook,
        admin::webhooks::webhook_deliveries,
        admin::keys::rotate_token,
        admin::keys::list_keys,
        admin::keys::revoke_key,
    ),
    modifiers(&Security, &Version),
    tags(
        (name = "native", description = "The native API (SMS.CX-compatible), docs/api-native.md."),
        (name = "admin", description = "The admin API: quarantines, credentials (auth token, API keys), events, the audit log, a destination's export and erasure, webhooks, the lifecycle report and protection settings, docs/operations.md and docs/security.md."),
    )
)]
pub struct ApiDoc;

/// The security schemes the operations name.
struct Security;

impl Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearerToken",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "An access token from `POST /oauth/token` with the `otp` scope.",
                    ))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "apiKey",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                "X-API-KEY",
                "An application's API key.",
            ))),
        );
        components.add_security_scheme(
            "applicationBasic",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Basic)
                    .description(Some("The application id and its secret."))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "accountBasic",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Basic)
                    .description(Some(
                        "The account SID and auth token (the Twilio credentials).",
                    ))
                    .build(),
            ),
        );
    }
}

/// The version is the crate's.
struct Version;

impl Modify for Version {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        openapi.info.version = env!("CARGO_PKG_VERSION").to_string();
    }
}

/// The document as JSON, built once.
pub fn document() -> &'static str {
    static DOCUMENT: OnceLock<String> = OnceLock::new();
    DOCUMENT.get_or_init(|| ApiDoc::openapi().to_pretty_json().unwrap_or_default())
}

/// `GET /openapi.json`.
pub async fn openapi_json() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], document()).into_response()
}

/// `GET /docs`: renders `/openapi.json` in the browser; no asset comes from elsewhere.
pub async fn docs_page() -> Html<&'static str> {
    Html(include_str!("openapi_docs.html"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_document_is_openapi_3_1_and_names_the_twilio_spec() {
        let doc: serde_json::Value = serde_json::from_str(document()).unwrap();
        assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"));
        assert!(
            doc["info"]["description"]
                .as_str()
                .unwrap()
                .contains(TWILIO_SPEC)
        );
        assert_eq!(doc["info"]["version"], env!("CARGO_PKG_VERSION"));
    }
}
