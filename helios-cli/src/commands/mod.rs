//! One module per `helios` subcommand.

pub mod audit;
pub mod eval;
pub mod gate;
pub mod policy_test;
pub mod scan;
pub mod webhook;

use std::io::Read;
use std::path::Path;

use helios_core::{Error, Result};

/// Reads a file, or standard input when the path is `-`.
pub fn read_input(path: &Path) -> Result<String> {
    if path == Path::new("-") {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .map_err(|source| Error::Io {
                path: "<stdin>".into(),
                source,
            })?;
        Ok(text)
    } else {
        std::fs::read_to_string(path).map_err(|source| Error::Io {
            path: path.to_path_buf(),
            source,
        })
    }
}

/// Pretty JSON of a serialisable value (infallible for our plain data types).
pub fn to_json<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string_pretty(value).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
}
