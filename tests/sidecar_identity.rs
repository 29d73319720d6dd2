//! `tokenwarden serve`: the identity headers a pass carries (always set,
//! percent-encoded, array claims, `scp` shapes).
#![cfg(all(feature = "cli", feature = "testing"))]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod common;

use common::sidecar::*;
use tokenwarden::testing::TestIssuer;

/// Every configured identity header is in every 200 (empty when the claim
/// is absent or the route anonymous), values percent-encoded as UTF-8.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identity_headers_are_always_set_and_encoded() {
    let idp = TestIssuer::start().unwrap();
    let dir = Scratch::new("identity");
    let cfg = dir.write(
        "tw.toml",
        &format!(
            "{}\n[headers]\nclaims = {{ tenant = \"X-Auth-Tenant\" }}\n",
            config(idp.issuer(), ADMIN_AND_PUBLIC)
        ),
    );
    let side = start_sidecar(&cfg, &[]).await;
    let base = format!("http://{}", side.addr);
    wait_status(&format!("{base}/readyz"), 200).await;
    let all = [
        "x-auth-subject",
        "x-auth-issuer",
        "x-auth-scopes",
        "x-auth-tenant",
    ];
    let orders: &[(&str, &[u8])] = &[
        ("x-original-method", b"GET"),
        ("x-original-uri", b"/orders"),
    ];

    // No tenant claim, no scope: those headers are present and empty.
    let plain = idp.token().audience("api").subject("alice").sign();
    let r = ask(&base, "/auth", reqwest::Method::GET, Some(&plain), orders).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-auth-subject"], "alice");
    assert_eq!(r.headers()["x-auth-tenant"], "");
    assert_eq!(r.headers()["x-auth-scopes"], "");

    // Non-ASCII, '%', and spaces at the edges are encoded, never dropped.
    let odd = idp
        .token()
        .audience("api")
        .subject("Zoë 50%")
        .claim("tenant", serde_json::json!(" a\nb "))
        .sign();
    let r = ask(&base, "/auth", reqwest::Method::GET, Some(&odd), orders).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-auth-subject"], "Zo%C3%AB 50%25");
    assert_eq!(r.headers()["x-auth-tenant"], "%20a%0Ab%20");

    // Anonymous: every header, empty.
    let public: &[(&str, &[u8])] = &[
        ("x-original-method", b"GET"),
        ("x-original-uri", b"/public/a"),
        ("x-auth-subject", b"admin"),
    ];
    let r = ask(&base, "/auth", reqwest::Method::GET, None, public).await;
    assert_eq!(r.status(), 200);
    for h in all {
        assert_eq!(
            r.headers().get(h).map(|v| v.as_bytes()),
            Some(&b""[..]),
            "{h}"
        );
    }
}

/// Array claims are joined with one space; a space or comma inside an
/// element is percent-encoded, so no element reads as two.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn array_claim_elements_cannot_split_into_more() {
    let idp = TestIssuer::start().unwrap();
    let dir = Scratch::new("arrays");
    let (_side, base) = sidecar_with(
        &idp,
        &dir,
        "",
        "[headers]\nclaims = { groups = \"X-Auth-Groups\" }\n",
    )
    .await;
    let token = idp
        .token()
        .audience("api")
        .subject("eve")
        .claim("scp", serde_json::json!(["read", "x admin"]))
        .claim("groups", serde_json::json!(["team admin", "a,b", "", "x"]))
        .sign();
    let headers: &[(&str, &[u8])] = &[
        ("x-original-method", b"GET"),
        ("x-original-uri", b"/orders"),
    ];
    let r = ask(&base, "/auth", reqwest::Method::GET, Some(&token), headers).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-auth-scopes"], "read x%20admin");
    assert_eq!(r.headers()["x-auth-groups"], "team%20admin a%2Cb x");
}

/// Entra ID's `scp` is a space-separated string, Okta's an array: the rule's
/// scope check and the scopes header read both shapes, from `scope` and `scp`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scp_as_string_or_array_passes_rules_and_fills_the_header() {
    let idp = TestIssuer::start().unwrap();
    let dir = Scratch::new("scp-shapes");
    let (_side, base) = sidecar_with(&idp, &dir, "", RULES).await;
    let entra = idp
        .token()
        .audience("api")
        .subject("eve")
        .claim("scp", serde_json::json!("read admin"))
        .sign();
    let r = get(&format!("{base}/auth"), Some(&entra), "/admin/x").await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-auth-scopes"], "read admin");
    let okta = idp
        .token()
        .audience("api")
        .subject("eve")
        .scope("openid")
        .claim("scp", serde_json::json!(["admin"]))
        .sign();
    let r = get(&format!("{base}/auth"), Some(&okta), "/admin/x").await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-auth-scopes"], "openid admin");
    let reader = idp
        .token()
        .audience("api")
        .subject("eve")
        .claim("scp", serde_json::json!("read"))
        .sign();
    let r = get(&format!("{base}/auth"), Some(&reader), "/admin/x").await;
    assert_eq!(r.status(), 403);
}
