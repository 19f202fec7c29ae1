//! SQLite backend: WAL, `synchronous=FULL`, one writer connection and a small read pool.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use serde_json::{Map, Value};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow,
    SqliteSynchronous,
};
use sqlx::{Row, Sqlite, Transaction};

use super::{
    ClientKeyRecord, MailRecord, Millis, NewMail, NewSession, NewToken, NewUser, RedeemGrant,
    ResetPassword, SessionRecord, SessionRef, Store, StoreError, StoreResult, TokenKind,
    TokenRecord, UserRecord,
};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

/// SQLite store: writes go through one connection so they never fight over the write lock.
#[derive(Clone)]
pub struct SqliteStore {
    writer: SqlitePool,
    reader: SqlitePool,
}

impl SqliteStore {
    /// Open (creating if needed) the database file and apply migrations.
    pub async fn open(path: &Path) -> StoreResult<Self> {
        let options = SqliteConnectOptions::from_str("sqlite://")
            .map_err(backend)?
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(Duration::from_secs(5))
            .foreign_keys(true);
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            .idle_timeout(None)
            .max_lifetime(None)
            .connect_with(options.clone())
            .await
            .map_err(backend)?;
        MIGRATOR.run(&writer).await.map_err(backend)?;
        let reader = SqlitePoolOptions::new()
            .max_connections(4)
            .idle_timeout(None)
            .max_lifetime(None)
            .connect_with(options.read_only(true))
            .await
            .map_err(backend)?;
        Ok(Self { writer, reader })
    }

    async fn begin(&self) -> StoreResult<Transaction<'static, Sqlite>> {
        self.writer.begin().await.map_err(backend)
    }
}

fn backend(err: impl std::error::Error + Send + Sync + 'static) -> StoreError {
    StoreError::Backend(Box::new(err))
}

/// Map unique violations to `Conflict`, everything else to `Backend`.
fn write_error(err: sqlx::Error) -> StoreError {
    if let sqlx::Error::Database(db) = &err
        && db.is_unique_violation()
    {
        let constraint = if db.message().contains("email") {
            "email"
        } else {
            "unique"
        };
        return StoreError::Conflict { constraint };
    }
    backend(err)
}

fn user_from_row(row: &SqliteRow) -> StoreResult<UserRecord> {
    let data: String = row.try_get("data").map_err(backend)?;
    let data = match serde_json::from_str::<Value>(&data).map_err(backend)? {
        Value::Object(map) => map,
        _ => Map::new(),
    };
    Ok(UserRecord {
        id: row.try_get("id").map_err(backend)?,
        email: row.try_get("email").map_err(backend)?,
        email_verified: row.try_get("email_verified").map_err(backend)?,
        password_hash: row.try_get("password_hash").map_err(backend)?,
        provider: row.try_get("provider").map_err(backend)?,
        provider_user_id: row.try_get("provider_user_id").map_err(backend)?,
        data,
        sign_up_at: row.try_get("sign_up_at").map_err(backend)?,
        last_login_at: row.try_get("last_login_at").map_err(backend)?,
        created_at: row.try_get("created_at").map_err(backend)?,
        updated_at: row.try_get("updated_at").map_err(backend)?,
    })
}

fn session_from_row(row: &SqliteRow, prefix: &str) -> StoreResult<SessionRecord> {
    let col = |name: &str| format!("{prefix}{name}");
    let agent: String = row.try_get(col("user_agent").as_str()).map_err(backend)?;
    Ok(SessionRecord {
        id: row.try_get(col("id").as_str()).map_err(backend)?,
        user_id: row.try_get(col("user_id").as_str()).map_err(backend)?,
        user_agent: serde_json::from_str(&agent).map_err(backend)?,
        created_at: row.try_get(col("created_at").as_str()).map_err(backend)?,
        last_seen_at: row.try_get(col("last_seen_at").as_str()).map_err(backend)?,
    })
}

fn mail_from_row(row: &SqliteRow) -> StoreResult<MailRecord> {
    let attempts: i64 = row.try_get("attempts").map_err(backend)?;
    Ok(MailRecord {
        id: row.try_get("id").map_err(backend)?,
        to: row.try_get("recipient").map_err(backend)?,
        subject: row.try_get("subject").map_err(backend)?,
        text: row.try_get("text_body").map_err(backend)?,
        html: row.try_get("html_body").map_err(backend)?,
        created_at: row.try_get("created_at").map_err(backend)?,
        attempts: u32::try_from(attempts).unwrap_or(u32::MAX),
        sent_at: row.try_get("sent_at").map_err(backend)?,
    })
}

async fn insert_session(tx: &mut Transaction<'static, Sqlite>, s: &NewSession) -> StoreResult<()> {
    let agent = serde_json::to_string(&s.user_agent).map_err(backend)?;
    sqlx::query(
        "INSERT INTO sessions (id, user_id, token_hash, user_agent, created_at, last_seen_at)
         VALUES ($1, $2, $3, $4, $5, $5)",
    )
    .bind(&s.id)
    .bind(&s.user_id)
    .bind(&s.token_hash)
    .bind(agent)
    .bind(s.now)
    .execute(&mut **tx)
    .await
    .map_err(write_error)?;
    // Evict the oldest sessions beyond the per-user cap.
    sqlx::query(
        "DELETE FROM sessions WHERE user_id = $1 AND id NOT IN
           (SELECT id FROM sessions WHERE user_id = $1 ORDER BY created_at DESC, id DESC LIMIT $2)",
    )
    .bind(&s.user_id)
    .bind(i64::from(s.max_per_user))
    .execute(&mut **tx)
    .await
    .map_err(backend)?;
    sqlx::query("UPDATE users SET last_login_at = $2 WHERE id = $1")
        .bind(&s.user_id)
        .bind(s.now)
        .execute(&mut **tx)
        .await
        .map_err(backend)?;
    Ok(())
}

async fn insert_token(tx: &mut Transaction<'static, Sqlite>, t: &NewToken) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO tokens (id, user_id, kind, token_hash, source_id, data, created_at, expires_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(&t.id)
    .bind(&t.user_id)
    .bind(t.kind.as_str())
    .bind(&t.token_hash)
    .bind(&t.source_id)
    .bind(&t.data)
    .bind(t.now)
    .bind(t.expires_at)
    .execute(&mut **tx)
    .await
    .map_err(write_error)?;
    Ok(())
}

async fn insert_mail(tx: &mut Transaction<'static, Sqlite>, m: &NewMail) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO mail_outbox (id, recipient, subject, text_body, html_body, created_at, next_attempt_at)
         VALUES ($1, $2, $3, $4, $5, $6, $6)",
    )
    .bind(&m.id)
    .bind(&m.to)
    .bind(&m.subject)
    .bind(&m.text)
    .bind(&m.html)
    .bind(m.now)
    .execute(&mut **tx)
    .await
    .map_err(backend)?;
    Ok(())
}

/// Spend a token if unspent; `false` when it was already spent.
async fn spend_token(
    tx: &mut Transaction<'static, Sqlite>,
    id: &str,
    now: Millis,
) -> StoreResult<bool> {
    let done = sqlx::query("UPDATE tokens SET used_at = $2 WHERE id = $1 AND used_at IS NULL")
        .bind(id)
        .bind(now)
        .execute(&mut **tx)
        .await
        .map_err(backend)?;
    Ok(done.rows_affected() == 1)
}

async fn delete_reset_links(
    tx: &mut Transaction<'static, Sqlite>,
    user_id: &str,
) -> StoreResult<()> {
    sqlx::query(
        "DELETE FROM tokens WHERE user_id = $1 AND kind IN ('reset', 'reset_grant') AND used_at IS NULL",
    )
    .bind(user_id)
    .execute(&mut **tx)
    .await
    .map_err(backend)?;
    Ok(())
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
        let mut tx = self.begin().await?;
        sqlx::query(
            "INSERT INTO users (id, email, email_key, email_verified, password_hash, provider,
                provider_user_id, data, sign_up_at, last_login_at, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, 'altogic', $1, $6, $7, $7, $7, $7)",
        )
        .bind(&user.id)
        .bind(&user.email)
        .bind(&user.email_key)
        .bind(user.email_verified)
        .bind(&user.password_hash)
        .bind(data)
        .bind(user.now)
        .execute(&mut *tx)
        .await
        .map_err(write_error)?;
        if let Some((token, mail)) = link {
            insert_token(&mut tx, &token).await?;
            insert_mail(&mut tx, &mail).await?;
        }
        if let Some(session) = session {
            insert_session(&mut tx, &session).await?;
        }
        tx.commit().await.map_err(backend)
    }

    async fn user_by_id(&self, id: &str) -> StoreResult<Option<UserRecord>> {
        let row = sqlx::query("SELECT * FROM users WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.reader)
            .await
            .map_err(backend)?;
        row.as_ref().map(user_from_row).transpose()
    }

    async fn user_by_email(&self, email_key: &str) -> StoreResult<Option<UserRecord>> {
        let row = sqlx::query("SELECT * FROM users WHERE email_key = $1")
            .bind(email_key)
            .fetch_optional(&self.reader)
            .await
            .map_err(backend)?;
        row.as_ref().map(user_from_row).transpose()
    }

    async fn delete_user(&self, id: &str) -> StoreResult<bool> {
        let done = sqlx::query("DELETE FROM users WHERE id = $1")
            .bind(id)
            .execute(&self.writer)
            .await
            .map_err(backend)?;
        Ok(done.rows_affected() == 1)
    }

    async fn set_email_verified(&self, user_id: &str, now: Millis) -> StoreResult<()> {
        sqlx::query(
            "UPDATE users SET email_verified = 1, updated_at = $2 WHERE id = $1 AND email_verified = 0",
        )
        .bind(user_id)
        .bind(now)
        .execute(&self.writer)
        .await
        .map_err(backend)?;
        Ok(())
    }

    async fn record_sign_in(&self, session: NewSession, rehash: Option<String>) -> StoreResult<()> {
        let mut tx = self.begin().await?;
        insert_session(&mut tx, &session).await?;
        if let Some(hash) = rehash {
            sqlx::query("UPDATE users SET password_hash = $2 WHERE id = $1")
                .bind(&session.user_id)
                .bind(hash)
                .execute(&mut *tx)
                .await
                .map_err(backend)?;
        }
        tx.commit().await.map_err(backend)
    }

    async fn change_password(
        &self,
        user_id: &str,
        password_hash: &str,
        keep_session: Option<&str>,
        now: Millis,
    ) -> StoreResult<()> {
        let mut tx = self.begin().await?;
        sqlx::query("UPDATE users SET password_hash = $2, updated_at = $3 WHERE id = $1")
            .bind(user_id)
            .bind(password_hash)
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
        sqlx::query("DELETE FROM sessions WHERE user_id = $1 AND id IS NOT $2")
            .bind(user_id)
            .bind(keep_session)
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
        delete_reset_links(&mut tx, user_id).await?;
        tx.commit().await.map_err(backend)
    }

    async fn change_email(
        &self,
        user_id: &str,
        email: &str,
        email_key: &str,
        now: Millis,
    ) -> StoreResult<()> {
        sqlx::query(
            "UPDATE users SET email = $2, email_key = $3, email_verified = 1, updated_at = $4
             WHERE id = $1",
        )
        .bind(user_id)
        .bind(email)
        .bind(email_key)
        .bind(now)
        .execute(&self.writer)
        .await
        .map_err(write_error)?;
        Ok(())
    }

    async fn session_by_token(
        &self,
        token_hash: &str,
    ) -> StoreResult<Option<(SessionRecord, UserRecord)>> {
        let row = sqlx::query(
            "SELECT u.*, s.id AS s_id, s.user_id AS s_user_id, s.user_agent AS s_user_agent,
                    s.created_at AS s_created_at, s.last_seen_at AS s_last_seen_at
             FROM sessions s JOIN users u ON u.id = s.user_id WHERE s.token_hash = $1",
        )
        .bind(token_hash)
        .fetch_optional(&self.reader)
        .await
        .map_err(backend)?;
        match row {
            Some(row) => Ok(Some((session_from_row(&row, "s_")?, user_from_row(&row)?))),
            None => Ok(None),
        }
    }

    async fn touch_session(&self, id: &str, now: Millis) -> StoreResult<()> {
        sqlx::query("UPDATE sessions SET last_seen_at = $2 WHERE id = $1")
            .bind(id)
            .bind(now)
            .execute(&self.writer)
            .await
            .map_err(backend)?;
        Ok(())
    }

    async fn sessions_of_user(&self, user_id: &str) -> StoreResult<Vec<SessionRecord>> {
        let rows = sqlx::query(
            "SELECT * FROM sessions WHERE user_id = $1 ORDER BY created_at ASC, id ASC",
        )
        .bind(user_id)
        .fetch_all(&self.reader)
        .await
        .map_err(backend)?;
        rows.iter().map(|row| session_from_row(row, "")).collect()
    }

    async fn delete_session(&self, user_id: &str, session: SessionRef) -> StoreResult<bool> {
        let (column, value) = match session {
            SessionRef::Id(id) => ("id", id),
            SessionRef::TokenHash(hash) => ("token_hash", hash),
        };
        let sql = format!("DELETE FROM sessions WHERE user_id = $1 AND {column} = $2");
        let done = sqlx::query(&sql)
            .bind(user_id)
            .bind(value)
            .execute(&self.writer)
            .await
            .map_err(backend)?;
        Ok(done.rows_affected() == 1)
    }

    async fn delete_sessions_of_user(&self, user_id: &str, keep: Option<&str>) -> StoreResult<u64> {
        let done = sqlx::query("DELETE FROM sessions WHERE user_id = $1 AND id IS NOT $2")
            .bind(user_id)
            .bind(keep)
            .execute(&self.writer)
            .await
            .map_err(backend)?;
        Ok(done.rows_affected())
    }

    async fn delete_expired_sessions(
        &self,
        created_before: Millis,
        idle_before: Millis,
    ) -> StoreResult<u64> {
        let done = sqlx::query("DELETE FROM sessions WHERE created_at < $1 OR last_seen_at < $2")
            .bind(created_before)
            .bind(idle_before)
            .execute(&self.writer)
            .await
            .map_err(backend)?;
        Ok(done.rows_affected())
    }

    async fn issue_link(&self, token: NewToken, mail: NewMail) -> StoreResult<()> {
        let mut tx = self.begin().await?;
        sqlx::query("DELETE FROM tokens WHERE user_id = $1 AND kind = $2 AND used_at IS NULL")
            .bind(&token.user_id)
            .bind(token.kind.as_str())
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
        insert_token(&mut tx, &token).await?;
        insert_mail(&mut tx, &mail).await?;
        tx.commit().await.map_err(backend)
    }

    async fn insert_token(&self, token: NewToken) -> StoreResult<()> {
        let mut tx = self.begin().await?;
        insert_token(&mut tx, &token).await?;
        tx.commit().await.map_err(backend)
    }

    async fn token_by_hash(&self, token_hash: &str) -> StoreResult<Option<TokenRecord>> {
        let row = sqlx::query("SELECT * FROM tokens WHERE token_hash = $1")
            .bind(token_hash)
            .fetch_optional(&self.reader)
            .await
            .map_err(backend)?;
        let Some(row) = row else { return Ok(None) };
        let kind: String = row.try_get("kind").map_err(backend)?;
        let Some(kind) = TokenKind::parse(&kind) else {
            return Ok(None);
        };
        Ok(Some(TokenRecord {
            id: row.try_get("id").map_err(backend)?,
            user_id: row.try_get("user_id").map_err(backend)?,
            kind,
            source_id: row.try_get("source_id").map_err(backend)?,
            data: row.try_get("data").map_err(backend)?,
            expires_at: row.try_get("expires_at").map_err(backend)?,
            used_at: row.try_get("used_at").map_err(backend)?,
        }))
    }

    async fn redeem_grant(&self, redeem: RedeemGrant) -> StoreResult<bool> {
        let now = redeem.session.now;
        let user_id = redeem.session.user_id.clone();
        let mut tx = self.begin().await?;
        if !spend_token(&mut tx, &redeem.grant_id, now).await? {
            return Ok(false);
        }
        if let Some(source) = &redeem.source_id
            && !spend_token(&mut tx, source, now).await?
        {
            return Ok(false);
        }
        if redeem.void_password {
            sqlx::query("UPDATE users SET password_hash = NULL, updated_at = $2 WHERE id = $1")
                .bind(&user_id)
                .bind(now)
                .execute(&mut *tx)
                .await
                .map_err(backend)?;
            sqlx::query("DELETE FROM sessions WHERE user_id = $1")
                .bind(&user_id)
                .execute(&mut *tx)
                .await
                .map_err(backend)?;
        }
        if redeem.mark_verified {
            sqlx::query(
                "UPDATE users SET email_verified = 1, updated_at = $2 WHERE id = $1 AND email_verified = 0",
            )
            .bind(&user_id)
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
        }
        insert_session(&mut tx, &redeem.session).await?;
        tx.commit().await.map_err(backend)?;
        Ok(true)
    }

    async fn reset_password(&self, reset: ResetPassword) -> StoreResult<bool> {
        let mut tx = self.begin().await?;
        if !spend_token(&mut tx, &reset.grant_id, reset.now).await? {
            return Ok(false);
        }
        if let Some(source) = &reset.source_id
            && !spend_token(&mut tx, source, reset.now).await?
        {
            return Ok(false);
        }
        // Completing a reset proves the address.
        sqlx::query(
            "UPDATE users SET password_hash = $2, email_verified = 1, updated_at = $3 WHERE id = $1",
        )
        .bind(&reset.user_id)
        .bind(&reset.password_hash)
        .bind(reset.now)
        .execute(&mut *tx)
        .await
        .map_err(backend)?;
        sqlx::query("DELETE FROM sessions WHERE user_id = $1")
            .bind(&reset.user_id)
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
        delete_reset_links(&mut tx, &reset.user_id).await?;
        tx.commit().await.map_err(backend)?;
        Ok(true)
    }

    async fn enqueue_mail(&self, mail: NewMail) -> StoreResult<()> {
        let mut tx = self.begin().await?;
        insert_mail(&mut tx, &mail).await?;
        tx.commit().await.map_err(backend)
    }

    async fn due_mail(&self, now: Millis, limit: u32) -> StoreResult<Vec<MailRecord>> {
        let rows = sqlx::query(
            "SELECT * FROM mail_outbox WHERE sent_at IS NULL AND next_attempt_at <= $1
             ORDER BY next_attempt_at ASC LIMIT $2",
        )
        .bind(now)
        .bind(i64::from(limit))
        .fetch_all(&self.writer)
        .await
        .map_err(backend)?;
        rows.iter().map(mail_from_row).collect()
    }

    async fn mark_mail_sent(&self, id: &str, now: Millis) -> StoreResult<()> {
        sqlx::query("UPDATE mail_outbox SET sent_at = $2, attempts = attempts + 1 WHERE id = $1")
            .bind(id)
            .bind(now)
            .execute(&self.writer)
            .await
            .map_err(backend)?;
        Ok(())
    }

    async fn mark_mail_failed(
        &self,
        id: &str,
        next_attempt_at: Millis,
        error: &str,
    ) -> StoreResult<()> {
        sqlx::query(
            "UPDATE mail_outbox SET attempts = attempts + 1, next_attempt_at = $2, last_error = $3
             WHERE id = $1",
        )
        .bind(id)
        .bind(next_attempt_at)
        .bind(error)
        .execute(&self.writer)
        .await
        .map_err(backend)?;
        Ok(())
    }

    async fn sent_mail(&self, limit: u32) -> StoreResult<Vec<MailRecord>> {
        let rows = sqlx::query(
            "SELECT * FROM mail_outbox WHERE sent_at IS NOT NULL
             ORDER BY sent_at DESC, created_at DESC, rowid DESC LIMIT $1",
        )
        .bind(i64::from(limit))
        .fetch_all(&self.reader)
        .await
        .map_err(backend)?;
        rows.iter().map(mail_from_row).collect()
    }

    async fn client_keys(&self) -> StoreResult<Vec<ClientKeyRecord>> {
        let rows = sqlx::query("SELECT * FROM client_keys ORDER BY created_at ASC")
            .fetch_all(&self.reader)
            .await
            .map_err(backend)?;
        rows.iter()
            .map(|row| {
                Ok(ClientKeyRecord {
                    key: row.try_get("key").map_err(backend)?,
                    name: row.try_get("name").map_err(backend)?,
                    created_at: row.try_get("created_at").map_err(backend)?,
                    revoked_at: row.try_get("revoked_at").map_err(backend)?,
                })
            })
            .collect()
    }

    async fn insert_client_key(&self, key: &str, name: &str, now: Millis) -> StoreResult<()> {
        sqlx::query("INSERT INTO client_keys (key, name, created_at) VALUES ($1, $2, $3)")
            .bind(key)
            .bind(name)
            .bind(now)
            .execute(&self.writer)
            .await
            .map_err(write_error)?;
        Ok(())
    }

    async fn revoke_client_key(&self, key: &str, now: Millis) -> StoreResult<bool> {
        let done = sqlx::query(
            "UPDATE client_keys SET revoked_at = $2 WHERE key = $1 AND revoked_at IS NULL",
        )
        .bind(key)
        .bind(now)
        .execute(&self.writer)
        .await
        .map_err(backend)?;
        Ok(done.rows_affected() == 1)
    }

    async fn ping(&self) -> StoreResult<()> {
        sqlx::query("SELECT 1")
            .execute(&self.reader)
            .await
            .map_err(backend)?;
        Ok(())
    }
}
