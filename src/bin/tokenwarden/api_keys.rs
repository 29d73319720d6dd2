//! `[api_keys]`: API keys beside bearer JWTs, from a key file the sidecar
//! reloads when it changes (a bad file keeps the last good keys).

use std::ops::Range;

use serde::Deserialize;
use tokenwarden::authn::api_key::{ApiKeyAuthenticator, FileStore};
use toml::Spanned;

use crate::config::ConfigError;

/// `[api_keys]` as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiKeysFile {
    file: Spanned<String>,
    header: Option<Spanned<String>>,
    reload_seconds: Option<Spanned<u64>>,
}

/// The checked `[api_keys]`.
#[derive(Debug, Clone)]
pub struct ApiKeys {
    /// The key file (`tokenwarden apikey new` prints its entries).
    pub file: String,
    /// A header of its own for the key (`X-Api-Key`); without it, keys
    /// come in `Authorization: ApiKey …` only.
    pub header: Option<String>,
    /// How often (at most) lookups check the file for changes.
    pub reload: std::time::Duration,
}

impl ApiKeys {
    /// The authenticator: the file opened now, which must be good.
    pub fn authenticator(&self) -> Result<ApiKeyAuthenticator, String> {
        let store =
            FileStore::open(&self.file).map_err(|e| format!("api_keys.file {}: {e}", self.file))?;
        let auth = ApiKeyAuthenticator::file(store.poll_every(self.reload));
        match &self.header {
            Some(h) => auth
                .header(h)
                .map_err(|e| format!("api_keys.header {h:?}: {e}")),
            None => Ok(auth),
        }
    }
}

/// Checks `[api_keys]` by building its authenticator: a missing or bad key
/// file, or a bad header name, is refused at load (and by `--check`).
pub fn check(
    f: &ApiKeysFile,
    at: &dyn Fn(Range<usize>, &str, &str) -> ConfigError,
) -> Result<ApiKeys, ConfigError> {
    let reload = match &f.reload_seconds {
        Some(r) if !(1..=3600).contains(r.get_ref()) => {
            return Err(at(r.span(), "api_keys.reload_seconds", "must be 1 to 3600"));
        }
        Some(r) => *r.get_ref(),
        None => 5,
    };
    let keys = ApiKeys {
        file: f.file.get_ref().clone(),
        header: f.header.as_ref().map(|h| h.get_ref().clone()),
        reload: std::time::Duration::from_secs(reload),
    };
    if let Err(e) = keys.authenticator() {
        let span = match (&f.header, e.starts_with("api_keys.header")) {
            (Some(h), true) => h.span(),
            _ => f.file.span(),
        };
        return Err(at(span, "api_keys", &e));
    }
    Ok(keys)
}
