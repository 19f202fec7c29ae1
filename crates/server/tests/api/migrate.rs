//! `basalt migrate --from sqlite:PATH --to postgres://…` as an operator runs it: the real
//! binary copies a running SQLite installation, then Basalt serves the same accounts, links,
//! mail, objects and files from PostgreSQL. Needs PostgreSQL: runs in the suite's PostgreSQL
//! pass (`BASALT_TEST_API_POSTGRES=1`); the argument checks run in both passes.

use std::collections::BTreeMap;
use std::process::Output;

use basalt::config::{Access, Config, FieldConfig, FieldType, ModelConfig};
use reqwest::multipart::{Form, Part};
use serde_json::{Value, json};

use crate::support::{KEY, PASSWORD, TestApp, TestDatabase, email, link_in, on_postgres};

fn models(config: &mut Config) {
    let mut fields = BTreeMap::new();
    fields.insert(
        "slug".to_string(),
        FieldConfig {
            kind: Some(FieldType::String),
            unique: true,
            ..FieldConfig::default()
        },
    );
    config.database.models = vec![ModelConfig {
        name: "todos".into(),
        access: Access::Owner,
        fields,
        indexes: vec!["slug".into()],
    }];
}

async fn basalt(args: &[&str]) -> Output {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_basalt"));
    command
        .args(args)
        .env_remove("BASALT_DATABASE__URL")
        .env_remove("BASALT_CONFIG");
    command.output().await.unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

async fn upload(app: &TestApp, token: &str, bucket: &str, name: &str, bytes: &[u8]) -> Value {
    let part = Part::bytes(bytes.to_vec())
        .file_name("blob")
        .mime_str("text/plain")
        .unwrap();
    let response = app
        .http
        .post(app.api(&format!(
            "/storage/bucket/upload-formdata?bucket={bucket}&fileName={name}"
        )))
        .header("X-Client-Key", KEY)
        .header("Session", token)
        .multipart(Form::new().part("file", part))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

async fn todos(app: &TestApp, token: &str) -> Value {
    app.post_as(
        "/db/get-list",
        json!({ "model": "todos", "query": { "expression": null, "sort": [{ "field": "slug", "direction": "asc" }] } }),
        Some(token),
    )
    .await
    .assert_ok()
    .clone()
}

async fn client_key(app: &TestApp) -> String {
    let script = app
        .http
        .get(format!("{}/basalt-config.js", app.url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let start = script.find("\"clientKey\"").unwrap();
    script[start..].split('"').nth(3).unwrap().to_string()
}

/// The path of a URL, without the origin (each app has its own port).
fn path_of(url: &Value) -> String {
    let url = url::Url::parse(url.as_str().unwrap()).unwrap();
    url.path().to_string()
}

#[tokio::test]
async fn a_running_sqlite_installation_moves_to_postgres_and_keeps_working() {
    if !on_postgres() {
        eprintln!("needs PostgreSQL: runs with BASALT_TEST_API_POSTGRES=1");
        return;
    }
    let source = TestApp::spawn_on_sqlite_with(models).await;
    let ada = email();
    let first = source.verified_user(&ada).await;
    let second = source.sign_in(&ada, PASSWORD).await.assert_ok()["session"]["token"]
        .as_str()
        .unwrap()
        .to_string();
    // Bob's confirmation link stays unopened until after the move.
    let bob = email();
    source.sign_up(&bob, PASSWORD).await.assert_ok();
    let bob_mail = source.mail_to(&bob).await;
    let created = source
        .post_as(
            "/db/create",
            json!({ "model": "todos", "values": (0..3).map(|i| json!({ "slug": format!("t{i}"), "meta": { "n": i } })).collect::<Vec<_>>() }),
            Some(&first),
        )
        .await;
    assert_eq!(created.assert_ok().as_array().unwrap().len(), 3);
    source
        .post_as(
            "/storage/create-bucket",
            json!({ "name": "docs", "isPublic": false, "tags": ["x"] }),
            Some(&first),
        )
        .await
        .assert_ok();
    let public = upload(&source, &first, "root", "hello.txt", b"hello").await;
    let private = upload(&source, &first, "docs", "secret.txt", b"secret").await;
    let objects_before = todos(&source, &first).await;
    let mail_before = source.mailbox().await;

    let db = TestDatabase::create().await;
    let url = db.url.clone();
    let from = format!("sqlite:{}", source.data_dir().display());
    let copied = basalt(&["migrate", "--from", &from, "--to", &url]).await;
    let stdout = text(&copied.stdout);
    assert!(copied.status.success(), "{}{stdout}", text(&copied.stderr));
    for line in [
        "users",
        "sessions",
        "tokens",
        "mail_outbox",
        "client_keys",
        "files",
    ] {
        assert!(stdout.contains(&format!("\n  {line} ")), "{stdout}");
    }
    assert!(
        stdout.contains("  objects                         3\n"),
        "{stdout}"
    );
    assert!(stdout.contains("File bytes were not copied"), "{stdout}");

    // The same data directory (or bucket) keeps the file bytes; the database is now PostgreSQL.
    let data_dir = source.data_dir().to_path_buf();
    let bucket = source.s3_bucket().map(String::from);
    let target = TestApp::spawn_on_postgres_with(&url, move |config| {
        models(config);
        config.data_dir = data_dir;
        if let Some(bucket) = bucket {
            config.storage.s3.bucket = bucket;
        }
    })
    .await;
    for token in [&first, &second] {
        let user = target.get_as("/auth/user", Some(token)).await;
        assert_eq!(user.assert_ok()["email"], ada.as_str());
    }
    target.sign_in(&ada, PASSWORD).await.assert_ok();
    target
        .sign_in(&ada, "wrong password")
        .await
        .assert_error(400, "invalid_credentials");
    assert_eq!(todos(&target, &first).await, objects_before);
    assert_eq!(target.mailbox().await, mail_before);
    assert_eq!(client_key(&target).await, client_key(&source).await);
    for (file, bucket, bytes) in [(&public, "root", "hello"), (&private, "docs", "secret")] {
        let got = target
            .post_as(
                "/storage/bucket/file/get",
                json!({ "bucket": bucket, "file": file["_id"] }),
                Some(&first),
            )
            .await;
        let got = got.assert_ok();
        for field in [
            "_id",
            "bucketId",
            "fileName",
            "size",
            "mimeType",
            "isPublic",
            "tags",
            "userId",
            "uploadedAt",
        ] {
            assert_eq!(got[field], file[field], "{field}");
        }
        assert_eq!(path_of(&got["publicPath"]), path_of(&file["publicPath"]));
        if file["isPublic"] == true {
            let served = reqwest::get(got["publicPath"].as_str().unwrap())
                .await
                .unwrap();
            assert_eq!(served.text().await.unwrap(), bytes);
        }
    }
    // A unique value copied is still taken.
    let taken = target
        .post_as(
            "/db/object/create",
            json!({ "model": "todos", "values": { "slug": "t1" } }),
            Some(&first),
        )
        .await;
    taken.assert_error(400, "not_unique");
    // The link mailed before the move still confirms Bob, on the new server.
    let link = link_in(&bob_mail, "confirm").replace(&source.url, &target.url);
    let redirect = target.follow(&link).await;
    target.grant(&redirect["access_token"]).await.assert_ok();

    // A second run refuses: the target is not empty, and it is left as it was.
    let again = basalt(&["migrate", "--from", &from, "--to", &url]).await;
    let stderr = text(&again.stderr);
    assert!(!again.status.success());
    assert!(
        stderr.contains("the PostgreSQL database is not empty (table users has 2 row(s)"),
        "{stderr}"
    );
    assert!(stderr.contains("no row was copied"), "{stderr}");
    assert_eq!(todos(&target, &first).await, objects_before);
    target.get_as("/auth/user", Some(&second)).await.assert_ok();
}

#[tokio::test]
async fn bad_sources_and_targets_get_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let missing = format!("sqlite:{}", dir.path().join("none.sqlite3").display());
    let cases: [(&[&str], &str); 5] = [
        (
            &[
                "migrate",
                "--from",
                "/var/lib/basalt",
                "--to",
                "postgres://db/x",
            ],
            "--from must be sqlite:PATH",
        ),
        (
            &["migrate", "--from", &missing, "--to", "postgres://db/x"],
            "no SQLite database at",
        ),
        (
            &[
                "migrate",
                "--from",
                &missing,
                "--to",
                "mysql://root:hunter2@db/x",
            ],
            "the target must be a postgres:// URL, not mysql:",
        ),
        (
            &[
                "migrate",
                "--from",
                &missing,
                "--to",
                "postgres://u:hunter2@127.0.0.1:1/x",
            ],
            "no SQLite database at",
        ),
        (&["migrate", "--from", &missing], "--to"),
    ];
    for (args, expected) in cases {
        let output = basalt(args).await;
        let stderr = text(&output.stderr);
        assert!(!output.status.success(), "{args:?}");
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
        assert!(
            !stderr.contains("hunter2"),
            "a password was printed: {stderr}"
        );
    }
    // A real installation and a server that does not answer.
    let source = TestApp::spawn_on_sqlite_with(|_| {}).await;
    let from = format!("sqlite:{}", source.data_dir().display());
    let output = basalt(&[
        "migrate",
        "--from",
        &from,
        "--to",
        "postgres://u:hunter2@127.0.0.1:1/x",
    ])
    .await;
    let stderr = text(&output.stderr);
    assert!(!output.status.success());
    assert!(stderr.contains("cannot connect to PostgreSQL"), "{stderr}");
    assert!(!stderr.contains("hunter2"), "{stderr}");
}
