//! The one error type of Helios, with a stable machine-readable code per variant.

use std::path::PathBuf;
use std::time::Duration;

/// Result alias used across Helios.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in Helios.
///
/// Each variant has a stable [`Error::code`] that bindings expose (`err.code` in Node, an
/// exception class per code in Python). Messages say what failed and what to do about it; they
/// never carry secrets, tokens or credentials.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A caller-supplied document (policy input, scan file, option) is malformed.
    #[error("invalid {what}: {reason}")]
    InvalidInput {
        /// What was being read, e.g. `policy input` or `scan file examples/scan.json`.
        what: String,
        /// Why it was rejected, naming the field at fault where known.
        reason: String,
    },

    /// An image reference could not be parsed.
    #[error("invalid image reference {reference:?}: {reason}")]
    InvalidImage {
        /// The reference as given.
        reference: String,
        /// Why it was rejected.
        reason: String,
    },

    /// A file could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The underlying I/O error.
        #[source]
        source: std::io::Error,
    },

    /// A policy module failed to parse or compile.
    #[error("policy {location}: {message}")]
    PolicyParse {
        /// `file:line` (or just the file) where the problem is.
        location: String,
        /// The engine's explanation.
        message: String,
    },

    /// The policy package the evaluator was asked for is not defined.
    #[error("policy package {package} is undefined: no loaded policy declares it (check --package and the policy paths)")]
    PolicyUndefined {
        /// The package path, e.g. `data.helios`.
        package: String,
    },

    /// A rule of the decision contract has the wrong type (e.g. `deny` is a boolean).
    #[error("policy rule {rule} must be {expected}, found {found}")]
    PolicyType {
        /// The rule, e.g. `data.helios.deny`.
        rule: String,
        /// What the decision contract expects.
        expected: String,
        /// What the policy produced.
        found: String,
    },

    /// The policy failed at run time (a builtin error, a conflict, ...).
    #[error("policy evaluation failed: {message}")]
    PolicyEval {
        /// The engine's explanation.
        message: String,
    },

    /// The policy ran longer than the configured execution limit.
    #[error("policy evaluation exceeded its time limit of {} ms; simplify the policy or raise the limit", limit.as_millis())]
    PolicyTimeout {
        /// The limit that was hit.
        limit: Duration,
    },
}

impl Error {
    /// The stable machine-readable code of this error, e.g. `policy_timeout`.
    pub fn code(&self) -> &'static str {
        match self {
            Error::InvalidInput { .. } => "invalid_input",
            Error::InvalidImage { .. } => "invalid_image",
            Error::Io { .. } => "io",
            Error::PolicyParse { .. } => "policy_parse",
            Error::PolicyUndefined { .. } => "policy_undefined",
            Error::PolicyType { .. } => "policy_type",
            Error::PolicyEval { .. } => "policy_eval",
            Error::PolicyTimeout { .. } => "policy_timeout",
        }
    }

    /// Every code [`Error::code`] can return, for bindings that build one exception class per code.
    pub const CODES: &'static [&'static str] = &[
        "invalid_input",
        "invalid_image",
        "io",
        "policy_parse",
        "policy_undefined",
        "policy_type",
        "policy_eval",
        "policy_timeout",
    ];

    pub(crate) fn invalid(what: impl Into<String>, reason: impl ToString) -> Self {
        Error::InvalidInput {
            what: what.into(),
            reason: reason.to_string(),
        }
    }

    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }
}
