//! Whole-system figures that criterion does not give: thread scaling, cold
//! start, memory, and an axum service's throughput behind the layer. Every
//! loop is bounded in count and time; servers listen on 127.0.0.1 only.
//!
//! ```sh
//! cargo bench --bench throughput                 # everything (about 3 min)
//! cargo bench --bench throughput -- scaling      # or: cold, memory, layer, http
//! ```
//!
//! The cold start and the HTTP server run in child processes (this binary,
//! started again with `TW_PERF_ROLE`), so each is measured from a fresh
//! process and the load driver does not share a runtime with the server.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Map, Value, json};
use tokenwarden::testing::{TestKey, jwks_json};
use tokenwarden::{Algorithm, CacheConfig, FixedClock, KeySet, Validator};

type Claims = Map<String, Value>;

/// One thing to repeat on every thread.
type Case<'a> = Box<dyn Fn() + Sync + 'a>;

const JWKS: &[u8] = include_bytes!("../examples/data/jwks.json");
const RS256_TOKEN: &str = include_str!("../examples/data/valid-rs256.jwt");
const ISS: &str = "https://idp.example.com";
const AUD: &str = "https://api.example.com";

fn main() {
    match std::env::var("TW_PERF_ROLE").as_deref() {
        Ok("cold") => return cold_child(),
        Ok("server") => return server_child(),
        _ => {}
    }
    // `cargo bench` passes `--bench`; any other word picks sections.
    let picked: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let run = |name: &str| picked.is_empty() || picked.iter().any(|p| p == name);
    println!(
        "machine: {} cores ({})",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        cpu_model()
    );
    if run("scaling") {
        scaling();
    }
    if run("cold") {
        cold();
    }
    if run("memory") {
        memory();
    }
    if run("layer") {
        layer();
    }
    if run("http") {
        http();
    }
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|s| s.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into())
}

// ---------------------------------------------------------------- scaling

/// Validations per second over `window` on `threads` threads at once.
fn rate(threads: usize, window: Duration, f: &(dyn Fn() + Sync)) -> f64 {
    let total: u64 = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                s.spawn(|| {
                    let start = Instant::now();
                    let mut n = 0u64;
                    // Bounded by time, checked every 64 calls.
                    while start.elapsed() < window {
                        for _ in 0..64 {
                            f();
                        }
                        n += 64;
                    }
                    n
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).sum()
    });
    total as f64 / window.as_secs_f64()
}

fn scaling() {
    println!("\n## Scaling: validations/s, 1 vs 2 threads (1 s windows, best of 3)\n");
    println!("| case | 1 thread | 2 threads | ratio |");
    println!("|---|---:|---:|---:|");
    let now = 1_700_000_000;
    let claims = json!({"iss": "iss", "aud": "aud", "sub": "alice", "exp": now + 600});
    for alg in [Algorithm::HS256, Algorithm::RS256, Algorithm::ES256] {
        let key = TestKey::generate(alg, alg.as_str()).unwrap();
        let token = key.token(&claims);
        let build = |cache: bool| {
            let b = Validator::builder()
                .issuer("iss")
                .audience("aud")
                .clock(FixedClock(now))
                .keys(KeySet::from_jwks(key.jwks_json().as_bytes()).unwrap());
            let b = if cache {
                b.cache(CacheConfig::default())
            } else {
                b.no_cache()
            };
            b.build().unwrap()
        };
        let full = build(false);
        let cached = build(true);
        cached.validate_shared::<Claims>(&token).unwrap();
        // The floor: the signature check alone (ring, key pre-parsed where
        // ring can) plus decoding the claims, to tell the machine's own
        // scaling from ours.
        let (input, sig) = token.rsplit_once('.').unwrap();
        let sig =
            base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, sig).unwrap();
        let payload = base64::Engine::decode(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD,
            input.split('.').nth(1).unwrap(),
        )
        .unwrap();
        let jwk = key.jwk();
        let b = |m: &str| {
            base64::Engine::decode(
                &base64::engine::general_purpose::URL_SAFE_NO_PAD,
                jwk[m].as_str().unwrap(),
            )
            .unwrap()
        };
        let secret = if alg == Algorithm::HS256 {
            b("k")
        } else {
            vec![0; 32]
        };
        let hmac = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &secret);
        let public: Vec<u8> = match alg {
            Algorithm::ES256 => [vec![4], b("x"), b("y")].concat(),
            _ => Vec::new(),
        };
        let rsa = (alg == Algorithm::RS256).then(|| (b("n"), b("e")));
        let floor = move || {
            let ok = match alg {
                Algorithm::HS256 => ring::hmac::verify(&hmac, input.as_bytes(), &sig).is_ok(),
                Algorithm::RS256 => {
                    let (n, e) = rsa.as_ref().unwrap();
                    ring::signature::RsaPublicKeyComponents { n, e }
                        .verify(
                            &ring::signature::RSA_PKCS1_2048_8192_SHA256,
                            input.as_bytes(),
                            &sig,
                        )
                        .is_ok()
                }
                _ => ring::signature::UnparsedPublicKey::new(
                    &ring::signature::ECDSA_P256_SHA256_FIXED,
                    &public,
                )
                .verify(input.as_bytes(), &sig)
                .is_ok(),
            };
            assert!(ok);
            std::hint::black_box(serde_json::from_slice::<Claims>(&payload).unwrap());
        };
        let cases: [(&str, Case); 3] = [
            ("floor (ring + claims JSON)", Box::new(floor)),
            (
                "full",
                Box::new(|| {
                    std::hint::black_box(full.validate::<Claims>(&token).unwrap());
                }),
            ),
            (
                "cache-hit-shared",
                Box::new(|| {
                    std::hint::black_box(cached.validate_shared::<Claims>(&token).unwrap());
                }),
            ),
        ];
        for (name, f) in &cases {
            let best = |threads| {
                (0..3)
                    .map(|_| rate(threads, Duration::from_secs(1), f.as_ref()))
                    .fold(0.0, f64::max)
            };
            let one = best(1);
            let two = best(2);
            println!(
                "| {} {name} | {one:.0} | {two:.0} | {:.2}x |",
                alg.as_str(),
                two / one
            );
        }
    }
}

// ------------------------------------------------------------- cold start

/// In a fresh process: bootstrap keys (bytes shipped with the function) to
/// the first validated token. Prints microseconds.
fn cold_child() {
    let start = Instant::now();
    let keys = KeySet::from_jwks(JWKS).unwrap();
    let validator = Validator::builder()
        .issuer(ISS)
        .audience(AUD)
        .keys(keys)
        .build()
        .unwrap();
    let ok = validator.validate::<Claims>(RS256_TOKEN.trim()).unwrap();
    let elapsed = start.elapsed();
    std::hint::black_box(ok);
    println!("{}", elapsed.as_micros());
}

fn cold() {
    println!("\n## Cold start: fresh process, bootstrap JWKS to first validated RS256 token\n");
    let exe = std::env::current_exe().unwrap();
    let mut micros: Vec<u64> = (0..21)
        .map(|_| {
            let out = Command::new(&exe)
                .env("TW_PERF_ROLE", "cold")
                .output()
                .unwrap();
            String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
        })
        .collect();
    micros.sort_unstable();
    println!(
        "21 processes: median {} us, min {} us, max {} us (process exec excluded)",
        micros[10], micros[0], micros[20]
    );
}

// ----------------------------------------------------------------- memory

/// Resident bytes of this process (Linux), or 0 elsewhere.
fn rss() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
        .map_or(0, |pages| pages * 4096)
}

fn memory() {
    println!("\n## Memory (resident bytes grown, divided by count)\n");
    println!("| what | count | bytes each | cache's own account |");
    println!("|---|---:|---:|---:|");
    // Key sets first, while the heap has no freed space to reuse: 40 sets
    // parsed from one JWK Set, all kept to the end.
    let mut keep = Vec::new();
    for (alg, count) in [
        (Algorithm::ES256, 256),
        (Algorithm::EdDSA, 256),
        (Algorithm::RS256, 32),
    ] {
        let keys: Vec<TestKey> = (0..count)
            .map(|i| TestKey::generate(alg, format!("k{i}")).unwrap())
            .collect();
        let refs: Vec<&TestKey> = keys.iter().collect();
        let text = jwks_json(&refs);
        let before = rss();
        let sets: Vec<KeySet> = (0..40)
            .map(|_| KeySet::from_jwks(text.as_bytes()).unwrap())
            .collect();
        let grown = rss().saturating_sub(before);
        assert!(sets.iter().all(|s| s.len() == count));
        println!(
            "| key in a set ({}) | {} | {} | |",
            alg.as_str(),
            40 * count,
            grown / (40 * count as u64)
        );
        keep.push(sets);
    }
    let now = 1_700_000_000;
    let key = TestKey::generate(Algorithm::HS256, "k").unwrap();
    let n = 50_000;
    std::hint::black_box(&keep);
    {
        let v = Validator::builder()
            .issuer("iss")
            .audience("aud")
            .clock(FixedClock(now))
            .keys(KeySet::from_jwks(key.jwks_json().as_bytes()).unwrap())
            .cache(
                // No weight floor: the account is the estimate itself.
                CacheConfig::default()
                    .max_entries(u64::from(u32::MAX))
                    .max_bytes(1 << 32),
            )
            .build()
            .unwrap();
        // Typical access-token claims (~300 bytes of JSON).
        let tokens: Vec<String> = (0..n)
            .map(|i| {
                key.token(&json!({
                    "iss": "iss", "aud": "aud", "sub": format!("user-{i:08}"),
                    "exp": now + 600, "iat": now, "jti": format!("{i:032x}"),
                    "scope": "orders:read orders:write profile", "client_id": "web-app",
                    "tenant": "acme"
                }))
            })
            .collect();
        let before = rss();
        for t in &tokens {
            v.validate::<Claims>(t).unwrap();
        }
        let (entries, weighted) = v.cache_usage().unwrap();
        let grown = rss().saturating_sub(before);
        println!(
            "| cached token ({}-byte token, {}-byte claims) | {entries} | {} | {} |",
            tokens[0].len(),
            tokens[0].split('.').nth(1).map_or(0, |p| p.len() * 3 / 4),
            grown / entries.max(1),
            weighted / entries.max(1)
        );
    }
}

// ------------------------------------------------------------------ layer

/// The layer over the example keys, with the verified-token cache or not.
fn demo_auth(cache: bool) -> tokenwarden::middleware::BearerAuth {
    tokenwarden::middleware::BearerAuth::new(demo_validator(cache))
}

/// The same as a chain of one JWT authenticator (`BearerAuth::from_chain`).
fn demo_chain(cache: bool) -> tokenwarden::middleware::BearerAuth {
    use tokenwarden::authn::{Chain, jwt::JwtAuthenticator};
    let chain = Chain::new().jwt(JwtAuthenticator::new(demo_validator(cache)));
    tokenwarden::middleware::BearerAuth::from_chain(chain)
}

fn demo_validator(cache: bool) -> Validator {
    let b = Validator::builder()
        .issuer(ISS)
        .audience(AUD)
        .keys(KeySet::from_jwks(JWKS).unwrap());
    let b = if cache {
        b.cache(CacheConfig::default())
    } else {
        b.no_cache()
    };
    b.build().unwrap()
}

/// The layer's own cost per request: a tower service that answers at once,
/// behind `BearerAuthLayer`, called in a loop (no network, no runtime).
fn layer() {
    use std::future::Future;
    use std::task::{Context, Poll, Waker};
    use tower::{Layer, Service, ServiceExt};
    println!("\n## The layer's own cost per request (RS256 token, no network)\n");
    println!("| layer | per request |");
    println!("|---|---:|");
    for mode in ["none", "cache", "chain-cache", "no-cache", "chain-no-cache"] {
        let cache = mode.ends_with("cache") && !mode.ends_with("no-cache");
        let auth = if mode.starts_with("chain") {
            demo_chain(cache)
        } else {
            demo_auth(cache)
        };
        let inner = tower::service_fn(|_req: http::Request<()>| async {
            Ok::<_, std::convert::Infallible>(http::Response::new(()))
        });
        // The layer's body type (`ResponseBody<()>`) dropped to `()`, so
        // both services have one type.
        let mut svc = auth
            .layer()
            .layer(inner)
            .map_response(|r| r.map(|_| ()))
            .boxed_clone();
        let mut plain = inner.boxed_clone();
        let value = format!("Bearer {}", RS256_TOKEN.trim());
        let mut cx = Context::from_waker(Waker::noop());
        type Svc = tower::util::BoxCloneService<
            http::Request<()>,
            http::Response<()>,
            std::convert::Infallible,
        >;
        let mut once = |s: &mut Svc| {
            let mut req = http::Request::new(());
            req.headers_mut()
                .insert("authorization", value.parse().unwrap());
            let mut f = std::pin::pin!(s.call(req));
            let Poll::Ready(Ok(resp)) = f.as_mut().poll(&mut cx) else {
                panic!("not ready");
            };
            assert_eq!(resp.status(), 200);
        };
        let n = if mode.ends_with("no-cache") {
            20_000
        } else {
            200_000
        };
        let target = if mode == "none" { &mut plain } else { &mut svc };
        for _ in 0..1000 {
            once(target);
        }
        let start = Instant::now();
        for _ in 0..n {
            once(target);
        }
        let each = start.elapsed() / n;
        let name = match mode {
            "none" => "none (request with the header, answered)",
            "cache" => "tokenwarden, cache on",
            "chain-cache" => "chain of one JWT authenticator, cache on",
            "chain-no-cache" => "chain of one JWT authenticator, cache off",
            _ => "tokenwarden, cache off",
        };
        println!("| {name} | {:.2} us |", each.as_secs_f64() * 1e6);
    }
}

// ------------------------------------------------------------------- http

/// A child process: axum hello world on 127.0.0.1, with `workers` runtime
/// threads, behind the layer or not; prints its port, serves until killed.
fn server_child() {
    let workers: usize = std::env::var("TW_WORKERS").unwrap().parse().unwrap();
    let mode = std::env::var("TW_MODE").unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let app = axum::Router::new()
            .route("/", axum::routing::get(|| async { "hello" }))
            .route(
                "/cpu",
                axum::routing::get(|| async { process_cpu_ns().to_string() }),
            );
        let app = if mode == "none" {
            app
        } else {
            app.layer(demo_auth(mode == "cache").layer())
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        println!("{}", listener.local_addr().unwrap().port());
        axum::serve(listener, app).await.unwrap();
    });
}

/// CPU time this process has used, all threads, user and system, in ns
/// (Linux: the first field of each thread's `schedstat`).
fn process_cpu_ns() -> u64 {
    std::fs::read_dir("/proc/self/task")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|t| std::fs::read_to_string(t.path().join("schedstat")).ok())
        .filter_map(|s| s.split_whitespace().next()?.parse::<u64>().ok())
        .sum()
}

/// The server's CPU time so far, asked over its own connection.
async fn server_cpu_ns(port: u16) -> u64 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let request = format!(
        "GET /cpu HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nAuthorization: Bearer {}\r\n\r\n",
        RS256_TOKEN.trim()
    );
    s.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    s.read_to_string(&mut response).await.unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    body.trim().parse().unwrap()
}

struct Load {
    rps: f64,
    served: usize,
    /// Server CPU time per request (all its threads), when measured.
    cpu_per_req: Option<Duration>,
    p50: Duration,
    p99: Duration,
    failed: usize,
}

/// `conns` keep-alive HTTP/1.1 connections, each sending `GET /` with the
/// token back to back, for `window` or `max` requests in all.
async fn drive(port: u16, conns: usize, window: Duration, max: usize) -> Load {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let request = Arc::new(format!(
        "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {}\r\n\r\n",
        RS256_TOKEN.trim()
    ));
    let per_conn = max / conns;
    let start = Instant::now();
    let tasks: Vec<_> = (0..conns)
        .map(|_| {
            let request = request.clone();
            tokio::spawn(async move {
                let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
                    .await
                    .unwrap();
                s.set_nodelay(true).unwrap();
                let mut lat = Vec::with_capacity(per_conn);
                let mut failed = 0;
                let mut buf = vec![0u8; 4096];
                while lat.len() < per_conn && start.elapsed() < window {
                    let t = Instant::now();
                    s.write_all(request.as_bytes()).await.unwrap();
                    // Read one whole response: head, then Content-Length bytes.
                    let mut have = 0;
                    let (head_end, body_len) = loop {
                        let n = s.read(&mut buf[have..]).await.unwrap();
                        assert!(n > 0, "server closed the connection");
                        have += n;
                        if let Some(i) = buf[..have].windows(4).position(|w| w == b"\r\n\r\n") {
                            let head = String::from_utf8_lossy(&buf[..i]).to_ascii_lowercase();
                            if !head.starts_with("http/1.1 200") {
                                failed += 1;
                            }
                            let len = head
                                .lines()
                                .find_map(|l| l.strip_prefix("content-length:"))
                                .and_then(|v| v.trim().parse::<usize>().ok())
                                .unwrap_or(0);
                            break (i + 4, len);
                        }
                    };
                    while have < head_end + body_len {
                        let n = s.read(&mut buf[have..]).await.unwrap();
                        assert!(n > 0, "server closed the connection");
                        have += n;
                    }
                    lat.push(t.elapsed());
                }
                (lat, failed)
            })
        })
        .collect();
    let mut all = Vec::new();
    let mut failed = 0;
    for t in tasks {
        let (lat, f) = t.await.unwrap();
        all.extend(lat);
        failed += f;
    }
    let took = start.elapsed();
    all.sort_unstable();
    let pick = |q: f64| all[((all.len() as f64 * q) as usize).min(all.len() - 1)];
    Load {
        rps: all.len() as f64 / took.as_secs_f64(),
        served: all.len(),
        cpu_per_req: None,
        p50: pick(0.50),
        p99: pick(0.99),
        failed,
    }
}

fn http() {
    let rounds: usize = std::env::var("TW_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(5);
    println!(
        "\n## axum hello world: 32 keep-alive connections, RS256 token, client in another process; \
         {rounds} interleaved 2 s runs per mode (at most 200 000 requests each)\n"
    );
    println!(
        "req/s, p50, p99: the best run. vs no layer: the median, over the rounds, of this mode's \
         req/s divided by the bare service's in the same round (lowest and highest in brackets). \
         Server CPU: the server's own CPU time (all threads) per request, median of the runs; \
         capacity: the median over the rounds of the bare service's CPU per request divided by \
         this mode's, the throughput the server would keep with a core to itself.\n"
    );
    println!(
        "| server workers | layer | req/s | p50 | p99 | req/s vs no layer | server CPU per request | capacity vs no layer |"
    );
    println!("|---:|---|---:|---:|---:|---:|---:|---:|");
    let exe = std::env::current_exe().unwrap();
    let client = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    // The modes interleaved so that the machine's drift hits them alike.
    for workers in [1, 2] {
        let modes = ["none", "cache", "no-cache"];
        let mut runs: Vec<Vec<Load>> = modes.iter().map(|_| Vec::new()).collect();
        for round in 0..rounds {
            // Each round starts with another mode, so none is always first.
            for m in (0..modes.len()).map(|i| (i + round) % modes.len()) {
                let mode = &modes[m];
                let mut child = Command::new(&exe)
                    .env("TW_PERF_ROLE", "server")
                    .env("TW_WORKERS", workers.to_string())
                    .env("TW_MODE", mode)
                    .stdout(Stdio::piped())
                    .spawn()
                    .unwrap();
                let mut line = String::new();
                BufReader::new(child.stdout.take().unwrap())
                    .read_line(&mut line)
                    .unwrap();
                let port: u16 = line.trim().parse().unwrap();
                // Warm up, then measure.
                client.block_on(drive(port, 32, Duration::from_millis(300), 20_000));
                let before = client.block_on(server_cpu_ns(port));
                let mut load = client.block_on(drive(port, 32, Duration::from_secs(2), 200_000));
                let used = client.block_on(server_cpu_ns(port)) - before;
                load.cpu_per_req = Some(Duration::from_nanos(used / load.served.max(1) as u64));
                child.kill().unwrap();
                child.wait().unwrap();
                assert_eq!(load.failed, 0, "{mode}: refused requests");
                runs[m].push(load);
            }
        }
        let best = |r: &[Load]| {
            r.iter()
                .max_by(|a, b| a.rps.total_cmp(&b.rps))
                .map(|l| (l.rps, l.p50, l.p99))
                .unwrap()
        };
        let cpu = |r: &[Load]| {
            let mut c: Vec<Duration> = r.iter().filter_map(|l| l.cpu_per_req).collect();
            c.sort_unstable();
            c[c.len() / 2]
        };
        // Per-round ratios against the bare service: (median, lowest, highest).
        let paired = |r: &[Load], f: &dyn Fn(&Load, &Load) -> f64| {
            let mut v: Vec<f64> = r.iter().zip(&runs[0]).map(|(l, b)| f(l, b)).collect();
            v.sort_by(f64::total_cmp);
            (v[v.len() / 2], v[0], v[v.len() - 1])
        };
        for (mode, r) in modes.iter().zip(&runs) {
            let (rps, p50, p99) = best(r);
            let c = cpu(r);
            let (ratio, lo, hi) = paired(r, &|l, b| l.rps / b.rps);
            let capacity = paired(r, &|l, b| {
                b.cpu_per_req.unwrap().as_secs_f64() / l.cpu_per_req.unwrap().as_secs_f64()
            })
            .0;
            let layer = match *mode {
                "none" => "none",
                "cache" => "tokenwarden, cache on",
                _ => "tokenwarden, cache off",
            };
            println!(
                "| {workers} | {layer} | {rps:.0} | {:.0} us | {:.0} us | {:.0}% ({:.0}–{:.0}%) | {:.2} us | {:.0}% |",
                p50.as_secs_f64() * 1e6,
                p99.as_secs_f64() * 1e6,
                100.0 * ratio,
                100.0 * lo,
                100.0 * hi,
                c.as_secs_f64() * 1e6,
                100.0 * capacity,
            );
        }
    }
}
