//! The PostgreSQL [`Store`](otpd_core::Store), for several stateless otpd nodes on one
//! database. Every atomic step is one transaction that locks the verification row
//! (`SELECT … FOR UPDATE`), so checks, cancels and resends from any number of nodes serialise
//! on that row; the callback outbox is claimed with `FOR UPDATE SKIP LOCKED`. Migrations run
//! at start under an advisory lock, so nodes starting together apply them once. Each store
//! port is implemented in the module of its concern (`verifications`, `deliveries`,
//! `tenants`, `limits`, `events`, `callbacks`, `audit`, `destinations`, `operators`; starts and checks are grouped per node in
//! `starts`, `checks`, `records` and `groups`); this file keeps connecting, migrations and the
//! row writes they share.

mod audit;
mod callbacks;
mod checks;
mod deliveries;
mod destinations;
mod events;
mod groups;
mod keys;
mod limits;
mod operators;
mod protect;
mod records;
mod retention;
mod rows;
mod starts;
mod tenants;
mod verifications;

use std::sync::Arc;
use std::time::Duration;

use otpd_core::events::Event;
use otpd_core::store::{DELIVERY_LEASE_SECONDS, DeliveryAttempt, Spend};
use otpd_core::vault::Vault;
use otpd_core::{StoreError, Verification, VerificationStatus};
use sqlx::PgConnection;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use uuid::Uuid;

const MIGRATIONS: &[&str] = &[
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
    include_str!("../migrations/0011_sealed_destinations.sql"),
    include_str!("../migrations/0012_retention.sql"),
    include_str!("../migrations/0013_operators.sql"),
    include_str!("../migrations/0014_rare_event_kinds.sql"),
];

/// Opens the transaction of a grouped statement with sequential scans priced out, so the
/// generic plan PostgreSQL caches for these prepared statements is the index lookup even when
/// it was planned on a new database's small tables (measurements: docs/BENCHMARKS.md). Sent
/// as one simple query: no round trip more than a plain `BEGIN`.
async fn begin_keyed(
    pool: &PgPool,
) -> Result<sqlx::Transaction<'static, sqlx::Postgres>, StoreError> {
    pool.begin_with("BEGIN; SET LOCAL enable_seqscan = off")
        .await
        .map_err(db_error)
}

/// Any number; every otpd node uses it to take turns applying migrations.
const MIGRATION_LOCK: i64 = 0x6f74_7064;

pub(crate) fn db_error(error: sqlx::Error) -> StoreError {
    match &error {
        sqlx::Error::Database(e) if e.code().as_deref() == Some("23505") => {
            StoreError::Conflict(error.to_string())
        }
        sqlx::Error::Io(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Tls(_)
        | sqlx::Error::Protocol(_) => StoreError::Unavailable(error.to_string()),
        sqlx::Error::Database(e)
            if e.code().as_deref().is_some_and(|code| {
                // 57P01 admin shutdown, 57P03 cannot connect now, 08* connection errors,
                // 57014 statement timeout.
                code.starts_with("08") || code == "57P01" || code == "57P03" || code == "57014"
            }) =>
        {
            StoreError::Unavailable(error.to_string())
        }
        _ => StoreError::Database(error.to_string()),
    }
}

/// Pool and timeout settings (documented in docs/configuration.md under `[postgres]`).
#[derive(Debug, Clone)]
pub struct PgSettings {
    /// Connections per node.
    pub max_connections: u32,
    /// How long a request waits for a free connection before failing with 503.
    pub acquire_timeout: Duration,
    /// Server-side limit on one statement.
    pub statement_timeout: Duration,
}

impl Default for PgSettings {
    fn default() -> Self {
        PgSettings {
            max_connections: 16,
            acquire_timeout: Duration::from_secs(5),
            statement_timeout: Duration::from_secs(5),
        }
    }
}

/// The PostgreSQL store; cheap to clone (clones share the pool).
#[derive(Clone)]
pub struct PgStore {
    pool: PgPool,
    /// Seals event destinations and keys the destination counters (verifications' own
    /// columns are not sealed on PostgreSQL yet: docs/data-protection.md).
    vault: Arc<Vault>,
    /// New verifications' atomic steps, grouped per node (see `starts`).
    starts: groups::Groups<starts::Starts>,
    /// Delivery records, grouped per node (see `records`).
    records: groups::Groups<records::Records>,
    /// Checks of codes, grouped per node (see `checks`).
    checks: groups::Groups<checks::Checks>,
}

impl PgStore {
    /// Connects to `url` (`postgres://…`; an `options=-c search_path=…` parameter selects a
    /// schema) and applies pending migrations.
    pub async fn connect(
        url: &str,
        settings: &PgSettings,
        vault: Arc<Vault>,
    ) -> Result<PgStore, StoreError> {
        let options: PgConnectOptions = url.parse().map_err(|e: sqlx::Error| {
            StoreError::Database(format!("invalid PostgreSQL URL: {e}"))
        })?;
        let options = options.options([(
            "statement_timeout",
            format!("{}ms", settings.statement_timeout.as_millis()),
        )]);
        let pool = PgPoolOptions::new()
            // A broken connection surfaces as an error (503) on first use and is replaced;
            // pinging before every acquire would add a round trip to every request.
            .test_before_acquire(false)
            .max_connections(settings.max_connections)
            .acquire_timeout(settings.acquire_timeout)
            .connect_with(options)
            .await
            .map_err(db_error)?;
        let starts = groups::Groups::spawn(pool.clone(), vault.clone());
        let records = groups::Groups::spawn(pool.clone(), vault.clone());
        let checks = groups::Groups::spawn(pool.clone(), vault.clone());
        let store = PgStore {
            pool,
            vault,
            starts,
            records,
            checks,
        };
        store.migrate().await?;
        Ok(store)
    }

    async fn migrate(&self) -> Result<(), StoreError> {
        let mut connection = self.pool.acquire().await.map_err(db_error)?;
        sqlx::query("SELECT pg_advisory_lock($1)")
            .bind(MIGRATION_LOCK)
            .execute(&mut *connection)
            .await
            .map_err(db_error)?;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64);
        let mut result = apply_migrations(&mut connection).await;
        if result.is_ok() {
            result = protect::check_keys(&mut connection, &self.vault, now).await;
        }
        if result.is_ok() {
            result = protect::seal_listed_rows(&mut connection, &self.vault).await;
        }
        sqlx::query("SELECT pg_advisory_unlock($1)")
            .bind(MIGRATION_LOCK)
            .execute(&mut *connection)
            .await
            .map_err(db_error)?;
        result
    }

    /// The pool (tests use it to prepare schemas).
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }
}

async fn apply_migrations(connection: &mut PgConnection) -> Result<(), StoreError> {
    sqlx::raw_sql("CREATE TABLE IF NOT EXISTS otpd_schema_version (version INTEGER NOT NULL)")
        .execute(&mut *connection)
        .await
        .map_err(db_error)?;
    let applied: Option<i32> = sqlx::query_scalar("SELECT MAX(version) FROM otpd_schema_version")
        .fetch_one(&mut *connection)
        .await
        .map_err(db_error)?;
    let applied = applied.unwrap_or(0).max(0) as usize;
    for (index, sql) in MIGRATIONS.iter().enumerate().skip(applied) {
        let mut transaction = sqlx::Connection::begin(&mut *connection)
            .await
            .map_err(db_error)?;
        sqlx::raw_sql(sqlx::AssertSqlSafe(*sql))
            .execute(&mut *transaction)
            .await
            .map_err(db_error)?;
        sqlx::query("INSERT INTO otpd_schema_version (version) VALUES ($1)")
            .bind(index as i32 + 1)
            .execute(&mut *transaction)
            .await
            .map_err(db_error)?;
        transaction.commit().await.map_err(db_error)?;
        tracing::info!(version = index + 1, "applied PostgreSQL migration");
    }
    Ok(())
}

/// Writes a new status and attempt count, and queues the status callback when due.
async fn insert_event(connection: &mut PgConnection, event: &Event) -> Result<(), StoreError> {
    // One statement (one round trip): the event, fanned out to the service's webhooks in the
    // same transaction, so nothing is lost.
    sqlx::query(
        "WITH event AS (INSERT INTO events (id, service_id, verification_id, kind, data, created_at) \
         VALUES ($1, $4, $2, $5, $6, $3)) \
         INSERT INTO webhook_deliveries (id, webhook_id, event_id, verification_id, next_attempt_at, \
         created_at, updated_at) \
         SELECT gen_random_uuid(), w.id, $1, $2, $3, $3, $3 FROM webhooks w \
         WHERE w.service_id = $4 AND w.enabled \
         AND (w.event_types = '*' OR w.event_types LIKE '%,' || $5 || ',%')",
    )
    .bind(event.id)
    .bind(event.verification_id.map(|v| v.uuid()))
    .bind(event.created_at.0)
    .bind(event.service_id.uuid())
    .bind(&event.kind)
    .bind(event.data.to_string())
    .execute(&mut *connection)
    .await
    .map_err(db_error)?;
    Ok(())
}

/// The event a new status or attempt count records: the new status's, or a counted failure.
fn transition_kind(
    verification: &Verification,
    status: VerificationStatus,
    attempts: u32,
) -> Option<&'static str> {
    if status != verification.status {
        Some(otpd_core::events::status_kind(status))
    } else if attempts > verification.attempts {
        Some("verification.check_failed")
    } else {
        None
    }
}

/// A new verification to write, with what its start counts.
pub(crate) struct NewStart<'a> {
    pub(crate) verification: &'a Verification,
    pub(crate) delivery: &'a DeliveryAttempt,
    /// The limit keys this start counts.
    pub(crate) counted: Vec<&'a str>,
    /// The edge of its widest window: older events of those keys may be deleted.
    pub(crate) forget_before: i64,
}

/// Writes new verifications, their first deliveries, their two events each (fanned out to
/// the services' webhooks) and the starts' rate-limit events, in one statement whatever their
/// number (column arrays): one round trip and one plan for a whole group of starts, inside
/// the caller's transaction.
async fn insert_verifications(
    connection: &mut PgConnection,
    vault: &Vault,
    starts: &[NewStart<'_>],
) -> Result<(), StoreError> {
    let mut vs = VerificationColumns::default();
    let mut ds = DeliveryColumns::default();
    let (mut event_ids, mut event_services, mut event_verifications) = (vec![], vec![], vec![]);
    let (mut event_kinds, mut event_data, mut event_times) = (vec![], vec![], vec![]);
    let (mut counted_keys, mut counted_at) = (vec![], vec![]);
    // The earliest edge of all: an event older than it is outside every counted key's window
    // (a join on per-key edges was planned as a scan of the whole table).
    let forget_before = starts.iter().map(|s| s.forget_before).min().unwrap_or(0);
    for start in starts {
        let v = start.verification;
        vs.push(v, vault);
        ds.push(start.delivery);
        let events = [
            otpd_core::events::verification_event("verification.started", v, v.created_at, vault),
            otpd_core::events::delivery_event(v.service_id, start.delivery, v.created_at),
        ];
        for event in events {
            event_ids.push(event.id);
            event_services.push(v.service_id.uuid());
            event_verifications.push(v.id.uuid());
            event_kinds.push(event.kind);
            event_data.push(event.data.to_string());
            event_times.push(v.created_at.0);
        }
        for key in &start.counted {
            counted_keys.push(*key);
            counted_at.push(v.created_at.0);
        }
    }
    sqlx::query(concat!(
        "WITH v AS (INSERT INTO verifications (",
        verification_columns!(),
        ", to_index, to_prefix) SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::bytea[], $4::text[], $5::text[], \
         $6::text[], $7::int[], $8::int[], $9::int[], $10::bytea[], $11::text[], $12::int[], \
         $13::text[], $14::text[], $15::uuid[], $16::text[], $17::float8[], $18::int[], \
         $19::int8[], $20::int8[], $21::int8[], $22::bytea[], $23::text[], $24::text[], \
         $25::text[], $49::text[], $50::text[])), \
         d AS (INSERT INTO deliveries (",
        delivery_columns!(),
        ", lease_until) SELECT * FROM unnest($26::uuid[], $27::uuid[], $28::text[], $29::text[], \
         $30::text[], $31::text[], $32::text[], $33::int8[], $34::int8[], $35::text[], \
         $36::int[], $37::float8[], $38::text[], $39::int8[])), \
         n AS (SELECT * FROM unnest($40::uuid[], $41::uuid[], $42::uuid[], $43::text[], \
         $44::text[], $45::int8[]) AS n(id, service_id, verification_id, kind, data, created_at)), \
         e AS (INSERT INTO events (id, service_id, verification_id, kind, data, created_at) \
         SELECT * FROM n), \
         gone AS (DELETE FROM rate_events WHERE key = ANY($46::text[]) AND at <= $48), \
         counted AS (INSERT INTO rate_events (key, at) SELECT * FROM unnest($46::text[], $47::int8[])) \
         INSERT INTO webhook_deliveries (id, webhook_id, event_id, verification_id, \
         next_attempt_at, created_at, updated_at) \
         SELECT gen_random_uuid(), w.id, n.id, n.verification_id, n.created_at, n.created_at, \
         n.created_at FROM n JOIN webhooks w ON w.service_id = n.service_id AND w.enabled \
         AND (w.event_types = '*' OR w.event_types LIKE '%,' || n.kind || ',%')"
    ))
    .bind(vs.id)
    .bind(vs.service_id)
    .bind(vs.to_sealed)
    .bind(vs.country)
    .bind(vs.channel)
    .bind(vs.status)
    .bind(vs.attempts)
    .bind(vs.max_attempts)
    .bind(vs.ttl)
    .bind(vs.code_hash)
    .bind(vs.pin_type)
    .bind(vs.pin_length)
    .bind(vs.template)
    .bind(vs.sender)
    .bind(vs.track_id)
    .bind(vs.callback_url)
    .bind(vs.cost)
    .bind(vs.parts)
    .bind(vs.created_at)
    .bind(vs.expires_at)
    .bind(vs.updated_at)
    .bind(vs.code_seed)
    .bind(vs.amount)
    .bind(vs.payee)
    .bind(vs.locale)
    .bind(ds.id)
    .bind(ds.verification_id)
    .bind(ds.channel)
    .bind(ds.status)
    .bind(ds.provider)
    .bind(ds.provider_ref)
    .bind(ds.error)
    .bind(ds.created_at)
    .bind(ds.updated_at)
    .bind(ds.error_code)
    .bind(ds.segments)
    .bind(ds.price)
    .bind(ds.price_unit)
    .bind(ds.lease_until)
    .bind(event_ids)
    .bind(event_services)
    .bind(event_verifications)
    .bind(event_kinds)
    .bind(event_data)
    .bind(event_times)
    .bind(counted_keys)
    .bind(counted_at)
    .bind(forget_before)
    .bind(vs.to_index)
    .bind(vs.to_prefix)
    .execute(&mut *connection)
    .await
    .map_err(db_error)?;
    Ok(())
}

/// Verifications as column arrays, in `verification_columns!` order (one `unnest` inserts
/// them all).
#[derive(Default)]
struct VerificationColumns {
    id: Vec<Uuid>,
    service_id: Vec<Uuid>,
    to_sealed: Vec<Vec<u8>>,
    country: Vec<Option<String>>,
    channel: Vec<&'static str>,
    status: Vec<&'static str>,
    attempts: Vec<i32>,
    max_attempts: Vec<i32>,
    ttl: Vec<i32>,
    code_hash: Vec<Vec<u8>>,
    pin_type: Vec<&'static str>,
    pin_length: Vec<i32>,
    template: Vec<String>,
    sender: Vec<String>,
    track_id: Vec<Option<Uuid>>,
    callback_url: Vec<Option<String>>,
    cost: Vec<f64>,
    parts: Vec<i32>,
    created_at: Vec<i64>,
    expires_at: Vec<i64>,
    updated_at: Vec<i64>,
    code_seed: Vec<Option<Vec<u8>>>,
    amount: Vec<Option<String>>,
    payee: Vec<Option<String>>,
    locale: Vec<Option<String>>,
    to_index: Vec<String>,
    to_prefix: Vec<Option<String>>,
}

impl VerificationColumns {
    fn push(&mut self, v: &Verification, vault: &Vault) {
        self.id.push(v.id.uuid());
        self.service_id.push(v.service_id.uuid());
        self.to_sealed.push(vault.seal(v.to.as_str()));
        self.to_index.push(vault.blind(v.to.as_str()).to_hex());
        self.to_prefix
            .push(otpd_core::vault::clear_prefix(v.to.as_str()));
        self.country.push(v.country.map(|c| c.as_str().to_string()));
        self.channel.push(v.channel.as_str());
        self.status.push(v.status.as_str());
        self.attempts.push(v.attempts as i32);
        self.max_attempts.push(v.max_attempts.get() as i32);
        self.ttl.push(v.ttl.get() as i32);
        self.code_hash.push(v.code_hash.0.to_vec());
        self.pin_type.push(v.pin_type.as_str());
        self.pin_length.push(v.pin_length.get() as i32);
        self.template.push(v.template.as_str().to_string());
        self.sender.push(v.from.as_str().to_string());
        self.track_id.push(v.track_id);
        self.callback_url.push(v.callback_url.clone());
        self.cost.push(v.cost);
        self.parts.push(v.parts as i32);
        self.created_at.push(v.created_at.0);
        self.expires_at.push(v.expires_at.0);
        self.updated_at.push(v.updated_at.0);
        self.code_seed.push(v.code_seed.map(|seed| seed.0.to_vec()));
        self.amount.push(v.amount.clone());
        self.payee.push(v.payee.clone());
        self.locale.push(v.locale.clone());
    }
}

/// New deliveries as column arrays, in `delivery_columns!` order then `lease_until`.
#[derive(Default)]
struct DeliveryColumns {
    id: Vec<Uuid>,
    verification_id: Vec<Uuid>,
    channel: Vec<&'static str>,
    status: Vec<&'static str>,
    provider: Vec<Option<String>>,
    provider_ref: Vec<Option<String>>,
    error: Vec<Option<String>>,
    created_at: Vec<i64>,
    updated_at: Vec<i64>,
    error_code: Vec<Option<String>>,
    segments: Vec<Option<i32>>,
    price: Vec<Option<f64>>,
    price_unit: Vec<Option<String>>,
    lease_until: Vec<i64>,
}

impl DeliveryColumns {
    fn push(&mut self, d: &DeliveryAttempt) {
        self.id.push(d.id.uuid());
        self.verification_id.push(d.verification_id.uuid());
        self.channel.push(d.channel.as_str());
        self.status.push(d.status.as_str());
        self.provider.push(d.provider.clone());
        self.provider_ref.push(d.provider_ref.clone());
        self.error.push(d.error.clone());
        self.created_at.push(d.created_at.0);
        self.updated_at.push(d.updated_at.0);
        self.error_code.push(d.error_code.clone());
        self.segments.push(d.segments.map(|s| s as i32));
        self.price.push(d.price);
        self.price_unit.push(d.price_unit.clone());
        self.lease_until
            .push(d.created_at.plus_seconds(DELIVERY_LEASE_SECONDS).0);
    }
}

/// A PostgreSQL statement being bound.
type PgQuery<'q> = sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments>;

/// Binds a new delivery's fourteen values next (`lease_until` tenth): the start's single
/// statement and a resend's insert write the same row.
fn bind_delivery<'q>(query: PgQuery<'q>, d: &'q DeliveryAttempt) -> PgQuery<'q> {
    query
        .bind(d.id.uuid())
        .bind(d.verification_id.uuid())
        .bind(d.channel.as_str())
        .bind(d.status.as_str())
        .bind(&d.provider)
        .bind(&d.provider_ref)
        .bind(&d.error)
        .bind(d.created_at.0)
        .bind(d.updated_at.0)
        .bind(d.created_at.plus_seconds(DELIVERY_LEASE_SECONDS).0)
        .bind(&d.error_code)
        .bind(d.segments.map(|s| s as i32))
        .bind(d.price)
        .bind(&d.price_unit)
}

/// A quarantine row: prefix, reason, until, created_at, service_id (nil: every service).
type QuarantineRow = (String, String, i64, i64, uuid::Uuid);

/// Adds to a capped spend; the new total, or `None` when it would pass the cap.
async fn add_spend(
    connection: &mut PgConnection,
    spend: &Spend,
) -> Result<Option<f64>, StoreError> {
    sqlx::query_scalar(
        "INSERT INTO spend (key, total) SELECT $1, $2 WHERE $2 <= $3 \
         ON CONFLICT (key) DO UPDATE SET total = spend.total + excluded.total \
         WHERE spend.total + excluded.total <= $3 RETURNING total",
    )
    .bind(&spend.key)
    .bind(spend.amount)
    .bind(spend.cap)
    .fetch_optional(&mut *connection)
    .await
    .map_err(db_error)
}

/// Throw-away schemas for tests: each test gets its own schema in the test database and drops
/// it when done, so suites run in parallel against one PostgreSQL server.
pub mod testing {
    use sqlx::Connection;

    /// Where tests find PostgreSQL: `OTPD_TEST_POSTGRES_URL`, else the local trust-auth server.
    pub fn server_url() -> String {
        std::env::var("OTPD_TEST_POSTGRES_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_string())
    }

    /// A schema that is dropped (with everything in it) when this value is dropped.
    pub struct TestSchema {
        name: String,
        /// A database URL whose connections use the schema.
        pub url: String,
    }

    impl TestSchema {
        /// Creates a fresh schema. `None` (with a loud message) when PostgreSQL cannot be
        /// reached and `CI` is not set; in CI an unreachable server is a failure.
        pub async fn create() -> Option<TestSchema> {
            let server = server_url();
            let mut connection = match sqlx::PgConnection::connect(&server).await {
                Ok(connection) => connection,
                Err(error) if std::env::var_os("CI").is_none() => {
                    eprintln!(
                        "SKIPPED: PostgreSQL is not reachable at {server} ({error}); set OTPD_TEST_POSTGRES_URL or start it"
                    );
                    return None;
                }
                Err(error) => panic!("PostgreSQL is not reachable at {server}: {error}"),
            };
            let name = format!("otpd_test_{}", uuid::Uuid::now_v7().simple());
            sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {name}")))
                .execute(&mut connection)
                .await
                .expect("create a test schema");
            let separator = if server.contains('?') { '&' } else { '?' };
            let url = format!("{server}{separator}options=-c%20search_path%3D{name}");
            Some(TestSchema { name, url })
        }

        /// A store on this schema with default settings, migrated (the tests' usual start;
        /// call it again for a second node on the same database).
        pub async fn store(&self) -> crate::PgStore {
            crate::PgStore::connect(
                &self.url,
                &Default::default(),
                // The vault of the shared behaviour suite (otpd_store_tests::vault).
                std::sync::Arc::new(otpd_core::vault::Vault::new(
                    &otpd_core::ServerSecret::from_bytes([9; 32]),
                    &[],
                )),
            )
            .await
            .expect("connect to the test schema and migrate it")
        }
    }

    impl Drop for TestSchema {
        fn drop(&mut self) {
            let (server, name) = (server_url(), self.name.clone());
            let _ = std::thread::spawn(move || {
                let runtime = tokio_runtime();
                runtime.block_on(async move {
                    if let Ok(mut connection) = sqlx::PgConnection::connect(&server).await {
                        // A test's in-process server can still hold a transaction in this
                        // schema (a delivery worker's or sweeper's) on the runtime this drop
                        // blocks: its commit can never come, so end those sessions first, or
                        // the drop would wait for them forever.
                        let _ = sqlx::raw_sql("SET lock_timeout = '2s'")
                            .execute(&mut connection)
                            .await;
                        for _ in 0..5 {
                            let _ = sqlx::query(
                                "SELECT pg_terminate_backend(l.pid) FROM pg_locks l \
                                 JOIN pg_class c ON c.oid = l.relation \
                                 JOIN pg_namespace n ON n.oid = c.relnamespace \
                                 WHERE n.nspname = $1 AND l.pid <> pg_backend_pid()",
                            )
                            .bind(&name)
                            .execute(&mut connection)
                            .await;
                            let drop = format!("DROP SCHEMA IF EXISTS {name} CASCADE");
                            if sqlx::raw_sql(sqlx::AssertSqlSafe(drop))
                                .execute(&mut connection)
                                .await
                                .is_ok()
                            {
                                break;
                            }
                        }
                    }
                });
            })
            .join();
        }
    }

    fn tokio_runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a test runtime")
    }
}
