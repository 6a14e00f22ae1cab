//! [`EvaluatorOptions`]: the one description of "which policy decides, and how", shared by the
//! CLI flags, the Python and Node options, and the webhook config's `policy:` section.

use std::path::PathBuf;
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Deserializer, Serialize};

use super::{
    Backend, Decision, EmbeddedEvaluator, EngineKind, OpaEvaluator, Package, PolicyEvaluator,
};
use super::{PolicyInput, embedded::DEFAULT_TIME_LIMIT, opa::DEFAULT_OPA_TIMEOUT};
use crate::error::{Error, Result};
use crate::scan::lacework::Secret;

/// The default decision package.
pub const DEFAULT_PACKAGE: &str = "helios";
/// The default execution time limit of one embedded evaluation, in milliseconds.
pub const DEFAULT_TIME_LIMIT_MS: u64 = DEFAULT_TIME_LIMIT.as_millis() as u64;
/// The default time limit of one request to OPA (connecting included), in milliseconds.
pub const DEFAULT_OPA_TIMEOUT_MS: u64 = DEFAULT_OPA_TIMEOUT.as_millis() as u64;

/// Which policy decides and how it is evaluated: embedded Rego files (the default policy when
/// none are given), or an OPA server when `opa_url` is set.
///
/// Deserialises from the webhook config's `policy:` section, the bindings' options and (as
/// `EvaluatorOptions::default()` plus fields) the CLI flags; unknown fields are errors, absent
/// ones take the defaults below. [`EvaluatorOptions::build`] validates and builds.
///
/// ```
/// use helios_core::policy::EvaluatorOptions;
///
/// let options = EvaluatorOptions::from_value(serde_json::json!({"time_limit_ms": 500}))?;
/// let evaluator = options.build()?;
/// # Ok::<(), helios_core::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EvaluatorOptions {
    /// `.rego` files, data files or directories of them; empty means the shipped default
    /// policy. Also read as `policy` (one path or a list), the bindings' name.
    #[serde(alias = "policy", deserialize_with = "one_or_many")]
    pub paths: Vec<PathBuf>,
    /// A data document (an object) merged under `data`.
    pub data: Option<serde_json::Value>,
    /// The package whose document is the decision ([`DEFAULT_PACKAGE`]).
    pub package: String,
    /// Parse the embedded policy as Rego v0 (pre-1.0 syntax).
    pub rego_v0: bool,
    /// Execution time limit of one embedded evaluation in milliseconds
    /// ([`DEFAULT_TIME_LIMIT_MS`]; zero is refused).
    pub time_limit_ms: u64,
    /// Decide on this OPA server's Data API instead of in-process; `paths`, `data` and
    /// `rego_v0` then do not apply.
    pub opa_url: Option<String>,
    /// Bearer token for OPA (`--authentication=token`); empty means none.
    #[serde(skip_serializing, deserialize_with = "secret")]
    pub opa_token: Option<Secret>,
    /// PEM bundle of the CA that signed OPA's certificate (besides the built-in roots).
    pub opa_ca: Option<PathBuf>,
    /// Time limit of one request to OPA in milliseconds ([`DEFAULT_OPA_TIMEOUT_MS`]).
    pub opa_timeout_ms: u64,
    /// The embedded engine to require (`rvm` or `interpreter`); absent: [`ENGINE_ENV`](crate::policy::ENGINE_ENV) when set,
    /// else the compiled VM wherever the compiler takes the policy (see
    /// [`EmbeddedBuilder::engine`](crate::policy::EmbeddedBuilder::engine)).
    pub engine: Option<EngineKind>,
    /// Share one evaluation's contract rules among the cores (the embedded compiled engine;
    /// see [`EmbeddedBuilder::parallel_rules`](crate::policy::EmbeddedBuilder::parallel_rules)):
    /// for one large decision on an idle machine, e.g. a CI step. Default false.
    pub parallel_rules: bool,
}

impl Default for EvaluatorOptions {
    fn default() -> Self {
        EvaluatorOptions {
            paths: Vec::new(),
            data: None,
            package: DEFAULT_PACKAGE.to_string(),
            rego_v0: false,
            time_limit_ms: DEFAULT_TIME_LIMIT_MS,
            opa_url: None,
            opa_token: None,
            opa_ca: None,
            opa_timeout_ms: DEFAULT_OPA_TIMEOUT_MS,
            engine: None,
            parallel_rules: false,
        }
    }
}

/// A token read as a [`Secret`] (never printed).
fn secret<'de, D: Deserializer<'de>>(de: D) -> std::result::Result<Option<Secret>, D::Error> {
    Ok(Option::<String>::deserialize(de)?.map(Secret::new))
}

/// A path, or a list of them.
fn one_or_many<'de, D: Deserializer<'de>>(de: D) -> std::result::Result<Vec<PathBuf>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(PathBuf),
        Many(Vec<PathBuf>),
    }
    Ok(match Option::<OneOrMany>::deserialize(de)? {
        None => Vec::new(),
        Some(OneOrMany::One(p)) => vec![p],
        Some(OneOrMany::Many(p)) => p,
    })
}

impl EvaluatorOptions {
    /// Reads options from a JSON value (e.g. the bindings' option objects); a wrong field or
    /// type is `invalid_input` naming it.
    pub fn from_value(value: serde_json::Value) -> Result<Self> {
        serde_path_to_error::deserialize(value).map_err(|e| Error::invalid("policy options", e))
    }

    /// Checks what the types alone do not (also done by [`Self::build`]).
    pub fn validate(&self) -> Result<()> {
        let refuse = |reason: &str| Err(Error::invalid("policy options", reason));
        if self.opa_url.is_some() && (!self.paths.is_empty() || self.data.is_some() || self.rego_v0)
        {
            return refuse(
                "give either paths/data/rego_v0 (embedded) or opa_url (the policy lives on OPA), not both",
            );
        }
        if !matches!(self.data, None | Some(serde_json::Value::Object(_))) {
            return refuse("data must be an object (the data document)");
        }
        if self.time_limit_ms == 0 {
            return refuse("time_limit_ms must be above 0");
        }
        Package::parse(&self.package).map(|_| ())
    }

    /// Builds the embedded evaluator these options describe; with `opa_url` set this is
    /// `invalid_input` (use [`Self::build`], which may wait on the network).
    pub fn build_embedded(&self) -> Result<EmbeddedEvaluator> {
        self.validate()?;
        if self.opa_url.is_some() {
            return Err(Error::invalid(
                "policy options",
                "opa_url needs an async evaluation (this call evaluates in-process only)",
            ));
        }
        let mut builder = EmbeddedEvaluator::builder()
            .package(Package::parse(&self.package)?)
            .rego_v0(self.rego_v0)
            .time_limit(Duration::from_millis(self.time_limit_ms))
            .parallel_rules(self.parallel_rules);
        for path in &self.paths {
            builder = builder.policy_path(path);
        }
        if let Some(data) = &self.data {
            builder = builder.data(data.clone());
        }
        if let Some(engine) = self.engine {
            builder = builder.engine(engine);
        }
        builder.build()
    }

    /// Validates and builds the evaluator: OPA when `opa_url` is set, else embedded.
    pub fn build(&self) -> Result<Evaluator> {
        self.validate()?;
        let Some(url) = &self.opa_url else {
            return self.build_embedded().map(Evaluator::Embedded);
        };
        let mut builder = OpaEvaluator::builder(url.as_str())
            .package(Package::parse(&self.package)?)
            .timeout(Duration::from_millis(self.opa_timeout_ms));
        // An empty token (e.g. an unset CI secret) means no token, not a bad one.
        if let Some(token) = self.opa_token.as_ref().filter(|t| !t.is_empty()) {
            builder = builder.token(token.expose());
        }
        if let Some(ca) = &self.opa_ca {
            builder = builder.ca_file(ca);
        }
        builder.build().map(Evaluator::Opa)
    }
}

/// The evaluator [`EvaluatorOptions::build`] chose. An enum rather than a boxed trait object so
/// callers that must not wait on the network (the bindings' sync calls) can reach the
/// embedded engine's synchronous API; it is a [`PolicyEvaluator`] itself.
#[derive(Debug, Clone)]
pub enum Evaluator {
    /// In-process (regorus).
    Embedded(EmbeddedEvaluator),
    /// An OPA server.
    Opa(OpaEvaluator),
}

#[async_trait]
impl PolicyEvaluator for Evaluator {
    async fn evaluate(&self, input: &PolicyInput) -> Result<Decision> {
        match self {
            Evaluator::Embedded(e) => e.evaluate(input).await,
            Evaluator::Opa(e) => e.evaluate(input).await,
        }
    }

    fn backend(&self) -> Backend {
        match self {
            Evaluator::Embedded(e) => e.backend(),
            Evaluator::Opa(e) => e.backend(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_the_builders_and_yaml_like_json_reads() -> Result<()> {
        let d = EvaluatorOptions::default();
        assert_eq!(Duration::from_millis(d.time_limit_ms), DEFAULT_TIME_LIMIT);
        assert_eq!(Duration::from_millis(d.opa_timeout_ms), DEFAULT_OPA_TIMEOUT);
        assert_eq!(d.package, Package::default().to_string());
        let o = EvaluatorOptions::from_value(serde_json::json!({
            "paths": ["/etc/helios/policy"], "package": "acme.images", "time_limit_ms": 300,
            "rego_v0": true
        }))?;
        assert_eq!(o.paths, vec![PathBuf::from("/etc/helios/policy")]);
        assert_eq!((o.time_limit_ms, o.rego_v0), (300, true));
        let one = EvaluatorOptions::from_value(serde_json::json!({"policy": "p.rego"}))?;
        assert_eq!(one.paths, vec![PathBuf::from("p.rego")]);
        Ok(())
    }

    /// The webhook config's `policy:` section (admission/config.rs `PolicyConfig`) reads as is.
    #[cfg(feature = "webhook")]
    #[test]
    fn the_webhook_policy_section_reads() -> Result<()> {
        let read = |yaml: &str| {
            yaml_serde::from_str::<EvaluatorOptions>(yaml).map_err(|e| Error::invalid("yaml", e))
        };
        let embedded = read(
            "paths: [/etc/helios/policy]\npackage: acme.images\ntime_limit_ms: 300\nrego_v0: true\n",
        )?;
        assert_eq!(embedded.paths, vec![PathBuf::from("/etc/helios/policy")]);
        assert_eq!(embedded.package, "acme.images");
        assert_eq!((embedded.time_limit_ms, embedded.rego_v0), (300, true));
        let opa = read("opa_url: https://opa:8181\n")?;
        assert_eq!(opa.opa_url.as_deref(), Some("https://opa:8181"));
        assert_eq!(opa.time_limit_ms, DEFAULT_TIME_LIMIT_MS);
        assert!(
            read("paths: [a]\nopa_url: https://opa:8181\n")?
                .validate()
                .is_err()
        );
        assert!(read("pakage: x\n").is_err());
        Ok(())
    }

    #[test]
    fn mistakes_are_invalid_input_naming_the_field() {
        let code = |v: serde_json::Value| {
            EvaluatorOptions::from_value(v)
                .and_then(|o| o.build().map(|_| ()))
                .err()
                .map(|e| (e.code(), e.to_string()))
        };
        for (value, needle) in [
            (serde_json::json!({"time_limit_ms": -1}), "time_limit_ms"),
            (serde_json::json!({"time_limit_ms": 0}), "time_limit_ms"),
            (serde_json::json!({"pakage": "x"}), "pakage"),
            (serde_json::json!({"data": [1]}), "data"),
            (serde_json::json!({"package": "not a package"}), "package"),
            (
                serde_json::json!({"opa_url": "http://o", "paths": ["p"]}),
                "opa_url",
            ),
        ] {
            let got = code(value.clone());
            assert!(
                got.as_ref()
                    .is_some_and(|(c, m)| *c == "invalid_input" && m.contains(needle)),
                "{value}: {got:?}"
            );
        }
    }

    #[test]
    fn the_opa_token_never_prints() -> Result<()> {
        let o = EvaluatorOptions::from_value(serde_json::json!({
            "opa_url": "http://127.0.0.1:8181", "opa_token": "s3cr3t-t0ken"
        }))?;
        assert!(!format!("{o:?}").contains("s3cr3t-t0ken"));
        assert!(
            !serde_json::to_string(&o)
                .unwrap_or_default()
                .contains("s3cr3t")
        );
        assert!(matches!(o.build()?, Evaluator::Opa(_)));
        Ok(())
    }
}
