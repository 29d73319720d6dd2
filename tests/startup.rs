//! Start-up and recovery as an operator sees them (issue 15 item 12), against
//! real identity providers on 127.0.0.1: a discovery document at another
//! address than the issuer's, misconfigurations that fail at once with the
//! fix, outages that are retried, and a key rotated in during an outage.
#![cfg(feature = "remote")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod common;

use std::time::{Duration, Instant};

use common::idp::{DEADLINE, Idp, Mode};
use common::*;
use serde_json::{Value, json};
use tokenwarden::remote::FetchErrorKind;
use tokenwarden::testing::TestKey;
use tokenwarden::{Algorithm, FixedClock, ManualClock, OidcBuildError, RemoteKeySet, Validator};

/// Room for a loaded 2-core machine on fetches meant to succeed; a wait
/// that ends well before it ended for a reason, not by timing out.
const SLOW_OK: Duration = Duration::from_secs(20);
/// What "at once" means for a misconfiguration (a fraction of SLOW_OK).
const PROMPTLY: Duration = Duration::from_secs(5);

/// The issuer the tokens carry; the IdP is reached at its loopback address.
const PUBLIC: &str = "https://login.example.com/realms/main";

fn new_key(kid: &str) -> TestKey {
    TestKey::generate(Algorithm::ES256, kid).unwrap()
}

fn claims_of(iss: &str) -> Value {
    let mut c = claims();
    c["iss"] = json!(iss);
    c
}

fn discovery_at(idp: &Idp) -> String {
    format!("{}/.well-known/openid-configuration", idp.issuer())
}

#[tokio::test]
async fn discovery_url_reaches_the_idp_by_another_name_and_tokens_carry_the_public_issuer() {
    let k = new_key("k");
    let idp = Idp::start(&[&k]).await;
    idp.set_discovery_issuer(Some(PUBLIC));
    let validator = Validator::oidc(PUBLIC)
        .discovery_url(discovery_at(&idp))
        .audience(AUD)
        .allow_http_loopback(true)
        .timeout(SLOW_OK)
        .validator_with(|b| b.clock(FixedClock(NOW)))
        .build()
        .await
        .unwrap();
    assert_eq!(idp.discovery_hits(), 1);
    let token = k.token(&claims_of(PUBLIC));
    assert_eq!(
        validator.validate_json(&token).unwrap().claims["sub"],
        "alice"
    );
    // The issuer typed once is still the only one accepted.
    let internal = k.token(&claims_of(&idp.issuer()));
    assert_eq!(
        validator
            .validate_json(&internal)
            .unwrap_err()
            .kind()
            .as_str(),
        "invalid_issuer"
    );
}

/// Attack: the document at the discovery URL names another issuer (the
/// wrong realm, or someone else's IdP): refused at once, no keys fetched.
#[tokio::test]
async fn discovery_url_still_checks_the_documents_issuer() {
    let k = new_key("k");
    let idp = Idp::start(&[&k]).await;
    // The document names the IdP's own (internal) address, not PUBLIC.
    let started = Instant::now();
    let err = Validator::oidc(PUBLIC)
        .discovery_url(discovery_at(&idp))
        .audience(AUD)
        .allow_http_loopback(true)
        .timeout(SLOW_OK)
        .build()
        .await
        .unwrap_err();
    assert!(started.elapsed() < PROMPTLY, "{err}");
    let OidcBuildError::Keys { source, .. } = &err else {
        panic!("not a key error: {err}");
    };
    assert_eq!(source.kind(), FetchErrorKind::Rejected, "{err}");
    assert!(source.is_permanent());
    let text = err.to_string();
    assert!(text.contains("configure the issuer exactly"), "{text}");
    assert_eq!(idp.jwks_hits(), 0, "keys fetched despite the mismatch");
}

#[tokio::test]
async fn discovery_url_without_discovery_is_a_build_error() {
    let err = RemoteKeySet::builder()
        .jwks_url("https://idp.example.com/jwks")
        .discovery_url("https://idp.internal/.well-known/openid-configuration")
        .build()
        .unwrap_err();
    assert!(err.to_string().contains("discovery_url"), "{err}");
}

/// `ready()` on a key set whose JWKS endpoint is broken in `mode`: the
/// error, how long it took, and the logs.
async fn ready_with(mode: Mode) -> (tokenwarden::remote::FetchError, Duration, String) {
    let (_guard, logs) = capture_logs();
    let k = new_key("k");
    let idp = Idp::start(&[&k]).await;
    idp.set_mode(mode);
    let keys = RemoteKeySet::builder()
        .jwks_url(idp.jwks_url())
        .allow_http_loopback(true)
        .timeout(SLOW_OK)
        .build()
        .unwrap();
    let started = Instant::now();
    let err = keys.ready().await.unwrap_err();
    (err, started.elapsed(), logs.text())
}

#[tokio::test]
async fn a_404_fails_ready_at_once_naming_the_fix_logged_at_error() {
    let (err, took, logs) = ready_with(Mode::Status(404)).await;
    assert!(took < PROMPTLY, "retried a 404 for {took:?}: {err}");
    assert_eq!(
        (err.kind(), err.status()),
        (FetchErrorKind::Status, Some(404))
    );
    assert!(err.is_permanent());
    assert!(err.to_string().contains("check the URL"), "{err}");
    assert!(
        logs.contains("ERROR") && logs.contains("a configuration error, not an outage"),
        "{logs}"
    );
    assert!(
        !logs.contains("last good keys"),
        "claims keys never loaded:\n{logs}"
    );
}

#[tokio::test]
async fn a_body_that_is_not_a_key_set_fails_ready_at_once() {
    for mode in [Mode::Garbage, Mode::Html, Mode::EmptySet] {
        let (err, took, logs) = ready_with(mode.clone()).await;
        assert!(took < PROMPTLY, "{mode:?}: retried for {took:?}: {err}");
        assert_eq!(err.kind(), FetchErrorKind::Invalid, "{mode:?}: {err}");
        assert!(err.to_string().contains("serves the JWK Set"), "{err}");
        assert!(logs.contains("ERROR"), "{mode:?}: {logs}");
    }
}

/// An outage is not a misconfiguration: `ready()` keeps waiting on the
/// refresher's back-off and answers Ok once the IdP is back; the logs say
/// no keys were loaded, never that last good keys are kept.
#[tokio::test]
async fn an_outage_at_start_is_retried_by_ready_until_the_idp_is_back() {
    let (_guard, logs) = capture_logs();
    let k = new_key("k");
    let idp = Idp::start(&[&k]).await;
    idp.set_mode(Mode::Status(503));
    let keys = RemoteKeySet::builder()
        .jwks_url(idp.jwks_url())
        .allow_http_loopback(true)
        .timeout(SLOW_OK)
        .build()
        .unwrap();
    let waiting = tokio::spawn({
        let keys = keys.clone();
        async move { keys.ready().await }
    });
    idp.wait_for_jwks_hits(1).await;
    let err = loop {
        if let Some(e) = keys.last_error() {
            break e;
        }
        tokio::task::yield_now().await;
    };
    assert!(!err.is_permanent(), "{err}");
    idp.set_mode(Mode::Ok);
    tokio::time::timeout(DEADLINE, waiting)
        .await
        .expect("ready() did not return once the IdP was back")
        .unwrap()
        .unwrap();
    assert!(keys.current().is_some_and(|s| s.contains_kid("k")));
    let text = logs.text();
    assert!(text.contains("no keys are loaded yet"), "{text}");
    assert!(!text.contains("keeping the last good keys"), "{text}");
    assert!(
        !text.contains("ERROR"),
        "an outage logged as an error:\n{text}"
    );
}

/// A key rotated in while the IdP is down: the unknown-kid refresh fails,
/// and once the IdP is back a token with the new kid validates after the
/// back-off (1 s here), well within the 30 s cooldown.
#[tokio::test]
async fn a_key_rotated_in_during_an_outage_validates_after_the_back_off_not_the_cooldown() {
    let a = new_key("a");
    let b = new_key("b");
    let idp = Idp::start(&[&a]).await;
    let clock = ManualClock::new(NOW);
    let keys = RemoteKeySet::builder()
        .discovery(idp.issuer())
        .allow_http_loopback(true)
        .timeout(SLOW_OK)
        .clock(clock.clone())
        .build()
        .unwrap();
    keys.refresh().await.unwrap();
    let v = Validator::builder()
        .issuer(idp.issuer())
        .audience(AUD)
        .clock(FixedClock(NOW))
        .keys(keys.clone())
        .build()
        .unwrap();
    let check = async |token: &str| match v.validate_async::<Value>(token).await {
        Ok(_) => "ok",
        Err(e) => e.kind().as_str(),
    };
    let token = b.token(&claims_of(&idp.issuer()));

    // The outage; the IdP rotates b in meanwhile.
    idp.set_mode(Mode::Status(503));
    idp.set_keys(&[&a, &b]);
    assert_eq!(check(&token).await, "unknown_key");
    assert_eq!(keys.stats().unknown_kid_refreshes, 1);
    // Within the back-off no second unknown-kid fetch starts: a flood of
    // kids during an outage costs one fetch per back-off step.
    assert_eq!(check(&token).await, "unknown_key");
    assert_eq!(keys.stats().unknown_kid_refreshes, 1);

    // The IdP is back; past the back-off, far inside the cooldown.
    idp.set_mode(Mode::Ok);
    clock.advance(2);
    assert_eq!(check(&token).await, "ok");
}
