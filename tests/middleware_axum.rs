//! The tower layer and axum extractors over real HTTP on 127.0.0.1: status,
//! `WWW-Authenticate` and body for each case of RFC 6750 §3.
#![cfg(all(feature = "axum", feature = "remote"))]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod common;

use axum::Router;
use axum::routing::get;
use common::*;
use serde_json::{Map, Value};
use tokenwarden::Algorithm;
use tokenwarden::middleware::axum::Claims;
use tokenwarden::middleware::{BearerAuth, Scopes};

type Json = Map<String, Value>;

async fn me(Claims(c): Claims<Json>) -> String {
    c["sub"].as_str().unwrap_or("").to_owned()
}

async fn maybe(claims: Option<Claims<Json>>) -> String {
    claims.map_or_else(
        || "anonymous".to_owned(),
        |Claims(c)| c["sub"].as_str().unwrap_or("").to_owned(),
    )
}

fn app(auth: BearerAuth<Json>) -> Router {
    Router::new()
        .route("/me", get(me).route_layer(auth.layer()))
        .route(
            "/orders",
            get(me).route_layer(auth.clone().require(Scopes::all(["orders:read"])).layer()),
        )
        .route(
            "/admin",
            get(me).route_layer(
                auth.clone()
                    .require_roles("realm_access.roles", Scopes::all(["admin"]))
                    .layer(),
            ),
        )
        .route(
            "/app",
            get(me).route_layer(
                auth.clone()
                    .require_claims("client_id my-app", common::http_cases::is_my_app)
                    .layer(),
            ),
        )
        .route("/maybe", get(maybe))
        .layer(auth.allow_anonymous().layer())
}

async fn serve(router: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await });
    format!("http://{addr}")
}

#[tokio::test]
async fn every_case_gets_its_rfc_6750_answer_and_the_token_is_never_echoed() {
    let (_guard, logs) = capture_logs();
    let auth = BearerAuth::new(validator(&[key(Algorithm::ES256)])).realm("orders");
    let base = serve(app(auth)).await;
    common::http_cases::run_all(&base, &logs).await;
}

#[tokio::test]
async fn grpc_requests_get_grpc_statuses() {
    let auth = BearerAuth::new(validator(&[key(Algorithm::ES256)]));
    let base = serve(app(auth)).await;
    let resp = reqwest::Client::new()
        .get(format!("{base}/me"))
        .header("content-type", "application/grpc")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    assert_eq!(resp.headers()["grpc-status"], "16");
}

#[tokio::test]
async fn keys_unavailable_is_503_without_a_challenge() {
    let base = serve(app(
        BearerAuth::new(common::http_cases::keyless_validator()),
    ))
    .await;
    common::http_cases::run_keys_unavailable(&base).await;
}

#[tokio::test]
async fn unknown_kid_waits_for_a_refresh_through_the_layer() {
    let a = TestKeyHolder::new();
    let idp = common::idp::Idp::start(&[&a.old]).await;
    let keys = tokenwarden::RemoteKeySet::builder()
        .jwks_url(idp.jwks_url())
        .allow_http_loopback(true)
        .build()
        .unwrap();
    keys.refresh().await.unwrap();
    let v = tokenwarden::Validator::builder()
        .issuer(ISS)
        .audience(AUD)
        .keys(keys)
        .clock(tokenwarden::FixedClock(NOW))
        .build()
        .unwrap();
    let base = serve(app(BearerAuth::new(v))).await;
    idp.set_keys(&[&a.old, &a.new]);
    let resp = reqwest::Client::new()
        .get(format!("{base}/me"))
        .bearer_auth(a.new.token(&claims()))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    assert_eq!(resp.text().await.unwrap(), "alice");
}

struct TestKeyHolder {
    old: tokenwarden::testing::TestKey,
    new: tokenwarden::testing::TestKey,
}

impl TestKeyHolder {
    fn new() -> Self {
        TestKeyHolder {
            old: tokenwarden::testing::TestKey::generate(Algorithm::EdDSA, "old").unwrap(),
            new: tokenwarden::testing::TestKey::generate(Algorithm::EdDSA, "new").unwrap(),
        }
    }
}
