//! A tonic gRPC server behind tokenwarden's layer, with the example keys (no
//! identity provider needed), and a tonic client that calls it: a valid
//! token, no token, and a per-RPC scope the token lacks.
//!
//! ```sh
//! cargo run --example tonic --features tower            # serve, call three times, exit
//! cargo run --example tonic --features tower -- --serve # serve on 127.0.0.1:50051 until Ctrl-C
//! ```
//!
//! The service is tonic-health's generated `Health` (so no protoc); yours
//! plugs in the same way.
#![allow(clippy::expect_used)]

use std::pin::Pin;
use std::sync::Arc;

use serde_json::{Map, Value};
use tokenwarden::middleware::{BearerAuth, Scopes};
use tokenwarden::{KeySet, Validated, Validator};
use tonic::codegen::tokio_stream::Stream;
use tonic::transport::{Endpoint, Server};
use tonic::{Request, Response, Status};
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::health_server::{Health, HealthServer};
use tonic_health::pb::{HealthCheckRequest, HealthCheckResponse};

struct Orders;

#[tonic::async_trait]
impl Health for Orders {
    async fn check(
        &self,
        request: Request<HealthCheckRequest>,
    ) -> Result<Response<HealthCheckResponse>, Status> {
        // The layer let the call through, so the verified claims are here.
        let token = request
            .extensions()
            .get::<Arc<Validated<Map<String, Value>>>>()
            .ok_or_else(|| Status::internal("no claims"))?;
        // A per-RPC requirement, checked in the method.
        if request.get_ref().service == "orders.admin" {
            Scopes::all(["orders:admin"])
                .check(&token.claims)
                .map_err(|r| Status::permission_denied(r.to_string()))?;
        }
        Ok(Response::new(HealthCheckResponse {
            status: ServingStatus::Serving as i32,
        }))
    }

    type WatchStream = Pin<Box<dyn Stream<Item = Result<HealthCheckResponse, Status>> + Send>>;

    async fn watch(
        &self,
        _: Request<HealthCheckRequest>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        Err(Status::unimplemented("watch"))
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let keys = KeySet::from_jwks(include_bytes!("data/jwks.json")).expect("example keys");
    let validator = Validator::builder()
        .issuer("https://idp.example.com")
        .audience("https://api.example.com")
        .keys(keys)
        .build()
        .expect("validator");
    let auth = BearerAuth::new(validator).realm("orders");
    // The whole wiring: one layer in front of every service of the server.
    let server = Server::builder()
        .layer(auth.layer())
        .add_service(HealthServer::new(Orders));

    if std::env::args().any(|a| a == "--serve") {
        println!("gRPC on http://127.0.0.1:50051 (grpc.health.v1.Health/Check)");
        server
            .serve("127.0.0.1:50051".parse().expect("address"))
            .await
            .expect("server");
        return;
    }

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind 127.0.0.1");
    let addr = listener.local_addr().expect("address");
    tokio::spawn(server.serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener)));
    let channel = Endpoint::from_shared(format!("http://{addr}"))
        .expect("endpoint")
        .connect()
        .await
        .expect("connect");
    let mut client = HealthClient::new(channel);

    let token = include_str!("data/valid.jwt").trim();
    let mut ok = true;
    for (what, service, token, expected) in [
        ("valid token", "", Some(token), tonic::Code::Ok),
        ("no token", "", None, tonic::Code::Unauthenticated),
        (
            "lacks orders:admin",
            "orders.admin",
            Some(token),
            tonic::Code::PermissionDenied,
        ),
    ] {
        let mut req = Request::new(HealthCheckRequest {
            service: service.into(),
        });
        if let Some(t) = token {
            let value = format!("Bearer {t}").parse().expect("header value");
            req.metadata_mut().insert("authorization", value);
        }
        let (code, detail) = match client.check(req).await {
            Ok(resp) => (tonic::Code::Ok, format!("status {}", resp.get_ref().status)),
            Err(s) => (s.code(), s.message().to_owned()),
        };
        let mark = if code == expected { "ok " } else { "BAD" };
        ok &= code == expected;
        println!("[{mark}] {what}: {code:?} ({detail})");
    }
    std::process::exit(if ok { 0 } else { 1 });
}
