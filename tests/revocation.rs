//! Revocation: the denylist checked on every validation after the
//! signature (cache hits included), its entries expiring with the tokens
//! they revoke, and the OpenID Connect Back-Channel Logout receiver that
//! feeds it.
#![cfg(all(feature = "cache", feature = "testing", feature = "remote"))]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod common;

use std::sync::Arc;

use common::*;
use serde_json::{Map, Value, json};
use tokenwarden::state::denylist::{Denylist, GRACE, MemorySource, Revocation};
use tokenwarden::{Algorithm, CacheConfig, ErrorKind, ManualClock, Validator};

fn denylist(clock: &ManualClock) -> Denylist {
    Denylist::builder().clock(clock.clone()).build().unwrap()
}

/// A denylist whose subject and session cutoffs are kept `secs` long (the
/// longest token lifetime it accepts).
fn denylist_for_lifetime(clock: &ManualClock, secs: u64) -> Denylist {
    Denylist::builder()
        .clock(clock.clone())
        .max_token_lifetime(std::time::Duration::from_secs(secs))
        .build()
        .unwrap()
}

fn validator_with(denylist: &Denylist, clock: &ManualClock) -> Validator {
    builder(&[key(Algorithm::ES256)])
        .clock(clock.clone())
        .denylist(denylist.clone())
        .cache(CacheConfig::default())
        .build()
        .unwrap()
}

fn token(extra: Value) -> String {
    let mut c = claims();
    for (k, v) in extra.as_object().unwrap() {
        c[k] = v.clone();
    }
    key(Algorithm::ES256).token(&c)
}

fn kind(v: &Validator, token: &str) -> &'static str {
    match v.validate::<Value>(token) {
        Ok(_) => "ok",
        Err(e) => e.kind().as_str(),
    }
}

fn kind_shared(v: &Validator, token: &str) -> &'static str {
    match v.validate_shared::<Map<String, Value>>(token) {
        Ok(_) => "ok",
        Err(e) => e.kind().as_str(),
    }
}

#[test]
fn a_revoked_jti_is_refused_and_others_pass() {
    let clock = ManualClock::new(NOW);
    let d = denylist(&clock);
    let v = validator_with(&d, &clock);
    let revoked = token(json!({"jti": "t-1"}));
    let other = token(json!({"jti": "t-2"}));
    assert_eq!(kind(&v, &revoked), "ok");
    d.revoke_jti("t-1", NOW + 600);
    assert_eq!(kind(&v, &revoked), "revoked");
    assert_eq!(kind_shared(&v, &revoked), "revoked");
    assert_eq!(kind(&v, &other), "ok");
    let err = v.validate::<Value>(&revoked).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Revoked);
    // The message names the kind of entry, never the jti.
    assert_eq!(err.to_string(), "token revoked (by jti)");
}

#[test]
fn the_revocation_check_comes_after_the_signature() {
    // A forged token carrying a revoked jti is refused for its signature:
    // the denylist never speaks for a token nobody signed.
    let clock = ManualClock::new(NOW);
    let d = denylist(&clock);
    let v = validator_with(&d, &clock);
    d.revoke_jti("t-1", NOW + 600);
    let good = token(json!({"jti": "t-1"}));
    let (head, _) = good.rsplit_once('.').unwrap();
    let forged = format!("{head}.{}", b64(&[7u8; 64]));
    assert_eq!(kind(&v, &forged), "invalid_signature");
}

#[test]
fn a_subject_revocation_refuses_tokens_issued_before_the_cutoff_only() {
    let clock = ManualClock::new(NOW);
    let d = denylist(&clock);
    let v = validator_with(&d, &clock);
    let before = token(json!({"sub": "mallory", "iat": NOW - 1}));
    let at = token(json!({"sub": "mallory", "iat": NOW}));
    let fraction_before = token(json!({"sub": "mallory", "iat": (NOW as f64) - 0.5}));
    let someone_else = token(json!({"sub": "alice", "iat": NOW - 100}));
    d.revoke_subject_before("mallory", NOW);
    assert_eq!(kind(&v, &before), "revoked");
    assert_eq!(kind(&v, &fraction_before), "revoked");
    assert_eq!(kind(&v, &at), "ok", "iat = T is not before T");
    assert_eq!(kind(&v, &someone_else), "ok");
}

#[test]
fn a_token_without_iat_under_a_subject_or_session_revocation_is_refused() {
    let clock = ManualClock::new(NOW);
    let d = denylist(&clock);
    let v = validator_with(&d, &clock);
    let mut c = claims();
    c.as_object_mut().unwrap().remove("iat");
    c["sub"] = json!("mallory");
    c["sid"] = json!("s-9");
    let no_iat = key(Algorithm::ES256).token(&c);
    // Refused anyway (its lifetime cannot be bounded), but a revocation
    // still says so first.
    assert_eq!(kind(&v, &no_iat), "missing_claim");
    d.revoke_session("s-9", NOW - 3600);
    let err = v.validate::<Value>(&no_iat).unwrap_err();
    assert_eq!(err.to_string(), "token revoked (by session)");
    let d = denylist(&clock);
    let v = validator_with(&d, &clock);
    d.revoke_subject_before("mallory", NOW - 3600);
    assert_eq!(kind(&v, &no_iat), "revoked");
}

#[test]
fn a_session_revocation_refuses_that_sessions_tokens_only() {
    let clock = ManualClock::new(NOW);
    let d = denylist(&clock);
    let v = validator_with(&d, &clock);
    let in_session = token(json!({"sid": "s-1", "iat": NOW - 10}));
    let other_session = token(json!({"sid": "s-2", "iat": NOW - 10}));
    let no_session = token(json!({"iat": NOW - 10}));
    d.revoke_session("s-1", NOW);
    assert_eq!(kind(&v, &in_session), "revoked");
    assert_eq!(kind(&v, &other_session), "ok");
    assert_eq!(kind(&v, &no_session), "ok");
}

#[test]
fn a_token_cached_before_its_revocation_is_refused_on_every_kind_of_hit() {
    let clock = ManualClock::new(NOW);
    let d = denylist(&clock);
    let v = validator_with(&d, &clock);
    let t = token(json!({"sub": "mallory", "jti": "t-1"}));
    // Cached, in this thread's recent hits and in the shared map, for
    // both entry points.
    assert_eq!(kind(&v, &t), "ok");
    assert_eq!(kind_shared(&v, &t), "ok");
    assert_eq!(kind_shared(&v, &t), "ok");
    assert_eq!(v.cache_usage().unwrap().0, 1);
    d.revoke_subject_before("mallory", NOW);
    assert_eq!(kind(&v, &t), "revoked");
    assert_eq!(kind_shared(&v, &t), "revoked");
    // Another thread answers from the shared map: refused there too.
    let v2 = v.clone();
    let t2 = t.clone();
    let there = std::thread::spawn(move || (kind(&v2, &t2), kind_shared(&v2, &t2)))
        .join()
        .unwrap();
    assert_eq!(there, ("revoked", "revoked"));
}

#[test]
fn a_validator_without_a_denylist_is_unaffected() {
    let clock = ManualClock::new(NOW);
    let d = denylist(&clock);
    d.revoke_subject_before("alice", NOW);
    let v = builder(&[key(Algorithm::ES256)])
        .clock(clock.clone())
        .build()
        .unwrap();
    assert_eq!(kind(&v, &token(json!({}))), "ok");
}

#[test]
fn entries_expire_with_the_tokens_they_revoke() {
    let clock = ManualClock::new(NOW);
    let d = denylist_for_lifetime(&clock, 3600);
    d.revoke_jti("t-1", NOW + 600);
    d.revoke_subject_before("mallory", NOW);
    d.revoke_session("s-1", NOW + 100);
    assert_eq!(d.len(), 3);
    // Nothing goes while a validator could still accept what it refuses
    // (exp plus the largest leeway).
    clock.set(NOW + 600 + GRACE - 1);
    d.prune();
    assert_eq!(d.len(), 3);
    clock.set(NOW + 600 + GRACE);
    d.prune();
    assert_eq!(d.len(), 2, "the jti went at its exp + grace");
    clock.set(NOW + 3600 + GRACE);
    d.prune();
    assert_eq!(d.len(), 1, "the subject went at T + max lifetime + grace");
    clock.set(NOW + 100 + 3600 + GRACE);
    d.prune();
    assert!(d.is_empty());
    // A revocation already past is not even recorded.
    d.revoke_jti("old", NOW);
    assert!(d.is_empty());
}

/// Attack: a token living longer than `max_token_lifetime` would pass again
/// once its subject's cutoff is pruned (kept only that long); with a
/// denylist it is refused outright, from the cache too.
#[test]
fn a_token_living_longer_than_the_denylists_max_token_lifetime_is_refused() {
    let clock = ManualClock::new(NOW);
    let d = denylist_for_lifetime(&clock, 3600);
    let v = validator_with(&d, &clock);
    let long = token(json!({"iat": NOW - 10, "exp": NOW - 10 + 3601}));
    let err = v.validate::<Value>(&long).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidClaim, "{err}");
    assert!(err.to_string().contains("max_token_lifetime"), "{err}");
    // Without iat: refused, whatever its exp (see the attack test below).
    let mut c = claims();
    c.as_object_mut().unwrap().remove("iat");
    c["exp"] = json!(NOW + 3600);
    assert_eq!(kind(&v, &key(Algorithm::ES256).token(&c)), "missing_claim");
    // Exactly the lifetime passes, and the pruned-cutoff hole is closed:
    let ok = token(json!({"iat": NOW - 10, "exp": NOW - 10 + 3600}));
    assert_eq!(kind(&v, &ok), "ok");
    d.revoke_subject_before("alice", NOW);
    assert_eq!(kind(&v, &ok), "revoked");
    // ...and it cannot outlive its cutoff's entry.
    clock.set(NOW + 3600 + GRACE);
    d.prune();
    assert!(d.is_empty());
    assert_eq!(kind(&v, &ok), "expired");
    // A validator without a denylist is unaffected.
    let plain = builder(&[key(Algorithm::ES256)])
        .clock(clock.clone())
        .build()
        .unwrap();
    clock.set(NOW);
    assert_eq!(kind(&plain, &long), "ok");
}

/// Attack: a token without `iat` revoked at `T` with an `exp` past the
/// pruning of its cutoff (`T + max_token_lifetime + GRACE`) passed again
/// afterwards when its lifetime was counted from now. With a denylist a
/// token must carry `iat`, so it is refused for good.
#[test]
fn a_revoked_token_without_iat_does_not_pass_again_once_its_cutoff_is_pruned() {
    let clock = ManualClock::new(NOW);
    let lifetime = 3600;
    let d = denylist_for_lifetime(&clock, lifetime as u64);
    let v = validator_with(&d, &clock);
    let mut c = claims();
    c.as_object_mut().unwrap().remove("iat");
    c["exp"] = json!(NOW + lifetime + GRACE + 600);
    let no_iat = key(Algorithm::ES256).token(&c);
    d.revoke_subject_before("alice", NOW);
    assert_eq!(kind(&v, &no_iat), "revoked");
    clock.set(NOW + lifetime + GRACE);
    d.prune();
    assert!(d.is_empty(), "the cutoff was pruned");
    let err = v.validate::<Value>(&no_iat).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::MissingClaim, "{err}");
    assert!(err.to_string().contains("\"iat\""), "{err}");
    assert_eq!(kind_shared(&v, &no_iat), "missing_claim");
}

/// Attack: with `allow_missing_exp()`, a revoked token without `exp` passed
/// again for ever once its subject's cutoff was pruned. A denylist now
/// refuses the pair at build, and checks every token for `exp`.
#[test]
fn allow_missing_exp_with_a_denylist_is_a_build_error() {
    let clock = ManualClock::new(NOW);
    let d = denylist(&clock);
    let err = builder(&[key(Algorithm::ES256)])
        .clock(clock.clone())
        .denylist(d.clone())
        .allow_missing_exp()
        .build()
        .unwrap_err();
    assert!(err.to_string().contains("allow_missing_exp"), "{err}");
    // Each alone still builds.
    builder(&[key(Algorithm::ES256)])
        .allow_missing_exp()
        .build()
        .unwrap();
    let v = validator_with(&d, &clock);
    let mut c = claims();
    c.as_object_mut().unwrap().remove("exp");
    let err = v
        .validate::<Value>(&key(Algorithm::ES256).token(&c))
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::MissingClaim, "{err}");
    assert!(err.to_string().contains("\"exp\""), "{err}");
}

#[test]
fn a_revocation_on_one_denylist_reaches_another_sharing_its_source() {
    let clock = ManualClock::new(NOW);
    let source = Arc::new(MemorySource::new().with_clock(clock.clone()));
    let sharing = |source: Arc<MemorySource>| {
        Denylist::builder()
            .clock(clock.clone())
            .source(source)
            .build()
            .unwrap()
    };
    let a = sharing(source.clone());
    let b = sharing(source.clone());
    let va = validator_with(&a, &clock);
    let vb = validator_with(&b, &clock);
    let t = token(json!({"jti": "t-1"}));
    assert_eq!(kind(&vb, &t), "ok");
    a.revoke_jti("t-1", NOW + 600);
    assert_eq!(kind(&va, &t), "revoked");
    assert_eq!(kind(&vb, &t), "revoked");
    // One started later loads what is still in force.
    let c = sharing(source);
    assert_eq!(kind(&validator_with(&c, &clock), &t), "revoked");
    assert_eq!((a.len(), b.len(), c.len()), (1, 1, 1));
}

#[test]
fn an_issuer_scoped_revocation_spares_another_issuers_subject() {
    let clock = ManualClock::new(NOW);
    let d = denylist(&clock);
    let v = validator_with(&d, &clock);
    d.revoke(Revocation::Subject {
        issuer: Some("https://other-idp.test".into()),
        sub: "alice".into(),
        before: NOW,
    });
    assert_eq!(kind(&v, &token(json!({}))), "ok");
    d.revoke(Revocation::Subject {
        issuer: Some(ISS.into()),
        sub: "alice".into(),
        before: NOW,
    });
    assert_eq!(kind(&v, &token(json!({}))), "revoked");
}

// --- OpenID Connect Back-Channel Logout 1.0 -------------------------------

mod logout {
    use super::*;
    use tokenwarden::KeySet;
    use tokenwarden::logout::{BackchannelLogout, LogoutError};
    use tokenwarden::testing::{LogoutTarget, TestIssuer};

    const CLIENT: &str = "shop-web";
    const FORM: Option<&str> = Some("application/x-www-form-urlencoded");

    /// An identity provider, an API validator and a logout receiver on one
    /// denylist and one manual clock.
    struct World {
        clock: ManualClock,
        idp: TestIssuer,
        denylist: Denylist,
        receiver: BackchannelLogout,
        api: Validator,
    }

    fn world() -> World {
        world_with(false)
    }

    /// With [`BackchannelLogoutBuilder::revoke_subject_with_session`] as given.
    fn world_with(subject_with_session: bool) -> World {
        let clock = ManualClock::new(NOW);
        let idp = TestIssuer::builder().clock(clock.clone()).start().unwrap();
        let keys = || KeySet::from_jwks(idp.jwks_json().as_bytes()).unwrap();
        let denylist = denylist(&clock);
        let receiver = BackchannelLogout::builder()
            .issuer(idp.issuer())
            .client_id(CLIENT)
            .keys(keys())
            .denylist(denylist.clone())
            .clock(clock.clone())
            .revoke_subject_with_session(subject_with_session)
            .build()
            .unwrap();
        let api = Validator::builder()
            .issuer(idp.issuer())
            .audience("api")
            .keys(keys())
            .clock(clock.clone())
            .denylist(denylist.clone())
            .build()
            .unwrap();
        World {
            clock,
            idp,
            denylist,
            receiver,
            api,
        }
    }

    impl World {
        fn access_token(&self, sub: &str, sid: &str) -> String {
            self.idp
                .token()
                .audience("api")
                .subject(sub)
                .claim("sid", sid)
                .sign()
        }

        /// The receiver's verdict on a token, and whether anything was
        /// revoked by it.
        async fn refusal(&self, token: &str) -> (&'static str, usize) {
            let before = self.denylist.len();
            let kind = match self.receiver.receive(token).await {
                Ok(_) => "ok",
                Err(e) => e.kind(),
            };
            (kind, self.denylist.len() - before)
        }
    }

    #[tokio::test]
    async fn a_logout_token_for_a_session_revokes_that_sessions_tokens() {
        let w = world();
        let mine = w.access_token("alice", "s-1");
        let my_other_session = w.access_token("alice", "s-2");
        assert_eq!(kind(&w.api, &mine), "ok");
        let logout = w
            .idp
            .logout_token(CLIENT, LogoutTarget::Session("s-1"))
            .sign();
        let body = format!("logout_token={logout}");
        let answer = w.receiver.handle_form(FORM, body.as_bytes()).await;
        assert_eq!((answer.status, answer.body.as_str()), (200, ""));
        assert_eq!(kind(&w.api, &mine), "revoked");
        assert_eq!(kind(&w.api, &my_other_session), "ok");
        // The logout token itself can never pass as a bearer token.
        assert_eq!(w.denylist.len(), 2, "the session and the logout jti");
    }

    #[tokio::test]
    async fn a_logout_token_for_a_subject_revokes_every_session_of_it() {
        let w = world();
        let a = w.access_token("alice", "s-1");
        let b = w.access_token("alice", "s-2");
        let bob = w.access_token("bob", "s-3");
        let logout = w
            .idp
            .logout_token(CLIENT, LogoutTarget::Subject("alice"))
            .sign();
        w.receiver.receive(&logout).await.unwrap();
        assert_eq!((kind(&w.api, &a), kind(&w.api, &b)), ("revoked", "revoked"));
        assert_eq!(kind(&w.api, &bob), "ok");
        // A new login after the logout gets tokens that pass.
        w.clock.advance(1);
        assert_eq!(kind(&w.api, &w.access_token("alice", "s-4")), "ok");
    }

    /// A token without `sid` (many access tokens carry none) is outside a
    /// session's reach: by default a session logout spares it.
    #[tokio::test]
    async fn by_default_a_session_logout_spares_the_subjects_tokens_without_sid() {
        let w = world();
        let no_sid = w.idp.token().audience("api").subject("alice").sign();
        let target = LogoutTarget::SubjectSession {
            sub: "alice",
            sid: "s-1",
        };
        let logout = w.idp.logout_token(CLIENT, target).sign();
        let done = w.receiver.receive(&logout).await.unwrap();
        assert_eq!(done.subject, None);
        assert_eq!(kind(&w.api, &no_sid), "ok");
    }

    /// Attack (a stolen access token without `sid` outliving the user's
    /// logout): with `revoke_subject_with_session`, a logout naming the
    /// session and the subject refuses every earlier token of the subject.
    #[tokio::test]
    async fn revoke_subject_with_session_refuses_the_subjects_tokens_without_sid() {
        let w = world_with(true);
        let no_sid = w.idp.token().audience("api").subject("alice").sign();
        let other_session = w.access_token("alice", "s-2");
        let bob = w.access_token("bob", "s-3");
        let target = LogoutTarget::SubjectSession {
            sub: "alice",
            sid: "s-1",
        };
        let logout = w.idp.logout_token(CLIENT, target).sign();
        let done = w.receiver.receive(&logout).await.unwrap();
        assert!(
            matches!(&done.subject, Some(Revocation::Subject { sub, .. }) if sub == "alice"),
            "{done:?}"
        );
        assert_eq!(kind(&w.api, &no_sid), "revoked");
        assert_eq!(kind(&w.api, &other_session), "revoked", "the trade-off");
        assert_eq!(kind(&w.api, &bob), "ok");
        // A token issued after the logout (a refresh) passes.
        w.clock.advance(1);
        let fresh = w.idp.token().audience("api").subject("alice").sign();
        assert_eq!(kind(&w.api, &fresh), "ok");
        // A logout naming only the session still revokes only the session.
        let w = world_with(true);
        let no_sid = w.idp.token().audience("api").subject("alice").sign();
        let only_sid = w
            .idp
            .logout_token(CLIENT, LogoutTarget::Session("s-1"))
            .sign();
        assert_eq!(w.receiver.receive(&only_sid).await.unwrap().subject, None);
        assert_eq!(kind(&w.api, &no_sid), "ok");
    }

    #[tokio::test]
    async fn a_logout_token_without_the_logout_event_is_refused() {
        let w = world();
        let target = LogoutTarget::Session("s-1");
        let none = w.idp.logout_token(CLIENT, target).without("events").sign();
        assert_eq!(w.refusal(&none).await, ("not_a_logout_token", 0));
        let other_event = w
            .idp
            .logout_token(CLIENT, target)
            .claim(
                "events",
                json!({"http://schemas.openid.net/event/other": {}}),
            )
            .sign();
        assert_eq!(w.refusal(&other_event).await, ("not_a_logout_token", 0));
        let not_object = w
            .idp
            .logout_token(CLIENT, target)
            .claim(
                "events",
                json!({"http://schemas.openid.net/event/backchannel-logout": "yes"}),
            )
            .sign();
        assert_eq!(w.refusal(&not_object).await, ("not_a_logout_token", 0));
    }

    #[tokio::test]
    async fn a_logout_token_with_a_nonce_is_refused() {
        let w = world();
        let t = w
            .idp
            .logout_token(CLIENT, LogoutTarget::Session("s-1"))
            .claim("nonce", "n-0S6_WzA2Mj")
            .sign();
        assert_eq!(w.refusal(&t).await, ("nonce_present", 0));
    }

    #[tokio::test]
    async fn a_replayed_logout_token_is_refused() {
        let w = world();
        let t = w
            .idp
            .logout_token(CLIENT, LogoutTarget::Session("s-1"))
            .sign();
        assert_eq!(w.refusal(&t).await, ("ok", 2));
        assert_eq!(w.refusal(&t).await, ("replayed", 0));
        let err = w.receiver.receive(&t).await.unwrap_err();
        assert_eq!(err, LogoutError::Replayed);
    }

    #[tokio::test]
    async fn a_logout_token_for_another_client_is_refused() {
        let w = world();
        let t = w
            .idp
            .logout_token("another-client", LogoutTarget::Session("s-1"))
            .sign();
        assert_eq!(w.refusal(&t).await, ("invalid_audience", 0));
    }

    #[tokio::test]
    async fn a_logout_token_with_a_bad_signature_is_refused() {
        let w = world();
        let t = w
            .idp
            .logout_token(CLIENT, LogoutTarget::Session("s-1"))
            .sign();
        let (head, _) = t.rsplit_once('.').unwrap();
        let forged = format!("{head}.{}", b64(&[9u8; 64]));
        assert_eq!(w.refusal(&forged).await, ("invalid_signature", 0));
        // Signed by a key the receiver does not trust.
        let stranger =
            tokenwarden::testing::TestKey::generate(Algorithm::ES256, "ES256-1").unwrap();
        let payload = t.split('.').nth(1).unwrap();
        let claims: Value = serde_json::from_slice(&unb64(payload)).unwrap();
        let header = json!({"alg": "ES256", "kid": "ES256-1", "typ": "logout+jwt"});
        let foreign = stranger.token_with_header(&header, &claims);
        assert_eq!(w.refusal(&foreign).await, ("invalid_signature", 0));
    }

    #[tokio::test]
    async fn other_malformed_logout_tokens_are_refused() {
        let w = world();
        let target = LogoutTarget::Session("s-1");
        let cases = [
            (
                w.idp
                    .logout_token(CLIENT, target)
                    .without("sid")
                    .without("sub")
                    .sign(),
                "no_subject_or_session",
            ),
            (
                w.idp.logout_token(CLIENT, target).without("jti").sign(),
                "missing_jti",
            ),
            (
                w.idp.logout_token(CLIENT, target).without("iat").sign(),
                "missing_claim",
            ),
            (
                w.idp.logout_token(CLIENT, target).without("exp").sign(),
                "missing_claim",
            ),
            (
                w.idp
                    .logout_token(CLIENT, target)
                    .claim("iat", NOW - 3600)
                    .sign(),
                "token_too_old",
            ),
            (
                w.idp
                    .logout_token(CLIENT, target)
                    .header(json!({"alg": "ES256", "kid": w.idp.current_kid(), "typ": "JWT"}))
                    .sign(),
                "invalid_type",
            ),
            (
                w.idp
                    .logout_token(CLIENT, target)
                    .claim("iss", "https://evil.test")
                    .sign(),
                "invalid_issuer",
            ),
        ];
        for (token, expected) in cases {
            assert_eq!(w.refusal(&token).await, (expected, 0), "{expected}");
        }
        // Without `typ` at all it is accepted (§2.4 recommends, not requires).
        let untyped = w
            .idp
            .logout_token(CLIENT, target)
            .header(json!({"alg": "ES256", "kid": w.idp.current_kid()}))
            .sign();
        assert_eq!(w.refusal(&untyped).await.0, "ok");
    }

    #[tokio::test]
    async fn malformed_requests_get_400_with_an_error_body_and_no_store() {
        let w = world();
        let t = w
            .idp
            .logout_token(CLIENT, LogoutTarget::Session("s-1"))
            .sign();
        for (ct, body) in [
            (Some("application/json"), format!("logout_token={t}")),
            (FORM, format!("logout_token={t}&logout_token={t}")),
            (FORM, String::from("token=x")),
        ] {
            let r = w.receiver.handle_form(ct, body.as_bytes()).await;
            assert_eq!(r.status, 400);
            assert_eq!(
                r.body,
                r#"{"error":"invalid_request","error_description":"malformed_request"}"#
            );
        }
        assert!(
            tokenwarden::logout::LogoutResponse::HEADERS.contains(&("cache-control", "no-store"))
        );
        assert!(w.denylist.is_empty());
    }

    /// The receiver on a real loopback HTTP server.
    async fn serve(receiver: BackchannelLogout) -> String {
        use axum::http::HeaderMap;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!(
            "http://{}/backchannel-logout",
            listener.local_addr().unwrap()
        );
        let app = axum::Router::new().route(
            "/backchannel-logout",
            axum::routing::post(move |headers: HeaderMap, body: axum::body::Bytes| {
                let receiver = receiver.clone();
                async move {
                    let ct = headers
                        .get("content-type")
                        .and_then(|v| v.to_str().ok())
                        .map(str::to_owned);
                    let answer = receiver.handle_form(ct.as_deref(), &body).await;
                    (
                        axum::http::StatusCode::from_u16(answer.status).unwrap(),
                        tokenwarden::logout::LogoutResponse::HEADERS,
                        answer.body,
                    )
                }
            }),
        );
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        url
    }

    #[tokio::test]
    async fn back_channel_logout_end_to_end_over_http() {
        let w = world();
        let url = serve(w.receiver.clone()).await;
        let session = w.access_token("alice", "s-1");
        let cached = w.api.validate_shared::<Map<String, Value>>(&session);
        assert!(cached.is_ok());
        let sent = w
            .idp
            .backchannel_logout(
                &url,
                CLIENT,
                LogoutTarget::SubjectSession {
                    sub: "alice",
                    sid: "s-1",
                },
            )
            .await
            .unwrap();
        assert_eq!((sent.status, sent.body.as_str()), (200, ""));
        // From then on the session's tokens are refused, cached or not.
        assert_eq!(kind_shared(&w.api, &session), "revoked");
        assert_eq!(kind(&w.api, &session), "revoked");
        assert_eq!(kind(&w.api, &w.access_token("alice", "s-2")), "ok");
        // The same logout token again: refused as a replay.
        let again = TestIssuer::post_logout_token(&url, &sent.logout_token)
            .await
            .unwrap();
        assert_eq!(again.status, 400);
        assert_eq!(
            again.body,
            r#"{"error":"invalid_request","error_description":"replayed"}"#
        );
    }
}
