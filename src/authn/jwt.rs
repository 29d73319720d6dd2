//! [`JwtAuthenticator`]: today's [`Validator`] as an authenticator, for
//! `Authorization: Bearer <jwt>` (RFC 6750 §2.1).

use std::sync::Arc;

use serde_json::{Map, Value};

use super::request::{authorization, authorization_names};
use super::{Authenticator, BoxFuture, Principal, Refusal, RequestView, Scheme, Verdict};
use crate::error::Error;
use crate::validator::{Validated, Validator};

/// Most scopes (or roles) read from one claim, as the middleware reads
/// them: a grant listed after these is not seen, so checks fail closed and
/// their cost is bounded whatever the token lists.
const MAX_GRANTS: usize = 256;

/// Bearer JWTs, judged by a [`Validator`], as a [`Principal`]: `sub` as
/// subject, scopes from `scope` and `scp` (a space-separated string or an
/// array of strings, either claim in either shape), roles from a
/// configured claim path, `exp` as expiry, the validated claims as JSON.
///
/// ```
/// use tokenwarden::authn::{Chain, RequestView, jwt::JwtAuthenticator};
/// use tokenwarden::{Algorithm, KeySet, Validator};
///
/// let validator = Validator::builder()
///     .issuer("https://idp.example.com")
///     .audience("https://api.example.com")
///     .keys(KeySet::from_hmac_secret(Some("k"), Algorithm::HS256, &[7; 32])?)
///     .build()?;
/// let jwt = JwtAuthenticator::new(validator).roles_from("realm_access.roles");
/// let chain = Chain::new().jwt(jwt);
/// # let _ = chain;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug)]
pub struct JwtAuthenticator {
    validator: Validator,
    roles: Option<Arc<str>>,
}

impl JwtAuthenticator {
    /// Bearer tokens judged by `validator`; no roles read.
    pub fn new(validator: Validator) -> Self {
        JwtAuthenticator {
            validator,
            roles: None,
        }
    }

    /// Reads roles from the claim at the dotted `path` (`"roles"`,
    /// `"realm_access.roles"`, `"cognito:groups"`): a space-separated
    /// string or an array of strings.
    #[must_use]
    pub fn roles_from(mut self, path: &str) -> Self {
        self.roles = Some(path.into());
        self
    }

    /// The verdict, without boxing: with static keys this completes on its
    /// first poll; only an unknown `kid` waits for the key source's refresh.
    pub(crate) async fn verdict(&self, req: &RequestView<'_>) -> Verdict {
        let token = match authorization(req, Scheme::Bearer) {
            Ok(Some(t)) => t,
            Ok(None) => return Verdict::NotMine,
            Err(r) => return Verdict::Refused(r),
        };
        match self.validator.validate_shared::<Map<String, Value>>(token) {
            Ok(v) => Verdict::Authenticated(self.principal(v)),
            Err(Error::UnknownKey { kid: Some(_) }) => {
                match self.validator.validate_async(token).await {
                    Ok(v) => Verdict::Authenticated(self.principal(Arc::new(v))),
                    Err(e) => Verdict::Refused(Refusal::from_error(Scheme::Bearer, &e)),
                }
            }
            Err(e) => Verdict::Refused(Refusal::from_error(Scheme::Bearer, &e)),
        }
    }

    fn principal(&self, v: Arc<Validated<Map<String, Value>>>) -> Principal {
        let claims = &v.claims;
        let subject = claims.get("sub").and_then(Value::as_str).unwrap_or("");
        let mut scopes = Vec::new();
        grants(claims.get("scope"), &mut scopes);
        grants(claims.get("scp"), &mut scopes);
        let mut roles = Vec::new();
        if let Some(path) = &self.roles {
            grants(at_path(claims, path), &mut roles);
        }
        let exp = claims.get("exp").and_then(Value::as_i64);
        Principal::new(subject, "jwt")
            .with_scopes(scopes)
            .with_roles(roles)
            .with_expiry(exp)
            .with_jwt(v.clone())
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

/// The grants a claim value lists: a space-separated string or an array of
/// strings, the first [`MAX_GRANTS`] entries.
fn grants<'v>(value: Option<&'v Value>, out: &mut Vec<&'v str>) {
    match value {
        Some(Value::String(s)) => {
            out.extend(s.split(' ').filter(|g| !g.is_empty()).take(MAX_GRANTS))
        }
        Some(Value::Array(a)) => out.extend(a.iter().take(MAX_GRANTS).filter_map(Value::as_str)),
        _ => {}
    }
}

impl Authenticator for JwtAuthenticator {
    fn name(&self) -> &'static str {
        "jwt"
    }

    fn scheme(&self) -> Scheme {
        Scheme::Bearer
    }

    fn recognises(&self, req: &RequestView<'_>) -> bool {
        authorization_names(req, Scheme::Bearer)
    }

    fn authenticate<'a>(&'a self, req: &'a RequestView<'a>) -> BoxFuture<'a, Verdict> {
        Box::pin(self.verdict(req))
    }
}
