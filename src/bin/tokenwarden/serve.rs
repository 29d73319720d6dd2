//! `tokenwarden serve`: a forward-auth sidecar for API gateways.
//!
//! `GET /auth` answers nginx `auth_request`, Traefik ForwardAuth and Envoy
//! `ext_authz` (HTTP mode): 200 with identity headers, or the refusal of
//! RFC 6750 §3 (401/403 with `WWW-Authenticate`, 503 without keys).
//! `/healthz` is liveness, `/readyz` readiness (keys loaded), `/metrics` is
//! Prometheus text.

use std::convert::Infallible;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use http::{HeaderMap, HeaderName, HeaderValue, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use serde_json::{Map, Value};
use tokenwarden::middleware::{AuthRejection, BearerAuth, Scopes};
use tokenwarden::{Clock, KeySet, RemoteKeySet, SystemClock, Validated, Validator};

use crate::config::{self, Config, Keys};
use crate::metrics::Metrics;

/// Exit status for a configuration or start-up problem.
const TROUBLE: u8 = 2;

#[derive(clap::Args)]
pub struct Args {
    /// TOML configuration (issuers, audiences, key sources, rules, headers).
    #[arg(long, value_name = "FILE", conflicts_with_all = ["issuers", "audiences", "jwks"])]
    config: Option<PathBuf>,
    /// Address to listen on.
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
    #[arg(long)]
    allow_http: bool,
    /// Log one JSON object per line.
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
            let audiences = args.audiences.iter().cloned().map(toml::Value::String);
            let mut file = toml::Table::new();
            file.insert("audiences".into(), toml::Value::Array(audiences.collect()));
            file.insert("allow_http".into(), toml::Value::Boolean(args.allow_http));
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
    let builder = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::INFO)
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
    default: BearerAuth,
    remotes: Vec<(String, RemoteKeySet)>,
    metrics: Metrics,
    clock: SystemClock,
    header_names: IdentityHeaders,
}

struct IdentityHeaders {
    subject: HeaderName,
    issuer: HeaderName,
    scopes: HeaderName,
    claims: Vec<(String, HeaderName)>,
}

async fn serve(config: Config) -> Result<(), String> {
    let metrics = Metrics::new();
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
            Keys::Url(_) | Keys::Discovery => {
                let b = RemoteKeySet::builder().allow_http_loopback(config.allow_http);
                let b = match &issuer.keys {
                    Keys::Url(u) => b.jwks_url(u.clone()),
                    _ => b.discovery(issuer.issuer.clone()),
                };
                let set = b
                    .build()
                    .map_err(|e| format!("issuer {}: {e}", issuer.issuer))?;
                remotes.push((issuer.issuer.clone(), set.clone()));
                set.into()
            }
        };
        builder = if config.issuers.len() == 1 {
            builder.issuer(issuer.issuer.clone()).keys(source)
        } else {
            builder.issuer_with_keys(issuer.issuer.clone(), source)
        };
    }
    if config.cache {
        builder =
            builder.cache(tokenwarden::CacheConfig::default().max_entries(config.cache_entries));
    }
    let validator = builder.build().map_err(|e| e.to_string())?;
    let base = BearerAuth::new(validator).realm(&config.realm);
    let routes = config
        .rules
        .iter()
        .map(|rule| {
            let auth = if rule.anonymous {
                base.clone().allow_anonymous()
            } else if !rule.any_scopes.is_empty() {
                base.clone()
                    .require(Scopes::any(rule.any_scopes.iter().cloned()))
            } else {
                base.clone()
                    .require(Scopes::all(rule.scopes.iter().cloned()))
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
        default: base,
        remotes,
        metrics,
        clock: SystemClock,
        header_names,
    });
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown_signal());
    loop {
        let accepted = tokio::select! {
            () = &mut shutdown => break,
            a = listener.accept() => a,
        };
        let Ok((stream, _)) = accepted else { continue };
        let state = state.clone();
        let service = hyper::service::service_fn(move |req| {
            let state = state.clone();
            async move { Ok::<_, Infallible>(route(&state, req).await) }
        });
        let conn = hyper::server::conn::http1::Builder::new()
            .serve_connection(hyper_util::rt::TokioIo::new(stream), service);
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            let _ = conn.await;
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
    let path = req.uri().path();
    match path {
        "/healthz" => text(StatusCode::OK, "ok\n"),
        "/readyz" => {
            let missing: Vec<&str> = state
                .remotes
                .iter()
                .filter(|(_, set)| set.current().is_none_or(|k| k.is_empty()))
                .map(|(iss, _)| iss.as_str())
                .collect();
            if missing.is_empty() {
                text(StatusCode::OK, "ready\n")
            } else {
                text(
                    StatusCode::SERVICE_UNAVAILABLE,
                    &format!("no keys yet for: {}\n", missing.join(", ")),
                )
            }
        }
        "/metrics" => {
            let mut r = text(
                StatusCode::OK,
                &state.metrics.render(&state.remotes, state.clock.now()),
            );
            r.headers_mut().insert(
                http::header::CONTENT_TYPE,
                HeaderValue::from_static(
                    "application/openmetrics-text; version=1.0.0; charset=utf-8",
                ),
            );
            r
        }
        p if p == "/auth" || p.starts_with("/auth/") => auth(state, &req).await,
        _ => text(StatusCode::NOT_FOUND, "not found\n"),
    }
}

/// The original request as the gateway describes it: method and path.
fn original(req: &Request<Incoming>) -> (String, String) {
    let h = req.headers();
    let get = |names: &[&str]| {
        names
            .iter()
            .find_map(|n| h.get(*n).and_then(|v| v.to_str().ok()))
            .map(str::to_owned)
    };
    let method = get(&["x-original-method", "x-forwarded-method"])
        .unwrap_or_else(|| req.method().as_str().to_owned())
        .to_ascii_uppercase();
    // Envoy ext_authz appends the original path to the auth path.
    let tail = req
        .uri()
        .path()
        .strip_prefix("/auth")
        .filter(|t| !t.is_empty());
    let uri = get(&["x-original-uri", "x-forwarded-uri"])
        .or_else(|| tail.map(str::to_owned))
        .unwrap_or_else(|| "/".to_owned());
    let path = uri.split(['?', '#']).next().unwrap_or("/").to_owned();
    (method, path)
}

async fn auth(state: &State, req: &Request<Incoming>) -> Response<Full<Bytes>> {
    let started = Instant::now();
    let (method, path) = original(req);
    let checker = state
        .routes
        .iter()
        .find(|r| r.rule.matches(&method, &path))
        .map_or(&state.default, |r| &r.auth);
    let decision = checker.authorize(req.headers()).await;
    let elapsed = started.elapsed().as_secs_f64();
    match decision {
        Ok(Some(v)) => {
            state.metrics.decided("ok", elapsed);
            audit_allow(&v, &method, &path);
            let mut r = text(StatusCode::OK, "");
            identity_headers(state, &v, r.headers_mut());
            r
        }
        Ok(None) => {
            state.metrics.decided("anonymous", elapsed);
            tracing::info!(target: "tokenwarden::audit", decision = "allow", result = "anonymous", method = %method, path = %path);
            text(StatusCode::OK, "")
        }
        Err(rejection) => {
            state.metrics.decided(rejection.reason(), elapsed);
            tracing::info!(target: "tokenwarden::audit", decision = "deny", result = rejection.reason(), status = rejection.status(), method = %method, path = %path);
            refusal(state, &rejection)
        }
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
    if let Some(challenge) = rejection.challenge(&state.config.realm) {
        if let Ok(v) = HeaderValue::from_str(&challenge) {
            r.headers_mut().insert(http::header::WWW_AUTHENTICATE, v);
        }
    }
    r
}

/// Identity for the upstream; values that are not visible ASCII are left out
/// rather than mangled.
fn identity_headers(state: &State, v: &Validated<Map<String, Value>>, out: &mut HeaderMap) {
    let names = &state.header_names;
    let put = |out: &mut HeaderMap, name: &HeaderName, value: Option<String>| {
        if let Some(value) = value {
            if let Ok(value) = HeaderValue::from_str(&value) {
                out.insert(name.clone(), value);
            }
        }
    };
    let as_text = |value: Option<&Value>| match value? {
        Value::String(s) => Some(s.clone()),
        Value::Null => None,
        Value::Array(items) => Some(
            items
                .iter()
                .map(|i| i.as_str().map_or_else(|| i.to_string(), str::to_owned))
                .collect::<Vec<_>>()
                .join(" "),
        ),
        other => Some(other.to_string()),
    };
    put(out, &names.subject, as_text(v.claims.get("sub")));
    put(out, &names.issuer, as_text(v.claims.get("iss")));
    put(
        out,
        &names.scopes,
        as_text(v.claims.get("scope").or_else(|| v.claims.get("scp"))),
    );
    for (claim, name) in &names.claims {
        put(out, name, as_text(v.claims.get(claim)));
    }
}
