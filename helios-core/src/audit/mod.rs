//! The background audit: what already runs in the cluster, judged again against today's scans.
//!
//! Admission checks a workload once, when it is created or its images change. Its images' scans
//! keep changing afterwards (Lacework re-evaluates an image as new CVEs are published), so a
//! workload admitted clean can be critical a day later. The audit lists every workload of every
//! inspected kind through the API server ([`lister`]), looks up each *distinct* image once
//! through the same (cached) [`ScanSource`], evaluates the same policy on every container with
//! input `stage: "audit"`, and reports every workload the policy would now deny
//! ([`report`]: JSON, Markdown, Prometheus gauges; [`policy_report`]: `wgpolicyk8s.io`
//! PolicyReports).
//!
//! ```text
//! API server ──list (paginated)──► workloads ──► distinct images ──► ScanSource (≤ 1 lookup each,
//!                                    │                               bounded concurrency)
//!                                    └──► containers × scans ──► PolicyInput (stage audit) ──► policy
//!                                                                      ──► AuditReport
//! ```
//!
//! The same [`ControllerConfig`] as admission applies: excluded namespaces are not listed, the
//! namespace's mode turns a denial into the verdict `deny`, `warn` or `audit`, the failure policy
//! decides between `fail_closed` and `fail_open`, and controller-made children are skipped.

pub mod background;
pub mod lister;
pub mod policy_report;
pub mod report;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::stream::{self, StreamExt};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::admission::images::{self, ContainerImage, ObjectMeta};
use crate::admission::{
    ControllerConfig, FailurePolicy, GroupVersionKind, Mode, Verdict, is_workload_kind,
};
use crate::image::ImageRef;
use crate::policy::{
    Container, Finding, INPUT_VERSION, PolicyEvaluator, PolicyInput, PolicyRef, Stage, User,
    Workload,
};
use crate::registry::{Resolver, resolve_with};
use crate::scan::{Lookup, ScanReport, ScanSource, ScanStatus};

pub use lister::{AUDITED_KINDS, AuditedKind, Lister};
pub use report::AuditMetrics;

/// The `workload.operation` of audit inputs: no request is being made, the object is judged
/// as it is stored.
pub const AUDIT_OPERATION: &str = "AUDIT";
/// Default number of scan lookups and policy evaluations in flight at once.
pub const DEFAULT_CONCURRENCY: usize = 8;
/// Default time one scan lookup may take before its image counts as not checked.
pub const DEFAULT_LOOKUP_TIMEOUT: Duration = Duration::from_secs(30);

/// One stored object of an inspected kind, as the API server returned it.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkloadObject {
    /// Its group, version and kind.
    pub gvk: GroupVersionKind,
    /// The object (`metadata`, `spec`, …).
    pub object: Value,
}

/// Runs audits: a scan source, a policy and the admission settings. Cheap to clone.
#[derive(Clone)]
pub struct Auditor {
    scans: Arc<dyn ScanSource>,
    policy: Arc<dyn PolicyEvaluator>,
    config: Arc<ControllerConfig>,
    concurrency: usize,
    lookup_timeout: Duration,
    resolver: Option<Resolver>,
}

impl std::fmt::Debug for Auditor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Auditor")
            .field("config", &self.config)
            .field("concurrency", &self.concurrency)
            .finish_non_exhaustive()
    }
}

/// The outcome of one container.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContainerResult {
    /// Container name and list.
    pub container: Container,
    /// The image as written in the spec.
    pub image: String,
    /// The scan's status (`completed`, `not_found`, …), `invalid_image`, or `error`.
    pub scan_status: String,
    /// Whether the policy allowed it; `null` when it could not be checked.
    pub allowed: Option<bool>,
    /// The policy's violations.
    pub violations: Vec<Finding>,
    /// The policy's warnings.
    pub warnings: Vec<Finding>,
    /// Why it could not be checked (invalid reference, scan source or policy failure).
    pub error: Option<String>,
}

/// The outcome of one workload.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkloadResult {
    /// `apps/v1`, `v1`, …
    pub api_version: String,
    /// `Deployment`, …
    pub kind: String,
    /// Its namespace.
    pub namespace: String,
    /// Its name.
    pub name: String,
    /// `metadata.uid`.
    pub uid: Option<String>,
    /// The namespace's admission mode.
    pub mode: Mode,
    /// The verdict, as admission would give it today (`deny` in enforce mode, `warn` / `audit`
    /// in those modes, `fail_closed` / `fail_open` when an image could not be checked).
    pub verdict: String,
    /// Every container of the workload.
    pub containers: Vec<ContainerResult>,
}

/// Counts of one audit.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AuditSummary {
    /// Objects listed.
    pub objects: usize,
    /// Workloads audited.
    pub audited: usize,
    /// Objects skipped: excluded namespace, or made by a listed controller.
    pub skipped: usize,
    /// Distinct images (normalised references).
    pub images: usize,
    /// Scan lookups made (one per distinct valid image).
    pub lookups: usize,
    /// Audited workloads per verdict.
    pub verdicts: BTreeMap<String, usize>,
}

/// The result of one audit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditReport {
    /// When the audit started, RFC 3339 UTC.
    pub started_at: String,
    /// How long it took, in seconds.
    pub duration_seconds: f64,
    /// The policy that decided (`null` when nothing was evaluated).
    pub policy: Option<PolicyRef>,
    /// Counts.
    pub summary: AuditSummary,
    /// Audited workloads per namespace and verdict (what the gauges export).
    pub namespaces: BTreeMap<String, BTreeMap<String, usize>>,
    /// Every workload that would not be allowed today (verdict other than `allow`), sorted by
    /// namespace, kind and name.
    pub findings: Vec<WorkloadResult>,
    /// Workloads allowed today (for PolicyReports' `pass` results); not in the JSON report,
    /// which stays small on large clusters.
    #[serde(skip)]
    pub passed: Vec<WorkloadResult>,
}

/// What one distinct image's lookup gave: the image as resolved at its registry and its report,
/// or why there is none.
type ScanOutcome = std::result::Result<(ImageRef, ScanReport), String>;

impl Auditor {
    /// An auditor over a scan source and a policy, with the admission settings.
    pub fn new(
        scans: Arc<dyn ScanSource>,
        policy: Arc<dyn PolicyEvaluator>,
        config: ControllerConfig,
    ) -> Self {
        Auditor {
            scans,
            policy,
            config: Arc::new(config),
            concurrency: DEFAULT_CONCURRENCY,
            lookup_timeout: DEFAULT_LOOKUP_TIMEOUT,
            resolver: None,
        }
    }

    /// Resolves tag-only images at their registry before the lookup, as admission does, so the
    /// audit judges the digest each tag points to now; a tag that cannot be resolved is a
    /// failure of its containers (the failure policy applies), never a lookup by tag.
    pub fn with_resolver(mut self, resolver: Option<Resolver>) -> Self {
        self.resolver = resolver;
        self
    }

    /// Lookups and evaluations in flight at once (at least 1), so an audit of a large cluster
    /// does not burst the scan service's rate limit.
    pub fn concurrency(mut self, n: usize) -> Self {
        self.concurrency = n.max(1);
        self
    }

    /// How long one scan lookup may take.
    pub fn lookup_timeout(mut self, timeout: Duration) -> Self {
        self.lookup_timeout = timeout;
        self
    }

    /// The admission settings the audit applies.
    pub fn config(&self) -> &ControllerConfig {
        &self.config
    }

    /// Audits `objects` (as listed by [`Lister::list`]). Never fails: an image that cannot be
    /// checked is a `fail_closed` / `fail_open` verdict naming why.
    pub async fn audit(&self, objects: &[WorkloadObject]) -> AuditReport {
        let started = Instant::now();
        let started_at = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        let cfg = &*self.config;
        let mut summary = AuditSummary {
            objects: objects.len(),
            ..AuditSummary::default()
        };

        // Children are skipped only when their controlling parent is itself in the list (and
        // so audited): a hand-written owner reference to nothing is no way out of the audit.
        let listed_uids: BTreeSet<&str> =
            objects.iter().filter_map(|o| uid_of(&o.object)).collect();

        let mut targets: Vec<(&WorkloadObject, String, ObjectMeta, Vec<ContainerImage>)> =
            Vec::new();
        for o in objects {
            let namespace = o
                .object
                .pointer("/metadata/namespace")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string();
            if cfg.excluded_namespaces.contains(&namespace) {
                summary.skipped += 1;
                continue;
            }
            if cfg.skip_controlled_objects && controlled_by_listed(&o.object, &listed_uids) {
                summary.skipped += 1;
                continue;
            }
            let Some(containers) = images::extract(&o.gvk, &o.object) else {
                summary.skipped += 1;
                continue;
            };
            targets.push((o, namespace, ObjectMeta::of(&o.object), containers));
        }

        // One lookup per distinct normalised reference, however many workloads share it.
        let mut distinct: BTreeMap<String, ImageRef> = BTreeMap::new();
        for (_, _, _, containers) in &targets {
            for c in containers {
                if let Ok(image) = ImageRef::parse(&c.image) {
                    distinct.entry(image.reference.clone()).or_insert(image);
                }
            }
        }
        summary.images = distinct.len();
        summary.lookups = distinct.len();
        // The futures are built eagerly (not in a `Stream::map` closure) so the loop's future
        // stays `Send` for `tokio::spawn` (rust-lang/rust#102211).
        let lookups: Vec<_> = distinct
            .into_iter()
            .map(|(reference, image)| async move {
                let outcome = self.lookup(&image).await;
                (reference, outcome)
            })
            .collect();
        let scans: HashMap<String, ScanOutcome> = stream::iter(lookups)
            .buffer_unordered(self.concurrency)
            .collect()
            .await;

        let scans = &scans;
        let checks: Vec<_> = targets
            .iter()
            .enumerate()
            .flat_map(|(i, (o, ns, meta, cs))| cs.iter().map(move |c| (i, *o, ns, meta, c)))
            .map(|(i, o, ns, meta, c)| async move { (i, self.check(o, ns, meta, c, scans).await) })
            .collect();
        let results: Vec<(usize, (ContainerResult, Option<PolicyRef>))> = stream::iter(checks)
            .buffered(self.concurrency)
            .collect()
            .await;

        let mut per_workload: Vec<Vec<ContainerResult>> = vec![Vec::new(); targets.len()];
        let mut policy: Option<PolicyRef> = None;
        for (i, (r, p)) in results {
            if let Some(p) = p {
                policy.get_or_insert(p);
            }
            if let Some(slot) = per_workload.get_mut(i) {
                slot.push(r);
            }
        }

        let mut findings = Vec::new();
        let mut passed = Vec::new();
        let mut namespaces: BTreeMap<String, BTreeMap<String, usize>> = BTreeMap::new();
        for ((o, namespace, meta, _), containers) in targets.into_iter().zip(per_workload) {
            let mode = cfg.mode_of(Some(&namespace));
            let verdict = verdict_of(&containers, mode, cfg.failure_policy);
            let result = WorkloadResult {
                api_version: api_version(&o.gvk),
                kind: o.gvk.kind.clone(),
                namespace: namespace.clone(),
                name: meta.name.clone().unwrap_or_default(),
                uid: uid_of(&o.object).map(str::to_string),
                mode,
                verdict: verdict.as_str().to_string(),
                containers,
            };
            summary.audited += 1;
            *summary.verdicts.entry(result.verdict.clone()).or_default() += 1;
            *namespaces
                .entry(namespace)
                .or_default()
                .entry(result.verdict.clone())
                .or_default() += 1;
            if verdict == Verdict::Allow {
                passed.push(result);
            } else {
                findings.push(result);
            }
        }
        let order = |a: &WorkloadResult, b: &WorkloadResult| {
            (&a.namespace, &a.kind, &a.name).cmp(&(&b.namespace, &b.kind, &b.name))
        };
        findings.sort_by(order);
        passed.sort_by(order);

        let report = AuditReport {
            started_at,
            duration_seconds: started.elapsed().as_secs_f64(),
            policy,
            summary,
            namespaces,
            findings,
            passed,
        };
        tracing::info!(
            target: "helios::audit",
            objects = report.summary.objects,
            audited = report.summary.audited,
            skipped = report.summary.skipped,
            images = report.summary.images,
            findings = report.findings.len(),
            duration_ms = report.duration_seconds * 1000.0,
            "audit"
        );
        report
    }

    async fn lookup(&self, image: &ImageRef) -> ScanOutcome {
        let timed_out = |what: &str| {
            format!(
                "{what} did not finish within {} ms",
                self.lookup_timeout.as_millis()
            )
        };
        let resolving = resolve_with(self.resolver.as_ref(), image.clone());
        let image = match tokio::time::timeout(self.lookup_timeout, resolving).await {
            Err(_) => return Err(timed_out("tag resolution")),
            Ok(Err(e)) => return Err(format!("cannot resolve the tag to a digest: {e}")),
            Ok(Ok(resolved)) => resolved,
        };
        // Read-only: an audit never requests on-demand scans, so it cannot flood the scanner
        // with requests for every image of the cluster; "no scan" goes to the policy.
        let lookup = Lookup {
            deadline: Some(Instant::now() + self.lookup_timeout),
            dry_run: true,
        };
        match tokio::time::timeout(self.lookup_timeout, self.scans.scan(&image, lookup)).await {
            Err(_) => Err(timed_out("scan lookup")),
            Ok(Err(e)) => Err(e.to_string()),
            Ok(Ok(scan)) => Ok((image, scan)),
        }
    }

    async fn check(
        &self,
        o: &WorkloadObject,
        namespace: &str,
        meta: &ObjectMeta,
        target: &ContainerImage,
        scans: &HashMap<String, ScanOutcome>,
    ) -> (ContainerResult, Option<PolicyRef>) {
        let mut result = ContainerResult {
            container: target.container.clone(),
            image: target.image.clone(),
            scan_status: "error".into(),
            allowed: None,
            violations: Vec::new(),
            warnings: Vec::new(),
            error: None,
        };
        let image = match ImageRef::parse(&target.image) {
            Ok(image) => image,
            Err(e) => {
                result.scan_status = "invalid_image".into();
                result.allowed = Some(false);
                result.error = Some(e.to_string());
                return (result, None);
            }
        };
        let (image, scan) = match scans.get(&image.reference) {
            Some(Ok((image, scan))) => (image.clone(), scan.clone()),
            Some(Err(reason)) => {
                result.error = Some(reason.clone());
                return (result, None);
            }
            None => {
                result.error = Some("the image was not looked up".into());
                return (result, None);
            }
        };
        result.scan_status = scan.status.to_string();
        if scan.status == ScanStatus::Unavailable
            && self.config.unavailable_scans == crate::admission::UnavailableScans::FailurePolicy
        {
            result.error =
                Some(scan.error.clone().unwrap_or_else(|| {
                    format!("the scan source ({}) is unavailable", scan.source)
                }));
            return (result, None);
        }
        let input = PolicyInput {
            version: INPUT_VERSION,
            stage: Stage::Audit,
            image,
            scan,
            workload: Some(Workload {
                kind: o.gvk.kind.clone(),
                namespace: Some(namespace.to_string()),
                name: meta.name.clone(),
                operation: AUDIT_OPERATION.into(),
                container: target.container.clone(),
                labels: meta.labels.clone(),
                annotations: meta.annotations.clone(),
                user: User::default(),
            }),
            ci: None,
        };
        match self.policy.evaluate(&input).await {
            Ok(decision) => {
                result.allowed = Some(decision.allowed);
                result.violations = decision.violations;
                result.warnings = decision.warnings;
                (result, Some(decision.policy))
            }
            Err(e) => {
                result.error = Some(e.to_string());
                (result, None)
            }
        }
    }
}

/// The verdict admission would give a workload with these containers today, as in the
/// controller: a denial (policy or invalid reference) beats a failure, the mode softens a
/// denial, the failure policy decides a failure.
fn verdict_of(containers: &[ContainerResult], mode: Mode, failure: FailurePolicy) -> Verdict {
    if containers.iter().any(|c| c.allowed == Some(false)) {
        match mode {
            Mode::Enforce => Verdict::Deny,
            Mode::Warn => Verdict::Warn,
            Mode::Audit => Verdict::Audit,
        }
    } else if containers.iter().any(|c| c.allowed.is_none()) {
        if mode == Mode::Enforce && failure == FailurePolicy::Closed {
            Verdict::FailClosed
        } else {
            Verdict::FailOpen
        }
    } else {
        Verdict::Allow
    }
}

fn uid_of(object: &Value) -> Option<&str> {
    object.pointer("/metadata/uid").and_then(Value::as_str)
}

/// Whether `object` has a controlling owner of a workload kind that is itself listed.
fn controlled_by_listed(object: &Value, listed: &BTreeSet<&str>) -> bool {
    object
        .pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)
        .is_some_and(|owners| {
            owners.iter().any(|o| {
                o.get("controller").and_then(Value::as_bool) == Some(true)
                    && o.get("kind")
                        .and_then(Value::as_str)
                        .is_some_and(is_workload_kind)
                    && o.get("uid")
                        .and_then(Value::as_str)
                        .is_some_and(|uid| listed.contains(uid))
            })
        })
}

fn api_version(gvk: &GroupVersionKind) -> String {
    if gvk.group.is_empty() {
        gvk.version.clone()
    } else {
        format!("{}/{}", gvk.group, gvk.version)
    }
}

#[cfg(test)]
mod tests;
