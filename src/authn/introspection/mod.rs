//! Opaque access tokens (feature `introspection`): RFC 7662 token
//! introspection, cached, single-flight, bounded, behind a circuit breaker.
//!
//! An [`IntrospectionAuthenticator`] asks the identity provider's
//! introspection endpoint about `Authorization: Bearer` tokens it cannot
//! check itself, and turns an active token into a [`Principal`]
//! (authenticator `"introspection"`).
//!
//! # Opaque and JWT bearer tokens in one chain
//! It recognises a bearer token by shape: a compact JWS (exactly two dots,
//! and a first segment that is a base64url JSON object) is left to the
//! [`JwtAuthenticator`](super::jwt::JwtAuthenticator); anything else
//! (opaque, reference, or a JWE) is introspected. In a [`Chain`] holding
//! both, each takes its own shape, so one chain serves JWTs and opaque
//! tokens, and neither counts as a second credential. Alone in a chain, it
//! answers a JWT as a request without credentials (401).
//!
//! # What is checked (RFC 7662 §2.2)
//! `active` must be JSON `true` (absent, `false` or anything else:
//! 401 `invalid_token`, kind `inactive`); `exp`, `nbf` and `iat` as for a
//! JWT, with the same leeway; `iss` when [`issuer`](IntrospectionAuthenticatorBuilder::issuer)
//! is set, `aud` when [`audience`](IntrospectionAuthenticatorBuilder::audience)
//! is; `token_type`, when present, must be `Bearer` (or one of
//! [`token_types`](IntrospectionAuthenticatorBuilder::token_types)), which
//! refuses refresh tokens and DPoP-bound tokens sent as bearer tokens. The
//! answer is read as strictly as a JWT payload: one JSON object, no member
//! twice. The principal's subject is `sub` (an answer without one is
//! refused, kind `missing_claim`, unless
//! [`subject_fallback`](IntrospectionAuthenticatorBuilder::subject_fallback)
//! lets `username:<username>` or `client_id:<client_id>` stand in: named by
//! their claim, so a client's id never passes for a user's `sub`); its
//! scopes are `scope`; its claims the whole answer; its expiry `exp`. The chain's requirements then apply as to any principal.
//! With [`jwt_responses`](IntrospectionAuthenticatorBuilder::jwt_responses),
//! answers are RFC 9701 signed JWTs, verified with the IdP's keys.
//!
//! # Cache: what it costs and what it risks
//! Verdicts are kept under the SHA-256 of the token, never the token:
//! - **an active token** until the earlier of its `exp` and the positive
//!   TTL (default [`DEFAULT_POSITIVE_TTL`], 60 s). **A token revoked at the
//!   IdP stays usable here for up to that long**: shorten the TTL where
//!   revocation must bite sooner (every TTL is a call per token per TTL);
//! - **a refused token** for the negative TTL (default 5 s);
//! - **nothing** for a failed call.
//!
//! The cache holds at most [`max_bytes`](IntrospectionAuthenticatorBuilder::max_bytes)
//! (an estimate: what the parsed answer holds, never less than its length,
//! plus a fixed overhead per entry) and
//! at most [`max_entries`](IntrospectionAuthenticatorBuilder::max_entries)
//! entries (each entry weighs at least `max_bytes / max_entries`), evicting
//! the least useful first. Concurrent requests with one new token share
//! one call (single flight); at most
//! [`max_concurrent`](IntrospectionAuthenticatorBuilder::max_concurrent)
//! calls run at once, whatever the number of distinct tokens.
//!
//! # Outages
//! | endpoint | verdict |
//! |---|---|
//! | a token with a kept verdict | that verdict, until its TTL ends |
//! | times out, refuses connections, 5xx, HTML or garbage, too large | 503 with `Retry-After`, kind `introspection_timeout` / `introspection_unavailable` |
//! | 400, 413, 414, 422 or 431 about the token (too long, not its format) | 401 `invalid_token`, kind `malformed`, kept for the negative TTL: a verdict on that token, never a failure |
//! | 401/403 (or 400 `invalid_client`): our client credentials refused | 503, kind `introspection_client_rejected`, logged at error (never 401: the caller did nothing wrong) |
//! | `max_failures` failures in a row (every row above but the first two, and refused credentials) | the circuit opens: 503 `introspection_circuit_open` without a call, `Retry-After` the time left; then one probe (half-open), the open time doubling on each failed probe up to `max_backoff` |
//! | all call slots busy for half the timeout | 503 `introspection_busy`, not a failure (a flood of tokens makes a queue, not an outage) |
//!
//! Nothing a token alone makes the endpoint answer counts towards the
//! circuit: junk tokens cannot open it for everyone.
//!
//! Logs name the endpoint's host and the error's kind; a token only by the
//! first 8 hex digits of its SHA-256.
//!
//! ```no_run
//! use tokenwarden::authn::Chain;
//! use tokenwarden::authn::introspection::IntrospectionAuthenticator;
//! use tokenwarden::authn::jwt::JwtAuthenticator;
//! # async fn run(validator: tokenwarden::Validator) -> Result<(), Box<dyn std::error::Error>> {
//! let opaque = IntrospectionAuthenticator::builder()
//!     .discovery("https://idp.example.com/realms/main") // or .endpoint(url)
//!     .client_secret_basic("orders-api", std::env::var("INTROSPECTION_SECRET")?)
//!     .issuer("https://idp.example.com/realms/main")
//!     .audience("orders-api")
//!     .build()
//!     .await?;
//! // JWTs to the validator, opaque tokens to the endpoint:
//! let chain = Chain::new().jwt(JwtAuthenticator::new(validator)).introspection(opaque);
//! # let _ = chain;
//! # Ok(()) }
//! ```

mod breaker;
mod cache;
mod check;
mod client;
mod revocation;
mod rules;
#[cfg(fuzzing)]
pub(crate) use self::rules::fuzz_judge;
mod shared;

use std::fmt;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Map, Value};
use tokio::time::{Instant, timeout_at};

use self::breaker::{Admit, Breaker};
use self::cache::{Cache, Kept};
use self::client::{Answer, CallError, ClientAuth, Endpoint};
use self::rules::{Judged, Rules};
use super::mtls::CertificateBinding;
use super::request::{authorization, authorization_names};
use super::{
    Authenticator, BoxFuture, Chain, Member, Principal, Refusal, RequestView, Scheme, Verdict,
};
use crate::claims::TimeRules;
use crate::clock::{Clock, SystemClock};
use crate::error::BuildError;
use crate::keys::KeySource;
use crate::remote::address::{GuardedResolver, UrlPolicy, redact};
use crate::remote::fetch::{Fetched, Limits, check_url, get_json};
use crate::validator::{DEFAULT_LEEWAY, Validator};

/// How long an active token's verdict is kept by default (never past its
/// `exp`): a token revoked at the IdP is accepted here that long.
pub const DEFAULT_POSITIVE_TTL: Duration = Duration::from_secs(60);
/// How long a refused token's verdict is kept by default.
pub const DEFAULT_NEGATIVE_TTL: Duration = Duration::from_secs(5);
/// The most verdicts kept by default.
pub const DEFAULT_MAX_ENTRIES: usize = 10_000;
/// The most bytes of verdicts kept by default (estimated).
pub const DEFAULT_MAX_BYTES: usize = 16 * 1024 * 1024;
/// The default cap on calls to the endpoint at once.
pub const DEFAULT_MAX_CONCURRENT: usize = 32;
/// The default timeout of one judgement: waiting for a call slot and the
/// call itself (as for key fetches).
pub const DEFAULT_TIMEOUT: Duration = crate::remote::DEFAULT_TIMEOUT;
/// The longest timeout (`Duration::MAX` included).
pub const MAX_TIMEOUT: Duration = Duration::from_secs(60);
/// The default limit of an answer's body.
pub const DEFAULT_MAX_BODY_BYTES: usize = 64 * 1024;
/// Failures in a row that open the circuit, by default.
pub const DEFAULT_MAX_FAILURES: u32 = 5;
/// The longest the circuit stays open between probes, by default.
pub const DEFAULT_MAX_BACKOFF: Duration = Duration::from_secs(30);
/// The longest a verdict is kept (`Duration::MAX` included).
pub const MAX_TTL: Duration = Duration::from_secs(24 * 60 * 60);
/// The longest token sent to the endpoint; a longer one is refused
/// without a call.
pub const MAX_TOKEN_LEN: usize = 8 * 1024;
/// `Retry-After` (seconds) of a 503 while the circuit is still closed.
pub const DEFAULT_RETRY_AFTER: u32 = 5;

/// The longest a lookup in the shared tier (feature `redis`,
/// `shared_cache`) may take; less when the Redis connection's command
/// timeout is shorter. Spent before the endpoint's timeout starts: a cache
/// read on the request path must cost far less than the call it saves.
pub const SHARED_LOOKUP_BUDGET: Duration = Duration::from_millis(100);

/// How much longer than its own deadline a caller waits on a call another
/// caller started (that call ends by its own deadline).
const JOIN_GRACE: Duration = Duration::from_millis(50);

/// What one judgement came to (shared by the callers of one flight).
#[derive(Debug, Clone)]
pub(super) enum Outcome {
    Active(Principal),
    Refused(Refusal),
    Unavailable(&'static str, u32),
}

impl Outcome {
    fn verdict(self) -> Verdict {
        match self {
            Outcome::Active(p) => Verdict::Authenticated(p),
            Outcome::Refused(r) => Verdict::Refused(r),
            Outcome::Unavailable(kind, retry) => {
                Verdict::Refused(Refusal::unavailable(Scheme::Bearer, kind, retry))
            }
        }
    }
}

/// A verdict held to the token's binding, for every request, cached or
/// not (the cache is keyed by the token, the certificate is the
/// connection's): RFC 8705 §3.2 lets an introspection answer carry
/// `cnf["x5t#S256"]`, which must match the presented certificate; a
/// DPoP-bound token (`cnf.jkt`, RFC 9449 §6.2) is never a bearer token.
/// With [`CertificateBinding::Required`], an answer without a binding is
/// refused (`token_not_bound`).
fn bound(v: Verdict, req: &RequestView<'_>, binding: CertificateBinding) -> Verdict {
    let Verdict::Authenticated(p) = &v else {
        return v;
    };
    let claims = p.claims();
    // The common case, decided with one lookup: an unbound answer where
    // unbound tokens pass.
    if !claims.contains_key("cnf") && binding == CertificateBinding::WhenBound {
        return v;
    }
    let cnf = crate::authn::mtls::Confirmation::from_claims(claims);
    match crate::authn::mtls::check_bearer(&cnf, req.peer_certificate_der(), binding) {
        Ok(()) => v,
        Err(r) => Verdict::Refused(r),
    }
}

fn kept(k: &Kept) -> Verdict {
    match k {
        Kept::Active(p) => Verdict::Authenticated(p.clone()),
        Kept::Refused(r) => Verdict::Refused(r.clone()),
    }
}

/// The oldest signed (RFC 9701) answer taken, by its `iat`.
const SIGNED_ANSWER_MAX_AGE: Duration = Duration::from_secs(60);

/// The longest JWS header segment decoded to tell a JWT by shape; a longer
/// one is taken as a JWS unread.
const MAX_SHAPE_HEADER: usize = 4096;

/// Whether `token` is a compact JWS (RFC 7515 §7.1): exactly two dots, and
/// a first segment that decodes to a JSON object, or is longer than
/// [`MAX_SHAPE_HEADER`] (not decoded here: the JWT authenticator reads and
/// judges it, and no token of that shape is sent to the endpoint). Those
/// are the JWT authenticator's; everything else is opaque.
pub(crate) fn jws_shaped(token: &str) -> bool {
    let mut parts = token.split('.');
    let (Some(header), Some(_), Some(_), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return false;
    };
    // Too long to be worth decoding for its shape, and too long for any
    // opaque token to look like: the JWT authenticator's (an `x5c` chain
    // makes a long header), refused there when it is junk.
    if header.len() > MAX_SHAPE_HEADER {
        return true;
    }
    match URL_SAFE_NO_PAD.decode(header) {
        Ok(h) => {
            let h = h.trim_ascii();
            h.first() == Some(&b'{') && h.last() == Some(&b'}')
        }
        Err(_) => false,
    }
}

/// Whether the request's bearer token is a JWS (for a JWT authenticator
/// sharing a chain with introspection): a malformed `Authorization` is
/// left to introspection, which refuses it.
pub(crate) fn bearer_is_jws(req: &RequestView<'_>) -> bool {
    matches!(authorization(req, Scheme::Bearer), Ok(Some(t)) if jws_shaped(t))
}

/// RFC 6750 §2.1 `b64token`: `1*( ALPHA / DIGIT / "-" / "." / "_" / "~" /
/// "+" / "/" ) *"="`.
fn b64token(t: &str) -> bool {
    let body = t.trim_end_matches('=');
    !body.is_empty()
        && body
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~+/".contains(&b))
}

/// The first 8 hex digits of a token's hash: enough to follow one token
/// through the logs, nothing to find it by.
fn prefix(key: &[u8; 32]) -> String {
    key[..4].iter().map(|b| format!("{b:02x}")).collect()
}

/// A clock shared with the RFC 9701 validator.
#[derive(Debug)]
struct SharedClock(Arc<dyn Clock>);

impl Clock for SharedClock {
    fn now(&self) -> i64 {
        self.0.now()
    }
}

/// Opaque bearer tokens, judged by the IdP's introspection endpoint; see
/// the [module docs](self). Cheap to clone: clones share the cache, the
/// single flights, the cap and the breaker.
#[derive(Clone)]
pub struct IntrospectionAuthenticator {
    inner: Arc<Inner>,
}

struct Inner {
    endpoint: Endpoint,
    rules: Rules,
    /// RFC 9701: verifies signed answers.
    jwt: Option<Validator>,
    cache: Cache,
    breaker: Breaker,
    clock: Arc<dyn Clock>,
    positive_ttl: i64,
    negative_ttl: i64,
    timeout: Duration,
    retry_after: u32,
    public_jwk: Option<Value>,
    /// The optional Redis tier (`shared.rs`).
    shared: shared::SharedTier,
    binding: CertificateBinding,
    /// Tokens the endpoint refused (400 and kin) since the last warning.
    rejected: RejectedLog,
    /// Revoked `jti`s, subjects and sessions (`revocation.rs`).
    denylist: Option<crate::state::denylist::Denylist>,
}

/// A rate-limited warning for the endpoint's refusals: a misconfiguration
/// (a wrong endpoint, auth method or parameter) makes it answer 400 to
/// every token, and operators must see it without debug logs.
#[derive(Default)]
struct RejectedLog {
    since_warning: AtomicU64,
    next_warning: AtomicI64,
}

/// At most one warning about refused tokens per this many seconds.
const REJECTED_WARN_EVERY: i64 = 60;

impl RejectedLog {
    fn record(&self, status: u16, host: &str, now: i64) {
        let refused = self.since_warning.fetch_add(1, Ordering::Relaxed) + 1;
        let next = self.next_warning.load(Ordering::Relaxed);
        if now < next
            || self
                .next_warning
                .compare_exchange(
                    next,
                    now.saturating_add(REJECTED_WARN_EVERY),
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                )
                .is_err()
        {
            tracing::debug!(status, "introspection: the endpoint refused the token");
            return;
        }
        self.since_warning.fetch_sub(refused, Ordering::Relaxed);
        tracing::warn!(
            status,
            endpoint = %host,
            refused,
            "introspection: the endpoint refused tokens (4xx); if it refuses every \
             token, check its URL and the client authentication"
        );
    }
}

impl fmt::Debug for IntrospectionAuthenticator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let i = &*self.inner;
        f.debug_struct("IntrospectionAuthenticator")
            .field("endpoint", &i.endpoint)
            .field("cache", &i.cache)
            .field("positive_ttl", &i.positive_ttl)
            .field("negative_ttl", &i.negative_ttl)
            .finish_non_exhaustive()
    }
}

impl IntrospectionAuthenticator {
    /// A builder: an endpoint (or discovery) and a client authentication
    /// are required.
    pub fn builder() -> IntrospectionAuthenticatorBuilder {
        IntrospectionAuthenticatorBuilder {
            endpoint: None,
            discovery: None,
            discovery_url: None,
            client_id: None,
            auth: None,
            assertion_audience: None,
            issuer: None,
            audiences: Vec::new(),
            token_types: vec!["Bearer".into()],
            subject_fallback: false,
            binding: CertificateBinding::WhenBound,
            leeway: DEFAULT_LEEWAY,
            jwt_keys: None,
            positive_ttl: DEFAULT_POSITIVE_TTL,
            negative_ttl: DEFAULT_NEGATIVE_TTL,
            max_entries: DEFAULT_MAX_ENTRIES,
            max_bytes: DEFAULT_MAX_BYTES,
            max_concurrent: DEFAULT_MAX_CONCURRENT,
            timeout: DEFAULT_TIMEOUT,
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            max_failures: DEFAULT_MAX_FAILURES,
            max_backoff: DEFAULT_MAX_BACKOFF,
            retry_after: DEFAULT_RETRY_AFTER,
            policy: UrlPolicy::default(),
            client: None,
            clock: Arc::new(SystemClock),
            shared: shared::SharedTier::default(),
            denylist: None,
        }
    }

    /// The verdicts kept now and their estimated bytes (after the cache's
    /// pending housekeeping): never past the configured bounds.
    pub fn cache_usage(&self) -> (u64, u64) {
        self.inner.cache.usage()
    }

    /// Whether the circuit is open (or half-open): calls are held back.
    pub fn circuit_open(&self) -> bool {
        self.inner.breaker.is_open()
    }

    /// For `private_key_jwt`: the client's public key as a JWK (with its
    /// `kid`, the RFC 7638 thumbprint), to register at the IdP.
    pub fn client_public_jwk(&self) -> Option<&Value> {
        self.inner.public_jwk.as_ref()
    }

    /// The request's opaque bearer token: `Ok(None)` for none, or a JWS.
    fn token<'a>(&self, req: &RequestView<'a>) -> Result<Option<&'a str>, Refusal> {
        match authorization(req, Scheme::Bearer)? {
            Some(t) if !jws_shaped(t) => Ok(Some(t)),
            _ => Ok(None),
        }
    }

    /// The verdict without waiting: `None` when the endpoint must be asked.
    pub(crate) fn verdict_now(&self, req: &RequestView<'_>) -> Option<Verdict> {
        let token = match self.token(req) {
            Ok(Some(t)) => t,
            Ok(None) => return Some(Verdict::NotMine),
            Err(r) => return Some(Verdict::Refused(r)),
        };
        let malformed = || {
            Some(Verdict::Refused(rules::refused(
                "malformed",
                "the token is not a bearer token",
            )))
        };
        // The size before hashing (a bounded digest), the shape before any
        // call: nothing hostile in shape or size reaches the endpoint.
        if token.len() > MAX_TOKEN_LEN {
            return malformed();
        }
        let key = crate::crypto::sha256_of(token.as_bytes());
        // Only a token of good shape is ever kept, so a hit needs no
        // second look at its characters.
        match self.inner.cache.hit(&key, self.inner.clock.now()) {
            Some(hit) => Some(revocation::checked(
                self.inner.denylist.as_ref(),
                bound(kept(&hit), req, self.inner.binding),
            )),
            None if !b64token(token) => malformed(),
            None => None,
        }
    }

    /// The verdict: a kept one, the flight in progress for this token, or
    /// a new call.
    pub(crate) async fn verdict(&self, req: &RequestView<'_>) -> Verdict {
        if let Some(v) = self.verdict_now(req) {
            return v;
        }
        let Ok(Some(token)) = self.token(req) else {
            return Verdict::NotMine;
        };
        let i = &*self.inner;
        let key = crate::crypto::sha256_of(token.as_bytes());
        let start = Instant::now();
        // The shared tier's lookup has a budget of its own, before the
        // endpoint's timeout starts.
        let deadline = start
            .checked_add(i.shared.budget().saturating_add(i.timeout))
            .unwrap_or(start);
        let flight = i.cache.flight(key);
        let shared = flight.cell.get_or_init(|| self.introspect(token, key));
        // The call this caller starts ends by `deadline` on its own; this
        // bound is for a caller joining a call someone else started.
        let joined = deadline.checked_add(JOIN_GRACE).unwrap_or(deadline);
        let outcome = match timeout_at(joined, shared).await {
            Ok(o) => o.clone(),
            Err(_) => Outcome::Unavailable("introspection_timeout", i.retry_after),
        };
        drop(flight);
        revocation::checked(
            i.denylist.as_ref(),
            bound(outcome.verdict(), req, i.binding),
        )
    }

    /// One call, under the breaker, the cap and the deadline; its verdict
    /// kept.
    async fn introspect(&self, token: &str, key: [u8; 32]) -> Outcome {
        let i = &*self.inner;
        let now = i.clock.now();
        // Another flight may have just kept a verdict.
        if let Some(k) = i.cache.hit(&key, now) {
            return match &*k {
                Kept::Active(p) => Outcome::Active(p.clone()),
                Kept::Refused(r) => Outcome::Refused(r.clone()),
            };
        }
        // The shared tier (Redis), before the breaker and the endpoint,
        // within its own budget: nothing Redis does touches the breaker.
        if let Some(o) = i.shared.lookup(self, token, &key, now).await {
            return o;
        }
        // The endpoint's whole timeout, from now.
        let started = Instant::now();
        let deadline = started.checked_add(i.timeout).unwrap_or(started);
        let probe = match i.breaker.admit(now) {
            Admit::Call => false,
            Admit::Probe => true,
            Admit::Open(retry) => {
                tracing::debug!(token = %prefix(&key), "introspection circuit open: no call");
                return Outcome::Unavailable("introspection_circuit_open", retry);
            }
        };
        // Waiting for a slot takes at most half the timeout, so the call
        // itself always has at least the other half: a call that times out
        // is then the endpoint's slowness, an outage, while a long queue
        // (which a flood of tokens, each the client's to choose, can make)
        // is only this caller's 503, never counted by the breaker.
        let slot_deadline = Instant::now()
            .checked_add(i.timeout / 2)
            .map_or(deadline, |d| d.min(deadline));
        let Ok(Ok(_permit)) = timeout_at(slot_deadline, i.cache.permits.acquire()).await else {
            if probe {
                // The probe never went out: let another caller probe.
                i.breaker.probe_lost();
            }
            tracing::warn!(
                endpoint = %i.endpoint.host,
                max_concurrent = i.cache.max_concurrent,
                "introspection: every call slot stayed busy for half the timeout"
            );
            return Outcome::Unavailable("introspection_busy", i.retry_after);
        };
        let judged = match timeout_at(deadline, self.call(token, now)).await {
            Ok(r) => r,
            Err(_) => Err(CallError::Timeout),
        };
        let outcome = match judged {
            Ok((Judged::Active(p, exp), size)) => {
                i.breaker.success();
                // The parsed answer, not its text: many small members take
                // several times their length once parsed.
                let size = size.max(cache::weigh(&p));
                let mut until = now.saturating_add(i.positive_ttl);
                if let Some(exp) = exp {
                    until = until.min(exp);
                }
                let ttl =
                    Duration::from_secs(u64::try_from(until.saturating_sub(now)).unwrap_or(0));
                i.cache.keep(key, Kept::Active(p.clone()), until, ttl, size);
                Outcome::Active(p)
            }
            Ok((Judged::Refused(r), size)) => {
                i.breaker.success();
                tracing::debug!(token = %prefix(&key), reason = r.kind(), "introspection: token refused");
                let until = now.saturating_add(i.negative_ttl);
                let ttl = Duration::from_secs(u64::try_from(i.negative_ttl).unwrap_or(0));
                i.cache
                    .keep(key, Kept::Refused(r.clone()), until, ttl, size);
                Outcome::Refused(r)
            }
            Err(e) => {
                // Every error here is one no token can cause (see
                // `client::classify`): transport, a timeout of the call
                // itself, 5xx, 429, a garbage 200. Refused client
                // credentials count too: they fail every call alike until
                // an operator fixes the configuration, and the open circuit
                // spares the IdP (and its lockout rules) a rejected login
                // per request meanwhile.
                let opened = i.breaker.failure(i.clock.now(), probe);
                let kind = e.kind();
                if let CallError::ClientRejected(_) = e {
                    tracing::error!(
                        endpoint = %i.endpoint.host,
                        reason = kind,
                        error = %e,
                        "introspection endpoint refused our client credentials: requests get 503"
                    );
                } else {
                    tracing::warn!(
                        endpoint = %i.endpoint.host,
                        reason = kind,
                        error = %e,
                        token = %prefix(&key),
                        "introspection failed"
                    );
                }
                if let Some(secs) = opened {
                    tracing::warn!(
                        endpoint = %i.endpoint.host,
                        open_for_seconds = secs,
                        "introspection circuit open"
                    );
                }
                Outcome::Unavailable(kind, opened.unwrap_or(i.retry_after))
            }
        };
        i.shared.store(self, token, &outcome, now);
        outcome
    }

    /// Calls the endpoint and judges its answer; with the answer's size.
    async fn call(&self, token: &str, now: i64) -> Result<(Judged, usize), CallError> {
        let i = &*self.inner;
        match i.endpoint.call(token, now).await? {
            Answer::TokenRejected(status) => {
                i.rejected.record(status, &i.endpoint.host, now);
                Ok((
                    Judged::Refused(rules::refused(
                        "malformed",
                        "the introspection endpoint refused the token",
                    )),
                    0,
                ))
            }
            Answer::Json(body) => i
                .rules
                .judge_json(&body, now)
                .map(|j| (j, body.len()))
                .map_err(|why| CallError::Invalid(why.into())),
            Answer::Jwt(jwt) => {
                let Some(v) = &i.jwt else {
                    return Err(CallError::Invalid(
                        "a signed answer was not asked for".into(),
                    ));
                };
                // RFC 9701 §5: signed by the IdP, `typ`
                // token-introspection+jwt, `aud` our client id.
                let verified = v
                    .validate_async::<Map<String, Value>>(&jwt)
                    .await
                    .map_err(|e| {
                        CallError::Invalid(format!(
                            "the signed answer does not verify ({})",
                            e.kind().as_str()
                        ))
                    })?;
                let mut claims = verified.claims;
                let Some(Value::Object(answer)) = claims.remove("token_introspection") else {
                    return Err(CallError::Invalid(
                        "the signed answer has no token_introspection object".into(),
                    ));
                };
                Ok((i.rules.judge_object(answer, now), jwt.len()))
            }
        }
    }
}

impl Authenticator for IntrospectionAuthenticator {
    fn name(&self) -> &'static str {
        "introspection"
    }

    fn scheme(&self) -> Scheme {
        Scheme::Bearer
    }

    fn recognises(&self, req: &RequestView<'_>) -> bool {
        authorization_names(req, Scheme::Bearer) && !bearer_is_jws(req)
    }

    fn authenticate<'a>(&'a self, req: &'a RequestView<'a>) -> BoxFuture<'a, Verdict> {
        Box::pin(self.verdict(req))
    }
}

impl Chain {
    /// Adds an introspection authenticator for opaque bearer tokens. Bearer
    /// JWTs (compact JWS) stay with the chain's JWT authenticators: one
    /// chain serves both, neither counting as a second credential.
    #[cfg_attr(docsrs, doc(cfg(feature = "introspection")))]
    #[must_use]
    pub fn introspection(self, authenticator: IntrospectionAuthenticator) -> Chain {
        self.with(|c| {
            c.opaque_bearer = true;
            c.members.push(Member::Introspection(authenticator));
        })
    }
}

/// Configures an [`IntrospectionAuthenticator`]: every setting a value, so
/// a configuration file maps onto it one to one. Mistakes are kept until
/// [`build`](Self::build).
#[must_use]
pub struct IntrospectionAuthenticatorBuilder {
    endpoint: Option<String>,
    discovery: Option<String>,
    discovery_url: Option<String>,
    client_id: Option<String>,
    auth: Option<Result<PendingAuth, BuildError>>,
    assertion_audience: Option<String>,
    issuer: Option<String>,
    audiences: Vec<String>,
    token_types: Vec<String>,
    subject_fallback: bool,
    binding: CertificateBinding,
    leeway: Duration,
    jwt_keys: Option<KeySource>,
    positive_ttl: Duration,
    negative_ttl: Duration,
    max_entries: usize,
    max_bytes: usize,
    max_concurrent: usize,
    timeout: Duration,
    max_body_bytes: usize,
    max_failures: u32,
    max_backoff: Duration,
    retry_after: u32,
    policy: UrlPolicy,
    client: Option<reqwest::Client>,
    clock: Arc<dyn Clock>,
    shared: shared::SharedTier,
    denylist: Option<crate::state::denylist::Denylist>,
}

/// A client authentication, its key parsed.
enum PendingAuth {
    Basic(String),
    Post(String),
    Key(Box<crate::crypto::signing::SigningKey>),
}

impl fmt::Debug for IntrospectionAuthenticatorBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IntrospectionAuthenticatorBuilder")
            .field("endpoint", &self.endpoint.as_deref().map(redact))
            .field("discovery", &self.discovery)
            .field("client_id", &self.client_id)
            .field("issuer", &self.issuer)
            .field("audiences", &self.audiences)
            .finish_non_exhaustive()
    }
}

impl IntrospectionAuthenticatorBuilder {
    /// The introspection endpoint's URL.
    pub fn endpoint(mut self, url: impl Into<String>) -> Self {
        self.endpoint = Some(url.into());
        self
    }

    /// Finds the endpoint in `issuer`'s metadata
    /// (`<issuer>/.well-known/openid-configuration`, its
    /// `introspection_endpoint`; RFC 8414 §2) at [`build`](Self::build).
    /// The document's `issuer` must be `issuer` exactly.
    pub fn discovery(mut self, issuer: impl Into<String>) -> Self {
        self.discovery = Some(issuer.into());
        self
    }

    /// Reads the metadata from `url` instead (an RFC 8414
    /// `/.well-known/oauth-authorization-server` document, or an internal
    /// address); with [`discovery`](Self::discovery), whose issuer it must
    /// name.
    pub fn discovery_url(mut self, url: impl Into<String>) -> Self {
        self.discovery_url = Some(url.into());
        self
    }

    /// `client_secret_basic`: the client id and secret in HTTP Basic.
    pub fn client_secret_basic(
        mut self,
        client_id: impl Into<String>,
        secret: impl Into<String>,
    ) -> Self {
        self.client_id = Some(client_id.into());
        self.auth = Some(Ok(PendingAuth::Basic(secret.into())));
        self
    }

    /// `client_secret_post`: the client id and secret in the form.
    pub fn client_secret_post(
        mut self,
        client_id: impl Into<String>,
        secret: impl Into<String>,
    ) -> Self {
        self.client_id = Some(client_id.into());
        self.auth = Some(Ok(PendingAuth::Post(secret.into())));
        self
    }

    /// `private_key_jwt` (RFC 7523 §2.2): each call carries a fresh
    /// one-minute assertion signed with this key, an unencrypted PKCS #8
    /// PEM (Ed25519 or P-256), parsed once. Register its public key
    /// ([`IntrospectionAuthenticator::client_public_jwk`]) at the IdP.
    pub fn private_key_jwt_pem(
        mut self,
        client_id: impl Into<String>,
        pem: impl AsRef<[u8]>,
    ) -> Self {
        self.client_id = Some(client_id.into());
        self.auth = Some(
            crate::mint::key_from_pem(pem.as_ref())
                .map(|k| PendingAuth::Key(Box::new(k)))
                .map_err(|e| BuildError::new(format!("private_key_jwt: {e}"))),
        );
        self
    }

    /// `private_key_jwt` with the key in a file (PKCS #8, PEM or DER).
    pub fn private_key_jwt_file(
        mut self,
        client_id: impl Into<String>,
        path: impl AsRef<Path>,
    ) -> Self {
        self.client_id = Some(client_id.into());
        let path = path.as_ref();
        self.auth = Some(match std::fs::read(path) {
            Ok(mut bytes) => {
                let key = if bytes.trim_ascii_start().starts_with(b"-----BEGIN") {
                    crate::mint::key_from_pem(&bytes)
                } else {
                    crate::mint::key_from_der(&bytes)
                };
                bytes.fill(0);
                key.map(|k| PendingAuth::Key(Box::new(k)))
                    .map_err(|e| BuildError::new(format!("private_key_jwt: {e}")))
            }
            Err(e) => Err(BuildError::new(format!(
                "private_key_jwt: cannot read {}: {}",
                path.display(),
                e.kind()
            ))),
        });
        self
    }

    /// `private_key_jwt` with a fresh key (`EdDSA` or `ES256`), for tests:
    /// register [`IntrospectionAuthenticator::client_public_jwk`].
    pub fn private_key_jwt_generated(
        mut self,
        client_id: impl Into<String>,
        alg: crate::Algorithm,
    ) -> Self {
        use crate::crypto::signing::{SigningAlg, SigningKey};
        self.client_id = Some(client_id.into());
        let alg = match alg {
            crate::Algorithm::EdDSA => Ok(SigningAlg::EdDSA),
            crate::Algorithm::ES256 => Ok(SigningAlg::ES256),
            _ => Err(BuildError::new("private_key_jwt: EdDSA or ES256 keys only")),
        };
        self.auth = Some(alg.and_then(|a| {
            SigningKey::generate(a)
                .map(|k| PendingAuth::Key(Box::new(k)))
                .map_err(|_| BuildError::new("private_key_jwt: key generation failed"))
        }));
        self
    }

    /// The `aud` of `private_key_jwt` assertions. Default: the issuer
    /// (from [`discovery`](Self::discovery) or [`issuer`](Self::issuer)),
    /// else the endpoint's URL (RFC 7523 §3).
    pub fn assertion_audience(mut self, aud: impl Into<String>) -> Self {
        self.assertion_audience = Some(aud.into());
        self
    }

    /// Answers must carry `iss` equal to this.
    pub fn issuer(mut self, iss: impl Into<String>) -> Self {
        self.issuer = Some(iss.into());
        self
    }

    /// Answers must carry an `aud` naming this (or another configured one).
    pub fn audience(mut self, aud: impl Into<String>) -> Self {
        self.audiences.push(aud.into());
        self
    }

    /// The `token_type` values accepted when an answer has one (default
    /// `Bearer`; ASCII case ignored).
    pub fn token_types<I: IntoIterator<Item = S>, S: Into<String>>(mut self, types: I) -> Self {
        self.token_types = types.into_iter().map(Into::into).collect();
        self
    }

    /// For answers without `sub` (RFC 7662 §2.2 makes it optional; a
    /// client credentials token may carry only `client_id`): the subject
    /// is then `username:<username>`, else `client_id:<client_id>`, named
    /// by its claim so that a client's id never passes for a user's `sub`
    /// (a client registered as `alice` is not the user `alice`). Off by
    /// default: such an answer is refused (401, kind `missing_claim`).
    pub fn subject_fallback(mut self, on: bool) -> Self {
        self.subject_fallback = on;
        self
    }

    /// Whether plain bearer tokens pass beside certificate-bound ones
    /// (RFC 8705 §3): with [`CertificateBinding::Required`], an answer
    /// without `cnf["x5t#S256"]` matching the connection's certificate is
    /// refused (401, kind `token_not_bound`), as the JWT authenticator's
    /// [`certificate_binding`](super::jwt::JwtAuthenticator::certificate_binding)
    /// does for JWTs. Default [`CertificateBinding::WhenBound`]: a bound
    /// answer is always held to its certificate.
    pub fn certificate_binding(mut self, binding: CertificateBinding) -> Self {
        self.binding = binding;
        self
    }

    /// Clock-skew allowance for `exp`, `nbf` and `iat` (default
    /// [`DEFAULT_LEEWAY`]).
    pub fn leeway(mut self, leeway: Duration) -> Self {
        self.leeway = leeway;
        self
    }

    /// Asks for RFC 9701 signed answers (`Accept:
    /// application/token-introspection+jwt`) and accepts only those,
    /// verified with `keys` (the IdP's, e.g. a
    /// [`RemoteKeySet`](crate::RemoteKeySet)): `typ`
    /// `token-introspection+jwt`, `iss` the [`issuer`](Self::issuer)
    /// (required), `aud` our client id. Not with `shared_cache` (feature
    /// `redis`): its values are unsigned, so the pair is a [`BuildError`].
    pub fn jwt_responses(mut self, keys: impl Into<KeySource>) -> Self {
        self.jwt_keys = Some(keys.into());
        self
    }

    /// How long an active token's verdict is kept (default
    /// [`DEFAULT_POSITIVE_TTL`], never past its `exp`, at most
    /// [`MAX_TTL`]). A revoked token is accepted that long.
    pub fn positive_ttl(mut self, ttl: Duration) -> Self {
        self.positive_ttl = ttl.min(MAX_TTL);
        self
    }

    /// How long a refused token's verdict is kept (default
    /// [`DEFAULT_NEGATIVE_TTL`], at most [`MAX_TTL`]).
    pub fn negative_ttl(mut self, ttl: Duration) -> Self {
        self.negative_ttl = ttl.min(MAX_TTL);
        self
    }

    /// The most verdicts kept (default [`DEFAULT_MAX_ENTRIES`]).
    pub fn max_entries(mut self, n: usize) -> Self {
        self.max_entries = n;
        self
    }

    /// The most bytes of verdicts kept, estimated (default
    /// [`DEFAULT_MAX_BYTES`]).
    pub fn max_bytes(mut self, n: usize) -> Self {
        self.max_bytes = n;
        self
    }

    /// At most `n` calls at once (at least 1; default
    /// [`DEFAULT_MAX_CONCURRENT`]).
    pub fn max_concurrent(mut self, n: usize) -> Self {
        self.max_concurrent = n;
        self
    }

    /// The longest one judgement takes, waiting for a call slot included
    /// (default [`DEFAULT_TIMEOUT`], at least 1 ms, at most
    /// [`MAX_TIMEOUT`]); past it, 503. At most half of it is spent waiting
    /// for a call slot, so the call has at least the other half.
    pub fn timeout(mut self, d: Duration) -> Self {
        self.timeout = d.clamp(Duration::from_millis(1), MAX_TIMEOUT);
        self
    }

    /// The largest answer read (default [`DEFAULT_MAX_BODY_BYTES`]).
    pub fn max_body_bytes(mut self, n: usize) -> Self {
        self.max_body_bytes = n;
        self
    }

    /// Failures in a row that open the circuit (default
    /// [`DEFAULT_MAX_FAILURES`], at least 1).
    pub fn max_failures(mut self, n: u32) -> Self {
        self.max_failures = n;
        self
    }

    /// The longest the circuit stays open between probes (default
    /// [`DEFAULT_MAX_BACKOFF`]; the first opening lasts 1 s, each failed
    /// probe doubles it).
    pub fn max_backoff(mut self, d: Duration) -> Self {
        self.max_backoff = d.min(MAX_TTL);
        self
    }

    /// `Retry-After` (seconds) of a 503 while the circuit is closed
    /// (default [`DEFAULT_RETRY_AFTER`]).
    pub fn retry_after(mut self, seconds: u32) -> Self {
        self.retry_after = seconds;
        self
    }

    /// Plain http to a loopback endpoint, for tests and local development.
    pub fn allow_http_loopback(mut self, allow: bool) -> Self {
        self.policy.allow_http_loopback = allow;
        self
    }

    /// An endpoint on a private network.
    pub fn allow_private_addresses(mut self, allow: bool) -> Self {
        self.policy.allow_private = allow;
        self
    }

    /// Your own client (proxies, CA roots). The URL policy is then checked
    /// on IP-literal hosts only; let it follow no redirects (a redirected
    /// call would carry the token and credentials elsewhere).
    pub fn http_client(mut self, client: reqwest::Client) -> Self {
        self.client = Some(client);
        self
    }

    /// The clock for the time claims, the TTLs and the circuit breaker.
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// Builds the authenticator; with [`discovery`](Self::discovery), reads
    /// the metadata first (within the timeout). Must run inside a Tokio
    /// runtime.
    ///
    /// # Errors
    /// No endpoint or client authentication, a URL the policy refuses, a
    /// key that does not load, signed answers without an issuer or with a
    /// shared cache, metadata
    /// that cannot be read or has no `introspection_endpoint`, no crypto
    /// backend.
    pub async fn build(self) -> Result<IntrospectionAuthenticator, BuildError> {
        if cfg!(not(any(feature = "aws-lc-rs", feature = "ring"))) {
            // Without a backend every token would hash alike, and share a
            // verdict: refused.
            return Err(BuildError::new(
                "introspection needs a crypto backend (feature aws-lc-rs or ring)",
            ));
        }
        let client = match self.client.clone() {
            Some(c) => c,
            None => reqwest::Client::builder()
                .connect_timeout(Duration::from_secs(2))
                // A redirected POST would carry the token elsewhere.
                .redirect(reqwest::redirect::Policy::none())
                // A proxy would connect out of reach of the address filter.
                .no_proxy()
                .dns_resolver(GuardedResolver(self.policy))
                .user_agent(concat!("tokenwarden/", env!("CARGO_PKG_VERSION")))
                .build()
                .map_err(|e| BuildError::new(format!("HTTP client: {e}")))?,
        };
        let url = match (&self.endpoint, &self.discovery) {
            (Some(url), _) => url.clone(),
            (None, Some(issuer)) => self.discover(&client, issuer).await?,
            (None, None) => {
                return Err(BuildError::new(
                    "introspection: an endpoint (or discovery) is required",
                ));
            }
        };
        let url = check_url(&url, self.policy).map_err(BuildError::new)?;
        let host = match (url.host_str(), url.port()) {
            (Some(h), Some(p)) => format!("{h}:{p}"),
            (Some(h), None) => h.to_owned(),
            _ => String::new(),
        };
        let client_id = self
            .client_id
            .filter(|s| !s.is_empty())
            .ok_or_else(|| BuildError::new("introspection: a client id is required"))?;
        // RFC 7662 §2.1: the endpoint requires authorization.
        let pending = self.auth.ok_or_else(|| {
            BuildError::new("introspection: a client authentication is required (RFC 7662 §2.1)")
        })??;
        let mut public_jwk = None;
        let auth = match pending {
            PendingAuth::Basic(secret) => ClientAuth::Basic { secret },
            PendingAuth::Post(secret) => ClientAuth::Post { secret },
            PendingAuth::Key(key) => {
                let (alg, mut jwk) = crate::mint::public_jwk(&key);
                let kid = crate::mint::thumbprint(&jwk);
                jwk.insert("kid".into(), kid.clone().into());
                jwk.insert("alg".into(), alg.as_str().into());
                jwk.insert("use".into(), "sig".into());
                public_jwk = Some(Value::Object(jwk));
                let audience = self
                    .assertion_audience
                    .or_else(|| self.discovery.clone())
                    .or_else(|| self.issuer.clone())
                    .unwrap_or_else(|| url.to_string());
                ClientAuth::PrivateKeyJwt {
                    key,
                    kid,
                    alg: alg.as_str(),
                    audience,
                }
            }
        };
        if self.jwt_keys.is_some() && self.shared.is_set() {
            // The shared tier keeps plain claims: a value forged in Redis
            // would pass without the signature RFC 9701 asks for.
            return Err(BuildError::new(
                "introspection: shared_cache() cannot be used with jwt_responses(): \
                 the shared tier keeps unsigned claims, which would bypass the \
                 RFC 9701 signature check",
            ));
        }
        let jwt = match self.jwt_keys {
            None => None,
            Some(keys) => {
                let Some(issuer) = &self.issuer else {
                    return Err(BuildError::new(
                        "introspection: signed answers (RFC 9701) need the issuer",
                    ));
                };
                Some(
                    Validator::builder()
                        .issuer(issuer.as_str())
                        .audience(client_id.as_str())
                        .keys(keys)
                        .required_type(client::JWT_MEDIA_TYPE.trim_start_matches("application/"))
                        .allow_missing_exp()
                        // RFC 9701 §5: `iat` is required. An answer is
                        // made for the call that asked for it: one older
                        // than a minute (plus leeway) is a replay, never
                        // a verdict (it names no token to tie it to).
                        .max_age(SIGNED_ANSWER_MAX_AGE)
                        .leeway(self.leeway)
                        .clock(SharedClock(self.clock.clone()))
                        .build()?,
                )
            }
        };
        let rules = Rules {
            issuer: self.issuer.map(Into::into),
            audiences: self.audiences.into_iter().map(Into::into).collect(),
            time: TimeRules {
                leeway: self.leeway.as_secs(),
                // RFC 7662 §2.2: `exp` is OPTIONAL.
                require_exp: false,
                max_age: None,
            },
            token_types: self.token_types.into_iter().map(Into::into).collect(),
            name: "introspection",
            subject_fallback: self.subject_fallback,
        };
        let secs = |d: Duration| i64::try_from(d.as_secs()).unwrap_or(i64::MAX);
        // Shared verdicts are kept apart by what decides them, how long
        // they may be kept included.
        let ttls = (secs(self.positive_ttl), secs(self.negative_ttl));
        let shared = self.shared.scoped(url.as_str(), &client_id, &rules, ttls);
        let timeout = self.timeout;
        Ok(IntrospectionAuthenticator {
            inner: Arc::new(Inner {
                endpoint: Endpoint {
                    client,
                    url,
                    host,
                    policy: self.policy,
                    timeout,
                    max_bytes: self.max_body_bytes,
                    client_id,
                    auth,
                    jwt: jwt.is_some(),
                },
                rules,
                jwt,
                cache: Cache::new(self.max_entries, self.max_bytes, self.max_concurrent),
                breaker: Breaker::new(
                    self.max_failures,
                    1,
                    secs(self.max_backoff),
                    secs(timeout).saturating_add(1),
                ),
                clock: self.clock,
                positive_ttl: secs(self.positive_ttl),
                negative_ttl: secs(self.negative_ttl),
                timeout,
                retry_after: self.retry_after,
                public_jwk,
                shared,
                binding: self.binding,
                rejected: RejectedLog::default(),
                denylist: self.denylist,
            }),
        })
    }

    /// The `introspection_endpoint` of `issuer`'s metadata.
    async fn discover(&self, client: &reqwest::Client, issuer: &str) -> Result<String, BuildError> {
        let url = match &self.discovery_url {
            Some(u) => u.clone(),
            None => crate::remote::fetch::discovery_url(
                issuer,
                crate::remote::DiscoveryKind::OpenIdConnect,
            )
            .map_err(BuildError::new)?,
        };
        let limits = Limits {
            timeout: self.timeout,
            max_bytes: crate::remote::DEFAULT_MAX_BODY_BYTES,
            policy: self.policy,
        };
        let fail = |e: String| BuildError::new(format!("introspection discovery: {e}"));
        let body = match get_json(client, &url, limits, None).await {
            Ok(Fetched::New { value, .. }) => value,
            Ok(Fetched::NotModified { .. }) => return Err(fail("unexpected 304".into())),
            Err(e) => return Err(fail(e.to_string())),
        };
        #[derive(serde::Deserialize)]
        struct Metadata {
            issuer: String,
            introspection_endpoint: Option<String>,
        }
        let meta: Metadata = serde_json::from_slice(&body)
            .map_err(|_| fail(format!("{} is not a metadata document", redact(&url))))?;
        // RFC 8414 §3.3: the document must name the issuer asked about.
        if meta.issuer != issuer {
            return Err(fail(format!(
                "{} names another issuer than {issuer:?}",
                redact(&url)
            )));
        }
        meta.introspection_endpoint
            .ok_or_else(|| fail(format!("{} has no introspection_endpoint", redact(&url))))
    }
}
