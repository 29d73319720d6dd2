//! Why a request was refused ([`AuthRejection`], RFC 6750 §3) and why a
//! `Claims` extractor refused ([`ClaimsRejection`]).

use std::fmt;
#[cfg(any(feature = "axum", feature = "actix"))]
use std::sync::Arc;

use super::Answer;
#[cfg(any(feature = "axum", feature = "actix"))]
use super::{
    Anonymous, log_limit, log_refusal,
    refusal::{Hook, Shape},
    typed,
};
use crate::error::{Error, ErrorKind};

/// Why a `Claims` extractor refused, answered with the realm (and gRPC
/// mapping) of the layer that let the request through: 401 when that layer
/// allowed an anonymous request, 500 (logged) when no layer ran at all.
#[cfg(any(feature = "axum", feature = "actix"))]
#[cfg_attr(docsrs, doc(cfg(any(feature = "axum", feature = "actix"))))]
#[derive(Debug, Clone, PartialEq)]
pub struct ClaimsRejection {
    rejection: AuthRejection,
    realm: Option<Arc<str>>,
    grpc: bool,
    /// The layer's `on_refusal` hook, when a layer let the request through.
    hook: Option<Hook>,
    /// A short explanation for the response body (500s only).
    body: Option<&'static str>,
}

#[cfg(any(feature = "axum", feature = "actix"))]
impl ClaimsRejection {
    /// The refusal for a request no layer recorded claims for: `Missing`
    /// behind an anonymous-allowing layer, `NotConfigured` (logged as an
    /// error: a wiring mistake) when no layer ran.
    pub(crate) fn without_claims<C>(anonymous: Option<&Anonymous>) -> Self {
        match anonymous {
            Some(a) => {
                let rejection = AuthRejection::Missing;
                log_refusal(&rejection, log_limit::refusals());
                ClaimsRejection {
                    rejection,
                    realm: Some(a.realm.clone()),
                    grpc: a.grpc,
                    hook: a.hook.clone(),
                    body: None,
                }
            }
            None => {
                typed::no_layer::<C>();
                ClaimsRejection::internal(None)
            }
        }
    }

    /// A 500: a wiring mistake the server logged; `body`, if any, says what
    /// kind in a few words (no type names, no claims).
    pub(crate) fn internal(body: Option<&'static str>) -> Self {
        ClaimsRejection {
            rejection: AuthRejection::NotConfigured,
            realm: None,
            grpc: false,
            hook: None,
            body,
        }
    }

    /// The refusal.
    pub fn rejection(&self) -> &AuthRejection {
        &self.rejection
    }

    /// The HTTP status code (as [`AuthRejection::status`]).
    pub fn status(&self) -> u16 {
        self.rejection.status()
    }

    /// Status, headers and body, with the layer's realm and hook.
    pub(crate) fn answer(&self) -> Answer {
        if let Some(body) = self.body {
            // A wiring mistake: a plain 500 saying which kind, no challenge.
            return Answer {
                status: self.status(),
                headers: vec![("content-type", "text/plain; charset=utf-8".into())],
                extra: Vec::new(),
                body: body.as_bytes().to_vec(),
            };
        }
        let shape = Shape {
            hook: self.hook.clone(),
            ..Shape::default()
        };
        shape.answer(
            &self.rejection,
            self.realm.as_deref().unwrap_or("api"),
            self.grpc,
        )
    }
}

#[cfg(any(feature = "axum", feature = "actix"))]
impl fmt::Display for ClaimsRejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.rejection.fmt(f)
    }
}

#[cfg(any(feature = "axum", feature = "actix"))]
impl std::error::Error for ClaimsRejection {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.rejection)
    }
}

/// Why a request was refused, with the status and challenge RFC 6750 §3
/// prescribes. Never carries the token.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum AuthRejection {
    /// No token: 401 with a bare `Bearer realm="…"` challenge (RFC 6750 §3.1).
    Missing,
    /// Malformed credentials (several headers, several tokens): 400 `invalid_request`.
    InvalidRequest(&'static str),
    /// The token was refused: 401 `invalid_token`, the error kind as
    /// description. The [`Error`] is the refusal's `source()`.
    InvalidToken(Error),
    /// The token lacks scopes: 403 `insufficient_scope` naming them.
    InsufficientScope {
        /// The scopes required, space-separated.
        scope: String,
    },
    /// The token lacks a required role or fails a custom requirement: 403
    /// `insufficient_scope`, the requirement as description.
    Forbidden {
        /// What was required (a role list or the requirement's name).
        requirement: String,
    },
    /// No usable keys: 503 with `Retry-After`; the client did nothing
    /// wrong. The [`Error`] is the refusal's `source()`.
    KeysUnavailable(Error),
    /// The route expects claims but no [`BearerAuthLayer`](super::BearerAuthLayer) put them there: 500.
    NotConfigured,
    /// A [`Chain`](crate::authn::Chain)'s refusal (from
    /// [`BearerAuth::from_chain`](super::BearerAuth::from_chain)): its status, its kind as reason, one
    /// challenge per scheme it names (`Bearer`, `ApiKey`, …), in the
    /// layer's realm.
    Chain(Box<crate::authn::Refusal>),
    /// The internal token ([`BearerAuth::internal_token`](super::BearerAuth::internal_token), feature `mint`)
    /// could not be minted for a request that passed: 500
    /// `internal_token_failed`, never a pass without it.
    InternalTokenFailed {
        /// Why, as a stable kind ([`MintError::kind`](crate::mint::MintError::kind)
        /// or `no_principal`).
        kind: &'static str,
    },
}

impl AuthRejection {
    pub(super) fn from_error(e: Error) -> Self {
        match e.kind() {
            ErrorKind::KeysUnavailable => AuthRejection::KeysUnavailable(e),
            _ => AuthRejection::InvalidToken(e),
        }
    }

    /// The error that refused the token, if a token was judged.
    pub fn error(&self) -> Option<&Error> {
        match self {
            AuthRejection::InvalidToken(e) | AuthRejection::KeysUnavailable(e) => Some(e),
            _ => None,
        }
    }

    /// The HTTP status code.
    pub fn status(&self) -> u16 {
        match self {
            AuthRejection::Missing | AuthRejection::InvalidToken(_) => 401,
            AuthRejection::InvalidRequest(_) => 400,
            AuthRejection::InsufficientScope { .. } | AuthRejection::Forbidden { .. } => 403,
            AuthRejection::KeysUnavailable(_) => 503,
            AuthRejection::NotConfigured | AuthRejection::InternalTokenFailed { .. } => 500,
            AuthRejection::Chain(r) => r.status(),
        }
    }

    /// A short, stable reason for logs and metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            AuthRejection::Missing => "missing_token",
            AuthRejection::InvalidRequest(_) => "invalid_request",
            AuthRejection::InvalidToken(e) => e.kind().as_str(),
            AuthRejection::InsufficientScope { .. } | AuthRejection::Forbidden { .. } => {
                "insufficient_scope"
            }
            AuthRejection::KeysUnavailable(_) => "keys_unavailable",
            AuthRejection::NotConfigured => "not_configured",
            AuthRejection::InternalTokenFailed { .. } => "internal_token_failed",
            AuthRejection::Chain(r) => r.kind(),
        }
    }

    /// The `WWW-Authenticate` challenge, if the status calls for one (the
    /// first, for a chain's refusal naming several schemes: see
    /// [`challenges`](Self::challenges)).
    pub fn challenge(&self, realm: &str) -> Option<String> {
        self.challenges(realm).into_iter().next()
    }

    /// Every `WWW-Authenticate` challenge, one per scheme: one for a bearer
    /// refusal, every scheme of a chain for a request with no credential
    /// (RFC 9110 §11.6.1), none for 500 and 503.
    pub fn challenges(&self, realm: &str) -> Vec<String> {
        if let AuthRejection::Chain(r) = self {
            return r.challenges(realm);
        }
        self.bearer_challenge(realm).into_iter().collect()
    }

    fn bearer_challenge(&self, realm: &str) -> Option<String> {
        match self {
            AuthRejection::Missing => Some(format!("Bearer realm=\"{realm}\"")),
            AuthRejection::InvalidRequest(why) => Some(format!(
                "Bearer realm=\"{realm}\", error=\"invalid_request\", error_description=\"{why}\""
            )),
            AuthRejection::InvalidToken(e) => Some(format!(
                "Bearer realm=\"{realm}\", error=\"invalid_token\", error_description=\"{}\"",
                e.kind()
            )),
            AuthRejection::InsufficientScope { scope } => Some(format!(
                "Bearer realm=\"{realm}\", error=\"insufficient_scope\", scope=\"{scope}\""
            )),
            AuthRejection::Forbidden { requirement } => Some(format!(
                "Bearer realm=\"{realm}\", error=\"insufficient_scope\", error_description=\"requires {requirement}\""
            )),
            AuthRejection::KeysUnavailable(_)
            | AuthRejection::NotConfigured
            | AuthRejection::InternalTokenFailed { .. }
            | AuthRejection::Chain(_) => None,
        }
    }

    /// The gRPC status code for the same refusal.
    fn grpc_status(&self) -> &'static str {
        match self {
            AuthRejection::Missing | AuthRejection::InvalidToken(_) => "16", // UNAUTHENTICATED
            AuthRejection::InsufficientScope { .. } | AuthRejection::Forbidden { .. } => "7", // PERMISSION_DENIED
            AuthRejection::InvalidRequest(_) => "3", // INVALID_ARGUMENT
            AuthRejection::KeysUnavailable(_) => "14", // UNAVAILABLE
            AuthRejection::NotConfigured | AuthRejection::InternalTokenFailed { .. } => "13", // INTERNAL
            AuthRejection::Chain(r) => match r.status() {
                400 => "3",
                401 => "16",
                403 => "7",
                503 => "14",
                _ => "13",
            },
        }
    }

    /// Status and headers: the challenge, and for gRPC requests (HTTP/2
    /// only, see [`is_grpc`]) a 200 with `grpc-status`, as gRPC clients
    /// expect.
    pub(crate) fn answer(&self, realm: &str, grpc: bool) -> Answer {
        let mut headers = Vec::with_capacity(3);
        for challenge in self.challenges(realm) {
            headers.push(("www-authenticate", challenge));
        }
        // RFC 9449 §8: `use_dpop_nonce` comes with the nonce to use.
        if let AuthRejection::Chain(r) = self {
            if let Some(nonce) = r.dpop_nonce() {
                headers.push(("dpop-nonce", nonce.to_owned()));
            }
        }
        let status = if grpc {
            headers.push(("content-type", "application/grpc".into()));
            headers.push(("grpc-status", self.grpc_status().into()));
            headers.push(("grpc-message", self.reason().into()));
            200
        } else {
            self.status()
        };
        Answer {
            status,
            headers,
            ..Answer::default()
        }
    }
}

impl fmt::Display for AuthRejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.reason(), self.status())
    }
}

/// The [`Error`] that refused the token, for a refused token or unusable
/// keys; none for refusals decided before or after validation.
impl std::error::Error for AuthRejection {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.error().map(|e| e as _)
    }
}
