//! Issue 16: hostile input. One review must not spend the Lacework budget of every other review,
//! hold the webhook past its deadline, or let a policy take the process down.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use helios_core::admission::{
    AdmissionController, AdmissionReview, ControllerConfig, FailureKind, Verdict,
};
use helios_core::image::ImageRef;
use helios_core::policy::{EmbeddedEvaluator, PolicyEvaluator, PolicyInput, PolicySet};
use helios_core::scan::lacework::{LaceworkClient, LaceworkSource, NoScan};
use helios_core::scan::{CachedSource, Lookup, ScanReport, ScanSource};
use helios_core::{Error, Result};
use helios_lacework_emulator::{Emulator, Endpoint};
use serde_json::{Value, json};

/// A scan source answering a clean completed scan for every image, counting lookups.
#[derive(Default)]
struct Counting {
    lookups: AtomicUsize,
}

#[async_trait]
impl ScanSource for Counting {
    async fn scan(&self, _image: &ImageRef, _lookup: Lookup) -> Result<ScanReport> {
        self.lookups.fetch_add(1, Ordering::SeqCst);
        Ok(ScanReport::completed("file", None, None, Vec::new()))
    }
}

fn fail(e: impl ToString) -> Error {
    Error::InvalidInput {
        what: "test".into(),
        reason: e.to_string(),
    }
}

/// A Pod review in namespace `ns` by `user` with one container per image.
fn pod_review(ns: &str, user: &str, images: &[String]) -> Result<AdmissionReview> {
    let containers: Vec<Value> = images
        .iter()
        .enumerate()
        .map(|(i, image)| json!({"name": format!("c{i}"), "image": image}))
        .collect();
    let review = json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": "u-1",
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "namespace": ns,
            "name": "p",
            "operation": "CREATE",
            "userInfo": {"username": user},
            "object": {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
                       "spec": {"containers": containers}}
        }
    });
    AdmissionReview::from_slice(&serde_json::to_vec(&review).map_err(fail)?)
}

fn digest(i: usize) -> String {
    format!("sha256:{i:064x}")
}

fn message(review: &AdmissionReview) -> String {
    review
        .response
        .as_ref()
        .and_then(|r| r.result.as_ref())
        .and_then(|s| s.message.clone())
        .unwrap_or_default()
}

fn controller(
    source: Arc<dyn ScanSource>,
    config: ControllerConfig,
) -> Result<AdmissionController> {
    Ok(AdmissionController::new(
        source,
        Arc::new(EmbeddedEvaluator::default_policy()?),
        config,
    ))
}

#[tokio::test]
async fn duplicate_images_are_looked_up_once() -> Result<()> {
    let source = Arc::new(Counting::default());
    let c = controller(source.clone(), ControllerConfig::default())?;
    // The same image written three ways, ten times over.
    let images: Vec<String> = (0..30)
        .map(|i| match i % 3 {
            0 => "nginx".to_string(),
            1 => "docker.io/library/nginx".to_string(),
            _ => "docker.io/library/nginx:latest".to_string(),
        })
        .collect();
    let (review, outcome) = c.review(pod_review("shop", "alice", &images)?).await?;
    assert_eq!(source.lookups.load(Ordering::SeqCst), 1);
    assert_eq!(outcome.verdict, Verdict::Allow, "{}", message(&review));
    assert_eq!(outcome.images.len(), 30);
    Ok(())
}

#[tokio::test]
async fn images_and_containers_past_the_limits_are_failures_for_the_failure_policy() -> Result<()> {
    let source = Arc::new(Counting::default());
    let mut config = ControllerConfig::default();
    config.limits.max_images = 5;
    config.limits.max_containers = 8;
    let c = controller(source.clone(), config)?;
    // 10 containers of 10 distinct images: 8 checked at most, of which 5 images looked up.
    let images: Vec<String> = (0..10)
        .map(|i| format!("registry.example.com/team/app@{}", digest(i)))
        .collect();
    let (review, outcome) = c.review(pod_review("shop", "alice", &images)?).await?;
    assert_eq!(source.lookups.load(Ordering::SeqCst), 5);
    let limited = outcome
        .failures
        .iter()
        .filter(|k| **k == FailureKind::Limit)
        .count();
    assert_eq!(limited, 5, "{:?}", outcome.failures);
    assert_eq!(outcome.verdict, Verdict::FailClosed);
    let text = message(&review);
    assert!(text.contains("admission.limits.max_images"), "{text}");
    assert!(
        text.contains("could not check 2 containers")
            && text.contains("admission.limits.max_containers"),
        "{text}"
    );
    Ok(())
}

#[tokio::test]
async fn fifty_thousand_containers_answer_with_one_line_per_limit() -> Result<()> {
    let source = Arc::new(Counting::default());
    let c = controller(source.clone(), ControllerConfig::default())?;
    let images: Vec<String> = (0..50_000).map(|_| "nginx:1.25".to_string()).collect();
    let (review, outcome) = c.review(pod_review("shop", "alice", &images)?).await?;
    assert_eq!(source.lookups.load(Ordering::SeqCst), 1);
    assert_eq!(outcome.verdict, Verdict::FailClosed);
    let text = message(&review);
    assert!(
        text.contains("could not check 49744 containers") && text.contains("50000 containers"),
        "{text}"
    );
    Ok(())
}

/// Emulator images: every digest of the emulator's default registry has a scan.
fn lacework_images(n: usize, offset: usize) -> Vec<String> {
    (0..n)
        .map(|i| format!("registry.example.com/team/app@{}", digest(offset + i + 1)))
        .collect()
}

#[tokio::test]
async fn one_review_spends_only_its_share_of_the_lacework_budget() -> Result<()> {
    let emu = Emulator::builder().start().await.map_err(fail)?;
    let client = LaceworkClient::builder()
        .account(emu.url())
        .api_key(emu.key_id())
        .api_secret(emu.secret())
        .image_id_fallback(false)
        .look_back(Duration::from_secs(7 * 24 * 3600))
        .build()?;
    let source = Arc::new(CachedSource::new(LaceworkSource::new(client, NoScan::None)));
    let mut config = ControllerConfig::default();
    config.limits.max_images = 1000;
    config.limits.max_containers = 1000;
    config.deadline_ms = 20_000;
    let c = controller(source, config)?;

    // A hostile dry-run review of 600 distinct images.
    let (review, outcome) = c
        .review(pod_review("shop", "mallory", &lacework_images(600, 0))?)
        .await?;
    let spent: u64 = [Endpoint::Tokens, Endpoint::Search, Endpoint::SearchPage]
        .iter()
        .map(|e| emu.count(*e))
        .sum();
    assert!(spent <= 24, "one review spent {spent} requests");
    // The images past the share are failures (not `not_found` scans for the policy).
    let failed = outcome
        .failures
        .iter()
        .filter(|k| **k == FailureKind::Scan)
        .count();
    assert!(failed >= 570, "{failed} scan failures");
    let text = review
        .response
        .as_ref()
        .and_then(|r| r.audit_annotations.get("errors").cloned())
        .unwrap_or_default();
    assert!(text.contains("lacework_share_per_review"), "{text}");

    // Another team's review still gets its images looked up, also those the hostile review
    // was refused (its refusals are not cached for others).
    let mut images = lacework_images(2, 1000);
    images.extend(lacework_images(600, 0).into_iter().rev().take(2));
    let (review, outcome) = c.review(pod_review("pay", "bob", &images)?).await?;
    assert!(
        !outcome.failures.contains(&FailureKind::Scan),
        "{}",
        message(&review)
    );
    Ok(())
}

/// A policy that takes a few milliseconds per container, whatever the input.
const SLOW_POLICY: &str = r#"package helios
deny contains "slow" if {
    count([x | some x in numbers.range(1, 30000); x % 7 == 0]) < 0
}
"#;

fn slow_evaluator(time_limit: Duration) -> Result<EmbeddedEvaluator> {
    let mut set = PolicySet::default();
    set.add_module("slow.rego", SLOW_POLICY);
    EmbeddedEvaluator::builder()
        .policies(set)
        .time_limit(time_limit)
        .build()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_deadline_holds_when_evaluation_is_heavy() -> Result<()> {
    let config = ControllerConfig {
        deadline_ms: 300,
        ..ControllerConfig::default()
    };
    let c = AdmissionController::new(
        Arc::new(Counting::default()),
        Arc::new(slow_evaluator(Duration::from_secs(5))?),
        config,
    );
    let images: Vec<String> = (0..256).map(|_| "nginx:1.25".to_string()).collect();
    let started = Instant::now();
    let (review, outcome) = c.review(pod_review("shop", "alice", &images)?).await?;
    let took = started.elapsed();
    assert!(
        outcome.failures.contains(&FailureKind::Deadline),
        "{:?} in {took:?}",
        outcome.failures
    );
    assert_eq!(outcome.verdict, Verdict::FailClosed);
    assert!(message(&review).contains("review deadline of 300 ms"));
    // The answer goes out at the deadline, not after the 256 evaluations (each a few ms).
    assert!(took < Duration::from_millis(300 + 1500), "took {took:?}");
    Ok(())
}

/// A policy whose builtin builds a value so large that regorus's timer, not consulted inside
/// builtins, would let it run far past the limit.
const RUNAWAY_POLICY: &str = r#"package helios
deny contains "big" if count(numbers.range(1, 10000000)) > 0
"#;

#[tokio::test]
async fn a_runaway_builtin_is_a_policy_timeout() -> Result<()> {
    let mut set = PolicySet::default();
    set.add_module("runaway.rego", RUNAWAY_POLICY);
    let evaluator = EmbeddedEvaluator::builder()
        .policies(set)
        .time_limit(Duration::from_millis(20))
        .build()?;
    let image = ImageRef::parse("nginx:1.25")?;
    let scan = ScanReport::completed("file", None, None, Vec::new());
    let input = PolicyInput::for_ci(image, scan, None);
    let err = evaluator.evaluate(&input).await.err();
    assert!(matches!(err, Some(Error::PolicyTimeout { .. })), "{err:?}");
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Size caps on every read.

/// A hostile HTTP/1.1 server on loopback: answers each request with `answer(path)` — status,
/// extra headers and body — and counts requests.
async fn hostile_server(
    answer: impl Fn(&str) -> (u16, String, Vec<u8>) + Send + Sync + 'static,
) -> Result<(String, Arc<AtomicUsize>)> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(fail)?;
    let url = format!("http://{}", listener.local_addr().map_err(fail)?);
    let count = Arc::new(AtomicUsize::new(0));
    let (answer, counter) = (Arc::new(answer), count.clone());
    tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            let (answer, counter) = (answer.clone(), counter.clone());
            tokio::spawn(async move {
                loop {
                    // Read one request: headers, then the announced body.
                    let mut buf = Vec::new();
                    let mut byte = [0u8; 1];
                    while !buf.ends_with(b"\r\n\r\n") {
                        match conn.read(&mut byte).await {
                            Ok(1) => buf.push(byte[0]),
                            _ => return,
                        }
                    }
                    let head = String::from_utf8_lossy(&buf).to_string();
                    let path = head.split(' ').nth(1).unwrap_or("/").to_string();
                    let length: usize = head
                        .lines()
                        .find_map(|l| {
                            let (k, v) = l.split_once(':')?;
                            k.eq_ignore_ascii_case("content-length")
                                .then(|| v.trim().parse().ok())?
                        })
                        .unwrap_or(0);
                    let mut body = vec![0u8; length];
                    if conn.read_exact(&mut body).await.is_err() {
                        return;
                    }
                    counter.fetch_add(1, Ordering::SeqCst);
                    let (status, headers, body) = answer(&path);
                    let head = format!(
                        "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\n{headers}\r\n",
                        body.len()
                    );
                    if conn.write_all(head.as_bytes()).await.is_err()
                        || conn.write_all(&body).await.is_err()
                    {
                        return;
                    }
                }
            });
        }
    });
    Ok((url, count))
}

/// A Lacework whose token endpoint works and whose search answers `search(path)`.
async fn hostile_lacework(
    search: impl Fn(&str) -> Vec<u8> + Send + Sync + 'static,
) -> Result<(LaceworkClient, Arc<AtomicUsize>)> {
    let (url, count) = hostile_server(move |path| {
        if path.starts_with("/api/v2/access/tokens") {
            let body = json!({"token": "t0k3n", "expiresAt": "2099-01-01T00:00:00Z"});
            (201, String::new(), body.to_string().into_bytes())
        } else {
            (200, String::new(), search(path))
        }
    })
    .await?;
    let client = LaceworkClient::builder()
        .account(url)
        .api_key("KEY")
        .api_secret("SECRET")
        .image_id_fallback(false)
        .look_back(Duration::from_secs(7 * 24 * 3600))
        .retries(0, Duration::from_millis(10), Duration::from_millis(10))
        .build()?;
    Ok((client, count))
}

const IMAGE_A: &str = "registry.example.com/team/app@sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";

#[tokio::test]
async fn a_repeated_next_page_is_an_error_not_a_spent_budget() -> Result<()> {
    let (client, count) = hostile_lacework(|_| {
        // Every page, the first included, says the next page is the same URL.
        json!({"data": [], "paging": {"urls": {"nextPage": "/api/v2/Vulnerabilities/Containers/search/again"}}})
            .to_string()
            .into_bytes()
    })
    .await?;
    let err = client
        .find_scan(&ImageRef::parse(IMAGE_A)?, None)
        .await
        .err();
    let text = err.map(|e| e.to_string()).unwrap_or_default();
    assert!(
        text.contains("nextPage pointed to a page already read"),
        "{text}"
    );
    // Token, search, the page once, then the repeat is noticed.
    assert!(
        count.load(Ordering::SeqCst) <= 4,
        "{} requests",
        count.load(Ordering::SeqCst)
    );
    Ok(())
}

#[tokio::test]
async fn an_oversized_lacework_page_is_refused() -> Result<()> {
    // 40 MiB of whitespace-padded JSON: past the 32 MiB cap.
    let (client, _) = hostile_lacework(|_| {
        let mut body = vec![b' '; 40 * 1024 * 1024];
        body.extend_from_slice(b"{\"data\": []}");
        body
    })
    .await?;
    let err = client
        .find_scan(&ImageRef::parse(IMAGE_A)?, None)
        .await
        .err();
    let text = err.map(|e| e.to_string()).unwrap_or_default();
    assert!(text.contains("larger than 32 MiB"), "{text}");
    Ok(())
}

#[tokio::test]
async fn an_oversized_opa_answer_is_refused() -> Result<()> {
    let (url, _) = hostile_server(|_| {
        let mut body = vec![b' '; 20 * 1024 * 1024];
        body.extend_from_slice(b"{\"result\": {}}");
        (200, String::new(), body)
    })
    .await?;
    let opa = helios_core::policy::OpaEvaluator::builder(url).build()?;
    let input = PolicyInput::for_ci(
        ImageRef::parse("nginx:1.25")?,
        ScanReport::completed("file", None, None, Vec::new()),
        None,
    );
    let err = opa.evaluate(&input).await.err();
    let text = err.map(|e| e.to_string()).unwrap_or_default();
    assert!(text.contains("larger than 16 MiB"), "{text}");
    Ok(())
}

#[test]
fn report_fields_are_capped() -> Result<()> {
    let long = "X".repeat(10 * 1024 * 1024);
    let scan = json!({"data": [{
        "evalGuid": "e1",
        "evalCtx": {"image_info": {"digest": "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"}},
        "featureKey": {"name": long, "version": "1", "namespace": "debian:12"},
        "severity": "High", "status": "VULNERABLE", "vulnId": long
    }]});
    let report = ScanReport::from_scan_json(&scan.to_string(), None)?;
    let v = report
        .vulnerabilities
        .first()
        .ok_or_else(|| fail("no finding"))?;
    assert!(v.id.len() <= 256 && v.id.ends_with('…'), "{}", v.id.len());
    assert!(v.package.name.len() <= 256);
    Ok(())
}

#[test]
fn scan_files_must_be_regular_and_bounded() -> Result<()> {
    let err = ScanReport::from_scan_file(std::path::Path::new("/dev/zero"), None).err();
    let text = err.map(|e| e.to_string()).unwrap_or_default();
    assert!(text.contains("not a regular file"), "{text}");
    Ok(())
}

#[tokio::test]
async fn scan_dir_skips_symlinks_out_of_it_and_never_quotes_files() -> Result<()> {
    use helios_core::scan::DirSource;
    let outside = tempfile::tempdir().map_err(fail)?;
    let dir = tempfile::tempdir().map_err(fail)?;
    let secret = outside.path().join("secret.json");
    let rows = |d: &str| {
        json!({"data": [{"evalGuid": "e", "evalCtx": {"image_info": {"digest": d}},
            "featureKey": {"name": "zlib", "version": "1"}, "severity": "Low",
            "status": "VULNERABLE", "vulnId": "CVE-1"}]})
        .to_string()
    };
    let b = format!("sha256:{}", "b".repeat(64));
    std::fs::write(&secret, rows(&b)).map_err(fail)?;
    std::os::unix::fs::symlink(&secret, dir.path().join("link.json")).map_err(fail)?;
    // A link that stays inside (as in a ConfigMap volume) is followed.
    let c = format!("sha256:{}", "c".repeat(64));
    std::fs::create_dir(dir.path().join("..data")).map_err(fail)?;
    std::fs::write(dir.path().join("..data/inner.json"), rows(&c)).map_err(fail)?;
    std::os::unix::fs::symlink("..data/inner.json", dir.path().join("inner.json")).map_err(fail)?;
    // A malformed file named for its digest: its contents must not reach the user.
    let d = "d".repeat(64);
    std::fs::write(
        dir.path().join(format!("sha256-{d}.json")),
        r#"{"status": "completed", "source": "TOP-SECRET-VALUE"}"#,
    )
    .map_err(fail)?;

    let source = DirSource::open(dir.path())?;
    let digests = source.digests();
    assert!(!digests.contains(&b), "{digests:?}");
    assert!(digests.contains(&c), "{digests:?}");
    let followed = DirSource::open(dir.path())?.allow_outside_symlinks(true)?;
    assert!(followed.digests().contains(&b));

    let c = controller(Arc::new(source), ControllerConfig::default())?;
    let image = format!("registry.example.com/team/app@sha256:{d}");
    let (review, outcome) = c.review(pod_review("shop", "alice", &[image])?).await?;
    assert_eq!(outcome.verdict, Verdict::FailClosed);
    let text = message(&review);
    assert!(
        text.contains("unreadable or malformed") && !text.contains("TOP-SECRET"),
        "{text}"
    );
    Ok(())
}
