//! The storage ports, one trait per concern. Each backend (SQLite, PostgreSQL) implements
//! every one, one file per trait, and must pass the shared behaviour suite in
//! `otpd-store-tests`; each user of the store asks only for the traits it uses.

mod audit;
mod callbacks;
mod deliveries;
mod destinations;
mod events;
mod keys;
mod limits;
mod operators;
mod retention;
mod tenants;
mod verifications;

pub use audit::AuditStore;
pub use callbacks::{CallbackJob, CallbackStore};
pub use deliveries::{DeliveryStore, OutboxStats};
pub use destinations::DestinationStore;
pub use events::EventStore;
pub use keys::KeyStore;
pub use limits::LimitStore;
pub use operators::OperatorStore;
pub use retention::RetentionStore;
pub use tenants::TenantStore;
pub use verifications::{CheckResult, ResendOutcome, StartDecision, StartPlan, VerificationStore};

pub use crate::abuse::{LimitHit, Quarantine, RateCount, SafeNumber, Spend};
pub use crate::audit::{AuditDraft, AuditEntry, AuditFilter};
pub use crate::delivery::{
    DELIVERY_LEASE_SECONDS, DeliveryAttempt, DeliveryUpdate, ReceiptUpdate, TransmissionSummary,
};
pub use crate::destinations::{
    DestinationRecords, DestinationVerification, ErasureCounts, SafeListed,
};
pub use crate::tenants::ServiceRecord;

/// A storage failure. Never a client's fault, so dialects answer it with a 5xx.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database refused the statement.
    #[error("database error: {0}")]
    Database(String),
    /// The database cannot be reached right now (connection lost, pool exhausted, timeout);
    /// worth retrying, so dialects answer 503.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// A row did not decode into a valid domain value (corruption or a migration bug).
    #[error("corrupt row: {0}")]
    Corrupt(String),
    /// A uniqueness rule was broken (duplicate id or name).
    #[error("conflict: {0}")]
    Conflict(String),
    /// The configured server secret does not open what the database holds (at open only).
    #[error("{0}")]
    WrongKey(String),
}

/// Every storage port at once, for code that really needs them all (the HTTP state, the
/// binary's wiring). Implemented for every type that implements each port.
pub trait Store:
    VerificationStore
    + DeliveryStore
    + TenantStore
    + LimitStore
    + EventStore
    + CallbackStore
    + AuditStore
    + DestinationStore
    + KeyStore
    + RetentionStore
    + OperatorStore
{
}

impl<T> Store for T where
    T: VerificationStore
        + DeliveryStore
        + TenantStore
        + LimitStore
        + EventStore
        + CallbackStore
        + AuditStore
        + DestinationStore
        + KeyStore
        + RetentionStore
        + OperatorStore
{
}
