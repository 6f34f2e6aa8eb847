//! The audit log, on either backend.

use otpd_core::StoreError;
use otpd_core::audit::{AuditDraft, AuditEntry, AuditFilter};
use otpd_core::store::AuditStore;

use super::AnyStore;

impl AuditStore for AnyStore {
    async fn append_audit(&self, draft: &AuditDraft) -> Result<AuditEntry, StoreError> {
        delegate!(self, s => s.append_audit(draft))
    }

    async fn audit(&self, filter: &AuditFilter) -> Result<Vec<AuditEntry>, StoreError> {
        delegate!(self, s => s.audit(filter))
    }

    async fn audit_chain(&self, after_seq: i64, limit: u32) -> Result<Vec<AuditEntry>, StoreError> {
        delegate!(self, s => s.audit_chain(after_seq, limit))
    }
}
