//! `[revocation]`: a denylist every validation checks, fed by an
//! authenticated admin endpoint (`POST /admin/revoke`) and by OpenID
//! Connect Back-Channel Logout (`POST /backchannel-logout`); the endpoints
//! are in `revocation_http.rs`.
//!
//! The admin endpoint accepts `Authorization: Bearer <secret>` (the
//! contents of `admin_secret_file`, compared in constant time) or a bearer
//! JWT from the configured issuers carrying `admin_scope`. Its body is one
//! JSON object: `{"jti": "...", "expires_at": N}`, `{"sub": "...",
//! "before": N}` or `{"sid": "...", "before": N}` (times in seconds since
//! the epoch; `before` defaults to now, `expires_at` to now plus the
//! longest token lifetime), with an optional `"issuer"`.

use std::ops::Range;
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use tokenwarden::authn::Chain;
use tokenwarden::authn::jwt::JwtAuthenticator;
use tokenwarden::logout::BackchannelLogout;
use tokenwarden::state::denylist::{Denylist, RevocationSource};
use tokenwarden::{KeySource, Requirements, Validator};
use toml::Spanned;

use crate::config::ConfigError;

/// Shortest admin secret accepted, in bytes.
const MIN_SECRET: usize = 32;

/// `[revocation]` as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RevocationFile {
    max_token_lifetime_seconds: Option<Spanned<u64>>,
    admin_secret_file: Option<Spanned<String>>,
    admin_scope: Option<Spanned<String>>,
    logout_client_id: Option<Spanned<String>>,
    logout_issuer: Option<Spanned<String>>,
    logout_max_age_seconds: Option<Spanned<u64>>,
    #[serde(default)]
    logout_revokes_subject: bool,
}

/// The checked `[revocation]`.
#[derive(Clone)]
pub struct RevocationConfig {
    pub max_token_lifetime: Duration,
    /// The admin secret's bytes (read at load; never shown).
    pub admin_secret: Option<Vec<u8>>,
    pub admin_scope: Option<String>,
    /// `(issuer, client id)` of the back-channel logout receiver.
    pub logout: Option<(String, String)>,
    pub logout_max_age: Duration,
    /// A logout naming a session and a subject revokes the subject too.
    pub logout_revokes_subject: bool,
}

impl std::fmt::Debug for RevocationConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RevocationConfig")
            .field("max_token_lifetime", &self.max_token_lifetime)
            .field(
                "admin_secret",
                &self.admin_secret.as_ref().map(|_| "<redacted>"),
            )
            .field("admin_scope", &self.admin_scope)
            .field("logout", &self.logout)
            .finish()
    }
}

/// Checks `[revocation]` against the configured issuers.
pub fn check(
    f: &RevocationFile,
    issuers: &[String],
    name: &str,
    at: &dyn Fn(Range<usize>, &str, &str) -> ConfigError,
) -> Result<RevocationConfig, ConfigError> {
    let seconds = |v: &Option<Spanned<u64>>, field: &str, default: u64, max: u64| match v {
        Some(s) if !(1..=max).contains(s.get_ref()) => {
            Err(at(s.span(), field, &format!("must be 1 to {max}")))
        }
        Some(s) => Ok(Duration::from_secs(*s.get_ref())),
        None => Ok(Duration::from_secs(default)),
    };
    let max_token_lifetime = seconds(
        &f.max_token_lifetime_seconds,
        "revocation.max_token_lifetime_seconds",
        86_400,
        365 * 86_400,
    )?;
    let logout_max_age = seconds(
        &f.logout_max_age_seconds,
        "revocation.logout_max_age_seconds",
        300,
        3600,
    )?;
    let admin_secret = match &f.admin_secret_file {
        Some(path) => {
            let bytes = std::fs::read(path.get_ref()).map_err(|e| {
                at(
                    path.span(),
                    "revocation.admin_secret_file",
                    &format!("cannot read: {e}"),
                )
            })?;
            // One trailing newline, as `echo` and editors leave it, is
            // not part of the secret.
            let mut secret = bytes;
            while matches!(secret.last(), Some(b'\n' | b'\r')) {
                secret.pop();
            }
            if secret.len() < MIN_SECRET || !secret.iter().all(|b| (0x21..=0x7e).contains(b)) {
                return Err(at(
                    path.span(),
                    "revocation.admin_secret_file",
                    &format!("the secret must be at least {MIN_SECRET} visible ASCII characters"),
                ));
            }
            Some(secret)
        }
        None => None,
    };
    let admin_scope = match &f.admin_scope {
        Some(s) if s.get_ref().is_empty() || s.get_ref().contains(' ') => {
            return Err(at(s.span(), "revocation.admin_scope", "must be one scope"));
        }
        Some(s) => Some(s.get_ref().clone()),
        None => None,
    };
    let logout = match (&f.logout_client_id, &f.logout_issuer) {
        (None, Some(i)) => {
            return Err(at(
                i.span(),
                "revocation.logout_issuer",
                "needs logout_client_id",
            ));
        }
        (None, None) => None,
        (Some(c), issuer) => {
            if c.get_ref().is_empty() {
                return Err(at(c.span(), "revocation.logout_client_id", "is empty"));
            }
            let iss = match issuer {
                Some(i) if issuers.contains(i.get_ref()) => i.get_ref().clone(),
                Some(i) => {
                    return Err(at(
                        i.span(),
                        "revocation.logout_issuer",
                        "is not one of the [[issuer]]s",
                    ));
                }
                None if issuers.len() == 1 => issuers[0].clone(),
                None => {
                    return Err(at(
                        c.span(),
                        "revocation.logout_issuer",
                        "missing: with several [[issuer]]s, name the one that sends logout tokens",
                    ));
                }
            };
            Some((iss, c.get_ref().clone()))
        }
    };
    if f.logout_revokes_subject && logout.is_none() {
        return Err(ConfigError(format!(
            "{name}: revocation.logout_revokes_subject: needs logout_client_id"
        )));
    }
    if admin_secret.is_none() && admin_scope.is_none() && logout.is_none() {
        return Err(ConfigError(format!(
            "{name}: revocation: nothing feeds the denylist: set admin_secret_file, admin_scope or logout_client_id"
        )));
    }
    Ok(RevocationConfig {
        max_token_lifetime,
        admin_secret,
        admin_scope,
        logout,
        logout_max_age,
        logout_revokes_subject: f.logout_revokes_subject,
    })
}

/// The running revocation endpoints.
pub struct Revoker {
    pub denylist: Denylist,
    pub config: RevocationConfig,
    /// Admins by JWT: the sidecar's validator, requiring `admin_scope`.
    pub admin_chain: Option<Chain>,
    pub logout: Option<BackchannelLogout>,
}

impl RevocationConfig {
    /// The denylist, and the logout receiver over the issuer's own keys.
    /// With `shared` (`[redis]`), the denylist is that source's mirror.
    pub fn start(
        &self,
        sources: &[(String, KeySource)],
        leeway: Duration,
        shared: Option<Arc<dyn RevocationSource>>,
    ) -> Result<Revoker, String> {
        let mut denylist = Denylist::builder().max_token_lifetime(self.max_token_lifetime);
        if let Some(source) = shared {
            denylist = denylist.source(source);
        }
        let denylist = denylist.build().map_err(|e| e.to_string())?;
        let logout = match &self.logout {
            Some((iss, client)) => {
                let keys = sources
                    .iter()
                    .find(|(i, _)| i == iss)
                    .map(|(_, k)| k.clone())
                    .ok_or_else(|| format!("revocation: no keys for {iss}"))?;
                Some(
                    BackchannelLogout::builder()
                        .issuer(iss.clone())
                        .client_id(client.clone())
                        .keys(keys)
                        .denylist(denylist.clone())
                        .leeway(leeway)
                        .max_age(self.logout_max_age)
                        .revoke_subject_with_session(self.logout_revokes_subject)
                        .build()
                        .map_err(|e| format!("revocation: {e}"))?,
                )
            }
            None => None,
        };
        Ok(Revoker {
            denylist,
            config: self.clone(),
            admin_chain: None,
            logout,
        })
    }
}

impl Revoker {
    /// Admins by JWT judged by `validator` (the sidecar's own, denylist
    /// included), when `admin_scope` is set.
    pub fn with_validator(mut self, validator: &Validator) -> Revoker {
        self.admin_chain = self.config.admin_scope.as_ref().map(|scope| {
            Chain::new()
                .jwt(JwtAuthenticator::new(validator.clone()))
                .require(Requirements::new().scopes_all([scope.clone()]))
        });
        self
    }
}
