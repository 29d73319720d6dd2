//! Key material: [`KeySet`], the verifying keys a validator chooses from, each
//! parsed once into a ready verifier per algorithm it may verify.

mod jwks;
pub(crate) use jwks::{KeyRefusal, MIN_RSA_BITS, PRIVATE_MEMBERS, proof_key, thumbprint_input};

use std::fmt;
use std::sync::Arc;

use crate::alg::{AlgSet, Algorithm, Curve, Family};
use crate::crypto::{Material, Verifier};
use crate::error::Error;

pub use jwks::SkippedKey;

/// Most keys tried for a token that has no `kid`: each try is a signature
/// check, so the bound caps what one kid-less token can cost.
pub(crate) const MAX_KIDLESS_TRIES: usize = 4;

/// Most usable keys kept from one JWK Set; more are skipped with a reason.
pub const MAX_KEYS: usize = 256;

/// Most keys kept with the same `kid`; more are skipped with a reason. Each
/// is a signature check for a token naming that kid.
pub(crate) const MAX_KEYS_PER_KID: usize = 4;

/// Most skipped keys kept with their reasons; more are only counted.
pub(crate) const MAX_SKIPPED: usize = 64;

/// What a key is, for messages and algorithm fit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum KeyType {
    Rsa { bits: usize },
    Ec(Curve),
    Ed25519,
    Oct,
}

impl KeyType {
    fn fits(self, alg: Algorithm) -> bool {
        match (self, alg.family()) {
            (KeyType::Rsa { .. }, Family::Rsa) | (KeyType::Ed25519, Family::Ed25519) => true,
            (KeyType::Ec(c), Family::Ec(a)) => c == a,
            (KeyType::Oct, Family::Hmac) => true,
            _ => false,
        }
    }

    fn describe(self) -> String {
        match self {
            KeyType::Rsa { bits } => format!("RSA-{bits}"),
            KeyType::Ec(Curve::P256) => "EC P-256".into(),
            KeyType::Ec(Curve::P384) => "EC P-384".into(),
            KeyType::Ec(Curve::P521) => "EC P-521".into(),
            KeyType::Ed25519 => "OKP Ed25519".into(),
            KeyType::Oct => "oct (HMAC)".into(),
        }
    }
}

/// One usable key: its id and a ready verifier for each algorithm it may verify.
pub(crate) struct Key {
    pub(crate) kid: Option<Box<str>>,
    pub(crate) key_type: KeyType,
    /// Algorithms this key may verify: its declared `alg`, or all its type implies.
    pub(crate) algs: AlgSet,
    verifiers: Vec<(Algorithm, Verifier)>,
    /// The key's identity by content (see [`crate::crypto::fingerprint`]):
    /// a verified-token cache entry is good only while a key with this id
    /// (and the token's kid) is in the set. A refetch that returns the same
    /// keys keeps the ids, so it keeps the cached verdicts: a flood of
    /// unknown kids, each forcing a refetch, cannot flush the cache.
    pub(crate) id: u64,
}

impl Key {
    /// Builds a key from material, preparing a verifier for each algorithm
    /// in `algs` (already filtered to those the type fits).
    pub(crate) fn new(
        kid: Option<Box<str>>,
        key_type: KeyType,
        algs: AlgSet,
        material: Material<'_>,
    ) -> Result<Key, String> {
        let verifiers = algs
            .iter()
            .map(|alg| Verifier::new(alg, material).map(|v| (alg, v)))
            .collect::<Result<Vec<_>, _>>()?;
        // What the key is and what it may verify: the same material allowed
        // fewer algorithms is another key for the cache.
        let id = crate::crypto::fingerprint(algs.bits(), material);
        Ok(Key {
            kid,
            key_type,
            algs,
            verifiers,
            id,
        })
    }

    /// Verifies `signature` over `message` with this key for `alg`.
    #[inline]
    pub(crate) fn verify(&self, alg: Algorithm, message: &[u8], signature: &[u8]) -> bool {
        self.verifiers
            .iter()
            .find(|(a, _)| *a == alg)
            .is_some_and(|(_, v)| v.verify(message, signature))
    }

    fn cannot_verify(&self, alg: Algorithm) -> String {
        if self.key_type.fits(alg) {
            let declared: Vec<_> = self.algs.iter().map(Algorithm::as_str).collect();
            format!(
                "{} key is declared for {} and may not verify {alg}",
                self.key_type.describe(),
                declared.join(", ")
            )
        } else {
            // RFC 8725 §3.1: an algorithm must fit the key's type, or an RSA
            // public key becomes an HMAC secret.
            format!(
                "{} key cannot verify {alg} (RFC 8725 §3.1)",
                self.key_type.describe()
            )
        }
    }
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Key")
            .field("kid", &self.kid)
            .field("type", &self.key_type)
            .field("algs", &self.algs.iter().collect::<Vec<_>>())
            .finish()
    }
}

/// A set of verifying keys, indexed by `kid`.
///
/// Built from a JWK Set (RFC 7517 §5) with [`KeySet::from_jwks`]. Keys the
/// crate cannot use (unknown `kty`, `crv` or `alg`, `use: enc`, `key_ops`
/// without `verify`, RSA under 2048 bits, Ed25519 keys of small order or
/// non-canonical encoding, more than 4 keys with one `kid`, malformed
/// members) are skipped, each with a reason in [`KeySet::skipped`], rather
/// than failing the whole set.
/// Every key is parsed once, here; validating a token parses nothing.
///
/// ```
/// use tokenwarden::KeySet;
///
/// let jwks = r#"{"keys":[
///   {"kty":"OKP","crv":"Ed25519","kid":"ed1","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"},
///   {"kty":"RSA","kid":"old","n":"AQAB","e":"AQAB"}
/// ]}"#;
/// let keys = KeySet::from_jwks(jwks.as_bytes())?;
/// assert_eq!(keys.kids().collect::<Vec<_>>(), ["ed1"]);
/// assert_eq!(keys.skipped().len(), 1); // the toy RSA key is far below 2048 bits
/// # Ok::<(), tokenwarden::Error>(())
/// ```
#[derive(Debug, Default)]
pub struct KeySet {
    /// Sorted by `kid` (keys without one first) for binary search.
    keys: Vec<Key>,
    /// At most [`MAX_SKIPPED`], in document order.
    skipped: Vec<SkippedKey>,
    /// Skipped keys past [`MAX_SKIPPED`]: counted only.
    skipped_dropped: usize,
    /// The kids of `skipped`, sorted, each with its first index there: an
    /// unknown kid is a binary search, never a scan.
    skipped_kids: Vec<(Box<str>, usize)>,
    algs: AlgSet,
}

/// How a key set answered a lookup.
pub(crate) enum Lookup<'a> {
    /// Keys to try, in order (at most [`MAX_KIDLESS_TRIES`] without a kid).
    Candidates(Candidates<'a>),
    /// No key has this kid.
    Unknown,
    /// The kid names a key that may not verify this token.
    Rejected(String),
}

/// Iterator over the keys that may verify a token.
pub(crate) struct Candidates<'a> {
    keys: std::slice::Iter<'a, Key>,
    alg: Algorithm,
    left: usize,
}

impl<'a> Iterator for Candidates<'a> {
    type Item = &'a Key;
    fn next(&mut self) -> Option<&'a Key> {
        if self.left == 0 {
            return None;
        }
        let key = self.keys.by_ref().find(|k| k.algs.contains(self.alg))?;
        self.left -= 1;
        Some(key)
    }
}

impl KeySet {
    /// Parses a JWK Set document (RFC 7517 §5).
    ///
    /// # Errors
    /// [`Error::KeysUnavailable`] when the document is not a JWK Set (not
    /// JSON, no `keys` array) or holds no usable key; the message says what
    /// was found and why each key was skipped.
    pub fn from_jwks(json: &[u8]) -> Result<KeySet, Error> {
        let set = jwks::parse(json)?;
        if set.is_empty() {
            return Err(Error::KeysUnavailable {
                reason: format!("the JWK Set has no usable key{}", set.skipped_summary()).into(),
            });
        }
        Ok(set)
    }

    /// A set of one HMAC secret for `alg` (HS256, HS384 or HS512), with an
    /// optional `kid`.
    ///
    /// # Errors
    /// [`Error::KeyRejected`] when `alg` is not an HMAC algorithm or the
    /// secret is shorter than the hash output (RFC 7518 §3.2).
    pub fn from_hmac_secret(
        kid: Option<&str>,
        alg: Algorithm,
        secret: &[u8],
    ) -> Result<KeySet, Error> {
        let reject = |reason: String| Error::KeyRejected {
            kid: kid.map(str::to_owned),
            reason: reason.into(),
        };
        if alg.family() != Family::Hmac {
            return Err(reject(format!("{alg} is not an HMAC algorithm")));
        }
        jwks::check_hmac_len(alg, secret.len()).map_err(reject)?;
        let key = Key::new(
            kid.map(Into::into),
            KeyType::Oct,
            [alg].into_iter().collect(),
            Material::Hmac(secret),
        )
        .map_err(reject)?;
        Ok(KeySet::from_parts(vec![key], Vec::new(), 0))
    }

    pub(crate) fn from_parts(
        mut keys: Vec<Key>,
        skipped: Vec<SkippedKey>,
        skipped_dropped: usize,
    ) -> KeySet {
        // Stable: keys with the same kid stay in document order.
        keys.sort_by(|a, b| a.kid.cmp(&b.kid));
        let algs = keys.iter().fold(AlgSet::EMPTY, |s, k| s.union(k.algs));
        let mut skipped_kids: Vec<(Box<str>, usize)> = skipped
            .iter()
            .enumerate()
            .filter_map(|(i, s)| s.kid.as_deref().map(|k| (Box::from(k), i)))
            .collect();
        skipped_kids.sort();
        skipped_kids.dedup_by(|b, a| a.0 == b.0);
        KeySet {
            keys,
            skipped,
            skipped_dropped,
            skipped_kids,
            algs,
        }
    }

    /// Number of usable keys.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether the set has no usable key.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The `kid`s of the usable keys, sorted.
    pub fn kids(&self) -> impl Iterator<Item = &str> {
        self.keys.iter().filter_map(|k| k.kid.as_deref())
    }

    /// The keys that were in the document but cannot be used, with why:
    /// the first 64 of them (see [`skipped_count`](Self::skipped_count)).
    pub fn skipped(&self) -> &[SkippedKey] {
        &self.skipped
    }

    /// How many keys were skipped, including those past the ones
    /// [`skipped`](Self::skipped) keeps.
    pub fn skipped_count(&self) -> usize {
        self.skipped.len().saturating_add(self.skipped_dropped)
    }

    /// The algorithms the usable keys declare or imply.
    pub fn algorithms(&self) -> impl Iterator<Item = Algorithm> + '_ {
        self.algs.iter()
    }

    pub(crate) fn alg_set(&self) -> AlgSet {
        self.algs
    }

    /// Whether a usable key has this `kid` (binary search).
    pub fn contains_kid(&self, kid: &str) -> bool {
        self.kid_range(kid).is_some()
    }

    /// The index range of the keys with this `kid`, if any.
    /// Whether the key with this id (and kid) is still in the set.
    #[cfg_attr(not(feature = "cache"), allow(dead_code))]
    pub(crate) fn holds(&self, kid: Option<&str>, id: u64) -> bool {
        match kid {
            Some(kid) => self
                .kid_range(kid)
                .is_some_and(|r| self.keys[r].iter().any(|k| k.id == id)),
            None => self.keys.iter().any(|k| k.id == id),
        }
    }

    fn kid_range(&self, kid: &str) -> Option<std::ops::Range<usize>> {
        let start = self.keys.partition_point(|k| k.kid.as_deref() < Some(kid));
        let end = start + self.keys[start..].partition_point(|k| k.kid.as_deref() == Some(kid));
        (start < end).then_some(start..end)
    }

    /// Finds the keys that may verify a token with this `kid` and `alg`.
    ///
    /// With a `kid`, only keys with exactly that `kid` are candidates; without
    /// one, every key that may verify `alg`, at most [`MAX_KIDLESS_TRIES`].
    pub(crate) fn lookup(&self, kid: Option<&str>, alg: Algorithm) -> Lookup<'_> {
        let Some(kid) = kid else {
            return Lookup::Candidates(Candidates {
                keys: self.keys.iter(),
                alg,
                left: MAX_KIDLESS_TRIES,
            });
        };
        let Some(range) = self.kid_range(kid) else {
            let skipped = self
                .skipped_kids
                .binary_search_by(|(k, _)| (**k).cmp(kid))
                .ok()
                .and_then(|i| self.skipped.get(self.skipped_kids[i].1));
            return match skipped {
                Some(s) => {
                    Lookup::Rejected(format!("skipped when the key set was loaded: {}", s.reason))
                }
                None => Lookup::Unknown,
            };
        };
        let same_kid = &self.keys[range];
        if same_kid.iter().any(|k| k.algs.contains(alg)) {
            Lookup::Candidates(Candidates {
                keys: same_kid.iter(),
                alg,
                // The loader keeps at most this many; bounded here too.
                left: same_kid.len().min(MAX_KEYS_PER_KID),
            })
        } else {
            Lookup::Rejected(same_kid[0].cannot_verify(alg))
        }
    }

    fn skipped_summary(&self) -> String {
        if self.skipped.is_empty() {
            return String::new();
        }
        let total = self.skipped_count();
        let reasons: Vec<String> = self
            .skipped
            .iter()
            .take(5)
            .map(ToString::to_string)
            .collect();
        format!(
            " ({} skipped: {}{})",
            total,
            reasons.join("; "),
            if total > 5 { "; …" } else { "" }
        )
    }
}

/// Where a validator gets its keys: a fixed [`KeySet`], or (feature `remote`)
/// a key set that refreshes itself. Reading the current keys takes no lock.
#[derive(Clone, Debug)]
pub struct KeySource {
    inner: SourceInner,
}

#[derive(Clone, Debug)]
enum SourceInner {
    Static(Arc<KeySet>),
    #[cfg(feature = "remote")]
    Remote(crate::remote::RemoteKeySet),
}

/// The keys in force for one validation.
pub(crate) enum Snapshot<'a> {
    Static(&'a KeySet),
    #[cfg(feature = "remote")]
    Remote(arc_swap::Guard<Option<Arc<KeySet>>>),
}

/// What an empty snapshot reads as (never reached: empty remote snapshots
/// are refused with `keys_unavailable`).
#[cfg(feature = "remote")]
static NO_KEYS: KeySet = KeySet {
    keys: Vec::new(),
    skipped: Vec::new(),
    skipped_dropped: 0,
    skipped_kids: Vec::new(),
    algs: AlgSet::EMPTY,
};

impl std::ops::Deref for Snapshot<'_> {
    type Target = KeySet;
    fn deref(&self) -> &KeySet {
        match self {
            Snapshot::Static(k) => k,
            #[cfg(feature = "remote")]
            Snapshot::Remote(g) => g.as_deref().unwrap_or(&NO_KEYS),
        }
    }
}

impl KeySource {
    /// The keys in force now.
    pub(crate) fn current(&self) -> Result<Snapshot<'_>, Error> {
        match &self.inner {
            SourceInner::Static(k) => Ok(Snapshot::Static(k)),
            #[cfg(feature = "remote")]
            SourceInner::Remote(r) => r.snapshot().map(Snapshot::Remote),
        }
    }

    /// Asks the source to look for `kid`; true when it has new keys to try.
    #[allow(clippy::unused_async)]
    pub(crate) async fn refresh_for_unknown_kid(&self, kid: &str) -> bool {
        match &self.inner {
            SourceInner::Static(_) => {
                let _ = kid;
                false
            }
            #[cfg(feature = "remote")]
            SourceInner::Remote(r) => r.refresh_for_unknown_kid(kid).await,
        }
    }
}

#[cfg(feature = "remote")]
impl From<crate::remote::RemoteKeySet> for KeySource {
    fn from(remote: crate::remote::RemoteKeySet) -> Self {
        KeySource {
            inner: SourceInner::Remote(remote),
        }
    }
}

impl From<KeySet> for KeySource {
    fn from(set: KeySet) -> Self {
        KeySource {
            inner: SourceInner::Static(Arc::new(set)),
        }
    }
}

impl From<Arc<KeySet>> for KeySource {
    fn from(set: Arc<KeySet>) -> Self {
        KeySource {
            inner: SourceInner::Static(set),
        }
    }
}
