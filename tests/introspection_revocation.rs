//! The revocation denylist for opaque tokens (`authn::introspection` with
//! `denylist`), against the test issuer's real loopback `/introspect` and
//! a back-channel logout receiver on the same denylist: a logout refuses
//! the subject's (or session's) opaque tokens at once, kept verdicts
//! included, as it does JWTs.
#![cfg(all(feature = "introspection", feature = "testing"))]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod common;

use common::NOW;
use common::authn::bearer;
use tokenwarden::authn::introspection::IntrospectionAuthenticator;
use tokenwarden::authn::{Chain, RequestView};
use tokenwarden::logout::BackchannelLogout;
use tokenwarden::state::denylist::Denylist;
use tokenwarden::testing::{LogoutTarget, TestIssuer};
use tokenwarden::{KeySet, ManualClock};

const CLIENT: &str = "orders-api";
const SECRET: &str = "s3cret-Zq8Lw3Xk9Pv2Rt7Ym4Nb6Hc1Jd5Gf0";
const RP: &str = "shop-web";

/// An identity provider, an introspecting chain and a logout receiver on
/// one denylist and one manual clock.
struct World {
    clock: ManualClock,
    idp: TestIssuer,
    denylist: Denylist,
    receiver: BackchannelLogout,
    chain: Chain,
}

async fn world() -> World {
    world_with(true).await
}

/// With `check_issuer`, the authenticator requires the answer's `iss`.
async fn world_with(check_issuer: bool) -> World {
    let clock = ManualClock::new(NOW);
    let idp = TestIssuer::builder().clock(clock.clone()).start().unwrap();
    idp.introspection_client_secret(CLIENT, SECRET);
    let denylist = Denylist::builder().clock(clock.clone()).build().unwrap();
    let receiver = BackchannelLogout::builder()
        .issuer(idp.issuer())
        .client_id(RP)
        .keys(KeySet::from_jwks(idp.jwks_json().as_bytes()).unwrap())
        .denylist(denylist.clone())
        .clock(clock.clone())
        .build()
        .unwrap();
    let mut opaque = IntrospectionAuthenticator::builder()
        .endpoint(idp.introspection_url())
        .client_secret_basic(CLIENT, SECRET);
    if check_issuer {
        opaque = opaque.issuer(idp.issuer());
    }
    let opaque = opaque
        .audience("api")
        .allow_http_loopback(true)
        .clock(clock.clone())
        .denylist(denylist.clone())
        .build()
        .await
        .unwrap();
    World {
        clock,
        chain: Chain::new().introspection(opaque),
        idp,
        denylist,
        receiver,
    }
}

impl World {
    fn opaque(&self, sub: &str, sid: &str) -> String {
        self.idp
            .opaque_token()
            .subject(sub)
            .audience("api")
            .claim("sid", sid)
            .issue()
    }

    async fn kind(&self, token: &str) -> (u16, &'static str) {
        let headers = bearer(token);
        match self
            .chain
            .authenticate(&RequestView::new("GET", "/", &headers))
            .await
        {
            Ok(_) => (200, "ok"),
            Err(r) => (r.status(), r.kind()),
        }
    }

    async fn logout(&self, target: LogoutTarget<'_>) {
        let token = self.idp.logout_token(RP, target).sign();
        self.receiver.receive(&token).await.unwrap();
    }
}

/// Attack: a user logs out, and their opaque token, whose verdict is kept
/// (the IdP is not asked again for up to the positive TTL), is replayed.
#[tokio::test]
async fn a_subject_logout_refuses_a_kept_opaque_token_at_once() {
    let w = world().await;
    let alice = w.opaque("alice", "s-1");
    let bob = w.opaque("bob", "s-2");
    assert_eq!(w.kind(&alice).await, (200, "ok"));
    assert_eq!(w.kind(&bob).await, (200, "ok"));
    assert_eq!(w.idp.introspection_calls(), 2);

    w.logout(LogoutTarget::Subject("alice")).await;
    // The IdP still says active, and the verdict is kept: the denylist
    // refuses it without a call.
    assert_eq!(w.kind(&alice).await, (401, "revoked"));
    assert_eq!(
        w.idp.introspection_calls(),
        2,
        "refused from the kept verdict"
    );
    assert_eq!(w.kind(&bob).await, (200, "ok"), "another subject passes");

    // A new login after the logout: a token issued after the cutoff passes.
    w.clock.advance(1);
    let again = w.opaque("alice", "s-3");
    assert_eq!(w.kind(&again).await, (200, "ok"));
    assert_eq!(
        w.kind(&alice).await,
        (401, "revoked"),
        "the old one stays out"
    );
}

#[tokio::test]
async fn a_session_logout_refuses_that_sessions_opaque_token_only() {
    let w = world().await;
    let s1 = w.opaque("alice", "s-1");
    let s2 = w.opaque("alice", "s-2");
    assert_eq!(w.kind(&s1).await, (200, "ok"));
    w.logout(LogoutTarget::Session("s-1")).await;
    assert_eq!(w.kind(&s1).await, (401, "revoked"));
    assert_eq!(w.kind(&s2).await, (200, "ok"));
}

#[tokio::test]
async fn a_revoked_jti_refuses_the_opaque_token_that_carries_it() {
    let w = world().await;
    let with_jti = w
        .idp
        .opaque_token()
        .subject("carol")
        .audience("api")
        .claim("jti", "t-7")
        .issue();
    let other = w.opaque("carol", "s-1");
    assert_eq!(w.kind(&with_jti).await, (200, "ok"));
    w.denylist.revoke_jti("t-7", NOW + 300);
    assert_eq!(w.kind(&with_jti).await, (401, "revoked"));
    assert_eq!(w.kind(&other).await, (200, "ok"));
}

/// Attack: a user logs out, the IdP keeps their opaque token active (many
/// do), and the cutoff is pruned after the denylist's `max_token_lifetime`:
/// a token that could outlive the cutoff would then pass again. With a
/// denylist an answer must carry `exp` and `iat`, at most
/// `max_token_lifetime` apart (as a JWT must), whether or not anything is
/// revoked yet.
#[tokio::test]
async fn with_a_denylist_an_answer_without_exp_or_iat_or_living_too_long_is_refused() {
    let w = world().await;
    let mint = |sub: &str| w.idp.opaque_token().subject(sub).audience("api");
    let no_iat = mint("dave").without("iat").issue();
    assert_eq!(w.kind(&no_iat).await, (401, "missing_claim"));
    let no_exp = mint("dave").without("exp").issue();
    assert_eq!(w.kind(&no_exp).await, (401, "missing_claim"));
    // The default max_token_lifetime is a day.
    let long = mint("dave").expires_in(86_400 + 1).issue();
    assert_eq!(w.kind(&long).await, (401, "invalid_claim"));
    let day = mint("dave").expires_in(86_400).issue();
    assert_eq!(w.kind(&day).await, (200, "ok"));

    // Revoked, then past the cutoff's pruning: the day-long token has
    // expired by then, so nothing revoked passes again.
    w.denylist.revoke_subject_before("dave", NOW + 1);
    assert_eq!(w.kind(&day).await, (401, "revoked"));
    w.clock.advance(86_400 + 120);
    w.denylist.prune();
    assert_eq!(w.kind(&day).await, (401, "expired"));
}

/// Attack: an IdP that leaves `iss` out of its answers (RFC 7662 §2.2
/// makes it optional) and an authenticator with no `issuer` set. A logout
/// names its issuer; the answer's issuer is unknown, so the logout holds.
#[tokio::test]
async fn an_answer_without_iss_is_held_to_a_logout_naming_an_issuer() {
    let w = world_with(false).await;
    let no_iss = |sub: &str| {
        w.idp
            .opaque_token()
            .subject(sub)
            .audience("api")
            .without("iss")
            .issue()
    };
    let (alice, bob) = (no_iss("alice"), no_iss("bob"));
    assert_eq!(w.kind(&alice).await, (200, "ok"));
    w.logout(LogoutTarget::Subject("alice")).await;
    assert_eq!(w.kind(&alice).await, (401, "revoked"));
    assert_eq!(w.kind(&bob).await, (200, "ok"));
}
