//! The webhook called by the Kubernetes API server's own validating-webhook dispatcher
//! (`k8s.io/apiserver`), through the Go harness in `tests/k8s-webhook-harness`, with the
//! shipped `deploy/validatingwebhookconfiguration.yaml`: rules and namespaceSelector matching,
//! AdmissionReview encoding, TLS with the service's server name, response verification (uid,
//! no patch), and the verdict, warnings and audit annotations exactly as kube-apiserver applies
//! them.
//!
//! The harness is built with the machine's Go on first use (cached in `target/go/`); Go is
//! required.
#![cfg(feature = "webhook")]

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use helios_core::admission::{AdmissionController, ControllerConfig, Mode};
use helios_core::policy::EmbeddedEvaluator;
use helios_core::scan::DirSource;
use serde_json::Value;
use support::harness::k8s_webhook_harness;
use support::webhook::{TlsWebhook, serve_tls};

type TestResult = Result<(), Box<dyn std::error::Error>>;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

struct Webhook {
    url: String,
    ca: PathBuf,
    _served: TlsWebhook,
}

async fn start(config: ControllerConfig) -> Result<Webhook, Box<dyn std::error::Error>> {
    let controller = AdmissionController::new(
        Arc::new(DirSource::open(
            root().join("tests/fixtures/admission-scans"),
        )?),
        Arc::new(EmbeddedEvaluator::default_policy()?),
        config,
    );
    // The dispatcher verifies the server as <service>.<namespace>.svc.
    let served = serve_tls(
        controller,
        "helios-webhook.helios-system.svc",
        Duration::from_secs(10),
    )
    .await?;
    Ok(Webhook {
        url: format!("https://{}", served.addr),
        ca: served.cert_file.clone(),
        _served: served,
    })
}

/// Writes `request.object` (and `oldObject`) of a review fixture to files for the harness.
fn objects(
    fixture: &str,
    dir: &Path,
) -> Result<(PathBuf, Option<PathBuf>), Box<dyn std::error::Error>> {
    let review: Value = serde_json::from_slice(&std::fs::read(
        root().join("tests/fixtures/admission").join(fixture),
    )?)?;
    let object = dir.join("object.json");
    std::fs::write(&object, review["request"]["object"].to_string())?;
    let old = match &review["request"]["oldObject"] {
        Value::Null => None,
        o => {
            let p = dir.join("old.json");
            std::fs::write(&p, o.to_string())?;
            Some(p)
        }
    };
    Ok((object, old))
}

async fn dispatch(
    bin: &Path,
    url: &str,
    ca: &Path,
    fixture: &str,
    extra: &[&str],
) -> Result<Value, Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let (object, old) = objects(fixture, dir.path())?;
    let mut cmd = Command::new(bin);
    cmd.current_dir(root())
        .args([
            "-webhook-config",
            "deploy/validatingwebhookconfiguration.yaml",
            "-url",
            url,
        ])
        .arg("-ca")
        .arg(ca)
        .arg("-object")
        .arg(&object)
        .args(["-namespace", "shop"])
        .args(extra);
    if let Some(old) = old {
        cmd.arg("-old-object")
            .arg(old)
            .args(["-operation", "UPDATE"]);
    }
    // The harness blocks; keep the runtime free to serve the webhook it calls.
    let out = tokio::task::spawn_blocking(move || cmd.output()).await??;
    if !out.status.success() {
        return Err(format!("harness failed: {}", String::from_utf8_lossy(&out.stderr)).into());
    }
    Ok(serde_json::from_slice(&out.stdout)?)
}

const CRITICAL: &str = "deployment-digest-critical.json";

#[tokio::test(flavor = "multi_thread")]
async fn kube_apiserver_dispatcher_applies_helios_verdicts() -> TestResult {
    let bin = k8s_webhook_harness()?;
    let enforce = start(ControllerConfig::default()).await?;
    let call = |fixture: &'static str, extra: &'static [&'static str]| {
        let (bin, url, ca) = (bin.clone(), enforce.url.clone(), enforce.ca.clone());
        async move { dispatch(&bin, &url, &ca, fixture, extra).await }
    };

    // Enforce: a critical image is denied with 403, naming the image and the CVE.
    let out = call(CRITICAL, &[]).await?;
    assert_eq!(out["allowed"], false, "{out}");
    assert_eq!(out["code"], 403, "{out}");
    let msg = out["message"].as_str().unwrap_or_default();
    assert!(
        msg.contains("admission webhook \"images.helios.dev\" denied the request"),
        "{msg}"
    );
    assert!(
        msg.contains("registry.example.com/team/critical") && msg.contains("CVE-2024-0001"),
        "{msg}"
    );
    // Audit annotations pass the API server's key validation, prefixed with the webhook name.
    assert_eq!(
        out["annotations"]["images.helios.dev/decision"], "deny",
        "{out}"
    );
    assert_eq!(
        out["annotations"]["images.helios.dev/policy-id"],
        "helios.default"
    );
    assert!(
        out["annotations"]["images.helios.dev/digests"]
            .to_string()
            .contains("sha256:cccc")
    );

    // A clean image is allowed; the medium finding of the critical image's scan is not in it.
    let out = call("deployment-digest-clean.json", &[]).await?;
    assert_eq!(out["allowed"], true, "{out}");
    assert_eq!(out["annotations"]["images.helios.dev/decision"], "allow");

    // dryRun requests reach Helios too (sideEffects: None) and are decided the same way.
    let out = call(CRITICAL, &["-dry-run"]).await?;
    assert_eq!(out["allowed"], false, "{out}");

    // An opted-out namespace is never sent to the webhook (namespaceSelector).
    let out = call(
        CRITICAL,
        &["-namespace-labels", "helios.dev/admission=disabled"],
    )
    .await?;
    assert_eq!(out["allowed"], true, "{out}");
    assert_eq!(
        out["annotations"],
        serde_json::json!({}),
        "not called: {out}"
    );

    // UPDATE that only scales: the unchanged critical image does not block it.
    let out = call("deployment-update-scale.json", &[]).await?;
    assert_eq!(out["allowed"], true, "{out}");
    assert_eq!(out["annotations"]["images.helios.dev/decision"], "skip");

    // An ephemeral container added through the subresource is checked.
    let out = call(
        "pod-ephemeralcontainers.json",
        &["-subresource", "ephemeralcontainers"],
    )
    .await?;
    assert_eq!(out["allowed"], false, "{out}");
    assert!(
        out["message"]
            .to_string()
            .contains("ephemeral container debugger"),
        "{out}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn kube_apiserver_dispatcher_shows_warnings_and_fails_closed_when_helios_is_down()
-> TestResult {
    let bin = k8s_webhook_harness()?;
    let warn = start(ControllerConfig {
        mode: Mode::Warn,
        ..Default::default()
    })
    .await?;
    let out = dispatch(&bin, &warn.url, &warn.ca, CRITICAL, &[]).await?;
    assert_eq!(out["allowed"], true, "{out}");
    let warnings = out["warnings"].to_string();
    assert!(
        warnings.contains("CVE-2024-0001") && warnings.contains("would deny"),
        "{warnings}"
    );

    // Nothing listening: failurePolicy Fail in the shipped configuration rejects the request.
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let out = dispatch(
        &bin,
        &format!("https://127.0.0.1:{port}"),
        &warn.ca,
        CRITICAL,
        &[],
    )
    .await?;
    assert_eq!(out["allowed"], false, "{out}");
    assert!(
        out["message"]
            .to_string()
            .contains("failed calling webhook"),
        "{out}"
    );
    Ok(())
}

/// Every Kubernetes document in `deploy/` decodes strictly into the API types (an unknown or
/// misspelt field is an error), as `kubectl apply --validate=strict` checks it.
#[test]
fn deploy_manifests_decode_strictly_into_kubernetes_types() -> TestResult {
    let bin = k8s_webhook_harness()?;
    let out = Command::new(bin)
        .current_dir(root())
        .args(["-validate-manifests", "deploy"])
        .output()?;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let summary: Value = serde_json::from_slice(&out.stdout)?;
    // Namespace, ServiceAccount, Secret, 2 ConfigMaps, Deployment, PDB, Service, webhook config;
    // the audit's ServiceAccount, ClusterRole, ClusterRoleBinding and CronJob (audit.yaml).
    assert_eq!(summary["validated"], 13, "{summary}");
    Ok(())
}
