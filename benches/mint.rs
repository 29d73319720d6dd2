//! The internal token minter: a cache hit (the same principal again within
//! half the lifetime) and a miss (a new token signed), for EdDSA and ES256.
//! `cargo bench --features mint --bench mint -- --warm-up-time 1 --measurement-time 3`
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use serde_json::json;
use tokenwarden::Algorithm;
use tokenwarden::mint::{MintInput, Minter};

fn minter(alg: Algorithm, cache_capacity: u64) -> Minter {
    Minter::builder()
        .generated_key(alg)
        .issuer("https://gateway.example")
        .audience("https://orders.internal")
        .cache_capacity(cache_capacity)
        .build()
        .expect("minter")
}

fn bench(c: &mut Criterion) {
    let tenant = json!("acme");
    let input = MintInput::new("alice@example.com", "api_key")
        .scopes(["orders:read", "orders:write"])
        .roles(["admin"])
        .claim("tenant", &tenant);
    let mut g = c.benchmark_group("mint");
    for (name, alg) in [("EdDSA", Algorithm::EdDSA), ("ES256", Algorithm::ES256)] {
        let cached = minter(alg, 10_000);
        cached.mint(&input).expect("mint");
        g.bench_function(format!("{name}/cache_hit"), |b| {
            b.iter(|| black_box(cached.mint(black_box(&input)).expect("mint")))
        });
        // No cache: every call signs a new token (the cost of a miss).
        let uncached = minter(alg, 0);
        g.bench_function(format!("{name}/cache_miss"), |b| {
            b.iter(|| black_box(uncached.mint(black_box(&input)).expect("mint")))
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
