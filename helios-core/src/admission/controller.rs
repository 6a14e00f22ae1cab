//! The admission controller: one review in, one review out, framework-independent.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::{self, Write as _};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::future::join_all;
use serde::{Deserialize, Serialize};

use crate::admission::images::{self, ContainerImage, ObjectMeta};
use crate::admission::review::{
    AdmissionRequest, AdmissionResponse, AdmissionReview, Operation, shorten,
};
use crate::error::{Error, Result};
use crate::image::ImageRef;
use crate::policy::{
    ContainerType, Decision, INPUT_VERSION, PolicyEvaluator, PolicyInput, Stage, User, Workload,
};
use crate::scan::{Lookup, ScanSource, ScanStatus};

/// What the controller does with a policy's denial.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// Deny the request (HTTP 403) with the violations.
    Enforce,
    /// Allow, returning the violations as warnings to the client.
    Warn,
    /// Allow; the decision only goes to the audit annotations and the log.
    Audit,
}

impl Mode {
    /// The lower-case name, as in configuration and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Enforce => "enforce",
            Mode::Warn => "warn",
            Mode::Audit => "audit",
        }
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Mode {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "enforce" => Ok(Mode::Enforce),
            "warn" => Ok(Mode::Warn),
            "audit" => Ok(Mode::Audit),
            other => Err(Error::invalid(
                "mode",
                format!("{other:?}: expected enforce, warn or audit"),
            )),
        }
    }
}

/// What happens when an image cannot be checked (scan source or policy engine failing, the
/// deadline passing). Only `enforce` mode ever denies; `warn` and `audit` never block.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailurePolicy {
    /// Deny, naming what failed.
    Closed,
    /// Allow, with a warning naming what failed.
    Open,
}

impl FailurePolicy {
    /// The lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            FailurePolicy::Closed => "closed",
            FailurePolicy::Open => "open",
        }
    }
}

impl std::str::FromStr for FailurePolicy {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "closed" | "fail" => Ok(FailurePolicy::Closed),
            "open" | "ignore" => Ok(FailurePolicy::Open),
            other => Err(Error::invalid(
                "failure policy",
                format!("{other:?}: expected closed or open"),
            )),
        }
    }
}

/// What to do with a kind Helios does not know how to read images from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UnknownKinds {
    /// Allow, with a log line (the default: the webhook configuration decides what is sent).
    Allow,
    /// Deny, telling the user the kind is not supported.
    Deny,
}

/// What a scan report with status `unavailable` (the scan service could not be asked: network,
/// auth, rate limit, 5xx) means at admission.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UnavailableScans {
    /// The scan service is down: apply the failure policy (the default), as for a scan source
    /// error.
    FailurePolicy,
    /// Evaluate the policy on it, which decides what `unavailable` means (as in CI).
    Policy,
}

/// The namespace Helios itself runs in by default; excluded so it can always restart.
pub const DEFAULT_OWN_NAMESPACE: &str = "helios-system";
/// Default deadline of one review: below the webhook's `timeoutSeconds: 5`, and far below the
/// API server's 10 s default, so a slow scan service yields Helios's answer, not a timeout.
pub const DEFAULT_DEADLINE: Duration = Duration::from_millis(2500);

/// How the controller decides. Deserialises from the `admission:` section of the webhook
/// configuration; every field has a default.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ControllerConfig {
    /// Mode of namespaces not listed in `namespace_modes`.
    pub mode: Mode,
    /// Mode per namespace.
    pub namespace_modes: BTreeMap<String, Mode>,
    /// What an image that cannot be checked means.
    pub failure_policy: FailurePolicy,
    /// Namespaces never inspected.
    pub excluded_namespaces: BTreeSet<String>,
    /// Time for the whole review, in milliseconds.
    pub deadline_ms: u64,
    /// What to do with kinds Helios cannot read images from.
    pub unknown_kinds: UnknownKinds,
    /// Whether an `unavailable` scan goes to the failure policy or to the policy.
    pub unavailable_scans: UnavailableScans,
    /// Skip the (non-ephemeral) containers of objects created by a controller from a parent of
    /// an inspected kind (Pods of ReplicaSets, Jobs, StatefulSets, DaemonSets; ReplicaSets of
    /// Deployments; Jobs of CronJobs): the parent's template was checked when it was admitted.
    #[serde(alias = "skip_controlled_pods")]
    pub skip_controlled_objects: bool,
    /// Who counts as a controller for `skip_controlled_objects`: user names, or prefixes ending
    /// in `*`. Anyone else creating an object with an `ownerReference` is checked in full, so a
    /// hand-written owner reference cannot bypass the policy.
    pub controller_users: Vec<String>,
}

impl Default for ControllerConfig {
    fn default() -> Self {
        ControllerConfig {
            mode: Mode::Enforce,
            namespace_modes: BTreeMap::new(),
            failure_policy: FailurePolicy::Closed,
            excluded_namespaces: ["kube-system", DEFAULT_OWN_NAMESPACE]
                .into_iter()
                .map(String::from)
                .collect(),
            deadline_ms: DEFAULT_DEADLINE.as_millis() as u64,
            unknown_kinds: UnknownKinds::Allow,
            unavailable_scans: UnavailableScans::FailurePolicy,
            skip_controlled_objects: true,
            controller_users: vec![
                "system:kube-controller-manager".into(),
                "system:serviceaccount:kube-system:*".into(),
            ],
        }
    }
}

impl ControllerConfig {
    /// The mode of `namespace`.
    pub fn mode_of(&self, namespace: Option<&str>) -> Mode {
        namespace
            .and_then(|ns| self.namespace_modes.get(ns))
            .copied()
            .unwrap_or(self.mode)
    }

    /// The review deadline.
    pub fn deadline(&self) -> Duration {
        Duration::from_millis(self.deadline_ms)
    }

    fn is_controller_user(&self, username: Option<&str>) -> bool {
        let Some(user) = username else { return false };
        self.controller_users
            .iter()
            .any(|u| match u.strip_suffix('*') {
                Some(prefix) => user.starts_with(prefix),
                None => user == u,
            })
    }
}

/// How a review ended, for metrics and logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Verdict {
    /// Every checked image was allowed.
    Allow,
    /// Denied by the policy (enforce mode).
    Deny,
    /// The policy denied, but the mode is `warn`: allowed with warnings.
    Warn,
    /// The policy denied, but the mode is `audit`: allowed, annotated.
    Audit,
    /// Nothing to check: excluded namespace, operation, kind, subresource, unchanged images.
    Skip,
    /// An image could not be checked and the failure policy allowed it.
    FailOpen,
    /// An image could not be checked and the failure policy denied it.
    FailClosed,
}

impl Verdict {
    /// The label used in metrics, logs and the `decision` audit annotation.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Allow => "allow",
            Verdict::Deny => "deny",
            Verdict::Warn => "warn",
            Verdict::Audit => "audit",
            Verdict::Skip => "skip",
            Verdict::FailOpen => "fail_open",
            Verdict::FailClosed => "fail_closed",
        }
    }

    /// Every verdict, for pre-registering metric labels.
    pub const ALL: [Verdict; 7] = [
        Verdict::Allow,
        Verdict::Deny,
        Verdict::Warn,
        Verdict::Audit,
        Verdict::Skip,
        Verdict::FailOpen,
        Verdict::FailClosed,
    ];
}

/// Which part of a check failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FailureKind {
    /// The scan source returned an error.
    Scan,
    /// The policy evaluator returned an error.
    Policy,
    /// The review deadline passed.
    Deadline,
}

impl FailureKind {
    /// The label used in metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            FailureKind::Scan => "scan",
            FailureKind::Policy => "policy",
            FailureKind::Deadline => "deadline",
        }
    }
}

/// What happened in one review, besides the response.
#[derive(Debug, Clone)]
pub struct ReviewOutcome {
    /// The verdict.
    pub verdict: Verdict,
    /// The mode of the request's namespace.
    pub mode: Mode,
    /// The checked images (as written in the spec).
    pub images: Vec<String>,
    /// Failures, one per image that could not be checked.
    pub failures: Vec<FailureKind>,
    /// Why nothing was checked, for [`Verdict::Skip`].
    pub reason: Option<String>,
    /// Time spent.
    pub duration: Duration,
}

/// Decides admission reviews: reads each image of the workload, looks up its scan, evaluates
/// the policy on it, and answers allow, deny (403) with reasons, warnings and audit annotations.
///
/// Cheap to clone; one controller serves concurrent reviews.
#[derive(Clone)]
pub struct AdmissionController {
    scans: Arc<dyn ScanSource>,
    policy: Arc<dyn PolicyEvaluator>,
    config: Arc<ControllerConfig>,
}

impl fmt::Debug for AdmissionController {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AdmissionController")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// One container's check.
struct Checked {
    target: ContainerImage,
    digest: Option<String>,
    result: CheckResult,
}

enum CheckResult {
    Decided {
        decision: Decision,
        scan_status: ScanStatus,
    },
    InvalidImage(String),
    Failed(FailureKind, String),
}

/// Longest violation message quoted in a denial.
const MAX_VIOLATION_LEN: usize = 300;
/// Violations quoted per container before "and N more".
const MAX_VIOLATIONS_PER_IMAGE: usize = 5;
/// Longest denial message (kubectl prints all of it; keep it readable).
const MAX_MESSAGE_LEN: usize = 3072;
/// Longest audit annotation value.
const MAX_ANNOTATION_LEN: usize = 4096;

impl AdmissionController {
    /// A controller over a scan source and a policy evaluator.
    pub fn new(
        scans: Arc<dyn ScanSource>,
        policy: Arc<dyn PolicyEvaluator>,
        config: ControllerConfig,
    ) -> Self {
        AdmissionController {
            scans,
            policy,
            config: Arc::new(config),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &ControllerConfig {
        &self.config
    }

    /// The scan source (shared with the background audit, so both use one cache).
    pub fn scan_source(&self) -> Arc<dyn ScanSource> {
        Arc::clone(&self.scans)
    }

    /// The policy evaluator.
    pub fn evaluator(&self) -> Arc<dyn PolicyEvaluator> {
        Arc::clone(&self.policy)
    }

    /// Reviews a JSON request body and returns the JSON response review.
    ///
    /// Fails only when the body is not an `AdmissionReview` request ([`Error::InvalidInput`]);
    /// every other problem is answered in the response according to the failure policy.
    pub async fn review_json(&self, body: &[u8]) -> Result<(Vec<u8>, ReviewOutcome)> {
        let review = AdmissionReview::from_slice(body)?;
        let (review, outcome) = self.review(review).await?;
        Ok((review.to_vec(), outcome))
    }

    /// Reviews a parsed request review (see [`AdmissionReview::from_slice`]).
    pub async fn review(
        &self,
        review: AdmissionReview,
    ) -> Result<(AdmissionReview, ReviewOutcome)> {
        let started = Instant::now();
        let Some(mut req) = review.request else {
            return Err(Error::invalid("admission review", "request: missing"));
        };
        if req.api_version.is_empty() {
            req.api_version = review.api_version;
        }
        let (response, mut outcome) = self.decide(&req, started).await;
        outcome.duration = started.elapsed();
        log_review(&req, &outcome);
        Ok((response.into_review(), outcome))
    }

    async fn decide(
        &self,
        req: &AdmissionRequest,
        started: Instant,
    ) -> (AdmissionResponse, ReviewOutcome) {
        let cfg = &*self.config;
        let mode = cfg.mode_of(req.namespace.as_deref());
        let base = AdmissionResponse::from(req);
        let skip = |reason: String| {
            let response = base
                .clone()
                .with_audit_annotation("decision", Verdict::Skip.as_str())
                .with_audit_annotation("mode", mode.as_str());
            let outcome = ReviewOutcome {
                verdict: Verdict::Skip,
                mode,
                images: Vec::new(),
                failures: Vec::new(),
                reason: Some(reason),
                duration: Duration::ZERO,
            };
            (response, outcome)
        };

        if let Some(ns) = req
            .namespace
            .as_deref()
            .filter(|ns| cfg.excluded_namespaces.contains(*ns))
        {
            return skip(format!("namespace {ns} is excluded"));
        }
        if !matches!(req.operation, Operation::Create | Operation::Update) {
            return skip(format!(
                "operation {} is not inspected",
                req.operation.as_str()
            ));
        }
        let ephemeral_only = match req.sub_resource.as_deref() {
            None | Some("") => false,
            Some("ephemeralcontainers") => true,
            Some(other) => return skip(format!("subresource {other} is not inspected")),
        };
        let Some(object) = req.object.as_ref() else {
            return skip("the request has no object".into());
        };
        let Some(mut targets) = images::extract(&req.kind, object) else {
            let kind = format!("{}/{}", req.kind.group, req.kind.kind);
            if cfg.unknown_kinds == UnknownKinds::Deny && mode == Mode::Enforce {
                let response = base
                    .deny(format!("helios: kind {kind} is not supported by this webhook, and unknown kinds are denied"))
                    .with_audit_annotation("decision", Verdict::Deny.as_str());
                let outcome = ReviewOutcome {
                    verdict: Verdict::Deny,
                    mode,
                    images: Vec::new(),
                    failures: Vec::new(),
                    reason: Some(format!("kind {kind} is not inspected")),
                    duration: Duration::ZERO,
                };
                return (response, outcome);
            }
            return skip(format!("kind {kind} is not inspected"));
        };
        if ephemeral_only {
            targets.retain(|t| t.container.kind == ContainerType::Ephemeral);
        }
        let meta = ObjectMeta::of(object);
        if cfg.skip_controlled_objects
            && meta.controller_kinds.iter().any(|k| is_workload_kind(k))
            && cfg.is_controller_user(req.user_info.username.as_deref())
        {
            targets.retain(|t| t.container.kind == ContainerType::Ephemeral);
        }
        if req.operation == Operation::Update {
            // A container is new or changed unless the stored object has the same container
            // (list and name) with the same image: a scale or a label change checks nothing,
            // and an ephemeral container reusing an image of the pod is still checked.
            let old: Vec<ContainerImage> = req
                .old_object
                .as_ref()
                .and_then(|o| images::extract(&req.kind, o))
                .unwrap_or_default();
            targets.retain(|t| !old.contains(t));
        }
        if targets.is_empty() {
            return skip("no new images to check".into());
        }

        let deadline = started + cfg.deadline();
        let lookup = Lookup {
            deadline: Some(deadline),
            dry_run: req.is_dry_run(),
        };
        let checks = join_all(
            targets
                .into_iter()
                .map(|t| self.check(req, &meta, t, lookup, deadline)),
        )
        .await;
        respond(base, mode, cfg.failure_policy, checks)
    }

    async fn check(
        &self,
        req: &AdmissionRequest,
        meta: &ObjectMeta,
        target: ContainerImage,
        lookup: Lookup,
        deadline: Instant,
    ) -> Checked {
        let image = match ImageRef::parse(&target.image) {
            Ok(image) => image,
            Err(e) => {
                return Checked {
                    target,
                    digest: None,
                    result: CheckResult::InvalidImage(e.to_string()),
                };
            }
        };
        let digest = image.digest.clone();
        let until = tokio::time::Instant::from_std(deadline);
        let failed = |kind, reason| Checked {
            target: target.clone(),
            digest: digest.clone(),
            result: CheckResult::Failed(kind, reason),
        };
        let scan = match tokio::time::timeout_at(until, self.scans.scan(&image, lookup)).await {
            Err(_) => {
                return failed(
                    FailureKind::Deadline,
                    deadline_reason("scan lookup", &self.config),
                );
            }
            Ok(Err(e)) => return failed(FailureKind::Scan, e.to_string()),
            Ok(Ok(scan)) => scan,
        };
        if scan.status == ScanStatus::Unavailable
            && self.config.unavailable_scans == UnavailableScans::FailurePolicy
        {
            let reason = scan
                .error
                .clone()
                .unwrap_or_else(|| format!("the scan source ({}) is unavailable", scan.source));
            return failed(FailureKind::Scan, reason);
        }
        let scan_status = scan.status;
        let input = PolicyInput {
            version: INPUT_VERSION,
            stage: Stage::Admission,
            image,
            scan,
            workload: Some(Workload {
                kind: req.kind.kind.clone(),
                namespace: req.namespace.clone(),
                name: Some(req.name.clone())
                    .filter(|n| !n.is_empty())
                    .or_else(|| meta.name.clone()),
                operation: req.operation.as_str().to_string(),
                container: target.container.clone(),
                labels: meta.labels.clone(),
                annotations: meta.annotations.clone(),
                user: User {
                    username: req.user_info.username.clone(),
                    groups: req.user_info.groups.clone(),
                },
            }),
            ci: None,
        };
        let decision = match tokio::time::timeout_at(until, self.policy.evaluate(&input)).await {
            Err(_) => {
                return failed(
                    FailureKind::Deadline,
                    deadline_reason("policy evaluation", &self.config),
                );
            }
            Ok(Err(e)) => return failed(FailureKind::Policy, e.to_string()),
            Ok(Ok(d)) => d,
        };
        Checked {
            target,
            digest,
            result: CheckResult::Decided {
                decision,
                scan_status,
            },
        }
    }
}

fn deadline_reason(what: &str, cfg: &ControllerConfig) -> String {
    format!(
        "{what} did not finish within the review deadline of {} ms",
        cfg.deadline_ms
    )
}

/// Kinds whose children (Pods, ReplicaSets, Jobs) are made from a template Helios already
/// checked.
pub(crate) fn is_workload_kind(kind: &str) -> bool {
    matches!(
        kind,
        "Deployment"
            | "ReplicaSet"
            | "ReplicationController"
            | "StatefulSet"
            | "DaemonSet"
            | "Job"
            | "CronJob"
    )
}

fn describe(t: &ContainerImage) -> String {
    let kind = match t.container.kind {
        ContainerType::Container => "container",
        ContainerType::Init => "init container",
        ContainerType::Ephemeral => "ephemeral container",
    };
    format!("image {} ({kind} {})", t.image, t.container.name)
}

fn respond(
    base: AdmissionResponse,
    mode: Mode,
    failure_policy: FailurePolicy,
    checks: Vec<Checked>,
) -> (AdmissionResponse, ReviewOutcome) {
    let mut denials: Vec<String> = Vec::new(); // one paragraph per denied image
    let mut warnings: Vec<String> = Vec::new();
    let mut failures_text: Vec<String> = Vec::new();
    let mut failures = Vec::new();
    let mut policy = None;
    let mut digests = serde_json::Map::new();
    let mut statuses = BTreeMap::new();
    let mut violation_count = 0usize;

    for c in &checks {
        let who = describe(&c.target);
        digests.insert(
            c.target.container.name.clone(),
            c.digest
                .clone()
                .map_or(serde_json::Value::Null, serde_json::Value::String),
        );
        match &c.result {
            CheckResult::Decided {
                decision,
                scan_status,
            } => {
                statuses.insert(c.target.container.name.clone(), scan_status.to_string());
                policy.get_or_insert_with(|| decision.policy.clone());
                for w in &decision.warnings {
                    warnings.push(format!("helios: {who}: {}", w.msg));
                }
                if !decision.allowed {
                    violation_count += decision.violations.len().max(1);
                    let mut text = format!("{who} violates policy {}:", decision.policy.id);
                    if decision.violations.is_empty() {
                        text.push_str(" not allowed (the policy's allow is false)");
                    }
                    for v in decision.violations.iter().take(MAX_VIOLATIONS_PER_IMAGE) {
                        let _ = write!(text, "\n  - {}", shorten(&v.msg, MAX_VIOLATION_LEN));
                    }
                    let more = decision
                        .violations
                        .len()
                        .saturating_sub(MAX_VIOLATIONS_PER_IMAGE);
                    if more > 0 {
                        let _ = write!(text, "\n  - and {more} more");
                    }
                    if mode != Mode::Enforce {
                        for v in &decision.violations {
                            warnings
                                .push(format!("helios ({mode} mode) would deny {who}: {}", v.msg));
                        }
                        if decision.violations.is_empty() {
                            warnings.push(format!("helios ({mode} mode) would deny {who}"));
                        }
                    }
                    denials.push(text);
                }
            }
            CheckResult::InvalidImage(reason) => {
                statuses.insert(c.target.container.name.clone(), "invalid_image".into());
                violation_count += 1;
                denials.push(format!("{who}: {reason}"));
                if mode != Mode::Enforce {
                    warnings.push(format!("helios ({mode} mode) would deny {who}: {reason}"));
                }
            }
            CheckResult::Failed(kind, reason) => {
                statuses.insert(
                    c.target.container.name.clone(),
                    format!("error:{}", kind.as_str()),
                );
                failures.push(*kind);
                failures_text.push(format!("could not check {who}: {reason}"));
            }
        }
    }

    let verdict = if !denials.is_empty() {
        match mode {
            Mode::Enforce => Verdict::Deny,
            Mode::Warn => Verdict::Warn,
            Mode::Audit => Verdict::Audit,
        }
    } else if !failures.is_empty() {
        if mode == Mode::Enforce && failure_policy == FailurePolicy::Closed {
            Verdict::FailClosed
        } else {
            Verdict::FailOpen
        }
    } else {
        Verdict::Allow
    };

    let mut response = base;
    match verdict {
        Verdict::Deny | Verdict::FailClosed => {
            // The API server prefixes `admission webhook "<name>" denied the request: `; one
            // paragraph per image follows.
            let paragraphs: Vec<String> = denials
                .iter()
                .cloned()
                .chain(
                    failures_text
                        .iter()
                        .map(|f| format!("{f} (failure policy: closed)")),
                )
                .collect();
            let message = paragraphs.join("\n");
            response = response.deny(shorten(&message, MAX_MESSAGE_LEN));
        }
        _ => {
            for f in &failures_text {
                if mode != Mode::Audit {
                    let why = if mode == Mode::Enforce {
                        format!("failure policy: {}", failure_policy.as_str())
                    } else {
                        format!("{mode} mode")
                    };
                    warnings.push(format!("helios: {f}; allowed ({why})"));
                }
            }
        }
    }
    if mode != Mode::Audit {
        response = response.with_warnings(warnings);
    }

    let json = |v: serde_json::Value| shorten(&v.to_string(), MAX_ANNOTATION_LEN);
    let statuses: serde_json::Map<String, serde_json::Value> = statuses
        .into_iter()
        .map(|(k, v)| (k, serde_json::Value::String(v)))
        .collect();
    response = response
        .with_audit_annotation("decision", verdict.as_str())
        .with_audit_annotation("mode", mode.as_str())
        .with_audit_annotation("violations", violation_count.to_string())
        .with_audit_annotation("digests", json(serde_json::Value::Object(digests)))
        .with_audit_annotation("scan-statuses", json(serde_json::Value::Object(statuses)));
    if let Some(p) = policy {
        response = response
            .with_audit_annotation("policy-id", p.id)
            .with_audit_annotation("policy-version", p.version);
    }
    if !failures_text.is_empty() {
        response = response.with_audit_annotation(
            "errors",
            shorten(&failures_text.join("; "), MAX_ANNOTATION_LEN),
        );
    }

    let outcome = ReviewOutcome {
        verdict,
        mode,
        images: checks.iter().map(|c| c.target.image.clone()).collect(),
        failures,
        reason: None,
        duration: Duration::ZERO,
    };
    (response, outcome)
}

/// The one log line of a review. Never logs `userInfo.extra` (it may hold tokens) or the object.
fn log_review(req: &AdmissionRequest, outcome: &ReviewOutcome) {
    let object = format!(
        "{}/{}/{}",
        req.kind.kind,
        req.namespace.as_deref().unwrap_or(""),
        req.name
    );
    tracing::info!(
        target: "helios::admission",
        uid = %req.uid,
        object = %object,
        operation = req.operation.as_str(),
        dry_run = req.is_dry_run(),
        images = %outcome.images.join(","),
        decision = outcome.verdict.as_str(),
        mode = outcome.mode.as_str(),
        failures = outcome.failures.len(),
        reason = outcome.reason.as_deref().unwrap_or(""),
        duration_ms = outcome.duration.as_secs_f64() * 1000.0,
        "admission review"
    );
}
