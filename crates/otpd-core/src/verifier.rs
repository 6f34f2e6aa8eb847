//! The verification use cases every dialect calls: start, read, check, cancel, and the
//! re-issue of a code whose delivery was interrupted by a restart.

use std::collections::HashMap;
use std::sync::Arc;

use uuid::Uuid;

use crate::clock::Clock;
use crate::code::{CodeHasher, OtpCode, PinLength, PinType};
use crate::ids::{DeliveryId, ServiceId, VerificationId};
use crate::phone::{CountryIso, E164Phone};
use crate::settings::{MaxAttempts, OtpSettings, SenderId, Template, Ttl};
use crate::sms::segment_count;
use crate::store::{CheckResult, DeliveryAttempt, Store, StoreError};
use crate::verification::{
    CancelOutcome, Channel, DeliveryStatus, Verification, VerificationStatus,
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
    pub to: E164Phone,
    /// Sender id.
    pub from: SenderId,
    /// The rendered message (contains the code).
    pub body: String,
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

/// Hands delivery jobs to whatever sends them (the delivery worker). Must not block.
pub trait Dispatch: Send + Sync + 'static {
    /// Queues one job for sending.
    fn dispatch(&self, job: DeliveryJob);
}

/// Price of one SMS part per destination country; countries not listed cost nothing.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PriceTable(pub HashMap<String, f64>);

impl PriceTable {
    /// The cost of `parts` segments to `country`.
    pub fn cost(&self, country: CountryIso, parts: u32) -> f64 {
        self.0
            .get(country.as_str())
            .map_or(0.0, |price| price * parts as f64)
    }
}

/// A start request after the dialect has parsed and bounded every field. `None` means
/// "use the service's setting".
#[derive(Debug, Clone, Default)]
pub struct StartRequest {
    /// Recipient.
    pub to: Option<(E164Phone, CountryIso)>,
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
}

/// Why a use case failed (client mistakes are outcomes, not errors).
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    /// The request named no recipient.
    #[error("no recipient")]
    MissingRecipient,
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

/// The verification engine: code generation, hashing, rendering and the store, wired once.
pub struct Verifier<S, C> {
    store: S,
    clock: C,
    hasher: CodeHasher,
    dispatch: Arc<dyn Dispatch>,
    prices: PriceTable,
}

impl<S: Store + Clone, C: Clock + Clone> Verifier<S, C> {
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
        }
    }

    /// The store behind the engine.
    pub fn store(&self) -> &S {
        &self.store
    }

    /// The clock behind the engine.
    pub fn clock(&self) -> &C {
        &self.clock
    }

    /// Starts a verification: generates a code, stores its hash with the first delivery
    /// attempt in one transaction, then hands the message to the delivery worker.
    pub async fn start(
        &self,
        service: ServiceId,
        settings: &OtpSettings,
        request: StartRequest,
    ) -> Result<Verification, VerifyError> {
        let (to, country) = request.to.ok_or(VerifyError::MissingRecipient)?;
        let pin_type = request.pin_type.unwrap_or(settings.pin_type);
        let pin_length = request.pin_length.unwrap_or(settings.pin_length);
        let ttl = request.ttl.unwrap_or(settings.ttl);
        let template = request
            .template
            .unwrap_or_else(|| settings.template_for(&to).clone());
        let from = request.from.unwrap_or_else(|| settings.from.clone());
        let id = VerificationId::generate();
        let code = OtpCode::generate(pin_type, pin_length, &mut rand::rng());
        let body = template.render(&code);
        let parts = segment_count(&body);
        let now = self.clock.now();
        let verification = Verification {
            id,
            service_id: service,
            to: to.clone(),
            country,
            channel: Channel::Sms,
            status: VerificationStatus::Pending,
            attempts: 0,
            max_attempts: request.max_attempts.unwrap_or(settings.max_attempts),
            ttl,
            code_hash: self.hasher.hash(id, &code),
            pin_type,
            pin_length,
            template,
            from: from.clone(),
            track_id: request.track_id,
            callback_url: request
                .callback_url
                .or_else(|| settings.callback_url.clone()),
            cost: self.prices.cost(country, parts),
            parts,
            created_at: now,
            expires_at: now.plus_seconds(ttl.get() as i64),
            updated_at: now,
        };
        let delivery = DeliveryAttempt {
            id: DeliveryId::generate(),
            verification_id: id,
            channel: Channel::Sms,
            status: DeliveryStatus::Queued,
            provider: None,
            provider_ref: None,
            error: None,
            created_at: now,
            updated_at: now,
        };
        self.store
            .create_verification(&verification, &delivery)
            .await?;
        self.dispatch.dispatch(DeliveryJob {
            delivery_id: delivery.id,
            verification_id: id,
            channel: Channel::Sms,
            to,
            from,
            body,
        });
        Ok(verification)
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

    /// Checks a code the user typed. One atomic store step counts the attempt and decides.
    pub async fn check(
        &self,
        service: ServiceId,
        id: VerificationId,
        typed: &str,
    ) -> Result<CheckResult, StoreError> {
        let candidate = self.hasher.hash(id, &OtpCode::from_user_input(typed));
        self.store
            .check_code(id, service, candidate, self.clock.now())
            .await
    }

    /// Cancels a pending verification.
    pub async fn cancel(
        &self,
        service: ServiceId,
        id: VerificationId,
    ) -> Result<CancelOutcome, StoreError> {
        self.store.cancel(id, service, self.clock.now()).await
    }

    /// For a delivery that was queued but never sent (its code lived only in the memory of a
    /// process that stopped): draws a new code, replaces the stored hash, and returns the job
    /// to send. `None` when the verification has ended or expired in the meantime.
    pub async fn reissue(
        &self,
        delivery: &DeliveryAttempt,
        verification: &Verification,
    ) -> Result<Option<DeliveryJob>, StoreError> {
        let now = self.clock.now();
        if verification.status_at(now) != VerificationStatus::Pending {
            return Ok(None);
        }
        let code = OtpCode::generate(
            verification.pin_type,
            verification.pin_length,
            &mut rand::rng(),
        );
        let hash = self.hasher.hash(verification.id, &code);
        if !self.store.replace_code(verification.id, hash, now).await? {
            return Ok(None);
        }
        Ok(Some(DeliveryJob {
            delivery_id: delivery.id,
            verification_id: verification.id,
            channel: delivery.channel,
            to: verification.to.clone(),
            from: verification.from.clone(),
            body: verification.template.render(&code),
        }))
    }
}
