//! [`JwtAuthenticator`]: today's [`Validator`] as an authenticator, for
//! `Authorization: Bearer <jwt>` (RFC 6750 §2.1).

use std::sync::Arc;

use serde_json::{Map, Value};

use super::mtls::{CertificateBinding, check_bearer};
use super::request::{authorization, authorization_names};
use super::{Authenticator, BoxFuture, Principal, Refusal, RequestView, Scheme, Verdict};
use crate::error::Error;
use crate::validator::{Validated, Validator};

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
    binding: CertificateBinding,
}

impl JwtAuthenticator {
    /// Bearer tokens judged by `validator`; no roles read.
    pub fn new(validator: Validator) -> Self {
        JwtAuthenticator {
            validator,
            roles: None,
            binding: CertificateBinding::WhenBound,
        }
    }

    /// Whether plain bearer tokens pass beside certificate-bound ones
    /// (RFC 8705 §3). A bound token (`cnf["x5t#S256"]`) is always held to
    /// the connection's client certificate
    /// ([`RequestView::peer_certificate`]); with
    /// [`CertificateBinding::Required`] an unbound one is refused too
    /// (`invalid_token`, kind `token_not_bound`). See
    /// [`mtls::check_binding`](super::mtls::check_binding) for the kinds.
    ///
    /// ```
    /// use tokenwarden::authn::{jwt::JwtAuthenticator, mtls::CertificateBinding};
    /// # use tokenwarden::{Algorithm, KeySet, Validator};
    /// # let validator = Validator::builder().issuer("i").audience("a")
    /// #     .keys(KeySet::from_hmac_secret(Some("k"), Algorithm::HS256, &[7; 32])?).build()?;
    /// let jwt = JwtAuthenticator::new(validator).certificate_binding(CertificateBinding::Required);
    /// # let _ = jwt;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[must_use]
    pub fn certificate_binding(mut self, binding: CertificateBinding) -> Self {
        self.binding = binding;
        self
    }

    /// Reads roles from the claim at the dotted `path` (`"roles"`,
    /// `"realm_access.roles"`, `"cognito:groups"`): a space-separated
    /// string or an array of strings.
    #[must_use]
    pub fn roles_from(mut self, path: &str) -> Self {
        self.roles = Some(path.into());
        self
    }

    /// The verdict without waiting; `None` for a token whose `kid` is
    /// unknown, which waits for the key source's refresh
    /// ([`verdict`](Self::verdict)).
    pub(crate) fn verdict_now(&self, req: &RequestView<'_>) -> Option<Verdict> {
        let token = match authorization(req, Scheme::Bearer) {
            Ok(Some(t)) => t,
            Ok(None) => return Some(Verdict::NotMine),
            Err(r) => return Some(Verdict::Refused(r)),
        };
        match self.validator.validate_shared::<Map<String, Value>>(token) {
            Ok(v) => Some(self.bound(v, req)),
            Err(Error::UnknownKey { kid: Some(_) }) => None,
            Err(e) => Some(Verdict::Refused(Refusal::from_error(Scheme::Bearer, &e))),
        }
    }

    /// The verdict, without boxing: with static keys this completes on its
    /// first poll; only an unknown `kid` waits for the key source's refresh.
    pub(crate) async fn verdict(&self, req: &RequestView<'_>) -> Verdict {
        if let Some(v) = self.verdict_now(req) {
            return v;
        }
        let Ok(Some(token)) = authorization(req, Scheme::Bearer) else {
            return Verdict::NotMine;
        };
        match self.validator.validate_async(token).await {
            Ok(v) => self.bound(Arc::new(v), req),
            Err(e) => Verdict::Refused(Refusal::from_error(Scheme::Bearer, &e)),
        }
    }

    /// A validated bearer token's verdict: a DPoP-bound one (with
    /// `cnf.jkt`) is refused (RFC 9449 §7.1); a certificate-bound one is
    /// held to the connection's certificate (RFC 8705 §3). Both read the
    /// validator's [`Confirmation`](super::mtls::Confirmation).
    fn bound(&self, v: Arc<Validated<Map<String, Value>>>, req: &RequestView<'_>) -> Verdict {
        match check_bearer(&v.confirmation, req.peer_certificate_der(), self.binding) {
            Ok(()) => Verdict::Authenticated(self.principal(v)),
            Err(r) => Verdict::Refused(r),
        }
    }

    /// The principal: a view over the shared claims, nothing copied.
    fn principal(&self, v: Arc<Validated<Map<String, Value>>>) -> Principal {
        Principal::jwt(v, self.roles.clone())
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
