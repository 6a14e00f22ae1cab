//! The shared policy cases of `tests/fixtures/cases/*.json`: loading, and the comparison rule.
//!
//! The same files drive the Rust, Python and Node suites and the OPA parity suite, so this module
//! knows nothing about any backend: it reads a case, hands out its policy paths, data, package and
//! input, and judges an outcome (a decision or an error) against the case's expectation.

use std::path::{Path, PathBuf};
use std::time::Duration;

use helios_core::policy::{Backend, Decision, EvaluatorOptions};
use serde::Deserialize;
use serde_json::Value;

/// `tests/fixtures/` of the workspace.
pub fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("tests")
        .join("fixtures")
}

/// One case file, as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CaseFile {
    description: String,
    #[serde(default)]
    policy: Vec<String>,
    #[serde(default)]
    data: Option<Value>,
    #[serde(default)]
    package: Option<String>,
    #[serde(default)]
    rego_v0: bool,
    #[serde(default)]
    time_limit_ms: Option<u64>,
    input: Value,
    expect: Expect,
}

/// What a case expects: an error code, or a decision.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged, deny_unknown_fields)]
pub enum Expect {
    /// The evaluation fails with this `Error::code()`.
    Error {
        /// The expected code, e.g. `policy_type`.
        error: String,
    },
    /// The evaluation decides this.
    Decision {
        /// `allowed`.
        allowed: bool,
        /// `violations`, exactly and in order.
        violations: Vec<Value>,
        /// `warnings`, exactly and in order.
        warnings: Vec<Value>,
        /// `policy.id`.
        policy_id: String,
    },
}

/// One loaded case, its input resolved to a JSON value.
#[derive(Debug, Clone)]
pub struct Case {
    /// The file stem, e.g. `default-critical-no-fix`.
    pub name: String,
    /// What the case shows.
    pub description: String,
    /// Policy paths (absolute); empty means the shipped default policy.
    pub policy: Vec<PathBuf>,
    /// Data document merged under `data`.
    pub data: Option<Value>,
    /// The package (default `helios`).
    pub package: String,
    /// Parse policies as Rego v0.
    pub rego_v0: bool,
    /// The execution time limit, when the case sets one.
    pub time_limit: Option<Duration>,
    /// The input document (not yet checked against the contract: some cases are invalid inputs).
    pub input: Value,
    /// The expectation.
    pub expect: Expect,
}

/// Loads every case, in file-name order. Any unreadable or malformed case file is an error
/// naming it: a broken case must never be skipped silently.
pub fn load_cases() -> Result<Vec<Case>, String> {
    let root = fixtures_dir();
    let dir = root.join("cases");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .map_err(|e| format!("cannot list {}: {e}", dir.display()))?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    files.iter().map(|file| load_case(&root, file)).collect()
}

fn load_case(root: &Path, file: &Path) -> Result<Case, String> {
    let shown = file.display();
    let text = std::fs::read_to_string(file).map_err(|e| format!("cannot read {shown}: {e}"))?;
    let raw: CaseFile = serde_json::from_str(&text).map_err(|e| format!("{shown}: {e}"))?;
    let input = match raw.input {
        Value::String(rel) => {
            let path = root.join(&rel);
            let text = std::fs::read_to_string(&path)
                .map_err(|e| format!("{shown}: cannot read input {}: {e}", path.display()))?;
            serde_json::from_str(&text)
                .map_err(|e| format!("{shown}: input {} is not JSON: {e}", path.display()))?
        }
        Value::Object(obj) => Value::Object(obj),
        other => {
            return Err(format!(
                "{shown}: `input` must be a path or an object, got {other}"
            ));
        }
    };
    for rel in &raw.policy {
        if !root.join(rel).exists() {
            return Err(format!("{shown}: policy {rel} does not exist"));
        }
    }
    let name = file
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    Ok(Case {
        name,
        description: raw.description,
        policy: raw.policy.iter().map(|p| root.join(p)).collect(),
        data: raw.data,
        package: raw
            .package
            .unwrap_or_else(|| helios_core::policy::DEFAULT_PACKAGE.to_string()),
        rego_v0: raw.rego_v0,
        time_limit: raw.time_limit_ms.map(Duration::from_millis),
        input,
        expect: raw.expect,
    })
}

impl Case {
    /// The case's policy, data, package, Rego version and time limit as the core's options (what
    /// the CLI flags and the bindings' options also become); `build_embedded()` runs it.
    pub fn options(&self) -> EvaluatorOptions {
        let defaults = EvaluatorOptions::default();
        EvaluatorOptions {
            paths: self.policy.clone(),
            data: self.data.clone(),
            package: self.package.clone(),
            rego_v0: self.rego_v0,
            time_limit_ms: self
                .time_limit
                .map_or(defaults.time_limit_ms, |t| t.as_millis() as u64),
            ..defaults
        }
    }

    /// Judges an outcome by the comparison rule: `allowed`, `violations`, `warnings` (exact, order
    /// included) and `policy.id` equal; `policy.version` a `sha256:` digest (any non-empty version
    /// from OPA); `backend` ignored. An error must carry the expected code.
    pub fn check(&self, outcome: &helios_core::Result<Decision>) -> Result<(), String> {
        match (&self.expect, outcome) {
            (Expect::Error { error }, Err(e)) if e.code() == error => Ok(()),
            (Expect::Error { error }, Err(e)) => Err(format!(
                "expected error {error}, got error {} ({e})",
                e.code()
            )),
            (Expect::Error { error }, Ok(d)) => Err(format!(
                "expected error {error}, got a decision: {}",
                show(d)
            )),
            (Expect::Decision { .. }, Err(e)) => {
                Err(format!("expected a decision, got error {} ({e})", e.code()))
            }
            (
                Expect::Decision {
                    allowed,
                    violations,
                    warnings,
                    policy_id,
                },
                Ok(d),
            ) => {
                let mut diffs = Vec::new();
                if d.allowed != *allowed {
                    diffs.push(format!("allowed: expected {allowed}, got {}", d.allowed));
                }
                let got_violations = to_values(&d.violations);
                if &got_violations != violations {
                    diffs.push(format!(
                        "violations: expected {}, got {}",
                        Value::from(violations.clone()),
                        Value::from(got_violations)
                    ));
                }
                let got_warnings = to_values(&d.warnings);
                if &got_warnings != warnings {
                    diffs.push(format!(
                        "warnings: expected {}, got {}",
                        Value::from(warnings.clone()),
                        Value::from(got_warnings)
                    ));
                }
                if &d.policy.id != policy_id {
                    diffs.push(format!(
                        "policy.id: expected {policy_id:?}, got {:?}",
                        d.policy.id
                    ));
                }
                let version_ok = match d.backend {
                    Backend::Opa => !d.policy.version.is_empty(),
                    _ => d.policy.version.starts_with("sha256:"),
                };
                if !version_ok {
                    diffs.push(format!(
                        "policy.version: expected a sha256: digest, got {:?}",
                        d.policy.version
                    ));
                }
                if diffs.is_empty() {
                    Ok(())
                } else {
                    Err(diffs.join("; "))
                }
            }
        }
    }
}

fn to_values<T: serde::Serialize>(items: &[T]) -> Vec<Value> {
    items
        .iter()
        .map(|i| serde_json::to_value(i).unwrap_or_else(|e| Value::String(e.to_string())))
        .collect()
}

fn show(d: &Decision) -> String {
    serde_json::to_string(d).unwrap_or_else(|e| e.to_string())
}
