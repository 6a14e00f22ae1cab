//! The background audit against a real kube-apiserver (etcd + kube-apiserver built from the
//! `k8s.io/kubernetes` module, see `helios_testkit::ControlPlane`) and the Lacework emulator:
//! workloads are created while their images are clean, the emulator re-evaluates one image with a
//! new critical CVE, and the audit — listing through kube-rs as the `helios-audit`
//! ServiceAccount of `deploy/audit.yaml` — reports exactly that workload, in its PolicyReport
//! too, which is pruned once the workload is gone. Also: the Lacework budget of a 1,000-workload
//! audit, counted by the emulator.
#![cfg(all(feature = "audit", feature = "webhook"))]

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use helios_core::admission::{ControllerConfig, GroupVersionKind};
use helios_core::audit::{Auditor, Lister, WorkloadObject, background, policy_report};
use helios_core::policy::EmbeddedEvaluator;
use helios_core::scan::lacework::{LaceworkClient, LaceworkSource, NoScan};
use helios_core::scan::{CachedSource, ScanSource};
use helios_lacework_emulator::{Emulator, Endpoint};
use helios_testkit::{ADMIN_TOKEN, Answer, ControlPlane, KubeApi};
use serde::Deserialize as _;
use serde_json::{Value, json};

type TestResult<T = ()> = Result<T, Box<dyn std::error::Error>>;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// A digest made of one repeated hex character pair, e.g. `sha256:a1a1…`.
fn digest(pair: &str) -> String {
    format!("sha256:{}", pair.repeat(32))
}

fn image(repo: &str, pair: &str) -> String {
    format!("registry.example.com/{repo}:1.0@{}", digest(pair))
}

/// One Lacework search row of evaluation `guid` of the image, as `images-reevaluated.json`
/// writes them.
fn row(repo: &str, pair: &str, guid: &str, reeval: bool, start: &str, vuln: (&str, &str)) -> Value {
    json!({
        "evalCtx": {
            "image_info": {
                "digest": digest(pair),
                "id": format!("sha256:{}", pair.repeat(31) + "ff"),
                "registry": "registry.example.com",
                "repo": repo,
                "scan_created_time": "2026-01-01T00:00:00Z",
                "status": "Success",
                "tags": ["1.0"],
                "type": "Docker",
                "size": 1048576
            },
            "is_reeval": reeval,
            "request_source": "PLATFORM_SCANNER",
            "scan_request_props": {"reqId": format!("req-{guid}"), "reqSource": "ondemand",
                "scanner_version": "10.0.155"}
        },
        "evalGuid": guid,
        "featureKey": {"name": "zlib", "namespace": "debian:12", "version": "1.2.13"},
        "featureProps": {"feed": "lacework", "src": "dpkg", "version_format": "dpkg"},
        "fixInfo": {"compare_result": 0, "fix_available": 1, "fixed_version": "1.3"},
        "imageId": format!("sha256:{}", pair.repeat(31) + "ff"),
        "severity": vuln.1,
        "startTime": start,
        "status": "VULNERABLE",
        "vulnId": vuln.0
    })
}

fn ago(d: Duration) -> String {
    let t = chrono::Utc::now() - chrono::Duration::from_std(d).unwrap_or_default();
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// Rows of a first evaluation with one low finding (allowed by the default policy).
fn clean_rows(repo: &str, pair: &str) -> Vec<Value> {
    let guid = format!("{pair}00initial");
    vec![row(
        repo,
        pair,
        &guid,
        false,
        &ago(Duration::from_secs(7200)),
        ("CVE-2022-37434", "Low"),
    )]
}

/// A cached Lacework source over the emulator, as `helios audit` builds one per run.
fn lacework(emu: &Emulator) -> TestResult<Arc<dyn ScanSource>> {
    let client = LaceworkClient::builder()
        .account(emu.url())
        .api_key(emu.key_id())
        .api_secret(emu.secret())
        .build()?;
    Ok(Arc::new(CachedSource::new(LaceworkSource::new(
        client,
        NoScan::RequestScan,
    ))))
}

fn auditor(source: Arc<dyn ScanSource>) -> TestResult<Auditor> {
    Ok(Auditor::new(
        source,
        Arc::new(EmbeddedEvaluator::default_policy()?),
        ControllerConfig::default(),
    ))
}

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

fn namespace(name: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
}

/// Applies `deploy/audit.yaml` (the audit's ServiceAccount, ClusterRole, binding, CronJob).
async fn apply_deploy_audit(rest: &KubeApi) -> TestResult {
    let text = std::fs::read_to_string(root().join("deploy/audit.yaml"))?;
    for document in yaml_serde::Deserializer::from_str(&text) {
        let object = Value::deserialize(document)?;
        let path = match object["kind"].as_str() {
            Some("ServiceAccount") => {
                "/api/v1/namespaces/helios-system/serviceaccounts".to_string()
            }
            Some("ClusterRole") => "/apis/rbac.authorization.k8s.io/v1/clusterroles".into(),
            Some("ClusterRoleBinding") => {
                "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings".into()
            }
            Some("CronJob") => "/apis/batch/v1/namespaces/helios-system/cronjobs".into(),
            other => return Err(format!("unexpected kind {other:?} in deploy/audit.yaml").into()),
        };
        rest.create_ok(&path, &object).await?;
    }
    Ok(())
}

/// A kubeconfig for the `helios-audit` ServiceAccount (a TokenRequest token), as a CronJob pod
/// would have through its mounted token.
async fn audit_kubeconfig(rest: &KubeApi, plane: &ControlPlane, dir: &Path) -> TestResult<PathBuf> {
    let token = rest
        .create_ok(
            "/api/v1/namespaces/helios-system/serviceaccounts/helios-audit/token",
            &json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
                "spec": {"expirationSeconds": 3600}}),
        )
        .await?["status"]["token"]
        .as_str()
        .ok_or("TokenRequest without a token")?
        .to_string();
    let ca = base64::engine::general_purpose::STANDARD.encode(plane.ca_pem()?);
    let kubeconfig = json!({
        "apiVersion": "v1", "kind": "Config", "current-context": "audit",
        "clusters": [{"name": "test", "cluster": {"server": plane.url(), "certificate-authority-data": ca}}],
        "users": [{"name": "helios-audit", "user": {"token": token}}],
        "contexts": [{"name": "audit", "context": {"cluster": "test", "user": "helios-audit"}}]
    });
    let path = dir.join("kubeconfig");
    std::fs::write(&path, serde_json::to_string(&kubeconfig)?)?;
    Ok(path)
}

const SHOP_DEPLOYMENTS: &str = "/apis/apps/v1/namespaces/shop/deployments";
const OTHER_REPORT: &str = "/apis/wgpolicyk8s.io/v1alpha2/namespaces/shop/policyreports/other-tool";
const SHOP_REPORT: &str =
    "/apis/wgpolicyk8s.io/v1alpha2/namespaces/shop/policyreports/helios-audit";

#[tokio::test(flavor = "multi_thread")]
async fn the_audit_reports_the_workload_whose_image_turned_critical() -> TestResult {
    let plane = tokio::task::spawn_blocking(ControlPlane::start).await??;
    let rest = plane.api().await?;
    for ns in ["shop", "batch", "helios-system"] {
        rest.create_ok("/api/v1/namespaces", &namespace(ns)).await?;
    }
    apply_deploy_audit(&rest).await?;
    let crd: Value = yaml_serde::from_str(&std::fs::read_to_string(
        root().join("tests/fixtures/policyreport/policyreports.wgpolicyk8s.io.yaml"),
    )?)?;
    rest.create_ok(
        "/apis/apiextensions.k8s.io/v1/customresourcedefinitions",
        &crd,
    )
    .await?;
    rest.wait_served("/apis/wgpolicyk8s.io/v1alpha2/policyreports")
        .await?;

    // Seven images, all clean today: web, api and five shared by 30 "bulk" deployments.
    let emu = Emulator::builder().start().await?;
    let mut rows = clean_rows("audit/web", "e1");
    rows.extend(clean_rows("audit/api", "e2"));
    let bulk: Vec<String> = (0..5).map(|i| format!("b{i}")).collect();
    for pair in &bulk {
        rows.extend(clean_rows(&format!("audit/bulk-{pair}"), pair));
    }
    emu.add_rows(rows);

    let web = rest
        .create_ok(
            SHOP_DEPLOYMENTS,
            &deployment("web", &image("audit/web", "e1")),
        )
        .await?;
    rest.create_ok(
        SHOP_DEPLOYMENTS,
        &deployment("api", &image("audit/api", "e2")),
    )
    .await?;
    for i in 0..30 {
        let pair = &bulk[i % bulk.len()];
        let name = format!("bulk-{i}");
        rest.create_ok(
            SHOP_DEPLOYMENTS,
            &deployment(&name, &image(&format!("audit/bulk-{pair}"), pair)),
        )
        .await?;
    }
    // A CronJob elsewhere, a vulnerable workload in an excluded namespace, and a ReplicaSet
    // made by the web Deployment (its parent is audited, so it is skipped) that runs the image
    // about to turn critical.
    let cron = json!({"apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": "nightly"},
        "spec": {"schedule": "0 3 * * *", "jobTemplate": {"spec": {"template": {"spec": {
            "restartPolicy": "OnFailure",
            "containers": [{"name": "job", "image": image("audit/web", "e1")}]}}}}}});
    rest.create_ok("/apis/batch/v1/namespaces/batch/cronjobs", &cron)
        .await?;
    rest.create_ok(
        "/apis/apps/v1/namespaces/kube-system/deployments",
        &deployment("system", &image("audit/api", "e2")),
    )
    .await?;
    let mut rs = deployment("web-5d8f", &image("audit/api", "e2"));
    rs["kind"] = json!("ReplicaSet");
    rs["metadata"]["ownerReferences"] = json!([{"apiVersion": "apps/v1", "kind": "Deployment",
        "name": "web", "uid": web["metadata"]["uid"], "controller": true}]);
    rest.create_ok("/apis/apps/v1/namespaces/shop/replicasets", &rs)
        .await?;

    // Audits run as the helios-audit ServiceAccount, paging 10 objects at a time.
    let dir = tempfile::tempdir()?;
    let kubeconfig = audit_kubeconfig(&rest, &plane, dir.path()).await?;
    let lister = Lister::from_kubeconfig(&kubeconfig, None)
        .await?
        .page_size(10);
    let client = lister.client().clone();
    assert!(policy_report::is_installed(&client).await?);

    let run = |source: Arc<dyn ScanSource>| {
        let lister = lister.clone();
        async move {
            let auditor = auditor(source)?;
            let objects = lister.list(&auditor.config().excluded_namespaces).await?;
            let report = auditor.audit(&objects).await;
            let synced = policy_report::sync(lister.client(), &report).await?;
            TestResult::Ok((report, synced))
        }
    };

    // 1. Everything is clean.
    let (report, synced) = run(lacework(&emu)?).await?;
    assert!(report.findings.is_empty(), "{}", report.to_markdown());
    assert_eq!(report.summary.audited, 33, "{:?}", report.summary);
    assert_eq!(report.summary.skipped, 1, "the controller-made ReplicaSet");
    assert_eq!(report.summary.lookups, 7);
    assert!(
        emu.count(Endpoint::Search) <= 7,
        "one search per distinct image: {:?}",
        emu.counters()
    );
    assert_eq!(emu.count(Endpoint::Scan), 0, "an audit requests no scans");
    assert_eq!(
        synced.created,
        vec!["batch".to_string(), "shop".to_string()]
    );
    let Answer {
        status, body: shop, ..
    } = rest.get(SHOP_REPORT).await?;
    assert_eq!(status, 200, "{shop}");
    assert_eq!(shop["summary"]["pass"], 32);
    assert_eq!(shop["summary"]["fail"], 0);

    // 2. Lacework re-evaluates the api image: a later evaluation with a new critical CVE.
    let start = ago(Duration::from_secs(60));
    emu.add_rows(vec![
        row(
            "audit/api",
            "e2",
            "0000reevaluation",
            true,
            &start,
            ("CVE-2022-37434", "Low"),
        ),
        row(
            "audit/api",
            "e2",
            "0000reevaluation",
            true,
            &start,
            ("CVE-2026-1000", "Critical"),
        ),
    ]);
    let searches = emu.count(Endpoint::Search);
    let (report, synced) = run(lacework(&emu)?).await?;
    let found: Vec<(&str, &str, &str, &str)> = report
        .findings
        .iter()
        .map(|w| {
            (
                w.namespace.as_str(),
                w.kind.as_str(),
                w.name.as_str(),
                w.verdict.as_str(),
            )
        })
        .collect();
    assert_eq!(
        found,
        vec![("shop", "Deployment", "api", "deny")],
        "{}",
        report.to_markdown()
    );
    let violations = &report.findings[0].containers[0].violations;
    assert!(
        violations.iter().any(|v| v.msg.contains("CVE-2026-1000")),
        "{violations:?}"
    );
    assert!(
        emu.count(Endpoint::Search) - searches <= 7,
        "{:?}",
        emu.counters()
    );
    assert_eq!(report.namespaces["shop"]["deny"], 1);
    assert!(
        report
            .to_markdown()
            .contains("### Deployment shop/api — deny")
    );
    assert_eq!(
        synced.updated,
        vec!["batch".to_string(), "shop".to_string()]
    );
    let shop = rest.get(SHOP_REPORT).await?.body;
    assert_eq!(shop["summary"]["fail"], 1, "{shop}");
    assert_eq!(shop["summary"]["pass"], 31);
    let failed: Vec<&Value> = shop["results"]
        .as_array()
        .map(|r| r.iter().filter(|r| r["result"] == "fail").collect())
        .unwrap_or_default();
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0]["resources"][0]["name"], "api");
    assert_eq!(failed[0]["severity"], "critical");
    assert_eq!(failed[0]["policy"], "helios.default");

    // The same audit as the webhook's loop: its gauges on the webhook's /metrics exposition.
    let metrics = helios_core::admission::server::Metrics::new();
    let task = background::spawn(
        auditor(lacework(&emu)?)?,
        lister.clone(),
        background::MIN_INTERVAL,
        background::PolicyReports::Auto,
        Arc::clone(metrics.audit()),
    );
    let started = Instant::now();
    let deny = r#"helios_audit_workloads{namespace="shop",verdict="deny"} 1"#;
    while !metrics.encode().contains(deny) {
        if started.elapsed() > Duration::from_secs(60) {
            return Err(format!("the audit loop never reported:\n{}", metrics.encode()).into());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    task.abort();
    let text = metrics.encode();
    assert!(text.contains("helios_admission_reviews_total"), "{text}");
    assert!(
        text.contains(r#"helios_audit_workloads{namespace="shop",verdict="allow"} 31"#),
        "{text}"
    );
    assert_eq!(text.matches("# EOF").count(), 1, "{text}");
    assert!(text.ends_with("# EOF\n"));

    // The audit's ServiceAccount can read workloads but not change them.
    let sa = Lister::from_kubeconfig(&kubeconfig, None).await?;
    let api: kube::Api<kube::api::DynamicObject> = kube::Api::namespaced_with(
        sa.client().clone(),
        "shop",
        &kube::api::ApiResource::from_gvk_with_plural(
            &kube::core::GroupVersionKind::gvk("apps", "v1", "Deployment"),
            "deployments",
        ),
    );
    match api.delete("web", &Default::default()).await {
        Err(kube::Error::Api(status)) => assert_eq!(status.code, 403),
        other => return Err(format!("the audit account deleted a Deployment: {other:?}").into()),
    }

    // Another tool's report in the same namespace.
    rest.create_ok(
        "/apis/wgpolicyk8s.io/v1alpha2/namespaces/shop/policyreports",
        &json!({"apiVersion": "wgpolicyk8s.io/v1alpha2", "kind": "PolicyReport",
            "metadata": {"name": "other-tool"}, "summary": {"pass": 1}}),
    )
    .await?;

    // 3. The vulnerable workload is gone: the report is updated; then the namespace has no
    //    workload left (its ReplicaSet too) and its report is pruned.
    rest.delete_ok(&format!("{SHOP_DEPLOYMENTS}/api")).await?;
    let (report, _) = run(lacework(&emu)?).await?;
    assert!(report.findings.is_empty(), "{}", report.to_markdown());
    let shop = rest.get(SHOP_REPORT).await?.body;
    assert_eq!(shop["summary"]["fail"], 0);
    rest.delete_ok(SHOP_DEPLOYMENTS).await?;
    rest.delete_ok("/apis/apps/v1/namespaces/shop/replicasets")
        .await?;
    let (report, synced) = run(lacework(&emu)?).await?;
    assert!(!report.namespaces.contains_key("shop"));
    assert_eq!(synced.pruned, vec!["shop".to_string()]);
    assert_eq!(rest.get(SHOP_REPORT).await?.status, 404);
    // A report Helios does not own is never pruned.
    assert_eq!(rest.get(OTHER_REPORT).await?.status, 200);
    let Answer {
        status,
        body: batch,
        ..
    } = rest
        .get("/apis/wgpolicyk8s.io/v1alpha2/namespaces/batch/policyreports/helios-audit")
        .await?;
    assert_eq!(status, 200, "{batch}");
    assert_eq!(
        batch["metadata"]["labels"]["app.kubernetes.io/managed-by"],
        "helios"
    );
    Ok(())
}

/// 1,000 workloads sharing 50 images: at most 50 Lacework lookups, whatever the concurrency.
#[tokio::test(flavor = "multi_thread")]
async fn an_audit_of_1000_workloads_sharing_50_images_makes_at_most_50_lookups() -> TestResult {
    let emu = Emulator::builder().start().await?;
    let pairs: Vec<String> = (0..50).map(|i| format!("{:02x}", 0x10 + i)).collect();
    let mut rows = Vec::new();
    for pair in &pairs {
        rows.extend(clean_rows(&format!("budget/app-{pair}"), pair));
    }
    emu.add_rows(rows);
    let gvk = GroupVersionKind {
        group: "apps".into(),
        version: "v1".into(),
        kind: "Deployment".into(),
    };
    let objects: Vec<WorkloadObject> = (0..1000)
        .map(|i| {
            let pair = &pairs[i % pairs.len()];
            let mut object = deployment(
                &format!("w{i}"),
                &image(&format!("budget/app-{pair}"), pair),
            );
            object["metadata"]["namespace"] = json!(format!("team-{}", i % 10));
            object["metadata"]["uid"] = json!(format!("uid-{i}"));
            WorkloadObject {
                gvk: gvk.clone(),
                object,
            }
        })
        .collect();
    let started = Instant::now();
    let report = auditor(lacework(&emu)?)?
        .concurrency(16)
        .audit(&objects)
        .await;
    let elapsed = started.elapsed();
    assert_eq!(report.summary.audited, 1000);
    assert_eq!(report.summary.images, 50);
    assert_eq!(report.summary.lookups, 50);
    assert!(report.findings.is_empty(), "{}", report.to_markdown());
    let searches = emu.count(Endpoint::Search) + emu.count(Endpoint::SearchPage);
    assert!(searches <= 50, "{searches} searches: {:?}", emu.counters());
    // A lookup asks the image summary too (clean images have no rows): still once per image.
    assert!(
        emu.count(Endpoint::ImageSummary) <= 50,
        "{:?}",
        emu.counters()
    );
    assert_eq!(emu.count(Endpoint::Scan), 0);
    eprintln!(
        "audit of 1000 workloads / 50 images: {searches} Lacework searches, {:?} in all ({:?})",
        elapsed,
        emu.counters()
    );
    Ok(())
}

/// The same budget with the workloads listed through the API server (two pages of 500), twice:
/// each run (a fresh cache, as each `helios audit`) makes 50 searches, never one per workload.
#[tokio::test(flavor = "multi_thread")]
async fn an_audit_of_1000_deployments_through_the_api_server_makes_50_lookups() -> TestResult {
    let plane = tokio::task::spawn_blocking(ControlPlane::start).await??;
    let rest = Arc::new(plane.api().await?);
    let emu = Emulator::builder().start().await?;
    let pairs: Vec<String> = (0..50).map(|i| format!("{:02x}", 0x10 + i)).collect();
    let mut rows = Vec::new();
    for pair in &pairs {
        rows.extend(clean_rows(&format!("budget/app-{pair}"), pair));
    }
    emu.add_rows(rows);
    for t in 0..10 {
        rest.create_ok("/api/v1/namespaces", &namespace(&format!("team-{t}")))
            .await?;
    }
    let n = 1000;
    let created = Instant::now();
    let mut tasks = Vec::new();
    for chunk in 0..16usize {
        let rest = rest.clone();
        let pairs = pairs.clone();
        tasks.push(tokio::spawn(async move {
            let mut i = chunk;
            while i < n {
                let pair = &pairs[i % pairs.len()];
                let path = format!("/apis/apps/v1/namespaces/team-{}/deployments", i % 10);
                if let Err(e) = rest
                    .create_ok(
                        &path,
                        &deployment(
                            &format!("w{i}"),
                            &image(&format!("budget/app-{pair}"), pair),
                        ),
                    )
                    .await
                {
                    return Err(e.to_string());
                }
                i += 16;
            }
            Ok(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    eprintln!("created {n} deployments in {:?}", created.elapsed());
    let dir = tempfile::tempdir()?;
    let kubeconfig = dir.path().join("kubeconfig");
    let ca = base64::engine::general_purpose::STANDARD.encode(plane.ca_pem()?);
    std::fs::write(&kubeconfig, json!({
        "apiVersion": "v1", "kind": "Config", "current-context": "a",
        "clusters": [{"name": "t", "cluster": {"server": plane.url(), "certificate-authority-data": ca}}],
        "users": [{"name": "u", "user": {"token": ADMIN_TOKEN}}],
        "contexts": [{"name": "a", "context": {"cluster": "t", "user": "u"}}]}).to_string())?;
    let lister = Lister::from_kubeconfig(&kubeconfig, None).await?;
    for run in 0..2 {
        let started = Instant::now();
        let auditor = auditor(lacework(&emu)?)?;
        let objects = lister.list(&auditor.config().excluded_namespaces).await?;
        let listed = started.elapsed();
        let report = auditor.audit(&objects).await;
        eprintln!(
            "run {run}: {} objects listed in {listed:?}, audited in {:.3} s, {:?} in all; {:?}",
            objects.len(),
            report.duration_seconds,
            started.elapsed(),
            emu.counters()
        );
        assert_eq!(report.summary.audited, n);
        assert_eq!(report.summary.lookups, 50);
        assert!(report.findings.is_empty(), "{}", report.to_markdown());
        assert_eq!(
            emu.count(Endpoint::Search),
            50 * (run + 1),
            "{:?}",
            emu.counters()
        );
        assert_eq!(emu.count(Endpoint::ImageSummary), 50 * (run + 1));
        assert_eq!(emu.count(Endpoint::Scan), 0);
    }
    Ok(())
}
