//! An AWS Lambda function (API Gateway HTTP API) behind tokenwarden's layer,
//! with `lambda_http`. The keys are bootstrapped from the environment or a
//! file shipped with the function, so the first request never waits on the
//! identity provider (settings: `examples/lambda/app.rs`).
//!
//! ```sh
//! # deployed or under `cargo lambda watch`: serves API Gateway v2 events
//! cargo lambda watch --example lambda --features tower,remote
//! cargo lambda invoke --data-file examples/data/apigw-v2-request.json
//! # time to first verdict in a cold process, over 21 fresh processes
//! cargo run --release --example lambda --features tower,remote -- --measure
//! ```
#![allow(clippy::expect_used)]

#[path = "lambda/app.rs"]
mod app;

use std::time::{Duration, Instant};

use lambda_http::tower::ServiceExt as _;
use lambda_http::{Error, Service as _};

fn main() -> Result<(), Error> {
    // Taken first: the cold start measured is everything after exec.
    let start = Instant::now();
    let args: Vec<String> = std::env::args().collect();
    if args.iter().any(|a| a == "--measure-once") {
        let elapsed = first_verdict(start)?;
        println!("{}", elapsed.as_micros());
        return Ok(());
    }
    if args.iter().any(|a| a == "--measure") {
        return measure(&args[0]);
    }
    if std::env::var_os("AWS_LAMBDA_RUNTIME_API").is_none() {
        eprintln!(
            "not in a Lambda environment: run it with `cargo lambda watch`, or try --measure"
        );
        std::process::exit(2);
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let env = |k: &str| std::env::var(k).ok();
        let validator = app::validator_builder(&env)?.build()?;
        lambda_http::run(app::app(validator)).await
    })
}

/// One cold start: runtime, bootstrap keys from a file, validator, layer,
/// and the first API Gateway v2 event (an RS256 token) through them.
fn first_verdict(start: Instant) -> Result<Duration, Error> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let jwks = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/data/jwks.json");
        let env = |k: &str| (k == "TW_JWKS_FILE").then(|| jwks.to_owned());
        let validator = app::validator_builder(&env)?.build()?;
        let mut service = app::app(validator);
        let event = include_str!("data/apigw-v2-request.json");
        let request = lambda_http::request::from_str(event)?;
        let response = service.ready().await?.call(request).await?;
        let elapsed = start.elapsed();
        if response.status() != 200 {
            return Err(format!("expected 200, got {}", response.status()).into());
        }
        Ok(elapsed)
    })
}

/// Runs 21 fresh processes of this example and prints the spread.
fn measure(exe: &str) -> Result<(), Error> {
    let mut micros = Vec::new();
    for _ in 0..21 {
        let out = std::process::Command::new(exe)
            .arg("--measure-once")
            .output()?;
        let text = String::from_utf8_lossy(&out.stdout);
        if !out.status.success() {
            return Err(format!("child failed: {}", String::from_utf8_lossy(&out.stderr)).into());
        }
        micros.push(text.trim().parse::<u64>()?);
    }
    micros.sort_unstable();
    println!(
        "time to first verdict (cold process, bootstrap keys from a file, RS256): median {} µs, min {} µs, max {} µs over {} processes",
        micros[micros.len() / 2],
        micros[0],
        micros[micros.len() - 1],
        micros.len()
    );
    Ok(())
}
