//! `[introspection]`: opaque access tokens judged by the identity
//! provider's RFC 7662 introspection endpoint, beside bearer JWTs. With
//! `[internal_token]`, a pass for an opaque token carries a minted JWT
//! instead (the phantom-token pattern): the opaque token never crosses the
//! gateway.
//!
//! Every value is checked at load (and so by `--check`): URLs, the client
//! secret or key file, and each number within bounds, 0 and absurdly large
//! values refused with the file and line. The endpoint itself (and its
//! discovery) is reached only by `serve`.

use std::ops::{Range, RangeInclusive};
use std::time::Duration;

use serde::Deserialize;
use tokenwarden::authn::introspection::{self as intro, IntrospectionAuthenticator};
use tokenwarden::authn::mtls::CertificateBinding;
use toml::Spanned;

use crate::config::ConfigError;

/// The longest client secret read from `client_secret_file`.
const MAX_SECRET_BYTES: u64 = 4096;

/// `[introspection]` as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IntrospectionFile {
    endpoint: Option<Spanned<String>>,
    issuer: Option<Spanned<String>>,
    discovery_url: Option<Spanned<String>>,
    client_id: Spanned<String>,
    client_auth: Option<Spanned<String>>,
    client_secret_file: Option<Spanned<String>>,
    private_key_file: Option<Spanned<String>>,
    audiences: Option<Vec<Spanned<String>>>,
    positive_ttl_seconds: Option<Spanned<u64>>,
    negative_ttl_seconds: Option<Spanned<u64>>,
    max_entries: Option<Spanned<u64>>,
    max_bytes: Option<Spanned<u64>>,
    timeout_ms: Option<Spanned<u64>>,
    max_concurrent: Option<Spanned<u64>>,
    max_failures: Option<Spanned<u64>>,
    max_backoff_seconds: Option<Spanned<u64>>,
    retry_after_seconds: Option<Spanned<u64>>,
    subject_fallback: Option<bool>,
}

/// Where the endpoint is.
#[derive(Debug, Clone)]
pub enum Where {
    /// This URL.
    Endpoint(String),
    /// The `introspection_endpoint` of the issuer's metadata (from this
    /// document URL when given).
    Discovery(String, Option<String>),
}

/// How the sidecar proves itself to the endpoint (RFC 7662 §2.1).
#[derive(Clone)]
pub enum ClientAuth {
    /// `client_secret_basic`, the secret read from the file at load.
    Basic(String),
    /// `client_secret_post`.
    Post(String),
    /// `private_key_jwt` (RFC 7523) with the key in this file.
    PrivateKeyJwt(String),
}

impl std::fmt::Debug for ClientAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the secret.
        f.write_str(match self {
            ClientAuth::Basic(_) => "client_secret_basic",
            ClientAuth::Post(_) => "client_secret_post",
            ClientAuth::PrivateKeyJwt(_) => "private_key_jwt",
        })
    }
}

/// The checked `[introspection]`.
#[derive(Debug, Clone)]
pub struct Introspection {
    pub at: Where,
    pub issuer: Option<String>,
    pub client_id: String,
    pub auth: ClientAuth,
    pub audiences: Vec<String>,
    pub positive_ttl: Duration,
    pub negative_ttl: Duration,
    pub max_entries: usize,
    pub max_bytes: usize,
    pub timeout: Duration,
    pub max_concurrent: usize,
    pub max_failures: u32,
    pub max_backoff: Duration,
    pub retry_after: u32,
    pub leeway: Duration,
    pub allow_http: bool,
    pub allow_private_addresses: bool,
    /// Without `sub`, `username:<username>` or `client_id:<client_id>` is
    /// the subject (off: such an answer is refused).
    pub subject_fallback: bool,
}

impl Introspection {
    /// The authenticator, with discovery done first when configured (within
    /// the timeout); `binding` from `[mtls] require_bound_tokens`, as for
    /// JWTs; `denylist` from `[revocation]`, as for JWTs: a logout refuses
    /// the subject's opaque tokens at once, kept verdicts included.
    pub async fn authenticator(
        &self,
        binding: CertificateBinding,
        denylist: Option<tokenwarden::state::denylist::Denylist>,
    ) -> Result<IntrospectionAuthenticator, String> {
        let mut b = IntrospectionAuthenticator::builder().certificate_binding(binding);
        if let Some(d) = denylist {
            b = b.denylist(d);
        }
        b = match &self.at {
            Where::Endpoint(url) => b.endpoint(url.clone()),
            Where::Discovery(issuer, None) => b.discovery(issuer.clone()),
            Where::Discovery(issuer, Some(doc)) => {
                b.discovery(issuer.clone()).discovery_url(doc.clone())
            }
        };
        b = match &self.auth {
            ClientAuth::Basic(s) => b.client_secret_basic(self.client_id.clone(), s.clone()),
            ClientAuth::Post(s) => b.client_secret_post(self.client_id.clone(), s.clone()),
            ClientAuth::PrivateKeyJwt(f) => b.private_key_jwt_file(self.client_id.clone(), f),
        };
        if let Some(iss) = &self.issuer {
            b = b.issuer(iss.clone());
        }
        for aud in &self.audiences {
            b = b.audience(aud.clone());
        }
        b.positive_ttl(self.positive_ttl)
            .negative_ttl(self.negative_ttl)
            .max_entries(self.max_entries)
            .max_bytes(self.max_bytes)
            .timeout(self.timeout)
            .max_concurrent(self.max_concurrent)
            .max_failures(self.max_failures)
            .max_backoff(self.max_backoff)
            .retry_after(self.retry_after)
            .leeway(self.leeway)
            .allow_http_loopback(self.allow_http)
            .allow_private_addresses(self.allow_private_addresses)
            .subject_fallback(self.subject_fallback)
            .build()
            .await
            .map_err(|e| e.to_string())
    }
}

/// What the top level of the file gives the section.
pub struct Context<'a> {
    pub allow_http: bool,
    pub allow_private_addresses: bool,
    pub leeway_seconds: u64,
    /// The top-level `audiences`: the default of the section's.
    pub audiences: &'a [String],
}

/// Checks `[introspection]`: exactly one of `endpoint` and `issuer`-based
/// discovery; exactly one of `client_secret_file` and `private_key_file`
/// (which must load now); every number within its bounds.
pub fn check(
    f: &IntrospectionFile,
    cx: &Context<'_>,
    at: &dyn Fn(Range<usize>, &str, &str) -> ConfigError,
) -> Result<Introspection, ConfigError> {
    let url = |v: &Spanned<String>, field: &str| {
        crate::config::check_url(v.get_ref(), cx.allow_http)
            .map_err(|p| at(v.span(), &format!("introspection.{field}"), &p))
    };
    let where_ = match (&f.endpoint, &f.issuer, &f.discovery_url) {
        (Some(e), _, None) => {
            url(e, "endpoint")?;
            Where::Endpoint(e.get_ref().clone())
        }
        (Some(_), _, Some(d)) => {
            return Err(at(
                d.span(),
                "introspection.discovery_url",
                "give endpoint, or issuer (and discovery_url) for discovery, not both",
            ));
        }
        (None, Some(i), d) => {
            if let Some(d) = d {
                url(d, "discovery_url")?;
            }
            Where::Discovery(i.get_ref().clone(), d.as_ref().map(|d| d.get_ref().clone()))
        }
        (None, None, _) => {
            return Err(at(
                f.client_id.span(),
                "introspection",
                "name the endpoint: endpoint = \"https://…\", or issuer = \"https://…\" to find it by discovery",
            ));
        }
    };
    if let Some(i) = &f.issuer {
        url(i, "issuer")?;
    }
    let client_id = f.client_id.get_ref();
    if client_id.trim().is_empty() || client_id.chars().any(char::is_control) {
        return Err(at(
            f.client_id.span(),
            "introspection.client_id",
            "must be a non-empty client id",
        ));
    }
    let auth = match (&f.client_secret_file, &f.private_key_file) {
        (Some(s), None) => {
            let secret = read_secret(s.get_ref())
                .map_err(|p| at(s.span(), "introspection.client_secret_file", &p))?;
            match f.client_auth.as_ref().map(|a| (a, a.get_ref().as_str())) {
                None | Some((_, "client_secret_basic")) => ClientAuth::Basic(secret),
                Some((_, "client_secret_post")) => ClientAuth::Post(secret),
                Some((a, _)) => {
                    return Err(at(
                        a.span(),
                        "introspection.client_auth",
                        "must be \"client_secret_basic\" or \"client_secret_post\" with client_secret_file (private_key_jwt: give private_key_file)",
                    ));
                }
            }
        }
        (None, Some(k)) => {
            if let Some(a) = &f.client_auth {
                if a.get_ref() != "private_key_jwt" {
                    return Err(at(
                        a.span(),
                        "introspection.client_auth",
                        "must be \"private_key_jwt\" with private_key_file",
                    ));
                }
            }
            // Loaded now (by the minter's loader, the same key code), so a
            // bad key is refused at load; the message never holds the key.
            tokenwarden::mint::Minter::builder()
                .signing_key_file(k.get_ref())
                .issuer("check")
                .audience("check")
                .build()
                .map_err(|e| at(k.span(), "introspection.private_key_file", &e.to_string()))?;
            ClientAuth::PrivateKeyJwt(k.get_ref().clone())
        }
        (Some(s), Some(_)) => {
            return Err(at(
                s.span(),
                "introspection.client_secret_file",
                "give client_secret_file or private_key_file, not both",
            ));
        }
        (None, None) => {
            return Err(at(
                f.client_id.span(),
                "introspection",
                "the endpoint requires client authentication (RFC 7662 §2.1): give client_secret_file or private_key_file",
            ));
        }
    };
    let audiences = match &f.audiences {
        None => cx.audiences.to_vec(),
        Some(list) => {
            let mut out = Vec::new();
            for a in list {
                if a.get_ref().trim().is_empty() {
                    return Err(at(a.span(), "introspection.audiences", "must not be empty"));
                }
                out.push(a.get_ref().clone());
            }
            out
        }
    };
    let bounded = |v: &Option<Spanned<u64>>,
                   field: &str,
                   range: RangeInclusive<u64>,
                   default: u64|
     -> Result<u64, ConfigError> {
        match v {
            Some(v) if !range.contains(v.get_ref()) => Err(at(
                v.span(),
                &format!("introspection.{field}"),
                &format!("must be {} to {}", range.start(), range.end()),
            )),
            Some(v) => Ok(*v.get_ref()),
            None => Ok(default),
        }
    };
    let ms = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
    let max_ttl = intro::MAX_TTL.as_secs();
    // 0 is refused for both TTLs: no positive caching is one call per
    // request (the outage this crate exists to avoid), no negative caching
    // lets a client make one call per request with a bad token.
    let positive = bounded(
        &f.positive_ttl_seconds,
        "positive_ttl_seconds",
        1..=max_ttl,
        intro::DEFAULT_POSITIVE_TTL.as_secs(),
    )?;
    let negative = bounded(
        &f.negative_ttl_seconds,
        "negative_ttl_seconds",
        1..=3600,
        intro::DEFAULT_NEGATIVE_TTL.as_secs(),
    )?;
    let entries = bounded(
        &f.max_entries,
        "max_entries",
        1..=10_000_000,
        intro::DEFAULT_MAX_ENTRIES as u64,
    )?;
    let bytes = bounded(
        &f.max_bytes,
        "max_bytes",
        4096..=(1 << 30),
        intro::DEFAULT_MAX_BYTES as u64,
    )?;
    let timeout = bounded(
        &f.timeout_ms,
        "timeout_ms",
        1..=ms(intro::MAX_TIMEOUT),
        ms(intro::DEFAULT_TIMEOUT),
    )?;
    let cap = bounded(
        &f.max_concurrent,
        "max_concurrent",
        1..=10_000,
        intro::DEFAULT_MAX_CONCURRENT as u64,
    )?;
    let failures = bounded(
        &f.max_failures,
        "max_failures",
        1..=1000,
        u64::from(intro::DEFAULT_MAX_FAILURES),
    )?;
    let backoff = bounded(
        &f.max_backoff_seconds,
        "max_backoff_seconds",
        1..=3600,
        intro::DEFAULT_MAX_BACKOFF.as_secs(),
    )?;
    let retry = bounded(
        &f.retry_after_seconds,
        "retry_after_seconds",
        1..=3600,
        u64::from(intro::DEFAULT_RETRY_AFTER),
    )?;
    let size = |v: u64| usize::try_from(v).unwrap_or(usize::MAX);
    Ok(Introspection {
        at: where_,
        issuer: f.issuer.as_ref().map(|i| i.get_ref().clone()),
        client_id: client_id.clone(),
        auth,
        audiences,
        positive_ttl: Duration::from_secs(positive),
        negative_ttl: Duration::from_secs(negative),
        max_entries: size(entries),
        max_bytes: size(bytes),
        timeout: Duration::from_millis(timeout),
        max_concurrent: size(cap),
        max_failures: u32::try_from(failures).unwrap_or(1),
        max_backoff: Duration::from_secs(backoff),
        retry_after: u32::try_from(retry).unwrap_or(1),
        leeway: Duration::from_secs(cx.leeway_seconds),
        allow_http: cx.allow_http,
        allow_private_addresses: cx.allow_private_addresses,
        subject_fallback: f.subject_fallback.unwrap_or(false),
    })
}

/// The client secret: the file's text without its trailing newline; not
/// empty, not huge, one line. Errors name the file, never its content.
pub fn read_secret(path: &str) -> Result<String, String> {
    use std::io::Read as _;
    let file = std::fs::File::open(path).map_err(|e| format!("cannot read {path}: {e}"))?;
    let mut text = String::new();
    file.take(MAX_SECRET_BYTES + 1)
        .read_to_string(&mut text)
        .map_err(|e| format!("cannot read {path}: {e}"))?;
    if text.len() as u64 > MAX_SECRET_BYTES {
        return Err(format!(
            "{path} is longer than {MAX_SECRET_BYTES} bytes: not a client secret"
        ));
    }
    let secret = text.trim_end_matches(['\n', '\r']);
    if secret.is_empty() {
        return Err(format!("{path} is empty"));
    }
    if secret.chars().any(char::is_control) {
        return Err(format!(
            "{path} holds more than one line: write the secret alone"
        ));
    }
    Ok(secret.to_owned())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use crate::config::parse;

    const HEAD: &str = "audiences = [\"api\"]\ngateway = \"nginx\"\nallow_http = true\n[[issuer]]\nissuer = \"https://i.example\"\n";

    fn secret_file() -> String {
        // One file per call: tests run in parallel.
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let p = std::env::temp_dir().join(format!("tw-intro-secret-{}-{n}", std::process::id()));
        std::fs::write(&p, "s3cret\n").unwrap();
        p.display().to_string()
    }

    fn section(extra: &str) -> Result<super::Introspection, String> {
        let text = format!(
            "{HEAD}[introspection]\nendpoint = \"https://idp.example/introspect\"\nclient_id = \"orders\"\nclient_secret_file = {:?}\n{extra}",
            secret_file()
        );
        parse(&text, "t.toml")
            .map(|c| c.introspection.unwrap())
            .map_err(|e| e.0)
    }

    #[test]
    fn defaults_follow_the_library_and_the_top_level() {
        let i = section("").unwrap();
        assert_eq!(i.positive_ttl.as_secs(), 60);
        assert_eq!(i.negative_ttl.as_secs(), 5);
        assert_eq!(i.audiences, ["api"]);
        assert!(matches!(i.auth, super::ClientAuth::Basic(ref s) if s == "s3cret"));
        let i = section("client_auth = \"client_secret_post\"\n").unwrap();
        assert!(matches!(i.auth, super::ClientAuth::Post(_)));
        assert!(!format!("{i:?}").contains("s3cret"), "the secret in Debug");
    }

    #[test]
    fn hostile_numbers_are_refused_with_file_line_and_field() {
        for (field, values) in [
            (
                "positive_ttl_seconds",
                ["0", "86401", "18446744073709551615"],
            ),
            ("negative_ttl_seconds", ["0", "3601", "9223372036854775807"]),
            ("max_entries", ["0", "10000001", "9223372036854775807"]),
            ("max_bytes", ["0", "1073741825", "9223372036854775807"]),
            ("timeout_ms", ["0", "60001", "9223372036854775807"]),
            ("max_concurrent", ["0", "10001", "9223372036854775807"]),
            ("max_failures", ["0", "1001", "9223372036854775807"]),
            ("max_backoff_seconds", ["0", "3601", "9223372036854775807"]),
            ("retry_after_seconds", ["0", "3601", "9223372036854775807"]),
        ] {
            for v in values {
                let e = section(&format!("{field} = {v}\n")).unwrap_err();
                assert!(
                    e.starts_with("t.toml:10: ") && e.contains(&format!("introspection.{field}")),
                    "{field} = {v}: {e}"
                );
            }
        }
        // Negative: TOML reads it, the type refuses it, still with a line.
        let e = section("timeout_ms = -1\n").unwrap_err();
        assert!(e.starts_with("t.toml:10:"), "{e}");
    }

    #[test]
    fn endpoint_client_and_credentials_are_checked_at_load() {
        let e = section("").map(|_| ()).and_then(|()| {
            parse(
                &format!(
                    "{HEAD}[introspection]\nclient_id = \"orders\"\nclient_secret_file = \"/x\"\n"
                ),
                "t.toml",
            )
            .map(|_| ())
            .map_err(|e| e.0)
        });
        assert!(e.unwrap_err().contains("introspection: name the endpoint"));
        let bad_url = parse(
            &format!("{HEAD}[introspection]\nendpoint = \"http://idp.example/introspect\"\nclient_id = \"o\"\nclient_secret_file = \"/x\"\n"),
            "t.toml",
        )
        .unwrap_err()
        .0;
        assert!(
            bad_url.contains("t.toml:7: introspection.endpoint: ") && bad_url.contains("https"),
            "{bad_url}"
        );
        let missing = parse(
            &format!("{HEAD}[introspection]\nendpoint = \"https://idp.example/i\"\nclient_id = \"o\"\nclient_secret_file = \"/nonexistent/secret\"\n"),
            "t.toml",
        )
        .unwrap_err()
        .0;
        assert!(
            missing.contains(
                "t.toml:9: introspection.client_secret_file: cannot read /nonexistent/secret"
            ),
            "{missing}"
        );
        let none = parse(
            &format!(
                "{HEAD}[introspection]\nendpoint = \"https://idp.example/i\"\nclient_id = \"o\"\n"
            ),
            "t.toml",
        )
        .unwrap_err()
        .0;
        assert!(none.contains("RFC 7662 §2.1"), "{none}");
        let e = section("client_auth = \"none\"\n").unwrap_err();
        assert!(e.contains("t.toml:10: introspection.client_auth"), "{e}");
        let e = section("private_key_file = \"/x\"\n").unwrap_err();
        assert!(e.contains("not both"), "{e}");
        let e = section("audiences = [\"\"]\n").unwrap_err();
        assert!(
            e.contains("introspection.audiences: must not be empty"),
            "{e}"
        );
        let e = section("unknown = 1\n").unwrap_err();
        assert!(e.contains("t.toml:10") && e.contains("unknown"), "{e}");
    }

    #[test]
    fn a_secret_file_must_hold_one_short_line() {
        let dir = std::env::temp_dir();
        let write = |name: &str, text: &str| {
            let p = dir.join(format!("tw-intro-{name}-{}", std::process::id()));
            std::fs::write(&p, text).unwrap();
            p.display().to_string()
        };
        assert_eq!(super::read_secret(&write("ok", "abc\r\n")).unwrap(), "abc");
        for (name, text, needle) in [
            ("empty", "\n", "is empty"),
            ("two", "a\nb\n", "more than one line"),
            ("huge", &"x".repeat(5000), "longer than 4096"),
        ] {
            let e = super::read_secret(&write(name, text)).unwrap_err();
            assert!(e.contains(needle), "{name}: {e}");
            assert!(
                !e.contains("xxxx") && !e.contains("a\nb"),
                "content in: {e}"
            );
        }
    }
}
