//! The connection pool: sqlx's `PgConnection`s held by `deadpool`, checked only when there is
//! reason to doubt them.
//!
//! sqlx's own pool pings every connection on its way back (sqlx 0.8 cannot turn that off):
//! a second round trip, and a spawned task, for every one-statement read, which on a busy
//! node cost about as much as the reads. Here a connection goes straight back to the pool,
//! unless
//! - it holds statements not yet sent: a request was dropped mid-transaction and sqlx queued
//!   its `ROLLBACK`, which must reach the server now, not at the next use, or the
//!   transaction's locks would stay held while the connection sits idle;
//! - a failure that can break a connection (I/O, TLS, protocol, a `FATAL` server error)
//!   happened anywhere while it was out, so it may be the broken one.
//!
//! Such a connection is pinged by a task first and dropped if the ping fails. A connection is
//! pinged before use when it was last taken out a second or more ago, since the server or a
//! proxy may have cut it meanwhile, or before such a failure: after a server restart the
//! first call on a dead connection fails and the pool's other dead connections are replaced
//! before anyone uses them. A query dropped while its answer was on the way leaves nothing
//! to do: sqlx reads the rest of that answer before the connection's next statement.

use std::ops::{Deref, DerefMut};
use std::sync::LazyLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use deadpool::Runtime;
use deadpool::managed::{self, Metrics, Object, PoolError, RecycleResult, TimeoutType};
use sqlx_core::connection::{ConnectOptions, Connection};
use sqlx_postgres::{PgConnectOptions, PgConnection, PgDatabaseError, PgSeverity};

use super::db_error;
use crate::store::{StoreError, StoreResult};

/// How long a caller waits for a connection, and a new connection for the server.
const WAIT: Duration = Duration::from_secs(10);

/// When a failure that may have broken its connection last happened anywhere in the
/// process, in nanoseconds after [`EPOCH`] (0: never): connections taken out before it are
/// checked before their next use.
static LAST_FAILURE: AtomicU64 = AtomicU64::new(0);
static EPOCH: LazyLock<Instant> = LazyLock::new(Instant::now);

fn since_epoch(at: Instant) -> u64 {
    u64::try_from(at.saturating_duration_since(*EPOCH).as_nanos()).unwrap_or(u64::MAX)
}

/// Whether such a failure happened since `taken` (when a connection was taken out).
fn failed_since(taken: Instant) -> bool {
    let last = LAST_FAILURE.load(Ordering::Relaxed);
    last != 0 && last >= since_epoch(taken)
}

/// Record `err` if it may have broken its connection (see [`LAST_FAILURE`]): a failure to
/// talk to the server, or a server error of severity `FATAL` or `PANIC`, after which the
/// server closes the connection (a restart, `pg_terminate_backend`).
pub(super) fn note_failure(err: &sqlx_core::Error) {
    use sqlx_core::Error;
    let broken = match err {
        Error::Io(_) | Error::Tls(_) | Error::Protocol(_) | Error::WorkerCrashed => true,
        Error::Database(db) => db
            .try_downcast_ref::<PgDatabaseError>()
            .is_some_and(|db| matches!(db.severity(), PgSeverity::Fatal | PgSeverity::Panic)),
        _ => false,
    };
    if broken {
        LAST_FAILURE.fetch_max(since_epoch(Instant::now()).max(1), Ordering::Relaxed);
    }
}

/// Opens connections and decides whether an idle one needs a ping before use.
struct Manager {
    options: PgConnectOptions,
    ping_after_idle: Duration,
}

impl managed::Manager for Manager {
    type Type = PgConnection;
    type Error = sqlx_core::Error;

    async fn create(&self) -> Result<PgConnection, sqlx_core::Error> {
        self.options.connect().await
    }

    async fn recycle(
        &self,
        conn: &mut PgConnection,
        metrics: &Metrics,
    ) -> RecycleResult<sqlx_core::Error> {
        // `recycled` is when the connection was last taken out (`last_used` counts from it).
        let taken = metrics.recycled.unwrap_or(metrics.created);
        // A connection with statements unsent never comes back: its `drop` flushes it first.
        if metrics.last_used() >= self.ping_after_idle || failed_since(taken) {
            conn.ping().await?;
        }
        Ok(())
    }
}

/// A cheaply cloned handle on the pool.
#[derive(Clone)]
pub(super) struct Pool {
    inner: managed::Pool<Manager>,
}

impl Pool {
    /// A pool of at most `max_connections` to `url`; every connection cancels statements
    /// that run longer than `statement_timeout`, if given. Connects once, so that a wrong
    /// URL or an unreachable server is reported now.
    pub(super) async fn connect(
        url: &str,
        max_connections: u32,
        statement_timeout: Option<Duration>,
        ping_after_idle: Duration,
    ) -> StoreResult<Self> {
        let mut options: PgConnectOptions = url.parse().map_err(db_error)?;
        if let Some(timeout) = statement_timeout.filter(|t| !t.is_zero()) {
            options = options.options([("statement_timeout", timeout.as_millis())]);
        }
        let manager = Manager {
            options,
            ping_after_idle,
        };
        let size = usize::try_from(max_connections.max(1)).unwrap_or(1);
        let inner = managed::Pool::builder(manager)
            .max_size(size)
            .wait_timeout(Some(WAIT))
            .create_timeout(Some(WAIT))
            .runtime(Runtime::Tokio1)
            .build()
            .map_err(|err| StoreError::Backend(Box::new(err)))?;
        LazyLock::force(&EPOCH);
        let pool = Self { inner };
        drop(pool.get().await?);
        Ok(pool)
    }

    /// A connection, waiting for one to come free if all are out.
    pub(super) async fn get(&self) -> StoreResult<PooledConnection> {
        let object = self.inner.get().await.map_err(|err| match err {
            PoolError::Backend(err) => db_error(err),
            // Every connection busy for that long: an overloaded database, as a cancelled
            // statement is.
            PoolError::Timeout(TimeoutType::Wait) => StoreError::TimedOut,
            other => StoreError::Backend(Box::new(other)),
        })?;
        Ok(PooledConnection {
            object: Some(object),
            taken: Instant::now(),
        })
    }

    /// Connections open, in use or idle (tests).
    #[cfg(test)]
    pub(super) fn size(&self) -> usize {
        self.inner.status().size
    }

    /// Connections idle in the pool (tests).
    #[cfg(test)]
    pub(super) fn idle(&self) -> usize {
        self.inner.status().available
    }
}

/// A connection out of the pool; back in it when dropped (see the module's header).
pub(in crate::store) struct PooledConnection {
    object: Option<Object<Manager>>,
    /// When it was taken out.
    taken: Instant,
}

impl Deref for PooledConnection {
    type Target = PgConnection;

    fn deref(&self) -> &PgConnection {
        // `object` is only ever `None` inside `drop`.
        self.object.as_deref().unwrap_or_else(|| unreachable!())
    }
}

impl DerefMut for PooledConnection {
    fn deref_mut(&mut self) -> &mut PgConnection {
        self.object.as_deref_mut().unwrap_or_else(|| unreachable!())
    }
}

impl Drop for PooledConnection {
    fn drop(&mut self) {
        let Some(mut object) = self.object.take() else {
            return;
        };
        if !failed_since(self.taken) && !object.should_flush() && !object.is_in_transaction() {
            return; // `object` goes back to the pool as it drops
        }
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                runtime.spawn(async move {
                    if object.ping().await.is_err() || object.is_in_transaction() {
                        drop(Object::take(object));
                    }
                });
            }
            Err(_) => drop(Object::take(object)),
        }
    }
}
