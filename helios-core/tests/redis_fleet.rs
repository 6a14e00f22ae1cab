//! Issue 13, scale-out: three webhook replicas sharing a real `redis-server` (Debian's package,
//! started per test by `helios_testkit::RedisServer`) in front of the Lacework emulator.
//!
//! Each replica is an in-process HTTPS webhook server with everything of its own — admission
//! controller, in-memory cache, Lacework client (token, connection pool, local budget), Redis
//! connection and `/metrics` — exactly what `helios webhook` builds from a configuration with
//! `cache: {redis: …}` (through the same `CacheConfig::lacework_source`). Only process-wide
//! state is shared: the `helios_redis_*` counters, which every replica's `/metrics` shows. A
//! killed holder is a lookup task aborted mid-call: it neither renews nor releases its lease,
//! which is all Redis sees of a killed process.
//!
//! Without `redis-server` (scripts/install-tools.sh installs Debian's) the tests fail; they never
//! skip.
#![cfg(all(feature = "webhook", feature = "redis"))]

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::stream::{self, StreamExt};
use helios_core::admission::server::Metrics;
use helios_core::admission::{AdmissionController, ControllerConfig};
use helios_core::image::ImageRef;
use helios_core::policy::EmbeddedEvaluator;
use helios_core::scan::lacework::{LaceworkClient, LaceworkSource, NoScan};
use helios_core::scan::shared::{CacheConfig, SCHEMA};
use helios_core::scan::{CachedSource, Lookup, ScanReport, ScanSource, ScanStatus};
use helios_lacework_emulator::{Emulator, EmulatorBuilder, Endpoint, Fault, FaultKind};
use helios_testkit::RedisServer;
use serde_json::Value;

mod support;
use support::webhook::{TlsWebhook, serve_tls};

type TestResult = std::result::Result<(), Box<dyn std::error::Error>>;

/// A running `redis-server` (scripts/install-tools.sh installs it); without one the test fails,
/// as it does without OPA or helm.
fn redis() -> Result<RedisServer, String> {
    let _ = tracing_subscriber::fmt()
        .with_env_filter("helios::redis=debug")
        .with_test_writer()
        .try_init();
    RedisServer::start()
}

async fn emulator(b: EmulatorBuilder) -> std::io::Result<Emulator> {
    // Scans take long: an unknown digest stays `pending`, so every answer is comparable.
    b.scan_duration(Duration::from_secs(600)).start().await
}

fn client(emu: &Emulator, budget: u32) -> helios_core::Result<LaceworkClient> {
    LaceworkClient::builder()
        .account(emu.url())
        .api_key(emu.key_id())
        .api_secret(emu.secret())
        .retries(1, Duration::from_millis(10), Duration::from_millis(20))
        // One image summary per lookup (the emulator has no image ids to fall back to).
        .image_id_fallback(false)
        .request_budget(budget, Duration::from_secs(3600))
        .build()
}

/// The tests run one at a time: each starts three replicas and hundreds of TLS connections on
/// a two-core machine, and Redis commands must not time out because of the neighbours.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn cache(redis: &RedisServer, lease_ms: u64) -> CacheConfig {
    CacheConfig {
        lease_ms,
        // Generous for a loaded test machine (the defaults are for a Redis next to the pods).
        timeout_ms: 2000,
        connect_timeout_ms: 2000,
        ..CacheConfig::redis(redis.url())
    }
}

/// One webhook replica.
struct Replica {
    base: String,
    http: reqwest::Client,
    metrics: Arc<Metrics>,
    _webhook: TlsWebhook,
}

impl Replica {
    async fn start(
        emu: &Emulator,
        cache: &CacheConfig,
        budget: u32,
    ) -> std::result::Result<Self, Box<dyn std::error::Error>> {
        let source = cache.scan_source(client(emu, budget)?, NoScan::RequestScan)?;
        let mut config = ControllerConfig {
            deadline_ms: 8000,
            ..Default::default()
        };
        // One test user sends every review: let it spend the whole budget.
        config.limits.lacework_share_per_review = 1.0;
        config.limits.lacework_share_per_namespace = 1.0;
        config.limits.lacework_share_per_user = 1.0;
        let controller = AdmissionController::new(
            source,
            Arc::new(EmbeddedEvaluator::default_policy()?),
            config,
        );
        let webhook = serve_tls(controller, "localhost", Duration::from_secs(60)).await?;
        let http = reqwest::Client::builder()
            .use_rustls_tls()
            .add_root_certificate(reqwest::Certificate::from_pem(webhook.ca_pem.as_bytes())?)
            .resolve("localhost", std::net::SocketAddr::from(([127, 0, 0, 1], 0)))
            .timeout(Duration::from_secs(30))
            .build()?;
        Ok(Replica {
            base: format!("https://localhost:{}", webhook.addr.port()),
            http,
            metrics: webhook.metrics.clone(),
            _webhook: webhook,
        })
    }

    /// Posts a Deployment review of `image`: the HTTP status and the response review.
    async fn review(&self, image: &str) -> std::result::Result<(u16, Value), String> {
        let body = review_with_image(image).map_err(|e| e.to_string())?;
        let resp = self
            .http
            .post(format!("{}/validate", self.base))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .map_err(|e| e.to_string())?;
        let status = resp.status().as_u16();
        let text = resp.text().await.map_err(|e| e.to_string())?;
        let value = serde_json::from_str(&text).map_err(|e| format!("{e}: {text}"))?;
        Ok((status, value))
    }
}

async fn fleet(
    emu: &Emulator,
    cache: &CacheConfig,
    budget: u32,
) -> std::result::Result<Vec<Replica>, Box<dyn std::error::Error>> {
    let mut replicas = Vec::new();
    for _ in 0..3 {
        replicas.push(Replica::start(emu, cache, budget).await?);
    }
    Ok(replicas)
}

fn review_with_image(image: &str) -> std::result::Result<Vec<u8>, Box<dyn std::error::Error>> {
    let fixture = std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../tests/fixtures/admission/deployment-create.json"),
    )?;
    let mut review: Value = serde_json::from_slice(&fixture)?;
    review["request"]["object"]["spec"]["template"]["spec"]["containers"][0]["image"] =
        Value::String(image.to_string());
    Ok(serde_json::to_vec(&review)?)
}

fn digest(i: usize) -> String {
    format!("sha256:{:064x}", 0xfeed_0000_usize + i)
}

fn image(i: usize) -> String {
    format!("registry.example.com/team/new@{}", digest(i))
}

/// The image's scan status in a response review (`scan-statuses` annotation).
fn scan_status(review: &Value) -> String {
    let statuses = review["response"]["auditAnnotations"]["scan-statuses"]
        .as_str()
        .unwrap_or_default();
    serde_json::from_str::<Value>(statuses)
        .ok()
        .and_then(|v| v["app"].as_str().map(str::to_string))
        .unwrap_or_default()
}

fn upstream_requests(emu: &Emulator) -> u64 {
    emu.counters().values().sum()
}

/// Issue 13: 300 concurrent reviews of one unknown digest spread over three replicas cost one
/// image lookup and one scan request upstream.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_hundred_concurrent_reviews_across_three_replicas_make_one_lookup() -> TestResult {
    let _serial = SERIAL.lock().await;
    let redis = redis()?;
    let emu = emulator(Emulator::builder()).await?;
    let replicas = Arc::new(fleet(&emu, &cache(&redis, 3000), 480).await?);
    let answers: Vec<_> = stream::iter(0..300)
        .map(|i| {
            let replicas = replicas.clone();
            async move { replicas[i % 3].review(&image(0)).await }
        })
        .buffer_unordered(300)
        .collect()
        .await;
    for answer in answers {
        let (status, review) = answer?;
        assert_eq!(status, 200, "{review}");
        assert_eq!(scan_status(&review), "pending", "{review}");
    }
    assert_eq!(emu.count(Endpoint::ImageSummary), 1, "{:?}", emu.counters());
    assert_eq!(emu.count(Endpoint::Search), 0, "{:?}", emu.counters());
    assert_eq!(emu.count(Endpoint::Scan), 1, "{:?}", emu.counters());
    Ok(())
}

/// Issue 13: 600 distinct digests across three replicas with a budget of 100 requests per hour:
/// at most 100 requests reach Lacework, and the rest answer `unavailable` naming the budget.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn six_hundred_digests_across_three_replicas_spend_one_budget_of_100() -> TestResult {
    let _serial = SERIAL.lock().await;
    let redis = redis()?;
    let emu = emulator(Emulator::builder()).await?;
    let replicas = Arc::new(fleet(&emu, &cache(&redis, 3000), 100).await?);
    let answers: Vec<_> = stream::iter(0..600)
        .map(|i| {
            let replicas = replicas.clone();
            async move { replicas[i % 3].review(&image(1000 + i)).await }
        })
        .buffer_unordered(60)
        .collect()
        .await;
    let (mut pending, mut refused) = (0, 0);
    for answer in answers {
        let (status, review) = answer?;
        assert_eq!(status, 200, "{review}");
        match scan_status(&review).as_str() {
            "pending" => pending += 1,
            // Lacework could not be asked: the failure policy decides, and the reason names the
            // budget (the fleet's, or once it is spent, the review's share of it).
            "unavailable" | "error:scan" => {
                assert!(
                    review["response"]["status"]["message"]
                        .to_string()
                        .contains("budget"),
                    "{review}"
                );
                refused += 1;
            }
            other => panic!("unexpected scan status {other}: {review}"),
        }
    }
    let sent = upstream_requests(&emu);
    assert!(sent <= 100, "{sent} requests: {:?}", emu.counters());
    assert!(
        pending > 0 && refused > 0,
        "{pending} pending, {refused} refused"
    );
    assert_eq!(pending + refused, 600);
    // Every looked-up digest cost an image summary and a scan request, plus one token per
    // replica: the whole budget went to the fleet's work, none to duplicates.
    assert!(sent >= 90, "{sent} requests: {:?}", emu.counters());
    Ok(())
}

/// Issue 13: Redis killed in the middle of a load and started again: no review fails, the
/// replicas fall back to their own cache and budget (metrics show it), and use Redis again
/// once it is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_killed_mid_load_fails_no_review_and_shows_in_the_metrics() -> TestResult {
    let _serial = SERIAL.lock().await;
    let mut redis = redis()?;
    // Room for every lookup: this test is about Redis, not the budget.
    let emu = emulator(Emulator::builder().rate_limit(5000)).await?;
    let replicas = Arc::new(fleet(&emu, &cache(&redis, 3000), 5000).await?);
    let batch = |from: usize| {
        // 60 reviews of 60 new digests, 20 at a time.
        let replicas = replicas.clone();
        async move {
            stream::iter(from..from + 60)
                .map(|i| {
                    let replicas = replicas.clone();
                    async move { replicas[i % 3].review(&image(5000 + i)).await }
                })
                .buffer_unordered(20)
                .collect::<Vec<_>>()
                .await
        }
    };
    let mut answers = batch(0).await;
    redis.kill();
    answers.extend(batch(60).await);
    redis.restart()?;
    answers.extend(batch(120).await);
    // Back in use within seconds (a replica leaves Redis alone for a second after a failure,
    // and reconnects): new answers are stored in the new, empty Redis.
    let mut from = 180;
    while !redis
        .command("KEYS helios:scan:*")?
        .contains("helios:scan:")
    {
        assert!(from < 180 + 60 * 10, "Redis not used again");
        tokio::time::sleep(Duration::from_millis(500)).await;
        answers.extend(batch(from).await);
        from += 60;
    }
    for answer in answers {
        let (status, review) = answer?;
        assert_eq!(status, 200, "{review}");
        assert!(review["response"]["uid"].as_str().is_some(), "{review}");
        assert_eq!(
            scan_status(&review),
            "pending",
            "{review} {:?}",
            emu.counters()
        );
    }
    let text = replicas[0].metrics.encode();
    let fallbacks: f64 = text
        .lines()
        .filter(|l| l.starts_with("helios_redis_fallbacks_total{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    assert!(fallbacks > 0.0, "{text}");
    assert!(text.contains("helios_redis_up 1"), "{text}");
    Ok(())
}

/// Issue 13: the replica holding a lookup's lease dies mid-lookup; another replica takes the
/// lookup over once the lease expires, within its deadline.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_lease_holder_is_replaced_after_the_lease_expires() -> TestResult {
    let _serial = SERIAL.lock().await;
    let redis = redis()?;
    let emu = emulator(Emulator::builder()).await?;
    let config = cache(&redis, 500);
    let replica = |emu: &Emulator| -> helios_core::Result<Arc<CachedSource<LaceworkSource>>> {
        Ok(Arc::new(
            config.lacework_source(client(emu, 480)?, NoScan::RequestScan)?,
        ))
    };
    let (holder, other) = (replica(&emu)?, replica(&emu)?);
    let img = ImageRef::parse(&image(9000))?;
    let within = |ms| Lookup {
        deadline: Some(Instant::now() + Duration::from_millis(ms)),
        dry_run: false,
    };

    // The holder's image lookup hangs for 5 s; it dies while holding the lease.
    emu.inject(Fault::once(
        Endpoint::ImageSummary,
        FaultKind::Slow { delay_ms: 5000 },
    ));
    let task = {
        let (holder, img) = (holder.clone(), img.clone());
        tokio::spawn(async move { holder.scan(&img, within(10_000)).await })
    };
    let started = Instant::now();
    while !redis
        .command("KEYS helios:lease:*")?
        .contains("helios:lease:")
        || emu.count(Endpoint::ImageSummary) == 0
    {
        assert!(started.elapsed() < Duration::from_secs(5), "no lease taken");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    task.abort();

    let report = other.scan(&img, within(4000)).await?;
    assert_eq!(report.status, ScanStatus::Pending, "{report:?}");
    assert_eq!(emu.count(Endpoint::ImageSummary), 2, "{:?}", emu.counters());
    assert_eq!(emu.count(Endpoint::Scan), 1, "{:?}", emu.counters());
    Ok(())
}

/// A corrupted or foreign entry under a scan key is never used: it is ignored, the image is
/// looked up again, and the entry is overwritten with a valid one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupted_entry_is_ignored_and_overwritten() -> TestResult {
    let _serial = SERIAL.lock().await;
    let redis = redis()?;
    let emu = emulator(Emulator::builder()).await?;
    let config = cache(&redis, 3000);
    let img = ImageRef::parse(&image(9100))?;
    let lookup = || Lookup {
        deadline: Some(Instant::now() + Duration::from_secs(5)),
        dry_run: false,
    };
    let first = config.lacework_source(client(&emu, 480)?, NoScan::RequestScan)?;
    assert_eq!(
        first.scan(&img, lookup()).await?.status,
        ScanStatus::Pending
    );
    // The entry is written in the background once the lookup is done.
    let started = Instant::now();
    let key = loop {
        let keys = redis.command("KEYS helios:scan:*")?;
        if let Some(key) = keys.lines().find(|l| l.starts_with("helios:scan:")) {
            break key.to_string();
        }
        if started.elapsed() > Duration::from_secs(3) {
            return Err(format!("no scan key: {keys}").into());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };

    for garbage in [
        "not json".to_string(),
        // Well-formed, but written for another key.
        serde_json::json!({
            "schema": SCHEMA,
            "key": "helios:scan:other",
            "report": ScanReport::completed("lacework", None, None, Vec::new()),
        })
        .to_string(),
    ] {
        let before = emu.count(Endpoint::ImageSummary);
        let reply = redis.command(&format!("SET {key} '{garbage}' PX 60000"))?;
        assert!(reply.starts_with("+OK"), "{reply}");
        // A new replica (empty L1) must not trust it.
        let next = config.lacework_source(client(&emu, 480)?, NoScan::RequestScan)?;
        let report = next.scan(&img, lookup()).await?;
        assert_ne!(report.status, ScanStatus::Completed, "{report:?}");
        assert_eq!(
            emu.count(Endpoint::ImageSummary),
            before + 1,
            "{garbage}: {:?}",
            emu.counters()
        );
        // Overwritten in the background once the lookup is done.
        let started = Instant::now();
        loop {
            let stored = redis.command(&format!("GET {key}"))?;
            if stored.contains(SCHEMA) && stored.contains(&key) {
                break;
            }
            assert!(started.elapsed() < Duration::from_secs(3), "{stored}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    Ok(())
}
