//! Requirements a route or a handler checks on validated claims: [`Scopes`]
//! and [`Roles`], each usable by the layer
//! ([`BearerAuth::require_scopes`](super::BearerAuth::require_scopes),
//! [`BearerAuth::require_roles`](super::BearerAuth::require_roles)) and by
//! hand in a handler or a tonic method (`check`), with the same answer.

use super::{AuthRejection, ScopedClaims, Scopes, header_safe};

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
}
