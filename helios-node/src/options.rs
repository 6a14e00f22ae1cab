//! JavaScript option objects → the core's options types: `camelCase` keys become the core's
//! `snake_case` names and `null`/`undefined` mean "the default"; the core checks everything else
//! (a mistake is its `invalid_input`, as in Python and the CLI).

use helios_core::Error as CoreError;
use helios_core::error::json_kind;
use serde_json::{Map, Value};

/// The options argument as an object with the core's field names (absent, `undefined` or `null`
/// means no options; anything but an object is the core's `invalid_input`).
pub fn snake_case(options: Option<Value>, what: &str) -> Result<Map<String, Value>, CoreError> {
    match options {
        None | Some(Value::Null) => Ok(Map::new()),
        Some(Value::Object(map)) => Ok(map
            .into_iter()
            .filter(|(_, v)| !v.is_null())
            .map(|(k, v)| (snake(&k), v))
            .collect()),
        Some(other) => Err(CoreError::InvalidInput {
            what: what.to_string(),
            reason: format!("options must be an object, got {}", json_kind(&other)),
        }),
    }
}

/// `timeLimitMs` → `time_limit_ms`, `regoV0` → `rego_v0`.
fn snake(key: &str) -> String {
    let mut out = String::with_capacity(key.len() + 4);
    for c in key.chars() {
        if c.is_ascii_uppercase() {
            out.push('_');
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}
