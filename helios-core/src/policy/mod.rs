//! Policies: the input and decision contracts, and the backends that evaluate them.
//!
//! ```text
//! PolicyInput ──► PolicyEvaluator::evaluate ──► Decision
//!                  ├─ EmbeddedEvaluator (regorus, in-process)
//!                  └─ OpaEvaluator (an OPA server's Data API over HTTP(S))
//! ```

mod compiled;
mod decision;
mod document;
mod embedded;
mod input;
mod opa;
mod options;
mod package;
pub(crate) mod rego_value;
mod set;
pub mod testing;

use async_trait::async_trait;

pub use decision::{Backend, Decision, Finding, PolicyRef};
pub use embedded::{
    DEFAULT_TIME_LIMIT, ENGINE_ENV, EmbeddedBuilder, EmbeddedEvaluator, EngineKind,
};
pub use input::{Container, ContainerType, INPUT_VERSION, PolicyInput, Stage, User, Workload};
pub use opa::{DEFAULT_OPA_TIMEOUT, OpaBuilder, OpaEvaluator, SERVER_VERSION_PREFIX};
pub use options::{
    DEFAULT_OPA_TIMEOUT_MS, DEFAULT_PACKAGE, DEFAULT_TIME_LIMIT_MS, Evaluator, EvaluatorOptions,
};
pub use package::Package;
pub use set::{DEFAULT_POLICY_ID, PolicySet};

use crate::error::Result;

/// Anything that turns a [`PolicyInput`] into a [`Decision`].
///
/// Implementations are cheap to share (`Send + Sync`) and evaluate concurrently; every backend
/// returns the same decision for the same policy and input, but for [`Decision::backend`].
#[async_trait]
pub trait PolicyEvaluator: Send + Sync {
    /// Evaluates the policy on one input.
    async fn evaluate(&self, input: &PolicyInput) -> Result<Decision>;

    /// Which backend this is.
    fn backend(&self) -> Backend;
}

/// Boxed evaluators (chosen at run time, e.g. by CLI flags) are evaluators too.
#[async_trait]
impl<T: PolicyEvaluator + ?Sized> PolicyEvaluator for Box<T> {
    async fn evaluate(&self, input: &PolicyInput) -> Result<Decision> {
        (**self).evaluate(input).await
    }

    fn backend(&self) -> Backend {
        (**self).backend()
    }
}

/// Shared evaluators are evaluators too.
#[async_trait]
impl<T: PolicyEvaluator + ?Sized> PolicyEvaluator for std::sync::Arc<T> {
    async fn evaluate(&self, input: &PolicyInput) -> Result<Decision> {
        (**self).evaluate(input).await
    }

    fn backend(&self) -> Backend {
        (**self).backend()
    }
}
