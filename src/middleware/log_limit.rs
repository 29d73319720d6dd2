//! Refusal log lines, rate-limited: a flood of bad tokens (a scanner, a
//! misconfigured client, an attack) must not flood the log. Each refusal
//! kind logs at most [`REFUSAL_LOGS_PER_SECOND`] lines a second per
//! `BearerAuth` (and the configurations derived from it); the next line
//! logged for that kind says how many were suppressed before it. Metrics
//! still count every refusal.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use crate::clock::{Clock, SystemClock};

/// Refusal lines logged per second for one refusal kind (`expired`,
/// `invalid_signature`, `missing_token`, …); past it, lines are counted,
/// not written, until the next second.
pub const REFUSAL_LOGS_PER_SECOND: u32 = 10;

/// Most kinds tracked: the kinds are a fixed set of names, so this only
/// bounds memory should that ever change.
const MAX_KINDS: usize = 256;

/// One kind's window.
#[derive(Default)]
struct Window {
    second: i64,
    logged: u32,
    /// Lines not written since the last one that was.
    suppressed: u64,
}

/// Per-kind windows of one second on a clock.
pub(crate) struct LogLimiter<K: Clock = SystemClock> {
    per_second: u32,
    clock: K,
    windows: Mutex<HashMap<&'static str, Window>>,
}

impl<K: Clock> LogLimiter<K> {
    pub(crate) fn new(per_second: u32, clock: K) -> Self {
        LogLimiter {
            per_second,
            clock,
            windows: Mutex::new(HashMap::new()),
        }
    }

    /// Whether to write a line for a refusal of `kind` now: `Some(k)` with
    /// the `k` lines of that kind suppressed since the last one written,
    /// `None` to suppress this one.
    pub(crate) fn admit(&self, kind: &'static str) -> Option<u64> {
        let now = self.clock.now();
        let mut windows = self.windows.lock().unwrap_or_else(PoisonError::into_inner);
        if windows.len() >= MAX_KINDS && !windows.contains_key(kind) {
            // Out of room (never with the fixed kinds): forget the counts
            // rather than grow.
            windows.clear();
        }
        let w = windows.entry(kind).or_default();
        if w.second != now {
            w.second = now;
            w.logged = 0;
        }
        if w.logged < self.per_second {
            w.logged = w.logged.saturating_add(1);
            Some(std::mem::take(&mut w.suppressed))
        } else {
            w.suppressed = w.suppressed.saturating_add(1);
            None
        }
    }
}

impl LogLimiter {
    /// A new limiter for one `BearerAuth` family, on the system clock.
    pub(crate) fn shared() -> Arc<LogLimiter> {
        Arc::new(LogLimiter::new(REFUSAL_LOGS_PER_SECOND, SystemClock))
    }
}

/// The process's limiter for refusals no layer configuration answers (an
/// extractor behind an anonymous-allowing layer).
#[cfg_attr(not(any(feature = "axum", feature = "actix")), allow(dead_code))]
pub(crate) fn refusals() -> &'static LogLimiter {
    static LIMITER: OnceLock<LogLimiter> = OnceLock::new();
    LIMITER.get_or_init(|| LogLimiter::new(REFUSAL_LOGS_PER_SECOND, SystemClock))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;

    #[test]
    fn at_most_n_lines_a_second_per_kind_then_the_suppressed_count() {
        let clock = ManualClock::new(1_700_000_000);
        let limiter = LogLimiter::new(3, clock.clone());
        // A flood of 1000 in one second: 3 lines, the rest counted.
        let admitted: Vec<Option<u64>> = (0..1000).map(|_| limiter.admit("expired")).collect();
        assert_eq!(admitted.iter().flatten().count(), 3);
        assert_eq!(&admitted[..4], &[Some(0), Some(0), Some(0), None]);
        // Another kind has its own budget.
        assert_eq!(limiter.admit("missing_token"), Some(0));
        // The next second: the first line says how many were not written.
        clock.advance(1);
        assert_eq!(limiter.admit("expired"), Some(997));
        assert_eq!(limiter.admit("expired"), Some(0));
        // A quiet kind logs every refusal.
        clock.advance(5);
        for _ in 0..3 {
            assert_eq!(limiter.admit("invalid_signature"), Some(0));
        }
    }
}
