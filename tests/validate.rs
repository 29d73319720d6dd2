//! The validator's rules, one behaviour per test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod common;

use std::time::Duration;

use common::*;
use serde::Deserialize;
use serde_json::json;
use tokenwarden::testing::TestKey;
use tokenwarden::{Algorithm, ErrorKind, FixedClock, KeySet, Validator};

const LEEWAY: i64 = 60;

/// A validator over one key with the clock at `now`.
fn at(now: i64, k: &TestKey) -> Validator {
    builder(&[k]).clock(FixedClock(now)).build().unwrap()
}

fn with(claim: &str, value: serde_json::Value) -> serde_json::Value {
    let mut c = claims();
    c[claim] = value;
    c
}

#[test]
fn every_algorithm_validates_a_fresh_token() {
    for alg in Algorithm::ALL {
        let k = key(alg);
        let ok = validator(&[k]).validate_json(&k.token(&claims())).unwrap();
        assert_eq!(ok.header.alg(), alg);
        assert_eq!(ok.header.kid(), Some(alg.as_str()));
        assert_eq!(ok.claims["sub"], "alice");
    }
}

#[test]
fn one_set_with_every_key_type_picks_by_kid() {
    let all: Vec<&TestKey> = Algorithm::ALL.iter().map(|a| key(*a)).collect();
    let v = validator(&all);
    for k in &all {
        assert_eq!(outcome(&v, &k.token(&claims())), "ok", "{}", k.alg());
    }
}

#[test]
fn token_without_kid_is_verified_by_a_compatible_key() {
    let es = key(Algorithm::ES256);
    let ed = key(Algorithm::EdDSA);
    let v = validator(&[es, ed]);
    let token = es.sign_raw(&json!({"alg": "ES256"}).to_string(), &claims().to_string());
    assert_eq!(outcome(&v, &token), "ok");
}

#[test]
fn expired_one_second_inside_leeway_is_accepted() {
    let k = key(Algorithm::EdDSA);
    let token = k.token(&with("exp", json!(NOW)));
    assert_eq!(outcome(&at(NOW + LEEWAY - 1, k), &token), "ok");
}

#[test]
fn expired_exactly_at_leeway_is_rejected() {
    // RFC 7519 §4.1.4: the current time must be *before* exp (+ leeway).
    let k = key(Algorithm::EdDSA);
    let token = k.token(&with("exp", json!(NOW)));
    assert_eq!(outcome(&at(NOW + LEEWAY, k), &token), "expired");
}

#[test]
fn fractional_exp_is_compared_exactly() {
    let k = key(Algorithm::EdDSA);
    let token = k.token(&with("exp", json!(NOW as f64 + 0.5)));
    assert_eq!(outcome(&at(NOW + LEEWAY, k), &token), "ok");
    assert_eq!(outcome(&at(NOW + LEEWAY + 1, k), &token), "expired");
}

#[test]
fn zero_leeway_expires_at_exp() {
    let k = key(Algorithm::EdDSA);
    let v = builder(&[k])
        .leeway(Duration::ZERO)
        .clock(FixedClock(NOW))
        .build()
        .unwrap();
    assert_eq!(outcome(&v, &k.token(&with("exp", json!(NOW + 1)))), "ok");
    assert_eq!(outcome(&v, &k.token(&with("exp", json!(NOW)))), "expired");
}

#[test]
fn not_before_at_leeway_boundary() {
    let k = key(Algorithm::EdDSA);
    let token = k.token(&with("nbf", json!(NOW)));
    assert_eq!(outcome(&at(NOW - LEEWAY, k), &token), "ok");
    assert_eq!(outcome(&at(NOW - LEEWAY - 1, k), &token), "not_yet_valid");
}

#[test]
fn issued_in_future_at_leeway_boundary() {
    let k = key(Algorithm::EdDSA);
    let token = k.token(&with("iat", json!(NOW + LEEWAY)));
    assert_eq!(outcome(&at(NOW, k), &token), "ok");
    let token = k.token(&with("iat", json!(NOW + LEEWAY + 1)));
    assert_eq!(outcome(&at(NOW, k), &token), "issued_in_future");
}

#[test]
fn max_age_at_leeway_boundary() {
    let k = key(Algorithm::EdDSA);
    let v = builder(&[k])
        .max_age(Duration::from_secs(300))
        .build()
        .unwrap();
    assert_eq!(
        outcome(&v, &k.token(&with("iat", json!(NOW - 300 - LEEWAY)))),
        "ok"
    );
    assert_eq!(
        outcome(&v, &k.token(&with("iat", json!(NOW - 300 - LEEWAY - 1)))),
        "token_too_old"
    );
    let mut no_iat = claims();
    no_iat.as_object_mut().unwrap().remove("iat");
    assert_eq!(outcome(&v, &k.token(&no_iat)), "missing_claim");
}

#[test]
fn missing_exp_is_rejected_by_default_and_allowed_on_request() {
    let k = key(Algorithm::EdDSA);
    let mut c = claims();
    c.as_object_mut().unwrap().remove("exp");
    let token = k.token(&c);
    let err = validator(&[k]).validate_json(&token).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::MissingClaim);
    assert!(err.to_string().contains("exp"));
    let lax = builder(&[k]).allow_missing_exp().build().unwrap();
    assert_eq!(outcome(&lax, &token), "ok");
}

#[test]
fn leeway_does_not_disable_other_checks() {
    let k = key(Algorithm::EdDSA);
    let v = builder(&[k])
        .leeway(Duration::from_secs(3600))
        .build()
        .unwrap();
    assert_eq!(
        outcome(&v, &k.token(&with("aud", json!("other")))),
        "invalid_audience"
    );
    assert_eq!(
        outcome(&v, &k.token(&with("exp", json!(NOW - 3600)))),
        "expired"
    );
}

#[test]
fn issuer_must_match_exactly() {
    let k = key(Algorithm::EdDSA);
    let v = validator(&[k]);
    for iss in [
        "https://idp.test/",
        "HTTPS://IDP.TEST",
        "https://idp.test.evil",
        "",
    ] {
        assert_eq!(
            outcome(&v, &k.token(&with("iss", json!(iss)))),
            "invalid_issuer",
            "{iss}"
        );
    }
    assert_eq!(
        outcome(&v, &k.token(&with("iss", json!(42)))),
        "invalid_claim"
    );
    let mut c = claims();
    c.as_object_mut().unwrap().remove("iss");
    assert_eq!(outcome(&v, &k.token(&c)), "missing_claim");
}

#[test]
fn audience_string_or_array() {
    let k = key(Algorithm::EdDSA);
    let v = validator(&[k]);
    assert_eq!(outcome(&v, &k.token(&with("aud", json!(AUD)))), "ok");
    assert_eq!(outcome(&v, &k.token(&with("aud", json!(["x", AUD])))), "ok");
    assert_eq!(
        outcome(&v, &k.token(&with("aud", json!(["x", "y"])))),
        "invalid_audience"
    );
    assert_eq!(
        outcome(&v, &k.token(&with("aud", json!([])))),
        "invalid_audience"
    );
    assert_eq!(
        outcome(&v, &k.token(&with("aud", json!([AUD, 1])))),
        "invalid_claim"
    );
    assert_eq!(
        outcome(&v, &k.token(&with("aud", json!({"a": AUD})))),
        "invalid_claim"
    );
    let mut c = claims();
    c.as_object_mut().unwrap().remove("aud");
    assert_eq!(outcome(&v, &k.token(&c)), "missing_claim");
}

#[test]
fn any_of_several_configured_audiences_matches() {
    let k = key(Algorithm::EdDSA);
    let v = builder(&[k]).audience("second").build().unwrap();
    assert_eq!(outcome(&v, &k.token(&with("aud", json!("second")))), "ok");
}

#[test]
fn multi_issuer_uses_each_issuers_own_keys() {
    let a = key(Algorithm::ES256);
    let b = key(Algorithm::EdDSA);
    let v = Validator::builder()
        .issuer_with_keys("https://a.test", keyset(&[a]))
        .issuer_with_keys("https://b.test", keyset(&[b]))
        .audience(AUD)
        .clock(FixedClock(NOW))
        .build()
        .unwrap();
    assert_eq!(
        outcome(&v, &a.token(&with("iss", json!("https://a.test")))),
        "ok"
    );
    assert_eq!(
        outcome(&v, &b.token(&with("iss", json!("https://b.test")))),
        "ok"
    );
    // B's key is not trusted for A's tokens.
    assert_eq!(
        outcome(&v, &b.token(&with("iss", json!("https://a.test")))),
        "algorithm_not_allowed"
    );
    assert_eq!(
        outcome(&v, &a.token(&with("iss", json!("https://c.test")))),
        "invalid_issuer"
    );
}

#[test]
fn required_type_for_access_tokens() {
    let k = key(Algorithm::ES256);
    let v = builder(&[k]).required_type("at+jwt").build().unwrap();
    assert_eq!(
        outcome(
            &v,
            &k.token_with_header(&json!({"typ": "at+jwt"}), &claims())
        ),
        "ok"
    );
    assert_eq!(
        outcome(
            &v,
            &k.token_with_header(&json!({"typ": "application/at+JWT"}), &claims())
        ),
        "ok"
    );
    assert_eq!(outcome(&v, &k.token(&claims())), "invalid_type");
    assert_eq!(
        outcome(&v, &k.token_with_header(&json!({}), &claims())),
        "invalid_type"
    );
}

#[test]
fn required_claims_must_be_present() {
    let k = key(Algorithm::ES256);
    let v = builder(&[k])
        .require_claim("sub")
        .require_claim("client_id")
        .build()
        .unwrap();
    let err = v.validate_json(&k.token(&claims())).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::MissingClaim);
    assert!(err.to_string().contains("client_id"));
    assert_eq!(
        outcome(&v, &k.token(&with("client_id", json!("app")))),
        "ok"
    );
}

#[test]
fn custom_check_refuses_with_its_name() {
    let k = key(Algorithm::ES256);
    let v = builder(&[k])
        .check("client_id", |c| match c.get("client_id") {
            Some(id) if id == "my-app" => Ok(()),
            _ => Err("not issued to my-app".into()),
        })
        .build()
        .unwrap();
    assert_eq!(
        outcome(&v, &k.token(&with("client_id", json!("my-app")))),
        "ok"
    );
    let err = v
        .validate_json(&k.token(&with("client_id", json!("other"))))
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidClaim);
    assert!(err.to_string().contains("not issued to my-app"));
}

#[test]
fn claims_deserialise_into_the_callers_type() {
    #[derive(Debug, Deserialize)]
    struct Mine {
        sub: String,
        scope: Vec<String>,
    }
    let k = key(Algorithm::ES256);
    let v = validator(&[k]);
    let ok = v
        .validate::<Mine>(&k.token(&with("scope", json!(["a", "b"]))))
        .unwrap();
    assert_eq!(ok.claims.sub, "alice");
    assert_eq!(ok.claims.scope, ["a", "b"]);
    let err = v.validate::<Mine>(&k.token(&claims())).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidClaim);
}

#[test]
fn bad_signature_is_reported_before_claims() {
    let k = key(Algorithm::ES256);
    let forger = TestKey::generate(Algorithm::ES256, "ES256").unwrap();
    let expired = forger.token(&with("exp", json!(NOW - 9999)));
    assert_eq!(outcome(&validator(&[k]), &expired), "invalid_signature");
}

#[test]
fn explicit_algorithm_list_restricts_what_the_keys_allow() {
    let es = key(Algorithm::ES256);
    let ed = key(Algorithm::EdDSA);
    let v = builder(&[es, ed])
        .algorithms([Algorithm::EdDSA])
        .build()
        .unwrap();
    assert_eq!(outcome(&v, &ed.token(&claims())), "ok");
    assert_eq!(outcome(&v, &es.token(&claims())), "algorithm_not_allowed");
}

#[test]
fn rsa_key_without_alg_accepts_rs_and_ps() {
    let k = key(Algorithm::PS256);
    let mut jwk = k.jwk();
    jwk.as_object_mut().unwrap().remove("alg");
    let keys = KeySet::from_jwks(json!({"keys": [jwk]}).to_string().as_bytes()).unwrap();
    let algs: Vec<_> = keys.algorithms().collect();
    assert_eq!(algs.len(), 6, "{algs:?}");
    let v = Validator::builder()
        .issuer(ISS)
        .audience(AUD)
        .keys(keys)
        .clock(FixedClock(NOW))
        .build()
        .unwrap();
    assert_eq!(outcome(&v, &k.token(&claims())), "ok");
}

#[test]
fn builder_refuses_incomplete_configuration() {
    let k = key(Algorithm::ES256);
    assert!(
        Validator::builder()
            .audience(AUD)
            .keys(keyset(&[k]))
            .build()
            .is_err()
    );
    assert!(
        Validator::builder()
            .issuer(ISS)
            .keys(keyset(&[k]))
            .build()
            .is_err()
    );
    assert!(
        Validator::builder()
            .issuer(ISS)
            .audience(AUD)
            .build()
            .is_err()
    );
    assert!(builder(&[k]).algorithms([]).build().is_err());
    assert!(
        builder(&[k])
            .leeway(Duration::from_secs(86_400))
            .build()
            .is_err()
    );
    let err = Validator::builder()
        .audience(AUD)
        .keys(keyset(&[k]))
        .build()
        .unwrap_err();
    assert!(err.to_string().contains("danger_accept_any_issuer"));
}

#[test]
fn waived_issuer_and_audience_accept_anything_else_valid() {
    let k = key(Algorithm::ES256);
    let v = Validator::builder()
        .danger_accept_any_issuer()
        .danger_accept_any_audience()
        .keys(keyset(&[k]))
        .clock(FixedClock(NOW))
        .build()
        .unwrap();
    let mut c = claims();
    c.as_object_mut().unwrap().remove("aud");
    c["iss"] = json!("anyone");
    assert_eq!(outcome(&v, &k.token(&c)), "ok");
}

#[test]
fn error_messages_never_contain_the_token() {
    let k = key(Algorithm::HS256);
    let v = validator(&[k]);
    let token = k.token(&with("exp", json!(NOW - 9999)));
    let (_, sig) = token.rsplit_once('.').unwrap();
    for bad in [token.clone(), format!("{token}x"), token.replace('.', "!")] {
        let msg = v.validate_json(&bad).unwrap_err().to_string();
        assert!(!msg.contains(sig) && !msg.contains(&bad), "{msg}");
    }
}

#[test]
fn validated_header_reports_typ_and_kid() {
    let k = key(Algorithm::RS256);
    let ok = validator(&[k]).validate_json(&k.token(&claims())).unwrap();
    assert_eq!(ok.header.typ(), Some("JWT"));
    assert_eq!(ok.header.kid(), Some("RS256"));
}

#[test]
fn rules_apply_even_when_the_claims_type_reads_nothing() {
    let k = key(Algorithm::ES256);
    let v = validator(&[k]);
    assert!(
        v.validate::<serde::de::IgnoredAny>(&k.token(&claims()))
            .is_ok()
    );
    let err = v
        .validate::<serde::de::IgnoredAny>(&k.token(&with("exp", json!(NOW - 3600))))
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Expired);
    let err = v
        .validate::<serde::de::IgnoredAny>(&k.token(&with("aud", json!("other"))))
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidAudience);
}

#[test]
fn a_rule_failure_wins_over_a_claims_type_that_fails_half_way() {
    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct Strict {
        aa_first: u64,
        sub: String,
    }
    let k = key(Algorithm::ES256);
    let v = validator(&[k]);
    // "aa_first" is a string, so `Strict` fails on it, before exp is read.
    let mut c = with("exp", json!(NOW - 3600));
    c["aa_first"] = json!("not a number");
    let err = v.validate::<Strict>(&k.token(&c)).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Expired);
    let mut c = claims();
    c["aa_first"] = json!("not a number");
    assert_eq!(
        v.validate::<Strict>(&k.token(&c)).unwrap_err().kind(),
        ErrorKind::InvalidClaim
    );
}

#[test]
fn registered_claims_reach_the_callers_type_and_the_rules_alike() {
    #[derive(Debug, Deserialize)]
    struct Reg<'a> {
        exp: f64,
        iss: std::borrow::Cow<'a, str>,
        aud: serde_json::Value,
    }
    let k = key(Algorithm::ES256);
    let v = validator(&[k]);
    let ok = v
        .validate::<serde_json::Value>(&k.token(&claims()))
        .unwrap();
    let reg: Reg = serde_json::from_value(ok.claims).unwrap();
    assert_eq!(reg.exp, (NOW + 600) as f64);
    assert_eq!(reg.iss, ISS);
    assert_eq!(reg.aud, AUD);
    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct Owned {
        exp: u64,
        iss: String,
        aud: Vec<String>,
    }
    let ok = v
        .validate::<Owned>(&k.token(&with("aud", json!(["x", AUD]))))
        .unwrap();
    assert_eq!(ok.claims.aud, ["x", AUD]);
    assert_eq!(ok.claims.exp, (NOW + 600) as u64);
}

#[test]
fn duplicates_are_refused_whatever_the_claims_type() {
    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct OnlySub {
        sub: String,
    }
    let k = key(Algorithm::EdDSA);
    let v = validator(&[k]);
    let header = json!({"alg": "EdDSA", "kid": "EdDSA"}).to_string();
    let payload = format!(
        r#"{{"iss":"{ISS}","aud":"{AUD}","exp":{},"jti":"a","jti":"b","sub":"x"}}"#,
        NOW + 60
    );
    let token = k.sign_raw(&header, &payload);
    assert_eq!(
        v.validate::<OnlySub>(&token).unwrap_err().kind(),
        ErrorKind::Malformed
    );
    assert_eq!(
        v.validate::<serde::de::IgnoredAny>(&token)
            .unwrap_err()
            .kind(),
        ErrorKind::Malformed
    );
}

#[test]
fn payload_that_is_not_an_object_is_malformed() {
    let k = key(Algorithm::EdDSA);
    let v = validator(&[k]);
    let header = json!({"alg": "EdDSA", "kid": "EdDSA"}).to_string();
    for payload in ["[1,2]", "\"text\"", "42", "{\"exp\":1", "{} {}"] {
        assert_eq!(
            outcome(&v, &k.sign_raw(&header, payload)),
            "malformed",
            "{payload}"
        );
    }
}

#[test]
fn the_verdict_does_not_depend_on_the_claims_type() {
    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct Loose {
        sub: Option<String>,
        exp: Option<serde_json::Value>,
        aud: Option<serde_json::Value>,
    }
    let k = key(Algorithm::ES256);
    let v = validator(&[k]);
    let cases = [
        ("exp", json!(NOW + 60)),
        ("exp", json!(NOW - 3600)),
        ("exp", json!((NOW + 60) as f64 + 0.25)),
        ("exp", json!("soon")),
        ("exp", json!([NOW + 60])),
        ("exp", json!({"at": NOW + 60})),
        ("exp", json!(null)),
        ("nbf", json!(NOW + 3600)),
        ("iat", json!(true)),
        ("iss", json!("https://other.test")),
        ("iss", json!(["https://idp.test"])),
        ("aud", json!([AUD])),
        ("aud", json!(["x", [AUD]])),
        ("aud", json!(["x", 1, AUD])),
        (
            "aud",
            json!(
                (0..70)
                    .map(|i| format!("a{i}"))
                    .chain([AUD.to_owned()])
                    .collect::<Vec<_>>()
            ),
        ),
        ("aud", json!("ot\u{0068}er")),
        ("aud", json!(null)),
    ];
    for (claim, value) in cases {
        let token = k.token(&with(claim, value.clone()));
        let kind =
            |r: Result<(), tokenwarden::Error>| r.map_or_else(|e| e.kind().as_str(), |()| "ok");
        let as_value = kind(v.validate::<serde_json::Value>(&token).map(drop));
        let ignored = kind(v.validate::<serde::de::IgnoredAny>(&token).map(drop));
        let loose = kind(v.validate::<Loose>(&token).map(drop));
        assert_eq!((as_value, ignored), (loose, loose), "{claim}: {value}");
    }
}

#[test]
fn the_header_cache_never_lends_one_tokens_header_to_another() {
    let a = key(Algorithm::ES256);
    let b = key(Algorithm::EdDSA);
    let v = builder(&[a, b]).required_type("at+jwt").build().unwrap();
    let at = a.token_with_header(&json!({"typ": "at+jwt"}), &claims());
    let jwt = a.token_with_header(&json!({"typ": "JWT"}), &claims());
    let other_kid = b.token_with_header(&json!({"typ": "at+jwt"}), &claims());
    for _ in 0..3 {
        assert_eq!(outcome(&v, &at), "ok");
        assert_eq!(outcome(&v, &jwt), "invalid_type");
        assert_eq!(outcome(&v, &at), "ok");
        assert_eq!(outcome(&v, &other_kid), "ok");
        let ok = v.validate_json(&other_kid).unwrap();
        assert_eq!(ok.header.kid(), Some("EdDSA"));
        assert_eq!(ok.header.alg(), Algorithm::EdDSA);
    }
}

#[test]
fn a_forged_header_is_judged_on_its_own_every_time() {
    let a = key(Algorithm::ES256);
    let v = validator(&[a]);
    let good = a.token(&claims());
    let forger = TestKey::generate(Algorithm::ES256, "ES256").unwrap();
    let forged = forger.token_with_header(&json!({"typ": "JWT", "x": 1}), &claims());
    for _ in 0..3 {
        assert_eq!(outcome(&v, &forged), "invalid_signature");
        assert_eq!(outcome(&v, &good), "ok");
    }
}

/// The verdict of `C` on `token`: the error kind's name, or "ok".
fn verdict<C: serde::de::DeserializeOwned>(v: &Validator, token: &str) -> &'static str {
    v.validate::<C>(token)
        .map_or_else(|e| e.kind().as_str(), |_| "ok")
}

#[test]
fn lenient_claims_types_cannot_hide_registered_claims() {
    // Types that read the time claims loosely, or not at all: the rules
    // still read them from the token bytes.
    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct NoTimes {
        sub: String,
    }
    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct LenientNbf {
        #[serde(default)]
        nbf: Option<String>,
    }
    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct StringTimes {
        #[serde(default)]
        exp: Option<String>,
        #[serde(default)]
        iat: Option<String>,
    }
    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct Wide {
        exp: u128,
        #[serde(default)]
        nbf: Option<i128>,
    }
    let k = key(Algorithm::ES256);
    let v = validator(&[k]);
    let cases = [
        ("nbf", json!(NOW + 3600), "not_yet_valid"),
        ("nbf", json!((NOW + 3600) as f64 + 0.5), "not_yet_valid"),
        ("nbf", json!("soon"), "invalid_claim"),
        ("exp", json!(NOW - 3600), "expired"),
        ("exp", json!((NOW + 600).to_string()), "invalid_claim"),
        ("iat", json!(NOW + 3600), "issued_in_future"),
        ("iat", json!("yesterday"), "invalid_claim"),
    ];
    for (claim, value, expected) in cases {
        let token = k.token(&with(claim, value.clone()));
        assert_eq!(outcome(&v, &token), expected, "{claim}: {value}");
        assert_eq!(verdict::<NoTimes>(&v, &token), expected, "{claim}: {value}");
        assert_eq!(
            verdict::<LenientNbf>(&v, &token),
            expected,
            "{claim}: {value}"
        );
        assert_eq!(
            verdict::<StringTimes>(&v, &token),
            expected,
            "{claim}: {value}"
        );
        assert_eq!(verdict::<Wide>(&v, &token), expected, "{claim}: {value}");
    }
    // And a good token passes through every one that can hold it.
    let good = k.token(&with("nbf", json!(NOW - 10)));
    assert_eq!(verdict::<NoTimes>(&v, &good), "ok");
    assert_eq!(verdict::<Wide>(&v, &good), "ok");
    assert_eq!(
        v.validate::<Wide>(&good).unwrap().claims.exp,
        (NOW + 600) as u128
    );
}

#[test]
fn negative_nbf_or_iat_is_an_invalid_claim() {
    let k = key(Algorithm::ES256);
    let v = validator(&[k]);
    for (claim, value) in [
        ("nbf", json!(-1)),
        ("nbf", json!(-0.5)),
        ("nbf", json!(i64::MIN)),
        ("iat", json!(-1)),
        ("iat", json!(-1e10)),
    ] {
        let token = k.token(&with(claim, value.clone()));
        let err = v.validate_json(&token).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidClaim, "{claim}: {value}");
        assert!(err.to_string().contains(claim), "{err}");
        // Whatever the claims type.
        assert_eq!(
            verdict::<serde::de::IgnoredAny>(&v, &token),
            "invalid_claim",
            "{claim}: {value}"
        );
    }
    // The epoch itself is a valid NumericDate.
    assert_eq!(outcome(&v, &k.token(&with("nbf", json!(0)))), "ok");
    assert_eq!(outcome(&v, &k.token(&with("iat", json!(0)))), "ok");
}

#[test]
fn duration_max_settings_neither_panic_nor_disable_checks() {
    let k = key(Algorithm::ES256);
    let expired = k.token(&with("exp", json!(NOW - 3600)));
    let future = k.token(&with("nbf", json!(NOW + 3600)));
    for huge in [Duration::MAX, Duration::from_secs(u64::MAX)] {
        // A leeway that large would accept every expired token: refused at
        // build, or at least not allowed to accept one.
        match builder(&[k]).leeway(huge).build() {
            Err(e) => assert!(e.to_string().contains("leeway"), "{e}"),
            Ok(v) => {
                assert_eq!(outcome(&v, &expired), "expired");
                assert_eq!(outcome(&v, &future), "not_yet_valid");
            }
        }
        // A maximum age of forever: no age limit, but `iat` still required
        // and still checked against the future; `exp`, `nbf` untouched.
        let v = builder(&[k]).max_age(huge).build().unwrap();
        assert_eq!(outcome(&v, &k.token(&claims())), "ok");
        assert_eq!(outcome(&v, &k.token(&with("iat", json!(0)))), "ok");
        assert_eq!(outcome(&v, &expired), "expired");
        assert_eq!(outcome(&v, &future), "not_yet_valid");
        assert_eq!(
            outcome(&v, &k.token(&with("iat", json!(NOW + 3600)))),
            "issued_in_future"
        );
        let mut no_iat = claims();
        no_iat.as_object_mut().unwrap().remove("iat");
        assert_eq!(outcome(&v, &k.token(&no_iat)), "missing_claim");
    }
}

/// Numbers in every JSON form mean the same, whichever way `serde_json` is
/// built: CI runs this file again with `serde_json/arbitrary_precision` on
/// (`.ci/run`), as another crate in a user's build may turn it on.
#[test]
fn numeric_dates_keep_their_meaning_in_every_json_form() {
    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct Floats {
        exp: f64,
        #[serde(default)]
        nbf: Option<f64>,
    }
    let k = key(Algorithm::ES256);
    let single = validator(&[k]);
    // Several issuers with their own keys: `iss` is read first by a separate
    // parse, so both readers of the registered claims are exercised.
    let multi = Validator::builder()
        .issuer_with_keys(ISS, keyset(&[k]))
        .issuer_with_keys("https://other.test", keyset(&[key(Algorithm::EdDSA)]))
        .audience(AUD)
        .clock(FixedClock(NOW))
        .build()
        .unwrap();
    let header = json!({"alg": "ES256", "kid": "ES256"}).to_string();
    let payload = |exp: &str, extra: &str| {
        format!(r#"{{"iss":"{ISS}","aud":"{AUD}","sub":"alice","exp":{exp}{extra}}}"#)
    };
    let far = "1".to_owned() + &"0".repeat(30);
    let cases: Vec<(String, &str, &[&str])> = vec![
        // exp written as an integer, a fraction, with exponents, too big for u64.
        (payload(&(NOW + 600).to_string(), ""), "", &["ok"]),
        (payload(&format!("{}.25", NOW + 600), ""), "", &["ok"]),
        (payload("1.7000006e9", ""), "", &["ok"]),
        (payload("17000006000E-1", ""), "", &["ok"]),
        (payload(&far, ""), "", &["ok"]),
        (payload("1.6e9", ""), "", &["expired"]),
        (payload(&format!("{}.5", NOW - 61), ""), "", &["expired"]),
        (
            payload("1.7000006e9", r#","nbf":4e9"#),
            "",
            &["not_yet_valid"],
        ),
        (
            payload("1.7000006e9", r#","nbf":-1.5e0"#),
            "",
            &["invalid_claim"],
        ),
        (
            payload("1.7000006e9", r#","iat":1.8e9"#),
            "",
            &["issued_in_future"],
        ),
        // Out of f64's range: never a date (serde_json alone calls it malformed).
        (payload("1e400", ""), "", &["malformed", "invalid_claim"]),
        // serde_json's own marker for such numbers, written in the token, is
        // an object, not a number.
        (
            payload(r#"{"$serde_json::private::Number":"4000000000"}"#, ""),
            "",
            &["invalid_claim"],
        ),
        (
            payload(
                "1.7000006e9",
                r#","nbf":{"$serde_json::private::Number":"1"}"#,
            ),
            "",
            &["invalid_claim"],
        ),
    ];
    for (payload, _, expected) in &cases {
        let token = k.sign_raw(&header, payload);
        for v in [&single, &multi] {
            for got in [
                outcome(v, &token),
                verdict::<serde::de::IgnoredAny>(v, &token),
                verdict::<Floats>(v, &token),
            ] {
                // Floats cannot hold an object exp: only the kind may differ
                // there, and only towards a refusal.
                assert!(
                    expected.contains(&got) || (expected[0] != "ok" && got == "invalid_claim"),
                    "{payload}: {got}, expected {expected:?}"
                );
            }
        }
    }
    // The claims reach the caller's type as the numbers they are.
    let token = k.sign_raw(&header, &payload("1.7000006e9", ""));
    let ok = single.validate_json(&token).unwrap();
    assert_eq!(ok.claims["exp"].as_f64(), Some(1_700_000_600.0));
    let ok = single.validate::<Floats>(&token).unwrap();
    assert_eq!(ok.claims.exp, 1_700_000_600.0);
}

/// Proof that the CI step "numbers under serde_json/arbitrary_precision"
/// really builds with it (it sets `TOKENWARDEN_EXPECT_ARBITRARY_PRECISION`),
/// and that the usual build does not: only with the feature does serde_json
/// keep `1e400` as digits instead of refusing it as out of range.
#[test]
fn serde_json_arbitrary_precision_is_on_exactly_when_expected() {
    let on = serde_json::from_str::<serde_json::Value>("1e400").is_ok();
    let expected = std::env::var_os("TOKENWARDEN_EXPECT_ARBITRARY_PRECISION").is_some();
    assert_eq!(on, expected, "serde_json/arbitrary_precision on: {on}");
}

#[test]
fn issuers_sharing_an_algorithm_and_kid_are_kept_apart_by_their_keys() {
    // Two IdPs that both call their ES256 key "main": each issuer's tokens
    // verify only with that issuer's own key.
    let a = TestKey::generate(Algorithm::ES256, "main").unwrap();
    let b = TestKey::generate(Algorithm::ES256, "main").unwrap();
    let v = Validator::builder()
        .issuer_with_keys("https://a.test", keyset(&[&a]))
        .issuer_with_keys("https://b.test", keyset(&[&b]))
        .audience(AUD)
        .clock(FixedClock(NOW))
        .build()
        .unwrap();
    let of = |iss: &str| with("iss", json!(iss));
    // B's key, B's kid, A's name: refused, both ways round.
    assert_eq!(
        outcome(&v, &b.token(&of("https://a.test"))),
        "invalid_signature"
    );
    assert_eq!(
        outcome(&v, &a.token(&of("https://b.test"))),
        "invalid_signature"
    );
    assert_eq!(outcome(&v, &a.token(&of("https://a.test"))), "ok");
    assert_eq!(outcome(&v, &b.token(&of("https://b.test"))), "ok");
    // Repeated, so that no cached header or key choice carries over.
    for _ in 0..3 {
        assert_eq!(outcome(&v, &a.token(&of("https://a.test"))), "ok");
        assert_eq!(
            outcome(&v, &b.token(&of("https://a.test"))),
            "invalid_signature"
        );
    }
}
