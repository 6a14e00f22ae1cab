//! The `helios` binary end to end: exit codes, outputs, and one-line errors on bad input.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn helios(args: &[&str]) -> Output {
    helios_with_stdin(args, None)
}

fn helios_with_stdin(args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_helios"))
        .args(args)
        .current_dir(root())
        // The images here live at made-up registries: look them up as written.
        .env("HELIOS_NO_RESOLVE", "true")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start helios: {e}"));
    if let (Some(text), Some(mut pipe)) = (stdin, child.stdin.take()) {
        let _ = pipe.write_all(text.as_bytes());
    }
    child
        .wait_with_output()
        .unwrap_or_else(|e| panic!("helios did not finish: {e}"))
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Errors are one line on stderr, with the stable code, and exit 2.
fn assert_one_line_error(o: &Output, code: &str, mentions: &[&str]) {
    let err = stderr(o);
    assert_eq!(o.status.code(), Some(2), "stderr: {err}");
    assert_eq!(err.trim_end().lines().count(), 1, "not one line: {err:?}");
    assert!(err.starts_with(&format!("helios: error[{code}]")), "{err}");
    for m in mentions {
        assert!(err.contains(m), "{err:?} does not mention {m:?}");
    }
    assert!(!err.contains("panicked"), "{err}");
}

fn temp_file(name: &str, contents: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("helios-cli-test-{}", std::process::id()));
    let _ = std::fs::create_dir_all(&dir);
    let path = dir.join(name);
    std::fs::write(&path, contents).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    path
}

#[test]
fn gate_denies_the_sample_scan_with_reasons() {
    let o = helios(&[
        "gate",
        "registry.example.com/shop/web:1.4",
        "--scan-file",
        "examples/scans/sample-lacework-scan.json",
    ]);
    let out = stdout(&o);
    assert_eq!(o.status.code(), Some(1), "{out}{}", stderr(&o));
    assert!(
        out.starts_with("DENIED  registry.example.com/shop/web:1.4"),
        "{out}"
    );
    assert!(out.contains("helios.default"), "{out}");
    assert!(out.contains("deny     CVE-"), "{out}");
}

#[test]
fn gate_takes_the_scan_from_a_directory_by_digest() -> Result<(), Box<dyn std::error::Error>> {
    let digest = "a".repeat(64);
    let dir = std::env::temp_dir().join(format!("helios-cli-scan-dir-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    std::fs::copy(
        root().join("examples/scans/clean-scan.json"),
        dir.join(format!("sha256-{digest}.json")),
    )?;
    let dir_arg = dir.to_str().ok_or("path")?;
    let image = format!("registry.example.com/shop/api@sha256:{digest}");
    let o = helios(&["gate", &image, "--scan-dir", dir_arg, "--format", "json"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let decision: serde_json::Value = serde_json::from_slice(&o.stdout)?;
    assert_eq!(decision["allowed"], true);
    // Another digest has no file there: not_found, denied as unscanned.
    let other = format!("registry.example.com/shop/api@sha256:{}", "9".repeat(64));
    let o = helios(&["gate", &other, "--scan-dir", dir_arg, "--format", "json"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stdout(&o).contains("unscanned"), "{}", stdout(&o));
    // One source at a time.
    let o = helios(&[
        "gate",
        &image,
        "--scan-dir",
        dir_arg,
        "--scan-file",
        "x.json",
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    // The help shows the core's defaults.
    let help = stdout(&helios(&["gate", "--help"]));
    for default in [
        "[default: 250]",
        "[default: 600]",
        "[default: helios]",
        "[default: 5000]",
    ] {
        assert!(help.contains(default), "{default} missing from:\n{help}");
    }
    Ok(())
}

#[test]
fn gate_allows_the_clean_scan_and_writes_the_artifact() -> Result<(), Box<dyn std::error::Error>> {
    let artifact = temp_file("artifact.json", "");
    let o = helios(&[
        "gate",
        "registry.example.com/shop/api:2.0",
        "--scan-file",
        "examples/scans/clean-scan.json",
        "--format",
        "json",
        "--ci",
        "pipeline=build",
        "--ci",
        "commit=5e1f0c2",
        "--artifact",
        artifact.to_str().ok_or("path")?,
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let decision: serde_json::Value = serde_json::from_slice(&o.stdout)?;
    assert_eq!(decision["allowed"], true);
    assert_eq!(decision["policy"]["id"], "helios.default");
    assert_eq!(decision["backend"], "embedded");

    let written: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&artifact)?)?;
    assert_eq!(written["decision"], decision);
    assert_eq!(written["input"]["stage"], "ci");
    assert_eq!(written["input"]["ci"]["commit"], "5e1f0c2");
    assert_eq!(written["input"]["workload"], serde_json::Value::Null);
    assert_eq!(written["input"]["image"]["repository"], "shop/api");
    Ok(())
}

#[test]
fn eval_reads_a_file_or_stdin_and_prints_the_decision() -> Result<(), Box<dyn std::error::Error>> {
    let o = helios(&[
        "eval",
        "--input",
        "tests/fixtures/inputs/critical-no-fix.json",
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let decision: serde_json::Value = serde_json::from_slice(&o.stdout)?;
    assert_eq!(decision["violations"][0]["code"], "critical");

    let text = std::fs::read_to_string(root().join("tests/fixtures/inputs/clean.json"))?;
    let o = helios_with_stdin(&["eval", "--input", "-"], Some(&text));
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let decision: serde_json::Value = serde_json::from_slice(&o.stdout)?;
    assert_eq!(decision["allowed"], true);
    Ok(())
}

#[test]
fn eval_with_a_hand_written_policy_and_package() -> Result<(), Box<dyn std::error::Error>> {
    let o = helios(&[
        "eval",
        "--input",
        "tests/fixtures/inputs/critical-no-fix.json",
        "--policy",
        "tests/fixtures/policies/acme_images.rego",
        "--package",
        "acme.images",
    ]);
    assert!(matches!(o.status.code(), Some(0 | 1)), "{}", stderr(&o));
    let decision: serde_json::Value = serde_json::from_slice(&o.stdout)?;
    assert!(
        decision["policy"]["version"]
            .as_str()
            .is_some_and(|v| v.starts_with("sha256:"))
    );
    Ok(())
}

#[test]
fn bad_scan_files_exit_2_with_one_line() {
    let not_json = temp_file("not-json.json", "this is not json");
    let missing = temp_file(
        "missing.json",
        r#"{"data": [{"vulnId": "CVE-1", "status": "VULNERABLE"}]}"#,
    );
    let severity = temp_file(
        "severity.json",
        r#"[{"vulnId": "CVE-1", "severity": "Apocalyptic", "status": "VULNERABLE",
             "featureKey": {"name": "zlib", "version": "1"}}]"#,
    );
    for (file, mentions) in [
        (&not_json, vec!["not-json.json", "not JSON"]),
        (&missing, vec!["missing.json", "row 1:", "featureKey"]),
        (&severity, vec!["severity.json", "Apocalyptic"]),
    ] {
        let o = helios(&[
            "gate",
            "nginx",
            "--scan-file",
            file.to_str().unwrap_or_default(),
        ]);
        assert_one_line_error(&o, "invalid_input", &mentions);
    }
    let o = helios(&["gate", "nginx", "--scan-file", "no/such/file.json"]);
    assert_one_line_error(&o, "io", &["no/such/file.json"]);
}

#[test]
fn bad_inputs_and_policies_exit_2_with_one_line() {
    let o = helios_with_stdin(&["eval", "--input", "-"], Some(r#"{"version": 1}"#));
    assert_one_line_error(&o, "invalid_input", &["policy input", "stage"]);

    let o = helios(&[
        "gate",
        "Not A Valid/Image",
        "--scan-file",
        "examples/scans/clean-scan.json",
    ]);
    assert_one_line_error(&o, "invalid_image", &["Not A Valid/Image"]);

    let o = helios(&[
        "eval",
        "--input",
        "tests/fixtures/inputs/clean.json",
        "--policy",
        "tests/fixtures/policies/syntax_error.rego",
    ]);
    assert_one_line_error(&o, "policy_parse", &["syntax_error.rego:"]);

    let o = helios(&[
        "eval",
        "--input",
        "tests/fixtures/inputs/clean.json",
        "--package",
        "nope",
    ]);
    assert_one_line_error(&o, "policy_undefined", &["data.nope", "check --package"]);
}

#[test]
fn policy_test_runs_the_default_policy_tests() {
    let o = helios(&["policy", "test", "helios-core/src/policy/default"]);
    let out = stdout(&o);
    assert_eq!(o.status.code(), Some(0), "{out}{}", stderr(&o));
    assert!(
        out.contains("PASS  data.helios_test.test_critical_without_fix_is_denied"),
        "{out}"
    );
    assert!(!out.contains("FAIL"), "{out}");
}

#[test]
fn policy_test_fails_on_a_failing_test() {
    let file = temp_file(
        "failing_test.rego",
        "package demo_test\n\ntest_passes if 1 == 1\n\ntest_fails if 1 == 2\n",
    );
    let o = helios(&["policy", "test", file.to_str().unwrap_or_default()]);
    let out = stdout(&o);
    assert_eq!(o.status.code(), Some(1), "{out}");
    assert!(out.contains("PASS  data.demo_test.test_passes"), "{out}");
    assert!(out.contains("FAIL  data.demo_test.test_fails"), "{out}");
    assert!(out.contains("PASS: 1/2"), "{out}");
}

#[test]
fn every_command_has_help() {
    for args in [
        vec!["--help"],
        vec!["eval", "--help"],
        vec!["gate", "--help"],
        vec!["policy", "--help"],
        vec!["policy", "test", "--help"],
    ] {
        let o = helios(&args);
        assert_eq!(o.status.code(), Some(0), "{args:?}: {}", stderr(&o));
        assert!(stdout(&o).contains("Usage:"), "{args:?}");
    }
}

#[test]
fn gate_writes_artifacts_in_the_format_their_names_ask_for()
-> Result<(), Box<dyn std::error::Error>> {
    let dir = temp_file("keep", "").with_file_name("");
    let (sarif, junit, md) = (dir.join("r.sarif"), dir.join("r.xml"), dir.join("r.md"));
    let o = helios(&[
        "gate",
        "registry.example.com/shop/web:1.4",
        "--scan-file",
        "examples/scans/sample-lacework-scan.json",
        "--artifact",
        sarif.to_str().ok_or("path")?,
        "--artifact",
        junit.to_str().ok_or("path")?,
        "--artifact",
        md.to_str().ok_or("path")?,
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));

    let sarif: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(sarif)?)?;
    assert_eq!(sarif["version"], "2.1.0");
    let results = sarif["runs"][0]["results"].as_array().ok_or("results")?;
    assert!(
        results
            .iter()
            .any(|r| r["level"] == "error" && r["ruleId"] == "critical")
    );
    assert_eq!(
        sarif["runs"][0]["properties"]["policy"]["id"],
        "helios.default"
    );

    let junit = std::fs::read_to_string(junit)?;
    assert!(
        junit.contains("<failure message=\"2 violations\""),
        "{junit}"
    );
    assert!(
        junit.contains("name=\"policy.id\" value=\"helios.default\""),
        "{junit}"
    );

    let md = std::fs::read_to_string(md)?;
    assert!(
        md.starts_with("### ❌ Helios: DENIED `registry.example.com/shop/web:1.4`"),
        "{md}"
    );
    Ok(())
}

/// Issue 16: a policy whose builtin runs far past the time limit (regorus does not consult its
/// timer inside `numbers.range`) is a policy error, exit 2, not a decision.
#[test]
fn a_runaway_policy_is_a_policy_timeout_exit_2() {
    let policy = temp_file(
        "runaway.rego",
        "package helios\ndeny contains \"big\" if count(numbers.range(1, 10000000)) > 0\n",
    );
    let o = helios(&[
        "gate",
        "registry.example.com/shop/api:2.0",
        "--scan-file",
        "examples/scans/clean-scan.json",
        "--policy",
        policy.to_str().unwrap_or_default(),
        "--time-limit-ms",
        "20",
    ]);
    assert_one_line_error(&o, "policy_timeout", &["time limit of 20 ms"]);
}

/// Issue 16: a scan file that is not a regular file is refused, not read until memory runs out.
#[test]
fn gate_refuses_a_device_as_scan_file() {
    let o = helios(&[
        "gate",
        "registry.example.com/shop/api:2.0",
        "--scan-file",
        "/dev/zero",
    ]);
    assert_one_line_error(&o, "invalid_input", &["/dev/zero", "not a regular file"]);
}

/// Issue 16: an artifact that cannot be written says so (it used to say "cannot read").
#[test]
fn an_unwritable_artifact_says_cannot_write() {
    let o = helios(&[
        "gate",
        "registry.example.com/shop/api:2.0",
        "--scan-file",
        "examples/scans/clean-scan.json",
        "--artifact",
        "/nonexistent-helios-dir/report.json",
    ]);
    assert_one_line_error(
        &o,
        "io",
        &["cannot write /nonexistent-helios-dir/report.json"],
    );
}

/// Issue 17: with Lacework unreachable, `gate` prints the verdict (UNDECIDED, the reason) and
/// exits 2 — "could not ask", which a pipeline must tell from 1, "the policy said no"; every
/// artifact says so too (JSON `exit_code: 2`, JUnit `<error>`).
#[test]
fn gate_with_lacework_unreachable_exits_2_with_the_verdict_and_artifacts() {
    let home = tempfile::tempdir().unwrap_or_else(|e| panic!("temp dir: {e}"));
    // A port nothing listens on: connection refused.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("no port: {e}"));
    let json = home.path().join("gate.json");
    let junit = home.path().join("gate.xml");
    let o = Command::new(env!("CARGO_BIN_EXE_helios"))
        .args([
            "gate",
            &format!("registry.example.com/shop/api@sha256:{}", "e".repeat(64)),
        ])
        .args(["--no-scan", "--artifact"])
        .arg(&json)
        .arg("--artifact")
        .arg(&junit)
        .current_dir(root())
        .env("HOME", home.path())
        .env("HELIOS_NO_RESOLVE", "true")
        .env("LW_ACCOUNT", format!("http://127.0.0.1:{port}"))
        .env("LW_API_KEY", "ACME_0123456789")
        .env("LW_API_SECRET", "_unreachable_secret")
        .env_remove("LW_PROFILE")
        .output()
        .unwrap_or_else(|e| panic!("cannot start helios: {e}"));
    let out = stdout(&o);
    assert_eq!(o.status.code(), Some(2), "{out}{}", stderr(&o));
    assert!(out.starts_with("UNDECIDED"), "{out}");
    assert!(out.contains("unavailable"), "{out}");
    assert!(!out.contains("_unreachable_secret") && !stderr(&o).contains("_unreachable_secret"));
    let artifact: serde_json::Value = serde_json::from_slice(
        &std::fs::read(&json).unwrap_or_else(|e| panic!("no JSON artifact: {e}")),
    )
    .unwrap_or_else(|e| panic!("JSON artifact: {e}"));
    assert_eq!(artifact["exit_code"], 2);
    assert_eq!(artifact["input"]["scan"]["status"], "unavailable");
    let xml = std::fs::read_to_string(&junit).unwrap_or_else(|e| panic!("no JUnit: {e}"));
    assert!(
        xml.contains("errors=\"1\"") && xml.contains("<error "),
        "{xml}"
    );
    assert!(!xml.contains("<failure "), "{xml}");
}

/// Issue 17: when one artifact cannot be written, the verdict is still printed, the failure
/// names that artifact, and no artifact is written (all or none), also for a directory path.
#[test]
fn artifacts_are_written_all_or_none_and_the_verdict_is_kept() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("temp dir: {e}"));
    let good = dir.path().join("gate.json");
    for bad in [
        "/nonexistent-helios-dir/gate.sarif".to_string(),
        dir.path().display().to_string(),
    ] {
        let o = helios(&[
            "gate",
            "registry.example.com/shop/api:2.0",
            "--scan-file",
            "examples/scans/clean-scan.json",
            "--artifact",
            &good.display().to_string(),
            "--artifact",
            &bad,
        ]);
        assert_one_line_error(&o, "io", &[&format!("cannot write {bad}")]);
        assert!(stdout(&o).starts_with("ALLOWED"), "{}", stdout(&o));
        let left: Vec<_> = std::fs::read_dir(dir.path())
            .map(|d| d.filter_map(|e| e.ok()).map(|e| e.file_name()).collect())
            .unwrap_or_default();
        assert!(left.is_empty(), "written despite the failure: {left:?}");
    }
    // Both writable: both written, nothing staged left behind.
    let sarif = dir.path().join("gate.sarif");
    let o = helios(&[
        "gate",
        "registry.example.com/shop/api:2.0",
        "--scan-file",
        "examples/scans/clean-scan.json",
        "--artifact",
        &good.display().to_string(),
        "--artifact",
        &sarif.display().to_string(),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let mut names: Vec<String> = std::fs::read_dir(dir.path())
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    assert_eq!(names, ["gate.json", "gate.sarif"]);
}
