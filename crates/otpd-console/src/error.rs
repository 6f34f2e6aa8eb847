//! Why a console request failed, as the page a person sees: every failure is an HTML page
//! with the right status, never a bare status or a stack trace.

use askama::Template;
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Redirect, Response};

/// A console request's failure.
#[derive(Debug)]
pub enum ConsoleError {
    /// No valid session: back to the sign-in page.
    SignedOut,
    /// The operator's role does not allow this, or the form's CSRF token is missing or wrong.
    Forbidden(&'static str),
    NotFound,
    /// A malformed parameter, with what is wrong.
    BadRequest(String),
    /// The store failed (logged; the page says only that it did).
    Internal(String),
}

impl ConsoleError {
    /// Logs `error` and answers the generic failure page.
    pub fn internal(error: impl std::fmt::Display) -> ConsoleError {
        tracing::error!(%error, "console request failed");
        ConsoleError::Internal(error.to_string())
    }
}

impl From<otpd_core::StoreError> for ConsoleError {
    fn from(error: otpd_core::StoreError) -> Self {
        ConsoleError::internal(error)
    }
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage<'a> {
    status: u16,
    title: &'a str,
    message: &'a str,
}

fn page(status: StatusCode, title: &str, message: &str) -> Response {
    let body = ErrorPage {
        status: status.as_u16(),
        title,
        message,
    }
    .render()
    .unwrap_or_else(|_| title.to_string());
    (status, Html(body)).into_response()
}

impl IntoResponse for ConsoleError {
    fn into_response(self) -> Response {
        match self {
            ConsoleError::SignedOut => Redirect::to("/console/login").into_response(),
            ConsoleError::Forbidden(why) => page(StatusCode::FORBIDDEN, "Not allowed", why),
            ConsoleError::NotFound => page(
                StatusCode::NOT_FOUND,
                "Not found",
                "There is nothing at this address.",
            ),
            ConsoleError::BadRequest(why) => page(StatusCode::BAD_REQUEST, "Bad request", &why),
            ConsoleError::Internal(_) => page(
                StatusCode::INTERNAL_SERVER_ERROR,
                "Something went wrong",
                "The console could not read or write the database. The server log has the cause; try again.",
            ),
        }
    }
}
