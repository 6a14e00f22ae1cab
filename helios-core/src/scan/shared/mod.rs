//! Scale-out: a scan cache, a single flight and a Lacework request budget shared by every
//! replica of a fleet (issue 13).
//!
//! The in-memory [`CachedSource`] stays the first tier (L1) of every process; behind it a
//! [`SharedTier`] answers L1 misses for the whole fleet. The one implementation is
//! [`RedisTier`] (cargo feature `redis`): scan reports in Redis under the digest and the source
//! settings, with the same TTLs as the L1, a short lease (`SET NX PX`, renewed while the holder
//! works) so concurrent lookups of one digest across replicas make one upstream call, and the
//! Lacework budget as one token bucket ([`LaceworkClient::share_budget`]).
//!
//! Redis trouble never blocks a lookup: every command is bounded by a short timeout and the
//! caller's deadline, and on failure the replica falls back to its own cache and budget, logs a
//! warning, counts `helios_redis_fallbacks_total`, and tries Redis again a second later.
//!
//! ```yaml
//! # webhook configuration
//! cache:
//!   redis: redis://helios-redis:6379   # or rediss://user:pass@host:6380 (TLS)
//!   lease_ms: 3000                     # how long a dead holder blocks its digest
//! ```
//!
//! [`LaceworkClient::share_budget`]: crate::scan::lacework::LaceworkClient::share_budget

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::image::ImageRef;
use crate::scan::lacework::{
    LaceworkClient, LaceworkLookup, LaceworkSource, NoScan, ServiceFailure,
};
use crate::scan::{CachedSource, Lookup, ScanReport, ScanSource, ScanStatus};

#[cfg(feature = "redis")]
mod metrics;
#[cfg(feature = "redis")]
mod redis;

#[cfg(feature = "redis")]
pub use self::metrics::encode as encode_metrics;
#[cfg(feature = "redis")]
pub(crate) use self::redis::unique_token as redis_token;
#[cfg(feature = "redis")]
pub use self::redis::{RedisConnection, RedisTier, SCHEMA};

/// One upstream lookup handed to a [`SharedTier`]: its answer, and how long the answer may be
/// kept (`None`: not at all, e.g. an error or an answer about the caller rather than the image).
pub type Fetch<'a> =
    Pin<Box<dyn Future<Output = (Result<ScanReport>, Option<Duration>)> + Send + 'a>>;

/// A cache tier shared by several processes, behind [`CachedSource`].
#[async_trait]
pub trait SharedTier: Send + Sync + std::fmt::Debug {
    /// The answer for `key` (`real:IMAGE` or `dry:IMAGE`): a stored one with its remaining
    /// lifetime, or `fetch`'s, which the tier runs at most once across the fleet at a time and
    /// stores for the lifetime `fetch` gives. Never fails because of the tier itself: when it is
    /// unreachable `fetch` runs as if it were absent.
    async fn get_or_fetch(
        &self,
        key: &str,
        deadline: Option<Instant>,
        fetch: Fetch<'_>,
    ) -> (Result<ScanReport>, Option<Duration>);
}

/// Default lease of a fleet-wide lookup: how long a holder that died blocks its digest.
pub const DEFAULT_LEASE: Duration = Duration::from_secs(3);

/// The `cache` section of the webhook configuration (and `helios gate --cache-redis`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CacheConfig {
    /// `redis://…` or `rediss://…` (TLS): share scans, lookups and the Lacework budget with every
    /// replica using the same Redis. Unset: each process keeps its own (the default).
    pub redis: Option<String>,
    /// Key prefix in Redis, to keep several fleets (or environments) apart on one server.
    pub key_prefix: String,
    /// Lease of a fleet-wide lookup, in milliseconds (renewed while its holder works).
    pub lease_ms: u64,
    /// Timeout of one Redis command, in milliseconds (also bounded by the review deadline).
    pub timeout_ms: u64,
    /// Timeout of a command that has to connect first, in milliseconds (also bounded by the
    /// review deadline).
    pub connect_timeout_ms: u64,
}

impl Default for CacheConfig {
    fn default() -> Self {
        CacheConfig {
            redis: None,
            key_prefix: "helios".into(),
            lease_ms: DEFAULT_LEASE.as_millis() as u64,
            timeout_ms: 500,
            connect_timeout_ms: 1000,
        }
    }
}

impl CacheConfig {
    /// A configuration sharing through `url`.
    pub fn redis(url: impl Into<String>) -> Self {
        CacheConfig {
            redis: Some(url.into()),
            ..Default::default()
        }
    }

    /// Checks the settings (the URL's syntax, non-zero times) without connecting.
    pub fn validate(&self) -> Result<()> {
        let invalid = |reason: &str| Err(crate::Error::invalid("cache configuration", reason));
        if self.lease_ms == 0 || self.timeout_ms == 0 || self.connect_timeout_ms == 0 {
            return invalid("cache: lease_ms, timeout_ms and connect_timeout_ms must be above 0");
        }
        if self.key_prefix.is_empty() {
            return invalid("cache: key_prefix must not be empty");
        }
        match &self.redis {
            None => Ok(()),
            #[cfg(feature = "redis")]
            Some(url) => self.connection(url).map(|_| ()),
            #[cfg(not(feature = "redis"))]
            Some(_) => invalid(
                "cache: redis needs a build of helios-core with the `redis` feature (the helios CLI has it)",
            ),
        }
    }

    #[cfg(feature = "redis")]
    fn connection(&self, url: &str) -> Result<RedisConnection> {
        RedisConnection::open(
            url,
            Duration::from_millis(self.timeout_ms),
            Duration::from_millis(self.connect_timeout_ms),
        )
    }

    /// The Lacework source of `client` behind the in-memory cache, and, when Redis is set, the
    /// shared tier behind that and the fleet request budget in front of the client.
    pub fn lacework_source(
        &self,
        client: LaceworkClient,
        no_scan: NoScan,
    ) -> Result<CachedSource<LaceworkSource>> {
        self.validate()?;
        #[cfg(feature = "redis")]
        if let Some(url) = &self.redis {
            let redis = Arc::new(self.connection(url)?);
            client.share_budget(redis.clone(), &self.key_prefix);
            let namespace = crate::scan::lacework::cache_namespace(&client, no_scan);
            let tier = RedisTier::new(redis, &self.key_prefix, &namespace)
                .lease(Duration::from_millis(self.lease_ms));
            return Ok(
                CachedSource::new(LaceworkSource::new(client, no_scan)).shared(Arc::new(tier))
            );
        }
        Ok(CachedSource::new(LaceworkSource::new(client, no_scan)))
    }

    /// [`scan_image`](crate::scan::lacework::scan_image) through these settings: with Redis set,
    /// the lookup goes through the shared tier and the fleet budget (so CI jobs sharing a Redis
    /// look each digest up once); without, it is exactly `scan_image`. With
    /// [`ServiceFailure::Error`] an `unavailable` answer becomes the same typed error.
    pub async fn scan_image(
        &self,
        image: &ImageRef,
        options: &LaceworkLookup,
    ) -> Result<ScanReport> {
        if self.redis.is_none() {
            return crate::scan::lacework::scan_image(image, options).await;
        }
        let client = crate::scan::lacework::shared_client(options.profile.as_deref())?;
        let source = self.lacework_source(client, options.no_scan_mode())?;
        let lookup = Lookup {
            deadline: options.lookup_deadline(),
            dry_run: false,
        };
        let report = source.scan(image, lookup).await?;
        match options.on_failure {
            ServiceFailure::Error if report.status == ScanStatus::Unavailable => {
                Err(crate::Error::unavailable(
                    source.inner().client().service(),
                    report.error.unwrap_or_else(|| "no answer".into()),
                ))
            }
            _ => Ok(report),
        }
    }

    /// [`lacework_source`](Self::lacework_source) as a trait object.
    pub fn scan_source(
        &self,
        client: LaceworkClient,
        no_scan: NoScan,
    ) -> Result<Arc<dyn ScanSource>> {
        Ok(Arc::new(self.lacework_source(client, no_scan)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_validation() {
        let c = CacheConfig::default();
        assert_eq!(c.redis, None);
        assert!(c.validate().is_ok());
        let zero = CacheConfig {
            lease_ms: 0,
            ..Default::default()
        };
        assert!(zero.validate().is_err());
        let bad = CacheConfig::redis("http://not-redis");
        assert!(bad.validate().is_err());
        #[cfg(feature = "redis")]
        assert!(
            CacheConfig::redis("rediss://user:pw@redis.example:6380/0")
                .validate()
                .is_ok()
        );
    }

    #[test]
    fn unknown_fields_are_errors() {
        let err = serde_json::from_str::<CacheConfig>(r#"{"redis_url": "redis://x"}"#).err();
        assert!(err.is_some_and(|e| e.to_string().contains("redis_url")));
    }
}
