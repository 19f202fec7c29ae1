//! The one error type at the edge: every failure leaves as `{"errors":[…]}` JSON.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::auth::AuthError;
use crate::expr::ExprError;

/// One entry of the `errors` array.
#[derive(Debug, Clone)]
pub struct ErrorEntry {
    /// Stable snake_case code apps switch on.
    pub code: &'static str,
    /// Human text.
    pub message: String,
    /// Free-form object, e.g. `{"field":"email"}`.
    pub details: Option<Value>,
}

/// An error answer: client errors carry entries, internal ones are logged and hidden.
#[derive(Debug)]
pub enum ApiError {
    /// The request's fault (or a refusal): sent as is.
    Client {
        /// HTTP status.
        status: StatusCode,
        /// At least one entry.
        entries: Vec<ErrorEntry>,
        /// `Retry-After` seconds for 429 and 503.
        retry_after: Option<u64>,
    },
    /// Our fault: logged with its cause, answered with an opaque 500.
    Internal(String),
}

impl ApiError {
    /// A client error with one entry.
    pub fn client(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self::Client {
            status,
            entries: vec![ErrorEntry {
                code,
                message: message.into(),
                details: None,
            }],
            retry_after: None,
        }
    }

    /// A 400 `validation_error` naming a field.
    pub fn validation(field: &str, message: impl Into<String>) -> Self {
        Self::Client {
            status: StatusCode::BAD_REQUEST,
            entries: vec![ErrorEntry {
                code: "validation_error",
                message: message.into(),
                details: Some(json!({ "field": field })),
            }],
            retry_after: None,
        }
    }

    /// A member that must be present and not empty: its value, else 400
    /// `missing_required_value` naming it.
    pub fn required<'a>(value: Option<&'a str>, field: &str) -> Result<&'a str, Self> {
        value
            .filter(|v| !v.is_empty())
            .ok_or_else(|| Self::missing(field))
    }

    /// A 400 `missing_required_value` naming a field.
    pub fn missing(field: &str) -> Self {
        Self::Client {
            status: StatusCode::BAD_REQUEST,
            entries: vec![ErrorEntry {
                code: "missing_required_value",
                message: format!("{field} is required."),
                details: Some(json!({ "field": field })),
            }],
            retry_after: None,
        }
    }

    /// 413 for a body over the limit.
    pub fn too_large(limit: usize) -> Self {
        Self::client(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("The request body is larger than the limit of {limit} bytes."),
        )
    }

    /// 404 for an unknown route.
    pub fn not_found() -> Self {
        Self::client(
            StatusCode::NOT_FOUND,
            "not_found",
            "There is no such endpoint.",
        )
    }

    /// 401 `missing_session_token`.
    pub fn missing_session() -> Self {
        Self::client(
            StatusCode::UNAUTHORIZED,
            "missing_session_token",
            "This call needs a session: sign in first.",
        )
    }

    fn with_retry_after(mut self, secs: u64) -> Self {
        if let Self::Client { retry_after, .. } = &mut self {
            *retry_after = Some(secs);
        }
        self
    }
}

impl From<ExprError> for ApiError {
    fn from(err: ExprError) -> Self {
        let entry = match err {
            ExprError::Invalid { position, message } => ErrorEntry {
                code: "invalid_expression",
                message: format!("The expression is not valid: {message}"),
                details: Some(json!({ "position": position })),
            },
            ExprError::Unsupported { name } => ErrorEntry {
                code: "unsupported_function",
                message: format!("The function {name} is not supported."),
                details: Some(json!({ "function": name })),
            },
        };
        Self::Client {
            status: StatusCode::BAD_REQUEST,
            entries: vec![entry],
            retry_after: None,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, entries, retry_after) = match self {
            Self::Client {
                status,
                entries,
                retry_after,
            } => (status, entries, retry_after),
            Self::Internal(cause) => {
                tracing::error!(%cause, "internal error");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    vec![ErrorEntry {
                        code: "internal_server_error",
                        message: "Something went wrong on our side. Please try again.".into(),
                        details: None,
                    }],
                    None,
                )
            }
        };
        let origin = if status.is_server_error() {
            "internal_server_error"
        } else {
            "client_error"
        };
        let errors: Vec<Value> = entries
            .into_iter()
            .map(|entry| {
                let mut value = json!({
                    "origin": origin,
                    "code": entry.code,
                    "message": entry.message,
                });
                if let Some(details) = entry.details {
                    value["details"] = details;
                }
                value
            })
            .collect();
        let mut response = (status, axum::Json(json!({ "errors": errors }))).into_response();
        if let Some(secs) = retry_after
            && let Ok(value) = HeaderValue::from_str(&secs.to_string())
        {
            response.headers_mut().insert(header::RETRY_AFTER, value);
        }
        response
    }
}

impl From<AuthError> for ApiError {
    fn from(err: AuthError) -> Self {
        use StatusCode as S;
        match err {
            AuthError::Validation(fields) => Self::Client {
                status: S::BAD_REQUEST,
                entries: fields
                    .into_iter()
                    .map(|f| ErrorEntry {
                        code: "validation_error",
                        message: f.message,
                        details: Some(json!({ "field": f.field })),
                    })
                    .collect(),
                retry_after: None,
            },
            AuthError::InvalidCredentials => Self::client(
                S::BAD_REQUEST,
                "invalid_credentials",
                "Invalid credentials. Email or password provided is invalid.",
            ),
            AuthError::EmailNotVerified => Self::client(
                S::BAD_REQUEST,
                "email_not_verified",
                "Your email address is not verified yet. Open the link we emailed you, or ask for a new one.",
            ),
            AuthError::EmailTaken => Self::client(
                S::BAD_REQUEST,
                "email_not_unique",
                "This email address is already in use.",
            ),
            AuthError::InvalidAccessToken => Self::client(
                S::BAD_REQUEST,
                "invalid_access_token",
                "Invalid or expired access token",
            ),
            AuthError::InvalidSession => Self::client(
                S::UNAUTHORIZED,
                "invalid_session_token",
                "Your session is no longer valid. Please sign in again.",
            ),
            AuthError::SessionNotFound => Self::client(
                S::BAD_REQUEST,
                "session_not_found",
                "There is no such session of yours.",
            ),
            AuthError::RateLimited(wait) => Self::client(
                S::TOO_MANY_REQUESTS,
                "too_many_requests",
                format!("Too many attempts. Try again in {} seconds.", wait.0),
            )
            .with_retry_after(wait.0),
            AuthError::Busy => Self::client(
                S::SERVICE_UNAVAILABLE,
                "server_busy",
                "The server is busy. Please try again in a moment.",
            )
            .with_retry_after(1),
            AuthError::TimedOut => {
                tracing::warn!("a statement ran past database.statement_timeout_ms");
                Self::client(
                    S::SERVICE_UNAVAILABLE,
                    "query_timeout",
                    "The database took too long to answer. Narrow the query or try again.",
                )
                .with_retry_after(1)
            }
            AuthError::Unavailable(cause) => {
                tracing::error!(%cause, "database error");
                Self::client(
                    S::SERVICE_UNAVAILABLE,
                    "database_unavailable",
                    "The database is not available right now. Please try again.",
                )
                .with_retry_after(1)
            }
            AuthError::Internal(cause) => Self::Internal(cause),
        }
    }
}

impl From<crate::limits::RetryAfter> for ApiError {
    fn from(wait: crate::limits::RetryAfter) -> Self {
        AuthError::RateLimited(wait).into()
    }
}

impl From<crate::limits::LimitError> for ApiError {
    fn from(err: crate::limits::LimitError) -> Self {
        AuthError::from(err).into()
    }
}

impl From<crate::store::StoreError> for ApiError {
    fn from(err: crate::store::StoreError) -> Self {
        AuthError::from(err).into()
    }
}
