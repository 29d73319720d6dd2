//! `tokenwarden serve` with `[internal_token]`: the token a pass carries for
//! the upstream, its JWKS, and the settings checked at load.
#![cfg(all(feature = "cli", feature = "testing"))]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod common;

use common::sidecar::*;
use tokenwarden::testing::TestIssuer;

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
    // An anonymous pass has no principal, so no token either.
    let r = get(&format!("{base}/auth"), None, "/public/x").await;
    assert_eq!(r.status(), 200);
    assert!(r.headers().get("x-internal-token").is_none());

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
