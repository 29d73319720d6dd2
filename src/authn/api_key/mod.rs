//! API keys (feature `api-keys`): keys the crate generates, stored as a
//! digest, looked up by id, as a [`Principal`].
//!
//! # The key format
//! `tw_<env>_<id>_<secret>`, e.g.
//! `tw_live_9f2c4e01a7b3d855_Q3kVn0s…` (43 secret characters):
//! - `tw`: a fixed prefix, so secret scanners recognise leaked keys;
//! - `<env>`: 1 to 16 of `[a-z0-9]` (`live`, `test`);
//! - `<id>`: 8 to 32 of `[0-9A-Za-z]` (generated: 16 hex digits); names
//!   the store record, so a lookup never scans;
//! - `<secret>`: 43 base62 characters, 256 random bits from the crypto
//!   backend's generator; shown once at creation, never stored or logged.
//!
//! No part but the prefix holds `_`, so parsing is unambiguous.
//!
//! # Where a request carries it
//! `Authorization: ApiKey <key>` and/or a configured header (`X-Api-Key`):
//! exactly one value in one place (two are 400), visible ASCII, at most
//! [`MAX_KEY_LEN`] bytes.
//!
//! # Refusals
//! A malformed key, an unknown id, a wrong secret, a disabled or expired
//! key: 401 `invalid_token` with the `ApiKey` challenge. The client is told
//! only "invalid API key" until it has proved the secret; the stable
//! [`Refusal::kind`] (`unknown_key`, `wrong_secret`, `disabled`,
//! `expired`, …) is for logs and metrics. Five wrong secrets for one id
//! within a minute are logged at warn as suspicious, with the id only.
//!
//! ```
//! use std::sync::Arc;
//! use tokenwarden::authn::{Chain, RequestView};
//! use tokenwarden::authn::api_key::{ApiKeyAuthenticator, MemoryStore, NewApiKey};
//!
//! let store = Arc::new(MemoryStore::new());
//! let mut new = NewApiKey::generate("live", "nightly-export")?;
//! new.record.scopes = vec!["reports:read".into()];
//! store.insert(new.record.clone());
//! let chain = Chain::new().api_key(ApiKeyAuthenticator::memory(store));
//!
//! let value = format!("ApiKey {}", new.expose_key());
//! let headers = [("authorization", value.as_str())];
//! # tokio::runtime::Builder::new_current_thread().build()?.block_on(async {
//! let principal = chain.authenticate(&RequestView::new("GET", "/", &headers)).await.unwrap();
//! assert_eq!(principal.subject(), "nightly-export");
//! assert!(principal.has_scope("reports:read"));
//! # });
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod format;
mod store;

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use serde_json::{Map, Value};

pub use format::{MAX_KEY_LEN, PREFIX, SECRET_LEN, SecretDigest};
pub use store::{ApiKeyRecord, FileStore, KeyStore, MemoryStore, StoreError};

use self::format::ParsedKey;
use self::store::CachedStore;
use super::request::{authorization, authorization_names};
use super::{
    Authenticator, BoxFuture, DEFAULT_RETRY_AFTER, Principal, Refusal, RequestView, Scheme, Verdict,
};
use crate::clock::{Clock, SystemClock};
use crate::error::BuildError;

/// Wrong secrets for one id within [`FAILURE_WINDOW`] that are logged as
/// suspicious.
pub const SUSPICIOUS_FAILURES: u32 = 5;
/// The window (seconds) [`SUSPICIOUS_FAILURES`] are counted in.
pub const FAILURE_WINDOW: i64 = 60;

/// The longest a custom store's answers are kept ([`ApiKeyAuthenticator::cache_for`]):
/// a key removed or disabled in the store is refused at most this long after.
pub const MAX_CACHE_TTL: Duration = Duration::from_secs(3600);

/// What the client is told for an unknown id or a wrong secret: the same,
/// so that it learns nothing about which ids exist.
const INVALID: &str = "invalid API key";

/// The metrics label of a key the store does not hold.
const UNKNOWN_ID: &str = "unknown";

/// A key just generated: the key (shown once) and the record to store.
/// `Debug` and `Display` never show the secret.
pub struct NewApiKey {
    key: String,
    /// The record to store (set its scopes, owner, expiry before storing).
    pub record: ApiKeyRecord,
}

impl fmt::Debug for NewApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NewApiKey")
            .field("key", &format_args!("{self}"))
            .field("record", &self.record)
            .finish()
    }
}

impl fmt::Display for NewApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match ParsedKey::parse(&self.key) {
            Some(p) => write!(f, "{p:?}"),
            None => f.write_str("<redacted>"),
        }
    }
}

impl NewApiKey {
    /// A new key for environment `env` (`live`, `test`: 1 to 16 of
    /// `[a-z0-9]`), named `name`: a random 64-bit id and 256-bit secret from
    /// the crypto backend's generator; no scopes, no expiry.
    ///
    /// # Errors
    /// A bad `env`, or the random generator failed.
    pub fn generate(env: &str, name: &str) -> Result<NewApiKey, BuildError> {
        if !format::env_ok(env) {
            return Err(BuildError::new(format!(
                "API key environment {env:?}: 1 to 16 of a-z and 0-9"
            )));
        }
        let id = format::random_hex(8).map_err(BuildError::new)?;
        let secret = format::random_base62(SECRET_LEN).map_err(BuildError::new)?;
        let key = format!("{PREFIX}_{env}_{id}_{secret}");
        let record = ApiKeyRecord::new(id.clone(), SecretDigest::of(env, &id, &secret), name);
        Ok(NewApiKey { key, record })
    }

    /// The whole key, to hand to its holder once. Never store or log it.
    pub fn expose_key(&self) -> &str {
        &self.key
    }
}

/// Use of one key id: requests that presented it (found in the store),
/// refusals among them, and when it last let a request in.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct KeyUsage {
    /// Requests that presented this id.
    pub requests: u64,
    /// Those refused (wrong secret, disabled, expired).
    pub refusals: u64,
    /// When (Unix seconds) it last let a request in.
    pub last_used: Option<i64>,
}

#[derive(Default)]
struct UsageState {
    usage: KeyUsage,
    window_start: i64,
    failures: u32,
}

#[derive(Clone)]
enum Source {
    Memory(Arc<MemoryStore>),
    File(Arc<FileStore>),
    Custom(CachedStore),
}

/// API keys as an [`Authenticator`]: reads the key, looks its id up in a
/// store, compares the secret's digest in constant time, checks the
/// disabled flag and expiry, and counts use per id. See the
/// [module docs](self) for the format, locations and refusals. Cheap to
/// clone (clones share the store and the usage counts).
#[derive(Clone)]
pub struct ApiKeyAuthenticator {
    source: Source,
    authorization: bool,
    header: Option<Arc<str>>,
    env: Option<Arc<str>>,
    clock: Arc<dyn Clock>,
    usage: Arc<Mutex<HashMap<Box<str>, UsageState>>>,
}

impl fmt::Debug for ApiKeyAuthenticator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiKeyAuthenticator")
            .field("authorization", &self.authorization)
            .field("header", &self.header)
            .field("env", &self.env)
            .finish_non_exhaustive()
    }
}

impl ApiKeyAuthenticator {
    fn with_source(source: Source) -> Self {
        ApiKeyAuthenticator {
            source,
            authorization: true,
            header: None,
            env: None,
            clock: Arc::new(SystemClock),
            usage: Arc::default(),
        }
    }

    /// Keys from a [`MemoryStore`], read from `Authorization: ApiKey`.
    pub fn memory(store: Arc<MemoryStore>) -> Self {
        Self::with_source(Source::Memory(store))
    }

    /// Keys from a [`FileStore`], read from `Authorization: ApiKey`.
    pub fn file(store: FileStore) -> Self {
        Self::with_source(Source::File(Arc::new(store)))
    }

    /// Keys from your own [`KeyStore`], read from `Authorization: ApiKey`.
    /// Its answers, found or not, are kept 5 seconds (see
    /// [`cache_for`](Self::cache_for)): a key disabled or removed in the
    /// store is refused at most that long after. Errors are not kept, and
    /// concurrent lookups of one id make one store call.
    pub fn custom(store: impl KeyStore) -> Self {
        Self::with_source(Source::Custom(CachedStore::new(Arc::new(store), 5)))
    }

    /// How long (whole seconds) a custom store's answers are kept: at most
    /// [`MAX_CACHE_TTL`] (`Duration::MAX` included), so that a key removed
    /// or disabled in the store is never valid here for long after.
    #[must_use]
    pub fn cache_for(mut self, ttl: Duration) -> Self {
        if let Source::Custom(c) = &mut self.source {
            let ttl = ttl.min(MAX_CACHE_TTL);
            c.set_ttl(i64::try_from(ttl.as_secs()).unwrap_or(0));
        }
        self
    }

    /// Also reads the key from this header (bare key, one value).
    ///
    /// # Errors
    /// When `name` is not a header name (RFC 9110 §5.1 token).
    pub fn header(mut self, name: &str) -> Result<Self, BuildError> {
        let valid = !name.is_empty()
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
        if !valid {
            return Err(BuildError::new(format!("{name:?} is not a header name")));
        }
        self.header = Some(name.to_ascii_lowercase().into());
        Ok(self)
    }

    /// Whether `Authorization: ApiKey <key>` is read (on by default).
    #[must_use]
    pub fn authorization(mut self, read: bool) -> Self {
        self.authorization = read;
        self
    }

    /// Accepts only keys of this environment (a `test` key is refused by a
    /// `live` service).
    #[must_use]
    pub fn env(mut self, env: &str) -> Self {
        self.env = Some(env.into());
        self
    }

    /// The clock for expiry, usage times and cache ages.
    #[must_use]
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// Use of key `id` so far (zero for an id never presented).
    pub fn usage(&self, id: &str) -> KeyUsage {
        let usage = self.usage.lock().unwrap_or_else(PoisonError::into_inner);
        usage.get(id).map(|s| s.usage).unwrap_or_default()
    }

    /// The key from the request: one value in one place.
    fn credential<'a>(&self, req: &RequestView<'a>) -> Result<Option<&'a str>, Refusal> {
        let from_auth = if self.authorization {
            authorization(req, Scheme::ApiKey)?
        } else {
            None
        };
        let from_header = match &self.header {
            Some(h) => req
                .single_header(h, Scheme::ApiKey)?
                .map(|v| v.trim_matches([' ', '\t'])),
            None => None,
        };
        let key = match (from_auth, from_header) {
            (Some(_), Some(_)) => {
                return Err(Refusal::invalid_request(
                    Scheme::ApiKey,
                    "more than one API key",
                ));
            }
            (a, b) => a.or(b),
        };
        if key.is_some_and(|k| k.len() > MAX_KEY_LEN) {
            return Err(Refusal::invalid_request(
                Scheme::ApiKey,
                "the API key is too long",
            ));
        }
        Ok(key)
    }

    /// Whether every API key `other` finds in `req` is in a place this
    /// authenticator reads too: then the two judge one credential (one
    /// kind). A key in a header only `other` reads is a second credential,
    /// which the chain refuses with this one's (400): an application
    /// behind it could act on the key nobody judged.
    pub(crate) fn reads_all_of(&self, other: &ApiKeyAuthenticator, req: &RequestView<'_>) -> bool {
        let in_authorization = other.authorization && authorization_names(req, Scheme::ApiKey);
        let in_header = other.header.as_deref().filter(|h| req.header(h).is_some());
        (!in_authorization || self.authorization)
            && in_header.is_none_or(|h| self.header.as_deref() == Some(h))
    }

    /// The id of the one well-formed API key `req` carries (never its
    /// secret), for audit lines about refusals; `None` without one. Until
    /// the store has vouched for it, the id is only the client's text:
    /// safe to log (8 to 32 of `[0-9A-Za-z]`), not proof of anything.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use tokenwarden::authn::RequestView;
    /// use tokenwarden::authn::api_key::{ApiKeyAuthenticator, MemoryStore, NewApiKey};
    ///
    /// let auth = ApiKeyAuthenticator::memory(Arc::new(MemoryStore::new()));
    /// let new = NewApiKey::generate("live", "script")?;
    /// let value = format!("ApiKey {}", new.expose_key());
    /// let headers = [("authorization", value.as_str())];
    /// let id = auth.key_id(&RequestView::new("GET", "/", &headers));
    /// assert_eq!(id, Some(new.record.id.as_str()));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn key_id<'r>(&self, req: &RequestView<'r>) -> Option<&'r str> {
        let raw = self.credential(req).ok()??;
        ParsedKey::parse(raw).map(|k| k.id)
    }

    async fn lookup(&self, id: &str, now: i64) -> Result<Option<Arc<ApiKeyRecord>>, StoreError> {
        match &self.source {
            Source::Memory(m) => Ok(m.get(id)),
            Source::File(f) => Ok(f.get(id, now)),
            Source::Custom(c) => c.get(id, now).await,
        }
    }

    /// The verdict: no future boxed for the memory and file stores.
    pub(crate) async fn verdict(&self, req: &RequestView<'_>) -> Verdict {
        let raw = match self.credential(req) {
            Ok(Some(k)) => k,
            Ok(None) => return Verdict::NotMine,
            Err(r) => return Verdict::Refused(r),
        };
        let refused = |kind: &'static str, description: &'static str| {
            tracing::debug!(reason = kind, "API key refused");
            Verdict::Refused(Refusal::invalid_token(Scheme::ApiKey, kind, description))
        };
        // Before the store vouches for an id, the client's text never
        // becomes a metrics label (a flood of made-up ids would make as
        // many series): such refusals count under `unknown`.
        let unknown = |kind: &'static str, description: &'static str| {
            crate::metrics::api_key_request(UNKNOWN_ID);
            crate::metrics::api_key_refusal(UNKNOWN_ID, kind);
            refused(kind, description)
        };
        let Some(key) = ParsedKey::parse(raw) else {
            return unknown("malformed_key", "malformed API key");
        };
        if self.env.as_deref().is_some_and(|env| env != key.env) {
            return unknown("wrong_environment", INVALID);
        }
        let now = self.clock.now();
        let record = match self.lookup(key.id, now).await {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(key_id = key.id, reason = %e, "API key store unavailable");
                return Verdict::Refused(Refusal::unavailable(
                    Scheme::ApiKey,
                    "key_store_unavailable",
                    DEFAULT_RETRY_AFTER,
                ));
            }
        };
        let digest = SecretDigest::of(key.env, key.id, key.secret);
        let Some(record) = record else {
            // The same work as for a known id, so timing tells no more
            // than the answer.
            let _ = digest.matches(&SecretDigest::of("", "", ""));
            return unknown("unknown_key", INVALID);
        };
        if record.id != key.id {
            // A store that matched loosely (a case-insensitive collation):
            // only the exact id is this key, and only a stored id may name
            // a counter, a usage entry or a metrics label.
            let _ = digest.matches(&record.digest);
            return unknown("unknown_key", INVALID);
        }
        if !digest.matches(&record.digest) {
            self.failed(key.id, now);
            return refused("wrong_secret", INVALID);
        }
        // The holder proved the secret: it may learn why the key fails.
        if record.disabled {
            self.count(key.id, now, Some("disabled"));
            return refused("disabled", "the API key is disabled");
        }
        if record.expires_at.is_some_and(|at| now >= at) {
            self.count(key.id, now, Some("expired"));
            return refused("expired", "the API key has expired");
        }
        self.count(key.id, now, None);
        Verdict::Authenticated(principal(&record))
    }

    /// One request for a stored key's `id`: a pass, or refused for
    /// `refusal`; in the usage counts and the metrics (label: the id).
    fn count(&self, id: &str, now: i64, refusal: Option<&'static str>) {
        crate::metrics::api_key_request(id);
        if let Some(reason) = refusal {
            crate::metrics::api_key_refusal(id, reason);
        }
        let mut usage = self.usage.lock().unwrap_or_else(PoisonError::into_inner);
        let s = usage.entry(id.into()).or_default();
        s.usage.requests = s.usage.requests.saturating_add(1);
        match refusal {
            None => s.usage.last_used = Some(now),
            Some(_) => s.usage.refusals = s.usage.refusals.saturating_add(1),
        }
    }

    /// A wrong secret for an id that exists: counted, and the
    /// [`SUSPICIOUS_FAILURES`]th within [`FAILURE_WINDOW`] logged at warn.
    fn failed(&self, id: &str, now: i64) {
        crate::metrics::api_key_request(id);
        crate::metrics::api_key_refusal(id, "wrong_secret");
        let mut usage = self.usage.lock().unwrap_or_else(PoisonError::into_inner);
        let s = usage.entry(id.into()).or_default();
        s.usage.requests = s.usage.requests.saturating_add(1);
        s.usage.refusals = s.usage.refusals.saturating_add(1);
        if s.failures == 0 || now.saturating_sub(s.window_start) >= FAILURE_WINDOW {
            s.window_start = now;
            s.failures = 0;
        }
        s.failures = s.failures.saturating_add(1);
        if s.failures == SUSPICIOUS_FAILURES {
            tracing::warn!(
                key_id = id,
                failures = s.failures,
                window_secs = FAILURE_WINDOW,
                "suspicious: repeated wrong secrets for one API key id"
            );
        }
    }
}

/// The principal of a key: its owner (or name) as subject, its scopes and
/// roles, its expiry; claims `api_key_id`, `api_key_name` and `owner`.
fn principal(r: &ApiKeyRecord) -> Principal {
    let mut claims = Map::new();
    claims.insert("api_key_id".into(), Value::String(r.id.clone()));
    claims.insert("api_key_name".into(), Value::String(r.name.clone()));
    if let Some(owner) = &r.owner {
        claims.insert("owner".into(), Value::String(owner.clone()));
    }
    Principal::new(r.owner.as_deref().unwrap_or(&r.name), "api_key")
        .with_scopes(r.scopes.iter().cloned())
        .with_roles(r.roles.iter().cloned())
        .with_expiry(r.expires_at)
        .with_claims(claims)
}

impl Authenticator for ApiKeyAuthenticator {
    fn name(&self) -> &'static str {
        "api_key"
    }

    fn scheme(&self) -> Scheme {
        Scheme::ApiKey
    }

    fn recognises(&self, req: &RequestView<'_>) -> bool {
        (self.authorization && authorization_names(req, Scheme::ApiKey))
            || self
                .header
                .as_deref()
                .is_some_and(|h| req.header(h).is_some())
    }

    fn authenticate<'a>(&'a self, req: &'a RequestView<'a>) -> BoxFuture<'a, Verdict> {
        Box::pin(self.verdict(req))
    }
}
