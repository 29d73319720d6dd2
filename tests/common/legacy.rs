//! A legacy session service on 127.0.0.1 for tests: answers `GET /whoami`
//! from the `Cookie` or `Authorization` it is sent, counts calls and the
//! most in flight at once, and can be made to hold, fail or drop.

use std::collections::{HashMap, HashSet};
use std::convert::Infallible;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use http_body_util::Full;
use hyper::body::Bytes;
use hyper::{Request, Response};
use serde_json::Value;
use tokio::net::TcpListener;

/// How the service answers.
#[derive(Debug, Clone, PartialEq)]
pub enum Mode {
    /// 200 with the session's body for a known credential, 401 otherwise.
    Ok,
    /// This status, for every request.
    Status(u16),
    /// Closes each connection without answering (an outage).
    Drop,
    /// 200 with a body of this many bytes.
    Huge(usize),
}

#[derive(Default)]
struct State {
    mode: Mutex<Option<Mode>>,
    /// The forwarded header value (`SID=…` or `Basic …`) -> the body.
    sessions: Mutex<HashMap<String, Value>>,
    /// Credentials (the forwarded value) held until `release`.
    held: Mutex<HashSet<String>>,
    hold_all: Mutex<bool>,
    gate: tokio::sync::Notify,
    released: std::sync::atomic::AtomicBool,
    calls: AtomicUsize,
    in_flight: AtomicUsize,
    max_in_flight: AtomicUsize,
    /// In flight now, watched by tests.
    in_flight_watch: tokio::sync::watch::Sender<usize>,
    /// Header names of the last request, and its credential header value.
    last_headers: Mutex<Vec<String>>,
}

#[derive(Clone)]
pub struct LegacyServer {
    state: Arc<State>,
    pub url: String,
}

impl LegacyServer {
    pub async fn start() -> LegacyServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/whoami", listener.local_addr().unwrap());
        let state = Arc::new(State::default());
        let s = state.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let s = s.clone();
                tokio::spawn(async move {
                    if *s.mode.lock().unwrap() == Some(Mode::Drop) {
                        drop(stream);
                        return;
                    }
                    let svc = hyper::service::service_fn(move |req| {
                        let s = s.clone();
                        async move { Ok::<_, Infallible>(answer(&s, req).await) }
                    });
                    let io = hyper_util::rt::TokioIo::new(stream);
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(io, svc)
                        .await;
                });
            }
        });
        LegacyServer { state, url }
    }

    /// A session: requests forwarding `credential` (`SID=abc`, `Basic …`)
    /// get `body`.
    pub fn add(&self, credential: &str, body: Value) {
        self.state
            .sessions
            .lock()
            .unwrap()
            .insert(credential.into(), body);
    }

    pub fn set_mode(&self, mode: Mode) {
        *self.state.mode.lock().unwrap() = Some(mode);
    }

    /// Holds requests forwarding `credential` until `release`.
    pub fn hold(&self, credential: &str) {
        self.state.held.lock().unwrap().insert(credential.into());
    }

    /// Holds every request until `release`.
    pub fn hold_all(&self) {
        *self.state.hold_all.lock().unwrap() = true;
    }

    /// Lets every held request (and later ones) through.
    pub fn release(&self) {
        self.state.released.store(true, Ordering::SeqCst);
        self.state.held.lock().unwrap().clear();
        *self.state.hold_all.lock().unwrap() = false;
        self.state.gate.notify_waiters();
    }

    pub fn calls(&self) -> usize {
        self.state.calls.load(Ordering::SeqCst)
    }

    pub fn max_in_flight(&self) -> usize {
        self.state.max_in_flight.load(Ordering::SeqCst)
    }

    /// Waits until `n` requests are in flight at once.
    pub async fn wait_in_flight(&self, n: usize) {
        let mut rx = self.state.in_flight_watch.subscribe();
        rx.wait_for(|v| *v >= n).await.unwrap();
    }

    /// The header names of the last request.
    pub fn last_headers(&self) -> Vec<String> {
        self.state.last_headers.lock().unwrap().clone()
    }
}

fn credential_of(req: &Request<hyper::body::Incoming>) -> String {
    for name in ["cookie", "authorization", "x-session"] {
        if let Some(v) = req.headers().get(name) {
            return String::from_utf8_lossy(v.as_bytes()).into_owned();
        }
    }
    String::new()
}

async fn answer(s: &State, req: Request<hyper::body::Incoming>) -> Response<Full<Bytes>> {
    s.calls.fetch_add(1, Ordering::SeqCst);
    let now = s.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
    s.max_in_flight.fetch_max(now, Ordering::SeqCst);
    s.in_flight_watch.send_replace(now);
    *s.last_headers.lock().unwrap() = req.headers().keys().map(|k| k.to_string()).collect();
    let credential = credential_of(&req);
    loop {
        let notified = s.gate.notified();
        let held = *s.hold_all.lock().unwrap() || s.held.lock().unwrap().contains(&credential);
        if !held {
            break;
        }
        notified.await;
    }
    let mode = s.mode.lock().unwrap().clone().unwrap_or(Mode::Ok);
    let session = s.sessions.lock().unwrap().get(&credential).cloned();
    let (status, body) = match (mode, session) {
        (Mode::Status(code), _) => (code, "{}".to_owned()),
        (Mode::Huge(n), _) => (200, format!("{{\"sub\":\"{}\"}}", "a".repeat(n))),
        (_, Some(body)) => (200, body.to_string()),
        (_, None) => (401, "{}".to_owned()),
    };
    let now = s.in_flight.fetch_sub(1, Ordering::SeqCst) - 1;
    s.in_flight_watch.send_replace(now);
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body)))
        .unwrap()
}
