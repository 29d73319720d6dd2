//! The denylist's mirror when a full load of the shared list fails after a
//! reconnect, against a real `redis-server` (started here, on 127.0.0.1):
//! the subscription stays up, the mirror keeps its entries, revocations
//! published meanwhile apply, and the load is retried until it succeeds.
//!
//! The load is made to fail with an ACL (the instance under test connects
//! as a user that may not run `ZRANGEBYSCORE`, the paged range read of the
//! full load) or by giving the list's key another type (WRONGTYPE); the
//! pub/sub link is cut with `CLIENT KILL TYPE pubsub`.
#![cfg(all(feature = "redis", feature = "testing"))]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod common;

use std::time::Duration;

use common::NOW;
use common::redis::{RedisServer, eventually};
use tokenwarden::FixedClock;
use tokenwarden::state::denylist::{Denylist, Revocation, TokenIds};
use tokenwarden::state::redis::{RedisRevocationSource, RedisState};

const TIMEOUT: Duration = Duration::from_millis(200);
/// Retries after a failed load come within this (the source's `retry_max`).
const RETRY_MAX: Duration = Duration::from_millis(100);
/// Bound on every wait for another connection's effect.
const BOUND: Duration = Duration::from_secs(10);

async fn instance(url: &str) -> (RedisState, std::sync::Arc<RedisRevocationSource>, Denylist) {
    let state = RedisState::builder(url)
        .prefix("test")
        .timeout(TIMEOUT)
        .retry_max(RETRY_MAX)
        // Far away: every load in this test is a reconnect's or a retry's.
        .resync_interval(Duration::from_secs(3600))
        .clock(FixedClock(NOW))
        .connect()
        .await
        .expect("redis answers");
    let source = state.revocation_source();
    let denylist = Denylist::builder()
        .clock(FixedClock(NOW))
        .source(source.clone())
        .build()
        .unwrap();
    tokio::time::timeout(BOUND, source.ready())
        .await
        .expect("the list loads");
    (state, source, denylist)
}

fn revoked(d: &Denylist, jti: &str) -> bool {
    let mut ids = TokenIds::default();
    ids.jti = Some(jti);
    d.is_revoked(&ids).is_some()
}

async fn admin(url: &str) -> redis::aio::MultiplexedConnection {
    redis::Client::open(url)
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap()
}

async fn acl(conn: &mut redis::aio::MultiplexedConnection, rules: &[&str]) {
    let () = redis::cmd("ACL")
        .arg("SETUSER")
        .arg("mirror")
        .arg(rules)
        .query_async(conn)
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_load_after_a_reconnect_keeps_the_subscription_the_entries_and_retries() {
    let Some(server) = RedisServer::start("redis_resync::failed_load") else {
        return;
    };
    let url = server.url();
    let mut admin = admin(&url).await;
    acl(&mut admin, &["on", ">mirror-pw", "~*", "&*", "+@all"]).await;
    let mirror_url = url.replace("redis://", "redis://mirror:mirror-pw@");
    let (_state_a, source_a, a) = instance(&mirror_url).await;
    let (_state_b, _source_b, b) = instance(&url).await;

    b.revoke_jti("early", NOW + 600);
    eventually(BOUND, || revoked(&a, "early"))
        .await
        .expect("a learns the first revocation");

    // From now on a full load fails for `a` (NOPERM on ZRANGEBYSCORE); cut
    // its pub/sub link so it reconnects and loads.
    acl(&mut admin, &["-zrangebyscore"]).await;
    let before = source_a.stats().resync_failures;
    let () = redis::cmd("CLIENT")
        .arg(&["KILL", "TYPE", "pubsub"])
        .query_async(&mut admin)
        .await
        .map(|_: i64| ())
        .unwrap();
    eventually(BOUND, || source_a.stats().resync_failures > before)
        .await
        .expect("the load after the reconnect failed, and was counted");
    assert!(
        revoked(&a, "early"),
        "the mirror keeps its last good entries"
    );
    assert!(source_a.stats().connected, "the link is up");

    // Published by another connection while `a` cannot load: applied.
    b.revoke_jti("late", NOW + 600);
    eventually(BOUND, || revoked(&a, "late"))
        .await
        .expect("a revocation published after the failed load applies");
    // The load is retried (within `retry_max`), and fails again meanwhile.
    let failed = source_a.stats().resync_failures;
    eventually(BOUND, || source_a.stats().resync_failures > failed)
        .await
        .expect("the load is retried");

    // An entry only a full load can bring: in the list, never published
    // (as if its message were lost).
    let lost = Revocation::Jti {
        issuer: None,
        jti: "never-published".to_owned(),
        expires_at: NOW + 600,
    };
    let json = serde_json::to_string(&lost).unwrap();
    let () = redis::cmd("ZADD")
        .arg("test:denylist")
        .arg(NOW + 3600)
        .arg(&json)
        .query_async(&mut admin)
        .await
        .map(|_: i64| ())
        .unwrap();
    assert!(!revoked(&a, "never-published"));

    // Loads allowed again: the next retry loads everything.
    let loads = source_a.stats().reloads;
    acl(&mut admin, &["+zrangebyscore"]).await;
    eventually(BOUND, || revoked(&a, "never-published"))
        .await
        .expect("the retried load brings the list whole");
    let stats = source_a.stats();
    assert!(stats.reloads > loads);
    assert_eq!(stats.last_load, Some(NOW));
    assert!(revoked(&a, "early") && revoked(&a, "late"));
    assert_eq!(a.len(), 3);
}

/// The list's key replaced by a value of another type (an operator's
/// mistake, another program on the same prefix): the load gets WRONGTYPE.
/// The mirror keeps what Redis lost, revocations published meanwhile
/// still apply, and once the key is fixed the instances write back what
/// they know and the next load finds the whole list.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_typed_list_keeps_the_mirror_and_is_repaired_once_fixed() {
    let Some(server) = RedisServer::start("redis_resync::wrongtype") else {
        return;
    };
    let url = server.url();
    let mut admin = admin(&url).await;
    let (_state_a, source_a, a) = instance(&url).await;
    let (_state_b, _source_b, b) = instance(&url).await;
    b.revoke_jti("early", NOW + 600);
    eventually(BOUND, || revoked(&a, "early"))
        .await
        .expect("a learns the first revocation");

    let () = redis::cmd("SET")
        .arg("test:denylist")
        .arg("not a sorted set")
        .query_async(&mut admin)
        .await
        .unwrap();
    let before = source_a.stats().resync_failures;
    let () = redis::cmd("CLIENT")
        .arg(&["KILL", "TYPE", "pubsub"])
        .query_async(&mut admin)
        .await
        .map(|_: i64| ())
        .unwrap();
    eventually(BOUND, || source_a.stats().resync_failures > before)
        .await
        .expect("the load after the reconnect failed (WRONGTYPE)");
    assert!(revoked(&a, "early"), "the mirror keeps what Redis lost");

    // A revocation published by another connection (b's write fails on
    // the list, its message still goes out, and is retried): applied.
    b.revoke_jti("late", NOW + 600);
    eventually(BOUND, || revoked(&a, "late"))
        .await
        .expect("a revocation published after the failed load applies");

    // The key fixed (deleted): the next load succeeds, and what Redis lost
    // is written back by the instances that know it.
    let () = redis::cmd("DEL")
        .arg("test:denylist")
        .query_async(&mut admin)
        .await
        .map(|_: i64| ())
        .unwrap();
    let loads = source_a.stats().reloads;
    eventually(BOUND, || source_a.stats().reloads > loads)
        .await
        .expect("the load is retried and succeeds");
    let (_state_c, _source_c, c) = instance(&url).await;
    eventually(BOUND, || revoked(&c, "early") && revoked(&c, "late"))
        .await
        .expect("a new instance loads the list whole again");
}
