//! Serving connections with bounds a slow or idle client cannot outlast: a cap on open
//! connections and a deadline for each request head (which also closes idle keep-alive
//! connections). The body deadline is enforced where the body is read (`observe`).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
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

/// Serves `app` on `listener` until `shutdown` turns true, then lets in-flight requests
/// finish (each connection closes after its current response) and returns when all have.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: ConnectionLimits,
    mut shutdown: watch::Receiver<bool>,
) -> std::io::Result<()> {
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout);
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
        let _ = stream.set_nodelay(true);
        let service = TowerToHyperService::new(
            axum::Extension(ConnectInfo(peer as SocketAddr)).layer(app.clone()),
        );
        let connection = builder.serve_connection(TokioIo::new(stream), service);
        let mut stop = shutdown.clone();
        tokio::spawn(async move {
            let mut connection = std::pin::pin!(connection);
            tokio::select! {
                _ = connection.as_mut() => {}
                _ = stopped(&mut stop) => {
                    connection.as_mut().graceful_shutdown();
                    let _ = connection.await;
                }
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

/// Resolves once `shutdown` is true (or its sender is gone).
async fn stopped(shutdown: &mut watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|stop| *stop).await;
}
