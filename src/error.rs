//! Errors: [`Error`] for a token that did not pass, [`ErrorKind`] for its
//! stable, machine-readable name, and [`BuildError`] for a validator that
//! could not be configured.

use std::borrow::Cow;
use std::fmt;

use crate::alg::Algorithm;

/// Why a token was refused.
///
/// Each variant carries just enough context to explain the refusal (a claim
/// name, a key id, an algorithm, the times compared) and never the token or
/// any key material, so an `Error` is safe to log. Strings that come from the
/// token itself (an unknown `alg`, a `kid`, an `iss`) are shortened and
/// printed escaped.
///
/// Match on [`Error::kind`] for a stable answer: the kinds are API, the
/// variants' fields may grow.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The token is not a well-formed compact JWS: wrong number of segments,
    /// bad base64url, JSON that is not an object, duplicate member names,
    /// unsupported header parameters (`crit`, `b64`).
    #[error("malformed token: {reason}")]
    Malformed {
        /// What was wrong, without any part of the token.
        reason: Cow<'static, str>,
    },
    /// The token is longer than the configured maximum; nothing was decoded.
    #[error("token of {size} bytes exceeds the maximum of {max} bytes")]
    TokenTooLarge {
        /// Length of the token in bytes.
        size: usize,
        /// Configured maximum.
        max: usize,
    },
    /// The header's `alg` names an algorithm this crate does not implement
    /// (including `none`, which is never accepted).
    #[error("unsupported algorithm {}", Shown(alg))]
    UnsupportedAlgorithm {
        /// The `alg` value from the header.
        alg: String,
    },
    /// The algorithm is implemented but not in the validator's allow-list
    /// (or, without an explicit list, not declared or implied by any key).
    #[error("algorithm {alg} is not allowed")]
    AlgorithmNotAllowed {
        /// The token's algorithm.
        alg: Algorithm,
    },
    /// No key in the key set matches the token's `kid` (or, without a `kid`,
    /// no key can verify the token's algorithm).
    #[error("{}", UnknownKeyMsg(kid.as_deref()))]
    UnknownKey {
        /// The `kid` from the header, if it had one.
        kid: Option<String>,
    },
    /// A key with the token's `kid` exists but may not verify this token: it
    /// was skipped when the set was loaded, is for encryption, declares
    /// another algorithm, or is of another key type (RFC 8725 §3.1).
    #[error("key {} rejected: {reason}", ShownOpt(kid.as_deref()))]
    KeyRejected {
        /// The `kid` from the header, if it had one.
        kid: Option<String>,
        /// Why the key cannot be used.
        reason: Cow<'static, str>,
    },
    /// The signature does not verify with the selected key.
    #[error("invalid {alg} signature (key {})", ShownOpt(kid.as_deref()))]
    InvalidSignature {
        /// The token's algorithm.
        alg: Algorithm,
        /// The `kid` of the key that was tried.
        kid: Option<String>,
    },
    /// `exp` is at or before the current time less the leeway (RFC 7519 §4.1.4).
    #[error("token expired at {exp} (now {now}, leeway {leeway} s)")]
    Expired {
        /// The token's `exp`, in seconds since the epoch.
        exp: i64,
        /// The validator's current time.
        now: i64,
        /// The leeway applied, in seconds.
        leeway: u64,
    },
    /// `nbf` is after the current time plus the leeway (RFC 7519 §4.1.5).
    #[error("token not valid before {nbf} (now {now}, leeway {leeway} s)")]
    NotYetValid {
        /// The token's `nbf`.
        nbf: i64,
        /// The validator's current time.
        now: i64,
        /// The leeway applied, in seconds.
        leeway: u64,
    },
    /// `iat` is after the current time plus the leeway.
    #[error("token issued in the future at {iat} (now {now}, leeway {leeway} s)")]
    IssuedInFuture {
        /// The token's `iat`.
        iat: i64,
        /// The validator's current time.
        now: i64,
        /// The leeway applied, in seconds.
        leeway: u64,
    },
    /// `iat` is older than the configured maximum age (plus leeway).
    #[error("token issued at {iat} is older than the maximum age of {max_age} s (now {now})")]
    TokenTooOld {
        /// The token's `iat`.
        iat: i64,
        /// Configured maximum age in seconds.
        max_age: u64,
        /// The validator's current time.
        now: i64,
    },
    /// `iss` is not one of the configured issuers.
    ///
    /// Like rustls's `ExpiredContext`, the variant carries what was compared:
    /// the token's issuer (shortened to 64 bytes, printed escaped) and the
    /// issuers configured (at most [`Error::MAX_NAMES_SHOWN`] kept).
    #[error(
        "issuer {} is not accepted (expected {})",
        Shown(found),
        Names(expected, None)
    )]
    InvalidIssuer {
        /// The token's `iss`.
        found: String,
        /// The configured issuers, the first [`Error::MAX_NAMES_SHOWN`].
        expected: Vec<String>,
    },
    /// None of the token's `aud` values is a configured audience (RFC 7519 §4.1.3).
    ///
    /// Carries what was compared: audience names, never another claim's
    /// value. `found` comes from the token, so at most [`Error::MAX_NAMES_SHOWN`]
    /// values are kept, each cut to 64 bytes, and they are printed escaped.
    #[error(
        "no audience in the token is accepted (found {}, expected {})",
        Names(found, Some(*found_count)),
        Names(expected, None)
    )]
    InvalidAudience {
        /// The token's `aud` values, the first [`Error::MAX_NAMES_SHOWN`], each
        /// shortened.
        found: Vec<String>,
        /// How many `aud` values the token had (`found` may hold fewer).
        found_count: usize,
        /// The configured audiences, the first [`Error::MAX_NAMES_SHOWN`].
        expected: Vec<String>,
    },
    /// The header's `typ` is not the required type (RFC 8725 §3.11, RFC 9068 §4).
    #[error("token type {} is not the required {expected:?}", ShownOpt(found.as_deref()))]
    InvalidType {
        /// The header's `typ`, if any.
        found: Option<String>,
        /// The required type.
        expected: String,
    },
    /// A required claim is absent.
    #[error("required claim {claim:?} is missing")]
    MissingClaim {
        /// The claim's name.
        claim: String,
    },
    /// A claim is present but unusable: a time claim that is not a JSON
    /// number, an `aud` that is not a string or array of strings, a failed
    /// custom check, or claims that do not fit the caller's type.
    #[error("invalid claim {claim:?}: {reason}")]
    InvalidClaim {
        /// The claim's name.
        claim: String,
        /// What is wrong with it.
        reason: Cow<'static, str>,
    },
    /// No usable key set is available (it was never loaded, failed to load,
    /// or is older than the allowed staleness). The client did nothing wrong.
    #[error("keys unavailable: {reason}")]
    KeysUnavailable {
        /// Why, for operators.
        reason: Cow<'static, str>,
    },
    /// The token passed every check but was revoked: its `jti`, or its
    /// subject's or session's tokens issued before a cutoff, are on the
    /// validator's [`Denylist`](crate::state::denylist::Denylist).
    #[error("token revoked (by {by})")]
    Revoked {
        /// Which kind of entry refused it (never its value).
        by: crate::state::denylist::RevokedBy,
    },
}

impl Error {
    /// Most names (audiences, issuers) an `InvalidAudience` or
    /// `InvalidIssuer` keeps: a token may list thousands of audiences, and
    /// a log line should not.
    pub const MAX_NAMES_SHOWN: usize = 8;

    /// The stable kind of this error.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Malformed { .. } => ErrorKind::Malformed,
            Error::TokenTooLarge { .. } => ErrorKind::TokenTooLarge,
            Error::UnsupportedAlgorithm { .. } => ErrorKind::UnsupportedAlgorithm,
            Error::AlgorithmNotAllowed { .. } => ErrorKind::AlgorithmNotAllowed,
            Error::UnknownKey { .. } => ErrorKind::UnknownKey,
            Error::KeyRejected { .. } => ErrorKind::KeyRejected,
            Error::InvalidSignature { .. } => ErrorKind::InvalidSignature,
            Error::Expired { .. } => ErrorKind::Expired,
            Error::NotYetValid { .. } => ErrorKind::NotYetValid,
            Error::IssuedInFuture { .. } => ErrorKind::IssuedInFuture,
            Error::TokenTooOld { .. } => ErrorKind::TokenTooOld,
            Error::InvalidIssuer { .. } => ErrorKind::InvalidIssuer,
            Error::InvalidAudience { .. } => ErrorKind::InvalidAudience,
            Error::InvalidType { .. } => ErrorKind::InvalidType,
            Error::MissingClaim { .. } => ErrorKind::MissingClaim,
            Error::InvalidClaim { .. } => ErrorKind::InvalidClaim,
            Error::KeysUnavailable { .. } => ErrorKind::KeysUnavailable,
            Error::Revoked { .. } => ErrorKind::Revoked,
        }
    }

    pub(crate) fn malformed(reason: impl Into<Cow<'static, str>>) -> Self {
        Error::Malformed {
            reason: reason.into(),
        }
    }

    /// An `iss` that is none of `expected`: the context kept bounded.
    pub(crate) fn invalid_issuer<'e>(found: &str, expected: impl Iterator<Item = &'e str>) -> Self {
        Error::InvalidIssuer {
            found: shortened(found).to_owned(),
            expected: bounded_names(expected),
        }
    }

    /// `aud` values none of which is one of `expected`: the context kept
    /// bounded, whatever the token lists.
    pub(crate) fn invalid_audience<'f, 'e>(
        found: impl ExactSizeIterator<Item = &'f str>,
        expected: impl Iterator<Item = &'e str>,
    ) -> Self {
        Error::InvalidAudience {
            found_count: found.len(),
            found: bounded_names(found),
            expected: bounded_names(expected),
        }
    }

    pub(crate) fn invalid_claim(claim: &str, reason: impl Into<Cow<'static, str>>) -> Self {
        Error::InvalidClaim {
            claim: claim.to_owned(),
            reason: reason.into(),
        }
    }
}

/// The stable name of an [`Error`]: what a caller matches on, what logs and
/// metrics record, what the `tokenwarden` command prints as `kind`.
///
/// Renaming a kind is a breaking change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// `malformed`
    Malformed,
    /// `token_too_large`
    TokenTooLarge,
    /// `unsupported_algorithm`
    UnsupportedAlgorithm,
    /// `algorithm_not_allowed`
    AlgorithmNotAllowed,
    /// `unknown_key`
    UnknownKey,
    /// `key_rejected`
    KeyRejected,
    /// `invalid_signature`
    InvalidSignature,
    /// `expired`
    Expired,
    /// `not_yet_valid`
    NotYetValid,
    /// `issued_in_future`
    IssuedInFuture,
    /// `token_too_old`
    TokenTooOld,
    /// `invalid_issuer`
    InvalidIssuer,
    /// `invalid_audience`
    InvalidAudience,
    /// `invalid_type`
    InvalidType,
    /// `missing_claim`
    MissingClaim,
    /// `invalid_claim`
    InvalidClaim,
    /// `keys_unavailable`
    KeysUnavailable,
    /// `revoked`
    Revoked,
}

impl ErrorKind {
    /// Every kind, in documentation order.
    pub const ALL: [ErrorKind; 18] = [
        ErrorKind::Malformed,
        ErrorKind::TokenTooLarge,
        ErrorKind::UnsupportedAlgorithm,
        ErrorKind::AlgorithmNotAllowed,
        ErrorKind::UnknownKey,
        ErrorKind::KeyRejected,
        ErrorKind::InvalidSignature,
        ErrorKind::Expired,
        ErrorKind::NotYetValid,
        ErrorKind::IssuedInFuture,
        ErrorKind::TokenTooOld,
        ErrorKind::InvalidIssuer,
        ErrorKind::InvalidAudience,
        ErrorKind::InvalidType,
        ErrorKind::MissingClaim,
        ErrorKind::InvalidClaim,
        ErrorKind::KeysUnavailable,
        ErrorKind::Revoked,
    ];

    /// The kind's stable snake_case name, e.g. `"invalid_signature"`.
    pub const fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Malformed => "malformed",
            ErrorKind::TokenTooLarge => "token_too_large",
            ErrorKind::UnsupportedAlgorithm => "unsupported_algorithm",
            ErrorKind::AlgorithmNotAllowed => "algorithm_not_allowed",
            ErrorKind::UnknownKey => "unknown_key",
            ErrorKind::KeyRejected => "key_rejected",
            ErrorKind::InvalidSignature => "invalid_signature",
            ErrorKind::Expired => "expired",
            ErrorKind::NotYetValid => "not_yet_valid",
            ErrorKind::IssuedInFuture => "issued_in_future",
            ErrorKind::TokenTooOld => "token_too_old",
            ErrorKind::InvalidIssuer => "invalid_issuer",
            ErrorKind::InvalidAudience => "invalid_audience",
            ErrorKind::InvalidType => "invalid_type",
            ErrorKind::MissingClaim => "missing_claim",
            ErrorKind::InvalidClaim => "invalid_claim",
            ErrorKind::KeysUnavailable => "keys_unavailable",
            ErrorKind::Revoked => "revoked",
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A [`ValidatorBuilder`](crate::ValidatorBuilder) or key set that could not
/// be built: the configuration is incomplete or contradictory.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid validator configuration: {message}")]
#[non_exhaustive]
pub struct BuildError {
    /// What is wrong, naming the setting.
    pub message: String,
}

impl BuildError {
    pub(crate) fn new(message: impl Into<String>) -> Self {
        BuildError {
            message: message.into(),
        }
    }
}

/// A payload that is not a JSON object of claims, described without any of
/// its values.
pub(crate) fn payload_error(e: &serde_json::Error) -> Error {
    Error::malformed(format!(
        "payload is not a valid JSON object: {}",
        serde_reason(e)
    ))
}

/// A claims type that refused the claims: the member it stopped at (`at`,
/// from the token: shortened, and printed escaped) and the kind of mismatch,
/// never the value.
pub(crate) fn claims_type_error(e: &serde_json::Error, at: Option<&str>) -> Error {
    let reason = serde_reason(e);
    let claim = match reason.strip_prefix("missing field ") {
        // The name is the claims type's own field.
        Some(field) => field.trim_matches('"').to_owned(),
        None => at.map_or_else(|| "(claims)".to_owned(), |a| shortened(a).to_owned()),
    };
    Error::InvalidClaim {
        claim,
        reason: format!("claims do not fit the expected type: {reason}").into(),
    }
}

/// What a `serde_json` error says, less any value it quotes.
///
/// serde's messages quote the value they refused (`invalid type: string
/// "…", expected u64`, ``unknown variant `…` ``), and a custom message may
/// hold anything: those are claim values, possibly secrets, and an error is
/// meant to be safe to log. Only the kind of mismatch, what the claims type
/// expected (its own words) and the position are kept.
fn serde_reason(e: &serde_json::Error) -> String {
    let full = e.to_string();
    let msg = if e.line() == 0 {
        &full[..]
    } else {
        let at = format!(" at line {} column {}", e.line(), e.column());
        full.strip_suffix(at.as_str()).unwrap_or(&full)
    };
    // Syntax and end-of-input messages are fixed texts without values.
    let described = if e.is_syntax() || e.is_eof() {
        printable(msg, 120)
    } else if OURS.iter().any(|p| msg.starts_with(p)) {
        // Our own strict-JSON refusals: a member name at most, escaped and
        // shortened where it is made (`token::Seen`).
        printable(msg, 120)
    } else {
        describe_data_error(msg)
    };
    if e.line() == 0 {
        described
    } else {
        format!("{described} at line {} column {}", e.line(), e.column())
    }
}

/// The messages of the strict JSON rules raised inside a parse.
const OURS: [&str; 2] = ["duplicate member name ", "an object has more than "];

/// How serde's data errors read (`serde::de::Error`'s provided methods and
/// `Unexpected`'s names), turned into the kind and the expectation.
fn describe_data_error(msg: &str) -> String {
    // serde's `Unexpected` names, longest first where one starts another.
    const FOUND: [&str; 18] = [
        "floating point",
        "integer",
        "string",
        "boolean",
        "character",
        "byte array",
        "unit value",
        "Option value",
        "newtype struct",
        "sequence",
        "map",
        "enum",
        "unit variant",
        "newtype variant",
        "tuple variant",
        "struct variant",
        "number",
        "null",
    ];
    // serde writes `{kind}: {found value}, expected {expectation}`, the
    // expectation last: the last ", expected " is the real one.
    let expected = |rest: &str| {
        rest.rfind(", expected ")
            .map(|i| format!(", {}", printable(&rest[i + 2..], 80)))
            .unwrap_or_default()
    };
    for kind in ["invalid type", "invalid value"] {
        if let Some(rest) = msg.strip_prefix(kind).and_then(|r| r.strip_prefix(": ")) {
            let found = FOUND
                .iter()
                .filter(|f| {
                    rest.starts_with(**f)
                        && matches!(rest.as_bytes().get(f.len()), None | Some(b' ' | b','))
                })
                .max_by_key(|f| f.len())
                .map(|f| format!(": {f}"))
                .unwrap_or_default();
            return format!("{kind}{found}{}", expected(rest));
        }
    }
    if let Some(rest) = msg.strip_prefix("invalid length ") {
        let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
        return format!("invalid length {digits}{}", expected(rest));
    }
    if let Some(field) = msg
        .strip_prefix("missing field `")
        .and_then(|r| r.strip_suffix('`'))
    {
        return format!("missing field {:?}", shortened(field));
    }
    // The name or variant quoted here came from the token; what follows it
    // may be mistaken for the expectation, so neither is kept.
    for kind in ["unknown field", "unknown variant", "duplicate field"] {
        if msg.starts_with(kind) {
            return kind.to_owned();
        }
    }
    // A custom message (a `deserialize_with`, a parsing newtype) may hold
    // anything.
    "a value was refused".to_owned()
}

/// `s` cut to `max` bytes, with anything but printable ASCII replaced.
fn printable(s: &str, max: usize) -> String {
    shortened_to(s, max)
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() || c == ' ' {
                c
            } else {
                '?'
            }
        })
        .collect()
}

fn shortened(s: &str) -> &str {
    shortened_to(s, SHOWN_MAX)
}

fn shortened_to(s: &str, max: usize) -> &str {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// Longest part of a token-supplied string shown in a message.
const SHOWN_MAX: usize = 64;

/// Most names (audiences, issuers) an [`Error`] keeps.
const MAX_NAMES_SHOWN: usize = Error::MAX_NAMES_SHOWN;

/// The first [`Error::MAX_NAMES_SHOWN`] names, each shortened.
fn bounded_names<'n>(names: impl Iterator<Item = &'n str>) -> Vec<String> {
    names
        .take(MAX_NAMES_SHOWN)
        .map(|n| shortened(n).to_owned())
        .collect()
}

/// A list of names, each escaped and shortened; `total` names the count
/// when more were seen than kept.
struct Names<'a>(&'a [String], Option<usize>);

impl fmt::Display for Names<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[")?;
        for (i, name) in self.0.iter().take(MAX_NAMES_SHOWN).enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            Shown(name).fmt(f)?;
        }
        let total = self.1.unwrap_or(self.0.len());
        let shown = self.0.len().min(MAX_NAMES_SHOWN);
        if total > shown {
            write!(f, ", … {} more", total - shown)?;
        }
        f.write_str("]")
    }
}

/// Prints a token-supplied (or IdP-supplied) string escaped and shortened,
/// so that a hostile value can neither forge log lines nor flood them.
pub(crate) struct Shown<'a>(pub(crate) &'a str);

impl fmt::Display for Shown<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut end = self.0.len().min(SHOWN_MAX);
        while !self.0.is_char_boundary(end) {
            end -= 1;
        }
        write!(f, "{:?}", &self.0[..end])?;
        if end < self.0.len() {
            f.write_str("…")?;
        }
        Ok(())
    }
}

struct ShownOpt<'a>(Option<&'a str>);

impl fmt::Display for ShownOpt<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(s) => Shown(s).fmt(f),
            None => f.write_str("(no kid)"),
        }
    }
}

struct UnknownKeyMsg<'a>(Option<&'a str>);

impl fmt::Display for UnknownKeyMsg<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(kid) => write!(f, "no key with kid {} in the key set", Shown(kid)),
            None => f.write_str("token has no kid and no key in the set can verify it"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kind_names_are_unique_snake_case() {
        let mut names: Vec<_> = ErrorKind::ALL.iter().map(|k| k.as_str()).collect();
        assert!(
            names
                .iter()
                .all(|n| n.chars().all(|c| c.is_ascii_lowercase() || c == '_'))
        );
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), ErrorKind::ALL.len());
    }

    #[test]
    fn serde_messages_lose_their_values() {
        for (msg, want) in [
            (
                "invalid type: string \"abc, expected SECRET\", expected u64",
                "invalid type: string, expected u64",
            ),
            (
                "invalid value: integer `5`, expected u8",
                "invalid value: integer, expected u8",
            ),
            (
                "invalid type: floating point `1.5`, expected i64",
                "invalid type: floating point, expected i64",
            ),
            (
                "invalid length 3, expected 2 elements",
                "invalid length 3, expected 2 elements",
            ),
            (
                "unknown field `x, expected SECRET`, there are no fields",
                "unknown field",
            ),
            (
                "unknown variant `SECRET`, expected `A` or `B`",
                "unknown variant",
            ),
            ("missing field `email`", "missing field \"email\""),
            ("cannot use SECRET", "a value was refused"),
        ] {
            assert_eq!(describe_data_error(msg), want);
        }
        let custom = |m: &str| <serde_json::Error as serde::de::Error>::custom(m);
        assert_eq!(
            serde_reason(&custom("duplicate member name \"a\"")),
            "duplicate member name \"a\""
        );
        assert_eq!(serde_reason(&custom("SECRET\nline")), "a value was refused");
    }

    #[test]
    fn hostile_strings_are_escaped_and_shortened() {
        let e = Error::invalid_issuer(
            &format!("evil\n{}", "x".repeat(500)),
            ["https://idp"].into_iter(),
        );
        let msg = e.to_string();
        assert!(!msg.contains('\n'));
        assert!(msg.len() < 160, "{msg}");
    }

    #[test]
    fn invalid_issuer_says_what_was_expected_and_found() {
        let e = Error::invalid_issuer("https://evil", ["https://idp", "https://other"].into_iter());
        assert_eq!(
            e.to_string(),
            r#"issuer "https://evil" is not accepted (expected ["https://idp", "https://other"])"#
        );
        assert_eq!(e.kind(), ErrorKind::InvalidIssuer);
    }

    #[test]
    fn invalid_audience_says_what_was_found_and_expected() {
        let e = Error::invalid_audience(["account", "web"].into_iter(), ["orders-api"].into_iter());
        assert_eq!(
            e.to_string(),
            r#"no audience in the token is accepted (found ["account", "web"], expected ["orders-api"])"#
        );
        assert_eq!(e.kind(), ErrorKind::InvalidAudience);
    }

    #[test]
    fn a_flood_of_audiences_is_bounded_in_the_error() {
        let many: Vec<String> = (0..10_000)
            .map(|i| format!("aud-{i}-{}", "y".repeat(300)))
            .collect();
        let e = Error::invalid_audience(many.iter().map(String::as_str), ["api"].into_iter());
        let Error::InvalidAudience {
            found, found_count, ..
        } = &e
        else {
            panic!("{e:?}")
        };
        assert_eq!(found.len(), Error::MAX_NAMES_SHOWN);
        assert_eq!(*found_count, 10_000);
        assert!(found.iter().all(|a| a.len() <= SHOWN_MAX));
        let msg = e.to_string();
        assert!(msg.contains("9992 more"), "{msg}");
        assert!(msg.len() < 1_000, "{}", msg.len());
    }
}
