//! Mutual TLS (RFC 8705): the client's certificate as the key a token is
//! bound to, and (feature `mtls`) as the client's identity.
//!
//! - **Certificate-bound tokens** (RFC 8705 §3): a JWT whose `cnf` claim
//!   holds `x5t#S256` passes [`JwtAuthenticator`](super::jwt::JwtAuthenticator)
//!   only when it equals the base64url SHA-256 of the DER of the
//!   certificate the client presented on this connection ([`thumbprint`]);
//!   without a certificate, or with another one, it is `invalid_token`.
//!   [`CertificateBinding::Required`] refuses plain bearer tokens too. A
//!   stolen bound token is useless without the client's private key.
//! - **The peer certificate** reaches the layers as a [`PeerCertificate`]
//!   in the request's extensions (tower: `http::Extensions`; actix: the
//!   connection data set in `on_connect`, or the request's extensions). The
//!   TLS server puts it there once per connection, after rustls verified it
//!   (`examples/mtls.rs` serves axum over tokio-rustls with
//!   `WebPkiClientVerifier`, `examples/tonic_mtls.rs` a tonic service over
//!   HTTP/2 the same way). The layers never read a certificate from a
//!   header: behind a gateway that terminates TLS, [`forwarded`] parses
//!   the gateway's header, and only code configured for that gateway may
//!   call it (the sidecar's `[mtls] from_gateway = true`).
//! - **Client identity** (feature `mtls`): `MtlsAuthenticator` turns the
//!   verified certificate into a [`Principal`](super::Principal): a SPIFFE
//!   ID or other URI SAN, a DNS SAN, or the subject DN, against allow-lists.
//!
//! ```
//! use tokenwarden::authn::mtls::{PeerCertificate, thumbprint};
//!
//! let cert = PeerCertificate::new(b"DER bytes of the client's certificate".to_vec());
//! // The value an authorization server puts in `cnf["x5t#S256"]`.
//! assert_eq!(cert.thumbprint(), thumbprint(cert.der()));
//! assert_eq!(cert.thumbprint().len(), 43);
//! ```

mod confirmation;
#[cfg(feature = "mtls")]
mod dn;
pub mod forwarded;
#[cfg(feature = "mtls")]
#[cfg_attr(docsrs, doc(cfg(feature = "mtls")))]
mod identity;

#[cfg(feature = "mtls")]
pub(crate) use identity::NameKind;
#[cfg(feature = "mtls")]
#[cfg_attr(docsrs, doc(cfg(feature = "mtls")))]
pub use identity::{CertificateError, MtlsAuthenticator, SubjectSource};

pub use confirmation::Confirmation;

use std::fmt;
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Map, Value};

use super::{Refusal, Scheme};

/// The `cnf` member naming a certificate's SHA-256 thumbprint (RFC 8705 §3.1).
pub const X5T_S256: &str = "x5t#S256";

/// Largest certificate (DER) read from a connection or a gateway's header:
/// a client certificate is 1–2 KiB; anything near this is not one.
pub const MAX_CERTIFICATE_SIZE: usize = 16 * 1024;

/// The client certificate of a mutual-TLS connection (DER), verified by the
/// TLS server, as the layers read it from a request's extensions.
///
/// Cheap to clone (an `Arc`): the TLS server makes one per connection and
/// puts a clone in each request. Never printed whole: `Debug` shows the
/// thumbprint.
///
/// ```
/// use tokenwarden::authn::mtls::PeerCertificate;
///
/// let mut req = http::Request::new(());
/// req.extensions_mut().insert(PeerCertificate::new(vec![0x30, 0x03, 0x02, 0x01, 0x01]));
/// assert_eq!(req.extensions().get::<PeerCertificate>().map(|c| c.der().len()), Some(5));
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct PeerCertificate(Arc<[u8]>);

impl PeerCertificate {
    /// The certificate with this DER encoding.
    pub fn new(der: impl Into<Arc<[u8]>>) -> PeerCertificate {
        PeerCertificate(der.into())
    }

    /// The DER encoding.
    pub fn der(&self) -> &[u8] {
        &self.0
    }

    /// base64url(SHA-256(DER)): the `x5t#S256` a token bound to this
    /// certificate carries (RFC 8705 §3.1).
    pub fn thumbprint(&self) -> String {
        thumbprint(&self.0)
    }
}

impl fmt::Debug for PeerCertificate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("PeerCertificate")
            .field(&self.thumbprint())
            .finish()
    }
}

/// The certificate thumbprint of RFC 8705 §3.1: the base64url encoding
/// (no padding) of the SHA-256 digest of the certificate's DER.
pub fn thumbprint(der: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(crate::crypto::sha256_of(der))
}

/// Whether a route takes plain bearer tokens beside certificate-bound ones.
///
/// A token that is bound (`cnf["x5t#S256"]`) is always held to the
/// connection's certificate, whatever this says: a binding is never
/// ignored.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum CertificateBinding {
    /// Bound tokens must match the connection's certificate; unbound
    /// tokens pass as plain bearer tokens (the default).
    #[default]
    WhenBound,
    /// Every token must be bound to the connection's certificate: a plain
    /// bearer token is refused (`invalid_token`, kind `token_not_bound`).
    Required,
}

/// Checks a validated token's certificate binding against the connection's
/// certificate (RFC 8705 §3): the token's `cnf["x5t#S256"]` must equal
/// [`thumbprint`] of `cert`, compared in constant time. The refusal is 401
/// `invalid_token` (RFC 8705 §3: "MUST be rejected … with HTTP 401 and the
/// `invalid_token` error code"), its kind one of `certificate_missing`
/// (bound, no certificate), `certificate_mismatch` (another certificate),
/// `invalid_confirmation` (a `cnf` that is not an object, or an `x5t#S256`
/// that is not a base64url SHA-256 digest), `token_not_bound` (a plain
/// token where [`CertificateBinding::Required`]).
///
/// This reads JSON claims; [`check_confirmation`] does the same over a
/// [`Confirmation`] (what a [`Validated`](crate::Validated) carries for
/// every claims type), and [`check_bearer`] adds the DPoP rule for tokens
/// sent as `Bearer`.
///
/// ```
/// use serde_json::json;
/// use tokenwarden::authn::mtls::{CertificateBinding, check_binding, thumbprint};
///
/// let cert = b"DER of the client's certificate";
/// let bound = json!({ "cnf": { "x5t#S256": thumbprint(cert) } });
/// let claims = bound.as_object().unwrap();
/// assert!(check_binding(claims, Some(cert), CertificateBinding::WhenBound).is_ok());
/// let stolen = check_binding(claims, Some(b"another"), CertificateBinding::WhenBound).unwrap_err();
/// assert_eq!((stolen.status(), stolen.kind()), (401, "certificate_mismatch"));
/// let plain = json!({ "sub": "alice" });
/// let r = check_binding(plain.as_object().unwrap(), Some(cert), CertificateBinding::Required);
/// assert_eq!(r.unwrap_err().kind(), "token_not_bound");
/// ```
///
/// # Errors
/// The 401 [`Refusal`] (scheme `Bearer`).
pub fn check_binding(
    claims: &Map<String, Value>,
    cert: Option<&[u8]>,
    policy: CertificateBinding,
) -> Result<(), Refusal> {
    check_confirmation(&Confirmation::from_claims(claims), cert, policy)
}

/// [`check_binding`] over a token's [`Confirmation`]: the same rules and
/// refusal kinds, whatever claims type the token was validated into.
///
/// ```
/// use serde_json::json;
/// use tokenwarden::authn::mtls::{CertificateBinding, Confirmation, check_confirmation, thumbprint};
///
/// let claims = json!({ "cnf": { "x5t#S256": thumbprint(b"cert") } });
/// let cnf = Confirmation::from_claims(claims.as_object().unwrap());
/// let r = check_confirmation(&cnf, None, CertificateBinding::WhenBound);
/// assert_eq!(r.unwrap_err().kind(), "certificate_missing");
/// ```
///
/// # Errors
/// The 401 [`Refusal`] (scheme `Bearer`).
pub fn check_confirmation(
    cnf: &Confirmation,
    cert: Option<&[u8]>,
    policy: CertificateBinding,
) -> Result<(), Refusal> {
    let refuse = |kind, description| Err(Refusal::invalid_token(Scheme::Bearer, kind, description));
    if cnf.is_malformed() {
        return refuse("invalid_confirmation", "the cnf claim is not an object");
    }
    if !cnf.is_certificate_bound() {
        return match policy {
            CertificateBinding::Required => refuse(
                "token_not_bound",
                "this resource takes only certificate-bound tokens",
            ),
            CertificateBinding::WhenBound => Ok(()),
        };
    }
    // Strict base64url without padding, canonical trailing bits: exactly
    // one spelling per digest.
    let expected = match cnf.x5t_s256().map(|s| URL_SAFE_NO_PAD.decode(s)) {
        Some(Ok(d)) if d.len() == 32 => d,
        _ => {
            return refuse(
                "invalid_confirmation",
                "x5t#S256 is not a base64url SHA-256 digest",
            );
        }
    };
    let Some(cert) = cert else {
        return refuse(
            "certificate_missing",
            "the token is bound to a client certificate and none was presented",
        );
    };
    let presented = crate::crypto::sha256_of(cert);
    if crate::crypto::digests_equal(&presented, &expected) {
        Ok(())
    } else {
        refuse(
            "certificate_mismatch",
            "the token is bound to another client certificate",
        )
    }
}

/// The one place that refuses a DPoP-bound token (`cnf.jkt`, RFC 9449
/// §6.1) presented as a bearer token: it is only good with a proof under
/// the `DPoP` scheme (RFC 9449 §7.1), and whoever holds it without the key
/// must not use it. 401 `invalid_token`, kind `dpop_bound_token_as_bearer`.
///
/// ```
/// use serde_json::json;
/// use tokenwarden::authn::mtls::{Confirmation, refuse_dpop_bound_as_bearer};
///
/// let claims = json!({ "cnf": { "jkt": "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I" } });
/// let cnf = Confirmation::from_claims(claims.as_object().unwrap());
/// let r = refuse_dpop_bound_as_bearer(&cnf);
/// assert_eq!(r.unwrap_err().kind(), "dpop_bound_token_as_bearer");
/// ```
///
/// # Errors
/// The 401 [`Refusal`] (scheme `Bearer`) when the token is DPoP-bound.
pub fn refuse_dpop_bound_as_bearer(cnf: &Confirmation) -> Result<(), Refusal> {
    if cnf.is_dpop_bound() {
        return Err(Refusal::invalid_token(
            Scheme::Bearer,
            "dpop_bound_token_as_bearer",
            "a DPoP-bound token must be sent with the DPoP scheme",
        ));
    }
    Ok(())
}

/// Every sender check a token presented as `Bearer` gets:
/// [`refuse_dpop_bound_as_bearer`], then [`check_confirmation`] against the
/// connection's certificate.
///
/// # Errors
/// The 401 [`Refusal`] (scheme `Bearer`) of the first check that fails.
pub fn check_bearer(
    cnf: &Confirmation,
    cert: Option<&[u8]>,
    policy: CertificateBinding,
) -> Result<(), Refusal> {
    refuse_dpop_bound_as_bearer(cnf)?;
    check_confirmation(cnf, cert, policy)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn claims(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => Map::new(),
        }
    }

    fn kind(r: Result<(), Refusal>) -> &'static str {
        r.err().map_or("ok", |r| r.kind())
    }

    #[test]
    fn the_thumbprint_is_base64url_sha256_of_the_der() {
        // SHA-256("abc"), RFC 6234's test vector, base64url.
        assert_eq!(
            thumbprint(b"abc"),
            "ungWv48Bz-pBQUDeXa4iI7ADYaOWF3qctBD_YfIAFa0"
        );
    }

    #[test]
    fn a_bound_token_is_held_to_the_presented_certificate() {
        let c = claims(json!({ "cnf": { "x5t#S256": thumbprint(b"cert") } }));
        let when = CertificateBinding::WhenBound;
        assert_eq!(kind(check_binding(&c, Some(b"cert"), when)), "ok");
        assert_eq!(
            kind(check_binding(&c, Some(b"other"), when)),
            "certificate_mismatch"
        );
        assert_eq!(kind(check_binding(&c, None, when)), "certificate_missing");
        let required = CertificateBinding::Required;
        assert_eq!(kind(check_binding(&c, Some(b"cert"), required)), "ok");
    }

    #[test]
    fn malformed_confirmations_are_refused_not_ignored() {
        let when = CertificateBinding::WhenBound;
        let good = thumbprint(b"cert");
        for cnf in [
            json!("x"),
            json!({ "x5t#S256": 7 }),
            json!({ "x5t#S256": format!("{good}=") }),
            json!({ "x5t#S256": &good[..42] }),
            json!({ "x5t#S256": format!("+{}", &good[1..]) }),
            json!({ "x5t#S256": "" }),
        ] {
            let c = claims(json!({ "cnf": cnf }));
            assert_eq!(
                kind(check_binding(&c, Some(b"cert"), when)),
                "invalid_confirmation",
                "{cnf}"
            );
        }
    }

    #[test]
    fn plain_tokens_pass_unless_binding_is_required() {
        for c in [json!({ "sub": "a" }), json!({ "cnf": { "jkt": "x" } })] {
            let c = claims(c);
            assert_eq!(
                kind(check_binding(
                    &c,
                    Some(b"cert"),
                    CertificateBinding::WhenBound
                )),
                "ok"
            );
            assert_eq!(
                kind(check_binding(
                    &c,
                    Some(b"cert"),
                    CertificateBinding::Required
                )),
                "token_not_bound"
            );
        }
    }

    #[test]
    fn the_thumbprint_is_compared_in_constant_time() {
        let src = include_str!("mod.rs");
        let body = &src[src.find("pub fn check_confirmation").unwrap_or(0)..];
        let body = &body[..body.find("\n}\n").unwrap_or(body.len())];
        assert!(body.contains("crate::crypto::digests_equal(&presented, &expected)"));
        assert!(!body.contains("presented == expected"));
    }

    #[test]
    fn peer_certificates_print_their_thumbprint_not_their_bytes() {
        let c = PeerCertificate::new(b"secretish".to_vec());
        let shown = format!("{c:?}");
        assert!(shown.contains(&thumbprint(b"secretish")), "{shown}");
        assert!(!shown.contains('['), "{shown}");
    }
}
