//! JWK Sets, two ways per input: the bytes as a document, and a document
//! built from the bytes as `arbitrary` parts (kty, crv, alg, kid, use,
//! key_ops, n, e, x, y, k), so that the fuzzer reaches the key parsers
//! (RSA DER, EC points, Ed25519 checks, HMAC lengths) and not only the JSON
//! parser. Must never panic; a set that loads must answer lookups and
//! verifications without panicking, and never verify a token that none of
//! its keys signed.
//!
//! Built with overflow checks and debug assertions on (fuzz/Cargo.toml's
//! release profile): an arithmetic overflow on hostile input is a finding.
#![no_main]

use std::sync::OnceLock;

use arbitrary::{Arbitrary, Unstructured};
use libfuzzer_sys::fuzz_target;
use serde_json::{Map, Value, json};
use tokenwarden::testing::TestKey;
use tokenwarden::{Algorithm, KeySet};

/// Names the parsers branch on, and a few kids.
const NAMES: &[&str] = &[
    "RSA",
    "EC",
    "OKP",
    "oct",
    "P-256",
    "P-384",
    "P-521",
    "Ed25519",
    "Ed448",
    "X25519",
    "secp256k1",
    "HS256",
    "HS384",
    "HS512",
    "RS256",
    "RS384",
    "RS512",
    "PS256",
    "PS384",
    "PS512",
    "ES256",
    "ES384",
    "ES512",
    "EdDSA",
    "none",
    "sig",
    "enc",
    "verify",
    "sign",
    "a",
    "b",
    "",
];

/// A member's value: base64url of any bytes (empty, zeros, short and long
/// included), a member taken from a real key, or any other JSON.
#[derive(Arbitrary, Debug)]
enum Member {
    B64(Vec<u8>),
    Real(u8),
    Text(String),
    Number(i64),
    Null,
}

/// A name the parsers know, or any text.
#[derive(Arbitrary, Debug)]
enum Name {
    Known(u8),
    Other(String),
}

#[derive(Arbitrary, Debug)]
struct Jwk {
    kty: Option<Name>,
    crv: Option<Name>,
    alg: Option<Name>,
    kid: Option<Name>,
    use_: Option<Name>,
    key_ops: Option<Vec<Name>>,
    n: Option<Member>,
    e: Option<Member>,
    x: Option<Member>,
    y: Option<Member>,
    k: Option<Member>,
}

struct Setup {
    /// One key of every algorithm; kid = the algorithm's name.
    keys: Vec<TestKey>,
    /// Every string member of their JWKs (n, e, x, y, k).
    members: Vec<String>,
}

fn setup() -> &'static Setup {
    static S: OnceLock<Setup> = OnceLock::new();
    S.get_or_init(|| {
        let keys: Vec<TestKey> = Algorithm::ALL
            .into_iter()
            .map(|a| TestKey::generate(a, a.as_str()).expect("keygen"))
            .collect();
        let mut members = vec!["AQAB".to_owned()];
        for k in &keys {
            for m in ["n", "e", "x", "y", "k"] {
                if let Some(v) = k.jwk()[m].as_str() {
                    members.push(v.to_owned());
                }
            }
        }
        Setup { keys, members }
    })
}

fn name(n: &Name) -> Value {
    match n {
        Name::Known(i) => json!(NAMES[usize::from(*i) % NAMES.len()]),
        Name::Other(s) => json!(s),
    }
}

fn member(m: &Member, s: &Setup) -> Value {
    use base64::Engine as _;
    match m {
        Member::B64(b) => json!(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)),
        Member::Real(i) => json!(s.members[usize::from(*i) % s.members.len()]),
        Member::Text(t) => json!(t),
        Member::Number(n) => json!(n),
        Member::Null => Value::Null,
    }
}

fn build(jwks: &[Jwk], s: &Setup) -> Vec<u8> {
    let keys: Vec<Value> = jwks
        .iter()
        .map(|j| {
            let mut o = Map::new();
            let names = [
                ("kty", &j.kty),
                ("crv", &j.crv),
                ("alg", &j.alg),
                ("kid", &j.kid),
                ("use", &j.use_),
            ];
            for (k, v) in names {
                if let Some(v) = v {
                    o.insert(k.into(), name(v));
                }
            }
            if let Some(ops) = &j.key_ops {
                o.insert("key_ops".into(), ops.iter().map(name).collect());
            }
            let members = [
                ("n", &j.n),
                ("e", &j.e),
                ("x", &j.x),
                ("y", &j.y),
                ("k", &j.k),
            ];
            for (k, v) in members {
                if let Some(v) = v {
                    o.insert(k.into(), member(v, s));
                }
            }
            Value::Object(o)
        })
        .collect();
    json!({ "keys": keys }).to_string().into_bytes()
}

fn exercise(doc: &[u8], s: &Setup) {
    let Ok(set) = KeySet::from_jwks(doc) else {
        return;
    };
    let _ = set.kids().count();
    let _ = set.algorithms().count();
    let _ = set.skipped_count();
    // Real tokens, with and without a kid: the lookup and verify paths.
    for k in s.keys.iter().step_by(3) {
        let token = k.sign_raw(
            &format!(r#"{{"alg":"{}","kid":"{}"}}"#, k.alg(), k.kid()),
            "{}",
        );
        let _ = set.verify_jws(&token);
        let no_kid = k.sign_raw(&format!(r#"{{"alg":"{}"}}"#, k.alg()), "{}");
        let _ = set.verify_jws(&no_kid);
    }
    // Forged: never verifies, whatever the set holds.
    for alg in Algorithm::ALL {
        for kid in set.kids().take(2) {
            let forged = format!(
                "{}.e30.{}",
                b64(format!(r#"{{"alg":"{alg}","kid":{}}}"#, json!(kid)).as_bytes()),
                b64(&[1u8; 64])
            );
            assert!(set.verify_jws(&forged).is_err(), "forgery verified");
        }
    }
}

fn b64(b: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
}

fuzz_target!(|data: &[u8]| {
    let s = setup();
    // 1. The bytes as a document.
    exercise(data, s);
    // 2. A document built from the bytes as parts.
    if let Ok(jwks) = Vec::<Jwk>::arbitrary_take_rest(Unstructured::new(data)) {
        exercise(&build(&jwks, s), s);
    }
});
