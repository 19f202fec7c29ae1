//! Rows of accounts, sessions, tokens and mail, and the statements several units of work share
//! (a new session, a token, a queued message, spending a link).

use serde_json::{Map, Value};
use sqlx_core::query::query;
use sqlx_postgres::{PgConnection, PgRow};

use super::{db_error, get};
use crate::store::{
    MailRecord, Millis, NewMail, NewSession, NewToken, SessionRecord, StoreResult, TokenKind,
    TokenRecord, UserRecord,
};

/// A stored JSON document (`data` columns are always objects; anything else reads as empty).
pub(super) fn json_object(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map,
        _ => Map::new(),
    }
}

pub(super) fn user_from_row(row: &PgRow) -> StoreResult<UserRecord> {
    Ok(UserRecord {
        id: get(row, "id")?,
        email: get(row, "email")?,
        email_verified: get(row, "email_verified")?,
        password_hash: get(row, "password_hash")?,
        provider: get(row, "provider")?,
        provider_user_id: get(row, "provider_user_id")?,
        data: json_object(get(row, "data")?),
        sign_up_at: get(row, "sign_up_at")?,
        last_login_at: get(row, "last_login_at")?,
        created_at: get(row, "created_at")?,
        updated_at: get(row, "updated_at")?,
    })
}

pub(super) fn session_from_row(row: &PgRow, prefix: &str) -> StoreResult<SessionRecord> {
    let col = |name: &str| format!("{prefix}{name}");
    Ok(SessionRecord {
        id: get(row, &col("id"))?,
        user_id: get(row, &col("user_id"))?,
        user_agent: get(row, &col("user_agent"))?,
        created_at: get(row, &col("created_at"))?,
        last_seen_at: get(row, &col("last_seen_at"))?,
    })
}

pub(super) fn mail_from_row(row: &PgRow) -> StoreResult<MailRecord> {
    let attempts: i32 = get(row, "attempts")?;
    Ok(MailRecord {
        id: get(row, "id")?,
        to: get(row, "recipient")?,
        subject: get(row, "subject")?,
        text: get(row, "text_body")?,
        html: get(row, "html_body")?,
        created_at: get(row, "created_at")?,
        attempts: u32::try_from(attempts).unwrap_or(0),
        sent_at: get(row, "sent_at")?,
    })
}

pub(super) fn token_from_row(row: &PgRow) -> StoreResult<Option<TokenRecord>> {
    let kind: String = get(row, "kind")?;
    let Some(kind) = TokenKind::parse(&kind) else {
        return Ok(None);
    };
    Ok(Some(TokenRecord {
        id: get(row, "id")?,
        user_id: get(row, "user_id")?,
        kind,
        source_id: get(row, "source_id")?,
        data: get(row, "data")?,
        expires_at: get(row, "expires_at")?,
        used_at: get(row, "used_at")?,
    }))
}

pub(super) async fn insert_session(conn: &mut PgConnection, s: &NewSession) -> StoreResult<()> {
    query(
        "INSERT INTO sessions (id, user_id, token_hash, user_agent, created_at, last_seen_at)
         VALUES ($1, $2, $3, $4, $5, $5)",
    )
    .bind(&s.id)
    .bind(&s.user_id)
    .bind(&s.token_hash)
    .bind(&s.user_agent)
    .bind(s.now)
    .execute(&mut *conn)
    .await
    .map_err(db_error)?;
    // Evict the oldest sessions beyond the per-user cap.
    query(
        "DELETE FROM sessions WHERE user_id = $1 AND id NOT IN
           (SELECT id FROM sessions WHERE user_id = $1 ORDER BY created_at DESC, id DESC LIMIT $2)",
    )
    .bind(&s.user_id)
    .bind(i64::from(s.max_per_user))
    .execute(&mut *conn)
    .await
    .map_err(db_error)?;
    query("UPDATE users SET last_login_at = $2 WHERE id = $1")
        .bind(&s.user_id)
        .bind(s.now)
        .execute(&mut *conn)
        .await
        .map_err(db_error)?;
    Ok(())
}

pub(super) async fn insert_token(conn: &mut PgConnection, t: &NewToken) -> StoreResult<()> {
    query(
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
    .execute(conn)
    .await
    .map_err(db_error)?;
    Ok(())
}

pub(super) async fn insert_mail(conn: &mut PgConnection, m: &NewMail) -> StoreResult<()> {
    query(
        "INSERT INTO mail_outbox (id, recipient, subject, text_body, html_body, created_at, next_attempt_at)
         VALUES ($1, $2, $3, $4, $5, $6, $6)",
    )
    .bind(&m.id)
    .bind(&m.to)
    .bind(&m.subject)
    .bind(&m.text)
    .bind(&m.html)
    .bind(m.now)
    .execute(conn)
    .await
    .map_err(db_error)?;
    Ok(())
}

/// Spend a token if unspent; `false` when it was already spent.
async fn spend_token(conn: &mut PgConnection, id: &str, now: Millis) -> StoreResult<bool> {
    let done = query("UPDATE tokens SET used_at = $2 WHERE id = $1 AND used_at IS NULL")
        .bind(id)
        .bind(now)
        .execute(conn)
        .await
        .map_err(db_error)?;
    Ok(done.rows_affected() == 1)
}

pub(super) async fn delete_reset_links(conn: &mut PgConnection, user_id: &str) -> StoreResult<()> {
    query(
        "DELETE FROM tokens WHERE user_id = $1 AND kind IN ('reset', 'reset_grant') AND used_at IS NULL",
    )
    .bind(user_id)
    .execute(conn)
    .await
    .map_err(db_error)?;
    Ok(())
}

/// Spend a grant and its emailed source; `false` (nothing spent) when either was spent.
pub(super) async fn spend_grant(
    conn: &mut PgConnection,
    grant_id: &str,
    source_id: Option<&str>,
    now: Millis,
) -> StoreResult<bool> {
    if !spend_token(&mut *conn, grant_id, now).await? {
        return Ok(false);
    }
    if let Some(source) = source_id
        && !spend_token(&mut *conn, source, now).await?
    {
        return Ok(false);
    }
    Ok(true)
}
