//! Rows of `POST /api/v2/Vulnerabilities/Containers/search` and their conversion to a
//! [`ScanReport`].
//!
//! The types are deliberately lenient where the live API is known to vary (see the fixtures'
//! README): `scan_created_time` is a string or an integer, `fix_available` an integer or a string,
//! `evalGuid`/`featureProps` may be absent, and fields may be added at any time (so no
//! `deny_unknown_fields`).

use std::collections::BTreeMap;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::Deserialize;

use crate::error::{Error, Result};
use crate::scan::{AffectedPackage, Fix, ScanReport, Severity, Vulnerability};

/// One row of a container vulnerability search: one vulnerability of one package of one image,
/// as seen by one evaluation (`evalGuid`).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContainerVulnRow {
    /// The evaluation this row belongs to; absent in some older rows.
    #[serde(default)]
    pub eval_guid: Option<String>,
    /// The evaluation context: image, scan request.
    #[serde(default)]
    pub eval_ctx: Option<EvalCtx>,
    /// The affected package.
    pub feature_key: FeatureKey,
    /// Fix availability.
    #[serde(default)]
    pub fix_info: Option<FixInfo>,
    /// The image id (config digest).
    #[serde(default)]
    pub image_id: Option<String>,
    /// `Critical`, `High`, `Medium`, `Low`, `Info`.
    pub severity: String,
    /// When the row's observation started.
    #[serde(default)]
    pub start_time: Option<String>,
    /// `VULNERABLE`, `EXCEPTION`, ...
    pub status: String,
    /// The CVE or advisory id.
    pub vuln_id: String,
}

/// `evalCtx` of a row.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct EvalCtx {
    /// The scanned image.
    #[serde(default)]
    pub image_info: Option<ImageInfo>,
    /// The scan request that produced the row.
    #[serde(default)]
    pub scan_request_props: Option<ScanRequestProps>,
    /// Whether the row comes from a re-evaluation of an older scan.
    #[serde(default)]
    pub is_reeval: Option<bool>,
}

/// `evalCtx.image_info`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct ImageInfo {
    /// The manifest digest, `sha256:…`.
    #[serde(default)]
    pub digest: Option<String>,
    /// The image id.
    #[serde(default)]
    pub id: Option<String>,
    /// The registry, e.g. `index.docker.io`.
    #[serde(default)]
    pub registry: Option<String>,
    /// The repository.
    #[serde(default)]
    pub repo: Option<String>,
    /// Tags the image had when scanned.
    #[serde(default)]
    pub tags: Vec<String>,
    /// When the scan was created: an RFC 3339 string or epoch seconds.
    #[serde(default)]
    pub scan_created_time: Option<TimeValue>,
}

/// `evalCtx.scan_request_props`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct ScanRequestProps {
    /// The scan request id.
    #[serde(default, rename = "reqId")]
    pub req_id: Option<String>,
}

/// `featureKey`: the package.
#[derive(Debug, Clone, Deserialize)]
pub struct FeatureKey {
    /// Package name.
    pub name: String,
    /// Package namespace, e.g. `debian:9`.
    #[serde(default)]
    pub namespace: Option<String>,
    /// Installed version.
    #[serde(default)]
    pub version: String,
}

/// `fixInfo`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct FixInfo {
    /// 1/0, `"1"`/`"0"` or a boolean, depending on the API's mood.
    #[serde(default)]
    pub fix_available: Option<FlexBool>,
    /// The fixed version, `""` when none.
    #[serde(default)]
    pub fixed_version: Option<String>,
}

/// A boolean the API sends as an integer, a string or a boolean.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(untagged)]
pub enum FlexBool {
    /// `true` / `false`.
    Bool(bool),
    /// `1` / `0`.
    Int(i64),
    /// `"1"`, `"0"`, `"true"`, `"false"`.
    Str(#[serde(deserialize_with = "flex_bool_str")] bool),
}

impl FlexBool {
    /// The boolean meant.
    pub fn get(self) -> bool {
        match self {
            FlexBool::Bool(b) | FlexBool::Str(b) => b,
            FlexBool::Int(i) => i != 0,
        }
    }
}

fn flex_bool_str<'de, D: serde::Deserializer<'de>>(d: D) -> std::result::Result<bool, D::Error> {
    let s = String::deserialize(d)?;
    match s.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" => Ok(true),
        "0" | "false" | "no" | "" => Ok(false),
        other => Err(serde::de::Error::custom(format!(
            "expected 0/1/true/false, found {other:?}"
        ))),
    }
}

/// A time the API sends as an RFC 3339 string or as epoch seconds.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum TimeValue {
    /// Epoch seconds (or milliseconds, told apart by magnitude).
    Epoch(i64),
    /// RFC 3339 text.
    Text(String),
}

impl TimeValue {
    /// The instant, when it can be read.
    pub fn to_utc(&self) -> Option<DateTime<Utc>> {
        match self {
            TimeValue::Epoch(n) if *n > 100_000_000_000 => DateTime::from_timestamp_millis(*n),
            TimeValue::Epoch(n) => DateTime::from_timestamp(*n, 0),
            TimeValue::Text(s) => DateTime::parse_from_rfc3339(s)
                .ok()
                .map(|t| t.with_timezone(&Utc)),
        }
    }
}

impl ContainerVulnRow {
    /// The manifest digest of the scanned image, when the row names it.
    pub fn digest(&self) -> Option<&str> {
        self.image_info().and_then(|i| i.digest.as_deref())
    }

    /// The image id (config digest), from the row or its `image_info`.
    pub fn image_id(&self) -> Option<&str> {
        self.image_id
            .as_deref()
            .or_else(|| self.image_info().and_then(|i| i.id.as_deref()))
    }

    fn image_info(&self) -> Option<&ImageInfo> {
        self.eval_ctx.as_ref().and_then(|c| c.image_info.as_ref())
    }

    /// The evaluation this row belongs to: `evalGuid`, else the scan request id.
    fn evaluation(&self) -> Option<&str> {
        self.eval_guid.as_deref().or_else(|| {
            self.eval_ctx
                .as_ref()
                .and_then(|c| c.scan_request_props.as_ref())
                .and_then(|p| p.req_id.as_deref())
        })
    }

    /// When the row's evaluation ran (`startTime`): a re-evaluation carries a later one than
    /// the scan it re-evaluates.
    fn evaluated_at(&self) -> Option<DateTime<Utc>> {
        let start = self.start_time.as_deref()?;
        DateTime::parse_from_rfc3339(start)
            .ok()
            .map(|t| t.with_timezone(&Utc))
    }

    /// When the image was scanned (`scan_created_time`, the same in every re-evaluation of one
    /// scan), else the evaluation time.
    fn scanned_at(&self) -> Option<DateTime<Utc>> {
        self.image_info()
            .and_then(|i| i.scan_created_time.as_ref())
            .and_then(TimeValue::to_utc)
            .or_else(|| self.evaluated_at())
    }

    fn to_vulnerability(&self) -> Result<Vulnerability> {
        let severity = Severity::parse_lenient(&self.severity).ok_or_else(|| {
            Error::invalid(
                "Lacework row",
                format!("{}: unknown severity {:?}", self.vuln_id, self.severity),
            )
        })?;
        let fix = self.fix_info.clone().unwrap_or_default();
        let fixed_version = fix.fixed_version.filter(|v| !v.trim().is_empty());
        Ok(Vulnerability {
            id: self.vuln_id.clone(),
            severity,
            status: self.status.to_ascii_lowercase(),
            package: AffectedPackage {
                name: self.feature_key.name.clone(),
                version: self.feature_key.version.clone(),
                namespace: self.feature_key.namespace.clone(),
            },
            fix: Fix {
                available: fix
                    .fix_available
                    .map_or(fixed_version.is_some(), FlexBool::get),
                version: fixed_version,
            },
        })
    }
}

/// Parses rows from JSON values, naming the row and field at fault on error.
pub fn parse_rows(values: Vec<serde_json::Value>) -> Result<Vec<ContainerVulnRow>> {
    values
        .into_iter()
        .enumerate()
        .map(|(i, value)| {
            // Rows are counted as people count them: the first is row 1.
            serde_path_to_error::deserialize(value).map_err(|e| {
                Error::invalid("Lacework row", format!("row {}: {e}", i.saturating_add(1)))
            })
        })
        .collect()
}

/// Builds the report of one image from search rows.
///
/// Only rows of `digest` are used (matched against `image_info.digest`, then the image id); with
/// no digest, the rows must all be of one image. Of the evaluations present (rows grouped by
/// `evalGuid`, else by scan request), the one evaluated last wins: the latest `startTime`, then
/// the latest `scan_created_time`, the GUID only breaking exact ties so the choice is stable.
/// Lacework re-evaluates scanned images when new vulnerability data arrives (new `evalGuid`,
/// later `startTime`, `is_reeval: true`, the same scan time), so the newest evaluation holds
/// today's findings. The report's `scanned_at` is the scan time, `evaluated_at` the evaluation
/// time, `digest` the rows' manifest digest. No matching rows gives a `not_found` report.
pub fn report_from_rows(rows: &[ContainerVulnRow], digest: Option<&str>) -> Result<ScanReport> {
    let of_image: Vec<&ContainerVulnRow> = match digest {
        Some(d) => rows
            .iter()
            .filter(|r| r.digest() == Some(d) || r.image_id() == Some(d))
            .collect(),
        None => {
            let digests: std::collections::BTreeSet<_> =
                rows.iter().map(|r| r.digest().or(r.image_id())).collect();
            if digests.len() > 1 {
                let names: Vec<_> = digests.iter().map(|d| d.unwrap_or("?")).collect();
                return Err(Error::invalid(
                    "Lacework rows",
                    format!(
                        "the rows cover {} images ({}); name the image by digest to pick one",
                        names.len(),
                        names.join(", ")
                    ),
                ));
            }
            rows.iter().collect()
        }
    };
    if of_image.is_empty() {
        return Ok(ScanReport::without_findings(
            crate::scan::ScanStatus::NotFound,
            super::SOURCE,
            None,
        ));
    }

    // Group by evaluation; keep the one evaluated last.
    let mut evaluations: BTreeMap<Option<&str>, Evaluation> = BTreeMap::new();
    for row in of_image {
        let entry = evaluations.entry(row.evaluation()).or_default();
        entry.evaluated_at = entry.evaluated_at.max(row.evaluated_at());
        entry.scanned_at = entry.scanned_at.max(row.scanned_at());
        entry.rows.push(row);
    }
    let (id, newest) = evaluations
        .into_iter()
        .max_by(|(a_id, a), (b_id, b)| {
            (a.evaluated_at, a.scanned_at, a_id).cmp(&(b.evaluated_at, b.scanned_at, b_id))
        })
        .ok_or_else(|| Error::invalid("Lacework rows", "no rows"))?;

    let vulnerabilities = newest
        .rows
        .iter()
        .map(|r| r.to_vulnerability())
        .collect::<Result<Vec<_>>>()?;
    let mut report = ScanReport::completed(
        super::SOURCE,
        id.map(str::to_string),
        newest.scanned_at.map(utc_text),
        vulnerabilities,
    );
    report.evaluated_at = newest.evaluated_at.map(utc_text);
    report.digest = newest
        .rows
        .iter()
        .find_map(|r| r.digest())
        .or(digest)
        .map(str::to_string);
    report.cap_fields();
    Ok(report)
}

/// One evaluation's rows with its times.
#[derive(Default)]
struct Evaluation<'a> {
    evaluated_at: Option<DateTime<Utc>>,
    scanned_at: Option<DateTime<Utc>>,
    rows: Vec<&'a ContainerVulnRow>,
}

/// RFC 3339 in UTC to the second, as the input contract writes times.
pub(crate) fn utc_text(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}
