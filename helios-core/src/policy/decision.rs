//! The decision contract: what every backend returns, identically but for `backend`.

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::error::{Error, Result};
use crate::policy::Package;
use crate::policy::document::Document;

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
        Self::from_package(document, package, version, backend)
    }

    /// [`Decision::from_document`] on any [`Document`]: the embedded engine passes its own value.
    pub(crate) fn from_package<D: Document>(
        document: Option<&D>,
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
            Some(doc) if doc.fields().is_some() => doc,
            Some(other) => {
                return Err(type_error(package.query(), "an object (a package)", other));
            }
        };

        let mut violations = findings(doc, package, "deny")?;
        violations.extend(findings(doc, package, "violation")?);
        sort(&mut violations);
        let mut warnings = findings(doc, package, "warn")?;
        sort(&mut warnings);

        let allow = match doc.field("allow") {
            None => true,
            Some(value) => value
                .as_bool()
                .ok_or_else(|| type_error(package.rule("allow"), "a boolean", value))?,
        };
        let id = match doc.field("policy_id") {
            None => package.to_string(),
            Some(value) => value
                .as_text()
                .ok_or_else(|| type_error(package.rule("policy_id"), "a string", value))?
                .to_string(),
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

fn findings<D: Document>(doc: &D, package: &Package, rule: &str) -> Result<Vec<Finding>> {
    let Some(value) = doc.field(rule) else {
        return Ok(Vec::new());
    };
    let Some(entries) = value.members() else {
        return Err(type_error(
            package.rule(rule),
            "a set of strings or of objects with `msg`",
            value,
        ));
    };
    entries.map(|entry| finding(entry, package, rule)).collect()
}

/// One entry of a `deny`, `violation` or `warn` set: a message, or an object with one.
fn finding<D: Document>(entry: &D, package: &Package, rule: &str) -> Result<Finding> {
    if let Some(msg) = entry.as_text() {
        return Ok(Finding {
            msg: msg.to_string(),
            details: Map::new(),
        });
    }
    let Some(fields) = entry.fields() else {
        return Err(type_error(
            format!("{} entry", package.rule(rule)),
            "a string or an object with `msg`",
            entry,
        ));
    };
    let mut msg = None;
    let mut details = Map::new();
    for (key, value) in fields {
        if key == "msg" {
            msg = Some(value);
        } else {
            details.insert(key.into_owned(), value.to_json()?);
        }
    }
    match msg.and_then(D::as_text) {
        Some(msg) => Ok(Finding {
            msg: msg.to_string(),
            details,
        }),
        None => Err(type_error(
            format!("{} entry", package.rule(rule)),
            "an object with a string `msg`",
            entry,
        )),
    }
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

fn type_error<D: Document>(rule: String, expected: &str, found: &D) -> Error {
    let mut shown = match found.to_json() {
        Ok(json) => json.to_string(),
        Err(e) => e.to_string(),
    };
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
