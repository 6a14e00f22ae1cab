//! `helios_core::policy` for Node: `evaluate`, `evaluateSync` and the `Evaluator` class.

use std::time::Duration;

use helios_core::Error as CoreError;
use helios_core::policy::{Decision, EmbeddedEvaluator, Package, PolicyInput};
use napi::bindgen_prelude::{AsyncTask, Either, FromNapiValue, ToNapiValue, Unknown};
use napi::{Env, ScopedTask, ValueType};
use napi_derive::napi;
use serde_json::Value;

use crate::error::{invalid_arg, to_js};

/// Options of `evaluate`, `evaluateSync` and `new Evaluator()`.
#[napi(object)]
#[derive(Default)]
pub struct EvaluateOptions {
    /// A `.rego` file, a data file or a directory, or a list of them; none means the shipped
    /// default policy.
    pub policy: Option<Either<String, Vec<String>>>,
    /// A data document (an object) merged under `data`.
    pub data: Option<Value>,
    /// The package whose document is the decision (default `helios`).
    pub package: Option<String>,
    /// Parse modules as Rego v0 (pre-1.0 syntax).
    pub rego_v0: Option<bool>,
    /// Execution time limit of one evaluation in milliseconds (default 250).
    pub time_limit_ms: Option<f64>,
}

/// Reads the options argument: absent, `undefined` or `null` mean the defaults; anything but an
/// object is a bad argument (napi-rs alone would read a string as an object with no fields).
fn read_options(options: Option<Unknown<'_>>) -> napi::Result<EvaluateOptions> {
    let Some(options) = options else {
        return Ok(EvaluateOptions::default());
    };
    match options.get_type()? {
        ValueType::Undefined | ValueType::Null => Ok(EvaluateOptions::default()),
        ValueType::Object => EvaluateOptions::from_unknown(options),
        other => Err(invalid_arg(format!(
            "options must be an object, got {other:?}"
        ))),
    }
}

/// The core builder for `options`, checked but not yet built (building reads and compiles
/// policies, which the async path does off the JS thread).
fn builder(options: Option<Unknown<'_>>) -> napi::Result<Result<BuildPlan, CoreError>> {
    plan(read_options(options)?)
}

/// The core builder for options already read (shared with `gate`).
pub(crate) fn plan(options: EvaluateOptions) -> napi::Result<Result<BuildPlan, CoreError>> {
    let time_limit = match options.time_limit_ms {
        None => None,
        Some(ms) if ms >= 0.0 => match Duration::try_from_secs_f64(ms / 1000.0) {
            Ok(limit) => Some(limit),
            Err(_) => {
                return Err(invalid_arg(format!(
                    "timeLimitMs must be a finite number of milliseconds, got {ms}"
                )));
            }
        },
        Some(ms) => {
            return Err(invalid_arg(format!(
                "timeLimitMs must be a non-negative number of milliseconds, got {ms}"
            )));
        }
    };
    let package = match Package::parse(options.package.as_deref().unwrap_or("helios")) {
        Ok(p) => p,
        Err(e) => return Ok(Err(e)),
    };
    let mut b = EmbeddedEvaluator::builder()
        .package(package)
        .rego_v0(options.rego_v0.unwrap_or(false));
    let paths = match options.policy {
        None => Vec::new(),
        Some(Either::A(one)) => vec![one],
        Some(Either::B(many)) => many,
    };
    for path in paths {
        b = b.policy_path(path);
    }
    match options.data {
        None | Some(Value::Null) => {}
        Some(data @ Value::Object(_)) => b = b.data(data),
        Some(_) => return Err(invalid_arg("data must be an object (the data document)")),
    }
    if let Some(limit) = time_limit {
        b = b.time_limit(limit);
    }
    Ok(Ok(BuildPlan(b)))
}

/// A checked builder, ready to read and compile the policies.
pub(crate) struct BuildPlan(pub(crate) helios_core::policy::EmbeddedBuilder);

/// The input must be a plain object (the input contract); arrays and scalars are bad arguments.
fn check_input(input: Value) -> napi::Result<Value> {
    match input {
        Value::Object(_) => Ok(input),
        other => Err(invalid_arg(format!(
            "input must be an object (the policy input), got {}",
            match other {
                Value::Null => "null",
                Value::Bool(_) => "a boolean",
                Value::Number(_) => "a number",
                Value::String(_) => "a string",
                Value::Array(_) => "an array",
                Value::Object(_) => "an object",
            }
        ))),
    }
}

fn decide(evaluator: &EmbeddedEvaluator, input: Value) -> Result<Decision, CoreError> {
    let input = PolicyInput::from_value(input)?;
    evaluator.evaluate_sync(&input)
}

fn to_value(decision: &Decision) -> napi::Result<Value> {
    serde_json::to_value(decision).map_err(|e| napi::Error::from_reason(e.to_string()))
}

/// Evaluates the policy on `input` without blocking the JS thread: the policies are read and
/// compiled, and the input evaluated, on the libuv thread pool.
#[napi(catch_unwind, ts_return_type = "Promise<Decision>")]
pub fn evaluate(
    input: Value,
    options: Option<Unknown<'_>>,
) -> napi::Result<AsyncTask<EvaluateTask>> {
    let input = check_input(input)?;
    let job = match builder(options)? {
        Ok(plan) => Job::Build(plan.0),
        Err(e) => Job::Failed(e),
    };
    Ok(AsyncTask::new(EvaluateTask {
        job: Some(job),
        input: Some(input),
    }))
}

/// Evaluates the policy on `input` on the calling (JS) thread.
#[napi(catch_unwind, ts_return_type = "Decision")]
pub fn evaluate_sync(env: Env, input: Value, options: Option<Unknown<'_>>) -> napi::Result<Value> {
    let input = check_input(input)?;
    let plan = builder(options)?.map_err(|e| to_js(&env, &e))?;
    let evaluator = plan.0.build().map_err(|e| to_js(&env, &e))?;
    let decision = decide(&evaluator, input).map_err(|e| to_js(&env, &e))?;
    to_value(&decision)
}

/// What an [`EvaluateTask`] starts from.
enum Job {
    /// Build an evaluator first (one-shot `evaluate`).
    Build(helios_core::policy::EmbeddedBuilder),
    /// Use a prepared evaluator (`Evaluator#evaluate`).
    Ready(EmbeddedEvaluator),
    /// The options were already rejected by the core; reject the promise with that error.
    Failed(CoreError),
}

/// One evaluation on the libuv thread pool.
pub struct EvaluateTask {
    job: Option<Job>,
    input: Option<Value>,
}

impl<'task> ScopedTask<'task> for EvaluateTask {
    // The core's error travels to `resolve` as a value: only there, on the JS thread, can it
    // become a JS error object carrying its string code.
    type Output = Result<Decision, CoreError>;
    type JsValue = Unknown<'task>;

    fn compute(&mut self) -> napi::Result<Self::Output> {
        let (Some(job), Some(input)) = (self.job.take(), self.input.take()) else {
            return Err(napi::Error::from_reason("evaluation task ran twice"));
        };
        // This runs on a libuv worker, outside napi-rs's `catch_unwind`: a panic here would
        // abort the process, so it becomes a rejected promise instead.
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || {
            let evaluator = match job {
                Job::Build(builder) => builder.build()?,
                Job::Ready(e) => e,
                Job::Failed(e) => return Err(e),
            };
            decide(&evaluator, input)
        }))
        .map_err(|_| napi::Error::from_reason("helios: internal error (panic) during evaluation"))
    }

    fn resolve(&mut self, env: &'task Env, output: Self::Output) -> napi::Result<Self::JsValue> {
        match output {
            Ok(decision) => to_value(&decision)?.into_unknown(env),
            Err(e) => Err(to_js(env, &e)),
        }
    }
}

/// A policy parsed and prepared once, to evaluate any number of inputs.
#[napi]
pub struct Evaluator {
    inner: EmbeddedEvaluator,
}

#[napi]
impl Evaluator {
    /// Loads and prepares the policies (the shipped default policy when `policy` is absent).
    /// Runs on the calling thread.
    #[napi(constructor, catch_unwind)]
    pub fn new(env: Env, options: Option<Unknown<'_>>) -> napi::Result<Self> {
        let plan = builder(options)?.map_err(|e| to_js(&env, &e))?;
        let inner = plan.0.build().map_err(|e| to_js(&env, &e))?;
        Ok(Evaluator { inner })
    }

    /// `sha256:` digest of the policy sources and data (the decision's `policy.version`).
    #[napi(getter)]
    pub fn version(&self) -> String {
        self.inner.version().to_string()
    }

    /// Evaluates `input` on the libuv thread pool.
    #[napi(catch_unwind, ts_return_type = "Promise<Decision>")]
    pub fn evaluate(&self, input: Value) -> napi::Result<AsyncTask<EvaluateTask>> {
        let input = check_input(input)?;
        Ok(AsyncTask::new(EvaluateTask {
            job: Some(Job::Ready(self.inner.clone())),
            input: Some(input),
        }))
    }

    /// Evaluates `input` on the calling (JS) thread.
    #[napi(catch_unwind, ts_return_type = "Decision")]
    pub fn evaluate_sync(&self, env: Env, input: Value) -> napi::Result<Value> {
        let input = check_input(input)?;
        let decision = decide(&self.inner, input).map_err(|e| to_js(&env, &e))?;
        to_value(&decision)
    }
}
