//! The only file that names a crypto backend.
//!
//! A [`Verifier`] is one key made ready for one algorithm: parsed once when
//! the key set is built, then used for any number of verifications with no
//! parsing and no allocation. With both backends compiled in, each algorithm
//! uses the one measured faster on it (`benches/validate.rs`, the `floor/*`
//! groups): aws-lc-rs for RSA, ECDSA and Ed25519, whose pre-parsed public keys
//! ring lacks; ring for HMAC. Both compare MACs in constant time. ES512
//! (P-521) is aws-lc-rs only: ring 0.17 does not implement it.

// A build with no backend stops at the `compile_error!` in lib.rs; these
// allowances keep that message the only one it prints.
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
        Algorithm::ES512 => &s::ECDSA_P521_SHA512_FIXED,
        Algorithm::EdDSA => &s::ED25519,
    };
    s::ParsedPublicKey::new(params, key_bytes(material))
        .map(|k| Verifier {
            inner: Inner::AwsKey(k),
        })
        .map_err(|_| "the crypto backend rejected the public key")
}

/// Why an ES512 key is skipped when ring is the only backend.
#[cfg(feature = "ring")]
pub(crate) const RING_NO_P521: &str =
    "ES512 (P-521) needs the aws-lc-rs backend: ring does not implement P-521";

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
        // ring 0.17 does not implement P-521: the key is skipped with this
        // reason, and the set may still load with its other keys.
        Algorithm::ES512 => return Err(RING_NO_P521),
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

/// A key's identity by content: SHA-256 over a domain tag, the algorithms it
/// may verify and its canonical material (DER `RSAPublicKey`, SEC1 point,
/// Ed25519 key or HMAC secret), each part length-prefixed, cut to 64 bits.
///
/// Like an RFC 7638 thumbprint it depends only on the key, so the same key
/// fetched again has the same id. 64 bits suffice: the ids are compared only
/// between keys from the same issuer's set, and a collision would need that
/// issuer, who signs tokens anyway, to publish it. The value is never shown.
pub(crate) fn fingerprint(algs: u16, material: Material<'_>) -> u64 {
    let (tag, curve): (u8, u8) = match material {
        Material::Rsa(_) => (1, 0),
        Material::Ec(c, _) => (2, c.coordinate_len() as u8),
        Material::Ed25519(_) => (3, 0),
        Material::Hmac(_) => (4, 0),
    };
    let bytes = key_bytes(material);
    let len = (bytes.len() as u64).to_be_bytes();
    let parts: [&[u8]; 5] = [
        b"tokenwarden key id v1\0",
        &[tag, curve],
        &algs.to_be_bytes(),
        &len,
        bytes,
    ];
    let digest = sha256(&parts);
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    u64::from_be_bytes(first)
}

#[cfg(feature = "aws-lc-rs")]
fn sha256(parts: &[&[u8]]) -> [u8; 32] {
    let mut ctx = aws::digest::Context::new(&aws::digest::SHA256);
    for p in parts {
        ctx.update(p);
    }
    let mut out = [0u8; 32];
    out.copy_from_slice(ctx.finish().as_ref());
    out
}

#[cfg(all(feature = "ring", not(feature = "aws-lc-rs")))]
fn sha256(parts: &[&[u8]]) -> [u8; 32] {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    for p in parts {
        ctx.update(p);
    }
    let mut out = [0u8; 32];
    out.copy_from_slice(ctx.finish().as_ref());
    out
}

/// No backend: no key ever loads (every verifier is refused first), and no
/// digest ever compares equal ([`digests_equal`] is false without one).
#[cfg(not(any(feature = "aws-lc-rs", feature = "ring")))]
fn sha256(_parts: &[&[u8]]) -> [u8; 32] {
    [0; 32]
}

/// SHA-256 of `data`.
#[cfg_attr(
    not(any(all(test, feature = "legacy"), feature = "outgoing")),
    allow(dead_code)
)]
pub(crate) fn sha256_of(data: &[u8]) -> [u8; 32] {
    sha256(&[data])
}

/// SHA-256 of the concatenation of `parts` (API keys are stored as the
/// digest of their labelled parts).
#[cfg_attr(not(any(feature = "api-keys", feature = "mint")), allow(dead_code))]
pub(crate) fn sha256_parts(parts: &[&[u8]]) -> [u8; 32] {
    sha256(parts)
}

/// HMAC-SHA256 (RFC 2104) of the concatenation of `parts` under a key
/// drawn once per process from the system generator: a digest to name a
/// low-entropy secret by (a password, a session cookie) in caches and logs.
/// Unlike a plain SHA-256, a logged or leaked value confirms no guess
/// offline: without the key, which never leaves the process, a candidate
/// password cannot be hashed to compare. `None` when the generator failed
/// or no backend is compiled in (callers fail closed).
#[cfg_attr(not(feature = "legacy"), allow(dead_code))]
pub(crate) fn keyed_digest(parts: &[&[u8]]) -> Option<[u8; 32]> {
    use std::sync::OnceLock;
    static KEY: OnceLock<Option<[u8; 32]>> = OnceLock::new();
    let key = KEY.get_or_init(|| {
        let mut k = [0u8; 32];
        random_bytes(&mut k).ok().map(|()| k)
    });
    let key = key.as_ref()?;
    #[cfg(feature = "aws-lc-rs")]
    {
        let key = aws::hmac::Key::new(aws::hmac::HMAC_SHA256, key);
        let mut ctx = aws::hmac::Context::with_key(&key);
        for p in parts {
            ctx.update(p);
        }
        let mut out = [0u8; 32];
        out.copy_from_slice(ctx.sign().as_ref());
        Some(out)
    }
    #[cfg(all(feature = "ring", not(feature = "aws-lc-rs")))]
    {
        let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, key);
        let mut ctx = ring::hmac::Context::with_key(&key);
        for p in parts {
            ctx.update(p);
        }
        let mut out = [0u8; 32];
        out.copy_from_slice(ctx.sign().as_ref());
        Some(out)
    }
    #[cfg(not(any(feature = "aws-lc-rs", feature = "ring")))]
    {
        let _ = (key, parts);
        None
    }
}

/// Whether two digests are equal, compared in constant time by the
/// backend: aws-lc-rs's `CRYPTO_memcmp`; with ring alone, whose public
/// `constant_time` module is deprecated ("no promises regarding side
/// channels"), a double-HMAC comparison under a per-process random key
/// (ring's `hmac::verify`, itself constant-time): the tags compared are
/// unpredictable to the caller, so even their comparison's timing says
/// nothing about the inputs. Never `==`. Lengths are not secret.
pub(crate) fn digests_equal(a: &[u8], b: &[u8]) -> bool {
    #[cfg(feature = "aws-lc-rs")]
    {
        aws::constant_time::verify_slices_are_equal(a, b).is_ok()
    }
    #[cfg(all(feature = "ring", not(feature = "aws-lc-rs")))]
    {
        use std::sync::OnceLock;
        static KEY: OnceLock<Option<ring::hmac::Key>> = OnceLock::new();
        let key = KEY.get_or_init(|| {
            let rng = ring::rand::SystemRandom::new();
            ring::hmac::Key::generate(ring::hmac::HMAC_SHA256, &rng).ok()
        });
        let Some(key) = key else {
            return false;
        };
        let tag = ring::hmac::sign(key, a);
        a.len() == b.len() && ring::hmac::verify(key, b, tag.as_ref()).is_ok()
    }
    #[cfg(not(any(feature = "aws-lc-rs", feature = "ring")))]
    {
        false
    }
}

/// Fills `out` from the backend's system random generator.
///
/// # Errors
/// When the generator fails, or no backend is compiled in.
#[cfg_attr(
    not(any(
        feature = "api-keys",
        feature = "mint",
        feature = "legacy",
        feature = "testing"
    )),
    allow(dead_code)
)]
pub(crate) fn random_bytes(out: &mut [u8]) -> Result<(), &'static str> {
    #[cfg(feature = "aws-lc-rs")]
    {
        aws::rand::fill(out).map_err(|_| "the system random generator failed")
    }
    #[cfg(all(feature = "ring", not(feature = "aws-lc-rs")))]
    {
        use ring::rand::SecureRandom as _;
        ring::rand::SystemRandom::new()
            .fill(out)
            .map_err(|_| "the system random generator failed")
    }
    #[cfg(not(any(feature = "aws-lc-rs", feature = "ring")))]
    {
        Err("no crypto backend compiled in (enable feature aws-lc-rs or ring)")
    }
}

/// HMAC-SHA-256 of `message` under `key` (DPoP server nonces, RFC 9449 §8).
///
/// # Errors
/// When no backend is compiled in.
pub(crate) fn hmac_sha256(key: &[u8], message: &[u8]) -> Result<[u8; 32], &'static str> {
    #[cfg(feature = "aws-lc-rs")]
    {
        let key = aws::hmac::Key::new(aws::hmac::HMAC_SHA256, key);
        let mut out = [0u8; 32];
        out.copy_from_slice(aws::hmac::sign(&key, message).as_ref());
        Ok(out)
    }
    #[cfg(all(feature = "ring", not(feature = "aws-lc-rs")))]
    {
        let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, key);
        let mut out = [0u8; 32];
        out.copy_from_slice(ring::hmac::sign(&key, message).as_ref());
        Ok(out)
    }
    #[cfg(not(any(feature = "aws-lc-rs", feature = "ring")))]
    {
        Err("no crypto backend compiled in (enable feature aws-lc-rs or ring)")
    }
}

#[cfg(all(test, any(feature = "aws-lc-rs", feature = "ring")))]
mod tests {
    use super::*;

    /// Issue 20 item 5: HMAC tags are compared by the backend's
    /// constant-time `hmac::verify`, never by `==` on a computed tag. The key
    /// is the backend's own `hmac::Key`, the verify arms call the backends'
    /// `verify` (pinned here by their text: replacing one with a tag
    /// comparison fails this test), and the answers are right, including for
    /// a prefix of the right tag.
    #[test]
    fn hmac_tags_go_through_the_backends_constant_time_verify() {
        let secret = [7u8; 32];
        let v = match Verifier::new(Algorithm::HS256, Material::Hmac(&secret)) {
            Ok(v) => v,
            Err(e) => panic!("{e}"),
        };
        #[allow(unreachable_patterns)]
        let backend_key = match &v.inner {
            #[cfg(feature = "aws-lc-rs")]
            Inner::AwsHmac(_) => true,
            #[cfg(feature = "ring")]
            Inner::RingHmac(_) => true,
            _ => false,
        };
        assert!(backend_key, "HMAC keys are the backend's hmac::Key");
        let src = include_str!("crypto.rs");
        let body = &src[src.find("pub(crate) fn verify(&self").unwrap_or(0)..];
        let body = &body[..body.find("\n    }\n").unwrap_or(body.len())];
        assert!(
            body.contains("Inner::AwsHmac(k) => aws::hmac::verify(k, message, signature).is_ok()")
        );
        assert!(
            body.contains(
                "Inner::RingHmac(k) => ring::hmac::verify(k, message, signature).is_ok()"
            )
        );
        assert!(!body.contains("=="), "no tag is compared with ==");

        let msg = b"header.payload";
        #[cfg(feature = "ring")]
        let tag = ring::hmac::sign(&ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &secret), msg)
            .as_ref()
            .to_vec();
        #[cfg(not(feature = "ring"))]
        let tag = aws::hmac::sign(&aws::hmac::Key::new(aws::hmac::HMAC_SHA256, &secret), msg)
            .as_ref()
            .to_vec();
        assert!(v.verify(msg, &tag));
        assert!(!v.verify(msg, &tag[..16]), "a prefix of the tag");
        assert!(!v.verify(msg, &[]), "an empty tag");
        let mut flipped = tag.clone();
        flipped[31] ^= 1;
        assert!(!v.verify(msg, &flipped));
        assert!(!v.verify(b"header.payloaD", &tag));
    }

    /// API key digests are compared by the backend's constant-time compare
    /// (aws-lc-rs `constant_time::verify_slices_are_equal`, ring a
    /// double HMAC through `hmac::verify`), pinned here by the text of
    /// [`digests_equal`], and the answers are right.
    #[test]
    fn api_key_digests_are_compared_in_constant_time() {
        let src = include_str!("crypto.rs");
        let body = &src[src.find("pub(crate) fn digests_equal").unwrap_or(0)..];
        let body = &body[..body.find("\n}\n").unwrap_or(body.len())];
        assert!(body.contains("aws::constant_time::verify_slices_are_equal(a, b).is_ok()"));
        assert!(body.contains("ring::hmac::verify(key, b, tag.as_ref()).is_ok()"));
        assert!(!body.contains("a == b"), "no digest is compared with ==");
        let d = sha256_of(b"secret");
        let mut other = d;
        other[31] ^= 1;
        assert!(digests_equal(&d, &sha256_of(b"secret")));
        assert!(!digests_equal(&d, &other));
        assert!(!digests_equal(&d, &d[..31]));
        assert!(!digests_equal(&d, &[]));
        let mut r = [0u8; 32];
        assert!(random_bytes(&mut r).is_ok());
        assert_ne!(r, [0u8; 32]);
    }

    /// ring 0.17 has no P-521: its verifier refuses ES512 with the reason a
    /// ring-only build gives for skipping such keys (with aws-lc-rs too, EC
    /// keys go to aws-lc-rs and ES512 verifies: `tests/rfc_vectors.rs`).
    #[cfg(feature = "ring")]
    #[test]
    fn ring_refuses_es512_with_a_reason() {
        let point = [4u8; 133];
        let err = ring_verifier(
            Algorithm::ES512,
            Material::Ec(crate::alg::Curve::P521, &point),
        );
        assert_eq!(err.err(), Some(RING_NO_P521));
    }
}

// ---------------------------------------------------------------------------
// Signing (feature `mint`): the internal token's key. Kept in this one block
// so that the verifying side above stays as it is. With both backends
// compiled in, aws-lc-rs signs (it also verifies EdDSA and ECDSA above).
// ---------------------------------------------------------------------------

/// Signing keys, randomness and digests for [`crate::mint`].
#[cfg(feature = "mint")]
pub(crate) mod signing {
    #![cfg_attr(
        not(any(feature = "aws-lc-rs", feature = "ring")),
        allow(unused_variables, dead_code)
    )]

    /// The algorithms the minter signs with.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub(crate) enum SigningAlg {
        /// Ed25519 (RFC 8037).
        EdDSA,
        /// ECDSA on P-256 with SHA-256, fixed-length signatures (RFC 7518 §3.4).
        ES256,
    }

    /// Why a private key was refused. Never carries key bytes.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub(crate) enum KeyProblem {
        /// Neither an Ed25519 nor a P-256 PKCS #8 private key.
        Unsupported,
        /// No crypto backend compiled in.
        #[cfg_attr(any(feature = "aws-lc-rs", feature = "ring"), allow(dead_code))]
        NoBackend,
        /// The backend failed to generate a key or to sign.
        Backend,
    }

    /// A private key ready to sign, with its public key: the 32-byte Ed25519
    /// key, or the uncompressed SEC1 point `04 || x || y` for P-256.
    pub(crate) struct SigningKey {
        alg: SigningAlg,
        public: Vec<u8>,
        inner: Inner,
    }

    enum Inner {
        #[cfg(feature = "aws-lc-rs")]
        AwsEd(aws_lc_rs::signature::Ed25519KeyPair),
        #[cfg(feature = "aws-lc-rs")]
        AwsEc(aws_lc_rs::signature::EcdsaKeyPair),
        #[cfg(all(feature = "ring", not(feature = "aws-lc-rs")))]
        RingEd(ring::signature::Ed25519KeyPair),
        #[cfg(all(feature = "ring", not(feature = "aws-lc-rs")))]
        RingEc(ring::signature::EcdsaKeyPair, ring::rand::SystemRandom),
        #[cfg(not(any(feature = "aws-lc-rs", feature = "ring")))]
        None,
    }

    impl std::fmt::Debug for SigningKey {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            // Never any key material: the algorithm only.
            f.debug_struct("SigningKey")
                .field("alg", &self.alg)
                .finish_non_exhaustive()
        }
    }

    impl SigningKey {
        /// The algorithm this key signs with.
        pub(crate) fn alg(&self) -> SigningAlg {
            self.alg
        }

        /// The public key: 32 bytes (Ed25519) or a 65-byte SEC1 point (P-256).
        pub(crate) fn public_key(&self) -> &[u8] {
            &self.public
        }

        /// Parses an unencrypted PKCS #8 private key (v1 or v2) as Ed25519,
        /// then as P-256. Any other key (RSA, P-384, X25519, ...) is refused.
        #[cfg(feature = "aws-lc-rs")]
        pub(crate) fn from_pkcs8(der: &[u8]) -> Result<SigningKey, KeyProblem> {
            use aws_lc_rs::signature::{
                ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair, KeyPair,
            };
            if let Ok(k) = Ed25519KeyPair::from_pkcs8(der) {
                return Ok(SigningKey {
                    alg: SigningAlg::EdDSA,
                    public: k.public_key().as_ref().to_vec(),
                    inner: Inner::AwsEd(k),
                });
            }
            match EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, der) {
                Ok(k) => Ok(SigningKey {
                    alg: SigningAlg::ES256,
                    public: k.public_key().as_ref().to_vec(),
                    inner: Inner::AwsEc(k),
                }),
                Err(_) => Err(KeyProblem::Unsupported),
            }
        }

        /// Parses an unencrypted PKCS #8 private key (v1 or v2) as Ed25519,
        /// then as P-256. Any other key (RSA, P-384, X25519, ...) is refused.
        #[cfg(all(feature = "ring", not(feature = "aws-lc-rs")))]
        pub(crate) fn from_pkcs8(der: &[u8]) -> Result<SigningKey, KeyProblem> {
            use ring::signature::{
                ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair, KeyPair,
            };
            // `maybe_unchecked` accepts PKCS #8 v1 too (`openssl genpkey
            // -algorithm ed25519` writes v1: no public key to check against).
            if let Ok(k) = Ed25519KeyPair::from_pkcs8_maybe_unchecked(der) {
                return Ok(SigningKey {
                    alg: SigningAlg::EdDSA,
                    public: k.public_key().as_ref().to_vec(),
                    inner: Inner::RingEd(k),
                });
            }
            let rng = ring::rand::SystemRandom::new();
            match EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, der, &rng) {
                Ok(k) => Ok(SigningKey {
                    alg: SigningAlg::ES256,
                    public: k.public_key().as_ref().to_vec(),
                    inner: Inner::RingEc(k, rng),
                }),
                Err(_) => Err(KeyProblem::Unsupported),
            }
        }

        /// No backend: no key loads.
        #[cfg(not(any(feature = "aws-lc-rs", feature = "ring")))]
        pub(crate) fn from_pkcs8(_der: &[u8]) -> Result<SigningKey, KeyProblem> {
            Err(KeyProblem::NoBackend)
        }

        /// A fresh key (for development: it lives only as long as the process).
        pub(crate) fn generate(alg: SigningAlg) -> Result<SigningKey, KeyProblem> {
            let mut der = generate_pkcs8(alg)?;
            let key = SigningKey::from_pkcs8(&der);
            der.fill(0);
            key
        }

        /// Signs `message`: 64 bytes for both algorithms (ES256 in the JWS
        /// fixed-length `r || s` form, RFC 7518 §3.4).
        pub(crate) fn sign(&self, message: &[u8]) -> Result<Vec<u8>, KeyProblem> {
            match &self.inner {
                #[cfg(feature = "aws-lc-rs")]
                Inner::AwsEd(k) => Ok(k.sign(message).as_ref().to_vec()),
                #[cfg(feature = "aws-lc-rs")]
                Inner::AwsEc(k) => {
                    // aws-lc-rs draws its nonce itself; the argument is for
                    // ring compatibility.
                    let rng = aws_lc_rs::rand::SystemRandom::new();
                    k.sign(&rng, message)
                        .map(|s| s.as_ref().to_vec())
                        .map_err(|_| KeyProblem::Backend)
                }
                #[cfg(all(feature = "ring", not(feature = "aws-lc-rs")))]
                Inner::RingEd(k) => Ok(k.sign(message).as_ref().to_vec()),
                #[cfg(all(feature = "ring", not(feature = "aws-lc-rs")))]
                Inner::RingEc(k, rng) => k
                    .sign(rng, message)
                    .map(|s| s.as_ref().to_vec())
                    .map_err(|_| KeyProblem::Backend),
                #[cfg(not(any(feature = "aws-lc-rs", feature = "ring")))]
                Inner::None => Err(KeyProblem::NoBackend),
            }
        }
    }

    #[cfg(feature = "aws-lc-rs")]
    fn generate_pkcs8(alg: SigningAlg) -> Result<Vec<u8>, KeyProblem> {
        use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair};
        let rng = aws_lc_rs::rand::SystemRandom::new();
        let doc = match alg {
            SigningAlg::EdDSA => Ed25519KeyPair::generate_pkcs8(&rng),
            SigningAlg::ES256 => {
                EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
            }
        };
        doc.map(|d| d.as_ref().to_vec())
            .map_err(|_| KeyProblem::Backend)
    }

    #[cfg(all(feature = "ring", not(feature = "aws-lc-rs")))]
    fn generate_pkcs8(alg: SigningAlg) -> Result<Vec<u8>, KeyProblem> {
        use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair};
        let rng = ring::rand::SystemRandom::new();
        let doc = match alg {
            SigningAlg::EdDSA => Ed25519KeyPair::generate_pkcs8(&rng),
            SigningAlg::ES256 => {
                EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
            }
        };
        doc.map(|d| d.as_ref().to_vec())
            .map_err(|_| KeyProblem::Backend)
    }

    #[cfg(not(any(feature = "aws-lc-rs", feature = "ring")))]
    fn generate_pkcs8(_alg: SigningAlg) -> Result<Vec<u8>, KeyProblem> {
        Err(KeyProblem::NoBackend)
    }
}
