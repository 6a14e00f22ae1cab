//! A Rust CI step embedding Helios: gate every `IMAGE=SCAN_FILE` pair given on the command line
//! with the shipped default policy, concurrently, sharing one prepared evaluator.
//!
//! ```sh
//! cargo run -p helios-examples --bin ci-gate -- \
//!     registry.example.com/shop/web:1.4=examples/scans/sample-lacework-scan.json \
//!     registry.example.com/shop/api:2.0=examples/scans/clean-scan.json
//! ```
//!
//! Exits 0 when every image is allowed, 1 when any is denied, 2 on errors.

use std::process::ExitCode;
use std::sync::Arc;

use helios_core::gate::Gate;
use helios_core::image::ImageRef;
use helios_core::policy::EmbeddedEvaluator;
use helios_core::scan::ScanReport;

#[tokio::main]
async fn main() -> ExitCode {
    match run().await {
        Ok(all_allowed) => ExitCode::from(if all_allowed { 0 } else { 1 }),
        Err(err) => {
            eprintln!("ci-gate: error[{}]: {err}", err.code());
            ExitCode::from(2)
        }
    }
}

async fn run() -> helios_core::Result<bool> {
    // Prepared once; each evaluation clones the prepared engine cheaply.
    let gate = Arc::new(Gate::new(EmbeddedEvaluator::default_policy()?));
    let mut tasks = Vec::new();
    for arg in std::env::args().skip(1) {
        let (image, scan_file) = arg.split_once('=').unwrap_or((arg.as_str(), ""));
        let image = ImageRef::parse(image)?;
        let scan = ScanReport::from_scan_file(scan_file.as_ref(), image.digest.as_deref())?;
        let gate = Arc::clone(&gate);
        tasks.push(tokio::spawn(
            async move { gate.check(image, scan, None).await },
        ));
    }
    let mut all_allowed = true;
    for task in tasks {
        let outcome = task.await.map_err(|e| helios_core::Error::PolicyEval {
            message: format!("evaluation task failed: {e}"),
        })??;
        all_allowed &= outcome.decision.allowed;
        print!("{}", outcome.to_text());
    }
    Ok(all_allowed)
}
