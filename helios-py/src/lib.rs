//! Python bindings of Helios: the native module `helios._helios`, re-exported by the pure-Python
//! package `helios` (see `helios/__init__.py`).
//!
//! Thin by design: convert Python values to the core's types, call `helios-core`, convert the
//! decision back, and map [`helios_core::Error`] codes to exception classes. All behaviour lives
//! in the core.
//!
//! Modules mirror the core: [`policy`] wraps `helios_core::policy`, [`gate`] wraps
//! `helios_core::gate` and the Lacework lookup, [`error`] maps
//! `helios_core::error`, and [`convert`] turns Python values into JSON.

mod convert;
mod error;
mod gate;
mod policy;

use pyo3::prelude::*;

/// The native module. Public names are re-exported by `helios/__init__.py`; `_helios.pyi` types
/// them (and a test keeps the two in step).
#[pymodule]
fn _helios(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add("ERROR_CODES", helios_core::Error::CODES.to_vec())?;
    m.add(
        "DEFAULT_TIME_LIMIT_MS",
        u64::try_from(helios_core::policy::DEFAULT_TIME_LIMIT.as_millis()).unwrap_or(u64::MAX),
    )?;
    error::register(m)?;
    m.add_class::<policy::Evaluator>()?;
    m.add_class::<policy::PreparedInput>()?;
    m.add_function(wrap_pyfunction!(policy::evaluate, m)?)?;
    m.add_function(wrap_pyfunction!(gate::scan, m)?)?;
    m.add_function(wrap_pyfunction!(gate::gate, m)?)?;
    Ok(())
}
