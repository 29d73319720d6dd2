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
