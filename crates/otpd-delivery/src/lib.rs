//! Delivery: the [`Provider`] port with the built-in console provider and dev inbox, the
//! delivery worker that sends queued codes, and the durable status-callback worker.

pub mod callbacks;
pub mod console;
pub mod worker;

use std::future::Future;

use otpd_core::DeliveryJob;

pub use callbacks::{CallbackPolicy, CallbackWorker};
pub use console::{ConsoleProvider, Inbox, InboxMessage};
pub use worker::{ChannelDispatch, DeliveryWorker};

/// Why a provider did not take a message.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum ProviderError {
    /// Worth retrying (timeouts, 5xx, throttling).
    #[error("temporary provider failure: {0}")]
    Temporary(String),
    /// Retrying will not help (invalid number, rejected content, bad credentials).
    #[error("permanent provider failure: {0}")]
    Permanent(String),
}

/// A way to hand a message to the outside world. Real providers (Twilio, Vonage, SNS, SMTP…)
/// arrive in the delivery issue; each speaks its provider's real HTTP API.
pub trait Provider: Send + Sync + 'static {
    /// A short stable name stored with each delivery attempt (`console`, `twilio`, …).
    fn name(&self) -> &'static str;

    /// Sends one message; returns the provider's message id.
    fn send(&self, job: &DeliveryJob)
    -> impl Future<Output = Result<String, ProviderError>> + Send;
}
