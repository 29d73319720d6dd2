//! Mutual TLS (RFC 8705) through a real TLS server: axum over tokio-rustls
//! on 127.0.0.1, client certificates verified by rustls's
//! `WebPkiClientVerifier`, certificates made at test time with rcgen.
#![cfg(all(feature = "axum", feature = "testing"))]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod common;

use axum::routing::get;
use common::tls::{ClientAuth, ClientCert, Pki, serve_mtls};
use tokenwarden::authn::jwt::JwtAuthenticator;
use tokenwarden::authn::mtls::CertificateBinding;
use tokenwarden::authn::{Chain, Principal};
use tokenwarden::middleware::BearerAuth;
use tokenwarden::testing::TestIssuer;
use tokenwarden::{KeySet, Requirements, Validator};

fn validator(idp: &TestIssuer) -> Validator {
    Validator::builder()
        .issuer(idp.issuer())
        .audience("api")
        .keys(KeySet::from_jwks(idp.jwks_json().as_bytes()).unwrap())
        .build()
        .unwrap()
}

async fn who(p: Principal) -> String {
    let cnf = p
        .confirmation()
        .and_then(|c| c.get("x5t#S256"))
        .and_then(|c| c.as_str())
        .unwrap_or("-")
        .to_owned();
    format!("{} by {} cnf={cnf}", p.subject(), p.authenticator())
}

/// `/bound`: certificate-bound tokens only; `/any`: bound tokens held to
/// their certificate, plain bearer tokens too.
fn jwt_app(idp: &TestIssuer) -> axum::Router {
    let jwt = JwtAuthenticator::new(validator(idp));
    let required = BearerAuth::from_chain(
        Chain::new().jwt(
            jwt.clone()
                .certificate_binding(CertificateBinding::Required),
        ),
    );
    let when_bound = BearerAuth::from_chain(Chain::new().jwt(jwt));
    axum::Router::new()
        .route("/bound", get(who).route_layer(required.layer()))
        .route("/any", get(who).route_layer(when_bound.layer()))
}

struct Setup {
    idp: TestIssuer,
    pki: Pki,
    alice: ClientCert,
    mallory: ClientCert,
    base: String,
}

async fn setup(auth: ClientAuth) -> Setup {
    let idp = TestIssuer::start().unwrap();
    let pki = Pki::new();
    let alice = pki.client("alice", &["spiffe://shop.test/ns/prod/sa/orders"], &[]);
    let mallory = pki.client("mallory", &["spiffe://shop.test/ns/prod/sa/mallory"], &[]);
    let addr = serve_mtls(jwt_app(&idp), pki.server_config(auth)).await;
    Setup {
        idp,
        pki,
        alice,
        mallory,
        base: format!("https://localhost:{}", addr.port()),
    }
}

async fn get_with(
    client: &reqwest::Client,
    url: String,
    token: &str,
    extra: &[(&str, String)],
) -> (u16, String, String) {
    let mut req = client.get(url).bearer_auth(token);
    for (k, v) in extra {
        req = req.header(*k, v);
    }
    let r = req.send().await.unwrap();
    let status = r.status().as_u16();
    let challenge = common::challenge_of(&r);
    (status, challenge, r.text().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bound_token_with_its_certificate_passes() {
    let s = setup(ClientAuth::Required).await;
    let token = s
        .idp
        .token()
        .audience("api")
        .subject("alice")
        .bind_certificate(&s.alice.der)
        .sign();
    let client = s.pki.https_client(Some(&s.alice));
    let thumb = tokenwarden::authn::mtls::thumbprint(&s.alice.der);
    for path in ["/bound", "/any"] {
        let (status, _, body) = get_with(&client, format!("{}{path}", s.base), &token, &[]).await;
        assert_eq!(status, 200, "{path}: {body}");
        assert_eq!(body, format!("alice by jwt cnf={thumb}"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bound_token_presented_with_another_certificate_is_refused() {
    let s = setup(ClientAuth::Required).await;
    // Mallory stole Alice's token, and has a certificate of her own from
    // the same CA: the TLS handshake passes, the binding does not.
    let stolen = s
        .idp
        .token()
        .audience("api")
        .subject("alice")
        .bind_certificate(&s.alice.der)
        .sign();
    let client = s.pki.https_client(Some(&s.mallory));
    for path in ["/bound", "/any"] {
        let (status, challenge, _) =
            get_with(&client, format!("{}{path}", s.base), &stolen, &[]).await;
        assert_eq!(status, 401, "{path}");
        assert!(challenge.contains("error=\"invalid_token\""), "{challenge}");
        assert!(
            challenge.contains("another client certificate"),
            "{challenge}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bound_token_presented_without_a_certificate_is_refused() {
    let s = setup(ClientAuth::Optional).await;
    let stolen = s
        .idp
        .token()
        .audience("api")
        .subject("alice")
        .bind_certificate(&s.alice.der)
        .sign();
    let client = s.pki.https_client(None);
    for path in ["/bound", "/any"] {
        let (status, challenge, _) =
            get_with(&client, format!("{}{path}", s.base), &stolen, &[]).await;
        assert_eq!(status, 401, "{path}");
        assert!(challenge.contains("error=\"invalid_token\""), "{challenge}");
        assert!(challenge.contains("none was presented"), "{challenge}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plain_bearer_token_is_refused_where_binding_is_required() {
    let s = setup(ClientAuth::Required).await;
    let plain = s.idp.token().audience("api").subject("alice").sign();
    let client = s.pki.https_client(Some(&s.alice));
    let (status, challenge, _) = get_with(&client, format!("{}/bound", s.base), &plain, &[]).await;
    assert_eq!(status, 401);
    assert!(
        challenge.contains("only certificate-bound tokens"),
        "{challenge}"
    );
    // Where binding is not required, a plain token is a bearer token.
    let (status, _, body) = get_with(&client, format!("{}/any", s.base), &plain, &[]).await;
    assert_eq!((status, body.as_str()), (200, "alice by jwt cnf=-"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_sent_in_a_header_never_binds() {
    // The attack: the certificate is public, so a thief with Alice's token
    // sends her certificate in every header a gateway might use, over a
    // connection that presented none (or Mallory's own).
    let s = setup(ClientAuth::Optional).await;
    let stolen = s
        .idp
        .token()
        .audience("api")
        .subject("alice")
        .bind_certificate(&s.alice.der)
        .sign();
    let escaped: String = s
        .alice
        .pem
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect();
    let headers = [
        ("x-ssl-client-cert", escaped.clone()),
        ("ssl-client-cert", escaped.clone()),
        ("x-client-cert", escaped.clone()),
        ("x-forwarded-client-cert", format!("Cert=\"{escaped}\"")),
    ];
    for cert in [None, Some(&s.mallory)] {
        let client = s.pki.https_client(cert);
        for path in ["/bound", "/any"] {
            let (status, _, _) =
                get_with(&client, format!("{}{path}", s.base), &stolen, &headers).await;
            assert_eq!(status, 401, "{path}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_without_a_ca_signed_certificate_never_reaches_the_layer() {
    let s = setup(ClientAuth::Required).await;
    let other_ca = Pki::named("another CA");
    let outsider = other_ca.client("eve", &["spiffe://shop.test/ns/prod/sa/orders"], &[]);
    let token = outsider.bound_token(&s.idp, "alice");
    let client = s.pki.https_client(Some(&outsider));
    let r = client
        .get(format!("{}/bound", s.base))
        .bearer_auth(token)
        .send()
        .await;
    assert!(r.is_err(), "the handshake must fail: {r:?}");
    let r = s
        .pki
        .https_client(None)
        .get(format!("{}/any", s.base))
        .send()
        .await;
    assert!(r.is_err(), "required: no certificate, no connection");
}

#[cfg(feature = "mtls")]
mod identity {
    use super::*;
    use tokenwarden::authn::mtls::{MtlsAuthenticator, SubjectSource};

    /// `/svc`: any workload of the `shop.test` trust domain, or the DNS
    /// name `billing.shop.test`; `/orders`: only the orders workload (a
    /// per-route requirement).
    async fn app(pki: &Pki) -> String {
        let mtls = MtlsAuthenticator::new()
            .allow_trust_domain("spiffe://shop.test")
            .allow("billing.shop.test");
        let chain = Chain::new().with_authenticator(mtls);
        let orders_only = MtlsAuthenticator::new().allow("spiffe://shop.test/ns/prod/sa/orders");
        let orders = chain.clone().require(
            Requirements::new().predicate("the orders workload", move |p| {
                p.authenticator() == "mtls" && orders_only.permits(p)
            }),
        );
        let app = axum::Router::new()
            .route(
                "/svc",
                get(who).route_layer(BearerAuth::from_chain(chain).layer()),
            )
            .route(
                "/orders",
                get(who).route_layer(BearerAuth::from_chain(orders).layer()),
            );
        let addr = serve_mtls(app, pki.server_config(ClientAuth::Optional)).await;
        format!("https://localhost:{}", addr.port())
    }

    async fn call(pki: &Pki, base: &str, path: &str, cert: Option<&ClientCert>) -> (u16, String) {
        let r = pki
            .https_client(cert)
            .get(format!("{base}{path}"))
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_spiffe_id_of_an_allowed_trust_domain_is_the_principal() {
        let pki = Pki::new();
        let base = app(&pki).await;
        let orders = pki.client("orders", &["spiffe://shop.test/ns/prod/sa/orders"], &[]);
        let thumb = tokenwarden::authn::mtls::thumbprint(&orders.der);
        let (status, body) = call(&pki, &base, "/svc", Some(&orders)).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(
            body,
            format!("spiffe://shop.test/ns/prod/sa/orders by mtls cnf={thumb}")
        );
        let (status, _) = call(&pki, &base, "/orders", Some(&orders)).await;
        assert_eq!(status, 200);
        // A DNS name on the allow-list, when there is no URI SAN.
        let billing = pki.client("billing", &[], &["other.shop.test", "billing.shop.test"]);
        let (status, body) = call(&pki, &base, "/svc", Some(&billing)).await;
        let want = format!(
            "billing.shop.test by mtls cnf={}",
            tokenwarden::authn::mtls::thumbprint(&billing.der)
        );
        assert_eq!((status, body), (200, want));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn identities_off_the_allow_list_are_refused() {
        let pki = Pki::new();
        let base = app(&pki).await;
        for (uris, dns) in [
            (&["spiffe://shop.test.evil/ns/prod/sa/orders"][..], &[][..]),
            (&["spiffe://other.test/ns/prod/sa/orders"][..], &[][..]),
            (&[][..], &["evil.test"][..]),
            (
                &["spiffe://shop.test/ns/a", "spiffe://shop.test/ns/b"][..],
                &[][..],
            ),
        ] {
            let c = pki.client("x", uris, dns);
            let (status, _) = call(&pki, &base, "/svc", Some(&c)).await;
            assert_eq!(status, 401, "{uris:?} {dns:?}");
        }
        // Allowed in the trust domain, but not on the route's own list.
        let mallory = pki.client("mallory", &["spiffe://shop.test/ns/prod/sa/mallory"], &[]);
        assert_eq!(call(&pki, &base, "/svc", Some(&mallory)).await.0, 200);
        assert_eq!(call(&pki, &base, "/orders", Some(&mallory)).await.0, 403);
        // No certificate: no credential.
        assert_eq!(call(&pki, &base, "/svc", None).await.0, 401);
    }

    /// RFC 4514 §2.4: a CN holding `,` and `=` is one escaped value, never
    /// an RDN of its own: a certificate whose CN is `orders,O=Admin` is not
    /// the `CN=orders,O=Admin` of a certificate issued to O=Admin.
    #[test]
    fn a_common_name_cannot_forge_another_rdn() {
        use rcgen::DnType;
        let pki = Pki::new();
        let allowed = MtlsAuthenticator::new()
            .allow_dn("CN=orders,O=Admin")
            .subject_from([SubjectSource::SubjectDn]);
        let real = pki.client_dn(
            &[
                (DnType::OrganizationName, "Admin"),
                (DnType::CommonName, "orders"),
            ],
            &[],
            &[],
        );
        assert_eq!(
            allowed.principal(&real.der).unwrap().subject(),
            "CN=orders,O=Admin"
        );
        for cn in ["orders,O=Admin", "orders, O=Admin", "orders+O=Admin"] {
            let forged = pki.client(cn, &[], &[]);
            let r = allowed
                .principal(&forged.der)
                .map(|p| p.subject().to_owned());
            assert_eq!(r.unwrap_err().kind(), "certificate_not_allowed", "{cn}");
        }
        let shown = MtlsAuthenticator::new()
            .allow_dn("CN=orders\\,O\\=Admin")
            .subject_from([SubjectSource::SubjectDn]);
        let forged = pki.client("orders,O=Admin", &[], &[]);
        assert_eq!(
            shown.principal(&forged.der).unwrap().subject(),
            "CN=orders\\,O\\=Admin"
        );
    }

    /// An allow-list entry matches one kind of name: a DNS SAN spelt like a
    /// SPIFFE ID matches neither a URI entry nor a trust domain.
    #[test]
    fn a_dns_name_spelt_like_a_spiffe_id_does_not_match_a_uri_rule() {
        let pki = Pki::new();
        let id = "spiffe://shop.test/ns/prod/sa/orders";
        let forged = pki.client("x", &[], &[id]);
        for mtls in [
            MtlsAuthenticator::new().allow(id),
            MtlsAuthenticator::new().allow_uri(id),
            MtlsAuthenticator::new().allow_trust_domain("shop.test"),
        ] {
            let r = mtls.principal(&forged.der).map(|p| p.subject().to_owned());
            assert_eq!(r.unwrap_err().kind(), "certificate_not_allowed");
        }
        // The real URI SAN passes; a DNS entry matches the DNS SAN only.
        let real = pki.client("x", &[id], &[]);
        assert!(
            MtlsAuthenticator::new()
                .allow(id)
                .principal(&real.der)
                .is_ok()
        );
        let dns = MtlsAuthenticator::new().allow_dns(id);
        assert!(dns.principal(&forged.der).is_ok());
        assert!(dns.principal(&real.der).is_err());
    }

    #[test]
    fn the_subject_dn_is_read_only_when_configured() {
        let pki = Pki::new();
        let c = pki.client("orders", &[], &[]);
        let dn = MtlsAuthenticator::new()
            .allow("CN=orders")
            .subject_from([SubjectSource::SubjectDn]);
        assert_eq!(dn.principal(&c.der).unwrap().subject(), "CN=orders");
        let uri_only = MtlsAuthenticator::new()
            .allow("CN=orders")
            .subject_from([SubjectSource::Uri]);
        assert_eq!(
            uri_only.principal(&c.der).unwrap_err().kind(),
            "certificate_not_allowed"
        );
    }
}

/// actix-web: the certificate the server recorded for the connection (or
/// put in the request's extensions) binds; a header never does.
#[cfg(feature = "actix")]
#[test]
fn actix_holds_bound_tokens_to_the_recorded_certificate() {
    use actix_web::HttpMessage as _;
    use tokenwarden::authn::mtls::PeerCertificate;
    use tokenwarden::middleware::actix::BearerAuthMiddleware;
    actix_web::rt::System::new().block_on(async {
        let idp = TestIssuer::start().unwrap();
        let pki = Pki::new();
        let alice = pki.client("alice", &[], &["alice.shop.test"]);
        let mallory = pki.client("mallory", &[], &["mallory.shop.test"]);
        let auth = BearerAuth::from_chain(Chain::new().jwt(JwtAuthenticator::new(validator(&idp))));
        let app = actix_web::App::new()
            .wrap(BearerAuthMiddleware::new(auth))
            .route(
                "/me",
                actix_web::web::get().to(|p: Principal| async move { p.subject().to_owned() }),
            );
        let service = actix_web::test::init_service(app).await;
        let bound = alice.bound_token(&idp, "alice");
        let send = |cert: Option<&ClientCert>, header: bool| {
            let mut req = actix_web::test::TestRequest::get()
                .uri("/me")
                .insert_header(("authorization", format!("Bearer {bound}")));
            if header {
                req = req.insert_header(("x-client-cert", alice.pem.replace('\n', "")));
            }
            let req = req.to_request();
            if let Some(c) = cert {
                req.extensions_mut()
                    .insert(PeerCertificate::new(c.der.clone()));
            }
            let service = &service;
            async move {
                actix_web::test::call_service(service, req)
                    .await
                    .status()
                    .as_u16()
            }
        };
        assert_eq!(send(Some(&alice), false).await, 200);
        assert_eq!(send(Some(&mallory), false).await, 401);
        assert_eq!(send(None, false).await, 401);
        assert_eq!(send(None, true).await, 401);
    });
}

mod properties {
    use proptest::prelude::*;
    use tokenwarden::authn::mtls::forwarded::{Format, certificate};

    proptest! {
        /// Any header value: a typed answer, never a panic, and any
        /// certificate found is a DER SEQUENCE.
        #[test]
        fn forwarded_certificate_headers_never_panic(
            value in proptest::collection::vec(any::<u8>(), 0..512),
            prefix in prop_oneof![
                Just(&b""[..]),
                Just(&b"-----BEGIN%20CERTIFICATE-----%0A"[..]),
                Just(&b"Cert=\"-----BEGIN%20CERTIFICATE-----%0A"[..]),
            ],
        ) {
            let mut v = prefix.to_vec();
            v.extend(value);
            for format in [Format::Nginx, Format::Envoy] {
                if let Ok(Some(c)) = certificate(format, &v) {
                    prop_assert_eq!(c.der().first(), Some(&0x30));
                }
            }
        }
    }
}

/// `BearerAuth::new` (no chain) with JSON claims: bound tokens are held to
/// the connection's certificate as well.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bearer_auth_new_holds_bound_tokens_to_the_certificate() {
    let idp = TestIssuer::start().unwrap();
    let pki = Pki::new();
    let alice = pki.client("alice", &[], &["alice.shop.test"]);
    let mallory = pki.client("mallory", &[], &["mallory.shop.test"]);
    let auth = BearerAuth::new(validator(&idp));
    let app = axum::Router::new().route("/me", get(|| async { "ok" }).route_layer(auth.layer()));
    let addr = serve_mtls(app, pki.server_config(ClientAuth::Optional)).await;
    let url = format!("https://localhost:{}/me", addr.port());
    let bound = alice.bound_token(&idp, "alice");
    let plain = idp.token().audience("api").subject("alice").sign();
    let status = |cert: Option<&ClientCert>, token: &str| {
        let req = pki.https_client(cert).get(&url).bearer_auth(token);
        async move { req.send().await.unwrap().status().as_u16() }
    };
    assert_eq!(status(Some(&alice), &bound).await, 200);
    assert_eq!(status(Some(&mallory), &bound).await, 401);
    assert_eq!(status(None, &bound).await, 401);
    assert_eq!(status(None, &plain).await, 200);
}

/// A claims type of the user's own: no `cnf` field, so the binding must be
/// read by the validator, not from these claims.
#[derive(Debug, Clone, serde::Deserialize)]
struct Typed {
    sub: String,
}

impl tokenwarden::middleware::ScopedClaims for Typed {
    fn has_scope(&self, _scope: &str) -> bool {
        false
    }
}

/// `BearerAuth::<Typed>::with_claims` (no chain), over real mTLS: the
/// claims type has no `cnf`, yet a bound token is held to the connection's
/// certificate and a DPoP-bound one is never a bearer token.
async fn typed_app(idp: &TestIssuer, pki: &Pki) -> String {
    let auth = BearerAuth::<Typed>::with_claims(validator(idp));
    let app = axum::Router::new().route(
        "/me",
        get(
            |tokenwarden::middleware::axum::Claims(c): tokenwarden::middleware::axum::Claims<
                Typed,
            >| async move { c.sub },
        )
        .route_layer(auth.layer()),
    );
    let addr = serve_mtls(app, pki.server_config(ClientAuth::Optional)).await;
    format!("https://localhost:{}/me", addr.port())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn typed_claims_hold_a_bound_token_to_the_certificate() {
    let idp = TestIssuer::start().unwrap();
    let pki = Pki::new();
    let alice = pki.client("alice", &[], &["alice.shop.test"]);
    let mallory = pki.client("mallory", &[], &["mallory.shop.test"]);
    let url = typed_app(&idp, &pki).await;
    let bound = alice.bound_token(&idp, "alice");
    let client = pki.https_client(Some(&alice));
    let (status, _, body) = get_with(&client, url.clone(), &bound, &[]).await;
    assert_eq!((status, body.as_str()), (200, "alice"));
    // Stolen: presented with Mallory's certificate, or with none.
    for (cert, why) in [
        (Some(&mallory), "another client certificate"),
        (None, "none was presented"),
    ] {
        let client = pki.https_client(cert);
        let (status, challenge, _) = get_with(&client, url.clone(), &bound, &[]).await;
        assert_eq!(status, 401, "{why}");
        assert!(challenge.contains("error=\"invalid_token\""), "{challenge}");
        assert!(challenge.contains(why), "{challenge}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn typed_claims_refuse_a_dpop_bound_token_sent_as_bearer() {
    let idp = TestIssuer::start().unwrap();
    let pki = Pki::new();
    let alice = pki.client("alice", &[], &["alice.shop.test"]);
    let url = typed_app(&idp, &pki).await;
    let key =
        tokenwarden::testing::TestKey::generate(tokenwarden::Algorithm::ES256, "dpop").unwrap();
    let dpop_bound = idp
        .token()
        .audience("api")
        .subject("alice")
        .dpop_bound(&key)
        .sign();
    for cert in [None, Some(&alice)] {
        let client = pki.https_client(cert);
        let (status, challenge, _) = get_with(&client, url.clone(), &dpop_bound, &[]).await;
        assert_eq!(status, 401);
        assert!(
            challenge.contains("must be sent with the DPoP scheme"),
            "{challenge}"
        );
    }
    // `authorize` (a gateway's subrequest, no connection) refuses it too.
    let auth = BearerAuth::<Typed>::with_claims(validator(&idp));
    let mut headers = http::HeaderMap::new();
    headers.insert(
        "authorization",
        format!("Bearer {dpop_bound}").parse().unwrap(),
    );
    let refusal = auth.authorize(&headers).await.unwrap_err();
    assert_eq!(refusal.status(), 401);
}

/// `BearerAuth::authorize` (a gateway's subrequest, a Lambda: no
/// connection, so no certificate) refuses a certificate-bound token
/// (RFC 8705 §3) on every path: first validation, a cache hit, and the
/// unknown-kid slow path after a key rotation. A plain token passes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn authorize_refuses_a_certificate_bound_token_without_a_certificate() {
    let idp = TestIssuer::start().unwrap();
    let pki = Pki::new();
    let alice = pki.client("alice", &[], &["alice.shop.test"]);
    // A fresh validator over the issuer's live JWKS, fetched once, with
    // the verified-token cache on.
    let auth = || async {
        let keys = tokenwarden::RemoteKeySet::builder()
            .jwks_url(idp.jwks_url())
            .allow_http_loopback(true)
            .unknown_kid_cooldown(std::time::Duration::ZERO)
            .build()
            .unwrap();
        keys.refresh().await.unwrap();
        let v = Validator::builder()
            .issuer(idp.issuer())
            .audience("api")
            .keys(keys)
            .cache(tokenwarden::CacheConfig::default())
            .build()
            .unwrap();
        BearerAuth::new(v)
    };
    let headers = |token: &str| {
        let mut h = http::HeaderMap::new();
        h.insert("authorization", format!("Bearer {token}").parse().unwrap());
        h
    };
    let bound = || alice.bound_token(&idp, "alice");
    let plain = || idp.token().audience("api").subject("alice").sign();
    let refused = |r: Result<_, tokenwarden::middleware::AuthRejection>| {
        let r = r.expect_err("a certificate-bound token without a certificate");
        assert_eq!((r.status(), r.reason()), (401, "certificate_missing"));
        let challenge = r.challenge("api").unwrap();
        assert!(challenge.contains("error=\"invalid_token\""), "{challenge}");
    };

    // Known kid: the first validation, then the cached answer.
    let a = auth().await;
    let stolen = headers(&bound());
    refused(a.authorize(&stolen).await);
    refused(a.authorize(&stolen).await);
    let ok = a.authorize(&headers(&plain())).await.unwrap().unwrap();
    assert_eq!(ok.claims["sub"], "alice");

    // Unknown kid: the issuer rotated, the slow path refreshes and decides.
    let a = auth().await;
    idp.rotate().unwrap();
    let fetched = idp.stats().jwks;
    let stolen = headers(&bound());
    refused(a.authorize(&stolen).await);
    assert_eq!(
        idp.stats().jwks,
        fetched + 1,
        "the slow path fetched the keys"
    );
    refused(a.authorize(&stolen).await);
    let a = auth().await;
    idp.rotate().unwrap();
    assert!(a.authorize(&headers(&plain())).await.unwrap().is_some());
}

/// tonic over tokio-rustls (HTTP/2) with client-certificate verification:
/// tonic-health's service behind the layer (a chain taking
/// certificate-bound tokens only), called by a tonic client whose TLS
/// session presents a certificate or none.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tonic_over_rustls_holds_a_bound_token_to_the_client_certificate() {
    use common::tls::serve_mtls_grpc;
    use tonic_health::pb::health_client::HealthClient;
    use tonic_health::pb::{HealthCheckRequest, health_check_response::ServingStatus};

    let idp = TestIssuer::start().unwrap();
    let pki = Pki::new();
    let alice = pki.client("alice", &["spiffe://shop.test/ns/prod/sa/orders"], &[]);
    let mallory = pki.client("mallory", &["spiffe://shop.test/ns/prod/sa/mallory"], &[]);
    let jwt =
        JwtAuthenticator::new(validator(&idp)).certificate_binding(CertificateBinding::Required);
    let auth = BearerAuth::from_chain(Chain::new().jwt(jwt));
    let (_reporter, health) = tonic_health::server::health_reporter();
    let app = tonic::service::Routes::new(health)
        .into_axum_router()
        .layer(auth.layer());
    let addr = serve_mtls_grpc(app, pki.server_config(ClientAuth::Optional)).await;
    let bound = alice.bound_token(&idp, "alice");
    let plain = idp.token().audience("api").subject("alice").sign();
    async fn call(
        pki: &Pki,
        port: u16,
        cert: Option<&ClientCert>,
        token: String,
    ) -> Result<tonic::Response<tonic_health::pb::HealthCheckResponse>, tonic::Status> {
        let channel = pki.grpc_channel(port, cert).await.unwrap();
        let mut req = tonic::Request::new(HealthCheckRequest::default());
        req.metadata_mut()
            .insert("authorization", format!("Bearer {token}").parse().unwrap());
        HealthClient::new(channel).check(req).await
    }
    let check = |cert, token| call(&pki, addr.port(), cert, token);
    let ok = check(Some(&alice), bound.clone()).await.unwrap();
    assert_eq!(ok.get_ref().status, ServingStatus::Serving as i32);
    for (cert, token, kind) in [
        (Some(&mallory), bound.clone(), "certificate_mismatch"),
        (None, bound.clone(), "certificate_missing"),
        (Some(&alice), plain, "token_not_bound"),
    ] {
        let status = check(cert, token).await.unwrap_err();
        assert_eq!(status.code(), tonic::Code::Unauthenticated, "{kind}");
        assert_eq!(status.message(), kind);
    }
}

/// Attack (attacker review): a per-route allow-list judges a principal's
/// subject as the kind of name it was read as from the certificate (URI
/// SAN, DNS SAN, subject DN), never as the kind its spelling suggests.
#[cfg(feature = "mtls")]
mod name_kinds {
    use super::common::tls::Pki;
    use tokenwarden::authn::Principal;
    use tokenwarden::authn::mtls::{MtlsAuthenticator, SubjectSource};

    const ID: &str = "spiffe://shop.test/ns/prod/sa/orders";
    const DN: &str = "CN=orders,O=Admin";
    const HOST: &str = "billing.shop.test";

    fn uri(name: &str) -> MtlsAuthenticator {
        MtlsAuthenticator::new().allow_uri(name)
    }

    fn dns(name: &str) -> MtlsAuthenticator {
        MtlsAuthenticator::new().allow_dns(name)
    }

    fn dn(name: &str) -> MtlsAuthenticator {
        MtlsAuthenticator::new().allow_dn(name)
    }

    /// The principal `main` (which admits the name as its own kind) reads
    /// from `source` of the certificate `der`.
    fn read(main: MtlsAuthenticator, source: SubjectSource, der: &[u8]) -> Principal {
        main.subject_from([source]).principal(der).unwrap()
    }

    #[test]
    fn a_certificate_name_spelt_like_another_kind_never_matches_a_rule_of_that_kind() {
        let pki = Pki::new();

        // A DNS SAN spelt like a SPIFFE ID: no URI rule, no trust domain.
        let c = pki.client("x", &[], &[ID]);
        let p = read(dns(ID), SubjectSource::Dns, &c.der);
        assert_eq!(p.subject(), ID);
        let trust_domain = MtlsAuthenticator::new().allow_trust_domain("shop.test");
        for route in [uri(ID), MtlsAuthenticator::new().allow(ID), trust_domain] {
            assert!(!route.permits(&p), "{route:?}");
        }
        assert!(dns(ID).permits(&p));

        // A DNS SAN spelt like a subject DN: no DN rule.
        let c = pki.client("x", &[], &[DN]);
        let p = read(dns(DN), SubjectSource::Dns, &c.der);
        assert_eq!(p.subject(), DN);
        assert!(!dn(DN).permits(&p));
        assert!(!MtlsAuthenticator::new().allow(DN).permits(&p));
        assert!(dns(DN).permits(&p));

        // A URI SAN spelt like a DNS name: no DNS rule.
        let c = pki.client("x", &[HOST], &[]);
        let p = read(uri(HOST), SubjectSource::Uri, &c.der);
        assert_eq!(p.subject(), HOST);
        assert!(!dns(HOST).permits(&p));
        assert!(!MtlsAuthenticator::new().allow(HOST).permits(&p));
        assert!(uri(HOST).permits(&p));

        // A common name spelt like an allowed SPIFFE ID or DNS name: the
        // subject is the whole DN, and only a DN rule takes it.
        for cn in [ID, HOST] {
            let c = pki.client(cn, &[], &[]);
            let whole = format!("CN={cn}");
            let p = read(dn(&whole), SubjectSource::SubjectDn, &c.der);
            assert_eq!(p.subject(), whole);
            for route in [uri(cn), dns(cn), uri(&whole), dns(&whole)] {
                assert!(!route.permits(&p), "{cn}: {route:?}");
            }
            assert!(dn(&whole).permits(&p));
        }

        // A principal not read from a certificate, whatever its name.
        assert!(!uri(ID).permits(&Principal::new(ID, "mtls")));
        assert!(!dns(HOST).permits(&Principal::new(HOST, "jwt")));
    }
}
