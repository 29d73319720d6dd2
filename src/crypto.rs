//! The only file that names a crypto backend.
//!
//! A [`Verifier`] is one key made ready for one algorithm: parsed once when
//! the key set is built, then used for any number of verifications with no
//! parsing and no allocation. With both backends compiled in, each algorithm
//! uses the one measured faster on it (`benches/validate.rs`, the `floor/*`
//! groups): aws-lc-rs for RSA, ECDSA and Ed25519, whose pre-parsed public keys
//! ring lacks; ring for HMAC. Both compare MACs in constant time.

// With no backend compiled in, keys are refused at load and nothing verifies.
#![cfg_attr(
    not(any(feature = "aws-lc-rs", feature = "ring")),
    allow(unused_variables, dead_code)
)]

use crate::alg::{Algorithm, Curve};

#[cfg(feature = "aws-lc-rs")]
use aws_lc_rs as aws;

/// Public key material in the encodings both backends accept.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Material<'a> {
    /// DER `RSAPublicKey` (PKCS #1).
    Rsa(&'a [u8]),
    /// Uncompressed SEC1 point `04 || x || y`.
    Ec(
        #[cfg_attr(not(feature = "ring"), allow(dead_code))] Curve,
        &'a [u8],
    ),
    /// The 32-byte Ed25519 public key.
    Ed25519(&'a [u8]),
    /// An HMAC secret.
    Hmac(&'a [u8]),
}

/// Which library verifies an algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Backend {
    #[cfg(feature = "aws-lc-rs")]
    AwsLc,
    #[cfg(feature = "ring")]
    Ring,
}

impl Backend {
    /// The backend used for `alg` in this build.
    #[allow(unreachable_code, unused_variables)]
    pub(crate) fn for_alg(alg: Algorithm) -> Option<Backend> {
        #[cfg(all(feature = "ring", feature = "aws-lc-rs"))]
        {
            return Some(match alg.family() {
                crate::alg::Family::Hmac => Backend::Ring,
                _ => Backend::AwsLc,
            });
        }
        #[cfg(feature = "aws-lc-rs")]
        {
            return Some(Backend::AwsLc);
        }
        #[cfg(feature = "ring")]
        {
            return Some(Backend::Ring);
        }
        None
    }
}

/// A key made ready to verify one algorithm.
pub(crate) struct Verifier {
    inner: Inner,
}

enum Inner {
    #[cfg(feature = "aws-lc-rs")]
    AwsKey(aws::signature::ParsedPublicKey),
    // HMAC keys hold precomputed inner/outer states (over 1 KiB): boxed so a
    // key set of public keys stays small.
    #[cfg(feature = "aws-lc-rs")]
    AwsHmac(Box<aws::hmac::Key>),
    #[cfg(feature = "ring")]
    RingKey(ring::signature::UnparsedPublicKey<Box<[u8]>>),
    #[cfg(feature = "ring")]
    RingHmac(Box<ring::hmac::Key>),
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print key material, not even public keys.
        f.write_str("Verifier")
    }
}

impl Verifier {
    /// Prepares `material` for `alg`. The caller has already checked that the
    /// material's type fits the algorithm.
    pub(crate) fn new(alg: Algorithm, material: Material<'_>) -> Result<Verifier, &'static str> {
        match Backend::for_alg(alg) {
            #[cfg(feature = "aws-lc-rs")]
            Some(Backend::AwsLc) => aws_verifier(alg, material),
            #[cfg(feature = "ring")]
            Some(Backend::Ring) => ring_verifier(alg, material),
            None => Err("no crypto backend compiled in (enable feature aws-lc-rs or ring)"),
        }
    }

    /// Whether `signature` is valid over `message`.
    #[inline]
    pub(crate) fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
        match &self.inner {
            #[cfg(feature = "aws-lc-rs")]
            Inner::AwsKey(k) => k.verify_sig(message, signature).is_ok(),
            #[cfg(feature = "aws-lc-rs")]
            Inner::AwsHmac(k) => aws::hmac::verify(k, message, signature).is_ok(),
            #[cfg(feature = "ring")]
            Inner::RingKey(k) => k.verify(message, signature).is_ok(),
            #[cfg(feature = "ring")]
            Inner::RingHmac(k) => ring::hmac::verify(k, message, signature).is_ok(),
            #[allow(unreachable_patterns)]
            _ => false,
        }
    }
}

#[cfg(feature = "aws-lc-rs")]
fn aws_verifier(alg: Algorithm, material: Material<'_>) -> Result<Verifier, &'static str> {
    use aws::signature as s;
    let hmac = |a| Verifier {
        inner: Inner::AwsHmac(Box::new(aws::hmac::Key::new(a, key_bytes(material)))),
    };
    let params: &'static dyn s::VerificationAlgorithm = match alg {
        Algorithm::HS256 => return Ok(hmac(aws::hmac::HMAC_SHA256)),
        Algorithm::HS384 => return Ok(hmac(aws::hmac::HMAC_SHA384)),
        Algorithm::HS512 => return Ok(hmac(aws::hmac::HMAC_SHA512)),
        Algorithm::RS256 => &s::RSA_PKCS1_2048_8192_SHA256,
        Algorithm::RS384 => &s::RSA_PKCS1_2048_8192_SHA384,
        Algorithm::RS512 => &s::RSA_PKCS1_2048_8192_SHA512,
        Algorithm::PS256 => &s::RSA_PSS_2048_8192_SHA256,
        Algorithm::PS384 => &s::RSA_PSS_2048_8192_SHA384,
        Algorithm::PS512 => &s::RSA_PSS_2048_8192_SHA512,
        Algorithm::ES256 => &s::ECDSA_P256_SHA256_FIXED,
        Algorithm::ES384 => &s::ECDSA_P384_SHA384_FIXED,
        Algorithm::EdDSA => &s::ED25519,
    };
    s::ParsedPublicKey::new(params, key_bytes(material))
        .map(|k| Verifier {
            inner: Inner::AwsKey(k),
        })
        .map_err(|_| "the crypto backend rejected the public key")
}

#[cfg(feature = "ring")]
fn ring_verifier(alg: Algorithm, material: Material<'_>) -> Result<Verifier, &'static str> {
    use ring::signature as s;
    let hmac = |a| Verifier {
        inner: Inner::RingHmac(Box::new(ring::hmac::Key::new(a, key_bytes(material)))),
    };
    let params: &'static dyn s::VerificationAlgorithm = match alg {
        Algorithm::HS256 => return Ok(hmac(ring::hmac::HMAC_SHA256)),
        Algorithm::HS384 => return Ok(hmac(ring::hmac::HMAC_SHA384)),
        Algorithm::HS512 => return Ok(hmac(ring::hmac::HMAC_SHA512)),
        Algorithm::RS256 => &s::RSA_PKCS1_2048_8192_SHA256,
        Algorithm::RS384 => &s::RSA_PKCS1_2048_8192_SHA384,
        Algorithm::RS512 => &s::RSA_PKCS1_2048_8192_SHA512,
        Algorithm::PS256 => &s::RSA_PSS_2048_8192_SHA256,
        Algorithm::PS384 => &s::RSA_PSS_2048_8192_SHA384,
        Algorithm::PS512 => &s::RSA_PSS_2048_8192_SHA512,
        Algorithm::ES256 => &s::ECDSA_P256_SHA256_FIXED,
        Algorithm::ES384 => &s::ECDSA_P384_SHA384_FIXED,
        Algorithm::EdDSA => &s::ED25519,
    };
    // ring has no pre-parsed public key type: it parses on each call. Check
    // the key once here so that a bad key is skipped at load, not per token.
    ring_check_key(alg, material)?;
    Ok(Verifier {
        inner: Inner::RingKey(s::UnparsedPublicKey::new(
            params,
            key_bytes(material).to_vec().into_boxed_slice(),
        )),
    })
}

#[cfg(feature = "ring")]
fn ring_check_key(alg: Algorithm, material: Material<'_>) -> Result<(), &'static str> {
    let ok = match material {
        // The RSA DER was built and range-checked by the key loader.
        Material::Rsa(_) | Material::Hmac(_) => true,
        Material::Ec(curve, point) => {
            point.len() == 1 + 2 * curve.coordinate_len()
                && point.first() == Some(&4)
                && ring_point_on_curve(curve, point)
        }
        Material::Ed25519(k) => k.len() == 32 && alg == Algorithm::EdDSA,
    };
    if ok {
        Ok(())
    } else {
        Err("the crypto backend rejected the public key")
    }
}

/// Whether an uncompressed point lies on the curve (SEC 1 §3.2.2 public key
/// validation). ring parses ECDSA keys only when it verifies, and has no
/// public point check; ECDH does the full validation on the peer's key, so
/// one agreement with a throwaway private key is the check (once, at load).
#[cfg(feature = "ring")]
fn ring_point_on_curve(curve: Curve, point: &[u8]) -> bool {
    use ring::agreement as ecdh;
    let alg = match curve {
        Curve::P256 => &ecdh::ECDH_P256,
        Curve::P384 => &ecdh::ECDH_P384,
        #[allow(unreachable_patterns)]
        _ => return false,
    };
    let rng = ring::rand::SystemRandom::new();
    let Ok(ours) = ecdh::EphemeralPrivateKey::generate(alg, &rng) else {
        return false;
    };
    ecdh::agree_ephemeral(ours, &ecdh::UnparsedPublicKey::new(alg, point), |_| ()).is_ok()
}

fn key_bytes(m: Material<'_>) -> &[u8] {
    match m {
        Material::Rsa(b) | Material::Ec(_, b) | Material::Ed25519(b) | Material::Hmac(b) => b,
    }
}
