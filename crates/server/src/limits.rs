//! Rate limits: token buckets per (limit, key) and growing delays after failed sign-ins.
//!
//! The rules are here; the counters live behind `store::RateCounters`: in this process
//! (`MemoryCounters`, the SQLite default), or in PostgreSQL, where every node counts in the
//! same rows (`Store::shared_counters`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;

use crate::clock::SharedClock;
use crate::config::{Rate, RateLimitConfig};
use crate::store::{
    BucketTake, FailureRule, FailureState, Millis, RateCounters, Refused, StoreError, StoreResult,
};

/// The limited actions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Limit {
    /// Sign-in and sign-up per client IP.
    AuthPerIp,
    /// Mail-sending endpoints per client IP.
    MailPerIp,
    /// Mail per recipient, short window.
    MailPerRecipientShort,
    /// Mail per recipient, long window.
    MailPerRecipientLong,
    /// Link and grant redemption per client IP.
    RedeemPerIp,
    /// Uploads per user.
    UploadsPerUser,
}

impl Limit {
    /// Stable name, as stored.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::AuthPerIp => "auth_per_ip",
            Self::MailPerIp => "mail_per_ip",
            Self::MailPerRecipientShort => "mail_per_recipient_short",
            Self::MailPerRecipientLong => "mail_per_recipient_long",
            Self::RedeemPerIp => "redeem_per_ip",
            Self::UploadsPerUser => "uploads_per_user",
        }
    }
}

/// Refused: try again after this many seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("rate limited; retry after {0} s")]
pub struct RetryAfter(pub u64);

/// Why a limited action may not go ahead.
#[derive(Debug, thiserror::Error)]
pub enum LimitError {
    /// Over the limit.
    #[error(transparent)]
    Limited(#[from] RetryAfter),
    /// The counters could not be read or written.
    #[error("rate-limit counters: {0}")]
    Unavailable(#[from] StoreError),
}

/// The configured limits over their counters.
pub struct RateLimiter {
    config: RateLimitConfig,
    clock: SharedClock,
    counters: Arc<dyn RateCounters>,
    failure_rule: FailureRule,
}

impl RateLimiter {
    /// Limits as configured, counted in this process.
    pub fn new(config: RateLimitConfig, clock: SharedClock) -> Self {
        Self::with_counters(config, clock, Arc::new(MemoryCounters::default()))
    }

    /// Limits as configured, counted by `counters`.
    pub fn with_counters(
        config: RateLimitConfig,
        clock: SharedClock,
        counters: Arc<dyn RateCounters>,
    ) -> Self {
        let failure_rule = FailureRule {
            window_ms: secs_to_ms(config.sign_in_lockout_window_secs),
            free: config.sign_in_free_failures,
            delays_ms: config
                .sign_in_delays_secs
                .iter()
                .map(|secs| secs_to_ms(*secs))
                .collect(),
            lockout: config.sign_in_lockout_failures,
        };
        Self {
            config,
            clock,
            counters,
            failure_rule,
        }
    }

    fn rate(&self, limit: Limit) -> Rate {
        match limit {
            Limit::AuthPerIp => self.config.auth_per_ip,
            Limit::MailPerIp => self.config.mail_per_ip,
            Limit::MailPerRecipientShort => self.config.mail_per_recipient_short,
            Limit::MailPerRecipientLong => self.config.mail_per_recipient_long,
            Limit::RedeemPerIp => self.config.redeem_per_ip,
            Limit::UploadsPerUser => self.config.uploads_per_user,
        }
    }

    /// Take one token for `key`, or say how long to wait.
    pub async fn check(&self, limit: Limit, key: &str) -> Result<(), LimitError> {
        self.check_all(&[(limit, key)]).await
    }

    /// Take one token from each bucket, all or none.
    pub async fn check_all(&self, limits: &[(Limit, &str)]) -> Result<(), LimitError> {
        if !self.config.enabled {
            return Ok(());
        }
        let buckets: Vec<BucketTake<'_>> = limits
            .iter()
            .map(|(limit, key)| {
                let rate = self.rate(*limit);
                BucketTake {
                    name: limit.as_str(),
                    key,
                    burst: f64::from(rate.burst),
                    count: f64::from(rate.count),
                    window_ms: rate.per_secs as f64 * 1000.0,
                }
            })
            .collect();
        let refused = self.counters.take(&buckets, self.clock.now()).await?;
        let wait = refused
            .iter()
            .map(|(i, tokens)| {
                let rate = self.rate(limits[*i].0);
                let per_token = rate.per_secs as f64 / f64::from(rate.count);
                ((1.0 - tokens) * per_token).ceil().max(1.0) as u64
            })
            .max();
        match wait {
            Some(secs) => Err(RetryAfter(secs).into()),
            None => Ok(()),
        }
    }

    /// Whether sign-in attempts for this account must wait.
    pub async fn sign_in_allowed(&self, account: &str) -> Result<(), LimitError> {
        if !self.config.enabled {
            return Ok(());
        }
        let now = self.clock.now();
        match self.counters.blocked_until(account).await? {
            Some(until) if until > now => {
                let secs = (until - now + 999) / 1000;
                Err(RetryAfter(u64::try_from(secs).unwrap_or(1).max(1)).into())
            }
            _ => Ok(()),
        }
    }

    /// Count a failed sign-in; delays grow after the free failures.
    pub async fn sign_in_failed(&self, account: &str) -> StoreResult<()> {
        if !self.config.enabled {
            return Ok(());
        }
        self.counters
            .count_failure(account, self.clock.now(), &self.failure_rule)
            .await
    }

    /// A successful sign-in clears the account's failures.
    pub async fn sign_in_succeeded(&self, account: &str) -> StoreResult<()> {
        if !self.config.enabled {
            return Ok(());
        }
        self.counters.clear_failures(account).await
    }

    /// Forget counters that no longer limit anything (run now and then).
    pub async fn prune(&self) -> StoreResult<u64> {
        self.counters.prune(self.clock.now()).await
    }
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    updated: Millis,
    full_at: Millis,
}

#[derive(Debug, Clone, Copy)]
struct Failures {
    state: FailureState,
    expires_at: Millis,
}

/// Counters of this process only (one node, SQLite).
#[derive(Default)]
pub struct MemoryCounters {
    buckets: Mutex<HashMap<(&'static str, String), Bucket>>,
    failures: Mutex<HashMap<String, Failures>>,
}

/// Entries kept before a take or a failure prunes the forgettable ones.
const PRUNE_AT: usize = 100_000;

#[async_trait]
impl RateCounters for MemoryCounters {
    async fn take(&self, buckets: &[BucketTake<'_>], now: Millis) -> StoreResult<Refused> {
        let mut stored = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        if stored.len() > PRUNE_AT {
            stored.retain(|_, bucket| bucket.full_at > now);
        }
        let mut refused = Vec::new();
        let mut taken = Vec::with_capacity(buckets.len());
        for (i, take) in buckets.iter().enumerate() {
            let tokens = stored
                .get(&(take.name, take.key.to_string()))
                .map_or(take.burst, |b| take.refill(b.tokens, b.updated, now));
            if tokens < 1.0 {
                refused.push((i, tokens));
            }
            taken.push(tokens - 1.0);
        }
        if refused.is_empty() {
            for (take, tokens) in buckets.iter().zip(taken) {
                let bucket = Bucket {
                    tokens,
                    updated: now,
                    full_at: take.full_at(tokens, now),
                };
                stored.insert((take.name, take.key.to_string()), bucket);
            }
        }
        Ok(refused)
    }

    async fn blocked_until(&self, account: &str) -> StoreResult<Option<Millis>> {
        let failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        Ok(failures.get(account).map(|f| f.state.blocked_until))
    }

    async fn count_failure(
        &self,
        account: &str,
        now: Millis,
        rule: &FailureRule,
    ) -> StoreResult<()> {
        let mut failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        if failures.len() > PRUNE_AT {
            failures.retain(|_, f| f.expires_at > now);
        }
        let entry = failures
            .entry(account.to_string())
            .or_insert_with(|| Failures {
                state: FailureState::default(),
                expires_at: 0,
            });
        entry.state = entry.state.counted(now, rule);
        entry.expires_at = entry.state.expires_at(rule);
        Ok(())
    }

    async fn clear_failures(&self, account: &str) -> StoreResult<()> {
        let mut failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        failures.remove(account);
        Ok(())
    }

    async fn prune(&self, now: Millis) -> StoreResult<u64> {
        let mut pruned = 0;
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        let before = buckets.len();
        buckets.retain(|_, bucket| bucket.full_at > now);
        pruned += before - buckets.len();
        drop(buckets);
        let mut failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        let before = failures.len();
        failures.retain(|_, f| f.expires_at > now);
        pruned += before - failures.len();
        Ok(pruned as u64)
    }
}

fn secs_to_ms(secs: u64) -> Millis {
    i64::try_from(secs.saturating_mul(1000)).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    //! Every case runs on the counters of this process and on PostgreSQL's (a fresh test
    //! database each, as in the store's conformance suite).

    use std::sync::Arc;
    use std::time::Duration;

    use super::*;
    use crate::clock::ManualClock;

    macro_rules! on_both {
        ($($case:ident),* $(,)?) => {
            mod memory {
                $(
                    #[tokio::test]
                    async fn $case() {
                        super::$case(std::sync::Arc::new(super::MemoryCounters::default())).await;
                    }
                )*
            }
            mod postgres {
                $(
                    #[tokio::test]
                    async fn $case() {
                        use crate::store::Store;
                        let db = crate::store::conformance::TestDatabase::create().await;
                        let store = crate::store::PostgresStore::open(&db.url, 4).await.unwrap();
                        super::$case(store.shared_counters().unwrap()).await;
                    }
                )*
            }
            mod redis {
                $(
                    #[tokio::test]
                    async fn $case() {
                        let counters = super::redis_counters().await;
                        super::$case(counters.clone()).await;
                        // Forget this test's keys.
                        counters.prune(crate::store::Millis::MAX).await.unwrap();
                    }
                )*
            }
        };
    }

    /// Counters in the Redis at `BASALT_TEST_REDIS_URL` (default: the local server's
    /// database 0), under a prefix of their own.
    async fn redis_counters() -> Arc<dyn RateCounters> {
        let (url, prefix) = crate::store::conformance::test_redis();
        Arc::new(
            crate::store::RedisCounters::connect(&url, &prefix, None)
                .await
                .unwrap_or_else(|err| panic!("Redis at {url} (BASALT_TEST_REDIS_URL): {err:?}")),
        )
    }

    on_both!(
        a_burst_then_the_steady_rate,
        several_buckets_are_all_or_nothing,
        failed_sign_ins_grow_delays_and_success_resets,
        a_hundred_failures_lock_until_the_window_ends,
        concurrent_checks_take_each_token_once,
        limiters_sharing_counters_count_together,
        counters_are_forgotten_once_they_limit_nothing,
        failures_count_as_the_reference_counts_them,
        buckets_refill_as_the_reference_refills_them,
    );

    /// A fixed pseudo-random sequence (an LCG): the same irregular times on every backend.
    fn steps(seed: u64) -> impl Iterator<Item = usize> {
        std::iter::successors(Some(seed), |s| {
            Some(s.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1))
        })
        .skip(1)
        .map(|s| (s >> 33) as usize)
    }

    /// A backend's failures agree with `FailureState::counted`, the reference, over failures
    /// at irregular times: delays, the last repeating, windows that reset, lockouts.
    async fn failures_count_as_the_reference_counts_them(counters: Arc<dyn RateCounters>) {
        let rules = [
            FailureRule {
                window_ms: 10_000,
                free: 2,
                delays_ms: vec![1000, 3000],
                lockout: 5,
            },
            FailureRule {
                window_ms: 10_000,
                free: 0,
                delays_ms: Vec::new(),
                lockout: 3,
            },
        ];
        for (n, rule) in rules.iter().enumerate() {
            let account = format!("account-{n}");
            let mut reference = crate::store::FailureState::default();
            let mut now = 1_700_000_000_000_i64;
            for step in steps(7).take(60) {
                now += [0, 400, 1500, 3000, 12_000][step % 5];
                reference = reference.counted(now, rule);
                counters.count_failure(&account, now, rule).await.unwrap();
                assert_eq!(
                    counters.blocked_until(&account).await.unwrap(),
                    Some(reference.blocked_until),
                    "{rule:?} at {now}"
                );
            }
        }
    }

    /// A backend's buckets hold exactly the tokens `BucketTake::refill` computes, to the
    /// last bit, over takes at irregular times at a rate that does not divide evenly.
    async fn buckets_refill_as_the_reference_refills_them(counters: Arc<dyn RateCounters>) {
        let bucket = BucketTake {
            name: "reference",
            key: "k",
            burst: 3.0,
            count: 7.0,
            window_ms: 3_000.0,
        };
        let (mut tokens, mut updated) = (bucket.burst, 0);
        let mut now = 1_700_000_000_000_i64;
        let mut refusals = 0;
        for step in steps(11).take(200) {
            now += [0, 1, 7, 113, 401, 977][step % 6];
            let expected = bucket.refill(tokens, updated, now);
            let refused = counters.take(&[bucket], now).await.unwrap();
            if expected >= 1.0 {
                assert_eq!(refused, Vec::new(), "at {now}");
                (tokens, updated) = (expected - 1.0, now);
            } else {
                assert_eq!(refused, vec![(0, expected)], "at {now}");
                refusals += 1;
            }
        }
        assert!(
            refusals > 20,
            "the sequence should meet empty buckets: {refusals}"
        );
    }

    fn limiter(counters: Arc<dyn RateCounters>) -> (Arc<ManualClock>, RateLimiter) {
        let clock = Arc::new(ManualClock::new());
        let limiter =
            RateLimiter::with_counters(RateLimitConfig::default(), clock.clone(), counters);
        (clock, limiter)
    }

    /// The wait of a refusal; `None` when allowed.
    fn wait(outcome: Result<(), LimitError>) -> Option<u64> {
        match outcome {
            Ok(()) => None,
            Err(LimitError::Limited(RetryAfter(secs))) => Some(secs),
            Err(err) => panic!("{err}"),
        }
    }

    async fn a_burst_then_the_steady_rate(counters: Arc<dyn RateCounters>) {
        let (clock, limiter) = limiter(counters);
        for _ in 0..10 {
            limiter.check(Limit::AuthPerIp, "1.2.3.4").await.unwrap();
        }
        assert_eq!(
            wait(limiter.check(Limit::AuthPerIp, "1.2.3.4").await),
            Some(2)
        );
        limiter.check(Limit::AuthPerIp, "5.6.7.8").await.unwrap();
        limiter.check(Limit::MailPerIp, "1.2.3.4").await.unwrap();
        clock.advance(Duration::from_secs(2));
        limiter.check(Limit::AuthPerIp, "1.2.3.4").await.unwrap();
        assert_eq!(
            wait(limiter.check(Limit::AuthPerIp, "1.2.3.4").await),
            Some(2)
        );
    }

    async fn several_buckets_are_all_or_nothing(counters: Arc<dyn RateCounters>) {
        let (clock, limiter) = limiter(counters);
        let both = [
            (Limit::MailPerRecipientShort, "ada@example.com"),
            (Limit::MailPerRecipientLong, "ada@example.com"),
        ];
        limiter.check_all(&both).await.unwrap();
        assert!(wait(limiter.check_all(&both).await).is_some());
        for _ in 0..4 {
            clock.advance(Duration::from_secs(61));
            limiter.check_all(&both).await.unwrap();
        }
        clock.advance(Duration::from_secs(61));
        assert!(wait(limiter.check_all(&both).await).is_some(), "5 an hour");
        // The refused checks took nothing from the short bucket: one token a minute is back.
        clock.advance(Duration::from_secs(61));
        limiter
            .check(Limit::MailPerRecipientShort, "ada@example.com")
            .await
            .unwrap();
    }

    async fn failed_sign_ins_grow_delays_and_success_resets(counters: Arc<dyn RateCounters>) {
        let (clock, limiter) = limiter(counters);
        for _ in 0..3 {
            limiter.sign_in_failed("ada").await.unwrap();
            limiter.sign_in_allowed("ada").await.unwrap();
        }
        limiter.sign_in_failed("ada").await.unwrap();
        assert_eq!(wait(limiter.sign_in_allowed("ada").await), Some(1));
        clock.advance(Duration::from_secs(1));
        limiter.sign_in_failed("ada").await.unwrap();
        assert_eq!(wait(limiter.sign_in_allowed("ada").await), Some(3));
        limiter.sign_in_allowed("bob").await.unwrap();
        clock.advance(Duration::from_secs(3));
        limiter.sign_in_succeeded("ada").await.unwrap();
        limiter.sign_in_failed("ada").await.unwrap();
        limiter.sign_in_allowed("ada").await.unwrap();
    }

    async fn a_hundred_failures_lock_until_the_window_ends(counters: Arc<dyn RateCounters>) {
        let (clock, limiter) = limiter(counters);
        for _ in 0..100 {
            clock.advance(Duration::from_secs(11));
            limiter.sign_in_failed("ada").await.unwrap();
        }
        let wait = wait(limiter.sign_in_allowed("ada").await).unwrap();
        assert!(wait > 20 * 3600, "{wait}");
    }

    async fn concurrent_checks_take_each_token_once(counters: Arc<dyn RateCounters>) {
        let (_clock, limiter) = limiter(counters);
        let checks = (0..30).map(|_| limiter.check(Limit::AuthPerIp, "1.2.3.4"));
        let allowed = futures_util::future::join_all(checks)
            .await
            .into_iter()
            .filter(|outcome| outcome.is_ok())
            .count();
        assert_eq!(allowed, 10, "the burst, no more");
        let both = [
            (Limit::MailPerRecipientShort, "ada@example.com"),
            (Limit::MailPerRecipientLong, "ada@example.com"),
        ];
        let checks = (0..8).map(|_| limiter.check_all(&both));
        let allowed = futures_util::future::join_all(checks)
            .await
            .into_iter()
            .filter(|outcome| outcome.is_ok())
            .count();
        assert_eq!(allowed, 1);
    }

    async fn limiters_sharing_counters_count_together(counters: Arc<dyn RateCounters>) {
        // Two nodes: their own limiters and clocks, the same counters.
        let (clock, first) = limiter(counters.clone());
        let second =
            RateLimiter::with_counters(RateLimitConfig::default(), clock.clone(), counters);
        for i in 0..10 {
            let node = if i % 2 == 0 { &first } else { &second };
            node.check(Limit::AuthPerIp, "1.2.3.4").await.unwrap();
        }
        assert!(wait(second.check(Limit::AuthPerIp, "1.2.3.4").await).is_some());
        for i in 0..4 {
            let node = if i % 2 == 0 { &first } else { &second };
            node.sign_in_failed("ada").await.unwrap();
        }
        assert_eq!(wait(first.sign_in_allowed("ada").await), Some(1));
        assert_eq!(wait(second.sign_in_allowed("ada").await), Some(1));
        second.sign_in_succeeded("ada").await.unwrap();
        first.sign_in_allowed("ada").await.unwrap();
    }

    async fn counters_are_forgotten_once_they_limit_nothing(counters: Arc<dyn RateCounters>) {
        let (clock, limiter) = limiter(counters);
        limiter.check(Limit::AuthPerIp, "1.2.3.4").await.unwrap();
        limiter
            .check(Limit::MailPerRecipientLong, "ada")
            .await
            .unwrap();
        limiter.sign_in_failed("ada").await.unwrap();
        assert_eq!(limiter.prune().await.unwrap(), 0, "everything still counts");
        // One token of 30 a minute is back after 2 s: the per-IP bucket is full again.
        clock.advance(Duration::from_secs(2));
        assert_eq!(limiter.prune().await.unwrap(), 1);
        // The long mail bucket (5 an hour) refills in 12 minutes; a failure's window is a day.
        clock.advance(Duration::from_secs(12 * 60));
        assert_eq!(limiter.prune().await.unwrap(), 1);
        clock.advance(Duration::from_secs(24 * 3600));
        assert_eq!(limiter.prune().await.unwrap(), 1);
        // Forgotten counters read as fresh ones.
        for _ in 0..3 {
            limiter.sign_in_failed("ada").await.unwrap();
        }
        limiter.sign_in_allowed("ada").await.unwrap();
    }
}
