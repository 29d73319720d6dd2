//! [`Refusal`]: one RFC 6750-style table across every kind of credential.

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

use crate::error::{Error, ErrorKind};

/// `Retry-After` (seconds) of a 503 whose source gave no better figure.
pub const DEFAULT_RETRY_AFTER: u32 = 30;

/// An HTTP authentication scheme, as named in `WWW-Authenticate`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Scheme {
    /// `Bearer` (RFC 6750).
    Bearer,
    /// `ApiKey`: `Authorization: ApiKey <key>` or a configured header.
    ApiKey,
    /// `Basic` (RFC 7617).
    Basic,
    /// `DPoP` (RFC 9449 §7.1): a sender-constrained token with its proof.
    DPoP,
    /// Another scheme, by its name (a token, RFC 9110 §11.1).
    Other(&'static str),
}

impl Scheme {
    /// The scheme's name, e.g. `"Bearer"`.
    pub fn name(self) -> &'static str {
        match self {
            Scheme::Bearer => "Bearer",
            Scheme::ApiKey => "ApiKey",
            Scheme::Basic => "Basic",
            Scheme::DPoP => "DPoP",
            Scheme::Other(name) => name,
        }
    }
}

/// Why a request was refused, whatever its credential: status, RFC 6750
/// error code, a description safe to send, the scheme(s) to challenge
/// with, a stable kind for logs and metrics, and `Retry-After` for 503.
/// Never carries a credential.
///
/// | case | status | `error` | `kind` |
/// |---|---|---|---|
/// | no credential | 401 | — | `missing_token` |
/// | malformed or several credentials | 400 | `invalid_request` | `invalid_request` |
/// | credential refused | 401 | `invalid_token` | the reason (`expired`, `invalid_signature`, `wrong_secret`, …) |
/// | DPoP proof refused (RFC 9449 §7.1) | 401 | `invalid_dpop_proof` | the check that failed (`dpop_htu_mismatch`, `dpop_replayed`, …) |
/// | DPoP proof without the server's current nonce (RFC 9449 §8) | 401 | `use_dpop_nonce` | `use_dpop_nonce`, with a `DPoP-Nonce` header |
/// | scopes, roles or a requirement unmet | 403 | `insufficient_scope` | `insufficient_scope` |
/// | delegation depth or actor not allowed | 403 | `insufficient_scope` | `delegation_refused` |
/// | keys or key store unavailable | 503 | — | `keys_unavailable`, … |
///
/// ```
/// use tokenwarden::authn::{Refusal, Scheme};
///
/// let r = Refusal::invalid_token(Scheme::ApiKey, "expired", "the API key has expired");
/// assert_eq!(r.status(), 401);
/// assert_eq!(r.error(), Some("invalid_token"));
/// assert_eq!(
///     r.challenges("api"),
///     ["ApiKey realm=\"api\", error=\"invalid_token\", error_description=\"the API key has expired\""]
/// );
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal(Box<Fields>);

/// A refusal's parts, boxed: refusals are the rare path, and a small
/// `Refusal` keeps every `Result<Principal, Refusal>` small to move.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Fields {
    status: u16,
    error: Option<&'static str>,
    description: Cow<'static, str>,
    kind: &'static str,
    /// The challenged schemes: one, or every scheme of the chain for a
    /// request with no credential.
    schemes: Vec<Scheme>,
    /// For `insufficient_scope`: the scopes lacking, space-separated.
    scope: Option<String>,
    retry_after: Option<u32>,
    /// For a `DPoP` challenge: the proof algorithms accepted (RFC 9449
    /// §7.1 `algs`), space-separated.
    dpop_algs: Option<Arc<str>>,
    /// For `use_dpop_nonce`: the nonce to send as `DPoP-Nonce` (RFC 9449 §8).
    dpop_nonce: Option<String>,
}

impl Refusal {
    fn new(
        status: u16,
        error: Option<&'static str>,
        kind: &'static str,
        scheme: Scheme,
        description: Cow<'static, str>,
    ) -> Refusal {
        Refusal(Box::new(Fields {
            status,
            error,
            description,
            kind,
            schemes: vec![scheme],
            scope: None,
            retry_after: None,
            dpop_algs: None,
            dpop_nonce: None,
        }))
    }

    /// No credential at all: 401 with a bare challenge per scheme (RFC 6750
    /// §3.1: no error code).
    pub fn missing(schemes: Vec<Scheme>) -> Refusal {
        Refusal(Box::new(Fields {
            status: 401,
            error: None,
            description: Cow::Borrowed("no credentials"),
            kind: "missing_token",
            schemes,
            scope: None,
            retry_after: None,
            dpop_algs: None,
            dpop_nonce: None,
        }))
    }

    /// A malformed request (several credentials, bad characters): 400
    /// `invalid_request`.
    pub fn invalid_request(scheme: Scheme, description: &'static str) -> Refusal {
        Refusal::new(
            400,
            Some("invalid_request"),
            "invalid_request",
            scheme,
            Cow::Borrowed(description),
        )
    }

    /// A refused credential: 401 `invalid_token`; `kind` is the stable
    /// reason, `description` what the client is told.
    pub fn invalid_token(scheme: Scheme, kind: &'static str, description: &'static str) -> Refusal {
        Refusal::new(
            401,
            Some("invalid_token"),
            kind,
            scheme,
            Cow::Borrowed(description),
        )
    }

    /// A refused DPoP proof (RFC 9449 §7.1): 401 `invalid_dpop_proof`
    /// with the `DPoP` challenge; `kind` names the check that failed.
    pub fn invalid_dpop_proof(kind: &'static str, description: &'static str) -> Refusal {
        Refusal::new(
            401,
            Some("invalid_dpop_proof"),
            kind,
            Scheme::DPoP,
            Cow::Borrowed(description),
        )
    }

    /// [`invalid_dpop_proof`](Self::invalid_dpop_proof) with a description
    /// made at run time (numbers, never request text).
    pub(crate) fn invalid_dpop_proof_owned(kind: &'static str, description: String) -> Refusal {
        Refusal::new(
            401,
            Some("invalid_dpop_proof"),
            kind,
            Scheme::DPoP,
            Cow::Owned(description),
        )
    }

    /// A DPoP proof without the server's current nonce (RFC 9449 §8): 401
    /// `use_dpop_nonce`, and `nonce` for the `DPoP-Nonce` header.
    pub fn use_dpop_nonce(nonce: String) -> Refusal {
        let mut r = Refusal::new(
            401,
            Some("use_dpop_nonce"),
            "use_dpop_nonce",
            Scheme::DPoP,
            Cow::Borrowed("the resource server requires a nonce in the DPoP proof"),
        );
        r.0.dpop_nonce = Some(nonce);
        r
    }

    /// The same refusal with the `algs` its `DPoP` challenge names (RFC
    /// 9449 §7.1), space-separated.
    #[must_use]
    pub fn with_dpop_algs(mut self, algs: Arc<str>) -> Refusal {
        self.0.dpop_algs = Some(algs);
        self
    }

    /// The same refusal challenging with `scheme` instead (a check shared
    /// by the `Bearer` and `DPoP` authenticators).
    #[must_use]
    pub(crate) fn in_scheme(mut self, scheme: Scheme) -> Refusal {
        self.0.schemes = vec![scheme];
        self
    }

    /// For `use_dpop_nonce`: the nonce the response's `DPoP-Nonce` header
    /// carries.
    pub fn dpop_nonce(&self) -> Option<&str> {
        self.0.dpop_nonce.as_deref()
    }

    /// Scopes lacking: 403 `insufficient_scope` naming them (RFC 6750 §3.1).
    pub fn insufficient_scope(scheme: Scheme, scope: String) -> Refusal {
        let mut r = Refusal::new(
            403,
            Some("insufficient_scope"),
            "insufficient_scope",
            scheme,
            Cow::Borrowed("insufficient scope"),
        );
        r.0.scope = Some(header_safe(&scope));
        r
    }

    /// A role or custom requirement unmet: 403 `insufficient_scope`, the
    /// requirement as description.
    pub fn forbidden(scheme: Scheme, requirement: &str) -> Refusal {
        Refusal::new(
            403,
            Some("insufficient_scope"),
            "insufficient_scope",
            scheme,
            Cow::Owned(format!("requires {}", header_safe(requirement))),
        )
    }

    /// A delegation limit unmet (RFC 8693 §4.1: too many actors, or an
    /// actor not allowed): 403 `insufficient_scope`, kind
    /// `delegation_refused`, `description` as the client is told.
    pub fn delegation(scheme: Scheme, description: &str) -> Refusal {
        Refusal::new(
            403,
            Some("insufficient_scope"),
            "delegation_refused",
            scheme,
            Cow::Owned(header_safe(description)),
        )
    }

    /// The credential cannot be judged now (keys or a key store
    /// unavailable): 503 with `Retry-After`; the client did nothing wrong.
    pub fn unavailable(scheme: Scheme, kind: &'static str, retry_after: u32) -> Refusal {
        let mut r = Refusal::new(
            503,
            None,
            kind,
            scheme,
            Cow::Borrowed("temporarily unavailable"),
        );
        r.0.retry_after = Some(retry_after);
        r
    }

    /// A validation error as `middleware::AuthRejection` maps it:
    /// `keys_unavailable` is 503, any other kind 401 `invalid_token` with
    /// the kind as description.
    pub fn from_error(scheme: Scheme, e: &Error) -> Refusal {
        match e.kind() {
            ErrorKind::KeysUnavailable => {
                Refusal::unavailable(scheme, "keys_unavailable", DEFAULT_RETRY_AFTER)
            }
            kind => Refusal::invalid_token(scheme, kind.as_str(), kind.as_str()),
        }
    }

    /// The HTTP status code: 400, 401, 403 or 503.
    pub fn status(&self) -> u16 {
        self.0.status
    }

    /// The RFC 6750 error code, when the status has one.
    pub fn error(&self) -> Option<&'static str> {
        self.0.error
    }

    /// A description safe to send to the client.
    pub fn description(&self) -> &str {
        &self.0.description
    }

    /// The stable reason, for logs and metrics.
    pub fn kind(&self) -> &'static str {
        self.0.kind
    }

    /// The (first) scheme challenged.
    pub fn scheme(&self) -> Scheme {
        self.0.schemes.first().copied().unwrap_or(Scheme::Bearer)
    }

    /// Every scheme challenged.
    pub fn schemes(&self) -> &[Scheme] {
        &self.0.schemes
    }

    /// For 403 `insufficient_scope` on scopes: those lacking.
    pub fn scope(&self) -> Option<&str> {
        self.0.scope.as_deref()
    }

    /// `Retry-After` in seconds, for 503.
    pub fn retry_after(&self) -> Option<u32> {
        self.0.retry_after
    }

    /// The `WWW-Authenticate` values, one per scheme (none for 503).
    /// Quotes and backslashes are dropped from `realm`.
    pub fn challenges(&self, realm: &str) -> Vec<String> {
        if self.0.status == 503 {
            return Vec::new();
        }
        let realm = header_safe(realm);
        self.0
            .schemes
            .iter()
            .map(|s| {
                let mut c = format!("{} realm=\"{realm}\"", s.name());
                if let Some(error) = self.0.error {
                    c.push_str(&format!(", error=\"{error}\""));
                    match &self.0.scope {
                        Some(scope) => c.push_str(&format!(", scope=\"{scope}\"")),
                        None => c.push_str(&format!(
                            ", error_description=\"{}\"",
                            header_safe(&self.0.description)
                        )),
                    }
                }
                if let (Scheme::DPoP, Some(algs)) = (s, &self.0.dpop_algs) {
                    c.push_str(&format!(", algs=\"{}\"", header_safe(algs)));
                }
                c
            })
            .collect()
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.0.kind, self.0.status)
    }
}

impl std::error::Error for Refusal {}

/// Keeps only characters a quoted header parameter may carry as-is.
pub(crate) fn header_safe(s: &str) -> String {
    s.chars()
        .filter(|c| (' '..='~').contains(c) && *c != '"' && *c != '\\')
        .collect()
}
