//! Renderings of a gate outcome for CI systems: a log summary, JSON, Markdown (GitHub step
//! summaries, merge-request comments), JUnit XML (Jenkins, GitLab) and SARIF 2.1.0 (GitHub code
//! scanning). Each names the decision and the policy (id and version) that made it.

use std::fmt::Write as _;
use std::path::Path;
use std::str::FromStr;

use serde_json::{Value, json};

use super::GateOutcome;
use crate::error::Error;
use crate::policy::Finding;

/// The formats a gate outcome can be rendered in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReportFormat {
    /// A readable summary for build logs.
    Text,
    /// The artifact: `{"decision": …, "input": …, "exit_code": …}`.
    Json,
    /// A Markdown table and lists.
    Markdown,
    /// A JUnit XML test suite with one test case per image.
    Junit,
    /// A SARIF 2.1.0 log with one result per violation and warning.
    Sarif,
}

impl ReportFormat {
    /// Every format's name, as `FromStr` accepts them.
    pub const NAMES: &'static [&'static str] = &["text", "json", "markdown", "junit", "sarif"];

    /// The format a file name implies: `.sarif` (and `.sarif.json`) SARIF, `.xml` JUnit, `.md`
    /// Markdown, `.txt`/`.log` text, anything else JSON.
    pub fn for_path(path: &Path) -> Self {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().to_ascii_lowercase())
            .unwrap_or_default();
        if name.ends_with(".sarif") || name.ends_with(".sarif.json") {
            ReportFormat::Sarif
        } else if name.ends_with(".xml") {
            ReportFormat::Junit
        } else if name.ends_with(".md") {
            ReportFormat::Markdown
        } else if name.ends_with(".txt") || name.ends_with(".log") {
            ReportFormat::Text
        } else {
            ReportFormat::Json
        }
    }
}

impl FromStr for ReportFormat {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        Ok(match s.to_ascii_lowercase().as_str() {
            "text" => ReportFormat::Text,
            "json" => ReportFormat::Json,
            "markdown" | "md" => ReportFormat::Markdown,
            "junit" | "xml" => ReportFormat::Junit,
            "sarif" => ReportFormat::Sarif,
            other => {
                return Err(Error::invalid(
                    "report format",
                    format!(
                        "{other:?}; expected one of {}",
                        ReportFormat::NAMES.join(", ")
                    ),
                ));
            }
        })
    }
}

impl GateOutcome {
    /// Renders the outcome in `format`.
    pub fn render(&self, format: ReportFormat) -> String {
        match format {
            ReportFormat::Text => self.to_text(),
            ReportFormat::Json => pretty(&json!(self)),
            ReportFormat::Markdown => self.to_markdown(),
            ReportFormat::Junit => self.to_junit(),
            ReportFormat::Sarif => pretty(&self.to_sarif()),
        }
    }

    fn verdict(&self) -> &'static str {
        if self.decision.allowed {
            "ALLOWED"
        } else if self.undecided() {
            // Exit 2: the scan service could not be asked; the denial is not about the image.
            "UNDECIDED"
        } else {
            "DENIED"
        }
    }

    /// A readable summary for a build log.
    pub fn to_text(&self) -> String {
        let d = &self.decision;
        let scan = &self.input.scan;
        let s = &scan.summary;
        let mut out = String::new();
        let _ = writeln!(out, "{}  {}", self.verdict(), self.input.image.reference);
        let image = &self.input.image;
        if let Some(resolved) = &image.resolved_digest {
            let _ = write!(
                out,
                "  resolved {}:{} -> {resolved}",
                image.repository,
                image.tag.as_deref().unwrap_or("latest")
            );
            if let Some(platform) = &image.platform_digest {
                let _ = write!(out, ", platform manifest {platform}");
            }
            let _ = writeln!(out);
        }
        let _ = writeln!(
            out,
            "  policy   {} ({}), {} backend",
            d.policy.id, d.policy.version, d.backend
        );
        let _ = write!(out, "  scan     {} from {}", scan.status, scan.source);
        if let Some(id) = &scan.id {
            let _ = write!(out, ", id {id}");
        }
        if let Some(at) = &scan.scanned_at {
            let _ = write!(out, ", scanned {at}");
        }
        if let Some(error) = &scan.error {
            let _ = write!(out, ", error: {error}");
        }
        let _ = writeln!(out);
        let _ = writeln!(
            out,
            "  findings {} critical, {} high, {} medium, {} low, {} info, {} unknown ({} fixable)",
            s.critical, s.high, s.medium, s.low, s.info, s.unknown, s.fixable
        );
        for v in &d.violations {
            let _ = writeln!(out, "  deny     {}", v.msg);
        }
        for w in &d.warnings {
            let _ = writeln!(out, "  warn     {}", w.msg);
        }
        out
    }

    fn to_markdown(&self) -> String {
        let d = &self.decision;
        let s = &self.input.scan.summary;
        let icon = if d.allowed { "✅" } else { "❌" };
        let mut out = String::new();
        let _ = writeln!(
            out,
            "### {icon} Helios: {} `{}`\n",
            self.verdict(),
            self.input.image.reference
        );
        let _ = writeln!(out, "| policy | version | backend | scan |");
        let _ = writeln!(out, "|---|---|---|---|");
        let _ = writeln!(
            out,
            "| `{}` | `{}` | {} | {} ({}) |\n",
            d.policy.id,
            d.policy.version,
            d.backend,
            self.input.scan.status,
            self.input.scan.source
        );
        let _ = writeln!(
            out,
            "Findings: **{}** critical, **{}** high, {} medium, {} low, {} info, {} unknown; {} fixable.\n",
            s.critical, s.high, s.medium, s.low, s.info, s.unknown, s.fixable
        );
        for (title, findings) in [("Violations", &d.violations), ("Warnings", &d.warnings)] {
            if !findings.is_empty() {
                let _ = writeln!(out, "**{title}**\n");
                for f in findings {
                    let _ = writeln!(out, "- {}", f.msg.replace('\n', " "));
                }
                let _ = writeln!(out);
            }
        }
        out
    }

    fn to_junit(&self) -> String {
        let d = &self.decision;
        let image = xml_escape(&self.input.image.reference);
        let errors = usize::from(self.undecided());
        let failures = usize::from(!d.allowed) - errors;
        let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
        let _ = writeln!(
            out,
            "<testsuites name=\"helios\" tests=\"1\" failures=\"{failures}\" errors=\"{errors}\">"
        );
        let _ = writeln!(
            out,
            "  <testsuite name=\"helios {}\" tests=\"1\" failures=\"{failures}\" errors=\"{errors}\">",
            xml_escape(&d.policy.id)
        );
        let _ = writeln!(out, "    <properties>");
        for (name, value) in [
            ("policy.id", d.policy.id.as_str()),
            ("policy.version", d.policy.version.as_str()),
            ("backend", &d.backend.to_string()),
        ] {
            let _ = writeln!(
                out,
                "      <property name=\"{name}\" value=\"{}\"/>",
                xml_escape(value)
            );
        }
        let _ = writeln!(out, "    </properties>");
        let _ = writeln!(
            out,
            "    <testcase classname=\"helios.gate\" name=\"{image}\">"
        );
        if self.undecided() {
            // JUnit's error (not failure): the check could not run, the image was not judged.
            let reason = self
                .input
                .scan
                .error
                .as_deref()
                .unwrap_or("scan unavailable");
            let _ = writeln!(
                out,
                "      <error message=\"{}\" type=\"scan-unavailable\">{}</error>",
                xml_escape(&format!("the scan service could not be asked: {reason}")),
                xml_escape(&lines(&d.violations))
            );
        } else if !d.allowed {
            let message = match d.violations.len() {
                0 => "denied by policy (allow is false)".to_string(),
                1 => "1 violation".to_string(),
                n => format!("{n} violations"),
            };
            let _ = writeln!(
                out,
                "      <failure message=\"{}\" type=\"policy-violation\">{}</failure>",
                xml_escape(&message),
                xml_escape(&lines(&d.violations))
            );
        }
        if !d.warnings.is_empty() {
            let _ = writeln!(
                out,
                "      <system-out>{}</system-out>",
                xml_escape(&lines(&d.warnings))
            );
        }
        let _ = writeln!(out, "    </testcase>");
        let _ = writeln!(out, "  </testsuite>");
        let _ = writeln!(out, "</testsuites>");
        out
    }

    fn to_sarif(&self) -> Value {
        let d = &self.decision;
        let rule_of = |f: &Finding| {
            f.details
                .get("code")
                .and_then(Value::as_str)
                .unwrap_or("policy")
                .to_string()
        };
        let mut rules: Vec<String> = d
            .violations
            .iter()
            .chain(&d.warnings)
            .map(rule_of)
            .collect();
        rules.sort();
        rules.dedup();
        let results: Vec<Value> = d
            .violations
            .iter()
            .map(|f| (f, "error"))
            .chain(d.warnings.iter().map(|f| (f, "warning")))
            .map(|(f, level)| {
                json!({
                    "ruleId": rule_of(f),
                    "level": level,
                    "message": {"text": f.msg},
                    "locations": [{"logicalLocations": [{
                        "name": self.input.image.reference,
                        "kind": "image"
                    }]}],
                    "properties": f.details,
                })
            })
            .collect();
        json!({
            "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
            "version": "2.1.0",
            "runs": [{
                "tool": {"driver": {
                    "name": "helios",
                    "version": env!("CARGO_PKG_VERSION"),
                    "rules": rules.iter().map(|id| json!({"id": id})).collect::<Vec<_>>(),
                }},
                "results": results,
                "properties": {
                    "allowed": d.allowed,
                    "image": self.input.image.reference,
                    "policy": d.policy,
                    "backend": d.backend,
                },
            }],
        })
    }
}

fn pretty(value: &Value) -> String {
    // Serialising a `Value` cannot fail.
    serde_json::to_string_pretty(value).unwrap_or_default() + "\n"
}

fn lines(findings: &[Finding]) -> String {
    findings
        .iter()
        .map(|f| f.msg.as_str())
        .collect::<Vec<_>>()
        .join("\n")
}

/// XML text/attribute escaping: five characters, not worth an XML writer dependency.
fn xml_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c if (c as u32) < 0x20 && !matches!(c, '\n' | '\t' | '\r') => {}
            c => out.push(c),
        }
    }
    out
}
