//! The status-callback worker. Callbacks are rows in the store's outbox, written in the same
//! transaction as the status change; this worker claims due rows, posts them signed, and
//! reschedules failures with exponential backoff. A crash mid-post leaves the row leased, so
//! it is retried after the lease: at-least-once delivery.

use std::sync::Arc;
use std::time::Duration;

use otpd_core::auth::CallbackSigner;
use otpd_core::store::CallbackJob;
use otpd_core::{CallbackStore, Clock};

/// Renders the JSON body of one callback (the dialect decides the wire shape).
pub type RenderCallback = Arc<dyn Fn(&CallbackJob) -> String + Send + Sync>;

/// Retry schedule of status callbacks.
#[derive(Debug, Clone)]
pub struct CallbackPolicy {
    /// Posts tried before giving up.
    pub max_attempts: u32,
    /// Delay before the first retry; doubles each time.
    pub base_delay: Duration,
    /// Longest delay between retries.
    pub max_delay: Duration,
    /// Time allowed for one post.
    pub timeout: Duration,
    /// How often the outbox is polled.
    pub poll_interval: Duration,
}

impl Default for CallbackPolicy {
    fn default() -> Self {
        CallbackPolicy {
            max_attempts: 8,
            base_delay: Duration::from_secs(5),
            max_delay: Duration::from_secs(3600),
            timeout: Duration::from_secs(10),
            poll_interval: Duration::from_millis(500),
        }
    }
}

impl CallbackPolicy {
    /// Delay after the `attempts`-th failed post: base × 2^(attempts−1), capped.
    pub fn delay_after(&self, attempts: u32) -> Duration {
        let factor = 2u32.saturating_pow(attempts.saturating_sub(1).min(20));
        self.base_delay.saturating_mul(factor).min(self.max_delay)
    }
}

/// Posts due callbacks.
pub struct CallbackWorker<S, C> {
    store: S,
    clock: C,
    client: reqwest::Client,
    outbound: crate::Outbound,
    signer: CallbackSigner,
    render: RenderCallback,
    policy: CallbackPolicy,
    metrics: Option<crate::SharedMetrics>,
}

/// The header that carries the signature.
pub const SIGNATURE_HEADER: &str = "X-Otpd-Signature";

impl<S: CallbackStore + Clone, C: Clock + Clone> CallbackWorker<S, C> {
    /// A worker posting only where `outbound` allows.
    pub fn new(
        store: S,
        clock: C,
        signer: CallbackSigner,
        render: RenderCallback,
        policy: CallbackPolicy,
        outbound: crate::Outbound,
    ) -> Self {
        CallbackWorker {
            store,
            clock,
            client: outbound.client(policy.timeout),
            outbound,
            signer,
            render,
            policy,
            metrics: None,
        }
    }

    /// The worker counting failed posts in `metrics`.
    pub fn with_metrics(mut self, metrics: crate::SharedMetrics) -> Self {
        self.metrics = Some(metrics);
        self
    }

    /// Polls forever.
    pub async fn run(self) {
        let worker = Arc::new(self);
        loop {
            match worker.post_due().await {
                Ok(0) => tokio::time::sleep(worker.policy.poll_interval).await,
                Ok(_) => {}
                Err(error) => {
                    tracing::error!(%error, "callback outbox unavailable");
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
            .claim_due_callbacks(now, now.plus_millis(lease), 32)
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

    async fn post(&self, job: CallbackJob) {
        let body = (self.render)(&job);
        let now = self.clock.now();
        let signature = self.signer.signature(
            job.verification.service_id,
            now.unix_seconds(),
            body.as_bytes(),
        );
        let request = self
            .client
            .post(&job.url)
            .header("Content-Type", "application/json")
            .header(SIGNATURE_HEADER, signature)
            .body(body);
        let failure = match self.outbound.send(&job.url, request).await {
            Ok(response) if response.status().is_success() => None,
            Ok(response) => Some(format!("HTTP {}", response.status().as_u16())),
            Err(outcome) => Some(outcome),
        };
        let now = self.clock.now();
        let recorded = match failure {
            None => {
                tracing::info!(callback = %job.id, verification = %job.verification.id, "status callback delivered");
                self.store.callback_delivered(job.id, now).await
            }
            Some(error) => {
                let attempts = job.attempts + 1;
                let retry_at = (attempts < self.policy.max_attempts)
                    .then(|| now.plus_millis(self.policy.delay_after(attempts).as_millis() as i64));
                tracing::warn!(callback = %job.id, attempts, %error, gave_up = retry_at.is_none(), "status callback failed");
                if let Some(metrics) = &self.metrics {
                    metrics.callback_failures.inc();
                }
                self.store
                    .callback_failed(job.id, retry_at, &error, now)
                    .await
            }
        };
        if let Err(error) = recorded {
            tracing::error!(callback = %job.id, %error, "could not record callback result");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_is_capped() {
        let policy = CallbackPolicy {
            base_delay: Duration::from_secs(5),
            max_delay: Duration::from_secs(60),
            ..CallbackPolicy::default()
        };
        assert_eq!(policy.delay_after(1), Duration::from_secs(5));
        assert_eq!(policy.delay_after(2), Duration::from_secs(10));
        assert_eq!(policy.delay_after(3), Duration::from_secs(20));
        assert_eq!(policy.delay_after(10), Duration::from_secs(60));
    }
}
