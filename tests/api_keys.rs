//! API keys: format, digest compare, stores (memory, file, yours), rotation,
//! expiry, disabled keys, usage, and the secret kept out of every log.
#![cfg(all(feature = "testing", feature = "api-keys"))]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod common;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Waker};

use common::NOW;
use common::authn::{add_key, api_key_header, api_keys};
use tokenwarden::ManualClock;
use tokenwarden::authn::api_key::{
    ApiKeyAuthenticator, ApiKeyRecord, FileStore, KeyStore, KeyUsage, MemoryStore, NewApiKey,
    StoreError,
};
use tokenwarden::authn::{BoxFuture, Chain, Principal, Refusal, RequestView};

type Headers = Vec<(String, String)>;

/// A chain's judgement in flight.
type Judging<'a> = dyn Future<Output = Result<Principal, Refusal>> + 'a;

async fn run(chain: &Chain, headers: &Headers) -> Result<Principal, Refusal> {
    chain
        .authenticate(&RequestView::new("GET", "/", headers))
        .await
}

fn memory_chain(store: &Arc<MemoryStore>, clock: &ManualClock) -> Chain {
    Chain::new().api_key(api_keys(store, clock))
}

/// The refusal's `(status, kind, description)`.
fn refused(r: Result<Principal, Refusal>) -> (u16, &'static str, String) {
    let r = r.unwrap_err();
    (r.status(), r.kind(), r.description().to_owned())
}

/// The key with its secret's last character changed.
fn wrong_secret(key: &str) -> String {
    let mut k = key.to_owned();
    let last = k.pop().unwrap();
    k.push(if last == 'a' { 'b' } else { 'a' });
    k
}

#[test]
fn api_key_digests_are_compared_in_constant_time() {
    // The digest comparison is the crypto backend's constant-time compare
    // (`crypto::digests_equal`, itself pinned by
    // `crypto::tests::api_key_digests_are_compared_in_constant_time`), and
    // the only comparison of a digest in the authenticator.
    let format = include_str!("../src/authn/api_key/format.rs");
    let body = &format[format.find("pub(crate) fn matches").unwrap()..];
    let body = &body[..body.find("\n    }\n").unwrap()];
    assert!(
        body.contains("crypto::digests_equal(&self.0, &other.0)"),
        "{body}"
    );
    let authn = include_str!("../src/authn/api_key/mod.rs");
    assert!(authn.contains("if !digest.matches(&record.digest)"));
    assert!(!authn.contains("digest =="), "no digest compared with ==");
    assert!(!authn.contains("== record.digest"));
    // SecretDigest has no PartialEq a caller could reach for by mistake in
    // the authenticator (it has one for tests and stores; the pin above
    // keeps the authenticator on `matches`).
}

#[tokio::test]
async fn a_valid_key_authenticates_from_either_location() {
    let store = Arc::new(MemoryStore::new());
    let clock = ManualClock::new(NOW);
    let new = add_key(&store, "exporter", &["reports:read"]);
    let chain = memory_chain(&store, &clock);
    assert!(run(&chain, &api_key_header(&new)).await.is_ok());
    let h = vec![("X-Api-Key".to_string(), format!(" {} ", new.expose_key()))];
    assert_eq!(run(&chain, &h).await.unwrap().subject(), "exporter");
    let h = vec![(
        "authorization".to_string(),
        format!("apikey  {}", new.expose_key()),
    )];
    assert!(run(&chain, &h).await.is_ok());
}

#[tokio::test]
async fn an_unknown_id_is_refused() {
    let store = Arc::new(MemoryStore::new());
    let clock = ManualClock::new(NOW);
    let new = add_key(&store, "exporter", &[]);
    store.remove(&new.record.id);
    let r = run(&memory_chain(&store, &clock), &api_key_header(&new)).await;
    assert_eq!(refused(r), (401, "unknown_key", "invalid API key".into()));
}

#[tokio::test]
async fn a_wrong_secret_is_refused() {
    let store = Arc::new(MemoryStore::new());
    let clock = ManualClock::new(NOW);
    let new = add_key(&store, "exporter", &[]);
    let h = vec![(
        "authorization".to_string(),
        format!("ApiKey {}", wrong_secret(new.expose_key())),
    )];
    let r = run(&memory_chain(&store, &clock), &h).await;
    // The same answer as an unknown id: the client learns nothing of ids.
    assert_eq!(refused(r), (401, "wrong_secret", "invalid API key".into()));
    let r = run(&memory_chain(&store, &clock), &h).await.unwrap_err();
    assert_eq!(
        r.challenges("api"),
        ["ApiKey realm=\"api\", error=\"invalid_token\", error_description=\"invalid API key\""]
    );
}

#[tokio::test]
async fn an_expired_key_is_refused_from_its_expiry_on() {
    let store = Arc::new(MemoryStore::new());
    let clock = ManualClock::new(NOW);
    let new = add_key(&store, "exporter", &[]);
    let chain = memory_chain(&store, &clock);
    clock.set(NOW + 3599);
    assert!(run(&chain, &api_key_header(&new)).await.is_ok());
    clock.set(NOW + 3600);
    let r = run(&chain, &api_key_header(&new)).await;
    assert_eq!(
        refused(r),
        (401, "expired", "the API key has expired".into())
    );
}

#[tokio::test]
async fn a_disabled_key_is_refused() {
    let store = Arc::new(MemoryStore::new());
    let clock = ManualClock::new(NOW);
    let new = add_key(&store, "exporter", &[]);
    let mut record = new.record.clone();
    record.disabled = true;
    store.insert(record);
    let r = run(&memory_chain(&store, &clock), &api_key_header(&new)).await;
    assert_eq!(
        refused(r),
        (401, "disabled", "the API key is disabled".into())
    );
}

#[tokio::test]
async fn rotation_keeps_both_keys_valid_until_the_old_ones_expiry() {
    let store = Arc::new(MemoryStore::new());
    let clock = ManualClock::new(NOW);
    let old = add_key(&store, "exporter", &["reports:read"]);
    // Rotation: a new key for the same holder; the old one keeps its expiry
    // (NOW + 3600), the new one lasts longer.
    let mut new = NewApiKey::generate("live", "exporter").unwrap();
    new.record.scopes = old.record.scopes.clone();
    new.record.expires_at = Some(NOW + 90 * 86_400);
    store.insert(new.record.clone());
    let chain = memory_chain(&store, &clock);

    clock.set(NOW + 3599);
    let a = run(&chain, &api_key_header(&old)).await.unwrap();
    let b = run(&chain, &api_key_header(&new)).await.unwrap();
    assert_eq!((a.subject(), a.scopes()), (b.subject(), b.scopes()));
    clock.set(NOW + 3600);
    assert_eq!(
        refused(run(&chain, &api_key_header(&old)).await).1,
        "expired"
    );
    assert!(run(&chain, &api_key_header(&new)).await.is_ok());
}

#[tokio::test]
async fn two_api_keys_are_an_invalid_request() {
    let store = Arc::new(MemoryStore::new());
    let clock = ManualClock::new(NOW);
    let a = add_key(&store, "a", &[]);
    let b = add_key(&store, "b", &[]);
    let chain = memory_chain(&store, &clock);
    let two_headers: Headers = vec![
        ("x-api-key".into(), a.expose_key().into()),
        ("x-api-key".into(), b.expose_key().into()),
    ];
    let mut two_places = api_key_header(&a);
    two_places.push(("x-api-key".into(), b.expose_key().into()));
    let mut two_auth = api_key_header(&a);
    two_auth.extend(api_key_header(&b));
    for h in [two_headers, two_places, two_auth] {
        let r = run(&chain, &h).await.unwrap_err();
        assert_eq!((r.status(), r.error()), (400, Some("invalid_request")));
    }
}

#[tokio::test]
async fn hostile_key_values_are_refused_without_a_lookup() {
    let store = Arc::new(MemoryStore::new());
    let clock = ManualClock::new(NOW);
    let new = add_key(&store, "a", &[]);
    let chain = memory_chain(&store, &clock);
    let key = new.expose_key();
    let (prefix, secret) = key.rsplit_once('_').unwrap();
    let cases: Vec<(Vec<u8>, u16)> = vec![
        (format!("{key}\u{e9}").into_bytes(), 400),
        (format!("{key}\0").into_bytes(), 400),
        (format!("{key}{}", "a".repeat(200)).into_bytes(), 400),
        (format!("{prefix}_{secret}_").into_bytes(), 401),
        (format!("{prefix}__{secret}").into_bytes(), 401),
        (format!("{prefix}_{}", &secret[1..]).into_bytes(), 401),
        (key.replacen("tw_", "TW_", 1).into_bytes(), 401),
        (b"tw_live_../../etc_x".to_vec(), 401),
    ];
    for (value, status) in cases {
        let h: Vec<(&str, &[u8])> = vec![("x-api-key", &value)];
        let r = chain
            .authenticate(&RequestView::new("GET", "/", &h))
            .await
            .unwrap_err();
        assert_eq!(r.status(), status, "{}", String::from_utf8_lossy(&value));
    }
    // Nothing above was counted against the real key.
    assert_eq!(
        api_keys(&store, &clock).usage(&new.record.id),
        KeyUsage::default()
    );
}

#[tokio::test]
async fn a_test_key_is_refused_where_only_live_keys_are_accepted() {
    let store = Arc::new(MemoryStore::new());
    let mut new = NewApiKey::generate("test", "ci").unwrap();
    new.record.expires_at = None;
    store.insert(new.record.clone());
    let chain = Chain::new().api_key(ApiKeyAuthenticator::memory(store.clone()).env("live"));
    let r = run(&chain, &api_key_header(&new)).await;
    assert_eq!(refused(r).1, "wrong_environment");
    let chain = Chain::new().api_key(ApiKeyAuthenticator::memory(store).env("test"));
    assert!(run(&chain, &api_key_header(&new)).await.is_ok());
}

/// The environment is the client's text too: only the digest binds it to
/// the key. A `test` key rewritten as `live` must not pass a live service.
#[tokio::test]
async fn a_test_key_rewritten_as_live_is_refused() {
    let store = Arc::new(MemoryStore::new());
    let mut new = NewApiKey::generate("test", "ci").unwrap();
    new.record.expires_at = None;
    store.insert(new.record.clone());
    let rewritten = new.expose_key().replacen("tw_test_", "tw_live_", 1);
    assert_ne!(rewritten, new.expose_key());
    let chain = Chain::new().api_key(
        ApiKeyAuthenticator::memory(store)
            .header("X-Api-Key")
            .unwrap()
            .env("live"),
    );
    let headers = vec![("x-api-key".to_owned(), rewritten)];
    assert_eq!(refused(run(&chain, &headers).await).1, "wrong_secret");
}

#[tokio::test]
async fn usage_counts_requests_refusals_and_last_use_per_id() {
    let store = Arc::new(MemoryStore::new());
    let clock = ManualClock::new(NOW);
    let new = add_key(&store, "a", &[]);
    let keys = api_keys(&store, &clock);
    let chain = Chain::new().api_key(keys.clone());
    run(&chain, &api_key_header(&new)).await.unwrap();
    clock.advance(5);
    let bad = vec![("x-api-key".to_string(), wrong_secret(new.expose_key()))];
    run(&chain, &bad).await.unwrap_err();
    let u = keys.usage(&new.record.id);
    assert_eq!((u.requests, u.refusals, u.last_used), (2, 1, Some(NOW)));
}

fn store_file(dir: &std::path::Path, records: &[&ApiKeyRecord]) -> std::path::PathBuf {
    let path = dir.join("keys.json");
    let text = serde_json::json!({ "keys": records }).to_string();
    std::fs::write(&path, text).unwrap();
    path
}

fn temp_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("tokenwarden-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[tokio::test]
async fn file_store_reload_good_then_bad_then_good() {
    let dir = temp_dir("reload");
    let a = NewApiKey::generate("live", "a").unwrap();
    let b = NewApiKey::generate("live", "b").unwrap();
    let path = store_file(&dir, &[&a.record]);
    let store = FileStore::open(&path).unwrap();
    let (_guard, logs) = common::capture_logs();
    let clock = ManualClock::new(NOW);
    let keys = ApiKeyAuthenticator::file(store).clock(clock.clone());
    let chain = Chain::new().api_key(keys);
    assert!(run(&chain, &api_key_header(&a)).await.is_ok());

    // Good -> bad: the last good keys stay, and the log says where and why.
    for bad in [
        "{\"keys\": [",
        "{\"keys\": [{\"id\": \"0123456789abcdef\", \"digest\": \"00\", \"name\": \"x\"}]}",
        "{\"keys\": [], \"extra\": 1}",
    ] {
        std::fs::write(&path, bad).unwrap();
        clock.advance(10);
        assert!(run(&chain, &api_key_header(&a)).await.is_ok(), "{bad}");
    }
    let text = logs.text();
    assert!(text.contains("WARN"), "{text}");
    assert!(text.contains(&path.display().to_string()), "{text}");
    assert!(text.contains("64 hex digits"), "{text}");
    // Two records of one id are a bad file too.
    std::fs::write(
        &path,
        serde_json::json!({ "keys": [&a.record, &a.record] }).to_string(),
    )
    .unwrap();
    let explicit = FileStore::open(&path);
    assert!(explicit.unwrap_err().message.contains("two records"));

    // Bad -> good: the new file is taken on the next poll.
    store_file(&dir, &[&b.record]);
    clock.advance(10);
    assert!(run(&chain, &api_key_header(&b)).await.is_ok());
    assert_eq!(
        refused(run(&chain, &api_key_header(&a)).await).1,
        "unknown_key"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn file_store_explicit_reload_keeps_the_last_good_keys() {
    let dir = temp_dir("explicit");
    let a = NewApiKey::generate("live", "a").unwrap();
    let path = store_file(&dir, &[&a.record]);
    let store = FileStore::open(&path).unwrap();
    std::fs::write(&path, "not json").unwrap();
    assert!(store.reload().is_err());
    store_file(
        &dir,
        &[&a.record, &NewApiKey::generate("live", "b").unwrap().record],
    );
    assert_eq!(store.reload(), Ok(2));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn file_store_polls_no_more_than_its_period() {
    let dir = temp_dir("period");
    let a = NewApiKey::generate("live", "a").unwrap();
    let b = NewApiKey::generate("live", "b").unwrap();
    let path = store_file(&dir, &[&a.record]);
    let clock = ManualClock::new(NOW);
    let chain = Chain::new()
        .api_key(ApiKeyAuthenticator::file(FileStore::open(&path).unwrap()).clock(clock.clone()));
    assert!(run(&chain, &api_key_header(&a)).await.is_ok()); // polls at NOW
    store_file(&dir, &[&a.record, &b.record]);
    clock.advance(4);
    assert_eq!(
        refused(run(&chain, &api_key_header(&b)).await).1,
        "unknown_key"
    );
    clock.advance(1);
    assert!(run(&chain, &api_key_header(&b)).await.is_ok());
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A user's store that counts calls and holds each lookup until released.
struct Held {
    records: MemoryStore,
    calls: AtomicUsize,
    gate: tokio::sync::Semaphore,
    fail: std::sync::atomic::AtomicBool,
}

impl KeyStore for Held {
    fn lookup<'a>(
        &'a self,
        id: &'a str,
    ) -> BoxFuture<'a, Result<Option<ApiKeyRecord>, StoreError>> {
        Box::pin(async move {
            self.calls.fetch_add(1, Ordering::SeqCst);
            let _permit = self.gate.acquire().await.unwrap();
            if self.fail.load(Ordering::SeqCst) {
                return Err(StoreError::new("database down"));
            }
            Ok(self.records.get(id).map(|r| (*r).clone()))
        })
    }
}

fn held() -> Arc<Held> {
    Arc::new(Held {
        records: MemoryStore::new(),
        calls: AtomicUsize::new(0),
        gate: tokio::sync::Semaphore::new(0),
        fail: false.into(),
    })
}

#[tokio::test]
async fn custom_store_lookups_are_single_flight_and_cached_briefly() {
    let db = held();
    let new = add_key(&db.records, "a", &["x"]);
    let clock = ManualClock::new(NOW);
    let chain = Chain::new().api_key(ApiKeyAuthenticator::custom(db.clone()).clock(clock.clone()));
    let headers = api_key_header(&new);
    let req = RequestView::new("GET", "/", &headers);

    // 100 concurrent lookups of one id, all started before the store answers.
    let mut pending: Vec<Pin<Box<Judging<'_>>>> = (0..100)
        .map(|_| Box::pin(chain.authenticate(&req)) as _)
        .collect();
    let mut cx = Context::from_waker(Waker::noop());
    for f in &mut pending {
        assert!(f.as_mut().poll(&mut cx).is_pending());
    }
    db.gate.add_permits(1000);
    for f in pending {
        assert!(f.await.is_ok());
    }
    assert_eq!(db.calls.load(Ordering::SeqCst), 1, "one store call for 100");

    // Cached for 5 s, then asked again.
    clock.advance(4);
    assert!(run(&chain, &headers).await.is_ok());
    assert_eq!(db.calls.load(Ordering::SeqCst), 1);
    clock.advance(1);
    assert!(run(&chain, &headers).await.is_ok());
    assert_eq!(db.calls.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn custom_store_errors_are_503_and_not_cached() {
    let db = held();
    db.gate.add_permits(1000);
    db.fail.store(true, Ordering::SeqCst);
    let new = add_key(&db.records, "a", &[]);
    let chain =
        Chain::new().api_key(ApiKeyAuthenticator::custom(db.clone()).clock(ManualClock::new(NOW)));
    let r = run(&chain, &api_key_header(&new)).await.unwrap_err();
    assert_eq!((r.status(), r.kind()), (503, "key_store_unavailable"));
    assert!(r.retry_after().is_some());
    db.fail.store(false, Ordering::SeqCst);
    assert!(run(&chain, &api_key_header(&new)).await.is_ok());
    assert_eq!(db.calls.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn repeated_wrong_secrets_are_logged_as_suspicious_with_the_id_only() {
    let store = Arc::new(MemoryStore::new());
    let clock = ManualClock::new(NOW);
    let new = add_key(&store, "a", &[]);
    let chain = memory_chain(&store, &clock);
    let bad = vec![("x-api-key".to_string(), wrong_secret(new.expose_key()))];
    let (_guard, logs) = common::capture_logs();
    for _ in 0..4 {
        run(&chain, &bad).await.unwrap_err();
        clock.advance(10);
    }
    assert!(!logs.text().contains("suspicious"));
    run(&chain, &bad).await.unwrap_err();
    let text = logs.text();
    let line = text
        .lines()
        .find(|l| l.contains("suspicious"))
        .expect(&text);
    assert!(
        line.contains("WARN") && line.contains(&new.record.id),
        "{line}"
    );
    // Spread over more than a minute, failures are not suspicious.
    let other = add_key(&store, "b", &[]);
    let bad = vec![("x-api-key".to_string(), wrong_secret(other.expose_key()))];
    for _ in 0..10 {
        run(&chain, &bad).await.unwrap_err();
        clock.advance(16);
    }
    let text = logs.text();
    assert!(
        !text
            .lines()
            .any(|l| l.contains("suspicious") && l.contains(&other.record.id)),
        "{text}"
    );
}

/// Every 20-character run of `secret`.
fn windows(secret: &str) -> Vec<&str> {
    (0..=secret.len().saturating_sub(20))
        .map(|i| &secret[i..i + 20])
        .collect()
}

#[tokio::test]
async fn api_key_secrets_appear_in_no_log_line_or_debug_output() {
    let (_guard, logs) = common::capture_logs();
    let store = Arc::new(MemoryStore::new());
    let clock = ManualClock::new(NOW);
    let good = add_key(&store, "a", &["x"]);
    let expired = add_key(&store, "b", &[]);
    let disabled = add_key(&store, "c", &[]);
    let mut r = disabled.record.clone();
    r.disabled = true;
    store.insert(r);
    let unknown = NewApiKey::generate("live", "d").unwrap();
    let keys = api_keys(&store, &clock);
    let chain = Chain::new()
        .api_key(keys.clone())
        .require(tokenwarden::Requirements::new().scopes_all(["x"]));
    clock.set(NOW + 1);
    let mut shown = Vec::new();
    for key in [&good, &expired, &disabled, &unknown] {
        for _ in 0..6 {
            let out = run(&chain, &api_key_header(key)).await;
            shown.push(format!("{out:?}"));
            let bad = vec![("x-api-key".to_string(), wrong_secret(key.expose_key()))];
            shown.push(format!("{:?}", run(&chain, &bad).await));
            let req_headers = api_key_header(key);
            shown.push(format!("{:?}", RequestView::new("GET", "/", &req_headers)));
        }
        shown.push(format!("{key:?} {key} {:?}", key.record));
    }
    clock.set(NOW + 7200);
    shown.push(format!(
        "{:?}",
        run(&chain, &api_key_header(&expired)).await
    ));
    shown.push(format!("{keys:?} {chain:?}"));
    let text = logs.text();
    assert!(text.contains("suspicious"), "the run logged: {text}");
    for key in [&good, &expired, &disabled, &unknown] {
        let secret = key.expose_key().rsplit_once('_').unwrap().1;
        for w in windows(secret) {
            for line in text.lines().chain(shown.iter().map(String::as_str)) {
                assert!(!line.contains(w), "secret in: {line}");
            }
        }
    }
    assert!(
        format!("{good:?}").contains(&good.record.id),
        "the id may show"
    );
}

/// Attack: `cache_for(Duration::MAX)` must not make a key removed from the
/// store valid forever: answers are kept an hour at most.
#[tokio::test]
async fn a_custom_store_cache_is_clamped_to_an_hour() {
    let db = held();
    db.gate.add_permits(1000);
    let new = add_key(&db.records, "a", &["x"]);
    let clock = ManualClock::new(NOW);
    let auth = ApiKeyAuthenticator::custom(db.clone())
        .cache_for(std::time::Duration::MAX)
        .clock(clock.clone());
    let chain = Chain::new().api_key(auth);
    let headers = api_key_header(&new);
    assert!(run(&chain, &headers).await.is_ok());
    db.records.remove(&new.record.id);
    clock.advance(3599);
    assert!(
        run(&chain, &headers).await.is_ok(),
        "cached within the hour"
    );
    clock.advance(1);
    let (status, kind, _) = refused(run(&chain, &headers).await);
    assert_eq!((status, kind), (401, "unknown_key"), "removed an hour ago");
    assert_eq!(
        tokenwarden::authn::api_key::MAX_CACHE_TTL,
        std::time::Duration::from_secs(3600)
    );
}

/// Attack: made-up ids, enough to fill the lookup cache with "not found",
/// must not cost a real key its cached answer and single flight: a herd
/// for it still makes one store call.
#[tokio::test]
async fn a_flood_of_unknown_ids_cannot_break_the_single_flight_of_a_real_key() {
    let db = held();
    let new = add_key(&db.records, "a", &["x"]);
    let chain =
        Chain::new().api_key(ApiKeyAuthenticator::custom(db.clone()).clock(ManualClock::new(NOW)));
    db.gate.add_permits(1);
    for i in 0..10_001 {
        let bogus = format!("ApiKey tw_live_{i:016x}_{}", "A".repeat(43));
        let r = run(&chain, &vec![("authorization".into(), bogus)]).await;
        assert_eq!(refused(r).1, "unknown_key");
    }
    assert_eq!(db.calls.load(Ordering::SeqCst), 10_001);
    assert_eq!(db.gate.forget_permits(1), 1);
    let headers = api_key_header(&new);
    let req = RequestView::new("GET", "/", &headers);
    let mut pending: Vec<Pin<Box<Judging<'_>>>> = (0..100)
        .map(|_| Box::pin(chain.authenticate(&req)) as _)
        .collect();
    let mut cx = Context::from_waker(Waker::noop());
    for f in &mut pending {
        assert!(f.as_mut().poll(&mut cx).is_pending());
    }
    db.gate.add_permits(1);
    for f in pending {
        assert!(f.await.is_ok());
    }
    assert_eq!(
        db.calls.load(Ordering::SeqCst),
        10_002,
        "one store call for 100"
    );
}
