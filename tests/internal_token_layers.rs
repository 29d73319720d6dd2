//! The internal token through the in-process layers, over real HTTP on
//! 127.0.0.1 (axum and actix): `BearerAuth::internal_token` hands the
//! handler a JWT it validates with tokenwarden against the minter's JWKS;
//! a client's header of that name never reaches the handler; a refusal
//! carries none; a token that cannot be minted is a 500.
#![cfg(all(
    feature = "axum",
    feature = "actix",
    feature = "api-keys",
    feature = "mint",
    feature = "testing"
))]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod common;

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use axum::Router;
use axum::routing::get;
use common::authn::{add_key, api_keys};
use common::{NOW, claims, key, validator};
use serde_json::{Value, json};
use tokenwarden::authn::Chain;
use tokenwarden::authn::api_key::{MemoryStore, NewApiKey};
use tokenwarden::authn::jwt::JwtAuthenticator;
use tokenwarden::middleware::{BearerAuth, Scopes};
use tokenwarden::mint::{MintInput, Minter};
use tokenwarden::{Algorithm, FixedClock, KeySet, ManualClock, Validator};

const HEADER: &str = "x-internal-token";
const GATEWAY: &str = "https://gateway.test";
const UPSTREAM: &str = "https://orders.internal";

/// The layers' minter (one per test binary), on the tests' clock.
fn minter() -> &'static Minter {
    static M: OnceLock<Minter> = OnceLock::new();
    M.get_or_init(|| {
        Minter::builder()
            .generated_key(Algorithm::ES256)
            .issuer(GATEWAY)
            .audience(UPSTREAM)
            .lifetime(Duration::from_secs(60))
            .clock(FixedClock(NOW))
            .build()
            .unwrap()
    })
}

/// What the service behind the layer runs: tokenwarden on the minter's
/// JWKS, `at+jwt` required.
fn upstream() -> &'static Validator {
    static V: OnceLock<Validator> = OnceLock::new();
    V.get_or_init(|| {
        Validator::builder()
            .issuer(GATEWAY)
            .audience(UPSTREAM)
            .required_type("at+jwt")
            .clock(FixedClock(NOW))
            .keys(KeySet::from_jwks(minter().jwks().to_string().as_bytes()).unwrap())
            .build()
            .unwrap()
    })
}

/// A token a client forges: same issuer and audience, its own key, a
/// subject and scope it would like to have.
fn forged() -> String {
    let other = Minter::builder()
        .generated_key(Algorithm::ES256)
        .kid(minter().kid())
        .issuer(GATEWAY)
        .audience(UPSTREAM)
        .clock(FixedClock(NOW))
        .build()
        .unwrap();
    other
        .mint(&MintInput::new("mallory", "jwt").scopes(["admin"]))
        .unwrap()
        .to_string()
}

/// What the handler saw under `HEADER`, judged as the upstream would.
fn judge(values: &[&[u8]]) -> Value {
    match values {
        [] => json!({"token": null}),
        [one] => {
            let raw = std::str::from_utf8(one).unwrap();
            match upstream().validate_json(raw) {
                Ok(v) => json!({
                    "token": "valid",
                    "raw": raw,
                    "sub": v.claims["sub"],
                    "authn": v.claims["authn"],
                    "scope": v.claims["scope"],
                    "src_iss": v.claims.get("src_iss"),
                }),
                Err(e) => json!({"token": "invalid", "kind": e.kind().as_str(), "raw": raw}),
            }
        }
        many => json!({"token": "several", "count": many.len()}),
    }
}

fn token(extra: Value) -> String {
    let mut c = claims();
    for (k, v) in extra.as_object().unwrap() {
        c[k] = v.clone();
    }
    key(Algorithm::ES256).token(&c)
}

fn alice() -> String {
    token(json!({"scope": "orders:read"}))
}

fn store() -> (Arc<MemoryStore>, NewApiKey) {
    let store = Arc::new(MemoryStore::new());
    let key = add_key(&store, "partner", &["orders:read"]);
    (store, key)
}

fn base_auth() -> BearerAuth {
    BearerAuth::new(validator(&[key(Algorithm::ES256)]))
}

fn with_token(auth: BearerAuth) -> BearerAuth {
    auth.internal_token(minter().clone(), HEADER).unwrap()
}

fn chain_auth(store: &Arc<MemoryStore>) -> BearerAuth {
    let chain = Chain::new()
        .jwt(JwtAuthenticator::new(validator(&[key(Algorithm::ES256)])))
        .api_key(api_keys(store, &ManualClock::new(NOW)));
    with_token(BearerAuth::from_chain(chain))
}

async fn get_with(base: &str, path: &str, headers: &[(&str, &str)]) -> reqwest::Response {
    let mut req = reqwest::Client::new().get(format!("{base}{path}"));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    req.send().await.unwrap()
}

/// Routes: `/whoami` (a JWT), `/maybe` (anonymous allowed), `/nested` (an
/// outer layer without the internal token, the route's with it: the route
/// takes the outer verdict), `/chain` (a JWT or an API key).
async fn cases(base: &str, key: &NewApiKey) {
    let bearer = format!("Bearer {}", alice());
    let forged = forged();

    // A pass: the handler validates a token for alice, minted by the layer.
    for path in ["/whoami", "/nested", "/chain"] {
        let r = get_with(base, path, &[("authorization", &bearer)]).await;
        assert_eq!(r.status(), 200, "{path}");
        let seen: Value = r.json().await.unwrap();
        assert_eq!(seen["token"], "valid", "{path}: {seen}");
        assert_eq!(
            (&seen["sub"], &seen["authn"], &seen["scope"]),
            (&json!("alice"), &json!("jwt"), &json!("orders:read")),
            "{path}"
        );
        // The JWT's issuer goes with its subject: `sub` is unique per issuer.
        assert_eq!(seen["src_iss"], json!(common::ISS), "{path}");
    }

    // Attack: a forged header (once, or twice) never reaches the handler,
    // with a pass (replaced by the minted one) or an anonymous pass (none).
    for path in ["/whoami", "/nested", "/chain", "/maybe"] {
        for copies in [1, 2] {
            let mut headers = vec![("authorization", bearer.as_str())];
            headers.extend(std::iter::repeat_n((HEADER, forged.as_str()), copies));
            let r = get_with(base, path, &headers).await;
            assert_eq!(r.status(), 200, "{path}");
            let seen: Value = r.json().await.unwrap();
            assert_eq!(seen["token"], "valid", "{path} x{copies}: {seen}");
            assert_ne!(seen["raw"], json!(forged), "{path}");
            assert_eq!(seen["sub"], "alice", "{path}");
        }
        let r = get_with(base, path, &[(HEADER, forged.as_str())]).await;
        if path == "/maybe" {
            assert_eq!(r.status(), 200);
            let seen: Value = r.json().await.unwrap();
            assert_eq!(seen, json!({"token": null}), "anonymous pass: {seen}");
        } else {
            // A refusal: the handler never ran, and the answer carries none.
            assert_eq!(r.status(), 401, "{path}");
            assert!(r.headers().get(HEADER).is_none(), "{path}");
            assert!(!r.text().await.unwrap().contains(&forged));
        }
    }

    // An API key through the chain: the same token shape, `authn: api_key`.
    let r = get_with(
        base,
        "/chain",
        &[("x-api-key", key.expose_key()), (HEADER, &forged)],
    )
    .await;
    let seen: Value = r.json().await.unwrap();
    assert_eq!(seen["token"], "valid", "{seen}");
    assert_eq!(seen["authn"], "api_key");
    assert_eq!(seen["scope"], "orders:read");
    assert!(!seen["raw"].as_str().unwrap().contains(key.expose_key()));

    // A principal that cannot be minted for (a JWT without `sub`): 500,
    // never a pass without the token.
    let mut no_sub = claims();
    no_sub.as_object_mut().unwrap().remove("sub");
    no_sub["scope"] = json!("orders:read");
    let no_sub = format!("Bearer {}", key_token(&no_sub));
    for path in ["/whoami", "/nested", "/chain"] {
        let r = get_with(base, path, &[("authorization", &no_sub), (HEADER, &forged)]).await;
        assert_eq!(r.status(), 500, "{path}");
        assert!(r.headers().get(HEADER).is_none());
        assert!(!r.text().await.unwrap().contains("valid"), "{path}");
    }
}

fn key_token(claims: &Value) -> String {
    key(Algorithm::ES256).token(claims)
}

#[test]
fn a_header_a_credential_or_http_uses_is_refused_at_build() {
    for bad in [
        "authorization",
        "Cookie",
        "proxy-authorization",
        "host",
        "content-length",
        "",
        "x token",
        "x-tökén",
    ] {
        let err = base_auth()
            .internal_token(minter().clone(), bad)
            .expect_err(bad);
        assert!(err.to_string().contains("internal token header"), "{err}");
    }
    assert!(
        base_auth()
            .internal_token(minter().clone(), "X-Internal-Token")
            .is_ok()
    );
}

mod axum_server {
    use super::*;

    async fn handler(headers: axum::http::HeaderMap) -> String {
        let values: Vec<&[u8]> = headers
            .get_all(HEADER)
            .iter()
            .map(|v| v.as_bytes())
            .collect();
        judge(&values).to_string()
    }

    async fn serve(router: Router) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, router).await });
        format!("http://{addr}")
    }

    #[tokio::test]
    async fn axum_handlers_get_a_minted_internal_token_and_never_the_clients() {
        let (store, key) = store();
        let base = base_auth();
        let nested = Router::new()
            .route(
                "/nested",
                get(handler).route_layer(
                    with_token(base.clone())
                        .require_scopes(Scopes::all(["orders:read"]))
                        .layer(),
                ),
            )
            .layer(base.layer());
        let app = Router::new()
            .route(
                "/whoami",
                get(handler).route_layer(with_token(base.clone()).layer()),
            )
            .route(
                "/maybe",
                get(handler).route_layer(with_token(base.clone()).allow_anonymous().layer()),
            )
            .route(
                "/chain",
                get(handler).route_layer(chain_auth(&store).layer()),
            )
            .merge(nested);
        cases(&serve(app).await, &key).await;
    }
}

mod actix_server {
    use super::*;
    use actix_web::{App, HttpRequest, web};
    use tokenwarden::middleware::actix::BearerAuthMiddleware;

    async fn handler(req: HttpRequest) -> actix_web::HttpResponse {
        let values: Vec<&[u8]> = req
            .headers()
            .get_all(HEADER)
            .map(|v| v.as_bytes())
            .collect();
        actix_web::HttpResponse::Ok().json(judge(&values))
    }

    fn serve(store: Arc<MemoryStore>) -> String {
        let base = base_auth();
        common::actix::serve_actix(move || {
            let guarded = |path: &str, auth: BearerAuth| {
                web::resource(path)
                    .wrap(BearerAuthMiddleware::new(auth))
                    .route(web::get().to(handler))
            };
            App::new()
                .service(guarded("/whoami", with_token(base.clone())))
                .service(guarded(
                    "/maybe",
                    with_token(base.clone()).allow_anonymous(),
                ))
                .service(guarded("/chain", chain_auth(&store)))
                .service(
                    web::scope("/nested")
                        .wrap(BearerAuthMiddleware::new(base.clone()))
                        .service(guarded(
                            "",
                            with_token(base.clone()).require_scopes(Scopes::all(["orders:read"])),
                        )),
                )
        })
    }

    #[tokio::test]
    async fn actix_handlers_get_a_minted_internal_token_and_never_the_clients() {
        let (store, key) = store();
        cases(&serve(store), &key).await;
    }
}
