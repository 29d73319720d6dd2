//! Time source for `exp`/`nbf`/`iat` checks: the system clock by default, a
//! fixed or manual clock for tests and replays.

use std::fmt::Debug;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
#[cfg(not(any(target_os = "linux", target_os = "android")))]
use std::time::{SystemTime, UNIX_EPOCH};

/// A source of the current time, in whole seconds since the Unix epoch.
pub trait Clock: Send + Sync + Debug + 'static {
    /// The current time in seconds since 1970-01-01T00:00:00Z.
    fn now(&self) -> i64;
}

/// The system's wall clock.
///
/// On Linux it reads `CLOCK_REALTIME_COARSE`: the wall clock as of the last
/// kernel tick (at most a few milliseconds behind), read in a few
/// nanoseconds instead of the tens a precise read costs on every token.
/// Whole seconds are all the time claims use.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    #[inline]
    fn now(&self) -> i64 {
        #[cfg(any(target_os = "linux", target_os = "android"))]
        {
            rustix::time::clock_gettime(rustix::time::ClockId::RealtimeCoarse).tv_sec
        }
        #[cfg(not(any(target_os = "linux", target_os = "android")))]
        match SystemTime::now().duration_since(UNIX_EPOCH) {
            Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
            // A clock set before 1970: every token looks not yet valid.
            Err(_) => 0,
        }
    }
}

/// A clock stopped at one instant: for tests and for checking a token as of
/// a given time (`tokenwarden verify --now`).
#[derive(Debug, Clone, Copy)]
pub struct FixedClock(pub i64);

impl Clock for FixedClock {
    fn now(&self) -> i64 {
        self.0
    }
}

/// A clock that tests move by hand; clones share the same time.
///
/// ```
/// use tokenwarden::{Clock, ManualClock};
///
/// let clock = ManualClock::new(1_700_000_000);
/// let seen_by_validator = clock.clone();
/// clock.advance(61);
/// assert_eq!(seen_by_validator.now(), 1_700_000_061);
/// ```
#[derive(Debug, Clone, Default)]
pub struct ManualClock(Arc<AtomicI64>);

impl ManualClock {
    /// A clock reading `now`.
    pub fn new(now: i64) -> Self {
        ManualClock(Arc::new(AtomicI64::new(now)))
    }

    /// Sets the time.
    pub fn set(&self, now: i64) {
        self.0.store(now, Ordering::Relaxed);
    }

    /// Moves the time forward by `secs` seconds (saturating: the clock
    /// stops at `i64::MAX` rather than wrapping into the past).
    pub fn advance(&self, secs: i64) {
        let _ = self
            .0
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |t| {
                Some(t.saturating_add(secs))
            });
    }
}

impl Clock for ManualClock {
    fn now(&self) -> i64 {
        self.0.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_clock_saturates_instead_of_wrapping() {
        let clock = ManualClock::new(i64::MAX - 1);
        clock.advance(i64::MAX);
        assert_eq!(clock.now(), i64::MAX);
        clock.set(i64::MIN + 1);
        clock.advance(i64::MIN);
        assert_eq!(clock.now(), i64::MIN);
    }

    /// The coarse clock tells the same second as the precise one (give or
    /// take the tick between the two reads).
    #[test]
    fn system_clock_agrees_with_std() {
        fn std_now() -> i64 {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs() as i64)
        }
        let before = std_now();
        let ours = SystemClock.now();
        let after = std_now();
        assert!(
            before - 1 <= ours && ours <= after,
            "{before} {ours} {after}"
        );
    }
}
