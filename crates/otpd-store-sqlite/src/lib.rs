//! The embedded SQLite [`Store`]: one file in WAL mode, migrations applied at open, all writes
//! funnelled through one writer thread that group-commits concurrent requests, and reads
//! served by a small pool of read-only connections.

mod rows;
mod schema;
mod writer;

use std::cell::Cell;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use otpd_core::auth::{AccessToken, AccountRecord, ApiKeyRecord, Application};
use otpd_core::events;
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
    AccountId, ApiKeyId, ApplicationId, Candidate, CheckOutcome, CodeHash, DeliveryId,
    DeliveryStatus, ServiceId, StatusChange, Store, StoreError, Timestamp, Verification,
    VerificationId, VerificationStatus, decide_check, decide_status_change,
};
use rusqlite::{Connection, OpenFlags, Params, Row, params};
use uuid::Uuid;

use rows::{
    APPLICATION_COLUMNS, DELIVERY_COLUMNS, DELIVERY_COLUMNS_AND_SERVICE, SERVICE_COLUMNS,
    VERIFICATION_COLUMNS,
};
use writer::Writer;

/// Read connections kept open between requests.
const READERS: usize = 8;

pub(crate) fn db_error(error: rusqlite::Error) -> StoreError {
    match &error {
        rusqlite::Error::SqliteFailure(e, _)
            if e.code == rusqlite::ErrorCode::ConstraintViolation =>
        {
            StoreError::Conflict(error.to_string())
        }
        _ => StoreError::Database(error.to_string()),
    }
}

/// The SQLite store; cheap to clone (all clones share one writer and one reader pool).
#[derive(Clone)]
pub struct SqliteStore {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    writer: Writer,
    readers: Mutex<Vec<Connection>>,
    /// Dropped with the store, which ends the checkpoint thread.
    _stop_checkpoints: std::sync::mpsc::Sender<()>,
}

/// How often the checkpoint thread copies the WAL back into the database file: what the
/// writer's own checkpoint may still find to copy (a stall for the batch that triggers it),
/// and how old the last WAL sync can be under load (what a power loss can take).
const CHECKPOINT_EVERY: std::time::Duration = std::time::Duration::from_millis(25);

/// WAL pages after which the writer checkpoints on its own (SQLite's default is 1,000). Only
/// the writer, between two transactions, can bring the WAL back to its start; the checkpoint
/// thread does the copying. At 15k starts/s the WAL grows ~2,600 pages per 100 ms, so at
/// 1,000 the writer reached its threshold before the thread ran and copied the frames itself
/// (8 % of the one thread every write waits for); at 10,000 it finds all but the last
/// [`CHECKPOINT_EVERY`]'s copied. Keeps the WAL file near 40 MB.
const WRITER_CHECKPOINT_PAGES: u32 = 10_000;

/// Copies committed WAL frames into the database file every [`CHECKPOINT_EVERY`], PASSIVE
/// (never waiting for, nor blocking, the writer or the readers). The writer's own automatic
/// checkpoint (every [`WRITER_CHECKPOINT_PAGES`]) still runs, so the WAL is reset and stays
/// bounded, but finds most frames copied already: checkpointing had taken a tenth of the
/// writer's time, which is the one thread every write waits for (measured with perf).
fn checkpoint_until_stopped(connection: &Connection, stopped: &std::sync::mpsc::Receiver<()>) {
    use std::sync::mpsc::RecvTimeoutError;
    while let Err(RecvTimeoutError::Timeout) = stopped.recv_timeout(CHECKPOINT_EVERY) {
        if let Err(error) = connection.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
            tracing::debug!(%error, "background WAL checkpoint failed");
        }
    }
}

fn configure(connection: &Connection) -> rusqlite::Result<()> {
    connection.busy_timeout(std::time::Duration::from_secs(5))?;
    // temp_store = MEMORY keeps each write job's savepoint journal in memory: on disk it
    // cost the writer an open, thousands of pwrites and an unlink per batch (seen with strace).
    connection.execute_batch(
        "PRAGMA foreign_keys = ON; PRAGMA synchronous = NORMAL; PRAGMA temp_store = MEMORY;",
    )
}

/// Creates the database file readable by its owner only (SQLite gives its WAL and
/// shared-memory files the database's mode): it holds phone numbers and credential hashes.
#[cfg(unix)]
fn create_private(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
    {
        Ok(_) => Ok(()),
        Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(error) => Err(error),
    }
}

#[cfg(not(unix))]
fn create_private(_path: &Path) -> std::io::Result<()> {
    Ok(())
}

impl SqliteStore {
    /// Opens (creating if needed) the database file at `path`, switches it to WAL and applies
    /// pending migrations.
    pub fn open(path: impl AsRef<Path>) -> Result<SqliteStore, StoreError> {
        let path = path.as_ref().to_path_buf();
        create_private(&path)
            .map_err(|e| StoreError::Database(format!("cannot create {}: {e}", path.display())))?;
        let mut connection = Connection::open(&path).map_err(db_error)?;
        connection
            .query_row("PRAGMA journal_mode = WAL", [], |_| Ok(()))
            .map_err(db_error)?;
        configure(&connection).map_err(db_error)?;
        schema::migrate(&mut connection).map_err(db_error)?;
        connection
            .pragma_update(None, "wal_autocheckpoint", WRITER_CHECKPOINT_PAGES)
            .map_err(db_error)?;
        let checkpointer = Connection::open(&path).map_err(db_error)?;
        configure(&checkpointer).map_err(db_error)?;
        let (stop_checkpoints, stopped) = std::sync::mpsc::channel::<()>();
        std::thread::Builder::new()
            .name("otpd-sqlite-checkpoint".into())
            .spawn(move || checkpoint_until_stopped(&checkpointer, &stopped))
            .map_err(|e| StoreError::Database(format!("cannot start the checkpointer: {e}")))?;
        Ok(SqliteStore {
            inner: Arc::new(Inner {
                path,
                writer: Writer::start(connection),
                readers: Mutex::new(Vec::new()),
                _stop_checkpoints: stop_checkpoints,
            }),
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    async fn write<T, F>(&self, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: Fn(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        self.inner.writer.write(work).await
    }

    /// A read that sees every write whose caller has been told it is done, committed or not
    /// (it first waits for the unconfirmed ones queued before it, `Writer::settled`).
    async fn read<T, F>(&self, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        self.inner.writer.settled().await;
        self.read_untouched_by_unconfirmed(work).await
    }

    /// A read of tables no unconfirmed write touches — those write only a delivery's row, its
    /// event and the event's webhook copies — so it need not wait for them: reads of
    /// verifications and credentials on the request path.
    async fn read_untouched_by_unconfirmed<T, F>(&self, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        // Reads are single indexed lookups of a few microseconds on a WAL snapshot (they never
        // wait for the writer), so they run inline on the calling task: a hop to the blocking
        // pool cost more in thread wake-ups than the query itself (measured with perf).
        let inner = &self.inner;
        let pooled = inner
            .readers
            .lock()
            .map(|mut pool| pool.pop())
            .unwrap_or(None);
        let connection = match pooled {
            Some(connection) => connection,
            None => {
                let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
                let connection =
                    Connection::open_with_flags(&inner.path, flags).map_err(db_error)?;
                configure(&connection).map_err(db_error)?;
                connection
            }
        };
        let result = work(&connection);
        if let Ok(mut pool) = inner.readers.lock()
            && pool.len() < READERS
        {
            pool.push(connection);
        }
        result
    }
}

fn query_one<T>(
    connection: &Connection,
    sql: &str,
    params: impl Params,
    map: impl FnOnce(&Row) -> Result<T, StoreError>,
) -> Result<Option<T>, StoreError> {
    let mut statement = connection.prepare_cached(sql).map_err(db_error)?;
    let mut rows = statement.query(params).map_err(db_error)?;
    match rows.next().map_err(db_error)? {
        Some(row) => map(row).map(Some),
        None => Ok(None),
    }
}

fn query_all<T>(
    connection: &Connection,
    sql: &str,
    params: impl Params,
    map: impl Fn(&Row) -> Result<T, StoreError>,
) -> Result<Vec<T>, StoreError> {
    let mut statement = connection.prepare_cached(sql).map_err(db_error)?;
    let mut rows = statement.query(params).map_err(db_error)?;
    let mut out = Vec::new();
    while let Some(row) = rows.next().map_err(db_error)? {
        out.push(map(row)?);
    }
    Ok(out)
}

// The hot writes say `OR FAIL`: a statement that may abort half-way (the default `ABORT`
// conflict rule) and writes several b-trees makes SQLite copy every page it touches into a
// statement journal so it can undo itself — about 8 % of the writer's time in a profile.
// `FAIL` keeps a failing statement's earlier changes instead, which the writer never keeps
// either: a failing write rolls back its whole batch, and the rerun puts each write in its
// own savepoint (writer.rs).
fn execute(connection: &Connection, sql: &str, params: impl Params) -> Result<usize, StoreError> {
    connection
        .prepare_cached(sql)
        .and_then(|mut statement| statement.execute(params))
        .map_err(db_error)
}

fn load_verification(
    connection: &Connection,
    id: VerificationId,
) -> Result<Option<Verification>, StoreError> {
    query_one(
        connection,
        &format!("SELECT {VERIFICATION_COLUMNS} FROM verifications WHERE id = ?1"),
        [id.as_bytes().as_slice()],
        rows::verification,
    )
}

/// The rows a new verification writes: it, its first delivery attempt, and their two events,
/// rendered before the writer job (JSON is not serial work).
#[derive(Clone)]
struct NewVerification {
    verification: Verification,
    delivery: DeliveryAttempt,
    events: [EventRow; 2],
}

impl NewVerification {
    fn new(v: &Verification, d: &DeliveryAttempt) -> NewVerification {
        NewVerification {
            events: [
                EventRow::verification("verification.started", v, v.created_at),
                EventRow::delivery(v.service_id, d, v.created_at),
            ],
            verification: v.clone(),
            delivery: d.clone(),
        }
    }
}

fn insert_verification(connection: &Connection, new: &NewVerification) -> Result<(), StoreError> {
    let (v, d) = (&new.verification, &new.delivery);
    execute(
        connection,
        &format!(
            "INSERT OR FAIL INTO verifications ({VERIFICATION_COLUMNS}) VALUES \
             (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21, ?22, ?23, ?24, ?25)"
        ),
        params![
            v.id.as_bytes().as_slice(),
            v.service_id.as_bytes().as_slice(),
            v.to.as_str(),
            v.country.map(|c| c.as_str().to_string()),
            v.channel.as_str(),
            v.status.as_str(),
            v.attempts,
            v.max_attempts.get(),
            v.ttl.get(),
            v.code_hash.0.as_slice(),
            v.pin_type.as_str(),
            v.pin_length.get(),
            v.template.as_str(),
            v.from.as_str(),
            v.track_id.map(|t| t.as_bytes().to_vec()),
            v.callback_url,
            v.cost,
            v.parts,
            v.created_at.0,
            v.expires_at.0,
            v.updated_at.0,
            v.code_seed.map(|seed| seed.0.to_vec()),
            v.amount,
            v.payee,
            v.locale,
        ],
    )?;
    insert_delivery(connection, d)?;
    for event in &new.events {
        insert_event(connection, event)?;
    }
    Ok(())
}

fn insert_delivery(connection: &Connection, d: &DeliveryAttempt) -> Result<(), StoreError> {
    execute(
        connection,
        &format!(
            "INSERT OR FAIL INTO deliveries ({DELIVERY_COLUMNS}, lease_until) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?11, ?12, ?13, ?14, ?10)"
        ),
        params![
            d.id.as_bytes().as_slice(),
            d.verification_id.as_bytes().as_slice(),
            d.channel.as_str(),
            d.status.as_str(),
            d.provider,
            d.provider_ref,
            d.error,
            d.created_at.0,
            d.updated_at.0,
            d.created_at.plus_seconds(DELIVERY_LEASE_SECONDS).0,
            d.error_code,
            d.segments,
            d.price,
            d.price_unit,
        ],
    )?;
    Ok(())
}

/// A claimed `webhook_deliveries` row: id, webhook, event, attempts, created_at.
type ClaimedWebhookRow = (Vec<u8>, Vec<u8>, Vec<u8>, u32, i64);

/// The WHERE clause (and its values) shared by attempt lists and summaries.
fn attempt_where(f: &AttemptFilter) -> (String, Vec<rusqlite::types::Value>) {
    let mut clause = String::from("1 = 1");
    let mut values: Vec<rusqlite::types::Value> = Vec::new();
    let mut push = |sql: &str, value: rusqlite::types::Value| {
        values.push(value);
        clause.push_str(&format!(" AND {sql} ?{}", values.len()));
    };
    if let Some(account) = f.account {
        push("s.account_id =", account.as_bytes().to_vec().into());
    }
    if let Some(service) = f.service {
        push("v.service_id =", service.as_bytes().to_vec().into());
    }
    if let Some(verification) = f.verification {
        push("v.id =", verification.as_bytes().to_vec().into());
    }
    if let Some(to) = &f.to {
        push("v.to_number =", to.clone().into());
    }
    if let Some(country) = &f.country {
        push("v.country =", country.clone().into());
    }
    if let Some(prefix) = &f.prefix {
        push("v.to_number LIKE", format!("{prefix}%").into());
    }
    if let Some(channel) = &f.channel {
        push("d.channel =", channel.clone().into());
    }
    if let Some(since) = f.since {
        push("d.created_at >=", since.0.into());
    }
    if let Some(until) = f.until {
        push("d.created_at <", until.0.into());
    }
    match f.converted {
        Some(true) => clause.push_str(" AND v.status = 'approved'"),
        Some(false) => clause.push_str(" AND v.status <> 'approved'"),
        None => {}
    }
    (clause, values)
}

fn webhook_row(row: &Row) -> Result<Webhook, StoreError> {
    let uuid = |index| -> Result<Uuid, StoreError> {
        let bytes: Vec<u8> = rows::get(row, index)?;
        Uuid::from_slice(&bytes).map_err(|_| StoreError::Corrupt("webhook id".into()))
    };
    let types: String = rows::get(row, 3)?;
    Ok(Webhook {
        id: uuid(0)?,
        service_id: ServiceId::from_uuid(uuid(1)?),
        url: rows::get(row, 2)?,
        event_types: Webhook::parse_types(&types),
        enabled: rows::get(row, 4)?,
        friendly_name: rows::get(row, 5)?,
        created_at: Timestamp(rows::get(row, 6)?),
        updated_at: Timestamp(rows::get(row, 7)?),
    })
}

fn event_row(row: &Row) -> Result<Event, StoreError> {
    let uuid = |index| -> Result<Uuid, StoreError> {
        let bytes: Vec<u8> = rows::get(row, index)?;
        Uuid::from_slice(&bytes).map_err(|_| StoreError::Corrupt("event id".into()))
    };
    let verification: Option<Vec<u8>> = rows::get(row, 2)?;
    let data: String = rows::get(row, 4)?;
    Ok(Event {
        id: uuid(0)?,
        service_id: ServiceId::from_uuid(uuid(1)?),
        verification_id: verification
            .and_then(|b| Uuid::from_slice(&b).ok())
            .map(VerificationId::from_uuid),
        kind: rows::get(row, 3)?,
        data: serde_json::from_str(&data).map_err(|_| StoreError::Corrupt("event data".into()))?,
        created_at: Timestamp(rows::get(row, 5)?),
    })
}

fn safe_number_row(row: &Row) -> Result<SafeNumber, StoreError> {
    let id: Vec<u8> = rows::get(row, 0)?;
    Ok(SafeNumber {
        id: Uuid::from_slice(&id).map_err(|_| StoreError::Corrupt("safe number id".into()))?,
        phone: rows::get(row, 1)?,
        created_at: Timestamp(rows::get(row, 2)?),
    })
}

/// The quarantine columns, in `quarantine_row`'s order.
const QUARANTINE_COLUMNS: &str = "prefix, reason, until, created_at, service_id";

fn quarantine_row(row: &Row) -> Result<Quarantine, StoreError> {
    let service: Vec<u8> = rows::get(row, 4)?;
    let service = uuid::Uuid::from_slice(&service)
        .map_err(|_| StoreError::Corrupt("quarantine service id".into()))?;
    Ok(Quarantine {
        prefix: rows::get(row, 0)?,
        service: (!service.is_nil()).then(|| ServiceId::from_uuid(service)),
        reason: rows::get(row, 1)?,
        until: Timestamp(rows::get(row, 2)?),
        created_at: Timestamp(rows::get(row, 3)?),
    })
}

/// A quarantine's scope as stored: its service's id, or the nil id for every service.
fn quarantine_scope(service: Option<ServiceId>) -> [u8; 16] {
    service.map_or([0; 16], |id| *id.as_bytes())
}

/// Adds to a capped spend; the new total, or `None` when it would pass the cap.
fn add_spend(connection: &Connection, spend: &Spend) -> Result<Option<f64>, StoreError> {
    query_one(
        connection,
        "INSERT INTO spend (key, total) SELECT ?1, ?2 WHERE ?2 <= ?3 \
         ON CONFLICT (key) DO UPDATE SET total = spend.total + excluded.total \
         WHERE spend.total + excluded.total <= ?3 RETURNING total",
        params![spend.key, spend.amount, spend.cap],
        |row| rows::get::<f64>(row, 0),
    )
}

/// Forgets the events of `key` at or before `since` (they left the window).
fn forget_rate_events(connection: &Connection, key: &str, since: i64) -> Result<(), StoreError> {
    execute(
        connection,
        "DELETE FROM rate_events WHERE key = ?1 AND at <= ?2",
        params![key, since],
    )
    .map(drop)
}

/// Counts one event under `key` at `at`.
fn add_rate_event(connection: &Connection, key: &str, at: i64) -> Result<(), StoreError> {
    execute(
        connection,
        "INSERT OR FAIL INTO rate_events (key, at) VALUES (?1, ?2)",
        params![key, at],
    )
    .map(drop)
}

/// Events of `key` after `since`, and the oldest of them.
fn rate_window(
    connection: &Connection,
    key: &str,
    since: i64,
) -> Result<(u32, Option<i64>), StoreError> {
    connection
        .prepare_cached("SELECT COUNT(*), MIN(at) FROM rate_events WHERE key = ?1 AND at > ?2")
        .and_then(|mut statement| {
            statement.query_row(params![key, since], |row| Ok((row.get(0)?, row.get(1)?)))
        })
        .map_err(db_error)
}

fn insert_service(connection: &Connection, service: &ServiceRecord) -> Result<(), StoreError> {
    let settings = serde_json::to_string(&service.settings)
        .map_err(|e| StoreError::Corrupt(format!("settings do not serialise: {e}")))?;
    execute(
        connection,
        &format!("INSERT INTO services ({SERVICE_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6)"),
        params![
            service.id.as_bytes().as_slice(),
            service.account_id.as_bytes().as_slice(),
            service.name,
            settings,
            service.created_at.0,
            service.updated_at.0
        ],
    )?;
    Ok(())
}

thread_local! {
    /// Whether the database has an enabled webhook, as this thread last read it; `None` once
    /// this thread wrote to `webhooks`. Every write runs on the writer thread (one process owns
    /// a SQLite file), so an event insert there skips the fan-out statement when no webhook
    /// could receive it — most installations have none, and a start writes three events.
    static ANY_ENABLED_WEBHOOK: Cell<Option<bool>> = const { Cell::new(None) };
}

fn any_enabled_webhook(connection: &Connection) -> Result<bool, StoreError> {
    if let Some(known) = ANY_ENABLED_WEBHOOK.get() {
        return Ok(known);
    }
    let any = query_one(
        connection,
        "SELECT EXISTS (SELECT 1 FROM webhooks WHERE enabled = 1)",
        [],
        |row| rows::get::<bool>(row, 0),
    )?
    .unwrap_or(true);
    ANY_ENABLED_WEBHOOK.set(Some(any));
    Ok(any)
}

/// Forgets whether there is a webhook: called by every write to `webhooks` (even one that
/// rolls back; the next event reads the table again).
fn webhooks_changed() {
    ANY_ENABLED_WEBHOOK.set(None);
}

/// An event with its JSON rendered, ready to insert.
#[derive(Clone)]
struct EventRow {
    /// `None`: stamped when inserted, so that ids follow the commit order (readers page
    /// events by id; an id taken before the writer job could commit after a later one).
    id: Option<Uuid>,
    service_id: ServiceId,
    verification_id: Option<VerificationId>,
    kind: String,
    data: String,
    created_at: Timestamp,
}

impl EventRow {
    /// An event about a verification (its state after the change), id stamped at insert.
    fn verification(kind: &str, v: &Verification, now: Timestamp) -> EventRow {
        EventRow {
            id: None,
            service_id: v.service_id,
            verification_id: Some(v.id),
            kind: kind.to_string(),
            data: events::to_json_text(&events::VerificationEventData::of(v)),
            created_at: now,
        }
    }

    /// An event about a delivery attempt (its state after the change), id stamped at insert.
    fn delivery(service: ServiceId, d: &DeliveryAttempt, now: Timestamp) -> EventRow {
        EventRow {
            id: None,
            service_id: service,
            verification_id: Some(d.verification_id),
            kind: events::delivery_kind(d),
            data: events::to_json_text(&events::DeliveryEventData::of(d)),
            created_at: now,
        }
    }
}

impl From<Event> for EventRow {
    fn from(event: Event) -> EventRow {
        EventRow {
            id: Some(event.id),
            service_id: event.service_id,
            verification_id: event.verification_id,
            kind: event.kind,
            data: event.data.to_string(),
            created_at: event.created_at,
        }
    }
}

/// Records an event (its webhook copies come with it, see below).
fn insert_event(connection: &Connection, event: &EventRow) -> Result<(), StoreError> {
    let id = event.id.unwrap_or_else(Uuid::now_v7);
    execute(
        connection,
        "INSERT OR FAIL INTO events (id, service_id, verification_id, kind, data, created_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![
            id.as_bytes().as_slice(),
            event.service_id.as_bytes().as_slice(),
            event.verification_id.map(|v| v.as_bytes().to_vec()),
            event.kind,
            event.data,
            event.created_at.0
        ],
    )?;
    if !any_enabled_webhook(connection)? {
        return Ok(());
    }
    // Fan out to the service's webhooks in the same transaction: nothing is lost. (Not a
    // trigger: a statement that fires one needs a statement journal, which copied every page
    // the event insert touched and cost the writer more than this second statement.)
    execute(
        connection,
        "INSERT INTO webhook_deliveries (id, webhook_id, event_id, verification_id, next_attempt_at, \
         created_at, updated_at) \
         SELECT randomblob(16), w.id, ?1, ?2, ?3, ?3, ?3 FROM webhooks w \
         WHERE w.service_id = ?4 AND w.enabled = 1 \
         AND (w.event_types = '*' OR w.event_types LIKE '%,' || ?5 || ',%')",
        params![
            id.as_bytes().as_slice(),
            event.verification_id.map(|v| v.as_bytes().to_vec()),
            event.created_at.0,
            event.service_id.as_bytes().as_slice(),
            event.kind
        ],
    )?;
    Ok(())
}

fn record_transition(
    connection: &Connection,
    verification: &mut Verification,
    status: VerificationStatus,
    attempts: u32,
    now: Timestamp,
) -> Result<(), StoreError> {
    let changed = status != verification.status;
    if !changed && attempts == verification.attempts {
        return Ok(());
    }
    execute(
        connection,
        "UPDATE OR FAIL verifications SET status = ?1, attempts = ?2, updated_at = ?3 WHERE id = ?4",
        params![
            status.as_str(),
            attempts,
            now.0,
            verification.id.as_bytes().as_slice()
        ],
    )?;
    let counted = attempts > verification.attempts;
    verification.status = status;
    verification.attempts = attempts;
    verification.updated_at = now;
    let kind = if changed {
        otpd_core::events::status_kind(status)
    } else if counted {
        "verification.check_failed"
    } else {
        ""
    };
    if !kind.is_empty() {
        insert_event(connection, &EventRow::verification(kind, verification, now))?;
    }
    if let (true, Some(url)) = (changed, &verification.callback_url) {
        execute(
            connection,
            "INSERT INTO callbacks (id, verification_id, url, status, next_attempt_at, created_at, updated_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?5, ?5)",
            params![
                Uuid::now_v7().as_bytes().as_slice(),
                verification.id.as_bytes().as_slice(),
                url,
                status.as_str(),
                now.0
            ],
        )?;
    }
    Ok(())
}

/// The writer job recording what happened to a delivery attempt (with its event, for any
/// status but `queued`).
fn delivery_update(
    id: DeliveryId,
    u: DeliveryUpdate,
    now: Timestamp,
) -> impl Fn(&Connection) -> Result<(), StoreError> + Send + 'static {
    move |connection| {
        let updated = query_one(
            connection,
            &format!(
                "UPDATE OR FAIL deliveries SET status = ?1, provider = COALESCE(?2, provider), \
                 provider_ref = COALESCE(?3, provider_ref), error = ?4, error_code = ?5, \
                 segments = COALESCE(?6, segments), price = COALESCE(?7, price), \
                 price_unit = COALESCE(?8, price_unit), lease_until = COALESCE(?9, lease_until), \
                 fallback_at = ?10, updated_at = ?11 WHERE id = ?12 \
                 RETURNING {DELIVERY_COLUMNS_AND_SERVICE}"
            ),
            params![
                u.status.as_str(),
                u.provider,
                u.provider_ref,
                u.error,
                u.error_code,
                u.segments,
                u.price,
                u.price_unit,
                u.lease_until.map(|t| t.0),
                u.fallback_at.map(|t| t.0),
                now.0,
                id.as_bytes().as_slice()
            ],
            rows::delivery_and_service,
        )?;
        if u.status != DeliveryStatus::Queued
            && let Some((delivery, service)) = updated
        {
            insert_event(connection, &EventRow::delivery(service, &delivery, now))?;
        }
        Ok(())
    }
}

impl Store for SqliteStore {
    async fn ping(&self) -> Result<(), StoreError> {
        self.read(|connection| {
            connection
                .query_row("SELECT 1", [], |_| Ok(()))
                .map_err(db_error)
        })
        .await
    }

    async fn create_verification(
        &self,
        verification: &Verification,
        delivery: &DeliveryAttempt,
    ) -> Result<(), StoreError> {
        let new = NewVerification::new(verification, delivery);
        self.write(move |connection| insert_verification(connection, &new))
            .await
    }

    async fn start_verification(&self, plan: &StartPlan) -> Result<StartDecision, StoreError> {
        let new = NewVerification::new(&plan.verification, &plan.delivery);
        let plan = plan.clone();
        // The writer runs one job at a time, so reading the counters and then writing is
        // atomic; every refusal returns before the first write.
        self.write(move |connection| {
            let v = &plan.verification;
            let now = v.created_at.0;
            if plan.cooldown_seconds > 0 {
                let last_send = query_one(
                    connection,
                    "SELECT COALESCE((SELECT MAX(created_at) FROM deliveries \
                     WHERE verification_id = v.id), v.created_at) FROM verifications v \
                     WHERE service_id = ?1 AND to_number = ?2 AND expires_at > ?3 \
                     ORDER BY id DESC LIMIT 1",
                    params![v.service_id.as_bytes().as_slice(), v.to.as_str(), now],
                    |row| rows::get::<i64>(row, 0),
                )?;
                if let Some(last_send) = last_send {
                    let allowed_at =
                        Timestamp(last_send).plus_seconds(i64::from(plan.cooldown_seconds));
                    if now < allowed_at.0 {
                        return Ok(StartDecision::Cooldown { allowed_at });
                    }
                }
            }
            if let Some(lockout) = &plan.lockout {
                let (count, oldest) =
                    rate_window(connection, &lockout.key, now - lockout.window_ms)?;
                if count >= lockout.max {
                    let frees_at = oldest.map(|at| Timestamp(at + lockout.window_ms));
                    return Ok(StartDecision::LockedOut { frees_at });
                }
            }
            for (index, hit) in plan.limits.iter().enumerate() {
                forget_rate_events(connection, &hit.key, now - hit.window_ms)?;
                if hit.max == u32::MAX {
                    continue;
                }
                let (count, oldest) = rate_window(connection, &hit.key, now - hit.window_ms)?;
                if count >= hit.max {
                    let frees_at = oldest.map(|at| Timestamp(at + hit.window_ms));
                    return Ok(StartDecision::Limited { index, frees_at });
                }
            }
            if let Some(spend) = &plan.spend
                && add_spend(connection, spend)?.is_none()
            {
                return Ok(StartDecision::OverBudget);
            }
            for hit in &plan.limits {
                add_rate_event(connection, &hit.key, now)?;
            }
            insert_verification(connection, &new)?;
            Ok(StartDecision::Created)
        })
        .await
    }

    async fn verification(&self, id: VerificationId) -> Result<Option<Verification>, StoreError> {
        self.read_untouched_by_unconfirmed(move |connection| load_verification(connection, id))
            .await
    }

    async fn check_code(
        &self,
        id: VerificationId,
        service: ServiceId,
        candidate: Candidate,
        now: Timestamp,
    ) -> Result<CheckResult, StoreError> {
        self.write(move |connection| {
            let Some(mut verification) = load_verification(connection, id)? else {
                return Ok(CheckResult {
                    outcome: CheckOutcome::NotFound,
                    verification: None,
                });
            };
            if verification.service_id != service {
                return Ok(CheckResult {
                    outcome: CheckOutcome::WrongService,
                    verification: None,
                });
            }
            let decision = decide_check(&verification, verification.accepts(&candidate), now);
            record_transition(
                connection,
                &mut verification,
                decision.status,
                decision.attempts,
                now,
            )?;
            let counters = candidate.counting.counters(&verification);
            if let Some((key, window_ms)) = counters.for_outcome(decision.outcome) {
                forget_rate_events(connection, key, now.0 - window_ms)?;
                add_rate_event(connection, key, now.0)?;
            }
            Ok(CheckResult {
                outcome: decision.outcome,
                verification: Some(verification),
            })
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
        self.write(move |connection| {
            let Some(mut verification) = load_verification(connection, id)? else {
                return Ok(StatusChange::NotFound);
            };
            if verification.service_id != service {
                return Ok(StatusChange::WrongService);
            }
            let plan = decide_status_change(&verification, target, now);
            if let Some(status) = plan.record {
                let attempts = verification.attempts;
                record_transition(connection, &mut verification, status, attempts, now)?;
            }
            Ok(match plan.changed {
                true => StatusChange::Changed(Box::new(verification)),
                false => StatusChange::NotPending(Box::new(verification)),
            })
        })
        .await
    }

    async fn latest_for(
        &self,
        service: ServiceId,
        to: &str,
        now: Timestamp,
    ) -> Result<Option<Verification>, StoreError> {
        let to = to.to_string();
        self.read_untouched_by_unconfirmed(move |connection| {
            query_one(
                connection,
                &format!(
                    "SELECT {VERIFICATION_COLUMNS} FROM verifications \
                     WHERE service_id = ?1 AND to_number = ?2 AND expires_at > ?3 \
                     ORDER BY id DESC LIMIT 1"
                ),
                params![service.as_bytes().as_slice(), to, now.0],
                rows::verification,
            )
        })
        .await
    }

    async fn resend(
        &self,
        id: VerificationId,
        delivery: &DeliveryAttempt,
        new_hash: Option<CodeHash>,
        max_sends: u32,
        now: Timestamp,
    ) -> Result<ResendOutcome, StoreError> {
        let d = delivery.clone();
        self.write(move |connection| {
            let Some(mut verification) = load_verification(connection, id)? else {
                return Ok(ResendOutcome::NotPending);
            };
            if verification.status_at(now) != VerificationStatus::Pending {
                return Ok(ResendOutcome::NotPending);
            }
            let sends: u32 = connection
                .prepare_cached("SELECT COUNT(*) FROM deliveries WHERE verification_id = ?1")
                .and_then(|mut statement| {
                    statement.query_row([id.as_bytes().as_slice()], |row| row.get(0))
                })
                .map_err(db_error)?;
            if sends >= max_sends {
                return Ok(ResendOutcome::TooManySends);
            }
            insert_delivery(connection, &d)?;
            insert_event(
                connection,
                &EventRow::delivery(verification.service_id, &d, now),
            )?;
            if let Some(hash) = new_hash {
                verification.code_hash = hash;
                verification.code_seed = None;
            }
            execute(
                connection,
                "UPDATE verifications SET code_hash = ?1, code_seed = ?2, updated_at = ?3 WHERE id = ?4",
                params![
                    verification.code_hash.0.as_slice(),
                    verification.code_seed.map(|seed| seed.0.to_vec()),
                    now.0,
                    id.as_bytes().as_slice()
                ],
            )?;
            verification.updated_at = now;
            Ok(ResendOutcome::Queued(Box::new(verification)))
        })
        .await
    }

    async fn deliveries(
        &self,
        verification: VerificationId,
    ) -> Result<Vec<DeliveryAttempt>, StoreError> {
        self.read(move |connection| {
            query_all(
                connection,
                &format!("SELECT {DELIVERY_COLUMNS} FROM deliveries WHERE verification_id = ?1 ORDER BY created_at, id"),
                [verification.as_bytes().as_slice()],
                rows::delivery,
            )
        })
        .await
    }

    async fn claim_stale_deliveries(
        &self,
        now: Timestamp,
        lease_until: Timestamp,
        limit: u32,
    ) -> Result<Vec<(DeliveryAttempt, Verification)>, StoreError> {
        self.write(move |connection| {
            let queued = query_all(
                connection,
                &format!(
                    "UPDATE deliveries SET lease_until = ?1 WHERE id IN \
                     (SELECT id FROM deliveries WHERE status = 'queued' AND lease_until <= ?2 \
                      ORDER BY lease_until LIMIT ?3) RETURNING {DELIVERY_COLUMNS}"
                ),
                params![lease_until.0, now.0, limit],
                rows::delivery,
            )?;
            let mut out = Vec::with_capacity(queued.len());
            for delivery in queued {
                if let Some(verification) = load_verification(connection, delivery.verification_id)?
                {
                    out.push((delivery, verification));
                }
            }
            Ok(out)
        })
        .await
    }

    async fn update_delivery(
        &self,
        id: DeliveryId,
        update: &DeliveryUpdate,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        self.write(delivery_update(id, update.clone(), now)).await
    }

    /// Queued, not committed, when it returns: one node, one writer, and every read waits for
    /// it (`Writer::settled`), so the start that answers with it never disagrees with a read.
    async fn record_first_outcome(
        &self,
        id: DeliveryId,
        update: &DeliveryUpdate,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        self.inner.writer.write_unconfirmed(
            "a delivery's first outcome",
            delivery_update(id, update.clone(), now),
        )
    }

    async fn record_receipt(
        &self,
        receipt: &ReceiptUpdate,
        now: Timestamp,
    ) -> Result<Option<DeliveryAttempt>, StoreError> {
        let r = receipt.clone();
        self.write(move |connection| {
            let Some(current) = query_one(
                connection,
                &format!(
                    "SELECT {DELIVERY_COLUMNS} FROM deliveries WHERE provider_ref = ?1 AND provider = ?2"
                ),
                params![r.provider_ref, r.provider],
                rows::delivery,
            )?
            else {
                return Ok(None);
            };
            if current.status.rank() >= r.status.rank() {
                return Ok(Some(current));
            }
            let fallback = match r.status {
                DeliveryStatus::Delivered => "NULL",
                DeliveryStatus::Undelivered | DeliveryStatus::Failed => {
                    "CASE WHEN fallback_at IS NULL THEN NULL ELSE ?6 END"
                }
                _ => "fallback_at",
            };
            query_one(
                connection,
                &format!(
                    "UPDATE deliveries SET status = ?1, error_code = COALESCE(?2, error_code), \
                     price = COALESCE(?3, price), segments = COALESCE(?4, segments), \
                     fallback_at = {fallback}, updated_at = ?6 WHERE id = ?5 \
                     RETURNING {DELIVERY_COLUMNS_AND_SERVICE}"
                ),
                params![
                    r.status.as_str(),
                    r.error_code,
                    r.price,
                    r.segments,
                    current.id.as_bytes().as_slice(),
                    now.0
                ],
                rows::delivery_and_service,
            )?
            .map(|(updated, service)| {
                insert_event(
                    connection,
                    &EventRow::delivery(service, &updated, now),
                )?;
                Ok(updated)
            })
            .transpose()
        })
        .await
    }

    async fn rate_hit(
        &self,
        key: &str,
        window_ms: i64,
        limit: u32,
        now: Timestamp,
    ) -> Result<RateCount, StoreError> {
        let key = key.to_string();
        self.write(move |connection| {
            forget_rate_events(connection, &key, now.0 - window_ms)?;
            let (count, oldest) = rate_window(connection, &key, now.0 - window_ms)?;
            if count >= limit {
                return Ok(RateCount {
                    allowed: false,
                    count,
                    frees_at: oldest.map(|at| Timestamp(at + window_ms)),
                });
            }
            add_rate_event(connection, &key, now.0)?;
            Ok(RateCount {
                allowed: true,
                count: count + 1,
                frees_at: Some(Timestamp(oldest.unwrap_or(now.0) + window_ms)),
            })
        })
        .await
    }

    async fn rate_count(
        &self,
        key: &str,
        window_ms: i64,
        now: Timestamp,
    ) -> Result<RateCount, StoreError> {
        let key = key.to_string();
        self.read(move |connection| {
            let (count, oldest) = rate_window(connection, &key, now.0 - window_ms)?;
            Ok(RateCount {
                allowed: true,
                count,
                frees_at: oldest.map(|at| Timestamp(at + window_ms)),
            })
        })
        .await
    }

    async fn quarantine(&self, quarantine: &Quarantine) -> Result<bool, StoreError> {
        let q = quarantine.clone();
        self.write(move |connection| {
            let changed = execute(
                connection,
                "INSERT INTO quarantines (prefix, service_id, reason, until, created_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5) \
                 ON CONFLICT (prefix, service_id) DO UPDATE SET reason = excluded.reason, \
                 until = excluded.until, created_at = excluded.created_at \
                 WHERE quarantines.until <= excluded.created_at",
                params![
                    q.prefix,
                    quarantine_scope(q.service).as_slice(),
                    q.reason,
                    q.until.0,
                    q.created_at.0
                ],
            )?;
            Ok(changed == 1)
        })
        .await
    }

    async fn active_quarantine(
        &self,
        prefix: &str,
        service: ServiceId,
        now: Timestamp,
    ) -> Result<Option<Quarantine>, StoreError> {
        let prefix = prefix.to_string();
        self.read(move |connection| {
            query_one(
                connection,
                &format!(
                    "SELECT {QUARANTINE_COLUMNS} FROM quarantines \
                     WHERE prefix = ?1 AND service_id IN (?2, ?3) AND until > ?4 \
                     ORDER BY service_id LIMIT 1"
                ),
                params![
                    prefix,
                    quarantine_scope(None).as_slice(),
                    service.as_bytes().as_slice(),
                    now.0
                ],
                quarantine_row,
            )
        })
        .await
    }

    async fn quarantines(&self, now: Timestamp) -> Result<Vec<Quarantine>, StoreError> {
        self.read(move |connection| {
            query_all(
                connection,
                &format!(
                    "SELECT {QUARANTINE_COLUMNS} FROM quarantines WHERE until > ?1 \
                     ORDER BY created_at DESC, prefix, service_id"
                ),
                params![now.0],
                quarantine_row,
            )
        })
        .await
    }

    async fn lift_quarantine(
        &self,
        prefix: &str,
        service: Option<ServiceId>,
    ) -> Result<bool, StoreError> {
        let prefix = prefix.to_string();
        self.write(move |connection| {
            Ok(execute(
                connection,
                "DELETE FROM quarantines WHERE prefix = ?1 AND service_id = ?2",
                params![prefix, quarantine_scope(service).as_slice()],
            )? == 1)
        })
        .await
    }

    async fn add_spend(&self, key: &str, amount: f64, cap: f64) -> Result<Option<f64>, StoreError> {
        let spend = Spend {
            key: key.to_string(),
            amount,
            cap,
        };
        self.write(move |connection| add_spend(connection, &spend))
            .await
    }

    async fn add_safe_number(
        &self,
        account: AccountId,
        entry: &SafeNumber,
    ) -> Result<SafeNumber, StoreError> {
        let entry = entry.clone();
        self.write(move |connection| {
            execute(
                connection,
                "INSERT INTO safe_numbers (account_id, phone, id, created_at) VALUES (?1, ?2, ?3, ?4) \
                 ON CONFLICT (account_id, phone) DO NOTHING",
                params![
                    account.as_bytes().as_slice(),
                    entry.phone,
                    entry.id.as_bytes().as_slice(),
                    entry.created_at.0
                ],
            )?;
            query_one(
                connection,
                "SELECT id, phone, created_at FROM safe_numbers WHERE account_id = ?1 AND phone = ?2",
                params![account.as_bytes().as_slice(), entry.phone],
                safe_number_row,
            )?
            .ok_or_else(|| StoreError::Database("safe number vanished".into()))
        })
        .await
    }

    async fn safe_number(
        &self,
        account: AccountId,
        phone: &str,
    ) -> Result<Option<SafeNumber>, StoreError> {
        let phone = phone.to_string();
        self.read(move |connection| {
            query_one(
                connection,
                "SELECT id, phone, created_at FROM safe_numbers WHERE account_id = ?1 AND phone = ?2",
                params![account.as_bytes().as_slice(), phone],
                safe_number_row,
            )
        })
        .await
    }

    async fn has_safe_numbers(&self, account: AccountId) -> Result<bool, StoreError> {
        self.read(move |connection| {
            connection
                .prepare_cached("SELECT EXISTS (SELECT 1 FROM safe_numbers WHERE account_id = ?1)")
                .and_then(|mut statement| {
                    statement.query_row(params![account.as_bytes().as_slice()], |row| row.get(0))
                })
                .map_err(db_error)
        })
        .await
    }

    async fn remove_safe_number(
        &self,
        account: AccountId,
        phone: &str,
    ) -> Result<bool, StoreError> {
        let phone = phone.to_string();
        self.write(move |connection| {
            Ok(execute(
                connection,
                "DELETE FROM safe_numbers WHERE account_id = ?1 AND phone = ?2",
                params![account.as_bytes().as_slice(), phone],
            )? == 1)
        })
        .await
    }

    async fn release_deliveries(
        &self,
        ids: &[DeliveryId],
        now: Timestamp,
    ) -> Result<u64, StoreError> {
        let ids = ids.to_vec();
        self.write(move |connection| {
            let mut released = 0;
            for id in &ids {
                released += execute(
                    connection,
                    "UPDATE deliveries SET lease_until = ?1 WHERE id = ?2 AND status = 'queued'",
                    params![now.0, id.as_bytes().as_slice()],
                )? as u64;
            }
            Ok(released)
        })
        .await
    }

    async fn expire_due(
        &self,
        now: Timestamp,
        limit: u32,
    ) -> Result<Vec<Verification>, StoreError> {
        self.write(move |connection| {
            let due = query_all(
                connection,
                &format!(
                    "SELECT {VERIFICATION_COLUMNS} FROM verifications \
                     WHERE status = 'pending' AND expires_at <= ?1 ORDER BY expires_at LIMIT ?2"
                ),
                params![now.0, limit],
                rows::verification,
            )?;
            let mut expired = Vec::with_capacity(due.len());
            for mut verification in due {
                let attempts = verification.attempts;
                record_transition(
                    connection,
                    &mut verification,
                    VerificationStatus::Expired,
                    attempts,
                    now,
                )?;
                expired.push(verification);
            }
            Ok(expired)
        })
        .await
    }

    async fn record_event(&self, event: &Event) -> Result<(), StoreError> {
        let event = EventRow::from(event.clone());
        self.write(move |connection| insert_event(connection, &event))
            .await
    }

    async fn events(&self, filter: &EventFilter) -> Result<Vec<Event>, StoreError> {
        let f = filter.clone();
        self.read(move |connection| {
            let mut sql = String::from(
                "SELECT e.id, e.service_id, e.verification_id, e.kind, e.data, e.created_at \
                 FROM events e JOIN services s ON s.id = e.service_id WHERE s.account_id = ?1",
            );
            let mut values: Vec<rusqlite::types::Value> =
                vec![f.account.as_bytes().to_vec().into()];
            let mut push = |clause: &str, value: rusqlite::types::Value| {
                values.push(value);
                sql.push_str(&format!(" AND {clause} ?{}", values.len()));
            };
            if let Some(service) = f.service {
                push("e.service_id =", service.as_bytes().to_vec().into());
            }
            if let Some(verification) = f.verification {
                push(
                    "e.verification_id =",
                    verification.as_bytes().to_vec().into(),
                );
            }
            if let Some(kind) = &f.kind {
                push("e.kind =", kind.clone().into());
            }
            if let Some(since) = f.since {
                push("e.created_at >=", since.0.into());
            }
            if let Some(until) = f.until {
                push("e.created_at <", until.0.into());
            }
            if let Some(after) = f.after {
                push("e.id >", after.as_bytes().to_vec().into());
            }
            sql.push_str(&format!(" ORDER BY e.id LIMIT {}", f.limit));
            query_all(
                connection,
                &sql,
                rusqlite::params_from_iter(values),
                event_row,
            )
        })
        .await
    }

    async fn create_webhook(&self, webhook: &Webhook) -> Result<(), StoreError> {
        let w = webhook.clone();
        self.write(move |connection| {
            webhooks_changed();
            execute(
                connection,
                "INSERT INTO webhooks (id, service_id, url, event_types, enabled, friendly_name, \
                 created_at, updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                params![
                    w.id.as_bytes().as_slice(),
                    w.service_id.as_bytes().as_slice(),
                    w.url,
                    w.stored_types(),
                    w.enabled,
                    w.friendly_name,
                    w.created_at.0,
                    w.updated_at.0
                ],
            )?;
            Ok(())
        })
        .await
    }

    async fn webhooks(&self, service: ServiceId) -> Result<Vec<Webhook>, StoreError> {
        self.read(move |connection| {
            query_all(
                connection,
                "SELECT id, service_id, url, event_types, enabled, friendly_name, created_at, updated_at \
                 FROM webhooks WHERE service_id = ?1 ORDER BY created_at, id",
                [service.as_bytes().as_slice()],
                webhook_row,
            )
        })
        .await
    }

    async fn update_webhook(&self, webhook: &Webhook) -> Result<bool, StoreError> {
        let w = webhook.clone();
        self.write(move |connection| {
            webhooks_changed();
            Ok(execute(
                connection,
                "UPDATE webhooks SET url = ?1, event_types = ?2, enabled = ?3, friendly_name = ?4, \
                 updated_at = ?5 WHERE id = ?6 AND service_id = ?7",
                params![
                    w.url,
                    w.stored_types(),
                    w.enabled,
                    w.friendly_name,
                    w.updated_at.0,
                    w.id.as_bytes().as_slice(),
                    w.service_id.as_bytes().as_slice()
                ],
            )? == 1)
        })
        .await
    }

    async fn delete_webhook(&self, service: ServiceId, id: Uuid) -> Result<bool, StoreError> {
        self.write(move |connection| {
            webhooks_changed();
            let deleted = execute(
                connection,
                "DELETE FROM webhooks WHERE id = ?1 AND service_id = ?2",
                params![id.as_bytes().as_slice(), service.as_bytes().as_slice()],
            )? == 1;
            if deleted {
                execute(
                    connection,
                    "DELETE FROM webhook_deliveries WHERE webhook_id = ?1 AND state = 'pending'",
                    params![id.as_bytes().as_slice()],
                )?;
            }
            Ok(deleted)
        })
        .await
    }

    async fn claim_webhook_jobs(
        &self,
        now: Timestamp,
        lease_until: Timestamp,
        limit: u32,
    ) -> Result<Vec<WebhookJob>, StoreError> {
        self.write(move |connection| {
            let claimed: Vec<ClaimedWebhookRow> = query_all(
                connection,
                "UPDATE webhook_deliveries SET lease_until = ?1 WHERE id IN \
                 (SELECT d.id FROM webhook_deliveries d WHERE d.state = 'pending' \
                  AND d.next_attempt_at <= ?2 AND d.lease_until <= ?2 \
                  AND NOT EXISTS (SELECT 1 FROM webhook_deliveries o WHERE o.webhook_id = d.webhook_id \
                     AND o.state = 'pending' AND o.verification_id IS d.verification_id \
                     AND o.event_id < d.event_id) \
                  ORDER BY d.event_id LIMIT ?3) \
                 RETURNING id, webhook_id, event_id, attempts, created_at",
                params![lease_until.0, now.0, limit],
                |row| {
                    Ok((
                        rows::get(row, 0)?,
                        rows::get(row, 1)?,
                        rows::get(row, 2)?,
                        rows::get(row, 3)?,
                        rows::get(row, 4)?,
                    ))
                },
            )?;
            let mut jobs = Vec::with_capacity(claimed.len());
            for (id, webhook, event, attempts, created_at) in claimed {
                let url: Option<String> = query_one(
                    connection,
                    "SELECT url FROM webhooks WHERE id = ?1",
                    [webhook.as_slice()],
                    |row| rows::get(row, 0),
                )?;
                let event = query_one(
                    connection,
                    "SELECT id, service_id, verification_id, kind, data, created_at FROM events WHERE id = ?1",
                    [event.as_slice()],
                    event_row,
                )?;
                let (Some(url), Some(event)) = (url, event) else {
                    continue;
                };
                let uuid = |b: &[u8]| Uuid::from_slice(b).map_err(|_| StoreError::Corrupt("webhook id".into()));
                jobs.push(WebhookJob {
                    id: uuid(&id)?,
                    webhook_id: uuid(&webhook)?,
                    url,
                    event,
                    attempts,
                    created_at: Timestamp(created_at),
                });
            }
            Ok(jobs)
        })
        .await
    }

    async fn webhook_job_done(
        &self,
        id: Uuid,
        outcome: &WebhookOutcome,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let o = outcome.clone();
        self.write(move |connection| {
            let state = match (&o.error, o.retry_at) {
                (None, _) => "delivered",
                (Some(_), Some(_)) => "pending",
                (Some(_), None) => "failed",
            };
            execute(
                connection,
                "UPDATE webhook_deliveries SET state = ?1, attempts = attempts + 1, \
                 next_attempt_at = COALESCE(?2, next_attempt_at), lease_until = 0, last_status = ?3, \
                 last_latency_ms = ?4, last_error = ?5, updated_at = ?6 WHERE id = ?7",
                params![
                    state,
                    o.retry_at.map(|t| t.0),
                    o.status,
                    o.latency_ms,
                    o.error,
                    now.0,
                    id.as_bytes().as_slice()
                ],
            )?;
            Ok(())
        })
        .await
    }

    async fn webhook_log(
        &self,
        webhook: Uuid,
        limit: u32,
    ) -> Result<Vec<WebhookLogEntry>, StoreError> {
        self.read(move |connection| {
            query_all(
                connection,
                "SELECT d.event_id, e.kind, d.state, d.attempts, d.last_status, d.last_latency_ms, \
                 d.last_error, d.next_attempt_at, d.updated_at FROM webhook_deliveries d \
                 JOIN events e ON e.id = d.event_id WHERE d.webhook_id = ?1 \
                 ORDER BY d.event_id DESC LIMIT ?2",
                params![webhook.as_bytes().as_slice(), limit],
                |row| {
                    let event: Vec<u8> = rows::get(row, 0)?;
                    let state: String = rows::get(row, 2)?;
                    let next: i64 = rows::get(row, 7)?;
                    Ok(WebhookLogEntry {
                        event_id: Uuid::from_slice(&event)
                            .map_err(|_| StoreError::Corrupt("event id".into()))?,
                        event_type: rows::get(row, 1)?,
                        next_attempt_at: (state == "pending").then_some(Timestamp(next)),
                        state,
                        attempts: rows::get(row, 3)?,
                        last_status: rows::get(row, 4)?,
                        last_latency_ms: rows::get(row, 5)?,
                        last_error: rows::get(row, 6)?,
                        updated_at: Timestamp(rows::get(row, 8)?),
                    })
                },
            )
        })
        .await
    }

    async fn attempts(
        &self,
        filter: &AttemptFilter,
    ) -> Result<Vec<(DeliveryAttempt, Verification)>, StoreError> {
        let f = filter.clone();
        self.read(move |connection| {
            let (clause, mut values) = attempt_where(&f);
            let mut sql = format!(
                "SELECT d.id FROM deliveries d JOIN verifications v ON v.id = d.verification_id \
                 JOIN services s ON s.id = v.service_id WHERE {clause}"
            );
            if let Some(after) = f.after {
                values.push(after.as_bytes().to_vec().into());
                sql.push_str(&format!(" AND d.id > ?{}", values.len()));
            }
            sql.push_str(&format!(" ORDER BY d.id LIMIT {}", f.limit.max(1)));
            let ids: Vec<Vec<u8>> = query_all(
                connection,
                &sql,
                rusqlite::params_from_iter(values),
                |row| rows::get(row, 0),
            )?;
            let mut out = Vec::with_capacity(ids.len());
            for id in ids {
                let delivery = query_one(
                    connection,
                    &format!("SELECT {DELIVERY_COLUMNS} FROM deliveries WHERE id = ?1"),
                    [id.as_slice()],
                    rows::delivery,
                )?;
                if let Some(delivery) = delivery
                    && let Some(verification) =
                        load_verification(connection, delivery.verification_id)?
                {
                    out.push((delivery, verification));
                }
            }
            Ok(out)
        })
        .await
    }

    async fn attempt_summary(&self, filter: &AttemptFilter) -> Result<AttemptSummary, StoreError> {
        let f = filter.clone();
        self.read(move |connection| {
            let (clause, values) = attempt_where(&f);
            let sql = format!(
                "SELECT COUNT(*), COALESCE(SUM(CASE WHEN v.status = 'approved' THEN 1 ELSE 0 END), 0) \
                 FROM deliveries d JOIN verifications v ON v.id = d.verification_id \
                 JOIN services s ON s.id = v.service_id WHERE {clause}"
            );
            let (total, converted): (i64, i64) = connection
                .prepare(&sql)
                .and_then(|mut s| {
                    s.query_row(rusqlite::params_from_iter(values), |row| {
                        Ok((row.get(0)?, row.get(1)?))
                    })
                })
                .map_err(db_error)?;
            Ok(AttemptSummary {
                total: total.max(0) as u64,
                converted: converted.max(0) as u64,
            })
        })
        .await
    }

    async fn active_services(&self, since: Timestamp) -> Result<Vec<ServiceId>, StoreError> {
        self.read(move |connection| {
            let ids: Vec<Vec<u8>> = query_all(
                connection,
                "SELECT DISTINCT service_id FROM verifications WHERE created_at >= ?1",
                params![since.0],
                |row| rows::get(row, 0),
            )?;
            Ok(ids
                .iter()
                .filter_map(|b| Uuid::from_slice(b).ok())
                .map(ServiceId::from_uuid)
                .collect())
        })
        .await
    }

    async fn open_alert(&self, key: &str, now: Timestamp) -> Result<bool, StoreError> {
        let key = key.to_string();
        self.write(move |connection| {
            Ok(execute(
                connection,
                "INSERT INTO alerts (key, opened_at) VALUES (?1, ?2) ON CONFLICT (key) DO NOTHING",
                params![key, now.0],
            )? == 1)
        })
        .await
    }

    async fn close_alert(&self, key: &str) -> Result<bool, StoreError> {
        let key = key.to_string();
        self.write(move |connection| {
            Ok(execute(
                connection,
                "DELETE FROM alerts WHERE key = ?1",
                params![key],
            )? == 1)
        })
        .await
    }

    async fn outbox_stats(&self) -> Result<OutboxStats, StoreError> {
        self.read(move |connection| {
            let (queued, oldest): (i64, Option<i64>) = connection
                .query_row(
                    "SELECT COUNT(*), MIN(created_at) FROM deliveries WHERE status = 'queued'",
                    [],
                    |row| Ok((row.get(0)?, row.get(1)?)),
                )
                .map_err(db_error)?;
            let pending: i64 = connection
                .query_row(
                    "SELECT COUNT(*) FROM callbacks WHERE state = 'pending'",
                    [],
                    |row| row.get(0),
                )
                .map_err(db_error)?;
            Ok(OutboxStats {
                queued_deliveries: queued.max(0) as u64,
                oldest_queued: oldest.map(Timestamp),
                pending_callbacks: pending.max(0) as u64,
            })
        })
        .await
    }

    async fn claim_due_fallbacks(
        &self,
        now: Timestamp,
        limit: u32,
    ) -> Result<Vec<(DeliveryAttempt, Verification)>, StoreError> {
        self.write(move |connection| {
            let due = query_all(
                connection,
                &format!(
                    "UPDATE deliveries SET fallback_at = NULL WHERE id IN \
                     (SELECT id FROM deliveries WHERE fallback_at IS NOT NULL AND fallback_at <= ?1 \
                      ORDER BY fallback_at LIMIT ?2) RETURNING {DELIVERY_COLUMNS}"
                ),
                params![now.0, limit],
                rows::delivery,
            )?;
            let mut out = Vec::with_capacity(due.len());
            for delivery in due {
                if let Some(verification) = load_verification(connection, delivery.verification_id)?
                {
                    out.push((delivery, verification));
                }
            }
            Ok(out)
        })
        .await
    }

    async fn create_application(
        &self,
        service: &ServiceRecord,
        application: &Application,
    ) -> Result<(), StoreError> {
        let service = service.clone();
        let application = application.clone();
        self.write(move |connection| {
            insert_service(connection, &service)?;
            execute(
                connection,
                &format!(
                    "INSERT INTO applications ({APPLICATION_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)"
                ),
                params![
                    application.id.as_bytes().as_slice(),
                    application.account_id.as_bytes().as_slice(),
                    application.service_id.as_bytes().as_slice(),
                    application.name,
                    application.secret_hash.as_slice(),
                    application.api_key_hash.as_slice(),
                    application.created_at.0
                ],
            )?;
            Ok(())
        })
        .await
    }

    async fn create_account(&self, account: &AccountRecord) -> Result<(), StoreError> {
        let account = account.clone();
        self.write(move |connection| {
            execute(
                connection,
                "INSERT INTO accounts (id, name, auth_token_hash, created_at) VALUES (?1, ?2, ?3, ?4)",
                params![
                    account.id.as_bytes().as_slice(),
                    account.name,
                    account.auth_token_hash.as_slice(),
                    account.created_at.0
                ],
            )?;
            Ok(())
        })
        .await
    }

    async fn account(&self, id: AccountId) -> Result<Option<AccountRecord>, StoreError> {
        self.read_untouched_by_unconfirmed(move |connection| {
            query_one(
                connection,
                "SELECT id, name, auth_token_hash, created_at FROM accounts WHERE id = ?1",
                [id.as_bytes().as_slice()],
                rows::account,
            )
        })
        .await
    }

    async fn create_api_key(&self, key: &ApiKeyRecord) -> Result<(), StoreError> {
        let key = key.clone();
        self.write(move |connection| {
            execute(
                connection,
                "INSERT INTO api_keys (id, account_id, name, secret_hash, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![
                    key.id.as_bytes().as_slice(),
                    key.account_id.as_bytes().as_slice(),
                    key.name,
                    key.secret_hash.as_slice(),
                    key.created_at.0
                ],
            )?;
            Ok(())
        })
        .await
    }

    async fn api_key(&self, id: ApiKeyId) -> Result<Option<ApiKeyRecord>, StoreError> {
        self.read_untouched_by_unconfirmed(move |connection| {
            query_one(
                connection,
                "SELECT id, account_id, name, secret_hash, created_at FROM api_keys WHERE id = ?1",
                [id.as_bytes().as_slice()],
                rows::api_key,
            )
        })
        .await
    }

    async fn rotate_auth_token(
        &self,
        id: AccountId,
        auth_token_hash: [u8; 32],
    ) -> Result<bool, StoreError> {
        self.write(move |connection| {
            Ok(execute(
                connection,
                "UPDATE accounts SET auth_token_hash = ?2 WHERE id = ?1",
                params![id.as_bytes().as_slice(), auth_token_hash.as_slice()],
            )? == 1)
        })
        .await
    }

    async fn api_keys(&self, account: AccountId) -> Result<Vec<ApiKeyRecord>, StoreError> {
        self.read(move |connection| {
            query_all(
                connection,
                "SELECT id, account_id, name, secret_hash, created_at FROM api_keys \
                 WHERE account_id = ?1 ORDER BY created_at, id",
                [account.as_bytes().as_slice()],
                rows::api_key,
            )
        })
        .await
    }

    async fn revoke_api_key(&self, account: AccountId, id: ApiKeyId) -> Result<bool, StoreError> {
        self.write(move |connection| {
            Ok(execute(
                connection,
                "DELETE FROM api_keys WHERE id = ?1 AND account_id = ?2",
                params![id.as_bytes().as_slice(), account.as_bytes().as_slice()],
            )? == 1)
        })
        .await
    }

    async fn create_service(&self, service: &ServiceRecord) -> Result<(), StoreError> {
        let service = service.clone();
        self.write(move |connection| insert_service(connection, &service))
            .await
    }

    async fn services(
        &self,
        account: AccountId,
        after: Option<ServiceId>,
        limit: u32,
    ) -> Result<Vec<ServiceRecord>, StoreError> {
        self.read(move |connection| {
            query_all(
                connection,
                &format!(
                    "SELECT {SERVICE_COLUMNS} FROM services WHERE account_id = ?1 AND deleted = 0 \
                     AND (?2 IS NULL OR id > ?2) ORDER BY id LIMIT ?3"
                ),
                params![
                    account.as_bytes().as_slice(),
                    after.map(|a| a.as_bytes().to_vec()),
                    limit
                ],
                rows::service,
            )
        })
        .await
    }

    async fn update_service(&self, service: &ServiceRecord) -> Result<bool, StoreError> {
        let settings = serde_json::to_string(&service.settings)
            .map_err(|e| StoreError::Corrupt(format!("settings do not serialise: {e}")))?;
        let (id, name, updated_at) = (service.id, service.name.clone(), service.updated_at);
        self.write(move |connection| {
            let changed = execute(
                connection,
                "UPDATE services SET name = ?1, settings = ?2, updated_at = ?3 WHERE id = ?4 AND deleted = 0",
                params![name, settings, updated_at.0, id.as_bytes().as_slice()],
            )?;
            Ok(changed == 1)
        })
        .await
    }

    async fn delete_service(&self, id: ServiceId) -> Result<bool, StoreError> {
        self.write(move |connection| {
            let changed = execute(
                connection,
                "UPDATE services SET deleted = 1 WHERE id = ?1 AND deleted = 0",
                [id.as_bytes().as_slice()],
            )?;
            Ok(changed == 1)
        })
        .await
    }

    async fn service(&self, id: ServiceId) -> Result<Option<ServiceRecord>, StoreError> {
        self.read_untouched_by_unconfirmed(move |connection| {
            query_one(
                connection,
                &format!("SELECT {SERVICE_COLUMNS} FROM services WHERE id = ?1 AND deleted = 0"),
                [id.as_bytes().as_slice()],
                rows::service,
            )
        })
        .await
    }

    async fn application(&self, id: ApplicationId) -> Result<Option<Application>, StoreError> {
        self.read_untouched_by_unconfirmed(move |connection| {
            query_one(
                connection,
                &format!("SELECT {APPLICATION_COLUMNS} FROM applications WHERE id = ?1"),
                [id.as_bytes().as_slice()],
                rows::application,
            )
        })
        .await
    }

    async fn application_by_api_key(
        &self,
        api_key_hash: [u8; 32],
    ) -> Result<Option<Application>, StoreError> {
        self.read_untouched_by_unconfirmed(move |connection| {
            query_one(
                connection,
                &format!("SELECT {APPLICATION_COLUMNS} FROM applications WHERE api_key_hash = ?1"),
                [api_key_hash.as_slice()],
                rows::application,
            )
        })
        .await
    }

    async fn applications(&self) -> Result<Vec<Application>, StoreError> {
        self.read(move |connection| {
            query_all(
                connection,
                &format!("SELECT {APPLICATION_COLUMNS} FROM applications ORDER BY created_at, id"),
                [],
                rows::application,
            )
        })
        .await
    }

    async fn rotate_application_secret(
        &self,
        id: ApplicationId,
        secret_hash: [u8; 32],
        api_key_hash: [u8; 32],
    ) -> Result<bool, StoreError> {
        self.write(move |connection| {
            let changed = execute(
                connection,
                "UPDATE applications SET secret_hash = ?1, api_key_hash = ?2 WHERE id = ?3",
                params![
                    secret_hash.as_slice(),
                    api_key_hash.as_slice(),
                    id.as_bytes().as_slice()
                ],
            )?;
            execute(
                connection,
                "UPDATE access_tokens SET revoked = 1 WHERE application_id = ?1",
                [id.as_bytes().as_slice()],
            )?;
            Ok(changed == 1)
        })
        .await
    }

    async fn insert_token(&self, token: &AccessToken) -> Result<(), StoreError> {
        let token = token.clone();
        self.write(move |connection| {
            execute(
                connection,
                "INSERT INTO access_tokens (token_hash, application_id, scope, expires_at, revoked) \
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                params![
                    token.token_hash.as_slice(),
                    token.application_id.as_bytes().as_slice(),
                    token.scope,
                    token.expires_at.0,
                    token.revoked as i64
                ],
            )?;
            Ok(())
        })
        .await
    }

    async fn token(&self, token_hash: [u8; 32]) -> Result<Option<AccessToken>, StoreError> {
        self.read_untouched_by_unconfirmed(move |connection| {
            query_one(
                connection,
                "SELECT token_hash, application_id, scope, expires_at, revoked FROM access_tokens WHERE token_hash = ?1",
                [token_hash.as_slice()],
                rows::token,
            )
        })
        .await
    }

    async fn revoke_token(
        &self,
        token_hash: [u8; 32],
        application: ApplicationId,
    ) -> Result<bool, StoreError> {
        self.write(move |connection| {
            let changed = execute(
                connection,
                "UPDATE access_tokens SET revoked = 1 WHERE token_hash = ?1 AND application_id = ?2",
                params![token_hash.as_slice(), application.as_bytes().as_slice()],
            )?;
            Ok(changed == 1)
        })
        .await
    }

    async fn claim_due_callbacks(
        &self,
        now: Timestamp,
        lease_until: Timestamp,
        limit: u32,
    ) -> Result<Vec<CallbackJob>, StoreError> {
        self.write(move |connection| {
            let claimed = query_all(
                connection,
                "UPDATE callbacks SET next_attempt_at = ?1 WHERE id IN \
                 (SELECT id FROM callbacks WHERE state = 'pending' AND next_attempt_at <= ?2 \
                  ORDER BY next_attempt_at LIMIT ?3) \
                 RETURNING id, verification_id, url, status, attempts",
                params![lease_until.0, now.0, limit],
                |row| {
                    let id: Vec<u8> = row.get(0).map_err(db_error)?;
                    let verification: Vec<u8> = row.get(1).map_err(db_error)?;
                    let status: String = row.get(3).map_err(db_error)?;
                    Ok((
                        Uuid::from_slice(&id)
                            .map_err(|_| StoreError::Corrupt("callback id".into()))?,
                        Uuid::from_slice(&verification)
                            .map_err(|_| StoreError::Corrupt("callback verification".into()))?,
                        row.get::<_, String>(2).map_err(db_error)?,
                        VerificationStatus::parse(&status)
                            .ok_or_else(|| StoreError::Corrupt("callback status".into()))?,
                        row.get::<_, u32>(4).map_err(db_error)?,
                    ))
                },
            )?;
            let mut jobs = Vec::with_capacity(claimed.len());
            for (id, verification_id, url, status, attempts) in claimed {
                let verification_id = VerificationId::from_uuid(verification_id);
                if let Some(verification) = load_verification(connection, verification_id)? {
                    jobs.push(CallbackJob {
                        id,
                        url,
                        verification,
                        status,
                        attempts,
                    });
                }
            }
            Ok(jobs)
        })
        .await
    }

    async fn callback_delivered(&self, id: Uuid, now: Timestamp) -> Result<(), StoreError> {
        self.write(move |connection| {
            execute(
                connection,
                "UPDATE callbacks SET state = 'delivered', attempts = attempts + 1, updated_at = ?1 WHERE id = ?2",
                params![now.0, id.as_bytes().as_slice()],
            )?;
            Ok(())
        })
        .await
    }

    async fn callback_failed(
        &self,
        id: Uuid,
        retry_at: Option<Timestamp>,
        error: &str,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let error = error.to_string();
        self.write(move |connection| {
            execute(
                connection,
                "UPDATE callbacks SET attempts = attempts + 1, last_error = ?1, updated_at = ?2, \
                 state = CASE WHEN ?3 IS NULL THEN 'failed' ELSE 'pending' END, \
                 next_attempt_at = COALESCE(?3, next_attempt_at) WHERE id = ?4",
                params![
                    error,
                    now.0,
                    retry_at.map(|t| t.0),
                    id.as_bytes().as_slice()
                ],
            )?;
            Ok(())
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The database, its WAL and its shared-memory file are readable by their owner only.
    #[cfg(unix)]
    #[tokio::test]
    async fn database_files_are_created_owner_only() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("private.db");
        let store = SqliteStore::open(&path).unwrap();
        store
            .write(|c| {
                c.execute_batch("CREATE TABLE t (x INTEGER)")
                    .map_err(db_error)
            })
            .await
            .unwrap();
        for name in ["private.db", "private.db-wal", "private.db-shm"] {
            let mode = std::fs::metadata(dir.path().join(name))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600, "{name}");
        }
    }

    /// Under writes that never pause, the WAL is still reset: its file stays near the
    /// writer's checkpoint threshold instead of growing with everything written.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_wal_stays_bounded_under_sustained_writes() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path().join("wal.db")).unwrap();
        store
            .write(|c| {
                c.execute_batch("CREATE TABLE filler (page BLOB NOT NULL)")
                    .map_err(db_error)
            })
            .await
            .unwrap();
        let page = 4096_u64;
        let threshold = u64::from(WRITER_CHECKPOINT_PAGES) * page;
        // Five times the threshold, 10 pages per write.
        let writes = 5 * u64::from(WRITER_CHECKPOINT_PAGES) / 10;
        for _ in 0..writes {
            store
                .write(|c| {
                    c.execute("INSERT INTO filler (page) VALUES (zeroblob(10 * 4000))", [])
                        .map_err(db_error)
                        .map(drop)
                })
                .await
                .unwrap();
        }
        let wal = std::fs::metadata(dir.path().join("wal.db-wal"))
            .unwrap()
            .len();
        assert!(
            wal > threshold / 2,
            "the test wrote through the WAL: {wal} bytes"
        );
        // A writer's checkpoint that meets the thread's running one is skipped and tried again
        // at the next commit, so the WAL can pass the threshold (42 MB for 40 under the
        // benchmark's load; up to ~70 MB under this test's faster writes), but not grow with
        // the total written.
        assert!(
            wal < threshold * 3,
            "WAL of {wal} bytes (threshold {threshold})"
        );
    }
}
