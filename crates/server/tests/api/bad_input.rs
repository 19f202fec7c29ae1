//! Bad input: every case a clear 4xx JSON error with a stable code, nothing stored.

use serde_json::{Value, json};

use crate::support::{KEY, PASSWORD, TestApp, email};

#[tokio::test]
async fn sign_up_validation_matrix() {
    let app = TestApp::spawn().await;
    let long_password = "x".repeat(129);
    let cases: Vec<(Value, Vec<(&str, &str)>)> = vec![
        (
            json!({ "email": "nope", "password": PASSWORD }),
            vec![("validation_error", "email")],
        ),
        (
            json!({ "email": email(), "password": "abc" }),
            vec![("validation_error", "password")],
        ),
        (
            json!({ "email": "nope", "password": "abc" }),
            vec![
                ("validation_error", "email"),
                ("validation_error", "password"),
            ],
        ),
        (
            json!({ "email": email(), "password": "password123" }),
            vec![("validation_error", "password")],
        ),
        (
            json!({ "email": email(), "password": long_password }),
            vec![("validation_error", "password")],
        ),
        (
            json!({ "email": "ada.lovelace@example.com", "password": "ada.lovelace" }),
            vec![("validation_error", "password")],
        ),
        (
            json!({ "email": email(), "password": 12345678 }),
            vec![("validation_error", "password")],
        ),
        (
            json!({ "email": ["a"], "password": PASSWORD }),
            vec![("validation_error", "email")],
        ),
        (
            json!({ "password": PASSWORD }),
            vec![("missing_required_value", "email")],
        ),
        (
            json!({ "email": email() }),
            vec![("missing_required_value", "password")],
        ),
        (
            json!({ "email": email(), "password": PASSWORD, "nameOrUserData": 5 }),
            vec![("validation_error", "nameOrUserData")],
        ),
        (json!([1, 2]), vec![("validation_error", "body")]),
    ];
    for (body, expected) in cases {
        let answer = app.post("/auth/signup-email", body.clone()).await;
        assert_eq!(answer.status.as_u16(), 400, "{body}: {}", answer.body);
        let got: Vec<(String, String)> = answer.body["errors"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                (
                    e["code"].as_str().unwrap().to_string(),
                    e["details"]["field"]
                        .as_str()
                        .unwrap_or_default()
                        .to_string(),
                )
            })
            .collect();
        let expected: Vec<(String, String)> = expected
            .into_iter()
            .map(|(c, f)| (c.to_string(), f.to_string()))
            .collect();
        assert_eq!(got, expected, "{body}");
    }
    assert!(app.mailbox().await.is_empty(), "nothing was stored or sent");
}

#[tokio::test]
async fn malformed_json_is_invalid_json() {
    let app = TestApp::spawn().await;
    for body in ["{", "{\"email\": }", "not json", "{} trailing"] {
        let response = app
            .http
            .post(app.api("/auth/signin-email"))
            .header("X-Client-Key", KEY)
            .header("Content-Type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 400, "{body}");
        let json: Value = response.json().await.unwrap();
        assert_eq!(json["errors"][0]["code"], "invalid_json", "{body}");
    }
}

#[tokio::test]
async fn a_32_mib_body_gets_a_readable_413() {
    let app = TestApp::spawn().await;
    let response = app
        .http
        .post(app.api("/auth/signup-email"))
        .header("X-Client-Key", KEY)
        .header("Content-Type", "application/json")
        .body(vec![b' '; 32 * 1024 * 1024])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 413);
    let json: Value = response.json().await.unwrap();
    assert_eq!(json["errors"][0]["code"], "payload_too_large");
}

#[tokio::test]
async fn a_chunked_body_over_the_limit_is_413_too() {
    let app = TestApp::spawn().await;
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        (0..40).map(|_| Ok(vec![b' '; 4096])).collect();
    let body = reqwest::Body::wrap_stream(futures_stream(chunks));
    let response = app
        .http
        .post(app.api("/auth/signin-email"))
        .header("X-Client-Key", KEY)
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 413);
    let json: Value = response.json().await.unwrap();
    assert_eq!(json["errors"][0]["code"], "payload_too_large");
}

fn futures_stream(
    chunks: Vec<Result<Vec<u8>, std::io::Error>>,
) -> impl futures_core::Stream<Item = Result<Vec<u8>, std::io::Error>> + Send + 'static {
    tokio_stream::iter(chunks)
}

#[tokio::test]
async fn query_emails_keep_their_plus_and_bad_ones_are_refused() {
    let app = TestApp::spawn().await;
    app.post("/auth/send-magic?email=not-an-email", Value::Null)
        .await
        .assert_error(400, "validation_error");
    app.post("/auth/send-magic", Value::Null)
        .await
        .assert_error(400, "missing_required_value");
    let address = email();
    app.verified_user(&address).await;
    app.post(&format!("/auth/send-reset?email={address}"), Value::Null)
        .await
        .assert_ok();
    assert!(address.contains('+'));
    app.mail_matching(&address, 2).await;
}

#[tokio::test]
async fn reset_and_change_password_bodies_are_checked() {
    let app = TestApp::spawn().await;
    let token = app.verified_user(&email()).await;
    app.post_as(
        "/auth/change-pwd",
        json!({ "newPassword": "a brand new passphrase" }),
        Some(&token),
    )
    .await
    .assert_error(400, "missing_required_value");
    app.post_as(
        "/auth/change-pwd",
        json!({ "newPassword": "short", "oldPassword": PASSWORD }),
        Some(&token),
    )
    .await
    .assert_error(400, "validation_error");
    app.post_as("/auth/signout", json!({ "token": 5 }), Some(&token))
        .await
        .assert_error(400, "validation_error");
    app.post("/auth/reset-pwd?key=nope", json!({}))
        .await
        .assert_error(400, "missing_required_value");
}

#[tokio::test]
async fn an_unverified_account_is_not_left_half_made_by_a_bad_sign_up() {
    let app = TestApp::spawn_with(|c| c.auth.email_verification = false).await;
    let address = email();
    app.post(
        "/auth/signup-email",
        json!({ "email": address, "password": "abc" }),
    )
    .await
    .assert_error(400, "validation_error");
    app.sign_up(&address, PASSWORD).await.assert_ok();
}
