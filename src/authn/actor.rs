//! Delegation (RFC 8693 §4.1, §4.4): the `act` chain of a token — who acts
//! for the subject, and who acted before them — and `may_act`, who may.
//!
//! A token's claims are hostile: the chain is walked with a loop, never
//! recursion, and refused past [`MAX_DELEGATION_DEPTH`] actors, so nesting
//! costs at most that many steps whatever the token holds.

use std::fmt;

use serde_json::Value;

/// Most actors a chain may hold: a deeper `act` is refused
/// ([`DelegationError::TooDeep`]) before any requirement looks at it.
/// Real chains are a hop or two; 16 leaves room without letting a token
/// make every check walk far.
pub const MAX_DELEGATION_DEPTH: usize = 16;

/// One actor of a delegation chain (RFC 8693 §4.1): the party that acted,
/// by its `sub` and, when the token names it, its `iss`.
///
/// ```
/// use serde_json::json;
/// use tokenwarden::authn::Principal;
///
/// let p = Principal::new("alice", "api_key").with_actor(json!({
///     "sub": "svc-b",
///     "act": {"sub": "svc-a", "iss": "https://idp.example.com"}
/// }));
/// let actors = p.actors()?;
/// assert_eq!(actors[0].subject(), "svc-b"); // the current actor
/// assert_eq!(actors[1].issuer(), Some("https://idp.example.com"));
/// assert_eq!(p.delegation_depth()?, 2);
/// # Ok::<(), tokenwarden::authn::DelegationError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    subject: String,
    issuer: Option<String>,
}

impl Actor {
    /// The actor's `sub`.
    pub fn subject(&self) -> &str {
        &self.subject
    }

    /// The actor's `iss`, when the `act` object names one.
    pub fn issuer(&self) -> Option<&str> {
        self.issuer.as_deref()
    }
}

/// Why a token's `act` (or `may_act`) claim is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum DelegationError {
    /// An `act` at this depth (1: the outermost) is not a JSON object.
    NotAnObject {
        /// 1-based depth of the bad member.
        depth: usize,
    },
    /// An `act` at this depth has no `sub`, or one that is not a string.
    NoSubject {
        /// 1-based depth of the bad member.
        depth: usize,
    },
    /// An `act` at this depth has an `iss` that is not a string.
    BadIssuer {
        /// 1-based depth of the bad member.
        depth: usize,
    },
    /// More nested actors than [`MAX_DELEGATION_DEPTH`].
    TooDeep {
        /// The limit that was passed.
        max: usize,
    },
}

impl DelegationError {
    /// A stable name for logs and metrics: `invalid_act` for every case.
    pub fn kind(&self) -> &'static str {
        "invalid_act"
    }
}

impl fmt::Display for DelegationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DelegationError::NotAnObject { depth } => {
                write!(f, "act at depth {depth} is not an object")
            }
            DelegationError::NoSubject { depth } => {
                write!(f, "act at depth {depth} has no string sub")
            }
            DelegationError::BadIssuer { depth } => {
                write!(f, "act at depth {depth} has an iss that is not a string")
            }
            DelegationError::TooDeep { max } => {
                write!(f, "act nests more than {max} actors")
            }
        }
    }
}

impl std::error::Error for DelegationError {}

/// One checked member: its `sub`, `iss` and the next (prior) `act`.
fn member(
    value: &Value,
    depth: usize,
) -> Result<(&str, Option<&str>, Option<&Value>), DelegationError> {
    let Value::Object(obj) = value else {
        return Err(DelegationError::NotAnObject { depth });
    };
    let Some(Value::String(sub)) = obj.get("sub") else {
        return Err(DelegationError::NoSubject { depth });
    };
    let iss = match obj.get("iss") {
        None => None,
        Some(Value::String(iss)) => Some(iss.as_str()),
        Some(_) => return Err(DelegationError::BadIssuer { depth }),
    };
    Ok((sub, iss, obj.get("act")))
}

/// Walks the chain from the outermost `act` (the current actor), calling
/// `each(sub, iss)` per actor in order; returns the depth. A loop bounded
/// by [`MAX_DELEGATION_DEPTH`]: hostile nesting costs that many steps.
pub(crate) fn walk<'v>(
    act: Option<&'v Value>,
    mut each: impl FnMut(&'v str, Option<&'v str>),
) -> Result<usize, DelegationError> {
    let mut next = act;
    let mut depth = 0usize;
    while let Some(value) = next {
        if depth == MAX_DELEGATION_DEPTH {
            return Err(DelegationError::TooDeep {
                max: MAX_DELEGATION_DEPTH,
            });
        }
        depth += 1;
        let (sub, iss, prior) = member(value, depth)?;
        each(sub, iss);
        next = prior;
    }
    Ok(depth)
}

/// The actors of `act`, current first.
pub(crate) fn actors(act: Option<&Value>) -> Result<Vec<Actor>, DelegationError> {
    let mut out = Vec::new();
    walk(act, |sub, iss| {
        out.push(Actor {
            subject: sub.to_owned(),
            issuer: iss.map(str::to_owned),
        });
    })?;
    Ok(out)
}

/// The current actor's `sub` and `iss` (the outermost `act`), after the
/// whole chain is checked.
pub(crate) fn current(
    act: Option<&Value>,
) -> Result<Option<(&str, Option<&str>)>, DelegationError> {
    let mut first = None;
    walk(act, |sub, iss| {
        first.get_or_insert((sub, iss));
    })?;
    Ok(first)
}

/// Whether a `may_act` claim (RFC 8693 §4.4) allows the party with `sub`
/// (and `iss`) to act for the token's subject: each of `may_act`'s `sub`
/// and `iss` that is present must match. A `may_act` that is not an object,
/// or names neither, allows nobody (fail closed).
///
/// ```
/// use serde_json::json;
/// use tokenwarden::authn::may_act_allows;
///
/// let may_act = json!({"sub": "svc-a"});
/// assert!(may_act_allows(&may_act, "svc-a", None));
/// assert!(!may_act_allows(&may_act, "svc-x", None));
/// let strict = json!({"sub": "svc-a", "iss": "https://idp.example.com"});
/// assert!(!may_act_allows(&strict, "svc-a", Some("https://other.example.com")));
/// ```
pub fn may_act_allows(may_act: &Value, sub: &str, iss: Option<&str>) -> bool {
    let Value::Object(obj) = may_act else {
        return false;
    };
    let (want_sub, want_iss) = (
        obj.get("sub").map(Value::as_str),
        obj.get("iss").map(Value::as_str),
    );
    if want_sub.is_none() && want_iss.is_none() {
        return false;
    }
    let ok_sub = match want_sub {
        None => true,
        Some(w) => w == Some(sub),
    };
    let ok_iss = match want_iss {
        None => true,
        Some(w) => w.is_some() && w == iss,
    };
    ok_sub && ok_iss
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn nested(depth: usize) -> Value {
        let mut v = json!({"sub": "a0"});
        for i in 1..depth {
            v = json!({"sub": format!("a{i}"), "act": v});
        }
        v
    }

    #[test]
    fn chain_is_read_current_actor_first() {
        let act = json!({"sub": "b", "iss": "i", "act": {"sub": "a"}});
        let a = actors(Some(&act)).expect("valid");
        assert_eq!(a.len(), 2);
        assert_eq!((a[0].subject(), a[0].issuer()), ("b", Some("i")));
        assert_eq!((a[1].subject(), a[1].issuer()), ("a", None));
    }

    #[test]
    fn depth_at_the_limit_is_read_one_past_is_refused() {
        assert_eq!(
            walk(Some(&nested(MAX_DELEGATION_DEPTH)), |_, _| {}),
            Ok(MAX_DELEGATION_DEPTH)
        );
        assert_eq!(
            walk(Some(&nested(MAX_DELEGATION_DEPTH + 1)), |_, _| {}),
            Err(DelegationError::TooDeep {
                max: MAX_DELEGATION_DEPTH
            })
        );
    }

    #[test]
    fn malformed_members_are_refused_with_their_depth() {
        assert_eq!(
            actors(Some(&json!("svc"))),
            Err(DelegationError::NotAnObject { depth: 1 })
        );
        assert_eq!(
            actors(Some(&json!({"sub": "b", "act": {"iss": "i"}}))),
            Err(DelegationError::NoSubject { depth: 2 })
        );
        assert_eq!(
            actors(Some(&json!({"sub": "b", "iss": 7}))),
            Err(DelegationError::BadIssuer { depth: 1 })
        );
        assert_eq!(
            actors(Some(&json!({"sub": 7}))),
            Err(DelegationError::NoSubject { depth: 1 })
        );
    }

    #[test]
    fn may_act_fails_closed() {
        assert!(!may_act_allows(&json!({}), "a", None));
        assert!(!may_act_allows(&json!("a"), "a", None));
        assert!(!may_act_allows(&json!({"sub": 7}), "7", None));
        assert!(!may_act_allows(&json!({"iss": "i"}), "a", None));
        assert!(may_act_allows(&json!({"iss": "i"}), "a", Some("i")));
    }
}
