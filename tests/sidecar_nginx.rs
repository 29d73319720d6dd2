//! A real nginx with `auth_request` in front of `tokenwarden serve`, and an
//! upstream that shows what it received. Without nginx installed the test
//! says so (a `SKIPPED:` line the runner shows) and passes, unless `TOKENWARDEN_REQUIRE_NGINX` is set (CI sets it
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
    # nginx copies WWW-Authenticate itself on a 401: add it on a 403 only,
    # or a 401 carries it twice (as in the README).
    map $status $tw_forbidden_challenge {{
        403 $tw_challenge;
        default "";
    }}
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
            auth_request_set $tw_issuer $upstream_http_x_auth_issuer;
            auth_request_set $tw_scopes $upstream_http_x_auth_scopes;
            auth_request_set $tw_tenant $upstream_http_x_auth_tenant;
            auth_request_set $tw_challenge $upstream_http_www_authenticate;
            add_header WWW-Authenticate $tw_forbidden_challenge always;
            proxy_set_header X-Auth-Subject $tw_subject;
            proxy_set_header X-Auth-Issuer $tw_issuer;
            proxy_set_header X-Auth-Scopes $tw_scopes;
            proxy_set_header X-Auth-Tenant $tw_tenant;
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
            "subject={};scopes={};authorization={};issuer={};tenant={};others={}",
            get("x-auth-subject"),
            get("x-auth-scopes"),
            get("authorization").len(),
            get("x-auth-issuer"),
            get("x-auth-tenant"),
            headers
                .keys()
                .filter(|k| k.as_str().starts_with("x-auth-"))
                .count(),
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
        common::skipped(
            "sidecar_nginx::nginx_auth_request_in_front_of_the_sidecar",
            "nginx is not installed (bash scripts/test.sh installs it)",
        );
        return;
    };
    let idp = TestIssuer::start().unwrap();
    let dir = Scratch::new("nginx");
    let cfg = dir.write(
        "tw.toml",
        &format!(
            "{}\n[headers]\nclaims = {{ tenant = \"X-Auth-Tenant\" }}\n",
            // Paths folded: the upstream here serves /ADMIN as /admin.
            config(
                idp.issuer(),
                "[[rule]]\npath = \"/admin/*\"\nscopes = [\"admin\"]\n\n[[rule]]\npath = \"/public/*\"\nanonymous = true\n",
            )
            .replacen("gateway", "case_insensitive_paths = true\ngateway", 1)
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
        body.contains(";authorization=0;"),
        "the token is not forwarded: {body}"
    );

    let r = call("/orders/1", None).await.unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(r.headers()["www-authenticate"], "Bearer realm=\"shop\"");
    assert_eq!(
        r.headers().get_all("www-authenticate").iter().count(),
        1,
        "one challenge on a 401: {:?}",
        r.headers()
    );

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
    let challenges: Vec<_> = r.headers().get_all("www-authenticate").iter().collect();
    assert_eq!(
        challenges.len(),
        1,
        "one challenge on a 403: {challenges:?}"
    );
    assert!(
        challenges[0]
            .to_str()
            .unwrap()
            .contains("error=\"insufficient_scope\", scope=\"admin\""),
        "{challenges:?}"
    );

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

    idp.set_available(true);
    attacks(port, &good, &admin).await;

    let _ = nginx.kill();
    let _ = nginx.wait();
}

/// One raw HTTP/1.1 request to nginx, bytes as given (no client-side
/// normalisation): the status and the body.
async fn raw(port: u16, method: &str, target: &[u8], headers: &[(&str, &[u8])]) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut req = Vec::new();
    req.extend_from_slice(method.as_bytes());
    req.push(b' ');
    req.extend_from_slice(target);
    req.extend_from_slice(b" HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n");
    for (name, value) in headers {
        req.extend_from_slice(name.as_bytes());
        req.extend_from_slice(b": ");
        req.extend_from_slice(value);
        req.extend_from_slice(b"\r\n");
    }
    req.extend_from_slice(b"\r\n");
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    stream.write_all(&req).await.unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(
        std::time::Duration::from_secs(20),
        stream.read_to_end(&mut answer),
    )
    .await
    .expect("nginx answered")
    .unwrap();
    let answer = String::from_utf8_lossy(&answer).into_owned();
    let status = answer
        .get(9..12)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("not HTTP: {answer:?}"));
    let body = answer
        .split_once("\r\n\r\n")
        .map_or("", |(_, b)| b)
        .to_owned();
    (status, body)
}

/// The attacks of issue 14 through a real nginx: a client choosing what it
/// is judged as (spoofed X-Original-* / X-Forwarded-*, a byte >= 0x80),
/// path spellings that dodge a rule, and a client-sent identity header.
/// nginx resolves some spellings in `$uri`, but `$request_uri` (what it
/// hands the sidecar) is the client's raw text: the sidecar normalises it.
async fn attacks(port: u16, user: &str, admin: &str) {
    let bearer = format!("Bearer {user}");
    let auth: (&str, &[u8]) = ("Authorization", bearer.as_bytes());

    // Spoofed descriptions of the request: nginx sets X-Original-* itself
    // (the client's copies are replaced), and X-Forwarded-* is not read.
    let spoofs: &[(&str, &[u8])] = &[
        auth,
        ("X-Original-URI", b"/public/"),
        ("X-Original-Method", b"GET"),
        ("X-Forwarded-Uri", b"/public/"),
        ("X-Forwarded-Method", b"GET"),
    ];
    let (status, _) = raw(port, "DELETE", b"/admin/x", spoofs).await;
    assert_eq!(status, 403, "spoofed headers: judged as DELETE /admin/x");
    let (status, _) = raw(port, "DELETE", b"/admin/x", &spoofs[1..]).await;
    assert_eq!(
        status, 401,
        "spoofed headers without a token: not anonymous"
    );

    // A byte >= 0x80: the sidecar refuses (400, which nginx's auth_request
    // turns into 500); it never falls back to the client's X-Forwarded-Uri.
    let (status, body) = raw(port, "GET", b"/admin/\x80x", spoofs).await;
    assert_eq!(status, 500, "refused, not passed: {body}");
    assert!(!body.contains("subject="), "{body}");

    // Path tricks: (target, status with a user token). 403: judged by the
    // /admin/* rule; 500: the sidecar's 400 (no safe normal form).
    let tricks: &[(&[u8], u16)] = &[
        (b"/public/../admin/x", 403),
        (b"/public/./../admin/x", 403),
        (b"/%61dmin/x", 403),
        (b"//admin/x", 403),
        (b"/ADMIN/x", 403),
        (b"/Admin/x?y=/public/", 403),
        (b"/admin;p=1/x", 500),
        (b"/admin%3bp=1/x", 500),
        (b"/public/%2e%2e/admin/x", 500),
        (b"/public%2F..%2Fadmin/x", 500),
        (b"/public/..%5Cadmin/x", 500),
        // nginx refuses an encoded NUL itself (the sidecar would too).
        (b"/admin%00/x", 400),
    ];
    for &(target, want) in tricks {
        let (status, body) = raw(port, "GET", target, &[auth]).await;
        let shown = String::from_utf8_lossy(target);
        assert_eq!(status, want, "{shown}: {body}");
        assert!(
            !body.contains("subject="),
            "{shown} reached the upstream: {body}"
        );
    }
    // The same with the admin scope passes where the path is normal.
    let admin_bearer = format!("Bearer {admin}");
    let (status, body) = raw(
        port,
        "GET",
        b"/public/../admin/x",
        &[("Authorization", admin_bearer.as_bytes())],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert!(body.starts_with("subject=root;"), "{body}");

    // A client-sent identity header never reaches the upstream: replaced
    // by the sidecar's value, or emptied (nginx then drops it) when the
    // claim is absent or the route anonymous.
    let forged: &[(&str, &[u8])] = &[
        ("X-Auth-Subject", b"root"),
        ("X-Auth-Scopes", b"admin"),
        ("X-Auth-Issuer", b"https://evil.example"),
        ("X-Auth-Tenant", b"other"),
    ];
    let with_token: Vec<(&str, &[u8])> = std::iter::once(auth)
        .chain(forged.iter().copied())
        .collect();
    let (status, body) = raw(port, "GET", b"/orders/1", &with_token).await;
    assert_eq!(status, 200, "{body}");
    assert!(
        body.starts_with("subject=alice;scopes=orders:read;"),
        "{body}"
    );
    assert!(
        body.contains(";tenant=;") && !body.contains("evil") && !body.contains("tenant=other"),
        "{body}"
    );
    let (status, body) = raw(port, "GET", b"/public/logo.png", forged).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.starts_with("subject=;scopes=;"), "{body}");
    assert!(body.ends_with("issuer=;tenant=;others=0"), "{body}");
}

/// The upstream of the internal token: validates `Authorization: Bearer`
/// with tokenwarden against the keys the sidecar serves, and answers with
/// what it found (or the refusal's kind).
async fn validating_upstream(jwks: &[u8]) -> u16 {
    let upstream = std::sync::Arc::new(
        tokenwarden::Validator::builder()
            .issuer("https://gateway.test")
            .audience("https://orders.internal")
            .required_type("at+jwt")
            .keys(tokenwarden::KeySet::from_jwks(jwks).unwrap())
            .build()
            .unwrap(),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let app = axum::Router::new().fallback(move |headers: HeaderMap| {
        let upstream = upstream.clone();
        async move {
            let auth = headers
                .get("authorization")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            // `Bearer ` with an empty token arrives as `Bearer`.
            let token = auth.strip_prefix("Bearer").unwrap_or(auth).trim();
            if token.is_empty() {
                return "none".to_owned();
            }
            match upstream.validate_json(token) {
                Ok(v) => format!(
                    "sub={};authn={};scope={};token={token}",
                    v.claims["sub"].as_str().unwrap_or(""),
                    v.claims["authn"].as_str().unwrap_or(""),
                    v.claims["scope"].as_str().unwrap_or(""),
                ),
                Err(e) => format!("invalid:{}:{auth}", e.kind()),
            }
        }
    });
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    port
}

/// Issue 16: nginx hands the upstream the sidecar's internal token in place
/// of the client's (`auth_request_set` + `proxy_set_header Authorization`,
/// as in the README); the upstream validates it with tokenwarden against
/// the sidecar's `/.well-known/jwks.json` and never sees the client's token,
/// not even on an anonymous route.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nginx_forwards_the_internal_token_and_the_upstream_validates_it() {
    let Some(nginx) = nginx_binary() else {
        assert!(
            std::env::var_os("TOKENWARDEN_REQUIRE_NGINX").is_none(),
            "nginx is required (TOKENWARDEN_REQUIRE_NGINX) but not installed"
        );
        common::skipped(
            "sidecar_nginx::nginx_forwards_the_internal_token_and_the_upstream_validates_it",
            "nginx is not installed (bash scripts/test.sh installs it)",
        );
        return;
    };
    let idp = TestIssuer::start().unwrap();
    let dir = Scratch::new("nginx-internal");
    let key = dir.write("mint.pem", &mint_key_pem());
    let cfg = dir.write(
        "tw.toml",
        &format!(
            "{}{}",
            config(
                idp.issuer(),
                "[[rule]]\npath = \"/admin/*\"\nscopes = [\"admin\"]\n\n[[rule]]\npath = \"/public/*\"\nanonymous = true\n",
            ),
            internal_token_section(&key)
        ),
    );
    let side = start_sidecar(&cfg, &[]).await;
    wait_status(&format!("http://{}/readyz", side.addr), 200).await;
    let jwks = reqwest::get(format!("http://{}/.well-known/jwks.json", side.addr))
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    let up = validating_upstream(&jwks).await;
    let port = free_port();
    let conf = nginx_conf(&dir.0, port, side.addr.port(), up).replacen(
        "proxy_set_header Authorization \"\";",
        "auth_request_set $tw_internal $upstream_http_x_internal_token;\n            proxy_set_header Authorization \"Bearer $tw_internal\";",
        1,
    );
    assert!(conf.contains("$tw_internal"));
    let conf = dir.write("nginx.conf", &conf);
    let mut nginx = Command::new(nginx)
        .args(["-p", &dir.0.display().to_string(), "-c"])
        .arg(&conf)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let front = format!("http://127.0.0.1:{port}");
    wait_http(&format!("{front}/")).await;

    let good = idp
        .token()
        .audience("api")
        .subject("alice")
        .scope("orders:read")
        .sign();
    let call = |path: &str, token: Option<&str>| {
        let mut req = reqwest::Client::new().get(format!("{front}{path}"));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        req.send()
    };
    let r = call("/orders/1", Some(&good)).await.unwrap();
    assert_eq!(r.status(), 200);
    let body = r.text().await.unwrap();
    assert!(
        body.starts_with("sub=alice;authn=jwt;scope=orders:read;token="),
        "{body}"
    );
    assert!(!body.contains(&good), "the client's token went upstream");

    // A refusal never reaches the upstream.
    let r = call("/admin/x", Some(&good)).await.unwrap();
    assert_eq!(r.status(), 403);
    assert!(!r.text().await.unwrap().contains("sub="));

    // Anonymous route: the client's token (here a valid IdP token, which
    // the upstream would take for a credential if it trusted the IdP) is
    // replaced by an empty one.
    let r = call("/public/logo.png", Some(&good)).await.unwrap();
    assert_eq!(r.status(), 200);
    let body = r.text().await.unwrap();
    assert!(body.starts_with("sub=alice;") || body == "none", "{body}");
    assert!(!body.contains(&good), "the client's token went upstream");
    // Anonymous, with a client-sent copy of the sidecar's header: nginx
    // reads the sidecar's response only, so the upstream gets no token.
    let r = reqwest::Client::new()
        .get(format!("{front}/public/logo.png"))
        .header("x-internal-token", "forged.client.token")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.unwrap(), "none");

    let _ = nginx.kill();
    let _ = nginx.wait();
}

/// Issue 17, the phantom-token pattern behind a real nginx: an opaque token
/// is introspected by the sidecar, and the upstream receives only the
/// internal JWT it validates against the sidecar's JWKS (`authn:
/// introspection`), never the opaque token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nginx_phantom_token_the_upstream_gets_only_the_internal_token() {
    let Some(nginx) = nginx_binary() else {
        assert!(
            std::env::var_os("TOKENWARDEN_REQUIRE_NGINX").is_none(),
            "nginx is required (TOKENWARDEN_REQUIRE_NGINX) but not installed"
        );
        common::skipped(
            "sidecar_nginx::nginx_phantom_token_the_upstream_gets_only_the_internal_token",
            "nginx is not installed (bash scripts/test.sh installs it)",
        );
        return;
    };
    let idp = TestIssuer::start().unwrap();
    idp.introspection_client_secret(INTROSPECTION_CLIENT, INTROSPECTION_SECRET);
    let dir = Scratch::new("nginx-phantom");
    let key = dir.write("mint.pem", &mint_key_pem());
    let secret = dir.write("secret", INTROSPECTION_SECRET);
    let cfg = dir.write(
        "tw.toml",
        &format!(
            "{}{}{}",
            config(idp.issuer(), RULES),
            introspection_section(&idp, &secret, ""),
            internal_token_section(&key)
        ),
    );
    let side = start_sidecar(&cfg, &[]).await;
    wait_status(&format!("http://{}/readyz", side.addr), 200).await;
    let jwks = reqwest::get(format!("http://{}/.well-known/jwks.json", side.addr))
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    let up = validating_upstream(&jwks).await;
    let port = free_port();
    let conf = nginx_conf(&dir.0, port, side.addr.port(), up).replacen(
        "proxy_set_header Authorization \"\";",
        "auth_request_set $tw_internal $upstream_http_x_internal_token;\n            proxy_set_header Authorization \"Bearer $tw_internal\";",
        1,
    );
    let conf = dir.write("nginx.conf", &conf);
    let mut nginx = Command::new(nginx)
        .args(["-p", &dir.0.display().to_string(), "-c"])
        .arg(&conf)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let front = format!("http://127.0.0.1:{port}");
    wait_http(&format!("{front}/")).await;

    let opaque = idp
        .opaque_token()
        .subject("alice")
        .audience("api")
        .scope("orders:read")
        .issue();
    let r = reqwest::Client::new()
        .get(format!("{front}/orders/1"))
        .bearer_auth(&opaque)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let body = r.text().await.unwrap();
    assert!(
        body.starts_with("sub=alice;authn=introspection;scope=orders:read;token="),
        "{body}"
    );
    assert!(!body.contains(&opaque), "the opaque token went upstream");
    // Revoked (unseen): refused before the upstream.
    let revoked = idp.opaque_token().subject("bob").audience("api").issue();
    idp.revoke(&revoked);
    let r = reqwest::Client::new()
        .get(format!("{front}/orders/1"))
        .bearer_auth(&revoked)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert!(!r.text().await.unwrap().contains("sub="));

    let _ = nginx.kill();
    let _ = nginx.wait();
    let (_, err) = side.terminate();
    assert!(
        !err.contains(&opaque),
        "the opaque token in the sidecar's log"
    );
}
