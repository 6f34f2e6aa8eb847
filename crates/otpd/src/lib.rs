//! The otpd binary's library: configuration, wiring and the server lifecycle, kept out of
//! `main` so integration tests start the very same server in-process on a random port.

pub mod config;
pub mod store;

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use otpd_core::auth::{Authenticator, CallbackSigner, IssuedCredentials};
use otpd_core::{Clock, CodeHasher, Store, TenantStore, Verifier};
use otpd_delivery::{
    BoxFuture, CallbackWorker, ChannelDispatch, ConsoleProvider, DeliveryWorker, InboundRequest,
    Inbox, Provider, ProviderRouter, ReceiptHandlingError, ReceiptReply,
};
use otpd_http::AppState;
use otpd_store_sqlite::SqliteStore;

pub use store::{AnyStore, Backend};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

pub use config::Config;

/// A server that is accepting connections.
pub struct RunningServer {
    /// The bound address (useful when listening on port 0).
    pub addr: SocketAddr,
    /// The dev inbox, when dev mode is on.
    pub inbox: Option<Inbox>,
    /// Credentials created on this first start, if this start created them.
    pub first_application: Option<IssuedCredentials>,
    /// The store (tests inspect it).
    pub store: AnyStore,
    shutdown: tokio::sync::watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
    server: JoinHandle<std::io::Result<()>>,
    hand_back: Arc<dyn Fn() -> otpd_delivery::BoxFuture<'static, ()> + Send + Sync>,
    deadline: std::time::Duration,
}

impl RunningServer {
    /// Stops accepting requests, finishes in-flight ones (up to the shutdown deadline),
    /// stops the workers and hands unfinished deliveries back to the store so that another
    /// node (or the next start) resumes them at once.
    pub async fn stop(self) {
        let _ = self.shutdown.send(true);
        let server = self.server;
        if tokio::time::timeout(self.deadline, server).await.is_err() {
            tracing::warn!("shutdown deadline passed with requests still in flight");
        }
        for task in self.tasks {
            task.abort();
        }
        (self.hand_back)().await;
    }

    /// Serves until the process receives Ctrl-C or SIGTERM.
    pub async fn run_until_signal(self) -> anyhow::Result<()> {
        shutdown_signal().await;
        tracing::info!("shutting down");
        self.stop().await;
        Ok(())
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = terminate => {} }
}

/// The vault of the configured server keys: what seals destinations (and operators'
/// second-factor seeds).
pub fn vault(config: &Config) -> anyhow::Result<Arc<otpd_core::vault::Vault>> {
    let (current, previous) = config.server_secrets()?;
    Ok(Arc::new(otpd_core::vault::Vault::new(&current, &previous)))
}

/// Opens the configured store (and applies its migrations).
pub async fn open_store(config: &Config) -> anyhow::Result<AnyStore> {
    // Destinations are sealed under a key derived from the server secret
    // (docs/data-protection.md); the store refuses a secret that does not open its data.
    let vault = vault(config)?;
    if config.is_postgres() {
        let settings = config.postgres.settings();
        let store =
            otpd_store_postgres::PgStore::connect(config.database_url.expose(), &settings, vault)
                .await
                .context("cannot open the PostgreSQL database")?;
        return Ok(AnyStore::new(Backend::Postgres(store)));
    }
    let path = config.sqlite_path()?;
    let store = SqliteStore::open(&path, vault)
        .with_context(|| format!("cannot open the SQLite database {}", path.display()))?;
    Ok(AnyStore::new(Backend::Sqlite(store)))
}

/// Builds the authenticator used by the server and the admin commands.
pub fn authenticator<C: Clock + Clone>(
    config: &Config,
    store: AnyStore,
    clock: C,
) -> anyhow::Result<Authenticator<AnyStore, C>> {
    let (current, previous) = config.server_secrets()?;
    Ok(
        Authenticator::new(store, clock, current, config.token_lifetime_seconds)
            .with_previous(previous),
    )
}

/// Starts everything: store, workers (after resuming deliveries a previous process left
/// queued), the first application when there is none, and the HTTP server.
pub async fn start<C: Clock + Clone>(config: &Config, clock: C) -> anyhow::Result<RunningServer> {
    config.check_exposure()?;
    let store = open_store(config).await?;
    let (secret, previous_secrets) = config.server_secrets()?;
    let auth = Arc::new(
        Authenticator::new(
            store.clone(),
            clock.clone(),
            secret.clone(),
            config.token_lifetime_seconds,
        )
        .with_previous(previous_secrets.clone()),
    );

    let inbox = Inbox::default();
    let metrics = Arc::new(otpd_delivery::Metrics::new());
    let router = Arc::new(build_provider_router(config, &inbox, &clock)?);
    let (delivery, dispatch, jobs) = DeliveryWorker::new(
        store.clone(),
        clock.clone(),
        router,
        config.delivery.policy(),
        config.public_base_url.clone(),
        metrics.clone(),
    );
    let verifier = Arc::new(
        Verifier::new(
            store.clone(),
            clock.clone(),
            CodeHasher::new(secret.clone()).with_previous(previous_secrets.clone()),
            Arc::new(dispatch.clone()),
            config.price_table(),
        )
        .with_abuse_policy(otpd_core::abuse::AbusePolicy {
            pumping: config.pumping.policy(),
            ..config.limits.policy()
        })
        .with_observer(metrics.clone()),
    );

    let first_application = if store.applications().await?.is_empty() {
        Some(
            auth.create_application(None, "default", config.default_otp.clone())
                .await?,
        )
    } else {
        None
    };

    let delivery = Arc::new(delivery);
    let now = clock.now();
    let takeover_at = match store.backend() {
        // One process owns a SQLite file: whatever is queued was left by a stopped process,
        // including deliveries it was waiting to retry.
        Backend::Sqlite(_) => otpd_core::Timestamp(i64::MAX),
        Backend::Postgres(_) => now,
    };
    let resumed = delivery
        .resume_stale(&verifier, &dispatch, takeover_at)
        .await?;
    if resumed > 0 {
        tracing::info!(
            resumed,
            "resumed deliveries whose writer stopped before sending them"
        );
    }
    let secret_for_webhooks = secret.clone();
    let outbound = otpd_delivery::Outbound::new(config.outbound_policy()?);
    let callbacks = CallbackWorker::new(
        store.clone(),
        clock.clone(),
        CallbackSigner::new(secret.clone()),
        Arc::new(otpd_http::native::wire::callback_body),
        config.callbacks.policy(),
        outbound.clone(),
    )
    .with_metrics(metrics.clone());
    let sweep_every = std::time::Duration::from_millis(config.delivery.sweep_interval_ms.max(50));
    let mut tasks = vec![
        tokio::spawn(
            delivery
                .clone()
                .run(jobs, verifier.clone(), dispatch.clone()),
        ),
        tokio::spawn(
            delivery
                .clone()
                .sweep(verifier.clone(), dispatch.clone(), sweep_every),
        ),
        tokio::spawn(callbacks.run()),
        tokio::spawn(reseal_under_current_key(
            store.clone(),
            !previous_secrets.is_empty(),
        )),
        tokio::spawn(expiry_sweep(verifier.clone(), sweep_every)),
        tokio::spawn(alert_sweep(
            store.clone(),
            clock.clone(),
            config.alerts.clone(),
        )),
        tokio::spawn(purge_sweep(
            store.clone(),
            clock.clone(),
            config.retention.clone(),
            metrics.clone(),
        )),
        tokio::spawn(
            otpd_delivery::WebhookWorker::new(
                store.clone(),
                clock.clone(),
                CallbackSigner::new(secret_for_webhooks),
                config.callbacks.policy(),
                metrics.clone(),
                outbound.clone(),
            )
            .run(),
        ),
    ];
    let worker = delivery.clone();
    let hand_back: Arc<dyn Fn() -> otpd_delivery::BoxFuture<'static, ()> + Send + Sync> =
        Arc::new(move || {
            let worker = worker.clone();
            Box::pin(async move {
                match worker.hand_back().await {
                    Ok(0) => {}
                    Ok(released) => {
                        tracing::info!(released, "handed unfinished deliveries back")
                    }
                    Err(error) => tracing::warn!(%error, "could not hand deliveries back"),
                }
            })
        });
    let receipts: Arc<dyn otpd_http::ReceiptSink> = Arc::new(Receipts {
        worker: delivery,
        verifier: verifier.clone(),
        dispatch,
    });

    let dev_inbox = config.dev_mode().then_some(inbox);
    let limits = config.server.limits();
    let listener = TcpListener::bind(&config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    let addr = listener.local_addr()?;
    let link_hosts = std::iter::once(addr.to_string())
        .chain(config.server.hosts.iter().cloned())
        .collect();
    let state = AppState::new(otpd_http::AppParts {
        verifier,
        auth,
        inbox: dev_inbox.clone(),
        public_base_url: config.public_base_url.clone(),
        receipts: Some(receipts),
        trusted_proxies: Arc::new(config.trusted_proxies.clone()),
        metrics,
        signer: Arc::new(CallbackSigner::new(config.server_secret()?)),
        outbound,
        body_timeout: limits.body_timeout,
        link_hosts: Arc::new(link_hosts),
        auth_failures: config.limits.auth_failures(),
    });
    let console = if config.console.enabled {
        let vault = Arc::new(otpd_core::vault::Vault::new(&secret, &previous_secrets));
        let operators = Arc::new(otpd_core::operators::Operators::new(
            store.clone(),
            clock.clone(),
            vault,
            config.console.rules(),
        ));
        tasks.push(tokio::spawn(session_sweep(operators.clone())));
        let secure_cookies = config.console.secure_cookies.unwrap_or_else(|| {
            config
                .public_base_url
                .as_deref()
                .is_some_and(|url| url.starts_with("https://"))
        });
        otpd_console::router(otpd_console::ConsoleState::new(
            otpd_console::ConsoleParts {
                verifier: state.verifier.clone(),
                auth: state.auth.clone(),
                operators,
                dev_mode: config.dev_mode(),
                secure_cookies,
                passwords: otpd_console::Passwords::default(),
            },
        ))
    } else {
        axum::Router::new()
    };
    let (shutdown, stopped) = tokio::sync::watch::channel(false);
    let app = otpd_http::router_with(state, console);
    let server = tokio::spawn(otpd_http::connections::serve(
        listener, app, limits, stopped,
    ));
    Ok(RunningServer {
        addr,
        inbox: dev_inbox,
        first_application,
        store,
        shutdown,
        tasks,
        server,
        hand_back,
        deadline: std::time::Duration::from_secs(config.shutdown_timeout_seconds.max(1)),
    })
}

/// The built-in providers (`console` in dev mode only, `null`) and every configured one, with
/// the routes; logs which providers serve each channel.
fn build_provider_router<C: Clock + Clone>(
    config: &Config,
    inbox: &Inbox,
    clock: &C,
) -> anyhow::Result<ProviderRouter> {
    let http = reqwest::Client::builder()
        .timeout(std::time::Duration::from_millis(
            config.delivery.provider_timeout_ms.max(100),
        ))
        .build()
        .context("cannot build the HTTP client for providers")?;
    let mut providers: Vec<Arc<dyn Provider>> = vec![Arc::new(ConsoleProvider::named(
        "null",
        inbox.clone(),
        clock.clone(),
        false,
    ))];
    // The console provider prints codes: it exists only in dev mode, so no route (not even
    // an application's own) can reach it in production.
    if config.dev_mode() {
        providers.push(Arc::new(ConsoleProvider::named(
            "console",
            inbox.clone(),
            clock.clone(),
            true,
        )));
    }
    for table in &config.providers {
        providers.push(otpd_providers::registry::build(table, http.clone())?);
    }
    let router = ProviderRouter::new(
        providers,
        config.routes.table(config.fallback_provider()),
        config.delivery.breaker(),
    )
    .context("invalid [routes]")?;
    for channel in [
        otpd_core::Channel::Sms,
        otpd_core::Channel::Whatsapp,
        otpd_core::Channel::Call,
        otpd_core::Channel::Email,
    ] {
        match router.default_routes().get(&channel) {
            Some(names) if !names.is_empty() => {
                tracing::info!(channel = channel.as_str(), providers = %names.join(", "), "channel served")
            }
            _ => tracing::info!(
                channel = channel.as_str(),
                "channel not offered (no route; starts on it are refused)"
            ),
        }
    }
    Ok(router)
}

/// The delivery worker as the HTTP layer sees it.
struct Receipts<S, C> {
    worker: Arc<DeliveryWorker<S, C>>,
    verifier: Arc<Verifier<S, C>>,
    dispatch: ChannelDispatch,
}

impl<S: Store + Clone, C: Clock + Clone> otpd_http::ReceiptSink for Receipts<S, C> {
    fn handle<'a>(
        &'a self,
        provider: &'a str,
        webhook: &'a InboundRequest,
    ) -> BoxFuture<'a, Result<ReceiptReply, ReceiptHandlingError>> {
        Box::pin(
            self.worker
                .receipt(&self.verifier, &self.dispatch, provider, webhook),
        )
    }
}

/// Rows resealed per batch after a key rotation (one short writer job or transaction each).
const RESEAL_BATCH: u32 = 500;

/// After a key rotation (previous secrets configured), reseals what the previous keys sealed
/// under the current one, a batch at a time, then says the previous keys can go. Every node
/// may run it: batches skip rows another node holds.
async fn reseal_under_current_key(store: AnyStore, rotating: bool) {
    use otpd_core::store::KeyStore;
    if !rotating {
        return;
    }
    let mut moved = 0u64;
    loop {
        match store.reseal(RESEAL_BATCH).await {
            Ok(0) => break,
            Ok(n) => {
                moved += n;
                tracing::info!(resealed = moved, "resealing under the current server key");
            }
            Err(error) => {
                tracing::warn!(%error, "resealing under the current server key failed; retrying");
                tokio::time::sleep(std::time::Duration::from_secs(5)).await;
            }
        }
        tokio::task::yield_now().await;
    }
    match store.sealed_under_other_keys().await {
        Ok(0) => tracing::info!(
            resealed = moved,
            "everything is sealed under the current server key: the previous ones can be removed"
        ),
        Ok(left) => tracing::info!(
            resealed = moved,
            left,
            "resealing under the current server key continues on another node"
        ),
        Err(error) => tracing::warn!(%error, "cannot count what previous keys still seal"),
    }
}

/// Records expiries as they happen (events, callbacks), not only when a check finds them.
async fn expiry_sweep<S: Store + Clone, C: Clock + Clone>(
    verifier: Arc<Verifier<S, C>>,
    every: std::time::Duration,
) {
    loop {
        tokio::time::sleep(every).await;
        match verifier.expire_due().await {
            Ok(0) => {}
            Ok(expired) => tracing::info!(expired, "verifications expired"),
            Err(error) => tracing::warn!(%error, "could not sweep expired verifications"),
        }
    }
}

/// Judges services' approval rates every `check_interval_seconds` (when alerts are on).
async fn alert_sweep<S: Store + Clone, C: Clock + Clone>(
    store: S,
    clock: C,
    config: config::AlertsConfig,
) {
    if !config.enabled {
        return;
    }
    let policy = config.policy();
    let every = std::time::Duration::from_millis(
        (config.check_interval_seconds.max(1) * 1000).min(3_600_000),
    );
    loop {
        tokio::time::sleep(every).await;
        if let Err(error) = otpd_core::alerts::check_alerts(&store, &policy, clock.now()).await {
            tracing::warn!(%error, "could not check approval-rate alerts");
        }
    }
}

/// Deletes rows past their retention window every `purge_every_seconds`, on every node
/// (docs/data-protection.md, "Retention").
async fn purge_sweep<S: Store + Clone, C: Clock + Clone>(
    store: S,
    clock: C,
    config: config::RetentionConfig,
    metrics: Arc<otpd_delivery::Metrics>,
) {
    let policy = config.policy();
    let every = std::time::Duration::from_secs(config.purge_every_seconds.clamp(1, 86_400));
    loop {
        tokio::time::sleep(every).await;
        if let Err(error) = purge_once(&store, &policy, clock.now(), &metrics).await {
            tracing::warn!(%error, "could not purge rows past their retention window");
        }
    }
}

/// One retention pass (rollups, then each kind's batches), logged at debug and counted in
/// `otpd_purged_rows_total{kind}`. Public so tests can run a pass at a time they choose.
pub async fn purge_once<S: Store>(
    store: &S,
    policy: &otpd_core::retention::RetentionPolicy,
    now: otpd_core::Timestamp,
    metrics: &otpd_delivery::Metrics,
) -> Result<otpd_core::retention::PurgeCounts, otpd_core::StoreError> {
    let counts = otpd_core::retention::purge_pass(store, policy, now).await?;
    for (kind, rows) in &counts.deleted {
        metrics.purged(kind.as_str(), *rows);
    }
    tracing::debug!(
        rolled_up_days = counts.rolled_up_days,
        deleted = ?counts.deleted,
        "retention pass"
    );
    Ok(counts)
}

/// Removes expired console sessions every few minutes (an expired one is refused anyway;
/// this keeps the table small).
async fn session_sweep<C: Clock>(operators: Arc<otpd_core::operators::Operators<AnyStore, C>>) {
    let mut every = tokio::time::interval(std::time::Duration::from_secs(300));
    loop {
        every.tick().await;
        if let Err(error) = operators.sweep().await {
            tracing::warn!(%error, "could not sweep console sessions");
        }
    }
}
