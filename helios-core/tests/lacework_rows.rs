//! Lacework API v2 `Vulnerabilities/Containers/search` rows → `ScanReport`.
//!
//! Every file of rows, project-owned (`tests/fixtures/lacework/`) and reference
//! (`../shared/fixtures/lacework/`, when present), converts per image to a report whose summary
//! matches the rows of the newest evaluation, counted here independently of the library.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use chrono::{DateTime, SecondsFormat, Utc};
use helios_core::Error;
use helios_core::scan::{ScanReport, ScanStatus, Severity, Summary};
use serde_json::Value;

#[path = "support/shared.rs"]
mod shared;

type TestResult = Result<(), String>;

fn project_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/lacework")
}

fn shared_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/fixtures/lacework")
}

fn json_files(dir: &Path) -> Result<Vec<PathBuf>, String> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| format!("cannot list {}: {e}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    Ok(files)
}

fn read(path: &Path) -> Result<String, String> {
    std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))
}

/// The rows of a search response or of a bare array; `None` when the file holds something else
/// (e.g. an ImageSummary response).
fn rows_of(value: &Value) -> Option<Vec<Value>> {
    let rows = match value {
        Value::Array(rows) => rows,
        Value::Object(obj) => obj.get("data")?.as_array()?,
        _ => return None,
    };
    let all_rows = rows.iter().all(|r| r.get("vulnId").is_some());
    all_rows.then(|| rows.clone())
}

// ---- an independent reading of the rows, to check the library against ----

fn str_at<'a>(v: &'a Value, path: &[&str]) -> Option<&'a str> {
    path.iter().try_fold(v, |v, k| v.get(k))?.as_str()
}

fn digest_of(row: &Value) -> Option<&str> {
    str_at(row, &["evalCtx", "image_info", "digest"]).or_else(|| str_at(row, &["imageId"]))
}

fn evaluation_of(row: &Value) -> Option<&str> {
    str_at(row, &["evalGuid"]).or_else(|| str_at(row, &["evalCtx", "scan_request_props", "reqId"]))
}

fn scan_time_of(row: &Value) -> Option<DateTime<Utc>> {
    match row.pointer("/evalCtx/image_info/scan_created_time")? {
        Value::Number(n) => DateTime::from_timestamp(n.as_i64()?, 0),
        Value::String(s) => DateTime::parse_from_rfc3339(s).ok().map(|t| t.to_utc()),
        _ => None,
    }
}

fn start_time_of(row: &Value) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(str_at(row, &["startTime"])?)
        .ok()
        .map(|t| t.to_utc())
}

fn fixable(row: &Value) -> bool {
    match row.pointer("/fixInfo/fix_available") {
        Some(Value::Number(n)) => n.as_i64() != Some(0),
        Some(Value::String(s)) => s == "1" || s.eq_ignore_ascii_case("true"),
        Some(Value::Bool(b)) => *b,
        _ => false,
    }
}

/// What a report of `digest` must say, read straight from the rows.
struct Expected<'a> {
    rows: Vec<&'a Value>,
    counts: BTreeMap<String, u64>,
    fixable: u64,
    id: Option<&'a str>,
    scanned_at: Option<String>,
}

/// One evaluation's latest `startTime` (when it ran), latest scan time and rows.
type Evaluation<'a> = (Option<DateTime<Utc>>, Option<DateTime<Utc>>, Vec<&'a Value>);

fn expected<'a>(rows: &'a [Value], digest: Option<&str>) -> Expected<'a> {
    let of_image: Vec<&Value> = rows
        .iter()
        .filter(|r| digest.is_none() || digest_of(r) == digest || str_at(r, &["imageId"]) == digest)
        .collect();
    let mut evaluations: BTreeMap<Option<&str>, Evaluation<'_>> = BTreeMap::new();
    for row in of_image {
        let e = evaluations.entry(evaluation_of(row)).or_default();
        e.0 = e.0.max(start_time_of(row));
        e.1 = e.1.max(scan_time_of(row).or_else(|| start_time_of(row)));
        e.2.push(row);
    }
    // The evaluation that ran last wins; the scan time, then the GUID, only break ties.
    let newest = evaluations
        .into_iter()
        .max_by_key(|(id, (ran, scanned, _))| (*ran, *scanned, *id));
    let (id, (_, time, rows)) = newest.unwrap_or_default();
    let mut counts = BTreeMap::new();
    for row in &rows {
        let sev = str_at(row, &["severity"]).unwrap_or("?").to_lowercase();
        let sev = if sev == "negligible" {
            "info".to_string()
        } else {
            sev
        };
        *counts.entry(sev).or_insert(0) += 1;
    }
    Expected {
        fixable: rows.iter().filter(|r| fixable(r)).count() as u64,
        rows,
        counts,
        id,
        scanned_at: time.map(|t| t.to_rfc3339_opts(SecondsFormat::Secs, true)),
    }
}

fn count(counts: &BTreeMap<String, u64>, severity: &str) -> u64 {
    counts.get(severity).copied().unwrap_or(0)
}

/// Checks one report against the rows; returns the problems found.
fn check_report(report: &ScanReport, exp: &Expected<'_>) -> Vec<String> {
    let mut problems = Vec::new();
    let mut want = Summary::default();
    want.critical = count(&exp.counts, "critical");
    want.high = count(&exp.counts, "high");
    want.medium = count(&exp.counts, "medium");
    want.low = count(&exp.counts, "low");
    want.info = count(&exp.counts, "info");
    want.unknown = count(&exp.counts, "unknown");
    want.total = exp.rows.len() as u64;
    want.fixable = exp.fixable;
    if report.summary != want {
        problems.push(format!("summary {:?}, rows say {want:?}", report.summary));
    }
    let want_status = if exp.rows.is_empty() {
        ScanStatus::NotFound
    } else {
        ScanStatus::Completed
    };
    if report.status != want_status {
        problems.push(format!("status {}, expected {want_status}", report.status));
    }
    if report.source != "lacework" {
        problems.push(format!("source {:?}", report.source));
    }
    if report.id.as_deref() != exp.id {
        problems.push(format!(
            "id {:?}, newest evaluation is {:?}",
            report.id, exp.id
        ));
    }
    if report.scanned_at != exp.scanned_at {
        problems.push(format!(
            "scanned_at {:?}, expected {:?}",
            report.scanned_at, exp.scanned_at
        ));
    }
    // Row by row: the newest evaluation's rows, in order, normalised.
    let got: Vec<_> = report.vulnerabilities.iter().collect();
    if got.len() != exp.rows.len() {
        problems.push(format!(
            "{} findings for {} rows",
            got.len(),
            exp.rows.len()
        ));
    }
    for (v, row) in got.iter().zip(&exp.rows) {
        let row_status = str_at(row, &["status"]).unwrap_or_default();
        let fixed = str_at(row, &["fixInfo", "fixed_version"]).filter(|s| !s.is_empty());
        if Some(v.id.as_str()) != str_at(row, &["vulnId"])
            || v.status != row_status.to_lowercase()
            || Some(v.package.name.as_str()) != str_at(row, &["featureKey", "name"])
            || Some(v.package.version.as_str()) != str_at(row, &["featureKey", "version"])
            || v.package.namespace.as_deref() != str_at(row, &["featureKey", "namespace"])
            || v.fix.available != fixable(row)
            || v.fix.version.as_deref() != fixed
        {
            problems.push(format!(
                "finding {v:?} does not match its row {}",
                row["vulnId"]
            ));
        }
        if v.status.chars().any(|c| c.is_ascii_uppercase()) {
            problems.push(format!("{}: status {:?} is not lower-case", v.id, v.status));
        }
    }
    problems
}

/// Converts every image of every row file in `dir` and checks it; returns how many reports
/// were checked.
fn check_dir(dir: &Path) -> Result<usize, String> {
    let mut problems = Vec::new();
    let mut checked = 0;
    for file in json_files(dir)? {
        let text = read(&file)?;
        let value: Value =
            serde_json::from_str(&text).map_err(|e| format!("{}: {e}", file.display()))?;
        let Some(rows) = rows_of(&value) else {
            // Not container search rows (e.g. ImageSummary): must be refused, never misread.
            match ScanReport::from_scan_json(&text, None) {
                Err(Error::InvalidInput { .. }) => {}
                other => problems.push(format!("{}: not rows, yet {other:?}", file.display())),
            }
            continue;
        };
        let mut digests: BTreeSet<Option<&str>> = rows.iter().map(digest_of).collect();
        if digests.is_empty() {
            digests.insert(None); // an empty search still converts (to `not_found`)
        }
        let several = digests.len() > 1;
        for digest in &digests {
            let pick = if several { *digest } else { None };
            let report = ScanReport::from_scan_json(&text, pick)
                .map_err(|e| format!("{} ({pick:?}): {e}", file.display()))?;
            let exp = expected(&rows, pick);
            for p in check_report(&report, &exp) {
                problems.push(format!("{} ({pick:?}): {p}", file.display()));
            }
            checked += 1;
        }
        if several {
            // Without a digest, several images are ambiguous: an error, not a merged report.
            match ScanReport::from_scan_json(&text, None) {
                Err(Error::InvalidInput { reason, .. }) if reason.contains("digest") => {}
                other => problems.push(format!(
                    "{}: several images without a digest gave {other:?}",
                    file.display()
                )),
            }
        }
    }
    if problems.is_empty() {
        Ok(checked)
    } else {
        Err(problems.join("\n"))
    }
}

#[test]
fn project_fixtures_convert_with_matching_counts() -> TestResult {
    let checked = check_dir(&project_dir())?;
    // multi-evalguid, string-fix-integer-time, bare-array, empty, and two-images (two reports).
    assert!(checked >= 6, "only {checked} reports checked");
    Ok(())
}

#[test]
fn shared_fixtures_convert_with_matching_counts() -> TestResult {
    let dir = shared_dir();
    if !shared::present("shared_fixtures_convert_with_matching_counts", &dir) {
        return Ok(());
    }
    let checked = check_dir(&dir)?;
    // v2-containers-search-response (1 image) + the paged file (3 images).
    assert!(
        checked >= 4,
        "only {checked} reports checked in {}",
        dir.display()
    );
    Ok(())
}

// ---- the quirks, with values written down by hand ----

fn project_report(name: &str, digest: Option<&str>) -> Result<ScanReport, String> {
    let text = read(&project_dir().join(name))?;
    ScanReport::from_scan_json(&text, digest).map_err(|e| format!("{name}: {e}"))
}

#[test]
fn newest_evaluation_wins() -> TestResult {
    let report = project_report("multi-evalguid.json", None)?;
    assert_eq!(
        report.id.as_deref(),
        Some("a1b2c3d4e5f60718293a4b5c6d7e8f90")
    );
    assert_eq!(report.scanned_at.as_deref(), Some("2024-05-02T09:15:00Z"));
    let ids: Vec<&str> = report
        .vulnerabilities
        .iter()
        .map(|v| v.id.as_str())
        .collect();
    // The older scan's critical and high are gone; its copy of CVE-2011-3374 is not counted twice.
    assert_eq!(ids, ["CVE-2024-2961", "CVE-2011-3374"]);
    assert_eq!((report.summary.critical, report.summary.high), (0, 0));
    assert_eq!((report.summary.medium, report.summary.low), (1, 1));
    assert_eq!((report.summary.total, report.summary.fixable), (2, 1));
    Ok(())
}

/// A re-evaluation as Lacework writes it (new `evalGuid`, `is_reeval: true`, a later
/// `startTime`, the same `scan_created_time`) wins over the scan it re-evaluates, with the GUIDs
/// in either order.
#[test]
fn the_reevaluation_wins_whatever_the_guids() -> TestResult {
    let row = |guid: &str, reeval: bool, start: &str, cve: &str, severity: &str| {
        serde_json::json!({
            "evalGuid": guid, "startTime": start, "vulnId": cve, "severity": severity,
            "status": "VULNERABLE",
            "evalCtx": {"is_reeval": reeval, "image_info": {
                "digest": "sha256:4e01", "scan_created_time": "2024-05-31T09:00:00Z"}},
            "featureKey": {"name": "curl", "version": "7.88.1", "namespace": "debian:12"},
            "fixInfo": {"fix_available": 0, "fixed_version": ""}
        })
    };
    for (initial, reeval) in [("ffff", "0000"), ("0000", "ffff")] {
        // The re-evaluation dropped the critical, and the reverse: it added one.
        for (old_extra, new_extra) in [(true, false), (false, true)] {
            let mut rows = vec![
                row(initial, false, "2024-05-31T09:05:00Z", "CVE-1", "High"),
                row(reeval, true, "2024-06-01T09:00:00Z", "CVE-1", "High"),
            ];
            if old_extra {
                rows.push(row(
                    initial,
                    false,
                    "2024-05-31T09:05:00Z",
                    "CVE-9",
                    "Critical",
                ));
            }
            if new_extra {
                rows.push(row(
                    reeval,
                    true,
                    "2024-06-01T09:00:00Z",
                    "CVE-9",
                    "Critical",
                ));
            }
            let report =
                ScanReport::from_scan_json(&with_rows(rows), None).map_err(|e| e.to_string())?;
            let case = format!(
                "initial {initial}, re-evaluation {reeval}, critical in the new one: {new_extra}"
            );
            assert_eq!(report.id.as_deref(), Some(reeval), "{case}");
            assert_eq!(report.summary.critical, u64::from(new_extra), "{case}");
            assert_eq!(
                report.scanned_at.as_deref(),
                Some("2024-05-31T09:00:00Z"),
                "{case}"
            );
            assert_eq!(
                report.evaluated_at.as_deref(),
                Some("2024-06-01T09:00:00Z"),
                "{case}"
            );
            assert_eq!(report.digest.as_deref(), Some("sha256:4e01"), "{case}");
        }
    }
    Ok(())
}

#[test]
fn string_fix_available_and_integer_scan_time() -> TestResult {
    let report = project_report("string-fix-integer-time.json", None)?;
    // 1714641300 seconds since the epoch.
    assert_eq!(report.scanned_at.as_deref(), Some("2024-05-02T09:15:00Z"));
    // No evalGuid: the scan request id names the evaluation.
    assert_eq!(
        report.id.as_deref(),
        Some("7a6b5c4d-3e2f-4a1b-9c8d-7e6f5a4b3c2d")
    );
    let fixes: Vec<(bool, Option<&str>)> = report
        .vulnerabilities
        .iter()
        .map(|v| (v.fix.available, v.fix.version.as_deref()))
        .collect();
    assert_eq!(
        fixes,
        [
            (true, Some("1.36.1-r16")),
            (false, None),
            (true, Some("1.36.1-r16"))
        ]
    );
    // Lacework's `Negligible` is `info`.
    assert_eq!(report.vulnerabilities[2].severity, Severity::Info);
    assert_eq!(report.summary.info, 1);
    Ok(())
}

#[test]
fn bare_array_of_rows() -> TestResult {
    let report = project_report("bare-array.json", None)?;
    assert_eq!(report.status, ScanStatus::Completed);
    assert_eq!(report.scanned_at.as_deref(), Some("2024-04-15T23:59:59Z"));
    let s = report.summary;
    assert_eq!(
        (s.critical, s.high, s.info, s.unknown, s.total, s.fixable),
        (1, 1, 1, 1, 4, 1)
    );
    let statuses: Vec<&str> = report
        .vulnerabilities
        .iter()
        .map(|v| v.status.as_str())
        .collect();
    assert_eq!(
        statuses,
        ["vulnerable", "vulnerable", "vulnerable", "exception"]
    );
    Ok(())
}

#[test]
fn empty_search_is_not_found() -> TestResult {
    let report = project_report("empty.json", None)?;
    assert_eq!(report.status, ScanStatus::NotFound);
    assert_eq!(report.summary, Summary::default());
    assert!(report.vulnerabilities.is_empty());
    Ok(())
}

#[test]
fn digest_picks_one_image_of_several() -> TestResult {
    let web = "sha256:4f3c5ea2b27e7c4c9a1d0f8b6e2d9a7c5b3e1f0d2c4a6b8e0f1a3c5e7d9b2f4a";
    let report = project_report("two-images.json", Some(web))?;
    let ids: Vec<&str> = report
        .vulnerabilities
        .iter()
        .map(|v| v.id.as_str())
        .collect();
    assert_eq!(ids, ["CVE-2023-38545", "CVE-2011-3374"]);
    let other = project_report("two-images.json", Some("sha256:0000"))?;
    assert_eq!(other.status, ScanStatus::NotFound);
    Ok(())
}

#[test]
fn shared_fixture_quirks() -> TestResult {
    let dir = shared_dir();
    if !shared::present("shared_fixture_quirks", &dir) {
        return Ok(());
    }
    // scan_created_time as an RFC 3339 string with an offset and milliseconds; EXCEPTION status.
    let text = read(&dir.join("v2-containers-search-response.json"))?;
    let report = ScanReport::from_scan_json(&text, None).map_err(|e| e.to_string())?;
    assert_eq!(report.scanned_at.as_deref(), Some("2020-11-12T00:29:45Z"));
    let statuses: Vec<&str> = report
        .vulnerabilities
        .iter()
        .map(|v| v.status.as_str())
        .collect();
    assert_eq!(statuses, ["exception", "vulnerable"]);
    assert_eq!((report.summary.low, report.summary.info), (1, 1));

    // scan_created_time as an integer, fix_available as an integer, evalGuid as the id.
    let text = read(&dir.join("v2-containers-search-response-paged-with-evalguid.json"))?;
    let digest = "sha256:77b2d2246518044ef95e3dbd029e51dd477788e5bf8e278e418685aabc3fe28a";
    let report = ScanReport::from_scan_json(&text, Some(digest)).map_err(|e| e.to_string())?;
    assert_eq!(report.scanned_at.as_deref(), Some("2022-11-21T18:33:20Z"));
    assert_eq!(
        report.id.as_deref(),
        Some("781865fdff984def2587b5f05065f0db")
    );
    assert_eq!(report.summary.total, 1);
    assert!(report.vulnerabilities[0].fix.available);
    Ok(())
}

// ---- bad scan input ----

fn invalid_reason(text: &str) -> Result<String, String> {
    match ScanReport::from_scan_json(text, None) {
        Err(Error::InvalidInput { what, reason }) => Ok(format!("{what}: {reason}")),
        other => Err(format!("expected InvalidInput for {text}, got {other:?}")),
    }
}

fn good_row() -> Value {
    serde_json::json!({
        "vulnId": "CVE-2023-5363", "severity": "High", "status": "VULNERABLE",
        "featureKey": {"name": "openssl", "version": "3.0.11", "namespace": "debian:12"},
        "fixInfo": {"fix_available": 1, "fixed_version": "3.0.12"}
    })
}

fn with_rows(rows: Vec<Value>) -> String {
    serde_json::json!({ "data": rows }).to_string()
}

#[test]
fn bad_scan_input_is_invalid_input_naming_the_fault() -> TestResult {
    // Sanity: the good row converts.
    ScanReport::from_scan_json(&with_rows(vec![good_row()]), None).map_err(|e| e.to_string())?;

    let reason = invalid_reason("{\"data\": [")?;
    assert!(reason.contains("not JSON"), "{reason}");
    let reason = invalid_reason("this is not a scan")?;
    assert!(reason.contains("not JSON"), "{reason}");

    let mut missing = good_row();
    missing.as_object_mut().map(|o| o.remove("vulnId"));
    let reason = invalid_reason(&with_rows(vec![good_row(), missing]))?;
    assert!(
        reason.contains("row 2:") && reason.contains("vulnId"),
        "{reason}"
    );

    let mut missing_name = good_row();
    missing_name["featureKey"]
        .as_object_mut()
        .map(|o| o.remove("name"));
    let reason = invalid_reason(&with_rows(vec![missing_name]))?;
    assert!(
        reason.contains("row 1:") && reason.contains("featureKey"),
        "{reason}"
    );

    let mut severe = good_row();
    severe["severity"] = "Severe".into();
    let reason = invalid_reason(&with_rows(vec![good_row(), severe]))?;
    assert!(
        reason.contains("CVE-2023-5363") && reason.contains("Severe"),
        "{reason}"
    );

    let mut odd_fix = good_row();
    odd_fix["fixInfo"]["fix_available"] = "maybe".into();
    let reason = invalid_reason(&with_rows(vec![odd_fix]))?;
    assert!(
        reason.contains("row 1:") && reason.contains("fix"),
        "{reason}"
    );

    let reason = invalid_reason("{\"data\": {\"vulnId\": \"CVE-1\"}}")?;
    assert!(reason.contains("data"), "{reason}");
    let reason = invalid_reason("42")?;
    assert!(reason.contains("expected"), "{reason}");

    // A Helios report whose summary disagrees with its findings.
    let report = serde_json::json!({
        "status": "completed", "source": "file", "id": null, "scanned_at": null, "error": null,
        "summary": {"critical": 1, "high": 0, "medium": 0, "low": 0, "info": 0, "unknown": 0,
                    "total": 1, "fixable": 0},
        "vulnerabilities": []
    });
    let reason = invalid_reason(&report.to_string())?;
    assert!(reason.contains("summary"), "{reason}");
    Ok(())
}
