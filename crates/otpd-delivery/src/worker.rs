//! The delivery worker. Each queued job is tried on the providers its route lists, in order
//! (failover); transient failures are retried with exponential backoff and jitter until the
//! code expires; a failed or undelivered channel falls back to the service's next channel
//! with the same code. The durable record is the delivery row written with the verification:
//! while this node works on it, its lease says so; after a crash, another node (or this one
//! after a restart) resumes every unfinished row.

use std::sync::Arc;
use std::time::Duration;

use otpd_core::store::{DELIVERY_LEASE_SECONDS, DeliveryUpdate, ReceiptUpdate};
use otpd_core::{
    Channel, Clock, DeliveryJob, DeliveryStatus, Dispatch, FirstTry, Store, StoreError, Verifier,
};
use tokio::sync::{mpsc, oneshot};

use crate::provider::{InboundRequest, Message, Provider, ReceiptError, ReceiptReply, SendError};
use crate::routing::ProviderRouter;

/// How hard and how long the worker tries.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DeliveryPolicy {
    /// How long a start waits for the first try, so its response can say whether a
    /// provider took the message (the job goes on in the background after that).
    pub inline_deadline: Duration,
    /// First wait after a round of transient failures; doubles each round.
    pub first_backoff: Duration,
    /// Longest wait between rounds.
    pub max_backoff: Duration,
    /// With a fallback channel left, how long to wait for a `delivered` receipt before
    /// trying the next channel (only for providers that send receipts).
    pub receipt_timeout: Duration,
}

impl Default for DeliveryPolicy {
    fn default() -> Self {
        DeliveryPolicy {
            inline_deadline: Duration::from_secs(2),
            first_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(60),
            receipt_timeout: Duration::from_secs(60),
        }
    }
}

/// Where a job's first outcome goes: the start waiting to answer.
type FirstTryReply = oneshot::Sender<Option<FirstTry>>;

type Queued = (DeliveryJob, Option<FirstTryReply>);

/// While a delivery waits to retry, this node keeps it until the retry time plus this margin;
/// if the node dies, another takes it over soon after the retry was due.
pub const RETRY_LEASE_MARGIN_SECONDS: i64 = 5;

/// Feeds the worker; this is the core's [`Dispatch`].
#[derive(Clone)]
pub struct ChannelDispatch {
    sender: mpsc::UnboundedSender<Queued>,
    inline_deadline: Duration,
    router: Arc<ProviderRouter>,
}

impl std::fmt::Debug for ChannelDispatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChannelDispatch")
            .field("inline_deadline", &self.inline_deadline)
            .finish_non_exhaustive()
    }
}

impl ChannelDispatch {
    /// Queues a job nobody waits for (resumed and fallback deliveries).
    pub fn send_background(&self, job: DeliveryJob) {
        if self.sender.send((job, None)).is_err() {
            tracing::warn!("delivery worker stopped; delivery left queued for the next start");
        }
    }
}

impl Dispatch for ChannelDispatch {
    fn dispatch(
        &self,
        job: DeliveryJob,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Option<FirstTry>> + Send>> {
        let (first_try, done) = oneshot::channel();
        if self.sender.send((job, Some(first_try))).is_err() {
            // The row stays `queued`; the next start resumes it.
            tracing::warn!("delivery worker stopped; delivery left queued for the next start");
            return Box::pin(std::future::ready(None));
        }
        let deadline = self.inline_deadline;
        Box::pin(async move {
            tokio::time::timeout(deadline, done)
                .await
                .ok()
                .and_then(Result::ok)
                .flatten()
        })
    }

    fn serves(&self, channel: Channel, country: Option<&str>, route: Option<&[String]>) -> bool {
        self.router.serves(channel, country, route)
    }
}

/// How one channel's delivery ended.
enum ChannelOutcome {
    /// A provider took it.
    Sent,
    /// No provider took it (or the recipient was rejected): fall back if possible.
    Failed,
    /// The verification ended or the code expired: nothing more to do.
    Over,
}

/// Sends codes through the routed providers.
pub struct DeliveryWorker<S, C> {
    store: S,
    clock: C,
    router: Arc<ProviderRouter>,
    policy: DeliveryPolicy,
    receipt_base: Option<String>,
    metrics: crate::SharedMetrics,
    /// Deliveries this node is working on (a graceful shutdown hands them back).
    in_flight: std::sync::Mutex<std::collections::HashSet<otpd_core::DeliveryId>>,
}

impl<S: Store + Clone, C: Clock + Clone> DeliveryWorker<S, C> {
    /// A worker and the dispatch handle that feeds it. `receipt_base` is otpd's public URL:
    /// providers are asked to post receipts to `{receipt_base}/webhooks/{provider name}`.
    pub fn new(
        store: S,
        clock: C,
        router: Arc<ProviderRouter>,
        policy: DeliveryPolicy,
        receipt_base: Option<String>,
        metrics: crate::SharedMetrics,
    ) -> (Self, ChannelDispatch, mpsc::UnboundedReceiver<Queued>) {
        let (sender, receiver) = mpsc::unbounded_channel();
        (
            DeliveryWorker {
                store,
                clock,
                router: router.clone(),
                policy,
                receipt_base: receipt_base.map(|b| b.trim_end_matches('/').to_string()),
                metrics,
                in_flight: Default::default(),
            },
            ChannelDispatch {
                sender,
                inline_deadline: policy.inline_deadline,
                router: router.clone(),
            },
            receiver,
        )
    }

    /// The routing table (receipts look providers up by name).
    pub fn router(&self) -> &Arc<ProviderRouter> {
        &self.router
    }

    /// Takes over the deliveries whose writer stopped before finishing them (their lease ran
    /// out by `takeover_at`) and queues them again with the same code, re-derived from its
    /// seed. The store leases each claimed delivery to this node, so on several nodes exactly
    /// one resumes it. A sole node (SQLite) passes a time past every lease at start: nobody
    /// else can be sending.
    pub async fn resume_stale(
        &self,
        verifier: &Verifier<S, C>,
        dispatch: &ChannelDispatch,
        takeover_at: otpd_core::Timestamp,
    ) -> Result<usize, StoreError> {
        let mut resumed = 0;
        let lease_until = self.clock.now().plus_seconds(DELIVERY_LEASE_SECONDS);
        for (delivery, verification) in self
            .store
            .claim_stale_deliveries(takeover_at, lease_until, 500)
            .await?
        {
            match verifier.resume(&delivery, &verification).await? {
                Some(job) => {
                    dispatch.send_background(job);
                    resumed += 1;
                }
                None => {
                    let update = DeliveryUpdate {
                        error: Some("not sent before a restart, and the verification has ended or its custom code is gone".into()),
                        ..DeliveryUpdate::status(DeliveryStatus::Failed)
                    };
                    self.store
                        .update_delivery(delivery.id, &update, self.clock.now())
                        .await?;
                }
            }
        }
        Ok(resumed)
    }

    /// Queues the next channel for every delivery whose fallback is due (an `undelivered`
    /// receipt, or no `delivered` receipt in time).
    pub async fn fall_back_due(
        &self,
        verifier: &Verifier<S, C>,
        dispatch: &ChannelDispatch,
    ) -> Result<usize, StoreError> {
        let mut queued = 0;
        for (delivery, verification) in self
            .store
            .claim_due_fallbacks(self.clock.now(), 100)
            .await?
        {
            let Some(job) = verifier.resume(&delivery, &verification).await? else {
                continue;
            };
            if let Some(next) = verifier
                .fall_back(&verification, &job.fallback, Some(&job.code))
                .await?
            {
                tracing::info!(verification = %verification.id, from = delivery.channel.as_str(), to = next.channel.as_str(), "falling back to the next channel");
                dispatch.send_background(next);
                queued += 1;
            }
        }
        Ok(queued)
    }

    /// Every `interval`, forever: resumes stale deliveries (the takeover of a dead node's
    /// work) and starts due fallbacks.
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
            if let Err(error) = self.fall_back_due(&verifier, &dispatch).await {
                tracing::warn!(%error, "could not start due fallbacks");
            }
        }
    }

    /// Verifies a receipt posted to `provider`'s endpoint and records what it says. An
    /// `undelivered` receipt on a delivery with a fallback left starts the next channel now.
    pub async fn receipt(
        &self,
        verifier: &Verifier<S, C>,
        dispatch: &ChannelDispatch,
        provider: &str,
        webhook: &InboundRequest,
    ) -> Result<ReceiptReply, ReceiptHandlingError> {
        let adapter = self
            .router
            .provider(provider)
            .ok_or(ReceiptHandlingError::UnknownProvider)?;
        let reply = adapter.receipt(webhook)?;
        let ReceiptReply::Receipts(receipts) = &reply else {
            return Ok(reply);
        };
        let now = self.clock.now();
        let mut fallback_due = false;
        for receipt in receipts {
            let update = ReceiptUpdate {
                provider: provider.to_string(),
                provider_ref: receipt.message_id.clone(),
                status: receipt.status,
                error_code: receipt.error_code.clone(),
                price: receipt.price,
                segments: receipt.segments,
            };
            match self.store.record_receipt(&update, now).await? {
                Some(attempt) => {
                    self.metrics
                        .delivery(provider, &format!("receipt_{}", receipt.status.as_str()));
                    tracing::info!(delivery = %attempt.id, provider, status = attempt.status.as_str(), "delivery receipt");
                    fallback_due |= matches!(
                        receipt.status,
                        DeliveryStatus::Undelivered | DeliveryStatus::Failed
                    );
                }
                None => tracing::info!(provider, "receipt for a message otpd does not know"),
            }
        }
        if fallback_due {
            self.fall_back_due(verifier, dispatch).await?;
        }
        Ok(reply)
    }

    /// Runs until the channel closes, delivering each job on its own task.
    pub async fn run(
        self: Arc<Self>,
        mut jobs: mpsc::UnboundedReceiver<Queued>,
        verifier: Arc<Verifier<S, C>>,
        dispatch: ChannelDispatch,
    ) {
        while let Some((job, first_try)) = jobs.recv().await {
            let worker = self.clone();
            let verifier = verifier.clone();
            let dispatch = dispatch.clone();
            // Boxed: a delivery's future holds the provider's request and is copied whole
            // at each move inside `spawn`; a pointer is not.
            tokio::spawn(async move {
                Box::pin(worker.deliver(job, first_try, &verifier, &dispatch)).await
            });
        }
    }

    /// Hands the deliveries this node is still working on back to the store (their leases
    /// end now), for a graceful shutdown: another node, or the next start, resumes them at
    /// once.
    pub async fn hand_back(&self) -> Result<u64, StoreError> {
        let ids: Vec<_> = match self.in_flight.lock() {
            Ok(set) => set.iter().copied().collect(),
            Err(_) => return Ok(0),
        };
        if ids.is_empty() {
            return Ok(0);
        }
        self.store.release_deliveries(&ids, self.clock.now()).await
    }

    async fn deliver(
        &self,
        job: DeliveryJob,
        mut first_try: Option<FirstTryReply>,
        verifier: &Verifier<S, C>,
        dispatch: &ChannelDispatch,
    ) {
        if let Ok(mut set) = self.in_flight.lock() {
            set.insert(job.delivery_id);
        }
        let outcome = self.deliver_on_channel(&job, &mut first_try).await;
        if let Ok(mut set) = self.in_flight.lock() {
            set.remove(&job.delivery_id);
        }
        if let Some(done) = first_try.take() {
            let _ = done.send(None);
        }
        let outcome = match outcome {
            Ok(outcome) => outcome,
            Err(error) => {
                tracing::error!(delivery = %job.delivery_id, %error, "could not record delivery status");
                return;
            }
        };
        if !matches!(outcome, ChannelOutcome::Failed) || job.fallback.is_empty() {
            return;
        }
        let fallback = match self.store.verification(job.verification_id).await {
            Ok(Some(verification)) => {
                verifier
                    .fall_back(&verification, &job.fallback, Some(&job.code))
                    .await
            }
            Ok(None) => Ok(None),
            Err(error) => Err(error),
        };
        match fallback {
            Ok(Some(next)) => {
                tracing::info!(verification = %job.verification_id, from = job.channel.as_str(), to = next.channel.as_str(), "falling back to the next channel");
                dispatch.send_background(next);
            }
            Ok(None) => {}
            Err(error) => {
                tracing::error!(verification = %job.verification_id, %error, "could not fall back")
            }
        }
    }

    /// Tries the route until a provider takes the message, the recipient is rejected, or the
    /// code expires.
    async fn deliver_on_channel(
        &self,
        job: &DeliveryJob,
        first_try: &mut Option<FirstTryReply>,
    ) -> Result<ChannelOutcome, StoreError> {
        let country = job.country.map(|c| c.as_str().to_string());
        let mut backoff = self.policy.first_backoff;
        loop {
            let route =
                self.router
                    .route(job.channel, country.as_deref(), job.providers.as_deref());
            if route.is_empty() {
                self.finish(
                    job,
                    None,
                    &SendError::provider(
                        "no_route",
                        format!("no provider is configured for {}", job.channel.as_str()),
                    ),
                    first_try,
                )
                .await?;
                return Ok(ChannelOutcome::Failed);
            }
            let mut retry = None;
            let mut refused = None;
            for provider in route {
                let message = self.message_for(job, provider.as_ref());
                let started = std::time::Instant::now();
                let outcome = provider.send(&message).await;
                self.metrics
                    .provider_seconds
                    .get_or_create(&crate::metrics::ProviderLabels {
                        provider: provider.name().to_string(),
                    })
                    .observe(started.elapsed().as_secs_f64());
                self.metrics.delivery(
                    provider.name(),
                    match &outcome {
                        Ok(_) => "sent",
                        Err(SendError::Transient { .. }) => "transient",
                        Err(SendError::Provider { .. }) => "provider_refused",
                        Err(SendError::Rejected { .. }) => "rejected",
                    },
                );
                match outcome {
                    Ok(accepted) => {
                        self.router.record(provider.name(), true);
                        // Only a provider that can reach our receipt endpoint may trigger a
                        // fallback by staying silent.
                        let receipts_possible =
                            provider.has_receipts() && self.receipt_base.is_some();
                        let fallback_at =
                            (!job.fallback.is_empty() && receipts_possible).then(|| {
                                self.clock
                                    .now()
                                    .plus_millis(self.policy.receipt_timeout.as_millis() as i64)
                            });
                        let update = DeliveryUpdate {
                            provider: Some(provider.name().to_string()),
                            provider_ref: Some(accepted.message_id.clone()),
                            segments: accepted.segments,
                            price: accepted.price,
                            price_unit: accepted.price_unit.clone(),
                            fallback_at,
                            ..DeliveryUpdate::status(accepted.status)
                        };
                        let told_the_start = self.record(job, update, first_try).await?;
                        // A start that waited for this try logs it on its request's line.
                        if !told_the_start {
                            tracing::info!(delivery = %job.delivery_id, verification = %job.verification_id, to = %job.to.masked(), provider = provider.name(), "code sent");
                        }
                        return Ok(ChannelOutcome::Sent);
                    }
                    Err(error @ SendError::Rejected { .. }) => {
                        // The provider works; the recipient cannot be reached this way.
                        self.router.record(provider.name(), true);
                        self.finish(job, Some(provider.name()), &error, first_try)
                            .await?;
                        return Ok(ChannelOutcome::Failed);
                    }
                    Err(error) => {
                        self.router.record(provider.name(), false);
                        tracing::warn!(delivery = %job.delivery_id, to = %job.to.masked(), provider = provider.name(), %error, "provider failed; trying the next");
                        let event = otpd_core::events::provider_failed_event(
                            job,
                            provider.name(),
                            error.code(),
                            &error.to_string(),
                            self.clock.now(),
                        );
                        if let Err(store) = self.store.record_event(&event).await {
                            tracing::warn!(error = %store, "could not record a provider's failure");
                        }
                        let transient = matches!(error, SendError::Transient { .. });
                        let last = (provider.name().to_string(), error);
                        if transient {
                            retry = Some(last);
                        } else {
                            refused = Some(last);
                        }
                    }
                }
            }
            let (provider, error) = match (retry, refused) {
                (Some(transient), _) => transient,
                (None, Some((provider, error))) => {
                    self.finish(job, Some(&provider), &error, first_try).await?;
                    return Ok(ChannelOutcome::Failed);
                }
                (None, None) => return Ok(ChannelOutcome::Failed),
            };
            let wait = jittered(backoff);
            let now = self.clock.now();
            let retry_at = now.plus_millis(wait.as_millis() as i64);
            if retry_at >= job.expires_at {
                let gave_up = SendError::transient(
                    error.code(),
                    format!("no provider took the message before the code expired; last: {error}"),
                );
                self.finish(job, Some(&provider), &gave_up, first_try)
                    .await?;
                return Ok(ChannelOutcome::Over);
            }
            match self.store.verification(job.verification_id).await? {
                Some(v) if v.status_at(now) == otpd_core::VerificationStatus::Pending => {}
                _ => {
                    let over = SendError::provider(
                        "ended",
                        "the verification ended before a provider took the message",
                    );
                    self.finish(job, Some(&provider), &over, first_try).await?;
                    return Ok(ChannelOutcome::Over);
                }
            }
            let update = DeliveryUpdate {
                provider: Some(provider),
                error: Some(error.to_string()),
                error_code: Some(error.code().to_string()),
                lease_until: Some(retry_at.plus_seconds(RETRY_LEASE_MARGIN_SECONDS)),
                ..DeliveryUpdate::status(DeliveryStatus::Queued)
            };
            // The start's response can now say "queued, retrying" with the reason.
            self.record_at(job, update, now, first_try).await?;
            tokio::time::sleep(wait).await;
            backoff = (backoff * 2).min(self.policy.max_backoff);
        }
    }

    /// Records a delivery as failed for good.
    async fn finish(
        &self,
        job: &DeliveryJob,
        provider: Option<&str>,
        error: &SendError,
        first_try: &mut Option<FirstTryReply>,
    ) -> Result<(), StoreError> {
        tracing::warn!(delivery = %job.delivery_id, to = %job.to.masked(), %error, "delivery failed");
        let update = DeliveryUpdate {
            provider: provider.map(str::to_string),
            error: Some(error.to_string()),
            error_code: Some(error.code().to_string()),
            ..DeliveryUpdate::status(DeliveryStatus::Failed)
        };
        self.record(job, update, first_try).await.map(|_| ())
    }

    /// Records `update` now; see [`Self::record_at`].
    async fn record(
        &self,
        job: &DeliveryJob,
        update: DeliveryUpdate,
        first_try: &mut Option<FirstTryReply>,
    ) -> Result<bool, StoreError> {
        let now = self.clock.now();
        self.record_at(job, update, now, first_try).await
    }

    /// Records what happened to a job's attempt and, for its first outcome, tells the
    /// waiting start (which answers with it instead of reading it back). Told once a read
    /// right after the answer would show the same attempt: a provider's acceptance through
    /// [`record_first_outcome`](otpd_core::DeliveryStore::record_first_outcome) (on SQLite,
    /// before it commits: one commit less on every start's answer); any other outcome (a
    /// retry, a failure) once committed, since its record moves the lease another node must
    /// see if this one dies right after answering.
    /// Whether a waiting start was told (one that gave up waiting is not).
    async fn record_at(
        &self,
        job: &DeliveryJob,
        update: DeliveryUpdate,
        now: otpd_core::Timestamp,
        first_try: &mut Option<FirstTryReply>,
    ) -> Result<bool, StoreError> {
        let accepted = matches!(
            update.status,
            DeliveryStatus::Sent | DeliveryStatus::Delivered
        );
        if accepted && first_try.is_some() {
            self.store
                .record_first_outcome(job.delivery_id, &update, now)
                .await?;
        } else {
            self.store
                .update_delivery(job.delivery_id, &update, now)
                .await?;
        }
        Ok(first_try
            .take()
            .is_some_and(|done| done.send(Some((update, now))).is_ok()))
    }

    /// The provider's view of a job.
    fn message_for(&self, job: &DeliveryJob, provider: &dyn Provider) -> Message {
        Message {
            reference: job.delivery_id.to_string(),
            channel: job.channel,
            to: job.to.as_str().to_string(),
            // Email adapters send from their configured address; a phone channel gets the
            // service's sender id unless it is the built-in placeholder, which leaves the
            // provider's configured sender in charge.
            from: if job.channel == Channel::Email
                || job.from.as_str() == otpd_core::settings::DEFAULT_SENDER
            {
                String::new()
            } else {
                job.from.as_str().to_string()
            },
            text: job.body.clone(),
            code: job.code.expose().to_string(),
            locale: job.locale.clone(),
            subject: otpd_core::messages::email_subject(&job.locale, &job.service_name),
            html: (job.channel == Channel::Email).then(|| email_html(&job.body)),
            validity_seconds: job.validity_seconds,
            receipt_url: self
                .receipt_base
                .as_ref()
                .map(|base| format!("{base}/webhooks/{}", provider.name())),
        }
    }
}

/// A wait between `base / 2` and `base` (jitter keeps many nodes from retrying in step).
fn jittered(base: Duration) -> Duration {
    let half = base / 2;
    let extra = rand::random_range(0..=half.as_millis() as u64);
    half + Duration::from_millis(extra)
}

/// The HTML part of an email: the text, escaped, in a paragraph.
fn email_html(text: &str) -> String {
    let escaped = text
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('\n', "<br>");
    format!("<!doctype html><html><body><p style=\"font-size:16px\">{escaped}</p></body></html>")
}

/// Why a receipt was not recorded.
#[derive(Debug, thiserror::Error)]
pub enum ReceiptHandlingError {
    /// No provider has that name (404).
    #[error("no provider is configured under that name")]
    UnknownProvider,
    /// The adapter refused it.
    #[error(transparent)]
    Refused(#[from] ReceiptError),
    /// Storage failed (5xx).
    #[error(transparent)]
    Store(#[from] StoreError),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jitter_stays_between_half_and_full() {
        for _ in 0..100 {
            let wait = jittered(Duration::from_secs(4));
            assert!(wait >= Duration::from_secs(2) && wait <= Duration::from_secs(4));
        }
    }

    #[test]
    fn email_html_escapes_the_text() {
        assert_eq!(
            email_html("<b>1</b> & 2"),
            "<!doctype html><html><body><p style=\"font-size:16px\">&lt;b&gt;1&lt;/b&gt; &amp; 2</p></body></html>"
        );
    }
}
