//! `helios policy test`: run Rego unit tests with the engine that evaluates them.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use helios_core::Result;
use helios_core::policy::PolicySet;
use helios_core::policy::testing::{Outcome, run_tests};

/// Arguments of `helios policy test`.
#[derive(Debug, Args)]
pub struct TestArgs {
    /// Policy files or directories, tests (`*_test.rego`) included.
    #[arg(required = true, value_name = "PATH")]
    paths: Vec<PathBuf>,

    /// Parse policies as Rego v0.
    #[arg(long)]
    rego_v0: bool,

    /// Execution time limit of one test, in milliseconds.
    #[arg(long, value_name = "MS", default_value_t = 1000)]
    time_limit_ms: u64,
}

/// Prints PASS/FAIL/ERROR per test and a summary; exit 0 only when every test passed.
pub fn run(args: TestArgs) -> Result<u8> {
    let mut set = PolicySet::with_tests();
    for path in &args.paths {
        set.add_path(path)?;
    }
    let results = run_tests(
        &set,
        args.rego_v0,
        Duration::from_millis(args.time_limit_ms),
    )?;
    let mut failed = 0;
    for r in &results {
        let ms = r.duration.as_secs_f64() * 1000.0;
        match &r.outcome {
            Outcome::Pass => println!("PASS  {} ({ms:.1} ms)", r.name),
            Outcome::Fail => {
                failed += 1;
                println!("FAIL  {} ({})", r.name, r.file);
            }
            Outcome::Error(e) => {
                failed += 1;
                println!(
                    "ERROR {} ({}): {}",
                    r.name,
                    r.file,
                    e.lines().last().unwrap_or(e)
                );
            }
        }
    }
    println!("{}", "-".repeat(60));
    if results.is_empty() {
        println!("no tests found (test rules are named test_*)");
        return Ok(1);
    }
    println!("PASS: {}/{}", results.len() - failed, results.len());
    if failed > 0 {
        println!("FAIL: {failed}/{}", results.len());
        return Ok(1);
    }
    Ok(0)
}
