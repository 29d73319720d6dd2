//! `tokenwarden apikey new`: generates an API key, prints it once and the
//! store entry to add.

use std::io::Write;
use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

use tokenwarden::authn::api_key::NewApiKey;

#[derive(clap::Subcommand)]
pub enum Command {
    /// Generate a key: prints the key (once: it is stored nowhere) and the JSON record to add to the store file's "keys".
    New(NewArgs),
}

#[derive(clap::Args)]
pub struct NewArgs {
    /// What the key is for.
    #[arg(long)]
    name: String,
    /// Scopes it grants, space-separated.
    #[arg(long, default_value = "")]
    scopes: String,
    /// Lifetime: <N>d, <N>h, <N>m or <N>s from now, or "never".
    #[arg(long, value_name = "90d|never")]
    expires: String,
    /// Environment in the key (a-z, 0-9): live, test, ...
    #[arg(long, default_value = "live")]
    env: String,
    /// Who holds it (the principal's subject; the name when absent).
    #[arg(long)]
    owner: Option<String>,
}

/// Seconds in `90d`, `12h`, `30m`, `45s`; `None` for a bad value.
fn lifetime(s: &str) -> Option<i64> {
    // The last character, whatever its width: `9é` is refused, not a panic.
    let (at, _) = s.char_indices().last()?;
    let (n, unit) = s.split_at(at);
    let n: i64 = n.parse().ok().filter(|n| *n > 0)?;
    let unit = match unit {
        "d" => 86_400,
        "h" => 3_600,
        "m" => 60,
        "s" => 1,
        _ => return None,
    };
    n.checked_mul(unit)
}

pub fn run(command: &Command) -> ExitCode {
    let Command::New(args) = command;
    let expires_at = if args.expires == "never" {
        None
    } else {
        let Some(secs) = lifetime(&args.expires) else {
            eprintln!(
                "--expires: {:?} is not <N>d, <N>h, <N>m, <N>s or never",
                args.expires
            );
            return ExitCode::from(2);
        };
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
        Some(now.saturating_add(secs))
    };
    let mut new = match NewApiKey::generate(&args.env, &args.name) {
        Ok(n) => n,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    new.record.scopes = args.scopes.split_whitespace().map(str::to_owned).collect();
    new.record.owner = args.owner.clone();
    new.record.expires_at = expires_at;
    let entry = match serde_json::to_string(&new.record) {
        Ok(e) => e,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let mut out = std::io::stdout().lock();
    let written = writeln!(
        out,
        "key (shown once; give it to its holder, store it nowhere else):\n{}\n\nstore entry (add to the store file's \"keys\"):\n{entry}",
        new.expose_key()
    );
    if written.is_err() {
        return ExitCode::from(2);
    }
    ExitCode::SUCCESS
}

#[cfg(test)]
mod tests {
    #[test]
    fn lifetimes() {
        assert_eq!(super::lifetime("90d"), Some(90 * 86_400));
        assert_eq!(super::lifetime("2h"), Some(7_200));
        assert_eq!(super::lifetime("0d"), None);
        assert_eq!(super::lifetime("d"), None);
        assert_eq!(super::lifetime(""), None);
        assert_eq!(super::lifetime("9x"), None);
        assert_eq!(
            super::lifetime("9é"),
            None,
            "a multibyte unit is refused, not a panic"
        );
        assert_eq!(super::lifetime("99999999999999999d"), None);
    }
}
