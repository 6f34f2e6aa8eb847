//! Events, service webhooks and the outbox of their posts, and alerts, on PostgreSQL.

use otpd_core::events::{Event, EventFilter, Webhook, WebhookJob, WebhookLogEntry, WebhookOutcome};
use otpd_core::store::EventStore;
use otpd_core::{ServiceId, StoreError, Timestamp, VerificationId};
use uuid::Uuid;

use crate::{PgStore, db_error, insert_event};

impl EventStore for PgStore {
    async fn record_event(&self, event: &Event) -> Result<(), StoreError> {
        let mut event = event.clone();
        otpd_core::events::seal_destination(&mut event.data, &self.vault);
        let mut connection = self.pool.acquire().await.map_err(db_error)?;
        insert_event(&mut connection, &event).await
    }

    async fn events(&self, filter: &EventFilter) -> Result<Vec<Event>, StoreError> {
        // A rare kind is written out so that its partial index applies.
        let kind = match filter
            .kind
            .as_deref()
            .and_then(otpd_core::events::rare_kind)
        {
            // A constant of the core's, safe to write out.
            Some(rare) => format!("$4::text IS NOT NULL AND e.kind = '{rare}'"),
            None => "$4::text IS NULL OR e.kind = $4".to_string(),
        };
        let sql = format!(
            "SELECT e.id, e.service_id, e.verification_id, e.kind, e.data, e.created_at \
             FROM events e JOIN services s ON s.id = e.service_id WHERE s.account_id = $1 \
             AND ($2::uuid IS NULL OR e.service_id = $2) \
             AND ($3::uuid IS NULL OR e.verification_id = $3) \
             AND ({kind}) \
             AND ($5::bigint IS NULL OR e.created_at >= $5) \
             AND ($6::bigint IS NULL OR e.created_at < $6) \
             AND ($7::uuid IS NULL OR e.id > $7) \
             ORDER BY e.id LIMIT $8"
        );
        let rows: Vec<(Uuid, Uuid, Option<Uuid>, String, String, i64)> =
            sqlx::query_as(sqlx::AssertSqlSafe(sql))
                .bind(filter.account.uuid())
                .bind(filter.service.map(|s| s.uuid()))
                .bind(filter.verification.map(|v| v.uuid()))
                .bind(&filter.kind)
                .bind(filter.since.map(|t| t.0))
                .bind(filter.until.map(|t| t.0))
                .bind(filter.after)
                .bind(i64::from(filter.limit))
                .fetch_all(&self.pool)
                .await
                .map_err(db_error)?;
        rows.into_iter()
            .map(|(id, service, verification, kind, data, created_at)| {
                Ok(Event {
                    id,
                    service_id: ServiceId::from_uuid(service),
                    verification_id: verification.map(VerificationId::from_uuid),
                    kind,
                    data: {
                        let mut data: serde_json::Value = serde_json::from_str(&data)
                            .map_err(|_| StoreError::Corrupt("event data".into()))?;
                        otpd_core::events::reveal_destination(&mut data, &self.vault);
                        data
                    },
                    created_at: Timestamp(created_at),
                })
            })
            .collect()
    }

    async fn create_webhook(&self, webhook: &Webhook) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO webhooks (id, service_id, url, event_types, enabled, friendly_name, \
             created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(webhook.id)
        .bind(webhook.service_id.uuid())
        .bind(&webhook.url)
        .bind(webhook.stored_types())
        .bind(webhook.enabled)
        .bind(&webhook.friendly_name)
        .bind(webhook.created_at.0)
        .bind(webhook.updated_at.0)
        .execute(&self.pool)
        .await
        .map_err(db_error)?;
        Ok(())
    }

    async fn webhooks(&self, service: ServiceId) -> Result<Vec<Webhook>, StoreError> {
        let rows: Vec<WebhookRow> = sqlx::query_as(
            "SELECT id, service_id, url, event_types, enabled, friendly_name, created_at, updated_at \
             FROM webhooks WHERE service_id = $1 ORDER BY created_at, id",
        )
        .bind(service.uuid())
        .fetch_all(&self.pool)
        .await
        .map_err(db_error)?;
        Ok(rows
            .into_iter()
            .map(
                |(id, service, url, types, enabled, friendly_name, created_at, updated_at)| {
                    Webhook {
                        id,
                        service_id: ServiceId::from_uuid(service),
                        url,
                        event_types: Webhook::parse_types(&types),
                        enabled,
                        friendly_name,
                        created_at: Timestamp(created_at),
                        updated_at: Timestamp(updated_at),
                    }
                },
            )
            .collect())
    }

    async fn update_webhook(&self, webhook: &Webhook) -> Result<bool, StoreError> {
        let result = sqlx::query(
            "UPDATE webhooks SET url = $1, event_types = $2, enabled = $3, friendly_name = $4, \
             updated_at = $5 WHERE id = $6 AND service_id = $7",
        )
        .bind(&webhook.url)
        .bind(webhook.stored_types())
        .bind(webhook.enabled)
        .bind(&webhook.friendly_name)
        .bind(webhook.updated_at.0)
        .bind(webhook.id)
        .bind(webhook.service_id.uuid())
        .execute(&self.pool)
        .await
        .map_err(db_error)?;
        Ok(result.rows_affected() == 1)
    }

    async fn delete_webhook(&self, service: ServiceId, id: Uuid) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await.map_err(db_error)?;
        let deleted = sqlx::query("DELETE FROM webhooks WHERE id = $1 AND service_id = $2")
            .bind(id)
            .bind(service.uuid())
            .execute(&mut *tx)
            .await
            .map_err(db_error)?
            .rows_affected()
            == 1;
        if deleted {
            sqlx::query(
                "DELETE FROM webhook_deliveries WHERE webhook_id = $1 AND state = 'pending'",
            )
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
        }
        tx.commit().await.map_err(db_error)?;
        Ok(deleted)
    }

    async fn claim_webhook_jobs(
        &self,
        now: Timestamp,
        lease_until: Timestamp,
        limit: u32,
    ) -> Result<Vec<WebhookJob>, StoreError> {
        let claimed: Vec<(Uuid, Uuid, Uuid, i32, i64)> = sqlx::query_as(
            "UPDATE webhook_deliveries SET lease_until = $1 WHERE id IN \
             (SELECT d.id FROM webhook_deliveries d WHERE d.state = 'pending' \
              AND d.next_attempt_at <= $2 AND d.lease_until <= $2 \
              AND NOT EXISTS (SELECT 1 FROM webhook_deliveries o WHERE o.webhook_id = d.webhook_id \
                 AND o.state = 'pending' AND o.verification_id IS NOT DISTINCT FROM d.verification_id \
                 AND o.event_id < d.event_id) \
              ORDER BY d.event_id LIMIT $3 FOR UPDATE SKIP LOCKED) \
             RETURNING id, webhook_id, event_id, attempts, created_at",
        )
        .bind(lease_until.0)
        .bind(now.0)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(db_error)?;
        let mut jobs = Vec::with_capacity(claimed.len());
        for (id, webhook, event, attempts, created_at) in claimed {
            let url: Option<String> = sqlx::query_scalar("SELECT url FROM webhooks WHERE id = $1")
                .bind(webhook)
                .fetch_optional(&self.pool)
                .await
                .map_err(db_error)?;
            let row: Option<(Uuid, Uuid, Option<Uuid>, String, String, i64)> = sqlx::query_as(
                "SELECT id, service_id, verification_id, kind, data, created_at FROM events WHERE id = $1",
            )
            .bind(event)
            .fetch_optional(&self.pool)
            .await
            .map_err(db_error)?;
            let (Some(url), Some((id_e, service, verification, kind, data, at))) = (url, row)
            else {
                continue;
            };
            jobs.push(WebhookJob {
                id,
                webhook_id: webhook,
                url,
                event: Event {
                    id: id_e,
                    service_id: ServiceId::from_uuid(service),
                    verification_id: verification.map(VerificationId::from_uuid),
                    kind,
                    data: {
                        let mut data: serde_json::Value = serde_json::from_str(&data)
                            .map_err(|_| StoreError::Corrupt("event data".into()))?;
                        otpd_core::events::reveal_destination(&mut data, &self.vault);
                        data
                    },
                    created_at: Timestamp(at),
                },
                attempts: attempts.max(0) as u32,
                created_at: Timestamp(created_at),
            });
        }
        Ok(jobs)
    }

    async fn webhook_job_done(
        &self,
        id: Uuid,
        outcome: &WebhookOutcome,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let state = match (&outcome.error, outcome.retry_at) {
            (None, _) => "delivered",
            (Some(_), Some(_)) => "pending",
            (Some(_), None) => "failed",
        };
        sqlx::query(
            "UPDATE webhook_deliveries SET state = $1, attempts = attempts + 1, \
             next_attempt_at = COALESCE($2, next_attempt_at), lease_until = 0, last_status = $3, \
             last_latency_ms = $4, last_error = $5, updated_at = $6 WHERE id = $7",
        )
        .bind(state)
        .bind(outcome.retry_at.map(|t| t.0))
        .bind(outcome.status.map(i64::from))
        .bind(i64::from(outcome.latency_ms))
        .bind(&outcome.error)
        .bind(now.0)
        .bind(id)
        .execute(&self.pool)
        .await
        .map_err(db_error)?;
        Ok(())
    }

    async fn replay_webhook_post(
        &self,
        webhook: Uuid,
        event: Uuid,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        let result = sqlx::query(
            "UPDATE webhook_deliveries SET state = 'pending', next_attempt_at = $1, \
             lease_until = 0, updated_at = $1 \
             WHERE webhook_id = $2 AND event_id = $3 AND state = 'failed'",
        )
        .bind(now.0)
        .bind(webhook)
        .bind(event)
        .execute(&self.pool)
        .await
        .map_err(db_error)?;
        Ok(result.rows_affected() > 0)
    }

    async fn webhook_log(
        &self,
        webhook: Uuid,
        limit: u32,
    ) -> Result<Vec<WebhookLogEntry>, StoreError> {
        #[allow(clippy::type_complexity)]
        let rows: Vec<(
            Uuid,
            String,
            String,
            i32,
            Option<i64>,
            Option<i64>,
            Option<String>,
            i64,
            i64,
        )> = sqlx::query_as(
            "SELECT d.event_id, e.kind, d.state, d.attempts, d.last_status, d.last_latency_ms, \
                 d.last_error, d.next_attempt_at, d.updated_at FROM webhook_deliveries d \
                 JOIN events e ON e.id = d.event_id WHERE d.webhook_id = $1 \
                 ORDER BY d.event_id DESC LIMIT $2",
        )
        .bind(webhook)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(db_error)?;
        Ok(rows
            .into_iter()
            .map(
                |(event_id, event_type, state, attempts, status, latency, error, next, updated)| {
                    WebhookLogEntry {
                        event_id,
                        event_type,
                        next_attempt_at: (state == "pending").then_some(Timestamp(next)),
                        state,
                        attempts: attempts.max(0) as u32,
                        last_status: status.map(|s| s.clamp(0, 999) as u16),
                        last_latency_ms: latency.map(|l| l.clamp(0, u32::MAX as i64) as u32),
                        last_error: error,
                        updated_at: Timestamp(updated),
                    }
                },
            )
            .collect())
    }

    async fn active_services(&self, since: Timestamp) -> Result<Vec<ServiceId>, StoreError> {
        let ids: Vec<Uuid> = sqlx::query_scalar(
            "SELECT DISTINCT service_id FROM verifications WHERE created_at >= $1",
        )
        .bind(since.0)
        .fetch_all(&self.pool)
        .await
        .map_err(db_error)?;
        Ok(ids.into_iter().map(ServiceId::from_uuid).collect())
    }

    async fn open_alert(&self, key: &str, now: Timestamp) -> Result<bool, StoreError> {
        let result = sqlx::query(
            "INSERT INTO alerts (key, opened_at) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING",
        )
        .bind(key)
        .bind(now.0)
        .execute(&self.pool)
        .await
        .map_err(db_error)?;
        Ok(result.rows_affected() == 1)
    }

    async fn close_alert(&self, key: &str) -> Result<bool, StoreError> {
        let result = sqlx::query("DELETE FROM alerts WHERE key = $1")
            .bind(key)
            .execute(&self.pool)
            .await
            .map_err(db_error)?;
        Ok(result.rows_affected() == 1)
    }
}

/// A `webhooks` row as selected.
type WebhookRow = (Uuid, Uuid, String, String, bool, String, i64, i64);
