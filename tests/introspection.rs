//! Opaque tokens (`authn::introspection`, RFC 7662) against the test
//! issuer's real loopback `/introspect`: verdicts, client authentication,
//! the cache and its bounds, single flight, the concurrency cap, outages
//! and the circuit breaker, one chain for JWTs and opaque tokens, and no
//! token in any log.
#![cfg(all(feature = "introspection", feature = "testing"))]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod common;

use std::time::Duration;

use common::NOW;
use tokenwarden::authn::introspection::{
    IntrospectionAuthenticator, IntrospectionAuthenticatorBuilder,
};
use tokenwarden::authn::jwt::JwtAuthenticator;
use tokenwarden::authn::{Chain, Principal, Refusal, RequestView};
use tokenwarden::testing::{IntrospectionOutage, OpaqueMint, TestIssuer};
use tokenwarden::{Algorithm, KeySet, ManualClock, Validator};

const CLIENT: &str = "orders-api";
const SECRET: &str = "s3cret-Zq8Lw3Xk9Pv2Rt7Ym4Nb6Hc1Jd5Gf0";

fn idp(clock: &ManualClock) -> TestIssuer {
    let idp = TestIssuer::builder().clock(clock.clone()).start().unwrap();
    idp.introspection_client_secret(CLIENT, SECRET);
    idp
}

fn builder(idp: &TestIssuer, clock: &ManualClock) -> IntrospectionAuthenticatorBuilder {
    IntrospectionAuthenticator::builder()
        .endpoint(idp.introspection_url())
        .client_secret_basic(CLIENT, SECRET)
        .issuer(idp.issuer())
        .audience("api")
        .allow_http_loopback(true)
        .clock(clock.clone())
}

async fn chain_for(idp: &TestIssuer, clock: &ManualClock) -> Chain {
    Chain::new().introspection(builder(idp, clock).build().await.unwrap())
}

/// A chain taking the issuer's JWTs (checked locally) and its opaque tokens
/// (introspected), as a service accepting both has it.
async fn jwt_and_opaque(idp: &TestIssuer, clock: &ManualClock) -> Chain {
    let validator = Validator::builder()
        .issuer(idp.issuer())
        .audience("api")
        .keys(KeySet::from_jwks(idp.jwks_json().as_bytes()).unwrap())
        .clock(clock.clone())
        .build()
        .unwrap();
    Chain::new()
        .jwt(JwtAuthenticator::new(validator))
        .introspection(builder(idp, clock).build().await.unwrap())
}

async fn run(chain: &Chain, token: &str) -> Result<Principal, Refusal> {
    let header = format!("Bearer {token}");
    let headers = [("authorization", header.as_str())];
    chain
        .authenticate(&RequestView::new("GET", "/", &headers))
        .await
}

fn kind(r: Result<Principal, Refusal>) -> (u16, &'static str) {
    match r {
        Ok(_) => (200, "ok"),
        Err(r) => (r.status(), r.kind()),
    }
}

/// An opaque token for `alice`, meant for `api`, to finish.
fn alice(idp: &TestIssuer) -> OpaqueMint<'_> {
    idp.opaque_token().subject("alice").audience("api")
}

fn opaque(idp: &TestIssuer) -> String {
    alice(idp).scope("orders:read orders:write").issue()
}

#[tokio::test]
async fn an_active_opaque_token_gives_a_principal_and_is_asked_once() {
    let clock = ManualClock::new(NOW);
    let idp = idp(&clock);
    let chain = chain_for(&idp, &clock).await;
    let token = opaque(&idp);
    let p = run(&chain, &token).await.unwrap();
    assert_eq!(p.subject(), "alice");
    assert_eq!(p.authenticator(), "introspection");
    assert!(p.has_scope("orders:read") && p.has_scope("orders:write"));
    assert_eq!(p.expires_at(), Some(NOW + 300));
    assert_eq!(p.claims()["aud"], "api");
    run(&chain, &token).await.unwrap();
    assert_eq!(
        idp.introspection_calls(),
        1,
        "the second request is served from the cache"
    );
}

#[tokio::test]
async fn a_revoked_token_is_refused_once_its_positive_ttl_ends() {
    let clock = ManualClock::new(NOW);
    let idp = idp(&clock);
    let chain = chain_for(&idp, &clock).await;
    let token = opaque(&idp);
    run(&chain, &token).await.unwrap();
    assert!(idp.revoke(&token));
    // Documented: a revoked token stays usable up to the positive TTL.
    clock.advance(59);
    run(&chain, &token).await.unwrap();
    clock.advance(1);
    assert_eq!(kind(run(&chain, &token).await), (401, "inactive"));
    // A fresh authenticator learns it at once.
    let fresh = chain_for(&idp, &clock).await;
    assert_eq!(kind(run(&fresh, &token).await), (401, "inactive"));
}

#[tokio::test]
async fn an_unknown_token_is_inactive_and_its_refusal_kept_briefly() {
    let clock = ManualClock::new(NOW);
    let idp = idp(&clock);
    let chain = chain_for(&idp, &clock).await;
    assert_eq!(kind(run(&chain, "never-issued").await), (401, "inactive"));
    assert_eq!(kind(run(&chain, "never-issued").await), (401, "inactive"));
    assert_eq!(idp.introspection_calls(), 1);
    clock.advance(5);
    assert_eq!(kind(run(&chain, "never-issued").await), (401, "inactive"));
    assert_eq!(idp.introspection_calls(), 2, "negative TTL over");
}

#[tokio::test]
async fn an_expired_token_is_refused_even_when_the_idp_says_active() {
    let clock = ManualClock::new(NOW);
    let idp = idp(&clock);
    let chain = chain_for(&idp, &clock).await;
    let token = alice(&idp).expired().issue();
    assert_eq!(kind(run(&chain, &token).await), (401, "expired"));
}

#[tokio::test]
async fn a_positive_verdict_is_never_kept_past_the_tokens_exp() {
    let clock = ManualClock::new(NOW);
    let idp = idp(&clock);
    let chain = chain_for(&idp, &clock).await;
    let token = alice(&idp).expires_in(10).issue();
    run(&chain, &token).await.unwrap();
    clock.advance(10 + 61); // past exp and any leeway
    assert_eq!(kind(run(&chain, &token).await), (401, "expired"));
}

#[tokio::test]
async fn a_token_for_another_audience_or_issuer_is_refused() {
    let clock = ManualClock::new(NOW);
    let idp = idp(&clock);
    let chain = chain_for(&idp, &clock).await;
    let other = idp
        .opaque_token()
        .subject("alice")
        .audience("billing")
        .issue();
    assert_eq!(kind(run(&chain, &other).await), (401, "invalid_audience"));
    let none = idp.opaque_token().subject("alice").issue();
    assert_eq!(kind(run(&chain, &none).await), (401, "missing_claim"));
    let forged = alice(&idp).claim("iss", "https://evil.example").issue();
    assert_eq!(kind(run(&chain, &forged).await), (401, "invalid_issuer"));
}

#[tokio::test]
async fn a_refresh_token_is_not_accepted_as_an_access_token() {
    let clock = ManualClock::new(NOW);
    let idp = idp(&clock);
    let chain = chain_for(&idp, &clock).await;
    let refresh = alice(&idp).claim("token_type", "refresh_token").issue();
    assert_eq!(kind(run(&chain, &refresh).await), (401, "wrong_token_type"));
}

#[tokio::test]
async fn wrong_client_credentials_give_503_and_an_error_log_never_401() {
    let clock = ManualClock::new(NOW);
    let idp = idp(&clock);
    let auth = builder(&idp, &clock)
        .client_secret_basic(CLIENT, "not-the-secret")
        .build()
        .await
        .unwrap();
    let chain = Chain::new().introspection(auth);
    let token = opaque(&idp);
    let (_guard, logs) = common::capture_logs();
    let r = run(&chain, &token).await.unwrap_err();
    assert_eq!(r.status(), 503);
    assert_eq!(r.kind(), "introspection_client_rejected");
    assert!(r.retry_after().is_some());
    let text = logs.text();
    let line = text
        .lines()
        .find(|l| l.contains("refused our client credentials"))
        .unwrap_or_else(|| panic!("no error line in {text}"));
    assert!(line.contains("ERROR"), "{line}");
    assert!(
        line.contains(&idp.addr().to_string()),
        "names the endpoint host: {line}"
    );
    assert!(
        !text.contains(&token) && !text.contains("not-the-secret"),
        "{text}"
    );
}

#[tokio::test]
async fn client_secret_post_and_private_key_jwt_authenticate_the_client() {
    let clock = ManualClock::new(NOW);
    let idp = idp(&clock);
    let token = opaque(&idp);
    let post = builder(&idp, &clock)
        .client_secret_post(CLIENT, SECRET)
        .build()
        .await
        .unwrap();
    run(&Chain::new().introspection(post), &token)
        .await
        .unwrap();

    for alg in [Algorithm::ES256, Algorithm::EdDSA] {
        let jwt = builder(&idp, &clock)
            .private_key_jwt_generated("jwt-client", alg)
            .build()
            .await
            .unwrap();
        let chain = Chain::new().introspection(jwt.clone());
        // Not registered yet: the IdP refuses the client.
        assert_eq!(kind(run(&chain, &token).await).0, 503);
        idp.introspection_client_jwk("jwt-client", jwt.client_public_jwk().unwrap())
            .unwrap();
        let p = run(&chain, &token).await.unwrap();
        assert_eq!(p.subject(), "alice", "{alg:?}");
    }
}

#[tokio::test]
async fn the_endpoint_is_found_by_discovery() {
    let clock = ManualClock::new(NOW);
    let idp = idp(&clock);
    let auth = IntrospectionAuthenticator::builder()
        .discovery(idp.issuer())
        .client_secret_basic(CLIENT, SECRET)
        .audience("api")
        .allow_http_loopback(true)
        .clock(clock.clone())
        .build()
        .await
        .unwrap();
    run(&Chain::new().introspection(auth), &opaque(&idp))
        .await
        .unwrap();
}

#[tokio::test]
async fn signed_rfc_9701_answers_are_verified_with_the_idps_keys() {
    let clock = ManualClock::new(NOW);
    let idp = idp(&clock);
    let keys = KeySet::from_jwks(idp.jwks_json().as_bytes()).unwrap();
    let auth = builder(&idp, &clock)
        .jwt_responses(keys)
        .build()
        .await
        .unwrap();
    let chain = Chain::new().introspection(auth);
    let token = opaque(&idp);
    // The IdP answers plain JSON: refused, since anyone on the path could.
    let r = run(&chain, &token).await.unwrap_err();
    assert_eq!((r.status(), r.kind()), (503, "introspection_unavailable"));
    idp.introspection_jwt_responses(true);
    let p = run(&chain, &token).await.unwrap();
    assert_eq!(p.subject(), "alice");
    // Signed by a key the service does not trust: refused.
    let other = TestIssuer::builder().clock(clock.clone()).start().unwrap();
    let wrong = KeySet::from_jwks(other.jwks_json().as_bytes()).unwrap();
    let auth = builder(&idp, &clock)
        .jwt_responses(wrong)
        .build()
        .await
        .unwrap();
    let r = run(&Chain::new().introspection(auth), &opaque(&idp))
        .await
        .unwrap_err();
    assert_eq!(r.status(), 503);
}

/// RFC 9701 answers name no token: one replayed from an earlier call (here:
/// an IdP whose answers were signed ten minutes ago) is refused, never
/// taken as the verdict on this token.
#[tokio::test]
async fn a_stale_signed_answer_is_refused_as_a_replay() {
    let clock = ManualClock::new(NOW);
    let idp_clock = ManualClock::new(NOW - 600);
    let idp = idp(&idp_clock);
    idp.introspection_jwt_responses(true);
    let keys = KeySet::from_jwks(idp.jwks_json().as_bytes()).unwrap();
    let auth = builder(&idp, &clock)
        .jwt_responses(keys)
        .build()
        .await
        .unwrap();
    let chain = Chain::new().introspection(auth);
    let token = opaque(&idp);
    let r = run(&chain, &token).await.unwrap_err();
    assert_eq!((r.status(), r.kind()), (503, "introspection_unavailable"));
    // Signed now: taken.
    idp_clock.set(NOW);
    let fresh = opaque(&idp);
    assert_eq!(run(&chain, &fresh).await.unwrap().subject(), "alice");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_herd_of_1000_requests_with_one_new_token_makes_one_call() {
    let clock = ManualClock::new(NOW);
    let idp = idp(&clock);
    let chain = chain_for(&idp, &clock).await;
    let token = opaque(&idp);
    let tasks: Vec<_> = (0..1000)
        .map(|_| {
            let (chain, token) = (chain.clone(), token.clone());
            tokio::spawn(async move { run(&chain, &token).await.map(|p| p.subject().to_owned()) })
        })
        .collect();
    for t in tasks {
        assert_eq!(t.await.unwrap().unwrap(), "alice");
    }
    assert_eq!(idp.introspection_calls(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_unknown_tokens_stay_under_the_cap_and_the_byte_bound() {
    const CAP: usize = 4;
    const MAX_BYTES: usize = 64 * 1024;
    const MAX_ENTRIES: usize = 100;
    let clock = ManualClock::new(NOW);
    let idp = idp(&clock);
    let auth = builder(&idp, &clock)
        .max_concurrent(CAP)
        .max_bytes(MAX_BYTES)
        .max_entries(MAX_ENTRIES)
        .timeout(Duration::from_secs(60))
        .build()
        .await
        .unwrap();
    let chain = Chain::new().introspection(auth.clone());
    let tasks: Vec<_> = (0..10_000)
        .map(|n| {
            let chain = chain.clone();
            tokio::spawn(
                async move { kind(run(&chain, &format!("unknown-{n:05}-Zq8Lw3Xk9Pv2")).await) },
            )
        })
        .collect();
    for t in tasks {
        assert_eq!(t.await.unwrap(), (401, "inactive"));
    }
    assert_eq!(idp.introspection_calls(), 10_000);
    let most = idp.introspection_max_in_flight();
    assert!(most <= CAP as u64 && most >= 1, "{most} calls at once");
    let (entries, bytes) = auth.cache_usage();
    assert!(bytes <= MAX_BYTES as u64, "{bytes} bytes kept");
    assert!(entries <= MAX_ENTRIES as u64, "{entries} entries kept");
}

const OUTAGES: [IntrospectionOutage; 5] = [
    IntrospectionOutage::Status(500),
    IntrospectionOutage::Hang,
    IntrospectionOutage::Garbage,
    IntrospectionOutage::Html,
    IntrospectionOutage::Drop,
];

#[tokio::test]
async fn outage_matrix_cached_tokens_pass_unseen_ones_get_503() {
    let clock = ManualClock::new(NOW);
    let idp = idp(&clock);
    for outage in OUTAGES {
        let auth = builder(&idp, &clock)
            .timeout(Duration::from_millis(300))
            .build()
            .await
            .unwrap();
        let chain = Chain::new().introspection(auth);
        let seen = opaque(&idp);
        run(&chain, &seen).await.unwrap();
        idp.set_introspection_outage(Some(outage));
        assert_eq!(
            run(&chain, &seen).await.unwrap().subject(),
            "alice",
            "{outage:?}"
        );
        let unseen = opaque(&idp);
        let r = run(&chain, &unseen).await.unwrap_err();
        assert_eq!(r.status(), 503, "{outage:?}");
        assert!(r.retry_after().is_some_and(|s| s >= 1), "{outage:?}");
        assert!(
            r.kind().starts_with("introspection_"),
            "{outage:?}: {}",
            r.kind()
        );
        idp.set_introspection_outage(None);
    }
}

#[tokio::test]
async fn the_circuit_opens_after_failures_in_a_row_and_one_probe_closes_it() {
    let clock = ManualClock::new(NOW);
    let idp = idp(&clock);
    let auth = builder(&idp, &clock).max_failures(2).build().await.unwrap();
    let chain = Chain::new().introspection(auth.clone());
    idp.set_introspection_outage(Some(IntrospectionOutage::Status(502)));
    for _ in 0..2 {
        assert_eq!(kind(run(&chain, &opaque(&idp)).await).0, 503);
    }
    assert!(auth.circuit_open());
    let r = run(&chain, &opaque(&idp)).await.unwrap_err();
    assert_eq!((r.status(), r.kind()), (503, "introspection_circuit_open"));
    assert_eq!(r.retry_after(), Some(1));
    assert_eq!(idp.introspection_calls(), 2, "no call while open");
    // The back-off has run and the IdP is back: one probe closes it.
    idp.set_introspection_outage(None);
    clock.advance(1);
    run(&chain, &opaque(&idp)).await.unwrap();
    assert!(!auth.circuit_open());
    assert_eq!(idp.introspection_calls(), 3);
}

#[tokio::test]
async fn one_chain_serves_a_jwt_and_an_opaque_token() {
    let clock = ManualClock::new(NOW);
    let idp = idp(&clock);
    let chain = jwt_and_opaque(&idp, &clock).await;
    let jwt = idp.token().audience("api").subject("bob").sign();
    let p = run(&chain, &jwt).await.unwrap();
    assert_eq!((p.subject(), p.authenticator()), ("bob", "jwt"));
    let p = run(&chain, &opaque(&idp)).await.unwrap();
    assert_eq!((p.subject(), p.authenticator()), ("alice", "introspection"));
    assert_eq!(
        idp.introspection_calls(),
        1,
        "the JWT was never introspected"
    );
    // A bad JWT stays the JWT authenticator's refusal.
    let mut forged = jwt.clone();
    forged.push('A');
    assert_eq!(kind(run(&chain, &forged).await).1, "invalid_signature");
    // Two dots without a JSON header: opaque.
    assert_eq!(kind(run(&chain, "abc.def.ghi").await), (401, "inactive"));
}

#[tokio::test]
async fn hostile_tokens_never_reach_the_endpoint() {
    let clock = ManualClock::new(NOW);
    let idp = idp(&clock);
    let chain = chain_for(&idp, &clock).await;
    for t in [
        "a%26token_type_hint%3Drefresh",
        "x&client_id=evil",
        "=",
        &"A".repeat(9000),
    ] {
        assert_eq!(kind(run(&chain, t).await), (401, "malformed"), "{t}");
    }
    assert_eq!(idp.introspection_calls(), 0);
}

#[tokio::test]
async fn no_token_or_secret_in_any_log_line() {
    let clock = ManualClock::new(NOW);
    let idp = idp(&clock);
    let (_guard, logs) = common::capture_logs();
    let auth = builder(&idp, &clock).max_failures(1).build().await.unwrap();
    let chain = Chain::new().introspection(auth);
    let good = opaque(&idp);
    let revoked = opaque(&idp);
    idp.revoke(&revoked);
    let mut tokens = vec![good.clone(), revoked.clone()];
    run(&chain, &good).await.unwrap();
    run(&chain, &revoked).await.unwrap_err();
    for outage in OUTAGES {
        if outage == IntrospectionOutage::Hang {
            continue;
        }
        idp.set_introspection_outage(Some(outage));
        let t = opaque(&idp);
        run(&chain, &t).await.unwrap_err();
        tokens.push(t);
        clock.advance(60);
    }
    idp.set_introspection_outage(None);
    let wrong = builder(&idp, &clock)
        .client_secret_basic(CLIENT, "wrong-secret-Zq8Lw3Xk9Pv2Rt7Ym4")
        .build()
        .await
        .unwrap();
    let t = opaque(&idp);
    run(&Chain::new().introspection(wrong), &t)
        .await
        .unwrap_err();
    tokens.push(t);
    let text = logs.text();
    assert!(text.contains("introspection"), "logs were captured: {text}");
    for t in &tokens {
        // Any 20-character window of the token.
        for w in t.as_bytes().windows(20) {
            let w = std::str::from_utf8(w).unwrap();
            assert!(!text.contains(w), "token fragment {w} in {text}");
        }
    }
    for secret in [SECRET, "wrong-secret-Zq8Lw3Xk9Pv2Rt7Ym4"] {
        assert!(!text.contains(secret), "{text}");
    }
}

/// Attack (review finding): an opaque token the IdP says is bound to a
/// client certificate (RFC 8705 §3.2, `cnf["x5t#S256"]`) or to a DPoP key
/// is no bearer token: replayed without its certificate it is refused,
/// and the cached verdict is held to the binding on every request.
#[tokio::test]
async fn a_bound_opaque_token_is_held_to_its_binding() {
    let clock = ManualClock::new(NOW);
    let idp = idp(&clock);
    let chain = chain_for(&idp, &clock).await;
    let cert = b"the DER of a client certificate".to_vec();
    let bound = alice(&idp)
        .claim(
            "cnf",
            serde_json::json!({"x5t#S256": tokenwarden::authn::mtls::thumbprint(&cert)}),
        )
        .issue();
    let stolen = run(&chain, &bound).await;
    assert_eq!(kind(stolen).0, 401, "replayed without the certificate");
    let header = format!("Bearer {bound}");
    let headers = [("authorization", header.as_str())];
    let with_cert = RequestView::new("GET", "/", &headers).peer_certificate(&cert);
    assert!(chain.authenticate(&with_cert).await.is_ok());
    let other = b"another certificate".to_vec();
    let with_other = RequestView::new("GET", "/", &headers).peer_certificate(&other);
    assert_eq!(
        chain.authenticate(&with_other).await.unwrap_err().status(),
        401
    );
    let dpop = alice(&idp)
        .claim(
            "cnf",
            serde_json::json!({"jkt": "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"}),
        )
        .issue();
    assert_eq!(
        kind(run(&chain, &dpop).await).0,
        401,
        "DPoP-bound sent as Bearer"
    );
}

/// Attack (review finding): tokens are the client's to choose, and an
/// endpoint that answers 400 (or 413) for a junk token is judging that
/// token, not failing: a flood of them must not open the circuit and lock
/// every user out. Each junk verdict is kept like any refusal.
#[tokio::test]
async fn junk_tokens_the_endpoint_answers_400_do_not_open_the_circuit() {
    let clock = ManualClock::new(NOW);
    let idp = idp(&clock);
    let auth = builder(&idp, &clock).max_failures(2).build().await.unwrap();
    let chain = Chain::new().introspection(auth.clone());
    for status in [400, 413] {
        idp.set_introspection_unknown_token_status(Some(status));
        for n in 0..20 {
            let junk = format!("junk-{status}-{n:03}-Zq8Lw3Xk9Pv2");
            assert_eq!(kind(run(&chain, &junk).await), (401, "malformed"), "{junk}");
        }
    }
    assert!(!auth.circuit_open(), "junk tokens opened the circuit");
    let calls = idp.introspection_calls();
    assert_eq!(calls, 40);
    // Kept as a refusal: asked again, no call.
    assert_eq!(
        kind(run(&chain, "junk-413-000-Zq8Lw3Xk9Pv2").await),
        (401, "malformed")
    );
    assert_eq!(idp.introspection_calls(), calls);
    // A good token is introspected as ever.
    assert_eq!(run(&chain, &opaque(&idp)).await.unwrap().subject(), "alice");
}

/// An endpoint misconfigured into answering 400 to every token is seen at
/// `warn`, rate-limited (one warning a minute, with the count since the
/// last), not only at debug.
#[tokio::test]
async fn an_endpoint_refusing_tokens_is_warned_about_once_a_minute() {
    let clock = ManualClock::new(NOW);
    let idp = idp(&clock);
    let auth = builder(&idp, &clock).build().await.unwrap();
    let chain = Chain::new().introspection(auth);
    idp.set_introspection_unknown_token_status(Some(400));
    let (_guard, logs) = common::capture_logs();
    let warnings = |logs: &common::LogBuffer| {
        logs.text()
            .lines()
            .filter(|l| l.contains("WARN") && l.contains("endpoint refused tokens"))
            .map(str::to_owned)
            .collect::<Vec<_>>()
    };
    for n in 0..20 {
        let junk = format!("junk-{n:03}-Zq8Lw3Xk9Pv2");
        assert_eq!(kind(run(&chain, &junk).await), (401, "malformed"));
    }
    let first = warnings(&logs);
    assert_eq!(first.len(), 1, "{first:?}");
    assert!(first[0].contains("status=400"), "{first:?}");
    assert!(
        !first[0].contains("junk-"),
        "no token in the log: {first:?}"
    );
    clock.advance(60);
    assert_eq!(
        kind(run(&chain, "junk-late-Zq8Lw3Xk9Pv2").await),
        (401, "malformed")
    );
    let all = warnings(&logs);
    assert_eq!(all.len(), 2, "{all:?}");
    assert!(all[1].contains("refused=20"), "{all:?}");
}

/// Attack (review finding): a flood of tokens the endpoint is slow to
/// judge fills the call slots; callers queued behind them get 503
/// `introspection_busy`, but their wait is not the endpoint's failure:
/// the circuit stays closed and the next good token is introspected.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn callers_queued_for_a_call_slot_do_not_open_the_circuit() {
    let clock = ManualClock::new(NOW);
    let idp = idp(&clock);
    let auth = builder(&idp, &clock)
        .max_concurrent(1)
        .max_failures(1)
        .timeout(Duration::from_secs(4))
        .build()
        .await
        .unwrap();
    let chain = Chain::new().introspection(auth.clone());
    // Each call takes 2.5 s: within the 4 s timeout, longer than the 2 s a
    // caller may wait for the one slot.
    idp.set_introspection_outage(Some(IntrospectionOutage::Slow(Duration::from_millis(2500))));
    let tasks: Vec<_> = (0..4)
        .map(|n| {
            let chain = chain.clone();
            tokio::spawn(async move { kind(run(&chain, &format!("slow-{n}-Zq8Lw3Xk9Pv2")).await) })
        })
        .collect();
    let mut verdicts = Vec::new();
    for t in tasks {
        verdicts.push(t.await.unwrap());
    }
    verdicts.sort_unstable();
    assert_eq!(
        verdicts,
        [
            (401, "inactive"),
            (503, "introspection_busy"),
            (503, "introspection_busy"),
            (503, "introspection_busy")
        ]
    );
    assert!(!auth.circuit_open(), "a queue opened the circuit");
    idp.set_introspection_outage(None);
    assert_eq!(run(&chain, &opaque(&idp)).await.unwrap().subject(), "alice");
}

/// Attack (review finding): a token of JWS shape (two dots) whose header
/// segment is too long to decode for its shape is still the JWT
/// authenticator's: refused there as `invalid_token`, never sent to the
/// introspection endpoint.
#[tokio::test]
async fn a_jws_shaped_token_with_a_huge_header_is_never_introspected() {
    let clock = ManualClock::new(NOW);
    let idp = idp(&clock);
    let chain = jwt_and_opaque(&idp, &clock).await;
    let huge = format!("{}.e30.c2ln", "A".repeat(5000));
    let r = run(&chain, &huge).await.unwrap_err();
    assert_eq!(r.status(), 401);
    assert_eq!(r.error(), Some("invalid_token"));
    // Alone in a chain, introspection leaves it as it leaves any JWT.
    let alone = chain_for(&idp, &clock).await;
    assert_eq!(run(&alone, &huge).await.unwrap_err().status(), 401);
    assert_eq!(idp.introspection_calls(), 0);
}

/// Attack (review finding): an answer without `sub` (a client credentials
/// token) does not silently make its `client_id` the subject, where it
/// could pass for the user whose `sub` it equals; configured, the subject
/// is named by its claim.
#[tokio::test]
async fn a_client_id_stands_in_for_sub_only_when_configured_and_named() {
    let clock = ManualClock::new(NOW);
    let idp = idp(&clock);
    // A client registered under a user's subject.
    let token = idp
        .opaque_token()
        .audience("api")
        .claim("client_id", "alice")
        .issue();
    let chain = chain_for(&idp, &clock).await;
    assert_eq!(kind(run(&chain, &token).await), (401, "missing_claim"));
    let auth = builder(&idp, &clock)
        .subject_fallback(true)
        .build()
        .await
        .unwrap();
    let p = run(&Chain::new().introspection(auth), &token)
        .await
        .unwrap();
    assert_eq!(p.subject(), "client_id:alice");
    assert_ne!(
        p.subject(),
        run(&chain, &opaque(&idp)).await.unwrap().subject()
    );
}

/// Attack (review finding): an answer of many small members takes several
/// times its length once parsed; the cache's byte bound must count what
/// is kept, not the text, or large answers overrun it.
#[tokio::test]
async fn the_byte_bound_counts_the_parsed_answer_not_its_text() {
    const MAX_BYTES: usize = 256 * 1024;
    const MEMBERS: usize = 2500;
    let clock = ManualClock::new(NOW);
    let idp = idp(&clock);
    let auth = builder(&idp, &clock)
        .max_bytes(MAX_BYTES)
        .max_entries(100)
        .build()
        .await
        .unwrap();
    let chain = Chain::new().introspection(auth.clone());
    let big: serde_json::Map<String, serde_json::Value> = (0..MEMBERS)
        .map(|n| (format!("k{n:04}"), serde_json::Value::from(0)))
        .collect();
    let text = serde_json::Value::Object(big.clone()).to_string().len();
    // Each member parsed holds at least its key's `String` and a `Value`.
    let parsed = MEMBERS * (size_of::<String>() + size_of::<serde_json::Value>() + "k0000".len());
    assert!(parsed > 3 * text, "{parsed} vs {text}");
    for _ in 0..5 {
        let token = alice(&idp)
            .claim("extra", serde_json::Value::Object(big.clone()))
            .issue();
        run(&chain, &token).await.unwrap();
    }
    let (entries, bytes) = auth.cache_usage();
    assert!(bytes <= MAX_BYTES as u64, "{bytes} bytes kept");
    // Five answers of `parsed` bytes each cannot fit: at most what does.
    assert!(
        entries as usize <= MAX_BYTES / parsed,
        "{entries} entries kept, each holding at least {parsed} bytes"
    );
}

/// A wrong client secret shows before the first request: `check_client`
/// makes one call with a made-up token, an error naming the cause when the
/// endpoint refuses the credentials, `Ok` when it judges the token; an
/// endpoint that cannot be asked is an error of its own. The circuit never
/// hears of it.
#[tokio::test]
async fn check_client_tells_a_wrong_secret_before_the_first_request() {
    let clock = ManualClock::new(NOW);
    let idp = idp(&clock);
    let good = builder(&idp, &clock).max_failures(1).build().await.unwrap();
    good.check_client().await.unwrap();
    let wrong = builder(&idp, &clock)
        .client_secret_basic(CLIENT, "not-the-secret")
        .max_failures(1)
        .build()
        .await
        .unwrap();
    let e = wrong.check_client().await.unwrap_err().to_string();
    assert!(e.contains("refused this client's credentials"), "{e}");
    assert!(e.contains(&idp.addr().to_string()), "names the host: {e}");
    assert!(!e.contains("not-the-secret"), "{e}");
    assert!(!wrong.circuit_open());
    assert_eq!(idp.introspection_calls(), 2);
    // The endpoint down: not a credentials error.
    idp.set_introspection_outage(Some(IntrospectionOutage::Status(503)));
    let e = good.check_client().await.unwrap_err().to_string();
    assert!(e.contains("could not be asked"), "{e}");
    assert!(!good.circuit_open());
}

/// Attack (review finding): an "introspection endpoint" that calls every
/// token active (a stub left in place, a URL pointing at the wrong
/// service) judges nothing; the start-time check says so instead of
/// reporting the credentials accepted.
#[tokio::test]
async fn check_client_refuses_an_endpoint_calling_a_made_up_token_active() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = axum::Router::new().route(
        "/introspect",
        axum::routing::post(|| async {
            (
                [(axum::http::header::CONTENT_TYPE, "application/json")],
                r#"{"active": true, "sub": "anyone"}"#,
            )
        }),
    );
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let stub = IntrospectionAuthenticator::builder()
        .endpoint(format!("http://{addr}/introspect"))
        .client_secret_basic(CLIENT, "whatever")
        .allow_http_loopback(true)
        .build()
        .await
        .unwrap();
    let e = stub.check_client().await.unwrap_err().to_string();
    assert!(e.contains("says a made-up token is active"), "{e}");
}
