//! Full validation ÷ floor, measured interleaved so that machine noise hits
//! both sides alike: `cargo bench --bench ratio`.
//!
//! For each algorithm, 101 rounds; each round times a batch of floor
//! verifications (the faster backend, key pre-parsed) and a batch of full
//! validations back to back, in alternating order. Prints the median ratio
//! per algorithm. For HS256 the floor also includes decoding the payload into
//! the same claims type (the "floor plus JSON decoding").
#![allow(clippy::unwrap_used, missing_docs)]

mod common;

use std::hint::black_box;
use std::time::Instant;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use common::*;
use tokenwarden::testing::TestKey;
use tokenwarden::{Algorithm, KeySet, Validator};

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
    // `RATIO_ALGS=HS256,ES256` limits the run to those algorithms.
    let only = std::env::var("RATIO_ALGS").ok();
    for alg in ALGS {
        if only
            .as_deref()
            .is_some_and(|o| !o.split(',').any(|a| a == alg.as_str()))
        {
            continue;
        }
        let key = TestKey::generate(alg, "k").unwrap();
        let token = key.token(&claims());
        let v = Validator::builder()
            .issuer(ISS)
            .audience(AUD)
            .algorithms([alg])
            .keys(KeySet::from_jwks(key.jwks_json().as_bytes()).unwrap())
            .no_cache()
            .build()
            .unwrap();
        let (input, sig) = token.rsplit_once('.').unwrap();
        let sig = unb64(sig);
        let payload = input.split('.').nth(1).unwrap();
        // The floor: the faster backend's verifier, key pre-parsed, on the
        // same signing input.
        let floor = best_floor(alg, &public_bytes(&key.jwk()));
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
