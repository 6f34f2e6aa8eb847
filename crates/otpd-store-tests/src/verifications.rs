//! Behaviours of verifications: the atomic start, the atomic check, status changes and resends.

use otpd_core::store::{LimitHit, ResendOutcome, Spend, StartDecision, StartPlan};
use otpd_core::verification::Channel;
use otpd_core::{
    Candidate, CheckOutcome, Recipient, ServiceId, StatusChange, Store, VerificationId,
    VerificationStatus,
};

use crate::support::*;

/// A verification reads back exactly as written, email recipients and PSD2 fields included.
pub(crate) async fn verification_round_trips<S: Store>(store: S) {
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
pub(crate) async fn right_code_approves_once<S: Store>(store: S) {
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
pub(crate) async fn psd2_checks_need_amount_and_payee<S: Store>(store: S) {
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
pub(crate) async fn wrong_codes_count_until_max<S: Store>(store: S) {
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
pub(crate) async fn expiry_is_decided_by_the_given_time<S: Store>(store: S) {
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
pub(crate) async fn other_services_cannot_touch_a_verification<S: Store>(store: S) {
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
pub(crate) async fn status_changes_only_from_pending<S: Store>(store: S) {
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
pub(crate) async fn concurrent_right_codes_approve_exactly_once<S: Store + Clone>(store: S) {
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
pub(crate) async fn concurrent_wrong_codes_count_exactly_max<S: Store + Clone>(store: S) {
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
pub(crate) async fn resends_are_counted_and_limited<S: Store + Clone>(store: S) {
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

/// Concurrent starts to one recipient: the limit lets exactly its maximum through and the
/// cooldown exactly one, whatever the race; refused starts are not counted.
pub(crate) async fn concurrent_starts_pass_limits_and_cooldown_exactly<S: Store + Clone>(store: S) {
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
pub(crate) async fn refused_starts_write_nothing<S: Store>(store: S) {
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
pub(crate) async fn checks_count_failures_and_approvals<S: Store>(store: S) {
    let service = service(&store).await;
    let (v, d) = sample(service, 5, None);
    store.create_verification(&v, &d).await.unwrap();
    let window = 600_000;
    // The store keys the counters by the verification's destination, with these rules.
    let counting = otpd_core::CheckCounting {
        failures_window_ms: Some(window),
        approvals: Some((window, 3)),
    };
    let keys = counting.counters(&v, &crate::vault());
    let (failures, _) = keys.on_failure.clone().expect("a failure counter");
    let (approvals, _) = keys.on_approval.clone().expect("an approval counter");
    let index = crate::vault().blind(v.to.as_str()).to_hex();
    assert!(failures.ends_with(&index) && approvals.ends_with(&v.to.as_str()[..6]));
    assert!(
        !failures.contains(v.to.as_str()),
        "no number in a counter key"
    );
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
