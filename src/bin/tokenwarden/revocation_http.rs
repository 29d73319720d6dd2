//! The `[revocation]` endpoints: `POST /admin/revoke` and
//! `POST /backchannel-logout` (see `revocation.rs` for the settings).

use http::{HeaderValue, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Bytes, Incoming};
use serde::Deserialize;
use tokenwarden::authn::RequestView;
use tokenwarden::logout::{BackchannelLogout, MAX_FORM_BYTES};
use tokenwarden::state::denylist::Revocation;
use tokenwarden::{Clock, SystemClock};

use crate::revocation::Revoker;

/// The paths this module answers.
pub const PATHS: [&str; 2] = ["/admin/revoke", "/backchannel-logout"];

/// Largest admin request body.
const MAX_ADMIN_BODY: usize = 4096;
/// Longest `jti`, `sub`, `sid` or `issuer` an admin may send.
const MAX_VALUE: usize = 1024;

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
