//! The SQLite side of a copy: a read-only connection holding one read transaction, so every
//! read sees the same snapshot while a running server keeps writing (WAL readers never take
//! the writer lock), and rows read in batches by `rowid`, converted as the target wants.

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::types::ValueRef;
use rusqlite::{Connection, OpenFlags};
use serde_json::Value;

use super::{BATCH_BYTES, BATCH_ROWS, CopyError, Kind, TablePlan, quoted};

/// The values of one column of a batch, typed for binding as a PostgreSQL array.
#[derive(Debug)]
pub(super) enum Values {
    /// `text[]`; JSON is checked, normalised and sent as text too, cast by the INSERT.
    Text(Vec<Option<String>>),
    /// `int8[]`.
    Int(Vec<Option<i64>>),
    /// `bool[]`.
    Bool(Vec<Option<bool>>),
    /// `bytea[]`.
    Bytes(Vec<Option<Vec<u8>>>),
    /// `float8[]`.
    Float(Vec<Option<f64>>),
}

impl Values {
    fn new(kind: Kind) -> Self {
        match kind {
            Kind::Text | Kind::Json => Self::Text(Vec::new()),
            Kind::Int => Self::Int(Vec::new()),
            Kind::Bool => Self::Bool(Vec::new()),
            Kind::Bytes => Self::Bytes(Vec::new()),
            Kind::Float => Self::Float(Vec::new()),
        }
    }
}

/// Rows of one table, column by column, in `rowid` order.
#[derive(Debug)]
pub(super) struct Batch {
    /// One entry per column of the plan.
    pub(super) columns: Vec<Values>,
    /// Rows in the batch; 0 when the table has no more.
    pub(super) rows: usize,
    /// The `rowid` of the last row, where the next batch starts after.
    pub(super) last_rowid: i64,
}

/// A SQLite database opened read-only inside one read transaction.
pub(super) struct Source {
    /// Taken while a blocking task uses it.
    conn: Option<Connection>,
    path: PathBuf,
}

impl Source {
    /// Open `path` (a database file, or a data directory holding `basalt.sqlite3`) read-only
    /// and start the read transaction whose snapshot every later read sees.
    pub(super) async fn open(path: &Path) -> Result<Self, CopyError> {
        let path = if path.is_dir() {
            path.join("basalt.sqlite3")
        } else {
            path.to_path_buf()
        };
        if !path.is_file() {
            return Err(CopyError::Source(format!(
                "no SQLite database at {} (give sqlite:PATH with the database file or the data directory)",
                path.display()
            )));
        }
        let shown = path.clone();
        let conn = tokio::task::spawn_blocking(move || -> rusqlite::Result<Connection> {
            let conn = Connection::open_with_flags(
                &path,
                OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
            )?;
            conn.busy_timeout(Duration::from_secs(5))?;
            conn.pragma_update(None, "query_only", true)?;
            // A deferred transaction takes its snapshot at the first read, here.
            conn.execute_batch("BEGIN DEFERRED")?;
            conn.query_row("SELECT count(*) FROM sqlite_master", [], |row| {
                row.get::<_, i64>(0)
            })?;
            Ok(conn)
        })
        .await
        .map_err(|err| CopyError::Source(err.to_string()))?
        .map_err(|err| {
            CopyError::Source(format!(
                "{} is not a readable SQLite database: {err}",
                shown.display()
            ))
        })?;
        Ok(Self {
            conn: Some(conn),
            path: shown,
        })
    }

    /// The database file read.
    pub(super) fn path(&self) -> &Path {
        &self.path
    }

    /// Run `work` on the connection on a blocking thread (the connection goes with it).
    async fn with<T: Send + 'static>(
        &mut self,
        work: impl FnOnce(&Connection) -> Result<T, CopyError> + Send + 'static,
    ) -> Result<T, CopyError> {
        let conn = self
            .conn
            .take()
            .ok_or_else(|| CopyError::Source("the SQLite connection was lost".into()))?;
        let (conn, result) = tokio::task::spawn_blocking(move || {
            let result = work(&conn);
            (conn, result)
        })
        .await
        .map_err(|err| CopyError::Source(err.to_string()))?;
        self.conn = Some(conn);
        result
    }

    /// `PRAGMA user_version`: how many SQLite migrations were applied.
    pub(super) async fn level(&mut self) -> Result<i64, CopyError> {
        self.with(|conn| {
            conn.pragma_query_value(None, "user_version", |row| row.get(0))
                .map_err(read_error)
        })
        .await
    }

    /// The names of the tables (SQLite's own excepted).
    pub(super) async fn tables(&mut self) -> Result<Vec<String>, CopyError> {
        self.with(|conn| {
            let mut statement = conn
                .prepare(
                    "SELECT name FROM sqlite_master WHERE type = 'table'
                     AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY name",
                )
                .map_err(read_error)?;
            let names = statement
                .query_map([], |row| row.get(0))
                .map_err(read_error)?
                .collect::<rusqlite::Result<Vec<String>>>()
                .map_err(read_error)?;
            Ok(names)
        })
        .await
    }

    /// The columns of a table, in order.
    pub(super) async fn columns(&mut self, table: &str) -> Result<Vec<String>, CopyError> {
        let sql = format!("SELECT name FROM pragma_table_info({})", literal(table));
        self.with(move |conn| {
            let mut statement = conn.prepare(&sql).map_err(read_error)?;
            let names = statement
                .query_map([], |row| row.get(0))
                .map_err(read_error)?
                .collect::<rusqlite::Result<Vec<String>>>()
                .map_err(read_error)?;
            Ok(names)
        })
        .await
    }

    /// The rows of a table in the snapshot.
    pub(super) async fn count(&mut self, table: &str) -> Result<u64, CopyError> {
        let sql = format!("SELECT count(*) FROM {}", quoted(table));
        self.with(move |conn| {
            let n: i64 = conn
                .query_row(&sql, [], |row| row.get(0))
                .map_err(read_error)?;
            Ok(u64::try_from(n).unwrap_or(0))
        })
        .await
    }

    /// The next rows of `plan`'s table after `after_rowid`: at most [`BATCH_ROWS`] rows and
    /// about [`BATCH_BYTES`] of text and blobs.
    pub(super) async fn read(
        &mut self,
        plan: &TablePlan,
        after_rowid: i64,
    ) -> Result<Batch, CopyError> {
        let plan = plan.clone();
        self.with(move |conn| read_batch(conn, &plan, after_rowid))
            .await
    }
}

fn read_error(err: rusqlite::Error) -> CopyError {
    CopyError::Source(format!("reading the SQLite database: {err}"))
}

/// A string as a SQL literal.
fn literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

fn read_batch(conn: &Connection, plan: &TablePlan, after_rowid: i64) -> Result<Batch, CopyError> {
    let names: Vec<String> = plan.columns.iter().map(|c| quoted(&c.name)).collect();
    let sql = format!(
        "SELECT rowid, {} FROM {} WHERE rowid > ?1 ORDER BY rowid LIMIT ?2",
        names.join(", "),
        quoted(plan.name)
    );
    let mut statement = conn.prepare_cached(&sql).map_err(read_error)?;
    let limit = i64::try_from(BATCH_ROWS).unwrap_or(i64::MAX);
    let mut rows = statement
        .query(rusqlite::params![after_rowid, limit])
        .map_err(read_error)?;
    let mut batch = Batch {
        columns: plan.columns.iter().map(|c| Values::new(c.kind)).collect(),
        rows: 0,
        last_rowid: after_rowid,
    };
    let mut bytes = 0usize;
    while let Some(row) = rows.next().map_err(read_error)? {
        let rowid: i64 = row.get(0).map_err(read_error)?;
        for (i, column) in plan.columns.iter().enumerate() {
            let value = row.get_ref(i + 1).map_err(read_error)?;
            let fail = |reason: String| CopyError::Value {
                table: plan.name.to_string(),
                column: column.name.clone(),
                rowid,
                reason,
            };
            if matches!(value, ValueRef::Null) && !column.nullable {
                return Err(fail(
                    "it is NULL, which the PostgreSQL column does not allow".into(),
                ));
            }
            if let Some(values) = batch.columns.get_mut(i) {
                bytes += push(values, column.kind, value).map_err(fail)?;
            }
        }
        batch.rows += 1;
        batch.last_rowid = rowid;
        if bytes >= BATCH_BYTES {
            break;
        }
    }
    Ok(batch)
}

/// Convert one SQLite value as `kind` says and add it; returns the bytes it holds.
fn push(values: &mut Values, kind: Kind, value: ValueRef<'_>) -> Result<usize, String> {
    match (values, value) {
        (Values::Text(out), ValueRef::Null) => out.push(None),
        (Values::Int(out), ValueRef::Null) => out.push(None),
        (Values::Bool(out), ValueRef::Null) => out.push(None),
        (Values::Bytes(out), ValueRef::Null) => out.push(None),
        (Values::Float(out), ValueRef::Null) => out.push(None),
        (Values::Text(out), ValueRef::Text(bytes)) => {
            let text =
                std::str::from_utf8(bytes).map_err(|_| "it is not UTF-8 text".to_string())?;
            let text = if kind == Kind::Json {
                json(text)?
            } else if text.contains('\0') {
                return Err("it holds a NUL character, which PostgreSQL text cannot".into());
            } else {
                text.to_string()
            };
            let len = text.len();
            out.push(Some(text));
            return Ok(len);
        }
        (Values::Int(out), ValueRef::Integer(n)) => out.push(Some(n)),
        (Values::Bool(out), ValueRef::Integer(n @ (0 | 1))) => out.push(Some(n == 1)),
        (Values::Bytes(out), ValueRef::Blob(bytes) | ValueRef::Text(bytes)) => {
            out.push(Some(bytes.to_vec()));
            return Ok(bytes.len());
        }
        (Values::Float(out), ValueRef::Real(x)) => out.push(Some(x)),
        (Values::Float(out), ValueRef::Integer(n)) => out.push(Some(n as f64)),
        (_, value) => {
            return Err(format!(
                "a SQLite {} where {kind:?} was expected",
                describe(value)
            ));
        }
    }
    Ok(8)
}

fn describe(value: ValueRef<'_>) -> String {
    match value {
        ValueRef::Null => "NULL".into(),
        ValueRef::Integer(n) => format!("integer {n}"),
        ValueRef::Real(x) => format!("real {x}"),
        ValueRef::Text(_) => "text".into(),
        ValueRef::Blob(_) => "blob".into(),
    }
}

/// JSON text as the PostgreSQL store would write it (serde_json), refused when it is not JSON
/// or holds a NUL character (`jsonb` cannot).
fn json(text: &str) -> Result<String, String> {
    let value: Value =
        serde_json::from_str(text).map_err(|err| format!("it is not JSON: {err}"))?;
    if holds_nul(&value) {
        return Err("its JSON holds a NUL character (\\u0000), which jsonb cannot".into());
    }
    serde_json::to_string(&value).map_err(|err| err.to_string())
}

fn holds_nul(value: &Value) -> bool {
    match value {
        Value::String(s) => s.contains('\0'),
        Value::Array(items) => items.iter().any(holds_nul),
        Value::Object(map) => map.iter().any(|(k, v)| k.contains('\0') || holds_nul(v)),
        _ => false,
    }
}
