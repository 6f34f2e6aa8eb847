//! Mapping between rows and core types. A row that does not decode into a valid domain value
//! is reported as corrupt rather than trusted.

use otpd_core::auth::{AccessToken, AccountRecord, ApiKeyRecord, Application};
use otpd_core::store::{DeliveryAttempt, ServiceRecord};
use otpd_core::vault::Vault;
use otpd_core::{
    AccountId, ApiKeyId, ApplicationId, Channel, CodeHash, CodeSeed, CountryIso, DeliveryId,
    DeliveryStatus, MaxAttempts, OtpSettings, PinLength, PinType, Recipient, SenderId, ServiceId,
    StoreError, Template, Timestamp, Ttl, Verification, VerificationId, VerificationStatus,
};
use rusqlite::Row;
use uuid::Uuid;

/// The third column is the sealed destination; inserts add `to_index` and `to_prefix`.
pub(crate) const VERIFICATION_COLUMNS: &str = "id, service_id, to_sealed, country, channel, \
    status, attempts, max_attempts, ttl, code_hash, pin_type, pin_length, template, sender, \
    track_id, callback_url, cost, parts, created_at, expires_at, updated_at, code_seed, amount, payee, locale";

pub(crate) const SERVICE_COLUMNS: &str = "id, account_id, name, settings, created_at, updated_at";

pub(crate) const DELIVERY_COLUMNS: &str = "id, verification_id, channel, status, provider, provider_ref, error, created_at, updated_at, \
     error_code, segments, price, price_unit";

/// [`DELIVERY_COLUMNS`] and, last, the service of the delivery's verification: what a
/// delivery's event needs, read by the `UPDATE … RETURNING` that changes it.
pub(crate) const DELIVERY_COLUMNS_AND_SERVICE: &str = "id, verification_id, channel, status, provider, provider_ref, error, created_at, updated_at, \
     error_code, segments, price, price_unit, \
     (SELECT service_id FROM verifications v WHERE v.id = deliveries.verification_id)";

pub(crate) const APPLICATION_COLUMNS: &str =
    "id, account_id, service_id, name, secret_hash, api_key_hash, created_at";

/// The destination sealed in column `index`; an error names the column, never the value.
pub(crate) fn open_destination(
    row: &Row,
    index: usize,
    vault: &Vault,
) -> Result<String, StoreError> {
    let sealed: Vec<u8> = get(row, index)?;
    Ok(vault.open(&sealed)?)
}

fn corrupt(what: &str) -> StoreError {
    StoreError::Corrupt(what.to_string())
}

pub(crate) fn uuid(row: &Row, index: usize) -> Result<Uuid, StoreError> {
    let bytes: Vec<u8> = row.get(index).map_err(crate::db_error)?;
    Uuid::from_slice(&bytes).map_err(|_| corrupt("id"))
}

/// A 16-byte id read in place (no allocation: the report reads 100,000s of them).
pub(crate) fn id_bytes(row: &Row, index: usize) -> Result<[u8; 16], StoreError> {
    row.get_ref(index)
        .map_err(crate::db_error)?
        .as_blob()
        .ok()
        .and_then(|bytes| bytes.try_into().ok())
        .ok_or_else(|| corrupt("id"))
}

fn hash(row: &Row, index: usize) -> Result<[u8; 32], StoreError> {
    let bytes: Vec<u8> = row.get(index).map_err(crate::db_error)?;
    bytes.try_into().map_err(|_| corrupt("hash"))
}

pub(crate) fn get<T: rusqlite::types::FromSql>(row: &Row, index: usize) -> Result<T, StoreError> {
    row.get(index).map_err(crate::db_error)
}

pub(crate) fn verification(row: &Row, vault: &Vault) -> Result<Verification, StoreError> {
    let track: Option<Vec<u8>> = get(row, 14)?;
    let country: Option<String> = get(row, 3)?;
    let seed: Option<Vec<u8>> = get(row, 21)?;
    Ok(Verification {
        id: VerificationId::from_uuid(uuid(row, 0)?),
        service_id: ServiceId::from_uuid(uuid(row, 1)?),
        to: Recipient::from_trusted(open_destination(row, 2, vault)?),
        country: country
            .map(|c| CountryIso::parse(&c).map_err(|_| corrupt("country")))
            .transpose()?,
        channel: Channel::parse(&get::<String>(row, 4)?).ok_or_else(|| corrupt("channel"))?,
        status: VerificationStatus::parse(&get::<String>(row, 5)?)
            .ok_or_else(|| corrupt("status"))?,
        attempts: get(row, 6)?,
        max_attempts: MaxAttempts::new(get(row, 7)?).map_err(|_| corrupt("max_attempts"))?,
        ttl: Ttl::new(get(row, 8)?).map_err(|_| corrupt("ttl"))?,
        code_hash: CodeHash(hash(row, 9)?),
        code_seed: seed
            .map(|bytes| {
                bytes
                    .try_into()
                    .map(CodeSeed)
                    .map_err(|_| corrupt("code_seed"))
            })
            .transpose()?,
        amount: get(row, 22)?,
        payee: get(row, 23)?,
        locale: get(row, 24)?,
        pin_type: PinType::parse(&get::<String>(row, 10)?).ok_or_else(|| corrupt("pin_type"))?,
        pin_length: PinLength::new(get(row, 11)?).map_err(|_| corrupt("pin_length"))?,
        template: Template::new(get::<String>(row, 12)?).map_err(|_| corrupt("template"))?,
        from: SenderId::new(get::<String>(row, 13)?).map_err(|_| corrupt("sender"))?,
        track_id: track
            .map(|bytes| Uuid::from_slice(&bytes).map_err(|_| corrupt("track_id")))
            .transpose()?,
        callback_url: get(row, 15)?,
        cost: get(row, 16)?,
        parts: get(row, 17)?,
        created_at: Timestamp(get(row, 18)?),
        expires_at: Timestamp(get(row, 19)?),
        updated_at: Timestamp(get(row, 20)?),
    })
}

pub(crate) fn delivery(row: &Row) -> Result<DeliveryAttempt, StoreError> {
    Ok(DeliveryAttempt {
        id: DeliveryId::from_uuid(uuid(row, 0)?),
        verification_id: VerificationId::from_uuid(uuid(row, 1)?),
        channel: Channel::parse(&get::<String>(row, 2)?).ok_or_else(|| corrupt("channel"))?,
        status: DeliveryStatus::parse(&get::<String>(row, 3)?).ok_or_else(|| corrupt("status"))?,
        provider: get(row, 4)?,
        provider_ref: get(row, 5)?,
        error: get(row, 6)?,
        created_at: Timestamp(get(row, 7)?),
        updated_at: Timestamp(get(row, 8)?),
        error_code: get(row, 9)?,
        segments: get(row, 10)?,
        price: get(row, 11)?,
        price_unit: get(row, 12)?,
    })
}

/// A row of [`DELIVERY_COLUMNS_AND_SERVICE`].
pub(crate) fn delivery_and_service(row: &Row) -> Result<(DeliveryAttempt, ServiceId), StoreError> {
    Ok((delivery(row)?, ServiceId::from_uuid(uuid(row, 13)?)))
}

pub(crate) fn application(row: &Row) -> Result<Application, StoreError> {
    Ok(Application {
        id: ApplicationId::from_uuid(uuid(row, 0)?),
        account_id: AccountId::from_uuid(uuid(row, 1)?),
        service_id: ServiceId::from_uuid(uuid(row, 2)?),
        name: get(row, 3)?,
        secret_hash: hash(row, 4)?,
        api_key_hash: hash(row, 5)?,
        created_at: Timestamp(get(row, 6)?),
    })
}

pub(crate) fn token(row: &Row) -> Result<AccessToken, StoreError> {
    Ok(AccessToken {
        token_hash: hash(row, 0)?,
        application_id: ApplicationId::from_uuid(uuid(row, 1)?),
        scope: get(row, 2)?,
        expires_at: Timestamp(get(row, 3)?),
        revoked: get::<i64>(row, 4)? != 0,
    })
}

pub(crate) fn service(row: &Row) -> Result<ServiceRecord, StoreError> {
    let settings: String = get(row, 3)?;
    Ok(ServiceRecord {
        id: ServiceId::from_uuid(uuid(row, 0)?),
        account_id: AccountId::from_uuid(uuid(row, 1)?),
        name: get(row, 2)?,
        settings: serde_json::from_str::<OtpSettings>(&settings)
            .map_err(|e| StoreError::Corrupt(format!("service settings: {e}")))?,
        created_at: Timestamp(get(row, 4)?),
        updated_at: Timestamp(get(row, 5)?),
    })
}

pub(crate) fn account(row: &Row) -> Result<AccountRecord, StoreError> {
    Ok(AccountRecord {
        id: AccountId::from_uuid(uuid(row, 0)?),
        name: get(row, 1)?,
        auth_token_hash: hash(row, 2)?,
        created_at: Timestamp(get(row, 3)?),
    })
}

pub(crate) fn api_key(row: &Row) -> Result<ApiKeyRecord, StoreError> {
    Ok(ApiKeyRecord {
        id: ApiKeyId::from_uuid(uuid(row, 0)?),
        account_id: AccountId::from_uuid(uuid(row, 1)?),
        name: get(row, 2)?,
        secret_hash: hash(row, 3)?,
        created_at: Timestamp(get(row, 4)?),
    })
}
