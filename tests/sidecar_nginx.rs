//! A real nginx with `auth_request` in front of `tokenwarden serve`, and an
//! upstream that shows what it received. Without nginx installed the test
//! says so and passes, unless `TOKENWARDEN_REQUIRE_NGINX` is set (CI sets it
//! after installing nginx).
#![cfg(all(feature = "cli", feature = "testing"))]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod common;

use std::process::{Command, Stdio};

use axum::http::HeaderMap;
use common::sidecar::*;
use tokenwarden::testing::TestIssuer;

fn nginx_binary() -> Option<String> {
    ["/usr/sbin/nginx", "/usr/local/sbin/nginx", "/usr/bin/nginx"]
        .iter()
        .find(|p| std::path::Path::new(p).exists())
        .map(|p| (*p).to_owned())
}

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
        listen 127.0.0.1:{port};
        location = /_tokenwarden {{
            internal;
            proxy_pass http://127.0.0.1:{sidecar}/auth;
            proxy_pass_request_body off;
            proxy_set_header Content-Length "";
            proxy_set_header X-Original-URI $request_uri;
            proxy_set_header X-Original-Method $request_method;
        }}
        location / {{
            auth_request /_tokenwarden;
            auth_request_set $tw_subject $upstream_http_x_auth_subject;
            auth_request_set $tw_scopes $upstream_http_x_auth_scopes;
            auth_request_set $tw_challenge $upstream_http_www_authenticate;
            add_header WWW-Authenticate $tw_challenge always;
            proxy_set_header X-Auth-Subject $tw_subject;
            proxy_set_header X-Auth-Scopes $tw_scopes;
            proxy_set_header Authorization "";
            proxy_pass http://127.0.0.1:{upstream};
        }}
    }}
}}
"#
    )
}

/// The upstream: answers with the identity nginx passed on.
async fn upstream() -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let app = axum::Router::new().fallback(|headers: HeaderMap| async move {
        let get = |n: &str| {
            headers
                .get(n)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_owned()
        };
        format!(
            "subject={};scopes={};authorization={}",
            get("x-auth-subject"),
            get("x-auth-scopes"),
            get("authorization").len()
        )
    });
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    port
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nginx_auth_request_in_front_of_the_sidecar() {
    let Some(nginx) = nginx_binary() else {
        assert!(
            std::env::var_os("TOKENWARDEN_REQUIRE_NGINX").is_none(),
            "nginx is required (TOKENWARDEN_REQUIRE_NGINX) but not installed"
        );
        eprintln!("nginx not installed: skipping (CI installs it)");
        return;
    };
    let idp = TestIssuer::start().unwrap();
    let dir = Scratch::new("nginx");
    let cfg = dir.write(
        "tw.toml",
        &config(
            idp.issuer(),
            "[[rule]]\npath = \"/admin/*\"\nscopes = [\"admin\"]\n",
        ),
    );
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
    let front = format!("http://127.0.0.1:{port}");
    wait_http(&format!("{front}/")).await;

    let client = reqwest::Client::new();
    let call = |path: &str, token: Option<&str>| {
        let mut req = client.get(format!("{front}{path}"));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        req.send()
    };

    let good = idp
        .token()
        .audience("api")
        .subject("alice")
        .scope("orders:read")
        .sign();
    let r = call("/orders/1", Some(&good)).await.unwrap();
    assert_eq!(r.status(), 200);
    let body = r.text().await.unwrap();
    assert!(
        body.starts_with("subject=alice;scopes=orders:read;"),
        "{body}"
    );
    assert!(
        body.ends_with("authorization=0"),
        "the token is not forwarded: {body}"
    );

    let r = call("/orders/1", None).await.unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(r.headers()["www-authenticate"], "Bearer realm=\"shop\"");

    let r = call("/orders/1", Some("not.a.token")).await.unwrap();
    assert_eq!(r.status(), 401);
    assert!(
        r.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .contains("error=\"invalid_token\"")
    );

    let expired = idp
        .token()
        .audience("api")
        .subject("alice")
        .expired()
        .sign();
    let r = call("/orders/1", Some(&expired)).await.unwrap();
    assert_eq!(r.status(), 401);
    assert!(
        r.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .contains("error_description=\"expired\"")
    );

    let r = call("/admin/users", Some(&good)).await.unwrap();
    assert_eq!(r.status(), 403, "a path rule needs the admin scope");

    let admin = idp
        .token()
        .audience("api")
        .subject("root")
        .scope("admin")
        .sign();
    let r = call("/admin/users", Some(&admin)).await.unwrap();
    assert_eq!(r.status(), 200);

    // The IdP goes down: keys are cached, tokens still pass.
    idp.set_available(false);
    let later = idp.token().audience("api").subject("carol").sign();
    let r = call("/orders/2", Some(&later)).await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.text().await.unwrap().starts_with("subject=carol;"));

    let _ = nginx.kill();
    let _ = nginx.wait();
}
