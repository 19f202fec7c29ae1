//! Objects of declared models on PostgreSQL: writes with their unique values, reads, pages and
//! scans, declared expression indexes, and the page of users a caller may see.
//!
//! Filters and sorts are compiled by `pg_filter` over rows of `(id, data, created_at,
//! updated_at)`: the `objects` table as it is, users as the caller may see them.

use futures_util::TryStreamExt;
use serde_json::Value;
use sha2::{Digest, Sha256};
use sqlx_core::connection::Connection;
use sqlx_core::query::query;
use sqlx_core::query::query as query_sql;
use sqlx_core::row::Row;
use sqlx_postgres::{PgConnection, PgRow};

use super::{
    Bind, SCHEMA_LOCK, Sql, backend, count, db_error, get, order_by, push_page, rows, user_from_row,
};
use crate::store::pg_filter;
use crate::store::{
    ObjectIndex, ObjectQuery, ObjectRecord, ObjectVisitor, ObjectWrite, StoreError, StoreResult,
    UserQuery, UserRecord,
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

pub(super) async fn insert_objects(
    conn: &mut PgConnection,
    objects: Vec<ObjectWrite>,
) -> StoreResult<()> {
    let mut tx = conn.begin().await.map_err(db_error)?;
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
    conn: &mut PgConnection,
    model: &str,
    id: &str,
) -> StoreResult<Option<ObjectRecord>> {
    query("SELECT * FROM objects WHERE id = $1 AND model = $2")
        .bind(id)
        .bind(model)
        .fetch_optional(&mut *conn)
        .await
        .map_err(db_error)?
        .as_ref()
        .map(object_from_row)
        .transpose()
}

pub(super) async fn replace_object(
    conn: &mut PgConnection,
    object: ObjectWrite,
    expected_version: i64,
) -> StoreResult<bool> {
    let mut tx = conn.begin().await.map_err(db_error)?;
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

/// `<select> FROM objects WHERE …` of an object query: model, owner, filter.
fn object_rows(select: &str, query: &ObjectQuery) -> StoreResult<Sql> {
    let mut sql = Sql::new(format!("{select} FROM objects WHERE model = "));
    sql.bind(Bind::Text(query.model.clone()));
    if let Some(owner) = &query.owner {
        sql.push(" AND owner_id = ").bind(Bind::Text(owner.clone()));
    }
    if let Some(filter) = &query.filter {
        sql.push(" AND ").filter(&filter.expr)?;
    }
    Ok(sql)
}

pub(super) async fn query_objects(
    conn: &mut PgConnection,
    query: ObjectQuery,
) -> StoreResult<(Vec<ObjectRecord>, Option<u64>)> {
    let total = if query.count {
        Some(count(&mut *conn, &object_rows("SELECT COUNT(*)", &query)?).await?)
    } else {
        None
    };
    let mut sql = object_rows("SELECT *", &query)?;
    sql.push(" ").push(&order_by(&query.order)?);
    push_page(&mut sql, query.limit, query.offset);
    let found = sql.query().fetch_all(&mut *conn).await.map_err(db_error)?;
    Ok((rows(&found, object_from_row)?, total))
}

pub(super) async fn scan_objects(
    conn: &mut PgConnection,
    query: ObjectQuery,
    mut visit: ObjectVisitor,
) -> StoreResult<()> {
    let mut sql = object_rows("SELECT *", &query)?;
    sql.push(" ").push(&order_by(&query.order)?);
    // Rows stream from the server as they are read; dropping the stream ends the scan.
    let mut stream = sql.query().fetch(&mut *conn);
    while let Some(row) = stream.try_next().await.map_err(db_error)? {
        if !visit(object_from_row(&row)?) {
            break;
        }
    }
    Ok(())
}

pub(super) async fn objects_by_ids(
    conn: &mut PgConnection,
    ids: Vec<String>,
) -> StoreResult<Vec<ObjectRecord>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let found = query("SELECT * FROM objects WHERE id = ANY($1)")
        .bind(ids)
        .fetch_all(&mut *conn)
        .await
        .map_err(db_error)?;
    rows(&found, object_from_row)
}

/// The name of a declared index ([`ObjectIndex::name`]), or a digest of it when that is
/// longer than PostgreSQL keeps.
fn index_name(index: &ObjectIndex) -> String {
    let name = index.name();
    if name.len() <= MAX_IDENTIFIER {
        return name;
    }
    let digest = hex::encode(Sha256::digest(name.as_bytes()));
    format!("objects_by:{}", &digest[..40])
}

pub(super) async fn ensure_indexes(
    conn: &mut PgConnection,
    indexes: Vec<ObjectIndex>,
) -> StoreResult<()> {
    let mut wanted = Vec::new();
    for index in &indexes {
        let columns = index
            .is_safe()
            .then(|| pg_filter::index_columns(&index.fields, &index.sort).ok())
            .flatten()
            .ok_or_else(|| backend(BadIndex(index.name())))?;
        wanted.push((index_name(index), columns.join(", ")));
    }
    let mut tx = conn.begin().await.map_err(db_error)?;
    super::lift_statement_timeout(&mut tx).await?;
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
        .filter(|name| !wanted.iter().any(|(w, _)| w == *name))
        .map(|name| format!("DROP INDEX \"{name}\""))
        .collect();
    for (name, columns) in &wanted {
        if existing.contains(name) {
            continue;
        }
        // Names and paths are checked (`ObjectIndex::is_safe`), so they may sit in the SQL.
        statements.push(format!(
            "CREATE INDEX IF NOT EXISTS \"{name}\" ON objects (model, {columns})"
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
fn visible_users() -> String {
    let (sign_up, last_login) = (
        pg_filter::iso("sign_up_at"),
        pg_filter::iso("last_login_at"),
    );
    format!(
        "WITH visible AS (SELECT id, \
         CASE WHEN id = $1 THEN data || jsonb_build_object( \
             'email', email, 'emailVerified', email_verified, \
             'provider', provider, 'providerUserId', provider_user_id, \
             'signUpAt', {sign_up}, 'lastLoginAt', {last_login}) \
         ELSE (SELECT COALESCE(jsonb_object_agg(f.key, f.value), '{{}}'::jsonb) \
               FROM jsonb_each(users.data) AS f WHERE f.key = ANY($2)) \
         END AS data, \
         CASE WHEN id = $1 THEN created_at ELSE 0 END AS created_at, \
         CASE WHEN id = $1 THEN updated_at ELSE 0 END AS updated_at \
         FROM users)"
    )
}

/// `<select> FROM visible WHERE <filter>` of a users query.
fn user_rows(select: &str, query: &UserQuery) -> StoreResult<Sql> {
    let mut sql = Sql::new(visible_users());
    sql.binds
        .push(Bind::Text(query.caller.clone().unwrap_or_default()));
    sql.binds.push(Bind::Texts(query.public_fields.clone()));
    sql.push(&format!(" {select} FROM visible WHERE "));
    match &query.filter {
        Some(filter) => {
            sql.filter(&filter.expr)?;
        }
        None => {
            sql.push("true");
        }
    }
    Ok(sql)
}

pub(super) async fn query_users(
    conn: &mut PgConnection,
    query: UserQuery,
) -> StoreResult<(Vec<UserRecord>, Option<u64>)> {
    let total = if query.count {
        Some(count(&mut *conn, &user_rows("SELECT COUNT(*)", &query)?).await?)
    } else {
        None
    };
    let mut sql = user_rows("SELECT id", &query)?;
    sql.push(" ").push(&order_by(&query.order)?);
    push_page(&mut sql, query.limit, query.offset);
    let ids: Vec<String> = sql
        .query()
        .fetch_all(&mut *conn)
        .await
        .map_err(db_error)?
        .iter()
        .map(|row| row.try_get(0).map_err(db_error))
        .collect::<StoreResult<_>>()?;
    let found = query_sql("SELECT * FROM users WHERE id = ANY($1)")
        .bind(&ids)
        .fetch_all(&mut *conn)
        .await
        .map_err(db_error)?;
    let mut users = rows(&found, user_from_row)?;
    users.sort_by_key(|u| ids.iter().position(|id| *id == u.id));
    Ok((users, total))
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};
    use sqlx_core::query::query;
    use sqlx_core::query::query as query_sql;
    use sqlx_core::raw_sql::raw_sql;
    use sqlx_core::row::Row;

    use super::{Bind, Sql, object_rows, order_by, push_page};
    use crate::expr::{evaluate, parse, sort_cmp, truthy};
    use crate::store::conformance::TestDatabase;
    use crate::store::{Filter, ObjectIndex, ObjectQuery, Order, PostgresStore, Store};

    /// 20,000 `things` (and a few objects of another model) with the declared indexes, then
    /// analyzed, so that the planner prefers an index where it reads fewer rows.
    async fn things() -> (TestDatabase, PostgresStore) {
        let db = TestDatabase::create().await;
        let store = PostgresStore::open(&db.url, 2).await.unwrap();
        store
            .ensure_indexes(vec![
                ObjectIndex::field("things", "status"),
                ObjectIndex::field("things", "price"),
                ObjectIndex {
                    model: "things".into(),
                    fields: vec!["category".into()],
                    sort: vec!["rank".into()],
                },
                ObjectIndex {
                    model: "things".into(),
                    fields: Vec::new(),
                    sort: vec!["createdAt".into()],
                },
            ])
            .await
            .unwrap();
        // One in a hundred is open; prices are mostly numbers, some strings, booleans or
        // missing; 200 categories of 100 objects with distinct ranks, a few of them strings.
        raw_sql(
            "INSERT INTO objects (id, model, data, created_at, updated_at)
             SELECT 'o' || lpad(i::text, 5, '0'), 'things', jsonb_strip_nulls(jsonb_build_object(
                 'status', CASE WHEN i % 100 = 0 THEN 'open' ELSE 'closed' END,
                 'price', CASE i % 50 WHEN 1 THEN to_jsonb('cheap'::text)
                     WHEN 2 THEN to_jsonb(true) WHEN 3 THEN NULL
                     ELSE to_jsonb((i % 1000) * 1.5) END,
                 'category', 'c' || (i % 200),
                 'rank', CASE WHEN i % 97 = 0 THEN to_jsonb('r' || i) ELSE to_jsonb((i * 7919) % 100000) END,
                 'title', 't' || i)),
                 1700000000000 + (i * 13) % 20000, 1700000000000
             FROM generate_series(1, 20000) AS i;
             INSERT INTO objects (id, model, data, created_at, updated_at)
             SELECT 'x' || i, 'others', jsonb_build_object('status', 'open', 'category', 'c7'),
                 0, 0
             FROM generate_series(1, 100) AS i;
             ANALYZE objects",
        )
        .execute(&mut *store.pool.get().await.unwrap())
        .await
        .unwrap();
        (db, store)
    }

    fn page(src: &str, sort: &[(&str, bool)], limit: u32) -> ObjectQuery {
        let keys: Vec<(String, bool)> = sort.iter().map(|(k, d)| (k.to_string(), *d)).collect();
        ObjectQuery {
            model: "things".into(),
            owner: None,
            filter: Some(Filter::compile(&parse(src).unwrap()).unwrap()),
            order: Order::by(&keys).unwrap(),
            limit,
            offset: 0,
            count: false,
        }
    }

    /// The page query exactly as `query_objects` runs it.
    fn page_sql(query: &ObjectQuery) -> Sql {
        let mut sql = object_rows("SELECT *", query).unwrap();
        sql.push(" ").push(&order_by(&query.order).unwrap());
        push_page(&mut sql, query.limit, query.offset);
        sql
    }

    /// A bind value as an SQL literal (test values only).
    fn literal(bind: &Bind) -> String {
        let quote = |s: &str| format!("'{}'", s.replace('\'', "''"));
        match bind {
            Bind::Text(text) => quote(text),
            Bind::Int(int) => int.to_string(),
            Bind::Json(json) => format!("{}::jsonb", quote(&json.to_string())),
            Bind::Texts(_) => unreachable!("no lists in these queries"),
        }
    }

    /// The plan of `sql` (with `ANALYZE`: what it read), as its text lines. A custom plan is
    /// made for the bound values, as PostgreSQL does for the first runs of a prepared
    /// statement; a generic plan for any values, as it may do after that.
    async fn plan(store: &PostgresStore, sql: &Sql, generic: bool) -> Vec<String> {
        let mut conn = store.pool.get().await.unwrap();
        let mode = if generic {
            "force_generic_plan"
        } else {
            "force_custom_plan"
        };
        raw_sql(&format!(
            "SET plan_cache_mode = {mode}; PREPARE page AS {}",
            sql.text
        ))
        .execute(&mut *conn)
        .await
        .unwrap();
        let args: Vec<String> = sql.binds.iter().map(literal).collect();
        let explain = format!(
            "EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF) EXECUTE page({})",
            args.join(", ")
        );
        let lines = query(&explain)
            .fetch_all(&mut *conn)
            .await
            .unwrap()
            .iter()
            .map(|row| row.get::<String, _>(0))
            .collect();
        raw_sql("DEALLOCATE page; RESET plan_cache_mode")
            .execute(&mut *conn)
            .await
            .unwrap();
        lines
    }

    /// The rows the plan's scans of `objects` read, summed over the scans.
    fn rows_read(plan: &[String]) -> u64 {
        plan.iter()
            .filter(|line| line.contains(" on objects "))
            .filter_map(|line| {
                let rest = &line[line.find("actual rows=")? + "actual rows=".len()..];
                rest.split(' ').next()?.parse::<u64>().ok()
            })
            .sum()
    }

    #[tokio::test]
    async fn comparisons_with_a_value_use_an_expression_index() {
        let (_db, store) = things().await;
        for (src, index, generic_too) in [
            ("status == 'open'", &["objects_by:things:status"][..], true),
            ("'open' == status", &["objects_by:things:status"], true),
            (
                "status == 'open' && INCLUDES(title, '5')",
                &["objects_by:things:status"],
                true,
            ),
            ("price == 7.5", &["objects_by:things:price"], true),
            // A generic plan cannot know how many rows a range holds, so it is left to
            // PostgreSQL, which keeps custom plans when they are cheaper.
            ("price < 3", &["objects_by:things:price"], false),
            ("price >= 1497", &["objects_by:things:price"], false),
            (
                "1497 <= price && status != 'gone'",
                &["objects_by:things:price"],
                false,
            ),
            // The primary key, or `(model, id)`: either reads one row.
            ("_id == 'o00042'", &["objects_pkey", "objects_model"], true),
        ] {
            let mut query = page(src, &[], 20);
            query.order = Order::by_id();
            // The count reads every match: only an index on the filter helps.
            let count = object_rows("SELECT COUNT(*)", &query).unwrap();
            for generic in [false, true] {
                if generic && !generic_too {
                    continue;
                }
                let steps = plan(&store, &count, generic).await;
                assert!(
                    steps.iter().any(|s| index.iter().any(|i| s.contains(i))),
                    "{src} (generic: {generic}): {steps:#?}"
                );
                assert!(
                    !steps.iter().any(|s| s.contains("Seq Scan")),
                    "{src}: {steps:#?}"
                );
            }
        }
    }

    /// The ids of the page `query` asks for, by the reference semantics over every object.
    async fn expected_page(store: &PostgresStore, query: &ObjectQuery) -> Vec<String> {
        let rows = query_sql("SELECT id, data FROM objects WHERE model = 'things'")
            .fetch_all(&mut *store.pool.get().await.unwrap())
            .await
            .unwrap();
        let filter = &query.filter.as_ref().unwrap().expr;
        let mut matches: Vec<(String, Value)> = rows
            .iter()
            .map(|row| {
                let id: String = row.get(0);
                let mut data: Value = row.get(1);
                data["_id"] = json!(id);
                (id, data)
            })
            .filter(|(_, data)| truthy(&evaluate(filter, data)))
            .collect();
        matches.sort_by(|(x_id, x), (y_id, y)| {
            query
                .order
                .keys
                .iter()
                .fold(std::cmp::Ordering::Equal, |order, (path, desc)| {
                    order.then_with(|| {
                        let o = sort_cmp(&x[path.as_str()], &y[path.as_str()]);
                        if *desc { o.reverse() } else { o }
                    })
                })
                .then_with(|| x_id.cmp(y_id))
        });
        matches
            .into_iter()
            .take(query.limit as usize)
            .map(|(id, _)| id)
            .collect()
    }

    #[tokio::test]
    async fn a_sorted_index_serves_a_filtered_page_in_order() {
        let (_db, store) = things().await;
        for desc in [false, true] {
            let query = page("category == 'c7'", &[("rank", desc)], 20);
            for generic in [false, true] {
                let steps = plan(&store, &page_sql(&query), generic).await;
                assert!(
                    steps
                        .iter()
                        .any(|s| s.contains("objects_by:things:category:sort:rank")),
                    "{steps:#?}"
                );
                // Rows come in index order: no sort of every match; descending, only rows
                // that tie on every key are sorted by id (an incremental sort).
                assert!(
                    !steps
                        .iter()
                        .any(|s| s.trim_start_matches([' ', '-', '>']).starts_with("Sort (")),
                    "{steps:#?}"
                );
                // The page and the next row (the incremental sort looks one row ahead).
                assert!(rows_read(&steps) <= 21, "{steps:#?}");
            }
            let (found, _) = store.query_objects(query.clone()).await.unwrap();
            let found: Vec<String> = found.into_iter().map(|o| o.id).collect();
            assert_eq!(found.len(), 20);
            assert_eq!(found, expected_page(&store, &query).await, "desc: {desc}");
        }
    }

    #[tokio::test]
    async fn a_sort_only_index_serves_an_unfiltered_page_in_order() {
        let (_db, store) = things().await;
        for desc in [false, true] {
            let query = page("true", &[("createdAt", desc)], 20);
            let steps = plan(&store, &page_sql(&query), false).await;
            assert!(
                steps
                    .iter()
                    .any(|s| s.contains("objects_by:things::sort:createdAt")),
                "{steps:#?}"
            );
            assert!(rows_read(&steps) <= 21, "{steps:#?}");
        }
    }
}
