//! The delivery outbox on SQLite: attempts, their leases and outcomes, receipts, fallbacks
//! and the attempts report.

use otpd_core::events::{AttemptFilter, AttemptSummary};
use otpd_core::report::ReportRow;
use otpd_core::store::{
    DeliveryAttempt, DeliveryStore, DeliveryUpdate, OutboxStats, ReceiptUpdate,
};
use otpd_core::{
    DeliveryId, DeliveryStatus, ServiceId, StoreError, Timestamp, Verification, VerificationId,
};
use rusqlite::{Connection, params};

use otpd_core::vault::Vault;

use otpd_core::vault::{CLEAR_PREFIX_CHARS, clear_part};

use crate::rows;
use crate::rows::{DELIVERY_COLUMNS, DELIVERY_COLUMNS_AND_SERVICE};
use crate::{
    EventRow, SqliteStore, db_error, execute, insert_event, load_verification, query_all, query_one,
};

impl DeliveryStore for SqliteStore {
    async fn deliveries(
        &self,
        verification: VerificationId,
    ) -> Result<Vec<DeliveryAttempt>, StoreError> {
        self.read(move |connection| {
            query_all(
                connection,
                &format!("SELECT {DELIVERY_COLUMNS} FROM deliveries WHERE verification_id = ?1 ORDER BY created_at, id"),
                [verification.as_bytes().as_slice()],
                rows::delivery,
            )
        })
        .await
    }

    async fn claim_stale_deliveries(
        &self,
        now: Timestamp,
        lease_until: Timestamp,
        limit: u32,
    ) -> Result<Vec<(DeliveryAttempt, Verification)>, StoreError> {
        let vault = self.vault();
        self.write(move |connection| {
            let queued = query_all(
                connection,
                &format!(
                    "UPDATE deliveries SET lease_until = ?1 WHERE id IN \
                     (SELECT id FROM deliveries WHERE status = 'queued' AND lease_until <= ?2 \
                      ORDER BY lease_until LIMIT ?3) RETURNING {DELIVERY_COLUMNS}"
                ),
                params![lease_until.0, now.0, limit],
                rows::delivery,
            )?;
            let mut out = Vec::with_capacity(queued.len());
            for delivery in queued {
                if let Some(verification) =
                    load_verification(connection, &vault, delivery.verification_id)?
                {
                    out.push((delivery, verification));
                }
            }
            Ok(out)
        })
        .await
    }

    async fn update_delivery(
        &self,
        id: DeliveryId,
        update: &DeliveryUpdate,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        self.write(delivery_update(id, update.clone(), now)).await
    }

    /// Queued, not committed, when it returns: one node, one writer, and every read waits for
    /// it (`Writer::settled`), so the start that answers with it never disagrees with a read.
    async fn record_first_outcome(
        &self,
        id: DeliveryId,
        update: &DeliveryUpdate,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        self.inner.writer.write_unconfirmed(
            "a delivery's first outcome",
            delivery_update(id, update.clone(), now),
        )
    }

    async fn record_receipt(
        &self,
        receipt: &ReceiptUpdate,
        now: Timestamp,
    ) -> Result<Option<DeliveryAttempt>, StoreError> {
        let r = receipt.clone();
        self.write(move |connection| {
            let Some(current) = query_one(
                connection,
                &format!(
                    "SELECT {DELIVERY_COLUMNS} FROM deliveries WHERE provider_ref = ?1 AND provider = ?2"
                ),
                params![r.provider_ref, r.provider],
                rows::delivery,
            )?
            else {
                return Ok(None);
            };
            if current.status.rank() >= r.status.rank() {
                return Ok(Some(current));
            }
            let fallback = match r.status {
                DeliveryStatus::Delivered => "NULL",
                DeliveryStatus::Undelivered | DeliveryStatus::Failed => {
                    "CASE WHEN fallback_at IS NULL THEN NULL ELSE ?6 END"
                }
                _ => "fallback_at",
            };
            query_one(
                connection,
                &format!(
                    "UPDATE deliveries SET status = ?1, error_code = COALESCE(?2, error_code), \
                     price = COALESCE(?3, price), segments = COALESCE(?4, segments), \
                     fallback_at = {fallback}, updated_at = ?6 WHERE id = ?5 \
                     RETURNING {DELIVERY_COLUMNS_AND_SERVICE}"
                ),
                params![
                    r.status.as_str(),
                    r.error_code,
                    r.price,
                    r.segments,
                    current.id.as_bytes().as_slice(),
                    now.0
                ],
                rows::delivery_and_service,
            )?
            .map(|(updated, service)| {
                insert_event(
                    connection,
                    &EventRow::delivery(service, &updated, now),
                )?;
                Ok(updated)
            })
            .transpose()
        })
        .await
    }

    async fn claim_due_fallbacks(
        &self,
        now: Timestamp,
        limit: u32,
    ) -> Result<Vec<(DeliveryAttempt, Verification)>, StoreError> {
        let vault = self.vault();
        self.write(move |connection| {
            let due = query_all(
                connection,
                &format!(
                    "UPDATE deliveries SET fallback_at = NULL WHERE id IN \
                     (SELECT id FROM deliveries WHERE fallback_at IS NOT NULL AND fallback_at <= ?1 \
                      ORDER BY fallback_at LIMIT ?2) RETURNING {DELIVERY_COLUMNS}"
                ),
                params![now.0, limit],
                rows::delivery,
            )?;
            let mut out = Vec::with_capacity(due.len());
            for delivery in due {
                if let Some(verification) = load_verification(connection, &vault, delivery.verification_id)?
                {
                    out.push((delivery, verification));
                }
            }
            Ok(out)
        })
        .await
    }

    async fn release_deliveries(
        &self,
        ids: &[DeliveryId],
        now: Timestamp,
    ) -> Result<u64, StoreError> {
        let ids = ids.to_vec();
        self.write(move |connection| {
            let mut released = 0;
            for id in &ids {
                released += execute(
                    connection,
                    "UPDATE deliveries SET lease_until = ?1 WHERE id = ?2 AND status = 'queued'",
                    params![now.0, id.as_bytes().as_slice()],
                )? as u64;
            }
            Ok(released)
        })
        .await
    }

    async fn outbox_stats(&self) -> Result<OutboxStats, StoreError> {
        self.read(move |connection| {
            let (queued, oldest): (i64, Option<i64>) = connection
                .query_row(
                    "SELECT COUNT(*), MIN(created_at) FROM deliveries WHERE status = 'queued'",
                    [],
                    |row| Ok((row.get(0)?, row.get(1)?)),
                )
                .map_err(db_error)?;
            let pending: i64 = connection
                .query_row(
                    "SELECT COUNT(*) FROM callbacks WHERE state = 'pending'",
                    [],
                    |row| row.get(0),
                )
                .map_err(db_error)?;
            Ok(OutboxStats {
                queued_deliveries: queued.max(0) as u64,
                oldest_queued: oldest.map(Timestamp),
                pending_callbacks: pending.max(0) as u64,
            })
        })
        .await
    }

    async fn attempts(
        &self,
        filter: &AttemptFilter,
    ) -> Result<Vec<(DeliveryAttempt, Verification)>, StoreError> {
        let f = filter.clone();
        let vault = self.vault();
        self.read(move |connection| {
            let (clause, mut values) = attempt_where(&f, &vault);
            let mut sql = format!(
                "SELECT d.id FROM deliveries d JOIN verifications v ON v.id = d.verification_id \
                 JOIN services s ON s.id = v.service_id WHERE {clause}"
            );
            if let Some(after) = f.after {
                values.push(after.as_bytes().to_vec().into());
                let direction = if f.newest_first { '<' } else { '>' };
                sql.push_str(&format!(" AND d.id {direction} ?{}", values.len()));
            }
            let order = if f.newest_first { " DESC" } else { "" };
            sql.push_str(&format!(" ORDER BY d.id{order} LIMIT {}", f.limit.max(1)));
            let ids: Vec<Vec<u8>> = query_all(
                connection,
                &sql,
                rusqlite::params_from_iter(values),
                |row| rows::get(row, 0),
            )?;
            let mut out = Vec::with_capacity(ids.len());
            for id in ids {
                let delivery = query_one(
                    connection,
                    &format!("SELECT {DELIVERY_COLUMNS} FROM deliveries WHERE id = ?1"),
                    [id.as_slice()],
                    rows::delivery,
                )?;
                if let Some(delivery) = delivery
                    && let Some(verification) =
                        load_verification(connection, &vault, delivery.verification_id)?
                {
                    out.push((delivery, verification));
                }
            }
            Ok(out)
        })
        .await
    }

    async fn attempt_summary(&self, filter: &AttemptFilter) -> Result<AttemptSummary, StoreError> {
        let f = filter.clone();
        let vault = self.vault();
        self.read(move |connection| {
            let (clause, values) = attempt_where(&f, &vault);
            if let Some(prefix) = f.prefix.as_ref().filter(|p| p.chars().count() > CLEAR_PREFIX_CHARS) {
                // Longer than the clear prefix: the candidates' destinations are opened.
                let sql = format!(
                    "SELECT v.to_sealed, v.status = 'approved' \
                     FROM deliveries d JOIN verifications v ON v.id = d.verification_id \
                     JOIN services s ON s.id = v.service_id WHERE {clause}"
                );
                let rows: Vec<(Vec<u8>, bool)> = query_all(
                    connection,
                    &sql,
                    rusqlite::params_from_iter(values),
                    |row| Ok((rows::get(row, 0)?, rows::get(row, 1)?)),
                )?;
                let mut summary = AttemptSummary::default();
                for (sealed, approved) in rows {
                    if vault.open(&sealed).is_ok_and(|to| to.starts_with(prefix.as_str())) {
                        summary.total += 1;
                        summary.converted += u64::from(approved);
                    }
                }
                return Ok(summary);
            }
            let sql = format!(
                "SELECT COUNT(*), COALESCE(SUM(CASE WHEN v.status = 'approved' THEN 1 ELSE 0 END), 0) \
                 FROM deliveries d JOIN verifications v ON v.id = d.verification_id \
                 JOIN services s ON s.id = v.service_id WHERE {clause}"
            );
            let (total, converted): (i64, i64) = connection
                .prepare(&sql)
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

    async fn report_rows(&self, filter: &AttemptFilter) -> Result<Vec<ReportRow>, StoreError> {
        let f = filter.clone();
        let vault = self.vault();
        if by_sends_then_verifications(&f) {
            return self
                .read(move |connection| report_rows_in_two_scans(connection, &f))
                .await;
        }
        self.read(move |connection| {
            let (clause, values) = attempt_where(&f, &vault);
            // Longer than the clear prefix: each candidate's destination is opened, and the
            // limit applies after.
            let opened = f.prefix.as_ref().filter(|p| p.chars().count() > CLEAR_PREFIX_CHARS);
            let sealed = if opened.is_some() { "v.to_sealed" } else { "NULL" };
            let order = if f.newest_first { " DESC" } else { "" };
            let limit = match opened {
                Some(_) => String::new(),
                None => format!(" LIMIT {}", f.limit.max(1)),
            };
            // The services are joined only to filter by account.
            let services = if f.account.is_some() {
                "JOIN services s ON s.id = v.service_id "
            } else {
                ""
            };
            // The last provider: the greatest (time-ordered) id among the sends that had one,
            // its 32 hex digits then cut off.
            let sql = format!(
                "SELECT v.service_id, v.channel, v.country, \
                 substr(MAX(CASE WHEN d.provider IS NOT NULL THEN hex(d.id) || d.provider END), 33), \
                 v.status = 'approved', SUM(d.status <> 'failed') = 0, v.created_at, v.updated_at, \
                 COALESCE(SUM(d.price), 0.0), {sealed} \
                 FROM deliveries d JOIN verifications v ON v.id = d.verification_id \
                 {services}WHERE {clause} GROUP BY v.id ORDER BY v.id{order}{limit}"
            );
            let rows: Vec<(ReportRow, Option<Vec<u8>>)> = query_all(
                connection,
                &sql,
                rusqlite::params_from_iter(values),
                |row| {
                    Ok((
                        ReportRow {
                            service_id: ServiceId::from_uuid(rows::uuid(row, 0)?),
                            channel: rows::get(row, 1)?,
                            country: rows::get(row, 2)?,
                            provider: rows::get(row, 3)?,
                            approved: rows::get(row, 4)?,
                            all_failed: rows::get(row, 5)?,
                            created_at: Timestamp(rows::get(row, 6)?),
                            updated_at: Timestamp(rows::get(row, 7)?),
                            spend: rows::get(row, 8)?,
                        },
                        rows::get(row, 9)?,
                    ))
                },
            )?;
            let Some(prefix) = opened else {
                return Ok(rows.into_iter().map(|(row, _)| row).collect());
            };
            Ok(rows
                .into_iter()
                .filter(|(_, sealed)| {
                    sealed.as_ref().is_some_and(|sealed| {
                        vault.open(sealed).is_ok_and(|to| to.starts_with(prefix.as_str()))
                    })
                })
                .map(|(row, _)| row)
                .take(f.limit.max(1) as usize)
                .collect())
        })
        .await
    }
}

/// Whether the report for `f` can be read as [`report_rows_in_two_scans`] does: a filter by
/// time, channel and service only (the console's insights and overview).
fn by_sends_then_verifications(f: &AttemptFilter) -> bool {
    f.account.is_none()
        && f.verification.is_none()
        && f.to.is_none()
        && f.country.is_none()
        && f.prefix.is_none()
        && f.converted.is_none()
}

/// One send as the report reads it: its verification, its id, provider, whether it did not
/// fail, and its price.
type ReportSend = ([u8; 16], [u8; 16], Option<String>, bool, f64);

/// One verification's sends in the report's window.
struct Sends {
    verification: [u8; 16],
    /// The provider of the last (time-ordered id) send that had one.
    last_provider: Option<String>,
    any_not_failed: bool,
    spend: f64,
}

/// The report rows without joining each send to its verification (one b-tree search per
/// send, most of the time of a 100,000-verification report): the window's sends are read
/// and summed per verification in id order, then the verifications are read in one range
/// of their time-ordered ids, from the oldest one those sends belong to, and merged with
/// them in that order.
fn report_rows_in_two_scans(
    connection: &Connection,
    f: &AttemptFilter,
) -> Result<Vec<ReportRow>, StoreError> {
    let mut clause = String::from("1 = 1");
    let mut values: Vec<rusqlite::types::Value> = Vec::new();
    if let Some(since) = f.since {
        // The sends' ids are time-ordered too: the window's oldest, found in the time index
        // alone, starts one range of the table, read without a search per send (`+` keeps
        // the time index out of the main read).
        let oldest: Option<Vec<u8>> = connection
            .prepare_cached(
                "SELECT MIN(id) FROM deliveries INDEXED BY deliveries_created \
                 WHERE created_at >= ?1",
            )
            .and_then(|mut statement| statement.query_row([since.0], |row| row.get(0)))
            .map_err(db_error)?;
        let Some(oldest) = oldest else {
            return Ok(Vec::new());
        };
        values.push(oldest.into());
        clause.push_str(" AND d.id >= ?1");
    }
    for (sql, value) in [
        ("d.channel =", f.channel.clone().map(Into::into)),
        ("+d.created_at >=", f.since.map(|t| t.0.into())),
        ("+d.created_at <", f.until.map(|t| t.0.into())),
    ] {
        if let Some(value) = value {
            values.push(value);
            clause.push_str(&format!(" AND {sql} ?{}", values.len()));
        }
    }
    let mut each: Vec<ReportSend> = query_all(
        connection,
        &format!(
            "SELECT d.verification_id, d.id, d.provider, d.status <> 'failed', \
             COALESCE(d.price, 0.0) FROM deliveries d WHERE {clause}"
        ),
        rusqlite::params_from_iter(values),
        |row| {
            Ok((
                rows::id_bytes(row, 0)?,
                rows::id_bytes(row, 1)?,
                rows::get(row, 2)?,
                rows::get(row, 3)?,
                rows::get(row, 4)?,
            ))
        },
    )?;
    // Read in time order, they are nearly in id order already: a stable sort finds the runs.
    each.sort_by_key(|send| (send.0, send.1));
    let mut sends: Vec<Sends> = Vec::new();
    for (verification, _, provider, not_failed, price) in each {
        if sends
            .last()
            .is_none_or(|last| last.verification != verification)
        {
            sends.push(Sends {
                verification,
                last_provider: None,
                any_not_failed: false,
                spend: 0.0,
            });
        }
        let Some(last) = sends.last_mut() else {
            continue;
        };
        last.any_not_failed |= not_failed;
        last.spend += price;
        // Sends come in id order: the last one with a provider wins.
        if provider.is_some() {
            last.last_provider = provider;
        }
    }
    let Some(oldest) = sends.first().map(|s| s.verification) else {
        return Ok(Vec::new());
    };
    let mut values: Vec<rusqlite::types::Value> = vec![oldest.to_vec().into()];
    let service = match f.service {
        Some(service) => {
            values.push(service.as_bytes().to_vec().into());
            " AND v.service_id = ?2"
        }
        None => "",
    };
    let order = if f.newest_first { " DESC" } else { "" };
    if f.newest_first {
        sends.reverse();
    }
    let mut statement = connection
        .prepare_cached(&format!(
            "SELECT v.id, v.service_id, v.channel, v.country, v.status = 'approved', \
             v.created_at, v.updated_at FROM verifications v \
             WHERE v.id >= ?1{service} ORDER BY v.id{order}"
        ))
        .map_err(db_error)?;
    let mut rows = statement
        .query(rusqlite::params_from_iter(values))
        .map_err(db_error)?;
    let limit = f.limit.max(1) as usize;
    let mut out = Vec::with_capacity(sends.len().min(limit));
    let mut pending = sends.into_iter().peekable();
    while out.len() < limit
        && pending.peek().is_some()
        && let Some(row) = rows.next().map_err(db_error)?
    {
        let id = rows::id_bytes(row, 0)?;
        // Both run in the same order: skip the sends whose verification is not read (another
        // service's) and the verifications without sends in the window.
        while pending
            .next_if(|s| {
                if f.newest_first {
                    s.verification > id
                } else {
                    s.verification < id
                }
            })
            .is_some()
        {}
        let Some(sent) = pending.next_if(|s| s.verification == id) else {
            continue;
        };
        out.push(ReportRow {
            service_id: ServiceId::from_uuid(uuid::Uuid::from_bytes(rows::id_bytes(row, 1)?)),
            channel: rows::get(row, 2)?,
            country: rows::get(row, 3)?,
            provider: sent.last_provider,
            approved: rows::get(row, 4)?,
            all_failed: !sent.any_not_failed,
            created_at: Timestamp(rows::get(row, 5)?),
            updated_at: Timestamp(rows::get(row, 6)?),
            spend: sent.spend,
        });
    }
    Ok(out)
}

/// The WHERE clause (and its values) shared by attempt lists and summaries.
fn attempt_where(f: &AttemptFilter, vault: &Vault) -> (String, Vec<rusqlite::types::Value>) {
    let mut clause = String::from("1 = 1");
    let mut values: Vec<rusqlite::types::Value> = Vec::new();
    let mut push = |sql: &str, value: rusqlite::types::Value| {
        values.push(value);
        clause.push_str(&format!(" AND {sql} ?{}", values.len()));
    };
    if let Some(account) = f.account {
        push("s.account_id =", account.as_bytes().to_vec().into());
    }
    if let Some(service) = f.service {
        push("v.service_id =", service.as_bytes().to_vec().into());
    }
    if let Some(verification) = f.verification {
        push("v.id =", verification.as_bytes().to_vec().into());
    }
    if let Some(to) = &f.to {
        push("v.to_index =", vault.blind(to).to_hex().into());
    }
    if let Some(country) = &f.country {
        push("v.country =", country.clone().into());
    }
    if let Some(prefix) = &f.prefix {
        // Only the first CLEAR_PREFIX_CHARS characters are kept in clear: a longer prefix narrows
        // by those here, and the summary opens the candidates for the rest.
        let clear = clear_part(prefix);
        push("v.to_prefix LIKE", format!("{clear}%").into());
    }
    if let Some(channel) = &f.channel {
        push("d.channel =", channel.clone().into());
    }
    if let Some(since) = f.since {
        push("d.created_at >=", since.0.into());
    }
    if let Some(until) = f.until {
        push("d.created_at <", until.0.into());
    }
    match f.converted {
        Some(true) => clause.push_str(" AND v.status = 'approved'"),
        Some(false) => clause.push_str(" AND v.status <> 'approved'"),
        None => {}
    }
    (clause, values)
}

/// The writer job recording what happened to a delivery attempt (with its event, for any
/// status but `queued`).
fn delivery_update(
    id: DeliveryId,
    u: DeliveryUpdate,
    now: Timestamp,
) -> impl Fn(&Connection) -> Result<(), StoreError> + Send + 'static {
    move |connection| {
        let updated = query_one(
            connection,
            &format!(
                "UPDATE OR FAIL deliveries SET status = ?1, provider = COALESCE(?2, provider), \
                 provider_ref = COALESCE(?3, provider_ref), error = ?4, error_code = ?5, \
                 segments = COALESCE(?6, segments), price = COALESCE(?7, price), \
                 price_unit = COALESCE(?8, price_unit), lease_until = COALESCE(?9, lease_until), \
                 fallback_at = ?10, updated_at = ?11 WHERE id = ?12 \
                 RETURNING {DELIVERY_COLUMNS_AND_SERVICE}"
            ),
            params![
                u.status.as_str(),
                u.provider,
                u.provider_ref,
                u.error,
                u.error_code,
                u.segments,
                u.price,
                u.price_unit,
                u.lease_until.map(|t| t.0),
                u.fallback_at.map(|t| t.0),
                now.0,
                id.as_bytes().as_slice()
            ],
            rows::delivery_and_service,
        )?;
        if u.status != DeliveryStatus::Queued
            && let Some((delivery, service)) = updated
        {
            insert_event(connection, &EventRow::delivery(service, &delivery, now))?;
        }
        Ok(())
    }
}
