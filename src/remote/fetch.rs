//! HTTP fetches of JWK Sets and discovery documents, with every limit a
//! hostile or broken endpoint could abuse: scheme, size, type, timeout.

use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use reqwest::header::{CACHE_CONTROL, CONTENT_TYPE, ETAG, IF_NONE_MATCH};
use serde::Deserialize;

use crate::keys::KeySet;

/// Why a fetch failed. Kept for the counters, the logs and
/// [`RemoteKeySet::last_error`](super::RemoteKeySet::last_error).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct FetchError {
    kind: FetchErrorKind,
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
    /// The discovery document names another issuer, or a URL is not allowed.
    Rejected,
}

impl FetchError {
    pub(crate) fn new(kind: FetchErrorKind, message: impl Into<String>) -> Self {
        FetchError {
            kind,
            message: message.into(),
        }
    }

    /// The kind of failure.
    pub fn kind(&self) -> FetchErrorKind {
        self.kind
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
    let kind = if e.is_timeout() {
        FetchErrorKind::Timeout
    } else {
        FetchErrorKind::Connect
    };
    // reqwest's Display includes the URL; ours names it once, without query.
    FetchError::new(kind, format!("fetching {url} failed: {}", without_url(e)))
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

/// Whether `url` may be fetched: https, or http to a loopback address when
/// explicitly allowed (for tests and local development only).
pub(crate) fn check_url(url: &str, allow_http_loopback: bool) -> Result<reqwest::Url, String> {
    let parsed = reqwest::Url::parse(url).map_err(|e| format!("{url:?} is not a URL: {e}"))?;
    match parsed.scheme() {
        "https" => Ok(parsed),
        "http" if allow_http_loopback && is_loopback(&parsed) => Ok(parsed),
        "http" if allow_http_loopback => Err(format!(
            "{url} uses plain http to a host that is not loopback; only https is allowed"
        )),
        "http" => Err(format!(
            "{url} uses plain http; only https is allowed (http to loopback needs allow_http_loopback)"
        )),
        other => Err(format!("{url} has scheme {other:?}; only https is allowed")),
    }
}

fn is_loopback(url: &reqwest::Url) -> bool {
    match url.host() {
        Some(url::Host::Ipv4(ip)) => IpAddr::V4(ip).is_loopback(),
        Some(url::Host::Ipv6(ip)) => IpAddr::V6(ip).is_loopback(),
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        None => false,
    }
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
async fn get_json(
    client: &reqwest::Client,
    url: &str,
    timeout: Duration,
    max_bytes: usize,
    etag: Option<&str>,
) -> Result<Fetched<Vec<u8>>, FetchError> {
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
        return Err(FetchError::new(
            FetchErrorKind::Status,
            format!("{url} answered {status}"),
        ));
    }
    if let Some(ct) = resp.headers().get(CONTENT_TYPE) {
        let ct = ct.to_str().unwrap_or("");
        if !ct.to_ascii_lowercase().contains("json") {
            return Err(FetchError::new(
                FetchErrorKind::Invalid,
                format!("{url} answered with content type {ct:?}, not JSON"),
            ));
        }
    }
    if resp.content_length().is_some_and(|n| n > max_bytes as u64) {
        return Err(too_large(url, max_bytes));
    }
    let new_etag = resp
        .headers()
        .get(ETAG)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(|e| from_reqwest(url, &e))? {
        if body.len() + chunk.len() > max_bytes {
            return Err(too_large(url, max_bytes));
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
}

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
    timeout: Duration,
    max_bytes: usize,
    etag: Option<&str>,
) -> Result<Fetched<(KeySet, Arc<[u8]>)>, FetchError> {
    match get_json(client, url, timeout, max_bytes, etag).await? {
        Fetched::NotModified { max_age } => Ok(Fetched::NotModified { max_age }),
        Fetched::New {
            value,
            etag,
            max_age,
        } => {
            // An empty or all-unusable set is an error: it never replaces good keys.
            let set = KeySet::from_jwks(&value)
                .map_err(|e| FetchError::new(FetchErrorKind::Invalid, format!("{url}: {e}")))?;
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
    timeout: Duration,
    max_bytes: usize,
    allow_http_loopback: bool,
) -> Result<String, FetchError> {
    let Fetched::New { value, .. } = get_json(client, url, timeout, max_bytes, None).await? else {
        return Err(FetchError::new(
            FetchErrorKind::Invalid,
            format!("{url}: unexpected 304"),
        ));
    };
    parse_discovery(&value, url, issuer, allow_http_loopback)
}

/// Reads a discovery document: checks that it names `issuer` and that its
/// `jwks_uri` is a URL we may fetch, and returns that URL.
pub(crate) fn parse_discovery(
    body: &[u8],
    url: &str,
    issuer: &str,
    allow_http_loopback: bool,
) -> Result<String, FetchError> {
    // RFC 8259 §8.1: JSON text is UTF-8; serde_json checks only the strings
    // it keeps, so the members we skip are checked here.
    let body = std::str::from_utf8(body).map_err(|_| {
        FetchError::new(
            FetchErrorKind::Invalid,
            format!("{url} is not UTF-8 JSON (RFC 8259 §8.1)"),
        )
    })?;
    let doc: Discovery = serde_json::from_str(body).map_err(|e| {
        FetchError::new(
            FetchErrorKind::Invalid,
            format!("{url} is not a discovery document with issuer and jwks_uri: {e}"),
        )
    })?;
    // OIDC Discovery §4.3 / RFC 8414 §3.3: the document's issuer must be
    // exactly the one we asked about, or its keys could be anyone's.
    if doc.issuer != issuer {
        return Err(FetchError::new(
            FetchErrorKind::Rejected,
            format!(
                "{url} names issuer {:?}, not the configured {issuer:?}",
                doc.issuer
            ),
        ));
    }
    // The URL as parsed and checked, not the text: what is fetched later is
    // exactly what was checked here.
    let checked = check_url(&doc.jwks_uri, allow_http_loopback)
        .map_err(|e| FetchError::new(FetchErrorKind::Rejected, format!("jwks_uri: {e}")))?;
    Ok(checked.into())
}

#[cfg(test)]
mod tests {
    use super::*;

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
        assert!(check_url("https://idp.example.com/jwks", false).is_ok());
        assert!(check_url("http://idp.example.com/jwks", false).is_err());
        assert!(check_url("http://idp.example.com/jwks", true).is_err());
        assert!(check_url("http://10.0.0.1/jwks", true).is_err());
        assert!(check_url("http://127.0.0.1:8080/jwks", false).is_err());
        assert!(check_url("http://127.0.0.1:8080/jwks", true).is_ok());
        assert!(check_url("http://[::1]:8080/jwks", true).is_ok());
        assert!(check_url("http://localhost/jwks", true).is_ok());
        assert!(check_url("ftp://idp.example.com/jwks", true).is_err());
        assert!(check_url("file:///etc/passwd", true).is_err());
    }

    /// Found by `fuzz/fuzz_targets/discovery.rs`: invalid UTF-8 in a member
    /// we do not read was accepted.
    #[test]
    fn discovery_document_must_be_utf8_throughout() {
        let mut doc = br#"{"issuer":"https://idp.test","jwks_uri":"https://idp.test/k","token_endpoint":"htt"#.to_vec();
        doc.extend_from_slice(b"\xff\"}");
        let e = parse_discovery(&doc, "u", "https://idp.test", false).unwrap_err();
        assert_eq!(e.kind(), FetchErrorKind::Invalid);
        let fine = br#"{"issuer":"https://idp.test","jwks_uri":"https://idp.test/k","token_endpoint":"x"}"#;
        assert_eq!(
            parse_discovery(fine, "u", "https://idp.test", false).unwrap(),
            "https://idp.test/k"
        );
        // Also from the fuzzer: the URL handed on is the one checked, in its
        // parsed form, not the document's spelling of it.
        let odd = br#"{"issuer":"https://idp.test","jwks_uri":"https:/+idp.test/k"}"#;
        let uri = parse_discovery(odd, "u", "https://idp.test", false).unwrap();
        assert!(uri.starts_with("https://"), "{uri}");
        // The issuer must match exactly (OIDC Discovery §4.3).
        let other = br#"{"issuer":"https://idp.test/","jwks_uri":"https://idp.test/k"}"#;
        let e = parse_discovery(other, "u", "https://idp.test", false).unwrap_err();
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
