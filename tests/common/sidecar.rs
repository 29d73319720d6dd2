//! Runs the real `tokenwarden serve` binary for tests, on a loopback port.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::Read;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A free loopback port (bound, then released for the child to take).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A scratch directory under the target dir, removed on drop.
pub struct Scratch(pub PathBuf);

impl Scratch {
    pub fn new(name: &str) -> Scratch {
        let dir = std::env::temp_dir().join(format!(
            "tokenwarden-{name}-{}-{}",
            std::process::id(),
            free_port()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }

    pub fn write(&self, file: &str, text: &str) -> PathBuf {
        let p = self.0.join(file);
        std::fs::write(&p, text).unwrap();
        p
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A child process killed on drop; its stderr is kept for diagnosis.
pub struct Running {
    pub child: Child,
    pub addr: SocketAddr,
}

impl Running {
    /// Sends SIGTERM and waits (bounded) for the exit status.
    pub fn terminate(mut self) -> (Option<i32>, String) {
        self.send_term();
        let code = self.wait_exit(Duration::from_secs(15));
        let mut err = String::new();
        if let Some(mut e) = self.child.stderr.take() {
            let _ = e.read_to_string(&mut err);
        }
        (code, err)
    }

    /// Sends SIGTERM and returns at once.
    pub fn send_term(&self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
    }

    /// The exit status, waiting at most `within` (then the child is killed
    /// and `None` returned).
    pub fn wait_exit(&mut self, within: Duration) -> Option<i32> {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code();
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// stderr, line by line, as it is written (read on a thread of its own).
    pub fn stderr_lines(&mut self) -> Lines {
        use std::io::BufRead;
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let err = self.child.stderr.take().expect("stderr already taken");
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(err).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Lines {
            rx,
            seen: Vec::new(),
        }
    }
}

/// A child's stderr lines, as they come.
pub struct Lines {
    rx: tokio::sync::mpsc::UnboundedReceiver<String>,
    /// Every line read so far, for failure messages.
    pub seen: Vec<String>,
}

impl Lines {
    /// Waits (at most 20 s) for a line containing `needle`; false when the
    /// stream ends or time runs out first.
    pub async fn wait_for(&mut self, needle: &str) -> bool {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            match tokio::time::timeout_at(deadline, self.rx.recv()).await {
                Ok(Some(line)) => {
                    let hit = line.contains(needle);
                    self.seen.push(line);
                    if hit {
                        return true;
                    }
                }
                Ok(None) | Err(_) => return false,
            }
        }
    }

    /// The lines written so far and not yet read, added to `seen`.
    pub fn drain(&mut self) -> &[String] {
        while let Ok(line) = self.rx.try_recv() {
            self.seen.push(line);
        }
        &self.seen
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn binary() -> &'static str {
    env!("CARGO_BIN_EXE_tokenwarden")
}

/// Starts `tokenwarden serve --config FILE --listen 127.0.0.1:PORT` and
/// waits until `/healthz` answers.
pub async fn start_sidecar(config: &Path, extra: &[&str]) -> Running {
    let port = free_port();
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let child = Command::new(binary())
        .arg("serve")
        .arg("--config")
        .arg(config)
        .args(["--listen", &addr.to_string()])
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let running = Running { child, addr };
    wait_http(&format!("http://{addr}/healthz")).await;
    running
}

/// Like [`start_sidecar`], with the process limited to `nofile` open
/// files (through `sh -c 'ulimit -n'`), to provoke EMFILE at accept.
pub async fn start_sidecar_with_fd_limit(config: &Path, nofile: u32) -> Running {
    let port = free_port();
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let child = Command::new("sh")
        .arg("-c")
        .arg(format!("ulimit -n {nofile} && exec \"$0\" \"$@\""))
        .arg(binary())
        .arg("serve")
        .arg("--config")
        .arg(config)
        .args(["--listen", &addr.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let running = Running { child, addr };
    wait_http(&format!("http://{addr}/healthz")).await;
    running
}

/// Polls a URL until it answers at all (bounded: 20 s).
pub async fn wait_http(url: &str) {
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while client.get(url).send().await.is_err() {
        assert!(Instant::now() < deadline, "{url} never answered");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Polls until `url` answers with `status` (bounded: 20 s).
pub async fn wait_status(url: &str, status: u16) {
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(r) = client.get(url).send().await {
            if r.status().as_u16() == status {
                return;
            }
        }
        assert!(Instant::now() < deadline, "{url} never answered {status}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A config file for one issuer found through discovery, behind nginx,
/// with the rules given.
pub fn config(issuer: &str, rules: &str) -> String {
    config_behind("nginx", issuer, rules)
}

/// A config file for one issuer found through discovery, behind this
/// gateway (`nginx`, `traefik`, `envoy`), with the rules given.
pub fn config_behind(gateway: &str, issuer: &str, rules: &str) -> String {
    format!(
        "audiences = [\"api\"]\nallow_http = true\nrealm = \"shop\"\ngateway = \"{gateway}\"\n\n[[issuer]]\nissuer = \"{issuer}\"\n\n{rules}"
    )
}

/// Prometheus text → the value of the sample with exactly this name and
/// labels (`name{a="b"}`), if present.
pub fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines().filter(|l| !l.starts_with('#')).find_map(|l| {
        let (name, value) = l.rsplit_once(' ')?;
        (name == series).then(|| value.parse().ok()).flatten()
    })
}

/// A fresh P-256 signing key for `[internal_token]`, as the unencrypted
/// PKCS #8 PEM `openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256`
/// writes.
pub fn mint_key_pem() -> String {
    use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair};
    use base64::Engine as _;
    let der = EcdsaKeyPair::generate_pkcs8(
        &ECDSA_P256_SHA256_FIXED_SIGNING,
        &aws_lc_rs::rand::SystemRandom::new(),
    )
    .unwrap();
    let body = base64::engine::general_purpose::STANDARD.encode(der.as_ref());
    let lines: Vec<&str> = body
        .as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect();
    format!(
        "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
        lines.join("\n")
    )
}

/// An `[internal_token]` section signing with the key at `key_file`.
pub fn internal_token_section(key_file: &Path) -> String {
    format!(
        "\n[internal_token]\nkey_file = {:?}\nissuer = \"https://gateway.test\"\naudience = \"https://orders.internal\"\nlifetime_seconds = 60\n",
        key_file.display().to_string()
    )
}

pub const RULES: &str = r#"
[[rule]]
path = "/admin/*"
scopes = ["admin"]

[[rule]]
path = "/public/*"
anonymous = true
"#;

pub async fn get(url: &str, token: Option<&str>, original: &str) -> reqwest::Response {
    let mut req = reqwest::Client::new()
        .get(url)
        .header("x-original-uri", original)
        .header("x-original-method", "GET");
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    req.send().await.unwrap()
}

pub fn serve_with(config_text: &str) -> (Option<i32>, String) {
    let dir = Scratch::new("badcfg");
    let cfg = dir.write("bad.toml", config_text);
    serve_flags(&["--config".as_ref(), cfg.as_os_str()])
}

/// `serve --check` with these arguments: the exit code and stderr.
pub fn serve_flags<S: AsRef<std::ffi::OsStr>>(args: &[S]) -> (Option<i32>, String) {
    let out = Command::new(binary())
        .args(["serve", "--check"])
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A request to the sidecar's `/auth` with exactly these headers.
pub async fn ask(
    base: &str,
    path: &str,
    method: reqwest::Method,
    token: Option<&str>,
    headers: &[(&str, &[u8])],
) -> reqwest::Response {
    let mut req = reqwest::Client::new().request(method, format!("{base}{path}"));
    for (name, value) in headers {
        req = req.header(
            *name,
            reqwest::header::HeaderValue::from_bytes(value).unwrap(),
        );
    }
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    req.send().await.unwrap()
}

pub async fn metric(base: &str, series: &str) -> f64 {
    let text = reqwest::get(format!("{base}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    sample(&text, series).unwrap_or(0.0)
}

pub const ADMIN_AND_PUBLIC: &str = r#"
[[rule]]
path = "/public/*"
anonymous = true

[[rule]]
path = "/admin/*"
scopes = ["admin"]
"#;

/// Reads until the peer closes (EOF or reset), at most `within`; the time
/// it took, or `None` if the connection was still open at the deadline.
pub async fn closed_within(
    stream: &mut tokio::net::TcpStream,
    within: std::time::Duration,
) -> Option<std::time::Duration> {
    use tokio::io::AsyncReadExt;
    let started = std::time::Instant::now();
    let deadline = tokio::time::Instant::now() + within;
    let mut buf = [0u8; 1024];
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Err(_) => return None,
            Ok(Ok(0) | Err(_)) => return Some(started.elapsed()),
            Ok(Ok(_)) => {}
        }
    }
}

#[cfg(feature = "testing")]
pub fn with_server(idp: &tokenwarden::testing::TestIssuer, server: &str) -> String {
    format!(
        "{}\n[server]\n{server}\n",
        config(idp.issuer(), ADMIN_AND_PUBLIC)
    )
}

/// A connection on which one request has been answered (retried until one
/// is, for at most 20 s).
pub async fn served_connection(addr: std::net::SocketAddr) -> tokio::net::TcpStream {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let mut c = tokio::net::TcpStream::connect(addr).await.unwrap();
        let mut buf = [0u8; 12];
        let answered = async {
            c.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
                .await?;
            c.read_exact(&mut buf).await
        };
        if let Ok(Ok(_)) = tokio::time::timeout(std::time::Duration::from_secs(3), answered).await {
            if &buf == b"HTTP/1.1 200" {
                // The rest of the answer is small and stays in the buffer.
                return c;
            }
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no connection was served"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// Starts a sidecar behind nginx with these rules (and top-level settings
/// before them); its base URL, once ready.
#[cfg(feature = "testing")]
pub async fn sidecar_with(
    idp: &tokenwarden::testing::TestIssuer,
    dir: &Scratch,
    top: &str,
    rules: &str,
) -> (Running, String) {
    let cfg = dir.write(
        "tw.toml",
        &config(idp.issuer(), rules).replacen("gateway", &format!("{top}\ngateway"), 1),
    );
    let side = start_sidecar(&cfg, &[]).await;
    let base = format!("http://{}", side.addr);
    wait_status(&format!("{base}/readyz"), 200).await;
    (side, base)
}

/// `/auth` behind nginx for this original method and URI, with extra headers.
pub async fn judged(
    base: &str,
    method: &[u8],
    uri: &str,
    token: Option<&str>,
    extra: &[(&str, &[u8])],
) -> u16 {
    let mut headers: Vec<(&str, &[u8])> = vec![
        ("x-original-method", method),
        ("x-original-uri", uri.as_bytes()),
    ];
    headers.extend_from_slice(extra);
    ask(base, "/auth", reqwest::Method::GET, token, &headers)
        .await
        .status()
        .as_u16()
}

/// The sidecar's client at the test issuer's `/introspect`.
pub const INTROSPECTION_CLIENT: &str = "gateway";
/// Its client secret.
pub const INTROSPECTION_SECRET: &str = "s3cret-Hk2Lw9Xq4Pv7Rt1Ym8Nb3Jc6";

/// An `[introspection]` section for the issuer's endpoint, the client
/// [`INTROSPECTION_CLIENT`] with its secret in `secret_file`, and `extra`
/// lines.
#[cfg(feature = "testing")]
pub fn introspection_section(
    idp: &tokenwarden::testing::TestIssuer,
    secret_file: &Path,
    extra: &str,
) -> String {
    format!(
        "\n[introspection]\nendpoint = \"{}\"\nclient_id = \"{INTROSPECTION_CLIENT}\"\nclient_secret_file = {:?}\n{extra}",
        idp.introspection_url(),
        secret_file.display().to_string()
    )
}

/// The admin secret of the sidecar tests' `[revocation]` sections.
pub const ADMIN_SECRET: &str = "s3cr3t-admin-0123456789-abcdefghijklmnop";

/// The client id logout tokens are for (`logout_client_id`).
pub const LOGOUT_CLIENT: &str = "shop-web";

/// `[revocation]` with [`ADMIN_SECRET`] (written to `scratch`) and `extra`
/// lines after it.
pub fn revocation_section(scratch: &Scratch, extra: &str) -> String {
    let secret = scratch.write("admin-secret", &format!("{ADMIN_SECRET}\n"));
    format!(
        "\n[revocation]\nadmin_secret_file = {:?}\n{extra}",
        secret.display().to_string()
    )
}

/// A token of `sub` in session `sid`, with a `jti`, for audience `api`.
pub fn session_token(idp: &tokenwarden::testing::TestIssuer, sub: &str, sid: &str) -> String {
    idp.token()
        .audience("api")
        .subject(sub)
        .claim("sid", sid)
        .claim("jti", format!("{sub}-{sid}"))
        .sign()
}

/// What `/auth` answers for a bearer token on `GET /orders`: the status
/// and the `WWW-Authenticate` header.
pub async fn auth_answer(sidecar: &Running, token: &str) -> (u16, String) {
    let r = reqwest::Client::new()
        .get(format!("http://{}/auth", sidecar.addr))
        .header("x-original-method", "GET")
        .header("x-original-uri", "/orders")
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    let challenge = super::challenge_of(&r);
    (r.status().as_u16(), challenge)
}

/// `POST /admin/revoke` with `body` and, when given, a bearer credential:
/// the status and the body.
pub async fn admin_revoke(
    sidecar: &Running,
    bearer: Option<&str>,
    body: serde_json::Value,
) -> (u16, String) {
    let mut r = reqwest::Client::new()
        .post(format!("http://{}/admin/revoke", sidecar.addr))
        .json(&body);
    if let Some(b) = bearer {
        r = r.bearer_auth(b);
    }
    let r = r.send().await.unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}
