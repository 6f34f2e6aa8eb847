//! The engine over the in-memory fake: one test per rule of "The order of checks on a start"
//! (docs/security.md) in `start` and `resend`, one per outcome of a check in `check`. This
//! module holds the harness they share.

mod check;
mod resend;
mod start;

use std::sync::{Arc, Mutex};

use super::fake::{FakeDispatch, FakeStore, run};
use super::{StartError, StartRequest, Started, Verifier};
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
    fn start(&self, request: StartRequest) -> Result<Started, StartError> {
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
