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

/// An RS256 proof for `htm` `htu` at `NOW` over `token`, carrying `jwk`
/// (the public key) and signed by `sign`: for RSA keys of sizes
/// `TestKey` does not make (the proof key size limits).
pub fn rsa_proof(
    jwk: serde_json::Value,
    sign: impl Fn(&[u8]) -> Vec<u8>,
    htm: &str,
    htu: &str,
    token: &str,
) -> String {
    use base64::Engine as _;
    let b64 = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
    let header = json!({"typ": "dpop+jwt", "alg": "RS256", "jwk": jwk});
    let ath = b64(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, token.as_bytes()).as_ref());
    let payload = json!({"htm": htm, "htu": htu, "iat": NOW, "jti": format!("rsa-{}", jwk["n"].as_str().unwrap_or("")[..16].to_owned()), "ath": ath});
    let input = format!(
        "{}.{}",
        b64(header.to_string().as_bytes()),
        b64(payload.to_string().as_bytes())
    );
    let sig = sign(input.as_bytes());
    format!("{input}.{}", b64(&sig))
}

/// A fresh RSA key pair of `size` (aws-lc-rs makes 2048, 3072, 4096 and
/// 8192 bits): its public JWK and a RS256 signer.
pub fn rsa_key(size: aws_lc_rs::rsa::KeySize) -> (serde_json::Value, impl Fn(&[u8]) -> Vec<u8>) {
    use aws_lc_rs::signature::KeyPair as _;
    use base64::Engine as _;
    let b64 = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
    let kp = aws_lc_rs::rsa::KeyPair::generate(size).expect("RSA key generation");
    let pk = kp.public_key();
    let jwk = json!({
        "kty": "RSA",
        "n": b64(pk.modulus().big_endian_without_leading_zero()),
        "e": b64(pk.exponent().big_endian_without_leading_zero()),
    });
    let sign = move |input: &[u8]| {
        let mut sig = vec![0; kp.public_modulus_len()];
        kp.sign(
            &aws_lc_rs::signature::RSA_PKCS1_SHA256,
            &aws_lc_rs::rand::SystemRandom::new(),
            input,
            &mut sig,
        )
        .expect("RSA signing");
        sig
    };
    (jwk, sign)
}

/// `GET url` with `headers` (a request as [`dpop_headers`] makes them).
pub async fn send_get(url: &str, headers: &[(String, String)]) -> reqwest::Response {
    let mut req = reqwest::Client::new().get(url);
    for (k, v) in headers {
        req = req.header(k, v);
    }
    req.send().await.unwrap()
}
