//! The Redis tier's Prometheus metrics, process-wide (one fleet member is one process):
//! `helios_redis_fallbacks_total{op}`, `helios_redis_cache_lookups_total{result}` and
//! `helios_redis_up`. The webhook serves them on `/metrics`.

use std::sync::OnceLock;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OpLabels {
    op: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabels {
    result: String,
}

struct RedisMetrics {
    registry: Registry,
    fallbacks: Family<OpLabels, Counter>,
    lookups: Family<ResultLabels, Counter>,
    up: Gauge,
}

fn metrics() -> &'static RedisMetrics {
    static METRICS: OnceLock<RedisMetrics> = OnceLock::new();
    METRICS.get_or_init(|| {
        let mut registry = Registry::with_prefix("helios_redis");
        let fallbacks = Family::<OpLabels, Counter>::default();
        let lookups = Family::<ResultLabels, Counter>::default();
        let up = Gauge::default();
        registry.register(
            "fallbacks",
            "Redis operations that failed or timed out, so the replica used its own cache and budget",
            fallbacks.clone(),
        );
        registry.register(
            "cache_lookups",
            "Lookups in the shared scan cache: hit, miss, invalid (a corrupted or foreign entry), waited (another replica's lookup)",
            lookups.clone(),
        );
        registry.register(
            "up",
            "1 while the last Redis command succeeded, 0 after a failure",
            up.clone(),
        );
        for op in ["connect", "cache", "lease", "budget"] {
            let _ = fallbacks.get_or_create(&OpLabels { op: op.into() });
        }
        for r in ["hit", "miss", "invalid", "waited"] {
            let _ = lookups.get_or_create(&ResultLabels { result: r.into() });
        }
        RedisMetrics {
            registry,
            fallbacks,
            lookups,
            up,
        }
    })
}

/// Counts one fallback of `op` (`cache`, `lease`, `budget`) and marks Redis down.
pub(crate) fn fallback(op: &str) {
    let m = metrics();
    m.fallbacks.get_or_create(&OpLabels { op: op.into() }).inc();
    m.up.set(0);
}

/// Marks Redis reachable.
pub(crate) fn up() {
    metrics().up.set(1);
}

/// Counts one shared-cache lookup ending in `result`.
pub(crate) fn lookup(result: &str) {
    metrics()
        .lookups
        .get_or_create(&ResultLabels {
            result: result.into(),
        })
        .inc();
}

/// The Redis tier's metrics in the Prometheus / OpenMetrics text format (ending in `# EOF`).
pub fn encode() -> String {
    let mut out = String::new();
    // Writing into a String cannot fail.
    let _ = prometheus_client::encoding::text::encode(&mut out, &metrics().registry);
    out
}
