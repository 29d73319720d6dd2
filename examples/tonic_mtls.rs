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

use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair, SanType};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use tokenwarden::authn::Chain;
use tokenwarden::authn::jwt::JwtAuthenticator;
use tokenwarden::authn::mtls::{CertificateBinding, PeerCertificate};
use tokenwarden::middleware::BearerAuth;
use tokenwarden::testing::TestIssuer;
use tokenwarden::{KeySet, Validator};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;
use tower::ServiceExt as _;

type Error = Box<dyn std::error::Error + Send + Sync>;

/// Serves the gRPC `app` on `listener` over TLS and HTTP/2; each
/// connection's verified client certificate reaches every request on it as
/// a [`PeerCertificate`].
async fn serve_grpc_mtls(
    listener: tokio::net::TcpListener,
    config: Arc<rustls::ServerConfig>,
    app: axum::Router,
) {
    let acceptor = tokio_rustls::TlsAcceptor::from(config);
    loop {
        let Ok((tcp, _)) = listener.accept().await else {
            continue;
        };
        let (acceptor, app) = (acceptor.clone(), app.clone());
        tokio::spawn(async move {
            let Ok(tls) = acceptor.accept(tcp).await else {
                return; // no, or an untrusted, client certificate
            };
            let cert = tls
                .get_ref()
                .1
                .peer_certificates()
                .and_then(|chain| chain.first())
                .map(|c| PeerCertificate::new(c.as_ref().to_vec()));
            let service = hyper::service::service_fn(
                move |mut req: axum::http::Request<hyper::body::Incoming>| {
                    // From the TLS session only: never from a header.
                    if let Some(c) = &cert {
                        req.extensions_mut().insert(c.clone());
                    }
                    app.clone().oneshot(req)
                },
            );
            let io = hyper_util::rt::TokioIo::new(tls);
            let _ = hyper::server::conn::http2::Builder::new(hyper_util::rt::TokioExecutor::new())
                .serve_connection(io, service)
                .await;
        });
    }
}

/// rustls requiring a client certificate issued by `ca`, speaking `h2`.
fn server_config(
    ca: CertificateDer<'static>,
    cert: CertificateDer<'static>,
    key: PrivateKeyDer<'static>,
) -> Result<Arc<rustls::ServerConfig>, Error> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca)?;
    let verifier =
        rustls::server::WebPkiClientVerifier::builder_with_provider(roots.into(), provider.clone())
            .build()?;
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_client_cert_verifier(verifier)
        .with_single_cert(vec![cert], key)?;
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(Arc::new(config))
}

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
    let ca_key = KeyPair::generate()?;
    let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key)?;
    let issuer = Issuer::new(ca_params, ca_key);
    let server_key = KeyPair::generate()?;
    let server =
        CertificateParams::new(vec!["localhost".to_owned()])?.signed_by(&server_key, &issuer)?;
    let client_key = KeyPair::generate()?;
    let mut client_params = CertificateParams::new(Vec::<String>::new())?;
    client_params
        .subject_alt_names
        .push(SanType::URI("spiffe://shop.example/orders".try_into()?));
    let client = client_params.signed_by(&client_key, &issuer)?;

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

    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(server_key.serialize_der()));
    let config = server_config(ca.der().clone(), server.der().clone(), key)?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let port = listener.local_addr()?.port();
    tokio::spawn(serve_grpc_mtls(listener, config, app));

    // The client: its certificate, and a token bound to it.
    let token = idp
        .token()
        .audience("api")
        .subject("orders")
        .bind_certificate(client.der())
        .sign();
    let client_key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(client_key.serialize_der()));
    let channel = channel(port, ca.der().clone(), client.der().clone(), client_key).await?;
    let mut request = tonic::Request::new(HealthCheckRequest::default());
    request
        .metadata_mut()
        .insert("authorization", format!("Bearer {token}").parse()?);
    let answer = HealthClient::new(channel).check(request).await?;
    println!("serving status {}", answer.get_ref().status);
    Ok(())
}
