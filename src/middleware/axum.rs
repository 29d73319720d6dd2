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
//!         get(me).route_layer(auth.clone().require(Scopes::all(["orders:read"])).layer()),
//!     )
//!     .layer(auth.allow_anonymous().layer())
//! # }
//! ```
//!
//! [`BearerAuthLayer`]: super::BearerAuthLayer

use axum_core::extract::{FromRequestParts, OptionalFromRequestParts};
use axum_core::response::{IntoResponse, Response};
use http::request::Parts;

use super::{Anonymous, AuthRejection, Checked, ClaimsRejection, Judged, ScopedClaims, extract};

/// The validated claims of the request. Refuses with 401 (the layer's
/// realm) when the route was reached without a token through an
/// anonymous-allowing layer, and with 500, logged as an error, when no
/// [`BearerAuthLayer`](super::BearerAuthLayer) runs in front of the route or
/// the one in front validates into another claims type (build it with
/// [`BearerAuth::<C>::with_claims`](super::BearerAuth::with_claims)).
///
/// Only claims a layer recorded count, never a bare `Arc<Validated<C>>`
/// some other code inserted; with nested layers on different validators,
/// the innermost layer's.
#[derive(Debug, Clone, PartialEq)]
pub struct Claims<C>(pub C);

impl<C: ScopedClaims, S: Send + Sync> FromRequestParts<S> for Claims<C> {
    type Rejection = ClaimsRejection;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ClaimsRejection> {
        extract(
            parts.extensions.get::<Checked<C>>(),
            parts.extensions.get::<Anonymous>(),
            parts.extensions.get::<Judged>(),
        )
        .map(Claims)
    }
}

/// No token, through an anonymous-allowing layer: `None`. A bad token never
/// gets here: the layer refused it. No layer at all: 500, as for `Claims`.
impl<C: ScopedClaims, S: Send + Sync> OptionalFromRequestParts<S> for Claims<C> {
    type Rejection = ClaimsRejection;

    async fn from_request_parts(
        parts: &mut Parts,
        _state: &S,
    ) -> Result<Option<Self>, ClaimsRejection> {
        let anonymous = parts.extensions.get::<Anonymous>();
        match parts.extensions.get::<Checked<C>>() {
            Some(c) => Ok(Some(Claims(c.validated.claims.clone()))),
            None if anonymous.is_some() => Ok(None),
            None => Err(ClaimsRejection::without_claims::<C>(
                None,
                parts.extensions.get::<Judged>(),
            )),
        }
    }
}

impl IntoResponse for ClaimsRejection {
    fn into_response(self) -> Response {
        // The realm and hook of the layer that let the request through.
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
