//! Configuration: defaults in code < `basalt.toml` (`--config FILE`) < `BASALT_*` environment
//! variables, with `__` between nested names (`BASALT_MAIL__SMTP__HOST`).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use secrecy::SecretString;
use serde::{Deserialize, Deserializer, Serialize};

/// The whole configuration tree.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Socket address to listen on.
    pub listen: String,
    /// Public base URL: email links and `envUrl` are built from it.
    pub public_url: String,
    /// Folder holding the SQLite file and uploaded files.
    pub data_dir: PathBuf,
    /// Client keys accepted besides those in the database (comma-separated in the environment).
    #[serde(deserialize_with = "comma_list")]
    pub client_keys: Vec<String>,
    /// Name of the app, used in emails.
    pub app_name: String,
    /// Peers whose `X-Forwarded-For` is believed.
    #[serde(deserialize_with = "comma_list")]
    pub trusted_proxies: Vec<String>,
    /// Accounts, passwords, sessions and links.
    pub auth: AuthConfig,
    /// Outgoing mail.
    pub mail: MailConfig,
    /// Cross-origin requests.
    pub cors: CorsConfig,
    /// Rate limits.
    pub rate_limits: RateLimitConfig,
    /// Request size and time limits.
    pub limits: LimitsConfig,
    /// File storage.
    pub storage: StorageConfig,
    /// The database API.
    pub database: DatabaseConfig,
    /// A web app served beside the API.
    pub app: AppConfig,
}

/// A web app served beside the API (the example app, or any single-page app).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AppConfig {
    /// Folder of a built single-page app, served at `/`; page paths without a file there get
    /// its `index.html`. `/_api`, `/_storage`, `/_auth`, `/_dev` and `/health` always win.
    pub static_dir: Option<PathBuf>,
    /// `Content-Security-Policy` of the app's files; when unset, a policy that lets the app load
    /// its own files and talk to this server only.
    pub content_security_policy: Option<String>,
}

/// File storage.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StorageConfig {
    /// Largest file accepted, bytes.
    pub max_file_bytes: u64,
    /// Where file bytes live: `local` (under `data_dir/files`) or `s3`.
    pub backend: StorageBackend,
    /// The S3-compatible bucket, when `backend = "s3"`.
    pub s3: S3Config,
}

impl Default for StorageConfig {
    fn default() -> Self {
        Self {
            max_file_bytes: 10 * 1024 * 1024,
            backend: StorageBackend::Local,
            s3: S3Config::default(),
        }
    }
}

/// Where file bytes live.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StorageBackend {
    /// The local file system under `data_dir/files`.
    #[default]
    Local,
    /// An S3-compatible object store (`storage.s3`).
    S3,
}

/// An S3-compatible bucket. What is not set here comes from the standard `AWS_*` environment
/// variables (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`,
/// `AWS_REGION`, `AWS_ENDPOINT`, …), then from the instance's role where there is one.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct S3Config {
    /// The bucket's name (required with `backend = "s3"`).
    pub bucket: String,
    /// The region (`us-east-1` when neither this nor `AWS_REGION` is set).
    pub region: Option<String>,
    /// The service's URL for S3-compatible servers (`https://minio.internal:9000`); AWS when
    /// unset.
    pub endpoint: Option<String>,
    /// `{endpoint}/{bucket}/{key}` requests instead of `{bucket}.{host}/{key}` (MinIO and most
    /// self-hosted servers need this).
    pub path_style: bool,
    /// Allow a plain `http://` endpoint (a server on the same host or a private network).
    pub allow_http: bool,
    /// Access key id; with `secret_access_key`, replaces the environment's credentials.
    #[serde(serialize_with = "redacted")]
    pub access_key_id: SecretString,
    /// Secret access key.
    #[serde(serialize_with = "redacted")]
    pub secret_access_key: SecretString,
    /// A folder inside the bucket that every key is put under (`basalt/`), for a bucket
    /// shared with other data.
    pub prefix: String,
}

impl S3Config {
    /// The configured key pair, when both halves are set.
    pub fn credentials(&self) -> Option<(&str, &str)> {
        use secrecy::ExposeSecret;
        let id = self.access_key_id.expose_secret();
        let secret = self.secret_access_key.expose_secret();
        (!id.is_empty() && !secret.is_empty()).then_some((id, secret))
    }

    fn validate(&self) -> Result<(), ConfigError> {
        use secrecy::ExposeSecret;
        if self.bucket.trim().is_empty() {
            return Err(ConfigError(
                "storage.s3.bucket is required with storage.backend = \"s3\"".into(),
            ));
        }
        let id_set = !self.access_key_id.expose_secret().is_empty();
        let secret_set = !self.secret_access_key.expose_secret().is_empty();
        if id_set != secret_set {
            return Err(ConfigError(
                "storage.s3: set both access_key_id and secret_access_key, or neither (the AWS_* environment then supplies them)"
                    .into(),
            ));
        }
        if let Some(endpoint) = &self.endpoint {
            let url = url::Url::parse(endpoint)
                .map_err(|err| ConfigError(format!("storage.s3.endpoint {endpoint:?}: {err}")))?;
            match url.scheme() {
                "https" => {}
                "http" if self.allow_http => {}
                "http" => {
                    return Err(ConfigError(format!(
                        "storage.s3.endpoint {endpoint:?} is plain http: set storage.s3.allow_http = true to allow it"
                    )));
                }
                _ => {
                    return Err(ConfigError(format!(
                        "storage.s3.endpoint {endpoint:?} must start with https:// or http://"
                    )));
                }
            }
        }
        if self
            .prefix
            .split('/')
            .any(|part| part == "." || part == "..")
        {
            return Err(ConfigError(
                "storage.s3.prefix must not contain '.' or '..' segments".into(),
            ));
        }
        Ok(())
    }
}

/// The database API.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DatabaseConfig {
    /// `postgres://…` to keep everything in PostgreSQL; empty for the SQLite file in
    /// `data_dir`. Secret: it may carry a password.
    #[serde(serialize_with = "redacted")]
    pub url: SecretString,
    /// Most PostgreSQL connections this node opens.
    pub max_connections: u32,
    /// PostgreSQL cancels a statement of a request that runs longer than this (0: never);
    /// migrations and index builds are exempt.
    pub statement_timeout_ms: u64,
    /// Fields of other users' `users` objects that signed-in users and anonymous callers see.
    #[serde(deserialize_with = "comma_list")]
    pub users_public_fields: Vec<String>,
    /// The app's own models (`[[database.models]]`).
    pub models: Vec<ModelConfig>,
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        Self {
            url: SecretString::from(""),
            max_connections: 10,
            statement_timeout_ms: 5000,
            users_public_fields: vec!["name".into(), "profilePicture".into()],
            models: Vec::new(),
        }
    }
}

/// A model of the database API.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    /// Name used in `db.model(name)`.
    pub name: String,
    /// Who may read and write its objects.
    #[serde(default)]
    pub access: Access,
    /// Declared fields; others are stored as they come.
    #[serde(default)]
    pub fields: std::collections::BTreeMap<String, FieldConfig>,
    /// Indexes: field paths (`status`, `address.city`) that filters compare with a value
    /// (`status == 'open'`, `price < 10`), or `{ fields, sort }` tables for pages that filter
    /// on `fields` and sort by `sort`.
    #[serde(default)]
    pub indexes: Vec<IndexConfig>,
}

/// A declared index of a model.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum IndexConfig {
    /// `"status"`: filters comparing the field with a value read the index.
    Field(String),
    /// `{ fields = ["category"], sort = ["rank"] }`: a page filtered by equality on every
    /// field and sorted by the keys (either direction) is read in order from the index.
    Sorted(SortedIndex),
}

/// Fields compared by equality, then the sort keys of the page.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SortedIndex {
    /// Field paths in the objects, compared by equality (the last one may be a range).
    #[serde(default)]
    pub fields: Vec<String>,
    /// Sort keys: field paths, or `createdAt`, `updatedAt`, `_id`.
    pub sort: Vec<String>,
}

impl From<&str> for IndexConfig {
    fn from(path: &str) -> Self {
        Self::Field(path.into())
    }
}

impl IndexConfig {
    /// The fields and sort keys of the index.
    pub fn parts(&self) -> (Vec<String>, Vec<String>) {
        match self {
            Self::Field(path) => (vec![path.clone()], Vec::new()),
            Self::Sorted(index) => (index.fields.clone(), index.sort.clone()),
        }
    }
}

/// Access rule of a model.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Access {
    /// Each object belongs to the user whose session created it; only they read and write it.
    #[default]
    Owner,
    /// Anyone with the client key reads; the owner writes.
    PublicRead,
    /// Any signed-in user reads and writes.
    Authenticated,
    /// Anyone with the client key reads and writes (the hosted service's behaviour).
    Open,
}

/// A declared field.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FieldConfig {
    /// Its type; any JSON when absent.
    #[serde(rename = "type")]
    pub kind: Option<FieldType>,
    /// Must be present and not null.
    pub required: bool,
    /// Value given at creation when absent.
    pub default: Option<serde_json::Value>,
    /// No two objects of the model share a value.
    pub unique: bool,
}

/// Types a field may declare.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FieldType {
    /// A string.
    String,
    /// Any number.
    Number,
    /// A whole number.
    Integer,
    /// `true` or `false`.
    Boolean,
    /// An ISO-8601 timestamp string.
    Date,
    /// A JSON object.
    Object,
    /// A JSON array.
    Array,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:8090".into(),
            public_url: "http://127.0.0.1:8090".into(),
            data_dir: PathBuf::from("./basalt-data"),
            client_keys: Vec::new(),
            app_name: "Basalt".into(),
            trusted_proxies: Vec::new(),
            auth: AuthConfig::default(),
            mail: MailConfig::default(),
            cors: CorsConfig::default(),
            rate_limits: RateLimitConfig::default(),
            limits: LimitsConfig::default(),
            storage: StorageConfig::default(),
            database: DatabaseConfig::default(),
            app: AppConfig::default(),
        }
    }
}

/// Accounts, passwords, sessions and links.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    /// New accounts must confirm their address before signing in with a password.
    pub email_verification: bool,
    /// Where emailed links send the browser (`status`, `action`, `access_token` appended);
    /// see [`Config::redirect_url`] for the default.
    pub redirect_url: Option<String>,
    /// Honour `emailVerified: true` in sign-up data (lets anyone skip verification).
    pub allow_verified_signup_data: bool,
    /// Minimum password length in characters (never below 8).
    pub min_password_length: usize,
    /// Argon2id parameters and the hashing pool.
    pub password_hash: PasswordHashConfig,
    /// Absolute session lifetime, seconds.
    pub session_lifetime_secs: u64,
    /// Idle session lifetime, seconds.
    pub session_idle_secs: u64,
    /// Sessions kept per user; the oldest is evicted.
    pub max_sessions_per_user: u32,
    /// Sign-up confirmation link lifetime, seconds.
    pub verification_link_secs: u64,
    /// Magic link lifetime, seconds.
    pub magic_link_secs: u64,
    /// Password reset link lifetime, seconds.
    pub reset_link_secs: u64,
    /// Email change link lifetime, seconds.
    pub email_change_link_secs: u64,
    /// Lifetime of the `access_token` a link click puts in the redirect, seconds.
    pub grant_secs: u64,
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            email_verification: true,
            redirect_url: None,
            allow_verified_signup_data: false,
            min_password_length: 8,
            password_hash: PasswordHashConfig::default(),
            session_lifetime_secs: 30 * 24 * 3600,
            session_idle_secs: 7 * 24 * 3600,
            max_sessions_per_user: 100,
            verification_link_secs: 24 * 3600,
            magic_link_secs: 15 * 60,
            reset_link_secs: 30 * 60,
            email_change_link_secs: 30 * 60,
            grant_secs: 5 * 60,
        }
    }
}

/// Argon2id parameters and the hashing pool.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PasswordHashConfig {
    /// Memory cost, KiB.
    pub memory_kib: u32,
    /// Time cost (passes).
    pub iterations: u32,
    /// Lanes.
    pub parallelism: u32,
    /// Concurrent hashes; 0 means twice the number of cores.
    pub max_concurrent: usize,
    /// How long a request may wait for a hashing slot before `server_busy`, milliseconds.
    pub queue_timeout_ms: u64,
}

impl Default for PasswordHashConfig {
    fn default() -> Self {
        Self {
            memory_kib: 19456,
            iterations: 2,
            parallelism: 1,
            max_concurrent: 0,
            queue_timeout_ms: 2000,
        }
    }
}

/// How mail leaves the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MailTransport {
    /// Kept in the database and shown at `/_dev/mail`.
    Outbox,
    /// Delivered to an SMTP server.
    Smtp,
}

/// Outgoing mail.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MailConfig {
    /// `outbox` (default) or `smtp`.
    pub transport: MailTransport,
    /// The `From` header.
    pub from: String,
    /// Serve `/_dev/mail` and `/_dev/mailbox`; defaults to on for `outbox`, off for `smtp`.
    pub dev_outbox: Option<bool>,
    /// SMTP server.
    pub smtp: SmtpConfig,
    /// Files overriding the built-in templates.
    pub templates: TemplateFiles,
}

impl Default for MailConfig {
    fn default() -> Self {
        Self {
            transport: MailTransport::Outbox,
            from: "Basalt <no-reply@localhost>".into(),
            dev_outbox: None,
            smtp: SmtpConfig::default(),
            templates: TemplateFiles::default(),
        }
    }
}

impl MailConfig {
    /// Whether the dev outbox endpoints answer.
    pub fn dev_outbox_enabled(&self) -> bool {
        self.dev_outbox
            .unwrap_or(self.transport == MailTransport::Outbox)
    }
}

/// TLS mode of the SMTP connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SmtpTls {
    /// Plain text (local relays only).
    None,
    /// Upgrade with STARTTLS.
    Starttls,
    /// TLS from the first byte (port 465).
    Tls,
}

/// SMTP server.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SmtpConfig {
    /// Host name.
    pub host: String,
    /// Port.
    pub port: u16,
    /// TLS mode.
    pub tls: SmtpTls,
    /// User name; no authentication when empty.
    pub username: String,
    /// Password.
    #[serde(serialize_with = "redacted")]
    pub password: SecretString,
    /// Connect and command timeout, seconds.
    pub timeout_secs: u64,
}

impl Default for SmtpConfig {
    fn default() -> Self {
        Self {
            host: "localhost".into(),
            port: 587,
            tls: SmtpTls::Starttls,
            username: String::new(),
            password: SecretString::from(""),
            timeout_secs: 10,
        }
    }
}

/// Template overrides: each is a path to a file; `.html` and `.txt` beside each other.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TemplateFiles {
    /// Folder with `confirm`, `magic_link`, `reset_password`, `change_email`,
    /// `signup_attempt` as `NAME.subject.txt`, `NAME.txt`, `NAME.html`.
    pub dir: Option<PathBuf>,
}

/// Cross-origin requests.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CorsConfig {
    /// Origins allowed to call the API; empty means any.
    #[serde(deserialize_with = "comma_list")]
    pub allowed_origins: Vec<String>,
}

/// Rate limits (SECURITY.md "Enumeration and brute force").
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RateLimitConfig {
    /// Master switch.
    pub enabled: bool,
    /// Failed sign-ins per account before delays start.
    pub sign_in_free_failures: u32,
    /// Delays after the free failures, seconds, the last repeating.
    pub sign_in_delays_secs: Vec<u64>,
    /// Failures in the window that lock the account until the window ends.
    pub sign_in_lockout_failures: u32,
    /// Window of the lockout count, seconds.
    pub sign_in_lockout_window_secs: u64,
    /// Sign-in and sign-up per client IP.
    pub auth_per_ip: Rate,
    /// Mail-sending endpoints per client IP.
    pub mail_per_ip: Rate,
    /// Mail per recipient, short window.
    pub mail_per_recipient_short: Rate,
    /// Mail per recipient, long window.
    pub mail_per_recipient_long: Rate,
    /// Link and grant redemption per client IP.
    pub redeem_per_ip: Rate,
    /// Uploads per user.
    pub uploads_per_user: Rate,
    /// Keep the counters in this Redis (`redis://[user:password@]host[:port][/db]`) instead
    /// of PostgreSQL or this process; empty: not used.
    #[serde(serialize_with = "redacted")]
    pub redis_url: SecretString,
    /// Prefix of every key Basalt writes to that Redis.
    pub redis_prefix: String,
    /// PEM file of the CA that signed a `rediss://` server's certificate; none: the system's
    /// trusted roots.
    pub redis_ca_file: Option<PathBuf>,
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            sign_in_free_failures: 3,
            sign_in_delays_secs: vec![1, 3, 5, 10],
            sign_in_lockout_failures: 100,
            sign_in_lockout_window_secs: 24 * 3600,
            auth_per_ip: Rate {
                count: 30,
                per_secs: 60,
                burst: 10,
            },
            mail_per_ip: Rate {
                count: 30,
                per_secs: 300,
                burst: 30,
            },
            mail_per_recipient_short: Rate {
                count: 1,
                per_secs: 60,
                burst: 1,
            },
            mail_per_recipient_long: Rate {
                count: 5,
                per_secs: 3600,
                burst: 5,
            },
            redeem_per_ip: Rate {
                count: 30,
                per_secs: 300,
                burst: 30,
            },
            uploads_per_user: Rate {
                count: 10,
                per_secs: 60,
                burst: 10,
            },
            redis_url: SecretString::default(),
            redis_prefix: "basalt:".into(),
            redis_ca_file: None,
        }
    }
}

/// A token-bucket rate: `count` per `per_secs`, at most `burst` at once.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rate {
    /// Requests per window.
    pub count: u32,
    /// Window, seconds.
    pub per_secs: u64,
    /// Largest burst.
    pub burst: u32,
}

/// Request size and time limits.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LimitsConfig {
    /// Largest auth JSON body, bytes.
    pub auth_body_bytes: usize,
    /// Largest other JSON body, bytes.
    pub json_body_bytes: usize,
    /// Whole-request timeout, seconds.
    pub request_timeout_secs: u64,
    /// Time to receive a request's headers (also closes idle keep-alive connections), seconds.
    pub header_timeout_secs: u64,
    /// How long SIGTERM waits for requests in flight, seconds.
    pub shutdown_grace_secs: u64,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            auth_body_bytes: 64 * 1024,
            json_body_bytes: 1024 * 1024,
            request_timeout_secs: 30,
            header_timeout_secs: 10,
            shutdown_grace_secs: 30,
        }
    }
}

const TOP_LEVEL_KEYS: &[&str] = &[
    "listen",
    "public_url",
    "data_dir",
    "client_keys",
    "app_name",
    "trusted_proxies",
    "auth",
    "mail",
    "cors",
    "rate_limits",
    "limits",
    "storage",
    "database",
    "app",
];

/// Where emailed links go when neither `auth.redirect_url` nor `app.static_dir` is set: the
/// tutorial app on its development server.
const TUTORIAL_REDIRECT_URL: &str = "http://localhost:3000/auth-redirect";

/// Why a configuration was refused.
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration: {0}")]
pub struct ConfigError(String);

impl Config {
    /// Merge defaults, the optional TOML file and the environment, then validate.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        if let Some(file) = file {
            if !file.exists() {
                return Err(ConfigError(format!(
                    "config file {} does not exist",
                    file.display()
                )));
            }
            figment = figment.merge(Toml::file(file));
        }
        // Only names of this tree: other `BASALT_*` variables (a test's `BASALT_BIN`) are not ours.
        let env = Env::prefixed("BASALT_").split("__").filter(|key| {
            let top = key.as_str().split('.').next().unwrap_or_default();
            TOP_LEVEL_KEYS.iter().any(|k| k.eq_ignore_ascii_case(top))
        });
        figment = figment.merge(env);
        let config: Config = figment
            .extract()
            .map_err(|err| ConfigError(first_error(err)))?;
        config.validate()?;
        Ok(config)
    }

    /// Check the values that types cannot.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.listen_addr()?;
        let public = url::Url::parse(&self.public_url)
            .map_err(|err| ConfigError(format!("public_url {:?}: {err}", self.public_url)))?;
        if !matches!(public.scheme(), "http" | "https") {
            return Err(ConfigError(
                "public_url must start with http:// or https://".into(),
            ));
        }
        let redirect = self.redirect_url();
        url::Url::parse(&redirect)
            .map_err(|err| ConfigError(format!("auth.redirect_url {redirect:?}: {err}")))?;
        if let Some(dir) = &self.app.static_dir
            && !dir.join("index.html").is_file()
        {
            return Err(ConfigError(format!(
                "app.static_dir {}: no index.html there (build the app first)",
                dir.display()
            )));
        }
        if self.auth.min_password_length < 8 {
            return Err(ConfigError(
                "auth.min_password_length must be at least 8".into(),
            ));
        }
        if self.auth.min_password_length > 128 {
            return Err(ConfigError(
                "auth.min_password_length must be at most 128".into(),
            ));
        }
        let hash = &self.auth.password_hash;
        if hash.memory_kib < 8 * hash.parallelism.max(1) || hash.iterations == 0 {
            return Err(ConfigError(
                "auth.password_hash: memory_kib or iterations too small".into(),
            ));
        }
        if self.mail.transport == MailTransport::Smtp && self.mail.smtp.host.is_empty() {
            return Err(ConfigError("mail.smtp.host is empty".into()));
        }
        lettre::message::Mailbox::from_str_checked(&self.mail.from)?;
        for rate in [
            self.rate_limits.auth_per_ip,
            self.rate_limits.mail_per_ip,
            self.rate_limits.mail_per_recipient_short,
            self.rate_limits.mail_per_recipient_long,
            self.rate_limits.redeem_per_ip,
            self.rate_limits.uploads_per_user,
        ] {
            if rate.count == 0 || rate.per_secs == 0 || rate.burst == 0 {
                return Err(ConfigError(
                    "rate_limits: count, per_secs and burst must be positive".into(),
                ));
            }
        }
        if self.storage.backend == StorageBackend::S3 {
            self.storage.s3.validate()?;
        }
        match (self.redis_url(), &self.rate_limits.redis_ca_file) {
            (Some(url), _) if !(url.starts_with("redis://") || url.starts_with("rediss://")) => {
                return Err(ConfigError(
                    "rate_limits.redis_url must start with redis:// or rediss:// (TLS); empty: no Redis"
                        .into(),
                ));
            }
            (url, Some(ca)) if !url.is_some_and(|url| url.starts_with("rediss://")) => {
                return Err(ConfigError(format!(
                    "rate_limits.redis_ca_file {}: only for a rediss:// redis_url",
                    ca.display()
                )));
            }
            _ => {}
        }
        if let Some(url) = self.postgres_url()
            && !(url.starts_with("postgres://") || url.starts_with("postgresql://"))
        {
            return Err(ConfigError(
                "database.url must start with postgres:// or postgresql:// (empty for SQLite)"
                    .into(),
            ));
        }
        if self.database.max_connections == 0 {
            return Err(ConfigError(
                "database.max_connections must be at least 1".into(),
            ));
        }
        let mut names = std::collections::HashSet::new();
        for model in &self.database.models {
            let valid = model
                .name
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic())
                && model
                    .name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_');
            if !valid || model.name == "users" || !names.insert(model.name.clone()) {
                return Err(ConfigError(format!(
                    "database.models: {:?} must be a unique name of letters, digits and _ (not users)",
                    model.name
                )));
            }
            for index in &model.indexes {
                check_index(&model.name, index)?;
            }
            for (field, declared) in &model.fields {
                if field.starts_with('_') || field == "createdAt" || field == "updatedAt" {
                    return Err(ConfigError(format!(
                        "database.models.{}: {field} is a system field",
                        model.name
                    )));
                }
                if let (Some(kind), Some(default)) = (declared.kind, &declared.default)
                    && !crate::records::matches_type(kind, default)
                {
                    return Err(ConfigError(format!(
                        "database.models.{}.fields.{field}: the default is not a {kind:?}",
                        model.name
                    )));
                }
            }
        }
        for proxy in &self.trusted_proxies {
            proxy
                .parse::<std::net::IpAddr>()
                .map_err(|_| ConfigError(format!("trusted_proxies: {proxy:?} is not an IP")))?;
        }
        Ok(())
    }

    /// The socket address to bind.
    pub fn listen_addr(&self) -> Result<SocketAddr, ConfigError> {
        self.listen
            .parse()
            .map_err(|_| ConfigError(format!("listen {:?} is not host:port", self.listen)))
    }

    /// The public base URL without a trailing slash.
    pub fn public_base(&self) -> &str {
        self.public_url.trim_end_matches('/')
    }

    /// Where emailed links send the browser: `auth.redirect_url` when set; else the served
    /// app's own `/auth-redirect`; else the tutorial's `http://localhost:3000/auth-redirect`.
    pub fn redirect_url(&self) -> String {
        match (&self.auth.redirect_url, &self.app.static_dir) {
            (Some(url), _) => url.clone(),
            (None, Some(_)) => format!("{}/auth-redirect", self.public_base()),
            (None, None) => TUTORIAL_REDIRECT_URL.into(),
        }
    }

    /// The PostgreSQL URL when `database.url` is set; `None` means the SQLite file.
    pub fn postgres_url(&self) -> Option<&str> {
        use secrecy::ExposeSecret;
        Some(self.database.url.expose_secret()).filter(|url| !url.is_empty())
    }

    /// The Redis that keeps the rate-limit counters, if one is configured.
    pub fn redis_url(&self) -> Option<&str> {
        use secrecy::ExposeSecret;
        Some(self.rate_limits.redis_url.expose_secret()).filter(|url| !url.is_empty())
    }

    /// The merged configuration as TOML, secrets redacted.
    pub fn to_redacted_toml(&self) -> String {
        toml_string(self)
    }
}

trait FromStrChecked {
    fn from_str_checked(s: &str) -> Result<(), ConfigError>;
}

impl FromStrChecked for lettre::message::Mailbox {
    fn from_str_checked(s: &str) -> Result<(), ConfigError> {
        s.parse::<lettre::message::Mailbox>()
            .map(|_| ())
            .map_err(|err| ConfigError(format!("mail.from {s:?}: {err}")))
    }
}

fn toml_string(config: &Config) -> String {
    toml::to_string_pretty(config).unwrap_or_else(|err| format!("# could not render: {err}\n"))
}

fn first_error(err: figment::Error) -> String {
    let err = err.into_iter().next();
    match err {
        Some(err) => {
            let path = err.path.join(".");
            if path.is_empty() {
                err.kind.to_string()
            } else {
                format!("{path}: {}", err.kind)
            }
        }
        None => "unknown error".into(),
    }
}

fn redacted<S: serde::Serializer>(secret: &SecretString, s: S) -> Result<S::Ok, S::Error> {
    use secrecy::ExposeSecret;
    if secret.expose_secret().is_empty() {
        s.serialize_str("")
    } else {
        s.serialize_str("[redacted]")
    }
}

/// Accept a list either as an array or as a comma-separated string (environment variables).
fn comma_list<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Either {
        List(Vec<String>),
        One(String),
    }
    Ok(match Either::deserialize(d)? {
        Either::List(list) => list,
        Either::One(one) => one
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(String::from)
            .collect(),
    })
}

/// A declared index names fields of the objects (letters, digits and `_` joined by `.`),
/// and sort keys that are such fields or `createdAt`, `updatedAt`, `_id`.
fn check_index(model: &str, index: &IndexConfig) -> Result<(), ConfigError> {
    let is_path = |path: &str| {
        path.len() <= 200
            && path.split('.').all(|segment| {
                !segment.is_empty()
                    && segment
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '_')
            })
    };
    let is_system = |path: &str| matches!(path, "_id" | "createdAt" | "updatedAt");
    let (fields, sort) = index.parts();
    if let Some(bad) = fields.iter().find(|p| !is_path(p) || is_system(p)) {
        return Err(ConfigError(format!(
            "database.models.{model}.indexes: {bad:?} must be a field path of letters, digits and _ joined by '.' (not _id, createdAt or updatedAt)"
        )));
    }
    if let Some(bad) = sort.iter().find(|p| !is_path(p)) {
        return Err(ConfigError(format!(
            "database.models.{model}.indexes: sort key {bad:?} must be a field path of letters, digits and _ joined by '.'"
        )));
    }
    if fields.is_empty() && sort.is_empty() {
        return Err(ConfigError(format!(
            "database.models.{model}.indexes: an index needs fields or sort keys"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        Config::default().validate().unwrap();
    }

    #[test]
    fn the_redirect_url_defaults_to_the_served_app_then_to_the_tutorial() {
        let mut config = Config::default();
        assert_eq!(config.redirect_url(), "http://localhost:3000/auth-redirect");
        config.public_url = "https://id.example.com/".into();
        config.app.static_dir = Some(PathBuf::from("dist"));
        assert_eq!(
            config.redirect_url(),
            "https://id.example.com/auth-redirect"
        );
        config.auth.redirect_url = Some("myapp://signed-in".into());
        assert_eq!(config.redirect_url(), "myapp://signed-in");
    }

    #[test]
    fn redis_urls_are_redis_or_rediss_and_a_ca_file_needs_tls() {
        let mut config = Config::default();
        for (url, ca, ok) in [
            ("redis://127.0.0.1:6379/0", None, true),
            ("rediss://cache.internal:6380", Some("ca.pem"), true),
            ("rediss://cache.internal:6380", None, true),
            ("http://127.0.0.1:6379", None, false),
            ("redis://127.0.0.1:6379", Some("ca.pem"), false),
            ("", Some("ca.pem"), false),
        ] {
            config.rate_limits.redis_url = url.into();
            config.rate_limits.redis_ca_file = ca.map(PathBuf::from);
            assert_eq!(config.validate().is_ok(), ok, "{url} {ca:?}");
        }
    }

    #[test]
    fn a_static_dir_without_index_html_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let mut config = Config::default();
        config.app.static_dir = Some(dir.path().to_path_buf());
        let err = config.validate().unwrap_err().to_string();
        assert!(err.contains("no index.html"), "{err}");
        std::fs::write(dir.path().join("index.html"), "<!doctype html>").unwrap();
        config.validate().unwrap();
    }

    #[test]
    fn indexes_are_fields_or_fields_with_a_sort() {
        let models: DatabaseConfig = toml::from_str(
            r#"
            [[models]]
            name = "items"
            indexes = ["category", { fields = ["category"], sort = ["rank"] }, { sort = ["createdAt"] }]
            "#,
        )
        .unwrap();
        let indexes: Vec<_> = models.models[0]
            .indexes
            .iter()
            .map(IndexConfig::parts)
            .collect();
        assert_eq!(
            indexes,
            vec![
                (vec!["category".to_string()], vec![]),
                (vec!["category".to_string()], vec!["rank".to_string()]),
                (vec![], vec!["createdAt".to_string()]),
            ]
        );
        let config = Config {
            database: models,
            ..Config::default()
        };
        config.validate().unwrap();
        for (bad, says) in [
            (r#"["a b"]"#, "must be a field path"),
            (r#"["createdAt"]"#, "not _id, createdAt or updatedAt"),
            (r#"[{ fields = ["a"], sort = ["b-c"] }]"#, "sort key"),
            (r#"[{ sort = [] }]"#, "needs fields or sort keys"),
        ] {
            let config = Config {
                database: toml::from_str(&format!(
                    "[[models]]\nname = \"items\"\nindexes = {bad}\n"
                ))
                .unwrap(),
                ..Config::default()
            };
            let err = config.validate().unwrap_err().to_string();
            assert!(err.contains(says), "{bad}: {err}");
        }
        let unknown = toml::from_str::<DatabaseConfig>(
            "[[models]]\nname = \"items\"\nindexes = [{ sort = [\"a\"], order = \"desc\" }]\n",
        );
        assert!(unknown.is_err());
    }

    #[test]
    fn short_minimum_password_is_refused() {
        let mut config = Config::default();
        config.auth.min_password_length = 6;
        assert!(config.validate().is_err());
    }

    #[test]
    fn the_printed_config_reads_back_as_the_same_config() {
        let text = Config::default().to_redacted_toml();
        let back: Config = toml::from_str(&text).unwrap();
        assert_eq!(back.to_redacted_toml(), text);
    }

    #[test]
    fn redacted_toml_hides_the_smtp_password() {
        let mut config = Config::default();
        config.mail.smtp.password = SecretString::from("hunter2-secret");
        let text = config.to_redacted_toml();
        assert!(!text.contains("hunter2-secret"));
        assert!(text.contains("[redacted]"));
    }

    #[test]
    fn s3_storage_needs_a_bucket_and_keeps_its_secret_key_secret() {
        let toml = r#"
            [storage]
            backend = "s3"
            [storage.s3]
            region = "eu-west-1"
            endpoint = "http://127.0.0.1:9000"
            path_style = true
        "#;
        let mut config: Config = Figment::from(Serialized::defaults(Config::default()))
            .merge(Toml::string(toml))
            .extract()
            .unwrap();
        assert_eq!(config.storage.backend, StorageBackend::S3);
        let err = config.validate().unwrap_err().to_string();
        assert!(err.contains("storage.s3.bucket is required"), "{err}");
        config.storage.s3.bucket = "photos".into();
        let err = config.validate().unwrap_err().to_string();
        assert!(err.contains("allow_http"), "{err}");
        config.storage.s3.allow_http = true;
        config.validate().unwrap();
        assert_eq!(config.storage.s3.credentials(), None);
        config.storage.s3.access_key_id = SecretString::from("AKIDEXAMPLE");
        assert!(config.validate().is_err(), "half a key pair");
        config.storage.s3.secret_access_key = SecretString::from("wJalr-secret-key");
        config.validate().unwrap();
        assert_eq!(
            config.storage.s3.credentials(),
            Some(("AKIDEXAMPLE", "wJalr-secret-key"))
        );
        let text = config.to_redacted_toml();
        assert!(!text.contains("wJalr-secret-key") && !text.contains("AKIDEXAMPLE"));
        let back: Config = toml::from_str(&text).unwrap();
        assert_eq!(back.storage.s3.bucket, "photos");
        config.storage.s3.endpoint = Some("ftp://x".into());
        assert!(config.validate().is_err());
        // The local backend ignores the S3 block.
        config.storage.backend = StorageBackend::Local;
        config.validate().unwrap();
    }

    #[test]
    fn a_database_url_chooses_postgres_and_stays_secret() {
        let mut config = Config::default();
        assert_eq!(config.postgres_url(), None);
        config.database.url = SecretString::from("postgres://basalt:hunter2@db/basalt");
        assert!(config.validate().is_ok());
        assert_eq!(
            config.postgres_url(),
            Some("postgres://basalt:hunter2@db/basalt")
        );
        assert!(!config.to_redacted_toml().contains("hunter2"));
        config.database.url = SecretString::from("mysql://db/basalt");
        assert!(config.validate().is_err());
        config.database.url = SecretString::from("");
        config.database.max_connections = 0;
        assert!(config.validate().is_err());
    }
}
