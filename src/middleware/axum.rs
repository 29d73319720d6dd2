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
//!     format!("hello {}", claims["sub"])
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

use super::{Anonymous, AuthRejection, ScopedClaims};
use crate::validator::Validated;

/// The validated claims of the request. Refuses with 401 when the route was
/// reached without a token (an anonymous-allowing layer), and with 500 when
/// no [`BearerAuthLayer`](super::BearerAuthLayer) runs in front of the route.
#[derive(Debug, Clone, PartialEq)]
pub struct Claims<C>(pub C);

impl<C: ScopedClaims, S: Send + Sync> FromRequestParts<S> for Claims<C> {
    type Rejection = AuthRejection;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, AuthRejection> {
        if let Some(v) = parts.extensions.get::<std::sync::Arc<Validated<C>>>() {
            return Ok(Claims(v.claims.clone()));
        }
        Err(if parts.extensions.get::<Anonymous>().is_some() {
            AuthRejection::Missing
        } else {
            AuthRejection::NotConfigured
        })
    }
}

/// No token: `None`. A bad token never gets here: the layer refused it.
impl<C: ScopedClaims, S: Send + Sync> OptionalFromRequestParts<S> for Claims<C> {
    type Rejection = AuthRejection;

    async fn from_request_parts(
        parts: &mut Parts,
        _state: &S,
    ) -> Result<Option<Self>, AuthRejection> {
        Ok(parts
            .extensions
            .get::<std::sync::Arc<Validated<C>>>()
            .map(|v| Claims(v.claims.clone())))
    }
}

impl IntoResponse for AuthRejection {
    fn into_response(self) -> Response {
        // The extractor has no realm; the layer's own refusals carry it.
        super::tower::render(self.answer("api", false))
    }
}
