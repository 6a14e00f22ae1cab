//! Per-review limits: what one AdmissionReview may cost, so that a review written to be
//! expensive (thousands of containers, hundreds of distinct images) cannot spend the Lacework
//! budget of every other review or hold the webhook's workers past its deadline.
//!
//! Past a limit the containers are not checked: they are failures of kind
//! [`FailureKind::Limit`](crate::admission::FailureKind::Limit) with a reason naming the setting,
//! and the failure policy decides.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::admission::AdmissionRequest;
use crate::error::{Error, Result};
use crate::scan::lacework::{BudgetShare, ShareLedger};

/// Default [`ReviewLimits::max_containers`]: far above any real Pod, far below what a 3 MiB
/// request can list (~60,000).
pub const DEFAULT_MAX_CONTAINERS: usize = 256;
/// Default [`ReviewLimits::max_images`].
pub const DEFAULT_MAX_IMAGES: usize = 32;

/// What one review may cost. Deserialises from `admission.limits` of the webhook configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ReviewLimits {
    /// Containers checked per review (all lists); the rest are limit failures.
    pub max_containers: usize,
    /// Distinct images (after normalisation) looked up per review; containers of further images
    /// are limit failures. Duplicates are looked up once whatever this is.
    pub max_images: usize,
    /// Share (0 to 1) of the Lacework request budget one review may spend.
    pub lacework_share_per_review: f64,
    /// Share of the Lacework request budget one namespace may spend per budget window (an hour).
    pub lacework_share_per_namespace: f64,
    /// Share of the Lacework request budget one user may spend per budget window.
    pub lacework_share_per_user: f64,
    /// Policy evaluations of one review queued on the evaluation pool at once: small, so that a
    /// review with hundreds of containers takes turns with the others instead of filling the
    /// queue ahead of them.
    pub parallel_evaluations: usize,
}

impl Default for ReviewLimits {
    fn default() -> Self {
        ReviewLimits {
            max_containers: DEFAULT_MAX_CONTAINERS,
            max_images: DEFAULT_MAX_IMAGES,
            // 24 of Lacework's 480 requests per hour: a new Deployment of a few images needs a
            // handful (token, search, on-demand scan request).
            lacework_share_per_review: 0.05,
            lacework_share_per_namespace: 0.25,
            lacework_share_per_user: 0.25,
            parallel_evaluations: 2,
        }
    }
}

impl ReviewLimits {
    /// Checks the values the types allow but that make no sense.
    pub fn validate(&self) -> Result<()> {
        let invalid = |reason: &str| Err(Error::invalid("webhook config", reason));
        if self.max_containers == 0 || self.max_images == 0 || self.parallel_evaluations == 0 {
            return invalid(
                "admission.limits: max_containers, max_images and parallel_evaluations must be above 0",
            );
        }
        for share in [
            self.lacework_share_per_review,
            self.lacework_share_per_namespace,
            self.lacework_share_per_user,
        ] {
            if !(share > 0.0 && share <= 1.0) {
                return invalid("admission.limits: lacework shares must be above 0 and at most 1");
            }
        }
        Ok(())
    }

    /// The Lacework budget share of one review of `req`: its own, its namespace's and its
    /// user's.
    pub(crate) fn share(&self, ledger: &Arc<ShareLedger>, req: &AdmissionRequest) -> BudgetShare {
        let mut share = BudgetShare::review(
            ledger.clone(),
            self.lacework_share_per_review,
            "admission.limits.lacework_share_per_review",
        );
        if let Some(ns) = req.namespace.as_deref().filter(|n| !n.is_empty()) {
            share = share.account(
                format!("namespace {ns}"),
                self.lacework_share_per_namespace,
                "admission.limits.lacework_share_per_namespace",
            );
        }
        if let Some(user) = req.user_info.username.as_deref().filter(|u| !u.is_empty()) {
            share = share.account(
                format!("user {user}"),
                self.lacework_share_per_user,
                "admission.limits.lacework_share_per_user",
            );
        }
        share
    }

    /// The reason given for containers past [`Self::max_containers`].
    pub(crate) fn containers_reason(&self, total: usize) -> String {
        format!(
            "the review has {total} containers, more than the {} checked per review \
             (admission.limits.max_containers)",
            self.max_containers
        )
    }

    /// The reason given for containers of images past [`Self::max_images`].
    pub(crate) fn images_reason(&self) -> String {
        format!(
            "the review names more than {} distinct images, the most looked up per review \
             (admission.limits.max_images)",
            self.max_images
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_nonsense_is_refused() {
        assert!(ReviewLimits::default().validate().is_ok());
        let zero = ReviewLimits {
            max_images: 0,
            ..ReviewLimits::default()
        };
        assert!(zero.validate().is_err());
        let share = ReviewLimits {
            lacework_share_per_user: 1.5,
            ..ReviewLimits::default()
        };
        assert!(share.validate().is_err());
    }
}
