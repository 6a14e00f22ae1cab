//! `helios`: stop vulnerable container images with one Rego policy, in CI and at admission.
//!
//! Exit codes: 0 allowed (or all tests passed), 1 denied (or a test failed), 2 could not decide
//! (bad input, policy error, unreachable service).

mod commands;
mod policy_args;
mod registry_args;

use std::process::ExitCode;

/// mimalloc instead of the system allocator: measured faster for the webhook and the CI
/// commands alike (docs/performance.md, "Allocator").
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The static musl build links faster `memcpy`, `memmove` and `memcmp` than musl's own
/// (helios-cli/musl-string).
#[cfg(all(target_env = "musl", target_arch = "x86_64"))]
use helios_musl_string as _;

use clap::{Parser, Subcommand};
use helios_core::error::Parameters;

/// Stop vulnerable container images from running: Lacework scans judged by a Rego policy.
#[derive(Debug, Parser)]
#[command(name = "helios", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Evaluate a policy on a policy input document and print the decision JSON.
    Eval(commands::eval::EvalArgs),
    /// Decide whether an image may ship: scan → policy → exit code and report (for CI).
    Gate(commands::gate::GateArgs),
    /// Print the Lacework scan of an image as JSON (requesting an on-demand scan when there is
    /// none, unless `--no-scan`).
    Scan(commands::scan::ScanArgs),
    /// Work with policies.
    #[command(subcommand)]
    Policy(PolicyCommand),
    /// Serve the Kubernetes validating admission webhook over HTTPS.
    Webhook(commands::webhook::WebhookArgs),
    /// Run one AdmissionReview (file or `-`) through the admission controller and print the
    /// response review (exit 0 when a response was produced, 2 when the input is not a review).
    Review(commands::webhook::ReviewArgs),
    /// Audit the workloads already in the cluster against today's scans: report every one the
    /// policy would now deny (exit 1 when some would be denied).
    Audit(commands::audit::AuditArgs),
}

#[derive(Debug, Subcommand)]
enum PolicyCommand {
    /// Run every `test_` rule of the given policies, like `opa test`.
    Test(commands::policy_test::TestArgs),
}

/// Exit code when Helios could not decide.
const EXIT_ERROR: u8 = 2;

/// Threads of the webhook's blocking pool: the evaluations' (at most one per core: an evaluation
/// takes its permit before its thread, and a runaway the watchdog gave up on keeps it, see
/// `EmbeddedBuilder::max_concurrent`) plus a few for standard output (decision logs), file reads
/// and DNS. Tokio's default of 512 let the pool grow whenever no thread was idle at that
/// instant, to 20–26 threads under the soak on 2 cores, each with its own allocator heap
/// (docs/reliability.md, "Soak").
fn max_blocking_threads() -> usize {
    std::thread::available_parallelism().map_or(2, usize::from) + 4
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // The webhook answers reviews on every core (multi-threaded). The other commands do one job
    // and exit: they skip starting a worker thread per core (policy evaluation runs on the
    // blocking pool either way, so a review's or an audit's images are still judged in parallel).
    let mut builder = match cli.command {
        Command::Webhook(_) => {
            let mut builder = tokio::runtime::Builder::new_multi_thread();
            builder.max_blocking_threads(max_blocking_threads());
            builder
        }
        _ => tokio::runtime::Builder::new_current_thread(),
    };
    let runtime = match builder.enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("helios: error[io]: cannot start the async runtime: {e}");
            return ExitCode::from(EXIT_ERROR);
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Eval(args) => commands::eval::run(args).await,
            Command::Gate(args) => commands::gate::run(args).await,
            Command::Scan(args) => commands::scan::run(args).await,
            Command::Policy(PolicyCommand::Test(args)) => commands::policy_test::run(args),
            Command::Webhook(args) => commands::webhook::run_webhook(args).await,
            Command::Review(args) => commands::webhook::run_review(args).await,
            Command::Audit(args) => commands::audit::run(args).await,
        }
    });
    // A runaway evaluation the policy watchdog gave up on may still be running on a blocking
    // thread; the answer is already decided, so do not wait for it.
    runtime.shutdown_background();
    match result {
        Ok(code) => ExitCode::from(code),
        Err(err) => {
            eprintln!(
                "helios: error[{}]: {}",
                err.code(),
                err.message_for(&Parameters {
                    package: "--package"
                })
            );
            ExitCode::from(EXIT_ERROR)
        }
    }
}
