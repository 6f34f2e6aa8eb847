//! Console operators and their sign-in sessions.

use std::future::Future;

use crate::clock::Timestamp;
use crate::ids::OperatorId;
use crate::operators::{Operator, OperatorSession};
use crate::store::StoreError;

/// The people who sign in to the console, and their sessions. Sessions live in the database
/// so that every node honours them and a sign-out everywhere holds at once.
pub trait OperatorStore: Send + Sync + 'static {
    /// Stores a new operator; [`StoreError::Conflict`] when the email is taken (emails are
    /// compared as stored: the caller lower-cases them).
    fn create_operator(
        &self,
        operator: &Operator,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// An operator by id.
    fn operator(
        &self,
        id: OperatorId,
    ) -> impl Future<Output = Result<Option<Operator>, StoreError>> + Send;

    /// An operator by (lower-cased) email.
    fn operator_by_email(
        &self,
        email: &str,
    ) -> impl Future<Output = Result<Option<Operator>, StoreError>> + Send;

    /// An operator by the hash of an unused invitation token.
    fn operator_by_invitation(
        &self,
        invitation_hash: [u8; 32],
    ) -> impl Future<Output = Result<Option<Operator>, StoreError>> + Send;

    /// Every operator, oldest first.
    fn operators(&self) -> impl Future<Output = Result<Vec<Operator>, StoreError>> + Send;

    /// Replaces every field of the operator `operator.id` but its id, email and creation
    /// time; false when there is no such operator.
    fn update_operator(
        &self,
        operator: &Operator,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Counts one failed sign-in of `id` atomically (two nodes failing at once both count)
    /// and, when the count reaches `lock_after`, locks the operator until `locked_until` and
    /// resets the count; answers the count after this failure (0 when it just locked).
    fn record_failed_sign_in(
        &self,
        id: OperatorId,
        lock_after: u32,
        locked_until: Timestamp,
    ) -> impl Future<Output = Result<u32, StoreError>> + Send;

    /// Stores a new session.
    fn create_session(
        &self,
        session: &OperatorSession,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// A session by the hash of its token.
    fn session(
        &self,
        token_hash: [u8; 32],
    ) -> impl Future<Output = Result<Option<OperatorSession>, StoreError>> + Send;

    /// Moves a session's `last_seen_at` to `at`; false when it is gone.
    fn touch_session(
        &self,
        token_hash: [u8; 32],
        at: Timestamp,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Ends one session; false when it was gone.
    fn delete_session(
        &self,
        token_hash: [u8; 32],
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Ends every session of an operator (sign-out everywhere, disable, password reset);
    /// how many there were.
    fn delete_sessions_of(
        &self,
        operator: OperatorId,
    ) -> impl Future<Output = Result<u64, StoreError>> + Send;

    /// Removes sessions idle since before `idle_before` or created before `created_before`
    /// (the session sweeper); how many.
    fn delete_stale_sessions(
        &self,
        idle_before: Timestamp,
        created_before: Timestamp,
    ) -> impl Future<Output = Result<u64, StoreError>> + Send;
}
