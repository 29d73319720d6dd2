//! Refusals that can be shaped and debugged: the `on_refusal` hook (the
//! default shape, RFC 9457 problem+json, a custom one), the challenge a
//! hook cannot touch, the extractor's refusals, `source()`, the context in
//! audience and issuer errors, and the 503's `Retry-After`.
#![cfg(all(feature = "axum", feature = "remote"))]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod common;

use std::error::Error as _;
use std::time::Duration;

use axum::Router;
use axum::routing::get;
use common::*;
use serde_json::{Map, Value, json};
use tokenwarden::middleware::axum::Claims;
use tokenwarden::middleware::{AuthRejection, BearerAuth, RefusalBody, Scopes};
use tokenwarden::{Algorithm, Error, ErrorKind};

type Json = Map<String, Value>;

async fn me(Claims(c): Claims<Json>) -> String {
    c["sub"].as_str().unwrap_or("").to_owned()
}

/// `/me` behind `auth` (realm `orders`), `/orders` also needing a scope,
/// `/claims` behind an anonymous-allowing layer only (the extractor
/// refuses), on 127.0.0.1.
async fn serve(auth: BearerAuth) -> String {
    let app = Router::new()
        .route("/me", get(me).route_layer(auth.layer()))
        .route(
            "/orders",
            get(me).route_layer(
                auth.clone()
                    .require_scopes(Scopes::all(["orders:read"]))
                    .layer(),
            ),
        )
        .route("/claims", get(me))
        .layer(auth.allow_anonymous().layer());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    base
}

fn auth() -> BearerAuth {
    BearerAuth::new(validator(&[key(Algorithm::ES256)])).realm("orders")
}

fn expired() -> String {
    let mut c = claims();
    c["exp"] = json!(NOW - 3600);
    key(Algorithm::ES256).token(&c)
}

async fn get_with(url: String, token: Option<&str>) -> reqwest::Response {
    let mut req = reqwest::Client::new().get(url);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    req.send().await.unwrap()
}

#[tokio::test]
async fn by_default_a_refusal_is_the_challenge_and_an_empty_body() {
    let base = serve(auth()).await;
    let resp = get_with(format!("{base}/me"), Some(&expired())).await;
    assert_eq!(resp.status().as_u16(), 401);
    assert_eq!(
        resp.headers()["www-authenticate"],
        r#"Bearer realm="orders", error="invalid_token", error_description="expired""#
    );
    assert!(resp.headers().get("content-type").is_none());
    assert_eq!(resp.text().await.unwrap(), "");
}

#[tokio::test]
async fn problem_json_is_an_rfc_9457_problem_details_object() {
    let base = serve(auth().problem_json()).await;
    let resp = get_with(format!("{base}/me"), Some(&expired())).await;
    assert_eq!(resp.status().as_u16(), 401);
    assert_eq!(resp.headers()["content-type"], "application/problem+json");
    assert_eq!(
        resp.headers()["www-authenticate"],
        r#"Bearer realm="orders", error="invalid_token", error_description="expired""#
    );
    let doc: Value = resp.json().await.unwrap();
    assert_eq!(
        doc,
        json!({
            "type": "about:blank",
            "title": "Unauthorized",
            "status": 401,
            "detail": "The bearer token was refused: expired.",
            "error": "invalid_token",
            "reason": "expired",
        })
    );

    // 403: the missing scope, in the challenge and the document.
    let resp = get_with(
        format!("{base}/orders"),
        Some(&key(Algorithm::ES256).token(&claims())),
    )
    .await;
    assert_eq!(resp.status().as_u16(), 403);
    let doc: Value = resp.json().await.unwrap();
    assert_eq!(doc["title"], "Forbidden");
    assert_eq!(doc["status"], 403);
    assert_eq!(doc["error"], "insufficient_scope");
    assert_eq!(doc["scope"], "orders:read");
}

#[tokio::test]
async fn a_custom_hook_shapes_the_body_from_the_refusal() {
    let auth = auth().on_refusal(|r| {
        RefusalBody::new(
            "text/plain; charset=utf-8",
            format!(
                "{} {} {} {}",
                r.status(),
                r.reason(),
                r.realm(),
                r.error().unwrap_or("-")
            ),
        )
        .header("x-auth-hint", "ask for a token")
    });
    let base = serve(auth).await;
    let resp = get_with(format!("{base}/me"), None).await;
    assert_eq!(resp.status().as_u16(), 401);
    assert_eq!(
        resp.headers()["www-authenticate"],
        r#"Bearer realm="orders""#
    );
    assert_eq!(resp.headers()["x-auth-hint"], "ask for a token");
    assert_eq!(resp.text().await.unwrap(), "401 missing_token orders -");
}

#[tokio::test]
async fn a_hook_cannot_remove_or_rewrite_the_challenge() {
    let base = serve(common::http_cases::hostile_hook(auth())).await;
    common::http_cases::run_hostile_hook(&base).await;
}

#[tokio::test]
async fn the_extractors_refusal_uses_the_layers_realm_and_hook() {
    // `/claims`: the anonymous-allowing layer lets a request without a
    // token through, and the extractor refuses it as that layer would.
    let base = serve(auth().problem_json()).await;
    let resp = get_with(format!("{base}/claims"), None).await;
    assert_eq!(resp.status().as_u16(), 401);
    assert_eq!(
        resp.headers()["www-authenticate"],
        r#"Bearer realm="orders""#
    );
    assert_eq!(resp.headers()["content-type"], "application/problem+json");
    let doc: Value = resp.json().await.unwrap();
    assert_eq!(doc["reason"], "missing_token");
}

#[tokio::test]
async fn a_rejection_keeps_the_error_as_its_source() {
    let auth = auth();
    let mut headers = axum::http::HeaderMap::new();
    headers.insert(
        "authorization",
        format!("Bearer {}", expired()).parse().unwrap(),
    );
    let refusal = auth.authorize(&headers).await.unwrap_err();
    let source = refusal.source().expect("a source");
    let error = source
        .downcast_ref::<Error>()
        .expect("the validation error");
    assert_eq!(error.kind(), ErrorKind::Expired);
    assert!(matches!(error, Error::Expired { exp, .. } if *exp == NOW - 3600));
    // Refusals decided before validation have none.
    assert!(AuthRejection::Missing.source().is_none());
}

#[tokio::test]
async fn while_no_keys_are_usable_a_503_says_when_to_retry() {
    let keyless = || BearerAuth::new(common::http_cases::keyless_validator());
    // Default, and bounded whatever is asked.
    for (auth, want) in [
        (keyless(), "5"),
        (keyless().retry_after(Duration::from_secs(30)), "30"),
        (keyless().retry_after(Duration::from_secs(86_400)), "300"),
        (keyless().retry_after(Duration::ZERO), "1"),
    ] {
        let base = serve(auth).await;
        let resp = get_with(
            format!("{base}/me"),
            Some(&key(Algorithm::ES256).token(&claims())),
        )
        .await;
        assert_eq!(resp.status().as_u16(), 503);
        assert_eq!(resp.headers()["retry-after"], want);
        assert!(resp.headers().get("www-authenticate").is_none());
        assert!(!resp.text().await.unwrap().is_empty());
    }
}

/// What a validation error says: audiences and issuers, never another
/// claim's value.
fn refusal_of(claims: Value) -> Error {
    validator(&[key(Algorithm::ES256)])
        .validate_json(&key(Algorithm::ES256).token(&claims))
        .unwrap_err()
}

const SECRET: &str = "s3cr3t-EMAIL-7f6e5d4c@example.com";

#[test]
fn an_audience_refusal_names_the_audiences_found_and_expected_only() {
    let mut c = claims();
    c["aud"] = json!(["account", "web-app"]);
    c["email"] = json!(SECRET);
    c["sub"] = json!(SECRET);
    let e = refusal_of(c);
    assert_eq!(e.kind(), ErrorKind::InvalidAudience);
    let shown = e.to_string();
    assert!(shown.contains(r#"found ["account", "web-app"]"#), "{shown}");
    assert!(shown.contains(&format!("expected [{AUD:?}]")), "{shown}");
    for text in [shown, format!("{e:?}")] {
        assert!(!text.contains(SECRET), "{text}");
    }
}

#[test]
fn an_issuer_refusal_names_the_issuer_expected() {
    let mut c = claims();
    c["iss"] = json!("https://elsewhere.test");
    c["email"] = json!(SECRET);
    let e = refusal_of(c);
    assert_eq!(e.kind(), ErrorKind::InvalidIssuer);
    let shown = e.to_string();
    assert!(shown.contains(&format!("expected [{ISS:?}]")), "{shown}");
    assert!(shown.contains("\"https://elsewhere.test\""), "{shown}");
    for text in [shown, format!("{e:?}")] {
        assert!(!text.contains(SECRET), "{text}");
    }
}

#[test]
fn a_token_listing_many_long_audiences_gets_a_bounded_error() {
    let mut c = claims();
    // 64: the most `aud` values the validator reads at all.
    let many: Vec<String> = (0..64)
        .map(|i| format!("aud-{i}-{}", "z".repeat(200)))
        .collect();
    c["aud"] = json!(many);
    // A validator that lets such a token be read at all.
    let e = builder(&[key(Algorithm::ES256)])
        .max_token_size(4 << 20)
        .build()
        .unwrap()
        .validate_json(&key(Algorithm::ES256).token(&c))
        .unwrap_err();
    let Error::InvalidAudience {
        found, found_count, ..
    } = &e
    else {
        panic!("{e:?}")
    };
    assert_eq!(*found_count, 64);
    assert_eq!(found.len(), Error::MAX_NAMES_SHOWN);
    assert!(found.iter().all(|a| a.len() <= 64), "{found:?}");
    let shown = e.to_string();
    assert!(shown.len() < 1_000, "{} bytes", shown.len());
    assert!(shown.contains("56 more"), "{shown}");
}
