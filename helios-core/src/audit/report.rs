//! The audit's outputs: JSON and Markdown reports, and `helios_audit_*` Prometheus gauges.

use std::fmt::Write as _;
use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::audit::{AuditReport, WorkloadResult};

/// Violations quoted per container in the Markdown report before "and N more".
const MAX_VIOLATIONS: usize = 5;

impl AuditReport {
    /// The report as pretty JSON (every field but the allowed workloads).
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
    }

    /// The report as Markdown: counts, then one section per workload that would not be
    /// allowed, with each failing container's violations.
    pub fn to_markdown(&self) -> String {
        let s = &self.summary;
        let mut md = String::from("# Helios audit\n\n");
        let _ = writeln!(
            md,
            "{} workloads audited ({} objects listed, {} skipped), {} distinct images, {} scan lookups, {:.2} s, started {}.",
            s.audited,
            s.objects,
            s.skipped,
            s.images,
            s.lookups,
            self.duration_seconds,
            self.started_at
        );
        if let Some(p) = &self.policy {
            let _ = writeln!(md, "Policy `{}` (`{}`).", p.id, p.version);
        }
        md.push_str("\n| verdict | workloads |\n|---|---|\n");
        for (verdict, n) in &s.verdicts {
            let _ = writeln!(md, "| {verdict} | {n} |");
        }
        if self.findings.is_empty() {
            md.push_str("\nEvery audited workload is allowed by the policy today.\n");
            return md;
        }
        let _ = writeln!(
            md,
            "\n## Workloads the policy would not allow today ({})",
            self.findings.len()
        );
        for w in &self.findings {
            markdown_workload(&mut md, w);
        }
        md
    }
}

fn markdown_workload(md: &mut String, w: &WorkloadResult) {
    let _ = writeln!(
        md,
        "\n### {} {}/{} — {} ({} mode)\n",
        w.kind,
        w.namespace,
        escape(&w.name),
        w.verdict,
        w.mode
    );
    for c in &w.containers {
        if c.allowed == Some(true) {
            continue;
        }
        let _ = write!(
            md,
            "- `{}` ({} {}), scan {}",
            escape(&c.image),
            c.container.kind_name(),
            escape(&c.container.name),
            c.scan_status
        );
        if let Some(e) = &c.error {
            let _ = write!(md, ": {}", escape(e));
        }
        md.push('\n');
        for v in c.violations.iter().take(MAX_VIOLATIONS) {
            let _ = writeln!(md, "  - {}", escape(&v.msg));
        }
        let more = c.violations.len().saturating_sub(MAX_VIOLATIONS);
        if more > 0 {
            let _ = writeln!(md, "  - and {more} more");
        }
    }
}

/// Keeps text from workloads (names, images, policy messages) from breaking the Markdown.
fn escape(text: &str) -> String {
    text.replace(['\n', '\r'], " ").replace('`', "'")
}

impl crate::policy::Container {
    fn kind_name(&self) -> &'static str {
        match self.kind {
            crate::policy::ContainerType::Container => "container",
            crate::policy::ContainerType::Init => "init container",
            crate::policy::ContainerType::Ephemeral => "ephemeral container",
        }
    }
}

/// Labels of the per-namespace gauge: no image or CVE labels, so the series count is bounded
/// by namespaces × verdicts.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct NamespaceVerdict {
    namespace: String,
    verdict: String,
}

/// The `helios_audit_*` gauges of the last audit.
#[derive(Debug, Default)]
pub struct AuditMetrics {
    workloads: Family<NamespaceVerdict, Gauge>,
    images: Gauge,
    lookups: Gauge,
    findings: Gauge,
    duration: Gauge<f64, AtomicU64>,
    last_run: Gauge,
}

impl AuditMetrics {
    /// Gauges at zero, not yet registered.
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers the gauges (names `helios_audit_*`) in `registry`.
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "helios_audit_workloads",
            "Workloads of the last audit per namespace and verdict",
            self.workloads.clone(),
        );
        registry.register(
            "helios_audit_images",
            "Distinct images in the last audit",
            self.images.clone(),
        );
        registry.register(
            "helios_audit_scan_lookups",
            "Scan lookups made by the last audit",
            self.lookups.clone(),
        );
        registry.register(
            "helios_audit_findings",
            "Workloads the policy would not allow in the last audit",
            self.findings.clone(),
        );
        registry.register(
            "helios_audit_duration_seconds",
            "Duration of the last audit",
            self.duration.clone(),
        );
        registry.register(
            "helios_audit_last_run_timestamp_seconds",
            "When the last audit finished (Unix time)",
            self.last_run.clone(),
        );
    }

    /// Sets every gauge from `report`; namespaces and verdicts of earlier audits that are gone
    /// now disappear rather than keep stale values.
    pub fn record(&self, report: &AuditReport) {
        self.workloads.clear();
        for (namespace, verdicts) in &report.namespaces {
            for (verdict, n) in verdicts {
                self.workloads
                    .get_or_create(&NamespaceVerdict {
                        namespace: namespace.clone(),
                        verdict: verdict.clone(),
                    })
                    .set(gauge_value(*n));
            }
        }
        self.images.set(gauge_value(report.summary.images));
        self.lookups.set(gauge_value(report.summary.lookups));
        self.findings.set(gauge_value(report.findings.len()));
        self.duration.set(report.duration_seconds);
        self.last_run.set(chrono::Utc::now().timestamp());
    }

    /// The gauges alone in OpenMetrics text (for `helios audit --metrics FILE`, e.g. a node
    /// exporter's textfile collector).
    pub fn encode(&self) -> String {
        let mut registry = Registry::default();
        self.register(&mut registry);
        let mut text = String::new();
        let _ = prometheus_client::encoding::text::encode(&mut text, &registry);
        text
    }
}

fn gauge_value(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}
