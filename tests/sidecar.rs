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

    // Behind nginx, the Envoy convention (the path after /auth) is not
    // read: without X-Original-URI the request is refused, and counted.
    let r = reqwest::Client::new()
        .get(format!("{base}/auth/admin/users"))
        .bearer_auth(&good)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);

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
    assert_eq!(count("insufficient_scope"), 1.0);
    assert_eq!(count("bad_request"), 1.0);
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
        "--gateway",
        "nginx",
        "--issuer",
        "https://idp.example.com/\"realm\\x",
        "--audience",
        "api\"]\n[[rule]]\npath = \"/x\"",
    ]);
    assert_eq!(code, Some(0), "{err}");
    // An audience that tries to switch on plain http does not: the issuer's
    // http URL is still refused.
    let (code, err) = serve_flags(&[
        "--gateway",
        "nginx",
        "--issuer",
        "http://idp.example.com",
        "--audience",
        "api\"]\nallow_http = true\naudiences2 = [\"",
    ]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("must use https"), "{err}");
    let (code, err) = serve_flags(&[
        "--gateway",
        "nginx",
        "--issuer",
        "http://idp.example.com",
        "--audience",
        "api",
    ]);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("flags:") && err.contains("must use https"),
        "{err}"
    );
}

#[test]
fn bad_configuration_files_exit_2_with_line_and_field() {
    let good = "audiences = [\"api\"]\ngateway = \"nginx\"\n[[issuer]]\nissuer = \"https://idp.example.com\"\n";
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
            "u64::MAX seconds",
            "audiences = [\"api\"]\ngateway = \"nginx\"\n[[issuer]]\nissuer = \"https://i.example\"\nmax_staleness_seconds = 18446744073709551615\n",
            &[":5:", "issuer[0].max_staleness_seconds", "must be 1 to"][..],
        ),
        (
            "refresh bounds out of order",
            "audiences = [\"api\"]\ngateway = \"nginx\"\n[[issuer]]\nissuer = \"https://i.example\"\nrefresh_min_seconds = 600\nrefresh_max_seconds = 60\n",
            &[":5:", "issuer[0].refresh_min_seconds", "greater than"][..],
        ),
        (
            "key-set setting on a jwks_file",
            "audiences = [\"api\"]\ngateway = \"nginx\"\n[[issuer]]\nissuer = \"https://i.example\"\njwks_file = \"/etc/jwks.json\"\nunknown_kid_cooldown_seconds = 5\n",
            &[
                ":6:",
                "issuer[0].unknown_kid_cooldown_seconds",
                "never refreshed",
            ][..],
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
            "audiences = [\"api\"]\ngateway = \"nginx\"\n[[issuer]]\nissuer = \"https://i.example\"\n[[rule]]\npath = \"admin/*\"\n",
            &[":6:", "rule[0].path", "must start with '/'"][..],
        ),
        (
            "bad rule method",
            "audiences = [\"api\"]\ngateway = \"nginx\"\n[[issuer]]\nissuer = \"https://i.example\"\n[[rule]]\npath = \"/a\"\nmethods = [\"YEET\"]\n",
            &[":7:", "rule[0].methods", "unknown HTTP method"][..],
        ),
        (
            "no gateway",
            "audiences = [\"api\"]\n[[issuer]]\nissuer = \"https://i.example\"\n",
            &["gateway: missing", "nginx", "traefik", "envoy"][..],
        ),
        (
            "unknown gateway",
            "audiences = [\"api\"]\ngateway = \"haproxy\"\n[[issuer]]\nissuer = \"https://i.example\"\n",
            &[":2:", "gateway: must be"][..],
        ),
        (
            "rule path not normal",
            "audiences = [\"api\"]\ngateway = \"nginx\"\n[[issuer]]\nissuer = \"https://i.example\"\n[[rule]]\npath = \"/a/../admin/*\"\n",
            &[":6:", "rule[0].path", "not in normal form", "\"/admin/*\""][..],
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
            "audiences = [\"api\"]\nallow_http = true\ngateway = \"nginx\"\n\n[[issuer]]\nissuer = \"{}\"\njwks_url = \"{}\"\n",
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
            .header("x-original-method", "GET")
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

#[test]
fn flags_without_a_gateway_are_refused() {
    let (code, err) = serve_flags(&["--issuer", "https://idp.example.com", "--audience", "api"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("--gateway nginx|traefik|envoy is required"),
        "{err}"
    );
    let (code, err) = serve_flags(&[
        "--gateway",
        "traefik",
        "--issuer",
        "https://idp.example.com",
        "--audience",
        "api",
    ]);
    assert_eq!(code, Some(0), "{err}");
}

#[test]
fn flags_the_config_file_owns_are_refused_with_config() {
    let dir = Scratch::new("cfgflags");
    let cfg = dir.write(
        "tw.toml",
        "audiences = [\"api\"]\ngateway = \"nginx\"\n[[issuer]]\nissuer = \"https://idp.example.com\"\n",
    );
    let (code, err) = serve_flags(&["--config".as_ref(), cfg.as_os_str()]);
    assert_eq!(code, Some(0), "{err}");
    // Each of these would be silently ignored (or silently mixed) with a
    // file: refused instead, like --gateway and --audience.
    for flag in [
        &["--allow-http"][..],
        &["--gateway", "nginx"],
        &["--audience", "other"],
        &["--issuer", "https://other.example.com"],
        &["--jwks", "jwks.json"],
    ] {
        let mut args: Vec<&std::ffi::OsStr> = vec!["--config".as_ref(), cfg.as_os_str()];
        args.extend(flag.iter().map(std::ffi::OsStr::new));
        let (code, err) = serve_flags(&args);
        assert_eq!(code, Some(2), "{flag:?}: {err}");
        assert!(err.contains("cannot be used with"), "{flag:?}: {err}");
    }
    // --listen and --json-logs apply on top of the file.
    let (code, err) = serve_flags(&[
        "--config".as_ref(),
        cfg.as_os_str(),
        "--listen".as_ref(),
        "127.0.0.1:9999".as_ref(),
        "--json-logs".as_ref(),
    ]);
    assert_eq!(code, Some(0), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_to_a_pipe_carry_no_colour_codes() {
    let idp = TestIssuer::start().unwrap();
    let dir = Scratch::new("nocolour");
    let cfg = dir.write("tw.toml", &config(idp.issuer(), RULES));
    // stderr is a pipe here, not a terminal.
    let side = start_sidecar(&cfg, &[]).await;
    let r = get(&format!("http://{}/auth", side.addr), None, "/orders").await;
    assert_eq!(r.status(), 401);
    let (code, logs) = side.terminate();
    assert_eq!(code, Some(0), "{logs}");
    assert!(logs.contains("tokenwarden serve started"), "{logs}");
    assert!(logs.contains("decision"), "{logs}");
    assert!(
        !logs.contains('\u{1b}'),
        "ANSI escape in piped logs: {logs:?}"
    );
}

/// A request to the sidecar's `/auth` with exactly these headers.
async fn ask(
    base: &str,
    path: &str,
    method: reqwest::Method,
    token: Option<&str>,
    headers: &[(&str, &[u8])],
) -> reqwest::Response {
    let mut req = reqwest::Client::new().request(method, format!("{base}{path}"));
    for (name, value) in headers {
        req = req.header(
            *name,
            reqwest::header::HeaderValue::from_bytes(value).unwrap(),
        );
    }
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    req.send().await.unwrap()
}

async fn metric(base: &str, series: &str) -> f64 {
    let text = reqwest::get(format!("{base}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    sample(&text, series).unwrap_or(0.0)
}

const ADMIN_AND_PUBLIC: &str = r#"
[[rule]]
path = "/public/*"
anonymous = true

[[rule]]
path = "/admin/*"
scopes = ["admin"]
"#;

/// Traefik ForwardAuth sends only `X-Forwarded-*` and passes the client's
/// own `X-Original-*` through: those must never be read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traefik_trusts_only_x_forwarded_headers() {
    let idp = TestIssuer::start().unwrap();
    let dir = Scratch::new("traefik");
    let cfg = dir.write(
        "tw.toml",
        &config_behind("traefik", idp.issuer(), ADMIN_AND_PUBLIC),
    );
    let side = start_sidecar(&cfg, &[]).await;
    let base = format!("http://{}", side.addr);
    wait_status(&format!("{base}/readyz"), 200).await;
    let user = idp.token().audience("api").subject("eve").sign();
    use reqwest::Method;

    // The real request: DELETE /admin/x. The client adds X-Original-*
    // claiming /public/: judged by the admin rule all the same.
    let spoof: &[(&str, &[u8])] = &[
        ("x-forwarded-method", b"DELETE"),
        ("x-forwarded-uri", b"/admin/x"),
        ("x-original-uri", b"/public/"),
        ("x-original-method", b"GET"),
    ];
    let r = ask(&base, "/auth", Method::GET, Some(&user), spoof).await;
    assert_eq!(r.status(), 403, "judged as /admin/x");
    let r = ask(&base, "/auth", Method::GET, None, spoof).await;
    assert_eq!(
        r.status(),
        401,
        "judged as /admin/x, not the anonymous rule"
    );

    // No fallback: without the trusted header, the client's copy of
    // another convention is not used.
    let only_spoof: &[(&str, &[u8])] = &[
        ("x-forwarded-method", b"GET"),
        ("x-original-uri", b"/public/"),
    ];
    let r = ask(&base, "/auth", Method::GET, None, only_spoof).await;
    assert_eq!(r.status(), 400, "missing X-Forwarded-Uri");
    // Envoy's convention is not read either.
    let r = ask(
        &base,
        "/auth/public/x",
        Method::GET,
        None,
        &[("x-forwarded-method", b"GET")],
    )
    .await;
    assert_eq!(r.status(), 400);

    // A byte >= 0x80, a control byte, or a repeated header: refused, never
    // read from somewhere else.
    let refused: [&[(&str, &[u8])]; 5] = [
        &[
            ("x-forwarded-method", b"GET"),
            ("x-forwarded-uri", b"/admin/\x80x"),
            ("x-original-uri", b"/public/"),
        ],
        &[
            ("x-forwarded-method", b"GET"),
            ("x-forwarded-uri", b"/admin/\tx"),
        ],
        &[
            ("x-forwarded-method", b"GET"),
            ("x-forwarded-uri", b"/public/"),
            ("x-forwarded-uri", b"/admin/x"),
        ],
        &[
            ("x-forwarded-method", b"GET"),
            ("x-forwarded-method", b"DELETE"),
            ("x-forwarded-uri", b"/public/"),
        ],
        &[
            ("x-forwarded-method", b"G\xc3\x89T"),
            ("x-forwarded-uri", b"/public/"),
        ],
    ];
    for headers in refused {
        let r = ask(&base, "/auth", Method::GET, None, headers).await;
        assert_eq!(r.status(), 400, "{headers:?}");
    }
    assert_eq!(
        metric(
            &base,
            "tokenwarden_validations_total{result=\"bad_request\"}"
        )
        .await,
        7.0
    );

    // The honest anonymous request still passes.
    let ok: &[(&str, &[u8])] = &[
        ("x-forwarded-method", b"GET"),
        ("x-forwarded-uri", b"/public/a?b=1"),
    ];
    let r = ask(&base, "/auth", Method::GET, None, ok).await;
    assert_eq!(r.status(), 200);
}

/// Envoy ext_authz (HTTP): the original path after `/auth`, the method of
/// the check request itself; headers claiming otherwise are ignored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn envoy_reads_the_path_after_auth_and_the_check_requests_method() {
    let idp = TestIssuer::start().unwrap();
    let dir = Scratch::new("envoy");
    let rules = format!(
        "{ADMIN_AND_PUBLIC}\n[[rule]]\npath = \"/orders/*\"\nmethods = [\"DELETE\"]\nscopes = [\"orders:delete\"]\n"
    );
    let cfg = dir.write("tw.toml", &config_behind("envoy", idp.issuer(), &rules));
    let side = start_sidecar(&cfg, &[]).await;
    let base = format!("http://{}", side.addr);
    wait_status(&format!("{base}/readyz"), 200).await;
    let user = idp.token().audience("api").subject("eve").sign();
    use reqwest::Method;
    let spoof: &[(&str, &[u8])] = &[
        ("x-original-uri", b"/public/"),
        ("x-forwarded-uri", b"/public/"),
        ("x-original-method", b"GET"),
        ("x-forwarded-method", b"GET"),
    ];
    let r = ask(&base, "/auth/admin/x?y=1", Method::GET, Some(&user), spoof).await;
    assert_eq!(r.status(), 403);
    let r = ask(&base, "/auth/orders/7", Method::DELETE, Some(&user), spoof).await;
    assert_eq!(
        r.status(),
        403,
        "the DELETE rule, from the request's own method"
    );
    let r = ask(&base, "/auth/orders/7", Method::GET, Some(&user), spoof).await;
    assert_eq!(r.status(), 200);
    let r = ask(&base, "/auth/public/../admin/x", Method::GET, None, &[]).await;
    assert_eq!(r.status(), 401, "normalised to /admin/x");
    let r = ask(&base, "/auth/public/a", Method::GET, None, &[]).await;
    assert_eq!(r.status(), 200);
    let r = ask(&base, "/auth", Method::GET, None, spoof).await;
    assert_eq!(r.status(), 400, "no original path");
}

/// Behind nginx, every spelling of a path is judged by the rule of the
/// path the upstream will serve, or refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn path_tricks_are_judged_by_the_rule_they_reach_or_refused() {
    let idp = TestIssuer::start().unwrap();
    let dir = Scratch::new("paths");
    // A catch-all anonymous rule first in the file: the more specific
    // admin rule still decides for /admin/*.
    let rules = format!("[[rule]]\npath = \"/*\"\nanonymous = true\n{ADMIN_AND_PUBLIC}");
    let cfg = dir.write("tw.toml", &config(idp.issuer(), &rules));
    let folded = dir.write(
        "folded.toml",
        &config(idp.issuer(), &rules).replacen(
            "gateway",
            "case_insensitive_paths = true\ngateway",
            1,
        ),
    );
    let side = start_sidecar(&cfg, &[]).await;
    let side_folded = start_sidecar(&folded, &[]).await;
    let user = idp.token().audience("api").subject("eve").sign();
    for s in [&side, &side_folded] {
        wait_status(&format!("http://{}/readyz", s.addr), 200).await;
    }
    let judge = |addr: std::net::SocketAddr, uri: &'static str| {
        let user = user.clone();
        async move {
            let headers: &[(&str, &[u8])] = &[
                ("x-original-method", b"GET"),
                ("x-original-uri", uri.as_bytes()),
            ];
            let base = format!("http://{addr}");
            ask(&base, "/auth", reqwest::Method::GET, Some(&user), headers)
                .await
                .status()
                .as_u16()
        }
    };
    let cases: &[(&str, u16, u16)] = &[
        // (original URI, case-sensitive, case-insensitive)
        ("/admin/x", 403, 403),
        ("/admin", 403, 403),
        ("/public/../admin/x", 403, 403),
        ("/public/./../admin/x", 403, 403),
        ("/%61dmin/x", 403, 403),
        ("//admin/x", 403, 403),
        ("/public//../admin/x", 403, 403),
        ("/ADMIN/x", 200, 403),
        ("/admin;p=1/x", 400, 400),
        ("/admin%3Bp=1/x", 400, 400),
        ("/public/%2e%2e/admin/x", 400, 400),
        ("/public%2F..%2Fadmin/x", 400, 400),
        ("/public\\..\\admin/x", 400, 400),
        ("/admin%00/x", 400, 400),
        ("/admin%zz", 400, 400),
        ("/public/x", 200, 200),
        ("/other?/admin/x", 200, 200),
    ];
    for &(uri, sensitive, insensitive) in cases {
        assert_eq!(judge(side.addr, uri).await, sensitive, "{uri}");
        assert_eq!(
            judge(side_folded.addr, uri).await,
            insensitive,
            "{uri} (folded)"
        );
    }
}

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

/// Reads until the peer closes (EOF or reset), at most `within`; the time
/// it took, or `None` if the connection was still open at the deadline.
async fn closed_within(
    stream: &mut tokio::net::TcpStream,
    within: std::time::Duration,
) -> Option<std::time::Duration> {
    use tokio::io::AsyncReadExt;
    let started = std::time::Instant::now();
    let deadline = tokio::time::Instant::now() + within;
    let mut buf = [0u8; 1024];
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Err(_) => return None,
            Ok(Ok(0) | Err(_)) => return Some(started.elapsed()),
            Ok(Ok(_)) => {}
        }
    }
}

fn with_server(idp: &TestIssuer, server: &str) -> String {
    format!(
        "{}\n[server]\n{server}\n",
        config(idp.issuer(), ADMIN_AND_PUBLIC)
    )
}

/// A client that sends half a request head and stalls (slowloris), or
/// connects and says nothing, loses the connection at the header timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_stalling_mid_header_is_cut_off_at_the_timeout() {
    use tokio::io::AsyncWriteExt;
    let idp = TestIssuer::start().unwrap();
    let dir = Scratch::new("slowloris");
    let cfg = dir.write(
        "tw.toml",
        &with_server(&idp, "header_read_timeout_ms = 300"),
    );
    let side = start_sidecar(&cfg, &[]).await;

    let mut half = tokio::net::TcpStream::connect(side.addr).await.unwrap();
    half.write_all(b"GET /auth HTTP/1.1\r\nHost: x\r\nX-Original-U")
        .await
        .unwrap();
    let mut silent = tokio::net::TcpStream::connect(side.addr).await.unwrap();
    let limit = std::time::Duration::from_secs(5);
    let took = closed_within(&mut half, limit).await;
    assert!(took.is_some(), "a half-sent head holds the connection open");
    assert!(
        took.unwrap() >= std::time::Duration::from_millis(250),
        "{took:?}"
    );
    assert!(
        closed_within(&mut silent, limit).await.is_some(),
        "a silent client holds it open"
    );
    // The server still serves.
    wait_status(&format!("http://{}/healthz", side.addr), 200).await;
}

/// A client that never reads its answers (its window closed, the server's
/// writes stalled) is cut off once no byte has moved for the idle timeout,
/// and its slot under the connection cap comes back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_stops_reading_is_cut_off_at_the_idle_timeout() {
    use tokio::io::AsyncWriteExt;
    let idp = TestIssuer::start().unwrap();
    let dir = Scratch::new("idle");
    let cfg = dir.write(
        "tw.toml",
        &with_server(
            &idp,
            "header_read_timeout_ms = 60000\nidle_timeout_ms = 300\nmax_connections = 1",
        ),
    );
    let side = start_sidecar(&cfg, &[]).await;
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let mut reader = socket.connect(side.addr).await.unwrap();
    // Pipelined requests whose answers far exceed every buffer between us.
    let one = b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n";
    let many: Vec<u8> = one.iter().copied().cycle().take(one.len() * 3000).collect();
    // The server may stop reading once its writes stall: write what it
    // takes, bounded.
    let _ = tokio::time::timeout(std::time::Duration::from_secs(2), reader.write_all(&many)).await;
    // The only slot is the stalled reader's until the idle timeout frees it.
    let freed = served_connection(side.addr).await;
    drop(freed);
    drop(reader);
}

/// A connection on which one request has been answered (retried until one
/// is, for at most 20 s).
async fn served_connection(addr: std::net::SocketAddr) -> tokio::net::TcpStream {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let mut c = tokio::net::TcpStream::connect(addr).await.unwrap();
        let mut buf = [0u8; 12];
        let answered = async {
            c.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
                .await?;
            c.read_exact(&mut buf).await
        };
        if let Ok(Ok(_)) = tokio::time::timeout(std::time::Duration::from_secs(3), answered).await {
            if &buf == b"HTTP/1.1 200" {
                // The rest of the answer is small and stays in the buffer.
                return c;
            }
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no connection was served"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// Past `max_connections`, new connections are closed at once; those open
/// are served, and a slot freed is used again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_past_the_cap_are_closed_and_slots_come_back() {
    let idp = TestIssuer::start().unwrap();
    let dir = Scratch::new("cap");
    let cfg = dir.write(
        "tw.toml",
        &with_server(&idp, "header_read_timeout_ms = 60000\nmax_connections = 2"),
    );
    let side = start_sidecar(&cfg, &[]).await;
    // Two connections that are served (a connection of start_sidecar's
    // probe may still hold a slot for a moment: retry, bounded).
    let first = served_connection(side.addr).await;
    let _second = served_connection(side.addr).await;
    let mut third = tokio::net::TcpStream::connect(side.addr).await.unwrap();
    assert!(
        closed_within(&mut third, std::time::Duration::from_secs(3))
            .await
            .is_some(),
        "the third connection is closed at once"
    );
    // A slot freed is taken again (bounded poll: the close is seen by the
    // server asynchronously).
    drop(first);
    wait_status(&format!("http://{}/healthz", side.addr), 200).await;
    let refused = {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        loop {
            if let Ok(r) = reqwest::get(format!("http://{}/metrics", side.addr)).await {
                break sample(
                    &r.text().await.unwrap(),
                    "tokenwarden_refused_connections_total",
                );
            }
            assert!(
                std::time::Instant::now() < deadline,
                "metrics never answered"
            );
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    };
    assert!(refused.unwrap_or(0.0) >= 1.0, "{refused:?}");
}

/// `/readyz` is 503 once the keys are older than `max_staleness`, as a
/// validation would find them unusable.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_is_503_once_the_keys_are_past_max_staleness() {
    let idp = TestIssuer::start().unwrap();
    let dir = Scratch::new("stale");
    let cfg = dir.write(
        "tw.toml",
        &config(idp.issuer(), "").replace(
            &format!("issuer = \"{}\"\n", idp.issuer()),
            &format!("issuer = \"{}\"\nmax_staleness_seconds = 1\n", idp.issuer()),
        ),
    );
    let side = start_sidecar(&cfg, &[]).await;
    let base = format!("http://{}", side.addr);
    wait_status(&format!("{base}/readyz"), 200).await;
    idp.set_available(false);
    wait_status(&format!("{base}/readyz"), 503).await;
    let token = idp.token().audience("api").sign();
    let r = get(&format!("{base}/auth"), Some(&token), "/orders").await;
    assert_eq!(r.status(), 503, "the validator agrees: no usable keys");
}

/// `RemoteKeySet::is_usable`: false before any load, true with fresh keys,
/// false past `max_staleness` by the set's own clock.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remote_key_set_is_usable_only_with_loaded_fresh_keys() {
    use tokenwarden::{ManualClock, RemoteKeySet};
    let idp = TestIssuer::start().unwrap();
    let clock = ManualClock::new(1_700_000_000);
    let set = RemoteKeySet::builder()
        .jwks_url(idp.jwks_url())
        .allow_http_loopback(true)
        .max_staleness(std::time::Duration::from_secs(60))
        .clock(clock.clone())
        .build()
        .unwrap();
    // The background refresher may already be fetching; until a set is in,
    // it is not usable.
    if set.current().is_none() {
        assert!(!set.is_usable());
    }
    set.refresh().await.unwrap();
    assert!(set.is_usable());
    clock.advance(60);
    assert!(set.is_usable(), "60 s old: at the limit");
    clock.advance(1);
    assert!(!set.is_usable(), "61 s old: stale");

    let never = RemoteKeySet::builder()
        .jwks_url("http://127.0.0.1:9/never")
        .allow_http_loopback(true)
        .build()
        .unwrap();
    assert!(!never.is_usable());
}

/// Out of file descriptors, `accept` fails until a connection closes: the
/// sidecar backs off (no busy loop), says so once, and serves again when
/// descriptors come back.
#[cfg(target_os = "linux")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accept_failing_with_emfile_backs_off_logs_once_and_recovers() {
    let idp = TestIssuer::start().unwrap();
    let dir = Scratch::new("emfile");
    let cfg = dir.write(
        "tw.toml",
        &with_server(&idp, "header_read_timeout_ms = 60000"),
    );
    let mut side = start_sidecar_with_fd_limit(&cfg, 64).await;
    let mut logs = side.stderr_lines();
    wait_status(&format!("http://{}/readyz", side.addr), 200).await;
    // Hold more connections than the sidecar has descriptors for.
    let mut held = Vec::new();
    for _ in 0..80 {
        held.push(tokio::net::TcpStream::connect(side.addr).await.unwrap());
    }
    assert!(
        logs.wait_for("accept failed; backing off").await,
        "{:#?}",
        logs.seen
    );
    // Accept keeps failing while the connections are held: with the
    // back-off (10 ms doubling to 1 s) that is a handful of attempts in a
    // second, where a busy loop makes thousands.
    let held_since = std::time::Instant::now();
    while held_since.elapsed() < std::time::Duration::from_secs(1) {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    // Descriptors come back: served again.
    drop(held);
    wait_status(&format!("http://{}/healthz", side.addr), 200).await;
    assert!(
        logs.wait_for("accepting connections again").await,
        "{:#?}",
        logs.seen
    );
    let warned = logs
        .drain()
        .iter()
        .filter(|l| l.contains("accept failed"))
        .count();
    assert_eq!(warned, 1, "one warning per episode: {:#?}", logs.seen);
    let text = reqwest::get(format!("http://{}/metrics", side.addr))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let failures = sample(&text, "tokenwarden_accept_errors_total").unwrap_or(0.0);
    assert!(
        (1.0..50.0).contains(&failures),
        "{failures} failed accepts: no back-off"
    );
}

/// Starts a sidecar behind nginx with these rules (and top-level settings
/// before them); its base URL, once ready.
async fn sidecar_with(
    idp: &TestIssuer,
    dir: &Scratch,
    top: &str,
    rules: &str,
) -> (Running, String) {
    let cfg = dir.write(
        "tw.toml",
        &config(idp.issuer(), rules).replacen("gateway", &format!("{top}\ngateway"), 1),
    );
    let side = start_sidecar(&cfg, &[]).await;
    let base = format!("http://{}", side.addr);
    wait_status(&format!("{base}/readyz"), 200).await;
    (side, base)
}

/// `/auth` behind nginx for this original method and URI, with extra headers.
async fn judged(
    base: &str,
    method: &[u8],
    uri: &str,
    token: Option<&str>,
    extra: &[(&str, &[u8])],
) -> u16 {
    let mut headers: Vec<(&str, &[u8])> = vec![
        ("x-original-method", method),
        ("x-original-uri", uri.as_bytes()),
    ];
    headers.extend_from_slice(extra);
    ask(base, "/auth", reqwest::Method::GET, token, &headers)
        .await
        .status()
        .as_u16()
}

/// RFC 9110 §9.1: methods are case-sensitive. `get` is not judged as
/// `GET` (a lenient upstream would run it as one): refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_method_not_in_upper_case_is_refused() {
    let idp = TestIssuer::start().unwrap();
    let dir = Scratch::new("method-case");
    let rules = "[[rule]]\npath = \"/docs/*\"\nmethods = [\"GET\"]\nanonymous = true\n[[rule]]\npath = \"/*\"\nscopes = [\"admin\"]\n";
    let (_side, base) = sidecar_with(&idp, &dir, "", rules).await;
    assert_eq!(judged(&base, b"GET", "/docs/x", None, &[]).await, 200);
    for m in [&b"get"[..], b"Get", b"gET", b"delete"] {
        assert_eq!(judged(&base, m, "/docs/x", None, &[]).await, 400, "{m:?}");
    }
    assert_eq!(
        metric(
            &base,
            "tokenwarden_validations_total{result=\"bad_request\"}"
        )
        .await,
        4.0
    );
}

/// A rule naming GET covers HEAD (frameworks answer HEAD with the GET
/// handler): HEAD does not fall to a weaker rule.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rule_for_get_also_judges_head() {
    let idp = TestIssuer::start().unwrap();
    let dir = Scratch::new("head");
    let rules = "[[rule]]\npath = \"/reports/*\"\nmethods = [\"GET\", \"POST\"]\nscopes = [\"admin\"]\n[[rule]]\npath = \"/*\"\nanonymous = true\n";
    let (_side, base) = sidecar_with(&idp, &dir, "", rules).await;
    let user = idp.token().audience("api").subject("eve").sign();
    assert_eq!(judged(&base, b"HEAD", "/reports/x", None, &[]).await, 401);
    assert_eq!(
        judged(&base, b"HEAD", "/reports/x", Some(&user), &[]).await,
        403
    );
    assert_eq!(
        judged(&base, b"GET", "/reports/x", Some(&user), &[]).await,
        403
    );
    assert_eq!(judged(&base, b"HEAD", "/other", None, &[]).await, 200);
}

/// `X-HTTP-Method-Override` and its kin would let a POST judged as POST
/// run upstream as DELETE: refused with 400, unless the file allows them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn method_override_headers_are_refused_unless_allowed() {
    let idp = TestIssuer::start().unwrap();
    let dir = Scratch::new("override");
    let rules = "[[rule]]\npath = \"/items/*\"\nmethods = [\"POST\"]\nanonymous = true\n[[rule]]\npath = \"/items/*\"\nscopes = [\"admin\"]\n";
    let (_side, base) = sidecar_with(&idp, &dir, "", rules).await;
    assert_eq!(judged(&base, b"POST", "/items/1", None, &[]).await, 200);
    for h in [
        "X-HTTP-Method-Override",
        "x-http-method",
        "X-Method-Override",
    ] {
        let status = judged(&base, b"POST", "/items/1", None, &[(h, b"DELETE")]).await;
        assert_eq!(status, 400, "{h}");
    }
    let allowed = Scratch::new("override-allowed");
    let (_side, base) = sidecar_with(&idp, &allowed, "allow_method_override = true", rules).await;
    let status = judged(
        &base,
        b"POST",
        "/items/1",
        None,
        &[("x-http-method-override", b"DELETE")],
    )
    .await;
    assert_eq!(status, 200);
}

/// An exact rule also judges its path with a trailing slash, and with
/// `unmatched = "deny"` a path no rule matches is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exact_rules_cover_a_trailing_slash_and_unmatched_paths_can_be_denied() {
    let idp = TestIssuer::start().unwrap();
    let dir = Scratch::new("slash");
    let rules = "[[rule]]\npath = \"/admin\"\nscopes = [\"admin\"]\n[[rule]]\npath = \"/*\"\nscopes = [\"read\"]\n";
    let (_side, base) = sidecar_with(&idp, &dir, "", rules).await;
    let reader = idp
        .token()
        .audience("api")
        .subject("eve")
        .claim("scope", serde_json::json!("read"))
        .sign();
    for uri in ["/admin", "/admin/", "/admin/.", "/admin/?x=1"] {
        assert_eq!(
            judged(&base, b"GET", uri, Some(&reader), &[]).await,
            403,
            "{uri}"
        );
    }
    assert_eq!(
        judged(&base, b"GET", "/admin/x", Some(&reader), &[]).await,
        200
    );

    // Deny by default: a valid token is not enough where no rule speaks.
    let denying = Scratch::new("deny");
    let rules = "[[rule]]\npath = \"/api/*\"\nscopes = [\"read\"]\n[[rule]]\npath = \"/public/*\"\nmethods = [\"GET\"]\nanonymous = true\n";
    let (_side, base) = sidecar_with(&idp, &denying, "unmatched = \"deny\"", rules).await;
    assert_eq!(
        judged(&base, b"GET", "/api/x", Some(&reader), &[]).await,
        200
    );
    assert_eq!(judged(&base, b"GET", "/public/x", None, &[]).await, 200);
    assert_eq!(
        judged(&base, b"GET", "/other", Some(&reader), &[]).await,
        403
    );
    assert_eq!(
        judged(&base, b"POST", "/public/x", Some(&reader), &[]).await,
        403
    );
    assert_eq!(
        metric(&base, "tokenwarden_validations_total{result=\"no_rule\"}").await,
        2.0
    );
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

/// `unknown_kid_cooldown_seconds` reaches the key set: a key rotated in
/// just after an unknown-kid refresh validates once the configured 2 s
/// cooldown has passed (the library's default, 30 s, would still refuse).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_configured_unknown_kid_cooldown_is_honoured() {
    use common::idp::Idp;
    use tokenwarden::Algorithm;
    use tokenwarden::testing::TestKey;

    let old = TestKey::generate(Algorithm::ES256, "old").unwrap();
    let new = TestKey::generate(Algorithm::ES256, "new").unwrap();
    let idp = Idp::start(&[&old]).await;
    let dir = Scratch::new("cooldown");
    let cfg = dir.write(
        "tw.toml",
        &format!(
            "audiences = [\"api\"]\nallow_http = true\ngateway = \"nginx\"\n\n[[issuer]]\nissuer = \"{}\"\njwks_url = \"{}\"\nunknown_kid_cooldown_seconds = 2\n",
            idp.issuer(),
            idp.jwks_url()
        ),
    );
    let side = start_sidecar(&cfg, &[]).await;
    let base = format!("http://{}", side.addr);
    wait_status(&format!("{base}/readyz"), 200).await;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let token = new.token(&serde_json::json!({
        "iss": idp.issuer(), "aud": "api", "sub": "bob", "exp": now + 3600,
    }));
    let auth = format!("{base}/auth");
    let hits = idp.jwks_hits();
    // Unknown kid: one refresh, which does not find it yet.
    // The sidecar is another process: its clock cannot be injected, so the
    // "within the cooldown" step is asserted only when it really ran within
    // it (a stalled machine skips that one assertion, never fails on it),
    // and the wait past the cooldown is measured from the first refresh.
    let first = std::time::Instant::now();
    let r = get(&auth, Some(&token), "/orders").await;
    assert_eq!(r.status(), 401);
    assert_eq!(idp.jwks_hits(), hits + 1, "the unknown kid caused a fetch");
    // Rotated in; within the cooldown the sidecar does not ask again.
    idp.set_keys(&[&old, &new]);
    let r = get(&auth, Some(&token), "/orders").await;
    if first.elapsed() < std::time::Duration::from_millis(1500) {
        assert_eq!(r.status(), 401, "still cooling down");
        assert_eq!(idp.jwks_hits(), hits + 1, "no fetch within the cooldown");
    }
    // Past the configured cooldown (2 s, counted in whole seconds).
    let past = first + std::time::Duration::from_millis(3200);
    tokio::time::sleep_until(past.into()).await;
    let r = get(&auth, Some(&token), "/orders").await;
    assert_eq!(r.status(), 200, "refreshed once the cooldown passed");
    assert_eq!(idp.jwks_hits(), hits + 2);
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

/// `[internal_token]`: a pass carries, in `X-Internal-Token`, a token the
/// upstream validates with tokenwarden against the sidecar's own
/// `/.well-known/jwks.json` (iss, aud, `at+jwt`), for the same principal and
/// scopes, and never the client's token. A refusal carries none.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pass_carries_an_internal_token_the_upstream_validates_against_the_sidecar_jwks() {
    let idp = TestIssuer::start().unwrap();
    let dir = Scratch::new("internal-token");
    let key = dir.write("mint.pem", &mint_key_pem());
    let cfg = dir.write(
        "tw.toml",
        &format!(
            "{}{}",
            config(idp.issuer(), RULES),
            internal_token_section(&key)
        ),
    );
    let side = start_sidecar(&cfg, &[]).await;
    let base = format!("http://{}", side.addr);
    wait_status(&format!("{base}/readyz"), 200).await;

    let jwks = reqwest::get(format!("{base}/.well-known/jwks.json"))
        .await
        .unwrap();
    assert_eq!(jwks.status(), 200);
    assert_eq!(jwks.headers()["content-type"], "application/jwk-set+json");
    let jwks = jwks.bytes().await.unwrap();
    assert!(
        !String::from_utf8_lossy(&jwks).contains("\"d\""),
        "private key material in the JWKS"
    );
    let upstream = tokenwarden::Validator::builder()
        .issuer("https://gateway.test")
        .audience("https://orders.internal")
        .required_type("at+jwt")
        .keys(tokenwarden::KeySet::from_jwks(&jwks).unwrap())
        .build()
        .unwrap();

    let original = idp
        .token()
        .audience("api")
        .subject("alice")
        .scope("orders:read admin")
        .sign();
    let r = get(&format!("{base}/auth"), Some(&original), "/orders/7").await;
    assert_eq!(r.status(), 200);
    let internal = r.headers()["x-internal-token"].to_str().unwrap().to_owned();
    assert_ne!(internal, original);
    assert!(
        !internal.contains(&original),
        "the client's token went upstream"
    );
    let claims = upstream.validate_json(&internal).unwrap().claims;
    assert_eq!(claims["sub"], "alice");
    assert_eq!(claims["iss"], "https://gateway.test");
    assert_eq!(claims["aud"], "https://orders.internal");
    assert_eq!(claims["authn"], "jwt");
    assert_eq!(claims["scope"], "orders:read admin");
    let lifetime = claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap();
    assert_eq!(lifetime, 60);
    // Not the IdP's token re-signed: the IdP's validator refuses it.
    let r = get(&format!("{base}/auth"), Some(&internal), "/orders/7").await;
    assert_eq!(r.status(), 401, "the internal token is no credential here");
    assert!(r.headers().get("x-internal-token").is_none());

    // Refusals carry no internal token: no token, an expired one, one
    // without the scope a rule needs.
    let reader = idp
        .token()
        .audience("api")
        .subject("bob")
        .scope("orders:read")
        .sign();
    let expired = idp.token().audience("api").expired().sign();
    for (token, uri, status) in [
        (None, "/orders/7", 401),
        (Some(expired.as_str()), "/orders/7", 401),
        (Some(reader.as_str()), "/admin/users", 403),
    ] {
        let r = get(&format!("{base}/auth"), token, uri).await;
        assert_eq!(r.status(), status, "{uri}");
        assert!(
            r.headers().get("x-internal-token").is_none(),
            "a refusal carried an internal token"
        );
    }
    // An anonymous pass has no principal, so no token either (the header
    // is set empty, replacing any client-sent copy).
    let r = get(&format!("{base}/auth"), None, "/public/x").await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-internal-token"], "");

    // A valid token the minter cannot write as a principal (no `sub`, a
    // scope with a quote): 500, never a pass without the internal token.
    let no_sub = idp.token().audience("api").without("sub").sign();
    let odd_scope = idp
        .token()
        .audience("api")
        .subject("eve")
        .scope("orders:read a\"b")
        .sign();
    for token in [&no_sub, &odd_scope] {
        let r = get(&format!("{base}/auth"), Some(token), "/orders/7").await;
        assert_eq!(r.status(), 500);
        assert!(r.headers().get("x-internal-token").is_none());
        assert!(r.headers().get("x-auth-subject").is_none());
    }
    assert_eq!(
        metric(
            &base,
            "tokenwarden_validations_total{result=\"mint_failed\"}"
        )
        .await,
        2.0
    );
}

/// Without `[internal_token]` there is no JWKS to serve.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_internal_token_no_jwks_and_no_header() {
    let idp = TestIssuer::start().unwrap();
    let dir = Scratch::new("no-internal-token");
    let (_side, base) = sidecar_with(&idp, &dir, "", RULES).await;
    let r = reqwest::get(format!("{base}/.well-known/jwks.json"))
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let good = idp.token().audience("api").subject("alice").sign();
    let r = get(&format!("{base}/auth"), Some(&good), "/orders").await;
    assert_eq!(r.status(), 200);
    assert!(r.headers().get("x-internal-token").is_none());
}

/// Attack: `[internal_token]` settings a gateway should never run with are
/// refused at load (`--check` too), naming the line and field and never the
/// key: a lifetime of 0 or past an hour, a missing or unusable key file,
/// an empty issuer or audience, a header HTTP gives a meaning to or that an
/// identity header already uses, an unknown setting.
#[test]
fn internal_token_settings_are_checked_at_load() {
    let dir = Scratch::new("internal-token-cfg");
    let key = dir.write("mint.pem", &mint_key_pem());
    let rsa = dir.write(
        "rsa.pem",
        "-----BEGIN PRIVATE KEY-----\nMIIB\n-----END PRIVATE KEY-----\n",
    );
    let base = "audiences = [\"api\"]\ngateway = \"nginx\"\n[[issuer]]\nissuer = \"https://idp.example.com\"\n";
    let section = |key: &std::path::Path, extra: &str| {
        format!(
            "{base}[internal_token]\nkey_file = {:?}\nissuer = \"https://gw.example\"\naudience = \"https://up.example\"\n{extra}",
            key.display().to_string()
        )
    };
    let (code, err) = serve_with(&section(&key, ""));
    assert_eq!(code, Some(0), "{err}");
    let (code, err) = serve_with(&section(
        &key,
        "lifetime_seconds = 3600\nheader = \"x-gw-token\"\n",
    ));
    assert_eq!(code, Some(0), "{err}");

    let missing = dir.0.join("nowhere.pem");
    let cases: [(&str, String, &[&str]); 9] = [
        (
            "lifetime 0",
            section(&key, "lifetime_seconds = 0\n"),
            &[
                ":9:",
                "internal_token.lifetime_seconds",
                "must be 1 to 3600",
            ],
        ),
        (
            "lifetime huge",
            section(&key, "lifetime_seconds = 18446744073709551615\n"),
            &[":9:", "internal_token.lifetime_seconds"],
        ),
        (
            "lifetime a day",
            section(&key, "lifetime_seconds = 86400\n"),
            &["internal_token.lifetime_seconds", "must be 1 to 3600"],
        ),
        (
            "missing key file",
            section(&missing, ""),
            &[":6:", "internal_token", "nowhere.pem"],
        ),
        (
            "not a usable key",
            section(&rsa, ""),
            &[":6:", "internal_token"],
        ),
        (
            "empty audience",
            section(&key, "").replace("\"https://up.example\"", "\" \""),
            &[":8:", "internal_token.audience", "empty"],
        ),
        (
            "authorization header",
            section(&key, "header = \"Authorization\"\n"),
            &[":9:", "internal_token.header"],
        ),
        (
            "identity header",
            section(&key, "header = \"X-Auth-Subject\"\n"),
            &["internal_token.header", "already an identity header"],
        ),
        (
            "unknown setting",
            section(&key, "lifetime = 60\n"),
            &[":9:", "unknown field `lifetime`"],
        ),
    ];
    for (what, text, needles) in cases {
        let (code, err) = serve_with(&text);
        assert_eq!(code, Some(2), "{what}: accepted: {err}");
        for n in needles {
            assert!(err.contains(n), "{what}: {n:?} not in {err:?}");
        }
        assert!(
            !err.contains("PRIVATE KEY"),
            "{what}: key material in {err:?}"
        );
    }
}

/// `[api_keys]`: the sidecar judges a bearer JWT or an API key (here in
/// `X-Api-Key`) with one chain; both give the same identity headers and
/// internal token shape, rules' scopes apply to either, and a request with
/// both is refused. The key's secret reaches neither the headers, the
/// internal token nor the logs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_keys_beside_jwts_one_principal_for_the_rules_and_the_internal_token() {
    use tokenwarden::authn::api_key::NewApiKey;
    let idp = TestIssuer::start().unwrap();
    let dir = Scratch::new("api-keys");
    let mut key = NewApiKey::generate("live", "billing script").unwrap();
    key.record.owner = Some("billing".into());
    key.record.scopes = vec!["orders:read".into()];
    let mut disabled = NewApiKey::generate("live", "old script").unwrap();
    disabled.record.disabled = true;
    let file = dir.write(
        "keys.json",
        &serde_json::json!({ "keys": [&key.record, &disabled.record] }).to_string(),
    );
    let mint = dir.write("mint.pem", &mint_key_pem());
    let cfg = dir.write(
        "tw.toml",
        &format!(
            "{}{}\n[api_keys]\nfile = {:?}\nheader = \"X-Api-Key\"\n",
            config(idp.issuer(), RULES),
            internal_token_section(&mint),
            file.display().to_string()
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
    let secret = key.expose_key().to_owned();
    let with_key = |k: &str, uri: &str, token: Option<&str>| {
        let headers = [
            ("x-original-method".to_owned(), b"GET".to_vec()),
            ("x-original-uri".to_owned(), uri.as_bytes().to_vec()),
            ("x-api-key".to_owned(), k.as_bytes().to_vec()),
        ];
        let base = base.clone();
        let token = token.map(str::to_owned);
        async move {
            let h: Vec<(&str, &[u8])> = headers
                .iter()
                .map(|(n, v)| (n.as_str(), v.as_slice()))
                .collect();
            ask(&base, "/auth", reqwest::Method::GET, token.as_deref(), &h).await
        }
    };

    let r = with_key(&secret, "/orders/7", None).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-auth-subject"], "billing");
    assert_eq!(r.headers()["x-auth-scopes"], "orders:read");
    assert_eq!(r.headers()["x-auth-issuer"], "");
    let internal = r.headers()["x-internal-token"].to_str().unwrap().to_owned();
    assert!(!internal.contains(&secret));
    let claims = upstream.validate_json(&internal).unwrap().claims;
    assert_eq!(claims["sub"], "billing");
    assert_eq!(claims["authn"], "api_key");
    assert_eq!(claims["scope"], "orders:read");

    // A JWT through the same chain: the same shape.
    let jwt = idp
        .token()
        .audience("api")
        .subject("alice")
        .scope("orders:read")
        .sign();
    let r = get(&format!("{base}/auth"), Some(&jwt), "/orders/7").await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-auth-subject"], "alice");
    assert_eq!(r.headers()["x-auth-issuer"], idp.issuer());
    let internal = r.headers()["x-internal-token"].to_str().unwrap().to_owned();
    let claims = upstream.validate_json(&internal).unwrap().claims;
    assert_eq!(
        (claims["sub"].as_str(), claims["authn"].as_str()),
        (Some("alice"), Some("jwt"))
    );

    // The rule's scope applies to the key's principal too.
    let r = with_key(&secret, "/admin/users", None).await;
    assert_eq!(r.status(), 403);
    assert!(r.headers().get("x-internal-token").is_none());
    // Both kinds at once: refused, whichever would pass.
    let r = with_key(&secret, "/orders/7", Some(&jwt)).await;
    assert_eq!(r.status(), 400);
    assert!(r.headers().get("x-internal-token").is_none());
    // A wrong secret for a known id, an unknown id, a disabled key: 401.
    let (head, tail) = secret.split_at(secret.len() - 1);
    let wrong = format!("{head}{}", if tail == "A" { "B" } else { "A" });
    let unknown = NewApiKey::generate("live", "nobody").unwrap();
    for (what, k) in [
        ("wrong secret", wrong.as_str()),
        ("unknown id", unknown.expose_key()),
        ("disabled", disabled.expose_key()),
    ] {
        let r = with_key(k, "/orders/7", None).await;
        assert_eq!(r.status(), 401, "{what}");
        assert!(r.headers().get("x-internal-token").is_none(), "{what}");
        assert!(r.headers().get("x-auth-subject").is_none(), "{what}");
    }

    assert!(
        logs.wait_for("\"authn\":\"api_key\"").await,
        "{:?}",
        logs.seen
    );
    let (_, rest) = secret.rsplit_once('_').unwrap();
    let seen = logs.drain().join("\n");
    assert!(!seen.contains(rest), "an API key secret in the logs");
}

/// Attack: `[api_keys]` that would not work is refused at load (`--check`
/// too): a missing or bad key file, a bad header name, an unknown setting.
#[test]
fn api_keys_settings_are_checked_at_load() {
    let dir = Scratch::new("api-keys-cfg");
    let good = dir.write("keys.json", "{\"keys\": []}");
    let bad = dir.write("bad.json", "{\"keys\": [{\"id\": 7}]}");
    let base = "audiences = [\"api\"]\ngateway = \"nginx\"\n[[issuer]]\nissuer = \"https://idp.example.com\"\n";
    let section = |file: &std::path::Path, extra: &str| {
        format!(
            "{base}[api_keys]\nfile = {:?}\n{extra}",
            file.display().to_string()
        )
    };
    let (code, err) = serve_with(&section(&good, "header = \"X-Api-Key\"\n"));
    assert_eq!(code, Some(0), "{err}");
    let missing = dir.0.join("nowhere.json");
    let cases: [(&str, String, &[&str]); 5] = [
        (
            "missing file",
            section(&missing, ""),
            &[":6:", "api_keys", "nowhere.json"],
        ),
        (
            "bad file",
            section(&bad, ""),
            &[":6:", "api_keys", "bad.json"],
        ),
        (
            "bad header",
            section(&good, "header = \"X Api Key\"\n"),
            &[":7:", "api_keys.header"],
        ),
        (
            "unknown setting",
            section(&good, "reload = true\n"),
            &[":7:", "unknown field `reload`"],
        ),
        (
            "reload 0",
            section(&good, "reload_seconds = 0\n"),
            &[":7:", "api_keys.reload_seconds", "must be 1 to 3600"],
        ),
    ];
    for (what, text, needles) in cases {
        let (code, err) = serve_with(&text);
        assert_eq!(code, Some(2), "{what}: accepted: {err}");
        for n in needles {
            assert!(err.contains(n), "{what}: {n:?} not in {err:?}");
        }
    }
}

/// `[legacy]`: a session cookie judged by a real loopback legacy endpoint,
/// beside bearer JWTs: the same principal shape (identity headers, internal
/// token with `authn: "legacy"`), rules' scopes applied, a cookie and a JWT
/// at once refused, a known cookie asked once (cached), an unknown one 401,
/// an outage of the endpoint 503, and the cookie in no log line.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn legacy_cookies_are_judged_by_the_legacy_endpoint_beside_jwts() {
    use common::legacy::{LegacyServer, Mode};
    let idp = TestIssuer::start().unwrap();
    let legacy = LegacyServer::start().await;
    legacy.add(
        "SID=s3ss10n-0f-c4r0l",
        serde_json::json!({"sub": "carol", "scope": "orders:read"}),
    );
    let dir = Scratch::new("legacy");
    let mint = dir.write("mint.pem", &mint_key_pem());
    let cfg = dir.write(
        "tw.toml",
        &format!(
            "{}{}\n[legacy]\nurl = \"{}\"\ncookie = \"SID\"\ntimeout_ms = 2000\npositive_ttl_seconds = 60\nnegative_ttl_seconds = 5\n",
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
    let with_cookie = |cookie: String, uri: &'static str, token: Option<String>| {
        let base = base.clone();
        async move {
            let h: [(&str, &[u8]); 3] = [
                ("x-original-method", b"GET"),
                ("x-original-uri", uri.as_bytes()),
                ("cookie", cookie.as_bytes()),
            ];
            ask(&base, "/auth", reqwest::Method::GET, token.as_deref(), &h).await
        }
    };

    let r = with_cookie("SID=s3ss10n-0f-c4r0l".into(), "/orders/7", None).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-auth-subject"], "carol");
    assert_eq!(r.headers()["x-auth-scopes"], "orders:read");
    let internal = r.headers()["x-internal-token"].to_str().unwrap().to_owned();
    assert!(!internal.contains("s3ss10n"));
    let claims = upstream.validate_json(&internal).unwrap().claims;
    assert_eq!(claims["sub"], "carol");
    assert_eq!(claims["authn"], "legacy");
    assert_eq!(claims["scope"], "orders:read");
    // Cached: the endpoint was asked once.
    let r = with_cookie("SID=s3ss10n-0f-c4r0l".into(), "/orders/8", None).await;
    assert_eq!(r.status(), 200);
    assert_eq!(legacy.calls(), 1);

    let r = with_cookie("SID=s3ss10n-0f-c4r0l".into(), "/admin/users", None).await;
    assert_eq!(
        r.status(),
        403,
        "the rule's scope applies to the cookie's principal"
    );
    let jwt = idp.token().audience("api").subject("alice").sign();
    let r = with_cookie("SID=s3ss10n-0f-c4r0l".into(), "/orders/7", Some(jwt)).await;
    assert_eq!(r.status(), 400, "a cookie and a JWT at once");
    assert!(r.headers().get("x-internal-token").is_none());
    let r = with_cookie("SID=n0t-a-s3ss10n".into(), "/orders/7", None).await;
    assert_eq!(r.status(), 401);
    assert!(r.headers().get("x-internal-token").is_none());

    legacy.set_mode(Mode::Status(500));
    let r = with_cookie("SID=an0th3r-s3ss10n".into(), "/orders/7", None).await;
    assert_eq!(
        r.status(),
        503,
        "the endpoint down: unavailable, never a pass"
    );
    assert!(r.headers().get("x-internal-token").is_none());

    assert!(
        logs.wait_for("\"authn\":\"legacy\"").await,
        "{:?}",
        logs.seen
    );
    let seen = logs.drain().join("\n");
    assert!(!seen.contains("s3ss10n"), "a session cookie in the logs");
}

/// Attack: `[legacy]` settings a gateway should not run with are refused at
/// load (`--check` too): an http URL without `allow_http` (or to a
/// non-loopback host), no credential named or two, a timeout of 0 or past a
/// minute, a TTL past a day, a bad cookie name.
#[test]
fn legacy_settings_are_checked_at_load() {
    let base = "audiences = [\"api\"]\ngateway = \"nginx\"\n[[issuer]]\nissuer = \"https://idp.example.com\"\n";
    let section = |url: &str, extra: &str| format!("{base}[legacy]\nurl = \"{url}\"\n{extra}");
    let https = "https://sessions.example/whoami";
    let (code, err) = serve_with(&section(https, "cookie = \"SID\"\n"));
    assert_eq!(code, Some(0), "{err}");
    let (code, err) = serve_with(&section(
        https,
        "basic = true\ntimeout_ms = 60000\npositive_ttl_seconds = 0\nmax_concurrent = 8\n",
    ));
    assert_eq!(code, Some(0), "{err}");
    let (code, err) = serve_with(&format!(
        "allow_http = true\n{}",
        section("http://127.0.0.1:9/whoami", "cookie = \"SID\"\n")
    ));
    assert_eq!(code, Some(0), "{err}");

    let cases: [(&str, String, &[&str]); 9] = [
        (
            "http without allow_http",
            section("http://127.0.0.1:9/whoami", "cookie = \"SID\"\n"),
            &[":6:", "legacy.url", "must use https"],
        ),
        (
            "http to a remote host",
            format!(
                "allow_http = true\n{}",
                section("http://sessions.example/whoami", "cookie = \"SID\"\n")
            ),
            &[":7:", "legacy.url", "must use https"],
        ),
        (
            "no credential",
            section(https, ""),
            &[":6:", "legacy", "or basic = true"],
        ),
        (
            "cookie and basic",
            section(https, "cookie = \"SID\"\nbasic = true\n"),
            &[":7:", "legacy.cookie", "not both"],
        ),
        (
            "timeout 0",
            section(https, "cookie = \"SID\"\ntimeout_ms = 0\n"),
            &[":8:", "legacy.timeout_ms", "must be 1 to 60000"],
        ),
        (
            "timeout huge",
            section(
                https,
                "cookie = \"SID\"\ntimeout_ms = 18446744073709551615\n",
            ),
            &[":8:", "legacy.timeout_ms"],
        ),
        (
            "ttl past a day",
            section(https, "cookie = \"SID\"\npositive_ttl_seconds = 86401\n"),
            &[":8:", "legacy.positive_ttl_seconds"],
        ),
        (
            "bad cookie name",
            section(https, "cookie = \"S I D\"\n"),
            &["legacy", "cookie"],
        ),
        (
            "unknown setting",
            section(https, "cookie = \"SID\"\nttl = 5\n"),
            &[":8:", "unknown field `ttl`"],
        ),
    ];
    for (what, text, needles) in cases {
        let (code, err) = serve_with(&text);
        assert_eq!(code, Some(2), "{what}: accepted: {err}");
        for n in needles {
            assert!(err.contains(n), "{what}: {n:?} not in {err:?}");
        }
    }
}

/// `[api_keys]` file reload through the sidecar: a key added to the file
/// passes once the file is read again; a bad file keeps the last good keys
/// (and says so); a good file again removes a key taken out of it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_key_file_reload_good_then_bad_then_good() {
    use tokenwarden::authn::api_key::NewApiKey;
    let idp = TestIssuer::start().unwrap();
    let dir = Scratch::new("api-keys-reload");
    let first = NewApiKey::generate("live", "first").unwrap();
    let second = NewApiKey::generate("live", "second").unwrap();
    let store = |records: &[&tokenwarden::authn::api_key::ApiKeyRecord]| {
        serde_json::json!({ "keys": records }).to_string()
    };
    let file = dir.write("keys.json", &store(&[&first.record]));
    let cfg = dir.write(
        "tw.toml",
        &format!(
            "{}\n[api_keys]\nfile = {:?}\nheader = \"X-Api-Key\"\nreload_seconds = 1\n",
            config(idp.issuer(), RULES),
            file.display().to_string()
        ),
    );
    let mut side = start_sidecar(&cfg, &[]).await;
    let mut logs = side.stderr_lines();
    let base = format!("http://{}", side.addr);
    wait_status(&format!("{base}/readyz"), 200).await;
    let status = |key: String| {
        let base = base.clone();
        async move {
            let h: [(&str, &[u8]); 3] = [
                ("x-original-method", b"GET"),
                ("x-original-uri", b"/orders/1"),
                ("x-api-key", key.as_bytes()),
            ];
            ask(&base, "/auth", reqwest::Method::GET, None, &h)
                .await
                .status()
                .as_u16()
        }
    };
    let a = first.expose_key().to_owned();
    let b = second.expose_key().to_owned();
    assert_eq!(status(a.clone()).await, 200);
    assert_eq!(status(b.clone()).await, 401);

    // Good: the second key added. Lookups check the file at most every
    // second; ask until it is read (bounded).
    std::fs::write(&file, store(&[&first.record, &second.record])).unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while status(b.clone()).await != 200 {
        assert!(
            std::time::Instant::now() < deadline,
            "the new key never passed"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    // Bad: the last good keys stay, and the sidecar says why.
    std::fs::write(&file, "{\"keys\": [{\"id\": \"not a record\"}]}").unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !logs.drain().iter().any(|l| l.contains("not taken")) {
        assert!(
            std::time::Instant::now() < deadline,
            "the bad file was never read: {:?}",
            logs.seen
        );
        assert_eq!(status(a.clone()).await, 200, "a bad file dropped the keys");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(status(a.clone()).await, 200);
    assert_eq!(status(b.clone()).await, 200);
    // Good again, without the first key: it is refused.
    std::fs::write(&file, store(&[&second.record])).unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while status(a.clone()).await != 401 {
        assert!(
            std::time::Instant::now() < deadline,
            "the removed key still passes"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(status(b.clone()).await, 200);
    let seen = logs.drain().join("\n");
    for k in [&a, &b] {
        let (_, secret) = k.rsplit_once('_').unwrap();
        assert!(!seen.contains(secret), "an API key secret in the logs");
    }
}
