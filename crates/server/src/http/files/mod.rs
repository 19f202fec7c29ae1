//! `/_api/rest/v1/storage/*` and `/_storage/{bucketId}/{fileId}` (protocol.md §6): the bucket
//! and file calls here, uploads in `uploads.rs`, public paths in `serve.rs`.

mod form;
mod lists;
mod serve;
mod transfer;
mod uploads;

use axum::body::Body;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};

use self::uploads::{replace_formdata, replace_object, upload_formdata, upload_object};
use super::error::ApiError;
use super::extract::{ApiJson, SessionHeader};
use crate::clock::iso;
use crate::files::{Changes, FileError, parse_public_path};
use crate::state::AppState;
use crate::store::{BucketRecord, FileRecord};

/// The storage API routes, relative to `/_api/rest/v1`.
pub fn routes() -> Router<AppState> {
    // Uploads are limited by `storage.max_file_bytes` while they stream, not by axum's default.
    let mut router = Router::new()
        .route(
            "/storage/bucket/upload-formdata",
            post(upload_formdata).layer(DefaultBodyLimit::disable()),
        )
        .route(
            "/storage/bucket/upload-object",
            post(upload_object).layer(DefaultBodyLimit::disable()),
        )
        .route(
            "/storage/bucket/file/replace-formdata",
            post(replace_formdata).layer(DefaultBodyLimit::disable()),
        )
        .route(
            "/storage/bucket/file/replace-object",
            post(replace_object).layer(DefaultBodyLimit::disable()),
        )
        .route("/storage/create-bucket", post(create_bucket))
        .route("/storage/delete-file", post(delete_by_url))
        .route("/storage/bucket/exists", post(bucket_exists))
        .route("/storage/bucket/get", post(lists::bucket_info))
        .route("/storage/list-buckets", post(lists::list_buckets))
        .route("/storage/search-files", post(lists::search_files))
        .route("/storage/bucket/list-files", post(lists::list_files))
        .route("/storage/stats", get(lists::stats))
        .route("/storage/bucket/delete-files", post(transfer::delete_files))
        .route("/storage/bucket/file/duplicate", post(transfer::duplicate))
        .route("/storage/bucket/file/move", post(transfer::move_file))
        .route("/storage/bucket/file/copy", post(transfer::copy))
        .route("/storage/bucket/file/exists", post(file_exists))
        .route("/storage/bucket/file/get", post(file_info))
        .route("/storage/bucket/file/delete", post(delete_file))
        .route("/storage/bucket/file/download", post(download))
        .route("/storage/bucket/empty", post(bucket_empty))
        .route("/storage/bucket/delete", post(bucket_delete));
    // The same changes of a bucket and of a file: `/storage/bucket/{action}` and
    // `/storage/bucket/file/{action}`.
    for (action, change) in CHANGES {
        router = router
            .route(
                &format!("/storage/bucket/{action}"),
                post(move |call: Call| change_bucket(call, change)),
            )
            .route(
                &format!("/storage/bucket/file/{action}"),
                post(move |call: Call| change_file(call, change)),
            );
    }
    router
}

/// Every change, by the last segment of its path.
const CHANGES: [(&str, Change); 6] = [
    ("rename", Change::Rename),
    ("make-public", Change::Public(true)),
    ("make-private", Change::Public(false)),
    ("add-tags", Change::AddTags),
    ("remove-tags", Change::RemoveTags),
    ("update", Change::Update),
];

/// Public paths, served to browsers.
pub fn public_routes() -> Router<AppState> {
    Router::new().route("/_storage/{bucket_id}/{file_id}", get(serve::serve))
}

impl From<FileError> for ApiError {
    fn from(err: FileError) -> Self {
        let message = err.to_string();
        match err {
            FileError::BucketNotFound(_) => {
                ApiError::client(StatusCode::BAD_REQUEST, "bucket_not_found", message)
            }
            FileError::FileNotFound => ApiError::client(
                StatusCode::NOT_FOUND,
                "file_not_found",
                "There is no such file.",
            ),
            FileError::NotPublic => ApiError::client(
                StatusCode::FORBIDDEN,
                "file_not_public",
                "This file is private.",
            ),
            FileError::NotAllowed => {
                ApiError::client(StatusCode::FORBIDDEN, "not_allowed", message)
            }
            FileError::BucketNotUnique(_) => {
                ApiError::client(StatusCode::BAD_REQUEST, "bucket_not_unique", message)
            }
            FileError::InvalidBucketName => ApiError::validation("name", message),
            FileError::RootProtected => {
                ApiError::client(StatusCode::BAD_REQUEST, "root_bucket_protected", message)
            }
            FileError::TooLarge(limit) => ApiError::client(
                StatusCode::PAYLOAD_TOO_LARGE,
                "file_too_large",
                format!("The file is larger than the limit of {limit} bytes."),
            ),
            FileError::InvalidName => ApiError::validation(
                "fileName",
                "fileName must be 1 to 255 characters without slashes or control characters.",
            ),
            FileError::Interrupted(cause) => ApiError::client(
                StatusCode::BAD_REQUEST,
                "invalid_body",
                format!("The upload could not be read: {cause}"),
            ),
            FileError::Expression(err) => err.into(),
            FileError::Invalid { field, message } => ApiError::validation(field, message),
            FileError::TimedOut => crate::auth::AuthError::TimedOut.into(),
            FileError::Unavailable(cause) => crate::auth::AuthError::Unavailable(cause).into(),
        }
    }
}

/// File metadata as the client sees it (protocol.md §2.5).
fn file_json(state: &AppState, file: &FileRecord) -> Value {
    let mut value = json!({
        "_id": file.id,
        "bucketId": file.bucket_id,
        "fileName": file.file_name,
        "size": file.size,
        "encoding": file.encoding,
        "mimeType": file.mime_type,
        "publicPath": format!("{}/_storage/{}/{}", state.settings.public_base, file.bucket_id, file.id),
        "isPublic": file.is_public,
        "tags": file.tags,
        "uploadedAt": iso(file.uploaded_at),
        "updatedAt": iso(file.updated_at),
    });
    if let Some(user) = &file.user_id {
        value["userId"] = json!(user);
    }
    value
}

fn bucket_json(bucket: &BucketRecord) -> Value {
    let mut value = json!({
        "_id": bucket.id,
        "name": bucket.name,
        "isPublic": bucket.is_public,
        "tags": bucket.tags,
        "createdAt": iso(bucket.created_at),
        "updatedAt": iso(bucket.updated_at),
    });
    if let Some(user) = &bucket.user_id {
        value["userId"] = json!(user);
    }
    value
}

/// `tags`: a string or a list of strings.
fn tag_list(value: Option<&Value>, field: &str) -> Result<Vec<String>, ApiError> {
    match value {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::String(tag)) => Ok(vec![tag.clone()]),
        Some(Value::Array(items)) => items
            .iter()
            .map(|t| t.as_str().map(String::from))
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| ApiError::validation(field, "tags must be strings.")),
        Some(_) => Err(ApiError::validation(field, "tags must be strings.")),
    }
}

/// The body of the bucket and file calls.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct StorageRequest {
    bucket: Option<String>,
    file: Option<String>,
    name: Option<String>,
    is_public: Option<bool>,
    tags: Option<Value>,
    file_url: Option<String>,
    new_name: Option<String>,
    include_files: Option<bool>,
    /// `bucket/get`: add the bucket's totals under `stats`.
    detailed: Option<bool>,
    /// `file/duplicate`: the copy's name.
    duplicate_name: Option<String>,
    /// `file/move`, `file/copy`: the destination bucket.
    bucket_name_or_id: Option<String>,
    /// `bucket/delete-files`: names or ids.
    file_names_or_ids: Option<Value>,
}

impl StorageRequest {
    fn bucket(&self) -> Result<&str, ApiError> {
        ApiError::required(self.bucket.as_deref(), "bucket")
    }

    fn file(&self) -> Result<&str, ApiError> {
        ApiError::required(self.file.as_deref(), "file")
    }
}

impl StorageRequest {
    fn new_name(&self) -> Result<String, ApiError> {
        ApiError::required(self.new_name.as_deref(), "newName").map(String::from)
    }

    fn tags(&self) -> Result<Vec<String>, ApiError> {
        tag_list(self.tags.as_ref(), "tags")
    }
}

/// What the bucket and file calls extract.
type Call = (State<AppState>, SessionHeader, ApiJson<StorageRequest>);

/// The storage calls that change a bucket or a file.
#[derive(Clone, Copy)]
enum Change {
    Rename,
    Public(bool),
    AddTags,
    RemoveTags,
    Update,
}

impl Change {
    fn changes(&self, body: &StorageRequest) -> Result<Changes, ApiError> {
        let include_files = body.include_files.unwrap_or(false);
        Ok(match self {
            Self::Rename => Changes {
                name: Some(body.new_name()?),
                ..Changes::default()
            },
            Self::Public(public) => Changes {
                is_public: Some(*public),
                include_files,
                ..Changes::default()
            },
            Self::AddTags => Changes {
                add_tags: body.tags()?,
                ..Changes::default()
            },
            Self::RemoveTags => Changes {
                remove_tags: body.tags()?,
                ..Changes::default()
            },
            Self::Update => Changes {
                name: body.new_name.clone().filter(|n| !n.is_empty()),
                is_public: body.is_public,
                tags: body.tags.as_ref().map(|_| body.tags()).transpose()?,
                include_files,
                ..Changes::default()
            },
        })
    }
}

async fn change_bucket(
    (State(state), session, ApiJson(body)): Call,
    change: Change,
) -> Result<Json<Value>, ApiError> {
    let changes = change.changes(&body)?;
    let caller = writer(&state, &session).await?;
    let bucket = state
        .files
        .change_bucket(&caller, body.bucket()?, &changes)
        .await?;
    Ok(Json(bucket_json(&bucket)))
}

async fn change_file(
    (State(state), session, ApiJson(body)): Call,
    change: Change,
) -> Result<Json<Value>, ApiError> {
    let changes = change.changes(&body)?;
    let caller = writer(&state, &session).await?;
    let file = state
        .files
        .change_file(&caller, body.bucket()?, body.file()?, &changes)
        .await?;
    Ok(Json(file_json(&state, &file)))
}

async fn bucket_empty((State(s), h, ApiJson(b)): Call) -> Result<Json<Value>, ApiError> {
    let caller = writer(&s, &h).await?;
    s.files.clear_bucket(&caller, b.bucket()?, false).await?;
    Ok(Json(json!({})))
}

async fn bucket_delete((State(s), h, ApiJson(b)): Call) -> Result<Json<Value>, ApiError> {
    let caller = writer(&s, &h).await?;
    s.files.clear_bucket(&caller, b.bucket()?, true).await?;
    Ok(Json(json!({})))
}

/// The reader's user id: a stale session reads as anonymous.
async fn reader(state: &AppState, session: &SessionHeader) -> Result<Option<String>, ApiError> {
    Ok(session.reader(state).await?.map(|c| c.user.id))
}

async fn writer(state: &AppState, session: &SessionHeader) -> Result<String, ApiError> {
    let caller = session.caller(state).await?;
    caller
        .map(|c| c.user.id)
        .ok_or_else(ApiError::missing_session)
}

async fn create_bucket(
    State(state): State<AppState>,
    session: SessionHeader,
    ApiJson(body): ApiJson<StorageRequest>,
) -> Result<Json<Value>, ApiError> {
    let name = body
        .name
        .as_deref()
        .ok_or_else(|| ApiError::missing("name"))?;
    let tags = tag_list(body.tags.as_ref(), "tags")?;
    let caller = writer(&state, &session).await?;
    let bucket = state
        .files
        .create_bucket(Some(&caller), name, body.is_public.unwrap_or(true), tags)
        .await?;
    Ok(Json(bucket_json(&bucket)))
}

async fn bucket_exists(
    State(state): State<AppState>,
    session: SessionHeader,
    ApiJson(body): ApiJson<StorageRequest>,
) -> Result<Json<Value>, ApiError> {
    let caller = reader(&state, &session).await?;
    let exists = match state
        .files
        .readable_bucket(caller.as_deref(), body.bucket()?)
        .await
    {
        Ok(_) => true,
        Err(FileError::BucketNotFound(_)) => false,
        Err(err) => return Err(err.into()),
    };
    Ok(Json(Value::Bool(exists)))
}

async fn file_exists(
    State(state): State<AppState>,
    session: SessionHeader,
    ApiJson(body): ApiJson<StorageRequest>,
) -> Result<Json<Value>, ApiError> {
    let caller = reader(&state, &session).await?;
    let exists = match state
        .files
        .find(caller.as_deref(), body.bucket()?, body.file()?)
        .await
    {
        Ok(_) => true,
        Err(FileError::FileNotFound) => false,
        Err(err) => return Err(err.into()),
    };
    Ok(Json(Value::Bool(exists)))
}

async fn file_info(
    State(state): State<AppState>,
    session: SessionHeader,
    ApiJson(body): ApiJson<StorageRequest>,
) -> Result<Json<Value>, ApiError> {
    let caller = reader(&state, &session).await?;
    let file = state
        .files
        .find(caller.as_deref(), body.bucket()?, body.file()?)
        .await?;
    Ok(Json(file_json(&state, &file)))
}

async fn delete_file(
    State(state): State<AppState>,
    session: SessionHeader,
    ApiJson(body): ApiJson<StorageRequest>,
) -> Result<Json<Value>, ApiError> {
    let caller = writer(&state, &session).await?;
    let file = state
        .files
        .find(Some(&caller), body.bucket()?, body.file()?)
        .await?;
    state.files.delete(&caller, &file).await?;
    Ok(Json(json!({})))
}

async fn delete_by_url(
    State(state): State<AppState>,
    session: SessionHeader,
    ApiJson(body): ApiJson<StorageRequest>,
) -> Result<Json<Value>, ApiError> {
    let url = ApiError::required(body.file_url.as_deref(), "fileUrl")?;
    let (bucket, file) = parse_public_path(url).ok_or(FileError::FileNotFound)?;
    let caller = writer(&state, &session).await?;
    let file = state.files.find(Some(&caller), &bucket, &file).await?;
    state.files.delete(&caller, &file).await?;
    Ok(Json(json!({})))
}

async fn download(
    State(state): State<AppState>,
    session: SessionHeader,
    ApiJson(body): ApiJson<StorageRequest>,
) -> Result<Response, ApiError> {
    let caller = reader(&state, &session).await?;
    let file = state
        .files
        .find(caller.as_deref(), body.bucket()?, body.file()?)
        .await?;
    let stream = state.files.content(&file, None).await?;
    let mut headers = HeaderMap::new();
    if let Ok(value) = HeaderValue::from_str(&file.mime_type) {
        headers.insert(header::CONTENT_TYPE, value);
    }
    headers.insert(
        header::CONTENT_DISPOSITION,
        HeaderValue::from_static("attachment"),
    );
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'none'; sandbox"),
    );
    Ok((StatusCode::OK, headers, Body::from_stream(stream)).into_response())
}
