//! DPoP (RFC 9449): every proof check failed on purpose, the token
//! binding, replay, server nonces, the `Host` header, and the layer over
//! real HTTP on 127.0.0.1.
#![cfg(all(feature = "axum", feature = "testing"))]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::routing::get;
use common::dpop::{ORIGIN, bound_token, chain, client, config, dpop, dpop_headers, proof};
use common::{NOW, claims, key, validator};
use serde_json::json;
use tokenwarden::authn::dpop::{DpopAuthenticator, DpopConfig};
use tokenwarden::authn::{BoxFuture, Chain, Principal, Refusal, RequestView};
use tokenwarden::middleware::BearerAuth;
use tokenwarden::state::replay::{MemoryReplayStore, ReplayError, ReplayKey, ReplayStore};
use tokenwarden::testing::{DpopProof, TestKey};
use tokenwarden::{Algorithm, ManualClock};

const HTU: &str = "https://api.test/orders/7";
const PATH: &str = "/orders/7";

async fn judge(
    chain: &Chain,
    method: &str,
    headers: &[(String, String)],
) -> Result<Principal, Refusal> {
    chain
        .authenticate(&RequestView::new(method, PATH, &headers.to_vec()))
        .await
}

/// The refusal's kind, or "ok".
async fn kind(chain: &Chain, method: &str, headers: &[(String, String)]) -> &'static str {
    match judge(chain, method, headers).await {
        Ok(_) => "ok",
        Err(r) => r.kind(),
    }
}

/// A request whose token is bound to client 0 and whose proof is `p`.
fn with_proof(token: &str, p: &DpopProof<'_>) -> Vec<(String, String)> {
    dpop_headers(token, &[&p.sign()])
}

#[tokio::test]
async fn a_valid_proof_with_its_bound_token_passes() {
    let token = bound_token(client(0));
    let chain = chain(config());
    let p = judge(
        &chain,
        "GET",
        &with_proof(&token, &proof(client(0), "GET", HTU, &token)),
    )
    .await
    .unwrap();
    assert_eq!(p.subject(), "alice");
    assert_eq!(p.authenticator(), "dpop");
    assert!(p.has_scope("orders:read"));
    assert_eq!(
        p.confirmation(),
        Some(&json!({"jkt": client(0).jwk_thumbprint().unwrap()}))
    );
    // EdDSA proofs too.
    let token = bound_token(client(1));
    let h = with_proof(&token, &proof(client(1), "GET", HTU, &token));
    assert_eq!(kind(&chain, "GET", &h).await, "ok");
}

#[tokio::test]
async fn htu_ignores_query_and_fragment_and_is_normalised() {
    let token = bound_token(client(0));
    let chain = chain(config());
    for htu in [
        "https://api.test/orders/7?page=2#top",
        "HTTPS://API.TEST:443/orders/%37",
        "https://api.test/orders/./x/../7",
    ] {
        let h = with_proof(&token, &proof(client(0), "GET", htu, &token));
        assert_eq!(kind(&chain, "GET", &h).await, "ok", "{htu}");
    }
}

#[tokio::test]
async fn wrong_htm_is_refused() {
    let token = bound_token(client(0));
    let chain = chain(config());
    let h = with_proof(&token, &proof(client(0), "POST", HTU, &token));
    let r = judge(&chain, "GET", &h).await.unwrap_err();
    assert_eq!(
        (r.status(), r.error(), r.kind()),
        (401, Some("invalid_dpop_proof"), "dpop_htm_mismatch")
    );
    assert!(r.challenges("api")[0].starts_with("DPoP realm=\"api\", error=\"invalid_dpop_proof\""));
    assert!(
        r.challenges("api")[0].contains("algs=\"ES256 ES384"),
        "{:?}",
        r.challenges("api")
    );
    // Methods are case-sensitive.
    let h = with_proof(&token, &proof(client(0), "get", HTU, &token));
    assert_eq!(kind(&chain, "GET", &h).await, "dpop_htm_mismatch");
}

#[tokio::test]
async fn wrong_htu_is_refused() {
    let token = bound_token(client(0));
    let chain = chain(config());
    for htu in [
        "https://api.test/orders/8",
        "https://api.test/orders/7/",
        "https://api.test/Orders/7",
        "http://api.test/orders/7",
        "https://api.test:8443/orders/7",
        "https://other.test/orders/7",
        "https://user@api.test/orders/7",
        "not a uri",
    ] {
        let h = with_proof(&token, &proof(client(0), "GET", htu, &token));
        assert_eq!(kind(&chain, "GET", &h).await, "dpop_htu_mismatch", "{htu}");
    }
}

/// RFC 9449 §4.3 + RFC 3986 §6.2.2.3: a request path with dot segments
/// (plain or `%2e`) takes no proof, whichever URI the proof names: the
/// resource it reaches depends on the router's normalising, which the
/// `htu` comparison must not guess at.
#[tokio::test]
async fn a_request_path_with_dot_segments_takes_no_proof() {
    let token = bound_token(client(0));
    let chain = chain(config());
    for (path, htus) in [
        (
            "/admin/../orders/7",
            &[
                "https://api.test/orders/7",
                "https://api.test/admin/../orders/7",
            ][..],
        ),
        (
            "/orders/%2e%2e/admin",
            &[
                "https://api.test/admin",
                "https://api.test/orders/%2e%2e/admin",
            ][..],
        ),
        ("/orders/./7", &["https://api.test/orders/7"][..]),
        ("/orders/%2E/7", &["https://api.test/orders/7"][..]),
    ] {
        for htu in htus {
            let h = with_proof(&token, &proof(client(0), "GET", htu, &token));
            let r = chain
                .authenticate(&RequestView::new("GET", path, &h))
                .await
                .map(|_| ())
                .unwrap_err();
            assert_eq!(
                (r.status(), r.error(), r.kind()),
                (401, Some("invalid_dpop_proof"), "dpop_htu_mismatch"),
                "{path} {htu}"
            );
        }
    }
}

#[tokio::test]
async fn a_spoofed_host_header_does_not_help_a_proof_made_for_another_origin() {
    let token = bound_token(client(0));
    let chain = chain(config());
    // A proof captured from (or made for) another service.
    let elsewhere = proof(client(0), "GET", "https://evil.test/orders/7", &token).sign();
    let mut h = dpop_headers(&token, &[&elsewhere]);
    h.push(("host".into(), "evil.test".into()));
    assert_eq!(kind(&chain, "GET", &h).await, "dpop_htu_mismatch");
    // And the Host header does not hurt a proof for the configured origin.
    let here = proof(client(0), "GET", HTU, &token).sign();
    let mut h = dpop_headers(&token, &[&here]);
    h.push(("host".into(), "evil.test".into()));
    assert_eq!(kind(&chain, "GET", &h).await, "ok");
}

#[tokio::test]
async fn the_host_header_is_trusted_only_when_configured() {
    let token = bound_token(client(0));
    let chain = chain(config().trust_host_header("https"));
    let p = proof(client(0), "GET", "https://tenant.test/orders/7", &token).sign();
    let mut h = dpop_headers(&token, &[&p]);
    h.push(("host".into(), "tenant.test".into()));
    assert_eq!(kind(&chain, "GET", &h).await, "ok");
    let p = proof(client(0), "GET", "https://tenant.test/orders/7", &token).sign();
    let mut h = dpop_headers(&token, &[&p]);
    h.push(("host".into(), "other.test".into()));
    assert_eq!(kind(&chain, "GET", &h).await, "dpop_htu_mismatch");
}

#[tokio::test]
async fn an_old_iat_is_refused() {
    let token = bound_token(client(0));
    let chain = chain(config());
    // 60 s max age + 5 s leeway: the oldest accepted.
    let h = with_proof(&token, &proof(client(0), "GET", HTU, &token).iat(NOW - 65));
    assert_eq!(kind(&chain, "GET", &h).await, "ok");
    let h = with_proof(&token, &proof(client(0), "GET", HTU, &token).iat(NOW - 66));
    assert_eq!(kind(&chain, "GET", &h).await, "dpop_iat_too_old");
    let h = with_proof(&token, &proof(client(0), "GET", HTU, &token).without("iat"));
    assert_eq!(kind(&chain, "GET", &h).await, "dpop_proof_malformed");
}

#[tokio::test]
async fn a_future_iat_is_refused() {
    let token = bound_token(client(0));
    let chain = chain(config());
    let h = with_proof(&token, &proof(client(0), "GET", HTU, &token).iat(NOW + 5));
    assert_eq!(kind(&chain, "GET", &h).await, "ok");
    let h = with_proof(&token, &proof(client(0), "GET", HTU, &token).iat(NOW + 6));
    assert_eq!(kind(&chain, "GET", &h).await, "dpop_iat_in_future");
}

#[tokio::test]
async fn a_reused_jti_is_refused() {
    let token = bound_token(client(0));
    let chain = chain(config());
    let h = with_proof(&token, &proof(client(0), "GET", HTU, &token).jti("once"));
    assert_eq!(kind(&chain, "GET", &h).await, "ok");
    // The very same proof again.
    assert_eq!(kind(&chain, "GET", &h).await, "dpop_replayed");
    // A new proof reusing the jti.
    let h = with_proof(
        &token,
        &proof(client(0), "GET", HTU, &token)
            .jti("once")
            .iat(NOW - 1),
    );
    assert_eq!(kind(&chain, "GET", &h).await, "dpop_replayed");
    // Another client's jti of the same text is its own.
    let other = bound_token(client(1));
    let h = with_proof(&other, &proof(client(1), "GET", HTU, &other).jti("once"));
    assert_eq!(kind(&chain, "GET", &h).await, "ok");
    let h = with_proof(&token, &proof(client(0), "GET", HTU, &token).without("jti"));
    assert_eq!(kind(&chain, "GET", &h).await, "dpop_jti_missing");
}

#[tokio::test]
async fn a_jti_is_remembered_until_its_proof_leaves_the_window() {
    let clock = ManualClock::new(NOW);
    let token = bound_token(client(0));
    let chain = chain(config().clock(clock.clone()));
    let h = with_proof(&token, &proof(client(0), "GET", HTU, &token).jti("j"));
    assert_eq!(kind(&chain, "GET", &h).await, "ok");
    clock.advance(65);
    assert_eq!(kind(&chain, "GET", &h).await, "dpop_replayed");
    clock.advance(1);
    assert_eq!(kind(&chain, "GET", &h).await, "dpop_iat_too_old");
}

#[tokio::test]
async fn a_wrong_ath_is_refused() {
    let token = bound_token(client(0));
    let chain = chain(config());
    let other = bound_token(client(0)); // same claims, another signature
    assert_ne!(token, other);
    let h = with_proof(&token, &proof(client(0), "GET", HTU, &other));
    assert_eq!(kind(&chain, "GET", &h).await, "dpop_ath_mismatch");
    let h = with_proof(&token, &proof(client(0), "GET", HTU, &token).without("ath"));
    assert_eq!(kind(&chain, "GET", &h).await, "dpop_ath_mismatch");
}

#[tokio::test]
async fn a_thumbprint_mismatch_is_refused() {
    // The token is bound to client 0; a thief with client 2's key proves
    // possession of client 2's key only.
    let token = bound_token(client(0));
    let chain = chain(config());
    let h = with_proof(&token, &proof(client(2), "GET", HTU, &token));
    let r = judge(&chain, "GET", &h).await.unwrap_err();
    assert_eq!(
        (r.status(), r.error(), r.kind()),
        (401, Some("invalid_token"), "dpop_jkt_mismatch")
    );
    assert!(r.challenges("api")[0].starts_with("DPoP realm=\"api\", error=\"invalid_token\""));
}

/// A token bound to a DPoP key and to a client certificate (`jkt` and
/// `x5t#S256`, RFC 9449 with RFC 8705 §3): the proof alone is not enough,
/// the connection must present that certificate too.
#[tokio::test]
async fn a_token_bound_to_a_key_and_a_certificate_needs_both() {
    let pki = common::tls::Pki::new();
    let alice = pki.client("alice", &[], &["alice.shop.test"]);
    let mallory = pki.client("mallory", &[], &["mallory.shop.test"]);
    let mut c = claims();
    c["cnf"] = json!({
        "jkt": client(0).jwk_thumbprint().unwrap(),
        "x5t#S256": tokenwarden::authn::mtls::thumbprint(&alice.der),
    });
    let token = key(Algorithm::ES256).token(&c);
    let chain = chain(config());
    // A fresh proof each time: a replayed one would be refused anyway.
    async fn judge_with(
        chain: &Chain,
        token: &str,
        cert: Option<&[u8]>,
    ) -> Result<Principal, Refusal> {
        let h = with_proof(token, &proof(client(0), "GET", HTU, token));
        let view = RequestView::new("GET", PATH, &h);
        let view = match cert {
            Some(der) => view.peer_certificate(der),
            None => view,
        };
        chain.authenticate(&view).await
    }
    for (cert, expected) in [
        (None, "certificate_missing"),
        (Some(mallory.der.as_slice()), "certificate_mismatch"),
    ] {
        let r = judge_with(&chain, &token, cert).await.unwrap_err();
        assert_eq!(
            (r.status(), r.error(), r.kind()),
            (401, Some("invalid_token"), expected)
        );
        assert!(
            r.challenges("api")[0].starts_with("DPoP realm=\"api\", error=\"invalid_token\""),
            "{:?}",
            r.challenges("api")
        );
    }
    let p = judge_with(&chain, &token, Some(&alice.der)).await.unwrap();
    assert_eq!((p.subject(), p.authenticator()), ("alice", "dpop"));
}

#[tokio::test]
async fn an_unbound_token_with_the_dpop_scheme_is_refused() {
    let token = key(Algorithm::ES256).token(&claims());
    let chain = chain(config());
    let h = with_proof(&token, &proof(client(0), "GET", HTU, &token));
    assert_eq!(kind(&chain, "GET", &h).await, "dpop_token_unbound");
}

#[tokio::test]
async fn a_private_key_in_the_header_is_refused() {
    let token = bound_token(client(0));
    let chain = chain(config());
    for member in ["d", "p", "q", "dp", "dq", "qi", "k"] {
        let mut jwk = client(0).public_jwk();
        jwk[member] = json!("c2VjcmV0");
        let h = with_proof(
            &token,
            &proof(client(0), "GET", HTU, &token).header("jwk", jwk),
        );
        assert_eq!(
            kind(&chain, "GET", &h).await,
            "dpop_proof_private_key",
            "{member}"
        );
    }
}

/// The judgement of an RS256 proof by `jwk` (signed by `sign`) for a token
/// bound to `jwk`.
async fn judge_rsa_proof(
    jwk: serde_json::Value,
    sign: impl Fn(&[u8]) -> Vec<u8>,
) -> Result<Principal, Refusal> {
    let mut c = claims();
    c["cnf"] = json!({"jkt": tokenwarden::authn::dpop::jwk_thumbprint(&jwk).unwrap()});
    let token = common::dpop::issuer_key().token(&c);
    let p = common::dpop::rsa_proof(jwk, sign, "GET", HTU, &token);
    judge(&chain(config()), "GET", &dpop_headers(&token, &[&p])).await
}

/// A client picks its proof key and every request pays one verification
/// with it: RSA proof keys have 2048 to 4096 bits (RFC 8725 §3.5), checked
/// before any signature is verified. An RSA-8192 key with a valid
/// signature is refused, naming its size; so is a 1024-bit key.
#[tokio::test]
async fn rsa_proof_keys_outside_2048_to_4096_bits_are_refused_before_verifying() {
    use aws_lc_rs::rsa::KeySize;
    let (jwk, sign) = common::dpop::rsa_key(KeySize::Rsa2048);
    assert_eq!(
        judge_rsa_proof(jwk, &sign).await.unwrap().subject(),
        "alice"
    );
    let (jwk, sign) = common::dpop::rsa_key(KeySize::Rsa4096);
    assert_eq!(
        judge_rsa_proof(jwk, &sign).await.unwrap().subject(),
        "alice"
    );

    // Made at test time: about 10 s on a loaded 2-core machine.
    let (jwk, sign) = common::dpop::rsa_key(KeySize::Rsa8192);
    let r = judge_rsa_proof(jwk, &sign).await.unwrap_err();
    assert_eq!(r.error(), Some("invalid_dpop_proof"));
    assert_eq!(r.kind(), "dpop_proof_jwk");
    assert!(r.description().contains("8192 bits"), "{}", r.description());

    // No 1024-bit key is made here (aws-lc-rs makes none): the public key
    // of tests/data, with a signature of the right length that cannot
    // verify. Refused for its size, not its signature.
    let weak: serde_json::Value =
        serde_json::from_str(include_str!("data/rsa1024.jwks.json")).unwrap();
    let jwk = json!({"kty": "RSA", "n": weak["keys"][0]["n"], "e": weak["keys"][0]["e"]});
    let r = judge_rsa_proof(jwk, |_: &[u8]| vec![1; 128])
        .await
        .unwrap_err();
    assert_eq!(r.kind(), "dpop_proof_jwk");
    assert!(r.description().contains("1024 bits"), "{}", r.description());
}

#[tokio::test]
async fn an_hs256_proof_is_refused() {
    let hmac = TestKey::generate(Algorithm::HS256, "mac").unwrap();
    let token = bound_token(client(0));
    let chain = chain(config());
    // Signed with a MAC under a key it sends along: proves nothing.
    let p = DpopProof::new(&hmac, "GET", HTU)
        .iat(NOW)
        .access_token(&token);
    assert_eq!(
        kind(&chain, "GET", &with_proof(&token, &p)).await,
        "dpop_proof_alg"
    );
    // Nor with its jwk swapped for the client's public key.
    let p = p.header("jwk", client(0).public_jwk());
    assert_eq!(
        kind(&chain, "GET", &with_proof(&token, &p)).await,
        "dpop_proof_alg"
    );
    // And HMAC cannot be configured.
    let e = DpopAuthenticator::new(
        validator(&[key(Algorithm::ES256)]),
        config().algorithms([Algorithm::HS256]),
    );
    assert!(e.is_err());
}

#[tokio::test]
async fn an_alg_none_proof_is_refused() {
    let token = bound_token(client(0));
    let chain = chain(config());
    let p = proof(client(0), "GET", HTU, &token)
        .header("alg", "none")
        .sign();
    let mut parts: Vec<&str> = p.split('.').collect();
    // With its signature, and with none (an unsecured JWS).
    assert_eq!(
        kind(&chain, "GET", &dpop_headers(&token, &[&p])).await,
        "dpop_proof_alg"
    );
    parts[2] = "";
    let unsecured = parts.join(".");
    assert_eq!(
        kind(&chain, "GET", &dpop_headers(&token, &[&unsecured])).await,
        "dpop_proof_alg"
    );
}

#[tokio::test]
async fn an_algorithm_outside_the_allow_list_is_refused() {
    let token = bound_token(client(1)); // an EdDSA key
    let chain = chain(config().algorithms([Algorithm::ES256]));
    let h = with_proof(&token, &proof(client(1), "GET", HTU, &token));
    assert_eq!(kind(&chain, "GET", &h).await, "dpop_proof_alg");
}

#[tokio::test]
async fn a_wrong_typ_is_refused() {
    let token = bound_token(client(0));
    let chain = chain(config());
    for typ in [json!("JWT"), json!("at+jwt"), json!(null)] {
        let h = with_proof(
            &token,
            &proof(client(0), "GET", HTU, &token).header("typ", typ.clone()),
        );
        assert_eq!(kind(&chain, "GET", &h).await, "dpop_proof_typ", "{typ}");
    }
}

#[tokio::test]
async fn a_signature_by_another_key_is_refused() {
    // Client 2 signs, but names client 0's public key (to match the token).
    let token = bound_token(client(0));
    let chain = chain(config());
    let p = proof(client(2), "GET", HTU, &token).header("jwk", client(0).public_jwk());
    assert_eq!(
        kind(&chain, "GET", &with_proof(&token, &p)).await,
        "dpop_proof_signature"
    );
}

#[tokio::test]
async fn a_missing_or_stale_nonce_is_refused_with_a_fresh_one() {
    let clock = ManualClock::new(NOW);
    let token = bound_token(client(0));
    let auth = dpop(
        config()
            .clock(clock.clone())
            .nonces(vec![9; 32], Duration::from_secs(300)),
    );
    let chain = Chain::new().dpop(auth.clone());
    // No nonce: told to use one, and which.
    let h = with_proof(&token, &proof(client(0), "GET", HTU, &token));
    let r = judge(&chain, "GET", &h).await.unwrap_err();
    assert_eq!(
        (r.status(), r.error(), r.kind()),
        (401, Some("use_dpop_nonce"), "use_dpop_nonce")
    );
    let nonce = r.dpop_nonce().unwrap().to_owned();
    assert_eq!(Some(nonce.clone()), auth.current_nonce());
    // With it: accepted, and still in the next period.
    let h = with_proof(&token, &proof(client(0), "GET", HTU, &token).nonce(&nonce));
    assert_eq!(kind(&chain, "GET", &h).await, "ok");
    clock.advance(300);
    let h = with_proof(
        &token,
        &proof(client(0), "GET", HTU, &token)
            .iat(NOW + 300)
            .nonce(&nonce),
    );
    assert_eq!(kind(&chain, "GET", &h).await, "ok");
    // Two periods on: stale, and a new one is handed out.
    clock.advance(300);
    let h = with_proof(
        &token,
        &proof(client(0), "GET", HTU, &token)
            .iat(NOW + 600)
            .nonce(&nonce),
    );
    let r = judge(&chain, "GET", &h).await.unwrap_err();
    assert_eq!(r.kind(), "use_dpop_nonce");
    assert_ne!(r.dpop_nonce(), Some(nonce.as_str()));
    // A made-up one.
    let h = with_proof(
        &token,
        &proof(client(0), "GET", HTU, &token)
            .iat(NOW + 600)
            .nonce("guess"),
    );
    assert_eq!(kind(&chain, "GET", &h).await, "use_dpop_nonce");
}

#[tokio::test]
async fn a_dpop_bound_token_sent_as_bearer_is_refused() {
    let token = bound_token(client(0));
    let chain = chain(config());
    let h = vec![("authorization".to_owned(), format!("Bearer {token}"))];
    let r = judge(&chain, "GET", &h).await.unwrap_err();
    assert_eq!((r.status(), r.kind()), (401, "dpop_bound_token_as_bearer"));
    // An unbound token as Bearer is fine.
    let plain = key(Algorithm::ES256).token(&claims());
    let h = vec![("authorization".to_owned(), format!("Bearer {plain}"))];
    assert_eq!(kind(&chain, "GET", &h).await, "ok");
}

#[tokio::test]
async fn two_dpop_headers_or_none_are_refused() {
    let token = bound_token(client(0));
    let chain = chain(config());
    let a = proof(client(0), "GET", HTU, &token).sign();
    let b = proof(client(0), "GET", HTU, &token).sign();
    assert_eq!(
        kind(&chain, "GET", &dpop_headers(&token, &[&a, &b])).await,
        "dpop_proof_multiple"
    );
    assert_eq!(
        kind(&chain, "GET", &dpop_headers(&token, &[])).await,
        "dpop_proof_missing"
    );
    assert_eq!(
        kind(&chain, "GET", &dpop_headers(&token, &["x.y.z"])).await,
        "dpop_proof_malformed"
    );
}

#[tokio::test]
async fn duplicate_claims_in_a_proof_are_refused() {
    let token = bound_token(client(0));
    let chain = chain(config());
    let header =
        json!({"typ": "dpop+jwt", "alg": "ES256", "jwk": client(0).public_jwk()}).to_string();
    let body = format!(
        r#"{{"htm":"GET","htu":"https://evil.test/","htu":"{HTU}","iat":{NOW},"jti":"d","ath":"{}"}}"#,
        common::b64(&sha256(token.as_bytes()))
    );
    let p = client(0).sign_raw(&header, &body);
    assert_eq!(
        kind(&chain, "GET", &dpop_headers(&token, &[&p])).await,
        "dpop_proof_malformed"
    );
}

fn sha256(data: &[u8]) -> Vec<u8> {
    aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, data)
        .as_ref()
        .to_vec()
}

/// A store that cannot be reached.
struct Down;

impl ReplayStore for Down {
    fn insert_once<'a>(
        &'a self,
        _: &'a ReplayKey,
        _: i64,
        _: i64,
    ) -> BoxFuture<'a, Result<bool, ReplayError>> {
        Box::pin(async { Err(ReplayError::unavailable("down")) })
    }
}

/// The memory replay cache has 16 shards, each refusing new values when
/// full of live ones. A client grinds `jti`s whose digests all start with a
/// byte that is 0 modulo 16 (a public rule for shard 0): under the store's
/// secret shard key they spread, so the 32 fit a store of 16 a shard.
#[tokio::test]
async fn a_client_grinding_jtis_for_one_replay_shard_cannot_fill_it() {
    let store = MemoryReplayStore::new(16 * 16);
    let jkt = client(0).jwk_thumbprint().unwrap();
    let ground: Vec<ReplayKey> = (0u32..)
        .map(|i| ReplayKey::new(&[jkt.as_bytes(), format!("jti-{i}").as_bytes()]))
        .filter(|k| k.as_bytes()[0] % 16 == 0)
        .take(32)
        .collect();
    for k in &ground {
        // In one shard of 16 the 17th would be refused as full; spread,
        // a shard gets 2 on average (17 in one about once in 10^10).
        assert_eq!(store.insert_once(k, NOW + 60, NOW).await, Ok(true));
    }
    assert_eq!(store.len(), 32);
}

#[tokio::test]
async fn a_replay_store_error_fails_closed() {
    let token = bound_token(client(0));
    let chain = chain(config().shared_replay_store(Arc::new(Down)));
    let h = with_proof(&token, &proof(client(0), "GET", HTU, &token));
    let r = judge(&chain, "GET", &h).await.unwrap_err();
    assert_eq!((r.status(), r.kind()), (503, "replay_store_unavailable"));
}

#[tokio::test]
async fn both_schemes_are_challenged_when_no_credential_is_sent() {
    let chain = chain(config().algorithms([Algorithm::ES256, Algorithm::EdDSA]));
    let r = judge(&chain, "GET", &[]).await.unwrap_err();
    assert_eq!(
        r.challenges("api"),
        [
            "Bearer realm=\"api\"",
            "DPoP realm=\"api\", algs=\"ES256 EdDSA\""
        ]
    );
}

#[tokio::test]
async fn a_bad_origin_or_nonce_secret_is_a_build_error() {
    let v = || validator(&[key(Algorithm::ES256)]);
    assert!(DpopAuthenticator::new(v(), DpopConfig::new("api.test")).is_err());
    assert!(DpopAuthenticator::new(v(), DpopConfig::new("https://api.test/?q")).is_err());
    assert!(
        DpopAuthenticator::new(v(), config().nonces(vec![1; 16], Duration::from_secs(60))).is_err()
    );
    assert!(DpopAuthenticator::new(v(), config().algorithms([])).is_err());
    assert!(DpopAuthenticator::new(v(), DpopConfig::new(ORIGIN)).is_ok());
}

// ---------------------------------------------------------------------------
// Through the layer, over real HTTP.

async fn whoami(p: Principal) -> String {
    format!("{} by {}", p.subject(), p.authenticator())
}

async fn serve(chain: Chain) -> String {
    let app = Router::new().route(
        "/orders/7",
        get(whoami).route_layer(BearerAuth::from_chain(chain).layer()),
    );
    common::axum_server::serve_axum(app).await
}

async fn send(base: &str, headers: &[(String, String)]) -> reqwest::Response {
    common::dpop::send_get(&format!("{base}{PATH}"), headers).await
}

fn header_values(resp: &reqwest::Response, name: &str) -> Vec<String> {
    resp.headers()
        .get_all(name)
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn axum_behind_the_layer_takes_dpop_with_nonces_and_refuses_replays() {
    // The server is on 127.0.0.1:port; its external origin is api.test.
    let clock = ManualClock::new(NOW);
    let base = serve(chain(
        config()
            .clock(clock)
            .nonces(vec![5; 32], Duration::from_secs(300)),
    ))
    .await;
    let token = bound_token(client(0));

    // No credential: both schemes.
    let resp = send(&base, &[]).await;
    assert_eq!(resp.status(), 401);
    let ch = header_values(&resp, "www-authenticate");
    assert_eq!(ch.len(), 2, "{ch:?}");
    assert!(
        ch[1].starts_with("DPoP realm=\"api\", algs=\"ES256"),
        "{ch:?}"
    );

    // A proof without a nonce: 401 use_dpop_nonce, with the nonce.
    let resp = send(
        &base,
        &with_proof(&token, &proof(client(0), "GET", HTU, &token)),
    )
    .await;
    assert_eq!(resp.status(), 401);
    let ch = header_values(&resp, "www-authenticate");
    assert!(
        ch[0].starts_with("DPoP realm=\"api\", error=\"use_dpop_nonce\""),
        "{ch:?}"
    );
    let nonce = header_values(&resp, "dpop-nonce")
        .pop()
        .expect("a DPoP-Nonce header");

    // With it: through to the handler.
    let good = with_proof(&token, &proof(client(0), "GET", HTU, &token).nonce(&nonce));
    let resp = send(&base, &good).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.text().await.unwrap(), "alice by dpop");

    // The same proof again: a replay.
    let resp = send(&base, &good).await;
    assert_eq!(resp.status(), 401);
    let ch = header_values(&resp, "www-authenticate");
    assert!(ch[0].contains("error=\"invalid_dpop_proof\""), "{ch:?}");

    // The bound token alone, as Bearer: refused.
    let resp = send(
        &base,
        &[("authorization".into(), format!("Bearer {token}"))],
    )
    .await;
    assert_eq!(resp.status(), 401);
}

/// Under axum's `Router::nest`, the layer inside the nested router sees the
/// path without the prefix: the `htu` a proof must name is the URI the
/// client sent (axum's `OriginalUri`), never the shortened one, which
/// names another resource of the same origin.
#[tokio::test]
async fn under_axum_nest_the_htu_is_the_uri_the_client_sent() {
    let inner = Router::new().route(
        "/orders/7",
        get(whoami).route_layer(BearerAuth::from_chain(chain(config())).layer()),
    );
    let app = Router::new().nest("/shop", inner);
    let base = common::axum_server::serve_axum(app).await;
    let token = bound_token(client(0));
    let send = |htu: &str| {
        let url = format!("{base}/shop/orders/7");
        let h = with_proof(&token, &proof(client(0), "GET", htu, &token));
        async move { common::dpop::send_get(&url, &h).await }
    };
    let resp = send("https://api.test/shop/orders/7").await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.text().await.unwrap(), "alice by dpop");
    let resp = send("https://api.test/orders/7").await;
    assert_eq!(resp.status(), 401);
    let ch = header_values(&resp, "www-authenticate");
    assert!(ch[0].contains("error=\"invalid_dpop_proof\""), "{ch:?}");
}

#[cfg(feature = "actix")]
mod actix {
    use super::*;
    use actix_web::{App, web};
    use tokenwarden::middleware::actix::BearerAuthMiddleware;

    async fn who(p: Principal) -> String {
        format!("{} by {}", p.subject(), p.authenticator())
    }

    fn serve(chain: Chain) -> String {
        let auth = BearerAuth::from_chain(chain);
        common::actix::serve_actix(move || {
            App::new().service(
                web::resource(PATH)
                    .wrap(BearerAuthMiddleware::new(auth.clone()))
                    .route(web::get().to(who)),
            )
        })
    }

    #[tokio::test]
    async fn actix_behind_the_middleware_takes_dpop_and_sends_dpop_nonce() {
        let clock = ManualClock::new(NOW);
        let base = serve(chain(
            config()
                .clock(clock)
                .nonces(vec![6; 32], Duration::from_secs(300)),
        ));
        let token = bound_token(client(1));
        let resp = send(
            &base,
            &with_proof(&token, &proof(client(1), "GET", HTU, &token)),
        )
        .await;
        assert_eq!(resp.status(), 401);
        let nonce = header_values(&resp, "dpop-nonce")
            .pop()
            .expect("a DPoP-Nonce header");
        let good = with_proof(&token, &proof(client(1), "GET", HTU, &token).nonce(&nonce));
        let resp = send(&base, &good).await;
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.text().await.unwrap(), "alice by dpop");
        // A proof for another path.
        let other = with_proof(
            &token,
            &proof(client(1), "GET", "https://api.test/orders/8", &token).nonce(&nonce),
        );
        let resp = send(&base, &other).await;
        assert_eq!(resp.status(), 401);
        assert!(header_values(&resp, "www-authenticate")[0].contains("invalid_dpop_proof"));
    }
}

/// Attack (review finding): a stolen DPoP-bound token sent as `Bearer` to
/// a `BearerAuth::new` layer (no chain, JSON claims) is refused too, not
/// only through a chain's JWT authenticator.
#[tokio::test]
async fn bearer_auth_new_refuses_a_dpop_bound_token_sent_as_bearer() {
    use tower::{Layer, ServiceExt, service_fn};
    let layer = BearerAuth::new(validator(&[key(Algorithm::ES256)])).layer();
    let svc = layer.layer(service_fn(|_req: http::Request<String>| async {
        Ok::<_, std::convert::Infallible>(http::Response::new(String::from("reached")))
    }));
    let call = |token: String| {
        let svc = svc.clone();
        async move {
            let req = http::Request::get("/orders")
                .header("authorization", format!("Bearer {token}"))
                .body(String::new())
                .unwrap();
            svc.oneshot(req).await.unwrap().status()
        }
    };
    assert_eq!(
        call(bound_token(client(0))).await,
        401,
        "stolen bound token"
    );
    assert_eq!(call(key(Algorithm::ES256).token(&claims())).await, 200);
}
