//! The behaviour every [`Store`] must show, written once. A backend runs it with
//! [`store_behaviour_tests!`], which expands to one `#[tokio::test]` per behaviour, each on a
//! fresh store made by the backend's factory.

use otpd_core::auth::{AccessToken, Application};
use otpd_core::store::{DeliveryAttempt, ServiceRecord};
use otpd_core::verification::CancelOutcome;
use otpd_core::verification::Channel;
use otpd_core::{
    AccountId, ApplicationId, CheckOutcome, CodeHasher, DeliveryId, DeliveryStatus, E164Phone,
    MaxAttempts, OtpCode, OtpSettings, PinLength, PinType, SenderId, ServerSecret, ServiceId,
    Store, Template, Timestamp, Ttl, Verification, VerificationId, VerificationStatus,
};

/// The instant every behaviour starts at.
pub const T0: Timestamp = Timestamp(1_700_000_000_000);

/// The code every sample verification is created with.
pub const CODE: &str = "123456";

fn hasher() -> CodeHasher {
    CodeHasher::new(ServerSecret::from_bytes([42; 32]))
}

/// Creates a service (with its account and an application) so verifications can reference it.
pub async fn service<S: Store>(store: &S) -> ServiceId {
    let service = ServiceRecord {
        id: ServiceId::generate(),
        account_id: AccountId::generate(),
        name: "test".into(),
        settings: OtpSettings::default(),
        created_at: T0,
    };
    let application = Application {
        id: ApplicationId::generate(),
        account_id: service.account_id,
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
    let (to, country) = E164Phone::parse("+33612345678", None).expect("valid number");
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
        pin_type: PinType::Numbers,
        pin_length: PinLength::new(6).expect("bounded"),
        template: Template::new("Your code is {{pin}}").expect("valid"),
        from: SenderId::new("otpd").expect("valid"),
        track_id: Some(uuid::Uuid::now_v7()),
        callback_url: callback.map(str::to_string),
        cost: 0.045,
        parts: 1,
        created_at: T0,
        expires_at: T0.plus_seconds(600),
        updated_at: T0,
    };
    let delivery = DeliveryAttempt {
        id: DeliveryId::generate(),
        verification_id: id,
        channel: Channel::Sms,
        status: DeliveryStatus::Queued,
        provider: None,
        provider_ref: None,
        error: None,
        created_at: T0,
        updated_at: T0,
    };
    (verification, delivery)
}

fn unique_hash() -> [u8; 32] {
    let mut hash = [0u8; 32];
    hash[..16].copy_from_slice(uuid::Uuid::now_v7().as_bytes());
    hash[16..].copy_from_slice(uuid::Uuid::now_v7().as_bytes());
    hash
}

fn hash_of(id: VerificationId, code: &str) -> otpd_core::CodeHash {
    hasher().hash(id, &OtpCode::from_user_input(code))
}

/// A verification reads back exactly as written.
pub async fn verification_round_trips<S: Store>(store: S) {
    let service = service(&store).await;
    let (v, d) = sample(service, 5, Some("https://example.com/cb"));
    store.create_verification(&v, &d).await.unwrap();
    assert_eq!(store.verification(v.id).await.unwrap(), Some(v.clone()));
    assert_eq!(store.deliveries(v.id).await.unwrap(), vec![d]);
    assert_eq!(
        store
            .verification(VerificationId::generate())
            .await
            .unwrap(),
        None
    );
}

/// The right code approves once; later checks report the end state.
pub async fn right_code_approves_once<S: Store>(store: S) {
    let service = service(&store).await;
    let (v, d) = sample(service, 5, None);
    store.create_verification(&v, &d).await.unwrap();
    let first = store
        .check_code(v.id, service, hash_of(v.id, CODE), T0)
        .await
        .unwrap();
    assert_eq!(first.outcome, CheckOutcome::Approved);
    assert_eq!(
        first.verification.unwrap().status,
        VerificationStatus::Approved
    );
    let again = store
        .check_code(v.id, service, hash_of(v.id, CODE), T0)
        .await
        .unwrap();
    assert_eq!(again.outcome, CheckOutcome::AlreadyApproved);
    let stored = store.verification(v.id).await.unwrap().unwrap();
    assert_eq!(
        (stored.status, stored.attempts),
        (VerificationStatus::Approved, 0)
    );
}

/// Wrong codes are counted; the one reaching the maximum ends the verification.
pub async fn wrong_codes_count_until_max<S: Store>(store: S) {
    let service = service(&store).await;
    let (v, d) = sample(service, 3, None);
    store.create_verification(&v, &d).await.unwrap();
    for expected in [
        CheckOutcome::WrongCode,
        CheckOutcome::WrongCode,
        CheckOutcome::MaxAttemptsNow,
        CheckOutcome::AlreadyMaxAttempts,
    ] {
        let result = store
            .check_code(v.id, service, hash_of(v.id, "000000"), T0)
            .await
            .unwrap();
        assert_eq!(result.outcome, expected);
    }
    // Even the right code cannot revive it.
    let result = store
        .check_code(v.id, service, hash_of(v.id, CODE), T0)
        .await
        .unwrap();
    assert_eq!(result.outcome, CheckOutcome::AlreadyMaxAttempts);
    let stored = store.verification(v.id).await.unwrap().unwrap();
    assert_eq!(
        (stored.status, stored.attempts),
        (VerificationStatus::MaxAttemptsReached, 3)
    );
}

/// The right code after the TTL is refused as expired, and stays expired.
pub async fn expiry_is_decided_by_the_given_time<S: Store>(store: S) {
    let service = service(&store).await;
    let (v, d) = sample(service, 5, None);
    store.create_verification(&v, &d).await.unwrap();
    let late = v.expires_at;
    let result = store
        .check_code(v.id, service, hash_of(v.id, CODE), late)
        .await
        .unwrap();
    assert_eq!(result.outcome, CheckOutcome::ExpiredNow);
    let result = store
        .check_code(v.id, service, hash_of(v.id, CODE), T0)
        .await
        .unwrap();
    assert_eq!(result.outcome, CheckOutcome::AlreadyExpired);
}

/// Another service can neither check nor cancel, and its attempts are not counted.
pub async fn other_services_cannot_touch_a_verification<S: Store>(store: S) {
    let owner = service(&store).await;
    let stranger = service(&store).await;
    let (v, d) = sample(owner, 5, None);
    store.create_verification(&v, &d).await.unwrap();
    let result = store
        .check_code(v.id, stranger, hash_of(v.id, CODE), T0)
        .await
        .unwrap();
    assert_eq!(result.outcome, CheckOutcome::WrongService);
    assert!(result.verification.is_none());
    assert_eq!(
        store.cancel(v.id, stranger, T0).await.unwrap(),
        CancelOutcome::WrongService
    );
    let stored = store.verification(v.id).await.unwrap().unwrap();
    assert_eq!(
        (stored.status, stored.attempts),
        (VerificationStatus::Pending, 0)
    );
}

/// Only a pending verification cancels; cancel twice says so.
pub async fn cancel_rules<S: Store>(store: S) {
    let service = service(&store).await;
    let (v, d) = sample(service, 5, None);
    store.create_verification(&v, &d).await.unwrap();
    assert_eq!(
        store.cancel(v.id, service, T0).await.unwrap(),
        CancelOutcome::Canceled
    );
    assert_eq!(
        store.cancel(v.id, service, T0).await.unwrap(),
        CancelOutcome::AlreadyCanceled
    );
    let result = store
        .check_code(v.id, service, hash_of(v.id, CODE), T0)
        .await
        .unwrap();
    assert_eq!(result.outcome, CheckOutcome::AlreadyCanceled);
    assert_eq!(
        store
            .cancel(VerificationId::generate(), service, T0)
            .await
            .unwrap(),
        CancelOutcome::NotFound
    );

    let (approved, d) = sample(service, 5, None);
    store.create_verification(&approved, &d).await.unwrap();
    store
        .check_code(approved.id, service, hash_of(approved.id, CODE), T0)
        .await
        .unwrap();
    assert_eq!(
        store.cancel(approved.id, service, T0).await.unwrap(),
        CancelOutcome::NotPending(VerificationStatus::Approved)
    );
}

/// 50 concurrent checks with the right code: exactly one approval.
pub async fn concurrent_right_codes_approve_exactly_once<S: Store + Clone>(store: S) {
    let service = service(&store).await;
    let (v, d) = sample(service, 5, None);
    store.create_verification(&v, &d).await.unwrap();
    let tasks: Vec<_> = (0..50)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move {
                store
                    .check_code(v.id, service, hash_of(v.id, CODE), T0)
                    .await
            })
        })
        .collect();
    let mut approved = 0;
    for task in tasks {
        match task.await.unwrap().unwrap().outcome {
            CheckOutcome::Approved => approved += 1,
            CheckOutcome::AlreadyApproved => {}
            other => panic!("unexpected outcome {other:?}"),
        }
    }
    assert_eq!(approved, 1);
}

/// 50 concurrent wrong codes with max 5: exactly 5 counted, then the verification is failed.
pub async fn concurrent_wrong_codes_count_exactly_max<S: Store + Clone>(store: S) {
    let service = service(&store).await;
    let (v, d) = sample(service, 5, None);
    store.create_verification(&v, &d).await.unwrap();
    let tasks: Vec<_> = (0..50)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move {
                store
                    .check_code(v.id, service, hash_of(v.id, "999999"), T0)
                    .await
            })
        })
        .collect();
    let mut counted = 0;
    let mut ended = 0;
    for task in tasks {
        match task.await.unwrap().unwrap().outcome {
            CheckOutcome::WrongCode => counted += 1,
            CheckOutcome::MaxAttemptsNow => {
                counted += 1;
                ended += 1
            }
            CheckOutcome::AlreadyMaxAttempts => {}
            other => panic!("unexpected outcome {other:?}"),
        }
    }
    assert_eq!((counted, ended), (5, 1));
    let stored = store.verification(v.id).await.unwrap().unwrap();
    assert_eq!(
        (stored.status, stored.attempts),
        (VerificationStatus::MaxAttemptsReached, 5)
    );
}

/// A status change of a verification with a callback URL queues exactly one callback, which
/// can be claimed, retried and finally delivered.
pub async fn status_changes_queue_callbacks<S: Store>(store: S) {
    let service = service(&store).await;
    let (v, d) = sample(service, 5, Some("https://example.com/cb"));
    store.create_verification(&v, &d).await.unwrap();
    // A wrong code changes no status: nothing queued.
    store
        .check_code(v.id, service, hash_of(v.id, "000000"), T0)
        .await
        .unwrap();
    assert!(
        store
            .claim_due_callbacks(T0, T0.plus_seconds(30), 10)
            .await
            .unwrap()
            .is_empty()
    );
    store
        .check_code(v.id, service, hash_of(v.id, CODE), T0)
        .await
        .unwrap();
    let jobs = store
        .claim_due_callbacks(T0, T0.plus_seconds(30), 10)
        .await
        .unwrap();
    assert_eq!(jobs.len(), 1);
    assert_eq!(jobs[0].status, VerificationStatus::Approved);
    assert_eq!(jobs[0].url, "https://example.com/cb");
    assert_eq!(jobs[0].verification.id, v.id);
    // Leased: invisible until the lease ends.
    assert!(
        store
            .claim_due_callbacks(T0, T0.plus_seconds(30), 10)
            .await
            .unwrap()
            .is_empty()
    );
    store
        .callback_failed(jobs[0].id, Some(T0.plus_seconds(1)), "HTTP 500", T0)
        .await
        .unwrap();
    let retry = store
        .claim_due_callbacks(T0.plus_seconds(1), T0.plus_seconds(60), 10)
        .await
        .unwrap();
    assert_eq!(retry.len(), 1);
    assert_eq!(retry[0].attempts, 1);
    store
        .callback_delivered(retry[0].id, T0.plus_seconds(1))
        .await
        .unwrap();
    assert!(
        store
            .claim_due_callbacks(T0.plus_seconds(3600), T0.plus_seconds(3700), 10)
            .await
            .unwrap()
            .is_empty()
    );
}

/// A callback that gives up is never claimed again.
pub async fn abandoned_callbacks_stay_abandoned<S: Store>(store: S) {
    let service = service(&store).await;
    let (v, d) = sample(service, 5, Some("https://example.com/cb"));
    store.create_verification(&v, &d).await.unwrap();
    store.cancel(v.id, service, T0).await.unwrap();
    let jobs = store.claim_due_callbacks(T0, T0, 10).await.unwrap();
    assert_eq!(jobs[0].status, VerificationStatus::Canceled);
    store
        .callback_failed(jobs[0].id, None, "gone", T0)
        .await
        .unwrap();
    assert!(
        store
            .claim_due_callbacks(T0.plus_seconds(86_400), T0.plus_seconds(86_400), 10)
            .await
            .unwrap()
            .is_empty()
    );
}

/// Queued deliveries are listed for a restart; delivered ones are not. A code is replaced
/// only while the verification is pending.
pub async fn queued_deliveries_resume<S: Store>(store: S) {
    let service = service(&store).await;
    let (v, d) = sample(service, 5, None);
    store.create_verification(&v, &d).await.unwrap();
    let (sent, sent_d) = sample(service, 5, None);
    store.create_verification(&sent, &sent_d).await.unwrap();
    store
        .update_delivery(
            sent_d.id,
            DeliveryStatus::Sent,
            Some("console"),
            Some("msg-1"),
            None,
            T0,
        )
        .await
        .unwrap();
    let queued = store.queued_deliveries().await.unwrap();
    assert_eq!(queued.len(), 1);
    assert_eq!(queued[0].0.id, d.id);
    assert_eq!(queued[0].1.id, v.id);
    let updated = &store.deliveries(sent.id).await.unwrap()[0];
    assert_eq!(updated.status, DeliveryStatus::Sent);
    assert_eq!(updated.provider.as_deref(), Some("console"));
    assert_eq!(updated.provider_ref.as_deref(), Some("msg-1"));

    assert!(
        store
            .replace_code(v.id, hash_of(v.id, "654321"), T0)
            .await
            .unwrap()
    );
    let old = store
        .check_code(v.id, service, hash_of(v.id, CODE), T0)
        .await
        .unwrap();
    assert_eq!(old.outcome, CheckOutcome::WrongCode);
    let new = store
        .check_code(v.id, service, hash_of(v.id, "654321"), T0)
        .await
        .unwrap();
    assert_eq!(new.outcome, CheckOutcome::Approved);
    assert!(
        !store
            .replace_code(v.id, hash_of(v.id, "111111"), T0)
            .await
            .unwrap()
    );
}

/// Applications are found by id and API-key hash; tokens by hash; rotation revokes tokens.
pub async fn credentials_round_trip<S: Store>(store: S) {
    let service_id = service(&store).await;
    let apps = store.applications().await.unwrap();
    let app = apps
        .iter()
        .find(|a| a.service_id == service_id)
        .unwrap()
        .clone();
    assert_eq!(store.application(app.id).await.unwrap(), Some(app.clone()));
    assert_eq!(
        store
            .application_by_api_key(app.api_key_hash)
            .await
            .unwrap(),
        Some(app.clone())
    );
    assert_eq!(store.application_by_api_key([9; 32]).await.unwrap(), None);
    let service = store.service(service_id).await.unwrap().unwrap();
    assert_eq!(service.settings, OtpSettings::default());
    let settings = OtpSettings {
        ttl: Ttl::new(120).unwrap(),
        ..OtpSettings::default()
    };
    assert!(
        store
            .update_service_settings(service_id, &settings)
            .await
            .unwrap()
    );
    assert_eq!(
        store.service(service_id).await.unwrap().unwrap().settings,
        settings
    );

    let token = AccessToken {
        token_hash: [7; 32],
        application_id: app.id,
        scope: "otp".into(),
        expires_at: T0.plus_seconds(60),
        revoked: false,
    };
    store.insert_token(&token).await.unwrap();
    assert_eq!(store.token([7; 32]).await.unwrap(), Some(token.clone()));
    assert!(
        store
            .rotate_application_secret(app.id, [3; 32], [4; 32])
            .await
            .unwrap()
    );
    assert!(store.token([7; 32]).await.unwrap().unwrap().revoked);
    assert_eq!(
        store
            .application(app.id)
            .await
            .unwrap()
            .unwrap()
            .secret_hash,
        [3; 32]
    );

    let second = AccessToken {
        token_hash: [8; 32],
        ..token
    };
    store.insert_token(&second).await.unwrap();
    assert!(
        !store
            .revoke_token([8; 32], ApplicationId::generate())
            .await
            .unwrap()
    );
    assert!(store.revoke_token([8; 32], app.id).await.unwrap());
    assert!(store.token([8; 32]).await.unwrap().unwrap().revoked);
}

/// Expands to one `#[tokio::test]` per behaviour. `$make` is an async expression producing a
/// fresh store (it may reference a per-test temporary directory it creates itself).
#[macro_export]
macro_rules! store_behaviour_tests {
    ($make:expr) => {
        $crate::store_behaviour_tests!(@each $make;
            verification_round_trips,
            right_code_approves_once,
            wrong_codes_count_until_max,
            expiry_is_decided_by_the_given_time,
            other_services_cannot_touch_a_verification,
            cancel_rules,
            concurrent_right_codes_approve_exactly_once,
            concurrent_wrong_codes_count_exactly_max,
            status_changes_queue_callbacks,
            abandoned_callbacks_stay_abandoned,
            queued_deliveries_resume,
            credentials_round_trip
        );
    };
    (@each $make:expr; $($name:ident),*) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $name() {
                let (store, _guard) = $make.await;
                $crate::$name(store).await;
            }
        )*
    };
}
