//! Accounts, API keys, applications, access tokens and services on PostgreSQL.

use otpd_core::auth::{AccessToken, AccountRecord, ApiKeyRecord, Application};
use otpd_core::store::{ServiceRecord, TenantStore};
use otpd_core::{AccountId, ApiKeyId, ApplicationId, ServiceId, StoreError};
use sqlx::PgConnection;

use crate::application_columns;
use crate::rows;
use crate::service_columns;
use crate::{PgStore, db_error};

impl TenantStore for PgStore {
    async fn create_account(&self, account: &AccountRecord) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO accounts (id, name, auth_token_hash, created_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(account.id.uuid())
        .bind(&account.name)
        .bind(account.auth_token_hash.as_slice())
        .bind(account.created_at.0)
        .execute(&self.pool)
        .await
        .map_err(db_error)?;
        Ok(())
    }

    async fn account(&self, id: AccountId) -> Result<Option<AccountRecord>, StoreError> {
        let row =
            sqlx::query("SELECT id, name, auth_token_hash, created_at FROM accounts WHERE id = $1")
                .bind(id.uuid())
                .fetch_optional(&self.pool)
                .await
                .map_err(db_error)?;
        row.as_ref().map(rows::account).transpose()
    }

    async fn accounts(&self) -> Result<Vec<AccountRecord>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, name, auth_token_hash, created_at FROM accounts ORDER BY created_at, id",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(db_error)?;
        rows.iter().map(rows::account).collect()
    }

    async fn create_api_key(&self, key: &ApiKeyRecord) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO api_keys (id, account_id, name, secret_hash, created_at) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(key.id.uuid())
        .bind(key.account_id.uuid())
        .bind(&key.name)
        .bind(key.secret_hash.as_slice())
        .bind(key.created_at.0)
        .execute(&self.pool)
        .await
        .map_err(db_error)?;
        Ok(())
    }

    async fn api_key(&self, id: ApiKeyId) -> Result<Option<ApiKeyRecord>, StoreError> {
        let row = sqlx::query(
            "SELECT id, account_id, name, secret_hash, created_at FROM api_keys WHERE id = $1",
        )
        .bind(id.uuid())
        .fetch_optional(&self.pool)
        .await
        .map_err(db_error)?;
        row.as_ref().map(rows::api_key).transpose()
    }

    async fn rotate_auth_token(
        &self,
        id: AccountId,
        auth_token_hash: [u8; 32],
    ) -> Result<bool, StoreError> {
        let result = sqlx::query("UPDATE accounts SET auth_token_hash = $2 WHERE id = $1")
            .bind(id.uuid())
            .bind(auth_token_hash.as_slice())
            .execute(&self.pool)
            .await
            .map_err(db_error)?;
        Ok(result.rows_affected() == 1)
    }

    async fn rehash_credential(
        &self,
        credential: otpd_core::tenants::StoredCredential,
        old: [u8; 32],
        new: [u8; 32],
    ) -> Result<bool, StoreError> {
        let (table, column, id) = credential.location();
        let sql = format!("UPDATE {table} SET {column} = $1 WHERE id = $2 AND {column} = $3");
        let result = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(new.as_slice())
            .bind(id)
            .bind(old.as_slice())
            .execute(&self.pool)
            .await
            .map_err(db_error)?;
        Ok(result.rows_affected() == 1)
    }

    async fn api_keys(&self, account: AccountId) -> Result<Vec<ApiKeyRecord>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, account_id, name, secret_hash, created_at FROM api_keys \
             WHERE account_id = $1 ORDER BY created_at, id",
        )
        .bind(account.uuid())
        .fetch_all(&self.pool)
        .await
        .map_err(db_error)?;
        rows.iter().map(rows::api_key).collect()
    }

    async fn revoke_api_key(&self, account: AccountId, id: ApiKeyId) -> Result<bool, StoreError> {
        let result = sqlx::query("DELETE FROM api_keys WHERE id = $1 AND account_id = $2")
            .bind(id.uuid())
            .bind(account.uuid())
            .execute(&self.pool)
            .await
            .map_err(db_error)?;
        Ok(result.rows_affected() == 1)
    }

    async fn create_service(&self, service: &ServiceRecord) -> Result<(), StoreError> {
        let mut connection = self.pool.acquire().await.map_err(db_error)?;
        insert_service(&mut connection, service).await
    }

    async fn services(
        &self,
        account: AccountId,
        after: Option<ServiceId>,
        limit: u32,
    ) -> Result<Vec<ServiceRecord>, StoreError> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            service_columns!(),
            " FROM services WHERE account_id = $1 AND NOT deleted AND ($2::uuid IS NULL OR id > $2) \
             ORDER BY id LIMIT $3"
        ))
        .bind(account.uuid())
        .bind(after.map(|a| a.uuid()))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(db_error)?;
        rows.iter().map(rows::service).collect()
    }

    async fn update_service(&self, service: &ServiceRecord) -> Result<bool, StoreError> {
        let settings = serde_json::to_string(&service.settings)
            .map_err(|e| StoreError::Corrupt(format!("settings do not serialise: {e}")))?;
        let result = sqlx::query(
            "UPDATE services SET name = $1, settings = $2, updated_at = $3 WHERE id = $4 AND NOT deleted",
        )
        .bind(&service.name)
        .bind(settings)
        .bind(service.updated_at.0)
        .bind(service.id.uuid())
        .execute(&self.pool)
        .await
        .map_err(db_error)?;
        Ok(result.rows_affected() == 1)
    }

    async fn delete_service(&self, id: ServiceId) -> Result<bool, StoreError> {
        let result =
            sqlx::query("UPDATE services SET deleted = TRUE WHERE id = $1 AND NOT deleted")
                .bind(id.uuid())
                .execute(&self.pool)
                .await
                .map_err(db_error)?;
        Ok(result.rows_affected() == 1)
    }

    async fn create_application(
        &self,
        service: &ServiceRecord,
        application: &Application,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await.map_err(db_error)?;
        insert_service(&mut tx, service).await?;
        sqlx::query(concat!(
            "INSERT INTO applications (",
            application_columns!(),
            ") VALUES ($1, $2, $3, $4, $5, $6, $7)"
        ))
        .bind(application.id.uuid())
        .bind(application.account_id.uuid())
        .bind(application.service_id.uuid())
        .bind(&application.name)
        .bind(application.secret_hash.as_slice())
        .bind(application.api_key_hash.as_slice())
        .bind(application.created_at.0)
        .execute(&mut *tx)
        .await
        .map_err(db_error)?;
        tx.commit().await.map_err(db_error)
    }

    async fn service(&self, id: ServiceId) -> Result<Option<ServiceRecord>, StoreError> {
        let row = sqlx::query(concat!(
            "SELECT ",
            service_columns!(),
            " FROM services WHERE id = $1 AND NOT deleted"
        ))
        .bind(id.uuid())
        .fetch_optional(&self.pool)
        .await
        .map_err(db_error)?;
        row.as_ref().map(rows::service).transpose()
    }

    async fn application(&self, id: ApplicationId) -> Result<Option<Application>, StoreError> {
        let row = sqlx::query(concat!(
            "SELECT ",
            application_columns!(),
            " FROM applications WHERE id = $1"
        ))
        .bind(id.uuid())
        .fetch_optional(&self.pool)
        .await
        .map_err(db_error)?;
        row.as_ref().map(rows::application).transpose()
    }

    async fn application_by_api_key(
        &self,
        api_key_hash: [u8; 32],
    ) -> Result<Option<Application>, StoreError> {
        let row = sqlx::query(concat!(
            "SELECT ",
            application_columns!(),
            " FROM applications WHERE api_key_hash = $1"
        ))
        .bind(api_key_hash.as_slice())
        .fetch_optional(&self.pool)
        .await
        .map_err(db_error)?;
        row.as_ref().map(rows::application).transpose()
    }

    async fn applications(&self) -> Result<Vec<Application>, StoreError> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            application_columns!(),
            " FROM applications ORDER BY created_at, id"
        ))
        .fetch_all(&self.pool)
        .await
        .map_err(db_error)?;
        rows.iter().map(rows::application).collect()
    }

    async fn rotate_application_secret(
        &self,
        id: ApplicationId,
        secret_hash: [u8; 32],
        api_key_hash: [u8; 32],
    ) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await.map_err(db_error)?;
        let changed = sqlx::query(
            "UPDATE applications SET secret_hash = $1, api_key_hash = $2 WHERE id = $3",
        )
        .bind(secret_hash.as_slice())
        .bind(api_key_hash.as_slice())
        .bind(id.uuid())
        .execute(&mut *tx)
        .await
        .map_err(db_error)?
        .rows_affected();
        sqlx::query("UPDATE access_tokens SET revoked = TRUE WHERE application_id = $1")
            .bind(id.uuid())
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
        tx.commit().await.map_err(db_error)?;
        Ok(changed == 1)
    }

    async fn insert_token(&self, token: &AccessToken) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO access_tokens (token_hash, application_id, scope, expires_at, revoked) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(token.token_hash.as_slice())
        .bind(token.application_id.uuid())
        .bind(&token.scope)
        .bind(token.expires_at.0)
        .bind(token.revoked)
        .execute(&self.pool)
        .await
        .map_err(db_error)?;
        Ok(())
    }

    async fn token(&self, token_hash: [u8; 32]) -> Result<Option<AccessToken>, StoreError> {
        let row = sqlx::query(
            "SELECT token_hash, application_id, scope, expires_at, revoked FROM access_tokens WHERE token_hash = $1",
        )
        .bind(token_hash.as_slice())
        .fetch_optional(&self.pool)
        .await
        .map_err(db_error)?;
        row.as_ref().map(rows::token).transpose()
    }

    async fn revoke_token(
        &self,
        token_hash: [u8; 32],
        application: ApplicationId,
    ) -> Result<bool, StoreError> {
        let result = sqlx::query(
            "UPDATE access_tokens SET revoked = TRUE WHERE token_hash = $1 AND application_id = $2",
        )
        .bind(token_hash.as_slice())
        .bind(application.uuid())
        .execute(&self.pool)
        .await
        .map_err(db_error)?;
        Ok(result.rows_affected() == 1)
    }
}

async fn insert_service(
    connection: &mut PgConnection,
    service: &ServiceRecord,
) -> Result<(), StoreError> {
    let settings = serde_json::to_string(&service.settings)
        .map_err(|e| StoreError::Corrupt(format!("settings do not serialise: {e}")))?;
    sqlx::query(concat!(
        "INSERT INTO services (",
        service_columns!(),
        ") VALUES ($1, $2, $3, $4, $5, $6)"
    ))
    .bind(service.id.uuid())
    .bind(service.account_id.uuid())
    .bind(&service.name)
    .bind(settings)
    .bind(service.created_at.0)
    .bind(service.updated_at.0)
    .execute(&mut *connection)
    .await
    .map_err(db_error)?;
    Ok(())
}
