//! Any text as the sidecar's configuration file (`tokenwarden serve
//! --config`) and as an original request path: must never panic, every
//! refusal names the file and line, and a normalised path is its own normal
//! form (so a rule written in normal form and a request agree).
#![no_main]

use libfuzzer_sys::fuzz_target;

// The binary's own module, compiled here as it is in the binary.
#[allow(dead_code)]
#[path = "../../src/bin/tokenwarden/config.rs"]
mod config;
// The modules config.rs reaches through `crate::` for its sections.
#[allow(dead_code)]
#[path = "../../src/bin/tokenwarden/api_keys.rs"]
mod api_keys;
#[allow(dead_code)]
#[path = "../../src/bin/tokenwarden/internal_token.rs"]
mod internal_token;
#[path = "../../src/bin/tokenwarden/introspection.rs"]
mod introspection;
#[allow(dead_code)]
#[path = "../../src/bin/tokenwarden/legacy.rs"]
mod legacy;
#[path = "../../src/bin/tokenwarden/mtls.rs"]
mod mtls;
#[allow(dead_code)]
#[path = "../../src/bin/tokenwarden/redis_config.rs"]
mod redis_config;
#[allow(dead_code)]
#[path = "../../src/bin/tokenwarden/revocation.rs"]
mod revocation;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Err(e) = config::parse(text, "fuzz.toml") {
        assert!(
            e.0.starts_with("fuzz.toml"),
            "message without the file: {}",
            e.0
        );
    }
    for fold in [false, true] {
        if let Ok(normal) = config::path::normalise(text, fold) {
            assert_eq!(
                config::path::normalise(&normal, fold).as_deref(),
                Ok(normal.as_str()),
                "not a fixpoint"
            );
            assert!(normal.starts_with('/') && !normal.contains("//"));
            assert!(!normal.split('/').any(|s| s == "." || s == ".."));
        }
    }
});
