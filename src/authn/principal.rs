//! [`Principal`]: who a request is, whatever proved it.

use std::collections::BTreeSet;
use std::sync::Arc;

use serde_json::{Map, Value};

use crate::validator::Validated;

/// A validated JWT's JSON claims, shared.
pub(crate) type JwtClaims = Arc<Validated<Map<String, Value>>>;

/// Who the request is, whatever credential proved it: the same shape for
/// a JWT, an API key or your own kind, so requirements, adapters and the
/// service behind them need not know which.
///
/// A JWT's principal is a view over its validated claims, shared with the
/// validator's cache: building one copies nothing (subject, scopes, roles
/// and expiry are read from the claims when asked for).
///
/// ```
/// use tokenwarden::authn::Principal;
///
/// let p = Principal::new("alice", "api_key")
///     .with_scopes(["orders:read", "orders:write"])
///     .with_roles(["admin"])
///     .with_expiry(Some(1_900_000_000));
/// assert!(p.has_scope("orders:read"));
/// assert!(p.has_role("admin"));
/// assert_eq!(p.authenticator(), "api_key");
/// assert_eq!(p.scopes().len(), 2);
/// assert!(p.claims().is_empty());
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Principal {
    authenticator: &'static str,
    claims: Claims,
    /// What is not read from a JWT's claims; `None` for a JWT's principal
    /// (small to build and to move: this is per request). Shared: a clone
    /// (a cached principal handed to each request) is a reference count,
    /// and a `with_*` on a shared one copies it first.
    extra: Option<Arc<Extra>>,
}

/// A principal's parts that are not read from claims.
#[derive(Debug, Clone, Default)]
struct Extra {
    /// `None`: the JWT's `sub` (empty when absent).
    subject: Option<String>,
    scopes: BTreeSet<String>,
    roles: BTreeSet<String>,
    /// `None`: the JWT's `exp`.
    expires_at: Option<Option<i64>>,
    confirmation: Option<Value>,
    actor: Option<Value>,
    /// For a principal read from a client certificate: which kind of name
    /// the subject is (URI SAN, DNS SAN, subject DN), as it was parsed.
    /// Set by `MtlsAuthenticator` alone.
    #[cfg(feature = "mtls")]
    name_kind: Option<super::mtls::NameKind>,
}

/// The claims, shared with the validator's cache where there is one (so a
/// JWT principal copies no claims).
#[derive(Debug, Clone)]
enum Claims {
    Map(Arc<Map<String, Value>>),
    /// A JWT's: scopes from `scope` and `scp`, roles from the claim at the
    /// dotted path, read when asked for.
    Jwt {
        validated: Arc<Validated<Map<String, Value>>>,
        roles: Option<Arc<str>>,
    },
}

impl Claims {
    fn get(&self) -> &Map<String, Value> {
        match self {
            Claims::Map(m) => m,
            Claims::Jwt { validated, .. } => &validated.claims,
        }
    }

    /// The scopes the claims grant (none but a JWT's).
    fn scopes(&self) -> impl Iterator<Item = &str> {
        let claims = match self {
            Claims::Jwt { validated, .. } => Some(&validated.claims),
            Claims::Map(_) => None,
        };
        claims
            .into_iter()
            .flat_map(|c| grants(c.get("scope")).chain(grants(c.get("scp"))))
    }

    /// The roles the claims grant (none but a JWT's with a roles path).
    fn roles(&self) -> impl Iterator<Item = &str> {
        let value = match self {
            Claims::Jwt {
                validated,
                roles: Some(path),
            } => at_path(&validated.claims, path),
            _ => None,
        };
        grants(value)
    }
}

/// Most scopes (or roles) read from one claim, as the middleware reads
/// them: a grant listed after these is not seen, so checks fail closed and
/// their cost is bounded whatever the token lists.
const MAX_GRANTS: usize = 256;

/// The value at a dotted claim path.
fn at_path<'v>(claims: &'v Map<String, Value>, path: &str) -> Option<&'v Value> {
    let mut parts = path.split('.');
    let mut value = claims.get(parts.next()?)?;
    for part in parts {
        value = value.as_object()?.get(part)?;
    }
    Some(value)
}

/// The grants a claim value lists: a space-separated string or an array of
/// strings, the first [`MAX_GRANTS`] entries.
fn grants(value: Option<&Value>) -> impl Iterator<Item = &str> {
    let (words, items) = match value {
        Some(Value::String(s)) => (Some(s.as_str()), None),
        Some(Value::Array(a)) => (None, Some(a.as_slice())),
        _ => (None, None),
    };
    let words = words
        .into_iter()
        .flat_map(|s| s.split(' '))
        .filter(|g| !g.is_empty())
        .take(MAX_GRANTS);
    let items = items
        .into_iter()
        .flatten()
        .take(MAX_GRANTS)
        .filter_map(Value::as_str);
    words.chain(items)
}

impl PartialEq for Principal {
    fn eq(&self, other: &Self) -> bool {
        self.subject() == other.subject()
            && self.authenticator == other.authenticator
            && self.scopes() == other.scopes()
            && self.roles() == other.roles()
            && self.claims() == other.claims()
            && self.expires_at() == other.expires_at()
            && self.confirmation() == other.confirmation()
            && self.actor() == other.actor()
    }
}

impl Principal {
    /// A principal with `subject`, vouched for by the authenticator named
    /// `authenticator`; no scopes, roles or claims, no expiry.
    pub fn new(subject: impl Into<String>, authenticator: &'static str) -> Principal {
        Principal {
            authenticator,
            claims: Claims::Map(Arc::new(Map::new())),
            extra: Some(Arc::new(Extra {
                subject: Some(subject.into()),
                expires_at: Some(None),
                ..Extra::default()
            })),
        }
    }

    /// A JWT's principal: a view over its validated claims (nothing is
    /// copied); roles from the claim at the dotted path `roles`, if any.
    pub(crate) fn jwt(
        validated: Arc<Validated<Map<String, Value>>>,
        roles: Option<Arc<str>>,
    ) -> Principal {
        Principal::jwt_by(validated, roles, "jwt")
    }

    /// A JWT's principal vouched for by the authenticator named
    /// `authenticator` (`"dpop"` for a DPoP-bound token).
    pub(crate) fn jwt_by(
        validated: Arc<Validated<Map<String, Value>>>,
        roles: Option<Arc<str>>,
        authenticator: &'static str,
    ) -> Principal {
        Principal {
            authenticator,
            claims: Claims::Jwt { validated, roles },
            extra: None,
        }
    }

    /// The same principal, vouched for by `authenticator`: the chain's
    /// member that judged it, whatever name its own code gave it.
    pub(crate) fn vouched_by(mut self, authenticator: &'static str) -> Principal {
        self.authenticator = authenticator;
        self
    }

    fn extra(&self) -> Option<&Extra> {
        self.extra.as_deref()
    }

    fn extra_mut(&mut self) -> &mut Extra {
        Arc::make_mut(self.extra.get_or_insert_with(Arc::default))
    }

    /// With these scopes (added to any already held).
    #[must_use]
    pub fn with_scopes<I: IntoIterator<Item = S>, S: Into<String>>(mut self, scopes: I) -> Self {
        self.extra_mut()
            .scopes
            .extend(scopes.into_iter().map(Into::into));
        self
    }

    /// With these roles (added to any already held).
    #[must_use]
    pub fn with_roles<I: IntoIterator<Item = S>, S: Into<String>>(mut self, roles: I) -> Self {
        self.extra_mut()
            .roles
            .extend(roles.into_iter().map(Into::into));
        self
    }

    /// With these claims (replacing any; a JWT's scopes and roles, read
    /// from its claims, go with them: only those added with
    /// [`with_scopes`](Self::with_scopes) and
    /// [`with_roles`](Self::with_roles) remain).
    #[must_use]
    pub fn with_claims(mut self, claims: Map<String, Value>) -> Self {
        // Keep what was read from the old claims.
        let (subject, expires_at) = (self.subject().to_owned(), self.expires_at());
        let extra = self.extra_mut();
        extra.subject.get_or_insert(subject);
        extra.expires_at.get_or_insert(expires_at);
        self.claims = Claims::Map(Arc::new(claims));
        self
    }

    /// With this expiry (Unix seconds), or none.
    #[must_use]
    pub fn with_expiry(mut self, expires_at: Option<i64>) -> Self {
        self.extra_mut().expires_at = Some(expires_at);
        self
    }

    /// The subject: the JWT's `sub` (empty when it has none), the API
    /// key's owner (or name), …
    pub fn subject(&self) -> &str {
        match self.extra().and_then(|e| e.subject.as_deref()) {
            Some(s) => s,
            None => self
                .claims()
                .get("sub")
                .and_then(Value::as_str)
                .unwrap_or(""),
        }
    }

    /// Which kind of authenticator vouched: `"jwt"`, `"api_key"`, …
    pub fn authenticator(&self) -> &'static str {
        self.authenticator
    }

    /// The scopes granted, sorted, each once (built when asked for: prefer
    /// [`has_scope`](Self::has_scope) to test one).
    pub fn scopes(&self) -> BTreeSet<&str> {
        self.claims
            .scopes()
            .chain(
                self.extra()
                    .into_iter()
                    .flat_map(|e| &e.scopes)
                    .map(String::as_str),
            )
            .collect()
    }

    /// Whether `scope` is granted (a whole scope, never a prefix).
    pub fn has_scope(&self, scope: &str) -> bool {
        self.extra().is_some_and(|e| e.scopes.contains(scope))
            || self.claims.scopes().any(|s| s == scope)
    }

    /// The roles held, sorted, each once (built when asked for: prefer
    /// [`has_role`](Self::has_role) to test one).
    pub fn roles(&self) -> BTreeSet<&str> {
        self.claims
            .roles()
            .chain(
                self.extra()
                    .into_iter()
                    .flat_map(|e| &e.roles)
                    .map(String::as_str),
            )
            .collect()
    }

    /// Whether `role` is held.
    pub fn has_role(&self, role: &str) -> bool {
        self.extra().is_some_and(|e| e.roles.contains(role))
            || self.claims.roles().any(|r| r == role)
    }

    /// The claims as JSON: for a JWT its validated claims; empty unless the
    /// authenticator set some.
    pub fn claims(&self) -> &Map<String, Value> {
        self.claims.get()
    }

    /// The validated JWT behind this principal and its roles path, if a
    /// JWT proved it and nothing was added since ([`Principal::jwt`]
    /// rebuilds the same principal from them).
    #[cfg_attr(not(any(feature = "tower", feature = "actix")), allow(dead_code))]
    pub(crate) fn jwt_parts(&self) -> Option<(&JwtClaims, Option<&Arc<str>>)> {
        match &self.claims {
            Claims::Jwt { validated, roles } if self.extra.is_none() => {
                Some((validated, roles.as_ref()))
            }
            _ => None,
        }
    }

    /// When the credential expires (Unix seconds), if it does.
    pub fn expires_at(&self) -> Option<i64> {
        match self.extra().and_then(|e| e.expires_at) {
            Some(e) => e,
            None => self.claims().get("exp").and_then(unix_seconds),
        }
    }

    /// The confirmation (`cnf`, RFC 7800) binding the credential to a key:
    /// one set with [`with_confirmation`](Self::with_confirmation) (an mTLS
    /// principal's `{"x5t#S256": …}`), else a JWT's `cnf` claim: its
    /// `x5t#S256` held by the JWT authenticator to the connection's
    /// certificate (RFC 8705 §3), its `jkt` (a DPoP-bound token) the key the
    /// request's proof was checked against (the JWT authenticator refuses
    /// such a token sent as `Bearer`).
    pub fn confirmation(&self) -> Option<&Value> {
        match self.extra().and_then(|e| e.confirmation.as_ref()) {
            Some(c) => Some(c),
            None => match &self.claims {
                Claims::Jwt { validated, .. } => validated.claims.get("cnf"),
                Claims::Map(_) => None,
            },
        }
    }

    /// With the kind of name the subject was read as from a certificate.
    #[cfg(feature = "mtls")]
    pub(crate) fn with_name_kind(mut self, kind: super::mtls::NameKind) -> Self {
        self.extra_mut().name_kind = Some(kind);
        self
    }

    /// The kind of name the subject was read as from a certificate; `None`
    /// for any other principal.
    #[cfg(feature = "mtls")]
    pub(crate) fn name_kind(&self) -> Option<super::mtls::NameKind> {
        self.extra().and_then(|e| e.name_kind)
    }

    /// With this confirmation (`cnf`, RFC 7800): the key or certificate
    /// the credential is bound to.
    #[must_use]
    pub fn with_confirmation(mut self, cnf: Value) -> Self {
        self.extra_mut().confirmation = Some(cnf);
        self
    }

    /// The delegation chain as JSON (`act`, RFC 8693 §4.1): the one set
    /// with [`with_actor`](Self::with_actor), else the claims' `act`.
    /// Read it checked with [`actors`](Self::actors).
    pub fn actor(&self) -> Option<&Value> {
        match self.extra().and_then(|e| e.actor.as_ref()) {
            Some(a) => Some(a),
            None => self.claims().get("act"),
        }
    }

    /// With this delegation chain (an RFC 8693 §4.1 `act` object), for an
    /// authenticator whose credential names who acts for the subject.
    #[must_use]
    pub fn with_actor(mut self, act: Value) -> Self {
        self.extra_mut().actor = Some(act);
        self
    }

    /// The actors, current first (RFC 8693 §4.1: the outermost `act` is
    /// the party acting now; nested ones acted before it). Empty when no
    /// one acts for the subject.
    ///
    /// # Errors
    /// A malformed chain, or one deeper than
    /// [`MAX_DELEGATION_DEPTH`](super::MAX_DELEGATION_DEPTH) (a
    /// [`Chain`](super::Chain) refuses such a principal before any handler
    /// sees it).
    pub fn actors(&self) -> Result<Vec<super::Actor>, super::DelegationError> {
        super::actor::actors(self.actor())
    }

    /// How many actors the chain holds: 0 when no one acts for the subject.
    ///
    /// # Errors
    /// As [`actors`](Self::actors).
    pub fn delegation_depth(&self) -> Result<usize, super::DelegationError> {
        super::actor::walk(self.actor(), |_, _| {})
    }

    /// The `may_act` claim (RFC 8693 §4.4): who may act for this subject,
    /// if the token says. Check a party with
    /// [`may_act_allows`](super::may_act_allows).
    pub fn may_act(&self) -> Option<&Value> {
        self.claims().get("may_act")
    }
}

/// A NumericDate (RFC 7519 §2: "can represent ... fractional seconds") as
/// whole Unix seconds, rounded down: a fractional `exp` is a time like any
/// other, never "no expiry". Non-finite or non-numbers are `None`.
#[allow(clippy::cast_possible_truncation)] // `as` saturates; floor() is exact here
pub(crate) fn unix_seconds(v: &Value) -> Option<i64> {
    v.as_i64().or_else(|| {
        v.as_f64()
            .filter(|f| f.is_finite())
            .map(|f| f.floor() as i64)
    })
}
