//! DPoP proofs (RFC 9449) through a chain of a bearer JWT and a DPoP
//! authenticator: a proof signed with the client's real key whose `htm`,
//! `htu`, `iat` and one extra header parameter or claim come from the
//! fuzzer (or name the request's own method and URI, plus a suffix), sent to a request whose method and path come from the fuzzer too;
//! or any bytes as the `DPoP` header. Must never panic; a request passes
//! only when its method is the proof's `htm`, its path has no dot segment,
//! and the token is the valid bound one.
#![no_main]

use std::future::Future;
use std::sync::OnceLock;
use std::task::{Context, Poll, Waker};

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use serde_json::json;
use tokenwarden::authn::dpop::{DpopAuthenticator, DpopConfig};
use tokenwarden::authn::jwt::JwtAuthenticator;
use tokenwarden::authn::{Chain, Principal, Refusal, RequestView};
use tokenwarden::testing::{DpopProof, TestKey};
use tokenwarden::{Algorithm, FixedClock, KeySet, Validator};

const NOW: i64 = 1_000_000;
const ORIGIN: &str = "https://api.test";

struct Setup {
    client: TestKey,
    token: String,
    chain: Chain,
}

fn setup() -> &'static Setup {
    static S: OnceLock<Setup> = OnceLock::new();
    S.get_or_init(|| {
        let issuer = TestKey::generate(Algorithm::ES256, "issuer").expect("keygen");
        let client = TestKey::generate(Algorithm::ES256, "client").expect("keygen");
        let token = issuer.token(&json!({
            "iss": "iss", "aud": "aud", "sub": "alice", "iat": NOW - 10, "exp": NOW + 600,
            "cnf": {"jkt": client.jwk_thumbprint().expect("thumbprint")},
        }));
        let validator = Validator::builder()
            .issuer("iss")
            .audience("aud")
            .keys(KeySet::from_jwks(issuer.jwks_json().as_bytes()).expect("jwks"))
            .clock(FixedClock(NOW))
            .build()
            .expect("validator");
        let dpop = DpopAuthenticator::new(
            validator.clone(),
            DpopConfig::new(ORIGIN).clock(FixedClock(NOW)),
        )
        .expect("dpop");
        let chain = Chain::new()
            .jwt(JwtAuthenticator::new(validator))
            .dpop(dpop);
        Setup {
            client,
            token,
            chain,
        }
    })
}

#[derive(Arbitrary, Debug)]
struct Input<'a> {
    method: &'a str,
    path: &'a str,
    htm: &'a str,
    htu: &'a str,
    /// The proof names the request's own method and `ORIGIN + path`,
    /// `htu` then a suffix (`?query`, more path): requests that should
    /// pass, for the oracles to hold.
    matching: bool,
    iat_offset: i8,
    /// 0: a signed proof; 1: with an extra header parameter; 2: with an
    /// extra claim; otherwise `raw` is the header.
    mode: u8,
    extra_name: &'a str,
    extra_value: &'a str,
    raw: &'a [u8],
}

fuzz_target!(|input: Input<'_>| {
    let s = setup();
    let proof = match input.mode {
        0..=2 => {
            let (htm, htu) = if input.matching {
                (
                    input.method.to_owned(),
                    format!("{ORIGIN}{}{}", input.path, input.htu),
                )
            } else {
                (input.htm.to_owned(), input.htu.to_owned())
            };
            let mut p = DpopProof::new(&s.client, &htm, &htu)
                .iat(NOW.saturating_add(i64::from(input.iat_offset)))
                .access_token(&s.token);
            match input.mode {
                1 => p = p.header(input.extra_name, input.extra_value),
                2 => p = p.claim(input.extra_name, input.extra_value),
                _ => {}
            }
            p.sign().into_bytes()
        }
        _ => input.raw.to_vec(),
    };
    let authorization = format!("DPoP {}", s.token);
    let headers: Vec<(&str, &[u8])> = vec![
        ("authorization", authorization.as_bytes()),
        ("dpop", &proof),
    ];
    let req = RequestView::new(input.method, input.path, &headers);
    if let Ok(principal) = decide(&s.chain, &req) {
        assert_eq!(principal.subject(), "alice");
        if input.mode <= 2 {
            let (htm, htu) = if input.matching {
                (
                    input.method.to_owned(),
                    format!("{ORIGIN}{}{}", input.path, input.htu),
                )
            } else {
                (input.htm.to_owned(), input.htu.to_owned())
            };
            assert_eq!(input.method, htm, "passed with htm != method");
            // RFC 9449 §4.3 check 11: iat within max age + leeway (60 + 5 s
            // by default) before now, and at most the leeway after it.
            assert!(
                (-65..=5).contains(&input.iat_offset),
                "passed with iat {} s from now",
                input.iat_offset
            );
            check_htu(&htu, input.path);
        }
        // What follows `?` or `#` is no part of the path (RFC 3986 §3.3).
        let path = input.path.split(['?', '#']).next().unwrap_or_default();
        for segment in path.split('/') {
            let lower = segment.to_ascii_lowercase();
            assert!(
                !matches!(
                    lower.as_str(),
                    "." | ".." | "%2e" | "%2e%2e" | ".%2e" | "%2e."
                ),
                "a path with a dot segment took a proof: {:?}",
                input.path
            );
        }
    }
});

/// RFC 9449 §4.3 check 9: a proof passes only for the origin it names,
/// and, where neither URI needs normalising (no `%`, no dot segment), only
/// for the very path.
fn check_htu(htu: &str, path: &str) {
    let lower = htu.to_ascii_lowercase();
    let rest = lower
        .strip_prefix("https://api.test")
        .unwrap_or_else(|| panic!("passed with htu {htu:?} outside the origin"));
    // RFC 3986 §6.2.3: an empty port, or the default one (leading zeros
    // allowed, §3.2.3 `port = *DIGIT`), names the same origin.
    let rest = match rest.strip_prefix(':') {
        Some(after) => {
            let digits = after.len() - after.trim_start_matches(|c: char| c.is_ascii_digit()).len();
            let port = after[..digits].trim_start_matches('0');
            assert!(
                port.is_empty() || port == "443",
                "passed with htu {htu:?} on another port"
            );
            &after[digits..]
        }
        None => rest,
    };
    assert!(
        rest.is_empty() || rest.starts_with(['/', '?', '#']),
        "passed with htu {htu:?} on another host"
    );
    let rest = &htu[htu.len() - rest.len()..];
    let htu_path = rest.split(['?', '#']).next().unwrap_or_default();
    // A request path from HTTP has no fragment; the query is not compared.
    let path = path.split(['?', '#']).next().unwrap_or_default();
    let plain = |p: &str| !p.contains('%') && !p.split('/').any(|s| s == "." || s == "..");
    if plain(htu_path) && plain(path) {
        let norm = |p: &str| {
            if p.is_empty() {
                "/".to_owned()
            } else {
                p.to_owned()
            }
        };
        assert_eq!(norm(htu_path), norm(path), "passed for another path");
    }
}

/// The chain's decision; with static keys and no nonce it never waits.
fn decide(chain: &Chain, req: &RequestView<'_>) -> Result<Principal, Refusal> {
    let decision = std::pin::pin!(chain.authenticate(req));
    let Poll::Ready(decision) = decision.poll(&mut Context::from_waker(Waker::noop())) else {
        panic!("a static key set made the decision wait");
    };
    decision
}
