//! Key sets that fetch and refresh themselves (feature `remote`): from a JWKS
//! URL or OIDC / RFC 8414 discovery, refreshed ahead in the background, once
//! on an unknown `kid` under a cooldown, keeping the last good keys when the
//! identity provider fails.
//!
//! Validations read the current keys through an atomic snapshot: no lock, no
//! waiting, whatever the refresher is doing. Only a token with an unknown
//! `kid`, validated with [`Validator::validate_async`](crate::Validator::validate_async),
//! waits, for one refresh shared with every concurrent caller.
//!
//! Fetches go only where the builder allows: https (plain http only to
//! loopback, opted in), and never to a loopback, private, link-local or
//! otherwise non-global address unless
//! [`allow_private_addresses`](RemoteKeySetBuilder::allow_private_addresses)
//! says so. The configured URL, a discovered `jwks_uri` and every redirect
//! are checked; names are checked where they resolve, at connect time.

pub(crate) mod address;
pub(crate) mod fetch;
mod oidc;

use std::collections::hash_map::RandomState;
use std::fmt;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use arc_swap::ArcSwapOption;
use tokio::sync::oneshot;

pub use fetch::{DiscoveryKind, FetchError, FetchErrorKind};
pub use oidc::{OidcBuildError, OidcValidatorBuilder};

/// The `reqwest` this crate fetches with (0.13, rustls), re-exported so that
/// a client for [`http_client`](RemoteKeySetBuilder::http_client) is built
/// with the very version the builder takes, whatever `reqwest` your own
/// `Cargo.toml` names.
///
/// ```no_run
/// use std::time::Duration;
/// use tokenwarden::RemoteKeySet;
/// use tokenwarden::remote::reqwest;
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let client = reqwest::Client::builder()
///     .connect_timeout(Duration::from_secs(1))
///     .proxy(reqwest::Proxy::https("http://proxy.internal:3128")?)
///     .build()?;
/// let keys = RemoteKeySet::builder()
///     .discovery("https://idp.example.com/realms/main")
///     .http_client(client)
///     .build()?;
/// # let _ = keys;
/// # Ok(()) }
/// ```
pub use reqwest;

use address::{GuardedResolver, UrlPolicy, redact};

use crate::clock::{Clock, SystemClock};
use crate::error::{BuildError, Error};
use crate::keys::KeySet;

/// Default refresh interval when the server sends no `Cache-Control: max-age`.
pub const DEFAULT_REFRESH_INTERVAL: Duration = Duration::from_secs(10 * 60);
/// Default lower bound on the refresh interval (also for `max-age`).
pub const DEFAULT_MIN_REFRESH_INTERVAL: Duration = Duration::from_secs(60);
/// Default upper bound on the refresh interval (also for `max-age`).
pub const DEFAULT_MAX_REFRESH_INTERVAL: Duration = Duration::from_secs(24 * 60 * 60);
/// Default least time between two refreshes caused by unknown `kid`s.
pub const DEFAULT_UNKNOWN_KID_COOLDOWN: Duration = Duration::from_secs(30);
/// Default longest time the last good keys are used after fetches fail.
pub const DEFAULT_MAX_STALENESS: Duration = Duration::from_secs(24 * 60 * 60);
/// Default timeout for one request, connect to last byte.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);
/// Default largest response body read.
pub const DEFAULT_MAX_BODY_BYTES: usize = 1024 * 1024;
/// First retry delay after a failed fetch; doubles up to [`MAX_RETRY_DELAY`].
pub const INITIAL_RETRY_DELAY: Duration = Duration::from_secs(1);
/// Longest retry delay after failed fetches.
pub const MAX_RETRY_DELAY: Duration = Duration::from_secs(5 * 60);
/// Most redirects followed by the default client (the README's promise).
pub const MAX_REDIRECTS: usize = 3;
/// Longest delay ever scheduled: a longer setting (`Duration::MAX`) means
/// "as good as never" without overflowing the runtime's clock.
const FAR_FUTURE: Duration = Duration::from_secs(30 * 365 * 24 * 60 * 60);

/// Whole seconds of `d` as an `i64`, saturating: `Duration::MAX` stays the
/// largest value instead of wrapping negative and inverting a comparison.
fn secs_i64(d: Duration) -> i64 {
    i64::try_from(d.as_secs()).unwrap_or(i64::MAX)
}

/// `now + d`, capped at [`FAR_FUTURE`]: never panics, whatever `d`.
fn deadline_after(now: tokio::time::Instant, d: Duration) -> tokio::time::Instant {
    now.checked_add(d.min(FAR_FUTURE))
        .or_else(|| now.checked_add(MAX_RETRY_DELAY))
        .unwrap_or(now)
}

/// A key set fetched from an identity provider and kept fresh.
///
/// Cheap to clone (clones share one key set and one refresher). The refresher
/// is a task on the Tokio runtime that [`build`](RemoteKeySetBuilder::build)
/// ran in; it stops when the last clone (and every validator holding one) is
/// dropped.
///
/// ```no_run
/// use tokenwarden::{RemoteKeySet, Validator};
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let keys = RemoteKeySet::builder()
///     .discovery("https://idp.example.com/realms/main")
///     .build()?;
/// keys.refresh().await?; // optional: wait for the first fetch
/// let validator = Validator::builder()
///     .issuer("https://idp.example.com/realms/main")
///     .audience("orders-api")
///     .keys(keys)
///     .build()?;
/// # let token = "";
/// let claims = validator.validate_async::<serde_json::Value>(token).await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct RemoteKeySet {
    shared: Arc<Shared>,
}

impl fmt::Debug for RemoteKeySet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RemoteKeySet")
            .field("source", &self.shared.source)
            .field("stats", &self.stats())
            .finish()
    }
}

#[derive(Debug, Clone)]
enum Source {
    Jwks(String),
    Discovery { issuer: String, url: String },
}

impl fmt::Display for Source {
    /// The URL without query or userinfo: this is what the logs show.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Jwks(u) => f.write_str(&redact(u)),
            Source::Discovery { url, .. } => f.write_str(&redact(url)),
        }
    }
}

#[derive(Debug, Clone)]
struct Policy {
    refresh_interval: Duration,
    min_refresh_interval: Duration,
    max_refresh_interval: Duration,
    unknown_kid_cooldown: Duration,
    max_staleness: Duration,
    timeout: Duration,
    max_body_bytes: usize,
    allow_http_loopback: bool,
    allow_private_addresses: bool,
}

struct Shared {
    source: Source,
    client: reqwest::Client,
    policy: Policy,
    clock: Arc<dyn Clock>,
    current: ArcSwapOption<KeySet>,
    /// The document `current` was parsed from, when it was fetched.
    document: Mutex<Option<Arc<[u8]>>>,
    /// Unix time of the last successful fetch (or of the bootstrap keys); 0: never.
    last_success: AtomicI64,
    /// Serialises fetches: single flight for unknown kids and the schedule.
    state: tokio::sync::Mutex<FetchState>,
    /// Counts key sets swapped in.
    generation: AtomicU64,
    fetches: AtomicU64,
    failures: AtomicU64,
    unknown_kid_refreshes: AtomicU64,
    last_error: Mutex<Option<FetchError>>,
    /// Counts finished fetches, whatever their outcome: `ready` waits on it
    /// for the refresher's next attempt after a transient failure.
    attempts: tokio::sync::watch::Sender<u64>,
    /// Dropped with `Shared`: tells the refresher to stop.
    _stop: oneshot::Sender<()>,
}

#[derive(Default)]
struct FetchState {
    jwks_uri: Option<String>,
    etag: Option<String>,
    /// By the set's clock, when the next unknown-kid refresh may start: the
    /// cooldown after one that succeeded, the back-off after one that
    /// failed (at most the cooldown), so that a key rotated in during an
    /// outage is fetched once the IdP is back, not a cooldown later.
    unknown_kid_not_before: Option<i64>,
    /// Failed fetches in a row, for the backoff.
    failures_in_row: u32,
    /// When the refresher should fetch next; set by every fetch, whatever
    /// caused it, so forced and unknown-kid fetches push the schedule back.
    next_due: Option<tokio::time::Instant>,
}

/// Counters for a [`RemoteKeySet`], for metrics and health checks.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RemoteStats {
    /// JWKS fetches attempted.
    pub fetches: u64,
    /// Fetches (or discoveries) that failed.
    pub failures: u64,
    /// Refreshes caused by an unknown `kid`.
    pub unknown_kid_refreshes: u64,
    /// Usable keys in the current set.
    pub keys: usize,
    /// Unix time of the last successful fetch (or of the bootstrap keys).
    pub last_success: Option<i64>,
    /// Key sets swapped in so far (bootstrap included).
    pub generation: u64,
}

impl RemoteKeySet {
    /// Starts a builder.
    pub fn builder() -> RemoteKeySetBuilder {
        RemoteKeySetBuilder::default()
    }

    /// Fetches now (sharing a fetch already under way) and swaps the new keys
    /// in. Waiting for this once at start-up makes the first requests see keys.
    ///
    /// # Errors
    /// The [`FetchError`] of this attempt; the last good keys stay in use.
    pub async fn refresh(&self) -> Result<(), FetchError> {
        let mut st = self.shared.state.lock().await;
        self.shared.fetch_locked(&mut st).await.map(|_| ())
    }

    /// Waits until keys are loaded. Returns at once when a set is in force
    /// (bootstrap keys or an earlier fetch); otherwise waits for the fetch
    /// under way (the refresher's first one, at start-up) or makes one. A
    /// misconfiguration ([`FetchError::is_permanent`]: a 404, a body that
    /// is not a key set, a discovery document naming another issuer) ends
    /// the wait at once with an error naming the fix; an outage (connection
    /// refused, a timeout, a 5xx) is retried on the refresher's back-off
    /// until keys come or the builder's
    /// [`timeout`](RemoteKeySetBuilder::timeout) has passed in all,
    /// discovery included. Either way the refresher keeps trying in the
    /// background.
    ///
    /// ```no_run
    /// use tokenwarden::RemoteKeySet;
    ///
    /// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
    /// let keys = RemoteKeySet::builder()
    ///     .discovery("https://idp.example.com/realms/main")
    ///     .build()?;
    /// keys.ready().await?; // the first requests see keys
    /// assert!(keys.current().is_some());
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// The permanent [`FetchError`] met (a discovery document naming
    /// another issuer, a 404, ...); when the time is up, the last transient
    /// failure (an IdP that is down), or one of kind
    /// [`Timeout`](FetchErrorKind::Timeout) when no fetch ended within it.
    pub async fn ready(&self) -> Result<(), FetchError> {
        let s = &self.shared;
        if s.current.load().is_some() {
            return Ok(());
        }
        let timeout = s.policy.timeout.min(FAR_FUTURE);
        let failures = s.failures.load(Ordering::Acquire);
        let mut attempts = s.attempts.subscribe();
        // The last transient failure, for the error when time runs out.
        let mut transient: Option<FetchError> = None;
        let wait = async {
            let mut outcome = {
                let mut st = s.state.lock().await;
                attempts.mark_unchanged();
                if s.current.load().is_some() {
                    return Ok(());
                }
                // A fetch that ended while we waited for the lock is the answer.
                match self.last_error() {
                    Some(e) if s.failures.load(Ordering::Acquire) != failures => Err(e),
                    _ => s.fetch_locked(&mut st).await.map(|_| ()),
                }
            };
            loop {
                match outcome {
                    Ok(()) => return Ok(()),
                    Err(e) if e.is_permanent() => return Err(e),
                    Err(e) => {
                        transient = Some(e.clone());
                        // The refresher tries again after its back-off:
                        // that attempt's outcome is the next answer.
                        if attempts.changed().await.is_err() {
                            return Err(e);
                        }
                        if s.current.load().is_some() {
                            return Ok(());
                        }
                        outcome = self.last_error().map_or(Ok(()), Err);
                    }
                }
            }
        };
        let result = tokio::time::timeout(timeout, wait).await;
        match result {
            Ok(result) => result,
            Err(_) => Err(match transient {
                Some(e) => FetchError::new(
                    e.kind(),
                    format!(
                        "no keys from {} within {} ms; the last attempt: {e}",
                        s.source,
                        timeout.as_millis()
                    ),
                ),
                None => FetchError::new(
                    FetchErrorKind::Timeout,
                    format!(
                        "no keys from {} within {} ms",
                        s.source,
                        timeout.as_millis()
                    ),
                ),
            }),
        }
    }

    /// The counters.
    pub fn stats(&self) -> RemoteStats {
        let s = &self.shared;
        let last = s.last_success.load(Ordering::Relaxed);
        RemoteStats {
            fetches: s.fetches.load(Ordering::Relaxed),
            failures: s.failures.load(Ordering::Relaxed),
            unknown_kid_refreshes: s.unknown_kid_refreshes.load(Ordering::Relaxed),
            keys: s.current.load().as_ref().map_or(0, |k| k.len()),
            last_success: (last != 0).then_some(last),
            generation: s.generation.load(Ordering::Relaxed),
        }
    }

    /// The last fetch failure, if the last fetch failed.
    pub fn last_error(&self) -> Option<FetchError> {
        self.shared.last_error.lock().map_or(None, |e| e.clone())
    }

    /// The keys in force now, if any.
    pub fn current(&self) -> Option<Arc<KeySet>> {
        self.shared.current.load_full()
    }

    /// Whether a validation would find keys here now: a set has been
    /// loaded, it has at least one usable key, and it is not older than
    /// [`max_staleness`](RemoteKeySetBuilder::max_staleness) by this set's
    /// clock. For readiness checks.
    pub fn is_usable(&self) -> bool {
        self.shared
            .snapshot()
            .is_ok_and(|keys| keys.as_ref().is_some_and(|k| !k.is_empty()))
    }

    /// The JWK Set document the keys in force were parsed from, byte for
    /// byte as the IdP served it; `None` until a fetch succeeds (bootstrap
    /// keys are yours already). Save it where the next cold start can read
    /// it and hand it back through
    /// [`bootstrap`](RemoteKeySetBuilder::bootstrap): that start then
    /// validates at once, even with the IdP slow or down, while the refresh
    /// runs in the background.
    ///
    /// ```no_run
    /// use tokenwarden::{KeySet, RemoteKeySet};
    ///
    /// # async fn f() -> Result<(), Box<dyn std::error::Error>> {
    /// let saved = "/tmp/jwks.json";
    /// let mut builder = RemoteKeySet::builder().discovery("https://idp.example.com");
    /// if let Ok(bytes) = std::fs::read(saved) {
    ///     builder = builder.bootstrap(KeySet::from_jwks(&bytes)?);
    /// }
    /// let keys = builder.build()?;
    /// // ... later, once a fetch has succeeded:
    /// if let Some(doc) = keys.jwks_document() {
    ///     std::fs::write(saved, &*doc)?;
    /// }
    /// # Ok(()) }
    /// ```
    pub fn jwks_document(&self) -> Option<Arc<[u8]>> {
        self.shared.document.lock().ok()?.clone()
    }

    pub(crate) fn snapshot(&self) -> Result<arc_swap::Guard<Option<Arc<KeySet>>>, Error> {
        self.shared.snapshot()
    }

    pub(crate) async fn refresh_for_unknown_kid(&self, kid: &str) -> bool {
        self.shared.refresh_for_unknown_kid(kid).await
    }
}

impl Shared {
    /// The keys for one validation: no lock, one atomic load.
    fn snapshot(&self) -> Result<arc_swap::Guard<Option<Arc<KeySet>>>, Error> {
        let guard = self.current.load();
        if guard.is_none() {
            return Err(Error::KeysUnavailable {
                reason: format!("no key set has been fetched yet from {}", self.source).into(),
            });
        }
        let last = self.last_success.load(Ordering::Relaxed);
        let age = self.clock.now().saturating_sub(last);
        if age > secs_i64(self.policy.max_staleness) {
            return Err(Error::KeysUnavailable {
                reason: format!(
                    "keys from {} are {age} s old, past the allowed staleness of {} s",
                    self.source,
                    self.policy.max_staleness.as_secs()
                )
                .into(),
            });
        }
        Ok(guard)
    }

    fn knows(&self, kid: &str) -> bool {
        self.current
            .load()
            .as_ref()
            .is_some_and(|k| k.contains_kid(kid))
    }

    /// One refresh for an unknown `kid`: shared by concurrent callers, at
    /// most one per cooldown. True when the kid is now known.
    async fn refresh_for_unknown_kid(&self, kid: &str) -> bool {
        // The keys may have changed since the caller looked them up.
        if self.knows(kid) {
            return true;
        }
        let seen = self.generation.load(Ordering::Acquire);
        let mut st = self.state.lock().await;
        if self.generation.load(Ordering::Acquire) != seen || self.knows(kid) {
            // Someone refreshed while we waited: their keys answer us too.
            return self.knows(kid);
        }
        let now = self.clock.now();
        if st.unknown_kid_not_before.is_some_and(|t| now < t) {
            tracing::debug!(kid, source = %self.source, "unknown kid; refresh cooling down");
            return false;
        }
        self.unknown_kid_refreshes.fetch_add(1, Ordering::Relaxed);
        tracing::info!(kid, source = %self.source, "unknown kid; refreshing keys");
        let ok = self.fetch_locked(&mut st).await.is_ok();
        let cooldown = secs_i64(self.policy.unknown_kid_cooldown);
        // A failed fetch spent no cooldown on keys: the next unknown kid
        // may try again after the back-off the refresher uses (it retries
        // on that schedule too), never sooner, so a flood of random kids
        // during an outage still costs one fetch per back-off step.
        let wait = if ok {
            cooldown
        } else {
            secs_i64(self.policy.delay(None, st.failures_in_row))
                .max(1)
                .min(cooldown)
        };
        st.unknown_kid_not_before = Some(now.saturating_add(wait));
        ok && self.knows(kid)
    }

    /// Fetches (discovering the JWKS URL first if needed) and swaps the keys
    /// in. Returns the server's `max-age`, if any.
    async fn fetch_locked(&self, st: &mut FetchState) -> Result<Option<Duration>, FetchError> {
        let result = self.fetch_inner(st).await;
        st.failures_in_row = if result.is_ok() {
            0
        } else {
            st.failures_in_row.saturating_add(1)
        };
        st.next_due = Some(deadline_after(
            tokio::time::Instant::now(),
            self.next_delay(&result, st.failures_in_row),
        ));
        match &result {
            Ok(_) => {
                self.last_success.store(self.clock.now(), Ordering::Relaxed);
                if let Ok(mut e) = self.last_error.lock() {
                    *e = None;
                }
            }
            Err(e) => {
                self.failures.fetch_add(1, Ordering::Relaxed);
                crate::metrics::key_fetch_failure(&self.source);
                self.log_failure(e, st.failures_in_row);
                if matches!(self.source, Source::Discovery { .. }) {
                    // The JWKS may have moved: discover again next time.
                    st.jwks_uri = None;
                }
                if let Ok(mut last) = self.last_error.lock() {
                    *last = Some(e.clone());
                }
            }
        }
        self.attempts.send_modify(|n| *n = n.wrapping_add(1));
        result
    }

    /// Logs a failed fetch as an operator needs it: a misconfiguration at
    /// error, with its fix (in the message); an outage at warn. Says
    /// whether last good keys are in use, and never claims keys that were
    /// never loaded.
    fn log_failure(&self, e: &FetchError, failures_in_row: u32) {
        let retry_s = self.policy.delay(None, failures_in_row).as_secs();
        let keys = self.current.load().as_ref().map_or(0, |k| k.len());
        let permanent = e.is_permanent();
        match (permanent, keys) {
            (true, 0) => tracing::error!(
                source = %self.source, error = %e, retry_s,
                "key set fetch failed: a configuration error, not an outage; no keys are loaded, \
                 so validations answer keys_unavailable (503)"
            ),
            (true, _) => tracing::error!(
                source = %self.source, error = %e, retry_s, keys,
                "key set fetch failed: a configuration error, not an outage; keeping the last good keys"
            ),
            (false, 0) => tracing::warn!(
                source = %self.source, error = %e, retry_s,
                "key set fetch failed; no keys are loaded yet, so validations answer \
                 keys_unavailable (503) until a fetch succeeds"
            ),
            (false, _) => tracing::warn!(
                source = %self.source, error = %e, retry_s, keys,
                "key set fetch failed; keeping the last good keys"
            ),
        }
    }

    async fn fetch_inner(&self, st: &mut FetchState) -> Result<Option<Duration>, FetchError> {
        let p = &self.policy;
        let jwks_uri = match (&self.source, &st.jwks_uri) {
            (Source::Jwks(url), _) => url.clone(),
            (Source::Discovery { .. }, Some(url)) => url.clone(),
            (Source::Discovery { issuer, url }, None) => {
                tracing::debug!(url = %redact(url), "fetching discovery document");
                let found = fetch::discover(&self.client, url, issuer, p.limits()).await?;
                st.jwks_uri = Some(found.clone());
                st.etag = None;
                found
            }
        };
        self.fetches.fetch_add(1, Ordering::Relaxed);
        crate::metrics::key_fetch(&self.source);
        let shown = redact(&jwks_uri);
        tracing::debug!(url = %shown, "fetching key set");
        match fetch::jwks(&self.client, &jwks_uri, p.limits(), st.etag.as_deref()).await? {
            fetch::Fetched::NotModified { max_age } => {
                tracing::debug!(url = %shown, "key set not modified");
                Ok(max_age)
            }
            fetch::Fetched::New {
                value: (value, document),
                etag,
                max_age,
            } => {
                tracing::debug!(url = %shown, keys = value.len(), "key set fetched");
                self.log_rotation(&value, &shown);
                if let Ok(mut d) = self.document.lock() {
                    *d = Some(document);
                }
                self.current.store(Some(Arc::new(value)));
                self.generation.fetch_add(1, Ordering::AcqRel);
                st.etag = etag;
                Ok(max_age)
            }
        }
    }

    fn log_rotation(&self, new: &KeySet, url: &str) {
        let old = self.current.load();
        let old_kids: Vec<&str> = old.as_ref().map_or_else(Vec::new, |k| k.kids().collect());
        let new_kids: Vec<&str> = new.kids().collect();
        let added: Vec<&&str> = new_kids.iter().filter(|k| !old_kids.contains(k)).collect();
        let removed: Vec<&&str> = old_kids.iter().filter(|k| !new_kids.contains(k)).collect();
        if !added.is_empty() || !removed.is_empty() {
            tracing::info!(%url, ?added, ?removed, keys = new.len(), "key set rotated");
        }
        for s in new.skipped() {
            tracing::debug!(%url, kid = ?s.kid, reason = %s.reason, "key skipped");
        }
    }

    fn next_delay(
        &self,
        outcome: &Result<Option<Duration>, FetchError>,
        failures: u32,
    ) -> Duration {
        jitter(self.policy.delay(outcome.as_ref().ok().copied(), failures))
    }
}

impl Policy {
    fn url_policy(&self) -> UrlPolicy {
        UrlPolicy {
            allow_http_loopback: self.allow_http_loopback,
            allow_private: self.allow_private_addresses,
        }
    }

    fn limits(&self) -> fetch::Limits {
        fetch::Limits {
            timeout: self.timeout,
            max_bytes: self.max_body_bytes,
            policy: self.url_policy(),
        }
    }

    /// How long to wait before the next scheduled fetch, before jitter:
    /// after a success, the server's `max-age` (or the default interval)
    /// clamped to the bounds; after `failures` failures in a row, a delay
    /// doubling from [`INITIAL_RETRY_DELAY`] to [`MAX_RETRY_DELAY`].
    fn delay(&self, success: Option<Option<Duration>>, failures: u32) -> Duration {
        match success {
            Some(max_age) => max_age
                .unwrap_or(self.refresh_interval)
                .clamp(self.min_refresh_interval, self.max_refresh_interval),
            None => INITIAL_RETRY_DELAY
                .saturating_mul(1u32 << failures.saturating_sub(1).min(16))
                .min(MAX_RETRY_DELAY),
        }
    }
}

/// Up to 10% less than `d`, so that many instances do not refresh in step.
fn jitter(d: Duration) -> Duration {
    let r = RandomState::new().build_hasher().finish();
    let tenth = d / 10;
    let nanos = u64::try_from(tenth.as_nanos()).unwrap_or(u64::MAX);
    d - Duration::from_nanos(if nanos == 0 { 0 } else { r % nanos })
}

/// The background refresher: fetches when due (at once at start), sleeps
/// until the next due time otherwise. Holds only a weak reference while
/// asleep, and stops when the key set is dropped.
async fn refresher(weak: Weak<Shared>, mut stop: oneshot::Receiver<()>) {
    loop {
        let due = {
            let Some(shared) = weak.upgrade() else { return };
            let mut st = shared.state.lock().await;
            if st.next_due.is_none_or(|t| t <= tokio::time::Instant::now()) {
                // The outcome is logged, counted and scheduled by fetch_locked.
                let _ = shared.fetch_locked(&mut st).await;
            }
            st.next_due
                .unwrap_or_else(|| deadline_after(tokio::time::Instant::now(), INITIAL_RETRY_DELAY))
        };
        tokio::select! {
            () = tokio::time::sleep_until(due) => {}
            _ = &mut stop => return,
        }
    }
}

/// Configures a [`RemoteKeySet`].
#[must_use]
#[derive(Debug)]
pub struct RemoteKeySetBuilder {
    source: Option<Result<Source, String>>,
    discovery_url: Option<String>,
    client: Option<reqwest::Client>,
    bootstrap: Option<KeySet>,
    policy: Policy,
    clock: Arc<dyn Clock>,
}

impl Default for RemoteKeySetBuilder {
    fn default() -> Self {
        RemoteKeySetBuilder {
            source: None,
            discovery_url: None,
            client: None,
            bootstrap: None,
            policy: Policy {
                refresh_interval: DEFAULT_REFRESH_INTERVAL,
                min_refresh_interval: DEFAULT_MIN_REFRESH_INTERVAL,
                max_refresh_interval: DEFAULT_MAX_REFRESH_INTERVAL,
                unknown_kid_cooldown: DEFAULT_UNKNOWN_KID_COOLDOWN,
                max_staleness: DEFAULT_MAX_STALENESS,
                timeout: DEFAULT_TIMEOUT,
                max_body_bytes: DEFAULT_MAX_BODY_BYTES,
                allow_http_loopback: false,
                allow_private_addresses: false,
            },
            clock: Arc::new(SystemClock),
        }
    }
}

impl RemoteKeySetBuilder {
    /// Fetch the JWK Set at `url` (https).
    pub fn jwks_url(mut self, url: impl Into<String>) -> Self {
        self.source = Some(Ok(Source::Jwks(url.into())));
        self
    }

    /// Discover the JWK Set URL from `issuer`'s OpenID Connect discovery
    /// document (`<issuer>/.well-known/openid-configuration`). The document's
    /// `issuer` must equal `issuer` exactly.
    pub fn discovery(self, issuer: impl Into<String>) -> Self {
        self.discovery_kind(issuer, DiscoveryKind::OpenIdConnect)
    }

    /// Fetches the discovery document from `url` instead of the issuer's
    /// well-known address: an identity provider reached through an internal
    /// name while its tokens carry the public issuer (Keycloak or Auth0
    /// behind a service name). The document's `issuer` must still equal the
    /// issuer given to [`discovery`](Self::discovery), and its `jwks_uri`
    /// is fetched as the document names it (under the same URL policy).
    /// Needs `discovery` ([`build`](Self::build) refuses it otherwise).
    ///
    /// ```no_run
    /// use tokenwarden::RemoteKeySet;
    ///
    /// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
    /// let keys = RemoteKeySet::builder()
    ///     .discovery("https://login.example.com/realms/main")
    ///     .discovery_url("https://keycloak.internal/realms/main/.well-known/openid-configuration")
    ///     .allow_private_addresses(true)
    ///     .build()?;
    /// keys.ready().await?;
    /// # Ok(()) }
    /// ```
    pub fn discovery_url(mut self, url: impl Into<String>) -> Self {
        self.discovery_url = Some(url.into());
        self
    }

    /// Like [`discovery`](Self::discovery), choosing OIDC or RFC 8414.
    pub fn discovery_kind(mut self, issuer: impl Into<String>, kind: DiscoveryKind) -> Self {
        let issuer = issuer.into();
        self.source =
            Some(fetch::discovery_url(&issuer, kind).map(|url| Source::Discovery { issuer, url }));
        self
    }

    /// The HTTP client for fetches: your proxy, CA roots, and so on. Its own
    /// redirect policy and resolver apply: the address filter then sees only
    /// IP-literal URLs, not names or redirects, so give such a client a
    /// proxy or network policy that keeps it off internal addresses.
    /// Default: a client with a 2 s connect timeout, at most
    /// [`MAX_REDIRECTS`] redirects, each re-checked, https only (http to
    /// loopback if allowed), no proxy from the environment, and every
    /// resolved address checked before connecting (see
    /// [`allow_private_addresses`](Self::allow_private_addresses)).
    pub fn http_client(mut self, client: reqwest::Client) -> Self {
        self.client = Some(client);
        self
    }

    /// Keys to use until the first fetch succeeds, so a cold start never
    /// waits on the network (serverless).
    pub fn bootstrap(mut self, keys: KeySet) -> Self {
        self.bootstrap = Some(keys);
        self
    }

    /// Refresh interval when the server sends no `Cache-Control: max-age`
    /// (default 10 min, like jose and Envoy).
    pub fn refresh_interval(mut self, d: Duration) -> Self {
        self.policy.refresh_interval = d;
        self
    }

    /// Bounds on the refresh interval, `max-age` included (default 1 min to 24 h).
    pub fn refresh_interval_bounds(mut self, min: Duration, max: Duration) -> Self {
        self.policy.min_refresh_interval = min;
        self.policy.max_refresh_interval = max;
        self
    }

    /// Least time between refreshes caused by unknown `kid`s (default 30 s,
    /// like jose): a flood of random kids costs at most one fetch per window.
    pub fn unknown_kid_cooldown(mut self, d: Duration) -> Self {
        self.policy.unknown_kid_cooldown = d;
        self
    }

    /// How long the last good keys keep being used while fetches fail
    /// (default 24 h); after that validations fail with `keys_unavailable`.
    pub fn max_staleness(mut self, d: Duration) -> Self {
        self.policy.max_staleness = d;
        self
    }

    /// Timeout for one request, connect to last byte (default 5 s).
    pub fn timeout(mut self, d: Duration) -> Self {
        self.policy.timeout = d;
        self
    }

    /// Largest response body read (default 1 MiB).
    pub fn max_body_bytes(mut self, n: usize) -> Self {
        self.policy.max_body_bytes = n;
        self
    }

    /// Allows plain http to loopback addresses (127.0.0.0/8, ::1,
    /// localhost), for tests and local development. Never other hosts.
    /// Implies that loopback addresses may be connected to at all.
    pub fn allow_http_loopback(mut self, allow: bool) -> Self {
        self.policy.allow_http_loopback = allow;
        self
    }

    /// Allows connecting to addresses that are not global unicast: loopback,
    /// private (RFC 1918, fc00::/7), link-local (169.254.0.0/16, fe80::/10,
    /// where cloud metadata services live), shared, unspecified and
    /// reserved ones. Default `false`: a discovered `jwks_uri`, a redirect,
    /// or a name that resolves to such an address is refused before any
    /// connection (SSRF), checked at connect time so that a DNS answer that
    /// changes after a check (rebinding) is caught too. Turn it on when the
    /// identity provider itself lives on a private network. It never allows
    /// plain http.
    pub fn allow_private_addresses(mut self, allow: bool) -> Self {
        self.policy.allow_private_addresses = allow;
        self
    }

    /// The clock for staleness and the unknown-kid cooldown (default: system).
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// Builds the key set and starts its refresher, which fetches at once.
    /// Must be called within a Tokio runtime.
    ///
    /// # Errors
    /// [`BuildError`] for a missing or refused URL, bad bounds, or no runtime.
    pub fn build(self) -> Result<RemoteKeySet, BuildError> {
        let mut source = self
            .source
            .ok_or_else(|| BuildError::new("no source: call jwks_url() or discovery()"))?
            .map_err(BuildError::new)?;
        match (&mut source, self.discovery_url) {
            (Source::Discovery { url, .. }, Some(at)) => *url = at,
            (Source::Jwks(_), Some(_)) => {
                return Err(BuildError::new(
                    "discovery_url() needs discovery(issuer), not jwks_url()",
                ));
            }
            (_, None) => {}
        }
        let p = &self.policy;
        let check = |u: &str| fetch::check_url(u, p.url_policy()).map_err(BuildError::new);
        match &source {
            Source::Jwks(u) => check(u)?,
            Source::Discovery { url, .. } => check(url)?,
        };
        if p.min_refresh_interval > p.max_refresh_interval || p.min_refresh_interval.is_zero() {
            return Err(BuildError::new(
                "refresh interval bounds: min must be > 0 and <= max",
            ));
        }
        if p.timeout.is_zero() || p.max_body_bytes == 0 {
            return Err(BuildError::new("timeout and max_body_bytes must be > 0"));
        }
        let handle = tokio::runtime::Handle::try_current()
            .map_err(|_| BuildError::new("RemoteKeySet::build must run inside a Tokio runtime"))?;
        let client = match self.client {
            Some(c) => c,
            None => default_client(p.url_policy())?,
        };
        let (stop_tx, stop_rx) = oneshot::channel();
        let bootstrap = self.bootstrap.map(Arc::new);
        let now = self.clock.now();
        let shared = Arc::new(Shared {
            source,
            client,
            policy: self.policy,
            last_success: AtomicI64::new(if bootstrap.is_some() { now } else { 0 }),
            generation: AtomicU64::new(u64::from(bootstrap.is_some())),
            current: ArcSwapOption::new(bootstrap),
            document: Mutex::new(None),
            clock: self.clock,
            state: tokio::sync::Mutex::new(FetchState::default()),
            fetches: AtomicU64::new(0),
            failures: AtomicU64::new(0),
            unknown_kid_refreshes: AtomicU64::new(0),
            last_error: Mutex::new(None),
            attempts: tokio::sync::watch::Sender::new(0),
            _stop: stop_tx,
        });
        handle.spawn(refresher(Arc::downgrade(&shared), stop_rx));
        Ok(RemoteKeySet { shared })
    }
}

fn default_client(policy: UrlPolicy) -> Result<reqwest::Client, BuildError> {
    let redirects = reqwest::redirect::Policy::custom(move |attempt| {
        // `previous()` holds the original URL and every earlier hop: when
        // deciding on the Nth redirect it has N entries.
        if attempt.previous().len() > MAX_REDIRECTS {
            attempt.error("more than 3 redirects")
        } else if let Err(e) = fetch::check_url(attempt.url().as_str(), policy) {
            attempt.error(format!("redirect to a URL that is not allowed: {e}"))
        } else {
            attempt.follow()
        }
    });
    reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(2))
        .redirect(redirects)
        // A proxy would resolve and connect on our behalf, out of reach of
        // the address filter; a caller who needs one passes its own client.
        .no_proxy()
        .dns_resolver(GuardedResolver(policy))
        .user_agent(concat!("tokenwarden/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| BuildError::new(format!("HTTP client: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> Policy {
        RemoteKeySetBuilder::default().policy
    }

    #[test]
    fn max_age_is_honoured_within_bounds() {
        let p = policy();
        let secs = |d: Duration| d.as_secs();
        assert_eq!(secs(p.delay(Some(None), 0)), 600, "default interval");
        assert_eq!(
            secs(p.delay(Some(Some(Duration::from_secs(3600))), 0)),
            3600
        );
        assert_eq!(
            secs(p.delay(Some(Some(Duration::ZERO)), 0)),
            60,
            "no-store clamped up"
        );
        assert_eq!(
            secs(p.delay(Some(Some(Duration::from_secs(999_999))), 0)),
            86_400
        );
    }

    #[test]
    fn failures_back_off_exponentially_to_a_cap() {
        let p = policy();
        let secs: Vec<u64> = (1..=12).map(|n| p.delay(None, n).as_secs()).collect();
        assert_eq!(secs, [1, 2, 4, 8, 16, 32, 64, 128, 256, 300, 300, 300]);
    }

    /// `Duration::MAX` as a setting: no wrap to a negative number of
    /// seconds, no overflow of the runtime's clock.
    #[test]
    fn duration_max_saturates_instead_of_wrapping_or_panicking() {
        assert_eq!(secs_i64(Duration::MAX), i64::MAX);
        assert_eq!(secs_i64(Duration::from_secs(30)), 30);
        let now = tokio::time::Instant::now();
        assert!(deadline_after(now, Duration::MAX) >= now + FAR_FUTURE);
        let mut p = policy();
        p.refresh_interval = Duration::MAX;
        p.max_refresh_interval = Duration::MAX;
        assert_eq!(p.delay(Some(None), 0), Duration::MAX);
        assert!(jitter(Duration::MAX) >= Duration::MAX - Duration::MAX / 10);
    }

    #[test]
    fn jitter_only_shortens_by_at_most_a_tenth() {
        for _ in 0..100 {
            let d = jitter(Duration::from_secs(100));
            assert!(d <= Duration::from_secs(100) && d >= Duration::from_secs(90));
        }
    }
}
