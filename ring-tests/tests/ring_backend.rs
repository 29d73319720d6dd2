//! Every algorithm family verified, and the key checks and attack cases
//! refused, by ring alone. The tokens are signed here with ring (RSA from a
//! fixed test key in `data/`, ring cannot generate one); aws-lc-rs is not in
//! this build at all.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use ring::rand::SystemRandom;
use ring::signature::{self as sig, KeyPair};
use serde_json::{Value, json};
use tokenwarden::{ErrorKind, FixedClock, KeySet, Validator};

const NOW: i64 = 1_800_000_000;
const RSA_2048: &[u8] = include_bytes!("../data/rsa2048.der");
const RSA_1024: &[u8] = include_bytes!("../data/rsa1024.der");

fn b64(bytes: &[u8]) -> String {
    B64.encode(bytes)
}

fn signing_input(alg: &str, kid: &str) -> String {
    let header = json!({"alg": alg, "kid": kid, "typ": "JWT"});
    let claims = json!({"iss": "https://idp.example", "aud": "api", "sub": "u1", "exp": NOW + 600, "iat": NOW});
    format!(
        "{}.{}",
        b64(header.to_string().as_bytes()),
        b64(claims.to_string().as_bytes())
    )
}

/// A key pair that signs with ring, and its public JWK.
enum Signer {
    Hmac(ring::hmac::Key, Vec<u8>),
    Rsa(sig::RsaKeyPair, &'static dyn sig::RsaEncoding),
    Ecdsa(sig::EcdsaKeyPair),
    Ed(sig::Ed25519KeyPair),
}

struct Key {
    alg: &'static str,
    kid: String,
    signer: Signer,
}

impl Key {
    fn new(alg: &'static str) -> Key {
        let rng = SystemRandom::new();
        let signer = match alg {
            "HS256" | "HS384" | "HS512" => {
                let (a, len) = match alg {
                    "HS256" => (ring::hmac::HMAC_SHA256, 32),
                    "HS384" => (ring::hmac::HMAC_SHA384, 48),
                    _ => (ring::hmac::HMAC_SHA512, 64),
                };
                let secret: Vec<u8> = (0..len).map(|i| (i * 7 + 3) as u8).collect();
                Signer::Hmac(ring::hmac::Key::new(a, &secret), secret)
            }
            "RS256" | "RS384" | "RS512" | "PS256" | "PS384" | "PS512" => {
                let enc: &'static dyn sig::RsaEncoding = match alg {
                    "RS256" => &sig::RSA_PKCS1_SHA256,
                    "RS384" => &sig::RSA_PKCS1_SHA384,
                    "RS512" => &sig::RSA_PKCS1_SHA512,
                    "PS256" => &sig::RSA_PSS_SHA256,
                    "PS384" => &sig::RSA_PSS_SHA384,
                    _ => &sig::RSA_PSS_SHA512,
                };
                Signer::Rsa(sig::RsaKeyPair::from_der(RSA_2048).unwrap(), enc)
            }
            "ES256" | "ES384" => {
                let a = if alg == "ES256" {
                    &sig::ECDSA_P256_SHA256_FIXED_SIGNING
                } else {
                    &sig::ECDSA_P384_SHA384_FIXED_SIGNING
                };
                let doc = sig::EcdsaKeyPair::generate_pkcs8(a, &rng).unwrap();
                Signer::Ecdsa(sig::EcdsaKeyPair::from_pkcs8(a, doc.as_ref(), &rng).unwrap())
            }
            "EdDSA" => {
                let doc = sig::Ed25519KeyPair::generate_pkcs8(&rng).unwrap();
                Signer::Ed(sig::Ed25519KeyPair::from_pkcs8(doc.as_ref()).unwrap())
            }
            other => panic!("no signer for {other}"),
        };
        Key {
            alg,
            kid: format!("{alg}-key"),
            signer,
        }
    }

    fn jwk(&self) -> Value {
        match &self.signer {
            Signer::Hmac(_, secret) => {
                json!({"kty": "oct", "kid": self.kid, "alg": self.alg, "k": b64(secret)})
            }
            Signer::Rsa(kp, _) => rsa_jwk(kp, &self.kid),
            Signer::Ecdsa(kp) => {
                let point = kp.public_key().as_ref();
                let n = (point.len() - 1) / 2;
                let crv = if n == 32 { "P-256" } else { "P-384" };
                json!({"kty": "EC", "kid": self.kid, "crv": crv,
                       "x": b64(&point[1..=n]), "y": b64(&point[1 + n..])})
            }
            Signer::Ed(kp) => {
                json!({"kty": "OKP", "kid": self.kid, "crv": "Ed25519", "x": b64(kp.public_key().as_ref())})
            }
        }
    }

    fn sign(&self, input: &str) -> Vec<u8> {
        let rng = SystemRandom::new();
        match &self.signer {
            Signer::Hmac(k, _) => ring::hmac::sign(k, input.as_bytes()).as_ref().to_vec(),
            Signer::Rsa(kp, enc) => {
                let mut out = vec![0; kp.public().modulus_len()];
                kp.sign(*enc, &rng, input.as_bytes(), &mut out).unwrap();
                out
            }
            Signer::Ecdsa(kp) => kp.sign(&rng, input.as_bytes()).unwrap().as_ref().to_vec(),
            Signer::Ed(kp) => kp.sign(input.as_bytes()).as_ref().to_vec(),
        }
    }

    fn token(&self) -> String {
        let input = signing_input(self.alg, &self.kid);
        let s = self.sign(&input);
        format!("{input}.{}", b64(&s))
    }
}

fn rsa_jwk(kp: &sig::RsaKeyPair, kid: &str) -> Value {
    let c: ring::rsa::PublicKeyComponents<Vec<u8>> = kp.public().into();
    json!({"kty": "RSA", "kid": kid, "n": b64(&c.n), "e": b64(&c.e)})
}

fn validator(jwks: &Value) -> Validator {
    Validator::builder()
        .issuer("https://idp.example")
        .audience("api")
        .keys(KeySet::from_jwks(jwks.to_string().as_bytes()).unwrap())
        .clock(FixedClock(NOW))
        .build()
        .unwrap()
}

fn kind(v: &Validator, token: &str) -> Option<ErrorKind> {
    v.validate_json(token).err().map(|e| e.kind())
}

const ALGS: [&str; 12] = [
    "HS256", "HS384", "HS512", "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256",
    "ES384", "EdDSA",
];

#[test]
fn every_algorithm_verifies_on_ring_alone() {
    for alg in &ALGS {
        let key = Key::new(alg);
        let v = validator(&json!({"keys": [key.jwk()]}));
        let ok = v.validate_json(&key.token());
        assert!(ok.is_ok(), "{alg}: {:?}", ok.err());
    }
}

#[test]
fn a_flipped_signature_byte_is_refused_for_every_algorithm() {
    for alg in &ALGS {
        let key = Key::new(alg);
        let v = validator(&json!({"keys": [key.jwk()]}));
        let input = signing_input(alg, &key.kid);
        let mut s = key.sign(&input);
        let last = s.len() - 1;
        s[last] ^= 0x01;
        let forged = format!("{input}.{}", b64(&s));
        assert_eq!(
            kind(&v, &forged),
            Some(ErrorKind::InvalidSignature),
            "{alg}"
        );
    }
}

#[test]
fn a_payload_swapped_under_a_valid_signature_is_refused() {
    for alg in &ALGS {
        let key = Key::new(alg);
        let v = validator(&json!({"keys": [key.jwk()]}));
        let token = key.token();
        let mut parts: Vec<&str> = token.split('.').collect();
        let other = b64(
            json!({"iss": "https://idp.example", "aud": "api", "sub": "admin", "exp": NOW + 600})
                .to_string()
                .as_bytes(),
        );
        parts[1] = &other;
        assert_eq!(
            kind(&v, &parts.join(".")),
            Some(ErrorKind::InvalidSignature),
            "{alg}"
        );
    }
}

#[test]
fn rsa_public_key_used_as_an_hmac_secret_is_refused() {
    let rsa = Key::new("RS256");
    let v = validator(&json!({"keys": [rsa.jwk()]}));
    let Signer::Rsa(kp, _) = &rsa.signer else {
        unreachable!()
    };
    let input = signing_input("HS256", &rsa.kid);
    for secret in [
        kp.public().as_ref().to_vec(),
        rsa.jwk().to_string().into_bytes(),
    ] {
        let tag = ring::hmac::sign(
            &ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &secret),
            input.as_bytes(),
        );
        let forged = format!("{input}.{}", b64(tag.as_ref()));
        let k = kind(&v, &forged);
        assert!(
            matches!(
                k,
                Some(ErrorKind::KeyRejected | ErrorKind::AlgorithmNotAllowed)
            ),
            "{k:?}"
        );
    }
}

/// A JWK Set whose only key is skipped: the parse fails with
/// `keys_unavailable` and names the reason.
fn only_key_is_skipped(jwk: Value, reason: &str) {
    let e = KeySet::from_jwks(json!({"keys": [jwk]}).to_string().as_bytes()).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::KeysUnavailable);
    assert!(e.to_string().contains(reason), "{e}");
}

#[test]
fn rsa_1024_is_refused_at_load() {
    // `data/rsa1024.der` is a PKCS#1 RSAPrivateKey: SEQUENCE { version 0,
    // modulus INTEGER (02 81 81 00 || 128 bytes), ... }.
    let pos = RSA_1024
        .windows(4)
        .position(|w| w == [0x02, 0x81, 0x81, 0x00])
        .unwrap();
    let n = &RSA_1024[pos + 4..pos + 4 + 128];
    only_key_is_skipped(
        json!({"kty": "RSA", "kid": "small", "n": b64(n), "e": "AQAB"}),
        "1024 bits",
    );
}

#[test]
fn short_hmac_keys_are_not_loaded() {
    only_key_is_skipped(
        json!({"kty": "oct", "kid": "short", "alg": "HS256", "k": b64(&[7u8; 31])}),
        "31 bytes",
    );
}

#[test]
fn an_ec_point_off_the_curve_is_refused_at_load() {
    let key = Key::new("ES256");
    let mut jwk = key.jwk();
    let mut y = B64.decode(jwk["y"].as_str().unwrap()).unwrap();
    y[31] ^= 0x01;
    jwk["y"] = Value::String(b64(&y));
    only_key_is_skipped(jwk, "key \"ES256-key\"");
}

#[test]
fn ecdsa_signatures_with_r_or_s_zero_or_in_der_are_refused() {
    for alg in ["ES256", "ES384"] {
        let key = Key::new(alg);
        let v = validator(&json!({"keys": [key.jwk()]}));
        let input = signing_input(alg, &key.kid);
        let good = key.sign(&input);
        let n = good.len() / 2;
        let mut r_zero = good.clone();
        r_zero[..n].fill(0);
        let mut s_zero = good.clone();
        s_zero[n..].fill(0);
        let all_zero = vec![0u8; good.len()];
        for bad in [r_zero, s_zero, all_zero] {
            let t = format!("{input}.{}", b64(&bad));
            assert_eq!(kind(&v, &t), Some(ErrorKind::InvalidSignature), "{alg}");
        }
        // The same signature in ASN.1 DER, as some libraries emit it.
        let rng = SystemRandom::new();
        let a = if alg == "ES256" {
            &sig::ECDSA_P256_SHA256_ASN1_SIGNING
        } else {
            &sig::ECDSA_P384_SHA384_ASN1_SIGNING
        };
        let Signer::Ecdsa(_) = &key.signer else {
            unreachable!()
        };
        let doc = sig::EcdsaKeyPair::generate_pkcs8(a, &rng).unwrap();
        let der_kp = sig::EcdsaKeyPair::from_pkcs8(a, doc.as_ref(), &rng).unwrap();
        let point = der_kp.public_key().as_ref();
        let crv = if alg == "ES256" { "P-256" } else { "P-384" };
        let jwk = json!({"kty": "EC", "kid": key.kid, "crv": crv,
                         "x": b64(&point[1..=n]), "y": b64(&point[1 + n..])});
        let v = validator(&json!({"keys": [jwk]}));
        let der = der_kp.sign(&rng, input.as_bytes()).unwrap();
        let t = format!("{input}.{}", b64(der.as_ref()));
        assert_eq!(kind(&v, &t), Some(ErrorKind::InvalidSignature), "{alg}");
    }
}

#[test]
fn a_token_of_one_family_is_refused_by_a_key_of_another() {
    let es = Key::new("ES256");
    let ed = Key::new("EdDSA");
    // Same kid, so only the algorithm/key-type binding can refuse it.
    let mut ed_jwk = ed.jwk();
    ed_jwk["kid"] = Value::String(es.kid.clone());
    let v = validator(&json!({"keys": [ed_jwk]}));
    let k = kind(&v, &es.token());
    assert!(
        matches!(
            k,
            Some(ErrorKind::KeyRejected | ErrorKind::AlgorithmNotAllowed)
        ),
        "{k:?}"
    );
}

#[test]
fn pss_and_pkcs1_are_not_interchangeable() {
    let ps = Key::new("PS256");
    let rs = Key::new("RS256");
    // One RSA key; a PKCS#1 v1.5 signature presented as PS256 must fail.
    let v = validator(
        &json!({"keys": [rsa_jwk(match &ps.signer { Signer::Rsa(kp, _) => kp, _ => unreachable!() }, &ps.kid)]}),
    );
    let input = signing_input("PS256", &ps.kid);
    let s = rs.sign(&input);
    assert_eq!(
        kind(&v, &format!("{input}.{}", b64(&s))),
        Some(ErrorKind::InvalidSignature)
    );
}

#[test]
fn ed25519_small_order_keys_are_refused_at_load() {
    // The identity point (y = 1) and the point of order 2 (y = -1), RFC 8032
    // §5.1.3 encodings: with such a key a crafted signature verifies anything.
    let mut minus_one = [0xffu8; 32];
    minus_one[0] = 0xec;
    minus_one[31] = 0x7f;
    let mut identity = [0u8; 32];
    identity[0] = 1;
    for x in [identity, minus_one] {
        only_key_is_skipped(
            json!({"kty": "OKP", "kid": "small", "crv": "Ed25519", "x": b64(&x)}),
            "key \"small\"",
        );
    }
}
