//! Retention on PostgreSQL: daily rollups (one transaction each, under the lock of the
//! rollup mark so one node rolls each day up once) and batched purges in short transactions.

use otpd_core::events::{AttemptFilter, AttemptSummary};
use otpd_core::retention::{DAY_MS, PurgeKind, ReportRollup, day_start, id_bound};
use otpd_core::store::RetentionStore;
use otpd_core::{ServiceId, StoreError, Timestamp};
use sqlx::Row;
use uuid::Uuid;

use crate::{PgStore, db_error};
use otpd_core::vault::clear_part;

/// Attempts of one day, per service, send channel, country and clear prefix.
const ROLL_UP_ATTEMPTS: &str = "INSERT INTO attempt_rollups \
     (day, service_id, channel, country, to_prefix, attempts, converted) \
     SELECT $1, v.service_id, d.channel, v.country, v.to_prefix, COUNT(*), \
     SUM(CASE WHEN v.status = 'approved' THEN 1 ELSE 0 END) \
     FROM deliveries d JOIN verifications v ON v.id = d.verification_id \
     WHERE d.created_at >= $1 AND d.created_at < $2 \
     GROUP BY v.service_id, d.channel, v.country, v.to_prefix";

/// Verifications whose first send is that day, as the report classifies them.
const ROLL_UP_REPORT: &str = "INSERT INTO report_rollups \
     (day, service_id, channel, country, provider, approve_seconds, failed, sent, success) \
     SELECT $1, v.service_id, v.channel, v.country, f.provider, \
     CASE WHEN v.status = 'approved' THEN (v.updated_at - v.created_at) / 1000 END, \
     SUM(CASE WHEN v.status <> 'approved' AND f.unfailed = 0 THEN 1 ELSE 0 END), \
     SUM(CASE WHEN v.status <> 'approved' AND f.unfailed > 0 THEN 1 ELSE 0 END), \
     SUM(CASE WHEN v.status = 'approved' THEN 1 ELSE 0 END) \
     FROM (SELECT d.verification_id AS id, \
             SUM(CASE WHEN d.status <> 'failed' THEN 1 ELSE 0 END) AS unfailed, \
             (SELECT p.provider FROM deliveries p WHERE p.verification_id = d.verification_id \
              AND p.provider IS NOT NULL ORDER BY p.id DESC LIMIT 1) AS provider \
           FROM deliveries d WHERE d.verification_id IN \
             (SELECT verification_id FROM deliveries WHERE created_at >= $1 AND created_at < $2) \
           GROUP BY d.verification_id HAVING MIN(d.created_at) >= $1) f \
     JOIN verifications v ON v.id = f.id \
     GROUP BY v.service_id, v.channel, v.country, f.provider, 6";

/// The account, service and day conditions both rollup tables share (a day counts when
/// `since..until` touches it); binds $1–$5.
macro_rules! rollup_where {
    () => {
        "r.day < $1 \
         AND ($2::uuid IS NULL OR s.account_id = $2) \
         AND ($3::uuid IS NULL OR r.service_id = $3) \
         AND ($4::bigint IS NULL OR r.day > $4) \
         AND ($5::bigint IS NULL OR r.day < $5)"
    };
}

impl RetentionStore for PgStore {
    async fn rolled_up_before(&self) -> Result<Timestamp, StoreError> {
        let mark: Option<i64> =
            sqlx::query_scalar("SELECT rolled_up_before FROM retention_state WHERE id = 1")
                .fetch_optional(&self.pool)
                .await
                .map_err(db_error)?;
        Ok(Timestamp(mark.unwrap_or(0)))
    }

    async fn roll_up_next_day(&self, before: Timestamp) -> Result<Option<Timestamp>, StoreError> {
        let mut tx = self.pool.begin().await.map_err(db_error)?;
        // A day's aggregate may take longer than a request's statement; it locks only the mark.
        sqlx::query("SET LOCAL statement_timeout = '300s'")
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
        let rolled: i64 = sqlx::query_scalar(
            "SELECT rolled_up_before FROM retention_state WHERE id = 1 FOR UPDATE",
        )
        .fetch_one(&mut *tx)
        .await
        .map_err(db_error)?;
        let first: Option<i64> =
            sqlx::query_scalar("SELECT MIN(created_at) FROM deliveries WHERE created_at >= $1")
                .bind(rolled)
                .fetch_one(&mut *tx)
                .await
                .map_err(db_error)?;
        let Some(first) = first else {
            return Ok(None);
        };
        let day = day_start(Timestamp(first)).0;
        if day + DAY_MS > before.0 {
            return Ok(None);
        }
        for sql in [ROLL_UP_ATTEMPTS, ROLL_UP_REPORT] {
            sqlx::query(sql)
                .bind(day)
                .bind(day + DAY_MS)
                .execute(&mut *tx)
                .await
                .map_err(db_error)?;
        }
        sqlx::query("UPDATE retention_state SET rolled_up_before = $1 WHERE id = 1")
            .bind(day + DAY_MS)
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
        tx.commit().await.map_err(db_error)?;
        Ok(Some(Timestamp(day)))
    }

    async fn purge(
        &self,
        kind: PurgeKind,
        before: Timestamp,
        limit: u32,
    ) -> Result<u64, StoreError> {
        let bound = id_bound(before);
        let limit = i64::from(limit);
        let run = |sql: &'static str| {
            sqlx::query(sql)
                .bind(bound)
                .bind(before.0)
                .bind(limit)
                .execute(&self.pool)
        };
        let deleted = match kind {
            PurgeKind::Verifications => {
                let mut tx = self.pool.begin().await.map_err(db_error)?;
                let ids: Vec<Uuid> = sqlx::query_scalar(
                    "SELECT v.id FROM verifications v WHERE v.id < $1 AND v.created_at < $2 \
                     AND v.updated_at < $2 AND v.expires_at < $2 AND v.status <> 'pending' \
                     AND NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.verification_id = v.id \
                       AND d.created_at >= (SELECT rolled_up_before FROM retention_state WHERE id = 1)) \
                     ORDER BY v.id LIMIT $3 FOR UPDATE SKIP LOCKED",
                )
                .bind(bound)
                .bind(before.0)
                .bind(limit)
                .fetch_all(&mut *tx)
                .await
                .map_err(db_error)?;
                for sql in [
                    "DELETE FROM deliveries WHERE verification_id = ANY($1)",
                    "DELETE FROM callbacks WHERE verification_id = ANY($1)",
                    "DELETE FROM verifications WHERE id = ANY($1)",
                ] {
                    sqlx::query(sql)
                        .bind(&ids)
                        .execute(&mut *tx)
                        .await
                        .map_err(db_error)?;
                }
                tx.commit().await.map_err(db_error)?;
                ids.len() as u64
            }
            PurgeKind::Events => run(
                "DELETE FROM events WHERE id IN (SELECT id FROM events WHERE id < $1 \
                 AND created_at < $2 ORDER BY id LIMIT $3)",
            )
            .await
            .map_err(db_error)?
            .rows_affected(),
            PurgeKind::DeliveryLogs => {
                let callbacks = run(
                    "DELETE FROM callbacks WHERE id IN (SELECT id FROM callbacks WHERE id < $1 \
                     AND state <> 'pending' AND updated_at < $2 ORDER BY id LIMIT $3)",
                )
                .await
                .map_err(db_error)?
                .rows_affected();
                let webhooks = run(
                    "DELETE FROM webhook_deliveries WHERE id IN (SELECT id FROM webhook_deliveries \
                     WHERE id < $1 AND state <> 'pending' AND updated_at < $2 ORDER BY id LIMIT $3)",
                )
                .await
                .map_err(db_error)?
                .rows_affected();
                callbacks + webhooks
            }
            PurgeKind::Counters => {
                let mut total = 0;
                for (sql, cutoff) in [
                    (
                        "DELETE FROM rate_events WHERE ctid = ANY(ARRAY(SELECT ctid FROM rate_events \
                         WHERE at < $1 LIMIT $2))",
                        before.0,
                    ),
                    (
                        "DELETE FROM quarantines WHERE (prefix, service_id) IN \
                         (SELECT prefix, service_id FROM quarantines WHERE until < $1 LIMIT $2)",
                        before.0,
                    ),
                    // Budget spends are keyed `budget:{service}:{UTC day number}`.
                    (
                        "DELETE FROM spend WHERE key IN (SELECT key FROM spend \
                         WHERE key LIKE 'budget:%' AND substring(key from '[0-9]+$')::bigint < $1 \
                         LIMIT $2)",
                        before.0.div_euclid(DAY_MS),
                    ),
                ] {
                    total += sqlx::query(sql)
                        .bind(cutoff)
                        .bind(limit)
                        .execute(&self.pool)
                        .await
                        .map_err(db_error)?
                        .rows_affected();
                }
                total
            }
        };
        Ok(deleted)
    }

    async fn attempt_rollups(
        &self,
        filter: &AttemptFilter,
        before: Timestamp,
    ) -> Result<AttemptSummary, StoreError> {
        if filter.verification.is_some() || filter.to.is_some() {
            return Ok(AttemptSummary::default());
        }
        let prefix = filter.prefix.as_ref().map(|p| {
            let clear = clear_part(p);
            format!("{clear}%")
        });
        let row = sqlx::query(concat!(
            "SELECT COALESCE(SUM(r.attempts), 0)::bigint, COALESCE(SUM(r.converted), 0)::bigint \
             FROM attempt_rollups r JOIN services s ON s.id = r.service_id WHERE ",
            rollup_where!(),
            " AND ($6::text IS NULL OR r.country = $6) \
             AND ($7::text IS NULL OR r.to_prefix LIKE $7) \
             AND ($8::text IS NULL OR r.channel = $8)"
        ))
        .bind(before.0)
        .bind(filter.account.map(|a| a.uuid()))
        .bind(filter.service.map(|s| s.uuid()))
        .bind(filter.since.map(|t| t.0 - DAY_MS))
        .bind(filter.until.map(|t| t.0))
        .bind(&filter.country)
        .bind(prefix)
        .bind(&filter.channel)
        .fetch_one(&self.pool)
        .await
        .map_err(db_error)?;
        let total: i64 = row.try_get(0).map_err(db_error)?;
        let converted: i64 = row.try_get(1).map_err(db_error)?;
        Ok(AttemptSummary {
            total: total.max(0) as u64,
            converted: converted.max(0) as u64,
        })
    }

    async fn report_rollups(
        &self,
        filter: &AttemptFilter,
        before: Timestamp,
    ) -> Result<Vec<ReportRollup>, StoreError> {
        let rows = sqlx::query(concat!(
            "SELECT r.service_id, r.channel, r.country, r.provider, r.approve_seconds, \
             SUM(r.failed)::bigint, SUM(r.sent)::bigint, SUM(r.success)::bigint \
             FROM report_rollups r JOIN services s ON s.id = r.service_id WHERE ",
            rollup_where!(),
            " GROUP BY r.service_id, r.channel, r.country, r.provider, r.approve_seconds"
        ))
        .bind(before.0)
        .bind(filter.account.map(|a| a.uuid()))
        .bind(filter.service.map(|s| s.uuid()))
        .bind(filter.since.map(|t| t.0 - DAY_MS))
        .bind(filter.until.map(|t| t.0))
        .fetch_all(&self.pool)
        .await
        .map_err(db_error)?;
        rows.iter()
            .map(|row| {
                let count = |index: usize| {
                    row.try_get::<i64, _>(index)
                        .map(|n| n.max(0) as u64)
                        .map_err(db_error)
                };
                Ok(ReportRollup {
                    service_id: ServiceId::from_uuid(row.try_get(0).map_err(db_error)?),
                    channel: row.try_get(1).map_err(db_error)?,
                    country: row.try_get(2).map_err(db_error)?,
                    provider: row.try_get(3).map_err(db_error)?,
                    approve_seconds: row.try_get(4).map_err(db_error)?,
                    failed: count(5)?,
                    sent: count(6)?,
                    success: count(7)?,
                })
            })
            .collect()
    }
}
