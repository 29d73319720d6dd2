//! Protecting HTTP services (features `tower`, `axum`): reading the bearer
//! token, checking it and the route's scopes, and answering refusals the way
//! RFC 6750 §3 says.
//!
//! [`BearerAuth`] holds the configuration; [`BearerAuthLayer`] applies it to
//! any tower service (axum, hyper, tonic); the `axum` feature adds the
//! [`Claims`](axum::Claims) extractor.

#[cfg(feature = "axum")]
#[cfg_attr(docsrs, doc(cfg(feature = "axum")))]
pub mod axum;
mod tower;

use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;

use http::header::{AUTHORIZATION, CONTENT_TYPE, HeaderValue, WWW_AUTHENTICATE};
use http::{HeaderMap, Response, StatusCode};
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use crate::error::{Error, ErrorKind};
use crate::validator::{Validated, Validator};

pub use self::tower::{BearerAuthLayer, BearerAuthService, ResponseFuture};

/// Claims a route's scope requirement can be checked against.
///
/// Implemented for JSON claims, reading `scope` (a space-separated string,
/// RFC 8693 §4.2, RFC 9068 §2.2.3) or `scp` (an array of strings). Implement
/// it for your own claims type in one line.
pub trait ScopedClaims: DeserializeOwned + Clone + Send + Sync + 'static {
    /// Whether the token grants `scope`.
    fn has_scope(&self, scope: &str) -> bool;
}

impl ScopedClaims for Map<String, Value> {
    fn has_scope(&self, scope: &str) -> bool {
        let in_scope = self
            .get("scope")
            .and_then(Value::as_str)
            .is_some_and(|s| s.split(' ').any(|g| g == scope));
        in_scope
            || self
                .get("scp")
                .and_then(Value::as_array)
                .is_some_and(|a| a.iter().any(|g| g.as_str() == Some(scope)))
    }
}

impl ScopedClaims for Value {
    fn has_scope(&self, scope: &str) -> bool {
        self.as_object().is_some_and(|m| m.has_scope(scope))
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
        let lacking: Vec<&str> = self
            .all
            .iter()
            .filter(|s| !claims.has_scope(s))
            .map(|s| &**s)
            .collect();
        if !lacking.is_empty() {
            return Some(lacking.join(" "));
        }
        if !self.any.is_empty() && !self.any.iter().any(|s| claims.has_scope(s)) {
            return Some(self.any.join(" "));
        }
        None
    }
}

/// Where the token is read from.
#[derive(Debug, Clone, PartialEq, Eq)]
enum TokenSource {
    /// `Authorization: Bearer <token>` (RFC 6750 §2.1).
    Bearer,
    /// A header holding the bare token.
    Header(http::HeaderName),
    /// A cookie holding the bare token.
    Cookie(Box<str>),
}

/// How a service checks bearer tokens: the validator, where the token comes
/// from, the scopes required, and the realm named in refusals. Cheap to clone.
///
/// ```
/// # use tokenwarden::{KeySet, Validator};
/// use tokenwarden::middleware::{BearerAuth, Scopes};
///
/// # let validator = Validator::builder().issuer("i").audience("a")
/// #     .keys(KeySet::from_jwks(include_bytes!("../../examples/data/jwks.json")).unwrap()).build().unwrap();
/// let auth = BearerAuth::new(validator).realm("orders");
/// let read = auth.clone().require(Scopes::all(["orders:read"]));
/// let layer = read.layer(); // a tower Layer
/// # let _ = layer;
/// ```
pub struct BearerAuth<C = Map<String, Value>> {
    config: Arc<Config>,
    _claims: PhantomData<fn() -> C>,
}

struct Config {
    validator: Validator,
    realm: Box<str>,
    source: TokenSource,
    scopes: Scopes,
    anonymous: bool,
}

impl<C> Clone for BearerAuth<C> {
    fn clone(&self) -> Self {
        BearerAuth {
            config: self.config.clone(),
            _claims: PhantomData,
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
                validator,
                realm: "api".into(),
                source: TokenSource::Bearer,
                scopes: Scopes::default(),
                anonymous: false,
            }),
            _claims: PhantomData,
        }
    }

    fn with(self, f: impl FnOnce(&mut Config)) -> Self {
        let c = &self.config;
        let mut config = Config {
            validator: c.validator.clone(),
            realm: c.realm.clone(),
            source: c.source.clone(),
            scopes: c.scopes.clone(),
            anonymous: c.anonymous,
        };
        f(&mut config);
        BearerAuth {
            config: Arc::new(config),
            _claims: PhantomData,
        }
    }

    /// The realm named in `WWW-Authenticate` (RFC 6750 §3). Quotes and
    /// backslashes are dropped from it.
    #[must_use]
    pub fn realm(self, realm: &str) -> Self {
        let clean: String = realm.chars().filter(|c| *c != '"' && *c != '\\').collect();
        self.with(|c| c.realm = clean.into_boxed_str())
    }

    /// Reads the bare token from this header instead of `Authorization`.
    ///
    /// # Errors
    /// When `name` is not a valid header name.
    pub fn from_header(self, name: &str) -> Result<Self, http::header::InvalidHeaderName> {
        let name = http::HeaderName::try_from(name)?;
        Ok(self.with(|c| c.source = TokenSource::Header(name)))
    }

    /// Reads the bare token from this cookie instead of `Authorization`.
    #[must_use]
    pub fn from_cookie(self, name: &str) -> Self {
        self.with(|c| c.source = TokenSource::Cookie(name.into()))
    }

    /// Scopes the token must grant (403 `insufficient_scope` otherwise).
    #[must_use]
    pub fn require(self, scopes: Scopes) -> Self {
        self.with(|c| c.scopes = scopes)
    }

    /// Lets requests without a token through, with no claims attached; a
    /// token that is present must still be valid.
    #[must_use]
    pub fn allow_anonymous(self) -> Self {
        self.with(|c| c.anonymous = true)
    }

    /// A tower [`Layer`](tower_layer::Layer) applying this configuration.
    pub fn layer(&self) -> BearerAuthLayer<C> {
        BearerAuthLayer::new(self.clone())
    }

    /// The realm named in refusals.
    pub fn realm_name(&self) -> &str {
        &self.config.realm
    }

    /// Reads the token from the request headers.
    pub(crate) fn token<'h>(
        &self,
        headers: &'h HeaderMap,
    ) -> Result<Option<&'h str>, AuthRejection> {
        match &self.config.source {
            TokenSource::Bearer => bearer(headers),
            TokenSource::Header(name) => single(headers, name).map(|v| v.map(str::trim)),
            TokenSource::Cookie(name) => Ok(cookie(headers, name)),
        }
    }

    /// The full check without waiting: `Err(None)` means the kid was unknown
    /// and the caller should take the slow, refreshing path.
    pub(crate) fn check_now(
        &self,
        headers: &HeaderMap,
        extensions: &http::Extensions,
    ) -> Outcome<C> {
        // An outer layer already validated this request: only the scopes are ours.
        if let Some(v) = extensions.get::<Validated<C>>() {
            return match self.config.scopes.missing(&v.claims) {
                None => Outcome::AlreadyAllowed,
                Some(scope) => Outcome::Refused(AuthRejection::InsufficientScope { scope }),
            };
        }
        let token = match self.token(headers) {
            Ok(Some(t)) => t,
            Ok(None) if self.config.anonymous => return Outcome::Anonymous,
            Ok(None) => return Outcome::Refused(AuthRejection::Missing),
            Err(r) => return Outcome::Refused(r),
        };
        match self.config.validator.validate::<C>(token) {
            Ok(v) => self.scopes(v),
            Err(Error::UnknownKey { kid: Some(_) }) => Outcome::Retry(token.to_owned()),
            Err(e) => Outcome::Refused(AuthRejection::from_error(e)),
        }
    }

    /// The slow path for a token whose kid was unknown: waits for the key
    /// source's refresh (shared, rate-limited), then decides.
    pub(crate) async fn check_refreshing(&self, token: &str) -> Outcome<C> {
        match self.config.validator.validate_async::<C>(token).await {
            Ok(v) => self.scopes(v),
            Err(e) => Outcome::Refused(AuthRejection::from_error(e)),
        }
    }

    fn scopes(&self, v: Validated<C>) -> Outcome<C> {
        match self.config.scopes.missing(&v.claims) {
            None => Outcome::Allowed(v),
            Some(scope) => Outcome::Refused(AuthRejection::InsufficientScope { scope }),
        }
    }

    /// The response for a refusal, with an empty body.
    pub(crate) fn refusal<B: Default>(
        &self,
        r: &AuthRejection,
        headers: &HeaderMap,
    ) -> Response<B> {
        log_refusal(r);
        r.to_response(&self.config.realm, is_grpc(headers))
    }
}

/// Marks a request a layer let through without a token.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Anonymous;

/// The result of checking one request.
pub(crate) enum Outcome<C> {
    Allowed(Validated<C>),
    /// Validated by an outer layer, and our scopes hold.
    AlreadyAllowed,
    Anonymous,
    Refused(AuthRejection),
    /// The kid was unknown: retry through the refreshing path.
    Retry(String),
}

fn log_refusal(r: &AuthRejection) {
    // Never the token: the reason is enough to count and to debug.
    tracing::debug!(
        reason = r.reason(),
        status = r.status().as_u16(),
        "bearer token refused"
    );
}

/// RFC 6750 §2.1: `Authorization: Bearer <token>`, scheme case-insensitive,
/// exactly one credential.
fn bearer(headers: &HeaderMap) -> Result<Option<&str>, AuthRejection> {
    let Some(value) = single(headers, &AUTHORIZATION)? else {
        return Ok(None);
    };
    let (scheme, rest) = value.split_once(' ').unwrap_or((value, ""));
    if !scheme.eq_ignore_ascii_case("bearer") {
        // Another scheme: no bearer credentials were offered.
        return Ok(None);
    }
    let token = rest.trim_matches(' ');
    if token.is_empty() || token.contains(' ') {
        return Err(AuthRejection::InvalidRequest(
            "the Authorization header must hold exactly one bearer token",
        ));
    }
    Ok(Some(token))
}

/// The one value of a header; several are an invalid request (RFC 6750 §3.1).
fn single<'h>(
    headers: &'h HeaderMap,
    name: &http::HeaderName,
) -> Result<Option<&'h str>, AuthRejection> {
    let mut values = headers.get_all(name).iter();
    let Some(first) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(AuthRejection::InvalidRequest(
            "more than one credential header",
        ));
    }
    first
        .to_str()
        .map(Some)
        .map_err(|_| AuthRejection::InvalidRequest("the credential header is not visible ASCII"))
}

fn cookie<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get_all(http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim())
}

fn is_grpc(headers: &HeaderMap) -> bool {
    headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/grpc"))
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
    /// The token was refused: 401 `invalid_token`, the error kind as description.
    InvalidToken(ErrorKind),
    /// The token lacks scopes: 403 `insufficient_scope` naming them.
    InsufficientScope {
        /// The scopes required, space-separated.
        scope: String,
    },
    /// No usable keys: 503; the client did nothing wrong.
    KeysUnavailable,
    /// The route expects claims but no [`BearerAuthLayer`] put them there: 500.
    NotConfigured,
}

impl AuthRejection {
    fn from_error(e: Error) -> Self {
        match e.kind() {
            ErrorKind::KeysUnavailable => AuthRejection::KeysUnavailable,
            kind => AuthRejection::InvalidToken(kind),
        }
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        match self {
            AuthRejection::Missing | AuthRejection::InvalidToken(_) => StatusCode::UNAUTHORIZED,
            AuthRejection::InvalidRequest(_) => StatusCode::BAD_REQUEST,
            AuthRejection::InsufficientScope { .. } => StatusCode::FORBIDDEN,
            AuthRejection::KeysUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            AuthRejection::NotConfigured => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// A short, stable reason for logs and metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            AuthRejection::Missing => "missing_token",
            AuthRejection::InvalidRequest(_) => "invalid_request",
            AuthRejection::InvalidToken(kind) => kind.as_str(),
            AuthRejection::InsufficientScope { .. } => "insufficient_scope",
            AuthRejection::KeysUnavailable => "keys_unavailable",
            AuthRejection::NotConfigured => "not_configured",
        }
    }

    /// The `WWW-Authenticate` challenge, if the status calls for one.
    pub fn challenge(&self, realm: &str) -> Option<String> {
        match self {
            AuthRejection::Missing => Some(format!("Bearer realm=\"{realm}\"")),
            AuthRejection::InvalidRequest(why) => Some(format!(
                "Bearer realm=\"{realm}\", error=\"invalid_request\", error_description=\"{why}\""
            )),
            AuthRejection::InvalidToken(kind) => Some(format!(
                "Bearer realm=\"{realm}\", error=\"invalid_token\", error_description=\"{kind}\""
            )),
            AuthRejection::InsufficientScope { scope } => Some(format!(
                "Bearer realm=\"{realm}\", error=\"insufficient_scope\", scope=\"{scope}\""
            )),
            AuthRejection::KeysUnavailable | AuthRejection::NotConfigured => None,
        }
    }

    /// The gRPC status code for the same refusal.
    fn grpc_status(&self) -> &'static str {
        match self {
            AuthRejection::Missing | AuthRejection::InvalidToken(_) => "16", // UNAUTHENTICATED
            AuthRejection::InsufficientScope { .. } => "7",                  // PERMISSION_DENIED
            AuthRejection::InvalidRequest(_) => "3",                         // INVALID_ARGUMENT
            AuthRejection::KeysUnavailable => "14",                          // UNAVAILABLE
            AuthRejection::NotConfigured => "13",                            // INTERNAL
        }
    }

    /// The response: status, challenge, empty body. For gRPC requests, a
    /// 200 with `grpc-status` as gRPC clients expect.
    pub(crate) fn to_response<B: Default>(&self, realm: &str, grpc: bool) -> Response<B> {
        let mut resp = Response::new(B::default());
        let h = resp.headers_mut();
        if let Some(challenge) = self.challenge(realm) {
            if let Ok(v) = HeaderValue::from_str(&challenge) {
                h.insert(WWW_AUTHENTICATE, v);
            }
        }
        if grpc {
            h.insert(CONTENT_TYPE, HeaderValue::from_static("application/grpc"));
            h.insert("grpc-status", HeaderValue::from_static(self.grpc_status()));
            h.insert("grpc-message", HeaderValue::from_static(self.reason()));
        } else {
            *resp.status_mut() = self.status();
        }
        resp
    }
}

impl fmt::Display for AuthRejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.reason(), self.status())
    }
}

impl std::error::Error for AuthRejection {}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                http::HeaderName::try_from(*k).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
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
        assert!(
            bearer(&headers(&[
                ("authorization", "Bearer a"),
                ("authorization", "Bearer b")
            ]))
            .is_err()
        );
    }

    #[test]
    fn cookie_is_found_by_exact_name() {
        let h = headers(&[("cookie", "a=1; token=xyz; tokenx=2")]);
        assert_eq!(cookie(&h, "token"), Some("xyz"));
        assert_eq!(cookie(&h, "nope"), None);
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
}
