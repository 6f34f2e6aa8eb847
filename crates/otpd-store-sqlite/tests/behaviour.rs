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
    use otpd_core::Store;
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
