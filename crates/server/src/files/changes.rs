//! Changing files and buckets in place: names (numbered if taken), privacy, tags; emptying
//! and deleting buckets (protocol.md §6.6).

use super::{FileError, FileService, check_name};
use crate::store::{BucketRecord, FileRecord, StoreError};

/// Changes to a file or bucket's name, privacy and tags.
#[derive(Debug, Clone, Default)]
pub struct Changes {
    /// New name.
    pub name: Option<String>,
    /// New privacy.
    pub is_public: Option<bool>,
    /// Replace the tags.
    pub tags: Option<Vec<String>>,
    /// Add tags (kept unique).
    pub add_tags: Vec<String>,
    /// Remove tags.
    pub remove_tags: Vec<String>,
    /// Buckets: apply `is_public` to every file too.
    pub include_files: bool,
}

impl Changes {
    fn apply_tags(&self, tags: &mut Vec<String>) {
        if let Some(new) = &self.tags {
            tags.clone_from(new);
        }
        for tag in &self.add_tags {
            if !tags.contains(tag) {
                tags.push(tag.clone());
            }
        }
        tags.retain(|t| !self.remove_tags.contains(t));
    }
}

impl FileService {
    /// Change one of the caller's files: name (numbered if taken), privacy, tags.
    pub async fn change_file(
        &self,
        caller: &str,
        bucket: &str,
        file: &str,
        changes: &Changes,
    ) -> Result<FileRecord, FileError> {
        let mut file = self.find(Some(caller), bucket, file).await?;
        if file.user_id.as_deref() != Some(caller) {
            return Err(FileError::NotAllowed);
        }
        if let Some(name) = &changes.name {
            check_name(name)?;
            file.file_name.clone_from(name);
        }
        if let Some(public) = changes.is_public {
            file.is_public = public;
        }
        changes.apply_tags(&mut file.tags);
        file.updated_at = self.clock.now();
        Ok(self.store.update_file(file).await?)
    }

    /// Change one of the caller's buckets (`root` keeps its name).
    pub async fn change_bucket(
        &self,
        caller: &str,
        bucket: &str,
        changes: &Changes,
    ) -> Result<BucketRecord, FileError> {
        let mut bucket = self.bucket(bucket).await?;
        if bucket.name == "root" && changes.name.as_deref().is_some_and(|n| n != "root") {
            return Err(FileError::RootProtected);
        }
        if bucket.user_id.as_deref() != Some(caller) {
            return Err(FileError::NotAllowed);
        }
        if let Some(name) = &changes.name
            && *name != bucket.name
        {
            check_bucket_name(name)?;
            bucket.name.clone_from(name);
        }
        if let Some(public) = changes.is_public {
            bucket.is_public = public;
        }
        changes.apply_tags(&mut bucket.tags);
        bucket.updated_at = self.clock.now();
        let files_public = changes.is_public.filter(|_| changes.include_files);
        match self.store.update_bucket(bucket.clone(), files_public).await {
            Ok(()) => Ok(bucket),
            Err(StoreError::Conflict { .. }) => Err(FileError::BucketNotUnique(bucket.name)),
            Err(err) => Err(err.into()),
        }
    }

    /// Delete every file of one of the caller's buckets, and with `bucket_too` the bucket
    /// (never `root`).
    pub async fn clear_bucket(
        &self,
        caller: &str,
        bucket: &str,
        bucket_too: bool,
    ) -> Result<(), FileError> {
        let bucket = self.bucket(bucket).await?;
        if bucket_too && bucket.name == "root" {
            return Err(FileError::RootProtected);
        }
        if bucket.user_id.as_deref() != Some(caller) {
            return Err(FileError::NotAllowed);
        }
        let keys = self
            .store
            .delete_bucket_files(&bucket.id, bucket_too)
            .await?;
        for (key, err) in self.blobs.delete_many(keys).await {
            // Unreachable bytes, never served: worth a log line, not a failed request.
            tracing::warn!(error = %err, blob = %key, "deleting a blob failed");
        }
        Ok(())
    }
}

fn check_bucket_name(name: &str) -> Result<(), FileError> {
    let valid = !name.is_empty()
        && name.len() <= 64
        && name != "."
        && name != ".."
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c));
    if valid {
        Ok(())
    } else {
        Err(FileError::InvalidBucketName)
    }
}
