//! The revocation denylist for introspected principals: an opaque token
//! whose `jti`, subject or session was revoked (an admin call, an OpenID
//! Connect back-channel logout) is refused at once, even while its
//! verdict is kept, as a JWT is.

use crate::authn::{Principal, Refusal, Scheme, Verdict};
use crate::state::denylist::{Denylist, TokenIds};

use super::IntrospectionAuthenticatorBuilder;

impl IntrospectionAuthenticatorBuilder {
    /// Refuses principals on `denylist` (kind `revoked`, 401
    /// `invalid_token`), the one a [`Validator`](crate::Validator) takes:
    /// the answer's `jti` (when present), `sub` and `sid` against their
    /// entries, on every use, a kept verdict included (one lookup, as for
    /// a JWT; none while the list is empty).
    ///
    /// A subject or session cutoff ("tokens issued before T") needs the
    /// answer's `iat` (RFC 7662 §2.2 makes it optional): without it the
    /// token is refused, since nothing shows it was issued after the
    /// cutoff. An answer without `iss` is held to every issuer's entries
    /// (its issuer is unknown; set [`issuer`](Self::issuer) to require
    /// it). The cutoff is checked against `sub`, never a fallback
    /// subject (`client_id:`, `username:`), and holds only while the
    /// denylist keeps it (its `max_token_lifetime`); past that the IdP's
    /// answer decides again when the kept verdict ends.
    ///
    /// ```no_run
    /// use tokenwarden::authn::introspection::IntrospectionAuthenticator;
    /// use tokenwarden::state::denylist::Denylist;
    ///
    /// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
    /// let denylist = Denylist::new();
    /// let opaque = IntrospectionAuthenticator::builder()
    ///     .endpoint("https://idp.example.com/oauth2/introspect")
    ///     .client_secret_basic("gateway", "s3cret")
    ///     .denylist(denylist.clone())
    ///     .build()
    ///     .await?;
    /// // Alice logged out: her opaque tokens issued before now are refused,
    /// // kept verdicts included.
    /// denylist.revoke_subject_before("alice", 1_900_000_000);
    /// # Ok(()) }
    /// ```
    pub fn denylist(mut self, denylist: Denylist) -> Self {
        self.denylist = Some(denylist);
        self
    }
}

/// `v`, or a `revoked` refusal when its principal is on the denylist.
pub(super) fn checked(denylist: Option<&Denylist>, v: Verdict) -> Verdict {
    let (Some(d), Verdict::Authenticated(p)) = (denylist, &v) else {
        return v;
    };
    match revoked(d, p) {
        Some(r) => Verdict::Refused(r),
        None => v,
    }
}

fn revoked(d: &Denylist, p: &Principal) -> Option<Refusal> {
    if d.is_empty() {
        return None;
    }
    // The answer's own members (`sub`, not `Principal::subject`'s
    // fallback): revocations name the IdP's identifiers. A missing `iat`
    // stays absent, and `Denylist::is_revoked` refuses it under a subject
    // or session cutoff: a token that cannot show it postdates the cutoff
    // may be one the logout meant.
    let ids = TokenIds::from_claims(p.claims());
    // RFC 7662 §2.2: `iss` is optional. Without it (and without an
    // `issuer` configured, which would have required it) the answer's
    // issuer is unknown: every issuer's entries apply, or a logout (whose
    // entries name its issuer) would miss the token.
    let by = match ids.iss {
        Some(_) => d.is_revoked(&ids),
        None => d.is_revoked_any_issuer(&ids),
    }?;
    Some(Refusal::from_error(
        Scheme::Bearer,
        &crate::Error::Revoked { by },
    ))
}
