//! The fault matrix (issue 11): every way Lacework or OPA can fail × mode {enforce, warn, audit}
//! × failure policy {closed, open}, through the real HTTPS webhook. Each cell's answer (allowed,
//! status code and message, warnings, audit annotations, metrics) is checked against the rules of
//! docs/admission.md ("Modes and failures"), and the matrix checked is written to
//! `target/fault-matrix.md` (shown in docs/reliability.md).
//!
//! Lacework faults come from the API v2 emulator (each fault on every endpoint, the token request
//! included), OPA faults from a real OPA server (`helios_testkit::OpaServer`) with one package per
//! fault; "down" and "connection refused" point at a port nobody listens on. One emulator and one
//! OPA serve every cell; each (fault, failure policy) pair gets its own webhook (a fresh Lacework
//! client, so no token or cool-down state leaks between cells) and sends its three reviews, one
//! per mode (namespaces `enforce`, `warn`, `audit` through `namespace_modes`), at once.
#![cfg(feature = "webhook")]

mod support;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use helios_core::admission::{AdmissionController, ControllerConfig, FailurePolicy, Mode};
use helios_core::image::ImageRef;
use helios_core::policy::{EmbeddedEvaluator, OpaEvaluator, Package, PolicyEvaluator, PolicySet};
use helios_core::scan::lacework::{LaceworkClient, LaceworkSource, NoScan};
use helios_core::scan::{Lookup, ScanReport, ScanSource};
use helios_lacework_emulator::{Emulator, Fault, FaultKind};
use helios_testkit::{OpaServer, free_port};
use serde_json::{Value, json};

type TestResult<T = ()> = std::result::Result<T, Box<dyn std::error::Error>>;

/// The whole review's deadline: short, so the "slow" cells cost under a second each.
const DEADLINE_MS: u64 = 800;
/// How long a slow Lacework answers: well past the deadline.
const SLOW_MS: u64 = 3000;
/// Scanned by Lacework without findings (the emulator's data): allowed when nothing fails.
const CLEAN: &str = "registry.example.com/team/clean-app:3.0@sha256:c1ea000000000000000000000000000000000000000000000000000000000000";

const MODES: [Mode; 3] = [Mode::Enforce, Mode::Warn, Mode::Audit];
const POLICIES: [FailurePolicy; 2] = [FailurePolicy::Closed, FailurePolicy::Open];

/// Where a row's fault is.
enum Backend {
    /// Lacework through the emulator with this fault on every request (`None`: healthy), or
    /// refusing connections.
    Lacework(Option<FaultKind>),
    LaceworkRefused,
    /// OPA queried at this package (`None`: nobody listens).
    Opa(Option<&'static str>),
}

/// One row of the matrix: a fault and what docs/admission.md says it becomes.
struct Row {
    service: &'static str,
    fault: &'static str,
    backend: Backend,
    /// `None`: the image is checked and allowed. `Some((kind, reason))`: the image cannot be
    /// checked, a failure of metric kind `kind` whose text contains `reason`.
    failure: Option<(&'static str, &'static str)>,
}

fn rows() -> Vec<Row> {
    use Backend::*;
    let lw = |fault: &'static str, kind: FaultKind, reason: &'static str| Row {
        service: "Lacework",
        fault,
        backend: Lacework(Some(kind)),
        failure: Some(("scan", reason)),
    };
    let status = |status| FaultKind::ServerError { status };
    vec![
        Row {
            service: "Lacework",
            fault: "none (control)",
            backend: Lacework(None),
            failure: None,
        },
        lw("401", FaultKind::Unauthorized, "Lacework"),
        lw("403", status(403), "Lacework"),
        lw("404", status(404), "Lacework"),
        lw(
            "429 + Retry-After: 1",
            FaultKind::RateLimit {
                retry_after: Some(1),
                reset: None,
            },
            "Lacework",
        ),
        lw("500", status(500), "Lacework"),
        lw("503", status(503), "Lacework"),
        Row {
            failure: Some(("deadline", "deadline")),
            ..lw(
                "slow (3 s, deadline 0.8 s)",
                FaultKind::Slow { delay_ms: SLOW_MS },
                "",
            )
        },
        lw("malformed JSON", FaultKind::Malformed, "Lacework"),
        lw("truncated body", FaultKind::Truncated, "Lacework"),
        Row {
            service: "Lacework",
            fault: "connection refused",
            backend: LaceworkRefused,
            failure: Some(("scan", "connection refused")),
        },
        Row {
            service: "OPA",
            fault: "none (control)",
            backend: Opa(Some("helios")),
            failure: None,
        },
        Row {
            service: "OPA",
            fault: "down",
            backend: Opa(None),
            failure: Some(("policy", "connection refused")),
        },
        Row {
            service: "OPA",
            fault: "500",
            backend: Opa(Some("conflict")),
            failure: Some(("policy", "answered with an error (eval_conflict_error)")),
        },
        Row {
            service: "OPA",
            fault: "undefined decision",
            backend: Opa(Some("acme.missing")),
            failure: Some(("policy", "undefined")),
        },
        Row {
            service: "OPA",
            fault: "wrong type",
            backend: Opa(Some("wrongtype")),
            failure: Some(("policy", "deny")),
        },
        Row {
            service: "OPA",
            fault: "slow (past the deadline)",
            backend: Opa(Some("slow")),
            failure: Some(("deadline", "deadline")),
        },
    ]
}

/// A scan source that finds every image scanned and clean (for the OPA rows).
struct Clean;

#[async_trait]
impl ScanSource for Clean {
    async fn scan(&self, _image: &ImageRef, _lookup: Lookup) -> helios_core::Result<ScanReport> {
        Ok(ScanReport::completed("file", None, None, Vec::new()))
    }
}

/// An OPA with the default policy at `helios` and one package per fault.
fn opa() -> TestResult<OpaServer> {
    let mut set = PolicySet::new();
    set.add_default_policy();
    let mut builder = OpaServer::builder();
    for m in set.modules() {
        builder = builder.policy("helios.rego", m.source.clone());
    }
    Ok(builder
        // Two values for one complete rule: OPA answers 500 eval_conflict_error.
        .policy(
            "conflict.rego",
            "package conflict\n\npolicy_id := \"a\" if input.version == 1\n\npolicy_id := \"b\" if input.version == 1\n",
        )
        // `deny` must be a set of messages.
        .policy("wrongtype.rego", "package wrongtype\n\ndeny := true\n")
        // Counts a hundred million numbers: seconds of work.
        .policy(
            "slow.rego",
            "package slow\n\ndeny contains \"slow\" if count([x | some x in numbers.range(1, 100000000)]) > 0\n",
        )
        .start()?)
}

fn review(namespace: &str, uid: &str) -> Vec<u8> {
    json!({
        "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
        "request": {
            "uid": uid,
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "namespace": namespace, "operation": "CREATE",
            "userInfo": {"username": "alice"},
            "object": {"apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": "app", "namespace": namespace},
                "spec": {"containers": [{"name": "app", "image": CLEAN}]}}
        }
    })
    .to_string()
    .into_bytes()
}

fn config(policy: FailurePolicy) -> ControllerConfig {
    ControllerConfig {
        mode: Mode::Enforce,
        namespace_modes: MODES
            .iter()
            .map(|m| (m.as_str().to_string(), *m))
            .collect::<BTreeMap<_, _>>(),
        failure_policy: policy,
        deadline_ms: DEADLINE_MS,
        ..Default::default()
    }
}

fn lacework(url: String, emu: &Emulator) -> TestResult<Arc<dyn ScanSource>> {
    let client = LaceworkClient::builder()
        .account(url)
        .api_key(emu.key_id())
        .api_secret(emu.secret())
        .retries(1, Duration::from_millis(10), Duration::from_millis(20))
        .build()?;
    Ok(Arc::new(LaceworkSource::new(client, NoScan::RequestScan)))
}

/// What one review answered.
struct Answer {
    allowed: bool,
    code: Option<u64>,
    message: String,
    warnings: Vec<String>,
    annotations: BTreeMap<String, String>,
}

impl Answer {
    fn parse(body: &str) -> TestResult<Answer> {
        let v: Value = serde_json::from_str(body)?;
        let r = &v["response"];
        let strings = |v: &Value| -> Vec<String> {
            v.as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|s| s.as_str().map(String::from))
                        .collect()
                })
                .unwrap_or_default()
        };
        Ok(Answer {
            allowed: r["allowed"].as_bool().ok_or("no allowed")?,
            code: r["status"]["code"].as_u64(),
            message: r["status"]["message"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
            warnings: strings(&r["warnings"]),
            annotations: r["auditAnnotations"]
                .as_object()
                .map(|o| {
                    o.iter()
                        .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                        .collect()
                })
                .unwrap_or_default(),
        })
    }
}

/// Checks one cell against docs/admission.md; returns its summary for the table.
fn check(row: &Row, mode: Mode, policy: FailurePolicy, a: &Answer) -> Result<String, String> {
    let cell = format!("{} {} / {mode:?} / {policy:?}", row.service, row.fault);
    let fail = |what: String| Err(format!("{cell}: {what}"));
    let decision = a.annotations.get("decision").cloned().unwrap_or_default();
    if a.annotations.get("mode").map(String::as_str) != Some(mode.as_str()) {
        return fail(format!("mode annotation {:?}", a.annotations.get("mode")));
    }
    let Some((_, reason)) = row.failure else {
        if !a.allowed || decision != "allow" || !a.warnings.is_empty() {
            return fail(format!(
                "a healthy backend must allow: {} {decision} {:?}",
                a.allowed, a.warnings
            ));
        }
        return Ok("✓ `allow`".into());
    };
    let errors = a.annotations.get("errors").cloned().unwrap_or_default();
    if !errors.contains(reason) || !errors.contains("could not check image") {
        return fail(format!("errors annotation {errors:?} lacks {reason:?}"));
    }
    let closed = policy == FailurePolicy::Closed;
    let (allowed, want_decision) = match mode {
        Mode::Enforce if closed => (false, "fail_closed"),
        Mode::Enforce => (true, "fail_open"),
        _ if closed => (true, "would-deny"),
        _ => (true, "fail_open"),
    };
    if a.allowed != allowed || decision != want_decision {
        return fail(format!(
            "allowed {} decision {decision}, want {allowed} {want_decision}",
            a.allowed
        ));
    }
    if !allowed {
        if a.code != Some(403)
            || !a.message.contains(reason)
            || !a.message.contains("(failure policy: closed)")
        {
            return fail(format!("deny {:?} {:?}", a.code, a.message));
        }
        if !a.warnings.is_empty() {
            return fail(format!("warnings on a denial: {:?}", a.warnings));
        }
        return Ok("✗ 403 `fail_closed`".into());
    }
    if a.code.is_some() && a.code != Some(200) {
        return fail(format!("status code {:?} on an allowed answer", a.code));
    }
    let why = match mode {
        Mode::Enforce => "allowed (failure policy: open)",
        _ => "allowed (warn mode)",
    };
    match mode {
        Mode::Audit if !a.warnings.is_empty() => {
            fail(format!("audit mode warns: {:?}", a.warnings))
        }
        Mode::Audit => Ok(format!("✓ `{decision}`")),
        // The verdict first, then the reason (the API server keeps 256 bytes of a warning).
        _ if a.warnings.len() != 1
            || !a.warnings[0].starts_with(&format!("helios: {why}: could not check image")) =>
        {
            fail(format!(
                "warnings {:?}, want one ending {why:?}",
                a.warnings
            ))
        }
        _ => Ok(format!("✓ ⚠ `{decision}`")),
    }
}

fn metric(text: &str, series: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_fault_in_every_mode_and_failure_policy() -> TestResult {
    let started = Instant::now();
    let emu = Emulator::builder().start().await?;
    let opa = opa()?;
    let dead = format!("http://127.0.0.1:{}", free_port()?);

    let mut problems = Vec::new();
    let mut table = String::from(
        "| service | fault | failure (metric kind) | enforce, closed | enforce, open | warn, closed | warn, open | audit, closed | audit, open |\n|---|---|---|---|---|---|---|---|---|\n",
    );
    for row in rows() {
        let mut cells = Vec::new();
        for policy in POLICIES {
            emu.reset();
            let (source, evaluator): (Arc<dyn ScanSource>, Arc<dyn PolicyEvaluator>) =
                match &row.backend {
                    Backend::Lacework(fault) => {
                        if let Some(kind) = fault {
                            emu.inject(Fault {
                                endpoint: None,
                                fault: kind.clone(),
                                times: 100_000,
                            });
                        }
                        (
                            lacework(emu.url(), &emu)?,
                            Arc::new(EmbeddedEvaluator::default_policy()?),
                        )
                    }
                    Backend::LaceworkRefused => (
                        lacework(dead.clone(), &emu)?,
                        Arc::new(EmbeddedEvaluator::default_policy()?),
                    ),
                    Backend::Opa(package) => {
                        let url = if package.is_some() {
                            opa.url()
                        } else {
                            dead.clone()
                        };
                        let opa = OpaEvaluator::builder(url)
                            .package(Package::parse(package.unwrap_or("helios"))?)
                            .build()?;
                        (Arc::new(Clean), Arc::new(opa))
                    }
                };
            let controller = AdmissionController::new(source, evaluator, config(policy));
            let hook =
                support::webhook::serve_tls(controller, "localhost", Duration::from_secs(60))
                    .await?;
            let client = reqwest::Client::builder()
                .use_rustls_tls()
                .timeout(Duration::from_secs(10))
                .add_root_certificate(reqwest::Certificate::from_pem(hook.ca_pem.as_bytes())?)
                .resolve("localhost", hook.addr)
                .build()?;
            let url = format!("https://localhost:{}/validate", hook.addr.port());
            let answers = futures_util::future::join_all(MODES.iter().map(|mode| {
                let (client, url) = (client.clone(), url.clone());
                async move {
                    let resp = client
                        .post(url)
                        .header("content-type", "application/json")
                        .body(review(mode.as_str(), &format!("uid-{}", mode.as_str())))
                        .send()
                        .await?;
                    let status = resp.status().as_u16();
                    let body = resp.text().await?;
                    Ok::<_, reqwest::Error>((status, body))
                }
            }))
            .await;
            for (mode, answer) in MODES.iter().zip(answers) {
                let (status, body): (u16, String) = answer?;
                assert_eq!(status, 200, "{body}");
                match check(&row, *mode, policy, &Answer::parse(&body)?) {
                    Ok(cell) => cells.push((*mode, policy, cell)),
                    Err(problem) => {
                        problems.push(format!("{problem}\n    answer: {body}"));
                        cells.push((*mode, policy, "**mismatch**".into()));
                    }
                }
            }
            // Metrics: one review per mode with its verdict, one failure per review.
            let text = hook.metrics.encode();
            for mode in MODES {
                let verdict = match (row.failure, mode, policy) {
                    (None, _, _) => "allow",
                    (Some(_), Mode::Enforce, FailurePolicy::Closed) => "fail_closed",
                    (Some(_), _, _) => "fail_open",
                };
                let series = format!(
                    "helios_admission_reviews_total{{decision=\"{verdict}\",mode=\"{}\"}}",
                    mode.as_str()
                );
                if metric(&text, &series) != Some(1) {
                    problems.push(format!(
                        "{} {} / {mode:?} / {policy:?}: {series} is not 1",
                        row.service, row.fault
                    ));
                }
            }
            if let Some((kind, _)) = row.failure {
                let series = format!("helios_admission_backend_errors_total{{kind=\"{kind}\"}}");
                if metric(&text, &series) != Some(3) {
                    problems.push(format!(
                        "{} {} / {policy:?}: {series} is {:?}, want 3\n{text}",
                        row.service,
                        row.fault,
                        metric(&text, &series)
                    ));
                }
            }
        }
        let cell = |mode: Mode, policy: FailurePolicy| {
            cells
                .iter()
                .find(|(m, p, _)| *m == mode && *p == policy)
                .map(|(_, _, c)| c.as_str())
                .unwrap_or("?")
        };
        let failure = match row.failure {
            None => "—".to_string(),
            Some((kind, reason)) => format!("`{kind}`: \"…{reason}…\""),
        };
        let _ = writeln!(
            table,
            "| {} | {} | {failure} | {} | {} | {} | {} | {} | {} |",
            row.service,
            row.fault,
            cell(Mode::Enforce, FailurePolicy::Closed),
            cell(Mode::Enforce, FailurePolicy::Open),
            cell(Mode::Warn, FailurePolicy::Closed),
            cell(Mode::Warn, FailurePolicy::Open),
            cell(Mode::Audit, FailurePolicy::Closed),
            cell(Mode::Audit, FailurePolicy::Open),
        );
    }
    let out = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/fault-matrix.md");
    std::fs::write(&out, &table)?;
    println!(
        "{table}\n(written to {}, {:?})",
        out.display(),
        started.elapsed()
    );
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    Ok(())
}
