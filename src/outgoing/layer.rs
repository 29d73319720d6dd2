//! [`BearerLayer`]: a tower layer for outgoing HTTP clients that attaches
//! a [`TokenSource`]'s token to every request.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use super::{AccessToken, TokenError, TokenErrorKind, TokenRequest, TokenSource};

/// The error type of an [`AttachToken`] service: a [`TokenError`] (no
/// token, the request not sent) or the inner service's error; downcast
/// to tell them apart.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The token a service received, put in an outgoing request's extensions
/// for a [`BearerLayer::exchange`] layer to exchange. Its `Debug` never
/// shows the token.
///
/// ```
/// use tokenwarden::outgoing::SubjectToken;
///
/// let mut call = http::Request::new(());
/// call.extensions_mut().insert(SubjectToken::new("eyJ..."));
/// assert!(!format!("{:?}", call.extensions().get::<SubjectToken>()).contains("eyJ"));
/// ```
#[derive(Clone)]
pub struct SubjectToken(Arc<str>);

impl SubjectToken {
    /// The access token to exchange (the one the incoming request carried).
    pub fn new(token: impl Into<String>) -> SubjectToken {
        SubjectToken(token.into().into())
    }
}

impl fmt::Debug for SubjectToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SubjectToken(..)")
    }
}

/// How a layer gets its token.
#[derive(Clone, Debug)]
enum Mode {
    /// This request as it is.
    Fixed(TokenRequest),
    /// This request, exchanging each call's [`SubjectToken`].
    Exchange(TokenRequest),
}

/// A tower [`Layer`](tower_layer::Layer) for outgoing HTTP clients: each
/// request gets `Authorization: Bearer <token>` from a [`TokenSource`],
/// replacing any `Authorization` it had (so a token received is never
/// forwarded by mistake). A request with no token to be had is not sent:
/// the service answers the [`TokenError`] (as a [`BoxError`]).
///
/// ```no_run
/// use tower::{Service, ServiceBuilder, ServiceExt};
/// use tokenwarden::outgoing::{BearerLayer, SubjectToken, TokenRequest, TokenSource};
///
/// # async fn run<S>(source: TokenSource, client: S, incoming: &str) -> Result<(), tokenwarden::outgoing::BoxError>
/// # where S: Service<http::Request<String>, Response = http::Response<String>> + Clone + Send + 'static,
/// #       S::Future: Send, S::Error: Into<tokenwarden::outgoing::BoxError> {
/// // Each call exchanges the caller's token for one for `billing`, downscoped.
/// let mut billing = ServiceBuilder::new()
///     .layer(BearerLayer::exchange(
///         source,
///         TokenRequest::new().audience("billing").scope("invoices:read"),
///     ))
///     .service(client);
/// let mut call = http::Request::new(String::new());
/// call.extensions_mut().insert(SubjectToken::new(incoming));
/// let resp = billing.ready().await?.call(call).await?;
/// # let _ = resp;
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct BearerLayer {
    source: TokenSource,
    mode: Mode,
}

impl BearerLayer {
    /// Every request gets a token for `request` (client credentials, or an
    /// exchange of a subject token fixed in `request`).
    pub fn new(source: TokenSource, request: TokenRequest) -> BearerLayer {
        BearerLayer {
            source,
            mode: Mode::Fixed(request),
        }
    }

    /// Every request must carry a [`SubjectToken`] extension: the token
    /// attached is `request` as an exchange of it (RFC 8693). A request
    /// without one is not sent (a [`TokenError`] of kind
    /// [`NoSubjectToken`](TokenErrorKind::NoSubjectToken)): it never falls
    /// back to the service's own, likely broader, identity.
    pub fn exchange(source: TokenSource, request: TokenRequest) -> BearerLayer {
        BearerLayer {
            source,
            mode: Mode::Exchange(request),
        }
    }
}

impl<S> tower_layer::Layer<S> for BearerLayer {
    type Service = AttachToken<S>;

    fn layer(&self, inner: S) -> AttachToken<S> {
        AttachToken {
            inner,
            source: self.source.clone(),
            mode: self.mode.clone(),
        }
    }
}

/// The service of a [`BearerLayer`].
#[derive(Clone, Debug)]
pub struct AttachToken<S> {
    inner: S,
    source: TokenSource,
    mode: Mode,
}

/// The `Authorization` value for `token`, marked sensitive (kept out of
/// `Debug` output and HTTP/2 header compression tables).
pub(crate) fn bearer_value(token: &AccessToken) -> Result<http::HeaderValue, TokenError> {
    let mut value =
        http::HeaderValue::try_from(format!("Bearer {}", token.secret())).map_err(|_| {
            TokenError::new(
                TokenErrorKind::Invalid,
                "the access token cannot be sent in a header",
            )
        })?;
    value.set_sensitive(true);
    Ok(value)
}

impl<S, B> tower_service::Service<http::Request<B>> for AttachToken<S>
where
    S: tower_service::Service<http::Request<B>> + Clone + Send + 'static,
    S::Future: Send,
    S::Error: Into<BoxError>,
    B: Send + 'static,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, mut req: http::Request<B>) -> Self::Future {
        // The clone that was made ready is the one that is called.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let source = self.source.clone();
        let wanted = match &self.mode {
            Mode::Fixed(r) => Ok(r.clone()),
            Mode::Exchange(r) => match req.extensions_mut().remove::<SubjectToken>() {
                Some(SubjectToken(t)) => Ok(TokenRequest {
                    subject: Some(t),
                    ..r.clone()
                }),
                None => Err(TokenError::new(
                    TokenErrorKind::NoSubjectToken,
                    "a token exchange layer got a request with no SubjectToken",
                )),
            },
        };
        Box::pin(async move {
            let token = source.token(&wanted?).await?;
            req.headers_mut()
                .insert(http::header::AUTHORIZATION, bearer_value(&token)?);
            inner.call(req).await.map_err(Into::into)
        })
    }
}
