//! [`Validator::oidc`]: discovery, the first keys and the validator in one
//! call, with the issuer typed once.

use std::time::Duration;

use super::{FetchError, RemoteKeySet, RemoteKeySetBuilder};
use crate::alg::Algorithm;
use crate::error::BuildError;
use crate::keys::KeySet;
use crate::validator::{Validator, ValidatorBuilder};

impl Validator {
    /// A validator for the OpenID Connect provider `issuer`, in one call
    /// (feature `remote`): [`build`](OidcValidatorBuilder::build)`.await`
    /// fetches `<issuer>/.well-known/openid-configuration` (whose `issuer`
    /// must equal `issuer` exactly), waits for the first keys
    /// ([`RemoteKeySet::ready`]) and returns a validator that accepts
    /// tokens from `issuer` only, with keys refreshed in the background.
    /// The synchronous path ([`Validator::builder`] with a
    /// [`RemoteKeySet`]) stays available.
    ///
    /// ```no_run
    /// use tokenwarden::Validator;
    ///
    /// # async fn run(token: &str) -> Result<(), Box<dyn std::error::Error>> {
    /// let validator = Validator::oidc("https://idp.example.com/realms/main")
    ///     .audience("orders-api")
    ///     .build()
    ///     .await?; // keys loaded, or a clear error within the timeout
    /// let claims = validator.validate_async::<serde_json::Value>(token).await?;
    /// # Ok(()) }
    /// ```
    pub fn oidc(issuer: impl Into<String>) -> OidcValidatorBuilder {
        OidcValidatorBuilder {
            issuer: issuer.into(),
            validator: Validator::builder(),
            keys: RemoteKeySet::builder(),
        }
    }
}

/// Configures a [`Validator`] for one OpenID Connect provider, its keys
/// found by discovery: see [`Validator::oidc`]. The common settings of both
/// [`ValidatorBuilder`] and [`RemoteKeySetBuilder`] are here; the rest are
/// reached through [`validator_with`](Self::validator_with) and
/// [`keys_with`](Self::keys_with).
#[must_use]
#[derive(Debug)]
pub struct OidcValidatorBuilder {
    issuer: String,
    validator: ValidatorBuilder,
    keys: RemoteKeySetBuilder,
}

/// Why [`OidcValidatorBuilder::build`] failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OidcBuildError {
    /// The configuration is incomplete or refused (no audience, a URL that
    /// is not allowed, no Tokio runtime, ...).
    #[error(transparent)]
    Config(#[from] BuildError),
    /// No keys could be loaded: the provider is down or slow past the
    /// timeout, its discovery document names another issuer, or it serves
    /// no usable key set.
    #[error("no keys loaded from the identity provider {issuer}: {source}")]
    Keys {
        /// The issuer whose keys were sought.
        issuer: String,
        /// The failure of the fetch waited for.
        source: FetchError,
    },
}

impl OidcValidatorBuilder {
    /// Accepts tokens whose `aud` contains `aud`; may be called several
    /// times ([`ValidatorBuilder::audience`]).
    pub fn audience(mut self, aud: impl Into<String>) -> Self {
        self.validator = self.validator.audience(aud);
        self
    }

    /// The algorithms accepted ([`ValidatorBuilder::algorithms`]).
    pub fn algorithms(mut self, algs: impl IntoIterator<Item = Algorithm>) -> Self {
        self.validator = self.validator.algorithms(algs);
        self
    }

    /// Clock-skew allowance ([`ValidatorBuilder::leeway`]).
    pub fn leeway(mut self, leeway: Duration) -> Self {
        self.validator = self.validator.leeway(leeway);
        self
    }

    /// Requires the header's `typ` ([`ValidatorBuilder::required_type`]).
    pub fn required_type(mut self, typ: impl Into<String>) -> Self {
        self.validator = self.validator.required_type(typ);
        self
    }

    /// Any other validator setting: `f` receives the validator builder
    /// (issuer and keys are set by [`build`](Self::build)).
    pub fn validator_with(mut self, f: impl FnOnce(ValidatorBuilder) -> ValidatorBuilder) -> Self {
        self.validator = f(self.validator);
        self
    }

    /// Timeout for one request, and for the wait for the first keys in
    /// [`build`](Self::build) (default 5 s; [`RemoteKeySetBuilder::timeout`]).
    pub fn timeout(mut self, d: Duration) -> Self {
        self.keys = self.keys.timeout(d);
        self
    }

    /// Fetches the discovery document from `url` instead of
    /// `<issuer>/.well-known/openid-configuration`: the identity provider
    /// reached through an internal name while tokens carry the public
    /// issuer. The document's `issuer` must still equal the configured one
    /// ([`RemoteKeySetBuilder::discovery_url`]).
    ///
    /// ```no_run
    /// use tokenwarden::Validator;
    ///
    /// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
    /// let validator = Validator::oidc("https://login.example.com/realms/main")
    ///     .discovery_url("https://keycloak.internal/realms/main/.well-known/openid-configuration")
    ///     .allow_private_addresses(true)
    ///     .audience("orders-api")
    ///     .build()
    ///     .await?;
    /// # let _ = validator;
    /// # Ok(()) }
    /// ```
    pub fn discovery_url(mut self, url: impl Into<String>) -> Self {
        self.keys = self.keys.discovery_url(url);
        self
    }

    /// Plain http to a loopback issuer, for tests and local development
    /// ([`RemoteKeySetBuilder::allow_http_loopback`]).
    pub fn allow_http_loopback(mut self, allow: bool) -> Self {
        self.keys = self.keys.allow_http_loopback(allow);
        self
    }

    /// An identity provider on a private network
    /// ([`RemoteKeySetBuilder::allow_private_addresses`]).
    pub fn allow_private_addresses(mut self, allow: bool) -> Self {
        self.keys = self.keys.allow_private_addresses(allow);
        self
    }

    /// Keys to use until the first fetch succeeds: `build` then returns
    /// without waiting on the network ([`RemoteKeySetBuilder::bootstrap`]).
    pub fn bootstrap(mut self, keys: KeySet) -> Self {
        self.keys = self.keys.bootstrap(keys);
        self
    }

    /// The HTTP client for fetches ([`RemoteKeySetBuilder::http_client`]);
    /// build it with [`tokenwarden::remote::reqwest`](crate::remote::reqwest).
    pub fn http_client(mut self, client: reqwest::Client) -> Self {
        self.keys = self.keys.http_client(client);
        self
    }

    /// Any other key-set setting: `f` receives the key-set builder (the
    /// source is set by [`build`](Self::build)).
    pub fn keys_with(mut self, f: impl FnOnce(RemoteKeySetBuilder) -> RemoteKeySetBuilder) -> Self {
        self.keys = f(self.keys);
        self
    }

    /// Starts the key set by discovery, waits for its first keys (at most
    /// the [`timeout`](Self::timeout)) and builds the validator. Must run
    /// inside a Tokio runtime.
    ///
    /// # Errors
    /// [`OidcBuildError::Config`] for a configuration the builders refuse;
    /// [`OidcBuildError::Keys`] when no keys were loaded in time.
    pub async fn build(self) -> Result<Validator, OidcBuildError> {
        let keys = self.keys.discovery(self.issuer.as_str()).build()?;
        // Checked before waiting on the network: a missing audience is
        // reported as such, not after a timeout.
        let validator = self
            .validator
            .issuer(self.issuer.as_str())
            .keys(keys.clone())
            .build()?;
        keys.ready().await.map_err(|source| OidcBuildError::Keys {
            issuer: self.issuer,
            source,
        })?;
        Ok(validator)
    }
}
