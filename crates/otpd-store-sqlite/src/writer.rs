//! The single writer. SQLite allows one writer at a time, so instead of many connections
//! queueing on a lock, one thread owns the write connection and commits the writes of all
//! concurrent requests together (group commit). Each write runs in its own savepoint, so one
//! failing write rolls back alone, and every caller is answered only after the shared
//! transaction has committed.

use std::sync::mpsc;

use otpd_core::StoreError;
use rusqlite::Connection;
use tokio::sync::oneshot;

/// The most writes one transaction carries.
const MAX_BATCH: usize = 64;

/// How long a small batch waits for more writes.
const GATHER: std::time::Duration = std::time::Duration::from_micros(200);

type Finisher = Box<dyn FnOnce(Result<(), String>) + Send>;
type WriteJob = Box<dyn FnOnce(&Connection) -> Finisher + Send>;

/// Handle to the writer thread; cheap to clone.
#[derive(Clone)]
pub(crate) struct Writer {
    jobs: mpsc::Sender<WriteJob>,
}

impl Writer {
    /// Starts the writer thread on `connection`.
    pub(crate) fn start(connection: Connection) -> Writer {
        let (jobs, queue) = mpsc::channel::<WriteJob>();
        std::thread::Builder::new()
            .name("otpd-sqlite-writer".into())
            .spawn(move || run(connection, queue))
            .expect("the OS can start the writer thread");
        Writer { jobs }
    }

    /// Runs `work` inside the next group transaction and returns its result once committed.
    pub(crate) async fn write<T, F>(&self, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let job: WriteJob = Box::new(move |connection| {
            let result = in_savepoint(connection, work);
            Box::new(move |commit: Result<(), String>| {
                let _ = reply.send(match commit {
                    Ok(()) => result,
                    Err(error) => Err(StoreError::Database(error)),
                });
            })
        });
        let stopped = || StoreError::Database("the SQLite writer has stopped".into());
        self.jobs.send(job).map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }
}

fn in_savepoint<T>(
    connection: &Connection,
    work: impl FnOnce(&Connection) -> Result<T, StoreError>,
) -> Result<T, StoreError> {
    // Cached statements: parsing these on every job cost the writer more than the savepoint.
    let run = |sql: &str| {
        connection
            .prepare_cached(sql)
            .and_then(|mut statement| statement.execute([]))
            .map_err(crate::db_error)
    };
    run("SAVEPOINT write_job")?;
    let result = work(connection);
    if result.is_err() {
        run("ROLLBACK TO write_job")?;
    }
    run("RELEASE write_job")?;
    result
}

fn run(connection: Connection, queue: mpsc::Receiver<WriteJob>) {
    while let Ok(first) = queue.recv() {
        let mut batch = vec![first];
        let mut waited = false;
        while batch.len() < MAX_BATCH {
            match queue.try_recv() {
                Ok(job) => batch.push(job),
                // Under load, a moment's wait fills the batch: every commit rewrites the
                // tables' hot pages into the WAL whatever the batch size, so larger batches
                // write less per request. An idle server never waits (one job, no queue).
                Err(_) if !waited && batch.len() > 1 && batch.len() < MAX_BATCH / 4 => {
                    waited = true;
                    std::thread::sleep(GATHER);
                }
                Err(_) => break,
            }
        }
        let begin = connection
            .prepare_cached("BEGIN IMMEDIATE")
            .and_then(|mut statement| statement.execute([]));
        if let Err(error) = begin {
            let message = error.to_string();
            for job in batch {
                // Answer without running: the work was never applied.
                drop(job);
                tracing::error!(error = %message, "could not begin a write transaction");
            }
            continue;
        }
        let finishers: Vec<Finisher> = batch.into_iter().map(|job| job(&connection)).collect();
        let commit = connection
            .prepare_cached("COMMIT")
            .and_then(|mut statement| statement.execute([]))
            .map(|_| ())
            .map_err(|e| e.to_string());
        if commit.is_err() {
            let _ = connection.execute_batch("ROLLBACK");
        }
        for finish in finishers {
            finish(commit.clone());
        }
    }
}
