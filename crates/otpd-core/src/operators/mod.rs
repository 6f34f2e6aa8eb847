//! Console operators: the people who sign in to `/console/`, separate from API credentials.
//! An operator has a role, an argon2id password (or an unused invitation), optionally an
//! authenticator-app second factor, and sessions kept in the database so that every node
//! honours them. This module holds the rules (lockout, timeouts, what each role may do); the
//! console adapter holds the cookies and the pages.

use base64::Engine;

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

mod passwords;
#[cfg(test)]
mod tests;
mod totp;

pub use passwords::{
    MIN_PASSWORD_CHARS, PasswordWork, check_password, decoy_hash, hash_password, normalise_email,
    random_token, token_hash, verify_password,
};
use totp::totp_for;
pub use totp::{reseal_totp, totp_code};

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
