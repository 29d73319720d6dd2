//! The internal token (feature `mint`): whatever proved who a request is
//! (a JWT, an API key, a legacy cookie), the gateway hands the service behind
//! it one kind of credential: a short-lived JWT it signs itself, for that
//! principal. The service validates it with tokenwarden against the
//! [`Minter::jwks`] the gateway publishes, and never sees the original
//! credential.
//!
//! ```
//! use std::time::Duration;
//! use tokenwarden::mint::{MintInput, Minter};
//! use tokenwarden::{Algorithm, KeySet, Validator};
//!
//! // In production: `.signing_key_file("/etc/gateway/mint.pem")`.
//! let minter = Minter::builder()
//!     .generated_key(Algorithm::EdDSA)
//!     .issuer("https://gateway.example")
//!     .audience("https://orders.internal")
//!     .lifetime(Duration::from_secs(60))
//!     .build()?;
//! let token = minter.mint(
//!     &MintInput::new("alice", "api_key").scopes(["orders:read", "orders:write"]),
//! )?;
//!
//! // The upstream service, with the JWKS the gateway serves:
//! let upstream = Validator::builder()
//!     .issuer("https://gateway.example")
//!     .audience("https://orders.internal")
//!     .required_type("at+jwt")
//!     .keys(KeySet::from_jwks(minter.jwks().to_string().as_bytes())?)
//!     .build()?;
//! let claims = upstream.validate_json(&token)?.claims;
//! assert_eq!(claims["sub"], "alice");
//! assert_eq!(claims["authn"], "api_key");
//! assert_eq!(claims["scope"], "orders:read orders:write");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Who the token names: `authn`, `src_iss`, `sub`
//! A subject is unique only within what vouched for it: `alice` at one
//! accepted issuer is not `alice` at another, and an API key's subject (its
//! owner or name, such as `admin`) or a legacy session's user id is
//! free text chosen elsewhere. The upstream must therefore identify a
//! principal by **`authn`** (the kind of credential: `jwt`, `api_key`,
//! `legacy`), **`src_iss`** (for a JWT, the issuer that signed it; set it
//! with [`MintInput::source_issuer`]) and **`sub`** together, never by `sub`
//! alone, and grant by `scope`/`roles` rather than by a subject's name.
//! Subjects are not rewritten (an upstream may need the legacy user id as
//! it is); the claims that tell them apart are reserved, so no extra claim
//! can forge them.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde_json::{Map, Value, json};

use crate::alg::Algorithm;
use crate::clock::{Clock, SystemClock};
use crate::crypto::{
    self,
    signing::{KeyProblem, SigningAlg, SigningKey},
};
use crate::keys::KeySet;
use crate::validator::DEFAULT_MAX_TOKEN_SIZE;

/// The default lifetime of a minted token: a minute.
pub const DEFAULT_LIFETIME: Duration = Duration::from_secs(60);
/// The longest lifetime a minter accepts: an hour. An internal token is a
/// bearer credential for one hop; a long one is a long-lived credential.
pub const MAX_LIFETIME: Duration = Duration::from_secs(3600);
/// Cached tokens kept by default (one per principal and input).
pub const DEFAULT_CACHE_CAPACITY: u64 = 10_000;
/// The largest token minted: the size tokenwarden's validator accepts by
/// default, so an upstream with default settings never refuses one for size.
pub const MAX_MINTED_TOKEN_SIZE: usize = DEFAULT_MAX_TOKEN_SIZE;

/// Previous public keys a JWKS may carry during a rotation.
const MAX_PREVIOUS_KEYS: usize = 8;
/// The validator's limit on a `kid`.
const MAX_KID_LEN: usize = 256;

/// Claims the minter sets itself. A claim of the same name among the
/// input's extra claims is dropped: a hostile or careless value (an `iss`
/// from the original token, an `exp` from a legacy session service, a
/// `scope` from an API key's metadata) can never stand in for the minter's.
/// RFC 7519 §4.1's registered claims, the ones this module defines (`authn`,
/// `src_iss`), and the ones an upstream decides on: `scp` (read as scopes as
/// `scope` is, by tokenwarden among others), `groups` and `entitlements`
/// (RFC 9068 §2.2.3.1, beside `roles`), authentication strength (`acr`,
/// `amr`, `auth_time`: OIDC Core §2; a forged `amr: ["mfa"]` would pass
/// step-up checks), delegation and binding (`act`, `may_act`: RFC 8693
/// §4.1, 4.4; `cnf`: RFC 7800), and the client and session (`azp`, `sid`,
/// `nonce`).
const RESERVED: [&str; 24] = [
    "iss",
    "sub",
    "aud",
    "exp",
    "nbf",
    "iat",
    "jti",
    "authn",
    "src_iss",
    "scope",
    "roles",
    "groups",
    "entitlements",
    "client_id",
    "scp",
    "acr",
    "amr",
    "auth_time",
    "act",
    "may_act",
    "cnf",
    "azp",
    "sid",
    "nonce",
];

/// The token type in the header. RFC 9068 §2.1: a JWT access token is typed
/// `at+jwt`, and RFC 8725 §3.11 asks for explicit typing so one kind of JWT
/// cannot be taken for another: an upstream that requires `at+jwt`
/// ([`ValidatorBuilder::required_type`](crate::ValidatorBuilder::required_type))
/// refuses an ID token, or any other JWT signed with keys it trusts. The
/// minted token is what RFC 9068 describes: an access token for one resource
/// (`aud`), with `iss`, `exp`, `iat`, `jti`, `sub` and `scope`. Its
/// `client_id` is set when the input names one; a principal proved by an API
/// key or a cookie has no OAuth client, and inventing one would mislead.
const TYP: &str = "at+jwt";

/// Signs short-lived internal tokens for principals, and publishes the
/// public keys that verify them.
///
/// Cheap to clone (an `Arc` inside), `Send + Sync`. Built with
/// [`Minter::builder`]; see the [module docs](self) for an example.
#[derive(Clone)]
pub struct Minter {
    inner: Arc<Inner>,
}

struct Inner {
    key: SigningKey,
    alg: Algorithm,
    kid: String,
    issuer: String,
    audience: String,
    lifetime: i64,
    /// Seconds after `iat` from which a cached token is replaced.
    refresh_after: i64,
    clock: Arc<dyn Clock>,
    /// base64url of the header JSON: fixed for the minter's life.
    header_b64: String,
    /// `{"iss":…,"aud":…,` ready to write.
    payload_prefix: Vec<u8>,
    jwks: Value,
    public_jwk: Value,
    cache: Option<moka::sync::Cache<[u8; 32], Cached>>,
}

#[derive(Clone)]
struct Cached {
    token: Arc<str>,
    iat: i64,
    exp: i64,
}

impl fmt::Debug for Minter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The private key is never shown; its public identity (kid) is.
        let i = &self.inner;
        f.debug_struct("Minter")
            .field("alg", &i.alg)
            .field("kid", &i.kid)
            .field("issuer", &i.issuer)
            .field("audience", &i.audience)
            .field("lifetime_secs", &i.lifetime)
            .finish_non_exhaustive()
    }
}

/// Who the token is for: the principal, and what proved it.
///
/// Borrows from the caller's principal, so building one per request costs
/// no copies of its strings.
///
/// ```
/// use serde_json::json;
/// use tokenwarden::mint::MintInput;
///
/// let tenant = json!("acme");
/// let input = MintInput::new("alice", "jwt")
///     .scopes(["orders:read"])
///     .roles(["admin"])
///     .claim("tenant", &tenant);
/// # let _ = input;
/// ```
#[derive(Clone, Default)]
pub struct MintInput<'a> {
    subject: &'a str,
    authenticator: &'a str,
    source_issuer: Option<&'a str>,
    expires_at: Option<i64>,
    client_id: Option<&'a str>,
    actor: Option<&'a Value>,
    scopes: Vec<&'a str>,
    roles: Vec<&'a str>,
    claims: Vec<(&'a str, &'a Value)>,
}

impl fmt::Debug for MintInput<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Extra claims by name only: their values may be personal data.
        let names: Vec<&str> = self.claims.iter().map(|(n, _)| *n).collect();
        f.debug_struct("MintInput")
            .field("subject", &self.subject)
            .field("authenticator", &self.authenticator)
            .field("source_issuer", &self.source_issuer)
            .field("expires_at", &self.expires_at)
            .field("client_id", &self.client_id)
            .field("actor", &self.actor.is_some())
            .field("scopes", &self.scopes)
            .field("roles", &self.roles)
            .field("claims", &names)
            .finish()
    }
}

impl<'a> MintInput<'a> {
    /// A principal `subject` (the `sub` claim) vouched for by the
    /// authenticator named `authenticator` (the `authn` claim: `"jwt"`,
    /// `"api_key"`, `"legacy"`, ...).
    pub fn new(subject: &'a str, authenticator: &'a str) -> Self {
        MintInput {
            subject,
            authenticator,
            ..MintInput::default()
        }
    }

    /// Everything a chain's [`Principal`](crate::authn::Principal) says that
    /// an internal token carries: its subject, the authenticator that
    /// vouched (`authn`), for a JWT its issuer
    /// ([`source_issuer`](Self::source_issuer)), its scopes and roles, and
    /// its expiry ([`expires_at`](Self::expires_at)), its delegation chain
    /// ([`actor`](Self::actor)) and, for a JWT, its client (`client_id` or
    /// `azp`). Only a JWT's `iss` is
    /// carried: the claims of other kinds come from elsewhere (an API key
    /// store, a legacy endpoint's JSON) and cannot name an issuer. What the
    /// layers' [`internal_token`](crate::middleware::BearerAuth::internal_token)
    /// and the sidecar mint.
    ///
    /// ```
    /// use tokenwarden::authn::Principal;
    /// use tokenwarden::mint::MintInput;
    ///
    /// let p = Principal::new("svc-billing", "api_key").with_scopes(["orders:read"]);
    /// let input = MintInput::from_principal(&p);
    /// # let _ = input;
    /// ```
    #[must_use]
    pub fn from_principal(p: &'a crate::authn::Principal) -> Self {
        let mut input = MintInput::new(p.subject(), p.authenticator())
            .scopes(p.scopes())
            .roles(p.roles())
            .expires_at(p.expires_at());
        if p.authenticator() == "jwt" {
            if let Some(iss) = p.claims().get("iss").and_then(Value::as_str) {
                input = input.source_issuer(iss);
            }
            // The client the user came through (RFC 9068 §2.2 `client_id`,
            // else OIDC's `azp`): an upstream may allow some clients only.
            let claims = p.claims();
            if let Some(c) = claims
                .get("client_id")
                .or_else(|| claims.get("azp"))
                .and_then(Value::as_str)
                .filter(|c| !c.is_empty())
            {
                input = input.client_id(c);
            }
        }
        if let Some(act) = p.actor() {
            input = input.actor(act);
        }
        input
    }

    /// The issuer that vouched for the principal (a JWT's `iss`), written
    /// in the `src_iss` claim. Subjects are unique per issuer only (OIDC
    /// Core §2: `sub` is "locally unique ... within the Issuer"), so the
    /// upstream must key a user by `src_iss` and `sub` together, never by
    /// `sub` alone: without it, a user of one accepted issuer whose `sub`
    /// equals a victim's at another would get the victim's token. Part of
    /// the cache key like every claim. Set it for every JWT principal.
    #[must_use]
    pub fn source_issuer(mut self, issuer: &'a str) -> Self {
        self.source_issuer = Some(issuer);
        self
    }

    /// When the principal's credential expires (Unix seconds): the token's
    /// `exp` is never later (but at least a second after `iat`, for a
    /// principal accepted within clock-skew leeway after its expiry), and a
    /// cached token that would outlive it is not reused. A minted token must
    /// not keep a principal alive past its own credential (a JWT's `exp`, a
    /// legacy session's end).
    #[must_use]
    pub fn expires_at(mut self, expires_at: Option<i64>) -> Self {
        self.expires_at = expires_at;
        self
    }

    /// The scopes, written space-separated in the `scope` claim
    /// (RFC 9068 §2.2.3). Each must be an RFC 6749 §3.3 scope token.
    #[must_use]
    pub fn scopes<I: IntoIterator<Item = &'a str>>(mut self, scopes: I) -> Self {
        self.scopes.extend(scopes);
        self
    }

    /// The roles, as a JSON array in the `roles` claim (RFC 9068 §2.2.3.1).
    #[must_use]
    pub fn roles<I: IntoIterator<Item = &'a str>>(mut self, roles: I) -> Self {
        self.roles.extend(roles);
        self
    }

    /// The OAuth client the principal came through, when there is one
    /// (`client_id`, RFC 9068 §2.2).
    #[must_use]
    pub fn client_id(mut self, client_id: &'a str) -> Self {
        self.client_id = Some(client_id);
        self
    }

    /// The delegation chain (`act`, RFC 8693 §4.1) the principal came
    /// with, as the chain checked it ([`Principal::actor`](crate::authn::Principal::actor)):
    /// an upstream must see that someone acts for the subject, and its own
    /// delegation limits hold only if the internal token says so. Part of
    /// the cache key: a delegated call never gets the direct call's token.
    #[must_use]
    pub fn actor(mut self, act: &'a Value) -> Self {
        self.actor = Some(act);
        self
    }

    /// One extra claim to carry. A name the minter sets itself or that an
    /// upstream decides on (`iss`, `sub`, `aud`, `exp`, `nbf`, `iat`,
    /// `jti`, `authn`, `src_iss`, `scope`, `scp`, `roles`, `groups`,
    /// `entitlements`, `client_id`, `acr`, `amr`, `auth_time`, `act`,
    /// `may_act`, `cnf`, `azp`, `sid`, `nonce`) is ignored; of two claims
    /// with one name, the last wins.
    #[must_use]
    pub fn claim(mut self, name: &'a str, value: &'a Value) -> Self {
        self.claims.push((name, value));
        self
    }

    /// Extra claims to carry, each as with [`claim`](Self::claim): select
    /// the ones the upstream needs rather than passing a whole token's.
    #[must_use]
    pub fn claims(mut self, claims: &'a Map<String, Value>) -> Self {
        self.claims
            .extend(claims.iter().map(|(k, v)| (k.as_str(), v)));
        self
    }
}

/// Why a token could not be minted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MintError {
    /// The input cannot be written as the claims it names: an empty subject
    /// or authenticator, a scope that is not an RFC 6749 §3.3 scope token
    /// (a space in one would read as two scopes upstream).
    #[error("cannot mint a token: {field} {reason}")]
    InvalidInput {
        /// Which input: `subject`, `authenticator`, `source_issuer`,
        /// `client_id` or `scope`.
        field: &'static str,
        /// What is wrong with it (never the value).
        reason: &'static str,
    },
    /// The token would be larger than [`MAX_MINTED_TOKEN_SIZE`], which an
    /// upstream with default settings would refuse: too many extra claims.
    #[error("the minted token would be {size} bytes, over the maximum of {max}")]
    TooLarge {
        /// The size it would have.
        size: usize,
        /// The maximum.
        max: usize,
    },
    /// The clock reads a time a token cannot carry (before 1970, or so
    /// late that `exp` overflows).
    #[error("the clock reads {now}, out of range for a token")]
    ClockOutOfRange {
        /// The clock's reading.
        now: i64,
    },
    /// The crypto backend failed to sign or to draw random bytes.
    #[error("the crypto backend failed to sign")]
    Backend,
}

impl MintError {
    /// A stable, machine-readable name: `invalid_input`, `too_large`,
    /// `clock_out_of_range`, `backend`.
    pub fn kind(&self) -> &'static str {
        match self {
            MintError::InvalidInput { .. } => "invalid_input",
            MintError::TooLarge { .. } => "too_large",
            MintError::ClockOutOfRange { .. } => "clock_out_of_range",
            MintError::Backend => "backend",
        }
    }
}

/// Why a [`Minter`] could not be built. Never carries key material.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MintBuildError {
    /// No signing key was given.
    #[error(
        "minter: no signing key (signing_key_pem, signing_key_der, signing_key_file or generated_key)"
    )]
    MissingKey,
    /// No issuer, or an empty one.
    #[error("minter: no issuer")]
    MissingIssuer,
    /// No audience, or an empty one.
    #[error("minter: no audience")]
    MissingAudience,
    /// The key is not an unencrypted Ed25519 or P-256 PKCS #8 private key
    /// (an RSA key, another curve, an encrypted or SEC1 file, bad PEM).
    #[error("minter: signing key refused: {reason}")]
    UnsupportedKey {
        /// Why, without any of the key.
        reason: &'static str,
    },
    /// The key file could not be read.
    #[error("minter: cannot read the signing key file {}: {kind}", path.display())]
    KeyFile {
        /// The file.
        path: PathBuf,
        /// The I/O error's kind.
        kind: std::io::ErrorKind,
    },
    /// The lifetime is under a second or over [`MAX_LIFETIME`].
    #[error("minter: lifetime must be between 1 s and {} s", MAX_LIFETIME.as_secs())]
    Lifetime,
    /// The `kid` is empty or longer than 256 bytes.
    #[error("minter: kid must be 1 to 256 bytes")]
    Kid,
    /// A previous public key cannot be published.
    #[error("minter: previous public key refused: {reason}")]
    PreviousKey {
        /// Why.
        reason: String,
    },
    /// The crypto backend failed (no backend compiled in, or key
    /// generation failed).
    #[error("minter: crypto backend: {reason}")]
    Backend {
        /// Why.
        reason: &'static str,
    },
}

/// Configures a [`Minter`]. Mistakes are kept until
/// [`build`](Self::build), which reports the first.
#[must_use]
pub struct MinterBuilder {
    key: Option<Result<SigningKey, MintBuildError>>,
    kid: Option<String>,
    issuer: Option<String>,
    audience: Option<String>,
    lifetime: Duration,
    clock: Arc<dyn Clock>,
    previous: Vec<Value>,
    cache_capacity: u64,
}

impl fmt::Debug for MinterBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MinterBuilder")
            .field("key", &self.key)
            .field("kid", &self.kid)
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .field("lifetime", &self.lifetime)
            .finish_non_exhaustive()
    }
}

impl Minter {
    /// A builder: a signing key, an issuer and an audience are required.
    pub fn builder() -> MinterBuilder {
        MinterBuilder {
            key: None,
            kid: None,
            issuer: None,
            audience: None,
            lifetime: DEFAULT_LIFETIME,
            clock: Arc::new(SystemClock),
            previous: Vec::new(),
            cache_capacity: DEFAULT_CACHE_CAPACITY,
        }
    }

    /// The signing algorithm: `EdDSA` or `ES256`.
    pub fn algorithm(&self) -> Algorithm {
        self.inner.alg
    }

    /// The key id in every token's header and in the JWKS.
    pub fn kid(&self) -> &str {
        &self.inner.kid
    }

    /// The public keys as a JWK Set (RFC 7517 §5): the current key first,
    /// then any previous ones still published during a rotation. Each has
    /// `kid`, `alg` and `use: sig`. Serve it where the upstream fetches its
    /// keys (the sidecar: `/.well-known/jwks.json`).
    pub fn jwks(&self) -> Value {
        self.inner.jwks.clone()
    }

    /// The current public key as a JWK: hand it to the next minter's
    /// [`MinterBuilder::previous_public_key`] when rotating.
    pub fn public_jwk(&self) -> Value {
        self.inner.public_jwk.clone()
    }

    /// Tokens held in the cache now (after pending evictions run).
    pub fn cached_tokens(&self) -> u64 {
        match &self.inner.cache {
            Some(c) => {
                c.run_pending_tasks();
                c.entry_count()
            }
            None => 0,
        }
    }

    /// A signed token for `input`.
    ///
    /// The same input within the first half of the lifetime gets the same
    /// token from the cache, so every token handed upstream has at least half
    /// its lifetime left (or lasts until the principal's
    /// [`expires_at`](MintInput::expires_at), when that comes sooner). The
    /// cache is keyed by a SHA-256 digest of the input's claims (its source
    /// issuer included), never by a credential.
    ///
    /// # Errors
    /// [`MintError::InvalidInput`] for an empty subject, authenticator or
    /// source issuer, or a scope that is not a scope token; [`MintError::TooLarge`] when the
    /// extra claims make the token too big; [`MintError::ClockOutOfRange`];
    /// [`MintError::Backend`].
    pub fn mint(&self, input: &MintInput<'_>) -> Result<Arc<str>, MintError> {
        let i = &*self.inner;
        let members = principal_members(input)?;
        let now = i.clock.now();
        let full = match now.checked_add(i.lifetime) {
            Some(exp) if now >= 0 => exp,
            _ => return Err(MintError::ClockOutOfRange { now }),
        };
        // Never past the principal's own expiry; a principal accepted
        // within the validator's clock-skew leeway after its expiry gets a
        // token of one second (an error would turn a pass into a 500).
        let exp = match input.expires_at {
            Some(at) => full.min(at.max(now.saturating_add(1))),
            None => full,
        };
        // The issuer and audience are the minter's own: the members alone
        // tell principals apart (the source issuer among them).
        let key = crypto::sha256_parts(&[b"tokenwarden mint v1\0", &members]);
        if let Some(cache) = &i.cache {
            if let Some(hit) = cache.get(&key) {
                // A clock set back (hit.iat > now) is a miss, not a token
                // issued in the future. A hit is reused only if it does not
                // outlive this principal's expiry, and is either uncapped or
                // capped at this same expiry (else a fresh one lasts longer).
                let fresh = hit.iat <= now && now < hit.iat.saturating_add(i.refresh_after);
                let bounded = hit.exp <= exp
                    && (hit.exp == exp || hit.exp == hit.iat.saturating_add(i.lifetime));
                if fresh && bounded {
                    return Ok(hit.token);
                }
            }
        }
        let token: Arc<str> = self.sign(&members, now, exp)?.into();
        if let Some(cache) = &i.cache {
            if i.refresh_after > 0 {
                cache.insert(
                    key,
                    Cached {
                        token: token.clone(),
                        iat: now,
                        exp,
                    },
                );
            }
        }
        Ok(token)
    }

    fn sign(&self, members: &[u8], now: i64, exp: i64) -> Result<String, MintError> {
        let i = &*self.inner;
        let mut jti = [0u8; 16];
        crypto::random_bytes(&mut jti).map_err(|_| MintError::Backend)?;
        let mut payload = Vec::with_capacity(i.payload_prefix.len() + members.len() + 80);
        payload.extend_from_slice(&i.payload_prefix);
        payload.extend_from_slice(format!("\"iat\":{now},\"exp\":{exp},\"jti\":\"").as_bytes());
        payload.extend_from_slice(URL_SAFE_NO_PAD.encode(jti).as_bytes());
        payload.extend_from_slice(b"\",");
        payload.extend_from_slice(members);
        payload.push(b'}');

        // header.payload.signature, the signature 64 bytes for both algorithms.
        let size = i.header_b64.len() + 1 + b64_len(payload.len()) + 1 + b64_len(64);
        if size > MAX_MINTED_TOKEN_SIZE {
            return Err(MintError::TooLarge {
                size,
                max: MAX_MINTED_TOKEN_SIZE,
            });
        }
        let mut token = String::with_capacity(size);
        token.push_str(&i.header_b64);
        token.push('.');
        URL_SAFE_NO_PAD.encode_string(&payload, &mut token);
        let sig = i
            .key
            .sign(token.as_bytes())
            .map_err(|_| MintError::Backend)?;
        token.push('.');
        URL_SAFE_NO_PAD.encode_string(sig, &mut token);
        Ok(token)
    }
}

fn b64_len(n: usize) -> usize {
    (n * 4).div_ceil(3)
}

/// The principal's claims as JSON members (`"sub":…,"authn":…,…`), in a
/// fixed order: the token's payload after the minter's own claims, and the
/// canonical encoding the cache key is a digest of. serde_json escapes every
/// string, so two inputs that differ give different bytes.
fn principal_members(input: &MintInput<'_>) -> Result<Vec<u8>, MintError> {
    let invalid = |field, reason| MintError::InvalidInput { field, reason };
    if input.subject.is_empty() {
        return Err(invalid("subject", "is empty"));
    }
    if input.authenticator.is_empty() {
        return Err(invalid("authenticator", "is empty"));
    }
    if input.client_id == Some("") {
        return Err(invalid("client_id", "is empty"));
    }
    if input.source_issuer == Some("") {
        return Err(invalid("source_issuer", "is empty"));
    }
    for scope in &input.scopes {
        // RFC 6749 §3.3: scope-token = 1*( %x21 / %x23-5B / %x5D-7E ). The
        // claim is space-separated: a scope "read admin" from a hostile
        // source would otherwise grant `admin` upstream.
        if scope.is_empty()
            || !scope
                .bytes()
                .all(|b| matches!(b, 0x21 | 0x23..=0x5B | 0x5D..=0x7E))
        {
            return Err(invalid("scope", "is not an RFC 6749 scope token"));
        }
    }
    let mut out = Vec::with_capacity(128);
    let member = |out: &mut Vec<u8>, name: &str, value: &dyn erased::Json| {
        if !out.is_empty() {
            out.push(b',');
        }
        erased::write(out, &name);
        out.push(b':');
        value.write(out);
    };
    member(&mut out, "sub", &input.subject);
    member(&mut out, "authn", &input.authenticator);
    if let Some(iss) = input.source_issuer {
        member(&mut out, "src_iss", &iss);
    }
    if let Some(client_id) = input.client_id {
        member(&mut out, "client_id", &client_id);
    }
    if let Some(act) = input.actor {
        member(&mut out, "act", act);
    }
    if !input.scopes.is_empty() {
        member(&mut out, "scope", &input.scopes.join(" ").as_str());
    }
    if !input.roles.is_empty() {
        member(&mut out, "roles", &input.roles);
    }
    // Sorted by name (stable: of one name the last given wins), so the same
    // claims in another order are the same principal for the cache, and no
    // name is written twice (a JSON object with duplicate members is refused
    // by tokenwarden and read differently by other parsers).
    let mut extra: Vec<(usize, &(&str, &Value))> = input.claims.iter().enumerate().collect();
    extra.sort_by(|a, b| a.1.0.cmp(b.1.0).then(b.0.cmp(&a.0)));
    let mut last: Option<&str> = None;
    for (_, (name, value)) in extra {
        if last == Some(*name) || RESERVED.contains(name) {
            continue;
        }
        last = Some(name);
        member(&mut out, name, *value);
    }
    Ok(out)
}

/// JSON writing into a buffer, for the few shapes the payload has.
mod erased {
    use serde::Serialize;

    pub(super) trait Json {
        fn write(&self, out: &mut Vec<u8>);
    }

    impl<T: Serialize + ?Sized> Json for T {
        fn write(&self, out: &mut Vec<u8>) {
            write(out, self);
        }
    }

    pub(super) fn write<T: Serialize + ?Sized>(out: &mut Vec<u8>, value: &T) {
        // Writing strings, string slices and `Value`s into a Vec cannot fail
        // (map keys of a `Value` are strings).
        let _ = serde_json::to_writer(out, value);
    }
}

impl MinterBuilder {
    /// The signing key as an unencrypted PKCS #8 PEM (`-----BEGIN PRIVATE
    /// KEY-----`): Ed25519 (EdDSA) or P-256 (ES256). Make one with
    /// `openssl genpkey -algorithm ed25519 -out mint.pem`.
    pub fn signing_key_pem(mut self, pem: impl AsRef<[u8]>) -> Self {
        self.key = Some(key_from_pem(pem.as_ref()));
        self
    }

    /// The signing key as unencrypted PKCS #8 DER: Ed25519 or P-256.
    pub fn signing_key_der(mut self, der: impl AsRef<[u8]>) -> Self {
        self.key = Some(key_from_der(der.as_ref()));
        self
    }

    /// The signing key from a file: PKCS #8, PEM or DER (told apart by the
    /// PEM armour). Read now; a missing file is an error at
    /// [`build`](Self::build).
    pub fn signing_key_file(mut self, path: impl AsRef<Path>) -> Self {
        let path = path.as_ref();
        self.key = Some(match std::fs::read(path) {
            Ok(mut bytes) => {
                let key = if bytes.trim_ascii_start().starts_with(b"-----BEGIN") {
                    key_from_pem(&bytes)
                } else {
                    key_from_der(&bytes)
                };
                // Best effort: do not leave the key in freed memory.
                bytes.fill(0);
                key
            }
            Err(e) => Err(MintBuildError::KeyFile {
                path: path.to_owned(),
                kind: e.kind(),
            }),
        });
        self
    }

    /// A fresh key for `alg` (`EdDSA` or `ES256`), for development and
    /// tests: it dies with the process, so tokens minted before a restart no
    /// longer verify.
    pub fn generated_key(mut self, alg: Algorithm) -> Self {
        self.key = Some(match alg {
            Algorithm::EdDSA => generate(SigningAlg::EdDSA),
            Algorithm::ES256 => generate(SigningAlg::ES256),
            _ => Err(MintBuildError::UnsupportedKey {
                reason: "the minter signs with EdDSA or ES256 only",
            }),
        });
        self
    }

    /// The key id. Default: the key's RFC 7638 JWK thumbprint (SHA-256,
    /// base64url), the same for the same key wherever it is loaded.
    pub fn kid(mut self, kid: impl Into<String>) -> Self {
        self.kid = Some(kid.into());
        self
    }

    /// The `iss` of every token: this gateway.
    pub fn issuer(mut self, issuer: impl Into<String>) -> Self {
        self.issuer = Some(issuer.into());
        self
    }

    /// The `aud` of every token: the upstream service.
    pub fn audience(mut self, audience: impl Into<String>) -> Self {
        self.audience = Some(audience.into());
        self
    }

    /// How long a token is valid: whole seconds, at least 1 and at most
    /// [`MAX_LIFETIME`]. Default [`DEFAULT_LIFETIME`].
    pub fn lifetime(mut self, lifetime: Duration) -> Self {
        self.lifetime = lifetime;
        self
    }

    /// The clock for `iat`, `exp` and the cache. Default: the system clock.
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// Tokens cached, one per principal; 0 turns the cache off. Default
    /// [`DEFAULT_CACHE_CAPACITY`].
    pub fn cache_capacity(mut self, entries: u64) -> Self {
        self.cache_capacity = entries;
        self
    }

    /// Publishes a previous key's public JWK (from the old minter's
    /// [`Minter::public_jwk`]) in [`Minter::jwks`], so tokens it signed
    /// still verify until they expire: keep it for at least the lifetime
    /// after the switch. An Ed25519 or P-256 public key with a `kid`; a JWK
    /// with private members is refused, never published. Up to 8.
    pub fn previous_public_key(mut self, jwk: Value) -> Self {
        self.previous.push(jwk);
        self
    }

    /// Builds the minter.
    ///
    /// # Errors
    /// The first mistake: no key, issuer or audience; a key that is not
    /// Ed25519 or P-256 PKCS #8 (RSA included); a lifetime of zero or over
    /// an hour (`Duration::MAX` too); a bad `kid` or previous key.
    pub fn build(self) -> Result<Minter, MintBuildError> {
        let key = self.key.ok_or(MintBuildError::MissingKey)??;
        let issuer = self
            .issuer
            .filter(|s| !s.is_empty())
            .ok_or(MintBuildError::MissingIssuer)?;
        let audience = self
            .audience
            .filter(|s| !s.is_empty())
            .ok_or(MintBuildError::MissingAudience)?;
        // Compared as Durations: `Duration::MAX` is refused, never converted.
        if self.lifetime < Duration::from_secs(1) || self.lifetime > MAX_LIFETIME {
            return Err(MintBuildError::Lifetime);
        }
        let lifetime = self.lifetime.as_secs() as i64;
        let (alg, mut jwk) = public_jwk(&key);
        let kid = match self.kid {
            Some(kid) if kid.is_empty() || kid.len() > MAX_KID_LEN => {
                return Err(MintBuildError::Kid);
            }
            Some(kid) => kid,
            None => thumbprint(&jwk),
        };
        jwk.insert("kid".into(), kid.clone().into());
        jwk.insert("alg".into(), alg.as_str().into());
        jwk.insert("use".into(), "sig".into());
        let public_jwk = Value::Object(jwk);

        if self.previous.len() > MAX_PREVIOUS_KEYS {
            return Err(MintBuildError::PreviousKey {
                reason: format!("at most {MAX_PREVIOUS_KEYS} previous keys"),
            });
        }
        let mut keys = vec![public_jwk.clone()];
        for jwk in &self.previous {
            let jwk = previous_key(jwk)?;
            if keys.iter().any(|k| k["kid"] == jwk["kid"]) {
                return Err(MintBuildError::PreviousKey {
                    reason: "its kid is already in the key set".into(),
                });
            }
            keys.push(jwk);
        }

        let header = json!({"alg": alg.as_str(), "kid": kid, "typ": TYP});
        let header_b64 = URL_SAFE_NO_PAD.encode(header.to_string());
        let mut payload_prefix = b"{".to_vec();
        for (name, value) in [("iss", &issuer), ("aud", &audience)] {
            erased::write(&mut payload_prefix, name);
            payload_prefix.push(b':');
            erased::write(&mut payload_prefix, value.as_str());
            payload_prefix.push(b',');
        }
        let cache = (self.cache_capacity > 0).then(|| {
            moka::sync::Cache::builder()
                .max_capacity(self.cache_capacity)
                // Entries outlive their use by half a lifetime at most, in
                // real time, whatever the injected clock says.
                .time_to_live(self.lifetime)
                .build()
        });
        Ok(Minter {
            inner: Arc::new(Inner {
                key,
                alg,
                kid,
                issuer,
                audience,
                lifetime,
                refresh_after: lifetime / 2,
                clock: self.clock,
                header_b64,
                payload_prefix,
                jwks: json!({ "keys": keys }),
                public_jwk,
                cache,
            }),
        })
    }
}

fn problem(p: KeyProblem) -> MintBuildError {
    match p {
        KeyProblem::Unsupported => MintBuildError::UnsupportedKey {
            reason: "not an Ed25519 or P-256 PKCS #8 private key",
        },
        KeyProblem::NoBackend => MintBuildError::Backend {
            reason: "no crypto backend compiled in (enable feature aws-lc-rs or ring)",
        },
        KeyProblem::Backend => MintBuildError::Backend {
            reason: "key generation failed",
        },
    }
}

fn generate(alg: SigningAlg) -> Result<SigningKey, MintBuildError> {
    SigningKey::generate(alg).map_err(problem)
}

pub(crate) fn key_from_der(der: &[u8]) -> Result<SigningKey, MintBuildError> {
    SigningKey::from_pkcs8(der).map_err(problem)
}

pub(crate) fn key_from_pem(pem: &[u8]) -> Result<SigningKey, MintBuildError> {
    let refused = |reason| Err(MintBuildError::UnsupportedKey { reason });
    const BEGIN: &[u8] = b"-----BEGIN PRIVATE KEY-----";
    const END: &[u8] = b"-----END PRIVATE KEY-----";
    let find = |needle: &[u8]| pem.windows(needle.len()).position(|w| w == needle);
    let Some(start) = find(BEGIN) else {
        return if find(b"-----BEGIN ENCRYPTED PRIVATE KEY-----").is_some() {
            refused(
                "an encrypted PKCS #8 key: decrypt it (openssl pkcs8 -in key.pem -out plain.pem)",
            )
        } else if find(b"-----BEGIN EC PRIVATE KEY-----").is_some() {
            refused("a SEC1 EC key: convert it (openssl pkcs8 -topk8 -nocrypt -in key.pem)")
        } else if find(b"-----BEGIN RSA PRIVATE KEY-----").is_some() {
            refused("an RSA key: the minter signs with Ed25519 or P-256")
        } else {
            refused("no -----BEGIN PRIVATE KEY----- block")
        };
    };
    let body = &pem[start + BEGIN.len()..];
    let Some(end) = body.windows(END.len()).position(|w| w == END) else {
        return refused("no -----END PRIVATE KEY----- line");
    };
    let b64: Vec<u8> = body[..end]
        .iter()
        .copied()
        .filter(|b| !b.is_ascii_whitespace())
        .collect();
    let Ok(mut der) = STANDARD.decode(&b64) else {
        return refused("the PEM body is not base64");
    };
    let key = key_from_der(&der);
    der.fill(0);
    key
}

/// The key's public JWK members (RFC 7518 §6.2 for P-256, RFC 8037 §2 for
/// Ed25519), without `kid`/`alg`/`use`.
pub(crate) fn public_jwk(key: &SigningKey) -> (Algorithm, Map<String, Value>) {
    let public = key.public_key();
    let mut jwk = Map::new();
    match key.alg() {
        SigningAlg::EdDSA => {
            jwk.insert("kty".into(), "OKP".into());
            jwk.insert("crv".into(), "Ed25519".into());
            jwk.insert("x".into(), URL_SAFE_NO_PAD.encode(public).into());
            (Algorithm::EdDSA, jwk)
        }
        SigningAlg::ES256 => {
            // Uncompressed SEC1: 04 || x (32) || y (32).
            let point = public.get(1..).unwrap_or_default();
            let (x, y) = point.split_at(point.len() / 2);
            jwk.insert("kty".into(), "EC".into());
            jwk.insert("crv".into(), "P-256".into());
            jwk.insert("x".into(), URL_SAFE_NO_PAD.encode(x).into());
            jwk.insert("y".into(), URL_SAFE_NO_PAD.encode(y).into());
            (Algorithm::ES256, jwk)
        }
    }
}

/// RFC 7638 §3: SHA-256 over the required members in lexicographic order,
/// no whitespace, base64url. `jwk` holds exactly those members here, and a
/// `serde_json::Map` without `preserve_order` is sorted; the members are
/// written out by name all the same, so the order never depends on that.
pub(crate) fn thumbprint(jwk: &Map<String, Value>) -> String {
    let mut canonical = Vec::with_capacity(128);
    canonical.push(b'{');
    let names: &[&str] = if jwk.contains_key("y") {
        &["crv", "kty", "x", "y"]
    } else {
        &["crv", "kty", "x"]
    };
    for (n, name) in names.iter().enumerate() {
        if n > 0 {
            canonical.push(b',');
        }
        erased::write(&mut canonical, *name);
        canonical.push(b':');
        erased::write(&mut canonical, &jwk[*name]);
    }
    canonical.push(b'}');
    URL_SAFE_NO_PAD.encode(crypto::sha256_parts(&[&canonical]))
}

/// A previous public key, checked and reduced to its public members.
fn previous_key(jwk: &Value) -> Result<Value, MintBuildError> {
    let refuse = |reason: &str| MintBuildError::PreviousKey {
        reason: reason.to_owned(),
    };
    let Some(obj) = jwk.as_object() else {
        return Err(refuse("not a JSON object"));
    };
    // RFC 7518 §6.2.2 / §6.3.2 / RFC 8037 §2: private members. A key set is
    // public; a private key pasted here by mistake must not be served.
    if ["d", "p", "q", "dp", "dq", "qi", "oth", "k"]
        .iter()
        .any(|m| obj.contains_key(*m))
    {
        return Err(refuse("it holds private key members"));
    }
    let text = |m: &str| obj.get(m).and_then(Value::as_str);
    let (alg, members): (Algorithm, &[&str]) = match (text("kty"), text("crv")) {
        (Some("OKP"), Some("Ed25519")) => (Algorithm::EdDSA, &["kty", "crv", "x"]),
        (Some("EC"), Some("P-256")) => (Algorithm::ES256, &["kty", "crv", "x", "y"]),
        _ => return Err(refuse("not an Ed25519 (OKP) or P-256 (EC) public key")),
    };
    match text("kid") {
        Some(kid) if !kid.is_empty() && kid.len() <= MAX_KID_LEN => {}
        _ => return Err(refuse("no kid, or one over 256 bytes")),
    }
    let mut out = Map::new();
    for m in members.iter().chain(&["kid"]) {
        out.insert((*m).to_owned(), obj.get(*m).cloned().unwrap_or(Value::Null));
    }
    out.insert("alg".into(), alg.as_str().into());
    out.insert("use".into(), "sig".into());
    let out = Value::Object(out);
    // The same loader the upstream uses must accept it.
    let set = KeySet::from_jwks(json!({ "keys": [&out] }).to_string().as_bytes()).map_err(|e| {
        MintBuildError::PreviousKey {
            reason: e.to_string(),
        }
    })?;
    if set.len() != 1 {
        return Err(refuse("the key set loader skipped it (a bad point or key)"));
    }
    Ok(out)
}
