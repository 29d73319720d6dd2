//! The client certificate as a gateway that terminates TLS forwards it in a
//! header: nginx's `$ssl_client_escaped_cert` (URL-encoded PEM) or Envoy's
//! `x-forwarded-client-cert` (its `Cert=` field, checked against `Hash=`).
//!
//! **Call this only for a header your gateway sets on every request,
//! replacing whatever the client sent** (nginx `proxy_set_header`, Envoy
//! `forward_client_cert_details: SANITIZE_SET`), and only behind that
//! gateway: a certificate is public, so a client that can send this header
//! to you directly can claim anyone's certificate and use their stolen
//! bound token. The layers never call this; the sidecar does only with
//! `[mtls] from_gateway = true`.
//!
//! Parsing is strict and bounded: one certificate, one PEM block, every
//! escape valid, at most [`MAX_HEADER_SIZE`] bytes in and
//! [`MAX_CERTIFICATE_SIZE`] out.
//!
//! ```
//! use tokenwarden::authn::mtls::forwarded::{Format, certificate};
//!
//! // nginx sets the header to an empty value when the client sent no certificate.
//! assert_eq!(certificate(Format::Nginx, b""), Ok(None));
//! let err = certificate(Format::Nginx, b"-----BEGIN%20CERTIFICATE-----%0A%25%0A").unwrap_err();
//! assert_eq!(err.kind(), "not_pem");
//! ```

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use super::{MAX_CERTIFICATE_SIZE, PeerCertificate};

/// Largest header value read: a certificate of
/// [`MAX_CERTIFICATE_SIZE`] as escaped PEM,
/// with room for Envoy's other fields.
pub const MAX_HEADER_SIZE: usize = 32 * 1024;

/// How the gateway writes the certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Format {
    /// nginx `$ssl_client_escaped_cert`: the PEM, percent-encoded; empty
    /// when the client presented none.
    Nginx,
    /// Envoy `x-forwarded-client-cert`: one element whose `Cert` field is
    /// the URL-encoded PEM (`set_current_client_cert_details: { cert: true }`);
    /// a `Hash` field, when present, must be the DER's SHA-256 in hex.
    /// Absent or empty: no client certificate.
    Envoy,
}

/// Why a forwarded certificate header was refused. The sidecar answers 400.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ForwardedError {
    /// Longer than [`MAX_HEADER_SIZE`], or a certificate longer than
    /// [`MAX_CERTIFICATE_SIZE`].
    TooLarge,
    /// A `%` not followed by two hex digits, or a byte that has no place in
    /// an escaped value.
    BadEscape,
    /// Not exactly one PEM `CERTIFICATE` block with a base64 body.
    NotPem,
    /// Envoy: several elements (proxies appending their own), or fields
    /// that do not parse.
    Malformed,
    /// Envoy: an element without a `Cert` field (the gateway must forward
    /// the certificate, not only its hash).
    NoCertField,
    /// Envoy: `Hash` is not the certificate's SHA-256.
    HashMismatch,
}

impl ForwardedError {
    /// A stable name, for logs and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            ForwardedError::TooLarge => "too_large",
            ForwardedError::BadEscape => "bad_escape",
            ForwardedError::NotPem => "not_pem",
            ForwardedError::Malformed => "malformed",
            ForwardedError::NoCertField => "no_cert_field",
            ForwardedError::HashMismatch => "hash_mismatch",
        }
    }
}

impl fmt::Display for ForwardedError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let why = match self {
            ForwardedError::TooLarge => "the forwarded certificate is too large",
            ForwardedError::BadEscape => "the forwarded certificate is not validly escaped",
            ForwardedError::NotPem => "the forwarded certificate is not one PEM certificate",
            ForwardedError::Malformed => "the forwarded client certificate header is malformed",
            ForwardedError::NoCertField => "the forwarded client certificate header has no Cert",
            ForwardedError::HashMismatch => "the forwarded certificate does not match its Hash",
        };
        f.write_str(why)
    }
}

impl std::error::Error for ForwardedError {}

/// The client certificate in a gateway's header value; `Ok(None)` when the
/// gateway says the client presented none (an empty value).
///
/// # Errors
/// A [`ForwardedError`]: the value is not what the gateway writes.
pub fn certificate(
    format: Format,
    value: &[u8],
) -> Result<Option<PeerCertificate>, ForwardedError> {
    if value.len() > MAX_HEADER_SIZE {
        return Err(ForwardedError::TooLarge);
    }
    let value = value.trim_ascii();
    if value.is_empty() {
        return Ok(None);
    }
    match format {
        Format::Nginx => escaped_pem(value).map(Some),
        Format::Envoy => envoy(value),
    }
}

/// A percent-encoded PEM certificate.
fn escaped_pem(value: &[u8]) -> Result<PeerCertificate, ForwardedError> {
    let pem = percent_decode(value)?;
    let der = pem_certificate(&pem)?;
    Ok(PeerCertificate::new(der))
}

/// Strict percent-decoding: `%` and two hex digits, or a visible ASCII byte
/// other than `%` and `"` taken as itself (`+` is a plus, not a space).
fn percent_decode(value: &[u8]) -> Result<Vec<u8>, ForwardedError> {
    let mut out = Vec::with_capacity(value.len());
    let mut i = 0;
    while let Some(&b) = value.get(i) {
        match b {
            b'%' => {
                let hi = value.get(i + 1).and_then(|h| hex(*h));
                let lo = value.get(i + 2).and_then(|h| hex(*h));
                let (Some(hi), Some(lo)) = (hi, lo) else {
                    return Err(ForwardedError::BadEscape);
                };
                out.push((hi << 4) | lo);
                i += 3;
            }
            b'!'..=b'~' if b != b'"' => {
                out.push(b);
                i += 1;
            }
            _ => return Err(ForwardedError::BadEscape),
        }
    }
    Ok(out)
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

const BEGIN: &[u8] = b"-----BEGIN CERTIFICATE-----";
const END: &[u8] = b"-----END CERTIFICATE-----";

/// Exactly one PEM `CERTIFICATE` block (RFC 7468 §5), surrounding
/// whitespace allowed, nothing else; the body base64 with line breaks.
fn pem_certificate(pem: &[u8]) -> Result<Vec<u8>, ForwardedError> {
    let pem = pem.trim_ascii();
    let body = pem
        .strip_prefix(BEGIN)
        .and_then(|rest| rest.strip_suffix(END))
        .ok_or(ForwardedError::NotPem)?;
    // A second block would put BEGIN/END markers (dashes) in the body.
    let compact: Vec<u8> = body
        .iter()
        .copied()
        .filter(|b| !matches!(b, b'\r' | b'\n' | b' ' | b'\t'))
        .collect();
    if compact.len() > MAX_CERTIFICATE_SIZE.div_ceil(3) * 4 {
        return Err(ForwardedError::TooLarge);
    }
    let der = STANDARD
        .decode(&compact)
        .map_err(|_| ForwardedError::NotPem)?;
    // A certificate is a DER SEQUENCE.
    if der.first() != Some(&0x30) {
        return Err(ForwardedError::NotPem);
    }
    Ok(der)
}

/// Envoy's `x-forwarded-client-cert`: exactly one element of `;`-separated
/// `Key=Value` pairs, values optionally double-quoted (a backslash escapes
/// the next byte inside quotes); `Cert` required, `Hash` checked.
fn envoy(value: &[u8]) -> Result<Option<PeerCertificate>, ForwardedError> {
    let mut cert: Option<Vec<u8>> = None;
    let mut hash: Option<Vec<u8>> = None;
    for pair in split_outside_quotes(value)? {
        let eq = pair
            .iter()
            .position(|b| *b == b'=')
            .ok_or(ForwardedError::Malformed)?;
        let (key, raw) = (&pair[..eq], &pair[eq + 1..]);
        let field = if key.eq_ignore_ascii_case(b"cert") {
            &mut cert
        } else if key.eq_ignore_ascii_case(b"hash") {
            &mut hash
        } else {
            continue;
        };
        if field.is_some() {
            return Err(ForwardedError::Malformed);
        }
        *field = Some(unquote(raw)?);
    }
    let Some(cert) = cert else {
        return Err(ForwardedError::NoCertField);
    };
    if cert.is_empty() {
        return Ok(None);
    }
    let pc = escaped_pem(&cert)?;
    if let Some(hash) = hash {
        let digest = crate::crypto::sha256_of(pc.der());
        let matches = hash.len() == 64
            && hash
                .chunks(2)
                .zip(digest)
                .all(|(pair, d)| match (hex(pair[0]), hex(pair[1])) {
                    (Some(hi), Some(lo)) => ((hi << 4) | lo) == d,
                    _ => false,
                });
        if !matches {
            return Err(ForwardedError::HashMismatch);
        }
    }
    Ok(Some(pc))
}

/// The `;`-separated pairs of one element; a `,` outside quotes (a second
/// element) or an unterminated quote is malformed.
fn split_outside_quotes(value: &[u8]) -> Result<Vec<&[u8]>, ForwardedError> {
    let mut pairs = Vec::new();
    let (mut start, mut quoted, mut escaped) = (0, false, false);
    for (i, &b) in value.iter().enumerate() {
        if escaped {
            escaped = false;
            continue;
        }
        match b {
            b'\\' if quoted => escaped = true,
            b'"' => quoted = !quoted,
            b',' if !quoted => return Err(ForwardedError::Malformed),
            b';' if !quoted => {
                pairs.push(&value[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    if quoted || escaped {
        return Err(ForwardedError::Malformed);
    }
    pairs.push(&value[start..]);
    Ok(pairs)
}

/// A value without its surrounding double quotes, backslash escapes undone.
fn unquote(raw: &[u8]) -> Result<Vec<u8>, ForwardedError> {
    let Some(inner) = raw.strip_prefix(b"\"") else {
        if raw.contains(&b'"') {
            return Err(ForwardedError::Malformed);
        }
        return Ok(raw.to_vec());
    };
    let inner = inner.strip_suffix(b"\"").ok_or(ForwardedError::Malformed)?;
    let mut out = Vec::with_capacity(inner.len());
    let mut bytes = inner.iter();
    while let Some(&b) = bytes.next() {
        match b {
            b'\\' => out.push(*bytes.next().ok_or(ForwardedError::Malformed)?),
            b'"' => return Err(ForwardedError::Malformed),
            _ => out.push(b),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A "certificate" for parsing tests: a DER SEQUENCE of some bytes.
    fn der() -> Vec<u8> {
        let mut d = vec![0x30, 0x81, 200];
        d.extend((0..200u8).map(|i| i.wrapping_mul(37)));
        d
    }

    fn pem(der: &[u8]) -> String {
        let b64 = STANDARD.encode(der);
        let lines: Vec<&str> = b64
            .as_bytes()
            .chunks(64)
            .map(|c| std::str::from_utf8(c).unwrap_or_default())
            .collect();
        format!(
            "-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n",
            lines.join("\n")
        )
    }

    /// As nginx's `ngx_escape_uri(NGX_ESCAPE_URI_COMPONENT)` writes it.
    fn escape(s: &str) -> String {
        s.bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                    (b as char).to_string()
                }
                _ => format!("%{b:02X}"),
            })
            .collect()
    }

    fn hex_sha(der: &[u8]) -> String {
        crate::crypto::sha256_of(der)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    #[test]
    fn nginx_escaped_pem_gives_the_der() {
        let v = escape(&pem(&der()));
        let c = certificate(Format::Nginx, v.as_bytes()).ok().flatten();
        assert_eq!(c.map(|c| c.der().to_vec()), Some(der()));
        assert_eq!(certificate(Format::Nginx, b"  "), Ok(None));
    }

    #[test]
    fn nginx_values_that_are_not_one_escaped_certificate_are_refused() {
        let good = pem(&der());
        let two = format!("{good}{good}");
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (escape(&two).into_bytes(), "not_pem"),
            (
                escape(&good.replace("CERTIFICATE", "PRIVATE KEY")).into_bytes(),
                "not_pem",
            ),
            (escape(&format!("junk{good}")).into_bytes(), "not_pem"),
            (format!("{}%G0", escape(&good)).into_bytes(), "bad_escape"),
            (format!("{}%0", escape(&good)).into_bytes(), "bad_escape"),
            (
                escape(&good).replace("%0A", "\n").into_bytes(),
                "bad_escape",
            ),
            (
                b"-----BEGIN%20CERTIFICATE-----%0A!!!!%0A-----END%20CERTIFICATE-----".to_vec(),
                "not_pem",
            ),
            (escape(&pem(b"\x02\x01\x01")).into_bytes(), "not_pem"),
            (vec![b'A'; MAX_HEADER_SIZE + 1], "too_large"),
        ];
        for (value, want) in cases {
            let got = certificate(Format::Nginx, &value).map_err(|e| e.kind());
            assert_eq!(
                got,
                Err(want),
                "{}",
                String::from_utf8_lossy(&value[..value.len().min(80)])
            );
        }
        let big = escape(&pem(&vec![0x30; MAX_CERTIFICATE_SIZE + 10]));
        let got = certificate(Format::Nginx, big.as_bytes()).map_err(|e| e.kind());
        assert!(matches!(got, Err("too_large")), "{got:?}");
    }

    #[test]
    fn envoy_xfcc_cert_is_read_and_its_hash_checked() {
        let d = der();
        let cert = escape(&pem(&d));
        let h = hex_sha(&d);
        let v = format!(
            "By=spiffe://mesh/ns/a;Hash={h};Cert=\"{cert}\";Subject=\"CN=x,O=y\";URI=spiffe://mesh/c"
        );
        let c = certificate(Format::Envoy, v.as_bytes()).ok().flatten();
        assert_eq!(c.map(|c| c.der().to_vec()), Some(d.clone()));
        let unquoted = format!("Cert={cert}");
        assert!(certificate(Format::Envoy, unquoted.as_bytes()).is_ok_and(|c| c.is_some()));
        assert_eq!(certificate(Format::Envoy, b"Cert=\"\""), Ok(None));
    }

    #[test]
    fn envoy_xfcc_that_is_not_one_element_with_a_cert_is_refused() {
        let d = der();
        let cert = escape(&pem(&d));
        let h = hex_sha(&d);
        let wrong = hex_sha(b"other");
        let cases = [
            (format!("Cert=\"{cert}\",Cert=\"{cert}\""), "malformed"),
            (format!("Cert=\"{cert}\";Cert=\"{cert}\""), "malformed"),
            (format!("Hash={h};Cert=\"{cert}"), "malformed"),
            (format!("Hash={h}"), "no_cert_field"),
            (format!("Hash={wrong};Cert=\"{cert}\""), "hash_mismatch"),
            (
                format!("Hash={};Cert=\"{cert}\"", &h[..62]),
                "hash_mismatch",
            ),
            (format!("Cert=\"{cert}\";Subject"), "malformed"),
            (format!("Cert=a\"{cert}\""), "malformed"),
        ];
        for (value, want) in cases {
            let got = certificate(Format::Envoy, value.as_bytes()).map_err(|e| e.kind());
            assert_eq!(got, Err(want), "{value:.80}");
        }
    }
}
