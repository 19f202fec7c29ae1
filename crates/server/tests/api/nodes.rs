//! Several nodes behave as one server (issue 6): three `basalt serve` processes on one
//! PostgreSQL database and one file store. Links, uploads and sign-outs cross nodes, rate
//! limits count together, each mail is sent once with three senders running, and a node
//! killed with `kill -9` in a write burst loses no answered write.
//!
//! In the pass with S3 (`BASALT_TEST_API_S3`) the nodes also count their rate limits in one
//! Redis (`BASALT_TEST_REDIS_URL`, default the local server), the whole scale-out setup; in
//! the other pass, in PostgreSQL.
//!
//! PostgreSQL only (`BASALT_TEST_API_POSTGRES=1`); on SQLite the test returns at once.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use reqwest::multipart::{Form, Part};
use serde_json::{Value, json};
use sqlx_core::connection::Connection;

use crate::support::{
    KEY, PASSWORD, REDIRECT, TestDatabase, create_test_bucket, email, link_in, on_postgres,
    s3_endpoint, test_redis,
};

/// Where every node keeps uploaded bytes: one bucket of the test S3 server when there is one
/// (`BASALT_TEST_API_S3`), else one shared data directory.
fn storage_env(shared: &Path, bucket: Option<&(String, String)>) -> Vec<(&'static str, String)> {
    let mut env = vec![("BASALT_DATA_DIR", shared.display().to_string())];
    if let Some((endpoint, bucket)) = bucket {
        env.extend([
            ("BASALT_STORAGE__BACKEND", "s3".to_string()),
            ("BASALT_STORAGE__S3__BUCKET", bucket.clone()),
            ("BASALT_STORAGE__S3__ENDPOINT", endpoint.clone()),
            ("BASALT_STORAGE__S3__REGION", "us-east-1".into()),
            ("BASALT_STORAGE__S3__PATH_STYLE", "true".into()),
            ("BASALT_STORAGE__S3__ALLOW_HTTP", "true".into()),
            ("BASALT_STORAGE__S3__ACCESS_KEY_ID", "basalt-test".into()),
            (
                "BASALT_STORAGE__S3__SECRET_ACCESS_KEY",
                "basalt-test-secret".into(),
            ),
        ]);
    }
    env
}

/// The configuration every node shares; `listen` is given per node. `redis`: the URL and key
/// prefix of the Redis counting the rate limits, if any.
fn shared_config(public_url: &str, database_url: &str, redis: Option<(&str, &str)>) -> String {
    let redis = redis.map_or(String::new(), |(url, prefix)| {
        format!("redis_url = \"{url}\"\nredis_prefix = \"{prefix}\"\n")
    });
    format!(
        r#"public_url = "{public_url}"
client_keys = ["{KEY}"]
trusted_proxies = ["127.0.0.1"]

[auth]
redirect_url = "{REDIRECT}"

[auth.password_hash]
memory_kib = 1024
iterations = 1

[rate_limits]
sign_in_delays_secs = [60]
auth_per_ip = {{ count = 1, per_secs = 3600, burst = 5 }}
{redis}
[mail]
transport = "outbox"

[database]
url = "{database_url}"
max_connections = 8

[[database.models]]
name = "notes"
access = "owner"
"#
    )
}

/// A `basalt serve` process.
struct Node {
    url: String,
    child: Option<Child>,
    log: PathBuf,
}

impl Node {
    fn start(
        config: &Path,
        port: u16,
        (shared, bucket): (&Path, Option<&(String, String)>),
        log: PathBuf,
    ) -> Self {
        let mut command = Command::new(env!("CARGO_BIN_EXE_basalt"));
        for (name, _) in std::env::vars().filter(|(name, _)| name.starts_with("BASALT_")) {
            command.env_remove(name);
        }
        command
            .arg("--config")
            .arg(config)
            .arg("serve")
            .env("BASALT_LISTEN", format!("127.0.0.1:{port}"))
            .envs(storage_env(shared, bucket))
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&log).unwrap())
            .stderr(std::fs::File::create(log.with_extension("err")).unwrap());
        Self {
            url: format!("http://127.0.0.1:{port}"),
            child: Some(command.spawn().unwrap()),
            log,
        }
    }

    /// SIGKILL (`kill -9`), and reap it.
    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    async fn wait_ready(&mut self, http: &reqwest::Client) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if let Some(status) = self.child.as_mut().and_then(|c| c.try_wait().unwrap()) {
                panic!("node {} exited: {status}\n{}", self.url, self.logs());
            }
            let health = http.get(format!("{}/health", self.url)).send().await;
            if health.is_ok_and(|r| r.status() == StatusCode::OK) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("node {} did not start\n{}", self.url, self.logs());
    }

    fn logs(&self) -> String {
        let out = std::fs::read_to_string(&self.log).unwrap_or_default();
        let err = std::fs::read_to_string(self.log.with_extension("err")).unwrap_or_default();
        format!("{out}{err}")
    }

    fn api(&self, path: &str) -> String {
        format!("{}/_api/rest/v1{path}", self.url)
    }

    /// The same path and query on this node (emailed links name the public URL).
    fn here(&self, link: &str) -> String {
        let link = url::Url::parse(link).unwrap();
        let query = link.query().map(|q| format!("?{q}")).unwrap_or_default();
        format!("{}{}{query}", self.url, link.path())
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A free loopback port (released for the node to bind).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A JSON call: status and body. `ip` is the client address the trusted proxy forwards.
async fn call(
    request: reqwest::RequestBuilder,
    session: Option<&str>,
    ip: &str,
) -> Result<(StatusCode, Value), reqwest::Error> {
    let mut request = request
        .header("X-Client-Key", KEY)
        .header("X-Forwarded-For", ip)
        .timeout(Duration::from_secs(20));
    if let Some(token) = session {
        request = request.header("Session", token);
    }
    let response = request.send().await?;
    let status = response.status();
    let text = response.text().await?;
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    Ok((status, body))
}

struct Cluster {
    nodes: Vec<Node>,
    http: reqwest::Client,
    database: TestDatabase,
    /// Whether uploaded bytes go to the test S3 server.
    on_s3: bool,
    /// The Redis counting the rate limits (URL, key prefix), in the S3 pass.
    redis: Option<(String, String)>,
    dir: tempfile::TempDir,
}

impl Cluster {
    async fn start(count: usize) -> Self {
        let database = TestDatabase::create().await;
        let dir = tempfile::tempdir().unwrap();
        let shared = dir.path().join("shared");
        std::fs::create_dir_all(&shared).unwrap();
        let bucket = match s3_endpoint() {
            Some(endpoint) => Some((endpoint.clone(), create_test_bucket(&endpoint).await)),
            None => None,
        };
        let ports: Vec<u16> = (0..count).map(|_| free_port()).collect();
        // One public URL for all, as behind a load balancer; it happens to reach node 1.
        let public_url = format!("http://127.0.0.1:{}", ports[0]);
        let config = dir.path().join("basalt.toml");
        let redis = bucket.is_some().then(test_redis);
        let config_redis = redis.as_ref().map(|(u, p)| (u.as_str(), p.as_str()));
        std::fs::write(
            &config,
            shared_config(&public_url, &database.url, config_redis),
        )
        .unwrap();
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        // Started at once: their migrations take turns under the advisory lock.
        let mut nodes: Vec<Node> = ports
            .iter()
            .enumerate()
            .map(|(i, port)| {
                Node::start(
                    &config,
                    *port,
                    (&shared, bucket.as_ref()),
                    dir.path().join(format!("node{i}.log")),
                )
            })
            .collect();
        for node in &mut nodes {
            node.wait_ready(&http).await;
        }
        Self {
            nodes,
            http,
            database,
            on_s3: bucket.is_some(),
            redis,
            dir,
        }
    }

    async fn post(
        &self,
        node: usize,
        path: &str,
        body: Value,
        session: Option<&str>,
        ip: &str,
    ) -> (StatusCode, Value) {
        let request = self.http.post(self.nodes[node].api(path)).json(&body);
        call(request, session, ip).await.unwrap()
    }

    async fn get(
        &self,
        node: usize,
        path: &str,
        session: Option<&str>,
        ip: &str,
    ) -> (StatusCode, Value) {
        let request = self.http.get(self.nodes[node].api(path));
        call(request, session, ip).await.unwrap()
    }

    /// The newest delivered message to `to`, as node `node` shows the dev outbox.
    async fn mail_to(&self, node: usize, to: &str) -> Value {
        for _ in 0..400 {
            let mail: Vec<Value> = self
                .http
                .get(format!("{}/_dev/mail", self.nodes[node].url))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            if let Some(found) = mail.into_iter().find(|m| m["to"] == to) {
                return found;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("no mail to {to}");
    }

    async fn database(&self) -> sqlx_postgres::PgConnection {
        sqlx_postgres::PgConnection::connect(&self.database.url)
            .await
            .unwrap()
    }
}

async fn scalar(conn: &mut sqlx_postgres::PgConnection, sql: &str) -> i64 {
    sqlx_core::query_scalar::query_scalar(sql)
        .fetch_one(conn)
        .await
        .unwrap()
}

#[tokio::test]
async fn three_nodes_behave_as_one_server() {
    if !on_postgres() {
        return;
    }
    let cluster = Cluster::start(3).await;

    // Sign up on node 1, follow the mail link on node 2, redeem the grant on node 3.
    let ada = email();
    let (status, body) = cluster
        .post(
            0,
            "/auth/signup-email",
            json!({ "email": ada, "password": PASSWORD, "nameOrUserData": "Ada" }),
            None,
            "198.51.100.1",
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body["session"].is_null(), "verification is on");
    let mail = cluster.mail_to(1, &ada).await;
    let link = cluster.nodes[1].here(&link_in(&mail, "confirm"));
    let landed = cluster.http.get(&link).send().await.unwrap();
    assert_eq!(landed.status(), StatusCode::FOUND);
    let location = url::Url::parse(landed.headers()["location"].to_str().unwrap()).unwrap();
    assert!(location.as_str().starts_with(REDIRECT), "{location}");
    let access_token = location
        .query_pairs()
        .find(|(k, _)| k == "access_token")
        .map(|(_, v)| v.into_owned())
        .unwrap_or_else(|| panic!("no access_token in {location}"));
    let (status, grant) = cluster
        .get(
            2,
            &format!("/auth/grant?key={access_token}"),
            None,
            "198.51.100.1",
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{grant}");
    let session = grant["session"]["token"].as_str().unwrap().to_string();
    let ada_id = grant["user"]["_id"].as_str().unwrap().to_string();

    // Upload on node 3; its public path answers on node 1 (and any node).
    let bytes = b"hello from node 3".to_vec();
    let part = Part::bytes(bytes.clone())
        .file_name("blob")
        .mime_str("text/plain")
        .unwrap();
    let upload = cluster
        .http
        .post(
            cluster.nodes[2].api("/storage/bucket/upload-formdata?bucket=root&fileName=hello.txt"),
        )
        .multipart(Form::new().part("file", part));
    let (status, file) = call(upload, Some(&session), "198.51.100.1").await.unwrap();
    assert_eq!(status, StatusCode::OK, "{file}");
    let public_path = file["publicPath"].as_str().unwrap();
    assert!(
        public_path.starts_with(&cluster.nodes[0].url),
        "{public_path}"
    );
    for node in &cluster.nodes {
        let served = cluster
            .http
            .get(node.here(public_path))
            .send()
            .await
            .unwrap();
        assert_eq!(served.status(), StatusCode::OK);
        assert_eq!(served.bytes().await.unwrap().as_ref(), bytes.as_slice());
    }
    if cluster.on_s3 {
        // The bytes are in the bucket: no node wrote them to its disk.
        let local = cluster.dir.path().join("shared").join("files");
        let written = std::fs::read_dir(&local).map_or(0, |dir| dir.count());
        assert_eq!(written, 0, "files under {}", local.display());
    }

    // Sign out on node 1: nodes 2 and 3 refuse the session on the next request.
    for node in 1..3 {
        let (status, user) = cluster
            .get(node, "/auth/user", Some(&session), "198.51.100.1")
            .await;
        assert_eq!(status, StatusCode::OK, "{user}");
    }
    let (status, body) = cluster
        .post(
            0,
            "/auth/signout",
            json!({}),
            Some(&session),
            "198.51.100.1",
        )
        .await;
    assert!(status.is_success(), "{status} {body}");
    for node in 1..3 {
        let (status, body) = cluster
            .get(node, "/auth/user", Some(&session), "198.51.100.1")
            .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
        assert_eq!(body["errors"][0]["code"], "invalid_session_token");
    }

    // Rate limits count across nodes: failed sign-ins spread over the nodes delay the
    // account everywhere (3 free failures, then 60 s), and one address's sign-in calls are
    // counted together (5 per hour here).
    let victim = email();
    for (attempt, node) in [0, 1, 2, 0].into_iter().enumerate() {
        let (status, body) = cluster
            .post(
                node,
                "/auth/signin-email",
                json!({ "email": victim, "password": "wrong password here" }),
                None,
                &format!("198.51.100.{}", 10 + attempt),
            )
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(body["errors"][0]["code"], "invalid_credentials");
    }
    for node in 1..3 {
        let (status, body) = cluster
            .post(
                node,
                "/auth/signin-email",
                json!({ "email": victim, "password": "wrong password here" }),
                None,
                "198.51.100.20",
            )
            .await;
        assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    }
    for attempt in 0..5 {
        let (status, body) = cluster
            .post(
                attempt % 3,
                "/auth/signin-email",
                json!({ "email": email(), "password": "wrong password here" }),
                None,
                "203.0.113.7",
            )
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    }
    for node in 0..3 {
        let (status, body) = cluster
            .post(
                node,
                "/auth/signin-email",
                json!({ "email": email(), "password": "wrong password here" }),
                None,
                "203.0.113.7",
            )
            .await;
        assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    }
    // Counted where configured: in Redis in the S3 pass, else in PostgreSQL's rows.
    let rows = scalar(
        &mut cluster.database().await,
        "SELECT COUNT(*) FROM rate_buckets",
    )
    .await;
    assert_eq!(rows > 0, !cluster.on_s3, "rows of rate_buckets: {rows}");

    every_mail_is_sent_once(&cluster).await;
    let redis = cluster.redis.clone();
    answered_writes_survive_a_killed_node(cluster, &ada, &ada_id).await;
    if let Some((url, prefix)) = redis {
        // Forget this test's keys.
        use basalt::store::RateCounters;
        let counters = basalt::store::RedisCounters::connect(&url, &prefix, None)
            .await
            .unwrap();
        counters.prune(i64::MAX).await.unwrap();
    }
}

/// Sign-ups spread over the nodes queue a confirmation each; with three senders claiming
/// from the same outbox, every message is delivered exactly once.
async fn every_mail_is_sent_once(cluster: &Cluster) {
    let signups = (0..24).map(|i| async move {
        let (status, body) = cluster
            .post(
                i % 3,
                "/auth/signup-email",
                json!({ "email": email(), "password": PASSWORD, "nameOrUserData": "Bob" }),
                None,
                &format!("192.0.2.{}", 10 + i),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
    });
    futures_util::future::join_all(signups).await;
    let mut db = cluster.database().await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while scalar(
        &mut db,
        "SELECT COUNT(*) FROM mail_outbox WHERE sent_at IS NULL",
    )
    .await
        > 0
    {
        assert!(Instant::now() < deadline, "mail still queued");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // With the dev outbox every delivery is recorded: one attempt each, no message twice.
    assert!(scalar(&mut db, "SELECT COUNT(*) FROM mail_outbox").await >= 25);
    assert_eq!(
        scalar(
            &mut db,
            "SELECT COUNT(*) FROM mail_outbox WHERE attempts <> 1"
        )
        .await,
        0
    );
    db.close().await.unwrap();
}

/// What a write burst got answered with 2xx.
#[derive(Default)]
struct Answered {
    fields: Vec<String>,
    notes: Vec<String>,
    /// Calls that got no answer (the killed node's).
    unanswered: usize,
}

/// Own-user updates and object creates through every node; node 3 is killed with `kill -9`
/// in the middle. Every write answered 2xx is there afterwards.
async fn answered_writes_survive_a_killed_node(mut cluster: Cluster, ada: &str, ada_id: &str) {
    let (status, body) = cluster
        .post(
            1,
            "/auth/signin-email",
            json!({ "email": ada, "password": PASSWORD }),
            None,
            "198.51.100.30",
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let session: Arc<str> = body["session"]["token"].as_str().unwrap().into();
    let stop = Arc::new(AtomicBool::new(false));
    let urls: Vec<String> = cluster.nodes.iter().map(|n| n.api("")).collect();
    let workers: Vec<_> = (0..12)
        .map(|worker| {
            let (http, base) = (cluster.http.clone(), urls[worker % 3].clone());
            let (session, stop, ada_id) = (session.clone(), stop.clone(), ada_id.to_string());
            tokio::spawn(async move {
                let mut answered = Answered::default();
                let mut n = 0;
                while !stop.load(Ordering::Relaxed) {
                    n += 1;
                    let field = format!("w{worker}_{n}");
                    let update = http.post(format!("{base}/db/object/update")).json(&json!({
                        "model": "users", "id": ada_id, "values": { field.clone(): n },
                        "options": { "cache": "nocache", "returnTop": false }
                    }));
                    match call(update, Some(&session), "198.51.100.31").await {
                        Ok((status, _)) if status.is_success() => answered.fields.push(field),
                        Ok(_) => {}
                        Err(_) => answered.unanswered += 1,
                    }
                    let create = http.post(format!("{base}/db/object/create")).json(&json!({
                        "model": "notes", "values": { "worker": worker, "n": n },
                        "options": { "cache": "nocache", "returnTop": false }
                    }));
                    match call(create, Some(&session), "198.51.100.31").await {
                        Ok((status, note)) if status.is_success() => {
                            answered
                                .notes
                                .push(note["_id"].as_str().unwrap().to_string());
                        }
                        Ok(_) => {}
                        Err(_) => answered.unanswered += 1,
                    }
                }
                answered
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    cluster.nodes[2].kill();
    tokio::time::sleep(Duration::from_millis(1000)).await;
    stop.store(true, Ordering::Relaxed);
    let mut answered = Answered::default();
    for worker in workers {
        let done = worker.await.unwrap();
        answered.fields.extend(done.fields);
        answered.notes.extend(done.notes);
        answered.unanswered += done.unanswered;
    }
    assert!(answered.unanswered > 0, "node 3 died mid-burst");
    assert!(
        answered.fields.len() > 20 && answered.notes.len() > 20,
        "a burst: {} updates, {} creates answered",
        answered.fields.len(),
        answered.notes.len()
    );

    let (status, user) = cluster
        .post(
            0,
            "/db/object/get",
            json!({ "model": "users", "id": ada_id }),
            Some(&session),
            "198.51.100.31",
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{user}");
    let missing: Vec<&String> = answered
        .fields
        .iter()
        .filter(|f| user.get(f.as_str()).is_none())
        .collect();
    assert!(missing.is_empty(), "answered updates lost: {missing:?}");

    let mut stored = HashSet::new();
    for page in 1.. {
        let (status, list) = cluster
            .post(0, "/db/get-list", json!({ "model": "notes", "query": { "expression": null, "page": page, "limit": 1000 } }), Some(&session), "198.51.100.31")
            .await;
        assert_eq!(status, StatusCode::OK, "{list}");
        let list = list.as_array().unwrap();
        stored.extend(list.iter().map(|n| n["_id"].as_str().unwrap().to_string()));
        if list.len() < 1000 {
            break;
        }
    }
    let lost: Vec<&String> = answered
        .notes
        .iter()
        .filter(|id| !stored.contains(*id))
        .collect();
    assert!(lost.is_empty(), "answered creates lost: {lost:?}");
}
