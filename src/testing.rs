//! Test kit (feature `testing`): real keys, real signatures, tokens with the
//! claims you choose, for testing services that use tokenwarden.
//!
//! ```
//! use serde_json::json;
//! use tokenwarden::testing::TestKey;
//! use tokenwarden::{Algorithm, FixedClock, KeySet, Validator};
//!
//! let key = TestKey::generate(Algorithm::ES256, "k1")?;
//! let validator = Validator::builder()
//!     .issuer("https://idp.test")
//!     .audience("api")
//!     .keys(KeySet::from_jwks(key.jwks_json().as_bytes())?)
//!     .clock(FixedClock(1_000))
//!     .build()?;
//! let token = key.token(&json!({"iss": "https://idp.test", "aud": "api", "sub": "bob", "exp": 2_000}));
//! assert_eq!(validator.validate_json(&token)?.claims["sub"], "bob");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::fmt;

mod dpop;
mod issuer;
pub use dpop::DpopProof;
pub use issuer::{
    GRANT_TYPE_TOKEN_EXCHANGE, IntrospectionOutage, IssuerStats, OpaqueMint, TestIssuer,
    TestIssuerBuilder, TokenMint,
};
mod logout;
pub use logout::{LogoutDelivery, LogoutTarget};

use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use aws_lc_rs::signature::{self, EcdsaKeyPair, Ed25519KeyPair, KeyPair, RsaEncoding, RsaKeyPair};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};

use crate::alg::{Algorithm, Family};
use crate::error::BuildError;

/// A signing key for one algorithm, with its public JWK.
pub struct TestKey {
    alg: Algorithm,
    kid: String,
    signer: Signer,
}

enum Signer {
    Hmac(Box<aws_lc_rs::hmac::Key>, Vec<u8>),
    Rsa(Box<RsaKeyPair>, &'static dyn RsaEncoding),
    Ec(EcdsaKeyPair),
    Ed(Ed25519KeyPair),
}

impl fmt::Debug for TestKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TestKey")
            .field("alg", &self.alg)
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

impl TestKey {
    /// Generates a fresh key for `alg` (RSA keys are 2048 bits).
    ///
    /// # Errors
    /// When the system's random source fails.
    pub fn generate(alg: Algorithm, kid: impl Into<String>) -> Result<TestKey, BuildError> {
        let fail = |_| BuildError::new("key generation failed");
        let rsa = |enc: &'static dyn RsaEncoding| -> Result<Signer, BuildError> {
            let kp = RsaKeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).map_err(fail)?;
            Ok(Signer::Rsa(Box::new(kp), enc))
        };
        let hmac = |a: aws_lc_rs::hmac::Algorithm| -> Result<Signer, BuildError> {
            let mut secret = vec![0u8; alg.hmac_min_key_len()];
            SystemRandom::new().fill(&mut secret).map_err(fail)?;
            Ok(Signer::Hmac(
                Box::new(aws_lc_rs::hmac::Key::new(a, &secret)),
                secret,
            ))
        };
        let ec = |a| -> Result<Signer, BuildError> {
            Ok(Signer::Ec(EcdsaKeyPair::generate(a).map_err(fail)?))
        };
        let signer = match alg {
            Algorithm::HS256 => hmac(aws_lc_rs::hmac::HMAC_SHA256)?,
            Algorithm::HS384 => hmac(aws_lc_rs::hmac::HMAC_SHA384)?,
            Algorithm::HS512 => hmac(aws_lc_rs::hmac::HMAC_SHA512)?,
            Algorithm::RS256 => rsa(&signature::RSA_PKCS1_SHA256)?,
            Algorithm::RS384 => rsa(&signature::RSA_PKCS1_SHA384)?,
            Algorithm::RS512 => rsa(&signature::RSA_PKCS1_SHA512)?,
            Algorithm::PS256 => rsa(&signature::RSA_PSS_SHA256)?,
            Algorithm::PS384 => rsa(&signature::RSA_PSS_SHA384)?,
            Algorithm::PS512 => rsa(&signature::RSA_PSS_SHA512)?,
            Algorithm::ES256 => ec(&signature::ECDSA_P256_SHA256_FIXED_SIGNING)?,
            Algorithm::ES384 => ec(&signature::ECDSA_P384_SHA384_FIXED_SIGNING)?,
            Algorithm::ES512 => ec(&signature::ECDSA_P521_SHA512_FIXED_SIGNING)?,
            Algorithm::EdDSA => Signer::Ed(Ed25519KeyPair::generate().map_err(fail)?),
        };
        Ok(TestKey {
            alg,
            kid: kid.into(),
            signer,
        })
    }

    /// The algorithm this key signs with.
    pub fn alg(&self) -> Algorithm {
        self.alg
    }

    /// The key id.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The JWK that verifies this key's signatures, with `kid`, `alg` and
    /// `use: sig`. For HMAC keys this is the secret itself (`kty: oct`).
    pub fn jwk(&self) -> Value {
        let mut jwk = match &self.signer {
            Signer::Hmac(_, secret) => json!({"kty": "oct", "k": b64(secret)}),
            Signer::Rsa(kp, _) => {
                let pk = kp.public_key();
                json!({
                    "kty": "RSA",
                    "n": b64(pk.modulus().big_endian_without_leading_zero()),
                    "e": b64(pk.exponent().big_endian_without_leading_zero()),
                })
            }
            Signer::Ec(kp) => {
                let point = kp.public_key().as_ref();
                let n = (point.len() - 1) / 2;
                let crv = match self.alg {
                    Algorithm::ES256 => "P-256",
                    Algorithm::ES384 => "P-384",
                    _ => "P-521",
                };
                json!({"kty": "EC", "crv": crv, "x": b64(&point[1..=n]), "y": b64(&point[1 + n..])})
            }
            Signer::Ed(kp) => {
                json!({"kty": "OKP", "crv": "Ed25519", "x": b64(kp.public_key().as_ref())})
            }
        };
        jwk["kid"] = json!(self.kid);
        jwk["alg"] = json!(self.alg.as_str());
        jwk["use"] = json!("sig");
        jwk
    }

    /// The key's public JWK members only (no `kid`, `alg` or `use`): what
    /// a DPoP proof carries in its header. For HMAC keys, the secret.
    pub fn public_jwk(&self) -> Value {
        let mut jwk = self.jwk();
        if let Some(m) = jwk.as_object_mut() {
            for name in ["kid", "alg", "use"] {
                m.remove(name);
            }
        }
        jwk
    }

    /// The RFC 7638 SHA-256 thumbprint of the public key, base64url: the
    /// `cnf.jkt` of a token bound to this key. `None` for HMAC keys.
    pub fn jwk_thumbprint(&self) -> Option<String> {
        crate::authn::dpop::jwk_thumbprint(&self.jwk()).filter(|_| !self.is_symmetric())
    }

    /// A JWK Set document holding this key alone.
    pub fn jwks_json(&self) -> String {
        jwks_json(&[self])
    }

    /// Signs `signing_input` (normally `BASE64URL(header).BASE64URL(payload)`).
    pub fn sign(&self, signing_input: &[u8]) -> Vec<u8> {
        match &self.signer {
            Signer::Hmac(key, _) => aws_lc_rs::hmac::sign(key, signing_input).as_ref().to_vec(),
            Signer::Rsa(kp, enc) => {
                let mut sig = vec![0; kp.public_modulus_len()];
                // Signing with a valid generated key and a sized buffer cannot
                // fail; an empty signature would simply not verify.
                if kp
                    .sign(*enc, &SystemRandom::new(), signing_input, &mut sig)
                    .is_err()
                {
                    sig.clear();
                }
                sig
            }
            Signer::Ec(kp) => kp
                .sign(&SystemRandom::new(), signing_input)
                .map(|s| s.as_ref().to_vec())
                .unwrap_or_default(),
            Signer::Ed(kp) => kp.sign(signing_input).as_ref().to_vec(),
        }
    }

    /// A compact JWS of exactly these header and payload JSON texts, signed
    /// by this key: for tests that need odd headers or payloads.
    pub fn sign_raw(&self, header_json: &str, payload_json: &str) -> String {
        let input = format!(
            "{}.{}",
            b64(header_json.as_bytes()),
            b64(payload_json.as_bytes())
        );
        let sig = self.sign(input.as_bytes());
        format!("{input}.{}", b64(&sig))
    }

    /// A token with header `{"alg", "typ": "JWT", "kid"}` and these claims.
    pub fn token(&self, claims: &Value) -> String {
        self.token_with_header(&json!({"typ": "JWT"}), claims)
    }

    /// A token with `alg` and `kid` added to `header`, and these claims.
    pub fn token_with_header(&self, header: &Value, claims: &Value) -> String {
        let mut header = header.clone();
        header["alg"] = json!(self.alg.as_str());
        header["kid"] = json!(self.kid);
        self.sign_raw(&header.to_string(), &claims.to_string())
    }

    /// Whether this is an HMAC (shared-secret) key.
    pub fn is_symmetric(&self) -> bool {
        self.alg.family() == Family::Hmac
    }
}

/// A JWK Set document holding the public JWKs of `keys`.
pub fn jwks_json(keys: &[&TestKey]) -> String {
    json!({"keys": keys.iter().map(|k| k.jwk()).collect::<Vec<_>>()}).to_string()
}
