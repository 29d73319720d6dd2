//! The revocation [`Denylist`]: tokens taken back before their `exp`.
//!
//! Three kinds of entries, each optionally limited to one issuer:
//! - a `jti`: that one token, until its `exp`;
//! - a `sub`: every token of that subject issued before a cutoff `T`
//!   (`iat < T`; a token without `iat` is refused), until `T` plus the
//!   longest token lifetime configured;
//! - a `sid` (an OpenID Connect session): the same, for one session.
//!
//! An entry is kept [`GRACE`] seconds longer than the tokens it refuses can
//! live (the largest leeway a validator accepts), then pruned, so the list
//! holds only what still matters.
//!
//! Reads are lock-free: requests read an immutable snapshot through
//! `ArcSwap` (a large base and a small delta of recent writes, both
//! `foldhash` maps), and never touch the network. Writers take a mutex,
//! copy the small delta, and publish a new snapshot; the delta is merged
//! into the base (and expired entries pruned) once it grows past an eighth
//! of the base, so a write costs amortised O(1) copies.
//!
//! Where revocations come from is a [`RevocationSource`]: the local
//! mirror is what requests read; a source (a store shared by a fleet, such
//! as Redis) is told of every local revocation and feeds the mirror the
//! revocations made elsewhere. [`MemorySource`] is the in-process one.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::time::Duration;

use arc_swap::ArcSwap;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::clock::{Clock, SystemClock};
use crate::error::BuildError;

/// Default longest lifetime of a token the denylist protects against: 24
/// hours. A subject or session cutoff `T` is kept until `T` plus this.
pub const DEFAULT_MAX_TOKEN_LIFETIME: Duration = Duration::from_secs(24 * 60 * 60);

/// Seconds an entry outlives the tokens it refuses: the largest leeway a
/// [`ValidatorBuilder`](crate::ValidatorBuilder) accepts (1 hour), so no
/// validator still accepts a token whose entry was pruned.
pub const GRACE: i64 = 3600;

/// Longest `max_token_lifetime` accepted: one year.
const MAX_LIFETIME: Duration = Duration::from_secs(365 * 24 * 60 * 60);

/// Writes gathered in the delta before it is merged into the base, at least.
const DELTA_MIN: usize = 1024;

type Table = HashMap<Arc<str>, Arc<[Rule]>, foldhash::fast::RandomState>;

/// One revocation, as the API, the admin endpoint, a logout token or a
/// shared store states it. Serialisable, so a store can carry it between
/// instances as it is.
///
/// ```
/// use tokenwarden::state::denylist::Revocation;
///
/// let r = Revocation::Subject { issuer: None, sub: "alice".into(), before: 1_700_000_000 };
/// let json = serde_json::to_string(&r)?;
/// assert_eq!(json, r#"{"kind":"subject","issuer":null,"sub":"alice","before":1700000000}"#);
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Revocation {
    /// The token with this `jti`, until `expires_at` (its `exp`).
    Jti {
        /// Only tokens of this `iss`; `None`: of any issuer.
        issuer: Option<String>,
        /// The token's `jti`.
        jti: String,
        /// The token's `exp`, in seconds since the epoch.
        expires_at: i64,
    },
    /// Every token of this `sub` issued before `before` (`iat < before`).
    Subject {
        /// Only tokens of this `iss`; `None`: of any issuer.
        issuer: Option<String>,
        /// The subject.
        sub: String,
        /// The cutoff, in seconds since the epoch.
        before: i64,
    },
    /// Every token of this session (`sid`) issued before `before`.
    Session {
        /// Only tokens of this `iss`; `None`: of any issuer.
        issuer: Option<String>,
        /// The OpenID Connect session id.
        sid: String,
        /// The cutoff, in seconds since the epoch.
        before: i64,
    },
}

/// Which entry refused a token ([`Error::Revoked`](crate::Error::Revoked)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RevokedBy {
    /// Its `jti` was revoked.
    Jti,
    /// Its subject's tokens issued before a cutoff were revoked.
    Subject,
    /// Its session's tokens issued before a cutoff were revoked.
    Session,
}

impl RevokedBy {
    /// `"jti"`, `"subject"` or `"session"`.
    pub const fn as_str(self) -> &'static str {
        match self {
            RevokedBy::Jti => "jti",
            RevokedBy::Subject => "subject",
            RevokedBy::Session => "session",
        }
    }
}

impl fmt::Display for RevokedBy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What the denylist looks at in a token: borrowed from its claims.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
#[non_exhaustive]
pub struct TokenIds<'a> {
    /// `iss`.
    pub iss: Option<&'a str>,
    /// `jti`.
    pub jti: Option<&'a str>,
    /// `sub`.
    pub sub: Option<&'a str>,
    /// `sid`.
    pub sid: Option<&'a str>,
    /// `iat`, when a number.
    pub iat: Option<f64>,
    /// `exp`, when a number: a token living longer than the denylist's
    /// `max_token_lifetime` is refused by a validator (see
    /// [`DenylistBuilder::max_token_lifetime`]).
    pub exp: Option<f64>,
}

impl<'a> TokenIds<'a> {
    /// Reads `iss`, `jti`, `sub`, `sid` (strings) and `iat` (a number) from
    /// verified claims; anything else counts as absent.
    pub fn from_claims(claims: &'a Map<String, Value>) -> TokenIds<'a> {
        let s = |n: &str| claims.get(n).and_then(Value::as_str);
        TokenIds {
            iss: s("iss"),
            jti: s("jti"),
            sub: s("sub"),
            sid: s("sid"),
            iat: claims.get("iat").and_then(Value::as_f64),
            exp: claims.get("exp").and_then(Value::as_f64),
        }
    }
}

/// The ids of a verified token, owned: read once when it is verified,
/// kept with its cache entry so that a hit is checked without parsing.
#[derive(Debug, Clone, Default)]
pub(crate) struct OwnedIds {
    iss: Option<Box<str>>,
    jti: Option<Box<str>>,
    sub: Option<Box<str>>,
    sid: Option<Box<str>>,
    iat: Option<f64>,
    exp: Option<f64>,
}

impl OwnedIds {
    /// From a verified payload and its `iat` and `exp` as the claims rules
    /// read them.
    pub(crate) fn parse(payload: &str, iat: Option<f64>, exp: Option<f64>) -> OwnedIds {
        #[derive(Deserialize)]
        struct Raw {
            iss: Option<Value>,
            jti: Option<Value>,
            sub: Option<Value>,
            sid: Option<Value>,
        }
        // The payload already passed every rule: it is a JSON object. A
        // claim that is not a string cannot match a string entry.
        let own = |v: Option<Value>| match v {
            Some(Value::String(s)) => Some(s.into_boxed_str()),
            _ => None,
        };
        match serde_json::from_str::<Raw>(payload) {
            Ok(r) => OwnedIds {
                iss: own(r.iss),
                jti: own(r.jti),
                sub: own(r.sub),
                sid: own(r.sid),
                iat,
                exp,
            },
            Err(_) => OwnedIds {
                iat,
                exp,
                ..OwnedIds::default()
            },
        }
    }

    pub(crate) fn as_ids(&self) -> TokenIds<'_> {
        TokenIds {
            iss: self.iss.as_deref(),
            jti: self.jti.as_deref(),
            sub: self.sub.as_deref(),
            sid: self.sid.as_deref(),
            iat: self.iat,
            exp: self.exp,
        }
    }
}

/// One entry: refuses tokens of `issuer` (any, when `None`) issued before
/// `before` (every one, for a `jti`), until `expires_at`.
#[derive(Debug, Clone, PartialEq)]
struct Rule {
    issuer: Option<Arc<str>>,
    before: i64,
    expires_at: i64,
}

impl Rule {
    #[inline]
    fn issuer_matches(&self, iss: Option<&str>) -> bool {
        match &self.issuer {
            None => true,
            Some(i) => iss == Some(&**i),
        }
    }

    /// Whether this rule refuses every token `other` refuses, as long.
    fn covers(&self, other: &Rule) -> bool {
        (self.issuer.is_none() || self.issuer == other.issuer)
            && self.before >= other.before
            && self.expires_at >= other.expires_at
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Jti,
    Sub,
    Sid,
}

#[derive(Clone, Default)]
struct Tables {
    jti: Table,
    sub: Table,
    sid: Table,
}

impl Tables {
    fn table(&self, kind: Kind) -> &Table {
        match kind {
            Kind::Jti => &self.jti,
            Kind::Sub => &self.sub,
            Kind::Sid => &self.sid,
        }
    }

    fn table_mut(&mut self, kind: Kind) -> &mut Table {
        match kind {
            Kind::Jti => &mut self.jti,
            Kind::Sub => &mut self.sub,
            Kind::Sid => &mut self.sid,
        }
    }

    /// Whether some rule here already refuses what `rule` would, as long.
    fn covers(&self, kind: Kind, key: &str, rule: &Rule) -> bool {
        self.table(kind)
            .get(key)
            .is_some_and(|rules| rules.iter().any(|r| r.covers(rule)))
    }

    /// Adds `rule` under `key`, dropping the rules it covers; returns the
    /// change in the number of rules.
    fn insert(&mut self, kind: Kind, key: Arc<str>, rule: Rule) -> isize {
        let table = self.table_mut(kind);
        let mut rules: Vec<Rule> = table.get(&key).map(|r| r.to_vec()).unwrap_or_default();
        let before = rules.len();
        rules.retain(|r| !rule.covers(r));
        rules.push(rule);
        let delta = rules.len() as isize - before as isize;
        table.insert(key, rules.into());
        delta
    }

    /// The entry refusing `ids`, if any; with `any_issuer`, every
    /// issuer's entries apply (the token's issuer is unknown).
    #[inline]
    fn check(&self, ids: &TokenIds<'_>, any_issuer: bool) -> Option<RevokedBy> {
        if let (Some(jti), false) = (ids.jti, self.jti.is_empty()) {
            if let Some(rules) = self.jti.get(jti) {
                if rules
                    .iter()
                    .any(|r| any_issuer || r.issuer_matches(ids.iss))
                {
                    return Some(RevokedBy::Jti);
                }
            }
        }
        for (table, key, by) in [
            (&self.sub, ids.sub, RevokedBy::Subject),
            (&self.sid, ids.sid, RevokedBy::Session),
        ] {
            let (Some(key), false) = (key, table.is_empty()) else {
                continue;
            };
            if let Some(rules) = table.get(key) {
                // A token without `iat` cannot show it came after the
                // cutoff: refused.
                let hit = rules.iter().any(|r| {
                    (any_issuer || r.issuer_matches(ids.iss))
                        && ids.iat.is_none_or(|iat| iat < r.before as f64)
                });
                if hit {
                    return Some(by);
                }
            }
        }
        None
    }

    /// Every rule of `other` added; rules expired by `now` dropped.
    fn merged(&self, other: &Tables, now: i64) -> (Tables, usize) {
        let mut out = Tables::default();
        let mut count = 0;
        for kind in [Kind::Jti, Kind::Sub, Kind::Sid] {
            let mut table = self.table(kind).clone();
            for (k, rules) in other.table(kind) {
                let mut all: Vec<Rule> = table.get(k).map(|r| r.to_vec()).unwrap_or_default();
                for r in rules.iter() {
                    all.retain(|x| !r.covers(x));
                    all.push(r.clone());
                }
                table.insert(k.clone(), all.into());
            }
            table.retain(|_, rules| {
                if rules.iter().any(|r| expired(r, now)) {
                    let kept: Vec<Rule> =
                        rules.iter().filter(|r| !expired(r, now)).cloned().collect();
                    *rules = kept.into();
                }
                !rules.is_empty()
            });
            count += table.values().map(|r| r.len()).sum::<usize>();
            *out.table_mut(kind) = table;
        }
        (out, count)
    }
}

fn expired(r: &Rule, now: i64) -> bool {
    r.expires_at.saturating_add(GRACE) <= now
}

struct Snapshot {
    base: Arc<Tables>,
    delta: Tables,
    base_rules: usize,
    delta_rules: usize,
}

/// Tokens taken back: checked by a [`Validator`](crate::Validator) given it
/// with [`ValidatorBuilder::denylist`](crate::ValidatorBuilder::denylist),
/// on every validation after the signature, cache hits included.
///
/// Cheap to clone (an `Arc` inside); every clone is the same list.
///
/// ```
/// use tokenwarden::state::denylist::{Denylist, TokenIds};
/// use tokenwarden::FixedClock;
///
/// let denylist = Denylist::builder().clock(FixedClock(1_700_000_000)).build()?;
/// denylist.revoke_jti("token-7", 1_700_000_600);
/// denylist.revoke_subject_before("mallory", 1_700_000_000);
/// denylist.revoke_session("session-1", 1_700_000_000);
///
/// let claims = serde_json::json!({"sub": "mallory", "iat": 1_699_999_990});
/// let claims = claims.as_object().unwrap();
/// assert_eq!(denylist.is_revoked(&TokenIds::from_claims(claims)).map(|b| b.as_str()), Some("subject"));
/// assert_eq!(denylist.len(), 3);
/// # Ok::<(), tokenwarden::BuildError>(())
/// ```
#[derive(Clone)]
pub struct Denylist {
    inner: Arc<Inner>,
}

struct Inner {
    snapshot: ArcSwap<Snapshot>,
    /// Serialises writers; readers never take it.
    writer: Mutex<()>,
    clock: Arc<dyn Clock>,
    max_token_lifetime: i64,
    source: Option<Arc<dyn RevocationSource>>,
}

impl fmt::Debug for Denylist {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Denylist")
            .field("entries", &self.len())
            .field("max_token_lifetime", &self.inner.max_token_lifetime)
            .finish_non_exhaustive()
    }
}

impl Default for Denylist {
    fn default() -> Self {
        Denylist::new()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Denylist {
    /// An empty, in-process denylist: system clock,
    /// [`DEFAULT_MAX_TOKEN_LIFETIME`], no shared source.
    pub fn new() -> Denylist {
        Denylist::from_parts(
            Arc::new(SystemClock),
            DEFAULT_MAX_TOKEN_LIFETIME.as_secs() as i64,
            None,
        )
    }

    /// Settings: clock, longest token lifetime, a shared source.
    pub fn builder() -> DenylistBuilder {
        DenylistBuilder {
            clock: Arc::new(SystemClock),
            max_token_lifetime: DEFAULT_MAX_TOKEN_LIFETIME,
            source: None,
        }
    }

    fn from_parts(
        clock: Arc<dyn Clock>,
        max_token_lifetime: i64,
        source: Option<Arc<dyn RevocationSource>>,
    ) -> Denylist {
        Denylist {
            inner: Arc::new(Inner {
                snapshot: ArcSwap::from_pointee(Snapshot {
                    base: Arc::new(Tables::default()),
                    delta: Tables::default(),
                    base_rules: 0,
                    delta_rules: 0,
                }),
                writer: Mutex::new(()),
                clock,
                max_token_lifetime,
                source,
            }),
        }
    }

    /// Refuses the token with this `jti` (of any issuer) until
    /// `expires_at`, its `exp` in seconds since the epoch.
    pub fn revoke_jti(&self, jti: &str, expires_at: i64) {
        self.revoke(Revocation::Jti {
            issuer: None,
            jti: jti.to_owned(),
            expires_at,
        });
    }

    /// Refuses every token of `sub` (of any issuer) issued before `before`
    /// (`iat < before`, seconds since the epoch), and every token of `sub`
    /// without `iat`, until `before` plus the longest token lifetime.
    pub fn revoke_subject_before(&self, sub: &str, before: i64) {
        self.revoke(Revocation::Subject {
            issuer: None,
            sub: sub.to_owned(),
            before,
        });
    }

    /// Refuses every token of the session `sid` (of any issuer) issued
    /// before `before`, as [`revoke_subject_before`](Self::revoke_subject_before).
    pub fn revoke_session(&self, sid: &str, before: i64) {
        self.revoke(Revocation::Session {
            issuer: None,
            sid: sid.to_owned(),
            before,
        });
    }

    /// Records `revocation` here at once, and tells the source (if any) so
    /// that every instance sharing it learns of it. Returns whether it
    /// changed anything (`false`: already covered by an entry at least as
    /// strong, or already past).
    pub fn revoke(&self, revocation: Revocation) -> bool {
        let added = self.add(&revocation);
        if added {
            if let Some(source) = &self.inner.source {
                source.publish(&revocation);
            }
        }
        added
    }

    /// The entry that refuses a token with these ids, if any. Lock-free.
    #[inline]
    pub fn is_revoked(&self, ids: &TokenIds<'_>) -> Option<RevokedBy> {
        self.lookup(ids, false)
    }

    /// As [`is_revoked`](Self::is_revoked) for a token whose issuer is
    /// unknown (an introspection answer without `iss`): every issuer's
    /// entries apply, since nothing shows the token is not theirs.
    #[cfg(feature = "introspection")]
    pub(crate) fn is_revoked_any_issuer(&self, ids: &TokenIds<'_>) -> Option<RevokedBy> {
        self.lookup(ids, true)
    }

    #[inline]
    fn lookup(&self, ids: &TokenIds<'_>, any_issuer: bool) -> Option<RevokedBy> {
        let snap = self.inner.snapshot.load();
        if snap.delta_rules != 0 {
            if let Some(by) = snap.delta.check(ids, any_issuer) {
                return Some(by);
            }
        }
        snap.base.check(ids, any_issuer)
    }

    /// Entries held (expired ones stay until the next merge or
    /// [`prune`](Self::prune)).
    pub fn len(&self) -> usize {
        let snap = self.inner.snapshot.load();
        snap.base_rules + snap.delta_rules
    }

    /// Whether no entry is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Drops every entry whose tokens can no longer pass anyway (their
    /// `exp`, or the cutoff plus the longest token lifetime, more than
    /// [`GRACE`] ago). Writes also prune, whenever they merge.
    pub fn prune(&self) {
        let _w = lock(&self.inner.writer);
        let now = self.inner.clock.now();
        let snap = self.inner.snapshot.load_full();
        let (base, base_rules) = snap.base.merged(&snap.delta, now);
        self.inner.snapshot.store(Arc::new(Snapshot {
            base: Arc::new(base),
            delta: Tables::default(),
            base_rules,
            delta_rules: 0,
        }));
    }

    /// The entry a revocation makes here; `None` when it is already past.
    fn rule_for(&self, r: &Revocation, now: i64) -> Option<(Kind, Arc<str>, Rule)> {
        let issuer = |i: &Option<String>| i.as_deref().map(Arc::from);
        let until = |before: i64| before.saturating_add(self.inner.max_token_lifetime);
        let (kind, key, rule) = match r {
            Revocation::Jti {
                issuer: i,
                jti,
                expires_at,
            } => (
                Kind::Jti,
                jti,
                Rule {
                    issuer: issuer(i),
                    before: i64::MAX,
                    expires_at: *expires_at,
                },
            ),
            Revocation::Subject {
                issuer: i,
                sub,
                before,
            } => (
                Kind::Sub,
                sub,
                Rule {
                    issuer: issuer(i),
                    before: *before,
                    expires_at: until(*before),
                },
            ),
            Revocation::Session {
                issuer: i,
                sid,
                before,
            } => (
                Kind::Sid,
                sid,
                Rule {
                    issuer: issuer(i),
                    before: *before,
                    expires_at: until(*before),
                },
            ),
        };
        (!expired(&rule, now)).then(|| (kind, Arc::from(key.as_str()), rule))
    }

    /// Adds to the local mirror only; `true` when it changed anything.
    fn add(&self, r: &Revocation) -> bool {
        let _w = lock(&self.inner.writer);
        let now = self.inner.clock.now();
        let Some((kind, key, rule)) = self.rule_for(r, now) else {
            return false;
        };
        let snap = self.inner.snapshot.load_full();
        if snap.base.covers(kind, &key, &rule) || snap.delta.covers(kind, &key, &rule) {
            return false;
        }
        let mut delta = snap.delta.clone();
        let grown = delta.insert(kind, key, rule);
        let delta_rules = snap.delta_rules.saturating_add_signed(grown);
        let next = if delta_rules > DELTA_MIN.max(snap.base_rules / 8) {
            let (base, base_rules) = snap.base.merged(&delta, now);
            Snapshot {
                base: Arc::new(base),
                delta: Tables::default(),
                base_rules,
                delta_rules: 0,
            }
        } else {
            Snapshot {
                base: snap.base.clone(),
                delta,
                base_rules: snap.base_rules,
                delta_rules,
            }
        };
        self.inner.snapshot.store(Arc::new(next));
        true
    }

    /// The token's verdict as a validation error.
    ///
    /// A token without `exp` or `iat` is refused (`missing_claim`), and so
    /// is one whose `exp` is more than `max_token_lifetime` after its `iat`
    /// (`invalid_claim`, claim `exp`): a subject or session cutoff `T` is
    /// kept only until `T + max_token_lifetime`, so a token without an
    /// `exp`, or whose lifetime cannot be bounded without an `iat`, would
    /// pass again once its cutoff is pruned. RFC 9068 §2.2: JWT access
    /// tokens carry both.
    #[inline]
    pub(crate) fn check(&self, ids: &TokenIds<'_>) -> Result<(), crate::Error> {
        if let Some(by) = self.is_revoked(ids) {
            return Err(crate::Error::Revoked { by });
        }
        self.check_lifetime(ids)
    }

    /// The lifetime half of [`check`](Self::check): `exp` and `iat`
    /// present, and at most `max_token_lifetime` apart.
    #[inline]
    pub(crate) fn check_lifetime(&self, ids: &TokenIds<'_>) -> Result<(), crate::Error> {
        let Some(exp) = ids.exp else {
            return Err(crate::Error::MissingClaim {
                claim: "exp".into(),
            });
        };
        let Some(iat) = ids.iat else {
            return Err(crate::Error::MissingClaim {
                claim: "iat".into(),
            });
        };
        if exp - iat > self.inner.max_token_lifetime as f64 {
            return Err(crate::Error::invalid_claim(
                "exp",
                "the token lives longer than the denylist's max_token_lifetime",
            ));
        }
        Ok(())
    }
}

/// Settings of a [`Denylist`].
#[must_use]
pub struct DenylistBuilder {
    clock: Arc<dyn Clock>,
    max_token_lifetime: Duration,
    source: Option<Arc<dyn RevocationSource>>,
}

impl fmt::Debug for DenylistBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DenylistBuilder")
            .field("max_token_lifetime", &self.max_token_lifetime)
            .finish_non_exhaustive()
    }
}

impl DenylistBuilder {
    /// The clock that decides when entries have expired (default: the
    /// system clock). Use the validators' clock.
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// The longest lifetime (`exp - iat`) of the tokens checked (default 24
    /// h, at most a year). A subject or session cutoff `T` is kept until
    /// `T` plus this: a token living longer would pass again afterwards,
    /// so a validator with this denylist refuses it (`invalid_claim`,
    /// claim `exp`), and refuses a token without `exp` or `iat`
    /// (`missing_claim`), whose lifetime it cannot bound.
    pub fn max_token_lifetime(mut self, lifetime: Duration) -> Self {
        self.max_token_lifetime = lifetime;
        self
    }

    /// Where revocations made elsewhere come from, and where this one's
    /// go: the source is [attached](RevocationSource::attach) at build.
    pub fn source(mut self, source: Arc<dyn RevocationSource>) -> Self {
        self.source = Some(source);
        self
    }

    /// Builds the denylist and attaches it to its source.
    ///
    /// # Errors
    /// A `max_token_lifetime` of zero or over a year.
    pub fn build(self) -> Result<Denylist, BuildError> {
        if self.max_token_lifetime.is_zero() || self.max_token_lifetime > MAX_LIFETIME {
            return Err(BuildError::new(
                "denylist max_token_lifetime must be 1 s to 1 year",
            ));
        }
        let denylist = Denylist::from_parts(
            self.clock,
            self.max_token_lifetime.as_secs() as i64,
            self.source.clone(),
        );
        if let Some(source) = &self.source {
            source.attach(Feed {
                inner: Arc::downgrade(&denylist.inner),
            });
        }
        Ok(denylist)
    }
}

/// Where revocations come from and go: the seam for a store shared by a
/// fleet (Redis, a database). The [`Denylist`] is the local mirror requests
/// read; the source keeps it current.
///
/// - [`attach`](Self::attach) is called once, when a denylist is built
///   with the source: keep the [`Feed`], apply to it every revocation
///   already in force (before reporting ready), then each one made
///   elsewhere as it comes (pub/sub, polling).
/// - [`publish`](Self::publish) is called for each revocation made on this
///   instance, after it already applies here: record it for the others.
///   It must not block (queue it, and retry while the store is away).
///
/// Applying a revocation twice is harmless, so a source may deliver an
/// instance its own revocations back.
pub trait RevocationSource: Send + Sync + 'static {
    /// A denylist to keep current.
    fn attach(&self, feed: Feed);
    /// A revocation made on this instance, to share.
    fn publish(&self, revocation: &Revocation);
}

/// A handle on a [`Denylist`]'s local mirror, for its
/// [`RevocationSource`]. Holds it weakly: a dropped denylist is not kept
/// alive by its source.
#[derive(Clone)]
pub struct Feed {
    inner: Weak<Inner>,
}

impl fmt::Debug for Feed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Feed")
            .field("alive", &self.is_alive())
            .finish()
    }
}

impl Feed {
    /// Applies a revocation made elsewhere to the local mirror (not
    /// published again). `false` when the denylist is gone, or when it
    /// changed nothing.
    pub fn apply(&self, revocation: &Revocation) -> bool {
        match self.inner.upgrade() {
            Some(inner) => Denylist { inner }.add(revocation),
            None => false,
        }
    }

    /// Whether the denylist still exists.
    pub fn is_alive(&self) -> bool {
        self.inner.strong_count() > 0
    }
}

/// The in-process [`RevocationSource`]: denylists built with one share
/// every revocation, at once; one built later starts with every revocation
/// still in force. What a shared store does for a fleet, in one process.
///
/// ```
/// use std::sync::Arc;
/// use tokenwarden::state::denylist::{Denylist, MemorySource, TokenIds};
///
/// let source = Arc::new(MemorySource::new());
/// let a = Denylist::builder().source(source.clone()).build()?;
/// let b = Denylist::builder().source(source.clone()).build()?;
/// a.revoke_subject_before("mallory", i64::MAX / 2);
/// let claims = serde_json::json!({"sub": "mallory", "iat": 1});
/// assert!(b.is_revoked(&TokenIds::from_claims(claims.as_object().unwrap())).is_some());
/// # Ok::<(), tokenwarden::BuildError>(())
/// ```
pub struct MemorySource {
    clock: Arc<dyn Clock>,
    max_token_lifetime: i64,
    shared: Mutex<Shared>,
}

#[derive(Default)]
struct Shared {
    feeds: Vec<Feed>,
    log: Vec<Revocation>,
}

impl fmt::Debug for MemorySource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = lock(&self.shared);
        f.debug_struct("MemorySource")
            .field("feeds", &s.feeds.len())
            .field("revocations", &s.log.len())
            .finish()
    }
}

impl Default for MemorySource {
    fn default() -> Self {
        MemorySource::new()
    }
}

impl MemorySource {
    /// A source on the system clock, keeping revocations for
    /// [`DEFAULT_MAX_TOKEN_LIFETIME`].
    pub fn new() -> MemorySource {
        MemorySource {
            clock: Arc::new(SystemClock),
            max_token_lifetime: DEFAULT_MAX_TOKEN_LIFETIME.as_secs() as i64,
            shared: Mutex::new(Shared::default()),
        }
    }

    /// The clock that decides which revocations a late denylist still
    /// needs (as its denylists' clock).
    #[must_use]
    pub fn with_clock(mut self, clock: impl Clock) -> MemorySource {
        self.clock = Arc::new(clock);
        self
    }

    fn still_needed(&self, r: &Revocation, now: i64) -> bool {
        let until = match r {
            Revocation::Jti { expires_at, .. } => *expires_at,
            Revocation::Subject { before, .. } | Revocation::Session { before, .. } => {
                before.saturating_add(self.max_token_lifetime)
            }
        };
        until.saturating_add(GRACE) > now
    }
}

impl RevocationSource for MemorySource {
    fn attach(&self, feed: Feed) {
        let now = self.clock.now();
        let mut s = lock(&self.shared);
        s.log.retain(|r| self.still_needed(r, now));
        for r in &s.log {
            feed.apply(r);
        }
        s.feeds.push(feed);
    }

    fn publish(&self, revocation: &Revocation) {
        let now = self.clock.now();
        let feeds = {
            let mut s = lock(&self.shared);
            s.log.retain(|r| self.still_needed(r, now));
            s.log.push(revocation.clone());
            s.feeds.retain(Feed::is_alive);
            s.feeds.clone()
        };
        // Outside the lock: each feed takes its own denylist's writer lock.
        for feed in feeds {
            feed.apply(revocation);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;

    fn ids<'a>(jti: Option<&'a str>, sub: Option<&'a str>, iat: Option<f64>) -> TokenIds<'a> {
        TokenIds {
            jti,
            sub,
            iat,
            ..TokenIds::default()
        }
    }

    #[test]
    fn merging_keeps_every_entry_and_drops_expired_ones() {
        let clock = ManualClock::new(1_000);
        let d = Denylist::builder().clock(clock.clone()).build().unwrap();
        for i in 0..(DELTA_MIN * 3) {
            d.revoke_jti(&format!("j{i}"), 2_000 + i as i64);
        }
        assert_eq!(d.len(), DELTA_MIN * 3);
        for i in 0..(DELTA_MIN * 3) {
            let j = format!("j{i}");
            assert_eq!(
                d.is_revoked(&ids(Some(&j), None, None)),
                Some(RevokedBy::Jti)
            );
        }
        // Expired: exp + grace <= now, i.e. the first DELTA_MIN.
        clock.set(2_000 + GRACE + DELTA_MIN as i64 - 1);
        d.prune();
        assert_eq!(d.len(), DELTA_MIN * 2);
    }

    #[test]
    fn a_stronger_cutoff_replaces_a_weaker_one() {
        let d = Denylist::builder()
            .clock(ManualClock::new(100))
            .build()
            .unwrap();
        d.revoke_subject_before("a", 50);
        d.revoke_subject_before("a", 80);
        assert_eq!(d.len(), 1);
        assert!(!d.revoke(Revocation::Subject {
            issuer: None,
            sub: "a".into(),
            before: 60
        }));
        assert!(d.is_revoked(&ids(None, Some("a"), Some(79.0))).is_some());
        assert!(d.is_revoked(&ids(None, Some("a"), Some(80.0))).is_none());
    }

    #[test]
    fn an_issuer_scoped_entry_refuses_only_that_issuers_tokens() {
        let d = Denylist::new();
        d.revoke(Revocation::Jti {
            issuer: Some("https://a".into()),
            jti: "x".into(),
            expires_at: i64::MAX / 2,
        });
        let mut t = ids(Some("x"), None, None);
        assert!(d.is_revoked(&t).is_none(), "no iss");
        t.iss = Some("https://b");
        assert!(d.is_revoked(&t).is_none());
        t.iss = Some("https://a");
        assert_eq!(d.is_revoked(&t), Some(RevokedBy::Jti));
    }
}
