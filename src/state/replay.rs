//! The replay cache: each one-time value (a DPoP proof's `jti`, RFC 9449
//! §11.1) accepted once while it could still be accepted at all.
//!
//! [`ReplayStore`] is the trait (async, object-safe: a store shared across
//! instances can implement it); [`MemoryReplayStore`] the bounded local
//! one. Values are kept as a [`ReplayKey`], a SHA-256 digest of their
//! parts, never as sent: a hostile `jti` costs 32 bytes, and nothing a
//! client sent is stored.

use std::collections::HashMap;
use std::fmt;
use std::hash::{BuildHasher, RandomState};
use std::sync::{Mutex, PoisonError};

use crate::authn::BoxFuture;

/// A one-time value as the store keeps it: the SHA-256 digest of its
/// labelled, length-prefixed parts (for DPoP: the key thumbprint and the
/// `jti`, so two clients' `jti`s never collide).
///
/// ```
/// use tokenwarden::state::replay::ReplayKey;
///
/// let a = ReplayKey::new(&[b"jkt-1", b"jti-1"]);
/// assert_eq!(a, ReplayKey::new(&[b"jkt-1", b"jti-1"]));
/// // Length prefixes: moving bytes between parts makes another key.
/// assert_ne!(a, ReplayKey::new(&[b"jkt-1j", b"ti-1"]));
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct ReplayKey([u8; 32]);

impl ReplayKey {
    /// The key of `parts`, each length-prefixed so that the split between
    /// parts counts.
    pub fn new(parts: &[&[u8]]) -> ReplayKey {
        let lens: Vec<[u8; 8]> = parts
            .iter()
            .map(|p| (p.len() as u64).to_be_bytes())
            .collect();
        let mut all: Vec<&[u8]> = Vec::with_capacity(parts.len() * 2 + 1);
        all.push(b"tokenwarden replay v1");
        for (len, part) in lens.iter().zip(parts) {
            all.push(len);
            all.push(part);
        }
        ReplayKey(crate::crypto::sha256_parts(&all))
    }

    /// The digest, e.g. as a Redis key.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Debug for ReplayKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // A digest, not the value: still, a short prefix is enough to tell
        // two apart in a log.
        write!(
            f,
            "ReplayKey({:02x}{:02x}{:02x}{:02x}…)",
            self.0[0], self.0[1], self.0[2], self.0[3]
        )
    }
}

/// Why a [`ReplayStore`] could not answer. Callers fail closed: the value
/// is refused (503), never accepted unrecorded.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ReplayError {
    reason: &'static str,
    full: bool,
}

impl ReplayError {
    /// A store that could not be reached or answered wrongly.
    pub fn unavailable(reason: &'static str) -> ReplayError {
        ReplayError {
            reason,
            full: false,
        }
    }

    /// A bounded store full of values that have not yet expired.
    pub fn full() -> ReplayError {
        ReplayError {
            reason: "the replay cache is full of unexpired values",
            full: true,
        }
    }

    /// Whether the store was full (rather than unreachable).
    pub fn is_full(&self) -> bool {
        self.full
    }
}

impl fmt::Display for ReplayError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.reason)
    }
}

impl std::error::Error for ReplayError {}

/// Records one-time values until they expire; says whether a value is new.
///
/// Async and object-safe, so a store shared across instances (Redis `SET
/// key 1 NX EXAT expires_at`) can implement it. (The built-in
/// [`MemoryReplayStore`] is also called directly, so a request judged with
/// it needs no future.)
///
/// ```
/// use tokenwarden::authn::BoxFuture;
/// use tokenwarden::state::replay::{ReplayError, ReplayKey, ReplayStore};
///
/// /// A store that is always down: requests are refused, never let through.
/// struct Down;
///
/// impl ReplayStore for Down {
///     fn insert_once<'a>(&'a self, _: &'a ReplayKey, _: i64, _: i64)
///         -> BoxFuture<'a, Result<bool, ReplayError>> {
///         Box::pin(async { Err(ReplayError::unavailable("redis is down")) })
///     }
/// }
/// ```
pub trait ReplayStore: Send + Sync + 'static {
    /// Records `key` until `expires_at` (Unix seconds) if it is not already
    /// recorded and unexpired at `now`: `Ok(true)` when it was new (accept
    /// the value), `Ok(false)` when it is a replay.
    ///
    /// # Errors
    /// When the store cannot answer: the caller refuses the request.
    fn insert_once<'a>(
        &'a self,
        key: &'a ReplayKey,
        expires_at: i64,
        now: i64,
    ) -> BoxFuture<'a, Result<bool, ReplayError>>;
}

/// Shards of the memory store: concurrent requests rarely wait on one lock.
const SHARDS: usize = 16;

/// Default capacity of a [`MemoryReplayStore`]: about 20 MB at most.
pub const DEFAULT_REPLAY_CAPACITY: usize = 262_144;

/// A bounded replay cache in this process's memory.
///
/// Each value lives until its own expiry. When a shard is full, expired
/// values are swept out (at most once a second per shard, so a full cache
/// costs no quadratic work); if it is still full of unexpired values the
/// new value is refused ([`ReplayError::full`]): evicting a live value
/// would let it be replayed. Size the capacity for the values accepted in
/// one window (for DPoP: proofs per `max_age` + leeway).
///
/// Values are spread over 16 shards by a hash under a random key of the
/// store's own, so a client cannot choose `jti`s that all land in one.
///
/// One process only: behind a load balancer, give every instance one
/// shared store (see [`ReplayStore`]), or a proof replayed to another
/// instance is accepted there once.
pub struct MemoryReplayStore {
    shards: Box<[Mutex<Shard>]>,
    per_shard: usize,
    /// A random key per store for the shard index (SipHash, keyed): a
    /// client chooses its `jti`s and proof keys, so it could grind values
    /// whose digests all pick one shard by a public rule, fill that shard
    /// and have everyone else's proofs landing there refused as `full`.
    /// Under a secret key it cannot tell which shard a value lands in.
    shard_key: RandomState,
}

#[derive(Default)]
struct Shard {
    expiries: HashMap<ReplayKey, i64>,
    last_sweep: Option<i64>,
}

impl fmt::Debug for MemoryReplayStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryReplayStore")
            .field("capacity", &self.capacity())
            .field("len", &self.len())
            .finish()
    }
}

impl Default for MemoryReplayStore {
    fn default() -> Self {
        MemoryReplayStore::new(DEFAULT_REPLAY_CAPACITY)
    }
}

impl MemoryReplayStore {
    /// A store holding at most about `capacity` values (at least one per
    /// shard).
    pub fn new(capacity: usize) -> MemoryReplayStore {
        let per_shard = capacity.div_ceil(SHARDS).max(1);
        let shards = (0..SHARDS).map(|_| Mutex::new(Shard::default())).collect();
        MemoryReplayStore {
            shards,
            per_shard,
            shard_key: RandomState::new(),
        }
    }

    /// The shard `key` lands in: a keyed hash of the digest, unknown to
    /// clients. One SipHash of 32 bytes, no allocation.
    fn shard_of(&self, key: &ReplayKey) -> usize {
        // Widening the shard count cannot truncate: SHARDS fits in u64.
        (self.shard_key.hash_one(key.0) % SHARDS as u64) as usize
    }

    /// The most values held.
    pub fn capacity(&self) -> usize {
        self.per_shard.saturating_mul(SHARDS)
    }

    /// The values held now (expired ones not yet swept included).
    pub fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| {
                s.lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .expiries
                    .len()
            })
            .sum()
    }

    /// Whether no value is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// [`ReplayStore::insert_once`], answered at once.
    pub(crate) fn insert(
        &self,
        key: &ReplayKey,
        expires_at: i64,
        now: i64,
    ) -> Result<bool, ReplayError> {
        let shard = &self.shards[self.shard_of(key)];
        // A panic elsewhere while holding the lock leaves the map whole (no
        // code here panics mid-update): keep using it.
        let mut shard = shard.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(&exp) = shard.expiries.get(key) {
            if exp >= now {
                return Ok(false);
            }
        }
        if shard.expiries.len() >= self.per_shard && !shard.expiries.contains_key(key) {
            if shard.last_sweep.is_none_or(|t| t < now) {
                shard.expiries.retain(|_, exp| *exp >= now);
                shard.last_sweep = Some(now);
            }
            if shard.expiries.len() >= self.per_shard {
                return Err(ReplayError::full());
            }
        }
        shard.expiries.insert(*key, expires_at);
        Ok(true)
    }
}

impl ReplayStore for MemoryReplayStore {
    fn insert_once<'a>(
        &'a self,
        key: &'a ReplayKey,
        expires_at: i64,
        now: i64,
    ) -> BoxFuture<'a, Result<bool, ReplayError>> {
        let verdict = self.insert(key, expires_at, now);
        Box::pin(async move { verdict })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(i: u32) -> ReplayKey {
        ReplayKey::new(&[b"jkt", &i.to_be_bytes()])
    }

    #[test]
    fn a_value_is_accepted_once_until_it_expires() {
        let store = MemoryReplayStore::new(64);
        assert_eq!(store.insert(&key(1), 100, 10), Ok(true));
        assert_eq!(store.insert(&key(1), 100, 50), Ok(false));
        assert_eq!(store.insert(&key(1), 100, 100), Ok(false));
        // Past its expiry the value could not be accepted by its window
        // anyway: recorded anew.
        assert_eq!(store.insert(&key(1), 200, 101), Ok(true));
        assert_eq!(store.insert(&key(2), 100, 10), Ok(true));
    }

    #[test]
    fn a_full_store_sweeps_expired_values_then_fails_closed() {
        let store = MemoryReplayStore::new(SHARDS); // one per shard
        let mut full = None;
        for i in 0..1000 {
            match store.insert(&key(i), 100, 10) {
                Ok(true) => {}
                Err(e) => {
                    full = Some((i, e));
                    break;
                }
                Ok(false) => panic!("distinct keys"),
            }
        }
        let (i, e) = full.expect("the store fills");
        assert!(e.is_full());
        // Once the held values expire the sweep makes room.
        assert_eq!(store.insert(&key(i), 300, 101), Ok(true));
        assert!(store.len() <= store.capacity());
    }

    /// The shard index is keyed per store (the attack test is
    /// `tests/dpop.rs::a_client_grinding_jtis_for_one_replay_shard_cannot_fill_it`).
    #[test]
    fn two_stores_place_the_same_values_in_different_shards() {
        let (a, b) = (MemoryReplayStore::new(64), MemoryReplayStore::new(64));
        let shards =
            |s: &MemoryReplayStore| (0..64).map(|i| s.shard_of(&key(i))).collect::<Vec<_>>();
        // Equal by chance once in 16^64.
        assert_ne!(shards(&a), shards(&b));
        // Stable within one store.
        assert_eq!(shards(&a), shards(&a));
    }
}
