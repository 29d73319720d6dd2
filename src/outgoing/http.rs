//! One POST to the token endpoint (RFC 6749 §3.2, §4.4; RFC 8693 §2): the
//! client authenticated, the form sent, the answer read within limits.

use std::time::Duration;

use serde::Deserialize;

use super::error::{TokenError, TokenErrorKind};
use crate::remote::address::{AddressRefused, GuardedResolver, UrlPolicy, redact};
use crate::remote::fetch::check_url;

/// How the client authenticates to the token endpoint (RFC 6749 §2.3.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum ClientAuth {
    /// `client_secret_basic`: HTTP Basic with the form-encoded id and
    /// secret (the default; RFC 6749 §2.3.1 says servers must support it).
    #[default]
    SecretBasic,
    /// `client_secret_post`: `client_id` and `client_secret` in the form.
    SecretPost,
}

/// The limits of one request.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    pub(crate) timeout: Duration,
    pub(crate) max_bytes: usize,
    pub(crate) policy: UrlPolicy,
}

/// A successful token response (RFC 6749 §5.1, RFC 8693 §2.2.1).
#[derive(Deserialize)]
pub(crate) struct TokenResponse {
    pub(crate) access_token: String,
    pub(crate) token_type: String,
    pub(crate) expires_in: Option<i64>,
    pub(crate) scope: Option<String>,
}

/// An error response (RFC 6749 §5.2).
#[derive(Deserialize)]
struct ErrorResponse {
    error: String,
    error_description: Option<String>,
}

/// The client for token requests: no redirects (a redirected POST would
/// carry the client's secret or the subject token to another place), no
/// proxy from the environment, every resolved address checked.
pub(crate) fn client(policy: UrlPolicy) -> Result<reqwest::Client, String> {
    reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(2))
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .dns_resolver(GuardedResolver(policy))
        .user_agent(concat!("tokenwarden/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| format!("HTTP client: {e}"))
}

/// What an endpoint said, made safe to show: printable ASCII, at most
/// `max` characters.
fn shown(s: &str, max: usize) -> String {
    s.chars()
        .filter(|c| (' '..='~').contains(c))
        .take(max)
        .collect()
}

fn from_reqwest(url: &str, e: &reqwest::Error) -> TokenError {
    let mut refused = false;
    let mut source: Option<&dyn std::error::Error> = std::error::Error::source(e);
    while let Some(s) = source {
        refused |= s.is::<AddressRefused>();
        source = s.source();
    }
    let kind = if refused {
        TokenErrorKind::Rejected
    } else if e.is_timeout() {
        TokenErrorKind::Timeout
    } else {
        TokenErrorKind::Connect
    };
    // reqwest's own text names the URL with its query: ours redacts it.
    let what = if e.is_timeout() {
        "timed out"
    } else if refused {
        "address not allowed"
    } else {
        "request failed"
    };
    TokenError::new(kind, format!("token request to {} {what}", redact(url)))
}

/// Posts `form` to `url`, authenticated as `client_id`, and reads the token
/// response.
pub(crate) async fn request(
    http: &reqwest::Client,
    url: &str,
    limits: Limits,
    auth: ClientAuth,
    client_id: &str,
    secret: &str,
    form: &[(&str, &str)],
) -> Result<TokenResponse, TokenError> {
    check_url(url, limits.policy).map_err(|e| TokenError::new(TokenErrorKind::Rejected, e))?;
    let shown_url = redact(url);
    // Built before any await: the serializer is not `Send`.
    let body = {
        let mut body = url::form_urlencoded::Serializer::new(String::new());
        body.extend_pairs(form);
        if auth == ClientAuth::SecretPost {
            body.append_pair("client_id", client_id);
            body.append_pair("client_secret", secret);
        }
        body.finish()
    };
    let mut req = http
        .post(url)
        .timeout(limits.timeout)
        .header(reqwest::header::ACCEPT, "application/json")
        .header(
            reqwest::header::CONTENT_TYPE,
            "application/x-www-form-urlencoded",
        );
    if auth == ClientAuth::SecretBasic {
        // RFC 6749 §2.3.1: id and secret form-encoded, then Basic.
        let enc = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
        req = req.basic_auth(enc(client_id), Some(enc(secret)));
    }
    let mut resp = req
        .body(body)
        .send()
        .await
        .map_err(|e| from_reqwest(url, &e))?;
    let status = resp.status().as_u16();
    if resp
        .content_length()
        .is_some_and(|n| n > limits.max_bytes as u64)
    {
        return Err(too_large(&shown_url, limits.max_bytes).with_status(status));
    }
    let mut bytes = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(|e| from_reqwest(url, &e))? {
        if bytes.len().saturating_add(chunk.len()) > limits.max_bytes {
            return Err(too_large(&shown_url, limits.max_bytes).with_status(status));
        }
        bytes.extend_from_slice(&chunk);
    }
    if status != 200 {
        // RFC 6749 §5.2: 400 (or 401) with an error code.
        return Err(match serde_json::from_slice::<ErrorResponse>(&bytes) {
            Ok(e) => {
                let code = shown(&e.error, 64);
                let mut message = format!("{shown_url} refused the token request: {code}");
                if let Some(d) = e.error_description.as_deref() {
                    message.push_str(&format!(" ({})", shown(d, 160)));
                }
                TokenError::new(TokenErrorKind::Refused, message)
                    .with_status(status)
                    .with_oauth_error(code)
            }
            Err(_) => TokenError::new(
                TokenErrorKind::Status,
                format!("{shown_url} answered {status}"),
            )
            .with_status(status),
        });
    }
    let parsed: TokenResponse = serde_json::from_slice(&bytes).map_err(|_| {
        TokenError::new(
            TokenErrorKind::Invalid,
            format!("{shown_url} answered 200 with no token response (RFC 6749 §5.1)"),
        )
    })?;
    // We attach it as a bearer token: any other type (DPoP, MAC) would be
    // sent wrong.
    if !parsed.token_type.eq_ignore_ascii_case("bearer") {
        return Err(TokenError::new(
            TokenErrorKind::Invalid,
            format!(
                "{shown_url} issued a token of type {:?}, not Bearer",
                shown(&parsed.token_type, 32)
            ),
        ));
    }
    // Sent in a header: a value that cannot be one is refused here, once.
    if parsed.access_token.is_empty()
        || !parsed
            .access_token
            .bytes()
            .all(|b| (0x21..=0x7e).contains(&b))
    {
        return Err(TokenError::new(
            TokenErrorKind::Invalid,
            format!("{shown_url} issued an access token that cannot be sent in a header"),
        ));
    }
    Ok(parsed)
}

fn too_large(url: &str, max: usize) -> TokenError {
    TokenError::new(
        TokenErrorKind::TooLarge,
        format!("{url} sent a body larger than the limit of {max} bytes"),
    )
}
