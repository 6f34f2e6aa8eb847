//! Application credentials and access tokens. Secrets are long random strings, so a keyed
//! hash (HMAC-SHA256 under the server secret) is enough at rest and lets a request be
//! authenticated with one indexed lookup instead of a slow password hash.

use rand::Rng;

use crate::tenants::StoredCredential;

use crate::clock::Clock;
use crate::code::ServerSecret;
use crate::ids::{AccountId, ApiKeyId, ApplicationId, ServiceId};
use crate::settings::OtpSettings;
use crate::store::{StoreError, TenantStore};
pub use crate::tenants::{AccessToken, AccountRecord, ApiKeyRecord, Application, ServiceRecord};

/// Scopes a token may carry (the SMS.CX names). An empty request grants them all.
pub const KNOWN_SCOPES: &[&str] = &[
    "sms",
    "groups",
    "templates",
    "originators",
    "numbers",
    "reports",
    "shortlinks",
    "attachments",
    "viber",
    "whatsapp",
    "otp",
];

/// An account's credentials, shown once.
#[derive(Debug, Clone)]
pub struct IssuedAccount {
    pub account: AccountRecord,
    /// The auth token in clear.
    pub auth_token: String,
}

/// An API key's credentials, shown once.
#[derive(Debug, Clone)]
pub struct IssuedApiKey {
    pub key: ApiKeyRecord,
    /// The secret in clear.
    pub secret: String,
}

/// Credentials shown once, at creation or rotation.
#[derive(Debug, Clone)]
pub struct IssuedCredentials {
    pub application: Application,
    /// The application secret in clear.
    pub secret: String,
    /// The API key in clear.
    pub api_key: String,
    /// The new account's auth token, when the application was created with a new account.
    pub account_token: Option<String>,
}

/// A token shown once, when issued.
#[derive(Debug, Clone)]
pub struct IssuedToken {
    /// The bearer token in clear.
    pub token: String,
    /// Seconds until it expires.
    pub expires_in: i64,
    /// Granted scopes, space-separated.
    pub scope: String,
}

/// Why a token request was refused.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// Unknown application or wrong secret.
    #[error("invalid client")]
    InvalidClient,
    /// A requested scope is unknown.
    #[error("invalid scope")]
    InvalidScope,
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Who a request is made by, once authenticated.
#[derive(Debug, Clone, PartialEq)]
pub struct Caller {
    pub application: Application,
    /// The scopes granted (all of them for an API key).
    pub scope: String,
}

impl Caller {
    /// Whether the caller may use `scope`.
    pub fn grants(&self, scope: &str) -> bool {
        self.scope.split(' ').any(|s| s == scope)
    }
}

/// Issues and checks credentials.
#[derive(Debug, Clone)]
pub struct Authenticator<S, C> {
    store: S,
    clock: C,
    secret: ServerSecret,
    /// Secrets before a key rotation: credentials issued under them still authenticate.
    previous: Vec<ServerSecret>,
    token_lifetime_seconds: i64,
}

/// HMAC-SHA256 of a credential under `secret`; `kind` separates secrets, API keys and tokens.
fn credential_mac(secret: &ServerSecret, kind: &str, credential: &str) -> [u8; 32] {
    secret.mac(&[
        b"otpd-credential:",
        kind.as_bytes(),
        b":",
        credential.as_bytes(),
    ])
}

/// A fresh 256-bit secret as 64 hex digits.
pub fn random_secret() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    hex::encode(bytes)
}

impl<S: TenantStore + Clone, C: Clock + Clone> Authenticator<S, C> {
    /// An authenticator issuing tokens that live `token_lifetime_seconds`.
    pub fn new(store: S, clock: C, secret: ServerSecret, token_lifetime_seconds: i64) -> Self {
        Authenticator {
            store,
            clock,
            secret,
            previous: Vec::new(),
            token_lifetime_seconds,
        }
    }

    /// An authenticator that also accepts credentials issued under the `previous` secrets (a
    /// key rotation); new credentials are hashed under the current one.
    pub fn with_previous(mut self, previous: Vec<ServerSecret>) -> Self {
        self.previous = previous;
        self
    }

    /// The keyed hashes of a credential under the current secret, then the previous ones.
    fn credential_hashes(&self, kind: &str, credential: &str) -> Vec<[u8; 32]> {
        std::iter::once(&self.secret)
            .chain(&self.previous)
            .map(|secret| credential_mac(secret, kind, credential))
            .collect()
    }

    /// Whether `stored` is the hash of `credential` under any secret (constant-time each); a
    /// match under a previous secret re-hashes the credential under the current one, so the
    /// previous secret can be removed once every credential was used (or rotated).
    async fn matches(
        &self,
        stored: &[u8; 32],
        kind: &str,
        credential: &str,
        which: StoredCredential,
    ) -> Result<bool, StoreError> {
        let hashes = self.credential_hashes(kind, credential);
        let mut matched = None;
        for (index, presented) in hashes.iter().enumerate() {
            let equal: bool = subtle::ConstantTimeEq::ct_eq(&presented[..], &stored[..]).into();
            if equal && matched.is_none() {
                matched = Some(index);
            }
        }
        if matched.is_some_and(|index| index > 0) {
            self.store
                .rehash_credential(which, *stored, hashes[0])
                .await?;
        }
        Ok(matched.is_some())
    }

    /// Keyed hash of a credential; `kind` separates secrets, API keys and tokens.
    pub fn credential_hash(&self, kind: &str, credential: &str) -> [u8; 32] {
        credential_mac(&self.secret, kind, credential)
    }

    /// Creates an account and returns its auth token in clear this one time.
    pub async fn create_account(&self, name: &str) -> Result<IssuedAccount, StoreError> {
        let auth_token = random_secret();
        let account = AccountRecord {
            id: AccountId::generate(),
            name: name.to_string(),
            auth_token_hash: self.credential_hash("auth-token", &auth_token),
            created_at: self.clock.now(),
        };
        self.store.create_account(&account).await?;
        Ok(IssuedAccount {
            account,
            auth_token,
        })
    }

    /// Creates an API key for an existing account. `None` when there is no such account.
    pub async fn create_api_key(
        &self,
        account: AccountId,
        name: &str,
    ) -> Result<Option<IssuedApiKey>, StoreError> {
        if self.store.account(account).await?.is_none() {
            return Ok(None);
        }
        let secret = random_secret();
        let key = ApiKeyRecord {
            id: ApiKeyId::generate(),
            account_id: account,
            name: name.to_string(),
            secret_hash: self.credential_hash("api-key-secret", &secret),
            created_at: self.clock.now(),
        };
        self.store.create_api_key(&key).await?;
        Ok(Some(IssuedApiKey { key, secret }))
    }

    /// Replaces an account's auth token, returning the new one in clear this one time; the
    /// old one stops working at once. `None` when there is no such account.
    pub async fn rotate_auth_token(
        &self,
        account: AccountId,
    ) -> Result<Option<String>, StoreError> {
        let auth_token = random_secret();
        let hash = self.credential_hash("auth-token", &auth_token);
        Ok(self
            .store
            .rotate_auth_token(account, hash)
            .await?
            .then_some(auth_token))
    }

    /// Revokes an API key of `account` (it stops working at once); false when the account
    /// has no such key.
    pub async fn revoke_api_key(
        &self,
        account: AccountId,
        key: ApiKeyId,
    ) -> Result<bool, StoreError> {
        self.store.revoke_api_key(account, key).await
    }

    /// The account behind HTTP Basic credentials: `AC…` + auth token, or `SK…` + API key
    /// secret (the key acts for its account). Constant-time on the hashes.
    pub async fn authenticate_account(
        &self,
        username: &str,
        password: &str,
    ) -> Result<Option<AccountId>, StoreError> {
        let parse = |prefix: &str| {
            username
                .strip_prefix(prefix)
                .filter(|hex| hex.len() == 32)
                .and_then(|hex| uuid::Uuid::try_parse(hex).ok())
        };
        let (stored, kind, account, which) = if let Some(uuid) = parse("AC") {
            let Some(account) = self.store.account(AccountId::from_uuid(uuid)).await? else {
                return Ok(None);
            };
            let which = StoredCredential::AccountToken(account.id);
            (account.auth_token_hash, "auth-token", account.id, which)
        } else if let Some(uuid) = parse("SK") {
            let Some(key) = self.store.api_key(ApiKeyId::from_uuid(uuid)).await? else {
                return Ok(None);
            };
            let which = StoredCredential::ApiKeySecret(key.id);
            (key.secret_hash, "api-key-secret", key.account_id, which)
        } else {
            return Ok(None);
        };
        let equal = self.matches(&stored, kind, password, which).await?;
        Ok(equal.then_some(account))
    }

    /// Creates a service with `settings` and an application bound to it, in `account` or in
    /// a new account, returning the secret and API key (and a new account's auth token) in
    /// clear this one time.
    pub async fn create_application(
        &self,
        account: Option<AccountId>,
        name: &str,
        settings: OtpSettings,
    ) -> Result<IssuedCredentials, StoreError> {
        let (account_id, account_token) = match account {
            Some(id) => (id, None),
            None => {
                let issued = self.create_account(name).await?;
                (issued.account.id, Some(issued.auth_token))
            }
        };
        let now = self.clock.now();
        let service = ServiceRecord {
            id: ServiceId::generate(),
            account_id,
            name: name.to_string(),
            settings,
            created_at: now,
            updated_at: now,
        };
        let secret = random_secret();
        let api_key = random_secret();
        let application = Application {
            id: ApplicationId::generate(),
            account_id: service.account_id,
            service_id: service.id,
            name: name.to_string(),
            secret_hash: self.credential_hash("secret", &secret),
            api_key_hash: self.credential_hash("api-key", &api_key),
            created_at: now,
        };
        self.store
            .create_application(&service, &application)
            .await?;
        Ok(IssuedCredentials {
            application,
            secret,
            api_key,
            account_token,
        })
    }

    /// Replaces an application's secret and API key, revoking its tokens. `None` when there
    /// is no such application.
    pub async fn rotate_secret(
        &self,
        id: ApplicationId,
    ) -> Result<Option<IssuedCredentials>, StoreError> {
        let secret = random_secret();
        let api_key = random_secret();
        let secret_hash = self.credential_hash("secret", &secret);
        let api_key_hash = self.credential_hash("api-key", &api_key);
        if !self
            .store
            .rotate_application_secret(id, secret_hash, api_key_hash)
            .await?
        {
            return Ok(None);
        }
        let application = self.store.application(id).await?;
        Ok(application.map(|application| IssuedCredentials {
            application,
            secret,
            api_key,
            account_token: None,
        }))
    }

    /// Checks an application id and secret (constant-time on the hash).
    pub async fn verify_client(
        &self,
        application_id: &str,
        secret: &str,
    ) -> Result<Option<Application>, StoreError> {
        let Some(id) = parse_application_id(application_id) else {
            return Ok(None);
        };
        let Some(application) = self.store.application(id).await? else {
            return Ok(None);
        };
        let which = StoredCredential::ApplicationSecret(application.id);
        let equal = self
            .matches(&application.secret_hash, "secret", secret, which)
            .await?;
        Ok(equal.then_some(application))
    }

    /// OAuth2 client credentials: a fresh bearer token for a valid application id + secret.
    pub async fn issue_token(
        &self,
        application_id: &str,
        secret: &str,
        requested_scope: &str,
    ) -> Result<IssuedToken, TokenError> {
        let application = self
            .verify_client(application_id, secret)
            .await?
            .ok_or(TokenError::InvalidClient)?;
        let scopes: Vec<&str> = requested_scope.split_whitespace().collect();
        if scopes.iter().any(|s| !KNOWN_SCOPES.contains(s)) {
            return Err(TokenError::InvalidScope);
        }
        let scope = if scopes.is_empty() {
            KNOWN_SCOPES.join(" ")
        } else {
            scopes.join(" ")
        };
        let token = random_secret();
        let record = AccessToken {
            token_hash: self.credential_hash("token", &token),
            application_id: application.id,
            scope: scope.clone(),
            expires_at: self.clock.now().plus_seconds(self.token_lifetime_seconds),
            revoked: false,
        };
        self.store.insert_token(&record).await?;
        Ok(IssuedToken {
            token,
            expires_in: self.token_lifetime_seconds,
            scope,
        })
    }

    /// Revokes a token issued to the given client. False when the token is not theirs.
    pub async fn revoke_token(
        &self,
        application: &Application,
        token: &str,
    ) -> Result<bool, StoreError> {
        for hash in self.credential_hashes("token", token) {
            if self.store.revoke_token(hash, application.id).await? {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// The caller behind a bearer token, if the token is known, unrevoked and unexpired.
    pub async fn authenticate_bearer(&self, token: &str) -> Result<Option<Caller>, StoreError> {
        let mut found = None;
        for hash in self.credential_hashes("token", token) {
            found = self.store.token(hash).await?;
            if found.is_some() {
                break;
            }
        }
        let Some(record) = found else {
            return Ok(None);
        };
        if record.revoked || self.clock.now() >= record.expires_at {
            return Ok(None);
        }
        let application = self.store.application(record.application_id).await?;
        Ok(application.map(|application| Caller {
            application,
            scope: record.scope,
        }))
    }

    /// The caller behind an `X-API-KEY` key. API keys carry every scope.
    pub async fn authenticate_api_key(&self, key: &str) -> Result<Option<Caller>, StoreError> {
        let hashes = self.credential_hashes("api-key", key);
        let mut application = None;
        for (index, hash) in hashes.iter().enumerate() {
            application = self.store.application_by_api_key(*hash).await?;
            if let Some(found) = &application {
                if index > 0 {
                    let which = StoredCredential::ApplicationApiKey(found.id);
                    self.store
                        .rehash_credential(which, *hash, hashes[0])
                        .await?;
                }
                break;
            }
        }
        Ok(application.map(|application| Caller {
            application,
            scope: KNOWN_SCOPES.join(" "),
        }))
    }
}

/// Parses an application id as shown to users: 32 hex digits (hyphens tolerated).
pub fn parse_application_id(text: &str) -> Option<ApplicationId> {
    uuid::Uuid::try_parse(text.trim())
        .ok()
        .map(ApplicationId::from_uuid)
}

/// Signs status callbacks. Each service has its own signing key, derived from the server
/// secret so there is nothing extra to store or leak; receivers get it from
/// `otpd app create` / `otpd app list --json`.
#[derive(Debug, Clone)]
pub struct CallbackSigner {
    secret: ServerSecret,
}

impl CallbackSigner {
    /// A signer rooted in the server secret.
    pub fn new(secret: ServerSecret) -> Self {
        CallbackSigner { secret }
    }

    /// The hex signing key of one service.
    pub fn key_for(&self, service: ServiceId) -> String {
        hex::encode(
            self.secret
                .mac(&[b"otpd-callback-signing:", service.as_bytes()]),
        )
    }

    /// The `X-Otpd-Signature` header value for `body` sent at `unix_seconds`:
    /// `t=<unix seconds>,v1=<hex HMAC-SHA256(key, "<t>." ‖ body)>`.
    pub fn signature(&self, service: ServiceId, unix_seconds: i64, body: &[u8]) -> String {
        sign_with_key(&self.key_for(service), unix_seconds, body)
    }
}

/// The signature a receiver recomputes from its signing key (see [`CallbackSigner`]).
pub fn sign_with_key(key_hex: &str, unix_seconds: i64, body: &[u8]) -> String {
    use hmac::{Hmac, KeyInit, Mac};
    let mut mac = <Hmac<sha2::Sha256> as KeyInit>::new_from_slice(key_hex.as_bytes())
        .expect("HMAC accepts keys of any length");
    mac.update(unix_seconds.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!(
        "t={unix_seconds},v1={}",
        hex::encode(mac.finalize().into_bytes())
    )
}

/// The client's address as the per-IP limits and the audit log see it (the socket's peer,
/// or the forwarded address behind a trusted proxy); the HTTP layer sets it on every
/// request, and the dialects and the console read it.
#[derive(Debug, Clone, Default)]
pub struct ClientIp(pub Option<std::net::IpAddr>);

impl ClientIp {
    /// The address as text, for counters.
    pub fn text(&self) -> Option<String> {
        self.0.map(|ip| ip.to_string())
    }
}
