//! The signed-in operator of a request, read from the session cookie, and the checks every
//! change goes through: the form's CSRF token, then the role.

use std::collections::HashMap;

use axum::extract::FromRequestParts;
use axum::http::header;
use axum::http::request::Parts;
use hmac::{KeyInit, Mac};
use otpd_core::audit::{ActedBy, Actor};
use otpd_core::auth::ClientIp;
use otpd_core::operators::{Operator, Permission};
use otpd_core::store::OperatorStore;
use otpd_core::{Clock, Secret, Store};

use crate::{ConsoleError, ConsoleState};

/// The session cookie's name.
pub const COOKIE: &str = "otpd_console";

/// A form's fields, as posted.
pub type Fields = HashMap<String, String>;

/// The operator signed in on this request, with the CSRF token its forms carry.
pub struct Signed {
    pub operator: Operator,
    /// The session token (from the cookie): the CSRF token is derived from it.
    token: Secret,
    /// The client's address, for the audit log.
    source: Option<String>,
}

impl Signed {
    /// The token every form of this session carries: HMAC-SHA256 of a fixed label under the
    /// session token, so it needs no storage and dies with the session.
    pub fn csrf(&self) -> String {
        csrf_for(self.token.expose())
    }

    /// Whether the operator's role grants `permission`.
    pub fn may(&self, permission: Permission) -> bool {
        self.operator.role.may(permission)
    }

    /// Refuses a read the role does not grant.
    pub fn require(&self, permission: Permission) -> Result<(), ConsoleError> {
        if self.may(permission) {
            Ok(())
        } else {
            Err(ConsoleError::Forbidden(
                "Your role does not allow this. Ask an admin.",
            ))
        }
    }

    /// The checks of a change: the form's `csrf` field first (a cross-site post has none),
    /// then the role.
    pub fn post(&self, form: &Fields, permission: Permission) -> Result<(), ConsoleError> {
        self.check_csrf(form)?;
        self.require(permission)
    }

    /// Refuses a form without this session's CSRF token.
    pub fn check_csrf(&self, form: &Fields) -> Result<(), ConsoleError> {
        check_form(form, self.token.expose())
    }

    /// Who is acting, for the audit log.
    pub fn acted_by(&self) -> ActedBy {
        ActedBy {
            actor: Actor::Operator(self.operator.email.clone()),
            source: self.source.clone(),
        }
    }

    /// The session token (sign-out).
    pub fn token(&self) -> &Secret {
        &self.token
    }
}

/// Refuses a form that does not carry the CSRF token derived from `token` (a session's, or
/// before sign-in the pre-session cookie's): one check for every form of the console.
pub fn check_form(form: &Fields, token: &str) -> Result<(), ConsoleError> {
    let given = form.get("csrf").map(String::as_str).unwrap_or_default();
    if !given.is_empty() && same(given, &csrf_for(token)) {
        Ok(())
    } else {
        Err(ConsoleError::Forbidden(
            "This form expired or did not come from the console. Reload the page and try again.",
        ))
    }
}

/// The CSRF token of the session whose token is `token`.
pub fn csrf_for(token: &str) -> String {
    // HMAC takes a key of any length; were it ever refused, no form would match (refused,
    // not accepted).
    <hmac::Hmac<sha2::Sha256> as KeyInit>::new_from_slice(token.as_bytes())
        .map(|mut mac| {
            mac.update(b"otpd console csrf");
            hex::encode(mac.finalize().into_bytes())
        })
        .unwrap_or_default()
}

/// Constant-time equality of two tokens.
pub fn same(a: &str, b: &str) -> bool {
    use subtle::ConstantTimeEq;
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

/// The session token in the request's cookie, if any.
pub fn cookie_token(parts: &Parts) -> Option<String> {
    parts
        .headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value.to_string())
}

/// The `Set-Cookie` value that stores `token` for the console's paths only.
pub fn set_cookie(token: &str, secure: bool) -> String {
    let secure = if secure { "; Secure" } else { "" };
    format!("{COOKIE}={token}; Path=/console; HttpOnly; SameSite=Strict{secure}")
}

/// The `Set-Cookie` value that removes the session cookie.
pub fn clear_cookie(secure: bool) -> String {
    let secure = if secure { "; Secure" } else { "" };
    format!("{COOKIE}=; Path=/console; HttpOnly; SameSite=Strict; Max-Age=0{secure}")
}

impl<S, C> FromRequestParts<ConsoleState<S, C>> for Signed
where
    S: Store + OperatorStore + Clone,
    C: Clock + Clone,
{
    type Rejection = ConsoleError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &ConsoleState<S, C>,
    ) -> Result<Self, Self::Rejection> {
        let token = cookie_token(parts).ok_or(ConsoleError::SignedOut)?;
        let (operator, session) = state
            .operators
            .session(&token)
            .await?
            .ok_or(ConsoleError::SignedOut)?;
        if session.second_factor_pending {
            return Err(ConsoleError::SignedOut);
        }
        let source = parts.extensions.get::<ClientIp>().and_then(ClientIp::text);
        Ok(Signed {
            operator,
            token: Secret::new(token),
            source,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_csrf_token_belongs_to_one_session() {
        let one = csrf_for("session-one");
        assert_eq!(one, csrf_for("session-one"), "stable for a session");
        assert_ne!(
            one,
            csrf_for("session-two"),
            "another session's token differs"
        );
        assert_eq!(one.len(), 64);
        assert!(same(&one, &csrf_for("session-one")));
        assert!(!same(&one, ""));
        assert!(!same(&one, &one[..63]));
    }

    #[test]
    fn the_session_cookie_is_http_only_strict_and_scoped_to_the_console() {
        let cookie = set_cookie("t", false);
        assert_eq!(
            cookie,
            "otpd_console=t; Path=/console; HttpOnly; SameSite=Strict"
        );
        assert!(set_cookie("t", true).ends_with("; Secure"));
        assert!(clear_cookie(false).contains("Max-Age=0"));
    }
}
