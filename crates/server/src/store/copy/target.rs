//! The PostgreSQL side of a copy: the schema as the migration runner left it, the emptiness
//! check under table locks, batched `INSERT … SELECT FROM UNNEST(…)` and the counts, all on
//! the one transaction that commits the copy or none of it.

use sqlx_core::query::query;
use sqlx_core::query_scalar::query_scalar;
use sqlx_core::row::Row;
use sqlx_postgres::PgConnection;

use super::source::{Batch, Values};
use super::{CopyError, SEEDED, TablePlan, quoted};

/// A column of the target schema.
#[derive(Debug, Clone)]
pub(super) struct TargetColumn {
    /// Column name.
    pub(super) name: String,
    /// Its type's name (`udt_name`: `text`, `int8`, `bool`, `jsonb`, …).
    pub(super) udt: String,
    /// Whether it takes NULL.
    pub(super) nullable: bool,
    /// Whether PostgreSQL fills it when the INSERT leaves it out (default, identity).
    pub(super) filled: bool,
}

pub(super) fn write_error(err: sqlx_core::Error) -> CopyError {
    CopyError::Target(format!("PostgreSQL: {err}"))
}

/// The highest migration version recorded in `basalt_migrations`.
pub(super) async fn level(conn: &mut PgConnection) -> Result<i64, CopyError> {
    let level: Option<i32> = query_scalar("SELECT max(version) FROM basalt_migrations")
        .fetch_one(conn)
        .await
        .map_err(write_error)?;
    Ok(level.map_or(0, i64::from))
}

/// The tables of the current schema.
pub(super) async fn tables(conn: &mut PgConnection) -> Result<Vec<String>, CopyError> {
    query_scalar(
        "SELECT tablename::text FROM pg_tables WHERE schemaname = current_schema()
         ORDER BY tablename",
    )
    .fetch_all(conn)
    .await
    .map_err(write_error)
}

/// The columns of a table, in order.
pub(super) async fn columns(
    conn: &mut PgConnection,
    table: &str,
) -> Result<Vec<TargetColumn>, CopyError> {
    let rows = query(
        "SELECT column_name::text, udt_name::text, is_nullable = 'YES',
                column_default IS NOT NULL OR is_identity = 'YES' OR is_generated <> 'NEVER'
         FROM information_schema.columns
         WHERE table_schema = current_schema() AND table_name = $1
         ORDER BY ordinal_position",
    )
    .bind(table)
    .fetch_all(conn)
    .await
    .map_err(write_error)?;
    rows.iter()
        .map(|row| {
            Ok(TargetColumn {
                name: row.try_get(0).map_err(write_error)?,
                udt: row.try_get(1).map_err(write_error)?,
                nullable: row.try_get(2).map_err(write_error)?,
                filled: row.try_get(3).map_err(write_error)?,
            })
        })
        .collect()
}

/// Lock `tables` against writes (reads go on) until the transaction ends, so nothing lands
/// between the emptiness check and the commit; give up after 10 s rather than wait forever
/// behind a running node.
pub(super) async fn lock(conn: &mut PgConnection, tables: &[String]) -> Result<(), CopyError> {
    query("SET LOCAL lock_timeout = '10s'")
        .execute(&mut *conn)
        .await
        .map_err(write_error)?;
    let names: Vec<String> = tables.iter().map(|t| quoted(t)).collect();
    query(&format!(
        "LOCK TABLE {} IN EXCLUSIVE MODE",
        names.join(", ")
    ))
    .execute(conn)
    .await
    .map_err(|err| {
        CopyError::Target(format!(
            "could not lock the PostgreSQL tables (is a Basalt node running on it?): {err}"
        ))
    })?;
    Ok(())
}

/// Refuse unless every table is empty but for the rows the migrations seed; name every
/// table that is not.
pub(super) async fn check_empty(
    conn: &mut PgConnection,
    tables: &[String],
) -> Result<(), CopyError> {
    let mut taken = Vec::new();
    for table in tables {
        let seeded = SEEDED.iter().find(|(t, _)| t == table).map(|(_, c)| *c);
        let sql = match seeded {
            Some(condition) => format!(
                "SELECT count(*) FROM {} WHERE NOT ({condition})",
                quoted(table)
            ),
            None => format!("SELECT count(*) FROM {}", quoted(table)),
        };
        let rows: i64 = query_scalar(&sql)
            .fetch_one(&mut *conn)
            .await
            .map_err(write_error)?;
        if rows > 0 {
            taken.push((table.clone(), u64::try_from(rows).unwrap_or(0)));
        }
    }
    if taken.is_empty() {
        Ok(())
    } else {
        Err(CopyError::NotEmpty(taken))
    }
}

/// Delete the rows the migrations seeded: the source's take their place.
pub(super) async fn delete_seeded(conn: &mut PgConnection) -> Result<(), CopyError> {
    for (table, condition) in SEEDED {
        query(&format!("DELETE FROM {} WHERE {condition}", quoted(table)))
            .execute(&mut *conn)
            .await
            .map_err(write_error)?;
    }
    Ok(())
}

/// Insert a batch with one statement: each column bound as an array, unnested in order (so
/// identity columns such as `seq` number the rows in the source's `rowid` order) and cast to
/// the column's type (`jsonb` from text).
pub(super) async fn insert(
    conn: &mut PgConnection,
    plan: &TablePlan,
    batch: &Batch,
) -> Result<(), CopyError> {
    if batch.rows == 0 {
        return Ok(());
    }
    let names: Vec<String> = plan.columns.iter().map(|c| quoted(&c.name)).collect();
    let casts: Vec<String> = plan
        .columns
        .iter()
        .map(|c| format!("u.{}::{}", quoted(&c.name), quoted(&c.udt)))
        .collect();
    let arrays: Vec<String> = plan
        .columns
        .iter()
        .enumerate()
        .map(|(i, c)| format!("${}::{}", i + 1, c.kind.array()))
        .collect();
    let sql = format!(
        "INSERT INTO {table} ({names}) SELECT {casts}
         FROM UNNEST({arrays}) WITH ORDINALITY AS u({names}, basalt_row)
         ORDER BY u.basalt_row",
        table = quoted(plan.name),
        names = names.join(", "),
        casts = casts.join(", "),
        arrays = arrays.join(", "),
    );
    let mut statement = query(&sql);
    for values in &batch.columns {
        statement = match values {
            Values::Text(v) => statement.bind(v),
            Values::Int(v) => statement.bind(v),
            Values::Bool(v) => statement.bind(v),
            Values::Bytes(v) => statement.bind(v),
            Values::Float(v) => statement.bind(v),
        };
    }
    statement
        .execute(conn)
        .await
        .map_err(|err| CopyError::Target(format!("inserting into {}: {err}", plan.name)))?;
    Ok(())
}

/// The rows of a table as this transaction sees them.
pub(super) async fn count(conn: &mut PgConnection, table: &str) -> Result<u64, CopyError> {
    let rows: i64 = query_scalar(&format!("SELECT count(*) FROM {}", quoted(table)))
        .fetch_one(conn)
        .await
        .map_err(write_error)?;
    Ok(u64::try_from(rows).unwrap_or(0))
}
