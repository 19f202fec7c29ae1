//! Where file bytes live: an `object_store` behind a small API, the local file system under
//! the data directory by default, or an S3-compatible bucket (`storage.backend = "s3"`).

use std::ops::Range;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::stream::BoxStream;
use futures_util::{StreamExt, TryStreamExt};
use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::prefix::PrefixStore;
use object_store::{
    BackoffConfig, GetOptions, GetRange, MultipartUpload, ObjectStore, PutPayload, RetryConfig,
};
use tokio::task::JoinSet;

use crate::config::S3Config;

/// Why a blob operation failed.
#[derive(Debug, thiserror::Error)]
#[error("blob store: {0}")]
pub struct BlobError(String);

impl From<object_store::Error> for BlobError {
    fn from(err: object_store::Error) -> Self {
        Self(err.to_string())
    }
}

/// Reads up to this size are done in one go rather than chunk by chunk; on the local file
/// system, blobs up to this size are also written in one `put` from memory.
const SMALL_BLOB: usize = 1024 * 1024;

/// Reads from S3 larger than this are split into ranged reads of this size.
const S3_READ_CHUNK: u64 = 2 * 1024 * 1024;

/// The size of every part of a multipart upload but the last. S3 wants them at least 5 MiB,
/// and some S3-compatible stores (R2) want them all the same size.
const PART_SIZE: usize = 5 * 1024 * 1024;

/// Parts of one upload in flight at once: an upload holds at most this many parts, plus the
/// one it is filling, in memory.
const PARTS_IN_FLIGHT: usize = 4;

/// An upload in progress: write chunks, then `finish` or `abort`. Nothing is left behind by a
/// failure, an abort, or a writer dropped half-way (a cancelled request): its multipart upload
/// is aborted. Small blobs are kept in memory and written in one `put`; larger ones stream as a
/// multipart upload in parts of exactly `PART_SIZE` (the last one smaller).
pub struct BlobWriter {
    store: Arc<dyn ObjectStore>,
    path: Path,
    /// Largest blob written in one `put`.
    single_put_max: usize,
    /// The chunks not yet sent, kept as received (no copy).
    buffer: Vec<Bytes>,
    buffered: usize,
    /// The multipart upload, once the blob outgrew `single_put_max`.
    multipart: Option<Multipart>,
    /// Where the blob lands on the local file system, to be flushed to disk when written.
    local_file: Option<std::path::PathBuf>,
}

/// A multipart upload and its parts in flight (each on its own task, so parts go up while the
/// next bytes arrive).
struct Multipart {
    upload: Box<dyn MultipartUpload>,
    parts: JoinSet<Result<(), object_store::Error>>,
}

impl Multipart {
    /// Wait until at most `max` parts are in flight; after a failure, until none is. The
    /// first failure, if any.
    async fn settle(&mut self, max: usize) -> Result<(), BlobError> {
        let mut failed = None;
        while self.parts.len() > max || (failed.is_some() && !self.parts.is_empty()) {
            let result = match self.parts.join_next().await {
                Some(Ok(result)) => result.map_err(BlobError::from),
                Some(Err(join)) => Err(BlobError(join.to_string())),
                None => Ok(()),
            };
            if let Err(err) = result {
                failed.get_or_insert(err);
            }
        }
        failed.map_or(Ok(()), Err)
    }

    /// Abort once no part is in flight: S3 may keep a part that was still arriving when the
    /// abort came.
    async fn abort(mut self) -> Result<(), BlobError> {
        let _ = self.settle(0).await;
        self.upload.abort().await?;
        Ok(())
    }
}

impl Drop for BlobWriter {
    fn drop(&mut self) {
        // Dropped half-way (the request was cancelled): the parts uploaded so far must go too.
        if let Some(multipart) = self.multipart.take()
            && let Ok(runtime) = tokio::runtime::Handle::try_current()
        {
            let path = self.path.clone();
            runtime.spawn(async move {
                if let Err(err) = multipart.abort().await {
                    tracing::warn!(error = %err, blob = %path, "aborting a dropped upload failed");
                }
            });
        }
    }
}

impl BlobWriter {
    /// Append bytes.
    pub async fn write(&mut self, chunk: Bytes) -> Result<(), BlobError> {
        self.buffered += chunk.len();
        self.buffer.push(chunk);
        if self.multipart.is_none() {
            if self.buffered <= self.single_put_max {
                return Ok(());
            }
            let upload = self.store.put_multipart(&self.path).await?;
            self.multipart = Some(Multipart {
                upload,
                parts: JoinSet::new(),
            });
        }
        while self.buffered >= PART_SIZE {
            let part = self.take_part(PART_SIZE);
            self.send_part(part).await?;
        }
        Ok(())
    }

    /// The first `size` buffered bytes (split without copying).
    fn take_part(&mut self, size: usize) -> PutPayload {
        let mut part = Vec::new();
        let mut taken = 0;
        let mut rest = std::mem::take(&mut self.buffer).into_iter();
        for mut chunk in rest.by_ref() {
            let wanted = size - taken;
            if chunk.len() > wanted {
                let tail = chunk.split_off(wanted);
                taken += chunk.len();
                part.push(chunk);
                self.buffer.push(tail);
                break;
            }
            taken += chunk.len();
            part.push(chunk);
            if taken == size {
                break;
            }
        }
        self.buffer.extend(rest);
        self.buffered -= taken;
        part.into_iter().collect()
    }

    /// Start uploading a part once fewer than `PARTS_IN_FLIGHT` are in flight.
    async fn send_part(&mut self, part: PutPayload) -> Result<(), BlobError> {
        let Some(multipart) = &mut self.multipart else {
            return Ok(());
        };
        multipart.settle(PARTS_IN_FLIGHT - 1).await?;
        let upload = multipart.upload.put_part(part);
        multipart.parts.spawn(upload);
        Ok(())
    }

    /// Make the blob visible. On failure nothing is left behind.
    pub async fn finish(mut self) -> Result<(), BlobError> {
        if self.multipart.is_none() {
            let payload = std::mem::take(&mut self.buffer)
                .into_iter()
                .collect::<PutPayload>();
            self.store.put(&self.path, payload).await?;
            return flush_to_disk(&self.store, &self.path, self.local_file.take()).await;
        }
        if self.buffered > 0 {
            let part = self.take_part(self.buffered);
            self.send_part(part).await?;
        }
        let Some(mut multipart) = self.multipart.take() else {
            return Ok(());
        };
        let completed = match multipart.settle(0).await {
            Ok(()) => multipart.upload.complete().await.map_err(BlobError::from),
            Err(err) => Err(err),
        };
        if let Err(err) = completed {
            if let Err(cause) = multipart.abort().await {
                tracing::warn!(error = %cause, blob = %self.path, "aborting a failed upload failed");
            }
            // Completing may have worked even though its answer was lost.
            let _ = self.store.delete(&self.path).await;
            return Err(err);
        }
        flush_to_disk(&self.store, &self.path, self.local_file.take()).await
    }

    /// Drop what was written.
    pub async fn abort(mut self) -> Result<(), BlobError> {
        if let Some(multipart) = self.multipart.take() {
            multipart.abort().await?;
        }
        Ok(())
    }
}

/// On the local file system, wait until the blob (a new file or a new hard link) and its
/// folder entry are on disk, so the metadata committed next never outlives its bytes in a
/// power loss (object_store writes without `fsync`); if that fails, the blob is deleted. S3
/// has stored the object when it answers.
async fn flush_to_disk(
    store: &Arc<dyn ObjectStore>,
    path: &Path,
    local_file: Option<std::path::PathBuf>,
) -> Result<(), BlobError> {
    let Some(file) = local_file else {
        return Ok(());
    };
    let flushed = tokio::task::spawn_blocking(move || {
        std::fs::File::open(&file)?.sync_all()?;
        match file.parent() {
            Some(folder) => std::fs::File::open(folder)?.sync_all(),
            None => Ok(()),
        }
    })
    .await
    .map_err(|err| BlobError(err.to_string()))
    .and_then(|flushed| flushed.map_err(|err| BlobError(format!("flushing a blob: {err}"))));
    if flushed.is_err() {
        let _ = store.delete(path).await;
    }
    flushed
}

/// The file of a blob in a local store's folder, as `LocalFileSystem` lays it out.
fn local_path(dir: &std::path::Path, key: &Path) -> std::path::PathBuf {
    let mut file = dir.to_path_buf();
    file.extend(key.parts().map(|part| part.as_ref().to_string()));
    file
}

/// `len` bytes of a local file from `offset`, read on a blocking thread into a buffer
/// allocated here, on the runtime's thread. object_store allocates its read buffers on the
/// blocking thread, and glibc then keeps freed buffers in one arena per such thread: 64
/// concurrent 100 KiB reads held ~17 MiB more that way (docs/DECISIONS.md "Memory").
async fn read_small_file(
    path: std::path::PathBuf,
    offset: u64,
    len: u64,
) -> Result<Bytes, BlobError> {
    use std::io::{Read, Seek, SeekFrom};
    let len = usize::try_from(len).map_err(|err| BlobError(err.to_string()))?;
    let mut buffer = vec![0u8; len];
    let read = tokio::task::spawn_blocking(move || {
        let mut file = std::fs::File::open(&path)?;
        file.seek(SeekFrom::Start(offset))?;
        file.read_exact(&mut buffer)?;
        Ok::<_, std::io::Error>(buffer)
    })
    .await
    .map_err(|err| BlobError(err.to_string()))?;
    read.map(Bytes::from)
        .map_err(|err| BlobError(format!("reading a blob: {err}")))
}

/// The blob store.
#[derive(Clone, Debug)]
pub struct Blobs {
    store: Arc<dyn ObjectStore>,
    /// Largest blob written in one `put` from memory; larger ones are multipart uploads.
    single_put_max: usize,
    /// Reads larger than this are a series of ranged reads of this size (S3); `None` streams
    /// one read (the local file system).
    read_chunk: Option<u64>,
    /// The folder of a local store, whose small reads fill a buffer allocated by the caller
    /// (see [`read_small_file`]).
    local_dir: Option<std::path::PathBuf>,
}

impl Blobs {
    /// Blobs in a folder of the local file system (created if missing).
    pub fn local(dir: &std::path::Path) -> Result<Self, BlobError> {
        std::fs::create_dir_all(dir).map_err(|err| BlobError(err.to_string()))?;
        let store = LocalFileSystem::new_with_prefix(dir)?;
        Ok(Self {
            store: Arc::new(store),
            single_put_max: SMALL_BLOB,
            read_chunk: None,
            local_dir: Some(dir.to_path_buf()),
        })
    }

    /// Blobs in an S3-compatible bucket. Settings the config leaves out come from the `AWS_*`
    /// environment variables. Nothing is sent until the first call (see [`Blobs::check`]).
    pub fn s3(config: &S3Config) -> Result<Self, BlobError> {
        let mut builder = AmazonS3Builder::from_env()
            .with_bucket_name(&config.bucket)
            .with_virtual_hosted_style_request(!config.path_style)
            .with_retry(RetryConfig {
                backoff: BackoffConfig::default(),
                // A call waits for S3 at most ~15 s of retries before it fails, within the
                // request time limit, so failures are answered and cleaned up, not cut off.
                // (Each request also has object_store's 5 s connect and 30 s timeouts.)
                max_retries: 3,
                retry_timeout: Duration::from_secs(15),
            });
        if config.allow_http {
            builder = builder.with_allow_http(true);
        }
        if let Some(region) = &config.region {
            builder = builder.with_region(region);
        }
        if let Some(endpoint) = &config.endpoint {
            builder = builder.with_endpoint(bucket_endpoint(
                endpoint,
                &config.bucket,
                config.path_style,
            )?);
        }
        if let Some((id, secret)) = config.credentials() {
            builder = builder
                .with_access_key_id(id)
                .with_secret_access_key(secret);
        }
        let s3 = builder.build()?;
        let prefix = config.prefix.trim_matches('/');
        let store: Arc<dyn ObjectStore> = if prefix.is_empty() {
            Arc::new(s3)
        } else {
            Arc::new(PrefixStore::new(s3, prefix))
        };
        Ok(Self {
            store,
            // Below one part's size a multipart upload only adds requests: the part is held
            // in memory either way.
            single_put_max: PART_SIZE,
            read_chunk: Some(S3_READ_CHUNK),
            local_dir: None,
        })
    }

    /// Make sure the store answers (the bucket exists and the credentials work): one listing
    /// of a prefix that holds nothing.
    pub async fn check(&self) -> Result<(), BlobError> {
        self.store
            .list_with_delimiter(Some(&Path::from("basalt-start-check")))
            .await?;
        Ok(())
    }

    /// Start writing a new blob.
    pub fn create(&self, key: &str) -> BlobWriter {
        BlobWriter {
            store: self.store.clone(),
            path: Path::from(key),
            single_put_max: self.single_put_max,
            buffer: Vec::new(),
            buffered: 0,
            multipart: None,
            local_file: self
                .local_dir
                .as_ref()
                .map(|dir| local_path(dir, &Path::from(key))),
        }
    }

    /// Stream a blob, or a byte range of it. `len` is how many bytes that is: small reads
    /// are done in one go rather than chunk by chunk. On S3, larger reads are a series of
    /// ranged GETs of `S3_READ_CHUNK` (two in flight), so no S3 request stays open while a
    /// slow client reads, and a download holds at most two chunks in memory.
    pub async fn read(
        &self,
        key: &str,
        range: Option<Range<u64>>,
        len: u64,
    ) -> Result<BoxStream<'static, Result<Bytes, BlobError>>, BlobError> {
        let path = Path::from(key);
        if let Some(dir) = &self.local_dir
            && len <= SMALL_BLOB as u64
        {
            let file = local_path(dir, &path);
            let bytes = read_small_file(file, range.map_or(0, |r| r.start), len).await?;
            return Ok(futures_util::stream::once(async { Ok(bytes) }).boxed());
        }
        let at_once = self.read_chunk.unwrap_or(SMALL_BLOB as u64);
        if let Some(chunk) = self.read_chunk
            && len > at_once
        {
            let start = range.map_or(0, |r| r.start);
            let mut ranges = (start..start + len)
                .step_by(usize::try_from(chunk).unwrap_or(usize::MAX))
                .map(move |from| from..(from + chunk).min(start + len));
            let Some(first) = ranges.next() else {
                return Ok(futures_util::stream::empty().boxed());
            };
            // The first chunk before answering, so a missing blob is an error, not a cut body.
            let first = self.store.get_range(&path, first).await?;
            let store = self.store.clone();
            let rest = futures_util::stream::iter(ranges)
                .map(move |range| {
                    let (store, path) = (store.clone(), path.clone());
                    async move { store.get_range(&path, range).await.map_err(BlobError::from) }
                })
                .buffered(2);
            return Ok(futures_util::stream::once(async { Ok(first) })
                .chain(rest)
                .boxed());
        }
        let options = GetOptions {
            range: range.map(GetRange::Bounded),
            ..GetOptions::default()
        };
        let result = self.store.get_opts(&path, options).await?;
        if len <= at_once {
            let bytes = result.bytes().await?;
            return Ok(futures_util::stream::once(async { Ok(bytes) }).boxed());
        }
        Ok(result
            .into_stream()
            .map(|chunk| chunk.map_err(BlobError::from))
            .boxed())
    }

    /// Copy a blob to a new key (a hard link on the local file system, a server-side
    /// `CopyObject` on S3: the bytes do not pass through Basalt). `false` when `from` does not
    /// exist.
    pub async fn copy(&self, from: &str, to: &str) -> Result<bool, BlobError> {
        let to = Path::from(to);
        match self.store.copy(&Path::from(from), &to).await {
            Ok(()) => {
                let local_file = self.local_dir.as_ref().map(|dir| local_path(dir, &to));
                flush_to_disk(&self.store, &to, local_file).await?;
                Ok(true)
            }
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(err) => Err(err.into()),
        }
    }

    /// Delete a blob (missing is fine).
    pub async fn delete(&self, key: &str) -> Result<(), BlobError> {
        match self.store.delete(&Path::from(key)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(err) => Err(err.into()),
        }
    }

    /// Delete many blobs (missing ones are fine): batches of up to 1000 keys per request on
    /// S3, a few at a time on the local file system. Returns the keys that could not be
    /// deleted, with why.
    pub async fn delete_many(&self, keys: Vec<String>) -> Vec<(String, BlobError)> {
        let paths =
            futures_util::stream::iter(keys.into_iter().map(|key| Ok(Path::from(key)))).boxed();
        let mut failed = Vec::new();
        let mut results = self.store.delete_stream(paths);
        while let Some(result) = results.next().await {
            match result {
                Ok(_) | Err(object_store::Error::NotFound { .. }) => {}
                Err(err) => {
                    let key = failed_path(&err).unwrap_or_default();
                    failed.push((key, err.into()));
                }
            }
        }
        failed
    }

    /// Every key in the store, for tests and checks (a full listing: not for request paths).
    pub async fn keys(&self) -> Result<Vec<String>, BlobError> {
        Ok(self
            .store
            .list(None)
            .map_ok(|meta| meta.location.to_string())
            .try_collect()
            .await?)
    }
}

/// The URL object_store sends requests for `bucket` to: path-style requests go to the
/// endpoint itself (it adds the bucket to the path); virtual-hosted ones to the endpoint with
/// the bucket in front of its host name (`https://bucket.minio.internal:9000`).
fn bucket_endpoint(endpoint: &str, bucket: &str, path_style: bool) -> Result<String, BlobError> {
    let endpoint = endpoint.trim_end_matches('/');
    if path_style {
        return Ok(endpoint.to_string());
    }
    let mut url = url::Url::parse(endpoint).map_err(|err| BlobError(err.to_string()))?;
    let host = url
        .host_str()
        .ok_or_else(|| BlobError(format!("storage.s3.endpoint {endpoint:?} has no host")))?;
    let host = format!("{bucket}.{host}");
    url.set_host(Some(&host))
        .map_err(|err| BlobError(err.to_string()))?;
    Ok(url.as_str().trim_end_matches('/').to_string())
}

/// The key a failed deletion names, when it names one.
fn failed_path(err: &object_store::Error) -> Option<String> {
    match err {
        object_store::Error::NotFound { path, .. }
        | object_store::Error::Precondition { path, .. }
        | object_store::Error::PermissionDenied { path, .. }
        | object_store::Error::Unauthenticated { path, .. } => Some(path.clone()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn virtual_hosted_endpoints_put_the_bucket_in_front_of_the_host() {
        assert_eq!(
            bucket_endpoint("http://127.0.0.1:9000/", "b", true).unwrap(),
            "http://127.0.0.1:9000"
        );
        assert_eq!(
            bucket_endpoint("https://s3.example.com", "photos", false).unwrap(),
            "https://photos.s3.example.com"
        );
        assert_eq!(
            bucket_endpoint("https://minio.internal:9000/", "photos", false).unwrap(),
            "https://photos.minio.internal:9000"
        );
    }

    #[tokio::test]
    async fn parts_are_cut_at_exact_sizes_without_losing_a_byte() {
        let dir = tempfile::tempdir().unwrap();
        let blobs = Blobs::local(dir.path()).unwrap();
        let mut writer = blobs.create("bucket/parts");
        let bytes: Vec<u8> = (0..13_000_000u32).map(|i| (i % 251) as u8).collect();
        for chunk in bytes.chunks(777_777) {
            writer.buffer.push(Bytes::copy_from_slice(chunk));
            writer.buffered += chunk.len();
        }
        let mut parts = Vec::new();
        while writer.buffered >= PART_SIZE {
            parts.push(writer.take_part(PART_SIZE));
        }
        let rest = writer.buffered;
        parts.push(writer.take_part(rest));
        let sizes: Vec<usize> = parts.iter().map(PutPayload::content_length).collect();
        assert_eq!(sizes, [PART_SIZE, PART_SIZE, 13_000_000 - 2 * PART_SIZE]);
        let joined: Vec<u8> = parts
            .iter()
            .flat_map(|part| part.iter().flat_map(|b| b.iter().copied()))
            .collect();
        assert!(joined == bytes, "the parts put together are the bytes");
        assert_eq!(writer.buffered, 0);

        // Written through the writer, the blob reads back whole.
        let mut writer = blobs.create("bucket/whole");
        for chunk in bytes.chunks(777_777) {
            writer.write(Bytes::copy_from_slice(chunk)).await.unwrap();
        }
        writer.finish().await.unwrap();
        let read: Vec<u8> = blobs
            .read("bucket/whole", None, bytes.len() as u64)
            .await
            .unwrap()
            .try_collect::<Vec<Bytes>>()
            .await
            .unwrap()
            .concat();
        assert!(read == bytes);
    }

    #[tokio::test]
    async fn a_local_upload_dropped_half_way_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let blobs = Blobs::local(dir.path()).unwrap();
        let mut writer = blobs.create("bucket/blob");
        writer
            .write(Bytes::from(vec![1u8; SMALL_BLOB]))
            .await
            .unwrap();
        writer.write(Bytes::from(vec![2u8; 1024])).await.unwrap();
        drop(writer);
        for _ in 0..100 {
            if blobs.keys().await.unwrap().is_empty()
                && std::fs::read_dir(dir.path().join("bucket"))
                    .map(|entries| entries.count() == 0)
                    .unwrap_or(true)
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("the dropped upload left files behind");
    }
}
