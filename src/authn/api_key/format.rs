//! The key format, generation, parsing and the stored digest.
//!
//! A key is `tw_<env>_<id>_<secret>`:
//! - `tw`: the fixed prefix, so secret scanners recognise a leaked key;
//! - `<env>`: 1 to 16 characters `[a-z0-9]` (`live`, `test`, …);
//! - `<id>`: the key's id, 8 to 32 characters `[0-9A-Za-z]` (generated:
//!   16 lowercase hex digits, 64 random bits); not secret, it names the
//!   store entry, so a lookup never scans;
//! - `<secret>`: exactly 43 characters `[0-9A-Za-z]` (base62), 256 random
//!   bits (43 × log2 62 ≈ 256.03), drawn by rejection sampling from the
//!   crypto backend's generator.
//!
//! No part but the prefix may hold `_`, so the split is unambiguous, and a
//! double-click selects a whole key. The store keeps only a SHA-256 over
//! the environment, the id and the secret, so a key presented under another
//! environment (a `test` key rewritten as `live`) or id never matches.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::crypto;

/// The fixed prefix of every key.
pub const PREFIX: &str = "tw";
/// Length of a key's secret part, in base62 characters.
pub const SECRET_LEN: usize = 43;
/// Longest key read from a request; longer ones are refused unread.
pub const MAX_KEY_LEN: usize = 128;

const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// A key as read from a request: its parts, borrowed. The secret never
/// appears in `Debug`.
#[derive(Clone, Copy)]
pub(crate) struct ParsedKey<'a> {
    pub(crate) env: &'a str,
    pub(crate) id: &'a str,
    pub(crate) secret: &'a str,
}

impl fmt::Debug for ParsedKey<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{PREFIX}_{}_{}_<redacted>", self.env, self.id)
    }
}

fn valid_env(env: &str) -> bool {
    (1..=16).contains(&env.len())
        && env
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
}

/// Whether `id` is a key id: 8 to 32 ASCII letters and digits.
pub(crate) fn valid_id(id: &str) -> bool {
    (8..=32).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_alphanumeric())
}

impl<'a> ParsedKey<'a> {
    /// The parts of `key`, if it has the format exactly.
    pub(crate) fn parse(key: &'a str) -> Option<ParsedKey<'a>> {
        if key.len() > MAX_KEY_LEN {
            return None;
        }
        let mut parts = key.split('_');
        let (prefix, env, id, secret) =
            (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
        if parts.next().is_some() || prefix != PREFIX || !valid_env(env) || !valid_id(id) {
            return None;
        }
        let secret_ok =
            secret.len() == SECRET_LEN && secret.bytes().all(|b| b.is_ascii_alphanumeric());
        secret_ok.then_some(ParsedKey { env, id, secret })
    }
}

/// SHA-256 of a key's secret, as the store keeps it (64 hex digits in
/// JSON). `Debug` shows no digits: a digest is not the secret, but it need
/// not travel either.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct SecretDigest([u8; 32]);

impl fmt::Debug for SecretDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretDigest(..)")
    }
}

impl SecretDigest {
    /// The digest of `secret`.
    ///
    /// SHA-256, not a slow password hash: a password hash's cost is there
    /// to slow a guesser over a small space of human-chosen passwords. A
    /// generated secret has 256 random bits; no guesser enumerates 2^256
    /// candidates whatever the hash costs, so a fast hash loses nothing and
    /// keeps each request's check at microseconds (a slow hash would also
    /// hand attackers a CPU-exhaustion lever).
    ///
    /// The environment and id are hashed with the secret (each part after a
    /// label and its length, so no two keys share an encoding): the client
    /// writes them too, and only the digest binds them to the key.
    pub(crate) fn of(env: &str, id: &str, secret: &str) -> SecretDigest {
        let (e, i, s) = (
            (env.len() as u64).to_be_bytes(),
            (id.len() as u64).to_be_bytes(),
            (secret.len() as u64).to_be_bytes(),
        );
        SecretDigest(crypto::sha256_parts(&[
            b"tokenwarden api key v1\0env",
            &e,
            env.as_bytes(),
            b"id",
            &i,
            id.as_bytes(),
            b"secret",
            &s,
            secret.as_bytes(),
        ]))
    }

    /// Whether `other` is this digest, compared in constant time by the
    /// crypto backend (never `==`).
    pub(crate) fn matches(&self, other: &SecretDigest) -> bool {
        crypto::digests_equal(&self.0, &other.0)
    }

    /// The digest as 64 lowercase hex digits.
    pub fn to_hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// A digest from 64 hex digits.
    pub fn from_hex(hex: &str) -> Option<SecretDigest> {
        // `from_str_radix` alone would take a sign (`+f`).
        if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        let mut out = [0u8; 32];
        for (o, pair) in out.iter_mut().zip(hex.as_bytes().chunks_exact(2)) {
            let s = std::str::from_utf8(pair).ok()?;
            *o = u8::from_str_radix(s, 16).ok()?;
        }
        Some(SecretDigest(out))
    }
}

impl Serialize for SecretDigest {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_hex())
    }
}

impl<'de> Deserialize<'de> for SecretDigest {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        SecretDigest::from_hex(&s)
            .ok_or_else(|| serde::de::Error::custom("a digest is 64 hex digits (SHA-256)"))
    }
}

/// `n` base62 characters from the backend's random generator, each
/// uniform (bytes ≥ 248 are redrawn: 248 = 4 × 62).
pub(crate) fn random_base62(n: usize) -> Result<String, &'static str> {
    let mut out = String::with_capacity(n);
    let mut buf = [0u8; 64];
    while out.len() < n {
        crypto::random_bytes(&mut buf)?;
        for b in buf {
            if b < 248 && out.len() < n {
                out.push(char::from(BASE62[usize::from(b % 62)]));
            }
        }
    }
    Ok(out)
}

/// `n` random bytes as lowercase hex.
pub(crate) fn random_hex(n: usize) -> Result<String, &'static str> {
    let mut buf = vec![0u8; n];
    crypto::random_bytes(&mut buf)?;
    Ok(buf.iter().map(|b| format!("{b:02x}")).collect())
}

/// Whether `env` may name an environment in a key.
pub(crate) fn env_ok(env: &str) -> bool {
    valid_env(env)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_format_parses_exactly() {
        let secret = "a".repeat(SECRET_LEN);
        let key = format!("tw_live_0123456789abcdef_{secret}");
        let p = ParsedKey::parse(&key).expect("parses");
        assert_eq!(
            (p.env, p.id, p.secret),
            ("live", "0123456789abcdef", &*secret)
        );
        for bad in [
            format!("tw_live_0123456789abcdef_{secret}_"),
            format!("tw_live_0123456789abcdef_{secret}a"),
            format!("tw_live_0123456789abcdef_{}", &secret[1..]),
            format!("tx_live_0123456789abcdef_{secret}"),
            format!("tw_Live_0123456789abcdef_{secret}"),
            format!("tw__0123456789abcdef_{secret}"),
            format!("tw_live_0123-56789abcdef_{secret}"),
            format!("tw_live_0123456_{secret}"),
            format!("tw_live_0123456789abcdef_{}-", &secret[1..]),
            format!("tw_live_0123456789abcdef__{secret}"),
        ] {
            assert!(ParsedKey::parse(&bad).is_none(), "{bad}");
        }
        assert!(format!("{p:?}").ends_with("<redacted>"));
        assert!(!format!("{p:?}").contains(&secret));
    }

    #[test]
    fn random_base62_is_base62_of_the_length() {
        let s = random_base62(SECRET_LEN).expect("rng");
        assert_eq!(s.len(), SECRET_LEN);
        assert!(s.bytes().all(|b| b.is_ascii_alphanumeric()));
        assert_ne!(s, random_base62(SECRET_LEN).expect("rng"));
    }

    #[test]
    fn digests_round_trip_through_hex() {
        let d = SecretDigest::of("live", "0123456789abcdef", "x");
        assert_eq!(SecretDigest::from_hex(&d.to_hex()), Some(d));
        assert!(SecretDigest::from_hex("zz").is_none());
        assert!(SecretDigest::from_hex(&"g".repeat(64)).is_none());
        assert!(SecretDigest::from_hex(&"+f".repeat(32)).is_none());
        assert_eq!(format!("{d:?}"), "SecretDigest(..)");
    }
}
