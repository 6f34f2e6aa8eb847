//! The verification use cases every dialect calls: start, read, check, cancel, and the
//! re-issue of a code whose delivery was interrupted by a restart.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use uuid::Uuid;

use crate::abuse::{LimitHit, LimitScope, Spend, failure_key, pumping_key};
use crate::clock::{Clock, Timestamp};
use crate::code::{CodeHasher, CodeSeed, OtpCode, PinLength, PinType};
use crate::delivery::{DeliveryAttempt, DeliveryUpdate};
use crate::ids::{DeliveryId, ServiceId, VerificationId};
use crate::phone::CountryIso;
use crate::recipient::Recipient;
use crate::settings::{DO_NOT_SHARE_WARNING, MaxAttempts, SenderId, Template, Ttl};
use crate::sms::segment_count;
use crate::store::{
    CheckResult, DeliveryStore, EventStore, LimitStore, ResendOutcome, StartDecision, StartPlan,
    StoreError, TenantStore, VerificationStore,
};
use crate::tenants::ServiceRecord;
use crate::verification::{
    Candidate, Channel, CheckCounting, CheckOutcome, StatusChange, Verification, VerificationStatus,
};

/// A message ready for a provider. It carries the code in clear, so it lives only in memory
/// and its `Debug` hides the body.
#[derive(Clone)]
pub struct DeliveryJob {
    /// The attempt being delivered.
    pub delivery_id: DeliveryId,
    /// The verification it belongs to.
    pub verification_id: VerificationId,
    /// Channel.
    pub channel: Channel,
    /// Recipient.
    pub to: Recipient,
    /// Sender id.
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

/// The default observer: nothing.
struct Unobserved;

impl Observer for Unobserved {
    fn verification(&self, _: &str, _: &Verification) {}
    fn refused(&self, _: &str) {}
}

/// The metric label of a refusal, `None` when the error is not a protection.
fn refusal_reason(error: &VerifyError) -> Option<&'static str> {
    use crate::abuse::{Blocked, LimitScope};
    Some(match error {
        VerifyError::RateLimited { scope, .. } => match scope {
            LimitScope::Destination => "destination",
            LimitScope::ClientIp => "client_ip",
            LimitScope::Country => "country",
            LimitScope::Programmable => "programmable",
        },
        VerifyError::LockedOut { .. } => "lockout",
        VerifyError::Cooldown { .. } => "cooldown",
        VerifyError::TooManySends => "max_sends",
        VerifyError::BudgetExceeded { .. } => "budget",
        VerifyError::Blocked(blocked) => match blocked {
            Blocked::Country => "blocked_country",
            Blocked::BlockList => "block_list",
            Blocked::CostlyNumber => "costly_number",
            Blocked::Landline => "landline",
            Blocked::Pumping => "pumping",
        },
        _ => return None,
    })
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
pub enum VerifyError {
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
    #[error("rate limit reached ({scope:?}): at most {limit} per window")]
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

/// The verification engine: code generation, hashing, rendering and the store, wired once.
pub struct Verifier<S, C> {
    store: S,
    clock: C,
    hasher: CodeHasher,
    dispatch: Arc<dyn Dispatch>,
    prices: PriceTable,
    abuse: crate::abuse::AbusePolicy,
    observer: Arc<dyn Observer>,
}

/// The spend counter of a service's UTC day.
fn budget_key(service: ServiceId, now: Timestamp) -> String {
    format!("budget:{service}:{}", now.0.div_euclid(86_400_000))
}

/// The refusal of a start past the service's daily budget.
fn over_budget(service: &ServiceRecord) -> VerifyError {
    let budget = service.settings.daily_budget.unwrap_or(0.0);
    tracing::warn!(service = %service.id, budget, "daily budget reached");
    VerifyError::BudgetExceeded { budget }
}

/// Refuses a send before `allowed_at` (the resend cooldown).
fn cooldown_passed(allowed_at: Timestamp, now: Timestamp) -> Result<(), VerifyError> {
    if now < allowed_at {
        let retry_after_seconds = ((allowed_at.0 - now.0) as u64).div_ceil(1000) as u32;
        return Err(VerifyError::Cooldown {
            retry_after_seconds,
        });
    }
    Ok(())
}

/// Whole seconds from `now` until `at` (at least 1).
fn seconds_until(at: Option<Timestamp>, now: Timestamp) -> u32 {
    at.map_or(1, |at| {
        ((at.0 - now.0).max(0) as u64).div_ceil(1000).max(1) as u32
    })
}

/// The service's route for `channel` to `country`: `sms:GB` before `sms`.
fn service_route(
    service: &ServiceRecord,
    channel: Channel,
    country: Option<CountryIso>,
) -> Option<Vec<String>> {
    let routes = &service.settings.provider_routes;
    country
        .and_then(|c| routes.get(&format!("{}:{}", channel.as_str(), c.as_str())))
        .or_else(|| routes.get(channel.as_str()))
        .filter(|names| !names.is_empty())
        .cloned()
}

fn new_delivery(id: VerificationId, channel: Channel, now: Timestamp) -> DeliveryAttempt {
    DeliveryAttempt::queued(id, channel, now)
}

/// The engine needs every port but the callback outbox (which only the callback worker
/// drains): an in-memory fake of these five is enough to unit-test it.
impl<S, C> Verifier<S, C>
where
    S: VerificationStore + DeliveryStore + TenantStore + LimitStore + EventStore + Clone,
    C: Clock + Clone,
{
    /// Wires the engine.
    pub fn new(
        store: S,
        clock: C,
        hasher: CodeHasher,
        dispatch: Arc<dyn Dispatch>,
        prices: PriceTable,
    ) -> Self {
        Verifier {
            store,
            clock,
            hasher,
            dispatch,
            prices,
            abuse: crate::abuse::AbusePolicy::default(),
            observer: Arc::new(Unobserved),
        }
    }

    /// The engine reporting to `observer` (metrics).
    pub fn with_observer(mut self, observer: Arc<dyn Observer>) -> Self {
        self.observer = observer;
        self
    }

    /// The engine with these protections instead of the defaults.
    pub fn with_abuse_policy(mut self, abuse: crate::abuse::AbusePolicy) -> Self {
        self.abuse = abuse;
        self
    }

    /// Refuses destinations the service may not reach (geo permissions, block list, costly
    /// numbers, landlines when SMS skips them).
    fn check_destination(
        &self,
        settings: &crate::settings::OtpSettings,
        phone: &crate::E164Phone,
        ranges: &crate::phone::NumberRanges,
        country: Option<CountryIso>,
        channel: Channel,
    ) -> Result<(), VerifyError> {
        use crate::abuse::Blocked;
        let number = phone.as_str();
        if let Some(country) = country {
            let iso = country.as_str();
            let allowed = settings.allowed_countries.is_empty()
                || settings
                    .allowed_countries
                    .iter()
                    .any(|c| c.eq_ignore_ascii_case(iso));
            if !allowed
                || settings
                    .blocked_countries
                    .iter()
                    .any(|c| c.eq_ignore_ascii_case(iso))
            {
                return Err(VerifyError::Blocked(Blocked::Country));
            }
        }
        if settings
            .blocked_prefixes
            .iter()
            .any(|prefix| number.starts_with(prefix.as_str()))
        {
            return Err(VerifyError::Blocked(Blocked::BlockList));
        }
        let line = ranges.line_type;
        if line.is_costly() && !settings.allow_costly_numbers {
            return Err(VerifyError::Blocked(Blocked::CostlyNumber));
        }
        if channel == Channel::Sms
            && settings.options.skip_sms_to_landlines
            && line == crate::phone::LineType::FixedLine
        {
            return Err(VerifyError::Blocked(Blocked::Landline));
        }
        Ok(())
    }

    /// The SMS-pumping defence for a start of `service` to `to`: refuses it when its prefix is
    /// quarantined for this service or server-wide, in block mode (true means "shadow-block
    /// it": answer, never send), and quarantines the prefix for this service when the
    /// service's volume to it is high and its approval rate low. Otherwise the start is to
    /// be counted under the returned key (with the other limits, once it goes through).
    async fn check_pumping(
        &self,
        service: ServiceId,
        phone: &crate::E164Phone,
        ranges: &crate::phone::NumberRanges,
        now: Timestamp,
    ) -> Result<(bool, Option<LimitHit>), VerifyError> {
        use crate::abuse::{Blocked, QuarantineMode};
        let Some(policy) = self.abuse.pumping else {
            return Ok((false, None));
        };
        let prefix = crate::abuse::prefix_of(phone, ranges, policy.prefix_digits);
        let refuse = |mode| match mode {
            QuarantineMode::Block => Err(VerifyError::Blocked(Blocked::Pumping)),
            QuarantineMode::Shadow => Ok((true, None)),
        };
        if self
            .store
            .active_quarantine(&prefix, service, now)
            .await?
            .is_some()
        {
            return refuse(policy.mode);
        }
        let window = i64::from(policy.window_seconds) * 1000;
        let sent = self
            .store
            .rate_count(&pumping_key("sent", service, &prefix), window, now)
            .await?
            .count;
        if sent >= policy.min_volume {
            let approved = self
                .store
                .rate_count(&pumping_key("ok", service, &prefix), window, now)
                .await?
                .count;
            let rate = f64::from(approved) / f64::from(sent);
            if rate < policy.min_approval_rate {
                let quarantine = crate::store::Quarantine {
                    prefix: prefix.clone(),
                    service: Some(service),
                    reason: format!(
                        "{sent} starts, {approved} approved ({:.0} %) in {} s",
                        rate * 100.0,
                        policy.window_seconds
                    ),
                    until: now.plus_seconds(i64::from(policy.quarantine_seconds)),
                    created_at: now,
                };
                if self.store.quarantine(&quarantine).await? {
                    tracing::warn!(prefix = %prefix, service = %service, reason = %quarantine.reason, until = quarantine.until.unix_seconds(), "prefix quarantined");
                }
                return refuse(policy.mode);
            }
        }
        Ok((
            false,
            Some(LimitHit {
                key: pumping_key("sent", service, &prefix),
                window_ms: window,
                max: u32::MAX,
            }),
        ))
    }

    /// The counters a start to `to` must pass, in the order they are checked: client
    /// address, destination, country, then the service's programmable rate limits (each
    /// bucket of each named limit, under the value given).
    fn limit_hits(
        &self,
        service: &ServiceRecord,
        to: &Recipient,
        country: Option<CountryIso>,
        client_ip: Option<&str>,
        values: &[(String, String)],
        fraud_checks: bool,
    ) -> Vec<(LimitScope, LimitHit)> {
        let hit = |key: String, limit: crate::abuse::Limit| LimitHit {
            key,
            window_ms: limit.window_ms(),
            max: limit.max,
        };
        let mut hits = Vec::new();
        if fraud_checks {
            if let (Some(ip), Some(limit)) = (client_ip, self.abuse.per_client_ip) {
                hits.push((LimitScope::ClientIp, hit(format!("ip:{ip}"), limit)));
            }
            if let Some(limit) = self.abuse.per_destination {
                let key = format!("dest:{}:{}", service.id, to.as_str());
                hits.push((LimitScope::Destination, hit(key, limit)));
            }
            let country_limit = country.and_then(|c| {
                self.abuse
                    .per_country
                    .get(c.as_str())
                    .copied()
                    .or(self.abuse.per_country_default)
                    .map(|limit| (c, limit))
            });
            if let Some((c, limit)) = country_limit {
                let key = format!("country:{}:{}", service.id, c.as_str());
                hits.push((LimitScope::Country, hit(key, limit)));
            }
        }
        for (name, value) in values {
            let Some(limit) = service
                .settings
                .rate_limits
                .iter()
                .find(|l| &l.unique_name == name)
            else {
                continue;
            };
            for bucket in &limit.buckets {
                hits.push((
                    LimitScope::Programmable,
                    LimitHit {
                        key: format!("rl:{}:{}:{}:{value}", service.id, limit.id, bucket.id),
                        window_ms: i64::from(bucket.interval) * 1000,
                        max: bucket.max,
                    },
                ));
            }
        }
        hits
    }

    /// The wrong-code lockout's counter for `to` (read before a start, never counted by it).
    fn lockout_hit(&self, service: ServiceId, to: &Recipient) -> Option<LimitHit> {
        self.abuse.failed_checks.map(|limit| LimitHit {
            key: failure_key(service, to),
            window_ms: limit.window_ms(),
            max: limit.max,
        })
    }

    /// Applies the lockout and counts the limits one store call at a time (a resend; a new
    /// verification does all of it in its atomic start step).
    async fn count_limits(
        &self,
        lockout: Option<&LimitHit>,
        hits: &[(LimitScope, LimitHit)],
        now: Timestamp,
    ) -> Result<(), VerifyError> {
        if let Some(lockout) = lockout {
            let failures = self
                .store
                .rate_count(&lockout.key, lockout.window_ms, now)
                .await?;
            if failures.count >= lockout.max {
                return Err(VerifyError::LockedOut {
                    retry_after_seconds: seconds_until(failures.frees_at, now),
                });
            }
        }
        for (scope, hit) in hits {
            let counted = self
                .store
                .rate_hit(&hit.key, hit.window_ms, hit.max, now)
                .await?;
            if !counted.allowed {
                return Err(VerifyError::RateLimited {
                    scope: *scope,
                    limit: hit.max,
                    retry_after_seconds: seconds_until(counted.frees_at, now),
                });
            }
        }
        Ok(())
    }

    /// The store behind the engine.
    pub fn store(&self) -> &S {
        &self.store
    }

    /// The clock behind the engine.
    pub fn clock(&self) -> &C {
        &self.clock
    }

    /// The code of a verification, when it can be re-derived (not a custom code).
    fn code_of(&self, verification: &Verification) -> Option<OtpCode> {
        verification.code_seed.map(|seed| {
            self.hasher.derive(
                verification.id,
                &seed,
                verification.pin_type,
                verification.pin_length,
            )
        })
    }

    fn job(
        &self,
        service: &ServiceRecord,
        verification: &Verification,
        delivery: &DeliveryAttempt,
        code: &OtpCode,
    ) -> DeliveryJob {
        let chain = &service.settings.fallback_channels;
        let fallback = match chain.iter().position(|c| *c == delivery.channel) {
            Some(index) => chain[index + 1..].to_vec(),
            None if delivery.channel == verification.channel => chain.clone(),
            None => Vec::new(),
        }
        .into_iter()
        .filter(|c| *c != delivery.channel && c.reaches(&verification.to))
        .collect();
        DeliveryJob {
            delivery_id: delivery.id,
            verification_id: verification.id,
            channel: delivery.channel,
            to: verification.to.clone(),
            from: verification.from.clone(),
            body: verification.template.render(code),
            code: code.clone(),
            validity_seconds: u32::try_from(
                (verification.expires_at.0 - self.clock.now().0).max(0) / 1000,
            )
            .unwrap_or(0),
            country: verification.country,
            locale: verification.locale.clone().unwrap_or_else(|| "en".into()),
            service_name: service.name.clone(),
            expires_at: verification.expires_at,
            fallback,
            providers: service_route(service, delivery.channel, verification.country),
        }
    }

    /// Starts a verification: derives a code from a fresh CSPRNG seed (or takes the caller's
    /// custom code), stores its hash with the first delivery attempt in one transaction, then
    /// hands the message to the delivery worker. With `resend_pending`, a pending
    /// verification to the same recipient is sent again instead (same code).
    pub async fn start(
        &self,
        service: &ServiceRecord,
        request: StartRequest,
    ) -> Result<Started, VerifyError> {
        let request_to = request.to.as_ref().map(|(to, _)| to.as_str().to_string());
        let request_channel = request.channel.unwrap_or(Channel::Sms);
        // Boxed: the start's future is many kilobytes (store, limits, the first delivery try),
        // and every caller's future would carry it and be copied whole at each move.
        let started = Box::pin(self.start_inner(service, request)).await;
        match &started {
            Ok(started) => self
                .observer
                .verification("started", started.verification()),
            Err(error) => {
                if let Some(reason) = refusal_reason(error) {
                    self.observer.refused(reason);
                    let event = crate::events::Event {
                        id: Uuid::now_v7(),
                        service_id: service.id,
                        verification_id: None,
                        kind: "verification.blocked".into(),
                        data: serde_json::json!({
                            "reason": reason,
                            "to": request_to.as_deref(),
                            "channel": request_channel.as_str(),
                        }),
                        created_at: self.clock.now(),
                    };
                    if let Err(store) = self.store.record_event(&event).await {
                        tracing::warn!(error = %store, "could not record a blocked start");
                    }
                }
            }
        }
        started
    }

    async fn start_inner(
        &self,
        service: &ServiceRecord,
        request: StartRequest,
    ) -> Result<Started, VerifyError> {
        let settings = &service.settings;
        let (to, country) = request.to.clone().ok_or(VerifyError::MissingRecipient)?;
        let channel = request.channel.unwrap_or(Channel::Sms);
        if !channel.reaches(&to) {
            return Err(VerifyError::ChannelMismatch);
        }
        let route = service_route(service, channel, country);
        if !self.dispatch.serves(
            channel,
            country.as_ref().map(|c| c.as_str()),
            route.as_deref(),
        ) {
            return Err(VerifyError::ChannelUnavailable(channel));
        }
        if request.custom_code.is_some() && !settings.options.custom_code_enabled {
            return Err(VerifyError::CustomCodeNotAllowed);
        }
        if (request.amount.is_some() || request.payee.is_some()) && !settings.options.psd2_enabled {
            return Err(VerifyError::Psd2NotEnabled);
        }
        // Safe-listed numbers (the service's list or the account's SafeList) skip the fraud
        // checks: geo and number rules, rate limits, lockout and the pumping defence.
        let safe = match &to {
            Recipient::Phone(phone) => {
                settings.safe_list.iter().any(|n| n == phone.as_str())
                    || self
                        .store
                        .safe_number(service.account_id, phone.as_str())
                        .await?
                        .is_some()
            }
            Recipient::Email(_) => false,
        };
        // The number ranges, parsed once for the destination rules and the pumping prefix.
        let unsafe_phone = match &to {
            Recipient::Phone(phone) if !safe => Some((phone, phone.ranges())),
            _ => None,
        };
        if let Some((phone, ranges)) = &unsafe_phone {
            self.check_destination(settings, phone, ranges, country, channel)?;
        }
        let now = self.clock.now();
        let cooldown = settings.resend_cooldown_seconds;
        let mut hits = self.limit_hits(
            service,
            &to,
            country,
            request.client_ip.as_deref(),
            &request.rate_limit_values,
            !safe,
        );
        let lockout = self.lockout_hit(service.id, &to).filter(|_| !safe);
        let latest = if request.resend_pending {
            self.store.latest_for(service.id, to.as_str(), now).await?
        } else {
            None
        };
        if let Some(pending) = latest.filter(|v| v.status == VerificationStatus::Pending) {
            // A resend: the same checks as a new start, one store call at a time.
            if cooldown > 0 {
                let last_send = self
                    .store
                    .deliveries(pending.id)
                    .await?
                    .iter()
                    .map(|d| d.created_at)
                    .max()
                    .unwrap_or(pending.created_at);
                cooldown_passed(last_send.plus_seconds(i64::from(cooldown)), now)?;
            }
            self.count_limits(lockout.as_ref(), &hits, now).await?;
            let shadow = match &unsafe_phone {
                Some((phone, ranges)) => {
                    let (shadow, hit) = self.check_pumping(service.id, phone, ranges, now).await?;
                    if let Some(hit) = hit {
                        self.store
                            .rate_hit(&hit.key, hit.window_ms, hit.max, now)
                            .await?;
                    }
                    shadow
                }
                None => false,
            };
            let new_hash = request
                .custom_code
                .as_ref()
                .map(|code| self.hasher.hash(pending.id, code));
            let code = match (&request.custom_code, self.code_of(&pending)) {
                (Some(custom), _) => custom.clone(),
                (None, Some(derived)) => derived,
                (None, None) => return Err(VerifyError::CustomCodeRequired),
            };
            let delivery = new_delivery(pending.id, channel, now);
            self.charge(service, pending.cost, now).await?;
            match self
                .store
                .resend(pending.id, &delivery, new_hash, MAX_SENDS, now)
                .await?
            {
                ResendOutcome::Queued(verification) => {
                    let attempt = self
                        .first_try(service, &verification, delivery, &code, shadow, now)
                        .await?;
                    return Ok(Started::Resent(*verification, attempt));
                }
                ResendOutcome::TooManySends => return Err(VerifyError::TooManySends),
                // Ended between the lookup and the resend: start afresh below (its
                // counters were counted already).
                ResendOutcome::NotPending => hits.clear(),
            }
        }
        let shadow = match &unsafe_phone {
            Some((phone, ranges)) => {
                let (shadow, hit) = self.check_pumping(service.id, phone, ranges, now).await?;
                // The pumping count has no maximum, so its scope is never reported.
                hits.extend(hit.map(|hit| (LimitScope::Programmable, hit)));
                shadow
            }
            None => false,
        };
        let pin_type = request.pin_type.unwrap_or(settings.pin_type);
        let pin_length = request.pin_length.unwrap_or(settings.pin_length);
        let ttl = request.ttl.unwrap_or(settings.ttl);
        let id = VerificationId::generate();
        let (code, code_seed) = match request.custom_code {
            Some(custom) => (custom, None),
            None => {
                let seed = CodeSeed::generate();
                (
                    self.hasher.derive(id, &seed, pin_type, pin_length),
                    Some(seed),
                )
            }
        };
        let name = request.friendly_name.as_deref().unwrap_or(&service.name);
        let by_locale = request.locale.as_deref().and_then(|locale| {
            settings.locale_templates.get(locale).cloned().or_else(|| {
                crate::messages::builtin_template(locale).and_then(|t| Template::new(t).ok())
            })
        });
        let mut template = request
            .template
            .or(by_locale)
            .unwrap_or_else(|| settings.template_for(&to).clone())
            .with_name(name)
            .with_ttl(ttl);
        if settings.options.do_not_share_warning_enabled && channel != Channel::Call {
            template = template.with_suffix(DO_NOT_SHARE_WARNING);
        }
        if let Some(hash) = &request.app_hash {
            template = template
                .with_prefix("<#> ")
                .with_suffix(&format!("\n{hash}"));
        }
        if let (Some(origin), Recipient::Phone(_)) = (&settings.web_origin, &to) {
            template = template.with_suffix(&crate::messages::origin_bound_suffix(origin));
        }
        let parts = segment_count(&template.render(&code));
        let max_attempts = if settings.options.do_force_check_once {
            MaxAttempts::new(1).expect("1 is within bounds")
        } else {
            request.max_attempts.unwrap_or(settings.max_attempts)
        };
        let verification = Verification {
            id,
            service_id: service.id,
            to,
            country,
            channel,
            status: VerificationStatus::Pending,
            attempts: 0,
            max_attempts,
            ttl,
            code_hash: self.hasher.hash(id, &code),
            code_seed,
            pin_type,
            pin_length,
            template,
            from: request.from.unwrap_or_else(|| {
                country
                    .and_then(|c| settings.country_senders.get(c.as_str()))
                    .unwrap_or(&settings.from)
                    .clone()
            }),
            track_id: request.track_id,
            callback_url: request
                .callback_url
                .or_else(|| settings.callback_url.clone()),
            amount: request.amount,
            payee: request.payee,
            locale: request.locale.or_else(|| settings.locale.clone()),
            cost: self.prices.cost(country, parts),
            parts,
            created_at: now,
            expires_at: now.plus_seconds(ttl.get() as i64),
            updated_at: now,
        };
        let delivery = new_delivery(id, channel, now);
        let spend = service.settings.daily_budget.map(|cap| Spend {
            key: budget_key(service.id, now),
            amount: verification.cost,
            cap,
        });
        let plan = StartPlan {
            verification,
            delivery,
            cooldown_seconds: cooldown,
            lockout,
            limits: hits.iter().map(|(_, hit)| hit.clone()).collect(),
            spend,
        };
        match self.store.start_verification(&plan).await? {
            StartDecision::Created => {}
            StartDecision::Cooldown { allowed_at } => cooldown_passed(allowed_at, now)?,
            StartDecision::LockedOut { frees_at } => {
                return Err(VerifyError::LockedOut {
                    retry_after_seconds: seconds_until(frees_at, now),
                });
            }
            StartDecision::Limited { index, frees_at } => {
                let (scope, hit) = &hits[index];
                return Err(VerifyError::RateLimited {
                    scope: *scope,
                    limit: hit.max,
                    retry_after_seconds: seconds_until(frees_at, now),
                });
            }
            StartDecision::OverBudget => return Err(over_budget(service)),
        }
        let StartPlan {
            verification,
            delivery,
            ..
        } = plan;
        let attempt = self
            .first_try(service, &verification, delivery, &code, shadow, now)
            .await?;
        Ok(Started::Created(verification, attempt))
    }

    /// Hands a queued attempt to its first try (or records it shadow-blocked) and returns it
    /// as that try left it; still `queued` when the try outlasts the start's wait.
    async fn first_try(
        &self,
        service: &ServiceRecord,
        verification: &Verification,
        delivery: DeliveryAttempt,
        code: &OtpCode,
        shadow: bool,
        now: Timestamp,
    ) -> Result<DeliveryAttempt, VerifyError> {
        let first_try = if shadow {
            Some((self.shadow_block(&delivery, now).await?, now))
        } else {
            self.dispatch
                .dispatch(self.job(service, verification, &delivery, code))
                .await
        };
        Ok(match first_try {
            Some((update, at)) => delivery.updated(&update, at),
            None => delivery,
        })
    }

    /// Adds a send's cost to the service's spend of the day, refusing it past the budget.
    async fn charge(
        &self,
        service: &ServiceRecord,
        cost: f64,
        now: Timestamp,
    ) -> Result<(), VerifyError> {
        let Some(budget) = service.settings.daily_budget else {
            return Ok(());
        };
        let key = budget_key(service.id, now);
        if self.store.add_spend(&key, cost, budget).await?.is_none() {
            return Err(over_budget(service));
        }
        Ok(())
    }

    /// Records a shadow-blocked send: answered as if sent, never handed to a provider.
    async fn shadow_block(
        &self,
        delivery: &DeliveryAttempt,
        now: Timestamp,
    ) -> Result<crate::store::DeliveryUpdate, StoreError> {
        let update = crate::store::DeliveryUpdate {
            provider: Some("shadow".into()),
            error: Some("not sent: the destination prefix is quarantined (shadow mode)".into()),
            error_code: Some("shadow_blocked".into()),
            ..crate::store::DeliveryUpdate::status(crate::DeliveryStatus::Failed)
        };
        self.store
            .update_delivery(delivery.id, &update, now)
            .await?;
        Ok(update)
    }

    /// Reads a verification on behalf of `service`, with its status as of now.
    pub async fn get(&self, service: ServiceId, id: VerificationId) -> Result<Lookup, StoreError> {
        let Some(mut verification) = self.store.verification(id).await? else {
            return Ok(Lookup::NotFound);
        };
        if verification.service_id != service {
            return Ok(Lookup::WrongService);
        }
        verification.status = verification.status_at(self.clock.now());
        Ok(Lookup::Found(Box::new(verification)))
    }

    /// The newest unexpired verification of `service` to `to`, if any (any status).
    pub async fn latest_for(
        &self,
        service: ServiceId,
        to: &str,
    ) -> Result<Option<Verification>, StoreError> {
        self.store.latest_for(service, to, self.clock.now()).await
    }

    /// Checks a code the user typed (with PSD2 details where the dialect has them). One
    /// atomic store step counts the attempt and decides.
    pub async fn check(
        &self,
        service: ServiceId,
        id: VerificationId,
        typed: &str,
        amount: Option<String>,
        payee: Option<String>,
    ) -> Result<CheckResult, StoreError> {
        let now = self.clock.now();
        // The counters are keyed by the destination, which the store's own step reads: it
        // applies these rules to the verification it loads (of this service; a check of
        // another service's verification or of none counts nothing).
        let counting = CheckCounting {
            failures_window_ms: self.abuse.failed_checks.map(|limit| limit.window_ms()),
            approvals: self.abuse.pumping.map(|policy| {
                (
                    i64::from(policy.window_seconds) * 1000,
                    policy.prefix_digits,
                )
            }),
        };
        let candidate = Candidate {
            code_hash: self.hasher.hash(id, &OtpCode::from_user_input(typed)),
            amount,
            payee,
            counting,
        };
        let result = self.store.check_code(id, service, candidate, now).await?;
        if let Some(verification) = &result.verification {
            let event = match result.outcome {
                CheckOutcome::Approved => Some("approved"),
                CheckOutcome::WrongCode => Some("wrong_code"),
                CheckOutcome::MaxAttemptsNow => Some("max_attempts"),
                CheckOutcome::ExpiredNow => Some("expired"),
                _ => None,
            };
            if let Some(event) = event {
                self.observer.verification(event, verification);
            }
        }
        Ok(result)
    }

    /// Records as expired the pending verifications whose code has expired (with their events
    /// and callbacks); the sweeper calls it.
    pub async fn expire_due(&self) -> Result<usize, StoreError> {
        let expired = self.store.expire_due(self.clock.now(), 500).await?;
        for verification in &expired {
            self.observer.verification("expired", verification);
        }
        Ok(expired.len())
    }

    /// Cancels (or approves out of band) a pending verification.
    pub async fn set_status(
        &self,
        service: ServiceId,
        id: VerificationId,
        target: VerificationStatus,
    ) -> Result<StatusChange, StoreError> {
        self.store
            .set_status(id, service, target, self.clock.now())
            .await
    }

    /// For a delivery that was queued but never sent (the process stopped first): the job to
    /// send it now, with the same code re-derived from its seed. `None` when the verification
    /// has ended, or when its code was the caller's own and so cannot be recovered.
    pub async fn resume(
        &self,
        delivery: &DeliveryAttempt,
        verification: &Verification,
    ) -> Result<Option<DeliveryJob>, StoreError> {
        if verification.status_at(self.clock.now()) != VerificationStatus::Pending {
            return Ok(None);
        }
        let Some(code) = self.code_of(verification) else {
            return Ok(None);
        };
        let Some(service) = self.store.service(verification.service_id).await? else {
            return Ok(None);
        };
        Ok(Some(self.job(&service, verification, delivery, &code)))
    }

    /// Queues the next channel of the service's fallback chain (after a delivery that
    /// failed, was reported undelivered, or got no receipt in time), with the same
    /// code: the one in memory, else re-derived from the seed. `None` when the verification
    /// has ended, no channel is left, the code cannot be recovered, or it already had the
    /// maximum number of sends.
    pub async fn fall_back(
        &self,
        verification: &Verification,
        remaining: &[Channel],
        code: Option<&OtpCode>,
    ) -> Result<Option<DeliveryJob>, StoreError> {
        let now = self.clock.now();
        let Some(&next) = remaining.first() else {
            return Ok(None);
        };
        if verification.status_at(now) != VerificationStatus::Pending {
            return Ok(None);
        }
        let Some(code) = code.cloned().or_else(|| self.code_of(verification)) else {
            return Ok(None);
        };
        let Some(service) = self.store.service(verification.service_id).await? else {
            return Ok(None);
        };
        let delivery = new_delivery(verification.id, next, now);
        match self
            .store
            .resend(verification.id, &delivery, None, MAX_SENDS, now)
            .await?
        {
            ResendOutcome::Queued(verification) => {
                let mut job = self.job(&service, &verification, &delivery, &code);
                job.fallback = remaining[1..].to_vec();
                Ok(Some(job))
            }
            ResendOutcome::TooManySends | ResendOutcome::NotPending => Ok(None),
        }
    }
}
