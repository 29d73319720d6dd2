//! Tokens for the calls a service makes (feature `outgoing`): a
//! [`TokenSource`] that gets them from the identity provider's token
//! endpoint — by client credentials (RFC 6749 §4.4), or by token exchange
//! (RFC 8693) of the token a request came with, for another audience and
//! fewer scopes — caches them until near expiry, refreshes them ahead in
//! the background with one request in flight per cache key; a tower
//! [`BearerLayer`] for outgoing HTTP clients and a reqwest helper
//! ([`TokenSource::authorize`]) that attach them.
//!
//! Tokens, subject tokens and the client's secret are never logged, never
//! in a `Debug` output, never in an error: the cache keys a subject token
//! by its SHA-256.
//!
//! ```no_run
//! use tokenwarden::outgoing::{TokenRequest, TokenSource};
//!
//! # async fn run(incoming_token: &str) -> Result<(), Box<dyn std::error::Error>> {
//! let source = TokenSource::builder("https://idp.example.com/oauth2/token")
//!     .client("orders-service", "s3cret")
//!     .build()?;
//! // Service to service, as itself:
//! let own = source.token(&TokenRequest::new().audience("billing").scope("invoices:read")).await?;
//! // On behalf of the caller, downscoped for the next hop:
//! let delegated = source
//!     .token(&TokenRequest::exchange(incoming_token).audience("billing").scope("invoices:read"))
//!     .await?;
//! # let _ = (own, delegated);
//! # Ok(()) }
//! ```

mod error;
mod http;
mod layer;

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::sync::watch;

pub use error::{TokenError, TokenErrorKind};
pub use http::ClientAuth;
pub use layer::{AttachToken, BearerLayer, BoxError, SubjectToken};

use crate::clock::{Clock, SystemClock};
use crate::error::BuildError;
use crate::remote::address::{UrlPolicy, redact};
use http::Limits;

/// The token exchange grant (RFC 8693 §2.1).
const GRANT_TOKEN_EXCHANGE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
/// RFC 8693 §3: the subject token is an OAuth 2.0 access token.
const TOKEN_TYPE_ACCESS_TOKEN: &str = "urn:ietf:params:oauth:token-type:access_token";

/// Default share of a token's life after which it is refreshed ahead (80%).
pub const DEFAULT_REFRESH_PERCENT: u8 = 80;
/// Default time before expiry when a cached token is no longer handed out.
pub const DEFAULT_EXPIRY_MARGIN: Duration = Duration::from_secs(10);
/// Default most cached tokens (one per subject, audience and scope).
pub const DEFAULT_MAX_ENTRIES: usize = 1024;
/// Default timeout for one token request, connect to last byte.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);
/// Default largest token response read.
pub const DEFAULT_MAX_BODY_BYTES: usize = 64 * 1024;
/// Life assumed for a token whose response has no `expires_in`.
pub const DEFAULT_LIFETIME: Duration = Duration::from_secs(60);
/// Longest timeout for one token request (`Duration::MAX` included).
pub const MAX_TIMEOUT: Duration = Duration::from_secs(60);
/// Longest `expires_in` believed: one year (an endpoint's larger value,
/// up to `i64::MAX`, is clamped to it).
const MAX_LIFETIME: i64 = 365 * 24 * 60 * 60;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// What to ask the token endpoint for: by client credentials
/// ([`new`](Self::new)) or by exchanging a subject token
/// ([`exchange`](Self::exchange)); for an audience or resource, with
/// scopes. Its `Debug` never shows the subject token.
///
/// ```
/// use tokenwarden::outgoing::TokenRequest;
///
/// let own = TokenRequest::new().audience("billing").scope("invoices:read invoices:write");
/// let delegated = TokenRequest::exchange("eyJ...").audience("billing").scope("invoices:read");
/// assert!(!own.is_exchange() && delegated.is_exchange());
/// assert!(!format!("{delegated:?}").contains("eyJ"));
/// ```
#[derive(Clone, Default, PartialEq, Eq)]
#[must_use]
pub struct TokenRequest {
    subject: Option<Arc<str>>,
    audience: Option<String>,
    resource: Option<String>,
    /// Sorted, each once: `"a b"` and `"b a"` share a cache entry.
    scope: Vec<String>,
}

impl fmt::Debug for TokenRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenRequest")
            .field("exchange", &self.subject.is_some())
            .field("audience", &self.audience)
            .field("resource", &self.resource)
            .field("scope", &self.scope)
            .finish()
    }
}

impl TokenRequest {
    /// A client credentials request (RFC 6749 §4.4): the service as itself.
    pub fn new() -> Self {
        TokenRequest::default()
    }

    /// A token exchange request (RFC 8693 §2.1) of `subject_token`, an
    /// access token the service received: the token issued names the same
    /// subject, and this service as its actor.
    ///
    /// Revocation reaches the token issued only through what it carries:
    /// configure the identity provider to copy the subject token's `sid`
    /// (as the `testing` feature's `TestIssuer` does), so a session's
    /// back-channel logout refuses it downstream, or revoke by subject
    /// ([`BackchannelLogoutBuilder::revoke_subject_with_session`](crate::logout::BackchannelLogoutBuilder::revoke_subject_with_session)).
    /// The token is cached per subject token (by digest), so a new
    /// session never receives one exchanged for an old one.
    pub fn exchange(subject_token: impl Into<String>) -> Self {
        TokenRequest::new().subject_token(subject_token)
    }

    /// Makes this a token exchange of `subject_token`.
    pub fn subject_token(mut self, subject_token: impl Into<String>) -> Self {
        self.subject = Some(subject_token.into().into());
        self
    }

    /// The `audience` the token is for (RFC 8693 §2.1; many identity
    /// providers take it with client credentials too).
    pub fn audience(mut self, audience: impl Into<String>) -> Self {
        self.audience = Some(audience.into());
        self
    }

    /// The `resource` the token is for (RFC 8707, RFC 8693 §2.1).
    pub fn resource(mut self, resource: impl Into<String>) -> Self {
        self.resource = Some(resource.into());
        self
    }

    /// The scopes asked for, space-separated (added to earlier ones). For
    /// an exchange, fewer than the subject token's: downscoped for the
    /// next hop.
    pub fn scope(mut self, scope: &str) -> Self {
        self.scope.extend(
            scope
                .split(' ')
                .filter(|s| !s.is_empty())
                .map(str::to_owned),
        );
        self.scope.sort();
        self.scope.dedup();
        self
    }

    /// Whether this is a token exchange.
    pub fn is_exchange(&self) -> bool {
        self.subject.is_some()
    }

    /// The cache key: the subject token by its digest, never itself.
    fn key(&self) -> Key {
        Key {
            subject: self
                .subject
                .as_deref()
                .map(|s| crate::crypto::sha256_of(s.as_bytes())),
            audience: self.audience.clone(),
            resource: self.resource.clone(),
            scope: self.scope.join(" "),
        }
    }

    /// The form for the token endpoint.
    fn form(&self) -> Vec<(&str, &str)> {
        let mut form = Vec::with_capacity(6);
        match &self.subject {
            Some(subject) => {
                form.push(("grant_type", GRANT_TOKEN_EXCHANGE));
                form.push(("subject_token", &**subject));
                form.push(("subject_token_type", TOKEN_TYPE_ACCESS_TOKEN));
                form.push(("requested_token_type", TOKEN_TYPE_ACCESS_TOKEN));
            }
            None => form.push(("grant_type", "client_credentials")),
        }
        if let Some(a) = &self.audience {
            form.push(("audience", a));
        }
        if let Some(r) = &self.resource {
            form.push(("resource", r));
        }
        form
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Key {
    subject: Option<[u8; 32]>,
    audience: Option<String>,
    resource: Option<String>,
    scope: String,
}

/// An access token from the token endpoint. Its `Debug` shows when it
/// expires, never the token.
#[derive(Clone, PartialEq, Eq)]
pub struct AccessToken {
    token: Arc<str>,
    expires_at: i64,
    scope: Option<Arc<str>>,
}

impl fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AccessToken")
            .field("expires_at", &self.expires_at)
            .field("scope", &self.scope)
            .finish_non_exhaustive()
    }
}

impl AccessToken {
    /// The token, to send as `Authorization: Bearer <token>`.
    pub fn secret(&self) -> &str {
        &self.token
    }

    /// When it expires (Unix seconds, by the source's clock).
    pub fn expires_at(&self) -> i64 {
        self.expires_at
    }

    /// The scopes granted, when the endpoint said (RFC 6749 §5.1).
    pub fn scope(&self) -> Option<&str> {
        self.scope.as_deref()
    }
}

/// A cached token and when to refresh it.
#[derive(Clone)]
struct Cached {
    token: AccessToken,
    /// From then on, a request refreshes it in the background.
    refresh_at: i64,
    /// From then on, it is not handed out.
    stale_at: i64,
}

type Outcome = Option<Result<AccessToken, TokenError>>;

#[derive(Default)]
struct Slot {
    cached: Option<Cached>,
    /// The one request in flight for this key, if any.
    inflight: Option<watch::Receiver<Outcome>>,
}

/// Requests made and their outcomes, for tests and dashboards.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct TokenSourceStats {
    /// Requests sent to the token endpoint.
    pub requests: u64,
    /// Of which failed.
    pub failures: u64,
    /// Tokens handed out from the cache.
    pub hits: u64,
    /// Tokens cached now.
    pub entries: usize,
}

struct Inner {
    endpoint: String,
    client_id: String,
    secret: String,
    auth: ClientAuth,
    http: reqwest::Client,
    limits: Limits,
    clock: Arc<dyn Clock>,
    refresh_percent: u8,
    expiry_margin: i64,
    max_entries: usize,
    slots: Mutex<HashMap<Key, Slot>>,
    requests: AtomicU64,
    failures: AtomicU64,
    hits: AtomicU64,
}

/// Gets access tokens from a token endpoint and keeps them: cached per
/// (subject token, audience or resource, scope) until near expiry,
/// refreshed ahead in the background once
/// [`refresh_percent`](TokenSourceBuilder::refresh_percent) of their life
/// has passed, one request in flight per key however many callers ask at
/// once, at most [`max_entries`](TokenSourceBuilder::max_entries) kept.
///
/// Cheap to clone (clones share the cache). Needs a Tokio runtime: a
/// token request runs as a task, so a caller that gives up does not cancel
/// it for the others waiting.
///
/// ```no_run
/// use tokenwarden::outgoing::{ClientAuth, TokenRequest, TokenSource};
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let source = TokenSource::builder("https://idp.example.com/oauth2/token")
///     .client("orders-service", "s3cret")
///     .client_auth(ClientAuth::SecretPost)
///     .build()?;
/// let token = source.token(&TokenRequest::new().audience("billing")).await?;
/// let resp = reqwest::Client::new()
///     .get("https://billing.internal/invoices")
///     .bearer_auth(token.secret())
///     .send()
///     .await?;
/// # let _ = resp;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct TokenSource {
    inner: Arc<Inner>,
}

impl fmt::Debug for TokenSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenSource")
            .field("endpoint", &redact(&self.inner.endpoint))
            .field("client_id", &self.inner.client_id)
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

impl TokenSource {
    /// Settings for the token endpoint at `token_url` (https; see
    /// [`allow_http_loopback`](TokenSourceBuilder::allow_http_loopback)).
    pub fn builder(token_url: impl Into<String>) -> TokenSourceBuilder {
        TokenSourceBuilder {
            endpoint: token_url.into(),
            client: None,
            auth: ClientAuth::default(),
            http: None,
            clock: Arc::new(SystemClock),
            refresh_percent: DEFAULT_REFRESH_PERCENT,
            expiry_margin: DEFAULT_EXPIRY_MARGIN,
            max_entries: DEFAULT_MAX_ENTRIES,
            timeout: DEFAULT_TIMEOUT,
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            policy: UrlPolicy::default(),
        }
    }

    /// A token for `request`: the cached one while it is fresh (refreshed
    /// in the background once it is past its refresh point), else the
    /// answer of the one request in flight for it, started if none is.
    ///
    /// # Errors
    /// [`TokenError`] when the token endpoint cannot be reached or refuses
    /// (every caller waiting on that request gets the same error).
    pub async fn token(&self, request: &TokenRequest) -> Result<AccessToken, TokenError> {
        let now = self.inner.clock.now();
        let key = request.key();
        let waiting = {
            let mut slots = lock(&self.inner.slots);
            if !slots.contains_key(&key) {
                self.inner.make_room(&mut slots, now);
            }
            let slot = slots.entry(key.clone()).or_default();
            if let Some(c) = slot.cached.as_ref().filter(|c| now < c.stale_at) {
                let token = c.token.clone();
                if now >= c.refresh_at && slot.inflight.is_none() {
                    // Refresh ahead: this caller goes on with the cached token.
                    slot.inflight = Some(self.start(key, request.clone())?);
                }
                self.inner.hits.fetch_add(1, Ordering::Relaxed);
                return Ok(token);
            }
            match &slot.inflight {
                Some(rx) => rx.clone(),
                None => {
                    let rx = self.start(key, request.clone())?;
                    slot.inflight = Some(rx.clone());
                    rx
                }
            }
        };
        wait(waiting).await
    }

    /// A fresh token for `request`, whatever is cached: joins the request
    /// in flight for it (a refresh ahead that [`token`](Self::token)
    /// started) or starts one, and waits for it.
    ///
    /// # Errors
    /// As [`token`](Self::token).
    pub async fn refresh(&self, request: &TokenRequest) -> Result<AccessToken, TokenError> {
        let key = request.key();
        let waiting = {
            let mut slots = lock(&self.inner.slots);
            if !slots.contains_key(&key) {
                self.inner.make_room(&mut slots, self.inner.clock.now());
            }
            let slot = slots.entry(key.clone()).or_default();
            match &slot.inflight {
                Some(rx) => rx.clone(),
                None => {
                    let rx = self.start(key, request.clone())?;
                    slot.inflight = Some(rx.clone());
                    rx
                }
            }
        };
        wait(waiting).await
    }

    /// Sets `Authorization: Bearer <token>` on a reqwest request (replacing
    /// any `Authorization` it had): the reqwest helper.
    ///
    /// ```no_run
    /// use tokenwarden::outgoing::{TokenRequest, TokenSource};
    /// use tokenwarden::remote::reqwest;
    ///
    /// # async fn run(source: TokenSource, incoming: &str) -> Result<(), Box<dyn std::error::Error>> {
    /// let client = reqwest::Client::new();
    /// let mut call = client.get("https://billing.internal/invoices").build()?;
    /// let want = TokenRequest::exchange(incoming).audience("billing").scope("invoices:read");
    /// source.authorize(&mut call, &want).await?;
    /// let resp = client.execute(call).await?;
    /// # let _ = resp;
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// As [`token`](Self::token).
    pub async fn authorize(
        &self,
        call: &mut reqwest::Request,
        request: &TokenRequest,
    ) -> Result<(), TokenError> {
        let token = self.token(request).await?;
        let value = layer::bearer_value(&token)?;
        call.headers_mut()
            .insert(reqwest::header::AUTHORIZATION, value);
        Ok(())
    }

    /// Requests made and tokens cached so far.
    pub fn stats(&self) -> TokenSourceStats {
        TokenSourceStats {
            requests: self.inner.requests.load(Ordering::Relaxed),
            failures: self.inner.failures.load(Ordering::Relaxed),
            hits: self.inner.hits.load(Ordering::Relaxed),
            entries: lock(&self.inner.slots).len(),
        }
    }

    /// Starts the one request for `key`, as a task.
    fn start(
        &self,
        key: Key,
        request: TokenRequest,
    ) -> Result<watch::Receiver<Outcome>, TokenError> {
        let handle = tokio::runtime::Handle::try_current().map_err(|_| {
            TokenError::new(
                TokenErrorKind::Connect,
                "a TokenSource needs a Tokio runtime",
            )
        })?;
        let (tx, rx) = watch::channel(None);
        let inner = self.inner.clone();
        handle.spawn(async move {
            let outcome = inner.fetch(&request).await;
            inner.finish(&key, &outcome);
            let _ = tx.send(Some(outcome));
        });
        Ok(rx)
    }
}

/// The outcome of the request in flight.
async fn wait(mut rx: watch::Receiver<Outcome>) -> Result<AccessToken, TokenError> {
    match rx.wait_for(Option::is_some).await {
        Ok(outcome) => match &*outcome {
            Some(result) => result.clone(),
            None => Err(abandoned()),
        },
        Err(_) => Err(abandoned()),
    }
}

fn abandoned() -> TokenError {
    TokenError::new(
        TokenErrorKind::Connect,
        "the token request was abandoned (runtime shutting down)",
    )
}

impl Inner {
    /// One request to the token endpoint.
    async fn fetch(&self, request: &TokenRequest) -> Result<AccessToken, TokenError> {
        self.requests.fetch_add(1, Ordering::Relaxed);
        let scope = request.scope.join(" ");
        let mut form = request.form();
        if !scope.is_empty() {
            form.push(("scope", &scope));
        }
        let answer = http::request(
            &self.http,
            &self.endpoint,
            self.limits,
            self.auth,
            &self.client_id,
            &self.secret,
            &form,
        )
        .await;
        let resp = match answer {
            Ok(r) => r,
            Err(e) => {
                self.failures.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(
                    kind = e.kind().as_str(),
                    permanent = e.is_permanent(),
                    exchange = request.is_exchange(),
                    audience = request.audience.as_deref(),
                    error = %e,
                    "token request failed"
                );
                return Err(e);
            }
        };
        let now = self.clock.now();
        // The endpoint's number, bounded: the arithmetic below and in
        // `finish` never overflows, whatever it sends.
        let life = resp
            .expires_in
            .filter(|s| *s > 0)
            .unwrap_or(DEFAULT_LIFETIME.as_secs() as i64)
            .min(MAX_LIFETIME);
        tracing::debug!(
            exchange = request.is_exchange(),
            audience = request.audience.as_deref(),
            expires_in = life,
            "token received"
        );
        Ok(AccessToken {
            token: resp.access_token.into(),
            expires_at: now.saturating_add(life),
            scope: resp.scope.map(Into::into),
        })
    }

    /// Records the outcome of the request for `key`: the slot is free for
    /// the next one, and a new token is cached (a failure keeps the old
    /// one while it lasts).
    fn finish(&self, key: &Key, outcome: &Result<AccessToken, TokenError>) {
        let now = self.clock.now();
        let mut slots = lock(&self.slots);
        let Some(slot) = slots.get_mut(key) else {
            return;
        };
        slot.inflight = None;
        if let Ok(token) = outcome {
            let life = token.expires_at.saturating_sub(now).max(0);
            let refresh_at =
                now.saturating_add(life.saturating_mul(i64::from(self.refresh_percent)) / 100);
            // A short-lived token keeps most of its life usable.
            let margin = self.expiry_margin.min(life / 5);
            slot.cached = Some(Cached {
                token: token.clone(),
                refresh_at,
                stale_at: token.expires_at.saturating_sub(margin),
            });
        } else if slot.cached.is_none() {
            slots.remove(key);
        }
    }

    /// Before a new key goes in at the limit: drops stale tokens, then the
    /// one that expires first (never a key with a request in flight, whose
    /// callers wait on it).
    fn make_room(&self, slots: &mut HashMap<Key, Slot>, now: i64) {
        if slots.len() < self.max_entries {
            return;
        }
        slots.retain(|_, s| {
            s.inflight.is_some() || s.cached.as_ref().is_some_and(|c| now < c.stale_at)
        });
        while slots.len() >= self.max_entries {
            let victim = slots
                .iter()
                .filter(|(_, s)| s.inflight.is_none())
                .min_by_key(|(_, s)| s.cached.as_ref().map_or(i64::MIN, |c| c.token.expires_at))
                .map(|(k, _)| k.clone());
            match victim {
                Some(k) => {
                    slots.remove(&k);
                }
                // Every key has a request in flight: bounded by them.
                None => break,
            }
        }
    }
}

/// Configures a [`TokenSource`].
#[must_use]
pub struct TokenSourceBuilder {
    endpoint: String,
    client: Option<(String, String)>,
    auth: ClientAuth,
    http: Option<reqwest::Client>,
    clock: Arc<dyn Clock>,
    refresh_percent: u8,
    expiry_margin: Duration,
    max_entries: usize,
    timeout: Duration,
    max_body_bytes: usize,
    policy: UrlPolicy,
}

impl fmt::Debug for TokenSourceBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenSourceBuilder")
            .field("endpoint", &redact(&self.endpoint))
            .field("client_id", &self.client.as_ref().map(|c| &c.0))
            .field("auth", &self.auth)
            .finish_non_exhaustive()
    }
}

impl TokenSourceBuilder {
    /// The client's id and secret (required).
    pub fn client(mut self, client_id: impl Into<String>, secret: impl Into<String>) -> Self {
        self.client = Some((client_id.into(), secret.into()));
        self
    }

    /// How the client authenticates (default [`ClientAuth::SecretBasic`]).
    pub fn client_auth(mut self, auth: ClientAuth) -> Self {
        self.auth = auth;
        self
    }

    /// The HTTP client (your proxy, CA roots). Keep its redirects off: a
    /// redirected token request carries the secret and the subject token
    /// elsewhere. Default: no redirects, no proxy from the environment,
    /// every resolved address checked as for key fetches.
    pub fn http_client(mut self, client: reqwest::Client) -> Self {
        self.http = Some(client);
        self
    }

    /// The clock for expiry and refresh (default: system).
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// After this share of a token's life (1 to 99, default 80), a request
    /// for it refreshes it in the background while the cached one is
    /// still handed out.
    pub fn refresh_percent(mut self, percent: u8) -> Self {
        self.refresh_percent = percent;
        self
    }

    /// A cached token is not handed out this close to its expiry (default
    /// 10 s, at most a fifth of its life): callers wait for a new one.
    pub fn expiry_margin(mut self, margin: Duration) -> Self {
        self.expiry_margin = margin;
        self
    }

    /// Most tokens kept (default 1024): past it, stale ones and then the
    /// one expiring first make room.
    pub fn max_entries(mut self, n: usize) -> Self {
        self.max_entries = n;
        self
    }

    /// Timeout for one token request (default 5 s, at most
    /// [`MAX_TIMEOUT`]: a longer one is clamped to it).
    pub fn timeout(mut self, d: Duration) -> Self {
        self.timeout = d.min(MAX_TIMEOUT);
        self
    }

    /// Largest token response read (default 64 KiB).
    pub fn max_body_bytes(mut self, n: usize) -> Self {
        self.max_body_bytes = n;
        self
    }

    /// Allows plain http to a loopback token endpoint, for tests and local
    /// development.
    pub fn allow_http_loopback(mut self, allow: bool) -> Self {
        self.policy.allow_http_loopback = allow;
        self
    }

    /// Allows a token endpoint on a private, link-local or loopback
    /// address (an identity provider inside the network). Never plain http.
    pub fn allow_private_addresses(mut self, allow: bool) -> Self {
        self.policy.allow_private = allow;
        self
    }

    /// Builds the source.
    ///
    /// # Errors
    /// [`BuildError`] for no client, a URL that is not allowed, or a
    /// setting out of range.
    pub fn build(self) -> Result<TokenSource, BuildError> {
        let (client_id, secret) = self
            .client
            .ok_or_else(|| BuildError::new("no client: call client(id, secret)"))?;
        crate::remote::fetch::check_url(&self.endpoint, self.policy).map_err(BuildError::new)?;
        if !(1..=99).contains(&self.refresh_percent) {
            return Err(BuildError::new("refresh_percent must be between 1 and 99"));
        }
        if self.max_entries == 0 || self.timeout.is_zero() || self.max_body_bytes == 0 {
            return Err(BuildError::new(
                "max_entries, timeout and max_body_bytes must be > 0",
            ));
        }
        let http = match self.http {
            Some(c) => c,
            None => http::client(self.policy).map_err(BuildError::new)?,
        };
        Ok(TokenSource {
            inner: Arc::new(Inner {
                endpoint: self.endpoint,
                client_id,
                secret,
                auth: self.auth,
                http,
                limits: Limits {
                    timeout: self.timeout,
                    max_bytes: self.max_body_bytes,
                    policy: self.policy,
                },
                clock: self.clock,
                refresh_percent: self.refresh_percent,
                expiry_margin: i64::try_from(self.expiry_margin.as_secs()).unwrap_or(i64::MAX),
                max_entries: self.max_entries,
                slots: Mutex::new(HashMap::new()),
                requests: AtomicU64::new(0),
                failures: AtomicU64::new(0),
                hits: AtomicU64::new(0),
            }),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A token endpoint on 127.0.0.1 answering every request with `body`.
    async fn endpoint(body: &'static str) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                let mut buf = [0u8; 4096];
                let _ = s.read(&mut buf).await;
                let head = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                    body.len()
                );
                let _ = s.write_all(head.as_bytes()).await;
                let _ = s.write_all(body.as_bytes()).await;
            }
        });
        format!("http://{addr}/token")
    }

    /// Attack: a hostile or broken endpoint's `expires_in` of `i64::MAX`
    /// must not overflow the refresh arithmetic (a panic in the caller).
    #[tokio::test]
    async fn an_enormous_expires_in_is_clamped_not_overflowed() {
        let url = endpoint(
            r#"{"access_token":"t-1","token_type":"Bearer","expires_in":9223372036854775807}"#,
        )
        .await;
        let clock = crate::clock::ManualClock::new(1_800_000_000);
        let source = TokenSource::builder(url)
            .client("svc", "secret")
            .allow_http_loopback(true)
            .clock(clock.clone())
            .build()
            .unwrap();
        let t = source.token(&TokenRequest::new()).await.unwrap();
        assert_eq!(t.expires_at(), 1_800_000_000 + MAX_LIFETIME);
        // Cached, and refreshed ahead without overflow later on.
        assert_eq!(
            source.token(&TokenRequest::new()).await.unwrap().secret(),
            "t-1"
        );
    }

    #[test]
    fn the_request_timeout_is_clamped() {
        let source = TokenSource::builder("https://idp.example/token")
            .client("svc", "secret")
            .timeout(Duration::MAX)
            .build()
            .unwrap();
        assert_eq!(source.inner.limits.timeout, MAX_TIMEOUT);
    }
}
