//! The tower layer alone, on a plain hyper server (no axum), held to the
//! same case table as the axum and actix adapters; and its edges: nested
//! layers on different validators, gRPC mode, duplicate cookies.
#![cfg(all(feature = "tower", feature = "remote"))]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod common;

use std::convert::Infallible;

use common::*;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use serde_json::{Map, Value, json};
use tokenwarden::middleware::{BearerAuth, Roles, Scopes};
use tokenwarden::{Algorithm, FixedClock, Validated, Validator};
use tower::util::BoxCloneSyncService;
use tower::{Layer, ServiceExt, service_fn};

type Json = Map<String, Value>;
type Body = Full<Bytes>;
/// Responses of layered and bare services alike, boxed to one type.
type Out = BoxBody<Bytes, Infallible>;
type Route<B> = BoxCloneSyncService<Request<B>, Response<Out>, Infallible>;

/// A layered service's response (a `ResponseBody`), boxed.
fn boxed<Bd>(resp: Response<Bd>) -> Response<Out>
where
    Bd: hyper::body::Body<Data = Bytes, Error = Infallible> + Send + Sync + 'static,
{
    resp.map(BodyExt::boxed)
}

/// Answers with the subject of the validated claims, or "anonymous".
fn handler<B: Send + 'static>() -> Route<B> {
    BoxCloneSyncService::new(service_fn(|req: Request<B>| async move {
        let sub = req
            .extensions()
            .get::<std::sync::Arc<Validated<Json>>>()
            .map_or("anonymous".to_owned(), |v| {
                v.claims["sub"].as_str().unwrap_or("").to_owned()
            });
        Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(sub)).boxed()))
    }))
}

fn route<B: Send + 'static>(auth: &BearerAuth) -> Route<B> {
    BoxCloneSyncService::new(auth.layer().layer(handler()).map_response(boxed))
}

/// The case table's app (see `common::http_cases`), for any request body.
fn app<B: Send + 'static>(auth: BearerAuth) -> Route<B> {
    let me = route(&auth);
    let orders = route(&auth.clone().require_scopes(Scopes::all(["orders:read"])));
    let admin = route(
        &auth
            .clone()
            .require_roles(Roles::all("realm_access.roles", ["admin"])),
    );
    let app_route = route(
        &auth
            .clone()
            .require_claims("client_id my-app", common::http_cases::is_my_app),
    );
    let cookie = route(&auth.clone().from_cookie("at"));
    let maybe = handler();
    let router = service_fn(move |req: Request<B>| {
        let target = match req.uri().path() {
            "/me" => me.clone(),
            "/orders" => orders.clone(),
            "/admin" => admin.clone(),
            "/app" => app_route.clone(),
            "/cookie" => cookie.clone(),
            _ => maybe.clone(),
        };
        target.oneshot(req)
    });
    BoxCloneSyncService::new(
        auth.allow_anonymous()
            .layer()
            .layer(router)
            .map_response(boxed),
    )
}

async fn serve(app: Route<Incoming>) -> String {
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
    let base = serve(app(
        BearerAuth::new(validator(&[key(Algorithm::ES256)])).realm("orders")
    ))
    .await;
    common::http_cases::run_all(&base, &logs, false).await;
}

#[tokio::test]
async fn keys_unavailable_is_503_without_a_challenge() {
    let base = serve(app(
        BearerAuth::new(common::http_cases::keyless_validator()),
    ))
    .await;
    common::http_cases::run_keys_unavailable(&base).await;
}

/// Sends one HTTP/2 request straight to the service (a real h2 connection
/// needs the `http2` features this crate's tests do not build).
async fn send_h2(
    app: &Route<Body>,
    path: &'static str,
    authorization: Option<String>,
    content_type: &'static str,
) -> common::http_cases::Answer {
    let mut req = Request::builder()
        .uri(path)
        .version(hyper::Version::HTTP_2)
        .header("content-type", content_type);
    if let Some(a) = authorization {
        req = req.header("authorization", a);
    }
    let resp = app
        .clone()
        .oneshot(req.body(Body::default()).unwrap())
        .await
        .unwrap();
    let header = |n: &str| {
        resp.headers()
            .get(n)
            .map(|v| v.to_str().unwrap().to_owned())
    };
    common::http_cases::Answer {
        status: resp.status().as_u16(),
        grpc_status: header("grpc-status"),
        content_type: header("content-type"),
    }
}

#[tokio::test]
async fn grpc_over_http2_gets_grpc_statuses() {
    let app = app(BearerAuth::new(validator(&[key(Algorithm::ES256)])).realm("orders"));
    common::http_cases::run_grpc(|p, a, ct| send_h2(&app, p, a, ct), false).await;
}

#[tokio::test]
async fn grpc_mode_off_keeps_http_statuses_for_grpc_requests() {
    // A forward-auth endpoint over h2c: the gateway reads any 200 as allow.
    let app = app(BearerAuth::new(validator(&[key(Algorithm::ES256)]))
        .realm("orders")
        .grpc(false));
    common::http_cases::run_grpc_off(|p, a, ct| send_h2(&app, p, a, ct), false).await;
}

#[tokio::test]
async fn grpc_mode_needs_http2_and_a_grpc_content_type() {
    let app: Route<Body> = app(BearerAuth::new(validator(&[key(Algorithm::ES256)])));
    // Not a gRPC content type, though it starts like one: plain HTTP.
    let a = send_h2(&app, "/me", None, "application/grpcx").await;
    assert_eq!((a.status, a.grpc_status), (401, None));
    // HTTP/1.1 with a gRPC content type: never 200 (the case table runs
    // this over a real connection too).
    let req = Request::builder()
        .uri("/me")
        .version(hyper::Version::HTTP_11)
        .header("content-type", "application/grpc")
        .body(Body::default())
        .unwrap();
    let resp = app.oneshot(req).await.unwrap();
    assert_eq!(resp.status().as_u16(), 401);
    assert!(resp.headers().get("grpc-status").is_none());
}

const STAFF_ISS: &str = "https://staff.idp.test";

/// A validator for the staff issuer, with keys of its own.
fn staff_validator() -> Validator {
    Validator::builder()
        .issuer(STAFF_ISS)
        .audience(AUD)
        .clock(FixedClock(NOW))
        .keys(keyset(&[key(Algorithm::EdDSA)]))
        .build()
        .unwrap()
}

#[tokio::test]
async fn an_inner_layer_on_another_validator_validates_the_token_again() {
    // Outer layer: customers (anonymous allowed). Inner `/admin`: staff,
    // scope `admin`. `/orders`: the customers' own validator, scope `admin`
    // too, so it shares the outer layer's verdict.
    let customers = BearerAuth::new(validator(&[key(Algorithm::ES256)]));
    let admin = route(&BearerAuth::new(staff_validator()).require_scopes(Scopes::all(["admin"])));
    let orders = route(&customers.clone().require_scopes(Scopes::all(["admin"])));
    let router = service_fn(move |req: Request<Incoming>| {
        let target = if req.uri().path() == "/admin" {
            admin.clone()
        } else {
            orders.clone()
        };
        target.oneshot(req)
    });
    let base = serve(BoxCloneSyncService::new(
        customers
            .allow_anonymous()
            .layer()
            .layer(router)
            .map_response(boxed),
    ))
    .await;
    let mut c = claims();
    c["scope"] = json!("admin");
    let customer = key(Algorithm::ES256).token(&c);
    let get = |path: &str| {
        reqwest::Client::new()
            .get(format!("{base}{path}"))
            .bearer_auth(&customer)
            .send()
    };
    // The customer token passes the customers' layers...
    let resp = get("/orders").await.unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    assert_eq!(resp.text().await.unwrap(), "alice");
    // ...and the staff layer judges it itself, and refuses it.
    let resp = get("/admin").await.unwrap();
    assert_eq!(resp.status().as_u16(), 401);
    assert!(
        resp.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .contains(r#"error="invalid_token""#)
    );
}

#[tokio::test]
async fn an_anonymous_inner_layer_hides_claims_of_another_validator() {
    // Outer: customers, token from Authorization. Inner: staff, token from
    // the cookie `at`, anonymous allowed. A customer token and no cookie:
    // the inner route is anonymous, and its handler sees no claims.
    let customers = BearerAuth::new(validator(&[key(Algorithm::ES256)]));
    let staff = BearerAuth::new(staff_validator())
        .from_cookie("at")
        .allow_anonymous();
    let app: Route<Body> = BoxCloneSyncService::new(
        customers
            .layer()
            .layer(route::<Body>(&staff))
            .map_response(boxed),
    );
    let req = Request::builder()
        .uri("/")
        .header(
            "authorization",
            format!("Bearer {}", key(Algorithm::ES256).token(&claims())),
        )
        .body(Body::default())
        .unwrap();
    let resp = app.oneshot(req).await.unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let body = http_body_util::BodyExt::collect(resp.into_body())
        .await
        .unwrap()
        .to_bytes();
    assert_eq!(&body[..], b"anonymous");
}
