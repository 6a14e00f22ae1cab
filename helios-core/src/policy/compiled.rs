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
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use regorus::Value;
use regorus::rvm::program::{DeserializationResult, Program};
use regorus::rvm::vm::{RegoVM, VmError};
use regorus::utils::limits::ExecutionTimerConfig;

use crate::policy::Package;
use crate::policy::set::DEFAULT_POLICY_SOURCE;

/// The shipped default policy (`default/helios.rego`) compiled into a VM program when Helios was
/// built, so that an evaluator of the default policy starts without parsing, analysing and
/// compiling it: a `helios gate` is a whole process, and those took 4 M of its 47 M
/// instructions (docs/performance.md). Regorus's own binary format; the test
/// `the_shipped_program_is_the_default_policy_compiled` fails when it is not what this regorus
/// compiles from the policy now, and rewrites it when run with `HELIOS_BLESS=1`. A stale file
/// is never used: [`Compiled::shipped`] compares the policy text the program carries.
const SHIPPED_PROGRAM: &[u8] = include_bytes!("default/helios.rvm");

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
            not_given_by_data(&data, package, rule)?;
        }
        let entry_points: Vec<&str> = rules.iter().map(|(_, path)| path.as_str()).collect();
        let program = regorus::languages::rego::compiler::Compiler::compile_from_policy(
            &policy,
            &entry_points,
        )
        .map_err(|e| format!("the compiler refuses the policy: {e}"))?;
        Self::from_program(program, data, package, time_limit)
    }

    /// The shipped default policy compiled when Helios was built ([`SHIPPED_PROGRAM`]), for
    /// `package` over `data`; `None` when that program is not the default policy of this build
    /// compiled by this regorus, or when the data conflicts with it (the caller then compiles,
    /// and says why it cannot).
    pub(crate) fn shipped(data: Value, package: &Package, time_limit: Duration) -> Option<Self> {
        let program = match Program::deserialize_binary(SHIPPED_PROGRAM) {
            Ok(DeserializationResult::Complete(program)) => program,
            _ => return None,
        };
        let compiled_from_default = !program.rego_v0
            && matches!(program.sources.as_slice(), [only] if only.content == DEFAULT_POLICY_SOURCE);
        if !compiled_from_default {
            return None;
        }
        for rule in CONTRACT_RULES {
            not_given_by_data(&data, package, rule).ok()?;
        }
        Self::from_program(Arc::new(program), data, package, time_limit).ok()
    }

    /// A compiled program of the contract rules of `package`, checked against `data`'s
    /// documents under the rules (its contract keys are checked by the caller).
    fn from_program(
        program: Arc<Program>,
        data: Value,
        package: &Package,
        time_limit: Duration,
    ) -> Result<Self, String> {
        // The document keys, in entry-point order (the index each run executes).
        let keys = program
            .entry_points
            .keys()
            .map(|path| {
                CONTRACT_RULES
                    .into_iter()
                    .find(|rule| package.rule(rule) == *path)
                    .map(Value::from)
                    .ok_or_else(|| format!("{path} is not a rule of the decision contract"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let compiled = Compiled {
            program,
            data,
            keys,
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
    /// (undefined rules are absent, as in the interpreter's document). With `threads` above 1,
    /// the rules are shared out among that many threads (this one and scoped helpers, each on a
    /// VM of its own), each taking the next rule not yet taken: one decision's `deny` and
    /// `warn` then run at once. Every rule runs exactly as it would alone (a run starts from
    /// an empty rule cache either way), so the document is the same.
    pub(crate) fn document(&self, input: Value, threads: usize) -> Result<Value, RunError> {
        let threads = threads.clamp(1, self.keys.len().max(1));
        let next = AtomicUsize::new(0);
        let failed = AtomicBool::new(false);
        let mut runs = std::thread::scope(|scope| {
            // Helpers (none with one thread); one that cannot be started leaves its rules to
            // the others.
            let helpers: Vec<_> = (1..threads)
                .filter_map(|_| {
                    std::thread::Builder::new()
                        .spawn_scoped(scope, || self.run(&input, &next, &failed))
                        .ok()
                })
                .collect();
            let mut runs = self.run(&input, &next, &failed);
            for helper in helpers {
                match helper.join() {
                    Ok(more) => runs.extend(more),
                    Err(_) => runs.push((
                        usize::MAX,
                        Err(RunError::Failed(
                            "a policy evaluation thread panicked".into(),
                        )),
                    )),
                }
            }
            runs
        });
        // In contract order: the first failing rule fails the evaluation, as when run in turn.
        runs.sort_unstable_by_key(|(index, _)| *index);
        let mut document = std::collections::BTreeMap::new();
        for (index, run) in runs {
            let value = run?;
            if let Some(key) = self.keys.get(index)
                && value != Value::Undefined
            {
                document.insert(key.clone(), value);
            }
        }
        Ok(Value::from(document))
    }

    /// Runs the rules not yet taken (`next`), one at a time on one VM, until none is left or a
    /// run failed (here or on another thread).
    fn run(
        &self,
        input: &Value,
        next: &AtomicUsize,
        failed: &AtomicBool,
    ) -> Vec<(usize, Result<Value, RunError>)> {
        let mut vm = match self.acquire() {
            Ok(vm) => vm,
            Err(e) => {
                failed.store(true, Ordering::Relaxed);
                return vec![(usize::MAX, Err(run_error(e)))];
            }
        };
        vm.set_input(input.clone());
        let mut runs = Vec::new();
        while !failed.load(Ordering::Relaxed) {
            let index = next.fetch_add(1, Ordering::Relaxed);
            if index >= self.keys.len() {
                break;
            }
            let run = vm.execute_entry_point_by_index(index).map_err(run_error);
            if run.is_err() {
                failed.store(true, Ordering::Relaxed);
            }
            runs.push((index, run));
        }
        // Each run starts by resetting the VM's execution state, so a VM that failed (a
        // timeout, a conflict) is as good as a fresh one.
        self.release(vm);
        runs
    }
}

/// A contract rule's value given by data would not come from the rules alone: the interpreter
/// keeps such a package.
fn not_given_by_data(data: &Value, package: &Package, rule: &str) -> Result<(), String> {
    match data_at(data, package, rule) {
        Some(_) => Err(format!("{} is given by data", package.rule(rule))),
        None => Ok(()),
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
    use std::time::Duration;

    use serde_json::json;

    use super::{Compiled, SHIPPED_PROGRAM};
    use crate::error::{Error, Result};
    use crate::policy::embedded::prepare;
    use crate::policy::{EmbeddedEvaluator, EngineKind, Package, PolicySet};

    /// The default policy compiled now, as the shipped program was.
    fn default_policy_compiled() -> Result<Compiled> {
        let mut set = PolicySet::new();
        set.add_default_policy();
        let limit = Duration::from_secs(1);
        let engine = prepare(&set, regorus::Value::new_object(), false, limit)?;
        Compiled::new(
            &engine,
            regorus::Value::new_object(),
            &Package::default(),
            limit,
        )
        .map_err(|e| Error::invalid("default policy", e))
    }

    /// `default/helios.rvm` is what this regorus compiles from `default/helios.rego` now, byte
    /// for byte; `HELIOS_BLESS=1` rewrites it (after a change of the policy or of regorus).
    #[test]
    fn the_shipped_program_is_the_default_policy_compiled() -> Result<()> {
        let bytes = default_policy_compiled()?
            .program
            .serialize_binary()
            .map_err(|e| Error::invalid("program", e))?;
        // The same policy compiles to the same bytes, or no file could be checked.
        let again = default_policy_compiled()?
            .program
            .serialize_binary()
            .map_err(|e| Error::invalid("program", e))?;
        assert!(
            bytes == again,
            "compiling the default policy twice gave two programs"
        );
        if std::env::var_os("HELIOS_BLESS").is_some() {
            let path = concat!(env!("CARGO_MANIFEST_DIR"), "/src/policy/default/helios.rvm");
            std::fs::write(path, &bytes).map_err(|e| Error::io(path, e))?;
            return Ok(());
        }
        assert!(
            bytes == SHIPPED_PROGRAM,
            "helios-core/src/policy/default/helios.rvm is stale ({} bytes, the policy compiles to \
             {}): run `HELIOS_BLESS=1 cargo test -p helios-core --lib shipped_program`",
            SHIPPED_PROGRAM.len(),
            bytes.len()
        );
        Ok(())
    }

    /// An evaluator of the default policy runs the shipped program, and decides every fixture
    /// input exactly as the policy compiled now and as the interpreter do.
    #[test]
    fn the_shipped_program_decides_as_the_policy() -> Result<()> {
        let shipped = EmbeddedEvaluator::builder()
            .engine(EngineKind::Rvm)
            .build()?;
        assert_eq!(shipped.engine(), EngineKind::Rvm);
        assert!(
            shipped.engine_reason().contains("shipped"),
            "{}",
            shipped.engine_reason()
        );
        let fresh = default_policy_compiled()?;
        let interpreter = EmbeddedEvaluator::builder()
            .engine(EngineKind::Interpreter)
            .build()?;
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/fixtures/inputs");
        let mut inputs = 0;
        for entry in std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))? {
            let path = entry.map_err(|e| Error::io(dir, e))?.path();
            let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
            let input: serde_json::Value =
                serde_json::from_str(&text).map_err(|e| Error::invalid("fixture", e))?;
            let name = path.display();
            let decision = shipped.evaluate_json(input.clone())?;
            assert_eq!(
                decision,
                interpreter.evaluate_json(input.clone())?,
                "{name}"
            );
            let value = regorus::Value::from(input);
            let document_on = |threads| {
                fresh
                    .document(value.clone(), threads)
                    .map_err(|e| Error::invalid("fresh", format!("{e:?}")))
            };
            let document = document_on(1)?;
            // The rules shared out among threads give the same document.
            assert_eq!(document, document_on(3)?, "{name}: rules on 3 threads");
            let document =
                serde_json::to_value(document).map_err(|e| Error::invalid("fresh", e))?;
            let expected = crate::policy::Decision::from_document(
                Some(&document),
                &Package::default(),
                shipped.version().to_string(),
                crate::policy::Backend::Embedded,
            )?;
            assert_eq!(decision, expected, "{name}");
            inputs += 1;
        }
        assert!(inputs >= 10, "only {inputs} fixture inputs in {dir}");
        Ok(())
    }

    /// The shipped program is not taken for anything but the default policy as shipped.
    #[test]
    fn other_policies_and_options_compile_their_own() -> Result<()> {
        let interpreter = EmbeddedEvaluator::builder()
            .engine(EngineKind::Interpreter)
            .build()?;
        assert_eq!(interpreter.engine(), EngineKind::Interpreter);
        let mut set = PolicySet::new();
        set.add_default_policy();
        set.add_module(
            "extra.rego",
            "package helios\n\ndeny contains \"x\" if input.x\n",
        );
        let extended = EmbeddedEvaluator::builder()
            .policies(set)
            .engine(EngineKind::Rvm)
            .build()?;
        assert_eq!(extended.engine_reason(), "the policy compiled");
        assert!(extended.evaluate_json(json!({"x": true}))?.violations.len() == 1);
        // Data that gives a contract rule keeps the default policy off the VM, as before.
        let given = EmbeddedEvaluator::builder()
            .data(json!({"helios": {"deny": ["given"]}}))
            .build()?;
        assert!(
            !given.engine_reason().contains("shipped"),
            "{}",
            given.engine_reason()
        );
        Ok(())
    }

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
