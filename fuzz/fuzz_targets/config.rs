//! Any text as the sidecar's configuration file (`tokenwarden serve
//! --config`): must never panic, and every refusal names the file and line.
#![no_main]

use libfuzzer_sys::fuzz_target;

// The binary's own module, compiled here as it is in the binary.
#[allow(dead_code)]
#[path = "../../src/bin/tokenwarden/config.rs"]
mod config;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Err(e) = config::parse(text, "fuzz.toml") {
        assert!(e.0.starts_with("fuzz.toml"), "message without the file: {}", e.0);
    }
});
