//! The circuit breaker in front of the endpoint: after `threshold`
//! failures in a row it opens for a back-off that doubles (to a cap) with
//! every failed probe; when it has run, one call probes (half-open). Times
//! are the authenticator's clock, so tests move them by hand.

use std::sync::{Mutex, MutexGuard, PoisonError};

/// What the breaker lets through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Admit {
    /// Closed: call.
    Call,
    /// Half-open: this call is the one probe.
    Probe,
    /// Open: no call; try again in this many seconds.
    Open(u32),
}

#[derive(Debug)]
pub(super) struct Breaker {
    threshold: u32,
    first_backoff: i64,
    max_backoff: i64,
    /// A probe older than this (seconds) is taken as lost (its caller
    /// went away): another may start.
    probe_stale: i64,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    failures: u32,
    open_until: Option<i64>,
    backoff: i64,
    probe_since: Option<i64>,
}

impl Breaker {
    pub(super) fn new(
        threshold: u32,
        first_backoff: i64,
        max_backoff: i64,
        probe_stale: i64,
    ) -> Self {
        let first_backoff = first_backoff.max(1);
        Breaker {
            threshold: threshold.max(1),
            first_backoff,
            max_backoff: max_backoff.max(first_backoff),
            probe_stale: probe_stale.max(1),
            state: Mutex::new(State {
                backoff: first_backoff,
                ..State::default()
            }),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether a call may go out now.
    pub(super) fn admit(&self, now: i64) -> Admit {
        let mut s = self.state();
        let Some(until) = s.open_until else {
            return Admit::Call;
        };
        if now < until {
            return Admit::Open(secs(until - now));
        }
        match s.probe_since {
            Some(since) if now - since < self.probe_stale => Admit::Open(1),
            _ => {
                s.probe_since = Some(now);
                Admit::Probe
            }
        }
    }

    /// The endpoint answered: closed again.
    pub(super) fn success(&self) {
        let mut s = self.state();
        *s = State {
            backoff: self.first_backoff,
            ..State::default()
        };
    }

    /// The endpoint failed: `Some(seconds)` when the breaker is (now) open.
    pub(super) fn failure(&self, now: i64, probe: bool) -> Option<u32> {
        let mut s = self.state();
        s.failures = s.failures.saturating_add(1);
        if probe || s.open_until.is_some() {
            // A failed probe: open again, for longer.
            s.probe_since = None;
            s.backoff = s.backoff.saturating_mul(2).min(self.max_backoff);
        } else if s.failures < self.threshold {
            return None;
        }
        let until = now.saturating_add(s.backoff);
        s.open_until = Some(until);
        Some(secs(s.backoff))
    }

    /// The probe admitted never reached the endpoint (no call slot): the
    /// next caller may probe, and nothing is counted.
    pub(super) fn probe_lost(&self) {
        self.state().probe_since = None;
    }

    /// Whether the breaker is open (or half-open) now.
    pub(super) fn is_open(&self) -> bool {
        self.state().open_until.is_some()
    }
}

fn secs(s: i64) -> u32 {
    u32::try_from(s.max(1)).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_after_threshold_probes_and_backs_off() {
        let b = Breaker::new(3, 1, 8, 10);
        assert_eq!(b.failure(100, false), None);
        assert_eq!(b.failure(100, false), None);
        assert_eq!(b.failure(100, false), Some(1));
        assert_eq!(b.admit(100), Admit::Open(1));
        // The back-off has run: one probe, the others wait.
        assert_eq!(b.admit(101), Admit::Probe);
        assert_eq!(b.admit(101), Admit::Open(1));
        // The probe fails: open for twice as long.
        assert_eq!(b.failure(101, true), Some(2));
        assert_eq!(b.admit(102), Admit::Open(1));
        assert_eq!(b.admit(103), Admit::Probe);
        assert_eq!(b.failure(103, true), Some(4));
        assert_eq!(b.admit(107), Admit::Probe);
        assert_eq!(b.failure(107, true), Some(8));
        assert_eq!(b.admit(115), Admit::Probe);
        assert_eq!(b.failure(115, true), Some(8), "capped");
        assert_eq!(b.admit(123), Admit::Probe);
        b.success();
        assert_eq!(b.admit(123), Admit::Call);
        assert!(!b.is_open());
    }

    #[test]
    fn a_lost_probe_does_not_hold_the_breaker_open() {
        let b = Breaker::new(1, 1, 8, 5);
        assert_eq!(b.failure(0, false), Some(1));
        assert_eq!(b.admit(1), Admit::Probe);
        // Its caller went away: no answer is ever recorded.
        assert_eq!(b.admit(3), Admit::Open(1));
        assert_eq!(b.admit(6), Admit::Probe);
    }
}
