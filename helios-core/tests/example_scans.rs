//! The scan files shipped under `examples/scans/` decide as the README says with the default
//! policy: the sample Lacework scan is denied with readable reasons, the clean scan is allowed.

use std::path::{Path, PathBuf};

use helios_core::gate::Gate;
use helios_core::image::ImageRef;
use helios_core::policy::EmbeddedEvaluator;
use helios_core::scan::{ScanReport, ScanStatus};

fn example(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../examples/scans")
        .join(name)
}

fn msgs(findings: &[helios_core::policy::Finding]) -> Vec<&str> {
    findings.iter().map(|f| f.msg.as_str()).collect()
}

#[test]
fn sample_lacework_scan_is_denied_with_reasons() -> helios_core::Result<()> {
    let image = ImageRef::parse("registry.example.com/shop/web:1.4")?;
    let scan = ScanReport::from_scan_file(&example("sample-lacework-scan.json"), None)?;
    assert_eq!(scan.status, ScanStatus::Completed);
    assert_eq!(scan.scanned_at.as_deref(), Some("2024-05-02T09:15:00Z"));
    let s = scan.summary;
    assert_eq!(
        (s.critical, s.high, s.medium, s.low, s.total, s.fixable),
        (1, 2, 2, 3, 8, 4)
    );

    let outcome = Gate::new(EmbeddedEvaluator::default_policy()?).check_sync(image, scan, None)?;
    assert_eq!(outcome.exit_code(), 1);
    assert_eq!(
        msgs(&outcome.decision.violations),
        [
            "CVE-2023-38545 (critical) in curl 7.88.1-10 has a fix: 7.88.1-10+deb12u4",
            "CVE-2023-5363 (high) in openssl 3.0.11-1~deb12u1 has a fix: 3.0.11-1~deb12u2",
        ]
    );
    assert_eq!(
        msgs(&outcome.decision.warnings),
        [
            "CVE-2023-45853 (high) in zlib1g 1:1.2.13.dfsg-1 has no fix yet",
            "CVE-2023-4911 (medium) in libc6 2.36-9+deb12u1 has a fix: 2.36-9+deb12u3",
        ]
    );
    let text = outcome.to_text();
    assert!(
        text.starts_with("DENIED  registry.example.com/shop/web:1.4"),
        "{text}"
    );
    assert!(text.contains("deny     CVE-2023-38545"), "{text}");
    Ok(())
}

#[test]
fn clean_scan_report_is_allowed() -> helios_core::Result<()> {
    let image = ImageRef::parse("registry.example.com/shop/web:1.5")?;
    let scan = ScanReport::from_scan_file(&example("clean-scan.json"), None)?;
    assert_eq!((scan.summary.low, scan.summary.total), (3, 3));
    let outcome = Gate::new(EmbeddedEvaluator::default_policy()?).check_sync(image, scan, None)?;
    assert_eq!(outcome.exit_code(), 0);
    assert!(outcome.decision.violations.is_empty());
    assert!(outcome.decision.warnings.is_empty());
    Ok(())
}
