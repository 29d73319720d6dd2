//! `cargo run --example demo`: the whole story in one process on loopback,
//! nothing outside needed.
//!
//! 1. a development identity provider (OIDC discovery, JWKS, a
//!    client-credentials token endpoint, key rotation on a timer);
//! 2. an axum service protected by tokenwarden's tower layer, keys found by
//!    discovery and refreshed in the background;
//! 3. a client walking through: a valid call, a missing token, an expired
//!    token, too little scope, a key rotation, and the IdP going down.
//!
//! Exits 0 when every step behaved as narrated, 1 otherwise.

use std::time::{Duration, Instant};

use axum::Router;
use axum::routing::get;
use serde_json::Value;
use tokenwarden::middleware::axum::Claims;
use tokenwarden::middleware::{BearerAuth, Scopes};
use tokenwarden::testing::TestIssuer;
use tokenwarden::{RemoteKeySet, Validator};

const AUDIENCE: &str = "orders-api";

struct Story {
    steps: u32,
    failed: u32,
}

impl Story {
    fn expect(&mut self, what: &str, got: u16, want: u16, detail: &str) {
        self.steps += 1;
        let mark = if got == want { "ok " } else { "BAD" };
        if got != want {
            self.failed += 1;
        }
        println!("  [{mark}] {what}: HTTP {got} (expected {want}){detail}");
    }
}

async fn fetch_token(
    client: &reqwest::Client,
    idp: &TestIssuer,
    scope: &str,
) -> Result<String, Box<dyn std::error::Error>> {
    let body: Value = client
        .post(idp.token_url())
        .basic_auth("reporting-job", Some("s3cret"))
        .form(&[("grant_type", "client_credentials"), ("scope", scope)])
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    Ok(body["access_token"].as_str().unwrap_or_default().to_owned())
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!(
        "tokenwarden demo: an identity provider, a protected service and a client, all on 127.0.0.1\n"
    );

    // 1. The identity provider.
    let idp = TestIssuer::builder()
        .client(
            "reporting-job",
            "s3cret",
            AUDIENCE,
            &["orders:read", "orders:write"],
        )
        .start()?;
    println!(
        "identity provider  {}  (discovery, /jwks, POST /token)",
        idp.issuer()
    );

    // 2. The protected service.
    let keys = RemoteKeySet::builder()
        .discovery(idp.issuer())
        .allow_http_loopback(true)
        .build()?;
    keys.refresh().await?;
    let validator = Validator::builder()
        .issuer(idp.issuer())
        .audience(AUDIENCE)
        .keys(keys.clone())
        .build()?;
    let auth = BearerAuth::new(validator).realm("orders");
    let app = Router::new()
        .route(
            "/orders",
            get(
                |Claims(c): Claims<serde_json::Map<String, Value>>| async move {
                    format!(
                        "orders for {}",
                        c.get("sub").and_then(Value::as_str).unwrap_or("?")
                    )
                },
            ),
        )
        .route(
            "/orders/export",
            get(|| async { "export started" }).route_layer(
                auth.clone()
                    .require_scopes(Scopes::all(["orders:export"]))
                    .layer(),
            ),
        )
        .layer(auth.layer());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let service = format!("http://{}", listener.local_addr()?);
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    println!("protected service  {service}  (GET /orders; /orders/export needs orders:export)");

    // Key rotation on a timer, as IdPs do.
    let (rotate_tx, mut rotate_rx) = tokio::sync::mpsc::channel::<()>(1);
    let mut timer = tokio::time::interval(Duration::from_millis(1500));
    timer.tick().await;
    tokio::spawn(async move {
        timer.tick().await;
        let _ = rotate_tx.send(()).await;
    });

    // 3. The client.
    let client = reqwest::Client::new();
    let mut story = Story {
        steps: 0,
        failed: 0,
    };
    println!("\nclient:");

    let token = fetch_token(&client, &idp, "orders:read").await?;
    println!(
        "  got a token from POST /token (client credentials, scope orders:read, kid {})",
        idp.current_kid()
    );
    let r = client
        .get(format!("{service}/orders"))
        .bearer_auth(&token)
        .send()
        .await?;
    let status = r.status().as_u16();
    let body = r.text().await?;
    story.expect("valid token", status, 200, &format!(" -> \"{body}\""));

    let r = client.get(format!("{service}/orders")).send().await?;
    let challenge = header(&r, "www-authenticate");
    story.expect(
        "no token",
        r.status().as_u16(),
        401,
        &format!(" -> WWW-Authenticate: {challenge}"),
    );

    let expired = idp
        .token()
        .audience(AUDIENCE)
        .subject("reporting-job")
        .expired()
        .sign();
    let r = client
        .get(format!("{service}/orders"))
        .bearer_auth(&expired)
        .send()
        .await?;
    let challenge = header(&r, "www-authenticate");
    story.expect(
        "expired token",
        r.status().as_u16(),
        401,
        &format!(" -> {challenge}"),
    );

    let r = client
        .get(format!("{service}/orders/export"))
        .bearer_auth(&token)
        .send()
        .await?;
    let challenge = header(&r, "www-authenticate");
    story.expect(
        "too little scope",
        r.status().as_u16(),
        403,
        &format!(" -> {challenge}"),
    );

    // Rotation: the IdP starts signing with a key the service has not seen.
    rotate_rx.recv().await;
    let old_kid = idp.current_kid();
    let new_kid = idp.rotate()?;
    println!("  the identity provider rotated its signing key: {old_kid} -> {new_kid}");
    let fetches_before = keys.stats().fetches;
    let rotated = fetch_token(&client, &idp, "orders:read").await?;
    let r = client
        .get(format!("{service}/orders"))
        .bearer_auth(&rotated)
        .send()
        .await?;
    story.expect(
        "token signed with the new key",
        r.status().as_u16(),
        200,
        &format!(
            " -> unknown kid fetched the JWKS once ({} fetch), no request failed",
            keys.stats().fetches - fetches_before
        ),
    );

    // Outage: the IdP goes away; cached keys keep the service working.
    let fresh = fetch_token(&client, &idp, "orders:read orders:write").await?;
    idp.set_available(false);
    println!("  the identity provider is down now (every endpoint answers 503)");
    let refresh = keys.refresh().await;
    println!(
        "  a background refresh fails ({}); the last good keys stay in use",
        refresh.err().map_or_else(
            || "unexpectedly succeeded".to_owned(),
            |e| format!("{:?}", e.kind())
        )
    );
    let started = Instant::now();
    let mut ok = 0;
    for _ in 0..20 {
        let r = client
            .get(format!("{service}/orders"))
            .bearer_auth(&fresh)
            .send()
            .await?;
        if r.status() == 200 {
            ok += 1;
        }
    }
    story.expect(
        "20 calls during the outage",
        if ok == 20 { 200 } else { 500 },
        200,
        &format!(
            " -> {ok}/20 succeeded in {:.1} ms",
            started.elapsed().as_secs_f64() * 1e3
        ),
    );
    idp.set_available(true);

    println!(
        "\nsummary: {}/{} steps as expected; the IdP served {} discovery, {} JWKS and {} token requests",
        story.steps - story.failed,
        story.steps,
        idp.stats().discovery,
        idp.stats().jwks,
        idp.stats().token
    );
    if story.failed > 0 {
        std::process::exit(1);
    }
    Ok(())
}

fn header(r: &reqwest::Response, name: &str) -> String {
    r.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned()
}
