//! Python values ↔ JSON values.
//!
//! Decisions go to Python through `pythonize` (a serde serializer). Inputs and data come in
//! through the small converter below instead of `pythonize::depythonize`, which recurses without
//! a limit: a self-referencing dict would overflow the stack and kill the interpreter. This one
//! stops at [`MAX_DEPTH`] and names the path of any value JSON cannot hold.

use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyDict, PyFloat, PyInt, PyList, PyString, PyTuple};
use serde_json::{Map, Number, Value};

use helios_core::Error;

/// Deepest nesting accepted. Real inputs are 6 levels deep; this only stops cycles and abuse.
pub const MAX_DEPTH: usize = 128;

/// Why a value could not be converted.
pub enum ConvertError {
    /// A value of a type JSON has no form for (a set, bytes, a datetime, ...): `TypeError`.
    Type(String),
    /// A value JSON cannot hold (NaN, a huge int, nesting too deep): `InvalidInputError`.
    Value(String),
}

impl ConvertError {
    /// The Python exception for this failure while reading `what` (e.g. `policy input`).
    pub fn into_py(self, py: Python<'_>, what: &str) -> PyErr {
        match self {
            ConvertError::Type(msg) => PyTypeError::new_err(format!("{what}: {msg}")),
            ConvertError::Value(reason) => crate::error::to_py(
                py,
                &Error::InvalidInput {
                    what: what.to_string(),
                    reason,
                },
            ),
        }
    }
}

/// Converts a `dict` (a JSON object) to a JSON value; anything else is a `TypeError`.
pub fn object_to_json(obj: &Bound<'_, PyAny>, what: &str) -> PyResult<Value> {
    object_to_json_or(obj, what, "a dict")
}

/// [`object_to_json`], its `TypeError` for a non-dict saying `what` must be `expected` (e.g. `a
/// dict or a PreparedInput`).
pub fn object_to_json_or(obj: &Bound<'_, PyAny>, what: &str, expected: &str) -> PyResult<Value> {
    if !obj.is_instance_of::<PyDict>() {
        return Err(PyTypeError::new_err(format!(
            "{what} must be {expected}, not {}",
            type_name(obj)
        )));
    }
    to_json(obj, 0).map_err(|e| e.located().into_py(obj.py(), what))
}

/// A step of the path to a value: a dict key or a list index.
enum Step {
    Key(String),
    Index(usize),
}

/// A conversion failure on its way up: the path is collected only when something fails (the
/// steps pushed innermost first), so converting a valid input formats no path at all.
struct Failure {
    steps: Vec<Step>,
    /// What went wrong, its message without the location.
    error: ConvertError,
}

impl Failure {
    fn new(error: ConvertError) -> Self {
        Failure {
            steps: Vec::new(),
            error,
        }
    }

    fn at(mut self, step: Step) -> Self {
        self.steps.push(step);
        self
    }

    /// The error, its message prefixed with the JSONPath-like location
    /// (`$.scan.vulnerabilities[3]: ...`).
    fn located(self) -> ConvertError {
        let mut path = String::from("$");
        for step in self.steps.iter().rev() {
            match step {
                Step::Key(key) => {
                    path.push('.');
                    path.push_str(key);
                }
                Step::Index(i) => path.push_str(&format!("[{i}]")),
            }
        }
        match self.error {
            ConvertError::Type(msg) => ConvertError::Type(format!("{path}: {msg}")),
            ConvertError::Value(msg) => ConvertError::Value(format!("{path}: {msg}")),
        }
    }
}

fn to_json(obj: &Bound<'_, PyAny>, depth: usize) -> Result<Value, Failure> {
    let type_error = |msg: String| Failure::new(ConvertError::Type(msg));
    let value_error = |msg: String| Failure::new(ConvertError::Value(msg));
    if depth > MAX_DEPTH {
        return Err(value_error(format!(
            "nested deeper than {MAX_DEPTH} levels (does a dict or list contain itself?)"
        )));
    }
    // The common types of an input first: strings, then dicts and lists.
    if let Ok(s) = obj.cast::<PyString>() {
        let s = s.to_cow().map_err(|e| value_error(e.to_string()))?;
        return Ok(Value::String(s.into_owned()));
    }
    if let Ok(dict) = obj.cast::<PyDict>() {
        let mut map = Map::new();
        for (key, value) in dict.iter() {
            let Ok(key) = key.cast::<PyString>() else {
                return Err(type_error(format!(
                    "dict keys must be str, found {}",
                    type_name(&key)
                )));
            };
            let key = key.to_cow().map_err(|e| value_error(e.to_string()))?;
            match to_json(&value, depth + 1) {
                Ok(child) => {
                    map.insert(key.into_owned(), child);
                }
                Err(failure) => return Err(failure.at(Step::Key(key.into_owned()))),
            }
        }
        return Ok(Value::Object(map));
    }
    if obj.is_instance_of::<PyList>() || obj.is_instance_of::<PyTuple>() {
        let mut items = Vec::with_capacity(obj.len().unwrap_or(0));
        for (i, item) in obj
            .try_iter()
            .map_err(|e| type_error(e.to_string()))?
            .enumerate()
        {
            let item = item.map_err(|e| type_error(e.to_string()))?;
            items.push(to_json(&item, depth + 1).map_err(|f| f.at(Step::Index(i)))?);
        }
        return Ok(Value::Array(items));
    }
    if obj.is_none() {
        return Ok(Value::Null);
    }
    // bool before int: Python's bool is a subclass of int.
    if let Ok(b) = obj.cast::<PyBool>() {
        return Ok(Value::Bool(b.is_true()));
    }
    if obj.is_instance_of::<PyInt>() {
        if let Ok(i) = obj.extract::<i64>() {
            return Ok(Value::from(i));
        }
        if let Ok(u) = obj.extract::<u64>() {
            return Ok(Value::from(u));
        }
        return Err(value_error(
            "integer out of the 64-bit range JSON numbers are read into".to_string(),
        ));
    }
    if let Ok(f) = obj.cast::<PyFloat>() {
        let f = f.value();
        return Number::from_f64(f)
            .map(Value::Number)
            .ok_or_else(|| value_error(format!("{f} is not a JSON number")));
    }
    Err(type_error(format!(
        "{} is not JSON-like (use dict, list, tuple, str, int, float, bool or None)",
        type_name(obj)
    )))
}

/// The Python type name of `obj`, for messages.
pub fn type_name(obj: &Bound<'_, PyAny>) -> String {
    obj.get_type()
        .name()
        .map(|n| n.to_string())
        .unwrap_or_else(|_| "object".to_string())
}
