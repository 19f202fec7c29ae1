//! `/_api/rest/v1/db/*`: the database API's object calls (protocol.md §5.3). `users` is the
//! auth record (profile); other models are those declared in the configuration (records).

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Map, Value};

use super::error::ApiError;
use super::extract::{ApiJson, SessionHeader};
use super::views::user_json;
use crate::profile::{ProfileError, UserView};
use crate::records::{Computation, FieldUpdate, LookupSpec, QuerySpec, RecordError};
use crate::state::AppState;

/// The database routes, relative to `/_api/rest/v1`.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/db/object/get", post(get_object))
        .route("/db/object/create", post(create_object))
        .route("/db/object/update", post(update_object))
        .route("/db/object/update-fields", post(update_fields))
        .route("/db/object/delete", post(delete_object))
        .route("/db/get-list", post(get_list))
        .route("/db/get-single", post(get_single))
        .route("/db/create", post(create_many))
        .route("/db/update", post(update_matching))
        .route("/db/update-fields", post(update_fields_matching))
        .route("/db/delete", post(delete_matching))
        .route("/db/get-random", post(get_random))
        .route("/db/compute", post(compute))
}

#[derive(Debug, Deserialize)]
struct ObjectRequest {
    model: Option<String>,
    id: Option<String>,
    values: Option<Value>,
    updates: Option<Vec<FieldUpdate>>,
    /// Cache hints and `returnTop`: accepted and ignored (protocol.md §5.2).
    #[serde(rename = "options")]
    _options: Option<Value>,
    /// Lookups of `object/get` (§5.6).
    lookups: Option<Vec<LookupSpec>>,
}

impl ObjectRequest {
    fn model(&self) -> Result<&str, ApiError> {
        ApiError::required(self.model.as_deref(), "model")
    }

    fn id(&self) -> Result<&str, ApiError> {
        ApiError::required(self.id.as_deref(), "id")
    }

    fn values(&self) -> Result<Map<String, Value>, ApiError> {
        object_values(self.values.as_ref())
    }
}

/// `values` that must be one object.
fn object_values(values: Option<&Value>) -> Result<Map<String, Value>, ApiError> {
    match values {
        Some(Value::Object(values)) => Ok(values.clone()),
        None => Err(ApiError::missing("values")),
        Some(_) => Err(ApiError::validation("values", "values must be an object.")),
    }
}

impl From<ProfileError> for ApiError {
    fn from(err: ProfileError) -> Self {
        let message = err.to_string();
        match err {
            ProfileError::NotAllowed => ApiError::client(
                StatusCode::FORBIDDEN,
                "not_allowed",
                "You can only change your own user object.",
            ),
            ProfileError::NotFound => {
                ApiError::client(StatusCode::BAD_REQUEST, "object_not_found", message)
            }
            ProfileError::SystemField(field) | ProfileError::TooDeep(field) => {
                ApiError::validation(&field, message)
            }
            ProfileError::TimedOut => crate::auth::AuthError::TimedOut.into(),
            ProfileError::Unavailable(cause) => crate::auth::AuthError::Unavailable(cause).into(),
        }
    }
}

impl From<RecordError> for ApiError {
    fn from(err: RecordError) -> Self {
        let message = err.to_string();
        match err {
            RecordError::ModelNotFound(_) => {
                ApiError::client(StatusCode::BAD_REQUEST, "model_not_found", message)
            }
            RecordError::NotFound => {
                ApiError::client(StatusCode::BAD_REQUEST, "object_not_found", message)
            }
            RecordError::NotAllowed => {
                ApiError::client(StatusCode::FORBIDDEN, "not_allowed", message)
            }
            RecordError::MissingSession => ApiError::missing_session(),
            RecordError::Invalid { field, message } => ApiError::validation(&field, message),
            RecordError::NotUnique(field) => ApiError::Client {
                status: StatusCode::BAD_REQUEST,
                entries: vec![super::error::ErrorEntry {
                    code: "not_unique",
                    message,
                    details: Some(serde_json::json!({ "field": field })),
                }],
                retry_after: None,
            },
            RecordError::Expression(err) => err.into(),
            RecordError::TooBroad(_) => {
                ApiError::client(StatusCode::BAD_REQUEST, "query_too_broad", message)
            }
            RecordError::TimedOut => crate::auth::AuthError::TimedOut.into(),
            RecordError::Unavailable(cause) => crate::auth::AuthError::Unavailable(cause).into(),
        }
    }
}

async fn get_object(
    State(state): State<AppState>,
    session: SessionHeader,
    ApiJson(body): ApiJson<ObjectRequest>,
) -> Result<Json<Value>, ApiError> {
    let (model, id) = (body.model()?, body.id()?);
    let caller = session.reader(&state).await?;
    let caller_id = caller.as_ref().map(|c| c.user.id.as_str());
    if model == "users" {
        return Ok(Json(match state.profile.get(caller_id, id).await? {
            Some(UserView::Own(user)) => user_json(&user),
            Some(UserView::Public(fields)) => Value::Object(fields),
            None => Value::Null,
        }));
    }
    let object = state
        .records
        .get(caller_id, model, id, body.lookups.as_deref())
        .await?;
    Ok(Json(object.unwrap_or(Value::Null)))
}

async fn create_object(
    State(state): State<AppState>,
    session: SessionHeader,
    ApiJson(body): ApiJson<ObjectRequest>,
) -> Result<Json<Value>, ApiError> {
    let model = body.model()?;
    if model == "users" {
        return Err(ApiError::client(
            StatusCode::FORBIDDEN,
            "not_allowed",
            "Users are created by signing up.",
        ));
    }
    let values = body.values()?;
    let caller = session.caller(&state).await?;
    let caller_id = caller.as_ref().map(|c| c.user.id.as_str());
    let mut created = state.records.create(caller_id, model, vec![values]).await?;
    Ok(Json(created.pop().unwrap_or(Value::Null)))
}

async fn update_object(
    State(state): State<AppState>,
    session: SessionHeader,
    ApiJson(body): ApiJson<ObjectRequest>,
) -> Result<Json<Value>, ApiError> {
    let (model, id) = (body.model()?, body.id()?);
    let values = body.values()?;
    let caller = session.caller(&state).await?;
    if model == "users" {
        let caller = caller.ok_or_else(ApiError::missing_session)?;
        let user = state.profile.update(&caller.user.id, id, values).await?;
        return Ok(Json(user_json(&user)));
    }
    let caller_id = caller.as_ref().map(|c| c.user.id.as_str());
    Ok(Json(
        state.records.update(caller_id, model, id, values).await?,
    ))
}

async fn update_fields(
    State(state): State<AppState>,
    session: SessionHeader,
    ApiJson(body): ApiJson<ObjectRequest>,
) -> Result<Json<Value>, ApiError> {
    let (model, id) = (body.model()?, body.id()?);
    let updates = body
        .updates
        .clone()
        .ok_or_else(|| ApiError::missing("updates"))?;
    let caller = session.caller(&state).await?;
    if model == "users" {
        return Err(ApiError::client(
            StatusCode::BAD_REQUEST,
            "not_supported",
            "Use object/update to change a user.",
        ));
    }
    let caller_id = caller.as_ref().map(|c| c.user.id.as_str());
    Ok(Json(
        state
            .records
            .update_fields(caller_id, model, id, updates)
            .await?,
    ))
}

async fn delete_object(
    State(state): State<AppState>,
    session: SessionHeader,
    ApiJson(body): ApiJson<ObjectRequest>,
) -> Result<Json<Value>, ApiError> {
    let (model, id) = (body.model()?, body.id()?);
    let caller = session.caller(&state).await?;
    if model == "users" {
        let caller = caller.ok_or_else(ApiError::missing_session)?;
        state.profile.delete(&caller.user.id, id).await?;
        return Ok(Json(Value::Null));
    }
    let caller_id = caller.as_ref().map(|c| c.user.id.as_str());
    state.records.delete(caller_id, model, id).await?;
    Ok(Json(Value::Null))
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct QueryRequest {
    model: Option<String>,
    query: Option<QuerySpec>,
    values: Option<Value>,
    updates: Option<Vec<FieldUpdate>>,
    /// Any truthy JSON value asks for count information (protocol.md §2.6).
    return_count_info: Option<Value>,
    /// How many objects `get-random` returns.
    count: Option<u64>,
    /// What `compute` computes.
    computations: Option<Vec<Computation>>,
}

impl QueryRequest {
    /// The model named, `users` included.
    fn any_model(&self) -> Result<&str, ApiError> {
        ApiError::required(self.model.as_deref(), "model")
    }

    /// The model, which must be a declared one: `users` is read with `get-list` and
    /// `get-single` and written with the object calls only.
    fn model(&self) -> Result<&str, ApiError> {
        let model = self.any_model()?;
        if model == "users" {
            return Err(ApiError::client(
                StatusCode::BAD_REQUEST,
                "not_supported",
                "On users, use get-list, get-single and the object calls.",
            ));
        }
        Ok(model)
    }

    fn spec(&self) -> QuerySpec {
        self.query.clone().unwrap_or_default()
    }

    fn wants_count(&self) -> bool {
        match &self.return_count_info {
            None | Some(Value::Null) | Some(Value::Bool(false)) => false,
            Some(Value::Number(n)) => n.as_f64() != Some(0.0),
            Some(Value::String(s)) => !s.is_empty(),
            Some(_) => true,
        }
    }
}

/// `get-list` over a declared model or `users`.
async fn list(
    state: &AppState,
    caller: Option<&str>,
    body: &QueryRequest,
    spec: &QuerySpec,
    count: bool,
) -> Result<(Vec<Value>, Option<crate::records::CountInfo>), ApiError> {
    Ok(match body.any_model()? {
        "users" => state.records.list_users(caller, spec, count).await?,
        model => state.records.list(caller, model, spec, count).await?,
    })
}

async fn get_list(
    State(state): State<AppState>,
    session: SessionHeader,
    ApiJson(body): ApiJson<QueryRequest>,
) -> Result<Json<Value>, ApiError> {
    let caller = session.reader(&state).await?;
    let caller_id = caller.as_ref().map(|c| c.user.id.as_str());
    let (objects, info) = list(&state, caller_id, &body, &body.spec(), body.wants_count()).await?;
    Ok(Json(match info {
        Some(info) => serde_json::json!({ "result": objects, "countInfo": info.to_json() }),
        None => Value::Array(objects),
    }))
}

async fn get_single(
    State(state): State<AppState>,
    session: SessionHeader,
    ApiJson(body): ApiJson<QueryRequest>,
) -> Result<Json<Value>, ApiError> {
    let caller = session.reader(&state).await?;
    let caller_id = caller.as_ref().map(|c| c.user.id.as_str());
    let spec = QuerySpec {
        limit: Some(1),
        page: None,
        ..body.spec()
    };
    let (mut objects, _) = list(&state, caller_id, &body, &spec, false).await?;
    Ok(Json(objects.pop().unwrap_or(Value::Null)))
}

async fn create_many(
    State(state): State<AppState>,
    session: SessionHeader,
    ApiJson(body): ApiJson<QueryRequest>,
) -> Result<Json<Value>, ApiError> {
    let model = body.model()?;
    let (values, many) = match &body.values {
        Some(Value::Object(one)) => (vec![one.clone()], false),
        Some(Value::Array(items)) => (
            items
                .iter()
                .map(|item| item.as_object().cloned())
                .collect::<Option<Vec<_>>>()
                .ok_or_else(|| ApiError::validation("values", "values must be objects."))?,
            true,
        ),
        None => return Err(ApiError::missing("values")),
        Some(_) => {
            return Err(ApiError::validation(
                "values",
                "values must be an object or a list of objects.",
            ));
        }
    };
    let caller = session.caller(&state).await?;
    let caller_id = caller.as_ref().map(|c| c.user.id.as_str());
    let mut created = state.records.create(caller_id, model, values).await?;
    Ok(Json(if many {
        Value::Array(created)
    } else {
        created.pop().unwrap_or(Value::Null)
    }))
}

async fn update_matching(
    State(state): State<AppState>,
    session: SessionHeader,
    ApiJson(body): ApiJson<QueryRequest>,
) -> Result<Json<Value>, ApiError> {
    let model = body.model()?;
    let values = object_values(body.values.as_ref())?;
    let caller = session.caller(&state).await?;
    let caller_id = caller.as_ref().map(|c| c.user.id.as_str());
    let (total, updated) = state
        .records
        .update_matching(caller_id, model, &body.spec(), values)
        .await?;
    Ok(Json(
        serde_json::json!({ "totalMatch": total, "updated": updated }),
    ))
}

async fn update_fields_matching(
    State(state): State<AppState>,
    session: SessionHeader,
    ApiJson(body): ApiJson<QueryRequest>,
) -> Result<Json<Value>, ApiError> {
    let model = body.model()?;
    let updates = body
        .updates
        .clone()
        .ok_or_else(|| ApiError::missing("updates"))?;
    let caller = session.caller(&state).await?;
    let caller_id = caller.as_ref().map(|c| c.user.id.as_str());
    let (total, updated) = state
        .records
        .update_fields_matching(caller_id, model, &body.spec(), updates)
        .await?;
    Ok(Json(
        serde_json::json!({ "totalMatch": total, "updated": updated }),
    ))
}

async fn delete_matching(
    State(state): State<AppState>,
    session: SessionHeader,
    ApiJson(body): ApiJson<QueryRequest>,
) -> Result<Json<Value>, ApiError> {
    let model = body.model()?;
    let caller = session.caller(&state).await?;
    let caller_id = caller.as_ref().map(|c| c.user.id.as_str());
    let (total, deleted) = state
        .records
        .delete_matching(caller_id, model, &body.spec())
        .await?;
    Ok(Json(
        serde_json::json!({ "totalMatch": total, "deleted": deleted }),
    ))
}

async fn get_random(
    State(state): State<AppState>,
    session: SessionHeader,
    ApiJson(body): ApiJson<QueryRequest>,
) -> Result<Json<Value>, ApiError> {
    let caller = session.reader(&state).await?;
    let caller_id = caller.as_ref().map(|c| c.user.id.as_str());
    let count = body.count.ok_or_else(|| ApiError::missing("count"))?;
    let objects = state
        .records
        .random(caller_id, body.model()?, &body.spec(), count)
        .await?;
    Ok(Json(Value::Array(objects)))
}

async fn compute(
    State(state): State<AppState>,
    session: SessionHeader,
    ApiJson(body): ApiJson<QueryRequest>,
) -> Result<Json<Value>, ApiError> {
    let caller = session.reader(&state).await?;
    let caller_id = caller.as_ref().map(|c| c.user.id.as_str());
    let computations = body
        .computations
        .as_deref()
        .ok_or_else(|| ApiError::missing("computations"))?;
    let groups = state
        .records
        .compute(caller_id, body.model()?, &body.spec(), computations)
        .await?;
    Ok(Json(Value::Array(groups)))
}
