//! Revocation: the denylist checked on every validation after the
//! signature (cache hits included), its entries expiring with the tokens
//! they revoke.
#![cfg(all(feature = "cache", feature = "testing", feature = "remote"))]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod common;

use std::sync::Arc;

use common::*;
use serde_json::{Map, Value, json};
use tokenwarden::state::denylist::{Denylist, GRACE, MemorySource, Revocation};
use tokenwarden::{Algorithm, CacheConfig, ErrorKind, ManualClock, Validator};

fn denylist(clock: &ManualClock) -> Denylist {
    Denylist::builder().clock(clock.clone()).build().unwrap()
}

fn validator_with(denylist: &Denylist, clock: &ManualClock) -> Validator {
    builder(&[key(Algorithm::ES256)])
        .clock(clock.clone())
        .denylist(denylist.clone())
        .cache(CacheConfig::default())
        .build()
        .unwrap()
}

fn token(extra: Value) -> String {
    let mut c = claims();
    for (k, v) in extra.as_object().unwrap() {
        c[k] = v.clone();
    }
    key(Algorithm::ES256).token(&c)
}

fn kind(v: &Validator, token: &str) -> &'static str {
    match v.validate::<Value>(token) {
        Ok(_) => "ok",
        Err(e) => e.kind().as_str(),
    }
}

fn kind_shared(v: &Validator, token: &str) -> &'static str {
    match v.validate_shared::<Map<String, Value>>(token) {
        Ok(_) => "ok",
        Err(e) => e.kind().as_str(),
    }
}

#[test]
fn a_revoked_jti_is_refused_and_others_pass() {
    let clock = ManualClock::new(NOW);
    let d = denylist(&clock);
    let v = validator_with(&d, &clock);
    let revoked = token(json!({"jti": "t-1"}));
    let other = token(json!({"jti": "t-2"}));
    assert_eq!(kind(&v, &revoked), "ok");
    d.revoke_jti("t-1", NOW + 600);
    assert_eq!(kind(&v, &revoked), "revoked");
    assert_eq!(kind_shared(&v, &revoked), "revoked");
    assert_eq!(kind(&v, &other), "ok");
    let err = v.validate::<Value>(&revoked).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Revoked);
    // The message names the kind of entry, never the jti.
    assert_eq!(err.to_string(), "token revoked (by jti)");
}

#[test]
fn the_revocation_check_comes_after_the_signature() {
    // A forged token carrying a revoked jti is refused for its signature:
    // the denylist never speaks for a token nobody signed.
    let clock = ManualClock::new(NOW);
    let d = denylist(&clock);
    let v = validator_with(&d, &clock);
    d.revoke_jti("t-1", NOW + 600);
    let good = token(json!({"jti": "t-1"}));
    let (head, _) = good.rsplit_once('.').unwrap();
    let forged = format!("{head}.{}", b64(&[7u8; 64]));
    assert_eq!(kind(&v, &forged), "invalid_signature");
}

#[test]
fn a_subject_revocation_refuses_tokens_issued_before_the_cutoff_only() {
    let clock = ManualClock::new(NOW);
    let d = denylist(&clock);
    let v = validator_with(&d, &clock);
    let before = token(json!({"sub": "mallory", "iat": NOW - 1}));
    let at = token(json!({"sub": "mallory", "iat": NOW}));
    let fraction_before = token(json!({"sub": "mallory", "iat": (NOW as f64) - 0.5}));
    let someone_else = token(json!({"sub": "alice", "iat": NOW - 100}));
    d.revoke_subject_before("mallory", NOW);
    assert_eq!(kind(&v, &before), "revoked");
    assert_eq!(kind(&v, &fraction_before), "revoked");
    assert_eq!(kind(&v, &at), "ok", "iat = T is not before T");
    assert_eq!(kind(&v, &someone_else), "ok");
}

#[test]
fn a_token_without_iat_under_a_subject_or_session_revocation_is_refused() {
    let clock = ManualClock::new(NOW);
    let d = denylist(&clock);
    let v = validator_with(&d, &clock);
    let mut c = claims();
    c.as_object_mut().unwrap().remove("iat");
    c["sub"] = json!("mallory");
    c["sid"] = json!("s-9");
    let no_iat = key(Algorithm::ES256).token(&c);
    assert_eq!(kind(&v, &no_iat), "ok");
    d.revoke_session("s-9", NOW - 3600);
    let err = v.validate::<Value>(&no_iat).unwrap_err();
    assert_eq!(err.to_string(), "token revoked (by session)");
    let d = denylist(&clock);
    let v = validator_with(&d, &clock);
    d.revoke_subject_before("mallory", NOW - 3600);
    assert_eq!(kind(&v, &no_iat), "revoked");
}

#[test]
fn a_session_revocation_refuses_that_sessions_tokens_only() {
    let clock = ManualClock::new(NOW);
    let d = denylist(&clock);
    let v = validator_with(&d, &clock);
    let in_session = token(json!({"sid": "s-1", "iat": NOW - 10}));
    let other_session = token(json!({"sid": "s-2", "iat": NOW - 10}));
    let no_session = token(json!({"iat": NOW - 10}));
    d.revoke_session("s-1", NOW);
    assert_eq!(kind(&v, &in_session), "revoked");
    assert_eq!(kind(&v, &other_session), "ok");
    assert_eq!(kind(&v, &no_session), "ok");
}

#[test]
fn a_token_cached_before_its_revocation_is_refused_on_every_kind_of_hit() {
    let clock = ManualClock::new(NOW);
    let d = denylist(&clock);
    let v = validator_with(&d, &clock);
    let t = token(json!({"sub": "mallory", "jti": "t-1"}));
    // Cached, in this thread's recent hits and in the shared map, for
    // both entry points.
    assert_eq!(kind(&v, &t), "ok");
    assert_eq!(kind_shared(&v, &t), "ok");
    assert_eq!(kind_shared(&v, &t), "ok");
    assert_eq!(v.cache_usage().unwrap().0, 1);
    d.revoke_subject_before("mallory", NOW);
    assert_eq!(kind(&v, &t), "revoked");
    assert_eq!(kind_shared(&v, &t), "revoked");
    // Another thread answers from the shared map: refused there too.
    let v2 = v.clone();
    let t2 = t.clone();
    let there = std::thread::spawn(move || (kind(&v2, &t2), kind_shared(&v2, &t2)))
        .join()
        .unwrap();
    assert_eq!(there, ("revoked", "revoked"));
}

#[test]
fn a_validator_without_a_denylist_is_unaffected() {
    let clock = ManualClock::new(NOW);
    let d = denylist(&clock);
    d.revoke_subject_before("alice", NOW);
    let v = builder(&[key(Algorithm::ES256)])
        .clock(clock.clone())
        .build()
        .unwrap();
    assert_eq!(kind(&v, &token(json!({}))), "ok");
}

#[test]
fn entries_expire_with_the_tokens_they_revoke() {
    let clock = ManualClock::new(NOW);
    let d = Denylist::builder()
        .clock(clock.clone())
        .max_token_lifetime(std::time::Duration::from_secs(3600))
        .build()
        .unwrap();
    d.revoke_jti("t-1", NOW + 600);
    d.revoke_subject_before("mallory", NOW);
    d.revoke_session("s-1", NOW + 100);
    assert_eq!(d.len(), 3);
    // Nothing goes while a validator could still accept what it refuses
    // (exp plus the largest leeway).
    clock.set(NOW + 600 + GRACE - 1);
    d.prune();
    assert_eq!(d.len(), 3);
    clock.set(NOW + 600 + GRACE);
    d.prune();
    assert_eq!(d.len(), 2, "the jti went at its exp + grace");
    clock.set(NOW + 3600 + GRACE);
    d.prune();
    assert_eq!(d.len(), 1, "the subject went at T + max lifetime + grace");
    clock.set(NOW + 100 + 3600 + GRACE);
    d.prune();
    assert!(d.is_empty());
    // A revocation already past is not even recorded.
    d.revoke_jti("old", NOW);
    assert!(d.is_empty());
}

#[test]
fn a_revocation_on_one_denylist_reaches_another_sharing_its_source() {
    let clock = ManualClock::new(NOW);
    let source = Arc::new(MemorySource::new().with_clock(clock.clone()));
    let a = Denylist::builder()
        .clock(clock.clone())
        .source(source.clone())
        .build()
        .unwrap();
    let b = Denylist::builder()
        .clock(clock.clone())
        .source(source.clone())
        .build()
        .unwrap();
    let va = validator_with(&a, &clock);
    let vb = validator_with(&b, &clock);
    let t = token(json!({"jti": "t-1"}));
    assert_eq!(kind(&vb, &t), "ok");
    a.revoke_jti("t-1", NOW + 600);
    assert_eq!(kind(&va, &t), "revoked");
    assert_eq!(kind(&vb, &t), "revoked");
    // One started later loads what is still in force.
    let c = Denylist::builder()
        .clock(clock.clone())
        .source(source)
        .build()
        .unwrap();
    assert_eq!(kind(&validator_with(&c, &clock), &t), "revoked");
    assert_eq!((a.len(), b.len(), c.len()), (1, 1, 1));
}

#[test]
fn an_issuer_scoped_revocation_spares_another_issuers_subject() {
    let clock = ManualClock::new(NOW);
    let d = denylist(&clock);
    let v = validator_with(&d, &clock);
    d.revoke(Revocation::Subject {
        issuer: Some("https://other-idp.test".into()),
        sub: "alice".into(),
        before: NOW,
    });
    assert_eq!(kind(&v, &token(json!({}))), "ok");
    d.revoke(Revocation::Subject {
        issuer: Some(ISS.into()),
        sub: "alice".into(),
        before: NOW,
    });
    assert_eq!(kind(&v, &token(json!({}))), "revoked");
}

