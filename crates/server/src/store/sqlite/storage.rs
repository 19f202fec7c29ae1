//! The storage list calls and totals in SQL. Buckets and files are presented as rows of
//! `(id, data, created_at, updated_at)`, `data` being the wire fields as a JSON object, so the
//! filters and sorts of `sql_filter` apply unchanged; the visibility rule is a condition of the
//! same query, so a filter never sees a row the reader may not read.

use rusqlite::types::Value as SqlValue;
use rusqlite::{Connection, Row, params_from_iter};

use super::{bucket_from_row, file_from_row};
use crate::store::{BucketRecord, FileRecord, StorageQuery, StorageStats};

/// Buckets as filter rows; `b.*` keeps what `bucket_from_row` reads.
const BUCKET_ROWS: &str = "SELECT b.*, json_object(\
    '_id', b.id, 'name', b.name, \
    'isPublic', json(CASE WHEN b.is_public THEN 'true' ELSE 'false' END), \
    'userId', b.user_id, 'tags', json(b.tags), \
    'createdAt', strftime('%Y-%m-%dT%H:%M:%fZ', b.created_at / 1000.0, 'unixepoch'), \
    'updatedAt', strftime('%Y-%m-%dT%H:%M:%fZ', b.updated_at / 1000.0, 'unixepoch')\
    ) AS data FROM buckets b";

/// Files as filter rows; `created_at` is the upload time. The one `?` is the public base URL.
const FILE_ROWS: &str = "SELECT f.*, f.uploaded_at AS created_at, json_object(\
    '_id', f.id, 'bucketId', f.bucket_id, 'fileName', f.file_name, \
    'isPublic', json(CASE WHEN f.is_public THEN 'true' ELSE 'false' END), \
    'size', f.size, 'encoding', f.encoding, 'mimeType', f.mime_type, \
    'publicPath', ? || '/_storage/' || f.bucket_id || '/' || f.id, \
    'userId', f.user_id, 'tags', json(f.tags), \
    'uploadedAt', strftime('%Y-%m-%dT%H:%M:%fZ', f.uploaded_at / 1000.0, 'unixepoch'), \
    'updatedAt', strftime('%Y-%m-%dT%H:%M:%fZ', f.updated_at / 1000.0, 'unixepoch')\
    ) AS data FROM files f";

/// The read rule of buckets and files (`FileService::find`): public ones, and the reader's own.
/// Rows without an owner are visible only when public.
fn visible(alias: &str, reader: Option<&str>, params: &mut Vec<SqlValue>) -> String {
    match reader {
        Some(reader) => {
            params.push(SqlValue::Text(reader.to_string()));
            format!("({alias}.is_public <> 0 OR {alias}.user_id = ?)")
        }
        None => format!("{alias}.is_public <> 0"),
    }
}

/// A page of the buckets the reader may read that match, and the count if asked.
pub(super) fn query_buckets(
    conn: &Connection,
    query: &StorageQuery,
) -> rusqlite::Result<(Vec<BucketRecord>, Option<u64>)> {
    let mut params = Vec::new();
    let rows = format!(
        "{BUCKET_ROWS} WHERE {}",
        visible("b", query.reader.as_deref(), &mut params)
    );
    page(conn, &rows, params, query, bucket_from_row)
}

/// A page of the files the reader may read that match, and the count if asked.
pub(super) fn query_files(
    conn: &Connection,
    query: &StorageQuery,
) -> rusqlite::Result<(Vec<FileRecord>, Option<u64>)> {
    let mut params = vec![SqlValue::Text(query.public_base.clone())];
    let mut rows = format!(
        "{FILE_ROWS} WHERE {}",
        visible("f", query.reader.as_deref(), &mut params)
    );
    if let Some(bucket_id) = &query.bucket_id {
        rows.push_str(" AND f.bucket_id = ?");
        params.push(SqlValue::Text(bucket_id.clone()));
    }
    page(conn, &rows, params, query, file_from_row)
}

fn page<T>(
    conn: &Connection,
    rows: &str,
    mut params: Vec<SqlValue>,
    query: &StorageQuery,
    from_row: fn(&Row<'_>) -> rusqlite::Result<T>,
) -> rusqlite::Result<(Vec<T>, Option<u64>)> {
    let condition = match &query.filter {
        Some(filter) => {
            params.extend(filter.sqlite.params.iter().cloned());
            format!("({})", filter.sqlite.sql)
        }
        None => "1".to_string(),
    };
    super::paged(
        conn,
        &format!("({rows}) WHERE {condition}"),
        "*",
        params,
        &query.order.sqlite,
        (query.limit, query.offset, query.count),
        from_row,
    )
}

/// Totals over the buckets and files the reader may read, in one statement (one snapshot).
pub(super) fn storage_stats(
    conn: &Connection,
    reader: Option<&str>,
    bucket_id: Option<&str>,
) -> rusqlite::Result<StorageStats> {
    let mut params = Vec::new();
    let buckets = visible("b", reader, &mut params);
    let mut files = visible("f", reader, &mut params);
    if let Some(bucket_id) = bucket_id {
        files.push_str(" AND f.bucket_id = ?");
        params.push(SqlValue::Text(bucket_id.to_string()));
    }
    let sql = format!(
        "SELECT (SELECT COUNT(*) FROM buckets b WHERE {buckets}), COUNT(*), \
         COALESCE(SUM(f.size), 0), COALESCE(AVG(f.size), 0.0), \
         COALESCE(MIN(f.size), 0), COALESCE(MAX(f.size), 0) \
         FROM files f WHERE {files}"
    );
    conn.prepare_cached(&sql)?
        .query_row(params_from_iter(params.iter()), |row| {
            Ok(StorageStats {
                buckets: u64::try_from(row.get::<_, i64>(0)?).unwrap_or(0),
                files: u64::try_from(row.get::<_, i64>(1)?).unwrap_or(0),
                total_size: row.get(2)?,
                average_size: row.get(3)?,
                min_size: row.get(4)?,
                max_size: row.get(5)?,
            })
        })
}

/// Delete the files of a bucket owned by `owner` named (by id or name) in `keys`; their blob
/// keys.
pub(super) fn delete_owned_files(
    conn: &Connection,
    bucket_id: &str,
    owner: &str,
    keys: &str,
) -> rusqlite::Result<Vec<String>> {
    conn.prepare_cached(
        "DELETE FROM files WHERE bucket_id = ?1 AND user_id = ?2 \
         AND (id IN (SELECT value FROM json_each(?3)) \
              OR file_name IN (SELECT value FROM json_each(?3))) \
         RETURNING blob_key",
    )?
    .query_map(rusqlite::params![bucket_id, owner, keys], |row| row.get(0))?
    .collect()
}
