//! Serving over tokio-rustls with client certificates, shared by
//! `examples/mtls.rs` (axum, HTTP/1.1), `examples/tonic_mtls.rs` (tonic,
//! HTTP/2) and the mTLS tests, which serve through this very loop.
//!
//! rustls does the handshake and verifies the client's certificate
//! (`WebPkiClientVerifier`); hyper serves the connection; each request gets
//! the connection's verified certificate in its extensions as a
//! [`PeerCertificate`], where the tokenwarden layer finds it. Nothing from a
//! request's headers ever becomes a `PeerCertificate` here.
#![allow(dead_code)]

use std::sync::Arc;

use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokenwarden::authn::mtls::PeerCertificate;
use tower::ServiceExt as _;

/// What the examples' setup returns on failure.
pub type Error = Box<dyn std::error::Error + Send + Sync>;

/// The protocol spoken on each connection.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Http {
    /// HTTP/1.1 (an axum app).
    One,
    /// HTTP/2 (a tonic service, `Routes::into_axum_router()`).
    Two,
}

/// Serves `app` on `listener` over TLS with `config`; each connection's
/// verified client certificate reaches every request on it as a
/// [`PeerCertificate`].
pub async fn serve_mtls(
    listener: tokio::net::TcpListener,
    config: Arc<rustls::ServerConfig>,
    app: axum::Router,
    http: Http,
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
            let _ = match http {
                Http::One => {
                    hyper::server::conn::http1::Builder::new()
                        .serve_connection(io, service)
                        .await
                }
                Http::Two => {
                    hyper::server::conn::http2::Builder::new(hyper_util::rt::TokioExecutor::new())
                        .serve_connection(io, service)
                        .await
                }
            };
        });
    }
}

/// Whether the server requires a client certificate or only asks for one.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum ClientAuth {
    /// A handshake without a certificate issued by the CA fails.
    Required,
    /// A client may present none (`allow_unauthenticated`); one it presents
    /// must still be issued by the CA.
    Optional,
}

/// rustls verifying client certificates against `ca`, with the server's
/// `cert` and `key`, speaking `h2` for [`Http::Two`].
pub fn server_config(
    ca: CertificateDer<'static>,
    cert: CertificateDer<'static>,
    key: PrivateKeyDer<'static>,
    auth: ClientAuth,
    http: Http,
) -> Result<Arc<rustls::ServerConfig>, Error> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca)?;
    let verifier =
        rustls::server::WebPkiClientVerifier::builder_with_provider(roots.into(), provider.clone());
    let verifier = match auth {
        ClientAuth::Required => verifier.build()?,
        ClientAuth::Optional => verifier.allow_unauthenticated().build()?,
    };
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_client_cert_verifier(verifier)
        .with_single_cert(vec![cert], key)?;
    if http == Http::Two {
        config.alpn_protocols = vec![b"h2".to_vec()];
    }
    Ok(Arc::new(config))
}

/// A CA made at start with rcgen, the server's certificate for `localhost`,
/// and a client certificate naming `spiffe://shop.example/orders` (a real
/// deployment loads its CA and keys from files).
pub struct DemoPki {
    /// The CA's certificate.
    pub ca: rcgen::Certificate,
    /// The server's certificate, issued by the CA.
    pub server: rcgen::Certificate,
    /// The server's key.
    pub server_key: rcgen::KeyPair,
    /// The client's certificate, issued by the CA.
    pub client: rcgen::Certificate,
    /// The client's key.
    pub client_key: rcgen::KeyPair,
}

impl DemoPki {
    /// Makes the CA and both certificates.
    pub fn generate() -> Result<DemoPki, Error> {
        use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair, SanType};
        let ca_key = KeyPair::generate()?;
        let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca = ca_params.self_signed(&ca_key)?;
        let issuer = Issuer::new(ca_params, ca_key);
        let server_key = KeyPair::generate()?;
        let server = CertificateParams::new(vec!["localhost".to_owned()])?
            .signed_by(&server_key, &issuer)?;
        let client_key = KeyPair::generate()?;
        let mut client_params = CertificateParams::new(Vec::<String>::new())?;
        client_params
            .subject_alt_names
            .push(SanType::URI("spiffe://shop.example/orders".try_into()?));
        let client = client_params.signed_by(&client_key, &issuer)?;
        Ok(DemoPki {
            ca,
            server,
            server_key,
            client,
            client_key,
        })
    }

    /// The server's rustls configuration (client certificates required).
    pub fn server_config(&self, http: Http) -> Result<Arc<rustls::ServerConfig>, Error> {
        let key = PrivateKeyDer::Pkcs8(self.server_key.serialize_der().into());
        server_config(
            self.ca.der().clone(),
            self.server.der().clone(),
            key,
            ClientAuth::Required,
            http,
        )
    }
}
