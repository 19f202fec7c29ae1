//! `/_auth/email/*`: where emailed links land; each answers 302 to the app (protocol.md §4).

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use super::extract::{ClientIp, RawQuery};
use crate::auth::{LinkError, LinkKind};
use crate::limits::{Limit, LimitError};
use crate::state::AppState;

/// The landing routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/_auth/email/confirm", get(confirm))
        .route("/_auth/email/magic", get(magic))
        .route("/_auth/email/reset", get(reset))
        .route("/_auth/email/change", get(change))
}

async fn confirm(state: State<AppState>, ip: ClientIp, query: RawQuery) -> Response {
    land(state, ip, query, LinkKind::Confirm).await
}

async fn magic(state: State<AppState>, ip: ClientIp, query: RawQuery) -> Response {
    land(state, ip, query, LinkKind::Magic).await
}

async fn reset(state: State<AppState>, ip: ClientIp, query: RawQuery) -> Response {
    land(state, ip, query, LinkKind::Reset).await
}

async fn change(state: State<AppState>, ip: ClientIp, query: RawQuery) -> Response {
    land(state, ip, query, LinkKind::ChangeEmail).await
}

async fn land(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    query: RawQuery,
    kind: LinkKind,
) -> Response {
    let redirect = &state.settings.redirect_url;
    match state
        .limits
        .check(Limit::RedeemPerIp, &ip.to_string())
        .await
    {
        Ok(()) => {}
        Err(LimitError::Limited(wait)) => {
            let message = format!("Too many attempts. Try again in {} seconds.", wait.0);
            return found(redirect_url(redirect, 429, kind, Err(&message)));
        }
        Err(LimitError::Unavailable(cause)) => {
            tracing::error!(error = %cause, "reading the rate limits of an emailed link failed");
            let message = LinkError::Internal(cause.into()).to_string();
            return found(redirect_url(redirect, 500, kind, Err(&message)));
        }
    }
    let token = query.get("token").unwrap_or_default();
    let target = match state.auth.open_link(kind, token).await {
        Ok(access_token) => redirect_url(redirect, 200, kind, Ok(access_token.as_deref())),
        Err(err) => {
            let status = match &err {
                LinkError::Internal(cause) => {
                    tracing::error!(error = %cause, "opening an emailed link failed");
                    500
                }
                LinkError::Invalid | LinkError::EmailTaken => 400,
            };
            redirect_url(redirect, status, kind, Err(&err.to_string()))
        }
    };
    found(target)
}

fn found(target: String) -> Response {
    match HeaderValue::from_str(&target) {
        Ok(location) => (StatusCode::FOUND, [(header::LOCATION, location)]).into_response(),
        Err(_) => super::error::ApiError::Internal("redirect URL is not a header value".into())
            .into_response(),
    }
}

/// The app's redirect URL with `status`, `action`, then `access_token` or `error`.
pub fn redirect_url(
    base: &url::Url,
    status: u16,
    kind: LinkKind,
    outcome: Result<Option<&str>, &str>,
) -> String {
    let mut url = base.clone();
    {
        let mut pairs = url.query_pairs_mut();
        pairs.append_pair("status", &status.to_string());
        pairs.append_pair("action", kind.action());
        match outcome {
            Ok(Some(token)) => {
                pairs.append_pair("access_token", token);
            }
            Ok(None) => {}
            Err(message) => {
                pairs.append_pair("error", message);
            }
        }
    }
    url.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_come_in_protocol_order_after_existing_ones() {
        let base = url::Url::parse("http://localhost:3000/auth-redirect?app=1#top").unwrap();
        let url = redirect_url(&base, 200, LinkKind::Magic, Ok(Some("abc-_1")));
        assert_eq!(
            url,
            "http://localhost:3000/auth-redirect?app=1&status=200&action=magic-link&access_token=abc-_1#top"
        );
        let url = redirect_url(
            &base,
            400,
            LinkKind::Confirm,
            Err("Invalid or expired access token"),
        );
        assert!(url.ends_with(
            "status=400&action=email-confirm&error=Invalid+or+expired+access+token#top"
        ));
    }

    #[test]
    fn custom_schemes_work() {
        let base = url::Url::parse("myapp://host/path").unwrap();
        let url = redirect_url(&base, 200, LinkKind::ChangeEmail, Ok(None));
        assert_eq!(url, "myapp://host/path?status=200&action=change-email");
    }
}
