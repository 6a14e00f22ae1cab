//! The admission controller resolves tag-only images at a real registry (the CNCF distribution
//! registry, images pushed by crane) before the scan lookup: the scan of the digest the tag
//! points to decides; a tag that cannot be resolved is a failure under the failure policy
//! (never a lookup by tag), within the review deadline, and credentials never reach a message.

use std::net::TcpListener;
use std::sync::Arc;
use std::time::{Duration, Instant};

use helios_core::admission::{
    AdmissionController, ControllerConfig, FailureKind, FailurePolicy, Verdict,
};
use helios_core::policy::EmbeddedEvaluator;
use helios_core::registry::{RegistryConfig, Resolver};
use helios_core::scan::DirSource;
use helios_testkit::Registry;
use serde_json::{Value, json};

type TestResult = Result<(), Box<dyn std::error::Error>>;

const CLEAN: &str = r#"{"status":"completed","source":"file","id":"clean","scanned_at":null,
    "error":null,"summary":{"critical":0,"high":0,"medium":0,"low":0,"info":0,"unknown":0,
    "total":0,"fixable":0},"vulnerabilities":[]}"#;

fn pod_review(image: &str) -> Vec<u8> {
    json!({
        "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
        "request": {
            "uid": "u-1", "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "namespace": "shop", "operation": "CREATE", "userInfo": {"username": "alice"},
            "object": {"apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": "web", "namespace": "shop"},
                "spec": {"containers": [{"name": "web", "image": image}]}}
        }
    })
    .to_string()
    .into_bytes()
}

fn controller(
    scans: &std::path::Path,
    registry: RegistryConfig,
    config: ControllerConfig,
) -> Result<AdmissionController, Box<dyn std::error::Error>> {
    Ok(AdmissionController::new(
        Arc::new(DirSource::open(scans)?),
        Arc::new(EmbeddedEvaluator::default_policy()?),
        config,
    )
    .with_resolver(Some(Resolver::new(registry)?)))
}

fn response(bytes: &[u8]) -> Result<Value, Box<dyn std::error::Error>> {
    let review: Value = serde_json::from_slice(bytes)?;
    Ok(review["response"].clone())
}

#[tokio::test]
async fn a_tag_is_checked_by_the_scan_of_its_digest_and_failures_follow_the_failure_policy()
-> TestResult {
    let registry = Registry::anonymous()?;
    let digest = registry.push_image("shop/web:1.4", "web", None)?;
    let scans = tempfile::tempdir()?;
    std::fs::write(
        scans
            .path()
            .join(format!("{}.json", digest.replace(':', "-"))),
        CLEAN,
    )?;
    let reg = RegistryConfig {
        plain_http: [registry.host()].into(),
        docker_config: Some(registry.docker_config().to_path_buf()),
        cache_ttl_secs: 0,
        ..RegistryConfig::default()
    };
    let image = format!("{}/shop/web:1.4", registry.host());
    let closed = controller(scans.path(), reg.clone(), ControllerConfig::default())?;

    let (body, outcome) = closed.review_json(&pod_review(&image)).await?;
    let r = response(&body)?;
    assert_eq!(r["allowed"], true, "{r}");
    assert_eq!(outcome.verdict, Verdict::Allow);
    let digests: Value =
        serde_json::from_str(r["auditAnnotations"]["digests"].as_str().unwrap_or("{}"))?;
    assert_eq!(digests["web"], digest.as_str(), "{r}");
    assert!(
        r["auditAnnotations"]["scan-statuses"]
            .to_string()
            .contains("completed")
    );

    // The tag is deleted: fail closed, naming the failure; never a lookup by tag.
    registry.delete(&format!("shop/web@{digest}"))?;
    let (body, outcome) = closed.review_json(&pod_review(&image)).await?;
    let r = response(&body)?;
    assert_eq!(r["allowed"], false, "{r}");
    assert_eq!(outcome.verdict, Verdict::FailClosed);
    assert_eq!(outcome.failures, vec![FailureKind::Resolve]);
    let msg = r["status"]["message"].as_str().unwrap_or_default();
    assert!(
        msg.contains("cannot resolve the tag") && msg.contains("not found"),
        "{msg}"
    );

    // Failure policy open: allowed, with the reason as a warning.
    let open = controller(
        scans.path(),
        reg,
        ControllerConfig {
            failure_policy: FailurePolicy::Open,
            ..ControllerConfig::default()
        },
    )?;
    let (body, outcome) = open.review_json(&pod_review(&image)).await?;
    let r = response(&body)?;
    assert_eq!(r["allowed"], true, "{r}");
    assert_eq!(outcome.verdict, Verdict::FailOpen);
    assert!(
        r["warnings"].to_string().contains("cannot resolve the tag"),
        "{r}"
    );
    Ok(())
}

#[tokio::test]
async fn wrong_credentials_deny_without_printing_them() -> TestResult {
    let registry = Registry::builder()
        .tls()
        .htpasswd("bot", "right-pass")
        .start()?;
    registry.push_image("private/app:1.0", "p", None)?;
    let creds = tempfile::tempdir()?;
    let secret = "WRONG-s3cr3t-value";
    std::fs::write(
        creds.path().join(".dockerconfigjson"),
        json!({"auths": {registry.host(): {"username": "bot", "password": secret}}}).to_string(),
    )?;
    let scans = tempfile::tempdir()?;
    let c = controller(
        scans.path(),
        RegistryConfig {
            docker_config: Some(creds.path().to_path_buf()),
            ca: [(
                registry.host(),
                registry.ca_file().ok_or("no ca")?.to_path_buf(),
            )]
            .into(),
            ..RegistryConfig::default()
        },
        ControllerConfig::default(),
    )?;
    let (body, outcome) = c
        .review_json(&pod_review(&format!("{}/private/app:1.0", registry.host())))
        .await?;
    let text = String::from_utf8_lossy(&body);
    assert_eq!(outcome.failures, vec![FailureKind::Resolve], "{text}");
    assert!(text.contains("rejected the credentials"), "{text}");
    assert!(!text.contains(secret), "{text}");
    Ok(())
}

#[tokio::test]
async fn a_slow_registry_is_cut_at_the_review_deadline() -> TestResult {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let slow = listener.local_addr()?.to_string();
    let _hold = std::thread::spawn(move || {
        let held: Vec<_> = listener.incoming().take(2).collect();
        std::thread::sleep(Duration::from_secs(5));
        drop(held);
    });
    let scans = tempfile::tempdir()?;
    let c = controller(
        scans.path(),
        RegistryConfig {
            plain_http: [slow.clone()].into(),
            timeout_ms: 10_000,
            ..RegistryConfig::default()
        },
        ControllerConfig {
            deadline_ms: 300,
            ..ControllerConfig::default()
        },
    )?;
    let t = Instant::now();
    let (body, outcome) = c.review_json(&pod_review(&format!("{slow}/a/b:1"))).await?;
    assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
    assert_eq!(outcome.failures, vec![FailureKind::Deadline]);
    let r = response(&body)?;
    assert_eq!(r["allowed"], false);
    assert!(
        r["status"]["message"]
            .to_string()
            .contains("tag resolution did not finish within the review deadline of 300 ms"),
        "{r}"
    );
    Ok(())
}
