//! Passwords: the policy checked before hashing, and a bounded Argon2id pool off the runtime.

use std::collections::HashSet;
use std::sync::{Arc, LazyLock, OnceLock};
use std::time::Duration;

use argon2::password_hash::{PasswordHash, PasswordHasher as _, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use rand::TryRngCore;
use rand::rngs::OsRng;
use tokio::sync::Semaphore;
use unicode_normalization::UnicodeNormalization;

use super::email::EmailAddress;
use crate::config::PasswordHashConfig;

const MAX_CHARS: usize = 128;
const MAX_BYTES: usize = 512;

static COMMON: LazyLock<HashSet<&'static str>> = LazyLock::new(|| {
    include_str!("../../assets/common-passwords.txt")
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .collect()
});

/// Why a password was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum WeakPassword {
    /// Fewer characters than the minimum.
    #[error("Password must be at least {0} characters long.")]
    TooShort(usize),
    /// More than 128 characters or 512 bytes.
    #[error("Password must be at most 128 characters long.")]
    TooLong,
    /// Found in the list of common passwords.
    #[error("This password is too common. Choose a less guessable one.")]
    Common,
    /// Equal to the email address or its local part.
    #[error("Password must not be the email address.")]
    SameAsEmail,
}

/// Length and guessability rules, checked before any hashing.
#[derive(Debug, Clone)]
pub struct PasswordPolicy {
    min_chars: usize,
}

impl PasswordPolicy {
    /// A policy with the configured minimum length (never below 8).
    pub fn new(min_chars: usize) -> Self {
        Self {
            min_chars: min_chars.max(8),
        }
    }

    /// Check a new password; `email` is the account's address.
    pub fn check(&self, password: &str, email: Option<&EmailAddress>) -> Result<(), WeakPassword> {
        if password.len() > MAX_BYTES {
            return Err(WeakPassword::TooLong);
        }
        let normalized = normalize(password);
        let chars = normalized.chars().count();
        if chars < self.min_chars {
            return Err(WeakPassword::TooShort(self.min_chars));
        }
        if chars > MAX_CHARS {
            return Err(WeakPassword::TooLong);
        }
        let lower = normalized.to_lowercase();
        if COMMON.contains(lower.as_str()) {
            return Err(WeakPassword::Common);
        }
        if let Some(email) = email
            && (lower == email.key() || lower == email.local_part().to_lowercase())
        {
            return Err(WeakPassword::SameAsEmail);
        }
        Ok(())
    }
}

/// NFKC, so the same password typed on different keyboards hashes the same.
fn normalize(password: &str) -> String {
    password.nfkc().collect()
}

/// Why hashing could not be done.
#[derive(Debug, thiserror::Error)]
pub enum HashError {
    /// No hashing slot freed within the queue timeout.
    #[error("the password hashing pool is saturated")]
    Busy,
    /// Argon2 or the blocking pool failed.
    #[error("password hashing failed: {0}")]
    Failed(String),
}

/// Outcome of checking a password against a stored hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verified {
    /// Wrong password (or no stored hash).
    No,
    /// Right password; carries a new hash when the stored parameters are weaker than configured.
    Yes {
        /// Replacement hash with the current parameters.
        rehash: Option<String>,
    },
}

/// Argon2id hashing on the blocking pool, at most `max_concurrent` at a time.
#[derive(Clone)]
pub struct PasswordHasher {
    params: Params,
    slots: Arc<Semaphore>,
    max_slots: usize,
    queue_timeout: Duration,
    dummy: Arc<OnceLock<String>>,
}

impl PasswordHasher {
    /// A pool with the configured parameters.
    pub fn new(config: &PasswordHashConfig) -> Result<Self, HashError> {
        let params = Params::new(
            config.memory_kib,
            config.iterations,
            config.parallelism,
            None,
        )
        .map_err(|err| HashError::Failed(err.to_string()))?;
        let slots = if config.max_concurrent == 0 {
            2 * std::thread::available_parallelism().map_or(1, usize::from)
        } else {
            config.max_concurrent
        };
        Ok(Self {
            params,
            slots: Arc::new(Semaphore::new(slots)),
            max_slots: slots,
            queue_timeout: Duration::from_millis(config.queue_timeout_ms),
            dummy: Arc::new(OnceLock::new()),
        })
    }

    /// How many hashes may run at once.
    pub fn slots(&self) -> usize {
        self.max_slots
    }

    fn argon2(params: &Params) -> Argon2<'static> {
        Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone())
    }

    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> Result<T, HashError> + Send + 'static,
    ) -> Result<T, HashError> {
        let permit = tokio::time::timeout(self.queue_timeout, self.slots.clone().acquire_owned())
            .await
            .map_err(|_| HashError::Busy)?
            .map_err(|_| HashError::Busy)?;

        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            work()
        })
        .await
        .map_err(|err| HashError::Failed(err.to_string()))?
    }

    /// Hash a new password (NFKC first).
    pub async fn hash(&self, password: &str) -> Result<String, HashError> {
        let password = normalize(password);
        let params = self.params.clone();
        self.run(move || hash_with(&params, &password)).await
    }

    /// Check a password against a stored hash; with no hash, against a fixed dummy so that
    /// unknown accounts take as long as known ones.
    pub async fn verify(
        &self,
        password: &str,
        stored: Option<&str>,
    ) -> Result<Verified, HashError> {
        let password = normalize(password);
        let params = self.params.clone();
        let dummy = self.dummy.clone();
        let stored = stored.map(String::from);
        self.run(move || {
            let (hash, real) = match stored {
                Some(hash) => (hash, true),
                None => (dummy_hash(&dummy, &params)?, false),
            };
            let parsed =
                PasswordHash::new(&hash).map_err(|err| HashError::Failed(err.to_string()))?;
            let stored_params = Params::try_from(&parsed).ok();
            // Verify with the stored hash's own parameters.
            let ok = Argon2::default()
                .verify_password(password.as_bytes(), &parsed)
                .is_ok();
            if !(ok && real) {
                return Ok(Verified::No);
            }
            let weaker = stored_params.is_none_or(|p| {
                p.m_cost() < params.m_cost()
                    || p.t_cost() < params.t_cost()
                    || p.p_cost() < params.p_cost()
            }) || parsed.algorithm.as_str() != "argon2id";
            let rehash = if weaker {
                Some(hash_with(&params, &password)?)
            } else {
                None
            };
            Ok(Verified::Yes { rehash })
        })
        .await
    }
}

fn hash_with(params: &Params, password: &str) -> Result<String, HashError> {
    let mut bytes = [0u8; 16];
    OsRng
        .try_fill_bytes(&mut bytes)
        .map_err(|err| HashError::Failed(err.to_string()))?;
    let salt = SaltString::encode_b64(&bytes).map_err(|err| HashError::Failed(err.to_string()))?;
    PasswordHasher::argon2(params)
        .hash_password(password.as_bytes(), &salt)
        .map(|hash| hash.to_string())
        .map_err(|err| HashError::Failed(err.to_string()))
}

fn dummy_hash(cell: &OnceLock<String>, params: &Params) -> Result<String, HashError> {
    if let Some(hash) = cell.get() {
        return Ok(hash.clone());
    }
    let hash = hash_with(params, "basalt-dummy-password-for-equal-timing")?;
    Ok(cell.get_or_init(|| hash).clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> PasswordPolicy {
        PasswordPolicy::new(8)
    }

    #[test]
    fn the_policy_table() {
        let email = EmailAddress::parse("ada.lovelace@example.com").unwrap();
        let cases: &[(&str, Result<(), WeakPassword>)] = &[
            ("correct horse battery", Ok(())),
            ("short", Err(WeakPassword::TooShort(8))),
            ("password", Err(WeakPassword::Common)),
            ("PASSWORD123", Err(WeakPassword::Common)),
            ("ada.lovelace", Err(WeakPassword::SameAsEmail)),
            ("Ada.Lovelace@example.com", Err(WeakPassword::SameAsEmail)),
            ("ééééééé", Err(WeakPassword::TooShort(8))),
        ];
        for (password, expected) in cases {
            assert_eq!(
                policy().check(password, Some(&email)),
                *expected,
                "{password}"
            );
        }
        assert_eq!(
            policy().check(&"x".repeat(129), None),
            Err(WeakPassword::TooLong)
        );
        assert_eq!(
            policy().check(&"é".repeat(300), None),
            Err(WeakPassword::TooLong)
        );
        assert_eq!(policy().check(&"xy".repeat(64), None), Ok(()));
    }

    #[test]
    fn the_common_list_is_large() {
        assert!(COMMON.len() >= 10_000 - 50, "{}", COMMON.len());
    }

    fn cheap() -> PasswordHashConfig {
        PasswordHashConfig {
            memory_kib: 64,
            iterations: 1,
            parallelism: 1,
            max_concurrent: 2,
            queue_timeout_ms: 2000,
        }
    }

    #[tokio::test]
    async fn hash_then_verify_with_nfkc() {
        let hasher = PasswordHasher::new(&cheap()).unwrap();
        let hash = hasher.hash("ｆｕｌｌｗｉｄｔｈ pass").await.unwrap();
        assert!(hash.starts_with("$argon2id$v=19$"));
        let right = hasher.verify("fullwidth pass", Some(&hash)).await.unwrap();
        assert_eq!(right, Verified::Yes { rehash: None });
        assert_eq!(
            hasher.verify("wrong", Some(&hash)).await.unwrap(),
            Verified::No
        );
        assert_eq!(hasher.verify("anything", None).await.unwrap(), Verified::No);
    }

    #[tokio::test]
    async fn weaker_stored_hashes_are_rehashed() {
        let weak = PasswordHasher::new(&cheap()).unwrap();
        let hash = weak.hash("correct horse battery").await.unwrap();
        let strong = PasswordHasher::new(&PasswordHashConfig {
            memory_kib: 128,
            ..cheap()
        })
        .unwrap();
        let Verified::Yes { rehash: Some(new) } = strong
            .verify("correct horse battery", Some(&hash))
            .await
            .unwrap()
        else {
            panic!("expected a rehash");
        };
        assert!(new.contains("m=128"));
    }
}
