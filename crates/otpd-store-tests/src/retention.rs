//! Behaviours of retention: daily rollups and batched purges.

use otpd_core::events::AttemptFilter;
use otpd_core::retention::{DAY_MS, PurgeKind, RetentionPolicy, day_start, purge_pass};
use otpd_core::store::{DeliveryAttempt, DeliveryUpdate};
use otpd_core::{Channel, DeliveryStatus, Store, Timestamp, Verification, VerificationStatus};

use crate::support::*;

/// A day far enough ahead that every id made now sorts before its rows' times (purges bound
/// their scans by the time-ordered ids).
fn base_day() -> Timestamp {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_millis() as i64;
    day_start(Timestamp(now + 10 * DAY_MS))
}

/// A pending verification of `service` created at `at`, and its queued delivery.
fn made_at(service: otpd_core::ServiceId, at: Timestamp) -> (Verification, DeliveryAttempt) {
    let (mut v, _) = sample(service, 5, None);
    v.created_at = at;
    v.updated_at = at;
    v.expires_at = at.plus_seconds(600);
    let d = DeliveryAttempt::queued(v.id, Channel::Sms, at);
    (v, d)
}

fn policy(days: u32) -> RetentionPolicy {
    RetentionPolicy {
        verifications_days: days,
        events_days: days,
        delivery_logs_days: days,
        counters_days: days,
        batch: 2,
    }
}

/// Only finished verifications older than the window go (with their deliveries and events);
/// a pending one and a newer one stay, and so do counters inside their window.
pub(crate) async fn purging_respects_windows_and_never_touches_pending_verifications<S: Store>(
    store: S,
) {
    let service = service(&store).await;
    let base = base_day();
    let mut old = Vec::new();
    for n in 0..3 {
        let (v, d) = made_at(service, base.plus_seconds(3600 + n));
        store.create_verification(&v, &d).await.unwrap();
        store
            .check_code(v.id, service, typed(v.id, CODE), base.plus_seconds(3700))
            .await
            .unwrap();
        old.push(v.id);
    }
    let (pending, d) = made_at(service, base.plus_seconds(7200));
    store.create_verification(&pending, &d).await.unwrap();
    let (newer, d) = made_at(service, base.plus_seconds(2 * 86_400));
    store.create_verification(&newer, &d).await.unwrap();
    store
        .check_code(
            newer.id,
            service,
            typed(newer.id, CODE),
            base.plus_seconds(2 * 86_400 + 5),
        )
        .await
        .unwrap();
    store
        .rate_hit("rl:old", 60_000, 10, base.plus_seconds(60))
        .await
        .unwrap();
    let recent = base.plus_seconds(2 * 86_400);
    store.rate_hit("rl:new", 60_000, 10, recent).await.unwrap();

    let now = base.plus_seconds(2 * 86_400 + 3600);
    let counts = purge_pass(&store, &policy(1), now).await.unwrap();
    assert_eq!(
        counts.rolled_up_days, 1,
        "the base day is rolled up, the next is not yet over"
    );
    assert!(
        counts.deleted.contains(&(PurgeKind::Verifications, 3)),
        "{counts:?}"
    );
    for id in &old {
        assert!(store.verification(*id).await.unwrap().is_none());
        assert!(store.deliveries(*id).await.unwrap().is_empty());
    }
    let account = store.service(service).await.unwrap().unwrap().account_id;
    let events = store
        .events(&events_of(account, service, old[0], None))
        .await
        .unwrap();
    assert!(events.is_empty(), "events past their window go: {events:?}");
    let kept = store.verification(pending.id).await.unwrap().unwrap();
    assert_eq!(kept.status, VerificationStatus::Pending);
    assert_eq!(store.deliveries(pending.id).await.unwrap().len(), 1);
    assert!(store.verification(newer.id).await.unwrap().is_some());
    let window = 10 * DAY_MS;
    assert_eq!(
        store.rate_count("rl:old", window, now).await.unwrap().count,
        0
    );
    assert_eq!(
        store.rate_count("rl:new", window, now).await.unwrap().count,
        1
    );

    // Again, and with every window off: nothing more goes.
    let again = purge_pass(&store, &policy(1), now).await.unwrap();
    assert!(again.deleted.iter().all(|(_, n)| *n == 0), "{again:?}");
    let off = purge_pass(&store, &policy(0), now.plus_seconds(30 * 86_400))
        .await
        .unwrap();
    assert_eq!(off, Default::default());
    assert!(store.verification(newer.id).await.unwrap().is_some());
}

/// After a day is rolled up and purged, its rollups answer what its rows answered: the
/// attempts and conversions of the Summary, and the report's FAILED/SENT/SUCCESS with
/// seconds to approval; rolling up again (another node) counts nothing twice.
pub(crate) async fn a_rolled_up_day_answers_as_its_rows_did<S: Store + Clone>(store: S) {
    let service = service(&store).await;
    let account = store.service(service).await.unwrap().unwrap().account_id;
    let base = base_day();
    // Approved after 42 s, sent and canceled, failed everywhere.
    let (approved, d) = made_at(service, base.plus_seconds(100));
    store.create_verification(&approved, &d).await.unwrap();
    let update = |status, provider: &str| DeliveryUpdate {
        provider: Some(provider.to_string()),
        ..DeliveryUpdate::status(status)
    };
    store
        .update_delivery(
            d.id,
            &update(DeliveryStatus::Sent, "alpha"),
            base.plus_seconds(101),
        )
        .await
        .unwrap();
    store
        .check_code(
            approved.id,
            service,
            typed(approved.id, CODE),
            base.plus_seconds(142),
        )
        .await
        .unwrap();
    let (canceled, d) = made_at(service, base.plus_seconds(200));
    store.create_verification(&canceled, &d).await.unwrap();
    store
        .update_delivery(
            d.id,
            &update(DeliveryStatus::Sent, "alpha"),
            base.plus_seconds(201),
        )
        .await
        .unwrap();
    store
        .set_status(
            canceled.id,
            service,
            VerificationStatus::Canceled,
            base.plus_seconds(250),
        )
        .await
        .unwrap();
    let (failed, d) = made_at(service, base.plus_seconds(300));
    store.create_verification(&failed, &d).await.unwrap();
    store
        .update_delivery(
            d.id,
            &update(DeliveryStatus::Failed, "beta"),
            base.plus_seconds(301),
        )
        .await
        .unwrap();
    store
        .set_status(
            failed.id,
            service,
            VerificationStatus::Canceled,
            base.plus_seconds(350),
        )
        .await
        .unwrap();

    let day = AttemptFilter {
        account: Some(account),
        since: Some(base),
        until: Some(base.plus_millis(DAY_MS)),
        ..AttemptFilter::default()
    };
    let before = store.attempt_summary(&day).await.unwrap();
    assert_eq!((before.total, before.converted), (3, 1));

    let now = base.plus_millis(2 * DAY_MS);
    let one = policy(1);
    let (a, b) = tokio::join!(purge_pass(&store, &one, now), purge_pass(&store, &one, now));
    assert_eq!(a.unwrap().rolled_up_days + b.unwrap().rolled_up_days, 1);
    purge_pass(&store, &policy(1), now).await.unwrap();
    let mark = store.rolled_up_before().await.unwrap();
    assert_eq!(mark, base.plus_millis(DAY_MS));
    assert!(store.verification(approved.id).await.unwrap().is_none());
    assert_eq!(
        store.attempt_summary(&day).await.unwrap().total,
        0,
        "the rows are gone"
    );

    let rolled = store.attempt_rollups(&day, mark).await.unwrap();
    assert_eq!(rolled, before);
    let sms = AttemptFilter {
        channel: Some("sms".into()),
        prefix: Some("+336".into()),
        country: Some("FR".into()),
        ..day.clone()
    };
    assert_eq!(store.attempt_rollups(&sms, mark).await.unwrap(), before);
    let other = AttemptFilter {
        channel: Some("email".into()),
        ..day.clone()
    };
    assert_eq!(store.attempt_rollups(&other, mark).await.unwrap().total, 0);
    let later = AttemptFilter {
        since: Some(base.plus_millis(DAY_MS)),
        ..day.clone()
    };
    assert_eq!(store.attempt_rollups(&later, mark).await.unwrap().total, 0);

    let mut report = store.report_rollups(&day, mark).await.unwrap();
    report.sort_by_key(|r| (r.provider.clone(), r.approve_seconds));
    let figures: Vec<_> = report
        .iter()
        .map(|r| {
            (
                r.provider.as_deref(),
                r.approve_seconds,
                r.failed,
                r.sent,
                r.success,
            )
        })
        .collect();
    assert_eq!(
        figures,
        vec![
            (Some("alpha"), None, 0, 1, 0),
            (Some("alpha"), Some(42), 0, 0, 1),
            (Some("beta"), None, 1, 0, 0),
        ]
    );
    assert!(
        report
            .iter()
            .all(|r| r.channel == "sms" && r.service_id == service)
    );
}
