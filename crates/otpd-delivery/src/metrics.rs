//! Prometheus metrics (OpenMetrics text at `GET /metrics`), with the `prometheus-client`
//! crate. One [`Metrics`] per process; the HTTP layer, the delivery worker and the callback
//! worker record into it. Labels never carry a phone number, an address or a code.

use std::sync::Arc;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// One HTTP route answered with one status.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HttpLabels {
    /// `native`, `twilio`, `admin`, `webhooks`, `ops`.
    pub dialect: String,
    /// The matched route pattern (`/otp/{otp_id}`), never the raw path.
    pub route: String,
    /// `GET`, `POST`, …
    pub method: String,
    /// The HTTP status code.
    pub status: u16,
}

/// A verification event by channel and destination country.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct VerificationLabels {
    /// `started`, `approved`, `wrong_code`, `expired`, `max_attempts`, `canceled`.
    pub event: String,
    /// `sms`, `call`, `email`, `whatsapp`.
    pub channel: String,
    /// ISO country, or `none` for email.
    pub country: String,
}

/// A delivery try's outcome by provider.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DeliveryLabels {
    /// The configured provider name.
    pub provider: String,
    /// `sent`, `transient`, `provider_refused`, `rejected`, or a receipt status.
    pub outcome: String,
}

/// A provider's request latency.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ProviderLabels {
    /// The configured provider name.
    pub provider: String,
}

/// A start refused by a protection.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RefusalLabels {
    /// `destination`, `client_ip`, `country`, `programmable`, `lockout`, `cooldown`,
    /// `blocked_country`, `block_list`, `costly_number`, `landline`, `pumping`, `budget`.
    pub reason: String,
}

/// Rows a retention purge deleted, by kind.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PurgeLabels {
    /// `verifications`, `events`, `delivery_logs`, `counters`.
    pub kind: String,
}

/// Every metric otpd exports.
pub struct Metrics {
    registry: Registry,
    /// HTTP requests by route and status.
    pub http_requests: Family<HttpLabels, Counter>,
    /// HTTP latency in seconds by route and status.
    pub http_seconds: Family<HttpLabels, Histogram>,
    /// Verification lifecycle events.
    pub verifications: Family<VerificationLabels, Counter>,
    /// Delivery tries and receipts by provider and outcome.
    pub deliveries: Family<DeliveryLabels, Counter>,
    /// Provider request latency in seconds.
    pub provider_seconds: Family<ProviderLabels, Histogram>,
    /// Starts refused by a protection, by reason.
    pub refusals: Family<RefusalLabels, Counter>,
    /// Status-callback posts that failed.
    pub callback_failures: Counter,
    /// Service-webhook posts that failed.
    pub webhook_failures: Counter,
    /// Deliveries not yet taken by a provider (set when scraped).
    pub outbox_queued: Gauge,
    /// Age in seconds of the oldest of them (set when scraped).
    pub outbox_oldest_seconds: Gauge,
    /// Status callbacks waiting to be posted (set when scraped).
    pub callbacks_pending: Gauge,
    /// Prefixes quarantined by the SMS-pumping defence now (set when scraped).
    pub quarantines: Gauge,
    /// Rows the retention purge deleted, by kind.
    pub purged_rows: Family<PurgeLabels, Counter>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Registers every metric under the `otpd_` prefix.
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("otpd");
        let http_requests = Family::<HttpLabels, Counter>::default();
        let http_seconds = Family::<HttpLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.0005, 2.0, 14))
        });
        let verifications = Family::<VerificationLabels, Counter>::default();
        let deliveries = Family::<DeliveryLabels, Counter>::default();
        let provider_seconds = Family::<ProviderLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.005, 2.0, 12))
        });
        let refusals = Family::<RefusalLabels, Counter>::default();
        let callback_failures = Counter::default();
        let webhook_failures = Counter::default();
        let outbox_queued = Gauge::default();
        let outbox_oldest_seconds = Gauge::default();
        let callbacks_pending = Gauge::default();
        let quarantines = Gauge::default();
        let purged_rows = Family::<PurgeLabels, Counter>::default();
        registry.register(
            "http_requests",
            "HTTP requests by dialect, route, method and status",
            http_requests.clone(),
        );
        registry.register(
            "http_request_duration_seconds",
            "HTTP request latency",
            http_seconds.clone(),
        );
        registry.register(
            "verifications",
            "Verification events by channel and destination country",
            verifications.clone(),
        );
        registry.register(
            "delivery_attempts",
            "Delivery tries and receipts by provider and outcome",
            deliveries.clone(),
        );
        registry.register(
            "provider_request_duration_seconds",
            "Provider request latency",
            provider_seconds.clone(),
        );
        registry.register(
            "refusals",
            "Starts refused by a protection, by reason",
            refusals.clone(),
        );
        registry.register(
            "callback_failures",
            "Status-callback posts that failed",
            callback_failures.clone(),
        );
        registry.register(
            "webhook_failures",
            "Service-webhook posts that failed",
            webhook_failures.clone(),
        );
        registry.register(
            "outbox_queued_deliveries",
            "Deliveries not yet taken by a provider",
            outbox_queued.clone(),
        );
        registry.register(
            "outbox_oldest_queued_age_seconds",
            "Age of the oldest delivery not yet taken by a provider",
            outbox_oldest_seconds.clone(),
        );
        registry.register(
            "callbacks_pending",
            "Status callbacks waiting to be posted",
            callbacks_pending.clone(),
        );
        registry.register(
            "pumping_quarantines",
            "Prefixes quarantined by the SMS-pumping defence",
            quarantines.clone(),
        );
        registry.register(
            "purged_rows",
            "Rows the retention purge deleted, by kind",
            purged_rows.clone(),
        );
        Metrics {
            registry,
            http_requests,
            http_seconds,
            verifications,
            deliveries,
            provider_seconds,
            refusals,
            callback_failures,
            webhook_failures,
            outbox_queued,
            outbox_oldest_seconds,
            callbacks_pending,
            quarantines,
            purged_rows,
        }
    }

    /// Counts rows a purge deleted.
    pub fn purged(&self, kind: &str, rows: u64) {
        self.purged_rows
            .get_or_create(&PurgeLabels {
                kind: kind.to_string(),
            })
            .inc_by(rows);
    }

    /// Counts a verification event.
    pub fn verification(&self, event: &str, channel: &str, country: Option<&str>) {
        self.verifications
            .get_or_create(&VerificationLabels {
                event: event.to_string(),
                channel: channel.to_string(),
                country: country.unwrap_or("none").to_string(),
            })
            .inc();
    }

    /// Counts a delivery outcome.
    pub fn delivery(&self, provider: &str, outcome: &str) {
        self.deliveries
            .get_or_create(&DeliveryLabels {
                provider: provider.to_string(),
                outcome: outcome.to_string(),
            })
            .inc();
    }

    /// Counts a refusal.
    pub fn refusal(&self, reason: &str) {
        self.refusals
            .get_or_create(&RefusalLabels {
                reason: reason.to_string(),
            })
            .inc();
    }

    /// The OpenMetrics text.
    pub fn render(&self) -> String {
        let mut text = String::new();
        if prometheus_client::encoding::text::encode(&mut text, &self.registry).is_err() {
            return String::new();
        }
        text
    }
}

/// Shared handle.
pub type SharedMetrics = Arc<Metrics>;

impl otpd_core::Observer for Metrics {
    fn verification(&self, event: &str, verification: &otpd_core::Verification) {
        let country = verification.country.map(|c| c.as_str().to_string());
        Metrics::verification(
            self,
            event,
            verification.channel.as_str(),
            country.as_deref(),
        );
    }

    fn refused(&self, reason: &str) {
        self.refusal(reason);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rendered_text_carries_names_labels_and_values() {
        let metrics = Metrics::new();
        metrics.verification("started", "sms", Some("FR"));
        metrics.verification("started", "sms", Some("FR"));
        metrics.delivery("twilio", "sent");
        metrics.refusal("pumping");
        metrics.outbox_queued.set(3);
        let text = metrics.render();
        assert!(
            text.contains(
                "otpd_verifications_total{event=\"started\",channel=\"sms\",country=\"FR\"} 2"
            ),
            "{text}"
        );
        assert!(
            text.contains("otpd_delivery_attempts_total{provider=\"twilio\",outcome=\"sent\"} 1")
        );
        assert!(text.contains("otpd_refusals_total{reason=\"pumping\"} 1"));
        assert!(text.contains("otpd_outbox_queued_deliveries 3"));
        assert!(text.ends_with("# EOF\n"));
    }
}
