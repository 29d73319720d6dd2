//! [`Requirements`]: what a route asks of a [`Principal`], whatever
//! credential proved it.

use std::fmt;
use std::sync::Arc;

use crate::authn::{Principal, Refusal, Scheme, actor};

/// A named custom requirement.
type Predicate = (Box<str>, Arc<dyn Fn(&Principal) -> bool + Send + Sync>);

/// Scopes (all of, any of), roles (all of, any of), delegation limits
/// (RFC 8693 §4.1: how many actors, which may act now) and named
/// predicates a principal must meet: 403 `insufficient_scope` otherwise.
/// Checked in that order; the first unmet one is the refusal. Cheap to
/// clone.
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
    max_delegation_depth: Option<usize>,
    /// `(sub, iss)` of the actors allowed to act now.
    allowed_actors: Vec<(Box<str>, Option<Box<str>>)>,
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
            .field("max_delegation_depth", &self.max_delegation_depth)
            .field("allowed_actors", &self.allowed_actors)
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

    /// At most `depth` actors in the principal's delegation chain (RFC
    /// 8693 §4.1 `act`): 0 refuses every delegated token, 1 allows a
    /// service acting directly for the user but not a service acting for
    /// one that acted for the user. 403 `delegation_refused` beyond it.
    ///
    /// ```
    /// use serde_json::json;
    /// use tokenwarden::Requirements;
    /// use tokenwarden::authn::{Principal, Scheme};
    ///
    /// let req = Requirements::new().max_delegation_depth(1);
    /// let one_hop = Principal::new("alice", "jwt").with_actor(json!({"sub": "svc-a"}));
    /// assert!(req.check(&one_hop, Scheme::Bearer).is_ok());
    /// let two_hops = Principal::new("alice", "jwt")
    ///     .with_actor(json!({"sub": "svc-b", "act": {"sub": "svc-a"}}));
    /// let refusal = req.check(&two_hops, Scheme::Bearer).unwrap_err();
    /// assert_eq!((refusal.status(), refusal.kind()), (403, "delegation_refused"));
    /// ```
    #[must_use]
    pub fn max_delegation_depth(mut self, depth: usize) -> Self {
        self.max_delegation_depth = Some(depth);
        self
    }

    /// When someone acts for the subject, the current actor (the outermost
    /// `act`) must be one of `subjects` (added to earlier ones). Only the
    /// current actor counts: RFC 8693 §4.1 makes prior actors
    /// informational, not input to access control. A token with no `act`
    /// is not delegated and is not refused by this; refuse those with
    /// [`predicate`](Self::predicate) if a route takes only delegated calls.
    /// 403 `delegation_refused` naming the actor otherwise.
    ///
    /// ```
    /// use serde_json::json;
    /// use tokenwarden::Requirements;
    /// use tokenwarden::authn::{Principal, Scheme};
    ///
    /// let req = Requirements::new().allowed_actors(["orders-service"]);
    /// let p = Principal::new("alice", "jwt").with_actor(json!({"sub": "mallory-svc"}));
    /// assert_eq!(req.check(&p, Scheme::Bearer).unwrap_err().kind(), "delegation_refused");
    /// ```
    #[must_use]
    pub fn allowed_actors<I: IntoIterator<Item = S>, S: Into<String>>(
        mut self,
        subjects: I,
    ) -> Self {
        self.allowed_actors
            .extend(boxed(subjects).into_iter().map(|s| (s, None)));
        self
    }

    /// Like [`allowed_actors`](Self::allowed_actors) for one actor that
    /// must also name `issuer` as its `iss`.
    #[must_use]
    pub fn allowed_actor_from(mut self, subject: &str, issuer: &str) -> Self {
        self.allowed_actors
            .push((subject.into(), Some(issuer.into())));
        self
    }

    /// Whether nothing is required.
    pub fn is_empty(&self) -> bool {
        self.max_delegation_depth.is_none()
            && self.allowed_actors.is_empty()
            && self.scopes_all.is_empty()
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
    /// role or predicate unmet (named in the description); kind
    /// `delegation_refused` for a delegation limit; 401 `invalid_act` for a
    /// malformed delegation chain when a delegation limit is set.
    pub fn check(&self, principal: &Principal, scheme: Scheme) -> Result<(), Refusal> {
        if let Some(scope) = lacking(&self.scopes_all, &self.scopes_any, |s| {
            principal.has_scope(s)
        }) {
            return Err(Refusal::insufficient_scope(scheme, scope));
        }
        if let Some(roles) = lacking(&self.roles_all, &self.roles_any, |r| principal.has_role(r)) {
            return Err(Refusal::forbidden(scheme, &format!("role {roles}")));
        }
        if self.max_delegation_depth.is_some() || !self.allowed_actors.is_empty() {
            self.check_delegation(principal, scheme)?;
        }
        for (name, predicate) in &self.predicates {
            if !predicate(principal) {
                return Err(Refusal::forbidden(scheme, name));
            }
        }
        Ok(())
    }

    /// The delegation limits (RFC 8693 §4.1).
    fn check_delegation(&self, principal: &Principal, scheme: Scheme) -> Result<(), Refusal> {
        let act = principal.actor();
        let malformed =
            || Refusal::invalid_token(scheme, "invalid_act", "malformed or too deep act claim");
        // Bounded walk: a hostile chain costs at most MAX_DELEGATION_DEPTH steps.
        let depth = actor::walk(act, |_, _| {}).map_err(|_| malformed())?;
        if let Some(max) = self.max_delegation_depth {
            if depth > max {
                return Err(Refusal::delegation(
                    scheme,
                    &format!("delegation depth {depth} exceeds the limit of {max}"),
                ));
            }
        }
        if !self.allowed_actors.is_empty() {
            if let Some((sub, iss)) = actor::current(act).map_err(|_| malformed())? {
                let allowed = self
                    .allowed_actors
                    .iter()
                    .any(|(s, i)| **s == *sub && i.as_deref().is_none_or(|i| Some(i) == iss));
                if !allowed {
                    // The token's own words: shortened (and made header-safe
                    // by the refusal) before they reach the client.
                    let shown: String = sub.chars().take(64).collect();
                    return Err(Refusal::delegation(
                        scheme,
                        &format!("actor {shown} is not allowed"),
                    ));
                }
            }
        }
        Ok(())
    }
}
