#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]

// Without a backend every key would be refused at load and every token with
// it: a build that cannot verify anything must not compile.
#[cfg(not(any(feature = "aws-lc-rs", feature = "ring")))]
compile_error!(
    "tokenwarden needs a crypto backend: enable the feature `aws-lc-rs` (the default) or `ring`, \
     e.g. `tokenwarden = { version = \"0.1\", default-features = false, features = [\"ring\"] }`"
);

mod alg;
pub mod authn;
#[cfg(feature = "cache")]
mod cache;
mod claims;
mod clock;
mod crypto;
mod error;
mod keys;
pub mod logout;
mod requirements;
pub mod state;
mod token;
mod validator;

pub use alg::{Algorithm, UnknownAlgorithm};
#[cfg(feature = "cache")]
#[cfg_attr(docsrs, doc(cfg(feature = "cache")))]
pub use cache::CacheConfig;
pub use clock::{Clock, FixedClock, ManualClock, SystemClock};
pub use error::{BuildError, Error, ErrorKind};
pub use keys::{KeySet, KeySource, MAX_KEYS, SkippedKey};
pub use requirements::Requirements;
pub use token::Header;
pub use validator::{
    DEFAULT_LEEWAY, DEFAULT_MAX_TOKEN_SIZE, Validated, Validator, ValidatorBuilder, VerifiedJws,
};

#[cfg(feature = "remote")]
#[cfg_attr(docsrs, doc(cfg(feature = "remote")))]
pub mod remote;
#[cfg(feature = "remote")]
pub use remote::{
    OidcBuildError, OidcValidatorBuilder, RemoteKeySet, RemoteKeySetBuilder, RemoteStats,
};

#[cfg(any(feature = "tower", feature = "actix"))]
#[cfg_attr(docsrs, doc(cfg(any(feature = "tower", feature = "actix"))))]
pub mod middleware;

#[cfg(feature = "outgoing")]
#[cfg_attr(docsrs, doc(cfg(feature = "outgoing")))]
pub mod outgoing;

pub mod metrics;

#[cfg(feature = "testing")]
#[cfg_attr(docsrs, doc(cfg(feature = "testing")))]
pub mod testing;

#[cfg(feature = "mint")]
#[cfg_attr(docsrs, doc(cfg(feature = "mint")))]
pub mod mint;

/// Entry points for the fuzz targets in `fuzz/` to reach parsers that are not
/// public API. Compiled only under cargo-fuzz (`--cfg fuzzing`).
#[cfg(fuzzing)]
#[doc(hidden)]
pub mod fuzzing {
    /// Parses `body` as the discovery document of `issuer`, as a fetch does.
    #[cfg(feature = "remote")]
    pub fn discovery(
        body: &[u8],
        issuer: &str,
        allow_http_loopback: bool,
    ) -> Result<String, String> {
        crate::remote::fetch::parse_discovery(
            body,
            "https://fuzz.test/.well-known/openid-configuration",
            issuer,
            crate::remote::address::UrlPolicy {
                allow_http_loopback,
                allow_private: false,
            },
        )
        .map_err(|e| e.to_string())
    }

    /// Judges `body` as an RFC 7662 introspection answer (issuer
    /// `https://idp.test`, audience `api`) at `now`: `Ok(Ok((subject,
    /// exp)))` active, `Ok(Err(kind))` refused, `Err` broken.
    #[cfg(feature = "introspection")]
    pub fn introspection_answer(
        body: &[u8],
        now: i64,
    ) -> Result<Result<(String, Option<i64>), &'static str>, &'static str> {
        crate::authn::introspection::fuzz_judge(body, now)
    }
}
