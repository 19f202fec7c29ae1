//! `basalt migrate --from sqlite:PATH --to postgres://…`: copy a SQLite installation's rows
//! into an empty PostgreSQL database, all in one PostgreSQL transaction.
//!
//! The tables are listed once, in [`TABLES`] (parents before children). Their columns, and how
//! each value converts, are read from the two schemas: the PostgreSQL column's type decides
//! (`boolean` from 0/1, `jsonb` from JSON text, `bigint` from integers, …) and both sides are
//! checked against each other before anything is written. A migration that adds a column to
//! both schemas is therefore copied with no change here; one that adds a table makes the copy
//! refuse (and its tests fail) until the table is listed in [`TABLES`] or [`TARGET_ONLY`].
//! SQLite is read in `source.rs` (one read-only snapshot), PostgreSQL written in `target.rs`.

mod source;
mod target;
#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};

use sqlx_core::connection::Connection;
use sqlx_postgres::PgConnection;

use self::source::Source;
use self::target::{TargetColumn, write_error};
use super::{PostgresStore, StoreError, postgres, sqlite};

/// The tables copied, parents before children (foreign keys).
const TABLES: &[&str] = &[
    "users",
    "sessions",
    "tokens",
    "mail_outbox",
    "client_keys",
    "buckets",
    "files",
    "objects",
    "object_unique_values",
];

/// Tables only the PostgreSQL schema has (state a single SQLite node keeps in memory): never
/// copied, but checked empty like the others.
const TARGET_ONLY: &[&str] = &["rate_buckets", "sign_in_failures"];

/// The migration runner's own record on PostgreSQL: neither checked nor copied.
const MIGRATIONS_TABLE: &str = "basalt_migrations";

/// Rows the PostgreSQL migrations insert themselves, as `(table, condition)`: they do not make
/// the target non-empty, and the source's rows replace them (the `root` bucket keeps its
/// SQLite id, which every public path of its files carries).
const SEEDED: &[(&str, &str)] = &[("buckets", "name = 'root'")];

/// Rows per INSERT at most.
const BATCH_ROWS: usize = 1_000;
/// Bytes of text per INSERT, about: large documents make smaller batches.
const BATCH_BYTES: usize = 8 << 20;

/// How a value converts, decided by the PostgreSQL column's type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// Text as it is.
    Text,
    /// Integers (times in milliseconds, counters).
    Int,
    /// SQLite's 0/1.
    Bool,
    /// JSON text, checked and normalised, cast to `jsonb`.
    Json,
    /// Blobs (key material) to `bytea`.
    Bytes,
    /// Reals to `double precision`.
    Float,
}

impl Kind {
    /// The conversion into a PostgreSQL type (`udt_name`), if there is one.
    fn of(udt: &str) -> Option<Self> {
        Some(match udt {
            "text" | "varchar" | "bpchar" => Self::Text,
            "int8" | "int4" | "int2" => Self::Int,
            "bool" => Self::Bool,
            "jsonb" | "json" => Self::Json,
            "bytea" => Self::Bytes,
            "float8" | "float4" => Self::Float,
            _ => return None,
        })
    }

    /// The array type a batch's values are bound as.
    fn array(self) -> &'static str {
        match self {
            Self::Text | Self::Json => "text[]",
            Self::Int => "int8[]",
            Self::Bool => "bool[]",
            Self::Bytes => "bytea[]",
            Self::Float => "float8[]",
        }
    }
}

/// A column copied.
#[derive(Debug, Clone)]
struct Column {
    name: String,
    kind: Kind,
    /// The PostgreSQL type the INSERT casts to.
    udt: String,
    nullable: bool,
}

/// A table copied, with the columns both schemas have.
#[derive(Debug, Clone)]
struct TablePlan {
    name: &'static str,
    columns: Vec<Column>,
}

/// What a copy did.
#[derive(Debug, Clone)]
pub struct CopyReport {
    /// The SQLite file read.
    pub source: PathBuf,
    /// The schema level of both databases (SQLite's `user_version`, PostgreSQL's last
    /// recorded migration).
    pub schema_level: (i64, i64),
    /// Rows copied per table, in copy order; each equals the source's count and the target's.
    pub tables: Vec<(String, u64)>,
}

/// Why a copy did not happen; in every case no row was committed (the target may have been
/// migrated).
#[derive(Debug, thiserror::Error)]
pub enum CopyError {
    /// The source is missing or not a Basalt SQLite database.
    #[error("{0}")]
    Source(String),
    /// PostgreSQL could not be reached or refused a statement.
    #[error("{0}")]
    Target(String),
    /// The schemas are not the ones this copy knows (levels, tables, columns).
    #[error("{0}")]
    Schema(String),
    /// The target already holds data: the tables that do, with their rows.
    #[error(
        "the PostgreSQL database is not empty ({}); migrate --from/--to copies only into an \
         empty database, and no row was copied",
        list_rows(.0)
    )]
    NotEmpty(Vec<(String, u64)>),
    /// A source value PostgreSQL cannot hold.
    #[error(
        "cannot copy {table}.{column} of the row with rowid {rowid}: {reason} (no row was copied)"
    )]
    Value {
        /// Table.
        table: String,
        /// Column.
        column: String,
        /// SQLite `rowid` of the row.
        rowid: i64,
        /// What is wrong with the value.
        reason: String,
    },
    /// The counts differ after copying (the transaction was rolled back).
    #[error(
        "{table}: {source_rows} row(s) in SQLite, {copied} read, {target_rows} in PostgreSQL; \
         the copy was rolled back"
    )]
    Count {
        /// Table.
        table: String,
        /// Rows in the source snapshot.
        source_rows: u64,
        /// Rows read and inserted.
        copied: u64,
        /// Rows the target counts.
        target_rows: u64,
    },
}

fn list_rows(tables: &[(String, u64)]) -> String {
    let rows: Vec<String> = tables
        .iter()
        .map(|(table, rows)| format!("table {table} has {rows} row(s)"))
        .collect();
    rows.join(", ")
}

/// A name as a quoted SQL identifier.
fn quoted(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Copy the SQLite database at `from` (a file, or a data directory) into the PostgreSQL
/// database at `to`: migrate the target, refuse unless both schemas are at this build's level
/// and the target is empty, then copy every table in batches and compare counts inside one
/// transaction that commits only if all of it worked.
pub async fn sqlite_to_postgres(from: &Path, to: &str) -> Result<CopyReport, CopyError> {
    check_postgres_url(to)?;
    let mut source = Source::open(from).await?;
    let sqlite_level = source.level().await?;
    check_sqlite_level(sqlite_level, sqlite::schema_level(), source.path())?;
    check_tables("SQLite", &source.tables().await?, &[])?;

    // One plain connection first: the pool would report a refused connection only as a
    // timeout.
    let probe = <PgConnection as Connection>::connect(to)
        .await
        .map_err(|err| CopyError::Target(format!("cannot connect to PostgreSQL: {err}")))?;
    probe.close().await.map_err(write_error)?;
    let opening = |err| {
        let cause = match err {
            StoreError::Backend(cause) => cause.to_string(),
            other => other.to_string(),
        };
        CopyError::Target(format!("opening the PostgreSQL database: {cause}"))
    };
    let store = PostgresStore::open(to, 2).await.map_err(opening)?;
    let mut conn = store.connection().await.map_err(opening)?;
    let mut tx = conn.begin().await.map_err(write_error)?;
    let postgres_level = target::level(&mut tx).await?;
    check_postgres_level(postgres_level, postgres::schema_level())?;
    let target_tables = target::tables(&mut tx).await?;
    check_tables("PostgreSQL", &target_tables, TARGET_ONLY)?;
    let checked: Vec<String> = TABLES
        .iter()
        .chain(TARGET_ONLY)
        .map(|t| t.to_string())
        .collect();
    target::lock(&mut tx, &checked).await?;
    target::check_empty(&mut tx, &checked).await?;

    let mut plans = Vec::with_capacity(TABLES.len());
    for table in TABLES {
        let from = source.columns(table).await?;
        let to = target::columns(&mut tx, table).await?;
        plans.push(plan(table, &from, &to)?);
    }
    target::delete_seeded(&mut tx).await?;
    let mut tables = Vec::with_capacity(plans.len());
    for plan in &plans {
        let source_rows = source.count(plan.name).await?;
        let mut copied = 0u64;
        let mut after = i64::MIN;
        loop {
            let batch = source.read(plan, after).await?;
            if batch.rows == 0 {
                break;
            }
            target::insert(&mut tx, plan, &batch).await?;
            copied += u64::try_from(batch.rows).unwrap_or(0);
            after = batch.last_rowid;
        }
        let target_rows = target::count(&mut tx, plan.name).await?;
        if copied != source_rows || target_rows != source_rows {
            return Err(CopyError::Count {
                table: plan.name.to_string(),
                source_rows,
                copied,
                target_rows,
            });
        }
        tables.push((plan.name.to_string(), copied));
    }
    tx.commit().await.map_err(write_error)?;
    Ok(CopyReport {
        source: source.path().to_path_buf(),
        schema_level: (sqlite_level, postgres_level),
        tables,
    })
}

/// Refuse anything but a `postgres://` URL, without repeating it (it may hold a password).
fn check_postgres_url(url: &str) -> Result<(), CopyError> {
    match url::Url::parse(url) {
        Ok(parsed) if matches!(parsed.scheme(), "postgres" | "postgresql") => Ok(()),
        Ok(parsed) => Err(CopyError::Target(format!(
            "the target must be a postgres:// URL, not {}:",
            parsed.scheme()
        ))),
        Err(err) => Err(CopyError::Target(format!(
            "the target must be a postgres:// URL ({err})"
        ))),
    }
}

fn check_sqlite_level(found: i64, expected: i64, path: &Path) -> Result<(), CopyError> {
    if found == expected {
        return Ok(());
    }
    let path = path.display();
    Err(CopyError::Schema(if found == 0 {
        format!("{path} is not a Basalt database (it has no Basalt migrations)")
    } else if found < expected {
        format!(
            "the SQLite database {path} is at schema level {found}, this basalt at {expected}: \
             upgrade it first (`basalt migrate` with data_dir pointing at it, or start this \
             basalt on it once), then copy"
        )
    } else {
        format!(
            "the SQLite database {path} is at schema level {found}, made by a newer basalt \
             (this one knows {expected}): copy with that version"
        )
    }))
}

fn check_postgres_level(found: i64, expected: i64) -> Result<(), CopyError> {
    if found == expected {
        return Ok(());
    }
    Err(CopyError::Schema(format!(
        "the PostgreSQL database is at schema level {found}, made by a newer basalt (this one \
         knows {expected}): copy with that version"
    )))
}

/// Refuse unless `found` is exactly [`TABLES`] plus `extra` (and the migrations record).
fn check_tables(side: &str, found: &[String], extra: &[&str]) -> Result<(), CopyError> {
    let known = |t: &str| TABLES.contains(&t) || extra.contains(&t) || t == MIGRATIONS_TABLE;
    if let Some(unknown) = found.iter().find(|t| !known(t)) {
        return Err(CopyError::Schema(format!(
            "the {side} database has a table {unknown} that this copy does not know \
             (store/copy lists the tables it copies)"
        )));
    }
    let expected = TABLES.iter().chain(extra);
    if let Some(missing) = expected
        .into_iter()
        .find(|t| !found.iter().any(|f| f == *t))
    {
        return Err(CopyError::Schema(format!(
            "the {side} database has no table {missing}"
        )));
    }
    Ok(())
}

/// The columns of `table` to copy: every source column must have a target column of a type
/// the copy converts to, and every target column the source lacks must fill itself.
fn plan(table: &'static str, from: &[String], to: &[TargetColumn]) -> Result<TablePlan, CopyError> {
    let mut columns = Vec::with_capacity(from.len());
    for name in from {
        let target = to.iter().find(|c| &c.name == name).ok_or_else(|| {
            CopyError::Schema(format!(
                "column {table}.{name} of the SQLite database has no counterpart in PostgreSQL"
            ))
        })?;
        let kind = Kind::of(&target.udt).ok_or_else(|| {
            CopyError::Schema(format!(
                "column {table}.{name} has the PostgreSQL type {}, which the copy does not convert",
                target.udt
            ))
        })?;
        columns.push(Column {
            name: name.clone(),
            kind,
            udt: target.udt.clone(),
            nullable: target.nullable,
        });
    }
    if let Some(unfilled) = to
        .iter()
        .find(|c| !from.contains(&c.name) && !c.nullable && !c.filled)
    {
        return Err(CopyError::Schema(format!(
            "column {table}.{} of PostgreSQL has no SQLite counterpart and no default",
            unfilled.name
        )));
    }
    Ok(TablePlan {
        name: table,
        columns,
    })
}
