//! The directory scan source: digests from file contents (Lacework rows) or from
//! `sha256-<hex>.json` names, re-indexing when the directory changes.

use std::path::Path;

use helios_core::image::ImageRef;
use helios_core::scan::{DirSource, Lookup, ScanSource, ScanStatus};
use helios_core::{Error, Result};

fn fail(e: impl ToString) -> Error {
    Error::InvalidInput {
        what: "test".into(),
        reason: e.to_string(),
    }
}

fn write(dir: &Path, name: &str, text: &str) -> Result<()> {
    std::fs::write(dir.join(name), text).map_err(fail)
}

const ROWS: &str = r#"{"data": [
  {"evalGuid": "e1", "evalCtx": {"image_info": {"digest": "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"}},
   "featureKey": {"name": "openssl", "version": "3.0.11", "namespace": "debian:12"},
   "fixInfo": {"fix_available": 1, "fixed_version": "3.0.13"},
   "severity": "High", "status": "VULNERABLE", "vulnId": "CVE-2023-1234"},
  {"evalGuid": "e2", "evalCtx": {"image_info": {"digest": "sha256:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"}},
   "featureKey": {"name": "zlib", "version": "1.2.13"},
   "severity": "Low", "status": "VULNERABLE", "vulnId": "CVE-2024-0001"}
]}"#;

const REPORT: &str = r#"{"status": "completed", "source": "ci-scanner", "id": "r1",
  "scanned_at": null, "error": null,
  "summary": {"critical": 0, "high": 0, "medium": 0, "low": 0, "info": 0, "unknown": 0, "total": 0, "fixable": 0},
  "vulnerabilities": []}"#;

#[tokio::test]
async fn finds_scans_by_content_digest_and_by_file_name() -> Result<()> {
    let dir = tempfile::tempdir().map_err(fail)?;
    write(dir.path(), "scans.json", ROWS)?;
    write(
        dir.path(),
        "sha256-cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc.json",
        REPORT,
    )?;
    write(dir.path(), "notes.json", "not json")?;
    let source = DirSource::open(dir.path())?;
    assert_eq!(source.digests().len(), 3, "{:?}", source.digests());

    let a = ImageRef::parse(
        "r.example/app@sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
    )?;
    let report = source.scan(&a, Lookup::default()).await?;
    assert_eq!(report.status, ScanStatus::Completed);
    assert_eq!(report.id.as_deref(), Some("e1"), "only that image's rows");
    assert_eq!(report.summary.high, 1);

    let c = ImageRef::parse(
        "r.example/app@sha256:cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc",
    )?;
    assert_eq!(
        source.scan(&c, Lookup::default()).await?.id.as_deref(),
        Some("r1")
    );

    let tag_only = ImageRef::parse("r.example/app:1.0")?;
    let report = source.scan(&tag_only, Lookup::default()).await?;
    assert_eq!(report.status, ScanStatus::NotFound);
    assert!(report.error.unwrap_or_default().contains("no digest"));
    Ok(())
}

#[tokio::test]
async fn new_files_are_picked_up() -> Result<()> {
    let dir = tempfile::tempdir().map_err(fail)?;
    let source = DirSource::open(dir.path())?;
    let d = ImageRef::parse(
        "r.example/app@sha256:dddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddd",
    )?;
    assert_eq!(
        source.scan(&d, Lookup::default()).await?.status,
        ScanStatus::NotFound
    );
    // Directory mtimes can have coarse resolution; make the change visible.
    std::thread::sleep(std::time::Duration::from_millis(20));
    write(
        dir.path(),
        "sha256-dddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddd.json",
        REPORT,
    )?;
    assert_eq!(
        source.scan(&d, Lookup::default()).await?.status,
        ScanStatus::Completed
    );
    Ok(())
}

#[test]
fn a_missing_directory_is_an_io_error() {
    let err = DirSource::open("/nonexistent/helios/scans").err();
    assert_eq!(err.map(|e| e.code()), Some("io"));
}

/// A report is parsed once and kept while its file is unchanged (same modification time,
/// length and inode), and read again as soon as the file changes.
#[tokio::test]
async fn reports_are_parsed_once_until_the_file_changes() -> Result<()> {
    let dir = tempfile::tempdir().map_err(fail)?;
    let name = "sha256-dddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddd.json";
    let path = dir.path().join(name);
    write(dir.path(), name, REPORT)?;
    let source = DirSource::open(dir.path())?;
    let image = ImageRef::parse(
        "r.example/app@sha256:dddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddd",
    )?;
    assert_eq!(
        source.scan(&image, Lookup::default()).await?.id.as_deref(),
        Some("r1")
    );

    // Rewritten in place, same length and modification time: the parsed report stands.
    let modified = std::fs::metadata(&path)
        .and_then(|m| m.modified())
        .map_err(fail)?;
    let other = REPORT.replace("\"r1\"", "\"r2\"");
    assert_eq!(other.len(), REPORT.len());
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .map_err(fail)?;
    std::io::Write::write_all(&mut &file, other.as_bytes()).map_err(fail)?;
    file.set_modified(modified).map_err(fail)?;
    assert_eq!(
        source.scan(&image, Lookup::default()).await?.id.as_deref(),
        Some("r1")
    );

    // A new modification time: read again.
    file.set_modified(modified + std::time::Duration::from_secs(1))
        .map_err(fail)?;
    assert_eq!(
        source.scan(&image, Lookup::default()).await?.id.as_deref(),
        Some("r2")
    );

    // Another length: read again, and an unparsable file is an error, never the old report.
    write(dir.path(), name, "{")?;
    assert!(source.scan(&image, Lookup::default()).await.is_err());
    Ok(())
}
