//! Fixtures for DPoP (RFC 9449): client keys, bound tokens, proofs at
//! `NOW`, requests as header lists.
use std::sync::OnceLock;

use serde_json::json;
use tokenwarden::authn::Chain;
use tokenwarden::authn::dpop::{DpopAuthenticator, DpopConfig};
use tokenwarden::authn::jwt::JwtAuthenticator;
use tokenwarden::testing::{DpopProof, TestKey};
use tokenwarden::{Algorithm, FixedClock};

use super::{NOW, claims, key, validator};

/// The server's external origin.
pub const ORIGIN: &str = "https://api.test";

/// Client keys (the proof signers): `n` picks one of three.
pub fn client(n: usize) -> &'static TestKey {
    static KEYS: OnceLock<Vec<TestKey>> = OnceLock::new();
    let keys = KEYS.get_or_init(|| {
        vec![
            TestKey::generate(Algorithm::ES256, "client-0").unwrap(),
            TestKey::generate(Algorithm::EdDSA, "client-1").unwrap(),
            TestKey::generate(Algorithm::ES256, "client-2").unwrap(),
        ]
    });
    &keys[n]
}

/// The issuer's key for access tokens.
pub fn issuer_key() -> &'static TestKey {
    key(Algorithm::ES256)
}

/// An access token for `alice` bound to `client` (`cnf.jkt`).
pub fn bound_token(client: &TestKey) -> String {
    let mut c = claims();
    c["cnf"] = json!({"jkt": client.jwk_thumbprint().unwrap()});
    c["scope"] = json!("orders:read");
    issuer_key().token(&c)
}

/// A proof by `client` for `htm` `htu`, at `NOW`, for `token`.
pub fn proof<'k>(client: &'k TestKey, htm: &str, htu: &str, token: &str) -> DpopProof<'k> {
    DpopProof::new(client, htm, htu)
        .iat(NOW)
        .access_token(token)
}

/// The default configuration at `NOW`.
pub fn config() -> DpopConfig {
    DpopConfig::new(ORIGIN).clock(FixedClock(NOW))
}

pub fn dpop(config: DpopConfig) -> DpopAuthenticator {
    DpopAuthenticator::new(validator(&[issuer_key()]), config).unwrap()
}

/// Bearer JWTs and DPoP, as a service accepting both has them.
pub fn chain(config: DpopConfig) -> Chain {
    Chain::new()
        .jwt(JwtAuthenticator::new(validator(&[issuer_key()])))
        .dpop(dpop(config))
}

/// `Authorization: DPoP <token>` and a `DPoP` header per proof.
pub fn dpop_headers(token: &str, proofs: &[&str]) -> Vec<(String, String)> {
    let mut h = vec![("authorization".to_owned(), format!("DPoP {token}"))];
    for p in proofs {
        h.push(("dpop".to_owned(), (*p).to_owned()));
    }
    h
}
