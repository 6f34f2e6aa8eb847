//! The configuration's sections, each with its defaults and the policy it yields.

use std::collections::HashMap;
use std::time::Duration;

use otpd_delivery::CallbackPolicy;
use serde::{Deserialize, Serialize};

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

/// The SMS-pumping defence: a preset, and any of its thresholds set apart.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PumpingConfig {
    /// On unless turned off.
    pub enabled: bool,
    /// `basic`, `standard` or `max`: the thresholds below that are not set.
    pub preset: otpd_core::abuse::PumpingPreset,
    /// National digits after the country code that make a prefix.
    pub prefix_digits: Option<u8>,
    /// The window starts and approvals are counted over.
    pub window_seconds: Option<u32>,
    /// Starts to a prefix before its approval rate is judged.
    pub min_volume: Option<u32>,
    /// Share of starts that must be approved (0–1).
    pub min_approval_rate: Option<f64>,
    /// How long a quarantine lasts.
    pub quarantine_seconds: Option<u32>,
    /// Destination prefixes one IPv6 /64 may reach per service in the window (0: no limit).
    pub source_max_prefixes: Option<u32>,
    /// `block` (refuse), `shadow` (answer as if sent, send nothing) or `monitor` (record).
    pub mode: otpd_core::abuse::QuarantineMode,
}

impl Default for PumpingConfig {
    fn default() -> Self {
        PumpingConfig {
            enabled: true,
            preset: Default::default(),
            prefix_digits: None,
            window_seconds: None,
            min_volume: None,
            min_approval_rate: None,
            quarantine_seconds: None,
            source_max_prefixes: None,
            mode: otpd_core::abuse::QuarantineMode::Block,
        }
    }
}

impl PumpingConfig {
    /// The thresholds in force, on or off: the preset's, with those set apart instead.
    pub fn settings(&self) -> otpd_core::abuse::PumpingPolicy {
        let preset = self.preset.policy();
        otpd_core::abuse::PumpingPolicy {
            prefix_digits: self.prefix_digits.unwrap_or(preset.prefix_digits).min(12),
            window_seconds: self.window_seconds.unwrap_or(preset.window_seconds).max(1),
            min_volume: self.min_volume.unwrap_or(preset.min_volume).max(1),
            min_approval_rate: self
                .min_approval_rate
                .unwrap_or(preset.min_approval_rate)
                .clamp(0.0, 1.0),
            quarantine_seconds: self
                .quarantine_seconds
                .unwrap_or(preset.quarantine_seconds)
                .max(1),
            source_max_prefixes: self
                .source_max_prefixes
                .unwrap_or(preset.source_max_prefixes),
            mode: self.mode,
        }
    }

    /// The core's policy, or `None` when off.
    pub fn policy(&self) -> Option<otpd_core::abuse::PumpingPolicy> {
        self.enabled.then(|| self.settings())
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
    /// One readable line per event, for a terminal.
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

/// How long rows are kept (docs/data-protection.md, "Retention"); a window of 0 keeps them
/// forever. Every node runs the purge; several at once are harmless.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetentionConfig {
    /// Finished verifications with their deliveries and status callbacks, once their day is
    /// rolled up for the Attempts Summary and the report.
    pub verifications_days: u32,
    /// Events (`GET /admin/v1/events`).
    pub events_days: u32,
    /// Delivered or failed status-callback and webhook-delivery logs.
    pub delivery_logs_days: u32,
    /// Rate-limit and pumping counters, lapsed quarantines, past days' budget spends. Must
    /// be longer than every limit's window.
    pub counters_days: u32,
    /// How often each node purges.
    pub purge_every_seconds: u64,
    /// Rows per delete (each its own short transaction or SQLite writer job).
    pub batch: u32,
}

impl Default for RetentionConfig {
    fn default() -> Self {
        RetentionConfig {
            verifications_days: 30,
            events_days: 30,
            delivery_logs_days: 30,
            // Longer than the longest window a limit can have: a rate-limit bucket's interval
            // is at most 86,400 s, the pumping and lockout windows are an hour by default.
            counters_days: 7,
            purge_every_seconds: 60,
            batch: 500,
        }
    }
}

impl RetentionConfig {
    /// The core's policy.
    pub fn policy(&self) -> otpd_core::retention::RetentionPolicy {
        otpd_core::retention::RetentionPolicy {
            verifications_days: self.verifications_days,
            events_days: self.events_days,
            delivery_logs_days: self.delivery_logs_days,
            counters_days: self.counters_days,
            batch: self.batch.clamp(1, 10_000),
        }
    }

    /// Refuses a counters window shorter than a limit's window (`windows`, seconds), which
    /// would forget counted events a limit still needs.
    pub fn check(&self, windows: impl IntoIterator<Item = (String, u64)>) -> anyhow::Result<()> {
        if self.counters_days == 0 {
            return Ok(());
        }
        let kept = u64::from(self.counters_days) * 86_400;
        for (name, seconds) in windows {
            if seconds > kept {
                anyhow::bail!(
                    "retention.counters_days ({} days) is shorter than {name} ({seconds} s): \
                     raise it to at least {} days, or set it to 0 to keep counters forever",
                    self.counters_days,
                    seconds.div_ceil(86_400)
                );
            }
        }
        Ok(())
    }
}

/// The operators' console at `/console/` (docs/console.md): sign-in rules and sessions.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ConsoleConfig {
    /// Serve the console. Without an operator (`otpd operator create`) nobody can sign in.
    pub enabled: bool,
    /// A session unused this long ends.
    pub idle_timeout_minutes: u32,
    /// A session ends this long after sign-in, however busy.
    pub session_hours: u32,
    /// Failed sign-ins in a row that lock an operator.
    pub lock_after_failures: u32,
    /// How long the lock lasts.
    pub lock_minutes: u32,
    /// How long an invitation link (`otpd operator create` without a password, `otpd
    /// operator reset`) works.
    pub invitation_hours: u32,
    /// Mark the session cookie `Secure`. Unset: when `public_base_url` is `https://…`.
    pub secure_cookies: Option<bool>,
}

impl Default for ConsoleConfig {
    fn default() -> Self {
        let rules = otpd_core::operators::SessionRules::default();
        ConsoleConfig {
            enabled: true,
            idle_timeout_minutes: (rules.idle_timeout_seconds / 60) as u32,
            session_hours: (rules.absolute_timeout_seconds / 3600) as u32,
            lock_after_failures: rules.lock_after_failures,
            lock_minutes: (rules.lock_seconds / 60) as u32,
            invitation_hours: (rules.invitation_seconds / 3600) as u32,
            secure_cookies: None,
        }
    }
}

impl ConsoleConfig {
    /// The core's rules (each at least 1).
    pub fn rules(&self) -> otpd_core::operators::SessionRules {
        otpd_core::operators::SessionRules {
            idle_timeout_seconds: i64::from(self.idle_timeout_minutes.max(1)) * 60,
            absolute_timeout_seconds: i64::from(self.session_hours.max(1)) * 3600,
            lock_after_failures: self.lock_after_failures.max(1),
            lock_seconds: i64::from(self.lock_minutes.max(1)) * 60,
            invitation_seconds: i64::from(self.invitation_hours.max(1)) * 3600,
        }
    }
}
