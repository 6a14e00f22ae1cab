//! `helios_core::Error` → Python exceptions: one class per [`Error::code`], under `HeliosError`.

use helios_core::Error;
use helios_core::error::Parameters;
use pyo3::create_exception;
use pyo3::exceptions::PyException;
use pyo3::prelude::*;
use pyo3::types::PyType;

create_exception!(
    helios,
    HeliosError,
    PyException,
    "Base class of every Helios error; `.code` is the stable machine-readable code (e.g. `policy_timeout`)."
);
create_exception!(
    helios,
    PolicyError,
    HeliosError,
    "The policy could not decide: it failed to parse, is undefined, has the wrong type, failed or ran too long."
);
create_exception!(
    helios,
    ServiceError,
    HeliosError,
    "A service Helios depends on (OPA, Lacework, a registry) failed."
);

/// Declares one exception class per error code, the table that maps codes to classes, and the
/// function that adds them to the module, from one list so the three cannot drift apart.
macro_rules! coded_exceptions {
    ($($code:literal => $name:ident($base:ident): $doc:literal),* $(,)?) => {
        $(create_exception!(helios, $name, $base, $doc);)*

        /// The class raised for `code`, if it has its own.
        fn class_of<'py>(py: Python<'py>, code: &str) -> Option<Bound<'py, PyType>> {
            match code {
                $($code => Some(py.get_type::<$name>()),)*
                _ => None,
            }
        }

        /// Adds the base classes and every coded class to the module, with `code` as a class
        /// attribute (`None` on the bases, which no error is raised as directly).
        pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
            let py = m.py();
            for (name, ty) in [
                ("HeliosError", py.get_type::<HeliosError>()),
                ("PolicyError", py.get_type::<PolicyError>()),
                ("ServiceError", py.get_type::<ServiceError>()),
            ] {
                ty.setattr("code", py.None())?;
                m.add(name, ty)?;
            }
            $(
                let ty = py.get_type::<$name>();
                ty.setattr("code", $code)?;
                m.add(stringify!($name), ty)?;
            )*
            Ok(())
        }
    };
}

coded_exceptions! {
    "invalid_input" => InvalidInputError(HeliosError):
        "A caller-supplied document (policy input, data, option) is malformed.",
    "invalid_image" => InvalidImageError(HeliosError):
        "An image reference could not be parsed.",
    "io" => IoError(HeliosError):
        "A policy or data file could not be read.",
    "policy_parse" => PolicyParseError(PolicyError):
        "A policy module failed to parse or compile; the message names `file:line`.",
    "policy_undefined" => PolicyUndefinedError(PolicyError):
        "No loaded policy declares the requested package.",
    "policy_type" => PolicyTypeError(PolicyError):
        "A rule of the decision contract has the wrong type (e.g. `deny` is a boolean).",
    "policy_eval" => PolicyEvalError(PolicyError):
        "The policy failed at run time.",
    "policy_timeout" => PolicyTimeoutError(PolicyError):
        "The policy ran longer than its time limit.",
    "unavailable" => UnavailableError(ServiceError):
        "A service could not be reached or did not answer in time.",
    "auth" => AuthError(ServiceError):
        "A service rejected the credentials.",
    "remote" => RemoteError(ServiceError):
        "A service answered with an error of its own.",
}

/// Turns a core error into the exception of its code, with the core's message and `.code` set
/// on the instance. A code without a class of its own (a variant added to the core later) is
/// raised as `HeliosError`, still carrying its code.
pub fn to_py(py: Python<'_>, err: &Error) -> PyErr {
    let code = err.code();
    let ty = class_of(py, code).unwrap_or_else(|| py.get_type::<HeliosError>());
    let exc = PyErr::from_type(
        ty,
        err.message_for(&Parameters {
            package: "package=",
        }),
    );
    // Setting an attribute on a fresh exception instance cannot fail in practice; if it ever
    // did, raising that failure instead would hide the real error, so it is ignored.
    let _ = exc.value(py).setattr("code", code);
    exc
}
