//! The verified-token cache (feature `cache`): a token seen and fully
//! validated before skips its signature check.
//!
//! What makes a hit safe:
//! - the key is the whole token: moka finds it by a hash (foldhash, seeded
//!   at random per process) and compares the stored token byte for byte, so
//!   no collision and no crafted token can reach another token's entry (and
//!   only verified tokens are ever stored, so nobody can choose keys to
//!   flood one hash bucket);
//! - only successes are stored, after every rule passed;
//! - the entry remembers the id of the key that verified it and the issuer
//!   whose key source it came from, and is good only while that very key is
//!   in that issuer's current key set (a rotation or a revocation drops it;
//!   the same key in another issuer's set does not speak for it);
//! - `exp`, `nbf`, `iat` and `max_age` are checked again on every hit, by
//!   the validator's clock, and so are the caller's own checks
//!   (`ValidatorBuilder::check`, over the cached claims); entries also
//!   expire at `exp` and after the configured maximum lifetime;
//! - it is bounded by entries and by bytes; besides, each thread keeps its
//!   last few hits ([`NEAR_SLOTS`]) so that a repeated token is answered
//!   without touching memory other threads write, under the same checks.

use std::any::Any;
use std::cell::RefCell;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::claims::{Time, Times};
use crate::token::Header;

/// Settings of a validator's verified-token cache
/// ([`ValidatorBuilder::cache`](crate::ValidatorBuilder::cache)). With the
/// feature `cache`, every validator has one with the default settings unless
/// [`no_cache`](crate::ValidatorBuilder::no_cache) says otherwise, and so
/// every layer built on it.
///
/// ```
/// use std::time::Duration;
/// use tokenwarden::CacheConfig;
///
/// let config = CacheConfig::default()
///     .max_entries(50_000)
///     .max_bytes(64 * 1024 * 1024)
///     .max_ttl(Duration::from_secs(120));
/// # let _ = config;
/// ```
#[derive(Debug, Clone, Copy)]
pub struct CacheConfig {
    max_entries: u64,
    max_bytes: u64,
    max_ttl: Duration,
}

impl Default for CacheConfig {
    /// 10 000 entries, 16 MiB, 5 minutes.
    fn default() -> Self {
        CacheConfig {
            max_entries: 10_000,
            max_bytes: 16 * 1024 * 1024,
            max_ttl: Duration::from_secs(300),
        }
    }
}

impl CacheConfig {
    /// Most tokens kept (default 10 000).
    pub fn max_entries(mut self, n: u64) -> Self {
        self.max_entries = n.max(1);
        self
    }

    /// Most bytes kept, counting each token, its claims and the entry's
    /// bookkeeping (default 16 MiB).
    pub fn max_bytes(mut self, n: u64) -> Self {
        self.max_bytes = n.max(1);
        self
    }

    /// Longest an entry lives, whatever the token's `exp` (default 5 min).
    /// Any duration is taken, `Duration::MAX` too: an entry still never
    /// outlives its token's `exp`, and every rule is still checked on each
    /// hit.
    pub fn max_ttl(mut self, d: Duration) -> Self {
        self.max_ttl = d;
        self
    }
}

/// What a hit needs to answer without the signature.
pub(crate) struct Entry {
    pub(crate) header: Header,
    /// The claims JSON, checked UTF-8 (so a hit parses it as `str`).
    pub(crate) payload: Box<str>,
    /// The issuer (its index in the validator's configuration) whose key
    /// source verified the token; 0 with a single key source.
    pub(crate) source: usize,
    pub(crate) key_id: u64,
    pub(crate) exp: Time,
    pub(crate) nbf: Time,
    pub(crate) iat: Time,
    /// When the entry stops answering, by the validator's clock (`exp` or
    /// the configured maximum lifetime, whichever comes first).
    pub(crate) expires_at: i64,
    /// The ids the validator's denylist checks on every hit (with one).
    pub(crate) ids: Option<crate::state::denylist::OwnedIds>,
    ttl: Duration,
    weight: u32,
}

/// Bookkeeping bytes counted per entry besides the token and the claims.
pub(crate) const ENTRY_OVERHEAD: usize = std::mem::size_of::<Entry>() + 96;

impl Entry {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        token: &str,
        header: Header,
        payload: &str,
        source: usize,
        key_id: u64,
        times: Times,
        now: i64,
        config: &CacheConfig,
    ) -> Option<Entry> {
        // A token without `exp` lives as long as the cache allows; one that
        // expires within a second is not worth keeping.
        let ttl = match times.0 {
            Time::At(exp) => {
                let left = exp - now as f64;
                if left < 1.0 {
                    return None;
                }
                // Compared as durations: `Duration::MAX` in seconds does not
                // fit an f64 exactly, and converting it back would panic.
                Duration::try_from_secs_f64(left)
                    .unwrap_or(Duration::MAX)
                    .min(config.max_ttl)
            }
            _ => config.max_ttl,
        };
        // The claims count three times: kept raw, plus moka's and the
        // allocator's per-entry costs, which grow with them (measured with
        // `cargo bench --bench throughput -- memory`: 1 236 bytes resident
        // per entry with 203 bytes of claims, against 1 279 counted here).
        let size = token.len() + 3 * payload.len() + ENTRY_OVERHEAD;
        // Weighted so that the byte bound also caps the number of entries.
        let floor = config.max_bytes / config.max_entries;
        let weight = u32::try_from((size as u64).max(floor)).unwrap_or(u32::MAX);
        Some(Entry {
            header,
            payload: payload.into(),
            source,
            key_id,
            exp: times.0,
            nbf: times.1,
            iat: times.2,
            expires_at: now.saturating_add(i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX)),
            ids: None,
            ttl,
            weight,
        })
    }
}

/// A thread's own parsed answer for a recent hit (`validate_shared`).
pub(crate) type Shared = Option<Arc<dyn Any + Send + Sync>>;

/// Recent hits kept per thread. A hit found here reads only memory this
/// thread alone writes: no shared atomic, no lock, so threads scale.
pub(crate) const NEAR_SLOTS: usize = 8;

struct Slot {
    cache: u64,
    token: Box<str>,
    entry: Arc<Entry>,
    shared: Shared,
}

#[derive(Default)]
struct Near {
    slots: Vec<Slot>,
    next: usize,
}

thread_local! {
    static NEAR: RefCell<Near> = RefCell::new(Near::default());
}

struct Policy;

impl moka::Expiry<Arc<str>, Arc<Entry>> for Policy {
    fn expire_after_create(&self, _: &Arc<str>, e: &Arc<Entry>, _: Instant) -> Option<Duration> {
        Some(e.ttl)
    }
}

/// The cache itself.
pub(crate) struct TokenCache {
    pub(crate) config: CacheConfig,
    /// Process-unique: this thread's recent hits are found by it, so one
    /// validator's entries never answer for another's rules.
    id: u64,
    map: moka::sync::Cache<Arc<str>, Arc<Entry>, foldhash::quality::RandomState>,
}

impl TokenCache {
    pub(crate) fn new(config: CacheConfig) -> TokenCache {
        let map = moka::sync::Cache::builder()
            .max_capacity(config.max_bytes)
            .weigher(|_: &Arc<str>, e: &Arc<Entry>| e.weight)
            .expire_after(Policy)
            .build_with_hasher(foldhash::quality::RandomState::default());
        static NEXT_ID: AtomicU64 = AtomicU64::new(1);
        TokenCache {
            config,
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            map,
        }
    }

    /// The shared map's entry for `token`; counted as a hit or a miss.
    pub(crate) fn get(&self, token: &str) -> Option<Arc<Entry>> {
        let entry = self.map.get(token);
        if entry.is_some() {
            crate::metrics::cache_hit();
        } else {
            crate::metrics::cache_miss();
        }
        entry
    }

    /// Stores `entry`, and keeps it near for this thread's next hit.
    pub(crate) fn insert(&self, token: &str, entry: Entry) {
        let entry = Arc::new(entry);
        self.map.insert(Arc::from(token), entry.clone());
        self.keep_near(token, entry);
    }

    pub(crate) fn remove(&self, token: &str) {
        self.forget_near(token);
        self.map.invalidate(token);
    }

    /// Runs `f` on this thread's recent hit for `token`, if there is one,
    /// with the slot for this thread's own parsed answer. `None` when there
    /// is none (or when called again from inside `f`).
    pub(crate) fn near<R>(
        &self,
        token: &str,
        f: impl FnOnce(&Entry, &mut Shared) -> R,
    ) -> Option<R> {
        NEAR.try_with(|near| {
            let mut near = near.try_borrow_mut().ok()?;
            let slot = near
                .slots
                .iter_mut()
                .find(|s| s.cache == self.id && *s.token == *token)?;
            Some(f(&slot.entry, &mut slot.shared))
        })
        .ok()
        .flatten()
    }

    /// Keeps `entry` among this thread's recent hits (the oldest makes way).
    pub(crate) fn keep_near(&self, token: &str, entry: Arc<Entry>) {
        let _ = NEAR.try_with(|near| {
            let Ok(mut near) = near.try_borrow_mut() else {
                return;
            };
            let slot = Slot {
                cache: self.id,
                token: token.into(),
                entry,
                shared: None,
            };
            if let Some(i) = near
                .slots
                .iter()
                .position(|s| s.cache == self.id && *s.token == *token)
            {
                near.slots[i] = slot;
            } else if near.slots.len() < NEAR_SLOTS {
                near.slots.push(slot);
            } else {
                let i = near.next;
                near.slots[i] = slot;
                near.next = (i + 1) % NEAR_SLOTS;
            }
        });
    }

    /// Drops this thread's recent hit for `token`.
    pub(crate) fn forget_near(&self, token: &str) {
        let _ = NEAR.try_with(|near| {
            if let Ok(mut near) = near.try_borrow_mut() {
                near.slots
                    .retain(|s| !(s.cache == self.id && *s.token == *token));
                near.next = 0;
            }
        });
    }

    /// Entries and weighted bytes, after pending maintenance.
    pub(crate) fn usage(&self) -> (u64, u64) {
        self.map.run_pending_tasks();
        (self.map.entry_count(), self.map.weighted_size())
    }
}

impl std::fmt::Debug for TokenCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenCache")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}
