//! [`TestIssuer`]: a real identity provider on a loopback port for tests.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::{Method, Request, Response, StatusCode};
use serde_json::{Map, Value, json};

use super::TestKey;

mod introspect;
use crate::alg::Algorithm;
use crate::clock::{Clock, SystemClock};
use crate::error::BuildError;
pub use introspect::{IntrospectionOutage, OpaqueMint};

mod exchange;
pub use exchange::GRANT_TYPE as GRANT_TYPE_TOKEN_EXCHANGE;

/// A development identity provider on `127.0.0.1` and an ephemeral port:
/// OpenID discovery, a JWK Set, a client-credentials token endpoint, key
/// rotation and outages on demand. It runs on its own thread, so it serves
/// sync and async tests alike, and stops when dropped.
///
/// | path | answers |
/// |---|---|
/// | `/.well-known/openid-configuration` | discovery: `issuer`, `jwks_uri`, `token_endpoint` |
/// | `/jwks` | the published keys |
/// | `POST /token` | `grant_type=client_credentials` for a registered client (form or HTTP Basic); RFC 8693 token exchange ([`GRANT_TYPE_TOKEN_EXCHANGE`](super::GRANT_TYPE_TOKEN_EXCHANGE)) of a token it issued, `may_act` honoured, scopes only narrowed, `act` recording the client |
/// | `POST /introspect` | RFC 7662 for [`opaque_token`](TestIssuer::opaque_token)s, clients by secret (Basic or form) or `private_key_jwt`; RFC 9701 signed answers and outages on demand |
///
/// ```
/// # #[cfg(feature = "remote")] {
/// use serde_json::json;
/// use tokenwarden::remote::RemoteKeySet;
/// use tokenwarden::testing::TestIssuer;
/// use tokenwarden::Validator;
///
/// # tokio::runtime::Builder::new_current_thread().enable_all().build()?.block_on(async {
/// let idp = TestIssuer::start()?;
/// let keys = RemoteKeySet::builder()
///     .discovery(idp.issuer())
///     .allow_http_loopback(true)
///     .build()?;
/// keys.refresh().await?;
/// let validator = Validator::builder()
///     .issuer(idp.issuer())
///     .audience("api")
///     .keys(keys)
///     .build()?;
///
/// let token = idp.token().audience("api").subject("alice").scope("orders:read").sign();
/// assert_eq!(validator.validate_json(&token)?.claims["sub"], "alice");
///
/// let expired = idp.token().audience("api").expired().sign();
/// assert_eq!(validator.validate_json(&expired).unwrap_err().kind().as_str(), "expired");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # })?;
/// # }
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct TestIssuer {
    shared: Arc<Shared>,
    addr: SocketAddr,
    issuer: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for TestIssuer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestIssuer")
            .field("issuer", &self.issuer)
            .finish_non_exhaustive()
    }
}

/// Settings for a [`TestIssuer`]: `TestIssuer::builder()…start()`.
#[derive(Debug)]
pub struct TestIssuerBuilder {
    alg: Algorithm,
    lifetime: i64,
    clock: Arc<dyn Clock>,
    clients: BTreeMap<String, Client>,
}

#[derive(Debug, Clone)]
struct Client {
    secret: String,
    audience: String,
    scopes: Vec<String>,
}

/// How often each endpoint was asked.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct IssuerStats {
    /// Requests for the discovery document.
    pub discovery: u64,
    /// Requests for the JWK Set.
    pub jwks: u64,
    /// Requests to the token endpoint.
    pub token: u64,
}

struct Shared {
    alg: Algorithm,
    lifetime: i64,
    clock: Arc<dyn Clock>,
    clients: BTreeMap<String, Client>,
    keys: Mutex<Keys>,
    up: AtomicBool,
    next_kid: AtomicU64,
    discovery: AtomicU64,
    jwks: AtomicU64,
    token: AtomicU64,
    issuer: String,
    introspection: introspect::State,
}

struct Keys {
    /// Signs; published.
    current: Arc<TestKey>,
    /// Published still, no longer signing.
    older: Vec<Arc<TestKey>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl TestIssuerBuilder {
    /// The signing algorithm (default ES256; RSA keys take longer to make).
    pub fn algorithm(mut self, alg: Algorithm) -> Self {
        self.alg = alg;
        self
    }

    /// Lifetime of minted tokens in seconds (default 300).
    pub fn token_lifetime(mut self, seconds: i64) -> Self {
        self.lifetime = seconds;
        self
    }

    /// The clock that stamps `iat` and `exp` (default: the system clock).
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// Registers a client for the token endpoint: its secret, the audience
    /// its tokens carry and the scopes it may be granted.
    pub fn client(mut self, id: &str, secret: &str, audience: &str, scopes: &[&str]) -> Self {
        self.clients.insert(
            id.to_owned(),
            Client {
                secret: secret.to_owned(),
                audience: audience.to_owned(),
                scopes: scopes.iter().map(|s| (*s).to_owned()).collect(),
            },
        );
        self
    }

    /// Generates the first key, binds `127.0.0.1:0` and starts serving.
    ///
    /// # Errors
    /// When a key cannot be generated or the port cannot be bound.
    pub fn start(self) -> Result<TestIssuer, BuildError> {
        let first = TestKey::generate(self.alg, format!("{}-1", self.alg))?;
        let listener = std::net::TcpListener::bind("127.0.0.1:0")
            .map_err(|e| BuildError::new(format!("cannot bind a loopback port: {e}")))?;
        listener
            .set_nonblocking(true)
            .map_err(|e| BuildError::new(format!("cannot configure the listener: {e}")))?;
        let addr = listener
            .local_addr()
            .map_err(|e| BuildError::new(format!("no local address: {e}")))?;
        let issuer = format!("http://{addr}");
        let shared = Arc::new(Shared {
            alg: self.alg,
            lifetime: self.lifetime,
            clock: self.clock,
            clients: self.clients,
            keys: Mutex::new(Keys {
                current: Arc::new(first),
                older: Vec::new(),
            }),
            up: AtomicBool::new(true),
            next_kid: AtomicU64::new(2),
            discovery: AtomicU64::new(0),
            jwks: AtomicU64::new(0),
            token: AtomicU64::new(0),
            issuer: issuer.clone(),
            introspection: introspect::State::default(),
        });
        let (stop, stopped) = tokio::sync::oneshot::channel();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| BuildError::new(format!("cannot start a runtime: {e}")))?;
        let serving = shared.clone();
        let thread = std::thread::Builder::new()
            .name("tokenwarden-test-issuer".into())
            .spawn(move || runtime.block_on(serve(listener, serving, stopped)))
            .map_err(|e| BuildError::new(format!("cannot start a thread: {e}")))?;
        Ok(TestIssuer {
            shared,
            addr,
            issuer,
            stop: Some(stop),
            thread: Some(thread),
        })
    }
}

impl TestIssuer {
    /// Settings: algorithm, token lifetime, clock, clients.
    pub fn builder() -> TestIssuerBuilder {
        TestIssuerBuilder {
            alg: Algorithm::ES256,
            lifetime: 300,
            clock: Arc::new(SystemClock),
            clients: BTreeMap::new(),
        }
    }

    /// An ES256 issuer with default settings.
    ///
    /// # Errors
    /// As [`TestIssuerBuilder::start`].
    pub fn start() -> Result<TestIssuer, BuildError> {
        TestIssuer::builder().start()
    }

    /// The issuer identifier, `http://127.0.0.1:PORT` (also the `iss` of
    /// minted tokens and the base of discovery).
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// The socket address served.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The JWK Set URL.
    pub fn jwks_url(&self) -> String {
        format!("{}/jwks", self.issuer)
    }

    /// The OpenID discovery document's URL.
    pub fn discovery_url(&self) -> String {
        format!("{}/.well-known/openid-configuration", self.issuer)
    }

    /// The token endpoint's URL.
    pub fn token_url(&self) -> String {
        format!("{}/token", self.issuer)
    }

    /// The signing algorithm.
    pub fn algorithm(&self) -> Algorithm {
        self.shared.alg
    }

    /// The kid of the key that signs now.
    pub fn current_kid(&self) -> String {
        self.signing_key().kid().to_owned()
    }

    /// The published JWK Set, as served.
    pub fn jwks_json(&self) -> String {
        self.shared.jwks_json()
    }

    /// Starts a token with `iss`, `iat` and `exp` filled in; add claims and
    /// [`sign`](TokenMint::sign).
    pub fn token(&self) -> TokenMint<'_> {
        let now = self.shared.clock.now();
        let mut claims = Map::new();
        claims.insert("iss".into(), json!(self.issuer));
        claims.insert("iat".into(), json!(now));
        claims.insert("exp".into(), json!(now + self.shared.lifetime));
        TokenMint {
            issuer: self,
            claims,
            header: None,
        }
    }

    /// Signs exactly these claims (nothing is added) with the current key.
    pub fn sign(&self, claims: &Value) -> String {
        self.signing_key().token(claims)
    }

    /// Publishes a new key and signs with it from now on; the old keys stay
    /// published (as IdPs do during a rotation). Returns the new kid.
    ///
    /// # Errors
    /// When a key cannot be generated.
    pub fn rotate(&self) -> Result<String, BuildError> {
        let n = self.shared.next_kid.fetch_add(1, Ordering::Relaxed);
        let key = TestKey::generate(self.shared.alg, format!("{}-{n}", self.shared.alg))?;
        let kid = key.kid().to_owned();
        let mut keys = lock(&self.shared.keys);
        let old = std::mem::replace(&mut keys.current, Arc::new(key));
        keys.older.push(old);
        Ok(kid)
    }

    /// Stops publishing every key but the current one (the end of a
    /// rotation, or a revocation). Returns how many were removed.
    pub fn retire_old_keys(&self) -> usize {
        let mut keys = lock(&self.shared.keys);
        let n = keys.older.len();
        keys.older.clear();
        n
    }

    /// Takes the issuer down (every endpoint answers 503) or brings it back.
    pub fn set_available(&self, up: bool) {
        self.shared.up.store(up, Ordering::SeqCst);
    }

    /// Requests served so far, per endpoint.
    pub fn stats(&self) -> IssuerStats {
        IssuerStats {
            discovery: self.shared.discovery.load(Ordering::SeqCst),
            jwks: self.shared.jwks.load(Ordering::SeqCst),
            token: self.shared.token.load(Ordering::SeqCst),
        }
    }

    fn signing_key(&self) -> Arc<TestKey> {
        self.shared.signing_key()
    }
}

impl Drop for TestIssuer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// A token being minted by [`TestIssuer::token`].
#[derive(Debug)]
#[must_use = "call .sign() to get the token"]
pub struct TokenMint<'i> {
    issuer: &'i TestIssuer,
    claims: Map<String, Value>,
    header: Option<Value>,
}

impl TokenMint<'_> {
    /// Sets `sub`.
    pub fn subject(self, sub: &str) -> Self {
        self.claim("sub", json!(sub))
    }

    /// Sets `aud` to one audience.
    pub fn audience(self, aud: &str) -> Self {
        self.claim("aud", json!(aud))
    }

    /// Sets `scope` (space-separated, RFC 8693 §4.2).
    pub fn scope(self, scope: &str) -> Self {
        self.claim("scope", json!(scope))
    }

    /// Sets `exp` this many seconds from the issuer's clock (negative: past).
    pub fn expires_in(self, seconds: i64) -> Self {
        let exp = self.issuer.shared.clock.now() + seconds;
        self.claim("exp", json!(exp))
    }

    /// Makes the token expired an hour ago (well past any leeway).
    pub fn expired(self) -> Self {
        self.expires_in(-3600)
    }

    /// Sets any claim (replacing one already set): a `serde_json::Value`,
    /// or anything that converts into one (`"acme"`, `42`, `true`,
    /// `json!([..])`).
    pub fn claim(mut self, name: &str, value: impl Into<Value>) -> Self {
        self.claims.insert(name.to_owned(), value.into());
        self
    }

    /// Removes a claim, e.g. `exp`.
    pub fn without(mut self, name: &str) -> Self {
        self.claims.remove(name);
        self
    }

    /// Binds the token to a client certificate (RFC 8705 §3.1): adds
    /// `x5t#S256`, the base64url SHA-256 of `der`, to the `cnf` claim
    /// (kept beside any other confirmation member already set).
    pub fn bind_certificate(mut self, der: &[u8]) -> Self {
        let thumbprint = crate::authn::mtls::thumbprint(der);
        let cnf = self
            .claims
            .entry("cnf")
            .or_insert_with(|| Value::Object(Map::new()));
        if !cnf.is_object() {
            *cnf = Value::Object(Map::new());
        }
        if let Value::Object(cnf) = cnf {
            cnf.insert(crate::authn::mtls::X5T_S256.to_owned(), json!(thumbprint));
        }
        self
    }

    /// Binds the token to `key` for DPoP (RFC 9449 §6.1): `cnf.jkt` is the
    /// key's thumbprint, so the token is good only with proofs `key` signs
    /// ([`DpopProof`](crate::testing::DpopProof)).
    pub fn dpop_bound(self, key: &TestKey) -> Self {
        let jkt = key.jwk_thumbprint().unwrap_or_default();
        self.claim("cnf", json!({"jkt": jkt}))
    }

    /// Uses this protected header instead of `{"alg", "kid", "typ": "JWT"}`.
    pub fn header(mut self, header: Value) -> Self {
        self.header = Some(header);
        self
    }

    /// Signs with the issuer's current key.
    pub fn sign(self) -> String {
        let key = self.issuer.signing_key();
        let claims = Value::Object(self.claims);
        match self.header {
            Some(h) => key.token_with_header(&h, &claims),
            None => key.token(&claims),
        }
    }
}

impl Shared {
    fn signing_key(&self) -> Arc<TestKey> {
        lock(&self.keys).current.clone()
    }

    fn jwks_json(&self) -> String {
        let keys = lock(&self.keys);
        let refs: Vec<&TestKey> = std::iter::once(&keys.current)
            .chain(&keys.older)
            .map(|k| &**k)
            .collect();
        super::jwks_json(&refs)
    }

    fn answer(
        &self,
        method: &Method,
        path: &str,
        body: &[u8],
        basic: Option<&str>,
    ) -> (StatusCode, String) {
        if !self.up.load(Ordering::SeqCst) {
            return (
                StatusCode::SERVICE_UNAVAILABLE,
                json!({"error": "temporarily_unavailable"}).to_string(),
            );
        }
        let issuer = self.issuer.as_str();
        match (method, path) {
            (&Method::GET, "/.well-known/openid-configuration") => {
                self.discovery.fetch_add(1, Ordering::SeqCst);
                let doc = json!({
                    "issuer": issuer,
                    "jwks_uri": format!("{issuer}/jwks"),
                    "token_endpoint": format!("{issuer}/token"),
                    "introspection_endpoint": format!("{issuer}/introspect"),
                    "grant_types_supported": ["client_credentials", exchange::GRANT_TYPE],
                    "id_token_signing_alg_values_supported": [self.alg.as_str()],
                    "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
                });
                (StatusCode::OK, doc.to_string())
            }
            (&Method::GET, "/jwks") => {
                self.jwks.fetch_add(1, Ordering::SeqCst);
                (StatusCode::OK, self.jwks_json())
            }
            (&Method::POST, "/token") => {
                self.token.fetch_add(1, Ordering::SeqCst);
                self.token_endpoint(issuer, body, basic)
            }
            _ => (
                StatusCode::NOT_FOUND,
                json!({"error": "not_found"}).to_string(),
            ),
        }
    }

    /// RFC 6749 §4.4: the client credentials grant.
    fn token_endpoint(
        &self,
        issuer: &str,
        body: &[u8],
        basic: Option<&str>,
    ) -> (StatusCode, String) {
        let form: BTreeMap<String, String> =
            url::form_urlencoded::parse(body).into_owned().collect();
        let error = |status, code: &str| (status, json!({"error": code}).to_string());
        let grant = form.get("grant_type").map(String::as_str);
        if grant != Some("client_credentials") && grant != Some(exchange::GRANT_TYPE) {
            return error(StatusCode::BAD_REQUEST, "unsupported_grant_type");
        }
        // RFC 6749 §2.3.1: HTTP Basic, or the client's id and secret in the form.
        let basic = basic
            .and_then(|b| STANDARD.decode(b).ok())
            .and_then(|b| String::from_utf8(b).ok());
        let (id, secret) = match &basic {
            Some(pair) => match pair.split_once(':') {
                Some((i, s)) => (Some(i), Some(s)),
                None => (None, None),
            },
            None => (
                form.get("client_id").map(String::as_str),
                form.get("client_secret").map(String::as_str),
            ),
        };
        let client = match (id, secret) {
            (Some(id), Some(secret)) => self.clients.get(id).filter(|c| {
                // Secrets compared in constant time.
                c.secret.len() == secret.len()
                    && c.secret
                        .bytes()
                        .zip(secret.bytes())
                        .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                        == 0
            }),
            _ => None,
        };
        let (Some(client), Some(id)) = (client, id) else {
            return error(StatusCode::UNAUTHORIZED, "invalid_client");
        };
        if grant == Some(exchange::GRANT_TYPE) {
            return self.exchange(issuer, id, &form);
        }
        let granted: Vec<&str> = match form.get("scope") {
            Some(asked) => {
                let asked: Vec<&str> = asked.split(' ').filter(|s| !s.is_empty()).collect();
                if asked.iter().any(|s| !client.scopes.iter().any(|c| c == s)) {
                    return error(StatusCode::BAD_REQUEST, "invalid_scope");
                }
                asked
            }
            None => client.scopes.iter().map(String::as_str).collect(),
        };
        let now = self.clock.now();
        let scope = granted.join(" ");
        let jti = self.token.load(Ordering::SeqCst);
        let claims = json!({
            "iss": issuer,
            "sub": id,
            "aud": client.audience,
            "client_id": id,
            "scope": scope,
            "iat": now,
            "exp": now + self.lifetime,
            "jti": format!("{id}-{jti}"),
        });
        let key = self.signing_key();
        let header = json!({"alg": key.alg().as_str(), "kid": key.kid(), "typ": "at+jwt"});
        let token = key.token_with_header(&header, &claims);
        let body = json!({
            "access_token": token,
            "token_type": "Bearer",
            "expires_in": self.lifetime,
            "scope": scope,
        });
        (StatusCode::OK, body.to_string())
    }
}

async fn serve(
    listener: std::net::TcpListener,
    shared: Arc<Shared>,
    mut stopped: tokio::sync::oneshot::Receiver<()>,
) {
    let Ok(listener) = tokio::net::TcpListener::from_std(listener) else {
        return;
    };
    loop {
        let accepted = tokio::select! {
            _ = &mut stopped => return,
            a = listener.accept() => a,
        };
        let Ok((stream, _)) = accepted else { continue };
        let shared = shared.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| handle(shared.clone(), req));
            let io = hyper_util::rt::TokioIo::new(stream);
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(io, service)
                .await;
        });
    }
}

async fn handle(
    shared: Arc<Shared>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, introspect::Dropped> {
    let (parts, body) = req.into_parts();
    let body = match Limited::new(body, 64 * 1024).collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => Bytes::new(),
    };
    if parts.uri.path() == "/introspect" {
        return introspect::handle(&shared, &parts, &body).await;
    }
    let basic = parts
        .headers
        .get(hyper::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .map(str::trim);
    let (status, text) = shared.answer(&parts.method, parts.uri.path(), &body, basic);
    let mut response = Response::new(Full::new(Bytes::from(text)));
    *response.status_mut() = status;
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    response.headers_mut().insert(
        hyper::header::CACHE_CONTROL,
        hyper::header::HeaderValue::from_static("max-age=300"),
    );
    Ok(response)
}
