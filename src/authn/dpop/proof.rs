//! The DPoP proof itself (RFC 9449 §4.2, §4.3): parsed, checked against the
//! request, its signature verified with the key it carries. Stateless: the
//! token binding, nonce and replay checks are the authenticator's.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde_json::{Map, Value};

use crate::alg::{AlgSet, Algorithm};
use crate::authn::Refusal;
use crate::crypto;
use crate::error::Error;
use crate::keys::{KeyRefusal, PRIVATE_MEMBERS, proof_key, thumbprint_input};
use crate::token;

/// Longest proof accepted. The largest key allowed (RSA-4096, the keys'
/// `MAX_PROOF_RSA_BITS`) and its
/// signature take about 1.7 KiB of it once encoded; the rest is room for a
/// long `htu`, `jti` and `nonce`.
pub(crate) const MAX_PROOF_LEN: usize = 6 * 1024;

/// Longest `jti` accepted (RFC 9449 §4.2 asks for at least 96 random bits:
/// real ones are a few dozen characters).
pub(crate) const MAX_JTI_LEN: usize = 256;

/// What the request says the proof must match.
pub(crate) struct Expect<'a> {
    /// The request method (RFC 9449 §4.3 check 8).
    pub(crate) htm: &'a str,
    /// The request's normalised URI (check 9).
    pub(crate) htu: &'a str,
    /// The access token the proof must hash (`ath`, check 12).
    pub(crate) token: &'a str,
    pub(crate) now: i64,
    /// How old `iat` may be, and how far in the future (check 11).
    pub(crate) max_age: i64,
    pub(crate) leeway: i64,
    pub(crate) algs: AlgSet,
}

/// A proof that passed its own checks.
#[derive(Debug)]
pub(crate) struct Proof {
    /// The RFC 7638 SHA-256 thumbprint of the proof's key, base64url.
    pub(crate) jkt: String,
    pub(crate) jti: String,
    pub(crate) iat: i64,
    pub(crate) nonce: Option<String>,
}

fn refuse(kind: &'static str, description: &'static str) -> Refusal {
    Refusal::invalid_dpop_proof(kind, description)
}

fn malformed() -> Refusal {
    refuse("dpop_proof_malformed", "the DPoP proof is not a valid JWT")
}

/// Checks `proof` against the request; every check of RFC 9449 §4.3 but
/// the token binding (check 12's `cnf` half), nonce (10) and replay (11's
/// `jti` half), which need the token and state. Cheap checks first: the
/// signature is verified last, so garbage costs no public-key operation.
pub(crate) fn check(proof: &str, expect: &Expect<'_>) -> Result<Proof, Refusal> {
    // RFC 9449 §4.3 check 2: a single well-formed JWT.
    if proof.len() > MAX_PROOF_LEN {
        return Err(refuse(
            "dpop_proof_malformed",
            "the DPoP proof is too large",
        ));
    }
    let parts = token::split(proof).map_err(|e| match e {
        // An unsecured proof (`alg: none`, empty signature).
        Error::UnsupportedAlgorithm { .. } => refuse(
            "dpop_proof_alg",
            "the DPoP proof's alg is not an accepted asymmetric algorithm",
        ),
        _ => malformed(),
    })?;
    let header = decode_object(parts.header)?;
    // Check 4: typ is dpop+jwt (a media type: case-insensitive, RFC 7515 §4.1.9).
    let typ = header.get("typ").and_then(Value::as_str);
    if !typ.is_some_and(|t| t.eq_ignore_ascii_case("dpop+jwt")) {
        return Err(refuse(
            "dpop_proof_typ",
            "the DPoP proof's typ is not dpop+jwt",
        ));
    }
    // RFC 7515 §4.1.11: no extension we do not understand.
    if header.contains_key("crit") {
        return Err(refuse(
            "dpop_proof_malformed",
            "the DPoP proof has critical header parameters",
        ));
    }
    // Check 5: an asymmetric algorithm from the allow-list (never none or
    // HMAC: the allow-list holds neither).
    let alg = header
        .get("alg")
        .and_then(Value::as_str)
        .and_then(Algorithm::from_name)
        .filter(|a| expect.algs.contains(*a))
        .ok_or_else(|| {
            refuse(
                "dpop_proof_alg",
                "the DPoP proof's alg is not an accepted asymmetric algorithm",
            )
        })?;
    // Check 7: a public key, never a private one.
    let Some(jwk) = header.get("jwk") else {
        return Err(refuse("dpop_proof_jwk", "the DPoP proof has no jwk"));
    };
    if jwk
        .as_object()
        .is_some_and(|m| PRIVATE_MEMBERS.iter().any(|p| m.contains_key(*p)))
    {
        return Err(refuse(
            "dpop_proof_private_key",
            "the DPoP proof's jwk holds a private key",
        ));
    }
    let claims = decode_object(parts.payload)?;
    // Check 3: the required claims.
    let jti = claims
        .get("jti")
        .and_then(Value::as_str)
        .filter(|j| !j.is_empty() && j.len() <= MAX_JTI_LEN)
        .ok_or_else(|| refuse("dpop_jti_missing", "the DPoP proof has no usable jti"))?;
    // Check 8: the method, case-sensitive (RFC 9110 §9.1).
    if claims.get("htm").and_then(Value::as_str) != Some(expect.htm) {
        return Err(refuse(
            "dpop_htm_mismatch",
            "the DPoP proof's htm does not match the request",
        ));
    }
    // Check 9: the URI, both sides normalised, query and fragment ignored.
    let htu_matches = claims
        .get("htu")
        .and_then(Value::as_str)
        .and_then(|u| super::htu::normalise(u).ok())
        .is_some_and(|u| u == expect.htu);
    if !htu_matches {
        return Err(refuse(
            "dpop_htu_mismatch",
            "the DPoP proof's htu does not match the request",
        ));
    }
    // Check 11: iat within the window (whole seconds; a fraction is cut).
    let iat = match claims.get("iat") {
        Some(Value::Number(n)) => n
            .as_i64()
            .or_else(|| n.as_f64().filter(|f| f.is_finite()).map(|f| f as i64)),
        _ => None,
    }
    .ok_or_else(|| refuse("dpop_proof_malformed", "the DPoP proof has no numeric iat"))?;
    if iat
        < expect
            .now
            .saturating_sub(expect.max_age)
            .saturating_sub(expect.leeway)
    {
        return Err(refuse("dpop_iat_too_old", "the DPoP proof is too old"));
    }
    if iat > expect.now.saturating_add(expect.leeway) {
        return Err(refuse(
            "dpop_iat_in_future",
            "the DPoP proof is issued in the future",
        ));
    }
    // Check 12: ath is the hash of the very token presented.
    let ath = URL_SAFE_NO_PAD.encode(crypto::sha256_of(expect.token.as_bytes()));
    let ath_matches = claims
        .get("ath")
        .and_then(Value::as_str)
        .is_some_and(|a| crypto::digests_equal(a.as_bytes(), ath.as_bytes()));
    if !ath_matches {
        return Err(refuse(
            "dpop_ath_mismatch",
            "the DPoP proof's ath does not match the access token",
        ));
    }
    let nonce = match claims.get("nonce") {
        None => None,
        Some(Value::String(n)) => Some(n.clone()),
        Some(_) => return Err(malformed()),
    };
    // Checks 6 and 7: the key, then one signature verification with it.
    let key = proof_key(jwk, alg).map_err(|e| match e {
        // Numbers only: safe to tell the client what size to use.
        KeyRefusal::RsaSize { bits, max } => Refusal::invalid_dpop_proof_owned(
            "dpop_proof_jwk",
            format!(
                "the DPoP proof's RSA key has {bits} bits; proof keys have {} to {max} bits",
                crate::keys::MIN_RSA_BITS
            ),
        ),
        // Other reasons may quote the key: not for the client.
        KeyRefusal::Other(_) => refuse(
            "dpop_proof_jwk",
            "the DPoP proof's jwk is not a usable public key for its alg",
        ),
    })?;
    let mut sig = Vec::with_capacity(token::decoded_len_bound(parts.signature.len()));
    if parts.signature.len() > token::MAX_SIGNATURE_LEN * 2
        || token::decode_into_append(parts.signature, &mut sig, "signature").is_err()
        || !key.verify(alg, parts.signing_input, &sig)
    {
        return Err(refuse(
            "dpop_proof_signature",
            "the DPoP proof's signature does not verify",
        ));
    }
    let input = thumbprint_input(jwk).ok_or_else(|| {
        refuse(
            "dpop_proof_jwk",
            "the DPoP proof's jwk is not a usable public key for its alg",
        )
    })?;
    let jkt = URL_SAFE_NO_PAD.encode(crypto::sha256_of(input.as_bytes()));
    Ok(Proof {
        jkt,
        jti: jti.to_owned(),
        iat,
        nonce,
    })
}

/// A base64url JSON object segment: strict base64url, UTF-8, bounded
/// nesting, no duplicate member names (two `htu`s or two `jwk`s would let
/// two readers see two proofs).
fn decode_object(segment: &[u8]) -> Result<Map<String, Value>, Refusal> {
    let mut json = Vec::with_capacity(token::decoded_len_bound(segment.len()));
    token::decode_into_append(segment, &mut json, "segment").map_err(|_| malformed())?;
    let text = token::check_json_text(&json, "segment").map_err(|_| malformed())?;
    let mut de = serde_json::Deserializer::from_str(text);
    let map = de.deserialize_map(UniqueMap).map_err(|_| malformed())?;
    de.end().map_err(|_| malformed())?;
    Ok(map)
}

/// A JSON object whose member names are all distinct (RFC 7515 §4).
struct UniqueMap;

impl<'de> Visitor<'de> for UniqueMap {
    type Value = Map<String, Value>;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<Self::Value, A::Error> {
        let mut map = Map::new();
        while let Some(name) = access.next_key::<String>()? {
            let value: Value = access.next_value()?;
            if map.insert(name, value).is_some() {
                return Err(de::Error::custom("duplicate member name"));
            }
        }
        Ok(map)
    }
}
