//! `[redis]` as written and checked (kept apart from the connection code in
//! `shared_state.rs`, so the config fuzzer compiles it alone).

use std::ops::Range;
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use crate::config::ConfigError;

/// Default bound on each Redis command (the library's
/// `state::redis::DEFAULT_TIMEOUT`).
const DEFAULT_TIMEOUT: Duration = Duration::from_millis(200);

/// Longest `command_timeout_ms` accepted: a request never waits on Redis
/// (only the background tasks do), but a longer bound only delays failure
/// detection.
const MAX_TIMEOUT_MS: u64 = 5_000;

/// `[redis]` as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedisFile {
    url: Spanned<String>,
    key_prefix: Option<Spanned<String>>,
    command_timeout_ms: Option<Spanned<u64>>,
    readiness: Option<Spanned<String>>,
}

/// When `/readyz` counts the shared list as ready.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Readiness {
    /// Once the list in Redis has been loaded; an outage later keeps the
    /// mirror serving, and the instance ready.
    Loaded,
    /// Loaded, and only while the pub/sub link is up.
    Connected,
}

/// The checked `[redis]`.
#[derive(Clone)]
pub struct RedisConfig {
    /// May carry a password: never shown.
    pub url: String,
    pub prefix: String,
    pub timeout: Duration,
    pub readiness: Readiness,
}

impl std::fmt::Debug for RedisConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisConfig")
            .field("url", &"<redacted>")
            .field("prefix", &self.prefix)
            .field("timeout", &self.timeout)
            .field("readiness", &self.readiness)
            .finish()
    }
}

/// Checks `[redis]`.
pub fn check(
    f: &RedisFile,
    at: &dyn Fn(Range<usize>, &str, &str) -> ConfigError,
) -> Result<RedisConfig, ConfigError> {
    let url = f.url.get_ref();
    // The redis crate's URL forms without TLS (this build has none).
    if !(url.starts_with("redis://") || url.starts_with("redis+unix://"))
        || url.len() > 2048
        || url.chars().any(char::is_control)
    {
        // The URL itself is not echoed: it may carry a password.
        return Err(at(
            f.url.span(),
            "redis.url",
            "must be redis://host:port[/db] or redis+unix:///path",
        ));
    }
    let prefix = match &f.key_prefix {
        Some(p) => {
            let s = p.get_ref();
            if s.is_empty() || s.len() > 128 || !s.bytes().all(|b| (0x21..=0x7e).contains(&b)) {
                return Err(at(
                    p.span(),
                    "redis.key_prefix",
                    "must be 1 to 128 visible ASCII characters",
                ));
            }
            s.clone()
        }
        None => "tokenwarden".to_owned(),
    };
    let timeout = match &f.command_timeout_ms {
        Some(t) if !(10..=MAX_TIMEOUT_MS).contains(t.get_ref()) => {
            return Err(at(
                t.span(),
                "redis.command_timeout_ms",
                &format!("must be 10 to {MAX_TIMEOUT_MS}"),
            ));
        }
        Some(t) => Duration::from_millis(*t.get_ref()),
        None => DEFAULT_TIMEOUT,
    };
    let readiness = match &f.readiness {
        None => Readiness::Loaded,
        Some(r) => match r.get_ref().as_str() {
            "loaded" => Readiness::Loaded,
            "connected" => Readiness::Connected,
            _ => {
                return Err(at(
                    r.span(),
                    "redis.readiness",
                    "must be \"loaded\" or \"connected\"",
                ));
            }
        },
    };
    Ok(RedisConfig {
        url: url.clone(),
        prefix,
        timeout,
        readiness,
    })
}
