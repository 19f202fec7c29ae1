//! Buckets and file metadata on PostgreSQL: reads, writes, numbered file names, the storage
//! list calls and totals.
//!
//! File names are numbered as on SQLite (`photo.png` → `photo-1.png`). A write first asks for
//! the requested name in one statement, without a lock (the unique key on `(bucket_id,
//! file_name)` decides); only when that name is taken does it number the name, holding a
//! transaction-scoped advisory lock on the bucket, so numbering is serialised per bucket as
//! SQLite's single writer serialises it.

use serde_json::{Value, json};
use sqlx_core::connection::Connection;
use sqlx_core::query::query;
use sqlx_core::row::Row;
use sqlx_postgres::{PgConnection, PgRow};

use super::{Bind, Sql, count, db_error, get, order_by, push_page, rows};
use crate::store::pg_filter;
use crate::store::{
    BucketRecord, FileRecord, StorageQuery, StorageStats, StoreError, StoreResult, numbered_name,
};

fn tags(value: Value) -> Vec<String> {
    serde_json::from_value(value).unwrap_or_default()
}

pub(super) fn bucket_from_row(row: &PgRow) -> StoreResult<BucketRecord> {
    Ok(BucketRecord {
        id: get(row, "id")?,
        name: get(row, "name")?,
        is_public: get(row, "is_public")?,
        user_id: get(row, "user_id")?,
        tags: tags(get(row, "tags")?),
        created_at: get(row, "created_at")?,
        updated_at: get(row, "updated_at")?,
    })
}

pub(super) fn file_from_row(row: &PgRow) -> StoreResult<FileRecord> {
    Ok(FileRecord {
        id: get(row, "id")?,
        bucket_id: get(row, "bucket_id")?,
        file_name: get(row, "file_name")?,
        blob_key: get(row, "blob_key")?,
        size: get(row, "size")?,
        encoding: get(row, "encoding")?,
        mime_type: get(row, "mime_type")?,
        etag: get(row, "etag")?,
        is_public: get(row, "is_public")?,
        user_id: get(row, "user_id")?,
        tags: tags(get(row, "tags")?),
        uploaded_at: get(row, "uploaded_at")?,
        updated_at: get(row, "updated_at")?,
    })
}

/// A bucket's name conflict is named `name`, as on SQLite.
fn name_conflict(err: StoreError) -> StoreError {
    match err {
        StoreError::Conflict { .. } => StoreError::Conflict {
            constraint: "name".into(),
        },
        other => other,
    }
}

pub(super) async fn bucket(
    conn: &mut PgConnection,
    id_or_name: &str,
) -> StoreResult<Option<BucketRecord>> {
    query(
        "SELECT * FROM buckets WHERE id = $1
         UNION ALL SELECT * FROM buckets WHERE name = $1 AND id <> $1 LIMIT 1",
    )
    .bind(id_or_name)
    .fetch_optional(&mut *conn)
    .await
    .map_err(db_error)?
    .as_ref()
    .map(bucket_from_row)
    .transpose()
}

/// Serialise the numbering of files in one bucket until the transaction ends.
async fn lock_bucket_names(conn: &mut PgConnection, bucket_id: &str) -> StoreResult<()> {
    query("SELECT pg_advisory_xact_lock(hashtextextended('basalt.files:' || $1, 0))")
        .bind(bucket_id)
        .execute(conn)
        .await
        .map_err(db_error)?;
    Ok(())
}

/// The unique constraint on `files (bucket_id, file_name)` (PostgreSQL's name for the
/// `UNIQUE (bucket_id, file_name)` of migration 0002).
const FILE_NAME_KEY: &str = "files_bucket_id_file_name_key";

/// Whether a write failed because another file of the bucket has the name.
fn is_name_taken(err: &sqlx_core::Error) -> bool {
    matches!(err, sqlx_core::Error::Database(db)
        if db.is_unique_violation() && db.constraint() == Some(FILE_NAME_KEY))
}

/// Whether another file of the bucket has this name.
async fn taken(
    conn: &mut PgConnection,
    bucket_id: &str,
    name: &str,
    except_id: &str,
) -> StoreResult<bool> {
    Ok(
        query("SELECT 1 FROM files WHERE bucket_id = $1 AND file_name = $2 AND id <> $3")
            .bind(bucket_id)
            .bind(name)
            .bind(except_id)
            .fetch_optional(conn)
            .await
            .map_err(db_error)?
            .is_some(),
    )
}

/// The first number to try for a taken `name`: past the count of numbered names already there
/// (as on SQLite), so a name uploaded again and again costs an attempt or two.
async fn first_number(conn: &mut PgConnection, bucket_id: &str, name: &str) -> StoreResult<u32> {
    let escape = |s: &str| {
        s.replace('\\', "\\\\")
            .replace('%', "\\%")
            .replace('_', "\\_")
    };
    let pattern = match numbered_name(name, 0).rsplit_once("-0") {
        Some((stem, ext)) => format!("{}-%{}", escape(stem), escape(ext)),
        None => format!("{}-%", escape(name)),
    };
    let numbered: i64 =
        query("SELECT COUNT(*) FROM files WHERE bucket_id = $1 AND file_name LIKE $2 ESCAPE '\\'")
            .bind(bucket_id)
            .bind(pattern)
            .fetch_one(conn)
            .await
            .map_err(db_error)?
            .try_get(0)
            .map_err(db_error)?;
    Ok(u32::try_from(numbered).unwrap_or(0).saturating_add(1))
}

/// The next number after `n`; a bucket cannot hold the four billion rows that would exhaust it.
fn next_number(n: u32) -> StoreResult<u32> {
    n.checked_add(1)
        .ok_or_else(|| StoreError::Backend("no free numbered file name".into()))
}

/// Insert `file` named `name` unless the bucket has a file of that name (`ON CONFLICT DO
/// NOTHING`: an insert of the name still in progress elsewhere is waited for). Whether it
/// was inserted.
async fn try_insert(conn: &mut PgConnection, file: &FileRecord, name: &str) -> StoreResult<bool> {
    let done = query(
        "INSERT INTO files (id, bucket_id, file_name, blob_key, size, encoding, mime_type,
            etag, is_public, user_id, tags, uploaded_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $12)
         ON CONFLICT (bucket_id, file_name) DO NOTHING",
    )
    .bind(&file.id)
    .bind(&file.bucket_id)
    .bind(name)
    .bind(&file.blob_key)
    .bind(file.size)
    .bind(&file.encoding)
    .bind(&file.mime_type)
    .bind(&file.etag)
    .bind(file.is_public)
    .bind(&file.user_id)
    .bind(json!(file.tags))
    .bind(file.uploaded_at)
    .execute(conn)
    .await
    .map_err(db_error)?;
    Ok(done.rows_affected() == 1)
}

/// Record an upload. The requested name is tried first in one statement of its own, without
/// the bucket lock; only when it is taken does the upload number it, holding the bucket lock
/// so that numbering is serialised as SQLite's single writer serialises it. Each numbered
/// attempt is itself an `ON CONFLICT DO NOTHING` insert: besides other numbering writers
/// (which wait for the lock), only a lock-free write asking for that very name (`photo-3.png`)
/// can take it meanwhile, and then the next number is tried. Every failed attempt is a
/// committed file of the bucket with that numbered name, so the attempts are bounded by the
/// files of the name's family plus the lock-free writes racing in; usually there is one.
pub(super) async fn insert_file(
    conn: &mut PgConnection,
    file: FileRecord,
) -> StoreResult<FileRecord> {
    write_named(conn, file, FileWrite::Insert).await
}

/// Which statement writes a file's row under a name.
#[derive(Clone, Copy)]
enum FileWrite {
    /// A new file (`try_insert`).
    Insert,
    /// An existing file (`try_update`, or `try_update_locked` inside the numbering).
    Update,
}

impl FileWrite {
    /// The write on its own, without the bucket lock: `false` when the name is taken.
    async fn unlocked(
        self,
        conn: &mut PgConnection,
        file: &FileRecord,
        name: &str,
    ) -> StoreResult<bool> {
        match self {
            Self::Insert => try_insert(conn, file, name).await,
            Self::Update => try_update(conn, file, name).await,
        }
    }

    /// The write inside the numbering transaction: `false` when the name is taken.
    async fn locked(
        self,
        tx: &mut PgConnection,
        file: &FileRecord,
        name: &str,
    ) -> StoreResult<bool> {
        match self {
            Self::Insert => try_insert(tx, file, name).await,
            Self::Update => try_update_locked(tx, file, name).await,
        }
    }
}

/// Write a file under its requested name in one statement without the lock; only when the
/// name is taken, number it under the bucket lock (see `insert_file`).
async fn write_named(
    conn: &mut PgConnection,
    file: FileRecord,
    how: FileWrite,
) -> StoreResult<FileRecord> {
    if how.unlocked(conn, &file, &file.file_name).await? {
        return Ok(file);
    }
    let mut tx = conn.begin().await.map_err(db_error)?;
    lock_bucket_names(&mut tx, &file.bucket_id).await?;
    // Freed meanwhile (a delete), the name itself comes first, as on SQLite.
    let mut name = file.file_name.clone();
    if !how.locked(&mut tx, &file, &name).await? {
        let mut n = first_number(&mut tx, &file.bucket_id, &file.file_name).await?;
        loop {
            name = numbered_name(&file.file_name, n);
            if how.locked(&mut tx, &file, &name).await? {
                break;
            }
            n = next_number(n)?;
        }
    }
    tx.commit().await.map_err(db_error)?;
    Ok(FileRecord {
        file_name: name,
        ..file
    })
}

pub(super) async fn file(
    conn: &mut PgConnection,
    bucket_id: &str,
    file_id: &str,
) -> StoreResult<Option<FileRecord>> {
    query("SELECT * FROM files WHERE bucket_id = $1 AND id = $2")
        .bind(bucket_id)
        .bind(file_id)
        .fetch_optional(&mut *conn)
        .await
        .map_err(db_error)?
        .as_ref()
        .map(file_from_row)
        .transpose()
}

pub(super) async fn file_by_key(
    conn: &mut PgConnection,
    bucket_id: &str,
    id_or_name: &str,
) -> StoreResult<Option<FileRecord>> {
    query(
        "SELECT * FROM files WHERE bucket_id = $1 AND id = $2
         UNION ALL SELECT * FROM files WHERE bucket_id = $1 AND file_name = $2 AND id <> $2
         LIMIT 1",
    )
    .bind(bucket_id)
    .bind(id_or_name)
    .fetch_optional(&mut *conn)
    .await
    .map_err(db_error)?
    .as_ref()
    .map(file_from_row)
    .transpose()
}

pub(super) async fn delete_file(
    conn: &mut PgConnection,
    bucket_id: &str,
    file_id: &str,
) -> StoreResult<Option<String>> {
    query("DELETE FROM files WHERE bucket_id = $1 AND id = $2 RETURNING blob_key")
        .bind(bucket_id)
        .bind(file_id)
        .fetch_optional(&mut *conn)
        .await
        .map_err(db_error)?
        .map(|row| row.try_get(0).map_err(db_error))
        .transpose()
}

pub(super) async fn insert_bucket(
    conn: &mut PgConnection,
    bucket: BucketRecord,
) -> StoreResult<()> {
    query(
        "INSERT INTO buckets (id, name, is_public, user_id, tags, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(&bucket.id)
    .bind(&bucket.name)
    .bind(bucket.is_public)
    .bind(&bucket.user_id)
    .bind(json!(bucket.tags))
    .bind(bucket.created_at)
    .bind(bucket.updated_at)
    .execute(&mut *conn)
    .await
    .map_err(db_error)
    .map_err(name_conflict)?;
    Ok(())
}

pub(super) async fn update_bucket(
    conn: &mut PgConnection,
    bucket: BucketRecord,
    files_public: Option<bool>,
) -> StoreResult<()> {
    let mut tx = conn.begin().await.map_err(db_error)?;
    query("UPDATE buckets SET name = $2, is_public = $3, tags = $4, updated_at = $5 WHERE id = $1")
        .bind(&bucket.id)
        .bind(&bucket.name)
        .bind(bucket.is_public)
        .bind(json!(bucket.tags))
        .bind(bucket.updated_at)
        .execute(&mut *tx)
        .await
        .map_err(db_error)
        .map_err(name_conflict)?;
    if let Some(public) = files_public {
        query("UPDATE files SET is_public = $2, updated_at = $3 WHERE bucket_id = $1")
            .bind(&bucket.id)
            .bind(public)
            .bind(bucket.updated_at)
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
    }
    tx.commit().await.map_err(db_error)
}

pub(super) async fn delete_bucket_files(
    conn: &mut PgConnection,
    bucket_id: &str,
    bucket_too: bool,
) -> StoreResult<Vec<String>> {
    let mut tx = conn.begin().await.map_err(db_error)?;
    let keys = query("DELETE FROM files WHERE bucket_id = $1 RETURNING blob_key")
        .bind(bucket_id)
        .fetch_all(&mut *tx)
        .await
        .map_err(db_error)?
        .iter()
        .map(|row| row.try_get(0).map_err(db_error))
        .collect::<StoreResult<Vec<String>>>()?;
    if bucket_too {
        query("DELETE FROM buckets WHERE id = $1")
            .bind(bucket_id)
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
    }
    tx.commit().await.map_err(db_error)?;
    Ok(keys)
}

/// Write `file` named `name`; `Ok(false)` when another file of the bucket has the name.
async fn try_update(conn: &mut PgConnection, file: &FileRecord, name: &str) -> StoreResult<bool> {
    let done = query(
        "UPDATE files SET bucket_id = $2, file_name = $3, blob_key = $4, size = $5,
            mime_type = $6, etag = $7, is_public = $8, tags = $9, updated_at = $10
         WHERE id = $1",
    )
    .bind(&file.id)
    .bind(&file.bucket_id)
    .bind(name)
    .bind(&file.blob_key)
    .bind(file.size)
    .bind(&file.mime_type)
    .bind(&file.etag)
    .bind(file.is_public)
    .bind(json!(file.tags))
    .bind(file.updated_at)
    .execute(conn)
    .await;
    match done {
        Ok(_) => Ok(true),
        Err(err) if is_name_taken(&err) => Ok(false),
        Err(err) => Err(db_error(err)),
    }
}

/// Inside the numbering transaction: write `file` named `name` if no other file has it. A
/// free name can still be taken by a lock-free write before the update lands; the update
/// then fails alone, rolled back to a savepoint, and the transaction goes on.
async fn try_update_locked(
    tx: &mut PgConnection,
    file: &FileRecord,
    name: &str,
) -> StoreResult<bool> {
    if taken(&mut *tx, &file.bucket_id, name, &file.id).await? {
        return Ok(false);
    }
    query("SAVEPOINT basalt_file_name")
        .execute(&mut *tx)
        .await
        .map_err(db_error)?;
    let written = try_update(&mut *tx, file, name).await?;
    if written {
        query("RELEASE SAVEPOINT basalt_file_name")
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
    } else {
        query("ROLLBACK TO SAVEPOINT basalt_file_name")
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
    }
    Ok(written)
}

/// Write a file; a name another file has is numbered as an upload's is (see `insert_file`):
/// first one statement without the lock, then, only when the name is taken, numbering under
/// the bucket lock.
pub(super) async fn update_file(
    conn: &mut PgConnection,
    file: FileRecord,
) -> StoreResult<FileRecord> {
    write_named(conn, file, FileWrite::Update).await
}

/// The read rule of buckets and files (`FileService::find`): public ones, and the reader's own.
/// Rows without an owner are visible only when public.
fn push_visible(sql: &mut Sql, alias: &str, reader: Option<&str>) {
    match reader {
        Some(reader) => {
            sql.push(&format!("({alias}.is_public OR {alias}.user_id = "))
                .bind(Bind::Text(reader.to_string()))
                .push(")");
        }
        None => {
            sql.push(&format!("{alias}.is_public"));
        }
    }
}

/// The rows of a storage list, as the filter compiler reads them: `id`, `data` (the wire
/// fields), `created_at` (for files the upload time) and `updated_at`, besides the table's own.
#[derive(Clone, Copy)]
enum Rows {
    Buckets,
    Files,
}

fn push_rows(sql: &mut Sql, rows_of: Rows, query: &StorageQuery) {
    let (created, updated) = (pg_filter::iso("created_at"), pg_filter::iso("updated_at"));
    match rows_of {
        Rows::Buckets => {
            sql.push(&format!(
                "SELECT b.*, jsonb_build_object('_id', b.id, 'name', b.name, \
                 'isPublic', b.is_public, 'userId', b.user_id, 'tags', b.tags, \
                 'createdAt', {}, 'updatedAt', {}) AS data FROM buckets b WHERE ",
                created.replace("created_at", "b.created_at"),
                updated.replace("updated_at", "b.updated_at"),
            ));
            push_visible(sql, "b", query.reader.as_deref());
        }
        Rows::Files => {
            sql.push(
                "SELECT f.*, f.uploaded_at AS created_at, jsonb_build_object('_id', f.id, \
                 'bucketId', f.bucket_id, 'fileName', f.file_name, 'isPublic', f.is_public, \
                 'size', f.size, 'encoding', f.encoding, 'mimeType', f.mime_type, \
                 'publicPath', ",
            )
            .bind(Bind::Text(query.public_base.clone()))
            .push(&format!(
                "::text || '/_storage/' || f.bucket_id || '/' || f.id, \
                 'userId', f.user_id, 'tags', f.tags, 'uploadedAt', {}, 'updatedAt', {}) \
                 AS data FROM files f WHERE ",
                created.replace("created_at", "f.uploaded_at"),
                updated.replace("updated_at", "f.updated_at"),
            ));
            push_visible(sql, "f", query.reader.as_deref());
            if let Some(bucket_id) = &query.bucket_id {
                sql.push(" AND f.bucket_id = ")
                    .bind(Bind::Text(bucket_id.clone()));
            }
        }
    }
}

/// `<select> FROM (rows) AS r WHERE <filter>`.
fn filtered_rows(select: &str, rows_of: Rows, query: &StorageQuery) -> StoreResult<Sql> {
    let mut sql = Sql::new(format!("{select} FROM ("));
    push_rows(&mut sql, rows_of, query);
    sql.push(") AS r WHERE ");
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

async fn page<T>(
    conn: &mut PgConnection,
    rows_of: Rows,
    query: StorageQuery,
    from_row: fn(&PgRow) -> StoreResult<T>,
) -> StoreResult<(Vec<T>, Option<u64>)> {
    let total = if query.count {
        Some(
            count(
                &mut *conn,
                &filtered_rows("SELECT COUNT(*)", rows_of, &query)?,
            )
            .await?,
        )
    } else {
        None
    };
    let mut sql = filtered_rows("SELECT *", rows_of, &query)?;
    sql.push(" ").push(&order_by(&query.order)?);
    push_page(&mut sql, query.limit, query.offset);
    let found = sql.query().fetch_all(&mut *conn).await.map_err(db_error)?;
    Ok((rows(&found, from_row)?, total))
}

pub(super) async fn query_buckets(
    conn: &mut PgConnection,
    query: StorageQuery,
) -> StoreResult<(Vec<BucketRecord>, Option<u64>)> {
    page(conn, Rows::Buckets, query, bucket_from_row).await
}

pub(super) async fn query_files(
    conn: &mut PgConnection,
    query: StorageQuery,
) -> StoreResult<(Vec<FileRecord>, Option<u64>)> {
    page(conn, Rows::Files, query, file_from_row).await
}

/// Totals over the buckets and files the reader may read, in one statement (one snapshot).
pub(super) async fn storage_stats(
    conn: &mut PgConnection,
    reader: Option<&str>,
    bucket_id: Option<&str>,
) -> StoreResult<StorageStats> {
    let mut sql = Sql::new("SELECT (SELECT COUNT(*) FROM buckets b WHERE ");
    push_visible(&mut sql, "b", reader);
    sql.push(
        "), COUNT(*), COALESCE(SUM(f.size), 0)::BIGINT, \
         COALESCE(AVG(f.size), 0)::DOUBLE PRECISION, \
         COALESCE(MIN(f.size), 0), COALESCE(MAX(f.size), 0) FROM files f WHERE ",
    );
    push_visible(&mut sql, "f", reader);
    if let Some(bucket_id) = bucket_id {
        sql.push(" AND f.bucket_id = ")
            .bind(Bind::Text(bucket_id.to_string()));
    }
    let row = sql.query().fetch_one(&mut *conn).await.map_err(db_error)?;
    let count = |i: usize| -> StoreResult<u64> {
        Ok(u64::try_from(row.try_get::<i64, _>(i).map_err(db_error)?).unwrap_or(0))
    };
    Ok(StorageStats {
        buckets: count(0)?,
        files: count(1)?,
        total_size: row.try_get(2).map_err(db_error)?,
        average_size: row.try_get(3).map_err(db_error)?,
        min_size: row.try_get(4).map_err(db_error)?,
        max_size: row.try_get(5).map_err(db_error)?,
    })
}

/// Delete the files of a bucket owned by `owner` named (by id or name) in `keys`; their blob
/// keys. One statement, so one transaction.
pub(super) async fn delete_owned_files(
    conn: &mut PgConnection,
    bucket_id: &str,
    owner: &str,
    keys: Vec<String>,
) -> StoreResult<Vec<String>> {
    query(
        "DELETE FROM files WHERE bucket_id = $1 AND user_id = $2
         AND (id = ANY($3) OR file_name = ANY($3)) RETURNING blob_key",
    )
    .bind(bucket_id)
    .bind(owner)
    .bind(keys)
    .fetch_all(&mut *conn)
    .await
    .map_err(db_error)?
    .iter()
    .map(|row| row.try_get(0).map_err(db_error))
    .collect()
}

#[cfg(test)]
mod tests {
    use sqlx_core::connection::Connection;
    use sqlx_core::query::query;
    use sqlx_core::query_scalar::query_scalar;
    use sqlx_postgres::PgConnection;

    use crate::store::conformance::{TestDatabase, file};
    use crate::store::{PostgresStore, Store};

    /// A connection holding an uncommitted upload of `name`, as a lock-free write on another
    /// node would.
    async fn pending_upload(url: &str, bucket: &str, name: &str) -> PgConnection {
        let mut conn = PgConnection::connect(url).await.unwrap();
        query("BEGIN").execute(&mut conn).await.unwrap();
        query(
            "INSERT INTO files (id, bucket_id, file_name, blob_key, size, encoding, mime_type,
                etag, is_public, uploaded_at, updated_at)
             VALUES ('pending', $1, $2, 'pending', 1, '7bit', 'image/png', 'e', TRUE, 1, 1)",
        )
        .bind(bucket)
        .bind(name)
        .execute(&mut conn)
        .await
        .unwrap();
        conn
    }

    /// Wait until some statement of the database waits for a row lock.
    async fn until_blocked(store: &PostgresStore) {
        loop {
            let waiting: i64 = query_scalar(
                "SELECT COUNT(*) FROM pg_stat_activity
                 WHERE datname = current_database() AND wait_event_type = 'Lock'",
            )
            .fetch_one(&mut *store.pool.get().await.unwrap())
            .await
            .unwrap();
            if waiting > 0 {
                break;
            }
            tokio::task::yield_now().await;
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_numbered_name_taken_by_a_lock_free_write_moves_to_the_next_number() {
        let db = TestDatabase::create().await;
        let store = PostgresStore::open(&db.url, 4).await.unwrap();
        let root = store.bucket("root").await.unwrap().unwrap().id;
        store.insert_file(file("a", &root, "m.png")).await.unwrap();
        store.insert_file(file("b", &root, "x.png")).await.unwrap();

        // An upload numbering `m.png` picks `m-1.png`, which a write in flight elsewhere is
        // taking: it waits for that write, then moves on to `m-2.png`.
        let mut other = pending_upload(&db.url, &root, "m-1.png").await;
        let upload = tokio::spawn({
            let (store, root) = (store.clone(), root.clone());
            async move { store.insert_file(file("c", &root, "m.png")).await }
        });
        until_blocked(&store).await;
        query("COMMIT").execute(&mut other).await.unwrap();
        assert_eq!(upload.await.unwrap().unwrap().file_name, "m-2.png");

        // The same for a rename: the update fails alone (rolled back to its savepoint) and the
        // transaction goes on with the next number.
        query("DELETE FROM files WHERE id = 'pending'")
            .execute(&mut other)
            .await
            .unwrap();
        let mut other = pending_upload(&db.url, &root, "m-3.png").await;
        let rename = tokio::spawn({
            let (store, root) = (store.clone(), root.clone());
            async move { store.update_file(file("b", &root, "m.png")).await }
        });
        until_blocked(&store).await;
        query("COMMIT").execute(&mut other).await.unwrap();
        assert_eq!(rename.await.unwrap().unwrap().file_name, "m-4.png");
        let renamed = store.file(&root, "b").await.unwrap().unwrap();
        assert_eq!(renamed.file_name, "m-4.png");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn uploads_of_one_name_on_several_nodes_all_land_apart() {
        let db = TestDatabase::create().await;
        let nodes = [
            PostgresStore::open(&db.url, 3).await.unwrap(),
            PostgresStore::open(&db.url, 3).await.unwrap(),
        ];
        let root = nodes[0].bucket("root").await.unwrap().unwrap().id;
        // 20 uploads of `n.png` and, racing them, 10 asking for numbered forms of it.
        let tasks: Vec<_> = (0..30)
            .map(|i| {
                let (store, root) = (nodes[i % 2].clone(), root.clone());
                let name = if i < 20 {
                    "n.png".to_string()
                } else {
                    format!("n-{}.png", i - 19)
                };
                tokio::spawn(async move {
                    store
                        .insert_file(file(&format!("f{i}"), &root, &name))
                        .await
                })
            })
            .collect();
        let mut names = Vec::new();
        for task in tasks {
            names.push(task.await.unwrap().unwrap().file_name);
        }
        names.sort();
        names.dedup();
        assert_eq!(names.len(), 30);
        let rows: i64 = query_scalar("SELECT COUNT(*) FROM files")
            .fetch_one(&mut *nodes[0].pool.get().await.unwrap())
            .await
            .unwrap();
        assert_eq!(rows, 30);
    }
}
