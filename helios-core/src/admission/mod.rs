//! Kubernetes admission: `AdmissionReview` wire types, the images of every workload kind, and
//! the [`AdmissionController`] that decides a review.
//!
//! ```text
//! AdmissionReview ──► images per kind ──► ScanSource ──► PolicyInput (stage admission)
//!                     (new/changed only)   (parallel, one deadline)   ──► PolicyEvaluator
//!                 ◄── allow | 403 with reasons, warnings, auditAnnotations ◄──┘
//! ```
//!
//! The controller is framework-independent (review in, review out) and split by what each part
//! holds: its `settings`, the `targets` of a review (a pure selection), the per-image `check`
//! and the `response` builder (a pure function from checked images to the answer). The HTTPS
//! server behind the `webhook` feature wraps it; binding a port and handling signals is the
//! embedding program's (the `helios` CLI's) business.

mod check;
mod controller;
pub mod images;
mod limits;
pub mod mutate;
mod response;
mod review;
mod settings;
mod targets;

pub use controller::AdmissionController;
pub use response::{CheckedImage, FailureKind, RequestSummary, ReviewOutcome, Verdict};
pub use settings::{
    ControllerConfig, DEFAULT_DEADLINE, DEFAULT_OWN_NAMESPACE, FailurePolicy, Mode,
    UnavailableScans, UnknownKinds,
};
// The audit skips the same controller-made children as admission.
pub use images::ContainerImage;
pub use limits::{DEFAULT_MAX_CONTAINERS, DEFAULT_MAX_IMAGES, ReviewLimits};
pub use review::{
    AdmissionRequest, AdmissionResponse, AdmissionReview, GroupVersionKind, GroupVersionResource,
    MAX_WARNING_LEN, MAX_WARNINGS_TOTAL, META_API_VERSION_V1, META_API_VERSION_V1BETA1, META_KIND,
    Operation, Status, UserInfo, is_valid_annotation_key,
};
#[cfg(feature = "audit")]
pub(crate) use targets::is_workload_kind;

#[cfg(feature = "webhook")]
pub mod config;
#[cfg(feature = "webhook")]
pub mod decision_log;
#[cfg(feature = "webhook")]
pub mod server;
