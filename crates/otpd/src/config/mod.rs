//! Configuration: defaults, then one TOML file, then `OTPD_*` environment variables
//! (nested keys with `__`, e.g. `OTPD_CALLBACKS__MAX_ATTEMPTS=3`), then command-line flags.
//! Every key is documented in docs/configuration.md.

mod sections;
mod values;

pub use sections::*;
pub use values::*;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use otpd_core::{Secret, ServerSecret, settings::OtpSettings};
use serde::{Deserialize, Serialize};

/// Top-level keys; other `OTPD_*` variables (such as `OTPD_CONFIG`) are not configuration.
const TOP_LEVEL_KEYS: &[&str] = &[
    "listen",
    "public_base_url",
    "database_url",
    "dev_mode",
    "server_secret",
    "previous_server_secrets",
    "secret_file",
    "log_format",
    "log_level",
    "token_lifetime_seconds",
    "provider",
    "prices",
    "callbacks",
    "postgres",
    "default_otp",
    "providers",
    "routes",
    "delivery",
    "limits",
    "trusted_proxies",
    "pumping",
    "shutdown_timeout_seconds",
    "alerts",
    "outbound",
    "server",
    "retention",
    "console",
];

/// The whole configuration.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Address the HTTP server binds.
    pub listen: String,
    /// The URL clients reach otpd at (e.g. `https://otp.example.com`), used in the `url`,
    /// `links` and paging URLs of the Twilio API. Unset: `http://` + the request's Host.
    pub public_base_url: Option<String>,
    /// `sqlite://PATH` (or a plain path), or `postgres://user@host:port/db` for several nodes.
    /// Printed with its password replaced by `***`.
    pub database_url: DatabaseUrl,
    /// Dev mode: console provider output and the `/dev/inbox` pages. Defaults to on when no
    /// configuration file is given, off otherwise.
    pub dev_mode: Option<bool>,
    /// 64 hex digits. When unset, the key file below is used (and created on first start).
    pub server_secret: Option<Secret>,
    /// Secrets before a key rotation (64 hex digits each): what was sealed, hashed or issued
    /// under them still opens and verifies until resealed (docs/data-protection.md).
    pub previous_server_secrets: Vec<Secret>,
    /// Where the generated server secret is kept when `server_secret` is unset (its first
    /// line; later lines are previous secrets, written by `otpd keys rotate`).
    pub secret_file: PathBuf,
    /// `text` (human-readable) or `json` (one object per line).
    pub log_format: LogFormat,
    /// A tracing filter such as `info` or `otpd=debug,info`.
    pub log_level: String,
    /// Lifetime of bearer tokens from `POST /oauth/token`.
    pub token_lifetime_seconds: i64,
    /// The provider for every channel without a route: `console` (prints each message and
    /// keeps it for the dev inbox; dev mode only), `null` (keeps it for the dev inbox only;
    /// for load tests), or the name of a configured provider. Unset: `console` in dev mode,
    /// none otherwise (a channel without a route is then not offered).
    pub provider: Option<String>,
    /// Real providers: each table has a unique `name`, a `kind` (`twilio`, `vonage`, …) and
    /// that kind's keys (docs/providers.md).
    pub providers: Vec<ProviderTable>,
    /// Ordered provider names per channel, with per-country overrides.
    pub routes: RoutesConfig,
    /// Retries, the inline first try, fallback timing and circuit breakers.
    pub delivery: DeliveryConfig,
    /// Rate limits and the wrong-code lockout (docs/security.md).
    pub limits: LimitsConfig,
    /// The SMS-pumping defence (docs/security.md).
    pub pumping: PumpingConfig,
    /// On SIGTERM, how long in-flight requests may take before otpd exits anyway.
    pub shutdown_timeout_seconds: u64,
    /// Success-rate alerts (docs/operations.md).
    pub alerts: AlertsConfig,
    /// Reverse proxies whose `X-Forwarded-For` names the client (IP addresses); the socket's
    /// peer is the client otherwise.
    pub trusted_proxies: Vec<std::net::IpAddr>,
    /// Price of one SMS part by ISO country (`FR = 0.045`); unlisted countries cost 0.
    pub prices: HashMap<String, f64>,
    /// Status-callback retry schedule.
    pub callbacks: CallbackConfig,
    /// PostgreSQL pool and timeouts (used when `database_url` is `postgres://…`).
    pub postgres: PostgresConfig,
    /// OTP settings of the application created on first start.
    pub default_otp: OtpSettings,
    /// Where status callbacks and service webhooks may go (docs/security.md).
    pub outbound: OutboundConfig,
    /// Bounds on client connections (docs/security.md, "Connections and limits").
    pub server: ServerConfig,
    /// How long rows are kept and how the purge runs (docs/data-protection.md, "Retention").
    pub retention: RetentionConfig,
    /// The operators' console (docs/console.md).
    pub console: ConsoleConfig,
    /// Whether dev mode is on only because no configuration file was given (nobody chose it).
    #[serde(skip)]
    pub implicit_dev_mode: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: "127.0.0.1:8080".into(),
            public_base_url: None,
            database_url: "sqlite://otpd.db".into(),
            dev_mode: None,
            server_secret: None,
            previous_server_secrets: Vec::new(),
            secret_file: PathBuf::from("otpd.key"),
            log_format: LogFormat::Text,
            log_level: "info".into(),
            token_lifetime_seconds: 86_400,
            provider: None,
            providers: Vec::new(),
            routes: RoutesConfig::default(),
            delivery: DeliveryConfig::default(),
            limits: LimitsConfig::default(),
            pumping: PumpingConfig::default(),
            shutdown_timeout_seconds: 10,
            alerts: AlertsConfig::default(),
            trusted_proxies: Vec::new(),
            prices: HashMap::new(),
            callbacks: CallbackConfig::default(),
            postgres: PostgresConfig::default(),
            outbound: OutboundConfig::default(),
            server: ServerConfig::default(),
            retention: RetentionConfig::default(),
            console: ConsoleConfig::default(),
            implicit_dev_mode: false,
            // Native-API applications wait 30 s between sends to one destination (Twilio
            // services default to none; docs/api-native.md explains the difference).
            default_otp: OtpSettings {
                resend_cooldown_seconds: 30,
                ..OtpSettings::default()
            },
        }
    }
}

impl Config {
    /// Loads defaults → `file` → environment. Dev mode defaults to on without a file.
    pub fn load(file: Option<&Path>) -> anyhow::Result<Config> {
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        if let Some(file) = file {
            if !file.exists() {
                bail!("configuration file {} does not exist", file.display());
            }
            figment = figment.merge(Toml::file(file));
        }
        let env = Env::prefixed("OTPD_").split("__").filter(|key| {
            let top = key.as_str().split("__").next().unwrap_or_default();
            let top = top.split('.').next().unwrap_or_default();
            TOP_LEVEL_KEYS
                .iter()
                .any(|known| known.eq_ignore_ascii_case(top))
        });
        let mut config: Config = figment
            .merge(env)
            .extract()
            .context("invalid configuration")?;
        if config.dev_mode.is_none() {
            config.dev_mode = Some(file.is_none());
            config.implicit_dev_mode = file.is_none();
        }
        config.validate()?;
        Ok(config)
    }

    /// Whether dev mode is on.
    pub fn dev_mode(&self) -> bool {
        self.dev_mode.unwrap_or(true)
    }

    /// The outbound policy: `http://` only in dev mode unless configured.
    pub fn outbound_policy(&self) -> anyhow::Result<otpd_core::outbound::OutboundPolicy> {
        let allow_http = self.outbound.allow_http.unwrap_or(self.dev_mode());
        otpd_core::outbound::OutboundPolicy::new(allow_http, &self.outbound.allowed_private)
            .map_err(|error| anyhow::anyhow!("outbound.allowed_private: {error}"))
    }

    fn validate(&self) -> anyhow::Result<()> {
        self.outbound_policy()?;
        otpd_core::SenderId::new(self.default_otp.from.as_str()).map_err(|_| {
            anyhow::anyhow!(
                "default_otp.from must be a name of 3–11 letters, digits and spaces, or a number (+ and up to 15 digits)"
            )
        })?;
        otpd_core::Template::new(self.default_otp.template.as_str())
            .map_err(|error| anyhow::anyhow!("default_otp.template: {error}"))?;
        let configured = |name: &str| {
            matches!(name, "console" | "null")
                || self
                    .providers
                    .iter()
                    .any(|p| p.get("name").and_then(|n| n.as_str()) == Some(name))
        };
        if let Some(provider) = &self.provider
            && !configured(provider)
        {
            bail!(
                "provider '{provider}' is neither 'console', 'null' nor the name of a [[providers]] entry"
            );
        }
        if !self.dev_mode() && self.routes_console() {
            bail!(
                "the console provider prints every code to stdout: route it only in dev mode \
                 (set dev_mode = true, or route the channel to a real provider: docs/providers.md)"
            );
        }
        if let Some(base) = &self.public_base_url {
            let parsed = url::Url::parse(base)
                .ok()
                .filter(|u| matches!(u.scheme(), "http" | "https"));
            if parsed.is_none() {
                bail!("public_base_url must be an absolute http(s) URL, got '{base}'");
            }
        }
        if self.token_lifetime_seconds <= 0 {
            bail!("token_lifetime_seconds must be positive");
        }
        for (country, price) in &self.prices {
            otpd_core::CountryIso::parse(country).map_err(|_| {
                anyhow::anyhow!("prices: '{country}' is not an ISO 3166-1 alpha-2 country")
            })?;
            if !price.is_finite() || *price < 0.0 {
                bail!("prices: the price of {country} must be a non-negative number");
            }
        }
        if !self.is_postgres() {
            self.sqlite_path()?;
        }
        let limits = &self.limits;
        let mut windows: Vec<(String, u64)> = vec![
            (
                "limits.per_destination".into(),
                limits.per_destination.window_seconds.into(),
            ),
            (
                "limits.per_client_ip".into(),
                limits.per_client_ip.window_seconds.into(),
            ),
            (
                "limits.per_country".into(),
                limits.per_country.window_seconds.into(),
            ),
            (
                "limits.failed_checks".into(),
                limits.failed_checks.window_seconds.into(),
            ),
            (
                "pumping.window_seconds".into(),
                self.pumping.settings().window_seconds.into(),
            ),
            // A rate-limit bucket's interval is at most a day (`Interval`, 1–86,400).
            ("a rate-limit bucket's interval".into(), 86_400),
        ];
        for (country, limit) in &limits.countries {
            windows.push((
                format!("limits.countries.{country}"),
                limit.window_seconds.into(),
            ));
        }
        self.retention.check(windows)?;
        let judged =
            u64::from(self.alerts.window_seconds) + u64::from(self.alerts.baseline_seconds);
        if self.alerts.enabled
            && self.retention.verifications_days > 0
            && u64::from(self.retention.verifications_days) * 86_400 < judged + 86_400
        {
            bail!(
                "retention.verifications_days ({} days) leaves the success-rate alerts without \
                 the sends they judge (alerts.window_seconds + baseline_seconds = {judged} s, plus \
                 a day): raise it or turn alerts off",
                self.retention.verifications_days
            );
        }
        Ok(())
    }

    /// Refuses dev mode on a non-loopback address unless someone chose it: with no file, an
    /// `OTPD_LISTEN=0.0.0.0:…` would otherwise serve every tenant's codes at `/dev/inbox`.
    pub fn check_exposure(&self) -> anyhow::Result<()> {
        if !self.implicit_dev_mode {
            return Ok(());
        }
        let loopback = match self.listen.parse::<std::net::SocketAddr>() {
            Ok(address) => address.ip().is_loopback(),
            Err(_) => self
                .listen
                .rsplit_once(':')
                .is_some_and(|(host, _)| host.eq_ignore_ascii_case("localhost")),
        };
        if !loopback {
            bail!(
                "refusing to listen on {} in dev mode: dev mode (on because no configuration \
                 file was given) prints codes and serves them at /dev/inbox. Give a \
                 configuration file (--config or OTPD_CONFIG) for production, or set \
                 OTPD_DEV_MODE=true if you really mean dev mode on this address",
                self.listen
            );
        }
        Ok(())
    }

    /// The provider for channels without a route: the configured one, else `console` in dev
    /// mode, else none.
    pub fn fallback_provider(&self) -> Option<&str> {
        match &self.provider {
            Some(provider) => Some(provider),
            None if self.dev_mode() => Some("console"),
            None => None,
        }
    }

    /// Whether any route (or the fallback) names the console provider.
    fn routes_console(&self) -> bool {
        let table = self.routes.table(self.fallback_provider());
        std::iter::once(&table.default)
            .chain(table.by_country.values())
            .flat_map(|routes| routes.values())
            .any(|names| names.iter().any(|name| name == "console"))
    }

    /// Whether `database_url` names a PostgreSQL server.
    pub fn is_postgres(&self) -> bool {
        let url = self.database_url.expose().trim();
        url.starts_with("postgres://") || url.starts_with("postgresql://")
    }

    /// The SQLite file named by `database_url`.
    pub fn sqlite_path(&self) -> anyhow::Result<PathBuf> {
        let url = self.database_url.expose().trim();
        if self.is_postgres() {
            bail!("database_url names PostgreSQL, not a SQLite file");
        }
        let path = url
            .strip_prefix("sqlite://")
            .or_else(|| url.strip_prefix("sqlite:"))
            .unwrap_or(url);
        if path.is_empty() || path.contains("://") {
            bail!("database_url: expected sqlite://PATH, got '{url}'");
        }
        Ok(PathBuf::from(path))
    }

    /// The price table as the core wants it (country codes upper-cased).
    pub fn price_table(&self) -> otpd_core::PriceTable {
        otpd_core::PriceTable(
            self.prices
                .iter()
                .map(|(k, v)| (k.to_ascii_uppercase(), *v))
                .collect(),
        )
    }

    /// The server secret: configured, else read from the key file, else generated into it.
    pub fn server_secret(&self) -> anyhow::Result<ServerSecret> {
        Ok(self.server_secrets()?.0)
    }

    /// The current server secret and the previous ones (a key rotation in progress): from
    /// `server_secret` and `previous_server_secrets`, else the key file's lines (first the
    /// current one), generating the file on first start.
    pub fn server_secrets(&self) -> anyhow::Result<(ServerSecret, Vec<ServerSecret>)> {
        let mut previous = Vec::new();
        for (index, hex) in self.previous_server_secrets.iter().enumerate() {
            previous.push(ServerSecret::from_hex(hex.expose()).with_context(|| {
                format!("previous_server_secrets[{index}] must be 64 hex digits (32 bytes)")
            })?);
        }
        if let Some(hex) = &self.server_secret {
            let current = ServerSecret::from_hex(hex.expose())
                .context("server_secret must be 64 hex digits (32 bytes); generate one with `openssl rand -hex 32`")?;
            return Ok((current, previous));
        }
        let path = &self.secret_file;
        if path.exists() {
            let text = std::fs::read_to_string(path).with_context(|| {
                format!("cannot read the server secret file {}", path.display())
            })?;
            let mut secrets = Vec::new();
            for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
                secrets.push(ServerSecret::from_hex(line).with_context(|| {
                    format!("{}: each line must hold 64 hex digits", path.display())
                })?);
            }
            if secrets.is_empty() {
                anyhow::bail!("{} must hold 64 hex digits", path.display());
            }
            let current = secrets.remove(0);
            secrets.extend(previous);
            return Ok((current, secrets));
        }
        let secret = ServerSecret::generate();
        write_private(path, &secret.to_hex())
            .with_context(|| format!("cannot write the server secret file {}", path.display()))?;
        Ok((secret, previous))
    }
}

/// Writes `text` to a new file readable by its owner only (it holds secrets).
#[cfg(unix)]
pub fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(text.as_bytes())?;
    file.write_all(b"\n")
}

/// Writes `text` to a new file (owner-only modes need Unix).
#[cfg(not(unix))]
pub fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    std::fs::write(path, format!("{text}\n"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_of_the_configuration_holds_no_password_token_or_secret() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("otpd.toml");
        std::fs::write(
            &file,
            r#"
database_url = "postgres://postgres:pw-in-url@127.0.0.1:5432/test"
server_secret = "5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e"

[[providers]]
name = "tw"
kind = "twilio"
account_sid = "AC0123456789abcdef0123456789abcdef"
auth_token = "tok-secret-123"
from = "+15017122661"

[routes]
sms = ["tw"]
"#,
        )
        .unwrap();
        let config = Config::load(Some(&file)).unwrap();
        assert_eq!(
            config.database_url.expose(),
            "postgres://postgres:pw-in-url@127.0.0.1:5432/test"
        );
        let debug = format!("{config:?}");
        for secret in ["pw-in-url", "tok-secret-123", "5e5e5e5e"] {
            assert!(!debug.contains(secret), "{secret} in {debug}");
        }
        assert!(debug.contains("postgres://postgres:***@127.0.0.1:5432/test"));
        assert!(debug.contains(r#"name: String("tw")"#), "{debug}");
        assert_eq!(
            config.database_url.to_string(),
            "postgres://postgres:***@127.0.0.1:5432/test"
        );
    }

    #[test]
    fn a_retention_window_shorter_than_what_a_limit_or_alert_needs_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let load = |text: &str| {
            let file = dir.path().join("otpd.toml");
            std::fs::write(&file, text).unwrap();
            Config::load(Some(&file))
        };
        let config = load("[retention]\nverifications_days = 0\n").unwrap();
        assert_eq!(config.retention.events_days, 30);
        let error = load("[retention]\ncounters_days = 1\n[pumping]\nwindow_seconds = 172800\n")
            .unwrap_err()
            .to_string();
        assert!(error.contains("pumping.window_seconds"), "{error}");
        let error = load("[retention]\nverifications_days = 1\n")
            .unwrap_err()
            .to_string();
        assert!(error.contains("alerts"), "{error}");
        load("[retention]\nverifications_days = 1\n[alerts]\nenabled = false\n").unwrap();
    }

    #[test]
    fn a_pumping_preset_sets_the_thresholds_not_set_apart() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("otpd.toml");
        std::fs::write(&file, "[pumping]\npreset = \"max\"\nmin_volume = 15\n").unwrap();
        let policy = Config::load(Some(&file)).unwrap().pumping.policy().unwrap();
        assert_eq!(policy.min_volume, 15, "set apart");
        assert_eq!(policy.min_approval_rate, 0.25, "max's");
        assert_eq!(policy.source_max_prefixes, 3, "max's");
        assert_eq!(
            Config::default().pumping.policy(),
            Some(otpd_core::abuse::PumpingPolicy::default()),
            "standard by default"
        );
        std::fs::write(&file, "[pumping]\npreset = \"lenient\"\n").unwrap();
        let error = format!("{:#}", Config::load(Some(&file)).unwrap_err());
        assert!(error.contains("lenient"), "{error}");
    }
}
