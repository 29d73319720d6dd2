//! An axum service protected by tokenwarden, with the example keys.
//!
//! ```sh
//! cargo run --example axum --features axum
//! curl -i localhost:3000/me -H "authorization: Bearer $(cat examples/data/valid.jwt)"
//! curl -i localhost:3000/orders -H "authorization: Bearer $(cat examples/data/valid.jwt)"  # 403
//! curl -i localhost:3000/me                                                                  # 401
//! ```
#![allow(clippy::expect_used)]

use axum::Router;
use axum::routing::get;
use serde_json::{Map, Value};
use tokenwarden::middleware::axum::Claims;
use tokenwarden::middleware::{BearerAuth, Scopes};
use tokenwarden::{KeySet, Validator};

async fn me(Claims(claims): Claims<Map<String, Value>>) -> String {
    format!("hello {}\n", claims["sub"].as_str().unwrap_or("?"))
}

async fn orders() -> &'static str {
    "your orders\n"
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let keys = KeySet::from_jwks(include_bytes!("data/jwks.json")).expect("example keys");
    let validator = Validator::builder()
        .issuer("https://idp.example.com")
        .audience("https://api.example.com")
        .keys(keys)
        .build()
        .expect("validator");
    let auth = BearerAuth::new(validator).realm("example");
    let app = Router::new()
        .route("/me", get(me))
        // The example token has orders:read and orders:write, not admin.
        .route(
            "/orders",
            get(orders).route_layer(
                auth.clone()
                    .require_scopes(Scopes::all(["orders:admin"]))
                    .layer(),
            ),
        )
        .layer(auth.layer());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:3000")
        .await
        .expect("bind 127.0.0.1:3000");
    println!("listening on http://127.0.0.1:3000 (try /me and /orders)");
    axum::serve(listener, app).await.expect("server");
}
