//! `POST /auth/signup-email` (protocol.md §3.1).

use serde_json::json;

use crate::support::{PASSWORD, TestApp, email, link_in};

fn is_iso_millis(value: &serde_json::Value) -> bool {
    let s = value.as_str().unwrap_or_default();
    s.len() == 24 && s.ends_with('Z') && s.as_bytes()[19] == b'.'
}

#[tokio::test]
async fn sign_up_with_verification_returns_the_user_without_a_session_and_mails_a_link() {
    let app = TestApp::spawn().await;
    let address = email();
    let answer = app.sign_up(&address, PASSWORD).await;
    let body = answer.assert_ok();
    assert!(body["session"].is_null());
    let user = &body["user"];
    let id = user["_id"].as_str().unwrap();
    assert_eq!(id.len(), 24);
    assert!(id.chars().all(|c| c.is_ascii_hexdigit()));
    assert_eq!(user["providerUserId"], id);
    assert_eq!(user["provider"], "altogic");
    assert_eq!(user["email"], address.as_str());
    assert_eq!(user["emailVerified"], false);
    assert_eq!(user["name"], "Ada");
    assert!(is_iso_millis(&user["signUpAt"]));
    assert_eq!(user["signUpAt"], user["lastLoginAt"]);
    assert!(user.get("password").is_none());
    let mail = app.mail_to(&address).await;
    assert!(mail["subject"].as_str().unwrap().contains("Confirm"));
    assert!(
        mail["html"]
            .as_str()
            .unwrap()
            .contains("/_auth/email/confirm?token=")
    );
    link_in(&mail, "confirm");
}

#[tokio::test]
async fn sign_up_without_verification_returns_a_session() {
    let app = TestApp::spawn_with(|c| c.auth.email_verification = false).await;
    let address = email();
    let answer = app.sign_up(&address, PASSWORD).await;
    let body = answer.assert_ok();
    let token = body["session"]["token"].as_str().unwrap();
    assert_eq!(body["session"]["userId"], body["user"]["_id"]);
    let me = app.get_as("/auth/user", Some(token)).await;
    assert_eq!(me.assert_ok()["email"], address.as_str());
    assert_eq!(app.mail_count(&address).await, 0);
}

#[tokio::test]
async fn profile_objects_keep_extra_fields_but_never_system_ones() {
    let app = TestApp::spawn_with(|c| c.auth.email_verification = false).await;
    let answer = app
        .post(
            "/auth/signup-email",
            json!({
                "email": email(), "password": PASSWORD,
                "nameOrUserData": {
                    "name": "Ada", "surname": "Lovelace", "emailVerified": true,
                    "_id": "000000000000000000000000", "provider": "evil", "password": "x"
                }
            }),
        )
        .await;
    let user = &answer.assert_ok()["user"];
    assert_eq!(user["surname"], "Lovelace");
    assert_eq!(user["name"], "Ada");
    assert_eq!(user["provider"], "altogic");
    assert_ne!(user["_id"], "000000000000000000000000");
    assert!(user.get("password").is_none());
}

#[tokio::test]
async fn the_legacy_name_key_is_accepted() {
    let app = TestApp::spawn().await;
    let answer = app
        .post(
            "/auth/signup-email",
            json!({ "email": email(), "password": PASSWORD, "name": "Grace" }),
        )
        .await;
    assert_eq!(answer.assert_ok()["user"]["name"], "Grace");
}

#[tokio::test]
async fn a_taken_address_answers_like_a_new_one_and_mails_the_owner_a_notice() {
    let app = TestApp::spawn().await;
    let address = email();
    app.sign_up(&address, PASSWORD).await.assert_ok();
    app.mail_to(&address).await;
    let again = app
        .sign_up(
            &address.to_uppercase().replace("EXAMPLE.COM", "example.com"),
            "another long password",
        )
        .await;
    let body = again.assert_ok();
    assert!(body["session"].is_null());
    assert_eq!(body["user"]["emailVerified"], false);
    let notice = app.mail_matching(&address, 2).await;
    assert!(
        notice["subject"]
            .as_str()
            .unwrap()
            .contains("tried to sign up")
    );
    assert!(!notice["text"].as_str().unwrap().contains("token="));
}

#[tokio::test]
async fn a_taken_address_without_verification_is_email_not_unique() {
    let app = TestApp::spawn_with(|c| c.auth.email_verification = false).await;
    let address = email();
    app.sign_up(&address, PASSWORD).await.assert_ok();
    app.sign_up(&address, PASSWORD)
        .await
        .assert_error(400, "email_not_unique");
}
