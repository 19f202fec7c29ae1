//! `compute`, `get-random` and lookups (protocol.md §5.6, §5.8), with the access rules of
//! every model they touch.

use basalt::config::{Access, ModelConfig};
use serde_json::{Value, json};

use crate::support::{PASSWORD, TestApp, email};

async fn app() -> TestApp {
    TestApp::spawn_with(|c| {
        c.auth.email_verification = false;
        c.database.models = ["orders", "notes", "teams", "members"]
            .into_iter()
            .map(|name| ModelConfig {
                name: name.into(),
                access: match name {
                    "notes" => Access::Owner,
                    _ => Access::PublicRead,
                },
                fields: Default::default(),
                indexes: Vec::new(),
            })
            .collect();
    })
    .await
}

async fn user(app: &TestApp) -> (String, String) {
    let grant = app.sign_up(&email(), PASSWORD).await;
    let body = grant.assert_ok();
    (
        body["session"]["token"].as_str().unwrap().to_string(),
        body["user"]["_id"].as_str().unwrap().to_string(),
    )
}

fn query(expression: Value, extra: Value) -> Value {
    let mut q = json!({ "expression": expression, "lookups": null, "page": null, "limit": null, "sort": null, "omit": null, "group": null });
    if let (Some(q), Some(extra)) = (q.as_object_mut(), extra.as_object()) {
        q.extend(extra.clone());
    }
    q
}

async fn create(app: &TestApp, token: &str, model: &str, values: Value) -> Value {
    app.post_as(
        "/db/create",
        json!({ "model": model, "values": values }),
        Some(token),
    )
    .await
    .assert_ok()
    .clone()
}

async fn seed_orders(app: &TestApp, token: &str) {
    let orders: Vec<Value> = [
        ("apple", 2, 1.5),
        ("apple", 3, 1.5),
        ("pear", 1, 4.0),
        ("plum", 5, 0.5),
    ]
    .into_iter()
    .map(|(product, qty, price)| json!({ "product": product, "qty": qty, "price": price }))
    .collect();
    create(app, token, "orders", Value::Array(orders)).await;
}

#[tokio::test]
async fn compute_groups_filters_sorts_and_pages() {
    let app = app().await;
    let (me, _) = user(&app).await;
    seed_orders(&app, &me).await;
    let computations = json!([
        { "name": "orders", "type": "count" },
        { "name": "units", "type": "sum", "expression": "qty", "sort": "desc" },
        { "name": "revenue", "type": "sum", "expression": "qty * price" },
        { "name": "big", "type": "countif", "expression": "qty >= 3" },
        { "name": "avgQty", "type": "avg", "expression": "qty" },
        { "name": "cheapest", "type": "min", "expression": "price" },
    ]);
    let grouped = app
        .post_as(
            "/db/compute",
            json!({ "model": "orders", "computations": computations, "query": query(Value::Null, json!({ "group": ["product"] })) }),
            None,
        )
        .await;
    assert_eq!(
        grouped.assert_ok(),
        &json!([
            { "groupby": { "product": "apple" }, "orders": 2, "units": 5, "revenue": 7.5, "big": 1, "avgQty": 2.5, "cheapest": 1.5 },
            { "groupby": { "product": "plum" }, "orders": 1, "units": 5, "revenue": 2.5, "big": 1, "avgQty": 5.0, "cheapest": 0.5 },
            { "groupby": { "product": "pear" }, "orders": 1, "units": 1, "revenue": 4.0, "big": 0, "avgQty": 1.0, "cheapest": 4.0 },
        ])
    );

    // No group: every match is one group; the filter runs first; pages apply to groups.
    let total = app
        .post_as(
            "/db/compute",
            json!({ "model": "orders", "computations": [{ "name": "n", "type": "count" }, { "name": "most", "type": "max", "expression": "qty" }], "query": query(json!("product != 'plum'"), json!({})) }),
            None,
        )
        .await;
    assert_eq!(
        total.assert_ok(),
        &json!([{ "groupby": null, "n": 3, "most": 3 }])
    );
    let by_expression = app
        .post_as(
            "/db/compute",
            json!({ "model": "orders", "computations": [{ "name": "n", "type": "count" }], "query": query(Value::Null, json!({ "group": "qty > 2", "limit": 1, "page": 2 })) }),
            None,
        )
        .await;
    assert_eq!(
        by_expression.assert_ok(),
        &json!([{ "groupby": { "group": true }, "n": 2 }])
    );
}

#[tokio::test]
async fn compute_sees_only_what_the_caller_may_read_and_checks_its_input() {
    let app = app().await;
    let (alice, _) = user(&app).await;
    let (bob, _) = user(&app).await;
    create(&app, &alice, "notes", json!([{ "n": 1 }, { "n": 2 }])).await;
    create(&app, &bob, "notes", json!({ "n": 40 })).await;
    let sum = |token: String| {
        let app = &app;
        async move {
            app.post_as(
                "/db/compute",
                json!({ "model": "notes", "computations": [{ "name": "total", "type": "sum", "expression": "n" }], "query": query(Value::Null, json!({})) }),
                Some(&token),
            )
            .await
        }
    };
    assert_eq!(sum(alice.clone()).await.assert_ok()[0]["total"], json!(3));
    assert_eq!(sum(bob).await.assert_ok()[0]["total"], json!(40));

    for (computations, code) in [
        (json!([]), "validation_error"),
        (
            json!([{ "name": "x", "type": "median", "expression": "n" }]),
            "validation_error",
        ),
        (json!([{ "name": "x", "type": "sum" }]), "validation_error"),
        (
            json!([{ "name": "x", "type": "sum", "expression": "n +" }]),
            "invalid_expression",
        ),
        (json!("count"), "validation_error"),
    ] {
        app.post_as(
            "/db/compute",
            json!({ "model": "notes", "computations": computations, "query": query(Value::Null, json!({})) }),
            Some(&alice),
        )
        .await
        .assert_error(400, code);
    }
}

#[tokio::test]
async fn get_random_returns_distinct_matches_up_to_count() {
    let app = app().await;
    let (me, _) = user(&app).await;
    seed_orders(&app, &me).await;
    let random = app
        .post_as(
            "/db/get-random",
            json!({ "model": "orders", "count": 2, "query": query(json!("product == 'apple' || product == 'pear'"), json!({ "omit": ["price"] })) }),
            None,
        )
        .await;
    let picked = random.assert_ok().as_array().unwrap();
    assert_eq!(picked.len(), 2);
    assert_ne!(picked[0]["_id"], picked[1]["_id"]);
    for object in picked {
        assert_ne!(object["product"], "plum");
        assert!(object.get("price").is_none());
    }
    let all = app
        .post_as(
            "/db/get-random",
            json!({ "model": "orders", "count": 50, "query": query(Value::Null, json!({})) }),
            None,
        )
        .await;
    assert_eq!(all.assert_ok().as_array().unwrap().len(), 4);
    for count in [json!(0), json!(5000), json!("two")] {
        let answer = app
            .post_as(
                "/db/get-random",
                json!({ "model": "orders", "count": count, "query": query(Value::Null, json!({})) }),
                None,
            )
            .await;
        assert_eq!(answer.status, 400, "{count}");
    }
    // A lookup into an unknown model is refused even where the caller sees nothing
    // (anonymous on an owner-only model).
    app.post_as(
        "/db/get-random",
        json!({ "model": "notes", "count": 1, "query": query(Value::Null, json!({ "lookups": [{ "name": "x", "modelName": "nope", "query": "lookup.a == 1" }] })) }),
        None,
    )
    .await
    .assert_error(400, "model_not_found");
}

#[tokio::test]
async fn simple_lookups_replace_ids_with_objects_the_caller_may_read() {
    let app = app().await;
    let (alice, alice_id) = user(&app).await;
    let (bob, _) = user(&app).await;
    app.post_as(
        "/db/object/update",
        json!({ "model": "users", "id": alice_id, "values": { "name": "Alice", "secret": "s" } }),
        Some(&alice),
    )
    .await
    .assert_ok();
    let team = create(&app, &alice, "teams", json!({ "title": "red" })).await;
    let note = create(&app, &alice, "notes", json!({ "text": "private" })).await;
    let post = create(
        &app,
        &bob,
        "members",
        json!({ "team": team["_id"], "author": alice_id, "note": note["_id"], "gone": "000000000000000000000000" }),
    )
    .await;
    let lookups = json!([{ "field": "team" }, { "field": "author" }, { "field": "note" }, { "field": "gone" }]);
    let seen_by_bob = app
        .post_as(
            "/db/object/get",
            json!({ "model": "members", "id": post["_id"], "lookups": lookups }),
            Some(&bob),
        )
        .await;
    let seen = seen_by_bob.assert_ok();
    assert_eq!(seen["team"]["title"], "red");
    // Another user's object: public fields only; an owner-only note stays hidden.
    assert_eq!(seen["author"], json!({ "_id": alice_id, "name": "Alice" }));
    assert!(seen.get("note").is_none(), "{seen}");
    assert!(seen.get("gone").is_none(), "{seen}");

    let seen_by_alice = app
        .post_as(
            "/db/get-list",
            json!({ "model": "members", "query": query(Value::Null, json!({ "lookups": lookups })) }),
            Some(&alice),
        )
        .await;
    let seen = &seen_by_alice.assert_ok()[0];
    assert_eq!(seen["note"]["text"], "private");
    assert_eq!(seen["author"]["secret"], "s");

    // A complex lookup into users sees the public view too, and filters on it.
    let writers = app
        .post_as(
            "/db/get-list",
            json!({ "model": "members", "query": query(json!("writer.name == 'Alice'"), json!({ "lookups": [{ "name": "writer", "modelName": "users", "query": "lookup._id == this.author" }] })) }),
            Some(&bob),
        )
        .await;
    let writers = writers.assert_ok().as_array().unwrap();
    assert_eq!(writers.len(), 1);
    assert_eq!(
        writers[0]["writer"],
        json!({ "_id": alice_id, "name": "Alice" })
    );
}

#[tokio::test]
async fn complex_lookups_feed_filters_and_sorts() {
    let app = app().await;
    let (me, me_id) = user(&app).await;
    let teams = create(
        &app,
        &me,
        "teams",
        json!([{ "title": "red", "rank": 2 }, { "title": "blue", "rank": 1 }, { "title": "green", "rank": 3 }]),
    )
    .await;
    for team in teams.as_array().unwrap().iter().take(2) {
        create(
            &app,
            &me,
            "members",
            json!({ "user": me_id, "team": team["_id"], "role": "admin" }),
        )
        .await;
    }
    let membership = json!([{ "name": "membership", "modelName": "members", "query": "lookup.team == this._id && lookup.user == '".to_string() + &me_id + "'" }]);
    let mine = app
        .post_as(
            "/db/get-list",
            json!({ "model": "teams", "returnCountInfo": true, "query": query(json!("EXISTS(membership) && rank > 0"), json!({ "lookups": membership, "sort": [{ "field": "rank", "direction": "asc" }], "omit": ["membership.user"] })) }),
            Some(&me),
        )
        .await;
    let body = mine.assert_ok();
    let titles: Vec<&str> = body["result"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["title"].as_str().unwrap())
        .collect();
    assert_eq!(titles, ["blue", "red"]);
    assert_eq!(body["countInfo"]["count"], 2);
    assert_eq!(body["result"][0]["membership"]["role"], "admin");
    assert!(body["result"][0]["membership"].get("user").is_none());

    let others = app
        .post_as(
            "/db/get-list",
            json!({ "model": "teams", "query": query(json!("!EXISTS(membership)"), json!({ "lookups": membership })) }),
            Some(&me),
        )
        .await;
    let others = others.assert_ok().as_array().unwrap();
    assert_eq!(others.len(), 1);
    assert_eq!(others[0]["title"], "green");
    assert!(others[0].get("membership").is_none());

    let bad = app
        .post_as(
            "/db/get-list",
            json!({ "model": "teams", "query": query(Value::Null, json!({ "lookups": [{ "name": "x", "modelName": "nope", "query": "lookup.a == 1" }] })) }),
            Some(&me),
        )
        .await;
    bad.assert_error(400, "model_not_found");
    // Refused whether or not there is anything to join.
    let empty = app
        .post_as(
            "/db/get-list",
            json!({ "model": "orders", "query": query(Value::Null, json!({ "lookups": [{ "name": "x", "modelName": "nope", "query": "lookup.a == 1" }] })) }),
            Some(&me),
        )
        .await;
    empty.assert_error(400, "model_not_found");
}
