//! Any bytes as an OIDC discovery / RFC 8414 metadata document: must never
//! panic, and must only ever yield a `jwks_uri` when the document names
//! exactly the configured issuer and the URI is one we may fetch: https, or
//! plain http only to loopback (and only when allowed), and never an
//! IP-literal host that is loopback (unless allowed), private or link-local.
#![no_main]

use std::net::IpAddr;

use libfuzzer_sys::fuzz_target;
use tokenwarden::fuzzing::discovery;

const ISSUER: &str = "https://idp.test/realms/a";

/// An address no fetch may reach without opting in (the oracle's own,
/// deliberately simple list, independent of the crate's classifier).
fn internal(ip: IpAddr) -> bool {
    let ip = match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    };
    match ip {
        IpAddr::V4(v4) => {
            v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || v4.octets()[0] == 0
        }
        IpAddr::V6(v6) => {
            let s = v6.segments()[0];
            v6.is_unspecified()
                || v6.is_multicast()
                || (s & 0xfe00) == 0xfc00
                || (s & 0xffc0) == 0xfe80
        }
    }
}

fn loopback(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V6(v6) => {
            v6.is_loopback() || v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
        }
        IpAddr::V4(v4) => v4.is_loopback(),
    }
}

fuzz_target!(|data: &[u8]| {
    for allow_http_loopback in [false, true] {
        let Ok(jwks_uri) = discovery(data, ISSUER, allow_http_loopback) else {
            continue;
        };
        // Accepted: the document is JSON naming our issuer exactly...
        let doc: serde_json::Value = serde_json::from_slice(data).expect("accepted but not JSON");
        assert_eq!(doc["issuer"].as_str(), Some(ISSUER), "issuer not checked");
        assert!(doc["jwks_uri"].is_string());
        // ...the URI is https, or http only to loopback when allowed...
        let url = url::Url::parse(&jwks_uri).expect("accepted but not a URL");
        let ip = match url.host() {
            Some(url::Host::Ipv4(v4)) => Some(IpAddr::V4(v4)),
            Some(url::Host::Ipv6(v6)) => Some(IpAddr::V6(v6)),
            Some(url::Host::Domain(_)) => None,
            None => panic!("accepted without a host: {jwks_uri}"),
        };
        match url.scheme() {
            "https" => {}
            "http" => {
                assert!(
                    allow_http_loopback,
                    "http accepted without opt-in: {jwks_uri}"
                );
                let host_is_loopback = match (ip, url.host_str()) {
                    (Some(ip), _) => loopback(ip),
                    (None, Some(name)) => {
                        let name = name.trim_end_matches('.').to_ascii_lowercase();
                        name == "localhost" || name.ends_with(".localhost")
                    }
                    (None, None) => false,
                };
                assert!(
                    host_is_loopback,
                    "http accepted to a host that is not loopback: {jwks_uri}"
                );
            }
            other => panic!("scheme {other} accepted: {jwks_uri}"),
        }
        // ...and an IP literal is never internal, nor loopback unless allowed.
        if let Some(ip) = ip {
            assert!(!internal(ip), "internal address accepted: {jwks_uri}");
            assert!(
                allow_http_loopback || !loopback(ip),
                "loopback accepted without opt-in: {jwks_uri}"
            );
        }
    }
});
