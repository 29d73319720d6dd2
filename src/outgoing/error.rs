//! [`TokenError`]: why a [`TokenSource`](super::TokenSource) got no token.

use std::fmt;

/// Why no token was had from the token endpoint. Cheap to clone (every
/// caller waiting on one request gets the same error); never carries a
/// token or a secret.
///
/// ```
/// # fn f(e: tokenwarden::outgoing::TokenError) {
/// if e.is_permanent() {
///     eprintln!("fix the client's registration or request: {e}");
/// } else {
///     eprintln!("the identity provider is unreachable, retry later: {e}");
/// }
/// # }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct TokenError {
    kind: TokenErrorKind,
    status: Option<u16>,
    oauth_error: Option<String>,
    message: String,
}

/// What kind of failure a [`TokenError`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum TokenErrorKind {
    /// Connecting, sending or reading failed (refused, reset, DNS).
    Connect,
    /// No complete answer within the timeout.
    Timeout,
    /// The token endpoint refused the request with an OAuth error (RFC
    /// 6749 §5.2: `invalid_client`, `invalid_scope`, `invalid_grant`, …;
    /// RFC 8693 §2.2.2: `invalid_request`, `invalid_target`).
    Refused,
    /// Another status than 200 without an OAuth error (a 5xx, a proxy).
    Status,
    /// The body was larger than the limit.
    TooLarge,
    /// The answer is not a token response (RFC 6749 §5.1).
    Invalid,
    /// The token endpoint's URL, a redirect or the address a name resolved
    /// to is not allowed (refused before connecting).
    Rejected,
    /// A [`BearerLayer::exchange`](super::BearerLayer::exchange) layer got
    /// a request with no [`SubjectToken`](super::SubjectToken) to exchange:
    /// not sent.
    NoSubjectToken,
}

impl TokenErrorKind {
    /// A stable name for logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            TokenErrorKind::Connect => "connect",
            TokenErrorKind::Timeout => "timeout",
            TokenErrorKind::Refused => "refused",
            TokenErrorKind::Status => "status",
            TokenErrorKind::TooLarge => "too_large",
            TokenErrorKind::Invalid => "invalid",
            TokenErrorKind::Rejected => "rejected",
            TokenErrorKind::NoSubjectToken => "no_subject_token",
        }
    }
}

impl TokenError {
    pub(crate) fn new(kind: TokenErrorKind, message: impl Into<String>) -> Self {
        TokenError {
            kind,
            status: None,
            oauth_error: None,
            message: message.into(),
        }
    }

    pub(crate) fn with_status(mut self, status: u16) -> Self {
        self.status = Some(status);
        self
    }

    pub(crate) fn with_oauth_error(mut self, code: String) -> Self {
        self.oauth_error = Some(code);
        self
    }

    /// The kind of failure.
    pub fn kind(&self) -> TokenErrorKind {
        self.kind
    }

    /// The HTTP status the token endpoint answered with, if it answered.
    pub fn status(&self) -> Option<u16> {
        self.status
    }

    /// The OAuth error code (RFC 6749 §5.2), for
    /// [`TokenErrorKind::Refused`]: `invalid_scope`, `invalid_client`, …
    pub fn oauth_error(&self) -> Option<&str> {
        self.oauth_error.as_deref()
    }

    /// Whether retrying the same request will not help: the endpoint
    /// refused it (bad client credentials, a scope not granted, a subject
    /// token it will not exchange), answered 4xx (but 408 and 429), sent
    /// something that is not a token response, or is not allowed. The
    /// others (connection failures, timeouts, 5xx) are worth a retry.
    pub fn is_permanent(&self) -> bool {
        match self.kind {
            TokenErrorKind::Connect | TokenErrorKind::Timeout => false,
            TokenErrorKind::Refused | TokenErrorKind::Status => self
                .status
                .is_none_or(|s| (400..500).contains(&s) && s != 408 && s != 429),
            TokenErrorKind::TooLarge
            | TokenErrorKind::Invalid
            | TokenErrorKind::Rejected
            | TokenErrorKind::NoSubjectToken => true,
        }
    }

    /// Whether the endpoint did not answer in time.
    pub fn is_timeout(&self) -> bool {
        self.kind == TokenErrorKind::Timeout
    }
}

impl fmt::Display for TokenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for TokenError {}
