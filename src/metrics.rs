//! Metrics from the library (feature `metrics`), through the
//! [`metrics`](https://docs.rs/metrics) facade: install any recorder
//! (Prometheus, StatsD, OpenTelemetry, …) and these counters appear. Without
//! the feature, the calls are empty functions the compiler removes.
//!
//! | Name | Labels | Counts |
//! |------|--------|--------|
//! | `tokenwarden_verdicts_total` | `verdict`: `ok`, `anonymous`, or the refusal's stable reason (an [`ErrorKind`](crate::ErrorKind) name such as `expired`, or `missing_token`, `invalid_request`, `insufficient_scope`, `not_configured`) | each request a [`BearerAuthLayer`](crate::middleware::BearerAuthLayer), the actix middleware or an extractor decided |
//! | `tokenwarden_cache_hits_total` | — | validations answered by the verified-token cache (feature `cache`) |
//! | `tokenwarden_cache_misses_total` | — | validations of a token the cache did not hold |
//! | `tokenwarden_key_fetches_total` | `host`: the key source's host (and port) | key set fetches attempted by a [`RemoteKeySet`](crate::RemoteKeySet) (feature `remote`) |
//! | `tokenwarden_key_fetch_failures_total` | `host` | fetches (or discoveries) that failed |
//! | `tokenwarden_api_key_requests_total` | `key_id`: the key's id, or `unknown` | requests carrying an API key (feature `api-keys`) |
//! | `tokenwarden_api_key_refusals_total` | `key_id`, `reason`: `wrong_secret`, `disabled`, `expired`, `unknown_key`, `malformed_key`, `wrong_environment` | those refused |
//! | `tokenwarden_redis_errors_total` | `op`: `revocation_write`, `revocation_follow`, `revocation_resync`, `replay`, `cache_get`, `cache_put`, `cache_value`, `queue_full`, `bad_message` | Redis commands that failed or timed out (feature `redis`) |
//!
//! Labels never carry a token, an API key's secret, a URL path or query, or
//! userinfo: only the host of the key source, an API key's id, and fixed
//! names.
//!
//! **Cardinality.** `key_id` is an id found in the key store, never the
//! client's text: a key whose id the store does not know (a guess, a typo, a
//! flood of made-up ids) counts under `key_id="unknown"`. The API-key series
//! are so at most two per stored key (plus one per refusal reason), as many
//! as the keys you issue: with tens of thousands of keys, drop the label in
//! your recorder or exporter.
//!
//! The `tokenwarden` sidecar keeps its own Prometheus endpoint; these
//! counters are for applications that embed the library.

/// Requests decided by a layer, by `verdict`.
pub const VERDICTS: &str = "tokenwarden_verdicts_total";
/// Validations answered from the verified-token cache.
pub const CACHE_HITS: &str = "tokenwarden_cache_hits_total";
/// Validations of tokens the cache did not hold.
pub const CACHE_MISSES: &str = "tokenwarden_cache_misses_total";
/// Key set fetches attempted, by `host`.
pub const KEY_FETCHES: &str = "tokenwarden_key_fetches_total";
/// Key set fetches that failed, by `host`.
pub const KEY_FETCH_FAILURES: &str = "tokenwarden_key_fetch_failures_total";
/// Requests carrying an API key, by `key_id` (a stored key's id, or
/// `unknown`).
pub const API_KEY_REQUESTS: &str = "tokenwarden_api_key_requests_total";
/// Requests refused for their API key, by `key_id` and `reason`.
pub const API_KEY_REFUSALS: &str = "tokenwarden_api_key_refusals_total";
/// Redis commands that failed or timed out, by `op` (feature `redis`).
pub const REDIS_ERRORS: &str = "tokenwarden_redis_errors_total";

#[cfg(feature = "metrics")]
#[allow(dead_code)] // not every feature set reaches every counter
mod imp {
    use std::fmt::Display;

    pub(crate) fn verdict(label: &'static str) {
        metrics::counter!(super::VERDICTS, "verdict" => label).increment(1);
    }

    pub(crate) fn cache_hit() {
        metrics::counter!(super::CACHE_HITS).increment(1);
    }

    pub(crate) fn cache_miss() {
        metrics::counter!(super::CACHE_MISSES).increment(1);
    }

    /// `source`: the key source's URL as logs show it (see [`host`]).
    pub(crate) fn key_fetch(source: &dyn Display) {
        metrics::counter!(super::KEY_FETCHES, "host" => host(source)).increment(1);
    }

    pub(crate) fn redis_error(op: &'static str) {
        metrics::counter!(super::REDIS_ERRORS, "op" => op).increment(1);
    }

    pub(crate) fn key_fetch_failure(source: &dyn Display) {
        metrics::counter!(super::KEY_FETCH_FAILURES, "host" => host(source)).increment(1);
    }

    /// `key_id`: a stored key's id, or `unknown` (never the client's text
    /// for a key the store does not hold: see the module's cardinality note).
    pub(crate) fn api_key_request(key_id: &str) {
        metrics::counter!(super::API_KEY_REQUESTS, "key_id" => key_id.to_owned()).increment(1);
    }

    pub(crate) fn api_key_refusal(key_id: &str, reason: &'static str) {
        metrics::counter!(super::API_KEY_REFUSALS, "key_id" => key_id.to_owned(), "reason" => reason)
            .increment(1);
    }

    /// The host (and port, when not the scheme's) of a URL: no userinfo,
    /// path or query can reach a label.
    fn host(source: &dyn Display) -> String {
        let text = source.to_string();
        let after_scheme = text.split_once("://").map_or(&text[..], |(_, rest)| rest);
        let authority = after_scheme
            .split(['/', '?', '#'])
            .next()
            .unwrap_or_default();
        // Userinfo never reaches a label, even if a caller's URL had one.
        let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
        if host.is_empty() {
            "unknown".to_owned()
        } else {
            host.to_owned()
        }
    }

    #[cfg(test)]
    mod tests {
        #[test]
        fn host_labels_carry_no_credentials_path_or_query() {
            for (url, want) in [
                ("https://idp.example.com/jwks?key=SECRET", "idp.example.com"),
                (
                    "https://user:SECRET@idp.example.com:8443/x",
                    "idp.example.com:8443",
                ),
                ("http://127.0.0.1:9/jwks", "127.0.0.1:9"),
                ("not a url", "not a url"),
                ("", "unknown"),
            ] {
                assert_eq!(super::host(&url), want, "{url}");
            }
        }
    }
}

#[cfg(not(feature = "metrics"))]
#[allow(dead_code)] // not every feature set reaches every counter
mod imp {
    #[inline(always)]
    pub(crate) fn verdict(_label: &'static str) {}
    #[inline(always)]
    pub(crate) fn cache_hit() {}
    #[inline(always)]
    pub(crate) fn cache_miss() {}
    #[inline(always)]
    pub(crate) fn key_fetch(_source: &dyn std::fmt::Display) {}
    #[inline(always)]
    pub(crate) fn key_fetch_failure(_source: &dyn std::fmt::Display) {}
    #[inline(always)]
    pub(crate) fn api_key_request(_key_id: &str) {}
    #[inline(always)]
    pub(crate) fn api_key_refusal(_key_id: &str, _reason: &'static str) {}
    pub(crate) fn redis_error(_op: &'static str) {}
}

#[allow(unused_imports)] // not every feature set reaches every counter
pub(crate) use imp::*;
