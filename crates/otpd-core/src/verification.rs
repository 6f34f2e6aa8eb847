//! The verification lifecycle: `pending` → `approved` | `expired` | `canceled` |
//! `max_attempts_reached`. Every end state is final. Stores call [`decide_check`] inside their
//! atomic step so the rules live here once.

use uuid::Uuid;

use crate::clock::Timestamp;
use crate::code::{CodeHash, CodeSeed, PinLength, PinType};
use crate::ids::{ServiceId, VerificationId};
use crate::phone::CountryIso;
use crate::recipient::Recipient;
use crate::settings::{MaxAttempts, SenderId, Template, Ttl};

/// Where a verification is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum VerificationStatus {
    /// Waiting for the right code.
    Pending,
    /// The right code was checked in time.
    Approved,
    /// Canceled by the API user.
    Canceled,
    /// The code's lifetime ran out.
    Expired,
    /// Too many wrong codes.
    MaxAttemptsReached,
}

impl VerificationStatus {
    /// The storage and Twilio spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            VerificationStatus::Pending => "pending",
            VerificationStatus::Approved => "approved",
            VerificationStatus::Canceled => "canceled",
            VerificationStatus::Expired => "expired",
            VerificationStatus::MaxAttemptsReached => "max_attempts_reached",
        }
    }

    /// Parses [`as_str`](Self::as_str).
    pub fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "pending" => VerificationStatus::Pending,
            "approved" => VerificationStatus::Approved,
            "canceled" => VerificationStatus::Canceled,
            "expired" => VerificationStatus::Expired,
            "max_attempts_reached" => VerificationStatus::MaxAttemptsReached,
            _ => return None,
        })
    }

    /// Whether no further transition is possible.
    pub fn is_final(self) -> bool {
        self != VerificationStatus::Pending
    }
}

pub use crate::channel::Channel;

/// One verification as stored. Holds the code only as its keyed hash.
#[derive(Debug, Clone, PartialEq)]
pub struct Verification {
    /// Its id (the native `otpId`).
    pub id: VerificationId,
    /// The service it belongs to (the tenant boundary).
    pub service_id: ServiceId,
    /// The recipient.
    pub to: Recipient,
    /// The recipient's country (phones only).
    pub country: Option<CountryIso>,
    /// How the code is delivered.
    pub channel: Channel,
    /// Stored status; see [`status_at`](Self::status_at) for the effective one.
    pub status: VerificationStatus,
    /// Wrong codes checked so far.
    pub attempts: u32,
    /// Wrong codes tolerated.
    pub max_attempts: MaxAttempts,
    /// Code lifetime.
    pub ttl: Ttl,
    /// HMAC of the current code.
    pub code_hash: CodeHash,
    /// The seed the code is derived from; `None` for a caller-supplied (custom) code, which
    /// cannot be re-derived.
    pub code_seed: Option<CodeSeed>,
    /// Code alphabet (needed to issue a replacement code after a restart).
    pub pin_type: PinType,
    /// Code length.
    pub pin_length: PinLength,
    /// The message template (with its placeholder, never the rendered code).
    pub template: Template,
    pub from: SenderId,
    /// The caller's correlation id.
    pub track_id: Option<Uuid>,
    /// Where status changes are posted.
    pub callback_url: Option<String>,
    /// PSD2 amount that a check must repeat.
    pub amount: Option<String>,
    /// PSD2 payee that a check must repeat.
    pub payee: Option<String>,
    /// The language of its messages (`en`, `pt-BR`), when the caller or service chose one.
    pub locale: Option<String>,
    /// Price of the message.
    pub cost: f64,
    /// SMS segments of the rendered message.
    pub parts: u32,
    /// When it was created.
    pub created_at: Timestamp,
    /// When its code stops being accepted.
    pub expires_at: Timestamp,
    /// Last status or attempt change.
    pub updated_at: Timestamp,
}

impl Verification {
    /// The status a reader should see at `now`: a pending verification past its expiry reads
    /// as expired even before any check has written that down.
    pub fn status_at(&self, now: Timestamp) -> VerificationStatus {
        if self.status == VerificationStatus::Pending && now >= self.expires_at {
            VerificationStatus::Expired
        } else {
            self.status
        }
    }

    /// Whether a candidate is the right answer: the code's hash matches (in constant time)
    /// and, for a PSD2 verification, the amount and payee are repeated exactly.
    pub fn accepts(&self, candidate: &Candidate) -> bool {
        let code = self.code_hash.matches(&candidate.code_hash)
            | candidate
                .previous_key_hashes
                .iter()
                .fold(false, |any, hash| any | self.code_hash.matches(hash));
        let psd2 = (self.amount.is_none() || self.amount == candidate.amount)
            && (self.payee.is_none() || self.payee == candidate.payee);
        code & psd2
    }
}

/// What a check presents.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    /// Hash of the typed code under this verification's id.
    pub code_hash: CodeHash,
    /// The same under the secrets before a key rotation (empty without one): a verification
    /// started before the rotation still checks.
    pub previous_key_hashes: Vec<CodeHash>,
    /// PSD2 amount, when the dialect has one.
    pub amount: Option<String>,
    /// PSD2 payee, when the dialect has one.
    pub payee: Option<String>,
    /// Counters the check's own store step adds to (so a check stays one round trip).
    pub counting: CheckCounting,
}

/// Which counters a check adds to, as rules keyed by the checked verification's destination.
/// The store applies them to the verification it loads in the check's own atomic step, so a
/// check needs no read before it (that read was an eighth of a check's server time).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CheckCounting {
    /// The wrong-code lockout's window in ms, when the lockout is on.
    pub failures_window_ms: Option<i64>,
    /// The pumping defence's approvals: window in ms and prefix digits, when it is on.
    pub approvals: Option<(i64, u8)>,
}

impl CheckCounting {
    /// The counters a check of `verification` adds to.
    pub fn counters(
        &self,
        verification: &Verification,
        vault: &crate::vault::Vault,
    ) -> CheckCounters {
        CheckCounters {
            on_failure: self.failures_window_ms.map(|window| {
                (
                    crate::abuse::failure_key(verification.service_id, &verification.to, vault),
                    window,
                )
            }),
            on_approval: match (self.approvals, &verification.to) {
                (Some((window, digits)), Recipient::Phone(phone)) => Some((
                    crate::abuse::pumping_key(
                        "ok",
                        verification.service_id,
                        &crate::abuse::pumping_prefix(phone, digits),
                    ),
                    window,
                )),
                _ => None,
            },
        }
    }
}

/// Sliding-window counters a check counts in, keyed like [`crate::store::LimitHit`] (the
/// store forgets the key's events older than the window as it counts).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CheckCounters {
    /// Counted when the code is wrong (the destination's wrong-code lockout): key, window.
    pub on_failure: Option<(String, i64)>,
    /// Counted when the code is approved (the pumping defence's approvals): key, window.
    pub on_approval: Option<(String, i64)>,
}

impl CheckCounters {
    /// The counter this outcome adds to, if any.
    pub fn for_outcome(&self, outcome: CheckOutcome) -> Option<&(String, i64)> {
        match outcome {
            CheckOutcome::WrongCode | CheckOutcome::MaxAttemptsNow => self.on_failure.as_ref(),
            CheckOutcome::Approved => self.on_approval.as_ref(),
            _ => None,
        }
    }
}

/// What one check of a code concluded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckOutcome {
    /// The code was right: now approved.
    Approved,
    /// The code was wrong; the attempt was counted and attempts remain.
    WrongCode,
    /// This check found the code expired and ended the verification.
    ExpiredNow,
    /// This wrong code used the last attempt and ended the verification.
    MaxAttemptsNow,
    /// Already approved earlier.
    AlreadyApproved,
    /// Canceled earlier.
    AlreadyCanceled,
    /// Expired earlier.
    AlreadyExpired,
    /// Ran out of attempts earlier.
    AlreadyMaxAttempts,
    /// No such verification.
    NotFound,
    /// The verification belongs to another service; nothing was counted.
    WrongService,
}

/// The state change a check makes, decided by [`decide_check`] and written by the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CheckDecision {
    /// What to tell the caller.
    pub outcome: CheckOutcome,
    /// Status to store.
    pub status: VerificationStatus,
    /// Attempts to store.
    pub attempts: u32,
}

impl CheckDecision {
    /// Whether the stored status changes (and so a status callback is due).
    pub fn status_changed(&self, before: VerificationStatus) -> bool {
        self.status != before
    }
}

/// The lifecycle rule for one check. `code_matches` is the constant-time comparison of the
/// candidate's hash with the stored one. Expiry wins over a right code; a wrong code counts an
/// attempt; the attempt that reaches the maximum ends the verification.
pub fn decide_check(
    verification: &Verification,
    code_matches: bool,
    now: Timestamp,
) -> CheckDecision {
    let keep = |outcome| CheckDecision {
        outcome,
        status: verification.status,
        attempts: verification.attempts,
    };
    match verification.status {
        VerificationStatus::Approved => return keep(CheckOutcome::AlreadyApproved),
        VerificationStatus::Canceled => return keep(CheckOutcome::AlreadyCanceled),
        VerificationStatus::Expired => return keep(CheckOutcome::AlreadyExpired),
        VerificationStatus::MaxAttemptsReached => return keep(CheckOutcome::AlreadyMaxAttempts),
        VerificationStatus::Pending => {}
    }
    if now >= verification.expires_at {
        return CheckDecision {
            outcome: CheckOutcome::ExpiredNow,
            status: VerificationStatus::Expired,
            attempts: verification.attempts,
        };
    }
    if code_matches {
        return CheckDecision {
            outcome: CheckOutcome::Approved,
            status: VerificationStatus::Approved,
            attempts: verification.attempts,
        };
    }
    let attempts = verification.attempts + 1;
    if attempts >= verification.max_attempts.get() {
        CheckDecision {
            outcome: CheckOutcome::MaxAttemptsNow,
            status: VerificationStatus::MaxAttemptsReached,
            attempts,
        }
    } else {
        CheckDecision {
            outcome: CheckOutcome::WrongCode,
            status: VerificationStatus::Pending,
            attempts,
        }
    }
}

/// What an explicit status change (cancel, or approve out of band) concluded.
#[derive(Debug, Clone, PartialEq)]
pub enum StatusChange {
    /// Was pending, now in the requested status.
    Changed(Box<Verification>),
    /// Not pending (already ended, or expired by now); unchanged. Carries its status.
    NotPending(Box<Verification>),
    /// No such verification.
    NotFound,
    /// The verification belongs to another service; nothing changed.
    WrongService,
}

/// What an explicit status change writes, decided by [`decide_status_change`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StatusPlan {
    /// The status to store, if the stored one changes.
    pub record: Option<VerificationStatus>,
    /// Whether the requested change happened (else the verification was not pending).
    pub changed: bool,
}

/// The lifecycle rule for an explicit change: only a verification that is pending at `now`
/// can be canceled or approved; one found past its expiry is recorded as expired.
pub fn decide_status_change(
    verification: &Verification,
    target: VerificationStatus,
    now: Timestamp,
) -> StatusPlan {
    debug_assert!(matches!(
        target,
        VerificationStatus::Canceled | VerificationStatus::Approved
    ));
    let effective = verification.status_at(now);
    if effective == VerificationStatus::Pending {
        return StatusPlan {
            record: Some(target),
            changed: true,
        };
    }
    StatusPlan {
        record: (effective != verification.status).then_some(effective),
        changed: false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::code::{CodeHasher, OtpCode, ServerSecret};
    use crate::phone::E164Phone;

    fn sample(now: Timestamp) -> Verification {
        let id = VerificationId::generate();
        let (to, country) = E164Phone::parse("+33612345678", None).unwrap();
        let (to, country) = (Recipient::Phone(to), Some(country));
        let hasher = CodeHasher::new(ServerSecret::from_bytes([1; 32]));
        Verification {
            id,
            service_id: ServiceId::generate(),
            to,
            country,
            channel: Channel::Sms,
            status: VerificationStatus::Pending,
            attempts: 0,
            max_attempts: MaxAttempts::new(3).unwrap(),
            ttl: Ttl::new(60).unwrap(),
            code_hash: hasher.hash(id, &OtpCode::from_user_input("123456")),
            code_seed: None,
            pin_type: PinType::Numbers,
            pin_length: PinLength::new(6).unwrap(),
            template: Template::new("{{pin}}").unwrap(),
            from: SenderId::new("otpd").unwrap(),
            track_id: None,
            callback_url: None,
            amount: None,
            payee: None,
            locale: None,
            cost: 0.0,
            parts: 1,
            created_at: now,
            expires_at: now.plus_seconds(60),
            updated_at: now,
        }
    }

    #[test]
    fn right_code_in_time_approves() {
        let now = Timestamp(1_000_000);
        let v = sample(now);
        let d = decide_check(&v, true, now);
        assert_eq!(d.outcome, CheckOutcome::Approved);
        assert_eq!(d.status, VerificationStatus::Approved);
        assert_eq!(d.attempts, 0);
    }

    #[test]
    fn right_code_after_expiry_is_refused_as_expired() {
        let now = Timestamp(1_000_000);
        let v = sample(now);
        let d = decide_check(&v, true, now.plus_seconds(60));
        assert_eq!(d.outcome, CheckOutcome::ExpiredNow);
        assert_eq!(d.status, VerificationStatus::Expired);
    }

    #[test]
    fn wrong_codes_count_until_the_maximum() {
        let now = Timestamp(1_000_000);
        let mut v = sample(now);
        for expected in [
            CheckOutcome::WrongCode,
            CheckOutcome::WrongCode,
            CheckOutcome::MaxAttemptsNow,
        ] {
            let d = decide_check(&v, false, now);
            assert_eq!(d.outcome, expected);
            v.status = d.status;
            v.attempts = d.attempts;
        }
        assert_eq!(v.attempts, 3);
        assert_eq!(v.status, VerificationStatus::MaxAttemptsReached);
        // Final: even the right code now reports the end state, and counts nothing.
        let d = decide_check(&v, true, now);
        assert_eq!(d.outcome, CheckOutcome::AlreadyMaxAttempts);
        assert_eq!(d.attempts, 3);
    }

    #[test]
    fn every_end_state_is_final() {
        let now = Timestamp(1_000_000);
        for (status, outcome) in [
            (VerificationStatus::Approved, CheckOutcome::AlreadyApproved),
            (VerificationStatus::Canceled, CheckOutcome::AlreadyCanceled),
            (VerificationStatus::Expired, CheckOutcome::AlreadyExpired),
            (
                VerificationStatus::MaxAttemptsReached,
                CheckOutcome::AlreadyMaxAttempts,
            ),
        ] {
            let mut v = sample(now);
            v.status = status;
            let d = decide_check(&v, true, now);
            assert_eq!((d.outcome, d.status), (outcome, status));
        }
    }

    #[test]
    fn only_pending_verifications_change_status() {
        let now = Timestamp(1_000_000);
        let mut v = sample(now);
        let cancel = VerificationStatus::Canceled;
        let plan = |record, changed| StatusPlan { record, changed };
        assert_eq!(
            decide_status_change(&v, cancel, now),
            plan(Some(cancel), true)
        );
        assert_eq!(
            decide_status_change(&v, VerificationStatus::Approved, now),
            plan(Some(VerificationStatus::Approved), true)
        );
        assert_eq!(
            decide_status_change(&v, cancel, now.plus_seconds(61)),
            plan(Some(VerificationStatus::Expired), false)
        );
        v.status = VerificationStatus::Canceled;
        assert_eq!(decide_status_change(&v, cancel, now), plan(None, false));
    }

    #[test]
    fn a_code_hashed_under_a_previous_key_is_accepted_after_a_rotation() {
        let now = Timestamp(1_000_000);
        let mut v = sample(now);
        let old = ServerSecret::from_bytes([1; 32]);
        let code = OtpCode::from_user_input("123456");
        v.code_hash = CodeHasher::new(old.clone()).hash(v.id, &code);
        let rotated = CodeHasher::new(ServerSecret::from_bytes([2; 32])).with_previous(vec![old]);
        let candidate = |typed: &str| {
            let typed = OtpCode::from_user_input(typed);
            Candidate {
                code_hash: rotated.hash(v.id, &typed),
                previous_key_hashes: rotated.previous_hashes(v.id, &typed),
                amount: None,
                payee: None,
                counting: CheckCounting::default(),
            }
        };
        assert!(v.accepts(&candidate("123456")));
        assert!(!v.accepts(&candidate("654321")));
        let without_previous = Candidate {
            previous_key_hashes: Vec::new(),
            ..candidate("123456")
        };
        assert!(
            !v.accepts(&without_previous),
            "the new key alone does not know it"
        );
    }

    #[test]
    fn psd2_details_must_be_repeated() {
        let now = Timestamp(1_000_000);
        let mut v = sample(now);
        v.amount = Some("12.50".into());
        v.payee = Some("Acme".into());
        let hasher = CodeHasher::new(ServerSecret::from_bytes([1; 32]));
        let code_hash = hasher.hash(v.id, &OtpCode::from_user_input("123456"));
        let right = Candidate {
            code_hash,
            previous_key_hashes: Vec::new(),
            amount: Some("12.50".into()),
            payee: Some("Acme".into()),
            counting: CheckCounting::default(),
        };
        assert!(v.accepts(&right));
        assert!(!v.accepts(&Candidate {
            amount: Some("99".into()),
            ..right.clone()
        }));
        assert!(!v.accepts(&Candidate {
            payee: None,
            ..right.clone()
        }));
        v.amount = None;
        v.payee = None;
        assert!(v.accepts(&Candidate {
            amount: None,
            payee: None,
            ..right
        }));
    }
}
