//! What a layer tells operators about each request: one `tracing` span
//! (`bearer_auth`, fields `sub`, `iss` once known, `verdict`), and the
//! verdict counter of the `metrics` feature.
//!
//! Never the token. `sub` and `iss` are printed escaped and shortened (they
//! come from a token that passed, but its issuer may still put anything
//! there).

use tracing::Span;
use tracing::field::{Empty, display};

use super::{AuthRejection, ScopedClaims};
use crate::error::Shown;
use crate::validator::Validated;

/// The span of one request through a layer.
pub(crate) fn request_span() -> Span {
    tracing::info_span!("bearer_auth", sub = Empty, iss = Empty, verdict = Empty)
}

/// A token passed: its subject and issuer join the span.
pub(crate) fn allowed<C: ScopedClaims>(span: &Span, v: &Validated<C>) {
    if !span.is_disabled() {
        if let Some(sub) = v.claims.subject() {
            span.record("sub", display(Shown(sub)));
        }
        if let Some(iss) = v.claims.issuer() {
            span.record("iss", display(Shown(iss)));
        }
    }
    verdict(span, "ok");
}

/// A chain's principal passed: its subject (and a JWT's issuer) join the
/// span.
pub(crate) fn principal(span: &Span, p: &crate::authn::Principal) {
    if !span.is_disabled() {
        span.record("sub", display(Shown(p.subject())));
        if let Some(iss) = p.claims().get("iss").and_then(serde_json::Value::as_str) {
            span.record("iss", display(Shown(iss)));
        }
    }
    verdict(span, "ok");
}

/// No token, and the layer lets that through.
pub(crate) fn anonymous(span: &Span) {
    verdict(span, "anonymous");
}

/// A refusal, on the span of the request being answered.
pub(crate) fn refused(r: &AuthRejection) {
    verdict(&Span::current(), r.reason());
}

fn verdict(span: &Span, label: &'static str) {
    span.record("verdict", label);
    crate::metrics::verdict(label);
}
