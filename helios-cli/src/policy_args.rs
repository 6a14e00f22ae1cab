//! The policy flags every deciding command shares, and the evaluator they select.

use std::path::PathBuf;

use clap::Args;
use helios_core::Result;
use helios_core::policy::{
    DEFAULT_OPA_TIMEOUT_MS, DEFAULT_PACKAGE, DEFAULT_TIME_LIMIT_MS, EngineKind, Evaluator,
    EvaluatorOptions,
};
use helios_core::scan::lacework::Secret;

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
    #[arg(long, value_name = "NAME", default_value = DEFAULT_PACKAGE)]
    pub package: String,

    /// Parse policies as Rego v0 (pre-1.0 syntax).
    #[arg(long)]
    pub rego_v0: bool,

    /// Execution time limit of one evaluation, in milliseconds.
    #[arg(long, value_name = "MS", default_value_t = DEFAULT_TIME_LIMIT_MS)]
    pub time_limit_ms: u64,

    /// Decide on this OPA server (its Data API at `URL/v1/data/<package>`) instead of
    /// in-process; the decision's `backend` is then `opa`. The policy lives on the server, so
    /// `--policy`, `--data` and `--rego-v0` do not apply.
    #[arg(long, value_name = "URL", conflicts_with_all = ["policies", "data", "rego_v0"])]
    pub opa_url: Option<String>,

    /// Bearer token for an OPA run with `--authentication=token` (only used with `--opa-url`, so
    /// an exported variable does not disturb in-process runs).
    #[arg(
        long,
        value_name = "TOKEN",
        env = "HELIOS_OPA_TOKEN",
        hide_env_values = true
    )]
    pub opa_token: Option<OpaToken>,

    /// PEM bundle of the CA that signed the OPA server's certificate (besides the built-in roots).
    #[arg(long, value_name = "FILE", requires = "opa_url")]
    pub opa_ca: Option<PathBuf>,

    /// Time limit of one request to OPA, connecting included, in milliseconds.
    #[arg(
        long,
        value_name = "MS",
        default_value_t = DEFAULT_OPA_TIMEOUT_MS,
        requires = "opa_url"
    )]
    pub opa_timeout_ms: u64,

    /// The embedded engine: `rvm` (regorus's compiled VM, the default wherever the compiler
    /// takes the policy) or `interpreter`. Default: `HELIOS_ENGINE` when set, else the VM with
    /// the interpreter for what the compiler refuses.
    #[arg(long, value_name = "ENGINE", conflicts_with = "opa_url")]
    pub engine: Option<EngineKind>,
}

impl PolicyArgs {
    /// The core's options these flags describe (data files join the policy paths).
    pub fn options(&self) -> EvaluatorOptions {
        EvaluatorOptions {
            paths: self.policies.iter().chain(&self.data).cloned().collect(),
            data: None,
            package: self.package.clone(),
            rego_v0: self.rego_v0,
            time_limit_ms: self.time_limit_ms,
            opa_url: self.opa_url.clone(),
            // The token only applies with `--opa-url`, so an exported variable does not
            // disturb in-process runs.
            opa_token: self
                .opa_url
                .as_ref()
                .and(self.opa_token.as_ref())
                .map(|t| Secret::new(t.0.as_str())),
            opa_ca: self.opa_ca.clone(),
            opa_timeout_ms: self.opa_timeout_ms,
            engine: self.engine,
            parallel_rules: false,
        }
    }

    /// Builds the evaluator these flags describe for a command that makes one decision and
    /// exits (`gate`, `eval`): its contract rules run on the idle cores at once
    /// ([`EvaluatorOptions::parallel_rules`]).
    pub fn one_decision_evaluator(&self) -> Result<Evaluator> {
        EvaluatorOptions {
            parallel_rules: true,
            ..self.options()
        }
        .build()
    }
}

/// An OPA bearer token: `Debug` never shows it (the flags derive `Debug`).
#[derive(Clone)]
pub struct OpaToken(String);

impl std::fmt::Debug for OpaToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("OpaToken(<redacted>)")
    }
}

impl std::str::FromStr for OpaToken {
    type Err = std::convert::Infallible;

    fn from_str(s: &str) -> std::result::Result<Self, Self::Err> {
        Ok(OpaToken(s.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        policy: PolicyArgs,
    }

    #[test]
    fn the_opa_token_never_prints() {
        let cli = Cli::try_parse_from([
            "helios",
            "--opa-url",
            "http://127.0.0.1:8181",
            "--opa-token",
            "cli-opa-t0ken",
        ]);
        let printed = format!("{cli:?}");
        assert!(printed.contains("OpaToken(<redacted>)"), "{printed}");
        assert!(!printed.contains("cli-opa-t0ken"), "{printed}");
    }
}
