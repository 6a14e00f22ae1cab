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
    if !obj.is_instance_of::<PyDict>() {
        return Err(PyTypeError::new_err(format!(
            "{what} must be a dict, not {}",
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
    /// Builds the error from the JSONPath-like location (`$.scan.vulnerabilities[3]`).
    error: Box<dyn FnOnce(&str) -> ConvertError>,
}

impl Failure {
    fn new(error: impl FnOnce(&str) -> ConvertError + 'static) -> Self {
        Failure {
            steps: Vec::new(),
            error: Box::new(error),
        }
    }

    fn at(mut self, step: Step) -> Self {
        self.steps.push(step);
        self
    }

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
        (self.error)(&path)
    }
}

fn to_json(obj: &Bound<'_, PyAny>, depth: usize) -> Result<Value, Failure> {
    if depth > MAX_DEPTH {
        return Err(Failure::new(|path| {
            ConvertError::Value(format!(
                "{path}: nested deeper than {MAX_DEPTH} levels (does a dict or list contain itself?)"
            ))
        }));
    }
    // The common types of an input first: strings, then dicts and lists.
    if let Ok(s) = obj.cast::<PyString>() {
        return match s.to_cow() {
            Ok(s) => Ok(Value::String(s.into_owned())),
            Err(e) => Err(Failure::new(move |path| {
                ConvertError::Value(format!("{path}: {e}"))
            })),
        };
    }
    if let Ok(dict) = obj.cast::<PyDict>() {
        let mut map = Map::new();
        for (key, value) in dict.iter() {
            let Ok(key) = key.cast::<PyString>() else {
                let found = type_name(&key);
                return Err(Failure::new(move |path| {
                    ConvertError::Type(format!("{path}: dict keys must be str, found {found}"))
                }));
            };
            let key = match key.to_cow() {
                Ok(key) => key.into_owned(),
                Err(e) => {
                    return Err(Failure::new(move |path| {
                        ConvertError::Value(format!("{path}: {e}"))
                    }));
                }
            };
            match to_json(&value, depth + 1) {
                Ok(child) => {
                    map.insert(key, child);
                }
                Err(failure) => return Err(failure.at(Step::Key(key))),
            }
        }
        return Ok(Value::Object(map));
    }
    if obj.is_instance_of::<PyList>() || obj.is_instance_of::<PyTuple>() {
        let type_error =
            |e: PyErr| Failure::new(move |path| ConvertError::Type(format!("{path}: {e}")));
        let mut items = Vec::with_capacity(obj.len().unwrap_or(0));
        for (i, item) in obj.try_iter().map_err(type_error)?.enumerate() {
            let item = item.map_err(type_error)?;
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
        return Err(Failure::new(|path| {
            ConvertError::Value(format!(
                "{path}: integer out of the 64-bit range JSON numbers are read into"
            ))
        }));
    }
    if let Ok(f) = obj.cast::<PyFloat>() {
        let f = f.value();
        return Number::from_f64(f).map(Value::Number).ok_or_else(|| {
            Failure::new(move |path| {
                ConvertError::Value(format!("{path}: {f} is not a JSON number"))
            })
        });
    }
    let found = type_name(obj);
    Err(Failure::new(move |path| {
        ConvertError::Type(format!(
            "{path}: {found} is not JSON-like (use dict, list, tuple, str, int, float, bool or None)"
        ))
    }))
}

/// The Python type name of `obj`, for messages.
pub fn type_name(obj: &Bound<'_, PyAny>) -> String {
    obj.get_type()
        .name()
        .map(|n| n.to_string())
        .unwrap_or_else(|_| "object".to_string())
}
