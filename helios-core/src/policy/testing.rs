//! Rego unit tests (`test_` rules), run by the embedded engine like `opa test` runs them.

use std::time::{Duration, Instant};

use crate::error::Result;
use crate::policy::PolicySet;
use crate::policy::embedded::{data_value, prepare};

/// The outcome of one test rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The rule evaluated to `true`.
    Pass,
    /// The rule was undefined or not `true`.
    Fail,
    /// Evaluation failed (builtin error, conflict, time limit).
    Error(String),
}

/// One test rule and how it went.
#[derive(Debug, Clone)]
pub struct TestResult {
    /// Full rule path, e.g. `data.helios_test.test_critical_is_denied`.
    pub name: String,
    /// The module it is defined in.
    pub file: String,
    /// What happened.
    pub outcome: Outcome,
    /// How long it took.
    pub duration: Duration,
}

/// Runs every `test_` rule of the set (load it with [`PolicySet::with_tests`]).
///
/// Tests are found by their rule heads: a line that starts with `test_` (the layout `opa fmt`
/// produces). regorus has no public rule listing short of its AST export, which would cost a
/// feature and a schema walk for the same answer.
pub fn run_tests(set: &PolicySet, rego_v0: bool, time_limit: Duration) -> Result<Vec<TestResult>> {
    let engine = prepare(set, data_value(set), rego_v0, time_limit)?;
    let mut results = Vec::new();
    for module in set.modules() {
        let Some(package) = package_of(&module.source) else {
            continue;
        };
        let mut seen = std::collections::BTreeSet::new();
        for name in test_rules(&module.source) {
            if !seen.insert(name) {
                continue; // a test defined in several bodies is one rule
            }
            let path = format!("data.{package}.{name}");
            let started = Instant::now();
            let outcome = match engine.clone().eval_rule(path.clone()) {
                Ok(regorus::Value::Bool(true)) => Outcome::Pass,
                Ok(_) => Outcome::Fail,
                Err(e) => Outcome::Error(e.to_string()),
            };
            results.push(TestResult {
                name: path,
                file: module.name.clone(),
                outcome,
                duration: started.elapsed(),
            });
        }
    }
    Ok(results)
}

fn package_of(source: &str) -> Option<&str> {
    source.lines().find_map(|line| {
        let rest = line.trim_start().strip_prefix("package ")?;
        Some(rest.split(['#', ' ', '\t']).next().unwrap_or(rest).trim())
    })
}

fn test_rules(source: &str) -> impl Iterator<Item = &str> {
    source.lines().filter_map(|line| {
        if !line.starts_with("test_") {
            return None;
        }
        let end = line
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(line.len());
        Some(&line[..end])
    })
}
