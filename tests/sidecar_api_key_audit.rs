//! `tokenwarden serve` with `[api_keys]`: the audit log names the API key's
//! id on a pass and on a refusal, never its secret; five wrong secrets for
//! one id are logged as suspicious.
#![cfg(all(feature = "cli", feature = "testing"))]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod common;

use common::sidecar::*;
use tokenwarden::authn::api_key::NewApiKey;
use tokenwarden::testing::TestIssuer;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_lines_name_the_api_key_id_never_the_secret() {
    let idp = TestIssuer::start().unwrap();
    let dir = Scratch::new("api-key-audit");
    let mut key = NewApiKey::generate("live", "billing script").unwrap();
    key.record.scopes = vec!["orders:read".into()];
    let file = dir.write(
        "keys.json",
        &serde_json::json!({ "keys": [&key.record] }).to_string(),
    );
    let cfg = dir.write(
        "tw.toml",
        &format!(
            "{}\n[api_keys]\nfile = {:?}\nheader = \"X-Api-Key\"\n",
            config(idp.issuer(), RULES),
            file.display().to_string()
        ),
    );
    let mut side = start_sidecar(&cfg, &["--json-logs"]).await;
    let mut logs = side.stderr_lines();
    let base = format!("http://{}", side.addr);
    wait_status(&format!("{base}/readyz"), 200).await;
    let with_key = |k: String| {
        let base = base.clone();
        async move {
            let headers: [(&str, &[u8]); 3] = [
                ("x-original-method", b"GET"),
                ("x-original-uri", b"/orders/7"),
                ("x-api-key", k.as_bytes()),
            ];
            ask(&base, "/auth", reqwest::Method::GET, None, &headers)
                .await
                .status()
                .as_u16()
        }
    };
    let secret = key.expose_key().to_owned();
    let id = key.record.id.clone();
    let (head, last) = secret.split_at(secret.len() - 1);
    let wrong = format!("{head}{}", if last == "A" { "B" } else { "A" });

    assert_eq!(with_key(secret.clone()).await, 200);
    for _ in 0..5 {
        assert_eq!(with_key(wrong.clone()).await, 401);
    }
    assert!(logs.wait_for("suspicious").await, "{:?}", logs.seen);
    assert!(
        logs.wait_for("\"result\":\"wrong_secret\"").await,
        "{:?}",
        logs.seen
    );
    let seen = logs.drain().to_vec();
    let allow = seen
        .iter()
        .find(|l| l.contains("\"decision\":\"allow\""))
        .expect("an allow line");
    assert!(allow.contains(&format!("\"key_id\":\"{id}\"")), "{allow}");
    let denials: Vec<&String> = seen
        .iter()
        .filter(|l| l.contains("\"result\":\"wrong_secret\""))
        .collect();
    assert!(!denials.is_empty());
    for deny in denials {
        assert!(deny.contains(&format!("\"key_id\":\"{id}\"")), "{deny}");
    }
    let suspicious = seen.iter().find(|l| l.contains("suspicious")).unwrap();
    assert!(suspicious.contains(&id), "{suspicious}");
    let (_, secret_part) = secret.rsplit_once('_').unwrap();
    let (_, wrong_part) = wrong.rsplit_once('_').unwrap();
    let text = seen.join("\n");
    assert!(!text.contains(secret_part), "an API key secret in the logs");
    assert!(!text.contains(wrong_part), "a wrong secret in the logs");
}
