//! Scan files: what `helios gate --scan-file` and the file scan source read.
//!
//! Three shapes are accepted, told apart by their top level:
//! - a Lacework API v2 search response, `{"data": [rows…], "paging": …}`;
//! - a bare array of such rows (what `lacework vuln ctr show-assessment --json` prints);
//! - a Helios [`ScanReport`] (an object with `status`).

use std::path::Path;

use serde_json::Value;

use crate::error::{Error, Result};
use crate::scan::{ScanReport, Summary, lacework};

impl ScanReport {
    /// Reads a scan file. With `digest`, Lacework rows are narrowed to that image.
    pub fn from_scan_file(path: &Path, digest: Option<&str>) -> Result<Self> {
        Self::from_scan_file_for(path, digest.as_slice())
    }

    /// Reads a scan file for an image known by several digests (see
    /// [`ImageRef::candidate_digests`](crate::image::ImageRef::candidate_digests)): Lacework
    /// rows are narrowed to the first candidate they cover, most specific first, so the scan of
    /// a multi-arch image's platform manifest is found when only that one was scanned. No
    /// candidates: no narrowing.
    pub fn from_scan_file_for(path: &Path, candidates: &[&str]) -> Result<Self> {
        let text = crate::bounded::read_file(path, crate::bounded::MAX_SCAN_FILE, "scan file")?;
        let what = format!("scan file {}", path.display());
        let mut last = None;
        for digest in candidates {
            let report =
                Self::from_scan_json(&text, Some(digest)).map_err(|e| with_what(e, &what))?;
            if report.status != crate::scan::ScanStatus::NotFound {
                return Ok(report);
            }
            last = Some(report);
        }
        match last {
            Some(report) => Ok(report),
            None => Self::from_scan_json(&text, None).map_err(|e| with_what(e, &what)),
        }
    }

    /// Parses scan JSON in any of the accepted shapes.
    pub fn from_scan_json(text: &str, digest: Option<&str>) -> Result<Self> {
        let value: Value = serde_json::from_str(text)
            .map_err(|e| Error::invalid("scan", format!("not JSON: {e}")))?;
        match value {
            Value::Array(rows) => lacework::report_from_rows(&lacework::parse_rows(rows)?, digest),
            Value::Object(mut map) if map.contains_key("data") => match map.remove("data") {
                Some(Value::Array(rows)) => {
                    lacework::report_from_rows(&lacework::parse_rows(rows)?, digest)
                }
                Some(Value::Null) => lacework::report_from_rows(&[], digest),
                _ => Err(Error::invalid(
                    "scan",
                    "`data` must be an array of Lacework rows",
                )),
            },
            Value::Object(map) if map.contains_key("status") => {
                let mut report: ScanReport = serde_path_to_error::deserialize(Value::Object(map))
                    .map_err(|e| Error::invalid("scan", e))?;
                report.check_summary()?;
                report.cap_fields();
                Ok(report)
            }
            _ => Err(Error::invalid(
                "scan",
                "expected a Lacework search response ({\"data\": [...]}), an array of Lacework rows, \
                 or a Helios scan report (an object with \"status\")",
            )),
        }
    }

    /// Rejects a report whose summary disagrees with its findings.
    pub fn check_summary(&self) -> Result<()> {
        let counted = Summary::count(&self.vulnerabilities);
        if counted != self.summary {
            return Err(Error::invalid(
                "scan",
                format!(
                    "summary {:?} does not match the {} listed vulnerabilities (counted {:?})",
                    self.summary,
                    self.vulnerabilities.len(),
                    counted
                ),
            ));
        }
        Ok(())
    }
}

/// Names the file in an input error that was raised without knowing it.
fn with_what(err: Error, what: &str) -> Error {
    match err {
        Error::InvalidInput { reason, .. } => Error::InvalidInput {
            what: what.to_string(),
            reason,
        },
        other => other,
    }
}

/// One scan file as a [`ScanSource`](crate::scan::ScanSource) (`helios gate --scan-file`): each
/// image's report is read from it with [`ScanReport::from_scan_file_for`], narrowed to the
/// image's candidate digests (pinned, resolved, platform) when it has any.
#[derive(Debug, Clone)]
pub struct FileSource {
    path: std::path::PathBuf,
}

impl FileSource {
    /// A source reading `path` on every lookup.
    pub fn new(path: impl Into<std::path::PathBuf>) -> Self {
        FileSource { path: path.into() }
    }
}

#[async_trait::async_trait]
impl crate::scan::ScanSource for FileSource {
    async fn scan(
        &self,
        image: &crate::image::ImageRef,
        _lookup: crate::scan::Lookup,
    ) -> Result<ScanReport> {
        ScanReport::from_scan_file_for(&self.path, &image.candidate_digests())
    }
}
