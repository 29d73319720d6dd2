//! A real `redis-server` for the tests: started on 127.0.0.1 on a free
//! port, in its own temporary directory, without persistence (`--save ""
//! --appendonly no`); stopped and started again on the same port.
//!
//! When `redis-server` is not installed the tests that need it are skipped
//! with a message, unless `CI` or `TOKENWARDEN_REQUIRE_REDIS` is set (as
//! scripts/test.sh does when redis-server is installed): then they fail, as
//! they do whenever an installed server cannot be started.

use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use std::io::{Read, Write};

/// One `redis-server` child process.
pub struct RedisServer {
    port: u16,
    dir: PathBuf,
    child: Option<Child>,
}

fn binary() -> Option<PathBuf> {
    for dir in std::env::var("PATH")
        .unwrap_or_default()
        .split(':')
        .chain(["/usr/sbin", "/usr/bin"])
    {
        let p = PathBuf::from(dir).join("redis-server");
        if p.is_file() {
            return Some(p);
        }
    }
    None
}

impl RedisServer {
    /// Starts a server, or `None` (after saying so) when `redis-server` is
    /// not installed and neither `CI` nor `TOKENWARDEN_REQUIRE_REDIS` is
    /// set. With either, a missing server fails.
    pub fn start(test: &str) -> Option<RedisServer> {
        if binary().is_none() {
            if std::env::var_os("CI").is_some() {
                panic!(
                    "{test}: redis-server is not installed, and CI is set: scripts/test.sh installs it"
                );
            }
            if std::env::var_os("TOKENWARDEN_REQUIRE_REDIS").is_some() {
                panic!(
                    "{test}: redis-server is required (TOKENWARDEN_REQUIRE_REDIS) but not installed"
                );
            }
            super::skipped(
                test,
                "redis-server is not installed (scripts/test.sh installs it)",
            );
            return None;
        }
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let dir =
            std::env::temp_dir().join(format!("tokenwarden-redis-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let mut server = RedisServer {
            port,
            dir,
            child: None,
        };
        server.start_again();
        Some(server)
    }

    /// `redis://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Starts the server (again) on the same port; returns once it answers PING.
    pub fn start_again(&mut self) {
        assert!(self.child.is_none(), "already running");
        let child = Command::new(binary().expect("redis-server"))
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(&self.dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server starts");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while !self.pings() {
            assert!(
                Instant::now() < deadline,
                "redis-server did not answer within 10 s"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Stops the server (SIGKILL: an outage, not a shutdown) and waits for it.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Whether the server answers PING now.
    pub fn pings(&self) -> bool {
        let Ok(mut s) = TcpStream::connect(("127.0.0.1", self.port)) else {
            return false;
        };
        let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
        if s.write_all(b"PING\r\n").is_err() {
            return false;
        }
        let mut buf = [0u8; 7];
        s.read_exact(&mut buf).is_ok() && &buf == b"+PONG\r\n"
    }

    /// Every key in the server (KEYS *), for checks on what is stored.
    pub fn keys(&self) -> Vec<String> {
        let mut s = TcpStream::connect(("127.0.0.1", self.port)).expect("connect");
        s.set_read_timeout(Some(Duration::from_millis(500)))
            .unwrap();
        s.write_all(b"KEYS *\r\n").unwrap();
        let mut out = Vec::new();
        let mut buf = [0u8; 4096];
        // The reply is small in the tests: read until a short pause.
        while let Ok(n) = s.read(&mut buf) {
            if n == 0 {
                break;
            }
            out.extend_from_slice(&buf[..n]);
            if out.ends_with(b"\r\n") && resp_complete(&out) {
                break;
            }
        }
        let text = String::from_utf8_lossy(&out).into_owned();
        text.split("\r\n")
            .filter(|l| !l.is_empty() && !l.starts_with('*') && !l.starts_with('$'))
            .map(str::to_owned)
            .collect()
    }
}

/// Whether a RESP array reply of bulk strings is complete.
fn resp_complete(out: &[u8]) -> bool {
    let text = String::from_utf8_lossy(out);
    let mut lines = text.split("\r\n");
    let Some(head) = lines.next() else {
        return false;
    };
    let Ok(n) = head.trim_start_matches('*').parse::<usize>() else {
        return true;
    };
    text.split("\r\n").filter(|l| !l.is_empty()).count() > 2 * n
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Polls `cond` every few milliseconds until it holds or `within` passes:
/// a bounded wait on another process (Redis, pub/sub), never a fixed sleep.
pub async fn eventually(within: Duration, mut cond: impl FnMut() -> bool) -> Option<Duration> {
    let start = Instant::now();
    while start.elapsed() < within {
        if cond() {
            return Some(start.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    cond().then(|| start.elapsed())
}
