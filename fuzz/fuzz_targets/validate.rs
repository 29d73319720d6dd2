//! Any bytes as a token, against a validator holding one key of every type:
//! must never panic, and must never accept anything but the valid tokens the
//! target itself signs.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use serde_json::json;
use tokenwarden::testing::{TestKey, jwks_json};
use tokenwarden::{Algorithm, FixedClock, KeySet, Validator};

struct Setup {
    validator: Validator,
    keys: Vec<TestKey>,
}

fn setup() -> &'static Setup {
    static S: OnceLock<Setup> = OnceLock::new();
    S.get_or_init(|| {
        let keys: Vec<TestKey> = [Algorithm::HS256, Algorithm::ES256, Algorithm::EdDSA]
            .into_iter()
            .map(|a| TestKey::generate(a, a.as_str()).expect("keygen"))
            .collect();
        let refs: Vec<&TestKey> = keys.iter().collect();
        let validator = Validator::builder()
            .issuer("iss")
            .audience("aud")
            .keys(KeySet::from_jwks(jwks_json(&refs).as_bytes()).expect("jwks"))
            .clock(FixedClock(1_000))
            .build()
            .expect("validator");
        Setup { validator, keys }
    })
}

fuzz_target!(|data: &[u8]| {
    let s = setup();
    let text = String::from_utf8_lossy(data);
    // 1. The bytes as a whole token: never accepted (the fuzzer cannot forge
    //    a signature).
    assert!(s.validator.validate_json(&text).is_err());
    // 2. The bytes as a header and payload, validly signed: never panics.
    if let Some((header, payload)) = text.split_once('\u{0}') {
        for k in &s.keys {
            let _ = s.validator.validate_json(&k.sign_raw(header, payload));
        }
    }
    // 3. The bytes as claims JSON in a well-formed token: never panics.
    if let Ok(claims) = serde_json::from_slice::<serde_json::Value>(data) {
        let _ = s.validator.validate_json(&s.keys[0].token(&json!(claims)));
    }
});
