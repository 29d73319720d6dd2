//! actix-web (feature `actix`): [`BearerAuthMiddleware`] for `App::wrap` or
//! a resource's `wrap`, and the [`Claims`] extractor, with the same
//! behaviour as the tower layer.
//!
//! ```no_run
//! use actix_web::{App, web};
//! use serde_json::{Map, Value};
//! use tokenwarden::middleware::actix::{BearerAuthMiddleware, Claims};
//! use tokenwarden::middleware::{BearerAuth, Scopes};
//! # use tokenwarden::Validator;
//!
//! async fn me(Claims(claims): Claims<Map<String, Value>>) -> String {
//!     format!("hello {}", claims["sub"].as_str().unwrap_or("?"))
//! }
//!
//! # fn app(validator: Validator) {
//! let auth = BearerAuth::new(validator).realm("orders");
//! let _app = App::new()
//!     .service(
//!         web::resource("/orders")
//!             .wrap(BearerAuthMiddleware::new(auth.clone().require_scopes(Scopes::all(["orders:read"]))))
//!             .route(web::get().to(me)),
//!     )
//!     .wrap(BearerAuthMiddleware::new(auth));
//! # }
//! ```

use std::future::{Future, Ready, ready};
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;

use actix_web::body::EitherBody;
use actix_web::dev::{Payload, Service, ServiceRequest, ServiceResponse, Transform, forward_ready};
use actix_web::http::{StatusCode, Version};
use actix_web::{FromRequest, HttpMessage, HttpRequest, HttpResponse, ResponseError};
use tracing::Instrument;

use super::typed::{self, Memo, Why};
use super::{
    Anonymous, Answer, AuthRejection, BearerAuth, Checked, ClaimsRejection, HeaderView, Outcome,
    ScopedClaims, observe,
};
use crate::authn::dpop::ledger::ProofLedger;
use crate::authn::mtls::{CertificateBinding, PeerCertificate, check_confirmation};
use crate::authn::{Chain, HeaderSource, Principal, RequestView};
use crate::validator::Validated;

impl HeaderView for actix_web::http::header::HeaderMap {
    fn values<'a>(&'a self, name: &str) -> impl Iterator<Item = &'a [u8]> + 'a {
        self.get_all(name).map(|v| v.as_bytes())
    }
}

impl HeaderSource for actix_web::http::header::HeaderMap {
    fn value(&self, name: &str, index: usize) -> Option<&[u8]> {
        self.get_all(name).nth(index).map(|v| v.as_bytes())
    }

    fn first_value(&self, name: &str) -> Option<(&[u8], bool)> {
        let mut values = self.get_all(name);
        let first = values.next()?;
        Some((first.as_bytes(), values.next().is_some()))
    }

    fn any_value(&self, name: &str, pred: &mut dyn FnMut(&[u8]) -> bool) -> bool {
        self.get_all(name).any(|v| pred(v.as_bytes()))
    }
}

/// What a chain's authenticators see of a request, with the client
/// certificate `cert` ([`peer_certificate`]).
fn view<'r>(req: &'r ServiceRequest, cert: Option<&'r PeerCertificate>) -> RequestView<'r> {
    let mut view = RequestView::new(req.method().as_str(), req.path(), req.headers());
    if !req.query_string().is_empty() {
        view = view.query(req.query_string());
    }
    match cert {
        Some(cert) => view.peer_certificate(cert.der()),
        None => view,
    }
}

/// What a chain sees of a request: [`view`] with the request's ledger of
/// recorded DPoP proofs.
fn chain_view<'r>(
    req: &'r ServiceRequest,
    cert: Option<&'r PeerCertificate>,
    ledger: Option<&'r ProofLedger>,
) -> RequestView<'r> {
    let view = view(req, cert);
    match ledger {
        Some(ledger) => view.with_proof_ledger(ledger),
        None => view,
    }
}

/// The ledger of the proofs this and inner middleware record
/// ([`ProofLedger`]) for a request with a `DPoP` header: an outer
/// middleware's, or a new one left in the request's extensions.
fn proof_ledger(req: &ServiceRequest) -> Option<Arc<ProofLedger>> {
    if !req.headers().contains_key("dpop") {
        return None;
    }
    if let Some(ledger) = req.extensions().get::<Arc<ProofLedger>>() {
        return Some(ledger.clone());
    }
    let ledger = Arc::new(ProofLedger::default());
    req.extensions_mut().insert(ledger.clone());
    Some(ledger)
}

/// A certificate-bound token's binding, for a middleware without a chain
/// (RFC 8705 §3): the token's `cnf`, whatever the claims type, is held to
/// the request's certificate.
fn bound<C>(v: &Validated<C>, req: &ServiceRequest) -> Result<(), AuthRejection> {
    let cert = peer_certificate(req);
    check_confirmation(
        &v.confirmation,
        cert.as_ref().map(PeerCertificate::der),
        CertificateBinding::WhenBound,
    )
    .map_err(|r| AuthRejection::Chain(Box::new(r)))
}

/// The client certificate the TLS server recorded: the connection's data
/// (set in `HttpServer::on_connect`), else the request's extensions. Never
/// one from a header.
fn peer_certificate(req: &ServiceRequest) -> Option<PeerCertificate> {
    match req.conn_data::<PeerCertificate>() {
        Some(cert) => Some(cert.clone()),
        None => req.extensions().get::<PeerCertificate>().cloned(),
    }
}

/// Marks a request let through without a credential; claims and a
/// principal an outer middleware recorded are not this route's, and go.
fn anonymous<C: ScopedClaims>(auth: &BearerAuth<C>, req: &ServiceRequest, grpc: bool) {
    let mut extensions = req.extensions_mut();
    extensions.remove::<Checked>();
    extensions.remove::<Arc<Validated<C>>>();
    extensions.remove::<Arc<Validated<serde_json::Map<String, serde_json::Value>>>>();
    extensions.remove::<Principal>();
    extensions.insert(auth.anonymous(grpc));
}

/// Puts a chain's principal where handlers find it (and, for a JWT, its
/// claims, as [`attach`] does); what an outer middleware recorded goes.
fn attach_principal<C: ScopedClaims>(auth: &BearerAuth<C>, req: &ServiceRequest, p: Principal) {
    let mut extensions = req.extensions_mut();
    extensions.remove::<Checked>();
    extensions.remove::<Arc<Validated<serde_json::Map<String, serde_json::Value>>>>();
    extensions.remove::<Principal>();
    match auth.principal_extensions(&p) {
        // A JWT's principal is rebuilt from its claims by the extractors.
        Some((checked, validated)) => {
            extensions.insert(checked);
            extensions.insert(validated);
        }
        None => {
            extensions.insert(p);
        }
    }
}

fn render(answer: Answer) -> HttpResponse {
    use actix_web::http::header::{HeaderName, HeaderValue};
    let status = StatusCode::from_u16(answer.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut resp = HttpResponse::build(status);
    // Appended: a chain's 401 has one `WWW-Authenticate` per scheme.
    for (name, value) in answer.headers {
        if let Ok(v) = HeaderValue::from_str(&value) {
            resp.append_header((name, v));
        }
    }
    // The hook's headers: already kept clear of the layer's own; a name or
    // value that is not valid header text is dropped.
    for (name, value) in answer.extra {
        if let (Ok(n), Ok(v)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(&value),
        ) {
            resp.append_header((n, v));
        }
    }
    resp.body(answer.body)
}

/// Applies a [`BearerAuth`] to an actix-web app, scope or resource.
/// Validated claims reach handlers as an `Arc<`[`Validated<C>`]`>` request extension
/// and through the [`Claims`] extractor.
pub struct BearerAuthMiddleware<C> {
    auth: BearerAuth<C>,
}

impl<C: ScopedClaims> BearerAuthMiddleware<C> {
    /// Middleware for `auth`.
    pub fn new(auth: BearerAuth<C>) -> Self {
        BearerAuthMiddleware { auth }
    }
}

impl<C> std::fmt::Debug for BearerAuthMiddleware<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BearerAuthMiddleware")
            .field("auth", &self.auth)
            .finish()
    }
}

impl<S, B, C> Transform<S, ServiceRequest> for BearerAuthMiddleware<C>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error> + 'static,
    B: 'static,
    C: ScopedClaims,
{
    type Response = ServiceResponse<EitherBody<B>>;
    type Error = actix_web::Error;
    type Transform = BearerAuthActixService<S, C>;
    type InitError = ();
    type Future = Ready<Result<Self::Transform, ()>>;

    fn new_transform(&self, service: S) -> Self::Future {
        ready(Ok(BearerAuthActixService {
            service: Rc::new(service),
            auth: self.auth.clone(),
        }))
    }
}

/// The service [`BearerAuthMiddleware`] wraps around yours.
pub struct BearerAuthActixService<S, C> {
    service: Rc<S>,
    auth: BearerAuth<C>,
}

impl<S, C> std::fmt::Debug for BearerAuthActixService<S, C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BearerAuthActixService")
            .field("auth", &self.auth)
            .finish_non_exhaustive()
    }
}

type LocalBoxed<T> = Pin<Box<dyn Future<Output = T>>>;

impl<S, B, C> Service<ServiceRequest> for BearerAuthActixService<S, C>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error> + 'static,
    B: 'static,
    C: ScopedClaims,
{
    type Response = ServiceResponse<EitherBody<B>>;
    type Error = actix_web::Error;
    type Future = LocalBoxed<Result<Self::Response, Self::Error>>;

    forward_ready!(service);

    fn call(&self, mut req: ServiceRequest) -> Self::Future {
        let grpc = self
            .auth
            .answers_grpc(req.version() == Version::HTTP_2, req.headers());
        let pass = |req: ServiceRequest, service: &S, span: tracing::Span| {
            let fut = service.call(req);
            Box::pin(
                async move { fut.await.map(ServiceResponse::map_into_left_body) }.instrument(span),
            ) as LocalBoxed<Result<Self::Response, Self::Error>>
        };
        let refuse = move |req: ServiceRequest, r: &AuthRejection, auth: &BearerAuth<C>| {
            let resp = render(auth.refusal(r, grpc));
            req.into_response(resp).map_into_right_body()
        };
        // An outer middleware on this very validator already judged the
        // token from the same place: only this route's requirements are
        // ours. One on another validator or credential proves nothing here,
        // so this middleware validates its own token.
        let verdict = self.auth.outer_verdict(req.extensions().get::<Checked>());
        if let Some(verdict) = verdict {
            // (Inside the outer middleware's span: no span of its own.)
            // The internal token for the principal the outer middleware
            // recorded (a client's header of that name goes either way).
            let verdict =
                verdict.and_then(|()| self.auth.internal_slot().apply_actix(&mut req, false));
            return match verdict {
                Ok(()) => pass(req, &self.service, tracing::Span::none()),
                Err(r) => Box::pin(ready(Ok(refuse(req, &r, &self.auth)))),
            };
        }
        let span = observe::request_span();
        let entered = span.enter();
        if self.auth.chain().is_some() {
            // A chain's configuration: the chain decides; a bearer JWT with
            // known keys at once, any other credential in the future.
            let cert = peer_certificate(&req);
            let ledger = if self.auth.chain().is_some_and(Chain::has_dpop) {
                proof_ledger(&req)
            } else {
                None
            };
            match self
                .auth
                .check_chain_now(&chain_view(&req, cert.as_ref(), ledger.as_deref()))
            {
                Outcome::Principal(p) => {
                    observe::principal(&span, &p);
                    attach_principal(&self.auth, &req, p);
                    if let Err(r) = self.auth.internal_slot().apply_actix(&mut req, false) {
                        return Box::pin(ready(Ok(refuse(req, &r, &self.auth))));
                    }
                    drop(entered);
                    return pass(req, &self.service, span);
                }
                Outcome::Anonymous => {
                    anonymous(&self.auth, &req, grpc);
                    observe::anonymous(&span);
                    if let Err(r) = self.auth.internal_slot().apply_actix(&mut req, true) {
                        return Box::pin(ready(Ok(refuse(req, &r, &self.auth))));
                    }
                    drop(entered);
                    return pass(req, &self.service, span);
                }
                Outcome::Refused(r) => return Box::pin(ready(Ok(refuse(req, &r, &self.auth)))),
                Outcome::Wait | Outcome::Allowed(_) | Outcome::Retry(_) => {
                    let service = self.service.clone();
                    let auth = self.auth.clone();
                    drop(entered);
                    let span_inside = span.clone();
                    return Box::pin(
                        async move {
                            let view = chain_view(&req, cert.as_ref(), ledger.as_deref());
                            let verdict = auth.check_chain(&view).await;
                            let anonymously = match verdict {
                                Ok(Some(p)) => {
                                    observe::principal(&span_inside, &p);
                                    attach_principal(&auth, &req, p);
                                    false
                                }
                                Ok(None) => {
                                    anonymous(&auth, &req, grpc);
                                    observe::anonymous(&span_inside);
                                    true
                                }
                                Err(r) => return Ok(refuse(req, &r, &auth)),
                            };
                            let mut req = req;
                            if let Err(r) = auth.internal_slot().apply_actix(&mut req, anonymously)
                            {
                                return Ok(refuse(req, &r, &auth));
                            }
                            service
                                .call(req)
                                .await
                                .map(ServiceResponse::map_into_left_body)
                        }
                        .instrument(span),
                    );
                }
            }
        }
        match self.auth.check_now(req.headers()) {
            Outcome::Allowed(v) => {
                if let Err(r) = bound(&v, &req) {
                    return Box::pin(ready(Ok(refuse(req, &r, &self.auth))));
                }
                observe::allowed(&span, &v);
                attach(&self.auth, &req, v);
                if let Err(r) = self.auth.internal_slot().apply_actix(&mut req, false) {
                    return Box::pin(ready(Ok(refuse(req, &r, &self.auth))));
                }
                drop(entered);
                pass(req, &self.service, span)
            }
            Outcome::Anonymous => {
                {
                    let mut extensions = req.extensions_mut();
                    // Claims an outer middleware on another validator or
                    // credential put there are not this route's: its handler
                    // must not read them.
                    extensions.remove::<Checked>();
                    extensions.remove::<Arc<Validated<C>>>();
                    extensions.insert(self.auth.anonymous(grpc));
                }
                observe::anonymous(&span);
                if let Err(r) = self.auth.internal_slot().apply_actix(&mut req, true) {
                    return Box::pin(ready(Ok(refuse(req, &r, &self.auth))));
                }
                drop(entered);
                pass(req, &self.service, span)
            }
            Outcome::Refused(r) => Box::pin(ready(Ok(refuse(req, &r, &self.auth)))),
            // Only a chain's configuration answers these (above).
            Outcome::Principal(_) | Outcome::Wait => Box::pin(ready(Ok(refuse(
                req,
                &AuthRejection::NotConfigured,
                &self.auth,
            )))),
            Outcome::Retry(token) => {
                let service = self.service.clone();
                let auth = self.auth.clone();
                drop(entered);
                let span_inside = span.clone();
                Box::pin(
                    async move {
                        match auth.check_refreshing(&token).await {
                            Ok(v) => {
                                if let Err(r) = bound(&v, &req) {
                                    return Ok(refuse(req, &r, &auth));
                                }
                                observe::allowed(&span_inside, &v);
                                attach(&auth, &req, v);
                            }
                            Err(r) => return Ok(refuse(req, &r, &auth)),
                        }
                        let mut req = req;
                        if let Err(r) = auth.internal_slot().apply_actix(&mut req, false) {
                            return Ok(refuse(req, &r, &auth));
                        }
                        service
                            .call(req)
                            .await
                            .map(ServiceResponse::map_into_left_body)
                    }
                    .instrument(span),
                )
            }
        }
    }
}

/// Puts a validated token where handlers and inner middleware find it: the
/// public `Arc<Validated<C>>`, and the private record of which validator
/// judged it.
fn attach<C: ScopedClaims>(auth: &BearerAuth<C>, req: &ServiceRequest, v: Arc<Validated<C>>) {
    let mut extensions = req.extensions_mut();
    // An outer chain's principal is not this token's.
    extensions.remove::<Principal>();
    extensions.insert(auth.checked(v.clone()));
    extensions.insert(v);
}

/// The validated claims of the request as `C`; `Option<Claims<C>>` for
/// routes open to anonymous callers. `C` is any `DeserializeOwned` type:
/// the middleware's own claims type is cloned, any other is read from its
/// JSON claims ([`BearerAuth::new`]) once per request and type. Refuses
/// with 401 (the middleware's realm) when no token came through an
/// anonymous-allowing middleware, and with 500, logged as an error, when no
/// middleware ran or the claims do not fit `C` (the log names the type and
/// the claim, never its value; the body says what kind of mistake).
#[derive(Debug, Clone, PartialEq)]
pub struct Claims<C>(pub C);

impl<C> FromRequest for Claims<C>
where
    C: serde::de::DeserializeOwned + Clone + Send + Sync + 'static,
{
    type Error = ClaimsRejection;
    type Future = Ready<Result<Self, ClaimsRejection>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(extract::<C>(req).map(Claims))
    }
}

/// Only what a middleware recorded counts, never a bare `Arc<Validated<C>>`
/// some other code inserted.
fn extract<C>(req: &HttpRequest) -> Result<C, ClaimsRejection>
where
    C: serde::de::DeserializeOwned + Clone + Send + Sync + 'static,
{
    let (claims, memo) = {
        let extensions = req.extensions();
        typed::typed::<C>(extensions.get::<Checked>(), extensions.get::<Memo<C>>()).map_err(
            |why| match why {
                Why::NoClaims => {
                    ClaimsRejection::without_claims::<C>(extensions.get::<Anonymous>())
                }
                Why::DoesNotFit => ClaimsRejection::internal(Some(typed::DOES_NOT_FIT)),
            },
        )?
    };
    if let Some(memo) = memo {
        req.extensions_mut().insert(memo);
    }
    Ok(claims)
}

impl ResponseError for ClaimsRejection {
    fn status_code(&self) -> StatusCode {
        StatusCode::from_u16(self.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }

    fn error_response(&self) -> HttpResponse {
        // The realm and hook of the middleware that let the request through
        // (a plain-text 500 for a wiring mistake).
        render(self.answer())
    }
}

impl ResponseError for AuthRejection {
    fn status_code(&self) -> StatusCode {
        StatusCode::from_u16(AuthRejection::status(self))
            .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }

    fn error_response(&self) -> HttpResponse {
        // A bare refusal knows no realm; the middleware's own refusals and
        // the extractor's (`ClaimsRejection`) carry the configured one.
        render(super::refusal::Shape::default().answer(self, "api", false))
    }
}

/// The request's [`Principal`]: the one a [`BearerAuth::from_chain`]
/// middleware vouched for, or the JWT's behind a [`BearerAuth::new`] one.
/// Refuses as [`Claims`] does: 401 (the middleware's realm) behind an
/// anonymous-allowing middleware, 500 (logged) when none ran. (actix's
/// `Option<Principal>` turns any refusal into `None`.)
///
/// ```no_run
/// use tokenwarden::authn::Principal;
///
/// async fn me(p: Principal) -> String {
///     format!("{} via {}", p.subject(), p.authenticator())
/// }
/// ```
impl FromRequest for Principal {
    type Error = ClaimsRejection;
    type Future = Ready<Result<Self, ClaimsRejection>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let extensions = req.extensions();
        ready(
            super::chain::principal_of(extensions.get::<Principal>(), extensions.get::<Checked>())
                .ok_or_else(|| {
                    ClaimsRejection::without_claims::<Principal>(extensions.get::<Anonymous>())
                }),
        )
    }
}
