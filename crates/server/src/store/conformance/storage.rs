//! Conformance cases of the storage list calls: the read rule, filters, sorts and pages in the
//! store, totals, bulk deletes of one's own files.

use super::{NOW, file, user};
use crate::store::{BucketRecord, FileRecord, Filter, Order, StorageQuery, Store};

/// Users `u1` and `u2`; a private bucket of each; in root a public file of `u1` (`a.png`, 3
/// bytes), a private one of `u1` (`b.png`, 5 bytes) and a private one of `u2` (`c.png`, 7 bytes).
async fn storage_fixture(store: &dyn Store) -> String {
    store
        .insert_user(user("u1", "ada@example.com"), None, None)
        .await
        .unwrap();
    store
        .insert_user(user("u2", "bob@example.com"), None, None)
        .await
        .unwrap();
    for (id, owner) in [("b1", "u1"), ("b2", "u2")] {
        store
            .insert_bucket(BucketRecord {
                id: id.into(),
                name: format!("bucket-{id}"),
                is_public: false,
                user_id: Some(owner.into()),
                tags: Vec::new(),
                created_at: NOW,
                updated_at: NOW,
            })
            .await
            .unwrap();
    }
    let root = store.bucket("root").await.unwrap().unwrap().id;
    for (id, name, owner, public, size) in [
        ("f1", "a.png", "u1", true, 3),
        ("f2", "b.png", "u1", false, 5),
        ("f3", "c.png", "u2", false, 7),
    ] {
        let mut f = file(id, &root, name);
        f.user_id = Some(owner.into());
        f.is_public = public;
        f.size = size;
        f.uploaded_at = NOW + size;
        store.insert_file(f).await.unwrap();
    }
    root
}

fn listing(reader: Option<&str>) -> StorageQuery {
    StorageQuery {
        reader: reader.map(String::from),
        bucket_id: None,
        public_base: "http://x.test".into(),
        filter: None,
        order: Order::by_id(),
        limit: 100,
        offset: 0,
        count: true,
    }
}

fn ids<T>(rows: &[T], id: impl Fn(&T) -> &str) -> Vec<String> {
    let mut ids: Vec<String> = rows.iter().map(|r| id(r).to_string()).collect();
    ids.sort();
    ids
}

pub(super) async fn storage_lists_show_public_rows_and_the_readers_own(store: &dyn Store) {
    let root = storage_fixture(store).await;
    let (files, count) = store.query_files(listing(None)).await.unwrap();
    assert_eq!(
        (ids(&files, |f| &f.id), count),
        (vec!["f1".into()], Some(1))
    );
    let (files, _) = store.query_files(listing(Some("u1"))).await.unwrap();
    assert_eq!(ids(&files, |f| &f.id), ["f1", "f2"]);
    let (files, _) = store.query_files(listing(Some("u2"))).await.unwrap();
    assert_eq!(ids(&files, |f| &f.id), ["f1", "f3"]);
    let (buckets, _) = store.query_buckets(listing(None)).await.unwrap();
    assert_eq!(ids(&buckets, |b| &b.id), std::slice::from_ref(&root));
    let (buckets, _) = store.query_buckets(listing(Some("u2"))).await.unwrap();
    let mut expected = vec!["b2".to_string(), root];
    expected.sort();
    assert_eq!(ids(&buckets, |b| &b.id), expected);
    let in_b1 = StorageQuery {
        bucket_id: Some("b1".into()),
        ..listing(Some("u1"))
    };
    assert!(store.query_files(in_b1).await.unwrap().0.is_empty());
}

pub(super) async fn storage_lists_filter_sort_and_page_in_the_store(store: &dyn Store) {
    storage_fixture(store).await;
    let filtered = |expr: &str, sort: &[(&str, bool)], limit: u32, offset: u64| StorageQuery {
        filter: Some(Filter::compile(&crate::expr::parse(expr).unwrap()).unwrap()),
        order: Order::by(
            &sort
                .iter()
                .map(|(f, d)| ((*f).to_string(), *d))
                .collect::<Vec<_>>(),
        )
        .unwrap(),
        limit,
        offset,
        ..listing(Some("u1"))
    };
    let names = |files: &[FileRecord]| -> Vec<String> {
        files.iter().map(|f| f.file_name.clone()).collect()
    };
    let (files, count) = store
        .query_files(filtered("size > 1", &[("size", true)], 1, 1))
        .await
        .unwrap();
    assert_eq!((names(&files), count), (vec!["a.png".into()], Some(2)));
    let (files, _) = store
        .query_files(filtered(
            "!isPublic && INCLUDES(publicPath, 'http://x.test/_storage/') && IN(tags, 'a')",
            &[],
            10,
            0,
        ))
        .await
        .unwrap();
    assert_eq!(names(&files), ["b.png"]);
    let (files, _) = store
        .query_files(filtered(
            "uploadedAt > '2000-01-01T00:00:00.000Z' && fileName != 'x'",
            &[("uploadedAt", true)],
            10,
            0,
        ))
        .await
        .unwrap();
    assert_eq!(names(&files), ["b.png", "a.png"]);
    let (buckets, _) = store
        .query_buckets(filtered(
            "name == 'bucket-b1' && userId == 'u1'",
            &[],
            10,
            0,
        ))
        .await
        .unwrap();
    assert_eq!(ids(&buckets, |b| &b.id), ["b1"]);
}

pub(super) async fn storage_stats_total_what_the_reader_may_read(store: &dyn Store) {
    let root = storage_fixture(store).await;
    let stats = store.storage_stats(Some("u1"), None).await.unwrap();
    assert_eq!((stats.buckets, stats.files, stats.total_size), (2, 2, 8));
    assert_eq!((stats.min_size, stats.max_size), (3, 5));
    assert!((stats.average_size - 4.0).abs() < f64::EPSILON);
    let anonymous = store.storage_stats(None, Some(&root)).await.unwrap();
    assert_eq!(
        (anonymous.buckets, anonymous.files, anonymous.total_size),
        (1, 1, 3)
    );
    let empty = store.storage_stats(Some("u1"), Some("b1")).await.unwrap();
    assert_eq!(
        (
            empty.files,
            empty.total_size,
            empty.min_size,
            empty.max_size
        ),
        (0, 0, 0, 0)
    );
    assert!(empty.average_size.abs() < f64::EPSILON);
}

pub(super) async fn only_owned_files_are_deleted_by_id_or_name(store: &dyn Store) {
    let root = storage_fixture(store).await;
    let keys = store
        .delete_owned_files(
            &root,
            "u1",
            vec![
                "f1".into(),
                "b.png".into(),
                "c.png".into(),
                "nothing".into(),
            ],
        )
        .await
        .unwrap();
    let mut keys = keys;
    keys.sort();
    assert_eq!(keys, [format!("{root}/f1"), format!("{root}/f2")]);
    assert!(store.file(&root, "f1").await.unwrap().is_none());
    assert!(store.file(&root, "f3").await.unwrap().is_some());
    assert!(
        store
            .delete_owned_files("b1", "u1", vec!["f3".into()])
            .await
            .unwrap()
            .is_empty()
    );
}
