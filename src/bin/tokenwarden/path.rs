//! The original request's path, made normal before any rule sees it.
//!
//! A gateway hands over the path as the client wrote it; the upstream
//! behind it decodes and resolves it. A rule compared against the raw text
//! is bypassed by any other spelling of the same path (`/public/../admin`,
//! `/%61dmin`, `//admin`), so the path is first brought to one normal form
//! (RFC 3986 §6.2.2), and what has no single safe reading is refused:
//!
//! - percent-encoded unreserved characters are decoded (§2.3, §6.2.2.2) and
//!   the hex digits of the others upper-cased (§6.2.2.1);
//! - dot segments are removed (§5.2.4) and repeated slashes merged;
//! - refused: a byte that is not visible ASCII (NUL, controls, space,
//!   anything >= 0x80), a literal `\`, `;` path parameters, `#`, a bad
//!   percent escape, an encoded `/`, `\`, `;`, `%` or control byte, and a
//!   dot segment spelled with `%2E` (upstreams disagree on what they mean).
//!
//! Case: paths are case-sensitive (RFC 3986 §6.2.2.1); with
//! `case_insensitive_paths` both the rules and the request path are
//! lower-cased, for upstreams that ignore case.

/// Why a path cannot be judged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathError {
    /// Does not start with `/`.
    NotAbsolute,
    /// A byte that is not visible ASCII, or one of `\` `;` `#`.
    BadByte,
    /// `%` not followed by two hex digits.
    BadEscape,
    /// An encoded byte with no safe reading (`/`, `\`, `;`, `%`, controls).
    EncodedDelimiter,
    /// `.` or `..` spelled with `%2E`.
    EncodedDotSegment,
}

impl std::fmt::Display for PathError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            PathError::NotAbsolute => "does not start with '/'",
            PathError::BadByte => "has a byte that is not visible ASCII, or one of '\\' ';' '#'",
            PathError::BadEscape => "has a '%' not followed by two hex digits",
            PathError::EncodedDelimiter => "encodes '/', '\\', ';', '%' or a control byte",
            PathError::EncodedDotSegment => "spells a dot segment with %2E",
        })
    }
}

/// RFC 3986 §2.3 unreserved characters.
fn unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// One segment, percent-decoded where safe; also whether it had an
/// encoded `.`.
fn segment(raw: &[u8]) -> Result<(String, bool), PathError> {
    let mut out = String::with_capacity(raw.len());
    let mut encoded_dot = false;
    let mut i = 0;
    while let Some(&b) = raw.get(i) {
        if b != b'%' {
            out.push(char::from(b));
            i += 1;
            continue;
        }
        let (Some(hi), Some(lo)) = (
            raw.get(i + 1).copied().and_then(hex),
            raw.get(i + 2).copied().and_then(hex),
        ) else {
            return Err(PathError::BadEscape);
        };
        let byte = hi * 16 + lo;
        if unreserved(byte) {
            encoded_dot |= byte == b'.';
            out.push(char::from(byte));
        } else if byte < 0x20 || matches!(byte, b'/' | b'\\' | b';' | b'%' | 0x7f) {
            return Err(PathError::EncodedDelimiter);
        } else {
            out.push('%');
            out.push(char::from(b"0123456789ABCDEF"[usize::from(hi)]));
            out.push(char::from(b"0123456789ABCDEF"[usize::from(lo)]));
        }
        i += 3;
    }
    Ok((out, encoded_dot))
}

/// The normal form of `path` (no query), or why it has none.
pub fn normalise(path: &str, case_insensitive: bool) -> Result<String, PathError> {
    let bytes = path.as_bytes();
    if bytes.first() != Some(&b'/') {
        return Err(PathError::NotAbsolute);
    }
    if let Some(_bad) = bytes
        .iter()
        .find(|&&b| !(0x21..=0x7e).contains(&b) || matches!(b, b'\\' | b';' | b'#'))
    {
        return Err(PathError::BadByte);
    }
    let mut kept: Vec<String> = Vec::new();
    // Whether the output ends in '/': a trailing empty or dot segment
    // (RFC 3986 §5.2.4: "/a/b/.." is "/a/").
    let mut trailing_slash = false;
    for raw in bytes[1..].split(|&b| b == b'/') {
        let (seg, encoded_dot) = segment(raw)?;
        match seg.as_str() {
            "." | ".." if encoded_dot => return Err(PathError::EncodedDotSegment),
            "" | "." => trailing_slash = true,
            ".." => {
                kept.pop();
                trailing_slash = true;
            }
            _ => {
                kept.push(seg);
                trailing_slash = false;
            }
        }
    }
    let mut out = String::with_capacity(path.len());
    for seg in &kept {
        out.push('/');
        out.push_str(seg);
    }
    if trailing_slash || kept.is_empty() {
        out.push('/');
    }
    if case_insensitive {
        out.make_ascii_lowercase();
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_come_to_one_normal_form() {
        let table = [
            ("/", "/"),
            ("/admin/x", "/admin/x"),
            ("/public/../admin/x", "/admin/x"),
            ("/%61dmin/x", "/admin/x"),
            ("/%7Euser/%41%2d%5f%2E", "/~user/A-_."),
            ("//admin/x", "/admin/x"),
            ("/admin//x///", "/admin/x/"),
            ("/./admin/./x", "/admin/x"),
            ("/a/b/..", "/a/"),
            ("/a/b/.", "/a/b/"),
            ("/../../admin", "/admin"),
            ("/..", "/"),
            ("/a/%c3%a9", "/a/%C3%A9"),
            ("/a%20b", "/a%20b"),
            ("/a/file.txt", "/a/file.txt"),
            ("/a/..b/.c", "/a/..b/.c"),
            ("/ADMIN/x", "/ADMIN/x"),
            ("/a:b@c!$&'()*+,=", "/a:b@c!$&'()*+,="),
        ];
        for (input, want) in table {
            assert_eq!(normalise(input, false).as_deref(), Ok(want), "{input}");
            // A normal form is its own normal form.
            assert_eq!(normalise(want, false).as_deref(), Ok(want), "{want}");
        }
    }

    #[test]
    fn what_has_no_safe_reading_is_refused() {
        use PathError::*;
        let table = [
            ("", NotAbsolute),
            ("admin/x", NotAbsolute),
            ("*", NotAbsolute),
            ("http://h/admin", NotAbsolute),
            ("/admin;p=1/x", BadByte),
            ("/admin\\x", BadByte),
            ("/a\0b", BadByte),
            ("/a b", BadByte),
            ("/a\tb", BadByte),
            ("/caf\u{e9}", BadByte),
            ("/a#/../admin", BadByte),
            ("/a%2Fb", EncodedDelimiter),
            ("/a%2fb", EncodedDelimiter),
            ("/a%5Cb", EncodedDelimiter),
            ("/admin%3Bp=1/x", EncodedDelimiter),
            ("/a%00", EncodedDelimiter),
            ("/a%0a", EncodedDelimiter),
            ("/a%7f", EncodedDelimiter),
            ("/%2561dmin", EncodedDelimiter),
            ("/%2e%2e/admin", EncodedDotSegment),
            ("/public/%2e./admin", EncodedDotSegment),
            ("/public/.%2E/admin", EncodedDotSegment),
            ("/%2e/admin", EncodedDotSegment),
            ("/a%", BadEscape),
            ("/a%4", BadEscape),
            ("/a%zz", BadEscape),
            ("/a%+1", BadEscape),
        ];
        for (input, want) in table {
            assert_eq!(normalise(input, false), Err(want), "{input:?}");
        }
    }

    #[test]
    fn case_is_folded_only_when_asked() {
        assert_eq!(normalise("/ADMIN/X", false).as_deref(), Ok("/ADMIN/X"));
        assert_eq!(normalise("/ADMIN/X", true).as_deref(), Ok("/admin/x"));
        assert_eq!(normalise("/%41dmin", true).as_deref(), Ok("/admin"));
    }
}
