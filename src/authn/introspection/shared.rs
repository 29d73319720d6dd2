//! The shared second tier of the verdict cache (feature `redis`): on a
//! local miss, Redis is read before the endpoint is called; an endpoint's
//! verdict is written there for the other instances.
//!
//! What is shared is the answer, not the verdict: an active answer's JSON
//! (the principal's claims, which are the whole answer) or, for a refusal,
//! `{"active":false}`, after the clock time it may be used until. A value
//! read back is bounded in size, parsed as strictly as an answer from the
//! endpoint and judged again by this authenticator's rules at this
//! request's time (`active`, `exp`, `nbf`, `iat`, `iss`, `aud`,
//! `token_type`); the `cnf` binding is then held to the request like any
//! other verdict. It is never used past the time it was written with (the
//! earlier of the token's `exp` and the writer's TTL), nor kept locally
//! beyond it. Keys are SHA-256 digests of the token ([`RedisCache`]).
//!
//! Entries live under the namespace given and a fingerprint of what
//! decides a verdict (endpoint, client id, issuer, audiences, token types,
//! time rules, subject fallback): authenticators that would judge one
//! answer differently never share an entry, so a refusal for one's
//! audience is never another's (a refusal is shared without its answer).
//!
//! Redis unreachable, slow, or holding a value too large or unreadable: a
//! miss, counted (`tokenwarden_redis_errors_total`), and the endpoint
//! decides. A lookup has a budget of its own (the connection's command
//! timeout, at most `SHARED_LOOKUP_BUDGET`) before the endpoint's timeout
//! starts, and nothing Redis does counts towards the circuit breaker. A
//! request is never refused because of Redis.
//!
//! Whoever can write to this Redis can make any token active: protect it
//! as the introspection endpoint's client credentials are protected (ACL,
//! network), and give each authenticator configuration its own namespace.

#[cfg(feature = "redis")]
pub(super) use with_redis::SharedTier;
#[cfg(not(feature = "redis"))]
pub(super) use without_redis::SharedTier;

#[cfg(not(feature = "redis"))]
mod without_redis {
    use super::super::{IntrospectionAuthenticator, Outcome};

    /// No shared tier without the feature.
    #[derive(Default)]
    pub(in crate::authn::introspection) struct SharedTier {
        _none: (),
    }

    impl SharedTier {
        pub(in crate::authn::introspection) async fn lookup(
            &self,
            _: &IntrospectionAuthenticator,
            _: &str,
            _: &[u8; 32],
            _: i64,
        ) -> Option<Outcome> {
            None
        }

        pub(in crate::authn::introspection) fn store(
            &self,
            _: &IntrospectionAuthenticator,
            _: &str,
            _: &Outcome,
            _: i64,
        ) {
        }

        /// Never, without the feature.
        pub(in crate::authn::introspection) fn is_set(&self) -> bool {
            false
        }

        /// No lookup, no time.
        pub(in crate::authn::introspection) fn budget(&self) -> std::time::Duration {
            std::time::Duration::ZERO
        }

        /// Nothing to scope.
        pub(in crate::authn::introspection) fn scoped(
            self,
            _: &str,
            _: &str,
            _: &super::super::rules::Rules,
            _: (i64, i64),
        ) -> Self {
            self
        }
    }
}

#[cfg(feature = "redis")]
mod with_redis {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::time::Duration;

    use super::super::cache::Kept;
    use super::super::cache::weigh;
    use super::super::rules::{Judged, Rules};
    use super::super::{IntrospectionAuthenticator, IntrospectionAuthenticatorBuilder, Outcome};
    use crate::state::redis::{Fetched, RedisCache};

    use super::super::SHARED_LOOKUP_BUDGET;

    /// The largest value written to or read from Redis: an answer of the
    /// default body limit plus the header line.
    const MAX_VALUE: usize = crate::state::redis::MAX_CACHE_VALUE;
    /// What a refusal is shared as: judged again, it is `inactive`.
    const REFUSED: &[u8] = br#"{"active":false}"#;

    /// The optional Redis tier and its counters.
    #[derive(Default)]
    pub(in crate::authn::introspection) struct SharedTier {
        /// As given to `shared_cache`, then (at build) scoped to the rules.
        cache: Option<Arc<RedisCache>>,
        counts: Arc<Counts>,
        /// How long one lookup may take.
        budget: Duration,
    }

    /// A digest of what decides a verdict from an answer: the endpoint and
    /// client asking (an IdP may answer each client differently), every
    /// rule the answer is judged by, and how long a verdict may be kept
    /// (`ttls`: positive, negative; a reader asking the IdP every 5 s must
    /// not take a verdict a writer keeps a minute). 128 bits, hex.
    fn fingerprint(endpoint: &str, client_id: &str, rules: &Rules, ttls: (i64, i64)) -> String {
        let mut audiences: Vec<&str> = rules.audiences.iter().map(|a| &**a).collect();
        audiences.sort_unstable();
        audiences.dedup();
        // RFC 6749 §5.1: token types are case-insensitive.
        let mut types: Vec<String> = rules
            .token_types
            .iter()
            .map(|t| t.to_ascii_lowercase())
            .collect();
        types.sort_unstable();
        types.dedup();
        let t = &rules.time;
        let time = [
            t.leeway.to_be_bytes(),
            u64::from(t.require_exp).to_be_bytes(),
            t.max_age
                .map_or(u64::MAX, |a| a.min(u64::MAX - 1))
                .to_be_bytes(),
            ttls.0.to_be_bytes(),
            ttls.1.to_be_bytes(),
        ]
        .concat();
        let issuer = match &rules.issuer {
            // Tagged, so no issuer differs from an empty one.
            Some(iss) => [b"1".as_slice(), iss.as_bytes()].concat(),
            None => b"0".to_vec(),
        };
        let mut fields: Vec<&[u8]> = vec![
            endpoint.as_bytes(),
            client_id.as_bytes(),
            &issuer,
            &time,
            rules.name.as_bytes(),
            if rules.subject_fallback { b"1" } else { b"0" },
        ];
        let count_a = (audiences.len() as u64).to_be_bytes();
        fields.push(&count_a);
        fields.extend(audiences.iter().map(|a| a.as_bytes()));
        let count_t = (types.len() as u64).to_be_bytes();
        fields.push(&count_t);
        fields.extend(types.iter().map(String::as_bytes));
        // Each field length-prefixed: moving bytes between two fields
        // makes another digest.
        let lens: Vec<[u8; 8]> = fields
            .iter()
            .map(|f| (f.len() as u64).to_be_bytes())
            .collect();
        let mut parts: Vec<&[u8]> = vec![b"tokenwarden introspection rules v2"];
        for (len, field) in lens.iter().zip(&fields) {
            parts.push(len);
            parts.push(field);
        }
        let digest = crate::crypto::sha256_parts(&parts);
        digest[..16].iter().map(|b| format!("{b:02x}")).collect()
    }

    #[derive(Default)]
    struct Counts {
        hits: AtomicU64,
        misses: AtomicU64,
        unreadable: AtomicU64,
    }

    /// `<until>\n<answer>`.
    fn encode(until: i64, answer: &[u8]) -> Vec<u8> {
        let mut v = format!("{until}\n").into_bytes();
        v.extend_from_slice(answer);
        v
    }

    fn decode(value: &[u8]) -> Option<(i64, &[u8])> {
        if value.len() > MAX_VALUE {
            return None;
        }
        let nl = value.iter().position(|&b| b == b'\n')?;
        let until = std::str::from_utf8(&value[..nl]).ok()?.parse().ok()?;
        Some((until, &value[nl + 1..]))
    }

    impl SharedTier {
        /// Whether a Redis tier is configured.
        pub(in crate::authn::introspection) fn is_set(&self) -> bool {
            self.cache.is_some()
        }

        /// How long one lookup may take (zero without a tier).
        pub(in crate::authn::introspection) fn budget(&self) -> Duration {
            self.budget
        }

        /// The tier for an authenticator with these rules: its entries
        /// under the namespace given and the rules' fingerprint.
        pub(in crate::authn::introspection) fn scoped(
            self,
            endpoint: &str,
            client_id: &str,
            rules: &Rules,
            ttls: (i64, i64),
        ) -> Self {
            let Some(cache) = self.cache else {
                return self;
            };
            let budget = cache.timeout().min(SHARED_LOOKUP_BUDGET);
            let scoped = cache.scoped(&fingerprint(endpoint, client_id, rules, ttls));
            SharedTier {
                cache: Some(Arc::new(scoped)),
                counts: self.counts,
                budget,
            }
        }

        /// The namespace entries live under (with the fingerprint).
        pub(in crate::authn::introspection) fn namespace(&self) -> Option<&str> {
            self.cache.as_deref().map(RedisCache::namespace)
        }

        /// A shared verdict for `token`, judged now; `None`: ask the endpoint.
        pub(in crate::authn::introspection) async fn lookup(
            &self,
            auth: &IntrospectionAuthenticator,
            token: &str,
            key: &[u8; 32],
            now: i64,
        ) -> Option<Outcome> {
            let cache = self.cache.as_ref()?;
            // A budget of its own, spent before the endpoint's timeout
            // starts: a slow Redis delays a request by this at most, and
            // never costs the endpoint call its time (which would count
            // towards the breaker as the endpoint's failure).
            let fetched =
                match tokio::time::timeout(self.budget, cache.fetch(token.as_bytes())).await {
                    Ok(f) => f,
                    Err(_) => {
                        crate::metrics::redis_error("cache_get");
                        tracing::debug!("shared introspection tier over its budget: a miss");
                        Fetched::Miss
                    }
                };
            let value = match fetched {
                Fetched::Hit(value) => Some(value),
                Fetched::TooLarge => None,
                Fetched::Miss => {
                    self.counts.misses.fetch_add(1, Ordering::Relaxed);
                    return None;
                }
            };
            let i = &*auth.inner;
            let judged = match value.as_deref().and_then(decode) {
                Some((until, _)) if now >= until => None,
                Some((until, answer)) => i
                    .rules
                    .judge_json(answer, now)
                    .ok()
                    .map(|j| (j, until, answer.len())),
                None => None,
            };
            let Some((judged, until, mut size)) = judged else {
                self.counts.unreadable.fetch_add(1, Ordering::Relaxed);
                crate::metrics::redis_error("cache_value");
                tracing::debug!("shared introspection verdict unusable: a miss");
                return None;
            };
            self.counts.hits.fetch_add(1, Ordering::Relaxed);
            // Kept here no longer than the writer allowed, nor than this
            // authenticator's own TTLs.
            let (kept, outcome, own) = match judged {
                Judged::Active(p, exp) => {
                    // Weighed as an endpoint's answer is: the parsed claims
                    // can take several times their text.
                    size = size.max(weigh(&p));
                    let mut u = now.saturating_add(i.positive_ttl).min(until);
                    if let Some(exp) = exp {
                        u = u.min(exp);
                    }
                    (Kept::Active(p.clone()), Outcome::Active(p), u)
                }
                Judged::Refused(r) => (
                    Kept::Refused(r.clone()),
                    Outcome::Refused(r),
                    now.saturating_add(i.negative_ttl).min(until),
                ),
            };
            let ttl = Duration::from_secs(u64::try_from(own.saturating_sub(now)).unwrap_or(0));
            i.cache.keep(*key, kept, own, ttl, size);
            Some(outcome)
        }

        /// Shares an endpoint's verdict, in the background (the request
        /// does not wait on Redis).
        pub(in crate::authn::introspection) fn store(
            &self,
            auth: &IntrospectionAuthenticator,
            token: &str,
            outcome: &Outcome,
            now: i64,
        ) {
            let Some(cache) = &self.cache else { return };
            let i = &*auth.inner;
            let (until, answer) = match outcome {
                Outcome::Active(p) => {
                    let mut until = now.saturating_add(i.positive_ttl);
                    if let Some(exp) = p.expires_at() {
                        until = until.min(exp);
                    }
                    let Ok(answer) = serde_json::to_vec(p.claims()) else {
                        return;
                    };
                    (until, answer)
                }
                Outcome::Refused(_) => (now.saturating_add(i.negative_ttl), REFUSED.to_vec()),
                Outcome::Unavailable(..) => return,
            };
            let value = encode(until, &answer);
            let secs = u64::try_from(until.saturating_sub(now)).unwrap_or(0);
            if secs == 0 || value.len() > MAX_VALUE {
                return;
            }
            let Ok(rt) = tokio::runtime::Handle::try_current() else {
                return;
            };
            let cache = Arc::clone(cache);
            let token = token.to_owned();
            rt.spawn(async move {
                cache
                    .put(token.as_bytes(), &value, Duration::from_secs(secs))
                    .await;
            });
        }
    }

    impl IntrospectionAuthenticatorBuilder {
        /// A second cache tier shared by every instance (feature `redis`):
        /// on a local miss, `cache` (e.g. `redis.cache("introspection",
        /// 1)`) is read before the endpoint is called, and each new
        /// verdict is written to it. A shared answer is judged again on
        /// every use as one from the endpoint (time claims, `iss`, `aud`,
        /// `token_type`, `cnf`). Entries are kept apart by a fingerprint of
        /// the rules that decide them (endpoint, client id, issuer,
        /// audiences, token types, time rules), so authenticators with
        /// other rules in one namespace share nothing
        /// ([`shared_cache_namespace`](IntrospectionAuthenticator::shared_cache_namespace)).
        /// A lookup may take the connection's timeout, at most
        /// [`SHARED_LOOKUP_BUDGET`] (100 ms), before the
        /// endpoint's own timeout starts; a Redis that cannot answer within
        /// it is a miss, never a refusal, and never counts towards the
        /// circuit breaker. Keep write access to Redis as private as the
        /// client secret: a value written there is a verdict.
        ///
        /// Not with [`jwt_responses`](Self::jwt_responses): the tier keeps
        /// plain claims, so a value written to Redis would be accepted
        /// without the IdP's signature (RFC 9701) that configuration
        /// demands; [`build`](Self::build) refuses the pair.
        ///
        /// ```no_run
        /// use tokenwarden::authn::introspection::IntrospectionAuthenticator;
        /// use tokenwarden::state::redis::RedisState;
        /// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
        /// let redis = RedisState::builder("redis://10.0.0.5:6379").connect().await?;
        /// let opaque = IntrospectionAuthenticator::builder()
        ///     .endpoint("https://idp.example.com/oauth2/introspect")
        ///     .client_secret_basic("orders-api", std::env::var("INTROSPECTION_SECRET")?)
        ///     .shared_cache(redis.cache("introspection:orders-api", 1))
        ///     .build()
        ///     .await?;
        /// # let _ = opaque; Ok(()) }
        /// ```
        #[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
        pub fn shared_cache(mut self, cache: RedisCache) -> Self {
            self.shared.cache = Some(Arc::new(cache));
            self
        }
    }

    impl IntrospectionAuthenticator {
        /// The namespace of this authenticator's shared verdicts (feature
        /// `redis`): the one of the cache given to
        /// [`shared_cache`](IntrospectionAuthenticatorBuilder::shared_cache),
        /// `:`, and a fingerprint of what decides a verdict (endpoint,
        /// client id, issuer, audiences, token types, time rules). `None`
        /// without a shared cache. `redis.cache(namespace, n)` reads the
        /// same entries.
        #[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
        pub fn shared_cache_namespace(&self) -> Option<&str> {
            self.inner.shared.namespace()
        }

        /// Shared-tier reads so far: `(hits, misses, unusable)` (feature
        /// `redis`). A miss includes Redis not answering in time; unusable
        /// values (too large, unreadable, past their time) count apart.
        #[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
        pub fn shared_cache_stats(&self) -> (u64, u64, u64) {
            let c = &self.inner.shared.counts;
            (
                c.hits.load(Ordering::Relaxed),
                c.misses.load(Ordering::Relaxed),
                c.unreadable.load(Ordering::Relaxed),
            )
        }
    }
}
