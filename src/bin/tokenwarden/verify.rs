//! `tokenwarden verify`: thin over `Validator`, or (`--introspect`) over
//! the introspection authenticator for an opaque token.

use std::io::{Read, Write};
use std::process::ExitCode;
use std::time::Duration;

use serde_json::{Value, json};
use tokenwarden::{Algorithm, Error, FixedClock, KeySet, KeySource, RemoteKeySet, Validator};

/// Exit status for a valid token.
const VALID: u8 = 0;
/// Exit status for an invalid token.
const INVALID: u8 = 1;
/// Exit status for a usage or key-set problem.
const TROUBLE: u8 = 2;

#[derive(clap::Args)]
#[command(group(clap::ArgGroup::new("keys").required(true).args(["jwks", "discovery", "introspect"])))]
pub struct Args {
    /// JWK Set with the verifying keys: a file, or an https URL.
    #[arg(long, value_name = "FILE|URL")]
    jwks: Option<String>,
    /// Find the JWK Set through the issuer's OpenID Connect discovery document.
    #[arg(long, value_name = "ISSUER_URL")]
    discovery: Option<String>,
    /// Judge an opaque token at this RFC 7662 introspection endpoint
    /// instead of verifying a JWT (with --client-id and
    /// --client-secret-file); --issuer and --audience, when given, must
    /// match the answer's `iss` and `aud`. Prints the principal.
    #[arg(long, value_name = "URL", requires_all = ["client_id", "client_secret_file"])]
    introspect: Option<String>,
    /// The client id presented to the introspection endpoint.
    #[arg(long, value_name = "ID", requires = "introspect")]
    client_id: Option<String>,
    /// A file holding the client secret (one line), never the secret on
    /// the command line (it would show in `ps` and shell history).
    #[arg(long, value_name = "FILE", requires = "introspect")]
    client_secret_file: Option<String>,
    /// How the secret is sent: client_secret_basic (default) or
    /// client_secret_post.
    #[arg(long, value_name = "METHOD", requires = "introspect", value_parser = ["client_secret_basic", "client_secret_post"])]
    client_auth: Option<String>,
    /// Allow plain http to loopback addresses (local development only).
    #[arg(long)]
    allow_http: bool,
    /// Accepted issuer (`iss`), exact match; repeat for several.
    #[arg(
        long = "issuer",
        value_name = "ISS",
        required_unless_present = "introspect"
    )]
    issuers: Vec<String>,
    /// Accepted audience (`aud`); repeat for several, one match suffices.
    #[arg(
        long = "audience",
        value_name = "AUD",
        required_unless_present = "introspect"
    )]
    audiences: Vec<String>,
    /// Allowed algorithms, comma-separated (default: what the keys declare or imply).
    #[arg(long, value_name = "A,B,...", value_delimiter = ',')]
    algorithms: Option<Vec<String>>,
    /// Clock-skew leeway in seconds for exp, nbf and iat.
    #[arg(long, value_name = "SECS", default_value_t = 60)]
    leeway: u64,
    /// Check as of this Unix time instead of now.
    #[arg(long, value_name = "UNIX")]
    now: Option<i64>,
    /// Claim that must be present; repeat for several.
    #[arg(long = "require", value_name = "CLAIM")]
    required: Vec<String>,
    /// Required header `typ`, e.g. at+jwt.
    #[arg(long = "type", value_name = "TYP")]
    typ: Option<String>,
    /// Refuse tokens issued more than SECS ago.
    #[arg(long, value_name = "SECS")]
    max_age: Option<u64>,
    /// The token; read from standard input when absent.
    token: Option<String>,
}

pub fn run(args: &Args) -> ExitCode {
    // Fields in a fixed order, `valid` first, so the line reads well in logs.
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => Ok(rt),
        Err(e) => Err(trouble("usage", format!("cannot start the runtime: {e}"))),
    };
    if args.introspect.is_some() {
        let outcome = rt.and_then(|rt| rt.block_on(introspect(args)));
        return print(match outcome {
            Ok(principal) => (
                format!(r#"{{"valid":true,"principal":{principal}}}"#),
                VALID,
            ),
            Err(f) => refusal_line(f),
        });
    }
    let outcome = rt.and_then(|rt| rt.block_on(verify(args)));
    let (line, code) = match outcome {
        Ok((header, claims)) => (
            format!(r#"{{"valid":true,"header":{header},"claims":{claims}}}"#),
            VALID,
        ),
        Err(f) => refusal_line(f),
    };
    print((line, code))
}

fn refusal_line((kind, message, code): Failure) -> (String, u8) {
    (
        format!(
            r#"{{"valid":false,"error":{}}}"#,
            json!({"kind": kind, "message": message})
        ),
        code,
    )
}

fn print((line, code): (String, u8)) -> ExitCode {
    let mut out = std::io::stdout().lock();
    // A closed stdout leaves nothing to report to; the exit status still says it.
    let _ = writeln!(out, "{line}");
    ExitCode::from(code)
}

type Failure = (String, String, u8);

fn trouble(kind: &str, message: impl ToString) -> Failure {
    (kind.to_owned(), message.to_string(), TROUBLE)
}

/// The keys from a file, a URL or discovery; remote sets are fetched once.
async fn keys(args: &Args) -> Result<KeySource, Failure> {
    let unavailable = |e: &dyn std::fmt::Display| trouble("keys_unavailable", e);
    let remote = match (&args.jwks, &args.discovery) {
        (Some(url), None) if url.starts_with("https://") || url.starts_with("http://") => {
            RemoteKeySet::builder().jwks_url(url)
        }
        (Some(file), None) => {
            let bytes = std::fs::read(file)
                .map_err(|e| unavailable(&format!("cannot read {file}: {e}")))?;
            return KeySet::from_jwks(&bytes)
                .map(KeySource::from)
                .map_err(|e| unavailable(&e));
        }
        (None, Some(issuer)) => RemoteKeySet::builder().discovery(issuer),
        _ => {
            return Err(trouble(
                "usage",
                "give exactly one of --jwks and --discovery",
            ));
        }
    };
    let remote = remote
        .allow_http_loopback(args.allow_http)
        .build()
        .map_err(|e| trouble("usage", e))?;
    remote.refresh().await.map_err(|e| unavailable(&e))?;
    Ok(remote.into())
}

async fn verify(args: &Args) -> Result<(Value, Value), Failure> {
    let keys = keys(args).await?;
    let mut b = Validator::builder()
        .keys(keys)
        .leeway(Duration::from_secs(args.leeway));
    for iss in &args.issuers {
        b = b.issuer(iss);
    }
    for aud in &args.audiences {
        b = b.audience(aud);
    }
    if let Some(names) = &args.algorithms {
        let algs = names
            .iter()
            .map(|n| {
                n.trim()
                    .parse::<Algorithm>()
                    .map_err(|_| trouble("usage", format!("unknown algorithm {n:?}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        b = b.algorithms(algs);
    }
    if let Some(now) = args.now {
        b = b.clock(FixedClock(now));
    }
    for claim in &args.required {
        b = b.require_claim(claim);
    }
    if let Some(typ) = &args.typ {
        b = b.required_type(typ);
    }
    if let Some(secs) = args.max_age {
        b = b.max_age(Duration::from_secs(secs));
    }
    let validator = b.build().map_err(|e| trouble("usage", e))?;
    let token = match &args.token {
        Some(t) => t.trim().to_owned(),
        None => {
            let mut s = String::new();
            std::io::stdin()
                .take(1 << 20)
                .read_to_string(&mut s)
                .map_err(|e| trouble("usage", format!("cannot read the token from stdin: {e}")))?;
            s.trim().to_owned()
        }
    };
    match validator
        .validate_async::<serde_json::Map<String, Value>>(&token)
        .await
    {
        Ok(ok) => Ok((json!(ok.header), Value::Object(ok.claims))),
        Err(e) => Err(invalid(&e)),
    }
}

/// The token read from the arguments or standard input.
fn token(args: &Args) -> Result<String, Failure> {
    match &args.token {
        Some(t) => Ok(t.trim().to_owned()),
        None => {
            let mut s = String::new();
            std::io::stdin()
                .take(1 << 20)
                .read_to_string(&mut s)
                .map_err(|e| trouble("usage", format!("cannot read the token from stdin: {e}")))?;
            Ok(s.trim().to_owned())
        }
    }
}

/// `--introspect`: the token judged by the endpoint, as the sidecar's
/// chain judges it; the principal as JSON. A refusal (inactive, expired,
/// another audience) exits 1; the endpoint unavailable or refusing our
/// client credentials exits 2, like keys that cannot be fetched.
async fn introspect(args: &Args) -> Result<Value, Failure> {
    use tokenwarden::authn::introspection::IntrospectionAuthenticator;
    use tokenwarden::authn::{Chain, RequestView};
    let (Some(url), Some(id), Some(file)) =
        (&args.introspect, &args.client_id, &args.client_secret_file)
    else {
        return Err(trouble(
            "usage",
            "--introspect needs --client-id and --client-secret-file",
        ));
    };
    let secret = crate::introspection::read_secret(file).map_err(|e| trouble("usage", e))?;
    let mut b = IntrospectionAuthenticator::builder()
        .endpoint(url.clone())
        .allow_http_loopback(args.allow_http)
        .leeway(Duration::from_secs(args.leeway));
    b = match args.client_auth.as_deref() {
        Some("client_secret_post") => b.client_secret_post(id.clone(), secret),
        _ => b.client_secret_basic(id.clone(), secret),
    };
    match args.issuers.as_slice() {
        [] => {}
        [one] => b = b.issuer(one.clone()),
        _ => return Err(trouble("usage", "--introspect checks one --issuer")),
    }
    if args.audiences.is_empty() {
        // An opaque token for any service at the IdP would pass: say so,
        // on stderr (stdout holds the one JSON line).
        eprintln!(
            "warning: --introspect without --audience: the token's audience (aud) is not checked"
        );
    }
    for aud in &args.audiences {
        b = b.audience(aud.clone());
    }
    if let Some(now) = args.now {
        b = b.clock(FixedClock(now));
    }
    let auth = b.build().await.map_err(|e| trouble("usage", e))?;
    let token = token(args)?;
    let header = format!("Bearer {token}");
    let headers = [("authorization", header.as_str())];
    match Chain::new()
        .introspection(auth)
        .authenticate(&RequestView::new("GET", "/", &headers))
        .await
    {
        Ok(p) => Ok(json!({
            "subject": p.subject(),
            "authenticator": p.authenticator(),
            "scopes": p.scopes(),
            "expires_at": p.expires_at(),
            "claims": p.claims(),
        })),
        Err(r) => {
            let code = if r.status() == 503 { TROUBLE } else { INVALID };
            Err((r.kind().to_owned(), r.description().to_owned(), code))
        }
    }
}

fn invalid(e: &Error) -> Failure {
    let code = if e.kind() == tokenwarden::ErrorKind::KeysUnavailable {
        TROUBLE
    } else {
        INVALID
    };
    (e.kind().as_str().to_owned(), e.to_string(), code)
}
