//! actix-web middleware and extractor over real HTTP on 127.0.0.1, held to
//! the same case table as the tower/axum adapter; and its edges: nested
//! middleware on different validators, gRPC mode.
#![cfg(all(feature = "actix", feature = "remote"))]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod common;

use actix_web::body::MessageBody;
use actix_web::dev::{HttpServiceFactory, ServiceFactory, ServiceRequest, ServiceResponse};
use actix_web::http::Version;
use actix_web::{App, HttpServer, web};
use common::*;
use serde_json::{Map, Value, json};
use tokenwarden::middleware::actix::{BearerAuthMiddleware, Claims};
use tokenwarden::middleware::{BearerAuth, Roles, Scopes};
use tokenwarden::{Algorithm, FixedClock, Validator};

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

fn guarded(path: &str, auth: BearerAuth<Json>) -> impl HttpServiceFactory + use<> {
    web::resource(path)
        .wrap(BearerAuthMiddleware::new(auth))
        .route(web::get().to(me))
}

/// The case table's app (see `common::http_cases`).
fn app(
    auth: BearerAuth<Json>,
) -> App<
    impl ServiceFactory<
        ServiceRequest,
        Config = (),
        Response = ServiceResponse<impl MessageBody>,
        Error = actix_web::Error,
        InitError = (),
    >,
> {
    App::new()
        // Registered first and outside the scope: no middleware in front.
        .route("/bare", web::get().to(me))
        .service(
            web::scope("")
                .service(guarded("/me", auth.clone()))
                .service(guarded(
                    "/orders",
                    auth.clone().require_scopes(Scopes::all(["orders:read"])),
                ))
                .service(guarded(
                    "/admin",
                    auth.clone()
                        .require_roles(Roles::all("realm_access.roles", ["admin"])),
                ))
                .service(guarded(
                    "/app",
                    auth.clone()
                        .require_claims("client_id my-app", common::http_cases::is_my_app),
                ))
                .service(guarded("/cookie", auth.clone().from_cookie("at")))
                .route("/maybe", web::get().to(maybe))
                .route("/claims", web::get().to(me))
                .wrap(BearerAuthMiddleware::new(auth.allow_anonymous())),
        )
}

/// Starts an app on its own actix system thread, its logs captured into
/// `logs`; returns the base URL.
fn serve_with<F, A, B>(factory: F, logs: &LogBuffer) -> String
where
    F: Fn() -> App<A> + Send + Clone + 'static,
    A: ServiceFactory<
            ServiceRequest,
            Config = (),
            Response = ServiceResponse<B>,
            Error = actix_web::Error,
            InitError = (),
        > + 'static,
    B: MessageBody + 'static,
{
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
                factory()
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

fn serve(auth: BearerAuth<Json>, logs: &LogBuffer) -> String {
    serve_with(move || app(auth.clone()), logs)
}

#[tokio::test]
async fn every_case_gets_the_same_answer_as_from_tower() {
    let (_guard, logs) = capture_logs();
    let base = serve(
        BearerAuth::new(validator(&[key(Algorithm::ES256)])).realm("orders"),
        &logs,
    );
    common::http_cases::run_all(&base, &logs, true).await;
}

#[tokio::test]
async fn keys_unavailable_is_503_without_a_challenge() {
    let base = serve(
        BearerAuth::new(common::http_cases::keyless_validator()),
        &LogBuffer::default(),
    );
    common::http_cases::run_keys_unavailable(&base).await;
}

/// Sends the gRPC cases as HTTP/2 requests to the case table's app:
/// actix-web serves HTTP/2 only over TLS, so the requests go straight to
/// the app's service, marked HTTP/2. `grpc_mode`: what `auth` was built
/// with, so which answers to expect.
fn grpc_requests(auth: BearerAuth<Json>, grpc_mode: bool) {
    actix_web::rt::System::new().block_on(async {
        let service = actix_web::test::init_service(app(auth)).await;
        let send = |path: &'static str, authorization: Option<String>, ct: &'static str| {
            let mut req = actix_web::test::TestRequest::get()
                .uri(path)
                .version(Version::HTTP_2)
                .insert_header(("content-type", ct));
            if let Some(a) = authorization {
                req = req.insert_header(("authorization", a));
            }
            let service = &service;
            async move {
                let resp = actix_web::test::call_service(service, req.to_request()).await;
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
        };
        if grpc_mode {
            common::http_cases::run_grpc(send, true).await;
        } else {
            common::http_cases::run_grpc_off(send, true).await;
        }
    });
}

#[test]
fn grpc_over_http2_gets_grpc_statuses_from_middleware_and_extractors() {
    let auth = BearerAuth::new(validator(&[key(Algorithm::ES256)])).realm("orders");
    grpc_requests(auth, true);
}

#[test]
fn grpc_mode_off_keeps_http_statuses_from_middleware_and_extractors() {
    // A forward-auth endpoint: the gateway reads any 200 as allow.
    let auth = BearerAuth::new(validator(&[key(Algorithm::ES256)]))
        .realm("orders")
        .grpc(false);
    grpc_requests(auth, false);
}

const STAFF_ISS: &str = "https://staff.idp.test";

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
async fn an_inner_middleware_on_another_validator_validates_the_token_again() {
    // Outer: customers (anonymous allowed). `/admin`: staff, scope `admin`.
    // `/orders`: the customers' own validator, scope `admin` too, so it
    // shares the outer middleware's verdict.
    let customers: BearerAuth<Json> = BearerAuth::new(validator(&[key(Algorithm::ES256)]));
    let staff: BearerAuth<Json> = BearerAuth::new(staff_validator());
    let base = serve_with(
        move || {
            App::new()
                .service(guarded(
                    "/admin",
                    staff.clone().require_scopes(Scopes::all(["admin"])),
                ))
                .service(guarded(
                    "/orders",
                    customers.clone().require_scopes(Scopes::all(["admin"])),
                ))
                .wrap(BearerAuthMiddleware::new(
                    customers.clone().allow_anonymous(),
                ))
        },
        &LogBuffer::default(),
    );
    let mut c = claims();
    c["scope"] = json!("admin");
    let customer = key(Algorithm::ES256).token(&c);
    let get = |path: &str| {
        reqwest::Client::new()
            .get(format!("{base}{path}"))
            .bearer_auth(&customer)
            .send()
    };
    let resp = get("/orders").await.unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    assert_eq!(resp.text().await.unwrap(), "alice");
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
async fn the_extractor_sees_only_the_innermost_validators_claims() {
    // Outer: customers, from Authorization. Inner: staff, from the cookie
    // `at`, anonymous allowed. A customer token and no cookie: to the
    // inner routes the caller is anonymous, not the customer.
    let customers: BearerAuth<Json> = BearerAuth::new(validator(&[key(Algorithm::ES256)]));
    let staff: BearerAuth<Json> = BearerAuth::new(staff_validator())
        .from_cookie("at")
        .allow_anonymous();
    let base = serve_with(
        move || {
            App::new()
                .route("/maybe", web::get().to(maybe))
                .route("/claims", web::get().to(me))
                .wrap(BearerAuthMiddleware::new(staff.clone()))
                .wrap(BearerAuthMiddleware::new(customers.clone()))
        },
        &LogBuffer::default(),
    );
    let customer = key(Algorithm::ES256).token(&claims());
    let get = |path: &str| {
        reqwest::Client::new()
            .get(format!("{base}{path}"))
            .bearer_auth(&customer)
            .send()
    };
    assert_eq!(
        get("/maybe").await.unwrap().text().await.unwrap(),
        "anonymous"
    );
    assert_eq!(get("/claims").await.unwrap().status().as_u16(), 401);
}

/// A claims type of the user's own, for the middleware/extractor mismatch.
#[derive(Debug, Clone, serde::Deserialize)]
struct Mine {
    sub: String,
}

impl tokenwarden::middleware::ScopedClaims for Mine {
    fn has_scope(&self, _scope: &str) -> bool {
        false
    }
}

async fn mine(Claims(c): Claims<Mine>) -> String {
    c.sub
}

/// GET `path` with `token` as the bearer token.
async fn get_with(base: &str, path: &str, token: &str) -> reqwest::Response {
    reqwest::Client::new()
        .get(format!("{base}{path}"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn claims_of_another_type_than_the_middlewares_are_read_from_its_json_claims() {
    let logs = LogBuffer::default();
    let json: BearerAuth<Json> = BearerAuth::new(validator(&[key(Algorithm::ES256)]));
    let base = serve_with(
        move || {
            App::new().service(
                web::resource("/mine")
                    .wrap(BearerAuthMiddleware::new(json.clone()))
                    .route(web::get().to(mine)),
            )
        },
        &logs,
    );
    let token = key(Algorithm::ES256).token(&claims());
    let r = get_with(&base, "/mine", &token).await;
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(r.text().await.unwrap(), "alice");
}

/// A claim value the server must never log nor answer with.
const SECRET: &str = "s3cr3t-PIN-5e1f0a9b8c7d";

#[derive(Debug, Clone, serde::Deserialize)]
#[allow(dead_code)]
struct WantsNumericPin {
    pin: u64,
}

async fn pin(Claims(c): Claims<WantsNumericPin>) -> String {
    c.pin.to_string()
}

#[tokio::test]
async fn claims_that_do_not_fit_the_type_are_logged_with_the_claim_name_and_answered_500_with_a_body()
 {
    let logs = LogBuffer::default();
    let json: BearerAuth<Json> = BearerAuth::new(validator(&[key(Algorithm::ES256)]));
    let base = serve_with(
        move || {
            App::new().service(
                web::resource("/pin")
                    .wrap(BearerAuthMiddleware::new(json.clone()))
                    .route(web::get().to(pin)),
            )
        },
        &logs,
    );
    let mut c = claims();
    c["pin"] = json!(SECRET);
    let token = key(Algorithm::ES256).token(&c);
    let r = get_with(&base, "/pin", &token).await;
    assert_eq!(r.status().as_u16(), 500);
    let body = r.text().await.unwrap();
    assert!(body.contains("claims do not fit"), "{body:?}");
    assert!(!body.contains(SECRET));
    let text = logs.text();
    let line = text
        .lines()
        .find(|l| l.contains("do not fit the route's claims type"))
        .unwrap_or_else(|| panic!("not logged: {text}"));
    assert!(
        line.contains("WantsNumericPin") && line.contains("\"pin\""),
        "{line}"
    );
    assert!(!text.contains(SECRET), "a claim value was logged: {text}");
}

/// Counts its deserialisations.
static DESERIALISED: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

#[derive(Debug, Clone)]
struct Counted(String);

impl<'de> serde::Deserialize<'de> for Counted {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(serde::Deserialize)]
        struct Raw {
            sub: String,
        }
        DESERIALISED.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Raw::deserialize(d).map(|r| Counted(r.sub))
    }
}

async fn twice(Claims(a): Claims<Counted>, Claims(b): Claims<Counted>) -> String {
    format!("{} {}", a.0, b.0)
}

#[tokio::test]
async fn a_claims_type_is_deserialised_once_per_request() {
    let logs = LogBuffer::default();
    let json: BearerAuth<Json> = BearerAuth::new(validator(&[key(Algorithm::ES256)]));
    let base = serve_with(
        move || {
            App::new().service(
                web::resource("/twice")
                    .wrap(BearerAuthMiddleware::new(json.clone()))
                    .route(web::get().to(twice)),
            )
        },
        &logs,
    );
    let token = key(Algorithm::ES256).token(&claims());
    let r = get_with(&base, "/twice", &token).await;
    assert_eq!(r.text().await.unwrap(), "alice alice");
    assert_eq!(DESERIALISED.load(std::sync::atomic::Ordering::SeqCst), 1);
}

#[derive(Debug, Clone, serde::Deserialize)]
struct Scoped {
    #[serde(default)]
    scope: String,
    #[serde(default)]
    roles: Vec<String>,
}

impl tokenwarden::middleware::ScopedClaims for Scoped {
    fn has_scope(&self, scope: &str) -> bool {
        self.scope.split(' ').any(|s| s == scope)
    }
    fn has_role(&self, path: &str, role: &str) -> bool {
        path == "roles" && self.roles.iter().any(|r| r == role)
    }
}

async fn refund(
    Claims(c): Claims<Scoped>,
) -> Result<&'static str, tokenwarden::middleware::AuthRejection> {
    Scopes::all(["orders:write"]).check(&c)?;
    Roles::any("roles", ["refunds", "admin"]).check(&c)?;
    Ok("refunded")
}

#[tokio::test]
async fn scopes_and_roles_checked_in_a_handler_and_roles_through_the_middleware() {
    let logs = LogBuffer::default();
    let json: BearerAuth<Json> = BearerAuth::new(validator(&[key(Algorithm::ES256)]));
    let base = serve_with(
        move || {
            App::new()
                .service(
                    web::resource("/refund")
                        .wrap(BearerAuthMiddleware::new(json.clone()))
                        .route(web::get().to(refund)),
                )
                .service(
                    web::resource("/ops")
                        .wrap(BearerAuthMiddleware::new(
                            json.clone()
                                .require_roles(Roles::any("roles", ["ops", "admin"])),
                        ))
                        .route(web::get().to(me)),
                )
        },
        &logs,
    );
    let token = |scope: &str, roles: &[&str]| {
        let mut c = claims();
        c["scope"] = json!(scope);
        c["roles"] = json!(roles);
        key(Algorithm::ES256).token(&c)
    };
    let r = get_with(&base, "/refund", &token("orders:write", &["refunds"])).await;
    assert_eq!(r.text().await.unwrap(), "refunded");
    let r = get_with(&base, "/refund", &token("orders:read", &["refunds"])).await;
    assert_eq!(r.status().as_u16(), 403);
    assert_eq!(
        r.headers()["www-authenticate"],
        r#"Bearer realm="api", error="insufficient_scope", scope="orders:write""#
    );
    let r = get_with(&base, "/refund", &token("orders:write", &["viewer"])).await;
    assert_eq!(r.status().as_u16(), 403);
    let r = get_with(&base, "/ops", &token("", &["ops"])).await;
    assert_eq!(r.text().await.unwrap(), "alice");
    let r = get_with(&base, "/ops", &token("", &["viewer"])).await;
    assert_eq!(r.status().as_u16(), 403);
}

#[tokio::test]
async fn an_on_refusal_hook_shapes_the_body_but_not_the_challenge() {
    let auth = BearerAuth::new(validator(&[key(Algorithm::ES256)])).realm("orders");
    let base = serve(
        common::http_cases::hostile_hook(auth),
        &LogBuffer::default(),
    );
    common::http_cases::run_hostile_hook(&base).await;
}
