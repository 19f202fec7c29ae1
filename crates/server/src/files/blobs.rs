//! Where file bytes live: an `object_store` behind a small trait, the local file system under
//! the data directory by default (S3-compatible storage is a config change later).

use std::ops::Range;
use std::sync::Arc;

use bytes::Bytes;
use futures_util::StreamExt;
use futures_util::stream::BoxStream;
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::{GetOptions, GetRange, ObjectStore, WriteMultipart};

/// Why a blob operation failed.
#[derive(Debug, thiserror::Error)]
#[error("blob store: {0}")]
pub struct BlobError(String);

impl From<object_store::Error> for BlobError {
    fn from(err: object_store::Error) -> Self {
        Self(err.to_string())
    }
}

/// An upload in progress: write chunks, then `finish` or `abort` (nothing is left behind).
pub struct BlobWriter {
    inner: WriteMultipart,
}

impl BlobWriter {
    /// Append bytes.
    pub async fn write(&mut self, chunk: &[u8]) -> Result<(), BlobError> {
        self.inner.wait_for_capacity(4).await?;
        self.inner.write(chunk);
        Ok(())
    }

    /// Make the blob visible.
    pub async fn finish(self) -> Result<(), BlobError> {
        self.inner.finish().await?;
        Ok(())
    }

    /// Drop what was written.
    pub async fn abort(self) -> Result<(), BlobError> {
        self.inner.abort().await?;
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
    pub async fn create(&self, key: &str) -> Result<BlobWriter, BlobError> {
        let upload = self.store.put_multipart(&Path::from(key)).await?;
        Ok(BlobWriter {
            inner: WriteMultipart::new(upload),
        })
    }

    /// Stream a blob, or a byte range of it.
    pub async fn read(
        &self,
        key: &str,
        range: Option<Range<u64>>,
    ) -> Result<BoxStream<'static, Result<Bytes, BlobError>>, BlobError> {
        let options = GetOptions {
            range: range.map(GetRange::Bounded),
            ..GetOptions::default()
        };
        let result = self.store.get_opts(&Path::from(key), options).await?;
        Ok(result
            .into_stream()
            .map(|chunk| chunk.map_err(BlobError::from))
            .boxed())
    }

    /// Delete a blob (missing is fine).
    pub async fn delete(&self, key: &str) -> Result<(), BlobError> {
        match self.store.delete(&Path::from(key)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(err) => Err(err.into()),
        }
    }
}
