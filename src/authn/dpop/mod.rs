//! [`DpopAuthenticator`]: sender-constrained access tokens with DPoP proofs
//! (RFC 9449): `Authorization: DPoP <token>` and one `DPoP` header holding a
//! proof, a JWT the client signs with the key the token is bound to.
//!
//! A stolen DPoP-bound token is useless without the client's private key:
//! every request needs a fresh proof over its method and URI, whose key
//! must be the one the token names (`cnf.jkt`, RFC 7638 thumbprint). Each
//! proof is accepted once ([`ReplayStore`]); with
//! [`DpopConfig::nonces`], only proofs made after the server handed out a
//! recent nonce are accepted (RFC 9449 §8).
//!
//! # Which URI a proof must name
//! The proof's `htu` is compared with **the server's external origin, as
//! configured** ([`DpopConfig::new`]), joined to the request's path: never
//! with the `Host` header, which the client writes. A proof made for
//! `https://other.example.com/orders` is refused here even if the request
//! says `Host: other.example.com`. Behind several host names, and only when
//! a proxy you run sets `Host` itself, [`DpopConfig::trust_host_header`]
//! takes the origin from it instead.
//!
//! The request's path is **the one the client sent** (RFC 9449 §4.3 check
//! 9): the tower/axum layer reads axum's `OriginalUri` when a router put it
//! there, so a layer inside `Router::nest("/shop", …)` compares with
//! `/shop/orders`, not the `/orders` the nested router sees; actix-web's
//! `ServiceRequest::path` is already the full path under `scope`. With
//! another framework that rewrites the path before the layer, put the
//! layer before the rewrite, or name the stripped prefix in the origin
//! (`DpopConfig::new("https://api.example.com/shop")`). A path with a dot
//! segment (`/a/../b`, `/a/%2e%2e/b`, `/./b`) takes no proof at all
//! (`invalid_dpop_proof`, kind `dpop_htu_mismatch`): which resource it
//! reaches depends on the router's normalising (RFC 3986 §6.2.2.3), which
//! the comparison will not guess at.
//!
//! DPoP lives in the authenticator chain: serve it with
//! [`BearerAuth::from_chain`](crate::middleware::BearerAuth::from_chain)
//! (tower, axum, actix), whose layers pass the method and path and send
//! `DPoP-Nonce` with a `use_dpop_nonce` refusal. `BearerAuth::new` and
//! `BearerAuth::with_claims` (a validator alone) know only `Bearer`: they
//! refuse a DPoP-bound token sent so, whatever the claims type (the
//! validator reads `cnf` itself, [`Validated::confirmation`]), as the
//! sidecar does. Where tokens may be DPoP-bound, use a chain.
//!
//! ```
//! use tokenwarden::authn::dpop::{DpopAuthenticator, DpopConfig};
//! use tokenwarden::authn::{Chain, RequestView, jwt::JwtAuthenticator};
//! use tokenwarden::{Algorithm, KeySet, Validator};
//! use std::time::Duration;
//!
//! let validator = Validator::builder()
//!     .issuer("https://idp.example.com")
//!     .audience("https://api.example.com")
//!     .keys(KeySet::from_hmac_secret(Some("k"), Algorithm::HS256, &[7; 32])?)
//!     .build()?;
//! let dpop = DpopAuthenticator::new(
//!     validator.clone(),
//!     DpopConfig::new("https://api.example.com")
//!         .algorithms([Algorithm::ES256, Algorithm::EdDSA])
//!         .max_age(Duration::from_secs(60)),
//! )?;
//! // Bearer tokens too (a DPoP-bound one sent as Bearer is refused).
//! let chain = Chain::new().jwt(JwtAuthenticator::new(validator)).dpop(dpop);
//!
//! let headers = [("accept", "application/json")];
//! let request = RequestView::new("GET", "/orders", &headers);
//! # tokio::runtime::Builder::new_current_thread().build()?.block_on(async {
//! let refusal = chain.authenticate(&request).await.unwrap_err();
//! assert_eq!(
//!     refusal.challenges("api"),
//!     ["Bearer realm=\"api\"", "DPoP realm=\"api\", algs=\"ES256 EdDSA\""]
//! );
//! # });
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod htu;
pub(crate) mod ledger;
mod nonce;
mod proof;

use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Map, Value};

use super::request::{authorization, authorization_names};
use super::{Authenticator, BoxFuture, Principal, Refusal, RequestView, Scheme, Verdict};
use crate::alg::{AlgSet, Algorithm, Family};
use crate::clock::{Clock, SystemClock};
use crate::error::{BuildError, Error};
use crate::state::replay::{MemoryReplayStore, ReplayError, ReplayKey, ReplayStore};
use crate::validator::{Validated, Validator};

use htu::Origin;
use nonce::Nonces;
use proof::{Expect, Proof};

/// How old a proof's `iat` may be by default.
pub const DEFAULT_MAX_AGE: Duration = Duration::from_secs(60);

/// How far a proof's `iat` may be in the future by default (clock skew),
/// and how much older than [`DEFAULT_MAX_AGE`] it may be.
pub const DEFAULT_LEEWAY: Duration = Duration::from_secs(5);

/// The proof algorithms accepted unless configured: every asymmetric one
/// the crate verifies.
pub const DEFAULT_ALGORITHMS: [Algorithm; 10] = [
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::ES512,
    Algorithm::EdDSA,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
];

/// The RFC 7638 SHA-256 thumbprint of a public JWK (EC, OKP or RSA),
/// base64url: what a DPoP-bound token carries as `cnf.jkt`. `None` when a
/// required member is missing or the key type has none.
///
/// ```
/// use serde_json::json;
/// use tokenwarden::authn::dpop::jwk_thumbprint;
///
/// // RFC 7638 §3.1's example.
/// let jwk = json!({"kty": "RSA", "e": "AQAB", "alg": "RS256", "kid": "2011-04-29",
///     "n": "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw"});
/// assert_eq!(jwk_thumbprint(&jwk).as_deref(), Some("NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"));
/// ```
pub fn jwk_thumbprint(jwk: &Value) -> Option<String> {
    let input = crate::keys::thumbprint_input(jwk)?;
    Some(URL_SAFE_NO_PAD.encode(crate::crypto::sha256_of(input.as_bytes())))
}

/// Where the replay cache lives: in memory (answers at once), or yours.
#[derive(Clone)]
enum Store {
    Memory(Arc<MemoryReplayStore>),
    Custom(Arc<dyn ReplayStore>),
}

/// How DPoP proofs are judged: the external origin, the accepted
/// algorithms, the `iat` window, the clock, the replay store and optional
/// server nonces. Checked when the [`DpopAuthenticator`] is built.
///
/// ```
/// use std::time::Duration;
/// use tokenwarden::authn::dpop::DpopConfig;
/// use tokenwarden::state::replay::MemoryReplayStore;
/// use tokenwarden::ManualClock;
///
/// let config = DpopConfig::new("https://api.example.com")
///     .max_age(Duration::from_secs(30))
///     .leeway(Duration::from_secs(2))
///     .clock(ManualClock::new(1_700_000_000))
///     .replay_store(MemoryReplayStore::new(100_000))
///     .nonces(vec![42; 32], Duration::from_secs(300));
/// # let _ = config;
/// ```
#[derive(Clone)]
#[must_use]
pub struct DpopConfig {
    origin: String,
    trust_host: Option<&'static str>,
    algs: Vec<Algorithm>,
    max_age: Duration,
    leeway: Duration,
    clock: Arc<dyn Clock>,
    store: Option<Store>,
    nonces: Option<(Vec<u8>, Duration)>,
}

impl std::fmt::Debug for DpopConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DpopConfig")
            .field("origin", &self.origin)
            .field("trust_host", &self.trust_host)
            .field("algs", &self.algs)
            .field("max_age", &self.max_age)
            .field("leeway", &self.leeway)
            .field("nonces", &self.nonces.is_some())
            .finish_non_exhaustive()
    }
}

impl DpopConfig {
    /// Proofs for requests to the server at `origin`, its external
    /// `https://host[:port]` as clients see it, optionally with a path
    /// prefix the service is mounted under (`https://gw.example.com/api`).
    /// Every proof's `htu` must be this origin joined to the request path.
    pub fn new(origin: impl Into<String>) -> DpopConfig {
        DpopConfig {
            origin: origin.into(),
            trust_host: None,
            algs: DEFAULT_ALGORITHMS.to_vec(),
            max_age: DEFAULT_MAX_AGE,
            leeway: DEFAULT_LEEWAY,
            clock: Arc::new(SystemClock),
            store: None,
            nonces: None,
        }
    }

    /// Takes the origin from each request's `Host` header, with `scheme`
    /// (`"https"`), instead of the configured one. **Only** behind a proxy
    /// that sets `Host` itself to one of your names: otherwise a client
    /// picks the origin its proofs are checked against, and a proof made
    /// for another service (which that client may have captured) would
    /// match here.
    pub fn trust_host_header(mut self, scheme: &'static str) -> DpopConfig {
        self.trust_host = Some(scheme);
        self
    }

    /// The proof algorithms accepted ([`DEFAULT_ALGORITHMS`] unless set),
    /// named in the `DPoP` challenge in this order. HMAC algorithms are
    /// refused when the authenticator is built: a proof's key is public.
    pub fn algorithms(mut self, algs: impl IntoIterator<Item = Algorithm>) -> DpopConfig {
        self.algs = algs.into_iter().collect();
        self
    }

    /// How old a proof's `iat` may be ([`DEFAULT_MAX_AGE`] unless set).
    pub fn max_age(mut self, max_age: Duration) -> DpopConfig {
        self.max_age = max_age;
        self
    }

    /// Clock skew allowed on `iat` both ways ([`DEFAULT_LEEWAY`] unless set).
    pub fn leeway(mut self, leeway: Duration) -> DpopConfig {
        self.leeway = leeway;
        self
    }

    /// The clock `iat` and nonces are judged by (the system's unless set).
    pub fn clock(mut self, clock: impl Clock) -> DpopConfig {
        self.clock = Arc::new(clock);
        self
    }

    /// The bounded in-memory replay cache to use (a
    /// [`MemoryReplayStore::default`] unless set): one per authenticator.
    pub fn replay_store(mut self, store: MemoryReplayStore) -> DpopConfig {
        self.store = Some(Store::Memory(Arc::new(store)));
        self
    }

    /// Your own replay store (one shared by every instance, such as
    /// Redis). It is awaited on every DPoP request; its errors refuse the
    /// request (503), never let it through.
    ///
    /// Layers nested around one route whose DPoP authenticators record
    /// proofs in one store must be given the same `Arc` (or clones of one
    /// authenticator): the inner layer then knows the proof it finds is
    /// the one its outer layer recorded for this request. Two stores over
    /// one Redis look like two stores, and the inner layer answers
    /// `dpop_replayed`. Authenticators sharing a store should share
    /// [`max_age`](Self::max_age) and [`leeway`](Self::leeway): an entry
    /// lives as long as the window of the one that recorded it.
    pub fn shared_replay_store(mut self, store: Arc<dyn ReplayStore>) -> DpopConfig {
        self.store = Some(Store::Custom(store));
        self
    }

    /// Requires server nonces (RFC 9449 §8): a proof must carry the nonce
    /// of the current `period` or the one before. A nonce is the
    /// HMAC-SHA-256 of the period's number under `secret` (at least 32
    /// bytes; give every instance the same one): nothing is stored. A
    /// proof without it, or with a stale one, is refused with
    /// `use_dpop_nonce` and the current nonce in a `DPoP-Nonce` header.
    pub fn nonces(mut self, secret: impl Into<Vec<u8>>, period: Duration) -> DpopConfig {
        self.nonces = Some((secret.into(), period));
        self
    }
}

/// DPoP-bound access tokens judged by a [`Validator`] and proven by a DPoP
/// proof (RFC 9449 §7.1): the [`Principal`] is the token's, as
/// [`JwtAuthenticator`](super::jwt::JwtAuthenticator) makes it (its
/// [`confirmation`](Principal::confirmation) holds `cnf.jkt`), vouched
/// for by `"dpop"`.
///
/// It steps aside for any scheme but `DPoP`: add a
/// [`JwtAuthenticator`](super::jwt::JwtAuthenticator) to the same chain to
/// accept bearer tokens too; it refuses a DPoP-bound token sent as
/// `Bearer`. See the [module docs](self) for an example.
#[derive(Clone)]
pub struct DpopAuthenticator {
    inner: Arc<Inner>,
}

#[derive(Clone)]
struct Inner {
    validator: Validator,
    roles: Option<Arc<str>>,
    origin: Option<Origin>,
    trust_host: Option<&'static str>,
    algs: AlgSet,
    /// The `algs` challenge parameter: the names, space-separated.
    algs_param: Arc<str>,
    max_age: i64,
    leeway: i64,
    clock: Arc<dyn Clock>,
    store: Store,
    nonces: Option<Nonces>,
}

impl std::fmt::Debug for DpopAuthenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DpopAuthenticator")
            .field("origin", &self.inner.origin)
            .field("algs", &self.inner.algs_param)
            .field("max_age", &self.inner.max_age)
            .field("nonces", &self.inner.nonces.is_some())
            .finish_non_exhaustive()
    }
}

fn seconds(d: Duration) -> i64 {
    i64::try_from(d.as_secs()).unwrap_or(i64::MAX)
}

impl DpopAuthenticator {
    /// DPoP requests judged by `validator` (the access token) and `config`
    /// (the proof).
    ///
    /// # Errors
    /// An origin that is not `http(s)://host[:port][/prefix]`, an empty
    /// algorithm list or one with an HMAC algorithm, a nonce secret shorter
    /// than 32 bytes or a zero nonce period.
    pub fn new(validator: Validator, config: DpopConfig) -> Result<DpopAuthenticator, BuildError> {
        let origin = match config.trust_host {
            Some(scheme) if scheme == "http" || scheme == "https" => None,
            Some(_) => {
                return Err(BuildError::new(
                    "the DPoP Host header scheme must be http or https",
                ));
            }
            None => Some(
                Origin::parse(&config.origin)
                    .map_err(|e| BuildError::new(format!("the DPoP origin is not usable: {e}")))?,
            ),
        };
        if config.algs.is_empty() {
            return Err(BuildError::new("no DPoP proof algorithm is accepted"));
        }
        if let Some(a) = config.algs.iter().find(|a| a.family() == Family::Hmac) {
            // RFC 9449 §4.3 check 5: a proof's key is public; a MAC under it
            // proves nothing.
            return Err(BuildError::new(format!(
                "{a} cannot sign DPoP proofs: only asymmetric algorithms"
            )));
        }
        let mut names: Vec<&str> = Vec::new();
        for a in &config.algs {
            if !names.contains(&a.as_str()) {
                names.push(a.as_str());
            }
        }
        let nonces = match config.nonces {
            Some((secret, period)) => Some(Nonces::new(secret, period).map_err(BuildError::new)?),
            None => None,
        };
        let store = config
            .store
            .unwrap_or_else(|| Store::Memory(Arc::new(MemoryReplayStore::default())));
        Ok(DpopAuthenticator {
            inner: Arc::new(Inner {
                validator,
                roles: None,
                origin,
                trust_host: config.trust_host,
                algs: config.algs.iter().copied().collect(),
                algs_param: names.join(" ").into(),
                max_age: seconds(config.max_age),
                leeway: seconds(config.leeway),
                clock: config.clock,
                store,
                nonces,
            }),
        })
    }

    /// Reads roles from the claim at the dotted `path`, as
    /// [`JwtAuthenticator::roles_from`](super::jwt::JwtAuthenticator::roles_from).
    #[must_use]
    pub fn roles_from(mut self, path: &str) -> Self {
        Arc::make_mut(&mut self.inner).roles = Some(path.into());
        self
    }

    /// The nonce to hand out now, when nonces are required: a server may
    /// send it in a `DPoP-Nonce` header on any response (RFC 9449 §8.2) so
    /// clients need not fail once to learn it.
    pub fn current_nonce(&self) -> Option<String> {
        let now = self.inner.clock.now();
        self.inner.nonces.as_ref().and_then(|n| n.current(now))
    }

    /// The `algs` of this authenticator's `DPoP` challenge.
    pub(crate) fn algs_param(&self) -> Arc<str> {
        self.inner.algs_param.clone()
    }

    /// A refusal with this authenticator's `DPoP` challenge parameters.
    fn refused(&self, r: Refusal) -> Verdict {
        Verdict::Refused(r.with_dpop_algs(self.algs_param()))
    }

    /// The proof checks that need neither the token's validity nor state:
    /// the token and the checked proof, or the verdict.
    fn proof_stage<'r>(&self, req: &RequestView<'r>) -> Result<(&'r str, Proof, i64), Verdict> {
        let token = match authorization(req, Scheme::DPoP) {
            Ok(Some(t)) => t,
            Ok(None) => return Err(Verdict::NotMine),
            Err(r) => return Err(self.refused(r)),
        };
        // RFC 9449 §4.3 check 1: exactly one DPoP header.
        let proof = match req.headers().first_value("dpop") {
            None => {
                return Err(self.refused(Refusal::invalid_dpop_proof(
                    "dpop_proof_missing",
                    "a DPoP proof is required",
                )));
            }
            Some((_, true)) => {
                return Err(self.refused(Refusal::invalid_dpop_proof(
                    "dpop_proof_multiple",
                    "more than one DPoP proof",
                )));
            }
            Some((value, false)) => match super::visible_ascii(value) {
                Some(v) => v.trim_matches([' ', '\t']),
                None => {
                    return Err(self.refused(Refusal::invalid_dpop_proof(
                        "dpop_proof_malformed",
                        "the DPoP proof is not a valid JWT",
                    )));
                }
            },
        };
        let htu = self.expected_htu(req).map_err(|r| self.refused(r))?;
        let now = self.inner.clock.now();
        let expect = Expect {
            htm: req.method(),
            htu: &htu,
            token,
            now,
            max_age: self.inner.max_age,
            leeway: self.inner.leeway,
            algs: self.inner.algs,
        };
        let proof = proof::check(proof, &expect).map_err(|r| self.refused(r))?;
        Ok((token, proof, now))
    }

    /// The URI the proof must name: the configured origin (or, only when
    /// configured so, the `Host` header's) and the request's path.
    fn expected_htu(&self, req: &RequestView<'_>) -> Result<String, Refusal> {
        let bad_path = || {
            Refusal::invalid_dpop_proof(
                "dpop_htu_mismatch",
                "the DPoP proof's htu does not match the request",
            )
        };
        if let Some(origin) = &self.inner.origin {
            return origin.expected(req.path()).map_err(|_| bad_path());
        }
        let scheme = self.inner.trust_host.unwrap_or("https");
        let host = req
            .single_header("host", Scheme::DPoP)?
            .filter(|h| !h.contains(['/', '?', '#', '@']))
            .ok_or_else(|| Refusal::invalid_request(Scheme::DPoP, "no usable Host header"))?;
        let origin = Origin::parse(&format!("{scheme}://{host}"))
            .map_err(|_| Refusal::invalid_request(Scheme::DPoP, "no usable Host header"))?;
        origin.expected(req.path()).map_err(|_| bad_path())
    }

    /// The token's binding to the proof's key (RFC 9449 §7.1: `cnf.jkt`
    /// equals the proof key's thumbprint, compared in constant time), its
    /// certificate binding if it has one (RFC 8705 §3) and the nonce (§8):
    /// the principal, or the refusal.
    fn bind(
        &self,
        v: Arc<Validated<Map<String, Value>>>,
        proof: &Proof,
        req: &RequestView<'_>,
        now: i64,
    ) -> Result<Principal, Verdict> {
        let jkt = v
            .claims
            .get("cnf")
            .and_then(|c| c.get("jkt"))
            .and_then(Value::as_str);
        let Some(jkt) = jkt else {
            return Err(self.refused(Refusal::invalid_token(
                Scheme::DPoP,
                "dpop_token_unbound",
                "the access token is not DPoP-bound",
            )));
        };
        if !crate::crypto::digests_equal(jkt.as_bytes(), proof.jkt.as_bytes()) {
            return Err(self.refused(Refusal::invalid_token(
                Scheme::DPoP,
                "dpop_jkt_mismatch",
                "invalid DPoP key binding",
            )));
        }
        // A token bound to a certificate too (`x5t#S256` beside `jkt`) is
        // held to the connection's (RFC 8705 §3; RFC 9449 does not replace
        // it): a stolen token with a stolen DPoP key but without the
        // certificate's private key is refused.
        if let Err(r) = crate::authn::mtls::check_confirmation(
            &v.confirmation,
            req.peer_certificate_der(),
            crate::authn::mtls::CertificateBinding::WhenBound,
        ) {
            return Err(self.refused(r.in_scheme(Scheme::DPoP)));
        }
        if let Some(nonces) = &self.inner.nonces {
            let fresh = proof
                .nonce
                .as_deref()
                .is_some_and(|n| nonces.accepts(n, now));
            if !fresh {
                return Err(match nonces.current(now) {
                    Some(n) => self.refused(Refusal::use_dpop_nonce(n)),
                    None => Verdict::Refused(Refusal::unavailable(
                        Scheme::DPoP,
                        "dpop_nonce_unavailable",
                        super::DEFAULT_RETRY_AFTER,
                    )),
                });
            }
        }
        Ok(Principal::jwt_by(v, self.inner.roles.clone(), "dpop"))
    }

    /// The replay entry of a proof: its key's thumbprint and `jti`, kept
    /// until the proof's `iat` leaves the window (RFC 9449 §11.1).
    fn replay_entry(&self, proof: &Proof) -> (ReplayKey, i64) {
        let key = ReplayKey::new(&[proof.jkt.as_bytes(), proof.jti.as_bytes()]);
        let expires = proof
            .iat
            .saturating_add(self.inner.max_age)
            .saturating_add(self.inner.leeway);
        (key, expires)
    }

    /// This authenticator's replay store, for the ledger: one store shared
    /// by clones of an authenticator or one `Arc` given to several.
    fn store_ref(&self) -> ledger::StoreRef {
        match &self.inner.store {
            Store::Memory(s) => ledger::StoreRef::memory(s),
            Store::Custom(s) => ledger::StoreRef::custom(s),
        }
    }

    /// Whether a layer outside this one recorded this very proof in this
    /// very store for this request ([`ledger`]): the proof's every other
    /// check has passed here; only the insert would call it a replay.
    fn recorded_outside(&self, req: &RequestView<'_>, key: &ReplayKey) -> bool {
        req.proof_ledger()
            .is_some_and(|l| l.holds(&self.store_ref(), key))
    }

    /// The store's answer as a verdict; an error refuses (fail closed). A
    /// new proof is noted in the request's ledger for inner layers.
    fn replay_verdict(
        &self,
        req: &RequestView<'_>,
        key: ReplayKey,
        answer: Result<bool, ReplayError>,
        p: Principal,
    ) -> Verdict {
        match answer {
            Ok(true) => {
                if let Some(ledger) = req.proof_ledger() {
                    ledger.record(self.store_ref(), key);
                }
                Verdict::Authenticated(p)
            }
            Ok(false) => self.refused(Refusal::invalid_dpop_proof(
                "dpop_replayed",
                "the DPoP proof was already used",
            )),
            Err(_) => Verdict::Refused(Refusal::unavailable(
                Scheme::DPoP,
                "replay_store_unavailable",
                super::DEFAULT_RETRY_AFTER,
            )),
        }
    }

    /// The verdict without waiting; `None` for an unknown `kid` (the key
    /// source refreshes) or a replay store that must be awaited.
    pub(crate) fn verdict_now(&self, req: &RequestView<'_>) -> Option<Verdict> {
        let Store::Memory(store) = &self.inner.store else {
            return None;
        };
        let (token, proof, now) = match self.proof_stage(req) {
            Ok(x) => x,
            Err(v) => return Some(v),
        };
        let v = match self
            .inner
            .validator
            .validate_shared::<Map<String, Value>>(token)
        {
            Ok(v) => v,
            Err(Error::UnknownKey { kid: Some(_) }) => return None,
            Err(e) => return Some(self.refused(Refusal::from_error(Scheme::DPoP, &e))),
        };
        let p = match self.bind(v, &proof, req, now) {
            Ok(p) => p,
            Err(v) => return Some(v),
        };
        let (key, expires) = self.replay_entry(&proof);
        if self.recorded_outside(req, &key) {
            return Some(Verdict::Authenticated(p));
        }
        Some(self.replay_verdict(req, key, store.insert(&key, expires, now), p))
    }

    /// The verdict, waiting for the key source or the replay store when
    /// they must.
    pub(crate) async fn verdict(&self, req: &RequestView<'_>) -> Verdict {
        if let Store::Memory(_) = &self.inner.store {
            if let Some(v) = self.verdict_now(req) {
                return v;
            }
        }
        let (token, proof, now) = match self.proof_stage(req) {
            Ok(x) => x,
            Err(v) => return v,
        };
        let v = match self
            .inner
            .validator
            .validate_shared::<Map<String, Value>>(token)
        {
            Ok(v) => v,
            Err(Error::UnknownKey { kid: Some(_) }) => {
                match self.inner.validator.validate_async(token).await {
                    Ok(v) => Arc::new(v),
                    Err(e) => return self.refused(Refusal::from_error(Scheme::DPoP, &e)),
                }
            }
            Err(e) => return self.refused(Refusal::from_error(Scheme::DPoP, &e)),
        };
        let p = match self.bind(v, &proof, req, now) {
            Ok(p) => p,
            Err(v) => return v,
        };
        let (key, expires) = self.replay_entry(&proof);
        if self.recorded_outside(req, &key) {
            return Verdict::Authenticated(p);
        }
        let answer = match &self.inner.store {
            Store::Memory(store) => store.insert(&key, expires, now),
            Store::Custom(store) => store.insert_once(&key, expires, now).await,
        };
        self.replay_verdict(req, key, answer, p)
    }
}

impl Authenticator for DpopAuthenticator {
    fn name(&self) -> &'static str {
        "dpop"
    }

    fn scheme(&self) -> Scheme {
        Scheme::DPoP
    }

    fn recognises(&self, req: &RequestView<'_>) -> bool {
        authorization_names(req, Scheme::DPoP)
    }

    fn authenticate<'a>(&'a self, req: &'a RequestView<'a>) -> BoxFuture<'a, Verdict> {
        Box::pin(self.verdict(req))
    }
}
