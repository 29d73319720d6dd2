//! The sidecar's configuration: a TOML file, or flags for the simple case.
//! Everything is checked at start; a problem names the line and the field.

use std::ops::Range;
use std::path::Path;
use std::time::Duration;

#[path = "path.rs"]
pub mod path;

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
    allow_private_addresses: bool,
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
    gateway: Option<Spanned<String>>,
    method_header: Option<Spanned<String>>,
    uri_header: Option<Spanned<String>>,
    #[serde(default)]
    case_insensitive_paths: bool,
    #[serde(default)]
    allow_method_override: bool,
    unmatched: Option<Spanned<String>>,
    #[serde(default)]
    server: ServerFile,
    internal_token: Option<crate::internal_token::InternalTokenFile>,
    api_keys: Option<crate::api_keys::ApiKeysFile>,
    legacy: Option<crate::legacy::LegacyFile>,
    revocation: Option<crate::revocation::RevocationFile>,
    introspection: Option<crate::introspection::IntrospectionFile>,
    mtls: Option<crate::mtls::MtlsFile>,
    redis: Option<crate::redis_config::RedisFile>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct ServerFile {
    header_read_timeout_ms: Option<Spanned<u64>>,
    idle_timeout_ms: Option<Spanned<u64>>,
    max_connections: Option<Spanned<u64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct IssuerFile {
    issuer: Spanned<String>,
    jwks_url: Option<Spanned<String>>,
    jwks_file: Option<Spanned<String>>,
    discovery_url: Option<Spanned<String>>,
    refresh_interval_seconds: Option<Spanned<u64>>,
    refresh_min_seconds: Option<Spanned<u64>>,
    refresh_max_seconds: Option<Spanned<u64>>,
    unknown_kid_cooldown_seconds: Option<Spanned<u64>>,
    max_staleness_seconds: Option<Spanned<u64>>,
    fetch_timeout_ms: Option<Spanned<u64>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct HeadersFile {
    subject: Option<String>,
    issuer: Option<String>,
    scopes: Option<String>,
    authenticator: Option<String>,
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
    /// Key fetches may reach private, link-local and loopback addresses
    /// (an identity provider on an internal network); off by default (SSRF).
    pub allow_private_addresses: bool,
    pub json_logs: bool,
    pub issuers: Vec<Issuer>,
    pub headers: Headers,
    pub rules: Vec<Rule>,
    pub cache: bool,
    pub cache_entries: u64,
    /// Where the original method and path are read from; nothing else is.
    pub gateway: Gateway,
    /// Fold the case of paths before matching rules.
    pub case_insensitive_paths: bool,
    /// Pass `X-HTTP-Method-Override` and its kin through instead of
    /// refusing the request (for upstreams that ignore them).
    pub allow_method_override: bool,
    /// A request no rule matches is refused (`unmatched = "deny"`) rather
    /// than allowed with any valid token (`"authenticated"`, the default).
    pub deny_unmatched: bool,
    pub server: Server,
    /// `[internal_token]`: the minter and its response header.
    pub internal_token: Option<crate::internal_token::InternalToken>,
    /// `[api_keys]`: API keys beside JWTs.
    pub api_keys: Option<crate::api_keys::ApiKeys>,
    /// `[legacy]`: a legacy HTTP endpoint judging a cookie or `Basic`.
    pub legacy: Option<crate::legacy::Legacy>,
    /// `[revocation]`: the denylist and its admin and logout endpoints.
    pub revocation: Option<crate::revocation::RevocationConfig>,
    /// `[introspection]`: opaque tokens judged by the IdP (RFC 7662).
    pub introspection: Option<crate::introspection::Introspection>,
    /// `[mtls]`: client certificates from the gateway's header.
    pub mtls: Option<crate::mtls::Mtls>,
    /// `[redis]`: the denylist shared through Redis.
    pub redis: Option<crate::redis_config::RedisConfig>,
}

/// The one convention the gateway in front uses to describe the original
/// request. Only what it names is trusted: a header of another convention
/// is the client's, passed through by a gateway that does not know it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Gateway {
    /// The method and the request target (path and query) in these headers,
    /// each present exactly once: nginx `X-Original-Method`/`X-Original-URI`
    /// (as set in the README), Traefik ForwardAuth
    /// `X-Forwarded-Method`/`X-Forwarded-Uri`, or names of your own.
    Headers { method: String, uri: String },
    /// Envoy `ext_authz` over HTTP: the original path is appended to the
    /// auth path (`path_prefix = "/auth"`), and the check request carries the
    /// original method as its own.
    Envoy,
}

/// Limits of the HTTP server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Server {
    /// From when a connection waits for a request until its head is in
    /// (so also how long a keep-alive connection may sit idle).
    pub header_read_timeout: Duration,
    /// No byte moving either way for this long closes the connection.
    pub idle_timeout: Duration,
    /// Connections served at once; more are closed at accept.
    pub max_connections: usize,
}

impl Default for Server {
    fn default() -> Self {
        Server {
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            max_connections: 1024,
        }
    }
}

/// One trusted issuer and where its keys come from.
#[derive(Debug, Clone)]
pub struct Issuer {
    pub issuer: String,
    pub keys: Keys,
    /// How fetched keys are refreshed (unused for a `jwks_file`).
    pub fetch: Fetch,
}

/// The key-set settings of a fetched issuer, each defaulting to the
/// library's own (`tokenwarden::remote::DEFAULT_*`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fetch {
    /// Refresh interval when the server sends no `Cache-Control: max-age`.
    pub refresh_interval: Duration,
    /// Lower bound on the refresh interval, `max-age` included.
    pub refresh_min: Duration,
    /// Upper bound on the refresh interval, `max-age` included.
    pub refresh_max: Duration,
    /// Least time between two refreshes caused by unknown `kid`s.
    pub unknown_kid_cooldown: Duration,
    /// Fetched keys older than this are not used (and `/readyz` says 503).
    pub max_staleness: Duration,
    /// Timeout for one request, connect to last byte.
    pub timeout: Duration,
}

impl Default for Fetch {
    fn default() -> Self {
        use tokenwarden::remote as r;
        Fetch {
            refresh_interval: r::DEFAULT_REFRESH_INTERVAL,
            refresh_min: r::DEFAULT_MIN_REFRESH_INTERVAL,
            refresh_max: r::DEFAULT_MAX_REFRESH_INTERVAL,
            unknown_kid_cooldown: r::DEFAULT_UNKNOWN_KID_COOLDOWN,
            max_staleness: r::DEFAULT_MAX_STALENESS,
            timeout: r::DEFAULT_TIMEOUT,
        }
    }
}

/// Longest setting in seconds: one year (also keeps every sum and
/// conversion far from overflow).
const MAX_SECONDS: u64 = 365 * 24 * 60 * 60;
/// Longest fetch timeout in milliseconds: ten minutes.
const MAX_TIMEOUT_MS: u64 = 10 * 60 * 1000;

/// Where an issuer's keys come from.
#[derive(Debug, Clone)]
pub enum Keys {
    /// OpenID Connect discovery from the issuer URL, or from this URL of
    /// the discovery document (the issuer reached by an internal name).
    Discovery(Option<String>),
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
    /// Which authenticator vouched (`jwt`, `api_key`, `legacy`,
    /// `introspection`); empty on an anonymous pass.
    pub authenticator: String,
    /// Claim name → header name.
    pub claims: Vec<(String, String)>,
}

impl Default for Headers {
    fn default() -> Self {
        Headers {
            subject: "X-Auth-Subject".into(),
            issuer: "X-Auth-Issuer".into(),
            scopes: "X-Auth-Scopes".into(),
            authenticator: "X-Auth-Authenticator".into(),
            claims: Vec::new(),
        }
    }
}

/// A per-path requirement. Rules are kept most specific first (see
/// [`specificity`]); the first that matches a request decides.
#[derive(Debug, Clone)]
pub struct Rule {
    /// Exact path, or a prefix when it ends with `*`; in normal form (and
    /// lower case with `case_insensitive_paths`).
    pub path: String,
    /// Upper-case methods, with `HEAD` added wherever `GET` is named;
    /// empty means every method.
    pub methods: Vec<String>,
    pub scopes: Vec<String>,
    pub any_scopes: Vec<String>,
    pub anonymous: bool,
}

impl Rule {
    /// Whether the rule applies to this method and normal path (query
    /// excluded). Methods are compared exactly (RFC 9110 §9.1: they are
    /// case-sensitive). A prefix `/a/*` also covers `/a` itself: the
    /// directory is guarded by the rule of its contents. An exact `/a` also
    /// covers `/a/` (and `/a/` covers `/a`): many upstreams serve one for
    /// the other.
    pub fn matches(&self, method: &str, path: &str) -> bool {
        self.matches_path(path)
            && (self.methods.is_empty() || self.methods.iter().any(|m| m == method))
    }

    /// Whether the rule's path covers this normal path.
    pub fn matches_path(&self, path: &str) -> bool {
        match self.path.strip_suffix('*') {
            Some(prefix) => {
                path.starts_with(prefix)
                    || prefix
                        .strip_suffix('/')
                        .is_some_and(|dir| !dir.is_empty() && path == dir)
            }
            None => {
                path == self.path
                    || path.strip_suffix('/') == Some(self.path.as_str())
                    || (path != "/" && self.path.strip_suffix('/') == Some(path))
            }
        }
    }

    /// Whether some path this rule covers is also covered by `other`.
    fn overlaps_path(&self, other: &Rule) -> bool {
        match self.path.strip_suffix('*') {
            // Every path under a prefix starts with it; `other` (no longer
            // than this rule, as it is tried later) covers one of them iff
            // it covers the prefix or the directory itself.
            Some(prefix) => {
                other.matches_path(prefix)
                    || prefix
                        .strip_suffix('/')
                        .is_some_and(|dir| !dir.is_empty() && other.matches_path(dir))
            }
            None => {
                other.matches_path(&self.path)
                    || other.matches_path(&format!("{}/", self.path.trim_end_matches('/')))
            }
        }
    }

    /// Whether every token this rule lets through, `other` lets through
    /// too: this rule is at least as strict.
    fn at_least_as_strict_as(&self, other: &Rule) -> bool {
        if other.anonymous {
            return true;
        }
        if self.anonymous {
            return false;
        }
        let has = |list: &[String], s: &String| list.contains(s);
        if !other.scopes.is_empty() {
            // Every scope `other` requires is required here too (an
            // any_scopes list of one is a requirement of that one).
            let required: &[String] = match self.any_scopes.as_slice() {
                [one] => std::slice::from_ref(one),
                _ => &self.scopes,
            };
            return other.scopes.iter().all(|s| has(required, s));
        }
        if !other.any_scopes.is_empty() {
            // One of `other`'s scopes is required here, or every scope
            // that suffices here suffices there.
            return self.scopes.iter().any(|s| has(&other.any_scopes, s))
                || (!self.any_scopes.is_empty()
                    && self.any_scopes.iter().all(|s| has(&other.any_scopes, s)));
        }
        // `other` asks for any valid token.
        true
    }
}

/// The order rules are tried in, whatever their order in the file: exact
/// paths before prefixes, longer prefixes before shorter ones, rules naming
/// methods before rules for every method; the file's order breaks ties.
/// Sorting by this key (stably) makes the most specific rule decide.
pub fn specificity(rule: &Rule) -> (bool, std::cmp::Reverse<usize>, bool) {
    let prefix = rule.path.ends_with('*');
    let len = if prefix { rule.path.len() } else { 0 };
    (prefix, std::cmp::Reverse(len), rule.methods.is_empty())
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
            (None, None) => Keys::Discovery(None),
        };
        let keys = match (keys, &entry.discovery_url) {
            (keys, None) => keys,
            (Keys::Discovery(None), Some(d)) => {
                check_url(d.get_ref(), file.allow_http)
                    .map_err(|p| at(d.span(), &field("discovery_url"), &p))?;
                Keys::Discovery(Some(d.get_ref().clone()))
            }
            (_, Some(d)) => {
                return Err(at(
                    d.span(),
                    &field("discovery_url"),
                    "only for keys found by discovery: give discovery_url, or jwks_url or jwks_file, not both",
                ));
            }
        };
        let fetch = fetch(entry, matches!(keys, Keys::File(_)), &|span, f, msg| {
            at(span, &field(f), msg)
        })?;
        issuers.push(Issuer {
            issuer: iss.clone(),
            keys,
            fetch,
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
    let gateway = gateway(&file, &at, name)?;
    let fold = file.case_insensitive_paths;
    let mut rules: Vec<Rule> = Vec::new();
    for (i, rule) in file.rules.iter().enumerate() {
        let span = rule.span();
        let rule = rule.get_ref();
        let field = |f: &str| format!("rule[{i}].{f}");
        let path = rule.path.get_ref();
        if !path.starts_with('/') {
            return Err(at(rule.path.span(), &field("path"), "must start with '/'"));
        }
        // RFC 3986 §3.4, §3.5: the query and fragment are not part of the
        // path a rule is matched against, so such a rule would never match.
        if path.contains(['?', '#']) {
            return Err(at(
                rule.path.span(),
                &field("path"),
                "'?' and '#' cannot appear: rules match the path only, never the query or fragment",
            ));
        }
        if path.trim_end_matches('*').contains('*') {
            return Err(at(
                rule.path.span(),
                &field("path"),
                "'*' may only end a path (a prefix match)",
            ));
        }
        let pattern = path.strip_suffix('*').unwrap_or(path);
        // Requests are matched in normal form, so a rule written otherwise
        // would never match what it seems to say.
        let normal = match path::normalise(pattern, fold) {
            Ok(n) if n == pattern => n,
            Ok(n) => {
                // Keep the `*`: suggesting the bare prefix would turn a
                // prefix rule into an exact one and narrow what it protects.
                let star = if path.ends_with('*') { "*" } else { "" };
                return Err(at(
                    rule.path.span(),
                    &field("path"),
                    &format!(
                        "not in normal form: write {:?} (requests are matched normalised)",
                        format!("{n}{star}")
                    ),
                ));
            }
            Err(e) => return Err(at(rule.path.span(), &field("path"), &e.to_string())),
        };
        let normal = if path.ends_with('*') {
            format!("{normal}*")
        } else {
            normal
        };
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
            if !methods.contains(&up) {
                methods.push(up);
            }
        }
        // RFC 9110 §9.3.2: HEAD is GET without the body, and frameworks
        // answer HEAD with the GET handler, so a rule for GET covers HEAD.
        if methods.iter().any(|m| m == "GET") && !methods.iter().any(|m| m == "HEAD") {
            methods.push("HEAD".into());
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
        // Rules are tried most specific first, so a rule can only be
        // shadowed by an earlier one of the same path and kind: refuse a
        // rule that would never decide rather than ignore it.
        let earlier = rules
            .iter()
            .filter(|r| r.path == normal && r.methods.is_empty() == methods.is_empty());
        let covered: Vec<&String> = earlier.clone().flat_map(|r| &r.methods).collect();
        let shadowed = if methods.is_empty() {
            earlier.count() > 0
        } else {
            methods.iter().all(|m| covered.contains(&m))
        };
        if shadowed {
            return Err(at(
                span,
                &field("path"),
                "shadowed: an earlier rule has the same path and covers its methods (a rule naming GET also covers HEAD)",
            ));
        }
        // A partial overlap would leave the shared methods to file order.
        if let Some(m) = methods.iter().find(|m| covered.contains(m)) {
            return Err(at(
                span,
                &field("methods"),
                &format!(
                    "{m} is already covered by an earlier rule with the same path (a rule naming GET also covers HEAD): name each method in one rule per path"
                ),
            ));
        }
        rules.push(Rule {
            path: normal,
            methods,
            scopes: rule.scopes.clone(),
            any_scopes: rule.any_scopes.clone(),
            anonymous: rule.anonymous,
        });
    }
    let mut order: Vec<(usize, &Rule)> = rules.iter().enumerate().collect();
    order.sort_by_key(|(_, r)| specificity(r));
    conflicts(&order, name)?;
    let name_of_file = name;
    let mut headers = Headers::default();
    let h = &file.headers;
    for (slot, given) in [
        (&mut headers.subject, &h.subject),
        (&mut headers.issuer, &h.issuer),
        (&mut headers.scopes, &h.scopes),
        (&mut headers.authenticator, &h.authenticator),
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
    for name in [
        &headers.subject,
        &headers.issuer,
        &headers.scopes,
        &headers.authenticator,
    ]
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
    let internal_token = match &file.internal_token {
        Some(t) => Some(crate::internal_token::check(t, &at)?),
        None => None,
    };
    if let Some(t) = &internal_token {
        let taken = [
            &headers.subject,
            &headers.issuer,
            &headers.scopes,
            &headers.authenticator,
        ]
        .into_iter()
        .chain(headers.claims.iter().map(|(_, n)| n))
        .any(|n| n.eq_ignore_ascii_case(t.header.as_str()));
        if taken {
            return Err(ConfigError(format!(
                "{name_of_file}: internal_token.header: {:?} is already an identity header",
                t.header.as_str()
            )));
        }
    }
    let revocation = match &file.revocation {
        Some(r) => {
            let names: Vec<String> = issuers.iter().map(|i: &Issuer| i.issuer.clone()).collect();
            Some(crate::revocation::check(r, &names, name, &at)?)
        }
        None => None,
    };
    let redis = match &file.redis {
        Some(_) if revocation.is_none() => {
            return Err(ConfigError(format!(
                "{name}: redis: nothing to share: [redis] holds the [revocation] denylist, add that section"
            )));
        }
        Some(r) => Some(crate::redis_config::check(r, &at)?),
        None => None,
    };
    Ok(Config {
        listen,
        realm: file.realm.clone().unwrap_or_else(|| "api".into()),
        audiences: file.audiences.clone(),
        algorithms,
        leeway: file.leeway_seconds.unwrap_or(60),
        required_type: file.required_type.clone(),
        allow_http: file.allow_http,
        allow_private_addresses: file.allow_private_addresses,
        json_logs: file.json_logs,
        issuers,
        headers,
        rules: {
            rules.sort_by_key(specificity);
            rules
        },
        cache: file.cache.enabled,
        cache_entries: file.cache.max_entries.unwrap_or(10_000),
        gateway,
        case_insensitive_paths: fold,
        allow_method_override: file.allow_method_override,
        deny_unmatched: match &file.unmatched {
            None => false,
            Some(u) => match u.get_ref().as_str() {
                "authenticated" => false,
                "deny" if file.rules.is_empty() => {
                    return Err(at(
                        u.span(),
                        "unmatched",
                        "\"deny\" with no [[rule]] refuses every request: add rules",
                    ));
                }
                "deny" => true,
                _ => {
                    return Err(at(
                        u.span(),
                        "unmatched",
                        "must be \"authenticated\" (any valid token) or \"deny\"",
                    ));
                }
            },
        },
        server: server(&file.server, &at)?,
        internal_token,
        api_keys: match &file.api_keys {
            Some(k) => Some(crate::api_keys::check(k, &at)?),
            None => None,
        },
        legacy: match &file.legacy {
            Some(l) => Some(crate::legacy::check(
                l,
                file.allow_http,
                file.allow_private_addresses,
                &at,
            )?),
            None => None,
        },
        revocation,
        introspection: match &file.introspection {
            Some(i) => Some(crate::introspection::check(
                i,
                &crate::introspection::Context {
                    allow_http: file.allow_http,
                    allow_private_addresses: file.allow_private_addresses,
                    leeway_seconds: file.leeway_seconds.unwrap_or(60),
                    audiences: &file.audiences,
                },
                &at,
            )?),
            None => None,
        },
        mtls: match &file.mtls {
            Some(m) => Some(crate::mtls::check(m, &at)?),
            None => None,
        },
        redis,
    })
}

/// Refuses a rule set in which a more specific rule for every method (a
/// longer prefix, or an exact path) would decide a method that a shorter,
/// method-specific rule names, with weaker or other requirements:
/// `DELETE /api/*` (admin) beside `/api/v1/*` (read) would let a read
/// token delete under `/api/v1/`, which is rarely what was meant. The rule
/// set must say what the method needs on the longer path. A longer rule at
/// least as strict (`GET /*` anonymous beside `/admin/*` admin) is what it
/// seems and is accepted. `order` is most specific first, with each rule's
/// index in the file.
fn conflicts(order: &[(usize, &Rule)], name: &str) -> Result<(), ConfigError> {
    for (j, &(a_index, a)) in order.iter().enumerate() {
        if a.methods.is_empty() {
            continue;
        }
        for &(b_index, b) in order.iter().take(j) {
            if !b.methods.is_empty()
                || b.path == a.path
                || b.at_least_as_strict_as(a)
                || !b.overlaps_path(a)
            {
                continue;
            }
            // A rule naming the method on b's own path decides it there.
            let unsaid = a.methods.iter().find(|m| {
                !order
                    .iter()
                    .any(|(_, c)| c.path == b.path && c.methods.contains(m))
            });
            if let Some(m) = unsaid {
                return Err(ConfigError(format!(
                    "{name}: rule[{b_index}].path: {bp:?} (every method) is more specific than rule[{a_index}] ({m} {ap:?}) and would decide {m} {bp:?} with weaker or other requirements; say what {m} needs there with its own rule, e.g.\n[[rule]]\npath = {bp:?}\nmethods = [{m:?}]\n(the scopes of rule[{a_index}], or others), or make rule[{b_index}] at least as strict",
                    bp = b.path,
                    ap = a.path,
                )));
            }
        }
    }
    Ok(())
}

/// The gateway convention: one of the named ones, or two header names.
fn gateway(
    file: &File,
    at: &dyn Fn(Range<usize>, &str, &str) -> ConfigError,
    name: &str,
) -> Result<Gateway, ConfigError> {
    let header = |h: &Spanned<String>, field: &str| {
        let n = h.get_ref().to_ascii_lowercase();
        if http::HeaderName::from_bytes(n.as_bytes()).is_err() {
            return Err(at(h.span(), field, "not a valid header name"));
        }
        Ok(n)
    };
    match (&file.gateway, &file.method_header, &file.uri_header) {
        (Some(g), None, None) => match g.get_ref().as_str() {
            "nginx" => Ok(Gateway::Headers {
                method: "x-original-method".into(),
                uri: "x-original-uri".into(),
            }),
            "traefik" => Ok(Gateway::Headers {
                method: "x-forwarded-method".into(),
                uri: "x-forwarded-uri".into(),
            }),
            "envoy" => Ok(Gateway::Envoy),
            _ => Err(at(
                g.span(),
                "gateway",
                "must be \"nginx\", \"traefik\" or \"envoy\" (or give method_header and uri_header)",
            )),
        },
        (None, Some(m), Some(u)) => {
            let method = header(m, "method_header")?;
            let uri = header(u, "uri_header")?;
            if method == uri {
                return Err(at(u.span(), "uri_header", "must differ from method_header"));
            }
            Ok(Gateway::Headers { method, uri })
        }
        (Some(g), _, _) => Err(at(
            g.span(),
            "gateway",
            "give gateway, or method_header and uri_header, not both",
        )),
        (None, Some(m), None) => Err(at(
            m.span(),
            "uri_header",
            "missing: give it with method_header",
        )),
        (None, None, Some(u)) => Err(at(
            u.span(),
            "method_header",
            "missing: give it with uri_header",
        )),
        (None, None, None) => Err(ConfigError(format!(
            "{name}: gateway: missing: name the gateway in front, gateway = \"nginx\" | \"traefik\" | \"envoy\" (or method_header and uri_header): only its headers are trusted"
        ))),
    }
}

/// The key-set settings of one `[[issuer]]`, checked: each in range,
/// `refresh_min_seconds <= refresh_interval_seconds <= refresh_max_seconds`
/// (defaults included), and none for a `jwks_file`, which is never fetched.
fn fetch(
    entry: &IssuerFile,
    is_file: bool,
    at: &dyn Fn(Range<usize>, &str, &str) -> ConfigError,
) -> Result<Fetch, ConfigError> {
    let mut out = Fetch::default();
    let secs: [(&Option<Spanned<u64>>, &str, &mut Duration); 5] = [
        (
            &entry.refresh_interval_seconds,
            "refresh_interval_seconds",
            &mut out.refresh_interval,
        ),
        (
            &entry.refresh_min_seconds,
            "refresh_min_seconds",
            &mut out.refresh_min,
        ),
        (
            &entry.refresh_max_seconds,
            "refresh_max_seconds",
            &mut out.refresh_max,
        ),
        (
            &entry.unknown_kid_cooldown_seconds,
            "unknown_kid_cooldown_seconds",
            &mut out.unknown_kid_cooldown,
        ),
        (
            &entry.max_staleness_seconds,
            "max_staleness_seconds",
            &mut out.max_staleness,
        ),
    ];
    for (value, name, slot) in secs {
        let Some(v) = value else { continue };
        if is_file {
            return Err(at(
                v.span(),
                name,
                "only for keys fetched over the network (jwks_url or discovery): a jwks_file is read once at start and never refreshed",
            ));
        }
        if !(1..=MAX_SECONDS).contains(v.get_ref()) {
            return Err(at(
                v.span(),
                name,
                &format!("must be 1 to {MAX_SECONDS} (one year)"),
            ));
        }
        *slot = Duration::from_secs(*v.get_ref());
    }
    if let Some(v) = &entry.fetch_timeout_ms {
        if is_file {
            return Err(at(
                v.span(),
                "fetch_timeout_ms",
                "only for keys fetched over the network (jwks_url or discovery): a jwks_file is read once at start and never fetched",
            ));
        }
        if !(1..=MAX_TIMEOUT_MS).contains(v.get_ref()) {
            return Err(at(
                v.span(),
                "fetch_timeout_ms",
                &format!("must be 1 to {MAX_TIMEOUT_MS} (ten minutes)"),
            ));
        }
        out.timeout = Duration::from_millis(*v.get_ref());
    }
    let secs_of = |d: Duration| d.as_secs();
    // The first of the two settings written, to point at its line.
    let blame = |a: (&Option<Spanned<u64>>, &'static str),
                 b: (&Option<Spanned<u64>>, &'static str)| {
        match (a.0, b.0) {
            (Some(v), _) => (v.span(), a.1),
            (None, Some(v)) => (v.span(), b.1),
            (None, None) => (0..0, a.1),
        }
    };
    if out.refresh_min > out.refresh_max {
        let (span, name) = blame(
            (&entry.refresh_min_seconds, "refresh_min_seconds"),
            (&entry.refresh_max_seconds, "refresh_max_seconds"),
        );
        return Err(at(
            span,
            name,
            &format!(
                "refresh_min_seconds ({}) is greater than refresh_max_seconds ({}){}",
                secs_of(out.refresh_min),
                secs_of(out.refresh_max),
                defaults_note(&entry.refresh_min_seconds, &entry.refresh_max_seconds),
            ),
        ));
    }
    if !(out.refresh_min..=out.refresh_max).contains(&out.refresh_interval) {
        let (span, name) = blame(
            (&entry.refresh_interval_seconds, "refresh_interval_seconds"),
            if entry.refresh_min_seconds.is_some() {
                (&entry.refresh_min_seconds, "refresh_min_seconds")
            } else {
                (&entry.refresh_max_seconds, "refresh_max_seconds")
            },
        );
        return Err(at(
            span,
            name,
            &format!(
                "refresh_interval_seconds ({}) is outside refresh_min_seconds..=refresh_max_seconds ({}..={}); defaults are {}, {} and {}",
                secs_of(out.refresh_interval),
                secs_of(out.refresh_min),
                secs_of(out.refresh_max),
                tokenwarden::remote::DEFAULT_REFRESH_INTERVAL.as_secs(),
                tokenwarden::remote::DEFAULT_MIN_REFRESH_INTERVAL.as_secs(),
                tokenwarden::remote::DEFAULT_MAX_REFRESH_INTERVAL.as_secs(),
            ),
        ));
    }
    Ok(out)
}

fn defaults_note(min: &Option<Spanned<u64>>, max: &Option<Spanned<u64>>) -> &'static str {
    match (min, max) {
        (None, Some(_)) => " (the default min)",
        (Some(_), None) => " (the default max)",
        _ => "",
    }
}

fn server(
    s: &ServerFile,
    at: &dyn Fn(Range<usize>, &str, &str) -> ConfigError,
) -> Result<Server, ConfigError> {
    let mut out = Server::default();
    let ms = |v: &Option<Spanned<u64>>, field: &str, slot: &mut Duration| {
        if let Some(v) = v {
            if !(1..=3_600_000).contains(v.get_ref()) {
                return Err(at(v.span(), field, "must be 1 to 3600000 (one hour)"));
            }
            *slot = Duration::from_millis(*v.get_ref());
        }
        Ok(())
    };
    ms(
        &s.header_read_timeout_ms,
        "server.header_read_timeout_ms",
        &mut out.header_read_timeout,
    )?;
    ms(
        &s.idle_timeout_ms,
        "server.idle_timeout_ms",
        &mut out.idle_timeout,
    )?;
    if let Some(n) = &s.max_connections {
        out.max_connections = match usize::try_from(*n.get_ref()) {
            Ok(n @ 1..=1_000_000) => n,
            _ => {
                return Err(at(
                    n.span(),
                    "server.max_connections",
                    "must be 1 to 1000000",
                ));
            }
        };
    }
    Ok(out)
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
gateway = "nginx"

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
        assert!(matches!(c.issuers[0].keys, Keys::Discovery(None)));
        assert!(c.rules[0].matches("GET", "/admin/users"));
        assert!(!c.rules[0].matches("DELETE", "/admin/users"));
        assert!(!c.rules[0].matches("GET", "/public"));
    }

    #[test]
    fn discovery_url_is_taken_and_checked() {
        let with = |line: &str| {
            GOOD.replacen(
                "issuer = \"https://idp.example.com\"\n",
                &format!("issuer = \"https://idp.example.com\"\n{line}\n"),
                1,
            )
        };
        let at = "https://idp.internal/.well-known/openid-configuration";
        let c = parse(&with(&format!("discovery_url = \"{at}\"")), "t.toml").unwrap();
        assert!(matches!(&c.issuers[0].keys, Keys::Discovery(Some(u)) if u == at));
        for (line, expected) in [
            ("discovery_url = \"not a url\"", "is not a URL"),
            (
                "discovery_url = \"http://idp.internal/x\"",
                "must use https",
            ),
            (
                "jwks_url = \"https://idp.example.com/jwks\"\ndiscovery_url = \"https://idp.internal/x\"",
                "only for keys found by discovery",
            ),
        ] {
            let err = parse(&with(line), "t.toml").unwrap_err().to_string();
            assert!(
                err.contains("issuer[0].discovery_url") && err.contains(expected),
                "{line}: {err}"
            );
        }
    }

    #[test]
    fn private_addresses_are_refused_unless_the_file_allows_them() {
        assert!(!parse(GOOD, "t.toml").unwrap().allow_private_addresses);
        let allowed = GOOD.replacen("audiences", "allow_private_addresses = true\naudiences", 1);
        assert!(parse(&allowed, "t.toml").unwrap().allow_private_addresses);
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

    const HEAD: &str =
        "audiences = [\"api\"]\ngateway = \"nginx\"\n[[issuer]]\nissuer = \"https://i.example\"\n";

    fn fetch_of(text: &str) -> Result<Fetch, String> {
        parse(&format!("{HEAD}{text}"), "t.toml")
            .map(|c| c.issuers[0].fetch.clone())
            .map_err(|e| e.0)
    }

    #[test]
    fn key_set_settings_default_to_the_library_and_reach_the_config() {
        use tokenwarden::remote as r;
        let d = fetch_of("").unwrap();
        assert_eq!(d, Fetch::default());
        assert_eq!(d.refresh_interval, r::DEFAULT_REFRESH_INTERVAL);
        assert_eq!(d.refresh_min, r::DEFAULT_MIN_REFRESH_INTERVAL);
        assert_eq!(d.refresh_max, r::DEFAULT_MAX_REFRESH_INTERVAL);
        assert_eq!(d.unknown_kid_cooldown, r::DEFAULT_UNKNOWN_KID_COOLDOWN);
        assert_eq!(d.max_staleness, r::DEFAULT_MAX_STALENESS);
        assert_eq!(d.timeout, r::DEFAULT_TIMEOUT);
        let f = fetch_of(
            "refresh_interval_seconds = 120\nrefresh_min_seconds = 10\nrefresh_max_seconds = 3600\nunknown_kid_cooldown_seconds = 5\nmax_staleness_seconds = 7200\nfetch_timeout_ms = 1500\n",
        )
        .unwrap();
        assert_eq!(
            f,
            Fetch {
                refresh_interval: Duration::from_secs(120),
                refresh_min: Duration::from_secs(10),
                refresh_max: Duration::from_secs(3600),
                unknown_kid_cooldown: Duration::from_secs(5),
                max_staleness: Duration::from_secs(7200),
                timeout: Duration::from_millis(1500),
            }
        );
    }

    #[test]
    fn key_set_settings_out_of_range_are_refused_with_line_and_field() {
        for field in [
            "refresh_interval_seconds",
            "refresh_min_seconds",
            "refresh_max_seconds",
            "unknown_kid_cooldown_seconds",
            "max_staleness_seconds",
        ] {
            for v in ["0".to_string(), "31536001".into(), u64::MAX.to_string()] {
                let e = fetch_of(&format!("{field} = {v}\n")).unwrap_err();
                assert!(
                    e.contains(&format!(
                        "t.toml:5: issuer[0].{field}: must be 1 to 31536000"
                    )),
                    "{field} = {v}: {e}"
                );
            }
        }
        for v in ["0".to_string(), "600001".into(), u64::MAX.to_string()] {
            let e = fetch_of(&format!("fetch_timeout_ms = {v}\n")).unwrap_err();
            assert!(
                e.contains("t.toml:5: issuer[0].fetch_timeout_ms: must be 1 to 600000"),
                "{v}: {e}"
            );
        }
        // Above i64::MAX: TOML itself refuses it, still with a line.
        let e = fetch_of("max_staleness_seconds = 99999999999999999999\n").unwrap_err();
        assert!(e.contains("t.toml:5"), "{e}");
    }

    #[test]
    fn refresh_bounds_must_be_ordered_defaults_included() {
        let e = fetch_of("refresh_min_seconds = 600\nrefresh_max_seconds = 300\n").unwrap_err();
        assert!(
            e.contains("t.toml:5: issuer[0].refresh_min_seconds: refresh_min_seconds (600) is greater than refresh_max_seconds (300)"),
            "{e}"
        );
        // Against the default max (24 h).
        let e = fetch_of("\nrefresh_min_seconds = 90000\n").unwrap_err();
        assert!(
            e.contains("t.toml:6: issuer[0].refresh_min_seconds:")
                && e.contains("(86400) (the default max)"),
            "{e}"
        );
        // The default interval (10 min) must lie within the bounds given.
        let e = fetch_of("refresh_max_seconds = 300\n").unwrap_err();
        assert!(
            e.contains(
                "t.toml:5: issuer[0].refresh_max_seconds: refresh_interval_seconds (600) is outside"
            ),
            "{e}"
        );
        let e = fetch_of("refresh_interval_seconds = 30\n").unwrap_err();
        assert!(
            e.contains("t.toml:5: issuer[0].refresh_interval_seconds: refresh_interval_seconds (30) is outside refresh_min_seconds..=refresh_max_seconds (60..=86400)"),
            "{e}"
        );
        // Equal bounds are fine.
        let f = fetch_of("refresh_interval_seconds = 300\nrefresh_min_seconds = 300\nrefresh_max_seconds = 300\n").unwrap();
        assert_eq!(
            (f.refresh_min, f.refresh_max),
            (Duration::from_secs(300), Duration::from_secs(300))
        );
    }

    #[test]
    fn key_set_settings_are_refused_for_a_jwks_file() {
        for (field, v) in [
            ("refresh_interval_seconds", "60"),
            ("refresh_min_seconds", "60"),
            ("refresh_max_seconds", "60"),
            ("unknown_kid_cooldown_seconds", "5"),
            ("max_staleness_seconds", "60"),
            ("fetch_timeout_ms", "100"),
        ] {
            let e =
                fetch_of(&format!("jwks_file = \"/etc/jwks.json\"\n{field} = {v}\n")).unwrap_err();
            assert!(
                e.contains(&format!(
                    "t.toml:6: issuer[0].{field}: only for keys fetched over the network"
                )) && e.contains("jwks_file is read once at start"),
                "{field}: {e}"
            );
        }
        assert!(fetch_of("jwks_file = \"/etc/jwks.json\"\n").is_ok());
    }

    fn rules(text: &str) -> Vec<Rule> {
        parse(&format!("{HEAD}{text}"), "t.toml").unwrap().rules
    }

    /// The first rule in the (sorted) list that matches.
    fn decides<'a>(rules: &'a [Rule], method: &str, path: &str) -> Option<&'a str> {
        rules
            .iter()
            .find(|r| r.matches(method, path))
            .map(|r| r.scopes.first().map_or("anonymous", String::as_str))
    }

    #[test]
    fn the_most_specific_rule_decides_whatever_the_file_order() {
        let r = rules(
            r#"
[[rule]]
path = "/*"
anonymous = true
[[rule]]
path = "/admin/*"
scopes = ["admin"]
[[rule]]
path = "/admin/reports/*"
scopes = ["reports"]
[[rule]]
path = "/admin/reports/*"
methods = ["DELETE"]
scopes = ["reports-delete"]
[[rule]]
path = "/admin/health"
anonymous = true
"#,
        );
        assert_eq!(decides(&r, "GET", "/admin/x"), Some("admin"));
        assert_eq!(
            decides(&r, "GET", "/admin"),
            Some("admin"),
            "the directory itself"
        );
        assert_eq!(decides(&r, "GET", "/admin/reports/1"), Some("reports"));
        assert_eq!(
            decides(&r, "DELETE", "/admin/reports/1"),
            Some("reports-delete")
        );
        assert_eq!(decides(&r, "GET", "/admin/health"), Some("anonymous"));
        assert_eq!(decides(&r, "GET", "/administrator"), Some("anonymous"));
        assert_eq!(decides(&r, "GET", "/public"), Some("anonymous"));
    }

    #[test]
    fn a_rule_that_could_never_decide_is_refused() {
        let e = err(&format!(
            "{HEAD}[[rule]]\npath = \"/a/*\"\nscopes = [\"x\"]\n[[rule]]\npath = \"/a/*\"\nanonymous = true\n"
        ));
        assert!(e.contains("rule[1].path: shadowed"), "{e}");
        let e = err(&format!(
            "{HEAD}[[rule]]\npath = \"/a\"\nmethods = [\"GET\", \"POST\"]\n[[rule]]\npath = \"/a\"\nmethods = [\"post\"]\nanonymous = true\n"
        ));
        assert!(e.contains("rule[1].path: shadowed"), "{e}");
        // A method-specific rule after an any-method one of the same path is
        // more specific: it decides for its methods, so it is accepted.
        let r = rules(
            "[[rule]]\npath = \"/a\"\n[[rule]]\npath = \"/a\"\nmethods = [\"GET\"]\nanonymous = true\n",
        );
        assert_eq!(decides(&r, "GET", "/a"), Some("anonymous"));
    }

    #[test]
    fn rule_paths_must_be_written_in_normal_form() {
        for (path, hint) in [
            ("/a/../admin/*", "\"/admin/*\""),
            ("//admin/*", "\"/admin/*\""),
            ("/%61dmin", "\"/admin\""),
            ("/a/./b", "\"/a/b\""),
        ] {
            let e = err(&format!("{HEAD}[[rule]]\npath = \"{path}\"\n"));
            assert!(
                e.contains("rule[0].path: not in normal form") && e.contains(hint),
                "{path}: {e}"
            );
        }
        for path in ["/a;b", "/a%2Fb/*", "/a%2e%2e/*", "/caf\u{e9}"] {
            let e = err(&format!("{HEAD}[[rule]]\npath = \"{path}\"\n"));
            assert!(e.contains("rule[0].path:"), "{path}: {e}");
        }
        let fold = |p: &str| {
            err(&format!(
                "case_insensitive_paths = true\n{HEAD}[[rule]]\npath = \"{p}\"\n"
            ))
        };
        assert!(fold("/Admin/*").contains("write \"/admin/*\""));
    }

    #[test]
    fn normal_form_hint_keeps_the_star_of_a_prefix_rule() {
        // Following the hint must not turn a prefix rule into an exact one
        // (which would silently narrow what the rule protects).
        let e = err(&format!("{HEAD}[[rule]]\npath = \"/public//x/*\"\n"));
        assert!(e.contains("write \"/public/x/*\""), "{e}");
        let e = err(&format!("{HEAD}[[rule]]\npath = \"/public//x*\"\n"));
        assert!(e.contains("write \"/public/x*\""), "{e}");
        // An exact rule gets an exact hint.
        let e = err(&format!("{HEAD}[[rule]]\npath = \"/public//x\"\n"));
        assert!(e.contains("write \"/public/x\" "), "{e}");
    }

    #[test]
    fn the_gateway_names_the_only_trusted_headers() {
        let gw = |text: &str| {
            parse(
                &format!(
                    "audiences = [\"a\"]\n{text}\n[[issuer]]\nissuer = \"https://i.example\"\n"
                ),
                "t.toml",
            )
            .map(|c| c.gateway)
            .map_err(|e| e.0)
        };
        let headers = |m: &str, u: &str| Gateway::Headers {
            method: m.into(),
            uri: u.into(),
        };
        assert_eq!(
            gw("gateway = \"nginx\""),
            Ok(headers("x-original-method", "x-original-uri"))
        );
        assert_eq!(
            gw("gateway = \"traefik\""),
            Ok(headers("x-forwarded-method", "x-forwarded-uri"))
        );
        assert_eq!(gw("gateway = \"envoy\""), Ok(Gateway::Envoy));
        assert_eq!(
            gw("method_header = \"X-Method\"\nuri_header = \"X-Uri\""),
            Ok(headers("x-method", "x-uri"))
        );
        for (text, needle) in [
            ("", "gateway: missing"),
            ("gateway = \"apache\"", "t.toml:2: gateway: must be"),
            ("gateway = \"nginx\"\nuri_header = \"X-Uri\"", "not both"),
            ("method_header = \"X-Method\"", "uri_header: missing"),
            ("uri_header = \"X-Uri\"", "method_header: missing"),
            (
                "method_header = \"X M\"\nuri_header = \"X-Uri\"",
                "not a valid header name",
            ),
            (
                "method_header = \"X-A\"\nuri_header = \"x-a\"",
                "must differ",
            ),
        ] {
            let e = gw(text).unwrap_err();
            assert!(e.contains(needle), "{text:?}: {e}");
        }
    }

    #[test]
    fn server_limits_have_defaults_and_bounds() {
        let c = parse(GOOD, "t.toml").unwrap();
        assert_eq!(c.server, Server::default());
        let c = parse(
            &format!("{GOOD}\n[server]\nheader_read_timeout_ms = 250\nidle_timeout_ms = 1000\nmax_connections = 8\n"),
            "t.toml",
        )
        .unwrap();
        assert_eq!(c.server.header_read_timeout, Duration::from_millis(250));
        assert_eq!(c.server.idle_timeout, Duration::from_secs(1));
        assert_eq!(c.server.max_connections, 8);
        for bad in [
            "header_read_timeout_ms = 0",
            "idle_timeout_ms = 3600001",
            "max_connections = 0",
            "max_connections = 2000000",
        ] {
            let e = err(&format!("{GOOD}\n[server]\n{bad}\n"));
            assert!(e.contains("server."), "{bad}: {e}");
        }
    }

    #[test]
    fn a_rule_for_get_covers_head() {
        let r = rules(
            "[[rule]]\npath = \"/r/*\"\nmethods = [\"GET\"]\nscopes = [\"admin\"]\n[[rule]]\npath = \"/*\"\nanonymous = true\n",
        );
        assert_eq!(decides(&r, "HEAD", "/r/x"), Some("admin"));
        assert_eq!(
            decides(&r, "head", "/r/x"),
            Some("anonymous"),
            "exact compare"
        );
        // A separate HEAD rule beside GET on the same path is refused,
        // in either order.
        for text in [
            "[[rule]]\npath = \"/a\"\nmethods = [\"GET\"]\n[[rule]]\npath = \"/a\"\nmethods = [\"HEAD\"]\nanonymous = true\n",
            "[[rule]]\npath = \"/a\"\nmethods = [\"HEAD\"]\nanonymous = true\n[[rule]]\npath = \"/a\"\nmethods = [\"GET\"]\n",
        ] {
            let e = err(&format!("{HEAD}{text}"));
            assert!(e.contains("rule[1].") && e.contains("HEAD"), "{e}");
        }
    }

    #[test]
    fn an_exact_rule_covers_one_trailing_slash() {
        let r = rules(
            "[[rule]]\npath = \"/admin\"\nscopes = [\"admin\"]\n[[rule]]\npath = \"/x/\"\nscopes = [\"x\"]\n[[rule]]\npath = \"/*\"\nanonymous = true\n",
        );
        assert_eq!(decides(&r, "GET", "/admin"), Some("admin"));
        assert_eq!(decides(&r, "GET", "/admin/"), Some("admin"));
        assert_eq!(decides(&r, "GET", "/admin/x"), Some("anonymous"));
        assert_eq!(decides(&r, "GET", "/adminx"), Some("anonymous"));
        assert_eq!(decides(&r, "GET", "/x"), Some("x"));
        assert_eq!(decides(&r, "GET", "/x/"), Some("x"));
    }

    #[test]
    fn query_or_fragment_in_a_rule_path_is_refused() {
        for path in ["/a?b=1", "/a?*", "/a#b", "/a/#*"] {
            let e = err(&format!("{HEAD}[[rule]]\npath = \"{path}\"\n"));
            assert!(e.contains("rule[0].path: '?' and '#'"), "{path}: {e}");
        }
    }

    #[test]
    fn a_longer_rule_for_every_method_may_not_override_a_method_rule() {
        let base = "[[rule]]\npath = \"/api/*\"\nmethods = [\"DELETE\"]\nscopes = [\"admin\"]\n[[rule]]\npath = \"/api/v1/*\"\nscopes = [\"read\"]\n";
        let e = err(&format!("{HEAD}{base}"));
        assert!(
            e.contains("rule[1].path")
                && e.contains("DELETE")
                && e.contains("methods = [\"DELETE\"]"),
            "{e}"
        );
        // An exact path under the prefix too.
        let e = err(&format!(
            "{HEAD}[[rule]]\npath = \"/api/*\"\nmethods = [\"DELETE\"]\nscopes = [\"admin\"]\n[[rule]]\npath = \"/api/v1/x\"\nanonymous = true\n"
        ));
        assert!(e.contains("rule[1].path"), "{e}");
        // Fixed by saying what DELETE needs on the longer path...
        let r = rules(&format!(
            "{base}[[rule]]\npath = \"/api/v1/*\"\nmethods = [\"DELETE\"]\nscopes = [\"admin\"]\n"
        ));
        assert_eq!(decides(&r, "DELETE", "/api/v1/x"), Some("admin"));
        assert_eq!(decides(&r, "GET", "/api/v1/x"), Some("read"));
        // ...or by a longer rule at least as strict; unrelated paths are
        // fine.
        rules(
            "[[rule]]\npath = \"/api/*\"\nmethods = [\"DELETE\"]\nscopes = [\"admin\"]\n[[rule]]\npath = \"/api/v1/*\"\nscopes = [\"admin\", \"x\"]\n[[rule]]\npath = \"/apix/*\"\nscopes = [\"read\"]\n",
        );
        let r = rules(
            "[[rule]]\npath = \"/*\"\nmethods = [\"GET\"]\nanonymous = true\n[[rule]]\npath = \"/admin/*\"\nscopes = [\"admin\"]\n",
        );
        assert_eq!(decides(&r, "GET", "/admin/x"), Some("admin"));
        // Weaker or other requirements are refused: anonymous, or a scope
        // among others.
        for longer in [
            "anonymous = true",
            "any_scopes = [\"admin\", \"read\"]",
            "scopes = [\"read\"]",
        ] {
            let e = err(&format!(
                "{HEAD}[[rule]]\npath = \"/api/*\"\nmethods = [\"DELETE\"]\nscopes = [\"admin\"]\n[[rule]]\npath = \"/api/v1/*\"\n{longer}\n"
            ));
            assert!(e.contains("rule[1].path"), "{longer}: {e}");
        }
    }

    #[test]
    fn unmatched_is_authenticated_or_deny() {
        let top = |t: &str| parse(&format!("{t}\n{HEAD}[[rule]]\npath = \"/a\"\n"), "t.toml");
        assert!(!top("").unwrap().deny_unmatched);
        assert!(!top("unmatched = \"authenticated\"").unwrap().deny_unmatched);
        assert!(top("unmatched = \"deny\"").unwrap().deny_unmatched);
        assert!(
            top("unmatched = \"allow\"")
                .unwrap_err()
                .0
                .contains("unmatched: must be")
        );
        let e = err(&format!("unmatched = \"deny\"\n{HEAD}"));
        assert!(e.contains("refuses every request"), "{e}");
    }
}
