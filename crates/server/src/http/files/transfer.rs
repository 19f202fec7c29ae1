//! `file/duplicate`, `file/copy`, `file/move` and `bucket/delete-files` (protocol.md §6.6).
//! Each needs a session: the new or moved file is the caller's.

use axum::Json;
use axum::extract::State;
use serde_json::{Value, json};

use super::{Call, StorageRequest, file_json, writer};
use crate::http::error::ApiError;
use crate::http::extract::ApiJson;
use crate::limits::Limit;

impl StorageRequest {
    fn target_bucket(&self) -> Result<&str, ApiError> {
        ApiError::required(self.bucket_name_or_id.as_deref(), "bucketNameOrId")
    }

    /// `fileNamesOrIds`: a list of strings (one string is taken as a list of one).
    fn file_keys(&self) -> Result<Vec<String>, ApiError> {
        let invalid = || {
            ApiError::validation(
                "fileNamesOrIds",
                "fileNamesOrIds must be a list of strings.",
            )
        };
        match &self.file_names_or_ids {
            None | Some(Value::Null) => Err(ApiError::missing("fileNamesOrIds")),
            Some(Value::String(key)) => Ok(vec![key.clone()]),
            Some(Value::Array(items)) => items
                .iter()
                .map(|k| k.as_str().map(String::from))
                .collect::<Option<Vec<_>>>()
                .ok_or_else(invalid),
            Some(_) => Err(invalid()),
        }
    }
}

pub(super) async fn duplicate(
    (State(state), session, ApiJson(body)): Call,
) -> Result<Json<Value>, ApiError> {
    let name = body.duplicate_name.as_deref().filter(|n| !n.is_empty());
    let (bucket, file) = (body.bucket()?, body.file()?);
    let caller = writer(&state, &session).await?;
    state.limits.check(Limit::UploadsPerUser, &caller).await?;
    let copy = state.files.copy(&caller, bucket, file, None, name).await?;
    Ok(Json(file_json(&state, &copy)))
}

pub(super) async fn copy(
    (State(state), session, ApiJson(body)): Call,
) -> Result<Json<Value>, ApiError> {
    let (bucket, file, target) = (body.bucket()?, body.file()?, body.target_bucket()?);
    let caller = writer(&state, &session).await?;
    state.limits.check(Limit::UploadsPerUser, &caller).await?;
    let copy = state
        .files
        .copy(&caller, bucket, file, Some(target), None)
        .await?;
    Ok(Json(file_json(&state, &copy)))
}

pub(super) async fn move_file(
    (State(state), session, ApiJson(body)): Call,
) -> Result<Json<Value>, ApiError> {
    let (bucket, file, target) = (body.bucket()?, body.file()?, body.target_bucket()?);
    let caller = writer(&state, &session).await?;
    let moved = state.files.move_file(&caller, bucket, file, target).await?;
    Ok(Json(file_json(&state, &moved)))
}

pub(super) async fn delete_files(
    (State(state), session, ApiJson(body)): Call,
) -> Result<Json<Value>, ApiError> {
    let (bucket, keys) = (body.bucket()?, body.file_keys()?);
    let caller = writer(&state, &session).await?;
    state.files.delete_files(&caller, bucket, keys).await?;
    Ok(Json(json!({})))
}
