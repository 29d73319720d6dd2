//! `RemoteKeySet::ready` and `Validator::oidc(..).build().await` against real
//! identity providers on 127.0.0.1.
#![cfg(feature = "remote")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod common;

use std::time::{Duration, Instant};

use common::idp::{Idp, Mode};
use common::*;
use serde_json::Value;
use tokenwarden::remote::FetchErrorKind;
use tokenwarden::testing::{TestIssuer, TestKey};
use tokenwarden::{Algorithm, OidcBuildError, RemoteKeySet, Validator};

/// Room for a loaded 2-core machine on fetches meant to succeed.
const SLOW_OK: Duration = Duration::from_secs(20);

fn new_key(kid: &str) -> TestKey {
    TestKey::generate(Algorithm::ES256, kid).unwrap()
}

/// An http URL on 127.0.0.1 where nothing listens.
fn closed_port_issuer() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    drop(l);
    format!("http://127.0.0.1:{port}")
}

#[tokio::test]
async fn ready_returns_at_once_with_bootstrap_keys() {
    let boot = new_key("boot");
    let idp = Idp::start(&[&boot]).await;
    // Every JWKS request is held: a ready() that fetched would never return.
    idp.set_mode(Mode::Held);
    let keys = RemoteKeySet::builder()
        .jwks_url(idp.jwks_url())
        .allow_http_loopback(true)
        .timeout(SLOW_OK)
        .bootstrap(keyset(&[&boot]))
        .build()
        .unwrap();
    let started = Instant::now();
    tokio::time::timeout(Duration::from_secs(2), keys.ready())
        .await
        .expect("ready() waited although bootstrap keys are in force")
        .unwrap();
    assert!(started.elapsed() < Duration::from_secs(2));
    idp.release();
}

#[tokio::test]
async fn ready_waits_for_the_first_fetch() {
    let k = new_key("k1");
    let idp = Idp::start(&[&k]).await;
    idp.set_mode(Mode::Held);
    let keys = RemoteKeySet::builder()
        .discovery(idp.issuer())
        .allow_http_loopback(true)
        .timeout(SLOW_OK)
        .build()
        .unwrap();
    assert!(keys.current().is_none());
    let waiting = tokio::spawn({
        let keys = keys.clone();
        async move { keys.ready().await }
    });
    idp.held().await; // the refresher's first fetch is at the IdP
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(!waiting.is_finished(), "ready() returned before any keys");
    idp.release();
    waiting.await.unwrap().unwrap();
    assert!(keys.current().is_some_and(|s| s.contains_kid("k1")));
    // The refresher's fetch answered: ready() made no second one.
    assert_eq!(idp.jwks_hits(), 1);
}

#[tokio::test]
async fn ready_errors_clearly_when_the_idp_is_down() {
    let keys = RemoteKeySet::builder()
        .discovery(closed_port_issuer())
        .allow_http_loopback(true)
        .timeout(Duration::from_secs(3))
        .build()
        .unwrap();
    let started = Instant::now();
    let err = keys.ready().await.unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(4), "{err}");
    assert_eq!(err.kind(), FetchErrorKind::Connect, "{err}");
    assert!(err.to_string().contains("127.0.0.1"), "{err}");
    assert!(keys.current().is_none());
}

#[tokio::test]
async fn ready_gives_up_after_the_timeout_on_a_hanging_idp() {
    let k = new_key("k1");
    let idp = Idp::start(&[&k]).await;
    idp.set_mode(Mode::Hang);
    let keys = RemoteKeySet::builder()
        .jwks_url(idp.jwks_url())
        .allow_http_loopback(true)
        .timeout(Duration::from_millis(500))
        .build()
        .unwrap();
    let started = Instant::now();
    let err = keys.ready().await.unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(5), "{err}");
    assert!(err.is_timeout(), "{err}");
}

#[tokio::test]
async fn oidc_in_one_call_validates_a_test_issuer_token() {
    let idp = TestIssuer::start().unwrap();
    let validator = Validator::oidc(idp.issuer())
        .audience("api")
        .allow_http_loopback(true)
        .timeout(SLOW_OK)
        .build()
        .await
        .unwrap();
    // Keys are in: the synchronous path validates at once.
    let token = idp.token().audience("api").subject("alice").sign();
    assert_eq!(
        validator.validate_json(&token).unwrap().claims["sub"],
        "alice"
    );
    let v = validator.validate_async::<Value>(&token).await.unwrap();
    assert_eq!(v.claims["sub"], "alice");
    // The issuer typed once is enforced, and so is the audience.
    let other = idp.token().audience("other").sign();
    assert_eq!(
        validator.validate_json(&other).unwrap_err().kind().as_str(),
        "invalid_audience"
    );
}

#[tokio::test]
async fn oidc_issuer_mismatch_in_discovery_is_an_error() {
    let k = new_key("k1");
    let idp = Idp::start(&[&k]).await;
    idp.set_discovery_issuer(Some("https://evil.example"));
    let err = Validator::oidc(idp.issuer())
        .audience(AUD)
        .allow_http_loopback(true)
        .timeout(SLOW_OK)
        .build()
        .await
        .unwrap_err();
    let OidcBuildError::Keys { issuer, source } = &err else {
        panic!("not a key error: {err}");
    };
    assert_eq!(issuer, &idp.issuer());
    assert_eq!(source.kind(), FetchErrorKind::Rejected, "{err}");
    assert!(err.to_string().contains("evil.example"), "{err}");
    assert_eq!(idp.jwks_hits(), 0, "keys fetched despite the mismatch");
}

#[tokio::test]
async fn oidc_with_the_idp_down_is_a_clear_error_within_the_timeout() {
    let issuer = closed_port_issuer();
    let started = Instant::now();
    let err = Validator::oidc(issuer.as_str())
        .audience(AUD)
        .allow_http_loopback(true)
        .timeout(Duration::from_secs(3))
        .build()
        .await
        .unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(4), "{err}");
    assert!(matches!(err, OidcBuildError::Keys { .. }), "{err}");
    let text = err.to_string();
    assert!(
        text.contains("no keys loaded") && text.contains(&issuer),
        "{text}"
    );
}

#[tokio::test]
async fn oidc_configuration_errors_come_before_any_network_wait() {
    // No audience: refused at once, even with an IdP that would hang.
    let k = new_key("k1");
    let idp = Idp::start(&[&k]).await;
    idp.set_mode(Mode::Hang);
    let err = tokio::time::timeout(
        Duration::from_secs(2),
        Validator::oidc(idp.issuer())
            .allow_http_loopback(true)
            .timeout(SLOW_OK)
            .build(),
    )
    .await
    .expect("waited on the network for a configuration error")
    .unwrap_err();
    assert!(matches!(err, OidcBuildError::Config(_)), "{err}");
    // Plain http without the opt-in is refused too.
    let err = Validator::oidc(idp.issuer())
        .audience(AUD)
        .build()
        .await
        .unwrap_err();
    assert!(matches!(err, OidcBuildError::Config(_)), "{err}");
}
