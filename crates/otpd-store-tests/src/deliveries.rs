//! Behaviours of the delivery outbox: leases, outcomes, receipts and fallbacks.

use otpd_core::store::{DeliveryUpdate, ReceiptUpdate};
use otpd_core::{DeliveryStatus, Store};

use crate::support::*;

/// A queued delivery is leased to its writer; once the lease runs out exactly one claimer
/// takes it over (and holds it for a new lease); sent deliveries are never claimed.
pub(crate) async fn stale_deliveries_are_claimed_once<S: Store>(store: S) {
    let service = service(&store).await;
    let (v, d) = sample(service, 5, None);
    store.create_verification(&v, &d).await.unwrap();
    let (sent, sent_d) = sample(service, 5, None);
    store.create_verification(&sent, &sent_d).await.unwrap();
    store
        .update_delivery(sent_d.id, &sent_by("console", "msg-1"), T0)
        .await
        .unwrap();
    let lease = otpd_core::store::DELIVERY_LEASE_SECONDS;
    let early = store
        .claim_stale_deliveries(T0.plus_seconds(lease - 1), T0.plus_seconds(2 * lease), 10)
        .await
        .unwrap();
    assert!(early.is_empty(), "the writer's lease still holds");
    let later = T0.plus_seconds(lease);
    let queued = store
        .claim_stale_deliveries(later, later.plus_seconds(lease), 10)
        .await
        .unwrap();
    assert_eq!(queued.len(), 1);
    assert_eq!(queued[0].0.id, d.id);
    assert_eq!(queued[0].1.id, v.id);
    let again = store
        .claim_stale_deliveries(later, later.plus_seconds(lease), 10)
        .await
        .unwrap();
    assert!(again.is_empty(), "claimed once");
    let much_later = later.plus_seconds(lease);
    let retaken = store
        .claim_stale_deliveries(much_later, much_later.plus_seconds(lease), 10)
        .await
        .unwrap();
    assert_eq!(retaken.len(), 1, "a claimer that died loses its lease too");
    let updated = &store.deliveries(sent.id).await.unwrap()[0];
    assert_eq!(updated.status, DeliveryStatus::Sent);
    assert_eq!(updated.provider.as_deref(), Some("console"));
    assert_eq!(updated.provider_ref.as_deref(), Some("msg-1"));
}

/// A delivery's first outcome, once recorded, is what every later read and write sees, even
/// where the store returns before it commits (SQLite): the start answering with it never
/// disagrees with a read of the attempt or its events, and a receipt right after finds it.
pub(crate) async fn a_first_outcome_is_seen_by_what_follows<S: Store>(store: S) {
    let service = service(&store).await;
    let account = store.service(service).await.unwrap().unwrap().account_id;
    for n in 0..20 {
        let (v, d) = sample(service, 5, None);
        store.create_verification(&v, &d).await.unwrap();
        let reference = format!("SM-first-{n}");
        store
            .record_first_outcome(d.id, &sent_by("twilio", &reference), T0)
            .await
            .unwrap();
        let read = store.deliveries(v.id).await.unwrap();
        assert_eq!(read[0].status, DeliveryStatus::Sent, "read {n}");
        assert_eq!(read[0].provider_ref.as_deref(), Some(reference.as_str()));
        let events = store
            .events(&events_of(account, service, v.id, Some("delivery.sent")))
            .await
            .unwrap();
        assert_eq!(events.len(), 1, "the sent event of read {n}");
        let next = format!("SM-next-{n}");
        let receipt = ReceiptUpdate {
            provider: "twilio".into(),
            provider_ref: next.clone(),
            status: DeliveryStatus::Delivered,
            error_code: None,
            price: None,
            segments: None,
        };
        let (v2, d2) = sample(service, 5, None);
        store.create_verification(&v2, &d2).await.unwrap();
        store
            .record_first_outcome(d2.id, &sent_by("twilio", &next), T0)
            .await
            .unwrap();
        // A write queued right after the unconfirmed record finds it.
        let found = store.record_receipt(&receipt, T0).await.unwrap();
        assert_eq!(found.map(|a| a.id), Some(d2.id), "receipt {n}");
    }
}

/// Receipts find their attempt by provider and message id, record price, parts and error
/// code, and never move a status backwards (late, duplicated or out-of-order receipts).
pub(crate) async fn receipts_only_move_forward<S: Store>(store: S) {
    let service = service(&store).await;
    let (v, d) = sample(service, 5, None);
    store.create_verification(&v, &d).await.unwrap();
    let update = DeliveryUpdate {
        segments: Some(1),
        price_unit: Some("USD".into()),
        ..sent_by("twilio-main", "SM1")
    };
    store.update_delivery(d.id, &update, T0).await.unwrap();
    let receipt = |status, provider: &str, reference: &str| ReceiptUpdate {
        provider: provider.to_string(),
        provider_ref: reference.to_string(),
        status,
        error_code: None,
        price: Some(0.0079),
        segments: Some(2),
    };
    let unknown = store
        .record_receipt(
            &receipt(DeliveryStatus::Delivered, "twilio-main", "SM2"),
            T0,
        )
        .await
        .unwrap();
    assert!(unknown.is_none(), "no attempt has that message id");
    let other_provider = store
        .record_receipt(&receipt(DeliveryStatus::Delivered, "vonage", "SM1"), T0)
        .await
        .unwrap();
    assert!(other_provider.is_none(), "message ids are per provider");
    let delivered = store
        .record_receipt(
            &receipt(DeliveryStatus::Delivered, "twilio-main", "SM1"),
            T0,
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(delivered.status, DeliveryStatus::Delivered);
    assert_eq!(delivered.price, Some(0.0079));
    assert_eq!(delivered.segments, Some(2));
    assert_eq!(delivered.price_unit.as_deref(), Some("USD"));
    let late = ReceiptUpdate {
        error_code: Some("30003".into()),
        ..receipt(DeliveryStatus::Sent, "twilio-main", "SM1")
    };
    let kept = store.record_receipt(&late, T0).await.unwrap().unwrap();
    assert_eq!(
        kept.status,
        DeliveryStatus::Delivered,
        "a late `sent` changes nothing"
    );
    let undelivered = receipt(DeliveryStatus::Undelivered, "twilio-main", "SM1");
    let kept = store
        .record_receipt(&undelivered, T0)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        kept.status,
        DeliveryStatus::Delivered,
        "final states are final"
    );
    assert_eq!(store.deliveries(v.id).await.unwrap()[0], kept);
}

/// A sent attempt with a fallback timer is claimed once when the timer is due, at once when
/// an `undelivered` receipt arrives, and never when a receipt says `delivered`.
pub(crate) async fn fallbacks_are_due_once<S: Store>(store: S) {
    let service = service(&store).await;
    let mut attempts = Vec::new();
    for reference in ["WA-timer", "WA-undelivered", "WA-delivered"] {
        let (v, d) = sample(service, 5, None);
        store.create_verification(&v, &d).await.unwrap();
        let update = DeliveryUpdate {
            fallback_at: Some(T0.plus_seconds(30)),
            ..sent_by("meta", reference)
        };
        store.update_delivery(d.id, &update, T0).await.unwrap();
        attempts.push((v, d));
    }
    let receipt = |reference: &str, status| ReceiptUpdate {
        provider: "meta".into(),
        provider_ref: reference.into(),
        status,
        error_code: Some("131026".into()),
        price: None,
        segments: None,
    };
    let now = T0.plus_seconds(5);
    store
        .record_receipt(&receipt("WA-undelivered", DeliveryStatus::Undelivered), now)
        .await
        .unwrap();
    store
        .record_receipt(&receipt("WA-delivered", DeliveryStatus::Delivered), now)
        .await
        .unwrap();
    let due = store.claim_due_fallbacks(now, 10).await.unwrap();
    assert_eq!(due.len(), 1, "only the undelivered one is due early");
    assert_eq!(due[0].0.id, attempts[1].1.id);
    assert_eq!(due[0].0.error_code.as_deref(), Some("131026"));
    assert_eq!(due[0].1.id, attempts[1].0.id);
    assert!(
        store.claim_due_fallbacks(now, 10).await.unwrap().is_empty(),
        "claimed once"
    );
    let later = T0.plus_seconds(30);
    let due = store.claim_due_fallbacks(later, 10).await.unwrap();
    assert_eq!(
        due.len(),
        1,
        "the timer fires; the delivered one never does"
    );
    assert_eq!(due[0].0.id, attempts[0].1.id);
    assert!(
        store
            .claim_due_fallbacks(later.plus_seconds(600), 10)
            .await
            .unwrap()
            .is_empty()
    );
}
