//! [`Confirmation`]: the two `cnf` members (RFC 7800 §3.1) that bind a
//! token to its sender, read from a token's payload whatever the caller's
//! claims type is, so that the binding checks never depend on it.

use std::fmt;

use serde::Deserializer;
use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, Visitor};
use serde_json::{Map, Value};

use super::X5T_S256;

/// Longest `x5t#S256` or `jkt` kept: both are base64url SHA-256 digests
/// (43 characters); a longer value is recorded as malformed, not copied.
const MAX_MEMBER_LEN: usize = 128;

/// One `cnf` member as found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
enum Member {
    #[default]
    Absent,
    Str(Box<str>),
    /// Present, but not a string of at most [`MAX_MEMBER_LEN`] bytes.
    Malformed,
}

impl Member {
    fn from_value(v: Option<&Value>) -> Member {
        match v {
            None => Member::Absent,
            Some(Value::String(s)) if s.len() <= MAX_MEMBER_LEN => Member::Str(s.as_str().into()),
            Some(_) => Member::Malformed,
        }
    }
}

/// A token's confirmation (`cnf`, RFC 7800) as far as the sender checks
/// need it: the certificate thumbprint `x5t#S256` (RFC 8705 §3.1) and the
/// DPoP key thumbprint `jkt` (RFC 9449 §6.1), each at most 128 bytes.
///
/// [`Validator`](crate::Validator) fills it in every
/// [`Validated`](crate::Validated) from the token's payload itself, not
/// from the caller's claims type: a typed-claims layer holds a bound token
/// to its binding exactly as a JSON one does
/// ([`check_bearer`](super::check_bearer)).
///
/// ```
/// use serde_json::json;
/// use tokenwarden::authn::mtls::Confirmation;
///
/// let claims = json!({ "sub": "a", "cnf": { "jkt": "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I" } });
/// let cnf = Confirmation::from_claims(claims.as_object().unwrap());
/// assert!(cnf.is_dpop_bound());
/// assert_eq!(cnf.x5t_s256(), None);
/// ```
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Confirmation {
    x5t_s256: Member,
    jkt: Member,
    /// `cnf` is present but not an object.
    not_an_object: bool,
}

impl fmt::Debug for Confirmation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Confirmation")
            .field("x5t#S256", &self.x5t_s256)
            .field("jkt", &self.jkt)
            .field("not_an_object", &self.not_an_object)
            .finish()
    }
}

impl Confirmation {
    /// The confirmation in JSON claims (`claims["cnf"]`).
    pub fn from_claims(claims: &Map<String, Value>) -> Confirmation {
        match claims.get("cnf") {
            None => Confirmation::default(),
            Some(Value::Object(cnf)) => Confirmation {
                x5t_s256: Member::from_value(cnf.get(X5T_S256)),
                jkt: Member::from_value(cnf.get("jkt")),
                not_an_object: false,
            },
            Some(_) => Confirmation {
                not_an_object: true,
                ..Confirmation::default()
            },
        }
    }

    /// The confirmation in a JWT payload (JSON text whose duplicate names
    /// the validator has already refused). Linear in the payload; a payload
    /// that cannot name `cnf` (no `cnf` and no `\u` escape in it) is not
    /// parsed at all.
    pub(crate) fn from_payload(payload: &str) -> Result<Confirmation, serde_json::Error> {
        // A member name equal to `cnf` is spelt `"cnf"` or with a `\u`
        // escape (RFC 8259 §7): without either there is none to find.
        if !payload.contains("cnf") && !payload.contains("\\u") {
            return Ok(Confirmation::default());
        }
        let mut de = serde_json::Deserializer::from_str(payload);
        de.deserialize_map(PayloadVisitor)
    }

    /// Whether the token is bound to a DPoP key (`cnf.jkt` present, RFC
    /// 9449 §6.1): such a token is never a bearer token.
    pub fn is_dpop_bound(&self) -> bool {
        self.jkt != Member::Absent
    }

    /// Whether the token names a certificate (`cnf["x5t#S256"]` present,
    /// RFC 8705 §3.1), well formed or not.
    pub fn is_certificate_bound(&self) -> bool {
        self.x5t_s256 != Member::Absent
    }

    /// `cnf["x5t#S256"]`, when it is a string of at most 128 bytes.
    pub fn x5t_s256(&self) -> Option<&str> {
        match &self.x5t_s256 {
            Member::Str(s) => Some(s),
            _ => None,
        }
    }

    /// `cnf.jkt`, when it is a string of at most 128 bytes.
    pub fn jkt(&self) -> Option<&str> {
        match &self.jkt {
            Member::Str(s) => Some(s),
            _ => None,
        }
    }

    /// Whether `cnf` is there but is not an object (RFC 7800 §3.1 says it
    /// is one): refused by the binding checks, never ignored.
    pub fn is_malformed(&self) -> bool {
        self.not_an_object
    }
}

/// The payload's top-level object: every member skipped but `cnf`.
struct PayloadVisitor;

impl<'de> Visitor<'de> for PayloadVisitor {
    type Value = Confirmation;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object of claims")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Confirmation, A::Error> {
        let mut found = Confirmation::default();
        while let Some(name) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            if name == "cnf" {
                found = map.next_value_seed(CnfSeed)?;
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(found)
    }
}

/// The `cnf` value: an object whose `x5t#S256` and `jkt` are kept.
struct CnfSeed;

impl<'de> DeserializeSeed<'de> for CnfSeed {
    type Value = Confirmation;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Confirmation, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for CnfSeed {
    type Value = Confirmation;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a cnf object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Confirmation, A::Error> {
        let mut found = Confirmation::default();
        while let Some(name) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            let slot = match &*name {
                X5T_S256 => &mut found.x5t_s256,
                "jkt" => &mut found.jkt,
                _ => {
                    map.next_value::<IgnoredAny>()?;
                    continue;
                }
            };
            if *slot != Member::Absent {
                // A name given twice: neither value is trusted.
                return Err(de::Error::custom("duplicate member in cnf"));
            }
            *slot = map.next_value_seed(MemberSeed)?;
        }
        Ok(found)
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Confirmation, E> {
        Ok(not_an_object())
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Confirmation, E> {
        Ok(not_an_object())
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Confirmation, E> {
        Ok(not_an_object())
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Confirmation, E> {
        Ok(not_an_object())
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<Confirmation, E> {
        Ok(not_an_object())
    }
    fn visit_unit<E: de::Error>(self) -> Result<Confirmation, E> {
        Ok(not_an_object())
    }
    fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Confirmation, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(not_an_object())
    }
}

fn not_an_object() -> Confirmation {
    Confirmation {
        not_an_object: true,
        ..Confirmation::default()
    }
}

/// One member's value: a short string kept, anything else malformed.
struct MemberSeed;

impl<'de> DeserializeSeed<'de> for MemberSeed {
    type Value = Member;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Member, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for MemberSeed {
    type Value = Member;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a thumbprint")
    }

    fn visit_str<E: de::Error>(self, s: &str) -> Result<Member, E> {
        Ok(if s.len() <= MAX_MEMBER_LEN {
            Member::Str(s.into())
        } else {
            Member::Malformed
        })
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Member, E> {
        Ok(Member::Malformed)
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Member, E> {
        Ok(Member::Malformed)
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Member, E> {
        Ok(Member::Malformed)
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Member, E> {
        Ok(Member::Malformed)
    }
    fn visit_unit<E: de::Error>(self) -> Result<Member, E> {
        Ok(Member::Malformed)
    }
    fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Member, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Member::Malformed)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Member, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Member::Malformed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn both(payload: &str) -> (Confirmation, Confirmation) {
        let from_payload = Confirmation::from_payload(payload).expect("valid JSON");
        let map: Map<String, Value> = serde_json::from_str(payload).expect("an object");
        (from_payload, Confirmation::from_claims(&map))
    }

    #[test]
    fn the_payload_reader_agrees_with_the_json_claims() {
        for payload in [
            r#"{"sub":"a"}"#,
            r#"{"sub":"a","cnf":{"jkt":"abc"}}"#,
            r#"{"cnf":{"x5t#S256":"abc","other":[1,{"x":2}]},"z":1}"#,
            r#"{"cnf":"x"}"#,
            r#"{"cnf":[1,2]}"#,
            r#"{"cnf":null}"#,
            r#"{"cnf":{"jkt":null}}"#,
            r#"{"cnf":{"jkt":7}}"#,
            r#"{"cnf":{"x5t#S256":{"a":1}}}"#,
            r#"{"\u0063nf":{"jkt":"k"}}"#,
            r#"{"cnf":{"\u006akt":"k"}}"#,
            r#"{"nested":{"cnf":{"jkt":"k"}}}"#,
        ] {
            let (a, b) = both(payload);
            assert_eq!(a, b, "{payload}");
        }
    }

    #[test]
    fn an_escaped_cnf_name_is_still_found() {
        let (cnf, _) = both(r#"{"\u0063nf":{"jkt":"k"}}"#);
        assert!(cnf.is_dpop_bound());
    }

    #[test]
    fn long_members_are_malformed_not_copied() {
        let long = "a".repeat(MAX_MEMBER_LEN + 1);
        let payload = json!({ "cnf": { "x5t#S256": long, "jkt": long } }).to_string();
        let (cnf, from_map) = both(&payload);
        assert_eq!(cnf, from_map);
        assert!(cnf.is_certificate_bound() && cnf.is_dpop_bound());
        assert_eq!((cnf.x5t_s256(), cnf.jkt()), (None, None));
    }

    #[test]
    fn a_name_twice_in_cnf_is_refused() {
        assert!(Confirmation::from_payload(r#"{"cnf":{"jkt":"a","jkt":"b"}}"#).is_err());
    }
}
