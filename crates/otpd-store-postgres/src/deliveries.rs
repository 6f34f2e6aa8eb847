//! The delivery outbox on PostgreSQL: attempts, their leases and outcomes, receipts, fallbacks
//! and the attempts report.

use otpd_core::events::{AttemptFilter, AttemptSummary};
use otpd_core::report::ReportRow;
use otpd_core::store::VerificationStore;
use otpd_core::store::{
    DeliveryAttempt, DeliveryStore, DeliveryUpdate, OutboxStats, ReceiptUpdate,
};
use otpd_core::{DeliveryId, ServiceId, StoreError, Timestamp, Verification, VerificationId};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::delivery_columns;
use crate::{PgStore, db_error, insert_event};
use crate::{records, rows};
use otpd_core::vault::{CLEAR_PREFIX_CHARS, clear_part};

/// `$query` with `filter`'s ten values bound as $1–$10 of [`attempt_where`].
macro_rules! bind_attempt_filter {
    ($query:expr, $store:expr, $filter:expr) => {
        $query
            .bind($filter.account.map(|a| a.uuid()))
            .bind($filter.service.map(|s| s.uuid()))
            .bind($filter.verification.map(|v| v.uuid()))
            .bind(
                $filter
                    .to
                    .as_ref()
                    .map(|to| $store.vault.blind(to).to_hex()),
            )
            .bind(&$filter.country)
            .bind(clear_prefix($filter))
            .bind(&$filter.channel)
            .bind($filter.since.map(|t| t.0))
            .bind($filter.until.map(|t| t.0))
            .bind($filter.converted)
    };
}

/// The filter of attempt lists and summaries; binds $1–$10.
macro_rules! attempt_where {
    () => {
        "($1::uuid IS NULL OR s.account_id = $1) \
         AND ($2::uuid IS NULL OR v.service_id = $2) \
         AND ($3::uuid IS NULL OR v.id = $3) \
         AND ($4::text IS NULL OR v.to_index = $4) \
         AND ($5::text IS NULL OR v.country = $5) \
         AND ($6::text IS NULL OR v.to_prefix LIKE $6) \
         AND ($7::text IS NULL OR d.channel = $7) \
         AND ($8::bigint IS NULL OR d.created_at >= $8) \
         AND ($9::bigint IS NULL OR d.created_at < $9) \
         AND ($10::boolean IS NULL OR (v.status = 'approved') = $10)"
    };
}

impl DeliveryStore for PgStore {
    async fn deliveries(
        &self,
        verification: VerificationId,
    ) -> Result<Vec<DeliveryAttempt>, StoreError> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            delivery_columns!(),
            " FROM deliveries WHERE verification_id = $1 ORDER BY created_at, id"
        ))
        .bind(verification.uuid())
        .fetch_all(&self.pool)
        .await
        .map_err(db_error)?;
        rows.iter().map(rows::delivery).collect()
    }

    async fn claim_stale_deliveries(
        &self,
        now: Timestamp,
        lease_until: Timestamp,
        limit: u32,
    ) -> Result<Vec<(DeliveryAttempt, Verification)>, StoreError> {
        let rows = sqlx::query(concat!(
            "UPDATE deliveries SET lease_until = $1 WHERE id IN \
             (SELECT id FROM deliveries WHERE status = 'queued' AND lease_until <= $2 \
              ORDER BY lease_until LIMIT $3 FOR UPDATE SKIP LOCKED) RETURNING ",
            delivery_columns!()
        ))
        .bind(lease_until.0)
        .bind(now.0)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(db_error)?;
        let mut out = Vec::with_capacity(rows.len());
        for row in &rows {
            let delivery = rows::delivery(row)?;
            if let Some(verification) = self.verification(delivery.verification_id).await? {
                out.push((delivery, verification));
            }
        }
        Ok(out)
    }

    async fn update_delivery(
        &self,
        id: DeliveryId,
        update: &DeliveryUpdate,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        self.records
            .call(records::DeliveryRecord {
                id,
                update: update.clone(),
                now,
            })
            .await
    }

    async fn record_receipt(
        &self,
        receipt: &ReceiptUpdate,
        now: Timestamp,
    ) -> Result<Option<DeliveryAttempt>, StoreError> {
        // One statement: the row lock and the re-checked WHERE make concurrent receipts for
        // one message apply in rank order, never backwards.
        let mut tx = self.pool.begin().await.map_err(db_error)?;
        let updated = sqlx::query(concat!(
            "UPDATE deliveries SET status = $1, error_code = COALESCE($2, error_code), \
             price = COALESCE($3, price), segments = COALESCE($4, segments), \
             fallback_at = CASE WHEN $1 = 'delivered' THEN NULL \
                                WHEN $1 IN ('undelivered', 'failed') AND fallback_at IS NOT NULL THEN $5 \
                                ELSE fallback_at END, \
             updated_at = $5 \
             WHERE provider_ref = $6 AND provider = $7 \
             AND (CASE status WHEN 'queued' THEN 0 WHEN 'sent' THEN 1 ELSE 2 END) < $8 RETURNING ",
            delivery_columns!()
        ))
        .bind(receipt.status.as_str())
        .bind(&receipt.error_code)
        .bind(receipt.price)
        .bind(receipt.segments.map(|s| s as i32))
        .bind(now.0)
        .bind(&receipt.provider_ref)
        .bind(&receipt.provider)
        .bind(i32::from(receipt.status.rank()))
        .fetch_optional(&mut *tx)
        .await
        .map_err(db_error)?;
        if let Some(row) = updated {
            let delivery = rows::delivery(&row)?;
            insert_delivery_event(&mut tx, &delivery, now).await?;
            tx.commit().await.map_err(db_error)?;
            return Ok(Some(delivery));
        }
        tx.commit().await.map_err(db_error)?;
        let current = sqlx::query(concat!(
            "SELECT ",
            delivery_columns!(),
            " FROM deliveries WHERE provider_ref = $1 AND provider = $2"
        ))
        .bind(&receipt.provider_ref)
        .bind(&receipt.provider)
        .fetch_optional(&self.pool)
        .await
        .map_err(db_error)?;
        current.as_ref().map(rows::delivery).transpose()
    }

    async fn claim_due_fallbacks(
        &self,
        now: Timestamp,
        limit: u32,
    ) -> Result<Vec<(DeliveryAttempt, Verification)>, StoreError> {
        let rows = sqlx::query(concat!(
            "UPDATE deliveries SET fallback_at = NULL WHERE id IN \
             (SELECT id FROM deliveries WHERE fallback_at IS NOT NULL AND fallback_at <= $1 \
              ORDER BY fallback_at LIMIT $2 FOR UPDATE SKIP LOCKED) RETURNING ",
            delivery_columns!()
        ))
        .bind(now.0)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(db_error)?;
        let mut out = Vec::with_capacity(rows.len());
        for row in &rows {
            let delivery = rows::delivery(row)?;
            if let Some(verification) = self.verification(delivery.verification_id).await? {
                out.push((delivery, verification));
            }
        }
        Ok(out)
    }

    async fn release_deliveries(
        &self,
        ids: &[DeliveryId],
        now: Timestamp,
    ) -> Result<u64, StoreError> {
        let ids: Vec<Uuid> = ids.iter().map(|id| id.uuid()).collect();
        let result = sqlx::query(
            "UPDATE deliveries SET lease_until = $1 WHERE id = ANY($2) AND status = 'queued'",
        )
        .bind(now.0)
        .bind(&ids)
        .execute(&self.pool)
        .await
        .map_err(db_error)?;
        Ok(result.rows_affected())
    }

    async fn outbox_stats(&self) -> Result<OutboxStats, StoreError> {
        let (queued, oldest): (i64, Option<i64>) = sqlx::query_as(
            "SELECT COUNT(*), MIN(created_at) FROM deliveries WHERE status = 'queued'",
        )
        .fetch_one(&self.pool)
        .await
        .map_err(db_error)?;
        let pending: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM callbacks WHERE state = 'pending'")
                .fetch_one(&self.pool)
                .await
                .map_err(db_error)?;
        Ok(OutboxStats {
            queued_deliveries: queued.max(0) as u64,
            oldest_queued: oldest.map(Timestamp),
            pending_callbacks: pending.max(0) as u64,
        })
    }

    async fn attempts(
        &self,
        filter: &AttemptFilter,
    ) -> Result<Vec<(DeliveryAttempt, Verification)>, StoreError> {
        let sql = if filter.newest_first {
            concat!(
                "SELECT d.id FROM deliveries d JOIN verifications v ON v.id = d.verification_id \
                 JOIN services s ON s.id = v.service_id WHERE ",
                attempt_where!(),
                " AND ($11::uuid IS NULL OR d.id < $11) ORDER BY d.id DESC LIMIT $12"
            )
        } else {
            concat!(
                "SELECT d.id FROM deliveries d JOIN verifications v ON v.id = d.verification_id \
                 JOIN services s ON s.id = v.service_id WHERE ",
                attempt_where!(),
                " AND ($11::uuid IS NULL OR d.id > $11) ORDER BY d.id LIMIT $12"
            )
        };
        let ids: Vec<Uuid> = bind_attempt_filter!(sqlx::query_scalar(sql), self, filter)
            .bind(filter.after)
            .bind(i64::from(filter.limit.max(1)))
            .fetch_all(&self.pool)
            .await
            .map_err(db_error)?;
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            let row = sqlx::query(concat!(
                "SELECT ",
                delivery_columns!(),
                " FROM deliveries WHERE id = $1"
            ))
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(db_error)?;
            let Some(row) = row else { continue };
            let delivery = rows::delivery(&row)?;
            if let Some(verification) = self.verification(delivery.verification_id).await? {
                out.push((delivery, verification));
            }
        }
        Ok(out)
    }

    async fn attempt_summary(&self, filter: &AttemptFilter) -> Result<AttemptSummary, StoreError> {
        if let Some(prefix) = filter
            .prefix
            .as_ref()
            .filter(|p| p.chars().count() > CLEAR_PREFIX_CHARS)
        {
            // Longer than the clear prefix: the candidates' destinations are opened.
            let rows: Vec<(Vec<u8>, bool)> = bind_attempt_filter!(
                sqlx::query_as(concat!(
                    "SELECT v.to_sealed, v.status = 'approved' \
                 FROM deliveries d JOIN verifications v ON v.id = d.verification_id \
                 JOIN services s ON s.id = v.service_id WHERE ",
                    attempt_where!(),
                )),
                self,
                filter
            )
            .fetch_all(&self.pool)
            .await
            .map_err(db_error)?;
            let mut summary = AttemptSummary::default();
            for (sealed, approved) in rows {
                if self
                    .vault
                    .open(&sealed)
                    .is_ok_and(|to| to.starts_with(prefix.as_str()))
                {
                    summary.total += 1;
                    summary.converted += u64::from(approved);
                }
            }
            return Ok(summary);
        }
        let (total, converted): (i64, i64) = bind_attempt_filter!(
            sqlx::query_as(concat!(
                "SELECT COUNT(*), \
                 COALESCE(SUM(CASE WHEN v.status = 'approved' THEN 1 ELSE 0 END), 0)::bigint \
                 FROM deliveries d JOIN verifications v ON v.id = d.verification_id \
                 JOIN services s ON s.id = v.service_id WHERE ",
                attempt_where!(),
            )),
            self,
            filter
        )
        .fetch_one(&self.pool)
        .await
        .map_err(db_error)?;
        Ok(AttemptSummary {
            total: total.max(0) as u64,
            converted: converted.max(0) as u64,
        })
    }

    async fn report_rows(&self, filter: &AttemptFilter) -> Result<Vec<ReportRow>, StoreError> {
        // Longer than the clear prefix: each candidate's destination is opened, and the limit
        // applies after.
        let opened = filter
            .prefix
            .as_ref()
            .filter(|p| p.chars().count() > CLEAR_PREFIX_CHARS);
        // The last provider: the greatest (time-ordered) id among the sends that had one (a
        // null provider makes the concatenation null), its 36 characters then cut off;
        // cheaper than an ordered `array_agg`, which sorts every group.
        macro_rules! report_rows {
            ($order:literal) => {
                concat!(
                    "SELECT v.service_id, v.channel, v.country, \
                     substr(max(d.id::text || d.provider COLLATE \"C\"), 37), \
                     v.status = 'approved', bool_and(d.status = 'failed'), \
                     v.created_at, v.updated_at, COALESCE(SUM(d.price), 0)::float8, \
                     CASE WHEN $12 THEN v.to_sealed END \
                     FROM deliveries d JOIN verifications v ON v.id = d.verification_id \
                     JOIN services s ON s.id = v.service_id WHERE ",
                    attempt_where!(),
                    " GROUP BY v.id ORDER BY v.id ",
                    $order,
                    " LIMIT $11"
                )
            };
        }
        type Row = (
            Uuid,
            String,
            Option<String>,
            Option<String>,
            bool,
            bool,
            i64,
            i64,
            f64,
            Option<Vec<u8>>,
        );
        let sql = if filter.newest_first {
            report_rows!("DESC")
        } else {
            report_rows!("ASC")
        };
        let rows: Vec<Row> = bind_attempt_filter!(sqlx::query_as(sql), self, filter)
            .bind(opened.is_none().then_some(i64::from(filter.limit.max(1))))
            .bind(opened.is_some())
            .fetch_all(&self.pool)
            .await
            .map_err(db_error)?;
        let wanted = |sealed: &Option<Vec<u8>>| match opened {
            None => true,
            Some(prefix) => sealed.as_ref().is_some_and(|sealed| {
                self.vault
                    .open(sealed)
                    .is_ok_and(|to| to.starts_with(prefix.as_str()))
            }),
        };
        Ok(rows
            .into_iter()
            .filter(|row| wanted(&row.9))
            .take(filter.limit.max(1) as usize)
            .map(
                |(
                    service,
                    channel,
                    country,
                    provider,
                    approved,
                    all_failed,
                    created,
                    updated,
                    spend,
                    _,
                )| {
                    ReportRow {
                        service_id: ServiceId::from_uuid(service),
                        channel,
                        country,
                        provider,
                        approved,
                        all_failed,
                        created_at: Timestamp(created),
                        updated_at: Timestamp(updated),
                        spend,
                    }
                },
            )
            .collect())
    }
}

/// The `LIKE` pattern of the filter's prefix over the clear part kept (`to_prefix`): a longer
/// prefix narrows by that part, and the summary opens the candidates for the rest.
fn clear_prefix(filter: &AttemptFilter) -> Option<String> {
    filter.prefix.as_ref().map(|p| {
        let clear = clear_part(p);
        format!("{clear}%")
    })
}

/// The event of a delivery's new state, with its verification's service.
async fn insert_delivery_event(
    connection: &mut PgConnection,
    delivery: &DeliveryAttempt,
    now: Timestamp,
) -> Result<(), StoreError> {
    let service: Option<Uuid> =
        sqlx::query_scalar("SELECT service_id FROM verifications WHERE id = $1")
            .bind(delivery.verification_id.uuid())
            .fetch_optional(&mut *connection)
            .await
            .map_err(db_error)?;
    let Some(service) = service else {
        return Ok(());
    };
    insert_event(
        connection,
        &otpd_core::events::delivery_event(ServiceId::from_uuid(service), delivery, now),
    )
    .await
}
