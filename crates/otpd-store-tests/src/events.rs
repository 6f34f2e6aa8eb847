//! Behaviours of events and webhooks.

use otpd_core::store::{DeliveryUpdate, ReceiptUpdate};
use otpd_core::{AccountId, DeliveryStatus, Store, Timestamp, VerificationId, VerificationStatus};

use crate::support::*;

/// Every change writes exactly one event with it: a start (and its queued delivery), a wrong
/// code, an approval, a sent and a delivered delivery, a cancel, a sweep-found expiry.
/// Events fan out to the webhooks enabled when they are written: none before the first one
/// is created, every event while it is enabled, none once it is disabled (a store may cache
/// whether any webhook exists; this is what it must keep right).
pub(crate) async fn webhooks_get_the_events_written_while_enabled<S: Store>(store: S) {
    use otpd_core::events::Webhook;
    let service = service(&store).await;
    let (before, d) = sample(service, 5, None);
    store.create_verification(&before, &d).await.unwrap();
    let mut webhook = Webhook {
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
    assert!(store.webhook_log(webhook.id, 100).await.unwrap().is_empty());
    let (during, d) = sample(service, 5, None);
    store.create_verification(&during, &d).await.unwrap();
    let log = store.webhook_log(webhook.id, 100).await.unwrap();
    assert_eq!(log.len(), 2, "verification.started and delivery.queued");
    webhook.enabled = false;
    assert!(store.update_webhook(&webhook).await.unwrap());
    let (after, d) = sample(service, 5, None);
    store.create_verification(&after, &d).await.unwrap();
    assert_eq!(store.webhook_log(webhook.id, 100).await.unwrap().len(), 2);
    webhook.enabled = true;
    assert!(store.update_webhook(&webhook).await.unwrap());
    store
        .check_code(after.id, service, typed(after.id, "000000"), T0)
        .await
        .unwrap();
    assert_eq!(store.webhook_log(webhook.id, 100).await.unwrap().len(), 3);
}

pub(crate) async fn each_change_writes_one_event<S: Store>(store: S) {
    use otpd_core::events::EventFilter;
    let service = service(&store).await;
    let account = store.service(service).await.unwrap().unwrap().account_id;
    let kinds = |events: Vec<otpd_core::events::Event>| -> Vec<String> {
        events.into_iter().map(|e| e.kind).collect()
    };
    let filter = |verification: VerificationId| EventFilter {
        account,
        service: Some(service),
        verification: Some(verification),
        kind: None,
        since: None,
        until: None,
        after: None,
        limit: 100,
    };
    let (v, d) = sample(service, 5, None);
    store.create_verification(&v, &d).await.unwrap();
    store
        .check_code(v.id, service, typed(v.id, "000000"), T0)
        .await
        .unwrap();
    let priced = DeliveryUpdate {
        segments: Some(2),
        price: Some(0.0079),
        error_code: Some("30007".into()),
        ..sent_by("twilio", "SM-ev")
    };
    store.update_delivery(d.id, &priced, T0).await.unwrap();
    let sent = store.deliveries(v.id).await.unwrap().remove(0);
    let delivered = ReceiptUpdate {
        provider: "twilio".into(),
        provider_ref: "SM-ev".into(),
        status: DeliveryStatus::Delivered,
        error_code: None,
        price: None,
        segments: None,
    };
    store.record_receipt(&delivered, T0).await.unwrap();
    store.record_receipt(&delivered, T0).await.unwrap();
    store
        .check_code(v.id, service, typed(v.id, CODE), T0)
        .await
        .unwrap();
    store
        .check_code(v.id, service, typed(v.id, CODE), T0)
        .await
        .unwrap();
    let events = store.events(&filter(v.id)).await.unwrap();
    assert_eq!(
        kinds(events.clone()),
        [
            "verification.started",
            "delivery.queued",
            "verification.check_failed",
            "delivery.sent",
            "delivery.delivered",
            "verification.approved"
        ],
        "once each, in order; repeated receipts and checks add nothing"
    );
    assert_eq!(events[2].data["attempts"], 1);
    assert_eq!(events[4].data["provider"], "twilio");
    assert_eq!(
        events[3].data,
        serde_json::to_value(otpd_core::events::DeliveryEventData::of(&sent)).unwrap(),
        "a delivery event holds the attempt's state after the change, every field"
    );
    let keys: Vec<String> = events
        .iter()
        .flat_map(|e| {
            e.data
                .as_object()
                .unwrap()
                .keys()
                .cloned()
                .collect::<Vec<_>>()
        })
        .collect();
    assert!(
        keys.iter()
            .all(|k| k == "errorCode" || !k.to_lowercase().contains("code")),
        "no code in events: {keys:?}"
    );

    let (canceled, d2) = sample(service, 5, None);
    store.create_verification(&canceled, &d2).await.unwrap();
    store
        .set_status(canceled.id, service, VerificationStatus::Canceled, T0)
        .await
        .unwrap();
    let (expiring, d3) = sample(service, 5, None);
    store.create_verification(&expiring, &d3).await.unwrap();
    let later = T0.plus_seconds(600);
    let expired = store.expire_due(later, 100).await.unwrap();
    let ids: Vec<_> = expired.iter().map(|v| v.id).collect();
    assert!(ids.contains(&expiring.id) && !ids.contains(&canceled.id) && !ids.contains(&v.id));
    assert!(
        store.expire_due(later, 100).await.unwrap().is_empty(),
        "once"
    );
    let last = |events: Vec<otpd_core::events::Event>| events.last().unwrap().kind.clone();
    assert_eq!(
        last(store.events(&filter(canceled.id)).await.unwrap()),
        "verification.canceled"
    );
    assert_eq!(
        last(store.events(&filter(expiring.id)).await.unwrap()),
        "verification.expired"
    );

    let page = EventFilter {
        verification: None,
        kind: Some("verification.started".into()),
        limit: 2,
        ..filter(v.id)
    };
    let first = store.events(&page).await.unwrap();
    assert_eq!(first.len(), 2);
    let rest = store
        .events(&EventFilter {
            after: Some(first[1].id),
            ..page.clone()
        })
        .await
        .unwrap();
    assert_eq!(rest.len(), 1, "three starts in all, paged by id");
    let stranger = EventFilter {
        account: AccountId::generate(),
        ..page
    };
    assert!(
        store.events(&stranger).await.unwrap().is_empty(),
        "per account"
    );
}

/// Refused starts and alerts (the rare kinds, which have an index of their own) are found by
/// kind among ordinary events, per account, from a time and after a cursor.
pub(crate) async fn rare_kinds_are_found_by_kind<S: Store>(store: S) {
    use otpd_core::events::{Event, EventFilter};
    let service = service(&store).await;
    let account = store.service(service).await.unwrap().unwrap().account_id;
    let other = self::service(&store).await;
    let event = |service, kind: &str, at: i64| Event {
        id: uuid::Uuid::now_v7(),
        service_id: service,
        verification_id: None,
        kind: kind.to_string(),
        data: serde_json::json!({"reason": "rate_limited"}),
        created_at: Timestamp(T0.0 + at),
    };
    let (v, d) = sample(service, 5, None);
    store.create_verification(&v, &d).await.unwrap();
    for (service, kind, at) in [
        (service, "verification.blocked", 1),
        (service, "alert.approval_rate_dropped", 2),
        (other, "verification.blocked", 3),
        (service, "verification.blocked", 4),
        (service, "alert.approval_rate_recovered", 5),
        (service, "verification.blocked", 6),
    ] {
        store.record_event(&event(service, kind, at)).await.unwrap();
    }
    let blocked = EventFilter {
        account,
        service: None,
        verification: None,
        kind: Some("verification.blocked".into()),
        since: None,
        until: None,
        after: None,
        limit: 10,
    };
    let at =
        |events: Vec<Event>| -> Vec<i64> { events.iter().map(|e| e.created_at.0 - T0.0).collect() };
    assert_eq!(
        at(store.events(&blocked).await.unwrap()),
        [1, 4, 6],
        "this account's only"
    );
    let later = EventFilter {
        since: Some(Timestamp(T0.0 + 2)),
        ..blocked.clone()
    };
    let page = store
        .events(&EventFilter {
            limit: 1,
            ..later.clone()
        })
        .await
        .unwrap();
    assert_eq!(at(page.clone()), [4]);
    let rest = EventFilter {
        after: Some(page[0].id),
        ..later
    };
    assert_eq!(at(store.events(&rest).await.unwrap()), [6]);
    let alerts = EventFilter {
        kind: Some("alert.approval_rate_recovered".into()),
        ..blocked
    };
    assert_eq!(at(store.events(&alerts).await.unwrap()), [5]);
}

/// A webhook post given up on can be sent again: only a failed one, which becomes pending and
/// due at once, is claimed again, and its log says so.
pub(crate) async fn a_failed_webhook_post_is_replayed<S: Store>(store: S) {
    use otpd_core::events::{Webhook, WebhookOutcome};
    let service = service(&store).await;
    let webhook = Webhook {
        id: uuid::Uuid::now_v7(),
        service_id: service,
        url: "http://127.0.0.1:9/hook".into(),
        event_types: vec!["verification.started".into()],
        enabled: true,
        friendly_name: "hook".into(),
        created_at: T0,
        updated_at: T0,
    };
    store.create_webhook(&webhook).await.unwrap();
    let (v, d) = sample(service, 5, None);
    store.create_verification(&v, &d).await.unwrap();
    let later = otpd_core::Timestamp(T0.0 + 60_000);
    let jobs = store
        .claim_webhook_jobs(later, later.plus_seconds(30), 10)
        .await
        .unwrap();
    assert_eq!(jobs.len(), 1);
    let event = jobs[0].event.id;
    assert!(
        !store
            .replay_webhook_post(webhook.id, event, later)
            .await
            .unwrap(),
        "a post in flight is not failed: nothing to replay"
    );
    let gave_up = WebhookOutcome {
        status: Some(500),
        latency_ms: 3,
        error: Some("HTTP 500".into()),
        retry_at: None,
    };
    store
        .webhook_job_done(jobs[0].id, &gave_up, later)
        .await
        .unwrap();
    assert_eq!(
        store.webhook_log(webhook.id, 10).await.unwrap()[0].state,
        "failed"
    );
    let replay_at = later.plus_seconds(60);
    assert!(
        store
            .replay_webhook_post(webhook.id, event, replay_at)
            .await
            .unwrap()
    );
    let log = store.webhook_log(webhook.id, 10).await.unwrap();
    assert_eq!(log[0].state, "pending");
    assert_eq!(log[0].next_attempt_at, Some(replay_at));
    let again = store
        .claim_webhook_jobs(replay_at, replay_at.plus_seconds(30), 10)
        .await
        .unwrap();
    assert_eq!(again.len(), 1, "claimed again");
    assert_eq!(again[0].event.id, event);
    assert!(
        !store
            .replay_webhook_post(uuid::Uuid::now_v7(), event, replay_at)
            .await
            .unwrap(),
        "another webhook's post is not touched"
    );
}
