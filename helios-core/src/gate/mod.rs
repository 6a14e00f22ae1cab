//! The CI gate: image + scan → policy input (stage `ci`) → decision → exit code and report.

mod report;

pub use report::ReportFormat;

use std::collections::BTreeMap;

use serde::ser::SerializeStruct;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::image::ImageRef;
use crate::policy::{Decision, EmbeddedEvaluator, EvaluatorOptions, PolicyEvaluator, PolicyInput};
use crate::registry::{Resolver, resolve_with};
use crate::scan::{Lookup, ScanOptions, ScanReport, ScanSource};

/// What a gate front end takes (the Node `gate` options): the policy, where the scan comes
/// from, and the CI context, in one flat object (`{"policy": …, "scan_file": …, "ci": …}`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct GateOptions {
    /// Which policy decides.
    #[serde(flatten)]
    pub policy: EvaluatorOptions,
    /// Where the scan comes from.
    #[serde(flatten)]
    pub scan: ScanOptions,
    /// CI context passed to the policy as `input.ci` (an object).
    pub ci: Option<serde_json::Value>,
}

impl GateOptions {
    /// Reads options from a JSON object; an unknown field, a wrong type or value is
    /// `invalid_input` naming it.
    pub fn from_value(value: serde_json::Value) -> Result<Self> {
        /// The options and whatever else was given (flattened structs cannot deny unknown
        /// fields themselves).
        #[derive(Deserialize)]
        struct Given {
            #[serde(flatten)]
            policy: EvaluatorOptions,
            #[serde(flatten)]
            scan: ScanOptions,
            #[serde(default)]
            ci: Option<serde_json::Value>,
            #[serde(flatten)]
            unknown: BTreeMap<String, serde_json::Value>,
        }
        let given: Given = serde_path_to_error::deserialize(value)
            .map_err(|e| Error::invalid("gate options", e))?;
        if let Some(field) = given.unknown.keys().next() {
            return Err(Error::invalid(
                "gate options",
                format!("unknown field `{field}`"),
            ));
        }
        let options = GateOptions {
            policy: given.policy,
            scan: given.scan,
            ci: given.ci,
        };
        if !matches!(options.ci, None | Some(serde_json::Value::Object(_))) {
            return Err(Error::invalid(
                "gate options",
                "ci must be an object (the CI context)",
            ));
        }
        options.policy.validate()?;
        Ok(options)
    }
}

/// Runs images through a policy for a CI pipeline.
#[derive(Debug, Clone)]
pub struct Gate<E> {
    evaluator: E,
    resolver: Option<Resolver>,
}

/// What a gate decided about one image, with the input it decided on (the build artifact).
///
/// Serialises as `{"decision": …, "input": …, "exit_code": 0|1|2}`.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct GateOutcome {
    /// The decision.
    pub decision: Decision,
    /// The exact policy input that was evaluated.
    pub input: PolicyInput,
}

impl<E: PolicyEvaluator> Gate<E> {
    /// A gate deciding with `evaluator`.
    pub fn new(evaluator: E) -> Self {
        Gate {
            evaluator,
            resolver: None,
        }
    }

    /// Resolves tag-only images at their registry before the scan lookup (see
    /// [`Resolver::resolve`]); `None` looks them up as written (`--no-resolve`).
    pub fn with_resolver(mut self, resolver: Option<Resolver>) -> Self {
        self.resolver = resolver;
        self
    }

    /// Decides on `image`, taking its scan from `source` (a scan file, a directory, Lacework,
    /// a cache in front of either: the sources admission uses, see
    /// [`ScanOptions::source`](crate::scan::ScanOptions::source)) with `lookup`'s deadline.
    /// With a resolver, a tag is first resolved to its digest (and platform manifest), and a
    /// resolution failure is an error: never a silent fallback to a lookup by tag.
    pub async fn check_image(
        &self,
        image: ImageRef,
        source: &dyn ScanSource,
        lookup: Lookup,
        ci: Option<serde_json::Value>,
    ) -> Result<GateOutcome> {
        let image = resolve_with(self.resolver.as_ref(), image).await?;
        let scan = source.scan(&image, lookup).await?;
        self.check(image, scan, ci).await
    }

    /// Decides on `image` given its `scan` and the caller's CI context.
    pub async fn check(
        &self,
        image: ImageRef,
        scan: ScanReport,
        ci: Option<serde_json::Value>,
    ) -> Result<GateOutcome> {
        let input = PolicyInput::for_ci(image, scan, ci);
        let decision = self.evaluator.evaluate(&input).await?;
        Ok(GateOutcome { decision, input })
    }
}

impl Gate<EmbeddedEvaluator> {
    /// [`Gate::check`] without an async runtime, for the embedded engine.
    pub fn check_sync(
        &self,
        image: ImageRef,
        scan: ScanReport,
        ci: Option<serde_json::Value>,
    ) -> Result<GateOutcome> {
        let input = PolicyInput::for_ci(image, scan, ci);
        let decision = self.evaluator.evaluate_sync(&input)?;
        Ok(GateOutcome { decision, input })
    }
}

impl GateOutcome {
    /// The process exit code for CI: 0 allowed; 1 denied; 2 could not decide — here, denied
    /// while the scan service could not be asked (scan `unavailable`: network, credentials, rate
    /// limit), so a pipeline tells "the policy said no to this image" from "we could not ask"
    /// (errors, the caller's, are 2 as well). A policy that allows unavailable scans (e.g.
    /// `allow_unscanned`) still exits 0.
    pub fn exit_code(&self) -> i32 {
        if self.decision.allowed {
            0
        } else if self.undecided() {
            2
        } else {
            1
        }
    }

    /// Denied because the scan service could not be asked, not on the image's findings.
    pub fn undecided(&self) -> bool {
        !self.decision.allowed && self.input.scan.status == crate::scan::ScanStatus::Unavailable
    }
}

impl Serialize for GateOutcome {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut s = serializer.serialize_struct("GateOutcome", 3)?;
        s.serialize_field("decision", &self.decision)?;
        s.serialize_field("input", &self.input)?;
        s.serialize_field("exit_code", &self.exit_code())?;
        s.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Error;
    use crate::policy::EmbeddedEvaluator;
    use crate::scan::ScanStatus;

    #[test]
    fn gate_options_read_flat_and_refuse_unknown_fields() -> Result<()> {
        let o = GateOptions::from_value(serde_json::json!({
            "policy": "p.rego", "package": "acme", "wait": 5, "no_scan": true,
            "scan_dir": "scans", "ci": {"pipeline": "build"}
        }))?;
        assert_eq!(o.policy.paths, vec![std::path::PathBuf::from("p.rego")]);
        assert_eq!(o.policy.package, "acme");
        assert_eq!((o.scan.wait, o.scan.no_scan), (5.0, true));
        assert_eq!(o.scan.scan_dir, Some("scans".into()));
        assert_eq!(
            GateOptions::from_value(serde_json::json!({}))?,
            GateOptions::default()
        );
        for bad in [
            serde_json::json!({"scna_file": "x"}),
            serde_json::json!({"ci": "pipeline=build"}),
            serde_json::json!({"time_limit_ms": -1}),
            serde_json::json!({"no_scan": "yes"}),
            serde_json::json!("options"),
        ] {
            let err = GateOptions::from_value(bad.clone()).err();
            assert_eq!(err.map(|e| e.code()), Some("invalid_input"), "{bad}");
        }
        Ok(())
    }

    fn outcome(status: ScanStatus, data: Option<serde_json::Value>) -> Result<GateOutcome> {
        let mut builder = EmbeddedEvaluator::builder();
        if let Some(data) = data {
            builder = builder.data(data);
        }
        let gate = Gate::new(builder.build()?);
        let image = ImageRef::parse("registry.example.com/team/app:1.4")?;
        let scan = ScanReport::without_findings(status, "lacework", Some("down".into()));
        gate.check_sync(image, scan, None)
    }

    #[test]
    fn an_unavailable_scan_denied_is_undecided_exit_2_unless_the_policy_allows_it() -> Result<()> {
        let down = outcome(ScanStatus::Unavailable, None)?;
        assert!(!down.decision.allowed);
        assert!(down.undecided());
        assert_eq!(down.exit_code(), 2);
        let artifact = serde_json::to_value(&down).map_err(|e| Error::invalid("artifact", e))?;
        assert_eq!(artifact["exit_code"], 2);
        // Not found is the policy's judgement of the image: denied, exit 1.
        let unknown = outcome(ScanStatus::NotFound, None)?;
        assert_eq!((unknown.undecided(), unknown.exit_code()), (false, 1));
        // A policy that lets unscanned images through: allowed, exit 0.
        let lenient = serde_json::json!({"helios": {"config": {"allow_unscanned": true}}});
        let allowed = outcome(ScanStatus::Unavailable, Some(lenient))?;
        assert_eq!(allowed.exit_code(), 0);
        Ok(())
    }
}
