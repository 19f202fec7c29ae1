//! Emailed links and grants (protocol.md §4, SECURITY.md "Tokens").

use std::time::Duration;

use crate::support::{PASSWORD, TestApp, email, link_in};

#[tokio::test]
async fn the_confirm_link_redirects_with_status_action_and_a_token_in_that_order() {
    let app = TestApp::spawn().await;
    let address = email();
    app.sign_up(&address, PASSWORD).await.assert_ok();
    let link = link_in(&app.mail_to(&address).await, "confirm");
    let (params, order) = app.follow_ordered(&link).await;
    assert_eq!(order, ["status", "action", "access_token"]);
    assert_eq!(params["status"], "200");
    assert_eq!(params["action"], "email-confirm");
    let grant = app.grant(&params["access_token"]).await;
    let body = grant.assert_ok();
    assert_eq!(body["user"]["emailVerified"], true);
    let token = body["session"]["token"].as_str().unwrap();
    app.get_as("/auth/user", Some(token)).await.assert_ok();
}

#[tokio::test]
async fn a_grant_works_once() {
    let app = TestApp::spawn().await;
    let address = email();
    app.sign_up(&address, PASSWORD).await.assert_ok();
    let link = link_in(&app.mail_to(&address).await, "confirm");
    let key = app.follow(&link).await["access_token"].clone();
    app.grant(&key).await.assert_ok();
    app.grant(&key)
        .await
        .assert_error(400, "invalid_access_token");
}

#[tokio::test]
async fn a_scanner_opening_the_link_first_does_not_spend_it() {
    let app = TestApp::spawn().await;
    let address = email();
    app.sign_up(&address, PASSWORD).await.assert_ok();
    let link = link_in(&app.mail_to(&address).await, "confirm");
    let _scanner = app.follow(&link).await;
    let person = app.follow(&link).await;
    assert_eq!(person["status"], "200");
    app.grant(&person["access_token"]).await.assert_ok();
    // Once redeemed, the emailed link is spent.
    let again = app.follow(&link).await;
    assert_eq!(again["status"], "400");
    assert_eq!(again["action"], "email-confirm");
    assert_eq!(again["error"], "Invalid or expired access token");
    assert!(!again.contains_key("access_token"));
}

#[tokio::test]
async fn unknown_and_empty_link_tokens_redirect_with_an_error() {
    let app = TestApp::spawn().await;
    for kind in ["confirm", "magic", "reset", "change"] {
        for token in ["nope", ""] {
            let params = app
                .follow(&format!("{}/_auth/email/{kind}?token={token}", app.url))
                .await;
            assert_eq!(params["status"], "400", "{kind}");
            assert!(params["error"].contains("Invalid"), "{kind}");
        }
    }
}

#[tokio::test]
async fn grants_expire_after_five_minutes() {
    let app = TestApp::spawn().await;
    let address = email();
    app.sign_up(&address, PASSWORD).await.assert_ok();
    let link = link_in(&app.mail_to(&address).await, "confirm");
    let key = app.follow(&link).await["access_token"].clone();
    app.clock.advance(Duration::from_secs(301));
    app.grant(&key)
        .await
        .assert_error(400, "invalid_access_token");
    // The emailed link itself still works: a new click mints a new grant.
    let fresh = app.follow(&link).await["access_token"].clone();
    app.grant(&fresh).await.assert_ok();
}

#[tokio::test]
async fn confirmation_links_expire_after_a_day() {
    let app = TestApp::spawn().await;
    let address = email();
    app.sign_up(&address, PASSWORD).await.assert_ok();
    let link = link_in(&app.mail_to(&address).await, "confirm");
    app.clock.advance(Duration::from_secs(24 * 3600 + 1));
    assert_eq!(app.follow(&link).await["status"], "400");
    app.sign_in(&address, PASSWORD)
        .await
        .assert_error(400, "email_not_verified");
}

#[tokio::test]
async fn a_missing_or_bad_grant_key_never_says_session() {
    let app = TestApp::spawn().await;
    app.get_as("/auth/grant?key=", None)
        .await
        .assert_error(400, "invalid_access_token");
    app.get_as("/auth/grant", None)
        .await
        .assert_error(400, "invalid_access_token");
    app.get_as("/auth/grant?key=made-up", None)
        .await
        .assert_error(400, "invalid_access_token");
}

#[tokio::test]
async fn magic_links_sign_in_and_answer_the_same_for_unknown_addresses() {
    let app = TestApp::spawn().await;
    let address = email();
    app.verified_user(&address).await;
    let unknown = email();
    let known = app
        .post(
            &format!("/auth/send-magic?email={address}"),
            serde_json::Value::Null,
        )
        .await;
    let other = app
        .post(
            &format!("/auth/send-magic?email={unknown}"),
            serde_json::Value::Null,
        )
        .await;
    assert_eq!((known.status, &known.body), (other.status, &other.body));
    known.assert_ok();
    let mail = app.mail_matching(&address, 2).await;
    let (params, order) = app.follow_ordered(&link_in(&mail, "magic")).await;
    assert_eq!(order, ["status", "action", "access_token"]);
    assert_eq!(params["action"], "magic-link");
    app.grant(&params["access_token"]).await.assert_ok();
    assert_eq!(app.mail_count(&unknown).await, 0);
}

#[tokio::test]
async fn magic_links_expire_after_fifteen_minutes() {
    let app = TestApp::spawn().await;
    let address = email();
    app.verified_user(&address).await;
    app.post(
        &format!("/auth/send-magic?email={address}"),
        serde_json::Value::Null,
    )
    .await
    .assert_ok();
    let link = link_in(&app.mail_matching(&address, 2).await, "magic");
    app.clock.advance(Duration::from_secs(15 * 60 + 1));
    assert_eq!(app.follow(&link).await["status"], "400");
}

#[tokio::test]
async fn a_newer_link_replaces_the_older_one() {
    let app = TestApp::spawn().await;
    let address = email();
    app.verified_user(&address).await;
    for _ in 0..2 {
        app.post(
            &format!("/auth/send-magic?email={address}"),
            serde_json::Value::Null,
        )
        .await
        .assert_ok();
    }
    app.mail_matching(&address, 3).await;
    let mailbox = app.mailbox().await;
    let mine: Vec<_> = mailbox
        .iter()
        .filter(|m| m["to"] == address.as_str())
        .collect();
    let newest = link_in(mine[0], "magic");
    let older = link_in(mine[1], "magic");
    assert_eq!(app.follow(&older).await["status"], "400");
    assert_eq!(app.follow(&newest).await["status"], "200");
}

#[tokio::test]
async fn a_magic_link_to_an_unverified_account_verifies_it_and_voids_the_sign_up_password() {
    let app = TestApp::spawn().await;
    let address = email();
    app.sign_up(&address, PASSWORD).await.assert_ok();
    app.post(
        &format!("/auth/send-magic?email={address}"),
        serde_json::Value::Null,
    )
    .await
    .assert_ok();
    let link = link_in(&app.mail_matching(&address, 2).await, "magic");
    let key = app.follow(&link).await["access_token"].clone();
    let grant = app.grant(&key).await;
    assert_eq!(grant.assert_ok()["user"]["emailVerified"], true);
    // Whoever chose the sign-up password may not own the address.
    app.sign_in(&address, PASSWORD)
        .await
        .assert_error(400, "invalid_credentials");
}

#[tokio::test]
async fn resend_mails_unverified_accounts_only_and_answers_the_same() {
    let app = TestApp::spawn().await;
    let pending = email();
    app.sign_up(&pending, PASSWORD).await.assert_ok();
    let verified = email();
    app.verified_user(&verified).await;
    for address in [&pending, &verified, &email()] {
        app.post(
            &format!("/auth/resend?email={address}"),
            serde_json::Value::Null,
        )
        .await
        .assert_ok();
    }
    let newest = app.mail_matching(&pending, 2).await;
    let (params, _) = app.follow_ordered(&link_in(&newest, "confirm")).await;
    assert_eq!(params["action"], "email-confirm");
    assert_eq!(app.mail_count(&verified).await, 1);
}
