//! Decision logs (issue 11): one OPA-shaped event per review, POSTed in gzip batches to a real
//! collector (a small axum server here, counting what it receives); a collector that never
//! answers changes no decision and blocks no review, and what cannot be queued is counted.
#![cfg(feature = "webhook")]

use std::io::Read as _;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use helios_core::admission::decision_log::{DecisionLogConfig, ServiceConfig};
use helios_core::admission::server::{Metrics, ServerOptions, serve};
use helios_core::admission::{AdmissionController, ControllerConfig};
use helios_core::image::ImageRef;
use helios_core::policy::EmbeddedEvaluator;
use helios_core::scan::{Lookup, ScanReport, ScanSource};
use serde_json::{Value, json};

type TestResult<T = ()> = std::result::Result<T, Box<dyn std::error::Error>>;

const CRITICAL: &str = r#"{"data": [{
    "vulnId": "CVE-2024-0001", "severity": "Critical", "status": "VULNERABLE",
    "featureKey": {"name": "openssl", "version": "3.0.1", "namespace": "debian:12"},
    "fixInfo": {"fix_available": 1, "fixed_version": "3.0.13"}
}]}"#;

/// `critical` repositories have a critical CVE (denied), others are clean; every scan has an id.
struct Scans;

#[async_trait]
impl ScanSource for Scans {
    async fn scan(&self, image: &ImageRef, _lookup: Lookup) -> helios_core::Result<ScanReport> {
        let mut report = if image.repository.contains("critical") {
            ScanReport::from_scan_json(CRITICAL, None)?
        } else {
            ScanReport::completed("file", None, None, Vec::new())
        };
        report.id = Some(format!("scan-of-{}", image.repository));
        Ok(report)
    }
}

/// What the collector received: each batch's entries, and the encodings announced.
#[derive(Default)]
struct Received {
    entries: Vec<Value>,
    encodings: Vec<String>,
}

/// A collector speaking OPA's decision log API: `POST /logs`, a gzip JSON array. With `hang`
/// it never answers.
async fn collector(hang: bool) -> TestResult<(String, Arc<Mutex<Received>>)> {
    let received = Arc::new(Mutex::new(Received::default()));
    let state = received.clone();
    let app = axum::Router::new().route(
        "/logs",
        post(move |headers: HeaderMap, body: Bytes| {
            let state = state.clone();
            async move {
                if hang {
                    std::future::pending::<()>().await;
                }
                let mut text = String::new();
                if flate2::read::GzDecoder::new(&body[..])
                    .read_to_string(&mut text)
                    .is_err()
                {
                    return StatusCode::BAD_REQUEST;
                }
                let Ok(Value::Array(entries)) = serde_json::from_str::<Value>(&text) else {
                    return StatusCode::BAD_REQUEST;
                };
                let mut r = state.lock().unwrap_or_else(|e| e.into_inner());
                r.entries.extend(entries);
                r.encodings.push(
                    headers
                        .get("content-encoding")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("")
                        .to_string(),
                );
                StatusCode::OK
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok((url, received))
}

struct Hook {
    client: reqwest::Client,
    url: String,
    metrics: Arc<Metrics>,
    _dir: tempfile::TempDir,
}

async fn webhook(decision_logs: DecisionLogConfig) -> TestResult<Hook> {
    let dir = tempfile::tempdir()?;
    let key = rcgen::generate_simple_self_signed(vec!["localhost".to_string()])?;
    std::fs::write(dir.path().join("tls.crt"), key.cert.pem())?;
    std::fs::write(dir.path().join("tls.key"), key.signing_key.serialize_pem())?;
    let controller = AdmissionController::new(
        Arc::new(Scans),
        Arc::new(EmbeddedEvaluator::default_policy()?),
        ControllerConfig::default(),
    );
    let metrics = Arc::new(Metrics::new());
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    let port = listener.local_addr()?.port();
    let options = ServerOptions {
        decision_logs: Some(decision_logs),
        ..ServerOptions::new(dir.path().join("tls.crt"), dir.path().join("tls.key"))
    };
    let _task = serve(
        listener,
        controller,
        options,
        metrics.clone(),
        futures_util::stream::pending(),
    )
    .await?;
    let client = reqwest::Client::builder()
        .use_rustls_tls()
        .add_root_certificate(reqwest::Certificate::from_pem(key.cert.pem().as_bytes())?)
        .resolve("localhost", ([127, 0, 0, 1], port).into())
        .timeout(Duration::from_secs(10))
        .build()?;
    Ok(Hook {
        client,
        url: format!("https://localhost:{port}/validate"),
        metrics,
        _dir: dir,
    })
}

fn review(i: usize) -> Vec<u8> {
    let repo = if i.is_multiple_of(2) {
        "team/critical"
    } else {
        "team/app"
    };
    json!({
        "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
        "request": {
            "uid": format!("uid-{i}"),
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "namespace": "shop", "name": format!("pod-{i}"), "operation": "CREATE",
            "userInfo": {"username": "alice"},
            "object": {"apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": format!("pod-{i}"), "namespace": "shop"},
                "spec": {"containers": [{"name": "app",
                    "image": format!("registry.example.com/{repo}:1@sha256:{:064x}", i)}]}}
        }
    })
    .to_string()
    .into_bytes()
}

impl Hook {
    async fn allowed(&self, i: usize) -> TestResult<bool> {
        let resp = self
            .client
            .post(&self.url)
            .header("content-type", "application/json")
            .body(review(i))
            .send()
            .await?;
        assert_eq!(resp.status(), 200);
        let out: Value = resp.json().await?;
        out["response"]["allowed"]
            .as_bool()
            .ok_or_else(|| "no allowed".into())
    }

    fn metric(&self, outcome: &str) -> u64 {
        let series = format!("helios_admission_decision_logs_total{{outcome=\"{outcome}\"}}");
        self.metrics
            .encode()
            .lines()
            .find_map(|l| l.strip_prefix(&series)?.trim().parse().ok())
            .unwrap_or(0)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_review_reaches_the_collector_in_batches() -> TestResult {
    let (url, received) = collector(false).await?;
    let hook = webhook(DecisionLogConfig {
        console: false,
        service: Some(ServiceConfig {
            url,
            batch_size: 10,
            flush_interval_ms: 100,
            max_queue: 1000,
        }),
    })
    .await?;
    for i in 0..25 {
        assert_eq!(hook.allowed(i).await?, i % 2 == 1, "review {i}");
    }
    let started = Instant::now();
    while received.lock().map(|r| r.entries.len()).unwrap_or(0) < 25 {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the collector did not get every event"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let r = received.lock().map_err(|_| "poisoned")?;
    assert_eq!(r.entries.len(), 25);
    // Two full batches of 10, then the rest on the flush interval.
    assert!(r.encodings.len() >= 3, "{} batches", r.encodings.len());
    assert!(r.encodings.iter().all(|e| e == "gzip"));
    let mut ids: Vec<&str> = r
        .entries
        .iter()
        .filter_map(|e| e["decision_id"].as_str())
        .collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 25, "decision ids are unique");

    let denied = r
        .entries
        .iter()
        .find(|e| e["input"]["request"]["uid"] == "uid-0")
        .ok_or("no event for uid-0")?;
    assert_eq!(denied["path"], "helios/admission");
    assert!(
        denied["timestamp"]
            .as_str()
            .is_some_and(|t| t.ends_with('Z'))
    );
    assert_eq!(denied["result"]["allowed"], false);
    assert_eq!(denied["result"]["verdict"], "deny");
    assert_eq!(denied["result"]["mode"], "enforce");
    assert_eq!(denied["input"]["request"]["name"], "pod-0");
    assert_eq!(denied["input"]["request"]["namespace"], "shop");
    let image = &denied["input"]["images"][0];
    assert_eq!(image["container"], "app");
    assert_eq!(image["digest"], format!("sha256:{:064x}", 0));
    assert_eq!(image["scan_status"], "completed");
    assert_eq!(image["scan_id"], "scan-of-team/critical");
    assert_eq!(denied["policy"]["id"], "helios.default");
    assert!(
        denied["policy"]["version"]
            .as_str()
            .is_some_and(|v| v.starts_with("sha256:"))
    );
    assert_eq!(denied["labels"]["app"], "helios");
    assert!(
        denied["labels"]["id"]
            .as_str()
            .is_some_and(|id| !id.is_empty())
    );
    assert_eq!(denied["labels"]["version"], env!("CARGO_PKG_VERSION"));
    // The object itself is not logged.
    assert!(denied["input"].get("object").is_none());
    drop(r);
    assert_eq!(hook.metric("sent"), 25);
    assert_eq!(hook.metric("dropped"), 0);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_collector_changes_no_decision_and_blocks_nothing() -> TestResult {
    let (url, _) = collector(true).await?;
    let hook = webhook(DecisionLogConfig {
        console: false,
        service: Some(ServiceConfig {
            url,
            batch_size: 2,
            flush_interval_ms: 50,
            max_queue: 4,
        }),
    })
    .await?;
    let started = Instant::now();
    for i in 0..40 {
        let sent = Instant::now();
        assert_eq!(hook.allowed(i).await?, i % 2 == 1, "review {i}");
        assert!(
            sent.elapsed() < Duration::from_secs(2),
            "review {i} took {:?}",
            sent.elapsed()
        );
    }
    assert!(started.elapsed() < Duration::from_secs(20));
    // The writer is stuck on its first POST (10 s timeout): the queue of 4 filled, the rest
    // was dropped and counted.
    assert!(
        hook.metric("dropped") >= 30,
        "dropped {}",
        hook.metric("dropped")
    );
    assert_eq!(hook.metric("sent"), 0);
    Ok(())
}
