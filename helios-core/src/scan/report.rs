//! The normalised scan report: what the policy sees under `input.scan`.

use std::fmt;
use std::sync::{Arc, OnceLock};

use serde::{Deserialize, Serialize};

use crate::policy::rego_value::{ToRegoError, to_rego_value};

/// Where a scan stands, as the policy input contract names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ScanStatus {
    /// A finished scan with its findings.
    Completed,
    /// A scan is running; findings are not known yet.
    Pending,
    /// No scan exists and none was requested.
    NotFound,
    /// The scanner reported a failure (e.g. an unsupported image).
    Failed,
    /// The scan service could not be asked (network, auth, rate limit).
    Unavailable,
}

impl fmt::Display for ScanStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ScanStatus::Completed => "completed",
            ScanStatus::Pending => "pending",
            ScanStatus::NotFound => "not_found",
            ScanStatus::Failed => "failed",
            ScanStatus::Unavailable => "unavailable",
        })
    }
}

/// Vulnerability severity, lower-case on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Severity {
    /// Critical.
    Critical,
    /// High.
    High,
    /// Medium.
    Medium,
    /// Low.
    Low,
    /// Informational.
    Info,
    /// The scanner did not rate it.
    Unknown,
}

impl Severity {
    /// Parses a severity case-insensitively (`Critical`, `HIGH`, `info`, ...). Lacework's
    /// `Negligible` counts as `info`.
    pub fn parse_lenient(s: &str) -> Option<Self> {
        Some(match s.to_ascii_lowercase().as_str() {
            "critical" => Severity::Critical,
            "high" => Severity::High,
            "medium" => Severity::Medium,
            "low" => Severity::Low,
            "info" | "informational" | "negligible" => Severity::Info,
            "unknown" => Severity::Unknown,
            _ => return None,
        })
    }
}

/// One normalised scan of one image.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct ScanReport {
    /// Where the scan stands.
    pub status: ScanStatus,
    /// Which scanner or source produced it: `lacework`, `file`, ...
    pub source: String,
    /// The scanner's id for this scan (Lacework's `evalGuid`).
    pub id: Option<String>,
    /// When the image was scanned, RFC 3339 in UTC.
    pub scanned_at: Option<String>,
    /// When the scanner last evaluated that scan against its vulnerability data, RFC 3339 in
    /// UTC: later than `scanned_at` when Lacework re-evaluated an image it had scanned before
    /// (a re-evaluation can add CVEs published since the scan); `null` when unknown. Added to
    /// input contract v1 (absent in older documents reads as `null`).
    #[serde(default)]
    pub evaluated_at: Option<String>,
    /// The manifest digest the scan belongs to: of an image's candidate digests (platform
    /// manifest, its own, the resolved index), the one the scanner knows; `null` when unknown.
    /// Added to input contract v1.
    #[serde(default)]
    pub digest: Option<String>,
    /// The scanner's or the source's explanation when `status` is `failed` or `unavailable`.
    pub error: Option<String>,
    /// Counts over `vulnerabilities`.
    pub summary: Summary,
    /// The findings, shared by the report's clones: the scan cache hands every review a clone,
    /// which costs a reference count, not a copy of every finding (`Arc::make_mut` to edit).
    pub vulnerabilities: Arc<Vec<Vulnerability>>,
    /// The report as the embedded engine's value, built on first evaluation and shared by every
    /// clone (the scan cache hands out clones), so findings are converted once per scan.
    #[serde(skip)]
    engine_value: SharedValue,
}

/// A report's engine value, shared by its clones; not part of the report's content (it
/// compares equal always and is never serialised).
#[derive(Clone, Default)]
struct SharedValue(Arc<OnceLock<(Stamp, regorus::Value)>>);

/// What the shared value was built from, cheaply checked on every use: a clone edited since
/// (another status, other counts or findings) converts afresh instead of using a stale value.
type Stamp = (ScanStatus, Summary, usize);

impl PartialEq for SharedValue {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl fmt::Debug for SharedValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.get().is_some() {
            "built"
        } else {
            "unbuilt"
        })
    }
}

impl ScanReport {
    /// A report without findings in the given state, e.g. `not_found` or `unavailable`.
    pub fn without_findings(
        status: ScanStatus,
        source: impl Into<String>,
        error: Option<String>,
    ) -> Self {
        ScanReport {
            status,
            source: source.into(),
            id: None,
            scanned_at: None,
            evaluated_at: None,
            digest: None,
            error,
            summary: Summary::default(),
            vulnerabilities: Arc::default(),
            engine_value: SharedValue::default(),
        }
    }

    /// A `completed` report of these findings, with the summary counted from them.
    pub fn completed(
        source: impl Into<String>,
        id: Option<String>,
        scanned_at: Option<String>,
        vulnerabilities: Vec<Vulnerability>,
    ) -> Self {
        ScanReport {
            status: ScanStatus::Completed,
            source: source.into(),
            id,
            scanned_at,
            evaluated_at: None,
            digest: None,
            error: None,
            summary: Summary::count(&vulnerabilities),
            vulnerabilities: Arc::new(vulnerabilities),
            engine_value: SharedValue::default(),
        }
    }

    /// The report as the embedded engine's value: built on first use, then shared by this
    /// report and its clones (a reference count, no copy).
    pub(crate) fn engine_value(&self) -> Result<regorus::Value, ToRegoError> {
        let stamp = (self.status, self.summary, self.vulnerabilities.len());
        match self.engine_value.0.get() {
            Some((built, value)) if *built == stamp => Ok(value.clone()),
            Some(_) => to_rego_value(self),
            None => {
                let value = to_rego_value(self)?;
                // Two first evaluations may race: both values are equal, the first is kept.
                let _ = self.engine_value.0.set((stamp, value.clone()));
                Ok(value)
            }
        }
    }
}

/// Counts of findings by severity; every listed vulnerability counts, whatever its status.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct Summary {
    /// Critical findings.
    pub critical: u64,
    /// High findings.
    pub high: u64,
    /// Medium findings.
    pub medium: u64,
    /// Low findings.
    pub low: u64,
    /// Informational findings.
    pub info: u64,
    /// Unrated findings.
    pub unknown: u64,
    /// All findings.
    pub total: u64,
    /// Findings with a fix available.
    pub fixable: u64,
}

impl Summary {
    /// Counts `vulnerabilities`.
    pub fn count(vulnerabilities: &[Vulnerability]) -> Self {
        let mut s = Summary::default();
        for v in vulnerabilities {
            *match v.severity {
                Severity::Critical => &mut s.critical,
                Severity::High => &mut s.high,
                Severity::Medium => &mut s.medium,
                Severity::Low => &mut s.low,
                Severity::Info => &mut s.info,
                Severity::Unknown => &mut s.unknown,
            } += 1;
            s.total += 1;
            s.fixable += u64::from(v.fix.available);
        }
        s
    }
}

/// One finding: a vulnerability in a package of the image.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct Vulnerability {
    /// The vulnerability id, e.g. `CVE-2023-1234`.
    pub id: String,
    /// Its severity.
    pub severity: Severity,
    /// The scanner's status, lower-case: `vulnerable`, `exception`, `fixed`, ...
    pub status: String,
    /// The affected package.
    pub package: AffectedPackage,
    /// Whether and where it is fixed.
    pub fix: Fix,
}

/// The installed package a finding is in (named apart from the policy's decision
/// [`Package`](crate::policy::Package); serialised as the finding's `package` object).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct AffectedPackage {
    /// Package name, e.g. `openssl`.
    pub name: String,
    /// Installed version.
    pub version: String,
    /// Package namespace (distribution or ecosystem), e.g. `debian:11`.
    pub namespace: Option<String>,
}

/// Fix availability of a finding.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct Fix {
    /// Whether a fixed version exists.
    pub available: bool,
    /// The first fixed version, when known.
    pub version: Option<String>,
}
