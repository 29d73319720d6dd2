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
mod internal;
mod log_limit;
mod observe;
mod refusal;
mod requirements;
#[cfg(feature = "tower")]
mod tower;
mod typed;

pub use self::log_limit::REFUSAL_LOGS_PER_SECOND;
pub use self::requirements::Roles;

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use crate::error::{Error, ErrorKind};
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

/// Read access to request headers, whichever HTTP crate holds them.
pub(crate) trait HeaderView {
    /// Every value of the header `name` (lowercase), as bytes.
    fn values<'a>(&'a self, name: &str) -> impl Iterator<Item = &'a [u8]> + 'a;
}

#[cfg(feature = "tower")]
impl HeaderView for http::HeaderMap {
    fn values<'a>(&'a self, name: &str) -> impl Iterator<Item = &'a [u8]> + 'a {
        crate::authn::request::header_values(self, name)
            .iter()
            .map(http::HeaderValue::as_bytes)
    }
}

/// Claims a route's scope and role requirements can be checked against.
///
/// Implemented for JSON claims: scopes from `scope` (a space-separated
/// string, RFC 8693 §4.2, RFC 9068 §2.2.3) or `scp` (a space-separated
/// string as Entra ID issues it, or an array of strings as Okta does; either
/// claim is read in either shape);
/// roles from any dotted claim path (`roles`, `realm_access.roles`,
/// `cognito:groups`) holding a string or an array of strings. Implement it
/// for your own claims type in a few lines.
pub trait ScopedClaims: DeserializeOwned + Clone + Send + Sync + 'static {
    /// Whether the token grants `scope`.
    fn has_scope(&self, scope: &str) -> bool;

    /// Whether the claim at the dotted `path` holds `role`. By default no
    /// role is held, so role requirements refuse until this is implemented.
    fn has_role(&self, path: &str, role: &str) -> bool {
        let _ = (path, role);
        false
    }

    /// The token's `sub`, for the request's `tracing` span. `None` by
    /// default.
    fn subject(&self) -> Option<&str> {
        None
    }

    /// The token's `iss`, for the request's `tracing` span. `None` by
    /// default.
    fn issuer(&self) -> Option<&str> {
        None
    }
}

/// The value at a dotted claim path.
fn at_path<'v>(claims: &'v Map<String, Value>, path: &str) -> Option<&'v Value> {
    let mut parts = path.split('.');
    let mut value = claims.get(parts.next()?)?;
    for part in parts {
        value = value.as_object()?.get(part)?;
    }
    Some(value)
}

/// Most scopes (or roles) read from one claim: a grant listed after these is
/// not seen, so the check fails closed and its cost is bounded whatever the
/// token lists.
pub const MAX_SCOPES: usize = 256;

/// Whether a claim value grants `item`: a space-separated string or an
/// array of strings, the first [`MAX_SCOPES`] entries read.
fn grants(value: Option<&Value>, item: &str) -> bool {
    match value {
        Some(Value::String(s)) => s
            .split(' ')
            .filter(|g| !g.is_empty())
            .take(MAX_SCOPES)
            .any(|g| g == item),
        Some(Value::Array(a)) => a.iter().take(MAX_SCOPES).any(|g| g.as_str() == Some(item)),
        _ => false,
    }
}

impl ScopedClaims for Map<String, Value> {
    fn has_scope(&self, scope: &str) -> bool {
        // RFC 9068 §2.2.3 / RFC 8693 §4.2: `scope` is space-separated; `scp`
        // is a space-separated string in Entra ID access tokens and an array
        // in Okta's. Either claim is read in either shape.
        grants(self.get("scope"), scope) || grants(self.get("scp"), scope)
    }

    fn has_role(&self, path: &str, role: &str) -> bool {
        grants(at_path(self, path), role)
    }

    fn subject(&self) -> Option<&str> {
        self.get("sub").and_then(Value::as_str)
    }

    fn issuer(&self) -> Option<&str> {
        self.get("iss").and_then(Value::as_str)
    }
}

impl ScopedClaims for Value {
    fn has_scope(&self, scope: &str) -> bool {
        self.as_object().is_some_and(|m| m.has_scope(scope))
    }

    fn has_role(&self, path: &str, role: &str) -> bool {
        self.as_object().is_some_and(|m| m.has_role(path, role))
    }

    fn subject(&self) -> Option<&str> {
        self.get("sub").and_then(Value::as_str)
    }

    fn issuer(&self) -> Option<&str> {
        self.get("iss").and_then(Value::as_str)
    }
}

/// What a route requires of the token's scopes (least privilege).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Scopes {
    all: Vec<Box<str>>,
    any: Vec<Box<str>>,
}

impl Scopes {
    /// Every one of `scopes` must be granted.
    pub fn all<I: IntoIterator<Item = S>, S: Into<String>>(scopes: I) -> Scopes {
        Scopes {
            all: scopes
                .into_iter()
                .map(|s| s.into().into_boxed_str())
                .collect(),
            any: Vec::new(),
        }
    }

    /// At least one of `scopes` must be granted.
    pub fn any<I: IntoIterator<Item = S>, S: Into<String>>(scopes: I) -> Scopes {
        Scopes {
            all: Vec::new(),
            any: scopes
                .into_iter()
                .map(|s| s.into().into_boxed_str())
                .collect(),
        }
    }

    /// The scopes the claims lack, space-separated, or `None` if satisfied.
    fn missing<C: ScopedClaims>(&self, claims: &C) -> Option<String> {
        self.lacking(|s| claims.has_scope(s))
    }

    /// What `held` lacks of this requirement, space-separated.
    fn lacking(&self, held: impl Fn(&str) -> bool) -> Option<String> {
        let lacking: Vec<&str> = self.all.iter().filter(|s| !held(s)).map(|s| &**s).collect();
        if !lacking.is_empty() {
            return Some(lacking.join(" "));
        }
        if !self.any.is_empty() && !self.any.iter().any(|s| held(s)) {
            return Some(self.any.join(" "));
        }
        None
    }
}

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

/// Why a `Claims` extractor refused, answered with the realm (and gRPC
/// mapping) of the layer that let the request through: 401 when that layer
/// allowed an anonymous request, 500 (logged) when no layer ran at all.
#[cfg(any(feature = "axum", feature = "actix"))]
#[cfg_attr(docsrs, doc(cfg(any(feature = "axum", feature = "actix"))))]
#[derive(Debug, Clone, PartialEq)]
pub struct ClaimsRejection {
    rejection: AuthRejection,
    realm: Option<Arc<str>>,
    grpc: bool,
    /// The layer's `on_refusal` hook, when a layer let the request through.
    hook: Option<Hook>,
    /// A short explanation for the response body (500s only).
    body: Option<&'static str>,
}

#[cfg(any(feature = "axum", feature = "actix"))]
impl ClaimsRejection {
    /// The refusal for a request no layer recorded claims for: `Missing`
    /// behind an anonymous-allowing layer, `NotConfigured` (logged as an
    /// error: a wiring mistake) when no layer ran.
    pub(crate) fn without_claims<C>(anonymous: Option<&Anonymous>) -> Self {
        match anonymous {
            Some(a) => {
                let rejection = AuthRejection::Missing;
                log_refusal(&rejection, log_limit::refusals());
                ClaimsRejection {
                    rejection,
                    realm: Some(a.realm.clone()),
                    grpc: a.grpc,
                    hook: a.hook.clone(),
                    body: None,
                }
            }
            None => {
                typed::no_layer::<C>();
                ClaimsRejection::internal(None)
            }
        }
    }

    /// A 500: a wiring mistake the server logged; `body`, if any, says what
    /// kind in a few words (no type names, no claims).
    pub(crate) fn internal(body: Option<&'static str>) -> Self {
        ClaimsRejection {
            rejection: AuthRejection::NotConfigured,
            realm: None,
            grpc: false,
            hook: None,
            body,
        }
    }

    /// The refusal.
    pub fn rejection(&self) -> &AuthRejection {
        &self.rejection
    }

    /// The HTTP status code (as [`AuthRejection::status`]).
    pub fn status(&self) -> u16 {
        self.rejection.status()
    }

    /// Status, headers and body, with the layer's realm and hook.
    pub(crate) fn answer(&self) -> Answer {
        if let Some(body) = self.body {
            // A wiring mistake: a plain 500 saying which kind, no challenge.
            return Answer {
                status: self.status(),
                headers: vec![("content-type", "text/plain; charset=utf-8".into())],
                extra: Vec::new(),
                body: body.as_bytes().to_vec(),
            };
        }
        let shape = Shape {
            hook: self.hook.clone(),
            ..Shape::default()
        };
        shape.answer(
            &self.rejection,
            self.realm.as_deref().unwrap_or("api"),
            self.grpc,
        )
    }
}

#[cfg(any(feature = "axum", feature = "actix"))]
impl fmt::Display for ClaimsRejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.rejection.fmt(f)
    }
}

#[cfg(any(feature = "axum", feature = "actix"))]
impl std::error::Error for ClaimsRejection {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.rejection)
    }
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

use crate::authn::request::cookie_name_reads_as;
use crate::authn::{header_safe, visible_ascii};

/// RFC 6750 §2.1: `Authorization: Bearer <token>`, scheme case-insensitive,
/// exactly one credential: `credentials = "Bearer" 1*SP b64token`.
///
/// A value that starts with `bearer` (any case) is a bearer credential,
/// whatever follows: `Bearer<TAB>x`, `Bearer,x` or `Bearerx` is a malformed
/// one (400 `invalid_request`), never "no token". An application that splits
/// on any whitespace would read a token there that we never judged, and on
/// an anonymous-allowing route act on it. Any other scheme (`Basic`,
/// `DPoP`, …) carries no bearer credential: `Ok(None)`, so a route that
/// allows anonymous callers lets it through with no claims, as it would a
/// request with no `Authorization` header.
fn bearer<H: HeaderView>(headers: &H) -> Result<Option<&str>, AuthRejection> {
    const MALFORMED: AuthRejection = AuthRejection::InvalidRequest(
        "the Authorization header must hold exactly one bearer token",
    );
    let Some(value) = single(headers, "authorization")? else {
        return Ok(None);
    };
    // The chain's parser (one for every scheme and layer); another scheme
    // is no bearer credential.
    crate::authn::scheme_credential(value, "Bearer").map_err(|crate::authn::Malformed| MALFORMED)
}

/// The one value of a header; several are an invalid request (RFC 6750 §3.1).
fn single<'h, H: HeaderView>(headers: &'h H, name: &str) -> Result<Option<&'h str>, AuthRejection> {
    let mut values = headers.values(name);
    let Some(first) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(AuthRejection::InvalidRequest(
            "more than one credential header",
        ));
    }
    visible_ascii(first)
        .map(Some)
        .ok_or(AuthRejection::InvalidRequest(
            "the credential header is not visible ASCII",
        ))
}

/// The one cookie named `name`, across every `Cookie` header (HTTP/2 may
/// split cookies over several fields, RFC 9113 §8.2.3). Two cookies of that
/// name are an invalid request, as two `Authorization` headers are: a proxy
/// or application that reads the other one would act on a token we never
/// judged. A matching cookie whose value is not visible ASCII is refused
/// too, rather than skipped. So is a cookie whose name only looks like the
/// credential's: one that percent-decodes, ASCII-case-folds or PHP-mangles
/// to it (`%74oken`, `Token`, `my.token` for `my_token`), which PHP, for
/// one, reads as the credential cookie (it decodes and mangles names and
/// keeps the first).
fn cookie<'h, H: HeaderView>(headers: &'h H, name: &str) -> Result<Option<&'h str>, AuthRejection> {
    let mut found = None;
    for header in headers.values("cookie") {
        // RFC 6265 §4.2.1: `cookie-pair *( ";" SP cookie-pair )`; parsed
        // leniently on bytes, so a non-ASCII neighbour cannot hide a pair.
        for pair in header.split(|b| *b == b';') {
            let Some(eq) = pair.iter().position(|b| *b == b'=') else {
                continue;
            };
            let pair_name = trim_ows(&pair[..eq]);
            if pair_name != name.as_bytes() {
                if cookie_name_reads_as(pair_name, name.as_bytes()) {
                    return Err(AuthRejection::InvalidRequest(
                        "a cookie name that reads as the credential cookie's",
                    ));
                }
                continue;
            }
            if found.is_some() {
                return Err(AuthRejection::InvalidRequest(
                    "more than one credential cookie",
                ));
            }
            let value = pair.get(eq.saturating_add(1)..).unwrap_or_default();
            found = Some(
                visible_ascii(trim_ows(value)).ok_or(AuthRejection::InvalidRequest(
                    "the credential cookie is not visible ASCII",
                ))?,
            );
        }
    }
    Ok(found)
}

/// `bytes` without leading and trailing spaces and tabs (RFC 9110 §5.6.3 OWS).
fn trim_ows(bytes: &[u8]) -> &[u8] {
    let is_ows = |b: &u8| *b == b' ' || *b == b'\t';
    let start = bytes.iter().position(|b| !is_ows(b)).unwrap_or(bytes.len());
    let end = bytes
        .iter()
        .rposition(|b| !is_ows(b))
        .map_or(start, |e| e.saturating_add(1));
    bytes.get(start..end).unwrap_or_default()
}

/// Whether a refusal is answered the gRPC way (HTTP 200, `grpc-status`).
/// Only for HTTP/2 requests whose content type is `application/grpc` or
/// `application/grpc+…` / `;…` (gRPC over HTTP/2, PROTOCOL-HTTP2.md): any
/// HTTP/1.x client can send that content type, and a gateway asking for a
/// forward-auth decision reads 200 as "allow" (issue 14 item 4).
pub(crate) fn is_grpc<H: HeaderView>(http2: bool, headers: &H) -> bool {
    const GRPC: &[u8] = b"application/grpc";
    http2
        && headers.values("content-type").next().is_some_and(|v| {
            v.get(..GRPC.len())
                .is_some_and(|p| p.eq_ignore_ascii_case(GRPC))
                && matches!(v.get(GRPC.len()), None | Some(b'+' | b';'))
        })
}

/// Why a request was refused, with the status and challenge RFC 6750 §3
/// prescribes. Never carries the token.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum AuthRejection {
    /// No token: 401 with a bare `Bearer realm="…"` challenge (RFC 6750 §3.1).
    Missing,
    /// Malformed credentials (several headers, several tokens): 400 `invalid_request`.
    InvalidRequest(&'static str),
    /// The token was refused: 401 `invalid_token`, the error kind as
    /// description. The [`Error`] is the refusal's `source()`.
    InvalidToken(Error),
    /// The token lacks scopes: 403 `insufficient_scope` naming them.
    InsufficientScope {
        /// The scopes required, space-separated.
        scope: String,
    },
    /// The token lacks a required role or fails a custom requirement: 403
    /// `insufficient_scope`, the requirement as description.
    Forbidden {
        /// What was required (a role list or the requirement's name).
        requirement: String,
    },
    /// No usable keys: 503 with `Retry-After`; the client did nothing
    /// wrong. The [`Error`] is the refusal's `source()`.
    KeysUnavailable(Error),
    /// The route expects claims but no [`BearerAuthLayer`] put them there: 500.
    NotConfigured,
    /// A [`Chain`](crate::authn::Chain)'s refusal (from
    /// [`BearerAuth::from_chain`]): its status, its kind as reason, one
    /// challenge per scheme it names (`Bearer`, `ApiKey`, …), in the
    /// layer's realm.
    Chain(Box<crate::authn::Refusal>),
    /// The internal token ([`BearerAuth::internal_token`], feature `mint`)
    /// could not be minted for a request that passed: 500
    /// `internal_token_failed`, never a pass without it.
    InternalTokenFailed {
        /// Why, as a stable kind ([`MintError::kind`](crate::mint::MintError::kind)
        /// or `no_principal`).
        kind: &'static str,
    },
}

impl AuthRejection {
    fn from_error(e: Error) -> Self {
        match e.kind() {
            ErrorKind::KeysUnavailable => AuthRejection::KeysUnavailable(e),
            _ => AuthRejection::InvalidToken(e),
        }
    }

    /// The error that refused the token, if a token was judged.
    pub fn error(&self) -> Option<&Error> {
        match self {
            AuthRejection::InvalidToken(e) | AuthRejection::KeysUnavailable(e) => Some(e),
            _ => None,
        }
    }

    /// The HTTP status code.
    pub fn status(&self) -> u16 {
        match self {
            AuthRejection::Missing | AuthRejection::InvalidToken(_) => 401,
            AuthRejection::InvalidRequest(_) => 400,
            AuthRejection::InsufficientScope { .. } | AuthRejection::Forbidden { .. } => 403,
            AuthRejection::KeysUnavailable(_) => 503,
            AuthRejection::NotConfigured | AuthRejection::InternalTokenFailed { .. } => 500,
            AuthRejection::Chain(r) => r.status(),
        }
    }

    /// A short, stable reason for logs and metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            AuthRejection::Missing => "missing_token",
            AuthRejection::InvalidRequest(_) => "invalid_request",
            AuthRejection::InvalidToken(e) => e.kind().as_str(),
            AuthRejection::InsufficientScope { .. } | AuthRejection::Forbidden { .. } => {
                "insufficient_scope"
            }
            AuthRejection::KeysUnavailable(_) => "keys_unavailable",
            AuthRejection::NotConfigured => "not_configured",
            AuthRejection::InternalTokenFailed { .. } => "internal_token_failed",
            AuthRejection::Chain(r) => r.kind(),
        }
    }

    /// The `WWW-Authenticate` challenge, if the status calls for one (the
    /// first, for a chain's refusal naming several schemes: see
    /// [`challenges`](Self::challenges)).
    pub fn challenge(&self, realm: &str) -> Option<String> {
        self.challenges(realm).into_iter().next()
    }

    /// Every `WWW-Authenticate` challenge, one per scheme: one for a bearer
    /// refusal, every scheme of a chain for a request with no credential
    /// (RFC 9110 §11.6.1), none for 500 and 503.
    pub fn challenges(&self, realm: &str) -> Vec<String> {
        if let AuthRejection::Chain(r) = self {
            return r.challenges(realm);
        }
        self.bearer_challenge(realm).into_iter().collect()
    }

    fn bearer_challenge(&self, realm: &str) -> Option<String> {
        match self {
            AuthRejection::Missing => Some(format!("Bearer realm=\"{realm}\"")),
            AuthRejection::InvalidRequest(why) => Some(format!(
                "Bearer realm=\"{realm}\", error=\"invalid_request\", error_description=\"{why}\""
            )),
            AuthRejection::InvalidToken(e) => Some(format!(
                "Bearer realm=\"{realm}\", error=\"invalid_token\", error_description=\"{}\"",
                e.kind()
            )),
            AuthRejection::InsufficientScope { scope } => Some(format!(
                "Bearer realm=\"{realm}\", error=\"insufficient_scope\", scope=\"{scope}\""
            )),
            AuthRejection::Forbidden { requirement } => Some(format!(
                "Bearer realm=\"{realm}\", error=\"insufficient_scope\", error_description=\"requires {requirement}\""
            )),
            AuthRejection::KeysUnavailable(_)
            | AuthRejection::NotConfigured
            | AuthRejection::InternalTokenFailed { .. }
            | AuthRejection::Chain(_) => None,
        }
    }

    /// The gRPC status code for the same refusal.
    fn grpc_status(&self) -> &'static str {
        match self {
            AuthRejection::Missing | AuthRejection::InvalidToken(_) => "16", // UNAUTHENTICATED
            AuthRejection::InsufficientScope { .. } | AuthRejection::Forbidden { .. } => "7", // PERMISSION_DENIED
            AuthRejection::InvalidRequest(_) => "3", // INVALID_ARGUMENT
            AuthRejection::KeysUnavailable(_) => "14", // UNAVAILABLE
            AuthRejection::NotConfigured | AuthRejection::InternalTokenFailed { .. } => "13", // INTERNAL
            AuthRejection::Chain(r) => match r.status() {
                400 => "3",
                401 => "16",
                403 => "7",
                503 => "14",
                _ => "13",
            },
        }
    }

    /// Status and headers: the challenge, and for gRPC requests (HTTP/2
    /// only, see [`is_grpc`]) a 200 with `grpc-status`, as gRPC clients
    /// expect.
    pub(crate) fn answer(&self, realm: &str, grpc: bool) -> Answer {
        let mut headers = Vec::with_capacity(3);
        for challenge in self.challenges(realm) {
            headers.push(("www-authenticate", challenge));
        }
        // RFC 9449 §8: `use_dpop_nonce` comes with the nonce to use.
        if let AuthRejection::Chain(r) = self {
            if let Some(nonce) = r.dpop_nonce() {
                headers.push(("dpop-nonce", nonce.to_owned()));
            }
        }
        let status = if grpc {
            headers.push(("content-type", "application/grpc".into()));
            headers.push(("grpc-status", self.grpc_status().into()));
            headers.push(("grpc-message", self.reason().into()));
            200
        } else {
            self.status()
        };
        Answer {
            status,
            headers,
            ..Answer::default()
        }
    }
}

impl fmt::Display for AuthRejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.reason(), self.status())
    }
}

/// The [`Error`] that refused the token, for a refused token or unusable
/// keys; none for refusals decided before or after validation.
impl std::error::Error for AuthRejection {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.error().map(|e| e as _)
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

    /// Headers as plain pairs: the trait is all the extraction needs.
    struct Pairs(Vec<(String, Vec<u8>)>);

    impl HeaderView for Pairs {
        fn values<'a>(&'a self, name: &str) -> impl Iterator<Item = &'a [u8]> + 'a {
            let name = name.to_owned();
            self.0
                .iter()
                .filter(move |(k, _)| *k == name)
                .map(|(_, v)| v.as_slice())
        }
    }

    fn headers(pairs: &[(&str, &str)]) -> Pairs {
        Pairs(
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.as_bytes().to_vec()))
                .collect(),
        )
    }

    #[test]
    fn bearer_scheme_is_case_insensitive_and_single() {
        assert_eq!(
            bearer(&headers(&[("authorization", "Bearer abc")])),
            Ok(Some("abc"))
        );
        assert_eq!(
            bearer(&headers(&[("authorization", "bEaReR abc")])),
            Ok(Some("abc"))
        );
        assert_eq!(
            bearer(&headers(&[("authorization", "Basic abc")])),
            Ok(None)
        );
        assert_eq!(bearer(&headers(&[])), Ok(None));
        assert!(bearer(&headers(&[("authorization", "Bearer a b")])).is_err());
        assert!(bearer(&headers(&[("authorization", "Bearer ")])).is_err());
        // RFC 6750 §2.1: `Bearer 1*SP b64token`. Several spaces are fine, and
        // whitespace around the value is not part of it (RFC 9110 §5.5).
        assert_eq!(
            bearer(&headers(&[("authorization", "Bearer  abc")])),
            Ok(Some("abc"))
        );
        assert_eq!(
            bearer(&headers(&[("authorization", "\tBearer abc ")])),
            Ok(Some("abc"))
        );
        assert_eq!(bearer(&headers(&[("authorization", "DPoP abc")])), Ok(None));
        // Anything else after `bearer` is a malformed bearer credential, not
        // another scheme.
        for odd in [
            "Bearer\tabc",
            "bearer \tabc",
            "Bearer\t abc",
            "Bearer,abc",
            "Bearerabc",
            "Bearer",
            "Bearer a\tb",
        ] {
            let h = headers(&[("authorization", odd)]);
            assert_eq!(bearer(&h).map_err(|r| r.status()), Err(400), "{odd:?}");
        }
        assert!(
            bearer(&headers(&[
                ("authorization", "Bearer a"),
                ("authorization", "Bearer b")
            ]))
            .is_err()
        );
    }

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

    #[test]
    fn roles_from_a_dotted_path() {
        let claims: Map<String, Value> =
            serde_json::from_str(r#"{"realm_access":{"roles":["admin","ops"]},"groups":"a b"}"#)
                .unwrap();
        assert!(claims.has_role("realm_access.roles", "admin"));
        assert!(!claims.has_role("realm_access.roles", "adm"));
        assert!(claims.has_role("groups", "b"));
        assert!(!claims.has_role("realm_access", "admin"));
        assert!(!claims.has_role("nope.roles", "admin"));
    }

    #[test]
    fn cookie_is_found_by_exact_name() {
        let h = headers(&[("cookie", "a=1; token=xyz; tokenx=2")]);
        assert_eq!(cookie(&h, "token"), Ok(Some("xyz")));
        assert_eq!(cookie(&h, "nope"), Ok(None));
    }

    #[test]
    fn two_cookies_of_the_name_are_an_invalid_request() {
        let twice = AuthRejection::InvalidRequest("more than one credential cookie");
        let one_header = headers(&[("cookie", "token=a; x=1; token=b")]);
        assert_eq!(cookie(&one_header, "token"), Err(twice.clone()));
        let two_headers = headers(&[("cookie", "token=a"), ("cookie", "token=a")]);
        assert_eq!(cookie(&two_headers, "token"), Err(twice.clone()));
        // A non-ASCII neighbour does not hide the second one.
        let hidden = Pairs(vec![
            ("cookie".into(), b"token=a".to_vec()),
            ("cookie".into(), b"n=\xff; token=b".to_vec()),
        ]);
        assert_eq!(cookie(&hidden, "token"), Err(twice));
        let bad = Pairs(vec![("cookie".into(), b"token=\xff".to_vec())]);
        assert!(cookie(&bad, "token").is_err());
        // Other names may repeat; the one asked for is there once.
        let fine = headers(&[("cookie", "x=1; token= a ; x=2"), ("cookie", "y=3")]);
        assert_eq!(cookie(&fine, "token"), Ok(Some("a")));
    }

    #[test]
    fn cookie_names_that_only_look_like_the_credentials_are_refused() {
        for odd in [
            "%74oken",
            "Token",
            "TOKEN",
            "%54oken",
            "tok%65n",
            "%74%6F%6b%65%6e",
        ] {
            let h = headers(&[("cookie", &format!("{odd}=forged; token=valid"))]);
            assert_eq!(
                cookie(&h, "token").map_err(|r| r.status()),
                Err(400),
                "{odd}"
            );
            // Alone, too: an application that decodes names reads it.
            let h = headers(&[("cookie", &format!("{odd}=forged"))]);
            assert_eq!(
                cookie(&h, "token").map_err(|r| r.status()),
                Err(400),
                "{odd}"
            );
        }
        // Other names, including broken escapes and near misses, are not it.
        for other in ["%7oken", "%74oke", "tokens", "%", "t%", "%%74oken"] {
            let h = headers(&[("cookie", &format!("{other}=x; token=valid"))]);
            assert_eq!(cookie(&h, "token"), Ok(Some("valid")), "{other}");
        }
        // PHP reads `my.token`, `my token` and `my_token[x]` as `my_token`.
        for odd in ["my.token", "my token", "my_token[x]", "my[token"] {
            let h = headers(&[("cookie", &format!("{odd}=forged; my_token=valid"))]);
            assert_eq!(
                cookie(&h, "my_token").map_err(|r| r.status()),
                Err(400),
                "{odd}"
            );
        }
    }

    #[test]
    fn grpc_mode_only_for_http2_and_grpc_content_types() {
        for ct in [
            "application/grpc",
            "application/grpc+proto",
            "Application/GRPC;x=1",
        ] {
            let h = headers(&[("content-type", ct)]);
            assert!(is_grpc(true, &h), "{ct}");
            assert!(!is_grpc(false, &h), "{ct} over HTTP/1.x");
        }
        for ct in ["application/grpcx", "application/grp", "text/plain"] {
            assert!(!is_grpc(true, &headers(&[("content-type", ct)])), "{ct}");
        }
        assert!(!is_grpc(true, &headers(&[])));
        // A refusal is 200 only in gRPC mode.
        let r = AuthRejection::Missing;
        assert_eq!(r.answer("api", false).status, 401);
        assert_eq!(r.answer("api", true).status, 200);
    }

    #[test]
    fn scopes_all_and_any() {
        let claims: Map<String, Value> =
            serde_json::from_str(r#"{"scope":"a b","scp":["c"]}"#).unwrap();
        assert_eq!(Scopes::all(["a", "c"]).missing(&claims), None);
        assert_eq!(
            Scopes::all(["a", "d", "e"]).missing(&claims).as_deref(),
            Some("d e")
        );
        assert_eq!(Scopes::any(["x", "b"]).missing(&claims), None);
        assert_eq!(
            Scopes::any(["x", "y"]).missing(&claims).as_deref(),
            Some("x y")
        );
        // "a" must match a whole scope, not a prefix.
        let partial: Map<String, Value> = serde_json::from_str(r#"{"scope":"ab"}"#).unwrap();
        assert!(!partial.has_scope("a"));
    }

    #[test]
    fn scope_and_scp_read_as_string_or_array() {
        // Entra ID: `scp` space-separated.
        let entra: Map<String, Value> =
            serde_json::from_str(r#"{"scp":"orders.read  orders.write"}"#).unwrap();
        assert!(entra.has_scope("orders.write"));
        assert!(!entra.has_scope("orders"));
        assert!(!entra.has_scope(""));
        // Okta: `scp` an array; some IdPs put an array in `scope`.
        let okta: Map<String, Value> = serde_json::from_str(r#"{"scp":["a","b c"]}"#).unwrap();
        assert!(okta.has_scope("a"));
        assert!(!okta.has_scope("b"));
        let arr: Map<String, Value> = serde_json::from_str(r#"{"scope":["x","y"]}"#).unwrap();
        assert!(arr.has_scope("y"));
        let other: Map<String, Value> = serde_json::from_str(r#"{"scp":{"a":true}}"#).unwrap();
        assert!(!other.has_scope("a"));
    }
}
