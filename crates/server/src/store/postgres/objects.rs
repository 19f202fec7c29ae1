//! Objects of declared models on PostgreSQL: writes with their unique values, reads, pages and
//! scans, declared expression indexes, and the page of users a caller may see.
//!
//! Pages, scans and the users query run when they carry no compiled filter and sort by columns
//! only; a filter or a sort by a document field answers "not supported on PostgreSQL yet"
//! until the filter language has a PostgreSQL compiler (docs/PROGRESS.md, issue 6).

use futures_util::TryStreamExt;
use serde_json::Value;
use sha2::{Digest, Sha256};
use sqlx_core::query::query;
use sqlx_core::query_builder::QueryBuilder;
use sqlx_core::row::Row;
use sqlx_postgres::{PgConnection, PgPool, PgRow, Postgres};

use super::{
    SCHEMA_LOCK, backend, column_order, db_error, get, not_supported, rows, user_from_row,
};
use crate::store::{
    ObjectQuery, ObjectRecord, ObjectVisitor, ObjectWrite, StoreError, StoreResult, UserQuery,
    UserRecord,
};

/// PostgreSQL truncates identifiers to 63 bytes.
const MAX_IDENTIFIER: usize = 63;

#[derive(Debug, thiserror::Error)]
#[error("cannot index {0}: names are letters, digits, '_' and '.'")]
struct BadIndex(String);

fn object_from_row(row: &PgRow) -> StoreResult<ObjectRecord> {
    Ok(ObjectRecord {
        id: get(row, "id")?,
        model: get(row, "model")?,
        owner_id: get(row, "owner_id")?,
        data: super::json_object(get(row, "data")?),
        version: get(row, "version")?,
        created_at: get(row, "created_at")?,
        updated_at: get(row, "updated_at")?,
    })
}

/// Claim the unique values of an object; a taken one is a conflict naming its field.
async fn claim_unique(conn: &mut PgConnection, object: &ObjectWrite) -> StoreResult<()> {
    query("DELETE FROM object_unique_values WHERE object_id = $1")
        .bind(&object.record.id)
        .execute(&mut *conn)
        .await
        .map_err(db_error)?;
    for (field, value) in &object.unique {
        let claimed = query(
            "INSERT INTO object_unique_values (model, field, value, object_id) VALUES ($1, $2, $3, $4)",
        )
        .bind(&object.record.model)
        .bind(field)
        .bind(value)
        .bind(&object.record.id)
        .execute(&mut *conn)
        .await
        .map_err(db_error);
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

pub(super) async fn insert_objects(pool: &PgPool, objects: Vec<ObjectWrite>) -> StoreResult<()> {
    let mut tx = pool.begin().await.map_err(db_error)?;
    for object in &objects {
        let r = &object.record;
        query(
            "INSERT INTO objects (id, model, owner_id, data, version, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(&r.id)
        .bind(&r.model)
        .bind(&r.owner_id)
        .bind(Value::Object(r.data.clone()))
        .bind(r.version)
        .bind(r.created_at)
        .bind(r.updated_at)
        .execute(&mut *tx)
        .await
        .map_err(db_error)?;
        claim_unique(&mut tx, object).await?;
    }
    tx.commit().await.map_err(db_error)
}

pub(super) async fn object(
    pool: &PgPool,
    model: &str,
    id: &str,
) -> StoreResult<Option<ObjectRecord>> {
    query("SELECT * FROM objects WHERE id = $1 AND model = $2")
        .bind(id)
        .bind(model)
        .fetch_optional(pool)
        .await
        .map_err(db_error)?
        .as_ref()
        .map(object_from_row)
        .transpose()
}

pub(super) async fn replace_object(
    pool: &PgPool,
    object: ObjectWrite,
    expected_version: i64,
) -> StoreResult<bool> {
    let mut tx = pool.begin().await.map_err(db_error)?;
    let r = &object.record;
    let changed = query(
        "UPDATE objects SET data = $3, version = $4, updated_at = $5
         WHERE id = $1 AND model = $2 AND version = $6",
    )
    .bind(&r.id)
    .bind(&r.model)
    .bind(Value::Object(r.data.clone()))
    .bind(r.version)
    .bind(r.updated_at)
    .bind(expected_version)
    .execute(&mut *tx)
    .await
    .map_err(db_error)?
    .rows_affected();
    if changed == 0 {
        return Ok(false);
    }
    claim_unique(&mut tx, &object).await?;
    tx.commit().await.map_err(db_error)?;
    Ok(true)
}

/// `FROM objects WHERE …` of an object query (model and owner); compiled filters and
/// document sorts are refused until PostgreSQL has its filter compiler.
fn object_rows<'a>(
    select: &str,
    query: &'a ObjectQuery,
) -> StoreResult<(QueryBuilder<'a, Postgres>, &'a str)> {
    if query.filter.is_some() {
        return Err(not_supported("a database filter"));
    }
    let order_by = column_order(&query.order_by)?;
    let mut sql = QueryBuilder::new(format!("{select} FROM objects WHERE model = "));
    sql.push_bind(query.model.clone());
    if let Some(owner) = &query.owner {
        sql.push(" AND owner_id = ");
        sql.push_bind(owner.clone());
    }
    Ok((sql, order_by))
}

pub(super) async fn query_objects(
    pool: &PgPool,
    query: ObjectQuery,
) -> StoreResult<(Vec<ObjectRecord>, Option<u64>)> {
    let total = if query.count {
        let (mut sql, _) = object_rows("SELECT COUNT(*)", &query)?;
        let n: i64 = sql
            .build()
            .fetch_one(pool)
            .await
            .map_err(db_error)?
            .try_get(0)
            .map_err(db_error)?;
        Some(u64::try_from(n).unwrap_or(0))
    } else {
        None
    };
    let (mut sql, order_by) = object_rows("SELECT *", &query)?;
    sql.push(format!(" {order_by} LIMIT "));
    sql.push_bind(i64::from(query.limit));
    sql.push(" OFFSET ");
    sql.push_bind(i64::try_from(query.offset).unwrap_or(i64::MAX));
    let found = sql.build().fetch_all(pool).await.map_err(db_error)?;
    Ok((rows(&found, object_from_row)?, total))
}

pub(super) async fn scan_objects(
    pool: &PgPool,
    query: ObjectQuery,
    mut visit: ObjectVisitor,
) -> StoreResult<()> {
    let (mut sql, order_by) = object_rows("SELECT *", &query)?;
    sql.push(format!(" {order_by}"));
    // Rows stream from the server as they are read; dropping the stream ends the scan.
    let mut stream = sql.build().fetch(pool);
    while let Some(row) = stream.try_next().await.map_err(db_error)? {
        if !visit(object_from_row(&row)?) {
            break;
        }
    }
    Ok(())
}

pub(super) async fn objects_by_ids(
    pool: &PgPool,
    ids: Vec<String>,
) -> StoreResult<Vec<ObjectRecord>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let found = query("SELECT * FROM objects WHERE id = ANY($1)")
        .bind(ids)
        .fetch_all(pool)
        .await
        .map_err(db_error)?;
    rows(&found, object_from_row)
}

/// The index name of a `(model, path)`: `objects_by:<model>:<path>`, or a digest of it when
/// that is longer than PostgreSQL keeps.
fn index_name(model: &str, path: &str) -> String {
    let name = format!("objects_by:{model}:{path}");
    if name.len() <= MAX_IDENTIFIER {
        return name;
    }
    let digest = hex::encode(Sha256::digest(name.as_bytes()));
    format!("objects_by:{}", &digest[..40])
}

pub(super) async fn ensure_indexes(
    pool: &PgPool,
    indexes: Vec<(String, String)>,
) -> StoreResult<()> {
    // Names and paths are checked by the configuration: letters, digits, '_' and '.'.
    let safe = |s: &str| {
        !s.is_empty()
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.')
    };
    if let Some((model, path)) = indexes.iter().find(|(m, f)| !safe(m) || !safe(f)) {
        return Err(backend(BadIndex(format!("{model}:{path}"))));
    }
    let wanted: Vec<String> = indexes.iter().map(|(m, p)| index_name(m, p)).collect();
    let mut tx = pool.begin().await.map_err(db_error)?;
    // Nodes starting at once take turns.
    query("SELECT pg_advisory_xact_lock($1)")
        .bind(SCHEMA_LOCK)
        .execute(&mut *tx)
        .await
        .map_err(db_error)?;
    let existing: Vec<String> = query(
        "SELECT indexname FROM pg_indexes
         WHERE schemaname = current_schema() AND tablename = 'objects'
           AND indexname LIKE 'objects\\_by:%'",
    )
    .fetch_all(&mut *tx)
    .await
    .map_err(db_error)?
    .iter()
    .map(|row| row.try_get(0).map_err(db_error))
    .collect::<StoreResult<_>>()?;
    let mut statements: Vec<String> = existing
        .iter()
        .filter(|name| !wanted.contains(name))
        .map(|name| format!("DROP INDEX \"{name}\""))
        .collect();
    for ((_, path), name) in indexes.iter().zip(&wanted) {
        if existing.contains(name) {
            continue;
        }
        // The path holds only checked characters, so it may sit in the SQL text.
        let segments = path.split('.').collect::<Vec<_>>().join(",");
        statements.push(format!(
            "CREATE INDEX IF NOT EXISTS \"{name}\" ON objects (model, (data #> '{{{segments}}}'))"
        ));
    }
    for statement in statements {
        query(&statement)
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
    }
    tx.commit().await.map_err(db_error)
}

/// The users as the caller sees them, in the columns a filter reads: their own record whole
/// (profile data plus the account fields of the User shape), others only the public fields,
/// with times hidden. `$1` is the caller, `$2` the public field names.
const VISIBLE_USERS: &str = "WITH visible AS (SELECT id, \
     CASE WHEN id = $1 THEN data || jsonb_build_object( \
         'email', email, 'emailVerified', email_verified, \
         'provider', provider, 'providerUserId', provider_user_id, \
         'signUpAt', to_char(to_timestamp(sign_up_at / 1000.0) AT TIME ZONE 'UTC', \
             'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"'), \
         'lastLoginAt', to_char(to_timestamp(last_login_at / 1000.0) AT TIME ZONE 'UTC', \
             'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')) \
     ELSE (SELECT COALESCE(jsonb_object_agg(f.key, f.value), '{}'::jsonb) \
           FROM jsonb_each(users.data) AS f WHERE f.key = ANY($2)) \
     END AS data, \
     CASE WHEN id = $1 THEN created_at ELSE 0 END AS created_at, \
     CASE WHEN id = $1 THEN updated_at ELSE 0 END AS updated_at \
     FROM users)";

pub(super) async fn query_users(
    pool: &PgPool,
    query: UserQuery,
) -> StoreResult<(Vec<UserRecord>, Option<u64>)> {
    if query.filter.is_some() {
        return Err(not_supported("a users filter"));
    }
    let order_by = column_order(&query.order_by)?;
    let caller = query.caller.clone().unwrap_or_default();
    let total = if query.count {
        let n: i64 =
            sqlx_core::query::query(&format!("{VISIBLE_USERS} SELECT COUNT(*) FROM visible"))
                .bind(&caller)
                .bind(&query.public_fields)
                .fetch_one(pool)
                .await
                .map_err(db_error)?
                .try_get(0)
                .map_err(db_error)?;
        Some(u64::try_from(n).unwrap_or(0))
    } else {
        None
    };
    let ids: Vec<String> = sqlx_core::query::query(&format!(
        "{VISIBLE_USERS} SELECT id FROM visible {order_by} LIMIT $3 OFFSET $4"
    ))
    .bind(&caller)
    .bind(&query.public_fields)
    .bind(i64::from(query.limit))
    .bind(i64::try_from(query.offset).unwrap_or(i64::MAX))
    .fetch_all(pool)
    .await
    .map_err(db_error)?
    .iter()
    .map(|row| row.try_get(0).map_err(db_error))
    .collect::<StoreResult<_>>()?;
    let found = sqlx_core::query::query("SELECT * FROM users WHERE id = ANY($1)")
        .bind(&ids)
        .fetch_all(pool)
        .await
        .map_err(db_error)?;
    let mut users = rows(&found, user_from_row)?;
    users.sort_by_key(|u| ids.iter().position(|id| *id == u.id));
    Ok((users, total))
}
