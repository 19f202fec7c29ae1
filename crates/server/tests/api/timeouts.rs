//! PostgreSQL's `statement_timeout` (`database.statement_timeout_ms`): a statement cancelled
//! by it answers the JSON `query_timeout`, and the connection serves the next request.
//! PostgreSQL only (`BASALT_TEST_API_POSTGRES=1`); on SQLite the test returns at once.

use std::sync::{Arc, Mutex};

use basalt::config::{Access, ModelConfig};
use serde_json::json;
use sqlx_core::connection::Connection;

use crate::support::{PASSWORD, TestApp, email};

#[tokio::test]
async fn a_statement_past_the_time_limit_answers_query_timeout() {
    let database_url = Arc::new(Mutex::new(None));
    let seen = database_url.clone();
    let app = TestApp::spawn_with(move |c| {
        use secrecy::ExposeSecret;
        c.auth.email_verification = false;
        c.database.statement_timeout_ms = 300;
        c.database.models = vec![ModelConfig {
            name: "notes".into(),
            access: Access::Owner,
            fields: Default::default(),
            indexes: Vec::new(),
        }];
        let url = c.database.url.expose_secret().to_string();
        *seen.lock().unwrap() = Some(url).filter(|u| !u.is_empty());
    })
    .await;
    let Some(url) = database_url.lock().unwrap().clone() else {
        return;
    };
    let token = app.sign_up(&email(), PASSWORD).await.body["session"]["token"]
        .as_str()
        .unwrap()
        .to_string();
    let list = json!({ "model": "notes", "query": { "expression": null } });
    app.post_as("/db/get-list", list.clone(), Some(&token))
        .await
        .assert_ok();

    // Another connection holds the tables: every statement reading them waits, and
    // PostgreSQL cancels it after 300 ms.
    let mut holder = sqlx_postgres::PgConnection::connect(&url).await.unwrap();
    sqlx_core::raw_sql::raw_sql("BEGIN; LOCK TABLE users, objects IN ACCESS EXCLUSIVE MODE")
        .execute(&mut holder)
        .await
        .unwrap();
    let user = app.get_as("/auth/user", Some(&token)).await;
    user.assert_error(503, "query_timeout");
    assert_eq!(user.headers["retry-after"], "1");
    app.post_as("/db/get-list", list.clone(), Some(&token))
        .await
        .assert_error(503, "query_timeout");

    sqlx_core::raw_sql::raw_sql("ROLLBACK")
        .execute(&mut holder)
        .await
        .unwrap();
    holder.close().await.unwrap();
    app.get_as("/auth/user", Some(&token)).await.assert_ok();
    app.post_as("/db/get-list", list, Some(&token))
        .await
        .assert_ok();
}
