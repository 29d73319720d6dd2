//! The DPoP replay cache on Redis: `SET NX PX`, and the outage policy.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use super::{RedisState, ReplayPolicy};
use crate::authn::BoxFuture;
use crate::state::replay::{MemoryReplayStore, ReplayError, ReplayKey, ReplayStore};

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
    pub(super) fn new(state: RedisState, local_capacity: usize) -> RedisReplayStore {
        RedisReplayStore {
            state,
            local: MemoryReplayStore::new(local_capacity),
            unavailable: AtomicU64::new(0),
        }
    }

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
