//! `helios eval`: policy input in, decision JSON out.

use std::path::PathBuf;

use clap::Args;
use helios_core::Result;
use helios_core::policy::{PolicyEvaluator, PolicyInput};

use super::{read_input, to_json};
use crate::policy_args::PolicyArgs;

/// Arguments of `helios eval`.
#[derive(Debug, Args)]
pub struct EvalArgs {
    /// The policy input document (contract version 1), or `-` for standard input.
    #[arg(long, short = 'i', value_name = "FILE|-")]
    input: PathBuf,

    #[command(flatten)]
    policy: PolicyArgs,
}

/// Prints the decision; exit 0 when allowed, 1 when denied.
pub async fn run(args: EvalArgs) -> Result<u8> {
    let text = read_input(&args.input)?;
    let input = PolicyInput::from_json(&text).map_err(|e| match e {
        helios_core::Error::InvalidInput { reason, .. } => helios_core::Error::InvalidInput {
            what: match args.input.to_str() {
                Some("-") => "policy input on stdin".to_string(),
                _ => format!("policy input {}", args.input.display()),
            },
            reason,
        },
        other => other,
    })?;
    let evaluator = args.policy.one_decision_evaluator()?;
    let decision = evaluator.evaluate(&input).await?;
    println!("{}", to_json(&decision));
    // As `helios gate`: the process ends here, the system takes its memory back at exit.
    std::mem::forget((input, evaluator));
    Ok(if decision.allowed { 0 } else { 1 })
}
