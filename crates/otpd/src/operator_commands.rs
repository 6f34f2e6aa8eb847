//! `otpd operator create|list|disable|reset`: the console's operators, managed from the
//! server's shell (how the first admin comes to exist). Each change is recorded in the audit
//! log (actor `cli`, actions `operator.create`, `operator.disable`, `operator.reset`); no
//! password, token or authenticator seed is ever written there or to a log.

use std::io::BufRead;

use anyhow::Context;
use otpd::Config;
use otpd::store::AnyStore;
use otpd_core::operators::{
    OperatorError, Operators, Role, check_password, hash_password, normalise_email,
};
use otpd_core::{Clock, Secret, SystemClock};
use serde_json::json;

use crate::commands::record;
use crate::{OperatorCommand, load};

/// Something the command was given that it refuses (a weak password, a malformed email):
/// exits with code 2, like a usage error.
#[derive(Debug)]
pub(crate) struct BadInput(String);

impl std::fmt::Display for BadInput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for BadInput {}

/// The operators' rules over the configured store.
async fn operators(
    config: &Config,
) -> anyhow::Result<(AnyStore, Operators<AnyStore, SystemClock>)> {
    let store = otpd::open_store(config).await?;
    let operators = Operators::new(
        store.clone(),
        SystemClock,
        otpd::vault(config)?,
        config.console.rules(),
    );
    Ok((store, operators))
}

/// Where an invitation token is accepted: the public base URL, else the listen address.
fn invitation_url(config: &Config, token: &Secret) -> String {
    let base = config
        .public_base_url
        .as_deref()
        .map(|base| base.trim_end_matches('/').to_string())
        .unwrap_or_else(|| format!("http://{}", config.listen));
    format!("{base}/console/invite/{}", token.expose())
}

/// One line from stdin without its line ending, checked for length.
fn password_from_stdin() -> anyhow::Result<Secret> {
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .context("--password-stdin: cannot read stdin")?;
    let password = Secret::new(line.trim_end_matches(['\n', '\r']));
    check_password(&password).map_err(|error| BadInput(format!("--password-stdin: {error}")))?;
    Ok(password)
}

/// The operator of `email`, or a clear error.
async fn existing(
    operators: &Operators<AnyStore, SystemClock>,
    email: &str,
) -> anyhow::Result<otpd_core::operators::Operator> {
    operators
        .by_email(email)
        .await?
        .with_context(|| format!("no operator has the email {email}"))
}

/// How long an invitation link works, in words.
fn invitation_lifetime(operators: &Operators<AnyStore, SystemClock>) -> String {
    match operators.rules().invitation_seconds / 3600 {
        1 => "1 hour".to_string(),
        hours => format!("{hours} hours"),
    }
}

pub(crate) async fn operator(command: OperatorCommand) -> anyhow::Result<()> {
    match command {
        OperatorCommand::Create {
            common,
            email,
            role,
            password_stdin,
            totp,
            json,
        } => {
            let config = load(&common, None)?;
            let role = Role::parse(&role).context("--role must be admin, support or viewer")?;
            if normalise_email(&email).is_none() {
                return Err(BadInput(format!("--email: '{email}' is not an email address")).into());
            }
            let password_hash = if password_stdin {
                Some(hash_password(&password_from_stdin()?))
            } else {
                None
            };
            let (store, operators) = operators(&config).await?;
            let created = match operators.create(&email, role, password_hash, totp).await {
                Ok(created) => created,
                Err(OperatorError::InvalidEmail) => {
                    return Err(
                        BadInput(format!("--email: '{email}' is not an email address")).into(),
                    );
                }
                Err(OperatorError::Taken) => {
                    anyhow::bail!("an operator with the email {} exists already", email.trim())
                }
                Err(error) => return Err(error.into()),
            };
            let operator = &created.operator;
            record(
                &store,
                None,
                "operator.create",
                operator.id.to_string(),
                json!({"after": {
                    "email": operator.email,
                    "role": role.as_str(),
                    "invited": created.invitation.is_some(),
                    "secondFactor": created.totp_uri.is_some(),
                }}),
            )
            .await?;
            let invitation = created
                .invitation
                .as_ref()
                .map(|token| invitation_url(&config, token));
            if json {
                let mut out = json!({
                    "id": operator.id.to_string(),
                    "email": operator.email,
                    "role": role.as_str(),
                });
                if let Some(url) = &invitation {
                    out["invitationUrl"] = json!(url);
                }
                if let Some(uri) = &created.totp_uri {
                    out["totpUri"] = json!(uri.expose());
                }
                println!("{out}");
            } else {
                match &invitation {
                    Some(url) => {
                        println!(
                            "Invitation for {} ({}): {url}",
                            operator.email,
                            role.as_str()
                        );
                        println!(
                            "The link is shown only now and works for {}.",
                            invitation_lifetime(&operators)
                        );
                    }
                    None => println!("created operator {} ({})", operator.email, role.as_str()),
                }
                if let Some(uri) = &created.totp_uri {
                    println!(
                        "Authenticator for {} (shown only now; add it to the app): {}",
                        operator.email,
                        uri.expose()
                    );
                }
            }
            Ok(())
        }
        OperatorCommand::List { common, json } => {
            let config = load(&common, None)?;
            let (_, operators) = operators(&config).await?;
            let now = SystemClock.now();
            let list = operators.list().await?;
            if json {
                let items: Vec<serde_json::Value> = list
                    .iter()
                    .map(|o| {
                        json!({
                            "id": o.id.to_string(),
                            "email": o.email,
                            "role": o.role.as_str(),
                            "disabled": o.disabled,
                            "locked": o.locked_until.is_some_and(|until| until > now),
                            "secondFactor": o.totp_sealed.is_some(),
                            "invitationPending": o.password_hash.is_none(),
                            "createdAt": otpd_http::rfc3339(o.created_at),
                        })
                    })
                    .collect();
                println!("{}", serde_json::Value::Array(items));
            } else if list.is_empty() {
                println!("no operator");
            } else {
                for o in &list {
                    let mut state = Vec::new();
                    if o.disabled {
                        state.push("disabled");
                    }
                    if o.locked_until.is_some_and(|until| until > now) {
                        state.push("locked");
                    }
                    if o.password_hash.is_none() {
                        state.push("invited");
                    }
                    if o.totp_sealed.is_some() {
                        state.push("2fa");
                    }
                    println!(
                        "{}  {:<7}  {}  {}",
                        otpd_http::rfc3339(o.created_at),
                        o.role.as_str(),
                        o.email,
                        if state.is_empty() {
                            "-".to_string()
                        } else {
                            state.join(",")
                        }
                    );
                }
            }
            Ok(())
        }
        OperatorCommand::Disable { common, email } => {
            let config = load(&common, None)?;
            let (store, operators) = operators(&config).await?;
            let mut operator = existing(&operators, &email).await?;
            let was_disabled = operator.disabled;
            operator.disabled = true;
            if !operators.update(&operator, false).await? {
                anyhow::bail!("no operator has the email {email}");
            }
            let ended = operators.sign_out_everywhere(operator.id).await?;
            record(
                &store,
                None,
                "operator.disable",
                operator.id.to_string(),
                json!({
                    "email": operator.email,
                    "before": {"disabled": was_disabled},
                    "after": {"disabled": true},
                    "sessionsEnded": ended,
                }),
            )
            .await?;
            println!(
                "disabled operator {}; sessions ended: {ended}",
                operator.email
            );
            Ok(())
        }
        OperatorCommand::Reset {
            common,
            email,
            json,
        } => {
            let config = load(&common, None)?;
            let (store, operators) = operators(&config).await?;
            let operator = existing(&operators, &email).await?;
            let token = operators.reset(operator.clone()).await?;
            record(
                &store,
                None,
                "operator.reset",
                operator.id.to_string(),
                json!({
                    "email": operator.email,
                    "changed": "the password: a new invitation replaces it, every session ended",
                }),
            )
            .await?;
            let url = invitation_url(&config, &token);
            if json {
                println!(
                    "{}",
                    json!({
                        "id": operator.id.to_string(),
                        "email": operator.email,
                        "invitationUrl": url,
                    })
                );
            } else {
                println!(
                    "Invitation for {} ({}): {url}",
                    operator.email,
                    operator.role.as_str()
                );
                println!(
                    "The old password no longer works and every session ended. The link is \
                     shown only now and works for {}.",
                    invitation_lifetime(&operators)
                );
            }
            Ok(())
        }
    }
}
