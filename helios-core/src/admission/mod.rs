//! Kubernetes admission: `AdmissionReview` wire types, the images of every workload kind, and
//! the [`AdmissionController`] that decides a review.
//!
//! ```text
//! AdmissionReview ──► images per kind ──► ScanSource ──► PolicyInput (stage admission)
//!                     (new/changed only)   (parallel, one deadline)   ──► PolicyEvaluator
//!                 ◄── allow | 403 with reasons, warnings, auditAnnotations ◄──┘
//! ```
//!
//! The controller is framework-independent (review in, review out); the HTTPS server behind the
//! `webhook` feature wraps it.

mod controller;
pub mod images;
mod limits;
pub mod mutate;
mod review;

pub use controller::{
    AdmissionController, ControllerConfig, DEFAULT_DEADLINE, DEFAULT_OWN_NAMESPACE, FailureKind,
    FailurePolicy, Mode, ReviewOutcome, UnavailableScans, UnknownKinds, Verdict,
};
// The audit skips the same controller-made children as admission.
#[cfg(feature = "audit")]
pub(crate) use controller::is_workload_kind;
pub use images::ContainerImage;
pub use limits::{DEFAULT_MAX_CONTAINERS, DEFAULT_MAX_IMAGES, ReviewLimits};
pub use review::{
    AdmissionRequest, AdmissionResponse, AdmissionReview, GroupVersionKind, GroupVersionResource,
    MAX_WARNING_LEN, MAX_WARNINGS_TOTAL, META_API_VERSION_V1, META_API_VERSION_V1BETA1, META_KIND,
    Operation, Status, UserInfo, is_valid_annotation_key,
};

#[cfg(feature = "webhook")]
pub mod config;
#[cfg(feature = "webhook")]
pub mod server;
