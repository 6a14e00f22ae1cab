//! Every scan-file format `helios gate --scan-file` reads (a Helios report, a Lacework search
//! page or bare row array, the CLI's output): errors are fine, panics are not. A report that
//! reads must serialise.
#![no_main]

use helios_core::scan::ScanReport;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    for digest in [
        None,
        Some("sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"),
    ] {
        if let Ok(report) = ScanReport::from_scan_json(text, digest) {
            serde_json::to_string(&report).expect("a report serialises");
        }
    }
});
