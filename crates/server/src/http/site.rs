//! The web app beside the API: `/basalt-config.js` tells an app where this server is, and with
//! `app.static_dir` the app's files are served at `/`, page paths falling back to `index.html`.

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::json;
use tower::ServiceExt;
use tower_http::services::{ServeDir, ServeFile};

use super::error::ApiError;
use crate::state::{AppState, StaticApp};

/// Hashed build output (`/assets/index-3f1c….js`): a new build gets new names.
const IMMUTABLE: &str = "public, max-age=31536000, immutable";

/// The config script route (mounted whether or not an app is served: an app hosted elsewhere
/// may load it too).
pub fn routes() -> Router<AppState> {
    Router::new().route("/basalt-config.js", get(config_script))
}

/// `window.BASALT_CONFIG = {envUrl, clientKey, devMailbox}`: the same build of an app runs on
/// any host. The client key is public by nature (every app bundle carries one).
async fn config_script(State(state): State<AppState>) -> Result<Response, ApiError> {
    let client_key = state.keys.for_apps().ok_or_else(|| {
        ApiError::client(
            StatusCode::SERVICE_UNAVAILABLE,
            "no_client_key",
            "There is no active client key; create one with `basalt keys create`.",
        )
    })?;
    let base = &state.settings.public_base;
    let config = json!({
        "envUrl": base,
        "clientKey": client_key,
        "devMailbox": state.settings.dev_outbox.then(|| format!("{base}/_dev/mailbox")),
    });
    let body = format!("window.BASALT_CONFIG = {};\n", script_safe_json(&config));
    Ok((
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/javascript; charset=utf-8"),
            ),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
        ],
        body,
    )
        .into_response())
}

/// JSON that stays inert wherever it is pasted into HTML or JavaScript: no `<`, `>`, `&` or
/// line separators survive unescaped (they may only occur inside strings, as `\uXXXX`).
fn script_safe_json(value: &serde_json::Value) -> String {
    let mut out = String::new();
    for c in value.to_string().chars() {
        match c {
            '<' => out.push_str("\\u003c"),
            '>' => out.push_str("\\u003e"),
            '&' => out.push_str("\\u0026"),
            '\u{2028}' => out.push_str("\\u2028"),
            '\u{2029}' => out.push_str("\\u2029"),
            c => out.push(c),
        }
    }
    out
}

/// The router's fallback: the app's files when one is served, else (and always for Basalt's
/// own paths) the JSON 404.
pub async fn fallback(State(state): State<AppState>, req: Request) -> Response {
    let path = req.uri().path();
    let Some(app) = &state.settings.app else {
        return ApiError::not_found().into_response();
    };
    if is_reserved(path) || has_hidden_segment(path) {
        return ApiError::not_found().into_response();
    }
    if !matches!(*req.method(), Method::GET | Method::HEAD) {
        return ApiError::client(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            "The app's files answer GET and HEAD only.",
        )
        .into_response();
    }
    serve_file(app, req).await
}

async fn serve_file(app: &StaticApp, req: Request) -> Response {
    let page = looks_like_page(req.uri().path());
    let immutable = req.uri().path().starts_with("/assets/");
    let method = req.method().clone();
    let headers = req.headers().clone();
    let Ok(mut response) = ServeDir::new(&app.dir).oneshot(req).await;
    let mut is_index = false;
    if response.status() == StatusCode::NOT_FOUND && page {
        let mut index = Request::new(Body::empty());
        *index.method_mut() = method;
        *index.headers_mut() = headers;
        let Ok(found) = ServeFile::new(app.dir.join("index.html"))
            .oneshot(index)
            .await;
        response = found;
        is_index = true;
    }
    if response.status() == StatusCode::NOT_FOUND {
        return ApiError::not_found().into_response();
    }
    let mut response = response.map(Body::new);
    let cache = if immutable && !is_index && response.status().is_success() {
        IMMUTABLE
    } else {
        "no-cache"
    };
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    headers.insert(header::CONTENT_SECURITY_POLICY, app.csp.clone());
    response
}

/// Basalt's own paths: everything under `/_…` (API, storage, links, dev outbox) and `/health`.
fn is_reserved(path: &str) -> bool {
    let first = path
        .trim_start_matches('/')
        .split('/')
        .next()
        .unwrap_or_default();
    first.starts_with('_') || first == "health"
}

/// Dot files and folders (`/.env`, `/.git/…`) are never served; `/.well-known/` is.
fn has_hidden_segment(path: &str) -> bool {
    path.split('/').any(|segment| {
        let decoded = percent_encoding::percent_decode_str(segment).decode_utf8_lossy();
        decoded.starts_with('.') && decoded != ".well-known"
    })
}

/// A path a browser navigates to (`/profile`, `/auth-redirect`), not a file (`/logo.png`).
fn looks_like_page(path: &str) -> bool {
    let last = path.rsplit('/').next().unwrap_or_default();
    !last.contains('.')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basalt_paths_are_reserved_and_app_paths_are_not() {
        for path in [
            "/_api/rest/v1/x",
            "/_storage/a/b",
            "/_auth/email/magic",
            "/_dev/mail",
        ] {
            assert!(is_reserved(path), "{path}");
        }
        assert!(is_reserved("/health"));
        for path in ["/", "/profile", "/healthy", "/assets/index.js", "/a/_b"] {
            assert!(!is_reserved(path), "{path}");
        }
    }

    #[test]
    fn pages_have_no_extension() {
        assert!(looks_like_page("/"));
        assert!(looks_like_page("/auth-redirect"));
        assert!(looks_like_page("/users/ada"));
        assert!(!looks_like_page("/assets/index-3f1c.js"));
        assert!(!looks_like_page("/favicon.ico"));
    }

    #[test]
    fn hidden_segments_are_refused_even_when_encoded() {
        assert!(has_hidden_segment("/.env"));
        assert!(has_hidden_segment("/a/%2egit/config"));
        assert!(!has_hidden_segment("/.well-known/assetlinks.json"));
        assert!(!has_hidden_segment("/assets/index.js"));
    }

    #[test]
    fn script_json_cannot_close_a_script_element() {
        let text = script_safe_json(&json!({ "k": "</script><b>&\u{2028}" }));
        assert_eq!(
            text,
            r#"{"k":"\u003c/script\u003e\u003cb\u003e\u0026\u2028"}"#
        );
    }
}
