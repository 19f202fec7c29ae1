//! `/_api/rest/v1/storage/*` and `/_storage/{bucketId}/{fileId}`: uploads and public paths
//! (protocol.md §6). So far the tutorial's upload to a bucket and the serving of its files.

use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, Multipart, Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use futures_util::TryStreamExt;
use serde::Deserialize;
use serde_json::{Value, json};

use super::error::ApiError;
use super::extract::{ApiJson, RawQuery, SessionHeader};
use crate::clock::iso;
use crate::files::{
    Changes, Content, FileError, Upload, decode_object_body, is_inline_safe, parse_public_path,
};
use crate::limits::Limit;
use crate::state::AppState;
use crate::store::{BucketRecord, FileRecord};

/// The storage API routes, relative to `/_api/rest/v1`.
pub fn routes() -> Router<AppState> {
    // Uploads are limited by `storage.max_file_bytes` while they stream, not by axum's default.
    Router::new()
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
        .route("/storage/bucket/get", post(bucket_info))
        .route("/storage/bucket/file/exists", post(file_exists))
        .route("/storage/bucket/file/get", post(file_info))
        .route("/storage/bucket/file/delete", post(delete_file))
        .route("/storage/bucket/file/download", post(download))
        .route(
            "/storage/bucket/rename",
            post(|call: Call| change_bucket(call, Change::Rename)),
        )
        .route(
            "/storage/bucket/make-public",
            post(|call: Call| change_bucket(call, Change::Public(true))),
        )
        .route(
            "/storage/bucket/make-private",
            post(|call: Call| change_bucket(call, Change::Public(false))),
        )
        .route(
            "/storage/bucket/add-tags",
            post(|call: Call| change_bucket(call, Change::AddTags)),
        )
        .route(
            "/storage/bucket/remove-tags",
            post(|call: Call| change_bucket(call, Change::RemoveTags)),
        )
        .route(
            "/storage/bucket/update",
            post(|call: Call| change_bucket(call, Change::Update)),
        )
        .route("/storage/bucket/empty", post(bucket_empty))
        .route("/storage/bucket/delete", post(bucket_delete))
        .route(
            "/storage/bucket/file/rename",
            post(|call: Call| change_file(call, Change::Rename)),
        )
        .route(
            "/storage/bucket/file/make-public",
            post(|call: Call| change_file(call, Change::Public(true))),
        )
        .route(
            "/storage/bucket/file/make-private",
            post(|call: Call| change_file(call, Change::Public(false))),
        )
        .route(
            "/storage/bucket/file/add-tags",
            post(|call: Call| change_file(call, Change::AddTags)),
        )
        .route(
            "/storage/bucket/file/remove-tags",
            post(|call: Call| change_file(call, Change::RemoveTags)),
        )
        .route(
            "/storage/bucket/file/update",
            post(|call: Call| change_file(call, Change::Update)),
        )
}

/// Public paths, served to browsers.
pub fn public_routes() -> Router<AppState> {
    Router::new().route("/_storage/{bucket_id}/{file_id}", get(serve))
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
    /// `bucket/get`'s statistics flag: accepted, statistics not yet reported.
    #[serde(rename = "detailed")]
    _detailed: Option<bool>,
}

impl StorageRequest {
    fn bucket(&self) -> Result<&str, ApiError> {
        self.bucket
            .as_deref()
            .filter(|b| !b.is_empty())
            .ok_or_else(|| ApiError::missing("bucket"))
    }

    fn file(&self) -> Result<&str, ApiError> {
        self.file
            .as_deref()
            .filter(|f| !f.is_empty())
            .ok_or_else(|| ApiError::missing("file"))
    }
}

impl StorageRequest {
    fn new_name(&self) -> Result<String, ApiError> {
        self.new_name
            .clone()
            .filter(|n| !n.is_empty())
            .ok_or_else(|| ApiError::missing("newName"))
    }

    fn tags(&self) -> Result<Vec<String>, ApiError> {
        tag_list(self.tags.as_ref(), "tags")
    }
}

/// What the bucket and file calls extract.
type Call = (State<AppState>, SessionHeader, ApiJson<StorageRequest>);

/// The storage calls that change a bucket or a file.
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

async fn reader(state: &AppState, session: &SessionHeader) -> Option<String> {
    let caller = session.caller(state).await.ok().flatten();
    caller.map(|c| c.user.id)
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
    ApiJson(body): ApiJson<StorageRequest>,
) -> Result<Json<Value>, ApiError> {
    let exists = match state.files.bucket(body.bucket()?).await {
        Ok(_) => true,
        Err(FileError::BucketNotFound(_)) => false,
        Err(err) => return Err(err.into()),
    };
    Ok(Json(Value::Bool(exists)))
}

async fn bucket_info(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<StorageRequest>,
) -> Result<Json<Value>, ApiError> {
    let bucket = state.files.bucket(body.bucket()?).await?;
    Ok(Json(bucket_json(&bucket)))
}

async fn file_exists(
    State(state): State<AppState>,
    session: SessionHeader,
    ApiJson(body): ApiJson<StorageRequest>,
) -> Result<Json<Value>, ApiError> {
    let caller = reader(&state, &session).await;
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
    let caller = reader(&state, &session).await;
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
    let url = body
        .file_url
        .as_deref()
        .filter(|u| !u.is_empty())
        .ok_or_else(|| ApiError::missing("fileUrl"))?;
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
    let caller = reader(&state, &session).await;
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

/// `options` of an upload: URL-encoded JSON; `contentType` is ignored for multipart uploads
/// (the client always injects `text/plain`).
fn upload_options(query: &RawQuery) -> Result<(Option<bool>, Vec<String>), ApiError> {
    let Some(text) = query.get("options").filter(|t| !t.is_empty()) else {
        return Ok((None, Vec::new()));
    };
    let options: Value = serde_json::from_str(text)
        .map_err(|_| ApiError::validation("options", "options must be a JSON object."))?;
    let is_public = match options.get("isPublic") {
        None | Some(Value::Null) => None,
        Some(Value::Bool(flag)) => Some(*flag),
        Some(_) => {
            return Err(ApiError::validation(
                "options.isPublic",
                "isPublic must be a boolean.",
            ));
        }
    };
    let tags = match options.get("tags") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::String(tag)) => vec![tag.clone()],
        Some(Value::Array(items)) => items
            .iter()
            .map(|t| t.as_str().map(String::from))
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| ApiError::validation("options.tags", "tags must be strings."))?,
        Some(_) => {
            return Err(ApiError::validation(
                "options.tags",
                "tags must be strings.",
            ));
        }
    };
    Ok((is_public, tags))
}

/// Where uploaded bytes go: a new file, or the content of an existing one.
#[derive(Clone, Copy)]
enum Target {
    New,
    Replace,
}

async fn upload_formdata(
    state: State<AppState>,
    session: SessionHeader,
    query: RawQuery,
    multipart: Result<Multipart, axum::extract::multipart::MultipartRejection>,
) -> Result<Json<Value>, ClosingError> {
    formdata(state, session, query, multipart, Target::New).await
}

async fn replace_formdata(
    state: State<AppState>,
    session: SessionHeader,
    query: RawQuery,
    multipart: Result<Multipart, axum::extract::multipart::MultipartRejection>,
) -> Result<Json<Value>, ClosingError> {
    formdata(state, session, query, multipart, Target::Replace).await
}

async fn formdata(
    State(state): State<AppState>,
    session: SessionHeader,
    query: RawQuery,
    multipart: Result<Multipart, axum::extract::multipart::MultipartRejection>,
    target: Target,
) -> Result<Json<Value>, ClosingError> {
    let mut multipart = multipart.map_err(|_| {
        ClosingError(ApiError::client(
            StatusCode::BAD_REQUEST,
            "invalid_body",
            "The body must be multipart/form-data with a part named 'file'.",
        ))
    })?;
    let outcome = store_formdata(&state, &session, &query, &mut multipart, target).await;
    if outcome.is_err() {
        // Read and drop what the client is still sending (up to 64 MiB and 10 s), so it gets
        // this answer on a connection it can keep using, not a reset.
        let drain = async {
            let mut seen = 0usize;
            while let Ok(Some(mut field)) = multipart.next_field().await {
                while let Ok(Some(chunk)) = field.chunk().await {
                    seen += chunk.len();
                    if seen > 64 * 1024 * 1024 {
                        return;
                    }
                }
            }
        };
        let _ = tokio::time::timeout(std::time::Duration::from_secs(10), drain).await;
    }
    Ok(Json(outcome?))
}

/// An upload refused before its body was read to the end: the answer closes the connection,
/// so clients do not send their next request down a socket the server drops.
struct ClosingError(ApiError);

impl From<ApiError> for ClosingError {
    fn from(err: ApiError) -> Self {
        Self(err)
    }
}

impl From<FileError> for ClosingError {
    fn from(err: FileError) -> Self {
        Self(err.into())
    }
}

impl IntoResponse for ClosingError {
    fn into_response(self) -> Response {
        let mut response = self.0.into_response();
        response
            .headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
        response
    }
}

/// The checks every upload makes before reading its body: a session, the upload rate, the
/// bucket. Returns the caller's id.
async fn before_upload(
    state: &AppState,
    session: &SessionHeader,
    bucket: &str,
) -> Result<String, ApiError> {
    let caller = writer(state, session).await?;
    state.limits.check(Limit::UploadsPerUser, &caller)?;
    state.files.bucket(bucket).await?;
    Ok(caller)
}

async fn store_formdata(
    state: &AppState,
    session: &SessionHeader,
    query: &RawQuery,
    multipart: &mut Multipart,
    target: Target,
) -> Result<Value, ApiError> {
    let bucket = query.require("bucket")?.to_string();
    let name = match target {
        Target::New => query.require("fileName")?,
        Target::Replace => query.require("file")?,
    }
    .to_string();
    let (is_public, tags) = upload_options(query)?;
    let caller = before_upload(state, session, &bucket).await?;
    loop {
        let field = multipart.next_field().await.map_err(|err| {
            ApiError::client(StatusCode::BAD_REQUEST, "invalid_body", err.body_text())
        })?;
        let Some(field) = field else {
            return Err(ApiError::missing("file"));
        };
        if field.name() != Some("file") && field.file_name().is_none() {
            continue;
        }
        let content = Content {
            content_type: field.content_type().map(String::from),
            part_file_name: field.file_name().map(String::from),
        };
        let stream = Box::pin(field.map_err(|err| err.body_text()));
        let file = match target {
            Target::New => {
                let upload = Upload {
                    bucket,
                    file_name: name,
                    content_type: content.content_type,
                    part_file_name: content.part_file_name,
                    is_public,
                    tags,
                    user_id: Some(caller.clone()),
                };
                state.files.upload(upload, stream).await?
            }
            Target::Replace => {
                state
                    .files
                    .replace(&caller, &bucket, &name, content, stream)
                    .await?
            }
        };
        return Ok(file_json(state, &file));
    }
}

async fn upload_object(
    state: State<AppState>,
    session: SessionHeader,
    query: RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<Value>, ClosingError> {
    object_body(state, session, query, headers, body, Target::New).await
}

async fn replace_object(
    state: State<AppState>,
    session: SessionHeader,
    query: RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<Value>, ClosingError> {
    object_body(state, session, query, headers, body, Target::Replace).await
}

/// `upload-object` / `replace-object`: the body is the content (JSON-encoded by the client).
async fn object_body(
    State(state): State<AppState>,
    session: SessionHeader,
    query: RawQuery,
    headers: HeaderMap,
    body: Body,
    target: Target,
) -> Result<Json<Value>, ClosingError> {
    let bucket = query.require("bucket")?.to_string();
    let name = match target {
        Target::New => query.require("fileName")?,
        Target::Replace => query.require("file")?,
    }
    .to_string();
    let (is_public, tags) = upload_options(&query)?;
    let content_type = query
        .get("options")
        .and_then(|o| serde_json::from_str::<Value>(o).ok())
        .and_then(|o| {
            o.get("contentType")
                .and_then(Value::as_str)
                .map(String::from)
        })
        .unwrap_or_else(|| "text/plain;charset=UTF-8".into());
    let limit = usize::try_from(state.files.max_bytes())
        .unwrap_or(usize::MAX)
        .saturating_mul(4)
        .saturating_add(1024);
    // Read before answering anything, so errors reach the client on a usable connection.
    let bytes = axum::body::to_bytes(body, limit).await;
    let caller = before_upload(&state, &session, &bucket).await?;
    let bytes = bytes.map_err(|_| FileError::TooLarge(state.files.max_bytes()))?;
    let json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    let content = decode_object_body(&bytes, json);
    let stream =
        futures_util::stream::iter([Ok::<_, std::convert::Infallible>(Bytes::from(content))]);
    let file = match target {
        Target::New => {
            let upload = Upload {
                bucket,
                file_name: name,
                content_type: Some(content_type),
                part_file_name: None,
                is_public,
                tags,
                user_id: Some(caller),
            };
            state.files.upload(upload, stream).await?
        }
        Target::Replace => {
            let content = Content {
                content_type: Some(content_type),
                part_file_name: None,
            };
            state
                .files
                .replace(&caller, &bucket, &name, content, stream)
                .await?
        }
    };
    Ok(Json(file_json(&state, &file)))
}

/// `GET /_storage/{bucketId}/{fileId}`: public files for anyone (and private ones for their
/// owner's session), with `ETag`, conditional requests and single byte ranges.
async fn serve(
    State(state): State<AppState>,
    Path((bucket_id, file_id)): Path<(String, String)>,
    session: SessionHeader,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let caller = session.caller(&state).await.ok().flatten();
    let file = state
        .files
        .public_file(
            &bucket_id,
            &file_id,
            caller.as_ref().map(|c| c.user.id.as_str()),
        )
        .await?;
    let size = u64::try_from(file.size).unwrap_or(0);
    let mut response_headers = HeaderMap::new();
    let set = |headers: &mut HeaderMap, name: header::HeaderName, value: &str| {
        if let Ok(value) = HeaderValue::from_str(value) {
            headers.insert(name, value);
        }
    };
    set(&mut response_headers, header::ETAG, &file.etag);
    set(&mut response_headers, header::ACCEPT_RANGES, "bytes");
    set(
        &mut response_headers,
        header::CACHE_CONTROL,
        if file.is_public {
            "public, no-cache"
        } else {
            "private, no-cache"
        },
    );
    set(
        &mut response_headers,
        header::CONTENT_SECURITY_POLICY,
        "default-src 'none'; sandbox",
    );
    set(&mut response_headers, header::CONTENT_TYPE, &file.mime_type);
    let disposition = if is_inline_safe(&file.mime_type) {
        "inline".to_string()
    } else {
        let safe: String = file
            .file_name
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || "._- ".contains(c) {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        format!("attachment; filename=\"{safe}\"")
    };
    set(
        &mut response_headers,
        header::CONTENT_DISPOSITION,
        &disposition,
    );

    let not_modified = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(',').any(|tag| {
                let tag = tag.trim();
                tag == "*" || tag.trim_start_matches("W/") == file.etag
            })
        });
    if not_modified {
        return Ok((StatusCode::NOT_MODIFIED, response_headers).into_response());
    }

    let range = headers
        .get(header::RANGE)
        .and_then(|v| v.to_str().ok())
        .map(|v| http_range_header::parse_range_header(v).and_then(|r| r.validate(size)));
    let (status, range) = match range {
        None => (StatusCode::OK, None),
        Some(Ok(ranges)) if ranges.len() == 1 => {
            let r = &ranges[0];
            set(
                &mut response_headers,
                header::CONTENT_RANGE,
                &format!("bytes {}-{}/{size}", r.start(), r.end()),
            );
            (StatusCode::PARTIAL_CONTENT, Some(*r.start()..*r.end() + 1))
        }
        // Several ranges: the whole file is a valid answer.
        Some(Ok(_)) => (StatusCode::OK, None),
        Some(Err(_)) => {
            let mut response = ApiError::client(
                StatusCode::RANGE_NOT_SATISFIABLE,
                "range_not_satisfiable",
                "The requested range is outside the file.",
            )
            .into_response();
            set(
                response.headers_mut(),
                header::CONTENT_RANGE,
                &format!("bytes */{size}"),
            );
            return Ok(response);
        }
    };
    let length = range.as_ref().map_or(size, |r| r.end - r.start);
    set(
        &mut response_headers,
        header::CONTENT_LENGTH,
        &length.to_string(),
    );
    let body = if size == 0 {
        Body::empty()
    } else {
        let stream = state.files.content(&file, range).await?;
        Body::from_stream(stream)
    };
    Ok((status, response_headers, body).into_response())
}
