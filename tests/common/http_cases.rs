//! The one table of HTTP cases every adapter (tower/axum, actix-web) must
//! answer identically, and its runner. The app under test has:
//! `/me` (token required), `/orders` (scope `orders:read`), `/admin` (role
//! `admin` in `realm_access.roles`), `/app` (custom requirement
//! `client_id my-app`), `/maybe` (anonymous allowed, optional claims), realm
//! `orders`, behind an outer anonymous-allowing layer.

use serde_json::{Value, json};
use tokenwarden::Algorithm;

use super::{LogBuffer, NOW, claims, key};

pub struct Case {
    pub name: &'static str,
    pub path: &'static str,
    pub authorization: Option<String>,
    pub status: u16,
    /// The exact WWW-Authenticate value, if one is expected.
    pub challenge: Option<&'static str>,
    pub body: Option<&'static str>,
}

fn token_with(claims: Value) -> String {
    key(Algorithm::ES256).token(&claims)
}

pub fn cases() -> Vec<Case> {
    let bearer = |t: &str| Some(format!("Bearer {t}"));
    let mut scoped = claims();
    scoped["scope"] = json!("profile orders:read");
    let mut unscoped = claims();
    unscoped["scope"] = json!("profile orders:reader");
    let mut expired = claims();
    expired["exp"] = json!(NOW - 3600);
    let mut admin = claims();
    admin["realm_access"] = json!({"roles": ["ops", "admin"]});
    let mut ops = claims();
    ops["realm_access"] = json!({"roles": ["ops"]});
    let mut mine = claims();
    mine["client_id"] = json!("my-app");
    let mut theirs = claims();
    theirs["client_id"] = json!("their-app");
    let mut foreign = claims();
    foreign["aud"] = json!("https://other.test");
    vec![
        Case {
            name: "valid",
            path: "/me",
            authorization: bearer(&token_with(claims())),
            status: 200,
            challenge: None,
            body: Some("alice"),
        },
        Case {
            name: "scheme is case-insensitive",
            path: "/me",
            authorization: Some(format!("bearer {}", token_with(claims()))),
            status: 200,
            challenge: None,
            body: Some("alice"),
        },
        Case {
            name: "no token",
            path: "/me",
            authorization: None,
            status: 401,
            challenge: Some(r#"Bearer realm="orders""#),
            body: Some(""),
        },
        Case {
            name: "other scheme",
            path: "/me",
            authorization: Some("Basic YTpi".into()),
            status: 401,
            challenge: Some(r#"Bearer realm="orders""#),
            body: Some(""),
        },
        Case {
            name: "garbage token",
            path: "/me",
            authorization: bearer("not.a.jwt"),
            status: 401,
            challenge: Some(
                r#"Bearer realm="orders", error="invalid_token", error_description="malformed""#,
            ),
            body: Some(""),
        },
        Case {
            name: "expired",
            path: "/me",
            authorization: bearer(&token_with(expired)),
            status: 401,
            challenge: Some(
                r#"Bearer realm="orders", error="invalid_token", error_description="expired""#,
            ),
            body: Some(""),
        },
        Case {
            name: "wrong audience",
            path: "/me",
            authorization: bearer(&token_with(foreign)),
            status: 401,
            challenge: Some(
                r#"Bearer realm="orders", error="invalid_token", error_description="invalid_audience""#,
            ),
            body: Some(""),
        },
        Case {
            name: "two tokens",
            path: "/me",
            authorization: Some("Bearer a b".into()),
            status: 400,
            challenge: Some(
                r#"Bearer realm="orders", error="invalid_request", error_description="the Authorization header must hold exactly one bearer token""#,
            ),
            body: Some(""),
        },
        Case {
            name: "scope granted",
            path: "/orders",
            authorization: bearer(&token_with(scoped)),
            status: 200,
            challenge: None,
            body: Some("alice"),
        },
        Case {
            name: "scope lacking",
            path: "/orders",
            authorization: bearer(&token_with(unscoped)),
            status: 403,
            challenge: Some(
                r#"Bearer realm="orders", error="insufficient_scope", scope="orders:read""#,
            ),
            body: Some(""),
        },
        Case {
            name: "anonymous allowed",
            path: "/maybe",
            authorization: None,
            status: 200,
            challenge: None,
            body: Some("anonymous"),
        },
        Case {
            name: "optional claims present",
            path: "/maybe",
            authorization: bearer(&token_with(claims())),
            status: 200,
            challenge: None,
            body: Some("alice"),
        },
        Case {
            name: "optional route, bad token",
            path: "/maybe",
            authorization: bearer("not.a.jwt"),
            status: 401,
            challenge: Some(
                r#"Bearer realm="orders", error="invalid_token", error_description="malformed""#,
            ),
            body: Some(""),
        },
    ]
}

/// Sends every case to `base` and checks status, challenge, body, and that
/// the token shows up in neither the response nor the captured logs.
pub async fn run_all(base: &str, logs: &LogBuffer) {
    let client = reqwest::Client::new();
    for case in cases() {
        let mut req = client.get(format!("{base}{}", case.path));
        if let Some(a) = &case.authorization {
            req = req.header("authorization", a);
        }
        let resp = req.send().await.unwrap();
        assert_eq!(resp.status().as_u16(), case.status, "{}", case.name);
        let challenge = resp
            .headers()
            .get("www-authenticate")
            .map(|v| v.to_str().unwrap().to_owned());
        assert_eq!(challenge.as_deref(), case.challenge, "{}", case.name);
        let headers = format!("{:?}", resp.headers());
        let body = resp.text().await.unwrap();
        if let Some(expected) = case.body {
            assert_eq!(body, expected, "{}", case.name);
        }
        if let Some(a) = &case.authorization {
            let token = a.rsplit(' ').next().unwrap();
            if token.len() > 8 {
                assert!(
                    !headers.contains(token) && !body.contains(token),
                    "{}: token echoed",
                    case.name
                );
                assert!(!logs.text().contains(token), "{}: token logged", case.name);
            }
        }
    }
    assert!(
        logs.text().contains("bearer token refused"),
        "refusals are logged: {}",
        logs.text()
    );
}

/// The custom requirement behind `/app`.
pub fn is_my_app(c: &serde_json::Map<String, Value>) -> bool {
    c.get("client_id").and_then(Value::as_str) == Some("my-app")
}

/// A validator whose keys can never be fetched (nothing listens on port 9
/// of loopback): every token meets `keys_unavailable`.
#[cfg(feature = "remote")]
pub fn keyless_validator() -> tokenwarden::Validator {
    let keys = tokenwarden::RemoteKeySet::builder()
        .jwks_url("http://127.0.0.1:9/jwks")
        .allow_http_loopback(true)
        .build()
        .unwrap();
    tokenwarden::Validator::builder()
        .issuer(super::ISS)
        .audience(super::AUD)
        .keys(keys)
        .build()
        .unwrap()
}

/// With no usable keys, a valid-looking token gets 503 and no challenge:
/// the client did nothing wrong.
pub async fn run_keys_unavailable(base: &str) {
    let resp = reqwest::Client::new()
        .get(format!("{base}/me"))
        .bearer_auth(token_with(claims()))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 503);
    assert!(resp.headers().get("www-authenticate").is_none());
}
