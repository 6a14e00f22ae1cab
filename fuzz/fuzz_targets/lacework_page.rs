//! A Lacework search page (`{"data": [...], "paging": ...}`, or a bare array) → rows → report
//! (through `ScanReport::from_scan_json`, as the wire rows are private to the core), and the same
//! page read as image summaries. Malformed rows are errors, never panics.
#![no_main]

use helios_core::scan::ScanReport;
use helios_core::scan::lacework::ImageSummary;
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(page) = serde_json::from_str::<Value>(text) else {
        return;
    };
    let entries = match page {
        Value::Array(rows) => rows,
        Value::Object(mut page) => match page.remove("data") {
            Some(Value::Array(rows)) => rows,
            _ => return,
        },
        _ => return,
    };
    for entry in &entries {
        if let Ok(summary) = serde_json::from_value::<ImageSummary>(entry.clone()) {
            let _ = summary.findings();
            let _ = summary.last_scanned();
            let _ = summary.state();
        }
    }
    let digest = entries
        .first()
        .and_then(|r| r.pointer("/evalCtx/image_info/digest"))
        .and_then(Value::as_str);
    let _ = ScanReport::from_scan_json(text, None);
    let _ = ScanReport::from_scan_json(text, digest);
});
