//! `tokenwarden serve` with `[revocation]`: back-channel logout from the
//! test issuer and the authenticated admin endpoint, against the real
//! binary on loopback ports.
#![cfg(all(feature = "cli", feature = "testing"))]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod common;

use common::sidecar::*;
use serde_json::json;
use tokenwarden::testing::{LogoutTarget, TestIssuer};

async fn start(idp: &TestIssuer, scratch: &Scratch, revocation: &str) -> Running {
    let text = format!(
        "{}{}",
        config(idp.issuer(), ""),
        revocation_section(scratch, revocation)
    );
    let file = scratch.write("tw.toml", &text);
    let sidecar = start_sidecar(&file, &[]).await;
    wait_status(&format!("http://{}/readyz", sidecar.addr), 200).await;
    sidecar
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backchannel_logout_refuses_the_sessions_tokens_and_a_replay() {
    let idp = TestIssuer::start().unwrap();
    let scratch = Scratch::new("revocation-logout");
    let sidecar = start(
        &idp,
        &scratch,
        &format!("logout_client_id = \"{LOGOUT_CLIENT}\"\n"),
    )
    .await;
    let session = session_token(&idp, "alice", "s-1");
    let other = session_token(&idp, "alice", "s-2");
    assert_eq!(auth_answer(&sidecar, &session).await.0, 200);
    assert_eq!(auth_answer(&sidecar, &session).await.0, 200, "now cached");

    let url = format!("http://{}/backchannel-logout", sidecar.addr);
    let sent = idp
        .backchannel_logout(&url, LOGOUT_CLIENT, LogoutTarget::Session("s-1"))
        .await
        .unwrap();
    assert_eq!(sent.status, 200, "{}", sent.body);
    let (status, challenge) = auth_answer(&sidecar, &session).await;
    assert_eq!(status, 401);
    assert!(
        challenge.contains("error=\"invalid_token\"") && challenge.contains("revoked"),
        "{challenge}"
    );
    assert_eq!(auth_answer(&sidecar, &other).await.0, 200);

    let again = TestIssuer::post_logout_token(&url, &sent.logout_token)
        .await
        .unwrap();
    assert_eq!(again.status, 400);
    assert!(again.body.contains("replayed"), "{}", again.body);
    // A logout token for another client is refused, and revokes nothing.
    let foreign = idp
        .backchannel_logout(&url, "another-client", LogoutTarget::Session("s-2"))
        .await
        .unwrap();
    assert_eq!(foreign.status, 400);
    assert!(
        foreign.body.contains("invalid_audience"),
        "{}",
        foreign.body
    );
    assert_eq!(auth_answer(&sidecar, &other).await.0, 200);
}

/// `logout_revokes_subject = true`: a logout naming the session and the
/// subject also refuses the subject's earlier tokens that carry no `sid`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logout_revokes_subject_refuses_the_subjects_tokens_without_sid() {
    let idp = TestIssuer::start().unwrap();
    let scratch = Scratch::new("revocation-logout-subject");
    let sidecar = start(
        &idp,
        &scratch,
        &format!("logout_client_id = \"{LOGOUT_CLIENT}\"\nlogout_revokes_subject = true\n"),
    )
    .await;
    let no_sid = idp.token().audience("api").subject("dave").sign();
    let someone_else = idp.token().audience("api").subject("erin").sign();
    assert_eq!(auth_answer(&sidecar, &no_sid).await.0, 200);
    let url = format!("http://{}/backchannel-logout", sidecar.addr);
    let target = LogoutTarget::SubjectSession {
        sub: "dave",
        sid: "s-1",
    };
    let sent = idp
        .backchannel_logout(&url, LOGOUT_CLIENT, target)
        .await
        .unwrap();
    assert_eq!(sent.status, 200, "{}", sent.body);
    assert_eq!(auth_answer(&sidecar, &no_sid).await.0, 401);
    assert_eq!(auth_answer(&sidecar, &someone_else).await.0, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_endpoint_needs_the_secret_and_revokes_at_once() {
    let idp = TestIssuer::start().unwrap();
    let scratch = Scratch::new("revocation-admin");
    let sidecar = start(&idp, &scratch, "").await;
    let t = session_token(&idp, "alice", "s-1");
    assert_eq!(auth_answer(&sidecar, &t).await.0, 200);
    let revoke = json!({"jti": "alice-s-1"});
    // No credential, a wrong secret, the secret cut short, an access token:
    // refused, and nothing revoked.
    for bearer in [
        None,
        Some("wrong"),
        Some(&ADMIN_SECRET[..ADMIN_SECRET.len() - 1]),
        Some(t.as_str()),
    ] {
        let (status, _) = admin_revoke(&sidecar, bearer, revoke.clone()).await;
        assert_eq!(status, 401, "{bearer:?}");
        assert_eq!(auth_answer(&sidecar, &t).await.0, 200);
    }
    // Bad bodies.
    for body in [
        json!({}),
        json!({"jti": "a", "sub": "b"}),
        json!({"sub": "b", "expires_at": 5}),
        json!({"jti": ""}),
        json!({"jti": "a", "extra": 1}),
    ] {
        assert_eq!(
            admin_revoke(&sidecar, Some(ADMIN_SECRET), body).await.0,
            400
        );
    }
    let (status, body) = admin_revoke(&sidecar, Some(ADMIN_SECRET), revoke).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(auth_answer(&sidecar, &t).await.0, 401);
    // A subject cut off now: its earlier tokens refused.
    let bob = session_token(&idp, "bob", "s-9");
    assert_eq!(auth_answer(&sidecar, &bob).await.0, 200);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let (status, _) = admin_revoke(
        &sidecar,
        Some(ADMIN_SECRET),
        json!({"sub": "bob", "before": now + 1}),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(auth_answer(&sidecar, &bob).await.0, 401);
    // Only POST.
    let r = reqwest::get(format!("http://{}/admin/revoke", sidecar.addr))
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 405);
    // No logout receiver configured: 404.
    let r = reqwest::Client::new()
        .post(format!("http://{}/backchannel-logout", sidecar.addr))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_jwt_needs_the_admin_scope() {
    let idp = TestIssuer::start().unwrap();
    let scratch = Scratch::new("revocation-admin-jwt");
    let sidecar = start(&idp, &scratch, "admin_scope = \"tokenwarden:revoke\"\n").await;
    let victim = session_token(&idp, "carol", "s-1");
    let plain = idp
        .token()
        .audience("api")
        .subject("ops")
        .scope("orders:read")
        .sign();
    let (status, _) = admin_revoke(&sidecar, Some(&plain), json!({"sid": "s-1"})).await;
    assert_eq!(status, 403);
    assert_eq!(auth_answer(&sidecar, &victim).await.0, 200);
    let admin_token = idp
        .token()
        .audience("api")
        .subject("ops")
        .scope("tokenwarden:revoke")
        .sign();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let (status, body) = admin_revoke(
        &sidecar,
        Some(&admin_token),
        json!({"sid": "s-1", "before": now + 1}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(auth_answer(&sidecar, &victim).await.0, 401);
}

#[test]
fn a_revocation_section_that_nothing_feeds_is_refused() {
    let scratch = Scratch::new("revocation-config");
    for (section, needle) in [
        ("", "nothing feeds the denylist"),
        (
            "admin_secret_file = \"/nonexistent/secret\"\n",
            "revocation.admin_secret_file: cannot read",
        ),
        (
            "logout_issuer = \"https://idp.test\"\n",
            "revocation.logout_issuer: needs logout_client_id",
        ),
        (
            "admin_scope = \"x\"\nlogout_revokes_subject = true\n",
            "revocation.logout_revokes_subject: needs logout_client_id",
        ),
    ] {
        let text = format!(
            "{}\n[revocation]\n{section}",
            config("https://idp.test", "")
        );
        let file = scratch.write("tw.toml", &text);
        let out = std::process::Command::new(binary())
            .args(["serve", "--check", "--config"])
            .arg(&file)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{section}: {err}");
        assert!(err.contains(needle), "{section}: {err}");
    }
    // A short secret is refused.
    let short = scratch.write("short", "tooshort\n");
    let text = format!(
        "{}\n[revocation]\nadmin_secret_file = {:?}\n",
        config("https://idp.test", ""),
        short.display().to_string()
    );
    let file = scratch.write("tw.toml", &text);
    let out = std::process::Command::new(binary())
        .args(["serve", "--check", "--config"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("at least 32"));
}
