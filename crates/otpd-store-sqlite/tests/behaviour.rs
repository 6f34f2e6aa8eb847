//! The shared Store behaviour suite, run against a real SQLite file per test.

use otpd_store_sqlite::SqliteStore;

async fn fresh_store() -> Option<(SqliteStore, tempfile::TempDir)> {
    let dir = tempfile::tempdir().expect("temporary directory");
    let store = SqliteStore::open(dir.path().join("otpd.db")).expect("open store");
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
    let store = SqliteStore::open(&path).unwrap();
    let service = otpd_store_tests::service(&store).await;
    let (v, d) = otpd_store_tests::sample(service, 5, None);
    store.create_verification(&v, &d).await.unwrap();
    drop(store);
    let reopened = SqliteStore::open(&path).unwrap();
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
    drop(SqliteStore::open(&path).unwrap());
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
    drop(SqliteStore::open(&path).unwrap());
    let new = rusqlite::Connection::open(&path).unwrap();
    let verification: (String, u32, String, i64) = new
        .query_row(
            "SELECT to_number, attempts, locale, expires_at FROM verifications WHERE id = x'01'",
            [],
            |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?)),
        )
        .unwrap();
    assert_eq!(verification, ("+33612345678".into(), 2, "fr".into(), 610));
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
