//! JWK Set JSON in (RFC 7517 §4-§5, RFC 7518 §6, RFC 8037 §2); unusable keys
//! skipped with a reason.

use std::collections::HashMap;
use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Deserialize;

use super::{Key, KeySet, KeyType, MAX_KEYS, MAX_KEYS_PER_KID, MAX_SKIPPED};
use crate::alg::{AlgSet, Algorithm, Curve, Family};
use crate::crypto::Material;
use crate::error::Error;

/// Smallest RSA modulus accepted (RFC 7518 §3.3, RFC 8725 §3.5).
pub(crate) const MIN_RSA_BITS: usize = 2048;
/// Largest RSA modulus the backends verify.
pub(crate) const MAX_RSA_BITS: usize = 8192;
/// Largest RSA modulus a DPoP proof's `jwk` may have. The client picks its
/// proof key, and every request pays one verification with it: an
/// RSA-8192 verification costs several times an RSA-4096 one, and no
/// client needs more than 4096 bits (RFC 8725 §3.5 and NIST SP 800-57 ask
/// for 2048).
pub(crate) const MAX_PROOF_RSA_BITS: usize = 4096;

/// Why a JWK is not used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum KeyRefusal {
    /// An RSA modulus of `bits` bits, outside `MIN_RSA_BITS..=max`: numbers
    /// only, so it may be told to a client.
    RsaSize { bits: usize, max: usize },
    /// Anything else, in words that may quote the JWK (for key-set reasons
    /// and logs, not for a client).
    Other(String),
}

impl fmt::Display for KeyRefusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyRefusal::RsaSize { bits, .. } if *bits < MIN_RSA_BITS => write!(
                f,
                "RSA modulus of {bits} bits is below the minimum of {MIN_RSA_BITS} (RFC 8725 §3.5)"
            ),
            KeyRefusal::RsaSize { bits, max } => write!(
                f,
                "RSA modulus of {bits} bits is above the maximum of {max}"
            ),
            KeyRefusal::Other(reason) => f.write_str(reason),
        }
    }
}

impl From<String> for KeyRefusal {
    fn from(reason: String) -> Self {
        KeyRefusal::Other(reason)
    }
}

impl From<&str> for KeyRefusal {
    fn from(reason: &str) -> Self {
        KeyRefusal::Other(reason.to_owned())
    }
}

/// A key from the document that will not be used, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SkippedKey {
    /// The key's `kid`, if it had one.
    pub kid: Option<String>,
    /// Why the key was skipped.
    pub reason: String,
}

impl fmt::Display for SkippedKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kid {
            Some(kid) => write!(f, "key {kid:?}: {}", self.reason),
            None => write!(f, "key without kid: {}", self.reason),
        }
    }
}

#[derive(Deserialize)]
struct Document {
    keys: Vec<serde_json::Value>,
}

/// The members of a JWK this crate reads; others are ignored (RFC 7517 §4).
#[derive(Deserialize)]
struct Jwk {
    kty: String,
    #[serde(rename = "use")]
    use_: Option<String>,
    key_ops: Option<Vec<String>>,
    alg: Option<String>,
    kid: Option<String>,
    crv: Option<String>,
    n: Option<String>,
    e: Option<String>,
    x: Option<String>,
    y: Option<String>,
    k: Option<String>,
}

pub(crate) fn parse(json: &[u8]) -> Result<KeySet, Error> {
    // RFC 8259 §8.1: JSON text is UTF-8. serde_json checks only the strings
    // it keeps, so members we skip are checked here.
    let json = std::str::from_utf8(json).map_err(|_| Error::KeysUnavailable {
        reason: "the document is not UTF-8 JSON (RFC 8259 §8.1)".into(),
    })?;
    let doc: Document = serde_json::from_str(json).map_err(|e| Error::KeysUnavailable {
        reason: describe_not_a_jwks(json, &e).into(),
    })?;
    let mut keys: Vec<Key> = Vec::new();
    let mut skipped = Skipped::default();
    // Keys loaded per kid: each is a signature check for a token with that
    // kid, so a hostile set cannot make one token cost many.
    let mut per_kid: HashMap<Box<str>, usize> = HashMap::new();
    for value in doc.keys {
        let kid = || value.get("kid").and_then(|k| k.as_str()).map(str::to_owned);
        if keys.len() == MAX_KEYS {
            skipped.push(
                kid(),
                format!("the set already has the maximum of {MAX_KEYS} keys"),
            );
            continue;
        }
        let result = Jwk::deserialize(&value)
            .map_err(|e| format!("not a valid JWK: {e}"))
            .and_then(|jwk| to_key(jwk, MAX_RSA_BITS).map_err(|e| e.to_string()));
        match result {
            Ok(key) => {
                if let Some(k) = &key.kid {
                    let n = per_kid.entry(k.clone()).or_insert(0);
                    if *n >= MAX_KEYS_PER_KID {
                        skipped.push(
                            kid(),
                            format!(
                                "the set already has the maximum of {MAX_KEYS_PER_KID} keys with this kid"
                            ),
                        );
                        continue;
                    }
                    *n += 1;
                }
                keys.push(key);
            }
            Err(reason) => skipped.push(kid(), reason),
        }
    }
    Ok(KeySet::from_parts(keys, skipped.kept, skipped.dropped))
}

/// The skipped keys, at most [`MAX_SKIPPED`] kept with their reasons; the
/// rest only counted, so a hostile document cannot grow the list.
#[derive(Default)]
struct Skipped {
    kept: Vec<SkippedKey>,
    dropped: usize,
}

impl Skipped {
    fn push(&mut self, kid: Option<String>, reason: String) {
        if self.kept.len() < MAX_SKIPPED {
            self.kept.push(SkippedKey { kid, reason });
        } else {
            self.dropped = self.dropped.saturating_add(1);
        }
    }
}

/// Says what the document was instead of a JWK Set, without quoting it.
fn describe_not_a_jwks(json: &str, e: &serde_json::Error) -> String {
    match serde_json::from_str::<serde_json::Value>(json) {
        Err(_) => format!("the document is not JSON ({e})"),
        Ok(serde_json::Value::Object(map)) if !map.contains_key("keys") => {
            let looks_like_pem = map
                .values()
                .any(|v| v.as_str().is_some_and(|s| s.contains("-----BEGIN")));
            if looks_like_pem {
                "the document maps names to PEM certificates, not a JWK Set: use the issuer's jwks_uri".into()
            } else {
                "the document is a JSON object without a \"keys\" member: not a JWK Set (RFC 7517 §5)".into()
            }
        }
        Ok(serde_json::Value::Object(_)) => format!("\"keys\" is not an array of JWKs ({e})"),
        Ok(_) => "the document is not a JSON object: not a JWK Set (RFC 7517 §5)".into(),
    }
}

/// The key `jwk` describes, with RSA moduli of `MIN_RSA_BITS..=max_rsa_bits`.
fn to_key(jwk: Jwk, max_rsa_bits: usize) -> Result<Key, KeyRefusal> {
    // RFC 7517 §4.2/§4.3: a key for encryption, or whose operations do not
    // include verify, is not used to verify.
    if let Some(u) = jwk.use_.as_deref() {
        if u != "sig" {
            return Err(format!("\"use\" is {u:?}, not \"sig\"").into());
        }
    }
    if let Some(ops) = &jwk.key_ops {
        if !ops.iter().any(|o| o == "verify") {
            return Err("\"key_ops\" does not include \"verify\"".into());
        }
    }
    let declared = match jwk.alg.as_deref() {
        None => None,
        Some(name) => Some(
            Algorithm::from_name(name).ok_or_else(|| format!("unsupported \"alg\" {name:?}"))?,
        ),
    };
    let kid = jwk.kid.map(String::into_boxed_str);
    match jwk.kty.as_str() {
        "RSA" => {
            let n = b64(jwk.n.as_deref(), "n")?;
            let e = b64(jwk.e.as_deref(), "e")?;
            let (der, bits) = rsa_der(&n, &e, max_rsa_bits)?;
            let key_type = KeyType::Rsa { bits };
            let algs = algs_for(key_type, declared, |_| Ok(()))?;
            Key::new(kid, key_type, algs, Material::Rsa(&der)).map_err(KeyRefusal::Other)
        }
        "EC" => {
            let curve = match jwk.crv.as_deref() {
                Some("P-256") => Curve::P256,
                Some("P-384") => Curve::P384,
                Some("P-521") => Curve::P521,
                Some(other) => return Err(format!("unsupported EC curve {other:?}").into()),
                None => return Err("EC key without \"crv\"".into()),
            };
            let x = b64(jwk.x.as_deref(), "x")?;
            let y = b64(jwk.y.as_deref(), "y")?;
            // RFC 7518 §6.2.1.2: coordinates are the full size, leading zeros kept.
            let len = curve.coordinate_len();
            if x.len() != len || y.len() != len {
                return Err(format!("EC coordinates must be {len} bytes each").into());
            }
            let mut point = Vec::with_capacity(1 + 2 * len);
            point.push(4);
            point.extend_from_slice(&x);
            point.extend_from_slice(&y);
            let key_type = KeyType::Ec(curve);
            let algs = algs_for(key_type, declared, |_| Ok(()))?;
            Key::new(kid, key_type, algs, Material::Ec(curve, &point)).map_err(KeyRefusal::Other)
        }
        "OKP" => {
            match jwk.crv.as_deref() {
                Some("Ed25519") => {}
                Some(other) => return Err(format!("unsupported OKP curve {other:?}").into()),
                None => return Err("OKP key without \"crv\"".into()),
            }
            let x = b64(jwk.x.as_deref(), "x")?;
            let Ok(x) = <[u8; 32]>::try_from(x.as_slice()) else {
                return Err("Ed25519 public key must be 32 bytes".into());
            };
            check_ed25519_point(&x)?;
            let algs = algs_for(KeyType::Ed25519, declared, |_| Ok(()))?;
            Key::new(kid, KeyType::Ed25519, algs, Material::Ed25519(&x)).map_err(KeyRefusal::Other)
        }
        "oct" => {
            let k = b64(jwk.k.as_deref(), "k")?;
            let algs = algs_for(KeyType::Oct, declared, |alg| check_hmac_len(alg, k.len()))?;
            Key::new(kid, KeyType::Oct, algs, Material::Hmac(&k)).map_err(KeyRefusal::Other)
        }
        other => Err(format!("unsupported \"kty\" {other:?}").into()),
    }
}

/// JWK members that hold private (or symmetric) key material (RFC 7518
/// §6.2.2, §6.3.2, §6.4; RFC 8037 §2): a public key never has them.
pub(crate) const PRIVATE_MEMBERS: [&str; 8] = ["d", "p", "q", "dp", "dq", "qi", "oth", "k"];

/// The public key a DPoP proof carries in its `jwk` header (RFC 9449
/// §4.2), made ready to verify `alg` alone: one verifier, parsed once per
/// proof. A JWK with private key material, a symmetric key, or an `alg`
/// member other than `alg` is refused.
pub(crate) fn proof_key(jwk: &serde_json::Value, alg: Algorithm) -> Result<Key, KeyRefusal> {
    let Some(members) = jwk.as_object() else {
        return Err("\"jwk\" is not a JSON object".into());
    };
    // RFC 9449 §4.3 check 7: the key must not be a private key.
    if let Some(m) = PRIVATE_MEMBERS.iter().find(|m| members.contains_key(**m)) {
        return Err(format!("\"jwk\" holds private key material (\"{m}\")").into());
    }
    let mut parsed = Jwk::deserialize(jwk).map_err(|e| format!("not a valid JWK: {e}"))?;
    if parsed.kty == "oct" {
        return Err("\"jwk\" is a symmetric key".into());
    }
    match parsed.alg.as_deref() {
        Some(a) if a != alg.as_str() => {
            return Err(format!("\"jwk\" is declared for {a:?}, not {alg}").into());
        }
        _ => parsed.alg = Some(alg.as_str().to_owned()),
    }
    // RFC 9449 §4.3 leaves what is acceptable to local policy (check 5),
    // RFC 8725 §3.5 asks for RSA keys of 2048 bits or more: an RSA proof
    // key of MIN_RSA_BITS..=MAX_PROOF_RSA_BITS, checked here, before the
    // key is parsed or any signature verified with it.
    to_key(parsed, MAX_PROOF_RSA_BITS)
}

/// The RFC 7638 JWK thumbprint input: the required members of the key's
/// type, in lexicographic order, as JSON with no whitespace (§3.2; RFC
/// 8037 §2 for OKP). `None` for a key type without a thumbprint here.
pub(crate) fn thumbprint_input(jwk: &serde_json::Value) -> Option<String> {
    let m = jwk.as_object()?;
    let kty = m.get("kty")?.as_str()?;
    let names: &[&str] = match kty {
        "EC" => &["crv", "kty", "x", "y"],
        "OKP" => &["crv", "kty", "x"],
        "RSA" => &["e", "kty", "n"],
        _ => return None,
    };
    let mut out = String::from("{");
    for (i, name) in names.iter().enumerate() {
        let value = m.get(*name)?.as_str()?;
        if i > 0 {
            out.push(',');
        }
        // Names and values as JSON strings (RFC 7638 §3.3: the values as
        // they are in the JWK, escaped as JSON requires).
        out.push_str(&serde_json::to_string(name).ok()?);
        out.push(':');
        out.push_str(&serde_json::to_string(value).ok()?);
    }
    out.push('}');
    Some(out)
}

/// p = 2^255 - 19, little-endian (RFC 8032 §5.1).
const ED25519_P: [u8; 32] = {
    let mut p = [0xff; 32];
    p[0] = 0xed;
    p[31] = 0x7f;
    p
};

/// The y coordinates of the eight points of small order on edwards25519
/// (x is then fixed up to its sign): 1 (the identity, order 1), p - 1
/// (order 2), 0 (order 4, both signs) and the two of order 8 (both signs),
/// as in libsodium's and Zcash's (ZIP 215) lists.
const ED25519_SMALL_ORDER_Y: [[u8; 32]; 5] = [
    {
        let mut one = [0; 32];
        one[0] = 1;
        one
    },
    {
        let mut p_minus_1 = ED25519_P;
        p_minus_1[0] = 0xec;
        p_minus_1
    },
    [0; 32],
    [
        0x26, 0xe8, 0x95, 0x8f, 0xc2, 0xb2, 0x27, 0xb0, 0x45, 0xc3, 0xf4, 0x89, 0xf2, 0xef, 0x98,
        0xf0, 0xd5, 0xdf, 0xac, 0x05, 0xd3, 0xc6, 0x33, 0x39, 0xb1, 0x38, 0x02, 0x88, 0x6d, 0x53,
        0xfc, 0x05,
    ],
    [
        0xc7, 0x17, 0x6a, 0x70, 0x3d, 0x4d, 0xd8, 0x4f, 0xba, 0x3c, 0x0b, 0x76, 0x0d, 0x10, 0x67,
        0x0f, 0x2a, 0x20, 0x53, 0xfa, 0x2c, 0x39, 0xcc, 0xc6, 0x4e, 0xc7, 0xfd, 0x77, 0x92, 0xac,
        0x03, 0x7a,
    ],
];

/// Refuses Ed25519 public keys that are not canonical encodings (RFC 8032
/// §5.1.3: y >= p) or that are points of small order: with such a key a
/// crafted signature (e.g. R = identity, S = 0) verifies every message.
fn check_ed25519_point(x: &[u8; 32]) -> Result<(), String> {
    // Bit 255 is the sign of x; the other 255 bits are y, little-endian.
    let mut y = *x;
    y[31] &= 0x7f;
    // Compare from the most significant byte: y < p?
    let below_p = y
        .iter()
        .rev()
        .zip(ED25519_P.iter().rev())
        .find(|(a, b)| a != b)
        .is_some_and(|(a, b)| a < b);
    if !below_p {
        return Err(
            "Ed25519 public key is not canonically encoded (y >= p, RFC 8032 §5.1.3)".into(),
        );
    }
    if ED25519_SMALL_ORDER_Y.contains(&y) {
        return Err(
            "Ed25519 public key is a point of small order: it would verify forged signatures"
                .into(),
        );
    }
    Ok(())
}

/// The algorithms a key may verify: its declared `alg` if it fits the key,
/// else every algorithm the key's type implies and `usable` allows.
fn algs_for(
    key_type: KeyType,
    declared: Option<Algorithm>,
    usable: impl Fn(Algorithm) -> Result<(), String>,
) -> Result<AlgSet, String> {
    if let Some(alg) = declared {
        if !key_type.fits(alg) {
            return Err(format!(
                "\"alg\" {alg} does not fit a {} key",
                key_type.describe()
            ));
        }
        usable(alg)?;
        return Ok([alg].into_iter().collect());
    }
    let mut first_err = None;
    let algs: AlgSet = Algorithm::ALL
        .into_iter()
        .filter(|a| key_type.fits(*a))
        .filter(|a| match usable(*a) {
            Ok(()) => true,
            Err(e) => {
                first_err.get_or_insert(e);
                false
            }
        })
        .collect();
    if algs.is_empty() {
        return Err(first_err.unwrap_or_else(|| "no algorithm fits this key".into()));
    }
    Ok(algs)
}

/// RFC 7518 §3.2: an HMAC key at least as long as the hash output.
pub(crate) fn check_hmac_len(alg: Algorithm, len: usize) -> Result<(), String> {
    debug_assert_eq!(alg.family(), Family::Hmac);
    let min = alg.hmac_min_key_len();
    if len < min {
        Err(format!(
            "HMAC key of {len} bytes is shorter than the {min} bytes {alg} requires (RFC 7518 §3.2)"
        ))
    } else {
        Ok(())
    }
}

fn b64(value: Option<&str>, member: &str) -> Result<Vec<u8>, String> {
    let value = value.ok_or_else(|| format!("missing \"{member}\""))?;
    URL_SAFE_NO_PAD
        .decode(value)
        .map_err(|_| format!("\"{member}\" is not base64url without padding"))
}

/// Checks an RSA public key (a modulus of `MIN_RSA_BITS..=max_bits`, a
/// sane exponent) and encodes it as DER `RSAPublicKey` (RFC 8017 A.1.1).
/// The one RSA size check of the crate: key sets and DPoP proof keys.
fn rsa_der(n: &[u8], e: &[u8], max_bits: usize) -> Result<(Vec<u8>, usize), KeyRefusal> {
    let n = strip_zeros(n);
    let e = strip_zeros(e);
    // After `strip_zeros` the first byte is non-zero, so it has at most 7
    // leading zero bits; an empty (or all-zero) modulus has 0 bits. The
    // arithmetic is checked all the same: this runs on hostile input.
    let bits = match n.first() {
        None => 0,
        Some(b) => n
            .len()
            .saturating_mul(8)
            .saturating_sub(b.leading_zeros() as usize),
    };
    if bits < MIN_RSA_BITS || bits > max_bits.min(MAX_RSA_BITS) {
        return Err(KeyRefusal::RsaSize {
            bits,
            max: max_bits.min(MAX_RSA_BITS),
        });
    }
    let e_odd = e.last().is_some_and(|b| b & 1 == 1);
    if e.is_empty() || e.len() > 4 || !e_odd || e == [1] {
        return Err("RSA public exponent must be odd, at least 3 and at most 32 bits".into());
    }
    let mut body = Vec::with_capacity(n.len() + e.len() + 16);
    der_integer(&mut body, n);
    der_integer(&mut body, e);
    let mut der = Vec::with_capacity(body.len() + 4);
    der.push(0x30);
    der_len(&mut der, body.len());
    der.extend_from_slice(&body);
    Ok((der, bits))
}

fn strip_zeros(b: &[u8]) -> &[u8] {
    let i = b.iter().position(|&x| x != 0).unwrap_or(b.len());
    &b[i..]
}

fn der_integer(out: &mut Vec<u8>, magnitude: &[u8]) {
    let pad = magnitude.first().is_some_and(|b| b & 0x80 != 0);
    out.push(0x02);
    der_len(out, magnitude.len() + usize::from(pad));
    if pad {
        out.push(0);
    }
    out.extend_from_slice(magnitude);
}

fn der_len(out: &mut Vec<u8>, len: usize) {
    if len < 0x80 {
        out.push(len as u8);
    } else if len <= 0xff {
        out.extend_from_slice(&[0x81, len as u8]);
    } else {
        // Moduli are at most 8192 bits, so two length bytes always suffice.
        out.extend_from_slice(&[0x82, (len >> 8) as u8, len as u8]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The JWK Set twin of the fuzzer's discovery finding: invalid UTF-8 in a
    /// member we do not read makes the document not JSON.
    #[test]
    fn jwks_must_be_utf8_throughout() {
        let mut doc = br#"{"keys":[],"note":""#.to_vec();
        doc.extend_from_slice(b"\xff\"}");
        let e = parse(&doc).unwrap_err();
        assert!(e.to_string().contains("UTF-8"), "{e}");
        assert!(parse(br#"{"keys":[],"note":"x"}"#).is_ok());
    }

    /// RFC 7638 §3.1's example key and thumbprint.
    #[test]
    fn thumbprint_input_is_rfc_7638() {
        let jwk: serde_json::Value = serde_json::from_str(
            r#"{"kty":"RSA","n":"0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw","e":"AQAB","alg":"RS256","kid":"2011-04-29"}"#,
        )
        .unwrap();
        let input = thumbprint_input(&jwk).unwrap();
        assert!(
            input.starts_with(r#"{"e":"AQAB","kty":"RSA","n":"0vx7"#),
            "{input}"
        );
        use base64::Engine as _;
        let digest = crate::crypto::sha256_of(input.as_bytes());
        assert_eq!(
            URL_SAFE_NO_PAD.encode(digest),
            "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
        );
    }

    #[test]
    fn proof_keys_are_public_and_asymmetric() {
        let ed = serde_json::json!({"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"});
        assert!(proof_key(&ed, Algorithm::EdDSA).is_ok());
        let mut private = ed.clone();
        private["d"] = "nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A".into();
        assert!(
            proof_key(&private, Algorithm::EdDSA)
                .unwrap_err()
                .to_string()
                .contains("private")
        );
        let oct =
            serde_json::json!({"kty":"oct","k":"c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LXNlY3JldA"});
        assert!(proof_key(&oct, Algorithm::HS256).is_err());
        let mut declared = ed.clone();
        declared["alg"] = "ES256".into();
        assert!(proof_key(&declared, Algorithm::EdDSA).is_err());
        assert!(proof_key(&ed, Algorithm::ES256).is_err());
    }

    #[test]
    fn der_length_forms() {
        let mut v = Vec::new();
        der_len(&mut v, 5);
        der_len(&mut v, 200);
        der_len(&mut v, 513);
        assert_eq!(v, [5, 0x81, 200, 0x82, 2, 1]);
    }

    #[test]
    fn unusable_keys_are_skipped_not_fatal() {
        let doc = br#"{"keys":[
            {"kty":"OKP","crv":"Ed25519","kid":"good","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"},
            {"kty":"OKP","crv":"X25519","kid":"x","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"},
            {"kty":"OKP","crv":"Ed25519","kid":"enc","use":"enc","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"},
            {"kty":"OKP","crv":"Ed25519","kid":"ops","key_ops":["sign"],"x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"},
            {"kty":"OKP","crv":"Ed25519","kid":"badalg","alg":"RS256","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"},
            {"kty":"EC","crv":"P-521","kid":"p521","x":"AA","y":"AA"},
            {"kty":"EC","crv":"secp256k1","kid":"k1","x":"AA","y":"AA"},
            {"kty":"oct","kid":"short","k":"c2hvcnQ"},
            {"kty":"XYZ","kid":"xyz"},
            {"kty":"RSA","kid":"nomod","e":"AQAB"},
            {"kid":"nokty"},
            42
        ]}"#;
        let set = parse(doc).unwrap();
        assert_eq!(set.kids().collect::<Vec<_>>(), ["good"]);
        assert_eq!(set.skipped().len(), 11, "{:?}", set.skipped());
    }

    #[test]
    fn not_a_jwks_is_explained() {
        let pem = br#"{"abc":"-----BEGIN CERTIFICATE-----\nMIIB..."}"#;
        let e = parse(pem).unwrap_err().to_string();
        assert!(e.contains("PEM certificates"), "{e}");
        let e = parse(b"<html>").unwrap_err().to_string();
        assert!(e.contains("not JSON"), "{e}");
        let e = parse(b"[1]").unwrap_err().to_string();
        assert!(e.contains("not a JSON object"), "{e}");
    }
}
