//! Persistence: the `Store` trait every backend implements, its records and its error.
//!
//! Each method is one unit of work (one transaction): the domain decides what a state change
//! is, the store makes it atomic. Nothing above this module sees SQL or a database driver.
//! `copy` moves a SQLite installation into PostgreSQL (`basalt migrate --from --to`).

#[cfg(test)]
pub(crate) mod conformance;
pub mod copy;
mod counters;
#[cfg(test)]
mod filter_props;
pub mod pg_filter;
mod postgres;
mod redis_counters;
pub mod sql_filter;
mod sqlite;
#[cfg(test)]
mod test_database;

pub use counters::{BucketTake, FailureRule, FailureState, RateCounters, Refused};
pub use postgres::PostgresStore;
pub use redis_counters::RedisCounters;
pub use sqlite::SqliteStore;

use async_trait::async_trait;
use serde_json::{Map, Value};

use crate::expr::{Expr, ExprError};

/// Milliseconds since the Unix epoch, UTC.
pub type Millis = i64;

/// Why a store call failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A unique constraint refused the write.
    #[error("conflict on {constraint}")]
    Conflict {
        /// The constrained column, e.g. `email`.
        constraint: String,
    },
    /// The database cancelled a statement that ran longer than its time limit.
    #[error("the statement ran longer than the database's time limit")]
    TimedOut,
    /// The database failed (I/O, corruption, unavailable).
    #[error("database error")]
    Backend(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// Result of a store call.
pub type StoreResult<T> = Result<T, StoreError>;

/// A stored account.
#[derive(Debug, Clone)]
pub struct UserRecord {
    /// 24-hex id.
    pub id: String,
    /// The address as given (domain lowercased).
    pub email: String,
    /// Whether the address was proven.
    pub email_verified: bool,
    /// Argon2 PHC string; `None` when the password was voided.
    pub password_hash: Option<String>,
    /// `altogic` for email accounts.
    pub provider: String,
    /// Equals `id` for email accounts.
    pub provider_user_id: String,
    /// Extra profile fields (`name`, `profilePicture`, app fields).
    pub data: Map<String, Value>,
    /// When the account was created.
    pub sign_up_at: Millis,
    /// Last sign-in or grant.
    pub last_login_at: Millis,
    /// Row creation.
    pub created_at: Millis,
    /// Last change.
    pub updated_at: Millis,
}

/// A user to insert.
#[derive(Debug, Clone)]
pub struct NewUser {
    /// 24-hex id.
    pub id: String,
    /// The address as given (domain lowercased).
    pub email: String,
    /// Case-blind key of the address; unique.
    pub email_key: String,
    /// Whether the address is already proven.
    pub email_verified: bool,
    /// Argon2 PHC string.
    pub password_hash: Option<String>,
    /// Extra profile fields.
    pub data: Map<String, Value>,
    /// Creation time.
    pub now: Millis,
}

/// A stored session.
#[derive(Debug, Clone)]
pub struct SessionRecord {
    /// Internal id (never a bearer secret).
    pub id: String,
    /// Owner.
    pub user_id: String,
    /// Parsed user agent, as JSON.
    pub user_agent: Value,
    /// Creation time.
    pub created_at: Millis,
    /// Last authenticated use (written at most once a minute).
    pub last_seen_at: Millis,
}

/// A session to insert.
#[derive(Debug, Clone)]
pub struct NewSession {
    /// Internal id.
    pub id: String,
    /// Owner.
    pub user_id: String,
    /// SHA-256 of the bearer token, hex.
    pub token_hash: String,
    /// Parsed user agent, as JSON.
    pub user_agent: Value,
    /// Creation time.
    pub now: Millis,
    /// The oldest sessions beyond this count are evicted.
    pub max_per_user: u32,
}

/// How a session to delete is named.
#[derive(Debug, Clone)]
pub enum SessionRef {
    /// By internal id (from a `ref_` handle).
    Id(String),
    /// By the hash of its bearer token.
    TokenHash(String),
}

/// The kinds of one-time tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenKind {
    /// Emailed sign-up confirmation link.
    Confirm,
    /// Emailed magic sign-in link.
    Magic,
    /// Emailed password reset link.
    Reset,
    /// Emailed email-change link.
    ChangeEmail,
    /// Grant from a link click, redeemed by `/auth/grant`.
    Grant,
    /// Reset key from a reset link click, redeemed by `/auth/reset-pwd`.
    ResetGrant,
}

impl TokenKind {
    /// Stable name stored in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Confirm => "confirm",
            Self::Magic => "magic",
            Self::Reset => "reset",
            Self::ChangeEmail => "change_email",
            Self::Grant => "grant",
            Self::ResetGrant => "reset_grant",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "confirm" => Self::Confirm,
            "magic" => Self::Magic,
            "reset" => Self::Reset,
            "change_email" => Self::ChangeEmail,
            "grant" => Self::Grant,
            "reset_grant" => Self::ResetGrant,
            _ => return None,
        })
    }
}

/// A stored one-time token.
#[derive(Debug, Clone)]
pub struct TokenRecord {
    /// Internal id.
    pub id: String,
    /// Owner.
    pub user_id: String,
    /// What it is for.
    pub kind: TokenKind,
    /// The emailed token a grant was minted from.
    pub source_id: Option<String>,
    /// Kind-specific payload (the new address of an email change).
    pub data: Option<String>,
    /// Expiry.
    pub expires_at: Millis,
    /// When it was spent.
    pub used_at: Option<Millis>,
}

/// A token to insert.
#[derive(Debug, Clone)]
pub struct NewToken {
    /// Internal id.
    pub id: String,
    /// Owner.
    pub user_id: String,
    /// What it is for.
    pub kind: TokenKind,
    /// SHA-256 of the secret, hex.
    pub token_hash: String,
    /// The emailed token a grant was minted from.
    pub source_id: Option<String>,
    /// Kind-specific payload.
    pub data: Option<String>,
    /// Creation time.
    pub now: Millis,
    /// Expiry.
    pub expires_at: Millis,
}

/// A message to queue.
#[derive(Debug, Clone)]
pub struct NewMail {
    /// Internal id.
    pub id: String,
    /// Recipient address.
    pub to: String,
    /// Subject line.
    pub subject: String,
    /// Plain-text body.
    pub text: String,
    /// HTML body.
    pub html: String,
    /// Queue time.
    pub now: Millis,
}

/// A queued or delivered message.
#[derive(Debug, Clone)]
pub struct MailRecord {
    /// Internal id.
    pub id: String,
    /// Recipient address.
    pub to: String,
    /// Subject line.
    pub subject: String,
    /// Plain-text body.
    pub text: String,
    /// HTML body.
    pub html: String,
    /// Queue time.
    pub created_at: Millis,
    /// Delivery attempts so far.
    pub attempts: u32,
    /// Delivery time.
    pub sent_at: Option<Millis>,
}

/// A client key.
#[derive(Debug, Clone)]
pub struct ClientKeyRecord {
    /// The key as sent in `X-Client-Key`.
    pub key: String,
    /// Operator's label.
    pub name: String,
    /// Creation time.
    pub created_at: Millis,
    /// Revocation time.
    pub revoked_at: Option<Millis>,
}

/// A storage bucket.
#[derive(Debug, Clone)]
pub struct BucketRecord {
    /// 24-hex id.
    pub id: String,
    /// Unique, case-sensitive name (`root` always exists).
    pub name: String,
    /// Default privacy of new files.
    pub is_public: bool,
    /// Creator, when created inside a session.
    pub user_id: Option<String>,
    /// Labels.
    pub tags: Vec<String>,
    /// Creation time.
    pub created_at: Millis,
    /// Last change.
    pub updated_at: Millis,
}

/// A stored file's metadata.
#[derive(Debug, Clone)]
pub struct FileRecord {
    /// 24-hex id.
    pub id: String,
    /// Bucket id.
    pub bucket_id: String,
    /// Name, unique within the bucket.
    pub file_name: String,
    /// Where the bytes are in the blob store (random, never user-chosen).
    pub blob_key: String,
    /// Bytes.
    pub size: i64,
    /// Transfer encoding (`7bit`).
    pub encoding: String,
    /// MIME type.
    pub mime_type: String,
    /// Strong validator of the content.
    pub etag: String,
    /// Served at its public path without a session.
    pub is_public: bool,
    /// Uploader, when uploaded inside a session.
    pub user_id: Option<String>,
    /// Labels.
    pub tags: Vec<String>,
    /// Upload time.
    pub uploaded_at: Millis,
    /// Last change.
    pub updated_at: Millis,
}

/// An object of a declared model.
#[derive(Debug, Clone)]
pub struct ObjectRecord {
    /// 24-hex id.
    pub id: String,
    /// Model name.
    pub model: String,
    /// The user whose session created it.
    pub owner_id: Option<String>,
    /// The document (without `_id` and timestamps).
    pub data: Map<String, Value>,
    /// Bumped by every write; updates name the version they read.
    pub version: i64,
    /// Creation time.
    pub created_at: Millis,
    /// Last change.
    pub updated_at: Millis,
}

/// A filter as the backends need it: the parsed expression, and its SQLite condition,
/// compiled when the query is built so that an expression SQLite cannot run is refused
/// before any store call. PostgreSQL compiles `expr` itself (`pg_filter`).
#[derive(Debug, Clone)]
pub struct Filter {
    /// The expression (protocol.md §5.5).
    pub expr: Expr,
    /// Its SQLite condition.
    pub sqlite: sql_filter::SqlFilter,
}

impl Filter {
    /// Check and compile a filter expression.
    pub fn compile(expr: &Expr) -> Result<Self, ExprError> {
        Ok(Self {
            sqlite: sql_filter::compile(expr)?,
            expr: expr.clone(),
        })
    }
}

/// The order of a query's rows: sort keys (ties by id), or random.
#[derive(Debug, Clone)]
pub struct Order {
    /// `(field path, descending)` keys; empty for the id order.
    pub keys: Vec<(String, bool)>,
    /// Random order (`get-random`); `keys` are ignored.
    pub random: bool,
    /// The SQLite `ORDER BY` clause.
    pub sqlite: String,
}

impl Order {
    /// Check and compile sort keys.
    pub fn by(keys: &[(String, bool)]) -> Result<Self, ExprError> {
        Ok(Self {
            sqlite: sql_filter::order_by(keys)?,
            keys: keys.to_vec(),
            random: false,
        })
    }

    /// By id, ascending.
    pub fn by_id() -> Self {
        Self {
            keys: Vec::new(),
            random: false,
            sqlite: "ORDER BY id ASC".into(),
        }
    }

    /// Random order.
    pub fn random() -> Self {
        Self {
            keys: Vec::new(),
            random: true,
            sqlite: "ORDER BY random()".into(),
        }
    }
}

/// A declared index on a model's objects (docs/DECISIONS.md "Declared indexes"): filters
/// comparing `fields` with values read it, and when `sort` is given, a page sorted by those
/// keys (either direction) after equality on every field is read in order, not sorted whole.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectIndex {
    /// Model name.
    pub model: String,
    /// Field paths in `data`, compared with a value by filters.
    pub fields: Vec<String>,
    /// Sort keys (field paths, `createdAt`, `updatedAt` or `_id`) after the fields.
    pub sort: Vec<String>,
}

impl ObjectIndex {
    /// An index on one field.
    pub fn field(model: &str, path: &str) -> Self {
        Self {
            model: model.into(),
            fields: vec![path.into()],
            sort: Vec::new(),
        }
    }

    /// A stable name that tells what the index covers: `objects_by:{model}:{fields}` and
    /// `:sort:{keys}` when sorted.
    pub fn name(&self) -> String {
        let mut name = format!("objects_by:{}:{}", self.model, self.fields.join(","));
        if !self.sort.is_empty() {
            name.push_str(":sort:");
            name.push_str(&self.sort.join(","));
        }
        name
    }

    /// Whether every name and path is letters, digits, `_` and `.` only, so it may be written
    /// into SQL text (the configuration checks this too).
    pub fn is_safe(&self) -> bool {
        let safe = |s: &String| {
            !s.is_empty()
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.')
        };
        safe(&self.model)
            && (!self.fields.is_empty() || !self.sort.is_empty())
            && self.fields.iter().all(safe)
            && self.sort.iter().all(safe)
    }
}

/// A query over the objects of a model.
#[derive(Debug, Clone)]
pub struct ObjectQuery {
    /// Model name.
    pub model: String,
    /// Only objects owned by this user (the `owner` access rule).
    pub owner: Option<String>,
    /// The filter, if any.
    pub filter: Option<Filter>,
    /// The order of the rows.
    pub order: Order,
    /// Page size.
    pub limit: u32,
    /// Objects skipped.
    pub offset: u64,
    /// Also count every match (ignoring the page).
    pub count: bool,
}

/// A query over the `users` model as one caller sees it: their own record whole, others'
/// public fields only, so a filter or sort can never read what a direct read would not.
#[derive(Debug, Clone)]
pub struct UserQuery {
    /// The signed-in caller.
    pub caller: Option<String>,
    /// Top-level profile fields everyone may read.
    pub public_fields: Vec<String>,
    /// The filter, if any.
    pub filter: Option<Filter>,
    /// The order of the rows.
    pub order: Order,
    /// Page size.
    pub limit: u32,
    /// Users skipped.
    pub offset: u64,
    /// Also count every match (ignoring the page).
    pub count: bool,
}

/// A page of the buckets or files a caller may read (the storage list calls).
///
/// Each row is presented to `filter` and `order` as `id`, `data` (the wire fields as a JSON
/// object), `created_at` and `updated_at`, the columns the filter compilers read; for files
/// `created_at` is the upload time.
#[derive(Debug, Clone)]
pub struct StorageQuery {
    /// Whose private buckets or files are listed too; public ones always are.
    pub reader: Option<String>,
    /// Files only: just this bucket's.
    pub bucket_id: Option<String>,
    /// Files only: the base URL of `publicPath` (no trailing slash).
    pub public_base: String,
    /// The filter, if any.
    pub filter: Option<Filter>,
    /// The order of the rows.
    pub order: Order,
    /// Page size.
    pub limit: u32,
    /// Rows skipped.
    pub offset: u64,
    /// Also count every match (ignoring the page).
    pub count: bool,
}

/// Called with each object of a scan; `false` stops it.
pub type ObjectVisitor = Box<dyn FnMut(ObjectRecord) -> bool + Send>;

/// Totals over the buckets and files a caller may read.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct StorageStats {
    /// Buckets.
    pub buckets: u64,
    /// Files.
    pub files: u64,
    /// Bytes of every file.
    pub total_size: i64,
    /// Mean file size in bytes; 0 without files.
    pub average_size: f64,
    /// Smallest file in bytes; 0 without files.
    pub min_size: i64,
    /// Largest file in bytes; 0 without files.
    pub max_size: i64,
}

/// A value of a field declared unique: `(field, canonical JSON of the value)`.
pub type UniqueValue = (String, String);

/// An object to write, with the unique values it claims.
#[derive(Debug, Clone)]
pub struct ObjectWrite {
    /// The object as it should be stored.
    pub record: ObjectRecord,
    /// Values of its unique fields.
    pub unique: Vec<UniqueValue>,
}

/// Redeem a grant: spend it and its emailed source, open a session.
#[derive(Debug, Clone)]
pub struct RedeemGrant {
    /// The grant token.
    pub grant_id: String,
    /// The emailed token it came from.
    pub source_id: Option<String>,
    /// The new session.
    pub session: NewSession,
    /// Prove the address.
    pub mark_verified: bool,
    /// Void the password and end earlier sessions (pre-hijack defence).
    pub void_password: bool,
}

/// Set a new password from a reset key.
#[derive(Debug, Clone)]
pub struct ResetPassword {
    /// The reset key.
    pub grant_id: String,
    /// The emailed token it came from.
    pub source_id: Option<String>,
    /// Owner.
    pub user_id: String,
    /// New Argon2 PHC string.
    pub password_hash: String,
    /// Time of the change.
    pub now: Millis,
}

/// The `n`th alternative of a taken file name: `photo.png` → `photo-1.png`, `notes` → `notes-1`.
pub fn numbered_name(name: &str, n: u32) -> String {
    match name.rsplit_once('.') {
        Some((stem, ext)) if !stem.is_empty() && !ext.is_empty() => format!("{stem}-{n}.{ext}"),
        _ => format!("{name}-{n}"),
    }
}

#[cfg(test)]
#[test]
fn numbered_names_keep_the_extension() {
    assert_eq!(numbered_name("photo.png", 1), "photo-1.png");
    assert_eq!(numbered_name("user_6235e0", 2), "user_6235e0-2");
    assert_eq!(numbered_name(".env", 1), ".env-1");
    assert_eq!(numbered_name("a.tar.gz", 1), "a.tar-1.gz");
}

/// Persistence for every area. Implemented by each backend; see `conformance` tests.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Insert an account with its confirmation link or first session;
    /// `Conflict { constraint: "email" }` when the address is taken.
    async fn insert_user(
        &self,
        user: NewUser,
        link: Option<(NewToken, NewMail)>,
        session: Option<NewSession>,
    ) -> StoreResult<()>;
    /// An account by id.
    async fn user_by_id(&self, id: &str) -> StoreResult<Option<UserRecord>>;
    /// An account by case-blind address key.
    async fn user_by_email(&self, email_key: &str) -> StoreResult<Option<UserRecord>>;
    /// Delete an account and everything it owns. Returns whether it existed.
    async fn delete_user(&self, id: &str) -> StoreResult<bool>;
    /// Mark the address proven.
    async fn set_email_verified(&self, user_id: &str, now: Millis) -> StoreResult<()>;
    /// Record a sign-in: new session, `last_login_at`, optional rehash.
    async fn record_sign_in(&self, session: NewSession, rehash: Option<String>) -> StoreResult<()>;
    /// Change the password; end every session but `keep_session`; void reset links.
    async fn change_password(
        &self,
        user_id: &str,
        password_hash: &str,
        keep_session: Option<&str>,
        now: Millis,
    ) -> StoreResult<()>;
    /// Apply a confirmed email change; `Conflict` when the address was taken meanwhile.
    async fn change_email(
        &self,
        user_id: &str,
        email: &str,
        email_key: &str,
        now: Millis,
    ) -> StoreResult<()>;

    /// A session and its user by token hash.
    async fn session_by_token(
        &self,
        token_hash: &str,
    ) -> StoreResult<Option<(SessionRecord, UserRecord)>>;
    /// Record that a session was used.
    async fn touch_session(&self, id: &str, now: Millis) -> StoreResult<()>;
    /// All sessions of a user, oldest first.
    async fn sessions_of_user(&self, user_id: &str) -> StoreResult<Vec<SessionRecord>>;
    /// Delete one session of a user. Returns whether it existed.
    async fn delete_session(&self, user_id: &str, session: SessionRef) -> StoreResult<bool>;
    /// Delete every session of a user except `keep`. Returns how many.
    async fn delete_sessions_of_user(&self, user_id: &str, keep: Option<&str>) -> StoreResult<u64>;
    /// Delete sessions created before `created_before` or idle since `idle_before`.
    async fn delete_expired_sessions(
        &self,
        created_before: Millis,
        idle_before: Millis,
    ) -> StoreResult<u64>;

    /// Issue an emailed link: replace unspent ones of the same kind, queue its mail.
    async fn issue_link(&self, token: NewToken, mail: NewMail) -> StoreResult<()>;
    /// Insert a token (grants).
    async fn insert_token(&self, token: NewToken) -> StoreResult<()>;
    /// A token by hash.
    async fn token_by_hash(&self, token_hash: &str) -> StoreResult<Option<TokenRecord>>;
    /// Redeem a grant. `false` when it or its source was spent meanwhile.
    async fn redeem_grant(&self, redeem: RedeemGrant) -> StoreResult<bool>;
    /// Reset a password. `false` when the key or its source was spent meanwhile.
    async fn reset_password(&self, reset: ResetPassword) -> StoreResult<bool>;

    /// Queue a message.
    async fn enqueue_mail(&self, mail: NewMail) -> StoreResult<()>;
    /// Claim up to `limit` messages due at `now` (unsent, their next attempt come and any
    /// earlier claim's lease over) until `lease_until`, oldest due first: no other claim
    /// returns them before the lease ends, so several senders never pick the same message,
    /// and one that dies mid-send leaves it to be claimed again afterwards.
    async fn claim_mail(
        &self,
        now: Millis,
        lease_until: Millis,
        limit: u32,
    ) -> StoreResult<Vec<MailRecord>>;
    /// Mark a message delivered (its claim ends).
    async fn mark_mail_sent(&self, id: &str, now: Millis) -> StoreResult<()>;
    /// Record a failed attempt and when to retry (its claim ends).
    async fn mark_mail_failed(
        &self,
        id: &str,
        next_attempt_at: Millis,
        error: &str,
    ) -> StoreResult<()>;
    /// Delivered messages, newest first.
    async fn sent_mail(&self, limit: u32) -> StoreResult<Vec<MailRecord>>;

    /// Every client key, revoked ones too.
    async fn client_keys(&self) -> StoreResult<Vec<ClientKeyRecord>>;
    /// Add a client key.
    async fn insert_client_key(&self, key: &str, name: &str, now: Millis) -> StoreResult<()>;
    /// Revoke a client key. Returns whether it was active.
    async fn revoke_client_key(&self, key: &str, now: Millis) -> StoreResult<bool>;

    /// Merge top-level fields into an account's profile data; `None` when there is no account.
    async fn update_user_data(
        &self,
        user_id: &str,
        patch: Map<String, Value>,
        now: Millis,
    ) -> StoreResult<Option<UserRecord>>;

    /// A bucket by id, else by name.
    async fn bucket(&self, id_or_name: &str) -> StoreResult<Option<BucketRecord>>;
    /// Record an uploaded file; a taken name becomes `name-1.ext`, `name-2.ext`, …
    /// Returns the stored record with its final name.
    async fn insert_file(&self, file: FileRecord) -> StoreResult<FileRecord>;
    /// A file of a bucket by id.
    async fn file(&self, bucket_id: &str, file_id: &str) -> StoreResult<Option<FileRecord>>;
    /// A file of a bucket by id, else by name.
    async fn file_by_key(
        &self,
        bucket_id: &str,
        id_or_name: &str,
    ) -> StoreResult<Option<FileRecord>>;
    /// Delete a file's metadata. Returns its blob key when it existed.
    async fn delete_file(&self, bucket_id: &str, file_id: &str) -> StoreResult<Option<String>>;
    /// Create a bucket; `Conflict { constraint: "name" }` when the name is taken.
    async fn insert_bucket(&self, bucket: BucketRecord) -> StoreResult<()>;
    /// Write a bucket's name, privacy and tags (and, with `files_public`, every file's
    /// privacy); `Conflict { constraint: "name" }` when the new name is taken.
    async fn update_bucket(
        &self,
        bucket: BucketRecord,
        files_public: Option<bool>,
    ) -> StoreResult<()>;
    /// Delete a bucket's files (and, with `bucket_too`, the bucket). Returns the blob keys.
    async fn delete_bucket_files(
        &self,
        bucket_id: &str,
        bucket_too: bool,
    ) -> StoreResult<Vec<String>>;
    /// Write a file's name, privacy, tags and content fields; a taken name is numbered like
    /// an upload's. Returns the record as stored.
    async fn update_file(&self, file: FileRecord) -> StoreResult<FileRecord>;

    /// A page of the buckets `query.reader` may read (public ones and their own) that match,
    /// and, when asked, how many match in all.
    async fn query_buckets(
        &self,
        query: StorageQuery,
    ) -> StoreResult<(Vec<BucketRecord>, Option<u64>)>;
    /// A page of the files `query.reader` may read (public ones and their own) that match,
    /// and, when asked, how many match in all.
    async fn query_files(&self, query: StorageQuery)
    -> StoreResult<(Vec<FileRecord>, Option<u64>)>;
    /// Totals over the buckets and files `reader` may read; files of `bucket_id` only if given.
    async fn storage_stats(
        &self,
        reader: Option<&str>,
        bucket_id: Option<&str>,
    ) -> StoreResult<StorageStats>;
    /// Delete the files of a bucket owned by `owner` whose id or name is in `keys`, in one
    /// transaction. Returns their blob keys.
    async fn delete_owned_files(
        &self,
        bucket_id: &str,
        owner: &str,
        keys: Vec<String>,
    ) -> StoreResult<Vec<String>>;

    /// Insert objects, all or none; `Conflict { constraint: field }` on a taken unique value.
    async fn insert_objects(&self, objects: Vec<ObjectWrite>) -> StoreResult<()>;
    /// An object by model and id.
    async fn object(&self, model: &str, id: &str) -> StoreResult<Option<ObjectRecord>>;
    /// Replace an object if it is still at `expected_version`; `false` when it changed or
    /// vanished meanwhile. The record's `version` is the new one.
    async fn replace_object(&self, object: ObjectWrite, expected_version: i64)
    -> StoreResult<bool>;
    /// Delete an object. Returns whether it existed.
    async fn delete_object(&self, model: &str, id: &str) -> StoreResult<bool>;
    /// A page of matching objects and, when asked, how many match in all.
    async fn query_objects(
        &self,
        query: ObjectQuery,
    ) -> StoreResult<(Vec<ObjectRecord>, Option<u64>)>;

    /// Visit every matching object in the query's order (its page is ignored) until the
    /// visitor answers `false`; runs off the async runtime, for long scans.
    async fn scan_objects(&self, query: ObjectQuery, visit: ObjectVisitor) -> StoreResult<()>;
    /// The objects with these ids, of any model, in no particular order.
    async fn objects_by_ids(&self, ids: Vec<String>) -> StoreResult<Vec<ObjectRecord>>;

    /// Keep exactly these declared indexes on objects: create the missing ones, drop those no
    /// longer declared. An index that is not [`ObjectIndex::is_safe`] is refused.
    async fn ensure_indexes(&self, indexes: Vec<ObjectIndex>) -> StoreResult<()>;

    /// A page of the users matching a [`UserQuery`] and, when asked, how many match.
    async fn query_users(&self, query: UserQuery) -> StoreResult<(Vec<UserRecord>, Option<u64>)>;

    /// Whether the database answers.
    async fn ping(&self) -> StoreResult<()>;

    /// Rate-limit counters kept in this store for every node that shares it; `None` (the
    /// default) keeps them in each process.
    fn shared_counters(&self) -> Option<std::sync::Arc<dyn RateCounters>> {
        None
    }
}
