//! Rate-limit counters in Redis (`rate_limits.redis_url`), for nodes that would rather not
//! write a row per check to PostgreSQL. The same token buckets and failed-sign-in states as
//! `postgres/counters.rs`, computed by Lua scripts so that each check is one atomic round
//! trip:
//! - a bucket is a hash `{prefix}bucket:{limit}:{key}` (`t` tokens, `u` updated at);
//! - an account's failures a hash `{prefix}failures:{account}` (`c`, `w`, `n`, `b`: the
//!   fields of `FailureState`);
//! - the sorted set `{prefix}expiry` scores every such key with the time it may be
//!   forgotten, by the callers' clock, which `prune` reads. Keys carry no Redis TTL: times
//!   come from the callers' clock, as everywhere else, so tests can move them.
//!
//! `rediss://` URLs speak TLS (rustls, with the system's roots or `rate_limits.redis_ca_file`).
//!
//! Floats cross between Rust and Lua as shortest round-trip decimals (Rust) and `%.17g`
//! (Lua), so both compute the same IEEE doubles as `BucketTake::refill`. Scripts touch only
//! their declared keys except `PRUNE`, which deletes the keys the sorted set names: a single
//! Redis server (or a primary with replicas), not Redis Cluster.

use std::sync::LazyLock;
use std::time::Duration;

use async_trait::async_trait;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{AsyncCommands, Script};

use super::{BucketTake, FailureRule, Millis, RateCounters, Refused, StoreError, StoreResult};

/// How long a command may take, and a connection attempt, before the check fails (503).
const TIMEOUT: Duration = Duration::from_secs(2);

/// Keys forgotten per `PRUNE` run; `prune` repeats until fewer come back.
const PRUNE_BATCH: usize = 1_000;

/// `KEYS`: the expiry set, then each bucket. `ARGV`: now, then `burst, count, window_ms` per
/// bucket. Returns `[]` when a token was taken from each, else `[index, tokens, …]` of the
/// buckets holding less than one (0-based indexes), having changed nothing.
static TAKE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local now = tonumber(ARGV[1])
local n = #KEYS - 1
local tokens = {}
local refused = {}
for i = 1, n do
  local burst = tonumber(ARGV[3 * i - 1])
  local count = tonumber(ARGV[3 * i])
  local window = tonumber(ARGV[3 * i + 1])
  local state = redis.call('HMGET', KEYS[i + 1], 't', 'u')
  local t = burst
  if state[1] then
    local elapsed = now - tonumber(state[2])
    if elapsed < 0 then elapsed = 0 end
    t = math.min(tonumber(state[1]) + elapsed * count / window, burst)
  end
  tokens[i] = t
  if t < 1 then
    table.insert(refused, tostring(i - 1))
    table.insert(refused, string.format('%.17g', t))
  end
end
if #refused > 0 then return refused end
for i = 1, n do
  local burst = tonumber(ARGV[3 * i - 1])
  local count = tonumber(ARGV[3 * i])
  local window = tonumber(ARGV[3 * i + 1])
  local left = tokens[i] - 1
  redis.call('HSET', KEYS[i + 1], 't', string.format('%.17g', left), 'u', ARGV[1])
  local missing = math.max(burst - left, 0)
  redis.call('ZADD', KEYS[1], string.format('%d', now + math.ceil(missing * window / count)), KEYS[i + 1])
end
return {}
",
    )
});

/// `KEYS`: the expiry set, the account's failures. `ARGV`: now, window_ms, free, lockout,
/// then the delays (ms). `FailureState::counted`, step for step.
static COUNT_FAILURE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local now = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local free = tonumber(ARGV[3])
local lockout = tonumber(ARGV[4])
local delays = #ARGV - 4
local s = redis.call('HMGET', KEYS[2], 'c', 'w', 'n', 'b')
local c = tonumber(s[1]) or 0
local w = tonumber(s[2]) or 0
local n = tonumber(s[3]) or 0
local b = tonumber(s[4]) or 0
if now - w >= window then
  w = now
  n = 0
end
c = c + 1
n = n + 1
if c > free then
  local delay = 0
  if delays > 0 then delay = tonumber(ARGV[5 + math.min(c - free - 1, delays - 1)]) end
  b = now + delay
end
if n >= lockout then b = math.max(b, w + window) end
redis.call('HSET', KEYS[2], 'c', string.format('%d', c), 'w', string.format('%d', w),
  'n', string.format('%d', n), 'b', string.format('%d', b))
redis.call('ZADD', KEYS[1], string.format('%d', math.max(b, w + window)), KEYS[2])
return 1
",
    )
});

/// `KEYS`: the expiry set. `ARGV`: now, batch size. Deletes up to a batch of keys due by
/// now and returns how many.
static PRUNE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
for _, key in ipairs(due) do
  redis.call('DEL', key)
  redis.call('ZREM', KEYS[1], key)
end
return #due
",
    )
});

/// The counters of one Redis database, shared by every node configured with it.
pub struct RedisCounters {
    connection: ConnectionManager,
    prefix: String,
}

fn backend(err: redis::RedisError) -> StoreError {
    StoreError::Backend(Box::new(err))
}

impl RedisCounters {
    /// Connect to `url` (`redis://[user:password@]host[:port][/db]`, or `rediss://` for TLS);
    /// every key starts with `prefix`. Over TLS the server's certificate must chain to
    /// `ca_pem` (PEM) when given, else to the system's trusted roots. Fails now if the server
    /// does not answer.
    pub async fn connect(url: &str, prefix: &str, ca_pem: Option<Vec<u8>>) -> StoreResult<Self> {
        let client = match ca_pem {
            Some(root_cert) => redis::Client::build_with_tls(
                url,
                redis::TlsCertificates {
                    client_tls: None,
                    root_cert: Some(root_cert),
                },
            ),
            None => redis::Client::open(url),
        }
        .map_err(backend)?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(TIMEOUT))
            .set_response_timeout(Some(TIMEOUT))
            .set_number_of_retries(1);
        let connection = ConnectionManager::new_with_config(client, config)
            .await
            .map_err(backend)?;
        Ok(Self {
            connection,
            prefix: prefix.to_string(),
        })
    }

    fn expiry_key(&self) -> String {
        format!("{}expiry", self.prefix)
    }

    fn failures_key(&self, account: &str) -> String {
        format!("{}failures:{account}", self.prefix)
    }
}

#[async_trait]
impl RateCounters for RedisCounters {
    async fn take(&self, buckets: &[BucketTake<'_>], now: Millis) -> StoreResult<Refused> {
        let mut take = TAKE.prepare_invoke();
        take.key(self.expiry_key()).arg(now);
        for b in buckets {
            take.key(format!("{}bucket:{}:{}", self.prefix, b.name, b.key))
                .arg(b.burst.to_string())
                .arg(b.count.to_string())
                .arg(b.window_ms.to_string());
        }
        let answer: Vec<String> = take
            .invoke_async(&mut self.connection.clone())
            .await
            .map_err(backend)?;
        answer
            .chunks(2)
            .map(|pair| match pair {
                [index, tokens] => Some((index.parse().ok()?, tokens.parse().ok()?)),
                _ => None,
            })
            .collect::<Option<Refused>>()
            .ok_or_else(|| {
                StoreError::Backend(format!("rate-limit script answered {answer:?}").into())
            })
    }

    async fn blocked_until(&self, account: &str) -> StoreResult<Option<Millis>> {
        self.connection
            .clone()
            .hget(self.failures_key(account), "b")
            .await
            .map_err(backend)
    }

    async fn count_failure(
        &self,
        account: &str,
        now: Millis,
        rule: &FailureRule,
    ) -> StoreResult<()> {
        let mut count = COUNT_FAILURE.prepare_invoke();
        count
            .key(self.expiry_key())
            .key(self.failures_key(account))
            .arg(now)
            .arg(rule.window_ms)
            .arg(rule.free)
            .arg(rule.lockout);
        for delay in &rule.delays_ms {
            count.arg(*delay);
        }
        let _: i64 = count
            .invoke_async(&mut self.connection.clone())
            .await
            .map_err(backend)?;
        Ok(())
    }

    async fn clear_failures(&self, account: &str) -> StoreResult<()> {
        let key = self.failures_key(account);
        redis::pipe()
            .atomic()
            .del(&key)
            .ignore()
            .zrem(self.expiry_key(), &key)
            .ignore()
            .query_async::<()>(&mut self.connection.clone())
            .await
            .map_err(backend)
    }

    async fn prune(&self, now: Millis) -> StoreResult<u64> {
        let mut pruned = 0u64;
        loop {
            let batch: u64 = PRUNE
                .key(self.expiry_key())
                .arg(now)
                .arg(PRUNE_BATCH)
                .invoke_async(&mut self.connection.clone())
                .await
                .map_err(backend)?;
            pruned += batch;
            if batch < PRUNE_BATCH as u64 {
                return Ok(pruned);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::process::{Child, Command, Stdio};

    use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};

    use super::RedisCounters;
    use crate::store::{BucketTake, RateCounters};

    /// A `redis-server` (Debian's package) that speaks only TLS on a free loopback port,
    /// with a certificate for 127.0.0.1 signed by a CA of its own; stopped when dropped.
    struct TlsRedis {
        child: Child,
        port: u16,
        ca_pem: String,
        _dir: tempfile::TempDir,
    }

    impl TlsRedis {
        async fn start() -> Self {
            let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
            ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
            ca_params
                .distinguished_name
                .push(DnType::CommonName, "Basalt test CA");
            let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
            let server_key = KeyPair::generate().unwrap();
            let server = CertificateParams::new(vec!["127.0.0.1".to_string()])
                .unwrap()
                .signed_by(&server_key, &ca)
                .unwrap();
            let dir = tempfile::tempdir().unwrap();
            let file = |name: &str, text: String| {
                let path = dir.path().join(name);
                std::fs::write(&path, text).unwrap();
                path.display().to_string()
            };
            let cert = file("server.pem", server.pem());
            let key = file("server.key", server_key.serialize_pem());
            let ca_file = file("ca.pem", ca.pem());
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port();
            let child = Command::new("redis-server")
                .args([
                    "--bind",
                    "127.0.0.1",
                    "--port",
                    "0",
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                ])
                .args(["--tls-port", &port.to_string(), "--tls-auth-clients", "no"])
                .args(["--tls-cert-file", &cert, "--tls-key-file", &key])
                .args(["--tls-ca-cert-file", &ca_file])
                .stdout(Stdio::null())
                .spawn()
                .expect("redis-server (Debian's redis-server package) on the PATH");
            for _ in 0..100 {
                if tokio::net::TcpStream::connect(("127.0.0.1", port))
                    .await
                    .is_ok()
                {
                    break;
                }
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
            Self {
                child,
                port,
                ca_pem: ca.pem(),
                _dir: dir,
            }
        }
    }

    impl Drop for TlsRedis {
        fn drop(&mut self) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }

    #[tokio::test]
    async fn over_tls_the_server_must_chain_to_the_configured_ca() {
        let redis = TlsRedis::start().await;
        let url = format!("rediss://127.0.0.1:{}", redis.port);
        let ca = Some(redis.ca_pem.clone().into_bytes());
        let counters = RedisCounters::connect(&url, "t:", ca).await.unwrap();
        let bucket = BucketTake {
            name: "tls",
            key: "k",
            burst: 1.0,
            count: 1.0,
            window_ms: 60_000.0,
        };
        assert_eq!(counters.take(&[bucket], 0).await.unwrap(), Vec::new());
        assert_eq!(counters.take(&[bucket], 0).await.unwrap(), vec![(0, 0.0)]);
        // The system's roots do not hold this CA, and the TLS port does not speak plain text.
        assert!(RedisCounters::connect(&url, "t:", None).await.is_err());
        let plain = format!("redis://127.0.0.1:{}", redis.port);
        assert!(RedisCounters::connect(&plain, "t:", None).await.is_err());
    }
}
