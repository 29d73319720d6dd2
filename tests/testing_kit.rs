//! Written the way a user tests their own service: only the public
//! `tokenwarden::testing` API, a real loopback IdP, the user's own claims type.
#![cfg(all(feature = "testing", feature = "remote"))]
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use serde::Deserialize;
use serde_json::json;
use tokenwarden::testing::TestIssuer;
use tokenwarden::{Algorithm, ErrorKind, RemoteKeySet, Validator};

#[derive(Debug, Deserialize)]
struct MyClaims {
    sub: String,
    scope: String,
    tenant: String,
}

async fn my_validator(idp: &TestIssuer) -> Validator {
    let keys = RemoteKeySet::builder()
        .discovery(idp.issuer())
        .allow_http_loopback(true)
        .build()
        .unwrap();
    keys.refresh().await.unwrap();
    Validator::builder()
        .issuer(idp.issuer())
        .audience("my-api")
        .keys(keys)
        .build()
        .unwrap()
}

#[tokio::test]
async fn my_service_accepts_good_tokens_and_refuses_the_rest() {
    let idp = TestIssuer::builder()
        .algorithm(Algorithm::RS256)
        .start()
        .unwrap();
    let v = my_validator(&idp).await;

    let token = idp
        .token()
        .audience("my-api")
        .subject("alice")
        .scope("read write")
        .claim("tenant", json!("acme"))
        .sign();
    let ok = v.validate_async::<MyClaims>(&token).await.unwrap();
    assert_eq!(ok.claims.sub, "alice");
    assert_eq!(ok.claims.scope, "read write");
    assert_eq!(ok.claims.tenant, "acme");
    assert_eq!(ok.header.alg(), Algorithm::RS256);

    let expired = idp.token().audience("my-api").expired().sign();
    assert_eq!(
        v.validate_async::<serde_json::Value>(&expired)
            .await
            .unwrap_err()
            .kind(),
        ErrorKind::Expired
    );
    let elsewhere = idp.token().audience("other-api").sign();
    assert_eq!(
        v.validate_async::<serde_json::Value>(&elsewhere)
            .await
            .unwrap_err()
            .kind(),
        ErrorKind::InvalidAudience
    );
    let no_exp = idp.token().audience("my-api").without("exp").sign();
    assert_eq!(
        v.validate_async::<serde_json::Value>(&no_exp)
            .await
            .unwrap_err()
            .kind(),
        ErrorKind::MissingClaim
    );
}

#[tokio::test]
async fn my_service_follows_a_key_rotation() {
    let idp = TestIssuer::start().unwrap();
    let v = my_validator(&idp).await;
    let before = idp.stats().jwks;
    let kid = idp.rotate().unwrap();
    let token = idp.token().audience("my-api").sign();
    let ok = v.validate_async::<serde_json::Value>(&token).await.unwrap();
    assert_eq!(ok.header.kid(), Some(kid.as_str()));
    assert_eq!(
        idp.stats().jwks,
        before + 1,
        "one fetch for the unknown kid"
    );
}

#[tokio::test]
async fn the_token_endpoint_grants_registered_clients_only() {
    let idp = TestIssuer::builder()
        .client("job", "pw", "my-api", &["read"])
        .start()
        .unwrap();
    let v = my_validator(&idp).await;
    let client = reqwest::Client::new();
    let grant = |secret: &'static str, scope: &'static str| {
        client
            .post(idp.token_url())
            .form(&[
                ("grant_type", "client_credentials"),
                ("client_id", "job"),
                ("client_secret", secret),
                ("scope", scope),
            ])
            .send()
    };
    let r = grant("pw", "read").await.unwrap();
    assert_eq!(r.status(), 200);
    let body: serde_json::Value = r.json().await.unwrap();
    let token = body["access_token"].as_str().unwrap();
    let ok = v.validate_async::<serde_json::Value>(token).await.unwrap();
    assert_eq!(ok.claims["sub"], "job");
    assert_eq!(ok.claims["scope"], "read");
    assert_eq!(ok.header.typ(), Some("at+jwt"));

    assert_eq!(grant("wrong", "read").await.unwrap().status(), 401);
    assert_eq!(grant("pw", "admin").await.unwrap().status(), 400);

    idp.set_available(false);
    assert_eq!(grant("pw", "read").await.unwrap().status(), 503);
}
