//! RFC 7662 §2.2: from the endpoint's answer to a [`Principal`] or a
//! refusal, with the claims rules the JWT path applies.

use serde_json::{Map, Value};

use crate::authn::{Principal, Refusal, Scheme};
use crate::claims::{Iss, Time, TimeRules, check_audience, parse_view};
use crate::error::Error;

/// Most scopes read from one answer, as for a JWT's `scope`: a grant
/// listed after these is not seen, so checks fail closed.
const MAX_SCOPES: usize = 256;

/// What the answer said of the token.
#[derive(Debug, Clone)]
pub(super) enum Judged {
    /// Active, and every rule passed: the principal, and the token's `exp`.
    Active(Principal, Option<i64>),
    /// Not active, or a rule failed: 401 `invalid_token`.
    Refused(Refusal),
}

/// The rules an answer must pass.
#[derive(Debug, Clone)]
pub(super) struct Rules {
    /// `iss` must be this, when set.
    pub(super) issuer: Option<Box<str>>,
    /// `aud` must name one of these, when any.
    pub(super) audiences: Vec<Box<str>>,
    pub(super) time: TimeRules,
    /// `token_type`, when present, must be one of these (ASCII case
    /// ignored: RFC 6749 §5.1 token types are case-insensitive).
    pub(super) token_types: Vec<Box<str>>,
    /// The principal's authenticator name.
    pub(super) name: &'static str,
    /// Without `sub`, the subject is `username:<username>`, else
    /// `client_id:<client_id>`; `false`: such an answer is refused.
    pub(super) subject_fallback: bool,
}

impl Rules {
    /// Judges a JSON answer (RFC 7662 §2.2). `Err`: the answer is not a
    /// JSON object (or repeats a member): the endpoint is broken, and no
    /// verdict on the token can be drawn from it.
    pub(super) fn judge_json(&self, body: &[u8], now: i64) -> Result<Judged, &'static str> {
        // The strict reading the JWT path gives a payload: one object, no
        // member twice (a second `"active":true` must not win), UTF-8.
        let view = parse_view(body, &[]).map_err(|_| "the answer is not one JSON object")?;
        let map: Map<String, Value> =
            serde_json::from_slice(body).map_err(|_| "the answer is not one JSON object")?;
        Ok(self.judge(map, &view, now))
    }

    /// Judges an answer already parsed (the `token_introspection` object of
    /// an RFC 9701 response): its registered members are read as a view.
    pub(super) fn judge_object(&self, map: Map<String, Value>, now: i64) -> Judged {
        let text = Value::Object(map).to_string();
        match self.judge_json(text.as_bytes(), now) {
            Ok(j) => j,
            // A `serde_json::Map` always writes one object without repeats.
            Err(_) => Judged::Refused(refused("malformed", "the answer is malformed")),
        }
    }

    fn judge(&self, map: Map<String, Value>, view: &crate::claims::View<'_>, now: i64) -> Judged {
        // RFC 7662 §2.2: `active` is REQUIRED; anything but JSON `true`
        // (false, absent, "true", 1) is an inactive token.
        if map.get("active") != Some(&Value::Bool(true)) {
            return Judged::Refused(refused("inactive", "the token is not active"));
        }
        // exp, nbf, iat as for a JWT, with the same leeway.
        if let Err(e) = self.time.check(view, now) {
            return Judged::Refused(Refusal::from_error(Scheme::Bearer, &e));
        }
        if let Some(expected) = &self.issuer {
            let e = match &view.iss {
                Iss::Is(found) if **found == **expected => None,
                Iss::Is(found) => Some(Error::invalid_issuer(found, std::iter::once(&**expected))),
                Iss::Absent => Some(Error::MissingClaim {
                    claim: "iss".into(),
                }),
                Iss::NotString => Some(Error::invalid_claim("iss", "must be a string")),
            };
            if let Some(e) = e {
                return Judged::Refused(Refusal::from_error(Scheme::Bearer, &e));
            }
        }
        if !self.audiences.is_empty() {
            if let Err(e) = check_audience(&view.aud, &self.audiences) {
                return Judged::Refused(Refusal::from_error(Scheme::Bearer, &e));
            }
        }
        match map.get("token_type") {
            None => {}
            Some(Value::String(t))
                if self.token_types.iter().any(|a| a.eq_ignore_ascii_case(t)) => {}
            // A refresh token, or a sender-constrained (`DPoP`) one
            // presented as a bearer token (RFC 9449 §7.1).
            Some(_) => {
                return Judged::Refused(refused(
                    "wrong_token_type",
                    "the token is not a bearer access token",
                ));
            }
        }
        let Some(subject) = self.subject(&map) else {
            return Judged::Refused(refused("missing_claim", "the answer has no sub"));
        };
        let scopes = scopes(map.get("scope"));
        let exp = match view.exp {
            Time::At(exp) => Some(exp as i64),
            _ => None,
        };
        let p = Principal::new(subject, self.name)
            .with_scopes(scopes)
            .with_expiry(exp)
            .with_claims(map);
        Judged::Active(p, exp)
    }
}

impl Rules {
    /// The principal's subject: `sub` (RFC 7662 §2.2). A client credentials
    /// token may carry only `username` or `client_id`; taken only when
    /// configured, and then named by the claim it came from
    /// (`client_id:orders-worker`), so a client's id never passes for a
    /// user's `sub` (or a username for a client) where the service, or an
    /// internal token's upstream, keys anything by subject.
    fn subject(&self, map: &Map<String, Value>) -> Option<String> {
        match map.get("sub") {
            Some(Value::String(s)) if !s.is_empty() => return Some(s.clone()),
            // A `sub` that is there but not a string is refused, never
            // replaced.
            Some(Value::String(_)) | None => {}
            Some(_) => return None,
        }
        if !self.subject_fallback {
            return None;
        }
        ["username", "client_id"].iter().find_map(|n| {
            map.get(*n)
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
                .map(|s| format!("{n}:{s}"))
        })
    }
}

/// RFC 7662 §2.2 `scope`: a space-separated string; an array of strings
/// is read too, as for a JWT.
fn scopes(v: Option<&Value>) -> Vec<String> {
    match v {
        Some(Value::String(s)) => s
            .split(' ')
            .filter(|s| !s.is_empty())
            .take(MAX_SCOPES)
            .map(Into::into)
            .collect(),
        Some(Value::Array(a)) => a
            .iter()
            .take(MAX_SCOPES)
            .filter_map(Value::as_str)
            .map(Into::into)
            .collect(),
        _ => Vec::new(),
    }
}

/// 401 `invalid_token` with a stable kind.
pub(super) fn refused(kind: &'static str, description: &'static str) -> Refusal {
    Refusal::invalid_token(Scheme::Bearer, kind, description)
}

/// The `introspection_answer` fuzz target's entry: `body` judged as an
/// endpoint's answer by rules expecting issuer `https://idp.test` and
/// audience `api`, at `now`. `Ok(Ok((subject, exp)))` for an active token,
/// `Ok(Err(kind))` for a refusal, `Err` for a broken answer.
#[cfg(fuzzing)]
pub(crate) fn fuzz_judge(
    body: &[u8],
    now: i64,
) -> Result<Result<(String, Option<i64>), &'static str>, &'static str> {
    let rules = Rules {
        issuer: Some("https://idp.test".into()),
        audiences: vec!["api".into()],
        time: TimeRules {
            leeway: 0,
            require_exp: false,
            max_age: None,
        },
        token_types: vec!["Bearer".into()],
        name: "introspection",
        subject_fallback: true,
    };
    Ok(match rules.judge_json(body, now)? {
        Judged::Active(p, exp) => Ok((p.subject().to_owned(), exp)),
        Judged::Refused(r) => Err(r.kind()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules() -> Rules {
        Rules {
            issuer: Some("https://idp.test".into()),
            audiences: vec!["api".into()],
            time: TimeRules {
                leeway: 0,
                require_exp: false,
                max_age: None,
            },
            token_types: vec!["Bearer".into()],
            name: "introspection",
            subject_fallback: false,
        }
    }

    fn kind(body: &str) -> &'static str {
        match rules().judge_json(body.as_bytes(), 1000) {
            Ok(Judged::Active(..)) => "ok",
            Ok(Judged::Refused(r)) => r.kind(),
            Err(_) => "broken",
        }
    }

    #[test]
    fn active_must_be_json_true() {
        let ok = r#"{"active":true,"sub":"a","iss":"https://idp.test","aud":"api"}"#;
        assert_eq!(kind(ok), "ok");
        assert_eq!(kind(r#"{"active":false}"#), "inactive");
        assert_eq!(kind(r#"{"sub":"a"}"#), "inactive");
        assert_eq!(
            kind(r#"{"active":"true","sub":"a","iss":"https://idp.test","aud":"api"}"#),
            "inactive"
        );
        // A second `active` must not overrule the first: refused outright.
        assert_eq!(
            kind(r#"{"active":false,"active":true,"sub":"a"}"#),
            "broken"
        );
        assert_eq!(kind("<html>"), "broken");
        assert_eq!(kind("[]"), "broken");
    }

    #[test]
    fn claims_rules_apply() {
        let base = r#""active":true,"sub":"a","iss":"https://idp.test","aud":"api""#;
        assert_eq!(kind(&format!("{{{base},\"exp\":1000}}")), "expired");
        assert_eq!(kind(&format!("{{{base},\"nbf\":2000}}")), "not_yet_valid");
        assert_eq!(
            kind(r#"{"active":true,"sub":"a","iss":"https://evil","aud":"api"}"#),
            "invalid_issuer"
        );
        assert_eq!(
            kind(r#"{"active":true,"sub":"a","iss":"https://idp.test","aud":"other"}"#),
            "invalid_audience"
        );
        assert_eq!(
            kind(r#"{"active":true,"sub":"a","iss":"https://idp.test"}"#),
            "missing_claim"
        );
        assert_eq!(
            kind(&format!("{{{base},\"token_type\":\"refresh_token\"}}")),
            "wrong_token_type"
        );
        assert_eq!(kind(&format!("{{{base},\"token_type\":\"bearer\"}}")), "ok");
        assert_eq!(
            kind(r#"{"active":true,"iss":"https://idp.test","aud":"api"}"#),
            "missing_claim"
        );
    }

    #[test]
    fn without_sub_the_subject_is_named_by_its_claim_only_when_configured() {
        let base = r#""active":true,"iss":"https://idp.test","aud":"api""#;
        let subject = |r: &Rules, members: &str| match r
            .judge_json(format!("{{{base},{members}}}").as_bytes(), 1000)
        {
            Ok(Judged::Active(p, _)) => p.subject().to_owned(),
            Ok(Judged::Refused(r)) => r.kind().to_owned(),
            Err(_) => "broken".into(),
        };
        let off = rules();
        let on = Rules {
            subject_fallback: true,
            ..rules()
        };
        // A client whose id is a user's `sub` never passes for that user.
        assert_eq!(subject(&off, r#""client_id":"alice""#), "missing_claim");
        assert_eq!(subject(&on, r#""client_id":"alice""#), "client_id:alice");
        assert_eq!(
            subject(&on, r#""username":"alice","client_id":"svc""#),
            "username:alice"
        );
        assert_eq!(subject(&on, r#""sub":"alice","client_id":"svc""#), "alice");
        assert_eq!(
            subject(&on, r#""sub":"","client_id":"svc""#),
            "client_id:svc"
        );
        assert_eq!(
            subject(&on, r#""sub":7,"client_id":"svc""#),
            "missing_claim"
        );
    }

    #[test]
    fn principal_from_the_answer() {
        let body = r#"{"active":true,"client_id":"svc","scope":"a b","exp":5000,"iss":"https://idp.test","aud":["x","api"]}"#;
        let rules = Rules {
            subject_fallback: true,
            ..rules()
        };
        let Ok(Judged::Active(p, exp)) = rules.judge_json(body.as_bytes(), 1000) else {
            panic!("active");
        };
        assert_eq!(p.subject(), "client_id:svc");
        assert_eq!(p.authenticator(), "introspection");
        assert!(p.has_scope("a") && p.has_scope("b"));
        assert_eq!(exp, Some(5000));
        assert_eq!(p.expires_at(), Some(5000));
        assert_eq!(p.claims()["client_id"], "svc");
    }
}
