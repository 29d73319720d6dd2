//! Shared state on Redis (feature `redis`): what a fleet of instances
//! must agree on, with reads kept in memory and every command bounded.
//!
//! One [`RedisState`] (a [`redis::aio::ConnectionManager`]
//! and a key prefix) gives:
//! - [`RedisRevocationSource`]: a [`RevocationSource`](super::denylist::RevocationSource) for the
//!   [`Denylist`](super::denylist::Denylist). Revocations are written to a
//!   sorted set (member: the revocation as JSON, score: when it may be
//!   pruned) and published on a channel; each instance's local mirror is fed
//!   by pub/sub, loaded in full before [`ready`](RedisRevocationSource::ready)
//!   returns, and reloaded on every reconnect (messages missed while away)
//!   and every [`resync`](RedisBuilder::resync_interval). A load that fails
//!   keeps the subscription and the mirror's entries (revocations published
//!   meanwhile still apply) and is retried with backoff up to
//!   [`retry_max`](RedisBuilder::retry_max). Requests read the mirror only. A revocation made while Redis is away applies here at
//!   once and is queued and retried until Redis takes it; one that Redis
//!   lost (a restart without persistence) is written back on reconnect.
//! - [`RedisReplayStore`]: a [`ReplayStore`](super::replay::ReplayStore) by `SET key 1 NX PX window`;
//!   when Redis cannot answer, [`ReplayPolicy`] decides (fail closed by
//!   default: a proof that cannot be recorded is refused).
//! - [`RedisCache`]: a small shared cache of serialised verdicts (for
//!   introspection results) keyed by the SHA-256 of the token, never the
//!   token, with a local cache in front.
//!
//! No Redis key, value or message ever holds a token: replay keys and cache
//! keys are SHA-256 digests; the denylist holds `jti`, `sub` and `sid`
//! values, which are identifiers, not credentials.

use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use super::denylist::DEFAULT_MAX_TOKEN_LIFETIME;
use crate::clock::{Clock, SystemClock};

mod cache;
mod denylist;
mod replay;

#[cfg(feature = "introspection")]
pub(crate) use cache::Fetched;
pub use cache::{MAX_CACHE_VALUE, RedisCache};
pub use denylist::{RedisRevocationSource, SourceStats};
pub use replay::RedisReplayStore;

/// Default bound on every Redis command: 200 ms.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_millis(200);
/// Longest bound accepted ([`RedisBuilder::timeout`] clamps to it; the
/// shortest is 1 ms).
pub const MAX_TIMEOUT: Duration = Duration::from_secs(60);
/// Longest [`RedisBuilder::resync_interval`] (and `retry_max`) accepted:
/// a day. A longer one is clamped (`Duration::MAX` overflowed the next
/// deadline and stopped the revocation feed).
pub const MAX_RESYNC: Duration = Duration::from_secs(86_400);
/// Default most revocations queued while Redis is away.
pub const DEFAULT_QUEUE_CAPACITY: usize = 1_000_000;
/// Largest message read from the revocation channel: a revocation is small.
const MAX_MESSAGE: usize = 16 * 1024;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Why Redis could not be used. Opaque; ask [`is_timeout`](Self::is_timeout).
#[derive(Debug)]
#[non_exhaustive]
pub struct RedisError {
    timeout: bool,
    source: Option<redis::RedisError>,
}

impl RedisError {
    fn timeout() -> RedisError {
        RedisError {
            timeout: true,
            source: None,
        }
    }

    /// Whether the command ran out of its time bound.
    pub fn is_timeout(&self) -> bool {
        self.timeout
    }
}

impl From<redis::RedisError> for RedisError {
    fn from(e: redis::RedisError) -> Self {
        RedisError {
            timeout: e.is_timeout(),
            source: Some(e),
        }
    }
}

impl fmt::Display for RedisError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.source {
            _ if self.timeout => f.write_str("redis did not answer in time"),
            // The redis crate's messages name the command, never our values.
            Some(e) => write!(f, "redis: {}", e.category()),
            None => f.write_str("redis is unavailable"),
        }
    }
}

impl std::error::Error for RedisError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source.as_ref().map(|e| e as _)
    }
}

/// What [`RedisReplayStore`] does when Redis cannot answer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum ReplayPolicy {
    /// Refuse the value (the proof): it cannot be recorded, so it could be
    /// replayed elsewhere. The default.
    #[default]
    FailClosed,
    /// Record it in this process only: available, but a proof replayed to
    /// another instance during the outage is accepted there once.
    FallbackLocal,
}

/// Settings for [`RedisState`]; [`connect`](Self::connect) builds it.
#[must_use]
pub struct RedisBuilder {
    url: String,
    prefix: String,
    timeout: Duration,
    replay_policy: ReplayPolicy,
    queue_capacity: usize,
    retry_max: Duration,
    resync: Duration,
    max_token_lifetime: i64,
    clock: Arc<dyn Clock>,
}

impl fmt::Debug for RedisBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The URL may carry a password: never shown.
        f.debug_struct("RedisBuilder")
            .field("prefix", &self.prefix)
            .field("timeout", &self.timeout)
            .field("replay_policy", &self.replay_policy)
            .finish_non_exhaustive()
    }
}

impl RedisBuilder {
    /// Prefix of every key and channel (default `tokenwarden`): instances
    /// that share state share it; others (another environment on the same
    /// Redis) pick another.
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// Bound on each command, connection attempts included (default
    /// [`DEFAULT_TIMEOUT`], clamped to 1 ms ..= [`MAX_TIMEOUT`]). No
    /// request waits on Redis longer than this.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout.clamp(Duration::from_millis(1), MAX_TIMEOUT);
        self
    }

    /// What replay checks do when Redis cannot answer (default
    /// [`ReplayPolicy::FailClosed`]).
    pub fn replay_policy(mut self, policy: ReplayPolicy) -> Self {
        self.replay_policy = policy;
        self
    }

    /// Most revocations queued while Redis is away (default
    /// [`DEFAULT_QUEUE_CAPACITY`]). Past it a revocation still applies
    /// here, but is logged and counted as not shared.
    pub fn queue_capacity(mut self, capacity: usize) -> Self {
        self.queue_capacity = capacity.max(1);
        self
    }

    /// Longest wait between retries while Redis is away (default 2 s,
    /// clamped to 10 ms ..= [`MAX_RESYNC`]).
    pub fn retry_max(mut self, max: Duration) -> Self {
        self.retry_max = max.clamp(Duration::from_millis(10), MAX_RESYNC);
        self
    }

    /// How often the mirror reloads the whole list even when connected
    /// (default 60 s, clamped to 100 ms ..= [`MAX_RESYNC`]): a pub/sub
    /// message lost without a disconnect is repaired by then.
    pub fn resync_interval(mut self, every: Duration) -> Self {
        self.resync = every.clamp(Duration::from_millis(100), MAX_RESYNC);
        self
    }

    /// Longest token lifetime, as the denylist's
    /// ([`DenylistBuilder::max_token_lifetime`](super::denylist::DenylistBuilder::max_token_lifetime)):
    /// how long subject and session cutoffs are kept.
    pub fn max_token_lifetime(mut self, lifetime: Duration) -> Self {
        self.max_token_lifetime = i64::try_from(lifetime.as_secs()).unwrap_or(i64::MAX);
        self
    }

    /// The clock deciding when entries expire (the denylist's clock).
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// Connects (bounded by the timeout).
    ///
    /// # Errors
    /// A bad URL, or Redis not reachable now.
    pub async fn connect(self) -> Result<RedisState, RedisError> {
        let client = redis::Client::open(self.url.as_str())?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(self.timeout)
            .set_response_timeout(self.timeout)
            .set_number_of_retries(1)
            .set_max_delay(self.retry_max.as_millis().try_into().unwrap_or(u64::MAX));
        let conn = bounded(
            self.timeout.saturating_mul(3),
            ConnectionManager::new_with_config(client.clone(), config),
        )
        .await?;
        Ok(RedisState {
            inner: Arc::new(StateInner {
                client,
                conn,
                prefix: self.prefix,
                timeout: self.timeout,
                replay_policy: self.replay_policy,
                queue_capacity: self.queue_capacity,
                retry_max: self.retry_max,
                resync: self.resync,
                max_token_lifetime: self.max_token_lifetime,
                clock: self.clock,
            }),
        })
    }
}

async fn bounded<T>(
    limit: Duration,
    fut: impl Future<Output = redis::RedisResult<T>>,
) -> Result<T, RedisError> {
    match tokio::time::timeout(limit, fut).await {
        Ok(r) => Ok(r?),
        Err(_) => Err(RedisError::timeout()),
    }
}

/// A connection to Redis shared by the stores built from it; cheap to clone.
///
/// ```no_run
/// use std::sync::Arc;
/// use tokenwarden::state::denylist::Denylist;
/// use tokenwarden::state::redis::RedisState;
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let redis = RedisState::builder("redis://127.0.0.1:6379").prefix("prod").connect().await?;
/// let source = redis.revocation_source();
/// let denylist = Denylist::builder().source(source.clone()).build()?;
/// source.ready().await; // the current list is loaded
/// denylist.revoke_jti("token-7", 1_900_000_000); // every instance refuses it
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct RedisState {
    inner: Arc<StateInner>,
}

struct StateInner {
    client: redis::Client,
    conn: ConnectionManager,
    prefix: String,
    timeout: Duration,
    replay_policy: ReplayPolicy,
    queue_capacity: usize,
    retry_max: Duration,
    resync: Duration,
    max_token_lifetime: i64,
    clock: Arc<dyn Clock>,
}

impl fmt::Debug for RedisState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisState")
            .field("prefix", &self.inner.prefix)
            .field("timeout", &self.inner.timeout)
            .finish_non_exhaustive()
    }
}

fn hex(bytes: &[u8]) -> String {
    use fmt::Write;
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

impl RedisState {
    /// Settings for a connection to `url` (`redis://host:port/db`).
    pub fn builder(url: impl Into<String>) -> RedisBuilder {
        RedisBuilder {
            url: url.into(),
            prefix: "tokenwarden".to_owned(),
            timeout: DEFAULT_TIMEOUT,
            replay_policy: ReplayPolicy::FailClosed,
            queue_capacity: DEFAULT_QUEUE_CAPACITY,
            retry_max: Duration::from_secs(2),
            resync: Duration::from_secs(60),
            max_token_lifetime: DEFAULT_MAX_TOKEN_LIFETIME.as_secs() as i64,
            clock: Arc::new(SystemClock),
        }
    }

    /// The bound on each command.
    pub fn timeout(&self) -> Duration {
        self.inner.timeout
    }

    fn key(&self, name: &str) -> String {
        format!("{}:{name}", self.inner.prefix)
    }

    /// Records the 32-byte digest `key` under `namespace` for `window`
    /// (`SET key 1 NX PX window`): `Ok(true)` the first time, `Ok(false)`
    /// while it is recorded.
    ///
    /// # Errors
    /// Redis did not answer within the timeout.
    pub async fn record_once(
        &self,
        namespace: &str,
        key: &[u8; 32],
        window: Duration,
    ) -> Result<bool, RedisError> {
        let key = self.key(&format!("{namespace}:{}", hex(key)));
        let ms = u64::try_from(window.as_millis()).unwrap_or(u64::MAX).max(1);
        let mut conn = self.inner.conn.clone();
        let set: Option<String> = bounded(
            self.inner.timeout,
            redis::cmd("SET")
                .arg(&key)
                .arg(1)
                .arg("NX")
                .arg("PX")
                .arg(ms)
                .query_async(&mut conn),
        )
        .await?;
        Ok(set.is_some())
    }

    /// A [`RevocationSource`](super::denylist::RevocationSource) on this connection, for one denylist.
    pub fn revocation_source(&self) -> Arc<RedisRevocationSource> {
        Arc::new(RedisRevocationSource::new(self.clone()))
    }

    /// A [`ReplayStore`](super::replay::ReplayStore) on this connection, with the configured
    /// [`ReplayPolicy`] (its local fallback holds `local_capacity` values).
    pub fn replay_store(&self, local_capacity: usize) -> RedisReplayStore {
        RedisReplayStore::new(self.clone(), local_capacity)
    }

    /// A shared cache under `namespace` (e.g. `introspection`), with a
    /// local cache of `local_capacity` entries in front.
    pub fn cache(&self, namespace: &str, local_capacity: usize) -> RedisCache {
        RedisCache::new(self.clone(), namespace, local_capacity)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Attack (a configuration from outside): a timeout of `Duration::MAX`
    /// must not overflow the connection bound (a panic at start).
    #[tokio::test]
    async fn an_enormous_timeout_is_clamped_and_connecting_does_not_panic() {
        let b = RedisState::builder("redis://127.0.0.1:1").timeout(Duration::MAX);
        assert_eq!(b.timeout, MAX_TIMEOUT);
        // Nothing listens on port 1: refused at once, an error.
        assert!(b.connect().await.is_err());
        let b = RedisState::builder("redis://127.0.0.1:1")
            .resync_interval(Duration::MAX)
            .retry_max(Duration::MAX);
        assert_eq!((b.resync, b.retry_max), (MAX_RESYNC, MAX_RESYNC));
        let b = RedisState::builder("redis://127.0.0.1:1").timeout(Duration::ZERO);
        assert_eq!(b.timeout, Duration::from_millis(1));
    }
}
