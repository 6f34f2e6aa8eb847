//! Behaviours of the status callback outbox.

use otpd_core::{Store, VerificationStatus};

use crate::support::*;

/// A status change of a verification with a callback URL queues exactly one callback, which
/// can be claimed, retried and finally delivered.
pub(crate) async fn status_changes_queue_callbacks<S: Store>(store: S) {
    let service = service(&store).await;
    let (v, d) = sample(service, 5, Some("https://example.com/cb"));
    store.create_verification(&v, &d).await.unwrap();
    store
        .check_code(v.id, service, typed(v.id, "000000"), T0)
        .await
        .unwrap();
    assert!(
        store
            .claim_due_callbacks(T0, T0.plus_seconds(30), 10)
            .await
            .unwrap()
            .is_empty()
    );
    store
        .check_code(v.id, service, typed(v.id, CODE), T0)
        .await
        .unwrap();
    let jobs = store
        .claim_due_callbacks(T0, T0.plus_seconds(30), 10)
        .await
        .unwrap();
    assert_eq!(jobs.len(), 1);
    assert_eq!(jobs[0].status, VerificationStatus::Approved);
    assert_eq!(jobs[0].url, "https://example.com/cb");
    assert_eq!(jobs[0].verification.id, v.id);
    assert!(
        store
            .claim_due_callbacks(T0, T0.plus_seconds(30), 10)
            .await
            .unwrap()
            .is_empty()
    );
    store
        .callback_failed(jobs[0].id, Some(T0.plus_seconds(1)), "HTTP 500", T0)
        .await
        .unwrap();
    let retry = store
        .claim_due_callbacks(T0.plus_seconds(1), T0.plus_seconds(60), 10)
        .await
        .unwrap();
    assert_eq!(retry.len(), 1);
    assert_eq!(retry[0].attempts, 1);
    store
        .callback_delivered(retry[0].id, T0.plus_seconds(1))
        .await
        .unwrap();
    let later = store
        .claim_due_callbacks(T0.plus_seconds(3600), T0.plus_seconds(3700), 10)
        .await
        .unwrap();
    assert!(later.is_empty());
}

/// A callback that gives up is never claimed again.
pub(crate) async fn abandoned_callbacks_stay_abandoned<S: Store>(store: S) {
    let service = service(&store).await;
    let (v, d) = sample(service, 5, Some("https://example.com/cb"));
    store.create_verification(&v, &d).await.unwrap();
    store
        .set_status(v.id, service, VerificationStatus::Canceled, T0)
        .await
        .unwrap();
    let jobs = store.claim_due_callbacks(T0, T0, 10).await.unwrap();
    assert_eq!(jobs[0].status, VerificationStatus::Canceled);
    store
        .callback_failed(jobs[0].id, None, "gone", T0)
        .await
        .unwrap();
    let later = T0.plus_seconds(86_400);
    assert!(
        store
            .claim_due_callbacks(later, later, 10)
            .await
            .unwrap()
            .is_empty()
    );
}
