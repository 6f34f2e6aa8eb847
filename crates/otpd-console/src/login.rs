//! Signing in and out: the password form, the authenticator-code step, invitations, and
//! sign-out here or everywhere. Forms before sign-in are protected from cross-site posts by a
//! pre-session cookie whose derived token the form must carry (double submit).

use askama::Template;
use axum::Form;
use axum::extract::{FromRequestParts, Path, State};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use otpd_core::audit::{ActedBy, Actor};
use otpd_core::auth::ClientIp;
use otpd_core::operators::{SignInError, check_password, random_token};
use otpd_core::store::OperatorStore;
use otpd_core::{Clock, Secret, Store};

use crate::session::{
    Fields, Signed, check_form, clear_cookie, cookie_token, csrf_for, set_cookie,
};
use crate::{ConsoleError, ConsoleState};

/// The pre-session cookie of the sign-in forms.
const PRE_COOKIE: &str = "otpd_console_pre";

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage {
    csrf: String,
    dev_mode: bool,
    error: Option<String>,
    email: String,
    code_step: bool,
    invited: Option<String>,
}

impl LoginPage {
    fn new(csrf: String, dev_mode: bool) -> LoginPage {
        LoginPage {
            csrf,
            dev_mode,
            error: None,
            email: String::new(),
            code_step: false,
            invited: None,
        }
    }
}

/// The browser's pre-session token, or a fresh one (set by the answer).
pub struct PreSession {
    token: String,
    fresh: bool,
}

impl<S: Send + Sync> FromRequestParts<S> for PreSession {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let existing = parts
            .headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .filter_map(|pair| pair.trim().split_once('='))
            .find(|(name, value)| *name == PRE_COOKIE && !value.is_empty())
            .map(|(_, value)| value.to_string());
        Ok(match existing {
            Some(token) => PreSession {
                token,
                fresh: false,
            },
            None => PreSession {
                token: random_token(),
                fresh: true,
            },
        })
    }
}

impl PreSession {
    fn csrf(&self) -> String {
        csrf_for(&self.token)
    }

    /// A browser without the cookie gets a fresh random token here, which no form carries.
    fn check(&self, form: &Fields) -> Result<(), ConsoleError> {
        check_form(form, &self.token)
    }

    /// `response` with the pre-session cookie set when it is new.
    fn keep(&self, mut response: Response, secure: bool) -> Response {
        if self.fresh {
            let secure = if secure { "; Secure" } else { "" };
            let cookie = format!(
                "{PRE_COOKIE}={}; Path=/console; HttpOnly; SameSite=Strict{secure}",
                self.token
            );
            if let Ok(value) = cookie.parse() {
                response.headers_mut().append(header::SET_COOKIE, value);
            }
        }
        response
    }
}

fn render(page: LoginPage, status: StatusCode) -> Response {
    match page.render() {
        Ok(body) => (status, [(header::CACHE_CONTROL, "no-store")], Html(body)).into_response(),
        Err(error) => ConsoleError::internal(error).into_response(),
    }
}

/// `GET /console/login`.
pub async fn form<S, C>(State(state): State<ConsoleState<S, C>>, pre: PreSession) -> Response
where
    S: Store + OperatorStore + Clone,
    C: Clock + Clone,
{
    let page = LoginPage::new(pre.csrf(), state.dev_mode);
    pre.keep(render(page, StatusCode::OK), state.secure_cookies)
}

/// `POST /console/login`: email and password; 303 to the console, to the code step, or the
/// form again with why (401 wrong, 429 locked).
pub async fn submit<S, C>(
    State(state): State<ConsoleState<S, C>>,
    pre: PreSession,
    ip: Option<axum::Extension<ClientIp>>,
    Form(form): Form<Fields>,
) -> Result<Response, ConsoleError>
where
    S: Store + OperatorStore + Clone,
    C: Clock + Clone,
{
    pre.check(&form)?;
    let email = form.get("email").cloned().unwrap_or_default();
    let password = Secret::new(form.get("password").cloned().unwrap_or_default());
    let mut page = LoginPage::new(pre.csrf(), state.dev_mode);
    page.email = email.trim().to_string();
    match state
        .operators
        .sign_in(&state.passwords, &email, password)
        .await
    {
        Ok((operator, session)) => {
            let next = if session.session.second_factor_pending {
                "/console/login/code"
            } else {
                tracing::info!(operator = %operator.email, "console sign-in");
                let source = ip.and_then(|axum::Extension(ip)| ip.text());
                record_sign_in(&state, &operator.email, source).await?;
                "/console/"
            };
            Ok(signed_in(
                next,
                session.token.expose(),
                state.secure_cookies,
            ))
        }
        Err(error) => refused(page, error, "Wrong email or password."),
    }
}

/// The form again with why a sign-in step was refused: 429 locked, 401 otherwise (`wrong`
/// says what was wrong).
fn refused(mut page: LoginPage, error: SignInError, wrong: &str) -> Result<Response, ConsoleError> {
    match error {
        SignInError::Locked { .. } => {
            page.error = Some(
                "Too many failed sign-ins: this account is locked for a while. Try again later or ask an admin.".into(),
            );
            Ok(render(page, StatusCode::TOO_MANY_REQUESTS))
        }
        SignInError::Store(error) => Err(error.into()),
        _ => {
            page.error = Some(wrong.to_string());
            Ok(render(page, StatusCode::UNAUTHORIZED))
        }
    }
}

/// Records a completed sign-in in the audit log.
async fn record_sign_in<S, C>(
    state: &ConsoleState<S, C>,
    email: &str,
    source: Option<String>,
) -> Result<(), ConsoleError>
where
    S: Store + OperatorStore + Clone,
    C: Clock + Clone,
{
    let by = ActedBy {
        actor: Actor::Operator(email.to_string()),
        source,
    };
    state
        .verifier
        .manage()
        .record(
            &by,
            None,
            "operator.sign_in",
            email.to_string(),
            serde_json::json!({}),
        )
        .await?;
    Ok(())
}

/// A 303 to the sign-in page that removes the session cookie.
fn signed_out(secure: bool) -> Response {
    (
        StatusCode::SEE_OTHER,
        [
            (header::LOCATION, "/console/login".to_string()),
            (header::SET_COOKIE, clear_cookie(secure)),
        ],
    )
        .into_response()
}

/// A 303 to `next` that sets the session cookie.
fn signed_in(next: &str, token: &str, secure: bool) -> Response {
    (
        StatusCode::SEE_OTHER,
        [
            (header::LOCATION, next.to_string()),
            (header::SET_COOKIE, set_cookie(token, secure)),
        ],
    )
        .into_response()
}

/// `GET /console/login/code`: the authenticator-code step of a pending sign-in.
pub async fn code_form<S, C>(
    State(state): State<ConsoleState<S, C>>,
    parts: Parts,
) -> Result<Response, ConsoleError>
where
    S: Store + OperatorStore + Clone,
    C: Clock + Clone,
{
    let token = pending_token(&state, &parts).await?;
    let mut page = LoginPage::new(csrf_for(&token), state.dev_mode);
    page.code_step = true;
    Ok(render(page, StatusCode::OK))
}

/// `POST /console/login/code`.
pub async fn code_submit<S, C>(
    State(state): State<ConsoleState<S, C>>,
    parts: Parts,
    Form(form): Form<Fields>,
) -> Result<Response, ConsoleError>
where
    S: Store + OperatorStore + Clone,
    C: Clock + Clone,
{
    let token = pending_token(&state, &parts).await?;
    check_form(&form, &token)?;
    let Some((_, session)) = state.operators.session(&token).await? else {
        return Err(ConsoleError::SignedOut);
    };
    let code = form.get("code").map(String::as_str).unwrap_or_default();
    let mut page = LoginPage::new(csrf_for(&token), state.dev_mode);
    page.code_step = true;
    match state.operators.second_factor(&session, code).await {
        Ok(full) => {
            if let Some(operator) = state.operators.session(full.token.expose()).await? {
                let source = parts.extensions.get::<ClientIp>().and_then(ClientIp::text);
                record_sign_in(&state, &operator.0.email, source).await?;
            }
            Ok(signed_in(
                "/console/",
                full.token.expose(),
                state.secure_cookies,
            ))
        }
        Err(error) => refused(page, error, "Wrong or already used code."),
    }
}

/// The token of a session waiting for its second factor.
async fn pending_token<S, C>(
    state: &ConsoleState<S, C>,
    parts: &Parts,
) -> Result<String, ConsoleError>
where
    S: Store + OperatorStore + Clone,
    C: Clock + Clone,
{
    let token = cookie_token(parts).ok_or(ConsoleError::SignedOut)?;
    match state.operators.session(&token).await? {
        Some((_, session)) if session.second_factor_pending => Ok(token),
        _ => Err(ConsoleError::SignedOut),
    }
}

/// `POST /console/logout`: ends this session.
pub async fn sign_out<S, C>(
    State(state): State<ConsoleState<S, C>>,
    signed: Signed,
    Form(form): Form<Fields>,
) -> Result<Response, ConsoleError>
where
    S: Store + OperatorStore + Clone,
    C: Clock + Clone,
{
    signed.check_csrf(&form)?;
    state.operators.sign_out(signed.token().expose()).await?;
    Ok(signed_out(state.secure_cookies))
}

/// `POST /console/logout/everywhere`: ends every session of the operator, this one too.
pub async fn sign_out_everywhere<S, C>(
    State(state): State<ConsoleState<S, C>>,
    signed: Signed,
    Form(form): Form<Fields>,
) -> Result<Response, ConsoleError>
where
    S: Store + OperatorStore + Clone,
    C: Clock + Clone,
{
    signed.check_csrf(&form)?;
    let ended = state
        .operators
        .sign_out_everywhere(signed.operator.id)
        .await?;
    let manage = state.verifier.manage();
    manage
        .record(
            &signed.acted_by(),
            None,
            "operator.sign_out_everywhere",
            signed.operator.email.clone(),
            serde_json::json!({"sessionsEnded": ended}),
        )
        .await?;
    Ok(signed_out(state.secure_cookies))
}

/// `GET /console/invite/{token}`: the set-a-password form of an invitation.
pub async fn invitation<S, C>(
    State(state): State<ConsoleState<S, C>>,
    Path(token): Path<String>,
    pre: PreSession,
) -> Result<Response, ConsoleError>
where
    S: Store + OperatorStore + Clone,
    C: Clock + Clone,
{
    let operator = state
        .operators
        .invited(&token)
        .await?
        .ok_or(ConsoleError::NotFound)?;
    let mut page = LoginPage::new(pre.csrf(), state.dev_mode);
    page.invited = Some(operator.email);
    Ok(pre.keep(render(page, StatusCode::OK), state.secure_cookies))
}

/// `POST /console/invite/{token}`: sets the password, then back to sign-in.
pub async fn accept<S, C>(
    State(state): State<ConsoleState<S, C>>,
    Path(token): Path<String>,
    pre: PreSession,
    parts: Parts,
    Form(form): Form<Fields>,
) -> Result<Response, ConsoleError>
where
    S: Store + OperatorStore + Clone,
    C: Clock + Clone,
{
    pre.check(&form)?;
    let operator = state
        .operators
        .invited(&token)
        .await?
        .ok_or(ConsoleError::NotFound)?;
    let password = Secret::new(form.get("password").cloned().unwrap_or_default());
    if let Err(error) = check_password(&password) {
        let mut page = LoginPage::new(pre.csrf(), state.dev_mode);
        page.invited = Some(operator.email);
        page.error = Some(format!("{}.", capitalised(&error.to_string())));
        return Ok(render(page, StatusCode::BAD_REQUEST));
    }
    let hash = otpd_core::operators::PasswordWork::hash(&state.passwords, password).await;
    let email = operator.email.clone();
    state.operators.accept_invitation(operator, hash).await?;
    let by = ActedBy {
        actor: Actor::Operator(email.clone()),
        source: parts.extensions.get::<ClientIp>().and_then(ClientIp::text),
    };
    state
        .verifier
        .manage()
        .record(
            &by,
            None,
            "operator.accept_invitation",
            email,
            serde_json::json!({"changed": "the password"}),
        )
        .await?;
    Ok(Redirect::to("/console/login").into_response())
}

fn capitalised(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}
