//! Where fetches may go: the URL policy (scheme, IP-literal hosts) and the
//! connect-time address filter that every DNS answer passes through, so that
//! neither a discovered `jwks_uri`, nor a redirect, nor a DNS answer that
//! changes between check and connect (rebinding) can point a fetch at a
//! loopback, private or link-local service (SSRF).

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, ToSocketAddrs};

/// What a fetch may connect to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct UrlPolicy {
    /// Plain http to loopback (and so loopback addresses at all).
    pub(crate) allow_http_loopback: bool,
    /// Any address, private, link-local and loopback ones included.
    pub(crate) allow_private: bool,
}

/// The kind of an address, for the policy and for the error message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AddrClass {
    /// Globally routable unicast.
    Public,
    /// 127.0.0.0/8, ::1 (RFC 1122 §3.2.1.3, RFC 4291 §2.5.3).
    Loopback,
    /// Private, link-local, unspecified, shared, reserved, multicast...
    NonPublic(&'static str),
}

impl UrlPolicy {
    fn allow_loopback(self) -> bool {
        self.allow_http_loopback || self.allow_private
    }

    /// Whether a connection to `ip` is allowed.
    pub(crate) fn allows(self, ip: IpAddr) -> bool {
        match classify(ip) {
            AddrClass::Public => true,
            AddrClass::Loopback => self.allow_loopback(),
            AddrClass::NonPublic(_) => self.allow_private,
        }
    }

    /// Checks every address `host` resolved to: all must be allowed (one
    /// refused address refuses the name: a mixed answer is a rebinding
    /// attempt or a misconfiguration), and `localhost` must resolve to
    /// loopback only (RFC 6761 §6.3), since plain http may go to it.
    pub(crate) fn check_resolved(
        self,
        host: &str,
        addrs: Vec<SocketAddr>,
    ) -> Result<Vec<SocketAddr>, AddressRefused> {
        if addrs.is_empty() {
            return Err(AddressRefused {
                host: host.to_owned(),
                ip: None,
                class: "no",
            });
        }
        let localhost = is_localhost_name(host);
        for a in &addrs {
            let class = classify(a.ip());
            let refused = !self.allows(a.ip()) || localhost && class != AddrClass::Loopback;
            if refused {
                return Err(AddressRefused {
                    host: host.to_owned(),
                    ip: Some(a.ip()),
                    class: class.name(),
                });
            }
        }
        Ok(addrs)
    }
}

impl AddrClass {
    fn name(self) -> &'static str {
        match self {
            AddrClass::Public => "public",
            AddrClass::Loopback => "loopback",
            AddrClass::NonPublic(n) => n,
        }
    }
}

/// `localhost` and names under it (RFC 6761 §6.3), with or without the
/// trailing dot.
pub(crate) fn is_localhost_name(host: &str) -> bool {
    let h = host.strip_suffix('.').unwrap_or(host).to_ascii_lowercase();
    h == "localhost" || h.ends_with(".localhost")
}

/// Classifies an address (IANA special-purpose registries, RFC 6890).
pub(crate) fn classify(ip: IpAddr) -> AddrClass {
    match ip {
        IpAddr::V4(v4) => classify_v4(v4),
        IpAddr::V6(v6) => classify_v6(v6),
    }
}

fn classify_v4(ip: Ipv4Addr) -> AddrClass {
    let o = ip.octets();
    if ip.is_loopback() {
        AddrClass::Loopback
    } else if ip.is_private() {
        AddrClass::NonPublic("private (RFC 1918)")
    } else if ip.is_link_local() {
        AddrClass::NonPublic("link-local")
    } else if o[0] == 0 {
        AddrClass::NonPublic("unspecified")
    } else if o[0] == 100 && (o[1] & 0xc0) == 64 {
        AddrClass::NonPublic("shared (RFC 6598)")
    } else if o[0] == 192 && o[1] == 0 && (o[2] == 0 || o[2] == 2)
        || o[0] == 198 && o[1] == 51 && o[2] == 100
        || o[0] == 203 && o[1] == 0 && o[2] == 113
        || o[0] == 192 && o[1] == 88 && o[2] == 99
        || o[0] == 198 && (o[1] & 0xfe) == 18
    {
        AddrClass::NonPublic("special-purpose")
    } else if ip.is_multicast() || o[0] >= 240 {
        AddrClass::NonPublic("multicast or reserved")
    } else {
        AddrClass::Public
    }
}

fn classify_v6(ip: Ipv6Addr) -> AddrClass {
    // An IPv4 address in IPv6 clothing is judged as the IPv4 address:
    // mapped (RFC 4291 §2.5.5.2), NAT64 (RFC 6052 §2.1), 6to4 (RFC 3056 §2).
    if let Some(v4) = ip.to_ipv4_mapped() {
        return classify_v4(v4);
    }
    let s = ip.segments();
    let embedded = |hi: u16, lo: u16| {
        let [a, b] = hi.to_be_bytes();
        let [c, d] = lo.to_be_bytes();
        classify_v4(Ipv4Addr::new(a, b, c, d))
    };
    if s[0] == 0x64 && s[1] == 0xff9b && s[2..6] == [0, 0, 0, 0] {
        return embedded(s[6], s[7]);
    }
    if s[0] == 0x2002 {
        return embedded(s[1], s[2]);
    }
    if ip.is_loopback() {
        AddrClass::Loopback
    } else if ip.is_unspecified() {
        AddrClass::NonPublic("unspecified")
    } else if (s[0] & 0xfe00) == 0xfc00 {
        AddrClass::NonPublic("unique local (fc00::/7)")
    } else if (s[0] & 0xffc0) == 0xfe80 || (s[0] & 0xffc0) == 0xfec0 {
        AddrClass::NonPublic("link-local")
    } else if (s[0] & 0xe000) != 0x2000
        || s[0] == 0x2001 && (s[1] == 0x0db8 || s[1] < 0x0200)
        || (s[0] == 0x3fff && s[1] < 0x1000)
    {
        // Only 2000::/3 is global unicast; within it, documentation
        // (2001:db8::/32, 3fff::/20) and the IETF block 2001::/23 (Teredo,
        // ORCHID, benchmarking) are not services we fetch keys from.
        AddrClass::NonPublic("special-purpose")
    } else {
        AddrClass::Public
    }
}

/// A name resolved to an address the policy refuses; nothing was connected.
#[derive(Debug, Clone)]
pub(crate) struct AddressRefused {
    host: String,
    ip: Option<IpAddr>,
    class: &'static str,
}

impl fmt::Display for AddressRefused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.ip {
            Some(ip) => write!(
                f,
                "{} resolves to {ip}, a {} address: refused before connecting (allow_private_addresses allows it)",
                self.host, self.class
            ),
            None => write!(f, "{} resolves to no address", self.host),
        }
    }
}

impl std::error::Error for AddressRefused {}

/// The resolver every default client uses: the system's resolver, then the
/// policy over its answer. reqwest connects only to the addresses returned
/// here, so a name cannot be checked as public and connected as private.
#[derive(Debug, Clone, Copy)]
pub(crate) struct GuardedResolver(pub(crate) UrlPolicy);

impl reqwest::dns::Resolve for GuardedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let policy = self.0;
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let lookup = host.clone();
            let addrs = tokio::task::spawn_blocking(move || {
                (lookup.as_str(), 0)
                    .to_socket_addrs()
                    .map(Iterator::collect)
            })
            .await
            .map_err(|e| Box::new(e) as Box<dyn std::error::Error + Send + Sync>)??;
            let allowed = policy.check_resolved(&host, addrs)?;
            Ok(Box::new(allowed.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// `url` for logs and errors: no query, fragment or userinfo, which may
/// carry credentials.
pub(crate) fn redact(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(mut u) => {
            u.set_query(None);
            u.set_fragment(None);
            // Fails only for URLs that cannot have userinfo at all.
            let _ = u.set_username("");
            let _ = u.set_password(None);
            let mut shown: String = u.into();
            // A hostile discovery document can name a URL of any length (up to
            // the 1 MiB body): errors and logs show its start only. A parsed
            // URL is ASCII (percent-encoded, punycode), so any cut is a char
            // boundary.
            if shown.len() > REDACTED_MAX {
                shown.truncate(REDACTED_MAX);
                shown.push('…');
            }
            shown
        }
        Err(_) => "(not a URL)".to_owned(),
    }
}

/// Longest URL shown in an error or a log line.
const REDACTED_MAX: usize = 256;

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn only_global_unicast_is_public() {
        for public in ["8.8.8.8", "1.1.1.1", "2606:4700::1111", "::ffff:8.8.8.8"] {
            assert_eq!(classify(ip(public)), AddrClass::Public, "{public}");
        }
        for loopback in ["127.0.0.1", "127.9.9.9", "::1", "::ffff:127.0.0.1"] {
            assert_eq!(classify(ip(loopback)), AddrClass::Loopback, "{loopback}");
        }
        for other in [
            "10.0.0.1",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "169.254.169.254",
            "0.0.0.0",
            "0.1.2.3",
            "100.64.0.1",
            "192.0.0.1",
            "192.0.2.1",
            "198.18.0.1",
            "224.0.0.1",
            "240.0.0.1",
            "255.255.255.255",
            "::",
            "fc00::1",
            "fd12:3456::1",
            "fe80::1",
            "fec0::1",
            "ff02::1",
            "2001:db8::1",
            "2001::1",
            "::ffff:10.0.0.1",
            "::ffff:169.254.169.254",
            "64:ff9b::a00:1",
            "2002:a00:1::1",
            "::10.0.0.1",
        ] {
            assert!(
                matches!(classify(ip(other)), AddrClass::NonPublic(_)),
                "{other}"
            );
        }
    }

    #[test]
    fn policy_allows_loopback_with_http_loopback_and_everything_with_private() {
        let strict = UrlPolicy::default();
        let loopback = UrlPolicy {
            allow_http_loopback: true,
            allow_private: false,
        };
        let private = UrlPolicy {
            allow_http_loopback: false,
            allow_private: true,
        };
        assert!(strict.allows(ip("8.8.8.8")));
        assert!(!strict.allows(ip("127.0.0.1")));
        assert!(loopback.allows(ip("127.0.0.1")));
        assert!(!loopback.allows(ip("10.0.0.1")));
        assert!(!loopback.allows(ip("169.254.169.254")));
        assert!(private.allows(ip("10.0.0.1")));
        assert!(private.allows(ip("127.0.0.1")));
    }

    fn sock(s: &str) -> SocketAddr {
        SocketAddr::new(ip(s), 443)
    }

    /// DNS rebinding: whatever the name, one refused address in the answer
    /// refuses it, and nothing is handed to the connector.
    #[test]
    fn a_resolved_answer_with_any_refused_address_is_refused_whole() {
        let loopback = UrlPolicy {
            allow_http_loopback: true,
            allow_private: false,
        };
        let e = loopback
            .check_resolved("idp.example.com", vec![sock("8.8.8.8"), sock("10.0.0.1")])
            .unwrap_err();
        assert!(e.to_string().contains("10.0.0.1"), "{e}");
        assert!(
            UrlPolicy::default()
                .check_resolved("idp.example.com", vec![sock("127.0.0.1")])
                .is_err()
        );
        assert!(
            UrlPolicy::default()
                .check_resolved("idp.example.com", vec![])
                .is_err()
        );
        // localhost may only be loopback, even where private is allowed.
        let private = UrlPolicy {
            allow_http_loopback: true,
            allow_private: true,
        };
        assert!(
            private
                .check_resolved("LocalHost.", vec![sock("10.0.0.1")])
                .is_err()
        );
        assert!(
            UrlPolicy::default()
                .check_resolved("localhost", vec![sock("127.0.0.1")])
                .is_err()
        );
        assert_eq!(
            loopback
                .check_resolved("idp.example.com", vec![sock("8.8.8.8")])
                .unwrap(),
            vec![sock("8.8.8.8")]
        );
    }

    #[test]
    fn redaction_drops_query_fragment_and_userinfo() {
        assert_eq!(
            redact("https://user:pw@idp.test/jwks?token=secret#frag"),
            "https://idp.test/jwks"
        );
        assert_eq!(redact("not a url ?secret"), "(not a URL)");
        // A hostile `jwks_uri` of any length is shown cut.
        let long = format!("https://idp.test/{}", "a".repeat(100_000));
        let shown = redact(&long);
        assert!(
            shown.len() <= REDACTED_MAX + '…'.len_utf8(),
            "{}",
            shown.len()
        );
        assert!(shown.ends_with('…') && shown.starts_with("https://idp.test/aaa"));
    }
}
