//! Shared by the benches: the claims, the token, and the floors (each
//! backend verifying the signing input with the key prepared once).
#![allow(clippy::unwrap_used, dead_code)]

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Deserialize;
use serde_json::{Value, json};
use tokenwarden::Algorithm;

pub const ISS: &str = "https://idp.example.com";
pub const AUD: &str = "https://api.example.com";

/// The algorithms with targets in the issues.
pub const ALGS: [Algorithm; 6] = [
    Algorithm::HS256,
    Algorithm::RS256,
    Algorithm::PS256,
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::EdDSA,
];

/// A typical access token's claims, as a caller's type.
#[derive(Deserialize)]
pub struct Claims {
    pub iss: String,
    pub aud: String,
    pub sub: String,
    pub exp: u64,
    pub iat: u64,
    pub scope: String,
}

pub fn claims() -> Value {
    json!({
        "iss": ISS, "aud": AUD, "sub": "user-1234567890", "exp": 4_102_444_800u64,
        "iat": 1_700_000_000u64, "scope": "orders:read orders:write profile",
        "jti": "9f1c2a7e-5b3d-4e8a-a1f0-3c2b1d4e5f60"
    })
}

pub fn unb64(s: &str) -> Vec<u8> {
    URL_SAFE_NO_PAD.decode(s).unwrap()
}

fn der_len(out: &mut Vec<u8>, len: usize) {
    if len < 0x80 {
        out.push(len as u8);
    } else if len < 0x100 {
        out.extend([0x81, len as u8]);
    } else {
        out.extend([0x82, (len >> 8) as u8, len as u8]);
    }
}

fn der_uint(out: &mut Vec<u8>, b: &[u8]) {
    out.push(2);
    let pad = b[0] & 0x80 != 0;
    der_len(out, b.len() + usize::from(pad));
    if pad {
        out.push(0);
    }
    out.extend_from_slice(b);
}

/// The key bytes both backends take: PKCS#1 DER, SEC1 point, raw Ed25519, HMAC secret.
pub fn public_bytes(jwk: &Value) -> Vec<u8> {
    let f = |m: &str| unb64(jwk[m].as_str().unwrap());
    match jwk["kty"].as_str().unwrap() {
        "RSA" => {
            let mut body = Vec::new();
            der_uint(&mut body, &f("n"));
            der_uint(&mut body, &f("e"));
            let mut der = vec![0x30];
            der_len(&mut der, body.len());
            der.extend(body);
            der
        }
        "EC" => [vec![4], f("x"), f("y")].concat(),
        "OKP" => f("x"),
        _ => f("k"),
    }
}

/// A signature check over (message, signature).
pub type Floor = Box<dyn Fn(&[u8], &[u8]) -> bool>;

/// Picks the same algorithm constant from either backend's module.
macro_rules! params {
    ($m:path, $alg:expr) => {{
        use $m as s;
        let p: &'static dyn s::VerificationAlgorithm = match $alg {
            Algorithm::RS256 => &s::RSA_PKCS1_2048_8192_SHA256,
            Algorithm::PS256 => &s::RSA_PSS_2048_8192_SHA256,
            Algorithm::ES256 => &s::ECDSA_P256_SHA256_FIXED,
            Algorithm::ES384 => &s::ECDSA_P384_SHA384_FIXED,
            Algorithm::EdDSA => &s::ED25519,
            other => unreachable!("no floor for {other}"),
        };
        p
    }};
}

/// aws-lc-rs with the key parsed once (`ParsedPublicKey`, `hmac::Key`).
pub fn aws_floor(alg: Algorithm, key: &[u8]) -> Floor {
    use aws_lc_rs::hmac;
    if alg == Algorithm::HS256 {
        let k = hmac::Key::new(hmac::HMAC_SHA256, key);
        return Box::new(move |m, sig| hmac::verify(&k, m, sig).is_ok());
    }
    let k = aws_lc_rs::signature::ParsedPublicKey::new(params!(aws_lc_rs::signature, alg), key)
        .unwrap();
    Box::new(move |m, sig| k.verify_sig(m, sig).is_ok())
}

/// ring (which has no parsed public-key type; HMAC keys are prepared once).
pub fn ring_floor(alg: Algorithm, key: &[u8]) -> Floor {
    use ring::hmac;
    if alg == Algorithm::HS256 {
        let k = hmac::Key::new(hmac::HMAC_SHA256, key);
        return Box::new(move |m, sig| hmac::verify(&k, m, sig).is_ok());
    }
    let k = ring::signature::UnparsedPublicKey::new(params!(ring::signature, alg), key.to_vec());
    Box::new(move |m, sig| k.verify(m, sig).is_ok())
}

/// The faster backend per `benches/validate.rs`: ring for HMAC, aws-lc-rs for the rest.
pub fn best_floor(alg: Algorithm, key: &[u8]) -> Floor {
    if alg == Algorithm::HS256 {
        ring_floor(alg, key)
    } else {
        aws_floor(alg, key)
    }
}
