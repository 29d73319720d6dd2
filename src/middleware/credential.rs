//! Finding the credential in a request, for every framework: the bearer
//! token of `Authorization` (RFC 6750 §2.1), a custom header, a cookie
//! (RFC 6265), and whether a refusal is answered the gRPC way.

use super::AuthRejection;
use crate::authn::request::{cookie_after_comma, cookie_name_reads_as};
use crate::authn::visible_ascii;

/// Read access to request headers, whichever HTTP crate holds them.
pub(crate) trait HeaderView {
    /// Every value of the header `name` (lowercase), as bytes.
    fn values<'a>(&'a self, name: &str) -> impl Iterator<Item = &'a [u8]> + 'a;
}

#[cfg(feature = "tower")]
impl HeaderView for http::HeaderMap {
    fn values<'a>(&'a self, name: &str) -> impl Iterator<Item = &'a [u8]> + 'a {
        crate::authn::request::header_values(self, name)
            .iter()
            .map(http::HeaderValue::as_bytes)
    }
}

/// RFC 6750 §2.1: `Authorization: Bearer <token>`, scheme case-insensitive,
/// exactly one credential: `credentials = "Bearer" 1*SP b64token`.
///
/// A value that starts with `bearer` (any case) is a bearer credential,
/// whatever follows: `Bearer<TAB>x`, `Bearer,x` or `Bearerx` is a malformed
/// one (400 `invalid_request`), never "no token". An application that splits
/// on any whitespace would read a token there that we never judged, and on
/// an anonymous-allowing route act on it. Any other scheme (`Basic`,
/// `DPoP`, …) carries no bearer credential: `Ok(None)`, so a route that
/// allows anonymous callers lets it through with no claims, as it would a
/// request with no `Authorization` header.
pub(super) fn bearer<H: HeaderView>(headers: &H) -> Result<Option<&str>, AuthRejection> {
    const MALFORMED: AuthRejection = AuthRejection::InvalidRequest(
        "the Authorization header must hold exactly one bearer token",
    );
    let Some(value) = single(headers, "authorization")? else {
        return Ok(None);
    };
    // The chain's parser (one for every scheme and layer); another scheme
    // is no bearer credential.
    crate::authn::scheme_credential(value, "Bearer").map_err(|crate::authn::Malformed| MALFORMED)
}

/// The one value of a header; several are an invalid request (RFC 6750 §3.1).
pub(super) fn single<'h, H: HeaderView>(
    headers: &'h H,
    name: &str,
) -> Result<Option<&'h str>, AuthRejection> {
    let mut values = headers.values(name);
    let Some(first) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(AuthRejection::InvalidRequest(
            "more than one credential header",
        ));
    }
    visible_ascii(first)
        .map(Some)
        .ok_or(AuthRejection::InvalidRequest(
            "the credential header is not visible ASCII",
        ))
}

/// The one cookie named `name`, across every `Cookie` header (HTTP/2 may
/// split cookies over several fields, RFC 9113 §8.2.3). Two cookies of that
/// name are an invalid request, as two `Authorization` headers are: a proxy
/// or application that reads the other one would act on a token we never
/// judged. A matching cookie whose value is not visible ASCII is refused
/// too, rather than skipped. So is a cookie whose name only looks like the
/// credential's: one that percent-decodes, ASCII-case-folds or PHP-mangles
/// to it (`%74oken`, `Token`, `my.token` for `my_token`), which PHP, for
/// one, reads as the credential cookie (it decodes and mangles names and
/// keeps the first).
pub(super) fn cookie<'h, H: HeaderView>(
    headers: &'h H,
    name: &str,
) -> Result<Option<&'h str>, AuthRejection> {
    let mut found = None;
    for header in headers.values("cookie") {
        // RFC 2965 parsers split pairs on `,` too: one would read a
        // credential cookie hidden there, which we never judged.
        if cookie_after_comma(header, name) {
            return Err(AuthRejection::InvalidRequest(
                "a credential cookie after a comma, which some parsers split on",
            ));
        }
        // RFC 6265 §4.2.1: `cookie-pair *( ";" SP cookie-pair )`; parsed
        // leniently on bytes, so a non-ASCII neighbour cannot hide a pair.
        for pair in header.split(|b| *b == b';') {
            let Some(eq) = pair.iter().position(|b| *b == b'=') else {
                continue;
            };
            let pair_name = trim_ows(&pair[..eq]);
            if pair_name != name.as_bytes() {
                if cookie_name_reads_as(pair_name, name.as_bytes()) {
                    return Err(AuthRejection::InvalidRequest(
                        "a cookie name that reads as the credential cookie's",
                    ));
                }
                continue;
            }
            if found.is_some() {
                return Err(AuthRejection::InvalidRequest(
                    "more than one credential cookie",
                ));
            }
            let value = pair.get(eq.saturating_add(1)..).unwrap_or_default();
            found = Some(
                visible_ascii(trim_ows(value)).ok_or(AuthRejection::InvalidRequest(
                    "the credential cookie is not visible ASCII",
                ))?,
            );
        }
    }
    Ok(found)
}

/// `bytes` without leading and trailing spaces and tabs (RFC 9110 §5.6.3 OWS).
fn trim_ows(bytes: &[u8]) -> &[u8] {
    let is_ows = |b: &u8| *b == b' ' || *b == b'\t';
    let start = bytes.iter().position(|b| !is_ows(b)).unwrap_or(bytes.len());
    let end = bytes
        .iter()
        .rposition(|b| !is_ows(b))
        .map_or(start, |e| e.saturating_add(1));
    bytes.get(start..end).unwrap_or_default()
}

/// Whether a refusal is answered the gRPC way (HTTP 200, `grpc-status`).
/// Only for HTTP/2 requests whose content type is `application/grpc` or
/// `application/grpc+…` / `;…` (gRPC over HTTP/2, PROTOCOL-HTTP2.md): any
/// HTTP/1.x client can send that content type, and a gateway asking for a
/// forward-auth decision reads 200 as "allow" (issue 14 item 4).
pub(crate) fn is_grpc<H: HeaderView>(http2: bool, headers: &H) -> bool {
    const GRPC: &[u8] = b"application/grpc";
    http2
        && headers.values("content-type").next().is_some_and(|v| {
            v.get(..GRPC.len())
                .is_some_and(|p| p.eq_ignore_ascii_case(GRPC))
                && matches!(v.get(GRPC.len()), None | Some(b'+' | b';'))
        })
}

/// Headers as plain pairs: the trait is all the extraction needs.
#[cfg(test)]
pub(super) struct Pairs(Vec<(String, Vec<u8>)>);

#[cfg(test)]
impl HeaderView for Pairs {
    fn values<'a>(&'a self, name: &str) -> impl Iterator<Item = &'a [u8]> + 'a {
        let name = name.to_owned();
        self.0
            .iter()
            .filter(move |(k, _)| *k == name)
            .map(|(_, v)| v.as_slice())
    }
}

/// Test headers from `(name, value)` pairs.
#[cfg(test)]
pub(super) fn headers(pairs: &[(&str, &str)]) -> Pairs {
    Pairs(
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.as_bytes().to_vec()))
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_scheme_is_case_insensitive_and_single() {
        assert_eq!(
            bearer(&headers(&[("authorization", "Bearer abc")])),
            Ok(Some("abc"))
        );
        assert_eq!(
            bearer(&headers(&[("authorization", "bEaReR abc")])),
            Ok(Some("abc"))
        );
        assert_eq!(
            bearer(&headers(&[("authorization", "Basic abc")])),
            Ok(None)
        );
        assert_eq!(bearer(&headers(&[])), Ok(None));
        assert!(bearer(&headers(&[("authorization", "Bearer a b")])).is_err());
        assert!(bearer(&headers(&[("authorization", "Bearer ")])).is_err());
        // RFC 6750 §2.1: `Bearer 1*SP b64token`. Several spaces are fine, and
        // whitespace around the value is not part of it (RFC 9110 §5.5).
        assert_eq!(
            bearer(&headers(&[("authorization", "Bearer  abc")])),
            Ok(Some("abc"))
        );
        assert_eq!(
            bearer(&headers(&[("authorization", "\tBearer abc ")])),
            Ok(Some("abc"))
        );
        assert_eq!(bearer(&headers(&[("authorization", "DPoP abc")])), Ok(None));
        // Anything else after `bearer` is a malformed bearer credential, not
        // another scheme.
        for odd in [
            "Bearer\tabc",
            "bearer \tabc",
            "Bearer\t abc",
            "Bearer,abc",
            "Bearerabc",
            "Bearer",
            "Bearer a\tb",
        ] {
            let h = headers(&[("authorization", odd)]);
            assert_eq!(bearer(&h).map_err(|r| r.status()), Err(400), "{odd:?}");
        }
        assert!(
            bearer(&headers(&[
                ("authorization", "Bearer a"),
                ("authorization", "Bearer b")
            ]))
            .is_err()
        );
    }

    #[test]
    fn cookie_is_found_by_exact_name() {
        let h = headers(&[("cookie", "a=1; token=xyz; tokenx=2")]);
        assert_eq!(cookie(&h, "token"), Ok(Some("xyz")));
        assert_eq!(cookie(&h, "nope"), Ok(None));
    }

    #[test]
    fn two_cookies_of_the_name_are_an_invalid_request() {
        let twice = AuthRejection::InvalidRequest("more than one credential cookie");
        let one_header = headers(&[("cookie", "token=a; x=1; token=b")]);
        assert_eq!(cookie(&one_header, "token"), Err(twice.clone()));
        let two_headers = headers(&[("cookie", "token=a"), ("cookie", "token=a")]);
        assert_eq!(cookie(&two_headers, "token"), Err(twice.clone()));
        // A non-ASCII neighbour does not hide the second one.
        let hidden = Pairs(vec![
            ("cookie".into(), b"token=a".to_vec()),
            ("cookie".into(), b"n=\xff; token=b".to_vec()),
        ]);
        assert_eq!(cookie(&hidden, "token"), Err(twice));
        let bad = Pairs(vec![("cookie".into(), b"token=\xff".to_vec())]);
        assert!(cookie(&bad, "token").is_err());
        // Other names may repeat; the one asked for is there once.
        let fine = headers(&[("cookie", "x=1; token= a ; x=2"), ("cookie", "y=3")]);
        assert_eq!(cookie(&fine, "token"), Ok(Some("a")));
    }

    #[test]
    fn cookie_names_that_only_look_like_the_credentials_are_refused() {
        for odd in [
            "%74oken",
            "Token",
            "TOKEN",
            "%54oken",
            "tok%65n",
            "%74%6F%6b%65%6e",
        ] {
            let h = headers(&[("cookie", &format!("{odd}=forged; token=valid"))]);
            assert_eq!(
                cookie(&h, "token").map_err(|r| r.status()),
                Err(400),
                "{odd}"
            );
            // Alone, too: an application that decodes names reads it.
            let h = headers(&[("cookie", &format!("{odd}=forged"))]);
            assert_eq!(
                cookie(&h, "token").map_err(|r| r.status()),
                Err(400),
                "{odd}"
            );
        }
        // Other names, including broken escapes and near misses, are not it.
        for other in ["%7oken", "%74oke", "tokens", "%", "t%", "%%74oken"] {
            let h = headers(&[("cookie", &format!("{other}=x; token=valid"))]);
            assert_eq!(cookie(&h, "token"), Ok(Some("valid")), "{other}");
        }
        // RFC 2965 parsers split on `,`: a token cookie there is refused.
        for odd in ["theme=dark, token=forged", "a=b,Token=x", "a=b , %74oken=x"] {
            let h = headers(&[("cookie", odd)]);
            assert_eq!(
                cookie(&h, "token").map_err(|r| r.status()),
                Err(400),
                "{odd}"
            );
        }
        // PHP reads `my.token`, `my token` and `my_token[x]` as `my_token`.
        for odd in ["my.token", "my token", "my_token[x]", "my[token"] {
            let h = headers(&[("cookie", &format!("{odd}=forged; my_token=valid"))]);
            assert_eq!(
                cookie(&h, "my_token").map_err(|r| r.status()),
                Err(400),
                "{odd}"
            );
        }
    }

    #[test]
    fn grpc_mode_only_for_http2_and_grpc_content_types() {
        for ct in [
            "application/grpc",
            "application/grpc+proto",
            "Application/GRPC;x=1",
        ] {
            let h = headers(&[("content-type", ct)]);
            assert!(is_grpc(true, &h), "{ct}");
            assert!(!is_grpc(false, &h), "{ct} over HTTP/1.x");
        }
        for ct in ["application/grpcx", "application/grp", "text/plain"] {
            assert!(!is_grpc(true, &headers(&[("content-type", ct)])), "{ct}");
        }
        assert!(!is_grpc(true, &headers(&[])));
        // A refusal is 200 only in gRPC mode.
        let r = AuthRejection::Missing;
        assert_eq!(r.answer("api", false).status, 401);
        assert_eq!(r.answer("api", true).status, 200);
    }
}
