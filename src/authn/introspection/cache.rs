//! The verdict cache: keyed by the SHA-256 of the token (never the token),
//! bounded in entries and in bytes, with one introspection in flight per
//! token and a cap on introspections at once.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use serde_json::Value;
use tokio::sync::{OnceCell, Semaphore};

use super::Outcome;
use crate::authn::{Principal, Refusal};

/// A token's digest: the cache and single-flight key.
pub(super) type Key = [u8; 32];

/// The bytes an entry is charged beyond its answer: the key, the
/// principal's fixed parts, moka's bookkeeping (an estimate).
const ENTRY_OVERHEAD: usize = 256;

/// A kept verdict.
#[derive(Clone)]
pub(super) struct Entry {
    verdict: Arc<Kept>,
    /// By the authenticator's clock: the verdict is reused while
    /// `now < until`.
    until: i64,
    /// How long moka keeps it (real time): the memory goes even when no
    /// one asks again.
    ttl: Duration,
    weight: u32,
}

/// What a kept verdict says.
pub(super) enum Kept {
    Active(Principal),
    Refused(Refusal),
}

/// The memory a kept principal holds, estimated from what it holds (its
/// claims as parsed `Value`s, its scopes), so the byte bound holds for an
/// answer of many small members, which takes several times its length
/// once parsed. A lower bound of the real heap: each member is charged its
/// key, its `String` and `Value` headers and a share of the tree node;
/// each string its bytes; each array slot a `Value`.
pub(super) fn weigh(p: &Principal) -> usize {
    const MEMBER: usize = size_of::<String>() + size_of::<Value>() + 16;
    let mut total = size_of::<Value>();
    let mut stack: Vec<&Value> = Vec::new();
    for (k, v) in p.claims() {
        total = total.saturating_add(MEMBER + k.len());
        stack.push(v);
    }
    while let Some(v) = stack.pop() {
        match v {
            Value::String(s) => total = total.saturating_add(s.len()),
            Value::Array(a) => {
                total = total.saturating_add(a.len().saturating_mul(size_of::<Value>()));
                stack.extend(a);
            }
            Value::Object(m) => {
                for (k, v) in m {
                    total = total.saturating_add(MEMBER + k.len());
                    stack.push(v);
                }
            }
            Value::Null | Value::Bool(_) | Value::Number(_) => {}
        }
    }
    for s in p.scopes() {
        total = total.saturating_add(size_of::<String>() + 16 + s.len());
    }
    total.saturating_add(p.subject().len())
}

struct PerEntry;

impl moka::Expiry<Key, Entry> for PerEntry {
    fn expire_after_create(
        &self,
        _key: &Key,
        value: &Entry,
        _created_at: std::time::Instant,
    ) -> Option<Duration> {
        Some(value.ttl)
    }
}

pub(super) struct Cache {
    entries: moka::sync::Cache<Key, Entry>,
    /// Every entry weighs at least this: `max_bytes / max_entries`, so
    /// that the byte bound is also an entry bound.
    min_weight: usize,
    max_bytes: u64,
    flights: Mutex<HashMap<Key, Arc<OnceCell<Outcome>>>>,
    pub(super) permits: Semaphore,
    pub(super) max_concurrent: usize,
}

impl fmt::Debug for Cache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Cache")
            .field("entries", &self.entries.entry_count())
            .field("weighted_bytes", &self.entries.weighted_size())
            .field("max_bytes", &self.max_bytes)
            .field("max_concurrent", &self.max_concurrent)
            .finish()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Cache {
    pub(super) fn new(max_entries: usize, max_bytes: usize, max_concurrent: usize) -> Cache {
        let max_entries = max_entries.max(1);
        let max_concurrent = max_concurrent.clamp(1, Semaphore::MAX_PERMITS);
        Cache {
            entries: moka::sync::Cache::builder()
                .max_capacity(max_bytes as u64)
                .weigher(|_k, e: &Entry| e.weight)
                .expire_after(PerEntry)
                .build(),
            min_weight: (max_bytes / max_entries).max(1),
            max_bytes: max_bytes as u64,
            flights: Mutex::new(HashMap::new()),
            permits: Semaphore::new(max_concurrent),
            max_concurrent,
        }
    }

    /// A live verdict for `key`, by the clock's `now`.
    pub(super) fn hit(&self, key: &Key, now: i64) -> Option<Arc<Kept>> {
        let e = self.entries.get(key)?;
        if now < e.until {
            return Some(e.verdict);
        }
        self.entries.invalidate(key);
        None
    }

    /// Keeps `verdict` until `until` (clock seconds), `ttl` from now;
    /// `size`: what it holds in bytes (at least the answer's length).
    pub(super) fn keep(&self, key: Key, verdict: Kept, until: i64, ttl: Duration, size: usize) {
        if ttl.is_zero() {
            return;
        }
        let weight = size.saturating_add(ENTRY_OVERHEAD).max(self.min_weight);
        let weight = u32::try_from(weight).unwrap_or(u32::MAX);
        self.entries.insert(
            key,
            Entry {
                verdict: Arc::new(verdict),
                until,
                ttl,
                weight,
            },
        );
    }

    /// The single flight for `key`: the cell every concurrent caller with
    /// this token shares.
    pub(super) fn flight(&self, key: Key) -> Flight<'_> {
        let cell = lock(&self.flights).entry(key).or_default().clone();
        Flight {
            cache: self,
            key,
            cell,
        }
    }

    /// Entries and weighted bytes, after moka's pending housekeeping.
    pub(super) fn usage(&self) -> (u64, u64) {
        self.entries.run_pending_tasks();
        (self.entries.entry_count(), self.entries.weighted_size())
    }
}

/// One caller's hold on a single flight; the last one out removes it, so
/// the map holds only tokens someone is waiting on.
pub(super) struct Flight<'c> {
    cache: &'c Cache,
    key: Key,
    pub(super) cell: Arc<OnceCell<Outcome>>,
}

impl Drop for Flight<'_> {
    fn drop(&mut self) {
        let mut map = lock(&self.cache.flights);
        // Holders take their clone under this lock: the map's and ours
        // alone means no one else waits.
        if map
            .get(&self.key)
            .is_some_and(|c| Arc::ptr_eq(c, &self.cell) && Arc::strong_count(c) <= 2)
        {
            map.remove(&self.key);
        }
    }
}
