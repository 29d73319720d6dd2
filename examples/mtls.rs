//! axum over tokio-rustls with client certificates (RFC 8705): the TLS
//! server verifies the client's certificate (rustls `WebPkiClientVerifier`,
//! required here; `.allow_unauthenticated()` makes it optional) and puts it
//! into each request's extensions as a `PeerCertificate`, where the layer
//! holds certificate-bound tokens to it.
//!
//! tonic: `tonic::service::Routes::into_axum_router()` gives a router that
//! the same accept loop serves with hyper's HTTP/2 builder
//! (`examples/tonic_mtls.rs`, client included).
//!
//! Certificates are made at start with rcgen (a real deployment loads its
//! CA and server key from files). Run: `cargo run --example mtls --features axum`.

use axum::routing::get;
use tokenwarden::authn::jwt::JwtAuthenticator;
use tokenwarden::authn::mtls::CertificateBinding;
use tokenwarden::authn::{Chain, Principal};
use tokenwarden::middleware::BearerAuth;
use tokenwarden::testing::TestIssuer;
use tokenwarden::{KeySet, Validator};

// The accept loop that puts each connection's verified certificate into its
// requests' extensions, the rustls configuration and the rcgen certificates.
#[path = "common/tls.rs"]
mod tls;
use tls::{DemoPki, Error, Http, serve_mtls};

async fn me(p: Principal) -> String {
    format!("hello {}", p.subject())
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    // A CA, the server's certificate and a client's.
    let pki = DemoPki::generate()?;

    // Tokens from a test issuer; this route takes certificate-bound ones only.
    let idp = TestIssuer::start()?;
    let validator = Validator::builder()
        .issuer(idp.issuer())
        .audience("api")
        .keys(KeySet::from_jwks(idp.jwks_json().as_bytes())?)
        .build()?;
    let jwt = JwtAuthenticator::new(validator).certificate_binding(CertificateBinding::Required);
    let auth = BearerAuth::from_chain(Chain::new().jwt(jwt));
    let app = axum::Router::new().route("/me", get(me).route_layer(auth.layer()));

    let config = pki.server_config(Http::One)?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let port = listener.local_addr()?.port();
    tokio::spawn(serve_mtls(listener, config, app, Http::One));

    // The client: its certificate, and a token bound to it.
    let token = idp
        .token()
        .audience("api")
        .subject("orders")
        .bind_certificate(pki.client.der())
        .sign();
    let identity = format!("{}{}", pki.client.pem(), pki.client_key.serialize_pem());
    let http = reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(pki.ca.pem().as_bytes())?])
        .identity(reqwest::Identity::from_pem(identity.as_bytes())?)
        .build()?;
    let r = http
        .get(format!("https://localhost:{port}/me"))
        .bearer_auth(token)
        .send()
        .await?;
    println!("{} {}", r.status(), r.text().await?);
    Ok(())
}
