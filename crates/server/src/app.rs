//! `App::build` opens the store, wires the services, binds the listener;
//! `run_until_stopped` serves until told to stop, then drains.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::auth::{AuthDeps, AuthService};
use crate::clock::SharedClock;
use crate::config::{Config, MailTransport};
use crate::keys::{ClientKeys, generate_key};
use crate::limits::RateLimiter;
use crate::mail::templates::Templates;
use crate::mail::{DevOutbox, MailQueue, SmtpTransport, Transport, run_sender};
use crate::state::{AppState, HttpSettings};
use crate::store::{SqliteStore, Store};

/// A built server, bound and ready to run.
pub struct App {
    listener: TcpListener,
    state: AppState,
    transport: Arc<dyn Transport>,
    clock: SharedClock,
    mail_queue: MailQueue,
    grace: Duration,
    /// The first active client key (generated on first start).
    pub client_key: String,
}

/// Open (creating if needed) the data directory's database.
pub async fn open_store(config: &Config) -> anyhow::Result<Arc<dyn Store>> {
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("creating data directory {}", config.data_dir.display()))?;
    let path = config.data_dir.join("basalt.sqlite3");
    let store = SqliteStore::open(&path)
        .await
        .with_context(|| format!("opening {}", path.display()))?;
    Ok(Arc::new(store))
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
    let key = generate_key();
    store
        .insert_client_key(&key, "default", clock.now())
        .await?;
    Ok(key)
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
        let limits = Arc::new(RateLimiter::new(config.rate_limits.clone(), clock.clone()));
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
        let state = AppState {
            auth: Arc::new(auth),
            store,
            keys,
            limits,
            settings: Arc::new(HttpSettings::from_config(&config)?),
        };
        Ok(Self {
            listener,
            state,
            transport,
            clock,
            mail_queue,
            grace: Duration::from_secs(config.limits.shutdown_grace_secs),
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
        let signal = {
            let cancel = cancel.clone();
            async move {
                stop.await;
                tracing::info!("stopping: finishing requests in flight");
                cancel.cancel();
            }
        };
        let server = axum::serve(
            self.listener,
            router.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(signal);
        let grace = self.grace;
        let deadline = {
            let cancel = cancel.clone();
            async move {
                cancel.cancelled().await;
                tokio::time::sleep(grace).await;
            }
        };
        tokio::select! {
            served = server => served.context("serving")?,
            () = deadline => tracing::warn!("grace period over; dropping requests still in flight"),
        }
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
                if rounds.is_multiple_of(120)
                    && let Err(err) = state.auth.purge_expired_sessions().await
                {
                    tracing::warn!(error = %err, "purging expired sessions failed");
                }
            }
        });
        vec![sender, upkeep]
    }
}
