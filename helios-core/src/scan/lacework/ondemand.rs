//! On-demand scans: `POST /api/v2/Vulnerabilities/Containers/scan`, polling
//! `GET …/scan/{requestId}` with backoff, then fetching the rows of that request only.

use std::time::{Duration, Instant};

use chrono::Utc;
use reqwest::Method;
use serde::Deserialize;
use serde_json::json;

use super::client::{LaceworkClient, MAX_SEARCH_WINDOW};
use super::rows::report_from_rows;
use super::search::{Filter, lacework_registry};
use crate::error::{Error, Result};
use crate::image::ImageRef;
use crate::scan::{ScanReport, ScanStatus};

/// The on-demand scan endpoint.
pub const SCAN_PATH: &str = "/api/v2/Vulnerabilities/Containers/scan";

/// Where an on-demand scan stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScanState {
    /// Still running.
    Scanning,
    /// Done; its rows can be fetched.
    Completed {
        /// The evaluation the scan produced, when Lacework names it.
        eval_guid: Option<String>,
    },
    /// Lacework could not scan the image.
    Failed {
        /// Lacework's explanation.
        message: String,
    },
}

#[derive(Deserialize)]
#[serde(bound(deserialize = "T: Deserialize<'de>"))]
struct Envelope<T> {
    #[serde(default = "none")]
    data: Option<T>,
    #[serde(default)]
    message: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ScanData {
    #[serde(default)]
    request_id: Option<String>,
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    eval_guid: Option<String>,
    #[serde(default)]
    message: Option<String>,
    #[serde(default)]
    error: Option<String>,
}

fn none<T>() -> Option<T> {
    None
}

impl LaceworkClient {
    fn parse<T: for<'de> Deserialize<'de>>(&self, body: &[u8], what: &str) -> Result<Envelope<T>> {
        serde_json::from_slice(body).map_err(|e| {
            Error::remote(
                self.service().to_string(),
                None,
                format!(
                    "malformed {what} response ({:?} error at line {} column {})",
                    e.classify(),
                    e.line(),
                    e.column()
                ),
            )
        })
    }

    /// Requests an on-demand scan of `image` (by digest when it has one, else by tag) and
    /// returns the request id.
    pub async fn request_scan(
        &self,
        image: &ImageRef,
        deadline: Option<Instant>,
    ) -> Result<String> {
        let deadline = self.deadline(deadline);
        let tag = image
            .digest
            .clone()
            .or_else(|| image.tag.clone())
            .unwrap_or_else(|| "latest".into());
        let body = json!({
            "registry": lacework_registry(&image.registry),
            "repository": image.repository,
            "tag": tag,
        });
        let reply = self
            .call(Method::POST, SCAN_PATH, Some(&body), deadline)
            .await?;
        let env: Envelope<ScanData> = self.parse(&reply.body, "scan request")?;
        let message = env.message.clone();
        env.data
            .and_then(|d| d.request_id)
            .filter(|id| !id.is_empty())
            .ok_or_else(|| {
                Error::remote(
                    self.service().to_string(),
                    None,
                    format!(
                        "the scan request was not accepted: {}",
                        message.unwrap_or_else(|| "no requestId in the answer".into())
                    ),
                )
            })
    }

    /// The state of on-demand scan `request_id`.
    pub async fn scan_status(
        &self,
        request_id: &str,
        deadline: Option<Instant>,
    ) -> Result<ScanState> {
        let deadline = self.deadline(deadline);
        let path = format!("{SCAN_PATH}/{request_id}");
        let reply = self.call(Method::GET, &path, None, deadline).await?;
        let env: Envelope<ScanData> = self.parse(&reply.body, "scan status")?;
        let data = env.data.unwrap_or(ScanData {
            request_id: None,
            status: None,
            eval_guid: None,
            message: None,
            error: None,
        });
        let status = data.status.unwrap_or_default().to_ascii_lowercase();
        Ok(match status.as_str() {
            "completed" | "success" | "succeeded" => ScanState::Completed {
                eval_guid: data.eval_guid.filter(|g| !g.is_empty()),
            },
            "scanning" | "pending" | "queued" | "inprogress" | "in_progress" | "running" => {
                ScanState::Scanning
            }
            "failed" | "failure" | "error" => ScanState::Failed {
                message: data
                    .error
                    .or(data.message)
                    .or(env.message)
                    .unwrap_or_else(|| "the scan failed".into()),
            },
            other => {
                return Err(Error::remote(
                    self.service().to_string(),
                    None,
                    format!("unknown scan status {other:?} for request {request_id}"),
                ));
            }
        })
    }

    /// Polls scan `request_id` with backoff until it completes or fails, or `deadline` passes
    /// (then [`ScanState::Scanning`]).
    pub async fn wait_for_scan(&self, request_id: &str, deadline: Instant) -> Result<ScanState> {
        let cfg = &self.inner.config;
        let mut interval = cfg.poll_initial;
        loop {
            let now = Instant::now();
            if now + interval > deadline {
                // One last look right at the deadline rather than sleeping past it.
                tokio::time::sleep_until(deadline.into()).await;
                return self
                    .scan_status(request_id, Some(deadline + Duration::from_secs(5)))
                    .await;
            }
            tokio::time::sleep(interval).await;
            match self.scan_status(request_id, Some(deadline)).await? {
                ScanState::Scanning => {
                    tracing::debug!(service = %self.service(), request_id, "scan still running");
                    interval = (interval * 2).min(cfg.poll_max);
                }
                done => return Ok(done),
            }
        }
    }

    /// The report of on-demand scan `request_id`: only its rows (`scan_request_props.reqId`),
    /// and not re-evaluations (`is_reeval = false`), the filter Lacework's own CLI needed. A
    /// completed scan without rows is a clean image.
    pub async fn scan_results(
        &self,
        request_id: &str,
        eval_guid: Option<&str>,
        image: &ImageRef,
        deadline: Option<Instant>,
    ) -> Result<ScanReport> {
        let filters = [
            Filter::eq("evalCtx.scan_request_props.reqId", request_id),
            Filter::eq("evalCtx.is_reeval", "false"),
        ];
        let end = Utc::now() + chrono::Duration::minutes(5);
        let start = end
            - chrono::Duration::from_std(MAX_SEARCH_WINDOW).unwrap_or(chrono::Duration::days(7));
        let rows = self.search_rows(&filters, start, end, deadline).await?;
        if rows.is_empty() {
            let mut report = ScanReport::completed(
                super::SOURCE,
                eval_guid
                    .map(str::to_string)
                    .or_else(|| Some(request_id.to_string())),
                Some(Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)),
                Vec::new(),
            );
            report.status = ScanStatus::Completed;
            report.digest = image.digest.clone();
            return Ok(report);
        }
        report_from_rows(
            &rows,
            image.digest.as_deref().filter(|d| {
                rows.iter()
                    .any(|r| r.digest() == Some(*d) || r.image_id() == Some(*d))
            }),
        )
    }
}
