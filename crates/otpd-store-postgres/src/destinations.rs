//! Everything held about one destination, on PostgreSQL: its export, and its erasure in one
//! transaction that locks the destination's verifications first.

use otpd_core::destinations::{
    DestinationRecords, DestinationVerification, ErasureCounts, SafeListed, names_destination,
};
use otpd_core::events::Event;
use otpd_core::store::{DestinationStore, SafeNumber};
use otpd_core::vault::Vault;
use otpd_core::{
    AccountId, ServiceId, StoreError, Timestamp, Verification, VerificationId, VerificationStatus,
};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::{PgStore, db_error, delivery_columns, rows, verification_columns};

/// The services in scope: the account's, or every one (`$2` NULL).
const SERVICES: &str = "SELECT id FROM services WHERE $2::uuid IS NULL OR account_id = $2";

type EventRow = (Uuid, Uuid, Option<Uuid>, String, String, i64);

fn event(row: EventRow, vault: &Vault) -> Result<Event, StoreError> {
    let (id, service, verification, kind, data, created_at) = row;
    let mut data: serde_json::Value =
        serde_json::from_str(&data).map_err(|_| StoreError::Corrupt("event data".into()))?;
    otpd_core::events::reveal_destination(&mut data, vault);
    Ok(Event {
        id,
        service_id: ServiceId::from_uuid(service),
        verification_id: verification.map(VerificationId::from_uuid),
        kind,
        data,
        created_at: Timestamp(created_at),
    })
}

/// The verifications whose blind index is one of `indexes`, oldest first (locked with
/// `lock`).
async fn verifications(
    connection: &mut PgConnection,
    vault: &Vault,
    account: Option<AccountId>,
    indexes: &[String],
    lock: bool,
) -> Result<Vec<Verification>, StoreError> {
    // Only constants go into the text.
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {} FROM verifications WHERE service_id IN ({SERVICES}) \
         AND to_index = ANY($1) ORDER BY created_at, id{}",
        verification_columns!(),
        if lock { " FOR UPDATE" } else { "" }
    )))
    .bind(indexes)
    .bind(account.map(|a| a.uuid()))
    .fetch_all(&mut *connection)
    .await
    .map_err(db_error)?;
    rows.iter()
        .map(|row| rows::verification(row, vault))
        .collect()
}

/// The refused starts (`verification.blocked`, no verification) whose destination is `to`,
/// oldest first: found by the blind index in their details (`toIndex`); those written before
/// it existed are opened one by one.
async fn blocked_starts(
    connection: &mut PgConnection,
    vault: &Vault,
    account: Option<AccountId>,
    to: &str,
) -> Result<Vec<Event>, StoreError> {
    let rows: Vec<EventRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT id, service_id, verification_id, kind, data, created_at FROM events \
         WHERE service_id IN ({SERVICES}) AND verification_id IS NULL AND kind = $1 \
         AND (data LIKE ANY($3) OR data NOT LIKE '%\"toIndex\"%') ORDER BY id"
    )))
    .bind("verification.blocked")
    .bind(account.map(|a| a.uuid()))
    .bind(otpd_core::events::index_patterns(vault, to))
    .fetch_all(&mut *connection)
    .await
    .map_err(db_error)?;
    rows.into_iter()
        .filter(|row| {
            serde_json::from_str(&row.4).is_ok_and(|data| names_destination(&data, to, vault))
        })
        .map(|row| event(row, vault))
        .collect()
}

impl DestinationStore for PgStore {
    async fn destination_records(
        &self,
        account: Option<AccountId>,
        to: &str,
    ) -> Result<DestinationRecords, StoreError> {
        let indexes: Vec<String> = self.vault.blinds(to).iter().map(|b| b.to_hex()).collect();
        let mut connection = self.pool.acquire().await.map_err(db_error)?;
        let mut records = DestinationRecords::default();
        for verification in
            verifications(&mut connection, &self.vault, account, &indexes, false).await?
        {
            let deliveries = sqlx::query(concat!(
                "SELECT ",
                delivery_columns!(),
                " FROM deliveries WHERE verification_id = $1 ORDER BY created_at, id"
            ))
            .bind(verification.id.uuid())
            .fetch_all(&mut *connection)
            .await
            .map_err(db_error)?
            .iter()
            .map(rows::delivery)
            .collect::<Result<Vec<_>, _>>()?;
            let events: Vec<EventRow> = sqlx::query_as(
                "SELECT id, service_id, verification_id, kind, data, created_at FROM events \
                 WHERE verification_id = $1 ORDER BY id",
            )
            .bind(verification.id.uuid())
            .fetch_all(&mut *connection)
            .await
            .map_err(db_error)?;
            records.verifications.push(DestinationVerification {
                events: events
                    .into_iter()
                    .map(|row| event(row, &self.vault))
                    .collect::<Result<_, _>>()?,
                deliveries,
                verification,
            });
        }
        records.blocked_starts = blocked_starts(&mut connection, &self.vault, account, to).await?;
        let listed: Vec<(Uuid, Uuid, i64)> = sqlx::query_as(
            "SELECT account_id, id, created_at FROM safe_numbers \
             WHERE phone_index = ANY($1) AND ($2::uuid IS NULL OR account_id = $2) \
             ORDER BY created_at, id",
        )
        .bind(&indexes)
        .bind(account.map(|a| a.uuid()))
        .fetch_all(&mut *connection)
        .await
        .map_err(db_error)?;
        records.safe_list = listed
            .into_iter()
            .map(|(owner, id, created_at)| SafeListed {
                account: AccountId::from_uuid(owner),
                entry: SafeNumber {
                    id,
                    phone: to.to_string(),
                    created_at: Timestamp(created_at),
                },
            })
            .collect();
        Ok(records)
    }

    async fn erase_destination(
        &self,
        account: Option<AccountId>,
        to: &str,
        now: Timestamp,
    ) -> Result<ErasureCounts, StoreError> {
        let indexes: Vec<String> = self.vault.blinds(to).iter().map(|b| b.to_hex()).collect();
        let mut tx = self.pool.begin().await.map_err(db_error)?;
        let mut counts = ErasureCounts::default();
        let found = verifications(&mut tx, &self.vault, account, &indexes, true).await?;
        let ids: Vec<Uuid> = found.iter().map(|v| v.id.uuid()).collect();
        let pending: Vec<Uuid> = found
            .iter()
            .filter(|v| v.status == VerificationStatus::Pending)
            .map(|v| v.id.uuid())
            .collect();
        // Canceled without an event, a callback or a webhook post: none may carry the number
        // anywhere, and the rows go in this transaction.
        counts.canceled = sqlx::query(
            "UPDATE verifications SET status = 'canceled', updated_at = $2 \
             WHERE id = ANY($1) AND status = 'pending'",
        )
        .bind(&pending)
        .bind(now.0)
        .execute(&mut *tx)
        .await
        .map_err(db_error)?
        .rows_affected();
        let mut events: Vec<Uuid> = blocked_starts(&mut tx, &self.vault, account, to)
            .await?
            .iter()
            .map(|e| e.id)
            .collect();
        events.extend(
            sqlx::query_scalar::<_, Uuid>("SELECT id FROM events WHERE verification_id = ANY($1)")
                .bind(&ids)
                .fetch_all(&mut *tx)
                .await
                .map_err(db_error)?,
        );
        let delete = |sql: &'static str| sqlx::query(sql);
        counts.webhook_deliveries = delete(
            "DELETE FROM webhook_deliveries WHERE event_id = ANY($1) OR verification_id = ANY($2)",
        )
        .bind(&events)
        .bind(&ids)
        .execute(&mut *tx)
        .await
        .map_err(db_error)?
        .rows_affected();
        counts.callbacks = delete("DELETE FROM callbacks WHERE verification_id = ANY($1)")
            .bind(&ids)
            .execute(&mut *tx)
            .await
            .map_err(db_error)?
            .rows_affected();
        counts.events = delete("DELETE FROM events WHERE id = ANY($1)")
            .bind(&events)
            .execute(&mut *tx)
            .await
            .map_err(db_error)?
            .rows_affected();
        counts.deliveries = delete("DELETE FROM deliveries WHERE verification_id = ANY($1)")
            .bind(&ids)
            .execute(&mut *tx)
            .await
            .map_err(db_error)?
            .rows_affected();
        counts.verifications = delete("DELETE FROM verifications WHERE id = ANY($1)")
            .bind(&ids)
            .execute(&mut *tx)
            .await
            .map_err(db_error)?
            .rows_affected();
        counts.safe_list = sqlx::query(
            "DELETE FROM safe_numbers \
             WHERE phone_index = ANY($1) AND ($2::uuid IS NULL OR account_id = $2)",
        )
        .bind(&indexes)
        .bind(account.map(|a| a.uuid()))
        .execute(&mut *tx)
        .await
        .map_err(db_error)?
        .rows_affected();
        tx.commit().await.map_err(db_error)?;
        Ok(counts)
    }
}
