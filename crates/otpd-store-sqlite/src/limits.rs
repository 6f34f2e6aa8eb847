//! The abuse counters on SQLite: rate events, quarantines, capped spends and the safe
//! list.

use otpd_core::store::{LimitStore, Quarantine, RateCount, SafeNumber, Spend};
use otpd_core::{AccountId, ServiceId, StoreError, Timestamp};
use rusqlite::{Row, params};
use uuid::Uuid;

use crate::rows;
use crate::{
    SqliteStore, add_rate_event, add_spend, db_error, execute, forget_rate_events, query_all,
    query_one, rate_window,
};

impl LimitStore for SqliteStore {
    async fn rate_hit(
        &self,
        key: &str,
        window_ms: i64,
        limit: u32,
        now: Timestamp,
    ) -> Result<RateCount, StoreError> {
        let key = key.to_string();
        self.write(move |connection| {
            forget_rate_events(connection, &key, now.0 - window_ms)?;
            let (count, oldest) = rate_window(connection, &key, now.0 - window_ms)?;
            if count >= limit {
                return Ok(RateCount {
                    allowed: false,
                    count,
                    frees_at: oldest.map(|at| Timestamp(at + window_ms)),
                });
            }
            add_rate_event(connection, &key, now.0)?;
            Ok(RateCount {
                allowed: true,
                count: count + 1,
                frees_at: Some(Timestamp(oldest.unwrap_or(now.0) + window_ms)),
            })
        })
        .await
    }

    async fn rate_count(
        &self,
        key: &str,
        window_ms: i64,
        now: Timestamp,
    ) -> Result<RateCount, StoreError> {
        let key = key.to_string();
        self.read(move |connection| {
            let (count, oldest) = rate_window(connection, &key, now.0 - window_ms)?;
            Ok(RateCount {
                allowed: true,
                count,
                frees_at: oldest.map(|at| Timestamp(at + window_ms)),
            })
        })
        .await
    }

    async fn quarantine(&self, quarantine: &Quarantine) -> Result<bool, StoreError> {
        let q = quarantine.clone();
        self.write(move |connection| {
            let changed = execute(
                connection,
                "INSERT INTO quarantines (prefix, service_id, reason, until, created_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5) \
                 ON CONFLICT (prefix, service_id) DO UPDATE SET reason = excluded.reason, \
                 until = excluded.until, created_at = excluded.created_at \
                 WHERE quarantines.until <= excluded.created_at",
                params![
                    q.prefix,
                    quarantine_scope(q.service).as_slice(),
                    q.reason,
                    q.until.0,
                    q.created_at.0
                ],
            )?;
            Ok(changed == 1)
        })
        .await
    }

    async fn active_quarantine(
        &self,
        prefix: &str,
        service: ServiceId,
        now: Timestamp,
    ) -> Result<Option<Quarantine>, StoreError> {
        let prefix = prefix.to_string();
        self.read(move |connection| {
            query_one(
                connection,
                &format!(
                    "SELECT {QUARANTINE_COLUMNS} FROM quarantines \
                     WHERE prefix = ?1 AND service_id IN (?2, ?3) AND until > ?4 \
                     ORDER BY service_id LIMIT 1"
                ),
                params![
                    prefix,
                    quarantine_scope(None).as_slice(),
                    service.as_bytes().as_slice(),
                    now.0
                ],
                quarantine_row,
            )
        })
        .await
    }

    async fn quarantines(&self, now: Timestamp) -> Result<Vec<Quarantine>, StoreError> {
        self.read(move |connection| {
            query_all(
                connection,
                &format!(
                    "SELECT {QUARANTINE_COLUMNS} FROM quarantines WHERE until > ?1 \
                     ORDER BY created_at DESC, prefix, service_id"
                ),
                params![now.0],
                quarantine_row,
            )
        })
        .await
    }

    async fn lift_quarantine(
        &self,
        prefix: &str,
        service: Option<ServiceId>,
    ) -> Result<bool, StoreError> {
        let prefix = prefix.to_string();
        self.write(move |connection| {
            Ok(execute(
                connection,
                "DELETE FROM quarantines WHERE prefix = ?1 AND service_id = ?2",
                params![prefix, quarantine_scope(service).as_slice()],
            )? == 1)
        })
        .await
    }

    async fn add_spend(&self, key: &str, amount: f64, cap: f64) -> Result<Option<f64>, StoreError> {
        let spend = Spend {
            key: key.to_string(),
            amount,
            cap,
        };
        self.write(move |connection| add_spend(connection, &spend))
            .await
    }

    async fn add_safe_number(
        &self,
        account: AccountId,
        entry: &SafeNumber,
    ) -> Result<SafeNumber, StoreError> {
        let entry = entry.clone();
        let index = self.vault().blind(&entry.phone).to_hex();
        let sealed = self.vault().seal(&entry.phone);
        self.write(move |connection| {
            execute(
                connection,
                "INSERT INTO safe_numbers (account_id, phone_index, id, created_at, phone_sealed) \
                 VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (account_id, phone_index) DO NOTHING",
                params![
                    account.as_bytes().as_slice(),
                    index,
                    entry.id.as_bytes().as_slice(),
                    entry.created_at.0,
                    sealed
                ],
            )?;
            query_one(
                connection,
                "SELECT id, created_at FROM safe_numbers WHERE account_id = ?1 AND phone_index = ?2",
                params![account.as_bytes().as_slice(), index],
                |row| safe_number_row(row, &entry.phone),
            )?
            .ok_or_else(|| StoreError::Database("safe number vanished".into()))
        })
        .await
    }

    async fn safe_number(
        &self,
        account: AccountId,
        phone: &str,
    ) -> Result<Option<SafeNumber>, StoreError> {
        // Under every key: an entry added before a key rotation and not yet re-indexed.
        let indexes: Vec<String> = self
            .vault()
            .blinds(phone)
            .iter()
            .map(|b| b.to_hex())
            .collect();
        let phone = phone.to_string();
        self.read(move |connection| {
            for index in &indexes {
                let found = query_one(
                    connection,
                    "SELECT id, created_at FROM safe_numbers \
                     WHERE account_id = ?1 AND phone_index = ?2",
                    params![account.as_bytes().as_slice(), index],
                    |row| safe_number_row(row, &phone),
                )?;
                if found.is_some() {
                    return Ok(found);
                }
            }
            Ok(None)
        })
        .await
    }

    async fn has_safe_numbers(&self, account: AccountId) -> Result<bool, StoreError> {
        self.read(move |connection| {
            connection
                .prepare_cached("SELECT EXISTS (SELECT 1 FROM safe_numbers WHERE account_id = ?1)")
                .and_then(|mut statement| {
                    statement.query_row(params![account.as_bytes().as_slice()], |row| row.get(0))
                })
                .map_err(db_error)
        })
        .await
    }

    async fn remove_safe_number(
        &self,
        account: AccountId,
        phone: &str,
    ) -> Result<bool, StoreError> {
        let indexes: Vec<String> = self
            .vault()
            .blinds(phone)
            .iter()
            .map(|b| b.to_hex())
            .collect();
        self.write(move |connection| {
            let mut removed = 0;
            for index in &indexes {
                removed += execute(
                    connection,
                    "DELETE FROM safe_numbers WHERE account_id = ?1 AND phone_index = ?2",
                    params![account.as_bytes().as_slice(), index],
                )?;
            }
            Ok(removed >= 1)
        })
        .await
    }
}

/// A safe-list row; the table keeps the number's blind index only, so the number is the one
/// looked up.
pub(crate) fn safe_number_row(row: &Row, phone: &str) -> Result<SafeNumber, StoreError> {
    let id: Vec<u8> = rows::get(row, 0)?;
    Ok(SafeNumber {
        id: Uuid::from_slice(&id).map_err(|_| StoreError::Corrupt("safe number id".into()))?,
        phone: phone.to_string(),
        created_at: Timestamp(rows::get(row, 1)?),
    })
}

/// The quarantine columns, in `quarantine_row`'s order.
const QUARANTINE_COLUMNS: &str = "prefix, reason, until, created_at, service_id";

fn quarantine_row(row: &Row) -> Result<Quarantine, StoreError> {
    let service: Vec<u8> = rows::get(row, 4)?;
    let service = uuid::Uuid::from_slice(&service)
        .map_err(|_| StoreError::Corrupt("quarantine service id".into()))?;
    Ok(Quarantine {
        prefix: rows::get(row, 0)?,
        service: (!service.is_nil()).then(|| ServiceId::from_uuid(service)),
        reason: rows::get(row, 1)?,
        until: Timestamp(rows::get(row, 2)?),
        created_at: Timestamp(rows::get(row, 3)?),
    })
}

/// A quarantine's scope as stored: its service's id, or the nil id for every service.
fn quarantine_scope(service: Option<ServiceId>) -> [u8; 16] {
    service.map_or([0; 16], |id| *id.as_bytes())
}
