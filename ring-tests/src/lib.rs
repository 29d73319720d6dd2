//! Nothing here: the tests in `tests/` run tokenwarden on the ring backend
//! alone (see `Cargo.toml`).
