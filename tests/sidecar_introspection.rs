//! `tokenwarden serve` with `[introspection]` against the test issuer's real
//! loopback `/introspect`: opaque tokens beside JWTs, the phantom-token
//! pattern with `[internal_token]` (the upstream gets a minted JWT, never
//! the opaque token), revocation, our client credentials refused (503, not
//! 401), outages (a kept verdict passes, an unseen token gets 503 with
//! `Retry-After`), and no opaque token in any log line.
#![cfg(all(feature = "cli", feature = "testing"))]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod common;

use common::sidecar::*;
use tokenwarden::testing::{IntrospectionOutage, TestIssuer};

const CLIENT: &str = INTROSPECTION_CLIENT;
const SECRET: &str = INTROSPECTION_SECRET;
/// The call the sidecar makes at start to check its client credentials.
const START_PROBE: u64 = 1;

/// A sidecar behind nginx with `[introspection]` (and `[internal_token]`
/// when `mint` is true); its base URL, once ready.
async fn sidecar(idp: &TestIssuer, dir: &Scratch, mint: bool, extra: &str) -> (Running, String) {
    let secret = dir.write("secret", &format!("{SECRET}\n"));
    let mut text = format!(
        "{}{}",
        config(idp.issuer(), RULES),
        introspection_section(idp, &secret, extra)
    );
    if mint {
        let key = dir.write("mint.pem", &mint_key_pem());
        text.push_str(&internal_token_section(&key));
    }
    let cfg = dir.write("tw.toml", &text);
    let side = start_sidecar(&cfg, &[]).await;
    let base = format!("http://{}", side.addr);
    wait_status(&format!("{base}/readyz"), 200).await;
    (side, base)
}

fn opaque(idp: &TestIssuer, sub: &str, scope: &str) -> String {
    idp.opaque_token()
        .subject(sub)
        .audience("api")
        .scope(scope)
        .issue()
}

/// Stops the sidecar and asserts that none of `secrets` is in its stderr.
fn assert_never_logged(side: Running, secrets: &[&str]) -> String {
    let (_, err) = side.terminate();
    for s in secrets {
        assert!(!err.contains(s), "a token or secret in the logs:\n{err}");
    }
    err
}

/// The phantom-token pattern: an opaque token passes with identity headers
/// from its principal (`X-Auth-Authenticator: introspection`) and an
/// internal JWT the upstream validates against the sidecar's JWKS; the
/// opaque token is in no response header and no log line. A JWT still
/// passes in the same chain.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_opaque_token_passes_as_an_internal_token_the_upstream_validates() {
    let idp = TestIssuer::start().unwrap();
    idp.introspection_client_secret(CLIENT, SECRET);
    let dir = Scratch::new("phantom");
    let (side, base) = sidecar(&idp, &dir, true, "").await;
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

    let token = opaque(&idp, "alice", "orders:read admin");
    let r = get(&format!("{base}/auth"), Some(&token), "/admin/x").await;
    assert_eq!(r.status(), 200);
    for (name, value) in r.headers() {
        assert!(
            !String::from_utf8_lossy(value.as_bytes()).contains(&token),
            "{name} carries the opaque token"
        );
    }
    assert_eq!(r.headers()["x-auth-subject"], "alice");
    assert_eq!(r.headers()["x-auth-authenticator"], "introspection");
    assert_eq!(r.headers()["x-auth-scopes"], "admin orders:read");
    let internal = r.headers()["x-internal-token"].to_str().unwrap().to_owned();
    let claims = upstream.validate_json(&internal).unwrap().claims;
    assert_eq!(claims["sub"], "alice");
    assert_eq!(claims["authn"], "introspection");
    assert_eq!(claims["scope"], "admin orders:read");
    assert_eq!(idp.introspection_calls(), 1 + START_PROBE);
    // Kept: a second request makes no call.
    let r = get(&format!("{base}/auth"), Some(&token), "/orders/1").await;
    assert_eq!(r.status(), 200);
    assert_eq!(idp.introspection_calls(), 1 + START_PROBE);

    // A JWT in the same chain, judged locally.
    let jwt = idp.token().audience("api").subject("bob").sign();
    let r = get(&format!("{base}/auth"), Some(&jwt), "/orders/1").await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-auth-authenticator"], "jwt");
    assert_eq!(
        idp.introspection_calls(),
        1 + START_PROBE,
        "a JWT is never introspected"
    );

    // The scope rule applies to the opaque token's principal.
    let reader = opaque(&idp, "carol", "orders:read");
    let r = get(&format!("{base}/auth"), Some(&reader), "/admin/x").await;
    assert_eq!(r.status(), 403);
    assert!(r.headers().get("x-internal-token").is_none());

    assert_never_logged(side, &[&token, &reader, SECRET]);
}

/// Revoked at the IdP (`active: false`) before its first use: 401
/// `invalid_token`, no internal token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_opaque_token_is_refused_with_401() {
    let idp = TestIssuer::start().unwrap();
    idp.introspection_client_secret(CLIENT, SECRET);
    let dir = Scratch::new("revoked");
    let (side, base) = sidecar(&idp, &dir, true, "").await;
    let token = opaque(&idp, "alice", "orders:read");
    assert!(idp.revoke(&token));
    let r = get(&format!("{base}/auth"), Some(&token), "/orders/1").await;
    assert_eq!(r.status(), 401);
    let challenge = r.headers()["www-authenticate"].to_str().unwrap();
    assert!(challenge.contains("invalid_token"), "{challenge}");
    assert!(r.headers().get("x-internal-token").is_none());
    assert_never_logged(side, &[&token]);
}

/// An opaque token for another audience is refused: the section's
/// audiences default to the top-level ones (removing that default lets it
/// through).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_opaque_token_for_another_audience_is_refused_by_default() {
    let idp = TestIssuer::start().unwrap();
    idp.introspection_client_secret(CLIENT, SECRET);
    let dir = Scratch::new("aud");
    let (_side, base) = sidecar(&idp, &dir, false, "").await;
    let other = idp
        .opaque_token()
        .subject("alice")
        .audience("billing")
        .issue();
    let r = get(&format!("{base}/auth"), Some(&other), "/orders/1").await;
    assert_eq!(r.status(), 401);
    let ours = opaque(&idp, "alice", "x");
    let r = get(&format!("{base}/auth"), Some(&ours), "/orders/1").await;
    assert_eq!(r.status(), 200);
}

/// Our client secret refused by the endpoint: the user did nothing wrong,
/// so 503 with `Retry-After` (never 401), and an error log line that says
/// what to fix, naming neither the token nor the secret.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn our_client_secret_refused_at_the_endpoint_is_503_and_a_clear_error_log() {
    let idp = TestIssuer::start().unwrap();
    idp.introspection_client_secret(CLIENT, "another-secret");
    let dir = Scratch::new("badclient");
    let (side, base) = sidecar(&idp, &dir, true, "").await;
    let token = opaque(&idp, "alice", "orders:read");
    let r = get(&format!("{base}/auth"), Some(&token), "/orders/1").await;
    assert_eq!(r.status(), 503);
    assert!(r.headers().get("x-internal-token").is_none());
    let retry: u32 = r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(retry >= 1, "{retry}");
    assert!(r.headers().get("www-authenticate").is_none());
    let err = assert_never_logged(side, &[&token, SECRET]);
    assert!(
        err.lines().any(|l| l.contains("ERROR")
            && l.contains("refused our client credentials")
            && l.contains("introspection_client_rejected")),
        "no clear error line:\n{err}"
    );
}

/// A wrong client secret is said at start, before any opaque token comes
/// (one probe with a made-up token, RFC 7662 §2.1): an error line naming
/// the endpoint's refusal, never the secret; with the right secret, an info
/// line says the credentials are accepted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_client_secret_is_logged_at_start_before_any_request() {
    let idp = TestIssuer::start().unwrap();
    idp.introspection_client_secret(CLIENT, "another-secret");
    let dir = Scratch::new("badclient-start");
    let (mut side, _base) = sidecar(&idp, &dir, false, "").await;
    let mut logs = side.stderr_lines();
    assert!(
        logs.wait_for("client check failed at start").await,
        "no start-time error: {:?}",
        logs.seen
    );
    let line = logs
        .seen
        .iter()
        .find(|l| l.contains("client check failed at start"))
        .unwrap();
    assert!(
        line.contains("ERROR") && line.contains("refused this client's credentials"),
        "{line}"
    );
    assert!(logs.seen.iter().all(|l| !l.contains(SECRET)));
    assert_eq!(idp.introspection_calls(), 1, "one probe, no request yet");

    let good = TestIssuer::start().unwrap();
    good.introspection_client_secret(CLIENT, SECRET);
    let dir = Scratch::new("goodclient-start");
    let (mut side, _base) = sidecar(&good, &dir, false, "").await;
    let mut logs = side.stderr_lines();
    assert!(
        logs.wait_for("accepts our client credentials").await,
        "{:?}",
        logs.seen
    );
}

/// The endpoint down: a token with a kept verdict still passes (with its
/// internal token); an unseen one gets 503 with `Retry-After`, never 401,
/// for each way of failing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endpoint_down_a_kept_token_passes_an_unseen_one_gets_503_with_retry_after() {
    let idp = TestIssuer::start().unwrap();
    idp.introspection_client_secret(CLIENT, SECRET);
    let dir = Scratch::new("outage");
    // A short timeout for the hang; a high failure count keeps the circuit
    // closed so each outage is seen as itself.
    let (side, base) = sidecar(
        &idp,
        &dir,
        true,
        "timeout_ms = 300\nmax_failures = 100\nretry_after_seconds = 7\n",
    )
    .await;
    let kept = opaque(&idp, "alice", "orders:read");
    let r = get(&format!("{base}/auth"), Some(&kept), "/orders/1").await;
    assert_eq!(r.status(), 200);
    let mut unseen_tokens = Vec::new();
    for outage in [
        IntrospectionOutage::Status(500),
        IntrospectionOutage::Hang,
        IntrospectionOutage::Garbage,
        IntrospectionOutage::Html,
        IntrospectionOutage::Drop,
    ] {
        idp.set_introspection_outage(Some(outage));
        let r = get(&format!("{base}/auth"), Some(&kept), "/orders/1").await;
        assert_eq!(r.status(), 200, "{outage:?}: the kept token");
        assert!(r.headers().get("x-internal-token").is_some());
        let unseen = opaque(&idp, "bob", "orders:read");
        let r = get(&format!("{base}/auth"), Some(&unseen), "/orders/1").await;
        assert_eq!(r.status(), 503, "{outage:?}: an unseen token");
        assert_eq!(r.headers()["retry-after"], "7", "{outage:?}");
        unseen_tokens.push(unseen);
    }
    idp.set_introspection_outage(None);
    let back = opaque(&idp, "carol", "orders:read");
    let r = get(&format!("{base}/auth"), Some(&back), "/orders/1").await;
    assert_eq!(r.status(), 200, "the endpoint back");
    let mut secrets: Vec<&str> = unseen_tokens.iter().map(String::as_str).collect();
    secrets.extend([kept.as_str(), back.as_str(), SECRET]);
    assert_never_logged(side, &secrets);
}

/// `private_key_jwt` from a key file: the sidecar signs its assertions with
/// it; the IdP knows only the public key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn private_key_jwt_from_a_key_file_authenticates_the_sidecar() {
    let idp = TestIssuer::start().unwrap();
    let dir = Scratch::new("pkjwt");
    let key = dir.write("client.pem", &mint_key_pem());
    let public = tokenwarden::mint::Minter::builder()
        .signing_key_file(&key)
        .issuer("x")
        .audience("y")
        .build()
        .unwrap()
        .jwks();
    idp.introspection_client_jwk(CLIENT, &public["keys"][0])
        .unwrap();
    let text = format!(
        "{}\n[introspection]\nendpoint = \"{}\"\nclient_id = \"{CLIENT}\"\nprivate_key_file = {:?}\nissuer = \"{}\"\n",
        config(idp.issuer(), RULES),
        idp.introspection_url(),
        key.display().to_string(),
        idp.issuer(),
    );
    let cfg = dir.write("tw.toml", &text);
    let side = start_sidecar(&cfg, &[]).await;
    let base = format!("http://{}", side.addr);
    wait_status(&format!("{base}/readyz"), 200).await;
    let token = opaque(&idp, "alice", "orders:read");
    let r = get(&format!("{base}/auth"), Some(&token), "/orders/1").await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-auth-authenticator"], "introspection");
}

/// `--check` refuses hostile values in `[introspection]` with the file and
/// line, as `serve` would (exit 2).
#[test]
fn check_refuses_hostile_introspection_settings_with_file_and_line() {
    let dir = Scratch::new("intro-check");
    let secret = dir.write("secret", "s\n");
    let head = "audiences = [\"api\"]\ngateway = \"nginx\"\n[[issuer]]\nissuer = \"https://i.example\"\n[introspection]\nendpoint = \"https://idp.example/introspect\"\nclient_id = \"gw\"\n";
    let ok = format!(
        "{head}client_secret_file = {:?}\n",
        secret.display().to_string()
    );
    let (code, err) = serve_with(&ok);
    assert_eq!(code, Some(0), "{err}");
    for (extra, needle) in [
        (
            "positive_ttl_seconds = 0",
            "bad.toml:9: introspection.positive_ttl_seconds: must be 1 to 86400",
        ),
        ("positive_ttl_seconds = 18446744073709551615", "bad.toml:9"),
        (
            "negative_ttl_seconds = 0",
            "bad.toml:9: introspection.negative_ttl_seconds",
        ),
        ("max_entries = 0", "bad.toml:9: introspection.max_entries"),
        (
            "max_bytes = 9223372036854775807",
            "bad.toml:9: introspection.max_bytes",
        ),
        ("timeout_ms = 0", "bad.toml:9: introspection.timeout_ms"),
        (
            "max_concurrent = 1000000",
            "bad.toml:9: introspection.max_concurrent",
        ),
        (
            "max_backoff_seconds = 9223372036854775807",
            "bad.toml:9: introspection.max_backoff_seconds",
        ),
        (
            "client_auth = \"none\"",
            "bad.toml:9: introspection.client_auth",
        ),
    ] {
        let (code, err) = serve_with(&format!("{ok}{extra}\n"));
        assert_eq!(code, Some(2), "{extra}: {err}");
        assert!(err.contains(needle), "{extra}: {err}");
    }
    let (code, err) = serve_with(&format!("{head}client_secret_file = \"/nonexistent/s\"\n"));
    assert_eq!(code, Some(2));
    assert!(
        err.contains("bad.toml:8: introspection.client_secret_file: cannot read /nonexistent/s"),
        "{err}"
    );
    let bad_key = dir.write(
        "bad.pem",
        "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
    );
    let (code, err) = serve_with(&format!(
        "{head}private_key_file = {:?}\n",
        bad_key.display().to_string()
    ));
    assert_eq!(code, Some(2));
    assert!(
        err.contains("bad.toml:8: introspection.private_key_file"),
        "{err}"
    );
    assert!(!err.contains("AAAA"), "key material in: {err}");
}
