//! The tower layer alone, on a plain hyper server (no axum), held to the
//! same case table as the axum and actix adapters.
#![cfg(all(feature = "tower", feature = "remote"))]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod common;

use std::convert::Infallible;

use common::*;
use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use serde_json::{Map, Value};
use tokenwarden::middleware::{BearerAuth, Scopes};
use tokenwarden::{Algorithm, Validated};
use tower::util::BoxCloneSyncService;
use tower::{Layer, ServiceExt, service_fn};

type Json = Map<String, Value>;
type Body = Full<Bytes>;
type Route = BoxCloneSyncService<Request<Incoming>, Response<Body>, Infallible>;

/// Answers with the subject of the validated claims, or "anonymous".
fn handler() -> Route {
    BoxCloneSyncService::new(service_fn(|req: Request<Incoming>| async move {
        let sub = req
            .extensions()
            .get::<std::sync::Arc<Validated<Json>>>()
            .map_or("anonymous".to_owned(), |v| {
                v.claims["sub"].as_str().unwrap_or("").to_owned()
            });
        Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(sub))))
    }))
}

fn route(auth: &BearerAuth) -> Route {
    BoxCloneSyncService::new(auth.layer().layer(handler()))
}

async fn serve(auth: BearerAuth) -> String {
    let me = route(&auth);
    let orders = route(&auth.clone().require(Scopes::all(["orders:read"])));
    let admin = route(
        &auth
            .clone()
            .require_roles("realm_access.roles", Scopes::all(["admin"])),
    );
    let app_route = route(
        &auth
            .clone()
            .require_claims("client_id my-app", common::http_cases::is_my_app),
    );
    let maybe = handler();
    let router = service_fn(move |req: Request<Incoming>| {
        let target = match req.uri().path() {
            "/me" => me.clone(),
            "/orders" => orders.clone(),
            "/admin" => admin.clone(),
            "/app" => app_route.clone(),
            _ => maybe.clone(),
        };
        target.oneshot(req)
    });
    let app = auth.allow_anonymous().layer().layer(router);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let service = TowerToHyperService::new(app.clone());
            tokio::spawn(async move {
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    format!("http://{addr}")
}

#[tokio::test]
async fn every_case_gets_the_same_answer_from_the_bare_tower_layer() {
    let (_guard, logs) = capture_logs();
    let base = serve(BearerAuth::new(validator(&[key(Algorithm::ES256)])).realm("orders")).await;
    common::http_cases::run_all(&base, &logs).await;
}

#[tokio::test]
async fn keys_unavailable_is_503_without_a_challenge() {
    let base = serve(BearerAuth::new(common::http_cases::keyless_validator())).await;
    common::http_cases::run_keys_unavailable(&base).await;
}
