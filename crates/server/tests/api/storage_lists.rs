//! The storage list calls and totals (protocol.md §6.2, §6.6): what a caller sees, filters,
//! sorts and pages; the bad input of every new storage call. Helpers shared with
//! `storage_transfers.rs`.

use std::time::Duration;

use serde_json::{Value, json};

use crate::support::{Answer, KEY, PASSWORD, TestApp, email};

pub(crate) fn spawn_config() -> impl FnOnce(&mut basalt::config::Config) {
    |c| c.auth.email_verification = false
}

/// A signed-up user: `(id, session token)`.
pub(crate) async fn user(app: &TestApp) -> (String, String) {
    let body = app.sign_up(&email(), PASSWORD).await.body;
    (
        body["user"]["_id"].as_str().unwrap().to_string(),
        body["session"]["token"].as_str().unwrap().to_string(),
    )
}

/// Upload `text` as `name` to `bucket` through `upload-object`; private unless `public`,
/// tagged `t<length>`, typed `text/markdown` for `.md` names and `text/plain` otherwise.
pub(crate) async fn put(
    app: &TestApp,
    token: &str,
    bucket: &str,
    name: &str,
    text: &str,
    public: bool,
) -> Value {
    let kind = if name.ends_with(".md") {
        "markdown"
    } else {
        "plain"
    };
    let options = format!(
        "%7B%22isPublic%22%3A{public}%2C%22tags%22%3A%5B%22t{}%22%5D%2C%22contentType%22%3A%22text%2F{kind}%22%7D",
        text.len()
    );
    let response = app
        .http
        .post(app.api(&format!(
            "/storage/bucket/upload-object?bucket={bucket}&fileName={name}&options={options}"
        )))
        .header("X-Client-Key", KEY)
        .header("Session", token)
        .json(&Value::from(text))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

pub(crate) async fn bucket(app: &TestApp, token: &str, name: &str, public: bool) -> Value {
    app.post_as(
        "/storage/create-bucket",
        json!({ "name": name, "isPublic": public, "tags": [] }),
        Some(token),
    )
    .await
    .assert_ok()
    .clone()
}

pub(crate) fn names(list: &Value) -> Vec<&str> {
    list.as_array()
        .unwrap_or_else(|| panic!("not a list: {list}"))
        .iter()
        .map(|f| f["fileName"].as_str().or(f["name"].as_str()).unwrap())
        .collect()
}

pub(crate) async fn search(
    app: &TestApp,
    token: Option<&str>,
    expression: Value,
    options: Value,
) -> Answer {
    app.post_as(
        "/storage/search-files",
        json!({ "expression": expression, "options": options }),
        token,
    )
    .await
}

#[tokio::test]
async fn lists_show_public_files_and_buckets_and_the_callers_own() {
    let app = TestApp::spawn_with(spawn_config()).await;
    let (_, me) = user(&app).await;
    let (_, other) = user(&app).await;
    put(&app, &me, "root", "a.txt", "a", true).await;
    put(&app, &me, "root", "b.txt", "bb", false).await;
    put(&app, &other, "root", "c.txt", "ccc", false).await;
    bucket(&app, &me, "mine", false).await;
    bucket(&app, &other, "shared", true).await;

    let all = |token| search(&app, token, Value::Null, Value::Null);
    let mut seen = Vec::new();
    for token in [None, Some(me.as_str()), Some(other.as_str())] {
        let answer = all(token).await;
        let mut listed: Vec<String> = names(answer.assert_ok())
            .iter()
            .map(|n| n.to_string())
            .collect();
        listed.sort();
        seen.push(listed);
    }
    assert_eq!(
        seen,
        [
            vec!["a.txt"],
            vec!["a.txt", "b.txt"],
            vec!["a.txt", "c.txt"]
        ]
    );

    // A filter never reaches what the caller may not read, not even as a count.
    let probe = search(
        &app,
        Some(&other),
        json!("fileName == 'b.txt'"),
        json!({ "returnCountInfo": true }),
    )
    .await;
    assert_eq!(probe.assert_ok()["result"], json!([]));
    assert_eq!(probe.body["countInfo"]["count"], 0);

    let app = &app;
    let buckets = |token| async move {
        let answer = app
            .post_as(
                "/storage/list-buckets",
                json!({ "expression": null, "options": null }),
                token,
            )
            .await;
        let mut listed: Vec<String> = names(answer.assert_ok())
            .iter()
            .map(|n| n.to_string())
            .collect();
        listed.sort();
        listed
    };
    assert_eq!(buckets(None).await, ["root", "shared"]);
    assert_eq!(buckets(Some(&me)).await, ["mine", "root", "shared"]);
    assert_eq!(buckets(Some(&other)).await, ["root", "shared"]);
}

#[tokio::test]
async fn list_files_filters_sorts_and_pages_in_the_database() {
    let app = TestApp::spawn_with(spawn_config()).await;
    let (me_id, me) = user(&app).await;
    bucket(&app, &me, "docs", true).await;
    for (name, text) in [
        ("d.txt", "dddd"),
        ("a.txt", "a"),
        ("c.md", "ccc"),
        ("b.txt", "bb"),
        ("e.txt", "eeeee"),
    ] {
        put(&app, &me, "docs", name, text, true).await;
        app.clock.advance(Duration::from_secs(1));
    }
    put(&app, &me, "root", "elsewhere.txt", "x", true).await;
    let list = |expression: Value, options: Value| {
        app.post_as(
            "/storage/bucket/list-files",
            json!({ "bucket": "docs", "expression": expression, "options": options }),
            Some(&me),
        )
    };

    let every = list(Value::Null, Value::Null).await;
    assert_eq!(
        names(every.assert_ok()),
        ["d.txt", "a.txt", "c.md", "b.txt", "e.txt"]
    );
    let by_size = list(
        json!("size >= 2"),
        json!({ "page": 2, "limit": 2, "sort": { "field": "size", "direction": "desc" }, "returnCountInfo": true }),
    )
    .await;
    assert_eq!(names(&by_size.assert_ok()["result"]), ["c.md", "b.txt"]);
    assert_eq!(
        by_size.body["countInfo"],
        json!({ "count": 4, "totalPages": 2, "currentPage": 2, "pageSize": 2 })
    );
    let by_name = list(
        Value::from(""),
        json!({ "sort": { "field": "fileName", "direction": "asc" } }),
    )
    .await;
    assert_eq!(
        names(by_name.assert_ok()),
        ["a.txt", "b.txt", "c.md", "d.txt", "e.txt"]
    );
    let newest = list(
        Value::Null,
        json!({ "sort": { "field": "uploadedAt", "direction": "desc" }, "limit": 2 }),
    )
    .await;
    assert_eq!(names(newest.assert_ok()), ["e.txt", "b.txt"]);

    let first = &every.body[0];
    for (expression, expected) in [
        ("mimeType == 'text/markdown'".to_string(), vec!["c.md"]),
        (
            "ENDSWITH(fileName, '.txt') && size < 3".into(),
            vec!["a.txt", "b.txt"],
        ),
        ("IN(tags, 't5')".into(), vec!["e.txt"]),
        (
            format!("_id == '{}'", first["_id"].as_str().unwrap()),
            vec!["d.txt"],
        ),
        (
            format!(
                "uploadedAt > '{}'",
                every.body[3]["uploadedAt"].as_str().unwrap()
            ),
            vec!["e.txt"],
        ),
        (
            format!("publicPath == '{}'", first["publicPath"].as_str().unwrap()),
            vec!["d.txt"],
        ),
        (
            format!("userId == '{me_id}' && isPublic && encoding == '7bit'"),
            vec!["d.txt", "a.txt", "c.md", "b.txt", "e.txt"],
        ),
        (
            "createdAt == uploadedAt && SIZE(tags) == 1 && size != 3".into(),
            vec!["d.txt", "a.txt", "b.txt", "e.txt"],
        ),
        (
            format!("bucketId != '{}'", first["bucketId"].as_str().unwrap()),
            vec![],
        ),
    ] {
        let answer = list(Value::from(expression.clone()), Value::Null).await;
        assert_eq!(names(answer.assert_ok()), expected, "{expression}");
    }

    let buckets = app
        .post_as(
            "/storage/list-buckets",
            json!({ "expression": "name != 'root'", "options": { "sort": { "field": "createdAt", "direction": "desc" }, "returnCountInfo": true } }),
            Some(&me),
        )
        .await;
    assert_eq!(names(&buckets.assert_ok()["result"]), ["docs"]);
    assert_eq!(buckets.body["countInfo"]["pageSize"], 100);
}

#[tokio::test]
async fn list_and_transfer_calls_refuse_bad_input_with_4xx() {
    let app = TestApp::spawn_with(spawn_config()).await;
    let (_, me) = user(&app).await;
    put(&app, &me, "root", "a.txt", "a", true).await;
    let cases = [
        (
            "/storage/bucket/list-files",
            json!({}),
            400,
            "missing_required_value",
        ),
        (
            "/storage/bucket/list-files",
            json!({ "bucket": "nope" }),
            400,
            "bucket_not_found",
        ),
        (
            "/storage/search-files",
            json!({ "expression": "size >" }),
            400,
            "invalid_expression",
        ),
        (
            "/storage/search-files",
            json!({ "expression": "NOSUCH(size)" }),
            400,
            "unsupported_function",
        ),
        (
            "/storage/search-files",
            json!({ "expression": 5 }),
            400,
            "validation_error",
        ),
        (
            "/storage/list-buckets",
            json!({ "options": "x" }),
            400,
            "validation_error",
        ),
        (
            "/storage/list-buckets",
            json!({ "options": { "page": 0 } }),
            400,
            "validation_error",
        ),
        (
            "/storage/list-buckets",
            json!({ "options": { "limit": -1 } }),
            400,
            "validation_error",
        ),
        (
            "/storage/list-buckets",
            json!({ "options": { "sort": { "field": "name", "direction": "up" } } }),
            400,
            "validation_error",
        ),
        (
            "/storage/list-buckets",
            json!({ "options": { "sort": { "field": "a b" } } }),
            400,
            "invalid_expression",
        ),
        (
            "/storage/bucket/delete-files",
            json!({ "bucket": "root" }),
            400,
            "missing_required_value",
        ),
        (
            "/storage/bucket/delete-files",
            json!({ "bucket": "root", "fileNamesOrIds": 5 }),
            400,
            "validation_error",
        ),
        (
            "/storage/bucket/delete-files",
            json!({ "bucket": "root", "fileNamesOrIds": [1] }),
            400,
            "validation_error",
        ),
        (
            "/storage/bucket/delete-files",
            json!({ "bucket": "nope", "fileNamesOrIds": [] }),
            400,
            "bucket_not_found",
        ),
        (
            "/storage/bucket/file/move",
            json!({ "bucket": "root", "file": "a.txt" }),
            400,
            "missing_required_value",
        ),
        (
            "/storage/bucket/file/move",
            json!({ "bucket": "root", "file": "a.txt", "bucketNameOrId": "nope" }),
            400,
            "bucket_not_found",
        ),
        (
            "/storage/bucket/file/copy",
            json!({ "bucket": "root", "file": "a.txt", "bucketNameOrId": 7 }),
            400,
            "validation_error",
        ),
        (
            "/storage/bucket/file/copy",
            json!({ "bucket": "root", "file": "nope", "bucketNameOrId": "root" }),
            404,
            "file_not_found",
        ),
        (
            "/storage/bucket/file/duplicate",
            json!({ "bucket": "root", "file": "a.txt", "duplicateName": "../x" }),
            400,
            "validation_error",
        ),
        (
            "/storage/bucket/file/duplicate",
            json!({ "bucket": "root", "file": "a.txt", "duplicateName": false }),
            400,
            "validation_error",
        ),
        (
            "/storage/bucket/get",
            json!({ "bucket": "root", "detailed": "yes" }),
            400,
            "validation_error",
        ),
    ];
    for (path, body, status, code) in cases {
        let answer = app.post_as(path, body.clone(), Some(&me)).await;
        assert_eq!(
            (answer.status.as_u16(), answer.codes()),
            (status, vec![code.to_string()]),
            "{path} {body}"
        );
    }
    let too_many: Vec<String> = (0..1001).map(|i| format!("f{i}")).collect();
    app.post_as(
        "/storage/bucket/delete-files",
        json!({ "bucket": "root", "fileNamesOrIds": too_many }),
        Some(&me),
    )
    .await
    .assert_error(400, "validation_error");
    for path in [
        "/storage/bucket/file/move",
        "/storage/bucket/file/copy",
        "/storage/bucket/file/duplicate",
        "/storage/bucket/delete-files",
    ] {
        app.post_as(
            path,
            json!({ "bucket": "root", "file": "a.txt", "bucketNameOrId": "root", "fileNamesOrIds": ["a.txt"] }),
            None,
        )
        .await
        .assert_error(401, "missing_session_token");
    }
}

#[tokio::test]
async fn bucket_details_and_storage_stats_total_the_readable_files() {
    let app = TestApp::spawn_with(spawn_config()).await;
    let (_, me) = user(&app).await;
    let (_, other) = user(&app).await;
    bucket(&app, &me, "box", false).await;
    put(&app, &me, "box", "a.txt", "aa", true).await;
    put(&app, &me, "box", "b.txt", "bbbb", false).await;
    put(&app, &other, "root", "c.txt", "cccccc", true).await;

    let plain = app
        .post_as(
            "/storage/bucket/get",
            json!({ "bucket": "box", "detailed": false }),
            Some(&me),
        )
        .await;
    assert!(plain.assert_ok().get("stats").is_none());
    let detailed = app
        .post_as(
            "/storage/bucket/get",
            json!({ "bucket": "box", "detailed": true }),
            Some(&me),
        )
        .await;
    assert_eq!(detailed.assert_ok()["name"], "box");
    assert_eq!(
        detailed.body["stats"],
        json!({ "fileCount": 2, "totalSize": 6, "averageSize": 3.0, "minSize": 2, "maxSize": 4 })
    );
    // Another user's private bucket reads as missing, as in list-buckets (its public files
    // still show in search-files and at their public paths).
    for path in ["/storage/bucket/get", "/storage/bucket/list-files"] {
        app.post_as(
            path,
            json!({ "bucket": "box", "detailed": true }),
            Some(&other),
        )
        .await
        .assert_error(400, "bucket_not_found");
    }
    let exists = app
        .post_as(
            "/storage/bucket/exists",
            json!({ "bucket": "box" }),
            Some(&other),
        )
        .await;
    assert_eq!(exists.assert_ok(), &json!(false));
    let exists = app
        .post_as(
            "/storage/bucket/exists",
            json!({ "bucket": "box" }),
            Some(&me),
        )
        .await;
    assert_eq!(exists.assert_ok(), &json!(true));

    let stats = app.get_as("/storage/stats", Some(&me)).await;
    assert_eq!(
        stats.assert_ok().clone(),
        json!({ "bucketCount": 2, "fileCount": 3, "totalSize": 12, "averageSize": 4.0, "minSize": 2, "maxSize": 6 })
    );
    let anonymous = app.get_as("/storage/stats", None).await;
    assert_eq!(
        (
            anonymous.assert_ok()["bucketCount"].clone(),
            anonymous.body["fileCount"].clone(),
            anonymous.body["totalSize"].clone()
        ),
        (json!(1), json!(2), json!(8))
    );
}
