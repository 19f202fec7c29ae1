//! Password reset, password change and email change (protocol.md §3.10–§3.14).

use std::time::Duration;

use serde_json::{Value, json};

use crate::support::{PASSWORD, TestApp, email, link_in};

const NEW: &str = "a brand new passphrase";

async fn reset_key(app: &TestApp, address: &str, mails_before: usize) -> String {
    app.post(&format!("/auth/send-reset?email={address}"), Value::Null)
        .await
        .assert_ok();
    let mail = app.mail_matching(address, mails_before + 1).await;
    let (params, order) = app.follow_ordered(&link_in(&mail, "reset")).await;
    assert_eq!(order, ["status", "action", "access_token"]);
    assert_eq!(params["action"], "reset-pwd");
    params["access_token"].clone()
}

#[tokio::test]
async fn a_reset_sets_the_password_and_ends_every_session() {
    let app = TestApp::spawn().await;
    let address = email();
    let token = app.verified_user(&address).await;
    let key = reset_key(&app, &address, 1).await;
    app.post(
        &format!("/auth/reset-pwd?key={key}"),
        json!({ "newPassword": NEW }),
    )
    .await
    .assert_ok();
    app.get_as("/auth/user", Some(&token))
        .await
        .assert_error(401, "invalid_session_token");
    app.sign_in(&address, PASSWORD)
        .await
        .assert_error(400, "invalid_credentials");
    app.sign_in(&address, NEW).await.assert_ok();
    app.post(
        &format!("/auth/reset-pwd?key={key}"),
        json!({ "newPassword": "yet another passphrase" }),
    )
    .await
    .assert_error(400, "invalid_access_token");
}

#[tokio::test]
async fn a_weak_new_password_keeps_the_reset_key_usable() {
    let app = TestApp::spawn().await;
    let address = email();
    app.verified_user(&address).await;
    let key = reset_key(&app, &address, 1).await;
    app.post(
        &format!("/auth/reset-pwd?key={key}"),
        json!({ "newPassword": "short" }),
    )
    .await
    .assert_error(400, "validation_error");
    app.post(
        &format!("/auth/reset-pwd?key={key}"),
        json!({ "newPassword": NEW }),
    )
    .await
    .assert_ok();
}

#[tokio::test]
async fn reset_links_expire_after_thirty_minutes() {
    let app = TestApp::spawn().await;
    let address = email();
    app.verified_user(&address).await;
    app.post(&format!("/auth/send-reset?email={address}"), Value::Null)
        .await
        .assert_ok();
    let link = link_in(&app.mail_matching(&address, 2).await, "reset");
    app.clock.advance(Duration::from_secs(30 * 60 + 1));
    assert_eq!(app.follow(&link).await["status"], "400");
}

#[tokio::test]
async fn a_password_change_voids_outstanding_reset_keys() {
    let app = TestApp::spawn().await;
    let address = email();
    let token = app.verified_user(&address).await;
    let key = reset_key(&app, &address, 1).await;
    app.post_as(
        "/auth/change-pwd",
        json!({ "newPassword": NEW, "oldPassword": PASSWORD }),
        Some(&token),
    )
    .await
    .assert_ok();
    app.post(
        &format!("/auth/reset-pwd?key={key}"),
        json!({ "newPassword": "yet another passphrase" }),
    )
    .await
    .assert_error(400, "invalid_access_token");
}

#[tokio::test]
async fn reset_answers_the_same_for_unknown_addresses() {
    let app = TestApp::spawn().await;
    let unknown = email();
    app.post(&format!("/auth/send-reset?email={unknown}"), Value::Null)
        .await
        .assert_ok();
    assert_eq!(app.mail_count(&unknown).await, 0);
}

#[tokio::test]
async fn change_password_keeps_this_session_and_ends_the_others() {
    let app = TestApp::spawn().await;
    let address = email();
    let other = app.verified_user(&address).await;
    let current = app.sign_in(&address, PASSWORD).await.body["session"]["token"]
        .as_str()
        .unwrap()
        .to_string();
    app.post_as(
        "/auth/change-pwd",
        json!({ "newPassword": NEW, "oldPassword": "wrong old password" }),
        Some(&current),
    )
    .await
    .assert_error(400, "invalid_credentials");
    app.post_as(
        "/auth/change-pwd",
        json!({ "newPassword": NEW, "oldPassword": PASSWORD }),
        Some(&current),
    )
    .await
    .assert_ok();
    app.get_as("/auth/user", Some(&current)).await.assert_ok();
    app.get_as("/auth/user", Some(&other))
        .await
        .assert_error(401, "invalid_session_token");
    app.sign_in(&address, NEW).await.assert_ok();
}

#[tokio::test]
async fn change_email_confirms_by_a_link_to_the_new_address() {
    let app = TestApp::spawn().await;
    let address = email();
    let token = app.verified_user(&address).await;
    let new = email();
    let answer = app
        .post_as(
            "/auth/change-email",
            json!({ "currentPassword": PASSWORD, "newEmail": new }),
            Some(&token),
        )
        .await;
    assert_eq!(answer.assert_ok()["email"], address.as_str());
    let mail = app.mail_to(&new).await;
    let link = link_in(&mail, "change");
    let (params, order) = app.follow_ordered(&link).await;
    assert_eq!(order, ["status", "action"]);
    assert_eq!(params["action"], "change-email");
    let me = app.get_as("/auth/user", Some(&token)).await;
    assert_eq!(me.assert_ok()["email"], new.as_str());
    app.sign_in(&new, PASSWORD).await.assert_ok();
    app.sign_in(&address, PASSWORD)
        .await
        .assert_error(400, "invalid_credentials");
    // Opening it again changes nothing and still lands well.
    assert_eq!(app.follow(&link).await["status"], "200");
}

#[tokio::test]
async fn change_email_refuses_a_taken_address_and_a_wrong_password() {
    let app = TestApp::spawn().await;
    let address = email();
    let token = app.verified_user(&address).await;
    let taken = email();
    app.verified_user(&taken).await;
    app.post_as(
        "/auth/change-email",
        json!({ "currentPassword": PASSWORD, "newEmail": taken }),
        Some(&token),
    )
    .await
    .assert_error(400, "email_not_unique");
    app.post_as(
        "/auth/change-email",
        json!({ "currentPassword": "wrong password here", "newEmail": email() }),
        Some(&token),
    )
    .await
    .assert_error(400, "invalid_credentials");
    app.post_as(
        "/auth/change-email",
        json!({ "currentPassword": PASSWORD, "newEmail": "not-an-email" }),
        Some(&token),
    )
    .await
    .assert_error(400, "validation_error");
}

#[tokio::test]
async fn change_email_without_verification_applies_at_once() {
    let app = TestApp::spawn_with(|c| c.auth.email_verification = false).await;
    let address = email();
    let token = app.sign_up(&address, PASSWORD).await.body["session"]["token"]
        .as_str()
        .unwrap()
        .to_string();
    let new = email();
    let answer = app
        .post_as(
            "/auth/change-email",
            json!({ "currentPassword": PASSWORD, "newEmail": new }),
            Some(&token),
        )
        .await;
    assert_eq!(answer.assert_ok()["email"], new.as_str());
}
