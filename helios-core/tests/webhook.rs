//! End to end over real TLS: reviews posted to the HTTPS webhook server (feature `webhook`).
#![cfg(feature = "webhook")]

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use helios_core::admission::server::{Metrics, ServerOptions, serve};
use helios_core::admission::{AdmissionController, ControllerConfig, FailurePolicy, Mode};
use helios_core::image::ImageRef;
use helios_core::policy::EmbeddedEvaluator;
use helios_core::scan::lacework::{LaceworkClient, LaceworkSource, NoScan};
use helios_core::scan::{CachedSource, Lookup, ScanReport, ScanSource};
use helios_core::{Error, Result};
use helios_lacework_emulator::{Emulator, Endpoint, Fault, FaultKind};
use serde_json::Value;

type TestResult = std::result::Result<(), Box<dyn std::error::Error>>;

const CRITICAL_SCAN: &str = r#"{"data": [{
    "vulnId": "CVE-2024-0001", "severity": "Critical", "status": "VULNERABLE",
    "featureKey": {"name": "openssl", "version": "3.0.1", "namespace": "debian:12"},
    "fixInfo": {"fix_available": 1, "fixed_version": "3.0.13"}
}]}"#;

/// Scans by repository: `team/critical` has a critical CVE, anything else is clean; or, when
/// `down`, the scan service is unreachable.
struct Source {
    scans: BTreeMap<String, ScanReport>,
    down: bool,
}

impl Source {
    fn new(down: bool) -> Result<Arc<Self>> {
        let mut scans = BTreeMap::new();
        scans.insert(
            "team/critical".to_string(),
            ScanReport::from_scan_json(CRITICAL_SCAN, None)?,
        );
        Ok(Arc::new(Source { scans, down }))
    }
}

#[async_trait]
impl ScanSource for Source {
    async fn scan(&self, image: &ImageRef, _lookup: Lookup) -> Result<ScanReport> {
        if self.down {
            return Err(Error::unavailable("Lacework", "connection refused"));
        }
        Ok(self
            .scans
            .get(&image.repository)
            .cloned()
            .unwrap_or_else(|| ScanReport::completed("file", None, None, Vec::new())))
    }
}

struct Server {
    base: String,
    ca: Vec<u8>,
    client: reqwest::Client,
    _dir: tempfile::TempDir,
}

fn cert(dir: &Path) -> std::result::Result<Vec<u8>, Box<dyn std::error::Error>> {
    let key = rcgen::generate_simple_self_signed(vec!["localhost".to_string()])?;
    let pem = key.cert.pem();
    std::fs::write(dir.join("tls.crt"), &pem)?;
    std::fs::write(dir.join("tls.key"), key.signing_key.serialize_pem())?;
    Ok(pem.into_bytes())
}

fn client(ca: &[u8]) -> reqwest::Result<reqwest::Client> {
    reqwest::Client::builder()
        .use_rustls_tls()
        .add_root_certificate(reqwest::Certificate::from_pem(ca)?)
        // The port of the URL is used; only the host is pinned (no IPv6 lookup surprises).
        .resolve("localhost", std::net::SocketAddr::from(([127, 0, 0, 1], 0)))
        .timeout(Duration::from_secs(10))
        .build()
}

async fn start(
    source: Arc<dyn ScanSource>,
    config: ControllerConfig,
) -> std::result::Result<(Server, Arc<Metrics>, std::path::PathBuf), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let ca = cert(dir.path())?;
    let controller = AdmissionController::new(
        source,
        Arc::new(EmbeddedEvaluator::default_policy()?),
        config,
    );
    let metrics = Arc::new(Metrics::new());
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let _task = serve(
        listener,
        controller,
        ServerOptions {
            tls_cert: dir.path().join("tls.crt"),
            tls_key: dir.path().join("tls.key"),
            reload_interval: Duration::from_millis(50),
            shutdown_delay: Duration::ZERO,
            grace: Duration::from_secs(1),
            limits: Default::default(),
            decision_logs: None,
        },
        metrics.clone(),
        futures_util::stream::pending(),
    )
    .await?;
    let path = dir.path().to_path_buf();
    Ok((
        Server {
            base: format!("https://localhost:{}", addr.port()),
            client: client(&ca)?,
            ca,
            _dir: dir,
        },
        metrics,
        path,
    ))
}

fn fixture(name: &str) -> std::io::Result<Vec<u8>> {
    std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../tests/fixtures/admission")
            .join(name),
    )
}

impl Server {
    async fn post(&self, body: Vec<u8>) -> reqwest::Result<(u16, String)> {
        let resp = self
            .client
            .post(format!("{}/validate", self.base))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await?;
        Ok((resp.status().as_u16(), resp.text().await?))
    }

    async fn review(&self, name: &str) -> std::result::Result<Value, Box<dyn std::error::Error>> {
        let (status, body) = self.post(fixture(name)?).await?;
        assert_eq!(status, 200, "{body}");
        Ok(serde_json::from_str(&body)?)
    }
}

const CRIT: &str = "registry.example.com/team/critical:2.0";

#[tokio::test]
async fn enforce_denies_with_403_naming_image_and_cve() -> TestResult {
    let (server, _, _) = start(Source::new(false)?, ControllerConfig::default()).await?;
    let out = server.review("deployment-create.json").await?;
    let resp = &out["response"];
    assert_eq!(resp["allowed"], false);
    assert_eq!(resp["uid"], "00000000-0000-0000-0000-000000000002");
    assert_eq!(resp["status"]["code"], 403);
    let msg = resp["status"]["message"].as_str().unwrap_or_default();
    assert!(msg.contains(CRIT) && msg.contains("CVE-2024-0001"), "{msg}");
    assert!(resp.get("patch").is_none());

    // A clean workload is allowed.
    let out = server.review("daemonset-create.json").await?;
    assert_eq!(out["response"]["allowed"], true);
    Ok(())
}

#[tokio::test]
async fn warn_allows_with_warnings_and_audit_with_annotations() -> TestResult {
    let warn = ControllerConfig {
        mode: Mode::Warn,
        ..Default::default()
    };
    let (server, _, _) = start(Source::new(false)?, warn).await?;
    let out = server.review("deployment-create.json").await?;
    assert_eq!(out["response"]["allowed"], true);
    let warnings = out["response"]["warnings"].to_string();
    assert!(
        warnings.contains("CVE-2024-0001") && warnings.contains(CRIT),
        "{warnings}"
    );

    let audit = ControllerConfig {
        mode: Mode::Audit,
        ..Default::default()
    };
    let (server, _, _) = start(Source::new(false)?, audit).await?;
    let out = server.review("deployment-create.json").await?;
    let resp = &out["response"];
    assert_eq!(resp["allowed"], true);
    assert!(resp.get("warnings").is_none());
    assert_eq!(resp["auditAnnotations"]["decision"], "would-deny");
    assert_eq!(resp["auditAnnotations"]["policy-id"], "helios.default");
    Ok(())
}

#[tokio::test]
async fn scan_service_down_fails_closed_or_open() -> TestResult {
    let (server, metrics, _) = start(Source::new(true)?, ControllerConfig::default()).await?;
    let out = server.review("replicaset-create.json").await?;
    assert_eq!(out["response"]["allowed"], false);
    assert!(
        out["response"]["status"]["message"]
            .to_string()
            .contains("Lacework is unavailable")
    );
    assert!(
        metrics
            .encode()
            .contains(r#"helios_admission_backend_errors_total{kind="scan"} 1"#)
    );

    let open = ControllerConfig {
        failure_policy: FailurePolicy::Open,
        ..Default::default()
    };
    let (server, _, _) = start(Source::new(true)?, open).await?;
    let out = server.review("replicaset-create.json").await?;
    assert_eq!(out["response"]["allowed"], true);
    assert!(
        out["response"]["warnings"]
            .to_string()
            .contains("Lacework is unavailable")
    );
    Ok(())
}

#[tokio::test]
async fn oversize_is_413_garbage_is_400_and_the_server_keeps_serving() -> TestResult {
    let (server, _, _) = start(Source::new(false)?, ControllerConfig::default()).await?;
    let (status, _) = server.post(vec![b' '; 4 * 1024 * 1024]).await?;
    assert_eq!(status, 413);
    let (status, body) = server.post(b"{not json".to_vec()).await?;
    assert_eq!(status, 400);
    assert!(body.contains("invalid admission review"), "{body}");
    let (status, body) = server
        .post(br#"{"kind":"AdmissionReview","apiVersion":"admission.k8s.io/v1"}"#.to_vec())
        .await?;
    assert_eq!(status, 400);
    assert!(body.contains("request: missing"), "{body}");
    // Still serving, health and metrics included.
    let out = server.review("deployment-create.json").await?;
    assert_eq!(out["response"]["allowed"], false);
    for path in ["/healthz", "/readyz"] {
        let resp = server
            .client
            .get(format!("{}{path}", server.base))
            .send()
            .await?;
        assert_eq!(resp.status().as_u16(), 200, "{path}");
    }
    let text = server
        .client
        .get(format!("{}/metrics", server.base))
        .send()
        .await?
        .text()
        .await?;
    assert!(
        text.contains(r#"helios_admission_reviews_total{decision="deny",mode="enforce"} 1"#),
        "{text}"
    );
    assert!(
        text.contains(r#"helios_admission_backend_errors_total{kind="invalid_review"} 2"#),
        "{text}"
    );
    assert!(
        text.contains("helios_admission_review_duration_seconds_bucket"),
        "{text}"
    );
    Ok(())
}

#[tokio::test]
async fn certificate_is_reloaded_when_the_files_change() -> TestResult {
    let (server, _, dir) = start(Source::new(false)?, ControllerConfig::default()).await?;
    let new_ca = cert(&dir)?;
    let fresh = client(&new_ca)?;
    // The watcher polls every 50 ms; give it a generous margin on a loaded machine.
    let mut served_new = false;
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(50)).await;
        if fresh
            .get(format!("{}/healthz", server.base))
            .send()
            .await
            .is_ok()
        {
            served_new = true;
            break;
        }
    }
    assert!(served_new, "the rotated certificate was never served");
    // A new client that trusts only the old certificate is now refused.
    let old_only = client(&server.ca)?;
    assert!(
        old_only
            .get(format!("{}/healthz", server.base))
            .send()
            .await
            .is_err()
    );

    // A broken rotation (garbage files) keeps the current certificate.
    std::fs::write(dir.join("tls.crt"), "not a certificate")?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        fresh
            .get(format!("{}/healthz", server.base))
            .send()
            .await
            .is_ok()
    );
    Ok(())
}

/// A Deployment review running `image`, from the project fixture.
fn review_with_image(image: &str) -> std::result::Result<Vec<u8>, Box<dyn std::error::Error>> {
    let mut review: Value = serde_json::from_slice(&fixture("deployment-create.json")?)?;
    review["request"]["object"]["spec"]["template"]["spec"]["containers"][0]["image"] =
        Value::String(image.to_string());
    Ok(serde_json::to_vec(&review)?)
}

fn lacework(emu: &Emulator) -> Result<Arc<dyn ScanSource>> {
    let client = LaceworkClient::builder()
        .account(emu.url())
        .api_key(emu.key_id())
        .api_secret(emu.secret())
        .retries(1, Duration::from_millis(10), Duration::from_millis(20))
        .build()?;
    Ok(Arc::new(CachedSource::new(LaceworkSource::new(
        client,
        NoScan::RequestScan,
    ))))
}

/// The whole path with the Lacework source against the API v2 emulator: a critical finding in
/// Lacework's data denies; Lacework answering 503 goes to the failure policy.
#[tokio::test]
async fn lacework_emulator_scans_decide_and_an_outage_follows_the_failure_policy() -> TestResult {
    const NGINX: &str =
        "nginx:1.25@sha256:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";
    let emu = Emulator::builder().start().await?;
    let (server, _, _) = start(lacework(&emu)?, ControllerConfig::default()).await?;
    let (status, body) = server.post(review_with_image(NGINX)?).await?;
    assert_eq!(status, 200, "{body}");
    let out: Value = serde_json::from_str(&body)?;
    assert_eq!(out["response"]["allowed"], false, "{out}");
    let msg = out["response"]["status"]["message"]
        .as_str()
        .unwrap_or_default();
    assert!(msg.contains(NGINX) && msg.contains("(critical)"), "{msg}");
    assert_eq!(
        out["response"]["auditAnnotations"]["scan-statuses"],
        r#"{"app":"completed"}"#
    );

    // Lacework down (every search answers 503): closed denies, open allows with a warning.
    emu.inject(Fault::once(Endpoint::Search, FaultKind::ServerError { status: 503 }).times(10_000));
    let (closed, metrics, _) = start(lacework(&emu)?, ControllerConfig::default()).await?;
    let out: Value = serde_json::from_str(&closed.post(review_with_image(NGINX)?).await?.1)?;
    assert_eq!(out["response"]["allowed"], false, "{out}");
    assert!(
        out["response"]["status"]["message"]
            .to_string()
            .contains("failure policy: closed"),
        "{out}"
    );
    assert!(
        metrics
            .encode()
            .contains(r#"helios_admission_backend_errors_total{kind="scan"} 1"#)
    );

    let open = ControllerConfig {
        failure_policy: FailurePolicy::Open,
        ..Default::default()
    };
    let (server, _, _) = start(lacework(&emu)?, open).await?;
    let out: Value = serde_json::from_str(&server.post(review_with_image(NGINX)?).await?.1)?;
    assert_eq!(out["response"]["allowed"], true, "{out}");
    assert!(
        out["response"]["warnings"]
            .to_string()
            .contains("failure policy: open"),
        "{out}"
    );
    Ok(())
}

/// Issue 8, admission: a clean image (scanned by Lacework, no findings) is allowed every time,
/// also after its cache entry expired — never `pending`, never a scan request.
#[tokio::test]
async fn a_clean_image_is_allowed_after_its_cache_entry_expires() -> TestResult {
    const CLEAN: &str = "registry.example.com/team/clean-app:3.0@sha256:c1ea000000000000000000000000000000000000000000000000000000000000";
    let emu = Emulator::builder().start().await?;
    let client = LaceworkClient::builder()
        .account(emu.url())
        .api_key(emu.key_id())
        .api_secret(emu.secret())
        .build()?;
    let source = CachedSource::new(LaceworkSource::new(client, NoScan::RequestScan))
        .ttl(Duration::from_millis(100));
    let (server, _, _) = start(Arc::new(source), ControllerConfig::default()).await?;
    for round in 0..2 {
        let (status, body) = server.post(review_with_image(CLEAN)?).await?;
        assert_eq!(status, 200, "{body}");
        let out: Value = serde_json::from_str(&body)?;
        assert_eq!(out["response"]["allowed"], true, "round {round}: {out}");
        assert_eq!(
            out["response"]["auditAnnotations"]["scan-statuses"], r#"{"app":"completed"}"#,
            "round {round}"
        );
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    assert_eq!(
        emu.count(Endpoint::ImageSummary),
        2,
        "asked again after expiry"
    );
    assert_eq!(emu.count(Endpoint::Scan), 0);
    Ok(())
}
