//! Searching assessments: `POST /api/v2/Vulnerabilities/Containers/search`, every page via
//! `paging.urls.nextPage`, walking back in windows of at most 7 days; and the lookup of one
//! image, which asks the image summary first (see [`super::summary`]).

use std::time::{Duration, Instant};

use chrono::{DateTime, SecondsFormat, Utc};
use reqwest::{Method, StatusCode};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::client::{LaceworkClient, MAX_SEARCH_WINDOW};
use super::rows::{ContainerVulnRow, parse_rows, report_from_rows, utc_text};
use super::summary::{ImageSummary, SummaryState};
use crate::error::{Error, Result};
use crate::image::ImageRef;
use crate::scan::{ScanReport, ScanStatus};

/// The container vulnerability search endpoint.
pub const SEARCH_PATH: &str = "/api/v2/Vulnerabilities/Containers/search";

/// Pages followed at most for one search, a guard against a server that never stops paging.
const MAX_PAGES: usize = 1000;

/// The longest look-back a lookup extends to when the image summary names an older scan: a
/// guard against walking back years of 7-day windows for one image.
pub const MAX_LOOK_BACK: Duration = Duration::from_secs(400 * 24 * 3600);

/// One search filter, as Lacework API v2 spells it: `value` for comparisons, `values` for
/// `in` / `not_in`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Filter {
    /// The row field, e.g. `evalCtx.image_info.digest`.
    pub field: String,
    /// The comparison, e.g. `eq` or `in`.
    pub expression: String,
    /// The value compared with (comparisons).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// The values matched (`in`, `not_in`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub values: Option<Vec<String>>,
}

impl Filter {
    /// `field eq value`.
    pub fn eq(field: &str, value: impl Into<String>) -> Self {
        Filter {
            field: field.to_string(),
            expression: "eq".to_string(),
            value: Some(value.into()),
            values: None,
        }
    }

    /// `field in values`: one search for several values (Lacework's CLI filters image
    /// summaries this way, `cli/cmd/vuln_container_list_assessments.go`).
    pub fn any<S: Into<String>>(field: &str, values: impl IntoIterator<Item = S>) -> Self {
        Filter {
            field: field.to_string(),
            expression: "in".to_string(),
            value: None,
            values: Some(values.into_iter().map(Into::into).collect()),
        }
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct SearchBody<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    time_filter: Option<TimeFilter>,
    filters: &'a [Filter],
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct TimeFilter {
    start_time: String,
    end_time: String,
}

#[derive(Deserialize)]
struct Page {
    #[serde(default)]
    data: Option<Vec<Value>>,
    #[serde(default)]
    paging: Option<Paging>,
}

#[derive(Deserialize)]
struct Paging {
    #[serde(default)]
    urls: Option<PagingUrls>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PagingUrls {
    #[serde(default)]
    next_page: Option<String>,
}

/// Lacework's name for a registry: Docker Hub is `index.docker.io` in Lacework's data, where
/// image references normalise it to `docker.io`.
pub fn lacework_registry(registry: &str) -> &str {
    match registry {
        "docker.io" | "registry-1.docker.io" => "index.docker.io",
        other => other,
    }
}

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// Lacework's names for a registry in image summaries: Docker Hub appears as `docker.io` there
/// (the Go SDK's fixture) and as `index.docker.io` in container rows, so both are asked for.
fn summary_registries(registry: &str) -> Vec<String> {
    match lacework_registry(registry) {
        "index.docker.io" => vec!["docker.io".into(), "index.docker.io".into()],
        other => vec![other.to_string()],
    }
}

impl LaceworkClient {
    /// Every `data` entry of a search at `path` with `body`, every page followed through
    /// `paging.urls.nextPage`. HTTP 204 (or an empty body) means none.
    pub(super) async fn search_pages(
        &self,
        path: &str,
        body: &Value,
        deadline: Instant,
    ) -> Result<Vec<Value>> {
        let mut data = Vec::new();
        let mut reply = self.call(Method::POST, path, Some(body), deadline).await?;
        // A server answering the same `nextPage` forever would spend the request budget on
        // one search: a page already read is an error.
        let mut seen = std::collections::HashSet::new();
        for _ in 0..MAX_PAGES {
            if reply.status == StatusCode::NO_CONTENT
                || reply.body.iter().all(u8::is_ascii_whitespace)
            {
                return Ok(data);
            }
            let page: Page = serde_json::from_slice(&reply.body).map_err(|e| {
                Error::remote(
                    self.service().to_string(),
                    None,
                    format!(
                        "malformed search response ({:?} error at line {} column {})",
                        e.classify(),
                        e.line(),
                        e.column()
                    ),
                )
            })?;
            data.extend(page.data.unwrap_or_default());
            let next = page
                .paging
                .and_then(|p| p.urls)
                .and_then(|u| u.next_page)
                .filter(|u| !u.trim().is_empty());
            match next {
                Some(url) if !seen.insert(url.clone()) => {
                    return Err(Error::remote(
                        self.service().to_string(),
                        None,
                        "the search's nextPage pointed to a page already read; \
                                  stopped following it",
                    ));
                }
                Some(url) => reply = self.call(Method::GET, &url, None, deadline).await?,
                None => return Ok(data),
            }
        }
        Err(Error::remote(
            self.service().to_string(),
            None,
            format!("the search returned more than {MAX_PAGES} pages"),
        ))
    }

    /// All rows matching `filters` between `start` and `end` (at most 7 days apart), every page
    /// followed. HTTP 204 means no rows.
    pub async fn search_rows(
        &self,
        filters: &[Filter],
        start: DateTime<Utc>,
        end: DateTime<Utc>,
        deadline: Option<Instant>,
    ) -> Result<Vec<ContainerVulnRow>> {
        let deadline = self.deadline(deadline);
        let body = serde_json::to_value(SearchBody {
            time_filter: Some(TimeFilter {
                start_time: rfc3339(start),
                end_time: rfc3339(end),
            }),
            filters,
        })
        .map_err(|e| Error::invalid("Lacework search", e))?;
        let data = self.search_pages(SEARCH_PATH, &body, deadline).await?;
        parse_rows(data).map_err(|e| {
            Error::remote(
                self.service().to_string(),
                None,
                format!("unexpected search rows: {e}"),
            )
        })
    }

    /// Image summaries matching `filters`, every page followed. Sent without a `timeFilter`,
    /// as Lacework's CLI does (it bounds `lastScanTime` with filters when it wants a range), so
    /// one search covers every scan Lacework kept.
    pub async fn search_image_summaries(
        &self,
        filters: &[Filter],
        deadline: Option<Instant>,
    ) -> Result<Vec<ImageSummary>> {
        let deadline = self.deadline(deadline);
        let body = serde_json::to_value(SearchBody {
            time_filter: None,
            filters,
        })
        .map_err(|e| Error::invalid("Lacework image summary search", e))?;
        let data = self
            .search_pages(super::summary::IMAGE_SUMMARY_PATH, &body, deadline)
            .await?;
        data.into_iter()
            .enumerate()
            .map(|(i, v)| {
                serde_path_to_error::deserialize(v).map_err(|e| {
                    Error::remote(
                        self.service().to_string(),
                        None,
                        format!("unexpected image summary {i}: {e}"),
                    )
                })
            })
            .collect()
    }

    /// Walks back from now in windows of at most 7 days over the configured look-back, newest
    /// window first, and returns the rows of the first window that has any.
    pub async fn search_recent(
        &self,
        filters: &[Filter],
        deadline: Option<Instant>,
    ) -> Result<Vec<ContainerVulnRow>> {
        self.search_back(filters, self.inner.config.look_back, deadline)
            .await
    }

    async fn search_back(
        &self,
        filters: &[Filter],
        look_back: Duration,
        deadline: Option<Instant>,
    ) -> Result<Vec<ContainerVulnRow>> {
        let mut end = Utc::now();
        let mut covered = Duration::ZERO;
        while covered < look_back {
            let span = (look_back - covered).min(MAX_SEARCH_WINDOW);
            let start = end - chrono::Duration::from_std(span).unwrap_or(chrono::Duration::days(7));
            let rows = self.search_rows(filters, start, end, deadline).await?;
            if !rows.is_empty() {
                return Ok(rows);
            }
            covered += span;
            end = start;
        }
        Ok(Vec::new())
    }

    /// The scan of `image` Lacework has, or a `not_found` report when it has no record of it.
    ///
    /// One image-summary search first (`POST /api/v2/VulnerabilityObservations/ImageSummary/search`,
    /// `digest in` the image's candidate digests; then, if enabled and nothing matched,
    /// `imageId in` them; an image known only by tag on registry, repository and tag). It tells
    /// an image scanned clean (`completed`, no findings, no further request) from one never
    /// scanned (`not_found`) and from failed or unsupported scans (`failed`). Only an image with
    /// findings costs a second search, for its rows (`evalCtx.image_info.digest` of the digest
    /// the summary names, walking back in 7-day windows to the summary's scan time), where the
    /// evaluation run last wins (see [`report_from_rows`]).
    pub async fn find_scan(
        &self,
        image: &ImageRef,
        deadline: Option<Instant>,
    ) -> Result<ScanReport> {
        let deadline = Some(self.deadline(deadline));
        match self.find_summary(image, deadline).await? {
            Some(summary) => self.report_for(&summary, deadline).await,
            None => Ok(not_found()),
        }
    }

    /// The image summary that describes `image`: of its candidate digests, the most specific
    /// one Lacework knows; of several summaries of that digest, the latest scan.
    async fn find_summary(
        &self,
        image: &ImageRef,
        deadline: Option<Instant>,
    ) -> Result<Option<ImageSummary>> {
        let candidates = image.candidate_digests();
        if candidates.is_empty() {
            let tag = image.tag.as_deref().unwrap_or("latest");
            let filters = [
                Filter::any("registry", summary_registries(&image.registry)),
                Filter::eq("repository", image.repository.clone()),
                Filter::eq("tag", tag),
            ];
            let found = self.search_image_summaries(&filters, deadline).await?;
            return Ok(newest(found.iter()).cloned());
        }
        let found = self
            .search_image_summaries(&[Filter::any("digest", candidates.clone())], deadline)
            .await?;
        if let Some(s) = pick(&found, &candidates, |s| s.digest.as_deref()) {
            return Ok(Some(s));
        }
        if self.inner.config.image_id_fallback {
            let found = self
                .search_image_summaries(&[Filter::any("imageId", candidates.clone())], deadline)
                .await?;
            return Ok(pick(&found, &candidates, |s| s.image_id.as_deref()));
        }
        Ok(None)
    }

    /// The report an image summary stands for: failed and clean scans from the summary alone,
    /// findings from the rows of the newest evaluation.
    async fn report_for(
        &self,
        summary: &ImageSummary,
        deadline: Option<Instant>,
    ) -> Result<ScanReport> {
        let scanned_at = summary.last_scanned();
        let digest = summary.digest.clone().filter(|d| !d.is_empty());
        match summary.state() {
            SummaryState::Failed { message } => {
                let mut report =
                    ScanReport::without_findings(ScanStatus::Failed, super::SOURCE, Some(message));
                report.scanned_at = scanned_at.map(utc_text);
                report.digest = digest;
                report.cap_fields();
                return Ok(report);
            }
            SummaryState::Completed if summary.findings() == 0 => {
                let mut report = ScanReport::completed(
                    super::SOURCE,
                    None,
                    scanned_at.map(utc_text),
                    Vec::new(),
                );
                report.digest = digest;
                report.cap_fields();
                return Ok(report);
            }
            SummaryState::Completed => {}
        }
        let (field, value) = match (&digest, summary.image_id.as_deref()) {
            (Some(d), _) => ("evalCtx.image_info.digest", d.as_str()),
            (None, Some(id)) if !id.is_empty() => ("imageId", id),
            _ => {
                return Err(self.remote(
                    "an image summary with findings names neither a digest nor an image id",
                ));
            }
        };
        // Far enough back to reach the scan the summary names, never less than configured.
        let since_scan = scanned_at
            .and_then(|t| (Utc::now() - t).to_std().ok())
            .map_or(Duration::ZERO, |age| age + Duration::from_secs(86_400));
        let look_back = self
            .inner
            .config
            .look_back
            .max(since_scan.min(MAX_LOOK_BACK));
        let rows = self
            .search_back(&[Filter::eq(field, value)], look_back, deadline)
            .await?;
        if rows.is_empty() {
            return Err(self.remote(format!(
                "Lacework's image summary lists {} findings for {value} but its vulnerability \
                 search returned none; try again shortly",
                summary.findings()
            )));
        }
        let mut report = report_from_rows(&rows, Some(value))?;
        if report.scanned_at.is_none() {
            report.scanned_at = scanned_at.map(utc_text);
        }
        Ok(report)
    }

    fn remote(&self, message: impl Into<String>) -> Error {
        Error::remote(self.service().to_string(), None, message.into())
    }
}

/// Of `found`, the summaries of the first candidate (most specific first) that has any; of
/// those, the latest scan.
fn pick(
    found: &[ImageSummary],
    candidates: &[&str],
    key: impl Fn(&ImageSummary) -> Option<&str>,
) -> Option<ImageSummary> {
    candidates
        .iter()
        .find_map(|c| newest(found.iter().filter(|s| key(s) == Some(*c))).cloned())
}

/// The summary with the latest scan time (unreadable times count as oldest).
fn newest<'a>(found: impl Iterator<Item = &'a ImageSummary>) -> Option<&'a ImageSummary> {
    found.max_by_key(|s| s.last_scanned())
}

pub(super) fn not_found() -> ScanReport {
    ScanReport::without_findings(ScanStatus::NotFound, super::SOURCE, None)
}
