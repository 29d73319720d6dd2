//! A [`Chain`] in the layers: [`BearerAuth::from_chain`] judges requests
//! with the chain's authenticators (bearer JWTs, API keys, yours) instead
//! of one validator, with the same refusal table, hook, realm, gRPC mapping
//! and requirements; handlers get the [`Principal`].

use std::any::Any;
use std::sync::Arc;

use serde_json::{Map, Value};

use super::{AuthRejection, BearerAuth, Checked, Config, Outcome, ScopedClaims, TokenSource};
use crate::authn::principal::JwtClaims;
use crate::authn::{Chain, Principal, Refusal, RequestView, Scheme};
use crate::validator::Validated;

impl BearerAuth {
    /// A layer configuration judging requests with `chain`: every kind of
    /// credential its authenticators accept (bearer JWTs, API keys with the
    /// `api-keys` feature, your own), one [`Principal`] for the handler.
    ///
    /// The rest of the configuration applies as for
    /// [`BearerAuth::new`]: [`realm`](Self::realm),
    /// [`on_refusal`](Self::on_refusal) and
    /// [`problem_json`](Self::problem_json),
    /// [`retry_after`](Self::retry_after) (any authenticator's 503),
    /// [`grpc`](Self::grpc), [`allow_anonymous`](Self::allow_anonymous)
    /// (no credential of any kind), and the requirements, checked on the
    /// principal whatever its credential: [`require_scopes`](Self::require_scopes)
    /// (its scopes), [`require_roles`](Self::require_roles) (its roles, or
    /// those at the path in its claims), [`require_claims`](Self::require_claims)
    /// (its claims). [`from_header`](Self::from_header) and
    /// [`from_cookie`](Self::from_cookie) do not apply: each authenticator
    /// reads its own credential.
    ///
    /// Handlers read the principal (axum and actix extractors, or
    /// [`principal_from`] for tonic and hyper); a JWT's claims also reach
    /// the `Claims<T>` extractors, as behind `BearerAuth::new`. Other
    /// credentials have no JWT claims: read theirs with
    /// [`Principal::claims`].
    /// [`authorize`](Self::authorize), whose answer is a `Validated<C>`,
    /// answers a chain's configuration with 500 `not_configured`: outside a
    /// framework, call [`Chain::authenticate`] with a [`RequestView`].
    ///
    /// Refusals follow the chain's table ([`Refusal`]): two kinds of
    /// credentials at once 400, none 401 with one `WWW-Authenticate` value
    /// per scheme (`Bearer`, `ApiKey`, …), unmet requirements 403, an
    /// unavailable key source 503.
    ///
    /// `BearerAuth::new(validator)` is the one-line form of
    /// `BearerAuth::from_chain(Chain::new().jwt(JwtAuthenticator::new(validator)))`
    /// with the claims, rather than a principal, in the request: it keeps
    /// its own, slightly shorter path (no principal, no chain walk).
    ///
    /// ```
    /// use tokenwarden::authn::{Chain, jwt::JwtAuthenticator};
    /// use tokenwarden::middleware::{BearerAuth, Scopes};
    /// # use tokenwarden::{Algorithm, KeySet, Validator};
    /// # let validator = Validator::builder().issuer("i").audience("a")
    /// #     .keys(KeySet::from_hmac_secret(Some("k"), Algorithm::HS256, &[7; 32])?).build()?;
    /// let chain = Chain::new().jwt(JwtAuthenticator::new(validator).roles_from("roles"));
    /// // With the `api-keys` feature: `.api_key(ApiKeyAuthenticator::memory(store))`.
    /// let auth = BearerAuth::from_chain(chain)
    ///     .realm("orders")
    ///     .require_scopes(Scopes::all(["orders:read"]))
    ///     .problem_json();
    /// let layer = auth.layer(); // tower, axum, hyper, tonic
    /// # let _ = layer;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn from_chain(chain: Chain) -> Self {
        BearerAuth {
            config: Arc::new(Config {
                validator: None,
                validator_id: super::next_validator_id(),
                realm: "api".into(),
                source: TokenSource::Chain,
                scopes: super::Scopes::default(),
                roles: None,
                anonymous: false,
                grpc: true,
                predicates: Vec::new(),
                shape: super::refusal::Shape::default(),
                chain: Some(chain),
                internal: super::internal::Slot::default(),
                log_limit: super::log_limit::LogLimiter::shared(),
            }),
        }
    }
}

impl<C: ScopedClaims> BearerAuth<C> {
    /// The chain, when this configuration judges with one.
    pub(crate) fn chain(&self) -> Option<&Chain> {
        self.config.chain.as_ref()
    }

    /// The chain's verdict without waiting: [`Outcome::Wait`] when an
    /// authenticator must wait ([`check_chain`](Self::check_chain) then).
    pub(crate) fn check_chain_now(&self, req: &RequestView<'_>) -> Outcome<C> {
        let Some(chain) = self.chain() else {
            return Outcome::Refused(AuthRejection::NotConfigured);
        };
        match chain.authenticate_now(req) {
            None => Outcome::Wait,
            Some(verdict) => self.chain_outcome(verdict),
        }
    }

    /// A chain's verdict on one request, outside the layers (a forward-auth
    /// server, your own dispatcher): the [`Principal`], `Ok(None)` for no
    /// credential where [`allow_anonymous`](Self::allow_anonymous) is set,
    /// or the refusal, with this configuration's requirements applied.
    /// Without a chain ([`BearerAuth::new`]): 500 `not_configured`.
    ///
    /// ```no_run
    /// use tokenwarden::authn::{Chain, RequestView};
    /// use tokenwarden::middleware::BearerAuth;
    /// # async fn run(auth: BearerAuth, headers: http::HeaderMap) {
    /// let view = RequestView::new("GET", "/orders/7", &headers);
    /// match auth.authorize_request(&view).await {
    ///     Ok(Some(principal)) => println!("{} by {}", principal.subject(), principal.authenticator()),
    ///     Ok(None) => println!("anonymous"),
    ///     Err(refusal) => println!("{}", refusal.status()),
    /// }
    /// # }
    /// ```
    ///
    /// # Errors
    /// The [`AuthRejection`] to answer with.
    pub async fn authorize_request(
        &self,
        req: &RequestView<'_>,
    ) -> Result<Option<Principal>, AuthRejection> {
        self.check_chain(req).await
    }

    /// The chain's verdict, waiting for the authenticator that must.
    /// `Ok(None)`: no credential, and anonymous requests are allowed.
    pub(crate) async fn check_chain(
        &self,
        req: &RequestView<'_>,
    ) -> Result<Option<Principal>, AuthRejection> {
        let Some(chain) = self.chain() else {
            return Err(AuthRejection::NotConfigured);
        };
        match self.chain_outcome(chain.authenticate(req).await) {
            Outcome::Principal(p) => Ok(Some(p)),
            Outcome::Refused(r) => Err(r),
            _ => Ok(None),
        }
    }

    fn chain_outcome(&self, verdict: Result<Principal, Refusal>) -> Outcome<C> {
        match verdict {
            Ok(p) => match self.principal_requirements(&p) {
                Ok(()) => Outcome::Principal(p),
                Err(r) => Outcome::Refused(r),
            },
            Err(r) if self.config.anonymous && r.status() == 401 && r.error().is_none() => {
                Outcome::Anonymous
            }
            Err(r) => Outcome::Refused(AuthRejection::Chain(Box::new(r))),
        }
    }

    /// This configuration's requirements on a chain's principal; a
    /// refusal challenges with the scheme of the principal's credential.
    fn principal_requirements(&self, p: &Principal) -> Result<(), AuthRejection> {
        let c: &Config<C> = &self.config;
        let scheme = || match self.chain() {
            Some(chain) => chain.scheme_of(p.authenticator()),
            None => Scheme::Bearer,
        };
        if let Some(scope) = c.scopes.lacking(|s| p.has_scope(s)) {
            return Err(AuthRejection::Chain(Box::new(Refusal::insufficient_scope(
                scheme(),
                scope,
            ))));
        }
        if let Some(roles) = &c.roles {
            if let Err(AuthRejection::Forbidden { requirement }) =
                roles.check_held(|r| p.has_role(r) || p.claims().has_role(roles.path(), r))
            {
                return Err(AuthRejection::Chain(Box::new(Refusal::forbidden(
                    scheme(),
                    &requirement,
                ))));
            }
        }
        if !c.predicates.is_empty() {
            // A chain's configuration has JSON claims (`from_chain` makes a
            // `BearerAuth<Map<String, Value>>`).
            let claims = (p.claims() as &dyn Any).downcast_ref::<C>();
            for (name, predicate) in &c.predicates {
                if !claims.is_some_and(|claims| predicate(claims)) {
                    return Err(AuthRejection::Chain(Box::new(Refusal::forbidden(
                        scheme(),
                        name,
                    ))));
                }
            }
        }
        Ok(())
    }

    /// What a chain layer puts in the request's extensions for a JWT's
    /// principal: its claims as [`BearerAuth::new`]'s layer does (so
    /// `Claims<T>` keeps working), with the roles path, from which the
    /// extractors rebuild the principal (one extension less per request).
    /// `None` for any other principal: it goes in as itself.
    #[cfg_attr(not(any(feature = "tower", feature = "actix")), allow(dead_code))]
    pub(crate) fn principal_extensions(&self, p: &Principal) -> Option<(Checked, JwtClaims)> {
        let (v, roles) = p.jwt_parts()?;
        Some((
            Checked {
                by: self.config.validator_id,
                from: TokenSource::Chain,
                claims_type: std::any::type_name::<Map<String, Value>>(),
                validated: v.clone(),
                roles: roles.cloned(),
                authenticator: p.authenticator(),
            },
            v.clone(),
        ))
    }
}

/// The request's [`Principal`], for tonic and hyper handlers: the one a
/// [`BearerAuth::from_chain`] layer put in the request's extensions, or,
/// behind a [`BearerAuth::new`] layer, its JWT's (claims as JSON). `None`
/// when no layer vouched for the request (none ran, or one let it through
/// anonymously).
///
/// ```
/// use tokenwarden::middleware::principal_from;
///
/// fn who(req: &http::Request<()>) -> String {
///     match principal_from(req.extensions()) {
///         Some(p) => format!("{} (by {})", p.subject(), p.authenticator()),
///         None => "anonymous".into(),
///     }
/// }
/// assert_eq!(who(&http::Request::new(())), "anonymous");
/// ```
#[cfg(feature = "tower")]
pub fn principal_from(extensions: &http::Extensions) -> Option<Principal> {
    principal_of(extensions.get::<Principal>(), extensions.get::<Checked>())
}

/// The principal a layer recorded, or the one of the JSON claims a
/// `BearerAuth::new` layer recorded.
#[cfg_attr(not(any(feature = "tower", feature = "actix")), allow(dead_code))]
pub(crate) fn principal_of(p: Option<&Principal>, checked: Option<&Checked>) -> Option<Principal> {
    if let Some(p) = p {
        return Some(p.clone());
    }
    let checked = checked?;
    let v = checked
        .validated
        .clone()
        .downcast::<Validated<Map<String, Value>>>()
        .ok()?;
    Some(Principal::jwt_by(
        v,
        checked.roles.clone(),
        checked.authenticator,
    ))
}
