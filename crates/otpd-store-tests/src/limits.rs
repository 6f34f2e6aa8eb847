//! Behaviours of the abuse counters: rate events, quarantines, spends and the safe list.

use otpd_core::{AccountId, ServiceId, Store, Timestamp};

use crate::support::*;

/// A sliding window counts exactly `limit` events however many callers race, forgets events
/// as they age out, and keeps keys apart.
pub(crate) async fn rate_limits_are_exact_and_slide<S: Store + Clone>(store: S) {
    let window = 600_000;
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move { store.rate_hit("dest:a", window, 5, T0).await.unwrap() })
        })
        .collect();
    let mut allowed = 0;
    for task in tasks {
        allowed += usize::from(task.await.unwrap().allowed);
    }
    assert_eq!(allowed, 5, "exactly the limit, whatever the race");
    let refused = store.rate_hit("dest:a", window, 5, T0).await.unwrap();
    assert!(!refused.allowed);
    assert_eq!(refused.count, 5);
    assert_eq!(refused.frees_at, Some(T0.plus_millis(window)));
    assert!(
        store
            .rate_hit("dest:b", window, 5, T0)
            .await
            .unwrap()
            .allowed,
        "keys are apart"
    );
    let counted = store.rate_count("dest:a", window, T0).await.unwrap();
    assert_eq!(counted.count, 5);
    let later = T0.plus_millis(window);
    let slid = store.rate_hit("dest:a", window, 5, later).await.unwrap();
    assert!(slid.allowed, "events older than the window are forgotten");
    assert_eq!(slid.count, 1);
    assert_eq!(
        store
            .rate_count("dest:a", window, later)
            .await
            .unwrap()
            .count,
        1
    );
}

/// A quarantine is created once while active, expires by itself, can be lifted, and a new
/// one may replace an expired one.
pub(crate) async fn quarantines_expire_and_lift<S: Store>(store: S) {
    let any_service = ServiceId::generate();
    let q = |prefix: &str, at: Timestamp| otpd_core::store::Quarantine {
        prefix: prefix.into(),
        service: None,
        reason: "test".into(),
        until: at.plus_seconds(3600),
        created_at: at,
    };
    assert!(store.quarantine(&q("+44740", T0)).await.unwrap());
    assert!(
        !store
            .quarantine(&q("+44740", T0.plus_seconds(10)))
            .await
            .unwrap(),
        "already active"
    );
    assert!(
        store
            .quarantine(&q("+33612", T0.plus_seconds(5)))
            .await
            .unwrap()
    );
    let active = store.quarantines(T0.plus_seconds(20)).await.unwrap();
    let prefixes: Vec<_> = active.iter().map(|q| q.prefix.as_str()).collect();
    assert_eq!(prefixes, ["+33612", "+44740"], "newest first");
    assert_eq!(
        store
            .active_quarantine("+44740", any_service, T0.plus_seconds(20))
            .await
            .unwrap(),
        Some(q("+44740", T0))
    );
    assert!(
        store
            .active_quarantine("+44740", any_service, T0.plus_seconds(3600))
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        store
            .quarantine(&q("+44740", T0.plus_seconds(3600)))
            .await
            .unwrap(),
        "replaces an expired one"
    );
    assert!(store.lift_quarantine("+33612", None).await.unwrap());
    assert!(!store.lift_quarantine("+33612", None).await.unwrap());
    assert!(
        store
            .active_quarantine("+33612", any_service, T0.plus_seconds(20))
            .await
            .unwrap()
            .is_none()
    );
}

/// A service's quarantine stops only that service's starts; a server-wide one stops every
/// service's; each is created, listed and lifted on its own.
pub(crate) async fn quarantines_are_per_service_or_server_wide<S: Store>(store: S) {
    let (a, b, c) = (
        ServiceId::generate(),
        ServiceId::generate(),
        ServiceId::generate(),
    );
    let q = |service: Option<ServiceId>, at: Timestamp| otpd_core::store::Quarantine {
        prefix: "+44909".into(),
        service,
        reason: "test".into(),
        until: at.plus_seconds(3600),
        created_at: at,
    };
    let now = T0.plus_seconds(20);
    assert!(store.quarantine(&q(Some(a), T0)).await.unwrap());
    assert_eq!(
        store.active_quarantine("+44909", a, now).await.unwrap(),
        Some(q(Some(a), T0))
    );
    assert_eq!(
        store.active_quarantine("+44909", b, now).await.unwrap(),
        None,
        "another service's starts are not stopped"
    );
    assert!(
        store
            .quarantine(&q(Some(b), T0.plus_seconds(1)))
            .await
            .unwrap(),
        "each service has its own"
    );
    assert!(
        store
            .quarantine(&q(None, T0.plus_seconds(2)))
            .await
            .unwrap()
    );
    assert_eq!(
        store.active_quarantine("+44909", c, now).await.unwrap(),
        Some(q(None, T0.plus_seconds(2))),
        "a server-wide quarantine stops every service"
    );
    let scopes: Vec<_> = store
        .quarantines(now)
        .await
        .unwrap()
        .iter()
        .map(|q| q.service)
        .collect();
    assert_eq!(scopes, [None, Some(b), Some(a)], "newest first");
    assert!(store.lift_quarantine("+44909", Some(a)).await.unwrap());
    assert!(!store.lift_quarantine("+44909", Some(a)).await.unwrap());
    assert!(store.lift_quarantine("+44909", None).await.unwrap());
    assert_eq!(
        store.active_quarantine("+44909", a, now).await.unwrap(),
        None
    );
    assert_eq!(
        store.active_quarantine("+44909", b, now).await.unwrap(),
        Some(q(Some(b), T0.plus_seconds(1))),
        "lifting one scope leaves the others"
    );
}

/// Spending stops exactly at the cap, whatever the race.
pub(crate) async fn spend_never_passes_the_cap<S: Store + Clone>(store: S) {
    let tasks: Vec<_> = (0..30)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move { store.add_spend("budget:s:1", 0.25, 5.0).await.unwrap() })
        })
        .collect();
    let mut accepted = 0;
    for task in tasks {
        accepted += usize::from(task.await.unwrap().is_some());
    }
    assert_eq!(accepted, 20, "5.00 / 0.25");
    assert_eq!(
        store.add_spend("budget:s:1", 0.25, 5.0).await.unwrap(),
        None
    );
    assert_eq!(
        store.add_spend("budget:s:2", 6.0, 5.0).await.unwrap(),
        None,
        "one spend over the cap"
    );
    assert_eq!(
        store.add_spend("budget:s:2", 1.5, 5.0).await.unwrap(),
        Some(1.5)
    );
}

/// Safe-list entries are per account, added once, found and removed.
pub(crate) async fn safe_numbers_are_per_account<S: Store>(store: S) {
    let service = service(&store).await;
    let account = store.service(service).await.unwrap().unwrap().account_id;
    let entry = otpd_core::store::SafeNumber {
        id: uuid::Uuid::now_v7(),
        phone: "+14155552671".into(),
        created_at: T0,
    };
    assert!(!store.has_safe_numbers(account).await.unwrap());
    assert_eq!(store.add_safe_number(account, &entry).await.unwrap(), entry);
    assert!(store.has_safe_numbers(account).await.unwrap());
    let again = otpd_core::store::SafeNumber {
        id: uuid::Uuid::now_v7(),
        ..entry.clone()
    };
    assert_eq!(
        store.add_safe_number(account, &again).await.unwrap(),
        entry,
        "an existing entry is kept"
    );
    assert_eq!(
        store.safe_number(account, "+14155552671").await.unwrap(),
        Some(entry)
    );
    let other = AccountId::generate();
    assert!(
        store
            .safe_number(other, "+14155552671")
            .await
            .unwrap()
            .is_none()
    );
    assert!(!store.has_safe_numbers(other).await.unwrap(), "per account");
    assert!(
        store
            .remove_safe_number(account, "+14155552671")
            .await
            .unwrap()
    );
    assert!(!store.has_safe_numbers(account).await.unwrap(), "emptied");
    assert!(
        !store
            .remove_safe_number(account, "+14155552671")
            .await
            .unwrap()
    );
    assert!(
        store
            .safe_number(account, "+14155552671")
            .await
            .unwrap()
            .is_none()
    );
}
