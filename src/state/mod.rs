//! State that outlives one request and that a fleet may share: the
//! revocation [`Denylist`](denylist::Denylist) and the replay cache of
//! one-time values (DPoP proof `jti`s), each with a local store built in.
//! The traits are async or fed from outside so that a store shared across
//! instances (Redis) can implement them.

pub mod denylist;
#[cfg(feature = "redis")]
pub mod redis;
pub mod replay;
