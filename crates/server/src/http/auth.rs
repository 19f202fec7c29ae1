//! `/_api/rest/v1/auth/*`: the auth calls of the altogic client (protocol.md §3).

use axum::extract::State;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};

use super::error::ApiError;
use super::extract::{ApiJson, Authenticated, ClientIp, RawQuery, UserAgent};
use super::views::{grant_json, session_json, user_json};
use crate::auth::SignUp;
use crate::limits::Limit;
use crate::state::AppState;

/// The auth routes, relative to `/_api/rest/v1/auth`.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/signup-email", post(sign_up))
        .route("/signin-email", post(sign_in))
        .route("/send-magic", post(send_magic_link))
        .route("/grant", get(redeem_grant))
        .route("/sessions", get(list_sessions))
        .route("/signout", post(sign_out))
        .route("/signout-all", post(sign_out_all))
        .route("/signout-all-except", post(sign_out_others))
        .route("/user", get(current_user))
        .route("/change-pwd", post(change_password))
        .route("/resend", post(resend_verification))
        .route("/send-reset", post(send_password_reset))
        .route("/reset-pwd", post(reset_password))
        .route("/change-email", post(change_email))
}

/// `{}`: what void endpoints answer.
fn done() -> Json<Value> {
    Json(json!({}))
}

fn required(value: Option<String>, field: &str) -> Result<String, ApiError> {
    value.ok_or_else(|| ApiError::missing(field))
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct SignUpRequest {
    email: Option<String>,
    password: Option<String>,
    name_or_user_data: Option<Value>,
    /// Clients before 2.0 (and the Dart client) send the profile as `name`.
    name: Option<Value>,
}

async fn sign_up(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    UserAgent(agent): UserAgent,
    ApiJson(body): ApiJson<SignUpRequest>,
) -> Result<Json<Value>, ApiError> {
    state
        .limits
        .check(Limit::AuthPerIp, &ip.to_string())
        .await?;
    let grant = state
        .auth
        .sign_up(SignUp {
            email: required(body.email, "email")?,
            password: required(body.password, "password")?,
            profile: body.name_or_user_data.or(body.name),
            user_agent: agent,
        })
        .await?;
    Ok(Json(grant_json(&grant)))
}

#[derive(Debug, Deserialize)]
struct SignInRequest {
    email: Option<String>,
    password: Option<String>,
}

async fn sign_in(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    UserAgent(agent): UserAgent,
    ApiJson(body): ApiJson<SignInRequest>,
) -> Result<Json<Value>, ApiError> {
    state
        .limits
        .check(Limit::AuthPerIp, &ip.to_string())
        .await?;
    let email = required(body.email, "email")?;
    let password = required(body.password, "password")?;
    let grant = state
        .auth
        .sign_in(&email, &password, agent.as_deref())
        .await?;
    Ok(Json(grant_json(&grant)))
}

async fn send_magic_link(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    query: RawQuery,
) -> Result<Json<Value>, ApiError> {
    state
        .limits
        .check(Limit::MailPerIp, &ip.to_string())
        .await?;
    state.auth.send_magic_link(query.require("email")?).await?;
    Ok(done())
}

async fn resend_verification(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    query: RawQuery,
) -> Result<Json<Value>, ApiError> {
    state
        .limits
        .check(Limit::MailPerIp, &ip.to_string())
        .await?;
    state
        .auth
        .resend_verification(query.require("email")?)
        .await?;
    Ok(done())
}

async fn send_password_reset(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    query: RawQuery,
) -> Result<Json<Value>, ApiError> {
    state
        .limits
        .check(Limit::MailPerIp, &ip.to_string())
        .await?;
    state
        .auth
        .send_password_reset(query.require("email")?)
        .await?;
    Ok(done())
}

async fn redeem_grant(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    UserAgent(agent): UserAgent,
    query: RawQuery,
) -> Result<Json<Value>, ApiError> {
    state
        .limits
        .check(Limit::RedeemPerIp, &ip.to_string())
        .await?;
    let key = query.get("key").unwrap_or_default();
    let grant = state.auth.redeem_grant(key, agent.as_deref()).await?;
    Ok(Json(grant_json(&grant)))
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ResetPasswordRequest {
    new_password: Option<String>,
}

async fn reset_password(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    query: RawQuery,
    ApiJson(body): ApiJson<ResetPasswordRequest>,
) -> Result<Json<Value>, ApiError> {
    state
        .limits
        .check(Limit::RedeemPerIp, &ip.to_string())
        .await?;
    let key = query.get("key").unwrap_or_default();
    let password = required(body.new_password, "newPassword")?;
    state.auth.reset_password(key, &password).await?;
    Ok(done())
}

async fn list_sessions(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
) -> Result<Json<Value>, ApiError> {
    let sessions = state.auth.list_sessions(&caller).await?;
    Ok(Json(Value::Array(
        sessions.iter().map(session_json).collect(),
    )))
}

#[derive(Debug, Deserialize)]
struct SignOutRequest {
    token: Option<String>,
}

async fn sign_out(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    ApiJson(body): ApiJson<SignOutRequest>,
) -> Result<Json<Value>, ApiError> {
    state.auth.sign_out(&caller, body.token.as_deref()).await?;
    Ok(done())
}

async fn sign_out_all(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
) -> Result<Json<Value>, ApiError> {
    state.auth.sign_out_all(&caller, false).await?;
    Ok(done())
}

async fn sign_out_others(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
) -> Result<Json<Value>, ApiError> {
    state.auth.sign_out_all(&caller, true).await?;
    Ok(done())
}

async fn current_user(Authenticated(caller): Authenticated) -> Json<Value> {
    Json(user_json(&caller.user))
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ChangePasswordRequest {
    new_password: Option<String>,
    old_password: Option<String>,
}

async fn change_password(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    ApiJson(body): ApiJson<ChangePasswordRequest>,
) -> Result<Json<Value>, ApiError> {
    let new = required(body.new_password, "newPassword")?;
    let old = required(body.old_password, "oldPassword")?;
    state.auth.change_password(&caller, &new, &old).await?;
    Ok(done())
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ChangeEmailRequest {
    current_password: Option<String>,
    new_email: Option<String>,
}

async fn change_email(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    ApiJson(body): ApiJson<ChangeEmailRequest>,
) -> Result<Json<Value>, ApiError> {
    let password = required(body.current_password, "currentPassword")?;
    let email = required(body.new_email, "newEmail")?;
    let user = state.auth.change_email(&caller, &password, &email).await?;
    Ok(Json(user_json(&user)))
}
