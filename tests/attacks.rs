//! One test per known attack on JWT validators; each must be refused with
//! the stated kind.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod common;

use common::*;
use serde_json::json;
use tokenwarden::testing::TestKey;
use tokenwarden::{Algorithm, KeySet, Validator};

fn header_b64(h: &serde_json::Value) -> String {
    b64(h.to_string().as_bytes())
}

fn claims_b64() -> String {
    b64(claims().to_string().as_bytes())
}

#[test]
fn alg_none_in_any_casing_is_unsupported() {
    let v = validator(&[key(Algorithm::RS256)]);
    for none in ["none", "None", "NONE", "nOnE"] {
        let h = header_b64(&json!({"alg": none, "kid": "RS256"}));
        // Even with no signature at all the kind says what is wrong: the
        // algorithm (alerts key on the kind).
        assert_eq!(
            outcome(&v, &format!("{h}.{}.", claims_b64())),
            "unsupported_algorithm",
            "{none}"
        );
        assert_eq!(
            outcome(&v, &format!("{h}..")),
            "unsupported_algorithm",
            "{none}"
        );
        assert_eq!(
            outcome(&v, &format!("{h}.{}.AAAA", claims_b64())),
            "unsupported_algorithm",
            "{none}"
        );
    }
}

#[test]
fn unknown_algorithm_names_are_unsupported() {
    let v = validator(&[key(Algorithm::RS256)]);
    for alg in ["ES521", "ES256K", "HS1", "RS256 ", "rs256", ""] {
        let h = header_b64(&json!({"alg": alg, "kid": "RS256"}));
        assert_eq!(
            outcome(&v, &format!("{h}.{}.AAAA", claims_b64())),
            "unsupported_algorithm",
            "{alg:?}"
        );
    }
}

/// The RSA public key, in every form an attacker might try as the HMAC secret.
fn rsa_public_key_forms(k: &TestKey) -> Vec<Vec<u8>> {
    let jwk = k.jwk();
    let n = unb64(jwk["n"].as_str().unwrap());
    vec![jwk.to_string().into_bytes(), n, k.jwks_json().into_bytes()]
}

fn hs256_with_secret(secret: &[u8], kid: &str) -> String {
    let input = format!(
        "{}.{}",
        header_b64(&json!({"alg": "HS256", "kid": kid})),
        claims_b64()
    );
    let tag = aws_lc_rs::hmac::sign(
        &aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, secret),
        input.as_bytes(),
    );
    format!("{input}.{}", b64(tag.as_ref()))
}

#[test]
fn alg_confusion_rsa_public_key_as_hmac_secret_is_refused() {
    let rsa = key(Algorithm::RS256);
    // Default: only what the keys declare (RS256) is allowed.
    let v = validator(&[rsa]);
    // Misconfigured allow-list that names HS256 too: the key type still decides.
    let lax = builder(&[rsa])
        .algorithms([Algorithm::RS256, Algorithm::HS256])
        .build()
        .unwrap();
    for secret in rsa_public_key_forms(rsa) {
        let token = hs256_with_secret(&secret, "RS256");
        assert_eq!(outcome(&v, &token), "algorithm_not_allowed");
        assert_eq!(outcome(&lax, &token), "key_rejected");
    }
}

#[test]
fn alg_confusion_without_kid_finds_no_hmac_key() {
    let rsa = key(Algorithm::RS256);
    let lax = builder(&[rsa])
        .algorithms([Algorithm::RS256, Algorithm::HS256])
        .build()
        .unwrap();
    let input = format!("{}.{}", header_b64(&json!({"alg": "HS256"})), claims_b64());
    let secret = rsa.jwk().to_string();
    let tag = aws_lc_rs::hmac::sign(
        &aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, secret.as_bytes()),
        input.as_bytes(),
    );
    assert_eq!(
        outcome(&lax, &format!("{input}.{}", b64(tag.as_ref()))),
        "unknown_key"
    );
}

#[test]
fn stripped_signature_is_malformed() {
    let k = key(Algorithm::ES256);
    let v = validator(&[k]);
    let token = k.token(&claims());
    let (unsigned, _) = token.rsplit_once('.').unwrap();
    assert_eq!(outcome(&v, &format!("{unsigned}.")), "malformed");
    assert_eq!(outcome(&v, unsigned), "malformed");
}

#[test]
fn truncated_signature_is_refused() {
    for alg in [
        Algorithm::RS256,
        Algorithm::ES256,
        Algorithm::EdDSA,
        Algorithm::HS256,
    ] {
        let k = key(alg);
        let v = validator(&[k]);
        let token = k.token(&claims());
        let (input, sig) = token.rsplit_once('.').unwrap();
        let raw = unb64(sig);
        for keep in [raw.len() - 1, raw.len() / 2, 1] {
            let cut = format!("{input}.{}", b64(&raw[..keep]));
            assert_eq!(outcome(&v, &cut), "invalid_signature", "{alg} {keep}");
        }
        // Drop one character: no longer a canonical encoding.
        assert_ne!(outcome(&v, &token[..token.len() - 1]), "ok", "{alg}");
    }
}

fn der_integer(mut b: &[u8]) -> Vec<u8> {
    while b.len() > 1 && b[0] == 0 {
        b = &b[1..];
    }
    let mut v = vec![0x02];
    if b[0] & 0x80 != 0 {
        v.push(b.len() as u8 + 1);
        v.push(0);
    } else {
        v.push(b.len() as u8);
    }
    v.extend_from_slice(b);
    v
}

#[test]
fn der_encoded_ecdsa_signature_is_refused() {
    let k = key(Algorithm::ES256);
    let v = validator(&[k]);
    let token = k.token(&claims());
    let (input, sig) = token.rsplit_once('.').unwrap();
    let raw = unb64(sig);
    let (r, s) = raw.split_at(32);
    let mut body = der_integer(r);
    body.extend(der_integer(s));
    let mut der = vec![0x30, body.len() as u8];
    der.extend(body);
    assert_eq!(
        outcome(&v, &format!("{input}.{}", b64(&der))),
        "invalid_signature"
    );
}

#[test]
fn zero_r_or_s_ecdsa_signature_is_refused() {
    for alg in [Algorithm::ES256, Algorithm::ES384] {
        let k = key(alg);
        let v = validator(&[k]);
        let token = k.token(&claims());
        let (input, sig) = token.rsplit_once('.').unwrap();
        let raw = unb64(sig);
        let n = raw.len() / 2;
        let mut zero_r = raw.clone();
        zero_r[..n].fill(0);
        let mut zero_s = raw.clone();
        zero_s[n..].fill(0);
        for bad in [zero_r, zero_s, vec![0; 2 * n]] {
            assert_eq!(
                outcome(&v, &format!("{input}.{}", b64(&bad))),
                "invalid_signature",
                "{alg}"
            );
        }
    }
}

#[test]
fn embedded_jwk_header_is_never_trusted() {
    let trusted = key(Algorithm::ES256);
    let v = validator(&[trusted]);
    let attacker = TestKey::generate(Algorithm::ES256, "ES256").unwrap();
    // Same kid as the trusted key, attacker's key embedded: signature fails.
    let token = attacker.token_with_header(&json!({"jwk": attacker.jwk()}), &claims());
    assert_eq!(outcome(&v, &token), "invalid_signature");
    // No kid at all: every compatible trusted key is tried, none verifies.
    let h = json!({"alg": "ES256", "jwk": attacker.jwk()});
    let token = attacker.sign_raw(&h.to_string(), &claims().to_string());
    assert_eq!(outcome(&v, &token), "invalid_signature");
}

#[test]
fn jku_and_x5u_headers_are_never_fetched_or_trusted() {
    let trusted = key(Algorithm::RS256);
    let v = validator(&[trusted]);
    let attacker = TestKey::generate(Algorithm::ES256, "attacker").unwrap();
    for h in [
        json!({"jku": "http://127.0.0.1:1/jwks.json"}),
        json!({"x5u": "http://127.0.0.1:1/cert.pem"}),
        json!({"x5c": ["MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA"]}),
    ] {
        let token = attacker.token_with_header(&h, &claims());
        // The attacker's kid is not in our set, and nothing is fetched for it.
        assert_eq!(outcome(&v, &token), "algorithm_not_allowed", "{h}");
        let lax = builder(&[trusted])
            .algorithms([Algorithm::RS256, Algorithm::ES256])
            .build()
            .unwrap();
        assert_eq!(outcome(&lax, &token), "unknown_key", "{h}");
    }
}

#[test]
fn unknown_crit_header_is_refused() {
    let k = key(Algorithm::EdDSA);
    let v = validator(&[k]);
    for crit in [
        json!(["exp"]),
        json!(["http://example.com/x"]),
        json!([]),
        json!("b64"),
    ] {
        let token =
            k.token_with_header(&json!({"crit": crit, "http://example.com/x": 1}), &claims());
        assert_eq!(outcome(&v, &token), "malformed", "{crit}");
    }
}

#[test]
fn b64_false_is_refused() {
    let k = key(Algorithm::EdDSA);
    let v = validator(&[k]);
    let token = k.token_with_header(&json!({"b64": false, "crit": ["b64"]}), &claims());
    assert_eq!(outcome(&v, &token), "malformed");
    let token = k.token_with_header(&json!({"b64": false}), &claims());
    assert_eq!(outcome(&v, &token), "malformed");
}

#[test]
fn duplicate_claims_are_refused() {
    let k = key(Algorithm::EdDSA);
    let v = validator(&[k]);
    let header = json!({"alg": "EdDSA", "kid": "EdDSA"}).to_string();
    let base = format!(r#""iss":"{ISS}","aud":"{AUD}","exp":{}"#, NOW + 60);
    for payload in [
        format!(r#"{{{base},"exp":{}}}"#, NOW + 999_999),
        format!(r#"{{{base},"\u0065xp":{}}}"#, NOW + 999_999),
        format!(r#"{{{base},"iss":"https://evil.test"}}"#),
        format!(r#"{{{base},"sub":"a","sub":"admin"}}"#),
    ] {
        assert_eq!(
            outcome(&v, &k.sign_raw(&header, &payload)),
            "malformed",
            "{payload}"
        );
    }
    let dup_header = r#"{"alg":"EdDSA","kid":"EdDSA","kid":"other"}"#;
    assert_eq!(
        outcome(&v, &k.sign_raw(dup_header, &claims().to_string())),
        "malformed"
    );
}

#[test]
fn numeric_date_as_string_is_invalid_claim() {
    let k = key(Algorithm::EdDSA);
    let v = validator(&[k]);
    for claim in ["exp", "nbf", "iat"] {
        let mut c = claims();
        c[claim] = json!(NOW.to_string());
        assert_eq!(outcome(&v, &k.token(&c)), "invalid_claim", "{claim}");
        c[claim] = json!(null);
        assert_eq!(outcome(&v, &k.token(&c)), "invalid_claim", "{claim}");
    }
}

#[test]
fn rsa_1024_key_is_rejected_even_with_a_valid_signature() {
    let weak: serde_json::Value =
        serde_json::from_str(include_str!("data/rsa1024.jwks.json")).unwrap();
    let good = key(Algorithm::RS256).jwk();
    let jwks = json!({"keys": [weak["keys"][0].clone(), good]}).to_string();
    let keys = KeySet::from_jwks(jwks.as_bytes()).unwrap();
    assert_eq!(keys.len(), 1);
    assert!(
        keys.skipped()[0].reason.contains("1024 bits"),
        "{:?}",
        keys.skipped()
    );
    let v = Validator::builder()
        .issuer("https://idp.example.com")
        .audience("https://api.example.com")
        .keys(keys)
        .build()
        .unwrap();
    let token = include_str!("data/rsa1024.jwt").trim();
    let err = v.validate_json(token).unwrap_err();
    assert_eq!(err.kind().as_str(), "key_rejected");
    assert!(err.to_string().contains("1024"), "{err}");
    // A set of only weak keys is no key set at all.
    let only_weak = KeySet::from_jwks(include_bytes!("data/rsa1024.jwks.json")).unwrap_err();
    assert_eq!(only_weak.kind().as_str(), "keys_unavailable");
}

#[test]
fn unknown_kid_is_refused() {
    let k = key(Algorithm::ES256);
    let v = validator(&[k]);
    let other = TestKey::generate(Algorithm::ES256, "not-in-set").unwrap();
    let err = v.validate_json(&other.token(&claims())).unwrap_err();
    assert_eq!(err.kind().as_str(), "unknown_key");
    assert!(err.to_string().contains("not-in-set"));
}

#[test]
fn kid_of_another_key_type_is_key_rejected() {
    let ec = key(Algorithm::ES256);
    let ed = key(Algorithm::EdDSA);
    let v = builder(&[ec, ed]).build().unwrap();
    // An EdDSA token claiming the EC key's kid.
    let token = ed.sign_raw(
        &json!({"alg": "EdDSA", "kid": "ES256"}).to_string(),
        &claims().to_string(),
    );
    assert_eq!(outcome(&v, &token), "key_rejected");
}

#[test]
fn oversized_token_is_refused_before_decoding() {
    let k = key(Algorithm::HS256);
    let v = validator(&[k]);
    let mut c = claims();
    c["pad"] = json!("x".repeat(9000));
    let err = v.validate_json(&k.token(&c)).unwrap_err();
    assert_eq!(err.kind().as_str(), "token_too_large");
    // Not even a JWS: the size is still what is reported.
    assert_eq!(outcome(&v, &"A".repeat(9000)), "token_too_large");
}

#[test]
fn thousand_deep_json_nesting_is_refused() {
    let k = key(Algorithm::HS256);
    let v = builder(&[k]).max_token_size(64 * 1024).build().unwrap();
    let deep = format!(
        r#"{{"iss":"{ISS}","aud":"{AUD}","exp":{},"x":{}{}}}"#,
        NOW + 60,
        "[".repeat(1000),
        "]".repeat(1000)
    );
    let header = json!({"alg": "HS256", "kid": "HS256"}).to_string();
    assert_eq!(outcome(&v, &k.sign_raw(&header, &deep)), "malformed");
    let deep_obj = format!(
        r#"{{"iss":"{ISS}","aud":"{AUD}","exp":{},"x":{}1{}}}"#,
        NOW + 60,
        r#"{"a":"#.repeat(1000),
        "}".repeat(1000)
    );
    assert_eq!(outcome(&v, &k.sign_raw(&header, &deep_obj)), "malformed");
    let deep_header = format!(
        r#"{{"alg":"HS256","kid":"HS256","x":{}{}}}"#,
        "[".repeat(1000),
        "]".repeat(1000)
    );
    assert_eq!(
        outcome(&v, &k.sign_raw(&deep_header, &claims().to_string())),
        "malformed"
    );
}

#[test]
fn jwe_and_json_serialisations_are_malformed() {
    let v = validator(&[key(Algorithm::RS256)]);
    assert_eq!(outcome(&v, "a.b.c.d.e"), "malformed");
    assert_eq!(
        outcome(&v, r#"{"payload":"x","signatures":[]}"#),
        "malformed"
    );
}

#[test]
fn payload_swapped_under_valid_signature_is_refused() {
    let k = key(Algorithm::PS256);
    let v = validator(&[k]);
    let good = k.token(&claims());
    let mut admin = claims();
    admin["sub"] = json!("admin");
    let evil = k.token(&admin);
    let g: Vec<&str> = good.split('.').collect();
    let e: Vec<&str> = evil.split('.').collect();
    assert_eq!(
        outcome(&v, &format!("{}.{}.{}", g[0], e[1], g[2])),
        "invalid_signature"
    );
}

#[test]
fn padded_or_standard_alphabet_base64_is_malformed() {
    let k = key(Algorithm::HS256);
    let v = validator(&[k]);
    let token = k.token(&claims());
    assert_eq!(outcome(&v, &format!("{token}=")), "malformed");
    assert_eq!(
        outcome(&v, &token.replacen('-', "+", 1).replacen('_', "/", 1)),
        if token.contains(['-', '_']) {
            "malformed"
        } else {
            "ok"
        }
    );
    assert_eq!(outcome(&v, &format!(" {token}")), "malformed");
}

#[test]
fn hmac_key_shorter_than_hash_is_not_loaded() {
    let jwks =
        json!({"keys": [{"kty": "oct", "kid": "short", "alg": "HS256", "k": b64(b"too short")}]});
    let err = KeySet::from_jwks(jwks.to_string().as_bytes()).unwrap_err();
    assert!(err.to_string().contains("shorter"), "{err}");
}

#[test]
fn empty_signature_with_a_real_algorithm_is_still_malformed() {
    let k = key(Algorithm::HS256);
    let v = validator(&[k]);
    let token = k.token(&claims());
    let (input, _) = token.rsplit_once('.').unwrap();
    assert_eq!(outcome(&v, &format!("{input}.")), "malformed");
}

/// Issue 14 item 7: an empty (or all-zero) RSA modulus made the key loader
/// subtract with overflow and panic. Such a key is skipped with a reason.
#[test]
fn empty_or_zero_rsa_modulus_is_skipped_not_a_panic() {
    for n in ["", "AA", "AAAA", "AAAAAAAA"] {
        for e in ["AQAB", "", "AA"] {
            let jwks = json!({"keys": [{"kty": "RSA", "kid": "a", "n": n, "e": e}]}).to_string();
            let err = KeySet::from_jwks(jwks.as_bytes()).unwrap_err();
            assert_eq!(err.kind().as_str(), "keys_unavailable", "n={n:?} e={e:?}");
            assert!(err.to_string().contains("0 bits"), "n={n:?} e={e:?}: {err}");
        }
    }
    // Next to a good key, the bad one is skipped and the good one works.
    let good = key(Algorithm::RS256);
    let jwks = json!({"keys": [{"kty": "RSA", "kid": "a", "n": "", "e": "AQAB"}, good.jwk()]});
    let keys = KeySet::from_jwks(jwks.to_string().as_bytes()).unwrap();
    assert_eq!(keys.len(), 1);
    assert_eq!(keys.skipped()[0].kid.as_deref(), Some("a"));
}

fn hex32(s: &str) -> [u8; 32] {
    let mut out = [0u8; 32];
    for (i, b) in out.iter_mut().enumerate() {
        *b = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).unwrap();
    }
    out
}

/// The eight points of small order on edwards25519, canonically encoded.
fn ed25519_small_order_points() -> Vec<(&'static str, [u8; 32])> {
    let with_sign = |mut p: [u8; 32]| {
        p[31] |= 0x80;
        p
    };
    let y8a = hex32("26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05");
    let y8b = hex32("c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a");
    let mut identity = [0u8; 32];
    identity[0] = 1;
    let mut minus_one = [0xffu8; 32];
    minus_one[0] = 0xec;
    minus_one[31] = 0x7f;
    vec![
        ("identity (order 1)", identity),
        ("(0, -1) (order 2)", minus_one),
        ("y = 0 (order 4)", [0u8; 32]),
        ("y = 0, x negative (order 4)", with_sign([0u8; 32])),
        ("order 8 a", y8a),
        ("order 8 a, x negative", with_sign(y8a)),
        ("order 8 b", y8b),
        ("order 8 b, x negative", with_sign(y8b)),
    ]
}

/// Non-canonical encodings (y >= p, or x = 0 with the sign bit set) of
/// the small-order points, and every other y >= p.
fn ed25519_non_canonical_encodings() -> Vec<[u8; 32]> {
    let mut out = Vec::new();
    // y = p + k for k in 0..19: y = 0 and y = 1 among them (k = 0, 1).
    for k in 0u8..19 {
        let mut y = [0xffu8; 32];
        y[0] = 0xed + k;
        y[31] = 0x7f;
        out.push(y);
        y[31] = 0xff;
        out.push(y);
    }
    // x = 0 with its sign bit set: -0 for the identity and for (0, -1).
    let mut identity = [0u8; 32];
    identity[0] = 1;
    identity[31] = 0x80;
    out.push(identity);
    let mut minus_one = [0xffu8; 32];
    minus_one[0] = 0xec;
    out.push(minus_one);
    out
}

fn okp_jwks(kid: &str, x: &[u8]) -> String {
    json!({"keys": [{"kty": "OKP", "crv": "Ed25519", "kid": kid, "x": b64(x)}]}).to_string()
}

/// Issue 14 item 21: with a small-order public key, R = identity and S = 0
/// verify any message. Each such key is refused at load.
#[test]
fn ed25519_small_order_public_keys_are_refused_at_load() {
    for (name, point) in ed25519_small_order_points() {
        let err = KeySet::from_jwks(okp_jwks("evil", &point).as_bytes()).unwrap_err();
        assert_eq!(err.kind().as_str(), "keys_unavailable", "{name}");
        assert!(err.to_string().contains("small order"), "{name}: {err}");
    }
}

#[test]
fn ed25519_non_canonical_public_keys_are_refused_at_load() {
    for point in ed25519_non_canonical_encodings() {
        let err = KeySet::from_jwks(okp_jwks("evil", &point).as_bytes()).unwrap_err();
        assert_eq!(err.kind().as_str(), "keys_unavailable", "{point:02x?}");
    }
}

#[test]
fn ed25519_identity_key_cannot_verify_a_forged_signature() {
    let good = key(Algorithm::EdDSA);
    let mut identity = [0u8; 32];
    identity[0] = 1;
    let jwks = json!({"keys": [
        good.jwk(),
        {"kty": "OKP", "crv": "Ed25519", "kid": "evil", "x": b64(&identity)},
    ]});
    let v = Validator::builder()
        .issuer(ISS)
        .audience(AUD)
        .clock(tokenwarden::FixedClock(NOW))
        .keys(KeySet::from_jwks(jwks.to_string().as_bytes()).unwrap())
        .build()
        .unwrap();
    // R = the identity's encoding, S = 0: [S]B = R + [k]A for every message
    // when A is the identity.
    let mut sig = [0u8; 64];
    sig[0] = 1;
    let h = header_b64(&json!({"alg": "EdDSA", "kid": "evil"}));
    let token = format!("{h}.{}.{}", claims_b64(), b64(&sig));
    assert_eq!(outcome(&v, &token), "key_rejected");
    // And the real key still works next to it.
    assert_eq!(outcome(&v, &good.token(&claims())), "ok");
}

#[test]
fn a_valid_ed25519_key_still_loads() {
    // RFC 8037 A.2's public key.
    let jwks = r#"{"keys":[{"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}]}"#;
    assert_eq!(KeySet::from_jwks(jwks.as_bytes()).unwrap().len(), 1);
}
