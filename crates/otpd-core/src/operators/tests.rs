//! The operators' rules on the in-memory fake store.

#[test]
fn a_second_factor_seed_is_resealed_under_the_current_key_once() {
    use crate::code::ServerSecret;
    let old = Vault::new(&ServerSecret::from_bytes([1; 32]), &[]);
    let sealed = base64::engine::general_purpose::STANDARD.encode(old.seal("00ff"));
    let rotated = Vault::new(
        &ServerSecret::from_bytes([2; 32]),
        &[ServerSecret::from_bytes([1; 32])],
    );
    let resealed = reseal_totp(&rotated, &sealed).unwrap().expect("moved");
    assert_eq!(
        reseal_totp(&rotated, &resealed).unwrap(),
        None,
        "already current"
    );
    let only_new = Vault::new(&ServerSecret::from_bytes([2; 32]), &[]);
    assert_eq!(
        totp_code(&only_new, &resealed, 59),
        totp_code(&old, &sealed, 59),
        "the same seed, readable without the old key"
    );
    assert!(
        reseal_totp(&only_new, &sealed).is_err(),
        "the old key is gone"
    );
}

use std::sync::Arc;

use super::*;
use crate::clock::ManualClock;
use crate::code::ServerSecret;
use crate::verifier::fake::{FakeStore, run};

const T0: Timestamp = Timestamp(1_700_000_000_000);
const PASSWORD: &str = "correct horse battery";

/// The password work done inline (the fakes never wait).
struct Inline;

impl PasswordWork for Inline {
    fn hash(&self, password: Secret) -> impl Future<Output = String> + Send {
        std::future::ready(hash_password(&password))
    }

    fn verify(&self, phc: String, password: Secret) -> impl Future<Output = bool> + Send {
        std::future::ready(verify_password(&phc, &password))
    }
}

struct World {
    store: FakeStore,
    clock: ManualClock,
    vault: Arc<Vault>,
    operators: Operators<FakeStore, ManualClock>,
}

fn world() -> World {
    let store = FakeStore::default();
    let clock = ManualClock::new(T0);
    let vault = Arc::new(Vault::new(&ServerSecret::from_bytes([7; 32]), &[]));
    let operators = Operators::new(
        store.clone(),
        clock.clone(),
        vault.clone(),
        SessionRules::default(),
    );
    World {
        store,
        clock,
        vault,
        operators,
    }
}

impl World {
    /// An operator with [`PASSWORD`] (and a second factor when `totp`).
    fn operator(&self, email: &str, role: Role, totp: bool) -> CreatedOperator {
        let hash = hash_password(&Secret::new(PASSWORD));
        run(self.operators.create(email, role, Some(hash), totp)).unwrap()
    }

    fn sign_in(&self, email: &str, password: &str) -> Result<NewSession, SignInError> {
        run(self
            .operators
            .sign_in(&Inline, email, Secret::new(password)))
        .map(|(_, session)| session)
    }

    fn stored(&self, id: OperatorId) -> Operator {
        run(self.store.operator(id)).unwrap().unwrap()
    }

    fn valid(&self, token: &Secret) -> bool {
        run(self.operators.session(token.expose()))
            .unwrap()
            .is_some()
    }

    /// The code the operator's authenticator app shows now.
    fn code(&self, operator: &Operator) -> String {
        let seconds = (self.clock.now().0 / 1000) as u64;
        totp_code(
            &self.vault,
            operator.totp_sealed.as_deref().unwrap(),
            seconds,
        )
        .unwrap()
    }
}

/// Admins may do everything, support only acts on single verifications and numbers,
/// viewers only read; roles round-trip through their names.
#[test]
fn roles_grant_their_permissions() {
    use Permission::*;
    let all = [
        SeeFullNumbers,
        CancelVerification,
        AddSafeNumber,
        LiftQuarantine,
        ManageServices,
        ManageKeys,
        ManageWebhooks,
    ];
    for permission in all {
        assert!(Role::Admin.may(permission), "{permission:?}");
        assert!(!Role::Viewer.may(permission), "{permission:?}");
        let support = matches!(
            permission,
            SeeFullNumbers | CancelVerification | AddSafeNumber | LiftQuarantine
        );
        assert_eq!(Role::Support.may(permission), support, "{permission:?}");
    }
    for role in [Role::Viewer, Role::Support, Role::Admin] {
        assert_eq!(Role::parse(role.as_str()), Some(role));
    }
    assert_eq!(Role::parse("root"), None);
}

/// Passwords shorter than twelve characters are refused; a hash verifies its own
/// password only.
#[test]
fn passwords_are_checked_and_hashed() {
    assert!(matches!(
        check_password(&Secret::new("elevenchars")),
        Err(OperatorError::WeakPassword)
    ));
    assert!(check_password(&Secret::new("twelve chars")).is_ok());
    let hash = hash_password(&Secret::new(PASSWORD));
    assert!(hash.starts_with("$argon2id$"));
    assert!(verify_password(&hash, &Secret::new(PASSWORD)));
    assert!(!verify_password(&hash, &Secret::new("wrong horse battery")));
    assert!(!verify_password("not a hash", &Secret::new(PASSWORD)));
}

/// The right password opens a full session (the email in any case); a wrong password,
/// an unknown email and a disabled operator are all refused alike.
#[test]
fn sign_in_takes_the_right_password_of_an_enabled_operator_only() {
    let w = world();
    let alice = w
        .operator("alice@example.com", Role::Support, false)
        .operator;
    let session = w.sign_in("Alice@Example.COM", PASSWORD).unwrap();
    assert!(!session.session.second_factor_pending);
    assert_eq!(session.session.operator, alice.id);
    assert!(w.valid(&session.token));

    let wrong = w.sign_in("alice@example.com", "wrong horse battery");
    assert!(
        matches!(wrong, Err(SignInError::WrongCredentials)),
        "{wrong:?}"
    );
    assert_eq!(w.stored(alice.id).failed_sign_ins, 1);
    let unknown = w.sign_in("nobody@example.com", PASSWORD);
    assert!(
        matches!(unknown, Err(SignInError::WrongCredentials)),
        "{unknown:?}"
    );

    let mut disabled = w.stored(alice.id);
    disabled.disabled = true;
    assert!(run(w.operators.update(&disabled, true)).unwrap());
    assert!(!w.valid(&session.token), "a disable ends the sessions");
    let refused = w.sign_in("alice@example.com", PASSWORD);
    assert!(
        matches!(refused, Err(SignInError::WrongCredentials)),
        "{refused:?}"
    );
}

/// Five failures in a row lock the operator: even the right password is refused until
/// the lock ends, after which it opens a session and the count starts over.
#[test]
fn five_failures_lock_out_even_the_right_password() {
    let w = world();
    let bob = w.operator("bob@example.com", Role::Viewer, false).operator;
    for _ in 0..5 {
        let wrong = w.sign_in("bob@example.com", "wrong horse battery");
        assert!(
            matches!(wrong, Err(SignInError::WrongCredentials)),
            "{wrong:?}"
        );
    }
    let until = T0.plus_seconds(SessionRules::default().lock_seconds);
    assert_eq!(w.stored(bob.id).locked_until, Some(until));
    let locked = w.sign_in("bob@example.com", PASSWORD);
    assert!(
        matches!(locked, Err(SignInError::Locked { until: at }) if at == until),
        "{locked:?}"
    );

    w.clock
        .advance_seconds(SessionRules::default().lock_seconds + 1);
    assert!(w.sign_in("bob@example.com", PASSWORD).is_ok());
    let stored = w.stored(bob.id);
    assert_eq!(stored.failed_sign_ins, 0);
    assert_eq!(stored.locked_until, None);
}

/// An operator with an authenticator gets a pending session from its password; a right
/// code replaces it with a full one, a wrong code is refused, and the same right code is
/// refused the second time (RFC 6238 §5.2).
#[test]
fn a_second_factor_completes_a_sign_in_once_per_code() {
    let w = world();
    let created = w.operator("carol@example.com", Role::Admin, true);
    let uri = created.totp_uri.unwrap();
    assert!(
        uri.expose().starts_with("otpauth://totp/otpd:carol"),
        "{}",
        uri.expose()
    );
    assert!(uri.expose().contains("secret=") && uri.expose().contains("issuer=otpd"));
    let carol = created.operator;

    let pending = w.sign_in("carol@example.com", PASSWORD).unwrap();
    assert!(pending.session.second_factor_pending);
    let code = w.code(&carol);
    let off_by_one = format!("{:06}", (code.parse::<u32>().unwrap() + 1) % 1_000_000);
    let wrong = run(w.operators.second_factor(&pending.session, &off_by_one));
    assert!(matches!(wrong, Err(SignInError::WrongCode)), "{wrong:?}");
    assert_eq!(w.stored(carol.id).failed_sign_ins, 1, "a wrong code counts");

    let full = run(w.operators.second_factor(&pending.session, &code)).unwrap();
    assert!(!full.session.second_factor_pending);
    assert!(w.valid(&full.token));
    assert!(!w.valid(&pending.token), "the pending session is replaced");
    assert_eq!(w.stored(carol.id).failed_sign_ins, 0);

    let again = w.sign_in("carol@example.com", PASSWORD).unwrap();
    let replay = run(w.operators.second_factor(&again.session, &code));
    assert!(matches!(replay, Err(SignInError::WrongCode)), "{replay:?}");

    w.clock.advance_seconds(30);
    let next = w.code(&carol);
    assert!(run(w.operators.second_factor(&again.session, &next)).is_ok());
}

/// A session unused for the idle timeout ends; one kept busy still ends at the absolute
/// timeout.
#[test]
fn idle_and_absolute_timeouts_end_a_session() {
    let w = world();
    let rules = SessionRules::default();
    w.operator("dan@example.com", Role::Viewer, false);

    let idle = w.sign_in("dan@example.com", PASSWORD).unwrap();
    w.clock.advance_seconds(rules.idle_timeout_seconds - 1);
    assert!(w.valid(&idle.token));
    w.clock.advance_seconds(rules.idle_timeout_seconds + 1);
    assert!(!w.valid(&idle.token));
    assert_eq!(run(w.store.session(idle.session.token_hash)).unwrap(), None);

    let busy = w.sign_in("dan@example.com", PASSWORD).unwrap();
    let step = rules.idle_timeout_seconds / 2;
    let mut elapsed = 0;
    while elapsed + step <= rules.absolute_timeout_seconds {
        w.clock.advance_seconds(step);
        elapsed += step;
        assert!(w.valid(&busy.token), "busy after {elapsed} s");
    }
    w.clock
        .advance_seconds(rules.absolute_timeout_seconds - elapsed + 1);
    assert!(!w.valid(&busy.token));
}

/// An invitation link works until it is used or expires; accepting it sets the password
/// that then signs in.
#[test]
fn an_invitation_sets_the_password_once() {
    let w = world();
    let created = run(w
        .operators
        .create(" Erin@Example.com ", Role::Support, None, false))
    .unwrap();
    assert_eq!(created.operator.email, "erin@example.com");
    let token = created.invitation.unwrap();
    let refused = w.sign_in("erin@example.com", PASSWORD);
    assert!(
        matches!(refused, Err(SignInError::WrongCredentials)),
        "{refused:?}"
    );

    let invited = run(w.operators.invited(token.expose())).unwrap().unwrap();
    assert_eq!(invited.id, created.operator.id);
    let hash = hash_password(&Secret::new(PASSWORD));
    assert!(run(w.operators.accept_invitation(invited, hash)).unwrap());
    assert_eq!(run(w.operators.invited(token.expose())).unwrap(), None);
    assert!(w.sign_in("erin@example.com", PASSWORD).is_ok());

    let late = run(w
        .operators
        .create("late@example.com", Role::Viewer, None, false))
    .unwrap()
    .invitation
    .unwrap();
    w.clock
        .advance_seconds(SessionRules::default().invitation_seconds + 1);
    assert_eq!(run(w.operators.invited(late.expose())).unwrap(), None);
}

/// A reset ends the sessions, stops the old password and hands out a working invitation;
/// a taken or malformed email is refused at creation.
#[test]
fn a_reset_replaces_the_password_with_an_invitation() {
    let w = world();
    let frank = w.operator("frank@example.com", Role::Admin, false).operator;
    let session = w.sign_in("frank@example.com", PASSWORD).unwrap();
    let token = run(w.operators.reset(w.stored(frank.id))).unwrap();
    assert!(!w.valid(&session.token));
    let old = w.sign_in("frank@example.com", PASSWORD);
    assert!(matches!(old, Err(SignInError::WrongCredentials)), "{old:?}");
    assert!(run(w.operators.invited(token.expose())).unwrap().is_some());

    let taken = run(w
        .operators
        .create("FRANK@example.com", Role::Viewer, None, false));
    assert!(matches!(taken, Err(OperatorError::Taken)), "{taken:?}");
    let invalid = run(w.operators.create("frank", Role::Viewer, None, false));
    assert!(
        matches!(invalid, Err(OperatorError::InvalidEmail)),
        "{invalid:?}"
    );
}
