//! `helios_core::policy` for Python: the `Evaluator` and `PreparedInput` classes and the
//! one-shot `evaluate`.

use std::borrow::Cow;
use std::path::PathBuf;

use helios_core::policy::{EmbeddedEvaluator, EvaluatorOptions, PolicyInput};
use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::{PyList, PyString, PyTuple};

use crate::convert::{object_to_json, object_to_json_or, type_name};
use crate::error::to_py;

/// A policy parsed and prepared once, to evaluate any number of inputs.
///
/// Wraps `helios_core::policy::EmbeddedEvaluator`; frozen and thread-safe, so one instance may
/// be shared by threads (evaluation releases the GIL).
#[pyclass(frozen, module = "helios", name = "Evaluator")]
pub struct Evaluator {
    pub(crate) inner: EmbeddedEvaluator,
    package: String,
}

#[pymethods]
impl Evaluator {
    /// Loads and prepares the policies (the shipped default policy when `policy` is None).
    #[new]
    #[pyo3(signature = (policy=None, *, data=None, package=None, rego_v0=false, time_limit_ms=None, parallel_rules=false))]
    pub(crate) fn new(
        py: Python<'_>,
        policy: Option<&Bound<'_, PyAny>>,
        data: Option<&Bound<'_, PyAny>>,
        package: Option<String>,
        rego_v0: bool,
        time_limit_ms: Option<u64>,
        parallel_rules: bool,
    ) -> PyResult<Self> {
        let options = EvaluatorOptions {
            parallel_rules,
            ..options(policy, data, package, rego_v0, time_limit_ms)?
        };
        // Reading and compiling policies touches no Python object: let other threads run.
        let inner = py
            .detach(|| options.build_embedded())
            .map_err(|e| to_py(py, &e))?;
        // Built, so the package parsed: keep its normal form (`data.helios` → `helios`).
        let package = helios_core::policy::Package::parse(&options.package)
            .map(|p| p.to_string())
            .unwrap_or(options.package);
        Ok(Evaluator { inner, package })
    }

    /// Evaluates the policy on one input (a dict following the input contract, or a
    /// `PreparedInput`) and returns the decision as a dict.
    fn evaluate<'py>(&self, input: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
        evaluate_with(&self.inner, input)
    }

    /// `sha256:` digest of the policy sources and data (the decision's `policy.version`).
    #[getter]
    fn version(&self) -> &str {
        self.inner.version()
    }

    /// The package whose document is the decision, e.g. `helios`.
    #[getter]
    fn package(&self) -> &str {
        &self.package
    }

    fn __repr__(&self) -> String {
        format!(
            "Evaluator(package={:?}, version={:?})",
            self.package,
            self.inner.version()
        )
    }
}

/// Evaluates `input` once: builds an `Evaluator` with the same arguments and runs it.
#[pyfunction]
#[pyo3(signature = (input, policy=None, *, data=None, package=None, rego_v0=false, time_limit_ms=None, parallel_rules=false))]
pub fn evaluate<'py>(
    input: &Bound<'py, PyAny>,
    policy: Option<&Bound<'py, PyAny>>,
    data: Option<&Bound<'py, PyAny>>,
    package: Option<String>,
    rego_v0: bool,
    time_limit_ms: Option<u64>,
    parallel_rules: bool,
) -> PyResult<Bound<'py, PyAny>> {
    let py = input.py();
    // Check the input before paying for the policy, so a bad call fails fast.
    let input = Input::read(input)?;
    let evaluator = Evaluator::new(
        py,
        policy,
        data,
        package,
        rego_v0,
        time_limit_ms,
        parallel_rules,
    )?;
    input.decide(py, &evaluator.inner)
}

/// A policy input read and checked once, to evaluate any number of times.
///
/// Holds the core's `PolicyInput`, a snapshot of the dict it was made from (changing the dict
/// later changes nothing). Its scan is converted into the engine's value on the first
/// evaluation and shared by the later ones, with any evaluator. Frozen and thread-safe.
#[pyclass(frozen, module = "helios", name = "PreparedInput")]
pub struct PreparedInput {
    inner: PolicyInput,
}

#[pymethods]
impl PreparedInput {
    /// Reads and checks `input` (a dict following the input contract) as `evaluate` would.
    #[new]
    fn new(input: &Bound<'_, PyAny>) -> PyResult<Self> {
        Ok(PreparedInput {
            inner: read_input(input, "a dict")?,
        })
    }

    /// Reads and checks an input's JSON text (e.g. a file's content) without building a dict
    /// first: `InvalidInputError` for text that is not JSON or breaks the input contract.
    #[staticmethod]
    fn from_json(py: Python<'_>, text: &str) -> PyResult<Self> {
        // Parsing touches no Python object: let other threads run.
        let inner = py
            .detach(|| PolicyInput::from_json(text))
            .map_err(|e| to_py(py, &e))?;
        Ok(PreparedInput { inner })
    }

    fn __repr__(&self) -> String {
        format!("PreparedInput(image={:?})", self.inner.image.reference)
    }
}

/// The `input` argument of an evaluation: a `PreparedInput`'s input (borrowed), or a dict read
/// into the core's input now.
struct Input<'a>(Cow<'a, PolicyInput>);

impl<'a> Input<'a> {
    fn read(input: &'a Bound<'_, PyAny>) -> PyResult<Self> {
        Ok(Input(match input.cast::<PreparedInput>() {
            Ok(prepared) => Cow::Borrowed(&prepared.get().inner),
            Err(_) => Cow::Owned(read_input(input, "a dict or a PreparedInput")?),
        }))
    }

    /// Evaluates with the GIL released; the decision as a dict.
    fn decide<'py>(
        &self,
        py: Python<'py>,
        evaluator: &EmbeddedEvaluator,
    ) -> PyResult<Bound<'py, PyAny>> {
        let decision = py
            .detach(|| evaluator.evaluate_sync(&self.0))
            .map_err(|e| to_py(py, &e))?;
        Ok(pythonize::pythonize(py, &decision)?)
    }
}

/// A dict → the core's `PolicyInput`, checked against the input contract; anything else is a
/// `TypeError` saying `input` must be `expected`.
fn read_input(input: &Bound<'_, PyAny>, expected: &str) -> PyResult<PolicyInput> {
    let value = object_to_json_or(input, "input", expected)?;
    PolicyInput::from_value(value).map_err(|e| to_py(input.py(), &e))
}

/// The keyword arguments as the core's options (a thin field copy: pyo3 has already checked
/// the types; the core checks the values). `None` keeps the core's default.
pub(crate) fn options(
    policy: Option<&Bound<'_, PyAny>>,
    data: Option<&Bound<'_, PyAny>>,
    package: Option<String>,
    rego_v0: bool,
    time_limit_ms: Option<u64>,
) -> PyResult<EvaluatorOptions> {
    let defaults = EvaluatorOptions::default();
    Ok(EvaluatorOptions {
        paths: match policy {
            Some(p) if !p.is_none() => policy_paths(p)?,
            _ => Vec::new(),
        },
        data: match data {
            Some(d) if !d.is_none() => Some(object_to_json(d, "data")?),
            _ => None,
        },
        package: package.unwrap_or(defaults.package),
        rego_v0,
        time_limit_ms: time_limit_ms.unwrap_or(defaults.time_limit_ms),
        ..defaults
    })
}

fn evaluate_with<'py>(
    evaluator: &EmbeddedEvaluator,
    input: &Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyAny>> {
    Input::read(input)?.decide(input.py(), evaluator)
}

/// `str | os.PathLike | list/tuple of them` → paths. A bare `str` is one path, never a
/// sequence of one-letter paths.
fn policy_paths(obj: &Bound<'_, PyAny>) -> PyResult<Vec<PathBuf>> {
    let one = |item: &Bound<'_, PyAny>| -> PyResult<PathBuf> {
        item.extract::<PathBuf>().map_err(|_| {
            PyTypeError::new_err(format!(
                "policy must be a path (str or os.PathLike) or a list of paths, found {}",
                type_name(item)
            ))
        })
    };
    if obj.is_instance_of::<PyString>() {
        return Ok(vec![one(obj)?]);
    }
    if obj.is_instance_of::<PyList>() || obj.is_instance_of::<PyTuple>() {
        return obj.try_iter()?.map(|item| one(&item?)).collect();
    }
    Ok(vec![one(obj)?])
}
