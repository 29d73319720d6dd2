//! Protecting HTTP services (features `tower`, `axum`): reading the bearer
//! token, checking it and the route's scopes, and answering refusals the way
//! RFC 6750 §3 says.
//!
//! [`BearerAuth`] holds the configuration; [`BearerAuthLayer`] applies it to
//! any tower service (axum, hyper, tonic); the `axum` feature adds the
//! [`Claims`](axum::Claims) extractor.

#[cfg(feature = "actix")]
#[cfg_attr(docsrs, doc(cfg(feature = "actix")))]
pub mod actix;
#[cfg(feature = "axum")]
#[cfg_attr(docsrs, doc(cfg(feature = "axum")))]
pub mod axum;
#[cfg(feature = "tower")]
mod body;
mod chain;
mod credential;
mod internal;
mod log_limit;
mod observe;
mod refusal;
mod rejection;
mod requirements;
#[cfg(feature = "tower")]
mod tower;
mod typed;

pub(crate) use self::credential::{HeaderView, is_grpc};
use self::credential::{bearer, cookie, single};
pub use self::log_limit::REFUSAL_LOGS_PER_SECOND;
pub use self::rejection::AuthRejection;
#[cfg(any(feature = "axum", feature = "actix"))]
#[cfg_attr(docsrs, doc(cfg(any(feature = "axum", feature = "actix"))))]
pub use self::rejection::ClaimsRejection;
pub use self::requirements::{MAX_SCOPES, Roles, ScopedClaims, Scopes};

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use serde_json::{Map, Value};

use crate::authn::header_safe;
use crate::error::Error;
use crate::validator::{Validated, Validator};

#[cfg(feature = "tower")]
#[cfg_attr(docsrs, doc(cfg(feature = "tower")))]
pub use self::body::ResponseBody;
#[cfg(feature = "tower")]
#[cfg_attr(docsrs, doc(cfg(feature = "tower")))]
pub use self::chain::principal_from;
pub use self::refusal::{DEFAULT_RETRY_AFTER, RETRY_AFTER_BOUNDS, Refusal, RefusalBody};
use self::refusal::{Hook, Shape};
#[cfg(feature = "tower")]
#[cfg_attr(docsrs, doc(cfg(feature = "tower")))]
pub use self::tower::{BearerAuthLayer, BearerAuthService, ResponseFuture};
#[cfg(feature = "tower")]
#[cfg_attr(docsrs, doc(cfg(feature = "tower")))]
pub use self::typed::claims_from;

/// Where the token is read from. Part of a verdict's identity: an outer
/// layer's verdict on one credential says nothing about another.
#[derive(Debug, Clone, PartialEq, Eq)]
enum TokenSource {
    /// `Authorization: Bearer <token>` (RFC 6750 §2.1).
    Bearer,
    /// A header holding the bare token (lowercase name).
    Header(Arc<str>),
    /// A cookie holding the bare token.
    Cookie(Arc<str>),
    /// Wherever a [`Chain`](crate::authn::Chain)'s authenticators read
    /// their credentials.
    Chain,
}

/// How a service checks bearer tokens: the validator, where the token comes
/// from, the scopes required, and the realm named in refusals. Cheap to clone.
///
/// Layers made from one `BearerAuth` (its clones and the configurations
/// derived from it: `require…`, `realm`, `allow_anonymous`) share one
/// validator identity: an inner layer that reads the token from the same
/// place (the same header or cookie) takes an outer one's verdict and
/// checks only its own requirements. A layer from another
/// [`BearerAuth::new`] (another issuer, say), or one reading another
/// credential ([`from_cookie`](BearerAuth::from_cookie),
/// [`from_header`](BearerAuth::from_header)), validates its own token.
///
/// ```
/// # use tokenwarden::{KeySet, Validator};
/// use tokenwarden::middleware::{BearerAuth, Scopes};
///
/// # let validator = Validator::builder().issuer("i").audience("a")
/// #     .keys(KeySet::from_jwks(include_bytes!("../../examples/data/jwks.json")).unwrap()).build().unwrap();
/// let auth = BearerAuth::new(validator).realm("orders");
/// let read = auth.clone().require_scopes(Scopes::all(["orders:read"]));
/// let layer = read.layer(); // a tower Layer
/// # let _ = layer;
/// ```
pub struct BearerAuth<C = Map<String, Value>> {
    // One shared allocation: frameworks clone the service per request, so a
    // clone is a single reference-count increment.
    config: Arc<Config<C>>,
}

/// A named custom requirement on the claims.
type Predicate<C> = (Box<str>, Arc<dyn Fn(&C) -> bool + Send + Sync>);

struct Config<C> {
    /// `None` for a chain's configuration ([`BearerAuth::from_chain`]).
    validator: Option<Validator>,
    /// Which validator judges tokens: assigned once in
    /// [`BearerAuth::with_claims`] and kept by every configuration derived
    /// from it, so a layer trusts an outer layer's verdict only when that
    /// layer used this very validator (issue 14 item 3).
    validator_id: u64,
    realm: Arc<str>,
    source: TokenSource,
    scopes: Scopes,
    /// Roles required, and the claim path they are read from.
    roles: Option<Roles>,
    anonymous: bool,
    /// Whether refusals to gRPC calls are answered the gRPC way.
    grpc: bool,
    predicates: Vec<Predicate<C>>,
    /// How refusals are shaped: the `on_refusal` hook, a 503's `Retry-After`.
    shape: Shape,
    /// The chain that judges requests ([`BearerAuth::from_chain`]), in
    /// place of the validator.
    chain: Option<crate::authn::Chain>,
    /// The internal token handed to the inner service (feature `mint`).
    internal: internal::Slot,
    /// Refusal lines per second per kind, shared by the configurations
    /// derived from one `BearerAuth`.
    log_limit: Arc<log_limit::LogLimiter>,
}

impl<C> Clone for BearerAuth<C> {
    fn clone(&self) -> Self {
        BearerAuth {
            config: self.config.clone(),
        }
    }
}

impl<C> fmt::Debug for BearerAuth<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BearerAuth")
            .field("realm", &self.config.realm)
            .field("source", &self.config.source)
            .field("scopes", &self.config.scopes)
            .field("anonymous", &self.config.anonymous)
            .field("grpc", &self.config.grpc)
            .finish_non_exhaustive()
    }
}

impl BearerAuth {
    /// Claims as a JSON object, tokens from `Authorization: Bearer`, realm
    /// `"api"`, no scopes required. [`with_claims`](BearerAuth::with_claims)
    /// chooses another claims type.
    pub fn new(validator: Validator) -> Self {
        Self::with_claims(validator)
    }
}

impl<C: ScopedClaims> BearerAuth<C> {
    /// Like [`new`](BearerAuth::new), with claims of type `C`.
    pub fn with_claims(validator: Validator) -> Self {
        BearerAuth {
            config: Arc::new(Config {
                validator: Some(validator),
                validator_id: next_validator_id(),
                realm: "api".into(),
                source: TokenSource::Bearer,
                scopes: Scopes::default(),
                roles: None,
                anonymous: false,
                grpc: true,
                predicates: Vec::new(),
                shape: Shape::default(),
                chain: None,
                internal: internal::Slot::default(),
                log_limit: log_limit::LogLimiter::shared(),
            }),
        }
    }

    fn with(self, f: impl FnOnce(&mut Config<C>)) -> Self {
        let c = &self.config;
        let mut config = Config {
            validator: c.validator.clone(),
            validator_id: c.validator_id,
            realm: c.realm.clone(),
            source: c.source.clone(),
            scopes: c.scopes.clone(),
            roles: c.roles.clone(),
            anonymous: c.anonymous,
            grpc: c.grpc,
            predicates: c.predicates.clone(),
            shape: c.shape.clone(),
            chain: c.chain.clone(),
            internal: c.internal.clone(),
            log_limit: c.log_limit.clone(),
        };
        f(&mut config);
        BearerAuth {
            config: Arc::new(config),
        }
    }

    /// The realm named in `WWW-Authenticate` (RFC 6750 §3); `api` unless
    /// set. Quotes and backslashes are dropped from it.
    #[must_use]
    pub fn realm(self, realm: &str) -> Self {
        let clean: String = realm.chars().filter(|c| *c != '"' && *c != '\\').collect();
        self.with(|c| c.realm = clean.into())
    }

    /// Reads the bare token from this header instead of `Authorization`.
    ///
    /// # Errors
    /// When `name` is not a valid header name (RFC 9110 §5.1 token).
    pub fn from_header(self, name: &str) -> Result<Self, crate::error::BuildError> {
        let valid = !name.is_empty()
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
        if !valid {
            return Err(crate::error::BuildError::new(format!(
                "{name:?} is not a header name"
            )));
        }
        let lower = name.to_ascii_lowercase();
        Ok(self.with(|c| c.source = TokenSource::Header(lower.into())))
    }

    /// Reads the bare token from this cookie instead of `Authorization`.
    /// Cookies whose names differ from `name` only by ASCII case or
    /// percent-encoding are refused (400), as are two cookies named `name`.
    #[must_use]
    pub fn from_cookie(self, name: &str) -> Self {
        self.with(|c| c.source = TokenSource::Cookie(name.into()))
    }

    /// Scopes the token must grant (403 `insufficient_scope` otherwise, the
    /// challenge naming the scopes lacking). A handler or tonic method
    /// checks the same with [`Scopes::check`].
    #[must_use]
    pub fn require_scopes(self, scopes: Scopes) -> Self {
        self.with(|c| c.scopes = scopes)
    }

    /// Renamed [`require_scopes`](Self::require_scopes), so that it cannot
    /// be taken for the validator's required claims.
    #[deprecated(note = "renamed `require_scopes`")]
    #[must_use]
    pub fn require(self, scopes: Scopes) -> Self {
        self.require_scopes(scopes)
    }

    /// Roles the token must hold ([`Roles::all`], [`Roles::any`] at a
    /// dotted claim path such as `"realm_access.roles"`); 403 otherwise. A
    /// handler or tonic method checks the same with [`Roles::check`].
    #[must_use]
    pub fn require_roles(self, roles: Roles) -> Self {
        self.with(|c| c.roles = Some(roles))
    }

    /// A custom requirement on the verified claims; 403 naming `name` when
    /// `predicate` returns false.
    #[must_use]
    pub fn require_claims<F>(self, name: &str, predicate: F) -> Self
    where
        F: Fn(&C) -> bool + Send + Sync + 'static,
    {
        let name = header_safe(name).into_boxed_str();
        self.with(|c| c.predicates.push((name, Arc::new(predicate))))
    }

    /// Lets requests without a token through, with no claims attached; a
    /// token that is present must still be valid.
    ///
    /// Only bearer credentials are judged: an `Authorization` header of
    /// another scheme (`Basic`, `DPoP`, …) is no token, so it passes here
    /// with no claims (whatever checks that scheme is another layer's job).
    /// A header that starts with `bearer` but is not `Bearer`, spaces and
    /// one token (`Bearer<TAB>x`, `Bearer,x`) is refused with 400
    /// `invalid_request`, never taken as anonymous.
    #[must_use]
    pub fn allow_anonymous(self) -> Self {
        self.with(|c| c.anonymous = true)
    }

    /// Whether refusals of gRPC calls are answered the gRPC way: HTTP 200
    /// with `grpc-status` (16 unauthenticated, 7 permission denied, …), as
    /// gRPC clients such as tonic's expect. On by default, and only ever
    /// for HTTP/2 requests with an `application/grpc` content type.
    ///
    /// Turn it off (`.grpc(false)`) for a forward-auth endpoint: a gateway
    /// that asks this service whether to let a request through (Envoy
    /// `ext_authz` over HTTP/2, an h2c `auth_request`) reads any 2xx as
    /// "allow", so a client that sends a gRPC content type would turn every
    /// refusal into a pass. Off, a refusal keeps its 4xx/5xx status.
    #[must_use]
    pub fn grpc(self, enabled: bool) -> Self {
        self.with(|c| c.grpc = enabled)
    }

    /// Whether this request's refusal is answered the gRPC way: gRPC mode
    /// on ([`grpc`](Self::grpc)) and a gRPC call ([`is_grpc`]).
    pub(crate) fn answers_grpc<H: HeaderView>(&self, http2: bool, headers: &H) -> bool {
        self.config.grpc && is_grpc(http2, headers)
    }

    /// A tower [`Layer`](tower_layer::Layer) applying this configuration.
    #[cfg(feature = "tower")]
    #[cfg_attr(docsrs, doc(cfg(feature = "tower")))]
    pub fn layer(&self) -> BearerAuthLayer<C> {
        BearerAuthLayer::new(self.clone())
    }

    /// The realm named in refusals.
    pub fn realm_name(&self) -> &str {
        &self.config.realm
    }

    /// Reads the token from the request headers.
    pub(crate) fn token<'h, H: HeaderView>(
        &self,
        headers: &'h H,
    ) -> Result<Option<&'h str>, AuthRejection> {
        match &self.config.source {
            TokenSource::Bearer => bearer(headers),
            TokenSource::Header(name) => single(headers, name).map(|v| v.map(str::trim)),
            TokenSource::Cookie(name) => cookie(headers, name),
            // The chain's authenticators read their own credentials.
            TokenSource::Chain => Ok(None),
        }
    }

    /// What this layer puts in the request's extensions for a token it
    /// validated: the claims, which validator judged them and where the
    /// token was read from.
    pub(crate) fn checked(&self, validated: Arc<Validated<C>>) -> Checked {
        Checked {
            by: self.config.validator_id,
            from: self.config.source.clone(),
            claims_type: std::any::type_name::<C>(),
            validated,
            roles: None,
            authenticator: "jwt",
        }
    }

    /// What this layer puts in the request's extensions when it lets a
    /// request through without a token: the realm and protocol the
    /// extractors answer a refusal with.
    pub(crate) fn anonymous(&self, grpc: bool) -> Anonymous {
        Anonymous {
            realm: self.config.realm.clone(),
            grpc,
            hook: self.config.shape.hook.clone(),
        }
    }

    /// An outer layer's verdict, if that layer used this very validator on
    /// the token from the same place: then only this route's requirements
    /// remain to check. `None` when there is no such verdict (none, one of
    /// another validator, which proves nothing about this layer's issuer,
    /// or one on another credential, say the `Authorization` header where
    /// this layer reads a cookie): validate this layer's token.
    pub(crate) fn outer_verdict(
        &self,
        already: Option<&Checked>,
    ) -> Option<Result<(), AuthRejection>> {
        // A chain judges every request itself (its principal is not the
        // claims an outer layer recorded).
        if self.config.chain.is_some() {
            return None;
        }
        let v =
            already.filter(|c| c.by == self.config.validator_id && c.from == self.config.source)?;
        // The same validator identity means the same claims type `C`.
        let v = v.validated.downcast_ref::<Validated<C>>()?;
        Some(self.requirements(&v.claims))
    }

    /// The full check without waiting. [`Outcome::Retry`] sends an unknown
    /// kid to the slow path.
    pub(crate) fn check_now<H: HeaderView>(&self, headers: &H) -> Outcome<C> {
        let token = match self.token(headers) {
            Ok(Some(t)) => t,
            Ok(None) if self.config.anonymous => return Outcome::Anonymous,
            Ok(None) => return Outcome::Refused(AuthRejection::Missing),
            Err(r) => return Outcome::Refused(r),
        };
        // The shared answer: with the validator's cache, a repeated token's
        // claims are neither parsed again nor copied.
        let Some(validator) = &self.config.validator else {
            // A chain's configuration: the adapters ask the chain.
            return Outcome::Refused(AuthRejection::NotConfigured);
        };
        match validator.validate_shared::<C>(token) {
            Ok(v) => self.scopes(v),
            Err(Error::UnknownKey { kid: Some(_) }) => Outcome::Retry(token.to_owned()),
            Err(e) => Outcome::Refused(AuthRejection::from_error(e)),
        }
    }

    /// Decides for one request's headers outside any framework (a gateway's
    /// auth subrequest, a Lambda handler): reads the token, validates it
    /// (waiting for the key set's refresh only on an unknown kid) and checks
    /// this configuration's requirements. `Ok(None)`: no token, and
    /// [`allow_anonymous`](Self::allow_anonymous) lets that through. There
    /// is no connection here, so no client certificate: a certificate-bound
    /// token (`cnf["x5t#S256"]`) is refused, kind `certificate_missing`.
    ///
    /// ```
    /// use tokenwarden::middleware::{BearerAuth, Scopes};
    /// # use tokenwarden::{KeySet, Validator};
    /// # let validator = Validator::builder().issuer("i").audience("a")
    /// #     .keys(KeySet::from_hmac_secret(Some("k"), tokenwarden::Algorithm::HS256, &[7; 32])?).build()?;
    /// let auth = BearerAuth::new(validator).require_scopes(Scopes::all(["orders:read"]));
    /// let headers = http::HeaderMap::new();
    /// # tokio::runtime::Builder::new_current_thread().build()?.block_on(async {
    /// let refusal = auth.authorize(&headers).await.unwrap_err();
    /// assert_eq!(refusal.status(), 401);
    /// # });
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// The [`AuthRejection`] to answer with.
    #[cfg(feature = "tower")]
    #[cfg_attr(docsrs, doc(cfg(feature = "tower")))]
    pub async fn authorize(
        &self,
        headers: &http::HeaderMap,
    ) -> Result<Option<Validated<C>>, AuthRejection> {
        let v = match self.check_now(headers) {
            Outcome::Allowed(v) => v,
            Outcome::Anonymous => return Ok(None),
            Outcome::Refused(r) => return Err(r),
            Outcome::Retry(token) => self.check_refreshing(&token).await?,
            // A chain's verdict is a principal, not a `Validated<C>`: the
            // chain's adapters use `Chain::authenticate`.
            Outcome::Principal(_) | Outcome::Wait => return Err(AuthRejection::NotConfigured),
        };
        // No connection here, so no certificate: a certificate-bound token
        // is refused (RFC 8705 §3), whichever path validated it.
        unbound(&v)?;
        Ok(Some(Arc::unwrap_or_clone(v)))
    }

    /// The slow path for a token whose kid was unknown: waits for the key
    /// source's refresh (shared, rate-limited), then decides. Its answer is
    /// allowed or refused, nothing else: no state is left for an adapter to
    /// guess at (issue 14 item 18).
    pub(crate) async fn check_refreshing(
        &self,
        token: &str,
    ) -> Result<Arc<Validated<C>>, AuthRejection> {
        let Some(validator) = &self.config.validator else {
            return Err(AuthRejection::NotConfigured);
        };
        let v = validator
            .validate_async::<C>(token)
            .await
            .map_err(AuthRejection::from_error)?;
        sender(&v)?;
        self.requirements(&v.claims)?;
        Ok(Arc::new(v))
    }

    fn scopes(&self, v: Arc<Validated<C>>) -> Outcome<C> {
        if let Err(r) = sender(&v) {
            return Outcome::Refused(r);
        }
        match self.requirements(&v.claims) {
            Ok(()) => Outcome::Allowed(v),
            Err(r) => Outcome::Refused(r),
        }
    }

    /// The route's requirements: scopes, then roles, then custom predicates.
    fn requirements(&self, claims: &C) -> Result<(), AuthRejection> {
        self.config.scopes.check(claims)?;
        if let Some(roles) = &self.config.roles {
            roles.check(claims)?;
        }
        for (name, predicate) in &self.config.predicates {
            if !predicate(claims) {
                return Err(AuthRejection::Forbidden {
                    requirement: name.to_string(),
                });
            }
        }
        Ok(())
    }

    /// How to answer a refusal: status and headers (logged once, here).
    /// `grpc`: the request is a gRPC call ([`is_grpc`]).
    pub(crate) fn refusal(&self, r: &AuthRejection, grpc: bool) -> Answer {
        log_refusal(r, &self.config.log_limit);
        self.config.shape.answer(r, &self.config.realm, grpc)
    }
}

/// A refusal as any framework renders it: a status, the layer's headers,
/// the hook's headers (already filtered) and the body.
#[derive(Debug, Default)]
pub(crate) struct Answer {
    pub(crate) status: u16,
    pub(crate) headers: Vec<(&'static str, String)>,
    /// Headers from an `on_refusal` hook, none of the layer's own.
    pub(crate) extra: Vec<(String, String)>,
    pub(crate) body: Vec<u8>,
}

/// The request extension a layer adds for a token it validated. Private, so
/// only a layer can have put it there, and it names the validator that
/// judged the token (by the id of its [`BearerAuth`] family) and where the
/// token came from: an inner layer on another validator, or reading another
/// credential, does not take it as proof. One per request whatever the
/// claims type (the innermost layer's): the extractors read any type from it
/// (`typed.rs`).
#[derive(Clone)]
pub(crate) struct Checked {
    by: u64,
    from: TokenSource,
    /// The layer's claims type, for logs.
    pub(crate) claims_type: &'static str,
    /// The layer's `Arc<Validated<C>>`, its claims type erased.
    pub(crate) validated: Arc<dyn std::any::Any + Send + Sync>,
    /// Where a chain's JWT authenticator reads roles, so the principal can
    /// be rebuilt from these claims.
    pub(crate) roles: Option<Arc<str>>,
    /// The authenticator that vouched (`"jwt"`, `"dpop"`), for the rebuilt
    /// principal.
    pub(crate) authenticator: &'static str,
}

/// A new validator identity: unique for the process's life (a `u64`
/// counter does not wrap).
fn next_validator_id() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// Marks a request a layer let through without a token, with what the
/// extractors need to refuse it the way that layer would have.
/// (Read by the extractors only: with `tower` alone nothing reads it.)
#[derive(Debug, Clone)]
#[cfg_attr(not(any(feature = "axum", feature = "actix")), allow(dead_code))]
pub(crate) struct Anonymous {
    realm: Arc<str>,
    grpc: bool,
    hook: Option<Hook>,
}

/// The result of checking one request's token. Every state is a decision:
/// a verdict from an outer layer is checked apart
/// ([`BearerAuth::outer_verdict`]), so no arm is left for "unexpected".
pub(crate) enum Outcome<C> {
    /// Shared: the request's extension is this very value.
    Allowed(Arc<Validated<C>>),
    Anonymous,
    Refused(AuthRejection),
    /// The kid was unknown: retry through the refreshing path.
    Retry(String),
    /// A [`Chain`](crate::authn::Chain)'s principal, requirements met.
    Principal(crate::authn::Principal),
    /// A chain's authenticator must wait (an API key store, your own
    /// authenticator, an unknown JWT `kid`): decide with
    /// [`BearerAuth::check_chain`].
    Wait,
}

fn log_refusal(r: &AuthRejection, limit: &log_limit::LogLimiter) {
    // Every refusal is counted; its line is rate-limited per kind, so a
    // flood of bad tokens cannot flood the log (`suppressed`: the lines of
    // this kind not written since the last one that was).
    observe::refused(r);
    let Some(suppressed) = limit.admit(r.reason()) else {
        return;
    };
    // Never the token: the reason, and the error's own text, which is
    // built to be safe to log (names and kinds, token strings escaped and
    // shortened, never a claim value but `aud`/`iss`).
    match r.error() {
        Some(error) => tracing::info!(
            reason = r.reason(),
            status = r.status(),
            %error,
            suppressed,
            "bearer token refused"
        ),
        None => tracing::info!(
            reason = r.reason(),
            status = r.status(),
            suppressed,
            "bearer token refused"
        ),
    }
}

/// A token taken as `Bearer` by a validator alone: never a DPoP-bound one
/// (RFC 9449 §7.1), whatever the claims type (the validator reads `cnf`
/// itself). The certificate binding is the adapters' (they hold the
/// connection's certificate), and [`unbound`]'s for `authorize`.
fn sender<C>(v: &Validated<C>) -> Result<(), AuthRejection> {
    crate::authn::mtls::refuse_dpop_bound_as_bearer(&v.confirmation)
        .map_err(|r| AuthRejection::Chain(Box::new(r)))
}

/// A token decided without a connection ([`BearerAuth::authorize`]): no
/// certificate was presented, so a certificate-bound token (`x5t#S256`) is
/// refused, kind `certificate_missing` (RFC 8705 §3).
#[cfg(feature = "tower")]
fn unbound<C>(v: &Validated<C>) -> Result<(), AuthRejection> {
    crate::authn::mtls::check_bearer(
        &v.confirmation,
        None,
        crate::authn::mtls::CertificateBinding::WhenBound,
    )
    .map_err(|r| AuthRejection::Chain(Box::new(r)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::middleware::credential::headers;

    fn auth() -> BearerAuth {
        let keys =
            crate::KeySet::from_hmac_secret(None, crate::Algorithm::HS256, &[7; 32]).unwrap();
        let v = Validator::builder()
            .issuer("i")
            .audience("a")
            .keys(keys)
            .build()
            .unwrap();
        BearerAuth::new(v)
    }

    #[test]
    fn token_from_a_custom_header_or_cookie() {
        let h = headers(&[
            ("x-token", " abc "),
            ("cookie", "sid=1; at=xyz"),
            ("authorization", "Bearer nope"),
        ]);
        assert_eq!(
            auth().from_header("X-Token").unwrap().token(&h),
            Ok(Some("abc"))
        );
        assert_eq!(auth().from_cookie("at").token(&h), Ok(Some("xyz")));
        assert_eq!(auth().from_cookie("missing").token(&h), Ok(None));
        assert!(auth().from_header("bad header").is_err());
        let twice = headers(&[("x-token", "a"), ("x-token", "b")]);
        assert!(
            auth()
                .from_header("x-token")
                .unwrap()
                .token(&twice)
                .is_err()
        );
    }
}
