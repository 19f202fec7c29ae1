//! Extractors that reject with our JSON envelope: bodies, raw query values, the caller's
//! session, the client IP.

use std::net::{IpAddr, SocketAddr};

use axum::body::Bytes;
use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode};
use percent_encoding::percent_decode_str;
use serde::de::DeserializeOwned;

use super::error::ApiError;
use crate::auth::Caller;
use crate::state::AppState;

/// A JSON body; an empty body reads as `{}` (the client posts no body for some calls).
#[derive(Debug)]
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned> FromRequest<AppState> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let limit = state.settings.body_limit(req.uri().path());
        let bytes = Bytes::from_request(req, state).await.map_err(|rejection| {
            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::too_large(limit)
            } else {
                ApiError::client(
                    StatusCode::BAD_REQUEST,
                    "invalid_body",
                    "The request body could not be read.",
                )
            }
        })?;
        let first = bytes.iter().find(|b| !b.is_ascii_whitespace());
        let body: &[u8] = match first {
            None => b"{}",
            Some(b'{') => &bytes,
            Some(b'[' | b'"' | b'-' | b'0'..=b'9') => {
                return Err(ApiError::validation(
                    "body",
                    "The request body must be a JSON object.",
                ));
            }
            Some(_) => &bytes,
        };
        let mut de = serde_json::Deserializer::from_slice(body);
        let value = serde_path_to_error::deserialize(&mut de).map_err(|err| {
            let path = err.path().to_string();
            let inner = err.into_inner();
            if inner.is_syntax() || inner.is_eof() {
                return ApiError::client(
                    StatusCode::BAD_REQUEST,
                    "invalid_json",
                    format!("The request body is not valid JSON: {inner}"),
                );
            }
            let message = inner.to_string();
            if let Some(field) = message
                .strip_prefix("missing field `")
                .and_then(|rest| rest.split('`').next())
            {
                return ApiError::missing(field);
            }
            let field = if path == "." { "body" } else { &path };
            let message = message.split(" at line ").next().unwrap_or_default();
            ApiError::validation(field, format!("{field}: {message}"))
        })?;
        de.end().map_err(|_| {
            ApiError::client(
                StatusCode::BAD_REQUEST,
                "invalid_json",
                "The request body has trailing characters after the JSON value.",
            )
        })?;
        Ok(Self(value))
    }
}

/// Query values decoded with percent-decoding only: the client does not encode `email` or
/// `key`, so a `+` is a plus, never a space (protocol.md §1.4).
#[derive(Debug, Default)]
pub struct RawQuery(Vec<(String, String)>);

impl RawQuery {
    /// The first value of `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }

    /// The first value of `name`, required.
    pub fn require(&self, name: &str) -> Result<&str, ApiError> {
        match self.get(name) {
            Some(value) if !value.is_empty() => Ok(value),
            _ => Err(ApiError::missing(name)),
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for RawQuery {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let query = parts.uri.query().unwrap_or_default();
        let pairs = query
            .split('&')
            .filter(|pair| !pair.is_empty())
            .map(|pair| {
                let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
                let decode = |s: &str| percent_decode_str(s).decode_utf8_lossy().into_owned();
                (decode(key), decode(value))
            })
            .collect();
        Ok(Self(pairs))
    }
}

/// The caller, authenticated by the `Session` header (required).
#[derive(Debug)]
pub struct Authenticated(pub Caller);

impl FromRequestParts<AppState> for Authenticated {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let header = SessionHeader::from_request_parts(parts, state).await?;
        let caller = header.caller(state).await?;
        caller.map(Self).ok_or_else(ApiError::missing_session)
    }
}

/// The `Session` header, if any, for calls where a session is optional.
#[derive(Debug)]
pub struct SessionHeader(pub Option<String>);

impl SessionHeader {
    /// The caller behind the header: `Ok(None)` without one, `Err` when it is invalid.
    pub async fn caller(&self, state: &AppState) -> Result<Option<Caller>, ApiError> {
        match &self.0 {
            None => Ok(None),
            Some(token) => Ok(Some(state.auth.authenticate(token).await?)),
        }
    }

    /// The caller for a read: an unknown, expired or revoked session reads as anonymous; a
    /// database failure is an error, never a silent downgrade to anonymous.
    pub async fn reader(&self, state: &AppState) -> Result<Option<Caller>, ApiError> {
        let Some(token) = &self.0 else {
            return Ok(None);
        };
        match state.auth.authenticate(token).await {
            Ok(caller) => Ok(Some(caller)),
            Err(crate::auth::AuthError::InvalidSession) => Ok(None),
            Err(err) => Err(err.into()),
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for SessionHeader {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let token = parts
            .headers
            .get("session")
            .and_then(|value| value.to_str().ok())
            .map(str::trim)
            .filter(|token| !token.is_empty())
            .map(String::from);
        Ok(Self(token))
    }
}

/// The `User-Agent` header, if any.
#[derive(Debug)]
pub struct UserAgent(pub Option<String>);

impl<S: Send + Sync> FromRequestParts<S> for UserAgent {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let agent = parts
            .headers
            .get(axum::http::header::USER_AGENT)
            .and_then(|value| value.to_str().ok())
            .map(|value| value.chars().take(512).collect());
        Ok(Self(agent))
    }
}

/// The client's IP: the socket peer, or `X-Forwarded-For` when the peer is a trusted proxy.
#[derive(Debug, Clone, Copy)]
pub struct ClientIp(pub IpAddr);

impl FromRequestParts<AppState> for ClientIp {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|info| info.0.ip())
            .unwrap_or(IpAddr::from([127, 0, 0, 1]));
        Ok(Self(client_ip(
            peer,
            &parts.headers,
            &state.settings.trusted_proxies,
        )))
    }
}

/// Walk `X-Forwarded-For` from the right while hops are trusted proxies.
pub fn client_ip(peer: IpAddr, headers: &HeaderMap, trusted: &[IpAddr]) -> IpAddr {
    if !trusted.contains(&peer) {
        return peer;
    }
    let forwarded = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .map(str::trim)
        .filter_map(|hop| hop.parse::<IpAddr>().ok())
        .collect::<Vec<_>>();
    forwarded
        .into_iter()
        .rev()
        .find(|hop| !trusted.contains(hop))
        .unwrap_or(peer)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forwarded_for_is_believed_only_from_trusted_proxies() {
        let proxy: IpAddr = "10.0.0.1".parse().unwrap();
        let mut headers = HeaderMap::new();
        headers.insert("x-forwarded-for", "6.6.6.6, 1.2.3.4".parse().unwrap());
        let peer: IpAddr = "9.9.9.9".parse().unwrap();
        assert_eq!(client_ip(peer, &headers, &[proxy]), peer);
        assert_eq!(
            client_ip(proxy, &headers, &[proxy]),
            "1.2.3.4".parse::<IpAddr>().unwrap()
        );
    }
}
