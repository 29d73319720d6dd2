//! Fixtures for the authenticator chain: API keys in a store, requests as
//! header lists, one poll of a future.
use std::future::Future;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use tokenwarden::ManualClock;
use tokenwarden::authn::api_key::{ApiKeyAuthenticator, MemoryStore, NewApiKey};

use super::NOW;

/// A new key named `name` granting `scopes`, stored in `store`; its key.
pub fn add_key(store: &MemoryStore, name: &str, scopes: &[&str]) -> NewApiKey {
    let mut new = NewApiKey::generate("live", name).unwrap();
    new.record.scopes = scopes.iter().map(|s| s.to_string()).collect();
    new.record.expires_at = Some(NOW + 3600);
    store.insert(new.record.clone());
    new
}

/// An API key authenticator over `store`, reading `Authorization: ApiKey`
/// and `X-Api-Key`, on `clock`.
pub fn api_keys(store: &Arc<MemoryStore>, clock: &ManualClock) -> ApiKeyAuthenticator {
    ApiKeyAuthenticator::memory(store.clone())
        .header("X-Api-Key")
        .unwrap()
        .clock(clock.clone())
}

/// `Authorization: ApiKey <key>`.
pub fn api_key_header(key: &NewApiKey) -> Vec<(String, String)> {
    vec![(
        "authorization".into(),
        format!("ApiKey {}", key.expose_key()),
    )]
}

/// `Authorization: Bearer <token>`.
pub fn bearer(token: &str) -> Vec<(String, String)> {
    vec![("authorization".into(), format!("Bearer {token}"))]
}

/// Polls `f` once; `Some` if it completed.
pub fn poll_once<F: Future>(f: F) -> Option<F::Output> {
    let mut f = std::pin::pin!(f);
    match f.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(v) => Some(v),
        Poll::Pending => None,
    }
}
