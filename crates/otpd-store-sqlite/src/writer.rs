//! The single writer. SQLite allows one writer at a time, so instead of many connections
//! queueing on a lock, one thread owns the write connection and commits the writes of all
//! concurrent requests together (group commit). Every caller is answered only after the
//! shared transaction has committed.
//!
//! A batch runs without savepoints (they cost the writer a copy of every page each write
//! touches). Should one write fail, the whole transaction is rolled back and the batch runs
//! again with each write in its own savepoint, so the failing one rolls back alone; this is
//! why a write is a re-runnable `Fn`.
//!
//! A write may also be *queued unconfirmed* (the first outcome of a delivery, which a start
//! answers with): its caller goes on once it is queued, and every read waits, before it
//! reads, until the unconfirmed writes queued before it have committed ([`Writer::settled`]).
//! Writes need no such wait: the queue is first in, first out.

use std::sync::{Arc, Mutex, mpsc};

use otpd_core::StoreError;
use rusqlite::Connection;
use tokio::sync::{oneshot, watch};

/// The most writes one transaction carries.
const MAX_BATCH: usize = 64;

/// How long a small batch waits for more writes.
const GATHER: std::time::Duration = std::time::Duration::from_micros(200);

/// One queued write: `run` applies it (true when it failed), `finish` answers its caller
/// with the outcome of the last run once the transaction's fate is known.
struct WriteJob {
    run: Box<dyn FnMut(&Connection) -> bool + Send>,
    finish: Box<dyn FnOnce(Result<(), String>) + Send>,
}

impl WriteJob {
    /// A job running `work`; `finish` gets the commit's outcome and the last run's result
    /// (`None` if it never ran).
    fn new<T, F>(
        work: F,
        finish: impl FnOnce(Result<(), String>, Option<Result<T, StoreError>>) + Send + 'static,
    ) -> WriteJob
    where
        T: Send + 'static,
        F: Fn(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let outcome: Arc<Mutex<Option<Result<T, StoreError>>>> = Arc::new(Mutex::new(None));
        let slot = outcome.clone();
        WriteJob {
            run: Box::new(move |connection| {
                let result = work(connection);
                let failed = result.is_err();
                if let Ok(mut slot) = slot.lock() {
                    *slot = Some(result);
                }
                failed
            }),
            finish: Box::new(move |commit| {
                let result = outcome.lock().ok().and_then(|mut slot| slot.take());
                finish(commit, result);
            }),
        }
    }
}

/// Handle to the writer thread; cheap to clone.
#[derive(Clone)]
pub(crate) struct Writer {
    jobs: mpsc::Sender<WriteJob>,
    unconfirmed: Arc<Unconfirmed>,
}

/// Marks an unconfirmed write ended when dropped: after its transaction, or with its job
/// should the writer thread be gone (so no read waits for it forever).
struct EndsUnconfirmed {
    unconfirmed: Arc<Unconfirmed>,
    number: u64,
}

impl Drop for EndsUnconfirmed {
    fn drop(&mut self) {
        let number = self.number;
        self.unconfirmed.ended.send_if_modified(|ended| {
            let later = number > *ended;
            if later {
                *ended = number;
            }
            later
        });
    }
}

/// How far the unconfirmed writes have got: numbered in queue order, the last one queued and
/// the last one whose transaction has ended.
struct Unconfirmed {
    /// Held while numbering and queueing one, so numbers follow the queue's order.
    queued: Mutex<u64>,
    ended: watch::Sender<u64>,
}

impl Writer {
    /// Starts the writer thread on `connection`.
    pub(crate) fn start(connection: Connection) -> Writer {
        let (jobs, queue) = mpsc::channel::<WriteJob>();
        std::thread::Builder::new()
            .name("otpd-sqlite-writer".into())
            .spawn(move || run(connection, queue))
            .expect("the OS can start the writer thread");
        Writer {
            jobs,
            unconfirmed: Arc::new(Unconfirmed {
                queued: Mutex::new(0),
                ended: watch::Sender::new(0),
            }),
        }
    }

    /// Queues `work` for the next group transaction and returns at once; a failure to commit
    /// it is logged. Reads wait for it through [`Writer::settled`].
    pub(crate) fn write_unconfirmed<F>(&self, what: &'static str, work: F) -> Result<(), StoreError>
    where
        F: Fn(&Connection) -> Result<(), StoreError> + Send + 'static,
    {
        let mut queued =
            self.unconfirmed.queued.lock().map_err(|_| {
                StoreError::Database("the SQLite writer's queue is poisoned".into())
            })?;
        let number = *queued + 1;
        let ends = EndsUnconfirmed {
            unconfirmed: self.unconfirmed.clone(),
            number,
        };
        let job = WriteJob::new(work, move |commit, result| {
            match (commit, result) {
                (Err(error), _) => {
                    tracing::error!(%error, what, "an unconfirmed write did not commit")
                }
                (Ok(()), Some(Err(error))) => {
                    tracing::error!(%error, what, "an unconfirmed write failed")
                }
                (Ok(()), _) => {}
            }
            drop(ends);
        });
        self.jobs
            .send(job)
            .map_err(|_| StoreError::Database("the SQLite writer has stopped".into()))?;
        *queued = number;
        Ok(())
    }

    /// Returns once every unconfirmed write queued so far has committed (or failed), so a
    /// read that follows sees what the callers of [`Writer::write_unconfirmed`] were told.
    pub(crate) async fn settled(&self) {
        // A poisoned lock still holds the last number queued.
        let target = match self.unconfirmed.queued.lock() {
            Ok(queued) => *queued,
            Err(poisoned) => *poisoned.into_inner(),
        };
        if *self.unconfirmed.ended.borrow() >= target {
            return;
        }
        let mut ended = self.unconfirmed.ended.subscribe();
        // An error means the writer thread is gone: the read goes on and sees what committed.
        let _ = ended.wait_for(|n| *n >= target).await;
    }

    /// Runs `work` inside the next group transaction and returns its result once committed.
    /// `work` may run twice (see the module documentation); only the last run's changes and
    /// result count.
    pub(crate) async fn write<T, F>(&self, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: Fn(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let job = WriteJob::new(work, move |commit, result| {
            let _ = reply.send(match (commit, result) {
                (Ok(()), Some(result)) => result,
                (Ok(()), None) => Err(StoreError::Database("the write did not run".into())),
                (Err(error), _) => Err(StoreError::Database(error)),
            });
        });
        let stopped = || StoreError::Database("the SQLite writer has stopped".into());
        self.jobs.send(job).map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }
}

fn execute(connection: &Connection, sql: &str) -> Result<(), String> {
    connection
        .prepare_cached(sql)
        .and_then(|mut statement| statement.execute([]))
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// Runs a job in its own savepoint, so its failure rolls back its changes alone.
fn run_alone(connection: &Connection, job: &mut WriteJob) -> Result<(), String> {
    execute(connection, "SAVEPOINT write_job")?;
    if (job.run)(connection) {
        execute(connection, "ROLLBACK TO write_job")?;
    }
    execute(connection, "RELEASE write_job")
}

/// Runs the whole batch in one transaction: first without savepoints; if any job fails,
/// again with one savepoint per job. The commit's outcome, for every job.
fn run_batch(connection: &Connection, batch: &mut [WriteJob]) -> Result<(), String> {
    execute(connection, "BEGIN IMMEDIATE")?;
    if batch.iter_mut().any(|job| (job.run)(connection)) {
        execute(connection, "ROLLBACK")?;
        execute(connection, "BEGIN IMMEDIATE")?;
        for job in batch.iter_mut() {
            if let Err(error) = run_alone(connection, job) {
                let _ = execute(connection, "ROLLBACK");
                return Err(error);
            }
        }
    }
    let commit = execute(connection, "COMMIT");
    if commit.is_err() {
        let _ = execute(connection, "ROLLBACK");
    }
    commit
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
        let outcome = run_batch(&connection, &mut batch);
        if let Err(error) = &outcome {
            tracing::error!(%error, "a write transaction failed");
        }
        for job in batch {
            (job.finish)(outcome.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Writes that fail roll back alone, however they are batched with others: every
    /// successful write is committed exactly once, no failed one leaves a row.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn a_failing_write_rolls_back_alone() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("writer.db");
        let connection = Connection::open(&path).unwrap();
        connection
            .execute_batch("CREATE TABLE t (n INTEGER PRIMARY KEY, side TEXT)")
            .unwrap();
        let writer = Writer::start(connection);
        let tasks: Vec<_> = (0..200)
            .map(|n: i64| {
                let writer = writer.clone();
                tokio::spawn(async move {
                    writer
                        .write(move |c| {
                            // Every fifth write inserts a row, then fails on a duplicate.
                            c.execute("INSERT INTO t (n, side) VALUES (?1, 'a')", [n])
                                .map_err(crate::db_error)?;
                            if n % 5 == 0 {
                                c.execute("INSERT INTO t (n, side) VALUES (?1, 'b')", [n])
                                    .map_err(crate::db_error)?;
                            }
                            Ok(n)
                        })
                        .await
                })
            })
            .collect();
        let mut succeeded = Vec::new();
        for task in tasks {
            if let Ok(n) = task.await.unwrap() {
                succeeded.push(n);
            }
        }
        assert_eq!(succeeded.len(), 160);
        assert!(succeeded.iter().all(|n| n % 5 != 0));
        let check = Connection::open(&path).unwrap();
        let rows: i64 = check
            .query_row("SELECT COUNT(*) FROM t", [], |r| r.get(0))
            .unwrap();
        let failed_rows: i64 = check
            .query_row("SELECT COUNT(*) FROM t WHERE n % 5 = 0", [], |r| r.get(0))
            .unwrap();
        assert_eq!((rows, failed_rows), (160, 0));
    }
}
