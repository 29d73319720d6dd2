//! Where a legacy credential is read from, and the strict parsing of each
//! form: a named cookie, `Authorization: Basic` (RFC 7617), a named header.

use std::fmt;
use std::sync::Arc;

use base64::Engine as _;

use crate::authn::request::{
    authorization, authorization_names, cookie_after_comma, cookie_name_reads_as,
};
use crate::authn::{Refusal, RequestView, Scheme};

/// Longest credential read, in bytes as sent (a cookie's value, a header's
/// value, the base64 of `Basic`): longer ones are refused (400) before any
/// decoding, hashing or check.
pub const MAX_CREDENTIAL_LEN: usize = 4096;

/// Where the credential is read from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Source {
    Cookie(Arc<str>),
    Basic,
    Header(Arc<str>),
}

/// A credential taken from a request, handed to your check.
///
/// `Debug` and `Display` never show it (only its kind and, for a cookie or
/// header, the name): log [`LegacyAuthenticator`](super::LegacyAuthenticator)'s
/// hash prefix instead, as it does.
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Credential {
    /// The value of the cookie `name`.
    Cookie {
        /// The cookie's name (as configured).
        name: Arc<str>,
        /// The cookie's value (surrounding `"` removed, RFC 6265 §4.1.1).
        value: String,
    },
    /// `Authorization: Basic` (RFC 7617): the user-id and password.
    Basic {
        /// The user-id (no `:` and no control characters).
        user: String,
        /// The password (no control characters).
        password: String,
    },
    /// The value of the header `name`.
    Header {
        /// The header's name (lowercase, as configured).
        name: Arc<str>,
        /// The header's value, surrounding blanks removed.
        value: String,
    },
}

impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Credential::Cookie { name, .. } => f
                .debug_struct("Cookie")
                .field("name", name)
                .field("value", &"<redacted>")
                .finish(),
            Credential::Basic { .. } => f
                .debug_struct("Basic")
                .field("user", &"<redacted>")
                .field("password", &"<redacted>")
                .finish(),
            Credential::Header { name, .. } => f
                .debug_struct("Header")
                .field("name", name)
                .field("value", &"<redacted>")
                .finish(),
        }
    }
}

impl fmt::Display for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Credential::Cookie { name, .. } => write!(f, "cookie {name} (redacted)"),
            Credential::Basic { .. } => f.write_str("Basic credentials (redacted)"),
            Credential::Header { name, .. } => write!(f, "header {name} (redacted)"),
        }
    }
}

impl Credential {
    /// The bytes the cache key is the keyed hash (HMAC) of: the kind, the name and
    /// the value(s), length-prefixed so no two credentials share them.
    pub(crate) fn key_material(&self) -> Vec<u8> {
        let parts: [&[u8]; 3] = match self {
            Credential::Cookie { name, value } => [b"cookie", name.as_bytes(), value.as_bytes()],
            Credential::Basic { user, password } => {
                [b"basic", user.as_bytes(), password.as_bytes()]
            }
            Credential::Header { name, value } => [b"header", name.as_bytes(), value.as_bytes()],
        };
        let mut out = Vec::with_capacity(parts.iter().map(|p| p.len() + 8).sum());
        for p in parts {
            out.extend_from_slice(&(p.len() as u64).to_be_bytes());
            out.extend_from_slice(p);
        }
        out
    }
}

impl Source {
    /// Whether the request carries this kind of credential (cheap).
    pub(crate) fn recognises(&self, req: &RequestView<'_>) -> bool {
        match self {
            Source::Cookie(name) => req.header_values("cookie").any(|v| {
                cookie_pairs(v).any(|(n, _)| names_cookie(n, name)) || cookie_after_comma(v, name)
            }),
            Source::Basic => authorization_names(req, Scheme::Basic),
            Source::Header(name) => req.header(name).is_some(),
        }
    }

    /// The credential, `None` when the request carries none of this kind,
    /// or the 400 for a malformed one.
    pub(crate) fn read(
        &self,
        req: &RequestView<'_>,
        scheme: Scheme,
    ) -> Result<Option<Credential>, Refusal> {
        match self {
            Source::Cookie(name) => cookie(req, name, scheme),
            Source::Basic => basic(req),
            Source::Header(name) => {
                let Some(v) = req.single_header(name, scheme)? else {
                    return Ok(None);
                };
                let v = v.trim_matches([' ', '\t']);
                if v.len() > MAX_CREDENTIAL_LEN {
                    return Err(too_long(scheme));
                }
                if v.is_empty() {
                    return Err(Refusal::invalid_request(scheme, "empty credential header"));
                }
                Ok(Some(Credential::Header {
                    name: name.clone(),
                    value: v.to_owned(),
                }))
            }
        }
    }
}

fn too_long(scheme: Scheme) -> Refusal {
    Refusal::invalid_request(scheme, "the credential is too long")
}

/// `name=value` pairs of one `Cookie` header value (RFC 6265 §5.4), bytes.
fn cookie_pairs(v: &[u8]) -> impl Iterator<Item = (&[u8], &[u8])> {
    v.split(|&b| b == b';').filter_map(|pair| {
        let pair = pair.trim_ascii();
        let eq = pair.iter().position(|&b| b == b'=')?;
        Some((pair[..eq].trim_ascii(), pair[eq + 1..].trim_ascii()))
    })
}

/// Whether a cookie name is ours, or would be read as ours by software
/// that ASCII-case-folds, percent-decodes or mangles cookie names (PHP does
/// all three): such a look-alike is refused, never skipped, so no
/// application behind us reads a cookie we did not judge.
fn names_cookie(n: &[u8], name: &str) -> bool {
    cookie_name_reads_as(n, name.as_bytes())
}

/// The one cookie `name`: across every `Cookie` header, exactly one pair
/// named exactly `name`, no look-alike, its value cookie-octets (RFC 6265
/// §4.1.1), optionally in double quotes, at most [`MAX_CREDENTIAL_LEN`].
fn cookie(
    req: &RequestView<'_>,
    name: &Arc<str>,
    scheme: Scheme,
) -> Result<Option<Credential>, Refusal> {
    let mut found: Option<&[u8]> = None;
    for header in req.header_values("cookie") {
        if cookie_after_comma(header, name) {
            return Err(Refusal::invalid_request(
                scheme,
                "a credential cookie after a comma, which some parsers split on",
            ));
        }
        for (n, v) in cookie_pairs(header) {
            if !names_cookie(n, name) {
                continue;
            }
            if n != name.as_bytes() {
                return Err(Refusal::invalid_request(
                    scheme,
                    "a cookie name that reads as the credential cookie's",
                ));
            }
            if found.is_some() {
                return Err(Refusal::invalid_request(scheme, "two credential cookies"));
            }
            found = Some(v);
        }
    }
    let Some(v) = found else {
        return Ok(None);
    };
    if v.len() > MAX_CREDENTIAL_LEN {
        return Err(too_long(scheme));
    }
    let v = match v {
        [b'"', inner @ .., b'"'] => inner,
        other => other,
    };
    // RFC 6265 §4.1.1 cookie-octet: visible ASCII but `"` `,` `;` `\`.
    let octets = v
        .iter()
        .all(|&b| (0x21..0x7f).contains(&b) && !matches!(b, b'"' | b',' | b';' | b'\\'));
    if v.is_empty() || !octets {
        return Err(Refusal::invalid_request(
            scheme,
            "the credential cookie is empty or not cookie-octets",
        ));
    }
    let value = String::from_utf8_lossy(v).into_owned();
    Ok(Some(Credential::Cookie {
        name: name.clone(),
        value,
    }))
}

/// RFC 7617 §2: `Basic` then the base64 (RFC 4648 §4, padded, canonical)
/// of `user-id ":" password`, UTF-8 (§2.1), with no control characters
/// and no `:` in the user-id. Anything else is 400.
fn basic(req: &RequestView<'_>) -> Result<Option<Credential>, Refusal> {
    let bad = |why| Refusal::invalid_request(Scheme::Basic, why);
    let Some(encoded) = authorization(req, Scheme::Basic)? else {
        return Ok(None);
    };
    if encoded.len() > MAX_CREDENTIAL_LEN {
        return Err(too_long(Scheme::Basic));
    }
    // The standard engine requires canonical padding and zero trailing bits.
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .map_err(|_| bad("the Basic credentials are not base64"))?;
    let text =
        String::from_utf8(decoded).map_err(|_| bad("the Basic credentials are not UTF-8"))?;
    if text.chars().any(char::is_control) {
        return Err(bad("the Basic credentials hold a control character"));
    }
    let Some((user, password)) = text.split_once(':') else {
        return Err(bad("the Basic credentials have no ':'"));
    };
    Ok(Some(Credential::Basic {
        user: user.to_owned(),
        password: password.to_owned(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_material_separates_kinds_and_parts() {
        let a = Credential::Basic {
            user: "a:b".into(),
            password: "c".into(),
        };
        let b = Credential::Basic {
            user: "a".into(),
            password: "b:c".into(),
        };
        assert_ne!(a.key_material(), b.key_material());
        let c = Credential::Cookie {
            name: "s".into(),
            value: "v".into(),
        };
        let h = Credential::Header {
            name: "s".into(),
            value: "v".into(),
        };
        assert_ne!(c.key_material(), h.key_material());
    }
}
