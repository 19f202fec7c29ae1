//! Rate-limit counters in PostgreSQL, shared by every node (`store::RateCounters`): one
//! statement takes a token (refill and take computed in SQL from the caller's clock), one
//! counts a failed sign-in. Both tables are UNLOGGED (see the migration).

use std::sync::LazyLock;

use async_trait::async_trait;
use sqlx_core::connection::Connection;
use sqlx_core::query::query;
use sqlx_core::row::Row;
use sqlx_postgres::PgConnection;

use super::db_error;
use super::pool::Pool;
use crate::store::{BucketTake, FailureRule, Millis, RateCounters, Refused, StoreResult};

/// The tokens of the stored bucket `b`, refilled to `$3` (now): the float8 operations of
/// `BucketTake::refill`, in its order. `$4` burst, `$5` count, `$6` window in ms.
const REFILLED: &str = "LEAST($4, b.tokens + GREATEST($3 - b.updated_at, 0)::float8 * $5 / $6)";

/// Take one token, or change nothing and return no row.
static TAKE: LazyLock<String> = LazyLock::new(|| {
    format!(
        "INSERT INTO rate_buckets AS b (name, key, tokens, updated_at, expires_at)
         VALUES ($1, $2, $4 - 1, $3, $3 + ceil(1 * $6 / $5)::bigint)
         ON CONFLICT (name, key) DO UPDATE
         SET tokens = {REFILLED} - 1, updated_at = $3,
             expires_at = $3 + ceil(GREATEST($4 - ({REFILLED} - 1), 0) * $6 / $5)::bigint
         WHERE {REFILLED} >= 1
         RETURNING b.tokens"
    )
});

/// Count one failure: `FailureState::counted` in SQL. `$1` account, `$2` now, `$3` window,
/// `$4` free failures, `$5` delays (bigint[]), `$6` failures that lock.
static COUNT_FAILURE: LazyLock<String> = LazyLock::new(|| {
    let fresh = counted("0", "0", "0", "0");
    let stored = counted(
        "f.consecutive",
        "f.window_start",
        "f.in_window",
        "f.blocked_until",
    );
    format!(
        "INSERT INTO sign_in_failures AS f
             (account, consecutive, window_start, in_window, blocked_until, expires_at)
         VALUES ($1, {}, {}, {}, {}, {})
         ON CONFLICT (account) DO UPDATE
         SET consecutive = {}, window_start = {}, in_window = {}, blocked_until = {},
             expires_at = {}",
        fresh[0],
        fresh[1],
        fresh[2],
        fresh[3],
        fresh[4],
        stored[0],
        stored[1],
        stored[2],
        stored[3],
        stored[4],
    )
});

/// The new `consecutive`, `window_start`, `in_window`, `blocked_until` and `expires_at` of
/// a failure counted on these values.
fn counted(consecutive: &str, window_start: &str, in_window: &str, blocked: &str) -> [String; 5] {
    let reset = format!("($2 - {window_start} >= $3)");
    let window_start = format!("(CASE WHEN {reset} THEN $2 ELSE {window_start} END)");
    let in_window = format!("(CASE WHEN {reset} THEN 1 ELSE {in_window} + 1 END)");
    let consecutive = format!("({consecutive} + 1)");
    let delayed = format!(
        "(CASE WHEN {consecutive} > $4
              THEN $2 + COALESCE($5[LEAST({consecutive} - $4, cardinality($5))::int], 0)
              ELSE {blocked} END)"
    );
    let blocked = format!(
        "(CASE WHEN {in_window} >= $6 THEN GREATEST({delayed}, {window_start} + $3)
              ELSE {delayed} END)"
    );
    let expires = format!("GREATEST({blocked}, {window_start} + $3)");
    [consecutive, window_start, in_window, blocked, expires]
}

/// The counters of one PostgreSQL database.
pub(super) struct PgCounters {
    pool: Pool,
}

impl PgCounters {
    pub(super) fn new(pool: Pool) -> Self {
        Self { pool }
    }
}

/// Take from one bucket on `conn`: `None` when taken, else the tokens it holds.
async fn take_one(
    conn: &mut PgConnection,
    b: &BucketTake<'_>,
    now: Millis,
) -> StoreResult<Option<f64>> {
    let taken = query(&TAKE)
        .bind(b.name)
        .bind(b.key)
        .bind(now)
        .bind(b.burst)
        .bind(b.count)
        .bind(b.window_ms)
        .fetch_optional(&mut *conn)
        .await
        .map_err(db_error)?;
    if taken.is_some() {
        return Ok(None);
    }
    let row = query("SELECT tokens, updated_at FROM rate_buckets WHERE name = $1 AND key = $2")
        .bind(b.name)
        .bind(b.key)
        .fetch_optional(&mut *conn)
        .await
        .map_err(db_error)?;
    let tokens = match row {
        Some(row) => {
            let tokens: f64 = row.try_get("tokens").map_err(db_error)?;
            let updated: i64 = row.try_get("updated_at").map_err(db_error)?;
            b.refill(tokens, updated, now)
        }
        None => b.burst,
    };
    Ok(Some(tokens))
}

#[async_trait]
impl RateCounters for PgCounters {
    async fn take(&self, buckets: &[BucketTake<'_>], now: Millis) -> StoreResult<Refused> {
        if let [bucket] = buckets {
            // One statement is atomic on its own.
            let mut conn = self.pool.get().await?;
            let refused = take_one(&mut conn, bucket, now).await?;
            return Ok(refused.map(|tokens| vec![(0, tokens)]).unwrap_or_default());
        }
        // Several: one transaction, rolled back unless every token was taken. Rows are locked
        // in one order (name, key) so that concurrent checks never deadlock.
        let mut order: Vec<usize> = (0..buckets.len()).collect();
        order.sort_by_key(|&i| (buckets[i].name, buckets[i].key));
        let mut conn = self.pool.get().await?;
        let mut tx = conn.begin().await.map_err(db_error)?;
        let mut refused = Vec::new();
        for i in order {
            if let Some(tokens) = take_one(&mut tx, &buckets[i], now).await? {
                refused.push((i, tokens));
            }
        }
        if refused.is_empty() {
            tx.commit().await.map_err(db_error)?;
        } else {
            tx.rollback().await.map_err(db_error)?;
        }
        Ok(refused)
    }

    async fn blocked_until(&self, account: &str) -> StoreResult<Option<Millis>> {
        query("SELECT blocked_until FROM sign_in_failures WHERE account = $1")
            .bind(account)
            .fetch_optional(&mut *self.pool.get().await?)
            .await
            .map_err(db_error)?
            .map(|row| row.try_get("blocked_until").map_err(db_error))
            .transpose()
    }

    async fn count_failure(
        &self,
        account: &str,
        now: Millis,
        rule: &FailureRule,
    ) -> StoreResult<()> {
        query(&COUNT_FAILURE)
            .bind(account)
            .bind(now)
            .bind(rule.window_ms)
            .bind(i64::from(rule.free))
            .bind(&rule.delays_ms)
            .bind(i64::from(rule.lockout))
            .execute(&mut *self.pool.get().await?)
            .await
            .map_err(db_error)?;
        Ok(())
    }

    async fn clear_failures(&self, account: &str) -> StoreResult<()> {
        query("DELETE FROM sign_in_failures WHERE account = $1")
            .bind(account)
            .execute(&mut *self.pool.get().await?)
            .await
            .map_err(db_error)?;
        Ok(())
    }

    async fn prune(&self, now: Millis) -> StoreResult<u64> {
        let row = query(
            "WITH buckets AS (DELETE FROM rate_buckets WHERE expires_at <= $1 RETURNING 1),
                  failures AS (DELETE FROM sign_in_failures WHERE expires_at <= $1 RETURNING 1)
             SELECT (SELECT COUNT(*) FROM buckets) + (SELECT COUNT(*) FROM failures)",
        )
        .bind(now)
        .fetch_one(&mut *self.pool.get().await?)
        .await
        .map_err(db_error)?;
        let pruned: i64 = row.try_get(0).map_err(db_error)?;
        Ok(u64::try_from(pruned).unwrap_or(0))
    }
}
