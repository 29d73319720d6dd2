//! Your own claims type with axum: a layer built for it (`with_claims`,
//! `ScopedClaims`), the same type read behind the default JSON layer, and
//! scope and role checks made in a handler.
//!
//! ```sh
//! cargo run --example typed_claims --features axum
//! T=$(cat examples/data/valid.jwt)
//! curl -i localhost:3000/orders  -H "authorization: Bearer $T"   # 200, scopes checked on MyClaims
//! curl -i localhost:3000/profile -H "authorization: Bearer $T"   # 200, MyClaims behind BearerAuth::new
//! curl -i -X POST localhost:3000/refund -H "authorization: Bearer $T"  # 403, role checked in the handler
//! ```
#![allow(clippy::expect_used)]

use axum::Router;
use axum::routing::{get, post};
use serde::Deserialize;
use tokenwarden::middleware::axum::Claims;
use tokenwarden::middleware::{AuthRejection, BearerAuth, Roles, ScopedClaims, Scopes};
use tokenwarden::{KeySet, Validator};

/// The claims this service reads; the rest of the token is ignored.
#[derive(Debug, Clone, Deserialize)]
struct MyClaims {
    sub: String,
    #[serde(default)]
    scope: String,
    #[serde(default)]
    roles: Vec<String>,
}

impl ScopedClaims for MyClaims {
    fn has_scope(&self, scope: &str) -> bool {
        self.scope.split(' ').any(|s| s == scope)
    }

    fn has_role(&self, path: &str, role: &str) -> bool {
        path == "roles" && self.roles.iter().any(|r| r == role)
    }
}

/// Behind a layer built for `MyClaims`: its scopes were checked there.
async fn orders(Claims(claims): Claims<MyClaims>) -> String {
    format!("orders of {}\n", claims.sub)
}

/// Behind the default layer (JSON claims): `MyClaims` is read from them.
async fn profile(Claims(claims): Claims<MyClaims>) -> String {
    format!("profile of {} ({})\n", claims.sub, claims.scope)
}

/// A check that belongs to the handler: the same 403 the layer would give.
async fn refund(Claims(claims): Claims<MyClaims>) -> Result<String, AuthRejection> {
    Scopes::all(["orders:write"]).check(&claims)?;
    Roles::any("roles", ["refunds", "admin"]).check(&claims)?;
    Ok(format!("refund made by {}\n", claims.sub))
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let keys = KeySet::from_jwks(include_bytes!("data/jwks.json")).expect("example keys");
    let validator = Validator::builder()
        .issuer("https://idp.example.com")
        .audience("https://api.example.com")
        .keys(keys)
        .require_claim("sub")
        .build()
        .expect("validator");
    let mine = BearerAuth::<MyClaims>::with_claims(validator.clone()).realm("example");
    let json = BearerAuth::new(validator).realm("example");
    let app = Router::new()
        .route(
            "/orders",
            get(orders).route_layer(mine.require_scopes(Scopes::all(["orders:read"])).layer()),
        )
        .route("/profile", get(profile).route_layer(json.clone().layer()))
        .route("/refund", post(refund).route_layer(json.layer()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:3000")
        .await
        .expect("bind 127.0.0.1:3000");
    println!("listening on http://127.0.0.1:3000 (try /orders, /profile, POST /refund)");
    axum::serve(listener, app).await.expect("server");
}
