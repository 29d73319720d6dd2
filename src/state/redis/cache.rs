//! A shared cache of small verdicts, keyed by the token's digest.

use std::collections::HashMap;
use std::fmt;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::{RedisState, bounded, hex, lock};

/// The largest value [`RedisCache::get`] reads from Redis: an
/// introspection answer of the default body limit plus a header line. A
/// larger value is a miss, and no more than this plus one byte is read
/// (`GETRANGE`), whatever was written there.
pub const MAX_CACHE_VALUE: usize = 64 * 1024 + 32;

/// What a read from the shared cache found.
pub(crate) enum Fetched {
    /// A value of at most [`MAX_CACHE_VALUE`] bytes.
    Hit(Vec<u8>),
    /// Nothing, or Redis could not answer.
    Miss,
    /// A value over [`MAX_CACHE_VALUE`] bytes (not read whole).
    TooLarge,
}

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
    pub(super) fn new(state: RedisState, namespace: &str, local_capacity: usize) -> RedisCache {
        RedisCache {
            state,
            namespace: namespace.to_owned(),
            local: Mutex::new(HashMap::new()),
            capacity: local_capacity.max(1),
        }
    }

    /// The same Redis under `namespace:scope` (the introspection tier's
    /// entries, kept apart by the rules that decide them).
    #[cfg(feature = "introspection")]
    pub(crate) fn scoped(&self, scope: &str) -> RedisCache {
        RedisCache::new(
            self.state.clone(),
            &format!("{}:{scope}", self.namespace),
            self.capacity,
        )
    }

    /// The namespace given (with any scope).
    #[cfg(feature = "introspection")]
    pub(crate) fn namespace(&self) -> &str {
        &self.namespace
    }

    /// The connection's bound on each command.
    #[cfg(feature = "introspection")]
    pub(crate) fn timeout(&self) -> Duration {
        self.state.timeout()
    }

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

    /// The cached verdict for `token`: local first, then Redis. A value in
    /// Redis over [`MAX_CACHE_VALUE`] bytes is a miss (not read whole).
    pub async fn get(&self, token: &[u8]) -> Option<Vec<u8>> {
        match self.fetch(token).await {
            Fetched::Hit(v) => Some(v),
            Fetched::TooLarge => {
                crate::metrics::redis_error("cache_value");
                None
            }
            Fetched::Miss => None,
        }
    }

    /// [`get`](Self::get), telling a value too large from a miss.
    pub(crate) async fn fetch(&self, token: &[u8]) -> Fetched {
        let digest = self.digest(token);
        {
            let mut local = lock(&self.local);
            match local.get(&digest) {
                Some((v, until)) if *until > Instant::now() => return Fetched::Hit(v.clone()),
                Some(_) => {
                    local.remove(&digest);
                }
                None => {}
            }
        }
        let inner = &self.state.inner;
        let mut conn = inner.conn.clone();
        let key = self.key_for(token);
        // At most the cap plus one byte (GETRANGE's end is inclusive), so a
        // huge value planted in Redis is never read whole; a missing key
        // reads "" and a PTTL of -2.
        let got: Result<(Vec<u8>, i64), _> = bounded(
            inner.timeout,
            redis::pipe()
                .cmd("GETRANGE")
                .arg(&key)
                .arg(0)
                .arg(MAX_CACHE_VALUE)
                .pttl(&key)
                .query_async(&mut conn),
        )
        .await;
        match got {
            Ok((v, _)) if v.len() > MAX_CACHE_VALUE => {
                tracing::debug!("shared cache value over the size cap: a miss");
                Fetched::TooLarge
            }
            Ok((v, ttl)) if ttl > 0 => {
                let until = Instant::now() + Duration::from_millis(ttl.unsigned_abs());
                self.put_local(digest, v.clone(), until);
                Fetched::Hit(v)
            }
            Ok(_) => Fetched::Miss,
            Err(e) => {
                crate::metrics::redis_error("cache_get");
                tracing::debug!(error = %e, "shared cache unreachable: a miss");
                Fetched::Miss
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
