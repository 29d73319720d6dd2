//! The published RFC examples (the main crate's `tests/rfc_vectors.rs`, the
//! same file) verified by ring alone.
// The ES512 vectors are used only where aws-lc-rs is compiled in.
#[allow(dead_code)]
#[path = "../../tests/rfc_vectors.rs"]
mod vectors;
