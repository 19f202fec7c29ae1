//! Query calls over declared models: filters, sort, pages, counts, bulk writes, and the access
//! rules inside filters (protocol.md §5.4–§5.7).

use basalt::config::{Access, ModelConfig};
use serde_json::{Value, json};

use crate::support::{PASSWORD, TestApp, email};

async fn app() -> TestApp {
    TestApp::spawn_with(|c| {
        c.auth.email_verification = false;
        c.database.models = vec![
            ModelConfig {
                name: "todos".into(),
                access: Access::Owner,
                fields: Default::default(),
                indexes: Vec::new(),
            },
            ModelConfig {
                name: "posts".into(),
                access: Access::PublicRead,
                fields: Default::default(),
                indexes: Vec::new(),
            },
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

fn query(expression: Value, extra: Value) -> Value {
    let mut q = json!({ "expression": expression, "lookups": null, "page": null, "limit": null, "sort": null, "omit": null, "group": null });
    if let (Some(q), Some(extra)) = (q.as_object_mut(), extra.as_object()) {
        q.extend(extra.clone());
    }
    q
}

async fn seed(app: &TestApp, token: &str) {
    let todos: Vec<Value> = (1..=12)
        .map(|i| json!({ "title": format!("task {i:02}"), "priority": i % 3, "done": i % 4 == 0, "tags": if i % 2 == 0 { json!(["even"]) } else { json!([]) } }))
        .collect();
    let created = app
        .post_as(
            "/db/create",
            json!({ "model": "todos", "values": todos }),
            Some(token),
        )
        .await;
    assert_eq!(created.assert_ok().as_array().unwrap().len(), 12);
}

fn titles(list: &Value) -> Vec<String> {
    list.as_array()
        .unwrap()
        .iter()
        .map(|o| o["title"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn get_list_filters_sorts_pages_and_counts_in_the_database() {
    let app = app().await;
    let me = session(&app).await;
    seed(&app, &me).await;
    let list = app
        .post_as(
            "/db/get-list",
            json!({ "model": "todos", "query": query(json!("priority == 1 && !done"), json!({ "sort": [{ "field": "title", "direction": "desc" }] })) }),
            Some(&me),
        )
        .await;
    // priority 1: tasks 1, 4, 7, 10; task 4 is done.
    assert_eq!(titles(list.assert_ok()), ["task 10", "task 07", "task 01"]);
    let page = app
        .post_as(
            "/db/get-list",
            json!({ "model": "todos", "returnCountInfo": true, "query": query(json!("IN(this.tags, 'even')"), json!({ "sort": [{ "field": "title", "direction": "asc" }], "limit": 4, "page": 2, "omit": ["tags", "priority"] })) }),
            Some(&me),
        )
        .await;
    let body = page.assert_ok();
    assert_eq!(
        body["countInfo"],
        json!({ "count": 6, "totalPages": 2, "currentPage": 2, "pageSize": 4 })
    );
    assert_eq!(titles(&body["result"]), ["task 10", "task 12"]);
    assert!(body["result"][0].get("tags").is_none() && body["result"][0].get("priority").is_none());
    let single = app
        .post_as(
            "/db/get-single",
            json!({ "model": "todos", "query": query(json!("INCLUDES(title, '05')"), json!({})) }),
            Some(&me),
        )
        .await;
    assert_eq!(single.assert_ok()["title"], "task 05");
    let none = app
        .post_as(
            "/db/get-single",
            json!({ "model": "todos", "query": query(json!("title == 'nope'"), json!({})) }),
            Some(&me),
        )
        .await;
    assert_eq!(none.assert_ok(), &Value::Null);
}

#[tokio::test]
async fn filters_never_reveal_other_users_objects() {
    let app = app().await;
    let me = session(&app).await;
    let other = session(&app).await;
    seed(&app, &me).await;
    let theirs = app
        .post_as("/db/get-list", json!({ "model": "todos", "returnCountInfo": true, "query": query(json!("title != ''"), json!({})) }), Some(&other))
        .await;
    assert_eq!(theirs.assert_ok()["countInfo"]["count"], 0);
    let anonymous = app
        .post_as(
            "/db/get-list",
            json!({ "model": "todos", "query": query(Value::Null, json!({})) }),
            None,
        )
        .await;
    assert_eq!(anonymous.assert_ok(), &json!([]));
    let result = app
        .post_as(
            "/db/delete",
            json!({ "model": "todos", "query": query(Value::Null, json!({})) }),
            Some(&other),
        )
        .await;
    assert_eq!(
        result.assert_ok(),
        &json!({ "totalMatch": 0, "deleted": 0 })
    );
    let mine = app
        .post_as("/db/get-list", json!({ "model": "todos", "returnCountInfo": 1, "query": query(Value::Null, json!({})) }), Some(&me))
        .await;
    assert_eq!(mine.assert_ok()["countInfo"]["count"], 12);
}

#[tokio::test]
async fn bulk_updates_and_deletes_report_what_they_matched() {
    let app = app().await;
    let me = session(&app).await;
    seed(&app, &me).await;
    let updated = app
        .post_as("/db/update", json!({ "model": "todos", "values": { "done": true }, "query": query(json!("priority == 0"), json!({})) }), Some(&me))
        .await;
    assert_eq!(
        updated.assert_ok(),
        &json!({ "totalMatch": 4, "updated": 4 })
    );
    let incremented = app
        .post_as("/db/update-fields", json!({ "model": "todos", "updates": [{ "field": "priority", "updateType": "increment", "value": 10 }], "query": query(json!("done"), json!({})) }), Some(&me))
        .await;
    // done: 4, 8, 12 from the start, and 3, 6, 9 (priority 0) just now.
    assert_eq!(incremented.assert_ok()["totalMatch"], 6);
    let high = app
        .post_as("/db/get-list", json!({ "model": "todos", "returnCountInfo": true, "query": query(json!("priority >= 10"), json!({})) }), Some(&me))
        .await;
    assert_eq!(high.assert_ok()["countInfo"]["count"], 6);
    let deleted = app
        .post_as(
            "/db/delete",
            json!({ "model": "todos", "query": query(json!("priority >= 10"), json!({})) }),
            Some(&me),
        )
        .await;
    assert_eq!(
        deleted.assert_ok(),
        &json!({ "totalMatch": 6, "deleted": 6 })
    );
}

#[tokio::test]
async fn public_read_lists_for_anyone_but_bulk_writes_touch_only_ones_own() {
    let app = app().await;
    let me = session(&app).await;
    let other = session(&app).await;
    app.post_as(
        "/db/create",
        json!({ "model": "posts", "values": [{ "title": "mine" }] }),
        Some(&me),
    )
    .await
    .assert_ok();
    app.post_as(
        "/db/create",
        json!({ "model": "posts", "values": { "title": "theirs" } }),
        Some(&other),
    )
    .await
    .assert_ok();
    let all = app
        .post_as("/db/get-list", json!({ "model": "posts", "query": query(Value::Null, json!({ "sort": [{ "field": "title" }] })) }), None)
        .await;
    assert_eq!(titles(all.assert_ok()), ["mine", "theirs"]);
    let updated = app
        .post_as("/db/update", json!({ "model": "posts", "values": { "title": "hijacked" }, "query": query(Value::Null, json!({})) }), Some(&other))
        .await;
    assert_eq!(
        updated.assert_ok(),
        &json!({ "totalMatch": 1, "updated": 1 })
    );
    let after = app
        .post_as(
            "/db/get-list",
            json!({ "model": "posts", "query": query(json!("title == 'mine'"), json!({})) }),
            None,
        )
        .await;
    assert_eq!(after.assert_ok().as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn bad_queries_get_clear_errors() {
    let app = app().await;
    let me = session(&app).await;
    let cases = [
        (query(json!("title =="), json!({})), "invalid_expression"),
        (query(json!("(a"), json!({})), "invalid_expression"),
        (
            query(json!("DATEDIFF(a, b) > 1"), json!({})),
            "unsupported_function",
        ),
        (
            query(json!("a == 1"), json!({ "limit": 0 })),
            "validation_error",
        ),
        (
            query(json!("a == 1"), json!({ "page": 0 })),
            "validation_error",
        ),
        (
            query(
                json!("a == 1"),
                json!({ "sort": [{ "field": "a", "direction": "sideways" }] }),
            ),
            "validation_error",
        ),
        (
            query(
                json!("a == 1"),
                json!({ "sort": [{ "field": "a'; DROP TABLE objects; --" }] }),
            ),
            "invalid_expression",
        ),
    ];
    for (q, code) in cases {
        let answer = app
            .post_as(
                "/db/get-list",
                json!({ "model": "todos", "query": q.clone() }),
                Some(&me),
            )
            .await;
        assert_eq!(
            (answer.status.as_u16(), answer.codes()),
            (400, vec![code.to_string()]),
            "{q}"
        );
    }
    let invalid = app
        .post_as(
            "/db/get-list",
            json!({ "model": "todos", "query": query(json!("title == "), json!({})) }),
            Some(&me),
        )
        .await;
    assert!(invalid.body["errors"][0]["details"]["position"].is_number());
    app.post_as(
        "/db/get-list",
        json!({ "model": "nope", "query": query(Value::Null, json!({})) }),
        Some(&me),
    )
    .await
    .assert_error(400, "model_not_found");
    // The data is intact.
    app.post_as(
        "/db/create",
        json!({ "model": "todos", "values": { "title": "still here" } }),
        Some(&me),
    )
    .await
    .assert_ok();
}
