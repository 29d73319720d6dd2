//! The published RFC examples (the main crate's `tests/rfc_vectors.rs`, the
//! same file) verified by ring alone.
#[path = "../../tests/rfc_vectors.rs"]
mod vectors;
