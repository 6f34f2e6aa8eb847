//! Keys: each account with its Twilio-style API keys (create — the secret is shown once —
//! and revoke), its auth token (rotate) and its native applications. Admins only change
//! them; every change goes to the audit log.

use askama::Template;
use axum::Form;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use otpd_core::operators::Permission;
use otpd_core::store::OperatorStore;
use otpd_core::{AccountId, ApiKeyId, Clock, Store};

use crate::render::{Chrome, When, show, when};
use crate::session::{Fields, Signed};
use crate::verifications::sid_uuid;
use crate::{ConsoleError, ConsoleState};

pub struct KeyRow {
    pub sid: String,
    pub name: String,
    pub created: When,
}

pub struct AppRow {
    pub id: String,
    pub name: String,
    pub service: String,
    pub created: When,
}

pub struct AccountSection {
    pub sid: String,
    pub name: String,
    pub created: When,
    pub keys: Vec<KeyRow>,
    pub applications: Vec<AppRow>,
}

/// A secret just issued, shown on this one answer.
pub struct Issued {
    pub account: String,
    pub label: &'static str,
    pub sid: String,
    pub secret: String,
    /// A second credential issued with it (an application's API key).
    pub second: Option<(&'static str, String)>,
}

#[derive(Template)]
#[template(path = "keys.html")]
struct KeysPage {
    chrome: Chrome,
    accounts: Vec<AccountSection>,
    issued: Option<Issued>,
    can_manage: bool,
}

async fn render<S, C>(
    state: &ConsoleState<S, C>,
    signed: &Signed,
    issued: Option<Issued>,
    done: Option<&str>,
) -> Result<Response, ConsoleError>
where
    S: Store + OperatorStore + Clone,
    C: Clock + Clone,
{
    let manage = state.verifier.manage();
    let applications = manage.applications().await?;
    let mut accounts = Vec::new();
    for account in manage.accounts().await? {
        let keys = manage
            .api_keys(account.id)
            .await?
            .into_iter()
            .map(|key| KeyRow {
                sid: format!("SK{}", key.id.simple()),
                name: key.name,
                created: when(key.created_at),
            })
            .collect();
        let mut apps = Vec::new();
        for app in applications.iter().filter(|a| a.account_id == account.id) {
            let service = manage
                .service(app.service_id)
                .await?
                .map_or_else(|| "(deleted)".to_string(), |s| s.name);
            apps.push(AppRow {
                id: app.id.to_string(),
                name: app.name.clone(),
                service,
                created: when(app.created_at),
            });
        }
        accounts.push(AccountSection {
            sid: format!("AC{}", account.id.simple()),
            name: account.name,
            created: when(account.created_at),
            keys,
            applications: apps,
        });
    }
    show(KeysPage {
        chrome: Chrome::new(signed, state.dev_mode, "keys").with_notice(done),
        accounts,
        issued,
        can_manage: signed.may(Permission::ManageKeys),
    })
}

/// `GET /console/keys`.
pub async fn page<S, C>(
    State(state): State<ConsoleState<S, C>>,
    signed: Signed,
    Query(query): Query<std::collections::HashMap<String, String>>,
) -> Result<Response, ConsoleError>
where
    S: Store + OperatorStore + Clone,
    C: Clock + Clone,
{
    render(&state, &signed, None, query.get("done").map(String::as_str)).await
}

fn account_id(sid: &str) -> Result<AccountId, ConsoleError> {
    sid_uuid(sid, "AC")
        .map(AccountId::from_uuid)
        .ok_or(ConsoleError::NotFound)
}

/// `POST /console/keys/{AC…}/api-keys` with `name`: a new API key; the page shows its
/// secret this once (the answer is the page itself, so the secret is in no address).
pub async fn create<S, C>(
    State(state): State<ConsoleState<S, C>>,
    signed: Signed,
    Path(sid): Path<String>,
    Form(form): Form<Fields>,
) -> Result<Response, ConsoleError>
where
    S: Store + OperatorStore + Clone,
    C: Clock + Clone,
{
    signed.post(&form, Permission::ManageKeys)?;
    let account = account_id(&sid)?;
    let name = form.get("name").map(|n| n.trim()).unwrap_or_default();
    if name.is_empty() || name.chars().count() > 64 {
        return Err(ConsoleError::BadRequest(
            "name: give the key a name of 1 to 64 characters.".into(),
        ));
    }
    let issued = state
        .auth
        .create_api_key(account, name)
        .await?
        .ok_or(ConsoleError::NotFound)?;
    let key_sid = format!("SK{}", issued.key.id.simple());
    state
        .verifier
        .manage()
        .record(
            &signed.acted_by(),
            Some(account),
            "api_key.create",
            key_sid.clone(),
            serde_json::json!({"after": {"friendlyName": name}}),
        )
        .await?;
    let issued = Issued {
        account: sid,
        label: "API key",
        sid: key_sid,
        secret: issued.secret,
        second: None,
    };
    render(&state, &signed, Some(issued), None).await
}

/// `POST /console/keys/{AC…}/api-keys/{SK…}/revoke`.
pub async fn revoke<S, C>(
    State(state): State<ConsoleState<S, C>>,
    signed: Signed,
    Path((sid, key_sid)): Path<(String, String)>,
    Form(form): Form<Fields>,
) -> Result<Response, ConsoleError>
where
    S: Store + OperatorStore + Clone,
    C: Clock + Clone,
{
    signed.post(&form, Permission::ManageKeys)?;
    let account = account_id(&sid)?;
    let key = sid_uuid(&key_sid, "SK")
        .map(ApiKeyId::from_uuid)
        .ok_or(ConsoleError::NotFound)?;
    if !state.auth.revoke_api_key(account, key).await? {
        return Err(ConsoleError::NotFound);
    }
    tracing::warn!(key = %key_sid, "API key revoked from the console");
    state
        .verifier
        .manage()
        .record(
            &signed.acted_by(),
            Some(account),
            "api_key.revoke",
            key_sid,
            serde_json::json!({"before": {"status": "active"}, "after": {"status": "revoked"}}),
        )
        .await?;
    Ok(Redirect::to("/console/keys?done=key-revoked").into_response())
}

/// `POST /console/keys/{AC…}/token`: a new auth token for the account, shown once; the old
/// one stops working at once.
pub async fn rotate_token<S, C>(
    State(state): State<ConsoleState<S, C>>,
    signed: Signed,
    Path(sid): Path<String>,
    Form(form): Form<Fields>,
) -> Result<Response, ConsoleError>
where
    S: Store + OperatorStore + Clone,
    C: Clock + Clone,
{
    signed.post(&form, Permission::ManageKeys)?;
    let account = account_id(&sid)?;
    let token = state
        .auth
        .rotate_auth_token(account)
        .await?
        .ok_or(ConsoleError::NotFound)?;
    tracing::warn!(account = %sid, "auth token rotated from the console");
    state
        .verifier
        .manage()
        .record(
            &signed.acted_by(),
            Some(account),
            "account.rotate_token",
            sid.clone(),
            serde_json::json!({"changed": "the auth token"}),
        )
        .await?;
    let issued = Issued {
        account: sid.clone(),
        label: "Auth token",
        sid,
        secret: token,
        second: None,
    };
    render(&state, &signed, Some(issued), None).await
}

/// `POST /console/keys/{AC…}/applications/{id}/rotate`: a new secret and API key for a
/// native application, shown once; the old ones and its access tokens stop working.
pub async fn rotate_application<S, C>(
    State(state): State<ConsoleState<S, C>>,
    signed: Signed,
    Path((sid, id)): Path<(String, String)>,
    Form(form): Form<Fields>,
) -> Result<Response, ConsoleError>
where
    S: Store + OperatorStore + Clone,
    C: Clock + Clone,
{
    signed.post(&form, Permission::ManageKeys)?;
    let account = account_id(&sid)?;
    let application = otpd_core::auth::parse_application_id(&id).ok_or(ConsoleError::NotFound)?;
    let manage = state.verifier.manage();
    let owned = manage
        .applications()
        .await?
        .iter()
        .any(|a| a.id == application && a.account_id == account);
    if !owned {
        return Err(ConsoleError::NotFound);
    }
    let issued = state
        .auth
        .rotate_secret(application)
        .await?
        .ok_or(ConsoleError::NotFound)?;
    tracing::warn!(application = %id, "application secret rotated from the console");
    manage
        .record(
            &signed.acted_by(),
            Some(account),
            "application.rotate_secret",
            id.clone(),
            serde_json::json!({"changed": "the secret and API key"}),
        )
        .await?;
    let issued = Issued {
        account: sid,
        label: "Application secret",
        sid: id,
        secret: issued.secret,
        second: Some(("API key", issued.api_key)),
    };
    render(&state, &signed, Some(issued), None).await
}
