//! Image summaries: `POST /api/v2/VulnerabilityObservations/ImageSummary/search`, one entry per
//! scanned image with its scan status and finding counts.
//!
//! The endpoint, its fields and its filters are taken from Lacework's Go SDK
//! (lacework/go-sdk `api/v2_vulnerability_observations.go`, its test fixture
//! `api/v2_vulnerability_observations_test.go`, and the CLI's use of it in
//! `cli/cmd/vuln_container_list_assessments.go`: `in` filters on `registry` / `repository`,
//! `gt`/`lt` on `lastScanTime`, no `timeFilter`). It is what tells an image Lacework scanned and
//! found clean — which has no rows in the container vulnerability search — from one it never
//! scanned.

use chrono::{DateTime, NaiveDateTime, Utc};
use serde::Deserialize;

/// The image summary search endpoint.
pub const IMAGE_SUMMARY_PATH: &str = "/api/v2/VulnerabilityObservations/ImageSummary/search";

/// One image summary, as the Go SDK's `VulnerabilityObservationsImageSummary` names its fields.
/// Every field is optional here: the live API adds and omits fields over time.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageSummary {
    /// The manifest digest, `sha256:…`.
    #[serde(default)]
    pub digest: Option<String>,
    /// The image id (config digest).
    #[serde(default)]
    pub image_id: Option<String>,
    /// When the image was last scanned: RFC 3339 (`2025-08-06T13:05:05Z`) or, in newer
    /// fixtures of the SDK, `2025-08-06 13:05:05.000 Z`.
    #[serde(default)]
    pub last_scan_time: Option<String>,
    /// The registry, e.g. `docker.io`.
    #[serde(default)]
    pub registry: Option<String>,
    /// The repository.
    #[serde(default)]
    pub repository: Option<String>,
    /// The tag.
    #[serde(default)]
    pub tag: Option<String>,
    /// The scan status: `Success` in the SDK's fixture; anything else is a scan that did not
    /// produce findings (see [`ImageSummary::state`]).
    #[serde(default)]
    pub scan_status: Option<String>,
    /// Running containers of the image.
    #[serde(default)]
    pub container_count: Option<u64>,
    /// Critical findings.
    #[serde(default)]
    pub vuln_count_critical: Option<u64>,
    /// Critical findings with a fix.
    #[serde(default)]
    pub vuln_count_critical_fixable: Option<u64>,
    /// High findings.
    #[serde(default)]
    pub vuln_count_high: Option<u64>,
    /// High findings with a fix.
    #[serde(default)]
    pub vuln_count_high_fixable: Option<u64>,
    /// Medium findings.
    #[serde(default)]
    pub vuln_count_medium: Option<u64>,
    /// Medium findings with a fix.
    #[serde(default)]
    pub vuln_count_medium_fixable: Option<u64>,
    /// Low findings.
    #[serde(default)]
    pub vuln_count_low: Option<u64>,
    /// Low findings with a fix.
    #[serde(default)]
    pub vuln_count_low_fixable: Option<u64>,
    /// Informational findings.
    #[serde(default)]
    pub vuln_count_info: Option<u64>,
    /// Informational findings with a fix.
    #[serde(default)]
    pub vuln_count_info_fixable: Option<u64>,
}

/// What a summary's `scanStatus` means for the report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SummaryState {
    /// A finished scan: its findings are in the container vulnerability search.
    Completed,
    /// Lacework could not scan the image (failed, or an unsupported image).
    Failed {
        /// Why, naming Lacework's status.
        message: String,
    },
}

impl ImageSummary {
    /// All findings, by the summary's counts.
    pub fn findings(&self) -> u64 {
        [
            self.vuln_count_critical,
            self.vuln_count_high,
            self.vuln_count_medium,
            self.vuln_count_low,
            self.vuln_count_info,
        ]
        .into_iter()
        .flatten()
        .sum()
    }

    /// The last scan time, when readable.
    pub fn last_scanned(&self) -> Option<DateTime<Utc>> {
        parse_scan_time(self.last_scan_time.as_deref()?)
    }

    /// `Success` (any case; also an absent status, as older answers had none) is a finished
    /// scan. A status naming `unsupported` is an image Lacework cannot scan; any other status
    /// is a failed scan. Lacework does not document the full list of `scanStatus` values (the
    /// SDK's fixture shows only `Success`), so unknown ones are treated as failures — the policy
    /// sees `failed` with the status named, never a clean `completed`.
    pub fn state(&self) -> SummaryState {
        let status = self.scan_status.as_deref().map(str::trim).unwrap_or("");
        let lower = status.to_ascii_lowercase();
        match lower.as_str() {
            "" | "success" | "succeeded" | "completed" => SummaryState::Completed,
            s if s.contains("unsupported") => SummaryState::Failed {
                message: format!(
                    "Lacework cannot scan this image: it is not supported (scanStatus {status:?})"
                ),
            },
            _ => SummaryState::Failed {
                message: format!("Lacework's scan of this image failed (scanStatus {status:?})"),
            },
        }
    }
}

/// Reads `lastScanTime` in either form the SDK's fixtures show.
fn parse_scan_time(text: &str) -> Option<DateTime<Utc>> {
    let text = text.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Some(t.with_timezone(&Utc));
    }
    let naive = text.strip_suffix('Z').unwrap_or(text).trim();
    NaiveDateTime::parse_from_str(naive, "%Y-%m-%d %H:%M:%S%.f")
        .ok()
        .map(|t| t.and_utc())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn summary(status: Option<&str>) -> ImageSummary {
        ImageSummary {
            scan_status: status.map(str::to_string),
            ..Default::default()
        }
    }

    #[test]
    fn both_time_formats_of_the_sdk_fixtures_are_read() {
        let rfc = parse_scan_time("2025-08-06T13:05:05Z");
        let spaced = parse_scan_time("2025-08-06 13:05:05.000 Z");
        assert!(rfc.is_some());
        assert_eq!(rfc, spaced);
        assert_eq!(parse_scan_time("yesterday"), None);
    }

    #[test]
    fn statuses_are_completed_unsupported_or_failed() {
        assert_eq!(summary(Some("Success")).state(), SummaryState::Completed);
        assert_eq!(summary(None).state(), SummaryState::Completed);
        let SummaryState::Failed { message } = summary(Some("Unsupported")).state() else {
            panic!("unsupported is not completed");
        };
        assert!(message.contains("not supported"), "{message}");
        let SummaryState::Failed { message } = summary(Some("Failed")).state() else {
            panic!("failed is not completed");
        };
        assert!(
            message.contains("failed") && message.contains("Failed"),
            "{message}"
        );
        assert!(matches!(
            summary(Some("Partial")).state(),
            SummaryState::Failed { .. }
        ));
    }

    #[test]
    fn findings_add_up_the_severity_counts() {
        let s = ImageSummary {
            vuln_count_high: Some(8),
            vuln_count_low: Some(1),
            vuln_count_high_fixable: Some(8),
            ..Default::default()
        };
        assert_eq!(s.findings(), 9);
        assert_eq!(ImageSummary::default().findings(), 0);
    }
}
