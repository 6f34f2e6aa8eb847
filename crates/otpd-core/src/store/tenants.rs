//! Accounts, API keys, applications, access tokens and services.

use std::future::Future;

use crate::ids::{AccountId, ApiKeyId, ApplicationId, ServiceId};
use crate::store::StoreError;
use crate::tenants::{AccessToken, AccountRecord, ApiKeyRecord, Application, ServiceRecord};

/// The tenants and their credentials: what authentication and the management APIs read and
/// write.
pub trait TenantStore: Send + Sync + 'static {
    /// Creates an account (the tenant, with its hashed auth token).
    fn create_account(
        &self,
        account: &AccountRecord,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Reads an account.
    fn account(
        &self,
        id: AccountId,
    ) -> impl Future<Output = Result<Option<AccountRecord>, StoreError>> + Send;

    /// Every account, oldest first.
    fn accounts(&self) -> impl Future<Output = Result<Vec<AccountRecord>, StoreError>> + Send;

    /// Creates an API key of an account.
    fn create_api_key(
        &self,
        key: &ApiKeyRecord,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Reads an API key.
    fn api_key(
        &self,
        id: ApiKeyId,
    ) -> impl Future<Output = Result<Option<ApiKeyRecord>, StoreError>> + Send;

    /// Replaces an account's auth token hash (the old token stops working); false when there
    /// is no such account.
    fn rotate_auth_token(
        &self,
        id: AccountId,
        auth_token_hash: [u8; 32],
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Replaces the stored hash of one credential, if it still is `old` (a credential issued
    /// before a key rotation, re-hashed under the current key when it is next used); false
    /// when it changed meanwhile.
    fn rehash_credential(
        &self,
        credential: crate::tenants::StoredCredential,
        old: [u8; 32],
        new: [u8; 32],
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// An account's API keys in creation order (their hashes, never secrets).
    fn api_keys(
        &self,
        account: AccountId,
    ) -> impl Future<Output = Result<Vec<ApiKeyRecord>, StoreError>> + Send;

    /// Deletes an API key of `account` (it stops working); false when the account has no such
    /// key.
    fn revoke_api_key(
        &self,
        account: AccountId,
        id: ApiKeyId,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Creates a service of an existing account.
    fn create_service(
        &self,
        service: &ServiceRecord,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Services of an account in creation order, starting after `after`, at most `limit`.
    fn services(
        &self,
        account: AccountId,
        after: Option<ServiceId>,
        limit: u32,
    ) -> impl Future<Output = Result<Vec<ServiceRecord>, StoreError>> + Send;

    /// Replaces a service's name and settings. False when there is no such service.
    fn update_service(
        &self,
        service: &ServiceRecord,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Deletes a service (it and its verifications stop being visible). False when absent.
    fn delete_service(
        &self,
        id: ServiceId,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Creates a service and an application bound to it, in one transaction, under an
    /// existing account.
    fn create_application(
        &self,
        service: &ServiceRecord,
        application: &Application,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Reads a service (not a deleted one).
    fn service(
        &self,
        id: ServiceId,
    ) -> impl Future<Output = Result<Option<ServiceRecord>, StoreError>> + Send;

    /// Reads an application by id.
    fn application(
        &self,
        id: ApplicationId,
    ) -> impl Future<Output = Result<Option<Application>, StoreError>> + Send;

    /// Finds the application owning an API key, by the key's keyed hash (O(1)).
    fn application_by_api_key(
        &self,
        api_key_hash: [u8; 32],
    ) -> impl Future<Output = Result<Option<Application>, StoreError>> + Send;

    /// Every application, oldest first.
    fn applications(&self) -> impl Future<Output = Result<Vec<Application>, StoreError>> + Send;

    /// Replaces an application's secret and API key hashes and revokes all its tokens.
    fn rotate_application_secret(
        &self,
        id: ApplicationId,
        secret_hash: [u8; 32],
        api_key_hash: [u8; 32],
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Stores a new access token (by its hash).
    fn insert_token(
        &self,
        token: &AccessToken,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Finds a token by its keyed hash.
    fn token(
        &self,
        token_hash: [u8; 32],
    ) -> impl Future<Output = Result<Option<AccessToken>, StoreError>> + Send;

    /// Revokes a token of `application`. False when no such token exists for it.
    fn revoke_token(
        &self,
        token_hash: [u8; 32],
        application: ApplicationId,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;
}
