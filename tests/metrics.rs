//! The library's counters move (feature `metrics`), seen through
//! metrics-util's `DebuggingRecorder`: verdicts by kind from the layer,
//! cache hits and misses, key fetches and failures labelled by host.
#![cfg(all(
    feature = "metrics",
    feature = "axum",
    feature = "remote",
    feature = "cache"
))]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod common;

use std::collections::HashMap;
use std::convert::Infallible;

use common::idp::Idp;
use common::*;
use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};
use serde_json::json;
use tokenwarden::middleware::BearerAuth;
use tokenwarden::{Algorithm, CacheConfig, RemoteKeySet, metrics as names};
use tower::{Layer, ServiceExt, service_fn};

/// Counter values by name and label pairs (`name{k=v,...}`).
fn counters(snapshotter: &Snapshotter) -> HashMap<String, u64> {
    snapshotter
        .snapshot()
        .into_vec()
        .into_iter()
        .filter_map(|(key, _, _, value)| {
            let DebugValue::Counter(n) = value else {
                return None;
            };
            let labels: Vec<String> = key
                .key()
                .labels()
                .map(|l| format!("{}={}", l.key(), l.value()))
                .collect();
            Some((format!("{}{{{}}}", key.key().name(), labels.join(",")), n))
        })
        .collect()
}

async fn status(auth: &BearerAuth, token: Option<&str>) -> u16 {
    let svc = auth
        .layer()
        .layer(service_fn(|_req: axum::http::Request<()>| async {
            Ok::<_, Infallible>(axum::http::Response::new(String::new()))
        }));
    let mut req = axum::http::Request::new(());
    if let Some(t) = token {
        req.headers_mut()
            .insert("authorization", format!("Bearer {t}").parse().unwrap());
    }
    svc.oneshot(req).await.unwrap().status().as_u16()
}

#[test]
fn the_counters_move() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    // A local recorder: this thread's (and so the runtime's tasks') counts
    // only, whatever other tests do.
    let idp_host = metrics::with_local_recorder(&recorder, || {
        rt.block_on(async {
            // Verdicts, from the layer.
            // No cache here (on by default): only the cache below counts.
            let auth = BearerAuth::new(
                builder(&[key(Algorithm::ES256)])
                    .no_cache()
                    .build()
                    .unwrap(),
            );
            let good = key(Algorithm::ES256).token(&claims());
            let mut old = claims();
            old["exp"] = json!(NOW - 3600);
            let expired = key(Algorithm::ES256).token(&old);
            assert_eq!(status(&auth, Some(&good)).await, 200);
            assert_eq!(status(&auth, Some(&good)).await, 200);
            assert_eq!(status(&auth, Some(&expired)).await, 401);
            assert_eq!(status(&auth, None).await, 401);

            // The cache: a miss, then hits.
            let cached = builder(&[key(Algorithm::ES256)])
                .cache(CacheConfig::default())
                .build()
                .unwrap();
            cached.validate_json(&good).unwrap();
            cached.validate_json(&good).unwrap();
            cached.validate_json(&good).unwrap();

            // Key fetches: one that works, one that cannot.
            let idp = Idp::start(&[key(Algorithm::ES256)]).await;
            let keys = RemoteKeySet::builder()
                .jwks_url(idp.jwks_url().replace("http://", "http://user:SECRET@"))
                .allow_http_loopback(true)
                .build()
                .unwrap();
            keys.refresh().await.unwrap();
            let down = RemoteKeySet::builder()
                .jwks_url("http://127.0.0.1:9/jwks")
                .allow_http_loopback(true)
                .build()
                .unwrap();
            assert!(down.refresh().await.is_err());
            idp.issuer().trim_start_matches("http://").to_owned()
        })
    });
    let c = counters(&snapshotter);
    let get = |k: &str| c.get(k).copied().unwrap_or(0);
    assert_eq!(
        get(&format!("{}{{verdict=ok}}", names::VERDICTS)),
        2,
        "{c:?}"
    );
    assert_eq!(
        get(&format!("{}{{verdict=expired}}", names::VERDICTS)),
        1,
        "{c:?}"
    );
    assert_eq!(
        get(&format!("{}{{verdict=missing_token}}", names::VERDICTS)),
        1,
        "{c:?}"
    );
    assert_eq!(get(&format!("{}{{}}", names::CACHE_MISSES)), 1, "{c:?}");
    assert_eq!(get(&format!("{}{{}}", names::CACHE_HITS)), 2, "{c:?}");
    // The refresher and `refresh()` may both have fetched: at least one.
    assert!(
        get(&format!("{}{{host={idp_host}}}", names::KEY_FETCHES)) >= 1,
        "{c:?}"
    );
    assert!(
        get(&format!(
            "{}{{host=127.0.0.1:9}}",
            names::KEY_FETCH_FAILURES
        )) >= 1,
        "{c:?}"
    );
    // Labels carry hosts only: no path, query or secret.
    assert!(
        c.keys()
            .all(|k| !k.contains("SECRET") && !k.contains("/jwks")),
        "{c:?}"
    );
}
