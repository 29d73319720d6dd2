//! `tokenwarden verify`: thin over `Validator`.

use std::io::{Read, Write};
use std::process::ExitCode;
use std::time::Duration;

use serde_json::{Value, json};
use tokenwarden::{Algorithm, Error, FixedClock, KeySet, Validator};

/// Exit status for a valid token.
const VALID: u8 = 0;
/// Exit status for an invalid token.
const INVALID: u8 = 1;
/// Exit status for a usage or key-set problem.
const TROUBLE: u8 = 2;

#[derive(clap::Args)]
pub struct Args {
    /// JWK Set file with the verifying keys.
    #[arg(long, value_name = "FILE")]
    jwks: std::path::PathBuf,
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
    let (line, code) = match verify(args) {
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

fn verify(args: &Args) -> Result<(Value, Value), Failure> {
    let jwks = std::fs::read(&args.jwks).map_err(|e| {
        trouble(
            "keys_unavailable",
            format!("cannot read {}: {e}", args.jwks.display()),
        )
    })?;
    let keys = KeySet::from_jwks(&jwks).map_err(|e| trouble(e.kind().as_str(), e))?;
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
        b = b.require(claim);
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
    match validator.validate_json(&token) {
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
