//! `AppState`: every handle a handler may touch.

use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::http::HeaderValue;

use crate::auth::AuthService;
use crate::config::Config;
use crate::files::FileService;
use crate::keys::ClientKeys;
use crate::limits::RateLimiter;
use crate::profile::ProfileService;
use crate::records::RecordService;
use crate::store::Store;

/// Shared by every request; cloning is one reference count.
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

impl AppState {
    /// Wrap the handles.
    pub fn new(shared: Shared) -> Self {
        Self(Arc::new(shared))
    }
}

impl std::ops::Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

/// Every handle a handler may touch.
pub struct Shared {
    /// Account rules.
    pub auth: Arc<AuthService>,
    /// Files and buckets.
    pub files: Arc<FileService>,
    /// The `users` model of the database API.
    pub profile: Arc<ProfileService>,
    /// The declared models of the database API.
    pub records: Arc<RecordService>,
    /// Persistence (health, dev outbox).
    pub store: Arc<dyn Store>,
    /// Accepted client keys.
    pub keys: Arc<ClientKeys>,
    /// Rate limits.
    pub limits: Arc<RateLimiter>,
    /// Transport settings.
    pub settings: Arc<HttpSettings>,
}

/// What the transport layer needs from the configuration.
#[derive(Debug, Clone)]
pub struct HttpSettings {
    /// Where emailed links send the browser.
    pub redirect_url: url::Url,
    /// Serve `/_dev/mail` and `/_dev/mailbox`.
    pub dev_outbox: bool,
    /// Allowed origins; empty means any.
    pub allowed_origins: Vec<String>,
    /// Peers whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Vec<IpAddr>,
    /// Largest auth JSON body.
    pub auth_body_bytes: usize,
    /// Largest other JSON body.
    pub json_body_bytes: usize,
    /// Largest upload body (file plus multipart framing).
    pub upload_body_bytes: usize,
    /// Public base URL, no trailing slash (for `publicPath`).
    pub public_base: String,
    /// Whole-request timeout.
    pub request_timeout: Duration,
    /// Name of the app.
    pub app_name: String,
    /// The public URL is `https://`: send HSTS.
    pub behind_tls: bool,
    /// The web app served at `/`, if any.
    pub app: Option<StaticApp>,
}

/// A built single-page app served beside the API.
#[derive(Debug, Clone)]
pub struct StaticApp {
    /// Its folder, absolute.
    pub dir: PathBuf,
    /// The `Content-Security-Policy` of its files.
    pub csp: HeaderValue,
}

impl StaticApp {
    fn from_config(config: &Config) -> anyhow::Result<Option<Self>> {
        let Some(dir) = &config.app.static_dir else {
            return Ok(None);
        };
        let dir = dir
            .canonicalize()
            .with_context(|| format!("app.static_dir {}", dir.display()))?;
        let csp = match &config.app.content_security_policy {
            Some(policy) => policy.clone(),
            None => default_csp(&config.public_url)?,
        };
        let csp = HeaderValue::from_str(&csp)
            .context("app.content_security_policy is not a valid header value")?;
        Ok(Some(Self { dir, csp }))
    }
}

/// The app's own files, and this server (by its public origin too, should the browser reach
/// it under another name) for API calls and uploaded images. No inline scripts or styles.
fn default_csp(public_url: &str) -> anyhow::Result<String> {
    let origin = url::Url::parse(public_url)?.origin().ascii_serialization();
    Ok(format!(
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob: {origin}; \
         connect-src 'self' {origin}; font-src 'self'; object-src 'none'; base-uri 'self'; \
         form-action 'self'; frame-ancestors 'none'"
    ))
}

impl HttpSettings {
    /// Settings from a validated configuration.
    pub fn from_config(config: &Config) -> anyhow::Result<Self> {
        Ok(Self {
            redirect_url: url::Url::parse(&config.redirect_url())?,
            dev_outbox: config.mail.dev_outbox_enabled(),
            allowed_origins: config
                .cors
                .allowed_origins
                .iter()
                .map(|o| o.trim_end_matches('/').to_string())
                .collect(),
            trusted_proxies: config
                .trusted_proxies
                .iter()
                .filter_map(|p| p.parse().ok())
                .collect(),
            auth_body_bytes: config.limits.auth_body_bytes,
            json_body_bytes: config.limits.json_body_bytes,
            upload_body_bytes: usize::try_from(config.storage.max_file_bytes)
                .unwrap_or(usize::MAX)
                .saturating_add(64 * 1024),
            public_base: config.public_base().to_string(),
            request_timeout: Duration::from_secs(config.limits.request_timeout_secs),
            app_name: config.app_name.clone(),
            behind_tls: config.public_url.starts_with("https://"),
            app: StaticApp::from_config(config)?,
        })
    }

    /// Whether a path takes file uploads.
    pub fn is_upload(path: &str) -> bool {
        path.starts_with("/_api/rest/v1/storage/bucket/upload")
            || path.starts_with("/_api/rest/v1/storage/bucket/file/replace")
    }

    /// The body limit of a path.
    pub fn body_limit(&self, path: &str) -> usize {
        if path.starts_with("/_api/rest/v1/auth/") {
            self.auth_body_bytes
        } else if Self::is_upload(path) {
            self.upload_body_bytes
        } else {
            self.json_body_bytes
        }
    }

    /// Whether an `Origin` may call the API.
    pub fn origin_allowed(&self, origin: &str) -> bool {
        self.allowed_origins.is_empty() || self.allowed_origins.iter().any(|o| o == origin)
    }
}
