//! The verified-token cache as it comes by default (issue 15 item 10): on in
//! every validator, and so in every layer, when the feature `cache` is on;
//! off on request; and with several issuers that have keys of their own,
//! each entry answers only under its own issuer's keys.
#![cfg(all(
    feature = "cache",
    feature = "testing",
    feature = "remote",
    feature = "axum"
))]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod common;

use std::time::Duration;

use axum::Router;
use axum::routing::get;
use common::idp::Idp;
use common::*;
use serde_json::{Value, json};
use tokenwarden::middleware::BearerAuth;
use tokenwarden::testing::TestKey;
use tokenwarden::{Algorithm, ErrorKind, FixedClock, RemoteKeySet, Validator};

fn entries(v: &Validator) -> u64 {
    v.cache_usage().expect("the validator has a cache").0
}

#[test]
fn a_validator_has_a_default_cache_without_asking() {
    let k = key(Algorithm::ES256);
    let v = validator(&[k]);
    let token = k.token(&claims());
    assert_eq!(entries(&v), 0);
    v.validate::<Value>(&token).unwrap();
    assert_eq!(entries(&v), 1);
    let first = v.validate_shared::<Value>(&token).unwrap();
    let again = v.validate_shared::<Value>(&token).unwrap();
    assert!(std::sync::Arc::ptr_eq(&first, &again), "not a cache hit");
}

#[test]
fn no_cache_turns_it_off() {
    let k = key(Algorithm::ES256);
    let v = builder(&[k]).no_cache().build().unwrap();
    assert_eq!(v.cache_usage(), None);
    let token = k.token(&claims());
    let first = v.validate_shared::<Value>(&token).unwrap();
    let again = v.validate_shared::<Value>(&token).unwrap();
    assert!(
        !std::sync::Arc::ptr_eq(&first, &again),
        "answered from a cache"
    );
}

#[tokio::test]
async fn the_layer_uses_the_default_cache() {
    let k = key(Algorithm::ES256);
    let v = validator(&[k]);
    let app = Router::new()
        .route("/me", get(|| async { "ok" }))
        .layer(BearerAuth::new(v.clone()).layer());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    let token = k.token(&claims());
    let client = reqwest::Client::new();
    for _ in 0..3 {
        let resp = client
            .get(format!("http://{addr}/me"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 200);
    }
    assert_eq!(entries(&v), 1, "the layer's verdicts are not cached");
}

fn new_key(kid: &str) -> TestKey {
    TestKey::generate(Algorithm::ES256, kid).unwrap()
}

fn remote(idp: &Idp) -> RemoteKeySet {
    RemoteKeySet::builder()
        .jwks_url(idp.jwks_url())
        .allow_http_loopback(true)
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap()
}

fn claims_of(iss: &str) -> Value {
    let mut c = claims();
    c["iss"] = json!(iss);
    c
}

/// Two issuers, each with its own remote key set, both publishing the same
/// key `k` at first.
async fn two_issuers_sharing_a_key(k: &TestKey) -> (Idp, Idp, RemoteKeySet, Validator) {
    let idp_a = Idp::start(&[k]).await;
    let idp_b = Idp::start(&[k]).await;
    let keys_a = remote(&idp_a);
    let keys_b = remote(&idp_b);
    keys_a.refresh().await.unwrap();
    keys_b.refresh().await.unwrap();
    let v = Validator::builder()
        .issuer_with_keys(idp_a.issuer(), keys_a)
        .issuer_with_keys(idp_b.issuer(), keys_b.clone())
        .audience(AUD)
        .clock(FixedClock(NOW))
        .build()
        .unwrap();
    (idp_a, idp_b, keys_b, v)
}

#[tokio::test]
async fn several_issuers_with_their_own_keys_use_the_cache() {
    let k = new_key("k");
    let (idp_a, idp_b, _keys_b, v) = two_issuers_sharing_a_key(&k).await;
    let a = k.token(&claims_of(&idp_a.issuer()));
    let b = k.token(&claims_of(&idp_b.issuer()));
    for token in [&a, &b, &a, &b] {
        v.validate::<Value>(token).unwrap();
    }
    assert_eq!(entries(&v), 2);
    let first = v.validate_shared::<Value>(&b).unwrap();
    assert!(std::sync::Arc::ptr_eq(
        &first,
        &v.validate_shared::<Value>(&b).unwrap()
    ));
}

/// Attack: issuer B withdraws a key that issuer A still publishes. B's
/// cached token must stop passing, even though the very key is still in a
/// key set of this validator: the entry is held to the keys of the issuer
/// that verified it, not to any source's.
#[tokio::test]
async fn a_cached_token_is_held_to_its_own_issuers_keys() {
    let k = new_key("k");
    let (_idp_a, idp_b, keys_b, v) = two_issuers_sharing_a_key(&k).await;
    let b = k.token(&claims_of(&idp_b.issuer()));
    v.validate::<Value>(&b).unwrap();
    let shared = v.validate_shared::<Value>(&b).unwrap();
    assert_eq!(entries(&v), 1);

    let rotated = new_key("k2");
    idp_b.set_keys(&[&rotated]);
    keys_b.refresh().await.unwrap();
    assert_eq!(
        v.validate::<Value>(&b).unwrap_err().kind(),
        ErrorKind::UnknownKey
    );
    assert_eq!(
        v.validate_shared::<Value>(&b).unwrap_err().kind(),
        ErrorKind::UnknownKey
    );
    drop(shared);
    // B's new key verifies B's new tokens, cached in turn.
    let fresh = rotated.token(&claims_of(&idp_b.issuer()));
    v.validate::<Value>(&fresh).unwrap();
    v.validate::<Value>(&fresh).unwrap();
}
