//! The decision contract: what every backend returns, identically but for `backend`.

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::error::{Error, Result};
use crate::policy::Package;

/// The verdict of a policy on one input.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Decision {
    /// `allow` is not `false` and there are no violations.
    pub allowed: bool,
    /// Entries of `deny` and `violation`, sorted by `msg`.
    pub violations: Vec<Finding>,
    /// Entries of `warn`, sorted by `msg`.
    pub warnings: Vec<Finding>,
    /// Which policy decided.
    pub policy: PolicyRef,
    /// Which backend evaluated it.
    pub backend: Backend,
    /// The server's decision id, when the backend reports one (OPA's `decision_id`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decision_id: Option<String>,
}

/// One violation or warning: at least a `msg`, plus whatever fields the policy added.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Finding {
    /// The human-readable message.
    pub msg: String,
    /// Extra fields of an object entry (e.g. `code`), kept as the policy wrote them.
    #[serde(flatten)]
    pub details: Map<String, Value>,
}

/// Identifies the policy that decided.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct PolicyRef {
    /// `policy_id` from the policy, or the package path without `data.`.
    pub id: String,
    /// A digest of the policy sources and data, `sha256:…`.
    pub version: String,
}

/// The evaluation backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Backend {
    /// In-process `regorus`.
    Embedded,
    /// A remote OPA server.
    Opa,
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Backend::Embedded => "embedded",
            Backend::Opa => "opa",
        })
    }
}

impl Decision {
    /// Turns a package document (the value of `data.<package>`) into a decision.
    ///
    /// Shared by every backend so that they agree byte for byte. `None` (undefined package) and
    /// rules of the wrong type are policy errors, never an allow.
    pub fn from_document(
        document: Option<&Value>,
        package: &Package,
        version: String,
        backend: Backend,
    ) -> Result<Self> {
        let doc = match document {
            None => {
                return Err(Error::PolicyUndefined {
                    package: package.query(),
                });
            }
            Some(Value::Object(doc)) => doc,
            Some(other) => {
                return Err(type_error(package.query(), "an object (a package)", other));
            }
        };

        let mut violations = findings(doc, package, "deny")?;
        violations.extend(findings(doc, package, "violation")?);
        sort(&mut violations);
        let mut warnings = findings(doc, package, "warn")?;
        sort(&mut warnings);

        let allow = match doc.get("allow") {
            None => true,
            Some(Value::Bool(b)) => *b,
            Some(other) => return Err(type_error(package.rule("allow"), "a boolean", other)),
        };
        let id = match doc.get("policy_id") {
            None => package.to_string(),
            Some(Value::String(s)) => s.clone(),
            Some(other) => return Err(type_error(package.rule("policy_id"), "a string", other)),
        };

        Ok(Decision {
            allowed: allow && violations.is_empty(),
            violations,
            warnings,
            policy: PolicyRef { id, version },
            backend,
            decision_id: None,
        })
    }
}

fn findings(doc: &Map<String, Value>, package: &Package, rule: &str) -> Result<Vec<Finding>> {
    let entries = match doc.get(rule) {
        None => return Ok(Vec::new()),
        Some(Value::Array(entries)) => entries,
        Some(other) => {
            return Err(type_error(
                package.rule(rule),
                "a set of strings or of objects with `msg`",
                other,
            ));
        }
    };
    entries
        .iter()
        .map(|entry| match entry {
            Value::String(msg) => Ok(Finding {
                msg: msg.clone(),
                details: Map::new(),
            }),
            Value::Object(obj) => match obj.get("msg") {
                Some(Value::String(msg)) => {
                    let mut details = obj.clone();
                    details.remove("msg");
                    Ok(Finding {
                        msg: msg.clone(),
                        details,
                    })
                }
                _ => Err(type_error(
                    format!("{} entry", package.rule(rule)),
                    "an object with a string `msg`",
                    entry,
                )),
            },
            other => Err(type_error(
                format!("{} entry", package.rule(rule)),
                "a string or an object with `msg`",
                other,
            )),
        })
        .collect()
}

/// Sorts by `msg`, then by the extra fields' JSON text, so every backend yields the same order.
/// The text is built only for findings with the same message (rare: a decision's messages are
/// mostly distinct), not once per finding.
fn sort(findings: &mut [Finding]) {
    findings.sort_unstable_by(|a, b| {
        a.msg.cmp(&b.msg).then_with(|| {
            let text = |f: &Finding| Value::Object(f.details.clone()).to_string();
            text(a).cmp(&text(b))
        })
    });
}

fn type_error(rule: String, expected: &str, found: &Value) -> Error {
    let mut shown = found.to_string();
    if shown.len() > 80 {
        let cut = (0..=77)
            .rev()
            .find(|i| shown.is_char_boundary(*i))
            .unwrap_or(0);
        shown.truncate(cut);
        shown.push_str("...");
    }
    Error::PolicyType {
        rule,
        expected: expected.to_string(),
        found: shown,
    }
}
