//! Delivery: the [`Provider`] port with the built-in console provider and dev inbox, the
//! delivery worker that sends queued codes, and the durable status-callback worker.

pub mod callbacks;
pub mod console;
pub mod metrics;
pub mod outbound;
pub mod provider;
pub mod routing;
pub mod webhooks;
pub mod worker;

pub use callbacks::{CallbackPolicy, CallbackWorker};
pub use console::{ConsoleProvider, Inbox, InboxMessage};
pub use metrics::{Metrics, SharedMetrics};
pub use outbound::Outbound;
pub use provider::{
    Accepted, BoxFuture, InboundRequest, Message, Provider, Receipt, ReceiptError, ReceiptReply,
    SendError,
};
pub use routing::{BreakerPolicy, ProviderRouter, RouteTable, RoutingError};
pub use webhooks::{WebhookWorker, webhook_body};
pub use worker::{ChannelDispatch, DeliveryPolicy, DeliveryWorker, ReceiptHandlingError};
