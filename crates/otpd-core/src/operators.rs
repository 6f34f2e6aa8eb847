//! Console operators: the people who sign in to `/console/`, separate from API credentials.
//! An operator has a role, an argon2id password (or an unused invitation), optionally an
//! authenticator-app second factor, and sessions kept in the database so that every node
//! honours them. This module holds the rules (lockout, timeouts, what each role may do); the
//! console adapter holds the cookies and the pages.

use std::future::Future;

use base64::Engine;
use sha2::{Digest, Sha256};

use crate::clock::{Clock, Timestamp};
use crate::ids::OperatorId;
use crate::secret::Secret;
use crate::store::{OperatorStore, StoreError};
use crate::vault::Vault;

/// What an operator may do. Viewers read (numbers masked); support also acts on single
/// verifications and numbers; admins change everything.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Role {
    Viewer,
    Support,
    Admin,
}

/// One thing the console lets an operator do, checked against the role on every request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Permission {
    /// See the full destination (viewers see it masked).
    SeeFullNumbers,
    /// Cancel a pending verification.
    CancelVerification,
    /// Add a number to an account's safe list.
    AddSafeNumber,
    /// Lift a prefix quarantine.
    LiftQuarantine,
    /// Change a service's settings.
    ManageServices,
    /// Create, revoke and rotate credentials.
    ManageKeys,
    /// Create, remove and replay webhooks.
    ManageWebhooks,
}

impl Role {
    /// The role as stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Support => "support",
            Role::Admin => "admin",
        }
    }

    /// The role named `text` (`viewer`, `support`, `admin`).
    pub fn parse(text: &str) -> Option<Role> {
        match text {
            "viewer" => Some(Role::Viewer),
            "support" => Some(Role::Support),
            "admin" => Some(Role::Admin),
            _ => None,
        }
    }

    /// Whether this role grants `permission`.
    pub fn may(self, permission: Permission) -> bool {
        use Permission::*;
        match self {
            Role::Admin => true,
            Role::Support => matches!(
                permission,
                SeeFullNumbers | CancelVerification | AddSafeNumber | LiftQuarantine
            ),
            Role::Viewer => false,
        }
    }
}

/// An operator as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct Operator {
    pub id: OperatorId,
    /// Lower-cased; the sign-in name.
    pub email: String,
    pub role: Role,
    /// argon2id PHC string; `None` until an invitation is accepted.
    pub password_hash: Option<String>,
    /// The authenticator-app seed sealed by the vault (base64); `None`: no second factor.
    pub totp_sealed: Option<String>,
    /// The last time step whose code was accepted (a code is good once, RFC 6238 §5.2).
    pub totp_last_step: Option<i64>,
    /// A disabled operator cannot sign in and has no session.
    pub disabled: bool,
    /// Failed sign-ins since the last success or lock.
    pub failed_sign_ins: u32,
    /// No sign-in is accepted before this time.
    pub locked_until: Option<Timestamp>,
    /// SHA-256 of the unused invitation token, if one is outstanding.
    pub invitation_hash: Option<[u8; 32]>,
    /// When the invitation stops working.
    pub invitation_expires_at: Option<Timestamp>,
    pub created_at: Timestamp,
}

/// A signed-in browser, stored by the hash of its cookie's token.
#[derive(Debug, Clone, PartialEq)]
pub struct OperatorSession {
    pub token_hash: [u8; 32],
    pub operator: OperatorId,
    /// Only the second factor is left: the session grants nothing but the code form.
    pub second_factor_pending: bool,
    pub created_at: Timestamp,
    pub last_seen_at: Timestamp,
}

/// The rules' numbers; `[console]` in the configuration sets them (defaults there).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionRules {
    /// A session unused this long ends.
    pub idle_timeout_seconds: i64,
    /// A session ends this long after sign-in, however busy.
    pub absolute_timeout_seconds: i64,
    /// Failed sign-ins in a row that lock the operator.
    pub lock_after_failures: u32,
    /// How long a lock lasts.
    pub lock_seconds: i64,
    /// How long an invitation link works.
    pub invitation_seconds: i64,
}

impl Default for SessionRules {
    fn default() -> Self {
        SessionRules {
            idle_timeout_seconds: 30 * 60,
            absolute_timeout_seconds: 12 * 3600,
            lock_after_failures: 5,
            lock_seconds: 15 * 60,
            invitation_seconds: 72 * 3600,
        }
    }
}

/// Shortest password accepted (NIST SP 800-63B's minimum for a chosen secret).
pub const MIN_PASSWORD_CHARS: usize = 12;

/// Hashes a password with argon2id and a fresh salt. Slow by design (tens of
/// milliseconds): the console runs it off the request workers.
pub fn hash_password(password: &Secret) -> String {
    use argon2::password_hash::PasswordHasher;
    argon2::Argon2::default()
        .hash_password(password.expose().as_bytes())
        .map(|hash| hash.to_string())
        .unwrap_or_default()
}

/// Whether `password` matches the PHC string `phc` (false for a malformed one).
pub fn verify_password(phc: &str, password: &Secret) -> bool {
    use argon2::password_hash::PasswordVerifier;
    let Ok(parsed) = argon2::PasswordHash::new(phc) else {
        return false;
    };
    argon2::Argon2::default()
        .verify_password(password.expose().as_bytes(), &parsed)
        .is_ok()
}

/// A hash no password matches, checked when the email is unknown so that an unknown email
/// takes as long to refuse as a wrong password.
pub fn decoy_hash() -> &'static str {
    static DECOY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DECOY.get_or_init(|| hash_password(&Secret::new(random_token())))
}

/// Runs the slow password work somewhere that does not hold up other requests.
pub trait PasswordWork: Send + Sync {
    /// [`hash_password`], off the caller's thread.
    fn hash(&self, password: Secret) -> impl Future<Output = String> + Send;
    /// [`verify_password`], off the caller's thread.
    fn verify(&self, phc: String, password: Secret) -> impl Future<Output = bool> + Send;
}

/// 256 random bits, base64url without padding (session, invitation tokens).
pub fn random_token() -> String {
    let bytes: [u8; 32] = rand::random();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// SHA-256 of a token: what the store keeps (the token itself is only in the cookie/link).
pub fn token_hash(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// A well-formed email for an operator, lower-cased; `None` when it is not one.
pub fn normalise_email(text: &str) -> Option<String> {
    let email = text.trim().to_ascii_lowercase();
    let (local, domain) = email.split_once('@')?;
    let valid = !local.is_empty()
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !email.chars().any(|c| c.is_whitespace() || c.is_control())
        && email.len() <= 254;
    valid.then_some(email)
}

/// Why a sign-in was refused. The page says the same thing for an unknown email, a wrong
/// password and a disabled operator, so that it does not reveal which emails exist.
#[derive(Debug, thiserror::Error)]
pub enum SignInError {
    /// Unknown email, wrong password, disabled operator, or no password set yet.
    #[error("wrong email or password")]
    WrongCredentials,
    /// Too many failures in a row: no attempt is checked until `until`.
    #[error("locked until {until:?}")]
    Locked { until: Timestamp },
    /// The password was right; the authenticator code was wrong or already used.
    #[error("wrong authenticator code")]
    WrongCode,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A new session: the token goes into the cookie and is never stored.
#[derive(Debug)]
pub struct NewSession {
    pub token: Secret,
    pub session: OperatorSession,
}

/// What creating an operator hands back once: an invitation token when no password was
/// given, and the authenticator URI when a second factor was asked for.
#[derive(Debug)]
pub struct CreatedOperator {
    pub operator: Operator,
    pub invitation: Option<Secret>,
    pub totp_uri: Option<Secret>,
}

/// Why creating or changing an operator was refused.
#[derive(Debug, thiserror::Error)]
pub enum OperatorError {
    #[error("not a valid email address")]
    InvalidEmail,
    #[error("the password must be at least {MIN_PASSWORD_CHARS} characters")]
    WeakPassword,
    #[error("an operator with this email exists")]
    Taken,
    #[error("no such operator")]
    Unknown,
    #[error(transparent)]
    Store(StoreError),
}

impl From<StoreError> for OperatorError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::Conflict(_) => OperatorError::Taken,
            other => OperatorError::Store(other),
        }
    }
}

/// The operators' rules over a store.
pub struct Operators<S, C> {
    store: S,
    clock: C,
    vault: std::sync::Arc<Vault>,
    rules: SessionRules,
    /// The issuer shown in authenticator apps.
    issuer: String,
}

impl<S: OperatorStore, C: Clock> Operators<S, C> {
    pub fn new(store: S, clock: C, vault: std::sync::Arc<Vault>, rules: SessionRules) -> Self {
        Operators {
            store,
            clock,
            vault,
            rules,
            issuer: "otpd".to_string(),
        }
    }

    /// The rules in force.
    pub fn rules(&self) -> SessionRules {
        self.rules
    }

    /// The store (for listing).
    pub async fn list(&self) -> Result<Vec<Operator>, StoreError> {
        self.store.operators().await
    }

    /// An operator by email.
    pub async fn by_email(&self, email: &str) -> Result<Option<Operator>, StoreError> {
        match normalise_email(email) {
            Some(email) => self.store.operator_by_email(&email).await,
            None => Ok(None),
        }
    }

    /// Creates an operator with `password` (already checked for length by
    /// [`check_password`]) or, without one, an invitation; with `totp`, a second factor
    /// whose URI is handed back once.
    pub async fn create(
        &self,
        email: &str,
        role: Role,
        password_hash: Option<String>,
        totp: bool,
    ) -> Result<CreatedOperator, OperatorError> {
        let email = normalise_email(email).ok_or(OperatorError::InvalidEmail)?;
        let now = self.clock.now();
        let mut operator = Operator {
            id: OperatorId::generate(),
            email,
            role,
            password_hash,
            totp_sealed: None,
            totp_last_step: None,
            disabled: false,
            failed_sign_ins: 0,
            locked_until: None,
            invitation_hash: None,
            invitation_expires_at: None,
            created_at: now,
        };
        let mut invitation = None;
        if operator.password_hash.is_none() {
            let token = random_token();
            operator.invitation_hash = Some(token_hash(&token));
            operator.invitation_expires_at = Some(now.plus_seconds(self.rules.invitation_seconds));
            invitation = Some(Secret::new(token));
        }
        let mut totp_uri = None;
        if totp {
            let (sealed, uri) = self.new_totp(&operator.email);
            operator.totp_sealed = Some(sealed);
            totp_uri = Some(uri);
        }
        self.store.create_operator(&operator).await?;
        Ok(CreatedOperator {
            operator,
            invitation,
            totp_uri,
        })
    }

    /// Replaces an operator's role, disabled flag, password or second factor (`update`
    /// changes the copy read from the store); a disable or a new password ends every
    /// session. False when the operator is gone.
    pub async fn update(
        &self,
        operator: &Operator,
        end_sessions: bool,
    ) -> Result<bool, StoreError> {
        let updated = self.store.update_operator(operator).await?;
        if updated && end_sessions {
            self.store.delete_sessions_of(operator.id).await?;
        }
        Ok(updated)
    }

    /// A fresh invitation for an operator (a password reset by an admin): the old password
    /// stops working and every session ends. The token is handed back once.
    pub async fn reset(&self, mut operator: Operator) -> Result<Secret, StoreError> {
        let token = random_token();
        operator.password_hash = None;
        operator.invitation_hash = Some(token_hash(&token));
        operator.invitation_expires_at =
            Some(self.clock.now().plus_seconds(self.rules.invitation_seconds));
        operator.failed_sign_ins = 0;
        operator.locked_until = None;
        self.update(&operator, true).await?;
        Ok(Secret::new(token))
    }

    /// A new second factor for `operator`: its sealed seed and `otpauth://` URI.
    pub fn new_totp(&self, email: &str) -> (String, Secret) {
        let seed: [u8; 20] = rand::random();
        let sealed =
            base64::engine::general_purpose::STANDARD.encode(self.vault.seal(&hex::encode(seed)));
        let uri = totp_for(&seed, &self.issuer, email)
            .to_url()
            .unwrap_or_default();
        (sealed, Secret::new(uri))
    }

    /// The operator an outstanding, unexpired invitation belongs to.
    pub async fn invited(&self, token: &str) -> Result<Option<Operator>, StoreError> {
        let now = self.clock.now();
        Ok(self
            .store
            .operator_by_invitation(token_hash(token))
            .await?
            .filter(|operator| {
                !operator.disabled && operator.invitation_expires_at.is_some_and(|t| t > now)
            }))
    }

    /// Sets the password of an invited operator (the invitation is used up).
    pub async fn accept_invitation(
        &self,
        mut operator: Operator,
        password_hash: String,
    ) -> Result<bool, StoreError> {
        operator.password_hash = Some(password_hash);
        operator.invitation_hash = None;
        operator.invitation_expires_at = None;
        self.update(&operator, true).await
    }

    /// Checks a sign-in: the email's operator, its lock, the password (through `work`, a
    /// decoy hash when the email is unknown) and, when it has one, the authenticator code.
    /// Without a code from an operator that needs one, the session answered waits for it
    /// ([`OperatorSession::second_factor_pending`]).
    pub async fn sign_in(
        &self,
        work: &impl PasswordWork,
        email: &str,
        password: Secret,
    ) -> Result<(Operator, NewSession), SignInError> {
        let operator = self.by_email(email).await?;
        let now = self.clock.now();
        if let Some(until) = operator
            .as_ref()
            .and_then(|o| o.locked_until)
            .filter(|until| *until > now)
        {
            return Err(SignInError::Locked { until });
        }
        let phc = operator
            .as_ref()
            .and_then(|o| o.password_hash.clone())
            .unwrap_or_else(|| decoy_hash().to_string());
        let right = work.verify(phc, password).await;
        let Some(mut operator) = operator else {
            return Err(SignInError::WrongCredentials);
        };
        if !right || operator.disabled || operator.password_hash.is_none() {
            self.failed(&operator).await?;
            return Err(SignInError::WrongCredentials);
        }
        if operator.failed_sign_ins > 0 || operator.locked_until.is_some() {
            operator.failed_sign_ins = 0;
            operator.locked_until = None;
            self.store.update_operator(&operator).await?;
        }
        let pending = operator.totp_sealed.is_some();
        let session = self.open_session(operator.id, pending).await?;
        Ok((operator, session))
    }

    /// Completes a sign-in waiting for its second factor: a right, unused code replaces the
    /// pending session with a full one (a new token); a wrong one counts as a failure.
    pub async fn second_factor(
        &self,
        pending: &OperatorSession,
        code: &str,
    ) -> Result<NewSession, SignInError> {
        let Some(mut operator) = self.store.operator(pending.operator).await? else {
            return Err(SignInError::WrongCredentials);
        };
        let now = self.clock.now();
        if let Some(until) = operator.locked_until.filter(|until| *until > now) {
            return Err(SignInError::Locked { until });
        }
        let step = operator
            .totp_sealed
            .as_deref()
            .and_then(|sealed| self.totp_step(sealed, &operator.email, code));
        let Some(step) =
            step.filter(|step| operator.totp_last_step.is_none_or(|last| *step > last))
        else {
            self.failed(&operator).await?;
            return Err(SignInError::WrongCode);
        };
        operator.totp_last_step = Some(step);
        operator.failed_sign_ins = 0;
        self.store.update_operator(&operator).await?;
        self.store.delete_session(pending.token_hash).await?;
        Ok(self.open_session(operator.id, false).await?)
    }

    /// The session and operator a cookie's token stands for, if still valid: not idle past
    /// the idle timeout, not older than the absolute one, its operator enabled. Refreshes
    /// `last_seen_at` at most once a minute (a write per page would be waste).
    pub async fn session(
        &self,
        token: &str,
    ) -> Result<Option<(Operator, OperatorSession)>, StoreError> {
        let hash = token_hash(token);
        let Some(session) = self.store.session(hash).await? else {
            return Ok(None);
        };
        let now = self.clock.now();
        let idle = now.0 - session.last_seen_at.0 > self.rules.idle_timeout_seconds * 1000;
        let old = now.0 - session.created_at.0 > self.rules.absolute_timeout_seconds * 1000;
        if idle || old {
            self.store.delete_session(hash).await?;
            return Ok(None);
        }
        let Some(operator) = self.store.operator(session.operator).await? else {
            return Ok(None);
        };
        if operator.disabled {
            self.store.delete_sessions_of(operator.id).await?;
            return Ok(None);
        }
        if now.0 - session.last_seen_at.0 > 60_000 {
            self.store.touch_session(hash, now).await?;
        }
        Ok(Some((operator, session)))
    }

    /// Ends one session (sign out).
    pub async fn sign_out(&self, token: &str) -> Result<(), StoreError> {
        self.store
            .delete_session(token_hash(token))
            .await
            .map(|_| ())
    }

    /// Ends every session of `operator` (sign out everywhere); how many.
    pub async fn sign_out_everywhere(&self, operator: OperatorId) -> Result<u64, StoreError> {
        self.store.delete_sessions_of(operator).await
    }

    /// Removes expired sessions (the sweeper); how many.
    pub async fn sweep(&self) -> Result<u64, StoreError> {
        let now = self.clock.now();
        self.store
            .delete_stale_sessions(
                now.plus_seconds(-self.rules.idle_timeout_seconds),
                now.plus_seconds(-self.rules.absolute_timeout_seconds),
            )
            .await
    }

    async fn open_session(
        &self,
        operator: OperatorId,
        second_factor_pending: bool,
    ) -> Result<NewSession, StoreError> {
        let token = random_token();
        let now = self.clock.now();
        let session = OperatorSession {
            token_hash: token_hash(&token),
            operator,
            second_factor_pending,
            created_at: now,
            last_seen_at: now,
        };
        self.store.create_session(&session).await?;
        Ok(NewSession {
            token: Secret::new(token),
            session,
        })
    }

    async fn failed(&self, operator: &Operator) -> Result<(), StoreError> {
        let until = self.clock.now().plus_seconds(self.rules.lock_seconds);
        let count = self
            .store
            .record_failed_sign_in(operator.id, self.rules.lock_after_failures, until)
            .await?;
        if count == 0 {
            tracing::warn!(operator = %operator.email, "console operator locked after repeated failed sign-ins");
        }
        Ok(())
    }

    /// The time step `code` is right for (now, or one step either side), if any.
    fn totp_step(&self, sealed: &str, email: &str, code: &str) -> Option<i64> {
        let sealed = base64::engine::general_purpose::STANDARD
            .decode(sealed)
            .ok()?;
        let seed = hex::decode(self.vault.open(&sealed).ok()?).ok()?;
        let totp = totp_for(&seed, &self.issuer, email);
        let now = (self.clock.now().0 / 1000).max(0) as u64;
        let code = code.trim();
        (-1i64..=1).find_map(|offset| {
            let at = now.checked_add_signed(offset * 30)?;
            (totp.generate(at).to_string() == code).then_some((at / 30) as i64)
        })
    }
}

/// The authenticator for a 160-bit seed: SHA-1, 6 digits, 30 s (what every app reads).
/// The account name only labels the app's entry; a `:` (which the URI format forbids there)
/// becomes `_`.
fn totp_for(seed: &[u8], issuer: &str, email: &str) -> totp_rs::Totp {
    totp_rs::Builder::new()
        .with_algorithm(totp_rs::Algorithm::SHA1)
        .with_digits(6)
        .with_skew(1)
        .with_step_duration(30)
        .with_secret(seed.to_vec())
        .with_issuer(Some(issuer))
        .with_account_name(email.replace(':', "_"))
        .build_noncompliant()
}

/// The code an authenticator app shows for the operator's sealed seed at `unix_seconds`
/// (tests, and the CLI's enrolment check).
pub fn totp_code(vault: &Vault, sealed: &str, unix_seconds: u64) -> Option<String> {
    let sealed = base64::engine::general_purpose::STANDARD
        .decode(sealed)
        .ok()?;
    let seed = hex::decode(vault.open(&sealed).ok()?).ok()?;
    Some(
        totp_for(&seed, "otpd", "")
            .generate(unix_seconds)
            .to_string(),
    )
}

/// An operator's sealed second-factor seed resealed under the vault's current key, when it is
/// sealed under another (key rotation); `Ok(None)` when it already is under the current one.
pub fn reseal_totp(
    vault: &Vault,
    sealed: &str,
) -> Result<Option<String>, crate::vault::VaultError> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(sealed)
        .map_err(|_| crate::vault::VaultError::Damaged)?;
    if Vault::key_of(&bytes) == Some(vault.current()) {
        return Ok(None);
    }
    let seed = vault.open(&bytes)?;
    Ok(Some(
        base64::engine::general_purpose::STANDARD.encode(vault.seal(&seed)),
    ))
}

/// Refuses a password shorter than [`MIN_PASSWORD_CHARS`].
pub fn check_password(password: &Secret) -> Result<(), OperatorError> {
    if password.expose().chars().count() < MIN_PASSWORD_CHARS {
        return Err(OperatorError::WeakPassword);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
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
}
