//! Events, service webhooks and the outbox of their posts, and alerts, on SQLite.

use otpd_core::events::{Event, EventFilter, Webhook, WebhookJob, WebhookLogEntry, WebhookOutcome};
use otpd_core::store::EventStore;
use otpd_core::{ServiceId, StoreError, Timestamp, VerificationId};
use rusqlite::{Row, params};
use uuid::Uuid;

use crate::rows;
use otpd_core::vault::Vault;

use crate::{
    ANY_ENABLED_WEBHOOK, EventRow, SqliteStore, execute, insert_event, query_all, query_one,
};

impl EventStore for SqliteStore {
    async fn record_event(&self, event: &Event) -> Result<(), StoreError> {
        let event = EventRow::sealed(event.clone(), &self.vault());
        self.write(move |connection| insert_event(connection, &event))
            .await
    }

    async fn events(&self, filter: &EventFilter) -> Result<Vec<Event>, StoreError> {
        let f = filter.clone();
        let vault = self.vault();
        self.read(move |connection| {
            let mut sql = String::from(
                "SELECT e.id, e.service_id, e.verification_id, e.kind, e.data, e.created_at \
                 FROM events e JOIN services s ON s.id = e.service_id WHERE s.account_id = ?1",
            );
            let mut values: Vec<rusqlite::types::Value> =
                vec![f.account.as_bytes().to_vec().into()];
            let mut push = |clause: &str, value: rusqlite::types::Value| {
                values.push(value);
                sql.push_str(&format!(" AND {clause} ?{}", values.len()));
            };
            if let Some(service) = f.service {
                push("e.service_id =", service.as_bytes().to_vec().into());
            }
            if let Some(verification) = f.verification {
                push(
                    "e.verification_id =",
                    verification.as_bytes().to_vec().into(),
                );
            }
            let rare = f.kind.as_deref().and_then(otpd_core::events::rare_kind);
            if let Some(kind) = f.kind.as_ref().filter(|_| rare.is_none()) {
                push("e.kind =", kind.clone().into());
            }
            if let Some(since) = f.since {
                push("e.created_at >=", since.0.into());
            }
            if let Some(until) = f.until {
                push("e.created_at <", until.0.into());
            }
            if let Some(after) = f.after {
                push("e.id >", after.as_bytes().to_vec().into());
            }
            if let Some(rare) = rare {
                // Written out so that the partial index of rare kinds applies.
                sql.push_str(&format!(" AND e.kind = '{rare}'"));
            }
            sql.push_str(&format!(" ORDER BY e.id LIMIT {}", f.limit));
            query_all(
                connection,
                &sql,
                rusqlite::params_from_iter(values),
                |row| event_row(row, &vault),
            )
        })
        .await
    }

    async fn create_webhook(&self, webhook: &Webhook) -> Result<(), StoreError> {
        let w = webhook.clone();
        self.write(move |connection| {
            webhooks_changed();
            execute(
                connection,
                "INSERT INTO webhooks (id, service_id, url, event_types, enabled, friendly_name, \
                 created_at, updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                params![
                    w.id.as_bytes().as_slice(),
                    w.service_id.as_bytes().as_slice(),
                    w.url,
                    w.stored_types(),
                    w.enabled,
                    w.friendly_name,
                    w.created_at.0,
                    w.updated_at.0
                ],
            )?;
            Ok(())
        })
        .await
    }

    async fn webhooks(&self, service: ServiceId) -> Result<Vec<Webhook>, StoreError> {
        self.read(move |connection| {
            query_all(
                connection,
                "SELECT id, service_id, url, event_types, enabled, friendly_name, created_at, updated_at \
                 FROM webhooks WHERE service_id = ?1 ORDER BY created_at, id",
                [service.as_bytes().as_slice()],
                webhook_row,
            )
        })
        .await
    }

    async fn update_webhook(&self, webhook: &Webhook) -> Result<bool, StoreError> {
        let w = webhook.clone();
        self.write(move |connection| {
            webhooks_changed();
            Ok(execute(
                connection,
                "UPDATE webhooks SET url = ?1, event_types = ?2, enabled = ?3, friendly_name = ?4, \
                 updated_at = ?5 WHERE id = ?6 AND service_id = ?7",
                params![
                    w.url,
                    w.stored_types(),
                    w.enabled,
                    w.friendly_name,
                    w.updated_at.0,
                    w.id.as_bytes().as_slice(),
                    w.service_id.as_bytes().as_slice()
                ],
            )? == 1)
        })
        .await
    }

    async fn delete_webhook(&self, service: ServiceId, id: Uuid) -> Result<bool, StoreError> {
        self.write(move |connection| {
            webhooks_changed();
            let deleted = execute(
                connection,
                "DELETE FROM webhooks WHERE id = ?1 AND service_id = ?2",
                params![id.as_bytes().as_slice(), service.as_bytes().as_slice()],
            )? == 1;
            if deleted {
                execute(
                    connection,
                    "DELETE FROM webhook_deliveries WHERE webhook_id = ?1 AND state = 'pending'",
                    params![id.as_bytes().as_slice()],
                )?;
            }
            Ok(deleted)
        })
        .await
    }

    async fn claim_webhook_jobs(
        &self,
        now: Timestamp,
        lease_until: Timestamp,
        limit: u32,
    ) -> Result<Vec<WebhookJob>, StoreError> {
        let vault = self.vault();
        self.write(move |connection| {
            let claimed: Vec<ClaimedWebhookRow> = query_all(
                connection,
                "UPDATE webhook_deliveries SET lease_until = ?1 WHERE id IN \
                 (SELECT d.id FROM webhook_deliveries d WHERE d.state = 'pending' \
                  AND d.next_attempt_at <= ?2 AND d.lease_until <= ?2 \
                  AND NOT EXISTS (SELECT 1 FROM webhook_deliveries o WHERE o.webhook_id = d.webhook_id \
                     AND o.state = 'pending' AND o.verification_id IS d.verification_id \
                     AND o.event_id < d.event_id) \
                  ORDER BY d.event_id LIMIT ?3) \
                 RETURNING id, webhook_id, event_id, attempts, created_at",
                params![lease_until.0, now.0, limit],
                |row| {
                    Ok((
                        rows::get(row, 0)?,
                        rows::get(row, 1)?,
                        rows::get(row, 2)?,
                        rows::get(row, 3)?,
                        rows::get(row, 4)?,
                    ))
                },
            )?;
            let mut jobs = Vec::with_capacity(claimed.len());
            for (id, webhook, event, attempts, created_at) in claimed {
                let url: Option<String> = query_one(
                    connection,
                    "SELECT url FROM webhooks WHERE id = ?1",
                    [webhook.as_slice()],
                    |row| rows::get(row, 0),
                )?;
                let event = query_one(
                    connection,
                    "SELECT id, service_id, verification_id, kind, data, created_at FROM events WHERE id = ?1",
                    [event.as_slice()],
                    |row| event_row(row, &vault),
                )?;
                let (Some(url), Some(event)) = (url, event) else {
                    continue;
                };
                let uuid = |b: &[u8]| Uuid::from_slice(b).map_err(|_| StoreError::Corrupt("webhook id".into()));
                jobs.push(WebhookJob {
                    id: uuid(&id)?,
                    webhook_id: uuid(&webhook)?,
                    url,
                    event,
                    attempts,
                    created_at: Timestamp(created_at),
                });
            }
            Ok(jobs)
        })
        .await
    }

    async fn webhook_job_done(
        &self,
        id: Uuid,
        outcome: &WebhookOutcome,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let o = outcome.clone();
        self.write(move |connection| {
            let state = match (&o.error, o.retry_at) {
                (None, _) => "delivered",
                (Some(_), Some(_)) => "pending",
                (Some(_), None) => "failed",
            };
            execute(
                connection,
                "UPDATE webhook_deliveries SET state = ?1, attempts = attempts + 1, \
                 next_attempt_at = COALESCE(?2, next_attempt_at), lease_until = 0, last_status = ?3, \
                 last_latency_ms = ?4, last_error = ?5, updated_at = ?6 WHERE id = ?7",
                params![
                    state,
                    o.retry_at.map(|t| t.0),
                    o.status,
                    o.latency_ms,
                    o.error,
                    now.0,
                    id.as_bytes().as_slice()
                ],
            )?;
            Ok(())
        })
        .await
    }

    async fn replay_webhook_post(
        &self,
        webhook: Uuid,
        event: Uuid,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        self.write(move |connection| {
            let changed = execute(
                connection,
                "UPDATE webhook_deliveries SET state = 'pending', next_attempt_at = ?1, \
                 lease_until = 0, updated_at = ?1 \
                 WHERE webhook_id = ?2 AND event_id = ?3 AND state = 'failed'",
                params![
                    now.0,
                    webhook.as_bytes().as_slice(),
                    event.as_bytes().as_slice()
                ],
            )?;
            Ok(changed > 0)
        })
        .await
    }

    async fn webhook_log(
        &self,
        webhook: Uuid,
        limit: u32,
    ) -> Result<Vec<WebhookLogEntry>, StoreError> {
        self.read(move |connection| {
            query_all(
                connection,
                "SELECT d.event_id, e.kind, d.state, d.attempts, d.last_status, d.last_latency_ms, \
                 d.last_error, d.next_attempt_at, d.updated_at FROM webhook_deliveries d \
                 JOIN events e ON e.id = d.event_id WHERE d.webhook_id = ?1 \
                 ORDER BY d.event_id DESC LIMIT ?2",
                params![webhook.as_bytes().as_slice(), limit],
                |row| {
                    let event: Vec<u8> = rows::get(row, 0)?;
                    let state: String = rows::get(row, 2)?;
                    let next: i64 = rows::get(row, 7)?;
                    Ok(WebhookLogEntry {
                        event_id: Uuid::from_slice(&event)
                            .map_err(|_| StoreError::Corrupt("event id".into()))?,
                        event_type: rows::get(row, 1)?,
                        next_attempt_at: (state == "pending").then_some(Timestamp(next)),
                        state,
                        attempts: rows::get(row, 3)?,
                        last_status: rows::get(row, 4)?,
                        last_latency_ms: rows::get(row, 5)?,
                        last_error: rows::get(row, 6)?,
                        updated_at: Timestamp(rows::get(row, 8)?),
                    })
                },
            )
        })
        .await
    }

    async fn active_services(&self, since: Timestamp) -> Result<Vec<ServiceId>, StoreError> {
        self.read(move |connection| {
            let ids: Vec<Vec<u8>> = query_all(
                connection,
                "SELECT DISTINCT service_id FROM verifications WHERE created_at >= ?1",
                params![since.0],
                |row| rows::get(row, 0),
            )?;
            Ok(ids
                .iter()
                .filter_map(|b| Uuid::from_slice(b).ok())
                .map(ServiceId::from_uuid)
                .collect())
        })
        .await
    }

    async fn open_alert(&self, key: &str, now: Timestamp) -> Result<bool, StoreError> {
        let key = key.to_string();
        self.write(move |connection| {
            Ok(execute(
                connection,
                "INSERT INTO alerts (key, opened_at) VALUES (?1, ?2) ON CONFLICT (key) DO NOTHING",
                params![key, now.0],
            )? == 1)
        })
        .await
    }

    async fn close_alert(&self, key: &str) -> Result<bool, StoreError> {
        let key = key.to_string();
        self.write(move |connection| {
            Ok(execute(
                connection,
                "DELETE FROM alerts WHERE key = ?1",
                params![key],
            )? == 1)
        })
        .await
    }
}

/// A claimed `webhook_deliveries` row: id, webhook, event, attempts, created_at.
type ClaimedWebhookRow = (Vec<u8>, Vec<u8>, Vec<u8>, u32, i64);

fn webhook_row(row: &Row) -> Result<Webhook, StoreError> {
    let uuid = |index| -> Result<Uuid, StoreError> {
        let bytes: Vec<u8> = rows::get(row, index)?;
        Uuid::from_slice(&bytes).map_err(|_| StoreError::Corrupt("webhook id".into()))
    };
    let types: String = rows::get(row, 3)?;
    Ok(Webhook {
        id: uuid(0)?,
        service_id: ServiceId::from_uuid(uuid(1)?),
        url: rows::get(row, 2)?,
        event_types: Webhook::parse_types(&types),
        enabled: rows::get(row, 4)?,
        friendly_name: rows::get(row, 5)?,
        created_at: Timestamp(rows::get(row, 6)?),
        updated_at: Timestamp(rows::get(row, 7)?),
    })
}

pub(crate) fn event_row(row: &Row, vault: &Vault) -> Result<Event, StoreError> {
    let uuid = |index| -> Result<Uuid, StoreError> {
        let bytes: Vec<u8> = rows::get(row, index)?;
        Uuid::from_slice(&bytes).map_err(|_| StoreError::Corrupt("event id".into()))
    };
    let verification: Option<Vec<u8>> = rows::get(row, 2)?;
    let data: String = rows::get(row, 4)?;
    Ok(Event {
        id: uuid(0)?,
        service_id: ServiceId::from_uuid(uuid(1)?),
        verification_id: verification
            .and_then(|b| Uuid::from_slice(&b).ok())
            .map(VerificationId::from_uuid),
        kind: rows::get(row, 3)?,
        data: {
            let mut data: serde_json::Value = serde_json::from_str(&data)
                .map_err(|_| StoreError::Corrupt("event data".into()))?;
            otpd_core::events::reveal_destination(&mut data, vault);
            data
        },
        created_at: Timestamp(rows::get(row, 5)?),
    })
}

/// Forgets whether there is a webhook: called by every write to `webhooks` (even one that
/// rolls back; the next event reads the table again).
fn webhooks_changed() {
    ANY_ENABLED_WEBHOOK.set(None);
}
