//! Delivery-receipt endpoints: `GET|POST /webhooks/{provider}`. Each configured provider
//! checks its own signature over the raw request; a forged or malformed receipt is answered
//! 4xx and changes nothing.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use otpd_core::{Clock, Store};
use otpd_delivery::{InboundRequest, ReceiptError, ReceiptHandlingError, ReceiptReply};
use serde_json::json;

use crate::AppState;

/// Receives one provider's receipt.
pub async fn receive<S: Store + Clone, C: Clock + Clone>(
    State(state): State<AppState<S, C>>,
    Path(provider): Path<String>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let webhook = InboundRequest {
        method: method.as_str().to_string(),
        url: public_url(&state, &headers, &uri),
        headers: headers
            .iter()
            .filter_map(|(name, value)| {
                Some((name.as_str().to_string(), value.to_str().ok()?.to_string()))
            })
            .collect(),
        body: body.to_vec(),
    };
    let Some(receipts) = &state.receipts else {
        return refuse(
            StatusCode::NOT_FOUND,
            "not_found",
            "receipts are not enabled",
        );
    };
    match receipts.handle(&provider, &webhook).await {
        Ok(ReceiptReply::Receipts(_)) => StatusCode::NO_CONTENT.into_response(),
        Ok(ReceiptReply::Challenge(challenge)) => (StatusCode::OK, challenge).into_response(),
        Err(ReceiptHandlingError::UnknownProvider) => refuse(
            StatusCode::NOT_FOUND,
            "unknown_provider",
            "no provider is configured under this name",
        ),
        Err(ReceiptHandlingError::Refused(ReceiptError::Forged(why))) => {
            tracing::warn!(provider, %why, "forged delivery receipt refused");
            refuse(StatusCode::FORBIDDEN, "invalid_signature", &why)
        }
        Err(ReceiptHandlingError::Refused(ReceiptError::Malformed(why))) => {
            refuse(StatusCode::BAD_REQUEST, "malformed_receipt", &why)
        }
        Err(ReceiptHandlingError::Refused(ReceiptError::NotSupported)) => refuse(
            StatusCode::NOT_FOUND,
            "no_receipts",
            "this provider does not send receipts",
        ),
        Err(ReceiptHandlingError::Store(error)) => crate::internal(error).into_response(),
    }
}

fn refuse(status: StatusCode, code: &str, message: &str) -> Response {
    (status, Json(json!({"error": code, "message": message}))).into_response()
}

/// The URL the provider called, as it signed it: the configured public base URL (or the
/// request's `Host`) plus the path and query received.
fn public_url<S, C>(state: &AppState<S, C>, headers: &HeaderMap, uri: &Uri) -> String {
    let path_and_query = uri.path_and_query().map_or("/", |p| p.as_str());
    let base = state.public_base_url.clone().unwrap_or_else(|| {
        let host = headers
            .get(axum::http::header::HOST)
            .and_then(|h| h.to_str().ok())
            .unwrap_or("localhost");
        format!("http://{host}")
    });
    format!("{}{path_and_query}", base.trim_end_matches('/'))
}
