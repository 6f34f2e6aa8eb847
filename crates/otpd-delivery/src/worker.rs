//! The delivery worker: takes jobs from the in-memory channel, sends them through the
//! provider with a few quick retries, and records each attempt's status. The durable record
//! is the `queued` delivery row written with the verification; after a restart,
//! [`DeliveryWorker::resume_stale`] sends again the rows that never left.

use std::sync::Arc;
use std::time::Duration;

use otpd_core::store::DELIVERY_LEASE_SECONDS;
use otpd_core::{Clock, DeliveryJob, DeliveryStatus, Dispatch, Store, Verifier};
use tokio::sync::mpsc;

use crate::provider::{Message, Provider, SendError};

/// Feeds the worker; this is the core's [`Dispatch`].
#[derive(Debug, Clone)]
pub struct ChannelDispatch(mpsc::UnboundedSender<DeliveryJob>);

impl Dispatch for ChannelDispatch {
    fn dispatch(&self, job: DeliveryJob) {
        if self.0.send(job).is_err() {
            // The row stays `queued`; the next start resumes it.
            tracing::warn!("delivery worker stopped; delivery left queued for the next start");
        }
    }
}

/// Sends codes through one provider.
pub struct DeliveryWorker<S, C, P> {
    store: S,
    clock: C,
    provider: Arc<P>,
}

/// Quick in-process retries for temporary failures before the attempt is marked failed.
const TRIES: u32 = 3;

impl<S: Store + Clone, C: Clock + Clone, P: Provider> DeliveryWorker<S, C, P> {
    /// A worker and the dispatch handle that feeds it.
    pub fn new(
        store: S,
        clock: C,
        provider: P,
    ) -> (Self, ChannelDispatch, mpsc::UnboundedReceiver<DeliveryJob>) {
        let (sender, receiver) = mpsc::unbounded_channel();
        (
            DeliveryWorker {
                store,
                clock,
                provider: Arc::new(provider),
            },
            ChannelDispatch(sender),
            receiver,
        )
    }

    /// Takes over the deliveries whose writer stopped before sending them (their lease ran
    /// out by `takeover_at`) and queues them again with the same code, re-derived from its
    /// seed. The store leases each claimed delivery to this node, so on several nodes exactly
    /// one resumes it. A sole node (SQLite) passes a time past every lease at start: nobody
    /// else can be sending.
    pub async fn resume_stale(
        &self,
        verifier: &Verifier<S, C>,
        dispatch: &ChannelDispatch,
        takeover_at: otpd_core::Timestamp,
    ) -> Result<usize, otpd_core::StoreError> {
        let mut resumed = 0;
        let lease_until = self.clock.now().plus_seconds(DELIVERY_LEASE_SECONDS);
        for (delivery, verification) in self
            .store
            .claim_stale_deliveries(takeover_at, lease_until, 500)
            .await?
        {
            match verifier.resume(&delivery, &verification) {
                Some(job) => {
                    dispatch.dispatch(job);
                    resumed += 1;
                }
                None => {
                    self.store
                        .update_delivery(
                            delivery.id,
                            DeliveryStatus::Failed,
                            None,
                            None,
                            Some("not sent before a restart, and the verification has ended or its custom code is gone"),
                            self.clock.now(),
                        )
                        .await?;
                }
            }
        }
        Ok(resumed)
    }

    /// Resumes stale deliveries every `interval`, forever (the takeover of a dead node's work).
    pub async fn sweep(
        self: Arc<Self>,
        verifier: Arc<Verifier<S, C>>,
        dispatch: ChannelDispatch,
        interval: Duration,
    ) {
        loop {
            tokio::time::sleep(interval).await;
            match self
                .resume_stale(&verifier, &dispatch, self.clock.now())
                .await
            {
                Ok(0) => {}
                Ok(resumed) => tracing::info!(resumed, "took over deliveries whose lease ran out"),
                Err(error) => tracing::warn!(%error, "could not sweep stale deliveries"),
            }
        }
    }

    /// Runs until the channel closes, sending each job on its own task.
    pub async fn run(self: Arc<Self>, mut jobs: mpsc::UnboundedReceiver<DeliveryJob>) {
        let worker = self;
        while let Some(job) = jobs.recv().await {
            let worker = worker.clone();
            tokio::spawn(async move { worker.deliver(job).await });
        }
    }

    async fn deliver(&self, job: DeliveryJob) {
        let mut delay = Duration::from_millis(200);
        let message = message_of(&job);
        let mut outcome = Err(SendError::transient("none", "not tried"));
        for attempt in 1..=TRIES {
            outcome = self.provider.send(&message).await;
            match &outcome {
                Err(reason @ SendError::Transient { .. }) if attempt < TRIES => {
                    tracing::warn!(delivery = %job.delivery_id, to = %job.to.masked(), %reason, "retrying delivery");
                    tokio::time::sleep(delay).await;
                    delay *= 4;
                }
                _ => break,
            }
        }
        let now = self.clock.now();
        let provider = Some(self.provider.name());
        let recorded = match &outcome {
            Ok(accepted) => {
                tracing::info!(delivery = %job.delivery_id, verification = %job.verification_id, to = %job.to.masked(), provider = self.provider.name(), "code sent");
                self.store
                    .update_delivery(
                        job.delivery_id,
                        DeliveryStatus::Sent,
                        provider,
                        Some(&accepted.message_id),
                        None,
                        now,
                    )
                    .await
            }
            Err(error) => {
                tracing::warn!(delivery = %job.delivery_id, to = %job.to.masked(), %error, "delivery failed");
                self.store
                    .update_delivery(
                        job.delivery_id,
                        DeliveryStatus::Failed,
                        provider,
                        None,
                        Some(&error.to_string()),
                        now,
                    )
                    .await
            }
        };
        if let Err(error) = recorded {
            tracing::error!(delivery = %job.delivery_id, %error, "could not record delivery status");
        }
    }
}

/// The provider's view of a job.
fn message_of(job: &DeliveryJob) -> Message {
    Message {
        reference: job.delivery_id.to_string(),
        channel: job.channel,
        to: job.to.as_str().to_string(),
        from: job.from.as_str().to_string(),
        text: job.body.clone(),
        code: job.code.expose().to_string(),
        locale: "en".to_string(),
        subject: String::new(),
        html: None,
        validity_seconds: job.validity_seconds,
        receipt_url: None,
    }
}
