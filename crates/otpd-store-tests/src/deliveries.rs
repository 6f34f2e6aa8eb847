//! Behaviours of the delivery outbox: leases, outcomes, receipts and fallbacks, and the
//! report's rows.

use otpd_core::events::AttemptFilter;
use otpd_core::report::Outcome;
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

/// The report's rows: one per verification with sends in the filter, aggregated over those
/// sends — the provider of the last send that had one, FAILED only when every send failed,
/// the approval's times, the prices summed — with the filter's service, time, prefix and
/// limit honoured.
pub(crate) async fn report_rows_aggregate_each_verification_sends<S: Store>(store: S) {
    let service = service(&store).await;
    let at = |seconds| T0.plus_seconds(seconds);
    let made_at = |seconds| {
        let (mut v, _) = sample(service, 5, None);
        v.created_at = at(seconds);
        v.updated_at = at(seconds);
        v.expires_at = at(seconds + 600);
        let d = otpd_core::DeliveryAttempt::queued(v.id, otpd_core::Channel::Sms, at(seconds));
        (v, d)
    };
    let outcome = |status, provider: Option<&str>, price| DeliveryUpdate {
        provider: provider.map(str::to_string),
        price,
        ..DeliveryUpdate::status(status)
    };
    let resend = |v: &otpd_core::Verification, seconds| {
        let d = otpd_core::DeliveryAttempt::queued(v.id, otpd_core::Channel::Sms, at(seconds));
        let store = &store;
        let id = v.id;
        async move {
            store.resend(id, &d, None, 5, at(seconds)).await.unwrap();
            d.id
        }
    };

    // Sent before the window: left out by `since`.
    let (early, d) = made_at(-100);
    store.create_verification(&early, &d).await.unwrap();
    // Refused by alpha, then sent by beta, then a third send still queued (no provider).
    let (retried, d) = made_at(10);
    store.create_verification(&retried, &d).await.unwrap();
    store
        .update_delivery(
            d.id,
            &outcome(DeliveryStatus::Failed, Some("alpha"), Some(0.25)),
            at(11),
        )
        .await
        .unwrap();
    let second = resend(&retried, 20).await;
    store
        .update_delivery(
            second,
            &outcome(DeliveryStatus::Sent, Some("beta"), Some(0.5)),
            at(21),
        )
        .await
        .unwrap();
    resend(&retried, 30).await;
    // Every send failed (the second before any provider took it).
    let (failed, d) = made_at(40);
    store.create_verification(&failed, &d).await.unwrap();
    store
        .update_delivery(
            d.id,
            &outcome(DeliveryStatus::Failed, Some("alpha"), None),
            at(41),
        )
        .await
        .unwrap();
    let second = resend(&failed, 50).await;
    store
        .update_delivery(second, &outcome(DeliveryStatus::Failed, None, None), at(51))
        .await
        .unwrap();
    // Sent by alpha, approved 42 s after its start.
    let (approved, d) = made_at(60);
    store.create_verification(&approved, &d).await.unwrap();
    store
        .update_delivery(
            d.id,
            &outcome(DeliveryStatus::Sent, Some("alpha"), Some(0.125)),
            at(61),
        )
        .await
        .unwrap();
    store
        .check_code(approved.id, service, typed(approved.id, CODE), at(102))
        .await
        .unwrap();
    // Another service's, in the window.
    let elsewhere = crate::support::service(&store).await;
    let (other, _) = sample(elsewhere, 5, None);
    let other = otpd_core::Verification {
        created_at: at(70),
        updated_at: at(70),
        expires_at: at(670),
        ..other
    };
    let d = otpd_core::DeliveryAttempt::queued(other.id, otpd_core::Channel::Sms, at(70));
    store.create_verification(&other, &d).await.unwrap();

    let filter = AttemptFilter {
        service: Some(service),
        since: Some(T0),
        limit: 100,
        ..AttemptFilter::default()
    };
    let rows = store.report_rows(&filter).await.unwrap();
    let seen: Vec<_> = rows
        .iter()
        .map(|r| {
            (
                r.created_at,
                r.provider.as_deref(),
                r.approved,
                r.all_failed,
                r.spend,
            )
        })
        .collect();
    assert_eq!(
        seen,
        vec![
            (at(10), Some("beta"), false, false, 0.75),
            (at(40), Some("alpha"), false, true, 0.0),
            (at(60), Some("alpha"), true, false, 0.125),
        ],
        "oldest first, one row per verification of the service sent since T0"
    );
    let approved_row = &rows[2];
    assert_eq!(approved_row.updated_at, at(102));
    assert_eq!(
        (
            approved_row.service_id,
            approved_row.channel.as_str(),
            approved_row.country.as_deref()
        ),
        (service, "sms", Some("FR"))
    );
    let outcomes: Vec<_> = rows.iter().map(|r| r.outcome()).collect();
    assert_eq!(outcomes, [Outcome::Sent, Outcome::Failed, Outcome::Success]);
    // A store may read a filter by time and service otherwise than one by account (SQLite
    // does): both answer the same rows.
    let account = store.service(service).await.unwrap().unwrap().account_id;
    let by_account = AttemptFilter {
        account: Some(account),
        ..filter.clone()
    };
    assert_eq!(store.report_rows(&by_account).await.unwrap(), rows);

    let everything = AttemptFilter {
        limit: 100,
        ..AttemptFilter::default()
    };
    let all = store.report_rows(&everything).await.unwrap();
    assert_eq!(all.len(), 5, "every service, every time");
    assert_eq!(all.iter().filter(|r| r.service_id == elsewhere).count(), 1);

    let newest_two = AttemptFilter {
        newest_first: true,
        limit: 2,
        ..filter.clone()
    };
    let times: Vec<_> = store
        .report_rows(&newest_two)
        .await
        .unwrap()
        .iter()
        .map(|r| r.created_at)
        .collect();
    assert_eq!(times, [at(60), at(40)], "the limit counts verifications");

    // Only the sends in the window count: the retried one's first send is before it.
    let later = AttemptFilter {
        since: Some(at(15)),
        until: Some(at(45)),
        ..filter.clone()
    };
    let rows = store.report_rows(&later).await.unwrap();
    let seen: Vec<_> = rows
        .iter()
        .map(|r| (r.created_at, r.provider.as_deref(), r.all_failed, r.spend))
        .collect();
    assert_eq!(
        seen,
        vec![
            (at(10), Some("beta"), false, 0.5),
            (at(40), Some("alpha"), true, 0.0)
        ]
    );

    // A prefix longer than the clear part opens the destinations, and the limit follows.
    let matching = AttemptFilter {
        prefix: Some("+336123456".into()),
        limit: 2,
        ..filter.clone()
    };
    assert_eq!(store.report_rows(&matching).await.unwrap().len(), 2);
    let none = AttemptFilter {
        prefix: Some("+336129999".into()),
        ..filter.clone()
    };
    assert!(store.report_rows(&none).await.unwrap().is_empty());
}
