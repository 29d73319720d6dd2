//! A DPoP-protected request (RFC 9449) against a bearer one, through the
//! same chain, on the same ES256 access token: what the proof check adds.
//! `cargo bench --bench dpop -- --warm-up-time 1 --measurement-time 3`.
//!
//! Group `dpop`: `bearer` (a chain of a JWT and a DPoP authenticator, a
//! `Bearer` token), `dpop_es256` and `dpop_eddsa` (the same chain, a
//! DPoP-bound token with a fresh proof each time: the proof's key is
//! parsed and its signature verified, one signature verification), and
//! `dpop_es256_full_replay_cache` (the same with 100,000 proofs already in
//! the replay cache: a hash lookup, nothing that grows with it). The access
//! token is in the validator's verified-token cache in every case, as a
//! client's repeated token is; proofs are signed outside the measurement.
//! With `--features tower`, `dpop_es256_layer` is `dpop_es256` through a
//! `BearerAuth::from_chain` layer.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::future::Future;
use std::hint::black_box;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use serde_json::json;
use tokenwarden::authn::dpop::{DpopAuthenticator, DpopConfig};
use tokenwarden::authn::jwt::JwtAuthenticator;
use tokenwarden::authn::{Chain, HeaderSource, Principal, Refusal, RequestView};
use tokenwarden::state::replay::MemoryReplayStore;
use tokenwarden::testing::{DpopProof, TestKey};
use tokenwarden::{Algorithm, FixedClock, KeySet, Validator};

const ISS: &str = "https://idp.example.com";
const AUD: &str = "https://api.example.com";
const NOW: i64 = 1_700_000_000;
const HTU: &str = "https://api.example.com/orders";

fn judge<H: HeaderSource>(chain: &Chain, headers: &H) -> Result<Principal, Refusal> {
    let req = RequestView::new("GET", "/orders", headers);
    let mut f = std::pin::pin!(chain.authenticate(&req));
    match f.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(p) => p,
        Poll::Pending => panic!("the memory store's path completes on its first poll"),
    }
}

fn chain(validator: &Validator, prefill: u32) -> Chain {
    let store = MemoryReplayStore::new(4_000_000);
    let dpop = DpopAuthenticator::new(
        validator.clone(),
        DpopConfig::new(AUD)
            .clock(FixedClock(NOW))
            .replay_store(store),
    )
    .unwrap();
    let chain = Chain::new()
        .jwt(JwtAuthenticator::new(validator.clone()))
        .dpop(dpop);
    if prefill > 0 {
        // Fill the replay cache with real accepted proofs.
        let client = TestKey::generate(Algorithm::EdDSA, "filler").unwrap();
        let token = bound(&client, validator_key());
        for i in 0..prefill {
            let proof = DpopProof::new(&client, "GET", HTU)
                .iat(NOW)
                .jti(&format!("fill-{i}"))
                .access_token(&token)
                .sign();
            let auth = format!("DPoP {token}");
            judge(&chain, &[("authorization", &auth), ("dpop", &proof)]).unwrap();
        }
    }
    chain
}

fn validator_key() -> &'static TestKey {
    static KEY: std::sync::OnceLock<TestKey> = std::sync::OnceLock::new();
    KEY.get_or_init(|| TestKey::generate(Algorithm::ES256, "issuer").unwrap())
}

fn claims() -> serde_json::Value {
    json!({"iss": ISS, "aud": AUD, "sub": "alice", "scope": "orders:read",
        "iat": NOW, "exp": 4_000_000_000i64})
}

fn bound(client: &TestKey, issuer: &TestKey) -> String {
    let mut c = claims();
    c["cnf"] = json!({"jkt": client.jwk_thumbprint().unwrap()});
    issuer.token(&c)
}

fn bench(c: &mut Criterion) {
    let issuer = validator_key();
    let validator = Validator::builder()
        .issuer(ISS)
        .audience(AUD)
        .clock(FixedClock(NOW))
        .keys(KeySet::from_jwks(issuer.jwks_json().as_bytes()).unwrap())
        .build()
        .unwrap();
    let mut g = c.benchmark_group("dpop");

    let plain = issuer.token(&claims());
    let bearer = format!("Bearer {plain}");
    let chain0 = chain(&validator, 0);
    g.bench_function("bearer", |b| {
        b.iter(|| judge(&chain0, black_box(&[("authorization", bearer.as_str())])).unwrap())
    });

    for (name, alg, prefill) in [
        ("dpop_es256", Algorithm::ES256, 0),
        ("dpop_eddsa", Algorithm::EdDSA, 0),
        ("dpop_es256_full_replay_cache", Algorithm::ES256, 100_000),
    ] {
        let client = TestKey::generate(alg, "client").unwrap();
        let token = bound(&client, issuer);
        let auth = format!("DPoP {token}");
        let chain = chain(&validator, prefill);
        let mut n = 0u64;
        g.bench_function(name, |b| {
            b.iter_batched(
                || {
                    n += 1;
                    DpopProof::new(&client, "GET", HTU)
                        .iat(NOW)
                        .jti(&format!("{n}"))
                        .access_token(&token)
                        .sign()
                },
                |proof| {
                    judge(
                        &chain,
                        black_box(&[("authorization", auth.as_str()), ("dpop", proof.as_str())]),
                    )
                    .unwrap()
                },
                BatchSize::SmallInput,
            )
        });
    }
    #[cfg(feature = "tower")]
    layer(&mut g, &validator, issuer);
    g.finish();
}

/// `dpop_es256_layer`: `dpop_es256` through a `BearerAuth::from_chain`
/// tower layer (with `--features tower`): what the layer adds, the ledger
/// of recorded proofs that nested layers read included.
#[cfg(feature = "tower")]
fn layer(
    g: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    validator: &Validator,
    issuer: &TestKey,
) {
    use tokenwarden::middleware::BearerAuth;
    use tower::{Layer, Service};

    let client = TestKey::generate(Algorithm::ES256, "client").unwrap();
    let token = bound(&client, issuer);
    let auth: http::HeaderValue = format!("DPoP {token}").parse().unwrap();
    let inner = tower::service_fn(|_req: http::Request<()>| async {
        Ok::<_, std::convert::Infallible>(http::Response::new(()))
    });
    let mut svc = BearerAuth::from_chain(chain(validator, 0))
        .layer()
        .layer(inner);
    let mut n = 0u64;
    g.bench_function("dpop_es256_layer", |b| {
        b.iter_batched(
            || {
                n += 1;
                let proof = DpopProof::new(&client, "GET", HTU)
                    .iat(NOW)
                    .jti(&format!("{n}"))
                    .access_token(&token)
                    .sign();
                let mut req = http::Request::builder().uri("/orders").body(()).unwrap();
                req.headers_mut().insert("authorization", auth.clone());
                req.headers_mut().insert("dpop", proof.parse().unwrap());
                req
            },
            |req| {
                let mut f = std::pin::pin!(svc.call(req));
                match f.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
                    Poll::Ready(Ok(resp)) => assert_eq!(resp.status(), 200),
                    _ => panic!("the memory store's path completes on its first poll"),
                }
            },
            BatchSize::SmallInput,
        )
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default().warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(3));
    targets = bench
}
criterion_main!(benches);
