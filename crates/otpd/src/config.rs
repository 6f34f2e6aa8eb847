//! Configuration: defaults, then one TOML file, then `OTPD_*` environment variables
//! (nested keys with `__`, e.g. `OTPD_CALLBACKS__MAX_ATTEMPTS=3`), then command-line flags.
//! Every key is documented in docs/configuration.md.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use otpd_core::{Secret, ServerSecret, settings::OtpSettings};
use otpd_delivery::CallbackPolicy;
use serde::{Deserialize, Serialize};

/// Top-level keys; other `OTPD_*` variables (such as `OTPD_CONFIG`) are not configuration.
const TOP_LEVEL_KEYS: &[&str] = &[
    "listen",
    "public_base_url",
    "database_url",
    "dev_mode",
    "server_secret",
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
    /// Where the generated server secret is kept when `server_secret` is unset.
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
    /// Whether dev mode is on only because no configuration file was given (nobody chose it).
    #[serde(skip)]
    pub implicit_dev_mode: bool,
}

/// A database URL as configured. `Debug` and `Display` show it with the password replaced by
/// `***` (a PostgreSQL URL can hold one), so the start-up log line and `{:?}` of the
/// configuration never print it; [`DatabaseUrl::expose`] gives the URL to connect with.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct DatabaseUrl(String);

impl DatabaseUrl {
    /// The URL itself, password included, for connecting.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl From<String> for DatabaseUrl {
    fn from(url: String) -> DatabaseUrl {
        DatabaseUrl(url)
    }
}

impl From<&str> for DatabaseUrl {
    fn from(url: &str) -> DatabaseUrl {
        DatabaseUrl(url.to_string())
    }
}

impl std::fmt::Display for DatabaseUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&otpd_core::secret::redact_url_password(&self.0))
    }
}

impl std::fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", otpd_core::secret::redact_url_password(&self.0))
    }
}

/// One `[[providers]]` table, kept as written until the provider registry parses it by kind.
/// Which keys are credentials depends on the kind, so `Debug` shows `name`, `kind` and the
/// other keys' names, never their values.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ProviderTable(pub serde_json::Map<String, serde_json::Value>);

impl std::ops::Deref for ProviderTable {
    type Target = serde_json::Map<String, serde_json::Value>;

    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl From<serde_json::Map<String, serde_json::Value>> for ProviderTable {
    fn from(table: serde_json::Map<String, serde_json::Value>) -> ProviderTable {
        ProviderTable(table)
    }
}

impl std::fmt::Debug for ProviderTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut table = f.debug_struct("ProviderTable");
        for key in ["name", "kind"] {
            if let Some(value) = self.0.get(key) {
                table.field(key, value);
            }
        }
        for key in self
            .0
            .keys()
            .filter(|k| !matches!(k.as_str(), "name" | "kind"))
        {
            table.field(key, &format_args!("***"));
        }
        table.finish()
    }
}

/// Bounds on client connections, so slow or idle clients cannot exhaust the server.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    /// Connections served at once (kept below the process's open-file limit); more wait.
    pub max_connections: usize,
    /// Time a connection has to send a whole request head, from when it opens or finishes
    /// its previous response: slow headers and idle keep-alive connections close after it.
    pub header_timeout_ms: u64,
    /// Time a request has to send its whole body (408 after).
    pub body_timeout_ms: u64,
    /// Host names (with port, as clients send them in `Host`) that the Twilio API's links
    /// may use when `public_base_url` is unset; any other `Host` gets the listen address.
    pub hosts: Vec<String>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        let limits = otpd_http::connections::ConnectionLimits::default();
        ServerConfig {
            max_connections: limits.max_connections,
            header_timeout_ms: limits.header_timeout.as_millis() as u64,
            body_timeout_ms: limits.body_timeout.as_millis() as u64,
            hosts: Vec::new(),
        }
    }
}

impl ServerConfig {
    /// The limits in force (`max_connections` within the open-file limit).
    pub fn limits(&self) -> otpd_http::connections::ConnectionLimits {
        otpd_http::connections::ConnectionLimits {
            max_connections: self.max_connections.max(1),
            header_timeout: Duration::from_millis(self.header_timeout_ms.max(100)),
            body_timeout: Duration::from_millis(self.body_timeout_ms.max(100)),
        }
        .within_open_file_limit()
    }
}

/// Where requests made on a tenant's behalf (status callbacks, service webhooks) may go.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OutboundConfig {
    /// Whether `http://` targets are allowed; unset means "only in dev mode".
    pub allow_http: Option<bool>,
    /// Private addresses, CIDR ranges or host names that callbacks and webhooks may reach
    /// (e.g. `["10.1.2.0/24"]`); everything else must be globally routable.
    pub allowed_private: Vec<String>,
}

/// Success-rate alerts.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AlertsConfig {
    /// On unless turned off.
    pub enabled: bool,
    /// The recent window judged.
    pub window_seconds: u32,
    /// The baseline before it.
    pub baseline_seconds: u32,
    /// Sends needed in the window and in the baseline.
    pub min_volume: u64,
    /// Fires below this fraction of the baseline's approval rate.
    pub drop_fraction: f64,
    /// How often services are judged.
    pub check_interval_seconds: u64,
}

impl Default for AlertsConfig {
    fn default() -> Self {
        let policy = otpd_core::alerts::AlertPolicy::default();
        AlertsConfig {
            enabled: true,
            window_seconds: policy.window_seconds,
            baseline_seconds: policy.baseline_seconds,
            min_volume: policy.min_volume,
            drop_fraction: policy.drop_fraction,
            check_interval_seconds: 60,
        }
    }
}

impl AlertsConfig {
    /// The core's policy.
    pub fn policy(&self) -> otpd_core::alerts::AlertPolicy {
        otpd_core::alerts::AlertPolicy {
            window_seconds: self.window_seconds.max(1),
            baseline_seconds: self.baseline_seconds.max(1),
            min_volume: self.min_volume.max(1),
            drop_fraction: self.drop_fraction.clamp(0.0, 1.0),
        }
    }
}

/// The SMS-pumping defence.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PumpingConfig {
    /// On unless turned off.
    pub enabled: bool,
    /// National digits after the country code that make a prefix.
    pub prefix_digits: u8,
    /// The window starts and approvals are counted over.
    pub window_seconds: u32,
    /// Starts to a prefix before its approval rate is judged.
    pub min_volume: u32,
    /// Share of starts that must be approved (0–1).
    pub min_approval_rate: f64,
    /// How long a quarantine lasts.
    pub quarantine_seconds: u32,
    /// `block` (refuse) or `shadow` (answer as if sent, send nothing).
    pub mode: otpd_core::abuse::QuarantineMode,
}

impl Default for PumpingConfig {
    fn default() -> Self {
        let policy = otpd_core::abuse::PumpingPolicy::default();
        PumpingConfig {
            enabled: true,
            prefix_digits: policy.prefix_digits,
            window_seconds: policy.window_seconds,
            min_volume: policy.min_volume,
            min_approval_rate: policy.min_approval_rate,
            quarantine_seconds: policy.quarantine_seconds,
            mode: policy.mode,
        }
    }
}

impl PumpingConfig {
    /// The core's policy, or `None` when off.
    pub fn policy(&self) -> Option<otpd_core::abuse::PumpingPolicy> {
        self.enabled.then_some(otpd_core::abuse::PumpingPolicy {
            prefix_digits: self.prefix_digits.min(12),
            window_seconds: self.window_seconds.max(1),
            min_volume: self.min_volume.max(1),
            min_approval_rate: self.min_approval_rate.clamp(0.0, 1.0),
            quarantine_seconds: self.quarantine_seconds.max(1),
            mode: self.mode,
        })
    }
}

/// Rate limits; a limit with `max = 0` is off.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LimitsConfig {
    /// Starts to one destination of one service.
    pub per_destination: otpd_core::abuse::Limit,
    /// Starts from one client address.
    pub per_client_ip: otpd_core::abuse::Limit,
    /// Starts to one destination country of one service (off by default).
    pub per_country: otpd_core::abuse::Limit,
    /// Ceilings for particular countries (ISO code → limit), overriding `per_country`.
    pub countries: HashMap<String, otpd_core::abuse::Limit>,
    /// Wrong codes to one destination across verifications before it is locked out.
    pub failed_checks: otpd_core::abuse::Limit,
    /// Failed authentications from one client address (per node) before it gets 429.
    pub auth_failures: otpd_core::abuse::Limit,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        let policy = otpd_core::abuse::AbusePolicy::default();
        let off = otpd_core::abuse::Limit {
            max: 0,
            window_seconds: 60,
        };
        LimitsConfig {
            per_destination: policy.per_destination.unwrap_or(off),
            per_client_ip: policy.per_client_ip.unwrap_or(off),
            per_country: policy.per_country_default.unwrap_or(off),
            countries: HashMap::new(),
            failed_checks: policy.failed_checks.unwrap_or(off),
            auth_failures: otpd_core::abuse::Limit {
                max: 20,
                window_seconds: 60,
            },
        }
    }
}

impl LimitsConfig {
    /// The authentication-failure limit, unless off.
    pub fn auth_failures(&self) -> Option<otpd_core::abuse::Limit> {
        let limit = self.auth_failures;
        (limit.max > 0 && limit.window_seconds > 0).then_some(limit)
    }

    /// The core's policy.
    pub fn policy(&self) -> otpd_core::abuse::AbusePolicy {
        let on = |limit: otpd_core::abuse::Limit| {
            (limit.max > 0 && limit.window_seconds > 0).then_some(limit)
        };
        otpd_core::abuse::AbusePolicy {
            per_destination: on(self.per_destination),
            per_client_ip: on(self.per_client_ip),
            per_country_default: on(self.per_country),
            per_country: self
                .countries
                .iter()
                .filter_map(|(c, l)| on(*l).map(|l| (c.to_ascii_uppercase(), l)))
                .collect(),
            failed_checks: on(self.failed_checks),
            pumping: None,
        }
    }
}

/// Ordered provider names per channel; an unset channel uses `provider`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RoutesConfig {
    /// SMS providers, first choice first.
    pub sms: Vec<String>,
    /// Voice providers.
    pub call: Vec<String>,
    /// Email providers.
    pub email: Vec<String>,
    /// WhatsApp providers.
    pub whatsapp: Vec<String>,
    /// Overrides per destination country (ISO code): `[routes.country.GB] sms = ["vonage"]`.
    pub country: HashMap<String, CountryRoutes>,
}

/// One country's routes; an unset channel uses the general route.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CountryRoutes {
    /// SMS providers.
    pub sms: Vec<String>,
    /// Voice providers.
    pub call: Vec<String>,
    /// Email providers.
    pub email: Vec<String>,
    /// WhatsApp providers.
    pub whatsapp: Vec<String>,
}

impl CountryRoutes {
    fn table(&self) -> HashMap<otpd_core::Channel, Vec<String>> {
        use otpd_core::Channel;
        [
            (Channel::Sms, &self.sms),
            (Channel::Call, &self.call),
            (Channel::Email, &self.email),
            (Channel::Whatsapp, &self.whatsapp),
        ]
        .into_iter()
        .filter(|(_, names)| !names.is_empty())
        .map(|(channel, names)| (channel, names.clone()))
        .collect()
    }
}

impl RoutesConfig {
    /// The routing table; channels without a route go to `fallback_provider`, if any.
    pub fn table(&self, fallback_provider: Option<&str>) -> otpd_delivery::RouteTable {
        use otpd_core::Channel;
        let general = CountryRoutes {
            sms: self.sms.clone(),
            call: self.call.clone(),
            email: self.email.clone(),
            whatsapp: self.whatsapp.clone(),
        };
        let mut default = general.table();
        for channel in [
            Channel::Sms,
            Channel::Call,
            Channel::Email,
            Channel::Whatsapp,
        ] {
            if let Some(fallback) = fallback_provider {
                default
                    .entry(channel)
                    .or_insert_with(|| vec![fallback.to_string()]);
            }
        }
        otpd_delivery::RouteTable {
            default,
            by_country: self
                .country
                .iter()
                .map(|(country, routes)| (country.to_ascii_uppercase(), routes.table()))
                .collect(),
        }
    }
}

/// Delivery timing, in milliseconds unless named otherwise.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DeliveryConfig {
    /// How long a start waits for the first try so its response can say whether a provider
    /// took the message.
    pub inline_deadline_ms: u64,
    /// First wait after transient failures on every provider; doubles each round.
    pub first_backoff_ms: u64,
    /// Longest wait between rounds.
    pub max_backoff_ms: u64,
    /// With a fallback channel left, how long to wait for a `delivered` receipt.
    pub receipt_timeout_seconds: u64,
    /// Consecutive failures that open a provider's circuit breaker.
    pub breaker_failures: u32,
    /// How long an open breaker keeps its provider last in line.
    pub breaker_open_seconds: u64,
    /// Time allowed for one provider request.
    pub provider_timeout_ms: u64,
    /// How often a node looks for deliveries whose node died (lease run out) and for due
    /// fallbacks.
    pub sweep_interval_ms: u64,
}

impl Default for DeliveryConfig {
    fn default() -> Self {
        let policy = otpd_delivery::DeliveryPolicy::default();
        let breaker = otpd_delivery::BreakerPolicy::default();
        DeliveryConfig {
            inline_deadline_ms: policy.inline_deadline.as_millis() as u64,
            first_backoff_ms: policy.first_backoff.as_millis() as u64,
            max_backoff_ms: policy.max_backoff.as_millis() as u64,
            receipt_timeout_seconds: policy.receipt_timeout.as_secs(),
            breaker_failures: breaker.failures,
            breaker_open_seconds: breaker.open_for.as_secs(),
            provider_timeout_ms: 10_000,
            sweep_interval_ms: 10_000,
        }
    }
}

impl DeliveryConfig {
    /// The worker's policy.
    pub fn policy(&self) -> otpd_delivery::DeliveryPolicy {
        otpd_delivery::DeliveryPolicy {
            inline_deadline: Duration::from_millis(self.inline_deadline_ms),
            first_backoff: Duration::from_millis(self.first_backoff_ms.max(10)),
            max_backoff: Duration::from_millis(self.max_backoff_ms.max(self.first_backoff_ms)),
            receipt_timeout: Duration::from_secs(self.receipt_timeout_seconds),
        }
    }

    /// The circuit breakers' policy.
    pub fn breaker(&self) -> otpd_delivery::BreakerPolicy {
        otpd_delivery::BreakerPolicy {
            failures: self.breaker_failures.max(1),
            open_for: Duration::from_secs(self.breaker_open_seconds),
        }
    }
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable.
    Text,
    /// JSON lines.
    Json,
}

/// PostgreSQL pool settings, in milliseconds.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PostgresConfig {
    /// Connections per node; all nodes together must stay under the server's
    /// `max_connections`.
    pub max_connections: u32,
    /// How long a request waits for a free connection before it fails with 503.
    pub acquire_timeout_ms: u64,
    /// Server-side limit on one statement (`statement_timeout`); a slower one fails with 503.
    pub statement_timeout_ms: u64,
}

impl Default for PostgresConfig {
    fn default() -> Self {
        let defaults = otpd_store_postgres::PgSettings::default();
        PostgresConfig {
            max_connections: defaults.max_connections,
            acquire_timeout_ms: defaults.acquire_timeout.as_millis() as u64,
            statement_timeout_ms: defaults.statement_timeout.as_millis() as u64,
        }
    }
}

impl PostgresConfig {
    /// The store's settings.
    pub fn settings(&self) -> otpd_store_postgres::PgSettings {
        otpd_store_postgres::PgSettings {
            max_connections: self.max_connections.max(1),
            acquire_timeout: Duration::from_millis(self.acquire_timeout_ms),
            statement_timeout: Duration::from_millis(self.statement_timeout_ms),
        }
    }
}

/// Retry schedule of status callbacks, in milliseconds.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CallbackConfig {
    /// Posts tried before a callback is abandoned.
    pub max_attempts: u32,
    /// Delay before the first retry; doubles each retry.
    pub base_delay_ms: u64,
    /// Longest delay between retries.
    pub max_delay_ms: u64,
    /// Time allowed for one post.
    pub timeout_ms: u64,
    /// How often the outbox is polled.
    pub poll_interval_ms: u64,
}

impl Default for CallbackConfig {
    fn default() -> Self {
        let policy = CallbackPolicy::default();
        CallbackConfig {
            max_attempts: policy.max_attempts,
            base_delay_ms: policy.base_delay.as_millis() as u64,
            max_delay_ms: policy.max_delay.as_millis() as u64,
            timeout_ms: policy.timeout.as_millis() as u64,
            poll_interval_ms: policy.poll_interval.as_millis() as u64,
        }
    }
}

impl CallbackConfig {
    /// The worker's policy.
    pub fn policy(&self) -> CallbackPolicy {
        CallbackPolicy {
            max_attempts: self.max_attempts.max(1),
            base_delay: Duration::from_millis(self.base_delay_ms),
            max_delay: Duration::from_millis(self.max_delay_ms),
            timeout: Duration::from_millis(self.timeout_ms),
            poll_interval: Duration::from_millis(self.poll_interval_ms.max(10)),
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: "127.0.0.1:8080".into(),
            public_base_url: None,
            database_url: "sqlite://otpd.db".into(),
            dev_mode: None,
            server_secret: None,
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
        if let Some(hex) = &self.server_secret {
            return ServerSecret::from_hex(hex.expose())
                .context("server_secret must be 64 hex digits (32 bytes); generate one with `openssl rand -hex 32`");
        }
        let path = &self.secret_file;
        if path.exists() {
            let text = std::fs::read_to_string(path).with_context(|| {
                format!("cannot read the server secret file {}", path.display())
            })?;
            return ServerSecret::from_hex(&text)
                .with_context(|| format!("{} must hold 64 hex digits", path.display()));
        }
        let secret = ServerSecret::generate();
        write_private(path, &secret.to_hex())
            .with_context(|| format!("cannot write the server secret file {}", path.display()))?;
        Ok(secret)
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
}
