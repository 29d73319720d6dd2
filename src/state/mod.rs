//! Shared request state behind small async traits, with a local store
//! built in: the replay cache of one-time values (DPoP proof `jti`s).
//! The traits are async so that a store shared across instances (Redis)
//! can implement them.

pub mod replay;
