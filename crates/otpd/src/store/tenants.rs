//! Accounts, API keys, applications, access tokens and services, on either backend.

use otpd_core::auth::{AccessToken, AccountRecord, ApiKeyRecord, Application};
use otpd_core::store::{ServiceRecord, TenantStore};
use otpd_core::{AccountId, ApiKeyId, ApplicationId, ServiceId, StoreError};

use super::AnyStore;

impl TenantStore for AnyStore {
    async fn create_account(&self, account: &AccountRecord) -> Result<(), StoreError> {
        delegate!(self, s => s.create_account(account))
    }

    // Not cached: a rotated auth token or a revoked key must be refused at once on every node
    // (a PostgreSQL cluster, or the server while `otpd apikey revoke` runs beside it).
    async fn account(&self, id: AccountId) -> Result<Option<AccountRecord>, StoreError> {
        delegate!(self, s => s.account(id))
    }

    async fn accounts(&self) -> Result<Vec<AccountRecord>, StoreError> {
        delegate!(self, s => s.accounts())
    }

    async fn create_api_key(&self, key: &ApiKeyRecord) -> Result<(), StoreError> {
        delegate!(self, s => s.create_api_key(key))
    }

    async fn api_key(&self, id: ApiKeyId) -> Result<Option<ApiKeyRecord>, StoreError> {
        delegate!(self, s => s.api_key(id))
    }

    async fn rotate_auth_token(
        &self,
        id: AccountId,
        auth_token_hash: [u8; 32],
    ) -> Result<bool, StoreError> {
        delegate!(self, s => s.rotate_auth_token(id, auth_token_hash))
    }

    async fn rehash_credential(
        &self,
        credential: otpd_core::tenants::StoredCredential,
        old: [u8; 32],
        new: [u8; 32],
    ) -> Result<bool, StoreError> {
        delegate!(self, s => s.rehash_credential(credential, old, new))
    }

    async fn api_keys(&self, account: AccountId) -> Result<Vec<ApiKeyRecord>, StoreError> {
        delegate!(self, s => s.api_keys(account))
    }

    async fn revoke_api_key(&self, account: AccountId, id: ApiKeyId) -> Result<bool, StoreError> {
        delegate!(self, s => s.revoke_api_key(account, id))
    }

    async fn create_service(&self, service: &ServiceRecord) -> Result<(), StoreError> {
        delegate!(self, s => s.create_service(service))
    }

    async fn services(
        &self,
        account: AccountId,
        after: Option<ServiceId>,
        limit: u32,
    ) -> Result<Vec<ServiceRecord>, StoreError> {
        delegate!(self, s => s.services(account, after, limit))
    }

    async fn update_service(&self, service: &ServiceRecord) -> Result<bool, StoreError> {
        let updated = delegate!(self, s => s.update_service(service));
        self.cache.services.forget(&service.id);
        updated
    }

    async fn delete_service(&self, id: ServiceId) -> Result<bool, StoreError> {
        let deleted = delegate!(self, s => s.delete_service(id));
        self.cache.services.forget(&id);
        deleted
    }

    async fn create_application(
        &self,
        service: &ServiceRecord,
        application: &Application,
    ) -> Result<(), StoreError> {
        delegate!(self, s => s.create_application(service, application))
    }

    async fn service(&self, id: ServiceId) -> Result<Option<ServiceRecord>, StoreError> {
        if let Some(cached) = self.cache.services.get(&id) {
            return Ok(cached);
        }
        let service = delegate!(self, s => s.service(id))?;
        self.cache.services.put(id, service.clone());
        Ok(service)
    }

    async fn application(&self, id: ApplicationId) -> Result<Option<Application>, StoreError> {
        delegate!(self, s => s.application(id))
    }

    async fn application_by_api_key(
        &self,
        api_key_hash: [u8; 32],
    ) -> Result<Option<Application>, StoreError> {
        if let Some(cached) = self.cache.applications.get(&api_key_hash) {
            return Ok(cached);
        }
        let application = delegate!(self, s => s.application_by_api_key(api_key_hash))?;
        self.cache
            .applications
            .put(api_key_hash, application.clone());
        Ok(application)
    }

    async fn applications(&self) -> Result<Vec<Application>, StoreError> {
        delegate!(self, s => s.applications())
    }

    async fn rotate_application_secret(
        &self,
        id: ApplicationId,
        secret_hash: [u8; 32],
        api_key_hash: [u8; 32],
    ) -> Result<bool, StoreError> {
        let rotated =
            delegate!(self, s => s.rotate_application_secret(id, secret_hash, api_key_hash));
        // The old key's hash is not known here: forget every cached key of this node.
        self.cache.applications.clear();
        rotated
    }

    async fn insert_token(&self, token: &AccessToken) -> Result<(), StoreError> {
        delegate!(self, s => s.insert_token(token))
    }

    async fn token(&self, token_hash: [u8; 32]) -> Result<Option<AccessToken>, StoreError> {
        delegate!(self, s => s.token(token_hash))
    }

    async fn revoke_token(
        &self,
        token_hash: [u8; 32],
        application: ApplicationId,
    ) -> Result<bool, StoreError> {
        delegate!(self, s => s.revoke_token(token_hash, application))
    }
}
