//! The Redis tier: one reconnecting connection per process ([`RedisConnection`]) that gives up
//! quickly, and the shared scan cache with its fleet-wide lease ([`RedisTier`]).

use std::future::Future;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{RedisResult, Script};
use serde::{Deserialize, Serialize};

use super::{Fetch, SharedTier, metrics};
use crate::error::{Error, Result};
use crate::scan::{ScanReport, Summary};

/// The schema tag of a cached report; an entry with another tag (an older or newer Helios, or
/// anything else written under the key) is ignored and overwritten.
pub const SCHEMA: &str = "helios.scan-cache/v1";

/// How long a replica leaves Redis alone after a failed command before trying again.
const RETRY_AFTER: Duration = Duration::from_secs(1);

/// One process's connection to Redis: a lazily opened, self-reconnecting
/// [`ConnectionManager`], short timeouts, and a pause after a failure so a Redis outage costs
/// each lookup nothing but a skipped branch.
pub struct RedisConnection {
    client: redis::Client,
    config: ConnectionManagerConfig,
    manager: Mutex<Option<ConnectionManager>>,
    timeout: Duration,
    connect_timeout: Duration,
    connected: AtomicBool,
    down_until: Mutex<Option<Instant>>,
    down: AtomicBool,
    target: String,
}

impl std::fmt::Debug for RedisConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The target only: the URL may carry a password.
        f.debug_struct("RedisConnection")
            .field("target", &self.target)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl RedisConnection {
    /// Parses `url` (`redis://[user:pass@]host[:port][/db]`, `rediss://` for TLS); connects on
    /// first use. `timeout` bounds every command, `connect_timeout` a command that has to
    /// (re)connect first (both also by the caller's deadline).
    pub fn open(url: &str, timeout: Duration, connect_timeout: Duration) -> Result<Self> {
        let client = redis::Client::open(url).map_err(|e| {
            Error::invalid(
                "cache.redis",
                format!("not a redis:// or rediss:// URL ({:?})", e.kind()),
            )
        })?;
        let info = client.get_connection_info();
        let target = info.addr().to_string();
        let connect_timeout = connect_timeout.max(timeout);
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(connect_timeout))
            .set_response_timeout(Some(connect_timeout))
            .set_number_of_retries(1)
            .set_max_delay(RETRY_AFTER);
        Ok(RedisConnection {
            client,
            config,
            manager: Mutex::new(None),
            timeout,
            connect_timeout,
            connected: AtomicBool::new(false),
            down_until: Mutex::new(None),
            down: AtomicBool::new(false),
            target,
        })
    }

    fn manager(&self) -> RedisResult<ConnectionManager> {
        let mut manager = self.manager.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(m) = manager.as_ref() {
            return Ok(m.clone());
        }
        let m = ConnectionManager::new_lazy_with_config(self.client.clone(), self.config.clone())?;
        *manager = Some(m.clone());
        Ok(m)
    }

    /// Runs `command` within the timeout and the caller's deadline. `None` when Redis is
    /// unreachable, slow or answers an error (then counted as a fallback of `op`, warned about
    /// once per outage, and Redis left alone for a second).
    pub(crate) async fn run<T, F, Fut>(
        &self,
        op: &'static str,
        deadline: Option<Instant>,
        command: F,
    ) -> Option<T>
    where
        F: FnOnce(ConnectionManager) -> Fut,
        Fut: Future<Output = RedisResult<T>>,
    {
        let now = Instant::now();
        let paused = self
            .down_until
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_some_and(|until| now < until);
        // Until a command succeeds (first use, and after a failure) the connection is being
        // made: that gets the longer connect timeout.
        let timeout = if self.connected.load(Ordering::Relaxed) {
            self.timeout
        } else {
            self.connect_timeout
        };
        let limit = match deadline {
            Some(d) => timeout.min(d.saturating_duration_since(now)),
            None => timeout,
        };
        if paused || limit.is_zero() {
            metrics::fallback(op);
            return None;
        }
        let failure = match self.manager() {
            Ok(conn) => match tokio::time::timeout(limit, command(conn)).await {
                Ok(Ok(value)) => {
                    self.connected.store(true, Ordering::Relaxed);
                    if self.down.swap(false, Ordering::Relaxed) {
                        tracing::info!(target: "helios::redis", redis = %self.target, "Redis reachable again; sharing the cache and budget");
                    }
                    metrics::up();
                    return Some(value);
                }
                Ok(Err(e)) => e.to_string(),
                Err(_) => format!("no answer within {} ms", limit.as_millis()),
            },
            Err(e) => e.to_string(),
        };
        metrics::fallback(op);
        self.connected.store(false, Ordering::Relaxed);
        *self.down_until.lock().unwrap_or_else(|p| p.into_inner()) = Some(now + RETRY_AFTER);
        if !self.down.swap(true, Ordering::Relaxed) {
            tracing::warn!(target: "helios::redis", redis = %self.target, op, error = %failure, "Redis unavailable; using this replica's own cache and Lacework budget until it returns");
        } else {
            tracing::debug!(target: "helios::redis", redis = %self.target, op, error = %failure, "Redis still unavailable");
        }
        None
    }
}

/// A value unique across processes and calls: lease tokens, budget entries.
pub(crate) fn unique_token() -> String {
    static SEED: OnceLock<u64> = OnceLock::new();
    static NEXT: AtomicU64 = AtomicU64::new(0);
    // RandomState is seeded randomly per process: replicas that share a PID (1 in every
    // container) still get distinct tokens.
    let seed = SEED.get_or_init(|| {
        std::collections::hash_map::RandomState::new()
            .build_hasher()
            .finish()
    });
    format!("{seed:016x}-{}", NEXT.fetch_add(1, Ordering::Relaxed))
}

/// A cached report as stored: the schema tag and the key it belongs to travel with it, so an
/// entry is used only where it was written.
#[derive(Serialize, Deserialize)]
struct Entry<R> {
    schema: String,
    key: String,
    report: R,
}

/// The shared scan cache on Redis, with the fleet-wide single flight.
///
/// Keys: `{prefix}:scan:{namespace}:{real|dry}:{image}` holds an entry with the lifetime the L1
/// gives the answer; `{prefix}:lease:{namespace}:…` is the lease of the replica looking the
/// image up (`SET NX PX`, renewed every third of its lifetime while the lookup runs, deleted
/// when it ends). The others poll for the entry, and take over when the lease expires without
/// one (its holder died).
#[derive(Debug)]
pub struct RedisTier {
    redis: Arc<RedisConnection>,
    prefix: String,
    namespace: String,
    lease: Duration,
}

enum Read {
    Hit(Box<ScanReport>, Duration),
    Miss,
    Down,
}

fn release_script() -> &'static Script {
    static SCRIPT: OnceLock<Script> = OnceLock::new();
    SCRIPT.get_or_init(|| {
        Script::new(
            "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0",
        )
    })
}

fn renew_script() -> &'static Script {
    static SCRIPT: OnceLock<Script> = OnceLock::new();
    SCRIPT.get_or_init(|| {
        Script::new(
            "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end return 0",
        )
    })
}

impl RedisTier {
    /// A tier on `redis` under `{prefix}:…:{namespace}` (the namespace names the source settings
    /// that change an answer, e.g. the Lacework account).
    pub fn new(redis: Arc<RedisConnection>, prefix: &str, namespace: &str) -> Self {
        RedisTier {
            redis,
            prefix: prefix.to_string(),
            namespace: namespace.to_string(),
            lease: super::DEFAULT_LEASE,
        }
    }

    /// The lease of a lookup (at least 100 ms).
    pub fn lease(mut self, lease: Duration) -> Self {
        self.lease = lease.max(Duration::from_millis(100));
        self
    }

    fn key(&self, kind: &str, key: &str) -> String {
        format!("{}:{kind}:{}:{key}", self.prefix, self.namespace)
    }

    async fn read(&self, entry_key: &str, deadline: Option<Instant>) -> Read {
        let k = entry_key.to_string();
        let found = self
            .redis
            .run("cache", deadline, |mut c| async move {
                redis::pipe()
                    .get(&k)
                    .pttl(&k)
                    .query_async::<(Option<Vec<u8>>, i64)>(&mut c)
                    .await
            })
            .await;
        match found {
            None => Read::Down,
            Some((None, _)) => Read::Miss,
            Some((Some(bytes), pttl)) => {
                match serde_json::from_slice::<Entry<ScanReport>>(&bytes) {
                    Ok(e)
                        if e.schema == SCHEMA
                            && e.key == entry_key
                            && e.report.summary == Summary::count(&e.report.vulnerabilities)
                            && pttl > 0 =>
                    {
                        Read::Hit(Box::new(e.report), Duration::from_millis(pttl as u64))
                    }
                    _ => {
                        metrics::lookup("invalid");
                        tracing::warn!(target: "helios::redis", key = entry_key, "ignoring a cache entry that is not a Helios report for this key; it will be overwritten");
                        Read::Miss
                    }
                }
            }
        }
    }

    /// Runs the lookup as the lease holder, renewing the lease while it runs; then stores the
    /// answer and releases the lease in the background (never past the caller's deadline).
    async fn hold(
        &self,
        entry_key: String,
        lease_key: String,
        token: String,
        fetch: Fetch<'_>,
    ) -> (Result<ScanReport>, Option<Duration>) {
        let mut fetch = fetch;
        let lease_ms = self.lease.as_millis() as u64;
        let mut renew = tokio::time::interval(self.lease / 3);
        renew.tick().await;
        let (answer, ttl) = loop {
            tokio::select! {
                done = &mut fetch => break done,
                _ = renew.tick() => {
                    let (k, t) = (lease_key.clone(), token.clone());
                    self.redis.run("lease", None, |mut c| async move {
                        renew_script().key(k).arg(t).arg(lease_ms).invoke_async::<i64>(&mut c).await
                    }).await;
                }
            }
        };
        let entry = match (&answer, ttl) {
            (Ok(report), Some(ttl)) if !ttl.is_zero() => serde_json::to_vec(&Entry {
                schema: SCHEMA.into(),
                key: entry_key.clone(),
                report,
            })
            .ok()
            .map(|bytes| (bytes, ttl)),
            _ => None,
        };
        let redis = self.redis.clone();
        tokio::spawn(async move {
            if let Some((bytes, ttl)) = entry {
                let k = entry_key.clone();
                redis
                    .run("cache", None, |mut c| async move {
                        redis::cmd("SET")
                            .arg(&k)
                            .arg(bytes)
                            .arg("PX")
                            .arg(ttl.as_millis().max(1) as u64)
                            .query_async::<()>(&mut c)
                            .await
                    })
                    .await;
            }
            redis
                .run("lease", None, |mut c| async move {
                    release_script()
                        .key(lease_key)
                        .arg(token)
                        .invoke_async::<i64>(&mut c)
                        .await
                })
                .await;
        });
        (answer, ttl)
    }
}

#[async_trait]
impl SharedTier for RedisTier {
    async fn get_or_fetch(
        &self,
        key: &str,
        deadline: Option<Instant>,
        fetch: Fetch<'_>,
    ) -> (Result<ScanReport>, Option<Duration>) {
        let entry_key = self.key("scan", key);
        let lease_key = self.key("lease", key);
        let lease_ms = self.lease.as_millis() as u64;
        let mut waited = false;
        let mut poll = Duration::from_millis(20);
        loop {
            match self.read(&entry_key, deadline).await {
                Read::Hit(report, ttl) => {
                    metrics::lookup(if waited { "waited" } else { "hit" });
                    return (Ok(*report), Some(ttl));
                }
                Read::Miss => {}
                Read::Down => return fetch.await,
            }
            let token = unique_token();
            let (k, t) = (lease_key.clone(), token.clone());
            let acquired = self
                .redis
                .run("lease", deadline, |mut c| async move {
                    redis::cmd("SET")
                        .arg(k)
                        .arg(t)
                        .arg("NX")
                        .arg("PX")
                        .arg(lease_ms)
                        .query_async::<Option<String>>(&mut c)
                        .await
                })
                .await;
            match acquired {
                None => return fetch.await,
                Some(Some(_)) => {
                    metrics::lookup("miss");
                    return self.hold(entry_key, lease_key, token, fetch).await;
                }
                // Another replica is looking the image up: wait for its entry (the caller's
                // deadline ends the wait; the lease's expiry ends a dead holder's claim).
                Some(None) => {
                    waited = true;
                    tokio::time::sleep(poll).await;
                    poll = (poll * 2).min(Duration::from_millis(200));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scan::{AffectedPackage, Fix, Severity, Vulnerability};

    /// A realistic 1,000-finding report as stored (docs/scale-out.md quotes the size).
    fn entry_of(findings: usize) -> serde_json::Result<Vec<u8>> {
        let severities = [
            Severity::Critical,
            Severity::High,
            Severity::Medium,
            Severity::Low,
        ];
        let vulnerabilities = (0..findings)
            .map(|i| Vulnerability {
                id: format!("CVE-2024-{:05}", 10_000 + i),
                severity: severities[i % severities.len()],
                status: "VULNERABLE".into(),
                package: AffectedPackage {
                    name: format!("libexample{}", i % 150),
                    version: "1.2.3-4+deb12u1".into(),
                    namespace: Some("debian:12".into()),
                },
                fix: Fix {
                    available: i % 2 == 0,
                    version: (i % 2 == 0).then(|| "1.2.3-4+deb12u2".into()),
                },
            })
            .collect();
        let report = ScanReport::completed("lacework", None, None, vulnerabilities);
        serde_json::to_vec(&Entry {
            schema: SCHEMA.into(),
            key: format!(
                "helios:scan:0123456789abcdef:real:sha256:{}",
                "a".repeat(64)
            ),
            report: &report,
        })
    }

    #[test]
    fn a_thousand_finding_report_is_a_few_hundred_kilobytes_at_most() -> serde_json::Result<()> {
        let bytes = entry_of(1000)?;
        eprintln!("serialized 1,000-finding entry: {} bytes", bytes.len());
        assert!(bytes.len() < 300_000, "{}", bytes.len());
        let back: Entry<ScanReport> = serde_json::from_slice(&bytes)?;
        assert_eq!(back.report.vulnerabilities.len(), 1000);
        assert_eq!(
            back.report.summary,
            Summary::count(&back.report.vulnerabilities)
        );
        Ok(())
    }

    #[test]
    fn tokens_are_unique() {
        assert_ne!(unique_token(), unique_token());
    }
}
