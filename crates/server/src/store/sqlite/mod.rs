//! SQLite backend: WAL, `synchronous=FULL`, one writer thread with group commit, a small pool
//! of read-only connections on the blocking pool, cached prepared statements.
//!
//! The writer drains up to `GROUP` queued units of work into one transaction, each inside its
//! own savepoint, and answers each only after COMMIT: `synchronous=FULL` durability at a
//! fraction of the fsyncs (shared/PERFORMANCE.md). The storage list calls are in
//! `storage.rs`.

mod storage;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

use async_trait::async_trait;
use rusqlite::{Connection, ErrorCode, OpenFlags, OptionalExtension, Row, params};
use serde_json::{Map, Value};
use tokio::sync::{Semaphore, oneshot};

use super::{
    BucketRecord, ClientKeyRecord, FileRecord, MailRecord, Millis, NewMail, NewSession, NewToken,
    NewUser, ObjectIndex, ObjectQuery, ObjectRecord, ObjectVisitor, ObjectWrite, RedeemGrant,
    ResetPassword, SessionRecord, SessionRef, StorageQuery, StorageStats, Store, StoreError,
    StoreResult, TokenKind, TokenRecord, UserQuery, UserRecord, numbered_name, sql_filter,
};

/// Migrations, applied in order; `PRAGMA user_version` counts those applied.
const MIGRATIONS: &[&str] = &[
    include_str!("../../../migrations/sqlite/0001_create_auth.sql"),
    include_str!("../../../migrations/sqlite/0002_create_storage.sql"),
    include_str!("../../../migrations/sqlite/0003_create_objects.sql"),
    include_str!("../../../migrations/sqlite/0004_add_mail_leases.sql"),
    include_str!("../../../migrations/sqlite/0005_create_rate_counters.sql"),
];

/// The schema level this build migrates to (`PRAGMA user_version` once migrated).
pub(super) fn schema_level() -> i64 {
    i64::try_from(MIGRATIONS.len()).unwrap_or(i64::MAX)
}

/// Most units of work committed together.
const GROUP: usize = 64;
/// Read-only connections.
const READERS: usize = 4;

/// A unit of work for the writer: given the connection inside an open transaction (or why no
/// transaction could be opened), it runs and returns what to tell its caller once the batch's
/// COMMIT succeeded or failed.
type WriteJob = Box<dyn FnOnce(Result<&Connection, String>) -> Completion + Send>;
type Completion = Box<dyn FnOnce(Result<(), String>) + Send>;

/// SQLite store; cheap to clone.
#[derive(Clone)]
pub struct SqliteStore {
    inner: Arc<Inner>,
}

struct Inner {
    readers: Mutex<Vec<Connection>>,
    read_slots: Semaphore,
    writer: Mutex<mpsc::Sender<WriteJob>>,
}

fn backend(err: impl std::error::Error + Send + Sync + 'static) -> StoreError {
    StoreError::Backend(Box::new(err))
}

/// Unique violations become `Conflict`, everything else `Backend`.
fn db_error(err: rusqlite::Error) -> StoreError {
    if let rusqlite::Error::SqliteFailure(failure, message) = &err
        && failure.code == ErrorCode::ConstraintViolation
        && (failure.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE
            || failure.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY)
    {
        let constraint = if message.as_deref().unwrap_or_default().contains("email") {
            "email"
        } else {
            "unique"
        };
        return StoreError::Conflict {
            constraint: constraint.to_string(),
        };
    }
    backend(err)
}

fn open(path: &Path, read_only: bool) -> rusqlite::Result<Connection> {
    let flags = if read_only {
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX
    } else {
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX
    };
    let conn = Connection::open_with_flags(path, flags)?;
    conn.busy_timeout(Duration::from_secs(5))?;
    conn.pragma_update(None, "foreign_keys", true)?;
    if !read_only {
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
    }
    conn.set_prepared_statement_cache_capacity(64);
    Ok(conn)
}

fn migrate(conn: &mut Connection) -> rusqlite::Result<()> {
    let applied: usize = conn.pragma_query_value(None, "user_version", |row| row.get(0))?;
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(applied) {
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", i + 1)?;
        tx.commit()?;
    }
    Ok(())
}

/// The writer thread: group commit, a savepoint per unit of work, answers after COMMIT.
fn run_writer(conn: Connection, jobs: mpsc::Receiver<WriteJob>) {
    while let Ok(first) = jobs.recv() {
        let mut batch = vec![first];
        while batch.len() < GROUP {
            match jobs.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let began = conn
            .execute_batch("BEGIN IMMEDIATE")
            .map_err(|e| e.to_string());
        let completions: Vec<Completion> = batch
            .into_iter()
            .map(|job| job(began.as_ref().map(|()| &conn).map_err(Clone::clone)))
            .collect();
        let outcome = match began {
            Ok(()) => conn.execute_batch("COMMIT").map_err(|err| {
                let _ = conn.execute_batch("ROLLBACK");
                err.to_string()
            }),
            Err(reason) => Err(reason),
        };
        if let Err(reason) = &outcome {
            tracing::error!(%reason, "a write transaction failed");
        }
        for complete in completions {
            complete(outcome.clone());
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("commit failed: {0}")]
struct CommitFailed(String);

#[derive(Debug, thiserror::Error)]
#[error("the database writer stopped")]
struct WriterGone;

#[derive(Debug, thiserror::Error)]
#[error("no read connection was free")]
struct NoReader;

#[derive(Debug, thiserror::Error)]
#[error("cannot index {0}: names are letters, digits, '_' and '.'")]
struct BadIndex(String);

/// Run `work` inside a savepoint: undone alone if it fails, the rest of the batch kept.
fn in_savepoint<T>(
    conn: &Connection,
    work: impl FnOnce(&Connection) -> StoreResult<T>,
) -> StoreResult<T> {
    conn.execute_batch("SAVEPOINT unit").map_err(db_error)?;
    match work(conn) {
        Ok(value) => {
            conn.execute_batch("RELEASE unit").map_err(db_error)?;
            Ok(value)
        }
        Err(err) => {
            let _ = conn.execute_batch("ROLLBACK TO unit; RELEASE unit");
            Err(err)
        }
    }
}

impl SqliteStore {
    /// Open (creating if needed) the database file and apply migrations.
    pub async fn open(path: &Path) -> StoreResult<Self> {
        let path: PathBuf = path.to_path_buf();
        tokio::task::spawn_blocking(move || Self::open_blocking(&path))
            .await
            .map_err(backend)?
    }

    fn open_blocking(path: &Path) -> StoreResult<Self> {
        let mut writer = open(path, false).map_err(db_error)?;
        migrate(&mut writer).map_err(db_error)?;
        let readers = (0..READERS)
            .map(|_| open(path, true))
            .collect::<rusqlite::Result<Vec<_>>>()
            .map_err(db_error)?;
        let (sender, jobs) = mpsc::channel::<WriteJob>();
        std::thread::Builder::new()
            .name("basalt-sqlite-writer".into())
            .spawn(move || run_writer(writer, jobs))
            .map_err(backend)?;
        Ok(Self {
            inner: Arc::new(Inner {
                readers: Mutex::new(readers),
                read_slots: Semaphore::new(READERS),
                writer: Mutex::new(sender),
            }),
        })
    }

    /// Run a read on a pooled read-only connection, on the calling thread: an indexed read
    /// from SQLite's page cache takes microseconds, less than handing it to another thread.
    async fn read<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> StoreResult<T> {
        let _slot = self.inner.read_slots.acquire().await.map_err(backend)?;
        let conn = self
            .inner
            .readers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .pop()
            .ok_or_else(|| backend(NoReader))?;
        let result = work(&conn).map_err(db_error);
        self.inner
            .readers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(conn);
        result
    }

    /// Like [`Self::read`], on a blocking thread: for scans that may take a while.
    async fn read_blocking<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> StoreResult<T> {
        let _slot = self.inner.read_slots.acquire().await.map_err(backend)?;
        let inner = Arc::clone(&self.inner);
        tokio::task::spawn_blocking(move || {
            let conn = inner
                .readers
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .pop()
                .ok_or_else(|| backend(NoReader))?;
            let result = work(&conn).map_err(db_error);
            inner
                .readers
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(conn);
            result
        })
        .await
        .map_err(backend)?
    }

    /// Run a unit of work on the writer, atomically, answered after its batch commits.
    async fn write<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Connection) -> StoreResult<T> + Send + 'static,
    ) -> StoreResult<T> {
        let (answer, answered) = oneshot::channel::<StoreResult<T>>();
        let job: WriteJob = Box::new(move |conn| {
            let result = conn
                .map_err(|reason| backend(CommitFailed(reason)))
                .and_then(|conn| in_savepoint(conn, work));
            Box::new(move |commit: Result<(), String>| {
                let result = match (result, commit) {
                    (Ok(value), Ok(())) => Ok(value),
                    (Err(err), _) => Err(err),
                    (Ok(_), Err(reason)) => Err(backend(CommitFailed(reason))),
                };
                let _ = answer.send(result);
            })
        });
        self.inner
            .writer
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .send(job)
            .map_err(|_| backend(WriterGone))?;
        answered.await.map_err(|_| backend(WriterGone))?
    }
}

/// A stored JSON document (`data` columns are always objects; anything else reads as empty).
fn json_object(text: &str) -> Map<String, Value> {
    match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(map)) => map,
        _ => Map::new(),
    }
}

fn user_from_row(row: &Row<'_>) -> rusqlite::Result<UserRecord> {
    let data = json_object(&row.get::<_, String>("data")?);
    Ok(UserRecord {
        id: row.get("id")?,
        email: row.get("email")?,
        email_verified: row.get("email_verified")?,
        password_hash: row.get("password_hash")?,
        provider: row.get("provider")?,
        provider_user_id: row.get("provider_user_id")?,
        data,
        sign_up_at: row.get("sign_up_at")?,
        last_login_at: row.get("last_login_at")?,
        created_at: row.get("created_at")?,
        updated_at: row.get("updated_at")?,
    })
}

fn session_from_row(row: &Row<'_>, prefix: &str) -> rusqlite::Result<SessionRecord> {
    let col = |name: &str| format!("{prefix}{name}");
    let agent: String = row.get(col("user_agent").as_str())?;
    Ok(SessionRecord {
        id: row.get(col("id").as_str())?,
        user_id: row.get(col("user_id").as_str())?,
        user_agent: serde_json::from_str(&agent).unwrap_or(Value::Null),
        created_at: row.get(col("created_at").as_str())?,
        last_seen_at: row.get(col("last_seen_at").as_str())?,
    })
}

fn mail_from_row(row: &Row<'_>) -> rusqlite::Result<MailRecord> {
    let attempts: i64 = row.get("attempts")?;
    Ok(MailRecord {
        id: row.get("id")?,
        to: row.get("recipient")?,
        subject: row.get("subject")?,
        text: row.get("text_body")?,
        html: row.get("html_body")?,
        created_at: row.get("created_at")?,
        attempts: u32::try_from(attempts).unwrap_or(u32::MAX),
        sent_at: row.get("sent_at")?,
    })
}

fn token_from_row(row: &Row<'_>) -> rusqlite::Result<Option<TokenRecord>> {
    let kind: String = row.get("kind")?;
    let Some(kind) = TokenKind::parse(&kind) else {
        return Ok(None);
    };
    Ok(Some(TokenRecord {
        id: row.get("id")?,
        user_id: row.get("user_id")?,
        kind,
        source_id: row.get("source_id")?,
        data: row.get("data")?,
        expires_at: row.get("expires_at")?,
        used_at: row.get("used_at")?,
    }))
}

fn tags(text: String) -> Vec<String> {
    serde_json::from_str(&text).unwrap_or_default()
}

fn bucket_from_row(row: &Row<'_>) -> rusqlite::Result<BucketRecord> {
    Ok(BucketRecord {
        id: row.get("id")?,
        name: row.get("name")?,
        is_public: row.get("is_public")?,
        user_id: row.get("user_id")?,
        tags: tags(row.get("tags")?),
        created_at: row.get("created_at")?,
        updated_at: row.get("updated_at")?,
    })
}

fn file_from_row(row: &Row<'_>) -> rusqlite::Result<FileRecord> {
    Ok(FileRecord {
        id: row.get("id")?,
        bucket_id: row.get("bucket_id")?,
        file_name: row.get("file_name")?,
        blob_key: row.get("blob_key")?,
        size: row.get("size")?,
        encoding: row.get("encoding")?,
        mime_type: row.get("mime_type")?,
        etag: row.get("etag")?,
        is_public: row.get("is_public")?,
        user_id: row.get("user_id")?,
        tags: tags(row.get("tags")?),
        uploaded_at: row.get("uploaded_at")?,
        updated_at: row.get("updated_at")?,
    })
}

fn object_from_row(row: &Row<'_>) -> rusqlite::Result<ObjectRecord> {
    let data: String = row.get("data")?;
    Ok(ObjectRecord {
        id: row.get("id")?,
        model: row.get("model")?,
        owner_id: row.get("owner_id")?,
        data: json_object(&data),
        version: row.get("version")?,
        created_at: row.get("created_at")?,
        updated_at: row.get("updated_at")?,
    })
}

/// The users as the caller `?1` sees them, in the columns a compiled filter reads: their own
/// record whole (profile data plus the account fields of the User shape), others only the
/// public fields named in the JSON list `?2`, with times hidden.
const VISIBLE_USERS: &str = "(SELECT id, \
     CASE WHEN id = ?1 THEN json_set(data, \
         '$.email', email, \
         '$.emailVerified', json(CASE WHEN email_verified THEN 'true' ELSE 'false' END), \
         '$.provider', provider, '$.providerUserId', provider_user_id, \
         '$.signUpAt', strftime('%Y-%m-%dT%H:%M:%fZ', sign_up_at / 1000.0, 'unixepoch'), \
         '$.lastLoginAt', strftime('%Y-%m-%dT%H:%M:%fZ', last_login_at / 1000.0, 'unixepoch')) \
     ELSE (SELECT json_group_object(f.key, CASE f.type WHEN 'true' THEN json('true') \
             WHEN 'false' THEN json('false') ELSE f.value END) \
           FROM json_each(users.data) AS f WHERE f.key IN (SELECT value FROM json_each(?2))) \
     END AS data, \
     CASE WHEN id = ?1 THEN created_at ELSE 0 END AS created_at, \
     CASE WHEN id = ?1 THEN updated_at ELSE 0 END AS updated_at \
     FROM users) AS visible";

/// `SELECT {columns} FROM {from} {order_by}` for one page (`limit`, `offset`), and, when
/// `count` is set, the number of rows of `from` in all.
fn paged<T>(
    conn: &Connection,
    from: &str,
    columns: &str,
    mut params: Vec<rusqlite::types::Value>,
    order_by: &str,
    (limit, offset, count): (u32, u64, bool),
    from_row: impl FnMut(&Row<'_>) -> rusqlite::Result<T>,
) -> rusqlite::Result<(Vec<T>, Option<u64>)> {
    let total = if count {
        let n: i64 = conn
            .prepare_cached(&format!("SELECT COUNT(*) FROM {from}"))?
            .query_row(rusqlite::params_from_iter(params.iter()), |row| row.get(0))?;
        Some(u64::try_from(n).unwrap_or(0))
    } else {
        None
    };
    params.push(i64::from(limit).into());
    params.push(i64::try_from(offset).unwrap_or(i64::MAX).into());
    let rows = conn
        .prepare_cached(&format!(
            "SELECT {columns} FROM {from} {order_by} LIMIT ? OFFSET ?"
        ))?
        .query_map(rusqlite::params_from_iter(params.iter()), from_row)?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok((rows, total))
}

/// The `WHERE` condition of an object query (model, owner, filter) and its parameters.
fn object_condition(query: &ObjectQuery) -> (String, Vec<rusqlite::types::Value>) {
    let mut condition = String::from("model = ?");
    let mut params: Vec<rusqlite::types::Value> = vec![query.model.clone().into()];
    if let Some(owner) = &query.owner {
        condition.push_str(" AND owner_id = ?");
        params.push(owner.clone().into());
    }
    if let Some(filter) = &query.filter {
        condition.push_str(" AND (");
        condition.push_str(&filter.sqlite.sql);
        condition.push(')');
        params.extend(filter.sqlite.params.iter().cloned());
    }
    (condition, params)
}

/// Claim the unique values of an object; a taken one is a conflict naming its field.
fn claim_unique(conn: &Connection, object: &ObjectWrite) -> StoreResult<()> {
    execute(
        conn,
        "DELETE FROM object_unique_values WHERE object_id = ?1",
        [&object.record.id],
    )?;
    for (field, value) in &object.unique {
        let claimed = execute(
            conn,
            "INSERT INTO object_unique_values (model, field, value, object_id) VALUES (?1, ?2, ?3, ?4)",
            params![object.record.model, field, value, object.record.id],
        );
        match claimed {
            Ok(_) => {}
            Err(StoreError::Conflict { .. }) => {
                return Err(StoreError::Conflict {
                    constraint: field.clone(),
                });
            }
            Err(err) => return Err(err),
        }
    }
    Ok(())
}

/// `name`, or the first free numbered form of it. Numbering starts past the count of
/// numbered names already there, so a name uploaded again and again costs one or two checks,
/// not one per earlier upload.
fn free_name(
    conn: &Connection,
    bucket_id: &str,
    name: &str,
    taken: &dyn Fn(&str) -> StoreResult<bool>,
) -> StoreResult<String> {
    if !taken(name)? {
        return Ok(name.to_string());
    }
    let escape = |s: &str| {
        s.replace('\\', "\\\\")
            .replace('%', "\\%")
            .replace('_', "\\_")
    };
    let pattern = match numbered_name(name, 0).rsplit_once("-0") {
        Some((stem, ext)) => format!("{}-%{}", escape(stem), escape(ext)),
        None => format!("{}-%", escape(name)),
    };
    let numbered: i64 = conn
        .prepare_cached(
            "SELECT COUNT(*) FROM files WHERE bucket_id = ?1 AND file_name LIKE ?2 ESCAPE '\\'",
        )
        .and_then(|mut stmt| stmt.query_row(params![bucket_id, pattern], |row| row.get(0)))
        .map_err(db_error)?;
    let mut n = u32::try_from(numbered).unwrap_or(0) + 1;
    loop {
        let candidate = numbered_name(name, n);
        if !taken(&candidate)? {
            return Ok(candidate);
        }
        n += 1;
    }
}

fn insert_session(conn: &Connection, s: &NewSession) -> StoreResult<()> {
    let agent = serde_json::to_string(&s.user_agent).map_err(backend)?;
    conn.prepare_cached(
        "INSERT INTO sessions (id, user_id, token_hash, user_agent, created_at, last_seen_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?5)",
    )
    .and_then(|mut stmt| stmt.execute(params![s.id, s.user_id, s.token_hash, agent, s.now]))
    .map_err(db_error)?;
    // Evict the oldest sessions beyond the per-user cap.
    conn.prepare_cached(
        "DELETE FROM sessions WHERE user_id = ?1 AND id NOT IN
           (SELECT id FROM sessions WHERE user_id = ?1 ORDER BY created_at DESC, id DESC LIMIT ?2)",
    )
    .and_then(|mut stmt| stmt.execute(params![s.user_id, i64::from(s.max_per_user)]))
    .map_err(db_error)?;
    execute(
        conn,
        "UPDATE users SET last_login_at = ?2 WHERE id = ?1",
        params![s.user_id, s.now],
    )?;
    Ok(())
}

fn insert_token(conn: &Connection, t: &NewToken) -> StoreResult<()> {
    execute(
        conn,
        "INSERT INTO tokens (id, user_id, kind, token_hash, source_id, data, created_at, expires_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        params![
            t.id,
            t.user_id,
            t.kind.as_str(),
            t.token_hash,
            t.source_id,
            t.data,
            t.now,
            t.expires_at
        ],
    )?;
    Ok(())
}

fn insert_mail(conn: &Connection, m: &NewMail) -> StoreResult<()> {
    execute(
        conn,
        "INSERT INTO mail_outbox (id, recipient, subject, text_body, html_body, created_at, next_attempt_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6)",
        params![m.id, m.to, m.subject, m.text, m.html, m.now],
    )?;
    Ok(())
}

/// Run a cached statement; the number of rows changed.
fn execute(conn: &Connection, sql: &str, params: impl rusqlite::Params) -> StoreResult<usize> {
    conn.prepare_cached(sql)
        .and_then(|mut stmt| stmt.execute(params))
        .map_err(db_error)
}

/// Spend a token if unspent; `false` when it was already spent.
fn spend_token(conn: &Connection, id: &str, now: Millis) -> StoreResult<bool> {
    let changed = execute(
        conn,
        "UPDATE tokens SET used_at = ?2 WHERE id = ?1 AND used_at IS NULL",
        params![id, now],
    )?;
    Ok(changed == 1)
}

fn delete_reset_links(conn: &Connection, user_id: &str) -> StoreResult<()> {
    execute(
        conn,
        "DELETE FROM tokens WHERE user_id = ?1 AND kind IN ('reset', 'reset_grant') AND used_at IS NULL",
        params![user_id],
    )?;
    Ok(())
}

/// Refused part-way: roll the unit back and answer `false`.
#[derive(Debug, thiserror::Error)]
#[error("spent")]
struct Spent;

fn is_spent(err: &StoreError) -> bool {
    matches!(err, StoreError::Backend(source) if source.is::<Spent>())
}

#[async_trait]
impl Store for SqliteStore {
    async fn insert_user(
        &self,
        user: NewUser,
        link: Option<(NewToken, NewMail)>,
        session: Option<NewSession>,
    ) -> StoreResult<()> {
        let data = serde_json::to_string(&user.data).map_err(backend)?;
        self.write(move |conn| {
            execute(
                conn,
                "INSERT INTO users (id, email, email_key, email_verified, password_hash, provider,
                    provider_user_id, data, sign_up_at, last_login_at, created_at, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, 'altogic', ?1, ?6, ?7, ?7, ?7, ?7)",
                params![
                    user.id,
                    user.email,
                    user.email_key,
                    user.email_verified,
                    user.password_hash,
                    data,
                    user.now
                ],
            )?;
            if let Some((token, mail)) = &link {
                insert_token(conn, token)?;
                insert_mail(conn, mail)?;
            }
            if let Some(session) = &session {
                insert_session(conn, session)?;
            }
            Ok(())
        })
        .await
    }

    async fn user_by_id(&self, id: &str) -> StoreResult<Option<UserRecord>> {
        let id = id.to_string();
        self.read(move |conn| {
            conn.prepare_cached("SELECT * FROM users WHERE id = ?1")?
                .query_row([id], user_from_row)
                .optional()
        })
        .await
    }

    async fn user_by_email(&self, email_key: &str) -> StoreResult<Option<UserRecord>> {
        let key = email_key.to_string();
        self.read(move |conn| {
            conn.prepare_cached("SELECT * FROM users WHERE email_key = ?1")?
                .query_row([key], user_from_row)
                .optional()
        })
        .await
    }

    async fn delete_user(&self, id: &str) -> StoreResult<bool> {
        let id = id.to_string();
        self.write(move |conn| Ok(execute(conn, "DELETE FROM users WHERE id = ?1", [id])? == 1))
            .await
    }

    async fn set_email_verified(&self, user_id: &str, now: Millis) -> StoreResult<()> {
        let user_id = user_id.to_string();
        self.write(move |conn| {
            execute(
                conn,
                "UPDATE users SET email_verified = 1, updated_at = ?2 WHERE id = ?1 AND email_verified = 0",
                params![user_id, now],
            )?;
            Ok(())
        })
        .await
    }

    async fn record_sign_in(&self, session: NewSession, rehash: Option<String>) -> StoreResult<()> {
        self.write(move |conn| {
            insert_session(conn, &session)?;
            if let Some(hash) = &rehash {
                execute(
                    conn,
                    "UPDATE users SET password_hash = ?2 WHERE id = ?1",
                    params![session.user_id, hash],
                )?;
            }
            Ok(())
        })
        .await
    }

    async fn change_password(
        &self,
        user_id: &str,
        password_hash: &str,
        keep_session: Option<&str>,
        now: Millis,
    ) -> StoreResult<()> {
        let user_id = user_id.to_string();
        let hash = password_hash.to_string();
        let keep = keep_session.map(String::from);
        self.write(move |conn| {
            execute(
                conn,
                "UPDATE users SET password_hash = ?2, updated_at = ?3 WHERE id = ?1",
                params![user_id, hash, now],
            )?;
            execute(
                conn,
                "DELETE FROM sessions WHERE user_id = ?1 AND id IS NOT ?2",
                params![user_id, keep],
            )?;
            delete_reset_links(conn, &user_id)
        })
        .await
    }

    async fn change_email(
        &self,
        user_id: &str,
        email: &str,
        email_key: &str,
        now: Millis,
    ) -> StoreResult<()> {
        let (user_id, email, key) = (
            user_id.to_string(),
            email.to_string(),
            email_key.to_string(),
        );
        self.write(move |conn| {
            execute(
                conn,
                "UPDATE users SET email = ?2, email_key = ?3, email_verified = 1, updated_at = ?4
                 WHERE id = ?1",
                params![user_id, email, key, now],
            )?;
            Ok(())
        })
        .await
    }

    async fn session_by_token(
        &self,
        token_hash: &str,
    ) -> StoreResult<Option<(SessionRecord, UserRecord)>> {
        let hash = token_hash.to_string();
        self.read(move |conn| {
            conn.prepare_cached(
                "SELECT u.*, s.id AS s_id, s.user_id AS s_user_id, s.user_agent AS s_user_agent,
                        s.created_at AS s_created_at, s.last_seen_at AS s_last_seen_at
                 FROM sessions s JOIN users u ON u.id = s.user_id WHERE s.token_hash = ?1",
            )?
            .query_row([hash], |row| {
                Ok((session_from_row(row, "s_")?, user_from_row(row)?))
            })
            .optional()
        })
        .await
    }

    async fn touch_session(&self, id: &str, now: Millis) -> StoreResult<()> {
        let id = id.to_string();
        self.write(move |conn| {
            execute(
                conn,
                "UPDATE sessions SET last_seen_at = ?2 WHERE id = ?1",
                params![id, now],
            )?;
            Ok(())
        })
        .await
    }

    async fn sessions_of_user(&self, user_id: &str) -> StoreResult<Vec<SessionRecord>> {
        let user_id = user_id.to_string();
        self.read(move |conn| {
            conn.prepare_cached(
                "SELECT * FROM sessions WHERE user_id = ?1 ORDER BY created_at ASC, id ASC",
            )?
            .query_map([user_id], |row| session_from_row(row, ""))?
            .collect()
        })
        .await
    }

    async fn delete_session(&self, user_id: &str, session: SessionRef) -> StoreResult<bool> {
        let user_id = user_id.to_string();
        self.write(move |conn| {
            let changed = match session {
                SessionRef::Id(id) => execute(
                    conn,
                    "DELETE FROM sessions WHERE user_id = ?1 AND id = ?2",
                    params![user_id, id],
                )?,
                SessionRef::TokenHash(hash) => execute(
                    conn,
                    "DELETE FROM sessions WHERE user_id = ?1 AND token_hash = ?2",
                    params![user_id, hash],
                )?,
            };
            Ok(changed == 1)
        })
        .await
    }

    async fn delete_sessions_of_user(&self, user_id: &str, keep: Option<&str>) -> StoreResult<u64> {
        let (user_id, keep) = (user_id.to_string(), keep.map(String::from));
        self.write(move |conn| {
            let n = execute(
                conn,
                "DELETE FROM sessions WHERE user_id = ?1 AND id IS NOT ?2",
                params![user_id, keep],
            )?;
            Ok(n as u64)
        })
        .await
    }

    async fn delete_expired_sessions(
        &self,
        created_before: Millis,
        idle_before: Millis,
    ) -> StoreResult<u64> {
        self.write(move |conn| {
            let n = execute(
                conn,
                "DELETE FROM sessions WHERE created_at < ?1 OR last_seen_at < ?2",
                params![created_before, idle_before],
            )?;
            Ok(n as u64)
        })
        .await
    }

    async fn issue_link(&self, token: NewToken, mail: NewMail) -> StoreResult<()> {
        self.write(move |conn| {
            execute(
                conn,
                "DELETE FROM tokens WHERE user_id = ?1 AND kind = ?2 AND used_at IS NULL",
                params![token.user_id, token.kind.as_str()],
            )?;
            insert_token(conn, &token)?;
            insert_mail(conn, &mail)
        })
        .await
    }

    async fn insert_token(&self, token: NewToken) -> StoreResult<()> {
        self.write(move |conn| insert_token(conn, &token)).await
    }

    async fn token_by_hash(&self, token_hash: &str) -> StoreResult<Option<TokenRecord>> {
        let hash = token_hash.to_string();
        let found = self
            .read(move |conn| {
                conn.prepare_cached("SELECT * FROM tokens WHERE token_hash = ?1")?
                    .query_row([hash], token_from_row)
                    .optional()
            })
            .await?;
        Ok(found.flatten())
    }

    async fn redeem_grant(&self, redeem: RedeemGrant) -> StoreResult<bool> {
        let outcome = self
            .write(move |conn| {
                let now = redeem.session.now;
                let user_id = &redeem.session.user_id;
                if !spend_token(conn, &redeem.grant_id, now)? {
                    return Err(backend(Spent));
                }
                if let Some(source) = &redeem.source_id
                    && !spend_token(conn, source, now)?
                {
                    return Err(backend(Spent));
                }
                if redeem.void_password {
                    execute(
                        conn,
                        "UPDATE users SET password_hash = NULL, updated_at = ?2 WHERE id = ?1",
                        params![user_id, now],
                    )?;
                    execute(conn, "DELETE FROM sessions WHERE user_id = ?1", [user_id])?;
                }
                if redeem.mark_verified {
                    execute(
                        conn,
                        "UPDATE users SET email_verified = 1, updated_at = ?2 WHERE id = ?1 AND email_verified = 0",
                        params![user_id, now],
                    )?;
                }
                insert_session(conn, &redeem.session)
            })
            .await;
        match outcome {
            Ok(()) => Ok(true),
            Err(err) if is_spent(&err) => Ok(false),
            Err(err) => Err(err),
        }
    }

    async fn reset_password(&self, reset: ResetPassword) -> StoreResult<bool> {
        let outcome = self
            .write(move |conn| {
                if !spend_token(conn, &reset.grant_id, reset.now)? {
                    return Err(backend(Spent));
                }
                if let Some(source) = &reset.source_id
                    && !spend_token(conn, source, reset.now)?
                {
                    return Err(backend(Spent));
                }
                // Completing a reset proves the address.
                execute(
                    conn,
                    "UPDATE users SET password_hash = ?2, email_verified = 1, updated_at = ?3 WHERE id = ?1",
                    params![reset.user_id, reset.password_hash, reset.now],
                )?;
                execute(
                    conn,
                    "DELETE FROM sessions WHERE user_id = ?1",
                    [&reset.user_id],
                )?;
                delete_reset_links(conn, &reset.user_id)
            })
            .await;
        match outcome {
            Ok(()) => Ok(true),
            Err(err) if is_spent(&err) => Ok(false),
            Err(err) => Err(err),
        }
    }

    async fn enqueue_mail(&self, mail: NewMail) -> StoreResult<()> {
        self.write(move |conn| insert_mail(conn, &mail)).await
    }

    async fn claim_mail(
        &self,
        now: Millis,
        lease_until: Millis,
        limit: u32,
    ) -> StoreResult<Vec<MailRecord>> {
        // The one writer runs claims one after another, so a claim sees every earlier lease.
        self.write(move |conn| {
            conn.prepare_cached(
                "UPDATE mail_outbox SET claimed_until = ?2
                 WHERE rowid IN (
                     SELECT rowid FROM mail_outbox
                     WHERE sent_at IS NULL AND next_attempt_at <= ?1
                       AND (claimed_until IS NULL OR claimed_until <= ?1)
                     ORDER BY next_attempt_at ASC, rowid ASC LIMIT ?3)
                 RETURNING *",
            )
            .and_then(|mut statement| {
                let mut claimed = statement
                    .query_map(params![now, lease_until, i64::from(limit)], |row| {
                        Ok((row.get::<_, i64>("next_attempt_at")?, mail_from_row(row)?))
                    })?
                    .collect::<rusqlite::Result<Vec<_>>>()?;
                // RETURNING gives rows in no particular order.
                claimed.sort_by_key(|(due, mail)| (*due, mail.created_at));
                Ok(claimed.into_iter().map(|(_, mail)| mail).collect())
            })
            .map_err(db_error)
        })
        .await
    }

    async fn mark_mail_sent(&self, id: &str, now: Millis) -> StoreResult<()> {
        let id = id.to_string();
        self.write(move |conn| {
            execute(
                conn,
                "UPDATE mail_outbox SET sent_at = ?2, attempts = attempts + 1, claimed_until = NULL
                 WHERE id = ?1",
                params![id, now],
            )?;
            Ok(())
        })
        .await
    }

    async fn mark_mail_failed(
        &self,
        id: &str,
        next_attempt_at: Millis,
        error: &str,
    ) -> StoreResult<()> {
        let (id, error) = (id.to_string(), error.to_string());
        self.write(move |conn| {
            execute(
                conn,
                "UPDATE mail_outbox SET attempts = attempts + 1, next_attempt_at = ?2, last_error = ?3,
                     claimed_until = NULL
                 WHERE id = ?1",
                params![id, next_attempt_at, error],
            )?;
            Ok(())
        })
        .await
    }

    async fn sent_mail(&self, limit: u32) -> StoreResult<Vec<MailRecord>> {
        self.read(move |conn| {
            conn.prepare_cached(
                "SELECT * FROM mail_outbox WHERE sent_at IS NOT NULL
                 ORDER BY sent_at DESC, created_at DESC, rowid DESC LIMIT ?1",
            )?
            .query_map([i64::from(limit)], mail_from_row)?
            .collect()
        })
        .await
    }

    async fn client_keys(&self) -> StoreResult<Vec<ClientKeyRecord>> {
        self.read(|conn| {
            conn.prepare_cached("SELECT * FROM client_keys ORDER BY created_at ASC, rowid ASC")?
                .query_map([], |row| {
                    Ok(ClientKeyRecord {
                        key: row.get("key")?,
                        name: row.get("name")?,
                        created_at: row.get("created_at")?,
                        revoked_at: row.get("revoked_at")?,
                    })
                })?
                .collect()
        })
        .await
    }

    async fn insert_client_key(&self, key: &str, name: &str, now: Millis) -> StoreResult<()> {
        let (key, name) = (key.to_string(), name.to_string());
        self.write(move |conn| {
            execute(
                conn,
                "INSERT INTO client_keys (key, name, created_at) VALUES (?1, ?2, ?3)",
                params![key, name, now],
            )?;
            Ok(())
        })
        .await
    }

    async fn revoke_client_key(&self, key: &str, now: Millis) -> StoreResult<bool> {
        let key = key.to_string();
        self.write(move |conn| {
            let n = execute(
                conn,
                "UPDATE client_keys SET revoked_at = ?2 WHERE key = ?1 AND revoked_at IS NULL",
                params![key, now],
            )?;
            Ok(n == 1)
        })
        .await
    }

    async fn update_user_data(
        &self,
        user_id: &str,
        patch: Map<String, Value>,
        now: Millis,
    ) -> StoreResult<Option<UserRecord>> {
        let user_id = user_id.to_string();
        self.write(move |conn| {
            let current: Option<String> = conn
                .prepare_cached("SELECT data FROM users WHERE id = ?1")
                .and_then(|mut stmt| stmt.query_row([&user_id], |row| row.get(0)).optional())
                .map_err(db_error)?;
            let Some(current) = current else {
                return Ok(None);
            };
            let mut data = json_object(&current);
            data.extend(patch);
            let text = serde_json::to_string(&data).map_err(backend)?;
            execute(
                conn,
                "UPDATE users SET data = ?2, updated_at = ?3 WHERE id = ?1",
                params![user_id, text, now],
            )?;
            conn.prepare_cached("SELECT * FROM users WHERE id = ?1")
                .and_then(|mut stmt| stmt.query_row([&user_id], user_from_row).optional())
                .map_err(db_error)
        })
        .await
    }

    async fn bucket(&self, id_or_name: &str) -> StoreResult<Option<BucketRecord>> {
        let key = id_or_name.to_string();
        self.read(move |conn| {
            conn.prepare_cached(
                "SELECT * FROM buckets WHERE id = ?1
                 UNION ALL SELECT * FROM buckets WHERE name = ?1 AND id <> ?1 LIMIT 1",
            )?
            .query_row([key], bucket_from_row)
            .optional()
        })
        .await
    }

    async fn insert_file(&self, file: FileRecord) -> StoreResult<FileRecord> {
        let tags = serde_json::to_string(&file.tags).map_err(backend)?;
        self.write(move |conn| {
            let taken = |name: &str| -> StoreResult<bool> {
                conn.prepare_cached("SELECT 1 FROM files WHERE bucket_id = ?1 AND file_name = ?2")
                    .and_then(|mut stmt| stmt.exists(params![file.bucket_id, name]))
                    .map_err(db_error)
            };
            let name = free_name(conn, &file.bucket_id, &file.file_name, &taken)?;
            execute(
                conn,
                "INSERT INTO files (id, bucket_id, file_name, blob_key, size, encoding, mime_type,
                    etag, is_public, user_id, tags, uploaded_at, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?12)",
                params![
                    file.id,
                    file.bucket_id,
                    name,
                    file.blob_key,
                    file.size,
                    file.encoding,
                    file.mime_type,
                    file.etag,
                    file.is_public,
                    file.user_id,
                    tags,
                    file.uploaded_at
                ],
            )?;
            Ok(FileRecord {
                file_name: name,
                ..file
            })
        })
        .await
    }

    async fn file(&self, bucket_id: &str, file_id: &str) -> StoreResult<Option<FileRecord>> {
        let (bucket_id, file_id) = (bucket_id.to_string(), file_id.to_string());
        self.read(move |conn| {
            conn.prepare_cached("SELECT * FROM files WHERE bucket_id = ?1 AND id = ?2")?
                .query_row([bucket_id, file_id], file_from_row)
                .optional()
        })
        .await
    }

    async fn file_by_key(
        &self,
        bucket_id: &str,
        id_or_name: &str,
    ) -> StoreResult<Option<FileRecord>> {
        let (bucket_id, key) = (bucket_id.to_string(), id_or_name.to_string());
        self.read(move |conn| {
            conn.prepare_cached(
                "SELECT * FROM files WHERE bucket_id = ?1 AND id = ?2
                 UNION ALL SELECT * FROM files WHERE bucket_id = ?1 AND file_name = ?2 AND id <> ?2
                 LIMIT 1",
            )?
            .query_row([bucket_id, key], file_from_row)
            .optional()
        })
        .await
    }

    async fn delete_file(&self, bucket_id: &str, file_id: &str) -> StoreResult<Option<String>> {
        let (bucket_id, file_id) = (bucket_id.to_string(), file_id.to_string());
        self.write(move |conn| {
            conn.prepare_cached(
                "DELETE FROM files WHERE bucket_id = ?1 AND id = ?2 RETURNING blob_key",
            )
            .and_then(|mut stmt| {
                stmt.query_row([bucket_id, file_id], |row| row.get(0))
                    .optional()
            })
            .map_err(db_error)
        })
        .await
    }

    async fn insert_bucket(&self, bucket: BucketRecord) -> StoreResult<()> {
        let tags = serde_json::to_string(&bucket.tags).map_err(backend)?;
        self.write(move |conn| {
            execute(
                conn,
                "INSERT INTO buckets (id, name, is_public, user_id, tags, created_at, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![
                    bucket.id,
                    bucket.name,
                    bucket.is_public,
                    bucket.user_id,
                    tags,
                    bucket.created_at,
                    bucket.updated_at
                ],
            )
            .map_err(|err| match err {
                StoreError::Conflict { .. } => StoreError::Conflict {
                    constraint: "name".into(),
                },
                other => other,
            })?;
            Ok(())
        })
        .await
    }

    async fn query_objects(
        &self,
        query: ObjectQuery,
    ) -> StoreResult<(Vec<ObjectRecord>, Option<u64>)> {
        let (condition, params) = object_condition(&query);
        self.read(move |conn| {
            paged(
                conn,
                &format!("objects WHERE {condition}"),
                "*",
                params,
                &query.order.sqlite,
                (query.limit, query.offset, query.count),
                object_from_row,
            )
        })
        .await
    }

    async fn scan_objects(&self, query: ObjectQuery, mut visit: ObjectVisitor) -> StoreResult<()> {
        let (condition, params) = object_condition(&query);
        let sql = format!(
            "SELECT * FROM objects WHERE {condition} {}",
            query.order.sqlite
        );
        self.read_blocking(move |conn| {
            let mut statement = conn.prepare_cached(&sql)?;
            let mut rows = statement.query(rusqlite::params_from_iter(params.iter()))?;
            while let Some(row) = rows.next()? {
                if !visit(object_from_row(row)?) {
                    break;
                }
            }
            Ok(())
        })
        .await
    }

    async fn objects_by_ids(&self, ids: Vec<String>) -> StoreResult<Vec<ObjectRecord>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        self.read(move |conn| {
            let ids = serde_json::Value::from(ids).to_string();
            conn.prepare_cached(
                "SELECT * FROM objects WHERE id IN (SELECT value FROM json_each(?1))",
            )?
            .query_map([ids], object_from_row)?
            .collect()
        })
        .await
    }

    async fn ensure_indexes(&self, indexes: Vec<ObjectIndex>) -> StoreResult<()> {
        let mut wanted = Vec::new();
        for index in &indexes {
            let columns = index
                .is_safe()
                .then(|| sql_filter::index_columns(&index.fields, &index.sort).ok())
                .flatten()
                .ok_or_else(|| backend(BadIndex(index.name())))?;
            wanted.push((index.name(), columns.join(", ")));
        }
        self.write(move |conn| {
            let existing = conn
                .prepare_cached(
                    "SELECT name FROM sqlite_master WHERE type = 'index' AND name LIKE 'objects_by:%'",
                )
                .and_then(|mut s| {
                    s.query_map([], |row| row.get::<_, String>(0))?
                        .collect::<rusqlite::Result<Vec<_>>>()
                })
                .map_err(db_error)?;
            for name in existing
                .iter()
                .filter(|n| !wanted.iter().any(|(w, _)| w == *n))
            {
                conn.execute_batch(&format!("DROP INDEX \"{name}\""))
                    .map_err(db_error)?;
            }
            for (name, columns) in &wanted {
                conn.execute_batch(&format!(
                    "CREATE INDEX IF NOT EXISTS \"{name}\" ON objects (model, {columns})"
                ))
                .map_err(db_error)?;
            }
            Ok(())
        })
        .await
    }

    async fn query_users(&self, query: UserQuery) -> StoreResult<(Vec<UserRecord>, Option<u64>)> {
        let mut params: Vec<rusqlite::types::Value> = vec![
            query.caller.clone().unwrap_or_default().into(),
            serde_json::Value::from(query.public_fields.clone())
                .to_string()
                .into(),
        ];
        let condition = match &query.filter {
            Some(filter) => {
                params.extend(filter.sqlite.params.iter().cloned());
                filter.sqlite.sql.clone()
            }
            None => "1".into(),
        };
        self.read(move |conn| {
            let (ids, total) = paged(
                conn,
                &format!("{VISIBLE_USERS} WHERE {condition}"),
                "id",
                params,
                &query.order.sqlite,
                (query.limit, query.offset, query.count),
                |row| row.get::<_, String>(0),
            )?;
            let mut users = conn
                .prepare_cached(
                    "SELECT * FROM users WHERE id IN (SELECT value FROM json_each(?1))",
                )?
                .query_map(
                    [serde_json::Value::from(ids.clone()).to_string()],
                    user_from_row,
                )?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            users.sort_by_key(|u| ids.iter().position(|id| *id == u.id));
            Ok((users, total))
        })
        .await
    }

    async fn update_bucket(
        &self,
        bucket: BucketRecord,
        files_public: Option<bool>,
    ) -> StoreResult<()> {
        let tags = serde_json::to_string(&bucket.tags).map_err(backend)?;
        self.write(move |conn| {
            execute(
                conn,
                "UPDATE buckets SET name = ?2, is_public = ?3, tags = ?4, updated_at = ?5 WHERE id = ?1",
                params![bucket.id, bucket.name, bucket.is_public, tags, bucket.updated_at],
            )
            .map_err(|err| match err {
                StoreError::Conflict { .. } => StoreError::Conflict {
                    constraint: "name".into(),
                },
                other => other,
            })?;
            if let Some(public) = files_public {
                execute(
                    conn,
                    "UPDATE files SET is_public = ?2, updated_at = ?3 WHERE bucket_id = ?1",
                    params![bucket.id, public, bucket.updated_at],
                )?;
            }
            Ok(())
        })
        .await
    }

    async fn delete_bucket_files(
        &self,
        bucket_id: &str,
        bucket_too: bool,
    ) -> StoreResult<Vec<String>> {
        let bucket_id = bucket_id.to_string();
        self.write(move |conn| {
            let keys = conn
                .prepare_cached("DELETE FROM files WHERE bucket_id = ?1 RETURNING blob_key")
                .and_then(|mut stmt| {
                    stmt.query_map([&bucket_id], |row| row.get(0))?
                        .collect::<rusqlite::Result<Vec<String>>>()
                })
                .map_err(db_error)?;
            if bucket_too {
                execute(conn, "DELETE FROM buckets WHERE id = ?1", [&bucket_id])?;
            }
            Ok(keys)
        })
        .await
    }

    async fn update_file(&self, file: FileRecord) -> StoreResult<FileRecord> {
        let tags = serde_json::to_string(&file.tags).map_err(backend)?;
        self.write(move |conn| {
            let taken = |name: &str| -> StoreResult<bool> {
                conn.prepare_cached(
                    "SELECT 1 FROM files WHERE bucket_id = ?1 AND file_name = ?2 AND id <> ?3",
                )
                .and_then(|mut stmt| stmt.exists(params![file.bucket_id, name, file.id]))
                .map_err(db_error)
            };
            let name = free_name(conn, &file.bucket_id, &file.file_name, &taken)?;
            execute(
                conn,
                "UPDATE files SET bucket_id = ?2, file_name = ?3, blob_key = ?4, size = ?5,
                    mime_type = ?6, etag = ?7, is_public = ?8, tags = ?9, updated_at = ?10
                 WHERE id = ?1",
                params![
                    file.id,
                    file.bucket_id,
                    name,
                    file.blob_key,
                    file.size,
                    file.mime_type,
                    file.etag,
                    file.is_public,
                    tags,
                    file.updated_at
                ],
            )?;
            Ok(FileRecord {
                file_name: name,
                ..file
            })
        })
        .await
    }

    async fn query_buckets(
        &self,
        query: StorageQuery,
    ) -> StoreResult<(Vec<BucketRecord>, Option<u64>)> {
        self.read(move |conn| storage::query_buckets(conn, &query))
            .await
    }

    async fn query_files(
        &self,
        query: StorageQuery,
    ) -> StoreResult<(Vec<FileRecord>, Option<u64>)> {
        self.read(move |conn| storage::query_files(conn, &query))
            .await
    }

    async fn storage_stats(
        &self,
        reader: Option<&str>,
        bucket_id: Option<&str>,
    ) -> StoreResult<StorageStats> {
        let (reader, bucket_id) = (reader.map(String::from), bucket_id.map(String::from));
        self.read(move |conn| storage::storage_stats(conn, reader.as_deref(), bucket_id.as_deref()))
            .await
    }

    async fn delete_owned_files(
        &self,
        bucket_id: &str,
        owner: &str,
        keys: Vec<String>,
    ) -> StoreResult<Vec<String>> {
        let (bucket_id, owner) = (bucket_id.to_string(), owner.to_string());
        let keys = serde_json::to_string(&keys).map_err(backend)?;
        self.write(move |conn| {
            storage::delete_owned_files(conn, &bucket_id, &owner, &keys).map_err(db_error)
        })
        .await
    }

    async fn insert_objects(&self, objects: Vec<ObjectWrite>) -> StoreResult<()> {
        self.write(move |conn| {
            for object in &objects {
                let r = &object.record;
                let data = serde_json::to_string(&r.data).map_err(backend)?;
                execute(
                    conn,
                    "INSERT INTO objects (id, model, owner_id, data, version, created_at, updated_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                    params![r.id, r.model, r.owner_id, data, r.version, r.created_at, r.updated_at],
                )?;
                claim_unique(conn, object)?;
            }
            Ok(())
        })
        .await
    }

    async fn object(&self, model: &str, id: &str) -> StoreResult<Option<ObjectRecord>> {
        let (model, id) = (model.to_string(), id.to_string());
        self.read(move |conn| {
            conn.prepare_cached("SELECT * FROM objects WHERE id = ?1 AND model = ?2")?
                .query_row([id, model], object_from_row)
                .optional()
        })
        .await
    }

    async fn replace_object(
        &self,
        object: ObjectWrite,
        expected_version: i64,
    ) -> StoreResult<bool> {
        self.write(move |conn| {
            let r = &object.record;
            let data = serde_json::to_string(&r.data).map_err(backend)?;
            let changed = execute(
                conn,
                "UPDATE objects SET data = ?3, version = ?4, updated_at = ?5
                 WHERE id = ?1 AND model = ?2 AND version = ?6",
                params![
                    r.id,
                    r.model,
                    data,
                    r.version,
                    r.updated_at,
                    expected_version
                ],
            )?;
            if changed == 0 {
                return Ok(false);
            }
            claim_unique(conn, &object)?;
            Ok(true)
        })
        .await
    }

    async fn delete_object(&self, model: &str, id: &str) -> StoreResult<bool> {
        let (model, id) = (model.to_string(), id.to_string());
        self.write(move |conn| {
            Ok(execute(
                conn,
                "DELETE FROM objects WHERE id = ?1 AND model = ?2",
                params![id, model],
            )? == 1)
        })
        .await
    }

    async fn ping(&self) -> StoreResult<()> {
        self.read(|conn| conn.prepare_cached("SELECT 1")?.query_row([], |_| Ok(())))
            .await
    }
}
