//! The verdict cache around a legacy check: one call in flight per
//! credential (keyed by its SHA-256), "yes" and "no" kept for their TTLs,
//! failures never, every check under a semaphore and a deadline.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::{OnceCell, Semaphore};
use tokio::time::{Instant, timeout_at};

use super::{CheckResult, MAX_TTL};
use crate::authn::Principal;
use crate::clock::Clock;

/// How much longer than its own deadline a caller waits on a check another
/// caller started (that check ends by its own deadline).
const JOIN_GRACE: Duration = Duration::from_millis(50);

/// What one judgement came to.
#[derive(Debug, Clone)]
pub(crate) enum Outcome {
    Yes(Principal),
    No,
    /// The 503's kind and the reason to log (never a credential).
    Failed(&'static str, String),
}

/// How often, at most, a full cache is swept of expired verdicts.
const SWEEP_EVERY: Duration = Duration::from_secs(1);

pub(crate) struct Cache {
    permits: Semaphore,
    max_concurrent: usize,
    positive: Duration,
    negative: Duration,
    max_entries: usize,
    slots: Mutex<Slots>,
}

#[derive(Default)]
struct Slots {
    map: HashMap<[u8; 32], Arc<Slot>>,
    last_sweep: Option<Instant>,
}

/// One credential's judgement: in flight while the cell is empty.
#[derive(Default)]
struct Slot {
    cell: OnceCell<Done>,
}

struct Done {
    outcome: Outcome,
    /// Until when the outcome may be reused; `None`: never (a failure).
    until: Option<Instant>,
}

impl Slot {
    /// In flight, or done and reusable at `now`.
    fn live(&self, now: Instant) -> bool {
        match self.cell.get() {
            None => true,
            Some(d) => d.until.is_some_and(|u| now < u),
        }
    }
}

impl fmt::Debug for Cache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Entries are counted, never shown (their keys are credential hashes).
        let entries = self
            .slots
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .map
            .len();
        f.debug_struct("Cache")
            .field("max_concurrent", &self.max_concurrent)
            .field("positive_ttl", &self.positive)
            .field("negative_ttl", &self.negative)
            .field("max_entries", &self.max_entries)
            .field("entries", &entries)
            .finish()
    }
}

impl Cache {
    pub(crate) fn new(
        max_concurrent: usize,
        positive: Duration,
        negative: Duration,
        max_entries: usize,
    ) -> Cache {
        let max_concurrent = max_concurrent.clamp(1, Semaphore::MAX_PERMITS);
        Cache {
            permits: Semaphore::new(max_concurrent),
            max_concurrent,
            positive: positive.min(MAX_TTL),
            negative: negative.min(MAX_TTL),
            max_entries,
            slots: Mutex::default(),
        }
    }

    pub(crate) fn with_permits(&self, n: usize) -> Cache {
        Cache::new(n, self.positive, self.negative, self.max_entries)
    }

    pub(crate) fn with_ttls(
        &self,
        positive: Option<Duration>,
        negative: Option<Duration>,
    ) -> Cache {
        Cache::new(
            self.max_concurrent,
            positive.unwrap_or(self.positive),
            negative.unwrap_or(self.negative),
            self.max_entries,
        )
    }

    pub(crate) fn with_max_entries(&self, n: usize) -> Cache {
        Cache::new(self.max_concurrent, self.positive, self.negative, n)
    }

    /// The slot of `key`: the live one, or a new one (kept when there is
    /// room).
    fn slot(&self, key: [u8; 32], now: Instant) -> Arc<Slot> {
        let mut slots = self.slots.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(s) = slots.map.get(&key) {
            if s.live(now) {
                return s.clone();
            }
        }
        let s = Arc::new(Slot::default());
        slots.map.remove(&key);
        if slots.map.len() >= self.max_entries {
            let due = slots
                .last_sweep
                .is_none_or(|at| now.saturating_duration_since(at) >= SWEEP_EVERY);
            if due {
                slots.last_sweep = Some(now);
                slots.map.retain(|_, s| s.live(now));
            }
        }
        if slots.map.len() < self.max_entries {
            slots.map.insert(key, s.clone());
        }
        s
    }

    /// The outcome for `key`: a live verdict, the check in flight for it,
    /// or a new check made by `make`, all within `timeout`.
    pub(crate) async fn get<F, Fut>(
        &self,
        key: [u8; 32],
        timeout: Duration,
        clock: &dyn Clock,
        make: F,
    ) -> Outcome
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = CheckResult>,
    {
        let start = Instant::now();
        // `timeout` is at most MAX_TIMEOUT (the builder clamps it).
        let deadline = start.checked_add(timeout).unwrap_or(start);
        let slot = self.slot(key, start);
        let done = slot.cell.get_or_init(|| async {
            let outcome = self.run(deadline, make).await;
            let until = self.until(&outcome, clock);
            Done { outcome, until }
        });
        // The check this caller starts ends by `deadline` on its own, with
        // its own verdict (`legacy_busy` while waiting for a slot); this
        // bound is for a caller joining a check someone else started. A
        // short grace keeps the two deadlines from racing each other.
        let joined = deadline.checked_add(JOIN_GRACE).unwrap_or(deadline);
        match timeout_at(joined, done).await {
            Ok(Done {
                outcome: Outcome::Yes(p),
                ..
            }) if expired(p, clock) => Outcome::No,
            Ok(d) => d.outcome.clone(),
            Err(_) => Outcome::Failed(
                "legacy_timeout",
                "the check in flight for this credential did not answer in time".into(),
            ),
        }
    }

    /// Runs one check under the cap, all by `deadline`.
    async fn run<F, Fut>(&self, deadline: Instant, make: F) -> Outcome
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = CheckResult>,
    {
        let _permit = match timeout_at(deadline, self.permits.acquire()).await {
            Ok(Ok(p)) => p,
            Ok(Err(_)) | Err(_) => {
                return Outcome::Failed(
                    "legacy_busy",
                    format!(
                        "all {} check slots stayed busy until the timeout",
                        self.max_concurrent
                    ),
                );
            }
        };
        match timeout_at(deadline, make()).await {
            Ok(Ok(Some(p))) => Outcome::Yes(p),
            Ok(Ok(None)) => Outcome::No,
            Ok(Err(e)) => Outcome::Failed("legacy_unavailable", e.message().to_owned()),
            Err(_) => Outcome::Failed("legacy_timeout", "the check timed out".into()),
        }
    }

    /// Until when an outcome may be reused: a "yes" for the positive TTL
    /// but never past the principal's expiry, a "no" for the negative TTL,
    /// a failure never.
    fn until(&self, outcome: &Outcome, clock: &dyn Clock) -> Option<Instant> {
        let ttl = match outcome {
            Outcome::Yes(p) => match p.expires_at() {
                Some(exp) => {
                    let left = u64::try_from(exp.saturating_sub(clock.now())).unwrap_or(0);
                    self.positive.min(Duration::from_secs(left))
                }
                None => self.positive,
            },
            Outcome::No => self.negative,
            Outcome::Failed(..) => return None,
        };
        if ttl.is_zero() {
            return None;
        }
        Instant::now().checked_add(ttl)
    }
}

/// A principal whose expiry has come (by the authenticator's clock).
fn expired(p: &Principal, clock: &dyn Clock) -> bool {
    p.expires_at().is_some_and(|exp| clock.now() >= exp)
}
