//! The default policy, embedded (regorus, in-process) vs a real OPA server over loopback HTTP,
//! side by side on inputs with 10, 1,000 and 10,000 vulnerabilities.
//!
//! ```text
//! cargo bench -p helios-core --bench policy
//! ```
//!
//! Prints criterion's report per benchmark, then one table: per-decision medians and the ratio
//! OPA / embedded, measured in this run. Without an `opa` binary (see helios-testkit: set
//! `HELIOS_OPA_BIN` or run `scripts/install-tools.sh opa`) the OPA half is skipped with a notice.
//! Under `cargo test --all-targets` (no `--bench` flag) it only checks that both paths decide,
//! on the smallest input, without starting OPA.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion};
use helios_core::policy::{
    EmbeddedEvaluator, OpaEvaluator, PolicyEvaluator, PolicyInput, PolicySet,
};
use helios_testkit::OpaServer;
use serde_json::json;

const SIZES: [usize; 3] = [10, 1_000, 10_000];
const SEVERITIES: [&str; 6] = ["critical", "high", "medium", "low", "info", "unknown"];

/// A CI input with `n` vulnerabilities of mixed severities, fixes and statuses.
fn input_with(n: usize) -> helios_core::Result<PolicyInput> {
    let mut summary = json!({"critical": 0, "high": 0, "medium": 0, "low": 0, "info": 0,
                             "unknown": 0, "total": 0, "fixable": 0});
    let vulns: Vec<_> = (0..n)
        .map(|i| {
            let severity = SEVERITIES[i % SEVERITIES.len()];
            let fixable = i % 3 != 0;
            let status = if i % 7 == 0 { "fixed" } else { "vulnerable" };
            // The summary counts every listed finding, as the scan model does.
            summary[severity] = json!(summary[severity].as_u64().unwrap_or(0) + 1);
            summary["total"] = json!(summary["total"].as_u64().unwrap_or(0) + 1);
            if fixable {
                summary["fixable"] = json!(summary["fixable"].as_u64().unwrap_or(0) + 1);
            }
            json!({
                "id": format!("CVE-2024-{i:05}"), "severity": severity, "status": status,
                "package": {"name": format!("pkg{}", i % 97), "version": format!("1.{}.{}", i % 13, i % 5),
                            "namespace": "debian:12"},
                "fix": {"available": fixable, "version": if fixable { json!(format!("2.{}", i % 11)) } else { json!(null) }}
            })
        })
        .collect();
    PolicyInput::from_value(json!({
        "version": 1, "stage": "ci",
        "image": {"reference": "registry.example.com/team/app:1.4", "registry": "registry.example.com",
                  "repository": "team/app", "tag": "1.4", "digest": null},
        "scan": {"status": "completed", "source": "lacework", "id": "bench", "scanned_at": null,
                 "error": null, "summary": summary, "vulnerabilities": vulns},
        "workload": null, "ci": {"pipeline": "bench"}
    }))
}

/// Per-decision times of criterion's samples, kept to print medians side by side.
type Samples = Arc<Mutex<Vec<f64>>>;

fn median(samples: &Samples) -> Option<f64> {
    let mut v = samples.lock().ok()?.clone();
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    Some(v[v.len() / 2])
}

fn start_opa(version: &str) -> Result<OpaServer, String> {
    let mut set = PolicySet::new();
    set.add_default_policy();
    let mut builder = OpaServer::builder().revision(version);
    for m in set.modules() {
        builder = builder.policy("helios.rego", m.source.clone());
    }
    builder.start().map_err(|e| e.to_string())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let bench_mode = std::env::args().any(|a| a == "--bench");
    // The 250 ms default limit is for admission; 10,000 findings may take longer on a busy machine.
    let embedded = EmbeddedEvaluator::builder()
        .time_limit(Duration::from_secs(30))
        .build()?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;

    if !bench_mode {
        // `cargo test --all-targets`: prove the bench decides, cheaply, and never start OPA.
        let decision = embedded.evaluate_sync(&input_with(SIZES[0])?)?;
        assert!(!decision.allowed);
        println!(
            "bench policy: test mode, embedded decides; run `cargo bench -p helios-core --bench policy` to measure"
        );
        return Ok(());
    }

    let server = match start_opa(embedded.version()) {
        Ok(server) => Some(server),
        Err(e) => {
            println!("SKIP (b) OPA: {e}\n  set HELIOS_OPA_BIN or run scripts/install-tools.sh opa");
            None
        }
    };
    let opa = match &server {
        Some(s) => Some(
            OpaEvaluator::builder(s.url())
                .timeout(Duration::from_secs(30))
                .build()?,
        ),
        None => None,
    };

    let mut c = Criterion::default().configure_from_args();
    let mut rows = Vec::new();
    for n in SIZES {
        let input = input_with(n)?;
        let expected = embedded.evaluate_sync(&input)?;
        let mut group = c.benchmark_group("default_policy");
        if n >= 10_000 {
            group
                .sample_size(20)
                .measurement_time(Duration::from_secs(10));
        }

        let emb: Samples = Arc::default();
        let samples = emb.clone();
        group.bench_with_input(BenchmarkId::new("embedded", n), &input, |b, input| {
            b.iter_custom(|iters| {
                let started = Instant::now();
                for _ in 0..iters {
                    std::hint::black_box(embedded.evaluate_sync(input).ok());
                }
                let took = started.elapsed();
                if let Ok(mut s) = samples.lock() {
                    s.push(took.as_secs_f64() / iters as f64);
                }
                took
            })
        });

        // The route evaluate_sync replaced: typed input -> serde_json::Value -> regorus::Value.
        group.bench_with_input(
            BenchmarkId::new("embedded_via_json", n),
            &input,
            |b, input| {
                b.iter(|| {
                    serde_json::to_value(input)
                        .ok()
                        .map(|json| embedded.evaluate_json(json).ok())
                })
            },
        );

        let remote: Samples = Arc::default();
        if let Some(opa) = &opa {
            // Same decision first: a benchmark of a wrong answer measures nothing.
            let mut got = rt.block_on(opa.evaluate(&input))?;
            got.backend = expected.backend;
            got.decision_id = None;
            assert_eq!(
                got, expected,
                "OPA and embedded disagree on {n} vulnerabilities"
            );
            let samples = remote.clone();
            group.bench_with_input(BenchmarkId::new("opa_http", n), &input, |b, input| {
                b.iter_custom(|iters| {
                    let started = Instant::now();
                    for _ in 0..iters {
                        std::hint::black_box(rt.block_on(opa.evaluate(input)).ok());
                    }
                    let took = started.elapsed();
                    if let Ok(mut s) = samples.lock() {
                        s.push(took.as_secs_f64() / iters as f64);
                    }
                    took
                })
            });
        }
        group.finish();
        rows.push((n, median(&emb), median(&remote)));
    }
    c.final_summary();

    let ms = |v: Option<f64>| v.map_or("skipped".to_string(), |s| format!("{:.3} ms", s * 1e3));
    println!("\nper-decision medians, default policy (same run):");
    println!(
        "{:>8} | {:>12} | {:>12} | {:>9}",
        "vulns", "embedded", "opa (http)", "opa/emb"
    );
    for (n, e, o) in rows {
        let ratio = match (e, o) {
            (Some(e), Some(o)) if e > 0.0 => format!("{:.1}x", o / e),
            _ => "n/a".into(),
        };
        println!("{n:>8} | {:>12} | {:>12} | {ratio:>9}", ms(e), ms(o));
    }
    drop(server);
    Ok(())
}
