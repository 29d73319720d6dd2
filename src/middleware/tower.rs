//! The tower [`Layer`]/[`Service`]/future split (as tower-http does it): the
//! layer holds the configuration, the service the inner service, and a
//! refusal is an `Ok` response, so the layer drops into axum, hyper and tonic
//! without error plumbing.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::{Request, Response};
use tower_layer::Layer;
use tower_service::Service;

use bytes::Bytes;
use tracing::Span;

use serde_json::{Map, Value};

use super::{Anonymous, Answer, BearerAuth, Checked, Outcome, ResponseBody, ScopedClaims, observe};
use crate::authn::dpop::ledger::ProofLedger;
use crate::authn::mtls::{CertificateBinding, PeerCertificate, check_confirmation};
use crate::authn::{Chain, Principal, RequestView};
use crate::validator::Validated;

/// A refusal as an `http` response, its body made by `body`.
pub(crate) fn render<B>(answer: Answer, body: impl FnOnce(Bytes) -> B) -> Response<B> {
    let mut resp = Response::new(body(Bytes::from(answer.body)));
    *resp.status_mut() = http::StatusCode::from_u16(answer.status)
        .unwrap_or(http::StatusCode::INTERNAL_SERVER_ERROR);
    let headers = resp.headers_mut();
    // Appended: a chain's 401 has one `WWW-Authenticate` per scheme.
    for (name, value) in answer.headers {
        if let Ok(v) = http::HeaderValue::from_str(&value) {
            headers.append(name, v);
        }
    }
    // The hook's headers: already kept clear of the layer's own; a name or
    // value that is not valid header text is dropped.
    for (name, value) in answer.extra {
        if let (Ok(n), Ok(v)) = (
            http::HeaderName::from_bytes(name.as_bytes()),
            http::HeaderValue::from_str(&value),
        ) {
            headers.append(n, v);
        }
    }
    resp
}

/// A refusal from the layer.
fn refused<B>(answer: Answer) -> Response<ResponseBody<B>> {
    render(answer, ResponseBody::refusal)
}

/// Applies a [`BearerAuth`] to a service. Validated claims reach the inner
/// service as an `Arc<`[`Validated<C>`](crate::Validated)`>` request extension.
///
/// Responses have a [`ResponseBody`]: the inner service's body, or a
/// refusal's. Each request runs in a `bearer_auth` `tracing` span (fields
/// `sub`, `iss`, `verdict`), the inner service included.
/// In axum, put a route's own requirements on the route with
/// `route_layer`: a layer added with `Router::layer` runs for every
/// request, paths no route matches included, so those answer 401 (no
/// token) instead of 404.
pub struct BearerAuthLayer<C> {
    auth: BearerAuth<C>,
}

impl<C> Clone for BearerAuthLayer<C> {
    fn clone(&self) -> Self {
        BearerAuthLayer {
            auth: self.auth.clone(),
        }
    }
}

impl<C> std::fmt::Debug for BearerAuthLayer<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BearerAuthLayer")
            .field("auth", &self.auth)
            .finish()
    }
}

impl<C: ScopedClaims> BearerAuthLayer<C> {
    /// A layer for `auth`.
    pub fn new(auth: BearerAuth<C>) -> Self {
        BearerAuthLayer { auth }
    }
}

impl<S, C: ScopedClaims> Layer<S> for BearerAuthLayer<C> {
    type Service = BearerAuthService<S, C>;

    fn layer(&self, inner: S) -> Self::Service {
        BearerAuthService {
            inner,
            auth: self.auth.clone(),
        }
    }
}

/// The service [`BearerAuthLayer`] wraps around yours.
pub struct BearerAuthService<S, C> {
    inner: S,
    auth: BearerAuth<C>,
}

impl<S: Clone, C> Clone for BearerAuthService<S, C> {
    fn clone(&self) -> Self {
        BearerAuthService {
            inner: self.inner.clone(),
            auth: self.auth.clone(),
        }
    }
}

impl<S, C> std::fmt::Debug for BearerAuthService<S, C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BearerAuthService")
            .field("auth", &self.auth)
            .finish_non_exhaustive()
    }
}

type Boxed<T> = Pin<Box<dyn Future<Output = T> + Send>>;

impl<S, C, ReqB, ResB> Service<Request<ReqB>> for BearerAuthService<S, C>
where
    S: Service<Request<ReqB>, Response = Response<ResB>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    ReqB: Send + 'static,
    C: ScopedClaims,
{
    type Response = Response<ResponseBody<ResB>>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future, ResB, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<ReqB>) -> Self::Future {
        let grpc = self
            .auth
            .answers_grpc(req.version() == http::Version::HTTP_2, req.headers());
        // An outer layer on this very validator already judged the token
        // from the same place: only this route's requirements are ours. An
        // outer layer on another validator or credential proves nothing
        // here, so this layer validates its own token.
        // (Inside the outer layer's span: no span of its own.)
        if let Some(verdict) = self.auth.outer_verdict(req.extensions().get::<Checked>()) {
            // The internal token for the principal the outer layer recorded
            // (a client's header of that name goes either way).
            let verdict =
                verdict.and_then(|()| self.auth.internal_slot().apply_http(&mut req, false));
            return match verdict {
                Ok(()) => ResponseFuture::inner(self.inner.call(req), Span::none()),
                Err(r) => ResponseFuture::refused(refused(self.auth.refusal(&r, grpc))),
            };
        }
        if self.auth.chain().is_some() {
            return call_chain(self, req, grpc);
        }
        let span = observe::request_span();
        let entered = span.enter();
        // The usual case decides here, with no allocation beyond validation.
        match self.auth.check_now(req.headers()) {
            Outcome::Allowed(v) => {
                if let Err(r) = bound(&v, &req) {
                    return ResponseFuture::refused(refused(self.auth.refusal(&r, grpc)));
                }
                observe::allowed(&span, &v);
                attach(&self.auth, req.extensions_mut(), v);
                if let Err(r) = self.auth.internal_slot().apply_http(&mut req, false) {
                    return ResponseFuture::refused(refused(self.auth.refusal(&r, grpc)));
                }
                let fut = self.inner.call(req);
                drop(entered);
                ResponseFuture::inner(fut, span)
            }
            Outcome::Anonymous => {
                let extensions = req.extensions_mut();
                // Claims an outer layer on another validator or credential
                // put there are not this route's: its handler must not read
                // them.
                extensions.remove::<Checked>();
                extensions.remove::<Arc<Validated<C>>>();
                extensions.insert(self.auth.anonymous(grpc));
                observe::anonymous(&span);
                if let Err(r) = self.auth.internal_slot().apply_http(&mut req, true) {
                    return ResponseFuture::refused(refused(self.auth.refusal(&r, grpc)));
                }
                let fut = self.inner.call(req);
                drop(entered);
                ResponseFuture::inner(fut, span)
            }
            Outcome::Refused(r) => ResponseFuture::refused(refused(self.auth.refusal(&r, grpc))),
            // Only a chain's configuration answers these (`call_chain`).
            Outcome::Principal(_) | Outcome::Wait => {
                let r = super::AuthRejection::NotConfigured;
                ResponseFuture::refused(refused(self.auth.refusal(&r, grpc)))
            }
            Outcome::Retry(token) => {
                // An unknown kid: wait for the key source's refresh. The
                // service that was polled ready goes with the request.
                let clone = self.inner.clone();
                let mut inner = std::mem::replace(&mut self.inner, clone);
                let auth = self.auth.clone();
                let span_inside = span.clone();
                drop(entered);
                ResponseFuture::refreshing(
                    Box::pin(async move {
                        match auth.check_refreshing(&token).await {
                            Ok(v) => {
                                if let Err(r) = bound(&v, &req) {
                                    return Ok(refused(auth.refusal(&r, grpc)));
                                }
                                observe::allowed(&span_inside, &v);
                                attach(&auth, req.extensions_mut(), v);
                                if let Err(r) = auth.internal_slot().apply_http(&mut req, false) {
                                    return Ok(refused(auth.refusal(&r, grpc)));
                                }
                                inner.call(req).await.map(|r| r.map(ResponseBody::inner))
                            }
                            Err(r) => Ok(refused(auth.refusal(&r, grpc))),
                        }
                    }),
                    span,
                )
            }
        }
    }
}

/// A chain's configuration ([`BearerAuth::from_chain`]): the chain
/// decides; a bearer JWT with known keys without a future, any other
/// credential through one boxed future.
fn call_chain<S, C, ReqB, ResB>(
    this: &mut BearerAuthService<S, C>,
    mut req: Request<ReqB>,
    grpc: bool,
) -> ResponseFuture<S::Future, ResB, S::Error>
where
    S: Service<Request<ReqB>, Response = Response<ResB>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    ReqB: Send + 'static,
    C: ScopedClaims,
{
    {
        let span = observe::request_span();
        let entered = span.enter();
        let dpop = this.auth.chain().is_some_and(Chain::has_dpop);
        if dpop {
            keep_proof_ledger(&mut req);
        }
        let outcome = this.auth.check_chain_now(&chain_view(&req, dpop));
        match outcome {
            Outcome::Principal(p) => {
                observe::principal(&span, &p);
                attach_principal(&this.auth, req.extensions_mut(), p);
                if let Err(r) = this.auth.internal_slot().apply_http(&mut req, false) {
                    return ResponseFuture::refused(refused(this.auth.refusal(&r, grpc)));
                }
                let fut = this.inner.call(req);
                drop(entered);
                ResponseFuture::inner(fut, span)
            }
            Outcome::Anonymous => {
                anonymous(&this.auth, req.extensions_mut(), grpc);
                observe::anonymous(&span);
                if let Err(r) = this.auth.internal_slot().apply_http(&mut req, true) {
                    return ResponseFuture::refused(refused(this.auth.refusal(&r, grpc)));
                }
                let fut = this.inner.call(req);
                drop(entered);
                ResponseFuture::inner(fut, span)
            }
            Outcome::Refused(r) => ResponseFuture::refused(refused(this.auth.refusal(&r, grpc))),
            Outcome::Wait | Outcome::Allowed(_) | Outcome::Retry(_) => {
                let clone = this.inner.clone();
                let mut inner = std::mem::replace(&mut this.inner, clone);
                let auth = this.auth.clone();
                let span_inside = span.clone();
                drop(entered);
                ResponseFuture::refreshing(
                    Box::pin(async move {
                        let verdict = auth.check_chain(&chain_view(&req, dpop)).await;
                        let anonymously = match verdict {
                            Ok(Some(p)) => {
                                observe::principal(&span_inside, &p);
                                attach_principal(&auth, req.extensions_mut(), p);
                                false
                            }
                            Ok(None) => {
                                anonymous(&auth, req.extensions_mut(), grpc);
                                observe::anonymous(&span_inside);
                                true
                            }
                            Err(r) => return Ok(refused(auth.refusal(&r, grpc))),
                        };
                        if let Err(r) = auth.internal_slot().apply_http(&mut req, anonymously) {
                            return Ok(refused(auth.refusal(&r, grpc)));
                        }
                        inner.call(req).await.map(|r| r.map(ResponseBody::inner))
                    }),
                    span,
                )
            }
        }
    }
}

/// A certificate-bound token's binding, for a layer without a chain
/// (RFC 8705 §3): the token's `cnf`, whatever the claims type, is held to
/// the request's certificate.
fn bound<C, B>(v: &Validated<C>, req: &Request<B>) -> Result<(), super::AuthRejection> {
    let cert = req
        .extensions()
        .get::<PeerCertificate>()
        .map(PeerCertificate::der);
    check_confirmation(&v.confirmation, cert, CertificateBinding::WhenBound)
        .map_err(|r| super::AuthRejection::Chain(Box::new(r)))
}

/// The path the client sent (RFC 9449 §4.3: a DPoP proof names it): axum's
/// `Router::nest` hands the nested router, and a layer on it, the URI
/// without the prefix, and keeps the client's as `OriginalUri`, which only
/// the router sets (no header can).
#[cfg(feature = "axum")]
fn client_path<B>(req: &Request<B>) -> &str {
    match req.extensions().get::<::axum::extract::OriginalUri>() {
        Some(original) => original.0.path(),
        None => req.uri().path(),
    }
}

/// The path the client sent: without axum, the request's own.
#[cfg(not(feature = "axum"))]
fn client_path<B>(req: &Request<B>) -> &str {
    req.uri().path()
}

/// What a chain's authenticators see of a request: with the client
/// certificate the TLS server put in its extensions (never one from a
/// header).
fn view<B>(req: &Request<B>) -> RequestView<'_> {
    let mut view = RequestView::new(req.method().as_str(), client_path(req), req.headers());
    if let Some(q) = req.uri().query() {
        view = view.query(q);
    }
    match req.extensions().get::<PeerCertificate>() {
        Some(cert) => view.peer_certificate(cert.der()),
        None => view,
    }
}

/// A request with a `DPoP` header gets a ledger of the proofs this and
/// inner layers record ([`ProofLedger`]), unless an outer layer left one.
fn keep_proof_ledger<B>(req: &mut Request<B>) {
    if req.headers().contains_key("dpop") && req.extensions().get::<Arc<ProofLedger>>().is_none() {
        req.extensions_mut()
            .insert(Arc::new(ProofLedger::default()));
    }
}

/// What a chain sees of a request: [`view`], with the request's ledger of
/// recorded DPoP proofs for a chain with a DPoP authenticator (`dpop`).
fn chain_view<B>(req: &Request<B>, dpop: bool) -> RequestView<'_> {
    let view = view(req);
    if !dpop {
        return view;
    }
    match req.extensions().get::<Arc<ProofLedger>>() {
        Some(ledger) => view.with_proof_ledger(ledger),
        None => view,
    }
}

/// Marks a request let through without a credential; claims and a
/// principal an outer layer recorded are not this route's, and go.
fn anonymous<C: ScopedClaims>(auth: &BearerAuth<C>, extensions: &mut http::Extensions, grpc: bool) {
    extensions.remove::<Checked>();
    extensions.remove::<Arc<Validated<C>>>();
    extensions.remove::<Arc<Validated<Map<String, Value>>>>();
    extensions.remove::<Principal>();
    extensions.insert::<Anonymous>(auth.anonymous(grpc));
}

/// Puts a chain's principal where handlers find it (and, for a JWT, its
/// claims, as [`attach`] does); what an outer layer recorded goes.
fn attach_principal<C: ScopedClaims>(
    auth: &BearerAuth<C>,
    extensions: &mut http::Extensions,
    p: Principal,
) {
    extensions.remove::<Checked>();
    extensions.remove::<Arc<Validated<Map<String, Value>>>>();
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

/// Puts a validated token where handlers and inner layers find it: the
/// public `Arc<Validated<C>>`, and the private record of which validator
/// judged it.
fn attach<C: ScopedClaims>(
    auth: &BearerAuth<C>,
    extensions: &mut http::Extensions,
    v: Arc<Validated<C>>,
) {
    // An outer chain's principal is not this token's.
    extensions.remove::<Principal>();
    extensions.insert(auth.checked(v.clone()));
    extensions.insert(v);
}

pin_project_lite::pin_project! {
    /// The future of [`BearerAuthService`]: the inner service's, a ready
    /// refusal, or (rarely, for an unknown kid) a wait for a key refresh;
    /// polled inside the request's span.
    pub struct ResponseFuture<F, B, E> {
        #[pin]
        kind: Kind<F, B, E>,
        span: Span,
    }
}

pin_project_lite::pin_project! {
    #[project = KindProj]
    enum Kind<F, B, E> {
        Inner { #[pin] fut: F },
        Refused { resp: Option<Response<ResponseBody<B>>> },
        Refreshing { fut: Boxed<Result<Response<ResponseBody<B>>, E>> },
    }
}

impl<F, B, E> ResponseFuture<F, B, E> {
    fn inner(fut: F, span: Span) -> Self {
        ResponseFuture {
            kind: Kind::Inner { fut },
            span,
        }
    }

    fn refused(resp: Response<ResponseBody<B>>) -> Self {
        ResponseFuture {
            kind: Kind::Refused { resp: Some(resp) },
            span: Span::none(),
        }
    }

    fn refreshing(fut: Boxed<Result<Response<ResponseBody<B>>, E>>, span: Span) -> Self {
        ResponseFuture {
            kind: Kind::Refreshing { fut },
            span,
        }
    }
}

impl<F, B, E> std::fmt::Debug for ResponseFuture<F, B, E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ResponseFuture")
    }
}

impl<F, B, E> Future for ResponseFuture<F, B, E>
where
    F: Future<Output = Result<Response<B>, E>>,
{
    type Output = Result<Response<ResponseBody<B>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let _entered = this.span.enter();
        match this.kind.project() {
            KindProj::Inner { fut } => fut
                .poll(cx)
                .map(|r| r.map(|resp| resp.map(ResponseBody::inner))),
            KindProj::Refused { resp } => match resp.take() {
                Some(resp) => Poll::Ready(Ok(resp)),
                // Polled after completion: never resolves again.
                None => Poll::Pending,
            },
            KindProj::Refreshing { fut } => fut.as_mut().poll(cx),
        }
    }
}
