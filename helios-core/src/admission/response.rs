//! The response builder: a pure function from the checked images of a review to its
//! `AdmissionResponse` (message, warnings, audit annotations) and [`ReviewOutcome`].

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use crate::admission::images::ContainerImage;
use crate::admission::review::{AdmissionResponse, shorten};
use crate::admission::settings::{FailurePolicy, Mode, UnknownKinds};
use serde::Serialize;

use crate::policy::{ContainerType, Decision, PolicyRef};
use crate::scan::ScanStatus;

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
    /// A per-review limit ([`ReviewLimits`](crate::admission::ReviewLimits)) left the container
    /// unchecked.
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
    /// The request reviewed (for decision logs).
    pub request: RequestSummary,
    /// Each checked container: its image, digest and scan (for decision logs).
    pub checked: Vec<CheckedImage>,
    /// The policy that decided, when an image reached the policy.
    pub policy: Option<PolicyRef>,
}

impl ReviewOutcome {
    /// Whether the review was allowed (only `deny` and `fail_closed` deny).
    pub fn allowed(&self) -> bool {
        !matches!(self.verdict, Verdict::Deny | Verdict::FailClosed)
    }
}

/// What a review was about, without the object itself or the user's extra attributes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RequestSummary {
    /// The request's `uid`.
    pub uid: String,
    /// The object's kind, e.g. `Deployment`.
    pub kind: String,
    /// Its namespace (empty for cluster-scoped objects).
    pub namespace: String,
    /// Its name.
    pub name: String,
    /// `CREATE`, `UPDATE`, …
    pub operation: String,
    /// Whether it was a dry run.
    pub dry_run: bool,
    /// `userInfo.username`.
    pub user: String,
}

/// One checked container, as a decision log records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CheckedImage {
    /// The container's name.
    pub container: String,
    /// Its image, as written in the spec.
    pub image: String,
    /// The digest checked (pinned, or resolved from the tag), when known.
    pub digest: Option<String>,
    /// The scan's status (`completed`, `not_found`, …), or `error:<kind>` when the image could
    /// not be checked, `invalid_image` when its reference does not parse.
    pub scan_status: String,
    /// The scanner's id of the scan (Lacework's `evalGuid`), when it has one.
    pub scan_id: Option<String>,
}

impl CheckedImage {
    fn unchecked(c: &Checked, scan_status: String) -> Self {
        CheckedImage {
            container: c.target.container.name.clone(),
            image: c.target.image.clone(),
            digest: c.digest.clone(),
            scan_status,
            scan_id: None,
        }
    }
}
/// One container's check.
#[derive(Debug, Clone)]
pub(crate) struct Checked {
    /// The container and its image as written.
    pub(crate) target: ContainerImage,
    /// The digest the audit annotation names (pinned, or resolved from the tag).
    pub(crate) digest: Option<String>,
    /// What the check found.
    pub(crate) result: CheckResult,
}

/// What the check of one container found.
#[derive(Debug, Clone)]
pub(crate) enum CheckResult {
    /// The policy decided, on a scan of this status.
    Decided {
        /// The decision.
        decision: Decision,
        /// The status of the scan it was made on.
        scan_status: ScanStatus,
        /// The scanner's id of that scan (Lacework's `evalGuid`), when it has one.
        scan_id: Option<String>,
    },
    /// The image reference does not parse: a violation, whatever the failure policy.
    InvalidImage(String),
    /// The image could not be checked, for this reason.
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
/// Containers named in the one message about containers left unchecked by a limit.
const LIMITED_NAMED: usize = 3;
/// How a message names a container's image.
fn describe(t: &ContainerImage) -> String {
    let kind = match t.container.kind {
        ContainerType::Container => "container",
        ContainerType::Init => "init container",
        ContainerType::Ephemeral => "ephemeral container",
    };
    format!("image {} ({kind} {})", t.image, t.container.name)
}

/// The response to a review whose containers were checked: the verdict of `mode` and
/// `failure_policy` over `checks`, the denial message (bounded), the warnings and the audit
/// annotations.
pub(crate) fn respond(
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
    let mut checked = Vec::with_capacity(checks.len());

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
                scan_id,
            } => {
                statuses.insert(c.target.container.name.clone(), scan_status.to_string());
                checked.push(CheckedImage {
                    container: c.target.container.name.clone(),
                    image: c.target.image.clone(),
                    digest: c.digest.clone(),
                    scan_status: scan_status.to_string(),
                    scan_id: scan_id.clone(),
                });
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
                checked.push(CheckedImage::unchecked(c, "invalid_image".into()));
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
                checked.push(CheckedImage::unchecked(
                    c,
                    format!("error:{}", kind.as_str()),
                ));
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
                    // The verdict first: a warning is cut at 256 bytes, and a long image
                    // reference and reason would otherwise cut off what was done.
                    warnings.push(format!("helios: allowed ({why}): {f}"));
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
    if let Some(p) = &policy {
        response = response
            .with_audit_annotation("policy-id", p.id.clone())
            .with_audit_annotation("policy-version", p.version.clone());
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
        request: RequestSummary::default(),
        checked,
        policy,
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

/// The response to a review with nothing to check.
pub(crate) fn skip(
    base: AdmissionResponse,
    mode: Mode,
    reason: String,
) -> (AdmissionResponse, ReviewOutcome) {
    let response = base
        .with_audit_annotation("decision", Verdict::Skip.as_str())
        .with_audit_annotation("mode", mode.as_str());
    (
        response,
        ReviewOutcome::nothing(Verdict::Skip, mode, reason),
    )
}

/// The response to a review of a kind Helios cannot read images from (`kind` is
/// `group/kind`): allowed, unless unknown kinds are denied in enforce mode (in warn and audit
/// modes the `decision` annotation says `would-deny`).
pub(crate) fn unknown_kind(
    base: AdmissionResponse,
    mode: Mode,
    unknown_kinds: UnknownKinds,
    kind: &str,
) -> (AdmissionResponse, ReviewOutcome) {
    let reason = format!("kind {kind} is not inspected");
    if unknown_kinds == UnknownKinds::Deny && mode == Mode::Enforce {
        let response = base
            .deny(format!(
                "helios: kind {kind} is not supported by this webhook, and unknown kinds are denied"
            ))
            .with_audit_annotation("decision", Verdict::Deny.as_str());
        return (
            response,
            ReviewOutcome::nothing(Verdict::Deny, mode, reason),
        );
    }
    let (mut response, outcome) = skip(base, mode, reason);
    if unknown_kinds == UnknownKinds::Deny {
        // Warn or audit mode: enforce would have denied the kind.
        response = response.with_audit_annotation("decision", "would-deny");
    }
    (response, outcome)
}

impl ReviewOutcome {
    /// The outcome of a review that checked no image.
    fn nothing(verdict: Verdict, mode: Mode, reason: String) -> Self {
        ReviewOutcome {
            verdict,
            mode,
            images: Vec::new(),
            failures: Vec::new(),
            reason: Some(reason),
            duration: Duration::ZERO,
            request: RequestSummary::default(),
            checked: Vec::new(),
            policy: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use serde_json::json;

    use super::*;
    use crate::admission::review::{MAX_WARNING_LEN, MAX_WARNINGS_TOTAL};
    use crate::policy::Container;

    fn base() -> AdmissionResponse {
        AdmissionResponse {
            api_version: "admission.k8s.io/v1".into(),
            uid: "u-1".into(),
            allowed: true,
            result: None,
            audit_annotations: BTreeMap::new(),
            warnings: None,
            patch: None,
            patch_type: None,
        }
    }

    fn target(name: &str) -> ContainerImage {
        ContainerImage {
            container: Container {
                name: name.into(),
                kind: ContainerType::Container,
            },
            image: format!("registry.example/{name}:1"),
        }
    }

    fn decision(violations: &[&str], warnings: &[&str]) -> Decision {
        let findings = |msgs: &[&str]| msgs.iter().map(|m| json!({"msg": m})).collect::<Vec<_>>();
        serde_json::from_value(json!({
            "allowed": violations.is_empty(),
            "violations": findings(violations),
            "warnings": findings(warnings),
            "policy": {"id": "helios-default", "version": "1.2.0"},
            "backend": "embedded",
        }))
        .unwrap_or_else(|e| panic!("test decision: {e}"))
    }

    fn decided(name: &str, violations: &[&str], status: ScanStatus) -> Checked {
        Checked {
            target: target(name),
            digest: Some(format!("sha256:{name}")),
            result: CheckResult::Decided {
                decision: decision(violations, &[]),
                scan_status: status,
                scan_id: None,
            },
        }
    }

    fn failed(name: &str, kind: FailureKind, reason: &str) -> Checked {
        Checked {
            target: target(name),
            digest: None,
            result: CheckResult::Failed(kind, reason.into()),
        }
    }

    fn annotation<'a>(r: &'a AdmissionResponse, key: &str) -> &'a str {
        r.audit_annotations.get(key).map_or("", String::as_str)
    }

    fn message(r: &AdmissionResponse) -> &str {
        r.result
            .as_ref()
            .and_then(|s| s.message.as_deref())
            .unwrap_or("")
    }

    fn warnings(r: &AdmissionResponse) -> Vec<String> {
        r.warnings.clone().unwrap_or_default()
    }

    const CLOSED: FailurePolicy = FailurePolicy::Closed;
    const OPEN: FailurePolicy = FailurePolicy::Open;

    #[test]
    fn enforce_denies_with_the_violations_and_annotates_the_policy() {
        let checks = vec![
            decided("app", &["CVE-1 is critical"], ScanStatus::Completed),
            decided("side", &[], ScanStatus::Completed),
        ];
        let (r, outcome) = respond(base(), Mode::Enforce, CLOSED, checks);
        assert!(!r.allowed);
        assert_eq!(r.result.as_ref().and_then(|s| s.code), Some(403));
        assert_eq!(
            message(&r),
            "image registry.example/app:1 (container app) violates policy helios-default:\n  - CVE-1 is critical"
        );
        assert_eq!(outcome.verdict, Verdict::Deny);
        assert_eq!(outcome.images.len(), 2);
        assert_eq!(annotation(&r, "decision"), "deny");
        assert_eq!(annotation(&r, "mode"), "enforce");
        assert_eq!(annotation(&r, "violations"), "1");
        assert_eq!(annotation(&r, "policy-id"), "helios-default");
        assert_eq!(annotation(&r, "policy-version"), "1.2.0");
        assert_eq!(
            annotation(&r, "digests"),
            r#"{"app":"sha256:app","side":"sha256:side"}"#
        );
        assert_eq!(
            annotation(&r, "scan-statuses"),
            r#"{"app":"completed","side":"completed"}"#
        );
        assert_eq!(r.warnings, None);
    }

    #[test]
    fn all_allowed_is_allow_with_the_policy_warnings() {
        let mut check = decided("app", &[], ScanStatus::Completed);
        if let CheckResult::Decided { decision: d, .. } = &mut check.result {
            *d = decision(&[], &["base image is old"]);
        }
        let (r, outcome) = respond(base(), Mode::Enforce, CLOSED, vec![check]);
        assert!(r.allowed);
        assert_eq!(outcome.verdict, Verdict::Allow);
        assert_eq!(annotation(&r, "decision"), "allow");
        assert_eq!(
            warnings(&r),
            vec!["helios: image registry.example/app:1 (container app): base image is old"]
        );
    }

    #[test]
    fn violations_are_quoted_five_at_a_time_and_the_message_is_bounded() {
        let many: Vec<String> = (0..8)
            .map(|i| format!("CVE-{i} {}", "x".repeat(400)))
            .collect();
        let many: Vec<&str> = many.iter().map(String::as_str).collect();
        let checks = (0..10)
            .map(|i| decided(&format!("c{i}"), &many, ScanStatus::Completed))
            .collect();
        let (r, _) = respond(base(), Mode::Enforce, CLOSED, checks);
        let text = message(&r);
        assert!(text.len() <= MAX_MESSAGE_LEN, "{}", text.len());
        assert!(text.ends_with("..."));
        assert!(text.contains("  - and 3 more"));
        // Each violation is cut to its own limit.
        let first = text.lines().nth(1).unwrap_or("");
        assert_eq!(first.len(), "  - ".len() + MAX_VIOLATION_LEN);
        assert_eq!(annotation(&r, "violations"), "80");
    }

    #[test]
    fn warn_mode_allows_with_bounded_warnings_and_says_it_would_deny() {
        let many: Vec<String> = (0..40)
            .map(|i| format!("CVE-{i} {}", "y".repeat(300)))
            .collect();
        let many: Vec<&str> = many.iter().map(String::as_str).collect();
        let (r, outcome) = respond(
            base(),
            Mode::Warn,
            CLOSED,
            vec![decided("app", &many, ScanStatus::Completed)],
        );
        assert!(r.allowed);
        assert_eq!(r.result, None);
        assert_eq!(outcome.verdict, Verdict::Warn);
        assert_eq!(annotation(&r, "decision"), "would-deny");
        assert_eq!(annotation(&r, "mode"), "warn");
        let w = warnings(&r);
        assert!(w[0].starts_with("helios (warn mode) would deny image registry.example/app:1"));
        assert!(w.iter().all(|w| w.len() <= MAX_WARNING_LEN));
        assert!(w.iter().map(String::len).sum::<usize>() <= MAX_WARNINGS_TOTAL);
        assert!(
            w.last()
                .is_some_and(|l| l.ends_with("more warning(s) omitted"))
        );
    }

    #[test]
    fn audit_mode_allows_silently_and_says_it_would_deny() {
        let (r, outcome) = respond(
            base(),
            Mode::Audit,
            CLOSED,
            vec![decided("app", &["CVE-1"], ScanStatus::Completed)],
        );
        assert!(r.allowed);
        assert_eq!(r.warnings, None);
        assert_eq!(outcome.verdict, Verdict::Audit);
        assert_eq!(annotation(&r, "decision"), "would-deny");
        assert_eq!(annotation(&r, "mode"), "audit");
        assert_eq!(annotation(&r, "violations"), "1");
    }

    #[test]
    fn failure_policy_closed_denies_and_open_warns() {
        let down = || vec![failed("app", FailureKind::Scan, "lacework: 503")];
        let (r, outcome) = respond(base(), Mode::Enforce, CLOSED, down());
        assert!(!r.allowed);
        assert_eq!(outcome.verdict, Verdict::FailClosed);
        assert_eq!(outcome.failures, vec![FailureKind::Scan]);
        assert_eq!(
            message(&r),
            "could not check image registry.example/app:1 (container app): lacework: 503 (failure policy: closed)"
        );
        assert_eq!(annotation(&r, "decision"), "fail_closed");
        assert_eq!(annotation(&r, "scan-statuses"), r#"{"app":"error:scan"}"#);
        assert_eq!(annotation(&r, "digests"), r#"{"app":null}"#);
        assert_eq!(
            annotation(&r, "errors"),
            "could not check image registry.example/app:1 (container app): lacework: 503"
        );

        let (r, outcome) = respond(base(), Mode::Enforce, OPEN, down());
        assert!(r.allowed);
        assert_eq!(outcome.verdict, Verdict::FailOpen);
        assert_eq!(annotation(&r, "decision"), "fail_open");
        assert_eq!(
            warnings(&r),
            vec![
                "helios: allowed (failure policy: open): could not check image registry.example/app:1 (container app): lacework: 503"
            ]
        );
    }

    #[test]
    fn failures_outside_enforce_never_block_but_say_what_enforce_would_do() {
        let down = || vec![failed("app", FailureKind::Policy, "engine error")];
        let (r, _) = respond(base(), Mode::Warn, CLOSED, down());
        assert!(r.allowed);
        assert_eq!(annotation(&r, "decision"), "would-deny");
        assert_eq!(
            warnings(&r),
            vec![
                "helios: allowed (warn mode): could not check image registry.example/app:1 (container app): engine error"
            ]
        );
        let (r, _) = respond(base(), Mode::Audit, CLOSED, down());
        assert!(r.allowed);
        assert_eq!(r.warnings, None);
        assert_eq!(annotation(&r, "decision"), "would-deny");
        let (r, _) = respond(base(), Mode::Warn, OPEN, down());
        assert_eq!(annotation(&r, "decision"), "fail_open");
    }

    #[test]
    fn unavailable_scans_are_named_in_the_statuses() {
        // Left to the policy, an unavailable scan is decided on and named as such.
        let (r, _) = respond(
            base(),
            Mode::Enforce,
            CLOSED,
            vec![decided(
                "app",
                &["scan unavailable"],
                ScanStatus::Unavailable,
            )],
        );
        assert!(!r.allowed);
        assert_eq!(annotation(&r, "scan-statuses"), r#"{"app":"unavailable"}"#);
        // Under the failure policy it is a scan failure.
        let (r, outcome) = respond(
            base(),
            Mode::Enforce,
            OPEN,
            vec![failed("app", FailureKind::Scan, "lacework is unavailable")],
        );
        assert!(r.allowed);
        assert_eq!(outcome.failures, vec![FailureKind::Scan]);
        assert_eq!(annotation(&r, "scan-statuses"), r#"{"app":"error:scan"}"#);
    }

    #[test]
    fn containers_left_by_a_limit_are_one_line_and_annotations_are_bounded() {
        let checks: Vec<Checked> = (0..2000)
            .map(|i| failed(&format!("c{i:04}"), FailureKind::Limit, "over 32 images"))
            .collect();
        let (r, outcome) = respond(base(), Mode::Enforce, CLOSED, checks);
        assert_eq!(outcome.failures.len(), 2000);
        assert_eq!(
            message(&r),
            "could not check 2000 containers (image registry.example/c0000:1 (container c0000), \
             image registry.example/c0001:1 (container c0001), image registry.example/c0002:1 \
             (container c0002), …): over 32 images (failure policy: closed)"
        );
        for key in ["digests", "scan-statuses", "errors"] {
            assert!(annotation(&r, key).len() <= MAX_ANNOTATION_LEN, "{key}");
        }
        assert!(annotation(&r, "digests").ends_with("..."));
    }

    #[test]
    fn invalid_images_are_violations_whatever_the_failure_policy() {
        let check = Checked {
            target: target("app"),
            digest: None,
            result: CheckResult::InvalidImage("not a reference".into()),
        };
        let (r, outcome) = respond(base(), Mode::Enforce, OPEN, vec![check.clone()]);
        assert!(!r.allowed);
        assert_eq!(outcome.verdict, Verdict::Deny);
        assert_eq!(
            annotation(&r, "scan-statuses"),
            r#"{"app":"invalid_image"}"#
        );
        let (r, _) = respond(base(), Mode::Warn, OPEN, vec![check]);
        assert_eq!(
            warnings(&r),
            vec![
                "helios (warn mode) would deny image registry.example/app:1 (container app): not a reference"
            ]
        );
    }

    #[test]
    fn skips_and_unknown_kinds() {
        let (r, outcome) = skip(base(), Mode::Warn, "namespace a is excluded".into());
        assert!(r.allowed);
        assert_eq!(outcome.verdict, Verdict::Skip);
        assert_eq!(annotation(&r, "decision"), "skip");
        assert_eq!(annotation(&r, "mode"), "warn");

        let (r, outcome) = unknown_kind(base(), Mode::Enforce, UnknownKinds::Deny, "x.io/Widget");
        assert!(!r.allowed);
        assert_eq!(outcome.verdict, Verdict::Deny);
        assert_eq!(
            message(&r),
            "helios: kind x.io/Widget is not supported by this webhook, and unknown kinds are denied"
        );
        let (r, outcome) = unknown_kind(base(), Mode::Audit, UnknownKinds::Deny, "x.io/Widget");
        assert!(r.allowed);
        assert_eq!(outcome.verdict, Verdict::Skip);
        assert_eq!(annotation(&r, "decision"), "would-deny");
        let (r, outcome) = unknown_kind(base(), Mode::Enforce, UnknownKinds::Allow, "x.io/Widget");
        assert!(r.allowed);
        assert_eq!(annotation(&r, "decision"), "skip");
        assert_eq!(
            outcome.reason.as_deref(),
            Some("kind x.io/Widget is not inspected")
        );
    }
}
