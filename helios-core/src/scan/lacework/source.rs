//! The Lacework [`ScanSource`]: the newest assessment, and what to do when Lacework has no
//! record of an image.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;

use super::client::LaceworkClient;
use super::ondemand::ScanState;
use crate::error::{Error, Result};
use crate::image::ImageRef;
use crate::scan::{Lookup, ScanReport, ScanSource, ScanStatus};

/// What the Lacework source does when Lacework has no record of an image (`not_found`; a clean,
/// failed or unsupported scan is a record).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoScan {
    /// Request an on-demand scan and wait for it, up to `wait` (and never past the caller's
    /// deadline); a scan still running then is `pending`. For CI.
    ScanAndWait {
        /// The longest wait for the scan.
        wait: Duration,
    },
    /// Request an on-demand scan and answer `pending` at once; later lookups follow that
    /// request. For admission, where a webhook cannot wait minutes.
    RequestScan,
    /// Answer `not_found`; never request a scan.
    None,
}

/// Scans from Lacework. Cheap to clone; clones share the client and the in-flight scan
/// requests, so a pending scan is followed up rather than requested again.
#[derive(Debug, Clone)]
pub struct LaceworkSource {
    client: LaceworkClient,
    no_scan: NoScan,
    requested: Arc<Mutex<HashMap<String, Requested>>>,
}

/// An on-demand scan this source requested and has not seen finish.
#[derive(Debug, Clone)]
struct Requested {
    request_id: String,
    at: Instant,
}

/// How long a requested scan is followed up before it is forgotten (and requested again):
/// Lacework documents scans of up to 15 minutes.
const FOLLOW_UP: Duration = Duration::from_secs(3600);

impl LaceworkSource {
    /// A source over `client`, doing `no_scan` for images without an assessment.
    pub fn new(client: LaceworkClient, no_scan: NoScan) -> Self {
        LaceworkSource {
            client,
            no_scan,
            requested: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    /// The client.
    pub fn client(&self) -> &LaceworkClient {
        &self.client
    }

    fn requested(&self) -> std::sync::MutexGuard<'_, HashMap<String, Requested>> {
        // The map holds plain strings; a panic elsewhere cannot leave it inconsistent.
        self.requested.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The lookup with service failures as typed errors (`ScanSource::scan` turns them into
    /// `unavailable` reports).
    pub(super) async fn lookup(&self, image: &ImageRef, lookup: Lookup) -> Result<ScanReport> {
        // Without a caller's deadline, waiting for a scan gets its full wait on top of the
        // client's usual allowance.
        let deadline = lookup.deadline.unwrap_or_else(|| {
            let wait = match self.no_scan {
                NoScan::ScanAndWait { wait } => wait,
                _ => Duration::ZERO,
            };
            self.client.deadline(None) + wait
        });
        let key = image.reference.clone();

        // A scan we requested earlier: follow it up (a GET, no side effect) before searching.
        let earlier = {
            let mut requested = self.requested();
            requested.retain(|_, r| r.at.elapsed() < FOLLOW_UP);
            requested.get(&key).map(|r| r.request_id.clone())
        };
        if let Some(request_id) = earlier {
            let state = match self.client.scan_status(&request_id, Some(deadline)).await {
                Ok(state) => Some(state),
                // Lacework no longer knows the request (expired, or a different account): forget
                // it and look the image up afresh.
                Err(Error::Remote { code, .. }) if code.as_deref() == Some("404") => {
                    self.requested().remove(&key);
                    None
                }
                Err(e) => return Err(e),
            };
            if let Some(state) = state {
                return self
                    .follow_up(image, &key, &request_id, state, deadline)
                    .await;
            }
        }

        let report = self.client.find_scan(image, Some(deadline)).await?;
        // Only an image Lacework has no record of gets a scan request: a clean scan is
        // `completed`, and a failed or unsupported one would fail again.
        if report.status != ScanStatus::NotFound || lookup.dry_run || self.no_scan == NoScan::None {
            return Ok(report);
        }
        let request_id = self.client.request_scan(image, Some(deadline)).await?;
        tracing::info!(service = %self.client.service(), image = %image.reference, request_id, "requested an on-demand scan");
        self.requested().insert(
            key.clone(),
            Requested {
                request_id: request_id.clone(),
                at: Instant::now(),
            },
        );
        match self.no_scan {
            NoScan::ScanAndWait { wait } => {
                self.finish(image, &key, &request_id, wait, deadline).await
            }
            _ => Ok(pending(&request_id)),
        }
    }

    async fn follow_up(
        &self,
        image: &ImageRef,
        key: &str,
        request_id: &str,
        state: ScanState,
        deadline: Instant,
    ) -> Result<ScanReport> {
        match (state, self.no_scan) {
            (ScanState::Scanning, NoScan::ScanAndWait { wait }) => {
                self.finish(image, key, request_id, wait, deadline).await
            }
            (ScanState::Scanning, _) => Ok(pending(request_id)),
            (state, _) => self.settle(image, key, request_id, state, deadline).await,
        }
    }

    /// Waits up to `wait` for the scan, then fetches its rows; both within the caller's
    /// `deadline`, which is never extended.
    async fn finish(
        &self,
        image: &ImageRef,
        key: &str,
        request_id: &str,
        wait: Duration,
        deadline: Instant,
    ) -> Result<ScanReport> {
        let until = deadline.min(Instant::now() + wait);
        let state = self.client.wait_for_scan(request_id, until).await?;
        self.settle(image, key, request_id, state, deadline).await
    }

    async fn settle(
        &self,
        image: &ImageRef,
        key: &str,
        request_id: &str,
        state: ScanState,
        deadline: Instant,
    ) -> Result<ScanReport> {
        match state {
            ScanState::Scanning => Ok(pending(request_id)),
            ScanState::Failed { message } => {
                self.requested().remove(key);
                let mut report =
                    ScanReport::without_findings(ScanStatus::Failed, super::SOURCE, Some(message));
                report.id = Some(request_id.to_string());
                Ok(report)
            }
            ScanState::Completed { eval_guid } => {
                let report = self
                    .client
                    .scan_results(request_id, eval_guid.as_deref(), image, Some(deadline))
                    .await?;
                self.requested().remove(key);
                Ok(report)
            }
        }
    }
}

fn pending(request_id: &str) -> ScanReport {
    let mut report = ScanReport::without_findings(ScanStatus::Pending, super::SOURCE, None);
    report.id = Some(request_id.to_string());
    report
}

#[async_trait]
impl ScanSource for LaceworkSource {
    /// Never fails for service trouble: network, auth and rate-limit problems become an
    /// `unavailable` report naming the cause, so the policy decides.
    async fn scan(&self, image: &ImageRef, lookup: Lookup) -> Result<ScanReport> {
        match self.lookup(image, lookup).await {
            Ok(report) => Ok(report),
            Err(e @ (Error::Unavailable { .. } | Error::Auth { .. } | Error::Remote { .. })) => {
                tracing::warn!(image = %image.reference, error = %e, "Lacework lookup failed");
                Ok(ScanReport::without_findings(
                    ScanStatus::Unavailable,
                    super::SOURCE,
                    Some(e.to_string()),
                ))
            }
            Err(e) => Err(e),
        }
    }
}
