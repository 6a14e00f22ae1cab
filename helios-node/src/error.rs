//! `helios_core::Error` → JavaScript `Error` with `err.code` set to the core's stable code.

use helios_core::Error as CoreError;
use helios_core::error::Parameters;
use napi::{Env, JsError, Status};

/// A JavaScript `Error` whose `code` is `err.code()` (e.g. `policy_timeout`) and whose message
/// is the core's. Built as a JS object right away so it keeps its string code whether it is
/// thrown synchronously or rejects a promise from an async task.
pub fn to_js(env: &Env, err: &CoreError) -> napi::Error {
    let message = err.message_for(&Parameters {
        package: "the `package` option",
    });
    let js = JsError::from(napi::Error::new(err.code(), message));
    napi::Error::from(js.into_unknown(*env))
}

/// A bad argument (wrong type or value): `err.code === 'InvalidArg'`, the same code napi-rs
/// gives when it cannot convert an argument itself, so callers check one code for both.
pub fn invalid_arg(message: impl Into<String>) -> napi::Error {
    napi::Error::new(Status::InvalidArg, message.into())
}
