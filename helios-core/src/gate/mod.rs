//! The CI gate: image + scan → policy input (stage `ci`) → decision → exit code and report.

mod report;

pub use report::ReportFormat;

use serde::Serialize;

use crate::error::Result;
use crate::image::ImageRef;
use crate::policy::{Decision, EmbeddedEvaluator, PolicyEvaluator, PolicyInput};
use crate::scan::ScanReport;

/// Runs images through a policy for a CI pipeline.
#[derive(Debug, Clone)]
pub struct Gate<E> {
    evaluator: E,
}

/// What a gate decided about one image, with the input it decided on (the build artifact).
#[derive(Debug, Clone, Serialize)]
pub struct GateOutcome {
    /// The decision.
    pub decision: Decision,
    /// The exact policy input that was evaluated.
    pub input: PolicyInput,
}

impl<E: PolicyEvaluator> Gate<E> {
    /// A gate deciding with `evaluator`.
    pub fn new(evaluator: E) -> Self {
        Gate { evaluator }
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
    /// The process exit code for CI: 0 allowed, 1 denied (2, could not decide, is the caller's
    /// for errors).
    pub fn exit_code(&self) -> i32 {
        if self.decision.allowed { 0 } else { 1 }
    }
}
