//! Shared fixtures: keys (generated once per test binary), claims, validators.
#![allow(
    dead_code,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    missing_docs
)]

use std::sync::OnceLock;

use serde_json::{Value, json};
use tokenwarden::testing::TestKey;
use tokenwarden::{Algorithm, FixedClock, KeySet, Validator, ValidatorBuilder};

pub const NOW: i64 = 1_700_000_000;
pub const ISS: &str = "https://idp.test";
pub const AUD: &str = "https://api.test";

/// One key per algorithm, kid = the algorithm's name.
pub fn key(alg: Algorithm) -> &'static TestKey {
    static KEYS: OnceLock<Vec<TestKey>> = OnceLock::new();
    let keys = KEYS.get_or_init(|| {
        Algorithm::ALL
            .iter()
            .map(|a| TestKey::generate(*a, a.as_str()).unwrap())
            .collect()
    });
    keys.iter().find(|k| k.alg() == alg).unwrap()
}

/// Claims that pass every default check at `NOW`.
pub fn claims() -> Value {
    json!({"iss": ISS, "aud": AUD, "sub": "alice", "iat": NOW - 10, "exp": NOW + 600})
}

pub fn keyset(keys: &[&TestKey]) -> KeySet {
    KeySet::from_jwks(tokenwarden::testing::jwks_json(keys).as_bytes()).unwrap()
}

/// A builder with issuer, audience, fixed clock and the given keys.
pub fn builder(keys: &[&TestKey]) -> ValidatorBuilder {
    Validator::builder()
        .issuer(ISS)
        .audience(AUD)
        .clock(FixedClock(NOW))
        .keys(keyset(keys))
}

pub fn validator(keys: &[&TestKey]) -> Validator {
    builder(keys).build().unwrap()
}

/// The error kind's name, or "ok".
pub fn outcome(v: &Validator, token: &str) -> &'static str {
    match v.validate_json(token) {
        Ok(_) => "ok",
        Err(e) => e.kind().as_str(),
    }
}

pub fn b64(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

pub fn unb64(s: &str) -> Vec<u8> {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(s)
        .unwrap()
}

#[cfg(feature = "actix")]
pub mod actix;
pub mod authn;
#[cfg(feature = "axum")]
pub mod axum_server;
pub mod dpop;
pub mod http_cases;
pub mod idp;
pub mod legacy;
pub mod redis;

/// Captures every `tracing` event on this thread (and so on a current-thread
/// runtime's tasks) until the guard drops.
pub fn capture_logs() -> (tracing::subscriber::DefaultGuard, LogBuffer) {
    let buf = LogBuffer::default();
    (capture_logs_into(&buf), buf)
}

/// Captures this thread's `tracing` events into `buf` (for servers that run
/// on threads of their own).
pub fn capture_logs_into(buf: &LogBuffer) -> tracing::subscriber::DefaultGuard {
    let buf = buf.clone();
    let sub = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(buf.clone())
        .finish();
    // While only one dispatcher exists, tracing-core decides a new callsite's
    // interest from the registering thread's default alone: a callsite first
    // reached on another test's thread would be cached as "never". A second,
    // permanent dispatcher makes it ask every dispatcher, ours included.
    static SECOND: std::sync::OnceLock<tracing::Dispatch> = std::sync::OnceLock::new();
    SECOND.get_or_init(|| tracing::Dispatch::new(tracing::subscriber::NoSubscriber::default()));
    let guard = tracing::subscriber::set_default(sub);
    tracing::callsite::rebuild_interest_cache();
    guard
}

#[derive(Clone, Default)]
pub struct LogBuffer(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl LogBuffer {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

impl std::io::Write for LogBuffer {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogBuffer {
    type Writer = LogBuffer;
    fn make_writer(&'a self) -> LogBuffer {
        self.clone()
    }
}
pub mod sidecar;
pub mod tls;

/// Says that a test could not run, and why, where `cargo test` shows it.
///
/// The test harness captures `print!`/`eprint!` of passing tests, so a skip
/// said with `eprintln!` is never seen. This writes to the process's
/// standard error directly, past the capture: the line appears in the
/// runner's output as `SKIPPED: <test>: <why>`.
pub fn skipped(test: &str, why: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr().lock(), "SKIPPED: {test}: {why}");
}

/// The response's `WWW-Authenticate` challenge, or "" when it has none.
pub fn challenge_of(r: &reqwest::Response) -> String {
    r.headers()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default()
}
