//! Objects of declared models: create, get, update, update-fields, delete, access rules and
//! field rules (protocol.md §5.3).

use std::collections::BTreeMap;

use basalt::config::{Access, FieldConfig, FieldType, IndexConfig, ModelConfig, SortedIndex};
use serde_json::{Value, json};

use crate::support::{PASSWORD, TestApp, email};

fn field(kind: FieldType) -> FieldConfig {
    FieldConfig {
        kind: Some(kind),
        ..FieldConfig::default()
    }
}

fn model(name: &str, access: Access) -> ModelConfig {
    let mut fields = BTreeMap::new();
    fields.insert(
        "title".to_string(),
        FieldConfig {
            required: true,
            ..field(FieldType::String)
        },
    );
    fields.insert(
        "done".to_string(),
        FieldConfig {
            default: Some(json!(false)),
            ..field(FieldType::Boolean)
        },
    );
    fields.insert(
        "slug".to_string(),
        FieldConfig {
            unique: true,
            ..field(FieldType::String)
        },
    );
    fields.insert("count".to_string(), field(FieldType::Integer));
    ModelConfig {
        name: name.into(),
        access,
        fields,
        // Filters and sorts over indexed fields answer as over any other.
        indexes: vec![
            IndexConfig::Field("title".into()),
            IndexConfig::Sorted(SortedIndex {
                fields: vec!["meta.kind".into()],
                sort: vec!["count".into(), "createdAt".into()],
            }),
        ],
    }
}

async fn app() -> TestApp {
    TestApp::spawn_with(|c| {
        c.auth.email_verification = false;
        c.database.models = vec![
            model("todos", Access::Owner),
            model("posts", Access::PublicRead),
            model("notes", Access::Open),
            model("board", Access::Authenticated),
        ];
    })
    .await
}

async fn session(app: &TestApp) -> String {
    app.sign_up(&email(), PASSWORD).await.body["session"]["token"]
        .as_str()
        .unwrap()
        .to_string()
}

async fn create(
    app: &TestApp,
    token: Option<&str>,
    model: &str,
    values: Value,
) -> crate::support::Answer {
    app.post_as(
        "/db/object/create",
        json!({ "values": values, "options": { "cache": "nocache", "returnTop": false }, "model": model }),
        token,
    )
    .await
}

async fn call(
    app: &TestApp,
    token: Option<&str>,
    path: &str,
    model: &str,
    id: &str,
    extra: Value,
) -> crate::support::Answer {
    let mut body = json!({ "model": model, "id": id, "options": { "cache": "nocache" } });
    if let (Some(body), Some(extra)) = (body.as_object_mut(), extra.as_object()) {
        body.extend(extra.clone());
    }
    app.post_as(path, body, token).await
}

#[tokio::test]
async fn an_owner_creates_reads_updates_and_deletes_their_object() {
    let app = app().await;
    let me = session(&app).await;
    let created = create(
        &app,
        Some(&me),
        "todos",
        json!({ "title": "Write tests", "_id": "ignored0000000000000000" }),
    )
    .await;
    let todo = created.assert_ok().clone();
    let id = todo["_id"].as_str().unwrap().to_string();
    assert_eq!(id.len(), 24);
    assert_ne!(id, "ignored0000000000000000");
    assert_eq!(todo["done"], false, "the default was applied");
    assert!(todo["createdAt"].as_str().unwrap().ends_with('Z'));
    let read = call(&app, Some(&me), "/db/object/get", "todos", &id, json!({})).await;
    assert_eq!(read.assert_ok()["title"], "Write tests");
    let updated = call(
        &app,
        Some(&me),
        "/db/object/update",
        "todos",
        &id,
        json!({ "values": { "done": true } }),
    )
    .await;
    let updated = updated.assert_ok();
    assert_eq!(
        (updated["title"].clone(), updated["done"].clone()),
        (json!("Write tests"), json!(true))
    );
    let fields = call(
        &app,
        Some(&me),
        "/db/object/update-fields",
        "todos",
        &id,
        json!({ "updates": [
            { "field": "count", "updateType": "increment", "value": 2 },
            { "field": "tags", "updateType": "push", "value": "x" }
        ] }),
    )
    .await;
    let fields = fields.assert_ok();
    assert_eq!(
        (fields["count"].clone(), fields["tags"].clone()),
        (json!(2), json!(["x"]))
    );
    call(
        &app,
        Some(&me),
        "/db/object/delete",
        "todos",
        &id,
        json!({}),
    )
    .await
    .assert_ok();
    let gone = call(&app, Some(&me), "/db/object/get", "todos", &id, json!({})).await;
    assert_eq!(gone.assert_ok(), &Value::Null);
    call(
        &app,
        Some(&me),
        "/db/object/delete",
        "todos",
        &id,
        json!({}),
    )
    .await
    .assert_error(400, "object_not_found");
}

#[tokio::test]
async fn owner_objects_are_invisible_and_untouchable_to_others() {
    let app = app().await;
    let me = session(&app).await;
    let other = session(&app).await;
    let id = create(&app, Some(&me), "todos", json!({ "title": "Mine" }))
        .await
        .body["_id"]
        .as_str()
        .unwrap()
        .to_string();
    let seen = call(
        &app,
        Some(&other),
        "/db/object/get",
        "todos",
        &id,
        json!({}),
    )
    .await;
    assert_eq!(seen.assert_ok(), &Value::Null);
    let anonymous = call(&app, None, "/db/object/get", "todos", &id, json!({})).await;
    assert_eq!(anonymous.assert_ok(), &Value::Null);
    call(
        &app,
        Some(&other),
        "/db/object/update",
        "todos",
        &id,
        json!({ "values": { "title": "Theirs" } }),
    )
    .await
    .assert_error(400, "object_not_found");
    call(
        &app,
        Some(&other),
        "/db/object/delete",
        "todos",
        &id,
        json!({}),
    )
    .await
    .assert_error(400, "object_not_found");
    create(&app, None, "todos", json!({ "title": "anon" }))
        .await
        .assert_error(401, "missing_session_token");
    let still = call(&app, Some(&me), "/db/object/get", "todos", &id, json!({})).await;
    assert_eq!(still.assert_ok()["title"], "Mine");
}

#[tokio::test]
async fn public_read_authenticated_and_open_models() {
    let app = app().await;
    let me = session(&app).await;
    let other = session(&app).await;
    let post = create(&app, Some(&me), "posts", json!({ "title": "Hello" }))
        .await
        .body["_id"]
        .as_str()
        .unwrap()
        .to_string();
    let read = call(&app, None, "/db/object/get", "posts", &post, json!({})).await;
    assert_eq!(read.assert_ok()["title"], "Hello");
    call(
        &app,
        Some(&other),
        "/db/object/update",
        "posts",
        &post,
        json!({ "values": { "title": "Hijacked" } }),
    )
    .await
    .assert_error(403, "not_allowed");
    let board = create(&app, Some(&me), "board", json!({ "title": "Shared" }))
        .await
        .body["_id"]
        .as_str()
        .unwrap()
        .to_string();
    call(
        &app,
        Some(&other),
        "/db/object/update",
        "board",
        &board,
        json!({ "values": { "title": "Edited" } }),
    )
    .await
    .assert_ok();
    let anonymous = call(&app, None, "/db/object/get", "board", &board, json!({})).await;
    assert_eq!(anonymous.assert_ok(), &Value::Null);
    let note = create(&app, None, "notes", json!({ "title": "Anyone" })).await;
    let note_id = note.assert_ok()["_id"].as_str().unwrap().to_string();
    call(
        &app,
        None,
        "/db/object/update",
        "notes",
        &note_id,
        json!({ "values": { "title": "Anyone else" } }),
    )
    .await
    .assert_ok();
}

#[tokio::test]
async fn field_rules_are_enforced_with_the_field_named() {
    let app = app().await;
    let me = session(&app).await;
    let cases = [
        (json!({}), 400, "validation_error", Some("title")),
        (
            json!({ "title": 5 }),
            400,
            "validation_error",
            Some("title"),
        ),
        (
            json!({ "title": "x", "count": 1.5 }),
            400,
            "validation_error",
            Some("count"),
        ),
        (
            json!({ "title": "x", "createdAt": "2020-01-01T00:00:00.000Z" }),
            400,
            "validation_error",
            Some("createdAt"),
        ),
        (
            json!({ "title": "x", "_owner": "me" }),
            400,
            "validation_error",
            Some("_owner"),
        ),
    ];
    for (values, status, code, field) in cases {
        let answer = create(&app, Some(&me), "todos", values.clone()).await;
        answer.assert_error(status, code);
        assert_eq!(
            answer.body["errors"][0]["details"]["field"].as_str(),
            field,
            "{values}"
        );
    }
    create(
        &app,
        Some(&me),
        "todos",
        json!({ "title": "a", "slug": "same" }),
    )
    .await
    .assert_ok();
    let taken = create(
        &app,
        Some(&me),
        "todos",
        json!({ "title": "b", "slug": "same" }),
    )
    .await;
    taken.assert_error(400, "not_unique");
    assert_eq!(taken.body["errors"][0]["details"]["field"], "slug");
    create(&app, Some(&me), "orders", json!({ "title": "x" }))
        .await
        .assert_error(400, "model_not_found");
}

#[tokio::test]
async fn an_update_cannot_break_the_rules_and_changes_nothing_when_refused() {
    let app = app().await;
    let me = session(&app).await;
    let a = create(
        &app,
        Some(&me),
        "todos",
        json!({ "title": "a", "slug": "one" }),
    )
    .await
    .body["_id"]
        .as_str()
        .unwrap()
        .to_string();
    create(
        &app,
        Some(&me),
        "todos",
        json!({ "title": "b", "slug": "two" }),
    )
    .await
    .assert_ok();
    call(
        &app,
        Some(&me),
        "/db/object/update",
        "todos",
        &a,
        json!({ "values": { "slug": "two" } }),
    )
    .await
    .assert_error(400, "not_unique");
    call(
        &app,
        Some(&me),
        "/db/object/update",
        "todos",
        &a,
        json!({ "values": { "title": null } }),
    )
    .await
    .assert_error(400, "validation_error");
    call(
        &app,
        Some(&me),
        "/db/object/update-fields",
        "todos",
        &a,
        json!({ "updates": [{ "field": "title", "updateType": "increment", "value": 1 }] }),
    )
    .await
    .assert_error(400, "validation_error");
    let read = call(&app, Some(&me), "/db/object/get", "todos", &a, json!({})).await;
    let read = read.assert_ok();
    assert_eq!(
        (read["title"].clone(), read["slug"].clone()),
        (json!("a"), json!("one"))
    );
    // The unique value is free again once its object changes it.
    call(
        &app,
        Some(&me),
        "/db/object/update",
        "todos",
        &a,
        json!({ "values": { "slug": "three" } }),
    )
    .await
    .assert_ok();
    create(
        &app,
        Some(&me),
        "todos",
        json!({ "title": "c", "slug": "one" }),
    )
    .await
    .assert_ok();
}

#[tokio::test]
async fn a_user_can_delete_their_own_account_and_its_sessions_end() {
    let app = app().await;
    let answer = app.sign_up(&email(), PASSWORD).await;
    let id = answer.body["user"]["_id"].as_str().unwrap().to_string();
    let token = answer.body["session"]["token"]
        .as_str()
        .unwrap()
        .to_string();
    let other = session(&app).await;
    call(
        &app,
        Some(&other),
        "/db/object/delete",
        "users",
        &id,
        json!({}),
    )
    .await
    .assert_error(403, "not_allowed");
    call(
        &app,
        Some(&token),
        "/db/object/delete",
        "users",
        &id,
        json!({}),
    )
    .await
    .assert_ok();
    app.get_as("/auth/user", Some(&token))
        .await
        .assert_error(401, "invalid_session_token");
}
