//! The behaviour every [`Store`] must show, written once. A backend runs it with
//! [`store_behaviour_tests!`], which expands to one `#[tokio::test]` per behaviour, each on a
//! fresh store made by the backend's factory.

use otpd_core::auth::{AccessToken, AccountRecord, ApiKeyRecord, Application};
use otpd_core::store::{
    DeliveryAttempt, DeliveryUpdate, LimitHit, ReceiptUpdate, ResendOutcome, ServiceRecord, Spend,
    StartDecision, StartPlan,
};
use otpd_core::verification::Channel;
use otpd_core::{
    AccountId, ApiKeyId, ApplicationId, Candidate, CheckOutcome, CodeHash, CodeHasher, CodeSeed,
    DeliveryStatus, MaxAttempts, OtpCode, OtpSettings, PinLength, PinType, Recipient, SenderId,
    ServerSecret, ServiceId, StatusChange, Store, Template, Timestamp, Ttl, Verification,
    VerificationId, VerificationStatus,
};

/// The instant every behaviour starts at.
pub const T0: Timestamp = Timestamp(1_700_000_000_000);

/// The code every sample verification is created with.
pub const CODE: &str = "123456";

fn hasher() -> CodeHasher {
    CodeHasher::new(ServerSecret::from_bytes([42; 32]))
}

fn unique_hash() -> [u8; 32] {
    let mut hash = [0u8; 32];
    hash[..16].copy_from_slice(uuid::Uuid::now_v7().as_bytes());
    hash[16..].copy_from_slice(uuid::Uuid::now_v7().as_bytes());
    hash
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

fn delivery_of(id: VerificationId) -> DeliveryAttempt {
    DeliveryAttempt::queued(id, Channel::Sms, T0)
}

fn sent_by(provider: &str, reference: &str) -> DeliveryUpdate {
    DeliveryUpdate {
        provider: Some(provider.to_string()),
        provider_ref: Some(reference.to_string()),
        ..DeliveryUpdate::status(DeliveryStatus::Sent)
    }
}

fn hash_of(id: VerificationId, code: &str) -> CodeHash {
    hasher().hash(id, &OtpCode::from_user_input(code))
}

/// What a user typing `code` for verification `id` sends the store (no counters).
pub fn typed(id: VerificationId, code: &str) -> Candidate {
    Candidate {
        code_hash: hash_of(id, code),
        amount: None,
        payee: None,
        counting: otpd_core::CheckCounting::default(),
    }
}

/// A verification reads back exactly as written, email recipients and PSD2 fields included.
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
    let (mut email, d) = sample(service, 5, None);
    (email.to, email.country) = Recipient::parse("ada@example.com", None).unwrap();
    email.channel = Channel::Email;
    email.code_seed = None;
    email.amount = Some("12.50".into());
    email.payee = Some("Acme".into());
    store.create_verification(&email, &d).await.unwrap();
    assert_eq!(store.verification(email.id).await.unwrap(), Some(email));
}

/// The right code approves once; later checks report the end state.
pub async fn right_code_approves_once<S: Store>(store: S) {
    let service = service(&store).await;
    let (v, d) = sample(service, 5, None);
    store.create_verification(&v, &d).await.unwrap();
    let first = store
        .check_code(v.id, service, typed(v.id, CODE), T0)
        .await
        .unwrap();
    assert_eq!(first.outcome, CheckOutcome::Approved);
    assert_eq!(
        first.verification.unwrap().status,
        VerificationStatus::Approved
    );
    let again = store
        .check_code(v.id, service, typed(v.id, CODE), T0)
        .await
        .unwrap();
    assert_eq!(again.outcome, CheckOutcome::AlreadyApproved);
    let stored = store.verification(v.id).await.unwrap().unwrap();
    assert_eq!(
        (stored.status, stored.attempts),
        (VerificationStatus::Approved, 0)
    );
}

/// A PSD2 verification approves only when the amount and payee are repeated.
pub async fn psd2_checks_need_amount_and_payee<S: Store>(store: S) {
    let service = service(&store).await;
    let (mut v, d) = sample(service, 5, None);
    v.amount = Some("12.50".into());
    v.payee = Some("Acme".into());
    store.create_verification(&v, &d).await.unwrap();
    let mismatch = Candidate {
        amount: Some("99.00".into()),
        payee: Some("Acme".into()),
        ..typed(v.id, CODE)
    };
    let result = store.check_code(v.id, service, mismatch, T0).await.unwrap();
    assert_eq!(result.outcome, CheckOutcome::WrongCode);
    let right = Candidate {
        amount: Some("12.50".into()),
        payee: Some("Acme".into()),
        ..typed(v.id, CODE)
    };
    let result = store.check_code(v.id, service, right, T0).await.unwrap();
    assert_eq!(result.outcome, CheckOutcome::Approved);
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
            .check_code(v.id, service, typed(v.id, "000000"), T0)
            .await
            .unwrap();
        assert_eq!(result.outcome, expected);
    }
    let result = store
        .check_code(v.id, service, typed(v.id, CODE), T0)
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
    let result = store
        .check_code(v.id, service, typed(v.id, CODE), v.expires_at)
        .await
        .unwrap();
    assert_eq!(result.outcome, CheckOutcome::ExpiredNow);
    let result = store
        .check_code(v.id, service, typed(v.id, CODE), T0)
        .await
        .unwrap();
    assert_eq!(result.outcome, CheckOutcome::AlreadyExpired);
}

/// Another service can neither check nor change a verification; nothing is counted.
pub async fn other_services_cannot_touch_a_verification<S: Store>(store: S) {
    let owner = service(&store).await;
    let stranger = service(&store).await;
    let (v, d) = sample(owner, 5, None);
    store.create_verification(&v, &d).await.unwrap();
    let result = store
        .check_code(v.id, stranger, typed(v.id, CODE), T0)
        .await
        .unwrap();
    assert_eq!(result.outcome, CheckOutcome::WrongService);
    assert!(result.verification.is_none());
    let change = store
        .set_status(v.id, stranger, VerificationStatus::Canceled, T0)
        .await
        .unwrap();
    assert_eq!(change, StatusChange::WrongService);
    assert_eq!(
        store.latest_for(stranger, v.to.as_str(), T0).await.unwrap(),
        None
    );
    let stored = store.verification(v.id).await.unwrap().unwrap();
    assert_eq!(
        (stored.status, stored.attempts),
        (VerificationStatus::Pending, 0)
    );
}

/// Only a pending verification is canceled or approved out of band.
pub async fn status_changes_only_from_pending<S: Store>(store: S) {
    let service = service(&store).await;
    let cancel = VerificationStatus::Canceled;
    let (v, d) = sample(service, 5, None);
    store.create_verification(&v, &d).await.unwrap();
    let StatusChange::Changed(changed) = store.set_status(v.id, service, cancel, T0).await.unwrap()
    else {
        panic!("a pending verification cancels");
    };
    assert_eq!(changed.status, cancel);
    let StatusChange::NotPending(again) =
        store.set_status(v.id, service, cancel, T0).await.unwrap()
    else {
        panic!("canceling twice changes nothing");
    };
    assert_eq!(again.status, cancel);
    let result = store
        .check_code(v.id, service, typed(v.id, CODE), T0)
        .await
        .unwrap();
    assert_eq!(result.outcome, CheckOutcome::AlreadyCanceled);
    assert_eq!(
        store
            .set_status(VerificationId::generate(), service, cancel, T0)
            .await
            .unwrap(),
        StatusChange::NotFound
    );

    let (approved, d) = sample(service, 5, None);
    store.create_verification(&approved, &d).await.unwrap();
    let change = store
        .set_status(approved.id, service, VerificationStatus::Approved, T0)
        .await
        .unwrap();
    assert!(matches!(change, StatusChange::Changed(v) if v.status == VerificationStatus::Approved));
    let StatusChange::NotPending(v) = store
        .set_status(approved.id, service, cancel, T0)
        .await
        .unwrap()
    else {
        panic!("an approved verification cannot be canceled");
    };
    assert_eq!(v.status, VerificationStatus::Approved);

    let (late, d) = sample(service, 5, None);
    store.create_verification(&late, &d).await.unwrap();
    let StatusChange::NotPending(v) = store
        .set_status(late.id, service, cancel, late.expires_at)
        .await
        .unwrap()
    else {
        panic!("an expired verification cannot be canceled");
    };
    assert_eq!(v.status, VerificationStatus::Expired);
    assert_eq!(
        store.verification(late.id).await.unwrap().unwrap().status,
        VerificationStatus::Expired
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
            tokio::spawn(
                async move { store.check_code(v.id, service, typed(v.id, CODE), T0).await },
            )
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
                    .check_code(v.id, service, typed(v.id, "999999"), T0)
                    .await
            })
        })
        .collect();
    let (mut counted, mut ended) = (0, 0);
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

/// The pending verification to a recipient is found, then resent up to the limit;
/// concurrent resends never exceed it.
pub async fn resends_are_counted_and_limited<S: Store + Clone>(store: S) {
    let service = service(&store).await;
    let (v, d) = sample(service, 5, None);
    store.create_verification(&v, &d).await.unwrap();
    let found = store.latest_for(service, "+33612345678", T0).await.unwrap();
    assert_eq!(found.map(|f| f.id), Some(v.id));
    assert_eq!(
        store
            .latest_for(service, "+33612345678", v.expires_at)
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        store
            .latest_for(service, "+447400123456", T0)
            .await
            .unwrap(),
        None
    );
    let tasks: Vec<_> = (0..10)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move { store.resend(v.id, &delivery_of(v.id), None, 5, T0).await })
        })
        .collect();
    let mut queued = 0;
    for task in tasks {
        match task.await.unwrap().unwrap() {
            ResendOutcome::Queued(_) => queued += 1,
            ResendOutcome::TooManySends => {}
            ResendOutcome::NotPending => panic!("still pending"),
        }
    }
    assert_eq!(queued, 4, "one send at creation plus four resends");
    assert_eq!(store.deliveries(v.id).await.unwrap().len(), 5);
    // A resend with a new code replaces the hash.
    let (w, d) = sample(service, 5, None);
    store.create_verification(&w, &d).await.unwrap();
    let outcome = store
        .resend(w.id, &delivery_of(w.id), Some(hash_of(w.id, "4321")), 5, T0)
        .await
        .unwrap();
    assert!(matches!(outcome, ResendOutcome::Queued(ref v) if v.code_seed.is_none()));
    let old = store
        .check_code(w.id, service, typed(w.id, CODE), T0)
        .await
        .unwrap();
    assert_eq!(old.outcome, CheckOutcome::WrongCode);
    let new = store
        .check_code(w.id, service, typed(w.id, "4321"), T0)
        .await
        .unwrap();
    assert_eq!(new.outcome, CheckOutcome::Approved);
    let ended = store
        .resend(w.id, &delivery_of(w.id), None, 5, T0)
        .await
        .unwrap();
    assert_eq!(ended, ResendOutcome::NotPending);
}

/// A status change of a verification with a callback URL queues exactly one callback, which
/// can be claimed, retried and finally delivered.
pub async fn status_changes_queue_callbacks<S: Store>(store: S) {
    let service = service(&store).await;
    let (v, d) = sample(service, 5, Some("https://example.com/cb"));
    store.create_verification(&v, &d).await.unwrap();
    store
        .check_code(v.id, service, typed(v.id, "000000"), T0)
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
        .check_code(v.id, service, typed(v.id, CODE), T0)
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
    let later = store
        .claim_due_callbacks(T0.plus_seconds(3600), T0.plus_seconds(3700), 10)
        .await
        .unwrap();
    assert!(later.is_empty());
}

/// A callback that gives up is never claimed again.
pub async fn abandoned_callbacks_stay_abandoned<S: Store>(store: S) {
    let service = service(&store).await;
    let (v, d) = sample(service, 5, Some("https://example.com/cb"));
    store.create_verification(&v, &d).await.unwrap();
    store
        .set_status(v.id, service, VerificationStatus::Canceled, T0)
        .await
        .unwrap();
    let jobs = store.claim_due_callbacks(T0, T0, 10).await.unwrap();
    assert_eq!(jobs[0].status, VerificationStatus::Canceled);
    store
        .callback_failed(jobs[0].id, None, "gone", T0)
        .await
        .unwrap();
    let later = T0.plus_seconds(86_400);
    assert!(
        store
            .claim_due_callbacks(later, later, 10)
            .await
            .unwrap()
            .is_empty()
    );
}

/// A queued delivery is leased to its writer; once the lease runs out exactly one claimer
/// takes it over (and holds it for a new lease); sent deliveries are never claimed.
pub async fn stale_deliveries_are_claimed_once<S: Store>(store: S) {
    let service = service(&store).await;
    let (v, d) = sample(service, 5, None);
    store.create_verification(&v, &d).await.unwrap();
    let (sent, sent_d) = sample(service, 5, None);
    store.create_verification(&sent, &sent_d).await.unwrap();
    store
        .update_delivery(sent_d.id, &sent_by("console", "msg-1"), T0)
        .await
        .unwrap();
    let lease = otpd_core::store::DELIVERY_LEASE_SECONDS;
    let early = store
        .claim_stale_deliveries(T0.plus_seconds(lease - 1), T0.plus_seconds(2 * lease), 10)
        .await
        .unwrap();
    assert!(early.is_empty(), "the writer's lease still holds");
    let later = T0.plus_seconds(lease);
    let queued = store
        .claim_stale_deliveries(later, later.plus_seconds(lease), 10)
        .await
        .unwrap();
    assert_eq!(queued.len(), 1);
    assert_eq!(queued[0].0.id, d.id);
    assert_eq!(queued[0].1.id, v.id);
    let again = store
        .claim_stale_deliveries(later, later.plus_seconds(lease), 10)
        .await
        .unwrap();
    assert!(again.is_empty(), "claimed once");
    let much_later = later.plus_seconds(lease);
    let retaken = store
        .claim_stale_deliveries(much_later, much_later.plus_seconds(lease), 10)
        .await
        .unwrap();
    assert_eq!(retaken.len(), 1, "a claimer that died loses its lease too");
    let updated = &store.deliveries(sent.id).await.unwrap()[0];
    assert_eq!(updated.status, DeliveryStatus::Sent);
    assert_eq!(updated.provider.as_deref(), Some("console"));
    assert_eq!(updated.provider_ref.as_deref(), Some("msg-1"));
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

/// A delivery's first outcome, once recorded, is what every later read and write sees, even
/// where the store returns before it commits (SQLite): the start answering with it never
/// disagrees with a read of the attempt or its events, and a receipt right after finds it.
pub async fn a_first_outcome_is_seen_by_what_follows<S: Store>(store: S) {
    let service = service(&store).await;
    let account = store.service(service).await.unwrap().unwrap().account_id;
    for n in 0..20 {
        let (v, d) = sample(service, 5, None);
        store.create_verification(&v, &d).await.unwrap();
        let reference = format!("SM-first-{n}");
        store
            .record_first_outcome(d.id, &sent_by("twilio", &reference), T0)
            .await
            .unwrap();
        let read = store.deliveries(v.id).await.unwrap();
        assert_eq!(read[0].status, DeliveryStatus::Sent, "read {n}");
        assert_eq!(read[0].provider_ref.as_deref(), Some(reference.as_str()));
        let events = store
            .events(&events_of(account, service, v.id, Some("delivery.sent")))
            .await
            .unwrap();
        assert_eq!(events.len(), 1, "the sent event of read {n}");
        let next = format!("SM-next-{n}");
        let receipt = ReceiptUpdate {
            provider: "twilio".into(),
            provider_ref: next.clone(),
            status: DeliveryStatus::Delivered,
            error_code: None,
            price: None,
            segments: None,
        };
        let (v2, d2) = sample(service, 5, None);
        store.create_verification(&v2, &d2).await.unwrap();
        store
            .record_first_outcome(d2.id, &sent_by("twilio", &next), T0)
            .await
            .unwrap();
        // A write queued right after the unconfirmed record finds it.
        let found = store.record_receipt(&receipt, T0).await.unwrap();
        assert_eq!(found.map(|a| a.id), Some(d2.id), "receipt {n}");
    }
}

/// Receipts find their attempt by provider and message id, record price, parts and error
/// code, and never move a status backwards (late, duplicated or out-of-order receipts).
pub async fn receipts_only_move_forward<S: Store>(store: S) {
    let service = service(&store).await;
    let (v, d) = sample(service, 5, None);
    store.create_verification(&v, &d).await.unwrap();
    let update = DeliveryUpdate {
        segments: Some(1),
        price_unit: Some("USD".into()),
        ..sent_by("twilio-main", "SM1")
    };
    store.update_delivery(d.id, &update, T0).await.unwrap();
    let receipt = |status, provider: &str, reference: &str| ReceiptUpdate {
        provider: provider.to_string(),
        provider_ref: reference.to_string(),
        status,
        error_code: None,
        price: Some(0.0079),
        segments: Some(2),
    };
    let unknown = store
        .record_receipt(
            &receipt(DeliveryStatus::Delivered, "twilio-main", "SM2"),
            T0,
        )
        .await
        .unwrap();
    assert!(unknown.is_none(), "no attempt has that message id");
    let other_provider = store
        .record_receipt(&receipt(DeliveryStatus::Delivered, "vonage", "SM1"), T0)
        .await
        .unwrap();
    assert!(other_provider.is_none(), "message ids are per provider");
    let delivered = store
        .record_receipt(
            &receipt(DeliveryStatus::Delivered, "twilio-main", "SM1"),
            T0,
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(delivered.status, DeliveryStatus::Delivered);
    assert_eq!(delivered.price, Some(0.0079));
    assert_eq!(delivered.segments, Some(2));
    assert_eq!(delivered.price_unit.as_deref(), Some("USD"));
    let late = ReceiptUpdate {
        error_code: Some("30003".into()),
        ..receipt(DeliveryStatus::Sent, "twilio-main", "SM1")
    };
    let kept = store.record_receipt(&late, T0).await.unwrap().unwrap();
    assert_eq!(
        kept.status,
        DeliveryStatus::Delivered,
        "a late `sent` changes nothing"
    );
    let undelivered = receipt(DeliveryStatus::Undelivered, "twilio-main", "SM1");
    let kept = store
        .record_receipt(&undelivered, T0)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        kept.status,
        DeliveryStatus::Delivered,
        "final states are final"
    );
    assert_eq!(store.deliveries(v.id).await.unwrap()[0], kept);
}

/// A sent attempt with a fallback timer is claimed once when the timer is due, at once when
/// an `undelivered` receipt arrives, and never when a receipt says `delivered`.
pub async fn fallbacks_are_due_once<S: Store>(store: S) {
    let service = service(&store).await;
    let mut attempts = Vec::new();
    for reference in ["WA-timer", "WA-undelivered", "WA-delivered"] {
        let (v, d) = sample(service, 5, None);
        store.create_verification(&v, &d).await.unwrap();
        let update = DeliveryUpdate {
            fallback_at: Some(T0.plus_seconds(30)),
            ..sent_by("meta", reference)
        };
        store.update_delivery(d.id, &update, T0).await.unwrap();
        attempts.push((v, d));
    }
    let receipt = |reference: &str, status| ReceiptUpdate {
        provider: "meta".into(),
        provider_ref: reference.into(),
        status,
        error_code: Some("131026".into()),
        price: None,
        segments: None,
    };
    let now = T0.plus_seconds(5);
    store
        .record_receipt(&receipt("WA-undelivered", DeliveryStatus::Undelivered), now)
        .await
        .unwrap();
    store
        .record_receipt(&receipt("WA-delivered", DeliveryStatus::Delivered), now)
        .await
        .unwrap();
    let due = store.claim_due_fallbacks(now, 10).await.unwrap();
    assert_eq!(due.len(), 1, "only the undelivered one is due early");
    assert_eq!(due[0].0.id, attempts[1].1.id);
    assert_eq!(due[0].0.error_code.as_deref(), Some("131026"));
    assert_eq!(due[0].1.id, attempts[1].0.id);
    assert!(
        store.claim_due_fallbacks(now, 10).await.unwrap().is_empty(),
        "claimed once"
    );
    let later = T0.plus_seconds(30);
    let due = store.claim_due_fallbacks(later, 10).await.unwrap();
    assert_eq!(
        due.len(),
        1,
        "the timer fires; the delivered one never does"
    );
    assert_eq!(due[0].0.id, attempts[0].1.id);
    assert!(
        store
            .claim_due_fallbacks(later.plus_seconds(600), 10)
            .await
            .unwrap()
            .is_empty()
    );
}

/// A sliding window counts exactly `limit` events however many callers race, forgets events
/// as they age out, and keeps keys apart.
pub async fn rate_limits_are_exact_and_slide<S: Store + Clone>(store: S) {
    let window = 600_000;
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move { store.rate_hit("dest:a", window, 5, T0).await.unwrap() })
        })
        .collect();
    let mut allowed = 0;
    for task in tasks {
        allowed += usize::from(task.await.unwrap().allowed);
    }
    assert_eq!(allowed, 5, "exactly the limit, whatever the race");
    let refused = store.rate_hit("dest:a", window, 5, T0).await.unwrap();
    assert!(!refused.allowed);
    assert_eq!(refused.count, 5);
    assert_eq!(refused.frees_at, Some(T0.plus_millis(window)));
    assert!(
        store
            .rate_hit("dest:b", window, 5, T0)
            .await
            .unwrap()
            .allowed,
        "keys are apart"
    );
    let counted = store.rate_count("dest:a", window, T0).await.unwrap();
    assert_eq!(counted.count, 5);
    let later = T0.plus_millis(window);
    let slid = store.rate_hit("dest:a", window, 5, later).await.unwrap();
    assert!(slid.allowed, "events older than the window are forgotten");
    assert_eq!(slid.count, 1);
    assert_eq!(
        store
            .rate_count("dest:a", window, later)
            .await
            .unwrap()
            .count,
        1
    );
}

/// A quarantine is created once while active, expires by itself, can be lifted, and a new
/// one may replace an expired one.
pub async fn quarantines_expire_and_lift<S: Store>(store: S) {
    let any_service = ServiceId::generate();
    let q = |prefix: &str, at: Timestamp| otpd_core::store::Quarantine {
        prefix: prefix.into(),
        service: None,
        reason: "test".into(),
        until: at.plus_seconds(3600),
        created_at: at,
    };
    assert!(store.quarantine(&q("+44740", T0)).await.unwrap());
    assert!(
        !store
            .quarantine(&q("+44740", T0.plus_seconds(10)))
            .await
            .unwrap(),
        "already active"
    );
    assert!(
        store
            .quarantine(&q("+33612", T0.plus_seconds(5)))
            .await
            .unwrap()
    );
    let active = store.quarantines(T0.plus_seconds(20)).await.unwrap();
    let prefixes: Vec<_> = active.iter().map(|q| q.prefix.as_str()).collect();
    assert_eq!(prefixes, ["+33612", "+44740"], "newest first");
    assert_eq!(
        store
            .active_quarantine("+44740", any_service, T0.plus_seconds(20))
            .await
            .unwrap(),
        Some(q("+44740", T0))
    );
    assert!(
        store
            .active_quarantine("+44740", any_service, T0.plus_seconds(3600))
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        store
            .quarantine(&q("+44740", T0.plus_seconds(3600)))
            .await
            .unwrap(),
        "replaces an expired one"
    );
    assert!(store.lift_quarantine("+33612", None).await.unwrap());
    assert!(!store.lift_quarantine("+33612", None).await.unwrap());
    assert!(
        store
            .active_quarantine("+33612", any_service, T0.plus_seconds(20))
            .await
            .unwrap()
            .is_none()
    );
}

/// A service's quarantine stops only that service's starts; a server-wide one stops every
/// service's; each is created, listed and lifted on its own.
pub async fn quarantines_are_per_service_or_server_wide<S: Store>(store: S) {
    let (a, b, c) = (
        ServiceId::generate(),
        ServiceId::generate(),
        ServiceId::generate(),
    );
    let q = |service: Option<ServiceId>, at: Timestamp| otpd_core::store::Quarantine {
        prefix: "+44909".into(),
        service,
        reason: "test".into(),
        until: at.plus_seconds(3600),
        created_at: at,
    };
    let now = T0.plus_seconds(20);
    assert!(store.quarantine(&q(Some(a), T0)).await.unwrap());
    assert_eq!(
        store.active_quarantine("+44909", a, now).await.unwrap(),
        Some(q(Some(a), T0))
    );
    assert_eq!(
        store.active_quarantine("+44909", b, now).await.unwrap(),
        None,
        "another service's starts are not stopped"
    );
    assert!(
        store
            .quarantine(&q(Some(b), T0.plus_seconds(1)))
            .await
            .unwrap(),
        "each service has its own"
    );
    assert!(
        store
            .quarantine(&q(None, T0.plus_seconds(2)))
            .await
            .unwrap()
    );
    assert_eq!(
        store.active_quarantine("+44909", c, now).await.unwrap(),
        Some(q(None, T0.plus_seconds(2))),
        "a server-wide quarantine stops every service"
    );
    let scopes: Vec<_> = store
        .quarantines(now)
        .await
        .unwrap()
        .iter()
        .map(|q| q.service)
        .collect();
    assert_eq!(scopes, [None, Some(b), Some(a)], "newest first");
    assert!(store.lift_quarantine("+44909", Some(a)).await.unwrap());
    assert!(!store.lift_quarantine("+44909", Some(a)).await.unwrap());
    assert!(store.lift_quarantine("+44909", None).await.unwrap());
    assert_eq!(
        store.active_quarantine("+44909", a, now).await.unwrap(),
        None
    );
    assert_eq!(
        store.active_quarantine("+44909", b, now).await.unwrap(),
        Some(q(Some(b), T0.plus_seconds(1))),
        "lifting one scope leaves the others"
    );
}

/// An account's auth token hash is replaced; its API keys are listed oldest first and
/// revoked only by their own account.
pub async fn auth_tokens_rotate_and_api_keys_revoke<S: Store>(store: S) {
    let mine = account(&store).await;
    let theirs = account(&store).await;
    assert!(store.rotate_auth_token(mine, [4; 32]).await.unwrap());
    assert_eq!(
        store.account(mine).await.unwrap().unwrap().auth_token_hash,
        [4; 32]
    );
    assert!(
        !store
            .rotate_auth_token(AccountId::generate(), [4; 32])
            .await
            .unwrap()
    );
    let key = |account: AccountId, name: &str, at: Timestamp| ApiKeyRecord {
        id: ApiKeyId::generate(),
        account_id: account,
        name: name.into(),
        secret_hash: unique_hash(),
        created_at: at,
    };
    let first = key(mine, "first", T0);
    let second = key(mine, "second", T0.plus_seconds(1));
    let other = key(theirs, "other", T0);
    for k in [&second, &first, &other] {
        store.create_api_key(k).await.unwrap();
    }
    assert_eq!(
        store.api_keys(mine).await.unwrap(),
        [first.clone(), second.clone()]
    );
    assert!(
        !store.revoke_api_key(mine, other.id).await.unwrap(),
        "another account's key"
    );
    assert_eq!(store.api_key(other.id).await.unwrap(), Some(other));
    assert!(store.revoke_api_key(mine, first.id).await.unwrap());
    assert!(!store.revoke_api_key(mine, first.id).await.unwrap());
    assert_eq!(store.api_key(first.id).await.unwrap(), None);
    assert_eq!(store.api_keys(mine).await.unwrap(), [second]);
}

/// Safe-list entries are per account, added once, found and removed.
pub async fn safe_numbers_are_per_account<S: Store>(store: S) {
    let service = service(&store).await;
    let account = store.service(service).await.unwrap().unwrap().account_id;
    let entry = otpd_core::store::SafeNumber {
        id: uuid::Uuid::now_v7(),
        phone: "+14155552671".into(),
        created_at: T0,
    };
    assert!(!store.has_safe_numbers(account).await.unwrap());
    assert_eq!(store.add_safe_number(account, &entry).await.unwrap(), entry);
    assert!(store.has_safe_numbers(account).await.unwrap());
    let again = otpd_core::store::SafeNumber {
        id: uuid::Uuid::now_v7(),
        ..entry.clone()
    };
    assert_eq!(
        store.add_safe_number(account, &again).await.unwrap(),
        entry,
        "an existing entry is kept"
    );
    assert_eq!(
        store.safe_number(account, "+14155552671").await.unwrap(),
        Some(entry)
    );
    let other = AccountId::generate();
    assert!(
        store
            .safe_number(other, "+14155552671")
            .await
            .unwrap()
            .is_none()
    );
    assert!(!store.has_safe_numbers(other).await.unwrap(), "per account");
    assert!(
        store
            .remove_safe_number(account, "+14155552671")
            .await
            .unwrap()
    );
    assert!(!store.has_safe_numbers(account).await.unwrap(), "emptied");
    assert!(
        !store
            .remove_safe_number(account, "+14155552671")
            .await
            .unwrap()
    );
    assert!(
        store
            .safe_number(account, "+14155552671")
            .await
            .unwrap()
            .is_none()
    );
}

/// Every change writes exactly one event with it: a start (and its queued delivery), a wrong
/// code, an approval, a sent and a delivered delivery, a cancel, a sweep-found expiry.
/// Events fan out to the webhooks enabled when they are written: none before the first one
/// is created, every event while it is enabled, none once it is disabled (a store may cache
/// whether any webhook exists; this is what it must keep right).
pub async fn webhooks_get_the_events_written_while_enabled<S: Store>(store: S) {
    use otpd_core::events::Webhook;
    let service = service(&store).await;
    let (before, d) = sample(service, 5, None);
    store.create_verification(&before, &d).await.unwrap();
    let mut webhook = Webhook {
        id: uuid::Uuid::now_v7(),
        service_id: service,
        url: "http://127.0.0.1:9/hook".into(),
        event_types: vec!["*".into()],
        enabled: true,
        friendly_name: "hook".into(),
        created_at: T0,
        updated_at: T0,
    };
    store.create_webhook(&webhook).await.unwrap();
    assert!(store.webhook_log(webhook.id, 100).await.unwrap().is_empty());
    let (during, d) = sample(service, 5, None);
    store.create_verification(&during, &d).await.unwrap();
    let log = store.webhook_log(webhook.id, 100).await.unwrap();
    assert_eq!(log.len(), 2, "verification.started and delivery.queued");
    webhook.enabled = false;
    assert!(store.update_webhook(&webhook).await.unwrap());
    let (after, d) = sample(service, 5, None);
    store.create_verification(&after, &d).await.unwrap();
    assert_eq!(store.webhook_log(webhook.id, 100).await.unwrap().len(), 2);
    webhook.enabled = true;
    assert!(store.update_webhook(&webhook).await.unwrap());
    store
        .check_code(after.id, service, typed(after.id, "000000"), T0)
        .await
        .unwrap();
    assert_eq!(store.webhook_log(webhook.id, 100).await.unwrap().len(), 3);
}

pub async fn each_change_writes_one_event<S: Store>(store: S) {
    use otpd_core::events::EventFilter;
    let service = service(&store).await;
    let account = store.service(service).await.unwrap().unwrap().account_id;
    let kinds = |events: Vec<otpd_core::events::Event>| -> Vec<String> {
        events.into_iter().map(|e| e.kind).collect()
    };
    let filter = |verification: VerificationId| EventFilter {
        account,
        service: Some(service),
        verification: Some(verification),
        kind: None,
        since: None,
        until: None,
        after: None,
        limit: 100,
    };
    let (v, d) = sample(service, 5, None);
    store.create_verification(&v, &d).await.unwrap();
    store
        .check_code(v.id, service, typed(v.id, "000000"), T0)
        .await
        .unwrap();
    let priced = DeliveryUpdate {
        segments: Some(2),
        price: Some(0.0079),
        error_code: Some("30007".into()),
        ..sent_by("twilio", "SM-ev")
    };
    store.update_delivery(d.id, &priced, T0).await.unwrap();
    let sent = store.deliveries(v.id).await.unwrap().remove(0);
    let delivered = ReceiptUpdate {
        provider: "twilio".into(),
        provider_ref: "SM-ev".into(),
        status: DeliveryStatus::Delivered,
        error_code: None,
        price: None,
        segments: None,
    };
    store.record_receipt(&delivered, T0).await.unwrap();
    store.record_receipt(&delivered, T0).await.unwrap();
    store
        .check_code(v.id, service, typed(v.id, CODE), T0)
        .await
        .unwrap();
    store
        .check_code(v.id, service, typed(v.id, CODE), T0)
        .await
        .unwrap();
    let events = store.events(&filter(v.id)).await.unwrap();
    assert_eq!(
        kinds(events.clone()),
        [
            "verification.started",
            "delivery.queued",
            "verification.check_failed",
            "delivery.sent",
            "delivery.delivered",
            "verification.approved"
        ],
        "once each, in order; repeated receipts and checks add nothing"
    );
    assert_eq!(events[2].data["attempts"], 1);
    assert_eq!(events[4].data["provider"], "twilio");
    assert_eq!(
        events[3].data,
        serde_json::to_value(otpd_core::events::DeliveryEventData::of(&sent)).unwrap(),
        "a delivery event holds the attempt's state after the change, every field"
    );
    let keys: Vec<String> = events
        .iter()
        .flat_map(|e| {
            e.data
                .as_object()
                .unwrap()
                .keys()
                .cloned()
                .collect::<Vec<_>>()
        })
        .collect();
    assert!(
        keys.iter()
            .all(|k| k == "errorCode" || !k.to_lowercase().contains("code")),
        "no code in events: {keys:?}"
    );

    let (canceled, d2) = sample(service, 5, None);
    store.create_verification(&canceled, &d2).await.unwrap();
    store
        .set_status(canceled.id, service, VerificationStatus::Canceled, T0)
        .await
        .unwrap();
    let (expiring, d3) = sample(service, 5, None);
    store.create_verification(&expiring, &d3).await.unwrap();
    let later = T0.plus_seconds(600);
    let expired = store.expire_due(later, 100).await.unwrap();
    let ids: Vec<_> = expired.iter().map(|v| v.id).collect();
    assert!(ids.contains(&expiring.id) && !ids.contains(&canceled.id) && !ids.contains(&v.id));
    assert!(
        store.expire_due(later, 100).await.unwrap().is_empty(),
        "once"
    );
    let last = |events: Vec<otpd_core::events::Event>| events.last().unwrap().kind.clone();
    assert_eq!(
        last(store.events(&filter(canceled.id)).await.unwrap()),
        "verification.canceled"
    );
    assert_eq!(
        last(store.events(&filter(expiring.id)).await.unwrap()),
        "verification.expired"
    );

    let page = EventFilter {
        verification: None,
        kind: Some("verification.started".into()),
        limit: 2,
        ..filter(v.id)
    };
    let first = store.events(&page).await.unwrap();
    assert_eq!(first.len(), 2);
    let rest = store
        .events(&EventFilter {
            after: Some(first[1].id),
            ..page.clone()
        })
        .await
        .unwrap();
    assert_eq!(rest.len(), 1, "three starts in all, paged by id");
    let stranger = EventFilter {
        account: AccountId::generate(),
        ..page
    };
    assert!(
        store.events(&stranger).await.unwrap().is_empty(),
        "per account"
    );
}

/// Spending stops exactly at the cap, whatever the race.
pub async fn spend_never_passes_the_cap<S: Store + Clone>(store: S) {
    let tasks: Vec<_> = (0..30)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move { store.add_spend("budget:s:1", 0.25, 5.0).await.unwrap() })
        })
        .collect();
    let mut accepted = 0;
    for task in tasks {
        accepted += usize::from(task.await.unwrap().is_some());
    }
    assert_eq!(accepted, 20, "5.00 / 0.25");
    assert_eq!(
        store.add_spend("budget:s:1", 0.25, 5.0).await.unwrap(),
        None
    );
    assert_eq!(
        store.add_spend("budget:s:2", 6.0, 5.0).await.unwrap(),
        None,
        "one spend over the cap"
    );
    assert_eq!(
        store.add_spend("budget:s:2", 1.5, 5.0).await.unwrap(),
        Some(1.5)
    );
}

/// A start of a fresh sample verification (see [`sample`]) under the given rules.
pub fn start_plan(service: ServiceId, cooldown_seconds: u32, limits: Vec<LimitHit>) -> StartPlan {
    let (verification, delivery) = sample(service, 5, None);
    StartPlan {
        verification,
        delivery,
        cooldown_seconds,
        lockout: None,
        limits,
        spend: None,
    }
}

fn limit(key: &str, max: u32) -> LimitHit {
    LimitHit {
        key: key.to_string(),
        window_ms: 600_000,
        max,
    }
}

/// Concurrent starts to one recipient: the limit lets exactly its maximum through and the
/// cooldown exactly one, whatever the race; refused starts are not counted.
pub async fn concurrent_starts_pass_limits_and_cooldown_exactly<S: Store + Clone>(store: S) {
    let service = service(&store).await;
    let race = |cooldown: u32, key: &'static str| {
        let tasks: Vec<_> = (0..20)
            .map(|_| {
                let store = store.clone();
                let plan = start_plan(service, cooldown, vec![limit(key, 5)]);
                tokio::spawn(async move { store.start_verification(&plan).await.unwrap() })
            })
            .collect();
        async move {
            let mut decisions = Vec::new();
            for task in tasks {
                decisions.push(task.await.unwrap());
            }
            decisions
        }
    };
    let decisions = race(0, "dest:race").await;
    let created = decisions
        .iter()
        .filter(|d| **d == StartDecision::Created)
        .count();
    assert_eq!(created, 5, "exactly the limit: {decisions:?}");
    assert!(decisions.iter().all(|d| *d == StartDecision::Created
        || *d
            == StartDecision::Limited {
                index: 0,
                frees_at: Some(T0.plus_millis(600_000))
            }));
    assert_eq!(
        store
            .rate_count("dest:race", 600_000, T0)
            .await
            .unwrap()
            .count,
        5,
        "refused starts are not counted"
    );

    let other = self::service(&store).await;
    let tasks: Vec<_> = (0..10)
        .map(|_| {
            let store = store.clone();
            let plan = start_plan(other, 30, Vec::new());
            tokio::spawn(async move { store.start_verification(&plan).await.unwrap() })
        })
        .collect();
    let mut decisions = Vec::new();
    for task in tasks {
        decisions.push(task.await.unwrap());
    }
    let created = decisions
        .iter()
        .filter(|d| **d == StartDecision::Created)
        .count();
    assert_eq!(created, 1, "one send per cooldown: {decisions:?}");
    assert!(decisions.contains(&StartDecision::Cooldown {
        allowed_at: T0.plus_seconds(30)
    }));
    let mut later = start_plan(other, 30, Vec::new());
    later.verification.created_at = T0.plus_seconds(30);
    later.verification.expires_at = T0.plus_seconds(630);
    assert_eq!(
        store.start_verification(&later).await.unwrap(),
        StartDecision::Created,
        "allowed again once the cooldown has passed"
    );
}

/// A start refused by the lockout, a limit or the budget writes nothing: no verification,
/// no counted limit, no spend. One that goes through writes the verification, its delivery
/// and both events, as `create_verification` does.
pub async fn refused_starts_write_nothing<S: Store>(store: S) {
    let service = service(&store).await;
    for _ in 0..3 {
        store
            .rate_hit("fail:x", 600_000, u32::MAX, T0)
            .await
            .unwrap();
    }
    let mut locked = start_plan(service, 0, vec![limit("dest:x", 5)]);
    locked.lockout = Some(limit("fail:x", 3));
    assert_eq!(
        store.start_verification(&locked).await.unwrap(),
        StartDecision::LockedOut {
            frees_at: Some(T0.plus_millis(600_000))
        }
    );
    let limited = start_plan(service, 0, vec![limit("dest:x", 5), limit("ip:x", 0)]);
    assert_eq!(
        store.start_verification(&limited).await.unwrap(),
        StartDecision::Limited {
            index: 1,
            frees_at: None
        }
    );
    let mut broke = start_plan(service, 0, vec![limit("dest:x", 5)]);
    broke.spend = Some(Spend {
        key: "budget:x".into(),
        amount: 0.045,
        cap: 0.01,
    });
    assert_eq!(
        store.start_verification(&broke).await.unwrap(),
        StartDecision::OverBudget
    );
    for plan in [&locked, &limited, &broke] {
        assert_eq!(
            store.verification(plan.verification.id).await.unwrap(),
            None
        );
    }
    assert_eq!(
        store.rate_count("dest:x", 600_000, T0).await.unwrap().count,
        0,
        "refused starts are not counted"
    );
    let mut paid = start_plan(service, 0, vec![limit("dest:x", 5)]);
    paid.spend = Some(Spend {
        key: "budget:x".into(),
        amount: 0.045,
        cap: 0.05,
    });
    assert_eq!(
        store.start_verification(&paid).await.unwrap(),
        StartDecision::Created
    );
    assert_eq!(
        store.verification(paid.verification.id).await.unwrap(),
        Some(paid.verification.clone())
    );
    assert_eq!(
        store.deliveries(paid.verification.id).await.unwrap(),
        vec![paid.delivery.clone()]
    );
    assert_eq!(
        store.rate_count("dest:x", 600_000, T0).await.unwrap().count,
        1
    );
    assert_eq!(
        store.add_spend("budget:x", 0.0, 0.05).await.unwrap(),
        Some(0.045),
        "the spend was added once"
    );
    let account = store.service(service).await.unwrap().unwrap().account_id;
    let kinds: Vec<String> = store
        .events(&otpd_core::events::EventFilter {
            account,
            service: None,
            verification: Some(paid.verification.id),
            kind: None,
            since: None,
            until: None,
            after: None,
            limit: 10,
        })
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.kind)
        .collect();
    assert_eq!(kinds, ["verification.started", "delivery.queued"]);
}

/// A check counts a wrong code under its failure counter and an approval under its approval
/// counter, in the same atomic step, forgetting events older than the window.
pub async fn checks_count_failures_and_approvals<S: Store>(store: S) {
    let service = service(&store).await;
    let (v, d) = sample(service, 5, None);
    store.create_verification(&v, &d).await.unwrap();
    let window = 600_000;
    // The store keys the counters by the verification's destination, with these rules.
    let counting = otpd_core::CheckCounting {
        failures_window_ms: Some(window),
        approvals: Some((window, 3)),
    };
    let keys = counting.counters(&v);
    let (failures, _) = keys.on_failure.clone().expect("a failure counter");
    let (approvals, _) = keys.on_approval.clone().expect("an approval counter");
    assert!(failures.contains(v.to.as_str()) && approvals.ends_with(&v.to.as_str()[..6]));
    // An old failure, outside the window by the time of the checks below.
    store
        .rate_hit(&failures, window, u32::MAX, T0.plus_millis(-window - 1))
        .await
        .unwrap();
    let counted = |code: &str| Candidate {
        counting,
        ..typed(v.id, code)
    };
    for _ in 0..2 {
        let wrong = store
            .check_code(v.id, service, counted("000000"), T0)
            .await
            .unwrap();
        assert_eq!(wrong.outcome, CheckOutcome::WrongCode);
    }
    let right = store
        .check_code(v.id, service, counted(CODE), T0)
        .await
        .unwrap();
    assert_eq!(right.outcome, CheckOutcome::Approved);
    // A check of an approved verification counts nothing.
    store
        .check_code(v.id, service, counted("000000"), T0)
        .await
        .unwrap();
    assert_eq!(
        store.rate_count(&failures, window, T0).await.unwrap().count,
        2
    );
    assert_eq!(
        store
            .rate_count(&approvals, window, T0)
            .await
            .unwrap()
            .count,
        1
    );
    assert_eq!(
        store
            .rate_count(&failures, 10 * window, T0)
            .await
            .unwrap()
            .count,
        2,
        "the event older than the window was forgotten"
    );
}

/// Services are created, listed in pages per account, updated and deleted.
pub async fn services_are_managed_per_account<S: Store>(store: S) {
    let account_id = account(&store).await;
    let other = account(&store).await;
    let mut ids = Vec::new();
    for n in 0..5 {
        let record = ServiceRecord {
            id: ServiceId::generate(),
            account_id,
            name: format!("service {n}"),
            settings: OtpSettings::default(),
            created_at: T0,
            updated_at: T0,
        };
        store.create_service(&record).await.unwrap();
        ids.push(record.id);
    }
    let first = store.services(account_id, None, 2).await.unwrap();
    assert_eq!(first.iter().map(|s| s.id).collect::<Vec<_>>(), ids[..2]);
    let rest = store.services(account_id, Some(ids[1]), 10).await.unwrap();
    assert_eq!(rest.iter().map(|s| s.id).collect::<Vec<_>>(), ids[2..]);
    assert!(store.services(other, None, 10).await.unwrap().is_empty());

    let mut record = store.service(ids[0]).await.unwrap().unwrap();
    record.name = "renamed".into();
    record.settings.options.custom_code_enabled = true;
    record.updated_at = T0.plus_seconds(5);
    assert!(store.update_service(&record).await.unwrap());
    assert_eq!(store.service(ids[0]).await.unwrap(), Some(record));
    assert!(store.delete_service(ids[0]).await.unwrap());
    assert!(!store.delete_service(ids[0]).await.unwrap());
    assert_eq!(store.service(ids[0]).await.unwrap(), None);
    assert_eq!(store.services(account_id, None, 10).await.unwrap().len(), 4);
}

/// Applications, accounts, API keys and tokens are found by id or hash; rotation revokes.
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
    assert!(store.account(app.account_id).await.unwrap().is_some());
    assert_eq!(store.account(AccountId::generate()).await.unwrap(), None);
    let key = ApiKeyRecord {
        id: ApiKeyId::generate(),
        account_id: app.account_id,
        name: "ci".into(),
        secret_hash: [6; 32],
        created_at: T0,
    };
    store.create_api_key(&key).await.unwrap();
    assert_eq!(store.api_key(key.id).await.unwrap(), Some(key));
    assert_eq!(store.api_key(ApiKeyId::generate()).await.unwrap(), None);

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

/// Expands to one `#[tokio::test]` per behaviour. `$make` is an async expression producing
/// `Some((store, guard))` — a fresh store and whatever keeps its resources alive (a temporary
/// directory, a schema) — or `None` when the backend is not available here (the factory says
/// so; the behaviour is then skipped).
#[macro_export]
macro_rules! store_behaviour_tests {
    ($make:expr) => {
        $crate::store_behaviour_tests!(@each $make;
            verification_round_trips,
            right_code_approves_once,
            psd2_checks_need_amount_and_payee,
            wrong_codes_count_until_max,
            expiry_is_decided_by_the_given_time,
            other_services_cannot_touch_a_verification,
            status_changes_only_from_pending,
            concurrent_right_codes_approve_exactly_once,
            concurrent_wrong_codes_count_exactly_max,
            resends_are_counted_and_limited,
            status_changes_queue_callbacks,
            abandoned_callbacks_stay_abandoned,
            stale_deliveries_are_claimed_once,
            receipts_only_move_forward,
            a_first_outcome_is_seen_by_what_follows,
            fallbacks_are_due_once,
            rate_limits_are_exact_and_slide,
            quarantines_expire_and_lift,
            quarantines_are_per_service_or_server_wide,
            auth_tokens_rotate_and_api_keys_revoke,
            spend_never_passes_the_cap,
            concurrent_starts_pass_limits_and_cooldown_exactly,
            refused_starts_write_nothing,
            checks_count_failures_and_approvals,
            safe_numbers_are_per_account,
            each_change_writes_one_event,
            webhooks_get_the_events_written_while_enabled,
            services_are_managed_per_account,
            credentials_round_trip
        );
    };
    (@each $make:expr; $($name:ident),*) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $name() {
                let Some((store, _guard)) = $make.await else {
                    return;
                };
                $crate::$name(store).await;
            }
        )*
    };
}
