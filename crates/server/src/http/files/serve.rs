//! `GET /_storage/{bucketId}/{fileId}`: the public paths browsers load (protocol.md §6.7,
//! SECURITY.md "Files").

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::files::is_inline_safe;
use crate::http::error::ApiError;
use crate::http::extract::SessionHeader;
use crate::state::AppState;

/// `GET /_storage/{bucketId}/{fileId}`: public files for anyone (and private ones for their
/// owner's session), with `ETag`, conditional requests and single byte ranges.
pub(super) async fn serve(
    State(state): State<AppState>,
    Path((bucket_id, file_id)): Path<(String, String)>,
    session: SessionHeader,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let caller = session.reader(&state).await?;
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
