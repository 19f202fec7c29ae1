//! PostgreSQL backend through sqlx (runtime queries only, so builds need no database): a pool
//! sized by `database.max_connections`, one transaction per unit of work, migrations of its own
//! in `migrations/postgres/` applied under an advisory lock so that several nodes may start
//! at once. The `Store` impl is here, with the accounts, sessions, links, mail and keys
//! statements (their rows and shared steps in `accounts.rs`); files and buckets in
//! `storage.rs`; objects, indexes and the users query in `objects.rs`; queries built per call
//! in `sql.rs`, their filters and sorts compiled by `store/pg_filter.rs`.

mod accounts;
mod counters;
mod objects;
mod pool;
mod sql;
mod storage;

use std::time::Duration;

use async_trait::async_trait;
use serde_json::{Map, Value};
use sqlx_core::connection::Connection;
use sqlx_core::query::query;
use sqlx_core::raw_sql::raw_sql;
use sqlx_core::row::Row;
use sqlx_postgres::PgRow;

use self::accounts::{
    delete_reset_links, insert_mail, insert_session, insert_token, json_object, mail_from_row,
    session_from_row, spend_grant, token_from_row, user_from_row,
};
use self::pool::{Pool, PooledConnection};
use self::sql::{Bind, Sql, count, order_by, push_page};

use super::{
    BucketRecord, ClientKeyRecord, FileRecord, MailRecord, Millis, NewMail, NewSession, NewToken,
    NewUser, ObjectIndex, ObjectQuery, ObjectRecord, ObjectVisitor, ObjectWrite, RedeemGrant,
    ResetPassword, SessionRecord, SessionRef, StorageQuery, StorageStats, Store, StoreError,
    StoreResult, TokenRecord, UserQuery, UserRecord,
};

/// Migrations, applied in order: `(version, name, SQL)`, the same numbering as SQLite's.
const MIGRATIONS: &[(i32, &str, &str)] = &[
    (
        1,
        "0001_create_auth",
        include_str!("../../../migrations/postgres/0001_create_auth.sql"),
    ),
    (
        2,
        "0002_create_storage",
        include_str!("../../../migrations/postgres/0002_create_storage.sql"),
    ),
    (
        3,
        "0003_create_objects",
        include_str!("../../../migrations/postgres/0003_create_objects.sql"),
    ),
    (
        4,
        "0004_add_mail_leases",
        include_str!("../../../migrations/postgres/0004_add_mail_leases.sql"),
    ),
    (
        5,
        "0005_create_rate_counters",
        include_str!("../../../migrations/postgres/0005_create_rate_counters.sql"),
    ),
];

/// The schema level this build migrates to: the last migration's version.
pub(super) fn schema_level() -> i64 {
    MIGRATIONS
        .last()
        .map_or(0, |(version, _, _)| i64::from(*version))
}

/// A pooled connection taken out this long ago or longer is pinged before use (`pool.rs`).
const PING_AFTER_IDLE: Duration = Duration::from_secs(1);

/// Key of the advisory lock that serialises migrations and index changes across nodes
/// (the bytes of "basalt").
const SCHEMA_LOCK: i64 = 0x6261_7361_6c74;

/// Map every row, stopping at the first that does not decode.
fn rows<T>(rows: &[PgRow], from_row: fn(&PgRow) -> StoreResult<T>) -> StoreResult<Vec<T>> {
    rows.iter().map(from_row).collect()
}

/// PostgreSQL store; cheap to clone.
#[derive(Clone)]
pub struct PostgresStore {
    pool: Pool,
}

fn backend(err: impl std::error::Error + Send + Sync + 'static) -> StoreError {
    StoreError::Backend(Box::new(err))
}

/// SQLSTATE `query_canceled`: `statement_timeout` (or an operator) cancelled the statement.
const QUERY_CANCELED: &str = "57014";

/// Unique violations become `Conflict` named as the SQLite backend names them (`email` for
/// the address, `unique` otherwise), cancelled statements `TimedOut`; everything else
/// `Backend`.
fn db_error(err: sqlx_core::Error) -> StoreError {
    pool::note_failure(&err);
    if let sqlx_core::Error::Database(db) = &err
        && db.code().as_deref() == Some(QUERY_CANCELED)
    {
        return StoreError::TimedOut;
    }
    if let sqlx_core::Error::Database(db) = &err
        && db.is_unique_violation()
    {
        let constraint = if db.constraint().unwrap_or_default().contains("email") {
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

impl PostgresStore {
    /// Connect with a pool of at most `max_connections` and apply pending migrations; no
    /// statement time limit (operator tools).
    pub async fn open(url: &str, max_connections: u32) -> StoreResult<Self> {
        Self::open_with_timeout(url, max_connections, None).await
    }

    /// As [`open`](Self::open), every connection cancelling statements that run longer than
    /// `statement_timeout` (`StoreError::TimedOut`). Migrations and index builds lift it for
    /// their own transaction.
    pub async fn open_with_timeout(
        url: &str,
        max_connections: u32,
        statement_timeout: Option<Duration>,
    ) -> StoreResult<Self> {
        Self::connect(url, max_connections, statement_timeout, PING_AFTER_IDLE).await
    }

    /// As [`open_with_timeout`](Self::open_with_timeout), pinging a pooled connection before
    /// use only when it was taken out `ping_after_idle` or longer ago (see `pool.rs`).
    async fn connect(
        url: &str,
        max_connections: u32,
        statement_timeout: Option<Duration>,
        ping_after_idle: Duration,
    ) -> StoreResult<Self> {
        let pool = Pool::connect(url, max_connections, statement_timeout, ping_after_idle).await?;
        let store = Self { pool };
        store.migrate().await?;
        Ok(store)
    }

    /// A connection, for the SQLite-to-PostgreSQL copy (`store/copy`).
    pub(super) async fn connection(&self) -> StoreResult<PooledConnection> {
        self.pool.get().await
    }

    /// Apply the migrations not yet recorded in `basalt_migrations`, in one transaction
    /// holding an advisory lock: a node starting meanwhile waits, then finds them applied.
    async fn migrate(&self) -> StoreResult<()> {
        let mut conn = self.pool.get().await?;
        let mut tx = conn.begin().await.map_err(db_error)?;
        lift_statement_timeout(&mut tx).await?;
        query("SELECT pg_advisory_xact_lock($1)")
            .bind(SCHEMA_LOCK)
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
        // Checked first (under the lock) rather than `IF NOT EXISTS`, whose notice every start
        // would log.
        let tracked: Option<String> =
            sqlx_core::query_scalar::query_scalar("SELECT to_regclass('basalt_migrations')::text")
                .fetch_one(&mut *tx)
                .await
                .map_err(db_error)?;
        if tracked.is_none() {
            raw_sql(
                "CREATE TABLE basalt_migrations (
                    version INTEGER PRIMARY KEY,
                    name TEXT NOT NULL,
                    applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
                )",
            )
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
        }
        let applied: Vec<i32> = query("SELECT version FROM basalt_migrations")
            .fetch_all(&mut *tx)
            .await
            .map_err(db_error)?
            .iter()
            .map(|row| row.try_get::<i32, _>(0))
            .collect::<Result<_, _>>()
            .map_err(db_error)?;
        for (version, name, sql) in MIGRATIONS {
            if applied.contains(version) {
                continue;
            }
            raw_sql(sql).execute(&mut *tx).await.map_err(db_error)?;
            query("INSERT INTO basalt_migrations (version, name) VALUES ($1, $2)")
                .bind(version)
                .bind(name)
                .execute(&mut *tx)
                .await
                .map_err(db_error)?;
        }
        tx.commit().await.map_err(db_error)
    }
}

/// Schema changes may take long on large tables (and wait for the lock of a node migrating
/// meanwhile): no statement time limit for the rest of this transaction.
async fn lift_statement_timeout(conn: &mut sqlx_postgres::PgConnection) -> StoreResult<()> {
    query("SELECT set_config('statement_timeout', '0', true)")
        .execute(&mut *conn)
        .await
        .map_err(db_error)?;
    Ok(())
}

fn get<'r, T>(row: &'r PgRow, column: &str) -> StoreResult<T>
where
    T: sqlx_core::decode::Decode<'r, sqlx_postgres::Postgres>
        + sqlx_core::types::Type<sqlx_postgres::Postgres>,
{
    row.try_get(column).map_err(db_error)
}

impl PostgresStore {
    /// Run one statement outside a transaction; the rows it changed.
    async fn execute(
        &self,
        statement: sqlx_core::query::Query<'_, sqlx_postgres::Postgres, sqlx_postgres::PgArguments>,
    ) -> StoreResult<u64> {
        Ok(statement
            .execute(&mut *self.pool.get().await?)
            .await
            .map_err(db_error)?
            .rows_affected())
    }
}

#[async_trait]
impl Store for PostgresStore {
    async fn insert_user(
        &self,
        user: NewUser,
        link: Option<(NewToken, NewMail)>,
        session: Option<NewSession>,
    ) -> StoreResult<()> {
        let mut conn = self.pool.get().await?;
        let mut tx = conn.begin().await.map_err(db_error)?;
        query(
            "INSERT INTO users (id, email, email_key, email_verified, password_hash, provider,
                provider_user_id, data, sign_up_at, last_login_at, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, 'altogic', $1, $6, $7, $7, $7, $7)",
        )
        .bind(&user.id)
        .bind(&user.email)
        .bind(&user.email_key)
        .bind(user.email_verified)
        .bind(&user.password_hash)
        .bind(Value::Object(user.data))
        .bind(user.now)
        .execute(&mut *tx)
        .await
        .map_err(db_error)?;
        if let Some((token, mail)) = &link {
            insert_token(&mut tx, token).await?;
            insert_mail(&mut tx, mail).await?;
        }
        if let Some(session) = &session {
            insert_session(&mut tx, session).await?;
        }
        tx.commit().await.map_err(db_error)
    }

    async fn user_by_id(&self, id: &str) -> StoreResult<Option<UserRecord>> {
        query("SELECT * FROM users WHERE id = $1")
            .bind(id)
            .fetch_optional(&mut *self.pool.get().await?)
            .await
            .map_err(db_error)?
            .as_ref()
            .map(user_from_row)
            .transpose()
    }

    async fn user_by_email(&self, email_key: &str) -> StoreResult<Option<UserRecord>> {
        query("SELECT * FROM users WHERE email_key = $1")
            .bind(email_key)
            .fetch_optional(&mut *self.pool.get().await?)
            .await
            .map_err(db_error)?
            .as_ref()
            .map(user_from_row)
            .transpose()
    }

    async fn delete_user(&self, id: &str) -> StoreResult<bool> {
        Ok(self
            .execute(query("DELETE FROM users WHERE id = $1").bind(id))
            .await?
            == 1)
    }

    async fn set_email_verified(&self, user_id: &str, now: Millis) -> StoreResult<()> {
        self.execute(
            query(
                "UPDATE users SET email_verified = TRUE, updated_at = $2
                 WHERE id = $1 AND NOT email_verified",
            )
            .bind(user_id)
            .bind(now),
        )
        .await?;
        Ok(())
    }

    async fn record_sign_in(&self, session: NewSession, rehash: Option<String>) -> StoreResult<()> {
        let mut conn = self.pool.get().await?;
        let mut tx = conn.begin().await.map_err(db_error)?;
        insert_session(&mut tx, &session).await?;
        if let Some(hash) = &rehash {
            query("UPDATE users SET password_hash = $2 WHERE id = $1")
                .bind(&session.user_id)
                .bind(hash)
                .execute(&mut *tx)
                .await
                .map_err(db_error)?;
        }
        tx.commit().await.map_err(db_error)
    }

    async fn change_password(
        &self,
        user_id: &str,
        password_hash: &str,
        keep_session: Option<&str>,
        now: Millis,
    ) -> StoreResult<()> {
        let mut conn = self.pool.get().await?;
        let mut tx = conn.begin().await.map_err(db_error)?;
        query("UPDATE users SET password_hash = $2, updated_at = $3 WHERE id = $1")
            .bind(user_id)
            .bind(password_hash)
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
        query("DELETE FROM sessions WHERE user_id = $1 AND id IS DISTINCT FROM $2")
            .bind(user_id)
            .bind(keep_session)
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
        delete_reset_links(&mut tx, user_id).await?;
        tx.commit().await.map_err(db_error)
    }

    async fn change_email(
        &self,
        user_id: &str,
        email: &str,
        email_key: &str,
        now: Millis,
    ) -> StoreResult<()> {
        self.execute(
            query(
                "UPDATE users SET email = $2, email_key = $3, email_verified = TRUE, updated_at = $4
                 WHERE id = $1",
            )
            .bind(user_id)
            .bind(email)
            .bind(email_key)
            .bind(now),
        )
        .await?;
        Ok(())
    }

    async fn session_by_token(
        &self,
        token_hash: &str,
    ) -> StoreResult<Option<(SessionRecord, UserRecord)>> {
        let row = query(
            "SELECT u.*, s.id AS s_id, s.user_id AS s_user_id, s.user_agent AS s_user_agent,
                    s.created_at AS s_created_at, s.last_seen_at AS s_last_seen_at
             FROM sessions s JOIN users u ON u.id = s.user_id WHERE s.token_hash = $1",
        )
        .bind(token_hash)
        .fetch_optional(&mut *self.pool.get().await?)
        .await
        .map_err(db_error)?;
        match row {
            Some(row) => Ok(Some((session_from_row(&row, "s_")?, user_from_row(&row)?))),
            None => Ok(None),
        }
    }

    async fn touch_session(&self, id: &str, now: Millis) -> StoreResult<()> {
        self.execute(
            query("UPDATE sessions SET last_seen_at = $2 WHERE id = $1")
                .bind(id)
                .bind(now),
        )
        .await?;
        Ok(())
    }

    async fn sessions_of_user(&self, user_id: &str) -> StoreResult<Vec<SessionRecord>> {
        let found =
            query("SELECT * FROM sessions WHERE user_id = $1 ORDER BY created_at ASC, id ASC")
                .bind(user_id)
                .fetch_all(&mut *self.pool.get().await?)
                .await
                .map_err(db_error)?;
        found.iter().map(|row| session_from_row(row, "")).collect()
    }

    async fn delete_session(&self, user_id: &str, session: SessionRef) -> StoreResult<bool> {
        let changed = match session {
            SessionRef::Id(id) => {
                self.execute(
                    query("DELETE FROM sessions WHERE user_id = $1 AND id = $2")
                        .bind(user_id)
                        .bind(id),
                )
                .await?
            }
            SessionRef::TokenHash(hash) => {
                self.execute(
                    query("DELETE FROM sessions WHERE user_id = $1 AND token_hash = $2")
                        .bind(user_id)
                        .bind(hash),
                )
                .await?
            }
        };
        Ok(changed == 1)
    }

    async fn delete_sessions_of_user(&self, user_id: &str, keep: Option<&str>) -> StoreResult<u64> {
        self.execute(
            query("DELETE FROM sessions WHERE user_id = $1 AND id IS DISTINCT FROM $2")
                .bind(user_id)
                .bind(keep),
        )
        .await
    }

    async fn delete_expired_sessions(
        &self,
        created_before: Millis,
        idle_before: Millis,
    ) -> StoreResult<u64> {
        self.execute(
            query("DELETE FROM sessions WHERE created_at < $1 OR last_seen_at < $2")
                .bind(created_before)
                .bind(idle_before),
        )
        .await
    }

    async fn issue_link(&self, token: NewToken, mail: NewMail) -> StoreResult<()> {
        let mut conn = self.pool.get().await?;
        let mut tx = conn.begin().await.map_err(db_error)?;
        query("DELETE FROM tokens WHERE user_id = $1 AND kind = $2 AND used_at IS NULL")
            .bind(&token.user_id)
            .bind(token.kind.as_str())
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
        insert_token(&mut tx, &token).await?;
        insert_mail(&mut tx, &mail).await?;
        tx.commit().await.map_err(db_error)
    }

    async fn insert_token(&self, token: NewToken) -> StoreResult<()> {
        let mut conn = self.pool.get().await?;
        insert_token(&mut conn, &token).await
    }

    async fn token_by_hash(&self, token_hash: &str) -> StoreResult<Option<TokenRecord>> {
        let row = query("SELECT * FROM tokens WHERE token_hash = $1")
            .bind(token_hash)
            .fetch_optional(&mut *self.pool.get().await?)
            .await
            .map_err(db_error)?;
        match row {
            Some(row) => token_from_row(&row),
            None => Ok(None),
        }
    }

    async fn redeem_grant(&self, redeem: RedeemGrant) -> StoreResult<bool> {
        let mut conn = self.pool.get().await?;
        let mut tx = conn.begin().await.map_err(db_error)?;
        let now = redeem.session.now;
        let user_id = &redeem.session.user_id;
        // Dropping the transaction rolls it back: nothing of a refused redemption is written.
        if !spend_grant(&mut tx, &redeem.grant_id, redeem.source_id.as_deref(), now).await? {
            return Ok(false);
        }
        if redeem.void_password {
            query("UPDATE users SET password_hash = NULL, updated_at = $2 WHERE id = $1")
                .bind(user_id)
                .bind(now)
                .execute(&mut *tx)
                .await
                .map_err(db_error)?;
            query("DELETE FROM sessions WHERE user_id = $1")
                .bind(user_id)
                .execute(&mut *tx)
                .await
                .map_err(db_error)?;
        }
        if redeem.mark_verified {
            query(
                "UPDATE users SET email_verified = TRUE, updated_at = $2
                 WHERE id = $1 AND NOT email_verified",
            )
            .bind(user_id)
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
        }
        insert_session(&mut tx, &redeem.session).await?;
        tx.commit().await.map_err(db_error)?;
        Ok(true)
    }

    async fn reset_password(&self, reset: ResetPassword) -> StoreResult<bool> {
        let mut conn = self.pool.get().await?;
        let mut tx = conn.begin().await.map_err(db_error)?;
        if !spend_grant(
            &mut tx,
            &reset.grant_id,
            reset.source_id.as_deref(),
            reset.now,
        )
        .await?
        {
            return Ok(false);
        }
        // Completing a reset proves the address.
        query(
            "UPDATE users SET password_hash = $2, email_verified = TRUE, updated_at = $3 WHERE id = $1",
        )
        .bind(&reset.user_id)
        .bind(&reset.password_hash)
        .bind(reset.now)
        .execute(&mut *tx)
        .await
        .map_err(db_error)?;
        query("DELETE FROM sessions WHERE user_id = $1")
            .bind(&reset.user_id)
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
        delete_reset_links(&mut tx, &reset.user_id).await?;
        tx.commit().await.map_err(db_error)?;
        Ok(true)
    }

    async fn enqueue_mail(&self, mail: NewMail) -> StoreResult<()> {
        let mut conn = self.pool.get().await?;
        insert_mail(&mut conn, &mail).await
    }

    async fn claim_mail(
        &self,
        now: Millis,
        lease_until: Millis,
        limit: u32,
    ) -> StoreResult<Vec<MailRecord>> {
        // `SKIP LOCKED`: a claim running at the same time on another node takes other rows
        // instead of waiting for these and then re-reading them as claimed.
        let found = query(
            "WITH due AS (
                 SELECT id FROM mail_outbox
                 WHERE sent_at IS NULL AND next_attempt_at <= $1
                   AND (claimed_until IS NULL OR claimed_until <= $1)
                 ORDER BY next_attempt_at ASC, seq ASC LIMIT $3
                 FOR UPDATE SKIP LOCKED)
             UPDATE mail_outbox SET claimed_until = $2 FROM due WHERE mail_outbox.id = due.id
             RETURNING mail_outbox.*",
        )
        .bind(now)
        .bind(lease_until)
        .bind(i64::from(limit))
        .fetch_all(&mut *self.pool.get().await?)
        .await
        .map_err(db_error)?;
        let mut claimed = found
            .iter()
            .map(|row| {
                Ok((
                    get::<i64>(row, "next_attempt_at")?,
                    get::<i64>(row, "seq")?,
                    mail_from_row(row)?,
                ))
            })
            .collect::<StoreResult<Vec<_>>>()?;
        // RETURNING gives rows in no particular order.
        claimed.sort_by_key(|(due, seq, _)| (*due, *seq));
        Ok(claimed.into_iter().map(|(_, _, mail)| mail).collect())
    }

    async fn mark_mail_sent(&self, id: &str, now: Millis) -> StoreResult<()> {
        self.execute(
            query(
                "UPDATE mail_outbox SET sent_at = $2, attempts = attempts + 1, claimed_until = NULL
                 WHERE id = $1",
            )
            .bind(id)
            .bind(now),
        )
        .await?;
        Ok(())
    }

    async fn mark_mail_failed(
        &self,
        id: &str,
        next_attempt_at: Millis,
        error: &str,
    ) -> StoreResult<()> {
        self.execute(
            query(
                "UPDATE mail_outbox SET attempts = attempts + 1, next_attempt_at = $2, last_error = $3,
                     claimed_until = NULL
                 WHERE id = $1",
            )
            .bind(id)
            .bind(next_attempt_at)
            .bind(error),
        )
        .await?;
        Ok(())
    }

    async fn sent_mail(&self, limit: u32) -> StoreResult<Vec<MailRecord>> {
        let found = query(
            "SELECT * FROM mail_outbox WHERE sent_at IS NOT NULL
             ORDER BY sent_at DESC, created_at DESC, seq DESC LIMIT $1",
        )
        .bind(i64::from(limit))
        .fetch_all(&mut *self.pool.get().await?)
        .await
        .map_err(db_error)?;
        rows(&found, mail_from_row)
    }

    async fn client_keys(&self) -> StoreResult<Vec<ClientKeyRecord>> {
        let found = query("SELECT * FROM client_keys ORDER BY created_at ASC, seq ASC")
            .fetch_all(&mut *self.pool.get().await?)
            .await
            .map_err(db_error)?;
        rows(&found, |row| {
            Ok(ClientKeyRecord {
                key: get(row, "key")?,
                name: get(row, "name")?,
                created_at: get(row, "created_at")?,
                revoked_at: get(row, "revoked_at")?,
            })
        })
    }

    async fn insert_client_key(&self, key: &str, name: &str, now: Millis) -> StoreResult<()> {
        self.execute(
            query("INSERT INTO client_keys (key, name, created_at) VALUES ($1, $2, $3)")
                .bind(key)
                .bind(name)
                .bind(now),
        )
        .await?;
        Ok(())
    }

    async fn revoke_client_key(&self, key: &str, now: Millis) -> StoreResult<bool> {
        let n = self
            .execute(
                query(
                    "UPDATE client_keys SET revoked_at = $2 WHERE key = $1 AND revoked_at IS NULL",
                )
                .bind(key)
                .bind(now),
            )
            .await?;
        Ok(n == 1)
    }

    async fn update_user_data(
        &self,
        user_id: &str,
        patch: Map<String, Value>,
        now: Millis,
    ) -> StoreResult<Option<UserRecord>> {
        // `||` on two objects is the top-level merge, in one statement.
        query("UPDATE users SET data = data || $2, updated_at = $3 WHERE id = $1 RETURNING *")
            .bind(user_id)
            .bind(Value::Object(patch))
            .bind(now)
            .fetch_optional(&mut *self.pool.get().await?)
            .await
            .map_err(db_error)?
            .as_ref()
            .map(user_from_row)
            .transpose()
    }

    async fn bucket(&self, id_or_name: &str) -> StoreResult<Option<BucketRecord>> {
        storage::bucket(&mut *self.pool.get().await?, id_or_name).await
    }

    async fn insert_file(&self, file: FileRecord) -> StoreResult<FileRecord> {
        storage::insert_file(&mut *self.pool.get().await?, file).await
    }

    async fn file(&self, bucket_id: &str, file_id: &str) -> StoreResult<Option<FileRecord>> {
        storage::file(&mut *self.pool.get().await?, bucket_id, file_id).await
    }

    async fn file_by_key(
        &self,
        bucket_id: &str,
        id_or_name: &str,
    ) -> StoreResult<Option<FileRecord>> {
        storage::file_by_key(&mut *self.pool.get().await?, bucket_id, id_or_name).await
    }

    async fn delete_file(&self, bucket_id: &str, file_id: &str) -> StoreResult<Option<String>> {
        storage::delete_file(&mut *self.pool.get().await?, bucket_id, file_id).await
    }

    async fn insert_bucket(&self, bucket: BucketRecord) -> StoreResult<()> {
        storage::insert_bucket(&mut *self.pool.get().await?, bucket).await
    }

    async fn update_bucket(
        &self,
        bucket: BucketRecord,
        files_public: Option<bool>,
    ) -> StoreResult<()> {
        storage::update_bucket(&mut *self.pool.get().await?, bucket, files_public).await
    }

    async fn delete_bucket_files(
        &self,
        bucket_id: &str,
        bucket_too: bool,
    ) -> StoreResult<Vec<String>> {
        storage::delete_bucket_files(&mut *self.pool.get().await?, bucket_id, bucket_too).await
    }

    async fn update_file(&self, file: FileRecord) -> StoreResult<FileRecord> {
        storage::update_file(&mut *self.pool.get().await?, file).await
    }

    async fn query_buckets(
        &self,
        query: StorageQuery,
    ) -> StoreResult<(Vec<BucketRecord>, Option<u64>)> {
        storage::query_buckets(&mut *self.pool.get().await?, query).await
    }

    async fn query_files(
        &self,
        query: StorageQuery,
    ) -> StoreResult<(Vec<FileRecord>, Option<u64>)> {
        storage::query_files(&mut *self.pool.get().await?, query).await
    }

    async fn storage_stats(
        &self,
        reader: Option<&str>,
        bucket_id: Option<&str>,
    ) -> StoreResult<StorageStats> {
        storage::storage_stats(&mut *self.pool.get().await?, reader, bucket_id).await
    }

    async fn delete_owned_files(
        &self,
        bucket_id: &str,
        owner: &str,
        keys: Vec<String>,
    ) -> StoreResult<Vec<String>> {
        storage::delete_owned_files(&mut *self.pool.get().await?, bucket_id, owner, keys).await
    }

    async fn insert_objects(&self, objects: Vec<ObjectWrite>) -> StoreResult<()> {
        objects::insert_objects(&mut *self.pool.get().await?, objects).await
    }

    async fn object(&self, model: &str, id: &str) -> StoreResult<Option<ObjectRecord>> {
        objects::object(&mut *self.pool.get().await?, model, id).await
    }

    async fn replace_object(
        &self,
        object: ObjectWrite,
        expected_version: i64,
    ) -> StoreResult<bool> {
        objects::replace_object(&mut *self.pool.get().await?, object, expected_version).await
    }

    async fn delete_object(&self, model: &str, id: &str) -> StoreResult<bool> {
        Ok(self
            .execute(
                query("DELETE FROM objects WHERE id = $1 AND model = $2")
                    .bind(id)
                    .bind(model),
            )
            .await?
            == 1)
    }

    async fn query_objects(
        &self,
        query: ObjectQuery,
    ) -> StoreResult<(Vec<ObjectRecord>, Option<u64>)> {
        objects::query_objects(&mut *self.pool.get().await?, query).await
    }

    async fn scan_objects(&self, query: ObjectQuery, visit: ObjectVisitor) -> StoreResult<()> {
        objects::scan_objects(&mut *self.pool.get().await?, query, visit).await
    }

    async fn objects_by_ids(&self, ids: Vec<String>) -> StoreResult<Vec<ObjectRecord>> {
        objects::objects_by_ids(&mut *self.pool.get().await?, ids).await
    }

    async fn ensure_indexes(&self, indexes: Vec<ObjectIndex>) -> StoreResult<()> {
        objects::ensure_indexes(&mut *self.pool.get().await?, indexes).await
    }

    async fn query_users(&self, query: UserQuery) -> StoreResult<(Vec<UserRecord>, Option<u64>)> {
        objects::query_users(&mut *self.pool.get().await?, query).await
    }

    async fn ping(&self) -> StoreResult<()> {
        query("SELECT 1")
            .execute(&mut *self.pool.get().await?)
            .await
            .map_err(db_error)?;
        Ok(())
    }

    fn shared_counters(&self) -> Option<std::sync::Arc<dyn super::RateCounters>> {
        Some(std::sync::Arc::new(counters::PgCounters::new(
            self.pool.clone(),
        )))
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use sqlx_core::connection::Connection;
    use sqlx_core::query::query;
    use sqlx_core::query_scalar::query_scalar;

    use super::PostgresStore;
    use crate::store::Store;
    use crate::store::conformance::TestDatabase;

    /// The server process behind the pool's one connection, once that connection is back in
    /// the pool.
    async fn backend_pid(store: &PostgresStore) -> i32 {
        let pid = query_scalar("SELECT pg_backend_pid()")
            .fetch_one(&mut *store.pool.get().await.unwrap())
            .await
            .unwrap();
        while store.pool.idle() == 0 {
            tokio::task::yield_now().await;
        }
        pid
    }

    /// End the server process behind `pid`, as a restart would, and wait until it is gone.
    async fn cut(admin: &PostgresStore, pid: i32) {
        let ended: bool = query_scalar("SELECT pg_terminate_backend($1)")
            .bind(pid)
            .fetch_one(&mut *admin.pool.get().await.unwrap())
            .await
            .unwrap();
        assert!(ended);
        loop {
            let alive: i64 = query_scalar("SELECT COUNT(*) FROM pg_stat_activity WHERE pid = $1")
                .bind(pid)
                .fetch_one(&mut *admin.pool.get().await.unwrap())
                .await
                .unwrap();
            if alive == 0 {
                break;
            }
            tokio::task::yield_now().await;
        }
    }

    #[tokio::test]
    async fn an_idle_connection_cut_by_the_server_is_replaced_before_use() {
        let db = TestDatabase::create().await;
        let admin = PostgresStore::open(&db.url, 1).await.unwrap();
        // Every connection counts as idle long enough to be pinged.
        let store = PostgresStore::connect(&db.url, 1, None, Duration::ZERO)
            .await
            .unwrap();
        let pid = backend_pid(&store).await;
        cut(&admin, pid).await;
        assert!(store.user_by_id("nobody").await.unwrap().is_none());
        assert_ne!(backend_pid(&store).await, pid);
    }

    #[tokio::test]
    async fn a_connection_used_a_moment_ago_is_not_pinged_and_a_cut_one_is_dropped() {
        let db = TestDatabase::create().await;
        let admin = PostgresStore::open(&db.url, 1).await.unwrap();
        let store = PostgresStore::connect(&db.url, 1, None, Duration::from_secs(3600))
            .await
            .unwrap();
        let pid = backend_pid(&store).await;
        cut(&admin, pid).await;
        // Not pinged: the one call on the cut connection fails, the connection is not put
        // back, and the next call gets a new one.
        assert!(store.user_by_id("nobody").await.is_err());
        assert!(store.user_by_id("nobody").await.unwrap().is_none());
        assert_ne!(backend_pid(&store).await, pid);
    }

    #[tokio::test]
    async fn after_a_restart_only_the_first_call_fails() {
        let db = TestDatabase::create().await;
        let admin = PostgresStore::open(&db.url, 1).await.unwrap();
        let store = PostgresStore::connect(&db.url, 3, None, Duration::from_secs(3600))
            .await
            .unwrap();
        // Three connections in the pool, used a moment ago, then all cut as a restart would.
        let mut held = Vec::new();
        for _ in 0..3 {
            held.push(store.pool.get().await.unwrap());
        }
        let mut pids = Vec::new();
        for conn in &mut held {
            let pid: i32 = query_scalar("SELECT pg_backend_pid()")
                .fetch_one(&mut **conn)
                .await
                .unwrap();
            pids.push(pid);
        }
        drop(held);
        for pid in &pids {
            cut(&admin, *pid).await;
        }
        assert!(store.user_by_id("nobody").await.is_err());
        // The failure marks the other two as doubtful: pinged, found dead, replaced.
        for _ in 0..6 {
            assert!(store.user_by_id("nobody").await.unwrap().is_none());
        }
    }

    #[tokio::test]
    async fn a_transaction_dropped_unfinished_frees_its_locks_at_once() {
        let db = TestDatabase::create().await;
        let admin = PostgresStore::open(&db.url, 1).await.unwrap();
        let store = PostgresStore::open(&db.url, 1).await.unwrap();
        {
            // As a cancelled request leaves it: a transaction holding a lock, dropped.
            let mut conn = store.pool.get().await.unwrap();
            let mut tx = conn.begin().await.unwrap();
            query("SELECT pg_advisory_xact_lock(7)")
                .execute(&mut *tx)
                .await
                .unwrap();
        }
        // The connection is not used again, yet the lock goes with the rolled-back transaction.
        let mut freed = false;
        for _ in 0..100 {
            freed = query_scalar("SELECT pg_try_advisory_xact_lock(7)")
                .fetch_one(&mut *admin.pool.get().await.unwrap())
                .await
                .unwrap();
            if freed {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(freed, "the dropped transaction still holds its lock");
        assert!(store.user_by_id("nobody").await.unwrap().is_none());
        assert_eq!(store.pool.size(), 1);
    }

    #[tokio::test]
    async fn nodes_starting_at_once_migrate_once() {
        let db = TestDatabase::create().await;
        let opened =
            futures_util::future::join_all((0..4).map(|_| PostgresStore::open(&db.url, 2))).await;
        assert!(opened.iter().all(Result::is_ok));
        let store = PostgresStore::open(&db.url, 1).await.unwrap();
        let applied: i64 = query_scalar("SELECT COUNT(*) FROM basalt_migrations")
            .fetch_one(&mut *store.pool.get().await.unwrap())
            .await
            .unwrap();
        assert_eq!(applied, i64::try_from(super::MIGRATIONS.len()).unwrap());
        let roots: i64 = query_scalar("SELECT COUNT(*) FROM buckets WHERE name = 'root'")
            .fetch_one(&mut *store.pool.get().await.unwrap())
            .await
            .unwrap();
        assert_eq!(roots, 1);
    }
}
