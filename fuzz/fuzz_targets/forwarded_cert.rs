//! Any bytes as a gateway's client certificate header, in nginx's and
//! Envoy's formats: must never panic; a certificate it yields is a bounded
//! DER SEQUENCE; its names, read by `MtlsAuthenticator`, never panic either.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tokenwarden::authn::mtls::MAX_CERTIFICATE_SIZE;
use tokenwarden::authn::mtls::MtlsAuthenticator;
use tokenwarden::authn::mtls::forwarded::{Format, MAX_HEADER_SIZE, certificate};

fuzz_target!(|data: &[u8]| {
    let mtls = MtlsAuthenticator::new().allow_trust_domain("fuzz.test");
    for format in [Format::Nginx, Format::Envoy] {
        match certificate(format, data) {
            Ok(Some(cert)) => {
                assert!(data.len() <= MAX_HEADER_SIZE);
                assert!(cert.der().len() <= MAX_CERTIFICATE_SIZE);
                assert_eq!(cert.der().first(), Some(&0x30));
                let _ = mtls.principal(cert.der());
            }
            Ok(None) => assert!(data.trim_ascii().is_empty() || format == Format::Envoy),
            Err(e) => assert!(!e.kind().is_empty()),
        }
    }
    // Raw bytes as DER, too.
    let _ = mtls.principal(data);
});
