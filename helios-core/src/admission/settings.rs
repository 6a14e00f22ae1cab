//! The controller's settings: the `admission:` section of the webhook configuration (modes,
//! failure policy, excluded namespaces, deadline, limits) and the enums it is made of.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::admission::limits::ReviewLimits;
use crate::error::{Error, Result};

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

    /// Whether `username` counts as a controller for `skip_controlled_objects`.
    pub(crate) fn is_controller_user(&self, username: Option<&str>) -> bool {
        let Some(user) = username else { return false };
        self.controller_users
            .iter()
            .any(|u| match u.strip_suffix('*') {
                Some(prefix) => user.starts_with(prefix),
                None => user == u,
            })
    }
}
