//! A plain hyper service (no framework) behind the tower layer: what hyper
//! and tonic users wire up.
//!
//! ```sh
//! cargo run --example hyper --features tower
//! curl -i localhost:3002/ -H "authorization: Bearer $(cat examples/data/valid.jwt)"
//! curl -i localhost:3002/                                                  # 401
//! ```
#![allow(clippy::expect_used)]

use std::convert::Infallible;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use serde_json::{Map, Value};
use tokenwarden::middleware::BearerAuth;
use tokenwarden::{KeySet, Validated, Validator};
use tower::{Layer, service_fn};

async fn hello(req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    // The layer only lets validated requests through, claims attached.
    let sub = req
        .extensions()
        .get::<std::sync::Arc<Validated<Map<String, Value>>>>()
        .and_then(|v| v.claims["sub"].as_str().map(str::to_owned))
        .unwrap_or_default();
    Ok(Response::new(Full::new(Bytes::from(format!(
        "hello {sub}\n"
    )))))
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
    let app = BearerAuth::new(validator)
        .realm("example")
        .layer()
        .layer(service_fn(hello));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:3002")
        .await
        .expect("bind 127.0.0.1:3002");
    println!("listening on http://127.0.0.1:3002");
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let service = TowerToHyperService::new(app.clone());
        tokio::spawn(async move {
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}
