//! The outcomes of a check, decided by the core's `decide_check` inside the fake's step.

use super::*;

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
    assert_eq!(
        state.rates[&failure_key(h.service.id, &stored.to, &super::super::fake::test_vault())]
            .len(),
        1
    );
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
