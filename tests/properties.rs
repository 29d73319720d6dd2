//! Property tests: no input panics, no altered token passes, a well-formed
//! token with one mutation gets exactly the verdict that mutation earns, and
//! tokens minted by another library (jsonwebtoken) round-trip their claims.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod common;

use common::*;
use proptest::prelude::*;
use serde_json::{Map, Value, json};
use tokenwarden::Algorithm;

fn token_for(alg: Algorithm) -> String {
    key(alg).token(&claims())
}

const FAST_ALGS: [Algorithm; 4] = [
    Algorithm::HS256,
    Algorithm::ES256,
    Algorithm::EdDSA,
    Algorithm::RS256,
];

const B64URL: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

#[derive(Debug, Clone)]
enum Mutation {
    Replace(usize, u8),
    Delete(usize),
    Insert(usize, u8),
    SwapSegments,
    Truncate(usize),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Mutation::Replace(i, b)),
        any::<usize>().prop_map(Mutation::Delete),
        (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Mutation::Insert(i, b)),
        Just(Mutation::SwapSegments),
        any::<usize>().prop_map(Mutation::Truncate),
    ]
}

fn apply(token: &str, muts: &[Mutation]) -> Vec<u8> {
    let mut t = token.as_bytes().to_vec();
    for m in muts {
        if t.is_empty() {
            break;
        }
        match *m {
            // Mostly stay in the alphabet so the change reaches the decoder.
            Mutation::Replace(i, b) => {
                let i = i % t.len();
                t[i] = if b < 200 {
                    B64URL[b as usize % B64URL.len()]
                } else {
                    b
                };
            }
            Mutation::Delete(i) => {
                let i = i % t.len();
                t.remove(i);
            }
            Mutation::Insert(i, b) => {
                let i = i % (t.len() + 1);
                t.insert(
                    i,
                    if b < 200 {
                        B64URL[b as usize % B64URL.len()]
                    } else {
                        b
                    },
                );
            }
            Mutation::SwapSegments => {
                let s = String::from_utf8_lossy(&t).into_owned();
                let parts: Vec<&str> = s.split('.').collect();
                if parts.len() == 3 {
                    t = format!("{}.{}.{}", parts[1], parts[0], parts[2]).into_bytes();
                }
            }
            Mutation::Truncate(i) => t.truncate(i % t.len()),
        }
    }
    t
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic_and_never_pass(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let v = validator(&[key(Algorithm::HS256), key(Algorithm::EdDSA)]);
        let s = String::from_utf8_lossy(&bytes);
        prop_assert!(v.validate_json(&s).is_err());
    }

    #[test]
    fn arbitrary_three_segment_strings_never_pass(
        h in "[A-Za-z0-9_-]{0,80}", p in "[A-Za-z0-9_-]{0,200}", s in "[A-Za-z0-9_-]{0,120}"
    ) {
        let v = validator(&[key(Algorithm::HS256), key(Algorithm::EdDSA)]);
        let token = format!("{h}.{p}.{s}");
        prop_assert!(v.validate_json(&token).is_err());
    }

    #[test]
    fn mutated_tokens_never_pass_unless_unchanged(
        alg_i in 0usize..FAST_ALGS.len(),
        muts in proptest::collection::vec(mutation(), 1..4),
    ) {
        let alg = FAST_ALGS[alg_i];
        let token = token_for(alg);
        let v = validator(&[key(alg)]);
        let mutated = apply(&token, &muts);
        let s = String::from_utf8_lossy(&mutated);
        let result = v.validate_json(&s);
        if *s == *token {
            prop_assert!(result.is_ok());
        } else {
            prop_assert!(result.is_err(), "mutation {:?} passed", muts);
        }
    }

    #[test]
    fn arbitrary_json_payloads_signed_validly_never_panic(payload in "\\PC{0,300}", header_extra in "\\PC{0,40}") {
        let k = key(Algorithm::HS256);
        let v = validator(&[k]);
        let header = format!(r#"{{"alg":"HS256","kid":"HS256","x":{:?}}}"#, header_extra);
        let _ = v.validate_json(&k.sign_raw(&header, &payload));
        let _ = v.validate_json(&k.sign_raw(&payload, &claims().to_string()));
    }

    #[test]
    fn random_claims_minted_by_jsonwebtoken_round_trip(
        sub in "\\PC{0,40}",
        extra in proptest::collection::btree_map("[a-z_]{1,12}", claim_value(), 0..8),
        aud_as_array in any::<bool>(),
        hmac in any::<bool>(),
    ) {
        let mut c = Map::new();
        for (k, val) in extra {
            c.insert(k, val);
        }
        c.insert("sub".into(), json!(sub));
        c.insert("iss".into(), json!(ISS));
        c.insert("aud".into(), if aud_as_array { json!(["other", AUD]) } else { json!(AUD) });
        c.insert("exp".into(), json!(NOW + 300));
        c.insert("iat".into(), json!(NOW));
        let claims = Value::Object(c);
        let ok = if hmac {
            validator(&[key(Algorithm::HS256)]).validate::<Value>(&mint_hs256(&claims)).unwrap()
        } else {
            jsonwebtoken_ed25519().1.validate::<Value>(&mint_eddsa(&claims)).unwrap()
        };
        prop_assert_eq!(ok.claims, claims);
    }
}

fn claim_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        any::<i64>().prop_map(|n| json!(n)),
        any::<bool>().prop_map(|b| json!(b)),
        "\\PC{0,20}".prop_map(|s| json!(s)),
        Just(Value::Null),
    ];
    leaf.prop_recursive(3, 16, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            proptest::collection::btree_map("[a-z]{1,6}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn mint_hs256(claims: &Value) -> String {
    let secret = unb64(key(Algorithm::HS256).jwk()["k"].as_str().unwrap());
    let mut h = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
    h.kid = Some("HS256".into());
    jsonwebtoken::encode(&h, claims, &jsonwebtoken::EncodingKey::from_secret(&secret)).unwrap()
}

/// An Ed25519 key that jsonwebtoken signs with (PKCS #8), and the validator
/// that trusts its public JWK.
fn jsonwebtoken_ed25519() -> &'static (Vec<u8>, tokenwarden::Validator) {
    use aws_lc_rs::signature::KeyPair as _;
    use std::sync::OnceLock;
    static KEY: OnceLock<(Vec<u8>, tokenwarden::Validator)> = OnceLock::new();
    KEY.get_or_init(|| {
        let kp = aws_lc_rs::signature::Ed25519KeyPair::generate().unwrap();
        let jwk = json!({"kty": "OKP", "crv": "Ed25519", "kid": "jwt-ed", "x": b64(kp.public_key().as_ref())});
        let keys = tokenwarden::KeySet::from_jwks(json!({"keys": [jwk]}).to_string().as_bytes()).unwrap();
        let v = tokenwarden::Validator::builder()
            .issuer(ISS)
            .audience(AUD)
            .keys(keys)
            .clock(tokenwarden::FixedClock(NOW))
            .build()
            .unwrap();
        (kp.to_pkcs8().unwrap().as_ref().to_vec(), v)
    })
}

fn mint_eddsa(claims: &Value) -> String {
    let mut h = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::EdDSA);
    h.kid = Some("jwt-ed".into());
    let key = jsonwebtoken::EncodingKey::from_ed_der(&jsonwebtoken_ed25519().0);
    jsonwebtoken::encode(&h, claims, &key).unwrap()
}

/// One change to a well-formed token's claims, re-signed with the right key,
/// and the exact verdict it must earn (leeway 60 s, clock at `NOW`).
#[derive(Debug, Clone)]
enum ClaimMutation {
    ExpPast(i64),
    NbfFuture(i64),
    IatFuture(i64),
    OtherIssuer(String),
    OtherAudience(String),
    WithoutExp,
    ExpAsString,
    DuplicateSub(String),
    HarmlessExtra(String, i64),
}

fn claim_mutation() -> impl Strategy<Value = ClaimMutation> {
    prop_oneof![
        (61i64..1_000_000).prop_map(ClaimMutation::ExpPast),
        (61i64..1_000_000).prop_map(ClaimMutation::NbfFuture),
        (61i64..1_000_000).prop_map(ClaimMutation::IatFuture),
        "[a-z:/.]{0,30}".prop_map(ClaimMutation::OtherIssuer),
        "[a-z:/.]{0,30}".prop_map(ClaimMutation::OtherAudience),
        Just(ClaimMutation::WithoutExp),
        Just(ClaimMutation::ExpAsString),
        "[a-z]{0,10}".prop_map(ClaimMutation::DuplicateSub),
        ("x_[a-z]{1,8}", any::<i64>()).prop_map(|(k, v)| ClaimMutation::HarmlessExtra(k, v)),
    ]
}

/// The payload JSON text after the mutation, and the verdict it earns.
fn mutate_claims(m: &ClaimMutation) -> (String, &'static str) {
    let mut c = claims();
    let verdict = match m {
        ClaimMutation::ExpPast(d) => {
            c["exp"] = json!(NOW - d);
            "expired"
        }
        ClaimMutation::NbfFuture(d) => {
            c["nbf"] = json!(NOW + d);
            "not_yet_valid"
        }
        ClaimMutation::IatFuture(d) => {
            c["iat"] = json!(NOW + d);
            // Still before exp, so iat is what is wrong.
            c["exp"] = json!(NOW + d + 600);
            "issued_in_future"
        }
        ClaimMutation::OtherIssuer(iss) => {
            c["iss"] = json!(if iss == ISS { "x" } else { iss.as_str() });
            "invalid_issuer"
        }
        ClaimMutation::OtherAudience(aud) => {
            c["aud"] = json!(if aud == AUD { "x" } else { aud.as_str() });
            "invalid_audience"
        }
        ClaimMutation::WithoutExp => {
            c.as_object_mut().unwrap().remove("exp");
            "missing_claim"
        }
        ClaimMutation::ExpAsString => {
            c["exp"] = json!((NOW + 600).to_string());
            "invalid_claim"
        }
        ClaimMutation::DuplicateSub(sub) => {
            // serde_json would fold the duplicate away: write the text by hand.
            let text = c.to_string();
            let text = format!("{},\"sub\":{}}}", &text[..text.len() - 1], json!(sub));
            return (text, "malformed");
        }
        ClaimMutation::HarmlessExtra(k, v) => {
            c[k.as_str()] = json!(v);
            "ok"
        }
    };
    (c.to_string(), verdict)
}

/// One change to a well-formed token's header, re-signed, and its verdict.
#[derive(Debug, Clone)]
enum HeaderMutation {
    UnknownKid(String),
    OtherSupportedAlg(usize),
    UnsupportedAlg(String),
    Crit(String),
    B64False,
    DuplicateKid,
}

fn header_mutation() -> impl Strategy<Value = HeaderMutation> {
    prop_oneof![
        "[a-z0-9]{1,20}".prop_map(HeaderMutation::UnknownKid),
        (0usize..Algorithm::ALL.len()).prop_map(HeaderMutation::OtherSupportedAlg),
        "[a-zA-Z0-9]{0,8}".prop_map(HeaderMutation::UnsupportedAlg),
        "[a-z]{1,8}".prop_map(HeaderMutation::Crit),
        Just(HeaderMutation::B64False),
        Just(HeaderMutation::DuplicateKid),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Issue 20 item 9: one byte of a valid signature changed (re-encoded
    /// canonically, so the change reaches the crypto) is exactly
    /// `invalid_signature`.
    #[test]
    fn one_signature_byte_changed_is_invalid_signature(
        alg_i in 0usize..FAST_ALGS.len(),
        at in any::<usize>(),
        flip in 1u8..=255,
    ) {
        let alg = FAST_ALGS[alg_i];
        let token = token_for(alg);
        let v = validator(&[key(alg)]);
        let (input, sig) = token.rsplit_once('.').unwrap();
        let mut sig = unb64(sig);
        let i = at % sig.len();
        sig[i] ^= flip;
        let forged = format!("{input}.{}", b64(&sig));
        prop_assert_eq!(outcome(&v, &forged), "invalid_signature", "{} byte {}", alg, i);
    }

    /// One claim changed under the original signature: `invalid_signature`
    /// (the signature is checked before any claim is read).
    #[test]
    fn one_claim_changed_under_the_old_signature_is_invalid_signature(
        alg_i in 0usize..FAST_ALGS.len(),
        m in claim_mutation(),
    ) {
        let alg = FAST_ALGS[alg_i];
        let token = token_for(alg);
        let v = validator(&[key(alg)]);
        let (payload, _) = mutate_claims(&m);
        let parts: Vec<&str> = token.split('.').collect();
        let forged = format!("{}.{}.{}", parts[0], b64(payload.as_bytes()), parts[2]);
        prop_assert_eq!(outcome(&v, &forged), "invalid_signature", "{:?}", m);
    }

    /// One claim changed and the token re-signed with the right key: the
    /// exact kind the changed claim earns.
    #[test]
    fn one_claim_changed_and_resigned_gets_exactly_its_verdict(
        alg_i in 0usize..FAST_ALGS.len(),
        m in claim_mutation(),
    ) {
        let alg = FAST_ALGS[alg_i];
        let k = key(alg);
        let v = validator(&[k]);
        let (payload, verdict) = mutate_claims(&m);
        let header = json!({"alg": alg.as_str(), "kid": k.kid()}).to_string();
        prop_assert_eq!(outcome(&v, &k.sign_raw(&header, &payload)), verdict, "{:?}", m);
    }

    /// One header change, re-signed: exactly the header's verdict; under the
    /// original signature, the same refusal (or `invalid_signature` for a
    /// header that is acceptable but not the one signed).
    #[test]
    fn one_header_change_gets_exactly_its_verdict(
        alg_i in 0usize..FAST_ALGS.len(),
        m in header_mutation(),
    ) {
        let alg = FAST_ALGS[alg_i];
        let k = key(alg);
        let v = validator(&[k]);
        let mut h = json!({"alg": alg.as_str(), "kid": k.kid()});
        let verdict = match &m {
            HeaderMutation::UnknownKid(kid) => {
                h["kid"] = json!(format!("{kid}-not-in-set"));
                "unknown_key"
            }
            HeaderMutation::OtherSupportedAlg(i) => {
                let other = Algorithm::ALL[*i];
                h["alg"] = json!(other.as_str());
                if other == alg { "ok" } else { "algorithm_not_allowed" }
            }
            HeaderMutation::UnsupportedAlg(name) => {
                let name = if Algorithm::from_name(name).is_some() { "none" } else { name.as_str() };
                h["alg"] = json!(name);
                "unsupported_algorithm"
            }
            HeaderMutation::Crit(name) => {
                h["crit"] = json!([name]);
                h[name.as_str()] = json!(1);
                "malformed"
            }
            HeaderMutation::B64False => {
                h["b64"] = json!(false);
                "malformed"
            }
            HeaderMutation::DuplicateKid => "malformed",
        };
        let header = match m {
            HeaderMutation::DuplicateKid => {
                let t = h.to_string();
                format!("{},\"kid\":\"other\"}}", &t[..t.len() - 1])
            }
            _ => h.to_string(),
        };
        let payload = claims().to_string();
        prop_assert_eq!(outcome(&v, &k.sign_raw(&header, &payload)), verdict, "{:?} re-signed", m);
        // The same header under the original token's signature.
        let original = token_for(alg);
        let (_, sig) = original.rsplit_once('.').unwrap();
        let swapped = format!("{}.{}.{sig}", b64(header.as_bytes()), b64(payload.as_bytes()));
        // The header is judged before any key is used: its own refusal, or
        // for an acceptable header a signature that does not cover it.
        let expected = if verdict == "ok" { "invalid_signature" } else { verdict };
        prop_assert_eq!(outcome(&v, &swapped), expected, "{:?} under the old signature", m);
    }
}
