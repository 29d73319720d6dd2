//! [`Validator`] and its builder: ties token parsing, key selection and the
//! claims rules together.

use std::fmt;
use std::mem::MaybeUninit;
use std::sync::Arc;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use crate::alg::{AlgSet, Algorithm, Family};
use crate::claims::{self, Iss, TimeRules, Times, View};
use crate::clock::{Clock, SystemClock};
use crate::error::{BuildError, Error, claims_type_error};
use crate::keys::{KeySet, KeySource, Lookup};
use crate::state::denylist::OwnedIds;
use crate::token::{self, Header, MAX_SIGNATURE_LEN};

/// Default leeway on `exp`, `nbf` and `iat`: 60 s, like jsonwebtoken, Envoy
/// and Spring (jose and aliri use 0, .NET 300 s).
pub const DEFAULT_LEEWAY: Duration = Duration::from_secs(60);

/// Default maximum token length, checked before anything is decoded.
pub const DEFAULT_MAX_TOKEN_SIZE: usize = 8 * 1024;

/// Most required claims one validator may list.
const MAX_REQUIRED: usize = 64;

/// A custom claims check: receives the verified claims, returns why they fail.
type Check = Box<dyn Fn(&Map<String, Value>) -> Result<(), String> + Send + Sync>;

/// A token that passed every check: its header and the caller's claims.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Validated<C> {
    /// The protected header.
    pub header: Header,
    /// The claims, in the caller's type.
    pub claims: C,
    /// The token's `cnf` (`x5t#S256` and `jkt`), read from the payload
    /// whatever `C` is: the sender checks (RFC 8705 §3, RFC 9449 §7.1) hold
    /// for every claims type.
    pub confirmation: crate::authn::mtls::Confirmation,
}

/// Verifies compact JWS/JWT bearer tokens: signature, algorithm, time claims,
/// issuer, audience, type and required claims.
///
/// Built once with [`Validator::builder`]; cheap to clone (an `Arc` inside),
/// `Send + Sync`, and takes no lock when validating.
///
/// ```
/// use std::time::Duration;
/// use tokenwarden::{FixedClock, KeySet, Validator};
///
/// let keys = KeySet::from_jwks(include_bytes!("../examples/data/jwks.json"))?;
/// let validator = Validator::builder()
///     .issuer("https://idp.example.com")
///     .audience("https://api.example.com")
///     .keys(keys)
///     .leeway(Duration::from_secs(30))
///     .clock(FixedClock(1_700_000_000))
///     .build()?;
///
/// let token = include_str!("../examples/data/valid.jwt").trim();
/// let ok = validator.validate_json(token)?;
/// assert_eq!(ok.claims["sub"], "alice");
///
/// let expired = include_str!("../examples/data/expired.jwt").trim();
/// let err = validator.validate_json(expired).unwrap_err();
/// assert_eq!(err.kind().as_str(), "expired");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct Validator {
    inner: Arc<Inner>,
}

struct Inner {
    /// `None`: any issuer (explicitly waived).
    issuers: Option<Vec<IssuerEntry>>,
    default_keys: Option<KeySource>,
    /// The one key source every accepted token uses, when there is one.
    fixed_source: Option<KeySource>,
    /// `None`: any audience (explicitly waived).
    audiences: Option<Vec<Box<str>>>,
    /// `None`: what the keys declare or imply.
    algorithms: Option<AlgSet>,
    time: TimeRules,
    required: Vec<Box<str>>,
    typ: Option<Box<str>>,
    clock: Arc<dyn Clock>,
    max_token_size: usize,
    checks: Vec<(Box<str>, Check)>,
    /// The last header parsed under a verified signature.
    header_cache: arc_swap::ArcSwapOption<ParsedHeader>,
    /// Revoked tokens, checked after the signature on every validation.
    denylist: Option<crate::state::denylist::Denylist>,
    /// Verified tokens; each entry records which issuer's key source
    /// verified it.
    #[cfg(feature = "cache")]
    cache: Option<crate::cache::TokenCache>,
}

struct IssuerEntry {
    iss: Box<str>,
    keys: Option<KeySource>,
}

impl fmt::Debug for Validator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let i = &self.inner;
        f.debug_struct("Validator")
            .field(
                "issuers",
                &i.issuers
                    .as_ref()
                    .map(|v| v.iter().map(|e| &*e.iss).collect::<Vec<_>>()),
            )
            .field("audiences", &i.audiences)
            .field(
                "algorithms",
                &i.algorithms.map(|s| s.iter().collect::<Vec<_>>()),
            )
            .field("leeway", &i.time.leeway)
            .field("max_token_size", &i.max_token_size)
            .finish_non_exhaustive()
    }
}

impl Validator {
    /// Starts a builder. Issuer, audience and keys must be set (or the
    /// issuer/audience checks waived by a `danger_` method) before
    /// [`ValidatorBuilder::build`] succeeds.
    pub fn builder() -> ValidatorBuilder {
        ValidatorBuilder::default()
    }

    /// Validates `token` and deserialises its claims into `C`.
    ///
    /// `C` is deserialised only after the signature and every rule passed.
    /// Keys come from the current snapshot of the key source; an unknown
    /// `kid` is answered at once (see [`Validator::validate_async`] to wait
    /// for a remote key set's refresh instead).
    ///
    /// # Errors
    /// An [`Error`] whose [`kind`](Error::kind) says why the token was refused.
    pub fn validate<C: DeserializeOwned>(&self, token: &str) -> Result<Validated<C>, Error> {
        self.run(token)
    }

    /// [`validate`](Self::validate) into a JSON object of claims.
    ///
    /// # Errors
    /// As [`validate`](Self::validate).
    pub fn validate_json(&self, token: &str) -> Result<Validated<Map<String, Value>>, Error> {
        self.run(token)
    }

    /// [`validate`](Self::validate), answered as a shared `Arc`: with the
    /// verified-token cache (feature `cache`), a repeated token is answered
    /// with the very value made the first time, after the key and time
    /// checks every hit gets, without parsing its claims again. The fastest
    /// way to check a token seen before; without the cache it is `validate`
    /// in an `Arc`.
    ///
    /// ```
    /// # use tokenwarden::{FixedClock, KeySet, Validator};
    /// # let keys = KeySet::from_jwks(include_bytes!("../examples/data/jwks.json"))?;
    /// # let validator = Validator::builder()
    /// #     .issuer("https://idp.example.com")
    /// #     .audience("https://api.example.com")
    /// #     .keys(keys)
    /// #     .clock(FixedClock(1_700_000_000))
    /// #     .build()?;
    /// let token = include_str!("../examples/data/valid.jwt").trim();
    /// let first = validator.validate_shared::<serde_json::Value>(token)?;
    /// let again = validator.validate_shared::<serde_json::Value>(token)?;
    /// assert_eq!(first.claims["sub"], again.claims["sub"]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// As [`validate`](Self::validate).
    pub fn validate_shared<C>(&self, token: &str) -> Result<Arc<Validated<C>>, Error>
    where
        C: DeserializeOwned + Send + Sync + 'static,
    {
        #[cfg(feature = "cache")]
        if let Some(cache) = &self.inner.cache {
            // This thread's recent hit, answered with this thread's own
            // parsed value: nothing another thread writes is touched.
            let near = self.near_hit(cache, token, |entry, shared| {
                if let Some(v) = shared.clone().and_then(|s| s.downcast().ok()) {
                    return Ok(v);
                }
                let v = Arc::new(from_entry::<C>(entry)?);
                *shared = Some(v.clone());
                Ok(v)
            })?;
            if let Some(v) = near {
                return Ok(v);
            }
            let validated = Arc::new(self.run::<C>(token)?);
            // `run` left the entry near when it stored or found it.
            cache.near(token, |_, shared| *shared = Some(validated.clone()));
            return Ok(validated);
        }
        self.run::<C>(token).map(Arc::new)
    }

    /// Like [`validate`](Self::validate), but when the `kid` is unknown to a
    /// key source that can refresh (a remote key set), waits for one
    /// refresh, shared with every concurrent caller and limited by the
    /// source's cooldown, then answers. With a static key set it is the same
    /// as `validate`.
    ///
    /// # Errors
    /// As [`validate`](Self::validate).
    pub async fn validate_async<C: DeserializeOwned>(
        &self,
        token: &str,
    ) -> Result<Validated<C>, Error> {
        match self.run(token) {
            Err(Error::UnknownKey { kid: Some(kid) }) => {
                let Some(source) = self.source_for_token(token) else {
                    return Err(Error::UnknownKey { kid: Some(kid) });
                };
                if source.refresh_for_unknown_kid(&kid).await {
                    self.run(token)
                } else {
                    Err(Error::UnknownKey { kid: Some(kid) })
                }
            }
            other => other,
        }
    }

    /// The key source a token's issuer selects, read again for the slow path.
    fn source_for_token(&self, token: &str) -> Option<&KeySource> {
        if let Some(source) = &self.inner.fixed_source {
            return Some(source);
        }
        let mut scratch = Scratch::new();
        let decoded = Decoded::new(token::split(token).ok()?, &mut scratch).ok()?;
        let view = claims::parse_view(decoded.payload, &[]).ok()?;
        self.select_source(&view).ok()
    }

    fn run<C: DeserializeOwned>(&self, token: &str) -> Result<Validated<C>, Error> {
        let inner = &*self.inner;
        if token.len() > inner.max_token_size {
            return Err(Error::TokenTooLarge {
                size: token.len(),
                max: inner.max_token_size,
            });
        }
        #[cfg(feature = "cache")]
        if let Some(cache) = &inner.cache {
            if let Some(hit) = self.cached::<C>(cache, token)? {
                return Ok(hit);
            }
        }
        let parts = token::split(token)?;
        // IdPs repeat the header segment byte for byte: reuse the last parse
        // of exactly these bytes (a parse is a pure function of them).
        let cached = inner.header_cache.load();
        let fresh = match cached.as_deref() {
            Some(h) if *h.segment == *parts.header => None,
            _ => Some(Arc::new(ParsedHeader::parse(parts.header)?)),
        };
        let Some(header) = fresh.as_deref().or(cached.as_deref()) else {
            return Err(Error::malformed("header could not be read"));
        };
        let alg = header.alg;
        if let Some(allowed) = inner.algorithms {
            if !allowed.contains(alg) {
                return Err(Error::AlgorithmNotAllowed { alg });
            }
        }
        let mut scratch = Scratch::new();
        let decoded = Decoded::new(parts, &mut scratch)?;
        let payload = token::check_json_text(decoded.payload, "payload")?;
        // With one key source the signature is checked before the payload is
        // parsed at all; several issuers with their own keys need `iss` first.
        let (_source_index, source) = match &inner.fixed_source {
            Some(source) => (0, source),
            None => self.select_source_at(&claims::parse_view(payload.as_bytes(), &[])?)?,
        };
        let keys = source.current()?;
        let _key_id = verify_signature(
            &keys,
            inner.algorithms,
            alg,
            header.kid.as_deref(),
            decoded.parts.signing_input,
            decoded.signature,
        )?;
        // Cached only once a signature verified under it: forged tokens
        // cannot churn the cache.
        if let Some(fresh) = &fresh {
            if parts.header.len() <= MAX_CACHED_HEADER {
                inner.header_cache.store(Some(fresh.clone()));
            }
        }
        let (claims, _times) = self.claims_checked::<C>(payload, header.typ.as_deref())?;
        let confirmation = confirmation_in(payload)?;
        // After the signature and every rule: a revoked token is refused,
        // and never cached.
        let _ids = match &inner.denylist {
            Some(denylist) => {
                let ids = OwnedIds::parse(payload, time_of(&_times.2), time_of(&_times.0));
                denylist.check(&ids.as_ids())?;
                Some(ids)
            }
            None => None,
        };
        let header = header.to_header();
        #[cfg(feature = "cache")]
        if let Some(cache) = &inner.cache {
            // Only a token that passed everything; the time claims are kept
            // to be checked again on every hit, and the key source that
            // verified it, whose current keys must still hold its key.
            if let Some(entry) = crate::cache::Entry::new(
                token,
                header.clone(),
                payload,
                _source_index,
                _key_id,
                _times,
                inner.clock.now(),
                &cache.config,
            ) {
                let mut entry = entry;
                entry.ids = _ids;
                cache.insert(token, entry);
            }
        }
        Ok(Validated {
            header,
            claims,
            confirmation,
        })
    }

    /// A cache hit: the same token verified before, its key still in the
    /// set, its time claims still good now.
    #[cfg(feature = "cache")]
    fn cached<C: DeserializeOwned>(
        &self,
        cache: &crate::cache::TokenCache,
        token: &str,
    ) -> Result<Option<Validated<C>>, Error> {
        // This thread's recent hits first: no shared memory written.
        if let Some(v) = self.near_hit(cache, token, |entry, _| from_entry(entry))? {
            return Ok(Some(v));
        }
        let Some(entry) = cache.get(token) else {
            return Ok(None);
        };
        if !self.still_good(&entry)? {
            // The key left the set (rotation, revocation), or the entry
            // outlived its time: decide afresh.
            cache.remove(token);
            return Ok(None);
        }
        let validated = from_entry(&entry)?;
        cache.keep_near(token, entry);
        Ok(Some(validated))
    }

    /// This thread's recent hit for `token`, answered by `f` if it still
    /// stands ([`still_good`](Self::still_good)); one that no longer does is
    /// forgotten, and `None` sends the caller to the shared map.
    #[cfg(feature = "cache")]
    fn near_hit<R>(
        &self,
        cache: &crate::cache::TokenCache,
        token: &str,
        f: impl FnOnce(&crate::cache::Entry, &mut crate::cache::Shared) -> Result<R, Error>,
    ) -> Result<Option<R>, Error> {
        let near = cache.near(token, |entry, shared| {
            if self.still_good(entry)? {
                f(entry, shared).map(Some)
            } else {
                Ok(None)
            }
        });
        match near {
            Some(Ok(None)) => {
                cache.forget_near(token);
                Ok(None)
            }
            Some(answer) => {
                crate::metrics::cache_hit();
                answer
            }
            None => Ok(None),
        }
    }

    /// Whether a cache entry still answers: its key is still in the set of
    /// the issuer that verified it and its lifetime not over (`Ok(false)`:
    /// decide afresh), and its time claims are still good now (`Err`:
    /// refused, as a fresh check would).
    #[cfg(feature = "cache")]
    fn still_good(&self, entry: &crate::cache::Entry) -> Result<bool, Error> {
        let Some(source) = self.entry_source(entry) else {
            return Ok(false);
        };
        let keys = source.current()?;
        if !keys.holds(entry.header.kid(), entry.key_id) {
            return Ok(false);
        }
        let now = self.inner.clock.now();
        if now >= entry.expires_at {
            return Ok(false);
        }
        let view = View {
            exp: entry.exp,
            nbf: entry.nbf,
            iat: entry.iat,
            iss: claims::Iss::Absent,
            aud: claims::Aud::Absent,
            present: 0,
        };
        self.inner.time.check(&view, now)?;
        // A revocation made after the token was cached refuses it on its
        // next hit, on every thread.
        if let Some(denylist) = &self.inner.denylist {
            match &entry.ids {
                Some(ids) => denylist.check(&ids.as_ids())?,
                None => return Ok(false),
            }
        }
        // The caller's checks may read state that changes (a suspended
        // tenant, a revocation list): they run on every hit too.
        if !self.inner.checks.is_empty() {
            let map = serde_json::from_str::<Map<String, Value>>(&entry.payload)
                .map_err(|e| claims_type_error(&e, None))?;
            self.run_checks(&map)?;
        }
        Ok(true)
    }

    /// The key source that verified a cache entry: the one source when
    /// there is one; with several issuers that have keys of their own, the
    /// source of the issuer recorded in the entry (the one the token's
    /// `iss` selected when it was verified), never another issuer's.
    #[cfg(feature = "cache")]
    fn entry_source(&self, entry: &crate::cache::Entry) -> Option<&KeySource> {
        let inner = &*self.inner;
        if let Some(source) = &inner.fixed_source {
            return Some(source);
        }
        let issuer = inner.issuers.as_ref()?.get(entry.source)?;
        issuer.keys.as_ref().or(inner.default_keys.as_ref())
    }

    /// Entries and bytes held by the verified-token cache (`None` without
    /// one). Settles pending bookkeeping first.
    #[cfg(feature = "cache")]
    #[cfg_attr(docsrs, doc(cfg(feature = "cache")))]
    pub fn cache_usage(&self) -> Option<(u64, u64)> {
        self.inner
            .cache
            .as_ref()
            .map(crate::cache::TokenCache::usage)
    }

    /// Reads the claims into `C` in one pass and applies every rule before
    /// handing them out, with the time claims found (`exp`, `nbf`, `iat`).
    fn claims_checked<C: DeserializeOwned>(
        &self,
        payload: &str,
        typ: Option<&str>,
    ) -> Result<(C, Times), Error> {
        let inner = &*self.inner;
        if inner.checks.is_empty() {
            let (result, tapped) = claims::parse_tapped::<C>(payload, &inner.required);
            return self.judge(payload, result, tapped, typ);
        }
        let (result, tapped) = claims::parse_tapped::<Map<String, Value>>(payload, &inner.required);
        let (map, times) = self.judge(payload, result, tapped, typ)?;
        self.run_checks(&map)?;
        let claims = serde_json::from_value(Value::Object(map))
            .map_err(|e| claims_type_error_in::<C>(payload, &e))?;
        Ok((claims, times))
    }

    /// The caller's checks ([`ValidatorBuilder::check`]), in order.
    fn run_checks(&self, map: &Map<String, Value>) -> Result<(), Error> {
        for (name, check) in &self.inner.checks {
            check(map).map_err(|reason| Error::InvalidClaim {
                claim: name.to_string(),
                reason: reason.into(),
            })?;
        }
        Ok(())
    }

    /// The rules decide first; only then does the claims type's own verdict count.
    fn judge<T>(
        &self,
        payload: &str,
        result: Result<T, serde_json::Error>,
        tapped: claims::Tapped<'_>,
        typ: Option<&str>,
    ) -> Result<(T, Times), Error> {
        if let Some(fault) = tapped.fault {
            return Err(fault);
        }
        match result {
            Ok(claims) => {
                let view = &tapped.view;
                self.check_rules(view, typ)?;
                Ok((claims, (view.exp, view.nbf, view.iat)))
            }
            Err(e) => {
                // The claims type gave up: read the registered claims anyway
                // (again, if it stopped half-way) so that an expired or
                // foreign token is reported as such. A syntax error may be
                // the claims type's own doing (`i128` asked of a fraction):
                // the second read tells whether the JSON itself is bad.
                if tapped.complete && !(e.is_syntax() || e.is_eof()) {
                    self.check_rules(&tapped.view, typ)?;
                } else {
                    self.check_rules(
                        &claims::parse_view(payload.as_bytes(), &self.inner.required)?,
                        typ,
                    )?;
                }
                let at = tapped.at.as_deref().filter(|_| !tapped.complete);
                Err(claims_type_error(&e, at))
            }
        }
    }

    /// Issuer, time, audience, type and required-claim rules.
    fn check_rules(&self, view: &View<'_>, typ: Option<&str>) -> Result<(), Error> {
        let inner = &*self.inner;
        if let Some(issuers) = &inner.issuers {
            // RFC 7519 §4.1.1: a case-sensitive, exact comparison.
            match &view.iss {
                Iss::Is(s) if issuers.iter().any(|e| *e.iss == **s) => {}
                Iss::Is(s) => {
                    return Err(Error::invalid_issuer(s, issuers.iter().map(|e| &*e.iss)));
                }
                Iss::Absent => {
                    return Err(Error::MissingClaim {
                        claim: "iss".into(),
                    });
                }
                Iss::NotString => return Err(Error::invalid_claim("iss", "must be a string")),
            }
        }
        inner.time.check(view, inner.clock.now())?;
        if let Some(audiences) = &inner.audiences {
            claims::check_audience(&view.aud, audiences)?;
        }
        if let Some(expected) = &inner.typ {
            check_typ(typ, expected)?;
        }
        let all_required = if inner.required.len() == 64 {
            u64::MAX
        } else {
            (1u64 << inner.required.len()) - 1
        };
        if view.present != all_required {
            let missing = (0..inner.required.len())
                .find(|i| view.present & (1 << i) == 0)
                .map_or("", |i| &*inner.required[i]);
            return Err(Error::MissingClaim {
                claim: missing.to_owned(),
            });
        }
        Ok(())
    }

    fn select_source(&self, view: &View<'_>) -> Result<&KeySource, Error> {
        self.select_source_at(view).map(|(_, source)| source)
    }

    /// The key source the token's `iss` selects, with the index of its
    /// issuer in the configuration (0 when no issuer list is kept).
    fn select_source_at(&self, view: &View<'_>) -> Result<(usize, &KeySource), Error> {
        let inner = &*self.inner;
        let Some(issuers) = &inner.issuers else {
            return inner
                .default_keys
                .as_ref()
                .map(|k| (0, k))
                .ok_or_else(no_keys);
        };
        let iss = match &view.iss {
            Iss::Is(s) => &**s,
            Iss::Absent => {
                return Err(Error::MissingClaim {
                    claim: "iss".into(),
                });
            }
            Iss::NotString => return Err(Error::invalid_claim("iss", "must be a string")),
        };
        // RFC 7519 §4.1.1: a case-sensitive, exact comparison. The unverified
        // `iss` only chooses among configured issuers; nothing is fetched for it.
        let (index, entry) = issuers
            .iter()
            .enumerate()
            .find(|(_, e)| *e.iss == *iss)
            .ok_or_else(|| Error::invalid_issuer(iss, issuers.iter().map(|e| &*e.iss)))?;
        entry
            .keys
            .as_ref()
            .or(inner.default_keys.as_ref())
            .map(|k| (index, k))
            .ok_or_else(no_keys)
    }
}

/// Decoded payload and signature bytes up to this size live on the stack;
/// past it (a large token) they go to the heap.
const STACK_DECODE: usize = 2048;

/// Room for a token's decoded payload and signature. Uninitialised: the
/// decoder writes before anything is read.
struct Scratch {
    stack: [MaybeUninit<u8>; STACK_DECODE],
    heap: Vec<u8>,
}

impl Scratch {
    fn new() -> Self {
        Scratch {
            stack: [MaybeUninit::uninit(); STACK_DECODE],
            heap: Vec::new(),
        }
    }
}

/// A token split, its payload and signature decoded into a [`Scratch`].
struct Decoded<'t, 'b> {
    parts: token::Parts<'t>,
    payload: &'b [u8],
    signature: &'b [u8],
}

impl<'t, 'b> Decoded<'t, 'b> {
    /// Decodes the payload and the signature (the header is parsed apart).
    fn new(parts: token::Parts<'t>, scratch: &'b mut Scratch) -> Result<Self, Error> {
        let p = token::decoded_len_bound(parts.payload.len());
        let need = p + token::decoded_len_bound(parts.signature.len());
        let room = if need <= STACK_DECODE {
            &mut scratch.stack[..]
        } else {
            scratch.heap.reserve_exact(need);
            scratch.heap.spare_capacity_mut()
        };
        let (p_room, s_room) = room.split_at_mut(p);
        Ok(Decoded {
            payload: token::decode_into(parts.payload, p_room, "payload is not base64url")?,
            signature: token::decode_into(parts.signature, s_room, "signature is not base64url")?,
            parts,
        })
    }
}

/// Longest header segment kept in the header cache.
const MAX_CACHED_HEADER: usize = 512;

/// A header, parsed and owned, with the exact segment it came from.
struct ParsedHeader {
    segment: Box<[u8]>,
    alg: Algorithm,
    kid: Option<Box<str>>,
    typ: Option<Box<str>>,
    cty: Option<Box<str>>,
}

impl ParsedHeader {
    fn parse(segment: &[u8]) -> Result<ParsedHeader, Error> {
        let mut json = Vec::with_capacity(segment.len() / 4 * 3 + 3);
        token::decode_into_append(segment, &mut json, "header is not base64url")?;
        let raw = token::parse_header(&json)?;
        let alg = header_alg(&raw)?;
        let own = |s: &Option<token::Str<'_>>| s.as_deref().map(Box::from);
        Ok(ParsedHeader {
            segment: segment.into(),
            alg,
            kid: own(&raw.kid),
            typ: own(&raw.typ),
            cty: own(&raw.cty),
        })
    }

    fn to_header(&self) -> Header {
        Header::new(
            self.alg,
            self.kid.as_deref(),
            self.typ.as_deref(),
            self.cty.as_deref(),
        )
    }
}

/// The header's algorithm. RFC 8725 §3.2: `none`, in any casing, is simply
/// not an algorithm here.
fn header_alg(raw: &token::RawHeader<'_>) -> Result<Algorithm, Error> {
    let name = raw
        .alg
        .as_deref()
        .ok_or_else(|| Error::malformed("header has no \"alg\""))?;
    Algorithm::from_name(name).ok_or_else(|| Error::UnsupportedAlgorithm {
        alg: name.to_owned(),
    })
}

/// A JWS whose signature verified, with its payload as bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct VerifiedJws {
    /// The protected header.
    pub header: Header,
    /// The payload, base64url-decoded; not necessarily JSON.
    pub payload: Vec<u8>,
}

impl KeySet {
    /// Verifies a compact JWS of any payload (not only a JWT) with this key
    /// set: the same parsing, header and key rules as [`Validator`], the
    /// algorithms the keys declare or imply, and no claims checks.
    ///
    /// ```
    /// use tokenwarden::KeySet;
    ///
    /// // RFC 8037 Appendix A.4: an Ed25519 signature over plain text.
    /// let keys = KeySet::from_jwks(br#"{"keys":[{"kty":"OKP","crv":"Ed25519",
    ///     "x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}]}"#)?;
    /// let jws = keys.verify_jws("eyJhbGciOiJFZERTQSJ9.RXhhbXBsZSBvZiBFZDI1NTE5IHNpZ25pbmc.\
    ///     hgyY0il_MGCjP0JzlnLWG1PPOt7-09PGcvMg3AIbQR6dWbhijcNR4ki4iylGjg5BhVsPt9g7sVvpAr_MuM0KAg")?;
    /// assert_eq!(jws.payload, b"Example of Ed25519 signing");
    /// # Ok::<(), tokenwarden::Error>(())
    /// ```
    ///
    /// # Errors
    /// As [`Validator::validate`], less the claims kinds.
    pub fn verify_jws(&self, jws: &str) -> Result<VerifiedJws, Error> {
        if jws.len() > DEFAULT_MAX_TOKEN_SIZE {
            return Err(Error::TokenTooLarge {
                size: jws.len(),
                max: DEFAULT_MAX_TOKEN_SIZE,
            });
        }
        let parts = token::split(jws)?;
        let header = ParsedHeader::parse(parts.header)?;
        let mut scratch = Scratch::new();
        let decoded = Decoded::new(parts, &mut scratch)?;
        verify_signature(
            self,
            None,
            header.alg,
            header.kid.as_deref(),
            decoded.parts.signing_input,
            decoded.signature,
        )?;
        Ok(VerifiedJws {
            header: header.to_header(),
            payload: decoded.payload.to_vec(),
        })
    }
}

fn no_keys() -> Error {
    Error::KeysUnavailable {
        reason: "no key source configured for this issuer".into(),
    }
}

/// A NumericDate as the rules read it, if it is one.
fn time_of(t: &claims::Time) -> Option<f64> {
    match t {
        claims::Time::At(v) => Some(*v),
        _ => None,
    }
}

/// A cache entry's answer in the caller's claims type.
#[cfg(feature = "cache")]
fn from_entry<C: DeserializeOwned>(entry: &crate::cache::Entry) -> Result<Validated<C>, Error> {
    Ok(Validated {
        header: entry.header.clone(),
        claims: serde_json::from_str::<C>(&entry.payload)
            .map_err(|e| claims_type_error_in::<C>(&entry.payload, &e))?,
        confirmation: confirmation_in(&entry.payload)?,
    })
}

/// The payload's `cnf`, independent of the claims type; a `cnf` naming a
/// member twice is refused.
fn confirmation_in(payload: &str) -> Result<crate::authn::mtls::Confirmation, Error> {
    crate::authn::mtls::Confirmation::from_payload(payload).map_err(|_| Error::InvalidClaim {
        claim: "cnf".to_owned(),
        reason: "names a member twice".into(),
    })
}

/// `C` refused `payload` (a verified one) with `e`: read it again, tapped,
/// to name the member where it stopped. Only on this error path.
fn claims_type_error_in<C: DeserializeOwned>(payload: &str, e: &serde_json::Error) -> Error {
    let (_, tapped) = claims::parse_tapped::<C>(payload, &[]);
    let at = tapped.at.as_deref().filter(|_| !tapped.complete);
    claims_type_error(e, at)
}

/// Chooses the key and checks the signature.
fn verify_signature(
    keys: &KeySet,
    explicit: Option<AlgSet>,
    alg: Algorithm,
    kid: Option<&str>,
    signing_input: &[u8],
    signature: &[u8],
) -> Result<u64, Error> {
    // Returns the verifying key's id.
    // Without an explicit allow-list, only what the keys declare or imply.
    if explicit.is_none() && !keys.alg_set().contains(alg) {
        return Err(Error::AlgorithmNotAllowed { alg });
    }
    let invalid = || Error::InvalidSignature {
        alg,
        kid: kid.map(str::to_owned),
    };
    match keys.lookup(kid, alg) {
        Lookup::Candidates(_) if !signature_shape_ok(alg, signature) => Err(invalid()),
        Lookup::Candidates(mut candidates) => {
            let mut tried = false;
            let ok = candidates.find(|key| {
                tried = true;
                key.verify(alg, signing_input, signature)
            });
            match (ok, tried) {
                (Some(key), _) => Ok(key.id),
                (None, true) => Err(invalid()),
                (None, false) => Err(Error::UnknownKey { kid: None }),
            }
        }
        Lookup::Unknown => Err(Error::UnknownKey {
            kid: kid.map(str::to_owned),
        }),
        Lookup::Rejected(reason) => Err(Error::KeyRejected {
            kid: kid.map(str::to_owned),
            reason: reason.into(),
        }),
    }
}

/// Refuses signatures of the wrong shape before any key is touched.
fn signature_shape_ok(alg: Algorithm, sig: &[u8]) -> bool {
    match alg.family() {
        // RFC 7518 §3.4: ECDSA signatures are r || s, each exactly the
        // coordinate size; DER is not accepted. r = 0 or s = 0 is never valid
        // (CVE-2022-21449), whatever the backend would say.
        Family::Ec(curve) => {
            let n = curve.coordinate_len();
            sig.len() == 2 * n
                && sig[..n].iter().any(|&b| b != 0)
                && sig[n..].iter().any(|&b| b != 0)
        }
        Family::Ed25519 => sig.len() == 64,
        Family::Rsa => sig.len() >= 256 && sig.len() <= MAX_SIGNATURE_LEN,
        Family::Hmac => !sig.is_empty(),
    }
}

/// RFC 7515 §4.1.9: media types compare case-insensitively, and the
/// `application/` prefix may be left out (RFC 9068 §2.1: `at+jwt`).
fn check_typ(found: Option<&str>, expected: &str) -> Result<(), Error> {
    fn bare(s: &str) -> &str {
        match s.get(..12) {
            Some(p) if p.eq_ignore_ascii_case("application/") => &s[12..],
            _ => s,
        }
    }
    match found {
        Some(t) if bare(t).eq_ignore_ascii_case(bare(expected)) => Ok(()),
        _ => Err(Error::InvalidType {
            found: found.map(str::to_owned),
            expected: expected.to_owned(),
        }),
    }
}

/// Configures a [`Validator`]. Secure by default: issuer and audience must be
/// named, `exp` is required, no algorithm is accepted that the keys do not
/// declare or imply. Mistakes are kept until [`build`](Self::build).
#[must_use]
pub struct ValidatorBuilder {
    issuers: Vec<(String, Option<KeySource>)>,
    any_issuer: bool,
    audiences: Vec<String>,
    any_audience: bool,
    keys: Option<KeySource>,
    algorithms: Option<Vec<Algorithm>>,
    leeway: Duration,
    require_exp: bool,
    required: Vec<String>,
    typ: Option<String>,
    max_age: Option<Duration>,
    clock: Arc<dyn Clock>,
    max_token_size: usize,
    checks: Vec<(Box<str>, Check)>,
    denylist: Option<crate::state::denylist::Denylist>,
    #[cfg(feature = "cache")]
    cache: Option<crate::cache::CacheConfig>,
}

impl Default for ValidatorBuilder {
    fn default() -> Self {
        ValidatorBuilder {
            issuers: Vec::new(),
            any_issuer: false,
            audiences: Vec::new(),
            any_audience: false,
            keys: None,
            algorithms: None,
            leeway: DEFAULT_LEEWAY,
            require_exp: true,
            required: Vec::new(),
            typ: None,
            max_age: None,
            clock: Arc::new(SystemClock),
            max_token_size: DEFAULT_MAX_TOKEN_SIZE,
            checks: Vec::new(),
            denylist: None,
            // On by default: every hit is checked as strictly as a miss
            // (cache.rs), and a layer in front of a busy API gains the most.
            #[cfg(feature = "cache")]
            cache: Some(crate::cache::CacheConfig::default()),
        }
    }
}

impl fmt::Debug for ValidatorBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ValidatorBuilder")
            .field(
                "issuers",
                &self.issuers.iter().map(|(i, _)| i).collect::<Vec<_>>(),
            )
            .field("audiences", &self.audiences)
            .finish_non_exhaustive()
    }
}

impl ValidatorBuilder {
    /// Accepts tokens whose `iss` is exactly `iss`, verified with the keys
    /// given to [`keys`](Self::keys). May be called for several issuers.
    pub fn issuer(mut self, iss: impl Into<String>) -> Self {
        self.issuers.push((iss.into(), None));
        self
    }

    /// Accepts tokens from `iss`, verified only with `keys` (multi-issuer:
    /// the token's `iss` chooses among the configured issuers, never more).
    pub fn issuer_with_keys(mut self, iss: impl Into<String>, keys: impl Into<KeySource>) -> Self {
        self.issuers.push((iss.into(), Some(keys.into())));
        self
    }

    /// Accepts tokens whose `aud` contains `aud`. May be called several
    /// times; one match suffices.
    pub fn audience(mut self, aud: impl Into<String>) -> Self {
        self.audiences.push(aud.into());
        self
    }

    /// The keys that verify signatures (for issuers without their own).
    pub fn keys(mut self, keys: impl Into<KeySource>) -> Self {
        self.keys = Some(keys.into());
        self
    }

    /// The algorithms accepted. Without this, a token's algorithm must be one
    /// its key declares (`alg`) or implies (its type). Either way the
    /// algorithm must fit the chosen key (RFC 8725 §3.1).
    pub fn algorithms(mut self, algs: impl IntoIterator<Item = Algorithm>) -> Self {
        self.algorithms = Some(algs.into_iter().collect());
        self
    }

    /// Clock-skew allowance on `exp`, `nbf` and `iat` (default 60 s, at most
    /// 1 hour: [`build`](Self::build) refuses more, `Duration::MAX` too).
    /// Whole seconds; other checks are unaffected.
    pub fn leeway(mut self, leeway: Duration) -> Self {
        self.leeway = leeway;
        self
    }

    /// Requires the claim `name` to be present (any value); a token without
    /// it is refused with [`ErrorKind::MissingClaim`](crate::ErrorKind::MissingClaim).
    /// Presence only: what a route requires of scopes or roles is the
    /// layer's (`BearerAuth::require_scopes`, feature `tower` or `actix`).
    ///
    /// ```
    /// # use tokenwarden::{KeySet, Validator};
    /// # let keys = KeySet::from_jwks(include_bytes!("../examples/data/jwks.json"))?;
    /// let validator = Validator::builder()
    ///     .issuer("https://idp.example.com")
    ///     .audience("https://api.example.com")
    ///     .keys(keys)
    ///     .require_claim("sub")
    ///     .build()?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn require_claim(mut self, name: impl Into<String>) -> Self {
        self.required.push(name.into());
        self
    }

    /// Renamed [`require_claim`](Self::require_claim), so that it cannot be
    /// taken for the layer's scope requirement.
    #[deprecated(note = "renamed `require_claim`")]
    pub fn require(self, name: impl Into<String>) -> Self {
        self.require_claim(name)
    }

    /// Accepts tokens without `exp` (an `exp` that is present is still
    /// checked). Long-lived tokens are rarely what a service wants. Not
    /// with a [`denylist`](Self::denylist): [`build`](Self::build) refuses
    /// the pair.
    pub fn allow_missing_exp(mut self) -> Self {
        self.require_exp = false;
        self
    }

    /// Requires the header's `typ`, e.g. `"at+jwt"` for OAuth access tokens
    /// (RFC 9068 §4). Compared case-insensitively; `application/` optional.
    pub fn required_type(mut self, typ: impl Into<String>) -> Self {
        self.typ = Some(typ.into());
        self
    }

    /// Refuses tokens issued (`iat`) longer ago than `max_age` (plus leeway);
    /// makes `iat` required. `Duration::MAX` means no age limit, with `iat`
    /// still required and still refused when in the future.
    pub fn max_age(mut self, max_age: Duration) -> Self {
        self.max_age = Some(max_age);
        self
    }

    /// The clock for time checks (default: the system clock).
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// Longest token accepted, in bytes (default 8 KiB). Checked before any
    /// decoding.
    pub fn max_token_size(mut self, bytes: usize) -> Self {
        self.max_token_size = bytes;
        self
    }

    /// Adds a check over the verified claims, run after the built-in rules.
    /// On `Err(reason)` the token is refused with kind `invalid_claim`,
    /// naming `name`.
    ///
    /// The check runs on every validation, cache hits included (with the
    /// verified-token cache, it receives the cached claims): a check that
    /// reads changing state (a suspended tenant, a revocation list) takes
    /// effect on the next request, not when the cache entry expires.
    ///
    /// ```
    /// # use tokenwarden::{Validator, KeySet};
    /// # let keys = KeySet::from_jwks(include_bytes!("../examples/data/jwks.json")).unwrap();
    /// let validator = Validator::builder()
    ///     .issuer("https://cognito-idp.example.com/pool")
    ///     .danger_accept_any_audience() // Cognito access tokens carry client_id, not aud
    ///     .check("client_id", |claims| match claims.get("client_id") {
    ///         Some(id) if id == "my-app" => Ok(()),
    ///         _ => Err("not issued to my-app".into()),
    ///     })
    ///     .keys(keys)
    ///     .build();
    /// assert!(validator.is_ok());
    /// ```
    pub fn check<F>(mut self, name: impl Into<String>, check: F) -> Self
    where
        F: Fn(&Map<String, Value>) -> Result<(), String> + Send + Sync + 'static,
    {
        self.checks
            .push((name.into().into_boxed_str(), Box::new(check)));
        self
    }

    /// Refuses tokens on `denylist` (kind `revoked`): checked after the
    /// signature and every other rule, on every validation, verified-token
    /// cache hits included, so a revocation takes effect on the next
    /// request. The check reads a local snapshot: no lock, no network.
    /// A token whose `exp` is more than the denylist's
    /// [`max_token_lifetime`](crate::state::denylist::DenylistBuilder::max_token_lifetime)
    /// after its `iat` is refused (`invalid_claim`): its cutoffs would be
    /// pruned before it expires. For the same reason a token without `exp`
    /// or without `iat` is refused (`missing_claim`, naming the claim):
    /// its lifetime cannot be bounded, so a revoked one would pass again
    /// once its cutoff is pruned. JWT access tokens carry both (RFC 9068
    /// §2.2); [`allow_missing_exp`](Self::allow_missing_exp) with a
    /// denylist is a [`BuildError`].
    ///
    /// ```
    /// use tokenwarden::state::denylist::Denylist;
    /// # use tokenwarden::{FixedClock, KeySet, Validator};
    /// # let keys = KeySet::from_jwks(include_bytes!("../examples/data/jwks.json"))?;
    /// let denylist = Denylist::new();
    /// let validator = Validator::builder()
    ///     .issuer("https://idp.example.com")
    ///     .audience("https://api.example.com")
    ///     .keys(keys)
    ///     .clock(FixedClock(1_699_990_100))
    ///     .denylist(denylist.clone())
    ///     .build()?;
    /// // Issued at 1_699_990_000 for an hour: a lifetime the denylist covers
    /// // (a token living past its `max_token_lifetime`, 24 h by default,
    /// // is refused with `invalid_claim`).
    /// let token = include_str!("../examples/data/expired.jwt").trim();
    /// assert!(validator.validate_json(token).is_ok());
    ///
    /// denylist.revoke_subject_before("alice", 1_800_000_000);
    /// let err = validator.validate_json(token).unwrap_err();
    /// assert_eq!(err.kind().as_str(), "revoked");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn denylist(mut self, denylist: crate::state::denylist::Denylist) -> Self {
        self.denylist = Some(denylist);
        self
    }

    /// Accepts any issuer. Only safe when the keys are the issuer's alone and
    /// nothing else signs with them.
    pub fn danger_accept_any_issuer(mut self) -> Self {
        self.any_issuer = true;
        self
    }

    /// Accepts any audience, so a token meant for another service passes
    /// here too (RFC 8725 §3.9). Only for tokens that carry no audience.
    pub fn danger_accept_any_audience(mut self) -> Self {
        self.any_audience = true;
        self
    }

    /// Keeps tokens that passed, so that the same token again skips its
    /// signature check (feature `cache`). With the feature, every validator
    /// has a cache of [`CacheConfig::default`](crate::CacheConfig::default)
    /// size unless [`no_cache`](Self::no_cache) is called: this sets its
    /// size. Every rule that depends on time is checked again on each hit,
    /// and so is every [`check`](Self::check) (over the cached claims); an
    /// entry lives no longer than the token's `exp`, and an entry is dropped
    /// as soon as the key that verified it leaves the key set of the issuer
    /// that verified it (with several issuers with keys of their own, each
    /// entry records its issuer).
    ///
    /// ```
    /// use tokenwarden::{CacheConfig, KeySet, Validator};
    /// let validator = Validator::builder()
    ///     .issuer("https://idp.example.com")
    ///     .audience("api")
    ///     .keys(KeySet::from_hmac_secret(Some("k"), tokenwarden::Algorithm::HS256, &[7; 32])?)
    ///     .cache(CacheConfig::default().max_entries(100_000))
    ///     .build()?;
    /// # let _ = validator;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[cfg(feature = "cache")]
    #[cfg_attr(docsrs, doc(cfg(feature = "cache")))]
    pub fn cache(mut self, config: crate::cache::CacheConfig) -> Self {
        self.cache = Some(config);
        self
    }

    /// No verified-token cache: every validation checks the signature
    /// (feature `cache`, which otherwise gives every validator a cache).
    ///
    /// ```
    /// use tokenwarden::{KeySet, Validator};
    /// let validator = Validator::builder()
    ///     .issuer("https://idp.example.com")
    ///     .audience("api")
    ///     .keys(KeySet::from_hmac_secret(Some("k"), tokenwarden::Algorithm::HS256, &[7; 32])?)
    ///     .no_cache()
    ///     .build()?;
    /// assert_eq!(validator.cache_usage(), None);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[cfg(feature = "cache")]
    #[cfg_attr(docsrs, doc(cfg(feature = "cache")))]
    pub fn no_cache(mut self) -> Self {
        self.cache = None;
        self
    }

    /// Checks the configuration and builds the validator.
    ///
    /// # Errors
    /// [`BuildError`] naming the first setting that is missing or wrong.
    pub fn build(self) -> Result<Validator, BuildError> {
        if self.issuers.is_empty() && !self.any_issuer {
            return Err(BuildError::new(
                "no issuer: call issuer(), or knowingly danger_accept_any_issuer()",
            ));
        }
        if self.audiences.is_empty() && !self.any_audience {
            return Err(BuildError::new(
                "no audience: call audience(), or knowingly danger_accept_any_audience()",
            ));
        }
        if self.keys.is_none()
            && (self.issuers.is_empty() || self.issuers.iter().any(|(_, k)| k.is_none()))
        {
            return Err(BuildError::new(
                "no keys: call keys() or issuer_with_keys()",
            ));
        }
        if let Some((iss, _)) = self.issuers.iter().find(|(i, _)| i.is_empty()) {
            let _ = iss;
            return Err(BuildError::new("an issuer is the empty string"));
        }
        let algorithms = match &self.algorithms {
            Some(a) if a.is_empty() => {
                return Err(BuildError::new("algorithms() was given an empty list"));
            }
            Some(a) => Some(a.iter().copied().collect::<AlgSet>()),
            None => None,
        };
        if self.leeway > Duration::from_secs(3600) {
            return Err(BuildError::new("leeway over 1 hour"));
        }
        if self.required.len() > MAX_REQUIRED {
            return Err(BuildError::new(format!(
                "more than {MAX_REQUIRED} required claims"
            )));
        }
        if self.max_token_size == 0 {
            return Err(BuildError::new("max_token_size of 0"));
        }
        if self.denylist.is_some() && !self.require_exp {
            // A token without `exp` outlives every pruned cutoff.
            return Err(BuildError::new(
                "allow_missing_exp() with a denylist: a revoked token without exp \
                 would pass again once its cutoff is pruned",
            ));
        }
        let mut required: Vec<Box<str>> = Vec::new();
        for r in self.required {
            if !required.iter().any(|x| **x == *r) {
                required.push(r.into_boxed_str());
            }
        }
        let issuers: Option<Vec<IssuerEntry>> = if self.any_issuer {
            None
        } else {
            Some(
                self.issuers
                    .into_iter()
                    .map(|(iss, keys)| IssuerEntry {
                        iss: iss.into_boxed_str(),
                        keys,
                    })
                    .collect(),
            )
        };
        let fixed_source = match &issuers {
            None => self.keys.clone(),
            Some(list) if list.iter().all(|e: &IssuerEntry| e.keys.is_none()) => self.keys.clone(),
            Some(list) if list.len() == 1 => list[0].keys.clone(),
            Some(_) => None,
        };
        Ok(Validator {
            inner: Arc::new(Inner {
                issuers,
                default_keys: self.keys,
                fixed_source,
                audiences: (!self.any_audience).then(|| {
                    self.audiences
                        .into_iter()
                        .map(String::into_boxed_str)
                        .collect()
                }),
                algorithms,
                time: TimeRules {
                    leeway: self.leeway.as_secs(),
                    require_exp: self.require_exp,
                    max_age: self.max_age.map(|d| d.as_secs()),
                },
                required,
                typ: self.typ.map(String::into_boxed_str),
                clock: self.clock,
                max_token_size: self.max_token_size,
                checks: self.checks,
                header_cache: arc_swap::ArcSwapOption::empty(),
                denylist: self.denylist,
                #[cfg(feature = "cache")]
                cache: self.cache.map(crate::cache::TokenCache::new),
            }),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typ_comparison_follows_rfc_7515() {
        assert!(check_typ(Some("at+jwt"), "at+jwt").is_ok());
        assert!(check_typ(Some("application/AT+JWT"), "at+jwt").is_ok());
        assert!(check_typ(Some("at+jwt"), "application/at+jwt").is_ok());
        assert!(check_typ(Some("JWT"), "at+jwt").is_err());
        assert!(check_typ(None, "at+jwt").is_err());
    }

    #[test]
    fn ecdsa_signature_shape() {
        let mut sig = [1u8; 64];
        assert!(signature_shape_ok(Algorithm::ES256, &sig));
        assert!(!signature_shape_ok(Algorithm::ES256, &sig[..63]));
        sig[..32].fill(0);
        assert!(!signature_shape_ok(Algorithm::ES256, &sig));
        assert!(!signature_shape_ok(Algorithm::ES384, &[1u8; 64]));
    }

    #[test]
    fn validator_is_send_sync_and_cheap_to_clone() {
        fn assert_send_sync<T: Send + Sync + Clone>() {}
        assert_send_sync::<Validator>();
    }
}
