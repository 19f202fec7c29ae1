//! Uploads and public paths (protocol.md §6.3, §6.7, SECURITY.md "Files").

use reqwest::StatusCode;
use reqwest::multipart::{Form, Part};
use serde_json::{Value, json};

use crate::support::{KEY, PASSWORD, TestApp, email};

/// A valid 1×1 PNG.
const PNG: &[u8] = &[
    0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x48, 0x44, 0x52,
    0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01, 0x08, 0x06, 0x00, 0x00, 0x00, 0x1f, 0x15, 0xc4,
    0x89, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x44, 0x41, 0x54, 0x78, 0x9c, 0x63, 0xf8, 0xcf, 0xc0, 0xf0,
    0x1f, 0x00, 0x05, 0x00, 0x01, 0xff, 0x89, 0x99, 0x3d, 0x1d, 0x00, 0x00, 0x00, 0x00, 0x49, 0x45,
    0x4e, 0x44, 0xae, 0x42, 0x60, 0x82,
];

const OPTIONS: &str =
    "%7B%22contentType%22%3A%22text%2Fplain%3Bcharset%3DUTF-8%22%2C%22createBucket%22%3Afalse%7D";

async fn user(app: &TestApp) -> (String, String) {
    let body = app.sign_up(&email(), PASSWORD).await.body;
    (
        body["user"]["_id"].as_str().unwrap().to_string(),
        body["session"]["token"].as_str().unwrap().to_string(),
    )
}

async fn upload(
    app: &TestApp,
    token: Option<&str>,
    bucket: &str,
    name: &str,
    bytes: Vec<u8>,
    mime: &str,
) -> (StatusCode, Value) {
    let part = Part::bytes(bytes).file_name("blob").mime_str(mime).unwrap();
    let mut req = app
        .http
        .post(app.api(&format!(
            "/storage/bucket/upload-formdata?bucket={bucket}&fileName={name}&options={OPTIONS}"
        )))
        .header("X-Client-Key", KEY)
        .multipart(Form::new().part("file", part));
    if let Some(token) = token {
        req = req.header("Session", token);
    }
    let response = req.send().await.unwrap();
    let status = response.status();
    (status, response.json().await.unwrap())
}

fn spawn_with_files() -> impl FnOnce(&mut basalt::config::Config) {
    |c| {
        c.auth.email_verification = false;
        c.storage.max_file_bytes = 64 * 1024;
    }
}

#[tokio::test]
async fn an_avatar_upload_is_served_at_its_public_path() {
    let app = TestApp::spawn_with(spawn_with_files()).await;
    let (id, token) = user(&app).await;
    let name = format!("user_{id}");
    let (status, file) = upload(&app, Some(&token), "root", &name, PNG.to_vec(), "image/png").await;
    assert_eq!(status, 200, "{file}");
    assert_eq!(file["fileName"], name.as_str());
    assert_eq!(file["mimeType"], "image/png");
    assert_eq!(file["size"], PNG.len());
    assert_eq!(file["isPublic"], true);
    assert_eq!(file["userId"], id.as_str());
    assert_eq!(file["encoding"], "7bit");
    let path = file["publicPath"].as_str().unwrap();
    assert!(
        path.starts_with(&format!("{}/_storage/", app.url)),
        "{path}"
    );
    let served = reqwest::get(path).await.unwrap();
    assert_eq!(served.status(), 200);
    let h = served.headers().clone();
    assert_eq!(h["content-type"], "image/png");
    assert_eq!(h["content-disposition"], "inline");
    assert_eq!(h["x-content-type-options"], "nosniff");
    assert_eq!(h["content-security-policy"], "default-src 'none'; sandbox");
    assert_eq!(served.bytes().await.unwrap().as_ref(), PNG);
    // Uploading the same name again succeeds under a new name.
    let (_, again) = upload(&app, Some(&token), "root", &name, PNG.to_vec(), "image/png").await;
    assert_eq!(again["fileName"], format!("{name}-1"));
    assert_ne!(again["publicPath"], file["publicPath"]);
}

#[tokio::test]
async fn conditional_and_range_requests() {
    let app = TestApp::spawn_with(spawn_with_files()).await;
    let (_, token) = user(&app).await;
    let (_, file) = upload(
        &app,
        Some(&token),
        "root",
        "notes.txt",
        b"hello, world".to_vec(),
        "text/plain",
    )
    .await;
    let path = file["publicPath"].as_str().unwrap();
    let client = reqwest::Client::new();
    let full = client.get(path).send().await.unwrap();
    let etag = full.headers()["etag"].to_str().unwrap().to_string();
    assert!(
        full.headers()["content-disposition"]
            .to_str()
            .unwrap()
            .starts_with("attachment")
    );
    let cached = client
        .get(path)
        .header("If-None-Match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(cached.status(), 304);
    let part = client
        .get(path)
        .header("Range", "bytes=7-11")
        .send()
        .await
        .unwrap();
    assert_eq!(part.status(), 206);
    assert_eq!(part.headers()["content-range"], "bytes 7-11/12");
    assert_eq!(part.bytes().await.unwrap().as_ref(), b"world");
    let suffix = client
        .get(path)
        .header("Range", "bytes=-5")
        .send()
        .await
        .unwrap();
    assert_eq!(suffix.bytes().await.unwrap().as_ref(), b"world");
    let outside = client
        .get(path)
        .header("Range", "bytes=50-60")
        .send()
        .await
        .unwrap();
    assert_eq!(outside.status(), 416);
    let body: Value = outside.json().await.unwrap();
    assert_eq!(body["errors"][0]["code"], "range_not_satisfiable");
}

#[tokio::test]
async fn html_is_never_served_inline() {
    let app = TestApp::spawn_with(spawn_with_files()).await;
    let (_, token) = user(&app).await;
    let html = b"<script>alert(1)</script>".to_vec();
    for (name, mime) in [("page.html", "text/html"), ("icon.svg", "image/svg+xml")] {
        let (_, file) = upload(&app, Some(&token), "root", name, html.clone(), mime).await;
        let served = reqwest::get(file["publicPath"].as_str().unwrap())
            .await
            .unwrap();
        let h = served.headers();
        assert!(
            h["content-disposition"]
                .to_str()
                .unwrap()
                .starts_with("attachment"),
            "{name}"
        );
        assert_eq!(h["content-security-policy"], "default-src 'none'; sandbox");
    }
}

#[tokio::test]
async fn an_oversized_upload_is_413_and_leaves_nothing() {
    let app = TestApp::spawn_with(spawn_with_files()).await;
    let (_, token) = user(&app).await;
    let (status, body) = upload(
        &app,
        Some(&token),
        "root",
        "big.bin",
        vec![7u8; 100 * 1024],
        "application/octet-stream",
    )
    .await;
    assert_eq!(status, 413);
    assert_eq!(body["errors"][0]["code"], "file_too_large");
    let (_, small) = upload(
        &app,
        Some(&token),
        "root",
        "big.bin",
        vec![7u8; 10],
        "application/octet-stream",
    )
    .await;
    assert_eq!(
        small["fileName"], "big.bin",
        "the failed upload left no name behind"
    );
    assert_eq!(
        app.blobs().await.len(),
        1,
        "no blob of the failed upload: {:?}",
        app.blobs().await
    );
    // A body declared larger than the limit is refused before it is stored, readably.
    let (status, body) = upload(
        &app,
        Some(&token),
        "root",
        "huge.bin",
        vec![7u8; 1024 * 1024],
        "application/octet-stream",
    )
    .await;
    assert_eq!(status, 413);
    assert_eq!(body["errors"][0]["code"], "file_too_large");
    assert_eq!(app.blobs().await.len(), 1);
}

/// Reads one HTTP/1.1 answer with a `Content-Length` body off `stream`: its head, or `None`
/// when the server closed the connection (or reset it) first.
async fn read_answer(stream: &mut tokio::net::TcpStream) -> Option<String> {
    use tokio::io::AsyncReadExt;
    let mut buf = Vec::new();
    loop {
        let text = String::from_utf8_lossy(&buf).to_string();
        if let Some(end) = text.find("\r\n\r\n") {
            let head = text[..end].to_ascii_lowercase();
            let length: usize = head
                .lines()
                .find_map(|line| line.strip_prefix("content-length:"))
                .map_or(0, |value| value.trim().parse().unwrap());
            if buf.len() >= end + 4 + length {
                return Some(head);
            }
        }
        let mut chunk = [0u8; 4096];
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

#[tokio::test]
async fn an_upload_whose_end_comes_late_keeps_the_connection() {
    // Clients stream a form part by part: the closing `--boundary--`, the line break after it
    // or the end of a chunked body may reach the server in a packet of its own after the
    // file's bytes. The upload must read the body to its end before answering, or the server
    // drops the connection the client is about to send its next request down.
    let app = TestApp::spawn_with(spawn_with_files()).await;
    let (_, token) = user(&app).await;
    let part =
        b"--b0undary\r\nContent-Disposition: form-data; name=\"file\"; filename=\"blob\"\r\n\
        Content-Type: image/png\r\n\r\n";
    let body = [&part[..], PNG, b"\r\n--b0undary--\r\n"].concat();
    for (tail, chunked) in [
        ("--\r\n", false),
        ("\r\n", false),
        ("--\r\n", true),
        ("\r\n", true),
        ("", true),
    ] {
        let (sent, late) = body.split_at(body.len() - tail.len());
        let case = format!("{tail:?} late, chunked: {chunked}");
        upload_in_two_packets(&app, &token, sent, late, chunked, &case).await;
    }
}

/// Uploads `first` then, after a pause long enough for the server to answer early, `late`,
/// as one body (a chunk each when `chunked`, the end of the chunked body after `late`), and
/// checks that the answer is 200 and the connection serves another request.
async fn upload_in_two_packets(
    app: &TestApp,
    token: &str,
    first: &[u8],
    late: &[u8],
    chunked: bool,
    case: &str,
) {
    use tokio::io::AsyncWriteExt;
    let addr = app.url.trim_start_matches("http://").to_string();
    let path = "/_api/rest/v1/storage/bucket/upload-formdata?bucket=root&fileName=late.png";
    let chunk = |bytes: &[u8]| {
        if chunked && !bytes.is_empty() {
            [format!("{:x}\r\n", bytes.len()).as_bytes(), bytes, b"\r\n"].concat()
        } else {
            bytes.to_vec()
        }
    };
    let (framing, first, mut late) = if chunked {
        (
            "Transfer-Encoding: chunked".to_string(),
            chunk(first),
            chunk(late),
        )
    } else {
        (
            format!("Content-Length: {}", first.len() + late.len()),
            first.to_vec(),
            late.to_vec(),
        )
    };
    if chunked {
        late.extend_from_slice(b"0\r\n\r\n");
    }
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nX-Client-Key: {KEY}\r\nSession: {token}\r\n\
         Content-Type: multipart/form-data; boundary=b0undary\r\n{framing}\r\n\r\n"
    );
    let mut stream = tokio::net::TcpStream::connect(&addr).await.unwrap();
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(&first).await.unwrap();
    // Give the server the chance to answer early (the bug this test is about), then finish.
    let early = tokio::time::timeout(
        std::time::Duration::from_millis(300),
        read_answer(&mut stream),
    )
    .await;
    let _ = stream.write_all(&late).await;
    let upload = match early {
        Ok(answer) => answer,
        Err(_) => read_answer(&mut stream).await,
    };
    let upload = upload.unwrap_or_else(|| panic!("{case}: no answer to the upload"));
    assert!(upload.starts_with("http/1.1 200"), "{case}: {upload}");
    assert!(!upload.contains("connection: close"), "{case}: {upload}");

    let _ = stream
        .write_all(format!("GET /health HTTP/1.1\r\nHost: {addr}\r\n\r\n").as_bytes())
        .await;
    let health = read_answer(&mut stream).await;
    assert!(
        health
            .as_deref()
            .is_some_and(|h| h.starts_with("http/1.1 200")),
        "{case}: the next request on the same connection: {health:?}"
    );
}

#[tokio::test]
async fn upload_errors_are_clear() {
    let app = TestApp::spawn_with(spawn_with_files()).await;
    let (_, token) = user(&app).await;
    let (status, body) = upload(
        &app,
        Some(&token),
        "nope",
        "a.png",
        PNG.to_vec(),
        "image/png",
    )
    .await;
    assert_eq!(
        (status.as_u16(), &body["errors"][0]["code"]),
        (400, &Value::from("bucket_not_found"))
    );
    assert_eq!(
        body["errors"][0]["message"],
        "Cannot identify the bucket 'nope'"
    );
    let (status, body) = upload(&app, None, "root", "a.png", PNG.to_vec(), "image/png").await;
    assert_eq!(
        (status.as_u16(), &body["errors"][0]["code"]),
        (401, &Value::from("missing_session_token"))
    );
    // A refused upload closes its connection: clients must not reuse a socket whose request
    // body the server may not have read to the end.
    let part = Part::bytes(PNG.to_vec())
        .file_name("blob")
        .mime_str("image/png")
        .unwrap();
    let refused = app
        .http
        .post(app.api(&format!(
            "/storage/bucket/upload-formdata?bucket=root&fileName=a.png&options={OPTIONS}"
        )))
        .header("X-Client-Key", KEY)
        .multipart(Form::new().part("file", part))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.headers()["connection"], "close");
    for name in ["..%2F..%2Fetc%2Fpasswd", "a%00b", "line%0Abreak"] {
        let (status, body) =
            upload(&app, Some(&token), "root", name, PNG.to_vec(), "image/png").await;
        assert_eq!(
            (status.as_u16(), &body["errors"][0]["code"]),
            (400, &Value::from("validation_error")),
            "{name}"
        );
    }
    // No file part.
    let response = app
        .http
        .post(app.api(&format!(
            "/storage/bucket/upload-formdata?bucket=root&fileName=x&options={OPTIONS}"
        )))
        .header("X-Client-Key", KEY)
        .header("Session", &token)
        .multipart(Form::new().text("other", "value"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["errors"][0]["code"], "missing_required_value");
    // Not multipart at all.
    let response = app
        .http
        .post(app.api("/storage/bucket/upload-formdata?bucket=root&fileName=x"))
        .header("X-Client-Key", KEY)
        .header("Session", &token)
        .json(&serde_json::json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    // Missing fileName.
    let (status, body) = upload(&app, Some(&token), "root", "", PNG.to_vec(), "image/png").await;
    assert_eq!(
        (status.as_u16(), &body["errors"][0]["code"]),
        (400, &Value::from("missing_required_value"))
    );
}

#[tokio::test]
async fn unknown_files_are_404_json() {
    let app = TestApp::spawn().await;
    let response = reqwest::get(format!(
        "{}/_storage/000000000000000000000000/111111111111111111111111",
        app.url
    ))
    .await
    .unwrap();
    assert_eq!(response.status(), 404);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["errors"][0]["code"], "file_not_found");
}

#[tokio::test]
async fn private_uploads_are_refused_at_the_public_path() {
    let app = TestApp::spawn_with(spawn_with_files()).await;
    let (_, token) = user(&app).await;
    let private = "%7B%22isPublic%22%3Afalse%7D";
    let part = Part::bytes(PNG.to_vec())
        .file_name("a.png")
        .mime_str("image/png")
        .unwrap();
    let file: Value = app
        .http
        .post(app.api(&format!(
            "/storage/bucket/upload-formdata?bucket=root&fileName=private.png&options={private}"
        )))
        .header("X-Client-Key", KEY)
        .header("Session", &token)
        .multipart(Form::new().part("file", part))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(file["isPublic"], false);
    let path = file["publicPath"].as_str().unwrap();
    let refused = reqwest::get(path).await.unwrap();
    assert_eq!(refused.status(), 403);
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["errors"][0]["code"], "file_not_public");
    let owner = app
        .http
        .get(path)
        .header("Session", &token)
        .send()
        .await
        .unwrap();
    assert_eq!(owner.status(), 200);
}

/// Upload `bytes` in 64 KiB chunks with no length announced (chunked transfer), as a large
/// file from a browser may arrive: the server learns the size only as the bytes come.
async fn stream_upload(
    app: &TestApp,
    token: &str,
    name: &str,
    bytes: &[u8],
) -> (StatusCode, Value) {
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        bytes.chunks(64 * 1024).map(|c| Ok(c.to_vec())).collect();
    let body = reqwest::Body::wrap_stream(tokio_stream::iter(chunks));
    let part = Part::stream(body)
        .file_name("blob")
        .mime_str("application/octet-stream")
        .unwrap();
    let response = app
        .http
        .post(app.api(&format!(
            "/storage/bucket/upload-formdata?bucket=root&fileName={name}"
        )))
        .header("X-Client-Key", KEY)
        .header("Session", token)
        .multipart(Form::new().part("file", part))
        .send()
        .await
        .unwrap();
    let status = response.status();
    (status, response.json().await.unwrap())
}

#[tokio::test]
async fn large_uploads_stream_in_parts_and_an_oversized_one_leaves_no_part_behind() {
    let app = TestApp::spawn_with(|c| {
        c.auth.email_verification = false;
        c.storage.max_file_bytes = 8 * 1024 * 1024;
    })
    .await;
    let (_, token) = user(&app).await;
    // 7 MiB: a multipart upload of a 5 MiB part and a 2 MiB one.
    let bytes: Vec<u8> = (0..7 * 1024 * 1024).map(|i| (i % 253) as u8).collect();
    let (status, file) = stream_upload(&app, &token, "large.bin", &bytes).await;
    assert_eq!(status, 200, "{file}");
    assert_eq!(file["size"], bytes.len());
    let path = file["publicPath"].as_str().unwrap();
    let client = reqwest::Client::new();
    let served = client.get(path).send().await.unwrap();
    let etag = served.headers()["etag"].to_str().unwrap().to_string();
    assert_eq!(served.bytes().await.unwrap().as_ref(), bytes.as_slice());
    // A range across the parts' boundary, and the ETag still the blob key's.
    let boundary = 5 * 1024 * 1024;
    let part = client
        .get(path)
        .header("Range", format!("bytes={}-{}", boundary - 10, boundary + 9))
        .send()
        .await
        .unwrap();
    assert_eq!(part.status(), 206);
    assert_eq!(part.headers()["etag"].to_str().unwrap(), etag);
    assert_eq!(
        part.bytes().await.unwrap().as_ref(),
        &bytes[boundary - 10..boundary + 10]
    );
    // A long range from an odd offset (read in several pieces from S3).
    let long = client
        .get(path)
        .header("Range", "bytes=1001-6300000")
        .send()
        .await
        .unwrap();
    assert_eq!(long.status(), 206);
    assert_eq!(
        long.bytes().await.unwrap().as_ref(),
        &bytes[1001..=6_300_000]
    );
    let cached = client
        .get(path)
        .header("If-None-Match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(cached.status(), 304);
    assert_eq!(app.blobs().await.len(), 1);
    // 12 MiB against an 8 MiB limit: refused after a part went up; nothing stays, neither an
    // object nor an unfinished multipart upload.
    let over: Vec<u8> = vec![9u8; 12 * 1024 * 1024];
    let (status, body) = stream_upload(&app, &token, "over.bin", &over).await;
    assert_eq!(status, 413, "{body}");
    assert_eq!(body["errors"][0]["code"], "file_too_large");
    assert_eq!(app.blobs().await.len(), 1, "{:?}", app.blobs().await);
    // A client that goes away after 6 MiB: the server sees the body fail and aborts.
    let mut chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        (0..96).map(|_| Ok(vec![3u8; 64 * 1024])).collect();
    chunks.push(Err(std::io::Error::other("client gone")));
    let part = Part::stream(reqwest::Body::wrap_stream(tokio_stream::iter(chunks)))
        .file_name("blob")
        .mime_str("application/octet-stream")
        .unwrap();
    let sent = app
        .http
        .post(app.api("/storage/bucket/upload-formdata?bucket=root&fileName=cut.bin"))
        .header("X-Client-Key", KEY)
        .header("Session", &token)
        .multipart(Form::new().part("file", part))
        .send()
        .await;
    assert!(sent.is_err(), "the client's body failed");
    let mut left = app.blobs().await;
    for _ in 0..100 {
        if left.len() == 1 {
            break;
        }
        // The server notices the broken connection on its own time.
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        left = app.blobs().await;
    }
    assert_eq!(left.len(), 1, "{left:?}");
}

#[tokio::test]
async fn files_of_several_megabytes_upload_within_the_default_limit() {
    let app = TestApp::spawn_with(|c| c.auth.email_verification = false).await;
    let (_, token) = user(&app).await;
    let bytes: Vec<u8> = (0..3 * 1024 * 1024).map(|i| (i % 251) as u8).collect();
    let (status, file) = upload(
        &app,
        Some(&token),
        "root",
        "big.bin",
        bytes.clone(),
        "application/octet-stream",
    )
    .await;
    assert_eq!(status, 200, "{file}");
    assert_eq!(file["size"], bytes.len());
    let served = reqwest::get(file["publicPath"].as_str().unwrap())
        .await
        .unwrap();
    assert_eq!(served.bytes().await.unwrap().as_ref(), bytes.as_slice());
}

async fn storage(
    app: &TestApp,
    token: Option<&str>,
    path: &str,
    body: Value,
) -> crate::support::Answer {
    app.post_as(path, body, token).await
}

#[tokio::test]
async fn file_calls_get_exists_download_and_delete() {
    let app = TestApp::spawn_with(spawn_with_files()).await;
    let (_, me) = user(&app).await;
    let (_, other) = user(&app).await;
    let (_, file) = upload(
        &app,
        Some(&me),
        "root",
        "notes.txt",
        b"hello".to_vec(),
        "text/plain",
    )
    .await;
    let id = file["_id"].as_str().unwrap();
    for key in [id, "notes.txt"] {
        let info = storage(
            &app,
            None,
            "/storage/bucket/file/get",
            serde_json::json!({ "bucket": "root", "file": key }),
        )
        .await;
        assert_eq!(info.assert_ok()["_id"], id);
        let exists = storage(
            &app,
            None,
            "/storage/bucket/file/exists",
            serde_json::json!({ "bucket": "root", "file": key }),
        )
        .await;
        assert_eq!(exists.assert_ok(), &Value::Bool(true));
    }
    let missing = storage(
        &app,
        None,
        "/storage/bucket/file/exists",
        serde_json::json!({ "bucket": "root", "file": "nope" }),
    )
    .await;
    assert_eq!(missing.assert_ok(), &Value::Bool(false));
    let download = app
        .http
        .post(app.api("/storage/bucket/file/download"))
        .header("X-Client-Key", KEY)
        .json(&serde_json::json!({ "bucket": "root", "file": "notes.txt" }))
        .send()
        .await
        .unwrap();
    assert_eq!(download.status(), 200);
    assert_eq!(download.bytes().await.unwrap().as_ref(), b"hello");
    // Someone else cannot delete it; the owner can, by name or by its public path.
    storage(
        &app,
        Some(&other),
        "/storage/bucket/file/delete",
        serde_json::json!({ "bucket": "root", "file": id }),
    )
    .await
    .assert_error(403, "not_allowed");
    storage(
        &app,
        Some(&other),
        "/storage/delete-file",
        serde_json::json!({ "fileUrl": file["publicPath"] }),
    )
    .await
    .assert_error(403, "not_allowed");
    storage(
        &app,
        Some(&me),
        "/storage/delete-file",
        serde_json::json!({ "fileUrl": file["publicPath"] }),
    )
    .await
    .assert_ok();
    let served = reqwest::get(file["publicPath"].as_str().unwrap())
        .await
        .unwrap();
    assert_eq!(served.status(), 404);
    assert!(
        app.blobs().await.is_empty(),
        "the bytes went with the metadata"
    );
    storage(
        &app,
        Some(&me),
        "/storage/delete-file",
        serde_json::json!({ "fileUrl": file["publicPath"] }),
    )
    .await
    .assert_error(404, "file_not_found");
    storage(
        &app,
        Some(&me),
        "/storage/delete-file",
        serde_json::json!({ "fileUrl": "nonsense" }),
    )
    .await
    .assert_error(404, "file_not_found");
}

#[tokio::test]
async fn buckets_are_created_found_and_unique() {
    let app = TestApp::spawn_with(spawn_with_files()).await;
    let (id, me) = user(&app).await;
    let created = storage(
        &app,
        Some(&me),
        "/storage/create-bucket",
        serde_json::json!({ "name": "avatars", "isPublic": false, "tags": "people" }),
    )
    .await;
    let bucket = created.assert_ok().clone();
    assert_eq!(
        (
            bucket["isPublic"].clone(),
            bucket["userId"].clone(),
            bucket["tags"].clone()
        ),
        (
            Value::Bool(false),
            Value::from(id.as_str()),
            serde_json::json!(["people"])
        )
    );
    for key in ["avatars", bucket["_id"].as_str().unwrap()] {
        let found = storage(
            &app,
            Some(&me),
            "/storage/bucket/get",
            serde_json::json!({ "bucket": key, "detailed": false }),
        )
        .await;
        assert_eq!(found.assert_ok()["name"], "avatars");
    }
    let exists = storage(
        &app,
        Some(&me),
        "/storage/bucket/exists",
        serde_json::json!({ "bucket": "avatars" }),
    )
    .await;
    assert_eq!(exists.assert_ok(), &Value::Bool(true));
    // A private bucket is its owner's: to others it does not exist.
    let hidden = storage(
        &app,
        None,
        "/storage/bucket/exists",
        serde_json::json!({ "bucket": "avatars" }),
    )
    .await;
    assert_eq!(hidden.assert_ok(), &Value::Bool(false));
    let missing = storage(
        &app,
        None,
        "/storage/bucket/exists",
        serde_json::json!({ "bucket": "nope" }),
    )
    .await;
    assert_eq!(missing.assert_ok(), &Value::Bool(false));
    for name in ["avatars", "root"] {
        storage(
            &app,
            Some(&me),
            "/storage/create-bucket",
            serde_json::json!({ "name": name }),
        )
        .await
        .assert_error(400, "bucket_not_unique");
    }
    storage(
        &app,
        Some(&me),
        "/storage/create-bucket",
        serde_json::json!({ "name": "../x" }),
    )
    .await
    .assert_error(400, "validation_error");
    storage(
        &app,
        None,
        "/storage/create-bucket",
        serde_json::json!({ "name": "anon" }),
    )
    .await
    .assert_error(401, "missing_session_token");
    // Files in a private bucket are private by default.
    let (_, file) = upload(
        &app,
        Some(&me),
        "avatars",
        "a.png",
        PNG.to_vec(),
        "image/png",
    )
    .await;
    assert_eq!(file["isPublic"], false);
    let refused = reqwest::get(file["publicPath"].as_str().unwrap())
        .await
        .unwrap();
    assert_eq!(refused.status(), 403);
    storage(
        &app,
        None,
        "/storage/bucket/get",
        serde_json::json!({ "bucket": "nope" }),
    )
    .await
    .assert_error(400, "bucket_not_found");
}

#[tokio::test]
async fn an_emptied_bucket_keeps_its_name_and_loses_its_files_and_their_bytes() {
    let app = TestApp::spawn_with(spawn_with_files()).await;
    let (_, me) = user(&app).await;
    let (_, other) = user(&app).await;
    app.post_as(
        "/storage/create-bucket",
        json!({ "name": "box" }),
        Some(&me),
    )
    .await
    .assert_ok();
    for (bucket, name) in [("box", "one.txt"), ("box", "two.txt"), ("root", "keep.txt")] {
        upload(&app, Some(&me), bucket, name, b"x".to_vec(), "text/plain").await;
    }
    let exists = |file: &'static str| {
        let (app, me) = (&app, me.clone());
        async move {
            app.post_as(
                "/storage/bucket/file/exists",
                json!({ "bucket": "box", "file": file }),
                Some(&me),
            )
            .await
            .assert_ok()
            .clone()
        }
    };
    let before = app.blobs().await.len();
    // Only the bucket's owner empties it; `root` belongs to nobody, so nobody empties it.
    for (bucket, token) in [("box", &other), ("root", &me)] {
        app.post_as(
            "/storage/bucket/empty",
            json!({ "bucket": bucket }),
            Some(token),
        )
        .await
        .assert_error(403, "not_allowed");
    }
    assert_eq!(app.blobs().await.len(), before);
    assert_eq!(exists("one.txt").await, true);

    app.post_as(
        "/storage/bucket/empty",
        json!({ "bucket": "box" }),
        Some(&me),
    )
    .await
    .assert_ok();
    assert_eq!(
        app.blobs().await.len(),
        before - 2,
        "the files' bytes went too"
    );
    assert_eq!(exists("one.txt").await, false);
    assert_eq!(exists("two.txt").await, false);
    let bucket = app
        .post_as("/storage/bucket/get", json!({ "bucket": "box" }), Some(&me))
        .await;
    assert_eq!(bucket.assert_ok()["name"], "box");
    upload(
        &app,
        Some(&me),
        "box",
        "one.txt",
        b"y".to_vec(),
        "text/plain",
    )
    .await;
    assert_eq!(exists("one.txt").await, true, "the name is free again");
}

#[tokio::test]
async fn every_change_of_a_bucket_and_of_a_file_answers_the_changed_record() {
    let app = TestApp::spawn_with(spawn_with_files()).await;
    let (_, me) = user(&app).await;
    app.post_as(
        "/storage/create-bucket",
        json!({ "name": "shelf", "isPublic": true }),
        Some(&me),
    )
    .await
    .assert_ok();
    upload(
        &app,
        Some(&me),
        "shelf",
        "a.txt",
        b"a".to_vec(),
        "text/plain",
    )
    .await;
    // `(path, the record named, the field its name is in)`; each answers the whole record.
    for (path, target, name_field) in [
        (
            "/storage/bucket/file",
            json!({ "bucket": "shelf", "file": "a.txt" }),
            "fileName",
        ),
        ("/storage/bucket", json!({ "bucket": "shelf" }), "name"),
    ] {
        let change = |action: &str, extra: Value| {
            let mut body = target.clone();
            if let (Some(body), Value::Object(extra)) = (body.as_object_mut(), extra) {
                body.extend(extra);
            }
            let (app, me, path) = (&app, me.clone(), format!("{path}/{action}"));
            async move {
                app.post_as(&path, body, Some(&me))
                    .await
                    .assert_ok()
                    .clone()
            }
        };
        let record = change("make-private", json!({})).await;
        assert_eq!(record["isPublic"], false, "{path}");
        let record = change("make-public", json!({})).await;
        assert_eq!(record["isPublic"], true, "{path}");
        let record = change("add-tags", json!({ "tags": ["x", "y"] })).await;
        assert_eq!(record["tags"], json!(["x", "y"]), "{path}");
        let record = change("remove-tags", json!({ "tags": "x" })).await;
        assert_eq!(record["tags"], json!(["y"]), "{path}");
        let record = change("update", json!({ "isPublic": false, "tags": ["z"] })).await;
        assert_eq!(
            (&record["isPublic"], &record["tags"]),
            (&json!(false), &json!(["z"])),
            "{path}"
        );
        let record = change("rename", json!({ "newName": "renamed" })).await;
        assert_eq!(record[name_field], "renamed", "{path}");
    }
}

#[tokio::test]
async fn files_and_buckets_are_renamed_tagged_and_made_private() {
    let app = TestApp::spawn_with(spawn_with_files()).await;
    let (_, me) = user(&app).await;
    let (_, other) = user(&app).await;
    upload(
        &app,
        Some(&me),
        "root",
        "a.txt",
        b"a".to_vec(),
        "text/plain",
    )
    .await;
    let (_, b) = upload(
        &app,
        Some(&me),
        "root",
        "b.txt",
        b"b".to_vec(),
        "text/plain",
    )
    .await;
    let call = |path: &'static str, body: Value, token: String| {
        let app = &app;
        async move { app.post_as(path, body, Some(&token)).await }
    };
    let renamed = call(
        "/storage/bucket/file/rename",
        serde_json::json!({ "bucket": "root", "file": "b.txt", "newName": "a.txt" }),
        me.clone(),
    )
    .await;
    assert_eq!(
        renamed.assert_ok()["fileName"],
        "a-1.txt",
        "a taken name is numbered"
    );
    let tagged = call(
        "/storage/bucket/file/add-tags",
        serde_json::json!({ "bucket": "root", "file": b["_id"], "tags": ["x", "y"] }),
        me.clone(),
    )
    .await;
    assert_eq!(tagged.assert_ok()["tags"], serde_json::json!(["x", "y"]));
    let untagged = call(
        "/storage/bucket/file/remove-tags",
        serde_json::json!({ "bucket": "root", "file": b["_id"], "tags": "x" }),
        me.clone(),
    )
    .await;
    assert_eq!(untagged.assert_ok()["tags"], serde_json::json!(["y"]));
    let private = call(
        "/storage/bucket/file/make-private",
        serde_json::json!({ "bucket": "root", "file": b["_id"] }),
        me.clone(),
    )
    .await;
    assert_eq!(private.assert_ok()["isPublic"], false);
    assert_eq!(
        reqwest::get(b["publicPath"].as_str().unwrap())
            .await
            .unwrap()
            .status(),
        403
    );
    call(
        "/storage/bucket/file/rename",
        serde_json::json!({ "bucket": "root", "file": "a.txt", "newName": "mine.txt" }),
        other.clone(),
    )
    .await
    .assert_error(403, "not_allowed");
    call(
        "/storage/bucket/file/rename",
        serde_json::json!({ "bucket": "root", "file": "a.txt", "newName": "../x" }),
        me.clone(),
    )
    .await
    .assert_error(400, "validation_error");
    // Buckets.
    call(
        "/storage/create-bucket",
        serde_json::json!({ "name": "docs" }),
        me.clone(),
    )
    .await
    .assert_ok();
    upload(
        &app,
        Some(&me),
        "docs",
        "d.txt",
        b"d".to_vec(),
        "text/plain",
    )
    .await;
    let renamed = call(
        "/storage/bucket/rename",
        serde_json::json!({ "bucket": "docs", "newName": "papers" }),
        me.clone(),
    )
    .await;
    assert_eq!(renamed.assert_ok()["name"], "papers");
    let private = call(
        "/storage/bucket/make-private",
        serde_json::json!({ "bucket": "papers", "includeFiles": true }),
        me.clone(),
    )
    .await;
    assert_eq!(private.assert_ok()["isPublic"], false);
    let d = call(
        "/storage/bucket/file/get",
        serde_json::json!({ "bucket": "papers", "file": "d.txt" }),
        me.clone(),
    )
    .await;
    assert_eq!(
        d.assert_ok()["isPublic"],
        false,
        "includeFiles reached the files"
    );
    call(
        "/storage/bucket/rename",
        serde_json::json!({ "bucket": "root", "newName": "base" }),
        me.clone(),
    )
    .await
    .assert_error(400, "root_bucket_protected");
    call(
        "/storage/bucket/delete",
        serde_json::json!({ "bucket": "root" }),
        me.clone(),
    )
    .await
    .assert_error(400, "root_bucket_protected");
    call(
        "/storage/bucket/delete",
        serde_json::json!({ "bucket": "papers" }),
        other.clone(),
    )
    .await
    .assert_error(403, "not_allowed");
    let before = app.blobs().await.len();
    call(
        "/storage/bucket/delete",
        serde_json::json!({ "bucket": "papers" }),
        me.clone(),
    )
    .await
    .assert_ok();
    assert_eq!(
        app.blobs().await.len(),
        before - 1,
        "the bucket's bytes went with it"
    );
    call(
        "/storage/bucket/get",
        serde_json::json!({ "bucket": "papers" }),
        me.clone(),
    )
    .await
    .assert_error(400, "bucket_not_found");
}

#[tokio::test]
async fn object_uploads_decode_the_clients_json_and_replace_keeps_the_file() {
    let app = TestApp::spawn_with(spawn_with_files()).await;
    let (_, me) = user(&app).await;
    let (_, other) = user(&app).await;
    let post = |path: String, body: Value, token: String| {
        let app = &app;
        async move {
            let response = app
                .http
                .post(app.api(&path))
                .header("X-Client-Key", KEY)
                .header("Session", token)
                .json(&body)
                .send()
                .await
                .unwrap();
            let status = response.status();
            (status, response.json::<Value>().await.unwrap())
        }
    };
    let options = "%7B%22contentType%22%3A%22text%2Fmarkdown%22%7D";
    let (status, file) = post(
        format!("/storage/bucket/upload-object?bucket=root&fileName=readme.md&options={options}"),
        Value::from("# Hello"),
        me.clone(),
    )
    .await;
    assert_eq!(status, 200, "{file}");
    assert_eq!(
        (file["mimeType"].clone(), file["size"].clone()),
        (Value::from("text/markdown"), Value::from(7))
    );
    let served = reqwest::get(file["publicPath"].as_str().unwrap())
        .await
        .unwrap();
    let etag = served.headers()["etag"].clone();
    assert_eq!(served.bytes().await.unwrap().as_ref(), b"# Hello");
    let (_, buffer) = post(
        "/storage/bucket/upload-object?bucket=root&fileName=bytes.bin".into(),
        serde_json::json!({ "type": "Buffer", "data": [1, 2, 3] }),
        me.clone(),
    )
    .await;
    assert_eq!(buffer["size"], 3);
    // Replace keeps the id, name and public path, and changes the bytes and the ETag.
    let (status, replaced) = post(
        format!("/storage/bucket/file/replace-object?bucket=root&file=readme.md&options={options}"),
        Value::from("# Bye!"),
        me.clone(),
    )
    .await;
    assert_eq!(status, 200, "{replaced}");
    assert_eq!(
        (replaced["_id"].clone(), replaced["fileName"].clone()),
        (file["_id"].clone(), file["fileName"].clone())
    );
    let served = reqwest::get(file["publicPath"].as_str().unwrap())
        .await
        .unwrap();
    assert_ne!(served.headers()["etag"], etag);
    assert_eq!(served.bytes().await.unwrap().as_ref(), b"# Bye!");
    assert_eq!(app.blobs().await.len(), 2, "the replaced bytes are gone");
    let (status, body) = post(
        "/storage/bucket/file/replace-object?bucket=root&file=readme.md".into(),
        Value::from("mine now"),
        other.clone(),
    )
    .await;
    assert_eq!(
        (status.as_u16(), body["errors"][0]["code"].clone()),
        (403, Value::from("not_allowed"))
    );
    // Replace with a form, as the client's File/Blob path does.
    let part = Part::bytes(PNG.to_vec())
        .file_name("a.png")
        .mime_str("image/png")
        .unwrap();
    let replaced: Value = app
        .http
        .post(app.api(&format!(
            "/storage/bucket/file/replace-formdata?bucket=root&file=bytes.bin&options={OPTIONS}"
        )))
        .header("X-Client-Key", KEY)
        .header("Session", &me)
        .multipart(Form::new().part("file", part))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        (replaced["mimeType"].clone(), replaced["size"].clone()),
        (Value::from("image/png"), Value::from(PNG.len()))
    );
}
