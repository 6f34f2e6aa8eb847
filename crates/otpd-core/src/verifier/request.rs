//! What a start takes and answers, and the ports the engine talks to: the delivery worker
//! ([`Dispatch`]) and metrics ([`Observer`]).

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;

use uuid::Uuid;

use crate::clock::Timestamp;
use crate::code::{OtpCode, PinLength, PinType};
use crate::delivery::{DeliveryAttempt, DeliveryUpdate};
use crate::ids::{DeliveryId, VerificationId};
use crate::phone::CountryIso;
use crate::recipient::Recipient;
use crate::settings::{MaxAttempts, SenderId, Template, Ttl};
use crate::store::StoreError;
use crate::verification::{Channel, Verification};

/// A message ready for a provider. It carries the code in clear, so it lives only in memory
/// and its `Debug` hides the body.
#[derive(Clone)]
pub struct DeliveryJob {
    /// The attempt being delivered.
    pub delivery_id: DeliveryId,
    /// The verification it belongs to.
    pub verification_id: VerificationId,
    /// The verification's service (the events a failed provider leaves are its).
    pub service_id: crate::ids::ServiceId,
    pub channel: Channel,
    pub to: Recipient,
    pub from: SenderId,
    /// The rendered message (contains the code).
    pub body: String,
    /// The code alone (voice reads it out; WhatsApp templates take it as a parameter).
    pub code: OtpCode,
    /// Seconds the code stays valid from now.
    pub validity_seconds: u32,
    /// The recipient's country, for routing.
    pub country: Option<CountryIso>,
    /// The language for voice, WhatsApp templates and email subjects.
    pub locale: String,
    /// The service's name (email subjects).
    pub service_name: String,
    /// When the code expires: retries stop then.
    pub expires_at: Timestamp,
    /// The channels still to try, in order, if this one fails.
    pub fallback: Vec<Channel>,
    /// The service's own providers for this channel and country, in order, when it has a
    /// route of its own (else the server's routes apply).
    pub providers: Option<Vec<String>>,
}

impl std::fmt::Debug for DeliveryJob {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeliveryJob")
            .field("delivery_id", &self.delivery_id)
            .field("verification_id", &self.verification_id)
            .field("to", &self.to)
            .field("body", &"***")
            .finish()
    }
}

/// Told about what the engine does, for metrics; must not block.
pub trait Observer: Send + Sync + 'static {
    /// A lifecycle event (`started`, `approved`, `wrong_code`, `max_attempts`, `expired`)
    /// of a verification.
    fn verification(&self, event: &str, verification: &Verification);
    /// A start refused by a protection, by reason.
    fn refused(&self, reason: &str);
}

/// Hands delivery jobs to whatever sends them (the delivery worker).
pub trait Dispatch: Send + Sync + 'static {
    /// Queues one job for sending. The future resolves once the first try has an outcome
    /// or a short deadline has passed (the start response can then say whether a provider
    /// took the message); the job goes on in the background either way. It yields what the
    /// first try recorded (the update and when), or `None` when it had no outcome in time.
    fn dispatch(&self, job: DeliveryJob) -> Pin<Box<dyn Future<Output = Option<FirstTry>> + Send>>;

    /// Whether some provider carries `channel` to `country` (through the service's own
    /// `route` when it has one): a start on a channel nothing carries is refused rather than
    /// answered and never delivered.
    fn serves(&self, _channel: Channel, _country: Option<&str>, _route: Option<&[String]>) -> bool {
        true
    }
}

/// What a delivery's first try recorded, and when (see [`DeliveryAttempt::updated`]).
pub type FirstTry = (DeliveryUpdate, Timestamp);

/// Price of one SMS part per destination country; countries not listed cost nothing.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PriceTable(pub HashMap<String, f64>);

impl PriceTable {
    /// The cost of `parts` segments to `country`.
    pub fn cost(&self, country: Option<CountryIso>, parts: u32) -> f64 {
        country
            .and_then(|c| self.0.get(c.as_str()))
            .map_or(0.0, |price| price * parts as f64)
    }
}

/// Sends of one verification allowed before further starts are refused (Twilio's 5).
pub const MAX_SENDS: u32 = 5;

/// A start request after the dialect has parsed and bounded every field. `None` means
/// "use the service's setting".
#[derive(Debug, Clone, Default)]
pub struct StartRequest {
    /// Recipient and, for phones, its country.
    pub to: Option<(Recipient, Option<CountryIso>)>,
    /// Channel; SMS when unset.
    pub channel: Option<Channel>,
    /// Sender id override.
    pub from: Option<SenderId>,
    /// Template override.
    pub template: Option<Template>,
    /// Lifetime override.
    pub ttl: Option<Ttl>,
    /// Attempts override.
    pub max_attempts: Option<MaxAttempts>,
    /// Alphabet override.
    pub pin_type: Option<PinType>,
    /// Length override.
    pub pin_length: Option<PinLength>,
    /// Caller's correlation id.
    pub track_id: Option<Uuid>,
    /// Callback URL override.
    pub callback_url: Option<String>,
    /// Name for the template's `{{name}}` instead of the service's.
    pub friendly_name: Option<String>,
    /// A caller-supplied code (only where the service allows it).
    pub custom_code: Option<OtpCode>,
    /// PSD2 amount a check must repeat.
    pub amount: Option<String>,
    /// PSD2 payee a check must repeat.
    pub payee: Option<String>,
    /// Android SMS Retriever hash: the message gets the `<#> ` prefix and the hash suffix.
    pub app_hash: Option<String>,
    /// Language of the message (`fr`, `pt-BR`): picks the service's template for it, else
    /// otpd's built-in text.
    pub locale: Option<String>,
    /// The client's IP address, for the per-IP limit.
    pub client_ip: Option<String>,
    /// Values for the service's programmable rate limits (Twilio `RateLimits`), by unique
    /// name; names the service has no rate limit for are ignored.
    pub rate_limit_values: Vec<(String, String)>,
    /// Twilio semantics: a pending verification to the same recipient is re-sent (same code,
    /// new delivery attempt) instead of starting a new one.
    pub resend_pending: bool,
}

/// Why a start was refused (client mistakes the dialect maps to its own error).
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The request named no recipient.
    #[error("no recipient")]
    MissingRecipient,
    /// The channel cannot reach this kind of recipient (email vs phone).
    #[error("the channel cannot reach this recipient")]
    ChannelMismatch,
    /// A custom code was given but the service does not allow them.
    #[error("custom codes are not enabled on this service")]
    CustomCodeNotAllowed,
    /// Resending a verification whose code was supplied by the caller needs that code again.
    #[error("a custom-code verification can only be re-sent with its code")]
    CustomCodeRequired,
    /// PSD2 details were given but the service does not enable PSD2.
    #[error("PSD2 is not enabled on this service")]
    Psd2NotEnabled,
    /// The verification already had the maximum number of sends.
    #[error("maximum sends reached")]
    TooManySends,
    /// A rate limit refused the start.
    #[error(
        "rate limit reached ({scope:?}): at most {limit} per window; the next start is allowed in {retry_after_seconds} s"
    )]
    RateLimited {
        /// Which limit.
        scope: crate::abuse::LimitScope,
        /// Its maximum.
        limit: u32,
        /// Seconds until a start may succeed.
        retry_after_seconds: u32,
    },
    /// Too many wrong codes went to this destination recently: no new code until the
    /// oldest leaves the window.
    #[error("too many wrong codes for this destination")]
    LockedOut {
        /// Seconds until the lockout lifts.
        retry_after_seconds: u32,
    },
    /// The service may not send to this destination.
    #[error("destination blocked: {0:?}")]
    Blocked(crate::abuse::Blocked),
    /// The SMS-pumping defence holds the destination's prefix or the start's network: the
    /// quarantine and the figures it was decided on (never the number).
    #[error("{0}")]
    Quarantined(String),
    /// The start would take the service past its daily budget.
    #[error("daily budget of {budget} reached")]
    BudgetExceeded {
        /// The service's daily budget.
        budget: f64,
    },
    /// The last send to this destination was less than the service's cooldown ago.
    #[error("a code was sent to this destination {retry_after_seconds} s too recently")]
    Cooldown {
        /// Seconds until a send is allowed.
        retry_after_seconds: u32,
    },
    /// No provider on this server carries the channel (to this destination).
    #[error("the {} channel is not available on this server", .0.as_str())]
    ChannelUnavailable(Channel),
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Reading a verification: found, absent, or owned by another service.
#[derive(Debug, Clone, PartialEq)]
pub enum Lookup {
    /// Visible to the caller.
    Found(Box<Verification>),
    /// No such id.
    NotFound,
    /// Another service's verification.
    WrongService,
}

/// How a start ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Started {
    /// A new verification, with its delivery attempt as the first try left it (so the
    /// answer needs no read back).
    Created(Verification, DeliveryAttempt),
    /// The pending verification to the same recipient, sent again, with the new attempt as
    /// its first try left it.
    Resent(Verification, DeliveryAttempt),
}

impl Started {
    /// The verification either way.
    pub fn verification(&self) -> &Verification {
        match self {
            Started::Created(v, _) | Started::Resent(v, _) => v,
        }
    }

    /// The delivery attempt this start queued, as its first try left it: what the request's
    /// log line reports about the send.
    pub fn attempt(&self) -> &DeliveryAttempt {
        match self {
            Started::Created(_, attempt) | Started::Resent(_, attempt) => attempt,
        }
    }

    /// Every delivery attempt of the verification, when the start knows them all (a new
    /// verification has exactly one); a resend's earlier attempts are in the store.
    pub fn known_attempts(&self) -> Option<Vec<DeliveryAttempt>> {
        match self {
            Started::Created(_, attempt) => Some(vec![attempt.clone()]),
            Started::Resent(..) => None,
        }
    }
}
