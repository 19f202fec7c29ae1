//! Passwords: the policy checked before hashing, and a bounded Argon2id pool off the runtime.

use std::collections::HashSet;
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use argon2::password_hash::{Output, ParamsString, PasswordHash, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};
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

/// Argon2id hashing on a fixed set of worker threads, at most one hash per worker at a time.
///
/// Each worker keeps its Argon2 memory (`memory_kib`) for its whole life, so hashing allocates
/// nothing and the process's memory stays at `workers × memory_kib` under any load (a fresh
/// buffer per hash on ever-changing blocking threads grew glibc's arenas past a gigabyte).
#[derive(Clone)]
pub struct PasswordHasher {
    params: Params,
    slots: Arc<Semaphore>,
    max_slots: usize,
    queue_timeout: Duration,
    jobs: std::sync::mpsc::SyncSender<Job>,
}

type Job = Box<dyn FnOnce(&mut Vec<Block>) + Send>;

impl PasswordHasher {
    /// A pool with the configured parameters; starts its worker threads.
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
        let (jobs, queue) = std::sync::mpsc::sync_channel::<Job>(slots);
        let queue = Arc::new(std::sync::Mutex::new(queue));
        for i in 0..slots {
            let queue = queue.clone();
            std::thread::Builder::new()
                .name(format!("basalt-hash-{i}"))
                .spawn(move || {
                    lower_priority();
                    let mut memory: Vec<Block> = Vec::new();
                    loop {
                        let job = match queue.lock() {
                            Ok(queue) => queue.recv(),
                            Err(_) => return,
                        };
                        match job {
                            Ok(job) => job(&mut memory),
                            Err(_) => return, // every sender is gone
                        }
                    }
                })
                .map_err(|err| HashError::Failed(err.to_string()))?;
        }
        Ok(Self {
            params,
            slots: Arc::new(Semaphore::new(slots)),
            max_slots: slots,
            queue_timeout: Duration::from_millis(config.queue_timeout_ms),
            jobs,
        })
    }

    /// How many hashes may run at once.
    pub fn slots(&self) -> usize {
        self.max_slots
    }

    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce(&mut Vec<Block>) -> Result<T, HashError> + Send + 'static,
    ) -> Result<T, HashError> {
        let permit = tokio::time::timeout(self.queue_timeout, self.slots.clone().acquire_owned())
            .await
            .map_err(|_| HashError::Busy)?
            .map_err(|_| HashError::Busy)?;
        let (done, result) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move |memory| {
            let _permit = permit;
            let _ = done.send(work(memory));
        });
        self.jobs
            .send(job)
            .map_err(|_| HashError::Failed("the hashing workers stopped".into()))?;
        result
            .await
            .map_err(|_| HashError::Failed("a hashing worker failed".into()))?
    }

    /// Hash a new password (NFKC first).
    pub async fn hash(&self, password: &str) -> Result<String, HashError> {
        let password = normalize(password);
        let params = self.params.clone();
        self.run(move |memory| hash_with(&params, &password, memory))
            .await
    }

    /// Check a password against a stored hash; with no hash, against a fixed dummy with the
    /// configured parameters, so that unknown accounts take as long as known ones.
    pub async fn verify(
        &self,
        password: &str,
        stored: Option<&str>,
    ) -> Result<Verified, HashError> {
        let password = normalize(password);
        let params = self.params.clone();
        let stored = stored.map(String::from);
        self.run(move |memory| {
            let Some(stored) = stored else {
                hash_with(&params, "basalt-dummy-password-for-equal-timing", memory)?;
                return Ok(Verified::No);
            };
            let Ok(parsed) = PasswordHash::new(&stored) else {
                return Ok(Verified::No);
            };
            if !verify_with(&parsed, &password, memory)? {
                return Ok(Verified::No);
            }
            let weaker = Params::try_from(&parsed).is_ok_and(|p| {
                p.m_cost() < params.m_cost()
                    || p.t_cost() < params.t_cost()
                    || p.p_cost() < params.p_cost()
            }) || parsed.algorithm != argon2::ARGON2ID_IDENT;
            let rehash = if weaker {
                Some(hash_with(&params, &password, memory)?)
            } else {
                None
            };
            Ok(Verified::Yes { rehash })
        })
        .await
    }
}

/// Hashing is CPU-bound batch work: let the request threads go first, so other endpoints stay
/// fast while sign-ins saturate the pool (hashes still get every idle cycle).
fn lower_priority() {
    use thread_priority::{
        NormalThreadSchedulePolicy, ThreadPriority, ThreadSchedulePolicy,
        set_thread_priority_and_policy, thread_native_id,
    };
    let policy = ThreadSchedulePolicy::Normal(NormalThreadSchedulePolicy::Idle);
    if let Err(err) =
        set_thread_priority_and_policy(thread_native_id(), ThreadPriority::Min, policy)
    {
        tracing::debug!(error = ?err, "could not lower the hashing threads' priority");
    }
}

fn failed(err: impl std::fmt::Display) -> HashError {
    HashError::Failed(err.to_string())
}

/// Make `memory` exactly `blocks` long, reusing its allocation.
fn blocks(memory: &mut Vec<Block>, blocks: usize) -> &mut [Block] {
    memory.resize(blocks, Block::default());
    memory.as_mut_slice()
}

fn hash_with(
    params: &Params,
    password: &str,
    memory: &mut Vec<Block>,
) -> Result<String, HashError> {
    let mut salt = [0u8; 16];
    OsRng.try_fill_bytes(&mut salt).map_err(failed)?;
    let mut out = [0u8; 32];
    let argon2 = Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone());
    argon2
        .hash_password_into_with_memory(
            password.as_bytes(),
            &salt,
            &mut out,
            blocks(memory, params.block_count()),
        )
        .map_err(failed)?;
    let salt = SaltString::encode_b64(&salt).map_err(failed)?;
    let phc = PasswordHash {
        algorithm: argon2::ARGON2ID_IDENT,
        version: Some(Version::V0x13.into()),
        params: ParamsString::try_from(params).map_err(failed)?,
        salt: Some(salt.as_salt()),
        hash: Some(Output::new(&out).map_err(failed)?),
    };
    Ok(phc.to_string())
}

/// Recompute a stored hash with its own parameters and compare in constant time.
fn verify_with(
    parsed: &PasswordHash<'_>,
    password: &str,
    memory: &mut Vec<Block>,
) -> Result<bool, HashError> {
    let (Some(salt), Some(expected)) = (parsed.salt, parsed.hash) else {
        return Ok(false);
    };
    let Ok(algorithm) = Algorithm::try_from(parsed.algorithm) else {
        return Ok(false);
    };
    let version = parsed
        .version
        .and_then(|v| Version::try_from(v).ok())
        .unwrap_or(Version::V0x13);
    let Ok(params) = Params::try_from(parsed) else {
        return Ok(false);
    };
    let mut salt_buf = [0u8; 64];
    let Ok(salt) = salt.decode_b64(&mut salt_buf) else {
        return Ok(false);
    };
    let mut out = vec![0u8; expected.len()];
    let argon2 = Argon2::new(algorithm, version, params.clone());
    if argon2
        .hash_password_into_with_memory(
            password.as_bytes(),
            salt,
            &mut out,
            blocks(memory, params.block_count()),
        )
        .is_err()
    {
        return Ok(false);
    }
    // `Output` compares in constant time.
    Ok(Output::new(&out).map_err(failed)? == expected)
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
    async fn hashes_are_standard_phc_strings_both_ways() {
        use argon2::password_hash::{PasswordHasher as _, PasswordVerifier as _};
        let hasher = PasswordHasher::new(&cheap()).unwrap();
        let ours = hasher.hash("correct horse battery").await.unwrap();
        let parsed = PasswordHash::new(&ours).unwrap();
        Argon2::default()
            .verify_password(b"correct horse battery", &parsed)
            .unwrap();
        let salt = SaltString::encode_b64(b"0123456789abcdef").unwrap();
        let theirs = Argon2::default()
            .hash_password(b"correct horse battery", &salt)
            .unwrap()
            .to_string();
        assert!(matches!(
            hasher
                .verify("correct horse battery", Some(&theirs))
                .await
                .unwrap(),
            Verified::Yes { .. }
        ));
        assert_eq!(
            hasher.verify("wrong", Some(&theirs)).await.unwrap(),
            Verified::No
        );
        assert_eq!(
            hasher.verify("x", Some("not a phc string")).await.unwrap(),
            Verified::No
        );
    }

    #[tokio::test]
    async fn a_full_pool_answers_busy_after_the_queue_timeout() {
        let hasher = PasswordHasher::new(&PasswordHashConfig {
            memory_kib: 8192,
            iterations: 20,
            max_concurrent: 1,
            queue_timeout_ms: 1,
            ..cheap()
        })
        .unwrap();
        let slow = hasher.clone();
        let first = tokio::spawn(async move { slow.hash("first of two").await });
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(matches!(hasher.hash("second").await, Err(HashError::Busy)));
        first.await.unwrap().unwrap();
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
