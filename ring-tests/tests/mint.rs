//! The internal token minter on ring alone: keys parsed and tokens signed by
//! ring (PKCS #8 v1 as openssl writes Ed25519, v2 as ring writes it, P-256),
//! each validated by tokenwarden against the minter's JWKS; an RSA key
//! refused at build.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use ring::rand::SystemRandom;
use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair};
use tokenwarden::mint::{MintBuildError, MintInput, Minter};
use tokenwarden::{Algorithm, FixedClock, KeySet, Validator};

const NOW: i64 = 1_800_000_000;
const RSA_2048: &[u8] = include_bytes!("../data/rsa2048.der");

fn minter(der: &[u8]) -> Result<Minter, MintBuildError> {
    Minter::builder()
        .signing_key_der(der)
        .issuer("https://gateway.test")
        .audience("upstream")
        .clock(FixedClock(NOW))
        .build()
}

fn round_trip(m: &Minter) {
    let token = m
        .mint(&MintInput::new("alice", "api_key").scopes(["read"]))
        .unwrap();
    let v = Validator::builder()
        .issuer("https://gateway.test")
        .audience("upstream")
        .required_type("at+jwt")
        .keys(KeySet::from_jwks(m.jwks().to_string().as_bytes()).unwrap())
        .clock(FixedClock(NOW + 59))
        .build()
        .unwrap();
    let claims = v.validate_json(&token).unwrap().claims;
    assert_eq!(claims["sub"], "alice");
    assert_eq!(claims["scope"], "read");
}

#[test]
fn ring_mints_eddsa_from_pkcs8_v1_and_v2() {
    // RFC 8037 A.1's seed in a PKCS #8 v1 wrapper (RFC 8410 §7).
    let mut v1 = vec![
        0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04,
        0x20,
    ];
    v1.extend_from_slice(&[
        0x9d, 0x61, 0xb1, 0x9d, 0xef, 0xfd, 0x5a, 0x60, 0xba, 0x84, 0x4a, 0xf4, 0x92, 0xec, 0x2c,
        0xc4, 0x44, 0x49, 0xc5, 0x69, 0x7b, 0x32, 0x69, 0x19, 0x70, 0x3b, 0xac, 0x03, 0x1c, 0xae,
        0x7f, 0x60,
    ]);
    let m = minter(&v1).unwrap();
    assert_eq!(m.algorithm(), Algorithm::EdDSA);
    assert_eq!(m.kid(), "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k");
    round_trip(&m);
    let v2 = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).unwrap();
    round_trip(&minter(v2.as_ref()).unwrap());
}

#[test]
fn ring_mints_es256() {
    let der = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &SystemRandom::new())
        .unwrap();
    let m = minter(der.as_ref()).unwrap();
    assert_eq!(m.algorithm(), Algorithm::ES256);
    round_trip(&m);
    let generated = Minter::builder()
        .generated_key(Algorithm::ES256)
        .issuer("https://gateway.test")
        .audience("upstream")
        .clock(FixedClock(NOW))
        .build()
        .unwrap();
    round_trip(&generated);
}

#[test]
fn ring_refuses_an_rsa_key_at_build() {
    assert!(matches!(
        minter(RSA_2048),
        Err(MintBuildError::UnsupportedKey { .. })
    ));
}
