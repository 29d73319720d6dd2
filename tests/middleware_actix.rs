//! actix-web middleware and extractor over real HTTP on 127.0.0.1, held to
//! the same case table as the tower/axum adapter.
#![cfg(all(feature = "actix", feature = "remote"))]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod common;

use actix_web::{App, HttpServer, web};
use common::*;
use serde_json::{Map, Value};
use tokenwarden::Algorithm;
use tokenwarden::middleware::actix::{BearerAuthMiddleware, Claims};
use tokenwarden::middleware::{BearerAuth, Scopes};

type Json = Map<String, Value>;

async fn me(Claims(c): Claims<Json>) -> String {
    c["sub"].as_str().unwrap_or("").to_owned()
}

async fn maybe(claims: Option<Claims<Json>>) -> String {
    claims.map_or_else(
        || "anonymous".to_owned(),
        |Claims(c)| c["sub"].as_str().unwrap_or("").to_owned(),
    )
}

/// Starts the app on its own actix system thread, its logs captured into
/// `logs`; returns the base URL.
fn serve(auth: BearerAuth<Json>, logs: &LogBuffer) -> String {
    let (tx, rx) = std::sync::mpsc::channel();
    let logs = logs.clone();
    std::thread::spawn(move || {
        let _capture = capture_logs_into(&logs);
        actix_web::rt::System::new().block_on(async move {
            let worker_logs = logs.clone();
            let server = HttpServer::new(move || {
                // The factory runs on each worker thread: capture there too,
                // for the worker's life (the test's).
                std::mem::forget(capture_logs_into(&worker_logs));
                App::new()
                    .service(
                        web::resource("/me")
                            .wrap(BearerAuthMiddleware::new(auth.clone()))
                            .route(web::get().to(me)),
                    )
                    .service(
                        web::resource("/orders")
                            .wrap(BearerAuthMiddleware::new(
                                auth.clone().require(Scopes::all(["orders:read"])),
                            ))
                            .route(web::get().to(me)),
                    )
                    .service(
                        web::resource("/admin")
                            .wrap(BearerAuthMiddleware::new(
                                auth.clone()
                                    .require_roles("realm_access.roles", Scopes::all(["admin"])),
                            ))
                            .route(web::get().to(me)),
                    )
                    .service(
                        web::resource("/app")
                            .wrap(BearerAuthMiddleware::new(auth.clone().require_claims(
                                "client_id my-app",
                                common::http_cases::is_my_app,
                            )))
                            .route(web::get().to(me)),
                    )
                    .route("/maybe", web::get().to(maybe))
                    .wrap(BearerAuthMiddleware::new(auth.clone().allow_anonymous()))
            })
            .workers(1)
            .bind(("127.0.0.1", 0))
            .unwrap();
            tx.send(server.addrs()[0]).unwrap();
            server.run().await.unwrap();
        });
    });
    format!("http://{}", rx.recv().unwrap())
}

#[tokio::test]
async fn every_case_gets_the_same_answer_as_from_tower() {
    let (_guard, logs) = capture_logs();
    let base = serve(
        BearerAuth::new(validator(&[key(Algorithm::ES256)])).realm("orders"),
        &logs,
    );
    common::http_cases::run_all(&base, &logs).await;
}

#[tokio::test]
async fn keys_unavailable_is_503_without_a_challenge() {
    let base = serve(
        BearerAuth::new(common::http_cases::keyless_validator()),
        &LogBuffer::default(),
    );
    common::http_cases::run_keys_unavailable(&base).await;
}
