use std::sync::atomic::{AtomicUsize, Ordering};

use async_trait::async_trait;
use serde_json::json;

use super::*;
use crate::policy::EmbeddedEvaluator;
use crate::scan::{AffectedPackage, Fix, Severity, Vulnerability};

const CLEAN: &str = "registry.example.com/team/app:1.4";
const CRITICAL: &str = "registry.example.com/team/critical:2.0";

/// Scans by reference: `critical` images have a critical CVE, the rest are clean. Counts calls.
#[derive(Default)]
struct Scans {
    calls: AtomicUsize,
}

#[async_trait]
impl ScanSource for Scans {
    async fn scan(&self, image: &ImageRef, lookup: Lookup) -> crate::Result<ScanReport> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        assert!(lookup.dry_run, "an audit must not request scans");
        let vulns = if image.repository.contains("critical") {
            vec![Vulnerability {
                id: "CVE-2024-0001".into(),
                severity: Severity::Critical,
                status: "vulnerable".into(),
                package: AffectedPackage {
                    name: "openssl".into(),
                    version: "3.0.1".into(),
                    namespace: None,
                },
                fix: Fix {
                    available: true,
                    version: Some("3.0.13".into()),
                },
            }]
        } else {
            Vec::new()
        };
        Ok(ScanReport::completed("test", None, None, vulns))
    }
}

fn gvk(group: &str, kind: &str) -> GroupVersionKind {
    GroupVersionKind {
        group: group.into(),
        version: "v1".into(),
        kind: kind.into(),
    }
}

fn deployment(ns: &str, name: &str, image: &str) -> WorkloadObject {
    WorkloadObject {
        gvk: gvk("apps", "Deployment"),
        object: json!({"metadata": {"namespace": ns, "name": name, "uid": format!("uid-{ns}-{name}")},
            "spec": {"template": {"spec": {"containers": [{"name": "main", "image": image}]}}}}),
    }
}

fn replicaset_of(parent: &WorkloadObject, image: &str) -> WorkloadObject {
    let ns = parent.object["metadata"]["namespace"].clone();
    let uid = parent.object["metadata"]["uid"].clone();
    WorkloadObject {
        gvk: gvk("apps", "ReplicaSet"),
        object: json!({"metadata": {"namespace": ns, "name": "rs", "uid": "rs-uid",
                "ownerReferences": [{"kind": "Deployment", "controller": true, "uid": uid}]},
            "spec": {"template": {"spec": {"containers": [{"name": "main", "image": image}]}}}}),
    }
}

fn auditor(scans: Arc<Scans>, config: ControllerConfig) -> crate::Result<Auditor> {
    Ok(Auditor::new(
        scans,
        Arc::new(EmbeddedEvaluator::default_policy()?),
        config,
    ))
}

#[tokio::test]
async fn one_lookup_per_distinct_image_and_only_denied_workloads_reported() -> crate::Result<()> {
    let scans = Arc::new(Scans::default());
    let mut objects = Vec::new();
    for i in 0..200 {
        let image = if i == 7 {
            CRITICAL.to_string()
        } else if (i / 20) % 2 == 0 {
            // 20 distinct images, spelt two ways each (normalisation makes them one).
            format!("app{}", i % 20)
        } else {
            format!("docker.io/library/app{}:latest", i % 20)
        };
        objects.push(deployment("shop", &format!("w{i}"), &image));
    }
    let report = auditor(scans.clone(), ControllerConfig::default())?
        .concurrency(4)
        .audit(&objects)
        .await;
    // 20 clean images (w7 runs the critical one instead, but w27 still runs app7) + critical.
    assert_eq!(scans.calls.load(Ordering::SeqCst), 21);
    assert_eq!(report.summary.lookups, 21);
    assert_eq!(report.summary.audited, 200);
    assert_eq!(report.findings.len(), 1);
    assert_eq!(report.findings[0].name, "w7");
    assert_eq!(report.findings[0].verdict, "deny");
    assert_eq!(report.namespaces["shop"]["allow"], 199);
    assert_eq!(report.passed.len(), 199);
    Ok(())
}

#[tokio::test]
async fn excluded_namespaces_modes_and_controlled_children() -> crate::Result<()> {
    let scans = Arc::new(Scans::default());
    let mut config = ControllerConfig::default();
    config.namespace_modes.insert("staging".into(), Mode::Warn);
    let parent = deployment("shop", "web", CLEAN);
    let objects = vec![
        deployment("kube-system", "dns", CRITICAL),
        deployment("staging", "api", CRITICAL),
        // Made by a listed parent: skipped even though its image is critical.
        replicaset_of(&parent, CRITICAL),
        parent,
        // Claims a parent that is not listed: audited in full.
        replicaset_of(&deployment("shop", "ghost", CLEAN), CRITICAL),
    ];
    let report = auditor(scans, config)?.audit(&objects).await;
    assert_eq!(report.summary.skipped, 2);
    let found: Vec<(&str, &str, &str)> = report
        .findings
        .iter()
        .map(|w| (w.namespace.as_str(), w.kind.as_str(), w.verdict.as_str()))
        .collect();
    assert_eq!(
        found,
        vec![
            ("shop", "ReplicaSet", "deny"),
            ("staging", "Deployment", "warn")
        ]
    );
    Ok(())
}

#[tokio::test]
async fn invalid_images_deny_and_failures_follow_the_failure_policy() -> crate::Result<()> {
    struct Down;
    #[async_trait]
    impl ScanSource for Down {
        async fn scan(&self, _: &ImageRef, _: Lookup) -> crate::Result<ScanReport> {
            Err(crate::Error::unavailable("test", "down"))
        }
    }
    let policy = Arc::new(EmbeddedEvaluator::default_policy()?);
    let objects = vec![
        deployment("a", "bad", "UPPER/Case::nope"),
        deployment("a", "down", CLEAN),
    ];
    let report = Auditor::new(Arc::new(Down), policy, ControllerConfig::default())
        .audit(&objects)
        .await;
    let verdicts: Vec<&str> = report.findings.iter().map(|w| w.verdict.as_str()).collect();
    assert_eq!(verdicts, vec!["deny", "fail_closed"]);
    let md = report.to_markdown();
    assert!(md.contains("Deployment a/down — fail_closed"), "{md}");
    assert!(md.contains("test is unavailable: down"), "{md}");
    Ok(())
}

#[tokio::test]
async fn inputs_carry_stage_audit_and_the_workload() -> crate::Result<()> {
    // A policy that denies unless the input is exactly what the contract documents.
    let mut set = crate::policy::PolicySet::new();
    set.add_module(
        "audit.rego",
        r#"package helios
deny contains "stage" if input.stage != "audit"
deny contains "operation" if input.workload.operation != "AUDIT"
deny contains "name" if input.workload.name != "web"
deny contains "user" if input.workload.user.username != null
deny contains "label" if input.workload.labels.team != "shop"
"#,
    );
    let policy = EmbeddedEvaluator::builder().policies(set).build()?;
    let mut object = deployment("shop", "web", CLEAN);
    object.object["metadata"]["labels"] = json!({"team": "shop"});
    let report = Auditor::new(
        Arc::new(Scans::default()),
        Arc::new(policy),
        ControllerConfig::default(),
    )
    .audit(&[object])
    .await;
    assert!(report.findings.is_empty(), "{}", report.to_json());
    assert_eq!(report.summary.verdicts["allow"], 1);
    Ok(())
}

#[test]
fn gauges_have_one_series_per_namespace_and_verdict() {
    let mut report = AuditReport {
        started_at: "2026-01-01T00:00:00Z".into(),
        duration_seconds: 0.5,
        policy: None,
        summary: AuditSummary::default(),
        namespaces: BTreeMap::new(),
        findings: Vec::new(),
        passed: Vec::new(),
    };
    report
        .namespaces
        .entry("shop".into())
        .or_default()
        .insert("deny".into(), 2);
    let metrics = AuditMetrics::new();
    metrics.record(&report);
    let text = metrics.encode();
    assert!(
        text.contains(r#"helios_audit_workloads{namespace="shop",verdict="deny"} 2"#),
        "{text}"
    );
    // A namespace gone from the next audit disappears from the gauges.
    report.namespaces.clear();
    metrics.record(&report);
    assert!(!metrics.encode().contains("namespace=\"shop\""));
}
