//! Shared state on Redis (feature `redis`): what a fleet of instances
//! must agree on, with reads kept in memory and every command bounded.
//!
//! One [`RedisState`] (a [`redis::aio::ConnectionManager`]
//! and a key prefix) gives:
//! - [`RedisRevocationSource`]: a [`RevocationSource`] for the
//!   [`Denylist`](super::denylist::Denylist). Revocations are written to a
//!   sorted set (member: the revocation as JSON, score: when it may be
//!   pruned) and published on a channel; each instance's local mirror is fed
//!   by pub/sub, loaded in full before [`ready`](RedisRevocationSource::ready)
//!   returns, and reloaded on every reconnect (messages missed while away)
//!   and every [`resync`](RedisBuilder::resync_interval). Requests read the
//!   mirror only. A revocation made while Redis is away applies here at
//!   once and is queued and retried until Redis takes it; one that Redis
//!   lost (a restart without persistence) is written back on reconnect.
//! - [`RedisReplayStore`]: a [`ReplayStore`] by `SET key 1 NX PX window`;
//!   when Redis cannot answer, [`ReplayPolicy`] decides (fail closed by
//!   default: a proof that cannot be recorded is refused).
//! - [`RedisCache`]: a small shared cache of serialised verdicts (for
//!   introspection results) keyed by the SHA-256 of the token, never the
//!   token, with a local cache in front.
//!
//! No Redis key, value or message ever holds a token: replay keys and cache
//! keys are SHA-256 digests; the denylist holds `jti`, `sub` and `sid`
//! values, which are identifiers, not credentials.

use std::collections::{HashMap, HashSet, VecDeque};
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use redis::AsyncCommands;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use tokio::sync::{Notify, watch};

use super::denylist::{DEFAULT_MAX_TOKEN_LIFETIME, Feed, GRACE, Revocation, RevocationSource};
use super::replay::{MemoryReplayStore, ReplayError, ReplayKey, ReplayStore};
use crate::authn::BoxFuture;
use crate::clock::{Clock, SystemClock};

/// Default bound on every Redis command: 200 ms.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_millis(200);
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
    /// [`DEFAULT_TIMEOUT`]). No request waits on Redis longer than this.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
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

    /// Longest wait between retries while Redis is away (default 2 s).
    pub fn retry_max(mut self, max: Duration) -> Self {
        self.retry_max = max.max(Duration::from_millis(10));
        self
    }

    /// How often the mirror reloads the whole list even when connected
    /// (default 60 s): a pub/sub message lost without a disconnect is
    /// repaired by then.
    pub fn resync_interval(mut self, every: Duration) -> Self {
        self.resync = every.max(Duration::from_millis(100));
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
            self.timeout * 3,
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

    /// A [`RevocationSource`] on this connection, for one denylist.
    pub fn revocation_source(&self) -> Arc<RedisRevocationSource> {
        let (ready_tx, _) = watch::channel(false);
        Arc::new(RedisRevocationSource {
            shared: Arc::new(SourceShared {
                state: self.clone(),
                queue: Mutex::new(VecDeque::new()),
                known: Mutex::new(HashMap::new()),
                wake: Arc::new(Notify::new()),
                ready: ready_tx,
                connected: AtomicBool::new(false),
                stats: Counters::default(),
            }),
        })
    }

    /// A [`ReplayStore`] on this connection, with the configured
    /// [`ReplayPolicy`] (its local fallback holds `local_capacity` values).
    pub fn replay_store(&self, local_capacity: usize) -> RedisReplayStore {
        RedisReplayStore {
            state: self.clone(),
            local: MemoryReplayStore::new(local_capacity),
            unavailable: AtomicU64::new(0),
        }
    }

    /// A shared cache under `namespace` (e.g. `introspection`), with a
    /// local cache of `local_capacity` entries in front.
    pub fn cache(&self, namespace: &str, local_capacity: usize) -> RedisCache {
        RedisCache {
            state: self.clone(),
            namespace: namespace.to_owned(),
            local: Mutex::new(HashMap::new()),
            capacity: local_capacity.max(1),
        }
    }
}

// ---------------------------------------------------------------- denylist

#[derive(Default)]
struct Counters {
    delivered: AtomicU64,
    failures: AtomicU64,
    dropped: AtomicU64,
    reloads: AtomicU64,
    received: AtomicU64,
}

/// What a [`RedisRevocationSource`] has done so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct SourceStats {
    /// Revocations waiting for Redis.
    pub pending: usize,
    /// Revocations Redis has taken.
    pub delivered: u64,
    /// Writes or reloads that failed (each retried).
    pub failures: u64,
    /// Revocations not queued because the queue was full.
    pub dropped: u64,
    /// Full loads of the list (start, reconnects, resyncs).
    pub reloads: u64,
    /// Revocations received by pub/sub.
    pub received: u64,
    /// Whether the pub/sub link is up now.
    pub connected: bool,
}

/// The denylist's [`RevocationSource`] on Redis; see the [module](self).
///
/// Build it with [`RedisState::revocation_source`], give it to one
/// [`DenylistBuilder::source`](super::denylist::DenylistBuilder::source)
/// (inside a tokio runtime: its tasks start then), and await
/// [`ready`](Self::ready) before serving.
pub struct RedisRevocationSource {
    shared: Arc<SourceShared>,
}

struct SourceShared {
    state: RedisState,
    /// Revocations made here not yet written to Redis (JSON, keep-until).
    queue: Mutex<VecDeque<(String, i64)>>,
    /// Every revocation seen and still needed: written back when Redis lost it.
    known: Mutex<HashMap<String, i64>>,
    wake: Arc<Notify>,
    ready: watch::Sender<bool>,
    connected: AtomicBool,
    stats: Counters,
}

impl fmt::Debug for RedisRevocationSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisRevocationSource")
            .field("stats", &self.stats())
            .finish()
    }
}

impl RedisRevocationSource {
    /// Returns once the list in Redis has been loaded into the mirror (at
    /// once if it already was). Report ready only after it.
    pub async fn ready(&self) {
        let mut rx = self.shared.ready.subscribe();
        // Err: the sender is gone, which cannot happen while `self` lives.
        let _ = rx.wait_for(|r| *r).await;
    }

    /// Whether the list has been loaded.
    pub fn is_ready(&self) -> bool {
        *self.shared.ready.borrow()
    }

    /// Counters and the queue's length.
    pub fn stats(&self) -> SourceStats {
        let c = &self.shared.stats;
        SourceStats {
            pending: lock(&self.shared.queue).len(),
            delivered: c.delivered.load(Ordering::Relaxed),
            failures: c.failures.load(Ordering::Relaxed),
            dropped: c.dropped.load(Ordering::Relaxed),
            reloads: c.reloads.load(Ordering::Relaxed),
            received: c.received.load(Ordering::Relaxed),
            connected: self.shared.connected.load(Ordering::Relaxed),
        }
    }
}

impl SourceShared {
    fn keep_until(&self, r: &Revocation) -> i64 {
        let until = match r {
            Revocation::Jti { expires_at, .. } => *expires_at,
            Revocation::Subject { before, .. } | Revocation::Session { before, .. } => {
                before.saturating_add(self.state.inner.max_token_lifetime)
            }
            #[allow(unreachable_patterns)]
            _ => i64::MAX / 2,
        };
        until.saturating_add(GRACE)
    }

    fn now(&self) -> i64 {
        self.state.inner.clock.now()
    }

    fn remember(&self, json: &str, until: i64) {
        let now = self.now();
        let mut known = lock(&self.known);
        if known.len() >= self.state.inner.queue_capacity {
            known.retain(|_, u| *u > now);
        }
        known.insert(json.to_owned(), until);
    }

    fn enqueue(&self, json: String, until: i64) {
        let mut q = lock(&self.queue);
        if q.len() >= self.state.inner.queue_capacity {
            let now = self.now();
            q.retain(|(_, u)| *u > now);
        }
        if q.len() >= self.state.inner.queue_capacity {
            drop(q);
            self.stats.dropped.fetch_add(1, Ordering::Relaxed);
            crate::metrics::redis_error("queue_full");
            tracing::error!(
                "redis revocation queue full: a revocation applies on this instance only"
            );
            return;
        }
        q.push_back((json, until));
        drop(q);
        self.wake.notify_one();
    }

    /// `ZADD` + `PUBLISH` in one transaction, and pruning of the past.
    async fn write(&self, json: &str, until: i64) -> Result<(), RedisError> {
        let inner = &self.state.inner;
        let mut conn = inner.conn.clone();
        let () = bounded(
            inner.timeout,
            redis::pipe()
                .atomic()
                .zadd(self.state.key("denylist"), json, until)
                .ignore()
                .publish(self.state.key("denylist:events"), json)
                .ignore()
                .zrembyscore(
                    self.state.key("denylist"),
                    "-inf",
                    format!("({}", self.now()),
                )
                .ignore()
                .query_async(&mut conn),
        )
        .await?;
        Ok(())
    }

    /// Loads the whole list into the mirror; queues back what Redis lost.
    async fn reload(&self, feed: &Feed) -> Result<(), RedisError> {
        let inner = &self.state.inner;
        let mut conn = inner.conn.clone();
        let now = self.now();
        let members: Vec<String> = bounded(
            inner.timeout.saturating_mul(5),
            conn.zrangebyscore(self.state.key("denylist"), format!("({now}"), "+inf"),
        )
        .await?;
        let mut present = HashSet::with_capacity(members.len());
        for m in members {
            self.apply(feed, &m);
            present.insert(m);
        }
        // Written here or seen before, still needed, but not in Redis (it
        // restarted without persistence, or was flushed): write it back.
        let missing: Vec<(String, i64)> = {
            let mut known = lock(&self.known);
            known.retain(|_, u| *u > now);
            let queued: HashSet<String> =
                lock(&self.queue).iter().map(|(j, _)| j.clone()).collect();
            known
                .iter()
                .filter(|(j, _)| !present.contains(*j) && !queued.contains(*j))
                .map(|(j, u)| (j.clone(), *u))
                .collect()
        };
        if !missing.is_empty() {
            tracing::warn!(
                count = missing.len(),
                "redis lost revocations this instance knows: writing them back"
            );
            for (j, u) in missing {
                self.enqueue(j, u);
            }
        }
        self.stats.reloads.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    fn apply(&self, feed: &Feed, json: &str) {
        if json.len() > MAX_MESSAGE {
            tracing::warn!(len = json.len(), "oversized revocation from redis ignored");
            return;
        }
        match serde_json::from_str::<Revocation>(json) {
            Ok(r) => {
                let until = self.keep_until(&r);
                if until > self.now() {
                    self.remember(json, until);
                    feed.apply(&r);
                }
            }
            Err(e) => {
                crate::metrics::redis_error("bad_message");
                tracing::warn!(error = %e, "unreadable revocation from redis ignored");
            }
        }
    }

    fn backoff(&self, attempt: u32) -> Duration {
        let base = Duration::from_millis(50).saturating_mul(1 << attempt.min(10));
        base.min(self.state.inner.retry_max)
    }
}

/// Writes queued revocations until the source is gone.
async fn writer(weak: Weak<SourceShared>) {
    let mut attempt = 0u32;
    loop {
        let Some(s) = weak.upgrade() else { return };
        let next = lock(&s.queue).front().cloned();
        let Some((json, until)) = next else {
            let wake = Arc::clone(&s.wake);
            drop(s);
            // A periodic look too, so a dropped source ends this task.
            let _ = tokio::time::timeout(Duration::from_secs(1), wake.notified()).await;
            continue;
        };
        if until <= s.now() {
            lock(&s.queue).pop_front();
            continue;
        }
        match s.write(&json, until).await {
            Ok(()) => {
                attempt = 0;
                let mut q = lock(&s.queue);
                if q.front().is_some_and(|(j, _)| *j == json) {
                    q.pop_front();
                }
                drop(q);
                s.stats.delivered.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => {
                s.stats.failures.fetch_add(1, Ordering::Relaxed);
                crate::metrics::redis_error("revocation_write");
                let pending = lock(&s.queue).len();
                tracing::warn!(error = %e, pending, "revocation not yet shared through redis: retrying");
                let wait = s.backoff(attempt);
                attempt = attempt.saturating_add(1);
                drop(s);
                tokio::time::sleep(wait).await;
            }
        }
    }
}

/// Keeps the mirror current: subscribe, load, follow; again on each loss.
async fn follower(weak: Weak<SourceShared>, feed: Feed) {
    let mut attempt = 0u32;
    loop {
        let Some(s) = weak.upgrade() else { return };
        if !feed.is_alive() {
            return;
        }
        match follow_once(&s, &feed).await {
            Ok(()) => attempt = 0,
            Err(e) => {
                s.stats.failures.fetch_add(1, Ordering::Relaxed);
                crate::metrics::redis_error("revocation_follow");
                tracing::warn!(error = %e, "redis revocation feed lost: the local list keeps serving; reconnecting");
            }
        }
        s.connected.store(false, Ordering::Relaxed);
        let wait = s.backoff(attempt);
        attempt = attempt.saturating_add(1);
        drop(s);
        tokio::time::sleep(wait).await;
    }
}

async fn follow_once(s: &SourceShared, feed: &Feed) -> Result<(), RedisError> {
    let inner = &s.state.inner;
    let mut pubsub = bounded(inner.timeout, inner.client.get_async_pubsub()).await?;
    // Subscribe first, then load: nothing published in between is missed.
    bounded(
        inner.timeout,
        pubsub.subscribe(s.state.key("denylist:events")),
    )
    .await?;
    s.reload(feed).await?;
    s.connected.store(true, Ordering::Relaxed);
    s.ready.send_replace(true);
    let mut messages = pubsub.into_on_message();
    let mut resync = tokio::time::interval(inner.resync);
    resync.tick().await;
    loop {
        tokio::select! {
            msg = messages.next() => match msg {
                Some(msg) => {
                    s.stats.received.fetch_add(1, Ordering::Relaxed);
                    match msg.get_payload::<String>() {
                        Ok(json) => s.apply(feed, &json),
                        Err(_) => crate::metrics::redis_error("bad_message"),
                    }
                }
                None => return Err(RedisError { timeout: false, source: None }),
            },
            _ = resync.tick() => {
                if !feed.is_alive() {
                    return Ok(());
                }
                s.reload(feed).await?;
            }
        }
    }
}

impl RevocationSource for RedisRevocationSource {
    fn attach(&self, feed: Feed) {
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            tracing::error!("RedisRevocationSource attached outside a tokio runtime: not shared");
            return;
        };
        rt.spawn(follower(Arc::downgrade(&self.shared), feed));
        rt.spawn(writer(Arc::downgrade(&self.shared)));
    }

    fn publish(&self, revocation: &Revocation) {
        let until = self.shared.keep_until(revocation);
        if until <= self.shared.now() {
            return;
        }
        match serde_json::to_string(revocation) {
            Ok(json) => {
                self.shared.remember(&json, until);
                self.shared.enqueue(json, until);
            }
            Err(e) => tracing::error!(error = %e, "revocation not serialisable"),
        }
    }
}

// ------------------------------------------------------------------ replay

/// The DPoP [`ReplayStore`] on Redis: `SET <prefix>:replay:<digest> 1 NX PX
/// <window>`, the same value refused on every instance. Build it with
/// [`RedisState::replay_store`].
pub struct RedisReplayStore {
    state: RedisState,
    local: MemoryReplayStore,
    unavailable: AtomicU64,
}

impl fmt::Debug for RedisReplayStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisReplayStore")
            .field("policy", &self.state.inner.replay_policy)
            .field("unavailable", &self.unavailable())
            .finish_non_exhaustive()
    }
}

impl RedisReplayStore {
    /// Checks Redis could not answer (each decided by the policy).
    pub fn unavailable(&self) -> u64 {
        self.unavailable.load(Ordering::Relaxed)
    }
}

impl ReplayStore for RedisReplayStore {
    fn insert_once<'a>(
        &'a self,
        key: &'a ReplayKey,
        expires_at: i64,
        now: i64,
    ) -> BoxFuture<'a, Result<bool, ReplayError>> {
        Box::pin(async move {
            // Kept one second past `expires_at`: the value is refused up to
            // and including it (as the memory store does).
            let secs = u64::try_from(expires_at.saturating_sub(now).saturating_add(1)).unwrap_or(1);
            let window = Duration::from_secs(secs.max(1));
            match self
                .state
                .record_once("replay", key.as_bytes(), window)
                .await
            {
                Ok(first) => Ok(first),
                Err(e) => {
                    self.unavailable.fetch_add(1, Ordering::Relaxed);
                    crate::metrics::redis_error("replay");
                    match self.state.inner.replay_policy {
                        ReplayPolicy::FailClosed => {
                            tracing::warn!(error = %e, "replay cache unreachable: proof refused (fail closed)");
                            Err(ReplayError::unavailable(
                                "the shared replay cache is unreachable",
                            ))
                        }
                        ReplayPolicy::FallbackLocal => {
                            tracing::warn!(error = %e, "replay cache unreachable: recorded locally only");
                            self.local.insert(key, expires_at, now)
                        }
                    }
                }
            }
        })
    }
}

// ------------------------------------------------------------------- cache

/// Digest -> (verdict, valid until).
type LocalCache = HashMap<[u8; 32], (Vec<u8>, Instant)>;

/// A shared cache of small serialised verdicts (introspection results),
/// keyed by `SHA-256("tokenwarden cache v1", namespace, token)`: the token
/// itself never reaches Redis. A local cache answers first; a Redis that
/// cannot answer is a miss, never an error.
pub struct RedisCache {
    state: RedisState,
    namespace: String,
    local: Mutex<LocalCache>,
    capacity: usize,
}

impl fmt::Debug for RedisCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisCache")
            .field("namespace", &self.namespace)
            .field("local", &lock(&self.local).len())
            .finish_non_exhaustive()
    }
}

impl RedisCache {
    fn digest(&self, token: &[u8]) -> [u8; 32] {
        crate::crypto::sha256_parts(&[
            b"tokenwarden cache v1\0",
            self.namespace.as_bytes(),
            b"\0",
            token,
        ])
    }

    /// The Redis key a token's entry lives under (a digest).
    pub fn key_for(&self, token: &[u8]) -> String {
        self.state
            .key(&format!("{}:{}", self.namespace, hex(&self.digest(token))))
    }

    fn put_local(&self, digest: [u8; 32], value: Vec<u8>, until: Instant) {
        let mut local = lock(&self.local);
        if local.len() >= self.capacity {
            let now = Instant::now();
            local.retain(|_, (_, u)| *u > now);
            if local.len() >= self.capacity {
                return;
            }
        }
        local.insert(digest, (value, until));
    }

    /// The cached verdict for `token`: local first, then Redis.
    pub async fn get(&self, token: &[u8]) -> Option<Vec<u8>> {
        let digest = self.digest(token);
        {
            let mut local = lock(&self.local);
            match local.get(&digest) {
                Some((v, until)) if *until > Instant::now() => return Some(v.clone()),
                Some(_) => {
                    local.remove(&digest);
                }
                None => {}
            }
        }
        let inner = &self.state.inner;
        let mut conn = inner.conn.clone();
        let key = self.key_for(token);
        let got: Result<(Option<Vec<u8>>, i64), _> = bounded(
            inner.timeout,
            redis::pipe().get(&key).pttl(&key).query_async(&mut conn),
        )
        .await;
        match got {
            Ok((Some(v), ttl)) if ttl > 0 => {
                let until = Instant::now() + Duration::from_millis(ttl.unsigned_abs());
                self.put_local(digest, v.clone(), until);
                Some(v)
            }
            Ok(_) => None,
            Err(e) => {
                crate::metrics::redis_error("cache_get");
                tracing::debug!(error = %e, "shared cache unreachable: a miss");
                None
            }
        }
    }

    /// Caches `verdict` for `token` for `ttl`, here and in Redis (an
    /// unreachable Redis is logged; the local entry stays).
    pub async fn put(&self, token: &[u8], verdict: &[u8], ttl: Duration) {
        if ttl.is_zero() {
            return;
        }
        self.put_local(self.digest(token), verdict.to_vec(), Instant::now() + ttl);
        let inner = &self.state.inner;
        let mut conn = inner.conn.clone();
        let ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX);
        let r: Result<(), _> = bounded(
            inner.timeout,
            redis::cmd("SET")
                .arg(self.key_for(token))
                .arg(verdict)
                .arg("PX")
                .arg(ms)
                .query_async(&mut conn),
        )
        .await;
        if let Err(e) = r {
            crate::metrics::redis_error("cache_put");
            tracing::debug!(error = %e, "shared cache unreachable: kept locally");
        }
    }
}
