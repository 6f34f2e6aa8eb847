//! Behaviours of a destination's export and erasure.

use otpd_core::events::{Event, Webhook};
use otpd_core::store::{ErasureCounts, SafeNumber};
use otpd_core::{Recipient, ServiceId, Store, Verification, VerificationStatus};

use crate::support::*;

const X: &str = "+14155552671";
const Y: &str = "+14155552672";

/// A pending verification of `service` to `to`, with its queued delivery, written.
async fn sent_to<S: Store>(store: &S, service: ServiceId, to: &str) -> Verification {
    let (mut v, d) = sample(service, 5, Some("https://example.com/cb"));
    v.to = Recipient::parse(to, None).unwrap().0;
    store.create_verification(&v, &d).await.unwrap();
    v
}

/// A refused start's event, as the verifier writes it (the store seals `to`).
async fn blocked<S: Store>(store: &S, service: ServiceId, to: &str) {
    let event = Event {
        id: uuid::Uuid::now_v7(),
        service_id: service,
        verification_id: None,
        kind: "verification.blocked".into(),
        data: serde_json::json!({"reason": "blocked", "to": to, "channel": "sms"}),
        created_at: T0,
    };
    store.record_event(&event).await.unwrap();
}

async fn safe_list<S: Store>(store: &S, account: otpd_core::AccountId, phone: &str) {
    let entry = SafeNumber {
        id: uuid::Uuid::now_v7(),
        phone: phone.into(),
        created_at: T0,
    };
    store.add_safe_number(account, &entry).await.unwrap();
}

/// The export finds a destination's verifications with their deliveries and events, its
/// refused starts and its safe-list entries, of the account asked for only (or of every
/// account); the erasure cancels its pending verification, removes all of it (the
/// outboxes' rows too) and answers the counts, leaves other destinations and accounts
/// alone, and keeps the rate counters under its blind index.
pub(crate) async fn erasure_removes_every_row_of_a_destination<S: Store>(store: S) {
    let service = service(&store).await;
    let account = store.service(service).await.unwrap().unwrap().account_id;
    let other_service = crate::support::service(&store).await;
    let other = store
        .service(other_service)
        .await
        .unwrap()
        .unwrap()
        .account_id;
    let webhook = Webhook {
        id: uuid::Uuid::now_v7(),
        service_id: service,
        url: "http://127.0.0.1:9/hook".into(),
        event_types: vec!["*".into()],
        enabled: true,
        friendly_name: "hook".into(),
        created_at: T0,
        updated_at: T0,
    };
    store.create_webhook(&webhook).await.unwrap();
    let approved = sent_to(&store, service, X).await;
    store
        .check_code(approved.id, service, typed(approved.id, CODE), T0)
        .await
        .unwrap();
    let pending = sent_to(&store, service, X).await;
    let kept = sent_to(&store, service, Y).await;
    let elsewhere = sent_to(&store, other_service, X).await;
    blocked(&store, service, X).await;
    blocked(&store, service, Y).await;
    safe_list(&store, account, X).await;
    safe_list(&store, other, X).await;
    let lockout = format!("fail:{service}:{}", vault().blind(X).to_hex());
    store.rate_hit(&lockout, 60_000, 10, T0).await.unwrap();

    let records = store.destination_records(Some(account), X).await.unwrap();
    let ids: Vec<_> = records
        .verifications
        .iter()
        .map(|v| v.verification.id)
        .collect();
    assert_eq!(ids, vec![approved.id, pending.id]);
    assert_eq!(
        records.verifications[0].verification.status,
        VerificationStatus::Approved
    );
    assert!(
        records
            .verifications
            .iter()
            .all(|v| v.deliveries.len() == 1)
    );
    let events: usize = records.verifications.iter().map(|v| v.events.len()).sum();
    assert!(
        records.verifications[0]
            .events
            .iter()
            .any(|e| e.kind == "verification.approved" && e.data["to"] == X)
    );
    assert_eq!(records.blocked_starts.len(), 1);
    assert_eq!(records.blocked_starts[0].data["to"], X);
    assert_eq!(records.safe_list.len(), 1);
    assert_eq!(records.safe_list[0].account, account);
    assert_eq!(records.safe_list[0].entry.phone, X);
    let everywhere = store.destination_records(None, X).await.unwrap();
    assert_eq!(everywhere.verifications.len(), 3);
    assert_eq!(everywhere.safe_list.len(), 2);

    let counts = store
        .erase_destination(Some(account), X, T0.plus_seconds(1))
        .await
        .unwrap();
    assert_eq!(
        counts,
        ErasureCounts {
            verifications: 2,
            canceled: 1,
            deliveries: 2,
            events: events as u64 + 1,
            callbacks: 1,
            webhook_deliveries: events as u64 + 1,
            safe_list: 1,
        }
    );
    assert!(
        store
            .destination_records(Some(account), X)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(store.verification(pending.id).await.unwrap().is_none());
    assert!(store.deliveries(approved.id).await.unwrap().is_empty());
    assert!(
        store
            .claim_due_callbacks(T0.plus_seconds(60), T0.plus_seconds(90), 10)
            .await
            .unwrap()
            .is_empty(),
        "no callback is left to post"
    );
    let left = store.destination_records(Some(account), Y).await.unwrap();
    assert_eq!(left.verifications.len(), 1);
    assert_eq!(left.verifications[0].verification.id, kept.id);
    assert_eq!(left.blocked_starts.len(), 1);
    let log = store.webhook_log(webhook.id, 100).await.unwrap();
    assert!(
        log.iter()
            .all(|entry| entry.event_id != records.blocked_starts[0].id),
        "the erased events' webhook posts are gone"
    );
    assert_eq!(
        store
            .rate_count(&lockout, 60_000, T0.plus_seconds(1))
            .await
            .unwrap()
            .count,
        1,
        "the lockout counter stays"
    );

    let theirs = store.destination_records(Some(other), X).await.unwrap();
    assert_eq!(theirs.verifications.len(), 1);
    assert_eq!(theirs.verifications[0].verification.id, elsewhere.id);
    let rest = store
        .erase_destination(None, X, T0.plus_seconds(2))
        .await
        .unwrap();
    assert_eq!(
        (rest.verifications, rest.canceled, rest.safe_list),
        (1, 1, 1)
    );
    assert!(store.destination_records(None, X).await.unwrap().is_empty());
    assert_eq!(
        store
            .erase_destination(None, X, T0.plus_seconds(3))
            .await
            .unwrap(),
        ErasureCounts::default(),
        "erasing again finds nothing"
    );
}

/// An email destination is found and erased by its address as stored (domain lower-cased).
pub(crate) async fn erasure_finds_an_email_destination<S: Store>(store: S) {
    let service = service(&store).await;
    let account = store.service(service).await.unwrap().unwrap().account_id;
    let (mut v, d) = sample(service, 5, None);
    v.to = Recipient::parse("Ada@Example.com", None).unwrap().0;
    v.channel = otpd_core::Channel::Email;
    v.country = None;
    store.create_verification(&v, &d).await.unwrap();
    let records = store
        .destination_records(Some(account), "Ada@example.com")
        .await
        .unwrap();
    assert_eq!(records.verifications.len(), 1);
    let counts = store
        .erase_destination(Some(account), "Ada@example.com", T0)
        .await
        .unwrap();
    assert_eq!((counts.verifications, counts.canceled), (1, 1));
    assert!(store.verification(v.id).await.unwrap().is_none());
}
