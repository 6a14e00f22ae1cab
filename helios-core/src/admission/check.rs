//! The per-image check of a review: resolve the tag → look the scan up → evaluate the policy,
//! each distinct image once, everything within the review's deadline.

use std::time::Instant;

use futures_util::StreamExt;
use futures_util::future::join_all;

use crate::admission::controller::AdmissionController;
use crate::admission::images::{ContainerImage, ObjectMeta};
use crate::admission::response::{CheckResult, Checked, FailureKind};
use crate::admission::review::AdmissionRequest;
use crate::admission::settings::{ControllerConfig, UnavailableScans};
use crate::image::ImageRef;
use crate::policy::{PolicyInput, User, Workload};
use crate::registry::resolve_with;
use crate::scan::lacework::BudgetShare;
use crate::scan::{Lookup, ScanReport, ScanStatus};

impl AdmissionController {
    /// Checks every target: containers past the limits become limit failures, each distinct
    /// image is looked up once (charged to the review's budget share), then the policy is
    /// evaluated per container, a few at a time, until the deadline.
    pub(super) async fn check_all(
        &self,
        req: &AdmissionRequest,
        meta: &ObjectMeta,
        targets: Vec<ContainerImage>,
        overflow: Vec<ContainerImage>,
        lookup: Lookup,
        deadline: Instant,
    ) -> Vec<Checked> {
        let limits = &self.config.limits;
        let total = targets.len() + overflow.len();

        // Slot of each target: its distinct image, or what stopped it before the lookup.
        enum Slot {
            Image(usize),
            Done(CheckResult),
        }
        let mut distinct: Vec<ImageRef> = Vec::new();
        let mut index: std::collections::HashMap<String, usize> = Default::default();
        let slots: Vec<Slot> = targets
            .iter()
            .map(|t| match ImageRef::parse(&t.image) {
                Err(e) => Slot::Done(CheckResult::InvalidImage(e.to_string())),
                Ok(image) => match index.get(&image.reference) {
                    Some(&i) => Slot::Image(i),
                    None if distinct.len() >= limits.max_images => Slot::Done(CheckResult::Failed(
                        FailureKind::Limit,
                        limits.images_reason(),
                    )),
                    None => {
                        index.insert(image.reference.clone(), distinct.len());
                        distinct.push(image);
                        Slot::Image(distinct.len() - 1)
                    }
                },
            })
            .collect();

        let until = tokio::time::Instant::from_std(deadline);
        let share = limits.share(&self.ledger, req);
        let scans = join_all(
            distinct
                .into_iter()
                .map(|image| self.lookup(image, lookup, until, share.clone())),
        )
        .await;

        let mut results: Vec<Option<Checked>> = Vec::with_capacity(total);
        let mut jobs = Vec::new();
        for (i, (target, slot)) in targets.into_iter().zip(slots).enumerate() {
            let (digest, result) = match slot {
                Slot::Done(result) => (None, result),
                Slot::Image(j) => {
                    let (image, scan) = &scans[j];
                    match scan {
                        Err((kind, reason)) => (
                            checked_digest(image),
                            CheckResult::Failed(*kind, reason.clone()),
                        ),
                        Ok(scan) => {
                            results.push(None);
                            jobs.push((i, target, image.clone(), scan.clone()));
                            continue;
                        }
                    }
                }
            };
            results.push(Some(Checked {
                target,
                digest,
                result,
            }));
        }
        let evaluated: Vec<(usize, Checked)> = futures_util::stream::iter(jobs)
            .map(|(i, target, image, scan)| async move {
                (
                    i,
                    self.evaluate(req, meta, target, image, scan, until).await,
                )
            })
            .buffered(limits.parallel_evaluations.max(1))
            .collect()
            .await;
        for (i, checked) in evaluated {
            if let Some(slot) = results.get_mut(i) {
                *slot = Some(checked);
            }
        }
        let reason = limits.containers_reason(total);
        results
            .into_iter()
            .flatten()
            .chain(overflow.into_iter().map(|target| Checked {
                target,
                digest: None,
                result: CheckResult::Failed(FailureKind::Limit, reason.clone()),
            }))
            .collect()
    }

    /// Looks up one distinct image — its tag resolved at the registry first, when a resolver
    /// is set — charged to the review's share of the Lacework budget. Returns the image as
    /// resolved (its digests fill the policy input) with the scan or what stopped the lookup.
    async fn lookup(
        &self,
        image: ImageRef,
        lookup: Lookup,
        until: tokio::time::Instant,
        share: BudgetShare,
    ) -> (
        ImageRef,
        std::result::Result<ScanReport, (FailureKind, String)>,
    ) {
        let resolving = resolve_with(self.resolver.as_ref(), image.clone());
        let image = match tokio::time::timeout_at(until, resolving).await {
            Err(_) => {
                let reason = deadline_reason("tag resolution", &self.config);
                return (image, Err((FailureKind::Deadline, reason)));
            }
            Ok(Err(e)) => {
                let reason = format!("cannot resolve the tag to a digest: {e}");
                return (image, Err((FailureKind::Resolve, reason)));
            }
            Ok(Ok(resolved)) => resolved,
        };
        let scan = self.scan(&image, lookup, until, share).await;
        (image, scan)
    }

    /// The scan of one (resolved) image, until the deadline.
    async fn scan(
        &self,
        image: &ImageRef,
        lookup: Lookup,
        until: tokio::time::Instant,
        share: BudgetShare,
    ) -> std::result::Result<ScanReport, (FailureKind, String)> {
        let scan = share.scope(self.scans.scan(image, lookup));
        let scan = match tokio::time::timeout_at(until, scan).await {
            Err(_) => {
                return Err((
                    FailureKind::Deadline,
                    deadline_reason("scan lookup", &self.config),
                ));
            }
            // The source gave up because the review's deadline (its `Lookup::deadline`)
            // passed: a deadline failure, as when the timeout above fires first.
            Ok(Err(_)) if tokio::time::Instant::now() >= until => {
                return Err((
                    FailureKind::Deadline,
                    deadline_reason("scan lookup", &self.config),
                ));
            }
            Ok(Err(e)) => return Err((FailureKind::Scan, e.to_string())),
            Ok(Ok(scan)) => scan,
        };
        if scan.status == ScanStatus::Unavailable && tokio::time::Instant::now() >= until {
            return Err((
                FailureKind::Deadline,
                deadline_reason("scan lookup", &self.config),
            ));
        }
        if scan.status == ScanStatus::Unavailable
            && self.config.unavailable_scans == UnavailableScans::FailurePolicy
        {
            let reason = scan
                .error
                .clone()
                .unwrap_or_else(|| format!("the scan source ({}) is unavailable", scan.source));
            return Err((FailureKind::Scan, reason));
        }
        Ok(scan)
    }

    /// Evaluates the policy on one container, until the deadline.
    async fn evaluate(
        &self,
        req: &AdmissionRequest,
        meta: &ObjectMeta,
        target: ContainerImage,
        image: ImageRef,
        scan: ScanReport,
        until: tokio::time::Instant,
    ) -> Checked {
        let digest = checked_digest(&image);
        if tokio::time::Instant::now() >= until {
            // Not even started: an evaluation begun now would only hold a pool thread for an
            // answer nobody waits for.
            return Checked {
                target,
                digest,
                result: CheckResult::Failed(
                    FailureKind::Deadline,
                    deadline_reason("policy evaluation", &self.config),
                ),
            };
        }
        let scan_status = scan.status;
        let scan_id = scan.id.clone();
        let input = PolicyInput::for_admission(image, scan, workload(req, meta, &target));
        let result = match tokio::time::timeout_at(until, self.policy.evaluate(&input)).await {
            Err(_) => CheckResult::Failed(
                FailureKind::Deadline,
                deadline_reason("policy evaluation", &self.config),
            ),
            Ok(Err(e)) => CheckResult::Failed(FailureKind::Policy, e.to_string()),
            Ok(Ok(decision)) => CheckResult::Decided {
                decision,
                scan_status,
                scan_id,
            },
        };
        Checked {
            target,
            digest,
            result,
        }
    }
}

/// The workload of a container at admission, for its policy input.
fn workload(req: &AdmissionRequest, meta: &ObjectMeta, target: &ContainerImage) -> Workload {
    Workload {
        kind: req.kind.kind.clone(),
        namespace: req.namespace.clone(),
        name: Some(req.name.clone())
            .filter(|n| !n.is_empty())
            .or_else(|| meta.name.clone()),
        operation: req.operation.as_str().to_string(),
        container: target.container.clone(),
        labels: meta.labels.clone(),
        annotations: meta.annotations.clone(),
        user: User {
            username: req.user_info.username.clone(),
            groups: req.user_info.groups.clone(),
        },
    }
}
/// What the audit annotation names for a checked image: the pinned digest, else the one its
/// tag resolved to.
fn checked_digest(image: &ImageRef) -> Option<String> {
    image
        .digest
        .clone()
        .or_else(|| image.resolved_digest.clone())
}

fn deadline_reason(what: &str, cfg: &ControllerConfig) -> String {
    format!(
        "{what} did not finish within the review deadline of {} ms",
        cfg.deadline_ms
    )
}
