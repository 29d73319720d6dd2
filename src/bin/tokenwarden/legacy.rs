//! `[legacy]`: legacy credentials (a session cookie or `Basic`) judged by
//! a legacy HTTP endpoint, beside bearer JWTs and API keys.

use std::ops::Range;
use std::time::Duration;

use serde::Deserialize;
use tokenwarden::authn::legacy::{self, HttpCheck, LegacyAuthenticator};
use toml::Spanned;

use crate::config::ConfigError;

/// `[legacy]` as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LegacyFile {
    url: Spanned<String>,
    cookie: Option<Spanned<String>>,
    #[serde(default)]
    basic: bool,
    timeout_ms: Option<Spanned<u64>>,
    positive_ttl_seconds: Option<Spanned<u64>>,
    negative_ttl_seconds: Option<Spanned<u64>>,
    max_concurrent: Option<Spanned<u64>>,
    scopes_claim: Option<String>,
}

/// Which credential the endpoint judges.
#[derive(Debug, Clone)]
pub enum Kind {
    /// The session cookie of this name.
    Cookie(String),
    /// `Authorization: Basic`.
    Basic,
}

/// The checked `[legacy]`.
#[derive(Debug, Clone)]
pub struct Legacy {
    pub url: String,
    pub kind: Kind,
    pub timeout: Duration,
    pub positive_ttl: Duration,
    pub negative_ttl: Duration,
    pub max_concurrent: usize,
    pub scopes_claim: Option<String>,
    pub allow_http: bool,
    pub allow_private_addresses: bool,
}

impl Legacy {
    /// The authenticator asking the endpoint (timeout, TTLs, cap as set).
    pub fn authenticator(&self) -> Result<LegacyAuthenticator, String> {
        let mut check = HttpCheck::builder(self.url.clone())
            .allow_http_loopback(self.allow_http)
            .allow_private_addresses(self.allow_private_addresses)
            .timeout(self.timeout);
        if let Some(s) = &self.scopes_claim {
            check = check.scopes_claim(s.clone());
        }
        let check = check.build().map_err(|e| format!("url: {e}"))?;
        let auth = match &self.kind {
            Kind::Cookie(name) => LegacyAuthenticator::cookie(name, check.checker())
                .map_err(|e| format!("cookie: {e}"))?,
            Kind::Basic => LegacyAuthenticator::basic(check.checker()),
        };
        Ok(auth
            .timeout(self.timeout)
            .max_concurrent(self.max_concurrent)
            .positive_ttl(self.positive_ttl)
            .negative_ttl(self.negative_ttl))
    }
}

/// Checks `[legacy]`: an https URL (http only to loopback with
/// `allow_http = true`), exactly one of `cookie` and `basic = true`, a
/// timeout of 1 ms to a minute, TTLs up to a day, a cap of 1 to 10000.
pub fn check(
    f: &LegacyFile,
    allow_http: bool,
    allow_private_addresses: bool,
    at: &dyn Fn(Range<usize>, &str, &str) -> ConfigError,
) -> Result<Legacy, ConfigError> {
    crate::config::check_url(f.url.get_ref(), allow_http)
        .map_err(|p| at(f.url.span(), "legacy.url", &p))?;
    let kind = match (&f.cookie, f.basic) {
        (Some(c), false) => Kind::Cookie(c.get_ref().clone()),
        (None, true) => Kind::Basic,
        (Some(c), true) => {
            return Err(at(
                c.span(),
                "legacy.cookie",
                "give cookie = \"NAME\" or basic = true, not both",
            ));
        }
        (None, false) => {
            return Err(at(
                f.url.span(),
                "legacy",
                "name the credential: cookie = \"NAME\" or basic = true",
            ));
        }
    };
    let bounded = |v: &Option<Spanned<u64>>,
                   field: &str,
                   range: std::ops::RangeInclusive<u64>,
                   default: u64|
     -> Result<u64, ConfigError> {
        match v {
            Some(v) if !range.contains(v.get_ref()) => Err(at(
                v.span(),
                &format!("legacy.{field}"),
                &format!("must be {} to {}", range.start(), range.end()),
            )),
            Some(v) => Ok(*v.get_ref()),
            None => Ok(default),
        }
    };
    let ms = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
    let timeout = bounded(
        &f.timeout_ms,
        "timeout_ms",
        1..=ms(legacy::MAX_TIMEOUT),
        ms(legacy::DEFAULT_TIMEOUT),
    )?;
    let max_ttl = legacy::MAX_TTL.as_secs();
    let positive = bounded(
        &f.positive_ttl_seconds,
        "positive_ttl_seconds",
        0..=max_ttl,
        legacy::DEFAULT_POSITIVE_TTL.as_secs(),
    )?;
    let negative = bounded(
        &f.negative_ttl_seconds,
        "negative_ttl_seconds",
        0..=max_ttl,
        legacy::DEFAULT_NEGATIVE_TTL.as_secs(),
    )?;
    let cap = bounded(
        &f.max_concurrent,
        "max_concurrent",
        1..=10_000,
        legacy::DEFAULT_MAX_CONCURRENT as u64,
    )?;
    let out = Legacy {
        url: f.url.get_ref().clone(),
        kind,
        timeout: Duration::from_millis(timeout),
        positive_ttl: Duration::from_secs(positive),
        negative_ttl: Duration::from_secs(negative),
        max_concurrent: usize::try_from(cap).unwrap_or(1),
        scopes_claim: f.scopes_claim.clone(),
        allow_http,
        allow_private_addresses,
    };
    out.authenticator()
        .map_err(|e| at(f.url.span(), "legacy", &e))?;
    Ok(out)
}
