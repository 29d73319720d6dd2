//! The README's axum quick start, run against the crate's own test issuer
//! instead of your identity provider, then called once with a token of each
//! kind. Exits 0 when the three answers are 200, 401 and 403.
//!
//! ```sh
//! cargo run --example quickstart --features axum,remote,testing
//! ```
//!
//! Everything between the two `---` comments is the quick start, as a
//! service would write it (the issuer URL aside).
#![allow(clippy::expect_used)]

use axum::Router;
use axum::routing::get;
use serde::Deserialize;
use tokenwarden::Validator;
use tokenwarden::middleware::axum::Claims;
use tokenwarden::middleware::{BearerAuth, Scopes};
use tokenwarden::testing::TestIssuer;

/// The claims the handler reads: any `Deserialize` type.
#[derive(Clone, Deserialize)]
struct User {
    sub: String,
    tenant: String,
}

async fn orders(Claims(user): Claims<User>) -> String {
    format!("orders of {} in {}", user.sub, user.tenant)
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Stands in for Keycloak, Auth0, Entra ID, Okta…: discovery and JWKS on loopback.
    let idp = TestIssuer::start()?;

    // --- the quick start
    let validator = Validator::oidc(idp.issuer())
        .audience("orders-api")
        .allow_http_loopback(true) // a loopback test issuer; leave out for a real IdP
        .build()
        .await?; // discovery and the first keys, or a clear error
    let auth = BearerAuth::new(validator).realm("orders");
    let orders_read = auth.require_scopes(Scopes::all(["orders:read"]));
    let app = Router::new().route("/orders", get(orders).route_layer(orders_read.layer()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move { axum::serve(listener, app).await });
    // ---

    let url = format!("http://{addr}/orders");
    let token = |scope: &str| {
        idp.token()
            .audience("orders-api")
            .subject("alice")
            .scope(scope)
            .claim("tenant", "acme")
            .sign()
    };
    let client = reqwest::Client::new();
    let mut statuses = Vec::new();
    for bearer in [Some(token("orders:read")), None, Some(token("profile"))] {
        let mut req = client.get(&url);
        if let Some(t) = &bearer {
            req = req.bearer_auth(t);
        }
        let resp = req.send().await?;
        let status = resp.status().as_u16();
        let challenge = resp
            .headers()
            .get("www-authenticate")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        println!("{status} {challenge} {}", resp.text().await?);
        statuses.push(status);
    }
    if statuses != [200, 401, 403] {
        eprintln!("expected 200, 401, 403; got {statuses:?}");
        std::process::exit(1);
    }
    Ok(())
}
