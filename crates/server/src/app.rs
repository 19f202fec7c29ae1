//! `App::build` opens the store, wires the services, binds the listener;
//! `run_until_stopped` serves until told to stop, then drains.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::extract::ConnectInfo;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tower::Service;

use crate::auth::{AuthDeps, AuthService};
use crate::clock::SharedClock;
use crate::config::{Config, MailTransport, StorageBackend};
use crate::files::FileService;
use crate::files::blobs::Blobs;
use crate::keys::{ClientKeys, generate_key};
use crate::limits::RateLimiter;
use crate::mail::templates::Templates;
use crate::mail::{DevOutbox, MailQueue, SmtpTransport, Transport, run_sender};
use crate::profile::ProfileService;
use crate::records::RecordService;
use crate::state::{AppState, HttpSettings, Shared};
use crate::store::{ObjectIndex, PostgresStore, RedisCounters, SqliteStore, Store};

/// Largest request head.
const MAX_HEADER_BYTES: usize = 16 * 1024;
/// HTTP/2 keep-alive ping interval.
const KEEP_ALIVE_IDLE: Duration = Duration::from_secs(60);

/// A built server, bound and ready to run.
pub struct App {
    listener: TcpListener,
    state: AppState,
    transport: Arc<dyn Transport>,
    clock: SharedClock,
    mail_queue: MailQueue,
    grace: Duration,
    header_timeout: Duration,
    /// The first active client key (generated on first start).
    pub client_key: String,
}

/// Open the configured blob store: the data directory's `files` folder, or the S3 bucket of
/// `storage.s3`, checked to answer before the server starts.
pub async fn open_blobs(config: &Config) -> anyhow::Result<Blobs> {
    match config.storage.backend {
        StorageBackend::Local => {
            let dir = config.data_dir.join("files");
            Blobs::local(&dir).with_context(|| format!("opening the blob folder {}", dir.display()))
        }
        StorageBackend::S3 => {
            let bucket = &config.storage.s3.bucket;
            let blobs = Blobs::s3(&config.storage.s3)
                .with_context(|| format!("configuring the S3 bucket {bucket:?} (storage.s3)"))?;
            blobs.check().await.with_context(|| {
                format!("reaching the S3 bucket {bucket:?} (storage.s3: bucket, region, endpoint, credentials)")
            })?;
            Ok(blobs)
        }
    }
}

/// Open the configured database, applying pending migrations: PostgreSQL when `database.url`
/// is set, else (creating if needed) the data directory's SQLite file.
pub async fn open_store(config: &Config) -> anyhow::Result<Arc<dyn Store>> {
    if let Some(url) = config.postgres_url() {
        let timeout = Duration::from_millis(config.database.statement_timeout_ms);
        let store = PostgresStore::open_with_timeout(
            url,
            config.database.max_connections,
            Some(timeout).filter(|t| !t.is_zero()),
        )
        .await
        .context("opening the PostgreSQL database (database.url)")?;
        return Ok(Arc::new(store));
    }
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("creating data directory {}", config.data_dir.display()))?;
    let path = config.data_dir.join("basalt.sqlite3");
    let store = SqliteStore::open(&path)
        .await
        .with_context(|| format!("opening {}", path.display()))?;
    Ok(Arc::new(store))
}

/// The rate limits: counted in Redis when one is configured, else in the store when it is
/// shared by several nodes (PostgreSQL), else in this process.
pub async fn rate_limiter(
    config: &Config,
    store: &Arc<dyn Store>,
    clock: &SharedClock,
) -> anyhow::Result<RateLimiter> {
    let rules = config.rate_limits.clone();
    if let Some(url) = config.redis_url() {
        let ca = match &rules.redis_ca_file {
            Some(path) => Some(std::fs::read(path).with_context(|| {
                format!("reading rate_limits.redis_ca_file {}", path.display())
            })?),
            None => None,
        };
        let counters = RedisCounters::connect(url, &rules.redis_prefix, ca)
            .await
            .context("connecting to rate_limits.redis_url")?;
        return Ok(RateLimiter::with_counters(
            rules,
            clock.clone(),
            Arc::new(counters),
        ));
    }
    Ok(match store.shared_counters() {
        Some(counters) => RateLimiter::with_counters(rules, clock.clone(), counters),
        None => RateLimiter::new(rules, clock.clone()),
    })
}

/// The account service over a store (also used by the operator CLI).
pub fn auth_service(
    config: &Config,
    store: Arc<dyn Store>,
    clock: SharedClock,
    limits: Arc<RateLimiter>,
    mail_queue: MailQueue,
) -> anyhow::Result<AuthService> {
    let templates =
        Templates::load(config.mail.templates.dir.as_deref()).context("loading mail templates")?;
    let deps = AuthDeps {
        store,
        clock,
        limits,
        templates: Arc::new(templates),
        mail_queue,
        public_base: config.public_base().to_string(),
        app_name: config.app_name.clone(),
    };
    Ok(AuthService::new(deps, config.auth.clone())?)
}

/// The first active stored key, creating one on first start.
pub async fn ensure_client_key(
    store: &Arc<dyn Store>,
    clock: &SharedClock,
) -> anyhow::Result<String> {
    let keys = store.client_keys().await?;
    if let Some(key) = keys.into_iter().find(|k| k.revoked_at.is_none()) {
        return Ok(key.key);
    }
    store
        .insert_client_key(&generate_key(), "default", clock.now())
        .await?;
    // Nodes starting at once on an empty database may each have created one: all of them
    // work, and every node prints (and serves to apps) the first.
    let keys = store.client_keys().await?;
    keys.into_iter()
        .find(|k| k.revoked_at.is_none())
        .map(|k| k.key)
        .context("the client key just created is missing")
}

impl App {
    /// Open the store, wire everything and bind the configured address.
    pub async fn build(config: Config, clock: SharedClock) -> anyhow::Result<Self> {
        let addr = config.listen_addr()?;
        let listener = TcpListener::bind(addr)
            .await
            .with_context(|| format!("binding {addr}"))?;
        Self::with_listener(config, clock, listener).await
    }

    /// Open the store and wire everything around an already bound listener.
    pub async fn with_listener(
        config: Config,
        clock: SharedClock,
        listener: TcpListener,
    ) -> anyhow::Result<Self> {
        let store = open_store(&config).await?;
        let client_key = ensure_client_key(&store, &clock).await?;
        let keys = Arc::new(ClientKeys::new(config.client_keys.clone()));
        keys.refresh(&store).await?;
        let limits = Arc::new(rate_limiter(&config, &store, &clock).await?);
        let mail_queue = MailQueue::default();
        let auth = auth_service(
            &config,
            store.clone(),
            clock.clone(),
            limits.clone(),
            mail_queue.clone(),
        )?;
        let transport: Arc<dyn Transport> = match config.mail.transport {
            MailTransport::Outbox => Arc::new(DevOutbox),
            MailTransport::Smtp => {
                Arc::new(SmtpTransport::new(&config.mail.smtp, &config.mail.from)?)
            }
        };
        let blobs = open_blobs(&config).await?;
        let files = FileService::new(
            store.clone(),
            blobs,
            clock.clone(),
            config.storage.max_file_bytes,
        );
        let profile = Arc::new(ProfileService::new(
            store.clone(),
            clock.clone(),
            config.database.users_public_fields.clone(),
        ));
        store
            .ensure_indexes(
                config
                    .database
                    .models
                    .iter()
                    .flat_map(|m| {
                        m.indexes.iter().map(|index| {
                            let (fields, sort) = index.parts();
                            ObjectIndex {
                                model: m.name.clone(),
                                fields,
                                sort,
                            }
                        })
                    })
                    .collect(),
            )
            .await?;
        let records = RecordService::new(
            store.clone(),
            clock.clone(),
            &config.database.models,
            profile.clone(),
        );
        let state = AppState::new(Shared {
            records: Arc::new(records),
            auth: Arc::new(auth),
            files: Arc::new(files),
            profile,
            store,
            keys,
            limits,
            settings: Arc::new(HttpSettings::from_config(&config)?),
        });
        Ok(Self {
            listener,
            state,
            transport,
            clock,
            mail_queue,
            grace: Duration::from_secs(config.limits.shutdown_grace_secs),
            header_timeout: Duration::from_secs(config.limits.header_timeout_secs.max(1)),
            client_key,
        })
    }

    /// The bound address (useful with port 0).
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serve until `stop` resolves, then stop accepting, finish requests in flight (up to the
    /// grace period) and stop the background work.
    pub async fn run_until_stopped(
        self,
        stop: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let cancel = CancellationToken::new();
        let background = self.spawn_background(cancel.clone());
        let router = crate::http::router(self.state);
        let trigger = cancel.clone();
        tokio::spawn(async move {
            stop.await;
            tracing::info!("stopping: finishing requests in flight");
            trigger.cancel();
        });
        let limits = ConnectionLimits {
            grace: self.grace,
            header_timeout: self.header_timeout,
        };
        serve(self.listener, router, cancel.clone(), limits).await;
        cancel.cancel();
        for task in background {
            let _ = tokio::time::timeout(Duration::from_secs(5), task).await;
        }
        Ok(())
    }

    fn spawn_background(&self, cancel: CancellationToken) -> Vec<tokio::task::JoinHandle<()>> {
        let sender = tokio::spawn(run_sender(
            self.state.store.clone(),
            self.transport.clone(),
            self.clock.clone(),
            self.mail_queue.clone(),
            cancel.clone(),
        ));
        let state = self.state.clone();
        let upkeep = tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(5));
            let mut rounds = 0u64;
            loop {
                tokio::select! {
                    _ = tick.tick() => {}
                    () = cancel.cancelled() => return,
                }
                if let Err(err) = state.keys.refresh(&state.store).await {
                    tracing::warn!(error = %err, "refreshing client keys failed");
                }
                rounds += 1;
                if rounds.is_multiple_of(120) {
                    if let Err(err) = state.auth.purge_expired_sessions().await {
                        tracing::warn!(error = %err, "purging expired sessions failed");
                    }
                    if let Err(err) = state.limits.prune().await {
                        tracing::warn!(error = %err, "pruning rate-limit counters failed");
                    }
                }
            }
        });
        vec![sender, upkeep]
    }
}

/// Per-connection limits of `serve`.
struct ConnectionLimits {
    grace: Duration,
    header_timeout: Duration,
}

/// Accept connections until `cancel` fires, then stop accepting and let requests in flight
/// finish for up to `grace`. Headers must arrive within `header_timeout` and fit in 16 KiB.
async fn serve(
    listener: TcpListener,
    router: axum::Router,
    cancel: CancellationToken,
    limits: ConnectionLimits,
) {
    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .max_buf_size(MAX_HEADER_BYTES);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(u32::try_from(MAX_HEADER_BYTES).unwrap_or(u32::MAX))
        .keep_alive_interval(Some(KEEP_ALIVE_IDLE))
        .keep_alive_timeout(limits.header_timeout);
    let graceful = GracefulShutdown::new();
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!(error = %err, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = cancel.cancelled() => break,
        };
        let router = router.clone();
        let service =
            hyper::service::service_fn(move |mut req: hyper::Request<hyper::body::Incoming>| {
                req.extensions_mut().insert(ConnectInfo(peer));
                let mut router = router.clone();
                async move { router.call(req.map(axum::body::Body::new)).await }
            });
        let conn = builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
        let conn = graceful.watch(conn.into_owned());
        tokio::spawn(async move {
            if let Err(err) = conn.await {
                tracing::debug!(error = %err, "connection ended with an error");
            }
        });
    }
    drop(listener);
    if tokio::time::timeout(limits.grace, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("grace period over; dropping requests still in flight");
    }
}
