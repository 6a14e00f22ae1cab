//! The admission controller on real reviews: the shared reference fixtures (when present) and
//! the project's own reviews of every inspected kind in `tests/fixtures/admission/`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use helios_core::admission::{
    AdmissionController, AdmissionReview, ControllerConfig, FailurePolicy, Mode, UnavailableScans,
    UnknownKinds, Verdict, images,
};
use helios_core::image::ImageRef;
use helios_core::policy::{ContainerType, EmbeddedEvaluator};
use helios_core::scan::{Lookup, ScanReport, ScanSource, ScanStatus};
use helios_core::{Error, Result};
use serde_json::Value;

#[path = "support/shared.rs"]
mod shared;

const CRITICAL_SCAN: &str = r#"{"data": [{
    "vulnId": "CVE-2024-0001", "severity": "Critical", "status": "VULNERABLE",
    "featureKey": {"name": "openssl", "version": "3.0.1", "namespace": "debian:12"},
    "fixInfo": {"fix_available": 1, "fixed_version": "3.0.13"}
}]}"#;

/// A scan source over a fixed map of repositories, recording every lookup.
#[derive(Default)]
struct MapSource {
    scans: BTreeMap<String, ScanReport>,
    lookups: Mutex<Vec<(String, bool, bool)>>,
    fail: bool,
    unavailable: bool,
    delay: Option<Duration>,
}

impl MapSource {
    fn new() -> Result<Self> {
        let critical = ScanReport::from_scan_json(CRITICAL_SCAN, None)?;
        let clean = ScanReport::completed("file", None, None, Vec::new());
        let mut scans = BTreeMap::new();
        for repo in ["team/critical", "library/nginx"] {
            scans.insert(repo.to_string(), critical.clone());
        }
        for repo in ["team/app", "library/busybox"] {
            scans.insert(repo.to_string(), clean.clone());
        }
        Ok(MapSource {
            scans,
            ..Default::default()
        })
    }

    fn lookups(&self) -> Vec<(String, bool, bool)> {
        self.lookups.lock().map(|l| l.clone()).unwrap_or_default()
    }
}

#[async_trait]
impl ScanSource for MapSource {
    async fn scan(&self, image: &ImageRef, lookup: Lookup) -> Result<ScanReport> {
        if let Ok(mut l) = self.lookups.lock() {
            l.push((
                image.reference.clone(),
                lookup.dry_run,
                lookup.deadline.is_some(),
            ));
        }
        if let Some(d) = self.delay {
            tokio::time::sleep(d).await;
        }
        if self.fail {
            return Err(Error::unavailable("test scan source", "connection refused"));
        }
        if self.unavailable {
            return Ok(ScanReport::without_findings(
                ScanStatus::Unavailable,
                "lacework",
                Some("Lacework answered HTTP 503".into()),
            ));
        }
        Ok(self
            .scans
            .get(&image.repository)
            .cloned()
            .unwrap_or_else(|| ScanReport::without_findings(ScanStatus::NotFound, "file", None)))
    }
}

fn controller(source: Arc<MapSource>, config: ControllerConfig) -> Result<AdmissionController> {
    Ok(AdmissionController::new(
        source,
        Arc::new(EmbeddedEvaluator::default_policy()?),
        config,
    ))
}

fn project_fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/admission")
}

fn read(path: &Path) -> Result<AdmissionReview> {
    let bytes = std::fs::read(path).map_err(|e| Error::Io {
        path: path.to_path_buf(),
        source: e,
    })?;
    AdmissionReview::from_slice(&bytes)
}

fn images_of(review: &AdmissionReview) -> Vec<(String, ContainerType, String)> {
    let Some(req) = review.request.as_ref() else {
        return Vec::new();
    };
    let Some(object) = req.object.as_ref() else {
        return Vec::new();
    };
    images::extract(&req.kind, object)
        .unwrap_or_default()
        .into_iter()
        .map(|i| (i.container.name, i.container.kind, i.image))
        .collect()
}

async fn run(c: &AdmissionController, review: AdmissionReview) -> Result<(Value, Verdict)> {
    let (out, outcome) = c.review(review).await?;
    let json: Value = serde_json::from_slice(&out.to_vec()).map_err(|e| Error::InvalidInput {
        what: "response review".into(),
        reason: e.to_string(),
    })?;
    Ok((json, outcome.verdict))
}

/// A fixture file, the images expected from it (name, list, image), and the verdict.
type Row = (
    &'static str,
    Vec<(&'static str, ContainerType, &'static str)>,
    Verdict,
);

const CLEAN: &str = "registry.example.com/team/app:1.4";
const CRIT: &str = "registry.example.com/team/critical:2.0";

#[tokio::test]
async fn every_kind_yields_its_images_and_decision() -> Result<()> {
    use ContainerType::{Container as C, Init as I};
    // file, expected images (name, type, image), expected verdict in enforce mode
    let table: Vec<Row> = vec![
        (
            "pod-create.json",
            vec![
                ("migrate", I, CRIT),
                ("app", C, CLEAN),
                ("sidecar", C, "busybox:1.36"),
            ],
            Verdict::Deny,
        ),
        (
            "deployment-create.json",
            vec![("app", C, CRIT)],
            Verdict::Deny,
        ),
        (
            "replicaset-create.json",
            vec![("app", C, CLEAN)],
            Verdict::Allow,
        ),
        (
            "statefulset-create.json",
            vec![("init-perms", I, CLEAN), ("db", C, CRIT)],
            Verdict::Deny,
        ),
        (
            "daemonset-create.json",
            vec![("agent", C, CLEAN)],
            Verdict::Allow,
        ),
        ("job-create.json", vec![("report", C, CRIT)], Verdict::Deny),
        (
            "cronjob-create.json",
            vec![("nightly", C, CLEAN)],
            Verdict::Allow,
        ),
        (
            "replicationcontroller-create.json",
            vec![("legacy", C, CRIT)],
            Verdict::Deny,
        ),
        (
            "podtemplate-create.json",
            vec![("tmpl", C, CLEAN)],
            Verdict::Allow,
        ),
        (
            "deployment-update-new-image.json",
            vec![("app", C, CRIT), ("proxy", C, CLEAN)],
            Verdict::Allow,
        ),
        (
            "deployment-update-scale.json",
            vec![("app", C, CRIT)],
            Verdict::Skip,
        ),
        ("pod-controlled.json", vec![("app", C, CRIT)], Verdict::Skip),
        // A ReplicaSet the deployment controller makes for its Deployment.
        (
            "replicaset-from-deployment.json",
            vec![("app", C, CRIT)],
            Verdict::Skip,
        ),
        (
            "pod-forged-owner.json",
            vec![("app", C, CRIT)],
            Verdict::Deny,
        ),
        ("pod-v1beta1.json", vec![("app", C, CRIT)], Verdict::Deny),
        ("pod-dry-run.json", vec![("app", C, CLEAN)], Verdict::Allow),
        (
            "pod-kube-system.json",
            vec![("coredns", C, CRIT)],
            Verdict::Skip,
        ),
        ("unknown-kind.json", vec![], Verdict::Skip),
        (
            "deployment-digest-critical.json",
            vec![(
                "app",
                C,
                "registry.example.com/team/critical:2.0@sha256:cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc",
            )],
            Verdict::Deny,
        ),
        (
            "deployment-digest-clean.json",
            vec![(
                "app",
                C,
                "registry.example.com/team/app:1.4@sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
            )],
            Verdict::Allow,
        ),
    ];
    let source = Arc::new(MapSource::new()?);
    let c = controller(source.clone(), ControllerConfig::default())?;
    for (file, want_images, want_verdict) in table {
        let review = read(&project_fixtures().join(file))?;
        let got: Vec<(String, ContainerType, String)> = images_of(&review);
        let want: Vec<(String, ContainerType, String)> = want_images
            .iter()
            .map(|(n, t, i)| (n.to_string(), *t, i.to_string()))
            .collect();
        assert_eq!(got, want, "{file}: images");
        let uid = review.request.as_ref().map(|r| r.uid.clone());
        let api = review.api_version.clone();
        let (out, verdict) = run(&c, review).await?;
        assert_eq!(verdict, want_verdict, "{file}: {out}");
        assert_eq!(
            out["apiVersion"],
            api.as_str(),
            "{file}: answered in the version received"
        );
        assert_eq!(
            out["response"]["uid"].as_str(),
            uid.as_deref(),
            "{file}: uid echoed"
        );
        assert!(
            out["response"].get("patch").is_none() && out["response"].get("patchType").is_none()
        );
        let allowed = out["response"]["allowed"].as_bool();
        assert_eq!(
            allowed,
            Some(want_verdict != Verdict::Deny),
            "{file}: {out}"
        );
        if want_verdict == Verdict::Deny {
            assert_eq!(out["response"]["status"]["code"], 403, "{file}");
            let msg = out["response"]["status"]["message"]
                .as_str()
                .unwrap_or_default();
            assert!(
                msg.contains(CRIT) && msg.contains("CVE-2024-0001"),
                "{file}: {msg}"
            );
        }
    }
    // dryRun reached the scan source as a side-effect-free lookup.
    let lookups = source.lookups();
    assert!(lookups.iter().all(|(_, _, deadline)| *deadline));
    assert!(lookups.iter().any(|(_, dry, _)| *dry));
    assert_eq!(lookups.iter().filter(|(_, dry, _)| *dry).count(), 1);
    Ok(())
}

#[tokio::test]
async fn update_checks_only_new_images_and_ephemeral_subresource_only_ephemeral() -> Result<()> {
    let source = Arc::new(MapSource::new()?);
    let c = controller(source.clone(), ControllerConfig::default())?;
    run(
        &c,
        read(&project_fixtures().join("deployment-update-new-image.json"))?,
    )
    .await?;
    let looked: Vec<String> = source.lookups().into_iter().map(|l| l.0).collect();
    assert_eq!(
        looked,
        vec![CLEAN.to_string()],
        "the unchanged critical image is not re-checked"
    );

    let (out, verdict) = run(
        &c,
        read(&project_fixtures().join("pod-ephemeralcontainers.json"))?,
    )
    .await?;
    assert_eq!(verdict, Verdict::Deny);
    let msg = out["response"]["status"]["message"]
        .as_str()
        .unwrap_or_default();
    assert!(msg.contains("ephemeral container debugger"), "{msg}");
    Ok(())
}

#[tokio::test]
async fn modes_warn_and_audit_allow() -> Result<()> {
    let source = Arc::new(MapSource::new()?);
    let mut cfg = ControllerConfig {
        mode: Mode::Warn,
        ..Default::default()
    };
    cfg.namespace_modes.insert("shop".into(), Mode::Audit);
    let review = || read(&project_fixtures().join("deployment-create.json"));

    // `shop` is in audit mode: allowed, no warnings, annotated.
    let c = controller(source.clone(), cfg.clone())?;
    let (out, verdict) = run(&c, review()?).await?;
    assert_eq!(verdict, Verdict::Audit);
    let resp = &out["response"];
    assert_eq!(resp["allowed"], true);
    assert!(resp.get("warnings").is_none());
    let ann = &resp["auditAnnotations"];
    // What enforce would have done, not the mode again (that is the `mode` annotation).
    assert_eq!(ann["decision"], "would-deny");
    assert_eq!(ann["mode"], "audit");
    assert_eq!(ann["policy-id"], "helios.default");
    assert!(
        ann["policy-version"]
            .as_str()
            .is_some_and(|v| v.starts_with("sha256:"))
    );
    assert_eq!(ann["scan-statuses"], r#"{"app":"completed"}"#);
    assert_eq!(ann["digests"], r#"{"app":null}"#);
    for key in ann
        .as_object()
        .map(|o| o.keys().cloned().collect::<Vec<_>>())
        .unwrap_or_default()
    {
        assert!(
            helios_core::admission::is_valid_annotation_key(&key),
            "{key}"
        );
    }

    // The default (warn) elsewhere: allowed, with the violation as a warning.
    cfg.namespace_modes.clear();
    let c = controller(source, cfg)?;
    let (out, verdict) = run(&c, review()?).await?;
    assert_eq!(verdict, Verdict::Warn);
    assert_eq!(out["response"]["allowed"], true);
    assert_eq!(
        out["response"]["auditAnnotations"]["decision"],
        "would-deny"
    );
    assert_eq!(out["response"]["auditAnnotations"]["mode"], "warn");
    let warnings = out["response"]["warnings"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert!(
        warnings.iter().any(|w| w
            .as_str()
            .is_some_and(|w| w.contains("CVE-2024-0001") && w.contains(CRIT))),
        "{warnings:?}"
    );
    Ok(())
}

#[tokio::test]
async fn failure_policy_closed_denies_and_open_allows() -> Result<()> {
    let down = Arc::new(MapSource {
        fail: true,
        ..MapSource::new()?
    });
    let review = || read(&project_fixtures().join("replicaset-create.json"));
    let c = controller(down.clone(), ControllerConfig::default())?;
    let (out, verdict) = run(&c, review()?).await?;
    assert_eq!(verdict, Verdict::FailClosed);
    let msg = out["response"]["status"]["message"]
        .as_str()
        .unwrap_or_default();
    assert!(
        msg.contains("connection refused") && msg.contains("failure policy: closed"),
        "{msg}"
    );

    let open = ControllerConfig {
        failure_policy: FailurePolicy::Open,
        ..Default::default()
    };
    let c = controller(down.clone(), open)?;
    let (out, verdict) = run(&c, review()?).await?;
    assert_eq!(verdict, Verdict::FailOpen);
    assert_eq!(out["response"]["allowed"], true);
    assert_eq!(out["response"]["auditAnnotations"]["decision"], "fail_open");
    assert!(
        out["response"]["warnings"]
            .to_string()
            .contains("connection refused")
    );

    // Audit and warn modes never deny, but with a closed failure policy enforce would have:
    // the annotation says so. With an open one enforce would have allowed too.
    for (mode, failure_policy, decision) in [
        (Mode::Audit, FailurePolicy::Closed, "would-deny"),
        (Mode::Warn, FailurePolicy::Closed, "would-deny"),
        (Mode::Audit, FailurePolicy::Open, "fail_open"),
    ] {
        let cfg = ControllerConfig {
            mode,
            failure_policy,
            ..Default::default()
        };
        let (out, verdict) = run(&controller(down.clone(), cfg)?, review()?).await?;
        assert_eq!(verdict, Verdict::FailOpen, "{mode}");
        assert_eq!(out["response"]["allowed"], true, "{mode}");
        let ann = &out["response"]["auditAnnotations"];
        assert_eq!(ann["decision"], decision, "{mode} {failure_policy:?}");
        assert_eq!(ann["mode"], mode.as_str());
    }
    Ok(())
}

#[tokio::test]
async fn one_deadline_for_parallel_lookups() -> Result<()> {
    // Three images, each lookup taking 300 ms, with a 500 ms deadline: in parallel they all
    // finish; one after the other they would not.
    let slow = Arc::new(MapSource {
        delay: Some(Duration::from_millis(300)),
        ..MapSource::new()?
    });
    let cfg = ControllerConfig {
        deadline_ms: 500,
        ..Default::default()
    };
    let c = controller(slow.clone(), cfg)?;
    let started = std::time::Instant::now();
    let (_, verdict) = run(&c, read(&project_fixtures().join("pod-create.json"))?).await?;
    assert_eq!(verdict, Verdict::Deny, "decided, not timed out");
    assert!(started.elapsed() < Duration::from_millis(500));

    let slower = Arc::new(MapSource {
        delay: Some(Duration::from_secs(5)),
        ..MapSource::new()?
    });
    let cfg = ControllerConfig {
        deadline_ms: 200,
        ..Default::default()
    };
    let c = controller(slower, cfg)?;
    let started = std::time::Instant::now();
    let (out, verdict) = run(
        &c,
        read(&project_fixtures().join("replicaset-create.json"))?,
    )
    .await?;
    assert_eq!(verdict, Verdict::FailClosed);
    assert!(started.elapsed() < Duration::from_secs(1));
    assert!(out.to_string().contains("deadline of 200 ms"));
    Ok(())
}

#[tokio::test]
async fn unknown_kinds_can_be_denied() -> Result<()> {
    let cfg = ControllerConfig {
        unknown_kinds: UnknownKinds::Deny,
        ..Default::default()
    };
    let c = controller(Arc::new(MapSource::new()?), cfg)?;
    let (out, verdict) = run(&c, read(&project_fixtures().join("unknown-kind.json"))?).await?;
    assert_eq!(verdict, Verdict::Deny);
    assert!(out.to_string().contains("example.com/Widget"));

    // In audit mode the kind is let through, and the annotation says enforce would not have.
    let audit = ControllerConfig {
        unknown_kinds: UnknownKinds::Deny,
        mode: Mode::Audit,
        ..Default::default()
    };
    let c = controller(Arc::new(MapSource::new()?), audit)?;
    let (out, verdict) = run(&c, read(&project_fixtures().join("unknown-kind.json"))?).await?;
    assert_eq!(verdict, Verdict::Skip);
    assert_eq!(out["response"]["allowed"], true);
    assert_eq!(
        out["response"]["auditAnnotations"]["decision"],
        "would-deny"
    );
    Ok(())
}

#[tokio::test]
async fn invalid_reviews_are_rejected_with_the_reason() -> Result<()> {
    let c = controller(Arc::new(MapSource::new()?), ControllerConfig::default())?;
    for (body, needle) in [
        (&b"not json"[..], "admission review"),
        (br#"{"kind":"AdmissionReview","apiVersion":"admission.k8s.io/v1"}"#, "request: missing"),
        (br#"{"kind":"Pod","apiVersion":"admission.k8s.io/v1","request":{}}"#, "uid"),
        (br#"{"kind":"AdmissionReview","apiVersion":"admission.k8s.io/v2","request":{"uid":"x","kind":{"kind":"Pod"},"resource":{"resource":"pods"},"operation":"CREATE"}}"#, "apiVersion"),
    ] {
        let err = c.review_json(body).await.err();
        assert!(
            matches!(&err, Some(Error::InvalidInput { .. })) && err.as_ref().is_some_and(|e| e.to_string().contains(needle)),
            "{err:?}"
        );
    }
    Ok(())
}

/// The shared reference fixtures (`../shared/fixtures/admission`), byte for byte from kube-rs and
/// Connaisseur.
#[tokio::test]
async fn shared_reference_fixtures() -> Result<()> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/fixtures/admission");
    if !shared::present("shared_reference_fixtures", &dir) {
        return Ok(());
    }
    use ContainerType::{Container as C, Ephemeral as E, Init as I};
    let charlie = "securesystemsengineering/charlie-image@sha256:91ac9b26df583762234c1cdb2fc930364754ccc59bc752a2bfe298d2ea68f9ff";
    let redis = "docker.io/library/redis:latest@sha256:1111111111111111111111111111111111111111111111111111111111111111";
    let table: Vec<Row> = vec![
        // Unscanned image: the default policy denies it.
        (
            "kube-rs_gke_pod_create.json",
            vec![("echo-server", C, "jmalloc/echo-server")],
            Verdict::Deny,
        ),
        // Created by the replicaset-controller for its ReplicaSet: the parent was checked.
        (
            "connaisseur_19_pod_initcontainer.json",
            vec![
                ("my-initcontainer", I, "nginx"),
                ("test-connaisseur", C, charlie),
            ],
            Verdict::Skip,
        ),
        // ... but never its ephemeral containers, which no parent carries (nginx is critical here).
        (
            "connaisseur_20_pod_ephemeralcontainer.json",
            vec![
                ("test-connaisseur", C, charlie),
                ("my-initcontainer", E, "nginx"),
            ],
            Verdict::Deny,
        ),
        // ReplicaSet UPDATE by the deployment controller with an unchanged image.
        (
            "connaisseur_10_update.json",
            vec![("nginx", C, redis)],
            Verdict::Skip,
        ),
    ];
    let mut seen = 0;
    let source = Arc::new(MapSource::new()?);
    let c = controller(source.clone(), ControllerConfig::default())?;
    for (file, want_images, want_verdict) in &table {
        let path = dir.join(file);
        let review = read(&path)?;
        let want: Vec<(String, ContainerType, String)> = want_images
            .iter()
            .map(|(n, t, i)| (n.to_string(), *t, i.to_string()))
            .collect();
        assert_eq!(images_of(&review), want, "{file}");
        let uid = review.request.as_ref().map(|r| r.uid.clone());
        let (out, verdict) = run(&c, review).await?;
        assert_eq!(verdict, *want_verdict, "{file}: {out}");
        assert_eq!(out["response"]["uid"].as_str(), uid.as_deref());
        seen += 1;
    }
    // Every file of the folder is covered by the table.
    let files = std::fs::read_dir(&dir)
        .map_err(|e| Error::Io {
            path: dir.clone(),
            source: e,
        })?
        .filter_map(|e| e.ok())
        .filter(|e| e.path().extension().is_some_and(|x| x == "json"))
        .count();
    assert_eq!(
        files, seen,
        "a new shared admission fixture needs an entry in this table"
    );
    let looked: Vec<String> = source.lookups().into_iter().map(|l| l.0).collect();
    assert!(
        looked.contains(&"docker.io/library/nginx:latest".to_string()),
        "{looked:?}"
    );
    Ok(())
}

/// Collects what the JSON log layer writes.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if let Ok(mut b) = self.0.lock() {
            b.extend_from_slice(buf);
        }
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Captured {
    type Writer = Captured;
    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

#[tokio::test]
async fn one_json_log_line_per_review_without_secrets() -> Result<()> {
    let captured = Captured::default();
    let subscriber = tracing_subscriber::fmt()
        .json()
        .with_writer(captured.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let mut review = read(&project_fixtures().join("deployment-create.json"))?;
    const SECRET: &str = "eyJhbGciOiJSUzI1NiJ9.secret-assertion";
    if let Some(req) = review.request.as_mut() {
        req.user_info
            .extra
            .insert("iam.gke.io/user-assertion".into(), vec![SECRET.into()]);
    }
    assert!(
        !format!("{review:?}").contains(SECRET),
        "Debug output redacts userInfo.extra"
    );
    let c = controller(Arc::new(MapSource::new()?), ControllerConfig::default())?;
    run(&c, review).await?;

    let text = String::from_utf8(captured.0.lock().map(|b| b.clone()).unwrap_or_default())
        .unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 1, "{text}");
    let line: Value = serde_json::from_str(lines[0]).map_err(|e| Error::InvalidInput {
        what: "log line".into(),
        reason: e.to_string(),
    })?;
    let fields = &line["fields"];
    assert_eq!(fields["uid"], "00000000-0000-0000-0000-000000000002");
    assert_eq!(fields["object"], "Deployment/shop/web");
    assert_eq!(fields["images"], CRIT);
    assert_eq!(fields["decision"], "deny");
    assert!(fields["duration_ms"].is_number());
    assert!(!text.contains(SECRET), "{text}");
    Ok(())
}

#[tokio::test]
async fn an_unavailable_scan_goes_to_the_failure_policy_or_to_the_policy() -> Result<()> {
    let down = Arc::new(MapSource {
        unavailable: true,
        ..MapSource::new()?
    });
    let review = || read(&project_fixtures().join("replicaset-create.json"));

    // Default: the scan service being down is a failure; closed denies naming the cause.
    let c = controller(down.clone(), ControllerConfig::default())?;
    let (out, verdict) = run(&c, review()?).await?;
    assert_eq!(verdict, Verdict::FailClosed);
    assert!(
        out.to_string().contains("Lacework answered HTTP 503"),
        "{out}"
    );

    let open = ControllerConfig {
        failure_policy: FailurePolicy::Open,
        ..Default::default()
    };
    let (out, verdict) = run(&controller(down.clone(), open)?, review()?).await?;
    assert_eq!(verdict, Verdict::FailOpen);
    assert_eq!(out["response"]["allowed"], true);
    assert_eq!(
        out["response"]["auditAnnotations"]["scan-statuses"],
        r#"{"app":"error:scan"}"#
    );

    // `unavailable_scans: policy`: the policy decides (the default policy denies unscanned).
    let by_policy = ControllerConfig {
        failure_policy: FailurePolicy::Open,
        unavailable_scans: UnavailableScans::Policy,
        ..Default::default()
    };
    let (out, verdict) = run(&controller(down, by_policy)?, review()?).await?;
    assert_eq!(verdict, Verdict::Deny);
    assert!(
        out.to_string()
            .contains("has no completed scan (status: unavailable)"),
        "{out}"
    );
    Ok(())
}
