//! Rate-limit counters kept where every node sees them: the token buckets and failed sign-ins
//! of `limits.rs`, as a backend shared by several nodes stores them (PostgreSQL). A single
//! process keeps them in memory instead (`limits::MemoryCounters`), behind the same trait.
//!
//! Every method takes the caller's clock reading, so tests move time by moving the clock.

use async_trait::async_trait;

use super::{Millis, StoreResult};

/// One token bucket of a check: refilled by `count` tokens every `window_ms` up to `burst`.
#[derive(Debug, Clone, Copy)]
pub struct BucketTake<'a> {
    /// The limit's stable name (`auth_per_ip`).
    pub name: &'static str,
    /// Whose bucket (an address, a user id).
    pub key: &'a str,
    /// Most tokens the bucket holds (a fresh bucket is full).
    pub burst: f64,
    /// Tokens added per window.
    pub count: f64,
    /// The window, milliseconds.
    pub window_ms: f64,
}

impl BucketTake<'_> {
    /// The tokens of a bucket that held `tokens` at `updated`, refilled to `now`.
    pub fn refill(&self, tokens: f64, updated: Millis, now: Millis) -> f64 {
        // In this order (elapsed × count ÷ window) the common cases are exact, and the
        // PostgreSQL backend computes the same float8 operations in SQL.
        let elapsed = (now - updated).max(0) as f64;
        (tokens + elapsed * self.count / self.window_ms).min(self.burst)
    }

    /// When a bucket holding `tokens` after a take is full again: it may be forgotten then,
    /// since a missing bucket reads as full.
    pub fn full_at(&self, tokens: f64, now: Millis) -> Millis {
        let missing = (self.burst - tokens).max(0.0);
        now.saturating_add((missing * self.window_ms / self.count).ceil() as Millis)
    }
}

/// The buckets a check could not take from: `(index in the check, tokens it holds)`. Empty
/// when every token was taken.
pub type Refused = Vec<(usize, f64)>;

/// How failed sign-ins delay and lock an account.
#[derive(Debug, Clone)]
pub struct FailureRule {
    /// The lockout window.
    pub window_ms: Millis,
    /// Consecutive failures without a delay.
    pub free: u32,
    /// Delays after the free failures, the last repeating; none means no delay.
    pub delays_ms: Vec<Millis>,
    /// Failures within one window that lock the account until the window ends.
    pub lockout: u32,
}

/// The failed sign-ins of one account.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FailureState {
    /// Failures since the last success.
    pub consecutive: u32,
    /// Start of the current lockout window.
    pub window_start: Millis,
    /// Failures within that window.
    pub in_window: u32,
    /// Sign-ins wait until then.
    pub blocked_until: Millis,
}

impl FailureState {
    /// The state after one more failure at `now` (the state of a fresh account is the
    /// default). The PostgreSQL backend computes the same in SQL.
    pub fn counted(mut self, now: Millis, rule: &FailureRule) -> Self {
        if now - self.window_start >= rule.window_ms {
            self.window_start = now;
            self.in_window = 0;
        }
        self.consecutive += 1;
        self.in_window += 1;
        if self.consecutive > rule.free {
            let step = (self.consecutive - rule.free - 1) as usize;
            let delay = rule
                .delays_ms
                .get(step.min(rule.delays_ms.len().saturating_sub(1)))
                .copied();
            self.blocked_until = now + delay.unwrap_or(0);
        }
        if self.in_window >= rule.lockout {
            self.blocked_until = self.blocked_until.max(self.window_start + rule.window_ms);
        }
        self
    }

    /// When this state may be forgotten: its delay and its window are over.
    pub fn expires_at(&self, rule: &FailureRule) -> Millis {
        self.blocked_until
            .max(self.window_start.saturating_add(rule.window_ms))
    }
}

/// Where the counters live.
#[async_trait]
pub trait RateCounters: Send + Sync + 'static {
    /// Refill every bucket to `now` and take one token from each, all or none: when any
    /// holds less than one token, nothing changes and the refused ones are returned.
    async fn take(&self, buckets: &[BucketTake<'_>], now: Millis) -> StoreResult<Refused>;
    /// Until when sign-ins of `account` must wait, if it failed before.
    async fn blocked_until(&self, account: &str) -> StoreResult<Option<Millis>>;
    /// Count a failed sign-in of `account` at `now`.
    async fn count_failure(
        &self,
        account: &str,
        now: Millis,
        rule: &FailureRule,
    ) -> StoreResult<()>;
    /// Forget the failures of `account` (a sign-in succeeded).
    async fn clear_failures(&self, account: &str) -> StoreResult<()>;
    /// Forget full buckets and failures whose window and delay are over. Returns how many.
    async fn prune(&self, now: Millis) -> StoreResult<u64>;
}
