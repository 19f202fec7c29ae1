//! The `users` model of the database API (protocol.md §5.3, §10).

use serde_json::{Value, json};

use crate::support::{PASSWORD, TestApp, email};

async fn signed_up(app: &TestApp) -> (String, String) {
    let answer = app.sign_up(&email(), PASSWORD).await;
    let body = answer.assert_ok();
    (
        body["user"]["_id"].as_str().unwrap().to_string(),
        body["session"]["token"].as_str().unwrap().to_string(),
    )
}

fn update(id: &str, values: Value) -> Value {
    json!({ "values": values, "options": { "cache": "nocache", "returnTop": false }, "id": id, "model": "users" })
}

fn no_verification() -> impl FnOnce(&mut basalt::config::Config) {
    |c| c.auth.email_verification = false
}

#[tokio::test]
async fn a_user_updates_their_name_and_sees_it_everywhere() {
    let app = TestApp::spawn_with(no_verification()).await;
    let address = email();
    let body = app.sign_up(&address, PASSWORD).await.body;
    let id = body["user"]["_id"].as_str().unwrap().to_string();
    let token = body["session"]["token"].as_str().unwrap().to_string();
    let updated = app
        .post_as(
            "/db/object/update",
            update(
                &id,
                json!({ "name": "Ada Lovelace", "bio": { "born": 1815 } }),
            ),
            Some(&token),
        )
        .await;
    let user = updated.assert_ok();
    assert_eq!(user["name"], "Ada Lovelace");
    assert_eq!(user["bio"]["born"], 1815);
    assert_eq!(user["email"], address.as_str());
    assert!(user.get("password").is_none());
    // A later update merges: earlier fields stay.
    let again = app
        .post_as(
            "/db/object/update",
            update(&id, json!({ "profilePicture": "http://x.test/a.png" })),
            Some(&token),
        )
        .await;
    assert_eq!(again.assert_ok()["name"], "Ada Lovelace");
    let me = app.get_as("/auth/user", Some(&token)).await;
    assert_eq!(me.assert_ok()["profilePicture"], "http://x.test/a.png");
    let signed_in = app.sign_in(&address, PASSWORD).await;
    assert_eq!(signed_in.assert_ok()["user"]["name"], "Ada Lovelace");
    let read = app
        .post_as(
            "/db/object/get",
            json!({ "model": "users", "id": id, "options": { "cache": "nocache" } }),
            Some(&token),
        )
        .await;
    assert_eq!(read.assert_ok()["bio"]["born"], 1815);
}

#[tokio::test]
async fn others_see_public_fields_only_and_cannot_write() {
    let app = TestApp::spawn_with(no_verification()).await;
    let (ada, ada_token) = signed_up(&app).await;
    let (_, bob_token) = signed_up(&app).await;
    app.post_as(
        "/db/object/update",
        update(&ada, json!({ "name": "Ada", "secret": 1 })),
        Some(&ada_token),
    )
    .await
    .assert_ok();
    let seen = app
        .post_as(
            "/db/object/get",
            json!({ "model": "users", "id": ada }),
            Some(&bob_token),
        )
        .await;
    assert_eq!(seen.assert_ok(), &json!({ "_id": ada, "name": "Ada" }));
    let anonymous = app
        .post("/db/object/get", json!({ "model": "users", "id": ada }))
        .await;
    assert_eq!(anonymous.assert_ok(), &json!({ "_id": ada, "name": "Ada" }));
    app.post_as(
        "/db/object/update",
        update(&ada, json!({ "name": "Bob was here" })),
        Some(&bob_token),
    )
    .await
    .assert_error(403, "not_allowed");
    app.post("/db/object/update", update(&ada, json!({ "name": "anon" })))
        .await
        .assert_error(401, "missing_session_token");
    let me = app.get_as("/auth/user", Some(&ada_token)).await;
    assert_eq!(me.assert_ok()["name"], "Ada");
}

#[tokio::test]
async fn system_fields_cannot_be_written() {
    let app = TestApp::spawn_with(no_verification()).await;
    let (id, token) = signed_up(&app).await;
    for field in [
        "password",
        "_id",
        "email",
        "emailVerified",
        "provider",
        "providerUserId",
        "signUpAt",
        "lastLoginAt",
        "_parent",
    ] {
        let answer = app
            .post_as(
                "/db/object/update",
                update(&id, json!({ field: "x" })),
                Some(&token),
            )
            .await;
        answer.assert_error(400, "validation_error");
        assert_eq!(answer.body["errors"][0]["details"]["field"], field);
    }
    let me = app.get_as("/auth/user", Some(&token)).await;
    assert_eq!(me.assert_ok()["provider"], "altogic");
}

#[tokio::test]
async fn bad_database_requests_get_clear_errors() {
    let app = TestApp::spawn_with(no_verification()).await;
    let (id, token) = signed_up(&app).await;
    let deep = (0..40).fold(json!(1), |inner, _| json!([inner]));
    let cases = [
        (
            json!({ "model": "orders", "id": id }),
            "/db/object/get",
            400,
            "model_not_found",
        ),
        (
            json!({ "id": id }),
            "/db/object/get",
            400,
            "missing_required_value",
        ),
        (
            json!({ "model": "users" }),
            "/db/object/get",
            400,
            "missing_required_value",
        ),
        (
            json!({ "model": "users", "id": id, "values": [1] }),
            "/db/object/update",
            400,
            "validation_error",
        ),
        (
            json!({ "model": "users", "id": id }),
            "/db/object/update",
            400,
            "missing_required_value",
        ),
        (
            json!({ "model": "users", "id": id, "values": { "nested": deep } }),
            "/db/object/update",
            400,
            "validation_error",
        ),
        (
            json!({ "model": "users", "id": 5, "values": {} }),
            "/db/object/update",
            400,
            "validation_error",
        ),
    ];
    for (body, path, status, code) in cases {
        let answer = app.post_as(path, body.clone(), Some(&token)).await;
        assert_eq!(
            (answer.status.as_u16(), answer.codes()),
            (status, vec![code.to_string()]),
            "{path} {body}"
        );
    }
    let missing = app
        .post_as(
            "/db/object/get",
            json!({ "model": "users", "id": "000000000000000000000000" }),
            Some(&token),
        )
        .await;
    assert_eq!(missing.assert_ok(), &Value::Null);
}

#[tokio::test]
async fn a_stale_session_reads_as_anonymous_but_cannot_write() {
    let app = TestApp::spawn_with(no_verification()).await;
    let (id, token) = signed_up(&app).await;
    app.post_as("/auth/signout", json!({}), Some(&token))
        .await
        .assert_ok();
    let read = app
        .post_as(
            "/db/object/get",
            json!({ "model": "users", "id": id }),
            Some(&token),
        )
        .await;
    assert_eq!(read.assert_ok()["_id"], id.as_str());
    assert!(read.body.get("email").is_none());
    app.post_as(
        "/db/object/update",
        update(&id, json!({ "name": "x" })),
        Some(&token),
    )
    .await
    .assert_error(401, "invalid_session_token");
}

fn users_query(expression: Value, extra: Value) -> Value {
    let mut q = json!({ "expression": expression, "lookups": null, "page": null, "limit": null, "sort": null, "omit": null, "group": null });
    if let (Some(q), Some(extra)) = (q.as_object_mut(), extra.as_object()) {
        q.extend(extra.clone());
    }
    json!({ "model": "users", "query": q, "returnCountInfo": true })
}

#[tokio::test]
async fn queries_over_users_read_only_what_a_direct_read_would() {
    let app = TestApp::spawn_with(no_verification()).await;
    let mut people = Vec::new();
    for (name, city) in [("Ada", "London"), ("Grace", "New York"), ("Alan", "London")] {
        let (id, token) = signed_up(&app).await;
        app.post_as(
            "/db/object/update",
            update(&id, json!({ "name": name, "city": city, "flag": true })),
            Some(&token),
        )
        .await
        .assert_ok();
        people.push((id, token));
    }
    let (ada, ada_token) = &people[0];
    let names = |answer: &Value| -> Vec<String> {
        answer["result"]
            .as_array()
            .unwrap()
            .iter()
            .map(|u| u["name"].as_str().unwrap_or("?").to_string())
            .collect()
    };

    // Public fields (name) filter and sort for everyone; the answer is the public view.
    let list = app
        .post_as(
            "/db/get-list",
            users_query(
                json!("STARTSWITH(name, 'A')"),
                json!({ "sort": [{ "field": "name", "direction": "desc" }] }),
            ),
            Some(ada_token),
        )
        .await;
    let body = list.assert_ok();
    assert_eq!(names(body), ["Alan", "Ada"]);
    assert_eq!(body["countInfo"]["count"], 2);
    assert_eq!(body["result"][0].as_object().unwrap().len(), 2, "{body}");
    assert!(
        body["result"][1]["email"].is_string(),
        "own record is whole"
    );

    // A private field (city) only matches the caller's own record; never others'.
    let by_city = app
        .post_as(
            "/db/get-list",
            users_query(json!("city == 'London'"), json!({})),
            Some(ada_token),
        )
        .await;
    assert_eq!(names(by_city.assert_ok()), ["Ada"]);
    let by_email = app
        .post_as(
            "/db/get-list",
            users_query(json!("INCLUDES(email, '@')"), json!({})),
            None,
        )
        .await;
    assert_eq!(by_email.assert_ok()["countInfo"]["count"], 0);

    let single = app
        .post_as(
            "/db/get-single",
            json!({ "model": "users", "query": { "expression": format!("_id == '{ada}'") } }),
            None,
        )
        .await;
    assert_eq!(single.assert_ok(), &json!({ "_id": ada, "name": "Ada" }));

    // Writes over users go through the object calls.
    app.post_as(
        "/db/delete",
        json!({ "model": "users", "query": { "expression": null } }),
        Some(ada_token),
    )
    .await
    .assert_error(400, "not_supported");
}
