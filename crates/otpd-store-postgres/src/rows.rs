//! Mapping between PostgreSQL rows and core types; a row that does not decode into a valid
//! domain value is reported as corrupt rather than trusted.

use otpd_core::auth::{AccessToken, AccountRecord, ApiKeyRecord, Application};
use otpd_core::store::{DeliveryAttempt, ServiceRecord};
use otpd_core::vault::Vault;
use otpd_core::{
    AccountId, ApiKeyId, ApplicationId, Channel, CodeHash, CodeSeed, CountryIso, DeliveryId,
    DeliveryStatus, MaxAttempts, OtpSettings, PinLength, PinType, Recipient, SenderId, ServiceId,
    StoreError, Template, Timestamp, Ttl, Verification, VerificationId, VerificationStatus,
};
use sqlx::Row;
use sqlx::postgres::PgRow;
use uuid::Uuid;

/// The verification columns, in the order [`verification`] reads them; the third is the
/// sealed destination (inserts add `to_index` and `to_prefix`).
#[macro_export]
#[doc(hidden)]
macro_rules! verification_columns {
    () => {
        "id, service_id, to_sealed, country, channel, status, attempts, max_attempts, ttl, \
         code_hash, pin_type, pin_length, template, sender, track_id, callback_url, cost, parts, \
         created_at, expires_at, updated_at, code_seed, amount, payee, locale"
    };
}

/// The delivery columns.
#[macro_export]
#[doc(hidden)]
macro_rules! delivery_columns {
    () => {
        "id, verification_id, channel, status, provider, provider_ref, error, created_at, updated_at, \
         error_code, segments, price, price_unit"
    };
}

/// The application columns.
#[macro_export]
#[doc(hidden)]
macro_rules! application_columns {
    () => {
        "id, account_id, service_id, name, secret_hash, api_key_hash, created_at"
    };
}

/// The service columns.
#[macro_export]
#[doc(hidden)]
macro_rules! service_columns {
    () => {
        "id, account_id, name, settings, created_at, updated_at"
    };
}

fn corrupt(what: &str) -> StoreError {
    StoreError::Corrupt(what.to_string())
}

fn get<'r, T: sqlx::Decode<'r, sqlx::Postgres> + sqlx::Type<sqlx::Postgres>>(
    row: &'r PgRow,
    index: usize,
) -> Result<T, StoreError> {
    row.try_get(index).map_err(crate::db_error)
}

fn hash(row: &PgRow, index: usize) -> Result<[u8; 32], StoreError> {
    let bytes: Vec<u8> = get(row, index)?;
    bytes.try_into().map_err(|_| corrupt("hash"))
}

fn count(row: &PgRow, index: usize) -> Result<u32, StoreError> {
    let value: i32 = get(row, index)?;
    u32::try_from(value).map_err(|_| corrupt("negative count"))
}

pub(crate) fn verification(row: &PgRow, vault: &Vault) -> Result<Verification, StoreError> {
    let sealed: Vec<u8> = get(row, 2)?;
    let to = vault.open(&sealed)?;
    let country: Option<String> = get(row, 3)?;
    let seed: Option<Vec<u8>> = get(row, 21)?;
    Ok(Verification {
        id: VerificationId::from_uuid(get(row, 0)?),
        service_id: ServiceId::from_uuid(get(row, 1)?),
        to: Recipient::from_trusted(to),
        country: country
            .map(|c| CountryIso::parse(&c).map_err(|_| corrupt("country")))
            .transpose()?,
        channel: Channel::parse(&get::<String>(row, 4)?).ok_or_else(|| corrupt("channel"))?,
        status: VerificationStatus::parse(&get::<String>(row, 5)?)
            .ok_or_else(|| corrupt("status"))?,
        attempts: count(row, 6)?,
        max_attempts: MaxAttempts::new(get::<i32>(row, 7)?.into())
            .map_err(|_| corrupt("max_attempts"))?,
        ttl: Ttl::new(get::<i32>(row, 8)?.into()).map_err(|_| corrupt("ttl"))?,
        code_hash: CodeHash(hash(row, 9)?),
        code_seed: seed
            .map(|bytes| {
                bytes
                    .try_into()
                    .map(CodeSeed)
                    .map_err(|_| corrupt("code_seed"))
            })
            .transpose()?,
        pin_type: PinType::parse(&get::<String>(row, 10)?).ok_or_else(|| corrupt("pin_type"))?,
        pin_length: PinLength::new(get::<i32>(row, 11)?.into())
            .map_err(|_| corrupt("pin_length"))?,
        template: Template::new(get::<String>(row, 12)?).map_err(|_| corrupt("template"))?,
        from: SenderId::from_stored(get::<String>(row, 13)?),
        track_id: get::<Option<Uuid>>(row, 14)?,
        callback_url: get(row, 15)?,
        cost: get(row, 16)?,
        parts: count(row, 17)?,
        created_at: Timestamp(get(row, 18)?),
        expires_at: Timestamp(get(row, 19)?),
        updated_at: Timestamp(get(row, 20)?),
        amount: get(row, 22)?,
        payee: get(row, 23)?,
        locale: get(row, 24)?,
    })
}

pub(crate) fn delivery(row: &PgRow) -> Result<DeliveryAttempt, StoreError> {
    Ok(DeliveryAttempt {
        id: DeliveryId::from_uuid(get(row, 0)?),
        verification_id: VerificationId::from_uuid(get(row, 1)?),
        channel: Channel::parse(&get::<String>(row, 2)?).ok_or_else(|| corrupt("channel"))?,
        status: DeliveryStatus::parse(&get::<String>(row, 3)?).ok_or_else(|| corrupt("status"))?,
        provider: get(row, 4)?,
        provider_ref: get(row, 5)?,
        error: get(row, 6)?,
        created_at: Timestamp(get(row, 7)?),
        updated_at: Timestamp(get(row, 8)?),
        error_code: get(row, 9)?,
        segments: get::<Option<i32>>(row, 10)?.map(|s| s.max(0) as u32),
        price: get(row, 11)?,
        price_unit: get(row, 12)?,
    })
}

pub(crate) fn application(row: &PgRow) -> Result<Application, StoreError> {
    Ok(Application {
        id: ApplicationId::from_uuid(get(row, 0)?),
        account_id: AccountId::from_uuid(get(row, 1)?),
        service_id: ServiceId::from_uuid(get(row, 2)?),
        name: get(row, 3)?,
        secret_hash: hash(row, 4)?,
        api_key_hash: hash(row, 5)?,
        created_at: Timestamp(get(row, 6)?),
    })
}

pub(crate) fn token(row: &PgRow) -> Result<AccessToken, StoreError> {
    Ok(AccessToken {
        token_hash: hash(row, 0)?,
        application_id: ApplicationId::from_uuid(get(row, 1)?),
        scope: get(row, 2)?,
        expires_at: Timestamp(get(row, 3)?),
        revoked: get(row, 4)?,
    })
}

pub(crate) fn service(row: &PgRow) -> Result<ServiceRecord, StoreError> {
    let settings: String = get(row, 3)?;
    Ok(ServiceRecord {
        id: ServiceId::from_uuid(get(row, 0)?),
        account_id: AccountId::from_uuid(get(row, 1)?),
        name: get(row, 2)?,
        settings: serde_json::from_str::<OtpSettings>(&settings)
            .map_err(|e| StoreError::Corrupt(format!("service settings: {e}")))?,
        created_at: Timestamp(get(row, 4)?),
        updated_at: Timestamp(get(row, 5)?),
    })
}

pub(crate) fn account(row: &PgRow) -> Result<AccountRecord, StoreError> {
    Ok(AccountRecord {
        id: AccountId::from_uuid(get(row, 0)?),
        name: get(row, 1)?,
        auth_token_hash: hash(row, 2)?,
        created_at: Timestamp(get(row, 3)?),
    })
}

pub(crate) fn api_key(row: &PgRow) -> Result<ApiKeyRecord, StoreError> {
    Ok(ApiKeyRecord {
        id: ApiKeyId::from_uuid(get(row, 0)?),
        account_id: AccountId::from_uuid(get(row, 1)?),
        name: get(row, 2)?,
        secret_hash: hash(row, 3)?,
        created_at: Timestamp(get(row, 4)?),
    })
}
