//! The copy on a real SQLite file and a fresh PostgreSQL database per test, checked through
//! the `Store` trait of both backends.

use std::path::{Path, PathBuf};

use serde_json::{Map, Value, json};
use sqlx_core::query_scalar::query_scalar;

use super::source::Source;
use super::{CopyError, TABLES, sqlite_to_postgres};
use crate::store::conformance::TestDatabase;
use crate::store::{
    BucketRecord, FileRecord, NewMail, NewSession, NewToken, NewUser, ObjectQuery, ObjectRecord,
    ObjectWrite, Order, PostgresStore, SqliteStore, Store, TokenKind,
};

const NOW: i64 = 1_700_000_000_000;
const ADA: &str = "0123456789abcdef0123abcd";
const BOB: &str = "0123456789abcdef0123bbbb";
/// More than one batch of objects.
const OBJECTS: usize = 2_345;

fn mail(id: &str, to: &str) -> NewMail {
    NewMail {
        id: id.into(),
        to: to.into(),
        subject: format!("subject {id}"),
        text: "text".into(),
        html: "<p>html</p>".into(),
        now: NOW,
    }
}

fn token(id: &str, user: &str, kind: TokenKind, data: Option<&str>) -> NewToken {
    NewToken {
        id: id.into(),
        user_id: user.into(),
        kind,
        token_hash: format!("hash-{id}"),
        source_id: None,
        data: data.map(str::to_string),
        now: NOW,
        expires_at: NOW + 60_000,
    }
}

fn object(i: usize) -> ObjectWrite {
    let mut data = Map::new();
    data.insert("slug".into(), json!(format!("s-{i}")));
    data.insert("n".into(), json!(i));
    data.insert("ratio".into(), json!(i as f64 / 8.0));
    data.insert("tags".into(), json!(["x", {"deep": [null, true]}]));
    ObjectWrite {
        record: ObjectRecord {
            id: format!("{i:024x}"),
            model: "things".into(),
            owner_id: i.is_multiple_of(2).then(|| ADA.to_string()),
            data,
            version: 1 + (i % 3) as i64,
            created_at: NOW + i as i64,
            updated_at: NOW + i as i64,
        },
        unique: vec![("slug".into(), format!("\"s-{i}\""))],
    }
}

/// A SQLite installation with a row in every table, written through the store.
async fn installation(dir: &Path) -> (PathBuf, SqliteStore) {
    let path = dir.join("basalt.sqlite3");
    let store = SqliteStore::open(&path).await.unwrap();
    let mut data = Map::new();
    data.insert("name".into(), json!("Ada Lovelace é"));
    data.insert(
        "profile".into(),
        json!({"big": i64::MAX, "list": [1, 2.5, "three"]}),
    );
    store
        .insert_user(
            NewUser {
                id: ADA.into(),
                email: "ada@example.com".into(),
                email_key: "ada@example.com".into(),
                email_verified: true,
                password_hash: Some("$argon2id$v=19$m=1024,t=1,p=1$c2FsdA$aGFzaA".into()),
                data,
                now: NOW,
            },
            None,
            Some(NewSession {
                id: "session-1".into(),
                user_id: ADA.into(),
                token_hash: "session-hash-1".into(),
                user_agent: json!({"browser": "Chrome", "os": {"name": "macOS"}}),
                now: NOW,
                max_per_user: 100,
            }),
        )
        .await
        .unwrap();
    store
        .insert_user(
            NewUser {
                id: BOB.into(),
                email: "bob@example.com".into(),
                email_key: "bob@example.com".into(),
                email_verified: false,
                password_hash: None,
                data: Map::new(),
                now: NOW,
            },
            Some((
                token("confirm-1", BOB, TokenKind::Confirm, None),
                mail("mail-1", "bob@example.com"),
            )),
            None,
        )
        .await
        .unwrap();
    store
        .issue_link(
            token(
                "change-1",
                ADA,
                TokenKind::ChangeEmail,
                Some("ada@new.example"),
            ),
            mail("mail-2", "ada@new.example"),
        )
        .await
        .unwrap();
    store
        .enqueue_mail(mail("mail-3", "c@example.com"))
        .await
        .unwrap();
    store.mark_mail_sent("mail-1", NOW + 5).await.unwrap();
    store
        .mark_mail_failed("mail-3", NOW + 60_000, "smtp: 421 try later")
        .await
        .unwrap();
    for key in ["key-1", "key-2", "key-3"] {
        store
            .insert_client_key(key, &format!("label {key}"), NOW)
            .await
            .unwrap();
    }
    store.revoke_client_key("key-2", NOW + 1).await.unwrap();
    store
        .insert_bucket(BucketRecord {
            id: "bbbbbbbbbbbbbbbbbbbbbbbb".into(),
            name: "photos".into(),
            is_public: false,
            user_id: Some(ADA.into()),
            tags: vec!["holiday".into(), "2024".into()],
            created_at: NOW,
            updated_at: NOW,
        })
        .await
        .unwrap();
    let root = store.bucket("root").await.unwrap().unwrap();
    for (id, bucket) in [
        ("f1", &root.id),
        ("f2", &"bbbbbbbbbbbbbbbbbbbbbbbb".to_string()),
    ] {
        store
            .insert_file(FileRecord {
                id: id.into(),
                bucket_id: bucket.clone(),
                file_name: "photo.png".into(),
                blob_key: format!("{bucket}/{id}"),
                size: 3,
                encoding: "7bit".into(),
                mime_type: "image/png".into(),
                etag: "\"e\"".into(),
                is_public: id == "f1",
                user_id: Some(ADA.into()),
                tags: vec!["t".into()],
                uploaded_at: NOW,
                updated_at: NOW,
            })
            .await
            .unwrap();
    }
    store
        .insert_objects((0..OBJECTS).map(object).collect())
        .await
        .unwrap();
    (path, store)
}

async fn counts(db: &TestDatabase) -> Vec<i64> {
    let store = PostgresStore::open(&db.url, 1).await.unwrap();
    let mut counts = Vec::new();
    for table in TABLES {
        let n: i64 = query_scalar(&format!("SELECT count(*) FROM {table}"))
            .fetch_one(&mut *store.connection().await.unwrap())
            .await
            .unwrap();
        counts.push(n);
    }
    counts
}

fn every_object() -> ObjectQuery {
    ObjectQuery {
        model: "things".into(),
        owner: None,
        filter: None,
        order: Order::by_id(),
        limit: 10_000,
        offset: 0,
        count: true,
    }
}

#[tokio::test]
async fn every_row_arrives_with_its_values() {
    let dir = tempfile::tempdir().unwrap();
    let (path, sqlite) = installation(dir.path()).await;
    let db = TestDatabase::create().await;
    // The source is live: its store stays open during the copy.
    let report = sqlite_to_postgres(dir.path(), &db.url).await.unwrap();
    assert_eq!(report.source, path);
    assert_eq!(report.schema_level, (5, 5));
    let copied: Vec<(&str, u64)> = report
        .tables
        .iter()
        .map(|(t, n)| (t.as_str(), *n))
        .collect();
    let objects = OBJECTS as u64;
    assert_eq!(
        copied,
        [
            ("users", 2),
            ("sessions", 1),
            ("tokens", 2),
            ("mail_outbox", 3),
            ("client_keys", 3),
            ("buckets", 2),
            ("files", 2),
            ("objects", objects),
            ("object_unique_values", objects),
        ]
    );

    let pg = PostgresStore::open(&db.url, 2).await.unwrap();
    for email in ["ada@example.com", "bob@example.com"] {
        let a = sqlite.user_by_email(email).await.unwrap().unwrap();
        let b = pg.user_by_email(email).await.unwrap().unwrap();
        assert_eq!(
            (
                &a.id,
                &a.email,
                a.email_verified,
                &a.password_hash,
                &a.provider
            ),
            (
                &b.id,
                &b.email,
                b.email_verified,
                &b.password_hash,
                &b.provider
            )
        );
        assert_eq!(&a.provider_user_id, &b.provider_user_id);
        assert_eq!(Value::Object(a.data), Value::Object(b.data));
        assert_eq!(
            (a.sign_up_at, a.last_login_at, a.created_at, a.updated_at),
            (b.sign_up_at, b.last_login_at, b.created_at, b.updated_at)
        );
    }
    let (session, user) = pg
        .session_by_token("session-hash-1")
        .await
        .unwrap()
        .unwrap();
    assert_eq!((session.id.as_str(), user.id.as_str()), ("session-1", ADA));
    assert_eq!(
        session.user_agent,
        json!({"browser": "Chrome", "os": {"name": "macOS"}})
    );
    for hash in ["hash-confirm-1", "hash-change-1"] {
        let a = sqlite.token_by_hash(hash).await.unwrap().unwrap();
        let b = pg.token_by_hash(hash).await.unwrap().unwrap();
        assert_eq!(format!("{a:?}"), format!("{b:?}"));
    }
    let keys = |k: Vec<crate::store::ClientKeyRecord>| format!("{k:?}");
    assert_eq!(
        keys(sqlite.client_keys().await.unwrap()),
        keys(pg.client_keys().await.unwrap())
    );
    let mails = |m: Vec<crate::store::MailRecord>| format!("{m:?}");
    assert_eq!(
        mails(sqlite.sent_mail(10).await.unwrap()),
        mails(pg.sent_mail(10).await.unwrap())
    );
    assert_eq!(
        mails(
            sqlite
                .claim_mail(NOW + 120_000, NOW + 180_000, 10)
                .await
                .unwrap()
        ),
        mails(
            pg.claim_mail(NOW + 120_000, NOW + 180_000, 10)
                .await
                .unwrap()
        )
    );
    for name in ["root", "photos"] {
        let a = sqlite.bucket(name).await.unwrap().unwrap();
        let b = pg.bucket(name).await.unwrap().unwrap();
        assert_eq!(format!("{a:?}"), format!("{b:?}"));
        let (a, b) = (
            sqlite
                .file(&a.id, if name == "root" { "f1" } else { "f2" })
                .await
                .unwrap(),
            pg.file(&b.id, if name == "root" { "f1" } else { "f2" })
                .await
                .unwrap(),
        );
        assert!(a.is_some());
        assert_eq!(format!("{a:?}"), format!("{b:?}"));
    }
    let (a, a_count) = sqlite.query_objects(every_object()).await.unwrap();
    let (b, b_count) = pg.query_objects(every_object()).await.unwrap();
    assert_eq!((a_count, b_count), (Some(objects), Some(objects)));
    for (a, b) in a.into_iter().zip(b) {
        assert_eq!(
            (
                &a.id,
                &a.model,
                &a.owner_id,
                a.version,
                a.created_at,
                a.updated_at
            ),
            (
                &b.id,
                &b.model,
                &b.owner_id,
                b.version,
                b.created_at,
                b.updated_at
            )
        );
        assert_eq!(Value::Object(a.data), Value::Object(b.data));
    }
    // Unique values came along: a taken slug is still taken.
    let taken = pg.insert_objects(vec![object(7)]).await;
    assert!(taken.is_err());
}

#[tokio::test]
async fn a_target_that_is_not_empty_is_refused_and_left_as_it_was() {
    let dir = tempfile::tempdir().unwrap();
    let (_path, _sqlite) = installation(dir.path()).await;
    let db = TestDatabase::create().await;
    sqlite_to_postgres(dir.path(), &db.url).await.unwrap();
    let before = counts(&db).await;
    let again = sqlite_to_postgres(dir.path(), &db.url).await.unwrap_err();
    assert!(
        again.to_string().starts_with(
            "the PostgreSQL database is not empty (table users has 2 row(s), \
             table sessions has 1 row(s), table tokens has 2 row(s),"
        ),
        "{again}"
    );
    // The migrations' `root` bucket does not count; the copied `photos` does.
    assert!(
        matches!(&again, CopyError::NotEmpty(tables) if tables.len() == TABLES.len()
            && tables.contains(&("buckets".into(), 1))),
        "{again}"
    );
    assert_eq!(counts(&db).await, before);

    // A database a node already wrote to (here one client key) is refused too.
    let other = TestDatabase::create().await;
    let pg = PostgresStore::open(&other.url, 1).await.unwrap();
    pg.insert_client_key("k", "key", NOW).await.unwrap();
    let refused = sqlite_to_postgres(dir.path(), &other.url)
        .await
        .unwrap_err();
    assert!(
        matches!(&refused, CopyError::NotEmpty(tables)
            if tables == &[("client_keys".to_string(), 1)]),
        "{refused}"
    );
}

#[tokio::test]
async fn the_source_is_read_as_one_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let (path, sqlite) = installation(dir.path()).await;
    let mut source = Source::open(&path).await.unwrap();
    assert_eq!(source.count("client_keys").await.unwrap(), 3);
    // A write the running server commits after the snapshot is not seen by it.
    sqlite
        .insert_client_key("key-4", "later", NOW)
        .await
        .unwrap();
    assert_eq!(source.count("client_keys").await.unwrap(), 3);
    let mut fresh = Source::open(&path).await.unwrap();
    assert_eq!(fresh.count("client_keys").await.unwrap(), 4);
}

#[tokio::test]
async fn a_stopped_installation_is_copied_too() {
    let dir = tempfile::tempdir().unwrap();
    let (path, sqlite) = installation(dir.path()).await;
    drop(sqlite);
    let db = TestDatabase::create().await;
    let report = sqlite_to_postgres(&path, &db.url).await.unwrap();
    assert_eq!(report.tables[0], ("users".to_string(), 2));
}

fn set_sqlite(path: &Path, sql: &str) {
    let conn = rusqlite::Connection::open(path).unwrap();
    conn.busy_timeout(std::time::Duration::from_secs(5))
        .unwrap();
    conn.execute_batch(sql).unwrap();
}

#[tokio::test]
async fn schemas_at_other_levels_or_with_unknown_tables_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (path, sqlite) = installation(dir.path()).await;
    drop(sqlite);
    let db = TestDatabase::create().await;
    for (level, expected) in [(2, "upgrade it first"), (99, "made by a newer basalt")] {
        set_sqlite(&path, &format!("PRAGMA user_version = {level}"));
        let err = sqlite_to_postgres(&path, &db.url).await.unwrap_err();
        assert!(matches!(err, CopyError::Schema(_)), "{err}");
        assert!(err.to_string().contains(expected), "{err}");
    }
    set_sqlite(
        &path,
        &format!(
            "PRAGMA user_version = {}; CREATE TABLE extra (x INTEGER)",
            crate::store::sqlite::schema_level()
        ),
    );
    let err = sqlite_to_postgres(&path, &db.url).await.unwrap_err();
    assert!(err.to_string().contains("table extra"), "{err}");
    set_sqlite(&path, "DROP TABLE extra");

    let pg = PostgresStore::open(&db.url, 1).await.unwrap();
    sqlx_core::query::query("INSERT INTO basalt_migrations (version, name) VALUES (99, 'later')")
        .execute(&mut *pg.connection().await.unwrap())
        .await
        .unwrap();
    let err = sqlite_to_postgres(&path, &db.url).await.unwrap_err();
    assert!(
        err.to_string()
            .contains("PostgreSQL database is at schema level 99"),
        "{err}"
    );
}

#[tokio::test]
async fn a_value_postgres_cannot_hold_is_named_and_nothing_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let (path, sqlite) = installation(dir.path()).await;
    drop(sqlite);
    set_sqlite(
        &path,
        &format!(
            "UPDATE objects SET data = '{{\"a\": \"nul \\u0000\"}}' WHERE id = '{:024x}'",
            5
        ),
    );
    let db = TestDatabase::create().await;
    let err = sqlite_to_postgres(&path, &db.url).await.unwrap_err();
    assert!(
        matches!(&err, CopyError::Value { table, column, .. }
        if table == "objects" && column == "data"),
        "{err}"
    );
    assert!(err.to_string().contains("NUL"), "{err}");
    let left = counts(&db).await;
    // Nothing but the migrations' own `root` bucket.
    let expected: Vec<i64> = TABLES.iter().map(|t| i64::from(*t == "buckets")).collect();
    assert_eq!(left, expected);
}

#[tokio::test]
async fn sources_and_targets_that_are_not_basalt_databases_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let url = "postgres://postgres@127.0.0.1:5432/never_reached";
    let missing = sqlite_to_postgres(&dir.path().join("nothing.sqlite3"), url)
        .await
        .unwrap_err();
    assert!(
        missing.to_string().contains("no SQLite database at"),
        "{missing}"
    );
    let text = dir.path().join("notes.txt");
    std::fs::write(&text, "not a database, just some words to fill a page").unwrap();
    let not_sqlite = sqlite_to_postgres(&text, url).await.unwrap_err();
    assert!(
        not_sqlite
            .to_string()
            .contains("not a readable SQLite database"),
        "{not_sqlite}"
    );
    let empty = dir.path().join("empty.sqlite3");
    set_sqlite(&empty, "CREATE TABLE t (x INTEGER)");
    let foreign = sqlite_to_postgres(&empty, url).await.unwrap_err();
    assert!(
        foreign.to_string().contains("is not a Basalt database"),
        "{foreign}"
    );
    let mysql = sqlite_to_postgres(&empty, "mysql://root:secret@db/x")
        .await
        .unwrap_err();
    assert_eq!(
        mysql.to_string(),
        "the target must be a postgres:// URL, not mysql:"
    );
}
