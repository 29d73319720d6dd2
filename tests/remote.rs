//! Remote key sets against a real HTTP identity provider on 127.0.0.1.
#![cfg(feature = "remote")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::idp::{Idp, Mode};
use common::*;
use serde_json::{Value, json};
use tokenwarden::remote::FetchErrorKind;
use tokenwarden::testing::TestKey;
use tokenwarden::{Algorithm, FixedClock, ManualClock, RemoteKeySet, Validator};

fn issuer_claims(iss: &str) -> Value {
    let mut c = claims();
    c["iss"] = json!(iss);
    c
}

fn new_key(kid: &str) -> TestKey {
    TestKey::generate(Algorithm::ES256, kid).unwrap()
}

/// A builder for `idp`'s JWKS URL over loopback http.
fn by_url(idp: &Idp) -> tokenwarden::RemoteKeySetBuilder {
    RemoteKeySet::builder()
        .jwks_url(idp.jwks_url())
        .allow_http_loopback(true)
}

/// A remote key set against `idp` (discovery), fast timeouts, manual clock.
fn remote(idp: &Idp, clock: &ManualClock) -> RemoteKeySet {
    RemoteKeySet::builder()
        .discovery(idp.issuer())
        .allow_http_loopback(true)
        .timeout(Duration::from_millis(500))
        .clock(clock.clone())
        .build()
        .unwrap()
}

fn validator_for(idp: &Idp, keys: RemoteKeySet) -> Validator {
    Validator::builder()
        .issuer(idp.issuer())
        .audience(AUD)
        .clock(FixedClock(NOW))
        .keys(keys)
        .build()
        .unwrap()
}

async fn check(v: &Validator, token: &str) -> &'static str {
    match v.validate_async::<Value>(token).await {
        Ok(_) => "ok",
        Err(e) => e.kind().as_str(),
    }
}

#[tokio::test]
async fn discovery_fetch_then_rotation_by_unknown_kid() {
    let a = new_key("a");
    let b = new_key("b");
    let idp = Idp::start(&[&a]).await;
    let clock = ManualClock::new(NOW);
    let keys = remote(&idp, &clock);
    keys.refresh().await.unwrap();
    let v = validator_for(&idp, keys.clone());
    let claims = issuer_claims(&idp.issuer());
    assert_eq!(check(&v, &a.token(&claims)).await, "ok");
    assert_eq!(idp.discovery_hits(), 1);
    let fetched = idp.jwks_hits();

    // The IdP adds b and signs with it: one fetch, and the token passes.
    idp.set_keys(&[&a, &b]);
    assert_eq!(check(&v, &b.token(&claims)).await, "ok");
    assert_eq!(idp.jwks_hits(), fetched + 1);
    assert_eq!(keys.stats().unknown_kid_refreshes, 1);
    // Now known: no more fetches.
    assert_eq!(check(&v, &b.token(&claims)).await, "ok");
    assert_eq!(idp.jwks_hits(), fetched + 1);

    // The IdP retires a: after the next refresh, a's tokens stop passing.
    idp.set_keys(&[&b]);
    keys.refresh().await.unwrap();
    assert_eq!(check(&v, &a.token(&claims)).await, "unknown_key");
    assert_eq!(check(&v, &b.token(&claims)).await, "ok");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn herd_of_1000_validations_of_a_new_kid_makes_one_fetch() {
    let a = new_key("a");
    let b = new_key("b");
    let idp = Idp::start(&[&a]).await;
    let clock = ManualClock::new(NOW);
    let keys = remote(&idp, &clock);
    keys.refresh().await.unwrap();
    let v = validator_for(&idp, keys.clone());
    let before = idp.jwks_hits();
    idp.set_keys(&[&a, &b]);
    let token = Arc::new(b.token(&issuer_claims(&idp.issuer())));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..1000 {
        let (v, token) = (v.clone(), token.clone());
        tasks.spawn(async move { v.validate_async::<Value>(&token).await.is_ok() });
    }
    let mut passed = 0;
    while let Some(ok) = tasks.join_next().await {
        passed += usize::from(ok.unwrap());
    }
    assert_eq!(passed, 1000);
    assert_eq!(idp.jwks_hits() - before, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flood_of_random_kids_costs_at_most_one_fetch_per_cooldown() {
    let a = new_key("a");
    let idp = Idp::start(&[&a]).await;
    let clock = ManualClock::new(NOW);
    let keys = remote(&idp, &clock);
    keys.refresh().await.unwrap();
    let v = validator_for(&idp, keys.clone());
    let claims = issuer_claims(&idp.issuer()).to_string();
    let before = idp.jwks_hits();
    for window in 1..=2usize {
        let mut tasks = tokio::task::JoinSet::new();
        for i in 0..10_000usize {
            let v = v.clone();
            // A random kid per token; the signature never gets checked.
            let header = json!({"alg": "ES256", "kid": format!("rnd-{window}-{i}")}).to_string();
            let token = a.sign_raw(&header, &claims);
            tasks.spawn(async move { v.validate_async::<Value>(&token).await.is_err() });
            if tasks.len() >= 256 {
                assert!(tasks.join_next().await.unwrap().unwrap());
            }
        }
        while let Some(refused) = tasks.join_next().await {
            assert!(refused.unwrap());
        }
        assert!(
            idp.jwks_hits() - before <= window,
            "window {window}: {} fetches",
            idp.jwks_hits() - before
        );
        clock.advance(31); // past the 30 s cooldown
    }
}

/// Each outage: known keys keep validating, the failure is counted and
/// logged, and the next good answer is taken.
async fn survives(mode: Mode, expected: FetchErrorKind) {
    let (_guard, logs) = capture_logs();
    let a = new_key("a");
    let idp = Idp::start(&[&a]).await;
    let clock = ManualClock::new(NOW);
    let keys = by_url(&idp)
        .timeout(Duration::from_millis(300))
        .max_body_bytes(64 * 1024)
        .clock(clock.clone())
        .build()
        .unwrap();
    keys.refresh().await.unwrap();
    let v = validator_for(&idp, keys.clone());
    let token = a.token(&issuer_claims(&idp.issuer()));

    idp.set_mode(mode.clone());
    let failures = keys.stats().failures;
    let err = keys.refresh().await.unwrap_err();
    assert_eq!(err.kind(), expected, "{mode:?}: {err}");
    assert_eq!(keys.stats().failures, failures + 1, "{mode:?}");
    assert!(
        logs.text().contains("key set fetch failed"),
        "{mode:?}: not logged"
    );
    for _ in 0..100 {
        assert_eq!(check(&v, &token).await, "ok", "{mode:?}");
    }
    assert_eq!(
        keys.stats().keys,
        1,
        "{mode:?}: a bad answer replaced the keys"
    );

    // The IdP recovers with a rotated set: it is taken.
    let b = new_key("b");
    idp.set_mode(Mode::Ok);
    idp.set_keys(&[&b]);
    keys.refresh().await.unwrap();
    assert!(keys.last_error().is_none());
    assert_eq!(
        check(&v, &b.token(&issuer_claims(&idp.issuer()))).await,
        "ok",
        "{mode:?}"
    );
}

#[tokio::test]
async fn outage_status_500_keeps_last_good_keys() {
    survives(Mode::Status(500), FetchErrorKind::Status).await;
}

#[tokio::test]
async fn outage_hang_past_timeout_keeps_last_good_keys() {
    survives(Mode::Hang, FetchErrorKind::Timeout).await;
}

#[tokio::test]
async fn outage_garbage_keeps_last_good_keys() {
    survives(Mode::Garbage, FetchErrorKind::Invalid).await;
}

#[tokio::test]
async fn outage_html_page_keeps_last_good_keys() {
    survives(Mode::Html, FetchErrorKind::Invalid).await;
}

#[tokio::test]
async fn outage_empty_key_set_keeps_last_good_keys() {
    survives(Mode::EmptySet, FetchErrorKind::Invalid).await;
}

#[tokio::test]
async fn outage_50_mib_body_keeps_last_good_keys() {
    survives(Mode::Huge, FetchErrorKind::TooLarge).await;
}

#[tokio::test]
async fn outage_dropped_connection_keeps_last_good_keys() {
    survives(Mode::Drop, FetchErrorKind::Connect).await;
}

#[tokio::test]
async fn discovery_issuer_mismatch_is_refused_and_bootstrap_keys_serve() {
    let (_guard, logs) = capture_logs();
    let boot = new_key("boot");
    let fresh = new_key("fresh");
    let idp = Idp::start(&[&fresh]).await;
    idp.set_discovery_issuer(Some("https://evil.example"));
    let keys = RemoteKeySet::builder()
        .discovery(idp.issuer())
        .allow_http_loopback(true)
        .bootstrap(keyset(&[&boot]))
        .build()
        .unwrap();
    let err = keys.refresh().await.unwrap_err();
    assert_eq!(err.kind(), FetchErrorKind::Rejected);
    assert!(err.to_string().contains("evil.example"), "{err}");
    assert!(logs.text().contains("key set fetch failed"));
    let v = validator_for(&idp, keys.clone());
    let claims = issuer_claims(&idp.issuer());
    assert_eq!(check(&v, &boot.token(&claims)).await, "ok");
    // Recovery: discovery fixed, the next refresh brings the IdP's keys.
    idp.set_discovery_issuer(None);
    keys.refresh().await.unwrap();
    assert_eq!(check(&v, &fresh.token(&claims)).await, "ok");
}

#[tokio::test]
async fn cold_start_with_bootstrap_keys_validates_before_any_fetch_completes() {
    let boot = new_key("boot");
    let idp = Idp::start(&[&boot]).await;
    idp.set_mode(Mode::Hang);
    let keys = by_url(&idp).bootstrap(keyset(&[&boot])).build().unwrap();
    let v = validator_for(&idp, keys.clone());
    let token = boot.token(&issuer_claims(&idp.issuer()));
    // Synchronous validation: cannot wait on the network at all.
    assert!(v.validate_json(&token).is_ok());
    let stats = keys.stats();
    assert_eq!(
        stats.generation, 1,
        "only the bootstrap set is in force: {stats:?}"
    );
    assert!(
        keys.last_error().is_none(),
        "the first fetch is still hanging"
    );
}

#[tokio::test]
async fn the_served_document_is_kept_and_bootstraps_the_next_cold_start() {
    let k = new_key("k");
    let idp = Idp::start(&[&k]).await;
    // Served with its own spacing: what is kept is the document as served.
    let served = format!("  {}\n", tokenwarden::testing::jwks_json(&[&k]));
    idp.set_jwks_text(served.clone());
    let keys = by_url(&idp)
        .timeout(Duration::from_millis(500))
        .build()
        .unwrap();
    keys.refresh().await.unwrap();
    let doc = keys.jwks_document().expect("a fetch succeeded");
    assert_eq!(&*doc, served.as_bytes());
    // An outage keeps it, with the keys.
    idp.set_mode(Mode::Status(500));
    assert!(keys.refresh().await.is_err());
    assert_eq!(keys.jwks_document().as_deref(), Some(served.as_bytes()));

    // The next cold start, with the IdP hanging: the saved document is enough.
    idp.set_mode(Mode::Hang);
    let next = by_url(&idp)
        .timeout(Duration::from_millis(500))
        .bootstrap(tokenwarden::KeySet::from_jwks(&doc).unwrap())
        .build()
        .unwrap();
    assert!(
        next.jwks_document().is_none(),
        "bootstrap keys are not a fetch"
    );
    let v = validator_for(&idp, next);
    assert!(
        v.validate_json(&k.token(&issuer_claims(&idp.issuer())))
            .is_ok()
    );
}

#[tokio::test]
async fn cold_start_without_keys_fails_fast_with_keys_unavailable() {
    let k = new_key("k");
    let idp = Idp::start(&[&k]).await;
    idp.set_mode(Mode::Hang);
    let keys = by_url(&idp).build().unwrap();
    let v = validator_for(&idp, keys);
    let token = k.token(&issuer_claims(&idp.issuer()));
    let err = v.validate_json(&token).unwrap_err();
    assert_eq!(err.kind().as_str(), "keys_unavailable");
    // The async path does not wait for the hanging first fetch either.
    let outcome =
        tokio::time::timeout(Duration::from_secs(5), v.validate_async::<Value>(&token)).await;
    assert_eq!(
        outcome
            .expect("validate_async hung")
            .unwrap_err()
            .kind()
            .as_str(),
        "keys_unavailable"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn known_kid_never_waits_for_a_refresh_in_progress() {
    let a = new_key("a");
    let idp = Idp::start(&[&a]).await;
    let clock = ManualClock::new(NOW);
    let keys = by_url(&idp)
        .timeout(Duration::from_secs(20))
        .clock(clock)
        .build()
        .unwrap();
    keys.refresh().await.unwrap();
    idp.set_mode(Mode::Hang);
    // A refresh that will hang for 20 s holds the fetch lock...
    let k2 = keys.clone();
    let hanging = tokio::spawn(async move { k2.refresh().await });
    while idp.jwks_hits() < 2 {
        tokio::task::yield_now().await;
    }
    // ...and validations of known kids still complete at once.
    let v = validator_for(&idp, keys);
    let token = a.token(&issuer_claims(&idp.issuer()));
    for _ in 0..100 {
        let r =
            tokio::time::timeout(Duration::from_secs(5), v.validate_async::<Value>(&token)).await;
        assert!(r.expect("validation waited for the refresh").is_ok());
    }
    hanging.abort();
}

#[tokio::test]
async fn keys_past_max_staleness_are_unavailable() {
    let a = new_key("a");
    let idp = Idp::start(&[&a]).await;
    let clock = ManualClock::new(NOW);
    let keys = by_url(&idp)
        .max_staleness(Duration::from_secs(3600))
        .clock(clock.clone())
        .build()
        .unwrap();
    keys.refresh().await.unwrap();
    let v = validator_for(&idp, keys.clone());
    let token = a.token(&issuer_claims(&idp.issuer()));
    idp.set_mode(Mode::Status(503));
    clock.advance(3600);
    assert!(keys.refresh().await.is_err());
    assert_eq!(check(&v, &token).await, "ok");
    clock.advance(1);
    assert_eq!(check(&v, &token).await, "keys_unavailable");
    idp.set_mode(Mode::Ok);
    keys.refresh().await.unwrap();
    assert_eq!(check(&v, &token).await, "ok");
}

#[tokio::test]
async fn http_is_refused_unless_loopback_and_opted_in() {
    let plain = RemoteKeySet::builder()
        .jwks_url("http://127.0.0.1:9/jwks")
        .build();
    assert!(plain.unwrap_err().to_string().contains("https"));
    let remote_http = RemoteKeySet::builder()
        .jwks_url("http://idp.example.com/jwks")
        .allow_http_loopback(true)
        .build();
    assert!(remote_http.is_err());
    for host in [
        "http://10.1.2.3/jwks",
        "http://192.168.0.1/jwks",
        "file:///etc/passwd",
    ] {
        assert!(
            RemoteKeySet::builder()
                .jwks_url(host)
                .allow_http_loopback(true)
                .build()
                .is_err(),
            "{host}"
        );
    }
    assert!(
        RemoteKeySet::builder()
            .jwks_url("http://127.0.0.1:9/jwks")
            .allow_http_loopback(true)
            .build()
            .is_ok()
    );
    assert!(
        RemoteKeySet::builder()
            .jwks_url("https://idp.example.com/jwks")
            .build()
            .is_ok()
    );
}

#[tokio::test]
async fn discovered_jwks_uri_must_pass_the_same_url_policy() {
    let a = new_key("a");
    let idp = Idp::start(&[&a]).await;
    // Discovery over loopback http is allowed, but without the opt-in the
    // builder refuses before anything is fetched.
    assert!(
        RemoteKeySet::builder()
            .discovery(idp.issuer())
            .build()
            .is_err()
    );
    assert_eq!(idp.discovery_hits(), 0);
}

#[tokio::test]
async fn build_outside_a_runtime_is_an_error_not_a_panic() {
    let r = std::thread::spawn(|| {
        RemoteKeySet::builder()
            .jwks_url("https://idp.example.com/jwks")
            .build()
            .map(|_| ())
    })
    .join()
    .unwrap();
    assert!(r.unwrap_err().to_string().contains("Tokio runtime"));
}

#[tokio::test]
async fn dropping_the_key_set_stops_its_refresher() {
    let a = new_key("a");
    let idp = Idp::start(&[&a]).await;
    let keys = by_url(&idp)
        .refresh_interval_bounds(Duration::from_millis(20), Duration::from_millis(20))
        .build()
        .unwrap();
    // The refresher runs on its own schedule...
    while idp.jwks_hits() < 3 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    drop(keys);
    // ...and stops once the last handle is gone.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let after = idp.jwks_hits();
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(idp.jwks_hits() <= after + 1, "still fetching after drop");
}

#[tokio::test]
async fn etag_turns_an_unchanged_set_into_a_304() {
    let a = new_key("a");
    let idp = Idp::start(&[&a]).await;
    idp.set_etag(Some("\"v1\""));
    let keys = by_url(&idp).build().unwrap();
    keys.refresh().await.unwrap();
    let generation = keys.stats().generation;
    keys.refresh().await.unwrap();
    assert!(idp.not_modified() >= 1, "no If-None-Match sent");
    assert_eq!(
        keys.stats().generation,
        generation,
        "a 304 swapped the keys"
    );
    let v = validator_for(&idp, keys.clone());
    assert_eq!(
        check(&v, &a.token(&issuer_claims(&idp.issuer()))).await,
        "ok"
    );
}

#[tokio::test]
async fn redirects_are_bounded_and_rechecked() {
    let a = new_key("a");
    let idp = Idp::start(&[&a]).await;
    let fetch = |path: String| async move {
        let keys = RemoteKeySet::builder()
            .jwks_url(path)
            .allow_http_loopback(true)
            .build()
            .unwrap();
        keys.refresh().await
    };
    // Two hops on loopback: followed.
    assert!(fetch(format!("{}/hop/1", idp.issuer())).await.is_ok());
    // Five hops: more than the 3 allowed.
    let err = fetch(format!("{}/hop/4", idp.issuer())).await.unwrap_err();
    assert!(err.to_string().contains("more than 3 redirects"), "{err}");
    // A redirect to plain http off loopback is refused before any connection.
    idp.set_mode(Mode::Redirect("http://idp.example.invalid/jwks".into()));
    let err = fetch(idp.jwks_url()).await.unwrap_err();
    assert!(err.to_string().contains("not allowed"), "{err}");
}
