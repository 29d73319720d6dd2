//! `[mtls]`: client certificates forwarded by the gateway that terminates
//! TLS (RFC 8705 behind a proxy): certificate-bound tokens held to them,
//! and (with an allow-list) certificates as service identity.
//!
//! The sidecar never terminates TLS: it reads the certificate from the
//! gateway's header only when `from_gateway = true` says that gateway
//! verifies client certificates and sets the header on every request
//! (replacing whatever the client sent). Without `[mtls]` no header is
//! ever read as a certificate, so a client that sends one binds nothing.

use std::ops::Range;

use serde::Deserialize;
use tokenwarden::authn::RequestView;
use tokenwarden::authn::jwt::JwtAuthenticator;
use tokenwarden::authn::mtls::forwarded::{self, Format, ForwardedError};
use tokenwarden::authn::mtls::{CertificateBinding, MtlsAuthenticator, PeerCertificate};
use toml::Spanned;

use crate::config::ConfigError;

/// `[mtls]` as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MtlsFile {
    from_gateway: Option<Spanned<bool>>,
    header: Option<Spanned<String>>,
    format: Option<Spanned<String>>,
    #[serde(default)]
    require_bound_tokens: bool,
    #[serde(default)]
    allow: Vec<String>,
    #[serde(default)]
    allow_trust_domains: Vec<String>,
}

/// The checked `[mtls]`.
#[derive(Debug, Clone)]
pub struct Mtls {
    /// The lowercase name of the header the gateway writes the certificate to.
    pub header: String,
    pub format: Format,
    /// Plain bearer tokens refused: only certificate-bound ones pass.
    pub require_bound_tokens: bool,
    /// Certificates as identity (requests without a token), when an
    /// allow-list is given.
    pub identity: Option<MtlsAuthenticator>,
}

impl Mtls {
    /// The JWT authenticator with this section's binding rule.
    pub fn jwt(&self, jwt: JwtAuthenticator) -> JwtAuthenticator {
        jwt.certificate_binding(if self.require_bound_tokens {
            CertificateBinding::Required
        } else {
            CertificateBinding::WhenBound
        })
    }

    /// The forwarded certificate: `Ok(None)` when the gateway says there is
    /// none (an absent or empty header).
    pub fn certificate(
        &self,
        headers: &http::HeaderMap,
    ) -> Result<Option<PeerCertificate>, ForwardedError> {
        let mut values = headers.get_all(self.header.as_str()).iter();
        let Some(first) = values.next() else {
            return Ok(None);
        };
        // The gateway sets one; two mean something else added one.
        if values.next().is_some() {
            return Err(ForwardedError::Malformed);
        }
        forwarded::certificate(self.format, first.as_bytes())
    }
}

/// The request's view with the forwarded certificate, if any.
pub fn view<'a>(view: RequestView<'a>, cert: Option<&'a PeerCertificate>) -> RequestView<'a> {
    match cert {
        Some(c) => view.peer_certificate(c.der()),
        None => view,
    }
}

/// Checks `[mtls]`: `from_gateway = true` (the sidecar cannot see a TLS
/// session, so only a gateway's header can carry the certificate), a
/// header name, a format of `nginx` or `envoy`.
pub fn check(
    f: &MtlsFile,
    at: &dyn Fn(Range<usize>, &str, &str) -> ConfigError,
) -> Result<Mtls, ConfigError> {
    if !f.from_gateway.as_ref().is_some_and(|g| *g.get_ref()) {
        return Err(at(
            f.from_gateway.as_ref().map_or(0..0, Spanned::span),
            "mtls.from_gateway",
            "must be true: the sidecar does not terminate TLS, so it reads client certificates only from the header of a gateway that verifies them and sets the header on every request",
        ));
    }
    let format = match &f.format {
        None => Format::Nginx,
        Some(s) => match s.get_ref().as_str() {
            "nginx" => Format::Nginx,
            "envoy" => Format::Envoy,
            _ => {
                return Err(at(
                    s.span(),
                    "mtls.format",
                    "must be \"nginx\" or \"envoy\"",
                ));
            }
        },
    };
    let header = match (&f.header, format) {
        (Some(h), _) => {
            let name = h.get_ref();
            if http::HeaderName::from_bytes(name.as_bytes()).is_err() {
                return Err(at(h.span(), "mtls.header", "is not a header name"));
            }
            name.to_ascii_lowercase()
        }
        (None, Format::Envoy) => "x-forwarded-client-cert".to_owned(),
        (None, _) => "x-client-cert".to_owned(),
    };
    let identity = if f.allow.is_empty() && f.allow_trust_domains.is_empty() {
        None
    } else {
        let mut a = MtlsAuthenticator::new();
        for s in &f.allow {
            a = a.allow(s);
        }
        for d in &f.allow_trust_domains {
            a = a.allow_trust_domain(d);
        }
        Some(a)
    };
    Ok(Mtls {
        header,
        format,
        require_bound_tokens: f.require_bound_tokens,
        identity,
    })
}
