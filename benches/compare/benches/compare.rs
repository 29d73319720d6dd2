//! tokenwarden against every Rust JWT validator that builds here, one run,
//! same token, same checks (signature, `alg`, `exp` with 60 s leeway, `iss`,
//! `aud`), claims into a JSON map where the library allows it (aliri only
//! gives its own struct of registered claims: compare it with the
//! `registered claims struct` row).
//!
//! ```sh
//! cd benches/compare && cargo bench                 # every algorithm
//! cd benches/compare && cargo bench -- RS256        # one
//! cd benches/compare && COMPARE_INTERLEAVED=1 cargo bench   # ratios, interleaved
//! ```
//!
//! Peers: jsonwebtoken 11 (aws-lc-rs backend), jsonwebtoken 9 (ring, its
//! previous backend), jwt-simple 0.12 (pure Rust), jwt-compact 0.8 (RustCrypto;
//! `iss`/`aud` checked by hand after it verifies), aliri 0.6 (ring; its own
//! claims type, the key read from its JWK). A peer that lacks an algorithm is
//! left out of that group.
#![allow(clippy::unwrap_used, missing_docs)]

use std::hint::black_box;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use criterion::{Criterion, criterion_group, criterion_main};
use serde_json::{Map, Value, json};
use tokenwarden::testing::TestKey;
use tokenwarden::{Algorithm, CacheConfig, KeySet, Validator};

type Claims = Map<String, Value>;

/// One peer's whole check of a token: true when it accepts it.
type Check = Box<dyn Fn(&str) -> bool>;

/// The registered claims only, as a struct: what aliri's `BasicClaims`
/// holds, for the like-for-like row.
#[derive(serde::Deserialize)]
#[allow(dead_code)]
struct Registered {
    iss: Option<String>,
    sub: Option<String>,
    aud: Option<Value>,
    exp: Option<i64>,
    nbf: Option<i64>,
    iat: Option<i64>,
}

const ISS: &str = "https://idp.example.com";
const AUD: &str = "https://api.example.com";

fn unb64(s: &str) -> Vec<u8> {
    URL_SAFE_NO_PAD.decode(s).unwrap()
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// A typical access token's claims, valid by the real clock (peers read it).
fn claims() -> Value {
    json!({
        "iss": ISS, "aud": AUD, "sub": "alice", "scope": "orders:read orders:write",
        "client_id": "web-app", "iat": now() - 10, "exp": now() + 3600,
        "jti": "5f0c7b2e-3c1a-4d5e-9f6a-7b8c9d0e1f2a"
    })
}

/// The key and the validation for one jsonwebtoken version (both versions
/// have the same API).
macro_rules! jsonwebtoken_setup {
    ($name:ident, $krate:ident) => {
        fn $name(alg: Algorithm, jwk: &Value) -> ($krate::DecodingKey, $krate::Validation) {
            use $krate::{Algorithm as A, DecodingKey as K};
            let s = |m: &str| jwk[m].as_str().unwrap();
            let (key, a) = match alg {
                Algorithm::HS256 => (K::from_secret(&unb64(s("k"))), A::HS256),
                Algorithm::RS256 => (K::from_rsa_components(s("n"), s("e")).unwrap(), A::RS256),
                Algorithm::PS256 => (K::from_rsa_components(s("n"), s("e")).unwrap(), A::PS256),
                Algorithm::ES256 => (K::from_ec_components(s("x"), s("y")).unwrap(), A::ES256),
                Algorithm::ES384 => (K::from_ec_components(s("x"), s("y")).unwrap(), A::ES384),
                Algorithm::EdDSA => (K::from_ed_components(s("x")).unwrap(), A::EdDSA),
                _ => unreachable!(),
            };
            let mut v = $krate::Validation::new(a);
            v.set_issuer(&[ISS]);
            v.set_audience(&[AUD]);
            v.leeway = 60;
            (key, v)
        }
    };
}

jsonwebtoken_setup!(jsonwebtoken11, jsonwebtoken);
jsonwebtoken_setup!(jsonwebtoken9, jsonwebtoken9);

/// jwt-simple's verification, boxed over its per-algorithm key types.
fn jwt_simple(alg: Algorithm, jwk: &Value) -> Check {
    use jwt_simple::prelude::*;
    let options = || VerificationOptions {
        allowed_issuers: Some(HashSet::from([ISS.to_owned()])),
        allowed_audiences: Some(HashSet::from([AUD.to_owned()])),
        time_tolerance: Some(jwt_simple::prelude::Duration::from_secs(60)),
        ..Default::default()
    };
    let b = |m: &str| unb64(jwk[m].as_str().unwrap());
    let ec_point = || [vec![4u8], b("x"), b("y")].concat();
    match alg {
        Algorithm::HS256 => {
            let k = HS256Key::from_bytes(&b("k"));
            Box::new(move |t| k.verify_token::<crate::Claims>(t, Some(options())).is_ok())
        }
        Algorithm::RS256 => {
            let k = RS256PublicKey::from_components(&b("n"), &b("e")).unwrap();
            Box::new(move |t| k.verify_token::<crate::Claims>(t, Some(options())).is_ok())
        }
        Algorithm::PS256 => {
            let k = PS256PublicKey::from_components(&b("n"), &b("e")).unwrap();
            Box::new(move |t| k.verify_token::<crate::Claims>(t, Some(options())).is_ok())
        }
        Algorithm::ES256 => {
            let k = ES256PublicKey::from_bytes(&ec_point()).unwrap();
            Box::new(move |t| k.verify_token::<crate::Claims>(t, Some(options())).is_ok())
        }
        Algorithm::ES384 => {
            let k = ES384PublicKey::from_bytes(&ec_point()).unwrap();
            Box::new(move |t| k.verify_token::<crate::Claims>(t, Some(options())).is_ok())
        }
        Algorithm::EdDSA => {
            let k = Ed25519PublicKey::from_bytes(&b("x")).unwrap();
            Box::new(move |t| k.verify_token::<crate::Claims>(t, Some(options())).is_ok())
        }
        _ => unreachable!(),
    }
}

/// jwt-compact: verifies and checks `exp`; `iss`/`aud` are checked here.
fn jwt_compact(alg: Algorithm, jwk: &Value) -> Option<Check> {
    use jwt_compact::alg::{Ed25519, Es256, Hs256, Hs256Key, Rsa, RsaPublicKey};
    use jwt_compact::jwk::JsonWebKey;
    use jwt_compact::{AlgorithmExt, TimeOptions, Token, UntrustedToken};
    fn rest(token: Token<Claims>) -> bool {
        let c = token.claims();
        c.validate_expiration(&TimeOptions::default()).is_ok()
            && c.custom.get("iss").and_then(Value::as_str) == Some(ISS)
            && match c.custom.get("aud") {
                Some(Value::String(a)) => a == AUD,
                Some(Value::Array(a)) => a.iter().any(|x| x.as_str() == Some(AUD)),
                _ => false,
            }
    }
    let b = |m: &str| unb64(jwk[m].as_str().unwrap());
    let parsed: JsonWebKey<'static> = serde_json::from_value(jwk.clone()).ok()?;
    Some(match alg {
        Algorithm::HS256 => {
            let k = Hs256Key::new(b("k"));
            Box::new(move |t| {
                let u = UntrustedToken::new(t).unwrap();
                Hs256.validator::<Claims>(&k).validate(&u).is_ok_and(rest)
            })
        }
        Algorithm::RS256 | Algorithm::PS256 => {
            let k = RsaPublicKey::try_from(&parsed).ok()?;
            let a = if alg == Algorithm::RS256 {
                Rsa::rs256()
            } else {
                Rsa::ps256()
            };
            Box::new(move |t| {
                let u = UntrustedToken::new(t).unwrap();
                a.validator::<Claims>(&k).validate(&u).is_ok_and(rest)
            })
        }
        Algorithm::ES256 => {
            let point = [vec![4u8], b("x"), b("y")].concat();
            let k = p256::ecdsa::VerifyingKey::from_sec1_bytes(&point).ok()?;
            Box::new(move |t| {
                let u = UntrustedToken::new(t).unwrap();
                Es256.validator::<Claims>(&k).validate(&u).is_ok_and(rest)
            })
        }
        Algorithm::EdDSA => {
            let k = ed25519_compact::PublicKey::try_from(&parsed).ok()?;
            Box::new(move |t| {
                let u = UntrustedToken::new(t).unwrap();
                Ed25519.validator::<Claims>(&k).validate(&u).is_ok_and(rest)
            })
        }
        _ => return None,
    })
}

/// aliri: the JWK as aliri reads it, its core validator, its claims.
fn aliri(alg: Algorithm, jwk: &Value) -> Option<Check> {
    use aliri::{Jwk, JwtRef, jwa, jwt};
    let a = match alg {
        Algorithm::HS256 => jwa::Algorithm::HS256,
        Algorithm::RS256 => jwa::Algorithm::RS256,
        Algorithm::PS256 => jwa::Algorithm::PS256,
        Algorithm::ES256 => jwa::Algorithm::ES256,
        Algorithm::ES384 => jwa::Algorithm::ES384,
        _ => return None,
    };
    let keys: Jwk = serde_json::from_str(&jwk.to_string()).ok()?;
    let validator = jwt::CoreValidator::default()
        .add_approved_algorithm(a)
        .add_allowed_audience(jwt::Audience::from_static(AUD))
        .require_issuer(jwt::Issuer::from_static(ISS))
        .with_leeway_secs(60);
    Some(Box::new(move |t| {
        JwtRef::from_str(t)
            .verify::<jwt::BasicClaims, jwt::BasicHeaders, _>(&keys, &validator)
            .is_ok()
    }))
}

/// Times `ours` and `peer` in alternating batches of about 2 ms, 31 rounds:
/// the median, lowest and highest of peer time ÷ our time.
fn interleave(ours: &dyn Fn() -> bool, peer: &dyn Fn() -> bool) -> (f64, f64, f64) {
    let per_call = |f: &dyn Fn() -> bool, n: u32| {
        let t = std::time::Instant::now();
        for _ in 0..n {
            assert!(f());
        }
        t.elapsed().as_secs_f64() / f64::from(n)
    };
    let slowest = per_call(ours, 3).max(per_call(peer, 3));
    let n = ((2e-3 / slowest) as u32).max(1);
    let mut ratios: Vec<f64> = (0..31)
        .map(|round| {
            if round % 2 == 0 {
                let a = per_call(ours, n);
                per_call(peer, n) / a
            } else {
                let b = per_call(peer, n);
                b / per_call(ours, n)
            }
        })
        .collect();
    ratios.sort_by(f64::total_cmp);
    (ratios[15], ratios[0], ratios[30])
}

fn bench(c: &mut Criterion) {
    // `COMPARE_INTERLEAVED=1`: a table of peer ÷ tokenwarden ratios from
    // interleaved batches instead of criterion's one-after-the-other groups.
    let interleaved = std::env::var_os("COMPARE_INTERLEAVED").is_some();
    if interleaved {
        println!(
            "| alg | peer | peer time ÷ tokenwarden time (median of 31 interleaved rounds) | range |"
        );
        println!("|---|---|---|---|");
    }
    for alg in [
        Algorithm::HS256,
        Algorithm::RS256,
        Algorithm::PS256,
        Algorithm::ES256,
        Algorithm::ES384,
        Algorithm::EdDSA,
    ] {
        let key = TestKey::generate(alg, "bench-key").unwrap();
        let jwk = key.jwk();
        let jwks = key.jwks_json();
        let token = key.token(&claims());
        let build = |cache: bool| {
            let b = Validator::builder()
                .issuer(ISS)
                .audience(AUD)
                .algorithms([alg])
                .keys(KeySet::from_jwks(jwks.as_bytes()).unwrap());
            let b = if cache {
                b.cache(CacheConfig::default())
            } else {
                b.no_cache()
            };
            b.build().unwrap()
        };
        let tw = build(false);
        let tw_cached = build(true);
        let (k11, v11) = jsonwebtoken11(alg, &jwk);
        let (k9, v9) = jsonwebtoken9(alg, &jwk);
        let simple = jwt_simple(alg, &jwk);
        let compact = jwt_compact(alg, &jwk);
        let aliri = aliri(alg, &jwk);

        // Every contender accepts the token, and refuses it one byte off.
        let mut forged = token.clone().into_bytes();
        let i = forged.len() / 2;
        forged[i] = if forged[i] == b'A' { b'B' } else { b'A' };
        let forged = String::from_utf8(forged).unwrap();
        for (name, t, expect) in [("valid", &token, true), ("forged", &forged, false)] {
            assert_eq!(
                tw.validate::<Claims>(t).is_ok(),
                expect,
                "tokenwarden {name}"
            );
            assert_eq!(
                jsonwebtoken::decode::<Claims>(t, &k11, &v11).is_ok(),
                expect,
                "jsonwebtoken 11 {name}"
            );
            assert_eq!(
                jsonwebtoken9::decode::<Claims>(t, &k9, &v9).is_ok(),
                expect,
                "jsonwebtoken 9 {name}"
            );
            assert_eq!(simple(t), expect, "jwt-simple {name}");
            if let Some(f) = &compact {
                assert_eq!(f(t), expect, "jwt-compact {name}");
            }
            if let Some(f) = &aliri {
                assert_eq!(f(t), expect, "aliri {name}");
            }
        }
        tw_cached.validate_shared::<Claims>(&token).unwrap();

        if interleaved {
            // Each peer against tokenwarden with the same claims type, in
            // alternating batches, so the VM's drift hits both alike.
            let ours_map: &dyn Fn() -> bool = &|| tw.validate::<Claims>(black_box(&token)).is_ok();
            let ours_struct: &dyn Fn() -> bool =
                &|| tw.validate::<Registered>(black_box(&token)).is_ok();
            type Peer<'a> = Box<dyn Fn(&str) -> bool + 'a>;
            let mut peers: Vec<(&str, Peer<'_>, &dyn Fn() -> bool)> = vec![
                (
                    "jsonwebtoken 11 aws-lc-rs",
                    Box::new(|t: &str| jsonwebtoken::decode::<Claims>(t, &k11, &v11).is_ok()),
                    ours_map,
                ),
                (
                    "jsonwebtoken 9 ring",
                    Box::new(|t: &str| jsonwebtoken9::decode::<Claims>(t, &k9, &v9).is_ok()),
                    ours_map,
                ),
                ("jwt-simple", simple, ours_map),
            ];
            if let Some(f) = compact {
                peers.push(("jwt-compact", f, ours_map));
            }
            if let Some(f) = aliri {
                peers.push(("aliri (vs our struct)", f, ours_struct));
            }
            for (name, peer, ours) in &peers {
                let (median, lo, hi) = interleave(ours, &|| peer(black_box(&token)));
                println!("| {alg} | {name} | {median:.3}× | {lo:.3}–{hi:.3}× |");
            }
            continue;
        }

        let mut g = c.benchmark_group(alg.as_str());
        g.bench_function("tokenwarden", |b| {
            b.iter(|| tw.validate::<Claims>(black_box(&token)).unwrap())
        });
        g.bench_function("tokenwarden (registered claims struct)", |b| {
            b.iter(|| tw.validate::<Registered>(black_box(&token)).unwrap())
        });
        g.bench_function("tokenwarden cache-hit-shared", |b| {
            b.iter(|| {
                tw_cached
                    .validate_shared::<Claims>(black_box(&token))
                    .unwrap()
            })
        });
        g.bench_function("jsonwebtoken 11 aws-lc-rs", |b| {
            b.iter(|| jsonwebtoken::decode::<Claims>(black_box(&token), &k11, &v11).unwrap())
        });
        g.bench_function("jsonwebtoken 9 ring", |b| {
            b.iter(|| jsonwebtoken9::decode::<Claims>(black_box(&token), &k9, &v9).unwrap())
        });
        g.bench_function("jwt-simple", |b| {
            b.iter(|| assert!(simple(black_box(&token))))
        });
        if let Some(f) = &compact {
            g.bench_function("jwt-compact", |b| b.iter(|| assert!(f(black_box(&token)))));
        }
        if let Some(f) = &aliri {
            g.bench_function("aliri", |b| b.iter(|| assert!(f(black_box(&token)))));
        }
        g.finish();
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(30);
    targets = bench
}
criterion_main!(benches);
