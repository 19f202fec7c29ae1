//! The conformance suite: every backend passes every case. A new backend adds a module to the
//! `conformance!` macro and a `fresh_*` constructor. The storage list cases are in
//! `storage.rs`.
//!
//! PostgreSQL cases run in a fresh database each (`basalt_test_<random>`, dropped afterwards)
//! on the server of `BASALT_TEST_POSTGRES_URL` (default: local, user `postgres`, database
//! `test`); `scripts/test.sh` starts it.

mod storage;

use self::storage::{
    only_owned_files_are_deleted_by_id_or_name, storage_lists_filter_sort_and_page_in_the_store,
    storage_lists_show_public_rows_and_the_readers_own,
    storage_stats_total_what_the_reader_may_read,
};

use serde_json::{Map, json};

use super::{
    FileRecord, NewMail, NewSession, NewToken, NewUser, ObjectRecord, ObjectWrite, PostgresStore,
    RedeemGrant, SessionRef, SqliteStore, Store, StoreError, TokenKind,
};

macro_rules! conformance {
    ($($case:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test]
                async fn $case() {
                    let (_dir, store) = super::fresh_sqlite().await;
                    super::$case(&store).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test]
                async fn $case() {
                    let (_db, store) = super::fresh_postgres().await;
                    super::$case(&store).await;
                }
            )*
        }
    };
}

conformance!(
    duplicate_email_is_a_conflict,
    a_grant_cannot_be_redeemed_twice,
    a_spent_link_spoils_every_grant_minted_from_it,
    a_new_link_replaces_unspent_links_of_the_same_kind,
    sessions_beyond_the_cap_evict_the_oldest,
    only_the_owner_can_delete_a_session,
    deleting_a_user_deletes_sessions_and_tokens,
    mail_waits_until_due_and_leaves_the_queue_when_sent,
    claimed_mail_is_not_claimed_again_until_its_lease_ends,
    concurrent_claims_never_share_a_message,
    changing_to_a_taken_email_is_a_conflict,
    profile_data_round_trips,
    concurrent_writes_fail_alone,
    taken_file_names_are_numbered,
    concurrent_writes_of_one_name_are_numbered_apart,
    profile_updates_merge_top_level_fields,
    object_writes_check_versions_and_unique_values,
    storage_lists_show_public_rows_and_the_readers_own,
    storage_stats_total_what_the_reader_may_read,
    only_owned_files_are_deleted_by_id_or_name,
    pages_without_filters_sort_by_columns,
    declared_indexes_are_created_and_dropped,
    storage_lists_filter_sort_and_page_in_the_store,
    filtered_pages_of_objects_and_users,
);

async fn fresh_sqlite() -> (tempfile::TempDir, SqliteStore) {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("test.sqlite3"))
        .await
        .unwrap();
    (dir, store)
}

pub(crate) use super::test_database::{TestDatabase, test_redis};

async fn fresh_postgres() -> (TestDatabase, PostgresStore) {
    let db = TestDatabase::create().await;
    let store = PostgresStore::open(&db.url, 4).await.unwrap();
    (db, store)
}

const NOW: i64 = 1_700_000_000_000;

fn user(id: &str, email: &str) -> NewUser {
    NewUser {
        id: id.into(),
        email: email.into(),
        email_key: email.to_lowercase(),
        email_verified: true,
        password_hash: Some("$argon2id$stub".into()),
        data: Map::new(),
        now: NOW,
    }
}

fn session(id: &str, user_id: &str, now: i64) -> NewSession {
    NewSession {
        id: id.into(),
        user_id: user_id.into(),
        token_hash: format!("hash-{id}"),
        user_agent: json!({ "family": "Other" }),
        now,
        max_per_user: 3,
    }
}

fn token(id: &str, user_id: &str, kind: TokenKind, source: Option<&str>) -> NewToken {
    NewToken {
        id: id.into(),
        user_id: user_id.into(),
        kind,
        token_hash: format!("hash-{id}"),
        source_id: source.map(String::from),
        data: None,
        now: NOW,
        expires_at: NOW + 60_000,
    }
}

fn mail(id: &str, to: &str, now: i64) -> NewMail {
    NewMail {
        id: id.into(),
        to: to.into(),
        subject: "Hello".into(),
        text: "text".into(),
        html: "<p>html</p>".into(),
        now,
    }
}

fn redeem(grant: &str, source: Option<&str>, session_id: &str) -> RedeemGrant {
    RedeemGrant {
        grant_id: grant.into(),
        source_id: source.map(String::from),
        session: session(session_id, "u1", NOW),
        mark_verified: true,
        void_password: false,
    }
}

async fn duplicate_email_is_a_conflict(store: &dyn Store) {
    store
        .insert_user(user("u1", "ada@example.com"), None, None)
        .await
        .unwrap();
    let again = store
        .insert_user(user("u2", "ADA@example.com"), None, None)
        .await;
    assert!(matches!(again, Err(StoreError::Conflict { constraint }) if constraint == "email"));
}

async fn a_grant_cannot_be_redeemed_twice(store: &dyn Store) {
    store
        .insert_user(user("u1", "ada@example.com"), None, None)
        .await
        .unwrap();
    store
        .insert_token(token("g1", "u1", TokenKind::Grant, None))
        .await
        .unwrap();
    assert!(store.redeem_grant(redeem("g1", None, "s1")).await.unwrap());
    assert!(!store.redeem_grant(redeem("g1", None, "s2")).await.unwrap());
    assert_eq!(store.sessions_of_user("u1").await.unwrap().len(), 1);
}

async fn a_spent_link_spoils_every_grant_minted_from_it(store: &dyn Store) {
    store
        .insert_user(user("u1", "ada@example.com"), None, None)
        .await
        .unwrap();
    let link = token("t1", "u1", TokenKind::Magic, None);
    store
        .issue_link(link, mail("m1", "ada@example.com", NOW))
        .await
        .unwrap();
    for grant in ["g1", "g2"] {
        store
            .insert_token(token(grant, "u1", TokenKind::Grant, Some("t1")))
            .await
            .unwrap();
    }
    assert!(
        store
            .redeem_grant(redeem("g1", Some("t1"), "s1"))
            .await
            .unwrap()
    );
    assert!(
        !store
            .redeem_grant(redeem("g2", Some("t1"), "s2"))
            .await
            .unwrap()
    );
    // Nothing of the refused redemption was written.
    assert_eq!(store.sessions_of_user("u1").await.unwrap().len(), 1);
    let g2 = store.token_by_hash("hash-g2").await.unwrap().unwrap();
    assert!(g2.used_at.is_none());
}

async fn a_new_link_replaces_unspent_links_of_the_same_kind(store: &dyn Store) {
    store
        .insert_user(user("u1", "ada@example.com"), None, None)
        .await
        .unwrap();
    let first = token("t1", "u1", TokenKind::Reset, None);
    store
        .issue_link(first, mail("m1", "ada@example.com", NOW))
        .await
        .unwrap();
    let magic = token("t2", "u1", TokenKind::Magic, None);
    store
        .issue_link(magic, mail("m2", "ada@example.com", NOW))
        .await
        .unwrap();
    let second = token("t3", "u1", TokenKind::Reset, None);
    store
        .issue_link(second, mail("m3", "ada@example.com", NOW))
        .await
        .unwrap();
    assert!(store.token_by_hash("hash-t1").await.unwrap().is_none());
    assert!(store.token_by_hash("hash-t2").await.unwrap().is_some());
    assert!(store.token_by_hash("hash-t3").await.unwrap().is_some());
}

async fn sessions_beyond_the_cap_evict_the_oldest(store: &dyn Store) {
    store
        .insert_user(user("u1", "ada@example.com"), None, None)
        .await
        .unwrap();
    for (i, id) in ["s1", "s2", "s3", "s4"].iter().enumerate() {
        let at = NOW + i64::try_from(i).unwrap();
        store
            .record_sign_in(session(id, "u1", at), None)
            .await
            .unwrap();
    }
    let ids: Vec<String> = store
        .sessions_of_user("u1")
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.id)
        .collect();
    assert_eq!(ids, ["s2", "s3", "s4"]);
    let user = store.user_by_id("u1").await.unwrap().unwrap();
    assert_eq!(user.last_login_at, NOW + 3);
}

async fn only_the_owner_can_delete_a_session(store: &dyn Store) {
    store
        .insert_user(user("u1", "ada@example.com"), None, None)
        .await
        .unwrap();
    store
        .insert_user(user("u2", "bob@example.com"), None, None)
        .await
        .unwrap();
    store
        .record_sign_in(session("s1", "u1", NOW), None)
        .await
        .unwrap();
    let by_other = store
        .delete_session("u2", SessionRef::Id("s1".into()))
        .await
        .unwrap();
    assert!(!by_other);
    let by_owner = store
        .delete_session("u1", SessionRef::TokenHash("hash-s1".into()))
        .await
        .unwrap();
    assert!(by_owner);
    assert!(store.session_by_token("hash-s1").await.unwrap().is_none());
}

async fn deleting_a_user_deletes_sessions_and_tokens(store: &dyn Store) {
    store
        .insert_user(user("u1", "ada@example.com"), None, None)
        .await
        .unwrap();
    store
        .record_sign_in(session("s1", "u1", NOW), None)
        .await
        .unwrap();
    store
        .insert_token(token("g1", "u1", TokenKind::Grant, None))
        .await
        .unwrap();
    assert!(store.delete_user("u1").await.unwrap());
    assert!(store.session_by_token("hash-s1").await.unwrap().is_none());
    assert!(store.token_by_hash("hash-g1").await.unwrap().is_none());
    assert!(!store.delete_user("u1").await.unwrap());
}

async fn mail_waits_until_due_and_leaves_the_queue_when_sent(store: &dyn Store) {
    store
        .enqueue_mail(mail("m1", "ada@example.com", NOW))
        .await
        .unwrap();
    let due = store.claim_mail(NOW, NOW + 60_000, 10).await.unwrap();
    assert_eq!(due.len(), 1);
    store
        .mark_mail_failed("m1", NOW + 2000, "connection refused")
        .await
        .unwrap();
    let claim = |now| store.claim_mail(now, now + 60_000, 10);
    assert!(claim(NOW + 1999).await.unwrap().is_empty());
    let retry = claim(NOW + 2000).await.unwrap();
    assert_eq!(retry[0].attempts, 1);
    assert!(store.sent_mail(10).await.unwrap().is_empty());
    store.mark_mail_sent("m1", NOW + 2500).await.unwrap();
    assert!(claim(NOW + 99_999).await.unwrap().is_empty());
    let sent = store.sent_mail(10).await.unwrap();
    assert_eq!(sent[0].sent_at, Some(NOW + 2500));
    assert_eq!(sent[0].to, "ada@example.com");
}

async fn claimed_mail_is_not_claimed_again_until_its_lease_ends(store: &dyn Store) {
    for (id, at) in [("m1", NOW), ("m2", NOW + 1), ("m3", NOW + 2)] {
        store
            .enqueue_mail(mail(id, "ada@example.com", at))
            .await
            .unwrap();
    }
    let ids = |mail: Vec<super::MailRecord>| mail.into_iter().map(|m| m.id).collect::<Vec<_>>();
    let first = store.claim_mail(NOW + 10, NOW + 60_010, 2).await.unwrap();
    assert_eq!(
        ids(first),
        ["m1", "m2"],
        "oldest due first, at most the limit"
    );
    let second = store.claim_mail(NOW + 20, NOW + 60_020, 10).await.unwrap();
    assert_eq!(ids(second), ["m3"], "claimed messages are skipped");
    assert!(
        store
            .claim_mail(NOW + 60_009, NOW + 120_009, 10)
            .await
            .unwrap()
            .is_empty(),
        "every lease still runs"
    );
    // The sender of m1 delivered it; the sender of m2 died: m2 is claimed again once its
    // lease is over, m1 never.
    store.mark_mail_sent("m1", NOW + 30).await.unwrap();
    let again = store
        .claim_mail(NOW + 60_010, NOW + 120_010, 10)
        .await
        .unwrap();
    assert_eq!(ids(again.clone()), ["m2"]);
    assert_eq!(again[0].attempts, 0);
    assert_eq!(
        ids(store
            .claim_mail(NOW + 60_020, NOW + 120_020, 10)
            .await
            .unwrap()),
        ["m3"]
    );
    // A failure ends the claim: the retry is due at its own time, not the lease's end.
    store
        .mark_mail_failed("m2", NOW + 62_000, "connection refused")
        .await
        .unwrap();
    let retried = store
        .claim_mail(NOW + 62_000, NOW + 122_000, 10)
        .await
        .unwrap();
    assert_eq!(ids(retried), ["m2"]);
}

async fn concurrent_claims_never_share_a_message(store: &dyn Store) {
    for i in 0..40 {
        store
            .enqueue_mail(mail(&format!("m{i:02}"), "ada@example.com", NOW))
            .await
            .unwrap();
    }
    let claims = (0..8).map(|_| store.claim_mail(NOW, NOW + 60_000, 3));
    let mut claimed: Vec<String> = futures_util::future::join_all(claims)
        .await
        .into_iter()
        .flat_map(|claim| claim.unwrap())
        .map(|m| m.id)
        .collect();
    let total = claimed.len();
    claimed.sort();
    claimed.dedup();
    assert_eq!(claimed.len(), total, "a message was claimed twice");
    assert_eq!(total, 24);
}

async fn changing_to_a_taken_email_is_a_conflict(store: &dyn Store) {
    store
        .insert_user(user("u1", "ada@example.com"), None, None)
        .await
        .unwrap();
    store
        .insert_user(user("u2", "bob@example.com"), None, None)
        .await
        .unwrap();
    let taken = store
        .change_email("u1", "Bob@example.com", "bob@example.com", NOW)
        .await;
    assert!(matches!(taken, Err(StoreError::Conflict { .. })));
    let ada = store.user_by_id("u1").await.unwrap().unwrap();
    assert_eq!(ada.email, "ada@example.com");
}

async fn profile_data_round_trips(store: &dyn Store) {
    let mut new = user("u1", "ada@example.com");
    new.data.insert("name".into(), json!("Ada"));
    new.data.insert("tags".into(), json!(["a", {"b": 1}]));
    store.insert_user(new, None, None).await.unwrap();
    let found = store
        .user_by_email("ada@example.com")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.data["name"], "Ada");
    assert_eq!(found.data["tags"], json!(["a", {"b": 1}]));
    assert_eq!(found.provider_user_id, "u1");
}

async fn concurrent_writes_fail_alone(store: &dyn Store) {
    // Many writes at once (the SQLite writer commits them in groups): the duplicates fail,
    // every other write lands.
    let writes = (0..40).map(|i| {
        let email = format!("user{}@example.com", i % 30);
        store.insert_user(user(&format!("u{i}"), &email), None, None)
    });
    let results = futures_util::future::join_all(writes).await;
    let conflicts = results
        .iter()
        .filter(|r| matches!(r, Err(StoreError::Conflict { .. })))
        .count();
    assert_eq!(conflicts, 10);
    assert_eq!(results.iter().filter(|r| r.is_ok()).count(), 30);
    for i in 0..30 {
        let email = format!("user{i}@example.com");
        assert!(store.user_by_email(&email).await.unwrap().is_some());
    }
}

/// A file record named `name` in `bucket` (tests of either backend).
pub(crate) fn file(id: &str, bucket: &str, name: &str) -> FileRecord {
    FileRecord {
        id: id.into(),
        bucket_id: bucket.into(),
        file_name: name.into(),
        blob_key: format!("{bucket}/{id}"),
        size: 3,
        encoding: "7bit".into(),
        mime_type: "image/png".into(),
        etag: "\"e\"".into(),
        is_public: true,
        user_id: None,
        tags: vec!["a".into()],
        uploaded_at: NOW,
        updated_at: NOW,
    }
}

async fn taken_file_names_are_numbered(store: &dyn Store) {
    let root = store.bucket("root").await.unwrap().unwrap();
    assert!(root.is_public);
    assert_eq!(store.bucket(&root.id).await.unwrap().unwrap().name, "root");
    let names: Vec<String> = futures_util::future::join_all(
        (0..3).map(|i| store.insert_file(file(&format!("f{i}"), &root.id, "photo.png"))),
    )
    .await
    .into_iter()
    .map(|f| f.unwrap().file_name)
    .collect();
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(sorted, ["photo-1.png", "photo-2.png", "photo.png"]);
    // A name uploaded again and again keeps counting up (user_<id> on every avatar change).
    let mut last = String::new();
    for i in 0..30 {
        last = store
            .insert_file(file(&format!("u{i}"), &root.id, "user_a%b"))
            .await
            .unwrap()
            .file_name;
    }
    assert_eq!(last, "user_a%b-29");
    let found = store.file(&root.id, "f0").await.unwrap().unwrap();
    assert_eq!(found.tags, ["a"]);
    assert!(store.file("other", "f0").await.unwrap().is_none());
}

async fn concurrent_writes_of_one_name_are_numbered_apart(store: &dyn Store) {
    // Twenty uploads of one name at once (on PostgreSQL over several connections): every one
    // lands, and the names are exactly those one after another would get.
    let root = store.bucket("root").await.unwrap().unwrap();
    let expected = |stem: &str| {
        let mut names: Vec<String> = (0..20)
            .map(|i| match i {
                0 => format!("{stem}.png"),
                i => format!("{stem}-{i}.png"),
            })
            .collect();
        names.sort();
        names
    };
    let uploads = (0..20).map(|i| store.insert_file(file(&format!("n{i}"), &root.id, "n.png")));
    let mut names: Vec<String> = futures_util::future::join_all(uploads)
        .await
        .into_iter()
        .map(|f| f.unwrap().file_name)
        .collect();
    names.sort();
    assert_eq!(names, expected("n"));
    // Twenty files renamed to one name at once.
    for i in 0..20 {
        store
            .insert_file(file(&format!("r{i}"), &root.id, &format!("r{i}.txt")))
            .await
            .unwrap();
    }
    let renames = (0..20).map(|i| {
        store.update_file(FileRecord {
            updated_at: NOW + 1,
            ..file(&format!("r{i}"), &root.id, "m.png")
        })
    });
    let mut names: Vec<String> = futures_util::future::join_all(renames)
        .await
        .into_iter()
        .map(|f| f.unwrap().file_name)
        .collect();
    names.sort();
    assert_eq!(names, expected("m"));
    // A file renamed to the name it has keeps it.
    let name = store.file(&root.id, "r0").await.unwrap().unwrap().file_name;
    let kept = store
        .update_file(file("r0", &root.id, &name))
        .await
        .unwrap();
    assert_eq!(kept.file_name, name);
}

async fn profile_updates_merge_top_level_fields(store: &dyn Store) {
    store
        .insert_user(user("u1", "ada@example.com"), None, None)
        .await
        .unwrap();
    let mut first = Map::new();
    first.insert("name".into(), json!("Ada"));
    first.insert("bio".into(), json!({"a": 1}));
    store.update_user_data("u1", first, NOW + 1).await.unwrap();
    let mut second = Map::new();
    second.insert("bio".into(), json!({"b": 2}));
    let updated = store
        .update_user_data("u1", second, NOW + 2)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(updated.data["name"], "Ada");
    assert_eq!(updated.data["bio"], json!({"b": 2}));
    assert_eq!(updated.updated_at, NOW + 2);
    assert!(
        store
            .update_user_data("nobody", Map::new(), NOW)
            .await
            .unwrap()
            .is_none()
    );
}

fn object(id: &str, slug: &str, version: i64) -> ObjectWrite {
    let mut data = Map::new();
    data.insert("slug".into(), json!(slug));
    ObjectWrite {
        record: ObjectRecord {
            id: id.into(),
            model: "todos".into(),
            owner_id: None,
            data,
            version,
            created_at: NOW,
            updated_at: NOW + version,
        },
        unique: vec![("slug".into(), format!("\"{slug}\""))],
    }
}

async fn object_writes_check_versions_and_unique_values(store: &dyn Store) {
    store
        .insert_objects(vec![object("o1", "a", 1)])
        .await
        .unwrap();
    // All or none: the second object's taken slug undoes the first.
    let both = store
        .insert_objects(vec![object("o2", "b", 1), object("o3", "a", 1)])
        .await;
    assert!(matches!(both, Err(StoreError::Conflict { constraint }) if constraint == "slug"));
    assert!(store.object("todos", "o2").await.unwrap().is_none());
    // A replace names the version it read.
    assert!(store.replace_object(object("o1", "c", 2), 1).await.unwrap());
    assert!(!store.replace_object(object("o1", "d", 2), 1).await.unwrap());
    let stored = store.object("todos", "o1").await.unwrap().unwrap();
    assert_eq!(
        (stored.version, stored.data["slug"].clone()),
        (2, json!("c"))
    );
    // The old value is free again.
    store
        .insert_objects(vec![object("o4", "a", 1)])
        .await
        .unwrap();
    assert!(store.object("other", "o1").await.unwrap().is_none());
    assert!(store.delete_object("todos", "o1").await.unwrap());
    assert!(!store.delete_object("todos", "o1").await.unwrap());
    store
        .insert_objects(vec![object("o5", "c", 1)])
        .await
        .unwrap();
}

async fn pages_without_filters_sort_by_columns(store: &dyn Store) {
    use crate::store::{ObjectQuery, Order, UserQuery};
    store
        .insert_user(user("u1", "ada@example.com"), None, None)
        .await
        .unwrap();
    let mut objects: Vec<ObjectWrite> = (1..=4)
        .map(|i| object(&format!("o{i}"), &format!("s{i}"), 1))
        .collect();
    for (i, o) in objects.iter_mut().enumerate() {
        o.record.created_at = NOW - i64::try_from(i).unwrap();
        o.record.owner_id = (i % 2 == 0).then(|| "u1".to_string());
    }
    store.insert_objects(objects).await.unwrap();
    let page = |owner: Option<&str>, offset: u64| ObjectQuery {
        model: "todos".into(),
        owner: owner.map(String::from),
        filter: None,
        order: Order::by(&[("createdAt".into(), false)]).unwrap(),
        limit: 2,
        offset,
        count: true,
    };
    let (found, total) = store.query_objects(page(None, 1)).await.unwrap();
    let ids: Vec<&str> = found.iter().map(|o| o.id.as_str()).collect();
    assert_eq!((ids, total), (vec!["o3", "o2"], Some(4)));
    let (found, total) = store.query_objects(page(Some("u1"), 0)).await.unwrap();
    let ids: Vec<&str> = found.iter().map(|o| o.id.as_str()).collect();
    assert_eq!((ids, total), (vec!["o3", "o1"], Some(2)));
    // A scan ignores the page and stops when the visitor says so.
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let record = seen.clone();
    store
        .scan_objects(
            page(None, 3),
            Box::new(move |o| {
                let mut seen = record.lock().unwrap();
                seen.push(o.id);
                seen.len() < 3
            }),
        )
        .await
        .unwrap();
    assert_eq!(*seen.lock().unwrap(), ["o4", "o3", "o2"]);
    let mut by_ids: Vec<String> = store
        .objects_by_ids(vec!["o1".into(), "o4".into(), "nope".into()])
        .await
        .unwrap()
        .into_iter()
        .map(|o| o.id)
        .collect();
    by_ids.sort();
    assert_eq!(by_ids, ["o1", "o4"]);
    store
        .insert_user(user("u2", "bob@example.com"), None, None)
        .await
        .unwrap();
    let users = UserQuery {
        caller: Some("u2".into()),
        public_fields: vec!["name".into()],
        filter: None,
        order: Order::by(&[("createdAt".into(), true)]).unwrap(),
        limit: 10,
        offset: 0,
        count: true,
    };
    // Others' times are hidden, so the caller's own record sorts first by `createdAt` desc.
    let (found, total) = store.query_users(users).await.unwrap();
    let ids: Vec<&str> = found.iter().map(|u| u.id.as_str()).collect();
    assert_eq!((ids, total), (vec!["u2", "u1"], Some(2)));
}

async fn declared_indexes_are_created_and_dropped(store: &dyn Store) {
    use crate::store::{Filter, ObjectIndex, ObjectQuery, Order};
    let sorted = ObjectIndex {
        model: "todos".into(),
        fields: vec!["status".into()],
        sort: vec!["rank".into(), "createdAt".into()],
    };
    let wanted = vec![
        ObjectIndex::field("todos", "status"),
        ObjectIndex::field("todos", "address.city"),
        sorted.clone(),
    ];
    store.ensure_indexes(wanted.clone()).await.unwrap();
    store.ensure_indexes(wanted).await.unwrap();
    // A page read through the sorted index, both ways, is in the sort's order.
    let objects: Vec<ObjectWrite> = [("o1", 2, "open"), ("o2", 1, "open"), ("o3", 3, "shut")]
        .into_iter()
        .map(|(id, rank, status)| {
            let mut o = object(id, id, 1);
            o.record.data.insert("rank".into(), json!(rank));
            o.record.data.insert("status".into(), json!(status));
            o
        })
        .collect();
    store.insert_objects(objects).await.unwrap();
    for (desc, expected) in [(false, ["o2", "o1"]), (true, ["o1", "o2"])] {
        let page = ObjectQuery {
            model: "todos".into(),
            owner: None,
            filter: Some(
                Filter::compile(&crate::expr::parse("status == 'open'").unwrap()).unwrap(),
            ),
            order: Order::by(&[("rank".into(), desc), ("createdAt".into(), desc)]).unwrap(),
            limit: 10,
            offset: 0,
            count: false,
        };
        let (found, _) = store.query_objects(page).await.unwrap();
        let ids: Vec<&str> = found.iter().map(|o| o.id.as_str()).collect();
        assert_eq!(ids, expected);
    }
    store
        .ensure_indexes(vec![ObjectIndex::field("todos", "status")])
        .await
        .unwrap();
    store.ensure_indexes(Vec::new()).await.unwrap();
    for bad in [
        ObjectIndex::field("todos", "x'); DROP TABLE objects; --"),
        ObjectIndex::field("todos", "createdAt"),
        ObjectIndex {
            model: "todos".into(),
            fields: Vec::new(),
            sort: Vec::new(),
        },
    ] {
        let refused = store.ensure_indexes(vec![bad]).await;
        assert!(matches!(refused, Err(StoreError::Backend(_))));
    }
    store
        .insert_objects(vec![object("o4", "a", 1)])
        .await
        .unwrap();
}

async fn filtered_pages_of_objects_and_users(store: &dyn Store) {
    use crate::store::{Filter, ObjectQuery, Order, UserQuery};
    let filter = |src: &str| Some(Filter::compile(&crate::expr::parse(src).unwrap()).unwrap());
    let mut first = user("u1", "ada@example.com");
    first.data.insert("name".into(), json!("Ada"));
    first.data.insert("secret".into(), json!("s1"));
    store.insert_user(first, None, None).await.unwrap();
    let mut second = user("u2", "bob@example.com");
    second.data.insert("name".into(), json!("Bob"));
    second.data.insert("secret".into(), json!("s2"));
    store.insert_user(second, None, None).await.unwrap();
    let objects: Vec<ObjectWrite> = [("o1", "b", 3), ("o2", "a", 1), ("o3", "c", 2)]
        .into_iter()
        .map(|(id, slug, rank)| {
            let mut o = object(id, slug, 1);
            o.record.data.insert("rank".into(), json!(rank));
            o
        })
        .collect();
    store.insert_objects(objects).await.unwrap();
    let objects = ObjectQuery {
        model: "todos".into(),
        owner: None,
        filter: filter("rank * 2 - 1 >= 3 || slug + '!' == 'a!'"),
        order: Order::by(&[("rank".into(), true)]).unwrap(),
        limit: 2,
        offset: 0,
        count: true,
    };
    let (found, total) = store.query_objects(objects).await.unwrap();
    let ids: Vec<&str> = found.iter().map(|o| o.id.as_str()).collect();
    assert_eq!((ids, total), (vec!["o1", "o3"], Some(3)));
    // Others' private fields are invisible to filters and sorts; one's own are not.
    let users = |src: &str| UserQuery {
        caller: Some("u1".into()),
        public_fields: vec!["name".into()],
        filter: filter(src),
        order: Order::by(&[("name".into(), true)]).unwrap(),
        limit: 10,
        offset: 0,
        count: true,
    };
    let ids = |found: Vec<crate::store::UserRecord>| -> Vec<String> {
        found.into_iter().map(|u| u.id).collect()
    };
    let (found, total) = store.query_users(users("EXISTS(name)")).await.unwrap();
    assert_eq!(
        (ids(found), total),
        (vec!["u2".into(), "u1".into()], Some(2))
    );
    let (found, _) = store
        .query_users(users("STARTSWITH(secret, 's')"))
        .await
        .unwrap();
    assert_eq!(ids(found), ["u1"]);
    let (found, _) = store
        .query_users(users(
            "email == 'ada@example.com' || email == 'bob@example.com'",
        ))
        .await
        .unwrap();
    assert_eq!(ids(found), ["u1"]);
}
