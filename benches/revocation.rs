//! The revocation check on the hot path, with 100 000 revoked `jti`s (and
//! 1 000 subjects and 1 000 sessions cut off):
//! `cargo bench --bench revocation -- --warm-up-time 1 --measurement-time 3`.
//!
//! - `revocation/check/*`: `Denylist::is_revoked` alone, for a token that
//!   is not revoked (three lookups that miss: `jti`, `sub`, `sid`) and for
//!   one whose `jti` is.
//! - `revocation/validate_shared/*`: `Validator::validate_shared` of one
//!   HS256 token (the verified-token cache answering), without a denylist
//!   and with the full one.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use serde_json::{Map, Value, json};
use tokenwarden::state::denylist::{Denylist, TokenIds};
use tokenwarden::testing::TestKey;
use tokenwarden::{Algorithm, KeySet, Validator};

const ISS: &str = "https://idp.example.com";
const AUD: &str = "https://api.example.com";
const REVOKED: usize = 100_000;

fn full_denylist() -> Denylist {
    let d = Denylist::new();
    for i in 0..REVOKED {
        d.revoke_jti(&format!("5f0c6a7e-{i:08}-4d2b-9b4e-revoked"), 4_000_000_000);
    }
    for i in 0..1_000 {
        d.revoke_subject_before(&format!("user-{i}"), 4_000_000_000);
        d.revoke_session(&format!("session-{i}"), 4_000_000_000);
    }
    d.prune();
    d
}

fn bench(c: &mut Criterion) {
    let denylist = full_denylist();
    assert_eq!(denylist.len(), REVOKED + 2_000);

    let passing = json!({"iss": ISS, "jti": "5f0c6a7e-00000001-4d2b-9b4e-not-revoked",
        "sub": "alice", "sid": "session-alice", "iat": 1_700_000_100});
    let passing = passing.as_object().unwrap();
    let revoked = json!({"iss": ISS, "jti": "5f0c6a7e-00050000-4d2b-9b4e-revoked",
        "sub": "alice", "sid": "session-alice", "iat": 1_700_000_100});
    let revoked = revoked.as_object().unwrap();
    let (ok_ids, revoked_ids) = (
        TokenIds::from_claims(passing),
        TokenIds::from_claims(revoked),
    );
    assert!(denylist.is_revoked(&ok_ids).is_none());
    assert!(denylist.is_revoked(&revoked_ids).is_some());

    let mut g = c.benchmark_group("revocation/check");
    g.bench_function("not_revoked", |b| {
        b.iter(|| denylist.is_revoked(black_box(&ok_ids)))
    });
    g.bench_function("revoked_jti", |b| {
        b.iter(|| denylist.is_revoked(black_box(&revoked_ids)))
    });
    g.finish();

    let key = TestKey::generate(Algorithm::HS256, "bench-key").unwrap();
    // A token of an ordinary lifetime: with a denylist, one living longer
    // than its max_token_lifetime (24 h) is refused.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let token = key.token(&json!({
        "iss": ISS, "aud": AUD, "sub": "alice", "sid": "session-alice",
        "jti": "5f0c6a7e-00000001-4d2b-9b4e-not-revoked",
        "scope": "orders:read orders:write", "iat": now - 60, "exp": now + 3600
    }));
    let mut g = c.benchmark_group("revocation/validate_shared");
    for (name, list) in [
        ("denylist_off", None),
        ("denylist_100k", Some(denylist.clone())),
    ] {
        let mut builder = Validator::builder()
            .issuer(ISS)
            .audience(AUD)
            .keys(KeySet::from_jwks(key.jwks_json().as_bytes()).unwrap());
        if let Some(list) = list {
            builder = builder.denylist(list);
        }
        let validator = builder.build().unwrap();
        validator
            .validate_shared::<Map<String, Value>>(&token)
            .unwrap();
        g.bench_function(name, |b| {
            b.iter(|| {
                validator
                    .validate_shared::<Map<String, Value>>(black_box(&token))
                    .unwrap()
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
