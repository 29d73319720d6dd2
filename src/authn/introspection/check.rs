//! [`IntrospectionAuthenticator::check_client`]: are our client
//! credentials accepted? Asked once, at start, not on the request path.

use super::IntrospectionAuthenticator;
use super::client::{Answer, CallError};
use crate::error::BuildError;

impl IntrospectionAuthenticator {
    /// Asks the endpoint about a made-up token, to find out before the
    /// first request whether it accepts this client's credentials. RFC
    /// 7662 has no call for that alone, but §2.1 asks the endpoint to
    /// refuse a client that fails to authenticate (401, RFC 6749 §5.2
    /// `invalid_client`) before it judges the token, so one call with a
    /// random token tells: any answer about the token (it is not active,
    /// or malformed) means the credentials were accepted.
    ///
    /// One call to the endpoint, outside the cache, the call cap and the
    /// circuit breaker (its failure never opens the circuit). Call it once
    /// at start (not per request, nor from a readiness probe a client can
    /// reach: each call reaches the IdP); `build` makes no call for it (a
    /// service may start while its IdP is away).
    ///
    /// # Errors
    /// The endpoint refused the client's credentials (401, 403,
    /// `invalid_client`, `unauthorized_client`): the message says so and
    /// names the endpoint's host. Or it could not be asked (unreachable,
    /// timeout, 5xx, not an introspection answer): the message says why.
    /// Or it called the made-up token active (it judges nothing).
    ///
    /// ```no_run
    /// use tokenwarden::authn::introspection::IntrospectionAuthenticator;
    /// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
    /// let opaque = IntrospectionAuthenticator::builder()
    ///     .endpoint("https://idp.example.com/oauth2/introspect")
    ///     .client_secret_basic("orders-api", std::env::var("INTROSPECTION_SECRET")?)
    ///     .build()
    ///     .await?;
    /// opaque.check_client().await?; // a wrong secret stops the start here
    /// # Ok(()) }
    /// ```
    pub async fn check_client(&self) -> Result<(), BuildError> {
        let i = &*self.inner;
        let mut random = [0u8; 16];
        crate::crypto::random_bytes(&mut random).map_err(BuildError::new)?;
        let probe: String = std::iter::once("tokenwarden-client-check-".to_owned())
            .chain(random.iter().map(|b| format!("{b:02x}")))
            .collect();
        match i.endpoint.call(&probe, i.clock.now()).await {
            // An endpoint calling a made-up token active judges nothing: it
            // would pass every token (a stub, a misrouted URL).
            Ok(Answer::Json(body)) if says_active(&body) => Err(BuildError::new(format!(
                "introspection endpoint {} says a made-up token is active: it is not judging tokens",
                i.endpoint.host
            ))),
            // Whatever else it says of the token, it judged it: we were let
            // in. (A signed answer is verified on the request path; here it
            // only shows the credentials were taken.)
            Ok(Answer::Json(_) | Answer::Jwt(_) | Answer::TokenRejected(_)) => Ok(()),
            Err(e @ CallError::ClientRejected(_)) => Err(BuildError::new(format!(
                "introspection endpoint {}: {e}",
                i.endpoint.host
            ))),
            Err(e) => Err(BuildError::new(format!(
                "introspection endpoint {} could not be asked ({}): {e}",
                i.endpoint.host,
                e.kind()
            ))),
        }
    }
}

/// Whether a JSON answer says `"active": true` (RFC 7662 §2.2).
fn says_active(body: &[u8]) -> bool {
    serde_json::from_slice::<serde_json::Map<String, serde_json::Value>>(body)
        .is_ok_and(|m| m.get("active") == Some(&serde_json::Value::Bool(true)))
}
