//! The internal token in the layers (feature `mint`):
//! [`BearerAuth::internal_token`] hands the inner service a short-lived JWT
//! the layer mints for the request's principal, in a header of its own, so
//! the services behind it validate one kind of token whatever the client
//! proved itself with. The header a client sent under that name never
//! reaches the inner service.

use std::sync::Arc;

use super::{AuthRejection, Checked};
use crate::authn::Principal;

/// A configuration's internal token, when it has one. A unit without the
/// `mint` feature, so [`Config`](super::Config) has no `cfg` inside.
#[derive(Clone, Default)]
pub(crate) struct Slot(#[cfg(feature = "mint")] Option<Arc<InternalToken>>);

/// The minter and the header it fills, parsed once for each framework.
#[cfg(feature = "mint")]
struct InternalToken {
    minter: crate::mint::Minter,
    #[cfg(feature = "tower")]
    http_name: http::HeaderName,
    #[cfg(feature = "actix")]
    actix_name: actix_web::http::header::HeaderName,
}

/// Request headers the internal token may not take the name of: the
/// credentials the layers read (stripping them would refuse or confuse the
/// next layer) and the headers HTTP itself gives a meaning to.
#[cfg(feature = "mint")]
const RESERVED: &[&str] = &[
    "authorization",
    "proxy-authorization",
    "cookie",
    "host",
    "content-type",
    "content-length",
    "content-encoding",
    "transfer-encoding",
    "connection",
    "te",
    "trailer",
    "upgrade",
    "expect",
    "dpop",
];

#[cfg(feature = "mint")]
#[cfg_attr(docsrs, doc(cfg(feature = "mint")))]
impl super::BearerAuth {
    /// Hands the inner service a short-lived JWT that `minter` signs for the
    /// request's principal, in the request header `header` (for example
    /// `x-internal-token`), whatever proved who the request is: a bearer
    /// JWT, an API key, a legacy credential ([`from_chain`](Self::from_chain)).
    /// The service validates it with a [`Validator`](crate::Validator) on
    /// the minter's [`jwks`](crate::mint::Minter::jwks) (its `iss`, its
    /// `aud`, `at+jwt`) and needs to know nothing of the client's credential.
    ///
    /// - A header of that name the client sent is **always removed** before
    ///   the inner service sees the request: on a pass (replaced by the
    ///   minted token), on an anonymous pass (none then), and behind an
    ///   outer layer's verdict.
    /// - A refusal never reaches the inner service, so never carries one.
    /// - A token that cannot be minted (a JWT without `sub`, a scope that
    ///   is not a scope token, a signing failure) is a 500
    ///   `internal_token_failed`: never a pass without it.
    ///
    /// The token carries the principal's subject (`sub`), the authenticator
    /// that vouched for it (`authn`), its scopes and roles; the minter
    /// caches one per principal until near its expiry. For JSON claims
    /// ([`BearerAuth::new`](super::BearerAuth::new)) and chains.
    ///
    /// ```
    /// use std::time::Duration;
    /// use tokenwarden::Algorithm;
    /// use tokenwarden::middleware::BearerAuth;
    /// use tokenwarden::mint::Minter;
    /// # use tokenwarden::{KeySet, Validator};
    /// # let validator = Validator::builder().issuer("i").audience("a")
    /// #     .keys(KeySet::from_hmac_secret(Some("k"), Algorithm::HS256, &[7; 32])?).build()?;
    /// // In production: `.signing_key_file("/etc/gateway/mint.pem")`.
    /// let minter = Minter::builder()
    ///     .generated_key(Algorithm::EdDSA)
    ///     .issuer("https://gateway.example")
    ///     .audience("https://orders.internal")
    ///     .lifetime(Duration::from_secs(60))
    ///     .build()?;
    /// let auth = BearerAuth::new(validator).internal_token(minter, "x-internal-token")?;
    /// let layer = auth.layer();
    /// # let _ = layer;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// When `header` is not a header name, or names a credential or a
    /// header HTTP gives a meaning to (`Authorization`, `Cookie`, `Host`,
    /// `Content-Length`, …).
    pub fn internal_token(
        self,
        minter: crate::mint::Minter,
        header: &str,
    ) -> Result<Self, crate::error::BuildError> {
        let lower = header.to_ascii_lowercase();
        // RFC 9110 §5.1: a field name is a token.
        let valid = !lower.is_empty()
            && lower
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
        if !valid {
            return Err(crate::error::BuildError::new(format!(
                "internal token header: {header:?} is not a header name"
            )));
        }
        if RESERVED.contains(&lower.as_str()) {
            return Err(crate::error::BuildError::new(format!(
                "internal token header: {header:?} is a credential or HTTP header; \
                 choose one of its own, such as \"x-internal-token\""
            )));
        }
        #[cfg_attr(not(any(feature = "tower", feature = "actix")), allow(dead_code))]
        fn bad<E>(_: E) -> crate::error::BuildError {
            crate::error::BuildError::new("internal token header: not a header name")
        }
        let token = InternalToken {
            minter,
            #[cfg(feature = "tower")]
            http_name: http::HeaderName::from_bytes(lower.as_bytes()).map_err(bad)?,
            #[cfg(feature = "actix")]
            actix_name: actix_web::http::header::HeaderName::from_bytes(lower.as_bytes())
                .map_err(bad)?,
        };
        Ok(self.with(|c| c.internal = Slot(Some(Arc::new(token)))))
    }
}

/// What a pass hands the inner service under the internal token's header.
#[cfg_attr(not(feature = "mint"), allow(dead_code))]
pub(crate) enum Forward {
    /// No internal token configured: the request goes as it is.
    Untouched,
    /// Remove the header, add none (an anonymous pass).
    Strip,
    /// Remove the header, then set it to this token.
    Set(Arc<str>),
}

impl Slot {
    /// What to do with the header on a pass: `principal` is the one the
    /// layer (or the outer layer whose verdict it takes) recorded, `None`
    /// for an anonymous pass.
    ///
    /// # Errors
    /// `InternalTokenFailed` (500) when the principal cannot be minted for,
    /// or is missing on a pass that is not anonymous.
    #[cfg_attr(not(feature = "mint"), allow(clippy::unused_self))]
    pub(crate) fn forward(
        &self,
        anonymous: bool,
        principal: impl FnOnce() -> Option<Principal>,
    ) -> Result<Forward, AuthRejection> {
        #[cfg(feature = "mint")]
        if let Some(it) = &self.0 {
            if anonymous {
                return Ok(Forward::Strip);
            }
            // A pass whose principal cannot be read is refused, never let
            // through without its token.
            let Some(p) = principal() else {
                tracing::warn!(kind = "no_principal", "internal token not minted: 500");
                return Err(AuthRejection::InternalTokenFailed {
                    kind: "no_principal",
                });
            };
            // The issuer and expiry too: one `sub` at two issuers is two
            // users, and the token never outlives the credential.
            let input = crate::mint::MintInput::from_principal(&p);
            return match it.minter.mint(&input) {
                Ok(token) => Ok(Forward::Set(token)),
                Err(e) => {
                    tracing::warn!(kind = e.kind(), "internal token not minted: 500");
                    Err(AuthRejection::InternalTokenFailed { kind: e.kind() })
                }
            };
        }
        let _ = (anonymous, principal);
        Ok(Forward::Untouched)
    }
}

/// The principal a pass recorded in the request's extensions.
#[cfg_attr(not(feature = "mint"), allow(dead_code))]
pub(crate) fn recorded(p: Option<&Principal>, checked: Option<&Checked>) -> Option<Principal> {
    super::chain::principal_of(p, checked)
}

#[cfg(feature = "tower")]
impl Slot {
    /// Applies [`forward`](Self::forward) to a tower request: the client's
    /// header of that name goes, the minted token comes.
    pub(crate) fn apply_http<B>(
        &self,
        req: &mut http::Request<B>,
        anonymous: bool,
    ) -> Result<(), AuthRejection> {
        let forward = self.forward(anonymous, || {
            let ext = req.extensions();
            recorded(ext.get::<Principal>(), ext.get::<Checked>())
        })?;
        #[cfg(feature = "mint")]
        if let Some(it) = &self.0 {
            let headers = req.headers_mut();
            // Every value of the client's: `remove` takes them all.
            headers.remove(&it.http_name);
            if let Forward::Set(token) = forward {
                let value = http::HeaderValue::from_str(&token).map_err(|_| {
                    AuthRejection::InternalTokenFailed {
                        kind: "header_value",
                    }
                })?;
                headers.insert(it.http_name.clone(), value);
            }
        }
        let _ = forward;
        Ok(())
    }
}

#[cfg(feature = "actix")]
impl Slot {
    /// Applies [`forward`](Self::forward) to an actix-web request.
    pub(crate) fn apply_actix(
        &self,
        req: &mut actix_web::dev::ServiceRequest,
        anonymous: bool,
    ) -> Result<(), AuthRejection> {
        use actix_web::HttpMessage as _;
        let forward = self.forward(anonymous, || {
            let ext = req.extensions();
            recorded(ext.get::<Principal>(), ext.get::<Checked>())
        })?;
        #[cfg(feature = "mint")]
        if let Some(it) = &self.0 {
            let headers = req.headers_mut();
            headers.remove(&it.actix_name);
            if let Forward::Set(token) = forward {
                let value =
                    actix_web::http::header::HeaderValue::from_str(&token).map_err(|_| {
                        AuthRejection::InternalTokenFailed {
                            kind: "header_value",
                        }
                    })?;
                headers.insert(it.actix_name.clone(), value);
            }
        }
        let _ = forward;
        Ok(())
    }
}

impl<C> super::BearerAuth<C> {
    /// This configuration's internal token slot.
    pub(crate) fn internal_slot(&self) -> &Slot {
        &self.config.internal
    }
}
