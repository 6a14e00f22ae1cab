//! Scan files: what `helios gate --scan-file` and the file scan source read.
//!
//! Three shapes are accepted, told apart by their top level:
//! - a Lacework API v2 search response, `{"data": [rows…], "paging": …}`;
//! - a bare array of such rows (what `lacework vuln ctr show-assessment --json` prints);
//! - a Helios [`ScanReport`] (an object with `status`).

use std::path::Path;

use serde::Deserialize;
use serde::de::IgnoredAny;
use serde_json::Value;
use serde_json::value::RawValue;

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
        // Parsed once, narrowed per candidate.
        let contents = Contents::parse(&text).map_err(|e| with_what(e, &what))?;
        let mut last = None;
        for digest in candidates {
            let report = contents
                .report(Some(digest))
                .map_err(|e| with_what(e, &what))?;
            if report.status != crate::scan::ScanStatus::NotFound {
                return Ok(report);
            }
            last = Some(report);
        }
        match last {
            Some(report) => Ok(report),
            None => contents.report(None).map_err(|e| with_what(e, &what)),
        }
    }

    /// Parses scan JSON in any of the accepted shapes.
    pub fn from_scan_json(text: &str, digest: Option<&str>) -> Result<Self> {
        Contents::parse(text)?.report(digest)
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

/// What a scan file holds, parsed once: Lacework rows (narrowed to an image on demand) or a
/// Helios report.
enum Contents {
    Rows(Vec<lacework::ContainerVulnRow>),
    Report(Box<ScanReport>),
}

impl Contents {
    /// The text is deserialized straight into what it holds: the top level is told apart by its
    /// first character and, for an object, by reading it as a Helios report (one pass, no
    /// intermediate `serde_json::Value` of every finding) or, when that fails, by which of
    /// `data` and `status` it has, read as borrowed [`RawValue`]s (no tree is built).
    fn parse(text: &str) -> Result<Self> {
        let not_json = |e: serde_json::Error| match e.classify() {
            serde_json::error::Category::Data => Error::invalid("scan", e),
            _ => Error::invalid("scan", format!("not JSON: {e}")),
        };
        match text.trim_start().as_bytes().first() {
            Some(b'[') => {
                let rows: Vec<Value> = serde_json::from_str(text).map_err(not_json)?;
                Ok(Contents::Rows(lacework::parse_rows(rows)?))
            }
            Some(b'{') => {
                // A Helios report, the common case, is read in one pass: its fields are all
                // known (`deny_unknown_fields`), so any other shape fails at its first foreign
                // key and is told apart below.
                if let Ok(report) = serde_json::from_str::<ScanReport>(text) {
                    return Contents::checked(report);
                }
                /// The two keys that tell an object's shape (present even when `null`);
                /// everything else is skipped.
                #[derive(Deserialize)]
                struct Shape<'a> {
                    #[serde(borrow, default, deserialize_with = "present")]
                    data: Option<&'a RawValue>,
                    #[serde(borrow, default, deserialize_with = "present")]
                    status: Option<&'a RawValue>,
                }
                fn present<'de, D: serde::Deserializer<'de>>(
                    d: D,
                ) -> std::result::Result<Option<&'de RawValue>, D::Error> {
                    <&RawValue>::deserialize(d).map(Some)
                }
                let shape: Shape = serde_json::from_str(text).map_err(not_json)?;
                match (shape.data, shape.status) {
                    (Some(data), _) => match serde_json::from_str::<Value>(data.get()) {
                        Ok(Value::Array(rows)) => Ok(Contents::Rows(lacework::parse_rows(rows)?)),
                        Ok(Value::Null) => Ok(Contents::Rows(Vec::new())),
                        _ => Err(Error::invalid(
                            "scan",
                            "`data` must be an array of Lacework rows",
                        )),
                    },
                    // A report that failed the read above: its error, naming the field.
                    (None, Some(_)) => Contents::checked(crate::json::from_str(text, "scan")?),
                    (None, None) => Err(expected_shape()),
                }
            }
            _ => {
                serde_json::from_str::<IgnoredAny>(text).map_err(not_json)?;
                Err(expected_shape())
            }
        }
    }

    /// A Helios report, once its summary agrees with its findings.
    fn checked(mut report: ScanReport) -> Result<Self> {
        report.check_summary()?;
        report.cap_fields();
        Ok(Contents::Report(Box::new(report)))
    }

    /// The report of the image `digest` names (rows narrowed to it); a Helios report as it is.
    fn report(&self, digest: Option<&str>) -> Result<ScanReport> {
        match self {
            Contents::Rows(rows) => lacework::report_from_rows(rows, digest),
            Contents::Report(report) => Ok((**report).clone()),
        }
    }
}

/// The error for JSON that is none of the accepted shapes.
fn expected_shape() -> Error {
    Error::invalid(
        "scan",
        "expected a Lacework search response ({\"data\": [...]}), an array of Lacework rows, \
         or a Helios scan report (an object with \"status\")",
    )
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scan::ScanStatus;

    fn reason(text: &str) -> String {
        match ScanReport::from_scan_json(text, None) {
            Err(Error::InvalidInput { reason, .. }) => reason,
            other => panic!("{text}: expected an input error, got {other:?}"),
        }
    }

    #[test]
    fn every_shape_is_told_apart_without_a_tree() -> Result<()> {
        // Key order does not matter: `status` after the findings, `data` after `paging`.
        let report = r#"{"vulnerabilities": [], "summary": {"critical": 0, "high": 0, "medium": 0,
            "low": 0, "info": 0, "unknown": 0, "total": 0, "fixable": 0}, "source": "file",
            "id": null, "scanned_at": null, "error": null, "status": "completed"}"#;
        assert_eq!(
            ScanReport::from_scan_json(report, None)?.status,
            ScanStatus::Completed
        );
        let page = r#" {"paging": {"rows": 0}, "data": []}"#;
        assert_eq!(
            ScanReport::from_scan_json(page, Some("sha256:1"))?.status,
            ScanStatus::NotFound
        );
        // `data` tells a Lacework response even next to a `status`.
        assert_eq!(
            ScanReport::from_scan_json(r#"{"status": "completed", "data": []}"#, None)?.status,
            ScanStatus::NotFound
        );
        assert_eq!(
            ScanReport::from_scan_json(r#"{"data": null}"#, None)?.status,
            ScanStatus::NotFound
        );
        assert_eq!(
            ScanReport::from_scan_json("\n[]", None)?.status,
            ScanStatus::NotFound
        );
        Ok(())
    }

    #[test]
    fn what_is_not_a_scan_says_why() {
        assert!(reason("{").starts_with("not JSON"));
        assert!(reason("[1,").starts_with("not JSON"));
        assert!(reason("").starts_with("not JSON"));
        assert!(reason("42").starts_with("expected a Lacework search response"));
        assert!(reason(r#"{"rows": []}"#).starts_with("expected a Lacework search response"));
        assert!(reason(r#"{"data": 5}"#).contains("`data` must be an array"));
        assert!(reason(r#"{"status": null}"#).contains("status"));
        // A report with a wrong field names the field, not "not JSON".
        let wrong = reason(r#"{"status": "completed", "source": 7}"#);
        assert!(wrong.contains("source"), "{wrong}");
        assert!(!wrong.starts_with("not JSON"), "{wrong}");
        // A well-formed report is still checked: its summary must match its findings.
        let miscounted = reason(
            r#"{"status": "completed", "source": "file", "id": null, "scanned_at": null,
            "error": null, "vulnerabilities": [], "summary": {"critical": 1, "high": 0,
            "medium": 0, "low": 0, "info": 0, "unknown": 0, "total": 1, "fixable": 0}}"#,
        );
        assert!(miscounted.contains("does not match"), "{miscounted}");
    }
}
