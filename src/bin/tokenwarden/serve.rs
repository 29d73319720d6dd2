//! `tokenwarden serve`: a forward-auth sidecar for API gateways.
//!
//! `/auth` answers nginx `auth_request`, Traefik ForwardAuth and Envoy
//! `ext_authz` (HTTP mode): 200 with identity headers, or the refusal of
//! RFC 6750 §3 (401/403 with `WWW-Authenticate`, 503 without keys), or 400
//! when the configured gateway's description of the original request is
//! missing, repeated, not visible ASCII or not a path with a safe normal
//! form, when its method is not upper case, or when a method-override
//! header is sent; 403 for a path no rule matches under
//! `unmatched = "deny"`. `/healthz` is liveness, `/readyz` readiness (usable keys for every
//! issuer), `/metrics` is Prometheus text, `/.well-known/jwks.json` the
//! internal token's public keys (with `[internal_token]`). With
//! `[api_keys]` or `[legacy]`, rules judge a chain (a JWT, an API key or a
//! legacy credential) and the identity comes from its principal. With
//! `[introspection]`, opaque bearer tokens are judged by the IdP's RFC 7662
//! endpoint in the same chain; with `[internal_token]` too, a pass for one
//! carries a minted JWT, so the opaque token stops at the gateway (the
//! phantom-token pattern). With `[revocation]`, a denylist fed by
//! `/admin/revoke` and `/backchannel-logout`; with `[redis]` too, shared by
//! every instance, `/readyz` waiting for its load. A 503 carries `Retry-After`.

use std::convert::Infallible;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use http::{HeaderMap, HeaderName, HeaderValue, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use serde_json::{Map, Value};
use tokenwarden::authn::jwt::JwtAuthenticator;
use tokenwarden::authn::mtls::{CertificateBinding, check_bearer};
use tokenwarden::authn::{Chain, Principal, RequestView};
use tokenwarden::middleware::{AuthRejection, BearerAuth, Scopes};
use tokenwarden::{Clock, KeySet, RemoteKeySet, SystemClock, Validated, Validator};

use crate::config::{self, Config, Keys};
use crate::metrics::Metrics;

/// `Retry-After` (seconds) of a 503 whose source gave none.
const DEFAULT_RETRY_AFTER: u32 = 5;
/// Exit status for a configuration or start-up problem.
const TROUBLE: u8 = 2;
/// First and longest wait after `accept` fails.
const ACCEPT_BACKOFF_MIN: Duration = Duration::from_millis(10);
const ACCEPT_BACKOFF_MAX: Duration = Duration::from_secs(1);

#[derive(clap::Args)]
pub struct Args {
    /// TOML configuration (issuers, audiences, key sources, rules, headers).
    /// The file's settings are not mixed with the flags that describe the
    /// same things (--issuer, --audience, --jwks, --gateway, --allow-http:
    /// write them in the file); --listen and --json-logs apply on top of it.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["issuers", "audiences", "jwks", "gateway", "allow_http"])]
    config: Option<PathBuf>,
    /// The gateway in front (required without --config): nginx
    /// (X-Original-Method, X-Original-URI), traefik (X-Forwarded-Method,
    /// X-Forwarded-Uri) or envoy (the path after /auth). Only its headers are
    /// trusted for the original method and path.
    #[arg(long, value_name = "GATEWAY", value_parser = ["nginx", "traefik", "envoy"])]
    gateway: Option<String>,
    /// Address to listen on (default 127.0.0.1:8081); overrides `listen`
    /// in --config.
    #[arg(long, value_name = "ADDR")]
    listen: Option<String>,
    /// Accepted issuer; its keys come from discovery unless --jwks is given.
    #[arg(long = "issuer", value_name = "ISS")]
    issuers: Vec<String>,
    /// Accepted audience; repeat for several.
    #[arg(long = "audience", value_name = "AUD")]
    audiences: Vec<String>,
    /// JWK Set for the (single) issuer: a file or an https URL.
    #[arg(long, value_name = "FILE|URL")]
    jwks: Option<String>,
    /// Allow plain http to loopback addresses (local development only).
    /// With --config, write `allow_http = true` in the file instead.
    #[arg(long)]
    allow_http: bool,
    /// Log one JSON object per line (or `json_logs = true` in --config).
    #[arg(long)]
    json_logs: bool,
    /// Only check the configuration, then exit (0 if valid).
    #[arg(long)]
    check: bool,
}

/// Reads the configuration, then serves until SIGTERM or Ctrl-C.
pub fn run(args: &Args) -> ExitCode {
    let config = match from_args(args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("tokenwarden serve: {e}");
            return ExitCode::from(TROUBLE);
        }
    };
    if args.check {
        println!("configuration ok");
        return ExitCode::SUCCESS;
    }
    init_logs(config.json_logs);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("tokenwarden serve: cannot start the runtime: {e}");
            return ExitCode::from(TROUBLE);
        }
    };
    match runtime.block_on(serve(config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tokenwarden serve: {e}");
            ExitCode::from(TROUBLE)
        }
    }
}

fn from_args(args: &Args) -> Result<Config, config::ConfigError> {
    let mut config = match &args.config {
        Some(path) => config::load(path)?,
        None => {
            // The simple case, made into the configuration file it stands
            // for (by the TOML writer, so any value is quoted right).
            if args.jwks.is_some() && args.issuers.len() > 1 {
                return Err(config::ConfigError(
                    "--jwks applies to one --issuer; use --config for several".into(),
                ));
            }
            // No default: behind the wrong gateway, a default convention's
            // headers would be the client's to set.
            let Some(gateway) = &args.gateway else {
                return Err(config::ConfigError(
                    "--gateway nginx|traefik|envoy is required: it names the only headers trusted for the original method and path".into(),
                ));
            };
            let audiences = args.audiences.iter().cloned().map(toml::Value::String);
            let mut file = toml::Table::new();
            file.insert("audiences".into(), toml::Value::Array(audiences.collect()));
            file.insert("allow_http".into(), toml::Value::Boolean(args.allow_http));
            file.insert("gateway".into(), toml::Value::String(gateway.clone()));
            let issuers = args.issuers.iter().map(|iss| {
                let mut t = toml::Table::new();
                t.insert("issuer".into(), toml::Value::String(iss.clone()));
                match &args.jwks {
                    Some(j) if j.starts_with("https://") || j.starts_with("http://") => {
                        t.insert("jwks_url".into(), toml::Value::String(j.clone()));
                    }
                    Some(j) => {
                        t.insert("jwks_file".into(), toml::Value::String(j.clone()));
                    }
                    None => {}
                }
                toml::Value::Table(t)
            });
            file.insert("issuer".into(), toml::Value::Array(issuers.collect()));
            let text = file.to_string();
            config::parse(&text, "flags")?
        }
    };
    if let Some(listen) = &args.listen {
        config.listen = listen
            .parse()
            .map_err(|_| config::ConfigError(format!("--listen {listen:?} is not an address")))?;
    }
    config.json_logs |= args.json_logs;
    Ok(config)
}

fn init_logs(json: bool) {
    use std::io::IsTerminal;
    // Colour codes only for a person at a terminal: in a file, a pipe or a
    // log collector they are noise in every line.
    let builder = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::INFO)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    let _ = if json {
        builder.json().flatten_event(true).try_init()
    } else {
        builder.try_init()
    };
}

/// A rule with its prepared checker.
struct Route {
    rule: config::Rule,
    auth: BearerAuth,
}

struct State {
    config: Config,
    routes: Vec<Route>,
    /// Judged by a chain (`[api_keys]`): verdicts are principals.
    chain: bool,
    /// The chain's API key authenticator, for the key id in audit lines.
    api_keys: Option<tokenwarden::authn::api_key::ApiKeyAuthenticator>,
    default: BearerAuth,
    remotes: Vec<(String, RemoteKeySet)>,
    metrics: Metrics,
    clock: SystemClock,
    header_names: IdentityHeaders,
    /// `[revocation]`: the denylist's endpoints.
    revocation: Option<crate::revocation::Revoker>,
    /// `[redis]`: the shared denylist's source, for `/readyz`.
    shared: Option<Arc<crate::shared_state::Shared>>,
}

struct IdentityHeaders {
    subject: HeaderName,
    issuer: HeaderName,
    scopes: HeaderName,
    authenticator: HeaderName,
    claims: Vec<(String, HeaderName)>,
}

async fn serve(config: Config) -> Result<(), String> {
    let mut metrics = Metrics::new();
    if config.redis.is_some() {
        metrics.with_redis();
    }
    let mut remotes = Vec::new();
    let mut builder = Validator::builder()
        .leeway(Duration::from_secs(config.leeway))
        .max_token_size(8 * 1024);
    for aud in &config.audiences {
        builder = builder.audience(aud.clone());
    }
    if let Some(algs) = &config.algorithms {
        builder = builder.algorithms(algs.iter().copied());
    }
    if let Some(typ) = &config.required_type {
        builder = builder.required_type(typ.clone());
    }
    let mut sources = Vec::new();
    for issuer in &config.issuers {
        let source: tokenwarden::KeySource = match &issuer.keys {
            Keys::File(path) => {
                let bytes = std::fs::read(path)
                    .map_err(|e| format!("issuer {}: cannot read {path}: {e}", issuer.issuer))?;
                let set = KeySet::from_jwks(&bytes)
                    .map_err(|e| format!("issuer {}: {path}: {e}", issuer.issuer))?;
                metrics.static_keys(&issuer.issuer, set.len());
                set.into()
            }
            Keys::Url(_) | Keys::Discovery(_) => {
                let f = &issuer.fetch;
                let b = RemoteKeySet::builder()
                    .allow_http_loopback(config.allow_http)
                    .allow_private_addresses(config.allow_private_addresses)
                    .refresh_interval(f.refresh_interval)
                    .refresh_interval_bounds(f.refresh_min, f.refresh_max)
                    .unknown_kid_cooldown(f.unknown_kid_cooldown)
                    .max_staleness(f.max_staleness)
                    .timeout(f.timeout);
                let b = match &issuer.keys {
                    Keys::Url(u) => b.jwks_url(u.clone()),
                    Keys::Discovery(Some(at)) => {
                        b.discovery(issuer.issuer.clone()).discovery_url(at.clone())
                    }
                    _ => b.discovery(issuer.issuer.clone()),
                };
                let set = b
                    .build()
                    .map_err(|e| format!("issuer {}: {e}", issuer.issuer))?;
                remotes.push((issuer.issuer.clone(), set.clone()));
                set.into()
            }
        };
        sources.push((issuer.issuer.clone(), source.clone()));
        builder = if config.issuers.len() == 1 {
            builder.issuer(issuer.issuer.clone()).keys(source)
        } else {
            builder.issuer_with_keys(issuer.issuer.clone(), source)
        };
    }
    builder = if config.cache {
        builder.cache(tokenwarden::CacheConfig::default().max_entries(config.cache_entries))
    } else {
        builder.no_cache()
    };
    // `[redis]` (only with `[revocation]`): the denylist mirrors Redis,
    // connected in the background; `/readyz` waits for the load.
    let shared = match (&config.redis, &config.revocation) {
        (Some(redis), Some(r)) => Some(crate::shared_state::start(redis, r.max_token_lifetime)),
        _ => None,
    };
    let revocation = match &config.revocation {
        Some(r) => Some(
            r.start(
                &sources,
                Duration::from_secs(config.leeway),
                shared
                    .clone()
                    .map(|s| s as Arc<dyn tokenwarden::state::denylist::RevocationSource>),
            )?,
        ),
        None => None,
    };
    if let Some(r) = &revocation {
        builder = builder.denylist(r.denylist.clone());
    }
    let validator = builder.build().map_err(|e| e.to_string())?;
    let revocation = revocation.map(|r| r.with_validator(&validator));
    // With API keys, a chain: a bearer JWT or an API key, one principal;
    // a request carrying both is refused (400).
    let chain = config.api_keys.is_some()
        || config.legacy.is_some()
        || config.introspection.is_some()
        || config.mtls.is_some();
    let api_keys = match &config.api_keys {
        Some(keys) => Some(keys.authenticator()?),
        None => None,
    };
    let base = if chain {
        let jwt = JwtAuthenticator::new(validator);
        let jwt = match &config.mtls {
            Some(m) => m.jwt(jwt),
            None => jwt,
        };
        let mut c = Chain::new().jwt(jwt);
        if let Some(identity) = config.mtls.as_ref().and_then(|m| m.identity.clone()) {
            c = c.with_authenticator(identity);
        }
        if let Some(keys) = &api_keys {
            // A clone shares the store and the usage counts.
            c = c.api_key(keys.clone());
        }
        if let Some(l) = &config.legacy {
            c = c.legacy(l.authenticator().map_err(|e| format!("legacy: {e}"))?);
        }
        if let Some(i) = &config.introspection {
            // Opaque bearer tokens to the endpoint, JWS-shaped ones to the
            // validator; with discovery, the metadata is read now.
            // `[mtls] require_bound_tokens` holds opaque tokens too: an
            // answer without a certificate binding is refused.
            let binding = match &config.mtls {
                Some(m) if m.require_bound_tokens => CertificateBinding::Required,
                _ => CertificateBinding::WhenBound,
            };
            let denylist = revocation.as_ref().map(|r| r.denylist.clone());
            let opaque = i
                .authenticator(binding, denylist)
                .await
                .map_err(|e| format!("introspection: {e}"))?;
            // A wrong client secret would otherwise show only at the first
            // opaque token (503 for every one): ask once now, before serving,
            // within the endpoint's timeout. A failure is logged, never fatal:
            // the IdP may be away at start, and JWTs are still served.
            match opaque.check_client().await {
                Ok(()) => tracing::info!("introspection: the endpoint accepts our client credentials"),
                Err(e) => tracing::error!(
                    error = %e.message,
                    "introspection: client check failed at start; opaque tokens get 503 until it is fixed"
                ),
            }
            c = c.introspection(opaque);
        }
        BearerAuth::from_chain(c)
    } else {
        BearerAuth::new(validator)
    }
    .realm(&config.realm);
    let routes = config
        .rules
        .iter()
        .map(|rule| {
            let auth = if rule.anonymous {
                base.clone().allow_anonymous()
            } else if !rule.any_scopes.is_empty() {
                base.clone()
                    .require_scopes(Scopes::any(rule.any_scopes.iter().cloned()))
            } else {
                base.clone()
                    .require_scopes(Scopes::all(rule.scopes.iter().cloned()))
            };
            Route {
                rule: rule.clone(),
                auth,
            }
        })
        .collect();
    let name =
        |n: &str| HeaderName::from_bytes(n.as_bytes()).map_err(|e| format!("header {n:?}: {e}"));
    let header_names = IdentityHeaders {
        subject: name(&config.headers.subject)?,
        issuer: name(&config.headers.issuer)?,
        scopes: name(&config.headers.scopes)?,
        authenticator: name(&config.headers.authenticator)?,
        claims: config
            .headers
            .claims
            .iter()
            .map(|(c, h)| Ok((c.clone(), name(h)?)))
            .collect::<Result<_, String>>()?,
    };
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", config.listen))?;
    let local = listener.local_addr().map_err(|e| e.to_string())?;
    tracing::info!(listen = %local, issuers = config.issuers.len(), rules = config.rules.len(), "tokenwarden serve started");
    let state = Arc::new(State {
        config,
        routes,
        chain,
        api_keys,
        default: base,
        remotes,
        metrics,
        clock: SystemClock,
        header_names,
        revocation,
        shared,
    });
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown_signal());
    let limits = state.config.server.clone();
    let slots = Arc::new(tokio::sync::Semaphore::new(limits.max_connections));
    let mut http = hyper::server::conn::http1::Builder::new();
    // A client that sends half a head and stalls, or keeps a connection
    // idle, is cut off: hyper's header timer runs from when the connection
    // waits for a request until its head is complete.
    http.timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout);
    let mut backoff = Duration::ZERO;
    let mut at_cap = false;
    loop {
        let accepted = tokio::select! {
            () = &mut shutdown => break,
            a = listener.accept() => a,
        };
        let stream = match accepted {
            Ok((stream, _)) => {
                if !backoff.is_zero() {
                    tracing::info!("accepting connections again");
                    backoff = Duration::ZERO;
                }
                stream
            }
            Err(e) => {
                state.metrics.accept_failed();
                // Out of file descriptors (EMFILE) and the like: retrying at
                // once would spin on the same error. Wait, longer each time,
                // and say so once per episode.
                if backoff.is_zero() {
                    tracing::warn!(error = %e, "accept failed; backing off");
                }
                backoff = backoff
                    .saturating_mul(2)
                    .clamp(ACCEPT_BACKOFF_MIN, ACCEPT_BACKOFF_MAX);
                tokio::select! {
                    () = &mut shutdown => break,
                    () = tokio::time::sleep(backoff) => continue,
                }
            }
        };
        // Over the cap the connection is closed at once: bounded memory and
        // tasks, and the gateway sees a failure it treats as a refusal.
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            state.metrics.connection_refused();
            if !at_cap {
                tracing::warn!(
                    max_connections = limits.max_connections,
                    "connection cap reached; closing new connections"
                );
                at_cap = true;
            }
            drop(stream);
            continue;
        };
        at_cap = false;
        let state = state.clone();
        let service = hyper::service::service_fn(move |req| {
            let state = state.clone();
            async move { Ok::<_, Infallible>(route(&state, req).await) }
        });
        let io = crate::idle::Idle::new(stream, limits.idle_timeout);
        let conn = http.serve_connection(hyper_util::rt::TokioIo::new(io), service);
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            let _ = conn.await;
            drop(slot);
        });
    }
    // New connections are refused from here on; those open finish.
    drop(listener);
    tracing::info!("shutting down: finishing requests in flight");
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(Duration::from_secs(10)) => {
            tracing::warn!("requests still in flight after 10 s; stopping anyway");
        }
    }
    Ok(())
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

fn text(status: StatusCode, body: &str) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body.to_owned())));
    *r.status_mut() = status;
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

async fn route(state: &State, req: Request<Incoming>) -> Response<Full<Bytes>> {
    if crate::revocation_http::PATHS.contains(&req.uri().path()) {
        return crate::revocation_http::route(state.revocation.as_ref(), req).await;
    }
    let path = req.uri().path();
    match path {
        "/healthz" => text(StatusCode::OK, "ok\n"),
        "/readyz" => {
            // Ready only with keys a validation would use: loaded, not
            // empty, and not past max_staleness.
            let missing: Vec<&str> = state
                .remotes
                .iter()
                .filter(|(_, set)| !set.is_usable())
                .map(|(iss, _)| iss.as_str())
                .collect();
            let shared = state.shared.as_ref().filter(|s| !s.is_ready());
            if let Some(s) = shared {
                text(
                    StatusCode::SERVICE_UNAVAILABLE,
                    &format!("{}\n", s.why_not()),
                )
            } else if missing.is_empty() {
                text(StatusCode::OK, "ready\n")
            } else {
                text(
                    StatusCode::SERVICE_UNAVAILABLE,
                    &format!("no usable keys for: {}\n", missing.join(", ")),
                )
            }
        }
        "/metrics" => {
            let mut r = text(
                StatusCode::OK,
                &state.metrics.render(
                    &state.remotes,
                    state.shared.as_ref().map(|s| {
                        let entries = state.revocation.as_ref().map_or(0, |r| r.denylist.len());
                        (s.figures(), entries)
                    }),
                    state.clock.now(),
                ),
            );
            r.headers_mut().insert(
                http::header::CONTENT_TYPE,
                HeaderValue::from_static(
                    "application/openmetrics-text; version=1.0.0; charset=utf-8",
                ),
            );
            r
        }
        "/.well-known/jwks.json" => match &state.config.internal_token {
            // The public keys of the internal token, for the upstreams.
            Some(t) => {
                let mut r = text(StatusCode::OK, &t.minter.jwks().to_string());
                r.headers_mut().insert(
                    http::header::CONTENT_TYPE,
                    HeaderValue::from_static("application/jwk-set+json"),
                );
                r
            }
            None => text(StatusCode::NOT_FOUND, "not found\n"),
        },
        p if p == "/auth" || p.starts_with("/auth/") => auth(state, &req).await,
        _ => text(StatusCode::NOT_FOUND, "not found\n"),
    }
}

/// Why the gateway's description of the original request is refused.
#[derive(Debug, Clone, Copy)]
enum BadRequest {
    /// The trusted header is absent (or, for Envoy, nothing after `/auth`).
    Missing,
    /// The trusted header is sent more than once.
    Repeated,
    /// Not visible ASCII, or a method that is not an RFC 9110 token.
    NotVisibleAscii,
    /// A method with a lower-case letter: methods are case-sensitive
    /// (RFC 9110 §9.1), and an upstream that upper-cases `get` would run
    /// what no rule for `GET` judged.
    MethodCase,
    /// `X-HTTP-Method-Override` or a kin: the upstream may run another
    /// method than the one judged.
    MethodOverride,
    /// The path has no safe normal form.
    Path(config::path::PathError),
}

impl std::fmt::Display for BadRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BadRequest::Missing => f.write_str("missing original method or uri"),
            BadRequest::Repeated => f.write_str("repeated original method or uri header"),
            BadRequest::NotVisibleAscii => f.write_str("original method or uri not visible ascii"),
            BadRequest::MethodCase => f.write_str("original method not upper case"),
            BadRequest::MethodOverride => f.write_str("method override header"),
            BadRequest::Path(e) => write!(f, "original path {e}"),
        }
    }
}

/// The one value of a trusted header: present once, visible ASCII.
fn trusted<'a>(h: &'a HeaderMap, name: &str) -> Result<&'a str, BadRequest> {
    let mut values = h.get_all(name).iter();
    let value = values.next().ok_or(BadRequest::Missing)?;
    if values.next().is_some() {
        return Err(BadRequest::Repeated);
    }
    let bytes = value.as_bytes();
    if bytes.is_empty() || !bytes.iter().all(|b| (0x21..=0x7e).contains(b)) {
        return Err(BadRequest::NotVisibleAscii);
    }
    std::str::from_utf8(bytes).map_err(|_| BadRequest::NotVisibleAscii)
}

/// RFC 9110 §5.6.2 `tchar`, the characters of a method name.
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// Headers by which Rails (Rack::MethodOverride), Express method-override
/// and ASP.NET let a POST run as another method.
const METHOD_OVERRIDE: [&str; 3] = [
    "x-http-method-override",
    "x-http-method",
    "x-method-override",
];

/// The original request as the configured gateway describes it: method
/// (exactly as sent, upper case) and normal path. Only the configured
/// convention is read; anything else the client sent is ignored.
fn original(state: &State, req: &Request<Incoming>) -> Result<(String, String), BadRequest> {
    let (method, target) = match &state.config.gateway {
        config::Gateway::Headers { method, uri } => {
            let h = req.headers();
            (trusted(h, method)?.to_owned(), trusted(h, uri)?.to_owned())
        }
        config::Gateway::Envoy => {
            // ext_authz appends the original path (and query) to the auth
            // path, and sends the original method as its own.
            let tail = req
                .uri()
                .path()
                .strip_prefix("/auth")
                .filter(|t| !t.is_empty())
                .ok_or(BadRequest::Missing)?;
            (req.method().as_str().to_owned(), tail.to_owned())
        }
    };
    if method.is_empty() || !method.bytes().all(is_tchar) {
        return Err(BadRequest::NotVisibleAscii);
    }
    // RFC 9110 §9.1: methods are case-sensitive, so `get` is not `GET`;
    // but lenient upstreams treat it as `GET`. Refuse rather than guess.
    if method.bytes().any(|b| b.is_ascii_lowercase()) {
        return Err(BadRequest::MethodCase);
    }
    if !state.config.allow_method_override
        && METHOD_OVERRIDE
            .iter()
            .any(|h| req.headers().contains_key(*h))
    {
        return Err(BadRequest::MethodOverride);
    }
    // RFC 3986 §3.4: the query starts at the first '?'.
    let raw_path = target.split('?').next().unwrap_or("");
    let path = config::path::normalise(raw_path, state.config.case_insensitive_paths)
        .map_err(BadRequest::Path)?;
    Ok((method, path))
}

async fn auth(state: &State, req: &Request<Incoming>) -> Response<Full<Bytes>> {
    let started = Instant::now();
    let (method, path) = match original(state, req) {
        Ok(mp) => mp,
        Err(bad) => {
            // Neither the method nor the path is logged: both are the
            // client's text, and unreadable by definition here.
            state
                .metrics
                .decided("bad_request", started.elapsed().as_secs_f64());
            tracing::info!(target: "tokenwarden::audit", decision = "deny", result = "bad_request", status = 400, reason = %bad);
            return text(StatusCode::BAD_REQUEST, "");
        }
    };
    let checker = match state.routes.iter().find(|r| r.rule.matches(&method, &path)) {
        Some(r) => &r.auth,
        None if state.config.deny_unmatched => {
            state
                .metrics
                .decided("no_rule", started.elapsed().as_secs_f64());
            tracing::info!(target: "tokenwarden::audit", decision = "deny", result = "no_rule", status = 403, method = %method, path = %path);
            return text(StatusCode::FORBIDDEN, "");
        }
        None => &state.default,
    };
    if state.chain {
        // The client certificate, only from the header of a gateway that
        // `[mtls] from_gateway = true` says verified it.
        let cert = match state
            .config
            .mtls
            .as_ref()
            .map(|m| m.certificate(req.headers()))
        {
            None | Some(Ok(None)) => None,
            Some(Ok(Some(cert))) => Some(cert),
            Some(Err(bad)) => {
                state
                    .metrics
                    .decided("bad_request", started.elapsed().as_secs_f64());
                tracing::info!(target: "tokenwarden::audit", decision = "deny", result = "bad_request", status = 400, reason = bad.kind(), method = %method, path = %path);
                return text(StatusCode::BAD_REQUEST, "");
            }
        };
        let view = crate::mtls::view(
            RequestView::new(&method, &path, req.headers()),
            cert.as_ref(),
        );
        let decision = checker.authorize_request(&view).await;
        return match decision {
            Ok(Some(p)) => principal_pass(state, &p, &method, &path, started),
            Ok(None) => anonymous_pass(state, &method, &path, started),
            Err(rejection) => {
                // The key's id (never its secret), so repeated refusals of
                // one key can be found in the audit log.
                let key_id = state.api_keys.as_ref().and_then(|k| k.key_id(&view));
                refused_key(state, &rejection, key_id, &method, &path, started)
            }
        };
    }
    let decision = checker.authorize(req.headers()).await;
    // Without `[mtls]` no client certificate is ever seen: a token bound
    // to one (RFC 8705 §3) cannot be proven, and is never taken as bearer.
    let decision = decision.and_then(|v| {
        if let Some(v) = &v {
            // A DPoP-bound token (`cnf.jkt`) needs a proof under the `DPoP`
            // scheme (RFC 9449 §7.1): never a bearer token here.
            check_bearer(&v.confirmation, None, CertificateBinding::WhenBound)
                .map_err(|r| AuthRejection::Chain(Box::new(r)))?;
        }
        Ok(v)
    });
    let elapsed = started.elapsed().as_secs_f64();
    match decision {
        Ok(Some(v)) => {
            let mut r = text(StatusCode::OK, "");
            if let Some(t) = &state.config.internal_token {
                match crate::internal_token::for_jwt(&t.minter, &v.claims) {
                    Ok(token) => {
                        if let Ok(value) = HeaderValue::from_str(&token) {
                            r.headers_mut().insert(t.header.clone(), value);
                        }
                    }
                    Err(e) => {
                        // Fail closed: a pass without the token the
                        // upstream expects would be refused there anyway,
                        // and a 500 says where the problem is.
                        state.metrics.decided("mint_failed", elapsed);
                        tracing::warn!(target: "tokenwarden::audit", decision = "deny", result = "mint_failed", status = 500, kind = e.kind(), method = %method, path = %path);
                        return text(StatusCode::INTERNAL_SERVER_ERROR, "");
                    }
                }
            }
            state.metrics.decided("ok", elapsed);
            audit_allow(&v, &method, &path);
            identity_headers(state, &v, r.headers_mut());
            r
        }
        Ok(None) => anonymous_pass(state, &method, &path, started),
        Err(rejection) => refused(state, &rejection, &method, &path, started),
    }
}

fn anonymous_pass(
    state: &State,
    method: &str,
    path: &str,
    started: Instant,
) -> Response<Full<Bytes>> {
    state
        .metrics
        .decided("anonymous", started.elapsed().as_secs_f64());
    tracing::info!(target: "tokenwarden::audit", decision = "allow", result = "anonymous", method = %method, path = %path);
    let mut r = text(StatusCode::OK, "");
    anonymous_identity(state, r.headers_mut());
    r
}

fn refused(
    state: &State,
    rejection: &AuthRejection,
    method: &str,
    path: &str,
    started: Instant,
) -> Response<Full<Bytes>> {
    state
        .metrics
        .decided(rejection.reason(), started.elapsed().as_secs_f64());
    tracing::info!(target: "tokenwarden::audit", decision = "deny", result = rejection.reason(), status = rejection.status(), method = %method, path = %path);
    refusal(state, rejection)
}

/// [`refused`], naming the API key's id when the request carried one.
fn refused_key(
    state: &State,
    rejection: &AuthRejection,
    key_id: Option<&str>,
    method: &str,
    path: &str,
    started: Instant,
) -> Response<Full<Bytes>> {
    let Some(key_id) = key_id else {
        return refused(state, rejection, method, path, started);
    };
    state
        .metrics
        .decided(rejection.reason(), started.elapsed().as_secs_f64());
    tracing::info!(target: "tokenwarden::audit", decision = "deny", result = rejection.reason(), status = rejection.status(), key_id = key_id, method = %method, path = %path);
    refusal(state, rejection)
}

/// A pass for a chain's principal (a JWT or an API key): its identity
/// headers, and its internal token when configured.
fn principal_pass(
    state: &State,
    p: &Principal,
    method: &str,
    path: &str,
    started: Instant,
) -> Response<Full<Bytes>> {
    let elapsed = started.elapsed().as_secs_f64();
    let mut r = text(StatusCode::OK, "");
    if let Some(t) = &state.config.internal_token {
        match crate::internal_token::for_principal(&t.minter, p) {
            Ok(token) => {
                if let Ok(value) = HeaderValue::from_str(&token) {
                    r.headers_mut().insert(t.header.clone(), value);
                }
            }
            Err(e) => {
                state.metrics.decided("mint_failed", elapsed);
                tracing::warn!(target: "tokenwarden::audit", decision = "deny", result = "mint_failed", status = 500, kind = e.kind(), authn = p.authenticator(), method = %method, path = %path);
                return text(StatusCode::INTERNAL_SERVER_ERROR, "");
            }
        }
    }
    state.metrics.decided("ok", elapsed);
    // An API key's id (a stored key's, never its secret); empty otherwise.
    let key_id = p
        .claims()
        .get("api_key_id")
        .and_then(Value::as_str)
        .filter(|_| p.authenticator() == "api_key")
        .unwrap_or("");
    tracing::info!(
        target: "tokenwarden::audit",
        decision = "allow",
        result = "ok",
        sub = p.subject(),
        authn = p.authenticator(),
        key_id = key_id,
        method = %method,
        path = %path,
    );
    let names = &state.header_names;
    let out = r.headers_mut();
    put(out, &names.subject, Some(encode(p.subject(), false)));
    // Only a JWT's `iss` was checked against the configured issuers: any
    // other principal's claims come from elsewhere (a legacy endpoint's
    // JSON), and must not name the IdP to the upstream.
    let iss = p.claims().get("iss").filter(|_| p.authenticator() == "jwt");
    put(out, &names.issuer, claim_text(iss));
    put(
        out,
        &names.authenticator,
        Some(encode(p.authenticator(), false)),
    );
    let scopes: Vec<String> = p
        .scopes()
        .into_iter()
        .map(|s| encode(s, true))
        .filter(|s| !s.is_empty())
        .collect();
    put(out, &names.scopes, Some(scopes.join(" ")));
    for (claim, name) in &names.claims {
        put(out, name, claim_text(p.claims().get(claim)));
    }
    r
}

/// Sets a header to an already encoded value, empty when absent.
fn put(out: &mut HeaderMap, name: &HeaderName, value: Option<String>) {
    let value = HeaderValue::from_str(value.as_deref().unwrap_or(""))
        .unwrap_or_else(|_| HeaderValue::from_static(""));
    out.insert(name.clone(), value);
}

/// A claim as header text, already encoded: an array is its elements, each
/// encoded with its spaces and commas, joined by one space (empty elements
/// left out).
fn claim_text(value: Option<&Value>) -> Option<String> {
    match value? {
        Value::String(s) => Some(encode(s, false)),
        Value::Null => None,
        Value::Array(items) => Some(
            items
                .iter()
                .map(|i| {
                    encode(
                        &i.as_str().map_or_else(|| i.to_string(), str::to_owned),
                        true,
                    )
                })
                .filter(|e| !e.is_empty())
                .collect::<Vec<_>>()
                .join(" "),
        ),
        other => Some(encode(&other.to_string(), false)),
    }
}

fn audit_allow(v: &Validated<Map<String, Value>>, method: &str, path: &str) {
    let claim = |n: &str| v.claims.get(n).and_then(Value::as_str).unwrap_or("");
    tracing::info!(
        target: "tokenwarden::audit",
        decision = "allow",
        result = "ok",
        sub = claim("sub"),
        iss = claim("iss"),
        kid = v.header.kid().unwrap_or(""),
        method = %method,
        path = %path,
    );
}

fn refusal(state: &State, rejection: &AuthRejection) -> Response<Full<Bytes>> {
    let status = StatusCode::from_u16(rejection.status()).unwrap_or(StatusCode::UNAUTHORIZED);
    let mut r = text(status, "");
    // One challenge per scheme the chain accepts (RFC 9110 §11.6.1): a
    // request with no credential learns of API keys and `Basic` too.
    for challenge in rejection.challenges(&state.config.realm) {
        if let Ok(v) = HeaderValue::from_str(&challenge) {
            r.headers_mut().append(http::header::WWW_AUTHENTICATE, v);
        }
    }
    // RFC 9110 §10.2.3: a 503 says when to come back (the IdP's endpoint
    // down, its circuit open, no usable keys); the client did nothing wrong.
    if status == StatusCode::SERVICE_UNAVAILABLE {
        let secs = match rejection {
            AuthRejection::Chain(c) => c.retry_after(),
            _ => None,
        }
        .unwrap_or(DEFAULT_RETRY_AFTER);
        r.headers_mut()
            .insert(http::header::RETRY_AFTER, HeaderValue::from(secs.max(1)));
    }
    r
}

/// A claim value as header text: UTF-8 bytes that are not visible ASCII,
/// `%` itself, and a leading or trailing space are percent-encoded
/// (`%XX`, upper-case hex), so every value passes and decodes back
/// unambiguously. In an array `element`, every space and comma is encoded
/// too: elements are joined with one space, and no element may look like
/// two.
fn encode(value: &str, element: bool) -> String {
    use std::fmt::Write as _;
    let mut out = String::with_capacity(value.len());
    let last = value.len().saturating_sub(1);
    for (i, b) in value.bytes().enumerate() {
        let inner_space = b == b' ' && i != 0 && i != last && !element;
        let delimiter = element && b == b',';
        if ((0x21..=0x7e).contains(&b) && b != b'%' && !delimiter) || inner_space {
            out.push(char::from(b));
        } else {
            // Writing to a String cannot fail.
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// Every configured identity header, and the internal token's, empty: an
/// anonymous pass still replaces whatever copy the client sent (a gateway
/// forwarding the internal token's header, as Envoy's
/// `allowed_upstream_headers` does, would otherwise pass the client's own).
fn anonymous_identity(state: &State, out: &mut HeaderMap) {
    let names = &state.header_names;
    let internal = state.config.internal_token.as_ref().map(|t| &t.header);
    for name in [
        &names.subject,
        &names.issuer,
        &names.scopes,
        &names.authenticator,
    ]
    .into_iter()
    .chain(names.claims.iter().map(|(_, n)| n))
    .chain(internal)
    {
        out.insert(name.clone(), HeaderValue::from_static(""));
    }
}

/// Identity for the upstream: every configured header is set, empty when
/// the claim is absent, so a client-sent copy never reaches the upstream
/// (with the gateway configured to forward each, as in the README).
fn identity_headers(state: &State, v: &Validated<Map<String, Value>>, out: &mut HeaderMap) {
    let names = &state.header_names;
    let as_text = claim_text;
    put(out, &names.subject, as_text(v.claims.get("sub")));
    put(out, &names.issuer, as_text(v.claims.get("iss")));
    put(out, &names.authenticator, Some("jwt".into()));
    // Read as the scope checks read them: `scope` and `scp`, each a
    // space-separated string (Entra ID's `scp`) or an array (Okta's).
    let scopes: Vec<String> = [v.claims.get("scope"), v.claims.get("scp")]
        .into_iter()
        .filter_map(as_text)
        .filter(|s| !s.is_empty())
        .collect();
    put(out, &names.scopes, Some(scopes.join(" ")));
    for (claim, name) in &names.claims {
        put(out, name, as_text(v.claims.get(claim)));
    }
}
