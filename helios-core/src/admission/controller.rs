//! The admission controller: one review in, one review out, framework-independent.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::{self, Write as _};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use futures_util::future::join_all;
use serde::{Deserialize, Serialize};

use crate::admission::images::{self, ContainerImage, ObjectMeta};
use crate::admission::limits::ReviewLimits;
use crate::admission::review::{
    AdmissionRequest, AdmissionResponse, AdmissionReview, Operation, shorten,
};
use crate::error::{Error, Result};
use crate::image::ImageRef;
use crate::policy::{
    ContainerType, Decision, INPUT_VERSION, PolicyEvaluator, PolicyInput, Stage, User, Workload,
};
use crate::registry::{Resolver, resolve_with};
use crate::scan::lacework::{BudgetShare, ShareLedger};
use crate::scan::{Lookup, ScanReport, ScanSource, ScanStatus};

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
    /// What one review may cost: containers, distinct images, its share of the Lacework budget.
    pub limits: ReviewLimits,
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
            limits: ReviewLimits::default(),
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
    /// A per-review limit ([`ReviewLimits`]) left the container unchecked.
    Limit,
    /// A tag could not be resolved to its digest at the registry (401, 404, down, timeout).
    Resolve,
}

impl FailureKind {
    /// The label used in metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            FailureKind::Scan => "scan",
            FailureKind::Policy => "policy",
            FailureKind::Deadline => "deadline",
            FailureKind::Limit => "limit",
            FailureKind::Resolve => "resolve",
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
    /// Lacework requests spent per namespace and user, across reviews.
    ledger: Arc<ShareLedger>,
    resolver: Option<Resolver>,
    pin_digests: bool,
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
/// Most of the review deadline kept for answering (see `decide`).
const ANSWER_MARGIN: Duration = Duration::from_millis(250);
/// Containers named in the one message about containers left unchecked by a limit.
const LIMITED_NAMED: usize = 3;
/// Longest list of images in a review's log line.
const MAX_LOG_IMAGES_LEN: usize = 1024;

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
            ledger: Arc::new(ShareLedger::new()),
            resolver: None,
            pin_digests: false,
        }
    }

    /// Whether the `/mutate` endpoint pins tags to digests (it needs a resolver too).
    pub fn with_pinning(mut self, pin_digests: bool) -> Self {
        self.pin_digests = pin_digests;
        self
    }

    /// Whether `/mutate` pins: pinning was turned on and tags are resolved.
    pub fn pins_digests(&self) -> bool {
        self.pin_digests && self.resolver.is_some()
    }

    /// Resolves tag-only images at their registry before the scan lookup, so the scan and the
    /// decision are about the digest the tag points to now (see [`Resolver`]). A resolution
    /// failure is a failure of the check: the failure policy applies, never a lookup by tag.
    pub fn with_resolver(mut self, resolver: Option<Resolver>) -> Self {
        self.resolver = resolver;
        self
    }

    /// The resolver, when tags are resolved (shared with the `/mutate` endpoint, so a pin and
    /// a check agree through its cache).
    pub fn resolver(&self) -> Option<&Resolver> {
        self.resolver.as_ref()
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
            let (mut response, outcome) = skip(format!("kind {kind} is not inspected"));
            if cfg.unknown_kinds == UnknownKinds::Deny {
                // Warn or audit mode: enforce would have denied the kind.
                response = response.with_audit_annotation("decision", "would-deny");
            }
            return (response, outcome);
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
            // A set, not `Vec::contains`: an update listing tens of thousands of containers
            // in both objects must not cost their square.
            let old: std::collections::HashSet<_> = old.iter().map(container_key).collect();
            targets.retain(|t| !old.contains(&container_key(t)));
        }
        if targets.is_empty() {
            return skip("no new images to check".into());
        }

        // Work stops a little before the deadline (a tenth of it, at most 250 ms), leaving time
        // to assemble and send the answer, which for a review at its limits is not free.
        let budget = cfg.deadline();
        let deadline = started + budget - (budget / 10).min(ANSWER_MARGIN);
        let lookup = Lookup {
            deadline: Some(deadline),
            dry_run: req.is_dry_run(),
        };
        let checks = self.check_all(req, &meta, targets, lookup, deadline).await;
        respond(base, mode, cfg.failure_policy, checks)
    }

    /// Checks every target: containers past the limits become limit failures, each distinct
    /// image is looked up once (charged to the review's budget share), then the policy is
    /// evaluated per container, a few at a time, until the deadline.
    async fn check_all(
        &self,
        req: &AdmissionRequest,
        meta: &ObjectMeta,
        mut targets: Vec<ContainerImage>,
        lookup: Lookup,
        deadline: Instant,
    ) -> Vec<Checked> {
        let limits = &self.config.limits;
        let total = targets.len();
        let overflow = targets.split_off(total.min(limits.max_containers));

        // Slot of each target: its distinct image, or what stopped it before the lookup.
        enum Slot {
            Image(usize),
            Done(CheckResult),
        }
        let mut distinct: Vec<ImageRef> = Vec::new();
        let mut index: std::collections::HashMap<String, usize> = Default::default();
        let slots: Vec<Slot> = targets
            .iter()
            .map(|t| match ImageRef::parse(&t.image) {
                Err(e) => Slot::Done(CheckResult::InvalidImage(e.to_string())),
                Ok(image) => match index.get(&image.reference) {
                    Some(&i) => Slot::Image(i),
                    None if distinct.len() >= limits.max_images => Slot::Done(CheckResult::Failed(
                        FailureKind::Limit,
                        limits.images_reason(),
                    )),
                    None => {
                        index.insert(image.reference.clone(), distinct.len());
                        distinct.push(image);
                        Slot::Image(distinct.len() - 1)
                    }
                },
            })
            .collect();

        let until = tokio::time::Instant::from_std(deadline);
        let share = limits.share(&self.ledger, req);
        let scans = join_all(
            distinct
                .into_iter()
                .map(|image| self.lookup(image, lookup, until, share.clone())),
        )
        .await;

        let mut results: Vec<Option<Checked>> = Vec::with_capacity(total);
        let mut jobs = Vec::new();
        for (i, (target, slot)) in targets.into_iter().zip(slots).enumerate() {
            let (digest, result) = match slot {
                Slot::Done(result) => (None, result),
                Slot::Image(j) => {
                    let (image, scan) = &scans[j];
                    match scan {
                        Err((kind, reason)) => (
                            checked_digest(image),
                            CheckResult::Failed(*kind, reason.clone()),
                        ),
                        Ok(scan) => {
                            results.push(None);
                            jobs.push((i, target, image.clone(), scan.clone()));
                            continue;
                        }
                    }
                }
            };
            results.push(Some(Checked {
                target,
                digest,
                result,
            }));
        }
        let evaluated: Vec<(usize, Checked)> = futures_util::stream::iter(jobs)
            .map(|(i, target, image, scan)| async move {
                (
                    i,
                    self.evaluate(req, meta, target, image, scan, until).await,
                )
            })
            .buffered(limits.parallel_evaluations.max(1))
            .collect()
            .await;
        for (i, checked) in evaluated {
            if let Some(slot) = results.get_mut(i) {
                *slot = Some(checked);
            }
        }
        let reason = limits.containers_reason(total);
        results
            .into_iter()
            .flatten()
            .chain(overflow.into_iter().map(|target| Checked {
                target,
                digest: None,
                result: CheckResult::Failed(FailureKind::Limit, reason.clone()),
            }))
            .collect()
    }

    /// Looks up one distinct image — its tag resolved at the registry first, when a resolver
    /// is set — charged to the review's share of the Lacework budget. Returns the image as
    /// resolved (its digests fill the policy input) with the scan or what stopped the lookup.
    async fn lookup(
        &self,
        image: ImageRef,
        lookup: Lookup,
        until: tokio::time::Instant,
        share: BudgetShare,
    ) -> (
        ImageRef,
        std::result::Result<ScanReport, (FailureKind, String)>,
    ) {
        let resolving = resolve_with(self.resolver.as_ref(), image.clone());
        let image = match tokio::time::timeout_at(until, resolving).await {
            Err(_) => {
                let reason = deadline_reason("tag resolution", &self.config);
                return (image, Err((FailureKind::Deadline, reason)));
            }
            Ok(Err(e)) => {
                let reason = format!("cannot resolve the tag to a digest: {e}");
                return (image, Err((FailureKind::Resolve, reason)));
            }
            Ok(Ok(resolved)) => resolved,
        };
        let scan = self.scan(&image, lookup, until, share).await;
        (image, scan)
    }

    /// The scan of one (resolved) image, until the deadline.
    async fn scan(
        &self,
        image: &ImageRef,
        lookup: Lookup,
        until: tokio::time::Instant,
        share: BudgetShare,
    ) -> std::result::Result<ScanReport, (FailureKind, String)> {
        let scan = share.scope(self.scans.scan(image, lookup));
        let scan = match tokio::time::timeout_at(until, scan).await {
            Err(_) => {
                return Err((
                    FailureKind::Deadline,
                    deadline_reason("scan lookup", &self.config),
                ));
            }
            Ok(Err(e)) => return Err((FailureKind::Scan, e.to_string())),
            Ok(Ok(scan)) => scan,
        };
        if scan.status == ScanStatus::Unavailable
            && self.config.unavailable_scans == UnavailableScans::FailurePolicy
        {
            let reason = scan
                .error
                .clone()
                .unwrap_or_else(|| format!("the scan source ({}) is unavailable", scan.source));
            return Err((FailureKind::Scan, reason));
        }
        Ok(scan)
    }

    /// Evaluates the policy on one container, until the deadline.
    async fn evaluate(
        &self,
        req: &AdmissionRequest,
        meta: &ObjectMeta,
        target: ContainerImage,
        image: ImageRef,
        scan: ScanReport,
        until: tokio::time::Instant,
    ) -> Checked {
        let digest = checked_digest(&image);
        if tokio::time::Instant::now() >= until {
            // Not even started: an evaluation begun now would only hold a pool thread for an
            // answer nobody waits for.
            return Checked {
                target,
                digest,
                result: CheckResult::Failed(
                    FailureKind::Deadline,
                    deadline_reason("policy evaluation", &self.config),
                ),
            };
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
        let result = match tokio::time::timeout_at(until, self.policy.evaluate(&input)).await {
            Err(_) => CheckResult::Failed(
                FailureKind::Deadline,
                deadline_reason("policy evaluation", &self.config),
            ),
            Ok(Err(e)) => CheckResult::Failed(FailureKind::Policy, e.to_string()),
            Ok(Ok(decision)) => CheckResult::Decided {
                decision,
                scan_status,
            },
        };
        Checked {
            target,
            digest,
            result,
        }
    }
}

/// What identifies a container across the old and new object of an update.
fn container_key(t: &ContainerImage) -> (&str, &'static str, &str) {
    let kind = match t.container.kind {
        ContainerType::Container => "container",
        ContainerType::Init => "init",
        ContainerType::Ephemeral => "ephemeral",
    };
    (t.container.name.as_str(), kind, t.image.as_str())
}

/// What the audit annotation names for a checked image: the pinned digest, else the one its
/// tag resolved to.
fn checked_digest(image: &ImageRef) -> Option<String> {
    image
        .digest
        .clone()
        .or_else(|| image.resolved_digest.clone())
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
    let mut limited: BTreeMap<&str, (usize, Vec<String>)> = BTreeMap::new();

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
                // Limits and the deadline leave many containers unchecked for one reason.
                if matches!(kind, FailureKind::Limit | FailureKind::Deadline) {
                    let (count, names) = limited.entry(reason.as_str()).or_default();
                    *count += 1;
                    if names.len() < LIMITED_NAMED {
                        names.push(who);
                    }
                } else {
                    failures_text.push(format!("could not check {who}: {reason}"));
                }
            }
        }
    }
    // One line per limit, not per container: a review past a limit may list tens of thousands.
    for (reason, (count, names)) in limited {
        let more = if count > names.len() { ", …" } else { "" };
        if count == 1 {
            failures_text.push(format!("could not check {}: {reason}", names.join(", ")));
            continue;
        }
        failures_text.push(format!(
            "could not check {count} container{} ({}{more}): {reason}",
            if count == 1 { "" } else { "s" },
            names.join(", ")
        ));
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
        .with_audit_annotation("decision", audit_decision(verdict, mode, failure_policy))
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

/// The `decision` audit annotation: what Helios did, except that in `warn` and `audit` modes it
/// states what `enforce` would have done (as Pod Security Admission's `audit-violations` does),
/// so an auditor reads the verdict instead of inferring it from the violation count.
fn audit_decision(verdict: Verdict, mode: Mode, failure_policy: FailurePolicy) -> &'static str {
    match verdict {
        Verdict::Warn | Verdict::Audit => "would-deny",
        Verdict::FailOpen if mode != Mode::Enforce && failure_policy == FailurePolicy::Closed => {
            "would-deny"
        }
        other => other.as_str(),
    }
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
        images = %log_images(&outcome.images),
        decision = outcome.verdict.as_str(),
        mode = outcome.mode.as_str(),
        failures = outcome.failures.len(),
        reason = outcome.reason.as_deref().unwrap_or(""),
        duration_ms = outcome.duration.as_secs_f64() * 1000.0,
        "admission review"
    );
}

/// The images of a review for its log line, bounded: a hostile review may list tens of
/// thousands, or one image string of a megabyte.
fn log_images(images: &[String]) -> String {
    let mut line = String::new();
    for (i, image) in images.iter().enumerate() {
        if line.len() >= MAX_LOG_IMAGES_LEN {
            let _ = write!(line, ",… ({} more)", images.len() - i);
            break;
        }
        if i > 0 {
            line.push(',');
        }
        line.push_str(&shorten(
            image,
            MAX_LOG_IMAGES_LEN.saturating_sub(line.len()).max(16),
        ));
    }
    line
}
