//! A flood of bad tokens does not flood the log: the layer's refusal line
//! is written at most `REFUSAL_LOGS_PER_SECOND` times a second per kind,
//! while the metrics count every refusal (features `metrics`, `axum`).
#![cfg(all(feature = "metrics", feature = "axum"))]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod common;

use std::convert::Infallible;

use common::*;
use metrics_util::debugging::{DebugValue, DebuggingRecorder};
use tokenwarden::middleware::{BearerAuth, REFUSAL_LOGS_PER_SECOND};
use tokenwarden::{Algorithm, Clock, SystemClock, metrics as names};
use tower::{Layer, ServiceExt, service_fn};

#[test]
fn a_flood_of_expired_tokens_logs_a_few_lines_and_counts_every_refusal() {
    const FLOOD: u64 = 2_000;
    let auth = BearerAuth::new(
        builder(&[key(Algorithm::ES256)])
            .no_cache()
            .build()
            .unwrap(),
    );
    let svc = auth
        .layer()
        .layer(service_fn(|_req: axum::http::Request<()>| async {
            Ok::<_, Infallible>(axum::http::Response::new(String::new()))
        }));
    let mut old = claims();
    old["exp"] = (NOW - 3600).into();
    let expired = format!("Bearer {}", key(Algorithm::ES256).token(&old));

    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (guard, logs) = capture_logs();
    // The limiter's windows are seconds of the system clock: the bound is
    // taken over the seconds the flood spans, however long it takes.
    let started = SystemClock.now();
    metrics::with_local_recorder(&recorder, || {
        rt.block_on(async {
            for _ in 0..FLOOD {
                let mut req = axum::http::Request::new(());
                req.headers_mut()
                    .insert("authorization", expired.parse().unwrap());
                let status = svc.clone().oneshot(req).await.unwrap().status();
                assert_eq!(status, 401);
            }
        });
    });
    let seconds = SystemClock.now() - started + 1;
    drop(guard);

    let text = logs.text();
    let lines = text
        .lines()
        .filter(|l| l.contains("bearer token refused"))
        .count() as i64;
    assert!(lines >= 1, "no refusal logged at all:\n{text}");
    let most = i64::from(REFUSAL_LOGS_PER_SECOND) * seconds;
    assert!(
        lines <= most,
        "{lines} refusal lines for {FLOOD} refusals over {seconds} s (at most {most})"
    );

    // Every refusal is still counted.
    let counted = snapshotter
        .snapshot()
        .into_vec()
        .into_iter()
        .find_map(|(key, _, _, value)| {
            let is_expired = key.key().name() == names::VERDICTS
                && key
                    .key()
                    .labels()
                    .any(|l| l.key() == "verdict" && l.value() == "expired");
            match value {
                DebugValue::Counter(n) if is_expired => Some(n),
                _ => None,
            }
        });
    assert_eq!(counted, Some(FLOOD));
}
