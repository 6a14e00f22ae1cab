//! A Lacework search page (`{"data": [...], "paging": ...}`, or a bare array) → rows → report,
//! and the same page read as image summaries. Malformed rows are errors, never panics.
#![no_main]

use helios_core::scan::lacework::{ImageSummary, parse_rows, report_from_rows};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

fuzz_target!(|data: &[u8]| {
    let Ok(page) = serde_json::from_slice::<Value>(data) else {
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
    if let Ok(rows) = parse_rows(entries) {
        let digest = rows.first().and_then(|r| r.digest().map(str::to_string));
        let _ = report_from_rows(&rows, None);
        let _ = report_from_rows(&rows, digest.as_deref());
    }
});
