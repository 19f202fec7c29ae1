//! The storage list calls and totals (protocol.md §6.6): `list-buckets`, `search-files`,
//! `bucket/list-files`, `bucket/get` (with `detailed`), `GET storage/stats`.

use axum::Json;
use axum::extract::State;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::{Call, bucket_json, file_json, reader};
use crate::files::{ListOptions, Scope};
use crate::http::error::ApiError;
use crate::http::extract::{ApiJson, SessionHeader};
use crate::records::CountInfo;
use crate::state::AppState;
use crate::store::StorageStats;

/// The body of the list calls; `null` members mean "all" and "defaults".
#[derive(Debug, Deserialize)]
pub(super) struct ListRequest {
    expression: Option<String>,
    options: Option<ListOptions>,
    bucket: Option<String>,
}

/// A bare array, or the `{result, countInfo}` wrapper of protocol.md §2.6.
fn listing(items: Vec<Value>, info: Option<CountInfo>) -> Value {
    match info {
        Some(info) => json!({ "result": items, "countInfo": info.to_json() }),
        None => Value::Array(items),
    }
}

/// File totals as `bucket/get` reports them under `stats`.
fn file_stats(stats: &StorageStats) -> Map<String, Value> {
    let mut out = Map::new();
    out.insert("fileCount".into(), json!(stats.files));
    out.insert("totalSize".into(), json!(stats.total_size));
    out.insert("averageSize".into(), json!(stats.average_size));
    out.insert("minSize".into(), json!(stats.min_size));
    out.insert("maxSize".into(), json!(stats.max_size));
    out
}

pub(super) async fn list_buckets(
    State(state): State<AppState>,
    session: SessionHeader,
    ApiJson(body): ApiJson<ListRequest>,
) -> Result<Json<Value>, ApiError> {
    let caller = reader(&state, &session).await?;
    let options = body.options.unwrap_or_default();
    let (buckets, info) = state
        .files
        .list_buckets(caller.as_deref(), body.expression.as_deref(), &options)
        .await?;
    Ok(Json(listing(
        buckets.iter().map(bucket_json).collect(),
        info,
    )))
}

pub(super) async fn search_files(
    state: State<AppState>,
    session: SessionHeader,
    ApiJson(body): ApiJson<ListRequest>,
) -> Result<Json<Value>, ApiError> {
    files(state, session, body, Scope::AllBuckets).await
}

pub(super) async fn list_files(
    state: State<AppState>,
    session: SessionHeader,
    ApiJson(body): ApiJson<ListRequest>,
) -> Result<Json<Value>, ApiError> {
    let bucket = ApiError::required(body.bucket.as_deref(), "bucket")?.to_string();
    files(state, session, body, Scope::Bucket(&bucket)).await
}

async fn files(
    State(state): State<AppState>,
    session: SessionHeader,
    body: ListRequest,
    scope: Scope<'_>,
) -> Result<Json<Value>, ApiError> {
    let caller = reader(&state, &session).await?;
    let options = body.options.unwrap_or_default();
    let (files, info) = state
        .files
        .list_files(
            caller.as_deref(),
            scope,
            body.expression.as_deref(),
            &options,
            &state.settings.public_base,
        )
        .await?;
    let items = files.iter().map(|f| file_json(&state, f)).collect();
    Ok(Json(listing(items, info)))
}

/// `bucket/get`: the bucket, and with `detailed: true` the totals of the files in it the
/// caller may read, under `stats`.
pub(super) async fn bucket_info(
    (State(state), session, ApiJson(body)): Call,
) -> Result<Json<Value>, ApiError> {
    let caller = reader(&state, &session).await?;
    let bucket = state
        .files
        .readable_bucket(caller.as_deref(), body.bucket()?)
        .await?;
    let mut value = bucket_json(&bucket);
    if body.detailed == Some(true) {
        let stats = state.files.stats(caller.as_deref(), Some(&bucket)).await?;
        value["stats"] = Value::Object(file_stats(&stats));
    }
    Ok(Json(value))
}

/// `GET storage/stats`: totals over the buckets and files the caller may read.
pub(super) async fn stats(
    State(state): State<AppState>,
    session: SessionHeader,
) -> Result<Json<Value>, ApiError> {
    let caller = reader(&state, &session).await?;
    let stats = state.files.stats(caller.as_deref(), None).await?;
    let mut out = Map::new();
    out.insert("bucketCount".into(), json!(stats.buckets));
    out.extend(file_stats(&stats));
    Ok(Json(Value::Object(out)))
}
