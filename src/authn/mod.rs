//! One chain of authenticators for every kind of credential: bearer JWTs,
//! API keys (feature `api-keys`), legacy sessions and `Basic` credentials
//! (feature `legacy`), and your own.
//!
//! **request -> credential found -> authenticator -> [`Principal`] ->
//! [`Requirements`] -> verdict.** Each
//! [`Authenticator`] looks at a framework-neutral [`RequestView`] and either
//! vouches for a [`Principal`], refuses with a [`Refusal`] (one RFC
//! 6750-style table across kinds), or steps aside ([`Verdict::NotMine`]:
//! "not my kind of credential", as an ory/oathkeeper authenticator that is
//! not responsible for a request does).
//!
//! A [`Chain`] runs them in order: the first that recognises its
//! credential decides; a request carrying two kinds of credentials is
//! refused (400 `invalid_request`) unless [`Chain::allow_multiple`]; a
//! request carrying none gets 401 with every scheme's challenge. The
//! chain's requirements apply to the principal whatever proved it.
//!
//! ```
//! use tokenwarden::authn::{Chain, RequestView, jwt::JwtAuthenticator};
//! use tokenwarden::{Algorithm, KeySet, Requirements, Validator};
//!
//! let validator = Validator::builder()
//!     .issuer("https://idp.example.com")
//!     .audience("https://api.example.com")
//!     .keys(KeySet::from_hmac_secret(Some("k"), Algorithm::HS256, &[7; 32])?)
//!     .build()?;
//! let chain = Chain::new()
//!     .jwt(JwtAuthenticator::new(validator))
//!     .require(Requirements::new().scopes_all(["orders:read"]));
//!
//! let headers = [("accept", "application/json")];
//! let request = RequestView::new("GET", "/orders", &headers);
//! # tokio::runtime::Builder::new_current_thread().build()?.block_on(async {
//! let refusal = chain.authenticate(&request).await.unwrap_err();
//! assert_eq!(refusal.status(), 401);
//! assert_eq!(refusal.challenges("api"), ["Bearer realm=\"api\""]);
//! # });
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub(crate) mod actor;
#[cfg(feature = "api-keys")]
#[cfg_attr(docsrs, doc(cfg(feature = "api-keys")))]
pub mod api_key;
pub mod dpop;
#[cfg(feature = "introspection")]
#[cfg_attr(docsrs, doc(cfg(feature = "introspection")))]
pub mod introspection;
pub mod jwt;
#[cfg(feature = "legacy")]
#[cfg_attr(docsrs, doc(cfg(feature = "legacy")))]
pub mod legacy;
pub mod mtls;
pub(crate) mod principal;
mod refusal;
pub(crate) mod request;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

pub use actor::{Actor, DelegationError, MAX_DELEGATION_DEPTH, may_act_allows};
pub use principal::Principal;
#[cfg_attr(not(any(feature = "tower", feature = "actix")), allow(unused_imports))]
pub(crate) use refusal::header_safe;
pub use refusal::{DEFAULT_RETRY_AFTER, Refusal, Scheme};
pub use request::{HeaderSource, RequestView};
#[cfg_attr(not(any(feature = "tower", feature = "actix")), allow(unused_imports))]
pub(crate) use request::{Malformed, scheme_credential, visible_ascii};

use crate::requirements::Requirements;

/// A boxed, `Send` future: what a user's [`Authenticator`] returns.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What an authenticator says of a request.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Verdict {
    /// The credential is valid: this is who the request is.
    Authenticated(Principal),
    /// The credential is this authenticator's kind, and it is refused.
    Refused(Refusal),
    /// Not this authenticator's kind of credential: it steps aside.
    NotMine,
}

/// Turns one kind of credential into a [`Principal`].
///
/// Object-safe, so a [`Chain`] holds yours as `Box<dyn Authenticator>`
/// next to the built-in kinds. [`recognises`](Self::recognises) must be
/// cheap and synchronous (a header's presence, a scheme's name): the chain
/// asks every authenticator to find requests carrying two kinds of
/// credentials, and runs [`authenticate`](Self::authenticate) on one.
///
/// ```
/// use tokenwarden::authn::{
///     Authenticator, BoxFuture, Principal, Refusal, RequestView, Scheme, Verdict,
/// };
///
/// /// Lets in requests from the office's health checker, by header.
/// struct HealthChecker;
///
/// impl Authenticator for HealthChecker {
///     fn name(&self) -> &'static str { "health" }
///     fn scheme(&self) -> Scheme { Scheme::Other("Health") }
///     fn recognises(&self, req: &RequestView<'_>) -> bool {
///         req.header("x-health-check").is_some()
///     }
///     fn authenticate<'a>(&'a self, req: &'a RequestView<'a>) -> BoxFuture<'a, Verdict> {
///         Box::pin(async move {
///             match req.single_header("x-health-check", self.scheme()) {
///                 Ok(Some("ok")) => Verdict::Authenticated(Principal::new("checker", "health")),
///                 Ok(Some(_)) => Verdict::Refused(Refusal::invalid_token(
///                     self.scheme(), "wrong_word", "not the health checker")),
///                 Ok(None) => Verdict::NotMine,
///                 Err(r) => Verdict::Refused(r),
///             }
///         })
///     }
/// }
/// ```
pub trait Authenticator: Send + Sync {
    /// The name of this kind, as [`Principal::authenticator`] reports it
    /// (`"jwt"`, `"api_key"`, …): a [`Chain`] labels the principals yours
    /// vouches for with it, whatever name they carry. Two of your
    /// authenticators of one name count as one kind of credential; the
    /// built-in kinds' names ([`RESERVED_NAMES`]) are theirs alone (see
    /// [`Chain::check`]). API key authenticators reading different headers
    /// are two kinds: a key in each is two credentials.
    fn name(&self) -> &'static str;

    /// The `WWW-Authenticate` scheme this kind answers with.
    fn scheme(&self) -> Scheme;

    /// Whether the request carries this kind of credential (cheap, no I/O).
    fn recognises(&self, req: &RequestView<'_>) -> bool;

    /// Judges the request's credential.
    fn authenticate<'a>(&'a self, req: &'a RequestView<'a>) -> BoxFuture<'a, Verdict>;

    /// Where this authenticator reads its credential (`"cookie:SID"`,
    /// `"basic"`, `"header:x-session"`), when it can say. Two authenticators
    /// of one name reading different places are two kinds: a request with a
    /// credential in each is refused (400) like any two kinds, so that no
    /// credential reaches the service unchecked beside the one that
    /// decided. `None` (the default): one credential, wherever it is.
    fn location(&self) -> Option<String> {
        None
    }
}

/// Names only the built-in kinds carry: an authenticator of yours named so
/// would pass its principals off as a JWT's or an API key's (to the
/// service behind, which reads [`Principal::authenticator`]).
pub const RESERVED_NAMES: [&str; 4] = ["jwt", "api_key", "introspection", "dpop"];

/// Which kind of credential a member judges: the built-in kinds by type,
/// yours by name. A legacy authenticator named `"jwt"` is still not the
/// JWT kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Jwt,
    #[cfg(feature = "api-keys")]
    ApiKey,
    #[cfg(feature = "introspection")]
    Introspection,
    Dpop,
    Custom(&'static str),
}

/// One member of a chain: the built-in kinds are called directly (the JWT
/// path boxes no future), yours through the trait.
#[derive(Clone)]
enum Member {
    Jwt(jwt::JwtAuthenticator),
    #[cfg(feature = "api-keys")]
    ApiKey(api_key::ApiKeyAuthenticator),
    #[cfg(feature = "introspection")]
    Introspection(introspection::IntrospectionAuthenticator),
    Dpop(dpop::DpopAuthenticator),
    Custom(Arc<dyn Authenticator>),
}

impl Member {
    fn kind(&self) -> Kind {
        match self {
            Member::Jwt(_) => Kind::Jwt,
            #[cfg(feature = "api-keys")]
            Member::ApiKey(_) => Kind::ApiKey,
            #[cfg(feature = "introspection")]
            Member::Introspection(_) => Kind::Introspection,
            Member::Dpop(_) => Kind::Dpop,
            Member::Custom(a) => Kind::Custom(a.name()),
        }
    }

    fn name(&self) -> &'static str {
        match self {
            Member::Jwt(a) => Authenticator::name(a),
            #[cfg(feature = "api-keys")]
            Member::ApiKey(a) => Authenticator::name(a),
            #[cfg(feature = "introspection")]
            Member::Introspection(a) => Authenticator::name(a),
            Member::Dpop(a) => Authenticator::name(a),
            Member::Custom(a) => a.name(),
        }
    }

    fn scheme(&self) -> Scheme {
        match self {
            Member::Jwt(a) => Authenticator::scheme(a),
            #[cfg(feature = "api-keys")]
            Member::ApiKey(a) => Authenticator::scheme(a),
            #[cfg(feature = "introspection")]
            Member::Introspection(a) => Authenticator::scheme(a),
            Member::Dpop(a) => Authenticator::scheme(a),
            Member::Custom(a) => a.scheme(),
        }
    }

    fn recognises(&self, req: &RequestView<'_>) -> bool {
        match self {
            Member::Jwt(a) => Authenticator::recognises(a, req),
            #[cfg(feature = "api-keys")]
            Member::ApiKey(a) => Authenticator::recognises(a, req),
            #[cfg(feature = "introspection")]
            Member::Introspection(a) => Authenticator::recognises(a, req),
            Member::Dpop(a) => Authenticator::recognises(a, req),
            Member::Custom(a) => a.recognises(req),
        }
    }

    /// Whether every credential `other` (of this member's name) finds in
    /// `req` is one this member reads too. Two API key authenticators
    /// reading different headers are two kinds per location, as are two
    /// of yours that say they read different places
    /// ([`Authenticator::location`]); other members of one name read one
    /// credential.
    fn reads_all_of(&self, other: &Member, req: &RequestView<'_>) -> bool {
        match (self, other) {
            #[cfg(feature = "api-keys")]
            (Member::ApiKey(a), Member::ApiKey(b)) => a.reads_all_of(b, req),
            (Member::Custom(a), Member::Custom(b)) => match (a.location(), b.location()) {
                (Some(x), Some(y)) => x == y,
                _ => true,
            },
            _ => {
                let _ = req;
                true
            }
        }
    }

    async fn authenticate(&self, req: &RequestView<'_>) -> Verdict {
        match self {
            Member::Jwt(a) => a.verdict(req).await,
            #[cfg(feature = "api-keys")]
            Member::ApiKey(a) => a.verdict(req).await,
            #[cfg(feature = "introspection")]
            Member::Introspection(a) => a.verdict(req).await,
            Member::Dpop(a) => a.verdict(req).await,
            Member::Custom(a) => match a.authenticate(req).await {
                // Labelled by the member that vouched, never by its own say.
                Verdict::Authenticated(p) if p.authenticator() != a.name() => {
                    Verdict::Authenticated(p.vouched_by(a.name()))
                }
                v => v,
            },
        }
    }
}

/// Authenticators in order, and the requirements every principal must meet.
///
/// Cheap to clone (an `Arc` inside). See the [module docs](self) for an
/// example.
#[derive(Clone, Default)]
pub struct Chain {
    inner: Arc<Inner>,
}

#[derive(Clone, Default)]
struct Inner {
    members: Vec<Member>,
    allow_multiple: bool,
    requirements: Requirements,
    /// The first mistake in building the chain: every request is then
    /// refused (see [`Chain::check`]).
    misconfigured: Option<&'static str>,
    /// An introspection authenticator is in the chain: bearer JWTs (by
    /// shape) go to the JWT authenticators, other bearer tokens to it.
    #[cfg(feature = "introspection")]
    opaque_bearer: bool,
}

impl std::fmt::Debug for Chain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.inner.members.iter().map(Member::name).collect();
        f.debug_struct("Chain")
            .field("authenticators", &names)
            .field("allow_multiple", &self.inner.allow_multiple)
            .field("requirements", &self.inner.requirements)
            .finish()
    }
}

impl Chain {
    /// An empty chain: every request is refused as carrying no credential.
    pub fn new() -> Chain {
        Chain::default()
    }

    fn with(mut self, f: impl FnOnce(&mut Inner)) -> Chain {
        f(Arc::make_mut(&mut self.inner));
        self
    }

    /// Adds a bearer JWT authenticator.
    #[must_use]
    pub fn jwt(self, authenticator: jwt::JwtAuthenticator) -> Chain {
        self.with(|c| c.members.push(Member::Jwt(authenticator)))
    }

    /// Adds an API key authenticator.
    #[cfg(feature = "api-keys")]
    #[cfg_attr(docsrs, doc(cfg(feature = "api-keys")))]
    #[must_use]
    pub fn api_key(self, authenticator: api_key::ApiKeyAuthenticator) -> Chain {
        self.with(|c| c.members.push(Member::ApiKey(authenticator)))
    }

    /// Adds a DPoP authenticator (RFC 9449): `Authorization: DPoP` with a
    /// proof. Its challenge names the proof algorithms it accepts.
    #[must_use]
    pub fn dpop(self, authenticator: dpop::DpopAuthenticator) -> Chain {
        self.with(|c| c.members.push(Member::Dpop(authenticator)))
    }

    /// Adds your own authenticator. One named as a built-in kind
    /// ([`RESERVED_NAMES`]) makes the chain refuse every request (503
    /// `misconfigured_chain`): see [`check`](Self::check).
    #[must_use]
    pub fn with_authenticator(self, authenticator: impl Authenticator + 'static) -> Chain {
        let a: Arc<dyn Authenticator> = Arc::new(authenticator);
        self.with(|c| {
            if RESERVED_NAMES.contains(&a.name()) && c.misconfigured.is_none() {
                c.misconfigured = Some(
                    "an authenticator of yours is named as a built-in kind (\"jwt\" or \"api_key\")",
                );
            }
            c.members.push(Member::Custom(a));
        })
    }

    /// Whether the chain is well built: check it at start-up.
    ///
    /// A chain holding an authenticator of yours (or a legacy one) named
    /// as a built-in kind (`.name("jwt")`) refuses every request with 503
    /// `misconfigured_chain`, failing closed: its principals would pass
    /// for JWTs to the service behind.
    ///
    /// ```
    /// # #[cfg(feature = "legacy")] {
    /// use tokenwarden::authn::Chain;
    /// use tokenwarden::authn::legacy::LegacyAuthenticator;
    ///
    /// let legacy = LegacyAuthenticator::basic(|_| async { Ok(None) });
    /// assert!(Chain::new().legacy(legacy.clone()).check().is_ok());
    /// assert!(Chain::new().legacy(legacy.name("jwt")).check().is_err());
    /// # }
    /// ```
    ///
    /// # Errors
    /// The mistake, as a [`BuildError`](crate::BuildError).
    pub fn check(&self) -> Result<(), crate::error::BuildError> {
        match self.inner.misconfigured {
            Some(why) => Err(crate::error::BuildError::new(why)),
            None => Ok(()),
        }
    }

    fn misconfigured(&self) -> Option<Refusal> {
        self.inner.misconfigured?;
        Some(Refusal::unavailable(
            Scheme::Bearer,
            "misconfigured_chain",
            DEFAULT_RETRY_AFTER,
        ))
    }

    /// Lets a request carry several kinds of credentials: the first
    /// authenticator (in chain order) that recognises one decides. Off by
    /// default: a request with, say, a bearer token and an API key is
    /// refused (400), since a proxy or application behind us might act on
    /// the one we did not judge.
    #[must_use]
    pub fn allow_multiple(self) -> Chain {
        self.with(|c| c.allow_multiple = true)
    }

    /// What every principal must meet, whatever its credential (403
    /// `insufficient_scope` otherwise). Replaces earlier requirements.
    #[must_use]
    pub fn require(self, requirements: Requirements) -> Chain {
        self.with(|c| c.requirements = requirements)
    }

    /// Judges a request: the principal, or the refusal to answer with.
    ///
    /// A chain whose authenticators are all built in (JWT, API keys over
    /// an in-memory or file store) allocates no future: with static keys
    /// the JWT path completes on its first poll.
    ///
    /// # Errors
    /// The [`Refusal`]: 400 for two kinds of credentials or a malformed
    /// one, 401 for none or a refused one (with the challenges of
    /// [`Refusal::challenges`]), 403 for unmet requirements, 503 when a
    /// key source is unavailable.
    pub async fn authenticate(&self, req: &RequestView<'_>) -> Result<Principal, Refusal> {
        // The usual case (a bearer JWT with known keys) without waiting.
        if let Some(verdict) = self.authenticate_now(req) {
            return verdict;
        }
        let first = self.select(req)?;
        for m in self.judges(req, first) {
            match m.authenticate(req).await {
                Verdict::Authenticated(p) => return self.accept(p, m.scheme()),
                Verdict::Refused(r) => return Err(r),
                Verdict::NotMine => {}
            }
        }
        Err(self.missing())
    }

    /// [`authenticate`](Self::authenticate) without waiting, for the
    /// layers: `None` when an authenticator must wait (yours, an API key
    /// store, an unknown JWT `kid`): then run `authenticate`. A bearer JWT
    /// with known keys decides here, with no future at all.
    pub(crate) fn authenticate_now(
        &self,
        req: &RequestView<'_>,
    ) -> Option<Result<Principal, Refusal>> {
        let first = match self.select(req) {
            Ok(first) => first,
            Err(r) => return Some(Err(r)),
        };
        for m in self.judges(req, first) {
            let verdict = match m {
                Member::Jwt(a) => a.verdict_now(req)?,
                #[cfg(feature = "introspection")]
                Member::Introspection(a) => a.verdict_now(req)?,
                Member::Dpop(a) => a.verdict_now(req)?,
                _ => return None,
            };
            match verdict {
                Verdict::Authenticated(p) => return Some(self.accept(p, m.scheme())),
                Verdict::Refused(r) => return Some(Err(r)),
                Verdict::NotMine => {}
            }
        }
        Some(Err(self.missing()))
    }

    /// The first member that recognises the request's credential; a
    /// refusal for none, or for two kinds at once (unless allowed).
    fn select(&self, req: &RequestView<'_>) -> Result<usize, Refusal> {
        if let Some(r) = self.misconfigured() {
            return Err(r);
        }
        let members = &self.inner.members;
        let Some(first) = members.iter().position(|m| self.recognises(m, req)) else {
            return Err(self.missing());
        };
        if !self.inner.allow_multiple {
            // By kind, not by name: a name is the authenticator's to choose.
            // One kind reading two places (API keys in two headers) counts
            // as two credentials when both are present.
            let kind = members[first].kind();
            let other = members.iter().skip(first.saturating_add(1)).any(|m| {
                self.recognises(m, req)
                    && (m.kind() != kind || !members[first].reads_all_of(m, req))
            });
            if other {
                return Err(Refusal::invalid_request(
                    members[first].scheme(),
                    "more than one kind of credential",
                ));
            }
        }
        Ok(first)
    }

    /// The members that judge the request, in order, from the first that
    /// recognised it: those of its kind (every kind, when several are
    /// allowed) that recognise the request.
    fn judges<'s>(
        &'s self,
        req: &'s RequestView<'_>,
        first: usize,
    ) -> impl Iterator<Item = &'s Member> + 's {
        let members = &self.inner.members;
        let kind = members.get(first).map(Member::kind);
        let allow_multiple = self.inner.allow_multiple;
        // The first recognised already: not asked again.
        let rest = members
            .iter()
            .skip(first.saturating_add(1))
            .filter(move |m| (allow_multiple || Some(m.kind()) == kind) && self.recognises(m, req));
        members.get(first).into_iter().chain(rest)
    }

    /// Whether `m` recognises the request's credential, in this chain: with
    /// an introspection authenticator, a JWT one takes only bearer JWTs.
    fn recognises(&self, m: &Member, req: &RequestView<'_>) -> bool {
        #[cfg(feature = "introspection")]
        if self.inner.opaque_bearer && matches!(m, Member::Jwt(_)) {
            return m.recognises(req) && introspection::bearer_is_jws(req);
        }
        m.recognises(req)
    }

    /// Whether a DPoP authenticator is in the chain: the layers keep a
    /// ledger of recorded proofs for its requests, and for no others.
    #[cfg_attr(not(any(feature = "tower", feature = "actix")), allow(dead_code))]
    pub(crate) fn has_dpop(&self) -> bool {
        self.inner
            .members
            .iter()
            .any(|m| matches!(m, Member::Dpop(_)))
    }

    /// The scheme of the authenticator named `name` (the first of that
    /// name), for refusals about its principal.
    #[cfg_attr(not(any(feature = "tower", feature = "actix")), allow(dead_code))]
    pub(crate) fn scheme_of(&self, name: &str) -> Scheme {
        self.inner
            .members
            .iter()
            .find(|m| m.name() == name)
            .map_or(Scheme::Bearer, Member::scheme)
    }

    /// The principal, if its delegation chain is well formed (RFC 8693
    /// §4.1; refused whether or not a requirement reads it, so no handler
    /// sees a chain it cannot read) and it meets the chain's requirements.
    fn accept(&self, p: Principal, scheme: Scheme) -> Result<Principal, Refusal> {
        if p.actor().is_some() && p.delegation_depth().is_err() {
            return Err(Refusal::invalid_token(
                scheme,
                "invalid_act",
                "malformed or too deep act claim",
            ));
        }
        if !self.inner.requirements.is_empty() {
            self.inner.requirements.check(&p, scheme)?;
        }
        Ok(p)
    }

    /// 401 naming every scheme the chain accepts (RFC 9110 §11.6.1).
    fn missing(&self) -> Refusal {
        let mut schemes: Vec<Scheme> = Vec::with_capacity(self.inner.members.len());
        for m in &self.inner.members {
            let s = m.scheme();
            if !schemes.contains(&s) {
                schemes.push(s);
            }
        }
        let refusal = Refusal::missing(schemes);
        // RFC 9449 §7.1: the DPoP challenge names the proof algorithms.
        match self.inner.members.iter().find_map(|m| match m {
            Member::Dpop(a) => Some(a.algs_param()),
            _ => None,
        }) {
            Some(algs) => refusal.with_dpop_algs(algs),
            None => refusal,
        }
    }
}
