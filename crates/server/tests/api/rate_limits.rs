//! Rate limits (SECURITY.md "Enumeration and brute force"): 429 with Retry-After.

use std::time::Duration;

use serde_json::Value;

use crate::support::{PASSWORD, TestApp, email};

fn retry_after(answer: &crate::support::Answer) -> u64 {
    answer.headers["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap()
}

#[tokio::test]
async fn failed_sign_ins_slow_down_the_account_whether_or_not_it_exists() {
    let app = TestApp::spawn_with(|c| c.rate_limits.enabled = true).await;
    let address = email();
    app.verified_user(&address).await;
    for target in [address.clone(), email()] {
        for _ in 0..4 {
            app.sign_in(&target, "wrong password here")
                .await
                .assert_error(400, "invalid_credentials");
            app.clock.advance(Duration::from_secs(3));
        }
        app.clock.advance(Duration::from_secs(20));
        for _ in 0..4 {
            app.sign_in(&target, "wrong password here").await;
        }
        let limited = app.sign_in(&target, "wrong password here").await;
        limited.assert_error(429, "too_many_requests");
        assert!(retry_after(&limited) >= 1);
        if target == address {
            // The right password waits too, then works.
            app.sign_in(&address, PASSWORD)
                .await
                .assert_error(429, "too_many_requests");
            app.clock.advance(Duration::from_secs(60));
            app.sign_in(&address, PASSWORD).await.assert_ok();
        }
    }
}

#[tokio::test]
async fn mail_per_recipient_is_limited_with_the_same_answer_for_unknown_accounts() {
    let app = TestApp::spawn_with(|c| c.rate_limits.enabled = true).await;
    let known = email();
    app.verified_user(&known).await;
    let unknown = email();
    for address in [&known, &unknown] {
        app.post(&format!("/auth/send-magic?email={address}"), Value::Null)
            .await
            .assert_ok();
        let second = app
            .post(&format!("/auth/send-magic?email={address}"), Value::Null)
            .await;
        second.assert_error(429, "too_many_requests");
        assert!(retry_after(&second) <= 60);
    }
    app.clock.advance(Duration::from_secs(61));
    app.post(&format!("/auth/send-magic?email={known}"), Value::Null)
        .await
        .assert_ok();
}

#[tokio::test]
async fn sign_ups_per_ip_are_limited() {
    let app = TestApp::spawn_with(|c| c.rate_limits.enabled = true).await;
    for _ in 0..10 {
        app.sign_up(&email(), PASSWORD).await.assert_ok();
    }
    let limited = app.sign_up(&email(), PASSWORD).await;
    limited.assert_error(429, "too_many_requests");
    app.clock.advance(Duration::from_secs(2));
    app.sign_up(&email(), PASSWORD).await.assert_ok();
}

#[tokio::test]
async fn nodes_sharing_a_redis_count_together() {
    // Two nodes with stores of their own and one Redis for the counters: the per-IP sign-up
    // burst (10) is spent across both, and the next sign-up is refused by either.
    let (url, prefix) = crate::support::test_redis();
    let configure = |c: &mut basalt::config::Config| {
        c.rate_limits.enabled = true;
        c.rate_limits.redis_url = url.clone().into();
        c.rate_limits.redis_prefix = prefix.clone();
    };
    let first = TestApp::spawn_on_sqlite_with(configure).await;
    let second = TestApp::spawn_on_sqlite_with(configure).await;
    for i in 0..10 {
        let node = if i % 2 == 0 { &first } else { &second };
        node.sign_up(&email(), PASSWORD).await.assert_ok();
    }
    for node in [&first, &second] {
        node.sign_up(&email(), PASSWORD)
            .await
            .assert_error(429, "too_many_requests");
    }
    // Forget this test's keys.
    use basalt::store::RateCounters;
    let counters = basalt::store::RedisCounters::connect(&url, &prefix, None)
        .await
        .unwrap();
    counters.prune(i64::MAX).await.unwrap();
}
