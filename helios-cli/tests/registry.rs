//! `helios gate` and `helios scan` resolve tags at a real registry (the CNCF distribution
//! registry, images pushed by crane): the artifact records the tag, the resolved digest and the
//! platform manifest; a multi-arch image is judged on its platform's scan; a registry failure
//! is exit 2 with a clear reason, never a silent lookup by tag.

use std::path::Path;
use std::process::{Command, Output};

use helios_testkit::Registry;
use serde_json::{Value, json};

type TestResult = Result<(), Box<dyn std::error::Error>>;

fn helios(args: &[&str]) -> std::io::Result<Output> {
    Command::new(env!("CARGO_BIN_EXE_helios"))
        .args(args)
        .env_remove("HELIOS_NO_RESOLVE")
        .env_remove("HELIOS_DOCKER_CONFIG")
        .output()
}

/// Lacework rows for `digest`: one finding of `severity`, with a fix.
fn rows(digest: &str, cve: &str, severity: &str) -> Value {
    json!({
        "evalCtx": {"image_info": {"digest": digest, "repo": "multi/app", "tags": ["1.0"]}},
        "vulnId": cve, "severity": severity, "status": "VULNERABLE",
        "featureKey": {"name": "openssl", "version": "1.1.1n", "namespace": "debian:11"},
        "fixInfo": {"fix_available": 1, "fixed_version": "1.1.1w"}
    })
}

fn read_json(path: &Path) -> Result<Value, Box<dyn std::error::Error>> {
    Ok(serde_json::from_str(&std::fs::read_to_string(path)?)?)
}

#[test]
fn gate_resolves_the_tag_and_judges_the_platform_manifest() -> TestResult {
    let registry = Registry::anonymous()?;
    let amd64 = registry.push_image("multi/app:amd64", "amd", Some("linux/amd64"))?;
    let arm64 = registry.push_image("multi/app:arm64", "arm", Some("linux/arm64"))?;
    let index = registry.push_index("multi/app:1.0", &["multi/app:amd64", "multi/app:arm64"])?;
    let host = registry.host();
    let image = format!("{host}/multi/app:1.0");

    // The scanner knows both platform manifests, not the index: amd64 clean but for a low,
    // arm64 with a fixable critical.
    let dir = tempfile::tempdir()?;
    let scan = dir.path().join("scan.json");
    std::fs::write(
        &scan,
        json!({"data": [rows(&amd64, "CVE-2024-0001", "Low"), rows(&arm64, "CVE-2024-0002", "Critical")]})
            .to_string(),
    )?;
    let scan_arg = scan.to_string_lossy().into_owned();
    let artifact = dir.path().join("amd64.json");
    let artifact_arg = artifact.to_string_lossy().into_owned();
    let docker = registry.docker_config().to_string_lossy().into_owned();

    let out = helios(&[
        "gate",
        &image,
        "--plain-http",
        &host,
        "--docker-config",
        &docker,
        "--scan-file",
        &scan_arg,
        "--artifact",
        &artifact_arg,
    ])?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains(&format!(
            "resolved multi/app:1.0 -> {index}, platform manifest {amd64}"
        )),
        "{stdout}"
    );
    let a = read_json(&artifact)?;
    let img = &a["input"]["image"];
    assert_eq!(img["tag"], "1.0");
    assert_eq!(img["digest"], Value::Null);
    assert_eq!(img["resolved_digest"], index.as_str());
    assert_eq!(img["platform_digest"], amd64.as_str());
    assert_eq!(a["input"]["scan"]["summary"]["low"], 1);

    // The same tag for arm64 nodes: the critical decides.
    let out = helios(&[
        "gate",
        &image,
        "--plain-http",
        &host,
        "--docker-config",
        &docker,
        "--scan-file",
        &scan_arg,
        "--platform",
        "linux/arm64",
        "--format",
        "json",
    ])?;
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("CVE-2024-0002"));

    // --no-resolve: nothing asked, nothing recorded; the file covers two images, so the
    // lookup by tag cannot pick one and says so.
    let out = helios(&["gate", &image, "--no-resolve", "--scan-file", &scan_arg])?;
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("name the image by digest"));
    Ok(())
}

#[test]
fn resolution_failures_are_exit_2_with_the_reason() -> TestResult {
    let registry = Registry::anonymous()?;
    let digest = registry.push_image("gone/app:1.0", "gone", None)?;
    registry.delete(&format!("gone/app@{digest}"))?;
    let host = registry.host();
    let docker = registry.docker_config().to_string_lossy().into_owned();
    let image = format!("{host}/gone/app:1.0");
    let clean = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/scans/clean-scan.json");
    let clean = clean.to_string_lossy().into_owned();

    let out = helios(&[
        "gate",
        &image,
        "--plain-http",
        &host,
        "--docker-config",
        &docker,
        "--scan-file",
        &clean,
    ])?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("error[remote]"), "{stderr}");
    assert!(stderr.contains("gone/app:1.0 was not found"), "{stderr}");
    assert!(out.stdout.is_empty(), "no decision without the digest");

    // Not listed as plain HTTP: https is tried and fails; no silent downgrade.
    let out = helios(&[
        "scan",
        &image,
        "--docker-config",
        &docker,
        "--registry-timeout-ms",
        "2000",
    ])?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("error[unavailable]") && stderr.contains("plain"),
        "{stderr}"
    );
    Ok(())
}
