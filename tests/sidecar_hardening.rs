//! `tokenwarden serve` under attack across credential kinds: the internal
//! token tells issuers apart, a legacy endpoint cannot pass for the IdP,
//! identity headers say which authenticator vouched, and an anonymous pass
//! blanks every header a client could have sent (the internal token's too).
#![cfg(all(feature = "cli", feature = "testing"))]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod common;

use common::legacy::LegacyServer;
use common::sidecar::*;
use serde_json::{Map, Value, json};
use tokenwarden::testing::TestIssuer;

const RULES: &str = r#"
[[rule]]
path = "/public/*"
anonymous = true
"#;

/// A config with every issuer given (found through discovery), behind nginx.
fn config_for(issuers: &[&TestIssuer], rest: &str) -> String {
    let mut c = String::from(
        "audiences = [\"api\"]\nallow_http = true\nrealm = \"shop\"\ngateway = \"nginx\"\n\n[headers]\nclaims = { tenant = \"X-Auth-Tenant\", iss = \"X-Auth-Claim-Iss\" }\n",
    );
    for idp in issuers {
        c.push_str(&format!("\n[[issuer]]\nissuer = \"{}\"\n", idp.issuer()));
    }
    c.push_str(rest);
    c.push_str(RULES);
    c
}

/// `/auth` as nginx asks it: the original method and URI, a bearer token
/// and other headers of the client's.
async fn auth(
    base: &str,
    uri: &str,
    bearer: Option<&str>,
    headers: &[(&str, &str)],
) -> reqwest::Response {
    let mut req = reqwest::Client::new()
        .get(format!("{base}/auth"))
        .header("x-original-method", "GET")
        .header("x-original-uri", uri);
    for (n, v) in headers {
        req = req.header(*n, *v);
    }
    if let Some(t) = bearer {
        req = req.bearer_auth(t);
    }
    req.send().await.unwrap()
}

/// The upstream's view: the internal token validated against the
/// sidecar's JWKS.
async fn upstream(base: &str) -> tokenwarden::Validator {
    let jwks = reqwest::get(format!("{base}/.well-known/jwks.json"))
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    tokenwarden::Validator::builder()
        .issuer("https://gateway.test")
        .audience("https://orders.internal")
        .required_type("at+jwt")
        .keys(tokenwarden::KeySet::from_jwks(&jwks).unwrap())
        .build()
        .unwrap()
}

fn internal(r: &reqwest::Response) -> String {
    r.headers()["x-internal-token"].to_str().unwrap().to_owned()
}

fn header<'r>(r: &'r reqwest::Response, name: &str) -> &'r str {
    r.headers()[name].to_str().unwrap()
}

/// Attack (item 1): a user at issuer B whose `sub` equals a victim's at
/// issuer A gets neither the victim's internal token nor one the upstream
/// could take for the victim's: each token names its source issuer
/// (`src_iss`), in the JWT-only sidecar and in a chain alike.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_sub_at_two_issuers_gets_two_internal_tokens() {
    let (a, b) = (TestIssuer::start().unwrap(), TestIssuer::start().unwrap());
    let legacy = LegacyServer::start().await;
    for chain in [false, true] {
        let dir = Scratch::new("two-issuers");
        let key = dir.write("mint.pem", &mint_key_pem());
        let legacy_section = if chain {
            format!("\n[legacy]\nurl = \"{}\"\ncookie = \"SID\"\n", legacy.url)
        } else {
            String::new()
        };
        let cfg = dir.write(
            "tw.toml",
            &config_for(
                &[&a, &b],
                &format!("{}{legacy_section}", internal_token_section(&key)),
            ),
        );
        let side = start_sidecar(&cfg, &[]).await;
        let base = format!("http://{}", side.addr);
        wait_status(&format!("{base}/readyz"), 200).await;
        let upstream = upstream(&base).await;

        let victim = a.token().audience("api").subject("alice").sign();
        let attacker = b.token().audience("api").subject("alice").sign();
        let rv = auth(&base, "/orders/7", Some(&victim), &[]).await;
        let ra = auth(&base, "/orders/7", Some(&attacker), &[]).await;
        assert_eq!(
            (rv.status().as_u16(), ra.status().as_u16()),
            (200, 200),
            "chain: {chain}"
        );
        let (tv, ta) = (internal(&rv), internal(&ra));
        assert_ne!(tv, ta, "chain {chain}: the victim's cached internal token");
        let cv = upstream.validate_json(&tv).unwrap().claims;
        let ca = upstream.validate_json(&ta).unwrap().claims;
        assert_eq!(cv["sub"], ca["sub"]);
        assert_eq!(cv["src_iss"], a.issuer(), "chain: {chain}");
        assert_eq!(ca["src_iss"], b.issuer(), "chain: {chain}");
        assert_eq!(header(&ra, "x-auth-issuer"), b.issuer());
        assert_eq!(header(&ra, "x-auth-authenticator"), "jwt");
    }
}

/// Attack (items 2 and 4): a hostile legacy endpoint answering with the
/// IdP's `iss` (and other registered claims) does not make the upstream
/// see the IdP: `X-Auth-Issuer` is empty for any principal but a JWT's, the
/// registered claims are dropped (a mapped `iss` header is empty too), the
/// internal token names no source issuer, and `X-Auth-Authenticator` says
/// `legacy`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_legacy_endpoint_cannot_pass_for_the_idp() {
    let idp = TestIssuer::start().unwrap();
    let legacy = LegacyServer::start().await;
    legacy.add(
        "SID=s3ss10n-0f-m4ll0ry",
        json!({
            "sub": "alice",
            "iss": idp.issuer(),
            "aud": "api",
            "cnf": {"jkt": "attacker"},
            "tenant": "acme",
            "exp": 4_000_000_000_i64,
        }),
    );
    let dir = Scratch::new("legacy-as-idp");
    let key = dir.write("mint.pem", &mint_key_pem());
    let cfg = dir.write(
        "tw.toml",
        &config_for(
            &[&idp],
            &format!(
                "{}\n[legacy]\nurl = \"{}\"\ncookie = \"SID\"\n",
                internal_token_section(&key),
                legacy.url
            ),
        ),
    );
    let side = start_sidecar(&cfg, &[]).await;
    let base = format!("http://{}", side.addr);
    wait_status(&format!("{base}/readyz"), 200).await;
    let upstream = upstream(&base).await;

    let r = auth(
        &base,
        "/orders/7",
        None,
        &[("cookie", "SID=s3ss10n-0f-m4ll0ry")],
    )
    .await;
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "x-auth-subject"), "alice");
    assert_eq!(header(&r, "x-auth-issuer"), "", "the legacy endpoint's iss");
    assert_eq!(header(&r, "x-auth-claim-iss"), "", "a mapped iss claim");
    assert_eq!(header(&r, "x-auth-tenant"), "acme", "other claims pass");
    assert_eq!(header(&r, "x-auth-authenticator"), "legacy");
    let c: Map<String, Value> = upstream.validate_json(&internal(&r)).unwrap().claims;
    assert_eq!(c["authn"], "legacy");
    assert!(c.get("src_iss").is_none(), "{c:?}");

    // The same subject by JWT: the IdP's issuer, and `jwt`.
    let jwt = idp.token().audience("api").subject("alice").sign();
    let r = auth(&base, "/orders/7", Some(&jwt), &[]).await;
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "x-auth-issuer"), idp.issuer());
    assert_eq!(header(&r, "x-auth-authenticator"), "jwt");
}

/// Attack (item 7): on an anonymous pass, the internal token's header is
/// set empty like the identity headers, so a gateway forwarding it (Envoy's
/// `allowed_upstream_headers`) never passes a client-sent copy upstream.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_anonymous_pass_blanks_the_internal_token_and_the_authenticator() {
    let idp = TestIssuer::start().unwrap();
    let legacy = LegacyServer::start().await;
    let dir = Scratch::new("anonymous-blank");
    let key = dir.write("mint.pem", &mint_key_pem());
    for rest in [
        internal_token_section(&key),
        format!(
            "{}\n[legacy]\nurl = \"{}\"\ncookie = \"SID\"\n",
            internal_token_section(&key),
            legacy.url
        ),
    ] {
        let cfg = dir.write("tw.toml", &config_for(&[&idp], &rest));
        let side = start_sidecar(&cfg, &[]).await;
        let base = format!("http://{}", side.addr);
        let forged = [
            ("x-internal-token", "forged.internal.token"),
            ("x-auth-authenticator", "jwt"),
        ];
        let r = auth(&base, "/public/x", None, &forged).await;
        assert_eq!(r.status(), 200);
        assert_eq!(
            r.headers().get("x-internal-token").map(|v| v.as_bytes()),
            Some(&b""[..]),
            "the internal token's header is not blanked"
        );
        assert_eq!(header(&r, "x-auth-authenticator"), "");
        assert_eq!(header(&r, "x-auth-subject"), "");
    }
}

/// Item 5: the internal token never outlives the client's credential.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_internal_token_expires_no_later_than_the_clients_jwt() {
    let idp = TestIssuer::start().unwrap();
    let dir = Scratch::new("internal-exp");
    let key = dir.write("mint.pem", &mint_key_pem());
    let cfg = dir.write(
        "tw.toml",
        &config_for(&[&idp], &internal_token_section(&key)),
    );
    let side = start_sidecar(&cfg, &[]).await;
    let base = format!("http://{}", side.addr);
    wait_status(&format!("{base}/readyz"), 200).await;
    let upstream = upstream(&base).await;
    let short = idp
        .token()
        .audience("api")
        .subject("alice")
        .expires_in(20)
        .sign();
    let r = auth(&base, "/orders/7", Some(&short), &[]).await;
    assert_eq!(r.status(), 200);
    let c = upstream.validate_json(&internal(&r)).unwrap().claims;
    let original = upstream_exp(&short);
    assert!(
        c["exp"].as_i64().unwrap() <= original,
        "internal exp {} past the client's {original}",
        c["exp"]
    );
}

fn upstream_exp(jwt: &str) -> i64 {
    use base64::Engine as _;
    let payload = jwt.split('.').nth(1).unwrap();
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .unwrap();
    let v: Value = serde_json::from_slice(&bytes).unwrap();
    v["exp"].as_i64().unwrap()
}

/// Attack (review finding): the sidecar without a chain takes `Bearer`
/// alone, so a stolen DPoP-bound token (`cnf.jkt`) is refused there, never
/// passed as a bearer token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dpop_bound_token_sent_as_bearer_is_refused() {
    let idp = TestIssuer::start().unwrap();
    let dir = Scratch::new("dpop-as-bearer");
    let rules = "[[rule]]\npath = \"/*\"\n";
    let (_side, base) = sidecar_with(&idp, &dir, "", rules).await;
    let holder =
        tokenwarden::testing::TestKey::generate(tokenwarden::Algorithm::ES256, "holder").unwrap();
    let bound = idp
        .token()
        .audience("api")
        .subject("eve")
        .dpop_bound(&holder)
        .sign();
    let r = get(&format!("{base}/auth"), Some(&bound), "/orders").await;
    assert_eq!(
        r.status(),
        401,
        "a stolen DPoP-bound token passed as bearer"
    );
    let plain = idp.token().audience("api").subject("eve").sign();
    let r = get(&format!("{base}/auth"), Some(&plain), "/orders").await;
    assert_eq!(r.status(), 200);
}
