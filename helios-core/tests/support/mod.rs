//! Helpers shared by the integration tests (`mod support;` in each test file).

// Each test binary compiles this module and uses only part of it.
#![allow(dead_code)]

pub mod cases;
pub mod harness;
#[cfg(feature = "webhook")]
pub mod webhook;
