//! The tenants' records: accounts, their API keys, applications, access tokens and services,
//! as the store keeps them. [`crate::auth`] issues and checks their credentials.

use crate::clock::Timestamp;
use crate::ids::{AccountId, ApiKeyId, ApplicationId, ServiceId};
use crate::settings::OtpSettings;

/// A tenant. Its id is the Twilio Account SID (`AC` + 32 hex); its auth token is stored only
/// as a keyed hash.
#[derive(Debug, Clone, PartialEq)]
pub struct AccountRecord {
    pub id: AccountId,
    /// Shown to people (Twilio `friendly_name`); not unique.
    pub name: String,
    /// Keyed hash of the auth token.
    pub auth_token_hash: [u8; 32],
    /// When it was created.
    pub created_at: Timestamp,
}

/// A Twilio-style API key (`SK…`) that acts for one account.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiKeyRecord {
    pub id: ApiKeyId,
    /// The account it acts for.
    pub account_id: AccountId,
    /// Shown to people (Twilio `friendly_name`); not unique.
    pub name: String,
    /// Keyed hash of the secret.
    pub secret_hash: [u8; 32],
    /// When it was created.
    pub created_at: Timestamp,
}

/// API credentials bound to one service.
#[derive(Debug, Clone, PartialEq)]
pub struct Application {
    /// Its id (the OAuth client id).
    pub id: ApplicationId,
    /// Owning account.
    pub account_id: AccountId,
    /// The service whose settings and verifications it uses.
    pub service_id: ServiceId,
    /// Shown to people (Twilio `friendly_name`); not unique.
    pub name: String,
    /// Keyed hash of the application secret.
    pub secret_hash: [u8; 32],
    /// Keyed hash of the `X-API-KEY` key.
    pub api_key_hash: [u8; 32],
    /// When it was created.
    pub created_at: Timestamp,
}

/// An issued bearer token, known to the store only by its hash.
#[derive(Debug, Clone, PartialEq)]
pub struct AccessToken {
    /// Keyed hash of the token.
    pub token_hash: [u8; 32],
    /// Who it was issued to.
    pub application_id: ApplicationId,
    /// Space-separated granted scopes.
    pub scope: String,
    /// When it stops working.
    pub expires_at: Timestamp,
    /// Whether it was revoked early.
    pub revoked: bool,
}

impl AccessToken {
    /// Whether the token grants `scope`.
    pub fn grants(&self, scope: &str) -> bool {
        self.scope.split(' ').any(|s| s == scope)
    }
}

/// A service's settings with its owner, as the dialects need them to start a verification.
#[derive(Debug, Clone, PartialEq)]
pub struct ServiceRecord {
    pub id: ServiceId,
    /// The owning account.
    pub account_id: AccountId,
    /// Shown to people (Twilio `friendly_name`); not unique.
    pub name: String,
    /// OTP defaults.
    pub settings: OtpSettings,
    /// When it was created.
    pub created_at: Timestamp,
    /// When its name or settings last changed.
    pub updated_at: Timestamp,
}

/// One stored credential hash (what a key rotation re-hashes on use).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoredCredential {
    /// An account's auth token.
    AccountToken(AccountId),
    /// A Twilio-style API key's secret.
    ApiKeySecret(ApiKeyId),
    /// A native application's secret.
    ApplicationSecret(ApplicationId),
    /// A native application's `X-API-KEY` key.
    ApplicationApiKey(ApplicationId),
}

impl StoredCredential {
    /// The table, hash column and id of the credential, as both backends name them.
    pub fn location(&self) -> (&'static str, &'static str, uuid::Uuid) {
        match *self {
            StoredCredential::AccountToken(id) => ("accounts", "auth_token_hash", id.uuid()),
            StoredCredential::ApiKeySecret(id) => ("api_keys", "secret_hash", id.uuid()),
            StoredCredential::ApplicationSecret(id) => ("applications", "secret_hash", id.uuid()),
            StoredCredential::ApplicationApiKey(id) => ("applications", "api_key_hash", id.uuid()),
        }
    }
}
