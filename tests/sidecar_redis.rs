//! Two `tokenwarden serve` processes sharing one real `redis-server`
//! (started here, on 127.0.0.1) through `[redis]`: a revocation posted to
//! one is refused by the other within a bounded time, and `/readyz` says
//! ready only once the shared list is loaded.
#![cfg(all(feature = "cli", feature = "testing"))]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod common;

use std::time::{Duration, Instant};

use common::redis::RedisServer;
use common::sidecar::*;
use serde_json::json;
use tokenwarden::testing::{LogoutTarget, TestIssuer};

/// How long a revocation may take to reach the other instance.
const BOUND: Duration = Duration::from_secs(10);

async fn auth(sidecar: &Running, token: &str) -> u16 {
    auth_answer(sidecar, token).await.0
}

async fn readyz(sidecar: &Running) -> (u16, String) {
    let r = reqwest::get(format!("http://{}/readyz", sidecar.addr))
        .await
        .unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

/// Polls `/auth` until it answers `status`, at most [`BOUND`]; how long it took.
async fn until_auth(sidecar: &Running, token: &str, status: u16) -> Duration {
    let start = Instant::now();
    loop {
        if auth(sidecar, token).await == status {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < BOUND,
            "{} did not answer {status} within {BOUND:?}",
            sidecar.addr
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn config_text(idp: &TestIssuer, scratch: &Scratch, redis_url: &str) -> std::path::PathBuf {
    let text = format!(
        "{}{}\n[redis]\nurl = \"{redis_url}\"\nkey_prefix = \"sidecar-test\"\ncommand_timeout_ms = 200\n",
        config(idp.issuer(), ""),
        revocation_section(
            scratch,
            &format!("logout_client_id = \"{LOGOUT_CLIENT}\"\n")
        ),
    );
    scratch.write("tw.toml", &text)
}

async fn revoke(sidecar: &Running, body: serde_json::Value) {
    assert_eq!(admin_revoke(sidecar, Some(ADMIN_SECRET), body).await.0, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revocation_posted_to_one_sidecar_is_refused_by_another() {
    let Some(server) = RedisServer::start("sidecar_redis::two_sidecars") else {
        return;
    };
    let idp = TestIssuer::start().unwrap();
    let scratch = Scratch::new("sidecar-redis");
    let file = config_text(&idp, &scratch, &server.url());
    let a = start_sidecar(&file, &[]).await;
    let b = start_sidecar(&file, &[]).await;
    wait_status(&format!("http://{}/readyz", a.addr), 200).await;
    wait_status(&format!("http://{}/readyz", b.addr), 200).await;

    // Admin endpoint on a: refused on b (from its verified-token cache too).
    let alice = session_token(&idp, "alice", "s-1");
    assert_eq!(auth(&a, &alice).await, 200);
    assert_eq!(auth(&b, &alice).await, 200);
    assert_eq!(auth(&b, &alice).await, 200, "now cached on b");
    revoke(&a, json!({"jti": "alice-s-1"})).await;
    assert_eq!(auth(&a, &alice).await, 401, "at once where it was posted");
    let took = until_auth(&b, &alice, 401).await;
    eprintln!("admin revocation reached the other sidecar in {took:?}");

    // Back-channel logout posted to b: the session's tokens refused on a.
    let bob = session_token(&idp, "bob", "s-2");
    let bob_other = session_token(&idp, "bob", "s-3");
    assert_eq!(auth(&a, &bob).await, 200);
    let url_b = format!("http://{}/backchannel-logout", b.addr);
    let sent = idp
        .backchannel_logout(&url_b, LOGOUT_CLIENT, LogoutTarget::Session("s-2"))
        .await
        .unwrap();
    assert_eq!(sent.status, 200, "{}", sent.body);
    assert_eq!(auth(&b, &bob).await, 401);
    until_auth(&a, &bob, 401).await;
    assert_eq!(auth(&a, &bob_other).await, 200, "another session stays");

    // The same logout token replayed to a: refused there too, once its
    // jti has arrived (already, since the session cutoff did, and the jti
    // was written first).
    let url_a = format!("http://{}/backchannel-logout", a.addr);
    let again = TestIssuer::post_logout_token(&url_a, &sent.logout_token)
        .await
        .unwrap();
    assert_eq!(again.status, 400);
    assert!(again.body.contains("replayed"), "{}", again.body);

    // What Redis holds are identifiers, never a token.
    for k in server.keys() {
        assert!(k.starts_with("sidecar-test:"), "{k}");
        assert!(!k.contains(&alice) && !k.contains(&bob), "{k}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_waits_until_the_shared_list_is_loaded() {
    let Some(mut server) = RedisServer::start("sidecar_redis::readiness") else {
        return;
    };
    let idp = TestIssuer::start().unwrap();
    let scratch = Scratch::new("sidecar-redis-ready");
    let file = config_text(&idp, &scratch, &server.url());
    // Redis down at start: the sidecar starts, answers, and is not ready.
    server.stop();
    let b = start_sidecar(&file, &[]).await;
    let carol = session_token(&idp, "carol", "s-1");
    // Keys are there (the issuer answers); only the shared list is missing.
    until_auth(&b, &carol, 200).await;
    let (status, body) = readyz(&b).await;
    assert_eq!(status, 503, "ready without the shared list: {body}");
    assert!(body.contains("redis"), "{body}");

    // Redis back, with a revocation another instance wrote meanwhile.
    server.start_again();
    let a = start_sidecar(&file, &[]).await;
    wait_status(&format!("http://{}/readyz", a.addr), 200).await;
    revoke(&a, json!({"jti": "carol-s-1"})).await;
    assert_eq!(auth(&a, &carol).await, 401);
    // b may not have reached Redis yet: the moment it says ready, it
    // refuses the token (loaded before ready, or received since).
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (status, _) = readyz(&b).await;
        if status == 200 {
            break;
        }
        assert!(Instant::now() < deadline, "b never became ready");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(auth(&b, &carol).await, 401, "ready, yet not loaded");
}

/// `readiness = "connected"`: ready only while the link to Redis is up;
/// the mirror keeps answering `/auth` meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_connected_follows_the_redis_link() {
    let Some(mut server) = RedisServer::start("sidecar_redis::readiness_connected") else {
        return;
    };
    let idp = TestIssuer::start().unwrap();
    let scratch = Scratch::new("sidecar-redis-connected");
    let file = config_text(&idp, &scratch, &server.url());
    let text = std::fs::read_to_string(&file).unwrap() + "readiness = \"connected\"\n";
    let file = scratch.write("tw.toml", &text);
    let s = start_sidecar(&file, &[]).await;
    let ready = format!("http://{}/readyz", s.addr);
    wait_status(&ready, 200).await;
    let dave = session_token(&idp, "dave", "s-1");
    assert_eq!(auth(&s, &dave).await, 200);
    server.stop();
    wait_status(&ready, 503).await;
    assert_eq!(auth(&s, &dave).await, 200, "the mirror keeps serving");
    server.start_again();
    wait_status(&ready, 200).await;
}

/// Polls the series on `/metrics` until it reads `want`, at most [`BOUND`].
async fn until_metric(sidecar: &Running, series: &str, want: f64) {
    let base = format!("http://{}", sidecar.addr);
    let start = Instant::now();
    loop {
        let got = metric(&base, series).await;
        if got == want {
            return;
        }
        assert!(
            start.elapsed() < BOUND,
            "{series} read {got}, not {want}, for {BOUND:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// `/metrics` shows the Redis link: up or down, the writes waiting, the
/// mirror's entries, when the list was last loaded, the failed loads.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_show_the_redis_link_queue_mirror_and_last_load() {
    let Some(mut server) = RedisServer::start("sidecar_redis::metrics") else {
        return;
    };
    let idp = TestIssuer::start().unwrap();
    let scratch = Scratch::new("sidecar-redis-metrics");
    let file = config_text(&idp, &scratch, &server.url());
    let s = start_sidecar(&file, &[]).await;
    wait_status(&format!("http://{}/readyz", s.addr), 200).await;
    let base = format!("http://{}", s.addr);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();

    until_metric(&s, "tokenwarden_redis_link_up", 1.0).await;
    assert_eq!(
        metric(&base, "tokenwarden_redis_denylist_entries").await,
        0.0
    );
    let loaded = metric(&base, "tokenwarden_redis_denylist_loaded_timestamp_seconds").await;
    assert!((loaded - now).abs() < 60.0, "loaded at {loaded}, now {now}");
    let text = reqwest::get(format!("{base}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(
        sample(&text, "tokenwarden_redis_denylist_load_failures_total"),
        Some(0.0),
        "{text}"
    );

    revoke(&s, json!({"jti": "erin-s-1"})).await;
    revoke(&s, json!({"sub": "frank"})).await;
    assert_eq!(
        metric(&base, "tokenwarden_redis_denylist_entries").await,
        2.0
    );
    until_metric(&s, "tokenwarden_redis_pending_writes", 0.0).await;

    // Redis killed: the link reads 0; a revocation made now waits.
    server.stop();
    until_metric(&s, "tokenwarden_redis_link_up", 0.0).await;
    revoke(&s, json!({"sid": "s-9"})).await;
    assert_eq!(
        metric(&base, "tokenwarden_redis_denylist_entries").await,
        3.0
    );
    until_metric(&s, "tokenwarden_redis_pending_writes", 1.0).await;

    // Back: up again, the waiting write delivered.
    server.start_again();
    until_metric(&s, "tokenwarden_redis_link_up", 1.0).await;
    until_metric(&s, "tokenwarden_redis_pending_writes", 0.0).await;
    assert_eq!(
        metric(&base, "tokenwarden_redis_denylist_entries").await,
        3.0
    );
}

#[test]
fn a_redis_section_is_checked() {
    let scratch = Scratch::new("sidecar-redis-config");
    let revocation = revocation_section(&scratch, "");
    for (sections, needle) in [
        (
            "[redis]\nurl = \"redis://127.0.0.1:1\"\n".to_owned(),
            "redis: nothing to share",
        ),
        (
            format!("{revocation}[redis]\nurl = \"http://user:hunter2@127.0.0.1\"\n"),
            "redis.url: must be redis://",
        ),
        (
            format!(
                "{revocation}[redis]\nurl = \"redis://127.0.0.1\"\ncommand_timeout_ms = 600000\n"
            ),
            "redis.command_timeout_ms: must be 10 to 5000",
        ),
        (
            format!("{revocation}[redis]\nurl = \"redis://127.0.0.1\"\nkey_prefix = \"a b\"\n"),
            "redis.key_prefix",
        ),
        (
            format!("{revocation}[redis]\nurl = \"redis://127.0.0.1\"\nreadiness = \"never\"\n"),
            "redis.readiness",
        ),
        (
            format!("{revocation}[redis]\nurl = \"redis://127.0.0.1\"\nttl = 5\n"),
            "unknown field",
        ),
    ] {
        let text = format!("{}\n{sections}", config("https://idp.test", ""));
        let file = scratch.write("tw.toml", &text);
        let out = std::process::Command::new(binary())
            .args(["serve", "--check", "--config"])
            .arg(&file)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{sections}: {err}");
        assert!(err.contains(needle), "{sections}: {err}");
        assert!(!err.contains("hunter2"), "a password echoed: {err}");
    }
    let ok = format!(
        "{}\n{revocation}[redis]\nurl = \"redis://127.0.0.1:6379/2\"\nkey_prefix = \"prod\"\ncommand_timeout_ms = 5000\nreadiness = \"connected\"\n",
        config("https://idp.test", "")
    );
    let file = scratch.write("tw.toml", &ok);
    let out = std::process::Command::new(binary())
        .args(["serve", "--check", "--config"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
