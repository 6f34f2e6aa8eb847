//! The shared Store behaviour suite, run against a real SQLite file per test.

use otpd_store_sqlite::SqliteStore;

async fn fresh_store() -> Option<(SqliteStore, tempfile::TempDir)> {
    let dir = tempfile::tempdir().expect("temporary directory");
    let store = SqliteStore::open(dir.path().join("otpd.db"), otpd_store_tests::vault())
        .expect("open store");
    Some((store, dir))
}

otpd_store_tests::store_behaviour_tests!(fresh_store());

/// A verification written before the store is closed is still there after it is reopened.
#[tokio::test]
async fn data_survives_reopening_the_file() {
    use otpd_core::VerificationStore;
    use otpd_store_tests::Seed;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("otpd.db");
    let store = SqliteStore::open(&path, otpd_store_tests::vault()).unwrap();
    let service = otpd_store_tests::service(&store).await;
    let (v, d) = otpd_store_tests::sample(service, 5, None);
    store.create_verification(&v, &d).await.unwrap();
    drop(store);
    let reopened = SqliteStore::open(&path, otpd_store_tests::vault()).unwrap();
    assert_eq!(reopened.verification(v.id).await.unwrap(), Some(v));
}

/// A database from before migration 9 keeps its events when they move to the WITHOUT ROWID
/// table.
#[test]
fn events_survive_the_move_to_a_table_without_rowid() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("otpd.db");
    let old = rusqlite::Connection::open(&path).unwrap();
    for sql in [
        include_str!("../migrations/0001_initial.sql"),
        include_str!("../migrations/0002_delivery_details.sql"),
        include_str!("../migrations/0003_rate_events.sql"),
        include_str!("../migrations/0004_pumping_and_budgets.sql"),
        include_str!("../migrations/0005_safe_list.sql"),
        include_str!("../migrations/0006_events.sql"),
        include_str!("../migrations/0007_webhooks.sql"),
        include_str!("../migrations/0008_alerts.sql"),
    ] {
        old.execute_batch(sql).unwrap();
    }
    old.execute(
        "INSERT INTO events (id, service_id, verification_id, kind, data, created_at) \
         VALUES (x'01', x'02', x'03', 'verification.started', '{}', 7)",
        [],
    )
    .unwrap();
    old.execute_batch("PRAGMA user_version = 8").unwrap();
    drop(old);
    drop(SqliteStore::open(&path, otpd_store_tests::vault()).unwrap());
    let new = rusqlite::Connection::open(&path).unwrap();
    let kept: (String, i64) = new
        .query_row(
            "SELECT kind, created_at FROM events WHERE id = x'01'",
            [],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )
        .unwrap();
    assert_eq!(kept, ("verification.started".to_string(), 7));
    assert!(
        new.query_row("SELECT rowid FROM events", [], |_| Ok(()))
            .is_err(),
        "the table has no rowid now"
    );
}

/// A database from before migration 10 keeps its verifications and deliveries (and the links
/// between them and to their service) when both move to WITHOUT ROWID tables.
#[test]
fn verifications_and_deliveries_survive_the_move_to_tables_without_rowid() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("otpd.db");
    let old = rusqlite::Connection::open(&path).unwrap();
    for sql in [
        include_str!("../migrations/0001_initial.sql"),
        include_str!("../migrations/0002_delivery_details.sql"),
        include_str!("../migrations/0003_rate_events.sql"),
        include_str!("../migrations/0004_pumping_and_budgets.sql"),
        include_str!("../migrations/0005_safe_list.sql"),
        include_str!("../migrations/0006_events.sql"),
        include_str!("../migrations/0007_webhooks.sql"),
        include_str!("../migrations/0008_alerts.sql"),
        include_str!("../migrations/0009_events_without_rowid.sql"),
    ] {
        old.execute_batch(sql).unwrap();
    }
    old.execute_batch(
        "PRAGMA foreign_keys = ON;
         INSERT INTO accounts VALUES (x'0A', 'a', x'00', 1);
         INSERT INTO services (id, account_id, name, settings, created_at, updated_at)
             VALUES (x'0B', x'0A', 's', '{}', 1, 1);
         INSERT INTO verifications (id, service_id, to_number, country, channel, status,
             attempts, max_attempts, ttl, code_hash, pin_type, pin_length, template, sender,
             cost, parts, created_at, expires_at, updated_at, locale)
             VALUES (x'01', x'0B', '+33612345678', 'FR', 'sms', 'pending', 2, 5, 600, x'AA',
             'numeric', 6, 'code {{pin}}', 'otpd', 0.5, 1, 10, 610, 11, 'fr');
         INSERT INTO deliveries (id, verification_id, channel, status, provider, created_at,
             updated_at, lease_until, segments, fallback_at)
             VALUES (x'02', x'01', 'sms', 'sent', 'twilio', 10, 12, 70, 1, 40);
         PRAGMA user_version = 9;",
    )
    .unwrap();
    drop(old);
    drop(SqliteStore::open(&path, otpd_store_tests::vault()).unwrap());
    let new = rusqlite::Connection::open(&path).unwrap();
    // The number is sealed since migration 13; the vault opens it back.
    let verification: (Vec<u8>, u32, String, i64) = new
        .query_row(
            "SELECT to_sealed, attempts, locale, expires_at FROM verifications WHERE id = x'01'",
            [],
            |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?)),
        )
        .unwrap();
    let to = otpd_store_tests::vault().open(&verification.0).unwrap();
    assert_eq!(
        (to, verification.1, verification.2, verification.3),
        ("+33612345678".into(), 2, "fr".into(), 610)
    );
    let delivery: (Vec<u8>, String, i64, i64) = new
        .query_row(
            "SELECT d.verification_id, d.provider, d.lease_until, d.fallback_at \
             FROM deliveries d JOIN verifications v ON v.id = d.verification_id \
             WHERE d.id = x'02'",
            [],
            |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?)),
        )
        .unwrap();
    assert_eq!(delivery, (vec![1u8], "twilio".into(), 70, 40));
    for table in ["verifications", "deliveries"] {
        assert!(
            new.query_row(&format!("SELECT rowid FROM {table}"), [], |_| Ok(()))
                .is_err(),
            "{table} has no rowid now"
        );
    }
    let broken: i64 = new
        .query_row("SELECT COUNT(*) FROM pragma_foreign_key_check", [], |row| {
            row.get(0)
        })
        .unwrap();
    assert_eq!(broken, 0);
    let indexes: i64 = new
        .query_row(
            "SELECT COUNT(*) FROM sqlite_master WHERE type = 'index' AND name IN \
             ('verifications_service_to', 'deliveries_verification', 'deliveries_queued', \
              'deliveries_provider_ref', 'deliveries_fallback_due')",
            [],
            |row| row.get(0),
        )
        .unwrap();
    assert_eq!(indexes, 5, "every index is rebuilt");
}

const NUMBER: &str = "+33612345678";

fn file_holds(path: &std::path::Path, needle: &[u8]) -> bool {
    let mut bytes = std::fs::read(path).unwrap();
    let wal = path.with_extension("db-wal");
    if let Ok(more) = std::fs::read(wal) {
        bytes.extend(more);
    }
    bytes.windows(needle.len()).any(|w| w == needle)
}

/// After a start, a wrong and a right check, a refused start's event and a safe-list entry,
/// neither the database file nor its WAL holds the number's digits; lookups by destination
/// still find it, and a reopened store reads it back.
#[tokio::test]
async fn no_destination_is_stored_in_clear() {
    use otpd_core::events::{Event, EventFilter};
    use otpd_core::store::SafeNumber;
    use otpd_core::{
        EventStore, LimitStore, ServiceId, TenantStore, Timestamp, VerificationStatus,
        VerificationStore,
    };
    use otpd_store_tests::{CODE, Seed, T0, sample, typed};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("otpd.db");
    let store = SqliteStore::open(&path, otpd_store_tests::vault()).unwrap();
    let service: ServiceId = otpd_store_tests::service(&store).await;
    let account = store.service(service).await.unwrap().unwrap().account_id;
    let (v, d) = sample(service, 5, None);
    assert_eq!(v.to.as_str(), NUMBER);
    store.create_verification(&v, &d).await.unwrap();
    let found = store.latest_for(service, NUMBER, T0).await.unwrap();
    assert_eq!(found.map(|f| f.id), Some(v.id), "found by its destination");
    let wrong = store
        .check_code(v.id, service, typed(v.id, "000000"), T0.plus_seconds(1))
        .await
        .unwrap();
    assert_eq!(wrong.verification.unwrap().to.as_str(), NUMBER);
    let right = store
        .check_code(v.id, service, typed(v.id, CODE), T0.plus_seconds(2))
        .await
        .unwrap();
    assert_eq!(
        right.verification.unwrap().status,
        VerificationStatus::Approved
    );
    store
        .record_event(&Event {
            id: uuid::Uuid::now_v7(),
            service_id: service,
            verification_id: None,
            kind: "verification.blocked".into(),
            data: serde_json::json!({"reason": "quarantine", "to": NUMBER}),
            created_at: Timestamp(T0.0 + 3_000),
        })
        .await
        .unwrap();
    let entry = SafeNumber {
        id: uuid::Uuid::now_v7(),
        phone: "+33698765432".into(),
        created_at: T0,
    };
    store.add_safe_number(account, &entry).await.unwrap();
    assert_eq!(
        store.safe_number(account, "+33698765432").await.unwrap(),
        Some(entry)
    );
    let events = store
        .events(&EventFilter {
            account,
            service: None,
            verification: None,
            kind: None,
            since: None,
            until: None,
            after: None,
            limit: 100,
        })
        .await
        .unwrap();
    assert!(events.len() >= 4, "{events:?}");
    for event in events
        .iter()
        .filter(|e| e.kind.starts_with("verification."))
    {
        assert_eq!(event.data["to"], NUMBER, "{}", event.kind);
        assert!(event.data.get("toSealed").is_none());
    }
    drop(store);
    for digits in ["612345678", "698765432"] {
        assert!(
            !file_holds(&path, digits.as_bytes()),
            "{digits} is in the database file"
        );
    }
    let reopened = SqliteStore::open(&path, otpd_store_tests::vault()).unwrap();
    assert_eq!(reopened.verification(v.id).await.unwrap().unwrap().to, v.to);
}

/// A database written under one server secret refuses another before reading anything, and
/// names both keys; a vault that still holds the old key (a rotation) opens it.
#[tokio::test]
async fn another_server_secret_is_refused_and_a_rotation_opens() {
    use otpd_core::vault::Vault;
    use otpd_core::{ServerSecret, StoreError, VerificationStore};
    use otpd_store_tests::{Seed, sample};
    use std::sync::Arc;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("otpd.db");
    let store = SqliteStore::open(&path, otpd_store_tests::vault()).unwrap();
    let service = otpd_store_tests::service(&store).await;
    let (v, d) = sample(service, 5, None);
    store.create_verification(&v, &d).await.unwrap();
    drop(store);
    let other = Arc::new(Vault::new(&ServerSecret::from_bytes([1; 32]), &[]));
    match SqliteStore::open(&path, other.clone()) {
        Err(StoreError::WrongKey(message)) => {
            assert!(message.contains("server secret"), "{message}");
            assert!(message.contains(&other.current().to_string()), "{message}");
            assert!(
                message.contains(&otpd_store_tests::vault().current().to_string()),
                "{message}"
            );
        }
        Err(error) => panic!("another error: {error}"),
        Ok(_) => panic!("a wrong server secret opened the database"),
    }
    let rotated = Arc::new(Vault::new(
        &ServerSecret::from_bytes([1; 32]),
        &[ServerSecret::from_bytes([9; 32])],
    ));
    let store = SqliteStore::open(&path, rotated).unwrap();
    assert_eq!(store.verification(v.id).await.unwrap().unwrap().to, v.to);
}

/// A database written by the release before sealing (migration 12) is sealed at open: its
/// numbers leave the file, its pending verification still checks, lookups by number and the
/// safe list still work, and its events still show the number.
#[tokio::test]
async fn a_database_from_before_sealing_is_sealed_and_still_checks() {
    use otpd_core::events::EventFilter;
    use otpd_core::{
        CheckOutcome, EventStore, LimitStore, TenantStore, Timestamp, VerificationStore,
    };
    use otpd_store_tests::{CODE, T0, typed};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("otpd.db");
    // The release before: migrations 1–12, and the rows it wrote.
    let service = otpd_core::ServiceId::generate();
    let settings = serde_json::to_string(&otpd_core::OtpSettings::default()).unwrap();
    let old = rusqlite::Connection::open(&path).unwrap();
    for sql in [
        include_str!("../migrations/0001_initial.sql"),
        include_str!("../migrations/0002_delivery_details.sql"),
        include_str!("../migrations/0003_rate_events.sql"),
        include_str!("../migrations/0004_pumping_and_budgets.sql"),
        include_str!("../migrations/0005_safe_list.sql"),
        include_str!("../migrations/0006_events.sql"),
        include_str!("../migrations/0007_webhooks.sql"),
        include_str!("../migrations/0008_alerts.sql"),
        include_str!("../migrations/0009_events_without_rowid.sql"),
        include_str!("../migrations/0010_verifications_without_rowid.sql"),
        include_str!("../migrations/0011_provider_ref_index_partial.sql"),
        include_str!("../migrations/0012_quarantines_per_service.sql"),
    ] {
        old.execute_batch(sql).unwrap();
    }
    let account = otpd_core::AccountId::generate();
    let id = otpd_core::VerificationId::generate();
    let hash = otpd_core::CodeHasher::new(otpd_core::ServerSecret::from_bytes([42; 32]))
        .hash(id, &otpd_core::OtpCode::from_user_input(CODE));
    old.execute_batch(&format!(
        "INSERT INTO accounts VALUES (x'{a}', 'old', zeroblob(32), 0);
         INSERT INTO services VALUES (x'{s}', x'{a}', 'old', '{settings}', 0, 0, 0);
         INSERT INTO verifications (id, service_id, to_number, country, channel, status,
             attempts, max_attempts, ttl, code_hash, pin_type, pin_length, template, sender,
             cost, parts, created_at, expires_at, updated_at)
             VALUES (x'{v}', x'{s}', '{NUMBER}', 'FR', 'sms', 'pending', 0, 5, 600, x'{h}',
             'numbers', 6, 'Your code is {{{{pin}}}}', 'otpd', 0.05, 1, {t0}, {t1}, {t0});
         INSERT INTO events VALUES (x'{e}', x'{s}', x'{v}', 'verification.started',
             '{{\"to\":\"{NUMBER}\",\"status\":\"pending\"}}', {t0});
         INSERT INTO safe_numbers VALUES (x'{a}', '+33698765432', x'{n}', {t0});
         INSERT INTO rate_events VALUES ('fail:x:{NUMBER}', {t0});
         PRAGMA user_version = 12;",
        a = hex::encode(account.as_bytes()),
        s = hex::encode(service.as_bytes()),
        v = hex::encode(id.as_bytes()),
        h = hex::encode(hash.0),
        e = hex::encode(uuid::Uuid::now_v7().as_bytes()),
        n = hex::encode(uuid::Uuid::now_v7().as_bytes()),
        t0 = T0.0,
        t1 = T0.plus_seconds(600).0,
    ))
    .unwrap();
    drop(old);
    let store = SqliteStore::open(&path, otpd_store_tests::vault()).unwrap();
    let old_service = service;
    assert!(store.service(old_service).await.unwrap().is_some());
    let found = store.latest_for(old_service, NUMBER, T0).await.unwrap();
    assert_eq!(found.map(|v| v.id), Some(id), "found by its number");
    assert!(
        store
            .safe_number(account, "+33698765432")
            .await
            .unwrap()
            .is_some()
    );
    let events = store
        .events(&EventFilter {
            account,
            service: None,
            verification: None,
            kind: None,
            since: None,
            until: None,
            after: None,
            limit: 10,
        })
        .await
        .unwrap();
    assert_eq!(events[0].data["to"], NUMBER);
    let checked = store
        .check_code(id, old_service, typed(id, CODE), Timestamp(T0.0 + 1_000))
        .await
        .unwrap();
    assert_eq!(checked.outcome, CheckOutcome::Approved);
    drop(store);
    for digits in ["612345678", "698765432"] {
        assert!(
            !file_holds(&path, digits.as_bytes()),
            "{digits} left in clear"
        );
    }
}

/// After a key rotation, values sealed under the previous key are still found and read; the
/// reseal job moves every one (verification, event, safe-list entry) to the new key, after
/// which the previous key can be removed and everything still reads and is found.
#[tokio::test]
async fn a_rotation_reseals_everything_and_the_old_key_can_go() {
    use otpd_core::events::{Event, EventFilter};
    use otpd_core::store::{KeyStore, SafeNumber};
    use otpd_core::vault::Vault;
    use otpd_core::{
        EventStore, LimitStore, ServerSecret, TenantStore, Timestamp, VerificationStore,
    };
    use otpd_store_tests::{Seed, T0, sample};
    use std::sync::Arc;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("otpd.db");
    let store = SqliteStore::open(&path, otpd_store_tests::vault()).unwrap();
    let service = otpd_store_tests::service(&store).await;
    let account = store.service(service).await.unwrap().unwrap().account_id;
    let (v, d) = sample(service, 5, None);
    store.create_verification(&v, &d).await.unwrap();
    store
        .record_event(&Event {
            id: uuid::Uuid::now_v7(),
            service_id: service,
            verification_id: None,
            kind: "verification.blocked".into(),
            data: serde_json::json!({"reason": "quarantine", "to": NUMBER}),
            created_at: Timestamp(T0.0 + 3_000),
        })
        .await
        .unwrap();
    let entry = SafeNumber {
        id: uuid::Uuid::now_v7(),
        phone: "+33698765432".into(),
        created_at: T0,
    };
    store.add_safe_number(account, &entry).await.unwrap();
    drop(store);
    let (new, old) = (
        ServerSecret::from_bytes([1; 32]),
        ServerSecret::from_bytes([9; 32]),
    );
    let rotating = SqliteStore::open(&path, Arc::new(Vault::new(&new, &[old]))).unwrap();
    let found = rotating.latest_for(service, NUMBER, T0).await.unwrap();
    assert_eq!(found.map(|f| f.id), Some(v.id), "found under the old index");
    assert!(
        rotating
            .safe_number(account, "+33698765432")
            .await
            .unwrap()
            .is_some()
    );
    assert_eq!(rotating.sealed_under_other_keys().await.unwrap(), 4);
    let mut moved = 0;
    loop {
        let n = rotating.reseal(1).await.unwrap();
        if n == 0 {
            break;
        }
        moved += n;
    }
    assert_eq!(
        moved, 4,
        "verification, its start event, the blocked event, the safe number"
    );
    assert_eq!(rotating.sealed_under_other_keys().await.unwrap(), 0);
    drop(rotating);
    let only_new = SqliteStore::open(&path, Arc::new(Vault::new(&new, &[]))).unwrap();
    assert_eq!(only_new.verification(v.id).await.unwrap().unwrap().to, v.to);
    let found = only_new.latest_for(service, NUMBER, T0).await.unwrap();
    assert_eq!(found.map(|f| f.id), Some(v.id), "found under the new index");
    assert!(
        only_new
            .safe_number(account, "+33698765432")
            .await
            .unwrap()
            .is_some()
    );
    let events = only_new
        .events(&EventFilter {
            account,
            service: None,
            verification: None,
            kind: None,
            since: None,
            until: None,
            after: None,
            limit: 100,
        })
        .await
        .unwrap();
    for event in events
        .iter()
        .filter(|e| e.kind.starts_with("verification."))
    {
        assert_eq!(event.data["to"], NUMBER, "{}", event.kind);
    }
}
