//! Links the `helios` binary with packed relative relocations (`-z pack-relative-relocs`, ELF
//! `DT_RELR`) when the toolchain and C library support them: GNU ld ≥ 2.38 or lld, and a loader
//! that applies them (glibc ≥ 2.36; for the static musl build, the start-up code of the musl
//! Rust bundles, ≥ 1.2.4).
//!
//! A position-independent Rust binary carries one 24-byte relocation per pointer in its
//! read-only data (≈ 50,000–62,000 here, 1.2–1.5 MB). The loader reads them all at every start,
//! which a short `helios gate` process pays in time and in resident memory; packed, they take
//! 25 KB (measured in docs/performance.md). The flag is probed by building, with this rustc for
//! this target, a small Rust program whose read-only data holds pointers, linked with the flag,
//! and running it: it must find its table as written. A toolchain without the flag, or a C
//! library whose loader would not apply packed relocations, builds as before.

use std::env;
use std::path::PathBuf;
use std::process::{Command, Stdio};

/// The probe: a table of string slices (pointers the loader must relocate) read at run time.
const PROBE: &str = r#"
static WORDS: [&str; 3] = ["packed", "relative", "relocations"];
fn main() {
    let n = std::env::args().count() + 2;
    let joined = WORDS[..n.min(3)].join(" ");
    std::process::exit(if joined == "packed relative relocations" { 0 } else { 1 });
}
"#;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    let linux = env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux")
        && matches!(
            env::var("CARGO_CFG_TARGET_ENV").as_deref(),
            Ok("gnu") | Ok("musl")
        );
    // The probe runs what it links: only when building for the machine it runs on (a Linux
    // host of the same architecture runs both the gnu and the static musl build).
    let (host, target) = (
        env::var("HOST").unwrap_or_default(),
        env::var("TARGET").unwrap_or_default(),
    );
    let native = host.contains("-linux-") && arch(&host) == arch(&target);
    if linux && native && packed_relocations_work() {
        println!("cargo:rustc-link-arg-bins=-Wl,-z,pack-relative-relocs");
    }
}

/// The CPU architecture of a target triple (`x86_64-unknown-linux-musl` → `x86_64`).
fn arch(triple: &str) -> &str {
    triple.split('-').next().unwrap_or(triple)
}

/// Whether this rustc links a program for the target with packed relocations, without a
/// linker warning, and the program runs and reads its relocated table correctly.
fn packed_relocations_work() -> bool {
    let (Some(out), Ok(target)) = (
        env::var_os("OUT_DIR").map(PathBuf::from),
        env::var("TARGET"),
    ) else {
        return false;
    };
    let source = out.join("relr-probe.rs");
    let probe = out.join("relr-probe");
    if std::fs::write(&source, PROBE).is_err() {
        return false;
    }
    let rustc = env::var("RUSTC").unwrap_or_else(|_| "rustc".to_string());
    let mut build = Command::new(rustc);
    build
        .arg(&source)
        .args(["--target", &target, "-o"])
        .arg(&probe)
        .args([
            "-C",
            "link-arg=-Wl,-z,pack-relative-relocs",
            "-C",
            "link-arg=-Wl,--fatal-warnings",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    // The C compiler driver cargo would link with, when set for the target (as for musl).
    let linker_var = format!(
        "CARGO_TARGET_{}_LINKER",
        target.to_uppercase().replace('-', "_")
    );
    println!("cargo:rerun-if-env-changed={linker_var}");
    if let Ok(linker) = env::var(&linker_var) {
        build.arg("-C").arg(format!("linker={linker}"));
    }
    let linked = build.status().is_ok_and(|s| s.success());
    linked && Command::new(&probe).status().is_ok_and(|s| s.success())
}
