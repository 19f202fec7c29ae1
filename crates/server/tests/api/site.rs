//! The web app beside the API: `app.static_dir` served at `/` with the page fallback, the
//! config script, and Basalt's own paths winning over the app's files.

use std::path::Path;

use reqwest::StatusCode;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::{KEY, PASSWORD, TestApp, email, link_in};

const INDEX: &str = "<!doctype html><title>the app</title>";
const SECRET: &str = "outside the static dir";

/// A built app in a temp dir, with a secret file beside (not inside) it.
struct Site {
    _root: tempfile::TempDir,
    dir: std::path::PathBuf,
}

fn site() -> Site {
    let root = tempfile::tempdir().unwrap();
    std::fs::write(root.path().join("secret.txt"), SECRET).unwrap();
    let dir = root.path().join("dist");
    let write = |path: &str, text: &str| {
        let path = dir.join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    };
    write("index.html", INDEX);
    write("assets/index-3f1c.js", "console.log('app')");
    write("favicon.svg", "<svg xmlns='http://www.w3.org/2000/svg'/>");
    write(".env", SECRET);
    write("_dev/mail", "[\"from the app\"]");
    write("health", "from the app");
    Site { _root: root, dir }
}

async fn spawn_serving(dir: &Path) -> TestApp {
    let dir = dir.to_path_buf();
    TestApp::spawn_with(move |config| config.app.static_dir = Some(dir)).await
}

async fn get(app: &TestApp, path: &str) -> reqwest::Response {
    app.http
        .get(format!("{}{path}", app.url))
        .send()
        .await
        .unwrap()
}

fn header<'a>(response: &'a reqwest::Response, name: &str) -> &'a str {
    response
        .headers()
        .get(name)
        .map(|v| v.to_str().unwrap())
        .unwrap_or_default()
}

async fn assert_json_404(response: reqwest::Response) {
    assert_eq!(
        response.status(),
        StatusCode::NOT_FOUND,
        "{}",
        response.url()
    );
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["errors"][0]["code"], "not_found", "{body}");
}

/// A request sent byte for byte: no client library normalises `..` away first.
async fn raw_get(app: &TestApp, target: &str) -> String {
    let addr = app.url.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!("GET {target} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.unwrap();
    answer
}

#[tokio::test]
async fn the_app_is_served_at_the_root_uncached_with_a_content_security_policy() {
    let site = site();
    let app = spawn_serving(&site.dir).await;
    let response = get(&app, "/").await;
    assert_eq!(response.status(), StatusCode::OK);
    assert!(header(&response, "content-type").starts_with("text/html"));
    assert_eq!(header(&response, "cache-control"), "no-cache");
    let csp = header(&response, "content-security-policy");
    assert!(csp.contains("default-src 'self'"), "{csp}");
    assert!(
        csp.contains(&format!("connect-src 'self' {}", app.url)),
        "{csp}"
    );
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
    assert_eq!(header(&response, "x-content-type-options"), "nosniff");
    assert_eq!(response.text().await.unwrap(), INDEX);
}

#[tokio::test]
async fn page_paths_get_index_html() {
    let site = site();
    let app = spawn_serving(&site.dir).await;
    for path in [
        "/profile",
        "/sign-in/",
        "/auth-redirect?status=200&action=magic-link",
    ] {
        let response = get(&app, path).await;
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        assert_eq!(header(&response, "cache-control"), "no-cache", "{path}");
        assert_eq!(response.text().await.unwrap(), INDEX, "{path}");
    }
    let head = app
        .http
        .head(format!("{}/profile", app.url))
        .send()
        .await
        .unwrap();
    assert_eq!(head.status(), StatusCode::OK);
}

#[tokio::test]
async fn hashed_assets_are_cached_for_a_year_with_their_type() {
    let site = site();
    let app = spawn_serving(&site.dir).await;
    let response = get(&app, "/assets/index-3f1c.js").await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(header(&response, "content-type"), "text/javascript");
    assert_eq!(
        header(&response, "cache-control"),
        "public, max-age=31536000, immutable"
    );
    let response = get(&app, "/favicon.svg").await;
    assert_eq!(header(&response, "cache-control"), "no-cache");
}

#[tokio::test]
async fn missing_files_are_json_404s_not_the_app() {
    let site = site();
    let app = spawn_serving(&site.dir).await;
    assert_json_404(get(&app, "/assets/index-missing.js").await).await;
    assert_json_404(get(&app, "/logo.png").await).await;
}

#[tokio::test]
async fn basalt_paths_win_over_the_apps_files() {
    let site = site();
    let app = spawn_serving(&site.dir).await;
    let health: Value = get(&app, "/health").await.json().await.unwrap();
    assert_eq!(health["status"], "ok");
    let mail: Value = get(&app, "/_dev/mail").await.json().await.unwrap();
    assert!(mail.as_array().unwrap().is_empty(), "{mail}");
    assert_json_404(get(&app, "/_api/rest/v1/no-such-call").await).await;
    assert_json_404(get(&app, "/_dev/no-such-page").await).await;
    assert_json_404(get(&app, "/_auth/no-such-provider/callback").await).await;
    let storage = get(
        &app,
        "/_storage/66a1e9aab3e4d5f6a7b8c900/66a1f0c2b3e4d5f6a7b8c9d1",
    )
    .await;
    assert_eq!(storage.status(), StatusCode::NOT_FOUND);
    assert_ne!(storage.text().await.unwrap(), INDEX);
    let link = get(&app, "/_auth/email/magic?token=unknown").await;
    assert_eq!(link.status(), StatusCode::FOUND);
}

#[tokio::test]
async fn the_app_answers_get_and_head_only() {
    let site = site();
    let app = spawn_serving(&site.dir).await;
    let response = app
        .http
        .post(format!("{}/profile", app.url))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["errors"][0]["code"], "method_not_allowed");
}

#[tokio::test]
async fn nothing_outside_the_folder_or_hidden_in_it_is_served() {
    let site = site();
    let app = spawn_serving(&site.dir).await;
    for target in [
        "/../secret.txt",
        "/assets/../../secret.txt",
        "/%2e%2e/secret.txt",
        "/assets/..%2f..%2fsecret.txt",
        "/assets%2f..%2f..%2fsecret.txt",
        "/..%5csecret.txt",
        "/.env",
        "/%2eenv",
    ] {
        let answer = raw_get(&app, target).await;
        assert!(!answer.contains(SECRET), "{target} leaked: {answer}");
        let status = answer.split(' ').nth(1).unwrap_or_default();
        assert!(
            status == "404" || status == "400",
            "{target}: {}",
            answer.lines().next().unwrap_or_default()
        );
    }
}

#[tokio::test]
async fn the_config_script_names_this_server_and_a_working_client_key() {
    let site = site();
    let app = spawn_serving(&site.dir).await;
    let response = get(&app, "/basalt-config.js").await;
    assert_eq!(response.status(), StatusCode::OK);
    assert!(header(&response, "content-type").starts_with("text/javascript"));
    assert_eq!(header(&response, "cache-control"), "no-store");
    let text = response.text().await.unwrap();
    let json = text
        .strip_prefix("window.BASALT_CONFIG = ")
        .and_then(|rest| rest.strip_suffix(";\n"))
        .unwrap_or_else(|| panic!("not a config script: {text}"));
    let config: Value = serde_json::from_str(json).unwrap();
    assert_eq!(config["envUrl"], app.url.as_str());
    assert_eq!(config["devMailbox"], format!("{}/_dev/mailbox", app.url));
    let key = config["clientKey"].as_str().unwrap();
    assert_ne!(key, KEY, "the generated key, as `serve` prints it");
    let user = app
        .http
        .get(app.api("/auth/user"))
        .header("X-Client-Key", key)
        .send()
        .await
        .unwrap();
    let body: Value = user.json().await.unwrap();
    assert_eq!(body["errors"][0]["code"], "missing_session_token", "{body}");
}

#[tokio::test]
async fn emailed_links_come_back_to_the_served_apps_auth_redirect() {
    let site = site();
    let dir = site.dir.clone();
    let app = TestApp::spawn_with(move |config| {
        config.app.static_dir = Some(dir);
        config.auth.redirect_url = None;
    })
    .await;
    let address = email();
    app.sign_up(&address, PASSWORD).await.assert_ok();
    let link = link_in(&app.mail_to(&address).await, "confirm");
    let response = app.http.get(&link).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::FOUND);
    let location = header(&response, "location");
    let expected = format!("{}/auth-redirect?status=200&action=email-confirm&", app.url);
    assert!(location.starts_with(&expected), "{location}");
}

#[tokio::test]
async fn without_an_app_unknown_paths_stay_json_404s() {
    let app = TestApp::spawn().await;
    assert_json_404(get(&app, "/profile").await).await;
    assert_json_404(get(&app, "/").await).await;
}
