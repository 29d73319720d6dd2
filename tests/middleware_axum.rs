//! The tower layer and axum extractors over real HTTP on 127.0.0.1: status,
//! `WWW-Authenticate` and body for each case of RFC 6750 §3.
#![cfg(all(feature = "axum", feature = "remote"))]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod common;

use axum::Router;
use axum::routing::get;
use common::*;
use serde_json::{Map, Value, json};
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
        .route("/maybe", get(maybe))
        .layer(auth.allow_anonymous().layer())
}

async fn serve(router: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await });
    format!("http://{addr}")
}

struct Case {
    name: &'static str,
    path: &'static str,
    authorization: Option<String>,
    status: u16,
    /// The exact WWW-Authenticate value, if one is expected.
    challenge: Option<&'static str>,
    body: Option<&'static str>,
}

fn token_with(claims: Value) -> String {
    key(Algorithm::ES256).token(&claims)
}

fn cases() -> Vec<Case> {
    let bearer = |t: &str| Some(format!("Bearer {t}"));
    let mut scoped = claims();
    scoped["scope"] = json!("profile orders:read");
    let mut unscoped = claims();
    unscoped["scope"] = json!("profile orders:reader");
    let mut expired = claims();
    expired["exp"] = json!(NOW - 3600);
    let mut foreign = claims();
    foreign["aud"] = json!("https://other.test");
    vec![
        Case {
            name: "valid",
            path: "/me",
            authorization: bearer(&token_with(claims())),
            status: 200,
            challenge: None,
            body: Some("alice"),
        },
        Case {
            name: "scheme is case-insensitive",
            path: "/me",
            authorization: Some(format!("bearer {}", token_with(claims()))),
            status: 200,
            challenge: None,
            body: Some("alice"),
        },
        Case {
            name: "no token",
            path: "/me",
            authorization: None,
            status: 401,
            challenge: Some(r#"Bearer realm="orders""#),
            body: Some(""),
        },
        Case {
            name: "other scheme",
            path: "/me",
            authorization: Some("Basic YTpi".into()),
            status: 401,
            challenge: Some(r#"Bearer realm="orders""#),
            body: Some(""),
        },
        Case {
            name: "garbage token",
            path: "/me",
            authorization: bearer("not.a.jwt"),
            status: 401,
            challenge: Some(
                r#"Bearer realm="orders", error="invalid_token", error_description="malformed""#,
            ),
            body: Some(""),
        },
        Case {
            name: "expired",
            path: "/me",
            authorization: bearer(&token_with(expired)),
            status: 401,
            challenge: Some(
                r#"Bearer realm="orders", error="invalid_token", error_description="expired""#,
            ),
            body: Some(""),
        },
        Case {
            name: "wrong audience",
            path: "/me",
            authorization: bearer(&token_with(foreign)),
            status: 401,
            challenge: Some(
                r#"Bearer realm="orders", error="invalid_token", error_description="invalid_audience""#,
            ),
            body: Some(""),
        },
        Case {
            name: "two tokens",
            path: "/me",
            authorization: Some("Bearer a b".into()),
            status: 400,
            challenge: Some(
                r#"Bearer realm="orders", error="invalid_request", error_description="the Authorization header must hold exactly one bearer token""#,
            ),
            body: Some(""),
        },
        Case {
            name: "scope granted",
            path: "/orders",
            authorization: bearer(&token_with(scoped)),
            status: 200,
            challenge: None,
            body: Some("alice"),
        },
        Case {
            name: "scope lacking",
            path: "/orders",
            authorization: bearer(&token_with(unscoped)),
            status: 403,
            challenge: Some(
                r#"Bearer realm="orders", error="insufficient_scope", scope="orders:read""#,
            ),
            body: Some(""),
        },
        Case {
            name: "anonymous allowed",
            path: "/maybe",
            authorization: None,
            status: 200,
            challenge: None,
            body: Some("anonymous"),
        },
        Case {
            name: "optional claims present",
            path: "/maybe",
            authorization: bearer(&token_with(claims())),
            status: 200,
            challenge: None,
            body: Some("alice"),
        },
        Case {
            name: "optional route, bad token",
            path: "/maybe",
            authorization: bearer("not.a.jwt"),
            status: 401,
            challenge: Some(
                r#"Bearer realm="orders", error="invalid_token", error_description="malformed""#,
            ),
            body: Some(""),
        },
    ]
}

#[tokio::test]
async fn every_case_gets_its_rfc_6750_answer_and_the_token_is_never_echoed() {
    let (_guard, logs) = capture_logs();
    let auth = BearerAuth::new(validator(&[key(Algorithm::ES256)])).realm("orders");
    let base = serve(app(auth)).await;
    let client = reqwest::Client::new();
    for case in cases() {
        let mut req = client.get(format!("{base}{}", case.path));
        if let Some(a) = &case.authorization {
            req = req.header("authorization", a);
        }
        let resp = req.send().await.unwrap();
        assert_eq!(resp.status().as_u16(), case.status, "{}", case.name);
        let challenge = resp
            .headers()
            .get("www-authenticate")
            .map(|v| v.to_str().unwrap().to_owned());
        assert_eq!(challenge.as_deref(), case.challenge, "{}", case.name);
        let headers = format!("{:?}", resp.headers());
        let body = resp.text().await.unwrap();
        if let Some(expected) = case.body {
            assert_eq!(body, expected, "{}", case.name);
        }
        if let Some(a) = &case.authorization {
            let token = a.rsplit(' ').next().unwrap();
            if token.len() > 8 {
                assert!(
                    !headers.contains(token) && !body.contains(token),
                    "{}: token echoed",
                    case.name
                );
                assert!(!logs.text().contains(token), "{}: token logged", case.name);
            }
        }
    }
    assert!(
        logs.text().contains("bearer token refused"),
        "refusals are logged: {}",
        logs.text()
    );
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
    // Nothing listens on port 9 of loopback: no key set can ever be fetched.
    let keys = tokenwarden::RemoteKeySet::builder()
        .jwks_url("http://127.0.0.1:9/jwks")
        .allow_http_loopback(true)
        .build()
        .unwrap();
    let v = tokenwarden::Validator::builder()
        .issuer(ISS)
        .audience(AUD)
        .keys(keys)
        .clock(tokenwarden::FixedClock(NOW))
        .build()
        .unwrap();
    let base = serve(app(BearerAuth::new(v))).await;
    let resp = reqwest::Client::new()
        .get(format!("{base}/me"))
        .bearer_auth(token_with(claims()))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 503);
    assert!(resp.headers().get("www-authenticate").is_none());
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
