//! Finding (and on first use building) the Go-built peers under `.tools/bin`.

use std::path::PathBuf;
use std::process::{Command, Stdio};

use crate::opa::workspace_root;

/// Finds a tool: `$<env>`, else `$HELIOS_TOOLS_BIN/<name>` (default `<workspace>/.tools/bin`),
/// running `scripts/install-tools.sh <name>` first, which builds it there when it is missing or
/// at another version (and is cheap otherwise).
pub(crate) fn tool(name: &str, env: &str) -> Result<PathBuf, String> {
    if let Some(bin) = std::env::var_os(env).filter(|v| !v.is_empty()) {
        let bin = PathBuf::from(bin);
        return if bin.is_file() {
            Ok(bin)
        } else {
            Err(format!("{env}={} is not a file", bin.display()))
        };
    }
    let root = workspace_root();
    let tools = std::env::var_os("HELIOS_TOOLS_BIN")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join(".tools").join("bin"));
    let bin = tools.join(name);
    let script = root.join("scripts").join("install-tools.sh");
    if !bin.is_file() {
        eprintln!(
            "helios-testkit: no {name} at {}, running {} {name}",
            bin.display(),
            script.display()
        );
    }
    let status = Command::new("bash")
        .arg(&script)
        .arg(name)
        .stdout(Stdio::null())
        .status()
        .map_err(|e| format!("cannot run {}: {e}", script.display()))?;
    if !status.success() || !bin.is_file() {
        return Err(format!(
            "{} {name} failed ({status}); install Go, or set {env}",
            script.display()
        ));
    }
    Ok(bin)
}

/// The `helm` binary for the chart tests: `$HELIOS_HELM_BIN`, else `.tools/bin/helm`, built
/// there from its Go module by `scripts/install-tools.sh helm` on first use.
pub fn helm_binary() -> Result<PathBuf, String> {
    static FOUND: std::sync::OnceLock<Result<PathBuf, String>> = std::sync::OnceLock::new();
    FOUND
        .get_or_init(|| tool("helm", "HELIOS_HELM_BIN"))
        .clone()
}
