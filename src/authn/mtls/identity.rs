//! [`MtlsAuthenticator`]: the verified client certificate as a [`Principal`].

use std::fmt;
use std::sync::Arc;

use serde_json::json;
use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::FromDer;

use super::{MAX_CERTIFICATE_SIZE, X5T_S256, thumbprint};
use crate::authn::{Authenticator, BoxFuture, Principal, Refusal, RequestView, Scheme, Verdict};

/// The scheme an mTLS refusal names (no HTTP scheme exists for a TLS
/// client certificate; the challenge tells the client what was expected).
const SCHEME: Scheme = Scheme::Other("mTLS");

/// Where the principal's subject is read from, in the order configured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum SubjectSource {
    /// The URI SAN, e.g. a SPIFFE ID `spiffe://example.org/ns/shop/sa/orders`.
    /// A certificate with several URI SANs is refused (an X.509 SVID has
    /// exactly one: SPIFFE X.509-SVID §2).
    Uri,
    /// A DNS SAN: the first one the allow-list permits.
    Dns,
    /// The subject DN as an RFC 4514 string (`CN=orders,O=Shop`: RDNs last
    /// to first, values escaped as §2.4 says, so a CN of `a,O=Admin` reads
    /// `CN=a\,O\=Admin` and never as two RDNs).
    SubjectDn,
}

/// Why a peer certificate could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CertificateError {
    /// Not one DER X.509 certificate (or larger than
    /// [`MAX_CERTIFICATE_SIZE`]).
    NotACertificate,
    /// Its subject alternative names do not parse, or there are two SAN
    /// extensions.
    BadNames,
}

impl fmt::Display for CertificateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CertificateError::NotACertificate => "not a DER X.509 certificate",
            CertificateError::BadNames => "the subject alternative names do not parse",
        })
    }
}

impl std::error::Error for CertificateError {}

/// Which kind of name an allow-list entry matches: a URI SAN, a DNS SAN or
/// the subject DN, never another (a DNS SAN spelt like a SPIFFE ID does
/// not match a URI entry).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NameKind {
    Uri,
    Dns,
    Dn,
}

impl NameKind {
    /// The kind a name's shape says: a URI has a scheme (RFC 3986 §3.1)
    /// before any `=`; else a DN has an `=`; else a DNS name.
    fn of(name: &str) -> NameKind {
        let eq = name.find('=');
        if let Some(colon) = name.find(':') {
            let scheme = &name[..colon];
            let is_scheme = scheme
                .bytes()
                .next()
                .is_some_and(|b| b.is_ascii_alphabetic())
                && scheme
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'));
            if is_scheme && eq.is_none_or(|e| colon < e) {
                return NameKind::Uri;
            }
        }
        if eq.is_some() {
            NameKind::Dn
        } else {
            NameKind::Dns
        }
    }
}

/// One allow-list entry.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Allowed {
    /// This exact name, of this kind.
    Exact(NameKind, Box<str>),
    /// Any SPIFFE ID of this trust domain: `spiffe://<domain>/` then a path.
    TrustDomain(Box<str>),
}

/// Client certificates as service identity: the certificate the TLS server
/// verified (a [`PeerCertificate`](super::PeerCertificate) in the request)
/// becomes a [`Principal`] named `"mtls"`, whose subject is the SPIFFE ID
/// (URI SAN), else a DNS SAN, else the subject DN (the order is
/// [`subject_from`](Self::subject_from)'s), whose confirmation is
/// `{"x5t#S256": thumbprint}` and whose expiry is the certificate's
/// `notAfter`.
///
/// Only subjects an allow-list entry permits pass: exact names
/// ([`allow`](Self::allow)) or every SPIFFE ID of a trust domain
/// ([`allow_trust_domain`](Self::allow_trust_domain)); with none, every
/// certificate is refused (`certificate_not_allowed`, 401). Per route,
/// require more of the principal with a [`Requirements`](crate::Requirements)
/// predicate using another authenticator's [`permits`](Self::permits).
///
/// It recognises a request that has a peer certificate and no
/// `Authorization` header: a bearer token sent over mutual TLS is the
/// JWT authenticator's (and its binding is checked there), so a chain of
/// both takes either without a "two credentials" refusal.
///
/// This reads names; it verifies nothing: the TLS server (rustls's
/// `WebPkiClientVerifier`, or the gateway) must have verified the chain.
///
/// ```
/// use tokenwarden::authn::{Chain, mtls::{MtlsAuthenticator, SubjectSource}};
///
/// let mtls = MtlsAuthenticator::new()
///     .allow_trust_domain("spiffe://shop.example")
///     .allow("billing.internal.example")
///     .subject_from([SubjectSource::Uri, SubjectSource::Dns]);
/// let chain = Chain::new().with_authenticator(mtls);
/// # let _ = chain;
/// ```
#[derive(Debug, Clone)]
pub struct MtlsAuthenticator {
    inner: Arc<Config>,
}

#[derive(Debug, Clone)]
struct Config {
    sources: Vec<SubjectSource>,
    allowed: Vec<Allowed>,
}

impl Default for MtlsAuthenticator {
    fn default() -> Self {
        MtlsAuthenticator::new()
    }
}

impl MtlsAuthenticator {
    /// Subjects from the URI SAN, else a DNS SAN, else the subject DN; an
    /// empty allow-list (nothing passes until entries are added).
    pub fn new() -> MtlsAuthenticator {
        MtlsAuthenticator {
            inner: Arc::new(Config {
                sources: vec![
                    SubjectSource::Uri,
                    SubjectSource::Dns,
                    SubjectSource::SubjectDn,
                ],
                allowed: Vec::new(),
            }),
        }
    }

    fn with(mut self, f: impl FnOnce(&mut Config)) -> Self {
        f(Arc::make_mut(&mut self.inner));
        self
    }

    /// Where the subject is read from, in order (replacing the default).
    #[must_use]
    pub fn subject_from(self, sources: impl IntoIterator<Item = SubjectSource>) -> Self {
        let sources: Vec<SubjectSource> = sources.into_iter().collect();
        self.with(|c| c.sources = sources)
    }

    /// Allows this exact subject, of the kind its shape says: a URI (a
    /// SPIFFE ID: it has a scheme) matches URI SANs only, a DN (it has an
    /// `=`, RFC 4514 form) the subject DN only, anything else DNS SANs
    /// only. [`allow_uri`](Self::allow_uri), [`allow_dns`](Self::allow_dns)
    /// and [`allow_dn`](Self::allow_dn) say the kind outright.
    #[must_use]
    pub fn allow(self, subject: &str) -> Self {
        let entry = Allowed::Exact(NameKind::of(subject), subject.into());
        self.with(|c| c.allowed.push(entry))
    }

    /// Allows this exact URI SAN (a SPIFFE ID), and no DNS name or DN
    /// spelt the same.
    #[must_use]
    pub fn allow_uri(self, uri: &str) -> Self {
        let entry = Allowed::Exact(NameKind::Uri, uri.into());
        self.with(|c| c.allowed.push(entry))
    }

    /// Allows this exact DNS SAN, and no URI or DN spelt the same.
    #[must_use]
    pub fn allow_dns(self, name: &str) -> Self {
        let entry = Allowed::Exact(NameKind::Dns, name.into());
        self.with(|c| c.allowed.push(entry))
    }

    /// Allows this exact subject DN, as its RFC 4514 string
    /// (`CN=orders,O=Shop`, values escaped), and no SAN spelt the same.
    #[must_use]
    pub fn allow_dn(self, dn: &str) -> Self {
        let entry = Allowed::Exact(NameKind::Dn, dn.into());
        self.with(|c| c.allowed.push(entry))
    }

    /// Allows every SPIFFE ID of a trust domain (`"shop.example"` or
    /// `"spiffe://shop.example"`): `spiffe://shop.example/` followed by a
    /// valid path, never `spiffe://shop.example.evil/…`.
    #[must_use]
    pub fn allow_trust_domain(self, domain: &str) -> Self {
        let domain = domain.strip_prefix("spiffe://").unwrap_or(domain);
        let domain = domain.trim_end_matches('/');
        let entry = Allowed::TrustDomain(format!("spiffe://{domain}/").into());
        self.with(|c| c.allowed.push(entry))
    }

    /// Whether the allow-list permits `principal`: one an
    /// `MtlsAuthenticator` read from a client certificate, whose subject,
    /// of the kind it was read as (URI SAN, DNS SAN or subject DN), an
    /// entry of that kind permits. Any other principal (a JWT's, one made
    /// with [`Principal::new`]) is not permitted. For a per-route list,
    /// make another authenticator and use it in a predicate:
    ///
    /// ```
    /// use tokenwarden::Requirements;
    /// use tokenwarden::authn::Principal;
    /// use tokenwarden::authn::mtls::MtlsAuthenticator;
    ///
    /// let orders = MtlsAuthenticator::new().allow_uri("spiffe://shop.example/ns/prod/sa/orders");
    /// let route = Requirements::new().predicate("the orders workload", move |p| orders.permits(p));
    /// # let _ = route;
    /// // Not read from a certificate: never permitted, whatever its subject.
    /// let other = MtlsAuthenticator::new().allow_uri("spiffe://shop.example/ns/prod/sa/orders");
    /// assert!(!other.permits(&Principal::new("spiffe://shop.example/ns/prod/sa/orders", "mtls")));
    /// ```
    ///
    /// The kind is never guessed from the subject's spelling: a DNS SAN
    /// spelt like a SPIFFE ID or like a DN matches DNS entries only.
    pub fn permits(&self, principal: &Principal) -> bool {
        principal
            .name_kind()
            .is_some_and(|kind| self.permits_as(kind, principal.subject()))
    }

    /// Whether an entry of `kind` permits `name`: a trust domain is a URI
    /// rule.
    fn permits_as(&self, kind: NameKind, name: &str) -> bool {
        self.inner.allowed.iter().any(|a| match a {
            Allowed::Exact(k, s) => *k == kind && **s == *name,
            Allowed::TrustDomain(prefix) => {
                kind == NameKind::Uri && name.strip_prefix(&**prefix).is_some_and(spiffe_path)
            }
        })
    }

    /// The principal for a DER certificate (already verified by the TLS
    /// server).
    ///
    /// # Errors
    /// 401 `invalid_token`: `invalid_certificate` (it does not parse, or
    /// several URI SANs where the URI is read), `certificate_not_allowed`
    /// (no name the allow-list permits).
    pub fn principal(&self, der: &[u8]) -> Result<Principal, Refusal> {
        let names = Names::read(der).map_err(|_| {
            Refusal::invalid_token(
                SCHEME,
                "invalid_certificate",
                "the client certificate does not parse",
            )
        })?;
        let mut subject = None;
        for source in &self.inner.sources {
            let found = match source {
                SubjectSource::Uri if names.uris.len() > 1 => {
                    return Err(Refusal::invalid_token(
                        SCHEME,
                        "invalid_certificate",
                        "the client certificate has several URI names",
                    ));
                }
                SubjectSource::Uri => names
                    .uris
                    .first()
                    .filter(|u| self.permits_as(NameKind::Uri, u)),
                SubjectSource::Dns => names.dns.iter().find(|d| self.permits_as(NameKind::Dns, d)),
                SubjectSource::SubjectDn => {
                    Some(&names.dn).filter(|d| self.permits_as(NameKind::Dn, d))
                }
            };
            if let Some(s) = found {
                let kind = match source {
                    SubjectSource::Uri => NameKind::Uri,
                    SubjectSource::Dns => NameKind::Dns,
                    SubjectSource::SubjectDn => NameKind::Dn,
                };
                subject = Some((s.clone(), kind));
                break;
            }
        }
        let Some((subject, kind)) = subject else {
            return Err(Refusal::invalid_token(
                SCHEME,
                "certificate_not_allowed",
                "the client certificate is not allowed",
            ));
        };
        Ok(Principal::new(subject, "mtls")
            .with_name_kind(kind)
            .with_expiry(Some(names.not_after))
            .with_confirmation(json!({ X5T_S256: thumbprint(der) })))
    }
}

/// A SPIFFE ID's path after the trust domain's `/` (SPIFFE ID §2.2):
/// non-empty segments of letters, digits, `.`, `-` and `_`, none `.` or `..`.
fn spiffe_path(path: &str) -> bool {
    !path.is_empty()
        && path.split('/').all(|seg| {
            !seg.is_empty()
                && seg != "."
                && seg != ".."
                && seg
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'))
        })
}

/// The names a certificate carries.
struct Names {
    uris: Vec<String>,
    dns: Vec<String>,
    dn: String,
    not_after: i64,
}

impl Names {
    fn read(der: &[u8]) -> Result<Names, CertificateError> {
        if der.len() > MAX_CERTIFICATE_SIZE {
            return Err(CertificateError::NotACertificate);
        }
        let (rest, cert) =
            X509Certificate::from_der(der).map_err(|_| CertificateError::NotACertificate)?;
        if !rest.is_empty() {
            return Err(CertificateError::NotACertificate);
        }
        let mut names = Names {
            uris: Vec::new(),
            dns: Vec::new(),
            dn: super::dn::rfc4514(cert.subject()),
            not_after: cert.validity().not_after.timestamp(),
        };
        let san = cert
            .subject_alternative_name()
            .map_err(|_| CertificateError::BadNames)?;
        for name in san.iter().flat_map(|s| &s.value.general_names) {
            match name {
                GeneralName::URI(u) => names.uris.push((*u).to_owned()),
                GeneralName::DNSName(d) => names.dns.push((*d).to_owned()),
                _ => {}
            }
        }
        Ok(names)
    }
}

impl Authenticator for MtlsAuthenticator {
    fn name(&self) -> &'static str {
        "mtls"
    }

    fn scheme(&self) -> Scheme {
        SCHEME
    }

    fn recognises(&self, req: &RequestView<'_>) -> bool {
        req.peer_certificate_der().is_some() && req.header("authorization").is_none()
    }

    fn authenticate<'a>(&'a self, req: &'a RequestView<'a>) -> BoxFuture<'a, Verdict> {
        let verdict = match req.peer_certificate_der() {
            None => Verdict::NotMine,
            Some(der) => match self.principal(der) {
                Ok(p) => Verdict::Authenticated(p),
                Err(r) => Verdict::Refused(r),
            },
        };
        Box::pin(std::future::ready(verdict))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    impl MtlsAuthenticator {
        /// `permits_as` with the kind the name's shape says.
        fn permits_name(&self, name: &str) -> bool {
            self.permits_as(NameKind::of(name), name)
        }
    }

    #[test]
    fn trust_domains_match_whole_domains_and_valid_paths_only() {
        let a = MtlsAuthenticator::new().allow_trust_domain("shop.example");
        assert!(a.permits_name("spiffe://shop.example/ns/prod/sa/orders"));
        for no in [
            "spiffe://shop.example",
            "spiffe://shop.example/",
            "spiffe://shop.example.evil/ns/prod",
            "spiffe://shop.exampl/ns",
            "spiffe://SHOP.example/ns",
            "spiffe://shop.example/ns/../admin",
            "spiffe://shop.example/ns//x",
            "spiffe://shop.example/ns/x?y",
            "spiffe://shop.example/ns/%2e%2e",
            "https://shop.example/ns",
        ] {
            assert!(!a.permits_name(no), "{no}");
        }
        let exact = MtlsAuthenticator::new().allow("spiffe://shop.example/ns/a");
        assert!(exact.permits_name("spiffe://shop.example/ns/a"));
        assert!(!exact.permits_name("spiffe://shop.example/ns/a/b"));
        assert!(!MtlsAuthenticator::new().permits_name("anything"));
    }

    #[test]
    fn garbage_is_an_invalid_certificate_not_a_panic() {
        let a = MtlsAuthenticator::new().allow("x");
        for der in [&b""[..], b"\x30", b"\x30\x03\x02\x01\x01", &[0x30; 100]] {
            let r = a.principal(der).err().map(|r| r.kind());
            assert_eq!(r, Some("invalid_certificate"));
        }
    }
}
