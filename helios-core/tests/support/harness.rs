//! The Go harness around the API server's own webhook dispatchers (`tests/k8s-webhook-harness`,
//! k8s.io/apiserver): built with the machine's Go on first use, cached in `target/go/`.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The harness binary, built unless an up-to-date one is there (once per test process at a
/// time). Go is required: without it this fails, naming what is missing, never skips.
pub fn k8s_webhook_harness() -> Result<PathBuf, Box<dyn std::error::Error>> {
    static BUILD: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _one_build_at_a_time = BUILD.lock().unwrap_or_else(|e| e.into_inner());
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let src = root.join("tests/k8s-webhook-harness");
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"));
    let bin = target.join("go/k8s-webhook-harness");
    let newest_source = ["main.go", "go.mod", "go.sum"]
        .iter()
        .filter_map(|f| {
            std::fs::metadata(src.join(f))
                .and_then(|m| m.modified())
                .ok()
        })
        .max();
    let built = std::fs::metadata(&bin).and_then(|m| m.modified()).ok();
    if built.is_some() && built >= newest_source {
        return Ok(bin);
    }
    eprintln!("building tests/k8s-webhook-harness (first use; a few minutes cold)...");
    let status = Command::new("go")
        // No VCS stamping: the checkout may be a CI clone without usable git metadata.
        .args(["build", "-buildvcs=false", "-o"])
        .arg(&bin)
        .arg(".")
        .current_dir(&src)
        .status()
        .map_err(|e| format!("go is needed to build tests/k8s-webhook-harness: {e}"))?;
    if !status.success() {
        return Err(format!("go build of the harness failed: {status}").into());
    }
    Ok(bin)
}
