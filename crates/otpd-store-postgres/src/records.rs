//! Delivery records grouped per node (see `groups`): an attempt's new state, its event (the
//! row's new state as `DeliveryEventData` renders it, built in SQL because it depends on the
//! values the update keeps) and the event's webhook copies, for every record of a group in one
//! statement, without an explicit transaction. A group never holds one delivery twice (two
//! records of one attempt run one after the other, alone).

use std::collections::HashSet;

use otpd_core::store::DeliveryUpdate;
use otpd_core::{DeliveryId, StoreError, Timestamp};
use sqlx::PgPool;
use uuid::Uuid;

use super::db_error;
use super::groups::Grouped;

/// One record to write: what happened to attempt `id` at `now`.
pub(crate) struct DeliveryRecord {
    pub(crate) id: DeliveryId,
    pub(crate) update: DeliveryUpdate,
    pub(crate) now: Timestamp,
}

/// Delivery records.
pub(crate) struct Records;

impl Grouped for Records {
    type Call = DeliveryRecord;
    type Answer = ();
    // About 200 bytes a record: a group's statement stays under one TLS record.
    const MAX: usize = 32;
    const IN_FLIGHT: usize = 2;

    async fn together(
        pool: &PgPool,
        _: &otpd_core::vault::Vault,
        records: &[&DeliveryRecord],
    ) -> Result<Vec<()>, StoreError> {
        let mut seen = HashSet::with_capacity(records.len());
        if !records.iter().all(|record| seen.insert(record.id)) {
            // One UPDATE changes a row once: each record runs alone, in order.
            return Err(StoreError::Conflict("one delivery twice in a group".into()));
        }
        write(pool, records).await?;
        Ok(vec![(); records.len()])
    }
}

/// Writes the records with one statement (column arrays), in a keyed transaction (see
/// `begin_keyed`); the `= ANY` beside the join is for the planner too: joined to the unnest
/// alone, it scanned the whole table.
async fn write(pool: &PgPool, records: &[&DeliveryRecord]) -> Result<(), StoreError> {
    let column = |value: fn(&DeliveryRecord) -> Option<String>| -> Vec<Option<String>> {
        records.iter().map(|record| value(record)).collect()
    };
    let ids: Vec<Uuid> = records.iter().map(|r| r.id.uuid()).collect();
    let statuses: Vec<&str> = records.iter().map(|r| r.update.status.as_str()).collect();
    let segments: Vec<Option<i32>> = records
        .iter()
        .map(|r| r.update.segments.map(|s| s as i32))
        .collect();
    let prices: Vec<Option<f64>> = records.iter().map(|r| r.update.price).collect();
    let leases: Vec<Option<i64>> = records
        .iter()
        .map(|r| r.update.lease_until.map(|t| t.0))
        .collect();
    let fallbacks: Vec<Option<i64>> = records
        .iter()
        .map(|r| r.update.fallback_at.map(|t| t.0))
        .collect();
    let times: Vec<i64> = records.iter().map(|r| r.now.0).collect();
    let event_ids: Vec<Uuid> = records.iter().map(|_| Uuid::now_v7()).collect();
    let mut tx = super::begin_keyed(pool).await?;
    sqlx::query(
        "WITH u AS (SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], \
         $5::text[], $6::text[], $7::int[], $8::float8[], $9::text[], $10::int8[], $11::int8[], \
         $12::int8[], $13::uuid[]) AS u(id, status, provider, provider_ref, error, error_code, \
         segments, price, price_unit, lease_until, fallback_at, at, event_id)), \
         d AS (UPDATE deliveries SET status = u.status, \
         provider = COALESCE(u.provider, deliveries.provider), \
         provider_ref = COALESCE(u.provider_ref, deliveries.provider_ref), error = u.error, \
         error_code = u.error_code, segments = COALESCE(u.segments, deliveries.segments), \
         price = COALESCE(u.price, deliveries.price), \
         price_unit = COALESCE(u.price_unit, deliveries.price_unit), \
         lease_until = COALESCE(u.lease_until, deliveries.lease_until), \
         fallback_at = u.fallback_at, updated_at = u.at \
         FROM u WHERE deliveries.id = u.id AND deliveries.id = ANY($1::uuid[]) \
         RETURNING deliveries.id, deliveries.verification_id, deliveries.channel, \
         deliveries.status, deliveries.provider, deliveries.provider_ref, deliveries.error_code, \
         deliveries.price, deliveries.segments, u.at, u.event_id, \
         (SELECT v.service_id FROM verifications v WHERE v.id = deliveries.verification_id) \
         AS service_id), \
         e AS (INSERT INTO events (id, service_id, verification_id, kind, data, created_at) \
         SELECT d.event_id, d.service_id, d.verification_id, 'delivery.' || d.status, \
         json_build_object('deliveryId', d.id, 'verificationId', d.verification_id, \
         'channel', d.channel, 'status', d.status, 'provider', d.provider, \
         'providerMessageId', d.provider_ref, 'errorCode', d.error_code, 'price', d.price, \
         'segments', d.segments)::text, d.at \
         FROM d WHERE d.status <> 'queued' AND d.service_id IS NOT NULL \
         RETURNING id, service_id, verification_id, kind, created_at) \
         INSERT INTO webhook_deliveries (id, webhook_id, event_id, verification_id, \
         next_attempt_at, created_at, updated_at) \
         SELECT gen_random_uuid(), w.id, e.id, e.verification_id, e.created_at, e.created_at, \
         e.created_at FROM e JOIN webhooks w ON w.service_id = e.service_id AND w.enabled \
         AND (w.event_types = '*' OR w.event_types LIKE '%,' || e.kind || ',%')",
    )
    .bind(ids)
    .bind(statuses)
    .bind(column(|r| r.update.provider.clone()))
    .bind(column(|r| r.update.provider_ref.clone()))
    .bind(column(|r| r.update.error.clone()))
    .bind(column(|r| r.update.error_code.clone()))
    .bind(segments)
    .bind(prices)
    .bind(column(|r| r.update.price_unit.clone()))
    .bind(leases)
    .bind(fallbacks)
    .bind(times)
    .bind(event_ids)
    .execute(&mut *tx)
    .await
    .map_err(db_error)?;
    tx.commit().await.map_err(db_error)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::TestSchema;
    use otpd_core::{DeliveryStatus, DeliveryStore, EventStore, TenantStore};
    use otpd_store_tests::Seed;
    use otpd_store_tests::{T0, sample, service};

    /// A new database's tables are empty when a connection first plans a grouped statement
    /// and caches it: in a keyed transaction that plan is the index lookup, which stays right
    /// as the tables grow; in a plain one it is a scan of the whole table.
    #[tokio::test]
    async fn keyed_transactions_plan_index_lookups_on_empty_tables() {
        let Some(schema) = TestSchema::create().await else {
            return;
        };
        let store = schema.store().await;
        sqlx::query("ANALYZE deliveries")
            .execute(&store.pool)
            .await
            .unwrap();
        let explain = "EXPLAIN UPDATE deliveries SET status = 'sent' WHERE id = ANY(\
                       '{00000000-0000-0000-0000-000000000001,00000000-0000-0000-0000-000000000002}'::uuid[])";
        let mut plain = store.pool.begin().await.unwrap();
        let plan: Vec<String> = sqlx::query_scalar(explain)
            .fetch_all(&mut *plain)
            .await
            .unwrap();
        plain.rollback().await.unwrap();
        assert!(
            plan.iter()
                .any(|line| line.contains("Seq Scan on deliveries")),
            "{plan:?}"
        );
        let mut keyed = crate::begin_keyed(&store.pool).await.unwrap();
        let plan: Vec<String> = sqlx::query_scalar(explain)
            .fetch_all(&mut *keyed)
            .await
            .unwrap();
        keyed.rollback().await.unwrap();
        assert!(
            plan.iter()
                .any(|line| line.contains("Index Scan using deliveries_pkey")),
            "{plan:?}"
        );
        // SET LOCAL: the connection goes back to the pool with sequential scans allowed.
        let setting: String = sqlx::query_scalar("SHOW enable_seqscan")
            .fetch_one(&store.pool)
            .await
            .unwrap();
        assert_eq!(setting, "on");
    }

    /// A group writes each of its records with its event; one delivery twice in a group is
    /// refused, so the queue runs those records alone, one after the other.
    #[tokio::test]
    async fn a_group_records_each_delivery_with_its_event() {
        let Some(schema) = TestSchema::create().await else {
            return;
        };
        let store = schema.store().await;
        let service = service(&store).await;
        let account = store.service(service).await.unwrap().unwrap().account_id;
        let (first, first_delivery) = sample(service, 5, None);
        let (second, second_delivery) = sample(service, 5, None);
        store
            .create_verification(&first, &first_delivery)
            .await
            .unwrap();
        store
            .create_verification(&second, &second_delivery)
            .await
            .unwrap();
        let sent = |id, reference: &str| DeliveryRecord {
            id,
            update: DeliveryUpdate {
                provider: Some("twilio".into()),
                provider_ref: Some(reference.into()),
                ..DeliveryUpdate::status(DeliveryStatus::Sent)
            },
            now: T0,
        };
        let (a, b) = (
            sent(first_delivery.id, "SM-a"),
            sent(second_delivery.id, "SM-b"),
        );
        Records::together(store.pool(), &store.vault, &[&a, &b])
            .await
            .unwrap();
        for (verification, reference) in [(&first, "SM-a"), (&second, "SM-b")] {
            let attempt = store.deliveries(verification.id).await.unwrap().remove(0);
            assert_eq!(attempt.status, DeliveryStatus::Sent);
            assert_eq!(attempt.provider_ref.as_deref(), Some(reference));
            let events = store
                .events(&otpd_store_tests::events_of(
                    account,
                    service,
                    verification.id,
                    Some("delivery.sent"),
                ))
                .await
                .unwrap();
            assert_eq!(events.len(), 1, "one event per record");
            assert_eq!(events[0].data["providerMessageId"], reference);
        }
        assert!(matches!(
            Records::together(store.pool(), &store.vault, &[&a, &a]).await,
            Err(StoreError::Conflict(_))
        ));
    }
}
