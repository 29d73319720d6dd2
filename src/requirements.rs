//! [`Requirements`]: what a route asks of a [`Principal`], whatever
//! credential proved it.

use std::fmt;
use std::sync::Arc;

use crate::authn::{Principal, Refusal, Scheme};

/// A named custom requirement.
type Predicate = (Box<str>, Arc<dyn Fn(&Principal) -> bool + Send + Sync>);

/// Scopes (all of, any of), roles (all of, any of) and named predicates a
/// principal must meet: 403 `insufficient_scope` otherwise. Checked in that
/// order; the first unmet one is the refusal. Cheap to clone.
///
/// ```
/// use tokenwarden::Requirements;
/// use tokenwarden::authn::{Principal, Scheme};
///
/// let req = Requirements::new()
///     .scopes_all(["orders:read"])
///     .roles_any(["admin", "ops"])
///     .predicate("a partner", |p| p.subject().starts_with("partner-"));
/// let p = Principal::new("partner-7", "api_key")
///     .with_scopes(["orders:read"])
///     .with_roles(["ops"]);
/// assert!(req.check(&p, Scheme::ApiKey).is_ok());
///
/// let refusal = req.check(&Principal::new("partner-7", "jwt"), Scheme::Bearer).unwrap_err();
/// assert_eq!((refusal.status(), refusal.scope()), (403, Some("orders:read")));
/// ```
#[derive(Clone, Default)]
pub struct Requirements {
    scopes_all: Vec<Box<str>>,
    scopes_any: Vec<Box<str>>,
    roles_all: Vec<Box<str>>,
    roles_any: Vec<Box<str>>,
    predicates: Vec<Predicate>,
}

impl fmt::Debug for Requirements {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.predicates.iter().map(|(n, _)| &**n).collect();
        f.debug_struct("Requirements")
            .field("scopes_all", &self.scopes_all)
            .field("scopes_any", &self.scopes_any)
            .field("roles_all", &self.roles_all)
            .field("roles_any", &self.roles_any)
            .field("predicates", &names)
            .finish()
    }
}

fn boxed<I: IntoIterator<Item = S>, S: Into<String>>(items: I) -> Vec<Box<str>> {
    items
        .into_iter()
        .map(|s| s.into().into_boxed_str())
        .collect()
}

/// What `held` lacks of an all-of list, then of an any-of list.
fn lacking(all: &[Box<str>], any: &[Box<str>], held: impl Fn(&str) -> bool) -> Option<String> {
    let missing: Vec<&str> = all.iter().filter(|s| !held(s)).map(|s| &**s).collect();
    if !missing.is_empty() {
        return Some(missing.join(" "));
    }
    if !any.is_empty() && !any.iter().any(|s| held(s)) {
        return Some(any.join(" "));
    }
    None
}

impl Requirements {
    /// Nothing required.
    pub fn new() -> Requirements {
        Requirements::default()
    }

    /// Every one of `scopes` must be granted (added to earlier ones).
    #[must_use]
    pub fn scopes_all<I: IntoIterator<Item = S>, S: Into<String>>(mut self, scopes: I) -> Self {
        self.scopes_all.extend(boxed(scopes));
        self
    }

    /// At least one of `scopes` must be granted.
    #[must_use]
    pub fn scopes_any<I: IntoIterator<Item = S>, S: Into<String>>(mut self, scopes: I) -> Self {
        self.scopes_any.extend(boxed(scopes));
        self
    }

    /// Every one of `roles` must be held.
    #[must_use]
    pub fn roles_all<I: IntoIterator<Item = S>, S: Into<String>>(mut self, roles: I) -> Self {
        self.roles_all.extend(boxed(roles));
        self
    }

    /// At least one of `roles` must be held.
    #[must_use]
    pub fn roles_any<I: IntoIterator<Item = S>, S: Into<String>>(mut self, roles: I) -> Self {
        self.roles_any.extend(boxed(roles));
        self
    }

    /// A custom requirement; 403 naming `name` when `predicate` is false.
    #[must_use]
    pub fn predicate<F>(mut self, name: &str, predicate: F) -> Self
    where
        F: Fn(&Principal) -> bool + Send + Sync + 'static,
    {
        self.predicates.push((name.into(), Arc::new(predicate)));
        self
    }

    /// Whether nothing is required.
    pub fn is_empty(&self) -> bool {
        self.scopes_all.is_empty()
            && self.scopes_any.is_empty()
            && self.roles_all.is_empty()
            && self.roles_any.is_empty()
            && self.predicates.is_empty()
    }

    /// Checks `principal`; the refusal challenges with `scheme` (the one its
    /// credential came with).
    ///
    /// # Errors
    /// 403 `insufficient_scope`: scopes lacking (named in `scope`), or the
    /// role or predicate unmet (named in the description).
    pub fn check(&self, principal: &Principal, scheme: Scheme) -> Result<(), Refusal> {
        if let Some(scope) = lacking(&self.scopes_all, &self.scopes_any, |s| {
            principal.has_scope(s)
        }) {
            return Err(Refusal::insufficient_scope(scheme, scope));
        }
        if let Some(roles) = lacking(&self.roles_all, &self.roles_any, |r| principal.has_role(r)) {
            return Err(Refusal::forbidden(scheme, &format!("role {roles}")));
        }
        for (name, predicate) in &self.predicates {
            if !predicate(principal) {
                return Err(Refusal::forbidden(scheme, name));
            }
        }
        Ok(())
    }
}
