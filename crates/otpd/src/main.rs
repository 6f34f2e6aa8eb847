//! `otpd`: run the server, manage applications.

use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::{Args, Parser, Subcommand};
use otpd::Config;
use otpd::config::LogFormat;
use otpd_core::auth::{CallbackSigner, IssuedCredentials, parse_application_id};
use otpd_core::settings::{OtpSettings, PrefixTemplate, parse_callback_url};
use otpd_core::{
    AccountId, LimitStore, MaxAttempts, PinLength, PinType, SenderId, SystemClock, Template,
    TenantStore, Ttl,
};

/// Self-hosted one-time-passcode verification service.
#[derive(Parser)]
#[command(name = "otpd", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// Where to find configuration and data; shared by every command.
#[derive(Args, Clone)]
struct Common {
    /// TOML configuration file (without one, otpd runs in dev mode). Env: OTPD_CONFIG.
    #[arg(long, env = "OTPD_CONFIG", global = true)]
    config: Option<PathBuf>,
    /// Database URL, e.g. sqlite://otpd.db (overrides the file and OTPD_DATABASE_URL).
    #[arg(long, global = true)]
    database: Option<String>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the HTTP server (defaults: 127.0.0.1:8080, ./otpd.db, console provider, dev mode).
    Serve {
        #[command(flatten)]
        common: Common,
        /// Address to listen on, e.g. 0.0.0.0:8080 (overrides the file and OTPD_LISTEN).
        #[arg(long)]
        listen: Option<String>,
    },
    /// Manage applications (credentials bound to one OTP service).
    App {
        #[command(subcommand)]
        command: AppCommand,
    },
    /// Manage accounts (the Twilio-style Account SID and auth token).
    Account {
        #[command(subcommand)]
        command: AccountCommand,
    },
    /// Manage Twilio-style API keys (SK… + secret) of an account.
    Apikey {
        #[command(subcommand)]
        command: ApiKeyCommand,
    },
    /// List, add and lift quarantined prefixes (SMS-pumping defence; server-wide by hand).
    Quarantine {
        #[command(subcommand)]
        command: QuarantineCommand,
    },
}

#[derive(Subcommand)]
enum QuarantineCommand {
    /// The prefixes quarantined now, of every service and server-wide, newest first.
    List {
        #[command(flatten)]
        common: Common,
        /// Print a JSON array instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Quarantines a prefix (e.g. +44740) for every service, or for the services named.
    Add {
        #[command(flatten)]
        common: Common,
        /// `+` and digits.
        prefix: String,
        /// A service SID (VA…) to quarantine the prefix for (repeatable); without it, the
        /// quarantine is server-wide.
        #[arg(long = "service", value_name = "VA…")]
        services: Vec<String>,
        /// How long it lasts (default: pumping.quarantine_seconds).
        #[arg(long)]
        seconds: Option<u32>,
        /// Why, as listed.
        #[arg(long, default_value = "set by the operator")]
        reason: String,
    },
    /// Lifts the quarantines of one prefix: every one (server-wide and each service's), or
    /// only those of the services named.
    Lift {
        #[command(flatten)]
        common: Common,
        /// The prefix, as listed.
        prefix: String,
        /// A service SID (VA…) whose quarantine to lift (repeatable).
        #[arg(long = "service", value_name = "VA…")]
        services: Vec<String>,
    },
}

#[derive(Subcommand)]
enum AccountCommand {
    /// Replace an account's auth token; prints the new one once (the old one stops working).
    RotateToken {
        #[command(flatten)]
        common: Common,
        /// The Account SID (AC…).
        sid: String,
        /// Print one JSON object instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Create an account; prints its Account SID and auth token once.
    Create {
        #[command(flatten)]
        common: Common,
        /// A name for humans.
        #[arg(long, default_value = "account")]
        name: String,
        /// Print one JSON object instead of text.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum ApiKeyCommand {
    /// List an account's API keys (never their secrets).
    List {
        #[command(flatten)]
        common: Common,
        /// The Account SID (AC…).
        #[arg(long)]
        account: String,
        /// Print a JSON array instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Revoke an API key; it stops working at once.
    Revoke {
        #[command(flatten)]
        common: Common,
        /// The API key SID (SK…).
        sid: String,
    },
    /// Create an API key for an account; prints its SID and secret once.
    Create {
        #[command(flatten)]
        common: Common,
        /// The Account SID (AC…).
        #[arg(long)]
        account: String,
        /// A name for humans.
        #[arg(long, default_value = "api key")]
        name: String,
        /// Print one JSON object instead of text.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum AppCommand {
    /// Create an application with its own OTP settings; prints its secret and API key once.
    Create {
        #[command(flatten)]
        common: Common,
        /// A name for humans.
        #[arg(long)]
        name: String,
        /// Print one JSON object instead of text.
        #[arg(long)]
        json: bool,
        /// Put the application in an existing account (AC…); by default a new account is
        /// created and its Account SID and auth token are printed too.
        #[arg(long)]
        account: Option<String>,
        #[command(flatten)]
        settings: Box<SettingsArgs>,
    },
    /// List applications (never their secrets).
    List {
        #[command(flatten)]
        common: Common,
        /// Print a JSON array instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Replace an application's secret and API key; revokes its access tokens.
    RotateSecret {
        #[command(flatten)]
        common: Common,
        /// The application id.
        id: String,
        /// Print one JSON object instead of text.
        #[arg(long)]
        json: bool,
    },
}

/// OTP settings of a new application; unset ones take the configured defaults.
#[derive(Args)]
struct SettingsArgs {
    /// Message template; must contain {{pin}}.
    #[arg(long)]
    template: Option<String>,
    /// Template for numbers starting with a prefix, as PREFIX=TEMPLATE (repeatable),
    /// e.g. --template-for '+33=Votre code est {{pin}}'.
    #[arg(long = "template-for", value_name = "PREFIX=TEMPLATE")]
    template_for: Vec<String>,
    /// Sender id, 3–15 characters.
    #[arg(long)]
    from: Option<String>,
    /// numbers | letters | alphanumeric.
    #[arg(long)]
    pin_type: Option<String>,
    /// 4–10.
    #[arg(long)]
    pin_length: Option<i64>,
    /// Code lifetime in seconds, 60–1800.
    #[arg(long)]
    ttl: Option<i64>,
    /// Wrong codes tolerated, 1–10.
    #[arg(long)]
    max_attempts: Option<i64>,
    /// Status-callback URL.
    #[arg(long)]
    callback_url: Option<String>,
    /// Seconds between two sends to one destination (default 30; 0 disables).
    #[arg(long, value_name = "SECONDS")]
    resend_cooldown: Option<u32>,
    /// Channels to fall back to, in order, e.g. --fallback sms,call.
    #[arg(long, value_delimiter = ',', value_name = "CHANNELS")]
    fallback: Vec<String>,
    /// Default language of messages (en, fr, pt-BR, …).
    #[arg(long)]
    locale: Option<String>,
    /// Web origin host whose origin-bound line (`@host #code`) ends each SMS.
    #[arg(long, value_name = "HOST")]
    web_origin: Option<String>,
    /// This application's own providers for a channel (or channel:COUNTRY), in order,
    /// e.g. --route sms=twilio,vonage --route sms:GB=vonage (repeatable).
    #[arg(long = "route", value_name = "CHANNEL[:COUNTRY]=PROVIDERS")]
    route: Vec<String>,
    /// A sender id for one destination country, e.g. --sender-for GB=Acme (repeatable).
    #[arg(long = "sender-for", value_name = "COUNTRY=SENDER")]
    sender_for: Vec<String>,
}

impl SettingsArgs {
    fn apply(self, mut settings: OtpSettings) -> anyhow::Result<OtpSettings> {
        if let Some(t) = self.template {
            settings.template = Template::new(t).context("--template")?;
        }
        for entry in self.template_for {
            let (prefix, template) = entry
                .split_once('=')
                .context("--template-for expects PREFIX=TEMPLATE")?;
            if !prefix.starts_with('+') || !prefix[1..].chars().all(|c| c.is_ascii_digit()) {
                bail!("--template-for: the prefix '{prefix}' must look like +33");
            }
            settings.prefix_templates.push(PrefixTemplate {
                prefix: prefix.to_string(),
                template: Template::new(template).context("--template-for")?,
            });
        }
        if let Some(f) = self.from {
            settings.from = SenderId::new(f)
                .ok()
                .context("--from must be a name of 3–11 letters, digits and spaces, or a number (+ and up to 15 digits)")?;
        }
        if let Some(p) = self.pin_type {
            settings.pin_type = PinType::parse(&p)
                .context("--pin-type must be numbers, letters or alphanumeric")?;
        }
        if let Some(l) = self.pin_length {
            settings.pin_length = PinLength::new(l)
                .ok()
                .context("--pin-length must be 4–10")?;
        }
        if let Some(t) = self.ttl {
            settings.ttl = Ttl::new(t).ok().context("--ttl must be 60–1800 seconds")?;
        }
        if let Some(m) = self.max_attempts {
            settings.max_attempts = MaxAttempts::new(m)
                .ok()
                .context("--max-attempts must be 1–10")?;
        }
        if let Some(seconds) = self.resend_cooldown {
            settings.resend_cooldown_seconds = seconds;
        }
        if !self.fallback.is_empty() {
            settings.fallback_channels = self
                .fallback
                .iter()
                .map(|c| {
                    otpd_core::Channel::parse(c.trim()).with_context(|| {
                        format!("--fallback: '{c}' is not sms, call, email or whatsapp")
                    })
                })
                .collect::<anyhow::Result<_>>()?;
        }
        if let Some(locale) = self.locale {
            settings.locale = Some(locale);
        }
        if let Some(host) = self.web_origin {
            let plain = !host.is_empty()
                && host
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-');
            if !plain {
                bail!("--web-origin expects a host name such as acme.example");
            }
            settings.web_origin = Some(host);
        }
        for entry in self.route {
            let (key, names) = entry
                .split_once('=')
                .context("--route expects CHANNEL[:COUNTRY]=PROVIDER,PROVIDER")?;
            let (channel, country) = match key.split_once(':') {
                Some((channel, country)) => (channel, Some(country)),
                None => (key, None),
            };
            let channel = otpd_core::Channel::parse(channel).with_context(|| {
                format!("--route: '{channel}' is not sms, call, email or whatsapp")
            })?;
            let key = match country {
                Some(country) => {
                    let iso = otpd_core::CountryIso::parse(country)
                        .ok()
                        .context("--route: the country must be an ISO code such as GB")?;
                    format!("{}:{}", channel.as_str(), iso.as_str())
                }
                None => channel.as_str().to_string(),
            };
            let names: Vec<String> = names
                .split(',')
                .map(|n| n.trim().to_string())
                .filter(|n| !n.is_empty())
                .collect();
            if names.is_empty() {
                bail!("--route: name at least one provider");
            }
            settings.provider_routes.insert(key, names);
        }
        for entry in self.sender_for {
            let (country, sender) = entry
                .split_once('=')
                .context("--sender-for expects COUNTRY=SENDER")?;
            let country = otpd_core::CountryIso::parse(country)
                .ok()
                .context("--sender-for: the country must be an ISO code such as GB")?;
            let sender = SenderId::new(sender)
                .ok()
                .context("--sender-for: the sender must be a name of 3–11 letters, digits and spaces, or a number")?;
            settings
                .country_senders
                .insert(country.as_str().to_string(), sender);
        }
        if let Some(u) = self.callback_url {
            settings.callback_url =
                Some(parse_callback_url(&u).context("--callback-url must be an http(s) URL")?);
        }
        Ok(settings)
    }
}

fn load(common: &Common, listen: Option<String>) -> anyhow::Result<Config> {
    let mut config = Config::load(common.config.as_deref())?;
    if let Some(database) = &common.database {
        config.database_url = database.clone().into();
        if !config.is_postgres() {
            config.sqlite_path()?;
        }
    }
    if let Some(listen) = listen {
        config.listen = listen;
    }
    Ok(config)
}

/// Starts logging; the guard flushes what is still buffered when `serve` returns.
fn init_logging(config: &Config) -> tracing_appender::non_blocking::WorkerGuard {
    let filter = tracing_subscriber::EnvFilter::try_from_env("OTPD_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(&config.log_level));
    use std::io::IsTerminal;
    // Lines go to stderr from a logging thread, in batches: a write system call per line on
    // the request path cost ~6 % of the server's time at full load (profiled). Not lossy: a
    // full buffer makes the request wait rather than drop a line. What a crash can lose is
    // only what that thread had not written yet (microseconds of lines).
    let (writer, guard) = tracing_appender::non_blocking::NonBlockingBuilder::default()
        .lossy(false)
        .thread_name("otpd-log")
        .finish(std::io::stderr());
    // Colours only for a person at a terminal: escape codes in a log file or journald are
    // noise, and writing them cost ~6 % of a worker's time per request (profiled).
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(writer);
    match config.log_format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
    guard
}

fn credentials_json(credentials: &IssuedCredentials, signer: &CallbackSigner) -> serde_json::Value {
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

/// Parses `AC` + 32 hex digits.
fn parse_account_sid(text: &str) -> anyhow::Result<AccountId> {
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

fn print_credentials(credentials: &IssuedCredentials, signer: &CallbackSigner, json: bool) {
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

/// Where a production first start writes the default application's credentials.
const FIRST_START_FILE: &str = "otpd-first-start.json";

async fn serve(common: Common, listen: Option<String>) -> anyhow::Result<()> {
    let config = load(&common, listen)?;
    let _flush_logs_on_exit = init_logging(&config);
    if config.dev_mode() {
        tracing::warn!(
            "DEV MODE IS ON: the console provider prints codes to stdout and /dev/inbox shows them. \
             Give otpd a configuration file with dev_mode = false for production."
        );
    }
    let server = otpd::start(&config, SystemClock).await?;
    if let Some(credentials) = &server.first_application {
        let signer = CallbackSigner::new(config.server_secret()?);
        if config.dev_mode() {
            println!("\nFirst start: created application \"default\".");
            print_credentials(credentials, &signer, false);
            println!();
        } else {
            // In production stdout goes to a journal or a log store: the secrets go to a file
            // only the owner can read instead.
            let path = config.secret_file.with_file_name(FIRST_START_FILE);
            otpd::config::write_private(&path, &credentials_json(credentials, &signer).to_string())
                .with_context(|| format!("cannot write {}", path.display()))?;
            println!(
                "First start: created application \"default\"; its credentials are in {} \
                 (mode 0600, shown only there): keep them in your secret store, then delete \
                 the file.",
                path.display()
            );
        }
    }
    let base = format!("http://{}", server.addr);
    tracing::info!(address = %server.addr, database = %config.database_url, "otpd listening");
    println!("otpd listening on {base}");
    if config.dev_mode() {
        println!("dev inbox: {base}/dev/inbox");
    }
    server.run_until_signal().await
}

async fn app(command: AppCommand) -> anyhow::Result<()> {
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
            let auth = otpd::authenticator(&config, store, SystemClock)?;
            let credentials = auth.create_application(account, &name, settings).await?;
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
            let auth = otpd::authenticator(&config, store, SystemClock)?;
            let id = parse_application_id(&id).context("not an application id")?;
            let credentials = auth
                .rotate_secret(id)
                .await?
                .context("no such application")?;
            print_credentials(
                &credentials,
                &CallbackSigner::new(config.server_secret()?),
                json,
            );
        }
    }
    Ok(())
}

async fn quarantine(command: QuarantineCommand) -> anyhow::Result<()> {
    use otpd_core::Clock;
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
            let seconds = seconds.unwrap_or(config.pumping.quarantine_seconds);
            if seconds == 0 {
                bail!("--seconds must be at least 1");
            }
            let store = otpd::open_store(&config).await?;
            let mut scopes = Vec::new();
            for sid in &services {
                let id = parse_service_sid(sid)?;
                if store.service(id).await?.is_none() {
                    bail!("--service {sid}: no such service");
                }
                scopes.push(Some(id));
            }
            if scopes.is_empty() {
                scopes.push(None);
            }
            let now = SystemClock.now();
            for service in scopes {
                let quarantine = otpd_core::store::Quarantine {
                    prefix: prefix.clone(),
                    service,
                    reason: reason.clone(),
                    until: now.plus_seconds(i64::from(seconds)),
                    created_at: now,
                };
                let scope = quarantine_scope(service);
                if store.quarantine(&quarantine).await? {
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

async fn account(command: AccountCommand) -> anyhow::Result<()> {
    let (common, name, json) = match command {
        AccountCommand::Create { common, name, json } => (common, name, json),
        AccountCommand::RotateToken { common, sid, json } => {
            let config = load(&common, None)?;
            let account = parse_account_sid(&sid)?;
            let auth = otpd::authenticator(&config, otpd::open_store(&config).await?, SystemClock)?;
            let token = auth
                .rotate_auth_token(account)
                .await?
                .context("no such account")?;
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
    let auth = otpd::authenticator(&config, otpd::open_store(&config).await?, SystemClock)?;
    let issued = auth.create_account(&name).await?;
    let sid = format!("AC{}", issued.account.id.simple());
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

async fn apikey(command: ApiKeyCommand) -> anyhow::Result<()> {
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
            println!("revoked {sid}; it no longer authenticates");
            return Ok(());
        }
    };
    let config = load(&common, None)?;
    let account = parse_account_sid(&account)?;
    let auth = otpd::authenticator(&config, otpd::open_store(&config).await?, SystemClock)?;
    let issued = auth
        .create_api_key(account, &name)
        .await?
        .context("no such account")?;
    let sid = format!("SK{}", issued.key.id.simple());
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

/// mimalloc instead of the C library's allocator: a request allocates a few hundred times,
/// and glibc's malloc and free were a fifth of a start's request-path instructions.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve { common, listen } => serve(common, listen).await,
        Command::App { command } => app(command).await,
        Command::Account { command } => account(command).await,
        Command::Apikey { command } => apikey(command).await,
        Command::Quarantine { command } => quarantine(command).await,
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("otpd: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
