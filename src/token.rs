//! Compact JWS parsing (RFC 7515 §7.1): split, strict base64url, header.
//!
//! Also the strict JSON rules shared with the claims view: UTF-8 objects
//! only, no duplicate member names (RFC 7515 §4, RFC 7519 §4), bounded nesting.

use std::borrow::Cow;
use std::fmt;
use std::mem::MaybeUninit;
use std::ops::Deref;

use serde::de::{self, IgnoredAny, MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};

use crate::alg::Algorithm;
use crate::error::Error;

/// Deepest JSON nesting accepted in a header or payload. Real tokens nest two
/// or three levels; the bound keeps hostile input from costing stack.
pub(crate) const MAX_JSON_DEPTH: usize = 32;

/// Longest `kid` accepted.
pub(crate) const MAX_KID_LEN: usize = 256;

/// Largest signature any supported algorithm makes (RSA-8192).
pub(crate) const MAX_SIGNATURE_LEN: usize = 1024;

/// The three segments of a compact JWS, still encoded.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Parts<'t> {
    /// `BASE64URL(header) '.' BASE64URL(payload)`: what the signature covers.
    pub(crate) signing_input: &'t [u8],
    pub(crate) header: &'t [u8],
    pub(crate) payload: &'t [u8],
    pub(crate) signature: &'t [u8],
}

/// Splits a compact JWS into exactly three segments (RFC 7515 §7.1).
///
/// Only the dots are looked for here: every segment then goes through the
/// strict base64url decoder, which refuses any byte outside the alphabet
/// (padding, whitespace, `+`, `/`), so the alphabet is checked exactly once.
/// A fourth or fifth segment (JWE) is refused.
pub(crate) fn split(token: &str) -> Result<Parts<'_>, Error> {
    let bytes = token.as_bytes();
    let three = || Error::malformed("a compact JWS has exactly three segments");
    let d1 = memchr::memchr(b'.', bytes).ok_or_else(three)?;
    let d2 = d1 + 1 + memchr::memchr(b'.', &bytes[d1 + 1..]).ok_or_else(three)?;
    if memchr::memchr(b'.', &bytes[d2 + 1..]).is_some() {
        return Err(Error::malformed(
            "more than three segments (JWE and JSON serialisations are not accepted)",
        ));
    }
    let header = &bytes[..d1];
    let payload = &bytes[d1 + 1..d2];
    let signature = &bytes[d2 + 1..];
    if header.is_empty() {
        return Err(Error::malformed("empty header segment"));
    }
    if signature.is_empty() {
        return Err(empty_signature(header));
    }
    Ok(Parts {
        signing_input: &bytes[..d2],
        header,
        payload,
        signature,
    })
}

/// The error for a token with an empty signature segment.
///
/// RFC 7515 §6 / RFC 8725 §3.2: an unsecured JWS (`alg: none`, in any
/// casing) has an empty signature. It is refused by its algorithm,
/// `unsupported_algorithm`, the kind people alert on, not as `malformed`.
/// Only on this error path is the header decoded here.
#[cold]
fn empty_signature(header: &[u8]) -> Error {
    let malformed = || Error::malformed("empty signature segment");
    let Ok(json) = base64_simd::URL_SAFE_NO_PAD.decode_to_vec(header) else {
        return malformed();
    };
    match parse_header(&json) {
        Ok(RawHeader { alg: Some(alg), .. }) if Algorithm::from_name(&alg).is_none() => {
            Error::UnsupportedAlgorithm {
                alg: alg.to_string(),
            }
        }
        _ => malformed(),
    }
}

/// Room enough for the decoding of `len` base64url characters.
pub(crate) fn decoded_len_bound(len: usize) -> usize {
    len / 4 * 3 + 2
}

/// Decodes strict base64url without padding (RFC 7515 §2) into `room`,
/// which must hold [`decoded_len_bound`] bytes; rules as
/// [`decode_into_append`].
pub(crate) fn decode_into<'b>(
    seg: &[u8],
    room: &'b mut [MaybeUninit<u8>],
    what: &'static str,
) -> Result<&'b [u8], Error> {
    if room.len() < decoded_len_bound(seg.len()) {
        // Unreachable by construction; refused rather than risk the
        // decoder's panic on a short buffer.
        return Err(Error::malformed(what));
    }
    base64_simd::URL_SAFE_NO_PAD
        .decode(seg, base64_simd::Out::from_uninit_slice(room))
        .map(|b| &*b)
        .map_err(|_| Error::malformed(what))
}

/// Decodes strict base64url without padding (RFC 7515 §2) and appends it to
/// `out`: non-canonical trailing bits are refused, so each token has exactly
/// one encoding. This runs on every token, so it uses the SIMD decoder; it
/// accepts exactly what the `base64` crate's strict engine accepts (the
/// proptest `both_decoders_agree_with_the_base64_crate` below compares them).
pub(crate) fn decode_into_append(
    seg: &[u8],
    out: &mut Vec<u8>,
    what: &'static str,
) -> Result<(), Error> {
    base64_simd::URL_SAFE_NO_PAD
        .decode_append(seg, out)
        .map_err(|_| Error::malformed(what))
}

/// The protected header of a validated token.
///
/// Short values (up to 30 bytes, which covers nearly every `kid` and `typ`)
/// are held inline, so handing out a header does not allocate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    alg: Algorithm,
    kid: Option<Text>,
    typ: Option<Text>,
    cty: Option<Text>,
}

impl Header {
    pub(crate) fn new(
        alg: Algorithm,
        kid: Option<&str>,
        typ: Option<&str>,
        cty: Option<&str>,
    ) -> Header {
        Header {
            alg,
            kid: kid.map(Text::new),
            typ: typ.map(Text::new),
            cty: cty.map(Text::new),
        }
    }

    /// `alg`: the algorithm the signature was verified with.
    pub fn alg(&self) -> Algorithm {
        self.alg
    }

    /// `kid`: the key id, if the token named one.
    pub fn kid(&self) -> Option<&str> {
        self.kid.as_ref().map(Text::as_str)
    }

    /// `typ`: the media type of the token, e.g. `at+jwt` (RFC 9068).
    pub fn typ(&self) -> Option<&str> {
        self.typ.as_ref().map(Text::as_str)
    }

    /// `cty`: the content type, if any.
    pub fn cty(&self) -> Option<&str> {
        self.cty.as_ref().map(Text::as_str)
    }
}

impl Serialize for Header {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = s.serialize_map(None)?;
        map.serialize_entry("alg", &self.alg)?;
        for (name, value) in [
            ("kid", self.kid()),
            ("typ", self.typ()),
            ("cty", self.cty()),
        ] {
            if let Some(value) = value {
                map.serialize_entry(name, value)?;
            }
        }
        map.end()
    }
}

/// A short string kept inline, a longer one on the heap.
#[derive(Clone, PartialEq, Eq)]
enum Text {
    Inline { len: u8, bytes: [u8; Text::INLINE] },
    Heap(Box<str>),
}

impl Text {
    const INLINE: usize = 30;

    fn new(s: &str) -> Text {
        let mut bytes = [0u8; Text::INLINE];
        match bytes.get_mut(..s.len()) {
            Some(dst) => {
                dst.copy_from_slice(s.as_bytes());
                Text::Inline {
                    len: s.len() as u8,
                    bytes,
                }
            }
            None => Text::Heap(s.into()),
        }
    }

    fn as_str(&self) -> &str {
        match self {
            // Always a whole `&str` copied in by `new`: never empty by error.
            Text::Inline { len, bytes } => {
                std::str::from_utf8(&bytes[..usize::from(*len)]).unwrap_or_default()
            }
            Text::Heap(s) => s,
        }
    }
}

impl fmt::Debug for Text {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

/// The header as parsed, borrowing from the decoded bytes.
#[derive(Debug, Default)]
pub(crate) struct RawHeader<'a> {
    pub(crate) alg: Option<Str<'a>>,
    pub(crate) kid: Option<Str<'a>>,
    pub(crate) typ: Option<Str<'a>>,
    pub(crate) cty: Option<Str<'a>>,
}

/// Parses the decoded header JSON.
///
/// `jku`, `x5u`, `jwk` and `x5c` are read past and never used: a key named by
/// the token itself proves nothing (RFC 8725 §3.10).
pub(crate) fn parse_header(json: &[u8]) -> Result<RawHeader<'_>, Error> {
    let text = check_json_text(json, "header")?;
    let mut de = serde_json::Deserializer::from_str(text);
    let header = de
        .deserialize_map(HeaderVisitor)
        .and_then(|h| de.end().map(|()| h))
        .map_err(|e| json_error("header", &e))?;
    if let Some(kid) = &header.kid {
        if kid.len() > MAX_KID_LEN {
            return Err(Error::malformed(format!(
                "kid longer than {MAX_KID_LEN} bytes"
            )));
        }
    }
    Ok(header)
}

struct HeaderVisitor;

impl<'de> Visitor<'de> for HeaderVisitor {
    type Value = RawHeader<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut h = RawHeader::default();
        let mut seen = Seen::default();
        while let Some(name) = map.next_key::<Str<'de>>()? {
            seen.insert::<A::Error>(&name)?;
            match &*name {
                "alg" => h.alg = Some(map.next_value::<StrOnly<'de>>()?.0),
                "kid" => h.kid = Some(map.next_value::<StrOnly<'de>>()?.0),
                "typ" => h.typ = Some(map.next_value::<StrOnly<'de>>()?.0),
                "cty" => h.cty = Some(map.next_value::<StrOnly<'de>>()?.0),
                // RFC 7515 §4.1.11: a recipient must reject a token whose `crit`
                // lists an extension it does not understand. We implement none.
                "crit" => {
                    map.next_value::<IgnoredAny>()?;
                    return Err(de::Error::custom(
                        "crit lists header parameters that are not understood (RFC 7515 §4.1.11)",
                    ));
                }
                // RFC 7797: an unencoded payload changes what is signed; refused.
                "b64" => {
                    let b64: bool = map.next_value()?;
                    if !b64 {
                        return Err(de::Error::custom(
                            "b64=false (RFC 7797 unencoded payload) is not supported",
                        ));
                    }
                }
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(h)
    }
}

/// Maps a JSON error to `malformed`, naming the part.
pub(crate) fn json_error(part: &'static str, e: &serde_json::Error) -> Error {
    Error::malformed(format!("{part} is not a valid JSON object: {e}"))
}

/// A JSON string borrowed from the input when it has no escapes.
///
/// Member names are compared after unescaping, so `"e\u0078p"` and `"exp"`
/// are the same name (and a duplicate).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Str<'a>(pub(crate) Cow<'a, str>);

impl Deref for Str<'_> {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl<'de> Deserialize<'de> for Str<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Str<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Str(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Str(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
                Ok(Str(Cow::Owned(v)))
            }
        }
        d.deserialize_str(V)
    }
}

/// A header parameter that must be a string.
struct StrOnly<'a>(Str<'a>);

impl<'de> Deserialize<'de> for StrOnly<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Str::deserialize(d).map(StrOnly)
    }
}

/// Member names seen so far in the header or the claims set. Names borrowed from the input
/// (no escapes) are kept inline; only escaped names or large objects reach
/// the heap.
pub(crate) struct Seen<'a> {
    inline: [&'a str; Seen::INLINE],
    len: usize,
    spill: Vec<Str<'a>>,
    /// One bit per [`Seen::bucket`] of the names seen: a name whose bit is
    /// clear cannot be a duplicate, so the usual object is checked without
    /// a single string comparison.
    buckets: u64,
}

impl Default for Seen<'_> {
    fn default() -> Self {
        Seen {
            inline: [""; Seen::INLINE],
            len: 0,
            spill: Vec::new(),
            buckets: 0,
        }
    }
}

impl<'a> Seen<'a> {
    const INLINE: usize = 16;

    /// A cheap 6-bit digest of a name: its length and its outer bytes.
    #[inline]
    fn bucket(n: &str) -> u32 {
        let b = n.as_bytes();
        let (first, last) = match b {
            [] => (0, 0),
            [f, .., l] => (*f, *l),
            [f] => (*f, *f),
        };
        let h = (b.len() as u32)
            .wrapping_mul(0x9E37_79B9)
            .wrapping_add(u32::from(first).wrapping_mul(0x85EB_CA6B))
            .wrapping_add(u32::from(last).wrapping_mul(0xC2B2_AE35));
        h >> 26
    }

    /// Notes `name`, refusing a duplicate or one member too many. The
    /// usual case (a new name, borrowed, among the first 16) is inlined into
    /// the parse; everything else takes the out-of-line path.
    #[inline]
    pub(crate) fn insert<E: de::Error>(&mut self, name: &Str<'a>) -> Result<(), E> {
        let bit = 1u64 << Self::bucket(name);
        let maybe = self.buckets & bit != 0;
        self.buckets |= bit;
        match &name.0 {
            Cow::Borrowed(b) if !maybe && self.len < Self::INLINE => {
                self.inline[self.len] = b;
                self.len += 1;
                Ok(())
            }
            _ => self.insert_slow(name, maybe),
        }
    }

    #[cold]
    #[inline(never)]
    fn insert_slow<E: de::Error>(&mut self, name: &Str<'a>, maybe: bool) -> Result<(), E> {
        let n: &str = name;
        if maybe && (self.inline[..self.len].contains(&n) || self.spill.iter().any(|s| **s == *n)) {
            return Err(E::custom(DuplicateName(name)));
        }
        match &name.0 {
            Cow::Borrowed(b) if self.len < Self::INLINE => {
                self.inline[self.len] = b;
                self.len += 1;
            }
            _ => {
                if self.len + self.spill.len() >= MAX_MEMBERS {
                    return Err(E::custom(format_args!(
                        "an object has more than {MAX_MEMBERS} members"
                    )));
                }
                self.spill.push(name.clone());
            }
        }
        Ok(())
    }
}

/// Most members in the header or claims object; with the token size limit
/// this bounds the quadratic duplicate search.
const MAX_MEMBERS: usize = 256;

struct DuplicateName<'a, 'b>(&'a Str<'b>);

impl fmt::Display for DuplicateName<'_, '_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name: &str = self.0;
        let mut end = name.len().min(40);
        while !name.is_char_boundary(end) {
            end -= 1;
        }
        write!(f, "duplicate member name {:?}", &name[..end])
    }
}

/// Checks what serde_json's skipping of unread values does not: the text is
/// UTF-8 (RFC 8259 §8.1) and arrays/objects nest at most [`MAX_JSON_DEPTH`]
/// deep. No allocation; the JSON grammar itself is left to the parser that
/// follows, which is given the text as `str` so that it does not check the
/// UTF-8 of each string again.
pub(crate) fn check_json_text<'a>(json: &'a [u8], part: &'static str) -> Result<&'a str, Error> {
    let Ok(text) = std::str::from_utf8(json) else {
        return Err(Error::malformed(format!("{part} is not UTF-8")));
    };
    // Fewer opening brackets than the bound cannot nest past it: the exact
    // scan below runs only for unusual texts.
    if memchr::memchr2_iter(b'[', b'{', json)
        .take(MAX_JSON_DEPTH + 1)
        .count()
        <= MAX_JSON_DEPTH
    {
        return Ok(text);
    }
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    for &b in json {
        if in_string {
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_string = false;
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                if depth > MAX_JSON_DEPTH {
                    return Err(Error::malformed(format!(
                        "{part} JSON nests deeper than {MAX_JSON_DEPTH} levels"
                    )));
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_requires_exactly_three_segments() {
        assert!(split("a.b.c").is_ok());
        assert!(split("a.b").is_err());
        assert!(split("a.b.c.d").is_err());
        assert!(split("a.b.c.d.e").is_err());
        assert!(split(".b.c").is_err());
        assert!(split("a.b.").is_err());
        assert!(split("a..c").is_ok(), "an empty payload is well-formed");
    }

    #[test]
    fn decoder_refuses_padding_whitespace_and_standard_alphabet() {
        for seg in [&b"QQ=="[..], b"QQ ", b" QQ", b"Q+", b"Q/", b"Q\n"] {
            assert!(
                decode_into_append(seg, &mut Vec::new(), "x").is_err(),
                "{seg:?}"
            );
        }
    }

    #[test]
    fn non_canonical_base64_is_refused() {
        let mut out = Vec::new();
        // "QQ" is canonical for "A"; "QR" has non-zero trailing bits.
        assert!(decode_into_append(b"QQ", &mut out, "x").is_ok());
        assert!(decode_into_append(b"QR", &mut out, "x").is_err());
        assert!(decode_into_append(b"Q", &mut out, "x").is_err());
    }

    proptest::proptest! {
        /// The SIMD decoder on the hot path accepts exactly what the
        /// `base64` crate's strict no-padding engine accepts, with the same
        /// bytes, whether it writes to a slice or appends to a vector.
        #[test]
        fn both_decoders_agree_with_the_base64_crate(
            seg in "[A-Za-z0-9_\\-]{0,90}[A-Za-z0-9_\\-+/= .\\x00\u{e9}]{0,3}[A-Za-z0-9_\\-]{0,5}",
        ) {
            use base64::Engine as _;
            let expected = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(&seg).ok();
            let mut appended = vec![7u8];
            let append_ok = decode_into_append(seg.as_bytes(), &mut appended, "x").is_ok();
            proptest::prop_assert_eq!(append_ok, expected.is_some());
            if let Some(e) = &expected {
                proptest::prop_assert_eq!(&appended[1..], &e[..]);
            }
            let mut room = vec![MaybeUninit::uninit(); decoded_len_bound(seg.len())];
            let sliced = decode_into(seg.as_bytes(), &mut room, "x").ok().map(<[u8]>::to_vec);
            proptest::prop_assert_eq!(sliced, expected);
        }
    }

    #[test]
    fn a_short_room_is_refused_not_a_panic() {
        let mut room = [MaybeUninit::uninit(); 2];
        assert!(decode_into(b"QUFB", &mut room, "x").is_err());
    }

    #[test]
    fn invalid_utf8_is_refused() {
        assert!(parse_header(b"{\"alg\":\"RS256\",\"x\":\"\xff\"}").is_err());
    }

    #[test]
    fn header_duplicate_names_refused_even_when_escaped() {
        assert!(parse_header(br#"{"alg":"RS256","alg":"none"}"#).is_err());
        assert!(parse_header(br#"{"alg":"RS256","\u0061lg":"HS256"}"#).is_err());
    }

    #[test]
    fn nesting_is_bounded() {
        let deep = format!(
            r#"{{"alg":"RS256","x":{}{}}}"#,
            "[".repeat(100),
            "]".repeat(100)
        );
        assert!(parse_header(deep.as_bytes()).is_err());
        // Brackets inside strings do not count.
        let quoted = format!(
            r#"{{"alg":"RS256","x":"{}\"{}"}}"#,
            "[".repeat(100),
            "{".repeat(100)
        );
        assert!(parse_header(quoted.as_bytes()).is_ok());
        let ok = format!(
            r#"{{"alg":"RS256","x":{}{}}}"#,
            "[".repeat(10),
            "]".repeat(10)
        );
        assert!(parse_header(ok.as_bytes()).is_ok());
    }
}
