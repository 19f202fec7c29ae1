//! Transport: the router, its layers and one file per area. Handlers are thin: extract, call
//! one domain function, shape the answer.

mod auth;
mod db;
mod dev_mail;
pub mod error;
mod extract;
mod files;
mod health;
mod links;
mod site;
mod views;

use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use http_body_util::BodyExt;
use tower_http::LatencyUnit;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{
    MakeRequestId, PropagateRequestIdLayer, RequestId, SetRequestIdLayer,
};
use tower_http::trace::{DefaultOnResponse, TraceLayer};

use self::error::ApiError;
use crate::state::{AppState, HttpSettings};

/// Prefix of every client-library call.
pub const API_PREFIX: &str = "/_api/rest/v1";

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The whole HTTP surface.
pub fn router(state: AppState) -> Router {
    let api = Router::new()
        .nest("/auth", auth::routes())
        .merge(db::routes())
        .merge(files::routes())
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            require_client_key,
        ));
    let mut app = Router::new()
        .nest(API_PREFIX, api)
        .merge(links::routes())
        .merge(files::public_routes())
        .merge(health::routes())
        .merge(site::routes());
    if state.settings.dev_outbox {
        app = app.merge(dev_mail::routes());
    }
    app.fallback(site::fallback)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn_with_state(state.clone(), edge))
        .layer(
            TraceLayer::new_for_http().make_span_with(|req: &Request| {
                let id = req
                    .headers()
                    .get(&REQUEST_ID)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default();
                // The path only: query strings carry tokens, which never reach the logs.
                tracing::info_span!("request", id = %id, method = %req.method(), path = %req.uri().path())
            })
            .on_request(())
            .on_response(
                DefaultOnResponse::new()
                    .level(tracing::Level::INFO)
                    .latency_unit(LatencyUnit::Micros),
            ),
        )
        .layer(PropagateRequestIdLayer::new(REQUEST_ID))
        .layer(SetRequestIdLayer::new(REQUEST_ID, RandomRequestId))
        .layer(CatchPanicLayer::custom(|_: Box<dyn std::any::Any + Send>| {
            ApiError::Internal("a handler panicked".into()).into_response()
        }))
        .with_state(state)
}

#[derive(Clone, Copy)]
struct RandomRequestId;

impl MakeRequestId for RandomRequestId {
    fn make_request_id<B>(&mut self, _: &axum::http::Request<B>) -> Option<RequestId> {
        let id = hex::encode(rand::random::<[u8; 8]>());
        HeaderValue::from_str(&id).ok().map(RequestId::new)
    }
}

async fn method_not_allowed() -> ApiError {
    ApiError::client(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "This endpoint does not answer this method.",
    )
}

/// `X-Client-Key` must name an active key (protocol.md §1.10).
async fn require_client_key(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let key = req
        .headers()
        .get("x-client-key")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if key.is_empty() {
        return ApiError::client(
            StatusCode::UNAUTHORIZED,
            "missing_client_key",
            "The X-Client-Key header is required.",
        )
        .into_response();
    }
    if !state.keys.accepts(key, &state.store).await {
        return ApiError::client(
            StatusCode::UNAUTHORIZED,
            "invalid_client_key",
            "The client key is not valid.",
        )
        .into_response();
    }
    next.run(req).await
}

/// What every request goes through, in one layer: CORS (echo the Origin with credentials,
/// answer every pre-flight without a client key), the body limit (a readable 413: what was
/// sent is read and dropped, up to a bound, so the client sees the answer instead of a reset
/// connection), the time limit (408) and the security headers.
async fn edge(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let origin = req.headers().get(header::ORIGIN).cloned();
    let allowed = origin
        .as_ref()
        .and_then(|o| o.to_str().ok())
        .is_none_or(|o| state.settings.origin_allowed(o));
    let limit = state.settings.body_limit(req.uri().path());
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let mut response = if req.method() == Method::OPTIONS {
        let mut response = StatusCode::NO_CONTENT.into_response();
        preflight_headers(req.headers(), response.headers_mut());
        response
    } else if !allowed {
        ApiError::client(
            StatusCode::FORBIDDEN,
            "origin_not_allowed",
            "This origin may not call the API.",
        )
        .into_response()
    } else if declared.is_some_and(|length| length > limit as u64) {
        let upload = HttpSettings::is_upload(req.uri().path());
        drain(req.into_body()).await;
        let error = if upload {
            ApiError::client(
                StatusCode::PAYLOAD_TOO_LARGE,
                "file_too_large",
                format!("The upload is larger than the limit of {limit} bytes."),
            )
        } else {
            ApiError::too_large(limit)
        };
        let mut response = error.into_response();
        response
            .headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
        response
    } else {
        // Uploads are bounded while they stream (and drained on errors); other bodies are
        // buffered by extractors, so they are capped here.
        let req = if HttpSettings::is_upload(req.uri().path()) {
            req
        } else {
            let (parts, body) = req.into_parts();
            Request::from_parts(parts, Body::new(http_body_util::Limited::new(body, limit)))
        };
        match tokio::time::timeout(state.settings.request_timeout, next.run(req)).await {
            Ok(response) => response,
            Err(_) => ApiError::client(
                StatusCode::REQUEST_TIMEOUT,
                "request_timeout",
                "The request took too long.",
            )
            .into_response(),
        }
    };
    let headers = response.headers_mut();
    headers.append(header::VARY, HeaderValue::from_static("Origin"));
    if let Some(origin) = origin
        && allowed
    {
        headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
        headers.insert(
            header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
            HeaderValue::from_static("true"),
        );
    }
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers
        .entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    if state.settings.behind_tls {
        headers.insert(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static("max-age=31536000"),
        );
    }
    response
}

/// Reads and drops the rest of `body`, up to [`DRAIN_MAX_BYTES`] and 10 s: true when it
/// ended, so that the connection can serve another request (an answer sent before the
/// request's body was read leaves hyper unable to reuse the connection).
pub(crate) async fn drain(mut body: Body) -> bool {
    let read = async {
        let mut seen = 0usize;
        loop {
            match body.frame().await {
                None => return true,
                Some(Err(_)) => return false,
                Some(Ok(frame)) => {
                    seen += frame.data_ref().map_or(0, |data| data.len());
                    if seen > DRAIN_MAX_BYTES {
                        return false;
                    }
                }
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(10), read)
        .await
        .unwrap_or(false)
}

/// The most of an unwanted request body [`drain`] reads before giving up on the connection.
const DRAIN_MAX_BYTES: usize = 64 * 1024 * 1024;

fn preflight_headers(request: &HeaderMap, headers: &mut HeaderMap) {
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static("GET, POST, PUT, DELETE, OPTIONS"),
    );
    let asked = request
        .get(header::ACCESS_CONTROL_REQUEST_HEADERS)
        .cloned()
        .unwrap_or(HeaderValue::from_static(
            "X-Client, X-Client-Key, Session, Authorization, Content-Type",
        ));
    headers.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, asked);
    headers.insert(
        header::ACCESS_CONTROL_MAX_AGE,
        HeaderValue::from_static("600"),
    );
}
