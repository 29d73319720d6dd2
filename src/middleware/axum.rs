//! axum extractors (feature `axum`): the claims the [`BearerAuthLayer`]
//! validated, as `Claims<C>` or, for routes open to anonymous callers,
//! `Option<Claims<C>>`.
//!
//! ```no_run
//! use axum::{Router, routing::get};
//! use serde_json::{Map, Value};
//! use tokenwarden::middleware::{BearerAuth, Scopes, axum::Claims};
//! # use tokenwarden::{KeySet, Validator};
//!
//! async fn me(Claims(claims): Claims<Map<String, Value>>) -> String {
//!     format!("hello {}", claims["sub"].as_str().unwrap_or("?"))
//! }
//!
//! # fn app(validator: Validator) -> Router {
//! let auth = BearerAuth::new(validator).realm("orders");
//! Router::new()
//!     .route("/me", get(me))
//!     .route(
//!         "/orders",
//!         get(me).route_layer(auth.clone().require_scopes(Scopes::all(["orders:read"])).layer()),
//!     )
//!     .layer(auth.allow_anonymous().layer())
//! # }
//! ```
//!
//! [`BearerAuthLayer`]: super::BearerAuthLayer

use axum_core::extract::{FromRequestParts, OptionalFromRequestParts};
use axum_core::response::{IntoResponse, Response};
use http::request::Parts;
use serde::de::DeserializeOwned;

use super::typed::{self, Memo, Why};
use super::{Anonymous, AuthRejection, Checked, ClaimsRejection};
use crate::authn::Principal;

/// The validated claims of the request, as `C`: any `DeserializeOwned`
/// type. The layer's own claims type is cloned; any other is read from the
/// layer's JSON claims ([`BearerAuth::new`](super::BearerAuth::new)) once
/// per request and type, so two extractors of one type deserialise once.
///
/// Refuses with 401 (the layer's realm) when the route was reached without
/// a token through an anonymous-allowing layer, and with 500, logged as an
/// error, when no [`BearerAuthLayer`](super::BearerAuthLayer) runs in front
/// of the route or the claims do not fit `C` (the log names the type and
/// the claim, never its value; the body says what kind of mistake).
///
/// Only claims a layer recorded count, never a bare `Arc<Validated<C>>`
/// some other code inserted; with nested layers on different validators,
/// the innermost layer's.
#[derive(Debug, Clone, PartialEq)]
pub struct Claims<C>(pub C);

impl<C, S> FromRequestParts<S> for Claims<C>
where
    C: DeserializeOwned + Clone + Send + Sync + 'static,
    S: Send + Sync,
{
    type Rejection = ClaimsRejection;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ClaimsRejection> {
        extract::<C>(parts)?.map(Claims).ok_or_else(|| {
            ClaimsRejection::without_claims::<C>(parts.extensions.get::<Anonymous>())
        })
    }
}

/// No token, through an anonymous-allowing layer: `None`. A bad token never
/// gets here: the layer refused it. No layer at all, or claims that do not
/// fit: 500, as for `Claims`.
impl<C, S> OptionalFromRequestParts<S> for Claims<C>
where
    C: DeserializeOwned + Clone + Send + Sync + 'static,
    S: Send + Sync,
{
    type Rejection = ClaimsRejection;

    async fn from_request_parts(
        parts: &mut Parts,
        _state: &S,
    ) -> Result<Option<Self>, ClaimsRejection> {
        match extract::<C>(parts)? {
            Some(c) => Ok(Some(Claims(c))),
            None if parts.extensions.get::<Anonymous>().is_some() => Ok(None),
            None => Err(ClaimsRejection::without_claims::<C>(None)),
        }
    }
}

/// The claims as `C` (`None`: no layer recorded any), memoised in the
/// request's extensions.
fn extract<C>(parts: &mut Parts) -> Result<Option<C>, ClaimsRejection>
where
    C: DeserializeOwned + Clone + Send + Sync + 'static,
{
    let ext = &parts.extensions;
    match typed::typed::<C>(ext.get::<Checked>(), ext.get::<Memo<C>>()) {
        Ok((claims, memo)) => {
            if let Some(memo) = memo {
                parts.extensions.insert(memo);
            }
            Ok(Some(claims))
        }
        Err(Why::NoClaims) => Ok(None),
        Err(Why::DoesNotFit) => Err(ClaimsRejection::internal(Some(typed::DOES_NOT_FIT))),
    }
}

/// The request's [`Principal`]: the one a
/// [`BearerAuth::from_chain`](super::BearerAuth::from_chain) layer vouched
/// for (a JWT's, an API key's, …), or the JWT's behind a
/// [`BearerAuth::new`](super::BearerAuth::new) layer. Refuses as
/// [`Claims`] does: 401 (the layer's realm) behind an anonymous-allowing
/// layer, 500 (logged) when no layer ran; `Option<Principal>` is `None`
/// for an anonymous request.
///
/// ```no_run
/// use tokenwarden::authn::Principal;
///
/// async fn me(p: Principal) -> String {
///     format!("{} via {}", p.subject(), p.authenticator())
/// }
/// ```
impl<S: Send + Sync> FromRequestParts<S> for Principal {
    type Rejection = ClaimsRejection;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ClaimsRejection> {
        let ext = &parts.extensions;
        super::chain::principal_of(ext.get::<Principal>(), ext.get::<Checked>())
            .ok_or_else(|| ClaimsRejection::without_claims::<Principal>(ext.get::<Anonymous>()))
    }
}

/// `None` for a request an anonymous-allowing layer let through; 500 when
/// no layer ran.
impl<S: Send + Sync> OptionalFromRequestParts<S> for Principal {
    type Rejection = ClaimsRejection;

    async fn from_request_parts(
        parts: &mut Parts,
        _state: &S,
    ) -> Result<Option<Self>, ClaimsRejection> {
        let ext = &parts.extensions;
        match super::chain::principal_of(ext.get::<Principal>(), ext.get::<Checked>()) {
            Some(p) => Ok(Some(p)),
            None if ext.get::<Anonymous>().is_some() => Ok(None),
            None => Err(ClaimsRejection::without_claims::<Principal>(None)),
        }
    }
}

impl IntoResponse for ClaimsRejection {
    fn into_response(self) -> Response {
        // The realm and hook of the layer that let the request through (a
        // plain-text 500 for a wiring mistake).
        super::tower::render(self.answer(), axum_core::body::Body::from)
    }
}

impl IntoResponse for AuthRejection {
    fn into_response(self) -> Response {
        // A bare refusal knows no realm; the layer's own refusals and the
        // extractor's (`ClaimsRejection`) carry the configured one.
        super::tower::render(
            super::refusal::Shape::default().answer(&self, "api", false),
            axum_core::body::Body::from,
        )
    }
}
