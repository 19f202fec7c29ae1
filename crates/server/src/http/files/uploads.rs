//! Uploads and replacements: multipart (`*-formdata`) and raw or JSON-encoded bodies
//! (`*-object`), streamed to the blob store (protocol.md §6.3–§6.5).

use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures_util::TryStreamExt;
use serde_json::Value;

use super::form::FormBody;
use super::{file_json, writer};
use crate::files::{Content, FileError, Upload, decode_object_body};
use crate::http::error::ApiError;
use crate::http::extract::{RawQuery, SessionHeader};
use crate::limits::Limit;
use crate::state::AppState;

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

pub(super) async fn upload_formdata(
    state: State<AppState>,
    session: SessionHeader,
    query: RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ClosingError> {
    formdata(
        state,
        session,
        query,
        FormBody::new(&headers, body),
        Target::New,
    )
    .await
}

pub(super) async fn replace_formdata(
    state: State<AppState>,
    session: SessionHeader,
    query: RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ClosingError> {
    formdata(
        state,
        session,
        query,
        FormBody::new(&headers, body),
        Target::Replace,
    )
    .await
}

async fn formdata(
    State(state): State<AppState>,
    session: SessionHeader,
    query: RawQuery,
    form: Option<FormBody>,
    target: Target,
) -> Result<Response, ClosingError> {
    let mut form = form.ok_or_else(|| {
        ClosingError(ApiError::client(
            StatusCode::BAD_REQUEST,
            "invalid_body",
            "The body must be multipart/form-data with a part named 'file'.",
        ))
    })?;
    let outcome = store_formdata(&state, &session, &query, &mut form, target).await;
    // Read what the client still sends after the file, success or not (see `form.rs`).
    let finished = form.finish().await;
    let mut response = Json(outcome?).into_response();
    if !finished {
        close_after(&mut response);
    }
    Ok(response)
}

/// Tells the client this connection ends with the answer.
fn close_after(response: &mut Response) {
    response
        .headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
}

/// An upload refused before its body was read to the end: the answer closes the connection,
/// so clients do not send their next request down a socket the server drops.
pub(super) struct ClosingError(ApiError);

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
        close_after(&mut response);
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
    state.limits.check(Limit::UploadsPerUser, &caller).await?;
    state.files.bucket(bucket).await?;
    Ok(caller)
}

async fn store_formdata(
    state: &AppState,
    session: &SessionHeader,
    query: &RawQuery,
    form: &mut FormBody,
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
        let field = form
            .next_part()
            .await
            .map_err(|err| ApiError::client(StatusCode::BAD_REQUEST, "invalid_body", err))?;
        let Some(field) = field else {
            return Err(ApiError::missing("file"));
        };
        if field.name() != Some("file") && field.file_name().is_none() {
            continue;
        }
        let content = Content {
            content_type: field.content_type().map(|mime| mime.as_ref().to_string()),
            part_file_name: field.file_name().map(String::from),
        };
        let stream = Box::pin(field.map_err(|err| err.to_string()));
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

pub(super) async fn upload_object(
    state: State<AppState>,
    session: SessionHeader,
    query: RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<Value>, ClosingError> {
    object_body(state, session, query, headers, body, Target::New).await
}

pub(super) async fn replace_object(
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
