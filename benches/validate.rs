//! Full validation vs the floor vs jsonwebtoken, per algorithm; key-set
//! lookup with 1, 10, 100 keys; parsing of large JWK Sets.
//!
//! `cargo bench --bench validate`. Groups are `<ALG>`, each with:
//! - `floor/aws-lc-rs`, `floor/ring`: the signature check alone over the same
//!   signing input, key pre-parsed where the library can (ring cannot);
//! - `floor/json`: base64url-decoding the payload and deserialising the claims;
//! - `tokenwarden`: `Validator::validate` into the same claims type;
//! - `jsonwebtoken`: `jsonwebtoken::decode` (aws-lc-rs backend) with the same
//!   checks (alg, iss, aud, exp).

#![allow(clippy::unwrap_used, missing_docs)]

mod common;

use std::hint::black_box;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use common::*;
use criterion::{Criterion, criterion_group, criterion_main};
use serde_json::Value;
use tokenwarden::testing::TestKey;
use tokenwarden::{Algorithm, CacheConfig, KeySet, Validator};

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
    for alg in ALGS {
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
            .no_cache()
            .build()
            .unwrap();
        assert!(validator.validate::<Claims>(&token).is_ok());
        let cached = Validator::builder()
            .issuer(ISS)
            .audience(AUD)
            .algorithms([alg])
            .keys(KeySet::from_jwks(key.jwks_json().as_bytes()).unwrap())
            .cache(CacheConfig::default())
            .build()
            .unwrap();
        assert!(cached.validate::<Claims>(&token).is_ok());
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
        // The same token again: a verified-token cache hit (feature `cache`).
        g.bench_function("tokenwarden/cache-hit", |b| {
            b.iter(|| cached.validate::<Claims>(black_box(&token)).unwrap())
        });
        // The same, answered with the shared value made the first time.
        assert!(cached.validate_shared::<Claims>(&token).is_ok());
        g.bench_function("tokenwarden/cache-hit-shared", |b| {
            b.iter(|| cached.validate_shared::<Claims>(black_box(&token)).unwrap())
        });
        g.bench_function("jsonwebtoken", |b| {
            b.iter(|| jsonwebtoken::decode::<Claims>(black_box(&token), &jk, &jv).unwrap())
        });
        g.finish();
    }
}

/// Key lookup: a set of 1, 10 and 100 ES256 keys, the token's kid last;
/// and parsing large JWK Sets (256 EC keys, 64 RSA keys).
fn keysets(c: &mut Criterion) {
    let keys: Vec<TestKey> = (0..100)
        .map(|i| TestKey::generate(Algorithm::ES256, format!("key-{i:03}")).unwrap())
        .collect();
    let mut g = c.benchmark_group("keyset");
    for n in [1usize, 10, 100] {
        let refs: Vec<&TestKey> = keys[..n].iter().collect();
        let set = KeySet::from_jwks(tokenwarden::testing::jwks_json(&refs).as_bytes()).unwrap();
        let validator = Validator::builder()
            .issuer(ISS)
            .audience(AUD)
            .keys(set)
            .no_cache()
            .build()
            .unwrap();
        let token = keys[n - 1].token(&claims());
        assert!(validator.validate::<Claims>(&token).is_ok());
        g.bench_function(format!("ES256 validate, {n} keys"), |b| {
            b.iter(|| validator.validate::<Claims>(black_box(&token)).unwrap())
        });
    }
    let ec: Vec<TestKey> = (0..256)
        .map(|i| TestKey::generate(Algorithm::ES256, format!("ec-{i}")).unwrap())
        .collect();
    let rsa: Vec<TestKey> = (0..64)
        .map(|i| TestKey::generate(Algorithm::RS256, format!("rsa-{i}")).unwrap())
        .collect();
    for (name, set) in [("256 ES256 keys", &ec), ("64 RS256 keys", &rsa)] {
        let refs: Vec<&TestKey> = set.iter().collect();
        let text = tokenwarden::testing::jwks_json(&refs);
        g.bench_function(
            format!("parse JWKS, {name} ({} KiB)", text.len() / 1024),
            |b| b.iter(|| KeySet::from_jwks(black_box(text.as_bytes())).unwrap()),
        );
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(40);
    targets = bench, keysets
}
criterion_main!(benches);
