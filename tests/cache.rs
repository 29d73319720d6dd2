//! The verified-token cache: what must never come out of it.
#![cfg(all(feature = "cache", feature = "testing", feature = "remote"))]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod common;

use common::*;
use serde_json::{Value, json};
use tokenwarden::testing::{TestIssuer, TestKey};
use tokenwarden::{Algorithm, CacheConfig, ErrorKind, ManualClock, RemoteKeySet, Validator};

fn cached_validator(clock: &ManualClock) -> Validator {
    builder(&[key(Algorithm::ES256)])
        .clock(clock.clone())
        .cache(CacheConfig::default())
        .build()
        .unwrap()
}

fn entries(v: &Validator) -> u64 {
    v.cache_usage().unwrap().0
}

#[test]
fn a_token_expired_after_caching_is_rejected() {
    let clock = ManualClock::new(NOW);
    let v = cached_validator(&clock);
    let token = key(Algorithm::ES256).token(&claims()); // exp = NOW + 600
    v.validate::<Value>(&token).unwrap();
    assert_eq!(entries(&v), 1);
    v.validate::<Value>(&token).unwrap();
    // Past exp + the 60 s leeway: the hit is refused by the clock.
    clock.set(NOW + 600 + 61);
    assert_eq!(
        v.validate::<Value>(&token).unwrap_err().kind(),
        ErrorKind::Expired
    );
    // And back inside the window the same entry answers again.
    clock.set(NOW + 600 + 59);
    v.validate::<Value>(&token).unwrap();
}

#[test]
fn shared_answers_are_reused_and_still_checked_on_every_hit() {
    #[derive(serde::Deserialize, Debug)]
    struct Mine {
        sub: String,
    }
    let clock = ManualClock::new(NOW);
    let v = cached_validator(&clock);
    let token = key(Algorithm::ES256).token(&claims());
    let first = v.validate_shared::<Mine>(&token).unwrap();
    let again = v.validate_shared::<Mine>(&token).unwrap();
    // The same value, not parsed again.
    assert!(std::sync::Arc::ptr_eq(&first, &again));
    assert_eq!(again.claims.sub, "alice");
    // Another claims type on the same entry is parsed for itself.
    let other = v.validate_shared::<Value>(&token).unwrap();
    assert_eq!(other.claims["sub"], "alice");
    assert_eq!(v.validate::<Value>(&token).unwrap().claims["sub"], "alice");
    // Past exp + leeway the shared answer is refused too.
    clock.set(NOW + 600 + 61);
    assert_eq!(
        v.validate_shared::<Mine>(&token).unwrap_err().kind(),
        ErrorKind::Expired
    );
    // A modified token never gets the shared answer.
    clock.set(NOW);
    let mut forged = token.clone().into_bytes();
    let last = forged.len() - 2;
    forged[last] = if forged[last] == b'A' { b'B' } else { b'A' };
    let forged = String::from_utf8(forged).unwrap();
    assert!(v.validate_shared::<Mine>(&forged).is_err());
    // Without the cache it still answers, freshly each time.
    let plain = builder(&[key(Algorithm::ES256)])
        .no_cache()
        .build()
        .unwrap();
    let a = plain.validate_shared::<Mine>(&token).unwrap();
    let b = plain.validate_shared::<Mine>(&token).unwrap();
    assert!(!std::sync::Arc::ptr_eq(&a, &b));
}

#[test]
fn one_validators_entries_never_answer_for_another() {
    // Same thread, same token, same keys: the second validator wants
    // another audience, and must not be answered from the first one's
    // cache (neither the shared map nor this thread's recent hits).
    let clock = ManualClock::new(NOW);
    let mine = cached_validator(&clock);
    let theirs = Validator::builder()
        .issuer(ISS)
        .audience("https://other.test")
        .keys(keyset(&[key(Algorithm::ES256)]))
        .clock(clock.clone())
        .cache(CacheConfig::default())
        .build()
        .unwrap();
    let token = key(Algorithm::ES256).token(&claims());
    for _ in 0..3 {
        mine.validate_shared::<Value>(&token).unwrap();
        mine.validate::<Value>(&token).unwrap();
        assert_eq!(
            theirs.validate_shared::<Value>(&token).unwrap_err().kind(),
            ErrorKind::InvalidAudience
        );
        assert_eq!(
            theirs.validate::<Value>(&token).unwrap_err().kind(),
            ErrorKind::InvalidAudience
        );
    }
}

#[test]
fn max_age_is_rechecked_on_a_hit() {
    let clock = ManualClock::new(NOW);
    let v = builder(&[key(Algorithm::ES256)])
        .clock(clock.clone())
        .max_age(std::time::Duration::from_secs(100))
        .cache(CacheConfig::default())
        .build()
        .unwrap();
    let token = key(Algorithm::ES256).token(&claims()); // iat = NOW - 10
    v.validate::<Value>(&token).unwrap();
    clock.advance(200);
    assert_eq!(
        v.validate::<Value>(&token).unwrap_err().kind(),
        ErrorKind::TokenTooOld
    );
}

#[test]
fn a_modified_token_never_hits() {
    let clock = ManualClock::new(NOW);
    let v = cached_validator(&clock);
    let token = key(Algorithm::ES256).token(&claims());
    v.validate::<Value>(&token).unwrap();
    let (input, sig) = token.rsplit_once('.').unwrap();
    // Every single-character change of the signature and of the payload.
    let mut tried = 0;
    for (i, _) in token.char_indices().step_by(3) {
        let mut bytes = token.clone().into_bytes();
        bytes[i] = if bytes[i] == b'A' { b'B' } else { b'A' };
        let forged = String::from_utf8(bytes).unwrap();
        if forged == token {
            continue;
        }
        tried += 1;
        assert!(
            v.validate::<Value>(&forged).is_err(),
            "a forgery at {i} passed"
        );
    }
    assert!(tried > 40);
    // Other claims under the original signature.
    let other = format!(
        "{}.{}.{sig}",
        input.split('.').next().unwrap(),
        b64(br#"{"iss":"x"}"#)
    );
    assert_eq!(
        v.validate::<Value>(&other).unwrap_err().kind(),
        ErrorKind::InvalidSignature
    );
    // Trailing bytes, a prefix.
    assert!(v.validate::<Value>(&format!("{token}A")).is_err());
    assert!(v.validate::<Value>(&token[..token.len() - 1]).is_err());
    assert_eq!(entries(&v), 1, "no failure was stored");
}

#[test]
fn failures_are_never_cached() {
    let clock = ManualClock::new(NOW);
    let v = cached_validator(&clock);
    let k = key(Algorithm::ES256);
    let mut c = claims();
    c["nbf"] = json!(NOW + 3600);
    let early = k.token(&c);
    assert_eq!(
        v.validate::<Value>(&early).unwrap_err().kind(),
        ErrorKind::NotYetValid
    );
    let mut c = claims();
    c["aud"] = json!("someone-else");
    let foreign = k.token(&c);
    assert_eq!(
        v.validate::<Value>(&foreign).unwrap_err().kind(),
        ErrorKind::InvalidAudience
    );
    let wrong_key = key(Algorithm::ES384).token(&claims());
    assert!(v.validate::<Value>(&wrong_key).is_err());
    assert_eq!(entries(&v), 0);
    // Time moves on: the not-yet-valid token is judged afresh, and passes.
    clock.set(NOW + 3600);
    let mut c = claims();
    c["nbf"] = json!(NOW + 3600);
    c["exp"] = json!(NOW + 7200);
    let later = k.token(&c);
    v.validate::<Value>(&later).unwrap();
    assert_eq!(entries(&v), 1);
    // A claims type that refuses the claims is a failure too.
    #[derive(serde::Deserialize, Debug)]
    #[allow(dead_code)]
    struct NeedsEmail {
        email: String,
    }
    let fresh = k.token(&json!({"iss": ISS, "aud": AUD, "exp": NOW + 7000}));
    assert!(v.validate::<NeedsEmail>(&fresh).is_err());
    assert_eq!(entries(&v), 1);
}

#[test]
fn a_cached_token_still_fails_for_another_claims_type() {
    let clock = ManualClock::new(NOW);
    let v = cached_validator(&clock);
    let token = key(Algorithm::ES256).token(&claims());
    v.validate::<Value>(&token).unwrap();
    #[derive(serde::Deserialize, Debug)]
    #[allow(dead_code)]
    struct NeedsEmail {
        email: String,
    }
    assert_eq!(
        v.validate::<NeedsEmail>(&token).unwrap_err().kind(),
        ErrorKind::InvalidClaim
    );
}

#[tokio::test]
async fn removing_the_key_drops_its_entries() {
    let idp = TestIssuer::start().unwrap();
    let keys = RemoteKeySet::builder()
        .discovery(idp.issuer())
        .allow_http_loopback(true)
        .build()
        .unwrap();
    keys.refresh().await.unwrap();
    let v = Validator::builder()
        .issuer(idp.issuer())
        .audience("api")
        .keys(keys.clone())
        .cache(CacheConfig::default())
        .build()
        .unwrap();
    let token = idp.token().audience("api").subject("bob").sign();
    v.validate::<Value>(&token).unwrap();
    v.validate::<Value>(&token).unwrap();
    assert_eq!(v.cache_usage().unwrap().0, 1);

    // A rotation that keeps the old key published: still good.
    idp.rotate().unwrap();
    keys.refresh().await.unwrap();
    v.validate::<Value>(&token).unwrap();

    let shared = v.validate_shared::<Value>(&token).unwrap();
    assert!(std::sync::Arc::ptr_eq(
        &shared,
        &v.validate_shared::<Value>(&token).unwrap()
    ));

    // The old key is withdrawn (revoked): the cached token must fail now,
    // the shared answer too.
    assert_eq!(idp.retire_old_keys(), 1);
    keys.refresh().await.unwrap();
    assert_eq!(
        v.validate_shared::<Value>(&token).unwrap_err().kind(),
        ErrorKind::UnknownKey
    );
    assert_eq!(
        v.validate::<Value>(&token).unwrap_err().kind(),
        ErrorKind::UnknownKey
    );
    let fresh = idp.token().audience("api").sign();
    v.validate::<Value>(&fresh).unwrap();
}

#[test]
fn bounded_by_entries_and_bytes() {
    let clock = ManualClock::new(NOW);
    let v = builder(&[key(Algorithm::HS256)])
        .clock(clock.clone())
        .cache(CacheConfig::default().max_entries(50).max_bytes(1 << 30))
        .build()
        .unwrap();
    for i in 0..300 {
        let mut c = claims();
        c["jti"] = json!(i);
        v.validate::<Value>(&key(Algorithm::HS256).token(&c))
            .unwrap();
    }
    let (n, _) = v.cache_usage().unwrap();
    assert!(n <= 50, "{n} entries");

    let v = builder(&[key(Algorithm::HS256)])
        .clock(clock.clone())
        .cache(
            CacheConfig::default()
                .max_entries(1_000_000)
                .max_bytes(20_000),
        )
        .build()
        .unwrap();
    for i in 0..300 {
        let mut c = claims();
        c["jti"] = json!(i);
        v.validate::<Value>(&key(Algorithm::HS256).token(&c))
            .unwrap();
    }
    let (_, bytes) = v.cache_usage().unwrap();
    assert!(bytes <= 20_000, "{bytes} bytes");
}

/// A cached validator over the ES256 key with `config`.
fn cached_with(clock: &ManualClock, config: CacheConfig) -> Validator {
    builder(&[key(Algorithm::ES256)])
        .clock(clock.clone())
        .cache(config)
        .build()
        .unwrap()
}

/// A distinct valid token (by `jti`).
fn nth_token(i: usize) -> String {
    let mut c = claims();
    c["jti"] = json!(i);
    key(Algorithm::ES256).token(&c)
}

/// Pushes `token` out of this thread's recent hits: only the shared map
/// still holds it.
fn evict_near(v: &Validator, token: &str) {
    for i in 0..4 * 8 {
        let other = nth_token(1000 + i);
        assert_ne!(other, token);
        v.validate::<Value>(&other).unwrap();
    }
}

/// The verdict on another thread, which has no recent hits of its own: the
/// shared map answers.
fn on_another_thread(v: &Validator, token: &str) -> &'static str {
    std::thread::scope(|s| {
        s.spawn(|| {
            v.validate::<Value>(token)
                .map_or_else(|e| e.kind().as_str(), |_| "ok")
        })
        .join()
        .unwrap()
    })
}

fn here(v: &Validator, token: &str) -> &'static str {
    v.validate::<Value>(token)
        .map_or_else(|e| e.kind().as_str(), |_| "ok")
}

#[test]
fn checks_run_on_every_cache_hit() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    let suspended = Arc::new(AtomicBool::new(false));
    let flag = suspended.clone();
    let clock = ManualClock::new(NOW);
    let v = builder(&[key(Algorithm::ES256)])
        .clock(clock.clone())
        .cache(CacheConfig::default())
        .check("tenant", move |claims| {
            // The check gets the cached claims on a hit.
            assert_eq!(claims["sub"], "alice");
            if flag.load(Ordering::SeqCst) {
                Err("tenant suspended".into())
            } else {
                Ok(())
            }
        })
        .build()
        .unwrap();
    let token = key(Algorithm::ES256).token(&claims());
    assert_eq!(here(&v, &token), "ok");
    let first = v.validate_shared::<Value>(&token).unwrap();
    assert!(std::sync::Arc::ptr_eq(
        &first,
        &v.validate_shared::<Value>(&token).unwrap()
    ));
    assert_eq!(entries(&v), 1);

    suspended.store(true, Ordering::SeqCst);
    // This thread's recent hit, the shared answer, another thread (the
    // shared map), and this thread once its recent hits moved on.
    let err = v.validate::<Value>(&token).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidClaim);
    assert!(err.to_string().contains("tenant suspended"), "{err}");
    assert_eq!(
        v.validate_shared::<Value>(&token).unwrap_err().kind(),
        ErrorKind::InvalidClaim
    );
    assert_eq!(on_another_thread(&v, &token), "invalid_claim");
    suspended.store(false, Ordering::SeqCst);
    evict_near(&v, &token);
    suspended.store(true, Ordering::SeqCst);
    assert_eq!(here(&v, &token), "invalid_claim");

    // Reinstated: the same entry answers again.
    suspended.store(false, Ordering::SeqCst);
    assert_eq!(here(&v, &token), "ok");
    assert_eq!(on_another_thread(&v, &token), "ok");
}

#[test]
fn hits_from_another_thread_and_after_eviction_recheck_time_and_max_age() {
    let clock = ManualClock::new(NOW);
    let v = builder(&[key(Algorithm::ES256)])
        .clock(clock.clone())
        .max_age(std::time::Duration::from_secs(300))
        .cache(CacheConfig::default())
        .build()
        .unwrap();
    let mut c = claims();
    c["exp"] = json!(NOW + 3600);
    let token = key(Algorithm::ES256).token(&c); // iat = NOW - 10
    assert_eq!(here(&v, &token), "ok");
    assert_eq!(on_another_thread(&v, &token), "ok");
    evict_near(&v, &token);
    assert_eq!(here(&v, &token), "ok");
    assert_eq!(entries(&v), 1 + 32);

    // max_age (300 s + 60 s leeway after iat) passes; exp does not yet.
    clock.set(NOW - 10 + 300 + 61);
    assert_eq!(on_another_thread(&v, &token), "token_too_old");
    clock.set(NOW);
    evict_near(&v, &token);
    clock.set(NOW - 10 + 300 + 61);
    assert_eq!(here(&v, &token), "token_too_old");

    // exp, on a validator without max_age.
    let v = cached_with(&clock, CacheConfig::default());
    clock.set(NOW);
    let token = key(Algorithm::ES256).token(&claims()); // exp = NOW + 600
    assert_eq!(here(&v, &token), "ok");
    clock.set(NOW + 600 + 61);
    assert_eq!(on_another_thread(&v, &token), "expired");
    clock.set(NOW);
    evict_near(&v, &token);
    clock.set(NOW + 600 + 61);
    assert_eq!(here(&v, &token), "expired");
}

#[test]
fn max_ttl_bounds_how_long_an_entry_answers() {
    use std::sync::Arc;
    let clock = ManualClock::new(NOW);
    let v = cached_with(
        &clock,
        CacheConfig::default().max_ttl(std::time::Duration::from_secs(100)),
    );
    let token = key(Algorithm::ES256).token(&claims()); // exp = NOW + 600
    let first = v.validate_shared::<Value>(&token).unwrap();
    clock.set(NOW + 99);
    assert!(Arc::ptr_eq(
        &first,
        &v.validate_shared::<Value>(&token).unwrap()
    ));
    // At max_ttl the entry no longer answers: the token is checked afresh
    // (a new answer), and that answer is kept.
    clock.set(NOW + 100);
    let second = v.validate_shared::<Value>(&token).unwrap();
    assert!(!Arc::ptr_eq(&first, &second), "answered past max_ttl");
    clock.set(NOW + 101);
    assert!(Arc::ptr_eq(
        &second,
        &v.validate_shared::<Value>(&token).unwrap()
    ));
}

#[test]
fn max_ttl_of_duration_max_neither_panics_nor_outlives_exp() {
    for huge in [
        std::time::Duration::MAX,
        std::time::Duration::from_secs(u64::MAX),
    ] {
        let clock = ManualClock::new(NOW);
        let v = cached_with(&clock, CacheConfig::default().max_ttl(huge));
        // An exp past what a Duration holds.
        let mut c = claims();
        c["exp"] = json!(1e20);
        let far = key(Algorithm::ES256).token(&c);
        assert_eq!(here(&v, &far), "ok");
        assert_eq!(here(&v, &far), "ok");
        // An ordinary token still expires on a hit, on every path.
        let token = key(Algorithm::ES256).token(&claims());
        assert_eq!(here(&v, &token), "ok");
        clock.set(NOW + 600 + 61);
        assert_eq!(here(&v, &token), "expired");
        assert_eq!(on_another_thread(&v, &token), "expired");
        // And a token without exp, kept "forever", still gets every check.
        let lax = builder(&[key(Algorithm::ES256)])
            .clock(clock.clone())
            .allow_missing_exp()
            .max_age(std::time::Duration::from_secs(60))
            .cache(CacheConfig::default().max_ttl(huge))
            .build()
            .unwrap();
        clock.set(NOW);
        let mut c = claims();
        c.as_object_mut().unwrap().remove("exp");
        let no_exp = key(Algorithm::ES256).token(&c);
        assert_eq!(here(&lax, &no_exp), "ok");
        clock.set(NOW + 3600);
        assert_eq!(here(&lax, &no_exp), "token_too_old");
    }
}

#[tokio::test]
async fn removing_the_key_drops_its_entries_for_every_thread() {
    let idp = TestIssuer::start().unwrap();
    let keys = RemoteKeySet::builder()
        .discovery(idp.issuer())
        .allow_http_loopback(true)
        .build()
        .unwrap();
    keys.refresh().await.unwrap();
    let v = Validator::builder()
        .issuer(idp.issuer())
        .audience("api")
        .keys(keys.clone())
        .cache(CacheConfig::default())
        .build()
        .unwrap();
    let token = idp.token().audience("api").subject("bob").sign();
    assert_eq!(here(&v, &token), "ok");
    assert_eq!(on_another_thread(&v, &token), "ok");
    idp.rotate().unwrap();
    assert_eq!(idp.retire_old_keys(), 1);
    keys.refresh().await.unwrap();
    // Another thread: only the shared map holds the entry there.
    assert_eq!(on_another_thread(&v, &token), "unknown_key");
    // This thread, once its recent hits moved on.
    let fresh = idp.token().audience("api").sign();
    assert_eq!(here(&v, &fresh), "ok");
    for i in 0..4 * 8 {
        let other = idp.token().audience("api").claim("n", json!(i)).sign();
        assert_eq!(here(&v, &other), "ok");
    }
    assert_eq!(here(&v, &token), "unknown_key");
}

/// Issue 14 item 13: key identity is by content, so a refetch that returns
/// the same keys (as every unknown-kid refetch of a flood does) keeps the
/// cached verdicts instead of flushing them; other material under the same
/// kid is another key, and the verdict goes.
#[tokio::test]
async fn a_refetch_of_the_same_keys_keeps_the_cached_verdicts() {
    let k = key(Algorithm::ES256);
    let idp = common::idp::Idp::start(&[k]).await;
    let keys = RemoteKeySet::builder()
        .jwks_url(idp.jwks_url())
        .allow_http_loopback(true)
        .build()
        .unwrap();
    keys.refresh().await.unwrap();
    let clock = ManualClock::new(NOW);
    let v = builder(&[k])
        .keys(keys.clone())
        .clock(clock)
        .cache(CacheConfig::default())
        .build()
        .unwrap();
    let token = k.token(&claims());
    let first = v.validate_shared::<Value>(&token).unwrap();
    let before = keys.current().unwrap();
    for _ in 0..3 {
        keys.refresh().await.unwrap();
    }
    assert!(
        !std::sync::Arc::ptr_eq(&before, &keys.current().unwrap()),
        "the set was fetched and built anew"
    );
    // The same answer object: a cache hit, not a fresh verification.
    let again = v.validate_shared::<Value>(&token).unwrap();
    assert!(
        std::sync::Arc::ptr_eq(&first, &again),
        "the verdict was flushed"
    );
    assert_eq!(entries(&v), 1);

    // Other material under the same kid: the cached verdict no longer holds.
    let impostor = TestKey::generate(Algorithm::ES256, k.kid()).unwrap();
    idp.set_keys(&[&impostor]);
    keys.refresh().await.unwrap();
    assert_eq!(
        v.validate_shared::<Value>(&token).unwrap_err().kind(),
        ErrorKind::InvalidSignature
    );
}
