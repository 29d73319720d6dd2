//! `tokenwarden serve` as a process: decisions, readiness, metrics,
//! configuration errors and shutdown, against a real loopback IdP.
#![cfg(all(feature = "cli", feature = "testing"))]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod common;

use std::process::Command;

use common::sidecar::*;
use tokenwarden::testing::TestIssuer;

const RULES: &str = r#"
[[rule]]
path = "/admin/*"
scopes = ["admin"]

[[rule]]
path = "/public/*"
anonymous = true
"#;

async fn get(url: &str, token: Option<&str>, original: &str) -> reqwest::Response {
    let mut req = reqwest::Client::new()
        .get(url)
        .header("x-original-uri", original)
        .header("x-original-method", "GET");
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    req.send().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn decisions_identity_headers_readiness_metrics_and_sigterm() {
    let idp = TestIssuer::start().unwrap();
    // Down at start: the sidecar is live but not ready.
    idp.set_available(false);
    let dir = Scratch::new("sidecar");
    let cfg = dir.write(
        "tw.toml",
        &format!(
            "{}\n[headers]\nclaims = {{ tenant = \"X-Auth-Tenant\" }}\n",
            config(idp.issuer(), RULES)
        ),
    );
    let side = start_sidecar(&cfg, &["--json-logs"]).await;
    let base = format!("http://{}", side.addr);
    let ready = reqwest::get(format!("{base}/readyz")).await.unwrap();
    assert_eq!(ready.status(), 503, "not ready before keys load");
    let good = idp
        .token()
        .audience("api")
        .subject("alice")
        .scope("orders:read")
        .claim("tenant", serde_json::json!("acme"))
        .sign();
    let r = get(&format!("{base}/auth"), Some(&good), "/orders").await;
    assert_eq!(r.status(), 503, "no keys: 503, never a pass");

    idp.set_available(true);
    wait_status(&format!("{base}/readyz"), 200).await;
    let r = get(&format!("{base}/auth"), Some(&good), "/orders/7?x=1").await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-auth-subject"], "alice");
    assert_eq!(r.headers()["x-auth-issuer"], idp.issuer());
    assert_eq!(r.headers()["x-auth-scopes"], "orders:read");
    assert_eq!(r.headers()["x-auth-tenant"], "acme");

    let r = get(&format!("{base}/auth"), None, "/orders").await;
    assert_eq!(r.status(), 401);
    assert_eq!(r.headers()["www-authenticate"], "Bearer realm=\"shop\"");

    let expired = idp.token().audience("api").expired().sign();
    let r = get(&format!("{base}/auth"), Some(&expired), "/orders").await;
    assert_eq!(r.status(), 401);
    let challenge = r.headers()["www-authenticate"].to_str().unwrap();
    assert!(challenge.contains("error=\"invalid_token\"") && challenge.contains("expired"));

    let r = get(&format!("{base}/auth"), Some(&good), "/admin/users").await;
    assert_eq!(r.status(), 403);
    assert!(
        r.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .contains("scope=\"admin\"")
    );

    let r = get(&format!("{base}/auth"), None, "/public/logo.png").await;
    assert_eq!(r.status(), 200, "anonymous rule");

    // Envoy ext_authz style: the original path appended to /auth.
    let r = reqwest::Client::new()
        .get(format!("{base}/auth/admin/users"))
        .bearer_auth(&good)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);

    let metrics = reqwest::get(format!("{base}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let count = |result: &str| {
        sample(
            &metrics,
            &format!("tokenwarden_validations_total{{result=\"{result}\"}}"),
        )
        .unwrap_or(0.0)
    };
    assert_eq!(count("ok"), 1.0, "{metrics}");
    assert_eq!(count("missing_token"), 1.0);
    assert_eq!(count("expired"), 1.0);
    assert_eq!(count("insufficient_scope"), 2.0);
    assert_eq!(count("anonymous"), 1.0);
    assert_eq!(count("keys_unavailable"), 1.0);
    let iss = idp.issuer();
    assert_eq!(
        sample(&metrics, &format!("tokenwarden_keys{{issuer=\"{iss}\"}}")),
        Some(1.0)
    );
    assert!(
        sample(
            &metrics,
            &format!("tokenwarden_key_fetches_total{{issuer=\"{iss}\"}}")
        )
        .unwrap()
            >= 1.0
    );
    assert!(
        sample(
            &metrics,
            &format!("tokenwarden_key_fetch_failures_total{{issuer=\"{iss}\"}}")
        )
        .unwrap()
            >= 1.0,
        "the outage at start was counted"
    );
    assert_eq!(
        sample(&metrics, "tokenwarden_validation_duration_seconds_count"),
        Some(7.0)
    );

    // Counters move with requests.
    let r = get(&format!("{base}/auth"), Some(&good), "/orders").await;
    assert_eq!(r.status(), 200);
    let again = reqwest::get(format!("{base}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(
        sample(&again, "tokenwarden_validations_total{result=\"ok\"}"),
        Some(2.0)
    );

    let (code, logs) = side.terminate();
    assert_eq!(code, Some(0), "SIGTERM ends it cleanly: {logs}");
    // Audit events are JSON lines naming the decision, never the token.
    let audit: Vec<serde_json::Value> = logs
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .filter(|v: &serde_json::Value| v["target"] == "tokenwarden::audit")
        .collect();
    assert_eq!(audit.len(), 8, "{logs}");
    let allow = audit
        .iter()
        .find(|v| v["decision"] == "allow" && v["result"] == "ok")
        .unwrap();
    assert_eq!(allow["sub"], "alice");
    assert_eq!(allow["kid"], idp.current_kid());
    assert_eq!(allow["path"], "/orders/7", "the query is not logged");
    assert!(!logs.contains(&good) && !logs.contains(good.rsplit('.').next().unwrap()));
    assert!(!logs.contains(&expired));
}

fn serve_with(config_text: &str) -> (Option<i32>, String) {
    let dir = Scratch::new("badcfg");
    let cfg = dir.write("bad.toml", config_text);
    serve_flags(&["--config".as_ref(), cfg.as_os_str()])
}

/// `serve --check` with these arguments: the exit code and stderr.
fn serve_flags<S: AsRef<std::ffi::OsStr>>(args: &[S]) -> (Option<i32>, String) {
    let out = Command::new(binary())
        .args(["serve", "--check"])
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn flag_values_are_values_never_configuration() {
    // Quotes, backslashes, newlines and brackets are kept as written.
    let (code, err) = serve_flags(&[
        "--issuer",
        "https://idp.example.com/\"realm\\x",
        "--audience",
        "api\"]\n[[rule]]\npath = \"/x\"",
    ]);
    assert_eq!(code, Some(0), "{err}");
    // An audience that tries to switch on plain http does not: the issuer's
    // http URL is still refused.
    let (code, err) = serve_flags(&[
        "--issuer",
        "http://idp.example.com",
        "--audience",
        "api\"]\nallow_http = true\naudiences2 = [\"",
    ]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("must use https"), "{err}");
    let (code, err) = serve_flags(&["--issuer", "http://idp.example.com", "--audience", "api"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("flags:") && err.contains("must use https"),
        "{err}"
    );
}

#[test]
fn bad_configuration_files_exit_2_with_line_and_field() {
    let good = "audiences = [\"api\"]\n[[issuer]]\nissuer = \"https://idp.example.com\"\n";
    let (code, err) = serve_with(good);
    assert_eq!(code, Some(0), "{err}");

    let cases = [
        (
            "unknown field",
            "audiences = [\"api\"]\nlisten_port = 80\n[[issuer]]\nissuer = \"https://i.example\"\n",
            &[":2:", "unknown field `listen_port`"][..],
        ),
        (
            "bad URL",
            "audiences = [\"api\"]\n[[issuer]]\nissuer = \"https://i.example\"\njwks_url = \"not a url\"\n",
            &[":4:", "issuer[0].jwks_url", "is not a URL"][..],
        ),
        (
            "plain http",
            "audiences = [\"api\"]\n[[issuer]]\nissuer = \"http://i.example\"\n",
            &[":3:", "issuer[0].issuer", "must use https"][..],
        ),
        (
            "missing issuer",
            "audiences = [\"api\"]\n",
            &["issuer: missing"][..],
        ),
        (
            "bad rule",
            "audiences = [\"api\"]\n[[issuer]]\nissuer = \"https://i.example\"\n[[rule]]\npath = \"admin/*\"\n",
            &[":5:", "rule[0].path", "must start with '/'"][..],
        ),
        (
            "bad rule method",
            "audiences = [\"api\"]\n[[issuer]]\nissuer = \"https://i.example\"\n[[rule]]\npath = \"/a\"\nmethods = [\"YEET\"]\n",
            &[":6:", "rule[0].methods", "unknown HTTP method"][..],
        ),
        ("not TOML", "audiences = [\"api\"\n", &["bad.toml:"][..]),
    ];
    for (what, text, needles) in cases {
        let (code, err) = serve_with(text);
        assert_eq!(code, Some(2), "{what}: {err}");
        for n in needles {
            assert!(err.contains(n), "{what}: {n:?} not in {err:?}");
        }
        assert!(!err.contains("panicked"), "{what}: {err}");
    }
}

/// SIGTERM closes the listener at once and lets a request in flight finish:
/// here one waiting on the IdP for a key it has not seen yet.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_refuses_new_connections_and_finishes_requests_in_flight() {
    use common::idp::{Idp, Mode};
    use tokenwarden::Algorithm;
    use tokenwarden::testing::TestKey;

    let old = TestKey::generate(Algorithm::ES256, "old").unwrap();
    let new = TestKey::generate(Algorithm::ES256, "new").unwrap();
    let idp = Idp::start(&[&old]).await;
    let dir = Scratch::new("drain");
    let cfg = dir.write(
        "tw.toml",
        &format!(
            "audiences = [\"api\"]\nallow_http = true\n\n[[issuer]]\nissuer = \"{}\"\njwks_url = \"{}\"\n",
            idp.issuer(),
            idp.jwks_url()
        ),
    );
    let mut side = start_sidecar(&cfg, &[]).await;
    let mut logs = side.stderr_lines();
    let base = format!("http://{}", side.addr);
    wait_status(&format!("{base}/readyz"), 200).await;

    // The IdP now has the new key, but holds its answer.
    idp.set_keys(&[&old, &new]);
    idp.set_mode(Mode::Held);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let token = new.token(&serde_json::json!({
        "iss": idp.issuer(), "aud": "api", "sub": "bob", "exp": now + 3600,
    }));
    let url = format!("{base}/auth");
    let in_flight = tokio::spawn(async move {
        reqwest::Client::new()
            .get(url)
            .bearer_auth(token)
            .header("x-original-uri", "/orders")
            .send()
            .await
    });
    // In flight: the sidecar took the request and asked the IdP for the kid.
    assert!(
        logs.wait_for("unknown kid; refreshing keys").await,
        "{:#?}",
        logs.seen
    );
    tokio::time::timeout(std::time::Duration::from_secs(20), idp.held())
        .await
        .expect("the IdP holds the sidecar's fetch");

    side.send_term();
    assert!(logs.wait_for("shutting down").await, "{:#?}", logs.seen);
    assert!(
        tokio::net::TcpStream::connect(side.addr).await.is_err(),
        "no new connection once shutting down"
    );

    // The request in flight still gets its answer, with the new key.
    idp.release();
    let r = tokio::time::timeout(std::time::Duration::from_secs(20), in_flight)
        .await
        .expect("the request in flight was answered")
        .unwrap();
    let code = side.wait_exit(std::time::Duration::from_secs(15));
    let seen = logs.drain();
    let r = match r {
        Ok(r) => r,
        Err(e) => panic!("{e:?}: {seen:#?}"),
    };
    assert_eq!(r.status(), 200, "{seen:#?}");
    assert_eq!(code, Some(0), "{seen:#?}");
}
