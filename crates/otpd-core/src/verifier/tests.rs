//! The engine over the in-memory fake: one test per rule of "The order of checks on a start"
//! (docs/security.md) and per outcome of a check.

use std::sync::{Arc, Mutex};

use super::fake::{FakeDispatch, FakeStore, run};
use super::{StartRequest, Started, Verifier, VerifyError};
use crate::abuse::{
    AbusePolicy, Blocked, Limit, LimitScope, ProgrammableRateLimit, PumpingPolicy, Quarantine,
    QuarantineMode, RateBucket, SafeNumber, failure_key,
};
use crate::clock::{Clock, ManualClock, Timestamp};
use crate::code::{CodeHasher, OtpCode, ServerSecret};
use crate::delivery::DeliveryStatus;
use crate::ids::{AccountId, ServiceId, VerificationId};
use crate::recipient::{Email, Recipient};
use crate::settings::{MaxAttempts, OtpSettings};
use crate::store::{StartDecision, TenantStore};
use crate::tenants::ServiceRecord;
use crate::verification::{CheckOutcome, VerificationStatus};
use crate::{Channel, E164Phone};

/// A UK mobile: prefix `+44740` for the pumping defence.
const MOBILE: &str = "+447400123456";

struct Harness {
    verifier: Verifier<FakeStore, ManualClock>,
    store: FakeStore,
    dispatch: Arc<FakeDispatch<ManualClock>>,
    clock: ManualClock,
    service: ServiceRecord,
}

/// No protections unless a test turns them on, so each test sees only its own rule.
fn no_protections() -> AbusePolicy {
    AbusePolicy {
        per_destination: None,
        per_client_ip: None,
        per_country_default: None,
        per_country: Default::default(),
        failed_checks: None,
        pumping: None,
    }
}

fn limit(max: u32) -> Option<Limit> {
    Some(Limit {
        max,
        window_seconds: 600,
    })
}

fn harness(settings: OtpSettings, abuse: AbusePolicy) -> Harness {
    harness_serving(settings, abuse, true)
}

fn harness_serving(settings: OtpSettings, abuse: AbusePolicy, serves: bool) -> Harness {
    let clock = ManualClock::new(Timestamp(1_800_000_000_000));
    let store = FakeStore::default();
    let dispatch = Arc::new(FakeDispatch {
        jobs: Mutex::new(Vec::new()),
        serves,
        clock: clock.clone(),
    });
    let service = ServiceRecord {
        id: ServiceId::generate(),
        account_id: AccountId::generate(),
        name: "Acme".into(),
        settings,
        created_at: Timestamp(0),
        updated_at: Timestamp(0),
    };
    run(store.create_service(&service)).expect("the fake stores it");
    let verifier = Verifier::new(
        store.clone(),
        clock.clone(),
        CodeHasher::new(ServerSecret::from_bytes([7; 32])),
        dispatch.clone(),
        Default::default(),
    )
    .with_abuse_policy(abuse);
    Harness {
        verifier,
        store,
        dispatch,
        clock,
        service,
    }
}

fn to(number: &str) -> StartRequest {
    let (phone, country) = E164Phone::parse(number, None).expect("a valid test number");
    StartRequest {
        to: Some((Recipient::Phone(phone), Some(country))),
        ..Default::default()
    }
}

impl Harness {
    fn start(&self, request: StartRequest) -> Result<Started, VerifyError> {
        run(self.verifier.start(&self.service, request))
    }

    fn check(&self, id: VerificationId, typed: &str) -> crate::store::CheckResult {
        run(self.verifier.check(self.service.id, id, typed, None, None)).expect("the fake answers")
    }

    /// Starts to [`MOBILE`] and returns the verification's id and the code sent.
    fn started(&self) -> (VerificationId, OtpCode) {
        let started = self.start(to(MOBILE)).expect("the start goes through");
        let jobs = self.dispatch.jobs();
        let job = jobs.last().expect("the code was dispatched");
        (started.verification().id, job.code.clone())
    }

    fn quarantine(&self, prefix: &str) {
        self.store.state().quarantines.push(Quarantine {
            prefix: prefix.into(),
            service: Some(self.service.id),
            reason: "test".into(),
            until: Timestamp(i64::MAX / 2),
            created_at: Timestamp(0),
        });
    }

    /// Asserts a refused start left nothing behind: no verification, no delivery, no job.
    fn assert_nothing_sent(&self) {
        let state = self.store.state();
        assert!(state.verifications.is_empty(), "a verification was written");
        assert!(state.deliveries.is_empty(), "a delivery was written");
        assert!(self.dispatch.jobs().is_empty(), "a job was dispatched");
    }
}

fn with_pumping(mode: QuarantineMode) -> AbusePolicy {
    AbusePolicy {
        pumping: Some(PumpingPolicy {
            mode,
            ..PumpingPolicy::default()
        }),
        ..no_protections()
    }
}

// ---- 1. Destination rules (safe-listed numbers skip them) ----

#[test]
fn blocked_country_is_refused_before_the_pumping_defence() {
    let h = harness(
        OtpSettings {
            blocked_countries: vec!["GB".into()],
            ..Default::default()
        },
        with_pumping(QuarantineMode::Block),
    );
    h.quarantine("+44740");
    let refused = h.start(to(MOBILE));
    assert!(matches!(
        refused,
        Err(VerifyError::Blocked(Blocked::Country))
    ));
    assert!(h.store.state().plans.is_empty());
    h.assert_nothing_sent();
}

#[test]
fn country_outside_the_allowed_list_is_refused() {
    let h = harness(
        OtpSettings {
            allowed_countries: vec!["FR".into()],
            ..Default::default()
        },
        no_protections(),
    );
    let refused = h.start(to(MOBILE));
    assert!(matches!(
        refused,
        Err(VerifyError::Blocked(Blocked::Country))
    ));
    assert!(h.start(to("+33612345678")).is_ok());
}

#[test]
fn blocked_prefix_is_refused() {
    let h = harness(
        OtpSettings {
            blocked_prefixes: vec!["+4474".into()],
            ..Default::default()
        },
        no_protections(),
    );
    let refused = h.start(to(MOBILE));
    assert!(matches!(
        refused,
        Err(VerifyError::Blocked(Blocked::BlockList))
    ));
    h.assert_nothing_sent();
}

#[test]
fn costly_number_is_refused_unless_the_service_allows_them() {
    let h = harness(OtpSettings::default(), no_protections());
    let refused = h.start(to("+449098765432"));
    assert!(matches!(
        refused,
        Err(VerifyError::Blocked(Blocked::CostlyNumber))
    ));
    h.assert_nothing_sent();
    let allowing = harness(
        OtpSettings {
            allow_costly_numbers: true,
            ..Default::default()
        },
        no_protections(),
    );
    assert!(allowing.start(to("+449098765432")).is_ok());
}

#[test]
fn sms_to_a_landline_is_refused_when_the_service_skips_them() {
    let mut settings = OtpSettings::default();
    settings.options.skip_sms_to_landlines = true;
    let h = harness(settings, no_protections());
    let refused = h.start(to("+441212345678"));
    assert!(matches!(
        refused,
        Err(VerifyError::Blocked(Blocked::Landline))
    ));
    let call = StartRequest {
        channel: Some(Channel::Call),
        ..to("+441212345678")
    };
    assert!(h.start(call).is_ok(), "only SMS skips landlines");
}

#[test]
fn safe_listed_number_skips_destination_rules_pumping_lockout_and_limits_not_the_cooldown() {
    let h = harness(
        OtpSettings {
            blocked_countries: vec!["GB".into()],
            safe_list: vec![MOBILE.into()],
            resend_cooldown_seconds: 30,
            ..Default::default()
        },
        AbusePolicy {
            failed_checks: limit(3),
            ..AbusePolicy::default()
        },
    );
    h.quarantine("+44740");
    let request = StartRequest {
        client_ip: Some("192.0.2.1".into()),
        ..to(MOBILE)
    };
    assert!(h.start(request).is_ok());
    let state = h.store.state();
    let plan = state.plans.last().expect("a plan");
    assert!(plan.limits.is_empty(), "limits: {:?}", plan.limits);
    assert_eq!(plan.lockout, None);
    assert_eq!(
        plan.cooldown_seconds, 30,
        "the cooldown applies to safe numbers too"
    );
}

#[test]
fn account_safe_list_counts_like_the_services() {
    let h = harness(
        OtpSettings {
            blocked_countries: vec!["GB".into()],
            ..Default::default()
        },
        AbusePolicy::default(),
    );
    h.store.state().safe_numbers.push((
        h.service.account_id,
        SafeNumber {
            id: uuid::Uuid::nil(),
            phone: MOBILE.into(),
            created_at: Timestamp(0),
        },
    ));
    assert!(h.start(to(MOBILE)).is_ok());
    assert!(h.store.state().plans[0].limits.is_empty());
}

// ---- 2. SMS-pumping defence ----

#[test]
fn quarantined_prefix_is_refused_in_block_mode() {
    let h = harness(OtpSettings::default(), with_pumping(QuarantineMode::Block));
    h.quarantine("+44740");
    let refused = h.start(to(MOBILE));
    assert!(matches!(
        refused,
        Err(VerifyError::Blocked(Blocked::Pumping))
    ));
    assert!(h.store.state().plans.is_empty());
    h.assert_nothing_sent();
    let blocked = &h.store.state().events;
    assert_eq!(blocked.len(), 1);
    assert_eq!(blocked[0].kind, "verification.blocked");
    assert_eq!(blocked[0].data["reason"], "pumping");
}

#[test]
fn quarantined_prefix_in_shadow_mode_answers_without_dispatching() {
    let h = harness(OtpSettings::default(), with_pumping(QuarantineMode::Shadow));
    h.quarantine("+44740");
    let started = h.start(to(MOBILE)).expect("answered as if sent");
    assert!(
        h.dispatch.jobs().is_empty(),
        "a shadow-blocked code was sent"
    );
    assert_eq!(started.attempt().status, DeliveryStatus::Failed);
    assert_eq!(
        started.attempt().error_code.as_deref(),
        Some("shadow_blocked")
    );
    let updates = &h.store.state().delivery_updates;
    assert_eq!(updates.len(), 1);
    assert_eq!(updates[0].1.provider.as_deref(), Some("shadow"));
}

#[test]
fn low_approval_rate_quarantines_the_prefix_now() {
    let h = harness(OtpSettings::default(), with_pumping(QuarantineMode::Block));
    let key = crate::abuse::pumping_key("sent", h.service.id, "+44740");
    let now = h.clock.now();
    h.store.state().rates.insert(key, vec![now; 20]);
    let refused = h.start(to(MOBILE));
    assert!(matches!(
        refused,
        Err(VerifyError::Blocked(Blocked::Pumping))
    ));
    let quarantines = &h.store.state().quarantines;
    assert_eq!(quarantines.len(), 1);
    assert_eq!(quarantines[0].prefix, "+44740");
    assert_eq!(quarantines[0].service, Some(h.service.id));
}

// ---- 3. The plan of the atomic store step ----

#[test]
fn plan_carries_cooldown_lockout_limits_in_order_then_the_spend() {
    let rate_limit = ProgrammableRateLimit {
        id: uuid::Uuid::from_u128(1),
        unique_name: "end_user".into(),
        description: None,
        created_at: 0,
        updated_at: 0,
        buckets: vec![RateBucket {
            id: uuid::Uuid::from_u128(2),
            max: 4,
            interval: 60,
            created_at: 0,
            updated_at: 0,
        }],
    };
    let h = harness(
        OtpSettings {
            resend_cooldown_seconds: 30,
            rate_limits: vec![rate_limit],
            daily_budget: Some(10.0),
            ..Default::default()
        },
        AbusePolicy {
            per_client_ip: limit(120),
            per_destination: limit(5),
            per_country_default: limit(50),
            failed_checks: limit(20),
            pumping: Some(PumpingPolicy::default()),
            ..no_protections()
        },
    );
    let request = StartRequest {
        client_ip: Some("192.0.2.1".into()),
        rate_limit_values: vec![("end_user".into(), "u-1".into())],
        ..to(MOBILE)
    };
    assert!(h.start(request).is_ok());
    let state = h.store.state();
    let plan = &state.plans[0];
    assert_eq!(plan.cooldown_seconds, 30);
    let lockout = plan.lockout.as_ref().expect("the lockout is on");
    assert_eq!(
        lockout.key,
        failure_key(h.service.id, &plan.verification.to)
    );
    assert_eq!(lockout.max, 20);
    let kinds: Vec<&str> = plan
        .limits
        .iter()
        .map(|hit| hit.key.split(':').next().unwrap_or_default())
        .collect();
    assert_eq!(kinds, ["ip", "dest", "country", "rl", "pump"]);
    assert_eq!(
        plan.limits.iter().map(|hit| hit.max).collect::<Vec<_>>(),
        [120, 5, 50, 4, u32::MAX]
    );
    let spend = plan.spend.as_ref().expect("the service has a budget");
    assert_eq!(spend.cap, 10.0);
    assert!(spend.key.starts_with(&format!("budget:{}:", h.service.id)));
}

#[test]
fn cooldown_refuses_a_start_too_soon_after_the_last_send() {
    let h = harness(
        OtpSettings {
            resend_cooldown_seconds: 30,
            ..Default::default()
        },
        no_protections(),
    );
    assert!(h.start(to(MOBILE)).is_ok());
    h.clock.advance_seconds(10);
    let refused = h.start(to(MOBILE));
    assert!(
        matches!(
            refused,
            Err(VerifyError::Cooldown {
                retry_after_seconds: 20
            })
        ),
        "{refused:?}"
    );
    assert_eq!(h.dispatch.jobs().len(), 1, "the refused start dispatched");
    h.clock.advance_seconds(20);
    assert!(h.start(to(MOBILE)).is_ok());
}

#[test]
fn lockout_decision_refuses_with_the_time_it_lifts() {
    let h = harness(OtpSettings::default(), no_protections());
    let frees_at = h.clock.now().plus_seconds(90);
    h.store.state().scripted = Some(StartDecision::LockedOut {
        frees_at: Some(frees_at),
    });
    let refused = h.start(to(MOBILE));
    assert!(
        matches!(
            refused,
            Err(VerifyError::LockedOut {
                retry_after_seconds: 90
            })
        ),
        "{refused:?}"
    );
    h.assert_nothing_sent();
}

#[test]
fn wrong_codes_lock_the_destination_out() {
    let h = harness(
        OtpSettings::default(),
        AbusePolicy {
            failed_checks: limit(2),
            ..no_protections()
        },
    );
    let (id, _) = h.started();
    h.check(id, "000000");
    h.check(id, "000001");
    let refused = h.start(to(MOBILE));
    assert!(
        matches!(refused, Err(VerifyError::LockedOut { .. })),
        "{refused:?}"
    );
}

#[test]
fn limited_decision_names_the_scope_of_the_limit_at_that_index() {
    let expected = [
        (LimitScope::ClientIp, 120),
        (LimitScope::Destination, 5),
        (LimitScope::Country, 50),
    ];
    for (index, (scope, max)) in expected.into_iter().enumerate() {
        let h = harness(
            OtpSettings::default(),
            AbusePolicy {
                per_client_ip: limit(120),
                per_destination: limit(5),
                per_country_default: limit(50),
                ..no_protections()
            },
        );
        h.store.state().scripted = Some(StartDecision::Limited {
            index,
            frees_at: None,
        });
        let request = StartRequest {
            client_ip: Some("192.0.2.1".into()),
            ..to(MOBILE)
        };
        match h.start(request) {
            Err(VerifyError::RateLimited {
                scope: refused,
                limit,
                retry_after_seconds: 1,
            }) => assert_eq!((refused, limit), (scope, max)),
            other => panic!("limit {index}: {other:?}"),
        }
        h.assert_nothing_sent();
    }
}

#[test]
fn destination_limit_refuses_the_start_past_its_maximum_and_records_why() {
    let h = harness(
        OtpSettings::default(),
        AbusePolicy {
            per_destination: limit(2),
            ..no_protections()
        },
    );
    assert!(h.start(to(MOBILE)).is_ok());
    assert!(h.start(to(MOBILE)).is_ok());
    let refused = h.start(to(MOBILE));
    assert!(
        matches!(
            refused,
            Err(VerifyError::RateLimited {
                scope: LimitScope::Destination,
                limit: 2,
                retry_after_seconds: 600,
            })
        ),
        "{refused:?}"
    );
    assert_eq!(h.dispatch.jobs().len(), 2);
    let state = h.store.state();
    assert_eq!(state.events.len(), 1);
    assert_eq!(state.events[0].data["reason"], "destination");
}

#[test]
fn over_budget_decision_is_budget_exceeded() {
    let h = harness(
        OtpSettings {
            daily_budget: Some(0.5),
            ..Default::default()
        },
        no_protections(),
    );
    h.store.state().scripted = Some(StartDecision::OverBudget);
    let refused = h.start(to(MOBILE));
    assert!(
        matches!(refused, Err(VerifyError::BudgetExceeded { budget: 0.5 })),
        "{refused:?}"
    );
    h.assert_nothing_sent();
}

// ---- 4. A re-send of a pending verification (Twilio) ----

fn resend(number: &str) -> StartRequest {
    StartRequest {
        resend_pending: true,
        ..to(number)
    }
}

#[test]
fn pending_verification_is_resent_with_the_same_code() {
    let h = harness(OtpSettings::default(), no_protections());
    let (id, code) = h.started();
    match h.start(resend(MOBILE)) {
        Ok(Started::Resent(verification, _)) => assert_eq!(verification.id, id),
        other => panic!("{other:?}"),
    }
    let jobs = h.dispatch.jobs();
    assert_eq!(jobs.len(), 2);
    assert_eq!(jobs[1].code.expose(), code.expose());
    assert_eq!(h.store.state().plans.len(), 1, "a resend is no new start");
}

#[test]
fn resend_is_refused_during_the_cooldown() {
    let h = harness(
        OtpSettings {
            resend_cooldown_seconds: 30,
            ..Default::default()
        },
        no_protections(),
    );
    h.started();
    h.clock.advance_seconds(10);
    let refused = h.start(resend(MOBILE));
    assert!(
        matches!(
            refused,
            Err(VerifyError::Cooldown {
                retry_after_seconds: 20
            })
        ),
        "{refused:?}"
    );
    assert_eq!(h.dispatch.jobs().len(), 1);
}

#[test]
fn resend_counts_the_limits() {
    let h = harness(
        OtpSettings::default(),
        AbusePolicy {
            per_destination: limit(2),
            ..no_protections()
        },
    );
    h.started();
    assert!(h.start(resend(MOBILE)).is_ok());
    let refused = h.start(resend(MOBILE));
    assert!(
        matches!(
            refused,
            Err(VerifyError::RateLimited {
                scope: LimitScope::Destination,
                ..
            })
        ),
        "{refused:?}"
    );
    assert_eq!(h.dispatch.jobs().len(), 2);
}

#[test]
fn sixth_send_of_one_verification_is_too_many() {
    let h = harness(OtpSettings::default(), no_protections());
    h.started();
    for _ in 1..super::MAX_SENDS {
        assert!(h.start(resend(MOBILE)).is_ok());
    }
    let refused = h.start(resend(MOBILE));
    assert!(
        matches!(refused, Err(VerifyError::TooManySends)),
        "{refused:?}"
    );
}

// ---- Before any protection: what the request asks for ----

#[test]
fn channel_no_provider_serves_is_refused_before_anything_is_written() {
    let h = harness_serving(OtpSettings::default(), AbusePolicy::default(), false);
    let refused = h.start(to(MOBILE));
    assert!(matches!(
        refused,
        Err(VerifyError::ChannelUnavailable(Channel::Sms))
    ));
    let state = h.store.state();
    assert!(state.plans.is_empty() && state.rates.is_empty() && state.events.is_empty());
    drop(state);
    h.assert_nothing_sent();
}

#[test]
fn custom_code_needs_the_option() {
    let custom = StartRequest {
        custom_code: Some(OtpCode::from_user_input("424242")),
        ..to(MOBILE)
    };
    let h = harness(OtpSettings::default(), no_protections());
    let refused = h.start(custom.clone());
    assert!(matches!(refused, Err(VerifyError::CustomCodeNotAllowed)));
    h.assert_nothing_sent();

    let mut settings = OtpSettings::default();
    settings.options.custom_code_enabled = true;
    let allowing = harness(settings, no_protections());
    assert!(allowing.start(custom).is_ok());
    assert_eq!(allowing.dispatch.jobs()[0].code.expose(), "424242");
}

#[test]
fn psd2_details_need_the_option() {
    let h = harness(OtpSettings::default(), no_protections());
    let refused = h.start(StartRequest {
        amount: Some("12.00".into()),
        payee: Some("Acme".into()),
        ..to(MOBILE)
    });
    assert!(matches!(refused, Err(VerifyError::Psd2NotEnabled)));
    h.assert_nothing_sent();
}

#[test]
fn email_channel_to_a_phone_is_a_mismatch() {
    let h = harness(OtpSettings::default(), no_protections());
    let refused = h.start(StartRequest {
        channel: Some(Channel::Email),
        ..to(MOBILE)
    });
    assert!(matches!(refused, Err(VerifyError::ChannelMismatch)));
    let email = Email::parse("user@example.com").expect("a valid address");
    let refused = h.start(StartRequest {
        to: Some((Recipient::Email(email), None)),
        channel: Some(Channel::Sms),
        ..Default::default()
    });
    assert!(matches!(refused, Err(VerifyError::ChannelMismatch)));
    h.assert_nothing_sent();
}

#[test]
fn start_without_a_recipient_is_refused() {
    let h = harness(OtpSettings::default(), no_protections());
    let refused = h.start(StartRequest::default());
    assert!(matches!(refused, Err(VerifyError::MissingRecipient)));
}

// ---- Check outcomes ----

#[test]
fn right_code_approves() {
    let h = harness(OtpSettings::default(), no_protections());
    let (id, code) = h.started();
    let result = h.check(id, code.expose());
    assert_eq!(result.outcome, CheckOutcome::Approved);
    let stored = &h.store.state().verifications[&id];
    assert_eq!(stored.status, VerificationStatus::Approved);
    assert_eq!(stored.attempts, 0);
}

#[test]
fn wrong_code_counts_an_attempt_and_a_failure() {
    let h = harness(
        OtpSettings::default(),
        AbusePolicy {
            failed_checks: limit(20),
            ..no_protections()
        },
    );
    let (id, code) = h.started();
    let wrong = if code.expose() == "000000" {
        "111111"
    } else {
        "000000"
    };
    let result = h.check(id, wrong);
    assert_eq!(result.outcome, CheckOutcome::WrongCode);
    let state = h.store.state();
    let stored = &state.verifications[&id];
    assert_eq!(
        (stored.status, stored.attempts),
        (VerificationStatus::Pending, 1)
    );
    assert_eq!(state.rates[&failure_key(h.service.id, &stored.to)].len(), 1);
}

#[test]
fn last_wrong_attempt_ends_with_max_attempts() {
    let h = harness(
        OtpSettings {
            max_attempts: MaxAttempts::new(2).expect("in bounds"),
            ..Default::default()
        },
        no_protections(),
    );
    let (id, code) = h.started();
    let wrong = if code.expose() == "000000" {
        "111111"
    } else {
        "000000"
    };
    assert_eq!(h.check(id, wrong).outcome, CheckOutcome::WrongCode);
    assert_eq!(h.check(id, wrong).outcome, CheckOutcome::MaxAttemptsNow);
    assert_eq!(
        h.check(id, code.expose()).outcome,
        CheckOutcome::AlreadyMaxAttempts,
        "the right code after the last attempt"
    );
}

#[test]
fn code_checked_after_its_ttl_is_expired() {
    let h = harness(OtpSettings::default(), no_protections());
    let (id, code) = h.started();
    h.clock.advance_seconds(600);
    let result = h.check(id, code.expose());
    assert_eq!(result.outcome, CheckOutcome::ExpiredNow);
    assert_eq!(
        h.store.state().verifications[&id].status,
        VerificationStatus::Expired
    );
}

#[test]
fn approved_verification_stays_approved() {
    let h = harness(OtpSettings::default(), no_protections());
    let (id, code) = h.started();
    assert_eq!(h.check(id, code.expose()).outcome, CheckOutcome::Approved);
    assert_eq!(
        h.check(id, code.expose()).outcome,
        CheckOutcome::AlreadyApproved
    );
}

#[test]
fn another_services_verification_is_wrong_service_and_untouched() {
    let h = harness(OtpSettings::default(), no_protections());
    let (id, code) = h.started();
    let other = ServiceId::generate();
    let result = run(h.verifier.check(other, id, code.expose(), None, None)).expect("answered");
    assert_eq!(result.outcome, CheckOutcome::WrongService);
    assert_eq!(result.verification, None);
    let stored = &h.store.state().verifications[&id];
    assert_eq!(
        (stored.status, stored.attempts),
        (VerificationStatus::Pending, 0)
    );
}

#[test]
fn unknown_verification_is_not_found() {
    let h = harness(OtpSettings::default(), no_protections());
    let result = h.check(VerificationId::generate(), "123456");
    assert_eq!(result.outcome, CheckOutcome::NotFound);
}
