//! Abuse resistance decided in the core: rate limits per destination, client IP and country,
//! the lockout after repeated wrong codes, geo permissions, block and safe lists, and refusing
//! costly (premium-rate) numbers. Counters live in the store, so limits are exact across
//! restarts and nodes. docs/security.md explains each protection and its defaults.

use serde::{Deserialize, Serialize};

use crate::clock::Timestamp;
use crate::ids::ServiceId;
use crate::recipient::Recipient;

/// At most `max` events per `window_seconds`, over a sliding window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limit {
    /// Events allowed in the window.
    pub max: u32,
    /// The window's length.
    pub window_seconds: u32,
}

impl Limit {
    /// The window in milliseconds.
    pub fn window_ms(self) -> i64 {
        i64::from(self.window_seconds) * 1000
    }
}

/// The server-wide protections; each `None` turns one off.
#[derive(Debug, Clone, PartialEq)]
pub struct AbusePolicy {
    /// Starts to one destination of one service (Twilio's 5 per 10 minutes).
    pub per_destination: Option<Limit>,
    /// Starts from one client address, across services: the end user's when the caller
    /// passes it (`DeviceIp`) or a trusted proxy forwards it, else the socket peer.
    pub per_client_ip: Option<Limit>,
    /// Starts to one destination country of one service, unless the country has its own
    /// limit in `per_country`.
    pub per_country_default: Option<Limit>,
    /// Starts to one destination country of one service, per ISO code.
    pub per_country: std::collections::HashMap<String, Limit>,
    /// Wrong codes to one destination of one service, across its verifications: reaching
    /// `max` locks the destination out of new codes until the oldest failure leaves the
    /// window.
    pub failed_checks: Option<Limit>,
    /// The SMS-pumping defence.
    pub pumping: Option<PumpingPolicy>,
}

/// What quarantined prefixes get.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum QuarantineMode {
    /// New starts are refused with an error.
    Block,
    /// New starts are answered as if sent, and nothing is sent: attackers learn nothing.
    Shadow,
    /// Nothing is refused: every start is sent, and each one block mode would refuse is
    /// recorded (`verification.flagged`), to try the defence on real traffic first.
    Monitor,
}

impl QuarantineMode {
    pub fn as_str(self) -> &'static str {
        match self {
            QuarantineMode::Block => "block",
            QuarantineMode::Shadow => "shadow",
            QuarantineMode::Monitor => "monitor",
        }
    }
}

/// SMS-pumping defence: per destination prefix and sliding window, starts and approvals are
/// counted server-wide; past `min_volume` starts with fewer than `min_approval_rate` of them
/// approved, the prefix is quarantined for `quarantine_seconds`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PumpingPolicy {
    /// National digits after the country code that make a prefix (`+44` + `740`).
    pub prefix_digits: u8,
    /// The window starts and approvals are counted over.
    pub window_seconds: u32,
    /// Starts to a prefix before its approval rate is judged.
    pub min_volume: u32,
    /// Share of starts that must be approved (0–1).
    pub min_approval_rate: f64,
    /// How long a quarantine lasts.
    pub quarantine_seconds: u32,
    /// Destination prefixes one IPv6 /64 may start verifications to for a service in the
    /// window; a /64 that reaches one more is quarantined for that service (0: no limit).
    pub source_max_prefixes: u32,
    /// Refuse, or pretend to send, or only record.
    pub mode: QuarantineMode,
}

/// How hard the pumping defence judges, named as Twilio's Fraud Guard names its levels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PumpingPreset {
    /// Judges later and more leniently: for services whose real traffic converts poorly.
    Basic,
    /// The default.
    #[default]
    Standard,
    /// Judges sooner and more strictly: for expensive destinations, at the risk of
    /// refusing some real users during an attack.
    Max,
}

impl PumpingPreset {
    /// The policy of this level (block mode, 3-digit prefixes, one-hour window).
    pub fn policy(self) -> PumpingPolicy {
        let (min_volume, min_approval_rate, source_max_prefixes, quarantine_seconds) = match self {
            PumpingPreset::Basic => (40, 0.05, 10, 1800),
            PumpingPreset::Standard => (20, 0.1, 5, 3600),
            PumpingPreset::Max => (10, 0.25, 3, 7200),
        };
        PumpingPolicy {
            prefix_digits: 3,
            window_seconds: 3600,
            min_volume,
            min_approval_rate,
            quarantine_seconds,
            source_max_prefixes,
            mode: QuarantineMode::Block,
        }
    }
}

impl Default for PumpingPolicy {
    /// The `standard` preset.
    fn default() -> Self {
        PumpingPreset::Standard.policy()
    }
}

/// The prefix a number is counted under: `+`, its country calling code, and `digits`
/// national digits (`+447400123456` → `+44740`).
pub fn pumping_prefix(phone: &crate::E164Phone, digits: u8) -> String {
    phone
        .as_str()
        .chars()
        .take(1 + phone.calling_code_digits() + usize::from(digits))
        .collect()
}

/// [`pumping_prefix`] for a number whose ranges are already known.
pub fn prefix_of(
    phone: &crate::E164Phone,
    ranges: &crate::phone::NumberRanges,
    digits: u8,
) -> String {
    phone
        .as_str()
        .chars()
        .take(1 + ranges.calling_code_digits + usize::from(digits))
        .collect()
}

impl Default for AbusePolicy {
    fn default() -> Self {
        AbusePolicy {
            per_destination: Some(Limit {
                max: 5,
                window_seconds: 600,
            }),
            per_client_ip: Some(Limit {
                max: 120,
                window_seconds: 60,
            }),
            per_country_default: None,
            per_country: Default::default(),
            failed_checks: Some(Limit {
                max: 20,
                window_seconds: 3600,
            }),
            pumping: Some(PumpingPolicy::default()),
        }
    }
}

/// A Twilio Programmable Rate Limit of a service: starts passing `RateLimits={unique_name:
/// value}` are counted per distinct value in each of its buckets.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProgrammableRateLimit {
    /// Its id (the `RK` SID).
    pub id: uuid::Uuid,
    /// The name callers pass in `RateLimits`, unique in the service.
    pub unique_name: String,
    /// Free text.
    pub description: Option<String>,
    /// Creation time, milliseconds.
    pub created_at: i64,
    /// Last change, milliseconds.
    pub updated_at: i64,
    /// Its buckets.
    #[serde(default)]
    pub buckets: Vec<RateBucket>,
}

/// At most `max` starts per `interval` seconds for one value of a rate limit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RateBucket {
    /// Its id (the `BL` SID).
    pub id: uuid::Uuid,
    /// Starts allowed in the interval.
    pub max: u32,
    /// The interval in seconds.
    pub interval: u32,
    /// Creation time, milliseconds.
    pub created_at: i64,
    /// Last change, milliseconds.
    pub updated_at: i64,
}

/// Buckets one rate limit may have (Twilio answers 60210 beyond its own maximum).
pub const MAX_BUCKETS_PER_RATE_LIMIT: usize = 10;

/// Which limit refused a start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitScope {
    /// Too many starts to this destination.
    Destination,
    /// Too many starts from this client address.
    ClientIp,
    /// Too many starts to this destination country.
    Country,
    /// A service's programmable rate limit (Twilio `RateLimits`), by unique name.
    Programmable,
}

/// Why a destination may not receive codes from a service at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Blocked {
    /// Its country is not allowed (or is blocked) by the service's geo permissions.
    Country,
    /// The number or its prefix is on the service's block list.
    BlockList,
    /// A premium-rate or shared-cost number (the service does not allow them).
    CostlyNumber,
    /// A landline, and the service skips SMS to landlines.
    Landline,
}

/// What a rate-limited action learned from its counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateCount {
    /// Whether the event was counted (it was under the limit).
    pub allowed: bool,
    /// Events in the window now (including this one when allowed).
    pub count: u32,
    /// When the oldest event in the window leaves it (a slot frees up); `None` when the
    /// window is empty.
    pub frees_at: Option<Timestamp>,
}

/// A destination prefix the SMS-pumping defence stopped sending to.
#[derive(Debug, Clone, PartialEq)]
pub struct Quarantine {
    /// `+` and digits, e.g. `+44740`.
    pub prefix: String,
    /// The service whose starts it stops; `None`: every service (server-wide, only ever set
    /// by the operator, so one tenant's traffic never blocks another's).
    pub service: Option<ServiceId>,
    /// Why (volume and approval rate when it was decided).
    pub reason: String,
    /// When it lifts by itself.
    pub until: Timestamp,
    /// When it was decided.
    pub created_at: Timestamp,
}

/// A counter a start must pass: fewer than `max` events under `key` in the last `window_ms`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LimitHit {
    /// The counter's key (scope and subject, e.g. `dest:{service}:{number}`).
    pub key: String,
    /// The sliding window.
    pub window_ms: i64,
    /// Events allowed in the window (`u32::MAX`: counted, never refused).
    pub max: u32,
}

/// A cost to add to a capped spend (the daily budget).
#[derive(Debug, Clone, PartialEq)]
pub struct Spend {
    /// The spend's key (service and day).
    pub key: String,
    /// This start's cost.
    pub amount: f64,
    /// The cap the total may not pass.
    pub cap: f64,
}

/// A number an account exempts from fraud checks (Twilio's SafeList entry).
#[derive(Debug, Clone, PartialEq)]
pub struct SafeNumber {
    /// Its id (the `GN` SID).
    pub id: uuid::Uuid,
    /// The E.164 number.
    pub phone: String,
    /// When it was added.
    pub created_at: Timestamp,
}

/// The counter of wrong codes for one destination of one service, keyed by the destination's
/// blind index so the counter table holds no number.
pub fn failure_key(service: ServiceId, to: &Recipient, vault: &crate::vault::Vault) -> String {
    format!("fail:{service}:{}", vault.blind(to.as_str()).to_hex())
}

/// The network a start came from as the pumping defence counts it: an IPv6 address's /64,
/// which one subscriber holds (`2a0e:1:2:3::/64`). `None` for IPv4, where many people may
/// share one address behind carrier-grade NAT (the client-address limit covers it), and for
/// an address it cannot read.
pub fn source_network(client_ip: &str) -> Option<String> {
    match client_ip.parse::<std::net::IpAddr>().ok()? {
        std::net::IpAddr::V6(v6) if v6.to_ipv4_mapped().is_none() => {
            let network = u128::from(v6) & !(u128::from(u64::MAX));
            Some(format!("{}/64", std::net::Ipv6Addr::from(network)))
        }
        _ => None,
    }
}

/// The pumping defence's counters of a source network for one service: `seen` per
/// destination prefix it started to, `prefixes` one event per prefix it reached first.
pub fn source_key(kind: &str, service: ServiceId, network: &str, prefix: Option<&str>) -> String {
    match prefix {
        Some(prefix) => format!("pump:src:{kind}:{service}:{network}:{prefix}"),
        None => format!("pump:src:{kind}:{service}:{network}"),
    }
}

/// The pumping defence's counter of `kind` ("sent" or "ok") for a destination prefix of one
/// service: one tenant's traffic never counts towards another's quarantine.
pub fn pumping_key(kind: &str, service: ServiceId, prefix: &str) -> String {
    format!("pump:{kind}:{service}:{prefix}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_are_ipv6_networks_of_64_bits() {
        assert_eq!(
            source_network("2a0e:1234:5678:9abc:de:f0:1:2").as_deref(),
            Some("2a0e:1234:5678:9abc::/64")
        );
        assert_eq!(
            source_network("2a0e:1234:5678:9abc::99"),
            source_network("2a0e:1234:5678:9abc:ffff::1")
        );
        assert_eq!(source_network("203.0.113.7"), None, "IPv4 may be shared");
        assert_eq!(source_network("::ffff:203.0.113.7"), None);
        assert_eq!(source_network("not an address"), None);
    }

    #[test]
    fn prefixes_are_country_code_plus_national_digits() {
        let phone = |n: &str| crate::E164Phone::parse(n, None).unwrap().0;
        assert_eq!(pumping_prefix(&phone("+447400123456"), 3), "+44740");
        assert_eq!(pumping_prefix(&phone("+14155552671"), 3), "+1415");
        assert_eq!(pumping_prefix(&phone("+33612345678"), 2), "+3361");
        assert_eq!(pumping_prefix(&phone("+380501234567"), 3), "+380501");
    }
}
