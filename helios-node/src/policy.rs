//! `helios_core::policy` for Node: `evaluate`, `evaluateSync` and the `Evaluator` and
//! `PreparedInput` classes.

use std::sync::Arc;

use helios_core::Error as CoreError;
use helios_core::policy::{Decision, EmbeddedEvaluator, EvaluatorOptions, PolicyInput};
use napi::bindgen_prelude::{AsyncTask, ClassInstance, FromNapiValue, ToNapiValue, Unknown};
use napi::{Env, ScopedTask};
use napi_derive::napi;
use serde_json::Value;

use crate::error::{invalid_arg, to_js};
use crate::options::snake_case;
use helios_core::error::json_kind;

/// The options argument (`EvaluateOptions` of index.d.ts) as the core's `EvaluatorOptions`,
/// its defaults for what is absent; every mistake is the core's `invalid_input`.
pub(crate) fn evaluator_options(options: Option<Value>) -> Result<EvaluatorOptions, CoreError> {
    let options =
        EvaluatorOptions::from_value(Value::Object(snake_case(options, "policy options")?))?;
    options.validate()?;
    Ok(options)
}

/// The input must be a plain object (the input contract); arrays and scalars are bad arguments.
/// `expected` says what the argument may be, for the message.
fn check_input(input: Value, expected: &str) -> napi::Result<Value> {
    match input {
        Value::Object(_) => Ok(input),
        other => Err(invalid_arg(format!(
            "input must be {expected}, got {}",
            json_kind(&other)
        ))),
    }
}

/// The `input` argument of an evaluation: a plain object (its JSON, read into the core's input
/// when evaluated) or a [`PreparedInput`]'s input.
enum Input {
    Plain(Value),
    Prepared(Arc<PolicyInput>),
}

impl Input {
    /// A `PreparedInput` instance, else a plain object (napi-rs's JSON conversion).
    fn read(input: Unknown<'_>) -> napi::Result<Self> {
        if let Ok(prepared) = ClassInstance::<PreparedInput>::from_unknown(input) {
            return Ok(Input::Prepared(Arc::clone(&prepared.inner)));
        }
        check_input(
            Value::from_unknown(input)?,
            "an object (the policy input) or a PreparedInput",
        )
        .map(Input::Plain)
    }
}

fn decide(evaluator: &EmbeddedEvaluator, input: Input) -> Result<Decision, CoreError> {
    match input {
        Input::Plain(value) => evaluator.evaluate_sync(&PolicyInput::from_value(value)?),
        Input::Prepared(input) => evaluator.evaluate_sync(&input),
    }
}

/// The decision as JSON text, which `index.js` parses (`JSON.parse`): at 1,000 findings that is
/// a fraction of the cost of building the object property by property through N-API (see
/// docs/performance.md), with the same result for JSON data.
fn to_json(decision: &Decision) -> napi::Result<String> {
    serde_json::to_string(decision).map_err(|e| napi::Error::from_reason(e.to_string()))
}

/// Evaluates the policy on `input` without blocking the JS thread: the policies are read and
/// compiled, and the input evaluated, on the libuv thread pool.
/// CPU work only: an `opaUrl` is the core's `invalid_input` (the embedded engine decides).
/// Resolves to the decision as JSON text ([`to_json`]), which `index.js` parses.
#[napi(catch_unwind, ts_return_type = "Promise<string>")]
pub fn evaluate(
    #[napi(ts_arg_type = "PolicyInput | PreparedInput")] input: Unknown<'_>,
    options: Option<Value>,
) -> napi::Result<AsyncTask<EvaluateTask>> {
    let input = Input::read(input)?;
    // Bad options reject the promise, as every core error of an async call does.
    let job = match evaluator_options(options) {
        Ok(options) => Job::Build(Box::new(options)),
        Err(e) => Job::Failed(e),
    };
    Ok(AsyncTask::new(EvaluateTask {
        job: Some(job),
        input: Some(input),
    }))
}

/// Evaluates the policy on `input` on the calling (JS) thread; the decision as JSON text
/// ([`to_json`]), which `index.js` parses.
#[napi(catch_unwind, ts_return_type = "string")]
pub fn evaluate_sync(
    env: Env,
    #[napi(ts_arg_type = "PolicyInput | PreparedInput")] input: Unknown<'_>,
    options: Option<Value>,
) -> napi::Result<String> {
    let input = Input::read(input)?;
    let evaluator = evaluator_options(options)
        .and_then(|o| o.build_embedded())
        .map_err(|e| to_js(&env, &e))?;
    let decision = decide(&evaluator, input).map_err(|e| to_js(&env, &e))?;
    to_json(&decision)
}

/// What an [`EvaluateTask`] starts from.
enum Job {
    /// Build an evaluator first (one-shot `evaluate`).
    Build(Box<EvaluatorOptions>),
    /// Use a prepared evaluator (`Evaluator#evaluate`).
    Ready(EmbeddedEvaluator),
    /// The core refused the options; reject the promise with its error.
    Failed(CoreError),
}

/// One evaluation on the libuv thread pool.
pub struct EvaluateTask {
    job: Option<Job>,
    input: Option<Input>,
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
                Job::Build(options) => options.build_embedded()?,
                Job::Ready(e) => e,
                Job::Failed(e) => return Err(e),
            };
            decide(&evaluator, input)
        }))
        .map_err(|_| napi::Error::from_reason("helios: internal error (panic) during evaluation"))
    }

    fn resolve(&mut self, env: &'task Env, output: Self::Output) -> napi::Result<Self::JsValue> {
        match output {
            Ok(decision) => to_json(&decision)?.into_unknown(env),
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
    pub fn new(env: Env, options: Option<Value>) -> napi::Result<Self> {
        let inner = evaluator_options(options)
            .and_then(|o| o.build_embedded())
            .map_err(|e| to_js(&env, &e))?;
        Ok(Evaluator { inner })
    }

    /// `sha256:` digest of the policy sources and data (the decision's `policy.version`).
    #[napi(getter)]
    pub fn version(&self) -> String {
        self.inner.version().to_string()
    }

    /// Evaluates `input` on the libuv thread pool; resolves to the decision as JSON text.
    #[napi(catch_unwind, ts_return_type = "Promise<string>")]
    pub fn evaluate(
        &self,
        #[napi(ts_arg_type = "PolicyInput | PreparedInput")] input: Unknown<'_>,
    ) -> napi::Result<AsyncTask<EvaluateTask>> {
        let input = Input::read(input)?;
        Ok(AsyncTask::new(EvaluateTask {
            job: Some(Job::Ready(self.inner.clone())),
            input: Some(input),
        }))
    }

    /// Evaluates `input` on the calling (JS) thread; the decision as JSON text.
    #[napi(catch_unwind, ts_return_type = "string")]
    pub fn evaluate_sync(
        &self,
        env: Env,
        #[napi(ts_arg_type = "PolicyInput | PreparedInput")] input: Unknown<'_>,
    ) -> napi::Result<String> {
        let input = Input::read(input)?;
        let decision = decide(&self.inner, input).map_err(|e| to_js(&env, &e))?;
        to_json(&decision)
    }
}

/// A policy input read and checked once, to evaluate any number of times with any evaluator.
///
/// Holds the core's `PolicyInput`, a snapshot of the object it was made from (changing the
/// object later changes nothing). Its scan is converted into the engine's value on the first
/// evaluation and shared by the later ones.
#[napi]
pub struct PreparedInput {
    inner: Arc<PolicyInput>,
}

#[napi]
impl PreparedInput {
    /// Reads and checks `input` as an evaluation would: `InvalidArg` for what napi-rs cannot
    /// convert or a non-object, the core's `invalid_input` for what breaks the input contract.
    #[napi(constructor, catch_unwind)]
    pub fn new(env: Env, #[napi(ts_arg_type = "PolicyInput")] input: Value) -> napi::Result<Self> {
        let input = PolicyInput::from_value(check_input(input, "an object (the policy input)")?)
            .map_err(|e| to_js(&env, &e))?;
        Ok(PreparedInput {
            inner: Arc::new(input),
        })
    }

    /// Reads and checks the JSON text of an input (a file's content, or `JSON.stringify`'s
    /// output, which `index.js` hands over for plain objects): the core's `invalid_input` for
    /// text that is not JSON or breaks the input contract.
    #[napi(factory, catch_unwind)]
    pub fn from_json(env: Env, text: String) -> napi::Result<Self> {
        let input = PolicyInput::from_json(&text).map_err(|e| to_js(&env, &e))?;
        Ok(PreparedInput {
            inner: Arc::new(input),
        })
    }
}
