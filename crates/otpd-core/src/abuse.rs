//! Abuse resistance decided in the core: rate limits per destination, client IP and country,
//! the lockout after repeated wrong codes, geo permissions, block and safe lists, and refusing
//! costly (premium-rate) numbers. Counters live in the store, so limits are exact across
//! restarts and nodes. docs/security.md explains each protection and its defaults.

use serde::{Deserialize, Serialize};

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
    /// Starts from one client IP address, across services.
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
}

impl Default for AbusePolicy {
    fn default() -> Self {
        AbusePolicy {
            per_destination: Some(Limit {
                max: 5,
                window_seconds: 600,
            }),
            per_client_ip: Some(Limit {
                max: 60,
                window_seconds: 60,
            }),
            per_country_default: None,
            per_country: Default::default(),
            failed_checks: Some(Limit {
                max: 20,
                window_seconds: 3600,
            }),
        }
    }
}

/// Which limit refused a start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitScope {
    /// Too many starts to this destination.
    Destination,
    /// Too many starts from this client address.
    ClientIp,
    /// Too many starts to this destination country.
    Country,
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
