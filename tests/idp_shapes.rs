//! Access and ID tokens shaped as each major identity provider issues them
//! (claims copied from their documentation), each through the tower layer:
//! the right scopes, roles and audience answer 200, the wrong ones 403 (or
//! 401 for a token meant for someone else). The README's "Recipes per
//! identity provider" configure the validator the same way.
#![cfg(feature = "tower")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::convert::Infallible;
use std::time::{SystemTime, UNIX_EPOCH};

use http_body_util::Full;
use hyper::body::Bytes;
use hyper::{Request, Response, StatusCode};
use serde_json::{Value, json};
use tokenwarden::middleware::{BearerAuth, Roles, Scopes};
use tokenwarden::testing::TestIssuer;
use tokenwarden::{KeySet, ValidatorBuilder};
use tower::{Layer, ServiceExt, service_fn};

/// Keys published by a loopback IdP; the claims carry the real IdP's issuer.
struct Idp {
    idp: TestIssuer,
}

impl Idp {
    fn start() -> Idp {
        Idp {
            idp: TestIssuer::start().unwrap(),
        }
    }

    fn keys(&self) -> KeySet {
        KeySet::from_jwks(self.idp.jwks_json().as_bytes()).unwrap()
    }

    /// Signs `claims` with `iat`/`exp` (and `nbf`) set to now and now + 1 h.
    fn sign(&self, mut claims: Value) -> String {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let m = claims.as_object_mut().unwrap();
        m.insert("iat".into(), json!(now));
        m.insert("nbf".into(), json!(now));
        m.insert("exp".into(), json!(now + 3600));
        self.idp.sign(&claims)
    }
}

/// The status of one request carrying `token` through `auth`'s layer.
async fn status(auth: &BearerAuth, token: &str) -> StatusCode {
    let handler = service_fn(|_req: Request<Full<Bytes>>| async {
        Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"ok"))))
    });
    let req = Request::builder()
        .uri("/orders")
        .header("authorization", format!("Bearer {token}"))
        .body(Full::new(Bytes::new()))
        .unwrap();
    auth.layer()
        .layer(handler)
        .oneshot(req)
        .await
        .unwrap()
        .status()
}

fn auth(builder: ValidatorBuilder) -> BearerAuth {
    BearerAuth::new(builder.build().unwrap())
}

const OK: StatusCode = StatusCode::OK;
const FORBIDDEN: StatusCode = StatusCode::FORBIDDEN;
const UNAUTHORIZED: StatusCode = StatusCode::UNAUTHORIZED;

#[tokio::test]
async fn keycloak() {
    let idp = Idp::start();
    let iss = "https://sso.example.com/realms/shop";
    // Without an audience mapper Keycloak sets `aud` to "account" and names
    // the client in `azp`: accept "account" only with a check on `azp`.
    let token = idp.sign(json!({
        "iss": iss, "sub": "f1c2", "typ": "Bearer", "azp": "orders-api",
        "aud": "account", "scope": "openid profile orders:write",
        "realm_access": {"roles": ["offline_access", "admin"]},
        "resource_access": {
            "orders-api": {"roles": ["clerk"]},
            "account": {"roles": ["manage-account"]}
        },
        "preferred_username": "alice", "session_state": "9a1b"
    }));
    let auth = auth(
        tokenwarden::Validator::builder()
            .issuer(iss)
            .audience("account")
            .check("azp", |c| match c.get("azp") {
                Some(a) if a == "orders-api" => Ok(()),
                _ => Err("not issued to orders-api".into()),
            })
            .keys(idp.keys()),
    );
    let write = auth.clone().require_scopes(Scopes::all(["orders:write"]));
    assert_eq!(status(&write, &token).await, OK);
    let delete = auth.clone().require_scopes(Scopes::all(["orders:delete"]));
    assert_eq!(status(&delete, &token).await, FORBIDDEN);
    let realm_admin = auth
        .clone()
        .require_roles(Roles::all("realm_access.roles", ["admin"]));
    assert_eq!(status(&realm_admin, &token).await, OK);
    let clerk = auth
        .clone()
        .require_roles(Roles::all("resource_access.orders-api.roles", ["clerk"]));
    assert_eq!(status(&clerk, &token).await, OK);
    // A role of another client does not count for this one.
    let manager = auth.clone().require_roles(Roles::all(
        "resource_access.orders-api.roles",
        ["manage-account"],
    ));
    assert_eq!(status(&manager, &token).await, FORBIDDEN);
    // Another client of the realm: same `aud`, other `azp`.
    let other = idp.sign(json!({
        "iss": iss, "sub": "f1c2", "azp": "billing", "aud": "account",
        "scope": "orders:write"
    }));
    assert_eq!(status(&write, &other).await, UNAUTHORIZED);
}

#[tokio::test]
async fn auth0() {
    let idp = Idp::start();
    // Auth0's issuer ends with "/", and `aud` is an array when `openid` was
    // asked for; RBAC permissions come in `permissions`.
    let iss = "https://shop.eu.auth0.com/";
    let token = idp.sign(json!({
        "iss": iss, "sub": "auth0|64f0", "azp": "Xy12",
        "aud": ["https://orders.example.com", "https://shop.eu.auth0.com/userinfo"],
        "scope": "openid profile orders:read",
        "permissions": ["orders:read", "orders:refund"]
    }));
    let auth = auth(
        tokenwarden::Validator::builder()
            .issuer(iss)
            .audience("https://orders.example.com")
            .keys(idp.keys()),
    );
    let read = auth.clone().require_scopes(Scopes::all(["orders:read"]));
    assert_eq!(status(&read, &token).await, OK);
    let write = auth.clone().require_scopes(Scopes::all(["orders:write"]));
    assert_eq!(status(&write, &token).await, FORBIDDEN);
    let refund = auth
        .clone()
        .require_roles(Roles::all("permissions", ["orders:refund"]));
    assert_eq!(status(&refund, &token).await, OK);
    let admin = auth
        .clone()
        .require_roles(Roles::all("permissions", ["orders:admin"]));
    assert_eq!(status(&admin, &token).await, FORBIDDEN);
    // The issuer is compared exactly: without the "/" nothing passes.
    let no_slash = BearerAuth::new(
        tokenwarden::Validator::builder()
            .issuer("https://shop.eu.auth0.com")
            .audience("https://orders.example.com")
            .keys(idp.keys())
            .build()
            .unwrap(),
    );
    assert_eq!(status(&no_slash, &token).await, UNAUTHORIZED);
}

const TENANT: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";

#[tokio::test]
async fn entra_v2() {
    let idp = Idp::start();
    let iss = format!("https://login.microsoftonline.com/{TENANT}/v2.0");
    // v2 access tokens: `aud` is the API's client id, `scp` a
    // space-separated string (delegated), `roles` an array (app roles).
    let token = idp.sign(json!({
        "iss": iss, "aud": "6e74172b-be56-4843-9ff4-e66a39bb12e3",
        "azp": "0c2b5d1e-1f2a-4c6e-9d5e-8f7a6b5c4d3e", "azpacr": "0",
        "oid": "690222be-ff1a-4d56-abd1-7e4f7d38e474", "sub": "AAAAAAAAAAAAAAAAAAAAAIkzqFVrSaSaFHy782bbtaQ",
        "tid": TENANT, "ver": "2.0", "scp": "Orders.Read Orders.Write",
        "roles": ["Orders.Admin"], "name": "Alice", "uti": "fqiBqXLPj0eQa82S-IYFAA"
    }));
    let auth = auth(
        tokenwarden::Validator::builder()
            .issuer(iss)
            .audience("6e74172b-be56-4843-9ff4-e66a39bb12e3")
            .keys(idp.keys()),
    );
    let write = auth.clone().require_scopes(Scopes::all(["Orders.Write"]));
    assert_eq!(status(&write, &token).await, OK);
    let both = auth
        .clone()
        .require_scopes(Scopes::all(["Orders.Read", "Orders.Write"]));
    assert_eq!(status(&both, &token).await, OK);
    let delete = auth.clone().require_scopes(Scopes::all(["Orders.Delete"]));
    assert_eq!(status(&delete, &token).await, FORBIDDEN);
    let admin = auth
        .clone()
        .require_roles(Roles::all("roles", ["Orders.Admin"]));
    assert_eq!(status(&admin, &token).await, OK);
    let reader = auth
        .clone()
        .require_roles(Roles::all("roles", ["Orders.Reader"]));
    assert_eq!(status(&reader, &token).await, FORBIDDEN);
}

#[tokio::test]
async fn entra_v1() {
    let idp = Idp::start();
    // v1 access tokens: the sts.windows.net issuer with a trailing "/", the
    // App ID URI as `aud`, `appid` for the client, `scp` a string.
    let iss = format!("https://sts.windows.net/{TENANT}/");
    let token = idp.sign(json!({
        "iss": iss, "aud": "api://orders", "appid": "0c2b5d1e-1f2a-4c6e-9d5e-8f7a6b5c4d3e",
        "appidacr": "1", "oid": "690222be-ff1a-4d56-abd1-7e4f7d38e474",
        "sub": "l3_roISQU222bULS9yi2k0XpqpOiMz5H3ZACo1GeXA", "tid": TENANT,
        "ver": "1.0", "scp": "user_impersonation Orders.Read", "upn": "alice@contoso.com"
    }));
    let auth = auth(
        tokenwarden::Validator::builder()
            .issuer(iss)
            .audience("api://orders")
            .keys(idp.keys()),
    );
    let read = auth.clone().require_scopes(Scopes::all(["Orders.Read"]));
    assert_eq!(status(&read, &token).await, OK);
    let any = auth
        .clone()
        .require_scopes(Scopes::any(["Orders.Write", "user_impersonation"]));
    assert_eq!(status(&any, &token).await, OK);
    let write = auth.clone().require_scopes(Scopes::all(["Orders.Write"]));
    assert_eq!(status(&write, &token).await, FORBIDDEN);
    // A v2 issuer configured for a v1 token does not pass.
    let v2 = BearerAuth::new(
        tokenwarden::Validator::builder()
            .issuer(format!("https://login.microsoftonline.com/{TENANT}/v2.0"))
            .audience("api://orders")
            .keys(idp.keys())
            .build()
            .unwrap(),
    );
    assert_eq!(status(&v2, &token).await, UNAUTHORIZED);
}

#[tokio::test]
async fn okta() {
    let idp = Idp::start();
    // Okta custom authorization server: `scp` an array, `cid` the client,
    // `groups` only with a groups claim configured.
    let iss = "https://dev-133337.okta.com/oauth2/default";
    let token = idp.sign(json!({
        "ver": 1, "jti": "AT.0mP4JKAZX1iACIT4vbEDF7LpvDVjxypPMf0D7uX39RE",
        "iss": iss, "aud": "api://default", "cid": "0oa1ytt0c1Vt8WXqS0h8",
        "uid": "00u1ytt0c1Vt8WXqS0h8", "sub": "alice@example.com",
        "scp": ["openid", "orders:read"], "groups": ["Everyone", "Support"]
    }));
    let auth = auth(
        tokenwarden::Validator::builder()
            .issuer(iss)
            .audience("api://default")
            .keys(idp.keys()),
    );
    let read = auth.clone().require_scopes(Scopes::all(["orders:read"]));
    assert_eq!(status(&read, &token).await, OK);
    let write = auth.clone().require_scopes(Scopes::all(["orders:write"]));
    assert_eq!(status(&write, &token).await, FORBIDDEN);
    let support = auth
        .clone()
        .require_roles(Roles::all("groups", ["Support"]));
    assert_eq!(status(&support, &token).await, OK);
    let admins = auth.clone().require_roles(Roles::all("groups", ["Admins"]));
    assert_eq!(status(&admins, &token).await, FORBIDDEN);
}

#[tokio::test]
async fn cognito() {
    let idp = Idp::start();
    let iss = "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_AbCdEf123";
    // Cognito access tokens carry no `aud`: `client_id` names the app
    // client and `token_use` tells access from ID tokens.
    let access = |client: &str, token_use: &str| {
        idp.sign(json!({
            "iss": iss, "sub": "aaaa-bbbb", "client_id": client, "token_use": token_use,
            "scope": "orders/read orders/write", "auth_time": 1_700_000_000,
            "cognito:groups": ["admins"], "jti": "c0ffee", "username": "alice",
            "origin_jti": "beef", "event_id": "d00d"
        }))
    };
    let auth = auth(
        tokenwarden::Validator::builder()
            .issuer(iss)
            .danger_accept_any_audience()
            .check("client_id", |c| match c.get("client_id") {
                Some(id) if id == "5r4c2b1a" => Ok(()),
                _ => Err("not issued to this app client".into()),
            })
            .check("token_use", |c| match c.get("token_use") {
                Some(u) if u == "access" => Ok(()),
                _ => Err("not an access token".into()),
            })
            .keys(idp.keys()),
    );
    let token = access("5r4c2b1a", "access");
    let write = auth.clone().require_scopes(Scopes::all(["orders/write"]));
    assert_eq!(status(&write, &token).await, OK);
    let delete = auth.clone().require_scopes(Scopes::all(["orders/delete"]));
    assert_eq!(status(&delete, &token).await, FORBIDDEN);
    let admins = auth
        .clone()
        .require_roles(Roles::all("cognito:groups", ["admins"]));
    assert_eq!(status(&admins, &token).await, OK);
    let ops = auth
        .clone()
        .require_roles(Roles::all("cognito:groups", ["ops"]));
    assert_eq!(status(&ops, &token).await, FORBIDDEN);
    // Another app client of the same pool, and an ID token: refused.
    assert_eq!(
        status(&write, &access("another-client", "access")).await,
        UNAUTHORIZED
    );
    assert_eq!(
        status(&write, &access("5r4c2b1a", "id")).await,
        UNAUTHORIZED
    );
}

#[tokio::test]
async fn google() {
    let idp = Idp::start();
    // Google's access tokens are opaque; its ID tokens are JWTs with the
    // OAuth client id as `aud` and no scopes: check the claims instead.
    let client = "1234987819200.apps.googleusercontent.com";
    let id_token = |aud: &str, hd: &str| {
        idp.sign(json!({
            "iss": "https://accounts.google.com", "azp": client, "aud": aud,
            "sub": "110169484474386276334", "email": "alice@example.com",
            "email_verified": true, "hd": hd, "at_hash": "HK6E_P6Dh8Y93mRNtsDB1Q"
        }))
    };
    let auth = auth(
        tokenwarden::Validator::builder()
            .issuer("https://accounts.google.com")
            .audience(client)
            .keys(idp.keys()),
    )
    .require_claims("hd example.com", |c| {
        c.get("hd").and_then(Value::as_str) == Some("example.com")
            && c.get("email_verified") == Some(&Value::Bool(true))
    });
    assert_eq!(status(&auth, &id_token(client, "example.com")).await, OK);
    assert_eq!(
        status(&auth, &id_token(client, "elsewhere.org")).await,
        FORBIDDEN
    );
    // An ID token issued to another app.
    assert_eq!(
        status(
            &auth,
            &id_token("999.apps.googleusercontent.com", "example.com")
        )
        .await,
        UNAUTHORIZED
    );
}
