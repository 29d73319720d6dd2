//! The test issuer's RFC 8693 token exchange grant: a registered client
//! trades a token this issuer issued for one meant for another audience,
//! with the same or fewer scopes, recording itself as the actor.

use std::collections::BTreeMap;
use std::sync::Arc;

use hyper::StatusCode;
use serde_json::{Map, Value, json};

use super::Shared;
use crate::authn::actor;
use crate::clock::Clock;
use crate::keys::KeySet;
use crate::validator::Validator;

/// The token exchange grant type (RFC 8693 §2.1).
pub const GRANT_TYPE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
/// RFC 8693 §3: an OAuth 2.0 access token.
const ACCESS_TOKEN: &str = "urn:ietf:params:oauth:token-type:access_token";
/// RFC 8693 §3 (RFC 7519 §9): a JWT.
const JWT: &str = "urn:ietf:params:oauth:token-type:jwt";

/// The issuer's clock, for the validator of subject tokens.
#[derive(Debug)]
struct IssuerClock(Arc<dyn Clock>);

impl Clock for IssuerClock {
    fn now(&self) -> i64 {
        self.0.now()
    }
}

fn error(status: StatusCode, code: &str, description: &str) -> (StatusCode, String) {
    (
        status,
        json!({"error": code, "error_description": description}).to_string(),
    )
}

/// RFC 8693 §2.2.2: a subject token that is invalid or unacceptable by
/// policy is `invalid_request`.
fn invalid(description: &str) -> (StatusCode, String) {
    error(StatusCode::BAD_REQUEST, "invalid_request", description)
}

/// The scope words of a claim value (a space-separated string).
fn words(v: Option<&Value>) -> Vec<&str> {
    v.and_then(Value::as_str)
        .map(|s| s.split(' ').filter(|w| !w.is_empty()).collect())
        .unwrap_or_default()
}

impl Shared {
    /// RFC 8693 §2: the client `client_id` (already authenticated) asks for
    /// a token for the subject of `subject_token`.
    pub(super) fn exchange(
        &self,
        issuer: &str,
        client_id: &str,
        form: &BTreeMap<String, String>,
    ) -> (StatusCode, String) {
        let Some(client) = self.clients.get(client_id) else {
            return error(StatusCode::UNAUTHORIZED, "invalid_client", "unknown client");
        };
        let param = |name: &str| form.get(name).map(String::as_str);
        let Some(subject_token) = param("subject_token") else {
            return invalid("subject_token is required");
        };
        match param("subject_token_type") {
            Some(ACCESS_TOKEN | JWT) => {}
            Some(_) => return invalid("subject_token_type not supported"),
            None => return invalid("subject_token_type is required"),
        }
        if param("actor_token").is_some() {
            return invalid("actor_token not supported: the client authenticates as the actor");
        }
        if param("requested_token_type").is_some_and(|t| t != ACCESS_TOKEN) {
            return invalid("only access tokens are issued");
        }
        // The subject token: one this issuer signed, unexpired.
        let Ok(keys) = KeySet::from_jwks(self.jwks_json().as_bytes()) else {
            return error(StatusCode::INTERNAL_SERVER_ERROR, "server_error", "keys");
        };
        let validator = Validator::builder()
            .issuer(issuer)
            // The audience is checked below against the acting client.
            .danger_accept_any_audience()
            .keys(keys)
            .clock(IssuerClock(self.clock.clone()))
            .build();
        let Ok(validator) = validator else {
            return error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "server_error",
                "validator",
            );
        };
        let Ok(subject) = validator.validate_json(subject_token) else {
            return invalid("subject_token is not a valid token of this issuer");
        };
        let subject: Map<String, Value> = subject.claims;
        let Some(sub) = subject.get("sub").and_then(Value::as_str) else {
            return invalid("subject_token has no sub");
        };
        // Only a token meant for the client can be exchanged by it: a
        // service cannot trade a token it was not the audience of.
        let aud_ok = match subject.get("aud") {
            Some(Value::String(a)) => a == client_id || *a == client.audience,
            Some(Value::Array(a)) => a
                .iter()
                .filter_map(Value::as_str)
                .any(|a| a == client_id || a == client.audience),
            _ => false,
        };
        if !aud_ok {
            return invalid("subject_token is not meant for this client");
        }
        // RFC 8693 §4.4: when the subject token says who may act for its
        // subject, only that party may.
        if let Some(may_act) = subject.get("may_act") {
            if !actor::may_act_allows(may_act, client_id, Some(issuer)) {
                return invalid("the client may not act for this subject (may_act)");
            }
        }
        // RFC 8693 §4.1: the chain so far must be readable to extend it.
        let prior = subject.get("act");
        if actor::walk(prior, |_, _| {}).is_err() {
            return invalid("subject_token has a malformed act claim");
        }
        // Scopes only narrow (RFC 6749 §5.2 invalid_scope otherwise).
        let held = words(subject.get("scope"));
        let granted: Vec<&str> = match param("scope") {
            Some(asked) => {
                let asked: Vec<&str> = asked.split(' ').filter(|s| !s.is_empty()).collect();
                if asked.iter().any(|s| !held.contains(s)) {
                    return error(
                        StatusCode::BAD_REQUEST,
                        "invalid_scope",
                        "a scope the subject token does not grant",
                    );
                }
                asked
            }
            None => held,
        };
        let audience = param("audience")
            .or_else(|| param("resource"))
            .unwrap_or(client.audience.as_str());
        let now = self.clock.now();
        // Never outlive the token exchanged.
        let exp = subject
            .get("exp")
            .and_then(Value::as_i64)
            .map_or(now + self.lifetime, |e| e.min(now + self.lifetime));
        let mut act = Map::new();
        act.insert("sub".into(), json!(client_id));
        if let Some(prior) = prior {
            act.insert("act".into(), prior.clone());
        }
        let scope = granted.join(" ");
        let n = self.token.load(std::sync::atomic::Ordering::SeqCst);
        let mut claims = json!({
            "iss": issuer,
            "sub": sub,
            "aud": audience,
            "client_id": client_id,
            "scope": scope,
            "act": act,
            "iat": now,
            "exp": exp,
            "jti": format!("{client_id}-x{n}"),
        });
        // The session carries over, so that the session's back-channel
        // logout (a `sid` revocation) reaches the exchanged token too.
        if let (Some(sid), Some(c)) = (
            subject.get("sid").filter(|v| v.is_string()),
            claims.as_object_mut(),
        ) {
            c.insert("sid".into(), sid.clone());
        }
        let key = self.signing_key();
        let header = json!({"alg": key.alg().as_str(), "kid": key.kid(), "typ": "at+jwt"});
        let token = key.token_with_header(&header, &claims);
        // RFC 8693 §2.2.1.
        let body = json!({
            "access_token": token,
            "issued_token_type": ACCESS_TOKEN,
            "token_type": "Bearer",
            "expires_in": (exp - now).max(0),
            "scope": scope,
        });
        (StatusCode::OK, body.to_string())
    }
}
