//! `POST /auth/signin-email` (protocol.md §3.2, SECURITY.md "Enumeration").

use crate::support::{PASSWORD, TestApp, email};

#[tokio::test]
async fn the_right_password_of_a_verified_account_signs_in() {
    let app = TestApp::spawn().await;
    let address = email();
    app.verified_user(&address).await;
    let answer = app.sign_in(&address, PASSWORD).await;
    let body = answer.assert_ok();
    assert_eq!(body["user"]["email"], address.as_str());
    assert_eq!(body["user"]["lastLoginAt"], body["session"]["creationDtm"]);
    let agent = &body["session"]["userAgent"];
    assert_eq!(agent["family"], "Chrome");
    assert_eq!(agent["major"], "122");
    assert_eq!(agent["os"]["family"], "Mac OS X");
    assert!(agent["device"]["family"].is_string());
    assert_eq!(body["session"]["accessGroupKeys"], serde_json::json!([]));
}

#[tokio::test]
async fn emails_compare_case_blind_at_sign_in() {
    let app = TestApp::spawn().await;
    let address = email();
    app.verified_user(&address).await;
    app.sign_in(&address.to_uppercase(), PASSWORD)
        .await
        .assert_ok();
}

#[tokio::test]
async fn unknown_email_and_wrong_password_get_the_same_answer() {
    let app = TestApp::spawn().await;
    let address = email();
    app.verified_user(&address).await;
    let wrong = app.sign_in(&address, "not the password at all").await;
    let unknown = app.sign_in(&email(), PASSWORD).await;
    wrong.assert_error(400, "invalid_credentials");
    unknown.assert_error(400, "invalid_credentials");
    assert_eq!(wrong.body, unknown.body);
}

#[tokio::test]
async fn unverified_accounts_learn_it_only_with_the_right_password() {
    let app = TestApp::spawn().await;
    let address = email();
    app.sign_up(&address, PASSWORD).await.assert_ok();
    app.sign_in(&address, "not the password at all")
        .await
        .assert_error(400, "invalid_credentials");
    app.sign_in(&address, PASSWORD)
        .await
        .assert_error(400, "email_not_verified");
}

#[tokio::test]
async fn a_stale_session_header_is_ignored_by_public_endpoints() {
    let app = TestApp::spawn().await;
    let address = email();
    let token = app.verified_user(&address).await;
    app.post_as("/auth/signout", serde_json::json!({}), Some(&token))
        .await
        .assert_ok();
    let answer = app
        .post_as(
            "/auth/signin-email",
            serde_json::json!({ "email": address, "password": PASSWORD }),
            Some(&token),
        )
        .await;
    answer.assert_ok();
}
