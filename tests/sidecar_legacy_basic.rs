//! `tokenwarden serve` with `[legacy] basic = true`: `Authorization: Basic`
//! credentials judged end to end by a real loopback legacy endpoint, beside
//! bearer JWTs: identity headers and an internal token for the principal,
//! rules' scopes applied, the password in no header, token or log line.
#![cfg(all(feature = "cli", feature = "testing"))]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod common;

use base64::Engine as _;
use common::legacy::{LegacyServer, Mode};
use common::sidecar::*;
use tokenwarden::testing::TestIssuer;

fn basic(user: &str, password: &str) -> String {
    let pair = format!("{user}:{password}");
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(pair)
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn basic_credentials_are_judged_by_the_legacy_endpoint_end_to_end() {
    const PASSWORD: &str = "c0rr3ct-h0rse-b4ttery";
    let idp = TestIssuer::start().unwrap();
    let legacy = LegacyServer::start().await;
    let good = basic("dave", PASSWORD);
    legacy.add(
        &good,
        serde_json::json!({"sub": "dave", "scope": "orders:read"}),
    );
    let dir = Scratch::new("legacy-basic");
    let mint = dir.write("mint.pem", &mint_key_pem());
    let cfg = dir.write(
        "tw.toml",
        &format!(
            "{}{}\n[legacy]\nurl = \"{}\"\nbasic = true\ntimeout_ms = 2000\npositive_ttl_seconds = 60\nnegative_ttl_seconds = 5\n",
            config(idp.issuer(), RULES),
            internal_token_section(&mint),
            legacy.url
        ),
    );
    let mut side = start_sidecar(&cfg, &["--json-logs"]).await;
    let mut logs = side.stderr_lines();
    let base = format!("http://{}", side.addr);
    wait_status(&format!("{base}/readyz"), 200).await;
    let jwks = reqwest::get(format!("{base}/.well-known/jwks.json"))
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    let upstream = tokenwarden::Validator::builder()
        .issuer("https://gateway.test")
        .audience("https://orders.internal")
        .required_type("at+jwt")
        .keys(tokenwarden::KeySet::from_jwks(&jwks).unwrap())
        .build()
        .unwrap();
    let with_auth = |values: Vec<String>, uri: &'static str| {
        let base = base.clone();
        async move {
            let mut h: Vec<(&str, &[u8])> = vec![
                ("x-original-method", b"GET"),
                ("x-original-uri", uri.as_bytes()),
            ];
            for v in &values {
                h.push(("authorization", v.as_bytes()));
            }
            ask(&base, "/auth", reqwest::Method::GET, None, &h).await
        }
    };

    // A pass: dave's principal, from the endpoint's answer.
    let r = with_auth(vec![good.clone()], "/orders/7").await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-auth-subject"], "dave");
    assert_eq!(r.headers()["x-auth-scopes"], "orders:read");
    let internal = r.headers()["x-internal-token"].to_str().unwrap().to_owned();
    let claims = upstream.validate_json(&internal).unwrap().claims;
    assert_eq!(
        (
            claims["sub"].as_str(),
            claims["authn"].as_str(),
            claims["scope"].as_str()
        ),
        (Some("dave"), Some("legacy"), Some("orders:read"))
    );
    let everything: String = r
        .headers()
        .values()
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        .collect::<Vec<_>>()
        .join("\n");
    assert!(!everything.contains(PASSWORD) && !everything.contains(&good[6..]));
    assert!(!internal.contains(&good[6..]));
    // The endpoint got the credential header, and none of the gateway's.
    assert!(legacy.last_headers().contains(&"authorization".to_owned()));
    assert!(
        !legacy
            .last_headers()
            .iter()
            .any(|h| h.starts_with("x-original")),
        "{:?}",
        legacy.last_headers()
    );
    // Cached: asked once.
    let r = with_auth(vec![good.clone()], "/orders/8").await;
    assert_eq!(r.status(), 200);
    assert_eq!(legacy.calls(), 1);

    // The rule's scope applies to the principal.
    let r = with_auth(vec![good.clone()], "/admin/users").await;
    assert_eq!(r.status(), 403);
    assert!(r.headers().get("x-internal-token").is_none());
    // A wrong password: 401 with a Basic challenge, nothing for upstream.
    let r = with_auth(vec![basic("dave", "guess")], "/orders/7").await;
    assert_eq!(r.status(), 401);
    assert!(r.headers().get("x-internal-token").is_none());
    assert!(r.headers().get("x-auth-subject").is_none());
    // Attack: Basic and Bearer in two Authorization headers: refused.
    let jwt = idp.token().audience("api").subject("alice").sign();
    let r = with_auth(vec![good.clone(), format!("Bearer {jwt}")], "/orders/7").await;
    assert_eq!(r.status(), 400);
    assert!(r.headers().get("x-internal-token").is_none());
    // A JWT alone still passes beside it.
    let r = with_auth(vec![format!("Bearer {jwt}")], "/orders/7").await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-auth-subject"], "alice");

    // The endpoint down: 503, never a pass.
    legacy.set_mode(Mode::Status(500));
    let r = with_auth(vec![basic("erin", "an0ther-p4ss")], "/orders/7").await;
    assert_eq!(r.status(), 503);
    assert!(r.headers().get("x-internal-token").is_none());

    assert!(
        logs.wait_for("\"authn\":\"legacy\"").await,
        "{:?}",
        logs.seen
    );
    let seen = logs.drain().join("\n");
    for secret in [PASSWORD, &good[6..], "an0ther-p4ss"] {
        assert!(!seen.contains(secret), "a Basic credential in the logs");
    }
}
