//! DPoP (RFC 9449 §11.1) through layers nested around one route, over real
//! HTTP on 127.0.0.1: an application-wide layer and a route's own, each
//! with its chain, judge one request; when they record proofs in one
//! replay store the inner one must not call the proof its outer one just
//! recorded a replay, and a replay must still be found.
#![cfg(all(feature = "axum", feature = "testing"))]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::routing::get;
use common::NOW;
use common::dpop::{bound_token, chain, client, config, dpop_headers, proof};
use tokenwarden::authn::dpop::DpopConfig;
use tokenwarden::authn::{Chain, Principal};
use tokenwarden::middleware::BearerAuth;
use tokenwarden::state::replay::{MemoryReplayStore, ReplayStore};
use tokenwarden::{FixedClock, Requirements};

const HTU: &str = "https://api.test/orders/7";
const PATH: &str = "/orders/7";

async fn whoami(p: Principal) -> String {
    format!("{} by {}", p.subject(), p.authenticator())
}

/// A store as the fleet's would be: one `Arc` given to every layer.
fn shared_store() -> Arc<dyn ReplayStore> {
    Arc::new(MemoryReplayStore::new(1_000))
}

/// The route's own chain: another chain, with a requirement of its own.
fn route_chain(store: Arc<dyn ReplayStore>) -> Chain {
    chain(config().shared_replay_store(store))
        .require(Requirements::new().scopes_all(["orders:read"]))
}

/// A service with an application-wide layer (`outer`) and a route layer
/// (`inner`) around `GET /orders/7`.
async fn serve(outer: Chain, inner: Chain) -> String {
    let app = Router::new()
        .route(
            PATH,
            get(whoami).route_layer(BearerAuth::from_chain(inner).layer()),
        )
        .layer(BearerAuth::from_chain(outer).layer());
    common::axum_server::serve_axum(app).await
}

async fn send(base: &str, headers: &[(String, String)]) -> reqwest::Response {
    common::dpop::send_get(&format!("{base}{PATH}"), headers).await
}

/// Status and the first challenge.
async fn answer(base: &str, headers: &[(String, String)]) -> (u16, String) {
    let resp = send(base, headers).await;
    let challenge = resp
        .headers()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let status = resp.status().as_u16();
    let body = resp.text().await.unwrap();
    if status == 200 {
        (status, body)
    } else {
        (status, challenge)
    }
}

/// Regression (a stop note's open item): the inner layer called the
/// proof its outer layer had recorded in their one store a replay.
#[tokio::test]
async fn nested_layers_sharing_a_replay_store_take_one_proof_once() {
    let store = shared_store();
    let base = serve(
        chain(config().shared_replay_store(store.clone())),
        route_chain(store),
    )
    .await;
    let token = bound_token(client(0));
    let h = dpop_headers(&token, &[&proof(client(0), "GET", HTU, &token).sign()]);
    assert_eq!(answer(&base, &h).await, (200, "alice by dpop".to_owned()));
    // The same proof again is a replay, found by the outer layer.
    let (status, challenge) = answer(&base, &h).await;
    assert_eq!(status, 401);
    assert!(challenge.contains("already used"), "{challenge}");
    // A fresh proof passes both.
    let fresh = proof(client(0), "GET", HTU, &token).jti("fresh");
    let h = dpop_headers(&token, &[&fresh.sign()]);
    assert_eq!(answer(&base, &h).await.0, 200);
}

/// Attack: two instances whose application-wide layers keep proofs in a
/// local cache each and whose route layers share the fleet's store. A
/// proof used on instance A and replayed on instance B is fresh to B's
/// local cache; B's route layer must still find it in the shared store,
/// not skip it because an outer layer recorded it (in another store).
#[tokio::test]
async fn a_proof_an_outer_layer_recorded_in_another_store_is_still_recorded_in_the_shared_one() {
    let fleet = shared_store();
    let a = serve(chain(config()), route_chain(fleet.clone())).await;
    let b = serve(chain(config()), route_chain(fleet)).await;
    let token = bound_token(client(0));
    let h = dpop_headers(&token, &[&proof(client(0), "GET", HTU, &token).sign()]);
    assert_eq!(answer(&a, &h).await.0, 200);
    let (status, challenge) = answer(&b, &h).await;
    assert_eq!(status, 401, "a replay on another instance passed");
    assert!(challenge.contains("already used"), "{challenge}");
}

/// Attack: the inner layer skips only the replay insert, after every
/// other check; a proof its outer layer took is still held to the inner
/// layer's own rules (here: another external origin, so another `htu`).
#[tokio::test]
async fn the_inner_layer_still_judges_a_proof_its_outer_layer_recorded() {
    let store = shared_store();
    let other_origin = DpopConfig::new("https://other.test")
        .clock(FixedClock(NOW))
        .shared_replay_store(store.clone());
    let base = serve(
        chain(config().shared_replay_store(store)),
        chain(other_origin),
    )
    .await;
    let token = bound_token(client(0));
    let h = dpop_headers(&token, &[&proof(client(0), "GET", HTU, &token).sign()]);
    let (status, challenge) = answer(&base, &h).await;
    assert_eq!(status, 401, "{challenge}");
    assert!(challenge.contains("invalid_dpop_proof"), "{challenge}");
    assert!(!challenge.contains("already used"), "{challenge}");
}

/// Attack: a proof its outer layer took still needs the nonce the inner
/// layer requires (RFC 9449 §8), checked before the skipped insert.
#[tokio::test]
async fn an_inner_layer_requiring_nonces_still_asks_for_one() {
    let store = shared_store();
    let with_nonces = config()
        .shared_replay_store(store.clone())
        .nonces(vec![7; 32], Duration::from_secs(300));
    let base = serve(
        chain(config().shared_replay_store(store)),
        chain(with_nonces),
    )
    .await;
    let token = bound_token(client(0));
    let h = dpop_headers(&token, &[&proof(client(0), "GET", HTU, &token).sign()]);
    let resp = send(&base, &h).await;
    assert_eq!(resp.status(), 401);
    let challenge = resp.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(challenge.contains("use_dpop_nonce"), "{challenge}");
    let nonce = resp.headers()["dpop-nonce"].to_str().unwrap().to_owned();
    // With the nonce, a new proof passes both layers once.
    let h = dpop_headers(
        &token,
        &[&proof(client(0), "GET", HTU, &token).nonce(&nonce).sign()],
    );
    assert_eq!(answer(&base, &h).await.0, 200);
    assert_eq!(answer(&base, &h).await.0, 401);
}

#[cfg(feature = "actix")]
mod actix {
    use super::*;
    use actix_web::{App, web};
    use tokenwarden::middleware::actix::BearerAuthMiddleware;

    async fn who(p: Principal) -> String {
        format!("{} by {}", p.subject(), p.authenticator())
    }

    fn serve(outer: Chain, inner: Chain) -> String {
        let (outer, inner) = (BearerAuth::from_chain(outer), BearerAuth::from_chain(inner));
        common::actix::serve_actix(move || {
            App::new()
                .wrap(BearerAuthMiddleware::new(outer.clone()))
                .service(
                    web::resource(PATH)
                        .wrap(BearerAuthMiddleware::new(inner.clone()))
                        .route(web::get().to(who)),
                )
        })
    }

    #[tokio::test]
    async fn actix_nested_middleware_sharing_a_replay_store_take_one_proof_once() {
        let store = shared_store();
        let base = serve(
            chain(config().shared_replay_store(store.clone())),
            route_chain(store),
        );
        let token = bound_token(client(1));
        let h = dpop_headers(&token, &[&proof(client(1), "GET", HTU, &token).sign()]);
        assert_eq!(answer(&base, &h).await, (200, "alice by dpop".to_owned()));
        let (status, challenge) = answer(&base, &h).await;
        assert_eq!(status, 401);
        assert!(challenge.contains("already used"), "{challenge}");
    }

    #[tokio::test]
    async fn actix_a_replay_on_another_instance_is_found_in_the_shared_store() {
        let fleet = shared_store();
        let a = serve(chain(config()), route_chain(fleet.clone()));
        let b = serve(chain(config()), route_chain(fleet));
        let token = bound_token(client(1));
        let h = dpop_headers(&token, &[&proof(client(1), "GET", HTU, &token).sign()]);
        assert_eq!(answer(&a, &h).await.0, 200);
        assert_eq!(
            answer(&b, &h).await.0,
            401,
            "a replay on another instance passed"
        );
    }
}
