//! `TestApp`: the real server on 127.0.0.1:0 with a fresh SQLite file, the dev outbox and a
//! manual clock; helpers that make tests read like the protocol.
//!
//! With `BASALT_TEST_API_POSTGRES=1` every app gets a fresh PostgreSQL database instead
//! (`basalt_test_<random>` on the server of `BASALT_TEST_POSTGRES_URL`, dropped afterwards).
//! With `BASALT_TEST_API_S3=http://127.0.0.1:PORT` (an S3-compatible server that accepts any
//! credentials, such as moto's server mode) every app keeps its bytes in a fresh bucket there.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use basalt::app::App;
use basalt::clock::ManualClock;
use basalt::config::{Config, StorageBackend};
use basalt::files::blobs::Blobs;
use reqwest::{Response, StatusCode};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub const KEY: &str = "test-client-key";
pub const REDIRECT: &str = "http://localhost:3000/auth-redirect";
pub const PASSWORD: &str = "correct horse battery";
pub const CHROME: &str = "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/122.0.6261.94 Safari/537.36";

pub struct TestApp {
    pub url: String,
    pub clock: Arc<ManualClock>,
    pub http: reqwest::Client,
    stop: CancellationToken,
    dir: tempfile::TempDir,
    /// The S3 server and the app's bucket, with `BASALT_TEST_API_S3`.
    s3: Option<(String, String)>,
    blob_store: Blobs,
    _database: Option<TestDatabase>,
}

/// The S3 server of `BASALT_TEST_API_S3`, if any.
pub fn s3_endpoint() -> Option<String> {
    std::env::var("BASALT_TEST_API_S3")
        .ok()
        .filter(|url| !url.is_empty())
        .map(|url| url.trim_end_matches('/').to_string())
}

/// A fresh bucket on the test S3 server: its name.
pub async fn create_test_bucket(endpoint: &str) -> String {
    let name = format!("basalt-test-{:016x}", rand::random::<u64>());
    // moto checks no signatures: an unsigned CreateBucket is enough.
    let response = reqwest::Client::new()
        .put(format!("{endpoint}/{name}"))
        .send()
        .await
        .unwrap_or_else(|err| panic!("S3 test server at {endpoint}: {err}"));
    assert!(
        response.status().is_success(),
        "creating bucket {name}: {}",
        response.status()
    );
    name
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

#[path = "../../../src/store/test_database.rs"]
mod test_database;
pub(crate) use test_database::{TestDatabase, test_redis};

/// Whether the suite runs on PostgreSQL (`BASALT_TEST_API_POSTGRES=1`).
pub fn on_postgres() -> bool {
    std::env::var("BASALT_TEST_API_POSTGRES").as_deref() == Ok("1")
}

impl TestDatabase {
    /// A fresh database when `BASALT_TEST_API_POSTGRES=1`, with its URL.
    async fn wanted() -> Option<(Self, String)> {
        if !on_postgres() {
            return None;
        }
        let database = Self::create().await;
        let url = database.url.clone();
        Some((database, url))
    }
}

/// A JSON answer: status and parsed body.
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
}

impl Answer {
    async fn from(response: Response) -> Self {
        let status = response.status();
        let headers = response.headers().clone();
        let text = response.text().await.unwrap();
        let body = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON ({status}): {text}"))
        };
        Self {
            status,
            headers,
            body,
        }
    }

    /// The codes of the error envelope.
    pub fn codes(&self) -> Vec<String> {
        self.body["errors"]
            .as_array()
            .unwrap_or_else(|| panic!("no error envelope: {}", self.body))
            .iter()
            .map(|e| {
                assert_eq!(
                    e["origin"].as_str().map(|o| o.ends_with("error")),
                    Some(true)
                );
                assert!(e["message"].as_str().is_some_and(|m| !m.is_empty()));
                e["code"].as_str().unwrap().to_string()
            })
            .collect()
    }

    /// Assert one error with this status and code.
    #[track_caller]
    pub fn assert_error(&self, status: u16, code: &str) {
        assert_eq!(
            (self.status.as_u16(), self.codes()),
            (status, vec![code.to_string()]),
            "{}",
            self.body
        );
    }

    #[track_caller]
    pub fn assert_ok(&self) -> &Value {
        assert_eq!(self.status, StatusCode::OK, "{}", self.body);
        &self.body
    }
}

impl TestApp {
    pub async fn spawn() -> Self {
        Self::spawn_with(|_| {}).await
    }

    pub async fn spawn_with(configure: impl FnOnce(&mut Config)) -> Self {
        let database = TestDatabase::wanted().await;
        Self::spawn_on(database, configure).await
    }

    /// An app on SQLite in both passes of the suite.
    pub async fn spawn_on_sqlite_with(configure: impl FnOnce(&mut Config)) -> Self {
        Self::spawn_on(None, configure).await
    }

    /// An app on the PostgreSQL database `url` (which it does not drop).
    pub async fn spawn_on_postgres_with(url: &str, configure: impl FnOnce(&mut Config)) -> Self {
        let url = url.to_string();
        Self::spawn_on(None, move |config| {
            config.database.url = url.into();
            config.database.max_connections = 4;
            configure(config);
        })
        .await
    }

    async fn spawn_on(
        database: Option<(TestDatabase, String)>,
        configure: impl FnOnce(&mut Config),
    ) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let url = format!("http://{addr}");
        let mut config = Config {
            listen: addr.to_string(),
            public_url: url.clone(),
            data_dir: dir.path().to_path_buf(),
            client_keys: vec![KEY.into()],
            ..Config::default()
        };
        config.auth.redirect_url = Some(REDIRECT.into());
        // Cheap hashes keep the suite fast; the parameters are a setting like any other.
        config.auth.password_hash.memory_kib = 1024;
        config.auth.password_hash.iterations = 1;
        config.rate_limits.enabled = false;
        let database = database.map(|(database, url)| {
            config.database.url = url.into();
            config.database.max_connections = 4;
            database
        });
        let s3 = match s3_endpoint() {
            Some(endpoint) => {
                let bucket = create_test_bucket(&endpoint).await;
                let s3 = &mut config.storage.s3;
                config.storage.backend = StorageBackend::S3;
                s3.bucket = bucket.clone();
                s3.endpoint = Some(endpoint.clone());
                s3.region = Some("us-east-1".into());
                s3.path_style = true;
                s3.allow_http = true;
                s3.access_key_id = "basalt-test".into();
                s3.secret_access_key = "basalt-test-secret".into();
                // Keys under a folder, as in a bucket shared with other data.
                s3.prefix = "basalt/".into();
                Some((endpoint, bucket))
            }
            None => None,
        };
        configure(&mut config);
        config.validate().unwrap();
        let blob_store = match config.storage.backend {
            StorageBackend::S3 => Blobs::s3(&config.storage.s3).unwrap(),
            StorageBackend::Local => Blobs::local(&dir.path().join("files")).unwrap(),
        };
        let clock = Arc::new(ManualClock::new());
        let app = App::with_listener(config, clock.clone(), listener)
            .await
            .unwrap();
        let stop = CancellationToken::new();
        let stopped = stop.clone();
        tokio::spawn(app.run_until_stopped(async move { stopped.cancelled().await }));
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(CHROME)
            .build()
            .unwrap();
        Self {
            url,
            clock,
            http,
            stop,
            dir,
            s3,
            blob_store,
            _database: database,
        }
    }

    /// The data directory (SQLite file, uploaded files).
    pub fn data_dir(&self) -> &std::path::Path {
        self.dir.path()
    }

    /// The app's bucket on the test S3 server, with `BASALT_TEST_API_S3`.
    pub fn s3_bucket(&self) -> Option<&str> {
        self.s3.as_ref().map(|(_, bucket)| bucket.as_str())
    }

    /// Everything in the app's blob store: every file under the data directory's blob folder
    /// (unfinished uploads' staging files too), or every object of its S3 bucket and every
    /// multipart upload not completed or aborted there (as `upload:KEY`).
    pub async fn blobs(&self) -> Vec<String> {
        fn walk(dir: &std::path::Path, out: &mut Vec<String>) {
            for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
                let path = entry.path();
                if path.is_dir() {
                    walk(&path, out);
                } else {
                    out.push(path.display().to_string());
                }
            }
        }
        let Some((endpoint, bucket)) = &self.s3 else {
            let mut out = Vec::new();
            walk(&self.dir.path().join("files"), &mut out);
            return out;
        };
        let mut out = self.blob_store.keys().await.unwrap();
        let uploads = reqwest::get(format!("{endpoint}/{bucket}?uploads"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        out.extend(
            uploads
                .split("<Key>")
                .skip(1)
                .filter_map(|rest| rest.split("</Key>").next())
                .map(|key| format!("upload:{key}")),
        );
        out
    }

    /// Delete every blob behind the app's back (bytes lost while the metadata stays).
    pub async fn lose_every_blob(&self) {
        for key in self.blob_store.keys().await.unwrap() {
            self.blob_store.delete(&key).await.unwrap();
        }
    }

    pub fn api(&self, path: &str) -> String {
        format!("{}/_api/rest/v1{path}", self.url)
    }

    pub async fn post(&self, path: &str, body: Value) -> Answer {
        self.post_as(path, body, None).await
    }

    pub async fn post_as(&self, path: &str, body: Value, session: Option<&str>) -> Answer {
        let mut req = self
            .http
            .post(self.api(path))
            .header("X-Client-Key", KEY)
            .header("X-Client", "altogic-js");
        if !body.is_null() {
            req = req.json(&body);
        }
        if let Some(token) = session {
            req = req.header("Session", token);
        }
        Answer::from(req.send().await.unwrap()).await
    }

    pub async fn get_as(&self, path: &str, session: Option<&str>) -> Answer {
        let mut req = self.http.get(self.api(path)).header("X-Client-Key", KEY);
        if let Some(token) = session {
            req = req.header("Session", token);
        }
        Answer::from(req.send().await.unwrap()).await
    }

    pub async fn sign_up(&self, email: &str, password: &str) -> Answer {
        self.post(
            "/auth/signup-email",
            json!({ "email": email, "password": password, "nameOrUserData": "Ada" }),
        )
        .await
    }

    pub async fn sign_in(&self, email: &str, password: &str) -> Answer {
        self.post(
            "/auth/signin-email",
            json!({ "email": email, "password": password }),
        )
        .await
    }

    /// Sign up, open the confirmation link, redeem the grant: returns the session token.
    pub async fn verified_user(&self, email: &str) -> String {
        self.sign_up(email, PASSWORD).await.assert_ok();
        let mail = self.mail_to(email).await;
        let redirect = self.follow(&link_in(&mail, "confirm")).await;
        let grant = self.grant(&redirect["access_token"]).await;
        grant.assert_ok()["session"]["token"]
            .as_str()
            .unwrap()
            .to_string()
    }

    pub async fn grant(&self, key: &str) -> Answer {
        self.get_as(&format!("/auth/grant?key={key}"), None).await
    }

    /// Every delivered message, newest first.
    pub async fn mailbox(&self) -> Vec<Value> {
        let response = self
            .http
            .get(format!("{}/_dev/mail", self.url))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        response.json::<Vec<Value>>().await.unwrap()
    }

    /// The newest message to `to`, waiting for the sender.
    pub async fn mail_to(&self, to: &str) -> Value {
        self.mail_matching(to, 1).await
    }

    /// Wait until `to` has `count` messages; returns the newest.
    pub async fn mail_matching(&self, to: &str, count: usize) -> Value {
        for _ in 0..200 {
            let mail: Vec<Value> = self
                .mailbox()
                .await
                .into_iter()
                .filter(|m| m["to"] == to)
                .collect();
            if mail.len() >= count {
                return mail[0].clone();
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("no mail #{count} to {to}");
    }

    /// How many messages `to` has now (after letting the sender run).
    pub async fn mail_count(&self, to: &str) -> usize {
        tokio::time::sleep(Duration::from_millis(700)).await;
        self.mailbox()
            .await
            .iter()
            .filter(|m| m["to"] == to)
            .count()
    }

    /// Open an emailed link; returns the redirect's query parameters (in order, as a map) and
    /// checks it went to the configured redirect URL.
    pub async fn follow(&self, link: &str) -> HashMap<String, String> {
        let (params, _) = self.follow_ordered(link).await;
        params
    }

    pub async fn follow_ordered(&self, link: &str) -> (HashMap<String, String>, Vec<String>) {
        let response = self.http.get(link).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::FOUND, "{link}");
        let location = response.headers()["location"].to_str().unwrap().to_string();
        assert!(location.starts_with(REDIRECT), "{location}");
        let url = url::Url::parse(&location).unwrap();
        let order = url.query_pairs().map(|(k, _)| k.into_owned()).collect();
        (url.query_pairs().into_owned().collect(), order)
    }
}

/// The `/_auth/email/{kind}` link in a message's text.
pub fn link_in(mail: &Value, kind: &str) -> String {
    let text = mail["text"].as_str().unwrap();
    let marker = format!("/_auth/email/{kind}?token=");
    text.split_whitespace()
        .find(|word| word.contains(&marker))
        .unwrap_or_else(|| panic!("no {kind} link in {text}"))
        .to_string()
}

/// A unique address with a `+` (the client does not encode it in query strings).
pub fn email() -> String {
    format!("ada+{}@example.com", hex::encode(rand::random::<[u8; 6]>()))
}
