//! Reading typed documents from JSON, naming the field at fault on error.
//!
//! `serde_path_to_error` names the field, but it allocates every key it passes: on a large scan
//! a third of the read. So a document is read without it first, and only when that fails read
//! again with it, which gives the same error as tracking from the start.

use serde::de::DeserializeOwned;

use crate::error::{Error, Result};

/// Reads `T` from JSON text; an error is [`Error::InvalidInput`] about `what`, naming the field.
pub(crate) fn from_str<T: DeserializeOwned>(text: &str, what: &str) -> Result<T> {
    if let Ok(value) = serde_json::from_str(text) {
        return Ok(value);
    }
    let mut de = serde_json::Deserializer::from_str(text);
    let value = serde_path_to_error::deserialize(&mut de).map_err(|e| Error::invalid(what, e))?;
    de.end().map_err(|e| Error::invalid(what, e))?;
    Ok(value)
}

/// Reads `T` from a JSON value (what the bindings hand over); errors as [`from_str`]'s.
pub(crate) fn from_value<T: DeserializeOwned>(value: serde_json::Value, what: &str) -> Result<T> {
    match T::deserialize(&value) {
        Ok(read) => Ok(read),
        Err(_) => serde_path_to_error::deserialize(value).map_err(|e| Error::invalid(what, e)),
    }
}
