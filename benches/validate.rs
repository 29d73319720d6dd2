//! Full validation vs the floor vs jsonwebtoken, per algorithm.
//!
//! `cargo bench --bench validate`. Groups are `<ALG>`, each with:
//! - `floor/aws-lc-rs`, `floor/ring`: the signature check alone over the same
//!   signing input, key pre-parsed where the library can (ring cannot);
//! - `floor/json`: base64url-decoding the payload and deserialising the claims;
//! - `tokenwarden`: `Validator::validate` into the same claims type;
//! - `jsonwebtoken`: `jsonwebtoken::decode` (aws-lc-rs backend) with the same
//!   checks (alg, iss, aud, exp).

#![allow(clippy::unwrap_used, missing_docs)]

use std::hint::black_box;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use criterion::{Criterion, criterion_group, criterion_main};
use serde::Deserialize;
use serde_json::{Value, json};
use tokenwarden::testing::TestKey;
use tokenwarden::{Algorithm, KeySet, Validator};

const ISS: &str = "https://idp.example.com";
const AUD: &str = "https://api.example.com";

#[derive(Deserialize)]
#[allow(dead_code)]
struct Claims {
    iss: String,
    aud: String,
    sub: String,
    exp: u64,
    iat: u64,
    scope: String,
}

fn claims() -> Value {
    json!({
        "iss": ISS, "aud": AUD, "sub": "user-1234567890", "exp": 4_102_444_800u64,
        "iat": 1_700_000_000u64, "scope": "orders:read orders:write profile",
        "jti": "9f1c2a7e-5b3d-4e8a-a1f0-3c2b1d4e5f60"
    })
}

fn unb64(s: &str) -> Vec<u8> {
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
    der_len(out, b.len() + pad as usize);
    if pad {
        out.push(0);
    }
    out.extend_from_slice(b);
}

/// The key bytes both backends take: PKCS#1 DER, SEC1 point, raw Ed25519, HMAC secret.
fn public_bytes(jwk: &Value) -> Vec<u8> {
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
type Floor = Box<dyn Fn(&[u8], &[u8]) -> bool>;

fn aws_floor(alg: Algorithm, key: &[u8]) -> Floor {
    use aws_lc_rs::{hmac, signature as s};
    let p: &'static dyn s::VerificationAlgorithm = match alg {
        Algorithm::HS256 => {
            let k = hmac::Key::new(hmac::HMAC_SHA256, key);
            return Box::new(move |m, sig| hmac::verify(&k, m, sig).is_ok());
        }
        Algorithm::RS256 => &s::RSA_PKCS1_2048_8192_SHA256,
        Algorithm::PS256 => &s::RSA_PSS_2048_8192_SHA256,
        Algorithm::ES256 => &s::ECDSA_P256_SHA256_FIXED,
        Algorithm::ES384 => &s::ECDSA_P384_SHA384_FIXED,
        Algorithm::EdDSA => &s::ED25519,
        _ => unreachable!(),
    };
    let k = s::ParsedPublicKey::new(p, key).unwrap();
    Box::new(move |m, sig| k.verify_sig(m, sig).is_ok())
}

fn ring_floor(alg: Algorithm, key: &[u8]) -> Floor {
    use ring::{hmac, signature as s};
    let p: &'static dyn s::VerificationAlgorithm = match alg {
        Algorithm::HS256 => {
            let k = hmac::Key::new(hmac::HMAC_SHA256, key);
            return Box::new(move |m, sig| hmac::verify(&k, m, sig).is_ok());
        }
        Algorithm::RS256 => &s::RSA_PKCS1_2048_8192_SHA256,
        Algorithm::PS256 => &s::RSA_PSS_2048_8192_SHA256,
        Algorithm::ES256 => &s::ECDSA_P256_SHA256_FIXED,
        Algorithm::ES384 => &s::ECDSA_P384_SHA384_FIXED,
        Algorithm::EdDSA => &s::ED25519,
        _ => unreachable!(),
    };
    let k = s::UnparsedPublicKey::new(p, key.to_vec());
    Box::new(move |m, sig| k.verify(m, sig).is_ok())
}

fn jsonwebtoken_setup(
    alg: Algorithm,
    jwk: &Value,
) -> (jsonwebtoken::DecodingKey, jsonwebtoken::Validation) {
    use jsonwebtoken::{Algorithm as A, DecodingKey};
    let s = |m: &str| jwk[m].as_str().unwrap();
    let (key, a) = match alg {
        Algorithm::HS256 => (DecodingKey::from_secret(&unb64(s("k"))), A::HS256),
        Algorithm::RS256 => (
            DecodingKey::from_rsa_components(s("n"), s("e")).unwrap(),
            A::RS256,
        ),
        Algorithm::PS256 => (
            DecodingKey::from_rsa_components(s("n"), s("e")).unwrap(),
            A::PS256,
        ),
        Algorithm::ES256 => (
            DecodingKey::from_ec_components(s("x"), s("y")).unwrap(),
            A::ES256,
        ),
        Algorithm::ES384 => (
            DecodingKey::from_ec_components(s("x"), s("y")).unwrap(),
            A::ES384,
        ),
        Algorithm::EdDSA => (DecodingKey::from_ed_components(s("x")).unwrap(), A::EdDSA),
        _ => unreachable!(),
    };
    let mut v = jsonwebtoken::Validation::new(a);
    v.set_issuer(&[ISS]);
    v.set_audience(&[AUD]);
    v.leeway = 60;
    (key, v)
}

fn bench(c: &mut Criterion) {
    for alg in [
        Algorithm::HS256,
        Algorithm::RS256,
        Algorithm::PS256,
        Algorithm::ES256,
        Algorithm::ES384,
        Algorithm::EdDSA,
    ] {
        let key = TestKey::generate(alg, "bench-key").unwrap();
        let jwk = key.jwk();
        let token = key.token(&claims());
        let (input, sig_b64) = token.rsplit_once('.').unwrap();
        let sig = unb64(sig_b64);
        let payload_b64 = input.split('.').nth(1).unwrap();
        let raw = public_bytes(&jwk);

        let validator = Validator::builder()
            .issuer(ISS)
            .audience(AUD)
            .algorithms([alg])
            .keys(KeySet::from_jwks(key.jwks_json().as_bytes()).unwrap())
            .build()
            .unwrap();
        assert!(validator.validate::<Claims>(&token).is_ok());
        let aws = aws_floor(alg, &raw);
        let ring = ring_floor(alg, &raw);
        assert!(aws(input.as_bytes(), &sig) && ring(input.as_bytes(), &sig));
        let (jk, jv) = jsonwebtoken_setup(alg, &jwk);
        assert!(jsonwebtoken::decode::<Claims>(&token, &jk, &jv).is_ok());

        let mut g = c.benchmark_group(alg.as_str());
        g.bench_function("floor/aws-lc-rs", |b| {
            b.iter(|| aws(black_box(input.as_bytes()), black_box(&sig)))
        });
        g.bench_function("floor/ring", |b| {
            b.iter(|| ring(black_box(input.as_bytes()), black_box(&sig)))
        });
        g.bench_function("floor/json", |b| {
            b.iter(|| {
                let bytes = URL_SAFE_NO_PAD.decode(black_box(payload_b64)).unwrap();
                serde_json::from_slice::<Claims>(&bytes).unwrap()
            })
        });
        g.bench_function("tokenwarden", |b| {
            b.iter(|| validator.validate::<Claims>(black_box(&token)).unwrap())
        });
        g.bench_function("jsonwebtoken", |b| {
            b.iter(|| jsonwebtoken::decode::<Claims>(black_box(&token), &jk, &jv).unwrap())
        });
        g.finish();
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(40);
    targets = bench
}
criterion_main!(benches);
