//! The internal token (feature `mint`): minted tokens validate with
//! tokenwarden against the minter's own JWKS, for EdDSA and ES256; the
//! registered claims stay the minter's whatever the input says; the cache
//! reuses a token for half its lifetime and stays bounded; no key material
//! in `Debug` or errors; bad lifetimes and keys refused at build.
#![cfg(feature = "mint")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod common;

use std::time::Duration;

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED_SIGNING, ECDSA_P384_SHA384_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair,
};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use common::{b64, unb64};
use serde_json::{Map, Value, json};
use tokenwarden::mint::{MintBuildError, MintError, MintInput, Minter, MinterBuilder};
use tokenwarden::{Algorithm, ErrorKind, KeySet, ManualClock, Validator};

const NOW: i64 = 1_700_000_000;
const GATEWAY: &str = "https://gateway.test";
const UPSTREAM: &str = "https://orders.internal";

/// RFC 8037 Appendix A.1: the Ed25519 private key `d` (the seed), its
/// public `x` and (A.3) its RFC 7638 thumbprint.
const RFC8037_D: &str = "nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A";
const RFC8037_X: &str = "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo";
const RFC8037_THUMBPRINT: &str = "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k";

/// A PKCS #8 v1 Ed25519 key for `seed` (RFC 8410 §7), as `openssl genpkey
/// -algorithm ed25519` writes it.
fn ed25519_pkcs8_v1(seed: &[u8]) -> Vec<u8> {
    let mut der = vec![
        0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04,
        0x20,
    ];
    der.extend_from_slice(seed);
    der
}

fn pem(der: &[u8]) -> String {
    let body = STANDARD.encode(der);
    let lines: Vec<&str> = body
        .as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect();
    format!(
        "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
        lines.join("\n")
    )
}

fn p256_pkcs8() -> Vec<u8> {
    EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &SystemRandom::new())
        .unwrap()
        .as_ref()
        .to_vec()
}

fn builder(alg: Algorithm, clock: &ManualClock) -> MinterBuilder {
    Minter::builder()
        .generated_key(alg)
        .issuer(GATEWAY)
        .audience(UPSTREAM)
        .clock(clock.clone())
}

fn minter(alg: Algorithm, clock: &ManualClock) -> Minter {
    builder(alg, clock).build().unwrap()
}

/// The upstream service: tokenwarden, the minter's JWKS, iss/aud/typ
/// checked, no leeway.
fn upstream(jwks: &Value, audience: &str, clock: &ManualClock) -> Validator {
    Validator::builder()
        .issuer(GATEWAY)
        .audience(audience)
        .required_type("at+jwt")
        .leeway(Duration::ZERO)
        .keys(KeySet::from_jwks(jwks.to_string().as_bytes()).unwrap())
        .clock(clock.clone())
        .build()
        .unwrap()
}

fn claims_of(token: &str) -> Map<String, Value> {
    let payload = token.split('.').nth(1).unwrap();
    serde_json::from_slice(&unb64(payload)).unwrap()
}

fn header_of(token: &str) -> Value {
    serde_json::from_slice(&unb64(token.split('.').next().unwrap())).unwrap()
}

fn minted_token_validates_upstream(alg: Algorithm) {
    let clock = ManualClock::new(NOW);
    let m = minter(alg, &clock);
    let tenant = json!("acme");
    let token = m
        .mint(
            &MintInput::new("alice", "api_key")
                .scopes(["orders:read", "orders:write"])
                .roles(["admin", "support"])
                .client_id("partner-app")
                .claim("tenant", &tenant),
        )
        .unwrap();
    let header = header_of(&token);
    assert_eq!(header["alg"], alg.as_str());
    assert_eq!(header["typ"], "at+jwt");
    assert_eq!(header["kid"], m.kid());

    let v = upstream(&m.jwks(), UPSTREAM, &clock);
    let c = v.validate_json(&token).unwrap().claims;
    assert_eq!(c["iss"], GATEWAY);
    assert_eq!(c["aud"], UPSTREAM);
    assert_eq!(c["sub"], "alice");
    assert_eq!(c["authn"], "api_key");
    assert_eq!(c["scope"], "orders:read orders:write");
    assert_eq!(c["roles"], json!(["admin", "support"]));
    assert_eq!(c["client_id"], "partner-app");
    assert_eq!(c["tenant"], "acme");
    assert_eq!(c["iat"], NOW);
    assert_eq!(c["exp"], NOW + 60);
    assert_eq!(c["jti"].as_str().unwrap().len(), 22, "128 random bits");
}

#[test]
fn eddsa_tokens_validate_against_the_minters_jwks() {
    minted_token_validates_upstream(Algorithm::EdDSA);
}

#[test]
fn es256_tokens_validate_against_the_minters_jwks() {
    minted_token_validates_upstream(Algorithm::ES256);
}

#[test]
fn a_minter_is_cheap_to_clone_and_shared_across_threads() {
    fn shareable<T: Send + Sync + Clone + 'static>() {}
    shareable::<Minter>();
    let clock = ManualClock::new(NOW);
    let m = minter(Algorithm::EdDSA, &clock);
    let first = m.mint(&MintInput::new("alice", "jwt")).unwrap();
    let other = m.clone();
    let from_thread =
        std::thread::spawn(move || other.mint(&MintInput::new("alice", "jwt")).unwrap())
            .join()
            .unwrap();
    assert_eq!(first, from_thread, "clones share one cache");
}

#[test]
fn the_jwks_is_a_public_jwk_set_with_use_alg_and_kid() {
    let clock = ManualClock::new(NOW);
    for (alg, kty, crv) in [
        (Algorithm::EdDSA, "OKP", "Ed25519"),
        (Algorithm::ES256, "EC", "P-256"),
    ] {
        let m = minter(alg, &clock);
        let jwks = m.jwks();
        let keys = jwks["keys"].as_array().unwrap();
        assert_eq!(keys.len(), 1);
        let k = &keys[0];
        assert_eq!(k["kty"], kty);
        assert_eq!(k["crv"], crv);
        assert_eq!(k["use"], "sig");
        assert_eq!(k["alg"], alg.as_str());
        assert_eq!(k["kid"], m.kid());
        assert!(k.get("d").is_none());
        let set = KeySet::from_jwks(jwks.to_string().as_bytes()).unwrap();
        assert_eq!(set.len(), 1);
        assert!(set.contains_kid(m.kid()));
    }
}

#[test]
fn the_default_kid_is_the_rfc7638_thumbprint() {
    let der = ed25519_pkcs8_v1(&unb64(RFC8037_D));
    let m = Minter::builder()
        .signing_key_der(&der)
        .issuer(GATEWAY)
        .audience(UPSTREAM)
        .build()
        .unwrap();
    assert_eq!(m.kid(), RFC8037_THUMBPRINT);
    assert_eq!(m.public_jwk()["x"], RFC8037_X);
    let custom = Minter::builder()
        .signing_key_der(&der)
        .issuer(GATEWAY)
        .audience(UPSTREAM)
        .kid("mint-2025")
        .build()
        .unwrap();
    assert_eq!(custom.kid(), "mint-2025");
}

#[test]
fn pkcs8_keys_load_from_pem_der_and_files() {
    let clock = ManualClock::new(NOW);
    let dir = std::env::temp_dir().join(format!("tokenwarden-mint-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let ed_v1 = ed25519_pkcs8_v1(&unb64(RFC8037_D));
    let ed_v2 = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new())
        .unwrap()
        .as_ref()
        .to_vec();
    let p256 = p256_pkcs8();
    for (name, der, alg) in [
        ("ed-v1", &ed_v1, Algorithm::EdDSA),
        ("ed-v2", &ed_v2, Algorithm::EdDSA),
        ("p256", &p256, Algorithm::ES256),
    ] {
        let pem_path = dir.join(format!("{name}.pem"));
        let der_path = dir.join(format!("{name}.der"));
        std::fs::write(&pem_path, pem(der)).unwrap();
        std::fs::write(&der_path, der).unwrap();
        let base = || Minter::builder().issuer(GATEWAY).audience(UPSTREAM);
        for b in [
            base().signing_key_der(der),
            base().signing_key_pem(pem(der)),
            base().signing_key_file(&pem_path),
            base().signing_key_file(&der_path),
        ] {
            let m = b.clock(clock.clone()).build().unwrap();
            assert_eq!(m.algorithm(), alg, "{name}");
            let token = m.mint(&MintInput::new("alice", "jwt")).unwrap();
            upstream(&m.jwks(), UPSTREAM, &clock)
                .validate_json(&token)
                .unwrap();
        }
    }
    let missing = Minter::builder()
        .signing_key_file(dir.join("missing.pem"))
        .issuer(GATEWAY)
        .audience(UPSTREAM)
        .build()
        .unwrap_err();
    assert!(
        matches!(missing, MintBuildError::KeyFile { kind, .. } if kind == std::io::ErrorKind::NotFound)
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_token_expires_after_its_lifetime() {
    let clock = ManualClock::new(NOW);
    let m = builder(Algorithm::EdDSA, &clock)
        .lifetime(Duration::from_secs(120))
        .build()
        .unwrap();
    let token = m.mint(&MintInput::new("alice", "jwt")).unwrap();
    let v = upstream(&m.jwks(), UPSTREAM, &clock);
    clock.set(NOW + 119);
    assert!(v.validate_json(&token).is_ok());
    clock.set(NOW + 120);
    assert_eq!(
        v.validate_json(&token).unwrap_err().kind(),
        ErrorKind::Expired
    );
}

#[test]
fn a_token_for_another_audience_is_refused_downstream() {
    let clock = ManualClock::new(NOW);
    let m = minter(Algorithm::ES256, &clock);
    let token = m.mint(&MintInput::new("alice", "jwt")).unwrap();
    let billing = upstream(&m.jwks(), "https://billing.internal", &clock);
    assert_eq!(
        billing.validate_json(&token).unwrap_err().kind(),
        ErrorKind::InvalidAudience
    );
}

#[test]
fn a_token_from_another_minter_is_refused_downstream() {
    let clock = ManualClock::new(NOW);
    let ours = minter(Algorithm::EdDSA, &clock);
    let theirs = minter(Algorithm::EdDSA, &clock);
    let token = theirs.mint(&MintInput::new("alice", "jwt")).unwrap();
    let v = upstream(&ours.jwks(), UPSTREAM, &clock);
    assert_eq!(
        v.validate_json(&token).unwrap_err().kind(),
        ErrorKind::UnknownKey
    );
}

/// Attack: the extra claims come from the principal (an IdP's token, a
/// legacy service's answer, an API key's metadata). None of them may stand
/// in for a claim the minter sets. Defence: `RESERVED` in src/mint.rs.
#[test]
fn hostile_extra_claims_cannot_override_registered_claims() {
    let clock = ManualClock::new(NOW);
    let m = minter(Algorithm::EdDSA, &clock);
    let hostile: Map<String, Value> = serde_json::from_value(json!({
        "iss": "https://evil.test",
        "aud": ["https://orders.internal", "https://billing.internal"],
        "exp": NOW + 86_400 * 365,
        "nbf": 0,
        "iat": NOW + 10_000,
        "jti": "replayed",
        "sub": "root",
        "authn": "jwt",
        "scope": "admin",
        "roles": ["superuser"],
        "client_id": "trusted-app",
        "scp": "admin",
        "acr": "urn:mace:incommon:iap:gold",
        "amr": ["mfa"],
        "auth_time": NOW,
        "act": {"sub": "admin-service"},
        "may_act": {"sub": "anyone"},
        "cnf": {"jkt": "attacker-key"},
        "azp": "trusted-app",
        "sid": "someone-elses-session",
        "nonce": "n",
        "groups": ["domain-admins"],
        "entitlements": ["billing:write"],
        "src_iss": "https://idp.victim.test",
        "tenant": "acme",
    }))
    .unwrap();
    let token = m
        .mint(
            &MintInput::new("alice", "legacy")
                .scopes(["orders:read"])
                .claims(&hostile),
        )
        .unwrap();
    let c = upstream(&m.jwks(), UPSTREAM, &clock)
        .validate_json(&token)
        .unwrap()
        .claims;
    assert_eq!(c["iss"], GATEWAY);
    assert_eq!(c["aud"], UPSTREAM);
    assert_eq!(c["exp"], NOW + 60);
    assert_eq!(c["iat"], NOW);
    assert!(c.get("nbf").is_none());
    assert_ne!(c["jti"], "replayed");
    assert_eq!(c["sub"], "alice");
    assert_eq!(c["authn"], "legacy");
    assert_eq!(c["scope"], "orders:read");
    assert!(c.get("roles").is_none());
    assert!(c.get("client_id").is_none());
    for decided_on in [
        "scp",
        "acr",
        "amr",
        "auth_time",
        "act",
        "may_act",
        "cnf",
        "azp",
        "sid",
        "nonce",
        // RFC 9068 §2.2.3.1: authorization attributes beside `roles`.
        "groups",
        "entitlements",
        // The source issuer is the minter's to write, from the input.
        "src_iss",
    ] {
        assert!(c.get(decided_on).is_none(), "{decided_on} passed: {c:?}");
    }
    assert_eq!(c["tenant"], "acme", "other claims pass");
    // Each name once in the payload (a duplicate member is ambiguous).
    let payload = String::from_utf8(unb64(token.split('.').nth(1).unwrap())).unwrap();
    assert_eq!(payload.matches("\"iss\"").count(), 1, "{payload}");
    assert_eq!(payload.matches("\"exp\"").count(), 1, "{payload}");
}

#[test]
fn of_two_extra_claims_with_one_name_the_last_is_written_once() {
    let clock = ManualClock::new(NOW);
    let m = minter(Algorithm::EdDSA, &clock);
    let (first, last) = (json!("a"), json!("b"));
    let token = m
        .mint(
            &MintInput::new("alice", "jwt")
                .claim("tenant", &first)
                .claim("tenant", &last),
        )
        .unwrap();
    let c = upstream(&m.jwks(), UPSTREAM, &clock)
        .validate_json(&token)
        .unwrap()
        .claims;
    assert_eq!(c["tenant"], "b");
}

/// Attack: a scope with a space (from a hostile source) would read as two
/// scopes in the space-separated `scope` claim upstream, granting `admin`.
/// Defence: the RFC 6749 §3.3 scope-token check in `principal_members`.
#[test]
fn a_scope_that_is_not_a_scope_token_is_refused() {
    let clock = ManualClock::new(NOW);
    let m = minter(Algorithm::EdDSA, &clock);
    for scope in [
        "read admin",
        "",
        "read\tadmin",
        "quote\"",
        "back\\slash",
        "é",
    ] {
        let err = m
            .mint(&MintInput::new("alice", "api_key").scopes(["orders:read", scope]))
            .unwrap_err();
        assert_eq!(
            err,
            MintError::InvalidInput {
                field: "scope",
                reason: "is not an RFC 6749 scope token"
            },
            "{scope:?}"
        );
        assert_eq!(err.kind(), "invalid_input");
    }
    for (input, field) in [
        (MintInput::new("", "jwt"), "subject"),
        (MintInput::new("alice", ""), "authenticator"),
        (MintInput::new("alice", "jwt").client_id(""), "client_id"),
    ] {
        assert!(
            matches!(m.mint(&input), Err(MintError::InvalidInput { field: f, .. }) if f == field)
        );
    }
}

/// Attack: claims big enough that the upstream's 8 KiB limit refuses the
/// token. Defence: the size check in `Minter::sign`.
#[test]
fn a_token_over_8_kib_is_never_minted() {
    let clock = ManualClock::new(NOW);
    let m = minter(Algorithm::EdDSA, &clock);
    let big = json!("x".repeat(6 * 1024));
    let err = m
        .mint(&MintInput::new("alice", "jwt").claim("blob", &big))
        .unwrap_err();
    assert!(
        matches!(err, MintError::TooLarge { size, max: 8192 } if size > 8192),
        "{err:?}"
    );
    assert_eq!(err.kind(), "too_large");
    // Just under the limit mints, and the upstream's default limit takes it.
    let fits = json!("x".repeat(5 * 1024));
    let token = m
        .mint(&MintInput::new("alice", "jwt").claim("blob", &fits))
        .unwrap();
    upstream(&m.jwks(), UPSTREAM, &clock)
        .validate_json(&token)
        .unwrap();
}

#[test]
fn a_clock_out_of_range_is_an_error_not_an_overflow() {
    for now in [i64::MAX - 10, -1] {
        let clock = ManualClock::new(now);
        let m = minter(Algorithm::EdDSA, &clock);
        assert_eq!(
            m.mint(&MintInput::new("alice", "jwt")).unwrap_err(),
            MintError::ClockOutOfRange { now }
        );
    }
}

#[test]
fn the_same_input_gets_the_cached_token_until_half_the_lifetime() {
    let clock = ManualClock::new(NOW);
    let m = minter(Algorithm::EdDSA, &clock);
    let input = MintInput::new("alice", "api_key").scopes(["orders:read"]);
    let first = m.mint(&input).unwrap();
    clock.set(NOW + 29);
    assert_eq!(m.mint(&input).unwrap(), first, "before the refresh point");
    clock.set(NOW + 30);
    let second = m.mint(&input).unwrap();
    assert_ne!(second, first, "at the refresh point: a new token");
    assert_eq!(claims_of(&second)["iat"], NOW + 30);
    assert_eq!(m.mint(&input).unwrap(), second, "which is then reused");
    // Every token handed out has at least half its lifetime left.
    let exp = claims_of(&second)["exp"].as_i64().unwrap();
    assert!(exp - (NOW + 30 + 29) >= 30);
}

/// A clock set back must not hand out a token issued "in the future".
#[test]
fn a_clock_set_back_misses_the_cache() {
    let clock = ManualClock::new(NOW);
    let m = minter(Algorithm::EdDSA, &clock);
    let input = MintInput::new("alice", "jwt");
    let first = m.mint(&input).unwrap();
    clock.set(NOW - 5);
    let second = m.mint(&input).unwrap();
    assert_ne!(first, second);
    assert_eq!(claims_of(&second)["iat"], NOW - 5);
}

#[test]
fn the_cache_is_keyed_by_the_whole_input() {
    let clock = ManualClock::new(NOW);
    let m = minter(Algorithm::EdDSA, &clock);
    let (a, b) = (json!("acme"), json!("eu"));
    let base = m.mint(&MintInput::new("alice", "jwt")).unwrap();
    let differs = [
        MintInput::new("bob", "jwt"),
        MintInput::new("alice", "api_key"),
        MintInput::new("alice", "jwt").scopes(["orders:read"]),
        MintInput::new("alice", "jwt").roles(["admin"]),
        MintInput::new("alice", "jwt").client_id("app"),
        MintInput::new("alice", "jwt").claim("tenant", &a),
        // The JSON encoding keeps boundaries: not the same as sub "alice".
        MintInput::new("alice\",\"authn\":\"jwt", "jwt"),
    ];
    let mut seen = vec![base.clone()];
    for input in &differs {
        let t = m.mint(input).unwrap();
        assert!(!seen.contains(&t), "{input:?}");
        seen.push(t);
    }
    // The same extra claims in another order are the same principal.
    let one = m
        .mint(
            &MintInput::new("carol", "jwt")
                .claim("tenant", &a)
                .claim("region", &b),
        )
        .unwrap();
    let two = m
        .mint(
            &MintInput::new("carol", "jwt")
                .claim("region", &b)
                .claim("tenant", &a),
        )
        .unwrap();
    assert_eq!(one, two);
}

#[test]
fn the_cache_stays_within_its_capacity() {
    let clock = ManualClock::new(NOW);
    let m = builder(Algorithm::EdDSA, &clock)
        .cache_capacity(16)
        .build()
        .unwrap();
    let subjects: Vec<String> = (0..500).map(|n| format!("user-{n}")).collect();
    for s in &subjects {
        m.mint(&MintInput::new(s, "jwt")).unwrap();
    }
    let held = m.cached_tokens();
    assert!(held <= 16, "{held} entries");
}

#[test]
fn with_the_cache_off_every_mint_is_a_new_token() {
    let clock = ManualClock::new(NOW);
    let m = builder(Algorithm::EdDSA, &clock)
        .cache_capacity(0)
        .build()
        .unwrap();
    let input = MintInput::new("alice", "jwt");
    let (a, b) = (m.mint(&input).unwrap(), m.mint(&input).unwrap());
    assert_ne!(a, b);
    assert_ne!(claims_of(&a)["jti"], claims_of(&b)["jti"]);
    assert_eq!(m.cached_tokens(), 0);
}

#[test]
fn a_previous_public_key_keeps_old_tokens_valid_during_rotation() {
    let clock = ManualClock::new(NOW);
    let old = minter(Algorithm::ES256, &clock);
    let old_token = old.mint(&MintInput::new("alice", "jwt")).unwrap();
    let new = builder(Algorithm::EdDSA, &clock)
        .previous_public_key(old.public_jwk())
        .build()
        .unwrap();
    let jwks = new.jwks();
    assert_eq!(jwks["keys"].as_array().unwrap().len(), 2);
    assert_eq!(jwks["keys"][0]["kid"], new.kid(), "the current key first");
    let v = upstream(&jwks, UPSTREAM, &clock);
    v.validate_json(&old_token).unwrap();
    v.validate_json(&new.mint(&MintInput::new("alice", "jwt")).unwrap())
        .unwrap();
    // Without the previous key, the old token no longer verifies.
    let alone = upstream(&minter(Algorithm::EdDSA, &clock).jwks(), UPSTREAM, &clock);
    assert!(alone.validate_json(&old_token).is_err());
}

/// Attack: a private JWK passed as the "previous public key" would be served
/// to anyone at /.well-known/jwks.json. Defence: `previous_key` refuses
/// private members; and only public members are ever copied out.
#[test]
fn a_previous_key_with_private_members_is_refused_never_published() {
    let clock = ManualClock::new(NOW);
    let private =
        json!({"kty": "OKP", "crv": "Ed25519", "kid": "old", "x": RFC8037_X, "d": RFC8037_D});
    let err = builder(Algorithm::EdDSA, &clock)
        .previous_public_key(private)
        .build()
        .unwrap_err();
    assert!(matches!(err, MintBuildError::PreviousKey { .. }), "{err:?}");
    assert!(!err.to_string().contains(RFC8037_D));

    let current = minter(Algorithm::EdDSA, &clock);
    for (jwk, why) in [
        (
            json!({"kty": "OKP", "crv": "Ed25519", "x": RFC8037_X}),
            "no kid",
        ),
        (
            json!({"kty": "RSA", "kid": "r", "n": "AQAB", "e": "AQAB"}),
            "RSA",
        ),
        (
            json!({"kty": "OKP", "crv": "Ed25519", "kid": "bad", "x": "AAAA"}),
            "bad point",
        ),
        (current.public_jwk(), "the current kid again"),
        (json!("not an object"), "not an object"),
    ] {
        let b = Minter::builder()
            .signing_key_der(ed25519_pkcs8_v1(&unb64(RFC8037_D)))
            .issuer(GATEWAY)
            .audience(UPSTREAM)
            .kid(current.kid())
            .previous_public_key(jwk);
        assert!(
            matches!(b.build(), Err(MintBuildError::PreviousKey { .. })),
            "{why}"
        );
    }
}

#[test]
fn zero_tiny_huge_and_duration_max_lifetimes_are_build_errors() {
    let clock = ManualClock::new(NOW);
    for lifetime in [
        Duration::ZERO,
        Duration::from_millis(999),
        Duration::from_secs(3601),
        Duration::MAX,
    ] {
        assert_eq!(
            builder(Algorithm::EdDSA, &clock)
                .lifetime(lifetime)
                .build()
                .unwrap_err(),
            MintBuildError::Lifetime,
            "{lifetime:?}"
        );
    }
    for ok in [Duration::from_secs(1), Duration::from_secs(3600)] {
        builder(Algorithm::EdDSA, &clock)
            .lifetime(ok)
            .build()
            .unwrap();
    }
}

#[test]
fn keys_of_the_wrong_kind_are_refused_at_build() {
    let rsa = aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).unwrap();
    let rsa_der = AsDer::<aws_lc_rs::encoding::Pkcs8V1Der>::as_der(&rsa).unwrap();
    let p384 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P384_SHA384_FIXED_SIGNING, &SystemRandom::new())
        .unwrap();
    let base = || Minter::builder().issuer(GATEWAY).audience(UPSTREAM);
    for (b, why) in [
        (base().signing_key_der(rsa_der.as_ref()), "RSA PKCS #8 DER"),
        (base().signing_key_pem(pem(rsa_der.as_ref())), "RSA PKCS #8 PEM"),
        (base().signing_key_der(p384.as_ref()), "P-384"),
        (base().signing_key_der(b"garbage"), "garbage"),
        (base().signing_key_pem("-----BEGIN RSA PRIVATE KEY-----\nAAAA\n-----END RSA PRIVATE KEY-----\n"), "PKCS #1"),
        (base().signing_key_pem("-----BEGIN EC PRIVATE KEY-----\nAAAA\n-----END EC PRIVATE KEY-----\n"), "SEC1"),
        (base().signing_key_pem("-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----\n"), "encrypted"),
        (base().signing_key_pem("-----BEGIN PRIVATE KEY-----\n!!!\n-----END PRIVATE KEY-----\n"), "bad base64"),
        (base().generated_key(Algorithm::RS256), "RS256"),
    ] {
        assert!(
            matches!(b.build(), Err(MintBuildError::UnsupportedKey { .. })),
            "{why}"
        );
    }
    assert_eq!(base().build().unwrap_err(), MintBuildError::MissingKey);
    let ed = || Minter::builder().generated_key(Algorithm::EdDSA);
    assert_eq!(
        ed().audience(UPSTREAM).build().unwrap_err(),
        MintBuildError::MissingIssuer
    );
    assert_eq!(
        ed().issuer(GATEWAY).build().unwrap_err(),
        MintBuildError::MissingAudience
    );
    assert_eq!(
        ed().issuer(GATEWAY)
            .audience(UPSTREAM)
            .kid("")
            .build()
            .unwrap_err(),
        MintBuildError::Kid
    );
}

/// No key material in `Debug` or `Display`, of the builder, the minter, the
/// input or any error: not the seed (in any encoding), not the PEM body.
#[test]
fn debug_and_errors_never_show_the_private_key() {
    let seed = unb64(RFC8037_D);
    let der = ed25519_pkcs8_v1(&seed);
    let pem_text = pem(&der);
    let clock = ManualClock::new(NOW);
    let b = Minter::builder()
        .signing_key_pem(&pem_text)
        .issuer(GATEWAY)
        .audience(UPSTREAM)
        .clock(clock.clone());
    let builder_debug = format!("{b:?}");
    let m = b.build().unwrap();
    let secret = json!("s3cr3t-claim-value");
    let input = MintInput::new("alice", "jwt").claim("session", &secret);
    let mut shown = vec![
        builder_debug,
        format!("{m:?}"),
        format!("{input:?}"),
        m.jwks().to_string(),
    ];
    let bad_pem = pem_text.replace("PRIVATE KEY", "EC PRIVATE KEY");
    for err in [
        Minter::builder()
            .signing_key_pem(&bad_pem)
            .build()
            .unwrap_err(),
        Minter::builder()
            .signing_key_der(&der[..der.len() - 1])
            .build()
            .unwrap_err(),
    ] {
        shown.push(format!("{err:?}"));
        shown.push(err.to_string());
    }
    let hex: String = seed.iter().map(|b| format!("{b:02x}")).collect();
    let std_b64 = STANDARD.encode(&seed);
    let pem_body: String = STANDARD.encode(&der);
    let bytes_debug = format!("{:?}", &seed[..8]);
    for s in &shown {
        for needle in [
            RFC8037_D,
            &RFC8037_D[..20],
            &std_b64[..20],
            &hex[..20],
            &pem_body[pem_body.len() - 20..],
            &bytes_debug[1..bytes_debug.len() - 1],
            "s3cr3t",
        ] {
            assert!(!s.contains(needle), "{needle} in {s}");
        }
    }
    assert!(shown[1].contains(m.kid()), "the public kid is shown");
    assert_eq!(b64(&seed), RFC8037_D);
}

/// Attack: a user at issuer B whose `sub` equals a victim's at issuer A
/// must not get the victim's internal token (nor a cached copy of it): the
/// source issuer is written and keys the cache.
#[test]
fn one_subject_at_two_issuers_gets_two_tokens_naming_each_issuer() {
    let clock = ManualClock::new(NOW);
    let m = minter(Algorithm::EdDSA, &clock);
    let victim = m
        .mint(&MintInput::new("alice", "jwt").source_issuer("https://idp-a.test"))
        .unwrap();
    let other = m
        .mint(&MintInput::new("alice", "jwt").source_issuer("https://idp-b.test"))
        .unwrap();
    assert_ne!(victim, other, "the cached token of another issuer's user");
    assert_eq!(claims_of(&victim)["src_iss"], "https://idp-a.test");
    assert_eq!(claims_of(&other)["src_iss"], "https://idp-b.test");
    let none = m.mint(&MintInput::new("alice", "jwt")).unwrap();
    assert!(claims_of(&none).get("src_iss").is_none());
    assert_ne!(none, victim);
    assert_eq!(
        m.mint(&MintInput::new("alice", "jwt").source_issuer(""))
            .unwrap_err()
            .kind(),
        "invalid_input"
    );
}

/// A minted token never outlives the principal's credential, and a cached
/// token that would is not reused.
#[test]
fn the_token_expires_no_later_than_the_principal() {
    let clock = ManualClock::new(NOW);
    let m = minter(Algorithm::EdDSA, &clock);
    let input = |exp| MintInput::new("alice", "jwt").expires_at(Some(exp));
    let first = m.mint(&input(NOW + 10)).unwrap();
    assert_eq!(
        claims_of(&first)["exp"],
        NOW + 10,
        "capped at the principal"
    );
    // The same principal again: the cached token is reused.
    assert_eq!(m.mint(&input(NOW + 10)).unwrap(), first);
    // The same claims with an earlier expiry (a shorter credential): a
    // cached token lasting longer is not handed out.
    let sooner = m.mint(&input(NOW + 5)).unwrap();
    assert_ne!(sooner, first);
    assert_eq!(claims_of(&sooner)["exp"], NOW + 5);
    // A later expiry than the lifetime: the lifetime wins.
    let later = m.mint(&input(NOW + 3600)).unwrap();
    assert_eq!(claims_of(&later)["exp"], NOW + 60);
    // An expiry already past (a JWT accepted within leeway): one second.
    let late = m.mint(&input(NOW - 30)).unwrap();
    assert_eq!(claims_of(&late)["exp"], NOW + 1);
    // No expiry: the lifetime.
    let open = m.mint(&MintInput::new("bob", "api_key")).unwrap();
    assert_eq!(claims_of(&open)["exp"], NOW + 60);
}

/// Attack (review finding): a delegated call (`act`) and a direct one of
/// the same user must not get the same internal token, and the upstream
/// must see the actor and the client to apply its own limits.
#[test]
fn a_delegated_principal_mints_a_token_naming_its_actor_and_client() {
    let clock = ManualClock::new(NOW);
    let m = minter(Algorithm::EdDSA, &clock);
    let mut claims = Map::new();
    claims.insert("iss".into(), json!("https://idp.test"));
    claims.insert("azp".into(), json!("web-app"));
    let direct = tokenwarden::authn::Principal::new("alice", "jwt").with_claims(claims.clone());
    let mut with_act = claims;
    with_act.insert("act".into(), json!({"sub": "svc-a"}));
    let delegated = tokenwarden::authn::Principal::new("alice", "jwt").with_claims(with_act);
    let d = m.mint(&MintInput::from_principal(&direct)).unwrap();
    let x = m.mint(&MintInput::from_principal(&delegated)).unwrap();
    assert_ne!(d, x, "a delegated call got the direct call's cached token");
    assert_eq!(claims_of(&x)["act"], json!({"sub": "svc-a"}));
    assert!(claims_of(&d).get("act").is_none());
    assert_eq!(claims_of(&d)["client_id"], "web-app");
    assert_eq!(claims_of(&d)["src_iss"], "https://idp.test");
}
