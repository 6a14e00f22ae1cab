//! The policy flags every deciding command shares, and the evaluator they select.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use helios_core::Result;
use helios_core::policy::{EmbeddedEvaluator, Package, PolicyEvaluator};

/// Which policy decides, and how it is evaluated.
#[derive(Debug, Args)]
pub struct PolicyArgs {
    /// A .rego file, a data file or a directory of them (repeatable). Default: the shipped
    /// default policy.
    #[arg(long = "policy", short = 'p', value_name = "PATH")]
    pub policies: Vec<PathBuf>,

    /// A JSON or YAML data document merged under `data` (repeatable).
    #[arg(long = "data", short = 'd', value_name = "FILE")]
    pub data: Vec<PathBuf>,

    /// The package whose document is the decision.
    #[arg(long, value_name = "NAME", default_value = "helios")]
    pub package: String,

    /// Parse policies as Rego v0 (pre-1.0 syntax).
    #[arg(long)]
    pub rego_v0: bool,

    /// Execution time limit of one evaluation, in milliseconds.
    #[arg(long, value_name = "MS", default_value_t = 250)]
    pub time_limit_ms: u64,
}

impl PolicyArgs {
    /// Builds the evaluator these flags describe.
    pub fn evaluator(&self) -> Result<Box<dyn PolicyEvaluator>> {
        let mut builder = EmbeddedEvaluator::builder()
            .package(Package::parse(&self.package)?)
            .rego_v0(self.rego_v0)
            .time_limit(Duration::from_millis(self.time_limit_ms));
        for path in self.policies.iter().chain(&self.data) {
            builder = builder.policy_path(path);
        }
        Ok(Box::new(builder.build()?))
    }
}
