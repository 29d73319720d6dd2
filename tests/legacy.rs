//! Legacy credentials (`authn::legacy`) against a real session service on
//! 127.0.0.1: single flight, timeouts and outages as 503 that block no
//! other credential, the concurrency cap, both TTLs on tokio's paused
//! clock, strict `Basic` and cookie parsing, and no credential in any log.
#![cfg(all(feature = "legacy", feature = "remote"))]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use base64::Engine as _;
use common::NOW;
use common::legacy::{LegacyServer, Mode};
use serde_json::json;
use tokenwarden::ManualClock;
use tokenwarden::authn::legacy::{CheckError, Credential, HttpCheck, LegacyAuthenticator};
use tokenwarden::authn::{Chain, Principal, Refusal, RequestView};

type Headers = Vec<(String, String)>;

/// A long random-looking session id (log-hygiene windows are 20 chars).
fn sid(tag: &str) -> String {
    format!("{tag}-{}", "Zq8Lw3Xk9Pv2Rt7Ym4Nb6Hc1Jd5Gf0".repeat(2))
}

fn cookie(value: &str) -> Headers {
    vec![("cookie".into(), format!("theme=dark; SID={value}"))]
}

async fn run(chain: &Chain, headers: &Headers) -> Result<Principal, Refusal> {
    chain
        .authenticate(&RequestView::new("GET", "/", headers))
        .await
}

fn http_check(server: &LegacyServer) -> HttpCheck {
    HttpCheck::builder(&server.url)
        .allow_http_loopback(true)
        .build()
        .unwrap()
}

fn cookie_auth(server: &LegacyServer) -> LegacyAuthenticator {
    LegacyAuthenticator::cookie("SID", http_check(server).checker())
        .unwrap()
        .clock(ManualClock::new(NOW))
}

/// A server knowing session `value` as alice.
async fn server_with(values: &[&str]) -> LegacyServer {
    let server = LegacyServer::start().await;
    for v in values {
        server.add(
            &format!("SID={v}"),
            json!({"sub": "alice", "scope": "orders:read orders:write", "roles": ["staff"], "exp": NOW + 3600}),
        );
    }
    server
}

fn status(r: &Result<Principal, Refusal>) -> (u16, &'static str) {
    match r {
        Ok(_) => (200, "ok"),
        Err(r) => (r.status(), r.kind()),
    }
}

#[tokio::test]
async fn a_valid_cookie_gives_the_principal_the_service_describes() {
    let good = sid("good");
    let server = server_with(&[&good]).await;
    let chain = Chain::new().legacy(cookie_auth(&server));
    let p = run(&chain, &cookie(&good)).await.unwrap();
    assert_eq!(p.subject(), "alice");
    assert_eq!(p.authenticator(), "legacy");
    assert!(p.has_scope("orders:write"));
    assert!(p.has_role("staff"));
    assert_eq!(p.expires_at(), Some(NOW + 3600));
    // Registered claims are read, then dropped from the claims.
    assert!(p.claims().get("sub").is_none());
    // Only the credential went to the service: no other cookie, no header.
    let sent = server.last_headers();
    assert!(sent.contains(&"cookie".to_string()), "{sent:?}");
    assert!(!sent.iter().any(|h| h == "authorization"), "{sent:?}");
}

#[tokio::test]
async fn a_configured_name_is_the_principals_authenticator() {
    let good = sid("good");
    let server = server_with(&[&good]).await;
    let chain = Chain::new().legacy(cookie_auth(&server).name("sessions"));
    let p = run(&chain, &cookie(&good)).await.unwrap();
    assert_eq!(p.authenticator(), "sessions");
}

#[tokio::test]
async fn a_bad_cookie_is_401_with_the_cookie_challenge() {
    let server = server_with(&[]).await;
    let chain = Chain::new().legacy(cookie_auth(&server));
    let r = run(&chain, &cookie(&sid("bad"))).await.unwrap_err();
    assert_eq!((r.status(), r.error()), (401, Some("invalid_token")));
    assert_eq!(r.kind(), "invalid_credentials");
    assert_eq!(
        r.challenges("app"),
        [
            "Cookie realm=\"app\", error=\"invalid_token\", error_description=\"invalid credentials\""
        ]
    );
    assert_eq!(server.calls(), 1);
}

#[tokio::test]
async fn a_herd_of_1000_requests_with_one_new_cookie_makes_one_call() {
    let good = sid("herd");
    let server = server_with(&[&good]).await;
    server.hold(&format!("SID={good}"));
    let chain = Chain::new().legacy(cookie_auth(&server).timeout(Duration::from_secs(30)));
    let started = Arc::new(AtomicUsize::new(0));
    let all_in = Arc::new(tokio::sync::Notify::new());
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..1000 {
        let (chain, started, all_in, headers) = (
            chain.clone(),
            started.clone(),
            all_in.clone(),
            cookie(&good),
        );
        tasks.spawn(async move {
            if started.fetch_add(1, Ordering::SeqCst) + 1 == 1000 {
                all_in.notify_one();
            }
            // Joins the single flight on its first poll, in this same poll.
            run(&chain, &headers).await
        });
    }
    all_in.notified().await;
    server.wait_in_flight(1).await;
    server.release();
    let mut ok = 0;
    while let Some(r) = tasks.join_next().await {
        assert_eq!(r.unwrap().unwrap().subject(), "alice");
        ok += 1;
    }
    assert_eq!(ok, 1000);
    assert_eq!(server.calls(), 1, "one call for the whole herd");
}

#[tokio::test]
async fn a_timeout_is_503_and_blocks_no_other_credential() {
    let (a, b, c) = (sid("a"), sid("b"), sid("c"));
    let server = server_with(&[&a, &b, &c]).await;
    let chain = Chain::new().legacy(cookie_auth(&server).timeout(Duration::from_millis(300)));
    run(&chain, &cookie(&b)).await.unwrap(); // B is now cached
    server.hold(&format!("SID={a}"));
    let hung = tokio::spawn({
        let (chain, headers) = (chain.clone(), cookie(&a));
        async move { run(&chain, &headers).await }
    });
    server.wait_in_flight(1).await;
    // While the service hangs on A: cached B, and new C, pass at once.
    let bounded = Duration::from_secs(5);
    let b_ok = tokio::time::timeout(bounded, run(&chain, &cookie(&b))).await;
    assert!(b_ok.expect("B waited on A").is_ok());
    let c_ok = tokio::time::timeout(bounded, run(&chain, &cookie(&c))).await;
    assert!(c_ok.expect("C waited on A").is_ok());
    assert!(!hung.is_finished(), "A still hangs");
    let r = hung.await.unwrap().unwrap_err();
    assert_eq!((r.status(), r.kind()), (503, "legacy_timeout"));
    assert_eq!(r.retry_after(), Some(30));
    assert!(r.challenges("app").is_empty());
    // Not cached as a "no": once the service answers, A passes.
    server.release();
    assert!(run(&chain, &cookie(&a)).await.is_ok());
}

#[tokio::test]
async fn an_outage_or_an_error_status_is_503_and_never_cached() {
    let good = sid("good");
    let server = server_with(&[&good]).await;
    let chain = Chain::new().legacy(cookie_auth(&server));
    for (mode, calls) in [
        (Mode::Drop, 0),
        (Mode::Status(500), 1),
        (Mode::Status(302), 2),
    ] {
        server.set_mode(mode.clone());
        let r = run(&chain, &cookie(&good)).await;
        assert_eq!(status(&r), (503, "legacy_unavailable"), "{mode:?}");
        assert_eq!(server.calls(), calls, "{mode:?}");
    }
    server.set_mode(Mode::Ok);
    assert!(run(&chain, &cookie(&good)).await.is_ok());
    assert_eq!(server.calls(), 3);
}

#[tokio::test]
async fn a_body_past_the_limit_or_without_a_subject_is_503() {
    let good = sid("good");
    let server = server_with(&[&good]).await;
    let chain = Chain::new().legacy(cookie_auth(&server));
    server.set_mode(Mode::Huge(100 * 1024));
    assert_eq!(
        status(&run(&chain, &cookie(&good)).await),
        (503, "legacy_unavailable")
    );
    server.set_mode(Mode::Ok);
    let nosub = sid("nosub");
    server.add(&format!("SID={nosub}"), json!({"user": "alice"}));
    assert_eq!(
        status(&run(&chain, &cookie(&nosub)).await),
        (503, "legacy_unavailable")
    );
}

#[tokio::test]
async fn the_concurrency_cap_holds_at_the_server() {
    let sids: Vec<String> = (0..10).map(|i| sid(&format!("cap{i}"))).collect();
    let refs: Vec<&str> = sids.iter().map(String::as_str).collect();
    let server = server_with(&refs).await;
    server.hold_all();
    let chain = Chain::new().legacy(
        cookie_auth(&server)
            .max_concurrent(3)
            .timeout(Duration::from_secs(30)),
    );
    let mut tasks = tokio::task::JoinSet::new();
    for s in &sids {
        let (chain, headers) = (chain.clone(), cookie(s));
        tasks.spawn(async move { run(&chain, &headers).await });
    }
    server.wait_in_flight(3).await;
    for _ in 0..100 {
        tokio::task::yield_now().await;
    }
    assert_eq!(server.max_in_flight(), 3);
    server.release();
    while let Some(r) = tasks.join_next().await {
        assert!(r.unwrap().is_ok());
    }
    assert_eq!(server.calls(), 10);
    assert_eq!(server.max_in_flight(), 3, "never more than the cap at once");
}

#[tokio::test]
async fn a_full_cap_is_503_after_the_timeout_while_cached_credentials_pass() {
    let (a, b, c) = (sid("a"), sid("b"), sid("c"));
    let server = server_with(&[&a, &b, &c]).await;
    let chain = Chain::new().legacy(
        cookie_auth(&server)
            .max_concurrent(1)
            .timeout(Duration::from_millis(300)),
    );
    run(&chain, &cookie(&b)).await.unwrap();
    server.hold(&format!("SID={a}"));
    let hung = tokio::spawn({
        let (chain, headers) = (chain.clone(), cookie(&a));
        async move { run(&chain, &headers).await }
    });
    server.wait_in_flight(1).await;
    let b_ok = tokio::time::timeout(Duration::from_secs(5), run(&chain, &cookie(&b))).await;
    assert!(b_ok.expect("B waited").is_ok());
    server.hold(&format!("SID={c}"));
    let r = run(&chain, &cookie(&c)).await;
    // C waits for the one slot until its deadline. A started first, so A's
    // check times out (and frees the slot) a little before C's deadline:
    // C either never gets the slot (`legacy_busy`) or gets it with almost
    // no time left and times out at the service (`legacy_timeout`), as the
    // scheduler has it. Either way a 503, never a wait past the timeout.
    let (code, kind) = status(&r);
    assert_eq!(code, 503);
    assert!(matches!(kind, "legacy_busy" | "legacy_timeout"), "{kind}");
    assert!(
        server.calls() <= 3,
        "at most A, B and C reached the service"
    );
    let _ = hung.await;
}

#[tokio::test]
async fn a_yes_is_kept_for_the_positive_ttl_on_the_paused_clock() {
    let good = sid("good");
    let server = server_with(&[&good]).await;
    let chain = Chain::new().legacy(cookie_auth(&server).positive_ttl(Duration::from_secs(60)));
    run(&chain, &cookie(&good)).await.unwrap();
    tokio::time::pause();
    tokio::time::advance(Duration::from_secs(59)).await;
    run(&chain, &cookie(&good)).await.unwrap();
    assert_eq!(server.calls(), 1, "kept within the TTL");
    tokio::time::advance(Duration::from_secs(2)).await;
    tokio::time::resume(); // the next check goes over real sockets
    run(&chain, &cookie(&good)).await.unwrap();
    assert_eq!(server.calls(), 2, "asked again past the TTL");
}

#[tokio::test]
async fn a_yes_is_kept_no_longer_than_the_principals_expiry() {
    let soon = sid("soon");
    let server = LegacyServer::start().await;
    server.add(
        &format!("SID={soon}"),
        json!({"sub": "bob", "exp": NOW + 10}),
    );
    let chain = Chain::new().legacy(cookie_auth(&server).positive_ttl(Duration::from_secs(600)));
    run(&chain, &cookie(&soon)).await.unwrap();
    tokio::time::pause();
    tokio::time::advance(Duration::from_secs(9)).await;
    run(&chain, &cookie(&soon)).await.unwrap();
    assert_eq!(server.calls(), 1);
    tokio::time::advance(Duration::from_secs(2)).await;
    tokio::time::resume();
    run(&chain, &cookie(&soon)).await.unwrap();
    assert_eq!(
        server.calls(),
        2,
        "past the principal's expiry, asked again"
    );
}

#[tokio::test]
async fn a_no_is_kept_for_the_negative_ttl_on_the_paused_clock() {
    let bad = sid("bad");
    let server = server_with(&[]).await;
    let chain = Chain::new().legacy(cookie_auth(&server).negative_ttl(Duration::from_secs(5)));
    assert_eq!(status(&run(&chain, &cookie(&bad)).await).0, 401);
    tokio::time::pause();
    tokio::time::advance(Duration::from_secs(4)).await;
    assert_eq!(status(&run(&chain, &cookie(&bad)).await).0, 401);
    assert_eq!(server.calls(), 1, "kept within the negative TTL");
    tokio::time::advance(Duration::from_secs(2)).await;
    tokio::time::resume();
    assert_eq!(status(&run(&chain, &cookie(&bad)).await).0, 401);
    assert_eq!(server.calls(), 2);
}

#[tokio::test]
async fn duration_max_settings_do_not_panic() {
    let good = sid("good");
    let server = server_with(&[&good]).await;
    let chain = Chain::new().legacy(
        cookie_auth(&server)
            .timeout(Duration::MAX)
            .positive_ttl(Duration::MAX)
            .negative_ttl(Duration::MAX),
    );
    assert!(run(&chain, &cookie(&good)).await.is_ok());
    assert_eq!(status(&run(&chain, &cookie(&sid("bad"))).await).0, 401);
}

/// A Basic authenticator whose check counts calls and knows alice:pw.
fn basic_chain() -> (Chain, Arc<AtomicUsize>) {
    let calls = Arc::new(AtomicUsize::new(0));
    let counted = calls.clone();
    let auth = LegacyAuthenticator::basic(move |c: Credential| {
        counted.fetch_add(1, Ordering::SeqCst);
        async move {
            match c {
                Credential::Basic { user, password } if user == "alice" && password == "p:w é" => {
                    Ok(Some(Principal::new("alice", "legacy")))
                }
                Credential::Basic { .. } => Ok(None),
                _ => Err(CheckError::new("not Basic")),
            }
        }
    });
    (Chain::new().legacy(auth), calls)
}

fn basic(raw: &[u8]) -> Headers {
    let b64 = base64::engine::general_purpose::STANDARD.encode(raw);
    vec![("authorization".into(), format!("Basic {b64}"))]
}

#[tokio::test]
async fn basic_credentials_are_decoded_strictly() {
    let (chain, calls) = basic_chain();
    let p = run(&chain, &basic("alice:p:w é".as_bytes())).await.unwrap();
    assert_eq!(p.subject(), "alice");
    let r = run(&chain, &basic(b"alice:wrong")).await.unwrap_err();
    assert_eq!(
        r.challenges("app")[0],
        "Basic realm=\"app\", error=\"invalid_token\", error_description=\"invalid credentials\""
    );
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    let auth = |v: &str| vec![("authorization".to_string(), v.to_string())];
    let huge = format!("Basic {}", "QUFB".repeat(2000));
    let cases: Vec<(&str, Headers)> = vec![
        ("bad base64", auth("Basic !!!!")),
        ("url-safe alphabet", auth("Basic YWxpY2U6cD8_")),
        ("missing padding", auth("Basic YWxpY2U6cHc")),
        ("non-zero trailing bits", auth("Basic YWxpY2U6cHd=")),
        ("no colon", basic(b"alice")),
        ("non-UTF-8", basic(b"alice:\xff\xfe")),
        ("control character", basic(b"alice:p\x00w")),
        ("huge", auth(&huge)),
        ("two credentials", auth("Basic YQ== YQ==")),
        ("no credential", auth("Basic")),
        (
            "two Authorization headers",
            vec![
                ("authorization".into(), "Basic YWxpY2U6cHc=".into()),
                ("authorization".into(), "Basic Ym9iOnB3".into()),
            ],
        ),
    ];
    for (what, headers) in cases {
        let r = run(&chain, &headers).await;
        assert_eq!(status(&r), (400, "invalid_request"), "{what}");
    }
    assert_eq!(
        calls.load(Ordering::SeqCst),
        2,
        "no check for a malformed credential"
    );
}

#[tokio::test]
async fn hostile_cookies_are_refused_without_a_check() {
    let good = sid("good");
    let server = server_with(&[&good]).await;
    let chain = Chain::new().legacy(cookie_auth(&server));
    let c = |v: String| vec![("cookie".to_string(), v)];
    let cases: Vec<(&str, Headers)> = vec![
        ("two in one header", c(format!("SID={good}; SID=x"))),
        (
            "two across headers",
            vec![
                ("cookie".into(), format!("SID={good}")),
                ("cookie".into(), "SID=x".into()),
            ],
        ),
        ("case-folded look-alike", c(format!("SID={good}; sid=x"))),
        ("percent-encoded look-alike", c("%53ID=x".into())),
        ("backslash", c("SID=a\\b".into())),
        ("empty", c("SID=".into())),
        ("huge", c(format!("SID={}", "a".repeat(5000)))),
        // RFC 2965 parsers split on `,` too: they would read this SID.
        (
            "another after a comma",
            c(format!("SID={good}; theme=dark, SID=x")),
        ),
        ("only after a comma", c("theme=dark, SID=x".into())),
        ("a look-alike after a comma", c("a=b,sid=x".into())),
    ];
    for (what, headers) in cases {
        let r = run(&chain, &headers).await;
        assert_eq!(status(&r), (400, "invalid_request"), "{what}");
    }
    assert_eq!(server.calls(), 0);
    // A quoted value is the value (RFC 6265 §4.1.1).
    assert!(run(&chain, &c(format!("SID=\"{good}\""))).await.is_ok());
}

/// Attack: PHP mangles cookie names when it fills `$_COOKIE` (`.`, a space
/// or a lone `[` become `_`; `name[k]` is the array `name`): a second
/// cookie spelt so would reach a PHP application behind us as the session
/// cookie we judged. Refused, and no check is made.
#[tokio::test]
async fn a_cookie_name_php_reads_as_the_credential_cookie_is_refused() {
    let good = sid("good");
    let server = LegacyServer::start().await;
    server.add(
        &format!("session_id={good}"),
        json!({"sub": "alice", "exp": NOW + 3600}),
    );
    let auth = LegacyAuthenticator::cookie("session_id", http_check(&server).checker())
        .unwrap()
        .clock(ManualClock::new(NOW));
    let chain = Chain::new().legacy(auth);
    let c = |v: String| vec![("cookie".to_string(), v)];
    assert!(run(&chain, &c(format!("session_id={good}"))).await.is_ok());
    let calls = server.calls();
    for look_alike in ["session.id", "session id", "session[id", "session_id[x]"] {
        let r = run(&chain, &c(format!("session_id={good}; {look_alike}=x"))).await;
        assert_eq!(status(&r), (400, "invalid_request"), "{look_alike}");
        let r = run(&chain, &c(format!("{look_alike}=x"))).await;
        assert_eq!(status(&r), (400, "invalid_request"), "{look_alike} alone");
    }
    assert_eq!(server.calls(), calls, "no check for a look-alike");
}

#[test]
fn the_url_policy_is_https_or_allowed_loopback() {
    assert!(HttpCheck::builder("http://127.0.0.1:1/x").build().is_err());
    assert!(
        HttpCheck::builder("http://sessions.example/x")
            .allow_http_loopback(true)
            .build()
            .is_err()
    );
    assert!(
        HttpCheck::builder("ftp://sessions.example/x")
            .build()
            .is_err()
    );
    assert!(HttpCheck::builder("https://10.0.0.1/x").build().is_err());
    assert!(
        HttpCheck::builder("https://10.0.0.1/x")
            .allow_private_addresses(true)
            .build()
            .is_ok()
    );
    assert!(
        HttpCheck::builder("http://127.0.0.1:1/x")
            .allow_http_loopback(true)
            .build()
            .is_ok()
    );
}

fn windows(secret: &str) -> Vec<&str> {
    (0..=secret.len().saturating_sub(20))
        .map(|i| &secret[i..i + 20])
        .collect()
}

#[tokio::test]
async fn credentials_appear_in_no_log_line_or_debug_output() {
    let (_guard, logs) = common::capture_logs();
    let (good, bad, slow) = (sid("good"), sid("bad"), sid("slow"));
    let server = server_with(&[&good, &slow]).await;
    let auth = cookie_auth(&server).timeout(Duration::from_millis(200));
    let chain = Chain::new().legacy(auth.clone());
    let mut shown = Vec::new();
    for v in [&good, &bad, &good, &bad] {
        shown.push(format!("{:?}", run(&chain, &cookie(v)).await));
    }
    server.set_mode(Mode::Status(500));
    shown.push(format!("{:?}", run(&chain, &cookie(&sid("other"))).await));
    server.set_mode(Mode::Ok);
    server.hold(&format!("SID={slow}"));
    shown.push(format!("{:?}", run(&chain, &cookie(&slow)).await));
    server.release();
    let password = "Hk3Lp9Wq2Zx7Vb5Nm8Rt4Yc6";
    let (bchain, _) = basic_chain();
    shown.push(format!(
        "{:?}",
        run(&bchain, &basic(format!("alice:{password}").as_bytes())).await
    ));
    let credential = Credential::Cookie {
        name: "SID".into(),
        value: good.clone(),
    };
    shown.push(format!("{credential:?} {credential}"));
    let credential = Credential::Basic {
        user: "alice".into(),
        password: password.into(),
    };
    shown.push(format!("{credential:?} {credential}"));
    shown.push(format!("{auth:?} {chain:?}"));
    let text = logs.text();
    assert!(
        text.contains("legacy check failed"),
        "the run logged: {text}"
    );
    assert!(text.contains("legacy_timeout"), "the run logged: {text}");
    for secret in [&good, &bad, &slow, &password.to_string()] {
        for w in windows(secret) {
            for line in text.lines().chain(shown.iter().map(String::as_str)) {
                assert!(!line.contains(w), "credential in: {line}");
            }
        }
    }
}

#[tokio::test]
async fn a_header_credential_works_and_a_legacy_cookie_with_an_api_key_is_400() {
    use common::authn::{add_key, api_key_header, api_keys};
    let token = sid("hdr");
    let server = LegacyServer::start().await;
    server.add(&token, json!({"sub": "carol"}));
    let header = LegacyAuthenticator::header("X-Session", http_check(&server).checker()).unwrap();
    let chain = Chain::new().legacy(header);
    let p = run(&chain, &vec![("x-session".into(), token.clone())])
        .await
        .unwrap();
    assert_eq!(p.subject(), "carol");
    let r = run(&chain, &vec![("x-session".into(), sid("nope"))])
        .await
        .unwrap_err();
    assert_eq!(r.challenges("app")[0].split(' ').next(), Some("Legacy"));

    let store = Arc::new(tokenwarden::authn::api_key::MemoryStore::new());
    let key = add_key(&store, "k", &[]);
    let both = Chain::new()
        .api_key(api_keys(&store, &ManualClock::new(NOW)))
        .legacy(cookie_auth(&server));
    let mut headers = api_key_header(&key);
    headers.extend(cookie(&token));
    assert_eq!(
        status(&run(&both, &headers).await),
        (400, "invalid_request")
    );
}

/// Attack: a hostile legacy endpoint's answer cannot pass for an IdP's
/// token: registered JWT claims (`iss`, `aud`, `cnf`, …) are read for the
/// subject, scopes and expiry, then dropped; other claims are kept.
#[tokio::test]
async fn registered_claims_from_the_endpoint_are_dropped() {
    let good = sid("idp");
    let server = LegacyServer::start().await;
    server.add(
        &format!("SID={good}"),
        json!({
            "sub": "alice",
            "iss": "https://idp.example.com",
            "aud": "api",
            "scope": "orders:read",
            "scp": "admin",
            "cnf": {"jkt": "attacker"},
            "act": {"sub": "admin"},
            "amr": ["mfa"],
            "exp": NOW + 600,
            "tenant": "acme",
        }),
    );
    let chain = Chain::new().legacy(cookie_auth(&server));
    let p = run(&chain, &cookie(&good)).await.unwrap();
    assert_eq!(p.subject(), "alice");
    assert!(p.has_scope("orders:read"));
    assert!(
        !p.has_scope("admin"),
        "scp is not the configured scopes claim"
    );
    assert_eq!(p.expires_at(), Some(NOW + 600));
    for name in [
        "iss", "aud", "scope", "scp", "cnf", "act", "amr", "exp", "sub",
    ] {
        assert!(p.claims().get(name).is_none(), "{name}: {:?}", p.claims());
    }
    assert_eq!(p.claims()["tenant"], "acme");
}

/// Attack: distinct bogus cookies, enough to fill the verdict cache with
/// "no", must not cost a good new cookie its single flight: a herd for it
/// still makes one call (and its "yes" is kept).
#[tokio::test]
async fn a_flood_of_bogus_cookies_cannot_break_the_single_flight_of_a_good_one() {
    let good = sid("after-flood");
    let server = server_with(&[&good]).await;
    let auth = cookie_auth(&server)
        .timeout(Duration::from_secs(30))
        .max_entries(200);
    let chain = Chain::new().legacy(auth);
    for i in 0..400 {
        let r = run(&chain, &cookie(&format!("bogus-{i}"))).await;
        assert_eq!(status(&r), (401, "invalid_credentials"));
    }
    assert_eq!(server.calls(), 400);
    server.hold(&format!("SID={good}"));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..50 {
        let (chain, headers) = (chain.clone(), cookie(&good));
        tasks.spawn(async move { run(&chain, &headers).await });
    }
    server.wait_in_flight(1).await;
    // Every task has joined the flight before it is released.
    for _ in 0..100 {
        tokio::task::yield_now().await;
    }
    server.release();
    while let Some(r) = tasks.join_next().await {
        assert_eq!(r.unwrap().unwrap().subject(), "alice");
    }
    assert_eq!(server.calls(), 401, "one call for the herd after the flood");
    assert!(run(&chain, &cookie(&good)).await.is_ok());
    assert_eq!(server.calls(), 401, "the good cookie's yes is kept");
}

/// Attack: a session cookie and `Basic` credentials judged by two legacy
/// authenticators of one name are two credentials: a request carrying the
/// attacker's own valid cookie and a victim's unchecked `Basic` is refused,
/// never decided by the cookie while an application behind reads `Basic`.
#[tokio::test]
async fn a_cookie_and_basic_under_one_name_are_two_kinds_and_refused_400() {
    let good = sid("own");
    let server = server_with(&[&good]).await;
    let chain = Chain::new().legacy(cookie_auth(&server)).legacy(
        LegacyAuthenticator::basic(http_check(&server).checker()).clock(ManualClock::new(NOW)),
    );
    let mut both = cookie(&good);
    both.push(("authorization".into(), "Basic dmljdGltOmd1ZXNz".into()));
    let r = run(&chain, &both).await.unwrap_err();
    assert_eq!((r.status(), r.kind()), (400, "invalid_request"));
    assert_eq!(server.calls(), 0, "nothing judged");
    // Each alone still works as before.
    assert!(run(&chain, &cookie(&good)).await.is_ok());
}
