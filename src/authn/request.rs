//! [`RequestView`]: the parts of a request an authenticator reads, whatever
//! framework holds them.

use std::fmt;

use super::dpop::ledger::ProofLedger;
use super::{Refusal, Scheme};

/// Read access to a request's headers, whichever HTTP crate holds them.
///
/// Object-safe and allocation-free: values are asked for by index, each
/// borrowed from the source. Implemented for `http::HeaderMap` (feature
/// `tower`), and for lists of `(name, value)` pairs (arrays and vectors),
/// which is how tests and adapters without a header map build one.
///
/// ```
/// use tokenwarden::authn::HeaderSource;
///
/// let headers = vec![("X-Api-Key", "a"), ("x-api-key", "b")];
/// assert_eq!(headers.value("x-api-key", 1), Some(&b"b"[..]));
/// assert_eq!(headers.value("x-api-key", 2), None);
/// ```
pub trait HeaderSource: Sync {
    /// The `index`th value (from 0, in order) of the header `name` (given in
    /// lowercase; matched without regard to ASCII case).
    fn value(&self, name: &str, index: usize) -> Option<&[u8]>;

    /// The first value of header `name`, and whether another follows. A
    /// source whose lookup costs (a hashed map) answers with one lookup.
    fn first_value(&self, name: &str) -> Option<(&[u8], bool)> {
        let first = self.value(name, 0)?;
        Some((first, self.value(name, 1).is_some()))
    }

    /// Whether any value of header `name` meets `pred` (one lookup, as
    /// [`first_value`](Self::first_value)).
    fn any_value(&self, name: &str, pred: &mut dyn FnMut(&[u8]) -> bool) -> bool {
        (0..).map_while(|i| self.value(name, i)).any(pred)
    }
}

fn nth_pair<'p, S: AsRef<str>, V: AsRef<[u8]>>(
    pairs: &'p [(S, V)],
    name: &str,
    index: usize,
) -> Option<&'p [u8]> {
    pairs
        .iter()
        .filter(|(k, _)| k.as_ref().eq_ignore_ascii_case(name))
        .nth(index)
        .map(|(_, v)| v.as_ref())
}

/// The values of `name` among `pairs`, in order: one scan.
fn pair_values<'p, 'n, S: AsRef<str>, V: AsRef<[u8]>>(
    pairs: &'p [(S, V)],
    name: &'n str,
) -> impl Iterator<Item = &'p [u8]> + use<'p, 'n, S, V> {
    pairs
        .iter()
        .filter(move |(k, _)| k.as_ref().eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_ref())
}

fn first_pair<'p, S: AsRef<str>, V: AsRef<[u8]>>(
    pairs: &'p [(S, V)],
    name: &str,
) -> Option<(&'p [u8], bool)> {
    let mut values = pair_values(pairs, name);
    let first = values.next()?;
    Some((first, values.next().is_some()))
}

impl<S: AsRef<str> + Sync, V: AsRef<[u8]> + Sync> HeaderSource for Vec<(S, V)> {
    fn value(&self, name: &str, index: usize) -> Option<&[u8]> {
        nth_pair(self, name, index)
    }

    fn first_value(&self, name: &str) -> Option<(&[u8], bool)> {
        first_pair(self, name)
    }

    fn any_value(&self, name: &str, pred: &mut dyn FnMut(&[u8]) -> bool) -> bool {
        pair_values(self, name).any(pred)
    }
}

impl<S: AsRef<str> + Sync, V: AsRef<[u8]> + Sync, const N: usize> HeaderSource for [(S, V); N] {
    fn value(&self, name: &str, index: usize) -> Option<&[u8]> {
        nth_pair(self, name, index)
    }

    fn first_value(&self, name: &str) -> Option<(&[u8], bool)> {
        first_pair(self, name)
    }

    fn any_value(&self, name: &str, pred: &mut dyn FnMut(&[u8]) -> bool) -> bool {
        pair_values(self, name).any(pred)
    }
}

/// Every value of the header `name` (lowercase). The names every request
/// asks for are matched to `http`'s prepared names: a `&str` name is parsed
/// again on each lookup, a measurable part of a cached request's cost.
#[cfg(feature = "tower")]
pub(crate) fn header_values<'a>(
    map: &'a http::HeaderMap,
    name: &str,
) -> http::header::GetAll<'a, http::HeaderValue> {
    const DPOP: http::HeaderName = http::HeaderName::from_static("dpop");
    match name {
        "authorization" => map.get_all(http::header::AUTHORIZATION),
        "cookie" => map.get_all(http::header::COOKIE),
        "dpop" => map.get_all(DPOP),
        _ => map.get_all(name),
    }
}

#[cfg(feature = "tower")]
impl HeaderSource for http::HeaderMap {
    fn value(&self, name: &str, index: usize) -> Option<&[u8]> {
        header_values(self, name)
            .iter()
            .nth(index)
            .map(http::HeaderValue::as_bytes)
    }

    fn first_value(&self, name: &str) -> Option<(&[u8], bool)> {
        let mut values = header_values(self, name).into_iter();
        let first = values.next()?;
        Some((first.as_bytes(), values.next().is_some()))
    }

    fn any_value(&self, name: &str, pred: &mut dyn FnMut(&[u8]) -> bool) -> bool {
        header_values(self, name).iter().any(|v| pred(v.as_bytes()))
    }
}

/// What an [`Authenticator`](super::Authenticator) sees of a request:
/// method, path, query, headers and the TLS peer certificate, borrowed from
/// whatever framework holds them. `Copy`: pass it around freely.
///
/// ```
/// use tokenwarden::authn::RequestView;
///
/// let headers = [("authorization", "Bearer abc")];
/// let cert = b"DER bytes".as_slice();
/// let req = RequestView::new("GET", "/orders", &headers)
///     .query("page=2")
///     .peer_certificate(cert);
/// assert_eq!(req.header("authorization"), Some(&b"Bearer abc"[..]));
/// assert_eq!(req.query_str(), Some("page=2"));
/// assert_eq!(req.peer_certificate_der(), Some(cert));
/// ```
#[derive(Clone, Copy)]
pub struct RequestView<'a> {
    method: &'a str,
    path: &'a str,
    query: Option<&'a str>,
    headers: &'a dyn HeaderSource,
    peer_certificate: Option<&'a [u8]>,
    /// The DPoP proofs outer layers recorded for this request; set by this
    /// crate's layers alone.
    ledger: Option<&'a ProofLedger>,
}

impl fmt::Debug for RequestView<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the headers: they hold the credentials.
        f.debug_struct("RequestView")
            .field("method", &self.method)
            .field("path", &self.path)
            .field("peer_certificate", &self.peer_certificate.is_some())
            .finish_non_exhaustive()
    }
}

impl<'a> RequestView<'a> {
    /// A view of a request with no query and no peer certificate.
    pub fn new(method: &'a str, path: &'a str, headers: &'a dyn HeaderSource) -> Self {
        RequestView {
            method,
            path,
            query: None,
            headers,
            peer_certificate: None,
            ledger: None,
        }
    }

    /// The same view with the ledger of DPoP proofs recorded for this
    /// request by outer layers (the layers' own, from its extensions).
    #[cfg_attr(not(any(feature = "tower", feature = "actix")), allow(dead_code))]
    #[must_use]
    pub(crate) fn with_proof_ledger(mut self, ledger: &'a ProofLedger) -> Self {
        self.ledger = Some(ledger);
        self
    }

    /// The ledger of DPoP proofs recorded for this request, if a layer
    /// keeps one.
    pub(crate) fn proof_ledger(&self) -> Option<&'a ProofLedger> {
        self.ledger
    }

    /// The same view with the request's query string (without `?`).
    #[must_use]
    pub fn query(mut self, query: &'a str) -> Self {
        self.query = Some(query);
        self
    }

    /// The same view with the TLS client's certificate (DER), when the
    /// connection presented one.
    #[must_use]
    pub fn peer_certificate(mut self, der: &'a [u8]) -> Self {
        self.peer_certificate = Some(der);
        self
    }

    /// The request method.
    pub fn method(&self) -> &'a str {
        self.method
    }

    /// The request path.
    pub fn path(&self) -> &'a str {
        self.path
    }

    /// The query string, if any.
    pub fn query_str(&self) -> Option<&'a str> {
        self.query
    }

    /// The TLS peer certificate (DER), if any.
    pub fn peer_certificate_der(&self) -> Option<&'a [u8]> {
        self.peer_certificate
    }

    /// The headers.
    pub fn headers(&self) -> &'a dyn HeaderSource {
        self.headers
    }

    /// The first value of header `name` (lowercase).
    pub fn header(&self, name: &str) -> Option<&'a [u8]> {
        self.headers.value(name, 0)
    }

    /// Every value of header `name` (lowercase), in order; no allocation.
    pub fn header_values<'n>(&self, name: &'n str) -> impl Iterator<Item = &'a [u8]> + 'n
    where
        'a: 'n,
    {
        let headers = self.headers;
        (0..).map_while(move |i| headers.value(name, i))
    }

    /// The one value of header `name` as text. Several values are an
    /// invalid request (RFC 6750 §3.1), as is a value that is not visible
    /// ASCII (RFC 9110 §5.5): 400, with `scheme`'s challenge.
    ///
    /// # Errors
    /// The 400 [`Refusal`].
    pub fn single_header(&self, name: &str, scheme: Scheme) -> Result<Option<&'a str>, Refusal> {
        let Some((first, more)) = self.headers.first_value(name) else {
            return Ok(None);
        };
        if more {
            return Err(Refusal::invalid_request(
                scheme,
                "more than one credential header",
            ));
        }
        visible_ascii(first).map(Some).ok_or_else(|| {
            Refusal::invalid_request(scheme, "the credential header is not visible ASCII")
        })
    }
}

/// A header value as text, if it is visible ASCII or tab (RFC 9110 §5.5).
pub(crate) fn visible_ascii(v: &[u8]) -> Option<&str> {
    // No early exit: the branch-free fold vectorises (bearer headers are
    // long, and nearly always pass).
    let visible = v.iter().fold(true, |ok, &b| {
        ok & (((0x20..0x7f).contains(&b)) | (b == b'\t'))
    });
    if visible {
        std::str::from_utf8(v).ok()
    } else {
        None
    }
}

/// The credential of `Authorization: <scheme> <credential>`, RFC 6750 §2.1
/// style: scheme case-insensitive, then one or more spaces, then exactly
/// one credential (no spaces or tabs in it).
///
/// `Ok(None)`: no `Authorization` header, or one of another scheme. A value
/// that starts with the scheme's name but is not the scheme, spaces and one
/// credential (`Bearer<TAB>x`, `Bearer,x`, `Bearerx`) is a malformed one
/// (400), never "no credential": an application that splits on any
/// whitespace would read a credential there we never judged. Several
/// `Authorization` headers are 400 too.
///
/// (`BearerAuth::new`'s layer reads its bearer token with the same
/// [`scheme_credential`].)
pub(crate) fn authorization<'a>(
    req: &RequestView<'a>,
    scheme: Scheme,
) -> Result<Option<&'a str>, Refusal> {
    let Some(value) = req.single_header("authorization", scheme)? else {
        return Ok(None);
    };
    scheme_credential(value, scheme.name()).map_err(|Malformed| {
        Refusal::invalid_request(
            scheme,
            "the Authorization header must hold exactly one credential",
        )
    })
}

/// An `Authorization` value that starts with a scheme's name but is not
/// that scheme, spaces and exactly one credential.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Malformed;

/// The one RFC 6750 §2.1 parser of an `Authorization` value, for every
/// scheme and every layer: `<scheme> 1*SP <credential>`, the scheme
/// case-insensitive, the credential free of spaces and tabs. `Ok(None)`
/// for another scheme; [`Malformed`] for a value that starts with the
/// scheme's name but is not that shape (`Bearer<TAB>x`, `Bearer,x`,
/// `Bearerx`, `Bearer`, `Bearer a b`).
pub(crate) fn scheme_credential<'v>(
    value: &'v str,
    scheme: &str,
) -> Result<Option<&'v str>, Malformed> {
    // RFC 9110 §5.5: leading and trailing whitespace is not part of the value.
    let value = value.trim_matches([' ', '\t']);
    let is_scheme = value
        .get(..scheme.len())
        .is_some_and(|s| s.eq_ignore_ascii_case(scheme));
    if !is_scheme {
        return Ok(None);
    }
    let rest = value.get(scheme.len()..).unwrap_or_default();
    let credential = rest.trim_start_matches(' ');
    // Bytes, not chars: a `char` pattern decodes every character, and a
    // bearer token is long (this scan was most of the chain's own cost).
    let inner_space = memchr::memchr2(b' ', b'\t', credential.as_bytes()).is_some();
    if credential.len() == rest.len() || credential.is_empty() || inner_space {
        return Err(Malformed);
    }
    Ok(Some(credential))
}

/// Whether the request's `Authorization` header (any of them) starts with
/// `scheme`'s name, any case: a cheap "carries this kind" test.
pub(crate) fn authorization_names(req: &RequestView<'_>, scheme: Scheme) -> bool {
    let name = scheme.name().as_bytes();
    req.headers().any_value("authorization", &mut |v| {
        let v = v.trim_ascii_start();
        v.get(..name.len())
            .is_some_and(|s| s.eq_ignore_ascii_case(name))
    })
}

#[cfg(any(feature = "tower", feature = "actix", feature = "legacy"))]
/// Whether software behind us could read a cookie named `n` as the cookie
/// `name`: the same name once percent-decoded (once, leniently: a `%` not
/// followed by two hex digits stays), ASCII-case-folded, and mangled as PHP
/// mangles names when it fills `$_COOKIE` (leading spaces dropped; a space,
/// `.` or a lone `[` read as `_`; `base[key]` read as the array `base`:
/// `php_register_variable_ex`). So `%74oken`, `Token`, `session.id`,
/// `session id` and `session_id[x]` all read as `session_id`. No
/// allocation: this runs for every cookie of every request that carries
/// one.
pub(crate) fn cookie_name_reads_as(n: &[u8], name: &[u8]) -> bool {
    fn fold(b: u8) -> u8 {
        match b {
            b' ' | b'.' | b'[' => b'_',
            other => other.to_ascii_lowercase(),
        }
    }
    let decoded = || percent_decoded(n).skip_while(|&b| b == b' ');
    // `base[...]`: PHP reads the array `base` when a `]` follows the `[`.
    let base_len = decoded()
        .position(|b| b == b'[')
        .filter(|&open| decoded().skip(open).any(|b| b == b']'))
        .unwrap_or(usize::MAX);
    let mut base = decoded().take(base_len);
    let mut ours = name.iter().copied();
    loop {
        match (base.next(), ours.next()) {
            (None, None) => return true,
            (Some(a), Some(b)) if fold(a) == fold(b) => {}
            _ => return false,
        }
    }
}

#[cfg(any(feature = "tower", feature = "actix", feature = "legacy"))]
/// The bytes of `s` as `urldecode` reads a name: each `%XX` (hex, either
/// case) decoded, a `%` not followed by two hex digits kept, and `+` a
/// space (PHP before 7.2.34 / 7.3.23 / 7.4.11 url-decoded cookie names so,
/// CVE-2020-7070: `session+id` reached it as `session_id`).
fn percent_decoded(s: &[u8]) -> impl Iterator<Item = u8> + Clone + '_ {
    let hex = |b: u8| {
        char::from(b)
            .to_digit(16)
            .and_then(|d| u8::try_from(d).ok())
    };
    let mut i = 0usize;
    std::iter::from_fn(move || {
        let b = *s.get(i)?;
        let escaped = match (b, s.get(i.saturating_add(1)), s.get(i.saturating_add(2))) {
            (b'%', Some(&h), Some(&l)) => hex(h).zip(hex(l)).map(|(h, l)| (h << 4) | l),
            _ => None,
        };
        i = i.saturating_add(if escaped.is_some() { 3 } else { 1 });
        Some(escaped.unwrap_or(if b == b'+' { b' ' } else { b }))
    })
}

/// Whether a pair that reads as the cookie `name` hides after a `,` in one
/// `Cookie` header value (`a=b, SID=x`). RFC 6265 §5.4 joins pairs with
/// `; ` only, so we read `a` with the value `b, SID=x`; but RFC 2965
/// (obsolete, still implemented by some servers and frameworks) separates
/// them with `,` as well, and such a parser behind us would read a `SID`
/// we never judged.
#[cfg(any(feature = "tower", feature = "actix", feature = "legacy"))]
pub(crate) fn cookie_after_comma(v: &[u8], name: &str) -> bool {
    v.split(|&b| b == b';').any(|pair| {
        pair.split(|&b| b == b',').skip(1).any(|seg| {
            let seg = seg.trim_ascii();
            let n = seg
                .iter()
                .position(|&b| b == b'=')
                .map_or(seg, |eq| &seg[..eq]);
            cookie_name_reads_as(n.trim_ascii(), name.as_bytes())
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn auth(values: &[&str]) -> Result<Option<String>, u16> {
        let headers: Vec<(&str, &str)> = values.iter().map(|v| ("authorization", *v)).collect();
        let req = RequestView::new("GET", "/", &headers);
        authorization(&req, Scheme::Bearer)
            .map(|o| o.map(str::to_owned))
            .map_err(|r| r.status())
    }

    #[test]
    fn authorization_is_one_scheme_spaces_and_one_credential() {
        assert_eq!(auth(&["Bearer abc"]), Ok(Some("abc".into())));
        assert_eq!(auth(&["bEaReR  abc "]), Ok(Some("abc".into())));
        assert_eq!(auth(&["Basic abc"]), Ok(None));
        assert_eq!(auth(&[]), Ok(None));
        for odd in [
            "Bearer\tabc",
            "Bearer,abc",
            "Bearerabc",
            "Bearer",
            "Bearer a b",
            "Bearer a\tb",
        ] {
            assert_eq!(auth(&[odd]), Err(400), "{odd:?}");
        }
        assert_eq!(auth(&["Bearer a", "Bearer b"]), Err(400));
        let bad = vec![("authorization", b"Bearer \xff".as_slice())];
        let req = RequestView::new("GET", "/", &bad);
        assert!(authorization(&req, Scheme::Bearer).is_err());
    }

    #[cfg(any(feature = "tower", feature = "actix", feature = "legacy"))]
    #[test]
    fn cookie_names_read_as_ours_by_decoding_case_folding_or_php_mangling() {
        for n in [
            "session_id",
            "SESSION_ID",
            "session.id",
            "session id",
            "session[id",
            "session_id[]",
            "session_id[x]",
            " session_id",
            "session%2Eid",
            "session%5Bid",
            "session_id%5Bx%5D",
            "%73ession_id",
            "session+id",
            "+session_id",
        ] {
            assert!(cookie_name_reads_as(n.as_bytes(), b"session_id"), "{n:?}");
        }
        for n in [
            "session_ids",
            "sessionid",
            "session_i",
            "session-id",
            "x",
            "",
            "session_id]",
            "%7ession_id",
        ] {
            assert!(!cookie_name_reads_as(n.as_bytes(), b"session_id"), "{n:?}");
        }
        // A name without `_` has no mangled look-alike but its case and
        // encodings.
        assert!(!cookie_name_reads_as(b"S.D", b"SID"));
        assert!(cookie_name_reads_as(b"%53id", b"SID"));
        assert!(!cookie_name_reads_as(b"%4", b"%4x"));
    }
}
