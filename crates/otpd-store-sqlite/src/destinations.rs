//! Everything held about one destination, on SQLite: its export, and its erasure as one
//! writer job with `secure_delete` on, so the freed content is overwritten on disk.

use otpd_core::destinations::{
    DestinationRecords, DestinationVerification, ErasureCounts, SafeListed, names_destination,
};
use otpd_core::events::Event;
use otpd_core::store::DestinationStore;
use otpd_core::vault::Vault;
use otpd_core::{AccountId, StoreError, Timestamp, Verification, VerificationStatus};
use rusqlite::types::Value;
use rusqlite::{Connection, params, params_from_iter};

use crate::rows::{self, DELIVERY_COLUMNS, VERIFICATION_COLUMNS};
use crate::{SqliteStore, execute, query_all};

/// The services in scope: the account's, or every one (`?2` NULL). Verifications are found
/// through `verifications_service_to` (service, blind index) with this as the service list.
const SERVICES: &str = "SELECT id FROM services WHERE ?2 IS NULL OR account_id = ?2";

/// Ids per `IN (…)` list (far under SQLite's limit on parameters).
const CHUNK: usize = 500;

fn account_param(account: Option<AccountId>) -> Option<Vec<u8>> {
    account.map(|a| a.as_bytes().to_vec())
}

/// The verifications whose blind index is one of `indexes`, oldest first.
fn verifications(
    connection: &Connection,
    vault: &Vault,
    account: Option<AccountId>,
    indexes: &[String],
) -> Result<Vec<Verification>, StoreError> {
    let mut found = Vec::new();
    for index in indexes {
        found.extend(query_all(
            connection,
            &format!(
                "SELECT {VERIFICATION_COLUMNS} FROM verifications \
                 WHERE service_id IN ({SERVICES}) AND to_index = ?1"
            ),
            params![index, account_param(account)],
            |row| rows::verification(row, vault),
        )?);
    }
    found.sort_by_key(|v| (v.created_at, v.id.uuid()));
    Ok(found)
}

/// The events of one verification, oldest first.
fn verification_events(
    connection: &Connection,
    vault: &Vault,
    id: &[u8],
) -> Result<Vec<Event>, StoreError> {
    query_all(
        connection,
        "SELECT id, service_id, verification_id, kind, data, created_at FROM events \
         WHERE verification_id = ?1 ORDER BY id",
        [id],
        |row| crate::events::event_row(row, vault),
    )
}

/// The refused starts (`verification.blocked`, no verification) whose destination is `to`,
/// oldest first: found by the blind index in their details (`toIndex`); those written before
/// it existed are opened one by one.
fn blocked_starts(
    connection: &Connection,
    vault: &Vault,
    account: Option<AccountId>,
    to: &str,
) -> Result<Vec<Event>, StoreError> {
    let patterns = otpd_core::events::index_patterns(vault, to);
    let indexed: Vec<String> = (0..patterns.len())
        .map(|i| format!("data LIKE ?{}", i + 3))
        .collect();
    let mut values: Vec<rusqlite::types::Value> = vec![
        "verification.blocked".to_string().into(),
        account_param(account).into(),
    ];
    values.extend(patterns.into_iter().map(Into::into));
    let mut raw = query_all(
        connection,
        &format!(
            "SELECT id, data FROM events WHERE service_id IN ({SERVICES}) \
             AND verification_id IS NULL AND kind = ?1 \
             AND ({} OR data NOT LIKE '%\"toIndex\"%')",
            indexed.join(" OR ")
        ),
        rusqlite::params_from_iter(values),
        |row| Ok((rows::get::<Vec<u8>>(row, 0)?, rows::get::<String>(row, 1)?)),
    )?;
    raw.retain(|(_, data)| {
        serde_json::from_str(data).is_ok_and(|data| names_destination(&data, to, vault))
    });
    let mut events = Vec::new();
    for (id, _) in raw {
        events.extend(query_all(
            connection,
            "SELECT id, service_id, verification_id, kind, data, created_at FROM events \
             WHERE id = ?1",
            [id],
            |row| crate::events::event_row(row, vault),
        )?);
    }
    Ok(events)
}

/// The safe-list entries under one of `indexes`.
fn safe_list(
    connection: &Connection,
    account: Option<AccountId>,
    indexes: &[String],
    to: &str,
) -> Result<Vec<SafeListed>, StoreError> {
    let mut found = Vec::new();
    for index in indexes {
        found.extend(query_all(
            connection,
            "SELECT id, created_at, account_id FROM safe_numbers \
             WHERE phone_index = ?1 AND (?2 IS NULL OR account_id = ?2)",
            params![index, account_param(account)],
            |row| {
                let owner: Vec<u8> = rows::get(row, 2)?;
                let owner = uuid::Uuid::from_slice(&owner)
                    .map_err(|_| StoreError::Corrupt("safe number account".into()))?;
                Ok(SafeListed {
                    account: AccountId::from_uuid(owner),
                    entry: crate::limits::safe_number_row(row, to)?,
                })
            },
        )?);
    }
    Ok(found)
}

/// Deletes the rows of `table` whose `column` is one of `ids`, a chunk per statement;
/// how many. (The outboxes have no index by verification or event: this scans them, once
/// per chunk.)
fn delete_in(
    connection: &Connection,
    table: &str,
    column: &str,
    ids: &[Vec<u8>],
) -> Result<u64, StoreError> {
    let mut deleted = 0;
    for chunk in ids.chunks(CHUNK) {
        let marks = vec!["?"; chunk.len()].join(", ");
        let values = chunk.iter().map(|id| Value::Blob(id.clone()));
        deleted += connection
            .execute(
                &format!("DELETE FROM {table} WHERE {column} IN ({marks})"),
                params_from_iter(values),
            )
            .map_err(crate::db_error)? as u64;
    }
    Ok(deleted)
}

/// The erasure's statements, inside the writer's transaction.
fn erase(
    connection: &Connection,
    vault: &Vault,
    account: Option<AccountId>,
    indexes: &[String],
    to: &str,
    now: Timestamp,
) -> Result<ErasureCounts, StoreError> {
    let mut counts = ErasureCounts::default();
    let found = verifications(connection, vault, account, indexes)?;
    let ids: Vec<Vec<u8>> = found.iter().map(|v| v.id.as_bytes().to_vec()).collect();
    let mut events: Vec<Vec<u8>> = blocked_starts(connection, vault, account, to)?
        .iter()
        .map(|e| e.id.as_bytes().to_vec())
        .collect();
    for v in &found {
        if v.status == VerificationStatus::Pending {
            // Canceled without an event, a callback or a webhook post: none may carry the
            // number anywhere, and the rows go at once.
            counts.canceled += execute(
                connection,
                "UPDATE verifications SET status = 'canceled', updated_at = ?2 \
                 WHERE id = ?1 AND status = 'pending'",
                params![v.id.as_bytes().as_slice(), now.0],
            )? as u64;
        }
        events.extend(query_all(
            connection,
            "SELECT id FROM events WHERE verification_id = ?1",
            [v.id.as_bytes().as_slice()],
            |row| rows::get::<Vec<u8>>(row, 0),
        )?);
    }
    counts.webhook_deliveries = delete_in(connection, "webhook_deliveries", "event_id", &events)?
        + delete_in(connection, "webhook_deliveries", "verification_id", &ids)?;
    counts.callbacks = delete_in(connection, "callbacks", "verification_id", &ids)?;
    for event in &events {
        counts.events += execute(connection, "DELETE FROM events WHERE id = ?1", [event])? as u64;
    }
    for id in &ids {
        counts.deliveries += execute(
            connection,
            "DELETE FROM deliveries WHERE verification_id = ?1",
            [id],
        )? as u64;
        counts.verifications +=
            execute(connection, "DELETE FROM verifications WHERE id = ?1", [id])? as u64;
    }
    for index in indexes {
        counts.safe_list += execute(
            connection,
            "DELETE FROM safe_numbers WHERE phone_index = ?1 AND (?2 IS NULL OR account_id = ?2)",
            params![index, account_param(account)],
        )? as u64;
    }
    Ok(counts)
}

impl DestinationStore for SqliteStore {
    async fn destination_records(
        &self,
        account: Option<AccountId>,
        to: &str,
    ) -> Result<DestinationRecords, StoreError> {
        let vault = self.vault();
        let indexes: Vec<String> = vault.blinds(to).iter().map(|b| b.to_hex()).collect();
        let to = to.to_string();
        self.read(move |connection| {
            let mut records = DestinationRecords::default();
            for verification in verifications(connection, &vault, account, &indexes)? {
                let id = verification.id.as_bytes().to_vec();
                let deliveries = query_all(
                    connection,
                    &format!(
                        "SELECT {DELIVERY_COLUMNS} FROM deliveries WHERE verification_id = ?1 \
                         ORDER BY created_at, id"
                    ),
                    [&id],
                    rows::delivery,
                )?;
                records.verifications.push(DestinationVerification {
                    events: verification_events(connection, &vault, &id)?,
                    deliveries,
                    verification,
                });
            }
            records.blocked_starts = blocked_starts(connection, &vault, account, &to)?;
            records.safe_list = safe_list(connection, account, &indexes, &to)?;
            Ok(records)
        })
        .await
    }

    async fn erase_destination(
        &self,
        account: Option<AccountId>,
        to: &str,
        now: Timestamp,
    ) -> Result<ErasureCounts, StoreError> {
        let vault = self.vault();
        let indexes: Vec<String> = vault.blinds(to).iter().map(|b| b.to_hex()).collect();
        let to = to.to_string();
        self.write(move |connection| {
            // On for this job only: every page it frees or rewrites is zeroed, so the deleted
            // rows cannot be read back from the file; the other writes keep the cheaper default.
            connection
                .pragma_update(None, "secure_delete", true)
                .map_err(crate::db_error)?;
            let erased = erase(connection, &vault, account, &indexes, &to, now);
            let off = connection
                .pragma_update(None, "secure_delete", false)
                .map_err(crate::db_error);
            let erased = erased?;
            off.map(|()| erased)
        })
        .await
    }
}
