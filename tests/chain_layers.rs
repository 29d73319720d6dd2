//! A `Chain` in the layers over real HTTP on 127.0.0.1 (axum and actix):
//! one service accepting a bearer JWT and an API key, one `Principal`
//! shape in the handler, one refusal table across kinds.
#![cfg(all(
    feature = "axum",
    feature = "actix",
    feature = "api-keys",
    feature = "testing"
))]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod common;

use std::sync::Arc;

use axum::Router;
use axum::routing::get;
use common::authn::{add_key, api_keys};
use common::{NOW, claims, key, validator};
use serde_json::{Map, Value, json};
use tokenwarden::authn::api_key::{MemoryStore, NewApiKey};
use tokenwarden::authn::jwt::JwtAuthenticator;
use tokenwarden::authn::{Chain, Principal};
use tokenwarden::middleware::{BearerAuth, RefusalBody, Roles, Scopes};
use tokenwarden::{Algorithm, ManualClock};

type Json = Map<String, Value>;

/// A store with one key, `partner`, granting what the JWT grants.
fn store() -> (Arc<MemoryStore>, NewApiKey) {
    let store = Arc::new(MemoryStore::new());
    let mut new = add_key(&store, "partner", &["orders:read", "orders:write"]);
    new.record.roles = vec!["ops".into()];
    store.insert(new.record.clone());
    (store, new)
}

/// A bearer JWT and an API key (`Authorization: ApiKey` or `X-Api-Key`).
fn chain(store: &Arc<MemoryStore>) -> Chain {
    Chain::new()
        .jwt(JwtAuthenticator::new(validator(&[key(Algorithm::ES256)])).roles_from("roles"))
        .api_key(api_keys(store, &ManualClock::new(NOW)))
}

fn token(extra: Value) -> String {
    let mut c = claims();
    for (k, v) in extra.as_object().unwrap() {
        c[k] = v.clone();
    }
    key(Algorithm::ES256).token(&c)
}

/// The JWT `alice` with the partner key's grants.
fn alice() -> String {
    token(json!({"scope": "orders:read orders:write", "roles": ["ops"]}))
}

/// The principal's shape, whatever proved it.
fn shape(p: &Principal) -> Value {
    json!({
        "sub": p.subject(),
        "authenticator": p.authenticator(),
        "scopes": p.scopes(),
        "roles": p.roles(),
        "exp": p.expires_at(),
    })
}

async fn whoami(p: Principal) -> String {
    shape(&p).to_string()
}

async fn maybe(p: Option<Principal>) -> String {
    p.map_or_else(|| "anonymous".into(), |p| p.subject().to_owned())
}

async fn jwt_claims(
    tokenwarden::middleware::axum::Claims(c): tokenwarden::middleware::axum::Claims<Json>,
) -> String {
    c["sub"].as_str().unwrap_or("").to_owned()
}

fn axum_app(auth: BearerAuth) -> Router {
    Router::new()
        .route("/whoami", get(whoami).route_layer(auth.layer()))
        .route("/claims", get(jwt_claims).route_layer(auth.layer()))
        .route(
            "/admin",
            get(whoami).route_layer(
                auth.clone()
                    .require_roles(Roles::any("roles", ["admin"]))
                    .layer(),
            ),
        )
        .route(
            "/write",
            get(whoami).route_layer(
                auth.clone()
                    .require_scopes(Scopes::all(["orders:write"]))
                    .layer(),
            ),
        )
        .route(
            "/shaped",
            get(whoami).route_layer(
                auth.clone()
                    .on_refusal(|r| {
                        RefusalBody::new(
                            "application/json",
                            json!({"status": r.status(), "reason": r.reason()}).to_string(),
                        )
                        .header("x-refused-by", "chain")
                    })
                    .layer(),
            ),
        )
        .route(
            "/maybe",
            get(maybe).route_layer(auth.allow_anonymous().layer()),
        )
}

async fn serve_axum(router: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await });
    format!("http://{addr}")
}

async fn get_with(base: &str, path: &str, headers: &[(&str, &str)]) -> reqwest::Response {
    let mut req = reqwest::Client::new().get(format!("{base}{path}"));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    req.send().await.unwrap()
}

fn challenges(resp: &reqwest::Response) -> Vec<String> {
    resp.headers()
        .get_all("www-authenticate")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect()
}

/// The cases every adapter answers alike, against `base`.
async fn shared_cases(base: &str, key: &NewApiKey) {
    let bearer = format!("Bearer {}", alice());
    let api_key = format!("ApiKey {}", key.expose_key());

    // One Principal shape for a JWT and an API key.
    let jwt: Value = get_with(base, "/whoami", &[("authorization", &bearer)])
        .await
        .json()
        .await
        .unwrap();
    let by_key: Value = get_with(base, "/whoami", &[("authorization", &api_key)])
        .await
        .json()
        .await
        .unwrap();
    let by_header: Value = get_with(base, "/whoami", &[("x-api-key", key.expose_key())])
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(jwt["authenticator"], "jwt");
    assert_eq!(by_key["authenticator"], "api_key");
    assert_eq!(by_key, by_header);
    assert_eq!(jwt["sub"], "alice");
    assert_eq!(by_key["sub"], "partner");
    for field in ["scopes", "roles"] {
        assert_eq!(jwt[field], by_key[field], "{field}");
    }
    assert_eq!(jwt["scopes"], json!(["orders:read", "orders:write"]));
    assert_eq!(jwt["exp"], NOW + 600);
    assert_eq!(by_key["exp"], NOW + 3600);

    // Both kinds at once: 400, challenged with the first kind's scheme.
    let both = get_with(
        base,
        "/whoami",
        &[("authorization", &bearer), ("x-api-key", key.expose_key())],
    )
    .await;
    assert_eq!(both.status(), 400);
    assert_eq!(
        challenges(&both),
        [
            r#"Bearer realm="orders", error="invalid_request", error_description="more than one kind of credential""#
        ]
    );

    // No credential: 401, one challenge per scheme, one value each.
    let none = get_with(base, "/whoami", &[]).await;
    assert_eq!(none.status(), 401);
    assert_eq!(
        challenges(&none),
        [r#"Bearer realm="orders""#, r#"ApiKey realm="orders""#]
    );
    // Another scheme is no credential of ours.
    let basic = get_with(base, "/whoami", &[("authorization", "Basic YTpi")]).await;
    assert_eq!(basic.status(), 401);

    // Requirements across kinds: 403 with the scheme of the credential.
    for (auth, scheme) in [(&bearer, "Bearer"), (&api_key, "ApiKey")] {
        let r = get_with(base, "/admin", &[("authorization", auth)]).await;
        assert_eq!(r.status(), 403, "{scheme}");
        assert_eq!(
            challenges(&r),
            [format!(
                r#"{scheme} realm="orders", error="insufficient_scope", error_description="requires role admin""#
            )]
        );
        let ok = get_with(base, "/write", &[("authorization", auth)]).await;
        assert_eq!(ok.status(), 200, "{scheme}");
    }
    let reader = token(json!({"scope": "orders:read"}));
    let r = get_with(
        base,
        "/write",
        &[("authorization", &format!("Bearer {reader}"))],
    )
    .await;
    assert_eq!(r.status(), 403);
    assert_eq!(
        challenges(&r),
        [r#"Bearer realm="orders", error="insufficient_scope", scope="orders:write""#]
    );

    // A refused API key: the ApiKey challenge, and the hook shapes it.
    let wrong = wrong_secret(key);
    let r = get_with(base, "/shaped", &[("x-api-key", &wrong)]).await;
    assert_eq!(r.status(), 401);
    let challenge = challenges(&r);
    assert_eq!(challenge.len(), 1);
    assert!(
        challenge[0].starts_with(r#"ApiKey realm="orders", error="invalid_token""#),
        "{challenge:?}"
    );
    assert_eq!(r.headers()["x-refused-by"], "chain");
    assert_eq!(r.headers()["content-type"], "application/json");
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["status"], 401);
    assert_ne!(body["reason"], "missing_token");

    // The JWT's claims still reach `Claims<T>`.
    let r = get_with(base, "/claims", &[("authorization", &bearer)]).await;
    assert_eq!(r.text().await.unwrap(), "alice");

    // Anonymous allowed: no credential passes, a refused one never does.
    let r = get_with(base, "/maybe", &[]).await;
    assert_eq!(r.text().await.unwrap(), "anonymous");
    let r = get_with(base, "/maybe", &[("x-api-key", key.expose_key())]).await;
    assert_eq!(r.text().await.unwrap(), "partner");
    let r = get_with(base, "/maybe", &[("x-api-key", &wrong)]).await;
    assert_eq!(r.status(), 401, "a refused API key is not anonymous");
    let r = get_with(base, "/maybe", &[("authorization", "Bearer a b")]).await;
    assert_eq!(
        r.status(),
        400,
        "a malformed bearer header is not anonymous"
    );
}

/// The key with its secret's last character changed.
fn wrong_secret(key: &NewApiKey) -> String {
    let mut k = key.expose_key().to_owned();
    let last = k.pop().unwrap();
    k.push(if last == 'A' { 'B' } else { 'A' });
    k
}

fn auth(store: &Arc<MemoryStore>) -> BearerAuth {
    BearerAuth::from_chain(chain(store)).realm("orders")
}

#[tokio::test]
async fn axum_one_service_for_jwts_and_api_keys() {
    let (store, key) = store();
    let base = serve_axum(axum_app(auth(&store))).await;
    shared_cases(&base, &key).await;
}

#[tokio::test]
async fn a_chain_refusal_is_problem_json_and_503_has_retry_after() {
    let (store, key) = store();
    let app = Router::new().route(
        "/whoami",
        get(whoami).route_layer(auth(&store).problem_json().layer()),
    );
    let base = serve_axum(app).await;
    let r = get_with(&base, "/whoami", &[("x-api-key", &wrong_secret(&key))]).await;
    assert_eq!(r.status(), 401);
    assert_eq!(r.headers()["content-type"], "application/problem+json");
    let body: Value = r.json().await.unwrap();
    assert_eq!(
        (body["status"].clone(), body["error"].clone()),
        (json!(401), json!("invalid_token"))
    );

    // A JWT whose keys are unavailable: 503 with the layer's Retry-After.
    let v = common::http_cases::keyless_validator();
    let unavailable = BearerAuth::from_chain(Chain::new().jwt(JwtAuthenticator::new(v)))
        .retry_after(std::time::Duration::from_secs(7));
    let app = Router::new().route("/whoami", get(whoami).route_layer(unavailable.layer()));
    let base = serve_axum(app).await;
    let r = get_with(
        &base,
        "/whoami",
        &[("authorization", &format!("Bearer {}", alice()))],
    )
    .await;
    assert_eq!(r.status(), 503);
    assert_eq!(r.headers()["retry-after"], "7");
    assert!(r.headers().get("www-authenticate").is_none());
}

mod actix {
    use super::*;
    use actix_web::{App, web};
    use tokenwarden::middleware::actix::BearerAuthMiddleware;

    async fn whoami(p: Principal) -> actix_web::HttpResponse {
        actix_web::HttpResponse::Ok().json(shape(&p))
    }

    async fn maybe(p: Option<Principal>) -> String {
        p.map_or_else(|| "anonymous".into(), |p| p.subject().to_owned())
    }

    async fn jwt_claims(
        tokenwarden::middleware::actix::Claims(c): tokenwarden::middleware::actix::Claims<Json>,
    ) -> String {
        c["sub"].as_str().unwrap_or("").to_owned()
    }

    fn serve(auth: BearerAuth) -> String {
        common::actix::serve_actix(move || {
            let guarded = |path: &str, auth: BearerAuth| {
                web::resource(path)
                    .wrap(BearerAuthMiddleware::new(auth))
                    .route(web::get().to(whoami))
            };
            App::new()
                .service(guarded("/whoami", auth.clone()))
                .service(
                    web::resource("/claims")
                        .wrap(BearerAuthMiddleware::new(auth.clone()))
                        .route(web::get().to(jwt_claims)),
                )
                .service(guarded(
                    "/admin",
                    auth.clone().require_roles(Roles::any("roles", ["admin"])),
                ))
                .service(guarded(
                    "/write",
                    auth.clone().require_scopes(Scopes::all(["orders:write"])),
                ))
                .service(guarded(
                    "/shaped",
                    auth.clone().on_refusal(|r| {
                        RefusalBody::new(
                            "application/json",
                            json!({"status": r.status(), "reason": r.reason()}).to_string(),
                        )
                        .header("x-refused-by", "chain")
                    }),
                ))
                .service(
                    web::resource("/maybe")
                        .wrap(BearerAuthMiddleware::new(auth.clone().allow_anonymous()))
                        .route(web::get().to(maybe)),
                )
        })
    }

    #[tokio::test]
    async fn actix_one_service_for_jwts_and_api_keys() {
        let (store, key) = store();
        let base = serve(auth(&store));
        shared_cases(&base, &key).await;
    }
}

/// tonic and hyper handlers read the principal with `principal_from`:
/// the chain layer around a bare tower service (what tonic and hyper run).
#[tokio::test]
async fn tonic_and_hyper_read_the_principal_from_the_extensions() {
    use tokenwarden::middleware::principal_from;
    use tower::{Layer, ServiceExt};

    let (store, key) = store();
    let inner = tower::service_fn(|req: http::Request<()>| async move {
        let who = principal_from(req.extensions())
            .map(|p| format!("{} {}", p.subject(), p.authenticator()))
            .unwrap_or_default();
        Ok::<_, std::convert::Infallible>(
            http::Response::builder()
                .header("x-who", who)
                .body(())
                .unwrap(),
        )
    });
    let svc = auth(&store).layer().layer(inner);
    let call = |name: &'static str, value: String| {
        let svc = svc.clone();
        async move {
            let req = http::Request::builder()
                .uri("/orders")
                .header(name, value)
                .body(())
                .unwrap();
            svc.oneshot(req).await.unwrap()
        }
    };
    let r = call("x-api-key", key.expose_key().to_owned()).await;
    assert_eq!(r.headers()["x-who"], "partner api_key");
    let r = call("authorization", format!("Bearer {}", alice())).await;
    assert_eq!(r.headers()["x-who"], "alice jwt");
    let r = call("x-api-key", wrong_secret(&key)).await;
    assert_eq!(r.status(), 401);
    assert!(r.headers().get("x-who").is_none());
}
