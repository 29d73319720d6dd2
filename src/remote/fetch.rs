//! HTTP fetches of JWK Sets and discovery documents, with every limit a
//! hostile or broken endpoint could abuse: scheme, size, type, timeout.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use reqwest::header::{CACHE_CONTROL, CONTENT_TYPE, ETAG, IF_NONE_MATCH};
use serde::Deserialize;

use super::address::{AddressRefused, UrlPolicy, is_localhost_name, redact};
use crate::error::Shown;
use crate::keys::KeySet;

/// Why a fetch failed. Kept for the counters, the logs and
/// [`RemoteKeySet::last_error`](super::RemoteKeySet::last_error).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct FetchError {
    kind: FetchErrorKind,
    /// The HTTP status, for [`FetchErrorKind::Status`].
    status: Option<u16>,
    message: String,
}

/// What kind of failure a [`FetchError`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum FetchErrorKind {
    /// Connecting, sending or reading failed (refused, reset, DNS).
    Connect,
    /// No complete answer within the timeout.
    Timeout,
    /// The server answered with a status other than 200 (or 304).
    Status,
    /// The body was larger than the configured limit.
    TooLarge,
    /// The body is not a JWK Set or discovery document, or has no usable key.
    Invalid,
    /// The discovery document names another issuer, or a URL, a redirect
    /// or the address a name resolved to is not allowed (refused before
    /// connecting).
    Rejected,
}

impl FetchError {
    pub(crate) fn new(kind: FetchErrorKind, message: impl Into<String>) -> Self {
        FetchError {
            kind,
            status: None,
            message: message.into(),
        }
    }

    /// The same error, its message extended with the fix for a
    /// configuration mistake (for [`is_permanent`](Self::is_permanent) ones).
    pub(crate) fn with_fix(mut self, fix: &str) -> Self {
        self.message.push_str(": ");
        self.message.push_str(fix);
        self
    }

    /// The kind of failure.
    pub fn kind(&self) -> FetchErrorKind {
        self.kind
    }

    /// The HTTP status the server answered with, for
    /// [`FetchErrorKind::Status`].
    pub fn status(&self) -> Option<u16> {
        self.status
    }

    /// Whether this failure looks like a misconfiguration that retrying will
    /// not cure: a 4xx answer (but 408 and 429), a body that is not a key
    /// set or discovery document, a discovery document naming another
    /// issuer, a URL that is not allowed, a body over the limit. Such a
    /// failure ends [`RemoteKeySet::ready`](super::RemoteKeySet::ready) at
    /// once and is logged at error with the fix; the others (connection
    /// refused, timeouts, 5xx) are retried within `ready`'s wait.
    ///
    /// ```
    /// # fn f(e: tokenwarden::remote::FetchError) {
    /// if e.is_permanent() {
    ///     eprintln!("fix the configuration: {e}");
    /// }
    /// # }
    /// ```
    pub fn is_permanent(&self) -> bool {
        match self.kind {
            FetchErrorKind::Connect | FetchErrorKind::Timeout => false,
            FetchErrorKind::Status => self
                .status
                .is_some_and(|s| (400..500).contains(&s) && s != 408 && s != 429),
            FetchErrorKind::TooLarge | FetchErrorKind::Invalid | FetchErrorKind::Rejected => true,
        }
    }

    /// Whether the server did not answer in time.
    pub fn is_timeout(&self) -> bool {
        self.kind == FetchErrorKind::Timeout
    }
}

impl fmt::Display for FetchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for FetchError {}

fn from_reqwest(url: &str, e: &reqwest::Error) -> FetchError {
    let refused = {
        let mut source: Option<&dyn std::error::Error> = std::error::Error::source(e);
        let mut found = false;
        while let Some(s) = source {
            found |= s.is::<AddressRefused>();
            source = s.source();
        }
        found
    };
    let kind = if refused || e.is_redirect() {
        FetchErrorKind::Rejected
    } else if e.is_timeout() {
        FetchErrorKind::Timeout
    } else {
        FetchErrorKind::Connect
    };
    // reqwest's Display includes the URL; ours names it once, without query
    // or userinfo.
    FetchError::new(
        kind,
        format!("fetching {} failed: {}", redact(url), without_url(e)),
    )
}

fn without_url(e: &reqwest::Error) -> String {
    let mut parts = Vec::new();
    let mut source: Option<&dyn std::error::Error> = std::error::Error::source(e);
    while let Some(s) = source {
        parts.push(s.to_string());
        source = s.source();
    }
    if parts.is_empty() {
        if e.is_timeout() {
            "timed out".into()
        } else {
            "request failed".into()
        }
    } else {
        parts.join(": ")
    }
}

/// Whether `url` may be fetched: https, or http to a loopback host when
/// explicitly allowed (for tests and local development only); and, for an
/// IP-literal host (which no resolver sees), an address the policy allows.
/// Names are checked when they resolve, at connect time
/// ([`GuardedResolver`](super::address::GuardedResolver)).
pub(crate) fn check_url(url: &str, policy: UrlPolicy) -> Result<reqwest::Url, String> {
    let shown = redact(url);
    let parsed = reqwest::Url::parse(url).map_err(|e| format!("{shown} is not a URL: {e}"))?;
    match parsed.scheme() {
        "https" => {}
        "http" if policy.allow_http_loopback && is_loopback(&parsed) => {}
        "http" if policy.allow_http_loopback => {
            return Err(format!(
                "{shown} uses plain http to a host that is not loopback; only https is allowed"
            ));
        }
        "http" => {
            return Err(format!(
                "{shown} uses plain http; only https is allowed (http to loopback needs allow_http_loopback)"
            ));
        }
        other => {
            return Err(format!(
                "{shown} has scheme {other:?}; only https is allowed"
            ));
        }
    }
    let literal = match parsed.host() {
        Some(url::Host::Ipv4(ip)) => Some(std::net::IpAddr::V4(ip)),
        Some(url::Host::Ipv6(ip)) => Some(std::net::IpAddr::V6(ip)),
        Some(url::Host::Domain(_)) => None,
        None => return Err(format!("{shown} has no host")),
    };
    if let Some(ip) = literal {
        if !policy.allows(ip) {
            return Err(format!(
                "{shown} is a {} address: refused before connecting (allow_private_addresses allows it)",
                match super::address::classify(ip) {
                    super::address::AddrClass::NonPublic(n) => n,
                    _ => "loopback",
                }
            ));
        }
    }
    Ok(parsed)
}

/// A loopback IP literal, or `localhost` (which the resolver then holds to
/// loopback addresses only).
fn is_loopback(url: &reqwest::Url) -> bool {
    match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(d)) => is_localhost_name(d),
        None => false,
    }
}

/// The limits of one fetch.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    pub(crate) timeout: Duration,
    pub(crate) max_bytes: usize,
    pub(crate) policy: UrlPolicy,
}

/// What one successful fetch brought.
pub(crate) enum Fetched<T> {
    New {
        value: T,
        etag: Option<String>,
        max_age: Option<Duration>,
    },
    NotModified {
        max_age: Option<Duration>,
    },
}

/// Fetches `url` and reads at most `max_bytes` of a JSON body.
pub(crate) async fn get_json(
    client: &reqwest::Client,
    url: &str,
    limits: Limits,
    etag: Option<&str>,
) -> Result<Fetched<Vec<u8>>, FetchError> {
    let Limits {
        timeout,
        max_bytes,
        policy,
    } = limits;
    // Again at request time: a client of the caller's own has no resolver
    // of ours, but IP literals are still caught here.
    check_url(url, policy).map_err(|e| FetchError::new(FetchErrorKind::Rejected, e))?;
    let shown = redact(url);
    let mut req = client.get(url).timeout(timeout).header(
        reqwest::header::ACCEPT,
        "application/jwk-set+json, application/json",
    );
    if let Some(tag) = etag {
        req = req.header(IF_NONE_MATCH, tag);
    }
    let mut resp = req.send().await.map_err(|e| from_reqwest(url, &e))?;
    let max_age = resp
        .headers()
        .get(CACHE_CONTROL)
        .and_then(|v| v.to_str().ok())
        .and_then(parse_max_age);
    let status = resp.status();
    if status == reqwest::StatusCode::NOT_MODIFIED && etag.is_some() {
        return Ok(Fetched::NotModified { max_age });
    }
    if status != reqwest::StatusCode::OK {
        let mut e = FetchError::new(FetchErrorKind::Status, format!("{shown} answered {status}"));
        e.status = Some(status.as_u16());
        return Err(match status.as_u16() {
            404 | 410 => e.with_fix(
                "nothing is there: check the URL (jwks_url, or the issuer or discovery_url of discovery)",
            ),
            401 | 403 => e.with_fix(
                "the key set must be readable without credentials, or pass an http_client that sends them",
            ),
            _ if e.is_permanent() => e.with_fix("check the URL and the identity provider's settings"),
            _ => e,
        });
    }
    if let Some(ct) = resp.headers().get(CONTENT_TYPE) {
        let ct = ct.to_str().unwrap_or("");
        if !ct.to_ascii_lowercase().contains("json") {
            return Err(FetchError::new(
                FetchErrorKind::Invalid,
                format!("{shown} answered with content type {ct:?}, not JSON"),
            )
            .with_fix(NOT_THE_DOCUMENT));
        }
    }
    if resp.content_length().is_some_and(|n| n > max_bytes as u64) {
        return Err(too_large(&shown, max_bytes));
    }
    let new_etag = resp
        .headers()
        .get(ETAG)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(|e| from_reqwest(url, &e))? {
        if body.len().saturating_add(chunk.len()) > max_bytes {
            return Err(too_large(&shown, max_bytes));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Fetched::New {
        value: body,
        etag: new_etag,
        max_age,
    })
}

fn too_large(url: &str, max: usize) -> FetchError {
    FetchError::new(
        FetchErrorKind::TooLarge,
        format!("{url} sent a body larger than the limit of {max} bytes"),
    )
    .with_fix("check the URL, or raise max_body_bytes")
}

/// The fix for a body that is not what the URL should serve.
const NOT_THE_DOCUMENT: &str = "check that the URL serves the JWK Set (RFC 7517 §5) or the \
     discovery document, not a login page or a certificate map";

/// `max-age=N` from a Cache-Control value; `no-store`/`no-cache` give 0.
fn parse_max_age(value: &str) -> Option<Duration> {
    value.split(',').map(str::trim).find_map(|d| {
        let lower = d.to_ascii_lowercase();
        if lower == "no-store" || lower == "no-cache" {
            return Some(Duration::ZERO);
        }
        lower
            .strip_prefix("max-age=")
            .and_then(|n| n.trim_matches('"').parse::<u64>().ok())
            .map(Duration::from_secs)
    })
}

/// Fetches and parses a JWK Set.
pub(crate) async fn jwks(
    client: &reqwest::Client,
    url: &str,
    limits: Limits,
    etag: Option<&str>,
) -> Result<Fetched<(KeySet, Arc<[u8]>)>, FetchError> {
    match get_json(client, url, limits, etag).await? {
        Fetched::NotModified { max_age } => Ok(Fetched::NotModified { max_age }),
        Fetched::New {
            value,
            etag,
            max_age,
        } => {
            // An empty or all-unusable set is an error: it never replaces good keys.
            let set = KeySet::from_jwks(&value).map_err(|e| {
                FetchError::new(FetchErrorKind::Invalid, format!("{}: {e}", redact(url)))
                    .with_fix(NOT_THE_DOCUMENT)
            })?;
            Ok(Fetched::New {
                value: (set, value.into()),
                etag,
                max_age,
            })
        }
    }
}

/// The discovery document members we use (OIDC Discovery §3, RFC 8414 §2).
#[derive(Deserialize)]
struct Discovery {
    issuer: String,
    jwks_uri: String,
}

/// Where the discovery document of `issuer` lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum DiscoveryKind {
    /// `<issuer>/.well-known/openid-configuration` (OIDC Discovery §4).
    OpenIdConnect,
    /// `https://host/.well-known/oauth-authorization-server/<path>` (RFC 8414 §3.1).
    OAuth,
}

pub(crate) fn discovery_url(issuer: &str, kind: DiscoveryKind) -> Result<String, String> {
    let mut url =
        reqwest::Url::parse(issuer).map_err(|e| format!("{issuer:?} is not a URL: {e}"))?;
    if url.query().is_some() || url.fragment().is_some() {
        return Err(format!("issuer {issuer} must not have a query or fragment"));
    }
    match kind {
        DiscoveryKind::OpenIdConnect => Ok(format!(
            "{}/.well-known/openid-configuration",
            issuer.trim_end_matches('/')
        )),
        DiscoveryKind::OAuth => {
            // RFC 8414 §3.1: the well-known segment goes between host and path.
            let path = url.path().trim_end_matches('/').to_owned();
            url.set_path(&format!("/.well-known/oauth-authorization-server{path}"));
            Ok(url.to_string())
        }
    }
}

/// Fetches the discovery document, checks its issuer and returns `jwks_uri`.
pub(crate) async fn discover(
    client: &reqwest::Client,
    url: &str,
    issuer: &str,
    limits: Limits,
) -> Result<String, FetchError> {
    let Fetched::New { value, .. } = get_json(client, url, limits, None).await? else {
        return Err(FetchError::new(
            FetchErrorKind::Invalid,
            format!("{}: unexpected 304", redact(url)),
        ));
    };
    parse_discovery(&value, url, issuer, limits.policy)
}

/// Reads a discovery document: checks that it names `issuer` and that its
/// `jwks_uri` is a URL we may fetch, and returns that URL.
pub(crate) fn parse_discovery(
    body: &[u8],
    url: &str,
    issuer: &str,
    policy: UrlPolicy,
) -> Result<String, FetchError> {
    let url = &redact(url);
    // RFC 8259 §8.1: JSON text is UTF-8; serde_json checks only the strings
    // it keeps, so the members we skip are checked here.
    let body = std::str::from_utf8(body).map_err(|_| {
        FetchError::new(
            FetchErrorKind::Invalid,
            format!("{url} is not UTF-8 JSON (RFC 8259 §8.1)"),
        )
        .with_fix(NOT_THE_DOCUMENT)
    })?;
    let doc: Discovery = serde_json::from_str(body).map_err(|e| {
        FetchError::new(
            FetchErrorKind::Invalid,
            format!("{url} is not a discovery document with issuer and jwks_uri: {e}"),
        )
        .with_fix(NOT_THE_DOCUMENT)
    })?;
    // OIDC Discovery §4.3 / RFC 8414 §3.3: the document's issuer must be
    // exactly the one we asked about, or its keys could be anyone's. The
    // IdP's value is escaped and cut (up to 1 MiB would otherwise reach the
    // error and the log line of every refresh); the configured one is ours.
    if doc.issuer != issuer {
        return Err(FetchError::new(
            FetchErrorKind::Rejected,
            format!(
                "{url} names issuer {}, not the configured {issuer:?}",
                Shown(&doc.issuer)
            ),
        )
        .with_fix(
            "configure the issuer exactly as the document names it (a trailing slash counts), \
             as it appears in the tokens' iss; reach the document at another address with discovery_url",
        ));
    }
    // The URL as parsed and checked, not the text: what is fetched later is
    // exactly what was checked here.
    let checked = check_url(&doc.jwks_uri, policy)
        .map_err(|e| FetchError::new(FetchErrorKind::Rejected, format!("jwks_uri: {e}")))?;
    Ok(checked.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    const STRICT: UrlPolicy = UrlPolicy {
        allow_http_loopback: false,
        allow_private: false,
    };
    const LOOPBACK: UrlPolicy = UrlPolicy {
        allow_http_loopback: true,
        allow_private: false,
    };

    #[test]
    fn max_age_is_parsed() {
        assert_eq!(
            parse_max_age("public, max-age=300"),
            Some(Duration::from_secs(300))
        );
        assert_eq!(parse_max_age("no-store"), Some(Duration::ZERO));
        assert_eq!(parse_max_age("public"), None);
    }

    #[test]
    fn only_https_or_opted_in_loopback_http() {
        assert!(check_url("https://idp.example.com/jwks", STRICT).is_ok());
        assert!(check_url("http://idp.example.com/jwks", STRICT).is_err());
        assert!(check_url("http://idp.example.com/jwks", LOOPBACK).is_err());
        assert!(check_url("http://10.0.0.1/jwks", LOOPBACK).is_err());
        assert!(check_url("http://127.0.0.1:8080/jwks", STRICT).is_err());
        assert!(check_url("http://127.0.0.1:8080/jwks", LOOPBACK).is_ok());
        assert!(check_url("http://[::1]:8080/jwks", LOOPBACK).is_ok());
        assert!(check_url("http://localhost/jwks", LOOPBACK).is_ok());
        assert!(check_url("ftp://idp.example.com/jwks", LOOPBACK).is_err());
        assert!(check_url("file:///etc/passwd", LOOPBACK).is_err());
        // IP literals are never resolved, so they are checked here.
        assert!(check_url("https://10.0.0.1/jwks", LOOPBACK).is_err());
        assert!(check_url("https://169.254.169.254/jwks", LOOPBACK).is_err());
        assert!(check_url("https://[fd00::1]/jwks", LOOPBACK).is_err());
        assert!(check_url("https://[::ffff:10.0.0.1]/jwks", LOOPBACK).is_err());
        assert!(check_url("https://127.0.0.1/jwks", STRICT).is_err());
        assert!(check_url("https://127.0.0.1/jwks", LOOPBACK).is_ok());
        let private = UrlPolicy {
            allow_http_loopback: false,
            allow_private: true,
        };
        assert!(check_url("https://10.0.0.1/jwks", private).is_ok());
        assert!(check_url("http://10.0.0.1/jwks", private).is_err());
    }

    /// Found by `fuzz/fuzz_targets/discovery.rs`: invalid UTF-8 in a member
    /// we do not read was accepted.
    #[test]
    fn discovery_document_must_be_utf8_throughout() {
        let mut doc = br#"{"issuer":"https://idp.test","jwks_uri":"https://idp.test/k","token_endpoint":"htt"#.to_vec();
        doc.extend_from_slice(b"\xff\"}");
        let e = parse_discovery(&doc, "u", "https://idp.test", STRICT).unwrap_err();
        assert_eq!(e.kind(), FetchErrorKind::Invalid);
        let fine = br#"{"issuer":"https://idp.test","jwks_uri":"https://idp.test/k","token_endpoint":"x"}"#;
        assert_eq!(
            parse_discovery(fine, "u", "https://idp.test", STRICT).unwrap(),
            "https://idp.test/k"
        );
        // Also from the fuzzer: the URL handed on is the one checked, in its
        // parsed form, not the document's spelling of it.
        let odd = br#"{"issuer":"https://idp.test","jwks_uri":"https:/+idp.test/k"}"#;
        let uri = parse_discovery(odd, "u", "https://idp.test", STRICT).unwrap();
        assert!(uri.starts_with("https://"), "{uri}");
        // The issuer must match exactly (OIDC Discovery §4.3).
        let other = br#"{"issuer":"https://idp.test/","jwks_uri":"https://idp.test/k"}"#;
        let e = parse_discovery(other, "u", "https://idp.test", STRICT).unwrap_err();
        assert_eq!(e.kind(), FetchErrorKind::Rejected);
    }

    #[test]
    fn discovery_urls() {
        assert_eq!(
            discovery_url("https://idp.test/realms/a/", DiscoveryKind::OpenIdConnect).unwrap(),
            "https://idp.test/realms/a/.well-known/openid-configuration"
        );
        assert_eq!(
            discovery_url("https://idp.test/tenant", DiscoveryKind::OAuth).unwrap(),
            "https://idp.test/.well-known/oauth-authorization-server/tenant"
        );
    }
}
