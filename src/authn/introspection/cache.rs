//! The verdict cache: keyed by the SHA-256 of the token (never the token),
//! bounded in entries and in bytes, with one introspection in flight per
//! token and a cap on introspections at once.

use std::cell::RefCell;
use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
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

/// This thread's last hits, looked at before the shared map: a repeated
/// token (the common case) then costs no lock-free map read, no access
/// bookkeeping and no shared write, so threads scale. Each slot keeps its
/// verdict's own `until` and is never used past it; at most
/// [`NEAR_SLOTS`] verdicts a thread outlive an eviction from the map, each
/// no longer than its `until`.
const NEAR_SLOTS: usize = 4;

struct NearSlot {
    /// The [`Cache::id`] it belongs to: one authenticator's verdicts never
    /// answer for another's rules.
    cache: u64,
    key: Key,
    until: i64,
    verdict: Arc<Kept>,
}

#[derive(Default)]
struct Near {
    slots: Vec<NearSlot>,
    next: usize,
}

thread_local! {
    static NEAR: RefCell<Near> = RefCell::new(Near::default());
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
    /// Process-unique, for this thread's near slots.
    id: u64,
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
        static NEXT_ID: AtomicU64 = AtomicU64::new(1);
        Cache {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
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
        if let Some(v) = self.near(key, now) {
            return Some(v);
        }
        let e = self.entries.get(key)?;
        if now < e.until {
            self.keep_near(key, e.until, &e.verdict);
            return Some(e.verdict);
        }
        self.entries.invalidate(key);
        None
    }

    /// This thread's recent hit for `key`, while it lives.
    fn near(&self, key: &Key, now: i64) -> Option<Arc<Kept>> {
        NEAR.try_with(|near| {
            let near = near.try_borrow().ok()?;
            near.slots
                .iter()
                .find(|s| s.cache == self.id && s.key == *key && now < s.until)
                .map(|s| s.verdict.clone())
        })
        .ok()
        .flatten()
    }

    fn keep_near(&self, key: &Key, until: i64, verdict: &Arc<Kept>) {
        let _ = NEAR.try_with(|near| {
            let Ok(mut near) = near.try_borrow_mut() else {
                return;
            };
            let slot = NearSlot {
                cache: self.id,
                key: *key,
                until,
                verdict: verdict.clone(),
            };
            if near.slots.len() < NEAR_SLOTS {
                near.slots.push(slot);
            } else {
                let i = near.next % NEAR_SLOTS;
                near.slots[i] = slot;
                near.next = (i + 1) % NEAR_SLOTS;
            }
        });
    }

    /// Drops this thread's slot for `key`: a new verdict replaces it.
    fn forget_near(&self, key: &Key) {
        let _ = NEAR.try_with(|near| {
            if let Ok(mut near) = near.try_borrow_mut() {
                near.slots
                    .retain(|s| !(s.cache == self.id && s.key == *key));
            }
        });
    }

    /// Keeps `verdict` until `until` (clock seconds), `ttl` from now;
    /// `size`: what it holds in bytes (at least the answer's length).
    pub(super) fn keep(&self, key: Key, verdict: Kept, until: i64, ttl: Duration, size: usize) {
        if ttl.is_zero() {
            return;
        }
        self.forget_near(&key);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::authn::Scheme;

    fn refused() -> Kept {
        Kept::Refused(Refusal::invalid_token(Scheme::Bearer, "test", "test"))
    }

    #[test]
    fn a_near_slot_is_never_used_past_its_until() {
        let cache = Cache::new(100, 1 << 20, 4);
        let key = [7u8; 32];
        cache.keep(key, refused(), 100, Duration::from_secs(60), 10);
        assert!(cache.hit(&key, 99).is_some(), "from the map, kept near");
        assert!(cache.hit(&key, 99).is_some(), "from the near slot");
        assert!(cache.hit(&key, 100).is_none(), "until has passed");
    }

    #[test]
    fn one_caches_near_slots_never_answer_for_another() {
        let (a, b) = (Cache::new(100, 1 << 20, 4), Cache::new(100, 1 << 20, 4));
        let key = [9u8; 32];
        a.keep(key, refused(), 100, Duration::from_secs(60), 10);
        assert!(a.hit(&key, 1).is_some());
        assert!(b.hit(&key, 1).is_none(), "b never saw this token");
    }

    #[test]
    fn a_new_verdict_replaces_this_threads_near_slot() {
        let cache = Cache::new(100, 1 << 20, 4);
        let key = [3u8; 32];
        cache.keep(key, refused(), 100, Duration::from_secs(60), 10);
        assert!(cache.hit(&key, 1).is_some());
        cache.keep(key, refused(), 50, Duration::from_secs(60), 10);
        assert!(
            cache.hit(&key, 60).is_none(),
            "the new verdict's until holds"
        );
    }
}
