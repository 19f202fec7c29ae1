//! Rate limits: token buckets per (limit, key) and growing delays after failed sign-ins.
//!
//! Counters live in this process. With several nodes each counts on its own; a shared
//! backend for them is part of the scale-out work (docs/ARCHITECTURE.md).

use std::collections::HashMap;
use std::sync::Mutex;

use crate::clock::SharedClock;
use crate::config::{Rate, RateLimitConfig};
use crate::store::Millis;

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

/// Refused: try again after this many seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("rate limited; retry after {0} s")]
pub struct RetryAfter(pub u64);

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    updated: Millis,
}

#[derive(Debug, Clone, Copy, Default)]
struct Failures {
    consecutive: u32,
    window_start: Millis,
    in_window: u32,
    blocked_until: Millis,
}

/// Every counter of this process.
pub struct RateLimiter {
    config: RateLimitConfig,
    clock: SharedClock,
    buckets: Mutex<HashMap<(Limit, String), Bucket>>,
    failures: Mutex<HashMap<String, Failures>>,
}

const PRUNE_AT: usize = 100_000;

impl RateLimiter {
    /// Limits as configured.
    pub fn new(config: RateLimitConfig, clock: SharedClock) -> Self {
        Self {
            config,
            clock,
            buckets: Mutex::new(HashMap::new()),
            failures: Mutex::new(HashMap::new()),
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
    pub fn check(&self, limit: Limit, key: &str) -> Result<(), RetryAfter> {
        self.check_all(&[(limit, key)])
    }

    /// Take one token from each bucket, all or none.
    pub fn check_all(&self, limits: &[(Limit, &str)]) -> Result<(), RetryAfter> {
        if !self.config.enabled {
            return Ok(());
        }
        let now = self.clock.now();
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        if buckets.len() > PRUNE_AT {
            buckets.retain(|(limit, _), bucket| {
                let rate = self.rate(*limit);
                refill(bucket, rate, now) < f64::from(rate.burst)
            });
        }
        let mut wait = 0u64;
        let mut refilled = Vec::with_capacity(limits.len());
        for (limit, key) in limits {
            let rate = self.rate(*limit);
            let mut bucket = buckets
                .get(&(*limit, (*key).to_string()))
                .copied()
                .unwrap_or(Bucket {
                    tokens: f64::from(rate.burst),
                    updated: now,
                });
            bucket.tokens = refill(&bucket, rate, now);
            bucket.updated = now;
            if bucket.tokens < 1.0 {
                let per_token = rate.per_secs as f64 / f64::from(rate.count);
                let secs = ((1.0 - bucket.tokens) * per_token).ceil().max(1.0);
                wait = wait.max(secs as u64);
            }
            refilled.push(((*limit, (*key).to_string()), bucket));
        }
        if wait > 0 {
            return Err(RetryAfter(wait));
        }
        for (id, mut bucket) in refilled {
            bucket.tokens -= 1.0;
            buckets.insert(id, bucket);
        }
        Ok(())
    }

    /// Whether sign-in attempts for this account must wait.
    pub fn sign_in_allowed(&self, account: &str) -> Result<(), RetryAfter> {
        if !self.config.enabled {
            return Ok(());
        }
        let now = self.clock.now();
        let failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        match failures.get(account) {
            Some(f) if f.blocked_until > now => {
                let secs = (f.blocked_until - now + 999) / 1000;
                Err(RetryAfter(u64::try_from(secs).unwrap_or(1).max(1)))
            }
            _ => Ok(()),
        }
    }

    /// Count a failed sign-in; delays grow after the free failures.
    pub fn sign_in_failed(&self, account: &str) {
        if !self.config.enabled {
            return;
        }
        let now = self.clock.now();
        let window = secs_to_ms(self.config.sign_in_lockout_window_secs);
        let mut failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        if failures.len() > PRUNE_AT {
            failures.retain(|_, f| f.blocked_until > now || now - f.window_start < window);
        }
        let f = failures.entry(account.to_string()).or_default();
        if now - f.window_start >= window {
            f.window_start = now;
            f.in_window = 0;
        }
        f.consecutive += 1;
        f.in_window += 1;
        if f.consecutive > self.config.sign_in_free_failures {
            let step = (f.consecutive - self.config.sign_in_free_failures - 1) as usize;
            let delays = &self.config.sign_in_delays_secs;
            let delay = delays
                .get(step.min(delays.len().saturating_sub(1)))
                .copied();
            f.blocked_until = now + secs_to_ms(delay.unwrap_or(0));
        }
        if f.in_window >= self.config.sign_in_lockout_failures {
            f.blocked_until = f.blocked_until.max(f.window_start + window);
        }
    }

    /// A successful sign-in clears the account's failures.
    pub fn sign_in_succeeded(&self, account: &str) {
        let mut failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        failures.remove(account);
    }
}

fn refill(bucket: &Bucket, rate: Rate, now: Millis) -> f64 {
    let elapsed = (now - bucket.updated).max(0) as f64 / 1000.0;
    let per_sec = f64::from(rate.count) / rate.per_secs as f64;
    (bucket.tokens + elapsed * per_sec).min(f64::from(rate.burst))
}

fn secs_to_ms(secs: u64) -> Millis {
    i64::try_from(secs.saturating_mul(1000)).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use super::*;
    use crate::clock::ManualClock;

    fn limiter() -> (Arc<ManualClock>, RateLimiter) {
        let clock = Arc::new(ManualClock::new());
        let limiter = RateLimiter::new(RateLimitConfig::default(), clock.clone());
        (clock, limiter)
    }

    #[test]
    fn a_burst_then_the_steady_rate() {
        let (clock, limiter) = limiter();
        for _ in 0..10 {
            limiter.check(Limit::AuthPerIp, "1.2.3.4").unwrap();
        }
        assert_eq!(
            limiter.check(Limit::AuthPerIp, "1.2.3.4"),
            Err(RetryAfter(2))
        );
        limiter.check(Limit::AuthPerIp, "5.6.7.8").unwrap();
        clock.advance(Duration::from_secs(2));
        limiter.check(Limit::AuthPerIp, "1.2.3.4").unwrap();
    }

    #[test]
    fn several_buckets_are_all_or_nothing() {
        let (clock, limiter) = limiter();
        let both = [
            (Limit::MailPerRecipientShort, "ada@example.com"),
            (Limit::MailPerRecipientLong, "ada@example.com"),
        ];
        limiter.check_all(&both).unwrap();
        assert!(limiter.check_all(&both).is_err());
        for _ in 0..4 {
            clock.advance(Duration::from_secs(61));
            limiter.check_all(&both).unwrap();
        }
        clock.advance(Duration::from_secs(61));
        assert!(limiter.check_all(&both).is_err(), "5 an hour");
    }

    #[test]
    fn failed_sign_ins_grow_delays_and_success_resets() {
        let (clock, limiter) = limiter();
        for _ in 0..3 {
            limiter.sign_in_failed("ada");
            limiter.sign_in_allowed("ada").unwrap();
        }
        limiter.sign_in_failed("ada");
        assert_eq!(limiter.sign_in_allowed("ada"), Err(RetryAfter(1)));
        clock.advance(Duration::from_secs(1));
        limiter.sign_in_failed("ada");
        assert_eq!(limiter.sign_in_allowed("ada"), Err(RetryAfter(3)));
        clock.advance(Duration::from_secs(3));
        limiter.sign_in_succeeded("ada");
        limiter.sign_in_failed("ada");
        limiter.sign_in_allowed("ada").unwrap();
    }

    #[test]
    fn a_hundred_failures_lock_until_the_window_ends() {
        let (clock, limiter) = limiter();
        for _ in 0..100 {
            clock.advance(Duration::from_secs(11));
            limiter.sign_in_failed("ada");
        }
        let RetryAfter(wait) = limiter.sign_in_allowed("ada").unwrap_err();
        assert!(wait > 20 * 3600, "{wait}");
    }
}
