//! The authenticator chain: JWTs and API keys giving one `Principal`
//! shape, one refusal table, requirements across kinds.
#![cfg(all(feature = "testing", feature = "api-keys"))]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod common;

use std::sync::Arc;

use common::authn::{add_key, api_key_header, api_keys, bearer, poll_once};
use common::{ISS, NOW, claims, key, validator};
use serde_json::json;
use tokenwarden::authn::api_key::MemoryStore;
use tokenwarden::authn::jwt::JwtAuthenticator;
use tokenwarden::authn::{
    Authenticator, BoxFuture, Chain, Principal, Refusal, RequestView, Scheme, Verdict,
};
use tokenwarden::{Algorithm, ManualClock, Requirements};

/// A chain of a JWT authenticator (ES256 test key, roles from `roles`) and
/// an API key authenticator over `store`.
fn chain(store: &Arc<MemoryStore>) -> Chain {
    let k = key(Algorithm::ES256);
    Chain::new()
        .jwt(JwtAuthenticator::new(validator(&[k])).roles_from("roles"))
        .api_key(api_keys(store, &ManualClock::new(NOW)))
}

fn token(extra: serde_json::Value) -> String {
    let mut c = claims();
    for (k, v) in extra.as_object().unwrap() {
        c[k] = v.clone();
    }
    key(Algorithm::ES256).token(&c)
}

async fn run(chain: &Chain, headers: &Vec<(String, String)>) -> Result<Principal, Refusal> {
    chain
        .authenticate(&RequestView::new("GET", "/orders", headers))
        .await
}

#[tokio::test]
async fn a_jwt_and_an_api_key_give_the_same_principal_shape() {
    let store = Arc::new(MemoryStore::new());
    let new = add_key(&store, "partner", &["orders:read", "orders:write"]);
    let chain = chain(&store);

    let jwt = run(
        &chain,
        &bearer(&token(
            json!({"scope": "orders:read orders:write", "roles": ["ops"]}),
        )),
    )
    .await
    .unwrap();
    assert_eq!(jwt.subject(), "alice");
    assert_eq!(jwt.authenticator(), "jwt");
    assert!(jwt.has_scope("orders:read") && jwt.has_scope("orders:write"));
    assert!(jwt.has_role("ops"));
    assert_eq!(jwt.expires_at(), Some(NOW + 600));
    assert_eq!(jwt.claims()["iss"], ISS);
    assert_eq!(jwt.confirmation(), None);
    assert_eq!(jwt.actor(), None);

    let key = run(&chain, &api_key_header(&new)).await.unwrap();
    assert_eq!(key.subject(), "partner");
    assert_eq!(key.authenticator(), "api_key");
    assert_eq!(
        key.scopes(),
        jwt.scopes(),
        "the same scopes, whatever the kind"
    );
    assert_eq!(key.expires_at(), Some(NOW + 3600));
    assert_eq!(key.claims()["api_key_id"], new.record.id.as_str());
}

#[tokio::test]
async fn a_jwt_and_an_api_key_at_once_are_refused_400() {
    let store = Arc::new(MemoryStore::new());
    let new = add_key(&store, "partner", &["orders:read"]);
    let mut both = bearer(&token(json!({})));
    both.push(("x-api-key".into(), new.expose_key().into()));

    let r = run(&chain(&store), &both).await.unwrap_err();
    assert_eq!((r.status(), r.error()), (400, Some("invalid_request")));
    assert_eq!(r.description(), "more than one kind of credential");

    // Allowed, the first recognised in chain order decides: the JWT.
    let p = run(&chain(&store).allow_multiple(), &both).await.unwrap();
    assert_eq!(p.authenticator(), "jwt");
}

/// Attack: two API key authenticators reading two headers (a partner's
/// `X-Partner-Key` beside `X-Api-Key`) are two credentials per location: a
/// request carrying a key in each is 400, whichever would pass, so an
/// application behind the chain never acts on the key nobody judged. One
/// key in one place, or in a place both read, is judged as before.
#[tokio::test]
async fn two_api_key_headers_at_once_are_two_kinds_and_refused_400() {
    let store = Arc::new(MemoryStore::new());
    let partners = Arc::new(MemoryStore::new());
    let ours = add_key(&store, "script", &["orders:read"]);
    let theirs = add_key(&partners, "partner", &["orders:read"]);
    let clock = ManualClock::new(NOW);
    let partner_keys = tokenwarden::authn::api_key::ApiKeyAuthenticator::memory(partners.clone())
        .header("X-Partner-Key")
        .unwrap()
        .clock(clock.clone());
    let chain = Chain::new()
        .api_key(api_keys(&store, &clock))
        .api_key(partner_keys);
    let h = |pairs: &[(&str, &str)]| -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    };

    for both in [
        h(&[
            ("x-api-key", ours.expose_key()),
            ("x-partner-key", theirs.expose_key()),
        ]),
        h(&[
            ("x-partner-key", theirs.expose_key()),
            ("x-api-key", ours.expose_key()),
        ]),
        // A wrong key in the first place does not hide the second.
        h(&[
            ("x-api-key", "tw_live_0123456789abcdef_nope"),
            ("x-partner-key", theirs.expose_key()),
        ]),
    ] {
        let r = run(&chain, &both).await.unwrap_err();
        assert_eq!((r.status(), r.error()), (400, Some("invalid_request")));
        assert_eq!(r.description(), "more than one kind of credential");
    }

    // One key, in either place: judged by the authenticator reading it.
    let p = run(&chain, &h(&[("x-api-key", ours.expose_key())]))
        .await
        .unwrap();
    assert_eq!(p.subject(), "script");
    let p = run(&chain, &h(&[("x-partner-key", theirs.expose_key())]))
        .await
        .unwrap();
    assert_eq!(p.subject(), "partner");
    // `Authorization: ApiKey`, which both read: one credential, not 400.
    let p = run(&chain, &api_key_header(&ours)).await.unwrap();
    assert_eq!(p.subject(), "script");
    // Allowed, the first in chain order decides.
    let p = run(
        &chain.clone().allow_multiple(),
        &h(&[
            ("x-partner-key", theirs.expose_key()),
            ("x-api-key", ours.expose_key()),
        ]),
    )
    .await
    .unwrap();
    assert_eq!(p.subject(), "script");
}

#[tokio::test]
async fn no_credential_is_401_with_every_schemes_challenge() {
    let store = Arc::new(MemoryStore::new());
    let r = run(&chain(&store), &vec![("accept".into(), "*/*".into())])
        .await
        .unwrap_err();
    assert_eq!(
        (r.status(), r.error(), r.kind()),
        (401, None, "missing_token")
    );
    assert_eq!(
        r.challenges("orders"),
        ["Bearer realm=\"orders\"", "ApiKey realm=\"orders\""]
    );
    // Another scheme is no credential of ours.
    let basic = vec![("authorization".into(), "Basic YTpi".into())];
    assert_eq!(run(&chain(&store), &basic).await.unwrap_err().status(), 401);
}

#[tokio::test]
async fn requirements_apply_across_kinds() {
    let store = Arc::new(MemoryStore::new());
    let reader = add_key(&store, "reader", &["orders:read"]);
    let writer = add_key(&store, "writer", &["orders:read", "orders:write"]);
    let chain = chain(&store).require(
        Requirements::new()
            .scopes_all(["orders:write"])
            .predicate("not a test subject", |p| p.subject() != "test"),
    );

    let r = run(&chain, &api_key_header(&reader)).await.unwrap_err();
    assert_eq!((r.status(), r.scope()), (403, Some("orders:write")));
    assert_eq!(
        r.challenges("api"),
        ["ApiKey realm=\"api\", error=\"insufficient_scope\", scope=\"orders:write\""]
    );
    let r = run(&chain, &bearer(&token(json!({"scope": "orders:read"}))))
        .await
        .unwrap_err();
    assert_eq!((r.status(), r.scope()), (403, Some("orders:write")));
    assert_eq!(r.scheme(), Scheme::Bearer);

    assert!(run(&chain, &api_key_header(&writer)).await.is_ok());
    assert!(
        run(&chain, &bearer(&token(json!({"scp": ["orders:write"]}))))
            .await
            .is_ok()
    );
    let r = run(
        &chain,
        &bearer(&token(json!({"sub": "test", "scp": "orders:write"}))),
    )
    .await
    .unwrap_err();
    assert_eq!(r.status(), 403);
    assert_eq!(r.description(), "requires not a test subject");

    // Roles too.
    let admins = chain
        .clone()
        .require(Requirements::new().roles_any(["admin"]));
    let r = run(&admins, &bearer(&token(json!({"roles": "ops"}))))
        .await
        .unwrap_err();
    assert_eq!((r.status(), r.description()), (403, "requires role admin"));
    assert!(
        run(&admins, &bearer(&token(json!({"roles": "ops admin"}))))
            .await
            .is_ok()
    );
}

#[tokio::test]
async fn jwt_refusals_follow_the_one_table() {
    let store = Arc::new(MemoryStore::new());
    let chain = chain(&store);
    let r = run(&chain, &bearer(&token(json!({"exp": NOW - 3600}))))
        .await
        .unwrap_err();
    assert_eq!(
        (r.status(), r.error(), r.kind()),
        (401, Some("invalid_token"), "expired")
    );
    assert_eq!(
        r.challenges("api"),
        ["Bearer realm=\"api\", error=\"invalid_token\", error_description=\"expired\""]
    );
    let other = key(Algorithm::ES384).token(&claims());
    assert_eq!(
        run(&chain, &bearer(&other)).await.unwrap_err().status(),
        401
    );
    for odd in ["Bearer\tx", "Bearer a b", "Bearerx"] {
        let h = vec![("authorization".to_string(), odd.to_string())];
        let r = run(&chain, &h).await.unwrap_err();
        assert_eq!(
            (r.status(), r.error()),
            (400, Some("invalid_request")),
            "{odd:?}"
        );
    }
    let mut twice = bearer(&token(json!({})));
    twice.extend(bearer(&token(json!({}))));
    assert_eq!(run(&chain, &twice).await.unwrap_err().status(), 400);
}

#[tokio::test]
async fn keys_unavailable_is_503_with_retry_after_and_no_challenge() {
    let chain = Chain::new().jwt(JwtAuthenticator::new(
        common::http_cases::keyless_validator(),
    ));
    let r = run(&chain, &bearer(&token(json!({})))).await.unwrap_err();
    assert_eq!((r.status(), r.kind()), (503, "keys_unavailable"));
    assert_eq!(
        r.retry_after(),
        Some(tokenwarden::authn::DEFAULT_RETRY_AFTER)
    );
    assert!(r.challenges("api").is_empty());
}

#[test]
fn the_jwt_path_completes_on_its_first_poll() {
    let chain = Chain::new().jwt(JwtAuthenticator::new(validator(&[key(Algorithm::ES256)])));
    let headers = bearer(&token(json!({})));
    let req = RequestView::new("GET", "/", &headers);
    let p = poll_once(chain.authenticate(&req)).expect("ready at once");
    assert_eq!(p.unwrap().subject(), "alice");
}

/// A user's authenticator: `X-Office: <name>`.
struct Office;

impl Authenticator for Office {
    fn name(&self) -> &'static str {
        "office"
    }
    fn scheme(&self) -> Scheme {
        Scheme::Other("Office")
    }
    fn recognises(&self, req: &RequestView<'_>) -> bool {
        req.header("x-office").is_some()
    }
    fn authenticate<'a>(&'a self, req: &'a RequestView<'a>) -> BoxFuture<'a, Verdict> {
        Box::pin(async move {
            match req.single_header("x-office", self.scheme()) {
                Ok(Some("")) => Verdict::NotMine,
                Ok(Some(name)) => Verdict::Authenticated(
                    Principal::new(name, "office").with_scopes(["orders:write"]),
                ),
                Ok(None) => Verdict::NotMine,
                Err(r) => Verdict::Refused(r),
            }
        })
    }
}

#[tokio::test]
async fn a_users_authenticator_joins_the_chain_and_may_step_aside() {
    let store = Arc::new(MemoryStore::new());
    let chain = chain(&store)
        .with_authenticator(Office)
        .require(Requirements::new().scopes_all(["orders:write"]));
    let h = vec![("x-office".to_string(), "bob".to_string())];
    let p = run(&chain, &h).await.unwrap();
    assert_eq!((p.subject(), p.authenticator()), ("bob", "office"));
    // Stepping aside after a closer look: no credential after all.
    let h = vec![("x-office".to_string(), String::new())];
    let r = run(&chain, &h).await.unwrap_err();
    assert_eq!(r.status(), 401);
    assert_eq!(r.challenges("a").len(), 3);
}

/// A user's authenticator named as a built-in kind, its principals saying
/// `jwt` too.
struct PosingAsJwt;

impl Authenticator for PosingAsJwt {
    fn name(&self) -> &'static str {
        "jwt"
    }
    fn scheme(&self) -> Scheme {
        Scheme::Other("Session")
    }
    fn recognises(&self, req: &RequestView<'_>) -> bool {
        req.header("x-session").is_some()
    }
    fn authenticate<'a>(&'a self, _req: &'a RequestView<'a>) -> BoxFuture<'a, Verdict> {
        Box::pin(async move { Verdict::Authenticated(Principal::new("mallory", "jwt")) })
    }
}

/// Attack: an authenticator named `jwt` (a legacy one's `.name("jwt")`, a
/// user's) would make a session and a bearer token count as one kind (no
/// 400) and label its principals as JWTs. The chain refuses to run so
/// built (`check` says why) and no such request passes.
#[tokio::test]
async fn an_authenticator_named_as_a_built_in_kind_is_refused() {
    let store = Arc::new(MemoryStore::new());
    assert!(chain(&store).check().is_ok());
    let chain = chain(&store).with_authenticator(PosingAsJwt);
    assert!(chain.check().is_err());
    let mut both = bearer(&token(json!({})));
    both.push(("x-session".into(), "s".into()));
    let session = vec![("x-session".to_string(), "s".to_string())];
    for headers in [&both, &session] {
        let r = run(&chain, headers).await;
        assert!(r.is_err(), "passed: {r:?}");
    }
}

/// A user's authenticator whose principal names another kind is labelled
/// by the chain with its own name.
#[tokio::test]
async fn a_principal_is_labelled_by_the_member_that_vouched() {
    struct Sessions;
    impl Authenticator for Sessions {
        fn name(&self) -> &'static str {
            "sessions"
        }
        fn scheme(&self) -> Scheme {
            Scheme::Other("Session")
        }
        fn recognises(&self, req: &RequestView<'_>) -> bool {
            req.header("x-session").is_some()
        }
        fn authenticate<'a>(&'a self, _req: &'a RequestView<'a>) -> BoxFuture<'a, Verdict> {
            Box::pin(async move { Verdict::Authenticated(Principal::new("mallory", "jwt")) })
        }
    }
    let store = Arc::new(MemoryStore::new());
    let chain = chain(&store).with_authenticator(Sessions);
    assert!(chain.check().is_ok());
    let session = vec![("x-session".to_string(), "s".to_string())];
    let p = run(&chain, &session).await.unwrap();
    assert_eq!(p.authenticator(), "sessions");
    // And a session with a bearer token is two kinds: 400.
    let mut both = bearer(&token(json!({})));
    both.push(("x-session".into(), "s".into()));
    assert_eq!(run(&chain, &both).await.unwrap_err().status(), 400);
}
