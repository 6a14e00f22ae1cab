//! The one error type of Helios, with a stable machine-readable code per variant.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// The underlying cause an [`Error::Unavailable`] or [`Error::Remote`] keeps for
/// [`std::error::Error::source`] (a `reqwest` transport error, a `kube` error…). Shared, so
/// that an error can be cloned to every caller waiting on the same lookup.
pub type Cause = Arc<dyn std::error::Error + Send + Sync + 'static>;

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

    /// A file could not be written (an artifact). Same code as [`Error::Io`]: only the message
    /// differs, so it says which way the I/O went.
    #[error("cannot write {}: {source}", path.display())]
    Write {
        /// The file.
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
    #[error("{}", undefined_package(package, "the package"))]
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

    /// A service Helios depends on (OPA, Lacework, a registry) could not be reached or did not
    /// answer in time: connection refused, timeout, rate limit beyond the deadline, 5xx.
    #[error("{service} is unavailable: {reason}")]
    Unavailable {
        /// The service, e.g. `OPA at http://127.0.0.1:8181` (never with credentials).
        service: String,
        /// What happened.
        reason: String,
        /// The underlying error, when there is one (its text is already part of `reason`).
        #[source]
        source: Option<Cause>,
    },

    /// A service rejected Helios's credentials (HTTP 401/403, bad API key).
    #[error("{service} rejected the credentials: {reason}")]
    Auth {
        /// The service.
        service: String,
        /// What the service said, without the credentials themselves.
        reason: String,
    },

    /// A service answered with an error of its own (OPA's `{"code", "message"}`, a Lacework
    /// error body) or with a body Helios cannot read.
    #[error("{service} answered with an error{}: {message}", code.as_deref().map(|c| format!(" ({c})")).unwrap_or_default())]
    Remote {
        /// The service.
        service: String,
        /// The service's own error code, when it sends one (e.g. OPA's `internal_error`).
        code: Option<String>,
        /// The service's message.
        message: String,
        /// The underlying error, when there is one (its text is already part of `message`).
        #[source]
        source: Option<Cause>,
    },
}

/// How a front end spells the settings that error messages point the caller to. The core owns
/// every message; a front end only supplies its own parameter names, so the CLI says
/// `--package`, Python `package=` and Node the `package` option (see [`Error::message_for`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Parameters {
    /// The decision package setting.
    pub package: &'static str,
}

/// What kind of JSON value `value` is, as messages name it ("a boolean", "an array", …): one
/// wording for the core's and the bindings' type errors.
pub fn json_kind(value: &serde_json::Value) -> &'static str {
    use serde_json::Value;
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn undefined_package(package: &str, setting: &str) -> String {
    format!(
        "policy package {package} is undefined: no loaded policy declares it (check {setting} and the policy paths)"
    )
}

impl Error {
    /// This error's message as a front end shows it: the [`Display`](std::fmt::Display) text,
    /// with the settings it points to named as `names` spells them.
    pub fn message_for(&self, names: &Parameters) -> String {
        match self {
            Error::PolicyUndefined { package } => undefined_package(package, names.package),
            other => other.to_string(),
        }
    }

    /// The stable machine-readable code of this error, e.g. `policy_timeout`.
    pub fn code(&self) -> &'static str {
        match self {
            Error::InvalidInput { .. } => "invalid_input",
            Error::InvalidImage { .. } => "invalid_image",
            Error::Io { .. } | Error::Write { .. } => "io",
            Error::PolicyParse { .. } => "policy_parse",
            Error::PolicyUndefined { .. } => "policy_undefined",
            Error::PolicyType { .. } => "policy_type",
            Error::PolicyEval { .. } => "policy_eval",
            Error::PolicyTimeout { .. } => "policy_timeout",
            Error::Unavailable { .. } => "unavailable",
            Error::Auth { .. } => "auth",
            Error::Remote { .. } => "remote",
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
        "unavailable",
        "auth",
        "remote",
    ];

    /// An [`Error::Unavailable`] without an underlying error (add one with
    /// [`Error::with_source`]).
    pub fn unavailable(service: impl Into<String>, reason: impl Into<String>) -> Self {
        Error::Unavailable {
            service: service.into(),
            reason: reason.into(),
            source: None,
        }
    }

    /// An [`Error::Remote`] without an underlying error.
    pub fn remote(
        service: impl Into<String>,
        code: Option<String>,
        message: impl Into<String>,
    ) -> Self {
        Error::Remote {
            service: service.into(),
            code,
            message: message.into(),
            source: None,
        }
    }

    /// This error with `cause` as its [`source`](std::error::Error::source), for the variants
    /// that keep one ([`Error::Unavailable`], [`Error::Remote`]); other variants are returned
    /// unchanged. The message does not change.
    pub fn with_source(mut self, cause: impl std::error::Error + Send + Sync + 'static) -> Self {
        if let Error::Unavailable { source, .. } | Error::Remote { source, .. } = &mut self {
            *source = Some(Arc::new(cause));
        }
        self
    }

    /// A copy of this error for another waiter on the same lookup (the caches' single flight
    /// hands one answer to every caller). Same variant, code and message; an I/O error keeps its
    /// kind and text, a kept cause is shared.
    pub(crate) fn duplicate(&self) -> Error {
        let io = |e: &std::io::Error| std::io::Error::new(e.kind(), e.to_string());
        match self {
            Error::InvalidInput { what, reason } => Error::InvalidInput {
                what: what.clone(),
                reason: reason.clone(),
            },
            Error::InvalidImage { reference, reason } => Error::InvalidImage {
                reference: reference.clone(),
                reason: reason.clone(),
            },
            Error::Io { path, source } => Error::Io {
                path: path.clone(),
                source: io(source),
            },
            Error::Write { path, source } => Error::Write {
                path: path.clone(),
                source: io(source),
            },
            Error::PolicyParse { location, message } => Error::PolicyParse {
                location: location.clone(),
                message: message.clone(),
            },
            Error::PolicyUndefined { package } => Error::PolicyUndefined {
                package: package.clone(),
            },
            Error::PolicyType {
                rule,
                expected,
                found,
            } => Error::PolicyType {
                rule: rule.clone(),
                expected: expected.clone(),
                found: found.clone(),
            },
            Error::PolicyEval { message } => Error::PolicyEval {
                message: message.clone(),
            },
            Error::PolicyTimeout { limit } => Error::PolicyTimeout { limit: *limit },
            Error::Unavailable {
                service,
                reason,
                source,
            } => Error::Unavailable {
                service: service.clone(),
                reason: reason.clone(),
                source: source.clone(),
            },
            Error::Auth { service, reason } => Error::Auth {
                service: service.clone(),
                reason: reason.clone(),
            },
            Error::Remote {
                service,
                code,
                message,
                source,
            } => Error::Remote {
                service: service.clone(),
                code: code.clone(),
                message: message.clone(),
                source: source.clone(),
            },
        }
    }

    pub(crate) fn invalid(what: impl Into<String>, reason: impl ToString) -> Self {
        Error::InvalidInput {
            what: what.into(),
            reason: reason.to_string(),
        }
    }

    /// A failed write of `path`.
    pub fn write(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Write {
            path: path.into(),
            source,
        }
    }

    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One error of every variant. The `match` has no wildcard, so a new variant does not
    /// compile until it is added here, and then to [`Error::CODES`] by the assertions below.
    fn one_of_each() -> Vec<Error> {
        let io = || std::io::Error::other("x");
        let all = vec![
            Error::invalid("input", "x"),
            Error::InvalidImage {
                reference: "x".into(),
                reason: "x".into(),
            },
            Error::io("x", io()),
            Error::write("x", io()),
            Error::PolicyParse {
                location: "x".into(),
                message: "x".into(),
            },
            Error::PolicyUndefined {
                package: "x".into(),
            },
            Error::PolicyType {
                rule: "x".into(),
                expected: "x".into(),
                found: "x".into(),
            },
            Error::PolicyEval {
                message: "x".into(),
            },
            Error::PolicyTimeout {
                limit: Duration::from_millis(1),
            },
            Error::unavailable("x", "x"),
            Error::Auth {
                service: "x".into(),
                reason: "x".into(),
            },
            Error::remote("x", None, "x"),
        ];
        for e in &all {
            match e {
                Error::InvalidInput { .. }
                | Error::InvalidImage { .. }
                | Error::Io { .. }
                | Error::Write { .. }
                | Error::PolicyParse { .. }
                | Error::PolicyUndefined { .. }
                | Error::PolicyType { .. }
                | Error::PolicyEval { .. }
                | Error::PolicyTimeout { .. }
                | Error::Unavailable { .. }
                | Error::Auth { .. }
                | Error::Remote { .. } => {}
            }
        }
        all
    }

    #[test]
    fn the_code_list_is_exactly_what_code_returns() {
        let mut returned: Vec<&str> = one_of_each().iter().map(Error::code).collect();
        returned.sort_unstable();
        returned.dedup();
        let mut listed = Error::CODES.to_vec();
        listed.sort_unstable();
        assert_eq!(returned, listed);
        assert_eq!(
            Error::CODES.len(),
            listed
                .iter()
                .collect::<std::collections::BTreeSet<_>>()
                .len(),
            "a code is listed twice"
        );
    }

    #[test]
    fn a_duplicate_keeps_the_variant_code_message_and_cause() {
        use std::error::Error as _;
        for e in one_of_each() {
            let d = e.duplicate();
            assert_eq!((d.code(), d.to_string()), (e.code(), e.to_string()));
            assert_eq!(
                d.source().map(ToString::to_string),
                e.source().map(ToString::to_string)
            );
        }
    }

    #[test]
    fn io_errors_keep_their_source() {
        use std::error::Error as _;
        let e = Error::write("a.json", std::io::Error::other("disk full"));
        assert_eq!(
            e.source().map(ToString::to_string).as_deref(),
            Some("disk full")
        );
    }

    #[test]
    fn service_errors_keep_their_source_and_their_message() {
        use std::error::Error as _;
        let plain = Error::unavailable("OPA at http://127.0.0.1:8181", "cannot connect");
        let text = plain.to_string();
        let e = plain.with_source(std::io::Error::other("refused"));
        assert_eq!(e.to_string(), text);
        assert_eq!(
            e.source().map(ToString::to_string).as_deref(),
            Some("refused")
        );
        let e = Error::remote("x", Some("eval_conflict_error".into()), "m")
            .with_source(std::io::Error::other("y"));
        assert!(e.source().is_some());
        assert!(
            Error::invalid("x", "y")
                .with_source(std::io::Error::other("z"))
                .source()
                .is_none()
        );
    }
}
