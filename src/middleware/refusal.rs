//! Shaping refusals: what an [`on_refusal`](BearerAuth::on_refusal) hook
//! sees ([`Refusal`]) and returns ([`RefusalBody`]), the RFC 9457
//! `application/problem+json` shape built in, and the `Retry-After` of a 503.
//!
//! The hook shapes the body only. Status, `WWW-Authenticate` (RFC 6750 §3)
//! and `Retry-After` are the layer's: a hook can neither remove nor rewrite
//! them, so a client's view of the challenge does not depend on the hook.
//! gRPC refusals (HTTP 200 with `grpc-status`) are never shaped: a gRPC
//! client would read a body as a message.

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use super::{Answer, AuthRejection, BearerAuth, ScopedClaims};

/// `Retry-After` of a 503 while no keys are usable, unless set with
/// [`BearerAuth::retry_after`]: long enough for a first key fetch to finish
/// or time out (the remote key set's default timeout is 5 s).
pub const DEFAULT_RETRY_AFTER: Duration = Duration::from_secs(5);

/// Bounds of [`BearerAuth::retry_after`]: at least 1 s, so clients do not
/// spin, at most 5 minutes, the longest back-off of a remote key set.
pub const RETRY_AFTER_BOUNDS: (Duration, Duration) =
    (Duration::from_secs(1), Duration::from_secs(300));

/// A refusal, as an [`on_refusal`](BearerAuth::on_refusal) hook sees it.
///
/// Everything here is safe to send to the client: fixed texts, the route's
/// configured scope and requirement names, and the stable error kind, never
/// the token or a claim value. The full [`Error`](crate::Error) (with the
/// audiences or issuers compared) is reachable through
/// [`rejection`](Self::rejection)'s `source()`, for logs rather than bodies.
#[derive(Debug, Clone, Copy)]
pub struct Refusal<'a> {
    rejection: &'a AuthRejection,
    realm: &'a str,
    retry_after: Option<u64>,
}

impl<'a> Refusal<'a> {
    /// The HTTP status the response has (400, 401, 403, 500 or 503).
    pub fn status(&self) -> u16 {
        self.rejection.status()
    }

    /// The RFC 6750 §3.1 error code: `invalid_request`, `invalid_token` or
    /// `insufficient_scope`; `None` for a missing token, 500 and 503.
    pub fn error(&self) -> Option<&'static str> {
        match self.rejection {
            AuthRejection::InvalidRequest(_) => Some("invalid_request"),
            AuthRejection::InvalidToken(_) => Some("invalid_token"),
            AuthRejection::InsufficientScope { .. } | AuthRejection::Forbidden { .. } => {
                Some("insufficient_scope")
            }
            AuthRejection::Missing
            | AuthRejection::KeysUnavailable(_)
            | AuthRejection::NotConfigured
            | AuthRejection::InternalTokenFailed { .. } => None,
            AuthRejection::Chain(r) => r.error(),
        }
    }

    /// The stable reason: an [`ErrorKind`](crate::ErrorKind) name for a
    /// refused token, else `missing_token`, `invalid_request`,
    /// `insufficient_scope`, `keys_unavailable`, `not_configured` or
    /// `internal_token_failed`.
    pub fn reason(&self) -> &'static str {
        self.rejection.reason()
    }

    /// A short sentence saying why, safe to send to the client.
    pub fn description(&self) -> Cow<'static, str> {
        match self.rejection {
            AuthRejection::Missing => "A bearer token is required.".into(),
            AuthRejection::InvalidRequest(why) => Cow::Borrowed(why),
            AuthRejection::InvalidToken(e) => {
                format!("The bearer token was refused: {}.", e.kind()).into()
            }
            AuthRejection::InsufficientScope { scope } => {
                format!("The token lacks the scope {scope}.").into()
            }
            AuthRejection::Forbidden { requirement } => {
                format!("The token does not meet the requirement {requirement}.").into()
            }
            AuthRejection::KeysUnavailable(_) => {
                "The keys that verify tokens are not available yet; retry later.".into()
            }
            AuthRejection::NotConfigured => "Authentication is misconfigured on the server.".into(),
            AuthRejection::InternalTokenFailed { .. } => {
                "The server could not issue the internal token.".into()
            }
            AuthRejection::Chain(r) => match (r.status(), r.scope()) {
                (401, _) if r.error().is_none() => "A credential is required.".into(),
                (_, Some(scope)) => format!("The credential lacks the scope {scope}.").into(),
                (503, _) => "The credential cannot be checked now; retry later.".into(),
                _ => format!("The credential was refused: {}.", r.description()).into(),
            },
        }
    }

    /// The realm named in the challenge.
    pub fn realm(&self) -> &'a str {
        self.realm
    }

    /// The `Retry-After` seconds the response carries (503 only).
    pub fn retry_after(&self) -> Option<u64> {
        self.retry_after
    }

    /// The refusal itself; its `source()` is the [`Error`](crate::Error)
    /// that refused the token, where there is one.
    pub fn rejection(&self) -> &'a AuthRejection {
        self.rejection
    }
}

/// The body of a refusal, as an [`on_refusal`](BearerAuth::on_refusal) hook
/// shapes it: a content type, bytes, and headers to add.
///
/// Added headers never replace the layer's own: `WWW-Authenticate`,
/// `Retry-After`, `Content-Type`, `Content-Length`, `Transfer-Encoding` and
/// `Connection` given here are dropped, as are names or values that are not
/// valid header text.
///
/// ```
/// use tokenwarden::middleware::RefusalBody;
///
/// let body = RefusalBody::new("text/plain; charset=utf-8", "no entry\n")
///     .header("x-trace-hint", "see the auth logs");
/// assert_eq!(body.body(), b"no entry\n");
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RefusalBody {
    content_type: Option<String>,
    body: Vec<u8>,
    headers: Vec<(String, String)>,
}

impl RefusalBody {
    /// An empty body with no content type: what RFC 6750 needs, the header
    /// says it all.
    pub fn empty() -> Self {
        RefusalBody::default()
    }

    /// `body` with its `content_type`.
    pub fn new(content_type: impl Into<String>, body: impl Into<Vec<u8>>) -> Self {
        RefusalBody {
            content_type: Some(content_type.into()),
            body: body.into(),
            headers: Vec::new(),
        }
    }

    /// Adds a response header (see the type's docs for what is dropped).
    #[must_use]
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// An RFC 9457 problem details object (`application/problem+json`):
    /// `type` (`about:blank`), `title` (the status's reason phrase, as
    /// §4.2.1 asks for `about:blank`), `status`, `detail`
    /// ([`Refusal::description`]), and the extension members `error` (the
    /// RFC 6750 code, when there is one), `reason` (the stable kind) and,
    /// for a missing scope, `scope`.
    ///
    /// ```
    /// use tokenwarden::middleware::{BearerAuth, RefusalBody};
    /// # use tokenwarden::{KeySet, Validator};
    /// # let validator = Validator::builder().issuer("i").audience("a")
    /// #     .keys(KeySet::from_jwks(include_bytes!("../../examples/data/jwks.json")).unwrap()).build().unwrap();
    /// // The one-call option:
    /// let auth = BearerAuth::new(validator.clone()).problem_json();
    /// // Or the same, extended, in a hook of your own:
    /// let auth = BearerAuth::new(validator).on_refusal(|r| {
    ///     RefusalBody::problem_json(r).header("x-request-help", "https://example.com/auth")
    /// });
    /// # let _ = auth;
    /// ```
    pub fn problem_json(refusal: &Refusal<'_>) -> Self {
        let status = refusal.status();
        let mut doc = serde_json::Map::new();
        doc.insert("type".into(), "about:blank".into());
        doc.insert("title".into(), reason_phrase(status).into());
        doc.insert("status".into(), status.into());
        doc.insert("detail".into(), refusal.description().into_owned().into());
        if let Some(error) = refusal.error() {
            doc.insert("error".into(), error.into());
        }
        doc.insert("reason".into(), refusal.reason().into());
        match refusal.rejection() {
            AuthRejection::InsufficientScope { scope } => {
                doc.insert("scope".into(), scope.as_str().into());
            }
            AuthRejection::Chain(r) => {
                if let Some(scope) = r.scope() {
                    doc.insert("scope".into(), scope.into());
                }
            }
            _ => {}
        }
        RefusalBody::new(
            "application/problem+json",
            serde_json::Value::Object(doc).to_string(),
        )
    }

    /// The content type, if any.
    pub fn content_type(&self) -> Option<&str> {
        self.content_type.as_deref()
    }

    /// The body bytes.
    pub fn body(&self) -> &[u8] {
        &self.body
    }

    /// The headers to add.
    pub fn headers(&self) -> &[(String, String)] {
        &self.headers
    }
}

/// The reason phrase of the statuses a refusal can have (RFC 9110 §15).
fn reason_phrase(status: u16) -> &'static str {
    match status {
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        503 => "Service Unavailable",
        _ => "Internal Server Error",
    }
}

type HookFn = dyn Fn(&Refusal<'_>) -> RefusalBody + Send + Sync;

/// A configured [`on_refusal`](BearerAuth::on_refusal) hook: one type for
/// every framework.
#[derive(Clone)]
pub(crate) struct Hook(Arc<HookFn>);

impl fmt::Debug for Hook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Hook")
    }
}

impl PartialEq for Hook {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

/// How refusals are shaped: the hook and the 503's `Retry-After`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Shape {
    pub(crate) hook: Option<Hook>,
    pub(crate) retry_after: u64,
}

impl Default for Shape {
    fn default() -> Self {
        Shape {
            hook: None,
            retry_after: DEFAULT_RETRY_AFTER.as_secs(),
        }
    }
}

/// Headers a hook may not set: the layer's own, and framing.
const PROTECTED: [&str; 7] = [
    "www-authenticate",
    "dpop-nonce",
    "retry-after",
    "content-type",
    "content-length",
    "transfer-encoding",
    "connection",
];

impl Shape {
    /// The answer to `r`: status and challenge from RFC 6750, then the body
    /// (the hook's, or the default: empty, a short text for a 503), and a
    /// 503's `Retry-After`. gRPC answers stay as they are.
    pub(crate) fn answer(&self, r: &AuthRejection, realm: &str, grpc: bool) -> Answer {
        let mut answer = r.answer(realm, grpc);
        if grpc {
            return answer;
        }
        // The layer's `Retry-After`, for a chain's 503 too (whichever
        // authenticator could not judge the credential).
        let unavailable = match r {
            AuthRejection::KeysUnavailable(_) => true,
            AuthRejection::Chain(c) => c.status() == 503,
            _ => false,
        };
        let retry_after = unavailable.then_some(self.retry_after);
        if let Some(secs) = retry_after {
            // RFC 9110 §10.2.3: delay-seconds.
            answer.headers.push(("retry-after", secs.to_string()));
        }
        let refusal = Refusal {
            rejection: r,
            realm,
            retry_after,
        };
        let shaped = match &self.hook {
            Some(hook) => (hook.0)(&refusal),
            None if retry_after.is_some() => RefusalBody::new(
                "text/plain; charset=utf-8",
                format!("{}\n", refusal.description()),
            ),
            None => RefusalBody::empty(),
        };
        if let Some(ct) = shaped.content_type {
            answer.headers.push(("content-type", ct));
        }
        answer.extra = shaped
            .headers
            .into_iter()
            .filter(|(name, _)| {
                !PROTECTED.iter().any(|p| p.eq_ignore_ascii_case(name))
                    && !answer
                        .headers
                        .iter()
                        .any(|(n, _)| n.eq_ignore_ascii_case(name))
            })
            .collect();
        answer.body = shaped.body;
        answer
    }
}

/// Shaping refusals (see [`Refusal`] and [`RefusalBody`]).
impl<C: ScopedClaims> BearerAuth<C> {
    /// Shapes the body of every refusal this configuration answers (and of
    /// the `Claims` extractors' refusals behind it): `hook` gets the
    /// [`Refusal`] and returns a [`RefusalBody`]. The status,
    /// `WWW-Authenticate` (RFC 6750 §3) and `Retry-After` stay the layer's
    /// whatever the hook returns; gRPC refusals are not shaped. The same
    /// hook serves the tower/axum layer and the actix middleware.
    ///
    /// ```
    /// use tokenwarden::middleware::{BearerAuth, RefusalBody};
    /// # use tokenwarden::{KeySet, Validator};
    /// # let validator = Validator::builder().issuer("i").audience("a")
    /// #     .keys(KeySet::from_jwks(include_bytes!("../../examples/data/jwks.json")).unwrap()).build().unwrap();
    /// let auth = BearerAuth::new(validator).on_refusal(|r| {
    ///     let text = format!(r#"{{"code":{},"why":"{}"}}"#, r.status(), r.reason());
    ///     RefusalBody::new("application/json", text)
    /// });
    /// # let _ = auth;
    /// ```
    #[must_use]
    pub fn on_refusal<F>(self, hook: F) -> Self
    where
        F: Fn(&Refusal<'_>) -> RefusalBody + Send + Sync + 'static,
    {
        let hook = Hook(Arc::new(hook));
        self.with(|c| c.shape.hook = Some(hook))
    }

    /// Answers refusals with RFC 9457 problem details
    /// ([`RefusalBody::problem_json`]): the one-call
    /// [`on_refusal`](Self::on_refusal).
    #[must_use]
    pub fn problem_json(self) -> Self {
        self.on_refusal(RefusalBody::problem_json)
    }

    /// The `Retry-After` of a 503 answered while no keys are usable;
    /// [`DEFAULT_RETRY_AFTER`] unless set, rounded to whole seconds and kept
    /// within [`RETRY_AFTER_BOUNDS`].
    #[must_use]
    pub fn retry_after(self, delay: Duration) -> Self {
        let (min, max) = RETRY_AFTER_BOUNDS;
        let secs = delay.clamp(min, max).as_secs();
        self.with(|c| c.shape.retry_after = secs)
    }
}
