//! `tokenwarden serve` with `[introspection]` and `[mtls]
//! require_bound_tokens = true`: an opaque token must be certificate-bound
//! as a JWT must (RFC 8705 §3.2: the introspection answer's
//! `cnf["x5t#S256"]`), judged against the test issuer's real loopback
//! `/introspect` with the certificate from the gateway's header.
#![cfg(all(feature = "cli", feature = "testing"))]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod common;

use common::sidecar::*;
use common::tls::{ClientCert, Pki};
use tokenwarden::testing::TestIssuer;

const MTLS: &str = "\n[mtls]\nfrom_gateway = true\nheader = \"X-Client-Cert\"\nformat = \"nginx\"\nrequire_bound_tokens = true\n";

/// Attack (review finding): with `require_bound_tokens`, a plain opaque
/// token (an answer without `cnf`) was accepted while a plain JWT was
/// refused: a stolen opaque token worked without the client's key. Now
/// both are refused, and a bound opaque token passes with its certificate
/// only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn require_bound_tokens_refuses_an_unbound_opaque_token() {
    let idp = TestIssuer::start().unwrap();
    idp.introspection_client_secret(INTROSPECTION_CLIENT, INTROSPECTION_SECRET);
    let pki = Pki::new();
    let alice = pki.client("alice", &["spiffe://shop.test/sa/alice"], &[]);
    let mallory = pki.client("mallory", &["spiffe://shop.test/sa/mallory"], &[]);
    let dir = Scratch::new("introspection-mtls");
    let secret = dir.write("secret", &format!("{INTROSPECTION_SECRET}\n"));
    let cfg = dir.write(
        "tw.toml",
        &format!(
            "{}{}{MTLS}",
            config(idp.issuer(), ""),
            introspection_section(&idp, &secret, "")
        ),
    );
    let side = start_sidecar(&cfg, &[]).await;
    let base = format!("http://{}", side.addr);
    wait_status(&format!("{base}/readyz"), 200).await;
    let status = |token: String, cert: Option<&ClientCert>| {
        let base = base.clone();
        let header = cert.map(ClientCert::nginx_escaped);
        async move {
            let mut headers: Vec<(&str, &[u8])> = vec![
                ("x-original-method", b"GET"),
                ("x-original-uri", b"/orders/1"),
            ];
            if let Some(h) = &header {
                headers.push(("X-Client-Cert", h.as_bytes()));
            }
            let r = ask(&base, "/auth", reqwest::Method::GET, Some(&token), &headers).await;
            let challenge = common::challenge_of(&r);
            (r.status().as_u16(), challenge)
        }
    };
    let plain = idp.opaque_token().subject("bob").audience("api").issue();
    let (code, challenge) = status(plain.clone(), Some(&alice)).await;
    assert_eq!(code, 401, "an unbound opaque token passed: {challenge}");
    assert!(
        challenge.contains("only certificate-bound tokens"),
        "{challenge}"
    );
    assert_eq!(status(plain, None).await.0, 401);
    let bound = idp
        .opaque_token()
        .subject("alice")
        .audience("api")
        .claim(
            "cnf",
            serde_json::json!({"x5t#S256": tokenwarden::authn::mtls::thumbprint(&alice.der)}),
        )
        .issue();
    assert_eq!(status(bound.clone(), Some(&alice)).await.0, 200);
    // Kept, and held to the certificate on every request.
    assert_eq!(status(bound.clone(), Some(&mallory)).await.0, 401);
    assert_eq!(status(bound, None).await.0, 401);
    // Two tokens, and the start-time check of the client credentials.
    assert_eq!(idp.introspection_calls(), 3);
    side.terminate();
}
