//! Any bytes as an OIDC discovery / RFC 8414 metadata document: must never
//! panic, and must only ever yield a `jwks_uri` when the document names
//! exactly the configured issuer and the URI is one we may fetch.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tokenwarden::fuzzing::discovery;

const ISSUER: &str = "https://idp.test/realms/a";

fuzz_target!(|data: &[u8]| {
    for allow_http_loopback in [false, true] {
        let Ok(jwks_uri) = discovery(data, ISSUER, allow_http_loopback) else {
            continue;
        };
        // Accepted: the document is JSON naming our issuer exactly...
        let doc: serde_json::Value = serde_json::from_slice(data).expect("accepted but not JSON");
        assert_eq!(doc["issuer"].as_str(), Some(ISSUER), "issuer not checked");
        assert!(doc["jwks_uri"].is_string());
        // ...and the URI is https, or http only to loopback when allowed.
        let lower = jwks_uri.to_ascii_lowercase();
        assert!(
            lower.starts_with("https://") || (allow_http_loopback && lower.starts_with("http://")),
            "jwks_uri scheme not checked: {jwks_uri}"
        );
    }
});
