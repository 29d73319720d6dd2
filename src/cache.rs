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
//! - the entry remembers the id of the key that verified it, and is good
//!   only while that very key is in the current key set (a rotation or a
//!   revocation drops it);
//! - `exp`, `nbf`, `iat` and `max_age` are checked again on every hit, by
//!   the validator's clock; entries also expire at `exp` and after the
//!   configured maximum lifetime;
//! - it is bounded by entries and by bytes.

use std::any::Any;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use crate::claims::Time;
use crate::token::Header;

/// Settings of a validator's verified-token cache
/// ([`ValidatorBuilder::cache`](crate::ValidatorBuilder::cache)).
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
    pub fn max_ttl(mut self, d: Duration) -> Self {
        self.max_ttl = d;
        self
    }
}

/// What a hit needs to answer without the signature.
pub(crate) struct Entry {
    pub(crate) header: Header,
    pub(crate) payload: Box<[u8]>,
    pub(crate) key_id: u64,
    pub(crate) exp: Time,
    pub(crate) nbf: Time,
    pub(crate) iat: Time,
    /// The first `validate_shared` answer for this token, for the next.
    shared: OnceLock<Arc<dyn Any + Send + Sync>>,
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
        payload: &[u8],
        key_id: u64,
        times: (Time, Time, Time),
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
                Duration::from_secs_f64(left.min(config.max_ttl.as_secs_f64()))
            }
            _ => config.max_ttl,
        };
        // The raw claims, and room for a shared parsed answer (`validate_shared`)
        // estimated at twice their size.
        let size = token.len() + 3 * payload.len() + ENTRY_OVERHEAD;
        // Weighted so that the byte bound also caps the number of entries.
        let floor = config.max_bytes / config.max_entries;
        let weight = u32::try_from((size as u64).max(floor)).unwrap_or(u32::MAX);
        Some(Entry {
            header,
            payload: payload.into(),
            key_id,
            exp: times.0,
            nbf: times.1,
            iat: times.2,
            shared: OnceLock::new(),
            ttl,
            weight,
        })
    }
}

impl Entry {
    /// The shared answer, if one of type `T` was kept.
    pub(crate) fn shared<T: Send + Sync + 'static>(&self) -> Option<Arc<T>> {
        self.shared.get()?.clone().downcast::<T>().ok()
    }

    /// Keeps `value` as the shared answer (the first one kept stays).
    pub(crate) fn share<T: Send + Sync + 'static>(&self, value: Arc<T>) {
        let _ = self.shared.set(value);
    }
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
    map: moka::sync::Cache<Arc<str>, Arc<Entry>, foldhash::quality::RandomState>,
}

impl TokenCache {
    pub(crate) fn new(config: CacheConfig) -> TokenCache {
        let map = moka::sync::Cache::builder()
            .max_capacity(config.max_bytes)
            .weigher(|_: &Arc<str>, e: &Arc<Entry>| e.weight)
            .expire_after(Policy)
            .build_with_hasher(foldhash::quality::RandomState::default());
        TokenCache { config, map }
    }

    pub(crate) fn get(&self, token: &str) -> Option<Arc<Entry>> {
        self.map.get(token)
    }

    pub(crate) fn insert(&self, token: &str, entry: Entry) {
        self.map.insert(Arc::from(token), Arc::new(entry));
    }

    pub(crate) fn remove(&self, token: &str) {
        self.map.invalidate(token);
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
