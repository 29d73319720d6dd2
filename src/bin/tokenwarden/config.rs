//! The sidecar's configuration: a TOML file, or flags for the simple case.
//! Everything is checked at start; a problem names the line and the field.

use std::ops::Range;
use std::path::Path;

use serde::Deserialize;
use toml::Spanned;

/// A configuration mistake, reported as `file:line: field: problem`.
#[derive(Debug)]
pub struct ConfigError(pub String);

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// The file as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    listen: Option<Spanned<String>>,
    realm: Option<String>,
    #[serde(default)]
    audiences: Vec<String>,
    algorithms: Option<Vec<Spanned<String>>>,
    leeway_seconds: Option<u64>,
    required_type: Option<String>,
    #[serde(default)]
    allow_http: bool,
    #[serde(default)]
    json_logs: bool,
    #[serde(default, rename = "issuer")]
    issuers: Vec<Spanned<IssuerFile>>,
    #[serde(default)]
    headers: HeadersFile,
    #[serde(default, rename = "rule")]
    rules: Vec<Spanned<RuleFile>>,
    #[serde(default)]
    cache: CacheFile,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct IssuerFile {
    issuer: Spanned<String>,
    jwks_url: Option<Spanned<String>>,
    jwks_file: Option<Spanned<String>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct HeadersFile {
    subject: Option<String>,
    issuer: Option<String>,
    scopes: Option<String>,
    #[serde(default)]
    claims: std::collections::BTreeMap<String, String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleFile {
    path: Spanned<String>,
    #[serde(default)]
    methods: Vec<Spanned<String>>,
    #[serde(default)]
    scopes: Vec<String>,
    #[serde(default)]
    any_scopes: Vec<String>,
    #[serde(default)]
    anonymous: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CacheFile {
    #[serde(default = "yes")]
    enabled: bool,
    max_entries: Option<u64>,
}

impl Default for CacheFile {
    fn default() -> Self {
        CacheFile {
            enabled: true,
            max_entries: None,
        }
    }
}

fn yes() -> bool {
    true
}

/// The checked configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub listen: std::net::SocketAddr,
    pub realm: String,
    pub audiences: Vec<String>,
    pub algorithms: Option<Vec<tokenwarden::Algorithm>>,
    pub leeway: u64,
    pub required_type: Option<String>,
    pub allow_http: bool,
    pub json_logs: bool,
    pub issuers: Vec<Issuer>,
    pub headers: Headers,
    pub rules: Vec<Rule>,
    pub cache: bool,
    pub cache_entries: u64,
}

/// One trusted issuer and where its keys come from.
#[derive(Debug, Clone)]
pub struct Issuer {
    pub issuer: String,
    pub keys: Keys,
}

/// Where an issuer's keys come from.
#[derive(Debug, Clone)]
pub enum Keys {
    /// OpenID Connect discovery from the issuer URL.
    Discovery,
    /// A JWK Set URL.
    Url(String),
    /// A JWK Set file, read once at start.
    File(String),
}

/// Names of the identity headers of an allowed request.
#[derive(Debug, Clone)]
pub struct Headers {
    pub subject: String,
    pub issuer: String,
    pub scopes: String,
    /// Claim name → header name.
    pub claims: Vec<(String, String)>,
}

impl Default for Headers {
    fn default() -> Self {
        Headers {
            subject: "X-Auth-Subject".into(),
            issuer: "X-Auth-Issuer".into(),
            scopes: "X-Auth-Scopes".into(),
            claims: Vec::new(),
        }
    }
}

/// A per-path requirement; the first rule that matches a request decides.
#[derive(Debug, Clone)]
pub struct Rule {
    /// Exact path, or a prefix when it ends with `*`.
    pub path: String,
    /// Upper-case methods; empty means every method.
    pub methods: Vec<String>,
    pub scopes: Vec<String>,
    pub any_scopes: Vec<String>,
    pub anonymous: bool,
}

impl Rule {
    /// Whether the rule applies to this method and path (query excluded).
    pub fn matches(&self, method: &str, path: &str) -> bool {
        let path_ok = match self.path.strip_suffix('*') {
            Some(prefix) => path.starts_with(prefix),
            None => path == self.path,
        };
        path_ok && (self.methods.is_empty() || self.methods.iter().any(|m| m == method))
    }
}

const METHODS: &[&str] = &[
    "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "CONNECT", "TRACE",
];

/// Reads and checks a configuration file.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| ConfigError(format!("{}: cannot read: {e}", path.display())))?;
    parse(&text, &path.display().to_string())
}

/// Parses and checks configuration text; `name` prefixes every message.
pub fn parse(text: &str, name: &str) -> Result<Config, ConfigError> {
    let at = |span: Range<usize>, field: &str, problem: &str| {
        let line = text[..span.start.min(text.len())].matches('\n').count() + 1;
        ConfigError(format!("{name}:{line}: {field}: {problem}"))
    };
    let file: File = toml::from_str(text).map_err(|e| {
        let line = e
            .span()
            .map(|s| text[..s.start.min(text.len())].matches('\n').count() + 1);
        let msg = e.message().trim().to_owned();
        match line {
            Some(line) => ConfigError(format!("{name}:{line}: {msg}")),
            None => ConfigError(format!("{name}: {msg}")),
        }
    })?;

    let listen = match &file.listen {
        Some(l) => l
            .get_ref()
            .parse()
            .map_err(|_| at(l.span(), "listen", "not an address such as 127.0.0.1:8081"))?,
        None => std::net::SocketAddr::from(([127, 0, 0, 1], 8081)),
    };
    if file.issuers.is_empty() {
        return Err(ConfigError(format!(
            "{name}: issuer: missing: add at least one [[issuer]] with `issuer = \"https://…\"`"
        )));
    }
    if file.audiences.is_empty() {
        return Err(ConfigError(format!(
            "{name}: audiences: missing: list the accepted audiences, e.g. audiences = [\"api\"]"
        )));
    }
    let mut issuers = Vec::new();
    for (i, entry) in file.issuers.iter().enumerate() {
        let entry = entry.get_ref();
        let field = |f: &str| format!("issuer[{i}].{f}");
        let iss = entry.issuer.get_ref();
        check_url(iss, file.allow_http)
            .map_err(|p| at(entry.issuer.span(), &field("issuer"), &p))?;
        let keys = match (&entry.jwks_url, &entry.jwks_file) {
            (Some(_), Some(f)) => {
                return Err(at(
                    f.span(),
                    &field("jwks_file"),
                    "give either jwks_url or jwks_file, not both",
                ));
            }
            (Some(u), None) => {
                check_url(u.get_ref(), file.allow_http)
                    .map_err(|p| at(u.span(), &field("jwks_url"), &p))?;
                Keys::Url(u.get_ref().clone())
            }
            (None, Some(f)) => Keys::File(f.get_ref().clone()),
            (None, None) => Keys::Discovery,
        };
        issuers.push(Issuer {
            issuer: iss.clone(),
            keys,
        });
    }
    let algorithms = match &file.algorithms {
        Some(list) => {
            let mut out = Vec::new();
            for a in list {
                let alg = tokenwarden::Algorithm::from_name(a.get_ref()).ok_or_else(|| {
                    at(
                        a.span(),
                        "algorithms",
                        &format!("unknown algorithm {:?}", a.get_ref()),
                    )
                })?;
                out.push(alg);
            }
            Some(out)
        }
        None => None,
    };
    let mut rules = Vec::new();
    for (i, rule) in file.rules.iter().enumerate() {
        let span = rule.span();
        let rule = rule.get_ref();
        let field = |f: &str| format!("rule[{i}].{f}");
        let path = rule.path.get_ref();
        if !path.starts_with('/') {
            return Err(at(rule.path.span(), &field("path"), "must start with '/'"));
        }
        if path.trim_end_matches('*').contains('*') {
            return Err(at(
                rule.path.span(),
                &field("path"),
                "'*' may only end a path (a prefix match)",
            ));
        }
        let mut methods = Vec::new();
        for m in &rule.methods {
            let up = m.get_ref().to_ascii_uppercase();
            if !METHODS.contains(&up.as_str()) {
                return Err(at(
                    m.span(),
                    &field("methods"),
                    &format!("unknown HTTP method {:?}", m.get_ref()),
                ));
            }
            methods.push(up);
        }
        if !rule.scopes.is_empty() && !rule.any_scopes.is_empty() {
            return Err(at(
                span,
                &field("scopes"),
                "give scopes (all required) or any_scopes (one suffices), not both",
            ));
        }
        if rule.anonymous && !(rule.scopes.is_empty() && rule.any_scopes.is_empty()) {
            return Err(at(
                span,
                &field("anonymous"),
                "an anonymous rule cannot require scopes",
            ));
        }
        if let Some(bad) = rule
            .scopes
            .iter()
            .chain(&rule.any_scopes)
            .find(|s| s.is_empty() || s.contains(' ') || !s.is_ascii())
        {
            return Err(at(
                span,
                &field("scopes"),
                &format!("{bad:?} is not a scope token (RFC 6749 §3.3)"),
            ));
        }
        rules.push(Rule {
            path: path.clone(),
            methods,
            scopes: rule.scopes.clone(),
            any_scopes: rule.any_scopes.clone(),
            anonymous: rule.anonymous,
        });
    }
    let name_of_file = name;
    let mut headers = Headers::default();
    let h = &file.headers;
    for (slot, given) in [
        (&mut headers.subject, &h.subject),
        (&mut headers.issuer, &h.issuer),
        (&mut headers.scopes, &h.scopes),
    ] {
        if let Some(g) = given {
            *slot = g.clone();
        }
    }
    headers.claims = h
        .claims
        .iter()
        .map(|(c, n)| (c.clone(), n.clone()))
        .collect();
    for name in [&headers.subject, &headers.issuer, &headers.scopes]
        .into_iter()
        .chain(headers.claims.iter().map(|(_, n)| n))
    {
        if http::HeaderName::from_bytes(name.as_bytes()).is_err() {
            return Err(ConfigError(format!(
                "{file}: headers: {name:?} is not a valid header name",
                file = name_of_file
            )));
        }
    }
    Ok(Config {
        listen,
        realm: file.realm.clone().unwrap_or_else(|| "api".into()),
        audiences: file.audiences.clone(),
        algorithms,
        leeway: file.leeway_seconds.unwrap_or(60),
        required_type: file.required_type.clone(),
        allow_http: file.allow_http,
        json_logs: file.json_logs,
        issuers,
        headers,
        rules,
        cache: file.cache.enabled,
        cache_entries: file.cache.max_entries.unwrap_or(10_000),
    })
}

/// An issuer or key URL: https, or http to a loopback host when allowed.
pub fn check_url(raw: &str, allow_http: bool) -> Result<(), String> {
    let url = url::Url::parse(raw).map_err(|e| format!("{raw:?} is not a URL ({e})"))?;
    match url.scheme() {
        "https" => {}
        "http" if allow_http && is_loopback(&url) => {}
        "http" => {
            return Err(format!(
                "{raw:?} must use https (http is allowed only to loopback, with allow_http = true)"
            ));
        }
        other => return Err(format!("{raw:?}: scheme {other:?} is not https")),
    }
    if url.host().is_none() {
        return Err(format!("{raw:?} has no host"));
    }
    Ok(())
}

fn is_loopback(url: &url::Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(d)) => d == "localhost",
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
listen = "127.0.0.1:9000"
audiences = ["api"]

[[issuer]]
issuer = "https://idp.example.com"

[[rule]]
path = "/admin/*"
methods = ["get", "POST"]
scopes = ["admin"]
"#;

    #[test]
    fn a_good_file_parses() {
        let c = parse(GOOD, "t.toml").unwrap();
        assert_eq!(c.listen.port(), 9000);
        assert!(matches!(c.issuers[0].keys, Keys::Discovery));
        assert!(c.rules[0].matches("GET", "/admin/users"));
        assert!(!c.rules[0].matches("DELETE", "/admin/users"));
        assert!(!c.rules[0].matches("GET", "/public"));
    }

    fn err(text: &str) -> String {
        parse(text, "t.toml").unwrap_err().0
    }

    #[test]
    fn mistakes_name_line_and_field() {
        let e = err("audiences = [\"a\"]\nbogus = 1\n[[issuer]]\nissuer = \"https://i\"\n");
        assert!(e.starts_with("t.toml:2:") && e.contains("bogus"), "{e}");
        let e = err("audiences = [\"a\"]\n[[issuer]]\nissuer = \"ftp://i\"\n");
        assert!(e.starts_with("t.toml:3: issuer[0].issuer:"), "{e}");
        let e = err("audiences = [\"a\"]\n");
        assert!(e.contains("issuer: missing"), "{e}");
        let e = err(&format!("{GOOD}\n[[rule]]\npath = \"admin\"\n"));
        assert!(e.contains("rule[1].path: must start with '/'"), "{e}");
        let e = err(&format!(
            "{GOOD}\n[[rule]]\npath = \"/a\"\nmethods = [\"FETCH\"]\n"
        ));
        assert!(e.contains("rule[1].methods: unknown HTTP method"), "{e}");
        let e = err("audiences = [\"a\"]\n[[issuer]]\nissuer = \"http://127.0.0.1:1\"\n");
        assert!(e.contains("must use https"), "{e}");
    }
}
