//! The admission controller: one review in, one review out, framework-independent. It selects
//! the containers to check ([`targets`](super::targets)), checks each image
//! ([`check`](super::check)) and builds the answer ([`response`](super::response)).

use std::fmt::{self, Write as _};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::admission::response::{self, RequestSummary, ReviewOutcome};
use crate::admission::review::{AdmissionRequest, AdmissionResponse, AdmissionReview, shorten};
use crate::admission::settings::ControllerConfig;
use crate::admission::targets::{Targets, targets};
use crate::error::{Error, Result};
use crate::policy::PolicyEvaluator;
use crate::registry::Resolver;
use crate::scan::lacework::ShareLedger;
use crate::scan::{Lookup, ScanSource};

/// Decides admission reviews: reads each image of the workload, looks up its scan, evaluates
/// the policy on it, and answers allow, deny (403) with reasons, warnings and audit annotations.
///
/// Cheap to clone; one controller serves concurrent reviews.
#[derive(Clone)]
pub struct AdmissionController {
    pub(super) scans: Arc<dyn ScanSource>,
    pub(super) policy: Arc<dyn PolicyEvaluator>,
    pub(super) config: Arc<ControllerConfig>,
    /// Lacework requests spent per namespace and user, across reviews.
    pub(super) ledger: Arc<ShareLedger>,
    pub(super) resolver: Option<Resolver>,
    pub(super) pin_digests: bool,
}

impl fmt::Debug for AdmissionController {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AdmissionController")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// Most of the review deadline kept for answering (see `decide`).
const ANSWER_MARGIN: Duration = Duration::from_millis(250);
/// Longest list of images in a review's log line.
const MAX_LOG_IMAGES_LEN: usize = 1024;

impl AdmissionController {
    /// A controller over a scan source and a policy evaluator.
    pub fn new(
        scans: Arc<dyn ScanSource>,
        policy: Arc<dyn PolicyEvaluator>,
        config: ControllerConfig,
    ) -> Self {
        AdmissionController {
            scans,
            policy,
            config: Arc::new(config),
            ledger: Arc::new(ShareLedger::new()),
            resolver: None,
            pin_digests: false,
        }
    }

    /// Whether the `/mutate` endpoint pins tags to digests (it needs a resolver too).
    pub fn with_pinning(mut self, pin_digests: bool) -> Self {
        self.pin_digests = pin_digests;
        self
    }

    /// Whether `/mutate` pins: pinning was turned on and tags are resolved.
    pub fn pins_digests(&self) -> bool {
        self.pin_digests && self.resolver.is_some()
    }

    /// Resolves tag-only images at their registry before the scan lookup, so the scan and the
    /// decision are about the digest the tag points to now (see [`Resolver`]). A resolution
    /// failure is a failure of the check: the failure policy applies, never a lookup by tag.
    pub fn with_resolver(mut self, resolver: Option<Resolver>) -> Self {
        self.resolver = resolver;
        self
    }

    /// The resolver, when tags are resolved (shared with the `/mutate` endpoint, so a pin and
    /// a check agree through its cache).
    pub fn resolver(&self) -> Option<&Resolver> {
        self.resolver.as_ref()
    }

    /// The configuration.
    pub fn config(&self) -> &ControllerConfig {
        &self.config
    }

    /// The scan source (shared with the background audit, so both use one cache).
    pub fn scan_source(&self) -> Arc<dyn ScanSource> {
        Arc::clone(&self.scans)
    }

    /// The policy evaluator.
    pub fn evaluator(&self) -> Arc<dyn PolicyEvaluator> {
        Arc::clone(&self.policy)
    }

    /// Reviews a JSON request body and returns the JSON response review.
    ///
    /// Fails only when the body is not an `AdmissionReview` request ([`Error::InvalidInput`]);
    /// every other problem is answered in the response according to the failure policy.
    pub async fn review_json(&self, body: &[u8]) -> Result<(Vec<u8>, ReviewOutcome)> {
        let review = AdmissionReview::from_slice(body)?;
        let (review, outcome) = self.review(review).await?;
        Ok((review.to_vec(), outcome))
    }

    /// Reviews a parsed request review (see [`AdmissionReview::from_slice`]).
    pub async fn review(
        &self,
        review: AdmissionReview,
    ) -> Result<(AdmissionReview, ReviewOutcome)> {
        let started = Instant::now();
        let Some(mut req) = review.request else {
            return Err(Error::invalid("admission review", "request: missing"));
        };
        if req.api_version.is_empty() {
            req.api_version = review.api_version;
        }
        let (response, mut outcome) = self.decide(&req, started).await;
        outcome.duration = started.elapsed();
        outcome.request = RequestSummary {
            uid: req.uid.clone(),
            kind: req.kind.kind.clone(),
            namespace: req.namespace.clone().unwrap_or_default(),
            name: req.name.clone(),
            operation: req.operation.as_str().to_string(),
            dry_run: req.is_dry_run(),
            user: req.user_info.username.clone().unwrap_or_default(),
        };
        log_review(&req, &outcome);
        Ok((response.into_review(), outcome))
    }

    async fn decide(
        &self,
        req: &AdmissionRequest,
        started: Instant,
    ) -> (AdmissionResponse, ReviewOutcome) {
        let cfg = &*self.config;
        let mode = cfg.mode_of(req.namespace.as_deref());
        let base = AdmissionResponse::from(req);
        let (meta, check, over_limit) = match targets(req, cfg) {
            Targets::Skip(reason) => return response::skip(base, mode, reason),
            Targets::UnknownKind(kind) => {
                return response::unknown_kind(base, mode, cfg.unknown_kinds, &kind);
            }
            Targets::Check {
                meta,
                check,
                over_limit,
            } => (meta, check, over_limit),
        };
        // Work stops a little before the deadline (a tenth of it, at most 250 ms), leaving time
        // to assemble and send the answer, which for a review at its limits is not free.
        let budget = cfg.deadline();
        let deadline = started + budget - (budget / 10).min(ANSWER_MARGIN);
        let lookup = Lookup {
            deadline: Some(deadline),
            dry_run: req.is_dry_run(),
        };
        let checks = self
            .check_all(req, &meta, check, over_limit, lookup, deadline)
            .await;
        response::respond(base, mode, cfg.failure_policy, checks)
    }
}

/// The one log line of a review. Never logs `userInfo.extra` (it may hold tokens) or the object.
fn log_review(req: &AdmissionRequest, outcome: &ReviewOutcome) {
    let object = format!(
        "{}/{}/{}",
        req.kind.kind,
        req.namespace.as_deref().unwrap_or(""),
        req.name
    );
    tracing::info!(
        target: "helios::admission",
        uid = %req.uid,
        object = %object,
        operation = req.operation.as_str(),
        dry_run = req.is_dry_run(),
        images = %log_images(&outcome.images),
        decision = outcome.verdict.as_str(),
        mode = outcome.mode.as_str(),
        failures = outcome.failures.len(),
        reason = outcome.reason.as_deref().unwrap_or(""),
        duration_ms = outcome.duration.as_secs_f64() * 1000.0,
        "admission review"
    );
}

/// The images of a review for its log line, bounded: a hostile review may list tens of
/// thousands, or one image string of a megabyte.
fn log_images(images: &[String]) -> String {
    let mut line = String::new();
    for (i, image) in images.iter().enumerate() {
        if line.len() >= MAX_LOG_IMAGES_LEN {
            let _ = write!(line, ",… ({} more)", images.len() - i);
            break;
        }
        if i > 0 {
            line.push(',');
        }
        line.push_str(&shorten(
            image,
            MAX_LOG_IMAGES_LEN.saturating_sub(line.len()).max(16),
        ));
    }
    line
}
