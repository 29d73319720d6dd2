//! Any bytes as an introspection endpoint's answer (RFC 7662 §2.2): a
//! hostile or broken identity provider. Must never panic; a token is active
//! only when the answer is one JSON object without repeated members whose
//! `active` is JSON `true`, whose `iss` is the configured issuer, whose
//! `aud` names the configured audience, whose `exp`/`nbf` hold at now,
//! and whose `token_type`, if any, is `Bearer`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::{Map, Value};

const NOW: i64 = 1_000_000;

fuzz_target!(|body: &[u8]| {
    let Ok(Ok((subject, _))) = tokenwarden::fuzzing::introspection_answer(body, NOW) else {
        return;
    };
    let map: Map<String, Value> = serde_json::from_slice(body).expect("active from non-JSON");
    assert_eq!(map.get("active"), Some(&Value::Bool(true)));
    assert_eq!(map.get("iss"), Some(&Value::from("https://idp.test")));
    let aud_ok = match map.get("aud") {
        Some(Value::String(a)) => a == "api",
        Some(Value::Array(a)) => a.iter().any(|v| v == "api"),
        _ => false,
    };
    assert!(aud_ok, "active without our audience");
    if let Some(exp) = map.get("exp") {
        let exp = exp.as_f64().expect("active with a non-numeric exp");
        assert!(exp > NOW as f64, "active after exp");
    }
    if let Some(nbf) = map.get("nbf") {
        let nbf = nbf.as_f64().expect("active with a non-numeric nbf");
        assert!(nbf <= NOW as f64, "active before nbf");
    }
    // RFC 7662 §2.2 `token_type`: only a bearer access token is taken.
    if let Some(t) = map.get("token_type") {
        let t = t.as_str().expect("active with a non-string token_type");
        assert!(t.eq_ignore_ascii_case("bearer"), "active as a {t:?}");
    }
    assert!(!subject.is_empty());
});
