//! Store calls grouped per node. On PostgreSQL a statement's round trip, planning and commit
//! cost the database far more CPU than the rows it writes, so calls of one kind that arrive
//! while a group of them is running wait for the next group and share its statements. Each
//! call is answered only once its group's work is committed. Should a group fail, each of its
//! calls runs again alone, so one bad call cannot fail the others.

use std::future::Future;
use std::sync::Arc;

use otpd_core::StoreError;
use otpd_core::vault::Vault;
use sqlx::PgPool;
use tokio::sync::{Mutex, mpsc, oneshot};

/// One kind of call that can run alone or together with others of its kind.
pub(crate) trait Grouped: Send + Sync + 'static {
    /// What one call asks.
    type Call: Send + Sync + 'static;
    /// What one call is answered.
    type Answer: Send + 'static;
    /// Groups carry at most this many calls.
    const MAX: usize;
    /// Groups run at once per node (each takes one connection).
    const IN_FLIGHT: usize;

    /// Runs one call by itself: a group of one, so a call has one way to run whether it
    /// arrives alone or is rerun after its group failed.
    fn alone(
        pool: &PgPool,
        vault: &Vault,
        call: &Self::Call,
    ) -> impl Future<Output = Result<Self::Answer, StoreError>> + Send {
        async move {
            Self::together(pool, vault, &[call])
                .await?
                .into_iter()
                .next()
                .ok_or_else(|| StoreError::Database("a group of one answered nothing".into()))
        }
    }

    /// Runs several calls together, atomically; their answers in order.
    fn together(
        pool: &PgPool,
        vault: &Vault,
        calls: &[&Self::Call],
    ) -> impl Future<Output = Result<Vec<Self::Answer>, StoreError>> + Send;
}

/// One call waiting for its group.
struct Waiting<G: Grouped> {
    call: G::Call,
    reply: oneshot::Sender<Result<G::Answer, StoreError>>,
}

/// The queue of calls waiting for a group; cheap to clone.
pub(crate) struct Groups<G: Grouped> {
    queue: mpsc::UnboundedSender<Waiting<G>>,
}

impl<G: Grouped> Clone for Groups<G> {
    fn clone(&self) -> Self {
        Groups {
            queue: self.queue.clone(),
        }
    }
}

impl<G: Grouped> Groups<G> {
    /// Starts the tasks that run groups on `pool` (on the current tokio runtime).
    pub(crate) fn spawn(pool: PgPool, vault: Arc<Vault>) -> Groups<G> {
        let (queue, waiting) = mpsc::unbounded_channel();
        let waiting = Arc::new(Mutex::new(waiting));
        for _ in 0..G::IN_FLIGHT {
            tokio::spawn(run::<G>(pool.clone(), vault.clone(), waiting.clone()));
        }
        Groups { queue }
    }

    /// Runs `call` in the next group; answers once that group's work committed.
    pub(crate) async fn call(&self, call: G::Call) -> Result<G::Answer, StoreError> {
        let (reply, answer) = oneshot::channel();
        let stopped = || StoreError::Unavailable("the store's queue has stopped".into());
        self.queue
            .send(Waiting { call, reply })
            .map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }
}

async fn run<G: Grouped>(
    pool: PgPool,
    vault: Arc<Vault>,
    waiting: Arc<Mutex<mpsc::UnboundedReceiver<Waiting<G>>>>,
) {
    loop {
        let group = {
            let mut waiting = waiting.lock().await;
            let Some(first) = waiting.recv().await else {
                return;
            };
            let mut group = vec![first];
            while group.len() < G::MAX {
                match waiting.try_recv() {
                    Ok(next) => group.push(next),
                    Err(_) => break,
                }
            }
            group
        };
        let calls: Vec<&G::Call> = group.iter().map(|waiting| &waiting.call).collect();
        let answers = match calls.as_slice() {
            [call] => vec![G::alone(&pool, &vault, call).await],
            _ => match G::together(&pool, &vault, &calls).await {
                Ok(answers) => answers.into_iter().map(Ok).collect(),
                // The database is away: running each alone would only wait again.
                Err(StoreError::Unavailable(why)) => calls
                    .iter()
                    .map(|_| Err(StoreError::Unavailable(why.clone())))
                    .collect(),
                Err(_) => {
                    let mut answers = Vec::with_capacity(calls.len());
                    for call in &calls {
                        answers.push(G::alone(&pool, &vault, call).await);
                    }
                    answers
                }
            },
        };
        for (waiting, answer) in group.into_iter().zip(answers) {
            let _ = waiting.reply.send(answer);
        }
    }
}
