//! Any bytes as a request's headers, through the middleware's one decision
//! (`BearerAuth::authorize`) with the token read from `Authorization`, from a
//! custom header and from a cookie: must never panic, and must allow a
//! request only when it carries the one valid token the target signed.
//!
//! Two cookies named `session` must be refused with 400, and so must a
//! cookie whose name percent-decodes or case-folds to `session`. An
//! anonymous-allowing configuration never lets an `Authorization` value
//! that starts with `bearer` pass as anonymous.
//!
//! Input: lines of `name: value`; a value may say `{TOKEN}`, which becomes
//! the valid token, so the fuzzer can explore around a real credential.
#![no_main]

use std::future::Future;
use std::sync::OnceLock;
use std::task::{Context, Poll, Waker};

use http::{HeaderMap, HeaderName, HeaderValue};
use libfuzzer_sys::fuzz_target;
use serde_json::json;
use tokenwarden::middleware::{AuthRejection, BearerAuth, Scopes};
use tokenwarden::testing::TestKey;
use tokenwarden::{Algorithm, FixedClock, KeySet, Validated, Validator};

type Json = serde_json::Map<String, serde_json::Value>;

struct Setup {
    token: String,
    auths: Vec<BearerAuth>,
}

fn setup() -> &'static Setup {
    static S: OnceLock<Setup> = OnceLock::new();
    S.get_or_init(|| {
        let key = TestKey::generate(Algorithm::HS256, "k").expect("keygen");
        let token = key.token(&json!({
            "iss": "iss", "aud": "aud", "sub": "alice", "exp": 2_000, "scope": "read write"
        }));
        let validator = Validator::builder()
            .issuer("iss")
            .audience("aud")
            .keys(KeySet::from_jwks(key.jwks_json().as_bytes()).expect("jwks"))
            .clock(FixedClock(1_000))
            .build()
            .expect("validator");
        let auths = vec![
            BearerAuth::new(validator.clone()).require_scopes(Scopes::all(["read"])),
            BearerAuth::new(validator.clone())
                .from_header("x-token")
                .expect("header name"),
            BearerAuth::new(validator.clone()).from_cookie("session"),
            BearerAuth::new(validator).allow_anonymous(),
        ];
        Setup { token, auths }
    })
}

fuzz_target!(|data: &[u8]| {
    let s = setup();
    let mut headers = HeaderMap::new();
    for line in data.split(|b| *b == b'\n') {
        let Some(colon) = line.iter().position(|b| *b == b':') else {
            continue;
        };
        let (name, value) = (&line[..colon], &line[colon + 1..]);
        let value = replace_token(value.strip_prefix(b" ").unwrap_or(value), &s.token);
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name),
            HeaderValue::from_bytes(&value),
        ) {
            headers.append(name, value);
        }
    }
    for auth in &s.auths {
        if let Ok(Some(validated)) = decide(auth, &headers) {
            assert!(
                headers
                    .values()
                    .any(|v| contains(v.as_bytes(), s.token.as_bytes())),
                "allowed a request without the valid token"
            );
            assert_eq!(validated.claims["sub"], "alice");
        }
    }
    // Two `session` cookies, in one header or across several, are a 400:
    // the cookie-reading configuration never allows them.
    let sessions: usize = headers
        .get_all("cookie")
        .iter()
        .map(|v| {
            v.as_bytes()
                .split(|b| *b == b';')
                .filter(|p| p.trim_ascii().starts_with(b"session="))
                .count()
        })
        .sum();
    // A look-alike of `session` (`%73ession`, `Session`) is a 400 too: an
    // application that decodes or folds cookie names would read it.
    let look_alike = headers.get_all("cookie").iter().any(|v| {
        v.as_bytes().split(|b| *b == b';').any(|pair| {
            pair.iter().position(|b| *b == b'=').is_some_and(|eq| {
                let name = pair[..eq].trim_ascii();
                name != b"session" && decoded_lower(name) == b"session"
            })
        })
    });
    if sessions > 1 || look_alike {
        assert!(
            matches!(decide(&s.auths[2], &headers), Err(ref r) if r.status() == 400),
            "two session cookies, or a look-alike, were not refused with 400"
        );
    }
    // Anonymous means no bearer credential: never a value starting with
    // `bearer` (`Bearer<TAB>x` is a malformed bearer credential).
    if let Ok(None) = decide(&s.auths[3], &headers) {
        for v in headers.get_all("authorization") {
            let v = v.as_bytes().trim_ascii();
            assert!(
                !v.get(..6)
                    .is_some_and(|p| p.eq_ignore_ascii_case(b"bearer")),
                "a bearer credential passed as anonymous"
            );
        }
    }
});

/// The decision for `headers`. With a static key set it never waits: poll
/// it once.
fn decide(
    auth: &BearerAuth,
    headers: &HeaderMap,
) -> Result<Option<Validated<Json>>, AuthRejection> {
    let decision = std::pin::pin!(auth.authorize(headers));
    let Poll::Ready(decision) = decision.poll(&mut Context::from_waker(Waker::noop())) else {
        panic!("a static key set made the decision wait");
    };
    decision
}

/// A cookie name percent-decoded once and ASCII-lowercased.
fn decoded_lower(name: &[u8]) -> Vec<u8> {
    let hex = |b: Option<&u8>| b.and_then(|b| char::from(*b).to_digit(16));
    let mut out = Vec::with_capacity(name.len());
    let mut i = 0;
    while i < name.len() {
        let escaped = match (name[i], hex(name.get(i + 1)), hex(name.get(i + 2))) {
            (b'%', Some(h), Some(l)) => Some((h * 16 + l) as u8),
            _ => None,
        };
        out.push(escaped.unwrap_or(name[i]).to_ascii_lowercase());
        i += if escaped.is_some() { 3 } else { 1 };
    }
    out
}

fn replace_token(value: &[u8], token: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(value.len());
    let mut rest = value;
    while let Some(at) = find(rest, b"{TOKEN}") {
        out.extend_from_slice(&rest[..at]);
        out.extend_from_slice(token.as_bytes());
        rest = &rest[at + 7..];
    }
    out.extend_from_slice(rest);
    out
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    find(hay, needle).is_some()
}
