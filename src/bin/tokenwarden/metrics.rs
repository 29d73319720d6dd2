//! The sidecar's Prometheus metrics (text exposition format).

use std::sync::Mutex;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use tokenwarden::RemoteKeySet;

use crate::shared_state::LinkFigures;

fn gauge(n: impl TryInto<i64>) -> i64 {
    n.try_into().unwrap_or(i64::MAX)
}

/// The Redis link's series.
#[derive(Default)]
struct RedisGauges {
    up: Gauge,
    pending: Gauge,
    entries: Gauge,
    last_load: Gauge,
    load_failures: Counter,
}

impl RedisGauges {
    fn set(&self, link: &LinkFigures, entries: usize) {
        self.up.set(i64::from(link.up));
        self.pending.set(gauge(link.pending));
        self.entries.set(gauge(entries));
        // 0 until the first load (a timestamp, not an age: `time() - x`
        // in a query gives the age, and 0 cannot pass for a fresh load).
        self.last_load.set(link.last_load.unwrap_or(0));
        let seen = self.load_failures.get();
        if link.resync_failures > seen {
            self.load_failures.inc_by(link.resync_failures - seen);
        }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabel {
    result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct IssuerLabel {
    issuer: String,
}

/// Every metric the sidecar exports.
pub struct Metrics {
    registry: Registry,
    decisions: Family<ResultLabel, Counter>,
    latency: Histogram,
    fetches: Family<IssuerLabel, Counter>,
    failures: Family<IssuerLabel, Counter>,
    unknown_kid: Family<IssuerLabel, Counter>,
    keys: Family<IssuerLabel, Gauge>,
    age: Family<IssuerLabel, Gauge>,
    refused_connections: Counter,
    accept_errors: Counter,
    /// `[redis]`: the shared denylist's link.
    redis: Option<RedisGauges>,
    /// Serialises scrapes: counters copied from key-set statistics move by
    /// the difference since the last scrape.
    scrape: Mutex<()>,
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("tokenwarden");
        let decisions = Family::<ResultLabel, Counter>::default();
        registry.register(
            "validations",
            "Auth decisions by result: ok, anonymous, or the refusal's kind",
            decisions.clone(),
        );
        // 2 µs to about 2 s.
        let latency = Histogram::new(exponential_buckets(0.000_002, 2.0, 20));
        registry.register(
            "validation_duration_seconds",
            "Time to decide one auth request",
            latency.clone(),
        );
        let fetches = Family::<IssuerLabel, Counter>::default();
        registry.register("key_fetches", "JWKS fetches", fetches.clone());
        let failures = Family::<IssuerLabel, Counter>::default();
        registry.register(
            "key_fetch_failures",
            "JWKS fetches that failed",
            failures.clone(),
        );
        let unknown_kid = Family::<IssuerLabel, Counter>::default();
        registry.register(
            "unknown_kid_refreshes",
            "Refreshes caused by a token naming an unknown kid",
            unknown_kid.clone(),
        );
        let keys = Family::<IssuerLabel, Gauge>::default();
        registry.register("keys", "Usable keys per issuer", keys.clone());
        let age = Family::<IssuerLabel, Gauge>::default();
        registry.register(
            "keys_age_seconds",
            "Seconds since the issuer's keys were last fetched",
            age.clone(),
        );
        let refused_connections = Counter::default();
        registry.register(
            "refused_connections",
            "Connections closed at accept because max_connections were open",
            refused_connections.clone(),
        );
        let accept_errors = Counter::default();
        registry.register(
            "accept_errors",
            "Failed accepts (such as EMFILE), each followed by a back-off",
            accept_errors.clone(),
        );
        Metrics {
            refused_connections,
            accept_errors,
            registry,
            decisions,
            latency,
            fetches,
            failures,
            unknown_kid,
            keys,
            age,
            redis: None,
            scrape: Mutex::new(()),
        }
    }

    /// Registers the Redis link's series (`[redis]` configured).
    pub fn with_redis(&mut self) {
        let g = RedisGauges::default();
        self.registry.register(
            "redis_link_up",
            "Whether the pub/sub link to Redis is up (1) or down (0)",
            g.up.clone(),
        );
        self.registry.register(
            "redis_pending_writes",
            "Revocations waiting to be written to Redis",
            g.pending.clone(),
        );
        self.registry.register(
            "redis_denylist_entries",
            "Entries in the local mirror of the shared denylist",
            g.entries.clone(),
        );
        self.registry.register(
            "redis_denylist_loaded_timestamp_seconds",
            "Unix time the shared denylist was last loaded in full (0: not yet)",
            g.last_load.clone(),
        );
        self.registry.register(
            "redis_denylist_load_failures",
            "Full loads of the shared denylist that failed (each retried)",
            g.load_failures.clone(),
        );
        self.redis = Some(g);
    }

    /// Counts one decision and its latency.
    pub fn decided(&self, result: &str, seconds: f64) {
        self.decisions
            .get_or_create(&ResultLabel {
                result: result.to_owned(),
            })
            .inc();
        self.latency.observe(seconds);
    }

    /// Counts one connection closed over the cap.
    pub fn connection_refused(&self) {
        self.refused_connections.inc();
    }

    /// Counts one failed accept.
    pub fn accept_failed(&self) {
        self.accept_errors.inc();
    }

    /// Sets a static key set's gauges (its keys never change).
    pub fn static_keys(&self, issuer: &str, count: usize) {
        let label = IssuerLabel {
            issuer: issuer.to_owned(),
        };
        self.keys
            .get_or_create(&label)
            .set(i64::try_from(count).unwrap_or(i64::MAX));
    }

    /// The text exposition, with key-set (and Redis link) figures read now.
    pub fn render(
        &self,
        remotes: &[(String, RemoteKeySet)],
        redis: Option<(LinkFigures, usize)>,
        now: i64,
    ) -> String {
        let _one = self.scrape.lock().unwrap_or_else(|p| p.into_inner());
        if let (Some(g), Some((link, entries))) = (&self.redis, redis) {
            g.set(&link, entries);
        }
        for (issuer, set) in remotes {
            let label = IssuerLabel {
                issuer: issuer.clone(),
            };
            let s = set.stats();
            let catch_up = |c: &Family<IssuerLabel, Counter>, total: u64| {
                let counter = c.get_or_create(&label);
                let seen = counter.get();
                if total > seen {
                    counter.inc_by(total - seen);
                }
            };
            catch_up(&self.fetches, s.fetches);
            catch_up(&self.failures, s.failures);
            catch_up(&self.unknown_kid, s.unknown_kid_refreshes);
            self.keys
                .get_or_create(&label)
                .set(i64::try_from(s.keys).unwrap_or(i64::MAX));
            if let Some(at) = s.last_success {
                self.age.get_or_create(&label).set((now - at).max(0));
            }
        }
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}
