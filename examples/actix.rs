//! An actix-web service protected by tokenwarden, with the example keys.
//!
//! ```sh
//! cargo run --example actix --features actix
//! curl -i localhost:3001/me -H "authorization: Bearer $(cat examples/data/valid.jwt)"
//! curl -i localhost:3001/orders -H "authorization: Bearer $(cat examples/data/valid.jwt)"  # 403
//! curl -i localhost:3001/me                                                                  # 401
//! ```
#![allow(clippy::expect_used)]

use actix_web::{App, HttpServer, web};
use serde_json::{Map, Value};
use tokenwarden::middleware::actix::{BearerAuthMiddleware, Claims};
use tokenwarden::middleware::{BearerAuth, Scopes};
use tokenwarden::{KeySet, Validator};

async fn me(Claims(claims): Claims<Map<String, Value>>) -> String {
    format!("hello {}\n", claims["sub"].as_str().unwrap_or("?"))
}

async fn orders() -> &'static str {
    "your orders\n"
}

fn main() -> std::io::Result<()> {
    let keys = KeySet::from_jwks(include_bytes!("data/jwks.json")).expect("example keys");
    let validator = Validator::builder()
        .issuer("https://idp.example.com")
        .audience("https://api.example.com")
        .keys(keys)
        .build()
        .expect("validator");
    let auth = BearerAuth::new(validator).realm("example");
    println!("listening on http://127.0.0.1:3001 (try /me and /orders)");
    actix_web::rt::System::new().block_on(
        HttpServer::new(move || {
            App::new()
                .route("/me", web::get().to(me))
                // The example token has orders:read and orders:write, not admin.
                .service(
                    web::resource("/orders")
                        .wrap(BearerAuthMiddleware::new(
                            auth.clone().require_scopes(Scopes::all(["orders:admin"])),
                        ))
                        .route(web::get().to(orders)),
                )
                .wrap(BearerAuthMiddleware::new(auth.clone()))
        })
        .bind(("127.0.0.1", 3001))?
        .run(),
    )
}
