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
        (1..=14).collect::<Vec<i32>>(),
        "each migration applied once"
    );
}

const NUMBER: &str = "+33612345678";

/// Tables and columns of the schema whose text (or the printable bytes of a `bytea`) holds
/// `digits`.
async fn columns_holding(store: &PgStore, digits: &str) -> Vec<String> {
    let columns: Vec<(String, String, String)> = sqlx::query_as(
        "SELECT table_name::text, column_name::text, data_type::text \
         FROM information_schema.columns WHERE table_schema = current_schema() \
         AND data_type IN ('text', 'bytea', 'character varying', 'jsonb')",
    )
    .fetch_all(store.pool())
    .await
    .unwrap();
    assert!(columns.len() > 10, "{columns:?}");
    let mut found = Vec::new();
    for (table, column, kind) in columns {
        let text = if kind == "bytea" {
            format!("encode(\"{column}\", 'escape')")
        } else {
            format!("\"{column}\"::text")
        };
        let sql = format!("SELECT COUNT(*) FROM \"{table}\" WHERE {text} LIKE '%{digits}%'");
        let count: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
            .fetch_one(store.pool())
            .await
            .unwrap();
        if count > 0 {
            found.push(format!("{table}.{column}"));
        }
    }
    found
}

/// After a start, a wrong and a right check, a refused start's event and a safe-list entry,
/// no text or bytea column of any table holds the number's digits; lookups by destination
/// still find it and a second node reads it back.
#[tokio::test]
async fn no_column_holds_a_destination_in_clear() {
    use otpd_core::events::{Event, EventFilter};
    use otpd_core::store::SafeNumber;
    use otpd_core::{
        EventStore, LimitStore, TenantStore, Timestamp, VerificationStatus, VerificationStore,
    };
    use otpd_store_tests::{CODE, Seed, T0, sample, typed};
    let Some((store, schema)) = fresh_store().await else {
        return;
    };
    let service = otpd_store_tests::service(&store).await;
    let account = store.service(service).await.unwrap().unwrap().account_id;
    let (v, d) = sample(service, 5, None);
    assert_eq!(v.to.as_str(), NUMBER);
    store.create_verification(&v, &d).await.unwrap();
    let found = store.latest_for(service, NUMBER, T0).await.unwrap();
    assert_eq!(found.map(|f| f.id), Some(v.id), "found by its destination");
    store
        .check_code(v.id, service, typed(v.id, "000000"), T0.plus_seconds(1))
        .await
        .unwrap();
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
    for event in events
        .iter()
        .filter(|e| e.kind.starts_with("verification."))
    {
        assert_eq!(event.data["to"], NUMBER, "{}", event.kind);
    }
    for digits in ["612345678", "698765432"] {
        assert_eq!(columns_holding(&store, digits).await, Vec::<String>::new());
    }
    let other_node = schema.store().await;
    assert_eq!(
        other_node.verification(v.id).await.unwrap().unwrap().to,
        v.to
    );
}

/// A database written under one server secret refuses another, naming both keys; a vault
/// that still holds the old key (a rotation) opens it.
#[tokio::test]
async fn another_server_secret_is_refused_and_a_rotation_opens() {
    use otpd_core::vault::Vault;
    use otpd_core::{ServerSecret, StoreError, VerificationStore};
    use otpd_store_tests::{Seed, sample};
    use std::sync::Arc;
    let Some((store, schema)) = fresh_store().await else {
        return;
    };
    let service = otpd_store_tests::service(&store).await;
    let (v, d) = sample(service, 5, None);
    store.create_verification(&v, &d).await.unwrap();
    let other = Arc::new(Vault::new(&ServerSecret::from_bytes([1; 32]), &[]));
    match PgStore::connect(&schema.url, &PgSettings::default(), other.clone()).await {
        Err(StoreError::WrongKey(message)) => {
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
    let node = PgStore::connect(&schema.url, &PgSettings::default(), rotated)
        .await
        .unwrap();
    assert_eq!(node.verification(v.id).await.unwrap().unwrap().to, v.to);
}

/// A database written by the release before sealing (migration 10) is sealed at connect: its
/// pending verification still checks, lookups by number and the safe list still work, its
/// events still show the number, and no column holds the digits afterwards.
#[tokio::test]
async fn a_database_from_before_sealing_is_sealed_and_still_checks() {
    use otpd_core::events::EventFilter;
    use otpd_core::{CheckOutcome, EventStore, LimitStore, Timestamp, VerificationStore};
    use otpd_store_tests::{CODE, T0, typed};
    use sqlx::Connection;
    let Some(schema) = TestSchema::create().await else {
        return;
    };
    let mut old = sqlx::PgConnection::connect(&schema.url).await.unwrap();
    let migrations = [
        include_str!("../migrations/0001_initial.sql"),
        include_str!("../migrations/0002_delivery_details.sql"),
        include_str!("../migrations/0003_rate_events.sql"),
        include_str!("../migrations/0004_pumping_and_budgets.sql"),
        include_str!("../migrations/0005_safe_list.sql"),
        include_str!("../migrations/0006_events.sql"),
        include_str!("../migrations/0007_webhooks.sql"),
        include_str!("../migrations/0008_alerts.sql"),
        include_str!("../migrations/0009_quarantines_per_service.sql"),
        include_str!("../migrations/0010_audit.sql"),
    ];
    sqlx::raw_sql("CREATE TABLE otpd_schema_version (version INTEGER NOT NULL)")
        .execute(&mut old)
        .await
        .unwrap();
    for (index, sql) in migrations.iter().enumerate() {
        sqlx::raw_sql(sqlx::AssertSqlSafe(*sql))
            .execute(&mut old)
            .await
            .unwrap();
        sqlx::query("INSERT INTO otpd_schema_version (version) VALUES ($1)")
            .bind(index as i32 + 1)
            .execute(&mut old)
            .await
            .unwrap();
    }
    let account = otpd_core::AccountId::generate();
    let service = otpd_core::ServiceId::generate();
    let id = otpd_core::VerificationId::generate();
    let hash = otpd_core::CodeHasher::new(otpd_core::ServerSecret::from_bytes([42; 32]))
        .hash(id, &otpd_core::OtpCode::from_user_input(CODE));
    let settings = serde_json::to_string(&otpd_core::OtpSettings::default()).unwrap();
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "INSERT INTO accounts VALUES ('{a}', 'old', '\\x{zero}', 0);
         INSERT INTO services (id, account_id, name, settings, created_at, updated_at)
             VALUES ('{s}', '{a}', 'old', '{settings}', 0, 0);
         INSERT INTO verifications (id, service_id, to_number, country, channel, status,
             attempts, max_attempts, ttl, code_hash, pin_type, pin_length, template, sender,
             cost, parts, created_at, expires_at, updated_at)
             VALUES ('{v}', '{s}', '{NUMBER}', 'FR', 'sms', 'pending', 0, 5, 600, '\\x{h}',
             'numbers', 6, 'Your code is {{{{pin}}}}', 'otpd', 0.05, 1, {t0}, {t1}, {t0});
         INSERT INTO events (id, service_id, verification_id, kind, data, created_at)
             VALUES ('{e}', '{s}', '{v}', 'verification.started',
             '{{\"to\":\"{NUMBER}\",\"status\":\"pending\"}}', {t0});
         INSERT INTO safe_numbers VALUES ('{a}', '+33698765432', '{n}', {t0});
         INSERT INTO rate_events VALUES ('fail:x:{NUMBER}', {t0});",
        a = account.uuid(),
        s = service.uuid(),
        v = id.uuid(),
        e = uuid::Uuid::now_v7(),
        n = uuid::Uuid::now_v7(),
        zero = "00".repeat(32),
        h = hex::encode(hash.0),
        t0 = T0.0,
        t1 = T0.plus_seconds(600).0,
    )))
    .execute(&mut old)
    .await
    .unwrap();
    drop(old);
    let store = schema.store().await;
    let found = store.latest_for(service, NUMBER, T0).await.unwrap();
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
        .check_code(id, service, typed(id, CODE), Timestamp(T0.0 + 1_000))
        .await
        .unwrap();
    assert_eq!(checked.outcome, CheckOutcome::Approved);
    for digits in ["612345678", "698765432"] {
        assert_eq!(columns_holding(&store, digits).await, Vec::<String>::new());
    }
}

/// After a key rotation, values sealed under the previous key are still found and read; the
/// reseal job moves every one (verification, events, safe-list entry) to the new key, after
/// which a node without the previous key reads and finds everything.
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
    let Some((store, schema)) = fresh_store().await else {
        return;
    };
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
    let (new, old) = (
        ServerSecret::from_bytes([1; 32]),
        ServerSecret::from_bytes([9; 32]),
    );
    let vault = Arc::new(Vault::new(&new, &[old]));
    let rotating = PgStore::connect(&schema.url, &PgSettings::default(), vault)
        .await
        .unwrap();
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
    assert!(
        moved >= 4,
        "verification, its start event, the blocked event, the safe number"
    );
    assert_eq!(rotating.sealed_under_other_keys().await.unwrap(), 0);
    let only_new = PgStore::connect(
        &schema.url,
        &PgSettings::default(),
        Arc::new(Vault::new(&new, &[])),
    )
    .await
    .unwrap();
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
