//! The service-webhook worker: claims due posts from the durable webhook outbox (rows written
//! with each event), posts the event as signed JSON, and retries failures with exponential
//! backoff for 24 hours. A receiver gets each event once per success (the event id in the
//! body is the idempotency key) and a verification's events in order.

use std::sync::Arc;
use std::time::{Duration, Instant};

use otpd_core::auth::CallbackSigner;
use otpd_core::events::{WebhookJob, WebhookOutcome};
use otpd_core::{Clock, EventStore};
use serde_json::json;

use crate::callbacks::{CallbackPolicy, SIGNATURE_HEADER};

/// How long a failing event keeps being retried.
pub const WEBHOOK_RETRY_WINDOW: Duration = Duration::from_secs(24 * 3600);

/// The JSON body of one webhook post.
pub fn webhook_body(job: &WebhookJob) -> String {
    let event = &job.event;
    json!({
        "id": format!("EV{}", event.id.simple()),
        "type": event.kind,
        "createdAt": event.created_at.unix_seconds(),
        "serviceSid": format!("VA{}", event.service_id.simple()),
        "verificationSid": event.verification_id.map(|v| format!("VE{}", v.simple())),
        "data": event.data,
    })
    .to_string()
}

/// Posts events to service webhooks.
pub struct WebhookWorker<S, C> {
    store: S,
    clock: C,
    client: reqwest::Client,
    outbound: crate::Outbound,
    signer: CallbackSigner,
    policy: CallbackPolicy,
    metrics: crate::SharedMetrics,
}

impl<S: EventStore + Clone, C: Clock + Clone> WebhookWorker<S, C> {
    /// A worker posting only where `outbound` allows; the retry delays and post timeout are
    /// the status callbacks' (`[callbacks]`).
    pub fn new(
        store: S,
        clock: C,
        signer: CallbackSigner,
        policy: CallbackPolicy,
        metrics: crate::SharedMetrics,
        outbound: crate::Outbound,
    ) -> Self {
        WebhookWorker {
            store,
            clock,
            client: outbound.client(policy.timeout),
            outbound,
            signer,
            policy,
            metrics,
        }
    }

    /// Polls forever.
    pub async fn run(self) {
        let worker = Arc::new(self);
        loop {
            match worker.post_due().await {
                Ok(0) => tokio::time::sleep(worker.policy.poll_interval).await,
                Ok(_) => {}
                Err(error) => {
                    tracing::error!(%error, "webhook outbox unavailable");
                    tokio::time::sleep(worker.policy.poll_interval).await;
                }
            }
        }
    }

    /// Claims and posts one batch; returns how many were claimed.
    pub async fn post_due(self: &Arc<Self>) -> Result<usize, otpd_core::StoreError> {
        let now = self.clock.now();
        let lease = self.policy.timeout.as_millis() as i64 * 3;
        let jobs = self
            .store
            .claim_webhook_jobs(now, now.plus_millis(lease), 32)
            .await?;
        let count = jobs.len();
        let posts: Vec<_> = jobs
            .into_iter()
            .map(|job| {
                let worker = self.clone();
                tokio::spawn(async move { worker.post(job).await })
            })
            .collect();
        for post in posts {
            let _ = post.await;
        }
        Ok(count)
    }

    async fn post(&self, job: WebhookJob) {
        let body = webhook_body(&job);
        let now = self.clock.now();
        let signature =
            self.signer
                .signature(job.event.service_id, now.unix_seconds(), body.as_bytes());
        let started = Instant::now();
        let request = self
            .client
            .post(&job.url)
            .header("Content-Type", "application/json")
            .header(SIGNATURE_HEADER, signature)
            .header("X-Otpd-Event-Id", format!("EV{}", job.event.id.simple()))
            .header("X-Otpd-Event-Type", &job.event.kind)
            .body(body);
        let result = self.outbound.send(&job.url, request).await;
        let latency_ms = started.elapsed().as_millis().min(u32::MAX as u128) as u32;
        let (status, error) = match result {
            Ok(response) if response.status().is_success() => {
                (Some(response.status().as_u16()), None)
            }
            Ok(response) => (
                Some(response.status().as_u16()),
                Some(format!("HTTP {}", response.status().as_u16())),
            ),
            Err(outcome) => (None, Some(outcome)),
        };
        let now = self.clock.now();
        let attempts = job.attempts + 1;
        let retry_at = error.as_ref().and_then(|_| {
            let at = now.plus_millis(self.policy.delay_after(attempts).as_millis() as i64);
            let give_up = job
                .created_at
                .plus_millis(WEBHOOK_RETRY_WINDOW.as_millis() as i64);
            (at < give_up).then_some(at)
        });
        if let Some(error) = &error {
            self.metrics.webhook_failures.inc();
            tracing::warn!(webhook = %job.webhook_id, event = %job.event.id, attempts, %error, gave_up = retry_at.is_none(), "webhook post failed");
        }
        let outcome = WebhookOutcome {
            status,
            latency_ms,
            error,
            retry_at,
        };
        if let Err(error) = self.store.webhook_job_done(job.id, &outcome, now).await {
            tracing::error!(webhook = %job.webhook_id, %error, "could not record webhook result");
        }
    }
}
