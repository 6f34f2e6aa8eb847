//! `otpd`: run the server, manage applications.

use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::{Args, Parser, Subcommand};

mod audit_commands;
mod commands;
mod destination_commands;
mod keys_commands;
mod operator_commands;

use commands::{account, apikey, app, credentials_json, print_credentials, quarantine};
use otpd::Config;
use otpd::config::LogFormat;
use otpd_core::auth::CallbackSigner;
use otpd_core::settings::{OtpSettings, PrefixTemplate, parse_callback_url};
use otpd_core::{MaxAttempts, PinLength, PinType, SenderId, SystemClock, Template, Ttl};

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
    /// Read the audit log of management changes and check its hash chain.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// Print everything held about a phone number or email address, as JSON (right of
    /// access; every account's unless --account).
    Export {
        #[command(flatten)]
        common: Common,
        /// The destination: an E.164 number or an email address.
        #[arg(long)]
        to: String,
        /// Only this account's services and safe list (AC…).
        #[arg(long, value_name = "AC…")]
        account: Option<String>,
    },
    /// Erase every trace of a phone number or email address (right to erasure; every
    /// account's unless --account). Abuse counters keep its blind index only.
    Erase {
        #[command(flatten)]
        common: Common,
        /// The destination: an E.164 number or an email address.
        #[arg(long)]
        to: String,
        /// Only this account's services and safe list (AC…).
        #[arg(long, value_name = "AC…")]
        account: Option<String>,
        /// Print the counts as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Rotate the server key and follow the resealing of what the old one sealed.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// Manage the console's operators (the people who sign in to /console/).
    Operator {
        #[command(subcommand)]
        command: OperatorCommand,
    },
}

#[derive(Subcommand)]
enum OperatorCommand {
    /// Create an operator. Without --password-stdin, prints an invitation link once (the
    /// operator chooses a password there); with --totp, prints the authenticator URI once.
    Create {
        #[command(flatten)]
        common: Common,
        /// The sign-in email (stored lower-cased).
        #[arg(long)]
        email: String,
        /// What the operator may do: admin (everything), support (act on verifications and
        /// numbers), viewer (read, numbers masked).
        #[arg(long, value_parser = ["admin", "support", "viewer"])]
        role: String,
        /// Read the password from the first line of stdin (at least 12 characters) instead
        /// of printing an invitation link.
        #[arg(long)]
        password_stdin: bool,
        /// Require an authenticator-app code at sign-in; prints its otpauth:// URI once.
        #[arg(long)]
        totp: bool,
        /// Print one JSON object instead of text.
        #[arg(long)]
        json: bool,
    },
    /// List operators, oldest first (never their passwords or seeds).
    List {
        #[command(flatten)]
        common: Common,
        /// Print a JSON array instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Disable an operator: it can no longer sign in and its sessions end at once.
    Disable {
        #[command(flatten)]
        common: Common,
        /// The operator's email.
        #[arg(long)]
        email: String,
    },
    /// Enable a disabled operator again (and lift a sign-in lock): it can sign in with its
    /// password.
    Enable {
        #[command(flatten)]
        common: Common,
        /// The operator's email.
        #[arg(long)]
        email: String,
    },
    /// Reset an operator's password: the old one stops working, its sessions end, and a new
    /// invitation link is printed once.
    Reset {
        #[command(flatten)]
        common: Common,
        /// The operator's email.
        #[arg(long)]
        email: String,
        /// Print one JSON object instead of text.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Generates a new server key in the key file, keeping the current one as previous.
    Rotate {
        #[command(flatten)]
        common: Common,
    },
    /// The current and previous key ids, and how many values a previous key still seals.
    Status {
        #[command(flatten)]
        common: Common,
    },
}

#[derive(Subcommand)]
enum AuditCommand {
    /// The newest entries first (every account's, unless --account).
    List {
        #[command(flatten)]
        common: Common,
        /// Only the entries of this account (AC…).
        #[arg(long, value_name = "AC…")]
        account: Option<String>,
        /// Only this action, e.g. service.update.
        #[arg(long)]
        action: Option<String>,
        /// At most this many entries.
        #[arg(long, default_value_t = 50)]
        limit: u32,
        /// Print a JSON array instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Checks every entry's hash and link, oldest first; fails naming the first entry that
    /// does not verify.
    Verify {
        #[command(flatten)]
        common: Common,
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
            let (key, names) = otpd_core::settings::message_rules::route(key, names)
                .map_err(|why| anyhow::anyhow!("--route: {why}"))?;
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
        Command::Audit { command } => audit_commands::audit(command).await,
        Command::Export {
            common,
            to,
            account,
        } => destination_commands::export(common, to, account).await,
        Command::Erase {
            common,
            to,
            account,
            json,
        } => destination_commands::erase(common, to, account, json).await,
        Command::Keys { command } => keys_commands::keys(command).await,
        Command::Operator { command } => operator_commands::operator(command).await,
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("otpd: {error:#}");
            if error
                .downcast_ref::<operator_commands::BadInput>()
                .is_some()
            {
                // Refused input, like a usage error (clap's own code).
                std::process::ExitCode::from(2)
            } else {
                std::process::ExitCode::FAILURE
            }
        }
    }
}
