//! tonic over tokio-rustls with client certificates (RFC 8705): a gRPC
//! service (tonic-health's `Health`) behind the tokenwarden layer, served
//! over HTTP/2 on a TLS listener that verifies client certificates
//! (rustls `WebPkiClientVerifier`; `.allow_unauthenticated()` makes them
//! optional). Each connection's verified certificate goes into every
//! request's extensions as a `PeerCertificate`, where the layer holds
//! certificate-bound tokens to it. No TLS is written by hand: rustls does
//! the handshake, hyper's HTTP/2 server the rest.
//!
//! The client is a tonic `Channel` whose connector opens the TLS session
//! with tokio-rustls, presenting the client's certificate.
//!
//! Certificates are made at start with rcgen (a real deployment loads its
//! CA and keys from files).
//! Run: `cargo run --example tonic_mtls --features axum,testing`.

use std::sync::Arc;

use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokenwarden::authn::Chain;
use tokenwarden::authn::jwt::JwtAuthenticator;
use tokenwarden::authn::mtls::CertificateBinding;
use tokenwarden::middleware::BearerAuth;
use tokenwarden::testing::TestIssuer;
use tokenwarden::{KeySet, Validator};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;

// The accept loop that puts each connection's verified certificate into its
// requests' extensions (here over HTTP/2), the rustls configuration and the
// rcgen certificates: shared with examples/mtls.rs.
#[path = "common/tls.rs"]
mod tls;
use tls::{DemoPki, Error, Http, serve_mtls};

/// A tonic channel over tokio-rustls, trusting `ca` and presenting the
/// client certificate `cert` with its key.
async fn channel(
    port: u16,
    ca: CertificateDer<'static>,
    cert: CertificateDer<'static>,
    key: PrivateKeyDer<'static>,
) -> Result<tonic::transport::Channel, Error> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca)?;
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_client_auth_cert(vec![cert], key)?;
    config.alpn_protocols = vec![b"h2".to_vec()];
    let tls = tokio_rustls::TlsConnector::from(Arc::new(config));
    let connector = tower::service_fn(move |_uri: tonic::codegen::http::Uri| {
        let tls = tls.clone();
        async move {
            let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
            let name = ServerName::try_from("localhost").map_err(std::io::Error::other)?;
            let stream = tls.connect(name, tcp).await?;
            Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(stream))
        }
    });
    Ok(
        tonic::transport::Endpoint::from_shared(format!("https://localhost:{port}"))?
            .connect_with_connector(connector)
            .await?,
    )
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    // A CA, the server's certificate and a client's.
    let pki = DemoPki::generate()?;

    // Tokens from a test issuer; the service takes certificate-bound ones
    // only.
    let idp = TestIssuer::start()?;
    let validator = Validator::builder()
        .issuer(idp.issuer())
        .audience("api")
        .keys(KeySet::from_jwks(idp.jwks_json().as_bytes())?)
        .build()?;
    let jwt = JwtAuthenticator::new(validator).certificate_binding(CertificateBinding::Required);
    let auth = BearerAuth::from_chain(Chain::new().jwt(jwt));
    let (_reporter, health) = tonic_health::server::health_reporter();
    let app = tonic::service::Routes::new(health)
        .into_axum_router()
        .layer(auth.layer());

    let config = pki.server_config(Http::Two)?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let port = listener.local_addr()?.port();
    tokio::spawn(serve_mtls(listener, config, app, Http::Two));

    // The client: its certificate, and a token bound to it.
    let token = idp
        .token()
        .audience("api")
        .subject("orders")
        .bind_certificate(pki.client.der())
        .sign();
    let client_key = PrivateKeyDer::Pkcs8(pki.client_key.serialize_der().into());
    let channel = channel(
        port,
        pki.ca.der().clone(),
        pki.client.der().clone(),
        client_key,
    )
    .await?;
    let mut request = tonic::Request::new(HealthCheckRequest::default());
    request
        .metadata_mut()
        .insert("authorization", format!("Bearer {token}").parse()?);
    let answer = HealthClient::new(channel).check(request).await?;
    println!("serving status {}", answer.get_ref().status);
    Ok(())
}
