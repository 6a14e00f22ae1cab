//! `helios audit` end to end: the binary, a kubeconfig, a real kube-apiserver
//! (`helios_testkit::ControlPlane`) and a directory of scan files.

use std::path::Path;
use std::process::Command;

use helios_testkit::{ADMIN_TOKEN, ControlPlane};
use serde_json::{Value, json};

type TestResult = Result<(), Box<dyn std::error::Error>>;

const CLEAN: &str = "registry.example.com/team/app:1.4@sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
const CRITICAL: &str = "registry.example.com/team/critical:2.0@sha256:cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc";

fn deployment(name: &str, image: &str) -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "app", "image": image}]}}
        }
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn helios_audit_lists_through_a_kubeconfig_and_writes_its_reports() -> TestResult {
    let plane = tokio::task::spawn_blocking(ControlPlane::start).await??;
    let api = plane.api().await?;
    api.namespace("shop").await?;
    let deployments = "/apis/apps/v1/namespaces/shop/deployments";
    api.create_ok(deployments, &deployment("web", CLEAN))
        .await?;
    api.create_ok(deployments, &deployment("bad", CRITICAL))
        .await?;

    let dir = tempfile::tempdir()?;
    std::fs::write(dir.path().join("ca.crt"), plane.ca_pem()?)?;
    let kubeconfig = json!({
        "apiVersion": "v1", "kind": "Config", "current-context": "test",
        "clusters": [{"name": "test", "cluster": {"server": plane.url(),
            "certificate-authority": dir.path().join("ca.crt")}}],
        "users": [{"name": "admin", "user": {"token": ADMIN_TOKEN}}],
        "contexts": [{"name": "test", "context": {"cluster": "test", "user": "admin"}}]
    });
    std::fs::write(dir.path().join("kubeconfig"), kubeconfig.to_string())?;

    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let run = |extra: &[&str]| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_helios"));
        cmd.current_dir(&root)
            .env_remove("KUBECONFIG")
            .env_remove("HELIOS_CONFIG")
            .args(["audit", "--kubeconfig"])
            .arg(dir.path().join("kubeconfig"))
            .args(["--scan-dir", "tests/fixtures/admission-scans"])
            .args(extra);
        cmd.output()
    };
    let md = dir.path().join("audit.md");
    let prom = dir.path().join("audit.prom");
    let out = tokio::task::block_in_place(|| {
        run(&[
            "--format",
            "json",
            "--report",
            md.to_str().unwrap_or_default(),
            "--metrics",
            prom.to_str().unwrap_or_default(),
        ])
    })?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let report: Value = serde_json::from_slice(&out.stdout)?;
    assert_eq!(report["summary"]["audited"], 2, "{report}");
    assert_eq!(report["findings"].as_array().map(Vec::len), Some(1));
    assert_eq!(report["findings"][0]["name"], "bad");
    assert_eq!(report["findings"][0]["verdict"], "deny");
    // No PolicyReport CRD here: `auto` writes none and says nothing about it.
    assert!(!stderr.contains("policyreports"), "{stderr}");
    let markdown = std::fs::read_to_string(&md)?;
    assert!(
        markdown.contains("### Deployment shop/bad — deny"),
        "{markdown}"
    );
    let metrics = std::fs::read_to_string(&prom)?;
    assert!(
        metrics.contains(r#"helios_audit_workloads{namespace="shop",verdict="deny"} 1"#),
        "{metrics}"
    );

    // warn mode: the finding stays, but nothing would be denied (exit 0); --exit-zero too.
    let out = tokio::task::block_in_place(|| run(&["--mode", "warn", "--format", "json"]))?;
    assert_eq!(out.status.code(), Some(0));
    let report: Value = serde_json::from_slice(&out.stdout)?;
    assert_eq!(report["findings"][0]["verdict"], "warn");
    let out = tokio::task::block_in_place(|| run(&["--exit-zero", "--format", "none"]))?;
    assert_eq!(out.status.code(), Some(0));
    assert!(out.stdout.is_empty());

    // The CRD is required with `always`: a clear error, exit 2.
    let out = tokio::task::block_in_place(|| run(&["--policy-reports", "always"]))?;
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("PolicyReport"), "{stderr}");
    Ok(())
}
