//! AWS Lambda (issue 15 item 8): the function of `examples/lambda.rs`, its
//! handler and layer included from `examples/lambda/app.rs`, driven with API
//! Gateway v2 (HTTP API) events deserialised by `lambda_http` itself, with
//! no Lambda runtime.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod common;

#[path = "../examples/lambda/app.rs"]
#[allow(dead_code)]
mod app;

use std::collections::HashMap;
use std::future::Future;
use std::task::{Context, Poll, Waker};

use lambda_http::{Body, Request, Response};
use serde_json::Value;
use tokenwarden::testing::TestKey;
use tokenwarden::{Algorithm, FixedClock};
use tower::{Service, ServiceExt as _};

use common::{AUD, ISS, NOW, claims, key};

/// The environment the function would see, without touching the process's.
fn env(pairs: &[(&str, String)]) -> impl Fn(&str) -> Option<String> + use<> {
    let map: HashMap<String, String> = pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.clone()))
        .collect();
    move |k| map.get(k).cloned()
}

/// The settings a deployment would have: the test key's JWK Set in
/// `TW_JWKS`, the test issuer and audience.
fn settings() -> Vec<(&'static str, String)> {
    vec![
        (
            "TW_JWKS",
            tokenwarden::testing::jwks_json(&[key(Algorithm::RS256)]),
        ),
        ("TW_ISSUER", ISS.into()),
        ("TW_AUDIENCE", AUD.into()),
    ]
}

/// The shipped API Gateway v2 event with this `authorization` header (or
/// none), as lambda_http turns it into a request.
fn event(authorization: Option<&str>) -> Request {
    let mut ev: Value =
        serde_json::from_str(include_str!("../examples/data/apigw-v2-request.json")).unwrap();
    let headers = ev["headers"].as_object_mut().unwrap();
    headers.remove("authorization");
    if let Some(a) = authorization {
        headers.insert("authorization".into(), a.into());
    }
    lambda_http::request::from_str(&ev.to_string()).unwrap()
}

async fn call(authorization: Option<&str>) -> Response<Body> {
    let validator = app::validator_builder(&env(&settings()))
        .unwrap()
        .clock(FixedClock(NOW))
        .build()
        .unwrap();
    let resp = app::app(validator)
        .oneshot(event(authorization))
        .await
        .unwrap();
    // The layer's body (the handler's, or a refusal's) read whole, as the
    // Lambda runtime does before it answers.
    let (parts, body) = resp.into_parts();
    let bytes = http_body_util::BodyExt::collect(body)
        .await
        .unwrap()
        .to_bytes();
    Response::from_parts(parts, Body::from(bytes.to_vec()))
}

fn text(resp: &Response<Body>) -> String {
    String::from_utf8_lossy(resp.body().as_ref()).into_owned()
}

fn challenge(resp: &Response<Body>) -> &str {
    resp.headers()["www-authenticate"].to_str().unwrap()
}

fn rs256(claims: &Value) -> String {
    key(Algorithm::RS256).token(claims)
}

#[tokio::test]
async fn valid_token_reaches_the_handler_with_its_claims() {
    let resp = call(Some(&format!("Bearer {}", rs256(&claims())))).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(text(&resp), "hello alice\n");
}

#[tokio::test]
async fn missing_token_is_401_with_the_challenge() {
    let resp = call(None).await;
    assert_eq!(resp.status(), 401);
    assert_eq!(challenge(&resp), r#"Bearer realm="lambda""#);
    assert_eq!(text(&resp), "", "the handler did not run");
}

#[tokio::test]
async fn bad_token_is_401_and_never_reaches_the_handler() {
    // A token with the trusted kid, signed by a key the function does not
    // trust; and one that is not a JWS at all.
    let forger = TestKey::generate(Algorithm::RS256, "RS256").unwrap();
    for (token, kind) in [
        (forger.token(&claims()), "invalid_signature"),
        ("not.a.token".to_owned(), "malformed"),
    ] {
        let resp = call(Some(&format!("Bearer {token}"))).await;
        assert_eq!(resp.status(), 401, "{kind}");
        assert!(
            challenge(&resp).contains(&format!(
                r#"error="invalid_token", error_description="{kind}""#
            )),
            "{}",
            challenge(&resp)
        );
        assert_eq!(text(&resp), "", "{kind}: the handler did not run");
    }
}

#[tokio::test]
async fn authorization_headers_joined_by_api_gateway_are_refused() {
    // Attack: API Gateway's payload 2.0 joins repeated headers with commas,
    // so a second `Authorization` header arrives in the same value. The
    // valid first token must not carry the request.
    let good = rs256(&claims());
    let forger = TestKey::generate(Algorithm::RS256, "RS256").unwrap();
    let other = forger.token(&claims());
    let resp = call(Some(&format!("Bearer {good},Bearer {other}"))).await;
    assert_eq!(resp.status(), 400);
    assert!(challenge(&resp).contains(r#"error="invalid_request""#));
    assert_eq!(text(&resp), "");
}

#[test]
fn bootstrap_keys_come_from_the_environment_or_a_file() {
    let jwks = tokenwarden::testing::jwks_json(&[key(Algorithm::ES256)]);
    let from_env = app::bootstrap_keys(&env(&[("TW_JWKS", jwks.clone())])).unwrap();
    assert_eq!(from_env.len(), 1);
    let dir = std::env::temp_dir().join(format!("tw-lambda-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("jwks.json");
    std::fs::write(&path, &jwks).unwrap();
    let from_file =
        app::bootstrap_keys(&env(&[("TW_JWKS_FILE", path.display().to_string())])).unwrap();
    assert_eq!(from_file.len(), 1);
    std::fs::remove_dir_all(&dir).unwrap();
    // Neither: the example's own keys (EdDSA and RS256).
    assert_eq!(app::bootstrap_keys(&env(&[])).unwrap().len(), 2);
}

#[test]
fn unusable_bootstrap_keys_are_an_error_at_start_not_a_panic() {
    for bad in ["", "{", r#"{"keys":[]}"#, r#"{"keys":[{"kty":"oct"}]}"#] {
        let err = app::bootstrap_keys(&env(&[("TW_JWKS", bad.into())])).unwrap_err();
        assert!(err.starts_with("bootstrap keys"), "{bad}: {err}");
    }
    let missing = env(&[("TW_JWKS_FILE", "/nonexistent/jwks.json".into())]);
    assert!(
        app::bootstrap_keys(&missing)
            .unwrap_err()
            .starts_with("TW_JWKS_FILE")
    );
}

#[tokio::test]
async fn the_first_request_never_waits_on_the_identity_provider() {
    // The IdP is a black hole: its port accepts connections (the kernel's
    // backlog) and never answers. With the keys bootstrapped, the first
    // request is decided on its first poll, with no I/O at all.
    let black_hole = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let mut settings = settings();
    settings.push((
        "TW_JWKS_URL",
        format!("http://{}/jwks", black_hole.local_addr().unwrap()),
    ));
    settings.push(("TW_ALLOW_HTTP_LOOPBACK", "1".into()));
    let validator = app::validator_builder(&env(&settings))
        .unwrap()
        .clock(FixedClock(NOW))
        .build()
        .unwrap();
    let mut service = app::app(validator);
    let mut cx = Context::from_waker(Waker::noop());
    assert!(service.poll_ready(&mut cx).is_ready());
    let request = event(Some(&format!("Bearer {}", rs256(&claims()))));
    let mut first = std::pin::pin!(service.call(request));
    match first.as_mut().poll(&mut cx) {
        Poll::Ready(resp) => assert_eq!(resp.unwrap().status(), 200),
        Poll::Pending => panic!("the first request waited on the identity provider"),
    }
}
