//! Server-provided nonces (RFC 9449 §8, §9): rotating, stateless. The nonce
//! of a time slot is the HMAC-SHA-256 of the slot's number under a server
//! secret; the current slot's and the previous one's are accepted, so a
//! nonce handed out just before a rotation still works for one period.

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::crypto;

/// Shortest secret accepted: the HMAC-SHA-256 key size (RFC 2104 §3).
pub(crate) const MIN_SECRET_LEN: usize = 32;

/// Rotating nonces: a secret and a period.
#[derive(Clone)]
pub(crate) struct Nonces {
    secret: Vec<u8>,
    period: i64,
}

impl std::fmt::Debug for Nonces {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the secret.
        f.debug_struct("Nonces")
            .field("period", &self.period)
            .finish_non_exhaustive()
    }
}

impl Nonces {
    pub(crate) fn new(secret: Vec<u8>, period: Duration) -> Result<Nonces, String> {
        if secret.len() < MIN_SECRET_LEN {
            return Err(format!(
                "the DPoP nonce secret must be at least {MIN_SECRET_LEN} bytes"
            ));
        }
        let period = i64::try_from(period.as_secs()).unwrap_or(i64::MAX);
        if period < 1 {
            return Err("the DPoP nonce period must be at least one second".into());
        }
        Ok(Nonces { secret, period })
    }

    fn slot(&self, now: i64) -> i64 {
        now.div_euclid(self.period)
    }

    fn nonce_of(&self, slot: i64) -> Option<String> {
        let mut msg = b"tokenwarden dpop nonce v1:".to_vec();
        msg.extend_from_slice(&slot.to_be_bytes());
        let tag = crypto::hmac_sha256(&self.secret, &msg).ok()?;
        Some(URL_SAFE_NO_PAD.encode(tag))
    }

    /// The nonce to hand out at `now`.
    pub(crate) fn current(&self, now: i64) -> Option<String> {
        self.nonce_of(self.slot(now))
    }

    /// Whether `nonce` is the current slot's or the previous one's,
    /// compared in constant time.
    pub(crate) fn accepts(&self, nonce: &str, now: i64) -> bool {
        let slot = self.slot(now);
        [slot, slot.saturating_sub(1)].iter().any(|s| {
            self.nonce_of(*s)
                .is_some_and(|n| crypto::digests_equal(n.as_bytes(), nonce.as_bytes()))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nonces_rotate_and_the_previous_one_is_still_accepted() {
        let n = Nonces::new(vec![7; 32], Duration::from_secs(60)).unwrap();
        // Slot 16 is [960, 1020).
        let first = n.current(1_000).unwrap();
        assert!(n.accepts(&first, 1_000));
        let second = n.current(1_020).unwrap();
        assert_ne!(first, second);
        // The next slot still accepts the previous nonce...
        assert!(n.accepts(&first, 1_079));
        // ...and the one after does not: stale.
        assert!(!n.accepts(&first, 1_080));
        assert!(n.accepts(&second, 1_080));
        assert!(!n.accepts("", 1_000));
        let other = Nonces::new(vec![8; 32], Duration::from_secs(60)).unwrap();
        assert!(!other.accepts(&first, 1_000));
    }

    #[test]
    fn short_secrets_and_zero_periods_are_refused() {
        assert!(Nonces::new(vec![7; 31], Duration::from_secs(60)).is_err());
        assert!(Nonces::new(vec![7; 32], Duration::ZERO).is_err());
    }
}
