//! Searching assessments: `POST /api/v2/Vulnerabilities/Containers/search`, every page via
//! `paging.urls.nextPage`, walking back in windows of at most 7 days.

use std::time::{Duration, Instant};

use chrono::{DateTime, SecondsFormat, Utc};
use reqwest::{Method, StatusCode};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::client::{LaceworkClient, MAX_SEARCH_WINDOW};
use super::rows::{ContainerVulnRow, parse_rows, report_from_rows};
use crate::error::{Error, Result};
use crate::image::ImageRef;
use crate::scan::{ScanReport, ScanStatus};

/// The container vulnerability search endpoint.
pub const SEARCH_PATH: &str = "/api/v2/Vulnerabilities/Containers/search";

/// Pages followed at most for one search, a guard against a server that never stops paging.
const MAX_PAGES: usize = 1000;

/// One search filter, as Lacework API v2 spells it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Filter {
    /// The row field, e.g. `evalCtx.image_info.digest`.
    pub field: String,
    /// The comparison, e.g. `eq`.
    pub expression: String,
    /// The value compared with.
    pub value: String,
}

impl Filter {
    /// `field eq value`.
    pub fn eq(field: &str, value: impl Into<String>) -> Self {
        Filter {
            field: field.to_string(),
            expression: "eq".to_string(),
            value: value.into(),
        }
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct SearchBody<'a> {
    time_filter: TimeFilter,
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

impl LaceworkClient {
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
            time_filter: TimeFilter {
                start_time: rfc3339(start),
                end_time: rfc3339(end),
            },
            filters,
        })
        .map_err(|e| Error::invalid("Lacework search", e))?;

        let mut rows = Vec::new();
        // A server answering the same `nextPage` forever would spend the request budget on
        // one search: a page already read is an error.
        let mut seen = std::collections::HashSet::new();
        let mut reply = self
            .call(Method::POST, SEARCH_PATH, Some(&body), deadline)
            .await?;
        for _ in 0..MAX_PAGES {
            if reply.status == StatusCode::NO_CONTENT
                || reply.body.iter().all(u8::is_ascii_whitespace)
            {
                return Ok(rows);
            }
            let page: Page = serde_json::from_slice(&reply.body).map_err(|e| Error::Remote {
                service: self.service().to_string(),
                code: None,
                message: format!(
                    "malformed search response ({:?} error at line {} column {})",
                    e.classify(),
                    e.line(),
                    e.column()
                ),
            })?;
            rows.extend(
                parse_rows(page.data.unwrap_or_default()).map_err(|e| Error::Remote {
                    service: self.service().to_string(),
                    code: None,
                    message: format!("unexpected search rows: {e}"),
                })?,
            );
            let next = page
                .paging
                .and_then(|p| p.urls)
                .and_then(|u| u.next_page)
                .filter(|u| !u.trim().is_empty());
            match next {
                Some(url) if !seen.insert(url.clone()) => {
                    return Err(Error::Remote {
                        service: self.service().to_string(),
                        code: None,
                        message: "the search's nextPage pointed to a page already read; \
                                  stopped following it"
                            .into(),
                    });
                }
                Some(url) => reply = self.call(Method::GET, &url, None, deadline).await?,
                None => return Ok(rows),
            }
        }
        Err(Error::Remote {
            service: self.service().to_string(),
            code: None,
            message: format!("the search returned more than {MAX_PAGES} pages"),
        })
    }

    /// Walks back from now in windows of at most 7 days over the configured look-back, newest
    /// window first, and returns the rows of the first window that has any.
    pub async fn search_recent(
        &self,
        filters: &[Filter],
        deadline: Option<Instant>,
    ) -> Result<Vec<ContainerVulnRow>> {
        let look_back = self.inner.config.look_back;
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

    /// The newest completed assessment of `image`, or a `not_found` report.
    ///
    /// An image with a digest is searched on `evalCtx.image_info.digest` (then, if enabled, on
    /// `imageId`); an image known only by tag on registry, repository and tag, the newest digest
    /// seen under that tag winning. Of the evaluations found, the newest `evalGuid` wins.
    pub async fn find_scan(
        &self,
        image: &ImageRef,
        deadline: Option<Instant>,
    ) -> Result<ScanReport> {
        let deadline = Some(self.deadline(deadline));
        if let Some(digest) = &image.digest {
            let rows = self
                .search_recent(&[Filter::eq("evalCtx.image_info.digest", digest)], deadline)
                .await?;
            if !rows.is_empty() {
                return report_from_rows(&rows, Some(digest));
            }
            if self.inner.config.image_id_fallback {
                let rows = self
                    .search_recent(&[Filter::eq("imageId", digest)], deadline)
                    .await?;
                if !rows.is_empty() {
                    return report_from_rows(&rows, Some(digest));
                }
            }
            return Ok(not_found());
        }
        let tag = image.tag.as_deref().unwrap_or("latest");
        let filters = [
            Filter::eq(
                "evalCtx.image_info.registry",
                lacework_registry(&image.registry),
            ),
            Filter::eq("evalCtx.image_info.repo", image.repository.clone()),
            Filter::eq("evalCtx.image_info.tags[0]", tag),
        ];
        let rows = self.search_recent(&filters, deadline).await?;
        match newest_digest(&rows) {
            Some(digest) => report_from_rows(&rows, Some(&digest)),
            None if rows.is_empty() => Ok(not_found()),
            None => report_from_rows(&rows, None),
        }
    }
}

/// The digest (or image id) of the most recently scanned image among `rows`.
fn newest_digest(rows: &[ContainerVulnRow]) -> Option<String> {
    rows.iter()
        .filter_map(|r| {
            let id = r.digest().or(r.image_id())?;
            let info = r.eval_ctx.as_ref().and_then(|c| c.image_info.as_ref());
            let at = info
                .and_then(|i| i.scan_created_time.as_ref())
                .and_then(|t| t.to_utc())
                .or_else(|| {
                    r.start_time
                        .as_deref()
                        .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
                        .map(|t| t.with_timezone(&Utc))
                });
            Some((at, id))
        })
        .max()
        .map(|(_, id)| id.to_string())
}

pub(crate) fn not_found() -> ScanReport {
    ScanReport::without_findings(ScanStatus::NotFound, super::SOURCE, None)
}
