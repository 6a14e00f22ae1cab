//! The opt-in `/mutate` endpoint: pins each checked `image: repo:tag` to `repo:tag@sha256:…`,
//! the digest the registry resolves the tag to, so the kubelet runs exactly what the
//! validating webhook checked.
//!
//! The answer always allows (deciding is the validating webhook's job) and carries a JSONPatch
//! only when there is something to pin:
//! - an image that already pins a digest gets no operation, so a reinvocation
//!   (`reinvocationPolicy: IfNeeded`) changes nothing: the endpoint is idempotent;
//! - when any tag of the object cannot be resolved there is no patch at all, with a warning;
//!   the validating webhook then meets the same failure and applies the failure policy;
//! - on UPDATE only new or changed containers are pinned, so an unchanged running pod is never
//!   restarted by a pin;
//! - each `replace` is preceded by a `test` of the image it replaces, so a patch computed on
//!   one version of the object cannot overwrite an image another webhook changed since.
//!
//! Mutating webhooks run before validating ones, so the validating webhook sees the pinned
//! reference and looks its scan up by that digest.

use futures_util::future::join_all;
use serde_json::{Value, json};

use crate::admission::controller::AdmissionController;
use crate::admission::images::{self, ContainerImage};
use crate::admission::review::{AdmissionResponse, AdmissionReview, Operation};
use crate::error::{Error, Result};
use crate::image::ImageRef;
use crate::policy::ContainerType;
use crate::registry::pinned_reference;

/// What one `/mutate` review did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MutateOutcome {
    /// `(container, pinned reference)` for every image the patch pins.
    pub pinned: Vec<(String, String)>,
    /// Why images were left as they are (resolution failures), one line each.
    pub failures: Vec<String>,
    /// Why nothing was looked at (excluded namespace, pinning off, …).
    pub skipped: Option<String>,
}

/// Answers a mutating review (JSON in, JSON out). Fails only when the body is not an
/// `AdmissionReview` request.
pub async fn review_json(
    controller: &AdmissionController,
    body: &[u8],
) -> Result<(Vec<u8>, MutateOutcome)> {
    let parsed = AdmissionReview::from_slice(body)?;
    let (response, outcome) = review(controller, parsed).await?;
    Ok((response.into_review().to_vec(), outcome))
}

/// Answers a parsed mutating review.
pub async fn review(
    controller: &AdmissionController,
    review: AdmissionReview,
) -> Result<(AdmissionResponse, MutateOutcome)> {
    let started = std::time::Instant::now();
    let Some(mut req) = review.request else {
        return Err(Error::invalid("admission review", "request: missing"));
    };
    if req.api_version.is_empty() {
        req.api_version = review.api_version;
    }
    let base = AdmissionResponse::from(&req);
    let skip = |why: &str| {
        Ok((
            base.clone(),
            MutateOutcome {
                skipped: Some(why.to_string()),
                ..MutateOutcome::default()
            },
        ))
    };
    let Some(resolver) = controller.resolver().filter(|_| controller.pins_digests()) else {
        return skip("digest pinning is off (registry.pin_digests)");
    };
    let cfg = controller.config();
    if req
        .namespace
        .as_deref()
        .is_some_and(|ns| cfg.excluded_namespaces.contains(ns))
    {
        return skip("namespace excluded");
    }
    if !matches!(req.operation, Operation::Create | Operation::Update) {
        return skip("operation not inspected");
    }
    let ephemeral_only = match req.sub_resource.as_deref() {
        None | Some("") => false,
        Some("ephemeralcontainers") => true,
        Some(_) => return skip("subresource not inspected"),
    };
    let Some(object) = req.object.as_ref() else {
        return skip("no object");
    };
    let Some(mut targets) = images::extract_with_paths(&req.kind, object) else {
        return skip("kind not inspected");
    };
    if ephemeral_only {
        targets.retain(|(_, t)| t.container.kind == ContainerType::Ephemeral);
    }
    if req.operation == Operation::Update {
        let old: Vec<ContainerImage> = req
            .old_object
            .as_ref()
            .and_then(|o| images::extract(&req.kind, o))
            .unwrap_or_default();
        targets.retain(|(_, t)| !old.contains(t));
    }
    // Only tag-only references need a pin; invalid ones are the validating webhook's to deny.
    let wanted: Vec<(String, ContainerImage, ImageRef)> = targets
        .into_iter()
        .filter_map(|(path, t)| {
            let image = ImageRef::parse(&t.image).ok()?;
            (image.digest.is_none() && !t.image.contains('@')).then_some((path, t, image))
        })
        .collect();
    if wanted.is_empty() {
        return skip("nothing to pin");
    }

    let until = tokio::time::Instant::from_std(started + cfg.deadline());
    let resolved = join_all(wanted.into_iter().map(|(path, target, image)| async move {
        let result = tokio::time::timeout_at(until, resolver.resolve(image)).await;
        (path, target, result)
    }))
    .await;

    let mut ops = Vec::new();
    let mut outcome = MutateOutcome::default();
    for (path, target, result) in resolved {
        let who = format!(
            "image {} (container {})",
            target.image, target.container.name
        );
        match result {
            Ok(Ok(image)) => match pinned_reference(&target.image, &image) {
                Some(pin) => {
                    ops.push(json!({"op": "test", "path": path, "value": target.image}));
                    ops.push(json!({"op": "replace", "path": path, "value": pin}));
                    outcome.pinned.push((target.container.name.clone(), pin));
                }
                None => outcome
                    .failures
                    .push(format!("{who}: the registry named no digest")),
            },
            Ok(Err(e)) => outcome.failures.push(format!("{who}: {e}")),
            Err(_) => outcome.failures.push(format!(
                "{who}: tag resolution did not finish within the review deadline of {} ms",
                cfg.deadline_ms
            )),
        }
    }
    if !outcome.failures.is_empty() {
        // A partial pin would leave the object half-checked; pin nothing and let the
        // validating webhook apply the failure policy to the same failure.
        let warnings: Vec<String> = outcome
            .failures
            .iter()
            .map(|f| format!("helios: not pinned: {f}"))
            .collect();
        tracing::warn!(target: "helios::admission", uid = %req.uid, failures = ?outcome.failures, "digest pinning skipped");
        outcome.pinned.clear();
        return Ok((
            base.with_warnings(warnings)
                .with_audit_annotation("pinned", "none"),
            outcome,
        ));
    }
    let annotation: serde_json::Map<String, Value> = outcome
        .pinned
        .iter()
        .map(|(c, p)| (c.clone(), Value::String(p.clone())))
        .collect();
    tracing::info!(target: "helios::admission", uid = %req.uid, pinned = outcome.pinned.len(), "pinned image digests");
    Ok((
        base.with_patch(&ops)
            .with_audit_annotation("pinned", Value::Object(annotation).to_string()),
        outcome,
    ))
}
