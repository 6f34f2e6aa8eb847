//! Fixtures the behaviours share: accounts, services, sample verifications and the codes typed
//! against them.

use std::future::Future;

use otpd_core::auth::{AccountRecord, Application};
use otpd_core::store::{DeliveryAttempt, DeliveryUpdate, ServiceRecord, StartDecision, StartPlan};
use otpd_core::verification::Channel;
use otpd_core::{
    AccountId, ApplicationId, Candidate, CodeHash, CodeHasher, CodeSeed, DeliveryStatus,
    MaxAttempts, OtpCode, OtpSettings, PinLength, PinType, Recipient, SenderId, ServerSecret,
    ServiceId, Store, StoreError, Template, Timestamp, Ttl, Verification, VerificationId,
    VerificationStatus, VerificationStore,
};

/// The instant every behaviour starts at.
pub const T0: Timestamp = Timestamp(1_700_000_000_000);

/// The code every sample verification is created with.
pub const CODE: &str = "123456";

pub(crate) fn hasher() -> CodeHasher {
    CodeHasher::new(ServerSecret::from_bytes([42; 32]))
}

pub(crate) fn unique_hash() -> [u8; 32] {
    let mut hash = [0u8; 32];
    hash[..16].copy_from_slice(uuid::Uuid::now_v7().as_bytes());
    hash[16..].copy_from_slice(uuid::Uuid::now_v7().as_bytes());
    hash
}

/// The vault every store under test seals with (the backends' test harnesses open with it).
pub fn vault() -> std::sync::Arc<otpd_core::vault::Vault> {
    std::sync::Arc::new(otpd_core::vault::Vault::new(
        &otpd_core::ServerSecret::from_bytes([9; 32]),
        &[],
    ))
}

/// Creates an account.
pub async fn account<S: Store>(store: &S) -> AccountId {
    let account = AccountRecord {
        id: AccountId::generate(),
        name: "test".into(),
        auth_token_hash: unique_hash(),
        created_at: T0,
    };
    store
        .create_account(&account)
        .await
        .expect("create account");
    account.id
}

/// Creates an account with a service and an application, so verifications can reference it.
pub async fn service<S: Store>(store: &S) -> ServiceId {
    let account_id = account(store).await;
    let service = ServiceRecord {
        id: ServiceId::generate(),
        account_id,
        name: "test".into(),
        settings: OtpSettings::default(),
        created_at: T0,
        updated_at: T0,
    };
    let application = Application {
        id: ApplicationId::generate(),
        account_id,
        service_id: service.id,
        name: "test".into(),
        secret_hash: [1; 32],
        api_key_hash: unique_hash(),
        created_at: T0,
    };
    store
        .create_application(&service, &application)
        .await
        .expect("create service");
    service.id
}

/// A pending verification of `service` whose code is [`CODE`], and its queued delivery.
pub fn sample(
    service: ServiceId,
    max_attempts: i64,
    callback: Option<&str>,
) -> (Verification, DeliveryAttempt) {
    let id = VerificationId::generate();
    let (to, country) = Recipient::parse("+33612345678", None).expect("valid number");
    let verification = Verification {
        id,
        service_id: service,
        to,
        country,
        channel: Channel::Sms,
        status: VerificationStatus::Pending,
        attempts: 0,
        max_attempts: MaxAttempts::new(max_attempts).expect("bounded"),
        ttl: Ttl::new(600).expect("bounded"),
        code_hash: hasher().hash(id, &OtpCode::from_user_input(CODE)),
        code_seed: Some(CodeSeed([5; 16])),
        pin_type: PinType::Numbers,
        pin_length: PinLength::new(6).expect("bounded"),
        template: Template::new("Your code is {{pin}}").expect("valid"),
        from: SenderId::new("otpd").expect("valid"),
        track_id: Some(uuid::Uuid::now_v7()),
        callback_url: callback.map(str::to_string),
        amount: None,
        payee: None,
        locale: Some("fr".into()),
        cost: 0.045,
        parts: 1,
        created_at: T0,
        expires_at: T0.plus_seconds(600),
        updated_at: T0,
    };
    (verification, delivery_of(id))
}

pub(crate) fn delivery_of(id: VerificationId) -> DeliveryAttempt {
    DeliveryAttempt::queued(id, Channel::Sms, T0)
}

pub(crate) fn sent_by(provider: &str, reference: &str) -> DeliveryUpdate {
    DeliveryUpdate {
        provider: Some(provider.to_string()),
        provider_ref: Some(reference.to_string()),
        ..DeliveryUpdate::status(DeliveryStatus::Sent)
    }
}

pub(crate) fn hash_of(id: VerificationId, code: &str) -> CodeHash {
    hasher().hash(id, &OtpCode::from_user_input(code))
}

/// What a user typing `code` for verification `id` sends the store (no counters).
pub fn typed(id: VerificationId, code: &str) -> Candidate {
    Candidate {
        code_hash: hash_of(id, code),
        previous_key_hashes: Vec::new(),
        amount: None,
        payee: None,
        counting: otpd_core::CheckCounting::default(),
    }
}

/// The filter for up to 10 events of one verification, of one kind or of every kind.
pub fn events_of(
    account: AccountId,
    service: ServiceId,
    verification: VerificationId,
    kind: Option<&str>,
) -> otpd_core::events::EventFilter {
    otpd_core::events::EventFilter {
        account,
        service: Some(service),
        verification: Some(verification),
        kind: kind.map(str::to_string),
        since: None,
        until: None,
        after: None,
        limit: 10,
    }
}

/// Test support, kept out of the production ports: writes a verification and its first
/// delivery as a start that passes every check does (no cooldown, lockout, limit or spend), so
/// a behaviour can set up the state it needs in one call.
pub trait Seed: VerificationStore {
    /// Writes `verification` and `delivery` in one transaction.
    fn create_verification(
        &self,
        verification: &Verification,
        delivery: &DeliveryAttempt,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
}

impl<S: VerificationStore> Seed for S {
    async fn create_verification(
        &self,
        verification: &Verification,
        delivery: &DeliveryAttempt,
    ) -> Result<(), StoreError> {
        let plan = StartPlan {
            verification: verification.clone(),
            delivery: delivery.clone(),
            cooldown_seconds: 0,
            lockout: None,
            limits: Vec::new(),
            spend: None,
        };
        match self.start_verification(&plan).await? {
            StartDecision::Created => Ok(()),
            refused => Err(StoreError::Database(format!(
                "a start without checks was refused: {refused:?}"
            ))),
        }
    }
}
