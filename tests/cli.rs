//! The `tokenwarden verify` command, run as a process on the shipped examples.
#![cfg(feature = "cli")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::io::Write;
use std::process::{Command, Output, Stdio};

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_tokenwarden");

fn verify(extra: &[&str], stdin: Option<&str>) -> (i32, Value) {
    let mut cmd = Command::new(BIN);
    cmd.args(["verify", "--jwks", "examples/data/jwks.json"])
        .args([
            "--issuer",
            "https://idp.example.com",
            "--audience",
            "https://api.example.com",
        ])
        .args(extra)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    let mut input = child.stdin.take().unwrap();
    input.write_all(stdin.unwrap_or("").as_bytes()).unwrap();
    drop(input);
    let Output { status, stdout, .. } = child.wait_with_output().unwrap();
    let out = String::from_utf8(stdout).unwrap();
    assert_eq!(out.lines().count(), 1, "exactly one line: {out}");
    (status.code().unwrap(), serde_json::from_str(&out).unwrap())
}

fn example(name: &str) -> String {
    std::fs::read_to_string(format!("examples/data/{name}"))
        .unwrap()
        .trim()
        .to_owned()
}

#[test]
fn valid_token_prints_header_and_claims_and_exits_0() {
    let (code, out) = verify(&[&example("valid.jwt")], None);
    assert_eq!(code, 0, "{out}");
    assert_eq!(out["valid"], true);
    assert_eq!(out["header"]["kid"], "demo-ed25519");
    assert_eq!(out["claims"]["sub"], "alice");
}

#[test]
fn valid_line_starts_with_valid() {
    let out = Command::new(BIN)
        .args([
            "verify",
            "--jwks",
            "examples/data/jwks.json",
            "--issuer",
            "https://idp.example.com",
        ])
        .args([
            "--audience",
            "https://api.example.com",
            &example("valid-rs256.jwt"),
        ])
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&out.stdout)
            .starts_with(r#"{"valid":true,"header":{"alg":"RS256""#)
    );
}

#[test]
fn expired_token_from_stdin_exits_1_with_kind() {
    let (code, out) = verify(&[], Some(&format!("{}\n", example("expired.jwt"))));
    assert_eq!(code, 1, "{out}");
    assert_eq!(out["valid"], false);
    assert_eq!(out["error"]["kind"], "expired");
}

#[test]
fn now_flag_checks_as_of_a_time() {
    let (code, out) = verify(&["--now", "1699993000", &example("expired.jwt")], None);
    assert_eq!(code, 0, "{out}");
}

#[test]
fn wrong_audience_and_algorithm_list_are_enforced() {
    let (code, out) = verify(&["--algorithms", "RS256", &example("valid.jwt")], None);
    assert_eq!(
        (code, out["error"]["kind"].as_str()),
        (1, Some("algorithm_not_allowed"))
    );
    let (code, out) = verify(&["--type", "at+jwt", &example("valid.jwt")], None);
    assert_eq!(
        (code, out["error"]["kind"].as_str()),
        (1, Some("invalid_type"))
    );
    let (code, out) = verify(&["--require", "client_id", &example("valid.jwt")], None);
    assert_eq!(
        (code, out["error"]["kind"].as_str()),
        (1, Some("missing_claim"))
    );
}

#[test]
fn unreadable_or_invalid_jwks_exits_2_keys_unavailable() {
    for jwks in ["does/not/exist.json", "README.md"] {
        let out = Command::new(BIN)
            .args([
                "verify",
                "--jwks",
                jwks,
                "--issuer",
                "i",
                "--audience",
                "a",
                "x.y.z",
            ])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2));
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(v["error"]["kind"], "keys_unavailable");
    }
}

#[test]
fn usage_errors_exit_2() {
    let out = Command::new(BIN)
        .args(["verify", "--jwks", "examples/data/jwks.json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let (code, out) = verify(&["--algorithms", "none", "x.y.z"], None);
    assert_eq!((code, out["error"]["kind"].as_str()), (2, Some("usage")));
}

#[test]
fn garbage_token_exits_1_malformed() {
    let (code, out) = verify(&["not-a-token"], None);
    assert_eq!(
        (code, out["error"]["kind"].as_str()),
        (1, Some("malformed"))
    );
}

mod common;

use common::idp::{Idp, Mode};
use tokenwarden::testing::TestKey;

/// Runs the command against a loopback IdP from a blocking thread.
async fn verify_remote(flags: Vec<String>) -> (i32, Value) {
    tokio::task::spawn_blocking(move || {
        let out = Command::new(BIN)
            .arg("verify")
            .args(&flags)
            .output()
            .unwrap();
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        (out.status.code().unwrap(), v)
    })
    .await
    .unwrap()
}

fn idp_token(k: &TestKey, idp: &Idp) -> String {
    k.token(&serde_json::json!({"iss": idp.issuer(), "aud": "api", "sub": "carol", "exp": 4_102_444_800u64}))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jwks_url_and_discovery_with_allow_http() {
    let k = TestKey::generate(tokenwarden::Algorithm::ES256, "k1").unwrap();
    let idp = Idp::start(&[&k]).await;
    let token = idp_token(&k, &idp);
    let base = vec![
        "--issuer".to_owned(),
        idp.issuer(),
        "--audience".into(),
        "api".into(),
    ];
    let mut by_url = vec!["--jwks".to_owned(), idp.jwks_url(), "--allow-http".into()];
    by_url.extend(base.clone());
    by_url.push(token.clone());
    let (code, out) = verify_remote(by_url).await;
    assert_eq!(code, 0, "{out}");
    assert_eq!(out["claims"]["sub"], "carol");
    let mut by_discovery = vec![
        "--discovery".to_owned(),
        idp.issuer(),
        "--allow-http".into(),
    ];
    by_discovery.extend(base);
    by_discovery.push(token);
    let (code, out) = verify_remote(by_discovery).await;
    assert_eq!(code, 0, "{out}");
    assert_eq!(idp.discovery_hits(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_http_needs_allow_http_and_outage_exits_2() {
    let k = TestKey::generate(tokenwarden::Algorithm::ES256, "k1").unwrap();
    let idp = Idp::start(&[&k]).await;
    let token = idp_token(&k, &idp);
    let args = |extra: &[&str]| {
        let mut v: Vec<String> = vec![
            "--jwks".into(),
            idp.jwks_url(),
            "--issuer".into(),
            idp.issuer(),
        ];
        v.extend(["--audience".to_owned(), "api".to_owned()]);
        v.extend(extra.iter().map(|s| s.to_string()));
        v.push(token.clone());
        v
    };
    let (code, out) = verify_remote(args(&[])).await;
    assert_eq!(
        (code, out["error"]["kind"].as_str()),
        (2, Some("usage")),
        "{out}"
    );
    assert_eq!(idp.jwks_hits(), 0);
    idp.set_mode(Mode::Status(500));
    let (code, out) = verify_remote(args(&["--allow-http"])).await;
    assert_eq!(
        (code, out["error"]["kind"].as_str()),
        (2, Some("keys_unavailable")),
        "{out}"
    );
}
