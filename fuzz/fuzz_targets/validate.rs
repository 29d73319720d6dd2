//! Any bytes as a token, against a validator holding one key of every type:
//! must never panic, and must never accept anything but the valid tokens the
//! target itself signs.
//!
//! Seeds (`seeds/validate/`) are in the three forms the target reads: a
//! token; `header NUL payload` (signed here with each key, so it reaches
//! the claims rules); raw claims (signed as they are). `validate.dict` holds
//! the JOSE and JWT names.
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
    // 3. The bytes as the claims of a well-formed token, kept as they are
    //    (not parsed and re-serialised, which would fold duplicate members
    //    away): the claims parser, duplicate-member and escaped-name rules
    //    included, sees exactly the fuzzer's bytes. Never panics; claims
    //    with a duplicate member are never accepted.
    for k in &s.keys {
        let header = json!({"alg": k.alg().as_str(), "kid": k.kid()}).to_string();
        let result = s.validator.validate_json(&k.sign_raw(&header, &text));
        if result.is_ok() {
            assert!(
                serde_json::from_str::<NoDuplicates>(&text).is_ok(),
                "accepted claims with a duplicate member name"
            );
        }
    }
});

/// Any JSON value with no object holding the same member name twice
/// (compared after unescaping): the oracle for the claims parser.
struct NoDuplicates;

impl<'de> serde::Deserialize<'de> for NoDuplicates {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(NoDuplicatesVisitor)
    }
}

struct NoDuplicatesVisitor;

impl<'de> serde::de::Visitor<'de> for NoDuplicatesVisitor {
    type Value = NoDuplicates;
    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("JSON")
    }
    fn visit_bool<E>(self, _: bool) -> Result<NoDuplicates, E> {
        Ok(NoDuplicates)
    }
    fn visit_i64<E>(self, _: i64) -> Result<NoDuplicates, E> {
        Ok(NoDuplicates)
    }
    fn visit_u64<E>(self, _: u64) -> Result<NoDuplicates, E> {
        Ok(NoDuplicates)
    }
    fn visit_f64<E>(self, _: f64) -> Result<NoDuplicates, E> {
        Ok(NoDuplicates)
    }
    fn visit_str<E>(self, _: &str) -> Result<NoDuplicates, E> {
        Ok(NoDuplicates)
    }
    fn visit_unit<E>(self) -> Result<NoDuplicates, E> {
        Ok(NoDuplicates)
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut a: A) -> Result<NoDuplicates, A::Error> {
        while a.next_element::<NoDuplicates>()?.is_some() {}
        Ok(NoDuplicates)
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut a: A) -> Result<NoDuplicates, A::Error> {
        let mut seen = std::collections::HashSet::new();
        while let Some(k) = a.next_key::<String>()? {
            if !seen.insert(k) {
                return Err(serde::de::Error::custom("duplicate member"));
            }
            a.next_value::<NoDuplicates>()?;
        }
        Ok(NoDuplicates)
    }
}
