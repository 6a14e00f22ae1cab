//! The fleet-wide Lacework request budget (feature `redis`): Lacework's limit is per API key, so
//! every replica using one key spends from one bucket in Redis before its own budget.
//!
//! The bucket holds `limit` tokens; a spent token comes back one window after it was spent (a
//! sorted set of spend times, trimmed and counted by one atomic script — the same sliding window
//! as the local [`Budget`](super::budget), so the fleet never sends more than `limit` requests
//! in any window). Lacework's `RateLimit-Remaining` / `RateLimit-Reset` headers correct it: when
//! Lacework counts fewer requests left than the bucket does (another client on the key, a
//! replica that ran without Redis), the difference is spent until Lacework's reset.

use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use redis::Script;
use reqwest::header::HeaderMap;
use sha2::{Digest, Sha256};

use super::client::LaceworkClient;
use super::source::NoScan;
use crate::error::Result;
use crate::scan::shared::RedisConnection;
use crate::scan::shared::redis_token;

/// Takes a token: 0, or the milliseconds until one comes back.
const TAKE: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local limit = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
if redis.call('ZCARD', KEYS[1]) < limit then
  redis.call('ZADD', KEYS[1], now, ARGV[3])
  redis.call('PEXPIRE', KEYS[1], window)
  return 0
end
local first = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
return math.max(1, tonumber(first[2]) + window - now)
";

/// Lacework says `ARGV[3]` requests are left until `ARGV[4]` ms from now: spends the tokens the
/// bucket has beyond that, each coming back at Lacework's reset.
const CORRECT: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local limit = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local remaining = tonumber(ARGV[3])
local reset = math.min(tonumber(ARGV[4]), window)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
local extra = limit - redis.call('ZCARD', KEYS[1]) - remaining
if extra <= 0 then return 0 end
for i = 1, extra do
  redis.call('ZADD', KEYS[1], now - window + reset, ARGV[5] .. ':' .. i)
end
redis.call('PEXPIRE', KEYS[1], window)
return extra
";

fn script(which: &'static str) -> &'static Script {
    static TAKE_SCRIPT: OnceLock<Script> = OnceLock::new();
    static CORRECT_SCRIPT: OnceLock<Script> = OnceLock::new();
    let cell = if which == TAKE {
        &TAKE_SCRIPT
    } else {
        &CORRECT_SCRIPT
    };
    cell.get_or_init(|| Script::new(which))
}

/// The shared bucket of one Lacework account and API key.
#[derive(Debug)]
pub(crate) struct FleetBudget {
    redis: Arc<RedisConnection>,
    key: String,
}

/// A short stable hash, to keep account names and key ids out of Redis key names.
fn short_hash(text: &str) -> String {
    Sha256::digest(text.as_bytes())[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The part of shared-cache keys that names the Lacework settings changing an answer: the
/// account (and sub-account), the search look-back, the image-id fallback and what happens to
/// images without a scan.
pub fn cache_namespace(client: &LaceworkClient, no_scan: NoScan) -> String {
    let c = &client.inner.config;
    let no_scan = match no_scan {
        NoScan::ScanAndWait { .. } => "scan-and-wait",
        NoScan::RequestScan => "request-scan",
        NoScan::None => "none",
    };
    short_hash(&format!(
        "{}|{:?}|{}|{}|{no_scan}",
        client.service(),
        c.settings.subaccount,
        c.look_back.as_secs(),
        c.image_id_fallback,
    ))
}

impl LaceworkClient {
    /// Spends this client's requests from a bucket in Redis shared by every client of the same
    /// account and API key (each still keeps its own budget too). Redis unreachable: the own
    /// budget alone decides, with a warning and `helios_redis_fallbacks_total{op="budget"}`.
    /// A second call is ignored.
    pub fn share_budget(&self, redis: Arc<RedisConnection>, key_prefix: &str) {
        let key = format!(
            "{key_prefix}:budget:{}",
            short_hash(&format!("{}|{}", self.service(), self.inner.key_id))
        );
        let _ = self.inner.fleet.set(FleetBudget { redis, key });
    }

    /// Takes a token from the fleet bucket, waiting for one within `deadline`.
    pub(crate) async fn take_fleet_token(&self, deadline: Instant) -> Result<()> {
        let Some(fleet) = self.inner.fleet.get() else {
            return Ok(());
        };
        let (limit, window) = (
            self.inner.config.requests_per_hour.max(1),
            self.inner.config.budget_window.as_millis().max(1) as u64,
        );
        loop {
            let key = fleet.key.clone();
            let wait = fleet
                .redis
                .run("budget", Some(deadline), |mut c| async move {
                    script(TAKE)
                        .key(key)
                        .arg(limit)
                        .arg(window)
                        .arg(redis_token())
                        .invoke_async::<u64>(&mut c)
                        .await
                })
                .await;
            let Some(wait) = wait.filter(|w| *w > 0) else {
                return Ok(());
            };
            let free_at = Instant::now() + Duration::from_millis(wait);
            if free_at > deadline {
                return Err(self.unavailable(format!(
                    "fleet-wide request budget spent ({limit} requests per {} s for every replica \
                     sharing this Lacework key through Redis); the next request is allowed in {} \
                     s, past the caller's deadline",
                    window / 1000,
                    Duration::from_millis(wait).as_secs_f64().ceil()
                )));
            }
            tokio::time::sleep_until(free_at.into()).await;
        }
    }

    /// Corrects the fleet bucket with Lacework's `RateLimit-Remaining` / `RateLimit-Reset`
    /// (in the background: the reply is not held up).
    pub(crate) fn report_rate_limit(&self, headers: &HeaderMap) {
        let Some(fleet) = self.inner.fleet.get() else {
            return;
        };
        let number = |name: &str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok())
        };
        let (Some(remaining), Some(reset)) =
            (number("RateLimit-Remaining"), number("RateLimit-Reset"))
        else {
            return;
        };
        let (redis, key) = (fleet.redis.clone(), fleet.key.clone());
        let limit = self.inner.config.requests_per_hour.max(1);
        let window = self.inner.config.budget_window.as_millis().max(1) as u64;
        tokio::spawn(async move {
            redis
                .run("budget", None, |mut c| async move {
                    script(CORRECT)
                        .key(key)
                        .arg(limit)
                        .arg(window)
                        .arg(remaining)
                        .arg(reset.saturating_mul(1000))
                        .arg(redis_token())
                        .invoke_async::<i64>(&mut c)
                        .await
                })
                .await;
        });
    }
}
