//! The shared Store behaviour suite, run against a real PostgreSQL server, one schema per test.

use otpd_store_postgres::testing::TestSchema;
use otpd_store_postgres::{PgSettings, PgStore};

async fn fresh_store() -> Option<(PgStore, TestSchema)> {
    let schema = TestSchema::create().await?;
    Some((schema.store().await, schema))
}

otpd_store_tests::store_behaviour_tests!(fresh_store());

/// Several nodes starting at once apply the migrations exactly once (advisory lock).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_starts_migrate_once() {
    let Some(schema) = TestSchema::create().await else {
        return;
    };
    let starts: Vec<_> = (0..4)
        .map(|_| {
            let url = schema.url.clone();
            tokio::spawn(async move {
                PgStore::connect(&url, &PgSettings::default(), otpd_store_tests::vault()).await
            })
        })
        .collect();
    let mut stores = Vec::new();
    for start in starts {
        stores.push(start.await.unwrap().expect("every node starts"));
    }
    let versions: Vec<i32> = sqlx::query_scalar("SELECT version FROM otpd_schema_version")
        .fetch_all(stores[0].pool())
        .await
        .unwrap();
    assert_eq!(
        versions,
        (1..=10).collect::<Vec<i32>>(),
        "each migration applied once"
    );
}
