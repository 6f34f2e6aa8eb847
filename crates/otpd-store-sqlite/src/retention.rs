//! Retention on SQLite: daily rollups and batched purges, each one short writer job.

use otpd_core::events::{AttemptFilter, AttemptSummary};
use otpd_core::retention::{DAY_MS, PurgeKind, ReportRollup, day_start, id_bound};
use otpd_core::store::RetentionStore;
use otpd_core::{ServiceId, StoreError, Timestamp};
use rusqlite::types::Value;
use rusqlite::{Connection, params};

use crate::{SqliteStore, db_error, execute, query_all, query_one, rows};
use otpd_core::vault::clear_part;

/// Attempts of one day, per service, send channel, country and clear prefix.
const ROLL_UP_ATTEMPTS: &str = "INSERT INTO attempt_rollups \
     (day, service_id, channel, country, to_prefix, attempts, converted) \
     SELECT ?1, v.service_id, d.channel, v.country, v.to_prefix, COUNT(*), \
     SUM(CASE WHEN v.status = 'approved' THEN 1 ELSE 0 END) \
     FROM deliveries d JOIN verifications v ON v.id = d.verification_id \
     WHERE d.created_at >= ?1 AND d.created_at < ?2 \
     GROUP BY v.service_id, d.channel, v.country, v.to_prefix";

/// Verifications whose first send is that day, as the report classifies them.
const ROLL_UP_REPORT: &str = "INSERT INTO report_rollups \
     (day, service_id, channel, country, provider, approve_seconds, failed, sent, success) \
     SELECT ?1, v.service_id, v.channel, v.country, f.provider, \
     CASE WHEN v.status = 'approved' THEN (v.updated_at - v.created_at) / 1000 END, \
     SUM(CASE WHEN v.status <> 'approved' AND f.unfailed = 0 THEN 1 ELSE 0 END), \
     SUM(CASE WHEN v.status <> 'approved' AND f.unfailed > 0 THEN 1 ELSE 0 END), \
     SUM(CASE WHEN v.status = 'approved' THEN 1 ELSE 0 END) \
     FROM (SELECT d.verification_id AS id, \
             SUM(CASE WHEN d.status <> 'failed' THEN 1 ELSE 0 END) AS unfailed, \
             (SELECT p.provider FROM deliveries p WHERE p.verification_id = d.verification_id \
              AND p.provider IS NOT NULL ORDER BY p.id DESC LIMIT 1) AS provider \
           FROM deliveries d WHERE d.verification_id IN \
             (SELECT verification_id FROM deliveries WHERE created_at >= ?1 AND created_at < ?2) \
           GROUP BY d.verification_id HAVING MIN(d.created_at) >= ?1) f \
     JOIN verifications v ON v.id = f.id \
     GROUP BY v.service_id, v.channel, v.country, f.provider, 6";

impl RetentionStore for SqliteStore {
    async fn rolled_up_before(&self) -> Result<Timestamp, StoreError> {
        self.read(|connection| mark(connection).map(Timestamp))
            .await
    }

    async fn roll_up_next_day(&self, before: Timestamp) -> Result<Option<Timestamp>, StoreError> {
        self.write(move |connection| {
            let rolled = mark(connection)?;
            let first: Option<i64> = connection
                .query_row(
                    "SELECT MIN(created_at) FROM deliveries WHERE created_at >= ?1",
                    [rolled],
                    |row| row.get(0),
                )
                .map_err(db_error)?;
            let Some(first) = first else {
                return Ok(None);
            };
            let day = day_start(Timestamp(first)).0;
            if day + DAY_MS > before.0 {
                return Ok(None);
            }
            execute(connection, ROLL_UP_ATTEMPTS, params![day, day + DAY_MS])?;
            execute(connection, ROLL_UP_REPORT, params![day, day + DAY_MS])?;
            execute(
                connection,
                "UPDATE retention_state SET rolled_up_before = ?1 WHERE id = 1",
                [day + DAY_MS],
            )?;
            Ok(Some(Timestamp(day)))
        })
        .await
    }

    async fn purge(
        &self,
        kind: PurgeKind,
        before: Timestamp,
        limit: u32,
    ) -> Result<u64, StoreError> {
        self.write(move |connection| purge(connection, kind, before, limit))
            .await
    }

    async fn attempt_rollups(
        &self,
        filter: &AttemptFilter,
        before: Timestamp,
    ) -> Result<AttemptSummary, StoreError> {
        if filter.verification.is_some() || filter.to.is_some() {
            return Ok(AttemptSummary::default());
        }
        let f = filter.clone();
        self.read(move |connection| {
            let (mut clause, mut values) = rollup_where(&f, before);
            if let Some(country) = &f.country {
                values.push(country.clone().into());
                clause.push_str(&format!(" AND r.country = ?{}", values.len()));
            }
            if let Some(prefix) = &f.prefix {
                let clear = clear_part(prefix);
                values.push(format!("{clear}%").into());
                clause.push_str(&format!(" AND r.to_prefix LIKE ?{}", values.len()));
            }
            if let Some(channel) = &f.channel {
                values.push(channel.clone().into());
                clause.push_str(&format!(" AND r.channel = ?{}", values.len()));
            }
            let (total, converted): (i64, i64) = connection
                .prepare(&format!(
                    "SELECT COALESCE(SUM(r.attempts), 0), COALESCE(SUM(r.converted), 0) \
                     FROM attempt_rollups r JOIN services s ON s.id = r.service_id WHERE {clause}"
                ))
                .and_then(|mut s| {
                    s.query_row(rusqlite::params_from_iter(values), |row| {
                        Ok((row.get(0)?, row.get(1)?))
                    })
                })
                .map_err(db_error)?;
            Ok(AttemptSummary {
                total: total.max(0) as u64,
                converted: converted.max(0) as u64,
            })
        })
        .await
    }

    async fn report_rollups(
        &self,
        filter: &AttemptFilter,
        before: Timestamp,
    ) -> Result<Vec<ReportRollup>, StoreError> {
        let f = filter.clone();
        self.read(move |connection| {
            let (clause, values) = rollup_where(&f, before);
            query_all(
                connection,
                &format!(
                    "SELECT r.service_id, r.channel, r.country, r.provider, r.approve_seconds, \
                     SUM(r.failed), SUM(r.sent), SUM(r.success) \
                     FROM report_rollups r JOIN services s ON s.id = r.service_id WHERE {clause} \
                     GROUP BY r.service_id, r.channel, r.country, r.provider, r.approve_seconds"
                ),
                rusqlite::params_from_iter(values),
                |row| {
                    let count = |index| rows::get::<i64>(row, index).map(|n| n.max(0) as u64);
                    Ok(ReportRollup {
                        service_id: ServiceId::from_uuid(rows::uuid(row, 0)?),
                        channel: rows::get(row, 1)?,
                        country: rows::get(row, 2)?,
                        provider: rows::get(row, 3)?,
                        approve_seconds: rows::get(row, 4)?,
                        failed: count(5)?,
                        sent: count(6)?,
                        success: count(7)?,
                    })
                },
            )
        })
        .await
    }
}

/// The end of the last rolled-up day.
fn mark(connection: &Connection) -> Result<i64, StoreError> {
    Ok(query_one(
        connection,
        "SELECT rolled_up_before FROM retention_state WHERE id = 1",
        [],
        |row| rows::get(row, 0),
    )?
    .unwrap_or(0))
}

/// The account, service and day conditions both rollup tables share (a day counts when
/// `since..until` touches it).
fn rollup_where(f: &AttemptFilter, before: Timestamp) -> (String, Vec<Value>) {
    let mut values: Vec<Value> = vec![before.0.into()];
    let mut clause = String::from("r.day < ?1");
    let mut push = |sql: &str, value: Value| {
        values.push(value);
        clause.push_str(&format!(" AND {sql} ?{}", values.len()));
    };
    if let Some(account) = f.account {
        push("s.account_id =", account.as_bytes().to_vec().into());
    }
    if let Some(service) = f.service {
        push("r.service_id =", service.as_bytes().to_vec().into());
    }
    if let Some(since) = f.since {
        push("r.day >", (since.0 - DAY_MS).into());
    }
    if let Some(until) = f.until {
        push("r.day <", until.0.into());
    }
    (clause, values)
}

/// One batch of `kind`: the writer job.
fn purge(
    connection: &Connection,
    kind: PurgeKind,
    before: Timestamp,
    limit: u32,
) -> Result<u64, StoreError> {
    let bound = id_bound(before);
    let bound = bound.as_bytes().as_slice();
    let deleted = match kind {
        PurgeKind::Verifications => {
            let ids: Vec<Vec<u8>> = query_all(
                connection,
                "SELECT v.id FROM verifications v WHERE v.id < ?1 AND v.created_at < ?2 \
                 AND v.updated_at < ?2 AND v.expires_at < ?2 AND v.status <> 'pending' \
                 AND NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.verification_id = v.id \
                   AND d.created_at >= (SELECT rolled_up_before FROM retention_state WHERE id = 1)) \
                 ORDER BY v.id LIMIT ?3",
                params![bound, before.0, limit],
                |row| rows::get(row, 0),
            )?;
            for id in &ids {
                execute(
                    connection,
                    "DELETE FROM deliveries WHERE verification_id = ?1",
                    [id],
                )?;
                execute(
                    connection,
                    "DELETE FROM callbacks WHERE verification_id = ?1",
                    [id],
                )?;
                execute(connection, "DELETE FROM verifications WHERE id = ?1", [id])?;
            }
            // Counted as verifications (their deliveries and callbacks go with them).
            ids.len()
        }
        PurgeKind::Events => execute(
            connection,
            "DELETE FROM events WHERE id IN (SELECT id FROM events WHERE id < ?1 \
             AND created_at < ?2 ORDER BY id LIMIT ?3)",
            params![bound, before.0, limit],
        )?,
        PurgeKind::DeliveryLogs => {
            let callbacks = execute(
                connection,
                "DELETE FROM callbacks WHERE id IN (SELECT id FROM callbacks WHERE id < ?1 \
                 AND state <> 'pending' AND updated_at < ?2 ORDER BY id LIMIT ?3)",
                params![bound, before.0, limit],
            )?;
            let webhooks = execute(
                connection,
                "DELETE FROM webhook_deliveries WHERE id IN (SELECT id FROM webhook_deliveries \
                 WHERE id < ?1 AND state <> 'pending' AND updated_at < ?2 ORDER BY id LIMIT ?3)",
                params![bound, before.0, limit],
            )?;
            callbacks + webhooks
        }
        PurgeKind::Counters => {
            let rates = execute(
                connection,
                "DELETE FROM rate_events WHERE rowid IN \
                 (SELECT rowid FROM rate_events WHERE at < ?1 LIMIT ?2)",
                params![before.0, limit],
            )?;
            let quarantines = execute(
                connection,
                "DELETE FROM quarantines WHERE (prefix, service_id) IN \
                 (SELECT prefix, service_id FROM quarantines WHERE until < ?1 LIMIT ?2)",
                params![before.0, limit],
            )?;
            // Budget spends are keyed `budget:{service}:{UTC day number}`.
            let spends = execute(
                connection,
                "DELETE FROM spend WHERE key IN (SELECT key FROM spend WHERE key LIKE 'budget:%' \
                 AND CAST(substr(key, length(rtrim(key, '0123456789')) + 1) AS INTEGER) < ?1 LIMIT ?2)",
                params![before.0.div_euclid(DAY_MS), limit],
            )?;
            rates + quarantines + spends
        }
    };
    Ok(deleted as u64)
}
