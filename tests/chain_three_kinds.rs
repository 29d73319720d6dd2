//! Issue 16's chain test over real HTTP on 127.0.0.1: one axum service
//! accepting a bearer JWT, an API key and a legacy session cookie (judged
//! by a real loopback session service), each giving the same `Principal`
//! shape in the handler; two kinds at once refused; the route's scopes
//! applied whatever proved the request.
#![cfg(all(
    feature = "axum",
    feature = "api-keys",
    feature = "legacy",
    feature = "remote",
    feature = "testing"
))]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod common;

use std::sync::Arc;

use axum::Router;
use axum::routing::get;
use common::authn::{add_key, api_keys};
use common::legacy::LegacyServer;
use common::{NOW, claims, key, validator};
use serde_json::{Value, json};
use tokenwarden::authn::api_key::MemoryStore;
use tokenwarden::authn::jwt::JwtAuthenticator;
use tokenwarden::authn::legacy::{HttpCheck, LegacyAuthenticator};
use tokenwarden::authn::{Chain, Principal};
use tokenwarden::middleware::{BearerAuth, Scopes};
use tokenwarden::{Algorithm, ManualClock};

const SESSION: &str = "Zq8Lw3Xk9Pv2Rt7Ym4Nb6Hc1Jd5Gf0Zq8Lw3Xk9Pv2";

async fn whoami(p: Principal) -> String {
    json!({
        "sub": p.subject(),
        "authenticator": p.authenticator(),
        "scopes": p.scopes(),
        "roles": p.roles(),
        "exp": p.expires_at(),
    })
    .to_string()
}

struct Service {
    base: String,
    jwt: String,
    api_key: String,
    _legacy: LegacyServer,
}

async fn service() -> Service {
    let store = Arc::new(MemoryStore::new());
    let mut new = add_key(&store, "partner", &["orders:read", "orders:write"]);
    new.record.roles = vec!["ops".into()];
    store.insert(new.record.clone());

    let legacy = LegacyServer::start().await;
    legacy.add(
        &format!("SID={SESSION}"),
        json!({"sub": "carol", "scope": "orders:read", "roles": ["staff"], "exp": NOW + 1800}),
    );
    let check = HttpCheck::builder(&legacy.url)
        .allow_http_loopback(true)
        .build()
        .unwrap();
    let chain = Chain::new()
        .jwt(JwtAuthenticator::new(validator(&[key(Algorithm::ES256)])).roles_from("roles"))
        .api_key(api_keys(&store, &ManualClock::new(NOW)))
        .legacy(
            LegacyAuthenticator::cookie("SID", check.checker())
                .unwrap()
                .clock(ManualClock::new(NOW)),
        );
    let auth = BearerAuth::from_chain(chain).realm("orders");
    let app = Router::new()
        .route("/whoami", get(whoami).route_layer(auth.layer()))
        .route(
            "/write",
            get(whoami).route_layer(auth.require_scopes(Scopes::all(["orders:write"])).layer()),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });

    let mut c = claims();
    c["scope"] = json!("orders:read orders:write");
    c["roles"] = json!(["ops"]);
    Service {
        base: format!("http://{addr}"),
        jwt: format!("Bearer {}", key(Algorithm::ES256).token(&c)),
        api_key: new.expose_key().to_owned(),
        _legacy: legacy,
    }
}

async fn call(base: &str, path: &str, headers: &[(&str, &str)]) -> reqwest::Response {
    let mut req = reqwest::Client::new().get(format!("{base}{path}"));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    req.send().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_jwt_an_api_key_and_a_legacy_cookie_give_one_principal_shape() {
    let s = service().await;
    let cookie = format!("theme=dark; SID={SESSION}");
    let jwt = [("authorization", s.jwt.as_str())];
    let key = [("x-api-key", s.api_key.as_str())];
    let legacy = [("cookie", cookie.as_str())];

    let mut seen = Vec::new();
    for (what, headers) in [("jwt", &jwt), ("api key", &key), ("legacy", &legacy)] {
        let r = call(&s.base, "/whoami", headers).await;
        assert_eq!(r.status(), 200, "{what}");
        let p: Value = serde_json::from_str(&r.text().await.unwrap()).unwrap();
        seen.push(p);
    }
    assert_eq!(
        seen[0],
        json!({"sub": "alice", "authenticator": "jwt", "scopes": ["orders:read", "orders:write"],
               "roles": ["ops"], "exp": NOW + 600})
    );
    assert_eq!(seen[1]["authenticator"], "api_key");
    assert_eq!(seen[1]["sub"], "partner");
    assert_eq!(seen[1]["scopes"], seen[0]["scopes"], "one scope shape");
    assert_eq!(seen[1]["roles"], json!(["ops"]));
    assert!(seen[1]["exp"].is_i64());
    assert_eq!(
        seen[2],
        json!({"sub": "carol", "authenticator": "legacy", "scopes": ["orders:read"],
               "roles": ["staff"], "exp": NOW + 1800})
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn any_two_kinds_at_once_are_refused_400() {
    let s = service().await;
    let cookie = format!("SID={SESSION}");
    let pairs: [(&str, [(&str, &str); 2]); 3] = [
        (
            "jwt + key",
            [("authorization", &s.jwt), ("x-api-key", &s.api_key)],
        ),
        (
            "jwt + cookie",
            [("authorization", &s.jwt), ("cookie", &cookie)],
        ),
        (
            "key + cookie",
            [("x-api-key", &s.api_key), ("cookie", &cookie)],
        ),
    ];
    for (what, headers) in pairs {
        let r = call(&s.base, "/whoami", &headers).await;
        assert_eq!(r.status(), 400, "{what}");
        let challenge = r.headers()["www-authenticate"].to_str().unwrap().to_owned();
        assert!(challenge.contains("invalid_request"), "{what}: {challenge}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_routes_scopes_apply_whatever_proved_the_request() {
    let s = service().await;
    let cookie = format!("SID={SESSION}");
    let r = call(&s.base, "/write", &[("authorization", &s.jwt)]).await;
    assert_eq!(r.status(), 200, "jwt with orders:write");
    let r = call(&s.base, "/write", &[("x-api-key", &s.api_key)]).await;
    assert_eq!(r.status(), 200, "key with orders:write");
    // The session grants orders:read only: 403, with the scope named.
    let r = call(&s.base, "/write", &[("cookie", &cookie)]).await;
    assert_eq!(r.status(), 403, "legacy session without orders:write");
    let challenge = r.headers()["www-authenticate"].to_str().unwrap().to_owned();
    assert!(challenge.contains("insufficient_scope"), "{challenge}");
    // And no credential: 401 with a challenge for each of the three kinds.
    let r = call(&s.base, "/whoami", &[]).await;
    assert_eq!(r.status(), 401);
    assert_eq!(r.headers().get_all("www-authenticate").iter().count(), 3);
}
