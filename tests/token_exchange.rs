//! Delegation (RFC 8693): the `act` chain read into the `Principal`, the
//! delegation limits of `Requirements`, and token exchange end to end with
//! the test issuer and real loopback services.
#![cfg(all(feature = "axum", feature = "testing", feature = "remote"))]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod common;

use common::{claims, key, validator};
use serde_json::{Value, json};
use tokenwarden::authn::jwt::JwtAuthenticator;
use tokenwarden::authn::{Chain, MAX_DELEGATION_DEPTH, Principal, Refusal, RequestView};
use tokenwarden::{Algorithm, Requirements};

fn token(extra: Value) -> String {
    let mut c = claims();
    for (k, v) in extra.as_object().unwrap() {
        c[k] = v.clone();
    }
    key(Algorithm::ES256).token(&c)
}

fn chain(requirements: Requirements) -> Chain {
    Chain::new()
        .jwt(JwtAuthenticator::new(validator(&[key(Algorithm::ES256)])))
        .require(requirements)
}

async fn judge(chain: &Chain, token: &str) -> Result<Principal, Refusal> {
    let auth = format!("Bearer {token}");
    let headers = [("authorization", auth.as_str())];
    chain
        .authenticate(&RequestView::new("GET", "/orders", &headers))
        .await
}

/// `act` nested `depth` times: `svc-{depth-1}` acts now, `svc-0` first.
fn act_chain(depth: usize) -> Value {
    let mut act = json!({"sub": "svc-0"});
    for i in 1..depth {
        act = json!({"sub": format!("svc-{i}"), "act": act});
    }
    act
}

#[tokio::test]
async fn the_act_chain_is_read_into_the_principal_current_actor_first() {
    let t =
        token(json!({"act": {"sub": "svc-b", "iss": "https://idp.test", "act": {"sub": "svc-a"}}}));
    let p = judge(&chain(Requirements::new()), &t)
        .await
        .expect("accepted");
    let actors = p.actors().expect("well formed");
    let subs: Vec<&str> = actors.iter().map(|a| a.subject()).collect();
    assert_eq!(subs, ["svc-b", "svc-a"]);
    assert_eq!(actors[0].issuer(), Some("https://idp.test"));
    assert_eq!(actors[1].issuer(), None);
    assert_eq!(p.delegation_depth(), Ok(2));
    assert_eq!(p.subject(), "alice");
}

#[tokio::test]
async fn a_token_without_act_has_depth_zero_and_may_act_is_exposed() {
    let t = token(json!({"may_act": {"sub": "svc-a"}}));
    let p = judge(&chain(Requirements::new()), &t)
        .await
        .expect("accepted");
    assert_eq!(p.delegation_depth(), Ok(0));
    assert!(p.actors().expect("none").is_empty());
    assert_eq!(p.may_act(), Some(&json!({"sub": "svc-a"})));
    assert!(tokenwarden::authn::may_act_allows(
        p.may_act().unwrap(),
        "svc-a",
        None
    ));
}

/// Attack: a chain a handler cannot read is refused by the chain itself,
/// with no requirement asking.
#[tokio::test]
async fn a_malformed_act_is_refused_401_invalid_act() {
    let c = chain(Requirements::new());
    for act in [
        json!("svc-a"),
        json!({"iss": "https://idp.test"}),
        json!({"sub": 7}),
        json!({"sub": "svc-b", "act": ["svc-a"]}),
        json!({"sub": "svc-b", "iss": {"x": 1}}),
    ] {
        let r = judge(&c, &token(json!({"act": act}))).await.unwrap_err();
        assert_eq!((r.status(), r.kind()), (401, "invalid_act"), "{act}");
    }
}

/// Attack: a token nesting `act` past the limit (up to as deep as the
/// token's JSON may nest) is refused after MAX_DELEGATION_DEPTH steps, no
/// recursion, no panic; deeper JSON never parses.
#[tokio::test]
async fn act_nested_past_the_limit_is_refused_without_recursion() {
    let c = chain(Requirements::new());
    let ok = judge(&c, &token(json!({"act": act_chain(MAX_DELEGATION_DEPTH)}))).await;
    assert_eq!(
        ok.expect("at the limit").delegation_depth(),
        Ok(MAX_DELEGATION_DEPTH)
    );
    for depth in [MAX_DELEGATION_DEPTH + 1, 30] {
        let r = judge(&c, &token(json!({"act": act_chain(depth)})))
            .await
            .unwrap_err();
        assert_eq!(
            (r.status(), r.kind()),
            (401, "invalid_act"),
            "depth {depth}"
        );
    }
    // The token's JSON nests at most 32 deep: deeper is malformed before
    // any claim is read.
    let r = judge(&c, &token(json!({"act": act_chain(120)})))
        .await
        .unwrap_err();
    assert_eq!((r.status(), r.kind()), (401, "malformed"));
}

/// Attack: a two-hop chain where one hop is the route's limit.
#[tokio::test]
async fn max_delegation_depth_refuses_a_longer_chain_403() {
    let c = chain(Requirements::new().max_delegation_depth(1));
    assert!(
        judge(&c, &token(json!({"act": act_chain(1)})))
            .await
            .is_ok()
    );
    assert!(
        judge(&c, &token(json!({}))).await.is_ok(),
        "no act: depth 0"
    );
    let r = judge(&c, &token(json!({"act": act_chain(2)})))
        .await
        .unwrap_err();
    assert_eq!(
        (r.status(), r.error(), r.kind()),
        (403, Some("insufficient_scope"), "delegation_refused")
    );
    assert_eq!(r.description(), "delegation depth 2 exceeds the limit of 1");
    let none = chain(Requirements::new().max_delegation_depth(0));
    assert_eq!(
        judge(&none, &token(json!({"act": act_chain(1)})))
            .await
            .unwrap_err()
            .kind(),
        "delegation_refused"
    );
}

/// Attack: an actor the route does not know acts for the user.
#[tokio::test]
async fn allowed_actors_refuse_an_unknown_current_actor_403() {
    let c = chain(Requirements::new().allowed_actors(["orders-svc"]));
    assert!(
        judge(&c, &token(json!({"act": {"sub": "orders-svc"}})))
            .await
            .is_ok()
    );
    assert!(judge(&c, &token(json!({}))).await.is_ok(), "not delegated");
    let r = judge(&c, &token(json!({"act": {"sub": "mallory-svc\"\r\n"}})))
        .await
        .unwrap_err();
    assert_eq!((r.status(), r.kind()), (403, "delegation_refused"));
    assert_eq!(r.description(), "actor mallory-svc is not allowed");
}

/// RFC 8693 §4.1: only the current actor is input to access control; an
/// allowed actor deeper in the chain does not let another one act now.
#[tokio::test]
async fn only_the_current_actor_counts_for_allowed_actors() {
    let c = chain(Requirements::new().allowed_actors(["orders-svc"]));
    let t = token(json!({"act": {"sub": "mallory-svc", "act": {"sub": "orders-svc"}}}));
    assert_eq!(
        judge(&c, &t).await.unwrap_err().kind(),
        "delegation_refused"
    );
    let t = token(json!({"act": {"sub": "orders-svc", "act": {"sub": "anyone"}}}));
    assert!(judge(&c, &t).await.is_ok());
}

#[tokio::test]
async fn an_allowed_actor_with_an_issuer_must_name_it() {
    let c = chain(Requirements::new().allowed_actor_from("orders-svc", "https://idp.test"));
    let good = token(json!({"act": {"sub": "orders-svc", "iss": "https://idp.test"}}));
    assert!(judge(&c, &good).await.is_ok());
    for act in [
        json!({"sub": "orders-svc"}),
        json!({"sub": "orders-svc", "iss": "https://evil.test"}),
    ] {
        assert_eq!(
            judge(&c, &token(json!({"act": act})))
                .await
                .unwrap_err()
                .kind(),
            "delegation_refused"
        );
    }
}
