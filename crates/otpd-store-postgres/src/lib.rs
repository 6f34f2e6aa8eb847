//! The PostgreSQL [`Store`], for several stateless otpd nodes on one database. Every atomic
//! step is one transaction that locks the verification row (`SELECT … FOR UPDATE`), so checks,
//! cancels and resends from any number of nodes serialise on that row; the callback outbox is
//! claimed with `FOR UPDATE SKIP LOCKED`. Migrations run at start under an advisory lock, so
//! nodes starting together apply them once.

mod checks;
mod groups;
mod records;
mod rows;
mod starts;

use std::time::Duration;

use otpd_core::auth::{AccessToken, AccountRecord, ApiKeyRecord, Application};
use otpd_core::events::{
    AttemptFilter, AttemptSummary, Event, EventFilter, Webhook, WebhookJob, WebhookLogEntry,
    WebhookOutcome,
};
use otpd_core::store::{
    CallbackJob, CheckResult, DELIVERY_LEASE_SECONDS, DeliveryAttempt, DeliveryUpdate, OutboxStats,
    Quarantine, RateCount, ReceiptUpdate, ResendOutcome, SafeNumber, ServiceRecord, Spend,
    StartDecision, StartPlan,
};
use otpd_core::{
    AccountId, ApiKeyId, ApplicationId, Candidate, CodeHash, DeliveryId, ServiceId, StatusChange,
    Store, StoreError, Timestamp, Verification, VerificationId, VerificationStatus,
    decide_status_change,
};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::{PgConnection, Row};
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
];

/// Opens the transaction of a grouped statement (arrays of a group's values, every row found
/// by an index). Those statements are prepared once per connection, and PostgreSQL caches a
/// generic plan after five runs: planned while a new database's tables were small, it
/// scanned them whole as they grew until autovacuum's ANALYZE, a minute or more later (8,222
/// sequential scans reading 37.7 M rows in a 10 s run on a fresh database). With sequential
/// scans priced out for these transactions only, the cached plan is the index lookup whatever
/// the tables' size when it was made (a scan is still used where no index applies). Planning
/// each group afresh instead (unnamed statements) cost a third of `start`'s throughput in
/// parsing and planning; `plan_cache_mode = force_custom_plan` on every connection cost
/// `check` ~20 %. Sent as one simple query: no round trip more than a plain `BEGIN`.
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
    pub async fn connect(url: &str, settings: &PgSettings) -> Result<PgStore, StoreError> {
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
        let starts = groups::Groups::spawn(pool.clone());
        let records = groups::Groups::spawn(pool.clone());
        let checks = groups::Groups::spawn(pool.clone());
        let store = PgStore {
            pool,
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
        let result = apply_migrations(&mut connection).await;
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

async fn load_for_update(
    connection: &mut PgConnection,
    id: VerificationId,
) -> Result<Option<Verification>, StoreError> {
    let row = sqlx::query(concat!(
        "SELECT ",
        verification_columns!(),
        " FROM verifications WHERE id = $1 FOR UPDATE"
    ))
    .bind(id.uuid())
    .fetch_optional(&mut *connection)
    .await
    .map_err(db_error)?;
    row.as_ref().map(rows::verification).transpose()
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

/// The event of a delivery's new state, with its verification's service.
async fn insert_delivery_event(
    connection: &mut PgConnection,
    delivery: &DeliveryAttempt,
    now: Timestamp,
) -> Result<(), StoreError> {
    let service: Option<Uuid> =
        sqlx::query_scalar("SELECT service_id FROM verifications WHERE id = $1")
            .bind(delivery.verification_id.uuid())
            .fetch_optional(&mut *connection)
            .await
            .map_err(db_error)?;
    let Some(service) = service else {
        return Ok(());
    };
    insert_event(
        connection,
        &otpd_core::events::delivery_event(ServiceId::from_uuid(service), delivery, now),
    )
    .await
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

async fn record_transition(
    connection: &mut PgConnection,
    verification: &mut Verification,
    status: VerificationStatus,
    attempts: u32,
    now: Timestamp,
) -> Result<(), StoreError> {
    let changed = status != verification.status;
    if !changed && attempts == verification.attempts {
        return Ok(());
    }
    sqlx::query(
        "UPDATE verifications SET status = $1, attempts = $2, updated_at = $3 WHERE id = $4",
    )
    .bind(status.as_str())
    .bind(attempts as i32)
    .bind(now.0)
    .bind(verification.id.uuid())
    .execute(&mut *connection)
    .await
    .map_err(db_error)?;
    let kind = transition_kind(verification, status, attempts);
    verification.status = status;
    verification.attempts = attempts;
    verification.updated_at = now;
    if let Some(kind) = kind {
        insert_event(
            connection,
            &otpd_core::events::verification_event(kind, verification, now),
        )
        .await?;
    }
    if let (true, Some(url)) = (changed, &verification.callback_url) {
        sqlx::query(
            "INSERT INTO callbacks (id, verification_id, url, status, next_attempt_at, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $5, $5)",
        )
        .bind(Uuid::now_v7())
        .bind(verification.id.uuid())
        .bind(url)
        .bind(status.as_str())
        .bind(now.0)
        .execute(&mut *connection)
        .await
        .map_err(db_error)?;
    }
    Ok(())
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
        vs.push(v);
        ds.push(start.delivery);
        let events = [
            otpd_core::events::verification_event("verification.started", v, v.created_at),
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
        ") SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::text[], $5::text[], \
         $6::text[], $7::int[], $8::int[], $9::int[], $10::bytea[], $11::text[], $12::int[], \
         $13::text[], $14::text[], $15::uuid[], $16::text[], $17::float8[], $18::int[], \
         $19::int8[], $20::int8[], $21::int8[], $22::bytea[], $23::text[], $24::text[], \
         $25::text[])), \
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
    .bind(vs.to_number)
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
    to_number: Vec<String>,
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
}

impl VerificationColumns {
    fn push(&mut self, v: &Verification) {
        self.id.push(v.id.uuid());
        self.service_id.push(v.service_id.uuid());
        self.to_number.push(v.to.as_str().to_string());
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

async fn insert_delivery(
    connection: &mut PgConnection,
    d: &DeliveryAttempt,
) -> Result<(), StoreError> {
    let query = sqlx::query(concat!(
        "INSERT INTO deliveries (",
        delivery_columns!(),
        ", lease_until) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $11, $12, $13, $14, $10)"
    ));
    bind_delivery(query, d)
        .execute(&mut *connection)
        .await
        .map_err(db_error)?;
    Ok(())
}

/// A quarantine row: prefix, reason, until, created_at, service_id (nil: every service).
type QuarantineRow = (String, String, i64, i64, uuid::Uuid);

fn quarantine_of((prefix, reason, until, created_at, service): QuarantineRow) -> Quarantine {
    Quarantine {
        prefix,
        service: (!service.is_nil()).then(|| ServiceId::from_uuid(service)),
        reason,
        until: Timestamp(until),
        created_at: Timestamp(created_at),
    }
}

/// The filter of attempt lists and summaries; binds $1–$10.
macro_rules! attempt_where {
    () => {
        "($1::uuid IS NULL OR s.account_id = $1) \
         AND ($2::uuid IS NULL OR v.service_id = $2) \
         AND ($3::uuid IS NULL OR v.id = $3) \
         AND ($4::text IS NULL OR v.to_number = $4) \
         AND ($5::text IS NULL OR v.country = $5) \
         AND ($6::text IS NULL OR v.to_number LIKE $6) \
         AND ($7::text IS NULL OR d.channel = $7) \
         AND ($8::bigint IS NULL OR d.created_at >= $8) \
         AND ($9::bigint IS NULL OR d.created_at < $9) \
         AND ($10::boolean IS NULL OR (v.status = 'approved') = $10)"
    };
}

/// A `webhooks` row as selected.
type WebhookRow = (Uuid, Uuid, String, String, bool, String, i64, i64);

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

/// Events of `key` after `since`, and the oldest of them.
async fn rate_window(
    connection: &mut PgConnection,
    key: &str,
    since: i64,
) -> Result<(u32, Option<i64>), StoreError> {
    let (count, oldest): (i64, Option<i64>) =
        sqlx::query_as("SELECT COUNT(*), MIN(at) FROM rate_events WHERE key = $1 AND at > $2")
            .bind(key)
            .bind(since)
            .fetch_one(&mut *connection)
            .await
            .map_err(db_error)?;
    Ok((count.clamp(0, u32::MAX as i64) as u32, oldest))
}

async fn insert_service(
    connection: &mut PgConnection,
    service: &ServiceRecord,
) -> Result<(), StoreError> {
    let settings = serde_json::to_string(&service.settings)
        .map_err(|e| StoreError::Corrupt(format!("settings do not serialise: {e}")))?;
    sqlx::query(concat!(
        "INSERT INTO services (",
        service_columns!(),
        ") VALUES ($1, $2, $3, $4, $5, $6)"
    ))
    .bind(service.id.uuid())
    .bind(service.account_id.uuid())
    .bind(&service.name)
    .bind(settings)
    .bind(service.created_at.0)
    .bind(service.updated_at.0)
    .execute(&mut *connection)
    .await
    .map_err(db_error)?;
    Ok(())
}

impl Store for PgStore {
    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map_err(db_error)?;
        Ok(())
    }

    async fn create_verification(
        &self,
        v: &Verification,
        delivery: &DeliveryAttempt,
    ) -> Result<(), StoreError> {
        let mut tx = begin_keyed(&self.pool).await?;
        insert_verifications(
            &mut tx,
            &[NewStart {
                verification: v,
                delivery,
                counted: Vec::new(),
                forget_before: 0,
            }],
        )
        .await?;
        tx.commit().await.map_err(db_error)
    }

    async fn start_verification(&self, plan: &StartPlan) -> Result<StartDecision, StoreError> {
        self.starts.call(plan.clone()).await
    }

    async fn verification(&self, id: VerificationId) -> Result<Option<Verification>, StoreError> {
        let row = sqlx::query(concat!(
            "SELECT ",
            verification_columns!(),
            " FROM verifications WHERE id = $1"
        ))
        .bind(id.uuid())
        .fetch_optional(&self.pool)
        .await
        .map_err(db_error)?;
        row.as_ref().map(rows::verification).transpose()
    }

    async fn check_code(
        &self,
        id: VerificationId,
        service: ServiceId,
        candidate: Candidate,
        now: Timestamp,
    ) -> Result<CheckResult, StoreError> {
        self.checks
            .call(checks::CheckCall {
                id,
                service,
                candidate,
                now,
            })
            .await
    }

    async fn set_status(
        &self,
        id: VerificationId,
        service: ServiceId,
        target: VerificationStatus,
        now: Timestamp,
    ) -> Result<StatusChange, StoreError> {
        let mut tx = self.pool.begin().await.map_err(db_error)?;
        let Some(mut verification) = load_for_update(&mut tx, id).await? else {
            return Ok(StatusChange::NotFound);
        };
        if verification.service_id != service {
            return Ok(StatusChange::WrongService);
        }
        let plan = decide_status_change(&verification, target, now);
        if let Some(status) = plan.record {
            let attempts = verification.attempts;
            record_transition(&mut tx, &mut verification, status, attempts, now).await?;
        }
        tx.commit().await.map_err(db_error)?;
        Ok(match plan.changed {
            true => StatusChange::Changed(Box::new(verification)),
            false => StatusChange::NotPending(Box::new(verification)),
        })
    }

    async fn latest_for(
        &self,
        service: ServiceId,
        to: &str,
        now: Timestamp,
    ) -> Result<Option<Verification>, StoreError> {
        let row = sqlx::query(concat!(
            "SELECT ",
            verification_columns!(),
            " FROM verifications WHERE service_id = $1 AND to_number = $2 AND expires_at > $3 \
             ORDER BY id DESC LIMIT 1"
        ))
        .bind(service.uuid())
        .bind(to)
        .bind(now.0)
        .fetch_optional(&self.pool)
        .await
        .map_err(db_error)?;
        row.as_ref().map(rows::verification).transpose()
    }

    async fn resend(
        &self,
        id: VerificationId,
        delivery: &DeliveryAttempt,
        new_hash: Option<CodeHash>,
        max_sends: u32,
        now: Timestamp,
    ) -> Result<ResendOutcome, StoreError> {
        let mut tx = self.pool.begin().await.map_err(db_error)?;
        let Some(mut verification) = load_for_update(&mut tx, id).await? else {
            return Ok(ResendOutcome::NotPending);
        };
        if verification.status_at(now) != VerificationStatus::Pending {
            return Ok(ResendOutcome::NotPending);
        }
        let sends: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM deliveries WHERE verification_id = $1")
                .bind(id.uuid())
                .fetch_one(&mut *tx)
                .await
                .map_err(db_error)?;
        if sends >= i64::from(max_sends) {
            return Ok(ResendOutcome::TooManySends);
        }
        insert_delivery(&mut tx, delivery).await?;
        insert_event(
            &mut tx,
            &otpd_core::events::delivery_event(verification.service_id, delivery, now),
        )
        .await?;
        if let Some(hash) = new_hash {
            verification.code_hash = hash;
            verification.code_seed = None;
        }
        sqlx::query("UPDATE verifications SET code_hash = $1, code_seed = $2, updated_at = $3 WHERE id = $4")
            .bind(verification.code_hash.0.as_slice())
            .bind(verification.code_seed.map(|seed| seed.0.to_vec()))
            .bind(now.0)
            .bind(id.uuid())
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
        tx.commit().await.map_err(db_error)?;
        verification.updated_at = now;
        Ok(ResendOutcome::Queued(Box::new(verification)))
    }

    async fn deliveries(
        &self,
        verification: VerificationId,
    ) -> Result<Vec<DeliveryAttempt>, StoreError> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            delivery_columns!(),
            " FROM deliveries WHERE verification_id = $1 ORDER BY created_at, id"
        ))
        .bind(verification.uuid())
        .fetch_all(&self.pool)
        .await
        .map_err(db_error)?;
        rows.iter().map(rows::delivery).collect()
    }

    async fn claim_stale_deliveries(
        &self,
        now: Timestamp,
        lease_until: Timestamp,
        limit: u32,
    ) -> Result<Vec<(DeliveryAttempt, Verification)>, StoreError> {
        let rows = sqlx::query(concat!(
            "UPDATE deliveries SET lease_until = $1 WHERE id IN \
             (SELECT id FROM deliveries WHERE status = 'queued' AND lease_until <= $2 \
              ORDER BY lease_until LIMIT $3 FOR UPDATE SKIP LOCKED) RETURNING ",
            delivery_columns!()
        ))
        .bind(lease_until.0)
        .bind(now.0)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(db_error)?;
        let mut out = Vec::with_capacity(rows.len());
        for row in &rows {
            let delivery = rows::delivery(row)?;
            if let Some(verification) = self.verification(delivery.verification_id).await? {
                out.push((delivery, verification));
            }
        }
        Ok(out)
    }

    async fn update_delivery(
        &self,
        id: DeliveryId,
        update: &DeliveryUpdate,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        self.records
            .call(records::DeliveryRecord {
                id,
                update: update.clone(),
                now,
            })
            .await
    }

    async fn record_receipt(
        &self,
        receipt: &ReceiptUpdate,
        now: Timestamp,
    ) -> Result<Option<DeliveryAttempt>, StoreError> {
        // One statement: the row lock and the re-checked WHERE make concurrent receipts for
        // one message apply in rank order, never backwards.
        let mut tx = self.pool.begin().await.map_err(db_error)?;
        let updated = sqlx::query(concat!(
            "UPDATE deliveries SET status = $1, error_code = COALESCE($2, error_code), \
             price = COALESCE($3, price), segments = COALESCE($4, segments), \
             fallback_at = CASE WHEN $1 = 'delivered' THEN NULL \
                                WHEN $1 IN ('undelivered', 'failed') AND fallback_at IS NOT NULL THEN $5 \
                                ELSE fallback_at END, \
             updated_at = $5 \
             WHERE provider_ref = $6 AND provider = $7 \
             AND (CASE status WHEN 'queued' THEN 0 WHEN 'sent' THEN 1 ELSE 2 END) < $8 RETURNING ",
            delivery_columns!()
        ))
        .bind(receipt.status.as_str())
        .bind(&receipt.error_code)
        .bind(receipt.price)
        .bind(receipt.segments.map(|s| s as i32))
        .bind(now.0)
        .bind(&receipt.provider_ref)
        .bind(&receipt.provider)
        .bind(i32::from(receipt.status.rank()))
        .fetch_optional(&mut *tx)
        .await
        .map_err(db_error)?;
        if let Some(row) = updated {
            let delivery = rows::delivery(&row)?;
            insert_delivery_event(&mut tx, &delivery, now).await?;
            tx.commit().await.map_err(db_error)?;
            return Ok(Some(delivery));
        }
        tx.commit().await.map_err(db_error)?;
        let current = sqlx::query(concat!(
            "SELECT ",
            delivery_columns!(),
            " FROM deliveries WHERE provider_ref = $1 AND provider = $2"
        ))
        .bind(&receipt.provider_ref)
        .bind(&receipt.provider)
        .fetch_optional(&self.pool)
        .await
        .map_err(db_error)?;
        current.as_ref().map(rows::delivery).transpose()
    }

    async fn rate_hit(
        &self,
        key: &str,
        window_ms: i64,
        limit: u32,
        now: Timestamp,
    ) -> Result<RateCount, StoreError> {
        let mut tx = self.pool.begin().await.map_err(db_error)?;
        // One counter at a time per key, on every node.
        sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1, 7))")
            .bind(key)
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
        sqlx::query("DELETE FROM rate_events WHERE key = $1 AND at <= $2")
            .bind(key)
            .bind(now.0 - window_ms)
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
        let (count, oldest) = rate_window(&mut tx, key, now.0 - window_ms).await?;
        if count >= limit {
            tx.commit().await.map_err(db_error)?;
            return Ok(RateCount {
                allowed: false,
                count,
                frees_at: oldest.map(|at| Timestamp(at + window_ms)),
            });
        }
        sqlx::query("INSERT INTO rate_events (key, at) VALUES ($1, $2)")
            .bind(key)
            .bind(now.0)
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
        tx.commit().await.map_err(db_error)?;
        Ok(RateCount {
            allowed: true,
            count: count + 1,
            frees_at: Some(Timestamp(oldest.unwrap_or(now.0) + window_ms)),
        })
    }

    async fn rate_count(
        &self,
        key: &str,
        window_ms: i64,
        now: Timestamp,
    ) -> Result<RateCount, StoreError> {
        let mut connection = self.pool.acquire().await.map_err(db_error)?;
        let (count, oldest) = rate_window(&mut connection, key, now.0 - window_ms).await?;
        Ok(RateCount {
            allowed: true,
            count,
            frees_at: oldest.map(|at| Timestamp(at + window_ms)),
        })
    }

    async fn quarantine(&self, quarantine: &Quarantine) -> Result<bool, StoreError> {
        let result = sqlx::query(
            "INSERT INTO quarantines (prefix, service_id, reason, until, created_at) \
             VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (prefix, service_id) DO UPDATE SET reason = excluded.reason, \
             until = excluded.until, created_at = excluded.created_at \
             WHERE quarantines.until <= excluded.created_at",
        )
        .bind(&quarantine.prefix)
        .bind(quarantine.service.map_or(uuid::Uuid::nil(), |id| id.uuid()))
        .bind(&quarantine.reason)
        .bind(quarantine.until.0)
        .bind(quarantine.created_at.0)
        .execute(&self.pool)
        .await
        .map_err(db_error)?;
        Ok(result.rows_affected() == 1)
    }

    async fn active_quarantine(
        &self,
        prefix: &str,
        service: ServiceId,
        now: Timestamp,
    ) -> Result<Option<Quarantine>, StoreError> {
        let row: Option<QuarantineRow> = sqlx::query_as(
            "SELECT prefix, reason, until, created_at, service_id FROM quarantines \
             WHERE prefix = $1 AND service_id IN ($2, $3) AND until > $4 \
             ORDER BY service_id LIMIT 1",
        )
        .bind(prefix)
        .bind(uuid::Uuid::nil())
        .bind(service.uuid())
        .bind(now.0)
        .fetch_optional(&self.pool)
        .await
        .map_err(db_error)?;
        Ok(row.map(quarantine_of))
    }

    async fn quarantines(&self, now: Timestamp) -> Result<Vec<Quarantine>, StoreError> {
        let rows: Vec<QuarantineRow> = sqlx::query_as(
            "SELECT prefix, reason, until, created_at, service_id FROM quarantines \
             WHERE until > $1 ORDER BY created_at DESC, prefix, service_id",
        )
        .bind(now.0)
        .fetch_all(&self.pool)
        .await
        .map_err(db_error)?;
        Ok(rows.into_iter().map(quarantine_of).collect())
    }

    async fn lift_quarantine(
        &self,
        prefix: &str,
        service: Option<ServiceId>,
    ) -> Result<bool, StoreError> {
        let result = sqlx::query("DELETE FROM quarantines WHERE prefix = $1 AND service_id = $2")
            .bind(prefix)
            .bind(service.map_or(uuid::Uuid::nil(), |id| id.uuid()))
            .execute(&self.pool)
            .await
            .map_err(db_error)?;
        Ok(result.rows_affected() == 1)
    }

    async fn add_spend(&self, key: &str, amount: f64, cap: f64) -> Result<Option<f64>, StoreError> {
        let spend = Spend {
            key: key.to_string(),
            amount,
            cap,
        };
        let mut connection = self.pool.acquire().await.map_err(db_error)?;
        add_spend(&mut connection, &spend).await
    }

    async fn add_safe_number(
        &self,
        account: AccountId,
        entry: &SafeNumber,
    ) -> Result<SafeNumber, StoreError> {
        sqlx::query(
            "INSERT INTO safe_numbers (account_id, phone, id, created_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (account_id, phone) DO NOTHING",
        )
        .bind(account.uuid())
        .bind(&entry.phone)
        .bind(entry.id)
        .bind(entry.created_at.0)
        .execute(&self.pool)
        .await
        .map_err(db_error)?;
        self.safe_number(account, &entry.phone)
            .await?
            .ok_or_else(|| StoreError::Database("safe number vanished".into()))
    }

    async fn safe_number(
        &self,
        account: AccountId,
        phone: &str,
    ) -> Result<Option<SafeNumber>, StoreError> {
        let row: Option<(Uuid, String, i64)> = sqlx::query_as(
            "SELECT id, phone, created_at FROM safe_numbers WHERE account_id = $1 AND phone = $2",
        )
        .bind(account.uuid())
        .bind(phone)
        .fetch_optional(&self.pool)
        .await
        .map_err(db_error)?;
        Ok(row.map(|(id, phone, created_at)| SafeNumber {
            id,
            phone,
            created_at: Timestamp(created_at),
        }))
    }

    async fn has_safe_numbers(&self, account: AccountId) -> Result<bool, StoreError> {
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM safe_numbers WHERE account_id = $1)")
            .bind(account.uuid())
            .fetch_one(&self.pool)
            .await
            .map_err(db_error)
    }

    async fn remove_safe_number(
        &self,
        account: AccountId,
        phone: &str,
    ) -> Result<bool, StoreError> {
        let result = sqlx::query("DELETE FROM safe_numbers WHERE account_id = $1 AND phone = $2")
            .bind(account.uuid())
            .bind(phone)
            .execute(&self.pool)
            .await
            .map_err(db_error)?;
        Ok(result.rows_affected() == 1)
    }

    async fn release_deliveries(
        &self,
        ids: &[DeliveryId],
        now: Timestamp,
    ) -> Result<u64, StoreError> {
        let ids: Vec<Uuid> = ids.iter().map(|id| id.uuid()).collect();
        let result = sqlx::query(
            "UPDATE deliveries SET lease_until = $1 WHERE id = ANY($2) AND status = 'queued'",
        )
        .bind(now.0)
        .bind(&ids)
        .execute(&self.pool)
        .await
        .map_err(db_error)?;
        Ok(result.rows_affected())
    }

    async fn expire_due(
        &self,
        now: Timestamp,
        limit: u32,
    ) -> Result<Vec<Verification>, StoreError> {
        let mut tx = self.pool.begin().await.map_err(db_error)?;
        let rows = sqlx::query(concat!(
            "SELECT ",
            verification_columns!(),
            " FROM verifications WHERE status = 'pending' AND expires_at <= $1 \
             ORDER BY expires_at LIMIT $2 FOR UPDATE SKIP LOCKED"
        ))
        .bind(now.0)
        .bind(i64::from(limit))
        .fetch_all(&mut *tx)
        .await
        .map_err(db_error)?;
        let mut expired = Vec::with_capacity(rows.len());
        for row in &rows {
            let mut verification = rows::verification(row)?;
            let attempts = verification.attempts;
            record_transition(
                &mut tx,
                &mut verification,
                VerificationStatus::Expired,
                attempts,
                now,
            )
            .await?;
            expired.push(verification);
        }
        tx.commit().await.map_err(db_error)?;
        Ok(expired)
    }

    async fn record_event(&self, event: &Event) -> Result<(), StoreError> {
        let mut connection = self.pool.acquire().await.map_err(db_error)?;
        insert_event(&mut connection, event).await
    }

    async fn events(&self, filter: &EventFilter) -> Result<Vec<Event>, StoreError> {
        let rows: Vec<(Uuid, Uuid, Option<Uuid>, String, String, i64)> = sqlx::query_as(
            "SELECT e.id, e.service_id, e.verification_id, e.kind, e.data, e.created_at \
             FROM events e JOIN services s ON s.id = e.service_id WHERE s.account_id = $1 \
             AND ($2::uuid IS NULL OR e.service_id = $2) \
             AND ($3::uuid IS NULL OR e.verification_id = $3) \
             AND ($4::text IS NULL OR e.kind = $4) \
             AND ($5::bigint IS NULL OR e.created_at >= $5) \
             AND ($6::bigint IS NULL OR e.created_at < $6) \
             AND ($7::uuid IS NULL OR e.id > $7) \
             ORDER BY e.id LIMIT $8",
        )
        .bind(filter.account.uuid())
        .bind(filter.service.map(|s| s.uuid()))
        .bind(filter.verification.map(|v| v.uuid()))
        .bind(&filter.kind)
        .bind(filter.since.map(|t| t.0))
        .bind(filter.until.map(|t| t.0))
        .bind(filter.after)
        .bind(i64::from(filter.limit))
        .fetch_all(&self.pool)
        .await
        .map_err(db_error)?;
        rows.into_iter()
            .map(|(id, service, verification, kind, data, created_at)| {
                Ok(Event {
                    id,
                    service_id: ServiceId::from_uuid(service),
                    verification_id: verification.map(VerificationId::from_uuid),
                    kind,
                    data: serde_json::from_str(&data)
                        .map_err(|_| StoreError::Corrupt("event data".into()))?,
                    created_at: Timestamp(created_at),
                })
            })
            .collect()
    }

    async fn create_webhook(&self, webhook: &Webhook) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO webhooks (id, service_id, url, event_types, enabled, friendly_name, \
             created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(webhook.id)
        .bind(webhook.service_id.uuid())
        .bind(&webhook.url)
        .bind(webhook.stored_types())
        .bind(webhook.enabled)
        .bind(&webhook.friendly_name)
        .bind(webhook.created_at.0)
        .bind(webhook.updated_at.0)
        .execute(&self.pool)
        .await
        .map_err(db_error)?;
        Ok(())
    }

    async fn webhooks(&self, service: ServiceId) -> Result<Vec<Webhook>, StoreError> {
        let rows: Vec<WebhookRow> = sqlx::query_as(
            "SELECT id, service_id, url, event_types, enabled, friendly_name, created_at, updated_at \
             FROM webhooks WHERE service_id = $1 ORDER BY created_at, id",
        )
        .bind(service.uuid())
        .fetch_all(&self.pool)
        .await
        .map_err(db_error)?;
        Ok(rows
            .into_iter()
            .map(
                |(id, service, url, types, enabled, friendly_name, created_at, updated_at)| {
                    Webhook {
                        id,
                        service_id: ServiceId::from_uuid(service),
                        url,
                        event_types: Webhook::parse_types(&types),
                        enabled,
                        friendly_name,
                        created_at: Timestamp(created_at),
                        updated_at: Timestamp(updated_at),
                    }
                },
            )
            .collect())
    }

    async fn update_webhook(&self, webhook: &Webhook) -> Result<bool, StoreError> {
        let result = sqlx::query(
            "UPDATE webhooks SET url = $1, event_types = $2, enabled = $3, friendly_name = $4, \
             updated_at = $5 WHERE id = $6 AND service_id = $7",
        )
        .bind(&webhook.url)
        .bind(webhook.stored_types())
        .bind(webhook.enabled)
        .bind(&webhook.friendly_name)
        .bind(webhook.updated_at.0)
        .bind(webhook.id)
        .bind(webhook.service_id.uuid())
        .execute(&self.pool)
        .await
        .map_err(db_error)?;
        Ok(result.rows_affected() == 1)
    }

    async fn delete_webhook(&self, service: ServiceId, id: Uuid) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await.map_err(db_error)?;
        let deleted = sqlx::query("DELETE FROM webhooks WHERE id = $1 AND service_id = $2")
            .bind(id)
            .bind(service.uuid())
            .execute(&mut *tx)
            .await
            .map_err(db_error)?
            .rows_affected()
            == 1;
        if deleted {
            sqlx::query(
                "DELETE FROM webhook_deliveries WHERE webhook_id = $1 AND state = 'pending'",
            )
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
        }
        tx.commit().await.map_err(db_error)?;
        Ok(deleted)
    }

    async fn claim_webhook_jobs(
        &self,
        now: Timestamp,
        lease_until: Timestamp,
        limit: u32,
    ) -> Result<Vec<WebhookJob>, StoreError> {
        let claimed: Vec<(Uuid, Uuid, Uuid, i32, i64)> = sqlx::query_as(
            "UPDATE webhook_deliveries SET lease_until = $1 WHERE id IN \
             (SELECT d.id FROM webhook_deliveries d WHERE d.state = 'pending' \
              AND d.next_attempt_at <= $2 AND d.lease_until <= $2 \
              AND NOT EXISTS (SELECT 1 FROM webhook_deliveries o WHERE o.webhook_id = d.webhook_id \
                 AND o.state = 'pending' AND o.verification_id IS NOT DISTINCT FROM d.verification_id \
                 AND o.event_id < d.event_id) \
              ORDER BY d.event_id LIMIT $3 FOR UPDATE SKIP LOCKED) \
             RETURNING id, webhook_id, event_id, attempts, created_at",
        )
        .bind(lease_until.0)
        .bind(now.0)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(db_error)?;
        let mut jobs = Vec::with_capacity(claimed.len());
        for (id, webhook, event, attempts, created_at) in claimed {
            let url: Option<String> = sqlx::query_scalar("SELECT url FROM webhooks WHERE id = $1")
                .bind(webhook)
                .fetch_optional(&self.pool)
                .await
                .map_err(db_error)?;
            let row: Option<(Uuid, Uuid, Option<Uuid>, String, String, i64)> = sqlx::query_as(
                "SELECT id, service_id, verification_id, kind, data, created_at FROM events WHERE id = $1",
            )
            .bind(event)
            .fetch_optional(&self.pool)
            .await
            .map_err(db_error)?;
            let (Some(url), Some((id_e, service, verification, kind, data, at))) = (url, row)
            else {
                continue;
            };
            jobs.push(WebhookJob {
                id,
                webhook_id: webhook,
                url,
                event: Event {
                    id: id_e,
                    service_id: ServiceId::from_uuid(service),
                    verification_id: verification.map(VerificationId::from_uuid),
                    kind,
                    data: serde_json::from_str(&data)
                        .map_err(|_| StoreError::Corrupt("event data".into()))?,
                    created_at: Timestamp(at),
                },
                attempts: attempts.max(0) as u32,
                created_at: Timestamp(created_at),
            });
        }
        Ok(jobs)
    }

    async fn webhook_job_done(
        &self,
        id: Uuid,
        outcome: &WebhookOutcome,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let state = match (&outcome.error, outcome.retry_at) {
            (None, _) => "delivered",
            (Some(_), Some(_)) => "pending",
            (Some(_), None) => "failed",
        };
        sqlx::query(
            "UPDATE webhook_deliveries SET state = $1, attempts = attempts + 1, \
             next_attempt_at = COALESCE($2, next_attempt_at), lease_until = 0, last_status = $3, \
             last_latency_ms = $4, last_error = $5, updated_at = $6 WHERE id = $7",
        )
        .bind(state)
        .bind(outcome.retry_at.map(|t| t.0))
        .bind(outcome.status.map(i64::from))
        .bind(i64::from(outcome.latency_ms))
        .bind(&outcome.error)
        .bind(now.0)
        .bind(id)
        .execute(&self.pool)
        .await
        .map_err(db_error)?;
        Ok(())
    }

    async fn webhook_log(
        &self,
        webhook: Uuid,
        limit: u32,
    ) -> Result<Vec<WebhookLogEntry>, StoreError> {
        #[allow(clippy::type_complexity)]
        let rows: Vec<(
            Uuid,
            String,
            String,
            i32,
            Option<i64>,
            Option<i64>,
            Option<String>,
            i64,
            i64,
        )> = sqlx::query_as(
            "SELECT d.event_id, e.kind, d.state, d.attempts, d.last_status, d.last_latency_ms, \
                 d.last_error, d.next_attempt_at, d.updated_at FROM webhook_deliveries d \
                 JOIN events e ON e.id = d.event_id WHERE d.webhook_id = $1 \
                 ORDER BY d.event_id DESC LIMIT $2",
        )
        .bind(webhook)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(db_error)?;
        Ok(rows
            .into_iter()
            .map(
                |(event_id, event_type, state, attempts, status, latency, error, next, updated)| {
                    WebhookLogEntry {
                        event_id,
                        event_type,
                        next_attempt_at: (state == "pending").then_some(Timestamp(next)),
                        state,
                        attempts: attempts.max(0) as u32,
                        last_status: status.map(|s| s.clamp(0, 999) as u16),
                        last_latency_ms: latency.map(|l| l.clamp(0, u32::MAX as i64) as u32),
                        last_error: error,
                        updated_at: Timestamp(updated),
                    }
                },
            )
            .collect())
    }

    async fn attempts(
        &self,
        filter: &AttemptFilter,
    ) -> Result<Vec<(DeliveryAttempt, Verification)>, StoreError> {
        let ids: Vec<Uuid> = sqlx::query_scalar(concat!(
            "SELECT d.id FROM deliveries d JOIN verifications v ON v.id = d.verification_id \
             JOIN services s ON s.id = v.service_id WHERE ",
            attempt_where!(),
            " AND ($11::uuid IS NULL OR d.id > $11) ORDER BY d.id LIMIT $12"
        ))
        .bind(filter.account.map(|a| a.uuid()))
        .bind(filter.service.map(|s| s.uuid()))
        .bind(filter.verification.map(|v| v.uuid()))
        .bind(&filter.to)
        .bind(&filter.country)
        .bind(filter.prefix.as_ref().map(|p| format!("{p}%")))
        .bind(&filter.channel)
        .bind(filter.since.map(|t| t.0))
        .bind(filter.until.map(|t| t.0))
        .bind(filter.converted)
        .bind(filter.after)
        .bind(i64::from(filter.limit.max(1)))
        .fetch_all(&self.pool)
        .await
        .map_err(db_error)?;
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            let row = sqlx::query(concat!(
                "SELECT ",
                delivery_columns!(),
                " FROM deliveries WHERE id = $1"
            ))
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(db_error)?;
            let Some(row) = row else { continue };
            let delivery = rows::delivery(&row)?;
            if let Some(verification) = self.verification(delivery.verification_id).await? {
                out.push((delivery, verification));
            }
        }
        Ok(out)
    }

    async fn attempt_summary(&self, filter: &AttemptFilter) -> Result<AttemptSummary, StoreError> {
        let (total, converted): (i64, i64) = sqlx::query_as(concat!(
            "SELECT COUNT(*), COALESCE(SUM(CASE WHEN v.status = 'approved' THEN 1 ELSE 0 END), 0)::bigint \
             FROM deliveries d JOIN verifications v ON v.id = d.verification_id \
             JOIN services s ON s.id = v.service_id WHERE ",
            attempt_where!(),
        ))
        .bind(filter.account.map(|a| a.uuid()))
        .bind(filter.service.map(|s| s.uuid()))
        .bind(filter.verification.map(|v| v.uuid()))
        .bind(&filter.to)
        .bind(&filter.country)
        .bind(filter.prefix.as_ref().map(|p| format!("{p}%")))
        .bind(&filter.channel)
        .bind(filter.since.map(|t| t.0))
        .bind(filter.until.map(|t| t.0))
        .bind(filter.converted)
        .fetch_one(&self.pool)
        .await
        .map_err(db_error)?;
        Ok(AttemptSummary {
            total: total.max(0) as u64,
            converted: converted.max(0) as u64,
        })
    }

    async fn active_services(&self, since: Timestamp) -> Result<Vec<ServiceId>, StoreError> {
        let ids: Vec<Uuid> = sqlx::query_scalar(
            "SELECT DISTINCT service_id FROM verifications WHERE created_at >= $1",
        )
        .bind(since.0)
        .fetch_all(&self.pool)
        .await
        .map_err(db_error)?;
        Ok(ids.into_iter().map(ServiceId::from_uuid).collect())
    }

    async fn open_alert(&self, key: &str, now: Timestamp) -> Result<bool, StoreError> {
        let result = sqlx::query(
            "INSERT INTO alerts (key, opened_at) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING",
        )
        .bind(key)
        .bind(now.0)
        .execute(&self.pool)
        .await
        .map_err(db_error)?;
        Ok(result.rows_affected() == 1)
    }

    async fn close_alert(&self, key: &str) -> Result<bool, StoreError> {
        let result = sqlx::query("DELETE FROM alerts WHERE key = $1")
            .bind(key)
            .execute(&self.pool)
            .await
            .map_err(db_error)?;
        Ok(result.rows_affected() == 1)
    }

    async fn outbox_stats(&self) -> Result<OutboxStats, StoreError> {
        let (queued, oldest): (i64, Option<i64>) = sqlx::query_as(
            "SELECT COUNT(*), MIN(created_at) FROM deliveries WHERE status = 'queued'",
        )
        .fetch_one(&self.pool)
        .await
        .map_err(db_error)?;
        let pending: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM callbacks WHERE state = 'pending'")
                .fetch_one(&self.pool)
                .await
                .map_err(db_error)?;
        Ok(OutboxStats {
            queued_deliveries: queued.max(0) as u64,
            oldest_queued: oldest.map(Timestamp),
            pending_callbacks: pending.max(0) as u64,
        })
    }

    async fn claim_due_fallbacks(
        &self,
        now: Timestamp,
        limit: u32,
    ) -> Result<Vec<(DeliveryAttempt, Verification)>, StoreError> {
        let rows = sqlx::query(concat!(
            "UPDATE deliveries SET fallback_at = NULL WHERE id IN \
             (SELECT id FROM deliveries WHERE fallback_at IS NOT NULL AND fallback_at <= $1 \
              ORDER BY fallback_at LIMIT $2 FOR UPDATE SKIP LOCKED) RETURNING ",
            delivery_columns!()
        ))
        .bind(now.0)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(db_error)?;
        let mut out = Vec::with_capacity(rows.len());
        for row in &rows {
            let delivery = rows::delivery(row)?;
            if let Some(verification) = self.verification(delivery.verification_id).await? {
                out.push((delivery, verification));
            }
        }
        Ok(out)
    }

    async fn create_account(&self, account: &AccountRecord) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO accounts (id, name, auth_token_hash, created_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(account.id.uuid())
        .bind(&account.name)
        .bind(account.auth_token_hash.as_slice())
        .bind(account.created_at.0)
        .execute(&self.pool)
        .await
        .map_err(db_error)?;
        Ok(())
    }

    async fn account(&self, id: AccountId) -> Result<Option<AccountRecord>, StoreError> {
        let row =
            sqlx::query("SELECT id, name, auth_token_hash, created_at FROM accounts WHERE id = $1")
                .bind(id.uuid())
                .fetch_optional(&self.pool)
                .await
                .map_err(db_error)?;
        row.as_ref().map(rows::account).transpose()
    }

    async fn create_api_key(&self, key: &ApiKeyRecord) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO api_keys (id, account_id, name, secret_hash, created_at) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(key.id.uuid())
        .bind(key.account_id.uuid())
        .bind(&key.name)
        .bind(key.secret_hash.as_slice())
        .bind(key.created_at.0)
        .execute(&self.pool)
        .await
        .map_err(db_error)?;
        Ok(())
    }

    async fn api_key(&self, id: ApiKeyId) -> Result<Option<ApiKeyRecord>, StoreError> {
        let row = sqlx::query(
            "SELECT id, account_id, name, secret_hash, created_at FROM api_keys WHERE id = $1",
        )
        .bind(id.uuid())
        .fetch_optional(&self.pool)
        .await
        .map_err(db_error)?;
        row.as_ref().map(rows::api_key).transpose()
    }

    async fn rotate_auth_token(
        &self,
        id: AccountId,
        auth_token_hash: [u8; 32],
    ) -> Result<bool, StoreError> {
        let result = sqlx::query("UPDATE accounts SET auth_token_hash = $2 WHERE id = $1")
            .bind(id.uuid())
            .bind(auth_token_hash.as_slice())
            .execute(&self.pool)
            .await
            .map_err(db_error)?;
        Ok(result.rows_affected() == 1)
    }

    async fn api_keys(&self, account: AccountId) -> Result<Vec<ApiKeyRecord>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, account_id, name, secret_hash, created_at FROM api_keys \
             WHERE account_id = $1 ORDER BY created_at, id",
        )
        .bind(account.uuid())
        .fetch_all(&self.pool)
        .await
        .map_err(db_error)?;
        rows.iter().map(rows::api_key).collect()
    }

    async fn revoke_api_key(&self, account: AccountId, id: ApiKeyId) -> Result<bool, StoreError> {
        let result = sqlx::query("DELETE FROM api_keys WHERE id = $1 AND account_id = $2")
            .bind(id.uuid())
            .bind(account.uuid())
            .execute(&self.pool)
            .await
            .map_err(db_error)?;
        Ok(result.rows_affected() == 1)
    }

    async fn create_service(&self, service: &ServiceRecord) -> Result<(), StoreError> {
        let mut connection = self.pool.acquire().await.map_err(db_error)?;
        insert_service(&mut connection, service).await
    }

    async fn services(
        &self,
        account: AccountId,
        after: Option<ServiceId>,
        limit: u32,
    ) -> Result<Vec<ServiceRecord>, StoreError> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            service_columns!(),
            " FROM services WHERE account_id = $1 AND NOT deleted AND ($2::uuid IS NULL OR id > $2) \
             ORDER BY id LIMIT $3"
        ))
        .bind(account.uuid())
        .bind(after.map(|a| a.uuid()))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(db_error)?;
        rows.iter().map(rows::service).collect()
    }

    async fn update_service(&self, service: &ServiceRecord) -> Result<bool, StoreError> {
        let settings = serde_json::to_string(&service.settings)
            .map_err(|e| StoreError::Corrupt(format!("settings do not serialise: {e}")))?;
        let result = sqlx::query(
            "UPDATE services SET name = $1, settings = $2, updated_at = $3 WHERE id = $4 AND NOT deleted",
        )
        .bind(&service.name)
        .bind(settings)
        .bind(service.updated_at.0)
        .bind(service.id.uuid())
        .execute(&self.pool)
        .await
        .map_err(db_error)?;
        Ok(result.rows_affected() == 1)
    }

    async fn delete_service(&self, id: ServiceId) -> Result<bool, StoreError> {
        let result =
            sqlx::query("UPDATE services SET deleted = TRUE WHERE id = $1 AND NOT deleted")
                .bind(id.uuid())
                .execute(&self.pool)
                .await
                .map_err(db_error)?;
        Ok(result.rows_affected() == 1)
    }

    async fn create_application(
        &self,
        service: &ServiceRecord,
        application: &Application,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await.map_err(db_error)?;
        insert_service(&mut tx, service).await?;
        sqlx::query(concat!(
            "INSERT INTO applications (",
            application_columns!(),
            ") VALUES ($1, $2, $3, $4, $5, $6, $7)"
        ))
        .bind(application.id.uuid())
        .bind(application.account_id.uuid())
        .bind(application.service_id.uuid())
        .bind(&application.name)
        .bind(application.secret_hash.as_slice())
        .bind(application.api_key_hash.as_slice())
        .bind(application.created_at.0)
        .execute(&mut *tx)
        .await
        .map_err(db_error)?;
        tx.commit().await.map_err(db_error)
    }

    async fn service(&self, id: ServiceId) -> Result<Option<ServiceRecord>, StoreError> {
        let row = sqlx::query(concat!(
            "SELECT ",
            service_columns!(),
            " FROM services WHERE id = $1 AND NOT deleted"
        ))
        .bind(id.uuid())
        .fetch_optional(&self.pool)
        .await
        .map_err(db_error)?;
        row.as_ref().map(rows::service).transpose()
    }

    async fn application(&self, id: ApplicationId) -> Result<Option<Application>, StoreError> {
        let row = sqlx::query(concat!(
            "SELECT ",
            application_columns!(),
            " FROM applications WHERE id = $1"
        ))
        .bind(id.uuid())
        .fetch_optional(&self.pool)
        .await
        .map_err(db_error)?;
        row.as_ref().map(rows::application).transpose()
    }

    async fn application_by_api_key(
        &self,
        api_key_hash: [u8; 32],
    ) -> Result<Option<Application>, StoreError> {
        let row = sqlx::query(concat!(
            "SELECT ",
            application_columns!(),
            " FROM applications WHERE api_key_hash = $1"
        ))
        .bind(api_key_hash.as_slice())
        .fetch_optional(&self.pool)
        .await
        .map_err(db_error)?;
        row.as_ref().map(rows::application).transpose()
    }

    async fn applications(&self) -> Result<Vec<Application>, StoreError> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            application_columns!(),
            " FROM applications ORDER BY created_at, id"
        ))
        .fetch_all(&self.pool)
        .await
        .map_err(db_error)?;
        rows.iter().map(rows::application).collect()
    }

    async fn rotate_application_secret(
        &self,
        id: ApplicationId,
        secret_hash: [u8; 32],
        api_key_hash: [u8; 32],
    ) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await.map_err(db_error)?;
        let changed = sqlx::query(
            "UPDATE applications SET secret_hash = $1, api_key_hash = $2 WHERE id = $3",
        )
        .bind(secret_hash.as_slice())
        .bind(api_key_hash.as_slice())
        .bind(id.uuid())
        .execute(&mut *tx)
        .await
        .map_err(db_error)?
        .rows_affected();
        sqlx::query("UPDATE access_tokens SET revoked = TRUE WHERE application_id = $1")
            .bind(id.uuid())
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
        tx.commit().await.map_err(db_error)?;
        Ok(changed == 1)
    }

    async fn insert_token(&self, token: &AccessToken) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO access_tokens (token_hash, application_id, scope, expires_at, revoked) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(token.token_hash.as_slice())
        .bind(token.application_id.uuid())
        .bind(&token.scope)
        .bind(token.expires_at.0)
        .bind(token.revoked)
        .execute(&self.pool)
        .await
        .map_err(db_error)?;
        Ok(())
    }

    async fn token(&self, token_hash: [u8; 32]) -> Result<Option<AccessToken>, StoreError> {
        let row = sqlx::query(
            "SELECT token_hash, application_id, scope, expires_at, revoked FROM access_tokens WHERE token_hash = $1",
        )
        .bind(token_hash.as_slice())
        .fetch_optional(&self.pool)
        .await
        .map_err(db_error)?;
        row.as_ref().map(rows::token).transpose()
    }

    async fn revoke_token(
        &self,
        token_hash: [u8; 32],
        application: ApplicationId,
    ) -> Result<bool, StoreError> {
        let result = sqlx::query(
            "UPDATE access_tokens SET revoked = TRUE WHERE token_hash = $1 AND application_id = $2",
        )
        .bind(token_hash.as_slice())
        .bind(application.uuid())
        .execute(&self.pool)
        .await
        .map_err(db_error)?;
        Ok(result.rows_affected() == 1)
    }

    async fn claim_due_callbacks(
        &self,
        now: Timestamp,
        lease_until: Timestamp,
        limit: u32,
    ) -> Result<Vec<CallbackJob>, StoreError> {
        let rows = sqlx::query(
            "UPDATE callbacks SET next_attempt_at = $1 WHERE id IN \
             (SELECT id FROM callbacks WHERE state = 'pending' AND next_attempt_at <= $2 \
              ORDER BY next_attempt_at LIMIT $3 FOR UPDATE SKIP LOCKED) \
             RETURNING id, verification_id, url, status, attempts",
        )
        .bind(lease_until.0)
        .bind(now.0)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(db_error)?;
        let mut jobs = Vec::with_capacity(rows.len());
        for row in &rows {
            let verification_id: Uuid = row.try_get(1).map_err(db_error)?;
            let status: String = row.try_get(3).map_err(db_error)?;
            let attempts: i32 = row.try_get(4).map_err(db_error)?;
            let Some(verification) = self
                .verification(VerificationId::from_uuid(verification_id))
                .await?
            else {
                continue;
            };
            jobs.push(CallbackJob {
                id: row.try_get(0).map_err(db_error)?,
                url: row.try_get(2).map_err(db_error)?,
                verification,
                status: VerificationStatus::parse(&status)
                    .ok_or_else(|| StoreError::Corrupt("callback status".into()))?,
                attempts: attempts.max(0) as u32,
            });
        }
        Ok(jobs)
    }

    async fn callback_delivered(&self, id: Uuid, now: Timestamp) -> Result<(), StoreError> {
        sqlx::query("UPDATE callbacks SET state = 'delivered', attempts = attempts + 1, updated_at = $1 WHERE id = $2")
            .bind(now.0)
            .bind(id)
            .execute(&self.pool)
            .await
            .map_err(db_error)?;
        Ok(())
    }

    async fn callback_failed(
        &self,
        id: Uuid,
        retry_at: Option<Timestamp>,
        error: &str,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE callbacks SET attempts = attempts + 1, last_error = $1, updated_at = $2, \
             state = CASE WHEN $3::bigint IS NULL THEN 'failed' ELSE 'pending' END, \
             next_attempt_at = COALESCE($3, next_attempt_at) WHERE id = $4",
        )
        .bind(error)
        .bind(now.0)
        .bind(retry_at.map(|t| t.0))
        .bind(id)
        .execute(&self.pool)
        .await
        .map_err(db_error)?;
        Ok(())
    }
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
            crate::PgStore::connect(&self.url, &Default::default())
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
