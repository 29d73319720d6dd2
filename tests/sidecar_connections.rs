//! `tokenwarden serve` under hostile connections: slow and silent clients,
//! clients that stop reading, the connection cap and `accept` failures.
#![cfg(all(feature = "cli", feature = "testing"))]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod common;

use common::sidecar::*;
use tokenwarden::testing::TestIssuer;

/// A client that sends half a request head and stalls (slowloris), or
/// connects and says nothing, loses the connection at the header timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_stalling_mid_header_is_cut_off_at_the_timeout() {
    use tokio::io::AsyncWriteExt;
    let idp = TestIssuer::start().unwrap();
    let dir = Scratch::new("slowloris");
    let cfg = dir.write(
        "tw.toml",
        &with_server(&idp, "header_read_timeout_ms = 300"),
    );
    let side = start_sidecar(&cfg, &[]).await;

    let mut half = tokio::net::TcpStream::connect(side.addr).await.unwrap();
    half.write_all(b"GET /auth HTTP/1.1\r\nHost: x\r\nX-Original-U")
        .await
        .unwrap();
    let mut silent = tokio::net::TcpStream::connect(side.addr).await.unwrap();
    let limit = std::time::Duration::from_secs(5);
    let took = closed_within(&mut half, limit).await;
    assert!(took.is_some(), "a half-sent head holds the connection open");
    assert!(
        took.unwrap() >= std::time::Duration::from_millis(250),
        "{took:?}"
    );
    assert!(
        closed_within(&mut silent, limit).await.is_some(),
        "a silent client holds it open"
    );
    // The server still serves.
    wait_status(&format!("http://{}/healthz", side.addr), 200).await;
}

/// A client that never reads its answers (its window closed, the server's
/// writes stalled) is cut off once no byte has moved for the idle timeout,
/// and its slot under the connection cap comes back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_stops_reading_is_cut_off_at_the_idle_timeout() {
    use tokio::io::AsyncWriteExt;
    let idp = TestIssuer::start().unwrap();
    let dir = Scratch::new("idle");
    let cfg = dir.write(
        "tw.toml",
        &with_server(
            &idp,
            "header_read_timeout_ms = 60000\nidle_timeout_ms = 300\nmax_connections = 1",
        ),
    );
    let side = start_sidecar(&cfg, &[]).await;
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let mut reader = socket.connect(side.addr).await.unwrap();
    // Pipelined requests whose answers far exceed every buffer between us.
    let one = b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n";
    let many: Vec<u8> = one.iter().copied().cycle().take(one.len() * 3000).collect();
    // The server may stop reading once its writes stall: write what it
    // takes, bounded.
    let _ = tokio::time::timeout(std::time::Duration::from_secs(2), reader.write_all(&many)).await;
    // The only slot is the stalled reader's until the idle timeout frees it.
    let freed = served_connection(side.addr).await;
    drop(freed);
    drop(reader);
}

/// Past `max_connections`, new connections are closed at once; those open
/// are served, and a slot freed is used again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_past_the_cap_are_closed_and_slots_come_back() {
    let idp = TestIssuer::start().unwrap();
    let dir = Scratch::new("cap");
    let cfg = dir.write(
        "tw.toml",
        &with_server(&idp, "header_read_timeout_ms = 60000\nmax_connections = 2"),
    );
    let side = start_sidecar(&cfg, &[]).await;
    // Two connections that are served (a connection of start_sidecar's
    // probe may still hold a slot for a moment: retry, bounded).
    let first = served_connection(side.addr).await;
    let _second = served_connection(side.addr).await;
    let mut third = tokio::net::TcpStream::connect(side.addr).await.unwrap();
    assert!(
        closed_within(&mut third, std::time::Duration::from_secs(3))
            .await
            .is_some(),
        "the third connection is closed at once"
    );
    // A slot freed is taken again (bounded poll: the close is seen by the
    // server asynchronously).
    drop(first);
    wait_status(&format!("http://{}/healthz", side.addr), 200).await;
    let refused = {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        loop {
            if let Ok(r) = reqwest::get(format!("http://{}/metrics", side.addr)).await {
                break sample(
                    &r.text().await.unwrap(),
                    "tokenwarden_refused_connections_total",
                );
            }
            assert!(
                std::time::Instant::now() < deadline,
                "metrics never answered"
            );
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    };
    assert!(refused.unwrap_or(0.0) >= 1.0, "{refused:?}");
}

/// Out of file descriptors, `accept` fails until a connection closes: the
/// sidecar backs off (no busy loop), says so once, and serves again when
/// descriptors come back.
#[cfg(target_os = "linux")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accept_failing_with_emfile_backs_off_logs_once_and_recovers() {
    let idp = TestIssuer::start().unwrap();
    let dir = Scratch::new("emfile");
    let cfg = dir.write(
        "tw.toml",
        &with_server(&idp, "header_read_timeout_ms = 60000"),
    );
    let mut side = start_sidecar_with_fd_limit(&cfg, 64).await;
    let mut logs = side.stderr_lines();
    wait_status(&format!("http://{}/readyz", side.addr), 200).await;
    // Hold more connections than the sidecar has descriptors for.
    let mut held = Vec::new();
    for _ in 0..80 {
        held.push(tokio::net::TcpStream::connect(side.addr).await.unwrap());
    }
    assert!(
        logs.wait_for("accept failed; backing off").await,
        "{:#?}",
        logs.seen
    );
    // Accept keeps failing while the connections are held: with the
    // back-off (10 ms doubling to 1 s) that is a handful of attempts in a
    // second, where a busy loop makes thousands.
    let held_since = std::time::Instant::now();
    while held_since.elapsed() < std::time::Duration::from_secs(1) {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    // Descriptors come back: served again.
    drop(held);
    wait_status(&format!("http://{}/healthz", side.addr), 200).await;
    assert!(
        logs.wait_for("accepting connections again").await,
        "{:#?}",
        logs.seen
    );
    // One warning per episode, never one per failed accept. A descriptor
    // freed meanwhile (the key set's refresh closing its connection) can
    // let one accept through and start a second episode: each warning is
    // then followed by its recovery.
    let lines = logs.drain();
    let warned = lines.iter().filter(|l| l.contains("accept failed")).count();
    let recovered = lines
        .iter()
        .filter(|l| l.contains("accepting connections again"))
        .count();
    assert!(
        (1..=recovered).contains(&warned),
        "one warning per episode ({warned} warnings, {recovered} recoveries): {:#?}",
        logs.seen
    );
    let text = reqwest::get(format!("http://{}/metrics", side.addr))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let failures = sample(&text, "tokenwarden_accept_errors_total").unwrap_or(0.0);
    assert!(
        (1.0..50.0).contains(&failures),
        "{failures} failed accepts: no back-off"
    );
}
