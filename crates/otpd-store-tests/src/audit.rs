//! Behaviours of the audit log.

use otpd_core::audit::{Actor, AuditDraft, AuditEntry, AuditFilter, GENESIS, verify_chain};
use otpd_core::{AccountId, Store, Timestamp};
use serde_json::json;

use crate::support::*;

fn draft(account: AccountId, action: &str, target: &str, at: Timestamp) -> AuditDraft {
    AuditDraft {
        at,
        actor: Actor::Account(account),
        account: Some(account),
        source: Some("127.0.0.1".into()),
        action: action.into(),
        target: target.into(),
        summary: json!({"before": {"b": 1, "a": [1, {"z": null, "y": "é"}]}, "after": {"b": 2}}),
    }
}

/// Every entry of the chain, oldest first, read in pages of `page`.
async fn whole_chain<S: Store>(store: &S, page: u32) -> Vec<AuditEntry> {
    let mut all: Vec<AuditEntry> = Vec::new();
    loop {
        let after = all.last().map_or(0, |e| e.seq);
        let next = store.audit_chain(after, page).await.unwrap();
        if next.is_empty() {
            return all;
        }
        all.extend(next);
    }
}

/// Each append is linked to the one before it (positions from 1, the first after the
/// genesis hash), reads back exactly as answered, and the chain verifies.
pub(crate) async fn appends_link_into_one_chain<S: Store>(store: S) {
    let account = AccountId::generate();
    let mut answered = Vec::new();
    for n in 0..5 {
        let mut d = draft(account, "service.update", &format!("VA{n}"), T0);
        if n == 3 {
            d.actor = Actor::Cli("alice".into());
            d.account = None;
            d.source = None;
        }
        answered.push(store.append_audit(&d).await.unwrap());
    }
    assert_eq!(answered[0].seq, 1);
    assert_eq!(answered[0].prev_hash, GENESIS);
    for pair in answered.windows(2) {
        assert_eq!(pair[1].seq, pair[0].seq + 1);
        assert_eq!(pair[1].prev_hash, pair[0].hash);
    }
    let stored = whole_chain(&store, 2).await;
    assert_eq!(stored, answered);
    assert_eq!(verify_chain(&stored), Ok(5));
}

/// Listing is newest first, filtered by account, actor, action, target and time, and pages
/// by the last id of the previous page.
pub(crate) async fn audit_filters_and_pages_newest_first<S: Store>(store: S) {
    let (a, b) = (AccountId::generate(), AccountId::generate());
    let mut ids = Vec::new();
    for n in 0..6 {
        let action = if n % 2 == 0 {
            "service.create"
        } else {
            "webhook.create"
        };
        let at = Timestamp(T0.0 + n * 1000);
        ids.push(
            store
                .append_audit(&draft(a, action, &format!("VA{n}"), at))
                .await
                .unwrap()
                .id,
        );
    }
    store
        .append_audit(&draft(b, "service.create", "VAb", T0))
        .await
        .unwrap();
    let list = |filter: AuditFilter| {
        let store = &store;
        async move {
            store
                .audit(&filter)
                .await
                .unwrap()
                .into_iter()
                .map(|e| e.id)
                .collect::<Vec<_>>()
        }
    };
    let of_a = AuditFilter {
        account: Some(a),
        limit: 100,
        ..Default::default()
    };
    let newest_first: Vec<_> = ids.iter().rev().copied().collect();
    assert_eq!(list(of_a.clone()).await, newest_first);
    assert_eq!(
        list(AuditFilter {
            limit: 100,
            ..Default::default()
        })
        .await
        .len(),
        7
    );
    let first = list(AuditFilter {
        limit: 4,
        ..of_a.clone()
    })
    .await;
    assert_eq!(first, newest_first[..4]);
    let second = list(AuditFilter {
        limit: 4,
        after: first.last().copied(),
        ..of_a.clone()
    })
    .await;
    assert_eq!(second, newest_first[4..]);
    assert_eq!(
        list(AuditFilter {
            action: Some("webhook.create".into()),
            ..of_a.clone()
        })
        .await,
        vec![ids[5], ids[3], ids[1]]
    );
    assert_eq!(
        list(AuditFilter {
            target: Some("VA2".into()),
            ..of_a.clone()
        })
        .await,
        vec![ids[2]]
    );
    assert_eq!(
        list(AuditFilter {
            since: Some(Timestamp(T0.0 + 1000)),
            until: Some(Timestamp(T0.0 + 3000)),
            ..of_a.clone()
        })
        .await,
        vec![ids[2], ids[1]]
    );
    let actor = Actor::Account(b).id();
    let by_b = list(AuditFilter {
        actor: Some(actor),
        limit: 100,
        ..Default::default()
    })
    .await;
    assert_eq!(by_b.len(), 1);
}

/// Appends racing from several tasks (several connections on PostgreSQL) still form one
/// unbroken chain with every entry in it once.
pub(crate) async fn concurrent_appends_form_one_chain<S: Store + Clone>(store: S) {
    let account = AccountId::generate();
    let mut tasks = Vec::new();
    for task in 0..4 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            for n in 0..15 {
                let target = format!("VA{task}-{n}");
                store
                    .append_audit(&draft(account, "service.update", &target, T0))
                    .await
                    .unwrap();
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let chain = whole_chain(&store, 7).await;
    assert_eq!(verify_chain(&chain), Ok(60));
    let mut targets: Vec<_> = chain.iter().map(|e| e.target.clone()).collect();
    targets.sort();
    targets.dedup();
    assert_eq!(targets.len(), 60);
}
