//! Certificate-bound tokens (RFC 8705) through `tokenwarden serve` behind a
//! real nginx that terminates TLS and verifies client certificates
//! (`ssl_verify_client optional`), forwarding `$ssl_client_escaped_cert`
//! to the sidecar; certificates made at test time with rcgen. Without nginx
//! the nginx test says so (`SKIPPED:`) and passes, unless
//! `TOKENWARDEN_REQUIRE_NGINX` is set.
#![cfg(all(feature = "cli", feature = "testing"))]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod common;

use std::process::{Command, Stdio};

use axum::http::HeaderMap;
use common::sidecar::*;
use common::tls::{ClientCert, Pki};
use tokenwarden::testing::TestIssuer;

fn nginx_binary() -> Option<String> {
    ["/usr/sbin/nginx", "/usr/local/sbin/nginx", "/usr/bin/nginx"]
        .iter()
        .find(|p| std::path::Path::new(p).exists())
        .map(|p| (*p).to_owned())
}

/// nginx on TLS with client certificates checked against the test CA; the
/// auth subrequest carries the verified certificate in `X-Client-Cert`
/// (set on every request: a client's own `X-Client-Cert` never passes).
fn nginx_conf(dir: &std::path::Path, port: u16, sidecar: u16, upstream: u16) -> String {
    let d = dir.display();
    format!(
        r#"daemon off;
master_process off;
worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/error.log warn;
events {{ worker_connections 64; }}
http {{
    access_log off;
    client_body_temp_path {d}/body;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;
    server {{
        listen 127.0.0.1:{port} ssl;
        ssl_certificate {d}/server.pem;
        ssl_certificate_key {d}/server.key;
        ssl_client_certificate {d}/ca.pem;
        ssl_verify_client optional;
        location = /_tokenwarden {{
            internal;
            proxy_pass http://127.0.0.1:{sidecar}/auth;
            proxy_pass_request_body off;
            proxy_set_header Content-Length "";
            proxy_set_header X-Original-URI $request_uri;
            proxy_set_header X-Original-Method $request_method;
            proxy_set_header X-Client-Cert $ssl_client_escaped_cert;
        }}
        location / {{
            auth_request /_tokenwarden;
            auth_request_set $tw_subject $upstream_http_x_auth_subject;
            proxy_set_header X-Auth-Subject $tw_subject;
            proxy_set_header X-Client-Cert "";
            proxy_set_header Authorization "";
            proxy_pass http://127.0.0.1:{upstream};
        }}
    }}
}}
"#
    )
}

/// The upstream: answers with the subject nginx passed on.
async fn upstream() -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let app = axum::Router::new().fallback(|headers: HeaderMap| async move {
        let subject = headers
            .get("x-auth-subject")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        format!("subject={subject}")
    });
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    port
}

const MTLS: &str =
    "\n[mtls]\nfrom_gateway = true\nheader = \"X-Client-Cert\"\nformat = \"nginx\"\n";

const RULES: &str = "";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn behind_nginx_a_bound_token_passes_only_with_its_client_certificate() {
    let Some(nginx) = nginx_binary() else {
        assert!(
            std::env::var_os("TOKENWARDEN_REQUIRE_NGINX").is_none(),
            "nginx is required (TOKENWARDEN_REQUIRE_NGINX) but not installed"
        );
        common::skipped(
            "sidecar_mtls::behind_nginx_a_bound_token_passes_only_with_its_client_certificate",
            "nginx is not installed (bash scripts/test.sh installs it)",
        );
        return;
    };
    let idp = TestIssuer::start().unwrap();
    let pki = Pki::new();
    let alice = pki.client("alice", &["spiffe://shop.test/ns/prod/sa/alice"], &[]);
    let mallory = pki.client("mallory", &["spiffe://shop.test/ns/prod/sa/mallory"], &[]);
    let outsider = Pki::named("another CA").client("alice", &[], &[]);

    let dir = Scratch::new("nginx-mtls");
    dir.write("server.pem", &pki.server_pem);
    dir.write("server.key", &pki.server_key_pem);
    dir.write("ca.pem", &pki.ca_pem);
    let cfg = dir.write("tw.toml", &format!("{}{MTLS}", config(idp.issuer(), RULES)));
    let side = start_sidecar(&cfg, &[]).await;
    wait_status(&format!("http://{}/readyz", side.addr), 200).await;
    let up = upstream().await;
    let port = free_port();
    let conf = dir.write(
        "nginx.conf",
        &nginx_conf(&dir.0, port, side.addr.port(), up),
    );
    let mut nginx = Command::new(nginx)
        .args(["-p", &dir.0.display().to_string(), "-c"])
        .arg(&conf)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let front = format!("https://localhost:{port}");
    let probe = pki.https_client(None);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while probe.get(format!("{front}/")).send().await.is_err() {
        assert!(std::time::Instant::now() < deadline, "nginx never answered");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }

    let call = |cert: Option<&ClientCert>, token: &str, spoof: Option<&ClientCert>| {
        let mut req = pki
            .https_client(cert)
            .get(format!("{front}/bound/orders"))
            .bearer_auth(token);
        if let Some(s) = spoof {
            req = req.header("X-Client-Cert", s.nginx_escaped());
        }
        async move {
            let r = req.send().await.unwrap();
            let challenge = common::challenge_of(&r);
            (r.status().as_u16(), challenge, r.text().await.unwrap())
        }
    };
    let bound = alice.bound_token(&idp, "alice");

    // Alice, her certificate and her token: through to the upstream.
    let (status, _, body) = call(Some(&alice), &bound, None).await;
    assert_eq!((status, body.as_str()), (200, "subject=alice"));

    // Mallory with Alice's stolen token and his own certificate.
    let (status, challenge, _) = call(Some(&mallory), &bound, None).await;
    assert_eq!(status, 401);
    assert!(challenge.contains("error=\"invalid_token\""), "{challenge}");

    // No certificate at all.
    let (status, _, _) = call(None, &bound, None).await;
    assert_eq!(status, 401);

    // The attack: no certificate (or his own), Alice's certificate (public)
    // sent in the very header nginx uses: nginx replaces it.
    assert_eq!(call(None, &bound, Some(&alice)).await.0, 401);
    assert_eq!(call(Some(&mallory), &bound, Some(&alice)).await.0, 401);

    // A certificate from another CA never gets past nginx's handshake check.
    let (status, _, _) = call(Some(&outsider), &bound, None).await;
    assert_eq!(status, 400, "nginx refuses an unverified certificate");

    // A plain bearer token passes (binding not required here).
    let plain = idp.token().audience("api").subject("bob").sign();
    let (status, _, body) = call(Some(&alice), &plain, None).await;
    assert_eq!((status, body.as_str()), (200, "subject=bob"));

    let _ = nginx.kill();
    let _ = nginx.wait();
    drop(side);
}

/// Asks the sidecar directly, as nginx's auth subrequest would.
async fn ask(
    sidecar: std::net::SocketAddr,
    token: &str,
    headers: &[(&str, String)],
) -> (u16, String) {
    let mut req = reqwest::Client::new()
        .get(format!("http://{sidecar}/auth"))
        .header("X-Original-URI", "/bound/orders")
        .header("X-Original-Method", "GET")
        .bearer_auth(token);
    for (k, v) in headers {
        req = req.header(*k, v);
    }
    let r = req.send().await.unwrap();
    let challenge = common::challenge_of(&r);
    (r.status().as_u16(), challenge)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_from_gateway_a_client_sent_certificate_header_never_binds() {
    let idp = TestIssuer::start().unwrap();
    let pki = Pki::new();
    let alice = pki.client("alice", &[], &["alice.shop.test"]);
    let bound = alice.bound_token(&idp, "alice");
    let dir = Scratch::new("mtls-off");
    // No [mtls]: the sidecar reads no header as a certificate, whatever
    // its name, and a bound token can never be proven.
    let cfg = dir.write("tw.toml", &config(idp.issuer(), RULES));
    let side = start_sidecar(&cfg, &[]).await;
    wait_status(&format!("http://{}/readyz", side.addr), 200).await;
    let pem = alice.nginx_escaped();
    for header in ["X-Client-Cert", "X-SSL-Client-Cert", "SSL-Client-Cert"] {
        let (status, challenge) = ask(side.addr, &bound, &[(header, pem.clone())]).await;
        assert_eq!(status, 401, "{header}");
        assert!(challenge.contains("error=\"invalid_token\""), "{challenge}");
    }
    let xfcc = format!("Cert=\"{pem}\"");
    let (status, _) = ask(side.addr, &bound, &[("X-Forwarded-Client-Cert", xfcc)]).await;
    assert_eq!(status, 401);
    // A plain token still passes: nothing else changed.
    let plain = idp.token().audience("api").subject("bob").sign();
    assert_eq!(ask(side.addr, &plain, &[]).await.0, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn from_the_gateways_header_bindings_and_identities_are_checked() {
    let idp = TestIssuer::start().unwrap();
    let pki = Pki::new();
    let alice = pki.client("alice", &["spiffe://shop.test/ns/prod/sa/orders"], &[]);
    let mallory = pki.client("mallory", &["spiffe://evil.test/sa/mallory"], &[]);
    let dir = Scratch::new("mtls-gw");
    let section =
        format!("{MTLS}require_bound_tokens = true\nallow_trust_domains = [\"shop.test\"]\n");
    let cfg = dir.write(
        "tw.toml",
        &format!("{}{section}", config(idp.issuer(), RULES)),
    );
    let side = start_sidecar(&cfg, &[]).await;
    wait_status(&format!("http://{}/readyz", side.addr), 200).await;
    let bound = alice.bound_token(&idp, "alice");
    let cert = |c: &ClientCert| vec![("X-Client-Cert", c.nginx_escaped())];
    assert_eq!(ask(side.addr, &bound, &cert(&alice)).await.0, 200);
    assert_eq!(ask(side.addr, &bound, &cert(&mallory)).await.0, 401);
    assert_eq!(ask(side.addr, &bound, &[]).await.0, 401);
    // require_bound_tokens: a plain bearer token is refused, certificate or not.
    let plain = idp.token().audience("api").subject("bob").sign();
    let (status, challenge) = ask(side.addr, &plain, &cert(&alice)).await;
    assert_eq!(status, 401);
    assert!(
        challenge.contains("only certificate-bound tokens"),
        "{challenge}"
    );
    // Two certificate headers, or one that is not an escaped PEM: 400.
    let mut two = cert(&alice);
    two.extend(cert(&alice));
    assert_eq!(ask(side.addr, &bound, &two).await.0, 400);
    let junk = vec![(
        "X-Client-Cert",
        "-----BEGIN%20CERTIFICATE-----%0Azz".to_owned(),
    )];
    assert_eq!(ask(side.addr, &bound, &junk).await.0, 400);

    // No token: the certificate is the identity (allow-listed trust domain).
    let no_token = |c: &ClientCert| {
        let req = reqwest::Client::new()
            .get(format!("http://{}/auth", side.addr))
            .header("X-Original-URI", "/bound/orders")
            .header("X-Original-Method", "GET")
            .header("X-Client-Cert", c.nginx_escaped());
        async move {
            let r = req.send().await.unwrap();
            let subject = r
                .headers()
                .get("x-auth-subject")
                .map(|v| v.to_str().unwrap().to_owned())
                .unwrap_or_default();
            (r.status().as_u16(), subject)
        }
    };
    assert_eq!(
        no_token(&alice).await,
        (200, "spiffe://shop.test/ns/prod/sa/orders".to_owned())
    );
    assert_eq!(no_token(&mallory).await.0, 401);
}

#[test]
fn mtls_settings_are_checked_at_load() {
    let dir = Scratch::new("mtls-check");
    for (section, needle) in [
        (
            "\n[mtls]\nheader = \"X-Client-Cert\"\n",
            "mtls.from_gateway",
        ),
        ("\n[mtls]\nfrom_gateway = false\n", "mtls.from_gateway"),
        (
            "\n[mtls]\nfrom_gateway = true\nformat = \"apache\"\n",
            "mtls.format",
        ),
        (
            "\n[mtls]\nfrom_gateway = true\nheader = \"X Client\"\n",
            "mtls.header",
        ),
    ] {
        let cfg = dir.write(
            "tw.toml",
            &format!("{}{section}", config("https://idp.test", RULES)),
        );
        let out = Command::new(binary())
            .args(["serve", "--check", "--config"])
            .arg(&cfg)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{section}");
        assert!(err.contains(needle), "{section}: {err}");
    }
}
