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
    /// As for a JWT, an active answer must then carry `exp` and `iat`
    /// (RFC 7662 §2.2 makes them optional), at most the denylist's
    /// `max_token_lifetime` apart: a subject or session cutoff ("tokens
    /// issued before T") is kept that long, and a token that could outlive
    /// it would pass again once it is pruned, since many IdPs keep a token
    /// active after a logout. Otherwise 401 `invalid_token`, kind
    /// `missing_claim` or `invalid_claim`: an IdP that leaves `iat` out
    /// cannot be held to a denylist. An answer without `iss` is held to
    /// every issuer's entries (its issuer is unknown; set
    /// [`issuer`](Self::issuer) to require it). The cutoff is checked
    /// against `sub`, never a fallback subject (`client_id:`,
    /// `username:`).
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
    // The answer's own members (`sub`, not `Principal::subject`'s
    // fallback): revocations name the IdP's identifiers.
    let ids = TokenIds::from_claims(p.claims());
    // RFC 7662 §2.2: `iss` is optional. Without it (and without an
    // `issuer` configured, which would have required it) the answer's
    // issuer is unknown: every issuer's entries apply, or a logout (whose
    // entries name its issuer) would miss the token.
    let by = if d.is_empty() {
        None
    } else {
        match ids.iss {
            Some(_) => d.is_revoked(&ids),
            None => d.is_revoked_any_issuer(&ids),
        }
    };
    let verdict = match by {
        Some(by) => Err(crate::Error::Revoked { by }),
        // As for a JWT (`Denylist::check`): a subject or session cutoff is
        // kept `max_token_lifetime`, so an answer without `exp` or `iat`,
        // or living longer than that, would pass again once the cutoff is
        // pruned (many IdPs keep a token active after a logout). RFC 7662
        // §2.2 makes both optional: an IdP that leaves them out cannot be
        // held to a denylist, and is refused (`missing_claim`).
        None => d.check_lifetime(&ids),
    };
    verdict
        .err()
        .map(|e| Refusal::from_error(Scheme::Bearer, &e))
}
