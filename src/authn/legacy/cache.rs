//! The verdict cache around a legacy check: one call in flight per
//! credential (keyed by its HMAC), "yes" and "no" kept for their TTLs,
//! failures never, every check under a semaphore and a deadline.

use std::collections::{HashMap, VecDeque};
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

/// Most "no" verdicts kept (fewer if the cache keeps fewer entries): apart
/// from the "yes" ones, the oldest dropped first, so a flood of bogus
/// credentials evicts only other bogus ones, never a good credential's
/// verdict or its single flight.
pub(crate) const MAX_NEGATIVE: usize = 1024;

pub(crate) struct Cache {
    permits: Semaphore,
    max_concurrent: usize,
    positive: Duration,
    negative: Duration,
    max_entries: usize,
    state: Mutex<State>,
}

/// Three maps, so that none crowds out another: the checks in flight (as
/// many as requests waiting, each gone when done or abandoned), the "yes"
/// verdicts (at most `max_entries`), the "no" verdicts (at most
/// [`MAX_NEGATIVE`], oldest first out).
#[derive(Default)]
struct State {
    flights: HashMap<[u8; 32], Arc<Flight>>,
    yes: HashMap<[u8; 32], (Principal, Instant)>,
    last_sweep: Option<Instant>,
    /// Until when, and the insertion number `no_order` refers to it by.
    no: HashMap<[u8; 32], (Instant, u64)>,
    no_order: VecDeque<([u8; 32], u64)>,
    no_seq: u64,
}

/// One credential's check: in flight while the cell is empty.
type Flight = OnceCell<Outcome>;

/// A caller's hold on a flight: when the last caller lets go (the check
/// done, or every caller gone), the flight leaves the map.
struct Joined<'c> {
    cache: &'c Cache,
    key: [u8; 32],
    flight: Option<Arc<Flight>>,
}

impl Drop for Joined<'_> {
    fn drop(&mut self) {
        // Every handle on a flight is taken and let go under the lock, so
        // the count below is exact: the map's, ours, and other callers'.
        let mut st = self.cache.lock();
        let Some(ours) = self.flight.take() else {
            return;
        };
        let remove = st.flights.get(&self.key).is_some_and(|f| {
            // Ours (not a newer flight for the same credential), and done
            // (a new caller then reads the verdict) or waited on by nobody
            // else (a new caller starts a new check).
            Arc::ptr_eq(f, &ours) && (ours.initialized() || Arc::strong_count(f) == 2)
        });
        if remove {
            st.flights.remove(&self.key);
        }
        drop(ours);
    }
}

impl fmt::Debug for Cache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Entries are counted, never shown (their keys are credential hashes).
        let st = self.lock();
        f.debug_struct("Cache")
            .field("max_concurrent", &self.max_concurrent)
            .field("positive_ttl", &self.positive)
            .field("negative_ttl", &self.negative)
            .field("max_entries", &self.max_entries)
            .field("entries", &(st.yes.len() + st.no.len()))
            .field("in_flight", &st.flights.len())
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
            state: Mutex::default(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
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
        let flight = {
            let mut st = self.lock();
            if let Some((p, until)) = st.yes.get(&key) {
                if start < *until {
                    return if expired(p, clock) {
                        Outcome::No
                    } else {
                        Outcome::Yes(p.clone())
                    };
                }
            }
            if st.no.get(&key).is_some_and(|(until, _)| start < *until) {
                return Outcome::No;
            }
            st.flights.entry(key).or_default().clone()
        };
        let joined = Joined {
            cache: self,
            key,
            flight: Some(flight),
        };
        let Some(flight) = joined.flight.as_deref() else {
            return Outcome::Failed("legacy_unavailable", "no check in flight".into());
        };
        let done = flight.get_or_init(|| async {
            let outcome = self.run(deadline, make).await;
            self.keep(key, &outcome, clock);
            outcome
        });
        // The check this caller starts ends by `deadline` on its own, with
        // its own verdict (`legacy_busy` while waiting for a slot); this
        // bound is for a caller joining a check someone else started. A
        // short grace keeps the two deadlines from racing each other.
        let until = deadline.checked_add(JOIN_GRACE).unwrap_or(deadline);
        match timeout_at(until, done).await {
            Ok(Outcome::Yes(p)) if expired(p, clock) => Outcome::No,
            Ok(outcome) => outcome.clone(),
            Err(_) => Outcome::Failed(
                "legacy_timeout",
                "the check in flight for this credential did not answer in time".into(),
            ),
        }
    }

    /// Keeps a verdict for its TTL: a "yes" among the "yes" ones (when
    /// there is room after dropping expired ones), a "no" among the "no"
    /// ones (the oldest dropped when full); a failure never.
    fn keep(&self, key: [u8; 32], outcome: &Outcome, clock: &dyn Clock) {
        let Some(until) = self.until(outcome, clock) else {
            return;
        };
        let now = Instant::now();
        let mut st = self.lock();
        match outcome {
            Outcome::Yes(p) => {
                st.no.remove(&key);
                if st.yes.len() >= self.max_entries && !st.yes.contains_key(&key) {
                    let due = st
                        .last_sweep
                        .is_none_or(|at| now.saturating_duration_since(at) >= SWEEP_EVERY);
                    if due {
                        st.last_sweep = Some(now);
                        st.yes.retain(|_, (_, until)| now < *until);
                    }
                }
                if st.yes.len() < self.max_entries || st.yes.contains_key(&key) {
                    st.yes.insert(key, (p.clone(), until));
                }
            }
            Outcome::No => {
                st.yes.remove(&key);
                let cap = MAX_NEGATIVE.min(self.max_entries);
                if cap == 0 {
                    return;
                }
                st.no_seq = st.no_seq.wrapping_add(1);
                let seq = st.no_seq;
                st.no.insert(key, (until, seq));
                st.no_order.push_back((key, seq));
                // Oldest first out; entries re-inserted since are skipped.
                while st.no.len() > cap || st.no_order.len() > cap.saturating_mul(2) {
                    let Some((old, old_seq)) = st.no_order.pop_front() else {
                        break;
                    };
                    if st.no.get(&old).is_some_and(|(_, s)| *s == old_seq) {
                        st.no.remove(&old);
                    }
                }
            }
            Outcome::Failed(..) => {}
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
