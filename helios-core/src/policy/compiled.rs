//! The compiled engine: the policy set compiled once into a regorus VM (`rvm`) program, with one
//! entry point per rule of the decision contract (`allow`, `deny`, `violation`, `warn`,
//! `policy_id`).
//!
//! The package document an evaluation needs is assembled from those rules alone: the decision
//! ([`Decision::from_document`](crate::policy::Decision::from_document)) reads nothing else, so
//! both engines decide identically. What the compiler refuses, or what the contract rules alone
//! would not reproduce (a contract key given by data or by a rule with a longer ref head), stays
//! on the interpreter: [`Compiled::new`] says why.

use std::num::NonZeroU32;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use regorus::Value;
use regorus::rvm::program::Program;
use regorus::rvm::vm::{RegoVM, VmError};
use regorus::utils::limits::ExecutionTimerConfig;

use crate::policy::Package;

/// The rules of the decision contract, in the order they are evaluated.
const CONTRACT_RULES: [&str; 5] = ["allow", "deny", "violation", "warn", "policy_id"];

/// VM instructions between two clock reads of the execution timer.
const TIMER_CHECK_INTERVAL: u32 = 1024;

/// Idle VMs kept for reuse: more than the evaluations that run at once (one per core in the
/// webhook's pool) would only hold memory.
const MAX_IDLE_VMS: usize = 32;

/// A policy set compiled for the VM; shared by every evaluation.
pub(crate) struct Compiled {
    program: Arc<Program>,
    data: Value,
    /// The contract rules the package defines, as document keys, in entry-point order.
    keys: Vec<Value>,
    timer: ExecutionTimerConfig,
    /// VMs loaded with the program and data, reused across evaluations: a VM resets its
    /// per-run state itself, so loading the program and checking the data against the rule
    /// tree happens once per VM, not once per evaluation.
    idle: Mutex<Vec<RegoVM>>,
}

/// Why an evaluation on the VM failed.
#[derive(Debug)]
pub(crate) enum RunError {
    /// The time limit ran out.
    Timeout,
    /// Any other failure, as the VM words it.
    Failed(String),
}

impl Compiled {
    /// Compiles the contract rules of `package` from a prepared engine and its data, or says
    /// why the interpreter must keep them.
    pub(crate) fn new(
        engine: &regorus::Engine,
        data: Value,
        package: &Package,
        time_limit: Duration,
    ) -> Result<Self, String> {
        let mut policy = None;
        let mut rules = Vec::new();
        for rule in CONTRACT_RULES {
            let path = package.rule(rule);
            match engine
                .clone()
                .compile_with_entrypoint(&path.as_str().into())
            {
                Ok(compiled) => {
                    policy.get_or_insert(compiled);
                    rules.push((rule, path));
                }
                // The package does not define that rule: the document has no such key.
                Err(e) if e.to_string().contains("not a valid rule path") => {}
                Err(e) => return Err(format!("{path} does not compile: {e}")),
            }
        }
        let policy = policy.ok_or("the package defines none of the contract rules")?;
        for rule in CONTRACT_RULES {
            let path = package.rule(rule);
            let nested = |key: &String| {
                key.strip_prefix(path.as_str())
                    .is_some_and(|rest| rest.starts_with(['.', '[']))
            };
            if policy.get_rules().keys().any(nested) {
                return Err(format!("{path} is defined by rules with a longer ref head"));
            }
            if data_at(&data, package, rule).is_some() {
                return Err(format!("{path} is given by data"));
            }
        }
        let entry_points: Vec<&str> = rules.iter().map(|(_, path)| path.as_str()).collect();
        let program = regorus::languages::rego::compiler::Compiler::compile_from_policy(
            &policy,
            &entry_points,
        )
        .map_err(|e| format!("the compiler refuses the policy: {e}"))?;
        let compiled = Compiled {
            program,
            data,
            keys: rules.iter().map(|(rule, _)| Value::from(*rule)).collect(),
            timer: ExecutionTimerConfig {
                limit: time_limit,
                check_interval: NonZeroU32::new(TIMER_CHECK_INTERVAL).unwrap_or(NonZeroU32::MIN),
            },
            idle: Mutex::new(Vec::new()),
        };
        // The data is checked against the rule tree once here rather than failing every run;
        // the VM that checked it is the first one reused.
        let vm = compiled
            .vm()
            .map_err(|e| format!("the data conflicts with the rules: {e}"))?;
        compiled.release(vm);
        Ok(compiled)
    }

    fn vm(&self) -> Result<RegoVM, VmError> {
        let mut vm = RegoVM::new();
        vm.load_program(self.program.clone());
        vm.set_data(self.data.clone())?;
        // The time limit bounds an evaluation, not an instruction count (the VM's default
        // caps it at 25,000 instructions, a few hundred findings).
        vm.set_max_instructions(usize::MAX);
        vm.set_execution_timer_config(Some(self.timer));
        Ok(vm)
    }

    /// An idle VM, or a new one.
    fn acquire(&self) -> Result<RegoVM, VmError> {
        let idle = self
            .idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop();
        match idle {
            Some(vm) => Ok(vm),
            None => self.vm(),
        }
    }

    /// Returns a VM to the idle ones, without its input (what its last run computed stays in
    /// its registers until its next run resets them).
    fn release(&self, mut vm: RegoVM) {
        vm.set_input(Value::Undefined);
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        if idle.len() < MAX_IDLE_VMS {
            idle.push(vm);
        }
    }

    /// Evaluates the contract rules on `input`: the package document restricted to them
    /// (undefined rules are absent, as in the interpreter's document).
    pub(crate) fn document(&self, input: Value) -> Result<Value, RunError> {
        let mut vm = self.acquire().map_err(run_error)?;
        vm.set_input(input);
        let document = self.run(&mut vm);
        // Each run starts by resetting the VM's execution state, so a VM that failed (a
        // timeout, a conflict) is as good as a fresh one.
        self.release(vm);
        document
    }

    fn run(&self, vm: &mut RegoVM) -> Result<Value, RunError> {
        let mut document = std::collections::BTreeMap::new();
        for (index, key) in self.keys.iter().enumerate() {
            let value = vm.execute_entry_point_by_index(index).map_err(run_error)?;
            if value != Value::Undefined {
                document.insert(key.clone(), value);
            }
        }
        Ok(Value::from(document))
    }
}

/// The value data gives to `data.<package>.<rule>`, if any.
fn data_at<'a>(data: &'a Value, package: &Package, rule: &str) -> Option<&'a Value> {
    let mut at = data;
    for segment in package.to_string().split('.').chain([rule]) {
        match at {
            Value::Object(map) => at = map.get(&Value::from(segment))?,
            _ => return None,
        }
    }
    Some(at)
}

fn run_error(err: VmError) -> RunError {
    match err {
        VmError::TimeLimitExceeded { .. } => RunError::Timeout,
        other => {
            let text = other.to_string();
            // Limits reported through a builtin keep their `LimitError` wording.
            if text.contains("time limit") {
                RunError::Timeout
            } else {
                RunError::Failed(text)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use crate::error::{Error, Result};
    use crate::policy::{EmbeddedEvaluator, EngineKind};

    fn input(severity: &str) -> serde_json::Value {
        json!({
            "image": {"reference": "registry.example.com/team/app:1"},
            "scan": {"status": "completed", "vulnerabilities": [{
                "id": "CVE-2024-1", "severity": severity, "status": "vulnerable",
                "package": {"name": "openssl", "version": "3.0.1"},
                "fix": {"available": true, "version": "3.0.2"}
            }]}
        })
    }

    /// Reused VMs (one after the other and from several threads at once) decide exactly as a
    /// new evaluator's first VM does.
    #[test]
    fn a_reused_vm_decides_as_a_new_one() -> Result<()> {
        let build = || EmbeddedEvaluator::builder().engine(EngineKind::Rvm).build();
        let decide = |evaluator: &EmbeddedEvaluator, severity: &str| -> Result<serde_json::Value> {
            let decision = evaluator.evaluate_json(input(severity))?;
            serde_json::to_value(decision).map_err(|e| Error::invalid("decision", e))
        };
        let severities = ["critical", "low", "medium", "high"];
        let mut fresh = Vec::new();
        for severity in severities {
            fresh.push(decide(&build()?, severity)?);
        }
        let shared = build()?;
        for _ in 0..3 {
            for (severity, expected) in severities.iter().zip(&fresh) {
                assert_eq!(&decide(&shared, severity)?, expected, "{severity}");
            }
        }
        std::thread::scope(|scope| -> Result<()> {
            let threads: Vec<_> = (0..4)
                .map(|_| {
                    scope.spawn(|| -> Result<()> {
                        for (severity, expected) in severities.iter().zip(&fresh) {
                            assert_eq!(&decide(&shared, severity)?, expected, "{severity}");
                        }
                        Ok(())
                    })
                })
                .collect();
            for thread in threads {
                thread
                    .join()
                    .map_err(|_| Error::invalid("thread", "a decision thread panicked"))??;
            }
            Ok(())
        })
    }
}
