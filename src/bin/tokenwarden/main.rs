//! `tokenwarden`: verify a token from the shell, or serve as a forward-auth
//! sidecar for API gateways.
//!
//! Exit status: 0 valid, 1 invalid token, 2 usage, configuration or key-set
//! problem.

mod api_keys;
mod apikey;
mod config;
mod idle;
mod internal_token;
mod introspection;
mod legacy;
mod metrics;
mod mtls;
mod redis_config;
mod revocation;
mod revocation_http;
mod serve;
mod shared_state;
mod verify;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "tokenwarden",
    version,
    about = "Decides whether a bearer token may pass"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Verify one token and print one JSON line: {"valid":true,...} or {"valid":false,"error":{...}}.
    Verify(verify::Args),
    /// Answer forward-auth subrequests (nginx auth_request, Traefik ForwardAuth, Envoy ext_authz) on GET /auth; /healthz, /readyz, /metrics.
    Serve(serve::Args),
    /// Manage API keys: `apikey new` generates one.
    #[command(subcommand)]
    Apikey(apikey::Command),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Verify(args) => verify::run(&args),
        Command::Serve(args) => serve::run(&args),
        Command::Apikey(command) => apikey::run(&command),
    }
}
