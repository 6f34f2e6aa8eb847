//! Accounts, API keys, applications, access tokens and services on SQLite.

use otpd_core::auth::{AccessToken, AccountRecord, ApiKeyRecord, Application};
use otpd_core::store::{ServiceRecord, TenantStore};
use otpd_core::{AccountId, ApiKeyId, ApplicationId, ServiceId, StoreError};
use rusqlite::{Connection, params};

use crate::rows;
use crate::rows::{APPLICATION_COLUMNS, SERVICE_COLUMNS};
use crate::{SqliteStore, execute, query_all, query_one};

impl TenantStore for SqliteStore {
    async fn create_account(&self, account: &AccountRecord) -> Result<(), StoreError> {
        let account = account.clone();
        self.write(move |connection| {
            execute(
                connection,
                "INSERT INTO accounts (id, name, auth_token_hash, created_at) VALUES (?1, ?2, ?3, ?4)",
                params![
                    account.id.as_bytes().as_slice(),
                    account.name,
                    account.auth_token_hash.as_slice(),
                    account.created_at.0
                ],
            )?;
            Ok(())
        })
        .await
    }

    async fn account(&self, id: AccountId) -> Result<Option<AccountRecord>, StoreError> {
        self.read_untouched_by_unconfirmed(move |connection| {
            query_one(
                connection,
                "SELECT id, name, auth_token_hash, created_at FROM accounts WHERE id = ?1",
                [id.as_bytes().as_slice()],
                rows::account,
            )
        })
        .await
    }

    async fn accounts(&self) -> Result<Vec<AccountRecord>, StoreError> {
        self.read(move |connection| {
            query_all(
                connection,
                "SELECT id, name, auth_token_hash, created_at FROM accounts \
                 ORDER BY created_at, id",
                [],
                rows::account,
            )
        })
        .await
    }

    async fn create_api_key(&self, key: &ApiKeyRecord) -> Result<(), StoreError> {
        let key = key.clone();
        self.write(move |connection| {
            execute(
                connection,
                "INSERT INTO api_keys (id, account_id, name, secret_hash, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![
                    key.id.as_bytes().as_slice(),
                    key.account_id.as_bytes().as_slice(),
                    key.name,
                    key.secret_hash.as_slice(),
                    key.created_at.0
                ],
            )?;
            Ok(())
        })
        .await
    }

    async fn api_key(&self, id: ApiKeyId) -> Result<Option<ApiKeyRecord>, StoreError> {
        self.read_untouched_by_unconfirmed(move |connection| {
            query_one(
                connection,
                "SELECT id, account_id, name, secret_hash, created_at FROM api_keys WHERE id = ?1",
                [id.as_bytes().as_slice()],
                rows::api_key,
            )
        })
        .await
    }

    async fn rotate_auth_token(
        &self,
        id: AccountId,
        auth_token_hash: [u8; 32],
    ) -> Result<bool, StoreError> {
        self.write(move |connection| {
            Ok(execute(
                connection,
                "UPDATE accounts SET auth_token_hash = ?2 WHERE id = ?1",
                params![id.as_bytes().as_slice(), auth_token_hash.as_slice()],
            )? == 1)
        })
        .await
    }

    async fn rehash_credential(
        &self,
        credential: otpd_core::tenants::StoredCredential,
        old: [u8; 32],
        new: [u8; 32],
    ) -> Result<bool, StoreError> {
        let (table, column, id) = credential.location();
        let sql = format!("UPDATE {table} SET {column} = ?1 WHERE id = ?2 AND {column} = ?3");
        self.write(move |connection| {
            Ok(execute(
                connection,
                &sql,
                params![new.as_slice(), id.as_bytes().as_slice(), old.as_slice()],
            )? == 1)
        })
        .await
    }

    async fn api_keys(&self, account: AccountId) -> Result<Vec<ApiKeyRecord>, StoreError> {
        self.read(move |connection| {
            query_all(
                connection,
                "SELECT id, account_id, name, secret_hash, created_at FROM api_keys \
                 WHERE account_id = ?1 ORDER BY created_at, id",
                [account.as_bytes().as_slice()],
                rows::api_key,
            )
        })
        .await
    }

    async fn revoke_api_key(&self, account: AccountId, id: ApiKeyId) -> Result<bool, StoreError> {
        self.write(move |connection| {
            Ok(execute(
                connection,
                "DELETE FROM api_keys WHERE id = ?1 AND account_id = ?2",
                params![id.as_bytes().as_slice(), account.as_bytes().as_slice()],
            )? == 1)
        })
        .await
    }

    async fn create_service(&self, service: &ServiceRecord) -> Result<(), StoreError> {
        let service = service.clone();
        self.write(move |connection| insert_service(connection, &service))
            .await
    }

    async fn services(
        &self,
        account: AccountId,
        after: Option<ServiceId>,
        limit: u32,
    ) -> Result<Vec<ServiceRecord>, StoreError> {
        self.read(move |connection| {
            query_all(
                connection,
                &format!(
                    "SELECT {SERVICE_COLUMNS} FROM services WHERE account_id = ?1 AND deleted = 0 \
                     AND (?2 IS NULL OR id > ?2) ORDER BY id LIMIT ?3"
                ),
                params![
                    account.as_bytes().as_slice(),
                    after.map(|a| a.as_bytes().to_vec()),
                    limit
                ],
                rows::service,
            )
        })
        .await
    }

    async fn update_service(&self, service: &ServiceRecord) -> Result<bool, StoreError> {
        let settings = serde_json::to_string(&service.settings)
            .map_err(|e| StoreError::Corrupt(format!("settings do not serialise: {e}")))?;
        let (id, name, updated_at) = (service.id, service.name.clone(), service.updated_at);
        self.write(move |connection| {
            let changed = execute(
                connection,
                "UPDATE services SET name = ?1, settings = ?2, updated_at = ?3 WHERE id = ?4 AND deleted = 0",
                params![name, settings, updated_at.0, id.as_bytes().as_slice()],
            )?;
            Ok(changed == 1)
        })
        .await
    }

    async fn delete_service(&self, id: ServiceId) -> Result<bool, StoreError> {
        self.write(move |connection| {
            let changed = execute(
                connection,
                "UPDATE services SET deleted = 1 WHERE id = ?1 AND deleted = 0",
                [id.as_bytes().as_slice()],
            )?;
            Ok(changed == 1)
        })
        .await
    }

    async fn create_application(
        &self,
        service: &ServiceRecord,
        application: &Application,
    ) -> Result<(), StoreError> {
        let service = service.clone();
        let application = application.clone();
        self.write(move |connection| {
            insert_service(connection, &service)?;
            execute(
                connection,
                &format!(
                    "INSERT INTO applications ({APPLICATION_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)"
                ),
                params![
                    application.id.as_bytes().as_slice(),
                    application.account_id.as_bytes().as_slice(),
                    application.service_id.as_bytes().as_slice(),
                    application.name,
                    application.secret_hash.as_slice(),
                    application.api_key_hash.as_slice(),
                    application.created_at.0
                ],
            )?;
            Ok(())
        })
        .await
    }

    async fn service(&self, id: ServiceId) -> Result<Option<ServiceRecord>, StoreError> {
        self.read_untouched_by_unconfirmed(move |connection| {
            query_one(
                connection,
                &format!("SELECT {SERVICE_COLUMNS} FROM services WHERE id = ?1 AND deleted = 0"),
                [id.as_bytes().as_slice()],
                rows::service,
            )
        })
        .await
    }

    async fn application(&self, id: ApplicationId) -> Result<Option<Application>, StoreError> {
        self.read_untouched_by_unconfirmed(move |connection| {
            query_one(
                connection,
                &format!("SELECT {APPLICATION_COLUMNS} FROM applications WHERE id = ?1"),
                [id.as_bytes().as_slice()],
                rows::application,
            )
        })
        .await
    }

    async fn application_by_api_key(
        &self,
        api_key_hash: [u8; 32],
    ) -> Result<Option<Application>, StoreError> {
        self.read_untouched_by_unconfirmed(move |connection| {
            query_one(
                connection,
                &format!("SELECT {APPLICATION_COLUMNS} FROM applications WHERE api_key_hash = ?1"),
                [api_key_hash.as_slice()],
                rows::application,
            )
        })
        .await
    }

    async fn applications(&self) -> Result<Vec<Application>, StoreError> {
        self.read(move |connection| {
            query_all(
                connection,
                &format!("SELECT {APPLICATION_COLUMNS} FROM applications ORDER BY created_at, id"),
                [],
                rows::application,
            )
        })
        .await
    }

    async fn rotate_application_secret(
        &self,
        id: ApplicationId,
        secret_hash: [u8; 32],
        api_key_hash: [u8; 32],
    ) -> Result<bool, StoreError> {
        self.write(move |connection| {
            let changed = execute(
                connection,
                "UPDATE applications SET secret_hash = ?1, api_key_hash = ?2 WHERE id = ?3",
                params![
                    secret_hash.as_slice(),
                    api_key_hash.as_slice(),
                    id.as_bytes().as_slice()
                ],
            )?;
            execute(
                connection,
                "UPDATE access_tokens SET revoked = 1 WHERE application_id = ?1",
                [id.as_bytes().as_slice()],
            )?;
            Ok(changed == 1)
        })
        .await
    }

    async fn insert_token(&self, token: &AccessToken) -> Result<(), StoreError> {
        let token = token.clone();
        self.write(move |connection| {
            execute(
                connection,
                "INSERT INTO access_tokens (token_hash, application_id, scope, expires_at, revoked) \
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                params![
                    token.token_hash.as_slice(),
                    token.application_id.as_bytes().as_slice(),
                    token.scope,
                    token.expires_at.0,
                    token.revoked as i64
                ],
            )?;
            Ok(())
        })
        .await
    }

    async fn token(&self, token_hash: [u8; 32]) -> Result<Option<AccessToken>, StoreError> {
        self.read_untouched_by_unconfirmed(move |connection| {
            query_one(
                connection,
                "SELECT token_hash, application_id, scope, expires_at, revoked FROM access_tokens WHERE token_hash = ?1",
                [token_hash.as_slice()],
                rows::token,
            )
        })
        .await
    }

    async fn revoke_token(
        &self,
        token_hash: [u8; 32],
        application: ApplicationId,
    ) -> Result<bool, StoreError> {
        self.write(move |connection| {
            let changed = execute(
                connection,
                "UPDATE access_tokens SET revoked = 1 WHERE token_hash = ?1 AND application_id = ?2",
                params![token_hash.as_slice(), application.as_bytes().as_slice()],
            )?;
            Ok(changed == 1)
        })
        .await
    }
}

fn insert_service(connection: &Connection, service: &ServiceRecord) -> Result<(), StoreError> {
    let settings = serde_json::to_string(&service.settings)
        .map_err(|e| StoreError::Corrupt(format!("settings do not serialise: {e}")))?;
    execute(
        connection,
        &format!("INSERT INTO services ({SERVICE_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6)"),
        params![
            service.id.as_bytes().as_slice(),
            service.account_id.as_bytes().as_slice(),
            service.name,
            settings,
            service.created_at.0,
            service.updated_at.0
        ],
    )?;
    Ok(())
}
