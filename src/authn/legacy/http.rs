//! [`HttpCheck`] (features `legacy` and `remote`): a legacy HTTP endpoint
//! as the check. The credential is forwarded as it came (and nothing else
//! of the request); a 2xx JSON object is the principal.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use reqwest::header::{AUTHORIZATION, COOKIE, HeaderName, HeaderValue};
use serde_json::{Map, Value};

use super::{CheckError, CheckResult, Credential};
use crate::authn::{BoxFuture, Principal};
use crate::error::BuildError;
use crate::remote::address::{GuardedResolver, UrlPolicy, redact};
use crate::remote::fetch::check_url;

/// The default limit of a response body.
pub const DEFAULT_MAX_BODY_BYTES: usize = 64 * 1024;
/// The default timeout of one request to the endpoint.
pub const DEFAULT_HTTP_TIMEOUT: Duration = Duration::from_secs(5);

/// Asks a legacy HTTP endpoint about a credential: a `GET` to the
/// configured URL carrying only the credential, in the form it came in
/// (`Cookie: <name>=<value>`, `Authorization: Basic …`, or the configured
/// header). Then:
/// - 2xx with a JSON object: the principal; its subject, scopes and roles
///   from the configured members (default `sub`, `scope`, `roles`; scopes
///   and roles as an array of strings or one space-separated string), its
///   expiry from `exp` (Unix seconds), and the rest of the object as
///   claims, less the registered JWT claims and those a token's reader acts
///   on (`iss`, `sub`, `aud`, `exp`, `nbf`, `iat`, `jti`, `scope`, `scp`,
///   `cnf`, `act`, `may_act`, `client_id`, `azp`, `acr`, `amr`,
///   `auth_time`, `sid`, `nonce`): a legacy service cannot pass for an IdP;
/// - 401 or 403: not a valid credential (`None`);
/// - anything else (a redirect too: none is followed), a body past the
///   limit, a 2xx without a subject, a timeout, no connection: an error
///   (503 for the request, nothing cached).
///
/// The URL must be https, or http to loopback with
/// [`allow_http_loopback`](HttpCheckBuilder::allow_http_loopback);
/// private addresses need
/// [`allow_private_addresses`](HttpCheckBuilder::allow_private_addresses),
/// checked at connect time as for key fetches. Cheap to clone.
///
/// ```no_run
/// use tokenwarden::authn::Chain;
/// use tokenwarden::authn::legacy::{HttpCheck, LegacyAuthenticator};
///
/// let check = HttpCheck::builder("https://sessions.internal.example/whoami")
///     .allow_private_addresses(true)
///     .scopes_claim("permissions")
///     .build()?;
/// let chain = Chain::new().legacy(LegacyAuthenticator::cookie("JSESSIONID", check.checker())?);
/// # let _ = chain;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct HttpCheck {
    inner: Arc<Inner>,
}

struct Inner {
    client: reqwest::Client,
    url: reqwest::Url,
    shown: String,
    policy: UrlPolicy,
    max_bytes: usize,
    timeout: Duration,
    subject: String,
    scopes: String,
    roles: String,
}

impl fmt::Debug for HttpCheck {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpCheck")
            .field("url", &self.inner.shown)
            .field("timeout", &self.inner.timeout)
            .field("max_body_bytes", &self.inner.max_bytes)
            .finish_non_exhaustive()
    }
}

/// Builds an [`HttpCheck`]; errors wait for [`build`](Self::build).
#[derive(Debug)]
#[must_use]
pub struct HttpCheckBuilder {
    url: String,
    policy: UrlPolicy,
    client: Option<reqwest::Client>,
    max_bytes: usize,
    timeout: Duration,
    subject: String,
    scopes: String,
    roles: String,
}

impl HttpCheck {
    /// A check asking `url`.
    pub fn builder(url: impl Into<String>) -> HttpCheckBuilder {
        HttpCheckBuilder {
            url: url.into(),
            policy: UrlPolicy::default(),
            client: None,
            max_bytes: DEFAULT_MAX_BODY_BYTES,
            timeout: DEFAULT_HTTP_TIMEOUT,
            subject: "sub".into(),
            scopes: "scope".into(),
            roles: "roles".into(),
        }
    }

    /// This check as the function a
    /// [`LegacyAuthenticator`](super::LegacyAuthenticator) takes.
    pub fn checker(
        &self,
    ) -> impl Fn(Credential) -> BoxFuture<'static, CheckResult> + Send + Sync + 'static {
        let this = self.clone();
        move |c| {
            let this = this.clone();
            Box::pin(async move { this.check(c).await })
        }
    }

    /// Asks the endpoint about `credential`.
    ///
    /// # Errors
    /// When the endpoint cannot say (see the [type docs](Self)).
    pub async fn check(&self, credential: Credential) -> CheckResult {
        let i = &*self.inner;
        check_url(i.url.as_str(), i.policy).map_err(CheckError::new)?;
        let (name, value) = forwarded(&credential)
            .ok_or_else(|| CheckError::new("the credential cannot be forwarded as a header"))?;
        let fail = |what: &str| CheckError::new(format!("{}: {what}", i.shown));
        let mut resp = i
            .client
            .get(i.url.clone())
            .timeout(i.timeout)
            .header(reqwest::header::ACCEPT, "application/json")
            .header(name, value)
            .send()
            .await
            .map_err(|e| fail(reqwest_reason(&e)))?;
        let status = resp.status();
        if status == reqwest::StatusCode::UNAUTHORIZED || status == reqwest::StatusCode::FORBIDDEN {
            return Ok(None);
        }
        if !status.is_success() {
            return Err(fail(&format!("answered {status}")));
        }
        if resp
            .content_length()
            .is_some_and(|n| n > i.max_bytes as u64)
        {
            return Err(fail("the body is past the limit"));
        }
        let mut body = Vec::new();
        while let Some(chunk) = resp.chunk().await.map_err(|e| fail(reqwest_reason(&e)))? {
            if body.len().saturating_add(chunk.len()) > i.max_bytes {
                return Err(fail("the body is past the limit"));
            }
            body.extend_from_slice(&chunk);
        }
        let object: Map<String, Value> =
            serde_json::from_slice(&body).map_err(|_| fail("the body is not a JSON object"))?;
        principal(object, &i.subject, &i.scopes, &i.roles)
            .map(Some)
            .ok_or_else(|| fail("the body has no string subject"))
    }
}

/// The header carrying the credential as it came.
fn forwarded(c: &Credential) -> Option<(HeaderName, HeaderValue)> {
    let (name, value) = match c {
        Credential::Cookie { name, value } => (COOKIE, format!("{name}={value}")),
        Credential::Basic { user, password } => {
            let b64 =
                base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
            (AUTHORIZATION, format!("Basic {b64}"))
        }
        Credential::Header { name, value } => {
            (HeaderName::from_bytes(name.as_bytes()).ok()?, value.clone())
        }
    };
    let mut value = HeaderValue::from_str(&value).ok()?;
    value.set_sensitive(true);
    Some((name, value))
}

/// What went wrong, without reqwest's Display (which names the URL whole).
fn reqwest_reason(e: &reqwest::Error) -> &'static str {
    if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "cannot connect"
    } else if e.is_body() || e.is_decode() {
        "the body could not be read"
    } else {
        "the request failed"
    }
}

/// A list of strings from an array of strings or a space-separated string.
fn strings(v: Option<&Value>) -> Vec<String> {
    match v {
        Some(Value::String(s)) => s
            .split(' ')
            .filter(|s| !s.is_empty())
            .map(Into::into)
            .collect(),
        Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).map(Into::into).collect(),
        _ => Vec::new(),
    }
}

/// Members of the endpoint's answer that are never kept as claims: the
/// registered JWT claims (RFC 7519 §4.1), and those a token's reader acts
/// on: `scope`/`scp` (RFC 8693 §4.2; read as scopes), `cnf` (RFC 7800),
/// `act`/`may_act` (RFC 8693 §4.1, 4.4), `client_id`/`azp`, `acr`/`amr`/
/// `auth_time` (OIDC Core §2), `sid`, `nonce`. A legacy service speaks for
/// its own sessions, not for an IdP: an answer `{"iss":
/// "https://idp.example.com"}` must not read, to the service behind us or
/// to code reading the principal's claims, as a token that IdP issued. The
/// subject, scopes, roles and expiry are read from the answer first.
const NOT_CLAIMS: [&str; 19] = [
    "iss",
    "sub",
    "aud",
    "exp",
    "nbf",
    "iat",
    "jti",
    "scope",
    "scp",
    "cnf",
    "act",
    "may_act",
    "client_id",
    "azp",
    "acr",
    "amr",
    "auth_time",
    "sid",
    "nonce",
];

fn principal(
    mut object: Map<String, Value>,
    subject: &str,
    scopes: &str,
    roles: &str,
) -> Option<Principal> {
    let sub = object.get(subject)?.as_str().filter(|s| !s.is_empty())?;
    let p = Principal::new(sub, "legacy")
        .with_scopes(strings(object.get(scopes)))
        .with_roles(strings(object.get(roles)))
        .with_expiry(
            object
                .get("exp")
                .and_then(crate::authn::principal::unix_seconds),
        );
    for name in NOT_CLAIMS {
        object.remove(name);
    }
    Some(p.with_claims(object))
}

impl HttpCheckBuilder {
    /// Allows plain http to a loopback host (tests, a local sidecar).
    pub fn allow_http_loopback(mut self, allow: bool) -> Self {
        self.policy.allow_http_loopback = allow;
        self
    }

    /// Allows private, link-local and loopback addresses (a legacy service
    /// on the internal network).
    pub fn allow_private_addresses(mut self, allow: bool) -> Self {
        self.policy.allow_private = allow;
        self
    }

    /// Your own client (proxies, CA roots). The URL policy is then checked
    /// on IP-literal hosts only; follow no redirects with it.
    pub fn http_client(mut self, client: reqwest::Client) -> Self {
        self.client = Some(client);
        self
    }

    /// The largest body read (default [`DEFAULT_MAX_BODY_BYTES`]).
    pub fn max_body_bytes(mut self, n: usize) -> Self {
        self.max_bytes = n;
        self
    }

    /// The timeout of one request (default [`DEFAULT_HTTP_TIMEOUT`], at
    /// most [`MAX_TIMEOUT`](super::MAX_TIMEOUT)); the authenticator's
    /// timeout bounds it too.
    pub fn timeout(mut self, d: Duration) -> Self {
        self.timeout = d.min(super::MAX_TIMEOUT);
        self
    }

    /// The member holding the subject (default `sub`).
    pub fn subject_claim(mut self, name: impl Into<String>) -> Self {
        self.subject = name.into();
        self
    }

    /// The member holding the scopes (default `scope`).
    pub fn scopes_claim(mut self, name: impl Into<String>) -> Self {
        self.scopes = name.into();
        self
    }

    /// The member holding the roles (default `roles`).
    pub fn roles_claim(mut self, name: impl Into<String>) -> Self {
        self.roles = name.into();
        self
    }

    /// The check.
    ///
    /// # Errors
    /// A URL the policy refuses, or an HTTP client that cannot be built.
    pub fn build(self) -> Result<HttpCheck, BuildError> {
        let url = check_url(&self.url, self.policy).map_err(BuildError::new)?;
        let client = match self.client {
            Some(c) => c,
            None => reqwest::Client::builder()
                .connect_timeout(Duration::from_secs(2))
                .redirect(reqwest::redirect::Policy::none())
                // A proxy would connect out of reach of the address filter.
                .no_proxy()
                .dns_resolver(GuardedResolver(self.policy))
                .user_agent(concat!("tokenwarden/", env!("CARGO_PKG_VERSION")))
                .build()
                .map_err(|e| BuildError::new(format!("HTTP client: {e}")))?,
        };
        Ok(HttpCheck {
            inner: Arc::new(Inner {
                client,
                shown: redact(url.as_str()),
                url,
                policy: self.policy,
                max_bytes: self.max_bytes,
                timeout: self.timeout,
                subject: self.subject,
                scopes: self.scopes,
                roles: self.roles,
            }),
        })
    }
}
