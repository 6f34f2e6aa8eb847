//! A re-send of a pending verification (Twilio dialect): the same code, the same checks one
//! store call at a time, and at most `MAX_SENDS` sends.

use super::*;

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
            Err(StartError::Cooldown {
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
            Err(StartError::RateLimited {
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
    for _ in 1..crate::verifier::MAX_SENDS {
        assert!(h.start(resend(MOBILE)).is_ok());
    }
    let refused = h.start(resend(MOBILE));
    assert!(
        matches!(refused, Err(StartError::TooManySends)),
        "{refused:?}"
    );
}
