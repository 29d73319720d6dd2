//! The `htu` comparison (RFC 9449 §4.3 check 9): the proof's URI and the
//! request's, both without query and fragment, normalised as RFC 3986 §6.2.2
//! (case, percent-encoding, dot segments) and §6.2.3 (default port, empty
//! path) say.

/// A normalised `scheme://host[:port]` with no path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Origin {
    /// `https://api.example.com` (lowercase, default port dropped).
    pub(crate) origin: String,
    /// A path prefix the service is mounted under (`/v1`, never ending in
    /// `/`), empty for none.
    pub(crate) prefix: String,
}

impl Origin {
    /// Parses a configured external origin: `http(s)://host[:port]`, and an
    /// optional path prefix; no userinfo, query or fragment.
    pub(crate) fn parse(text: &str) -> Result<Origin, &'static str> {
        if text.contains(['?', '#']) {
            return Err("the DPoP origin has a query or fragment");
        }
        let uri = normalise(text)?;
        let (origin, path) = split_origin(&uri);
        let prefix = path.trim_end_matches('/').to_owned();
        Ok(Origin {
            origin: origin.to_owned(),
            prefix,
        })
    }

    /// The normalised URI a proof for a request to `path` must name. A
    /// request path with a dot segment (`.` or `..`, percent-encoded or
    /// not) has none: which resource it reaches depends on how the router
    /// normalises it, which may not be how RFC 3986 §6.2.2.3 does, so no
    /// proof is taken for it rather than one guessed at (RFC 9449 §4.3
    /// check 9 compares URIs the server and client agree on).
    pub(crate) fn expected(&self, path: &str) -> Result<String, &'static str> {
        if has_dot_segment(path) {
            return Err("the request path has a dot segment");
        }
        let mut path_norm = String::with_capacity(path.len() + 1);
        normalise_path(path, &mut path_norm)?;
        let mut out =
            String::with_capacity(self.origin.len() + self.prefix.len() + path_norm.len());
        out.push_str(&self.origin);
        out.push_str(&self.prefix);
        out.push_str(&path_norm);
        Ok(out)
    }
}

/// `scheme://authority` and the rest of a normalised URI.
fn split_origin(uri: &str) -> (&str, &str) {
    let after = uri.find("://").map_or(0, |i| i + 3);
    let slash = uri[after..].find('/').map_or(uri.len(), |i| after + i);
    (&uri[..slash], &uri[slash..])
}

/// The normalised form of an absolute `http`/`https` URI, without its query
/// and fragment: lowercase scheme and host, no default port, path with
/// percent-encodings normalised and dot segments removed, `/` for an
/// empty path. Userinfo is refused (RFC 9110 §4.2.4: deprecated, and a
/// way to make two URIs look alike).
pub(crate) fn normalise(uri: &str) -> Result<String, &'static str> {
    let bad = "not an absolute http(s) URI";
    if !uri.bytes().all(|b| (0x21..0x7f).contains(&b)) {
        return Err(bad);
    }
    let uri = &uri[..uri.find(['?', '#']).unwrap_or(uri.len())];
    let (scheme, rest) = uri.split_once("://").ok_or(bad)?;
    let scheme = scheme.to_ascii_lowercase();
    let default_port = match scheme.as_str() {
        "https" => "443",
        "http" => "80",
        _ => return Err("the URI's scheme is not http or https"),
    };
    let slash = rest.find('/').unwrap_or(rest.len());
    let (authority, path) = rest.split_at(slash);
    if authority.contains('@') {
        return Err("the URI has userinfo");
    }
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        // RFC 3986 §3.2.2: an IP literal in brackets, then maybe a port.
        let (inside, after) = v6.split_once(']').ok_or(bad)?;
        let port = match after {
            "" => "",
            p => p.strip_prefix(':').ok_or(bad)?,
        };
        (&authority[..inside.len() + 2], port)
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h, p),
            None => (authority, ""),
        }
    };
    if host.is_empty() || (host.contains(['[', ']']) && !host.starts_with('[')) {
        return Err(bad);
    }
    if !host
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"-._~%!$&'()*+,;=:[]".contains(&b))
    {
        return Err(bad);
    }
    if !port.bytes().all(|b| b.is_ascii_digit()) || port.len() > 5 {
        return Err("the URI's port is not a number");
    }
    // RFC 3986 §6.2.3: an empty port, or the scheme's default, is dropped;
    // leading zeros are not significant.
    let port = port.trim_start_matches('0');
    let mut out = String::with_capacity(uri.len() + 1);
    out.push_str(&scheme);
    out.push_str("://");
    // RFC 3986 §6.2.2.1: the host is case-insensitive.
    out.push_str(&host.to_ascii_lowercase());
    if !port.is_empty() && port != default_port {
        let n: u32 = port.parse().map_err(|_| bad)?;
        if n > 65_535 {
            return Err("the URI's port is out of range");
        }
        out.push(':');
        out.push_str(port);
    }
    normalise_path(path, &mut out)?;
    Ok(out)
}

/// Appends the normalised form of `path` (RFC 3986 §6.2.2.2 and §6.2.2.3):
/// percent-encodings of unreserved characters decoded, the others with
/// uppercase hex digits, dot segments removed (§5.2.4), `/` when empty.
fn normalise_path(path: &str, out: &mut String) -> Result<(), &'static str> {
    let path = &path[..path.find(['?', '#']).unwrap_or(path.len())];
    if path.is_empty() {
        out.push('/');
        return Ok(());
    }
    if !path.starts_with('/') {
        return Err("the path is not absolute");
    }
    let mut decoded = String::with_capacity(path.len());
    let bytes = path.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b == b'%' {
            let hex = bytes.get(i + 1..i + 3).ok_or("a bad percent-encoding")?;
            let (Some(hi), Some(lo)) = (hex_value(hex[0]), hex_value(hex[1])) else {
                return Err("a bad percent-encoding");
            };
            let c = hi << 4 | lo;
            if c.is_ascii_alphanumeric() || b"-._~".contains(&c) {
                decoded.push(char::from(c));
            } else {
                decoded.push('%');
                decoded.push(char::from(hex[0].to_ascii_uppercase()));
                decoded.push(char::from(hex[1].to_ascii_uppercase()));
            }
            i += 3;
        } else if (0x21..0x7f).contains(&b) {
            decoded.push(char::from(b));
            i += 1;
        } else {
            return Err("the path has characters a URI cannot");
        }
    }
    remove_dot_segments(&decoded, out);
    Ok(())
}

/// Whether the path (query and fragment aside) has a segment that is `.` or
/// `..`, spelt plainly or with `%2e`/`%2E` (RFC 3986 §2.3, §6.2.2.2: the
/// same characters). Linear in the path.
fn has_dot_segment(path: &str) -> bool {
    let path = &path[..path.find(['?', '#']).unwrap_or(path.len())];
    path.split('/').any(|seg| {
        let mut rest = seg.as_bytes();
        let mut dots = 0;
        while !rest.is_empty() {
            match rest {
                [b'.', tail @ ..] => rest = tail,
                [b'%', b'2', b'e' | b'E', tail @ ..] => rest = tail,
                _ => return false,
            }
            dots += 1;
        }
        dots == 1 || dots == 2
    })
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// RFC 3986 §5.2.4 for an absolute path: linear in the path's length.
fn remove_dot_segments(path: &str, out: &mut String) {
    let mut segments: Vec<&str> = Vec::new();
    let mut parts = path.split('/').skip(1).peekable();
    let mut trailing_slash = false;
    while let Some(seg) = parts.next() {
        let last = parts.peek().is_none();
        match seg {
            "." => trailing_slash = last,
            ".." => {
                segments.pop();
                trailing_slash = last;
            }
            s => {
                segments.push(s);
                trailing_slash = false;
            }
        }
    }
    for s in &segments {
        out.push('/');
        out.push_str(s);
    }
    if segments.is_empty() || trailing_slash {
        out.push('/');
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uris_normalise_as_rfc_3986_section_6() {
        let n = |u| normalise(u).unwrap();
        assert_eq!(
            n("https://api.example.com/orders"),
            "https://api.example.com/orders"
        );
        assert_eq!(
            n("HTTPS://API.Example.COM:443/orders?x=1#f"),
            "https://api.example.com/orders"
        );
        assert_eq!(n("https://api.example.com"), "https://api.example.com/");
        assert_eq!(n("https://api.example.com:"), "https://api.example.com/");
        assert_eq!(n("http://api.example.com:80/"), "http://api.example.com/");
        assert_eq!(
            n("https://api.example.com:8443/a"),
            "https://api.example.com:8443/a"
        );
        assert_eq!(
            n("https://api.example.com:08443/a"),
            "https://api.example.com:8443/a"
        );
        assert_eq!(n("https://h/%7euser/%2f%41"), "https://h/~user/%2FA");
        assert_eq!(n("https://h/a/./b/../c/"), "https://h/a/c/");
        assert_eq!(n("https://h/a/.."), "https://h/");
        assert_eq!(n("https://h/../../x"), "https://h/x");
        assert_eq!(n("https://[::1]:443/x"), "https://[::1]/x");
        assert_eq!(n("https://[::1]:8/x"), "https://[::1]:8/x");
        // The path stays case-sensitive.
        assert_ne!(n("https://h/Orders"), n("https://h/orders"));
    }

    #[test]
    fn odd_uris_are_refused() {
        for bad in [
            "ftp://h/x",
            "https://user@h/x",
            "https://u:p@h/x",
            "//h/x",
            "/x",
            "https:///x",
            "https://h:99999/x",
            "https://h:8a/x",
            "https://h/%zz",
            "https://h/%4",
            "https://h/ x",
            "https://h/\u{e9}",
            "https://h]/x",
        ] {
            assert!(normalise(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_expected_uri_is_the_origin_and_the_request_path() {
        let o = Origin::parse("https://API.example.com:443").unwrap();
        assert_eq!(
            o.expected("/orders/7").unwrap(),
            "https://api.example.com/orders/7"
        );
        assert_eq!(o.expected("").unwrap(), "https://api.example.com/");
        let o = Origin::parse("https://gw.example.com/v1/").unwrap();
        assert_eq!(
            o.expected("/orders").unwrap(),
            "https://gw.example.com/v1/orders"
        );
        assert!(Origin::parse("https://h/?q").is_err());
    }

    #[test]
    fn a_request_path_with_dot_segments_expects_no_uri() {
        let o = Origin::parse("https://api.example.com").unwrap();
        for path in [
            "/a/../b",
            "/a/./b",
            "/..",
            "/a/..",
            "/a/%2e%2e/b",
            "/a/%2E%2e/b",
            "/a/.%2e/b",
            "/a/%2e/b",
            "/a/%2E",
            "/./orders?x=1",
        ] {
            assert!(o.expected(path).is_err(), "{path}");
        }
        // Dots inside a segment are a name, not a dot segment.
        for path in [
            "/a/.../b",
            "/a/..b",
            "/a/b..",
            "/.well-known/x",
            "/a/%2e%2e%2e",
        ] {
            assert!(o.expected(path).is_ok(), "{path}");
        }
        assert!(Origin::parse("h.example.com").is_err());
    }
}
