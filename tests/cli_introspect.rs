//! `tokenwarden verify --introspect`: an opaque token judged by the test
//! issuer's real loopback `/introspect`, run as a process. Exit status as
//! for JWTs: 0 the principal, 1 a refused token, 2 usage or the endpoint
//! unavailable (our client credentials refused included).
#![cfg(all(feature = "cli", feature = "testing"))]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod common;

use std::process::Command;

use common::sidecar::{Scratch, binary};
use serde_json::Value;
use tokenwarden::testing::{IntrospectionOutage, TestIssuer};

const CLIENT: &str = "cli";
const SECRET: &str = "s3cret-Pq7Wm2Lx9Kd4Rz8Vb1";

/// Runs `verify --introspect` against `idp` with the secret in a file:
/// exit code, the one JSON line, stderr.
fn introspect(idp: &TestIssuer, secret: &str, extra: &[&str]) -> (i32, Value, String) {
    let dir = Scratch::new("cli-introspect");
    let file = dir.write("secret", &format!("{secret}\n"));
    let out = Command::new(binary())
        .args(["verify", "--allow-http", "--introspect"])
        .arg(idp.introspection_url())
        .args(["--client-id", CLIENT, "--client-secret-file"])
        .arg(&file)
        .args(extra)
        .output()
        .unwrap();
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert_eq!(stdout.lines().count(), 1, "exactly one line: {stdout}");
    (
        out.status.code().unwrap(),
        serde_json::from_str(&stdout).unwrap(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn idp() -> TestIssuer {
    let idp = TestIssuer::start().unwrap();
    idp.introspection_client_secret(CLIENT, SECRET);
    idp
}

#[test]
fn an_active_opaque_token_prints_its_principal_and_exits_0() {
    let idp = idp();
    let token = idp
        .opaque_token()
        .subject("alice")
        .audience("api")
        .scope("orders:read")
        .issue();
    let (code, out, err) = introspect(
        &idp,
        SECRET,
        &["--audience", "api", "--issuer", idp.issuer(), &token],
    );
    assert_eq!(code, 0, "{out}");
    assert!(!err.contains("warning"), "{err}");
    assert_eq!(out["valid"], true);
    assert_eq!(out["principal"]["subject"], "alice");
    assert_eq!(out["principal"]["authenticator"], "introspection");
    assert_eq!(
        out["principal"]["scopes"],
        serde_json::json!(["orders:read"])
    );
    assert_eq!(out["principal"]["claims"]["aud"], "api");
    // client_secret_post works too; without --audience, a warning that
    // the audience went unchecked.
    let (code, out, err) = introspect(
        &idp,
        SECRET,
        &["--client-auth", "client_secret_post", &token],
    );
    assert_eq!(code, 0, "{out}");
    assert!(
        err.contains("warning: --introspect without --audience"),
        "{err}"
    );
}

#[test]
fn revoked_expired_and_other_audience_exit_1_with_a_kind() {
    let idp = idp();
    let revoked = idp.opaque_token().subject("a").audience("api").issue();
    idp.revoke(&revoked);
    let expired = idp
        .opaque_token()
        .subject("a")
        .audience("api")
        .expired()
        .issue();
    let other = idp.opaque_token().subject("a").audience("billing").issue();
    for (token, kind) in [
        (&revoked, "inactive"),
        (&expired, "expired"),
        (&other, "audience"),
    ] {
        let (code, out, _) = introspect(&idp, SECRET, &["--audience", "api", token]);
        assert_eq!(code, 1, "{kind}: {out}");
        assert_eq!(out["valid"], false);
        let got = out["error"]["kind"].as_str().unwrap();
        assert!(got.contains(kind), "{kind}: {out}");
    }
}

/// Our client secret refused, or the endpoint down: exit 2 (trouble, not
/// an invalid token), and neither the token nor the secret printed.
#[test]
fn a_refused_client_secret_or_an_outage_exits_2_and_prints_no_secret() {
    let idp = idp();
    let token = idp.opaque_token().subject("a").audience("api").issue();
    let (code, out, err) = introspect(&idp, "wrong-secret-Zz9", &[&token]);
    assert_eq!(code, 2, "{out}");
    assert_eq!(out["error"]["kind"], "introspection_client_rejected");
    idp.set_introspection_outage(Some(IntrospectionOutage::Status(500)));
    let (code, out, err2) = introspect(&idp, SECRET, &[&token]);
    assert_eq!(code, 2, "{out}");
    assert_eq!(out["error"]["kind"], "introspection_unavailable");
    for text in [out.to_string(), err, err2] {
        assert!(!text.contains(&token) && !text.contains(SECRET), "{text}");
    }
}

#[test]
fn introspect_usage_errors_exit_2() {
    // --introspect without the client, or a secret file that is not one.
    let out = Command::new(binary())
        .args([
            "verify",
            "--introspect",
            "https://idp.example/introspect",
            "t",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let idp = idp();
    let (code, out, _) = introspect(&idp, "", &["x"]);
    assert_eq!(code, 2, "{out}");
    assert_eq!(out["error"]["kind"], "usage");
    assert!(
        out["error"]["message"]
            .as_str()
            .unwrap()
            .contains("is empty")
    );
}
