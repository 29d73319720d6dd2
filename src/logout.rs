//! An OpenID Connect Back-Channel Logout 1.0 receiver: the identity
//! provider POSTs a logout token when a session ends; the session's tokens
//! (or the subject's) are put on a [`Denylist`] and refused from then on.
//!
//! The logout token is a JWT, validated as the specification asks (§2.6):
//! signature with the identity provider's keys, `iss`, `aud` (the client
//! id), `iat` (required, and no older than a maximum age), `exp`; then
//! `typ` is `logout+jwt` when present (§2.4), `events` holds the
//! back-channel logout member with an object value, no `nonce`, a `sub`
//! or a `sid`, a `jti`; a `jti` seen before is refused (replay). The
//! token's own `jti` is put on the denylist, which both refuses its replay
//! (on every instance sharing the denylist's source) and stops it from
//! ever passing as a bearer token.
//!
//! ```
//! # #[cfg(feature = "testing")] {
//! use tokenwarden::logout::BackchannelLogout;
//! use tokenwarden::state::denylist::Denylist;
//! use tokenwarden::testing::{LogoutTarget, TestIssuer};
//! use tokenwarden::KeySet;
//!
//! # tokio::runtime::Builder::new_current_thread().enable_all().build()?.block_on(async {
//! let idp = TestIssuer::start()?;
//! let denylist = Denylist::new();
//! let receiver = BackchannelLogout::builder()
//!     .issuer(idp.issuer())
//!     .client_id("my-client")
//!     .keys(KeySet::from_jwks(idp.jwks_json().as_bytes())?)
//!     .denylist(denylist.clone())
//!     .build()?;
//!
//! let token = idp.logout_token("my-client", LogoutTarget::Session("s-1")).sign();
//! let body = format!("logout_token={token}");
//! let answer = receiver
//!     .handle_form(Some("application/x-www-form-urlencoded"), body.as_bytes())
//!     .await;
//! assert_eq!(answer.status, 200);
//! // The same token again is a replay: 400.
//! let again = receiver
//!     .handle_form(Some("application/x-www-form-urlencoded"), body.as_bytes())
//!     .await;
//! assert_eq!(again.status, 400);
//! assert_eq!(again.body, r#"{"error":"invalid_request","error_description":"replayed"}"#);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # })?;
//! # }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Map, Value};

use crate::clock::{Clock, SystemClock};
use crate::error::{BuildError, Error};
use crate::keys::KeySource;
use crate::state::denylist::{Denylist, Revocation};
use crate::validator::{DEFAULT_LEEWAY, Validator};

/// The `events` member naming a logout token (§2.4).
pub const BACKCHANNEL_LOGOUT_EVENT: &str = "http://schemas.openid.net/event/backchannel-logout";

/// Default oldest logout token accepted, by its `iat`: 5 minutes.
pub const DEFAULT_MAX_AGE: Duration = Duration::from_secs(300);

/// Largest request body [`BackchannelLogout::handle_form`] reads (a logout
/// token is at most 8 KiB, the validator's limit).
pub const MAX_FORM_BYTES: usize = 16 * 1024;

/// Why a logout request was refused: answered 400 (§2.8), with
/// [`kind`](Self::kind) as `error_description`.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum LogoutError {
    /// Not a form with exactly one `logout_token` (§2.5).
    #[error("malformed logout request: {0}")]
    BadRequest(&'static str),
    /// The JWT itself failed: signature, `iss`, `aud`, `iat`, `exp`, size.
    #[error("logout token refused: {0}")]
    Token(Error),
    /// A `typ` other than `logout+jwt` (§2.4).
    #[error("logout token of the wrong type")]
    WrongType,
    /// No `events` claim holding the back-channel logout member with an
    /// object value: not a logout token (§2.6 step 5).
    #[error("not a logout token: no back-channel logout event")]
    NotALogoutToken,
    /// A `nonce` claim: prohibited in a logout token (§2.6 step 6).
    #[error("logout token carries a nonce")]
    Nonce,
    /// Neither a `sub` nor a `sid` string (§2.6 step 4).
    #[error("logout token names neither a subject nor a session")]
    NoSubjectOrSession,
    /// No `jti` string (§2.4: required).
    #[error("logout token has no jti")]
    NoJti,
    /// This logout token (its `jti`) was received before (§2.6 step 7).
    #[error("logout token replayed")]
    Replayed,
}

impl LogoutError {
    /// A stable name: `malformed_request`, the token's
    /// [`ErrorKind`](crate::ErrorKind) name, `invalid_type`,
    /// `not_a_logout_token`, `nonce_present`, `no_subject_or_session`,
    /// `missing_jti` or `replayed`.
    pub fn kind(&self) -> &'static str {
        match self {
            LogoutError::BadRequest(_) => "malformed_request",
            LogoutError::Token(e) => e.kind().as_str(),
            LogoutError::WrongType => "invalid_type",
            LogoutError::NotALogoutToken => "not_a_logout_token",
            LogoutError::Nonce => "nonce_present",
            LogoutError::NoSubjectOrSession => "no_subject_or_session",
            LogoutError::NoJti => "missing_jti",
            LogoutError::Replayed => "replayed",
        }
    }
}

/// A logout accepted: what was revoked.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Logout {
    /// The revocation put on the denylist: the session when the token
    /// names one (§2.4: then only that session ends), else the subject.
    pub revocation: Revocation,
    /// The subject's cutoff also put on the denylist, when the token names
    /// a session and a subject and the receiver
    /// [revokes the subject too](BackchannelLogoutBuilder::revoke_subject_with_session).
    pub subject: Option<Revocation>,
}

/// The answer to the identity provider (§2.8): 200 with an empty body, or
/// 400 with an OAuth 2.0 error JSON body; either way
/// `Cache-Control: no-store`.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct LogoutResponse {
    /// 200 or 400.
    pub status: u16,
    /// Empty, or `{"error":"invalid_request","error_description":KIND}`.
    pub body: String,
    /// Why it was refused, for logs (the client sees only its kind).
    pub error: Option<LogoutError>,
}

impl LogoutResponse {
    /// The headers to send with it.
    pub const HEADERS: [(&'static str, &'static str); 2] = [
        ("content-type", "application/json"),
        ("cache-control", "no-store"),
    ];

    fn from_result(r: Result<Logout, LogoutError>) -> LogoutResponse {
        match r {
            Ok(_) => LogoutResponse {
                status: 200,
                body: String::new(),
                error: None,
            },
            Err(e) => LogoutResponse {
                status: 400,
                body: serde_json::json!({
                    "error": "invalid_request",
                    "error_description": e.kind(),
                })
                .to_string(),
                error: Some(e),
            },
        }
    }
}

/// Receives logout tokens from one identity provider for one client, and
/// revokes what they name on a [`Denylist`]. See the [module docs](self).
#[derive(Clone)]
pub struct BackchannelLogout {
    validator: Validator,
    issuer: Arc<str>,
    denylist: Denylist,
    subject_with_session: bool,
}

impl fmt::Debug for BackchannelLogout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BackchannelLogout")
            .field("issuer", &self.issuer)
            .finish_non_exhaustive()
    }
}

impl BackchannelLogout {
    /// Settings: issuer, client id, keys and denylist are required.
    pub fn builder() -> BackchannelLogoutBuilder {
        BackchannelLogoutBuilder {
            issuer: None,
            client_id: None,
            keys: None,
            denylist: None,
            clock: Arc::new(SystemClock),
            leeway: DEFAULT_LEEWAY,
            max_age: DEFAULT_MAX_AGE,
            subject_with_session: false,
        }
    }

    /// The whole endpoint: a POSTed body (`content_type` as sent) in, the
    /// answer out. Reads at most [`MAX_FORM_BYTES`] (more is refused).
    pub async fn handle_form(&self, content_type: Option<&str>, body: &[u8]) -> LogoutResponse {
        let result = match logout_token_of(content_type, body) {
            Ok(token) => self.receive(&token).await,
            Err(e) => Err(e),
        };
        LogoutResponse::from_result(result)
    }

    /// Validates one logout token and revokes what it names.
    ///
    /// # Errors
    /// The [`LogoutError`] to answer with (400).
    pub async fn receive(&self, logout_token: &str) -> Result<Logout, LogoutError> {
        let v = self
            .validator
            .validate_async::<Map<String, Value>>(logout_token)
            .await
            .map_err(LogoutError::Token)?;
        // §2.4: explicitly typed `logout+jwt` when typed at all.
        if let Some(typ) = v.header.typ() {
            let bare = match typ.get(..12) {
                Some(p) if p.eq_ignore_ascii_case("application/") => &typ[12..],
                _ => typ,
            };
            if !bare.eq_ignore_ascii_case("logout+jwt") {
                return Err(LogoutError::WrongType);
            }
        }
        let claims = &v.claims;
        // §2.6 step 5: an `events` object with the logout member, whose
        // value is a JSON object: what tells it from an ID token.
        let is_logout = claims
            .get("events")
            .and_then(Value::as_object)
            .and_then(|e| e.get(BACKCHANNEL_LOGOUT_EVENT))
            .is_some_and(Value::is_object);
        if !is_logout {
            return Err(LogoutError::NotALogoutToken);
        }
        // §2.6 step 6: a nonce would let it pass for an ID token.
        if claims.contains_key("nonce") {
            return Err(LogoutError::Nonce);
        }
        let text = |n: &str| {
            claims
                .get(n)
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
        };
        let (sub, sid) = (text("sub"), text("sid"));
        if sub.is_none() && sid.is_none() {
            return Err(LogoutError::NoSubjectOrSession);
        }
        let jti = text("jti").ok_or(LogoutError::NoJti)?;
        // The validator required both; they are numbers.
        let exp = claims.get("exp").and_then(Value::as_f64).unwrap_or(0.0);
        let iat = claims.get("iat").and_then(Value::as_f64).unwrap_or(0.0);
        // §2.6 step 7: a jti seen before is a replay. Recorded on the
        // denylist (atomically here; shared by its source), which also
        // keeps this token from ever passing as a bearer token.
        let recorded = self.denylist.revoke(Revocation::Jti {
            issuer: Some(self.issuer.to_string()),
            jti: jti.to_owned(),
            expires_at: exp.ceil() as i64,
        });
        if !recorded {
            return Err(LogoutError::Replayed);
        }
        // Every token issued up to the logout's second (by the identity
        // provider's clock, which stamped both) is refused.
        let before = (iat.floor() as i64).saturating_add(1);
        let issuer = Some(self.issuer.to_string());
        let subject_cutoff = |sub: &str| Revocation::Subject {
            issuer: issuer.clone(),
            sub: sub.to_owned(),
            before,
        };
        let (revocation, subject) = match (sid, sub) {
            (Some(sid), sub) => (
                Revocation::Session {
                    issuer: issuer.clone(),
                    sid: sid.to_owned(),
                    before,
                },
                // A token without `sid` (from a client credentials or an
                // exchange that dropped it) is outside the session's
                // reach: with the option, the subject's cutoff reaches it.
                sub.filter(|_| self.subject_with_session)
                    .map(subject_cutoff),
            ),
            (None, sub) => (subject_cutoff(sub.unwrap_or_default()), None),
        };
        self.denylist.revoke(revocation.clone());
        if let Some(s) = &subject {
            self.denylist.revoke(s.clone());
        }
        Ok(Logout {
            revocation,
            subject,
        })
    }
}

/// §2.5: the one `logout_token` of an `application/x-www-form-urlencoded`
/// body.
fn logout_token_of(content_type: Option<&str>, body: &[u8]) -> Result<String, LogoutError> {
    let form = content_type
        .and_then(|c| c.split(';').next())
        .is_some_and(|c| {
            c.trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        });
    if !form {
        return Err(LogoutError::BadRequest("not a form"));
    }
    if body.len() > MAX_FORM_BYTES {
        return Err(LogoutError::BadRequest("body too large"));
    }
    let mut found = None;
    for pair in body.split(|&b| b == b'&').filter(|p| !p.is_empty()) {
        let (name, value) = match pair.iter().position(|&b| b == b'=') {
            Some(i) => (&pair[..i], &pair[i + 1..]),
            None => (pair, &pair[..0]),
        };
        let name = form_decode(name).ok_or(LogoutError::BadRequest("bad form encoding"))?;
        if name != "logout_token" {
            continue;
        }
        if found.is_some() {
            return Err(LogoutError::BadRequest("more than one logout_token"));
        }
        found = Some(form_decode(value).ok_or(LogoutError::BadRequest("bad form encoding"))?);
    }
    match found {
        Some(t) if !t.is_empty() => Ok(t),
        _ => Err(LogoutError::BadRequest("no logout_token")),
    }
}

/// `application/x-www-form-urlencoded` decoding: `+` is a space, `%XX` a
/// byte; the result must be UTF-8.
fn form_decode(s: &[u8]) -> Option<String> {
    let hex = |b: u8| (b as char).to_digit(16).map(|d| d as u8);
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        match s[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hi = hex(*s.get(i + 1)?)?;
                let lo = hex(*s.get(i + 2)?)?;
                out.push(hi << 4 | lo);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).ok()
}

/// Settings of a [`BackchannelLogout`].
#[must_use]
pub struct BackchannelLogoutBuilder {
    issuer: Option<String>,
    client_id: Option<String>,
    keys: Option<KeySource>,
    denylist: Option<Denylist>,
    clock: Arc<dyn Clock>,
    leeway: Duration,
    max_age: Duration,
    subject_with_session: bool,
}

impl fmt::Debug for BackchannelLogoutBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BackchannelLogoutBuilder")
            .field("issuer", &self.issuer)
            .field("client_id", &self.client_id)
            .finish_non_exhaustive()
    }
}

impl BackchannelLogoutBuilder {
    /// The identity provider's issuer identifier (the tokens' `iss`).
    pub fn issuer(mut self, iss: impl Into<String>) -> Self {
        self.issuer = Some(iss.into());
        self
    }

    /// This client's id at the identity provider: the logout token's `aud`.
    pub fn client_id(mut self, id: impl Into<String>) -> Self {
        self.client_id = Some(id.into());
        self
    }

    /// The identity provider's keys (those that sign its ID tokens), e.g.
    /// the same [`RemoteKeySet`](crate::RemoteKeySet) as the access tokens'.
    pub fn keys(mut self, keys: impl Into<KeySource>) -> Self {
        self.keys = Some(keys.into());
        self
    }

    /// Where the revocations go: the denylist the validators check.
    pub fn denylist(mut self, denylist: Denylist) -> Self {
        self.denylist = Some(denylist);
        self
    }

    /// The clock for `iat`/`exp` (default: the system clock).
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// Clock-skew allowance (default 60 s, at most 1 hour).
    pub fn leeway(mut self, leeway: Duration) -> Self {
        self.leeway = leeway;
        self
    }

    /// Oldest logout token accepted, by `iat` (default 5 minutes).
    pub fn max_age(mut self, max_age: Duration) -> Self {
        self.max_age = max_age;
        self
    }

    /// Whether a logout token naming a session (`sid`) **and** a subject
    /// (`sub`) also refuses every token of that subject issued before it
    /// (default `false`: only the session's, as §2.4 asks).
    ///
    /// Tokens without a `sid` claim (many identity providers put none in
    /// access tokens; tokens from a token exchange that drops it) are not
    /// reached by a session revocation and keep passing until their `exp`.
    /// With this on they are refused too; the price is that the user's
    /// other sessions (other devices, other browsers) lose their current
    /// tokens as well and must get new ones (a refresh, issued after the
    /// logout, passes). A logout token naming only a subject already
    /// revokes the subject.
    pub fn revoke_subject_with_session(mut self, on: bool) -> Self {
        self.subject_with_session = on;
        self
    }

    /// Builds the receiver.
    ///
    /// # Errors
    /// A missing issuer, client id, keys or denylist, or a leeway over 1 h.
    pub fn build(self) -> Result<BackchannelLogout, BuildError> {
        let missing = |what| BuildError::new(format!("back-channel logout: no {what}"));
        let issuer = self.issuer.ok_or_else(|| missing("issuer"))?;
        let client_id = self.client_id.ok_or_else(|| missing("client_id"))?;
        let keys = self.keys.ok_or_else(|| missing("keys"))?;
        let denylist = self.denylist.ok_or_else(|| missing("denylist"))?;
        // §2.6 steps 2-3: as an ID token: signature, iss, aud, iat, exp.
        let validator = Validator::builder()
            .issuer(issuer.clone())
            .audience(client_id)
            .keys(keys)
            .leeway(self.leeway)
            .max_age(self.max_age)
            .clock(ClockRef(self.clock))
            .build()?;
        Ok(BackchannelLogout {
            validator,
            issuer: issuer.into(),
            denylist,
            subject_with_session: self.subject_with_session,
        })
    }
}

/// A shared clock handed on to the validator.
#[derive(Debug)]
struct ClockRef(Arc<dyn Clock>);

impl Clock for ClockRef {
    fn now(&self) -> i64 {
        self.0.now()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_form_must_hold_exactly_one_logout_token() {
        let form = Some("application/x-www-form-urlencoded; charset=utf-8");
        assert_eq!(
            logout_token_of(form, b"a=1&logout_token=x.y%2Ez&b").unwrap(),
            "x.y.z"
        );
        for (ct, body) in [
            (form, &b"logout_token=a&logout_token=b"[..]),
            (form, b"other=1"),
            (form, b"logout_token="),
            (form, b"logout_token=%zz"),
            (form, b"logout_token=%ff"),
            (Some("application/json"), b"logout_token=a"),
            (None, b"logout_token=a"),
        ] {
            assert!(logout_token_of(ct, body).is_err(), "{body:?}");
        }
        let big = vec![b'a'; MAX_FORM_BYTES + 1];
        assert!(logout_token_of(form, &big).is_err());
    }
}
