//! The authenticator chain's JWT path against the validator alone, on the
//! same token: what the chain (request view, bearer parsing, principal)
//! adds. `cargo bench --bench authn -- --warm-up-time 1 --measurement-time 3`.
//!
//! Groups `authn/<ALG>` (the verified-token cache on, the default) and
//! `authn/<ALG>/no_cache`, each with `validate` (`Validator::validate` into
//! a JSON object, as `BearerAuth` does by default), `validate_shared` (the
//! call `BearerAuth` makes) and `chain` (a `Chain` of one JWT
//! authenticator, its future polled once: it completes on the first poll).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::future::Future;
use std::hint::black_box;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use serde_json::{Map, Value, json};
use tokenwarden::authn::jwt::JwtAuthenticator;
use tokenwarden::authn::{Chain, RequestView};
use tokenwarden::testing::TestKey;
use tokenwarden::{Algorithm, KeySet, Validator};

const ISS: &str = "https://idp.example.com";
const AUD: &str = "https://api.example.com";

fn bench(c: &mut Criterion) {
    for alg in [Algorithm::HS256, Algorithm::ES256] {
        let key = TestKey::generate(alg, "bench-key").unwrap();
        let token = key.token(&json!({
            "iss": ISS, "aud": AUD, "sub": "alice", "scope": "orders:read orders:write",
            "iat": 1_700_000_000, "exp": 4_000_000_000i64
        }));
        for cache in [true, false] {
            let builder = Validator::builder()
                .issuer(ISS)
                .audience(AUD)
                .keys(KeySet::from_jwks(key.jwks_json().as_bytes()).unwrap());
            let builder = if cache { builder } else { builder.no_cache() };
            let validator = builder.build().unwrap();
            let chain = Chain::new().jwt(JwtAuthenticator::new(validator.clone()));
            let header = format!("Bearer {token}");
            let headers = [("authorization", header.as_str())];
            let waker = Waker::noop();

            let name = if cache { "" } else { "/no_cache" };
            let mut g = c.benchmark_group(format!("authn/{}{name}", alg.as_str()));
            g.bench_function("validate", |b| {
                b.iter(|| {
                    validator
                        .validate::<Map<String, Value>>(black_box(&token))
                        .unwrap()
                })
            });
            g.bench_function("validate_shared", |b| {
                b.iter(|| {
                    validator
                        .validate_shared::<Map<String, Value>>(black_box(&token))
                        .unwrap()
                })
            });
            g.bench_function("chain", |b| {
                b.iter(|| {
                    let req = RequestView::new("GET", "/orders", black_box(&headers));
                    let mut f = std::pin::pin!(chain.authenticate(&req));
                    match f.as_mut().poll(&mut Context::from_waker(waker)) {
                        Poll::Ready(p) => p.unwrap(),
                        Poll::Pending => panic!("the JWT path completes on its first poll"),
                    }
                })
            });
            g.finish();
        }
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default().warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(3));
    targets = bench
}
criterion_main!(benches);
