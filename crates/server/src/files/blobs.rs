//! Where file bytes live: an `object_store` behind a small trait, the local file system under
//! the data directory by default (S3-compatible storage is a config change later).

use std::ops::Range;
use std::sync::Arc;

use bytes::Bytes;
use futures_util::StreamExt;
use futures_util::stream::BoxStream;
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::{GetOptions, GetRange, ObjectStore, PutPayload, WriteMultipart};

/// Why a blob operation failed.
#[derive(Debug, thiserror::Error)]
#[error("blob store: {0}")]
pub struct BlobError(String);

impl From<object_store::Error> for BlobError {
    fn from(err: object_store::Error) -> Self {
        Self(err.to_string())
    }
}

/// Blobs up to this size are written in one `put` from memory; larger ones stream.
const SMALL_BLOB: usize = 1024 * 1024;

/// An upload in progress: write chunks, then `finish` or `abort` (nothing is left behind).
/// Small blobs are kept in memory and written at once; past `SMALL_BLOB` they stream as a
/// multipart upload.
pub struct BlobWriter {
    store: Arc<dyn ObjectStore>,
    path: Path,
    /// The chunks so far, kept as received (no copy) until the blob is written.
    buffer: Vec<Bytes>,
    buffered: usize,
    streaming: Option<WriteMultipart>,
}

impl BlobWriter {
    /// Append bytes.
    pub async fn write(&mut self, chunk: Bytes) -> Result<(), BlobError> {
        if self.streaming.is_none() && self.buffered + chunk.len() <= SMALL_BLOB {
            self.buffered += chunk.len();
            self.buffer.push(chunk);
            return Ok(());
        }
        if self.streaming.is_none() {
            let upload = self.store.put_multipart(&self.path).await?;
            let mut writer = WriteMultipart::new(upload);
            for buffered in std::mem::take(&mut self.buffer) {
                writer.put(buffered);
            }
            self.streaming = Some(writer);
        }
        if let Some(writer) = &mut self.streaming {
            writer.wait_for_capacity(4).await?;
            writer.put(chunk);
        }
        Ok(())
    }

    /// Make the blob visible.
    pub async fn finish(self) -> Result<(), BlobError> {
        match self.streaming {
            Some(writer) => {
                writer.finish().await?;
            }
            None => {
                self.store
                    .put(&self.path, self.buffer.into_iter().collect::<PutPayload>())
                    .await?;
            }
        }
        Ok(())
    }

    /// Drop what was written.
    pub async fn abort(self) -> Result<(), BlobError> {
        if let Some(writer) = self.streaming {
            writer.abort().await?;
        }
        Ok(())
    }
}

/// The blob store.
#[derive(Clone, Debug)]
pub struct Blobs {
    store: Arc<dyn ObjectStore>,
}

impl Blobs {
    /// Blobs in a folder of the local file system (created if missing).
    pub fn local(dir: &std::path::Path) -> Result<Self, BlobError> {
        std::fs::create_dir_all(dir).map_err(|err| BlobError(err.to_string()))?;
        let store = LocalFileSystem::new_with_prefix(dir)?;
        Ok(Self {
            store: Arc::new(store),
        })
    }

    /// Start writing a new blob.
    pub fn create(&self, key: &str) -> BlobWriter {
        BlobWriter {
            store: self.store.clone(),
            path: Path::from(key),
            buffer: Vec::new(),
            buffered: 0,
            streaming: None,
        }
    }

    /// Stream a blob, or a byte range of it. `len` is how many bytes that is: small reads
    /// are done in one go rather than chunk by chunk.
    pub async fn read(
        &self,
        key: &str,
        range: Option<Range<u64>>,
        len: u64,
    ) -> Result<BoxStream<'static, Result<Bytes, BlobError>>, BlobError> {
        let options = GetOptions {
            range: range.map(GetRange::Bounded),
            ..GetOptions::default()
        };
        let result = self.store.get_opts(&Path::from(key), options).await?;
        if len <= SMALL_BLOB as u64 {
            let bytes = result.bytes().await?;
            return Ok(futures_util::stream::once(async { Ok(bytes) }).boxed());
        }
        Ok(result
            .into_stream()
            .map(|chunk| chunk.map_err(BlobError::from))
            .boxed())
    }

    /// Copy a blob to a new key (a hard link on the local file system). `false` when `from`
    /// does not exist.
    pub async fn copy(&self, from: &str, to: &str) -> Result<bool, BlobError> {
        match self.store.copy(&Path::from(from), &Path::from(to)).await {
            Ok(()) => Ok(true),
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
}
