//! `tokenwarden serve` with an authenticator chain: `[api_keys]` and
//! `[legacy]` beside bearer JWTs, their settings and the key file reload.
#![cfg(all(feature = "cli", feature = "testing"))]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod common;

use common::sidecar::*;
use tokenwarden::testing::TestIssuer;

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

    // No credential at all: a challenge for each scheme the chain takes
    // (RFC 9110 §11.6.1), so a client learns API keys are accepted too.
    let r = get(&format!("{base}/auth"), None, "/orders/7").await;
    assert_eq!(r.status(), 401);
    let challenges: Vec<&str> = r
        .headers()
        .get_all("www-authenticate")
        .iter()
        .map(|v| v.to_str().unwrap())
        .collect();
    assert_eq!(challenges.len(), 2, "{challenges:?}");
    assert!(challenges[0].starts_with("Bearer "), "{challenges:?}");
    assert!(challenges[1].starts_with("ApiKey "), "{challenges:?}");

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
