//! `[revocation]`: a denylist every validation checks, fed by an
//! authenticated admin endpoint (`POST /admin/revoke`) and by OpenID
//! Connect Back-Channel Logout (`POST /backchannel-logout`).
//!
//! The admin endpoint accepts `Authorization: Bearer <secret>` (the
//! contents of `admin_secret_file`, compared in constant time) or a bearer
//! JWT from the configured issuers carrying `admin_scope`. Its body is one
//! JSON object: `{"jti": "...", "expires_at": N}`, `{"sub": "...",
//! "before": N}` or `{"sid": "...", "before": N}` (times in seconds since
//! the epoch; `before` defaults to now, `expires_at` to now plus the
//! longest token lifetime), with an optional `"issuer"`.

use std::ops::Range;
use std::time::Duration;

use http::{HeaderValue, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Bytes, Incoming};
use serde::Deserialize;
use tokenwarden::authn::jwt::JwtAuthenticator;
use tokenwarden::authn::{Chain, RequestView};
use tokenwarden::logout::{BackchannelLogout, MAX_FORM_BYTES};
use tokenwarden::state::denylist::{Denylist, Revocation};
use tokenwarden::{Clock, KeySource, Requirements, SystemClock, Validator};
use toml::Spanned;

use crate::config::ConfigError;

/// The paths this module answers.
pub const PATHS: [&str; 2] = ["/admin/revoke", "/backchannel-logout"];

/// Shortest admin secret accepted, in bytes.
const MIN_SECRET: usize = 32;
/// Largest admin request body.
const MAX_ADMIN_BODY: usize = 4096;
/// Longest `jti`, `sub`, `sid` or `issuer` an admin may send.
const MAX_VALUE: usize = 1024;

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
}

/// The checked `[revocation]`.
#[derive(Clone)]
pub struct RevocationConfig {
    pub max_token_lifetime: Duration,
    /// The admin secret's bytes (read at load; never shown).
    admin_secret: Option<Vec<u8>>,
    pub admin_scope: Option<String>,
    /// `(issuer, client id)` of the back-channel logout receiver.
    pub logout: Option<(String, String)>,
    pub logout_max_age: Duration,
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
    })
}

/// The running revocation endpoints.
pub struct Revoker {
    pub denylist: Denylist,
    config: RevocationConfig,
    /// Admins by JWT: the sidecar's validator, requiring `admin_scope`.
    admin_chain: Option<Chain>,
    logout: Option<BackchannelLogout>,
}

impl RevocationConfig {
    /// The denylist, and the logout receiver over the issuer's own keys.
    pub fn start(
        &self,
        sources: &[(String, KeySource)],
        leeway: Duration,
    ) -> Result<Revoker, String> {
        let denylist = Denylist::builder()
            .max_token_lifetime(self.max_token_lifetime)
            .build()
            .map_err(|e| e.to_string())?;
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

/// Answers `PATHS`; 404 for an endpoint not configured.
pub async fn route(revoker: Option<&Revoker>, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let Some(revoker) = revoker else {
        return json(StatusCode::NOT_FOUND, r#"{"error":"not_found"}"#);
    };
    if req.method() != http::Method::POST {
        let mut r = json(StatusCode::METHOD_NOT_ALLOWED, "");
        r.headers_mut()
            .insert(http::header::ALLOW, HeaderValue::from_static("POST"));
        return r;
    }
    match req.uri().path() {
        "/admin/revoke" => admin(revoker, req).await,
        _ => match &revoker.logout {
            Some(receiver) => backchannel(receiver, req).await,
            None => json(StatusCode::NOT_FOUND, r#"{"error":"not_found"}"#),
        },
    }
}

async fn backchannel(
    receiver: &BackchannelLogout,
    req: Request<Incoming>,
) -> Response<Full<Bytes>> {
    let content_type = req
        .headers()
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let answer = match Limited::new(req.into_body(), MAX_FORM_BYTES)
        .collect()
        .await
    {
        Ok(body) => {
            receiver
                .handle_form(content_type.as_deref(), &body.to_bytes())
                .await
        }
        // Past the limit: handed an oversized body, refused the same way.
        Err(_) => {
            receiver
                .handle_form(content_type.as_deref(), &vec![0; MAX_FORM_BYTES + 1])
                .await
        }
    };
    match &answer.error {
        None => {
            tracing::info!(target: "tokenwarden::audit", decision = "revoke", result = "backchannel_logout", status = 200)
        }
        Some(e) => {
            tracing::info!(target: "tokenwarden::audit", decision = "refuse", result = "backchannel_logout", status = 400, kind = e.kind(), reason = %e)
        }
    }
    let status = StatusCode::from_u16(answer.status).unwrap_or(StatusCode::BAD_REQUEST);
    let mut r = Response::new(Full::new(Bytes::from(answer.body)));
    *r.status_mut() = status;
    for (name, value) in tokenwarden::logout::LogoutResponse::HEADERS {
        r.headers_mut()
            .insert(name, HeaderValue::from_static(value));
    }
    r
}

/// Constant-time equality over the secret's length: the time taken
/// depends on the expected secret's length only, never on where the given
/// one first differs.
fn secret_matches(expected: &[u8], given: &[u8]) -> bool {
    let mut diff = u8::from(expected.len() != given.len());
    for (i, e) in expected.iter().enumerate() {
        let g = given.get(i).copied().unwrap_or(0);
        diff |= e ^ g;
    }
    std::hint::black_box(diff) == 0
}

/// Who the admin is, or the refusal to answer with.
async fn admin_allowed(
    revoker: &Revoker,
    req: &Request<Incoming>,
) -> Result<&'static str, Response<Full<Bytes>>> {
    let bearer = req
        .headers()
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    if let (Some(secret), Some(given)) = (&revoker.config.admin_secret, bearer) {
        if secret_matches(secret, given.as_bytes()) {
            return Ok("admin_secret");
        }
    }
    if let Some(chain) = &revoker.admin_chain {
        let view = RequestView::new("POST", "/admin/revoke", req.headers());
        return match chain.authenticate(&view).await {
            Ok(_) => Ok("admin_jwt"),
            Err(refusal) => {
                let status =
                    StatusCode::from_u16(refusal.status()).unwrap_or(StatusCode::UNAUTHORIZED);
                let mut r = json(status, &token_error_json(refusal.kind()));
                if let Some(c) = refusal.challenges("tokenwarden-admin").into_iter().next() {
                    if let Ok(v) = HeaderValue::from_str(&c) {
                        r.headers_mut().insert(http::header::WWW_AUTHENTICATE, v);
                    }
                }
                Err(r)
            }
        };
    }
    let mut r = json(StatusCode::UNAUTHORIZED, &token_error_json("invalid_token"));
    r.headers_mut().insert(
        http::header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Bearer realm=\"tokenwarden-admin\", error=\"invalid_token\""),
    );
    Err(r)
}

/// The admin request's body.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AdminBody {
    jti: Option<String>,
    sub: Option<String>,
    sid: Option<String>,
    issuer: Option<String>,
    expires_at: Option<i64>,
    before: Option<i64>,
}

async fn admin(revoker: &Revoker, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let by = match admin_allowed(revoker, &req).await {
        Ok(by) => by,
        Err(refused) => {
            tracing::warn!(target: "tokenwarden::audit", decision = "refuse", result = "admin_revoke", status = refused.status().as_u16(), "admin request refused");
            return refused;
        }
    };
    let bad = |why: &str| json(StatusCode::BAD_REQUEST, &error_json(why));
    let Ok(body) = Limited::new(req.into_body(), MAX_ADMIN_BODY)
        .collect()
        .await
    else {
        return bad("body too large");
    };
    let Ok(b) = serde_json::from_slice::<AdminBody>(&body.to_bytes()) else {
        return bad("body must be a JSON object with jti, sub or sid");
    };
    let too_long = [&b.jti, &b.sub, &b.sid, &b.issuer]
        .into_iter()
        .flatten()
        .any(|s| s.is_empty() || s.len() > MAX_VALUE);
    if too_long {
        return bad("values must be 1 to 1024 bytes");
    }
    let now = SystemClock.now();
    let lifetime = revoker.config.max_token_lifetime.as_secs() as i64;
    let issuer = b.issuer;
    let revocation = match (b.jti, b.sub, b.sid) {
        (Some(jti), None, None) if b.before.is_none() => Revocation::Jti {
            issuer,
            jti,
            expires_at: b.expires_at.unwrap_or(now.saturating_add(lifetime)),
        },
        (None, Some(sub), None) if b.expires_at.is_none() => Revocation::Subject {
            issuer,
            sub,
            before: b.before.unwrap_or(now),
        },
        (None, None, Some(sid)) if b.expires_at.is_none() => Revocation::Session {
            issuer,
            sid,
            before: b.before.unwrap_or(now),
        },
        _ => return bad("exactly one of jti (with expires_at), sub or sid (with before)"),
    };
    let kind = match &revocation {
        Revocation::Jti { .. } => "jti",
        Revocation::Subject { .. } => "subject",
        _ => "session",
    };
    let changed = revoker.denylist.revoke(revocation);
    tracing::info!(target: "tokenwarden::audit", decision = "revoke", result = "admin_revoke", by = by, kind = kind, changed = changed);
    json(
        StatusCode::OK,
        &serde_json::json!({"revoked": kind, "changed": changed, "entries": revoker.denylist.len()})
            .to_string(),
    )
}

fn error_json(description: &str) -> String {
    serde_json::json!({"error": "invalid_request", "error_description": description}).to_string()
}

fn token_error_json(description: &str) -> String {
    serde_json::json!({"error": "invalid_token", "error_description": description}).to_string()
}

fn json(status: StatusCode, body: &str) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body.to_owned())));
    *r.status_mut() = status;
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r.headers_mut().insert(
        http::header::CACHE_CONTROL,
        HeaderValue::from_static("no-store"),
    );
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_secret_comparison_needs_every_byte() {
        let s = b"0123456789abcdef0123456789abcdef";
        assert!(secret_matches(s, s));
        assert!(!secret_matches(s, &s[..31]));
        assert!(!secret_matches(s, b"0123456789abcdef0123456789abcdeg"));
        assert!(!secret_matches(s, b"0123456789abcdef0123456789abcdef0"));
        assert!(!secret_matches(s, b""));
    }
}
