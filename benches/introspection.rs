//! A cached introspection verdict (an opaque token the endpoint already
//! vouched for) through a `Chain` and through the tower layer
//! (`BearerAuth::from_chain`): the per-request cost once the token is
//! known, the common case. Target: under a microsecond. `layer/jwt` is the
//! same layer judging a bearer JWT (a chain of one JWT authenticator, the
//! verified-token cache on), measured in the same run: the layer's own
//! floor on this machine, so `layer` less `layer/jwt` is what the cached
//! introspection verdict adds (token digest, cache read, binding check).
//!
//! `cargo bench --features "introspection tower testing" --bench introspection -- --warm-up-time 1 --measurement-time 3`
//! (add `cache` to the features for `layer/jwt`)

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::future::Future;
use std::hint::black_box;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use tokenwarden::authn::introspection::IntrospectionAuthenticator;
use tokenwarden::authn::{Chain, RequestView};
use tokenwarden::middleware::BearerAuth;
use tokenwarden::testing::TestIssuer;
use tower::{Layer, Service};

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let idp = TestIssuer::start().unwrap();
    idp.introspection_client_secret("api", "secret");
    let token = idp
        .opaque_token()
        .subject("alice")
        .audience("api")
        .scope("orders:read orders:write")
        .expires_in(3600)
        .issue();
    let auth = rt.block_on(async {
        IntrospectionAuthenticator::builder()
            .endpoint(idp.introspection_url())
            .client_secret_basic("api", "secret")
            .issuer(idp.issuer())
            .audience("api")
            .positive_ttl(Duration::from_secs(3600))
            .allow_http_loopback(true)
            .build()
            .await
            .unwrap()
    });
    let chain = Chain::new().introspection(auth);
    let header = format!("Bearer {token}");
    let headers = [("authorization", header.as_str())];
    // The one call: the verdict is kept from here on.
    rt.block_on(chain.authenticate(&RequestView::new("GET", "/", &headers)))
        .unwrap();
    assert_eq!(idp.introspection_calls(), 1);

    let waker = Waker::noop();
    let mut g = c.benchmark_group("introspection/cached");
    g.bench_function("chain", |b| {
        b.iter(|| {
            let req = RequestView::new("GET", "/orders", black_box(&headers));
            let mut f = std::pin::pin!(chain.authenticate(&req));
            match f.as_mut().poll(&mut Context::from_waker(waker)) {
                Poll::Ready(p) => p.unwrap(),
                Poll::Pending => panic!("a kept verdict completes on the first poll"),
            }
        })
    });

    let inner = tower::service_fn(|_req: http::Request<()>| async {
        Ok::<_, std::convert::Infallible>(http::Response::new(()))
    });
    let mut svc = BearerAuth::from_chain(chain.clone()).layer().layer(inner);
    let value: http::HeaderValue = header.parse().unwrap();
    g.bench_function("layer", |b| {
        b.iter(|| {
            let mut req = http::Request::new(());
            req.headers_mut().insert("authorization", value.clone());
            let mut f = std::pin::pin!(svc.call(req));
            match f.as_mut().poll(&mut Context::from_waker(waker)) {
                Poll::Ready(Ok(resp)) => assert_eq!(resp.status(), 200),
                _ => panic!("a kept verdict completes on the first poll"),
            }
        })
    });

    #[cfg(feature = "cache")]
    jwt_layer(&mut g, &idp);
    g.finish();
    assert_eq!(
        idp.introspection_calls(),
        1,
        "every request served from the cache"
    );
}

/// The layer judging a cached bearer JWT: the floor `layer` is read
/// against (with the `cache` feature).
#[cfg(feature = "cache")]
fn jwt_layer(
    g: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    idp: &TestIssuer,
) {
    let waker = Waker::noop();
    let inner = tower::service_fn(|_req: http::Request<()>| async {
        Ok::<_, std::convert::Infallible>(http::Response::new(()))
    });
    let validator = tokenwarden::Validator::builder()
        .issuer(idp.issuer())
        .audience("api")
        .keys(tokenwarden::KeySet::from_jwks(idp.jwks_json().as_bytes()).unwrap())
        .build()
        .unwrap();
    let jwt_chain = Chain::new().jwt(tokenwarden::authn::jwt::JwtAuthenticator::new(validator));
    let mut jwt_svc = BearerAuth::from_chain(jwt_chain).layer().layer(inner);
    let jwt = idp.token().audience("api").subject("alice").sign();
    let jwt_value: http::HeaderValue = format!("Bearer {jwt}").parse().unwrap();
    g.bench_function("layer/jwt", |b| {
        b.iter(|| {
            let mut req = http::Request::new(());
            req.headers_mut().insert("authorization", jwt_value.clone());
            let mut f = std::pin::pin!(jwt_svc.call(req));
            match f.as_mut().poll(&mut Context::from_waker(waker)) {
                Poll::Ready(Ok(resp)) => assert_eq!(resp.status(), 200),
                _ => panic!("a cached JWT completes on the first poll"),
            }
        })
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default().warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(3));
    targets = bench
}
criterion_main!(benches);
