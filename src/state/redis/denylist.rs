//! The denylist's source on Redis: a sorted set, a channel, a local mirror.

use std::collections::{HashMap, HashSet, VecDeque};
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use futures_util::StreamExt;
use tokio::sync::{Notify, watch};

use super::{MAX_MESSAGE, RedisError, RedisState, bounded, lock};

/// Members read per command when the whole list is loaded.
const RELOAD_PAGE: usize = 1000;
use crate::state::denylist::{Feed, GRACE, Revocation, RevocationSource};

struct Counters {
    delivered: AtomicU64,
    failures: AtomicU64,
    dropped: AtomicU64,
    reloads: AtomicU64,
    received: AtomicU64,
    resync_failures: AtomicU64,
    /// Unix time of the last full load; `i64::MIN`: none yet.
    last_load: AtomicI64,
}

impl Default for Counters {
    fn default() -> Self {
        Counters {
            delivered: AtomicU64::new(0),
            failures: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            reloads: AtomicU64::new(0),
            received: AtomicU64::new(0),
            resync_failures: AtomicU64::new(0),
            last_load: AtomicI64::new(i64::MIN),
        }
    }
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
    /// Full loads that failed (on a reconnect or a periodic resync; each
    /// also counted in `failures`). The subscription stays up through
    /// them and the load is retried.
    pub resync_failures: u64,
    /// Unix time (the source's clock) of the last full load that
    /// succeeded; `None` before the first.
    pub last_load: Option<i64>,
}

/// The denylist's [`RevocationSource`] on Redis; see the [module](super).
///
/// Build it with [`RedisState::revocation_source`], give it to one
/// [`DenylistBuilder::source`](crate::state::denylist::DenylistBuilder::source)
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
    pub(super) fn new(state: RedisState) -> RedisRevocationSource {
        let (ready_tx, _) = watch::channel(false);
        RedisRevocationSource {
            shared: Arc::new(SourceShared {
                state,
                queue: Mutex::new(VecDeque::new()),
                known: Mutex::new(HashMap::new()),
                wake: Arc::new(Notify::new()),
                ready: ready_tx,
                connected: AtomicBool::new(false),
                stats: Counters::default(),
            }),
        }
    }

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
            resync_failures: c.resync_failures.load(Ordering::Relaxed),
            last_load: Some(c.last_load.load(Ordering::Relaxed)).filter(|t| *t != i64::MIN),
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

    /// Loads the whole list into the mirror, a page at a time (each page
    /// bounded by the timeout, so a list of any length loads); queues back
    /// what Redis lost.
    async fn reload(&self, feed: &Feed) -> Result<(), RedisError> {
        let inner = &self.state.inner;
        let mut conn = inner.conn.clone();
        let now = self.now();
        let key = self.state.key("denylist");
        let mut present = HashSet::new();
        // Paged by score (the keep-until time), not by offset: a prune of
        // past entries during the load shifts no page. Members of one
        // score are in a stable (lexical) order; `skip` steps over those
        // of the last score already read.
        let mut min = format!("({now}");
        let mut last: Option<i64> = None;
        let mut skip = 0usize;
        loop {
            let page: Vec<(String, i64)> = bounded(
                inner.timeout,
                redis::cmd("ZRANGEBYSCORE")
                    .arg(&key)
                    .arg(&min)
                    .arg("+inf")
                    .arg("WITHSCORES")
                    .arg("LIMIT")
                    .arg(skip)
                    .arg(RELOAD_PAGE)
                    .query_async(&mut conn),
            )
            .await?;
            let full = page.len() >= RELOAD_PAGE;
            let top = page.last().map(|(_, score)| *score);
            let same = page
                .iter()
                .rev()
                .take_while(|(_, score)| Some(*score) == top)
                .count();
            for (m, _) in page {
                self.apply(feed, &m);
                present.insert(m);
            }
            let Some(top) = top.filter(|_| full) else {
                break;
            };
            skip = if last == Some(top) { skip + same } else { same };
            last = Some(top);
            min = format!("{top}");
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
    s.connected.store(true, Ordering::Relaxed);
    // A failed load keeps the subscription (and the mirror's entries):
    // revocations published from now on still apply, and the load is
    // retried soon (backoff up to `retry_max`), not at the next resync.
    let mut failed = u32::from(!s.try_reload(feed).await);
    let mut messages = pubsub.into_on_message();
    let next_load = |failed: u32| {
        let now = tokio::time::Instant::now();
        now.checked_add(next_load_in(failed, inner.resync))
            .unwrap_or_else(|| now + super::MAX_RESYNC)
    };
    let mut due = next_load(failed);
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
            () = tokio::time::sleep_until(due) => {
                if !feed.is_alive() {
                    return Ok(());
                }
                failed = if s.try_reload(feed).await { 0 } else { failed.saturating_add(1) };
                due = next_load(failed);
            }
        }
    }
}

/// When to load the whole list again, `failed` loads having failed in a
/// row: at the resync interval after a good one; after a failed one soon,
/// then less often (doubling from 50 ms, never past the resync interval),
/// so a load that keeps failing part-way (a timeout on a late page) does
/// not have every instance re-read the list every `retry_max`.
fn next_load_in(failed: u32, resync: Duration) -> Duration {
    if failed == 0 {
        return resync;
    }
    Duration::from_millis(50)
        .saturating_mul(1 << failed.saturating_sub(1).min(20))
        .min(resync)
}

impl SourceShared {
    /// One full load; a failure is logged and counted, never fatal: the
    /// caller keeps its subscription and tries again.
    async fn try_reload(&self, feed: &Feed) -> bool {
        match self.reload(feed).await {
            Ok(()) => {
                self.stats.last_load.store(self.now(), Ordering::Relaxed);
                self.ready.send_replace(true);
                true
            }
            Err(e) => {
                self.stats.failures.fetch_add(1, Ordering::Relaxed);
                self.stats.resync_failures.fetch_add(1, Ordering::Relaxed);
                crate::metrics::redis_error("revocation_resync");
                tracing::warn!(error = %e, "redis denylist load failed: still subscribed, the local list keeps its entries; retrying");
                false
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failed_loads_are_retried_soon_then_less_often_never_past_the_resync() {
        let resync = Duration::from_secs(60);
        assert_eq!(next_load_in(0, resync), resync);
        assert_eq!(next_load_in(1, resync), Duration::from_millis(50));
        assert_eq!(next_load_in(2, resync), Duration::from_millis(100));
        assert_eq!(next_load_in(11, resync), Duration::from_millis(51_200));
        assert_eq!(next_load_in(12, resync), resync);
        assert_eq!(next_load_in(u32::MAX, resync), resync);
        assert_eq!(
            next_load_in(u32::MAX, Duration::MAX),
            Duration::from_millis(50 << 20)
        );
    }
}
