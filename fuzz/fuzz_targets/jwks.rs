//! Any bytes as a JWK Set document: must never panic; a set that loads
//! must then answer lookups without panicking.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tokenwarden::KeySet;

fuzz_target!(|data: &[u8]| {
    if let Ok(keys) = KeySet::from_jwks(data) {
        let _ = keys.kids().count();
        let _ = keys.verify_jws("eyJhbGciOiJFUzI1NiIsImtpZCI6ImEifQ.e30.AAAA");
    }
});
