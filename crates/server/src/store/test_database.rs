//! A fresh PostgreSQL database per test, dropped with its connections afterwards, and a
//! fresh key prefix on the test Redis. Shared by the library's tests and the HTTP suite
//! (`tests/api/support` includes this file), so it names only external crates.

/// The test Redis (`BASALT_TEST_REDIS_URL`, default the local server's database 0) and a key
/// prefix no other test uses: `(url, prefix)`.
pub(crate) fn test_redis() -> (String, String) {
    let url =
        std::env::var("BASALT_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let prefix = format!("basalt-test:{:016x}:", rand::random::<u64>());
    (url, prefix)
}

/// A database of the test server, dropped (with its connections) when this is dropped.
pub(crate) struct TestDatabase {
    admin_url: String,
    name: String,
    /// URL of this database.
    pub(crate) url: String,
}

impl TestDatabase {
    /// Create `basalt_test_<random>` on the server of `BASALT_TEST_POSTGRES_URL`.
    pub(crate) async fn create() -> Self {
        use sqlx_core::connection::Connection;
        let admin_url = std::env::var("BASALT_TEST_POSTGRES_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
        let name = format!("basalt_test_{:016x}", rand::random::<u64>());
        let mut admin = sqlx_postgres::PgConnection::connect(&admin_url)
            .await
            .unwrap_or_else(|err| {
                panic!("PostgreSQL at BASALT_TEST_POSTGRES_URL is needed (scripts/test.sh starts it): {err}")
            });
        sqlx_core::query::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut admin)
            .await
            .unwrap();
        admin.close().await.unwrap();
        let mut url = url::Url::parse(&admin_url).unwrap();
        url.set_path(&name);
        Self {
            admin_url,
            name,
            url: url.to_string(),
        }
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let (admin_url, name) = (self.admin_url.clone(), self.name.clone());
        // Drop runs inside the test's runtime: the clean-up gets a thread and runtime of its own.
        let dropped = std::thread::spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap()
                .block_on(async move {
                    use sqlx_core::connection::Connection;
                    let mut admin = sqlx_postgres::PgConnection::connect(&admin_url).await?;
                    sqlx_core::query::query(&format!(
                        "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                    ))
                    .execute(&mut admin)
                    .await?;
                    admin.close().await
                })
        })
        .join();
        if !matches!(dropped, Ok(Ok(()))) {
            eprintln!("could not drop test database {}", self.name);
        }
    }
}
