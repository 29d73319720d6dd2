//! [`Principal`]: who a request is, whatever proved it.

use std::collections::BTreeSet;
use std::sync::Arc;

use serde_json::{Map, Value};

use crate::validator::Validated;

/// Who the request is, whatever credential proved it: the same shape for
/// a JWT, an API key or your own kind, so requirements, adapters and the
/// service behind them need not know which.
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
/// assert!(p.claims().is_empty());
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Principal {
    subject: String,
    authenticator: &'static str,
    scopes: BTreeSet<String>,
    roles: BTreeSet<String>,
    claims: Claims,
    expires_at: Option<i64>,
    confirmation: Option<Value>,
    actor: Option<Value>,
}

/// The claims, shared with the validator's cache where there is one (so a
/// JWT principal copies no claims).
#[derive(Debug, Clone)]
enum Claims {
    Map(Arc<Map<String, Value>>),
    Jwt(Arc<Validated<Map<String, Value>>>),
}

impl Claims {
    fn get(&self) -> &Map<String, Value> {
        match self {
            Claims::Map(m) => m,
            Claims::Jwt(v) => &v.claims,
        }
    }
}

impl PartialEq for Principal {
    fn eq(&self, other: &Self) -> bool {
        self.subject == other.subject
            && self.authenticator == other.authenticator
            && self.scopes == other.scopes
            && self.roles == other.roles
            && self.claims() == other.claims()
            && self.expires_at == other.expires_at
            && self.confirmation == other.confirmation
            && self.actor == other.actor
    }
}

impl Principal {
    /// A principal with `subject`, vouched for by the authenticator named
    /// `authenticator`; no scopes, roles or claims, no expiry.
    pub fn new(subject: impl Into<String>, authenticator: &'static str) -> Principal {
        Principal {
            subject: subject.into(),
            authenticator,
            scopes: BTreeSet::new(),
            roles: BTreeSet::new(),
            claims: Claims::Map(Arc::new(Map::new())),
            expires_at: None,
            confirmation: None,
            actor: None,
        }
    }

    /// With these scopes (added to any already held).
    #[must_use]
    pub fn with_scopes<I: IntoIterator<Item = S>, S: Into<String>>(mut self, scopes: I) -> Self {
        self.scopes.extend(scopes.into_iter().map(Into::into));
        self
    }

    /// With these roles (added to any already held).
    #[must_use]
    pub fn with_roles<I: IntoIterator<Item = S>, S: Into<String>>(mut self, roles: I) -> Self {
        self.roles.extend(roles.into_iter().map(Into::into));
        self
    }

    /// With these claims (replacing any).
    #[must_use]
    pub fn with_claims(mut self, claims: Map<String, Value>) -> Self {
        self.claims = Claims::Map(Arc::new(claims));
        self
    }

    /// The claims of a validated JWT, shared (not copied).
    pub(crate) fn with_jwt(mut self, validated: Arc<Validated<Map<String, Value>>>) -> Self {
        self.claims = Claims::Jwt(validated);
        self
    }

    /// With this expiry (Unix seconds), or none.
    #[must_use]
    pub fn with_expiry(mut self, expires_at: Option<i64>) -> Self {
        self.expires_at = expires_at;
        self
    }

    /// The subject: the JWT's `sub`, the API key's owner (or name), …
    pub fn subject(&self) -> &str {
        &self.subject
    }

    /// Which kind of authenticator vouched: `"jwt"`, `"api_key"`, …
    pub fn authenticator(&self) -> &'static str {
        self.authenticator
    }

    /// The scopes granted.
    pub fn scopes(&self) -> &BTreeSet<String> {
        &self.scopes
    }

    /// Whether `scope` is granted (a whole scope, never a prefix).
    pub fn has_scope(&self, scope: &str) -> bool {
        self.scopes.contains(scope)
    }

    /// The roles held.
    pub fn roles(&self) -> &BTreeSet<String> {
        &self.roles
    }

    /// Whether `role` is held.
    pub fn has_role(&self, role: &str) -> bool {
        self.roles.contains(role)
    }

    /// The claims as JSON: for a JWT its validated claims; empty unless the
    /// authenticator set some.
    pub fn claims(&self) -> &Map<String, Value> {
        self.claims.get()
    }

    /// When the credential expires (Unix seconds), if it does.
    pub fn expires_at(&self) -> Option<i64> {
        self.expires_at
    }

    /// The confirmation (`cnf`, RFC 7800) binding the credential to a key:
    /// not yet filled by any built-in authenticator.
    pub fn confirmation(&self) -> Option<&Value> {
        self.confirmation.as_ref()
    }

    /// The delegation chain (`act`, RFC 8693 §4.1): not yet filled by any
    /// built-in authenticator.
    pub fn actor(&self) -> Option<&Value> {
        self.actor.as_ref()
    }
}
