//! The tower layer and axum extractors over real HTTP on 127.0.0.1: status,
//! `WWW-Authenticate` and body for each case of RFC 6750 §3.
#![cfg(all(feature = "axum", feature = "remote"))]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod common;

use axum::Router;
use axum::routing::get;
use common::*;
use serde_json::{Map, Value};
use tokenwarden::Algorithm;
use tokenwarden::middleware::axum::Claims;
use tokenwarden::middleware::{BearerAuth, Roles, Scopes};

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

fn app(auth: BearerAuth<Json>) -> Router {
    Router::new()
        .route("/me", get(me).route_layer(auth.layer()))
        .route(
            "/orders",
            get(me).route_layer(
                auth.clone()
                    .require_scopes(Scopes::all(["orders:read"]))
                    .layer(),
            ),
        )
        .route(
            "/admin",
            get(me).route_layer(
                auth.clone()
                    .require_roles(Roles::all("realm_access.roles", ["admin"]))
                    .layer(),
            ),
        )
        .route(
            "/app",
            get(me).route_layer(
                auth.clone()
                    .require_claims("client_id my-app", common::http_cases::is_my_app)
                    .layer(),
            ),
        )
        .route(
            "/cookie",
            get(me).route_layer(auth.clone().from_cookie("at").layer()),
        )
        .route("/maybe", get(maybe))
        .route("/claims", get(me))
        .layer(auth.allow_anonymous().layer())
        // Mounted after the layer: no layer runs in front of it.
        .route("/bare", get(me))
}

async fn serve(router: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await });
    format!("http://{addr}")
}

#[tokio::test]
async fn every_case_gets_its_rfc_6750_answer_and_the_token_is_never_echoed() {
    let (_guard, logs) = capture_logs();
    let auth = BearerAuth::new(validator(&[key(Algorithm::ES256)])).realm("orders");
    let base = serve(app(auth)).await;
    common::http_cases::run_all(&base, &logs, true).await;
}

/// Sends one HTTP/2 request straight to the router (a real h2 connection
/// needs the `http2` features this crate's tests do not build).
async fn send_h2(
    router: &Router,
    path: &'static str,
    authorization: Option<String>,
    content_type: &'static str,
) -> common::http_cases::Answer {
    use tower::ServiceExt;
    let mut req = axum::http::Request::builder()
        .uri(path)
        .version(axum::http::Version::HTTP_2)
        .header("content-type", content_type);
    if let Some(a) = authorization {
        req = req.header("authorization", a);
    }
    let resp = router
        .clone()
        .oneshot(req.body(axum::body::Body::empty()).unwrap())
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
async fn grpc_over_http2_gets_grpc_statuses_from_layers_and_extractors() {
    let router = app(BearerAuth::new(validator(&[key(Algorithm::ES256)])).realm("orders"));
    common::http_cases::run_grpc(|p, a, ct| send_h2(&router, p, a, ct), true).await;
}

#[tokio::test]
async fn grpc_mode_off_keeps_http_statuses_from_layers_and_extractors() {
    let router = app(BearerAuth::new(validator(&[key(Algorithm::ES256)]))
        .realm("orders")
        .grpc(false));
    common::http_cases::run_grpc_off(|p, a, ct| send_h2(&router, p, a, ct), true).await;
}

#[tokio::test]
async fn grpc_content_type_over_http1_is_never_200() {
    let auth = BearerAuth::new(validator(&[key(Algorithm::ES256)]));
    let base = serve(app(auth)).await;
    for path in ["/me", "/claims"] {
        let resp = reqwest::Client::new()
            .get(format!("{base}{path}"))
            .header("content-type", "application/grpc")
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 401, "{path}");
        assert!(resp.headers().get("grpc-status").is_none(), "{path}");
    }
}

const STAFF_ISS: &str = "https://staff.idp.test";

#[tokio::test]
async fn an_inner_layer_on_another_validator_validates_the_token_again() {
    let customers = BearerAuth::new(validator(&[key(Algorithm::ES256)]));
    let staff = BearerAuth::new(
        tokenwarden::Validator::builder()
            .issuer(STAFF_ISS)
            .audience(AUD)
            .clock(tokenwarden::FixedClock(NOW))
            .keys(keyset(&[key(Algorithm::EdDSA)]))
            .build()
            .unwrap(),
    );
    let router = Router::new()
        .route(
            "/admin",
            get(me).route_layer(staff.require_scopes(Scopes::all(["admin"])).layer()),
        )
        .route(
            "/orders",
            get(me).route_layer(
                customers
                    .clone()
                    .require_scopes(Scopes::all(["admin"]))
                    .layer(),
            ),
        )
        .layer(customers.allow_anonymous().layer());
    let base = serve(router).await;
    let mut c = claims();
    c["scope"] = serde_json::json!("admin");
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
async fn keys_unavailable_is_503_without_a_challenge() {
    let base = serve(app(
        BearerAuth::new(common::http_cases::keyless_validator()),
    ))
    .await;
    common::http_cases::run_keys_unavailable(&base).await;
}

#[tokio::test]
async fn unknown_kid_waits_for_a_refresh_through_the_layer() {
    let a = TestKeyHolder::new();
    let idp = common::idp::Idp::start(&[&a.old]).await;
    let keys = tokenwarden::RemoteKeySet::builder()
        .jwks_url(idp.jwks_url())
        .allow_http_loopback(true)
        .build()
        .unwrap();
    keys.refresh().await.unwrap();
    let v = tokenwarden::Validator::builder()
        .issuer(ISS)
        .audience(AUD)
        .keys(keys)
        .clock(tokenwarden::FixedClock(NOW))
        .build()
        .unwrap();
    let base = serve(app(BearerAuth::new(v))).await;
    idp.set_keys(&[&a.old, &a.new]);
    let resp = reqwest::Client::new()
        .get(format!("{base}/me"))
        .bearer_auth(a.new.token(&claims()))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    assert_eq!(resp.text().await.unwrap(), "alice");
}

#[tokio::test]
async fn after_a_refresh_for_an_unknown_kid_the_routes_scopes_still_hold() {
    // The slow path answers allowed or refused, never "pass through": a
    // token of the new key still needs `orders:read` on `/orders`.
    let a = TestKeyHolder::new();
    let idp = common::idp::Idp::start(&[&a.old]).await;
    let keys = tokenwarden::RemoteKeySet::builder()
        .jwks_url(idp.jwks_url())
        .allow_http_loopback(true)
        .build()
        .unwrap();
    keys.refresh().await.unwrap();
    let v = tokenwarden::Validator::builder()
        .issuer(ISS)
        .audience(AUD)
        .keys(keys)
        .clock(tokenwarden::FixedClock(NOW))
        .build()
        .unwrap();
    // Only the scoped route, with no outer layer: its own layer meets the
    // unknown kid.
    let router = Router::new().route(
        "/orders",
        get(me).route_layer(
            BearerAuth::new(v)
                .require_scopes(Scopes::all(["orders:read"]))
                .layer(),
        ),
    );
    let base = serve(router).await;
    idp.set_keys(&[&a.old, &a.new]);
    let resp = reqwest::Client::new()
        .get(format!("{base}/orders"))
        .bearer_auth(a.new.token(&claims()))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 403);
    assert_eq!(idp.jwks_hits(), 2, "the refresh ran");
}

struct TestKeyHolder {
    old: tokenwarden::testing::TestKey,
    new: tokenwarden::testing::TestKey,
}

impl TestKeyHolder {
    fn new() -> Self {
        TestKeyHolder {
            old: tokenwarden::testing::TestKey::generate(Algorithm::EdDSA, "old").unwrap(),
            new: tokenwarden::testing::TestKey::generate(Algorithm::EdDSA, "new").unwrap(),
        }
    }
}

#[tokio::test]
async fn the_extractor_sees_only_the_innermost_validators_claims() {
    // Outer: customers, from Authorization. Inner: staff, from the cookie
    // `at`, anonymous allowed. A customer token and no cookie: to the
    // inner route the caller is anonymous, not the customer.
    let customers = BearerAuth::new(validator(&[key(Algorithm::ES256)]));
    let staff = BearerAuth::new(
        tokenwarden::Validator::builder()
            .issuer(STAFF_ISS)
            .audience(AUD)
            .clock(tokenwarden::FixedClock(NOW))
            .keys(keyset(&[key(Algorithm::EdDSA)]))
            .build()
            .unwrap(),
    )
    .from_cookie("at")
    .allow_anonymous();
    let router = Router::new()
        .route("/maybe", get(maybe))
        .route("/claims", get(me))
        .layer(staff.layer())
        .layer(customers.layer());
    let base = serve(router).await;
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

#[tokio::test]
async fn claims_inserted_by_other_code_are_not_a_layers_verdict() {
    // Some other middleware puts a validated token in the extensions: the
    // layer judges the request itself, and the extractor (no layer in
    // front) refuses with 500. Only what a layer recorded counts.
    let v = validator(&[key(Algorithm::ES256)]);
    let mut c = claims();
    c["scope"] = serde_json::json!("admin");
    let forged = std::sync::Arc::new(
        v.validate::<Json>(&key(Algorithm::ES256).token(&c))
            .unwrap(),
    );
    let router = Router::new()
        .route(
            "/admin",
            get(me).route_layer(
                BearerAuth::new(v)
                    .require_scopes(Scopes::all(["admin"]))
                    .layer(),
            ),
        )
        .route("/claims", get(me))
        .layer(tower::util::MapRequestLayer::new(
            move |mut req: axum::http::Request<axum::body::Body>| {
                req.extensions_mut().insert(forged.clone());
                req
            },
        ));
    let base = serve(router).await;
    let get = |path: &str| reqwest::Client::new().get(format!("{base}{path}")).send();
    assert_eq!(get("/admin").await.unwrap().status().as_u16(), 401);
    assert_eq!(get("/claims").await.unwrap().status().as_u16(), 500);
}

/// A claims type of the user's own, for the layer/extractor mismatch.
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

async fn maybe_mine(c: Option<Claims<Mine>>) -> String {
    c.map_or_else(|| "anonymous".to_owned(), |Claims(c)| c.sub)
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
async fn claims_of_another_type_than_the_layers_are_read_from_its_json_claims() {
    let v = validator(&[key(Algorithm::ES256)]);
    let token = key(Algorithm::ES256).token(&claims());
    let router = Router::new()
        // The default layer (JSON claims) in front of extractors of `Mine`.
        .route(
            "/mine",
            get(mine).route_layer(BearerAuth::new(v.clone()).layer()),
        )
        .route(
            "/maybe-mine",
            get(maybe_mine).route_layer(BearerAuth::new(v.clone()).allow_anonymous().layer()),
        )
        // The matching pair: a clone of the layer's value.
        .route(
            "/ok",
            get(mine).route_layer(BearerAuth::<Mine>::with_claims(v).layer()),
        );
    let base = serve(router).await;
    for path in ["/mine", "/maybe-mine", "/ok"] {
        let r = get_with(&base, path, &token).await;
        assert_eq!(r.status(), 200, "{path}");
        assert_eq!(r.text().await.unwrap(), "alice", "{path}");
    }
    let anonymous = reqwest::get(format!("{base}/maybe-mine")).await.unwrap();
    assert_eq!(anonymous.text().await.unwrap(), "anonymous");
}

/// A claim value the server must never log nor answer with.
const SECRET: &str = "s3cr3t-PIN-5e1f0a9b8c7d";

#[derive(Debug, Clone, serde::Deserialize)]
#[allow(dead_code)]
struct WantsNumericPin {
    sub: String,
    pin: u64,
}

async fn pin(Claims(c): Claims<WantsNumericPin>) -> String {
    c.pin.to_string()
}

#[tokio::test]
async fn claims_that_do_not_fit_the_type_are_logged_with_the_claim_name_and_answered_500_with_a_body()
 {
    let (_guard, logs) = capture_logs();
    let v = validator(&[key(Algorithm::ES256)]);
    let mut c = claims();
    c["pin"] = serde_json::json!(SECRET);
    let token = key(Algorithm::ES256).token(&c);
    let router = Router::new().route(
        "/pin",
        get(pin).route_layer(BearerAuth::new(v).realm("orders").layer()),
    );
    let base = serve(router).await;
    let r = get_with(&base, "/pin", &token).await;
    assert_eq!(r.status(), 500);
    assert!(r.headers().get("www-authenticate").is_none());
    let body = r.text().await.unwrap();
    assert!(body.contains("claims do not fit"), "{body:?}");
    assert!(!body.contains(SECRET) && !body.contains("WantsNumericPin"));
    let text = logs.text();
    let line = text
        .lines()
        .find(|l| l.contains("do not fit the route's claims type"))
        .unwrap_or_else(|| panic!("not logged: {text}"));
    assert!(line.contains("ERROR"), "{line}");
    assert!(
        line.contains("WantsNumericPin"),
        "the type is named: {line}"
    );
    assert!(
        line.contains("\"pin\"") && line.contains("invalid type"),
        "{line}"
    );
    assert!(!text.contains(SECRET), "a claim value was logged: {text}");
    assert!(!text.contains(&token));
}

#[tokio::test]
async fn a_layer_of_a_non_json_type_cannot_give_another_type_and_says_so() {
    let (_guard, logs) = capture_logs();
    let v = validator(&[key(Algorithm::ES256)]);
    let token = key(Algorithm::ES256).token(&claims());
    let router = Router::new().route(
        "/json",
        get(me).route_layer(BearerAuth::<Mine>::with_claims(v).layer()),
    );
    let base = serve(router).await;
    let r = get_with(&base, "/json", &token).await;
    assert_eq!(r.status(), 500);
    assert!(!r.text().await.unwrap().is_empty());
    let text = logs.text();
    assert!(
        text.contains("cannot give") && text.contains("Mine"),
        "{text}"
    );
    assert!(
        !text.contains(common::http_cases::NOT_CONFIGURED_LOG),
        "{text}"
    );
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

async fn twice(Claims(a): Claims<Counted>, b: Option<Claims<Counted>>) -> String {
    format!("{} {}", a.0, b.map(|Claims(b)| b.0).unwrap_or_default())
}

#[tokio::test]
async fn a_claims_type_is_deserialised_once_per_request() {
    let v = validator(&[key(Algorithm::ES256)]);
    let token = key(Algorithm::ES256).token(&claims());
    let router = Router::new().route("/twice", get(twice).route_layer(BearerAuth::new(v).layer()));
    let base = serve(router).await;
    for round in 1..=2 {
        let r = get_with(&base, "/twice", &token).await;
        assert_eq!(r.text().await.unwrap(), "alice alice");
        assert_eq!(
            DESERIALISED.load(std::sync::atomic::Ordering::SeqCst),
            round,
            "two extractors, one deserialisation per request"
        );
    }
}

#[derive(Debug, Clone, serde::Deserialize)]
struct Sub {
    sub: String,
}

#[tokio::test]
async fn a_memo_of_an_outer_verdict_is_not_reused_after_an_inner_layer_judged_again() {
    // The outer layer judges the Authorization header (alice); a middleware
    // between reads `Sub` from that verdict; the inner layer, on another
    // credential, judges the cookie (bob): the handler must see bob.
    let v = validator(&[key(Algorithm::ES256)]);
    let alice = key(Algorithm::ES256).token(&claims());
    let mut c = claims();
    c["sub"] = serde_json::json!("bob");
    let bob = key(Algorithm::ES256).token(&c);
    let auth = BearerAuth::new(v);
    let peek = axum::middleware::from_fn(
        |req: axum::extract::Request, next: axum::middleware::Next| async move {
            let (mut parts, body) = req.into_parts();
            let seen = <Claims<Sub> as axum::extract::FromRequestParts<()>>::from_request_parts(
                &mut parts,
                &(),
            )
            .await;
            assert_eq!(seen.map(|Claims(s)| s.sub).ok().as_deref(), Some("alice"));
            next.run(axum::extract::Request::from_parts(parts, body))
                .await
        },
    );
    let router = Router::new()
        .route(
            "/who",
            get(|Claims(s): Claims<Sub>| async move { s.sub })
                .route_layer(auth.clone().from_cookie("at").layer()),
        )
        .layer(peek)
        .layer(auth.layer());
    let base = serve(router).await;
    let r = reqwest::Client::new()
        .get(format!("{base}/who"))
        .bearer_auth(&alice)
        .header("cookie", format!("at={bob}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.text().await.unwrap(), "bob");
}

/// The claims as `Mine` with scopes from `scope` (for handler checks).
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
async fn scopes_and_roles_checked_in_a_handler_refuse_like_the_layer() {
    let v = validator(&[key(Algorithm::ES256)]);
    let token = |scope: &str, roles: &[&str]| {
        let mut c = claims();
        c["scope"] = serde_json::json!(scope);
        c["roles"] = serde_json::json!(roles);
        key(Algorithm::ES256).token(&c)
    };
    let router = Router::new().route(
        "/refund",
        get(refund).route_layer(BearerAuth::new(v).layer()),
    );
    let base = serve(router).await;
    let r = get_with(&base, "/refund", &token("orders:write", &["refunds"])).await;
    assert_eq!(r.text().await.unwrap(), "refunded");
    let r = get_with(&base, "/refund", &token("orders:read", &["refunds"])).await;
    assert_eq!(r.status(), 403);
    assert_eq!(
        r.headers()["www-authenticate"],
        r#"Bearer realm="api", error="insufficient_scope", scope="orders:write""#
    );
    let r = get_with(&base, "/refund", &token("orders:write", &["viewer"])).await;
    assert_eq!(r.status(), 403);
    assert_eq!(
        r.headers()["www-authenticate"],
        r#"Bearer realm="api", error="insufficient_scope", error_description="requires role refunds admin""#
    );
}

#[tokio::test]
async fn roles_any_through_the_layer() {
    let v = validator(&[key(Algorithm::ES256)]);
    let auth = BearerAuth::new(v).require_roles(Roles::any("realm_access.roles", ["admin", "ops"]));
    let router = Router::new().route("/ops", get(me).route_layer(auth.layer()));
    let base = serve(router).await;
    let with_roles = |roles: &[&str]| {
        let mut c = claims();
        c["realm_access"] = serde_json::json!({ "roles": roles });
        key(Algorithm::ES256).token(&c)
    };
    let r = get_with(&base, "/ops", &with_roles(&["ops"])).await;
    assert_eq!(r.text().await.unwrap(), "alice");
    let r = get_with(&base, "/ops", &with_roles(&["viewer"])).await;
    assert_eq!(r.status(), 403);
}

#[tokio::test]
async fn claims_from_reads_the_layers_claims_where_no_extractor_exists() {
    // As a tonic method does with `request.extensions()`.
    let v = validator(&[key(Algorithm::ES256)]);
    let token = key(Algorithm::ES256).token(&claims());
    let handler = |req: axum::extract::Request| async move {
        let mine = tokenwarden::middleware::claims_from::<Sub>(req.extensions());
        let json = tokenwarden::middleware::claims_from::<Json>(req.extensions());
        match (mine, json) {
            (Ok(s), Ok(j)) => format!("{} {}", s.sub, j["iss"].as_str().unwrap_or("")),
            (a, b) => format!(
                "{:?} {:?}",
                a.err().map(|r| r.status()),
                b.err().map(|r| r.status())
            ),
        }
    };
    let router = Router::new()
        .route(
            "/who",
            get(handler).route_layer(BearerAuth::new(v.clone()).layer()),
        )
        .route(
            "/maybe",
            get(handler).route_layer(BearerAuth::new(v).allow_anonymous().layer()),
        )
        .route("/bare", get(handler));
    let base = serve(router).await;
    let r = get_with(&base, "/who", &token).await;
    assert_eq!(r.text().await.unwrap(), format!("alice {ISS}"));
    let anonymous = reqwest::get(format!("{base}/maybe")).await.unwrap();
    assert_eq!(anonymous.text().await.unwrap(), "Some(401) Some(401)");
    let bare = get_with(&base, "/bare", &token).await;
    assert_eq!(bare.text().await.unwrap(), "Some(500) Some(500)");
}

/// What the README and `BearerAuthLayer`'s doc say: a `Router::layer` runs
/// for unknown paths too (401 without a token), a `route_layer` only for
/// its route (unknown paths stay 404).
#[tokio::test]
async fn layer_answers_401_on_unknown_paths_route_layer_keeps_404() {
    let auth = BearerAuth::new(validator(&[key(Algorithm::ES256)]));
    let layered = serve(Router::new().route("/me", get(me)).layer(auth.layer())).await;
    let routed = serve(Router::new().route("/me", get(me).route_layer(auth.layer()))).await;
    let status = |base: String, path: &'static str| async move {
        reqwest::get(format!("{base}{path}"))
            .await
            .unwrap()
            .status()
            .as_u16()
    };
    assert_eq!(status(layered.clone(), "/nope").await, 401);
    assert_eq!(status(routed.clone(), "/nope").await, 404);
    assert_eq!(status(layered, "/me").await, 401);
    assert_eq!(status(routed, "/me").await, 401);
}
