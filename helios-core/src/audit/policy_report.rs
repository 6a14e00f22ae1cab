//! One `wgpolicyk8s.io/v1alpha2` PolicyReport per audited namespace, created, updated and
//! pruned by Helios — the report format of the Kubernetes Policy working group that Kyverno,
//! Gatekeeper (via its exporter) and Policy Reporter read.
//!
//! Each report is named [`REPORT_NAME`], labelled `app.kubernetes.io/managed-by: helios`, and
//! holds one result per audited workload: `pass` (allowed), `fail` (denied in enforce mode),
//! `warn` (denied in warn or audit mode), `error` (an image could not be checked). Reports are
//! written with server-side apply (field manager `helios`), so a rerun with the same verdicts
//! changes nothing, and a namespace with no audited workload left loses its Helios report.
//! Reports Helios did not label are never touched.

use std::collections::BTreeSet;

use kube::Client;
use kube::api::{Api, ApiResource, DeleteParams, DynamicObject, ListParams, Patch, PatchParams};
use serde_json::{Value, json};

use crate::audit::lister::kube_error;
use crate::audit::{AuditReport, WorkloadResult};

/// The name of Helios's PolicyReport in each namespace.
pub const REPORT_NAME: &str = "helios-audit";
/// The label selecting the reports Helios owns.
pub const MANAGED_BY: (&str, &str) = ("app.kubernetes.io/managed-by", "helios");
/// The PolicyReport API version Helios writes.
pub const API_VERSION: &str = "wgpolicyk8s.io/v1alpha2";
/// Budget of a report's `results`, in bytes of JSON: far below the API server's 1.5 MiB
/// request limit (etcd's default), whatever the number of workloads in the namespace.
pub const MAX_RESULTS_BYTES: usize = 1024 * 1024;
/// Annotation counting the results left out of a report over [`MAX_RESULTS_BYTES`] (the
/// complete list is in `helios audit`'s JSON report).
pub const OMITTED_ANNOTATION: &str = "helios.dev/omitted-results";
/// Server-side apply field manager.
const FIELD_MANAGER: &str = "helios";

/// What a sync did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SyncOutcome {
    /// Namespaces whose report was created.
    pub created: Vec<String>,
    /// Namespaces whose existing report was applied again.
    pub updated: Vec<String>,
    /// Namespaces whose report was deleted (no audited workload left).
    pub pruned: Vec<String>,
}

fn resource() -> ApiResource {
    ApiResource {
        group: "wgpolicyk8s.io".into(),
        version: "v1alpha2".into(),
        api_version: API_VERSION.into(),
        kind: "PolicyReport".into(),
        plural: "policyreports".into(),
    }
}

/// Whether the PolicyReport CRD (`policyreports.wgpolicyk8s.io`, version `v1alpha2`) is served.
pub async fn is_installed(client: &Client) -> crate::Result<bool> {
    match client.list_api_group_resources(API_VERSION).await {
        Ok(list) => Ok(list.resources.iter().any(|r| r.name == "policyreports")),
        Err(kube::Error::Api(status)) if status.code == 404 => Ok(false),
        Err(e) => Err(kube_error("discovering wgpolicyk8s.io", e)),
    }
}

/// Brings the cluster's Helios PolicyReports in line with `report`: one per namespace of the
/// audit (created or updated), none elsewhere (pruned).
pub async fn sync(client: &Client, report: &AuditReport) -> crate::Result<SyncOutcome> {
    let all: Api<DynamicObject> = Api::all_with(client.clone(), &resource());
    let selector = format!("{}={}", MANAGED_BY.0, MANAGED_BY.1);
    let existing: BTreeSet<String> = all
        .list(&ListParams::default().labels(&selector))
        .await
        .map_err(|e| kube_error("listing policyreports", e))?
        .items
        .into_iter()
        .filter(|r| r.metadata.name.as_deref() == Some(REPORT_NAME))
        .filter_map(|r| r.metadata.namespace)
        .collect();

    let mut outcome = SyncOutcome::default();
    let params = PatchParams::apply(FIELD_MANAGER).force();
    for namespace in report.namespaces.keys() {
        let body = policy_report(namespace, report);
        let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), namespace, &resource());
        api.patch(REPORT_NAME, &params, &Patch::Apply(&body))
            .await
            .map_err(|e| kube_error(&format!("applying policyreport in {namespace}"), e))?;
        if existing.contains(namespace) {
            outcome.updated.push(namespace.clone());
        } else {
            outcome.created.push(namespace.clone());
        }
    }
    for namespace in existing {
        if report.namespaces.contains_key(&namespace) {
            continue;
        }
        let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), &namespace, &resource());
        match api.delete(REPORT_NAME, &DeleteParams::default()).await {
            Ok(_) => outcome.pruned.push(namespace),
            // Already gone (its namespace was deleted meanwhile): nothing to prune.
            Err(kube::Error::Api(status)) if status.code == 404 => {}
            Err(e) => {
                return Err(kube_error(
                    &format!("pruning policyreport in {namespace}"),
                    e,
                ));
            }
        }
    }
    Ok(outcome)
}

/// The PolicyReport of `namespace` for `report`.
pub fn policy_report(namespace: &str, report: &AuditReport) -> Value {
    let policy = report
        .policy
        .as_ref()
        .map_or_else(|| "helios".to_string(), |p| p.id.clone());
    let seconds = chrono::DateTime::parse_from_rfc3339(&report.started_at)
        .map(|t| t.timestamp())
        .unwrap_or_default();
    let workloads = report
        .findings
        .iter()
        .chain(&report.passed)
        .filter(|w| w.namespace == namespace);
    let mut summary = [
        ("pass", 0u64),
        ("fail", 0),
        ("warn", 0),
        ("error", 0),
        ("skip", 0),
    ];
    let mut results = Vec::new();
    // Findings come first in `workloads`, so when the budget runs out only passes (then the
    // least important findings) are left out; the summary still counts every workload.
    let mut size = 0usize;
    let mut omitted = 0usize;
    for w in workloads {
        let result = result_of(w);
        if let Some(slot) = summary.iter_mut().find(|(k, _)| *k == result) {
            slot.1 += 1;
        }
        let mut resource = json!({
            "apiVersion": w.api_version,
            "kind": w.kind,
            "namespace": w.namespace,
            "name": w.name,
        });
        // The CRD's fields are not nullable: absent values are left out, never `null`.
        if let Some(uid) = &w.uid {
            resource["uid"] = json!(uid);
        }
        let mut entry = json!({
            "source": "helios",
            "policy": policy,
            "rule": "images",
            "category": "Image vulnerabilities",
            "result": result,
            "scored": true,
            "message": message_of(w),
            "timestamp": {"seconds": seconds, "nanos": 0},
            "resources": [resource],
            "properties": {"verdict": w.verdict, "mode": w.mode.as_str()},
        });
        if let Some(severity) = severity_of(w) {
            entry["severity"] = json!(severity);
        }
        let entry_size = entry.to_string().len();
        if size + entry_size > MAX_RESULTS_BYTES {
            omitted += 1;
            continue;
        }
        size += entry_size;
        results.push(entry);
    }
    let summary: serde_json::Map<String, Value> = summary
        .iter()
        .map(|(k, n)| ((*k).to_string(), json!(n)))
        .collect();
    let mut body = json!({
        "apiVersion": API_VERSION,
        "kind": "PolicyReport",
        "metadata": {
            "name": REPORT_NAME,
            "namespace": namespace,
            "labels": {MANAGED_BY.0: MANAGED_BY.1},
        },
        "summary": summary,
        "results": results,
    });
    if omitted > 0 {
        body["metadata"]["annotations"] = json!({OMITTED_ANNOTATION: omitted.to_string()});
    }
    body
}

/// PolicyReport result of a workload verdict.
fn result_of(w: &WorkloadResult) -> &'static str {
    match w.verdict.as_str() {
        "allow" => "pass",
        "deny" => "fail",
        "warn" | "audit" => "warn",
        _ => "error",
    }
}

/// The highest severity among the failing containers' violations that name one: a `severity`
/// field, else a `code` ending in a severity (the default policy's `critical`, `fixable-high`);
/// `None` when none does.
fn severity_of(w: &WorkloadResult) -> Option<&'static str> {
    const ORDER: [&str; 5] = ["critical", "high", "medium", "low", "info"];
    let found: BTreeSet<usize> = w
        .containers
        .iter()
        .flat_map(|c| &c.violations)
        .filter_map(|v| {
            v.details
                .get("severity")
                .and_then(Value::as_str)
                .or_else(|| {
                    v.details
                        .get("code")
                        .and_then(Value::as_str)
                        .and_then(|c| c.rsplit('-').next())
                })
        })
        .filter_map(|s| ORDER.iter().position(|o| o.eq_ignore_ascii_case(s)))
        .collect();
    found.first().and_then(|i| ORDER.get(*i)).copied()
}

/// One line per failing container, bounded so a report of a large namespace stays far below
/// etcd's object size limit.
fn message_of(w: &WorkloadResult) -> String {
    const MAX: usize = 1024;
    let mut parts = Vec::new();
    for c in w.containers.iter().filter(|c| c.allowed != Some(true)) {
        let mut text = format!("{} ({}): ", c.image, c.container.name);
        if let Some(e) = &c.error {
            text.push_str(e);
        } else {
            let msgs: Vec<&str> = c.violations.iter().map(|v| v.msg.as_str()).collect();
            text.push_str(&msgs.join("; "));
        }
        parts.push(text);
    }
    let message = if parts.is_empty() {
        "every image is allowed by the policy".to_string()
    } else {
        parts.join(" | ")
    };
    shorten(message, MAX)
}

/// Cuts `text` to at most `max` bytes on a character boundary, marking the cut.
fn shorten(mut text: String, max: usize) -> String {
    if text.len() <= max {
        return text;
    }
    let mut end = max.saturating_sub('…'.len_utf8());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text.truncate(end);
    text.push('…');
    text
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::admission::Mode;
    use crate::audit::{AuditSummary, ContainerResult};
    use crate::policy::{Container, ContainerType, Finding};

    fn workload(name: &str, allowed: bool) -> WorkloadResult {
        let violations = if allowed {
            Vec::new()
        } else {
            let mut details = serde_json::Map::new();
            details.insert("code".into(), json!("fixable-high"));
            vec![Finding {
                msg: format!("CVE-2024-0001 (high) in {name}"),
                details,
            }]
        };
        WorkloadResult {
            api_version: "apps/v1".into(),
            kind: "Deployment".into(),
            namespace: "shop".into(),
            name: name.into(),
            uid: None,
            mode: Mode::Enforce,
            verdict: if allowed { "allow" } else { "deny" }.into(),
            containers: vec![ContainerResult {
                container: Container {
                    name: "app".into(),
                    kind: ContainerType::Container,
                },
                image: "registry.example.com/app:1".into(),
                scan_status: "completed".into(),
                allowed: Some(allowed),
                violations,
                warnings: Vec::new(),
                error: None,
            }],
        }
    }

    #[test]
    fn a_huge_namespace_keeps_its_findings_and_counts_everything() {
        let mut report = AuditReport {
            started_at: "2026-01-01T00:00:00Z".into(),
            duration_seconds: 1.0,
            policy: None,
            summary: AuditSummary::default(),
            namespaces: BTreeMap::new(),
            findings: vec![workload("bad", false)],
            passed: (0..5000)
                .map(|i| workload(&format!("w{i}"), true))
                .collect(),
        };
        report
            .namespaces
            .insert("shop".into(), BTreeMap::from([("allow".to_string(), 5000)]));
        let body = policy_report("shop", &report);
        assert!(body.to_string().len() < 1_200_000);
        assert_eq!(body["summary"]["pass"], 5000);
        assert_eq!(body["summary"]["fail"], 1);
        let results = body["results"].as_array().map(Vec::len).unwrap_or_default();
        assert!(results < 5001);
        assert_eq!(body["results"][0]["result"], "fail");
        assert_eq!(body["results"][0]["severity"], "high");
        let omitted = body["metadata"]["annotations"][OMITTED_ANNOTATION].as_str();
        assert_eq!(omitted, Some((5001 - results).to_string().as_str()));
        // A small namespace has every result and no annotation.
        report.passed.truncate(3);
        let body = policy_report("shop", &report);
        assert_eq!(body["results"].as_array().map(Vec::len), Some(4));
        assert!(body["metadata"].get("annotations").is_none());
    }
}
