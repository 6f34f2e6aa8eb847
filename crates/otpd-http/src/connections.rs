//! Serving connections with bounds a slow or idle client cannot outlast: a cap on open
//! connections, and a deadline for each request head counted from when the connection opens
//! or finishes its previous response (so it also closes idle keep-alive connections). The
//! body deadline is enforced where the body is read (`observe`).
//!
//! The head deadline is kept by one sweeper per server rather than a timer per request: a
//! request only stores "busy" and "waiting since" in its connection's tracker (two atomic
//! stores), and the sweeper closes the connections that have waited too long.

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, ready};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::ConnectInfo;
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::{Notify, Semaphore, watch};
use tower::Layer;

/// Bounds on the connections one otpd process holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// Connections served at once; more wait in the listen backlog.
    pub max_connections: usize,
    /// Time a connection has to send a whole request head, counted from when it opens or
    /// finishes its previous response (so an idle keep-alive connection closes after it).
    pub header_timeout: Duration,
    /// Time a request has to send its whole body.
    pub body_timeout: Duration,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        ConnectionLimits {
            max_connections: 1024,
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(10),
        }
    }
}

impl ConnectionLimits {
    /// The limits with `max_connections` kept below the process's open-file limit (less a
    /// reserve for the database, logs and outbound requests), so that accepting one more
    /// socket can never starve the rest of the process.
    pub fn within_open_file_limit(mut self) -> ConnectionLimits {
        if let Some(limit) = open_file_limit() {
            let room = limit.saturating_sub(RESERVED_FILES).max(8);
            self.max_connections = self.max_connections.min(room);
        }
        self.max_connections = self.max_connections.max(1);
        self
    }
}

/// Files kept for everything but client connections.
const RESERVED_FILES: usize = 128;

/// The soft `RLIMIT_NOFILE` from `/proc/self/limits` (Linux); `None` elsewhere.
fn open_file_limit() -> Option<usize> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

/// One connection's state as the sweeper sees it.
struct Tracker {
    /// A request is being handled (its head was read): the head deadline does not apply.
    busy: AtomicBool,
    /// Milliseconds after the server's epoch since which the connection waits for a head.
    waiting_since: AtomicU64,
    /// Told to close the connection.
    close: Notify,
}

/// The open connections, for the sweeper.
struct Connections {
    epoch: Instant,
    open: Mutex<HashMap<u64, Arc<Tracker>>>,
}

impl Connections {
    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    /// Closes every connection that has waited for a request head longer than `timeout`;
    /// runs until the server stops.
    async fn sweep(self: Arc<Self>, timeout: Duration, mut shutdown: watch::Receiver<bool>) {
        let limit = timeout.as_millis() as u64;
        let every = (timeout / 4).clamp(Duration::from_millis(10), Duration::from_secs(1));
        loop {
            tokio::select! {
                _ = tokio::time::sleep(every) => {}
                _ = stopped(&mut shutdown) => return,
            }
            let now = self.now_ms();
            let Ok(open) = self.open.lock() else {
                return;
            };
            for tracker in open.values() {
                let waited = now.saturating_sub(tracker.waiting_since.load(Ordering::Relaxed));
                if !tracker.busy.load(Ordering::Relaxed) && waited >= limit {
                    tracker.close.notify_one();
                }
            }
        }
    }
}

/// Serves `app` on `listener` until `shutdown` turns true, then lets in-flight requests
/// finish (each connection closes after its current response) and returns when all have.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: ConnectionLimits,
    mut shutdown: watch::Receiver<bool>,
) -> std::io::Result<()> {
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    let connections = Arc::new(Connections {
        epoch: Instant::now(),
        open: Mutex::new(HashMap::new()),
    });
    tokio::spawn(
        connections
            .clone()
            .sweep(limits.header_timeout, shutdown.clone()),
    );
    let builder = hyper::server::conn::http1::Builder::new();
    let mut next_id = 0u64;
    loop {
        let permit = tokio::select! {
            permit = permits.clone().acquire_owned() => permit.map_err(std::io::Error::other)?,
            _ = stopped(&mut shutdown) => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of file descriptors or a reset before accept: not fatal.
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = stopped(&mut shutdown) => break,
        };
        next_id += 1;
        let id = next_id;
        let tracker = Arc::new(Tracker {
            busy: AtomicBool::new(false),
            waiting_since: AtomicU64::new(connections.now_ms()),
            close: Notify::new(),
        });
        if let Ok(mut open) = connections.open.lock() {
            open.insert(id, tracker.clone());
        }
        let service = Tracked {
            inner: TowerToHyperService::new(
                axum::Extension(ConnectInfo(peer as SocketAddr)).layer(app.clone()),
            ),
            tracker: tracker.clone(),
            epoch: connections.epoch,
        };
        let connection = builder.serve_connection(TokioIo::new(stream), service);
        let mut stop = shutdown.clone();
        let connections = connections.clone();
        tokio::spawn(async move {
            let mut connection = std::pin::pin!(connection);
            tokio::select! {
                _ = connection.as_mut() => {}
                _ = tracker.close.notified() => {}
                _ = stopped(&mut stop) => {
                    connection.as_mut().graceful_shutdown();
                    let _ = connection.await;
                }
            }
            if let Ok(mut open) = connections.open.lock() {
                open.remove(&id);
            }
            drop(permit);
        });
    }
    drop(listener);
    // Every permit back means every connection has closed.
    let _ = permits
        .acquire_many(limits.max_connections as u32)
        .await
        .map_err(std::io::Error::other)?;
    Ok(())
}

/// The connection's service, marking its tracker busy while a request is handled.
#[derive(Clone)]
struct Tracked<S> {
    inner: S,
    tracker: Arc<Tracker>,
    epoch: Instant,
}

impl<S, R> hyper::service::Service<R> for Tracked<S>
where
    S: hyper::service::Service<R>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Handled<S::Future>;

    fn call(&self, request: R) -> Self::Future {
        self.tracker.busy.store(true, Ordering::Relaxed);
        Handled {
            inner: self.inner.call(request),
            tracker: self.tracker.clone(),
            epoch: self.epoch,
        }
    }
}

pin_project_lite::pin_project! {
    /// A request being handled; when it is answered, its connection waits for the next head.
    struct Handled<F> {
        #[pin]
        inner: F,
        tracker: Arc<Tracker>,
        epoch: Instant,
    }
}

impl<F: Future> Future for Handled<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.project();
        let output = ready!(this.inner.poll(cx));
        this.tracker
            .waiting_since
            .store(this.epoch.elapsed().as_millis() as u64, Ordering::Relaxed);
        this.tracker.busy.store(false, Ordering::Relaxed);
        Poll::Ready(output)
    }
}

/// Resolves once `shutdown` is true (or its sender is gone).
async fn stopped(shutdown: &mut watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|stop| *stop).await;
}
