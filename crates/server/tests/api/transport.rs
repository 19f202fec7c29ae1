//! Client keys, CORS, headers, unknown routes, the dev outbox (protocol.md §1).

use reqwest::Method;
use serde_json::Value;

use crate::support::{KEY, TestApp, email};

#[tokio::test]
async fn api_calls_need_a_known_client_key() {
    let app = TestApp::spawn().await;
    let url = app.api("/auth/user");
    let missing = app.http.get(&url).send().await.unwrap();
    assert_eq!(missing.status(), 401);
    let body: Value = missing.json().await.unwrap();
    assert_eq!(body["errors"][0]["code"], "missing_client_key");
    let wrong = app
        .http
        .get(&url)
        .header("X-Client-Key", "not-a-key")
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);
    let body: Value = wrong.json().await.unwrap();
    assert_eq!(body["errors"][0]["code"], "invalid_client_key");
}

#[tokio::test]
async fn preflights_answer_everywhere_without_keys() {
    let app = TestApp::spawn().await;
    for path in [
        "/_api/rest/v1/auth/signin-email",
        "/_api/rest/v1/db/object/update",
        "/anything",
    ] {
        let response = app
            .http
            .request(Method::OPTIONS, format!("{}{path}", app.url))
            .header("Origin", "http://localhost:3000")
            .header("Access-Control-Request-Method", "POST")
            .header(
                "Access-Control-Request-Headers",
                "x-client, x-client-key, session, content-type",
            )
            .send()
            .await
            .unwrap();
        assert!(response.status().is_success(), "{path}");
        let h = response.headers();
        assert_eq!(h["access-control-allow-origin"], "http://localhost:3000");
        assert_eq!(h["access-control-allow-credentials"], "true");
        assert!(
            h["access-control-allow-headers"]
                .to_str()
                .unwrap()
                .contains("session")
        );
        assert!(
            h["access-control-allow-methods"]
                .to_str()
                .unwrap()
                .contains("POST")
        );
    }
}

#[tokio::test]
async fn errors_carry_cors_and_security_headers() {
    let app = TestApp::spawn().await;
    let response = app
        .http
        .get(app.api("/auth/user"))
        .header("X-Client-Key", KEY)
        .header("Origin", "https://app.example.com")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    let h = response.headers();
    assert_eq!(h["access-control-allow-origin"], "https://app.example.com");
    assert_eq!(h["access-control-allow-credentials"], "true");
    assert!(
        h.get_all("vary")
            .iter()
            .any(|v| v.to_str().unwrap().contains("Origin"))
    );
    assert_eq!(h["x-content-type-options"], "nosniff");
    assert_eq!(h["referrer-policy"], "no-referrer");
    assert_eq!(h["cache-control"], "no-store");
    assert!(h.contains_key("x-request-id"));
    assert!(!h.contains_key("server"));
    assert!(
        !h.contains_key("strict-transport-security"),
        "HSTS only behind TLS"
    );
}

#[tokio::test]
async fn configured_origins_refuse_the_others() {
    let app =
        TestApp::spawn_with(|c| c.cors.allowed_origins = vec!["https://app.example.com".into()])
            .await;
    let refused = app
        .http
        .get(app.api("/auth/user"))
        .header("X-Client-Key", KEY)
        .header("Origin", "https://evil.example.com")
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 403);
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["errors"][0]["code"], "origin_not_allowed");
    // Requests without an Origin (server-side rendering, mobile) are accepted.
    let answer = app.get_as("/auth/user", None).await;
    answer.assert_error(401, "missing_session_token");
}

#[tokio::test]
async fn unknown_routes_and_methods_are_json() {
    let app = TestApp::spawn().await;
    let unknown = app
        .http
        .get(format!("{}/nope", app.url))
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), 404);
    let body: Value = unknown.json().await.unwrap();
    assert_eq!(body["errors"][0]["code"], "not_found");
    let api_unknown = app.get_as("/auth/nope", None).await;
    api_unknown.assert_error(404, "not_found");
    let wrong_method = app.get_as("/auth/signin-email", None).await;
    wrong_method.assert_error(405, "method_not_allowed");
}

#[tokio::test]
async fn health_answers() {
    let app = TestApp::spawn().await;
    let response = app
        .http
        .get(format!("{}/health", app.url))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn the_dev_mailbox_page_links_the_mail() {
    let app = TestApp::spawn().await;
    let address = email();
    app.sign_up(&address, crate::support::PASSWORD)
        .await
        .assert_ok();
    app.mail_to(&address).await;
    let page = app
        .http
        .get(format!("{}/_dev/mailbox", app.url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("<a href=\""));
    assert!(page.contains("/_auth/email/confirm?token="));
}

#[tokio::test]
async fn the_dev_outbox_is_off_with_smtp() {
    let app = TestApp::spawn_with(|c| {
        c.mail.transport = basalt::config::MailTransport::Smtp;
        c.mail.smtp.host = "127.0.0.1".into();
        c.mail.smtp.port = 9;
        c.mail.smtp.tls = basalt::config::SmtpTls::None;
    })
    .await;
    let response = app
        .http
        .get(format!("{}/_dev/mail", app.url))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["errors"][0]["code"], "not_found");
}

#[tokio::test]
async fn a_client_that_never_finishes_its_headers_is_disconnected() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let app = TestApp::spawn_with(|c| c.limits.header_timeout_secs = 1).await;
    let addr = app.url.trim_start_matches("http://").to_string();
    let mut stream = tokio::net::TcpStream::connect(&addr).await.unwrap();
    stream
        .write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let mut buf = Vec::new();
    let closed = tokio::time::timeout(
        std::time::Duration::from_secs(5),
        stream.read_to_end(&mut buf),
    )
    .await;
    assert!(closed.is_ok(), "the server kept a half-sent request open");
}

#[tokio::test]
async fn request_heads_over_16_kib_are_refused() {
    let app = TestApp::spawn().await;
    let response = app
        .http
        .get(format!("{}/health", app.url))
        .header("X-Padding", "x".repeat(20 * 1024))
        .send()
        .await;
    match response {
        Ok(response) => assert_eq!(response.status(), 431),
        Err(err) => assert!(
            err.is_request() || err.is_connect() || err.is_body(),
            "{err}"
        ),
    }
    // A normal request still works.
    let ok = app
        .http
        .get(format!("{}/health", app.url))
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
}
