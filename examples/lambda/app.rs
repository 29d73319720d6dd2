//! The Lambda function of `examples/lambda.rs`: its settings, handler and
//! layer. `tests/lambda.rs` includes this very file (`#[path]`), so the
//! tests drive what the function runs.
//!
//! Settings (environment variables):
//!
//! | variable | meaning |
//! |---|---|
//! | `TW_JWKS` | the bootstrap JWK Set, as JSON text |
//! | `TW_JWKS_FILE` | or a file holding it (one shipped in the deployment package) |
//! | `TW_JWKS_URL` | optional: refresh the keys from the IdP in the background, starting from the bootstrap keys |
//! | `TW_ISSUER`, `TW_AUDIENCE` | what tokens must name (default: the example tokens') |
//! | `TW_ALLOW_HTTP_LOOPBACK` | `1`: an `http://127.0.0.1` key URL is allowed (local tests only) |
//!
//! With neither `TW_JWKS` nor `TW_JWKS_FILE`, the example's own keys
//! (`examples/data/jwks.json`) are used, so it runs as shipped.

use std::sync::Arc;

use lambda_http::tower::ServiceBuilder;
use lambda_http::{Body, Error, Request, Response, Service, service_fn};
use serde_json::{Map, Value};
use tokenwarden::middleware::{BearerAuth, ResponseBody};
use tokenwarden::{KeySet, KeySource, RemoteKeySet, Validated, Validator, ValidatorBuilder};

/// The issuer and audience of the tokens in `examples/data/`.
pub const EXAMPLE_ISSUER: &str = "https://idp.example.com";
/// See [`EXAMPLE_ISSUER`].
pub const EXAMPLE_AUDIENCE: &str = "https://api.example.com";

/// The bootstrap keys: from `TW_JWKS`, else the file `TW_JWKS_FILE`, else
/// the example's keys. Read once per cold start, before the first request:
/// no network.
pub fn bootstrap_keys(env: &dyn Fn(&str) -> Option<String>) -> Result<KeySet, String> {
    let bytes = match (env("TW_JWKS"), env("TW_JWKS_FILE")) {
        (Some(json), _) => json.into_bytes(),
        (None, Some(path)) => {
            std::fs::read(&path).map_err(|e| format!("TW_JWKS_FILE {path}: {e}"))?
        }
        (None, None) => include_bytes!("../data/jwks.json").to_vec(),
    };
    let keys = KeySet::from_jwks(&bytes).map_err(|e| format!("bootstrap keys: {e}"))?;
    if keys.is_empty() {
        return Err("bootstrap keys: no usable key in the JWK Set".into());
    }
    Ok(keys)
}

/// The key source: the bootstrap keys alone, or (with `TW_JWKS_URL`) a
/// remote key set that starts from them and refreshes in the background.
/// Either way a key is in force before the first request arrives. Call it
/// inside a Tokio runtime (the refresher is a task).
pub fn keys(env: &dyn Fn(&str) -> Option<String>) -> Result<KeySource, String> {
    let bootstrap = bootstrap_keys(env)?;
    let Some(url) = env("TW_JWKS_URL") else {
        return Ok(bootstrap.into());
    };
    let remote = RemoteKeySet::builder()
        .jwks_url(url)
        .bootstrap(bootstrap)
        .allow_http_loopback(env("TW_ALLOW_HTTP_LOOPBACK").as_deref() == Some("1"))
        .build()
        .map_err(|e| format!("TW_JWKS_URL: {e}"))?;
    Ok(remote.into())
}

/// The validator's settings from the environment (add a clock in tests).
pub fn validator_builder(env: &dyn Fn(&str) -> Option<String>) -> Result<ValidatorBuilder, String> {
    Ok(Validator::builder()
        .issuer(env("TW_ISSUER").unwrap_or_else(|| EXAMPLE_ISSUER.into()))
        .audience(env("TW_AUDIENCE").unwrap_or_else(|| EXAMPLE_AUDIENCE.into()))
        .keys(keys(env)?))
}

/// The function's own work: it runs only for requests the layer let
/// through, with the verified claims attached.
pub async fn handler(req: Request) -> Result<Response<Body>, Error> {
    let sub = req
        .extensions()
        .get::<Arc<Validated<Map<String, Value>>>>()
        .and_then(|v| v.claims.get("sub")?.as_str().map(str::to_owned))
        .unwrap_or_default();
    Ok(Response::builder()
        .header("content-type", "text/plain")
        .body(Body::from(format!("hello {sub}\n")))?)
}

/// The tower service `lambda_http::run` drives: the layer in front of the
/// handler.
pub fn app(
    validator: Validator,
) -> impl Service<Request, Response = Response<ResponseBody<Body>>, Error = Error, Future: Send>
+ Clone
+ Send
+ 'static {
    ServiceBuilder::new()
        .layer(BearerAuth::new(validator).realm("lambda").layer())
        .service(service_fn(handler))
}
