//! Copies, moves and bulk deletes (protocol.md §6.6): what a caller may copy, move and delete,
//! how names are numbered and bytes carried.

use serde_json::{Value, json};

use crate::storage_lists::{bucket, names, put, search, spawn_config, user};
use crate::support::TestApp;

#[tokio::test]
async fn delete_files_removes_only_the_callers_files_and_their_bytes() {
    let app = TestApp::spawn_with(spawn_config()).await;
    let (_, me) = user(&app).await;
    let (_, other) = user(&app).await;
    put(&app, &me, "root", "a.txt", "a", true).await;
    let b = put(&app, &me, "root", "b.txt", "b", false).await;
    put(&app, &me, "root", "c.txt", "c", true).await;
    put(&app, &other, "root", "d.txt", "d", true).await;
    let blobs = app.blobs().await.len();
    app.post_as(
        "/storage/bucket/delete-files",
        json!({ "bucket": "root", "fileNamesOrIds": ["a.txt", b["_id"], "d.txt", "no-such-file"] }),
        Some(&me),
    )
    .await
    .assert_ok();
    assert_eq!(
        app.blobs().await.len(),
        blobs - 2,
        "the bytes went with the metadata"
    );
    let left = search(&app, Some(&me), Value::Null, Value::Null).await;
    let mut left: Vec<&str> = names(left.assert_ok());
    left.sort_unstable();
    assert_eq!(left, ["c.txt", "d.txt"], "another user's file stays");
}

#[tokio::test]
async fn a_copy_of_lost_bytes_is_404_and_leaves_no_metadata() {
    let app = TestApp::spawn_with(spawn_config()).await;
    let (_, me) = user(&app).await;
    put(&app, &me, "root", "photo.png", "pixels", true).await;
    app.lose_every_blob().await;
    app.post_as(
        "/storage/bucket/file/duplicate",
        json!({ "bucket": "root", "file": "photo.png" }),
        Some(&me),
    )
    .await
    .assert_error(404, "file_not_found");
    let left = search(&app, Some(&me), Value::Null, Value::Null).await;
    assert_eq!(names(left.assert_ok()), ["photo.png"], "no copy recorded");
    assert!(app.blobs().await.is_empty(), "{:?}", app.blobs().await);
}

#[tokio::test]
async fn duplicate_copy_and_move_number_names_and_copy_the_bytes() {
    let app = TestApp::spawn_with(spawn_config()).await;
    let (me_id, me) = user(&app).await;
    let photo = put(&app, &me, "root", "photo.png", "pixels", true).await;
    let dest = bucket(&app, &me, "dest", true).await;
    put(&app, &me, "dest", "photo.png", "older", true).await;
    let blobs = app.blobs().await.len();
    let call = |path: &'static str, body: Value| app.post_as(path, body, Some(&me));

    let dup = call(
        "/storage/bucket/file/duplicate",
        json!({ "bucket": "root", "file": "photo.png" }),
    )
    .await;
    let dup = dup.assert_ok().clone();
    assert_eq!(dup["fileName"], "photo-1.png");
    assert_ne!(dup["_id"], photo["_id"]);
    assert_eq!(
        (dup["bucketId"].clone(), dup["size"].clone()),
        (photo["bucketId"].clone(), photo["size"].clone())
    );
    let named = call(
        "/storage/bucket/file/duplicate",
        json!({ "bucket": "root", "file": photo["_id"], "duplicateName": "other.png" }),
    )
    .await;
    let named = named.assert_ok().clone();
    assert_eq!(named["fileName"], "other.png");

    let copy = call(
        "/storage/bucket/file/copy",
        json!({ "bucket": "root", "file": "photo.png", "bucketNameOrId": "dest" }),
    )
    .await;
    let copy = copy.assert_ok().clone();
    assert_eq!(
        (copy["fileName"].clone(), copy["bucketId"].clone()),
        (json!("photo-1.png"), dest["_id"].clone())
    );
    assert_eq!(copy["userId"], me_id.as_str());
    assert_eq!(
        app.blobs().await.len(),
        blobs + 3,
        "each copy has its own blob"
    );

    let moved = call(
        "/storage/bucket/file/move",
        json!({ "bucket": "root", "file": "other.png", "bucketNameOrId": dest["_id"] }),
    )
    .await;
    let moved = moved.assert_ok().clone();
    assert_eq!(
        (moved["_id"].clone(), moved["bucketId"].clone()),
        (named["_id"].clone(), dest["_id"].clone())
    );
    call(
        "/storage/bucket/file/get",
        json!({ "bucket": "root", "file": "other.png" }),
    )
    .await
    .assert_error(404, "file_not_found");
    // Moving a file onto a taken name numbers it too (the moved name, `photo-1.png`).
    let again = call(
        "/storage/bucket/file/move",
        json!({ "bucket": "root", "file": "photo-1.png", "bucketNameOrId": "dest" }),
    )
    .await;
    assert_eq!(again.assert_ok()["fileName"], "photo-1-1.png");
    assert_eq!(app.blobs().await.len(), blobs + 3, "moves copy no bytes");

    // Copies outlive their source.
    call(
        "/storage/bucket/file/delete",
        json!({ "bucket": "root", "file": "photo.png" }),
    )
    .await
    .assert_ok();
    for file in [&copy, &moved] {
        let served = reqwest::get(file["publicPath"].as_str().unwrap())
            .await
            .unwrap();
        assert_eq!(served.status(), 200);
        assert_eq!(served.text().await.unwrap(), "pixels");
    }
}

#[tokio::test]
async fn copies_keep_the_sources_privacy_and_others_private_files_stay_out_of_reach() {
    let app = TestApp::spawn_with(spawn_config()).await;
    let (_, me) = user(&app).await;
    let (_, other) = user(&app).await;
    bucket(&app, &me, "open", true).await;
    bucket(&app, &me, "closed", false).await;
    put(&app, &me, "root", "secret.txt", "s", false).await;
    put(&app, &me, "root", "notice.txt", "n", true).await;

    let copy = app
        .post_as(
            "/storage/bucket/file/copy",
            json!({ "bucket": "root", "file": "secret.txt", "bucketNameOrId": "open" }),
            Some(&me),
        )
        .await;
    assert_eq!(
        copy.assert_ok()["isPublic"],
        false,
        "a copy never becomes public by its bucket"
    );
    let copy = app
        .post_as(
            "/storage/bucket/file/copy",
            json!({ "bucket": "root", "file": "notice.txt", "bucketNameOrId": "closed" }),
            Some(&me),
        )
        .await;
    assert_eq!(copy.assert_ok()["isPublic"], true);

    for path in [
        "/storage/bucket/file/copy",
        "/storage/bucket/file/move",
        "/storage/bucket/file/duplicate",
    ] {
        app.post_as(
            path,
            json!({ "bucket": "root", "file": "secret.txt", "bucketNameOrId": "root" }),
            Some(&other),
        )
        .await
        .assert_error(404, "file_not_found");
    }
    app.post_as(
        "/storage/bucket/file/move",
        json!({ "bucket": "root", "file": "notice.txt", "bucketNameOrId": "open" }),
        Some(&other),
    )
    .await
    .assert_error(403, "not_allowed");
    // Another user's public file may be copied: the copy is theirs.
    let theirs = app
        .post_as(
            "/storage/bucket/file/copy",
            json!({ "bucket": "root", "file": "notice.txt", "bucketNameOrId": "root" }),
            Some(&other),
        )
        .await;
    assert_eq!(theirs.assert_ok()["fileName"], "notice-1.txt");
    let mine = search(
        &app,
        Some(&me),
        json!("fileName == 'secret.txt'"),
        Value::Null,
    )
    .await;
    assert_eq!(
        mine.assert_ok().as_array().unwrap().len(),
        2,
        "original and copy, untouched"
    );
}
