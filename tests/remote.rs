//! Remote key sets against a real HTTP identity provider on 127.0.0.1.
#![cfg(feature = "remote")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::idp::{CountingListener, DEADLINE, Idp, Mode};
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

/// Timeout for fetches that are meant to succeed: room for a loaded 2-core
/// machine.
const SLOW_OK: Duration = Duration::from_secs(20);

/// A remote key set against `idp` (discovery), manual clock.
fn remote(idp: &Idp, clock: &ManualClock) -> RemoteKeySet {
    RemoteKeySet::builder()
        .discovery(idp.issuer())
        .allow_http_loopback(true)
        .timeout(SLOW_OK)
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
    // The IdP holds its answer until every caller is waiting for it.
    idp.set_mode(Mode::Held);
    let token = Arc::new(b.token(&issuer_claims(&idp.issuer())));
    let waiting = Arc::new(tokio::sync::Semaphore::new(0));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..1000 {
        let (v, token, waiting) = (v.clone(), token.clone(), waiting.clone());
        tasks.spawn(async move {
            let validation = v.validate_async::<Value>(&token);
            tokio::pin!(validation);
            // One poll: the caller is now either fetching (held by the
            // IdP) or queued behind that fetch. It cannot have finished.
            let first = std::future::poll_fn(|cx| {
                std::task::Poll::Ready(validation.as_mut().poll(cx).is_pending())
            })
            .await;
            waiting.add_permits(1);
            first && validation.await.is_ok()
        });
    }
    let all_waiting = tokio::time::timeout(DEADLINE, waiting.acquire_many(1000)).await;
    assert!(
        all_waiting.is_ok(),
        "the 1000 callers did not all start waiting"
    );
    tokio::time::timeout(DEADLINE, idp.held())
        .await
        .expect("no fetch reached the IdP");
    assert_eq!(idp.jwks_hits() - before, 1, "more than one fetch started");
    idp.release();
    let passed = tokio::time::timeout(DEADLINE, async {
        let mut passed = 0;
        while let Some(ok) = tasks.join_next().await {
            passed += usize::from(ok.unwrap());
        }
        passed
    })
    .await
    .expect("the callers did not finish after the release");
    assert_eq!(passed, 1000, "some callers did not wait, or failed");
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
        // Short only where the test needs a timeout to happen.
        .timeout(if mode == Mode::Hang {
            Duration::from_secs(2)
        } else {
            SLOW_OK
        })
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
async fn a_hostile_discovery_issuer_is_escaped_and_cut_in_errors_and_logs() {
    // A compromised IdP names a 100 KB issuer that tries to forge a log
    // line: every refresh would copy it into the error and the log.
    let (_guard, logs) = capture_logs();
    let idp = Idp::start(&[&new_key("k")]).await;
    let forged = "\nERROR tokenwarden: forged line";
    let hostile = format!("https://evil.example{forged}{}TAIL", "A".repeat(100_000));
    idp.set_discovery_issuer(Some(&hostile));
    let keys = RemoteKeySet::builder()
        .discovery(idp.issuer())
        .allow_http_loopback(true)
        .build()
        .unwrap();
    let err = keys.refresh().await.unwrap_err();
    assert_eq!(err.kind(), FetchErrorKind::Rejected);
    let msg = err.to_string();
    // Escaped (no raw control character) and cut to an excerpt.
    assert!(msg.contains(r#""https://evil.example\nERROR"#), "{msg}");
    assert!(!msg.contains(forged), "{msg}");
    assert!(
        !msg.contains("TAIL") && !msg.contains(&"A".repeat(100)),
        "{msg}"
    );
    assert!(msg.len() < 400, "{} bytes: {msg}", msg.len());
    let last = keys.last_error().unwrap().to_string();
    assert!(last.len() < 400 && !last.contains(forged), "{last}");
    let text = logs.text();
    assert!(text.contains("key set fetch failed"), "{text}");
    assert!(!text.contains(forged), "a forged log line: {text}");
    assert!(
        !text.contains(&"A".repeat(100)),
        "the issuer flooded the log"
    );
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
    let keys = by_url(&idp).timeout(SLOW_OK).build().unwrap();
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
        .timeout(SLOW_OK)
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
    let outcome = tokio::time::timeout(DEADLINE, v.validate_async::<Value>(&token)).await;
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
        .timeout(Duration::from_secs(600))
        .clock(clock)
        .build()
        .unwrap();
    keys.refresh().await.unwrap();
    let hits = idp.jwks_hits();
    idp.set_mode(Mode::Held);
    // A refresh that the IdP holds until released holds the fetch lock...
    let k2 = keys.clone();
    let hanging = tokio::spawn(async move { k2.refresh().await });
    idp.wait_for_jwks_hits(hits + 1).await;
    // ...and validations of known kids still complete at once.
    let v = validator_for(&idp, keys);
    let token = a.token(&issuer_claims(&idp.issuer()));
    for _ in 0..100 {
        let r = tokio::time::timeout(DEADLINE, v.validate_async::<Value>(&token)).await;
        assert!(r.expect("validation waited for the refresh").is_ok());
    }
    assert!(!hanging.is_finished(), "the refresh was not held");
    idp.release();
    tokio::time::timeout(DEADLINE, hanging)
        .await
        .expect("the released refresh did not finish")
        .unwrap()
        .unwrap();
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
    let metrics = tokio::runtime::Handle::current().metrics();
    // Only the IdP's accept loop.
    let baseline = metrics.num_alive_tasks();
    let keys = by_url(&idp)
        .refresh_interval_bounds(Duration::from_millis(20), Duration::from_millis(20))
        .build()
        .unwrap();
    // The refresher runs on its own schedule...
    idp.wait_for_jwks_hits(3).await;
    drop(keys);
    // ...and its task ends once the last handle is gone (the IdP's
    // per-connection tasks end with their connections).
    let deadline = tokio::time::Instant::now() + DEADLINE;
    while metrics.num_alive_tasks() > baseline {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{} tasks alive after the drop, {baseline} before the build",
            metrics.num_alive_tasks()
        );
        tokio::task::yield_now().await;
    }
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

async fn fetch_by_url(url: String) -> Result<(), tokenwarden::remote::FetchError> {
    let keys = RemoteKeySet::builder()
        .jwks_url(url)
        .allow_http_loopback(true)
        .timeout(SLOW_OK)
        .build()
        .unwrap();
    keys.refresh().await
}

/// README: "at most 3 redirects". `/hop/N` is N+1 redirects.
#[tokio::test]
async fn exactly_three_redirects_are_followed() {
    let a = new_key("a");
    let idp = Idp::start(&[&a]).await;
    fetch_by_url(format!("{}/hop/2", idp.issuer()))
        .await
        .expect("3 redirects refused");
    assert_eq!(idp.jwks_hits(), 1);
}

#[tokio::test]
async fn a_fourth_redirect_is_refused() {
    let a = new_key("a");
    let idp = Idp::start(&[&a]).await;
    let err = fetch_by_url(format!("{}/hop/3", idp.issuer()))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("more than 3 redirects"), "{err}");
    assert_eq!(err.kind(), FetchErrorKind::Rejected);
    assert_eq!(idp.jwks_hits(), 0, "the fourth redirect was followed");
}

#[tokio::test]
async fn redirects_are_rechecked_against_the_url_policy() {
    let a = new_key("a");
    let idp = Idp::start(&[&a]).await;
    // Plain http off loopback, a private and a link-local (cloud metadata)
    // address: each refused before any connection.
    for to in [
        "http://idp.example.invalid/jwks",
        "https://10.0.0.1/jwks",
        "https://169.254.169.254/latest/meta-data/",
        "https://[fd00::1]/jwks",
    ] {
        idp.set_mode(Mode::Redirect(to.into()));
        let err = fetch_by_url(idp.jwks_url()).await.unwrap_err();
        assert!(err.to_string().contains("not allowed"), "{to}: {err}");
        assert_eq!(err.kind(), FetchErrorKind::Rejected, "{to}: {err}");
    }
}

// ---- SSRF through discovery (issue 14 item 14, issue 20 item 7) ----

/// A discovery document on loopback (allowed for the test) names a
/// `jwks_uri` on a private, link-local or unspecified address: refused with
/// a clear error, and no JWKS fetch is even attempted.
#[tokio::test]
async fn discovered_jwks_uri_on_a_private_or_link_local_address_is_refused_before_connecting() {
    let a = new_key("a");
    let idp = Idp::start(&[&a]).await;
    for hostile in [
        "http://10.0.0.1/jwks",
        "https://10.0.0.1/jwks",
        "https://192.168.1.10/jwks",
        "https://169.254.169.254/latest/meta-data/",
        "https://[fd00::1]/jwks",
        "https://[fe80::1]/jwks",
        "https://[::ffff:172.16.0.1]/jwks",
        "https://0.0.0.0/jwks",
    ] {
        idp.set_jwks_uri(Some(hostile));
        let keys = remote(&idp, &ManualClock::new(NOW));
        let err = keys.refresh().await.unwrap_err();
        assert_eq!(err.kind(), FetchErrorKind::Rejected, "{hostile}: {err}");
        assert!(err.to_string().contains("jwks_uri"), "{hostile}: {err}");
        assert_eq!(
            keys.stats().fetches,
            0,
            "{hostile}: a JWKS fetch was attempted"
        );
        assert_eq!(keys.stats().keys, 0, "{hostile}");
    }
    assert_eq!(idp.jwks_hits(), 0);
}

/// A name is checked where it resolves, at connect time: `localhost`
/// resolves to loopback, which an https-only key set may not reach. The
/// listener behind it sees no connection; with loopback allowed it does.
#[tokio::test]
async fn a_name_resolving_to_loopback_is_refused_at_connect_time_unless_allowed() {
    let listener = CountingListener::start().await;
    let url = format!("https://localhost:{}/jwks", listener.port());
    let strict = RemoteKeySet::builder()
        .jwks_url(url.clone())
        .timeout(SLOW_OK)
        .build()
        .unwrap();
    let err = strict.refresh().await.unwrap_err();
    assert_eq!(err.kind(), FetchErrorKind::Rejected, "{err}");
    assert!(
        err.to_string().contains("loopback") && err.to_string().contains("before connecting"),
        "{err}"
    );
    assert_eq!(listener.connections(), 0, "connected to a refused address");

    // The control: allowed, the same URL reaches the listener (and fails
    // there, as it speaks no TLS).
    for allowed in [
        RemoteKeySet::builder().allow_http_loopback(true),
        RemoteKeySet::builder().allow_private_addresses(true),
    ] {
        let before = listener.connections();
        let keys = allowed
            .jwks_url(url.clone())
            .timeout(SLOW_OK)
            .build()
            .unwrap();
        let err = keys.refresh().await.unwrap_err();
        assert_eq!(err.kind(), FetchErrorKind::Connect, "{err}");
        assert!(
            listener.connections() > before,
            "the control did not connect"
        );
    }
}

#[tokio::test]
async fn a_configured_url_on_a_private_address_is_refused_at_build() {
    for url in [
        "https://10.1.2.3/jwks",
        "https://169.254.169.254/jwks",
        "https://127.0.0.1/jwks",
    ] {
        let err = RemoteKeySet::builder().jwks_url(url).build().unwrap_err();
        assert!(
            err.to_string().contains("before connecting"),
            "{url}: {err}"
        );
    }
    RemoteKeySet::builder()
        .jwks_url("https://10.1.2.3/jwks")
        .allow_private_addresses(true)
        .build()
        .expect("allow_private_addresses allows a private IdP");
}

/// URLs may carry credentials in the query or userinfo: errors and logs
/// name the URL without them.
#[tokio::test]
async fn fetch_errors_and_logs_name_the_url_without_query_or_userinfo() {
    let (_guard, logs) = capture_logs();
    let a = new_key("a");
    let idp = Idp::start(&[&a]).await;
    let port = idp.issuer().rsplit(':').next().unwrap().to_owned();
    let secret_url = format!("http://user:hunter2@127.0.0.1:{port}/jwks?access_token=s3cr3t");
    for mode in [Mode::Status(500), Mode::Drop] {
        idp.set_mode(mode.clone());
        let keys = RemoteKeySet::builder()
            .jwks_url(secret_url.clone())
            .allow_http_loopback(true)
            .timeout(SLOW_OK)
            .build()
            .unwrap();
        let err = keys.refresh().await.unwrap_err().to_string();
        assert!(
            err.contains(&format!("127.0.0.1:{port}/jwks")),
            "{mode:?}: {err}"
        );
        for secret in ["s3cr3t", "hunter2", "access_token"] {
            assert!(!err.contains(secret), "{mode:?}: {err}");
        }
    }
    let text = logs.text();
    assert!(text.contains("key set fetch failed"), "not logged");
    for secret in ["s3cr3t", "hunter2", "access_token"] {
        assert!(!text.contains(secret), "logged: {text}");
    }
}

// ---- Duration::MAX in every setting (issue 14 item 8) ----

#[tokio::test]
async fn max_staleness_of_duration_max_never_expires_the_keys() {
    let a = new_key("a");
    let idp = Idp::start(&[&a]).await;
    let clock = ManualClock::new(NOW);
    let keys = by_url(&idp)
        .max_staleness(Duration::MAX)
        .timeout(SLOW_OK)
        .clock(clock.clone())
        .build()
        .unwrap();
    keys.refresh().await.unwrap();
    let v = validator_for(&idp, keys.clone());
    let token = a.token(&issuer_claims(&idp.issuer()));
    assert_eq!(check(&v, &token).await, "ok");
    clock.advance(100 * 365 * 24 * 3600);
    assert_eq!(check(&v, &token).await, "ok");
}

#[tokio::test]
async fn unknown_kid_cooldown_of_duration_max_allows_one_refresh_ever() {
    let a = new_key("a");
    let idp = Idp::start(&[&a]).await;
    let clock = ManualClock::new(NOW);
    let keys = by_url(&idp)
        .unknown_kid_cooldown(Duration::MAX)
        .max_staleness(Duration::MAX)
        .timeout(SLOW_OK)
        .clock(clock.clone())
        .build()
        .unwrap();
    keys.refresh().await.unwrap();
    let v = validator_for(&idp, keys.clone());
    let claims = issuer_claims(&idp.issuer()).to_string();
    let unknown = |kid: &str| a.sign_raw(&json!({"alg": "ES256", "kid": kid}).to_string(), &claims);
    let before = idp.jwks_hits();
    assert_eq!(check(&v, &unknown("x1")).await, "unknown_key");
    assert_eq!(
        idp.jwks_hits(),
        before + 1,
        "the first unknown kid refreshes"
    );
    clock.advance(100 * 365 * 24 * 3600);
    assert_eq!(check(&v, &unknown("x2")).await, "unknown_key");
    assert_eq!(idp.jwks_hits(), before + 1, "the cooldown was disabled");
    assert_eq!(keys.stats().unknown_kid_refreshes, 1);
}

#[tokio::test]
async fn refresh_interval_of_duration_max_schedules_without_panicking() {
    let a = new_key("a");
    let idp = Idp::start(&[&a]).await;
    let keys = by_url(&idp)
        .refresh_interval(Duration::MAX)
        .refresh_interval_bounds(Duration::from_secs(1), Duration::MAX)
        .timeout(SLOW_OK)
        .build()
        .unwrap();
    keys.refresh().await.unwrap();
    keys.refresh().await.unwrap();
    // Bounds of MAX..MAX too: the server's max-age is clamped up to it.
    let pinned = by_url(&idp)
        .refresh_interval_bounds(Duration::MAX, Duration::MAX)
        .timeout(SLOW_OK)
        .build()
        .unwrap();
    pinned.refresh().await.unwrap();
    let v = validator_for(&idp, pinned);
    assert_eq!(
        check(&v, &a.token(&issuer_claims(&idp.issuer()))).await,
        "ok"
    );
}

#[tokio::test]
async fn timeout_of_duration_max_fetches_without_panicking() {
    let a = new_key("a");
    let idp = Idp::start(&[&a]).await;
    let keys = by_url(&idp).timeout(Duration::MAX).build().unwrap();
    keys.refresh().await.unwrap();
    let v = validator_for(&idp, keys);
    assert_eq!(
        check(&v, &a.token(&issuer_claims(&idp.issuer()))).await,
        "ok"
    );
}

// ---- the unknown-kid cooldown, measured (issue 20 item 4) ----

/// Cooldown 30 s: one fetch at the start of a window, none inside it (29 s
/// later), one exactly at its end (30 s), none again right after. Passes
/// neither with a shorter, a longer or no cooldown, nor with no fetch.
#[tokio::test]
async fn unknown_kid_cooldown_is_exact_one_fetch_before_none_inside_one_after() {
    let a = new_key("a");
    let idp = Idp::start(&[&a]).await;
    let clock = ManualClock::new(NOW);
    let keys = by_url(&idp)
        .unknown_kid_cooldown(Duration::from_secs(30))
        .timeout(SLOW_OK)
        .clock(clock.clone())
        .build()
        .unwrap();
    keys.refresh().await.unwrap();
    let v = validator_for(&idp, keys.clone());
    let claims = issuer_claims(&idp.issuer()).to_string();
    let unknown = |kid: &str| a.sign_raw(&json!({"alg": "ES256", "kid": kid}).to_string(), &claims);
    let base = idp.jwks_hits();
    let mut fetches = Vec::new();
    for (advance, kid) in [
        (0, "w1"),
        (29, "w2"),
        (1, "w3"),
        (0, "w4"),
        (29, "w5"),
        (1, "w6"),
    ] {
        clock.advance(advance);
        assert_eq!(check(&v, &unknown(kid)).await, "unknown_key");
        fetches.push(idp.jwks_hits() - base);
    }
    // Cumulative fetches after each attempt, at t = 0, 29, 30, 30, 59, 60.
    assert_eq!(fetches, [1, 1, 2, 2, 2, 3]);
    assert_eq!(keys.stats().unknown_kid_refreshes, 3);
}

// ---- jku / x5u are never fetched (issue 20 item 6) ----

/// Where a fetch could happen: a remote key set refreshing on an unknown
/// kid. The token names a key URL (`jku`, `x5u`) served by a listener that
/// counts connections: the key set refreshes from its own IdP only.
#[tokio::test]
async fn jku_and_x5u_are_never_fetched_by_a_remote_key_set() {
    let a = new_key("a");
    let attacker = new_key("a");
    let idp = Idp::start(&[&a]).await;
    let trap = CountingListener::start().await;
    let clock = ManualClock::new(NOW);
    let keys = remote(&idp, &clock);
    keys.refresh().await.unwrap();
    let v = validator_for(&idp, keys.clone());
    let claims = issuer_claims(&idp.issuer());
    for member in ["jku", "x5u"] {
        let before = idp.jwks_hits();
        // An unknown kid: a refresh happens, from the IdP.
        let mut header = json!({"alg": "ES256", "kid": format!("evil-{member}")});
        header[member] = json!(trap.url("/keys.json"));
        let token = attacker.sign_raw(&header.to_string(), &claims.to_string());
        assert_eq!(check(&v, &token).await, "unknown_key", "{member}");
        assert_eq!(idp.jwks_hits(), before + 1, "{member}: no refresh happened");
        // A known kid, signed by the attacker's key of the same kid.
        header["kid"] = json!("a");
        let token = attacker.sign_raw(&header.to_string(), &claims.to_string());
        assert_eq!(check(&v, &token).await, "invalid_signature", "{member}");
        clock.advance(31);
    }
    assert_eq!(
        trap.connections(),
        0,
        "a key URL from the token was fetched"
    );
}

// ---- several issuers on remote sets (issue 20 item 11) ----

async fn two_issuers() -> (Idp, Idp, TestKey, TestKey, Validator, ManualClock) {
    let ka = new_key("k");
    let kb = new_key("k");
    let idp_a = Idp::start(&[&ka]).await;
    let idp_b = Idp::start(&[&kb]).await;
    let clock = ManualClock::new(NOW);
    let keys_a = remote(&idp_a, &clock);
    let keys_b = remote(&idp_b, &clock);
    keys_a.refresh().await.unwrap();
    keys_b.refresh().await.unwrap();
    let v = Validator::builder()
        .issuer_with_keys(idp_a.issuer(), keys_a)
        .issuer_with_keys(idp_b.issuer(), keys_b)
        .audience(AUD)
        .clock(FixedClock(NOW))
        .build()
        .unwrap();
    (idp_a, idp_b, ka, kb, v, clock)
}

#[tokio::test]
async fn an_unknown_kid_refreshes_only_its_own_issuers_key_set() {
    let (idp_a, idp_b, ka, _kb, v, clock) = two_issuers().await;
    let (a0, b0) = (idp_a.jwks_hits(), idp_b.jwks_hits());
    let claims_a = issuer_claims(&idp_a.issuer()).to_string();
    let claims_b = issuer_claims(&idp_b.issuer()).to_string();
    let unknown = |claims: &str| ka.sign_raw(r#"{"alg":"ES256","kid":"new"}"#, claims);
    assert_eq!(check(&v, &unknown(&claims_a)).await, "unknown_key");
    assert_eq!((idp_a.jwks_hits() - a0, idp_b.jwks_hits() - b0), (1, 0));
    clock.advance(31);
    assert_eq!(check(&v, &unknown(&claims_b)).await, "unknown_key");
    assert_eq!((idp_a.jwks_hits() - a0, idp_b.jwks_hits() - b0), (1, 1));
}

#[tokio::test]
async fn a_token_of_one_issuer_signed_with_anothers_key_and_kid_is_refused() {
    let (idp_a, idp_b, ka, kb, v, _clock) = two_issuers().await;
    let claims_a = issuer_claims(&idp_a.issuer());
    let claims_b = issuer_claims(&idp_b.issuer());
    assert_eq!(check(&v, &ka.token(&claims_a)).await, "ok");
    assert_eq!(check(&v, &kb.token(&claims_b)).await, "ok");
    // Same algorithm, same kid "k": B's key does not speak for A.
    assert_eq!(check(&v, &kb.token(&claims_a)).await, "invalid_signature");
    assert_eq!(check(&v, &ka.token(&claims_b)).await, "invalid_signature");
}
