//! [`DpopProof`]: DPoP proofs (RFC 9449 §4.2) for your own tests.

use serde_json::{Map, Value, json};

use super::{TestKey, b64};
use crate::clock::{Clock, SystemClock};

/// A DPoP proof being built: header `{"typ": "dpop+jwt", "alg", "jwk"}`
/// (the key's public JWK), claims `htm`, `htu`, `iat` (now, by the system
/// clock, unless set) and a random `jti`; `ath` from
/// [`access_token`](Self::access_token), `nonce` when given. Every part can
/// be changed or removed, to test refusals.
///
/// ```
/// use tokenwarden::Algorithm;
/// use tokenwarden::testing::{DpopProof, TestKey};
///
/// let key = TestKey::generate(Algorithm::ES256, "client")?;
/// let proof = DpopProof::new(&key, "GET", "https://api.example.com/orders")
///     .access_token("eyJ...the token")
///     .iat(1_700_000_000)
///     .sign();
/// assert_eq!(proof.split('.').count(), 3);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
#[must_use = "call .sign() to get the proof"]
pub struct DpopProof<'k> {
    key: &'k TestKey,
    header: Map<String, Value>,
    claims: Map<String, Value>,
}

impl<'k> DpopProof<'k> {
    /// A proof by `key` for a `htm` request to `htu`.
    pub fn new(key: &'k TestKey, htm: &str, htu: &str) -> Self {
        let mut header = Map::new();
        header.insert("typ".into(), json!("dpop+jwt"));
        header.insert("alg".into(), json!(key.alg().as_str()));
        header.insert("jwk".into(), key.public_jwk());
        let mut jti = [0u8; 16];
        // A failed random source leaves zeros: still a jti, just not unique.
        let _ = crate::crypto::random_bytes(&mut jti);
        let mut claims = Map::new();
        claims.insert("htm".into(), json!(htm));
        claims.insert("htu".into(), json!(htu));
        claims.insert("iat".into(), json!(SystemClock.now()));
        claims.insert("jti".into(), json!(b64(&jti)));
        DpopProof {
            key,
            header,
            claims,
        }
    }

    /// Sets `iat` (Unix seconds).
    pub fn iat(self, iat: i64) -> Self {
        self.claim("iat", iat)
    }

    /// Sets `jti`.
    pub fn jti(self, jti: &str) -> Self {
        self.claim("jti", jti)
    }

    /// Sets `ath` to the hash of `token` (base64url SHA-256), as a proof
    /// sent with that access token must.
    pub fn access_token(self, token: &str) -> Self {
        let ath = b64(&crate::crypto::sha256_of(token.as_bytes()));
        self.claim("ath", ath)
    }

    /// Sets `nonce`, the server's `DPoP-Nonce` (RFC 9449 §8).
    pub fn nonce(self, nonce: &str) -> Self {
        self.claim("nonce", nonce)
    }

    /// Sets (or replaces) a header member: `typ`, `alg`, `jwk`, ….
    pub fn header(mut self, name: &str, value: impl Into<Value>) -> Self {
        self.header.insert(name.to_owned(), value.into());
        self
    }

    /// Sets (or replaces) a claim.
    pub fn claim(mut self, name: &str, value: impl Into<Value>) -> Self {
        self.claims.insert(name.to_owned(), value.into());
        self
    }

    /// Removes a claim, e.g. `jti`.
    pub fn without(mut self, name: &str) -> Self {
        self.claims.remove(name);
        self
    }

    /// The compact JWS, signed by the key.
    pub fn sign(&self) -> String {
        self.key.sign_raw(
            &Value::Object(self.header.clone()).to_string(),
            &Value::Object(self.claims.clone()).to_string(),
        )
    }
}
