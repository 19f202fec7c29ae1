//! Copying, moving and deleting files (protocol.md §6.6): `file/duplicate`, `file/copy`,
//! `file/move`, `bucket/delete-files`. Never metadata without a blob, nor a blob without
//! metadata: copies write the blob first and delete it if the metadata cannot be written;
//! deletions remove the metadata first.

use super::{FileError, FileService, check_name, run_to_end};
use crate::auth::token::new_id;
use crate::store::FileRecord;

/// Most names or ids one `delete-files` call takes.
pub const MAX_DELETE: usize = 1000;

impl FileService {
    /// Copy a file the caller may read into `target` (its own bucket when `None`), under
    /// `name` (its own name when `None`), numbered if taken. The copy is the caller's, keeps
    /// the source's privacy and tags, and gets a new id and its own blob.
    pub async fn copy(
        &self,
        caller: &str,
        bucket: &str,
        file: &str,
        target: Option<&str>,
        name: Option<&str>,
    ) -> Result<FileRecord, FileError> {
        let source = self.find(Some(caller), bucket, file).await?;
        let target = match target {
            Some(target) => self.bucket(target).await?,
            None => self.bucket(&source.bucket_id).await?,
        };
        let name = name.unwrap_or(&source.file_name).to_string();
        check_name(&name)?;
        let now = self.clock.now();
        let key = format!("{}/{}", target.id, new_id(now));
        let source_key = source.blob_key.clone();
        let copy = FileRecord {
            id: new_id(now),
            bucket_id: target.id,
            file_name: name,
            blob_key: key.clone(),
            user_id: Some(caller.to_string()),
            uploaded_at: now,
            updated_at: now,
            ..source
        };
        let (store, blobs) = (self.store.clone(), self.blobs.clone());
        run_to_end(async move {
            if !blobs.copy(&source_key, &key).await? {
                // Deleted meanwhile.
                return Err(FileError::FileNotFound);
            }
            match store.insert_file(copy).await {
                Ok(stored) => Ok(stored),
                Err(err) => {
                    // No blob without metadata.
                    if let Err(cause) = blobs.delete(&key).await {
                        tracing::warn!(error = %cause, blob = %key, "deleting a copied blob failed");
                    }
                    Err(err.into())
                }
            }
        })
        .await
    }

    /// Move one of the caller's files to `target`, numbered if its name is taken there. It
    /// keeps its id, bytes, privacy and tags.
    pub async fn move_file(
        &self,
        caller: &str,
        bucket: &str,
        file: &str,
        target: &str,
    ) -> Result<FileRecord, FileError> {
        let file = self.find(Some(caller), bucket, file).await?;
        if file.user_id.as_deref() != Some(caller) {
            return Err(FileError::NotAllowed);
        }
        let target = self.bucket(target).await?;
        let moved = FileRecord {
            bucket_id: target.id,
            updated_at: self.clock.now(),
            ..file
        };
        Ok(self.store.update_file(moved).await?)
    }

    /// Delete the caller's files of a bucket named (by id or name) in `keys`: others' files
    /// and unknown names are skipped. Metadata first, in one transaction, then the bytes.
    /// Returns how many were deleted.
    pub async fn delete_files(
        &self,
        caller: &str,
        bucket: &str,
        keys: Vec<String>,
    ) -> Result<usize, FileError> {
        if keys.len() > MAX_DELETE {
            return Err(FileError::Invalid {
                field: "fileNamesOrIds",
                message: format!("At most {MAX_DELETE} files can be deleted in one call."),
            });
        }
        let bucket = self.bucket(bucket).await?;
        if keys.is_empty() {
            return Ok(0);
        }
        let blobs = self
            .store
            .delete_owned_files(&bucket.id, caller, keys)
            .await?;
        let deleted = blobs.len();
        for (key, err) in self.blobs.delete_many(blobs).await {
            // Unreachable bytes, never served: worth a log line, not a failed request.
            tracing::warn!(error = %err, blob = %key, "deleting a blob failed");
        }
        Ok(deleted)
    }
}
