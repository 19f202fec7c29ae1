//! Sessions: listing, sign-out of every kind, revocation at once, lifetimes.

use std::time::Duration;

use serde_json::json;

use crate::support::{PASSWORD, TestApp, email};

#[tokio::test]
async fn the_list_shows_my_token_and_handles_for_the_others() {
    let app = TestApp::spawn().await;
    let address = email();
    let first = app.verified_user(&address).await;
    app.clock.advance(Duration::from_secs(1));
    let second = app.sign_in(&address, PASSWORD).await.assert_ok()["session"]["token"]
        .as_str()
        .unwrap()
        .to_string();
    let list = app.get_as("/auth/sessions", Some(&second)).await;
    let sessions = list.assert_ok().as_array().unwrap().clone();
    assert_eq!(sessions.len(), 2);
    assert!(sessions[0]["creationDtm"].as_str() < sessions[1]["creationDtm"].as_str());
    let other = sessions[0]["token"].as_str().unwrap();
    assert!(other.starts_with("ref_"), "{other}");
    assert_ne!(other, first);
    assert_eq!(sessions[1]["token"], second.as_str());
    assert_eq!(sessions[0]["userAgent"]["device"]["family"], "Mac");
    // A handle never authenticates.
    app.get_as("/auth/user", Some(other))
        .await
        .assert_error(401, "invalid_session_token");
    // It signs that session out, at once.
    app.post_as("/auth/signout", json!({ "token": other }), Some(&second))
        .await
        .assert_ok();
    app.get_as("/auth/user", Some(&first))
        .await
        .assert_error(401, "invalid_session_token");
    app.get_as("/auth/user", Some(&second)).await.assert_ok();
}

#[tokio::test]
async fn signing_out_another_users_session_is_session_not_found() {
    let app = TestApp::spawn().await;
    let mine = app.verified_user(&email()).await;
    let theirs = app.verified_user(&email()).await;
    app.post_as("/auth/signout", json!({ "token": theirs }), Some(&mine))
        .await
        .assert_error(400, "session_not_found");
    app.post_as(
        "/auth/signout",
        json!({ "token": "ref_bm9wZQ" }),
        Some(&mine),
    )
    .await
    .assert_error(400, "session_not_found");
    app.get_as("/auth/user", Some(&theirs)).await.assert_ok();
    app.get_as("/auth/user", Some(&mine)).await.assert_ok();
}

#[tokio::test]
async fn sign_out_ends_the_current_session_only() {
    let app = TestApp::spawn().await;
    let address = email();
    let first = app.verified_user(&address).await;
    let second = app.sign_in(&address, PASSWORD).await.body["session"]["token"]
        .as_str()
        .unwrap()
        .to_string();
    app.post_as("/auth/signout", json!({}), Some(&first))
        .await
        .assert_ok();
    app.get_as("/auth/user", Some(&first))
        .await
        .assert_error(401, "invalid_session_token");
    app.get_as("/auth/user", Some(&second)).await.assert_ok();
}

#[tokio::test]
async fn sign_out_all_except_current_keeps_only_mine() {
    let app = TestApp::spawn().await;
    let address = email();
    let first = app.verified_user(&address).await;
    let second = app.sign_in(&address, PASSWORD).await.body["session"]["token"]
        .as_str()
        .unwrap()
        .to_string();
    app.post_as(
        "/auth/signout-all-except",
        serde_json::Value::Null,
        Some(&second),
    )
    .await
    .assert_ok();
    app.get_as("/auth/user", Some(&first))
        .await
        .assert_error(401, "invalid_session_token");
    let list = app.get_as("/auth/sessions", Some(&second)).await;
    assert_eq!(list.assert_ok().as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn sign_out_all_ends_every_session() {
    let app = TestApp::spawn().await;
    let address = email();
    let first = app.verified_user(&address).await;
    let second = app.sign_in(&address, PASSWORD).await.body["session"]["token"]
        .as_str()
        .unwrap()
        .to_string();
    app.post_as("/auth/signout-all", serde_json::Value::Null, Some(&second))
        .await
        .assert_ok();
    for token in [first, second] {
        app.get_as("/auth/user", Some(&token))
            .await
            .assert_error(401, "invalid_session_token");
    }
}

#[tokio::test]
async fn session_endpoints_need_a_session() {
    let app = TestApp::spawn().await;
    for path in ["/auth/user", "/auth/sessions"] {
        app.get_as(path, None)
            .await
            .assert_error(401, "missing_session_token");
        app.get_as(path, Some("made-up"))
            .await
            .assert_error(401, "invalid_session_token");
    }
    for path in [
        "/auth/signout",
        "/auth/signout-all",
        "/auth/signout-all-except",
        "/auth/change-pwd",
        "/auth/change-email",
    ] {
        app.post_as(path, json!({}), None)
            .await
            .assert_error(401, "missing_session_token");
    }
}

#[tokio::test]
async fn idle_sessions_expire_after_seven_days() {
    let app = TestApp::spawn().await;
    let token = app.verified_user(&email()).await;
    app.clock.advance(Duration::from_secs(6 * 24 * 3600));
    app.get_as("/auth/user", Some(&token)).await.assert_ok();
    app.clock.advance(Duration::from_secs(6 * 24 * 3600));
    app.get_as("/auth/user", Some(&token)).await.assert_ok();
    app.clock.advance(Duration::from_secs(7 * 24 * 3600 + 1));
    app.get_as("/auth/user", Some(&token))
        .await
        .assert_error(401, "invalid_session_token");
}

#[tokio::test]
async fn sessions_end_after_thirty_days_even_when_used() {
    let app = TestApp::spawn().await;
    let token = app.verified_user(&email()).await;
    for _ in 0..4 {
        app.clock.advance(Duration::from_secs(6 * 24 * 3600));
        app.get_as("/auth/user", Some(&token)).await.assert_ok();
    }
    app.clock.advance(Duration::from_secs(6 * 24 * 3600 + 1));
    app.get_as("/auth/user", Some(&token))
        .await
        .assert_error(401, "invalid_session_token");
}

#[tokio::test]
async fn the_oldest_session_is_evicted_past_the_cap() {
    let app = TestApp::spawn_with(|c| c.auth.max_sessions_per_user = 2).await;
    let address = email();
    let first = app.verified_user(&address).await;
    for _ in 0..2 {
        app.clock.advance(Duration::from_secs(1));
        app.sign_in(&address, PASSWORD).await.assert_ok();
    }
    app.get_as("/auth/user", Some(&first))
        .await
        .assert_error(401, "invalid_session_token");
}
