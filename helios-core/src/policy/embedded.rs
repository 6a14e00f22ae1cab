//! The embedded backend: `regorus`, in-process.

use std::num::NonZeroU32;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use regorus::utils::limits::ExecutionTimerConfig;

use crate::error::{Error, Result};
use crate::policy::compiled::{Compiled, RunError};
use crate::policy::rego_value::input_to_rego;
use crate::policy::{Backend, Decision, Package, PolicyEvaluator, PolicyInput, PolicySet};

/// Default execution time limit of one evaluation.
pub const DEFAULT_TIME_LIMIT: Duration = Duration::from_millis(250);

/// The environment variable that picks the engine of evaluators whose builder did not
/// ([`EmbeddedBuilder::engine`]): `rvm` or `interpreter`; unset or empty, the compiled VM where
/// the compiler takes the policy and the interpreter otherwise.
pub const ENGINE_ENV: &str = "HELIOS_ENGINE";

/// The engine an [`EmbeddedEvaluator`] runs, chosen once when it is built.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EngineKind {
    /// regorus's compiled VM (`rvm`): the policy compiled once into a program with an entry
    /// point per contract rule. The default wherever the compiler takes the policy.
    Rvm,
    /// regorus's tree-walking interpreter: what the compiler refuses, or when asked for.
    Interpreter,
}

impl EngineKind {
    /// `rvm` or `interpreter`.
    pub fn as_str(self) -> &'static str {
        match self {
            EngineKind::Rvm => "rvm",
            EngineKind::Interpreter => "interpreter",
        }
    }
}

impl std::fmt::Display for EngineKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for EngineKind {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "rvm" => Ok(EngineKind::Rvm),
            "interpreter" => Ok(EngineKind::Interpreter),
            other => Err(Error::invalid(
                "engine",
                format!("{other:?} is neither `rvm` nor `interpreter`"),
            )),
        }
    }
}

/// Work units between two clock reads of regorus's execution timer: often enough to stop a
/// runaway loop within a millisecond or so, rarely enough not to show up in profiles.
const TIMER_CHECK_INTERVAL: u32 = 256;

/// Evaluates policies in-process with `regorus`.
///
/// The engine is parsed and prepared once in [`EmbeddedBuilder::build`]; each evaluation runs on a
/// clone of the prepared engine, so one evaluator serves any number of threads and tasks at once.
/// Cloning is cheap: it shares every module, and copies only the interpreter state.
#[derive(Clone)]
pub struct EmbeddedEvaluator {
    inner: Arc<Inner>,
}

struct Inner {
    runner: Runner,
    /// Why the evaluator runs the engine it runs.
    engine_reason: String,
    package: Package,
    query: String,
    version: String,
    time_limit: Duration,
    /// Threads one evaluation on the VM shares its contract rules among (1: in turn; see
    /// [`EmbeddedBuilder::parallel_rules`]).
    rule_threads: usize,
    /// Permits of the bounded blocking pool async evaluations run on (see
    /// [`EmbeddedBuilder::max_concurrent`]).
    pool: Arc<tokio::sync::Semaphore>,
}

/// What evaluates: the compiled program on the VM, or the interpreter's prepared engine.
enum Runner {
    Vm(Compiled),
    Interpreter(Box<regorus::Engine>),
}

/// Extra wall-clock time an async evaluation gets beyond its time limit before the watchdog
/// gives up on it: regorus checks its timer every [`TIMER_CHECK_INTERVAL`] work units, so a
/// well-behaved runaway stops itself within this; only a builtin that never consults the timer
/// (e.g. `numbers.range` over a huge span) needs the watchdog.
const WATCHDOG_GRACE: Duration = Duration::from_millis(50);

/// The cores this process may use: the default size of the blocking pool (one evaluation per
/// core keeps the cores busy without letting a burst of heavy evaluations queue thousands of
/// threads), and the most threads [`EmbeddedBuilder::parallel_rules`] shares rules among.
fn available_cores() -> usize {
    std::thread::available_parallelism().map_or(2, usize::from)
}

// One evaluator is shared by every task of a webhook: prove at compile time that it can be.
const _: () = {
    const fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<EmbeddedEvaluator>();
};

impl std::fmt::Debug for EmbeddedEvaluator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbeddedEvaluator")
            .field("package", &self.inner.package)
            .field("version", &self.inner.version)
            .field("time_limit", &self.inner.time_limit)
            .field("engine", &self.engine())
            .finish_non_exhaustive()
    }
}

/// Configures an [`EmbeddedEvaluator`].
#[derive(Debug, Clone)]
pub struct EmbeddedBuilder {
    set: Option<PolicySet>,
    paths: Vec<PathBuf>,
    data: Vec<serde_json::Value>,
    package: Package,
    rego_v0: bool,
    time_limit: Duration,
    max_concurrent: usize,
    parallel_rules: bool,
    engine: Option<EngineKind>,
}

impl Default for EmbeddedBuilder {
    fn default() -> Self {
        EmbeddedBuilder {
            set: None,
            paths: Vec::new(),
            data: Vec::new(),
            package: Package::default(),
            rego_v0: false,
            time_limit: DEFAULT_TIME_LIMIT,
            max_concurrent: 0,
            parallel_rules: false,
            engine: None,
        }
    }
}

impl EmbeddedBuilder {
    /// The policies and data to evaluate, already loaded. Paths and data given to the builder
    /// are added to it.
    pub fn policies(mut self, set: PolicySet) -> Self {
        self.set = Some(set);
        self
    }

    /// Adds a `.rego` file, a data file or a directory of them (see [`PolicySet::add_path`]).
    /// With no modules at all, the shipped default policy is used.
    pub fn policy_path(mut self, path: impl Into<PathBuf>) -> Self {
        self.paths.push(path.into());
        self
    }

    /// Merges a data document (an object) under `data`.
    pub fn data(mut self, data: serde_json::Value) -> Self {
        self.data.push(data);
        self
    }

    /// The package whose document is the decision (default `helios`).
    pub fn package(mut self, package: Package) -> Self {
        self.package = package;
        self
    }

    /// Parse modules as Rego v0 (pre-1.0 syntax) instead of v1.
    pub fn rego_v0(mut self, v0: bool) -> Self {
        self.rego_v0 = v0;
        self
    }

    /// The execution time limit of one evaluation (default 250 ms; zero is refused by
    /// [`EmbeddedBuilder::build`]).
    pub fn time_limit(mut self, limit: Duration) -> Self {
        self.time_limit = limit;
        self
    }

    /// The most async evaluations ([`PolicyEvaluator::evaluate`]) running at once on the
    /// blocking pool; more wait their turn, first come first served (default, or 0: the number
    /// of cores).
    pub fn max_concurrent(mut self, n: usize) -> Self {
        self.max_concurrent = n;
        self
    }

    /// Shares one evaluation's contract rules (`deny`, `warn`, …) among up to as many threads
    /// as cores, each rule run alone as in turn, so the decision is the same (default: off,
    /// the rules in turn on the evaluating thread). For one large decision on an otherwise
    /// idle machine, such as a CI step: a `helios gate` on 1,000 findings spends most of its
    /// time in `deny` and `warn`, which then run at once (docs/performance.md). A server
    /// deciding many inputs at once already keeps its cores busy and is faster without it,
    /// as is a small input (a thread costs more than it saves). The compiled engine only: the
    /// interpreter evaluates the package in one query.
    pub fn parallel_rules(mut self, on: bool) -> Self {
        self.parallel_rules = on;
        self
    }

    /// Requires an engine (default: [`ENGINE_ENV`] when set, else the compiled VM where the
    /// compiler takes the policy and the interpreter otherwise). Requiring [`EngineKind::Rvm`]
    /// makes [`EmbeddedBuilder::build`] fail on a policy the compiler refuses.
    pub fn engine(mut self, engine: EngineKind) -> Self {
        self.engine = Some(engine);
        self
    }

    /// Parses and prepares the policies, and compiles them for the VM (see
    /// [`EmbeddedEvaluator::engine`]).
    ///
    /// Fails with [`Error::PolicyParse`] (naming `file:line`) on a syntax error, with
    /// [`Error::PolicyUndefined`] when no module declares the package, and with
    /// [`Error::InvalidInput`] when the VM is required but refuses the policy.
    pub fn build(mut self) -> Result<EmbeddedEvaluator> {
        let required = match self.engine {
            Some(engine) => Some(engine),
            None => match std::env::var(ENGINE_ENV) {
                Ok(v) if !v.trim().is_empty() => Some(v.parse()?),
                _ => None,
            },
        };
        let mut set = self.set.take().unwrap_or_default();
        for path in &self.paths {
            set.add_path(path)?;
        }
        if set.modules().is_empty() {
            set.add_default_policy();
        }
        for data in std::mem::take(&mut self.data) {
            set.add_data(data)?;
        }
        check_time_limit(self.time_limit)?;
        let data = data_value(&set);

        // The shipped default policy starts from its program compiled when Helios was built:
        // nothing to parse, analyse or compile.
        let shipped = (required != Some(EngineKind::Interpreter)
            && !self.rego_v0
            && self.package == Package::default()
            && set.is_default_policy())
        .then(|| Compiled::shipped(data.clone(), &self.package, self.time_limit))
        .flatten();
        if let Some(compiled) = shipped {
            let reason = "the shipped default policy, compiled when Helios was built";
            tracing::debug!(engine = %EngineKind::Rvm, reason, package = %self.package, "embedded policy engine");
            return Ok(self.evaluator(Runner::Vm(compiled), reason.to_string(), set.digest()));
        }

        let engine = prepare(&set, data.clone(), self.rego_v0, self.time_limit)?;

        let declared = engine.get_packages().map_err(|e| Error::PolicyEval {
            message: e.to_string(),
        })?;
        let query = self.package.query();
        let has_package = declared
            .iter()
            .any(|p| *p == query || p.starts_with(&format!("{query}.")));
        if !has_package {
            return Err(Error::PolicyUndefined { package: query });
        }

        let (compiled, engine_reason) = if required == Some(EngineKind::Interpreter) {
            (None, "the interpreter was asked for".to_string())
        } else {
            match Compiled::new(&engine, data, &self.package, self.time_limit) {
                Ok(compiled) => (Some(compiled), "the policy compiled".to_string()),
                Err(why) if required == Some(EngineKind::Rvm) => {
                    return Err(Error::invalid("engine", format!("rvm: {why}")));
                }
                Err(why) => (None, why),
            }
        };
        let kind = if compiled.is_some() {
            EngineKind::Rvm
        } else {
            EngineKind::Interpreter
        };
        // At debug level when compiled or asked for (a review's log stays one line); a fallback,
        // which costs speed, at info.
        if compiled.is_some() || required.is_some() {
            tracing::debug!(engine = %kind, reason = %engine_reason, package = %self.package, "embedded policy engine");
        } else {
            tracing::info!(engine = %kind, reason = %engine_reason, package = %self.package, "embedded policy engine");
        }

        let runner = match compiled {
            Some(compiled) => Runner::Vm(compiled),
            None => Runner::Interpreter(Box::new(engine)),
        };
        Ok(self.evaluator(runner, engine_reason, set.digest()))
    }

    fn evaluator(
        self,
        runner: Runner,
        engine_reason: String,
        version: String,
    ) -> EmbeddedEvaluator {
        let query = self.package.query();
        EmbeddedEvaluator {
            inner: Arc::new(Inner {
                runner,
                engine_reason,
                package: self.package,
                query,
                version,
                time_limit: self.time_limit,
                rule_threads: if self.parallel_rules {
                    available_cores()
                } else {
                    1
                },
                pool: Arc::new(tokio::sync::Semaphore::new(if self.max_concurrent == 0 {
                    available_cores()
                } else {
                    self.max_concurrent
                })),
            }),
        }
    }
}

// regorus reads a zero limit as "no limit": refuse it rather than silently disable the guard
// against runaway policies.
fn check_time_limit(time_limit: Duration) -> Result<()> {
    if time_limit.is_zero() {
        return Err(Error::invalid(
            "time limit",
            "must be at least 1 ms (a zero limit would disable it)",
        ));
    }
    Ok(())
}

/// The set's data document as the engine's value (converted once per build: values are shared,
/// not copied, by the engine and the VM).
pub(crate) fn data_value(set: &PolicySet) -> regorus::Value {
    regorus::Value::from(serde_json::Value::Object(set.data().clone()))
}

/// Builds and prepares an engine from a set's modules and its `data` ([`data_value`]). Builtin
/// errors stay lenient (a failing builtin makes its expression undefined), as in OPA's server, so
/// both backends decide alike.
pub(crate) fn prepare(
    set: &PolicySet,
    data: regorus::Value,
    rego_v0: bool,
    time_limit: Duration,
) -> Result<regorus::Engine> {
    check_time_limit(time_limit)?;
    let mut engine = regorus::Engine::new();
    engine.set_rego_v0(rego_v0);
    for module in set.modules() {
        engine
            .add_policy(module.name.clone(), module.source.clone())
            .map_err(|e| parse_error(&module.name, &e))?;
    }
    engine
        .add_data(data)
        .map_err(|e| Error::invalid("data", e))?;
    engine.set_execution_timer_config(ExecutionTimerConfig {
        limit: time_limit,
        check_interval: NonZeroU32::new(TIMER_CHECK_INTERVAL).unwrap_or(NonZeroU32::MIN),
    });
    // Prepare (analyse, schedule, hoist) once here rather than in every clone.
    engine
        .eval_query("true".to_string(), false)
        .map_err(|e| eval_error(&e, time_limit))?;
    Ok(engine)
}

impl EmbeddedEvaluator {
    /// A builder; see [`EmbeddedBuilder`].
    pub fn builder() -> EmbeddedBuilder {
        EmbeddedBuilder::default()
    }

    /// The evaluator of the shipped default policy.
    pub fn default_policy() -> Result<Self> {
        Self::builder().build()
    }

    /// The digest of the policies and data this evaluator runs.
    pub fn version(&self) -> &str {
        &self.inner.version
    }

    /// The engine this evaluator runs, chosen once by [`EmbeddedBuilder::build`].
    pub fn engine(&self) -> EngineKind {
        match self.inner.runner {
            Runner::Vm(_) => EngineKind::Rvm,
            Runner::Interpreter(_) => EngineKind::Interpreter,
        }
    }

    /// Why it runs that engine: `the policy compiled`, that it is the shipped default policy
    /// compiled when Helios was built, that the interpreter was asked for, or what the compiler
    /// refused.
    pub fn engine_reason(&self) -> &str {
        &self.inner.engine_reason
    }

    /// Evaluates synchronously on the calling thread.
    pub fn evaluate_sync(&self, input: &PolicyInput) -> Result<Decision> {
        // Straight from the typed input to the engine's value: no serde_json tree in between,
        // and the scan's value (the bulk) built once per scan and shared.
        let input = input_to_rego(input).map_err(|e| Error::invalid("policy input", e))?;
        self.evaluate_value(input)
    }

    /// Evaluates an input given as JSON, without checking it against the input contract
    /// (for tests of hand-written policies over arbitrary inputs).
    pub fn evaluate_json(&self, input: serde_json::Value) -> Result<Decision> {
        self.evaluate_value(regorus::Value::from(input))
    }

    fn evaluate_value(&self, input: regorus::Value) -> Result<Decision> {
        let inner = &self.inner;
        let document = match &inner.runner {
            Runner::Vm(compiled) => Some(compiled.document(input, inner.rule_threads).map_err(
                |e| match e {
                    RunError::Timeout => Error::PolicyTimeout {
                        limit: inner.time_limit,
                    },
                    RunError::Failed(message) => Error::PolicyEval { message },
                },
            )?),
            Runner::Interpreter(engine) => self.interpret(engine, input)?,
        };
        Decision::from_package(
            document.as_ref(),
            &inner.package,
            inner.version.clone(),
            Backend::Embedded,
        )
    }

    /// The package document on the interpreter; `None` when undefined.
    fn interpret(
        &self,
        engine: &regorus::Engine,
        input: regorus::Value,
    ) -> Result<Option<regorus::Value>> {
        let inner = &self.inner;
        let mut engine = engine.clone();
        engine.set_input(input);
        let results = engine
            .eval_query(inner.query.clone(), false)
            .map_err(|e| eval_error(&e, inner.time_limit))?;
        Ok(results
            .result
            .into_iter()
            .next()
            .and_then(|r| r.expressions.into_iter().next())
            .map(|e| e.value)
            .filter(|v| *v != regorus::Value::Undefined))
    }
}

#[async_trait]
impl PolicyEvaluator for EmbeddedEvaluator {
    /// Runs on tokio's blocking pool, at most [`EmbeddedBuilder::max_concurrent`] at once, so a
    /// heavy evaluation never occupies an async worker (the webhook keeps answering other
    /// reviews). A watchdog gives up after the time limit (plus a small grace) even when the
    /// engine does not stop itself — regorus does not consult its timer inside builtins such as
    /// `numbers.range` — and answers [`Error::PolicyTimeout`]; the abandoned evaluation keeps
    /// its pool permit until it ends, so runaways cannot pile up beyond the pool's size.
    ///
    /// Outside a tokio runtime it runs on the calling thread, as [`Self::evaluate_sync`].
    async fn evaluate(&self, input: &PolicyInput) -> Result<Decision> {
        if tokio::runtime::Handle::try_current().is_err() {
            return self.evaluate_sync(input);
        }
        let inner = &self.inner;
        let limit = inner.time_limit;
        // Converted here, on the caller's task, so the blocking task owns everything it needs.
        let value = input_to_rego(input).map_err(|e| Error::invalid("policy input", e))?;
        // Waiting for a permit is bounded by the caller (the admission deadline), not by the
        // time limit, which measures the evaluation itself.
        let permit = inner
            .pool
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| Error::PolicyEval {
                message: "the evaluation pool is closed".into(),
            })?;
        let watchdog = tokio::time::Instant::now() + limit + WATCHDOG_GRACE;
        let this = self.clone();
        let task = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            this.evaluate_value(value)
        });
        match tokio::time::timeout_at(watchdog, task).await {
            Err(_) => Err(Error::PolicyTimeout { limit }),
            Ok(Ok(result)) => result,
            Ok(Err(join)) => Err(Error::PolicyEval {
                message: format!("the evaluation task failed: {join}"),
            }),
        }
    }

    fn backend(&self) -> Backend {
        Backend::Embedded
    }
}

// The one mapping from regorus's errors to Helios's. regorus gives structure where it has it —
// its resource limits are a typed `regorus::LimitError` in the `anyhow` chain, matched as such —
// but a parse or compile error is only an `anyhow!(String)` rendered like rustc's
// (`--> file:line:col`, the line with a caret, `error: message`): there is no span or kind to
// read, so `parse_error` reads that rendering, and the tests below pin the format so a regorus
// upgrade that changes it fails here, not in front of a user.

/// Maps a regorus parse error to `file:line` plus message (from regorus's rendered text, which
/// is all it gives; see above).
fn parse_error(module: &str, err: &anyhow::Error) -> Error {
    let text = err.to_string();
    let location = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("--> "))
        .map(|loc| match loc.rsplit_once(':') {
            Some((file_line, col)) if col.chars().all(|c| c.is_ascii_digit()) => file_line,
            _ => loc,
        })
        .unwrap_or(module)
        .to_string();
    let message = text
        .lines()
        .rev()
        .find_map(|l| l.trim().strip_prefix("error:"))
        .unwrap_or(text.trim())
        .trim()
        .to_string();
    Error::PolicyParse { location, message }
}

/// Maps a regorus evaluation error: its time limit (a typed [`regorus::LimitError`] anywhere in
/// the chain) to [`Error::PolicyTimeout`], everything else to [`Error::PolicyEval`].
fn eval_error(err: &anyhow::Error, limit: Duration) -> Error {
    let timed_out = err.chain().any(|c| {
        matches!(
            c.downcast_ref::<regorus::LimitError>(),
            Some(regorus::LimitError::TimeLimitExceeded { .. })
        )
    });
    if timed_out {
        Error::PolicyTimeout { limit }
    } else {
        Error::PolicyEval {
            message: err.to_string(),
        }
    }
}

#[cfg(test)]
mod error_mapping_tests {
    use super::*;

    #[test]
    fn parse_errors_name_file_line_and_message() {
        let mut engine = regorus::Engine::new();
        let err = engine
            .add_policy("team/bad.rego".into(), "package x\n\nallow if {\n".into())
            .err();
        let mapped = err.map(|e| parse_error("team/bad.rego", &e));
        match mapped {
            Some(Error::PolicyParse { location, message }) => {
                assert!(location.starts_with("team/bad.rego:"), "{location}");
                assert!(!location.ends_with(':'), "{location}");
                assert!(!message.is_empty() && !message.contains("-->"), "{message}");
            }
            other => panic!("expected a parse error, got {other:?}"),
        }
    }

    #[test]
    fn only_the_typed_time_limit_is_a_timeout() {
        let limit = Duration::from_millis(5);
        let typed = anyhow::Error::new(regorus::LimitError::TimeLimitExceeded {
            elapsed: Duration::from_millis(9),
            limit,
        })
        .context("while evaluating rule deny");
        assert_eq!(eval_error(&typed, limit).code(), "policy_timeout");
        // A policy's own message that happens to mention a time limit is not one.
        let text = anyhow::anyhow!("deny: the build exceeded its time limit");
        assert_eq!(eval_error(&text, limit).code(), "policy_eval");
    }
}
