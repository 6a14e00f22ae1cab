//! Links the `helios` binary with packed relative relocations (`-z pack-relative-relocs`, ELF
//! `DT_RELR`) when the toolchain and C library support them (GNU ld ≥ 2.38 or lld, glibc ≥ 2.36).
//!
//! A position-independent Rust binary carries one 24-byte relocation per pointer in its
//! read-only data (≈ 62,000 here, 1.5 MB). The loader reads them all at every start, which a
//! short `helios gate` process pays in time and in resident memory; packed, they take 25 KB
//! (measured in docs/performance.md: peak RSS −2.7 MiB). The flag is probed by linking and
//! running an empty C program with it, so a toolchain without it builds as before.

use std::env;
use std::path::PathBuf;
use std::process::{Command, Stdio};

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=CC");
    let linux_gnu = env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux")
        && env::var("CARGO_CFG_TARGET_ENV").as_deref() == Ok("gnu");
    // The probe runs what it links: only when building for the machine it runs on.
    let native = env::var("HOST").ok() == env::var("TARGET").ok();
    if linux_gnu && native && packed_relocations_work() {
        println!("cargo:rustc-link-arg-bins=-Wl,-z,pack-relative-relocs");
    }
}

/// Whether the C compiler driver rustc links with (`cc`, or `$CC`) links a program with packed
/// relocations without a warning, and the C library's loader runs it.
fn packed_relocations_work() -> bool {
    let Some(out) = env::var_os("OUT_DIR").map(PathBuf::from) else {
        return false;
    };
    let probe = out.join("relr-probe");
    let cc = env::var("CC").unwrap_or_else(|_| "cc".to_string());
    let linked = Command::new(cc)
        .args(["-x", "c", "-", "-o"])
        .arg(&probe)
        .args(["-Wl,-z,pack-relative-relocs", "-Wl,--fatal-warnings"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .and_then(|mut child| {
            if let Some(mut stdin) = child.stdin.take() {
                use std::io::Write;
                stdin.write_all(b"int main(void) { return 0; }\n")?;
            }
            child.wait()
        })
        .is_ok_and(|status| status.success());
    linked && Command::new(&probe).status().is_ok_and(|s| s.success())
}
