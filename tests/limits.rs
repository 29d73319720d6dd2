//! Every resource limit, at its default: the largest input the limit allows
//! is accepted, and one more (byte, level, member, key, value) is refused
//! with the stated kind. SECURITY.md lists the same limits.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod common;

use common::idp::Idp;
use common::*;
use serde_json::{Value, json};
use tokenwarden::remote::FetchErrorKind;
use tokenwarden::testing::{TestKey, jwks_json};
use tokenwarden::{
    Algorithm, DEFAULT_MAX_TOKEN_SIZE, FixedClock, KeySet, MAX_KEYS, RemoteKeySet, Validator,
};

fn with_keys(keys: KeySet) -> Validator {
    Validator::builder()
        .issuer(ISS)
        .audience(AUD)
        .clock(FixedClock(NOW))
        .keys(keys)
        .build()
        .unwrap()
}

fn hs() -> &'static TestKey {
    key(Algorithm::HS256)
}

/// A validly signed HS256 token of exactly `len` bytes, padded through one
/// header and one claim member (two knobs reach every length).
fn token_of_len(len: usize) -> String {
    for header_pad in 0..4 {
        let header = json!({"alg": "HS256", "kid": "HS256", "p": "h".repeat(header_pad)});
        let mut lo = 0;
        let mut hi = len;
        while lo <= hi {
            let mid = (lo + hi) / 2;
            let mut c = claims();
            c["pad"] = json!("x".repeat(mid));
            let t = hs().token_with_header(&header, &c);
            match t.len().cmp(&len) {
                std::cmp::Ordering::Equal => return t,
                std::cmp::Ordering::Less => lo = mid + 1,
                std::cmp::Ordering::Greater => hi = mid - 1,
            }
        }
    }
    panic!("no token of {len} bytes")
}

#[test]
fn token_bytes_limit_is_8_kib() {
    let v = validator(&[hs()]);
    assert_eq!(DEFAULT_MAX_TOKEN_SIZE, 8192);
    let at = token_of_len(DEFAULT_MAX_TOKEN_SIZE);
    assert_eq!(outcome(&v, &at), "ok");
    let past = token_of_len(DEFAULT_MAX_TOKEN_SIZE + 1);
    assert_eq!(outcome(&v, &past), "token_too_large");
    // Configurable, both ways.
    let small = builder(&[hs()]).max_token_size(1024).build().unwrap();
    assert_eq!(outcome(&small, &token_of_len(1024)), "ok");
    assert_eq!(outcome(&small, &token_of_len(1025)), "token_too_large");
}

/// `levels` nested arrays around a number.
/// A token's payload and signature are decoded on the stack up to 2 KiB and
/// on the heap past it: valid tokens on both sides of that edge pass, and the
/// same tokens with one signature character changed fail.
#[test]
fn tokens_either_side_of_the_stack_decode_buffer() {
    let v = validator(&[hs()]);
    // About 2 730 base64 characters of payload and signature decode to 2 KiB.
    for len in (2_700..2_800).step_by(7) {
        let token = token_of_len(len);
        assert_eq!(outcome(&v, &token), "ok", "{len}");
        let (input, sig) = token.rsplit_once('.').unwrap();
        let first = if sig.starts_with('A') { 'B' } else { 'A' };
        let forged = format!("{input}.{first}{}", &sig[1..]);
        assert_eq!(outcome(&v, &forged), "invalid_signature", "{len}");
    }
}

fn nested(levels: usize) -> Value {
    let mut v = json!(1);
    for _ in 0..levels {
        v = json!([v]);
    }
    v
}

#[test]
fn json_depth_limit_is_32_in_claims_and_header() {
    let v = validator(&[hs()]);
    // The claims object itself is level 1.
    let mut c = claims();
    c["deep"] = nested(31);
    assert_eq!(outcome(&v, &hs().token(&c)), "ok");
    c["deep"] = nested(32);
    assert_eq!(outcome(&v, &hs().token(&c)), "malformed");

    let header = |levels| json!({"alg": "HS256", "kid": "HS256", "x-deep": nested(levels)});
    assert_eq!(
        outcome(&v, &hs().token_with_header(&header(31), &claims())),
        "ok"
    );
    assert_eq!(
        outcome(&v, &hs().token_with_header(&header(32), &claims())),
        "malformed"
    );
}

#[test]
fn members_limit_is_256_per_object() {
    let v = validator(&[hs()]);
    let with_members = |total: usize| {
        let mut c = claims();
        let base = c.as_object().unwrap().len();
        for i in 0..total - base {
            c[format!("m{i}")] = json!(0);
        }
        assert_eq!(c.as_object().unwrap().len(), total);
        c
    };
    assert_eq!(outcome(&v, &hs().token(&with_members(256))), "ok");
    let err = v
        .validate_json(&hs().token(&with_members(257)))
        .unwrap_err();
    assert_eq!(err.kind().as_str(), "malformed");
    assert!(err.to_string().contains("more than 256 members"), "{err}");

    let header = |total: usize| {
        let mut h = json!({"alg": "HS256", "kid": "HS256"});
        for i in 0..total - 2 {
            h[format!("h{i}")] = json!(0);
        }
        h
    };
    assert_eq!(
        outcome(&v, &hs().token_with_header(&header(256), &claims())),
        "ok"
    );
    assert_eq!(
        outcome(&v, &hs().token_with_header(&header(257), &claims())),
        "malformed"
    );
}

#[test]
fn kid_length_limit_is_256_bytes() {
    for (len, expected) in [(256, "ok"), (257, "malformed")] {
        let k = TestKey::generate(Algorithm::HS256, "k".repeat(len)).unwrap();
        let v = with_keys(keyset(&[&k]));
        assert_eq!(outcome(&v, &k.token(&claims())), expected, "kid of {len}");
    }
}

#[test]
fn keys_per_set_limit_is_256() {
    assert_eq!(MAX_KEYS, 256);
    let keys: Vec<TestKey> = (0..=MAX_KEYS)
        .map(|i| TestKey::generate(Algorithm::HS256, format!("k{i}")).unwrap())
        .collect();
    let at: Vec<&TestKey> = keys[..MAX_KEYS].iter().collect();
    let set = KeySet::from_jwks(jwks_json(&at).as_bytes()).unwrap();
    assert_eq!((set.len(), set.skipped().len()), (256, 0));

    let past: Vec<&TestKey> = keys.iter().collect();
    let set = KeySet::from_jwks(jwks_json(&past).as_bytes()).unwrap();
    assert_eq!((set.len(), set.skipped().len()), (256, 1));
    let skipped = &set.skipped()[0];
    assert_eq!(skipped.kid.as_deref(), Some("k256"));
    assert!(
        skipped.reason.contains("maximum of 256"),
        "{}",
        skipped.reason
    );
    // The last key that fits verifies; the one past it was skipped, which
    // the refusal says (not a bare "unknown kid").
    let v = with_keys(set);
    assert_eq!(outcome(&v, &keys[255].token(&claims())), "ok");
    assert_eq!(outcome(&v, &keys[256].token(&claims())), "key_rejected");
}

#[test]
fn audiences_limit_is_64_values() {
    let v = validator(&[hs()]);
    // Ours is the last of `n` values.
    let token = |n: usize| {
        let mut aud: Vec<Value> = (1..n).map(|i| json!(format!("other-{i}"))).collect();
        aud.push(json!(AUD));
        let mut c = claims();
        c["aud"] = Value::Array(aud);
        hs().token(&c)
    };
    assert_eq!(outcome(&v, &token(64)), "ok");
    let err = v.validate_json(&token(65)).unwrap_err();
    assert_eq!(err.kind().as_str(), "invalid_claim");
    assert!(err.to_string().contains("64"), "{err}");
}

#[cfg(feature = "axum")]
#[tokio::test]
async fn scopes_limit_is_256_values_read() {
    use tokenwarden::middleware::{BearerAuth, MAX_SCOPES, Scopes};
    assert_eq!(MAX_SCOPES, 256);
    let auth = BearerAuth::new(validator(&[hs()])).require_scopes(Scopes::all(["wanted"]));
    // `wanted` is the last of `n` scopes, as a string and as an `scp` array.
    for form in ["scope", "scp"] {
        for (n, allowed) in [(256, true), (257, false)] {
            let mut list: Vec<String> = (1..n).map(|i| format!("s{i}")).collect();
            list.push("wanted".into());
            let mut c = claims();
            c[form] = if form == "scope" {
                json!(list.join(" "))
            } else {
                json!(list)
            };
            let mut headers = axum::http::HeaderMap::new();
            let value = format!("Bearer {}", hs().token(&c));
            headers.insert("authorization", value.parse().unwrap());
            let decision = auth.authorize(&headers).await;
            match decision {
                Ok(Some(_)) => assert!(allowed, "{form}: {n} scopes allowed"),
                Err(r) => {
                    assert!(!allowed, "{form}: {n} scopes refused: {r:?}");
                    assert_eq!(r.status(), 403);
                }
                Ok(None) => panic!("no credentials seen"),
            }
        }
    }
}

/// `{"keys":[<jwk>]}` padded with spaces to exactly `len` bytes.
fn jwks_of_len(len: usize) -> String {
    let mut text = jwks_json(&[key(Algorithm::ES256)]);
    assert!(text.len() <= len);
    text.push_str(&" ".repeat(len - text.len()));
    text
}

const MIB: usize = 1024 * 1024;

#[tokio::test]
async fn jwks_body_limit_is_1_mib() {
    let idp = Idp::start(&[]).await;
    let keys = RemoteKeySet::builder()
        .jwks_url(idp.jwks_url())
        .allow_http_loopback(true)
        .build()
        .unwrap();
    idp.set_jwks_text(jwks_of_len(MIB));
    keys.refresh().await.unwrap();
    assert_eq!(keys.stats().keys, 1);

    idp.set_jwks_text(jwks_of_len(MIB + 1));
    let err = keys.refresh().await.unwrap_err();
    assert_eq!(err.kind(), FetchErrorKind::TooLarge, "{err}");
}

#[tokio::test]
async fn discovery_body_limit_is_1_mib() {
    let idp = Idp::start(&[key(Algorithm::ES256)]).await;
    let build = || {
        RemoteKeySet::builder()
            .discovery(idp.issuer())
            .allow_http_loopback(true)
            .build()
            .unwrap()
    };
    let doc_len = json!({"issuer": idp.issuer(), "jwks_uri": idp.jwks_url()})
        .to_string()
        .len();
    idp.set_discovery_padding(MIB - doc_len);
    build().refresh().await.unwrap();

    idp.set_discovery_padding(MIB - doc_len + 1);
    let err = build().refresh().await.unwrap_err();
    assert_eq!(err.kind(), FetchErrorKind::TooLarge, "{err}");
}

#[test]
fn keys_tried_for_a_token_without_kid_is_4() {
    let keys: Vec<TestKey> = (0..5)
        .map(|i| TestKey::generate(Algorithm::HS256, format!("k{i}")).unwrap())
        .collect();
    let refs: Vec<&TestKey> = keys.iter().collect();
    let v = with_keys(keyset(&refs));
    let no_kid = |k: &TestKey| k.sign_raw(r#"{"alg":"HS256"}"#, &claims().to_string());
    // In set order: the 4th compatible key is tried, the 5th is not.
    assert_eq!(outcome(&v, &no_kid(&keys[3])), "ok");
    assert_eq!(outcome(&v, &no_kid(&keys[4])), "invalid_signature");
}

/// The input of golang-jwt's CVE-2025-30204 (a bearer value of dots, which
/// cost it O(n) allocations): refused as malformed up to the size limit, as
/// too large past it, without splitting into more than three segments.
#[test]
fn a_token_of_dots_is_refused_cheaply() {
    let v = validator(&[hs()]);
    assert_eq!(
        outcome(&v, &".".repeat(DEFAULT_MAX_TOKEN_SIZE)),
        "malformed"
    );
    assert_eq!(
        outcome(&v, &".".repeat(DEFAULT_MAX_TOKEN_SIZE + 1)),
        "token_too_large"
    );
    assert_eq!(
        outcome(&v, &format!("a.b.c{}", ".".repeat(100))),
        "malformed"
    );
}

/// Issue 14 item 12: a hostile set cannot make one token cost many
/// signature checks by giving many keys the same kid: 4 are kept.
#[test]
fn keys_per_kid_limit_is_4() {
    let keys: Vec<TestKey> = (0..6)
        .map(|_| TestKey::generate(Algorithm::HS256, "same").unwrap())
        .collect();
    let refs: Vec<&TestKey> = keys.iter().collect();
    let set = KeySet::from_jwks(jwks_json(&refs).as_bytes()).unwrap();
    assert_eq!((set.len(), set.skipped().len()), (4, 2));
    assert!(
        set.skipped()[0]
            .reason
            .contains("maximum of 4 keys with this kid"),
        "{}",
        set.skipped()[0].reason
    );
    // The 4th key with the kid verifies; the 5th was not kept, so its
    // token costs at most 4 checks and fails.
    let v = with_keys(set);
    assert_eq!(outcome(&v, &keys[3].token(&claims())), "ok");
    assert_eq!(outcome(&v, &keys[4].token(&claims())), "invalid_signature");
}

/// Issue 14 item 12: the skipped-key list keeps 64 reasons and counts the
/// rest; a kid among the kept ones is still answered as skipped.
#[test]
fn skipped_keys_kept_limit_is_64() {
    let mut doc: Vec<Value> = (0..5000)
        .map(|i| json!({"kty": "XYZ", "kid": format!("junk{i}")}))
        .collect();
    doc.push(hs().jwk());
    let set = KeySet::from_jwks(json!({ "keys": doc }).to_string().as_bytes()).unwrap();
    assert_eq!(set.len(), 1);
    assert_eq!(set.skipped().len(), 64);
    assert_eq!(set.skipped_count(), 5000);
    let v = with_keys(set);
    let kept = TestKey::generate(Algorithm::HS256, "junk63").unwrap();
    assert_eq!(outcome(&v, &kept.token(&claims())), "key_rejected");
    let past = TestKey::generate(Algorithm::HS256, "junk64").unwrap();
    assert_eq!(outcome(&v, &past.token(&claims())), "unknown_key");
    assert_eq!(outcome(&v, &hs().token(&claims())), "ok");
    // A set of nothing but junk says how many were skipped.
    let junk: Vec<Value> = (0..5000).map(|i| json!({"kty": "XYZ", "kid": i})).collect();
    let err = KeySet::from_jwks(json!({ "keys": junk }).to_string().as_bytes()).unwrap_err();
    assert!(err.to_string().contains("5000 skipped"), "{err}");
}
