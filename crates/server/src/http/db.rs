//! `/_api/rest/v1/db/*`: the database API. So far the `users` model's object calls that the
//! tutorial's profile page uses (protocol.md §5.3); other models answer `model_not_found`.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::Value;

use super::error::ApiError;
use super::extract::{ApiJson, SessionHeader};
use super::views::user_json;
use crate::profile::{ProfileError, UserView};
use crate::state::AppState;

/// The database routes, relative to `/_api/rest/v1`.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/db/object/get", post(get_object))
        .route("/db/object/update", post(update_object))
}

#[derive(Debug, Deserialize)]
struct ObjectRequest {
    model: Option<String>,
    id: Option<String>,
    values: Option<Value>,
    /// Cache hints and `returnTop`: accepted and ignored (protocol.md §5.2).
    #[serde(rename = "options")]
    _options: Option<Value>,
    /// Lookups of `object/get`: not yet supported, ignored.
    #[serde(rename = "lookups")]
    _lookups: Option<Value>,
}

impl From<ProfileError> for ApiError {
    fn from(err: ProfileError) -> Self {
        match err {
            ProfileError::NotAllowed => ApiError::client(
                StatusCode::FORBIDDEN,
                "not_allowed",
                "You can only change your own user object.",
            ),
            ProfileError::NotFound => ApiError::client(
                StatusCode::BAD_REQUEST,
                "object_not_found",
                "There is no such object.",
            ),
            ProfileError::SystemField(field) => {
                let message = ProfileError::SystemField(field.clone()).to_string();
                ApiError::validation(&field, message)
            }
            ProfileError::TooDeep(field) => {
                let message = ProfileError::TooDeep(field.clone()).to_string();
                ApiError::validation(&field, message)
            }
            ProfileError::Unavailable(cause) => crate::auth::AuthError::Unavailable(cause).into(),
        }
    }
}

/// The model must be `users` for now.
fn users_model(model: Option<&str>) -> Result<(), ApiError> {
    match model {
        None | Some("") => Err(ApiError::missing("model")),
        Some("users") => Ok(()),
        Some(other) => Err(ApiError::client(
            StatusCode::BAD_REQUEST,
            "model_not_found",
            format!("There is no model named '{other}'."),
        )),
    }
}

async fn get_object(
    State(state): State<AppState>,
    session: SessionHeader,
    ApiJson(body): ApiJson<ObjectRequest>,
) -> Result<Json<Value>, ApiError> {
    users_model(body.model.as_deref())?;
    let id = body
        .id
        .filter(|id| !id.is_empty())
        .ok_or_else(|| ApiError::missing("id"))?;
    // A stale session header is ignored here: the read is answered as for anyone.
    let caller = session.caller(&state).await.ok().flatten();
    let caller_id = caller.as_ref().map(|c| c.user.id.as_str());
    Ok(Json(match state.profile.get(caller_id, &id).await? {
        Some(UserView::Own(user)) => user_json(&user),
        Some(UserView::Public(fields)) => Value::Object(fields),
        None => Value::Null,
    }))
}

async fn update_object(
    State(state): State<AppState>,
    session: SessionHeader,
    ApiJson(body): ApiJson<ObjectRequest>,
) -> Result<Json<Value>, ApiError> {
    users_model(body.model.as_deref())?;
    let id = body
        .id
        .filter(|id| !id.is_empty())
        .ok_or_else(|| ApiError::missing("id"))?;
    let values = match body.values {
        Some(Value::Object(values)) => values,
        None => return Err(ApiError::missing("values")),
        Some(_) => return Err(ApiError::validation("values", "values must be an object.")),
    };
    let caller = session
        .caller(&state)
        .await?
        .ok_or_else(ApiError::missing_session)?;
    let user = state.profile.update(&caller.user.id, &id, values).await?;
    Ok(Json(user_json(&user)))
}
