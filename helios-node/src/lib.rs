//! Node.js bindings of Helios (npm package `helios-policy`), built with napi-rs.
//!
//! Thin by design: convert JavaScript values to the core's types, call `helios-core`, convert
//! the decision back, and expose [`helios_core::Error::code`] as `err.code`. All behaviour lives
//! in the core. Modules mirror the core: [`policy`] wraps `helios_core::policy`, [`gate`] wraps
//! `helios_core::gate` and the Lacework lookup, [`error`] maps
//! `helios_core::error`, [`options`] turns JavaScript option objects into the core's options.

// napi-rs registers exports only outside `cfg(test)`, so a test build sees them as unused.
#![cfg_attr(test, allow(dead_code))]

mod error;
mod gate;
mod options;
mod policy;

use napi_derive::napi;

/// Every code `err.code` can carry for a Helios error (`helios_core::Error::CODES`).
#[napi]
pub fn error_codes() -> Vec<&'static str> {
    helios_core::Error::CODES.to_vec()
}

/// The version of this package (and of the Rust core it wraps).
#[napi]
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
