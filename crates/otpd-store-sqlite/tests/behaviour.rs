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
