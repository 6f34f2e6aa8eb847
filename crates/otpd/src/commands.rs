//! The management commands (`app`, `account`, `apikey`, `quarantine`): each opens the
//! configured store, acts, records the change in the audit log (actor `cli`) and prints what
//! it did.

use anyhow::{Context, bail};
use otpd_core::audit::{Actor, AuditDraft};
use otpd_core::auth::{CallbackSigner, IssuedCredentials, parse_application_id};
use otpd_core::{AccountId, AuditStore, Clock, LimitStore, SystemClock, TenantStore};
use serde_json::json;

use crate::{AccountCommand, ApiKeyCommand, AppCommand, QuarantineCommand, load};

pub(crate) fn credentials_json(
    credentials: &IssuedCredentials,
    signer: &CallbackSigner,
) -> serde_json::Value {
    serde_json::json!({
        "applicationId": credentials.application.id.simple(),
        "applicationSecret": credentials.secret,
        "apiKey": credentials.api_key,
        "name": credentials.application.name,
        "serviceId": credentials.application.service_id.to_string(),
        "serviceSid": format!("VA{}", credentials.application.service_id.simple()),
        "accountSid": format!("AC{}", credentials.application.account_id.simple()),
        "authToken": credentials.account_token,
        "callbackSigningKey": signer.key_for(credentials.application.service_id),
    })
}

/// Appends the audit entry of a change the command made, by the OS user running it.
pub(crate) async fn record<S: AuditStore>(
    store: &S,
    account: Option<AccountId>,
    action: &str,
    target: String,
    summary: serde_json::Value,
) -> anyhow::Result<()> {
    let draft = AuditDraft {
        at: SystemClock.now(),
        actor: Actor::cli_user(),
        account,
        source: None,
        action: action.to_string(),
        target,
        summary,
    };
    store
        .append_audit(&draft)
        .await
        .context("the change was made but its audit entry could not be written")?;
    Ok(())
}

/// Parses `AC` + 32 hex digits.
pub(crate) fn parse_account_sid(text: &str) -> anyhow::Result<AccountId> {
    text.strip_prefix("AC")
        .filter(|hex| hex.len() == 32)
        .and_then(|hex| uuid::Uuid::try_parse(hex).ok())
        .map(AccountId::from_uuid)
        .context("expected an Account SID: AC followed by 32 hex digits")
}

/// Parses `SK` + 32 hex digits.
fn parse_api_key_sid(text: &str) -> anyhow::Result<otpd_core::ApiKeyId> {
    text.strip_prefix("SK")
        .filter(|hex| hex.len() == 32)
        .and_then(|hex| uuid::Uuid::try_parse(hex).ok())
        .map(otpd_core::ApiKeyId::from_uuid)
        .context("expected an API key SID: SK followed by 32 hex digits")
}

/// Parses `VA` + 32 hex digits.
fn parse_service_sid(text: &str) -> anyhow::Result<otpd_core::ServiceId> {
    text.strip_prefix("VA")
        .filter(|hex| hex.len() == 32)
        .and_then(|hex| uuid::Uuid::try_parse(hex).ok())
        .map(otpd_core::ServiceId::from_uuid)
        .with_context(|| format!("--service {text}: expected VA followed by 32 hex digits"))
}

/// Whom a quarantine stops, for people.
fn quarantine_scope(service: Option<otpd_core::ServiceId>) -> String {
    service.map_or("all services".to_string(), |id| {
        format!("VA{}", id.simple())
    })
}

pub(crate) fn print_credentials(
    credentials: &IssuedCredentials,
    signer: &CallbackSigner,
    json: bool,
) {
    if json {
        println!("{}", credentials_json(credentials, signer));
    } else {
        println!(
            "application id:       {}",
            credentials.application.id.simple()
        );
        println!("application secret:   {}", credentials.secret);
        println!("API key (X-API-KEY):  {}", credentials.api_key);
        println!(
            "callback signing key: {}",
            signer.key_for(credentials.application.service_id)
        );
        if let Some(token) = &credentials.account_token {
            let account = credentials.application.account_id.simple();
            println!("Twilio Verify API (HTTP Basic on /v2/...):");
            println!("account SID:          AC{account}");
            println!("auth token:           {token}");
            println!(
                "service SID:          VA{}",
                credentials.application.service_id.simple()
            );
        }
        println!("The secrets are shown only now; they are stored hashed.");
    }
}

pub(crate) async fn app(command: AppCommand) -> anyhow::Result<()> {
    match command {
        AppCommand::Create {
            common,
            name,
            json,
            account,
            settings,
        } => {
            let config = load(&common, None)?;
            let settings = settings.apply(config.default_otp.clone())?;
            let account = account.as_deref().map(parse_account_sid).transpose()?;
            let store = otpd::open_store(&config).await?;
            if let Some(id) = account
                && store.account(id).await?.is_none()
            {
                bail!("no such account");
            }
            let auth = otpd::authenticator(&config, store.clone(), SystemClock)?;
            let credentials = auth.create_application(account, &name, settings).await?;
            let app = &credentials.application;
            if credentials.account_token.is_some() {
                let sid = format!("AC{}", app.account_id.simple());
                let summary = json!({"after": {"name": name}});
                record(&store, Some(app.account_id), "account.create", sid, summary).await?;
            }
            let summary = json!({"after": {
                "name": app.name,
                "serviceSid": format!("VA{}", app.service_id.simple()),
            }});
            let target = app.id.simple();
            record(
                &store,
                Some(app.account_id),
                "application.create",
                target,
                summary,
            )
            .await?;
            print_credentials(
                &credentials,
                &CallbackSigner::new(config.server_secret()?),
                json,
            );
        }
        AppCommand::List { common, json } => {
            let config = load(&common, None)?;
            let store = otpd::open_store(&config).await?;
            let signer = CallbackSigner::new(config.server_secret()?);
            let apps = store.applications().await?;
            let rows: Vec<_> = apps
                .iter()
                .map(|a| {
                    serde_json::json!({
                        "applicationId": a.id.simple(),
                        "name": a.name,
                        "serviceId": a.service_id.to_string(),
                        "callbackSigningKey": signer.key_for(a.service_id),
                        "createdAt": otpd_http::rfc3339(a.created_at),
                    })
                })
                .collect();
            if json {
                println!("{}", serde_json::Value::Array(rows));
            } else {
                for a in &apps {
                    println!(
                        "{}  {}  created {}",
                        a.id.simple(),
                        a.name,
                        otpd_http::rfc3339(a.created_at)
                    );
                }
            }
        }
        AppCommand::RotateSecret { common, id, json } => {
            let config = load(&common, None)?;
            let store = otpd::open_store(&config).await?;
            let auth = otpd::authenticator(&config, store.clone(), SystemClock)?;
            let id = parse_application_id(&id).context("not an application id")?;
            let credentials = auth
                .rotate_secret(id)
                .await?
                .context("no such application")?;
            let account = credentials.application.account_id;
            let summary = json!({"changed": "the application secret and API key"});
            record(
                &store,
                Some(account),
                "application.rotate_secret",
                id.simple(),
                summary,
            )
            .await?;
            print_credentials(
                &credentials,
                &CallbackSigner::new(config.server_secret()?),
                json,
            );
        }
    }
    Ok(())
}

pub(crate) async fn quarantine(command: QuarantineCommand) -> anyhow::Result<()> {
    match command {
        QuarantineCommand::List { common, json } => {
            let config = load(&common, None)?;
            let store = otpd::open_store(&config).await?;
            let list = store.quarantines(SystemClock.now()).await?;
            if json {
                let items: Vec<serde_json::Value> = list
                    .iter()
                    .map(|q| {
                        serde_json::json!({
                            "prefix": q.prefix,
                            "serviceSid": q.service.map(|id| format!("VA{}", id.simple())),
                            "reason": q.reason,
                            "until": q.until.unix_seconds(), "createdAt": q.created_at.unix_seconds(),
                        })
                    })
                    .collect();
                println!("{}", serde_json::Value::Array(items));
            } else if list.is_empty() {
                println!("no prefix is quarantined");
            } else {
                for q in list {
                    let left = (q.until.0 - SystemClock.now().0).max(0) / 1000;
                    println!(
                        "{}  {}  lifts in {left} s  ({})",
                        q.prefix,
                        quarantine_scope(q.service),
                        q.reason
                    );
                }
            }
            Ok(())
        }
        QuarantineCommand::Add {
            common,
            prefix,
            services,
            seconds,
            reason,
        } => {
            let config = load(&common, None)?;
            let digits = prefix.strip_prefix('+').unwrap_or_default();
            if digits.is_empty() || digits.len() > 15 || !digits.chars().all(|c| c.is_ascii_digit())
            {
                bail!("the prefix '{prefix}' must be + and 1–15 digits, e.g. +44740");
            }
            let seconds = seconds.unwrap_or(config.pumping.settings().quarantine_seconds);
            if seconds == 0 {
                bail!("--seconds must be at least 1");
            }
            let store = otpd::open_store(&config).await?;
            let mut scopes = Vec::new();
            for sid in &services {
                let id = parse_service_sid(sid)?;
                let Some(service) = store.service(id).await? else {
                    bail!("--service {sid}: no such service");
                };
                scopes.push((Some(id), Some(service.account_id)));
            }
            if scopes.is_empty() {
                scopes.push((None, None));
            }
            let now = SystemClock.now();
            for (service, owner) in scopes {
                let quarantine = otpd_core::store::Quarantine {
                    prefix: prefix.clone(),
                    service,
                    reason: reason.clone(),
                    until: now.plus_seconds(i64::from(seconds)),
                    created_at: now,
                };
                let scope = quarantine_scope(service);
                if store.quarantine(&quarantine).await? {
                    let summary = json!({"after": {
                        "prefix": prefix,
                        "serviceSid": service.map(|id| format!("VA{}", id.simple())),
                        "seconds": seconds,
                        "reason": reason,
                    }});
                    record(&store, owner, "quarantine.add", prefix.clone(), summary).await?;
                    println!("quarantined {prefix} for {scope} for {seconds} s");
                } else {
                    bail!(
                        "{prefix} is already quarantined for {scope} (lift it first to change it)"
                    );
                }
            }
            Ok(())
        }
        QuarantineCommand::Lift {
            common,
            prefix,
            services,
        } => {
            let config = load(&common, None)?;
            let store = otpd::open_store(&config).await?;
            let scopes: Vec<Option<otpd_core::ServiceId>> = if services.is_empty() {
                store
                    .quarantines(SystemClock.now())
                    .await?
                    .into_iter()
                    .filter(|q| q.prefix == prefix)
                    .map(|q| q.service)
                    .collect()
            } else {
                services
                    .iter()
                    .map(|sid| parse_service_sid(sid).map(Some))
                    .collect::<anyhow::Result<_>>()?
            };
            let mut lifted = 0;
            for service in scopes {
                if store.lift_quarantine(&prefix, service).await? {
                    let owner = match service {
                        Some(id) => store.service(id).await?.map(|s| s.account_id),
                        None => None,
                    };
                    let summary = json!({"before": {
                        "prefix": prefix,
                        "serviceSid": service.map(|id| format!("VA{}", id.simple())),
                    }});
                    record(&store, owner, "quarantine.lift", prefix.clone(), summary).await?;
                    println!(
                        "lifted the quarantine of {prefix} for {}",
                        quarantine_scope(service)
                    );
                    lifted += 1;
                }
            }
            if lifted == 0 {
                bail!("{prefix} is not quarantined");
            }
            Ok(())
        }
    }
}

pub(crate) async fn account(command: AccountCommand) -> anyhow::Result<()> {
    let (common, name, json) = match command {
        AccountCommand::Create { common, name, json } => (common, name, json),
        AccountCommand::RotateToken { common, sid, json } => {
            let config = load(&common, None)?;
            let account = parse_account_sid(&sid)?;
            let store = otpd::open_store(&config).await?;
            let auth = otpd::authenticator(&config, store.clone(), SystemClock)?;
            let token = auth
                .rotate_auth_token(account)
                .await?
                .context("no such account")?;
            let summary = json!({"changed": "the auth token"});
            let target = format!("AC{}", account.simple());
            record(
                &store,
                Some(account),
                "account.rotate_token",
                target,
                summary,
            )
            .await?;
            if json {
                println!(
                    "{}",
                    serde_json::json!({"accountSid": sid, "authToken": token})
                );
            } else {
                println!("account SID: {sid}");
                println!("auth token:  {token}");
                println!("The old auth token no longer works. The new one is shown only now.");
            }
            return Ok(());
        }
    };
    let config = load(&common, None)?;
    let store = otpd::open_store(&config).await?;
    let auth = otpd::authenticator(&config, store.clone(), SystemClock)?;
    let issued = auth.create_account(&name).await?;
    let sid = format!("AC{}", issued.account.id.simple());
    let summary = json!({"after": {"name": name}});
    record(
        &store,
        Some(issued.account.id),
        "account.create",
        sid.clone(),
        summary,
    )
    .await?;
    if json {
        let out =
            serde_json::json!({"accountSid": sid, "authToken": issued.auth_token, "name": name});
        println!("{out}");
    } else {
        println!("account SID: {sid}");
        println!("auth token:  {}", issued.auth_token);
        println!("The auth token is shown only now; it is stored hashed.");
    }
    Ok(())
}

pub(crate) async fn apikey(command: ApiKeyCommand) -> anyhow::Result<()> {
    let (common, account, name, json) = match command {
        ApiKeyCommand::Create {
            common,
            account,
            name,
            json,
        } => (common, account, name, json),
        ApiKeyCommand::List {
            common,
            account,
            json,
        } => {
            let config = load(&common, None)?;
            let account = parse_account_sid(&account)?;
            let store = otpd::open_store(&config).await?;
            if store.account(account).await?.is_none() {
                bail!("no such account");
            }
            let keys = store.api_keys(account).await?;
            if json {
                let items: Vec<serde_json::Value> = keys
                    .iter()
                    .map(|key| {
                        serde_json::json!({
                            "sid": format!("SK{}", key.id.simple()),
                            "friendlyName": key.name,
                            "createdAt": otpd_http::rfc3339(key.created_at),
                        })
                    })
                    .collect();
                println!("{}", serde_json::Value::Array(items));
            } else if keys.is_empty() {
                println!("no API key");
            } else {
                for key in keys {
                    println!(
                        "SK{}  {}  created {}",
                        key.id.simple(),
                        key.name,
                        otpd_http::rfc3339(key.created_at)
                    );
                }
            }
            return Ok(());
        }
        ApiKeyCommand::Revoke { common, sid } => {
            let config = load(&common, None)?;
            let id = parse_api_key_sid(&sid)?;
            let store = otpd::open_store(&config).await?;
            let auth = otpd::authenticator(&config, store.clone(), SystemClock)?;
            let key = store.api_key(id).await?.context("no such API key")?;
            if !auth.revoke_api_key(key.account_id, id).await? {
                bail!("no such API key");
            }
            let summary = json!({"before": {"status": "active"}, "after": {"status": "revoked"}});
            let target = format!("SK{}", id.simple());
            record(
                &store,
                Some(key.account_id),
                "api_key.revoke",
                target,
                summary,
            )
            .await?;
            println!("revoked {sid}; it no longer authenticates");
            return Ok(());
        }
    };
    let config = load(&common, None)?;
    let account = parse_account_sid(&account)?;
    let store = otpd::open_store(&config).await?;
    let auth = otpd::authenticator(&config, store.clone(), SystemClock)?;
    let issued = auth
        .create_api_key(account, &name)
        .await?
        .context("no such account")?;
    let sid = format!("SK{}", issued.key.id.simple());
    let summary = json!({"after": {"friendlyName": name}});
    record(
        &store,
        Some(account),
        "api_key.create",
        sid.clone(),
        summary,
    )
    .await?;
    if json {
        let out = serde_json::json!({
            "sid": sid,
            "secret": issued.secret,
            "accountSid": format!("AC{}", account.simple()),
            "friendlyName": name,
        });
        println!("{out}");
    } else {
        println!("API key SID: {sid}");
        println!("secret:      {}", issued.secret);
        println!("The secret is shown only now; it is stored hashed.");
    }
    Ok(())
}
