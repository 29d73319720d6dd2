//! `[internal_token]`: on a pass, the sidecar mints a short-lived JWT for
//! the principal and hands it to the gateway in a response header, so the
//! service behind it validates one kind of token (against the sidecar's
//! `/.well-known/jwks.json`) and never sees the client's credential.

use std::ops::Range;
use std::time::Duration;

use http::HeaderName;
use serde::Deserialize;
use serde_json::{Map, Value};
use tokenwarden::authn::Principal;
use tokenwarden::mint::{self, MintError, MintInput, Minter};
use toml::Spanned;

use crate::config::ConfigError;

/// The response header that carries the token to the gateway by default.
pub const DEFAULT_HEADER: &str = "x-internal-token";

/// `[internal_token]` as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InternalTokenFile {
    key_file: Spanned<String>,
    issuer: Spanned<String>,
    audience: Spanned<String>,
    lifetime_seconds: Option<Spanned<u64>>,
    header: Option<Spanned<String>>,
}

/// The checked `[internal_token]`: a built minter (its key loaded) and the
/// response header.
#[derive(Debug, Clone)]
pub struct InternalToken {
    pub minter: Minter,
    pub header: HeaderName,
}

/// Checks every setting and loads the key, so `--check` refuses what
/// `serve` would: a lifetime of 0 or past an hour, an unreadable or
/// unusable key file, an empty issuer or audience, a bad header name.
pub fn check(
    f: &InternalTokenFile,
    at: &dyn Fn(Range<usize>, &str, &str) -> ConfigError,
) -> Result<InternalToken, ConfigError> {
    let max = mint::MAX_LIFETIME.as_secs();
    let lifetime = match &f.lifetime_seconds {
        Some(l) if !(1..=max).contains(l.get_ref()) => {
            return Err(at(
                l.span(),
                "internal_token.lifetime_seconds",
                &format!("must be 1 to {max}: an internal token is a credential for one hop"),
            ));
        }
        Some(l) => Duration::from_secs(*l.get_ref()),
        None => mint::DEFAULT_LIFETIME,
    };
    for (value, field) in [(&f.issuer, "issuer"), (&f.audience, "audience")] {
        if value.get_ref().trim().is_empty() {
            return Err(at(
                value.span(),
                &format!("internal_token.{field}"),
                "must not be empty",
            ));
        }
    }
    let header = match &f.header {
        Some(h) => HeaderName::from_bytes(h.get_ref().as_bytes()).map_err(|_| {
            at(
                h.span(),
                "internal_token.header",
                &format!("{:?} is not a valid header name", h.get_ref()),
            )
        })?,
        None => HeaderName::from_static(DEFAULT_HEADER),
    };
    // The token goes upstream as `Authorization`; a response header of
    // that name (or one HTTP gives a meaning to) would confuse the gateway.
    if [
        http::header::AUTHORIZATION,
        http::header::WWW_AUTHENTICATE,
        http::header::SET_COOKIE,
        http::header::CONTENT_TYPE,
        http::header::CONTENT_LENGTH,
    ]
    .contains(&header)
    {
        return Err(at(
            f.header.as_ref().map_or(0..0, Spanned::span),
            "internal_token.header",
            "choose a header of its own, such as \"x-internal-token\"",
        ));
    }
    // The file's own errors name the path and the problem, never the key.
    let minter = Minter::builder()
        .signing_key_file(f.key_file.get_ref())
        .issuer(f.issuer.get_ref().clone())
        .audience(f.audience.get_ref().clone())
        .lifetime(lifetime)
        .build()
        .map_err(|e| at(f.key_file.span(), "internal_token", &e.to_string()))?;
    Ok(InternalToken { minter, header })
}

/// The token for a principal proved by a JWT: its `sub`, its issuer (as
/// `src_iss`: a `sub` is unique per issuer only), its scopes as the scope
/// checks read them (`scope` and `scp`, string or array), and an expiry
/// never past the JWT's own.
///
/// # Errors
/// [`MintError`] when the principal cannot be written as a token (no
/// subject, a scope that is not a scope token) or signing fails.
pub fn for_jwt(
    minter: &Minter,
    claims: &Map<String, Value>,
) -> Result<std::sync::Arc<str>, MintError> {
    let subject = claims.get("sub").and_then(Value::as_str).unwrap_or("");
    let mut scopes: Vec<&str> = Vec::new();
    for claim in ["scope", "scp"] {
        match claims.get(claim) {
            Some(Value::String(s)) => scopes.extend(s.split(' ').filter(|s| !s.is_empty())),
            Some(Value::Array(items)) => scopes.extend(items.iter().filter_map(Value::as_str)),
            _ => {}
        }
    }
    let mut input =
        MintInput::new(subject, "jwt")
            .scopes(scopes)
            .expires_at(claims.get("exp").and_then(|v| {
                // A fractional NumericDate (RFC 7519 §2) is a time too, never
                // "no expiry": rounded down.
                #[allow(clippy::cast_possible_truncation)]
                v.as_i64().or_else(|| {
                    v.as_f64()
                        .filter(|f| f.is_finite())
                        .map(|f| f.floor() as i64)
                })
            }));
    if let Some(iss) = claims.get("iss").and_then(Value::as_str) {
        input = input.source_issuer(iss);
    }
    minter.mint(&input)
}

/// The token for a chain's principal (a JWT, an API key, a legacy
/// credential): its subject, the authenticator that vouched for it, for a
/// JWT its issuer (`src_iss`), its scopes and roles, and an expiry never
/// past the principal's. Only a JWT's `iss` is carried: the claims of any
/// other kind come from elsewhere (a legacy endpoint's JSON) and cannot
/// name an issuer.
///
/// # Errors
/// As [`for_jwt`].
pub fn for_principal(minter: &Minter, p: &Principal) -> Result<std::sync::Arc<str>, MintError> {
    minter.mint(&MintInput::from_principal(p))
}
