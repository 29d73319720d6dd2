//! The test issuer's RFC 7662 introspection endpoint: opaque tokens,
//! client authentication, revocation, RFC 9701 signed answers and outages.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use http_body_util::Full;
use hyper::body::Bytes;
use hyper::{Response, StatusCode};
use serde_json::{Map, Value, json};

use super::{Shared, TestIssuer, lock};
use crate::keys::KeySet;
use crate::validator::Validator;

/// How the introspection endpoint fails, for outage tests
/// ([`TestIssuer::set_introspection_outage`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum IntrospectionOutage {
    /// Answers this status with a JSON error body.
    Status(u16),
    /// Reads the request and never answers.
    Hang,
    /// 200 `application/json` with a body that is not JSON.
    Garbage,
    /// 200 `text/html`: a login or error page.
    Html,
    /// Closes the connection without answering.
    Drop,
    /// Answers as usual, but only after this long (a slow endpoint).
    Slow(std::time::Duration),
}

/// A client of the introspection endpoint and how it proves itself.
enum ClientCred {
    Secret(String),
    Key(std::sync::Arc<KeySet>),
}

/// The endpoint's state.
#[derive(Default)]
pub(super) struct State {
    /// Opaque token -> its answer (`active` included).
    tokens: Mutex<HashMap<String, Map<String, Value>>>,
    clients: Mutex<HashMap<String, ClientCred>>,
    outage: Mutex<Option<IntrospectionOutage>>,
    /// The status answered for a token never issued, instead of
    /// `{"active": false}`.
    unknown_status: Mutex<Option<u16>>,
    jwt: AtomicBool,
    calls: AtomicU64,
    in_flight: AtomicU64,
    max_in_flight: AtomicU64,
}

/// Counts a request in flight while alive.
struct InFlight<'s>(&'s State);

impl<'s> InFlight<'s> {
    fn new(s: &'s State) -> Self {
        let n = s.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        s.max_in_flight.fetch_max(n, Ordering::SeqCst);
        InFlight(s)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

/// The issuer's clock, for the client assertion's validator.
#[derive(Debug)]
struct SharedClock(std::sync::Arc<dyn crate::clock::Clock>);

impl crate::clock::Clock for SharedClock {
    fn now(&self) -> i64 {
        self.0.now()
    }
}

/// The connection is dropped without an answer
/// ([`IntrospectionOutage::Drop`]).
#[derive(Debug)]
pub(super) struct Dropped;

impl std::fmt::Display for Dropped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("connection dropped (outage)")
    }
}

impl std::error::Error for Dropped {}

/// An opaque token being issued by [`TestIssuer::opaque_token`].
#[derive(Debug)]
#[must_use = "call .issue() to get the token"]
pub struct OpaqueMint<'i> {
    issuer: &'i TestIssuer,
    answer: Map<String, Value>,
}

impl OpaqueMint<'_> {
    /// Sets `sub`.
    pub fn subject(self, sub: &str) -> Self {
        self.claim("sub", sub)
    }

    /// Sets `aud` to one audience.
    pub fn audience(self, aud: &str) -> Self {
        self.claim("aud", aud)
    }

    /// Sets `scope` (space-separated).
    pub fn scope(self, scope: &str) -> Self {
        self.claim("scope", scope)
    }

    /// Sets `exp` this many seconds from the issuer's clock (negative:
    /// past). The endpoint answers what was issued, `active` included,
    /// even past `exp`: a service's own `exp` check is what is tested.
    pub fn expires_in(self, seconds: i64) -> Self {
        let exp = self.issuer.shared.clock.now() + seconds;
        self.claim("exp", exp)
    }

    /// Makes the token expired an hour ago.
    pub fn expired(self) -> Self {
        self.expires_in(-3600)
    }

    /// Sets `active` (default `true`).
    pub fn active(self, active: bool) -> Self {
        self.claim("active", active)
    }

    /// Sets any member of the answer (replacing one already set).
    pub fn claim(mut self, name: &str, value: impl Into<Value>) -> Self {
        self.answer.insert(name.to_owned(), value.into());
        self
    }

    /// Removes a member of the answer, e.g. `exp`.
    pub fn without(mut self, name: &str) -> Self {
        self.answer.remove(name);
        self
    }

    /// Issues the token: 32 random bytes, base64url, prefixed `opaque-`.
    pub fn issue(self) -> String {
        let mut raw = [0u8; 32];
        let _ = crate::crypto::random_bytes(&mut raw);
        let token = format!("opaque-{}", URL_SAFE_NO_PAD.encode(raw));
        lock(&self.issuer.shared.introspection.tokens).insert(token.clone(), self.answer);
        token
    }
}

impl TestIssuer {
    /// Starts an opaque token, known to `/introspect`: `active`, `iss`,
    /// `iat`, `exp`, `token_type` (`Bearer`) filled in; add members and
    /// [`issue`](OpaqueMint::issue).
    pub fn opaque_token(&self) -> OpaqueMint<'_> {
        let now = self.shared.clock.now();
        let mut answer = Map::new();
        answer.insert("active".into(), json!(true));
        answer.insert("iss".into(), json!(self.issuer));
        answer.insert("iat".into(), json!(now));
        answer.insert("exp".into(), json!(now + self.shared.lifetime));
        answer.insert("token_type".into(), json!("Bearer"));
        OpaqueMint {
            issuer: self,
            answer,
        }
    }

    /// Revokes an opaque token: `/introspect` answers `{"active": false}`
    /// from now on. Returns whether the token was known.
    pub fn revoke(&self, token: &str) -> bool {
        match lock(&self.shared.introspection.tokens).get_mut(token) {
            Some(answer) => {
                answer.insert("active".into(), json!(false));
                true
            }
            None => false,
        }
    }

    /// The introspection endpoint's URL (also in discovery).
    pub fn introspection_url(&self) -> String {
        format!("{}/introspect", self.issuer)
    }

    /// Registers a client of `/introspect` authenticating with a secret
    /// (`client_secret_basic` or `client_secret_post`).
    pub fn introspection_client_secret(&self, client_id: &str, secret: &str) {
        lock(&self.shared.introspection.clients)
            .insert(client_id.to_owned(), ClientCred::Secret(secret.to_owned()));
    }

    /// Registers a client of `/introspect` authenticating with
    /// `private_key_jwt` (RFC 7523): its public JWK (with `alg`).
    ///
    /// # Errors
    /// When the JWK is not a usable public key.
    pub fn introspection_client_jwk(
        &self,
        client_id: &str,
        jwk: &Value,
    ) -> Result<(), crate::error::BuildError> {
        let set = json!({ "keys": [jwk] }).to_string();
        let keys = KeySet::from_jwks(set.as_bytes())
            .map_err(|e| crate::error::BuildError::new(format!("client key: {e}")))?;
        lock(&self.shared.introspection.clients).insert(
            client_id.to_owned(),
            ClientCred::Key(std::sync::Arc::new(keys)),
        );
        Ok(())
    }

    /// Makes `/introspect` fail as `outage` says, or (`None`) answer again.
    pub fn set_introspection_outage(&self, outage: Option<IntrospectionOutage>) {
        *lock(&self.shared.introspection.outage) = outage;
    }

    /// Answers `status` (with `{"error": "invalid_request"}`) for a token
    /// it never issued, as IdPs that refuse a token not in their format
    /// do, instead of `{"active": false}`; `None`: back to the latter.
    pub fn set_introspection_unknown_token_status(&self, status: Option<u16>) {
        *lock(&self.shared.introspection.unknown_status) = status;
    }

    /// Answers RFC 9701 signed JWTs to clients that ask for them (`Accept:
    /// application/token-introspection+jwt`).
    pub fn introspection_jwt_responses(&self, on: bool) {
        self.shared.introspection.jwt.store(on, Ordering::SeqCst);
    }

    /// The most requests `/introspect` has served at once.
    pub fn introspection_max_in_flight(&self) -> u64 {
        self.shared
            .introspection
            .max_in_flight
            .load(Ordering::SeqCst)
    }

    /// Requests `/introspect` has received, failed ones included.
    pub fn introspection_calls(&self) -> u64 {
        self.shared.introspection.calls.load(Ordering::SeqCst)
    }
}

fn reply(status: StatusCode, content_type: &'static str, body: String) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    r.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static(content_type),
    );
    r.headers_mut().insert(
        hyper::header::CACHE_CONTROL,
        hyper::header::HeaderValue::from_static("no-store"),
    );
    r
}

fn error(status: StatusCode, code: &str) -> Response<Full<Bytes>> {
    reply(
        status,
        "application/json",
        json!({ "error": code }).to_string(),
    )
}

/// `POST /introspect` (RFC 7662 §2).
pub(super) async fn handle(
    shared: &Shared,
    parts: &hyper::http::request::Parts,
    body: &[u8],
) -> Result<Response<Full<Bytes>>, Dropped> {
    let state = &shared.introspection;
    state.calls.fetch_add(1, Ordering::SeqCst);
    let _in_flight = InFlight::new(state);
    // Long enough for concurrent callers to overlap, as a real IdP's
    // latency would make them.
    tokio::time::sleep(std::time::Duration::from_millis(1)).await;
    let outage = *lock(&state.outage);
    match outage {
        Some(IntrospectionOutage::Drop) => return Err(Dropped),
        Some(IntrospectionOutage::Hang) => {
            std::future::pending::<()>().await;
        }
        Some(IntrospectionOutage::Slow(d)) => tokio::time::sleep(d).await,
        Some(IntrospectionOutage::Status(s)) => {
            let s = StatusCode::from_u16(s).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            return Ok(error(s, "server_error"));
        }
        Some(IntrospectionOutage::Garbage) => {
            return Ok(reply(
                StatusCode::OK,
                "application/json",
                "\u{1}{\"active\":tru".into(),
            ));
        }
        Some(IntrospectionOutage::Html) => {
            return Ok(reply(
                StatusCode::OK,
                "text/html",
                "<html><body>Please log in</body></html>".into(),
            ));
        }
        None => {}
    }
    if !shared.up.load(Ordering::SeqCst) {
        return Ok(error(
            StatusCode::SERVICE_UNAVAILABLE,
            "temporarily_unavailable",
        ));
    }
    if parts.method != hyper::Method::POST {
        return Ok(error(StatusCode::METHOD_NOT_ALLOWED, "invalid_request"));
    }
    let form: HashMap<String, String> = url::form_urlencoded::parse(body).into_owned().collect();
    let Some(client_id) = authenticate(shared, parts, &form) else {
        return Ok(error(StatusCode::UNAUTHORIZED, "invalid_client"));
    };
    let Some(token) = form.get("token") else {
        return Ok(error(StatusCode::BAD_REQUEST, "invalid_request"));
    };
    let unknown_status = *lock(&state.unknown_status);
    if let Some(s) = unknown_status {
        if !lock(&state.tokens).contains_key(token) {
            let s = StatusCode::from_u16(s).unwrap_or(StatusCode::BAD_REQUEST);
            return Ok(error(s, "invalid_request"));
        }
    }
    let answer = lock(&state.tokens)
        .get(token)
        .filter(|a| a.get("active") == Some(&Value::Bool(true)))
        .cloned()
        // RFC 7662 §2.2: an unknown or revoked token is only inactive.
        .unwrap_or_else(|| {
            let mut m = Map::new();
            m.insert("active".into(), json!(false));
            m
        });
    let wants_jwt = parts
        .headers
        .get(hyper::header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("application/token-introspection+jwt"));
    if wants_jwt && state.jwt.load(Ordering::SeqCst) {
        // RFC 9701 §5.
        let key = shared.signing_key();
        let header =
            json!({"alg": key.alg().as_str(), "kid": key.kid(), "typ": "token-introspection+jwt"});
        let claims = json!({
            "iss": shared.issuer,
            "aud": client_id,
            "iat": shared.clock.now(),
            "token_introspection": answer,
        });
        return Ok(reply(
            StatusCode::OK,
            "application/token-introspection+jwt",
            key.token_with_header(&header, &claims),
        ));
    }
    Ok(reply(
        StatusCode::OK,
        "application/json",
        Value::Object(answer).to_string(),
    ))
}

/// The client's id, if it proved itself (RFC 6749 §2.3, RFC 7523 §3).
fn authenticate(
    shared: &Shared,
    parts: &hyper::http::request::Parts,
    form: &HashMap<String, String>,
) -> Option<String> {
    let clients = lock(&shared.introspection.clients);
    let basic = parts
        .headers
        .get(hyper::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(|b| STANDARD.decode(b.trim()).ok())
        .and_then(|b| String::from_utf8(b).ok());
    if let Some(pair) = basic {
        let (id, secret) = pair.split_once(':')?;
        let decode = |s: &str| -> String {
            url::form_urlencoded::parse(format!("x={s}").as_bytes())
                .next()
                .map(|(_, v)| v.into_owned())
                .unwrap_or_default()
        };
        let (id, secret) = (decode(id), decode(secret));
        return match clients.get(&id) {
            Some(ClientCred::Secret(s)) if equal(s, &secret) => Some(id),
            _ => None,
        };
    }
    if let Some(assertion) = form.get("client_assertion") {
        if form.get("client_assertion_type").map(String::as_str)
            != Some("urn:ietf:params:oauth:client-assertion-type:jwt-bearer")
        {
            return None;
        }
        let id = form.get("client_id")?;
        let Some(ClientCred::Key(keys)) = clients.get(id) else {
            return None;
        };
        // RFC 7523 §3: iss and sub the client, aud the issuer or endpoint,
        // exp present; signed by the registered key.
        let v = Validator::builder()
            .issuer(id.as_str())
            .audience(shared.issuer.as_str())
            .audience(format!("{}/introspect", shared.issuer))
            .keys(keys.clone())
            .require_claim("jti")
            .clock(SharedClock(shared.clock.clone()))
            .build()
            .ok()?;
        let claims = v.validate_json(assertion).ok()?.claims;
        return (claims.get("sub").and_then(Value::as_str) == Some(id.as_str()))
            .then(|| id.clone());
    }
    let id = form.get("client_id")?;
    let secret = form.get("client_secret")?;
    match clients.get(id) {
        Some(ClientCred::Secret(s)) if equal(s, secret) => Some(id.clone()),
        _ => None,
    }
}

/// Constant-time comparison of two secrets.
fn equal(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}
