//! Shared state on a real `redis-server` (started here, on 127.0.0.1):
//! revocations and DPoP replays shared by validators in separate
//! processes, and what happens while Redis is down and after it comes back.
//!
//! The second process is this test binary run again with
//! `TOKENWARDEN_REDIS_ROLE` set: [`child_process_role`] then plays one
//! instance and reports on its standard output.
#![cfg(all(feature = "redis", feature = "testing"))]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::dpop::{ORIGIN, bound_token, client, issuer_key, proof};
use common::redis::{RedisServer, eventually};
use common::{AUD, ISS, NOW, claims, key};
use serde_json::json;
use tokenwarden::authn::dpop::{DpopAuthenticator, DpopConfig};
use tokenwarden::authn::{Chain, RequestView};
use tokenwarden::state::denylist::{Denylist, TokenIds};
use tokenwarden::state::redis::{RedisRevocationSource, RedisState, ReplayPolicy};
use tokenwarden::state::replay::{ReplayKey, ReplayStore};
use tokenwarden::{Algorithm, FixedClock, KeySet, Validator};

const TIMEOUT: Duration = Duration::from_millis(200);
const ROLE: &str = "TOKENWARDEN_REDIS_ROLE";
const PATH: &str = "/orders/7";
const HTU: &str = "https://api.test/orders/7";

async fn connect(url: &str, policy: ReplayPolicy) -> RedisState {
    RedisState::builder(url)
        .prefix("test")
        .timeout(TIMEOUT)
        .retry_max(Duration::from_millis(200))
        .replay_policy(policy)
        .clock(FixedClock(NOW))
        .connect()
        .await
        .expect("redis answers")
}

/// One instance: a denylist mirrored from Redis, loaded before it returns.
async fn instance(url: &str) -> (RedisState, Arc<RedisRevocationSource>, Denylist) {
    let state = connect(url, ReplayPolicy::FailClosed).await;
    let source = state.revocation_source();
    let denylist = Denylist::builder()
        .clock(FixedClock(NOW))
        .source(source.clone())
        .build()
        .unwrap();
    tokio::time::timeout(Duration::from_secs(10), source.ready())
        .await
        .expect("the list loads");
    (state, source, denylist)
}

fn validator(jwks: &str, denylist: &Denylist) -> Validator {
    Validator::builder()
        .issuer(ISS)
        .audience(AUD)
        .clock(FixedClock(NOW))
        .keys(KeySet::from_jwks(jwks.as_bytes()).unwrap())
        .denylist(denylist.clone())
        .build()
        .unwrap()
}

fn outcome(v: &Validator, token: &str) -> &'static str {
    match v.validate::<serde_json::Value>(token) {
        Ok(_) => "ok",
        Err(e) => e.kind().as_str(),
    }
}

fn jti_ids(jti: &str) -> TokenIds<'_> {
    let mut ids = TokenIds::default();
    ids.jti = Some(jti);
    ids
}

/// This test binary again, as one instance playing `role`; its standard
/// output lines come on the receiver.
fn spawn_child(role: &str, env: &[(&str, &str)]) -> (Child, mpsc::Receiver<String>) {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args([
        "child_process_role",
        "--exact",
        "--nocapture",
        "--test-threads=1",
    ])
    .env(ROLE, role)
    .stdout(Stdio::piped())
    .stderr(Stdio::inherit());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap();
    let out = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    (child, rx)
}

/// Waits for a line starting with `prefix` from the child.
fn expect_line(rx: &mpsc::Receiver<String>, prefix: &str, within: Duration) -> String {
    let deadline = Instant::now() + within;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            // The harness may print `test child_process_role ... ` first.
            Ok(line) if line.contains(prefix) => {
                return line[line.find(prefix).unwrap_or(0)..].to_owned();
            }
            Ok(_) => {}
            Err(e) => panic!("no `{prefix}` line from the child: {e}"),
        }
    }
}

/// The other process's side of the two-process tests; does nothing when
/// the test binary runs normally.
#[test]
fn child_process_role() {
    let Ok(role) = std::env::var(ROLE) else {
        return;
    };
    let var = |k: &str| std::env::var(k).unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let url = var("TW_REDIS_URL");
        match role.as_str() {
            "validator" => {
                let (_state, _source, denylist) = instance(&url).await;
                let v = validator(&var("TW_JWKS"), &denylist);
                let token = var("TW_TOKEN");
                assert_eq!(outcome(&v, &token), "ok");
                println!("READY");
                // Polled, within a bound: the revocation is made by the
                // other process once it has read READY.
                let took = eventually(Duration::from_secs(10), || outcome(&v, &token) == "revoked")
                    .await
                    .expect("the revocation reaches this process");
                println!("REFUSED after {} ms", took.as_millis());
            }
            "dpop" => {
                let state = connect(&url, ReplayPolicy::FailClosed).await;
                let chain = dpop_chain(&var("TW_JWKS"), &state);
                let headers = dpop_request(&var("TW_TOKEN"), &var("TW_PROOF"));
                println!("DPOP {}", judge(&chain, &headers).await);
            }
            #[cfg(feature = "introspection")]
            "introspection" => {
                let state = connect(&url, ReplayPolicy::FailClosed).await;
                let token = var("TW_TOKEN");
                let a = shared_introspection::authenticator(
                    &var("TW_URL"),
                    &var("TW_ISS"),
                    &state,
                    tokenwarden::SystemClock,
                    "api",
                )
                .await;
                println!(
                    "INTROSPECTION {}",
                    shared_introspection::judge(&a, &token).await
                );
                // The write is in the background: stay until it landed.
                let fresh = state.cache(a.shared_cache_namespace().unwrap(), 1);
                let took = async {
                    let start = Instant::now();
                    while fresh.get(token.as_bytes()).await.is_none() {
                        assert!(start.elapsed() < Duration::from_secs(10));
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                };
                took.await;
                println!("SHARED");
            }
            other => panic!("unknown role {other}"),
        }
    });
}

fn dpop_chain(jwks: &str, state: &RedisState) -> Chain {
    let v = Validator::builder()
        .issuer(ISS)
        .audience(AUD)
        .clock(FixedClock(NOW))
        .keys(KeySet::from_jwks(jwks.as_bytes()).unwrap())
        .build()
        .unwrap();
    let config = DpopConfig::new(ORIGIN)
        .clock(FixedClock(NOW))
        .shared_replay_store(Arc::new(state.replay_store(1024)));
    Chain::new().dpop(DpopAuthenticator::new(v, config).unwrap())
}

fn dpop_request(token: &str, proof: &str) -> Vec<(String, String)> {
    vec![
        ("authorization".to_owned(), format!("DPoP {token}")),
        ("dpop".to_owned(), proof.to_owned()),
    ]
}

async fn judge(chain: &Chain, headers: &[(String, String)]) -> &'static str {
    match chain
        .authenticate(&RequestView::new("GET", PATH, &headers.to_vec()))
        .await
    {
        Ok(_) => "ok",
        Err(r) => r.kind(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revocation_on_one_process_is_refused_by_a_validator_in_another() {
    let Some(server) = RedisServer::start("redis::two_process_revocation") else {
        return;
    };
    let signer = key(Algorithm::ES256);
    let jwks = tokenwarden::testing::jwks_json(&[signer]);
    let mut c = claims();
    c["jti"] = json!("shared-1");
    let token = signer.token(&c);
    let (mut child, rx) = spawn_child(
        "validator",
        &[
            ("TW_REDIS_URL", &server.url()),
            ("TW_JWKS", &jwks),
            ("TW_TOKEN", &token),
        ],
    );
    expect_line(&rx, "READY", Duration::from_secs(30));

    let (_state, source, denylist) = instance(&server.url()).await;
    let here = validator(&jwks, &denylist);
    assert_eq!(outcome(&here, &token), "ok");
    let revoked_at = Instant::now();
    denylist.revoke_jti("shared-1", NOW + 600);
    assert_eq!(
        outcome(&here, &token),
        "revoked",
        "at once on this instance"
    );

    let line = expect_line(&rx, "REFUSED", Duration::from_secs(10));
    assert!(revoked_at.elapsed() < Duration::from_secs(10), "{line}");
    assert!(child.wait().unwrap().success());
    assert!(source.stats().delivered >= 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dpop_proof_used_in_one_process_is_refused_in_another() {
    let Some(server) = RedisServer::start("redis::two_process_dpop_replay") else {
        return;
    };
    let jwks = tokenwarden::testing::jwks_json(&[issuer_key()]);
    let token = bound_token(client(0));
    let p = proof(client(0), "GET", HTU, &token).sign();
    let (mut child, rx) = spawn_child(
        "dpop",
        &[
            ("TW_REDIS_URL", &server.url()),
            ("TW_JWKS", &jwks),
            ("TW_TOKEN", &token),
            ("TW_PROOF", &p),
        ],
    );
    assert_eq!(expect_line(&rx, "DPOP", Duration::from_secs(30)), "DPOP ok");
    assert!(child.wait().unwrap().success());

    let state = connect(&server.url(), ReplayPolicy::FailClosed).await;
    let chain = dpop_chain(&jwks, &state);
    assert_eq!(
        judge(&chain, &dpop_request(&token, &p)).await,
        "dpop_replayed"
    );
    // A fresh proof from the same client still passes here.
    let fresh = proof(client(0), "GET", HTU, &token).sign();
    assert_eq!(judge(&chain, &dpop_request(&token, &fresh)).await, "ok");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_down_then_back_the_mirror_serves_nothing_is_lost_and_no_request_waits_past_the_timeout()
 {
    let Some(mut server) = RedisServer::start("redis::outage") else {
        return;
    };
    let url = server.url();
    let (state_a, source_a, a) = instance(&url).await;
    let (_state_b, source_b, b) = instance(&url).await;
    let replay = state_a.replay_store(1024);
    let cache = state_a.cache("introspection", 16);

    a.revoke_jti("before-outage", NOW + 600);
    eventually(Duration::from_secs(10), || {
        b.is_revoked(&jti_ids("before-outage")).is_some()
    })
    .await
    .expect("b learns the revocation");

    server.stop();
    // Revoked on `a` while Redis is down: applies on `a` at once, queued.
    a.revoke_jti("during-outage", NOW + 600);
    assert!(a.is_revoked(&jti_ids("during-outage")).is_some());

    let mut worst = Duration::ZERO;
    let mut replay_refusals = 0;
    for i in 0..20u32 {
        // The mirror keeps serving from memory.
        let start = Instant::now();
        assert!(b.is_revoked(&jti_ids("before-outage")).is_some());
        worst = worst.max(start.elapsed());
        // Replay: fail closed, within the timeout.
        let k = ReplayKey::new(&[b"jkt", &i.to_be_bytes()]);
        let start = Instant::now();
        let answer = replay.insert_once(&k, NOW + 60, NOW).await;
        worst = worst.max(start.elapsed());
        if answer.is_err() {
            replay_refusals += 1;
        }
        // The shared cache: a miss, within the timeout.
        let start = Instant::now();
        assert_eq!(cache.get(b"opaque-token").await, None);
        worst = worst.max(start.elapsed());
    }
    assert_eq!(replay_refusals, 20);
    let margin = Duration::from_millis(150);
    assert!(
        worst < TIMEOUT + margin,
        "a request waited {worst:?} (timeout {TIMEOUT:?})"
    );
    eventually(Duration::from_secs(5), || source_a.stats().failures >= 1)
        .await
        .expect("the failed write is counted");
    assert_eq!(source_a.stats().pending, 1, "queued, not lost");
    assert!(
        b.is_revoked(&jti_ids("during-outage")).is_none(),
        "not yet shared"
    );

    server.start_again();
    // The queued revocation is delivered, and b (reconnected) receives it.
    eventually(Duration::from_secs(15), || {
        b.is_revoked(&jti_ids("during-outage")).is_some()
    })
    .await
    .expect("the revocation queued during the outage reaches b");
    eventually(Duration::from_secs(5), || source_a.stats().pending == 0)
        .await
        .expect("the queue drains");
    // The first load after the reconnect may fail (the command connection
    // reconnects lazily); it is then retried within `retry_max`.
    eventually(Duration::from_secs(5), || source_b.stats().reloads >= 2)
        .await
        .expect("b reloaded after reconnecting");

    // Redis restarted empty (no persistence): the instances write back what
    // it lost, so a new instance still starts with both revocations.
    let (_state_c, _source_c, c) = instance(&url).await;
    eventually(Duration::from_secs(15), || {
        c.is_revoked(&jti_ids("before-outage")).is_some()
            && c.is_revoked(&jti_ids("during-outage")).is_some()
    })
    .await
    .expect("nothing lost across the restart");

    // Replay works again.
    let k = ReplayKey::new(&[b"jkt", b"after"]);
    assert_eq!(replay.insert_once(&k, NOW + 60, NOW).await, Ok(true));
    assert_eq!(replay.insert_once(&k, NOW + 60, NOW).await, Ok(false));
}

/// With [`ReplayPolicy::FallbackLocal`] and Redis down, values are
/// recorded in this process: first accepted, a replay refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fallback_local_answers_from_this_process_while_redis_is_down() {
    let Some(mut server) = RedisServer::start("redis::fallback_local") else {
        return;
    };
    let state = connect(&server.url(), ReplayPolicy::FallbackLocal).await;
    let replay = state.replay_store(1024);
    server.stop();
    let k = ReplayKey::new(&[b"jkt", b"jti"]);
    let start = Instant::now();
    assert_eq!(replay.insert_once(&k, NOW + 60, NOW).await, Ok(true));
    assert_eq!(replay.insert_once(&k, NOW + 60, NOW).await, Ok(false));
    assert!(start.elapsed() < 2 * TIMEOUT + Duration::from_millis(300));
    assert_eq!(replay.unavailable(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_token_reaches_redis_only_its_digest() {
    let Some(server) = RedisServer::start("redis::no_token_in_keys") else {
        return;
    };
    let a = connect(&server.url(), ReplayPolicy::FailClosed).await;
    let b = connect(&server.url(), ReplayPolicy::FailClosed).await;
    let token = "opaque-SECRET-token-value-1234567890";
    let cache_a = a.cache("introspection", 16);
    let cache_b = b.cache("introspection", 16);
    cache_a
        .put(
            token.as_bytes(),
            br#"{"active":true}"#,
            Duration::from_secs(60),
        )
        .await;
    // Shared: another instance reads it from Redis.
    assert_eq!(
        cache_b.get(token.as_bytes()).await.as_deref(),
        Some(&br#"{"active":true}"#[..])
    );
    assert_eq!(cache_b.get(b"another token").await, None);
    let keys = server.keys();
    assert!(
        keys.contains(&cache_a.key_for(token.as_bytes())),
        "{keys:?}"
    );
    for k in &keys {
        assert!(!k.contains("SECRET"), "a token in a redis key: {k}");
        assert!(!k.contains(token), "a token in a redis key: {k}");
    }
    let digest_part = cache_a.key_for(token.as_bytes());
    let hex = digest_part.rsplit(':').next().unwrap();
    assert_eq!(hex.len(), 64, "a SHA-256 digest: {digest_part}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn record_once_answers_first_then_seen() {
    let Some(server) = RedisServer::start("redis::record_once") else {
        return;
    };
    let a = connect(&server.url(), ReplayPolicy::FailClosed).await;
    let b = connect(&server.url(), ReplayPolicy::FailClosed).await;
    let k = [7u8; 32];
    assert!(
        a.record_once("nonce", &k, Duration::from_secs(5))
            .await
            .unwrap()
    );
    assert!(
        !b.record_once("nonce", &k, Duration::from_secs(5))
            .await
            .unwrap()
    );
    assert!(
        b.record_once("other", &k, Duration::from_secs(5))
            .await
            .unwrap(),
        "namespaces apart"
    );
}

/// The full load is paged (each page bounded by the timeout): a list longer
/// than a page, with many members of one score across page boundaries,
/// loads whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_list_longer_than_a_page_loads_whole() {
    let Some(server) = RedisServer::start("redis::paged_load") else {
        return;
    };
    let (_state_a, source_a, a) = instance(&server.url()).await;
    // 2,500 jtis on 3 expiry times (the sorted set's scores).
    let n = 2_500;
    for i in 0..n {
        a.revoke_jti(&format!("j{i:04}"), NOW + 600 + (i % 3) as i64);
    }
    eventually(Duration::from_secs(120), || {
        source_a.stats().delivered >= n as u64
    })
    .await
    .expect("every revocation written");
    let (_state_b, _source_b, b) = instance(&server.url()).await;
    for i in 0..n {
        let jti = format!("j{i:04}");
        assert!(b.is_revoked(&jti_ids(&jti)).is_some(), "{jti} not loaded");
    }
    assert_eq!(b.len(), n);
}

// --- The introspection cache's shared tier ---------------------------------

#[cfg(feature = "introspection")]
mod shared_introspection {
    use super::*;
    use tokenwarden::Clock;
    use tokenwarden::authn::introspection::IntrospectionAuthenticator;
    use tokenwarden::testing::TestIssuer;

    pub const CLIENT: &str = "orders-api";
    pub const SECRET: &str = "s3cret-Zq8Lw3Xk9Pv2Rt7Ym4Nb6Hc1Jd5Gf0";
    pub const NAMESPACE: &str = "introspection:orders-api";

    pub async fn authenticator(
        url: &str,
        issuer: &str,
        state: &RedisState,
        clock: impl Clock,
        audience: &str,
    ) -> IntrospectionAuthenticator {
        IntrospectionAuthenticator::builder()
            .endpoint(url)
            .client_secret_basic(CLIENT, SECRET)
            .issuer(issuer)
            .audience(audience)
            .allow_http_loopback(true)
            .clock(clock)
            .shared_cache(state.cache(NAMESPACE, 1))
            .build()
            .await
            .unwrap()
    }

    pub async fn judge(a: &IntrospectionAuthenticator, token: &str) -> &'static str {
        let chain = Chain::new().introspection(a.clone());
        let headers = vec![("authorization".to_owned(), format!("Bearer {token}"))];
        match chain
            .authenticate(&RequestView::new("GET", PATH, &headers))
            .await
        {
            Ok(_) => "ok",
            Err(r) => r.kind(),
        }
    }

    fn idp() -> TestIssuer {
        let idp = TestIssuer::start().unwrap();
        idp.introspection_client_secret(CLIENT, SECRET);
        idp
    }

    fn opaque(idp: &TestIssuer) -> String {
        idp.opaque_token()
            .subject("alice")
            .audience("api")
            .scope("orders:read")
            .issue()
    }

    /// Polls `a`'s shared tier until `token`'s verdict is there.
    async fn landed(state: &RedisState, a: &IntrospectionAuthenticator, token: &str) {
        let fresh = state.cache(a.shared_cache_namespace().unwrap(), 1);
        let start = Instant::now();
        while fresh.get(token.as_bytes()).await.is_none() {
            assert!(start.elapsed() < Duration::from_secs(10), "never written");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Two processes, one answer: the endpoint is called once; with Redis
    /// stopped, a new token falls back to the endpoint (never a refusal
    /// because of Redis), within the command timeout.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_introspection_answer_is_shared_by_two_processes_and_redis_down_falls_back_to_the_endpoint()
     {
        let Some(mut server) = RedisServer::start("redis::shared_introspection") else {
            return;
        };
        let idp = idp();
        let token = opaque(&idp);
        let (mut child, rx) = spawn_child(
            "introspection",
            &[
                ("TW_REDIS_URL", &server.url()),
                ("TW_URL", &idp.introspection_url()),
                ("TW_ISS", idp.issuer()),
                ("TW_TOKEN", &token),
            ],
        );
        assert_eq!(
            expect_line(&rx, "INTROSPECTION", Duration::from_secs(30)),
            "INTROSPECTION ok"
        );
        expect_line(&rx, "SHARED", Duration::from_secs(15));
        assert!(child.wait().unwrap().success());
        assert_eq!(idp.introspection_calls(), 1);

        let state = connect(&server.url(), ReplayPolicy::FailClosed).await;
        let here = authenticator(
            &idp.introspection_url(),
            idp.issuer(),
            &state,
            tokenwarden::SystemClock,
            "api",
        )
        .await;
        assert_eq!(judge(&here, &token).await, "ok");
        assert_eq!(idp.introspection_calls(), 1, "answered from redis");
        assert_eq!(here.shared_cache_stats().0, 1);

        server.stop();
        let other = opaque(&idp);
        let start = Instant::now();
        assert_eq!(
            judge(&here, &other).await,
            "ok",
            "redis down: the endpoint decides"
        );
        let took = start.elapsed();
        assert_eq!(idp.introspection_calls(), 2);
        assert!(
            took < TIMEOUT + Duration::from_secs(1),
            "waited {took:?} on a stopped redis (timeout {TIMEOUT:?})"
        );
        assert!(here.shared_cache_stats().1 >= 1, "the miss is counted");
    }

    /// Attack: a shared answer is judged again by the reader's own rules
    /// (here its audience) on use, never taken as a verdict: an active
    /// answer for another audience planted under the reader's own
    /// namespace is refused, without a call.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_shared_answer_is_judged_again_by_the_readers_rules() {
        let Some(server) = RedisServer::start("redis::shared_introspection_rejudged") else {
            return;
        };
        let idp = idp();
        let state = connect(&server.url(), ReplayPolicy::FailClosed).await;
        let reader = authenticator(
            &idp.introspection_url(),
            idp.issuer(),
            &state,
            tokenwarden::SystemClock,
            "another-api",
        )
        .await;
        let now = tokenwarden::SystemClock.now();
        let answer = format!(
            r#"{}
{{"active":true,"sub":"alice","aud":"api","iss":"{}"}}"#,
            now + 60,
            idp.issuer()
        );
        let token = "opaque-planted-for-api";
        state
            .cache(reader.shared_cache_namespace().unwrap(), 1)
            .put(token.as_bytes(), answer.as_bytes(), Duration::from_secs(60))
            .await;
        assert_eq!(judge(&reader, token).await, "invalid_audience");
        assert_eq!(
            idp.introspection_calls(),
            0,
            "judged from the shared answer"
        );
        assert_eq!(reader.shared_cache_stats().0, 1);
    }

    /// Attack (attacker review): a refusal is shared without the answer
    /// (`{"active":false}`), so it must never reach an authenticator that
    /// would have judged the answer otherwise. A, expecting audience `x`,
    /// refuses a token for `api` and shares the refusal; B, expecting
    /// `api`, in the same namespace, asks the endpoint and passes it. Its
    /// entries are under another fingerprint of the rules.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_refusal_for_one_audience_is_never_shared_with_an_authenticator_expecting_another() {
        let Some(server) = RedisServer::start("redis::shared_introspection_scoped") else {
            return;
        };
        let idp = idp();
        let token = opaque(&idp);
        let state = connect(&server.url(), ReplayPolicy::FailClosed).await;
        let url = idp.introspection_url();
        let a = authenticator(&url, idp.issuer(), &state, tokenwarden::SystemClock, "x").await;
        assert_eq!(judge(&a, &token).await, "invalid_audience");
        landed(&state, &a, &token).await;
        let b = authenticator(&url, idp.issuer(), &state, tokenwarden::SystemClock, "api").await;
        assert_eq!(judge(&b, &token).await, "ok");
        assert_eq!(idp.introspection_calls(), 2, "B asked the endpoint");
        assert_eq!(b.shared_cache_stats().0, 0, "B found nothing of A's");
        assert_ne!(a.shared_cache_namespace(), b.shared_cache_namespace());
        assert!(
            b.shared_cache_namespace()
                .unwrap()
                .starts_with(&format!("{NAMESPACE}:")),
            "{:?}",
            b.shared_cache_namespace()
        );
        // The same rules share: a third like B is answered from Redis.
        landed(&state, &b, &token).await;
        let c = authenticator(&url, idp.issuer(), &state, tokenwarden::SystemClock, "api").await;
        assert_eq!(c.shared_cache_namespace(), b.shared_cache_namespace());
        assert_eq!(judge(&c, &token).await, "ok");
        assert_eq!(idp.introspection_calls(), 2);
        assert_eq!(c.shared_cache_stats().0, 1);
    }

    /// Attack: a reader that keeps verdicts 5 s (so a revocation at the
    /// IdP shows within 5 s) must not take a verdict a writer keeps a
    /// minute: the TTLs are part of what keeps shared entries apart.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_reader_keeping_verdicts_briefly_never_takes_one_a_writer_keeps_longer() {
        let Some(server) = RedisServer::start("redis::shared_introspection_ttls") else {
            return;
        };
        let idp = idp();
        let token = opaque(&idp);
        let state = connect(&server.url(), ReplayPolicy::FailClosed).await;
        let url = idp.introspection_url();
        let keeping = |ttl: u64| {
            IntrospectionAuthenticator::builder()
                .endpoint(&url)
                .client_secret_basic(CLIENT, SECRET)
                .issuer(idp.issuer())
                .audience("api")
                .allow_http_loopback(true)
                .positive_ttl(Duration::from_secs(ttl))
                .shared_cache(state.cache(NAMESPACE, 1))
                .build()
        };
        let writer = keeping(60).await.unwrap();
        assert_eq!(judge(&writer, &token).await, "ok");
        landed(&state, &writer, &token).await;
        let reader = keeping(5).await.unwrap();
        assert_ne!(
            writer.shared_cache_namespace(),
            reader.shared_cache_namespace()
        );
        assert_eq!(judge(&reader, &token).await, "ok");
        assert_eq!(idp.introspection_calls(), 2, "the reader asked the IdP");
        assert_eq!(reader.shared_cache_stats().0, 0);
    }

    /// A Redis that takes every connection, answers the client's
    /// connection setup (redis-rs sends `CLIENT SETINFO` twice, answered
    /// `+OK` each) and then never answers again: a hung server.
    async fn hung_redis() -> String {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut conn, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let (mut seen, mut buf, mut set_up) = (Vec::new(), [0u8; 4096], false);
                    while let Ok(n @ 1..) = conn.read(&mut buf).await {
                        seen.extend_from_slice(&buf[..n]);
                        let setinfo = seen.windows(7).filter(|w| w == b"SETINFO").count();
                        if !set_up && setinfo >= 2 {
                            set_up = true;
                            let _ = conn.write_all(b"+OK\r\n+OK\r\n").await;
                        }
                    }
                });
            }
        });
        format!("redis://{addr}")
    }

    /// Outage (attacker review): a hung Redis, with a long command timeout
    /// (5 s, as a denylist may want), costs a lookup at most its budget
    /// (`SHARED_LOOKUP_BUDGET`), spent before the endpoint's timeout
    /// starts: the endpoint answers within its own timeout, even one
    /// shorter than the budget, the token passes, and the circuit breaker
    /// (one failure would open it here) never hears of Redis.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_hung_redis_costs_its_lookup_budget_never_the_endpoints_timeout_or_the_breaker() {
        use tokenwarden::authn::introspection::SHARED_LOOKUP_BUDGET;
        let idp = idp();
        let state = RedisState::builder(hung_redis().await)
            .timeout(Duration::from_secs(5))
            .connect()
            .await
            .unwrap();
        let opaque_with = |timeout: Duration| {
            IntrospectionAuthenticator::builder()
                .endpoint(idp.introspection_url())
                .client_secret_basic(CLIENT, SECRET)
                .issuer(idp.issuer())
                .audience("api")
                .allow_http_loopback(true)
                .timeout(timeout)
                .max_failures(1)
                .shared_cache(state.cache(NAMESPACE, 1))
                .build()
        };
        // An endpoint timeout of 1 s, shorter than Redis's 5 s.
        let a = opaque_with(Duration::from_secs(1)).await.unwrap();
        let start = Instant::now();
        assert_eq!(judge(&a, &opaque(&idp)).await, "ok");
        let took = start.elapsed();
        assert!(
            took >= SHARED_LOOKUP_BUDGET && took < SHARED_LOOKUP_BUDGET + Duration::from_secs(1),
            "{took:?}"
        );
        assert!(!a.circuit_open(), "redis counted towards the breaker");
        assert_eq!(a.shared_cache_stats().1, 1, "the lookup is a miss");
        // An endpoint timeout shorter than the lookup's budget: the
        // endpoint still has all of it.
        let b = opaque_with(Duration::from_millis(80)).await.unwrap();
        assert_eq!(judge(&b, &opaque(&idp)).await, "ok");
        assert!(!b.circuit_open(), "redis counted towards the breaker");
        assert_eq!(idp.introspection_calls(), 2);
    }

    /// Attack: the shared tier keeps plain claims, so with RFC 9701 signed
    /// answers a `{"active":true}` written to Redis would pass without the
    /// IdP's signature: the pair is refused at build.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_shared_cache_with_signed_answers_is_a_build_error() {
        let Some(server) = RedisServer::start("redis::shared_introspection_jwt") else {
            return;
        };
        let idp = idp();
        let state = connect(&server.url(), ReplayPolicy::FailClosed).await;
        let keys = KeySet::from_jwks(idp.jwks_json().as_bytes()).unwrap();
        let err = IntrospectionAuthenticator::builder()
            .endpoint(idp.introspection_url())
            .client_secret_basic(CLIENT, SECRET)
            .issuer(idp.issuer())
            .allow_http_loopback(true)
            .jwt_responses(keys)
            .shared_cache(state.cache(NAMESPACE, 1))
            .build()
            .await
            .unwrap_err();
        let message = err.to_string();
        assert!(
            message.contains("shared_cache") && message.contains("jwt_responses"),
            "{message}"
        );
    }

    /// Attack: a huge value planted in Redis is not read whole into memory
    /// (`GETRANGE` up to the cap plus one byte): a miss, and the endpoint
    /// decides; a value of exactly the cap is still read.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_megabyte_value_in_redis_is_a_miss_read_only_up_to_the_cap() {
        let Some(server) = RedisServer::start("redis::shared_cache_huge") else {
            return;
        };
        let state = connect(&server.url(), ReplayPolicy::FailClosed).await;
        let huge = vec![b'x'; 1024 * 1024];
        state
            .cache(NAMESPACE, 1)
            .put(b"huge", &huge, Duration::from_secs(60))
            .await;
        // A fresh cache: nothing local, Redis only.
        assert_eq!(state.cache(NAMESPACE, 1).get(b"huge").await, None);
        let cap = vec![b'y'; tokenwarden::state::redis::MAX_CACHE_VALUE];
        state
            .cache(NAMESPACE, 1)
            .put(b"at-cap", &cap, Duration::from_secs(60))
            .await;
        assert_eq!(
            state
                .cache(NAMESPACE, 1)
                .get(b"at-cap")
                .await
                .map(|v| v.len()),
            Some(cap.len())
        );
        // Through the introspection tier: unusable, the endpoint decides.
        let idp = idp();
        let token = "opaque-planted-megabyte";
        let reader = authenticator(
            &idp.introspection_url(),
            idp.issuer(),
            &state,
            tokenwarden::SystemClock,
            "api",
        )
        .await;
        state
            .cache(reader.shared_cache_namespace().unwrap(), 1)
            .put(token.as_bytes(), &huge, Duration::from_secs(60))
            .await;
        assert_eq!(judge(&reader, token).await, "inactive");
        assert_eq!(reader.shared_cache_stats(), (0, 0, 1));
        assert_eq!(idp.introspection_calls(), 1);
    }

    /// A verdict read from Redis is weighed in the local cache as an
    /// endpoint's answer is: by its parsed claims when they outweigh its
    /// text (many small members), so the byte bound holds.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_shared_answer_is_weighed_by_its_parsed_claims() {
        let Some(server) = RedisServer::start("redis::shared_introspection_weight") else {
            return;
        };
        const MEMBERS: usize = 1000;
        let idp = idp();
        let state = connect(&server.url(), ReplayPolicy::FailClosed).await;
        let now = tokenwarden::SystemClock.now();
        let extra: serde_json::Map<String, serde_json::Value> = (0..MEMBERS)
            .map(|n| (format!("k{n:04}"), serde_json::Value::from(0)))
            .collect();
        let answer = json!({"active": true, "sub": "alice", "aud": "api",
            "iss": idp.issuer(), "extra": extra})
        .to_string();
        let parsed =
            MEMBERS * (size_of::<String>() + size_of::<serde_json::Value>() + "k0000".len());
        assert!(parsed > 3 * answer.len(), "{parsed} vs {}", answer.len());
        let token = "opaque-planted-many-members";
        let reader = IntrospectionAuthenticator::builder()
            .endpoint(idp.introspection_url())
            .client_secret_basic(CLIENT, SECRET)
            .issuer(idp.issuer())
            .audience("api")
            .allow_http_loopback(true)
            .max_bytes(1 << 20)
            .max_entries(10_000)
            .shared_cache(state.cache(NAMESPACE, 1))
            .build()
            .await
            .unwrap();
        state
            .cache(reader.shared_cache_namespace().unwrap(), 1)
            .put(
                token.as_bytes(),
                format!("{}\n{answer}", now + 60).as_bytes(),
                Duration::from_secs(60),
            )
            .await;
        assert_eq!(judge(&reader, token).await, "ok");
        assert_eq!(reader.shared_cache_stats().0, 1);
        assert_eq!(idp.introspection_calls(), 0);
        let (entries, bytes) = reader.cache_usage();
        assert_eq!(entries, 1);
        assert!(bytes >= parsed as u64, "weighed {bytes}, parsed {parsed}");
    }

    /// Attack: a value planted in Redis that is oversized, unreadable or
    /// past its time is not a verdict: the endpoint is asked.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_unusable_shared_value_is_a_miss_and_the_endpoint_decides() {
        let Some(server) = RedisServer::start("redis::shared_introspection_planted") else {
            return;
        };
        let idp = idp();
        let state = connect(&server.url(), ReplayPolicy::FailClosed).await;
        let url = idp.introspection_url();
        let now = tokenwarden::SystemClock.now();
        let active = format!(
            r#"{{"active":true,"sub":"mallory","aud":"api","iss":"{}"}}"#,
            idp.issuer()
        );
        let pad = "x".repeat(70 * 1024);
        let huge = format!(
            "{}\n{},\"pad\":\"{pad}\"}}",
            now + 60,
            active.trim_end_matches('}')
        );
        let planted: [(String, &str); 3] = [
            (huge, "oversized"),
            (
                format!(
                    "{}\n{{\"active\":true,\"active\":true,\"sub\":\"m\"}}",
                    now + 60
                ),
                "repeated member",
            ),
            (format!("{}\n{active}", now - 1), "past its time"),
        ];
        for (value, why) in planted {
            // An unknown token for the endpoint: it answers inactive.
            let token = format!("opaque-planted-{}", why.replace(' ', "-"));
            let reader =
                authenticator(&url, idp.issuer(), &state, tokenwarden::SystemClock, "api").await;
            state
                .cache(reader.shared_cache_namespace().unwrap(), 1)
                .put(token.as_bytes(), value.as_bytes(), Duration::from_secs(60))
                .await;
            assert_eq!(judge(&reader, &token).await, "inactive", "{why}");
            assert_eq!(reader.shared_cache_stats(), (0, 0, 1), "{why}");
        }
    }
}
