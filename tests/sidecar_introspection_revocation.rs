//! `tokenwarden serve` with `[revocation]` and `[introspection]`: the
//! introspection member reads the denylist too, so a subject revoked on
//! `/admin/revoke` has its opaque tokens refused at once, kept verdicts
//! included (the test issuer's real loopback `/introspect`).
#![cfg(all(feature = "cli", feature = "testing"))]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod common;

use common::sidecar::*;
use serde_json::json;
use tokenwarden::testing::TestIssuer;

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_subject_has_its_kept_opaque_token_refused_at_once() {
    let idp = TestIssuer::start().unwrap();
    idp.introspection_client_secret(INTROSPECTION_CLIENT, INTROSPECTION_SECRET);
    let dir = Scratch::new("sidecar-introspection-revocation");
    let secret = dir.write("secret", &format!("{INTROSPECTION_SECRET}\n"));
    let text = format!(
        "{}{}{}",
        config(idp.issuer(), RULES),
        introspection_section(&idp, &secret, ""),
        revocation_section(&dir, "")
    );
    let cfg = dir.write("tw.toml", &text);
    let side = start_sidecar(&cfg, &[]).await;
    let base = format!("http://{}", side.addr);
    wait_status(&format!("{base}/readyz"), 200).await;

    let t = now();
    let opaque = |sub: &str, iat: i64| {
        idp.opaque_token()
            .subject(sub)
            .audience("api")
            .claim("iat", iat)
            .issue()
    };
    let (alice, bob) = (opaque("alice", t - 20), opaque("bob", t - 20));
    let status = |token: String| {
        let base = base.clone();
        async move {
            get(&format!("{base}/auth"), Some(&token), "/orders/1")
                .await
                .status()
                .as_u16()
        }
    };
    assert_eq!(status(alice.clone()).await, 200);
    assert_eq!(status(bob.clone()).await, 200);
    let calls = idp.introspection_calls();

    let revoke = json!({"sub": "alice", "before": t - 10});
    assert_eq!(admin_revoke(&side, Some(ADMIN_SECRET), revoke).await.0, 200);
    assert_eq!(
        status(alice.clone()).await,
        401,
        "revoked, from the kept verdict"
    );
    assert_eq!(idp.introspection_calls(), calls, "no call was needed");
    assert_eq!(status(bob).await, 200, "another subject passes");
    // Issued after the cutoff (a new login): passes.
    assert_eq!(status(opaque("alice", t)).await, 200);
}
