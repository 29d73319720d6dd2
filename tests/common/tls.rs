//! Mutual TLS fixtures: a CA, server and client certificates made at test
//! time with rcgen (no private key is ever committed), an axum app served
//! over tokio-rustls with client-certificate verification on 127.0.0.1,
//! and reqwest clients presenting a certificate or none.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::SocketAddr;
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

/// A test CA, with the server's certificate for `localhost` and 127.0.0.1.
pub struct Pki {
    pub ca_pem: String,
    ca_der: CertificateDer<'static>,
    issuer: Issuer<'static, KeyPair>,
    pub server_pem: String,
    pub server_key_pem: String,
    server_der: CertificateDer<'static>,
    server_key_der: Vec<u8>,
}

/// A client certificate and its key.
pub struct ClientCert {
    pub der: Vec<u8>,
    pub pem: String,
    pub key_pem: String,
    pub key_der: Vec<u8>,
}

impl ClientCert {
    /// A token of `idp` for audience `api` and subject `sub`, bound to this
    /// certificate (`cnf.x5t#S256`, RFC 8705 §3.1).
    pub fn bound_token(&self, idp: &tokenwarden::testing::TestIssuer, sub: &str) -> String {
        idp.token()
            .audience("api")
            .subject(sub)
            .bind_certificate(&self.der)
            .sign()
    }

    /// The PEM as nginx's `$ssl_client_escaped_cert` writes it (the
    /// sidecar's `[mtls] format = "nginx"` header).
    pub fn nginx_escaped(&self) -> String {
        self.pem
            .bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                    (b as char).to_string()
                }
                _ => format!("%{b:02X}"),
            })
            .collect()
    }
}

impl Pki {
    pub fn new() -> Pki {
        Pki::named("tokenwarden test CA")
    }

    pub fn named(cn: &str) -> Pki {
        let ca_key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, cn);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let ca = params.self_signed(&ca_key).unwrap();
        let issuer = Issuer::new(params, ca_key);
        let key = KeyPair::generate().unwrap();
        let mut sp = CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
        sp.subject_alt_names
            .push(SanType::IpAddress("127.0.0.1".parse().unwrap()));
        sp.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let server = sp.signed_by(&key, &issuer).unwrap();
        Pki {
            ca_pem: ca.pem(),
            ca_der: ca.der().clone(),
            issuer,
            server_pem: server.pem(),
            server_key_pem: key.serialize_pem(),
            server_der: server.der().clone(),
            server_key_der: key.serialize_der(),
        }
    }

    /// A client certificate with these SANs (URIs such as SPIFFE IDs, DNS
    /// names) and common name.
    pub fn client(&self, cn: &str, uris: &[&str], dns: &[&str]) -> ClientCert {
        self.client_dn(&[(DnType::CommonName, cn)], uris, dns)
    }

    /// A client certificate whose subject is these attributes, one RDN
    /// each, in this order, with these SANs.
    pub fn client_dn(&self, dn: &[(DnType, &str)], uris: &[&str], dns: &[&str]) -> ClientCert {
        let key = KeyPair::generate().unwrap();
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        // Not rcgen's default CN first: exactly these RDNs.
        p.distinguished_name = rcgen::DistinguishedName::new();
        for (t, v) in dn {
            p.distinguished_name.push(t.clone(), *v);
        }
        for u in uris {
            p.subject_alt_names
                .push(SanType::URI((*u).try_into().unwrap()));
        }
        for d in dns {
            p.subject_alt_names
                .push(SanType::DnsName((*d).try_into().unwrap()));
        }
        p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let cert = p.signed_by(&key, &self.issuer).unwrap();
        ClientCert {
            der: cert.der().to_vec(),
            pem: cert.pem(),
            key_pem: key.serialize_pem(),
            key_der: key.serialize_der(),
        }
    }

    /// A rustls server configuration verifying client certificates against
    /// this CA (required, or optional: `allow_unauthenticated`).
    pub fn server_config(&self, auth: ClientAuth) -> Arc<rustls::ServerConfig> {
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.server_key_der.clone()));
        example::server_config(
            self.ca_der.clone(),
            self.server_der.clone(),
            key,
            auth,
            Http::One,
        )
        .unwrap()
    }

    /// An HTTPS client trusting this CA, presenting `cert` if given.
    pub fn https_client(&self, cert: Option<&ClientCert>) -> reqwest::Client {
        let mut b = reqwest::Client::builder()
            .tls_certs_only([reqwest::Certificate::from_pem(self.ca_pem.as_bytes()).unwrap()]);
        if let Some(c) = cert {
            let pem = format!("{}{}", c.pem, c.key_pem);
            b = b.identity(reqwest::Identity::from_pem(pem.as_bytes()).unwrap());
        }
        b.build().unwrap()
    }

    /// A rustls client (for tonic's HTTP/2) trusting this CA, presenting
    /// `cert` if given.
    pub fn tls_connector(&self, cert: Option<&ClientCert>) -> tokio_rustls::TlsConnector {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.ca_der.clone()).unwrap();
        let builder = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots);
        let mut config = match cert {
            Some(c) => builder
                .with_client_auth_cert(
                    vec![CertificateDer::from(c.der.clone())],
                    PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(c.key_der.clone())),
                )
                .unwrap(),
            None => builder.with_no_client_auth(),
        };
        config.alpn_protocols = vec![b"h2".to_vec()];
        tokio_rustls::TlsConnector::from(Arc::new(config))
    }

    /// A tonic channel to `localhost:port` over TLS (tokio-rustls),
    /// presenting `cert` if given. `Err` when the handshake fails.
    pub async fn grpc_channel(
        &self,
        port: u16,
        cert: Option<&ClientCert>,
    ) -> Result<tonic::transport::Channel, tonic::transport::Error> {
        let tls = self.tls_connector(cert);
        let connector = tower::service_fn(move |uri: http::Uri| {
            let tls = tls.clone();
            async move {
                let port = uri.port_u16().unwrap_or(443);
                let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
                let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
                let stream = tls.connect(name, tcp).await?;
                Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(stream))
            }
        });
        tonic::transport::Endpoint::from_shared(format!("https://localhost:{port}"))
            .unwrap()
            .connect_with_connector(connector)
            .await
    }
}

/// The accept loop of examples/mtls.rs and examples/tonic_mtls.rs: the
/// tests serve through the examples' own code.
#[path = "../../examples/common/tls.rs"]
mod example;
pub use example::ClientAuth;
use example::Http;

/// Serves `app` over TLS on 127.0.0.1 with `config`: each connection's
/// verified client certificate goes into every request's extensions as a
/// [`PeerCertificate`] (examples/mtls.rs's loop), and nothing from the
/// request's headers ever does.
pub async fn serve_mtls(app: axum::Router, config: Arc<rustls::ServerConfig>) -> SocketAddr {
    serve_tls(app, config, Http::One).await
}

/// [`serve_mtls`] over HTTP/2, for a tonic service
/// (`Routes::into_axum_router`), as examples/tonic_mtls.rs does.
pub async fn serve_mtls_grpc(app: axum::Router, config: Arc<rustls::ServerConfig>) -> SocketAddr {
    let mut config = (*config).clone();
    config.alpn_protocols = vec![b"h2".to_vec()];
    serve_tls(app, Arc::new(config), Http::Two).await
}

async fn serve_tls(app: axum::Router, config: Arc<rustls::ServerConfig>, http: Http) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(example::serve_mtls(listener, config, app, http));
    addr
}
