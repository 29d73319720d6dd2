//! tonic for real: a tonic server (HTTP/2 over a 127.0.0.1 listener) behind
//! `BearerAuth::layer()`, called by a tonic client through tonic-health's
//! generated `HealthClient`/`HealthServer` (issue 15 item 7).
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use serde_json::{Map, Value, json};
use tokenwarden::middleware::{BearerAuth, ScopedClaims, Scopes};
use tokenwarden::testing::TestKey;
use tokenwarden::{Algorithm, Validated};
use tonic::codegen::tokio_stream::Stream;
use tonic::transport::{Channel, Endpoint, Server};
use tonic::{Code, Request, Response, Status};
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::health_server::{Health, HealthServer};
use tonic_health::pb::{HealthCheckRequest, HealthCheckResponse};

use common::{NOW, claims, key};

type Json = Map<String, Value>;

/// The health service, with one per-RPC rule: asking about `orders` needs
/// the scope `orders:read`, checked inside the method on the claims the
/// layer attached. Counts the calls that reach it.
#[derive(Default)]
struct Checked {
    calls: Arc<AtomicUsize>,
}

#[tonic::async_trait]
impl Health for Checked {
    async fn check(
        &self,
        request: Request<HealthCheckRequest>,
    ) -> Result<Response<HealthCheckResponse>, Status> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        // The layer's verified claims travel with the call as an extension.
        let Some(token) = request.extensions().get::<Arc<Validated<Json>>>() else {
            return Err(Status::internal("no claims: the layer is not in front"));
        };
        if request.get_ref().service == "orders" && !token.claims.has_scope("orders:read") {
            return Err(Status::permission_denied("requires orders:read"));
        }
        let mut response = Response::new(HealthCheckResponse {
            status: ServingStatus::Serving as i32,
        });
        let sub = token.claims["sub"].as_str().unwrap_or_default();
        response
            .metadata_mut()
            .insert("x-subject", sub.parse().expect("ascii subject"));
        Ok(response)
    }

    type WatchStream =
        Pin<Box<dyn Stream<Item = Result<HealthCheckResponse, Status>> + Send + 'static>>;

    async fn watch(
        &self,
        _request: Request<HealthCheckRequest>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        Err(Status::unimplemented("watch"))
    }
}

/// A tonic server on 127.0.0.1 behind `auth`, on this test's runtime (it
/// stops with the runtime). Returns its address and the method-call counter.
async fn serve(auth: BearerAuth) -> (SocketAddr, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let service = Checked::default();
    let calls = service.calls.clone();
    let incoming = tonic::transport::server::TcpIncoming::from(listener);
    tokio::spawn(
        Server::builder()
            .layer(auth.layer())
            .add_service(HealthServer::new(service))
            .serve_with_incoming(incoming),
    );
    (addr, calls)
}

/// A tonic channel to `addr`: bound and listening already, so the connect
/// needs no wait.
async fn channel(addr: SocketAddr) -> Channel {
    Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap()
}

fn auth(key: &TestKey) -> BearerAuth {
    BearerAuth::new(common::validator(&[key])).realm("health")
}

/// `Check` for `service`, with `token` as the bearer credential if given.
async fn check(
    ch: &Channel,
    service: &str,
    token: Option<&str>,
) -> Result<Response<HealthCheckResponse>, Status> {
    let mut req = Request::new(HealthCheckRequest {
        service: service.into(),
    });
    if let Some(t) = token {
        req.metadata_mut()
            .insert("authorization", format!("Bearer {t}").parse().unwrap());
    }
    HealthClient::new(ch.clone()).check(req).await
}

fn token(extra: Value) -> String {
    let mut c = claims();
    for (k, v) in extra.as_object().unwrap() {
        c[k] = v.clone();
    }
    key(Algorithm::ES256).token(&c)
}

fn challenge(status: &Status) -> String {
    status
        .metadata()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default()
}

#[tokio::test]
async fn valid_token_is_ok_and_its_claims_reach_the_method() {
    let (addr, calls) = serve(auth(key(Algorithm::ES256))).await;
    let ch = channel(addr).await;
    let resp = check(&ch, "", Some(&token(json!({})))).await.unwrap();
    assert_eq!(resp.get_ref().status, ServingStatus::Serving as i32);
    assert_eq!(resp.metadata().get("x-subject").unwrap(), "alice");
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn missing_token_is_unauthenticated() {
    let (addr, calls) = serve(auth(key(Algorithm::ES256))).await;
    let ch = channel(addr).await;
    let err = check(&ch, "", None).await.unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated, "{err:?}");
    assert_eq!(err.message(), "missing_token");
    assert_eq!(challenge(&err), r#"Bearer realm="health""#);
    assert_eq!(calls.load(Ordering::SeqCst), 0, "refused before the method");
}

#[tokio::test]
async fn expired_token_is_unauthenticated() {
    let (addr, calls) = serve(auth(key(Algorithm::ES256))).await;
    let ch = channel(addr).await;
    let expired = token(json!({"iat": NOW - 7200, "exp": NOW - 3600}));
    let err = check(&ch, "", Some(&expired)).await.unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated, "{err:?}");
    assert_eq!(err.message(), "expired");
    assert!(
        challenge(&err).contains(r#"error="invalid_token", error_description="expired""#),
        "{}",
        challenge(&err)
    );
    assert_eq!(calls.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn under_scoped_token_is_permission_denied_by_the_layer() {
    let auth = auth(key(Algorithm::ES256)).require_scopes(Scopes::all(["health:check"]));
    let (addr, calls) = serve(auth).await;
    let ch = channel(addr).await;
    let err = check(&ch, "", Some(&token(json!({"scope": "health:read"}))))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied, "{err:?}");
    assert_eq!(err.message(), "insufficient_scope");
    assert!(challenge(&err).contains(r#"scope="health:check""#));
    assert_eq!(calls.load(Ordering::SeqCst), 0);
    // The scope granted, the same call passes.
    let ok = check(&ch, "", Some(&token(json!({"scope": "health:check"})))).await;
    assert_eq!(ok.unwrap().get_ref().status, ServingStatus::Serving as i32);
}

#[tokio::test]
async fn a_per_rpc_scope_is_checked_inside_the_method() {
    let (addr, calls) = serve(auth(key(Algorithm::ES256))).await;
    let ch = channel(addr).await;
    let err = check(
        &ch,
        "orders",
        Some(&token(json!({"scope": "health:check"}))),
    )
    .await
    .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    assert_eq!(err.message(), "requires orders:read");
    let ok = check(&ch, "orders", Some(&token(json!({"scp": ["orders:read"]})))).await;
    assert_eq!(ok.unwrap().get_ref().status, ServingStatus::Serving as i32);
    assert_eq!(calls.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn a_token_signed_by_another_key_never_reaches_the_method() {
    // Attack: a well-formed token with the trusted kid, signed by a key the
    // server does not trust.
    let (addr, calls) = serve(auth(key(Algorithm::ES256))).await;
    let ch = channel(addr).await;
    let forger = TestKey::generate(Algorithm::ES256, "ES256").unwrap();
    let forged = forger.token(&claims());
    let err = check(&ch, "", Some(&forged)).await.unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated, "{err:?}");
    assert_eq!(err.message(), "invalid_signature");
    assert_eq!(calls.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn refusals_are_http_200_with_grpc_status_on_the_wire() {
    // The raw HTTP/2 response, through tonic's own transport: what any gRPC
    // client (not only tonic's) reads.
    use tower::ServiceExt as _;
    let (addr, _) = serve(auth(key(Algorithm::ES256)).require_scopes(Scopes::all(["x"]))).await;
    let ch = channel(addr).await;
    for (token, grpc_status) in [(None, "16"), (Some(token(json!({}))), "7")] {
        let mut req = http::Request::builder()
            .method("POST")
            .uri(format!("http://{addr}/grpc.health.v1.Health/Check"))
            .header("content-type", "application/grpc")
            .header("te", "trailers");
        if let Some(t) = &token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        let req = req.body(tonic::body::Body::empty()).unwrap();
        let resp = ch.clone().oneshot(req).await.unwrap();
        assert_eq!(resp.version(), http::Version::HTTP_2);
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.headers()["content-type"], "application/grpc");
        assert_eq!(resp.headers()["grpc-status"], grpc_status);
    }
}
