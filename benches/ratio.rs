//! Full validation ÷ floor, measured interleaved so that machine noise hits
//! both sides alike: `cargo bench --bench ratio`.
//!
//! For each algorithm, 101 rounds; each round times a batch of floor
//! verifications (the faster backend, key pre-parsed) and a batch of full
//! validations back to back, in alternating order. Prints the median ratio
//! per algorithm. For HS256 the floor also includes decoding the payload into
//! the same claims type (the "floor plus JSON decoding").
#![allow(clippy::unwrap_used, missing_docs)]

use std::hint::black_box;
use std::time::Instant;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Deserialize;
use serde_json::json;
use tokenwarden::testing::TestKey;
use tokenwarden::{Algorithm, KeySet, Validator};

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

fn time<F: FnMut()>(n: u32, mut f: F) -> f64 {
    let t = Instant::now();
    for _ in 0..n {
        f();
    }
    t.elapsed().as_secs_f64() / f64::from(n)
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    println!("| alg | floor | full validation | ratio (median of 101 interleaved rounds) |");
    println!("|---|---|---|---|");
    for alg in [
        Algorithm::HS256,
        Algorithm::RS256,
        Algorithm::PS256,
        Algorithm::ES256,
        Algorithm::ES384,
        Algorithm::EdDSA,
    ] {
        let key = TestKey::generate(alg, "k").unwrap();
        let token = key.token(&json!({
            "iss": "https://idp.example.com", "aud": "https://api.example.com",
            "sub": "user-1234567890", "exp": 4_102_444_800u64, "iat": 1_700_000_000u64,
            "scope": "orders:read orders:write profile", "jti": "9f1c2a7e-5b3d-4e8a-a1f0-3c2b1d4e5f60"
        }));
        let v = Validator::builder()
            .issuer("https://idp.example.com")
            .audience("https://api.example.com")
            .algorithms([alg])
            .keys(KeySet::from_jwks(key.jwks_json().as_bytes()).unwrap())
            .build()
            .unwrap();
        let (input, sig) = token.rsplit_once('.').unwrap();
        let sig = URL_SAFE_NO_PAD.decode(sig).unwrap();
        let payload = input.split('.').nth(1).unwrap();
        // The floor: the faster backend's verifier, key pre-parsed, on the
        // same signing input.
        let floor = floor_fn(alg, &key);
        assert!(floor(input.as_bytes(), &sig));
        let n = if alg == Algorithm::HS256 { 2000 } else { 40 };
        let mut ratios = Vec::new();
        let (mut tf, mut tv) = (Vec::new(), Vec::new());
        for round in 0..101 {
            let f = || {
                time(n, || {
                    black_box(floor(black_box(input.as_bytes()), black_box(&sig)));
                    if alg == Algorithm::HS256 {
                        let bytes = URL_SAFE_NO_PAD.decode(black_box(payload)).unwrap();
                        black_box(serde_json::from_slice::<Claims>(&bytes).unwrap());
                    }
                })
            };
            let g = || {
                time(n, || {
                    drop(black_box(v.validate::<Claims>(black_box(&token)).unwrap()))
                })
            };
            let (a, b) = if round % 2 == 0 {
                let a = f();
                (a, g())
            } else {
                let b = g();
                (f(), b)
            };
            ratios.push(b / a);
            tf.push(a);
            tv.push(b);
        }
        let med = |v: &mut Vec<f64>| {
            v.sort_by(|a, b| a.partial_cmp(b).unwrap());
            v[v.len() / 2]
        };
        println!(
            "| {alg} | {:.2} µs | {:.2} µs | {:.3}× |",
            med(&mut tf) * 1e6,
            med(&mut tv) * 1e6,
            med(&mut ratios)
        );
    }
}

/// The faster backend per the `validate` bench: ring for HMAC, aws-lc-rs
/// (pre-parsed) for the rest.
type Floor = Box<dyn Fn(&[u8], &[u8]) -> bool>;

fn floor_fn(alg: Algorithm, key: &TestKey) -> Floor {
    let jwk = key.jwk();
    let f = |m: &str| URL_SAFE_NO_PAD.decode(jwk[m].as_str().unwrap()).unwrap();
    use aws_lc_rs::signature as s;
    let (params, bytes): (&'static dyn s::VerificationAlgorithm, Vec<u8>) = match alg {
        Algorithm::HS256 => {
            let k = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &f("k"));
            return Box::new(move |m, sig| ring::hmac::verify(&k, m, sig).is_ok());
        }
        Algorithm::RS256 | Algorithm::PS256 => {
            let n = f("n");
            let e = f("e");
            let params: &'static dyn s::VerificationAlgorithm = if alg == Algorithm::RS256 {
                &s::RSA_PKCS1_2048_8192_SHA256
            } else {
                &s::RSA_PSS_2048_8192_SHA256
            };
            (params, rsa_der(&n, &e))
        }
        Algorithm::ES256 => (
            &s::ECDSA_P256_SHA256_FIXED,
            [vec![4], f("x"), f("y")].concat(),
        ),
        Algorithm::ES384 => (
            &s::ECDSA_P384_SHA384_FIXED,
            [vec![4], f("x"), f("y")].concat(),
        ),
        _ => (&s::ED25519, f("x")),
    };
    let k = s::ParsedPublicKey::new(params, bytes).unwrap();
    Box::new(move |m, sig| k.verify_sig(m, sig).is_ok())
}

fn rsa_der(n: &[u8], e: &[u8]) -> Vec<u8> {
    fn len(out: &mut Vec<u8>, l: usize) {
        if l < 0x80 {
            out.push(l as u8);
        } else if l < 0x100 {
            out.extend([0x81, l as u8]);
        } else {
            out.extend([0x82, (l >> 8) as u8, l as u8]);
        }
    }
    fn int(out: &mut Vec<u8>, b: &[u8]) {
        out.push(2);
        let pad = b[0] & 0x80 != 0;
        len(out, b.len() + usize::from(pad));
        if pad {
            out.push(0);
        }
        out.extend_from_slice(b);
    }
    let mut body = Vec::new();
    int(&mut body, n);
    int(&mut body, e);
    let mut der = vec![0x30];
    len(&mut der, body.len());
    der.extend(body);
    der
}
