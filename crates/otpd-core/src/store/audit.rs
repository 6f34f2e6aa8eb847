//! The audit log: append-only, one hash chain.

use std::future::Future;

use crate::audit::{AuditDraft, AuditEntry, AuditFilter};
use crate::store::StoreError;

/// The audit log. There is no operation to change or remove an entry: the log only grows.
pub trait AuditStore: Send + Sync + 'static {
    /// Appends `draft` as the newest entry, linked to the entry that was newest: the position
    /// and previous hash are read and the entry written in one atomic step, serialised with
    /// every other append (on every node), so the chain never forks.
    fn append_audit(
        &self,
        draft: &AuditDraft,
    ) -> impl Future<Output = Result<AuditEntry, StoreError>> + Send;

    /// Entries matching `filter`, newest first, at most `filter.limit`.
    fn audit(
        &self,
        filter: &AuditFilter,
    ) -> impl Future<Output = Result<Vec<AuditEntry>, StoreError>> + Send;

    /// Up to `limit` entries after position `after_seq`, oldest first (to check the chain).
    fn audit_chain(
        &self,
        after_seq: i64,
        limit: u32,
    ) -> impl Future<Output = Result<Vec<AuditEntry>, StoreError>> + Send;
}
