//! API-key usage in the `metrics` facade (features `metrics`, `api-keys`):
//! requests and refusals per key id, seen through metrics-util's
//! `DebuggingRecorder`; the label is a stored key's id, never the secret,
//! and never a made-up id (cardinality).
#![cfg(all(feature = "metrics", feature = "api-keys"))]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod common;

use std::collections::HashMap;
use std::sync::Arc;

use common::NOW;
use common::authn::{add_key, api_keys, poll_once};
use metrics_util::debugging::{DebugValue, DebuggingRecorder};
use tokenwarden::ManualClock;
use tokenwarden::authn::api_key::{MemoryStore, NewApiKey};
use tokenwarden::authn::{Chain, RequestView};
use tokenwarden::metrics as names;

/// The chain's verdict on `X-Api-Key: key`: the refusal's kind, or "ok".
fn judge(chain: &Chain, key: &str) -> &'static str {
    let headers = [("x-api-key", key)];
    let view = RequestView::new("GET", "/", &headers);
    match poll_once(chain.authenticate(&view)).expect("memory store: no wait") {
        Ok(_) => "ok",
        Err(r) => r.kind(),
    }
}

#[test]
fn api_key_requests_and_refusals_are_counted_per_stored_key_id_only() {
    let store = Arc::new(MemoryStore::new());
    let good = add_key(&store, "partner", &["orders:read"]);
    let mut off = add_key(&store, "old", &[]);
    off.record.disabled = true;
    store.insert(off.record.clone());
    let chain = Chain::new().api_key(api_keys(&store, &ManualClock::new(NOW)));
    let secret = good.expose_key().rsplit_once('_').unwrap().1.to_owned();
    let (head, last) = good.expose_key().split_at(good.expose_key().len() - 1);
    let wrong = format!("{head}{}", if last == "A" { "B" } else { "A" });

    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    metrics::with_local_recorder(&recorder, || {
        for _ in 0..3 {
            assert_eq!(judge(&chain, good.expose_key()), "ok");
        }
        assert_eq!(judge(&chain, &wrong), "wrong_secret");
        assert_eq!(judge(&chain, off.expose_key()), "disabled");
        // Attack: a flood of made-up ids (well-formed keys the store does
        // not hold) and malformed keys must not make a series each.
        for i in 0..50 {
            let made_up = NewApiKey::generate("live", &format!("nobody {i}")).unwrap();
            assert_eq!(judge(&chain, made_up.expose_key()), "unknown_key");
        }
        assert_eq!(
            judge(&chain, "tw_live_0123456789abcdef_short"),
            "malformed_key"
        );
    });

    let mut counters: HashMap<(String, Vec<(String, String)>), u64> = HashMap::new();
    for (key, _, _, value) in snapshotter.snapshot().into_vec() {
        let DebugValue::Counter(n) = value else {
            continue;
        };
        let labels = key
            .key()
            .labels()
            .map(|l| (l.key().to_owned(), l.value().to_owned()))
            .collect();
        counters.insert((key.key().name().to_owned(), labels), n);
    }
    let count = |name: &str, labels: &[(&str, &str)]| {
        let labels: Vec<(String, String)> = labels
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        counters
            .get(&(name.to_owned(), labels))
            .copied()
            .unwrap_or(0)
    };
    let id = good.record.id.as_str();
    assert_eq!(count(names::API_KEY_REQUESTS, &[("key_id", id)]), 4);
    assert_eq!(
        count(
            names::API_KEY_REFUSALS,
            &[("key_id", id), ("reason", "wrong_secret")]
        ),
        1
    );
    assert_eq!(
        count(names::API_KEY_REQUESTS, &[("key_id", &off.record.id)]),
        1
    );
    assert_eq!(
        count(
            names::API_KEY_REFUSALS,
            &[("key_id", &off.record.id), ("reason", "disabled")]
        ),
        1
    );
    assert_eq!(count(names::API_KEY_REQUESTS, &[("key_id", "unknown")]), 51);
    assert_eq!(
        count(
            names::API_KEY_REFUSALS,
            &[("key_id", "unknown"), ("reason", "unknown_key")]
        ),
        50
    );
    assert_eq!(
        count(
            names::API_KEY_REFUSALS,
            &[("key_id", "unknown"), ("reason", "malformed_key")]
        ),
        1
    );

    // Cardinality: the stored ids and `unknown`, nothing else; no label
    // holds a secret.
    let mut ids: Vec<&str> = counters
        .keys()
        .filter(|(name, _)| name.starts_with("tokenwarden_api_key_"))
        .flat_map(|(_, labels)| labels.iter())
        .filter(|(k, _)| k == "key_id")
        .map(|(_, v)| v.as_str())
        .collect();
    ids.sort_unstable();
    ids.dedup();
    let mut want = vec![id, off.record.id.as_str(), "unknown"];
    want.sort_unstable();
    assert_eq!(ids, want);
    for (name, labels) in counters.keys() {
        for (_, v) in labels {
            assert!(!v.contains(&secret), "{name}: a secret in a label");
        }
    }
}
