//! Files: uploads streamed to the blob store under a random key with the size limit enforced
//! while streaming, metadata in the store, and what serving a public path needs. In-place
//! changes are in `changes.rs`, the list calls and totals in `lists.rs`, copying, moving and
//! deleting many files in `transfer.rs`.

pub mod blobs;
mod changes;
mod lists;
mod transfer;

pub use changes::Changes;
pub use lists::{ListOptions, Scope, Sort};

use std::sync::Arc;

use bytes::Bytes;
use futures_util::stream::BoxStream;
use futures_util::{Stream, StreamExt};

use self::blobs::{BlobError, BlobWriter, Blobs};
use crate::auth::token::new_id;
use crate::clock::SharedClock;
use crate::store::{BucketRecord, FileRecord, Store, StoreError};

/// Outcomes of file operations a caller can act on.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    /// No bucket with that id or name.
    #[error("Cannot identify the bucket '{0}'")]
    BucketNotFound(String),
    /// No such file (or not in that bucket).
    #[error("file not found")]
    FileNotFound,
    /// The file is private and the caller may not read it.
    #[error("file not public")]
    NotPublic,
    /// The caller may not change this file or bucket.
    #[error("You may not change this file.")]
    NotAllowed,
    /// A bucket with this name exists (or the name is `root`).
    #[error("A bucket named '{0}' already exists.")]
    BucketNotUnique(String),
    /// `root` cannot be renamed or deleted.
    #[error("The root bucket cannot be renamed or deleted.")]
    RootProtected,
    /// A bucket name must be 1–64 letters, digits, `.`, `_` or `-`.
    #[error("Bucket names are 1 to 64 letters, digits, '.', '_' or '-'.")]
    InvalidBucketName,
    /// Over the size limit (bytes).
    #[error("file too large")]
    TooLarge(u64),
    /// The file name is empty, too long, or has control characters or slashes.
    #[error("invalid file name")]
    InvalidName,
    /// The upload stream failed (client went away).
    #[error("upload interrupted: {0}")]
    Interrupted(String),
    /// A filter or sort that cannot be used.
    #[error("{0}")]
    Expression(crate::expr::ExprError),
    /// A request value is invalid.
    #[error("{message}")]
    Invalid {
        /// The field, as the client names it.
        field: &'static str,
        /// What is wrong.
        message: String,
    },
    /// The database cancelled a statement that ran past `database.statement_timeout_ms`.
    #[error("The database took too long to answer.")]
    TimedOut,
    /// Storage failed.
    #[error("storage unavailable: {0}")]
    Unavailable(String),
}

impl From<StoreError> for FileError {
    fn from(err: StoreError) -> Self {
        if matches!(err, StoreError::TimedOut) {
            return Self::TimedOut;
        }
        Self::Unavailable(format!("{err}: {:?}", std::error::Error::source(&err)))
    }
}

/// The bucket and file ids in a `publicPath` (`…/_storage/{bucketId}/{fileId}`).
pub fn parse_public_path(url: &str) -> Option<(String, String)> {
    let path = url.split(['?', '#']).next().unwrap_or_default();
    let mut parts = path.rsplitn(4, '/');
    let file = parts.next()?;
    let bucket = parts.next()?;
    (parts.next()? == "_storage" && !file.is_empty() && !bucket.is_empty())
        .then(|| (bucket.to_string(), file.to_string()))
}

impl From<BlobError> for FileError {
    fn from(err: BlobError) -> Self {
        Self::Unavailable(err.to_string())
    }
}

/// What an upload says about itself.
#[derive(Debug, Clone)]
pub struct Upload {
    /// Bucket id or name.
    pub bucket: String,
    /// Desired file name (de-duplicated if taken).
    pub file_name: String,
    /// The part's `Content-Type`, if any.
    pub content_type: Option<String>,
    /// The part's own file name, to guess a type from.
    pub part_file_name: Option<String>,
    /// `options.isPublic`; the bucket's default otherwise.
    pub is_public: Option<bool>,
    /// `options.tags`.
    pub tags: Vec<String>,
    /// The uploader.
    pub user_id: Option<String>,
}

/// What a request says about new content.
#[derive(Debug, Clone, Default)]
pub struct Content {
    /// The declared `Content-Type`, if any.
    pub content_type: Option<String>,
    /// The multipart part's own file name, to guess a type from.
    pub part_file_name: Option<String>,
}

/// A blob whose bytes have all arrived, not yet made visible (`writer.finish()`).
struct StoredBlob {
    writer: BlobWriter,
    key: String,
    size: i64,
    etag: String,
}

/// Run `work` to its end even if the request that started it is dropped meanwhile (the client
/// went away, the time limit struck): writing a blob and recording its metadata, or deleting
/// the blob when that fails, is one step that a cancelled request must not cut in half.
async fn run_to_end<T: Send + 'static>(
    work: impl Future<Output = Result<T, FileError>> + Send + 'static,
) -> Result<T, FileError> {
    tokio::spawn(work)
        .await
        .map_err(|err| FileError::Unavailable(err.to_string()))?
}

/// The bytes an `upload-object` or `replace-object` body stands for: the client JSON-encodes
/// such bodies (protocol.md §6.4).
pub fn decode_object_body(body: &[u8], json: bool) -> Vec<u8> {
    if !json {
        return body.to_vec();
    }
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(body) else {
        return body.to_vec();
    };
    match &value {
        serde_json::Value::String(text) => text.as_bytes().to_vec(),
        serde_json::Value::Object(map)
            if map.get("type").and_then(|t| t.as_str()) == Some("Buffer") =>
        {
            bytes_of(map.get("data")).unwrap_or_else(|| body.to_vec())
        }
        serde_json::Value::Object(map)
            if !map.is_empty() && map.keys().all(|k| k.parse::<usize>().is_ok()) =>
        {
            let mut entries: Vec<(usize, &serde_json::Value)> = map
                .iter()
                .filter_map(|(k, v)| k.parse().ok().map(|i| (i, v)))
                .collect();
            entries.sort_by_key(|(i, _)| *i);
            let values: Vec<serde_json::Value> =
                entries.into_iter().map(|(_, v)| v.clone()).collect();
            bytes_of(Some(&serde_json::Value::Array(values))).unwrap_or_else(|| body.to_vec())
        }
        _ => body.to_vec(),
    }
}

fn bytes_of(value: Option<&serde_json::Value>) -> Option<Vec<u8>> {
    value?
        .as_array()?
        .iter()
        .map(|b| b.as_u64().and_then(|b| u8::try_from(b).ok()))
        .collect()
}

/// Types served inline; everything else is served as an attachment.
const INLINE_TYPES: &[&str] = &[
    "image/png",
    "image/jpeg",
    "image/gif",
    "image/webp",
    "image/avif",
    "image/bmp",
];

/// Whether a MIME type may be shown inline by browsers.
pub fn is_inline_safe(mime: &str) -> bool {
    INLINE_TYPES.contains(&mime)
}

/// The file rules.
pub struct FileService {
    store: Arc<dyn Store>,
    blobs: Blobs,
    clock: SharedClock,
    max_bytes: u64,
}

impl FileService {
    /// A service storing at most `max_bytes` per file.
    pub fn new(store: Arc<dyn Store>, blobs: Blobs, clock: SharedClock, max_bytes: u64) -> Self {
        Self {
            store,
            blobs,
            clock,
            max_bytes,
        }
    }

    /// The largest file accepted.
    pub fn max_bytes(&self) -> u64 {
        self.max_bytes
    }

    /// Resolve a bucket by id or name.
    pub async fn bucket(&self, id_or_name: &str) -> Result<BucketRecord, FileError> {
        self.store
            .bucket(id_or_name)
            .await?
            .ok_or_else(|| FileError::BucketNotFound(id_or_name.to_string()))
    }

    /// A bucket the reader may see: a public one, or their own. Another user's private
    /// bucket reads as missing, as it is in the lists.
    pub async fn readable_bucket(
        &self,
        reader: Option<&str>,
        id_or_name: &str,
    ) -> Result<BucketRecord, FileError> {
        let bucket = self.bucket(id_or_name).await?;
        if bucket.is_public || (reader.is_some() && bucket.user_id.as_deref() == reader) {
            Ok(bucket)
        } else {
            Err(FileError::BucketNotFound(id_or_name.to_string()))
        }
    }

    /// Stream `body` into a new blob, enforcing the size limit as bytes arrive, then record
    /// the metadata. On any failure nothing is left behind.
    pub async fn upload<S, E>(&self, upload: Upload, body: S) -> Result<FileRecord, FileError>
    where
        S: Stream<Item = Result<Bytes, E>> + Unpin,
        E: std::fmt::Display,
    {
        check_name(&upload.file_name)?;
        let bucket = self.bucket(&upload.bucket).await?;
        let now = self.clock.now();
        let id = new_id(now);
        let blob = self.store_blob(&bucket.id, body).await?;
        let blob_key = blob.key.clone();
        let mime_type = mime_type(
            upload.content_type.as_deref(),
            upload.part_file_name.as_deref(),
            &upload.file_name,
        );
        let record = FileRecord {
            id,
            bucket_id: bucket.id.clone(),
            file_name: upload.file_name,
            blob_key: blob_key.clone(),
            size: blob.size,
            encoding: "7bit".into(),
            mime_type,
            etag: blob.etag,
            is_public: upload.is_public.unwrap_or(bucket.is_public),
            user_id: upload.user_id,
            tags: upload.tags,
            uploaded_at: now,
            updated_at: now,
        };
        let (store, blobs, writer) = (self.store.clone(), self.blobs.clone(), blob.writer);
        run_to_end(async move {
            writer.finish().await?;
            match store.insert_file(record).await {
                Ok(stored) => Ok(stored),
                Err(err) => {
                    // No blob without metadata.
                    let _ = blobs.delete(&blob_key).await;
                    Err(err.into())
                }
            }
        })
        .await
    }

    /// Stream `body` into a new blob under a random key, enforcing the size limit as bytes
    /// arrive; on failure nothing is left behind. The caller makes the blob visible
    /// (`writer.finish()`) in the step that records it.
    async fn store_blob<S, E>(&self, bucket_id: &str, body: S) -> Result<StoredBlob, FileError>
    where
        S: Stream<Item = Result<Bytes, E>> + Unpin,
        E: std::fmt::Display,
    {
        let blob_id = new_id(self.clock.now());
        let key = format!("{bucket_id}/{blob_id}");
        let mut writer = self.blobs.create(&key);
        let mut body = body;
        let mut size = 0u64;
        let streamed: Result<(), FileError> = async {
            while let Some(chunk) = body.next().await {
                let chunk = chunk.map_err(|err| FileError::Interrupted(err.to_string()))?;
                size += chunk.len() as u64;
                if size > self.max_bytes {
                    return Err(FileError::TooLarge(self.max_bytes));
                }
                writer.write(chunk).await?;
            }
            Ok(())
        }
        .await;
        if let Err(err) = streamed {
            let _ = writer.abort().await;
            return Err(err);
        }
        Ok(StoredBlob {
            writer,
            key,
            size: i64::try_from(size).unwrap_or(i64::MAX),
            // Every upload and replace writes a new blob under a new random key, so the key is
            // a strong validator of the content without hashing the bytes.
            etag: format!("\"{blob_id}\""),
        })
    }

    /// Replace the content of one of the caller's files; its id and name stay.
    pub async fn replace<S, E>(
        &self,
        caller: &str,
        bucket: &str,
        file: &str,
        content: Content,
        body: S,
    ) -> Result<FileRecord, FileError>
    where
        S: Stream<Item = Result<Bytes, E>> + Unpin,
        E: std::fmt::Display,
    {
        let file = self.find(Some(caller), bucket, file).await?;
        if file.user_id.as_deref() != Some(caller) {
            return Err(FileError::NotAllowed);
        }
        let blob = self.store_blob(&file.bucket_id, body).await?;
        let old_key = file.blob_key.clone();
        let mime_type = mime_type(
            content.content_type.as_deref(),
            content.part_file_name.as_deref(),
            &file.file_name,
        );
        let new_key = blob.key.clone();
        let updated = FileRecord {
            blob_key: blob.key,
            size: blob.size,
            etag: blob.etag,
            mime_type,
            updated_at: self.clock.now(),
            ..file
        };
        let (store, blobs, writer) = (self.store.clone(), self.blobs.clone(), blob.writer);
        run_to_end(async move {
            writer.finish().await?;
            match store.update_file(updated).await {
                Ok(stored) => {
                    if let Err(err) = blobs.delete(&old_key).await {
                        tracing::warn!(error = %err, blob = %old_key, "deleting a replaced blob failed");
                    }
                    Ok(stored)
                }
                Err(err) => {
                    let _ = blobs.delete(&new_key).await;
                    Err(err.into())
                }
            }
        })
        .await
    }

    /// A file for its public path: public files for anyone, private ones for their owner.
    pub async fn public_file(
        &self,
        bucket_id: &str,
        file_id: &str,
        caller: Option<&str>,
    ) -> Result<FileRecord, FileError> {
        let file = self
            .store
            .file(bucket_id, file_id)
            .await?
            .ok_or(FileError::FileNotFound)?;
        let owner = file.user_id.is_some() && file.user_id.as_deref() == caller;
        if !file.is_public && !owner {
            return Err(FileError::NotPublic);
        }
        Ok(file)
    }

    /// A file the caller may read (public, or theirs), by id or name within a bucket.
    pub async fn find(
        &self,
        caller: Option<&str>,
        bucket: &str,
        file: &str,
    ) -> Result<FileRecord, FileError> {
        let bucket = self.bucket(bucket).await?;
        let file = self
            .store
            .file_by_key(&bucket.id, file)
            .await?
            .ok_or(FileError::FileNotFound)?;
        let owner = file.user_id.is_some() && file.user_id.as_deref() == caller;
        if file.is_public || owner {
            Ok(file)
        } else {
            Err(FileError::FileNotFound)
        }
    }

    /// Delete one of the caller's files: its metadata, then its bytes.
    pub async fn delete(&self, caller: &str, file: &FileRecord) -> Result<(), FileError> {
        if file.user_id.as_deref() != Some(caller) {
            return Err(FileError::NotAllowed);
        }
        let key = self
            .store
            .delete_file(&file.bucket_id, &file.id)
            .await?
            .ok_or(FileError::FileNotFound)?;
        if let Err(err) = self.blobs.delete(&key).await {
            // Unreachable bytes, never served: worth a log line, not a failed request.
            tracing::warn!(error = %err, blob = %key, "deleting a blob failed");
        }
        Ok(())
    }

    /// Create a bucket owned by the caller.
    pub async fn create_bucket(
        &self,
        caller: Option<&str>,
        name: &str,
        is_public: bool,
        tags: Vec<String>,
    ) -> Result<BucketRecord, FileError> {
        let valid = !name.is_empty()
            && name.len() <= 64
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c));
        if !valid {
            return Err(FileError::InvalidBucketName);
        }
        if name == "root" || self.store.bucket(name).await?.is_some() {
            return Err(FileError::BucketNotUnique(name.to_string()));
        }
        let now = self.clock.now();
        let bucket = BucketRecord {
            id: new_id(now),
            name: name.to_string(),
            is_public,
            user_id: caller.map(String::from),
            tags,
            created_at: now,
            updated_at: now,
        };
        match self.store.insert_bucket(bucket.clone()).await {
            Ok(()) => Ok(bucket),
            Err(StoreError::Conflict { .. }) => Err(FileError::BucketNotUnique(name.to_string())),
            Err(err) => Err(err.into()),
        }
    }

    /// The bytes of a file, or of a range of them.
    pub async fn content(
        &self,
        file: &FileRecord,
        range: Option<std::ops::Range<u64>>,
    ) -> Result<BoxStream<'static, Result<Bytes, BlobError>>, FileError> {
        let size = u64::try_from(file.size).unwrap_or(0);
        let len = range.as_ref().map_or(size, |r| r.end - r.start);
        Ok(self.blobs.read(&file.blob_key, range, len).await?)
    }
}

fn check_name(name: &str) -> Result<(), FileError> {
    let bad = name.is_empty()
        || name.len() > 255
        || name == "."
        || name == ".."
        || name
            .chars()
            .any(|c| c.is_control() || c == '/' || c == '\\');
    if bad {
        Err(FileError::InvalidName)
    } else {
        Ok(())
    }
}

/// The part's type, unless missing or generic; then a guess from the names.
fn mime_type(declared: Option<&str>, part_name: Option<&str>, file_name: &str) -> String {
    let declared = declared
        .map(|d| d.trim().to_ascii_lowercase())
        .filter(|d| !d.is_empty() && d != "application/octet-stream");
    if let Some(declared) = declared {
        return declared;
    }
    [part_name, Some(file_name)]
        .into_iter()
        .flatten()
        .find_map(|name| mime_guess::from_path(name).first())
        .map_or_else(
            || "application/octet-stream".into(),
            |m| m.essence_str().to_string(),
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn types_come_from_the_part_then_the_names() {
        assert_eq!(mime_type(Some("image/png"), None, "x"), "image/png");
        assert_eq!(
            mime_type(Some("application/octet-stream"), Some("a.jpg"), "x"),
            "image/jpeg"
        );
        assert_eq!(mime_type(None, Some("blob"), "avatar.gif"), "image/gif");
        assert_eq!(
            mime_type(None, None, "user_123"),
            "application/octet-stream"
        );
    }

    #[test]
    fn object_bodies_decode_as_the_client_encodes_them() {
        assert_eq!(decode_object_body(br#""hello""#, true), b"hello");
        assert_eq!(
            decode_object_body(br#"{"type":"Buffer","data":[104,105]}"#, true),
            b"hi"
        );
        assert_eq!(decode_object_body(br#"{"1":2,"0":1}"#, true), [1, 2]);
        assert_eq!(decode_object_body(br#"{"a":1}"#, true), br#"{"a":1}"#);
        assert_eq!(decode_object_body(b"raw bytes", false), b"raw bytes");
        assert_eq!(decode_object_body(b"not json", true), b"not json");
    }

    #[test]
    fn public_paths_parse_back_to_ids() {
        assert_eq!(
            parse_public_path("http://127.0.0.1:8090/_storage/aaa/bbb"),
            Some(("aaa".into(), "bbb".into()))
        );
        assert_eq!(
            parse_public_path("https://x.test/prefix/_storage/aaa/bbb?v=1"),
            Some(("aaa".into(), "bbb".into()))
        );
        assert_eq!(parse_public_path("https://x.test/other/aaa/bbb"), None);
        assert_eq!(parse_public_path("nonsense"), None);
    }

    #[test]
    fn names_with_paths_or_controls_are_refused() {
        for bad in [
            "",
            ".",
            "..",
            "../etc/passwd",
            "a/b",
            "a\\b",
            "nul\0byte",
            "line\nbreak",
        ] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
        check_name("user_6235e0eb25de47092f4d5300").unwrap();
        check_name("photo (1).png").unwrap();
    }
}
