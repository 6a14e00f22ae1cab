//! # Helios
//!
//! Stop vulnerable container images from running — in the cluster and in the pipeline — with one
//! Rego policy.
//!
//! ```text
//! image reference ──► scan (Lacework / file) ──► PolicyInput ──► PolicyEvaluator ──► Decision
//! ```
//!
//! One input contract ([`policy::PolicyInput`]) and one decision contract ([`policy::Decision`])
//! serve both the admission path and the CI path, so a policy that passes in CI passes at
//! admission for the same image and context.
//!
//! ## Quick start: gate an image on a scan file with the shipped default policy
//!
//! ```
//! use helios_core::{EmbeddedEvaluator, Gate, ImageRef, ScanReport};
//!
//! # fn main() -> helios_core::Result<()> {
//! let scan = ScanReport::from_scan_json(r#"{"data": [{
//!     "vulnId": "CVE-2023-1234", "severity": "High", "status": "VULNERABLE",
//!     "featureKey": {"name": "openssl", "version": "1.1.1n", "namespace": "debian:11"},
//!     "fixInfo": {"fix_available": 1, "fixed_version": "1.1.1w"}
//! }]}"#, None)?;
//! let image = ImageRef::parse("registry.example.com/team/app:1.4")?;
//!
//! let gate = Gate::new(EmbeddedEvaluator::default_policy()?);
//! let outcome = gate.check_sync(image, scan, None)?;
//!
//! assert!(!outcome.decision.allowed);
//! assert_eq!(outcome.decision.policy.id, "helios.default");
//! assert_eq!(outcome.exit_code(), 1);
//! # Ok(())
//! # }
//! ```

pub mod admission;
#[cfg(feature = "audit")]
pub mod audit;
mod bounded;
pub mod error;
pub mod gate;
mod http;
pub mod image;
mod json;
pub mod policy;
pub mod registry;
pub mod scan;

// The headline types, at the crate root: `use helios_core::{Gate, ImageRef, EmbeddedEvaluator};`.
// Each stays at its module path too, next to its companions.
pub use error::{Error, Result};
pub use gate::{Gate, GateOutcome};
pub use http::Secret;
pub use image::ImageRef;
pub use policy::{
    Decision, EmbeddedBuilder, EmbeddedEvaluator, OpaBuilder, OpaEvaluator, PolicyEvaluator,
    PolicyInput,
};
pub use registry::{RegistryConfig, Resolver};
pub use scan::lacework::{LaceworkClient, LaceworkSource};
pub use scan::{Lookup, ScanReport, ScanSource};

// The README's Rust examples compile as doctests, so they cannot drift from the API.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
struct ReadmeDoctests;
