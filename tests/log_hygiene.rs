//! Tokens are secrets: across a full run (valid, invalid, cached, key
//! rotation, unknown kid, IdP outage, through the middleware over real HTTP)
//! every `tracing` event at every level is captured, and none may carry a
//! token, a signature, a payload or key material, whole or in part.
#![cfg(all(feature = "testing", feature = "remote", feature = "axum"))]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod common;

use std::collections::HashSet;
use std::time::Duration;

use common::capture_logs;
use serde_json::json;
use tokenwarden::middleware::{BearerAuth, Scopes};
use tokenwarden::testing::{TestIssuer, TestKey};
use tokenwarden::{
    Algorithm, CacheConfig, Clock, KeySet, ManualClock, RemoteKeySet, SystemClock, Validator,
};

/// Shortest run of a secret that counts as leaked. Shorter runs of base64url
/// turn up by chance; 20 characters (120 bits) do not.
const WINDOW: usize = 20;

/// What must never appear in logs.
#[derive(Default)]
struct Secrets {
    /// Every `WINDOW`-long run of every secret text.
    windows: HashSet<String>,
}

impl Secrets {
    /// A token: itself, its payload and its signature. The header (alg,
    /// kid) is not secret and may be logged.
    fn token(&mut self, token: &str) {
        let mut parts = token.split('.');
        let (_header, payload, signature) = (parts.next(), parts.next(), parts.next());
        for part in [payload, signature].into_iter().flatten() {
            self.text(part);
        }
    }

    /// Notes `token` as a secret and hands it back.
    fn keep(&mut self, token: String) -> String {
        self.token(&token);
        token
    }

    /// Key material: every base64url member of a JWK but its name fields.
    fn jwk(&mut self, jwk: &serde_json::Value) {
        for (name, value) in jwk.as_object().unwrap() {
            if ["kty", "kid", "alg", "use", "crv", "e"].contains(&name.as_str()) {
                continue;
            }
            if let Some(s) = value.as_str() {
                self.text(s);
            }
        }
    }

    fn text(&mut self, s: &str) {
        let b = s.as_bytes();
        if b.len() < WINDOW {
            self.windows.insert(s.to_owned());
            return;
        }
        for w in b.windows(WINDOW) {
            self.windows.insert(String::from_utf8_lossy(w).into_owned());
        }
    }

    /// The log lines that carry any secret run.
    fn leaks(&self, logs: &str) -> Vec<String> {
        logs.lines()
            .filter(|line| {
                let b = line.as_bytes();
                b.windows(WINDOW.min(b.len().max(1)))
                    .any(|w| self.windows.contains(&*String::from_utf8_lossy(w)))
                    || self
                        .windows
                        .iter()
                        .any(|s| s.len() < WINDOW && line.contains(s.as_str()))
            })
            .map(|l| l.chars().take(200).collect())
            .collect()
    }
}

#[test]
fn the_checker_catches_every_kind_of_leak() {
    let key = TestKey::generate(Algorithm::HS256, "k1").unwrap();
    let token = key.token(&json!({"sub": "alice", "exp": 4_000_000_000_i64}));
    let mut secrets = Secrets::default();
    secrets.token(&token);
    secrets.jwk(&key.jwk());
    let signature = token.rsplit('.').next().unwrap();
    let payload = token.split('.').nth(1).unwrap();
    let secret_k = key.jwk()["k"].as_str().unwrap().to_owned();

    let log = |emit: &dyn Fn()| {
        let (guard, logs) = capture_logs();
        emit();
        drop(guard);
        logs.text()
    };
    let leaking: Vec<(&str, String)> = vec![
        (
            "whole token",
            log(&|| tracing::info!(token = %token, "got")),
        ),
        (
            "in a message",
            log(&|| tracing::warn!("refused Bearer {token} for bob")),
        ),
        (
            "signature part",
            log(&|| tracing::debug!(sig = &signature[..24], "bad")),
        ),
        (
            "payload part",
            log(&|| tracing::trace!("claims {}", &payload[5..30])),
        ),
        (
            "hmac secret",
            log(&|| tracing::error!(key = %secret_k, "loaded")),
        ),
    ];
    for (what, text) in &leaking {
        assert!(!text.is_empty(), "{what}: nothing captured");
        assert!(
            !secrets.leaks(text).is_empty(),
            "{what}: not caught: {text}"
        );
    }
    // What may be logged is not flagged: kid, issuer, error kind, subject.
    let fine = log(&|| {
        tracing::warn!(
            kid = "k1",
            iss = "https://idp.test",
            kind = "expired",
            sub = "alice",
            "refused"
        );
    });
    assert!(secrets.leaks(&fine).is_empty(), "{fine}");
}

/// An axum service behind the layer on 127.0.0.1; returns its base URL.
async fn serve(auth: BearerAuth) -> String {
    let app = axum::Router::new()
        .route("/", axum::routing::get(|| async { "hello" }))
        .layer(auth.layer());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    base
}

async fn status(client: &reqwest::Client, base: &str, token: Option<&str>) -> u16 {
    let mut req = client.get(base);
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    req.send().await.unwrap().status().as_u16()
}

// Current-thread: every task of the run (server, client, refreshes) logs on
// this thread, where the capture is.
#[tokio::test(flavor = "current_thread")]
async fn no_token_or_key_material_in_any_log_across_a_full_run() {
    let (guard, logs) = capture_logs();
    let mut secrets = Secrets::default();
    let idp = TestIssuer::builder()
        .algorithm(Algorithm::RS256)
        .start()
        .unwrap();
    let now = SystemClock.now();
    let clock = ManualClock::new(now);
    let keys = RemoteKeySet::builder()
        .discovery(idp.issuer())
        .allow_http_loopback(true)
        .timeout(Duration::from_millis(500))
        .clock(clock.clone())
        .build()
        .unwrap();
    keys.refresh().await.unwrap();
    let validator = Validator::builder()
        .issuer(idp.issuer())
        .audience("api")
        .keys(keys.clone())
        .build()
        .unwrap();
    let base = serve(BearerAuth::new(validator).require_scopes(Scopes::all(["read"]))).await;
    let client = reqwest::Client::new();

    // Valid, twice; then every kind of refusal.
    let good = secrets.keep(idp.token().audience("api").scope("read").sign());
    assert_eq!(status(&client, &base, Some(&good)).await, 200);
    assert_eq!(status(&client, &base, Some(&good)).await, 200);
    assert_eq!(status(&client, &base, None).await, 401);
    assert_eq!(status(&client, &base, Some("not-a-token")).await, 401);
    let expired = secrets.keep(idp.token().audience("api").scope("read").expired().sign());
    assert_eq!(status(&client, &base, Some(&expired)).await, 401);
    let elsewhere = secrets.keep(idp.token().audience("other").scope("read").sign());
    assert_eq!(status(&client, &base, Some(&elsewhere)).await, 401);
    let no_scope = secrets.keep(idp.token().audience("api").scope("write").sign());
    assert_eq!(status(&client, &base, Some(&no_scope)).await, 403);
    let (head, _) = good.rsplit_once('.').unwrap();
    let forged = secrets.keep(format!("{head}.{}", "A".repeat(342)));
    assert_eq!(status(&client, &base, Some(&forged)).await, 401);

    // Rotation: the new kid is unknown, fetched once, then valid.
    idp.rotate().unwrap();
    let rotated = secrets.keep(idp.token().audience("api").scope("read").sign());
    assert_eq!(status(&client, &base, Some(&rotated)).await, 200);

    // Outage: refreshes fail and are logged; known keys keep working.
    idp.set_available(false);
    clock.advance(3600);
    assert!(keys.refresh().await.is_err());
    let stranger = TestKey::generate(Algorithm::ES256, "never-published").unwrap();
    let unknown = secrets.keep(stranger.token(&json!({
        "iss": idp.issuer(), "aud": "api", "scope": "read", "exp": now + 60
    })));
    assert_eq!(status(&client, &base, Some(&unknown)).await, 401);
    assert_eq!(status(&client, &base, Some(&rotated)).await, 200);
    idp.set_available(true);

    // The core alone, HMAC with the cache: miss, hit, refusal.
    let hs = TestKey::generate(Algorithm::HS256, "hs").unwrap();
    secrets.jwk(&hs.jwk());
    let cached = Validator::builder()
        .issuer("iss")
        .audience("api")
        .keys(KeySet::from_jwks(hs.jwks_json().as_bytes()).unwrap())
        .cache(CacheConfig::default())
        .build()
        .unwrap();
    let t = secrets.keep(hs.token(&json!({"iss": "iss", "aud": "api", "exp": now + 60})));
    cached.validate_json(&t).unwrap();
    cached.validate_json(&t).unwrap();
    let wrong = secrets.keep(hs.token(&json!({"iss": "iss", "aud": "x", "exp": now + 60})));
    assert!(cached.validate_json(&wrong).is_err());

    for jwk in serde_json::from_str::<serde_json::Value>(&idp.jwks_json()).unwrap()["keys"]
        .as_array()
        .unwrap()
    {
        secrets.jwk(jwk);
    }
    drop(guard);
    let text = logs.text();
    check_run(&text, &secrets);
}

fn check_run(text: &str, secrets: &Secrets) {
    // The run was seen: without these the test could pass on empty logs.
    for expected in [
        "fetching discovery document",
        "key set fetched",
        "unknown kid; refreshing keys",
        "key set rotated",
        "key set fetch failed",
        "bearer token refused",
    ] {
        assert!(
            text.contains(expected),
            "no {expected:?} in the logs:\n{text}"
        );
    }
    let leaks = secrets.leaks(text);
    assert!(
        leaks.is_empty(),
        "secrets in the logs:\n{}",
        leaks.join("\n")
    );
}

/// serde's messages quote the value they refused; an error from
/// `validate::<C>` keeps the claim's name and the kind of mismatch only,
/// whichever path gave it (a fresh check, a cache hit, the custom-check
/// path), so that logging an error never logs a claim value.
#[test]
fn claim_values_never_appear_in_error_messages() {
    use serde::Deserialize;

    const SECRET: &str = "s3cr3t-SESSION-9f8e7d6c5b4a3f2e1d0c";
    const SECRET_NUMBER: u64 = 987_654_321_987_654_321;

    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct WantsNumber {
        session: u64,
    }
    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct WantsSmall {
        level: u8,
    }
    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    enum Role {
        Admin,
        User,
    }
    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct WantsRole {
        role: Role,
    }
    fn loud<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
        let s = String::deserialize(d)?;
        Err(serde::de::Error::custom(format!("cannot use {s}")))
    }
    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct Custom {
        #[serde(deserialize_with = "loud")]
        session: String,
    }
    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    #[serde(deny_unknown_fields)]
    struct Closed {
        iss: String,
    }

    let key = TestKey::generate(Algorithm::HS256, "k1").unwrap();
    let keys = || KeySet::from_jwks(key.jwks_json().as_bytes()).unwrap();
    let now = SystemClock.now();
    let build = |cache: bool, check: bool| {
        let mut b = Validator::builder()
            .issuer("iss")
            .audience("api")
            .keys(keys());
        if cache {
            b = b.cache(CacheConfig::default());
        }
        if check {
            b = b.check("always", |_| Ok(()));
        }
        b.build().unwrap()
    };
    let token = key.token(&json!({
        "iss": "iss", "aud": "api", "exp": now + 600,
        "session": SECRET, "level": SECRET_NUMBER, "role": SECRET,
        // A hostile member name: shown escaped, never as a line break.
        "x\nFORGED log line": 1,
    }));
    let mut secrets = Secrets::default();
    secrets.text(SECRET);
    secrets.text(&SECRET_NUMBER.to_string());
    let mut seen = String::new();
    let mut check = |what: &str, err: tokenwarden::Error, claim: &str, says: &[&str]| {
        let text = format!("{err}\n{err:?}");
        assert!(secrets.leaks(&text).is_empty(), "{what}: {text}");
        assert!(!text.contains("FORGED log line\n"), "{what}: {text}");
        assert_eq!(err.kind(), tokenwarden::ErrorKind::InvalidClaim, "{what}");
        assert!(text.contains(claim), "{what}: no {claim:?} in {text}");
        assert!(
            says.iter().any(|s| text.contains(s)),
            "{what}: none of {says:?} in {text}"
        );
        seen.push_str(&text);
    };
    for (cache, with_check) in [(false, false), (true, false), (false, true)] {
        let v = build(cache, with_check);
        // Twice: with the cache, the second answer is a hit.
        for round in 0..2 {
            if cache {
                v.validate_json(&token).unwrap();
            }
            let what = format!("cache {cache}, check {with_check}, round {round}");
            check(
                &what,
                v.validate::<WantsNumber>(&token).unwrap_err(),
                "session",
                &["invalid type: string, expected u64"],
            );
            check(
                &what,
                v.validate::<WantsSmall>(&token).unwrap_err(),
                "level",
                // serde_json with `arbitrary_precision` words it so when
                // reading from a `Value` (the custom-check path).
                &["invalid value: integer, expected u8", "invalid number"],
            );
            check(
                &what,
                v.validate::<WantsRole>(&token).unwrap_err(),
                "role",
                &["unknown variant"],
            );
            check(
                &what,
                v.validate::<Custom>(&token).unwrap_err(),
                "session",
                &["a value was refused"],
            );
            check(
                &what,
                v.validate::<Closed>(&token).unwrap_err(),
                "\"aud\"",
                &["unknown field"],
            );
        }
    }
    // A payload that is one JSON string: malformed, without the string.
    let raw = key.sign_raw(
        &json!({"alg": "HS256", "kid": "k1"}).to_string(),
        &format!("\"{SECRET}\""),
    );
    let err = build(false, false).validate_json(&raw).unwrap_err();
    let text = format!("{err}\n{err:?}");
    assert_eq!(err.kind(), tokenwarden::ErrorKind::Malformed);
    assert!(secrets.leaks(&text).is_empty(), "{text}");
    // And the same errors logged, as a service would, leak nothing either.
    let (guard, logs) = capture_logs();
    for line in seen.lines() {
        tracing::warn!(error = %line, "token refused");
    }
    drop(guard);
    let logged = logs.text();
    assert!(logged.contains("token refused"));
    assert!(secrets.leaks(&logged).is_empty(), "{logged}");
}

/// Each request through a layer runs in one `bearer_auth` span: a refusal
/// is logged at info inside it with its reason (and the error's text: the
/// audiences compared), a pass carries `sub` and `iss` into the handler's
/// events; the token appears nowhere.
#[tokio::test(flavor = "current_thread")]
async fn refusals_are_logged_at_info_in_a_request_span_without_the_token() {
    let (guard, logs) = capture_logs();
    let mut secrets = Secrets::default();
    let idp = TestIssuer::builder()
        .algorithm(Algorithm::ES256)
        .start()
        .unwrap();
    let keys = KeySet::from_jwks(idp.jwks_json().as_bytes()).unwrap();
    let validator = Validator::builder()
        .issuer(idp.issuer())
        .audience("api")
        .keys(keys)
        .build()
        .unwrap();
    let app = axum::Router::new()
        .route(
            "/",
            axum::routing::get(|| async {
                tracing::info!("in the handler");
                "hello"
            }),
        )
        .layer(BearerAuth::new(validator).layer());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    let client = reqwest::Client::new();

    let elsewhere = secrets.keep(idp.token().audience("other-api").sign());
    assert_eq!(status(&client, &base, Some(&elsewhere)).await, 401);
    let good = secrets.keep(idp.token().audience("api").subject("alice").sign());
    assert_eq!(status(&client, &base, Some(&good)).await, 200);
    drop(guard);
    let text = logs.text();

    let refused = text
        .lines()
        .find(|l| l.contains("bearer token refused"))
        .unwrap_or_else(|| panic!("no refusal logged:\n{text}"));
    assert!(refused.contains(" INFO "), "{refused}");
    assert!(
        refused.contains("bearer_auth{"),
        "not in the span: {refused}"
    );
    assert!(
        refused.contains("verdict=\"invalid_audience\""),
        "{refused}"
    );
    assert!(refused.contains("reason=\"invalid_audience\""), "{refused}");
    assert!(
        refused.contains(r#"found ["other-api"], expected ["api"]"#),
        "{refused}"
    );
    let handler = text
        .lines()
        .find(|l| l.contains("in the handler"))
        .unwrap_or_else(|| panic!("no handler event:\n{text}"));
    assert!(handler.contains("sub=\"alice\""), "{handler}");
    assert!(
        handler.contains(&format!("iss={:?}", idp.issuer())),
        "{handler}"
    );
    assert!(handler.contains("verdict=\"ok\""), "{handler}");
    let leaks = secrets.leaks(&text);
    assert!(
        leaks.is_empty(),
        "secrets in the logs:\n{}",
        leaks.join("\n")
    );
}

/// Item 12 of issue 15: when the caller's claims type refuses a token, the
/// error names the claim (a nested one by its top-level claim), never its
/// value, in `Display` and in `Debug`.
#[test]
fn a_claims_type_refusal_names_the_claim_never_its_value() {
    use serde::Deserialize;

    const SECRET: &str = "pin-7Hq2-x9Zr-SECRET-0042";

    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct Card {
        pin: u32,
    }
    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct MyClaims {
        sub: String,
        card: Card,
    }

    let key = TestKey::generate(Algorithm::HS256, "k1").unwrap();
    let v = Validator::builder()
        .issuer("iss")
        .audience("api")
        .keys(KeySet::from_jwks(key.jwks_json().as_bytes()).unwrap())
        .build()
        .unwrap();
    let token = key.token(&json!({
        "iss": "iss", "aud": "api", "exp": SystemClock.now() + 600,
        "sub": "alice", "card": {"pin": SECRET},
    }));
    let err = v.validate::<MyClaims>(&token).unwrap_err();
    assert_eq!(err.kind(), tokenwarden::ErrorKind::InvalidClaim);
    for text in [err.to_string(), format!("{err:?}")] {
        assert!(text.contains("\"card\""), "the claim is named: {text}");
        assert!(text.contains("invalid type"), "{text}");
        assert!(!text.contains(SECRET), "the value leaked: {text}");
        assert!(!text.contains("SECRET"), "part of the value leaked: {text}");
    }
}

/// An API key's secret, through a chain layer over real HTTP: accepted,
/// refused with a wrong secret (past the suspicious-failures threshold),
/// expired, malformed and sent with a bearer token at once: no log line at
/// any level carries any 20-character run of a secret (its id may be
/// logged: it is the lookup handle, and no secret).
#[cfg(feature = "api-keys")]
#[tokio::test(flavor = "current_thread")]
async fn an_api_keys_secret_is_in_no_log_line_through_the_chain_layer() {
    use common::authn::{add_key, api_keys};
    use tokenwarden::authn::Chain;
    use tokenwarden::authn::api_key::MemoryStore;

    let (guard, logs) = capture_logs();
    let mut secrets = Secrets::default();
    let store = std::sync::Arc::new(MemoryStore::new());
    let clock = ManualClock::new(common::NOW);
    let good = add_key(&store, "partner", &["read"]);
    let mut old = add_key(&store, "old", &["read"]);
    old.record.expires_at = Some(common::NOW - 1);
    store.insert(old.record.clone());
    // The secret: the 43 characters after `tw_<env>_<id>_`.
    for k in [&good, &old] {
        let key = k.expose_key();
        secrets.text(&key[key.len() - 43..]);
    }
    let chain = Chain::new().api_key(api_keys(&store, &clock));
    let base = serve(BearerAuth::from_chain(chain).require_scopes(Scopes::all(["read"]))).await;
    let client = reqwest::Client::new();
    let send = |headers: Vec<(&'static str, String)>| {
        let mut req = client.get(&base);
        for (k, v) in headers {
            req = req.header(k, v);
        }
        async move { req.send().await.unwrap().status().as_u16() }
    };
    let key = good.expose_key().to_owned();
    assert_eq!(send(vec![("x-api-key", key.clone())]).await, 200);
    assert_eq!(
        send(vec![("authorization", format!("ApiKey {key}"))]).await,
        200
    );
    let mut wrong = key.clone();
    let last = wrong.pop().unwrap();
    wrong.push(if last == 'A' { 'B' } else { 'A' });
    secrets.text(&wrong[wrong.len() - 43..]);
    for _ in 0..tokenwarden::authn::api_key::SUSPICIOUS_FAILURES + 1 {
        assert_eq!(send(vec![("x-api-key", wrong.clone())]).await, 401);
    }
    assert_eq!(
        send(vec![("x-api-key", old.expose_key().to_owned())]).await,
        401
    );
    assert_eq!(send(vec![("x-api-key", format!("{key}x"))]).await, 401);
    assert_eq!(
        send(vec![("x-api-key", key.clone()), ("x-api-key", key.clone())]).await,
        400
    );
    drop(guard);
    let text = logs.text();
    // The run was seen: without these the test could pass on empty logs.
    for expected in ["suspicious", "refused"] {
        assert!(
            text.contains(expected),
            "no {expected:?} in the logs:\n{text}"
        );
    }
    let leaks = secrets.leaks(&text);
    assert!(
        leaks.is_empty(),
        "secrets in the logs:\n{}",
        leaks.join("\n")
    );
}
