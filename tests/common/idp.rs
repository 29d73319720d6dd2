//! A small identity provider on 127.0.0.1 for tests: OIDC discovery and a
//! JWKS endpoint over real HTTP/1.1, with switchable failure modes.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::json;
use tokenwarden::testing::{TestKey, jwks_json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// How the JWKS endpoint answers.
#[derive(Debug, Clone, PartialEq)]
pub enum Mode {
    Ok,
    Status(u16),
    /// Reads the request, then answers nothing for 30 s.
    Hang,
    /// Holds each JWKS request until [`Idp::release`], then answers as `Ok`.
    Held,
    /// 200 with a body that is not JSON.
    Garbage,
    /// 200 with `{"keys":[]}`.
    EmptySet,
    /// 200 streaming 50 MiB with no Content-Length.
    Huge,
    /// Closes the connection without answering.
    Drop,
    /// 200 with HTML.
    Html,
    /// 302 to this location.
    Redirect(String),
}

struct State {
    mode: Mutex<Mode>,
    jwks: Mutex<String>,
    issuer_override: Mutex<Option<String>>,
    cache_control: Mutex<Option<String>>,
    etag: Mutex<Option<String>>,
    discovery_padding: Mutex<usize>,
    jwks_uri_override: Mutex<Option<String>>,
    not_modified: AtomicUsize,
    /// JWKS requests seen; a watch so tests can wait for a count.
    jwks_hits: tokio::sync::watch::Sender<usize>,
    discovery_hits: AtomicUsize,
    base: String,
    /// Opened by `release` for `Mode::Held`.
    gate: tokio::sync::Semaphore,
    /// Signalled when a JWKS request starts being held.
    holding: tokio::sync::Notify,
}

#[derive(Clone)]
pub struct Idp {
    state: Arc<State>,
}

impl Idp {
    pub async fn start(keys: &[&TestKey]) -> Idp {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let state = Arc::new(State {
            mode: Mutex::new(Mode::Ok),
            jwks: Mutex::new(jwks_json(keys)),
            issuer_override: Mutex::new(None),
            cache_control: Mutex::new(None),
            etag: Mutex::new(None),
            discovery_padding: Mutex::new(0),
            jwks_uri_override: Mutex::new(None),
            not_modified: AtomicUsize::new(0),
            jwks_hits: tokio::sync::watch::Sender::new(0),
            discovery_hits: AtomicUsize::new(0),
            base,
            gate: tokio::sync::Semaphore::new(0),
            holding: tokio::sync::Notify::new(),
        });
        let s = state.clone();
        tokio::spawn(async move {
            loop {
                let Ok((conn, _)) = listener.accept().await else {
                    return;
                };
                tokio::spawn(serve(conn, s.clone()));
            }
        });
        Idp { state }
    }

    /// The issuer URL (also the discovery base).
    pub fn issuer(&self) -> String {
        self.state.base.clone()
    }

    pub fn jwks_url(&self) -> String {
        format!("{}/jwks", self.state.base)
    }

    pub fn set_keys(&self, keys: &[&TestKey]) {
        *self.state.jwks.lock().unwrap() = jwks_json(keys);
    }

    /// Serves this exact text as the JWK Set.
    pub fn set_jwks_text(&self, text: String) {
        *self.state.jwks.lock().unwrap() = text;
    }

    /// Pads the discovery document with this many trailing spaces.
    pub fn set_discovery_padding(&self, spaces: usize) {
        *self.state.discovery_padding.lock().unwrap() = spaces;
    }

    /// Makes discovery name this `jwks_uri` (a hostile one) instead of ours.
    pub fn set_jwks_uri(&self, uri: Option<&str>) {
        *self.state.jwks_uri_override.lock().unwrap() = uri.map(str::to_owned);
    }

    pub fn set_mode(&self, mode: Mode) {
        *self.state.mode.lock().unwrap() = mode;
    }

    /// Makes discovery name another issuer.
    pub fn set_discovery_issuer(&self, issuer: Option<&str>) {
        *self.state.issuer_override.lock().unwrap() = issuer.map(str::to_owned);
    }

    pub fn set_cache_control(&self, value: Option<&str>) {
        *self.state.cache_control.lock().unwrap() = value.map(str::to_owned);
    }

    /// Serves this ETag, and 304 to a matching If-None-Match.
    pub fn set_etag(&self, etag: Option<&str>) {
        *self.state.etag.lock().unwrap() = etag.map(str::to_owned);
    }

    /// How many 304 answers were sent.
    pub fn not_modified(&self) -> usize {
        self.state.not_modified.load(Ordering::SeqCst)
    }

    /// Returns once a JWKS request is being held (`Mode::Held`).
    pub async fn held(&self) {
        self.state.holding.notified().await;
    }

    /// Lets every held JWKS request, and all later ones, be answered.
    pub fn release(&self) {
        self.state
            .gate
            .add_permits(tokio::sync::Semaphore::MAX_PERMITS / 2);
    }

    pub fn jwks_hits(&self) -> usize {
        *self.state.jwks_hits.borrow()
    }

    /// Waits until at least `n` JWKS requests have arrived; fails the test
    /// with a message after `DEADLINE`.
    pub async fn wait_for_jwks_hits(&self, n: usize) {
        let mut rx = self.state.jwks_hits.subscribe();
        let waited = tokio::time::timeout(DEADLINE, rx.wait_for(|hits| *hits >= n)).await;
        assert!(
            matches!(waited, Ok(Ok(_))),
            "the IdP saw {} JWKS requests, not {n}, within {DEADLINE:?}",
            self.jwks_hits()
        );
    }

    pub fn discovery_hits(&self) -> usize {
        self.state.discovery_hits.load(Ordering::SeqCst)
    }
}

async fn serve(mut conn: TcpStream, state: Arc<State>) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 1024];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        match conn.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
        if buf.len() > 16 * 1024 {
            return;
        }
    }
    let head = String::from_utf8_lossy(&buf);
    let path = head.split_whitespace().nth(1).unwrap_or("/").to_owned();
    if path == "/.well-known/openid-configuration" {
        state.discovery_hits.fetch_add(1, Ordering::SeqCst);
        let issuer = state
            .issuer_override
            .lock()
            .unwrap()
            .clone()
            .unwrap_or_else(|| state.base.clone());
        let jwks_uri = state
            .jwks_uri_override
            .lock()
            .unwrap()
            .clone()
            .unwrap_or_else(|| format!("{}/jwks", state.base));
        let mut body = json!({"issuer": issuer, "jwks_uri": jwks_uri}).to_string();
        let pad = *state.discovery_padding.lock().unwrap();
        body.push_str(&" ".repeat(pad));
        respond(&mut conn, 200, "application/json", None, &body).await;
        return;
    }
    if let Some(n) = path.strip_prefix("/hop/") {
        // A redirect chain: /hop/N -> /hop/N-1 -> ... -> /jwks.
        let n: usize = n.parse().unwrap_or(0);
        let next = if n == 0 {
            "/jwks".to_owned()
        } else {
            format!("/hop/{}", n - 1)
        };
        redirect(&mut conn, &format!("{}{next}", state.base)).await;
        return;
    }
    if path != "/jwks" {
        respond(&mut conn, 404, "text/plain", None, "not found").await;
        return;
    }
    state.jwks_hits.send_modify(|n| *n += 1);
    let mut mode = state.mode.lock().unwrap().clone();
    if matches!(mode, Mode::Held) {
        state.holding.notify_one();
        let _ = state.gate.acquire().await;
        mode = Mode::Ok;
    }
    let cache = state.cache_control.lock().unwrap().clone();
    let etag = state.etag.lock().unwrap().clone();
    match mode {
        Mode::Ok => {
            if let Some(tag) = &etag {
                if head
                    .lines()
                    .any(|l| l.eq_ignore_ascii_case(&format!("if-none-match: {tag}")))
                {
                    state.not_modified.fetch_add(1, Ordering::SeqCst);
                    let msg = format!(
                        "HTTP/1.1 304 Not Modified\r\nETag: {tag}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                    );
                    let _ = conn.write_all(msg.as_bytes()).await;
                    return;
                }
            }
            let body = state.jwks.lock().unwrap().clone();
            let extra = match (&cache, &etag) {
                (Some(c), Some(t)) => Some(format!("{c}\r\nETag: {t}")),
                (Some(c), None) => Some(c.clone()),
                (None, Some(t)) => Some(format!("no-cache\r\nETag: {t}")),
                (None, None) => None,
            };
            respond(&mut conn, 200, "application/json", extra.as_deref(), &body).await;
        }
        Mode::Redirect(to) => redirect(&mut conn, &to).await,
        Mode::Status(code) => respond(&mut conn, code, "text/plain", None, "oops").await,
        Mode::Hang => tokio::time::sleep(Duration::from_secs(30)).await,
        // Released above and answered as `Ok`.
        Mode::Held => {}
        Mode::Garbage => {
            respond(
                &mut conn,
                200,
                "application/json",
                None,
                "{\"keys\": [garbage",
            )
            .await
        }
        Mode::EmptySet => respond(&mut conn, 200, "application/json", None, r#"{"keys":[]}"#).await,
        Mode::Html => respond(&mut conn, 200, "text/html", None, "<html>login</html>").await,
        Mode::Drop => drop(conn),
        Mode::Huge => {
            let head = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n{\"keys\":[";
            if conn.write_all(head.as_bytes()).await.is_err() {
                return;
            }
            let block = vec![b' '; 64 * 1024];
            for _ in 0..(50 * 16) {
                if conn.write_all(&block).await.is_err() {
                    return; // the client stopped reading: as it should
                }
            }
        }
    }
}

/// How long a test waits for something that should happen at once, on a
/// loaded 2-core machine.
pub const DEADLINE: Duration = Duration::from_secs(60);

/// A listener on 127.0.0.1 that only counts the connections made to it and
/// closes them: stands at a URL that must never be fetched.
pub struct CountingListener {
    port: u16,
    connections: Arc<AtomicUsize>,
}

impl CountingListener {
    pub async fn start() -> CountingListener {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let connections = Arc::new(AtomicUsize::new(0));
        let counter = connections.clone();
        tokio::spawn(async move {
            while let Ok((conn, _)) = listener.accept().await {
                counter.fetch_add(1, Ordering::SeqCst);
                drop(conn);
            }
        });
        CountingListener { port, connections }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `http://127.0.0.1:<port><path>`.
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }
}

async fn redirect(conn: &mut TcpStream, location: &str) {
    let msg = format!(
        "HTTP/1.1 302 Found\r\nLocation: {location}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    );
    let _ = conn.write_all(msg.as_bytes()).await;
    let _ = conn.shutdown().await;
}

async fn respond(conn: &mut TcpStream, status: u16, ctype: &str, cache: Option<&str>, body: &str) {
    let cache = cache
        .map(|c| format!("Cache-Control: {c}\r\n"))
        .unwrap_or_default();
    let msg = format!(
        "HTTP/1.1 {status} X\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\n{cache}Connection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = conn.write_all(msg.as_bytes()).await;
    let _ = conn.shutdown().await;
}
