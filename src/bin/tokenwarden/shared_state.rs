//! `[redis]`: the denylist shared by every sidecar instance through Redis.
//!
//! With `[redis]` (which needs `[revocation]`), the denylist's source is a
//! [`RedisRevocationSource`]: `/admin/revoke` and `/backchannel-logout`
//! write through Redis, every instance's local mirror follows it by
//! pub/sub, and requests still read only memory. The connection is made in
//! the background: Redis down at start delays readiness, never the start.
//! `/readyz` says 503 until the list in Redis is loaded (`readiness =
//! "loaded"`, the default), or also whenever the link is down
//! (`"connected"`). Revocations made before the connection apply here at
//! once and are handed to Redis when it comes.
//!
//! The sidecar checks no DPoP proof (a DPoP-bound token is refused), so no
//! replay store is shared; a logout token's `jti` is recorded on the
//! denylist, which Redis shares.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::Duration;

use tokenwarden::state::denylist::{Feed, Revocation, RevocationSource};
use tokenwarden::state::redis::{RedisRevocationSource, RedisState};

use crate::redis_config::{Readiness, RedisConfig};

/// Revocations held while Redis has never been reached (each applies here
/// already); more are logged as not shared.
const MAX_EARLY: usize = 100_000;
/// Longest wait between two connection attempts.
const RETRY_MAX: Duration = Duration::from_secs(2);

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The denylist's source until Redis is first reached, and a handle on it
/// after: the denylist is built at start, the connection may come later.
pub struct Shared {
    readiness: Readiness,
    real: OnceLock<Arc<RedisRevocationSource>>,
    early: Mutex<Early>,
}

#[derive(Default)]
struct Early {
    feed: Option<Feed>,
    revocations: VecDeque<Revocation>,
}

impl RevocationSource for Shared {
    fn attach(&self, feed: Feed) {
        let mut early = lock(&self.early);
        match self.real.get() {
            Some(real) => real.attach(feed),
            None => early.feed = Some(feed),
        }
    }

    fn publish(&self, revocation: &Revocation) {
        let mut early = lock(&self.early);
        match self.real.get() {
            Some(real) => real.publish(revocation),
            None if early.revocations.len() >= MAX_EARLY => {
                tracing::error!(
                    "redis never reached and too many revocations held: this one applies on this instance only"
                );
            }
            None => early.revocations.push_back(revocation.clone()),
        }
    }
}

impl Shared {
    /// Whether `/readyz` may say ready, as far as Redis goes.
    pub fn is_ready(&self) -> bool {
        match self.real.get() {
            None => false,
            Some(s) => match self.readiness {
                Readiness::Loaded => s.is_ready(),
                Readiness::Connected => s.is_ready() && s.stats().connected,
            },
        }
    }

    /// Why not ready, for the `/readyz` body.
    pub fn why_not(&self) -> &'static str {
        match self.real.get() {
            None => "redis not reached yet",
            Some(s) if !s.is_ready() => "the shared denylist is not loaded yet",
            Some(_) => "redis link down",
        }
    }

    /// The link's figures for `/metrics`. Before Redis is first reached
    /// the link is down and the revocations held count as waiting.
    pub fn figures(&self) -> LinkFigures {
        match self.real.get() {
            None => LinkFigures {
                up: false,
                pending: lock(&self.early).revocations.len(),
                resync_failures: 0,
                last_load: None,
            },
            Some(s) => {
                let st = s.stats();
                LinkFigures {
                    up: st.connected,
                    pending: st.pending,
                    resync_failures: st.resync_failures,
                    last_load: st.last_load,
                }
            }
        }
    }

    /// Takes the source Redis gives once reached: the denylist attaches to
    /// it and the revocations held so far are handed over.
    fn connected(&self, real: Arc<RedisRevocationSource>) {
        let mut early = lock(&self.early);
        if self.real.set(real.clone()).is_err() {
            return;
        }
        if let Some(feed) = early.feed.take() {
            real.attach(feed);
        }
        for r in early.revocations.drain(..) {
            real.publish(&r);
        }
    }
}

/// What `/metrics` shows of the Redis link.
pub struct LinkFigures {
    /// The pub/sub link is up.
    pub up: bool,
    /// Revocations waiting to be written to Redis.
    pub pending: usize,
    /// Full loads of the shared list that failed.
    pub resync_failures: u64,
    /// Unix time of the last full load that succeeded.
    pub last_load: Option<i64>,
}

/// The source to build the denylist with; connects in the background
/// (inside the runtime), retrying until Redis answers.
pub fn start(config: &RedisConfig, max_token_lifetime: Duration) -> Arc<Shared> {
    let shared = Arc::new(Shared {
        readiness: config.readiness,
        real: OnceLock::new(),
        early: Mutex::new(Early::default()),
    });
    let config = config.clone();
    let weak = Arc::downgrade(&shared);
    tokio::spawn(async move {
        let mut wait = Duration::from_millis(50);
        loop {
            let connected = RedisState::builder(config.url.clone())
                .prefix(config.prefix.clone())
                .timeout(config.timeout)
                .retry_max(RETRY_MAX)
                .max_token_lifetime(max_token_lifetime)
                .connect()
                .await;
            let Some(shared) = weak.upgrade() else { return };
            match connected {
                Ok(state) => {
                    tracing::info!(prefix = %config.prefix, "redis reached: loading the shared denylist");
                    shared.connected(state.revocation_source());
                    return;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "redis not reachable: not ready; retrying");
                }
            }
            drop(shared);
            tokio::time::sleep(wait).await;
            wait = (wait * 2).min(RETRY_MAX);
        }
    });
    shared
}
