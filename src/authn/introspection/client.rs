//! The call to the introspection endpoint (RFC 7662 §2.1): a form `POST`
//! carrying the token and the client's authentication, under the URL
//! policy, timeout and body limit of key-set fetches.

use std::fmt;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use reqwest::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, HeaderValue};
use serde_json::json;

use crate::crypto::signing::SigningKey;
use crate::remote::address::{AddressRefused, UrlPolicy};
use crate::remote::fetch::check_url;

/// RFC 9701 §5: the media type of a signed introspection answer.
pub(super) const JWT_MEDIA_TYPE: &str = "application/token-introspection+jwt";
/// RFC 7523 §2.2: the client assertion type.
const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
/// Lifetime of a client assertion: long enough for the clock skew between
/// us and the IdP, short enough to be useless if it leaks.
const ASSERTION_LIFETIME: i64 = 60;

/// How the client authenticates to the endpoint (RFC 7662 §2.1 requires
/// it; RFC 6749 §2.3, RFC 7523 §2.2).
pub(super) enum ClientAuth {
    /// `client_secret_basic`: HTTP Basic (RFC 6749 §2.3.1).
    Basic { secret: String },
    /// `client_secret_post`: id and secret in the form.
    Post { secret: String },
    /// `private_key_jwt`: a short-lived JWT signed with our key.
    PrivateKeyJwt {
        key: Box<SigningKey>,
        kid: String,
        alg: &'static str,
        /// The assertion's `aud`: the issuer, or the endpoint's URL.
        audience: String,
    },
}

impl fmt::Debug for ClientAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the secret or the key.
        f.write_str(match self {
            ClientAuth::Basic { .. } => "client_secret_basic",
            ClientAuth::Post { .. } => "client_secret_post",
            ClientAuth::PrivateKeyJwt { .. } => "private_key_jwt",
        })
    }
}

/// Why a call gave no answer to judge by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum CallError {
    Timeout,
    Connect(String),
    /// 401 or 403: the endpoint refused *our* client credentials.
    ClientRejected(u16),
    Status(u16),
    TooLarge,
    /// Not the media type asked for (an HTML error page, a proxy's).
    NotJson(String),
    /// Not a JSON object, or a signed answer that does not verify.
    Invalid(String),
    /// The URL, or the address it resolved to, is not allowed.
    Refused(String),
    /// The client assertion could not be signed.
    Signing,
}

impl CallError {
    /// The stable kind, for the refusal, the logs and the metrics.
    pub(super) fn kind(&self) -> &'static str {
        match self {
            CallError::Timeout => "introspection_timeout",
            CallError::ClientRejected(_) => "introspection_client_rejected",
            CallError::Connect(_)
            | CallError::Status(_)
            | CallError::TooLarge
            | CallError::NotJson(_)
            | CallError::Invalid(_)
            | CallError::Refused(_)
            | CallError::Signing => "introspection_unavailable",
        }
    }
}

impl fmt::Display for CallError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CallError::Timeout => f.write_str("timed out"),
            CallError::Connect(why) => write!(f, "cannot connect: {why}"),
            CallError::ClientRejected(s) => write!(
                f,
                "answered {s}: the endpoint refused this client's credentials \
                 (check the client id, its secret or key, and its authentication method)"
            ),
            CallError::Status(s) => write!(f, "answered {s}"),
            CallError::TooLarge => f.write_str("the answer is larger than the limit"),
            CallError::NotJson(ct) => write!(f, "answered with content type {ct:?}"),
            CallError::Invalid(why) => f.write_str(why),
            CallError::Refused(why) => f.write_str(why),
            CallError::Signing => f.write_str("the client assertion could not be signed"),
        }
    }
}

/// What the endpoint answered.
pub(super) enum Answer {
    /// A JSON object (RFC 7662 §2.2).
    Json(Vec<u8>),
    /// A signed JWT (RFC 9701).
    Jwt(String),
    /// The endpoint refused the request over the token it carries (400 and
    /// kin: too long, not in its format): a verdict on that token, which a
    /// client chooses, and never a sign of an outage.
    TokenRejected(u16),
}

/// What a status other than 200 says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum NotOk {
    /// About the token the request carried: a verdict on it.
    Token,
    /// Our client credentials were refused.
    Client,
    /// The endpoint is down, overloaded or misplaced.
    Outage,
}

/// The longest error body read to tell a refused client from a refused
/// token.
const MAX_ERROR_BODY: usize = 4096;

/// Classifies a status other than 200, with the error body's `error` code
/// (RFC 6749 §5.2) when it had one.
///
/// A token is the client's to choose, so whatever a token alone can make
/// the endpoint answer must stay that token's verdict: were it counted as
/// an outage, a flood of junk tokens would open the circuit breaker for
/// every user. RFC 7662 §2.2 answers a token it does not know, cannot
/// parse or will not judge with `{"active": false}`; IdPs that answer 400
/// (`invalid_request`), 413, 414, 422 or 431 instead are saying the same
/// of that one token. Only failures no token can cause count as outages:
/// 5xx, 429 (the endpoint sheds load), and statuses that mean the endpoint
/// is misplaced (3xx: redirects are not followed; 404, 405, 415).
pub(super) fn classify(status: u16, error: Option<&str>) -> NotOk {
    match (status, error) {
        // RFC 7662 §2.1 and RFC 6749 §5.2: a failed client authentication
        // is 401, or 400 `invalid_client` (some IdPs, for
        // `client_secret_post`); 403 or `unauthorized_client`: this client
        // may not introspect. No token can cause them.
        (401 | 403, _) | (400, Some("invalid_client" | "unauthorized_client")) => NotOk::Client,
        (400 | 413 | 414 | 422 | 431, _) => NotOk::Token,
        _ => NotOk::Outage,
    }
}

/// The endpoint and how to call it.
pub(super) struct Endpoint {
    pub(super) client: reqwest::Client,
    pub(super) url: reqwest::Url,
    /// The host (and port), for logs: never the path or query.
    pub(super) host: String,
    pub(super) policy: UrlPolicy,
    pub(super) timeout: Duration,
    pub(super) max_bytes: usize,
    pub(super) client_id: String,
    pub(super) auth: ClientAuth,
    /// Ask for RFC 9701 signed answers.
    pub(super) jwt: bool,
}

impl fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Endpoint")
            .field("host", &self.host)
            .field("client_id", &self.client_id)
            .field("auth", &self.auth)
            .field("timeout", &self.timeout)
            .field("max_body_bytes", &self.max_bytes)
            .field("jwt_responses", &self.jwt)
            .finish_non_exhaustive()
    }
}

/// `application/x-www-form-urlencoded` encoding of one value.
fn form(value: &str) -> String {
    url::form_urlencoded::byte_serialize(value.as_bytes()).collect()
}

impl Endpoint {
    /// Asks about `token`. Its text goes in the form body only.
    pub(super) async fn call(&self, token: &str, now: i64) -> Result<Answer, CallError> {
        check_url(self.url.as_str(), self.policy).map_err(CallError::Refused)?;
        // RFC 7662 §2.1: `token`, and the hint that it is an access token.
        let mut body = format!("token={}&token_type_hint=access_token", form(token));
        let mut req = self.client.post(self.url.clone()).timeout(self.timeout);
        match &self.auth {
            ClientAuth::Basic { secret } => {
                // RFC 6749 §2.3.1: id and secret form-encoded, then Basic.
                let pair = format!("{}:{}", form(&self.client_id), form(secret));
                let mut v = HeaderValue::from_str(&format!("Basic {}", STANDARD.encode(pair)))
                    .map_err(|_| CallError::Signing)?;
                v.set_sensitive(true);
                req = req.header(AUTHORIZATION, v);
            }
            ClientAuth::Post { secret } => {
                body.push_str("&client_id=");
                body.push_str(&form(&self.client_id));
                body.push_str("&client_secret=");
                body.push_str(&form(secret));
            }
            ClientAuth::PrivateKeyJwt { .. } => {
                let assertion = self.assertion(now)?;
                body.push_str("&client_id=");
                body.push_str(&form(&self.client_id));
                body.push_str("&client_assertion_type=");
                body.push_str(&form(JWT_BEARER));
                body.push_str("&client_assertion=");
                body.push_str(&assertion);
            }
        }
        let accept = if self.jwt {
            JWT_MEDIA_TYPE
        } else {
            "application/json"
        };
        let mut resp = req
            .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
            .header(ACCEPT, accept)
            .body(body)
            .send()
            .await
            .map_err(|e| from_reqwest(&e))?;
        let status = resp.status().as_u16();
        if status != 200 {
            // A redirect is not followed: the token would go where it leads.
            let error = if status == 400 {
                error_code(&mut resp).await
            } else {
                None
            };
            return match classify(status, error.as_deref()) {
                NotOk::Token => Ok(Answer::TokenRejected(status)),
                NotOk::Client => Err(CallError::ClientRejected(status)),
                NotOk::Outage => Err(CallError::Status(status)),
            };
        }
        let ct = resp
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_ascii_lowercase();
        let media = ct.split(';').next().unwrap_or("").trim().to_owned();
        let is_jwt = media == JWT_MEDIA_TYPE;
        if !is_jwt && media != "application/json" {
            return Err(CallError::NotJson(crate::authn::header_safe(
                &media.chars().take(64).collect::<String>(),
            )));
        }
        if resp
            .content_length()
            .is_some_and(|n| n > self.max_bytes as u64)
        {
            return Err(CallError::TooLarge);
        }
        let mut bytes = Vec::new();
        while let Some(chunk) = resp.chunk().await.map_err(|e| from_reqwest(&e))? {
            if bytes.len().saturating_add(chunk.len()) > self.max_bytes {
                return Err(CallError::TooLarge);
            }
            bytes.extend_from_slice(&chunk);
        }
        if is_jwt {
            if !self.jwt {
                return Err(CallError::Invalid(
                    "a signed answer was not asked for".into(),
                ));
            }
            let text = String::from_utf8(bytes)
                .map_err(|_| CallError::Invalid("the signed answer is not text".into()))?;
            return Ok(Answer::Jwt(text.trim().to_owned()));
        }
        if self.jwt {
            // RFC 9701 §5: asked for a signed answer, an unsigned one could
            // come from anyone on the path; refused.
            return Err(CallError::Invalid(
                "an unsigned answer where a signed one was required".into(),
            ));
        }
        Ok(Answer::Json(bytes))
    }

    /// RFC 7523 §3 client assertion: `iss` = `sub` = the client id, `aud`
    /// the issuer or endpoint, a fresh `jti`, a one-minute `exp`.
    fn assertion(&self, now: i64) -> Result<String, CallError> {
        let ClientAuth::PrivateKeyJwt {
            key,
            kid,
            alg,
            audience,
        } = &self.auth
        else {
            return Err(CallError::Signing);
        };
        let mut jti = [0u8; 16];
        crate::crypto::random_bytes(&mut jti).map_err(|_| CallError::Signing)?;
        let header = json!({"alg": alg, "kid": kid, "typ": "JWT"});
        let claims = json!({
            "iss": self.client_id,
            "sub": self.client_id,
            "aud": audience,
            "jti": URL_SAFE_NO_PAD.encode(jti),
            "iat": now,
            "exp": now.saturating_add(ASSERTION_LIFETIME),
        });
        let mut jwt = URL_SAFE_NO_PAD.encode(header.to_string());
        jwt.push('.');
        jwt.push_str(&URL_SAFE_NO_PAD.encode(claims.to_string()));
        let sig = key.sign(jwt.as_bytes()).map_err(|_| CallError::Signing)?;
        jwt.push('.');
        jwt.push_str(&URL_SAFE_NO_PAD.encode(sig));
        Ok(jwt)
    }
}

/// The `error` code of a JSON error body (RFC 6749 §5.2), read up to
/// [`MAX_ERROR_BODY`] bytes; `None` for any other body.
async fn error_code(resp: &mut reqwest::Response) -> Option<String> {
    let mut bytes = Vec::new();
    while let Ok(Some(chunk)) = resp.chunk().await {
        if bytes.len().saturating_add(chunk.len()) > MAX_ERROR_BODY {
            return None;
        }
        bytes.extend_from_slice(&chunk);
    }
    #[derive(serde::Deserialize)]
    struct ErrorBody {
        error: String,
    }
    serde_json::from_slice::<ErrorBody>(&bytes)
        .ok()
        .map(|b| b.error)
}

/// reqwest's error, without its Display (which names the URL whole).
fn from_reqwest(e: &reqwest::Error) -> CallError {
    let mut source: Option<&dyn std::error::Error> = std::error::Error::source(e);
    while let Some(s) = source {
        if let Some(r) = s.downcast_ref::<AddressRefused>() {
            return CallError::Refused(r.to_string());
        }
        source = s.source();
    }
    if e.is_timeout() {
        CallError::Timeout
    } else if e.is_connect() {
        CallError::Connect("connection failed".into())
    } else if e.is_body() || e.is_decode() {
        CallError::Connect("the answer could not be read".into())
    } else {
        CallError::Connect("the request failed".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_failures_no_token_can_cause_are_outages() {
        for s in [400, 413, 414, 422, 431] {
            assert_eq!(classify(s, None), NotOk::Token, "{s}");
        }
        assert_eq!(classify(400, Some("invalid_request")), NotOk::Token);
        for (s, e) in [
            (401, None),
            (403, None),
            (400, Some("invalid_client")),
            (400, Some("unauthorized_client")),
        ] {
            assert_eq!(classify(s, e), NotOk::Client, "{s} {e:?}");
        }
        for s in [500, 502, 503, 504, 429, 404, 405, 415, 301, 302, 307] {
            assert_eq!(classify(s, None), NotOk::Outage, "{s}");
        }
    }
}
