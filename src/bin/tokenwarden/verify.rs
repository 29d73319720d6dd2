//! `tokenwarden verify`: thin over `Validator`.

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
#[command(group(clap::ArgGroup::new("keys").required(true).args(["jwks", "discovery"])))]
pub struct Args {
    /// JWK Set with the verifying keys: a file, or an https URL.
    #[arg(long, value_name = "FILE|URL")]
    jwks: Option<String>,
    /// Find the JWK Set through the issuer's OpenID Connect discovery document.
    #[arg(long, value_name = "ISSUER_URL")]
    discovery: Option<String>,
    /// Allow plain http to loopback addresses (local development only).
    #[arg(long)]
    allow_http: bool,
    /// Accepted issuer (`iss`), exact match; repeat for several.
    #[arg(long = "issuer", value_name = "ISS", required = true)]
    issuers: Vec<String>,
    /// Accepted audience (`aud`); repeat for several, one match suffices.
    #[arg(long = "audience", value_name = "AUD", required = true)]
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
    let outcome = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt.block_on(verify(args)),
        Err(e) => Err(trouble("usage", format!("cannot start the runtime: {e}"))),
    };
    let (line, code) = match outcome {
        Ok((header, claims)) => (
            format!(r#"{{"valid":true,"header":{header},"claims":{claims}}}"#),
            VALID,
        ),
        Err((kind, message, code)) => (
            format!(
                r#"{{"valid":false,"error":{}}}"#,
                json!({"kind": kind, "message": message})
            ),
            code,
        ),
    };
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

fn invalid(e: &Error) -> Failure {
    let code = if e.kind() == tokenwarden::ErrorKind::KeysUnavailable {
        TROUBLE
    } else {
        INVALID
    };
    (e.kind().as_str().to_owned(), e.to_string(), code)
}
