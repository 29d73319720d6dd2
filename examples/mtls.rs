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

use std::sync::Arc;

use axum::routing::get;
use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair, SanType};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokenwarden::authn::jwt::JwtAuthenticator;
use tokenwarden::authn::mtls::{CertificateBinding, PeerCertificate};
use tokenwarden::authn::{Chain, Principal};
use tokenwarden::middleware::BearerAuth;
use tokenwarden::testing::TestIssuer;
use tokenwarden::{KeySet, Validator};
use tower::ServiceExt as _;

type Error = Box<dyn std::error::Error + Send + Sync>;

/// Serves `app` on `listener` over TLS; each connection's verified client
/// certificate reaches every request on it as a [`PeerCertificate`].
async fn serve_mtls(
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
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(io, service)
                .await;
        });
    }
}

/// rustls requiring a client certificate issued by `ca`.
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
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_client_cert_verifier(verifier)
        .with_single_cert(vec![cert], key)?;
    Ok(Arc::new(config))
}

async fn me(p: Principal) -> String {
    format!("hello {}", p.subject())
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

    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(server_key.serialize_der()));
    let config = server_config(ca.der().clone(), server.der().clone(), key)?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let port = listener.local_addr()?.port();
    tokio::spawn(serve_mtls(listener, config, app));

    // The client: its certificate, and a token bound to it.
    let token = idp
        .token()
        .audience("api")
        .subject("orders")
        .bind_certificate(client.der())
        .sign();
    let identity = format!("{}{}", client.pem(), client_key.serialize_pem());
    let http = reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(ca.pem().as_bytes())?])
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
