//! Requirements a route or a handler checks on validated claims: [`Scopes`]
//! and [`Roles`], each usable by the layer
//! ([`BearerAuth::require_scopes`](super::BearerAuth::require_scopes),
//! [`BearerAuth::require_roles`](super::BearerAuth::require_roles)) and by
//! hand in a handler or a tonic method (`check`), with the same answer.

use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use super::AuthRejection;
use crate::authn::header_safe;

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
    pub(super) fn missing<C: ScopedClaims>(&self, claims: &C) -> Option<String> {
        self.lacking(|s| claims.has_scope(s))
    }

    /// What `held` lacks of this requirement, space-separated.
    pub(super) fn lacking(&self, held: impl Fn(&str) -> bool) -> Option<String> {
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

impl Scopes {
    /// Checks `claims` against this requirement, as the layer does: from a
    /// handler or a tonic method, for a requirement that depends on the
    /// request (a route's layer cannot know it), or one per RPC.
    ///
    /// ```
    /// use serde_json::{Map, Value, json};
    /// use tokenwarden::middleware::Scopes;
    ///
    /// let claims: Map<String, Value> =
    ///     serde_json::from_value(json!({"scope": "orders:read"}))?;
    /// assert!(Scopes::all(["orders:read"]).check(&claims).is_ok());
    /// let refused = Scopes::all(["orders:write"]).check(&claims).unwrap_err();
    /// assert_eq!(refused.status(), 403);
    /// # Ok::<(), serde_json::Error>(())
    /// ```
    ///
    /// # Errors
    /// [`AuthRejection::InsufficientScope`] (403 `insufficient_scope`)
    /// naming the scopes lacking, for the `WWW-Authenticate` challenge.
    pub fn check<C: ScopedClaims>(&self, claims: &C) -> Result<(), AuthRejection> {
        match self.missing(claims) {
            None => Ok(()),
            Some(scope) => Err(AuthRejection::InsufficientScope {
                scope: header_safe(&scope),
            }),
        }
    }
}

/// What a route requires of the token's roles, read from the claim at a
/// dotted path (`roles`, `realm_access.roles`,
/// `resource_access.my-client.roles`, `cognito:groups`) holding a string
/// or an array of strings; the first [`MAX_SCOPES`](super::MAX_SCOPES)
/// entries are read, so a grant listed after them is not seen.
///
/// ```
/// use serde_json::{Map, Value, json};
/// use tokenwarden::middleware::Roles;
///
/// let claims: Map<String, Value> =
///     serde_json::from_value(json!({"realm_access": {"roles": ["ops"]}}))?;
/// assert!(Roles::any("realm_access.roles", ["admin", "ops"]).check(&claims).is_ok());
/// assert!(Roles::all("realm_access.roles", ["admin", "ops"]).check(&claims).is_err());
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Roles {
    path: Box<str>,
    roles: Scopes,
}

impl Roles {
    /// Every one of `roles` must be held in the claim at `path`.
    pub fn all<I: IntoIterator<Item = S>, S: Into<String>>(path: &str, roles: I) -> Roles {
        Roles {
            path: path.into(),
            roles: Scopes::all(roles),
        }
    }

    /// At least one of `roles` must be held in the claim at `path`.
    pub fn any<I: IntoIterator<Item = S>, S: Into<String>>(path: &str, roles: I) -> Roles {
        Roles {
            path: path.into(),
            roles: Scopes::any(roles),
        }
    }

    /// The dotted claim path the roles are read from.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// Checks `claims` against this requirement, as the layer does (see
    /// [`Scopes::check`]).
    ///
    /// # Errors
    /// [`AuthRejection::Forbidden`] (403 `insufficient_scope`) naming the
    /// roles lacking.
    pub fn check<C: ScopedClaims>(&self, claims: &C) -> Result<(), AuthRejection> {
        self.check_held(|r| claims.has_role(&self.path, r))
    }

    /// Checks the roles `held` says are held.
    pub(crate) fn check_held(&self, held: impl Fn(&str) -> bool) -> Result<(), AuthRejection> {
        match self.roles.lacking(held) {
            None => Ok(()),
            Some(lacking) => Err(AuthRejection::Forbidden {
                requirement: header_safe(&format!("role {lacking}")),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Map, Value};

    fn claims(json: &str) -> Map<String, Value> {
        serde_json::from_str(json).unwrap_or_default()
    }

    #[test]
    fn roles_all_and_any_at_a_path() {
        let c = claims(r#"{"realm_access":{"roles":["admin","ops"]},"groups":"a b"}"#);
        assert_eq!(
            Roles::all("realm_access.roles", ["admin", "ops"]).check(&c),
            Ok(())
        );
        assert_eq!(Roles::any("groups", ["x", "b"]).check(&c), Ok(()));
        let refused = Roles::all("realm_access.roles", ["admin", "root"]).check(&c);
        assert_eq!(
            refused,
            Err(AuthRejection::Forbidden {
                requirement: "role root".into()
            })
        );
        assert!(Roles::any("realm_access", ["admin"]).check(&c).is_err());
        // An empty requirement holds.
        assert_eq!(Roles::all("nope", Vec::<String>::new()).check(&c), Ok(()));
    }

    #[test]
    fn scopes_check_names_what_is_lacking() {
        let c = claims(r#"{"scp":"a b"}"#);
        assert_eq!(Scopes::all(["a"]).check(&c), Ok(()));
        assert_eq!(
            Scopes::all(["a", "c"]).check(&c),
            Err(AuthRejection::InsufficientScope { scope: "c".into() })
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
