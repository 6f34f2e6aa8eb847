//! Behaviours of console operators and their sessions.

use otpd_core::operators::{Operator, OperatorSession, Role};
use otpd_core::{OperatorId, Store, StoreError, Timestamp};

use crate::support::*;

/// An operator with a password, created at `at`.
fn operator(email: &str, at: Timestamp) -> Operator {
    Operator {
        id: OperatorId::generate(),
        email: email.into(),
        role: Role::Support,
        password_hash: Some("$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".into()),
        totp_sealed: None,
        totp_last_step: None,
        disabled: false,
        failed_sign_ins: 0,
        locked_until: None,
        invitation_hash: None,
        invitation_expires_at: None,
        created_at: at,
    }
}

fn session(operator: OperatorId, at: Timestamp) -> OperatorSession {
    OperatorSession {
        token_hash: unique_hash(),
        operator,
        second_factor_pending: false,
        created_at: at,
        last_seen_at: at,
    }
}

/// An operator reads back exactly as created by id, by email and by the hash of its
/// invitation; unknown ones are absent; the list is oldest first.
pub(crate) async fn operators_round_trip_by_id_email_and_invitation<S: Store>(store: S) {
    assert_eq!(store.operators().await.unwrap(), []);
    let mut invited = operator("invited@example.com", T0.plus_seconds(5));
    invited.role = Role::Viewer;
    invited.password_hash = None;
    invited.invitation_hash = Some(unique_hash());
    invited.invitation_expires_at = Some(T0.plus_seconds(3600));
    let mut admin = operator("admin@example.com", T0);
    admin.role = Role::Admin;
    admin.totp_sealed = Some("c2VhbGVk".into());
    admin.totp_last_step = Some(56_666_666);
    store.create_operator(&invited).await.unwrap();
    store.create_operator(&admin).await.unwrap();

    assert_eq!(store.operator(admin.id).await.unwrap(), Some(admin.clone()));
    assert_eq!(
        store.operator(invited.id).await.unwrap(),
        Some(invited.clone())
    );
    assert_eq!(
        store.operator_by_email("admin@example.com").await.unwrap(),
        Some(admin.clone())
    );
    assert_eq!(
        store
            .operator_by_invitation(invited.invitation_hash.unwrap())
            .await
            .unwrap(),
        Some(invited.clone())
    );
    assert_eq!(store.operator(OperatorId::generate()).await.unwrap(), None);
    assert_eq!(
        store.operator_by_email("nobody@example.com").await.unwrap(),
        None
    );
    assert_eq!(
        store.operator_by_invitation(unique_hash()).await.unwrap(),
        None
    );
    assert_eq!(store.operators().await.unwrap(), [admin, invited]);
}

/// A second operator with a taken email is refused as a conflict, and the first is kept.
pub(crate) async fn a_taken_operator_email_is_a_conflict<S: Store>(store: S) {
    let first = operator("same@example.com", T0);
    store.create_operator(&first).await.unwrap();
    let mut second = operator("same@example.com", T0.plus_seconds(1));
    second.role = Role::Admin;
    let refused = store.create_operator(&second).await;
    assert!(
        matches!(refused, Err(StoreError::Conflict(_))),
        "{refused:?}"
    );
    assert_eq!(store.operators().await.unwrap(), [first]);
}

/// An update replaces every field but the id, the email and the creation time; an unknown
/// operator is not updated.
pub(crate) async fn operator_updates_round_trip_every_field<S: Store>(store: S) {
    let created = operator("one@example.com", T0);
    store.create_operator(&created).await.unwrap();
    let changed = Operator {
        id: created.id,
        email: "other@example.com".into(),
        role: Role::Admin,
        password_hash: None,
        totp_sealed: Some("c2VhbGVk".into()),
        totp_last_step: Some(56_666_667),
        disabled: true,
        failed_sign_ins: 3,
        locked_until: Some(T0.plus_seconds(900)),
        invitation_hash: Some(unique_hash()),
        invitation_expires_at: Some(T0.plus_seconds(3600)),
        created_at: T0.plus_seconds(99),
    };
    assert!(store.update_operator(&changed).await.unwrap());
    let expected = Operator {
        email: created.email.clone(),
        created_at: created.created_at,
        ..changed.clone()
    };
    assert_eq!(
        store.operator(created.id).await.unwrap(),
        Some(expected.clone())
    );

    // And back: every optional field can be cleared again.
    let cleared = Operator {
        role: Role::Viewer,
        password_hash: Some("$argon2id$new".into()),
        totp_sealed: None,
        totp_last_step: None,
        disabled: false,
        failed_sign_ins: 0,
        locked_until: None,
        invitation_hash: None,
        invitation_expires_at: None,
        ..expected
    };
    assert!(store.update_operator(&cleared).await.unwrap());
    assert_eq!(store.operator(created.id).await.unwrap(), Some(cleared));

    let unknown = operator("ghost@example.com", T0);
    assert!(!store.update_operator(&unknown).await.unwrap());
    assert_eq!(store.operator(unknown.id).await.unwrap(), None);
}

/// Failed sign-ins count one by one; the one that reaches the limit locks the operator until
/// the given time and resets the count (answering 0); counting goes on from there.
pub(crate) async fn failed_sign_ins_count_then_lock_and_reset<S: Store>(store: S) {
    let o = operator("fails@example.com", T0);
    store.create_operator(&o).await.unwrap();
    let until = T0.plus_seconds(900);
    for expected in 1..5 {
        assert_eq!(
            store.record_failed_sign_in(o.id, 5, until).await.unwrap(),
            expected
        );
        let stored = store.operator(o.id).await.unwrap().unwrap();
        assert_eq!(stored.failed_sign_ins, expected);
        assert_eq!(stored.locked_until, None);
    }
    assert_eq!(
        store.record_failed_sign_in(o.id, 5, until).await.unwrap(),
        0
    );
    let locked = store.operator(o.id).await.unwrap().unwrap();
    assert_eq!(locked.failed_sign_ins, 0);
    assert_eq!(locked.locked_until, Some(until));

    let later = T0.plus_seconds(5000);
    assert_eq!(
        store.record_failed_sign_in(o.id, 5, later).await.unwrap(),
        1
    );
    let counting = store.operator(o.id).await.unwrap().unwrap();
    assert_eq!(counting.failed_sign_ins, 1);
    assert_eq!(counting.locked_until, Some(until), "the lock is kept");
}

/// Failed sign-ins recorded at once (several nodes) each count.
pub(crate) async fn concurrent_failed_sign_ins_each_count<S: Store + Clone>(store: S) {
    let o = operator("busy@example.com", T0);
    store.create_operator(&o).await.unwrap();
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move {
                store
                    .record_failed_sign_in(o.id, 1000, T0.plus_seconds(900))
                    .await
                    .unwrap()
            })
        })
        .collect();
    let mut answers = Vec::new();
    for task in tasks {
        answers.push(task.await.unwrap());
    }
    answers.sort_unstable();
    assert_eq!(answers, (1..=20).collect::<Vec<u32>>());
    let stored = store.operator(o.id).await.unwrap().unwrap();
    assert_eq!(stored.failed_sign_ins, 20);
}

/// A session reads back as created, is touched and deleted by the hash of its token; unknown
/// sessions are absent and touching or deleting them answers false.
pub(crate) async fn sessions_are_created_read_touched_and_deleted<S: Store>(store: S) {
    let o = operator("session@example.com", T0);
    store.create_operator(&o).await.unwrap();
    let mut pending = session(o.id, T0);
    pending.second_factor_pending = true;
    let full = session(o.id, T0.plus_seconds(1));
    store.create_session(&pending).await.unwrap();
    store.create_session(&full).await.unwrap();
    assert_eq!(
        store.session(pending.token_hash).await.unwrap(),
        Some(pending.clone())
    );
    assert_eq!(
        store.session(full.token_hash).await.unwrap(),
        Some(full.clone())
    );

    let seen = T0.plus_seconds(120);
    assert!(store.touch_session(full.token_hash, seen).await.unwrap());
    assert_eq!(
        store.session(full.token_hash).await.unwrap(),
        Some(OperatorSession {
            last_seen_at: seen,
            ..full.clone()
        })
    );

    assert!(store.delete_session(pending.token_hash).await.unwrap());
    assert!(!store.delete_session(pending.token_hash).await.unwrap());
    assert_eq!(store.session(pending.token_hash).await.unwrap(), None);
    assert!(!store.touch_session(pending.token_hash, seen).await.unwrap());
    assert_eq!(store.session(unique_hash()).await.unwrap(), None);
    assert!(store.session(full.token_hash).await.unwrap().is_some());
}

/// Ending an operator's sessions ends all of them and no one else's.
pub(crate) async fn sessions_of_an_operator_end_together<S: Store>(store: S) {
    let mine = operator("mine@example.com", T0);
    let theirs = operator("theirs@example.com", T0);
    store.create_operator(&mine).await.unwrap();
    store.create_operator(&theirs).await.unwrap();
    let my_sessions = [session(mine.id, T0), session(mine.id, T0.plus_seconds(1))];
    let their_session = session(theirs.id, T0);
    for s in my_sessions.iter().chain([&their_session]) {
        store.create_session(s).await.unwrap();
    }
    assert_eq!(store.delete_sessions_of(mine.id).await.unwrap(), 2);
    assert_eq!(store.delete_sessions_of(mine.id).await.unwrap(), 0);
    for s in &my_sessions {
        assert_eq!(store.session(s.token_hash).await.unwrap(), None);
    }
    assert_eq!(
        store.session(their_session.token_hash).await.unwrap(),
        Some(their_session)
    );
}

/// The sweep removes sessions idle since before one time or created before another, and
/// keeps the rest (the bounds themselves are kept).
pub(crate) async fn stale_sessions_are_swept<S: Store>(store: S) {
    let o = operator("sweep@example.com", T0);
    store.create_operator(&o).await.unwrap();
    let idle_before = T0.plus_seconds(100);
    let created_before = T0.plus_seconds(50);
    let session_at = |created: i64, seen: i64| OperatorSession {
        last_seen_at: T0.plus_seconds(seen),
        ..session(o.id, T0.plus_seconds(created))
    };
    let idle = session_at(60, 99);
    let old = session_at(49, 500);
    let kept = [session_at(50, 100), session_at(60, 200)];
    for s in [&idle, &old].into_iter().chain(&kept) {
        store.create_session(s).await.unwrap();
    }
    assert_eq!(
        store
            .delete_stale_sessions(idle_before, created_before)
            .await
            .unwrap(),
        2
    );
    assert_eq!(store.session(idle.token_hash).await.unwrap(), None);
    assert_eq!(store.session(old.token_hash).await.unwrap(), None);
    for s in kept {
        assert_eq!(store.session(s.token_hash).await.unwrap(), Some(s));
    }
}
