//! Every shell example in README.md and docs/*.md runs as written, in the spirit of the Python
//! (helios-py/tests/test_docs.py) and Node (helios-node/test/docs.test.js) doc tests.
//!
//! Each ```sh or ```console block needs a directive on the line above it:
//!
//! - `<!-- doctest: {...} -->` (JSON): run it from the repository root with the `helios` built for
//!   these tests first on `PATH`, no `LW_*` variables and a fresh `HOME`. Keys: `exit` (expected
//!   exit code, default 0), `stdout` (fragments the output must contain), `lacework: true` (the
//!   Lacework emulator runs in-process and `LW_ACCOUNT`, `LW_API_KEY`, `LW_API_SECRET` point at it).
//!   A ```sh block runs under `sh -e`; in a ```console block the `$ ` lines (with their `\`
//!   continuations) are the commands and every other line, but `...` and `(exit code N)`, is
//!   output that must appear as a line of stdout (unless the directive lists `stdout` fragments
//!   instead, for output with timings), verbatim but for digests, which the docs show
//!   elided (`sha256:2bd0…4a5b`, the first and last four hex digits) and stdout is compared so.
//! - `<!-- doctest: skip (reason) -->`: not runnable offline (a cluster, a Lacework account, a
//!   long build); the test counts and lists these, and a skip without a reason fails.
//!
//! A block without a directive fails: an example that is not run is an example that rots. Blocks
//! that are not commands (a synopsis, YAML for GitHub Actions) are ```text or ```yaml.
//!
//! The docs also show the default policy's version elided (`sha256:2bd0…4a5b`); every such mention
//! is checked against the real version, so a policy change that forgets the docs fails here.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use helios_core::policy::EmbeddedEvaluator;
use helios_lacework_emulator::Emulator;
use serde_json::Value;

type TestResult = Result<(), Box<dyn std::error::Error>>;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// README.md and every docs/*.md, relative to the repository root, sorted.
fn documents() -> Result<Vec<String>, std::io::Error> {
    let mut docs = vec!["README.md".to_string()];
    let mut more: Vec<String> = std::fs::read_dir(root().join("docs"))?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".md"))
        .map(|n| format!("docs/{n}"))
        .collect();
    more.sort();
    docs.extend(more);
    Ok(docs)
}

enum Directive {
    Missing,
    Skip(String),
    Run(Value),
}

struct Block {
    /// `docs/x.md:12`, the line of the opening fence.
    at: String,
    lang: String,
    body: String,
    directive: Directive,
}

/// The ```sh and ```console blocks of one document with the directive above each.
fn shell_blocks(doc: &str) -> Result<Vec<Block>, Box<dyn std::error::Error>> {
    let text = std::fs::read_to_string(root().join(doc))?;
    let lines: Vec<&str> = text.lines().collect();
    let mut blocks = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let fence = lines[i].trim_start();
        let Some(lang) = fence.strip_prefix("```") else {
            i += 1;
            continue;
        };
        let lang = lang.trim().to_string();
        let start = i;
        let indent = lines[i].len() - fence.len();
        i += 1;
        let mut body = String::new();
        while i < lines.len() && lines[i].trim() != "```" {
            body.push_str(lines[i].get(indent..).unwrap_or(lines[i].trim_start()));
            body.push('\n');
            i += 1;
        }
        i += 1;
        if lang != "sh" && lang != "console" {
            continue;
        }
        let above = lines[..start]
            .iter()
            .rev()
            .find(|l| !l.trim().is_empty())
            .map(|l| l.trim())
            .unwrap_or("");
        let directive = match above
            .strip_prefix("<!-- doctest:")
            .and_then(|d| d.strip_suffix("-->"))
            .map(str::trim)
        {
            None => Directive::Missing,
            Some(d) if d.starts_with("skip") => Directive::Skip(
                d.trim_start_matches("skip")
                    .trim()
                    .trim_start_matches('(')
                    .trim_end_matches(')')
                    .trim()
                    .to_string(),
            ),
            Some(d) => Directive::Run(
                serde_json::from_str(d).map_err(|e| format!("{doc}:{}: {e}", start + 1))?,
            ),
        };
        blocks.push(Block {
            at: format!("{doc}:{}", start + 1),
            lang,
            body,
            directive,
        });
    }
    Ok(blocks)
}

fn all_blocks() -> Result<Vec<Block>, Box<dyn std::error::Error>> {
    let mut all = Vec::new();
    for doc in documents()? {
        all.extend(shell_blocks(&doc)?);
    }
    Ok(all)
}

/// The script to run and, for a console block, the output lines it shows.
fn script_of(block: &Block) -> (String, Vec<String>) {
    if block.lang == "sh" {
        return (block.body.clone(), Vec::new());
    }
    let mut script = String::new();
    let mut shown = Vec::new();
    let mut continued = false;
    for line in block.body.lines() {
        if let Some(cmd) = line.strip_prefix("$ ") {
            script.push_str(cmd);
            script.push('\n');
            continued = cmd.trim_end().ends_with('\\');
        } else if continued {
            script.push_str(line);
            script.push('\n');
            continued = line.trim_end().ends_with('\\');
        } else if line.trim() != "..." && !line.starts_with("(exit code") {
            shown.push(line.trim_end().to_string());
        }
    }
    (script, shown)
}

#[test]
fn every_shell_block_has_a_directive() -> TestResult {
    let blocks = all_blocks()?;
    assert!(
        blocks.len() >= 10,
        "found only {} shell blocks",
        blocks.len()
    );
    let missing: Vec<&str> = blocks
        .iter()
        .filter(|b| matches!(b.directive, Directive::Missing))
        .map(|b| b.at.as_str())
        .collect();
    assert!(
        missing.is_empty(),
        "shell blocks without <!-- doctest: ... -->: {missing:?}"
    );
    let skipped: Vec<(&str, &str)> = blocks
        .iter()
        .filter_map(|b| match &b.directive {
            Directive::Skip(reason) => Some((b.at.as_str(), reason.as_str())),
            _ => None,
        })
        .collect();
    for (at, reason) in &skipped {
        assert!(!reason.is_empty(), "{at}: a skip needs a reason");
        eprintln!("skipped {at}: {reason}");
    }
    let run = blocks.len() - skipped.len();
    eprintln!("{run} shell blocks run, {} skipped", skipped.len());
    assert!(run >= 3, "only {run} shell blocks run");
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn every_runnable_shell_block_runs_as_written() -> TestResult {
    let helios = PathBuf::from(env!("CARGO_BIN_EXE_helios"));
    let bin_dir = helios.parent().ok_or("helios has no directory")?;
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let home = tempfile::tempdir()?;
    let mut ran = 0;
    for block in all_blocks()? {
        let Directive::Run(directive) = &block.directive else {
            continue;
        };
        let emu = if directive["lacework"].as_bool() == Some(true) {
            Some(Emulator::builder().start().await?)
        } else {
            None
        };
        let (script, shown) = script_of(&block);
        let mut cmd = Command::new("sh");
        cmd.arg("-e")
            .arg("-c")
            .arg(&script)
            .current_dir(root())
            .env("PATH", &path)
            .env("HOME", home.path())
            .stdin(Stdio::null());
        for var in [
            "LW_ACCOUNT",
            "LW_SUBACCOUNT",
            "LW_API_KEY",
            "LW_API_SECRET",
            "LW_PROFILE",
            "DOCKER_CONFIG",
        ] {
            cmd.env_remove(var);
        }
        // The examples run as a user's shell would: no HELIOS_* settings of the test's own
        // environment (HELIOS_NO_RESOLVE, HELIOS_CONFIG, …) leak into them.
        for (var, _) in std::env::vars_os() {
            if var.to_string_lossy().starts_with("HELIOS_") {
                cmd.env_remove(var);
            }
        }
        if let Some(emu) = &emu {
            cmd.env("LW_ACCOUNT", emu.url())
                .env("LW_API_KEY", emu.key_id())
                .env("LW_API_SECRET", emu.secret());
        }
        let out = tokio::task::spawn_blocking(move || cmd.output()).await??;
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        let expected = directive["exit"].as_i64().unwrap_or(0);
        let at = &block.at;
        assert_eq!(
            out.status.code().map(i64::from),
            Some(expected),
            "{at}: exit code\n--- script\n{script}--- stdout\n{stdout}--- stderr\n{stderr}"
        );
        for fragment in directive["stdout"].as_array().into_iter().flatten() {
            let fragment = fragment.as_str().ok_or("stdout fragments are strings")?;
            assert!(
                stdout.contains(fragment),
                "{at}: stdout lacks {fragment:?}\n{stdout}"
            );
        }
        let lines: Vec<String> = stdout
            .lines()
            .map(|l| elide_digests(l.trim_end()))
            .collect();
        let verbatim = if directive.get("stdout").is_some() {
            &[][..]
        } else {
            &shown[..]
        };
        for line in verbatim {
            assert!(
                lines.contains(line),
                "{at}: the shown output line {line:?} is not in stdout\n{stdout}"
            );
        }
        ran += 1;
    }
    assert!(ran >= 3, "only {ran} shell blocks ran");
    Ok(())
}

/// `sha256:2bd0…4a5b`: the first and last four hex digits of a version.
fn elided(version: &str) -> Option<String> {
    let hex = version.strip_prefix("sha256:")?;
    Some(format!(
        "sha256:{}…{}",
        hex.get(..4)?,
        hex.get(hex.len().checked_sub(4)?..)?
    ))
}

/// `line` with every full `sha256:` digest elided as the docs show it.
fn elide_digests(line: &str) -> String {
    let mut out = String::new();
    let mut rest = line;
    while let Some(pos) = rest.find("sha256:") {
        out.push_str(&rest[..pos]);
        let after = &rest[pos + "sha256:".len()..];
        let hex = after.bytes().take_while(u8::is_ascii_hexdigit).count();
        match elided(&rest[pos..pos + "sha256:".len() + hex]) {
            Some(short) if hex == 64 => out.push_str(&short),
            _ => out.push_str(&rest[pos..pos + "sha256:".len() + hex]),
        }
        rest = &after[hex..];
    }
    out.push_str(rest);
    out
}

#[test]
fn docs_show_the_current_default_policy_version() -> TestResult {
    let real = EmbeddedEvaluator::default_policy()?.version().to_string();
    let want = elided(&real).ok_or("the default policy version is not sha256:…")?;
    let mut seen = 0;
    for doc in documents()? {
        let text = std::fs::read_to_string(root().join(&doc))?;
        for (n, line) in text.lines().enumerate() {
            // A line naming the default policy and a digest shows its version.
            if !line.contains("helios.default") {
                continue;
            }
            let mut rest = line;
            while let Some(pos) = rest.find("sha256:") {
                let shown: String = rest[pos..]
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == ':' || *c == '…')
                    .collect();
                assert_eq!(
                    shown,
                    want,
                    "{doc}:{}: shows the default policy as {shown}, it is {want} ({real})",
                    n + 1
                );
                seen += 1;
                rest = &rest[pos + shown.len()..];
            }
        }
    }
    assert!(
        seen >= 4,
        "only {seen} mentions of the default policy version"
    );
    Ok(())
}
