//! Legacy credentials (feature `legacy`): a session cookie, `Basic`
//! credentials or a header, judged by your own async check (call the old
//! session service, bind to LDAP), cached and bounded.
//!
//! A [`LegacyAuthenticator`] reads one kind of credential and hands it, as
//! a [`Credential`], to your check. Around the check:
//! - **a timeout** (default 5 s, at most [`MAX_TIMEOUT`]): the whole
//!   judgement, waiting for a slot under the cap included;
//! - **a concurrency cap** (default 32 checks at once): a request that
//!   finds it full waits at most the timeout, then gets 503; it never holds
//!   up requests for other, cached credentials;
//! - **one call in flight per credential**: concurrent requests with one
//!   new credential share one check;
//! - **a cache**: "yes" kept for the configured TTL (default 60 s, never
//!   past the principal's expiry), "no" briefly (default 5 s), errors never;
//!   at most [`DEFAULT_MAX_ENTRIES`] "yes" verdicts, and "no" verdicts
//!   apart (at most 1024, the oldest dropped first), so a flood of bogus
//!   credentials can crowd out neither a good credential's verdict nor its
//!   single flight (checks in flight are tracked apart from both).
//!
//! The cache and the single flight are keyed by an HMAC-SHA256 of the
//! credential under a key drawn once per process (never the credential
//! itself, nor a plain hash of it: a password's SHA-256 seen in a log or a
//! memory dump would confirm guesses offline); logs name a credential by
//! the first 8 hex digits of that HMAC, and nothing here prints a
//! credential (`Debug`/`Display` of [`Credential`] redact it).
//!
//! # Outcomes
//! | check says | verdict |
//! |---|---|
//! | `Ok(Some(principal))` | authenticated; the principal's authenticator is `"legacy"` (or [`name`](LegacyAuthenticator::name)) |
//! | `Ok(None)` | 401 `invalid_token`, kind `invalid_credentials` |
//! | `Err(_)`, timeout, cap full | 503 with `Retry-After`, kinds `legacy_unavailable`, `legacy_timeout`, `legacy_busy` |
//! | a malformed credential | 400 `invalid_request`, no check |
//!
//! # Challenges
//! `Basic` answers `Basic realm="…"` (RFC 7617). A cookie has no standard
//! scheme: the challenge is `Cookie realm="…"` (a name a browser ignores,
//! which says what the request lacked); a header's is `Legacy realm="…"`.
//! Change either with [`scheme`](LegacyAuthenticator::scheme).
//!
//! ```
//! use std::time::Duration;
//! use tokenwarden::authn::{Chain, Principal, RequestView};
//! use tokenwarden::authn::legacy::{CheckError, Credential, LegacyAuthenticator};
//!
//! let legacy = LegacyAuthenticator::cookie("SESSIONID", |c: Credential| async move {
//!     // Ask the old session service here.
//!     match c {
//!         Credential::Cookie { value, .. } if value == "s3ss10n" => {
//!             Ok(Some(Principal::new("alice", "legacy").with_roles(["staff"])))
//!         }
//!         Credential::Cookie { .. } => Ok(None),
//!         _ => Err(CheckError::new("not a cookie")),
//!     }
//! })?
//! .timeout(Duration::from_secs(2))
//! .max_concurrent(16);
//! let chain = Chain::new().legacy(legacy);
//!
//! let headers = [("cookie", "theme=dark; SESSIONID=s3ss10n")];
//! # tokio::runtime::Builder::new_current_thread().enable_time().build()?.block_on(async {
//! let principal = chain.authenticate(&RequestView::new("GET", "/", &headers)).await.unwrap();
//! assert_eq!(principal.subject(), "alice");
//! assert_eq!(principal.authenticator(), "legacy");
//! # });
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod cache;
mod credential;
#[cfg(feature = "remote")]
mod http;

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

pub use credential::{Credential, MAX_CREDENTIAL_LEN};
#[cfg(feature = "remote")]
#[cfg_attr(docsrs, doc(cfg(feature = "remote")))]
pub use http::{DEFAULT_HTTP_TIMEOUT, DEFAULT_MAX_BODY_BYTES, HttpCheck, HttpCheckBuilder};

use self::cache::{Cache, Outcome};
use self::credential::Source;
use super::{
    Authenticator, BoxFuture, Chain, DEFAULT_RETRY_AFTER, Principal, Refusal, RequestView, Scheme,
    Verdict,
};
use crate::clock::{Clock, SystemClock};
use crate::error::BuildError;

/// The default timeout of one judgement.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);
/// The longest timeout: a longer setting (`Duration::MAX` included) is
/// this. A check slower than this is an outage, and requests should hear so.
pub const MAX_TIMEOUT: Duration = Duration::from_secs(60);
/// The default cap on checks running at once.
pub const DEFAULT_MAX_CONCURRENT: usize = 32;
/// How long a "yes" is kept by default.
pub const DEFAULT_POSITIVE_TTL: Duration = Duration::from_secs(60);
/// How long a "no" is kept by default.
pub const DEFAULT_NEGATIVE_TTL: Duration = Duration::from_secs(5);
/// The longest a verdict is kept (`Duration::MAX` included).
pub const MAX_TTL: Duration = Duration::from_secs(24 * 60 * 60);
/// The most credentials whose verdicts are kept by default.
pub const DEFAULT_MAX_ENTRIES: usize = 10_000;

/// Your check could not answer (the legacy service is down, LDAP timed
/// out): the request gets 503 and nothing is cached. Its message is
/// logged: never put the credential in it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
#[non_exhaustive]
pub struct CheckError {
    message: String,
}

impl CheckError {
    /// An error saying `message` (never the credential).
    pub fn new(message: impl Into<String>) -> Self {
        CheckError {
            message: message.into(),
        }
    }

    /// What went wrong.
    pub fn message(&self) -> &str {
        &self.message
    }
}

/// What a check answers: the principal, `None` for "not a valid
/// credential", or an error.
pub type CheckResult = Result<Option<Principal>, CheckError>;

/// The check, boxed: from a credential to what the legacy system says.
type Check = dyn Fn(Credential) -> BoxFuture<'static, CheckResult> + Send + Sync;

/// A legacy credential as an [`Authenticator`]; see the
/// [module docs](self). Cheap to clone: clones share the cache, the single
/// flight and the cap.
#[derive(Clone)]
pub struct LegacyAuthenticator {
    source: Source,
    name: &'static str,
    scheme: Scheme,
    check: Arc<Check>,
    timeout: Duration,
    retry_after: u32,
    clock: Arc<dyn Clock>,
    cache: Arc<Cache>,
}

impl fmt::Debug for LegacyAuthenticator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LegacyAuthenticator")
            .field("source", &self.source)
            .field("name", &self.name)
            .field("scheme", &self.scheme)
            .field("timeout", &self.timeout)
            .field("cache", &self.cache)
            .finish_non_exhaustive()
    }
}

fn header_name_ok(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

impl LegacyAuthenticator {
    fn with_source<F, Fut>(source: Source, scheme: Scheme, check: F) -> Self
    where
        F: Fn(Credential) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = CheckResult> + Send + 'static,
    {
        let check: Arc<Check> = Arc::new(move |c| Box::pin(check(c)));
        LegacyAuthenticator {
            source,
            name: "legacy",
            scheme,
            check,
            timeout: DEFAULT_TIMEOUT,
            retry_after: DEFAULT_RETRY_AFTER,
            clock: Arc::new(SystemClock),
            cache: Arc::new(Cache::new(
                DEFAULT_MAX_CONCURRENT,
                DEFAULT_POSITIVE_TTL,
                DEFAULT_NEGATIVE_TTL,
                DEFAULT_MAX_ENTRIES,
            )),
        }
    }

    /// Judges the cookie `name` with `check` (challenge `Cookie`).
    ///
    /// # Errors
    /// When `name` is not a cookie name (an RFC 9110 token).
    pub fn cookie<F, Fut>(name: &str, check: F) -> Result<Self, BuildError>
    where
        F: Fn(Credential) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = CheckResult> + Send + 'static,
    {
        if !header_name_ok(name) || name.contains('%') {
            return Err(BuildError::new(format!("{name:?} is not a cookie name")));
        }
        Ok(Self::with_source(
            Source::Cookie(name.into()),
            Scheme::Other("Cookie"),
            check,
        ))
    }

    /// Judges `Authorization: Basic` credentials (RFC 7617) with `check`.
    pub fn basic<F, Fut>(check: F) -> Self
    where
        F: Fn(Credential) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = CheckResult> + Send + 'static,
    {
        Self::with_source(Source::Basic, Scheme::Basic, check)
    }

    /// Judges the header `name` (one value) with `check` (challenge
    /// `Legacy`).
    ///
    /// # Errors
    /// When `name` is not a header name (RFC 9110 §5.1 token).
    pub fn header<F, Fut>(name: &str, check: F) -> Result<Self, BuildError>
    where
        F: Fn(Credential) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = CheckResult> + Send + 'static,
    {
        if !header_name_ok(name) {
            return Err(BuildError::new(format!("{name:?} is not a header name")));
        }
        Ok(Self::with_source(
            Source::Header(name.to_ascii_lowercase().into()),
            Scheme::Other("Legacy"),
            check,
        ))
    }

    /// The name principals carry as their authenticator (default
    /// `"legacy"`); two authenticators of one name count as one kind.
    #[must_use]
    pub fn name(mut self, name: &'static str) -> Self {
        self.name = name;
        self
    }

    /// The scheme of the `WWW-Authenticate` challenge.
    #[must_use]
    pub fn scheme(mut self, scheme: Scheme) -> Self {
        self.scheme = scheme;
        self
    }

    /// The longest one judgement takes, waiting for a slot under the cap
    /// included (default [`DEFAULT_TIMEOUT`], at most [`MAX_TIMEOUT`],
    /// at least 1 ms); past it, 503.
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout.clamp(Duration::from_millis(1), MAX_TIMEOUT);
        self
    }

    /// At most `n` checks run at once (at least 1; default
    /// [`DEFAULT_MAX_CONCURRENT`]). Replaces the cache: set before use.
    #[must_use]
    pub fn max_concurrent(mut self, n: usize) -> Self {
        self.cache = Arc::new(self.cache.with_permits(n));
        self
    }

    /// How long a "yes" is kept (default [`DEFAULT_POSITIVE_TTL`], at most
    /// [`MAX_TTL`]; never past the principal's expiry). Zero keeps none.
    #[must_use]
    pub fn positive_ttl(mut self, ttl: Duration) -> Self {
        self.cache = Arc::new(self.cache.with_ttls(Some(ttl), None));
        self
    }

    /// How long a "no" is kept (default [`DEFAULT_NEGATIVE_TTL`], at most
    /// [`MAX_TTL`]). Zero keeps none.
    #[must_use]
    pub fn negative_ttl(mut self, ttl: Duration) -> Self {
        self.cache = Arc::new(self.cache.with_ttls(None, Some(ttl)));
        self
    }

    /// The most credentials whose "yes" verdicts are kept (default
    /// [`DEFAULT_MAX_ENTRIES`]); "no" verdicts are kept apart, at most 1024
    /// (and at most `n`), the oldest dropped first. When full of live "yes"
    /// verdicts, a new credential's check still runs (under the cap, one
    /// per credential) but is not kept.
    #[must_use]
    pub fn max_entries(mut self, n: usize) -> Self {
        self.cache = Arc::new(self.cache.with_max_entries(n));
        self
    }

    /// `Retry-After` (seconds) of a 503 (default [`DEFAULT_RETRY_AFTER`]).
    #[must_use]
    pub fn retry_after(mut self, seconds: u32) -> Self {
        self.retry_after = seconds;
        self
    }

    /// The clock that principals' expiry is read against.
    #[must_use]
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// The verdict on a request.
    async fn verdict(&self, req: &RequestView<'_>) -> Verdict {
        let credential = match self.source.read(req, self.scheme) {
            Ok(Some(c)) => c,
            Ok(None) => return Verdict::NotMine,
            Err(r) => return Verdict::Refused(r),
        };
        let Some(key) = cache_key(&credential) else {
            tracing::warn!("legacy check skipped: the random generator failed");
            return Verdict::Refused(Refusal::unavailable(
                self.scheme,
                "legacy_unavailable",
                self.retry_after,
            ));
        };
        let name = self.name;
        let check = || {
            let answer = (self.check)(credential);
            // Renamed once, before caching: a hit only clones.
            async move { answer.await.map(|p| p.map(|p| rename(&p, name))) }
        };
        let outcome = self
            .cache
            .get(key, self.timeout, self.clock.as_ref(), check)
            .await;
        match outcome {
            Outcome::Yes(p) => Verdict::Authenticated(p),
            Outcome::No => {
                tracing::debug!(credential = %prefix(&key), "legacy credential refused");
                Verdict::Refused(Refusal::invalid_token(
                    self.scheme,
                    "invalid_credentials",
                    "invalid credentials",
                ))
            }
            Outcome::Failed(kind, reason) => {
                tracing::warn!(
                    credential = %prefix(&key),
                    reason = kind,
                    error = %reason,
                    "legacy check failed"
                );
                Verdict::Refused(Refusal::unavailable(self.scheme, kind, self.retry_after))
            }
        }
    }
}

/// What names a credential in the cache and the logs: its HMAC-SHA256
/// under the per-process key (`None` if no key could be drawn).
fn cache_key(credential: &Credential) -> Option<[u8; 32]> {
    crate::crypto::keyed_digest(&[b"tokenwarden legacy v1\0", &credential.key_material()])
}

/// The first 8 hex digits of a credential's keyed hash: enough to follow one
/// credential through the logs, nothing to find it by.
fn prefix(key: &[u8; 32]) -> String {
    key[..4].iter().map(|b| format!("{b:02x}")).collect()
}

/// The check's principal, vouched for by `name`.
fn rename(p: &Principal, name: &'static str) -> Principal {
    if p.authenticator() == name {
        return p.clone();
    }
    Principal::new(p.subject(), name)
        .with_scopes(p.scopes().iter().cloned())
        .with_roles(p.roles().iter().cloned())
        .with_claims(p.claims().clone())
        .with_expiry(p.expires_at())
}

impl Authenticator for LegacyAuthenticator {
    fn name(&self) -> &'static str {
        self.name
    }

    fn scheme(&self) -> Scheme {
        self.scheme
    }

    fn recognises(&self, req: &RequestView<'_>) -> bool {
        self.source.recognises(req)
    }

    fn authenticate<'a>(&'a self, req: &'a RequestView<'a>) -> BoxFuture<'a, Verdict> {
        Box::pin(self.verdict(req))
    }

    fn location(&self) -> Option<String> {
        // A session cookie and `Basic` credentials are two credentials,
        // even under one name: a request carrying both is refused.
        Some(match &self.source {
            Source::Cookie(name) => format!("cookie:{name}"),
            Source::Basic => "basic".to_owned(),
            Source::Header(name) => format!("header:{}", name.to_ascii_lowercase()),
        })
    }
}

impl Chain {
    /// Adds a legacy credential authenticator.
    #[cfg_attr(docsrs, doc(cfg(feature = "legacy")))]
    #[must_use]
    pub fn legacy(self, authenticator: LegacyAuthenticator) -> Chain {
        self.with_authenticator(authenticator)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Attack: the cache key and the logged prefix of a password must not
    /// be its plain SHA-256, which anyone holding a log line could compare
    /// against the hashes of guessed passwords offline.
    #[test]
    fn the_cache_key_is_keyed_not_a_plain_hash_of_the_credential() {
        let c = Credential::Basic {
            user: "alice".into(),
            password: "hunter2".into(),
        };
        let key = cache_key(&c).expect("a backend is compiled in for tests");
        let plain = crate::crypto::sha256_of(&c.key_material());
        assert_ne!(key, plain);
        assert_ne!(prefix(&key), prefix(&plain));
        // Stable within the process: the cache and single flight work.
        assert_eq!(cache_key(&c), Some(key));
    }
}
