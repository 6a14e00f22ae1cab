//! Decision logs: one structured event per answered review, shaped like
//! [OPA's decision log](https://www.openpolicyagent.org/docs/management-decision-logs)
//! (`decision_id`, `timestamp`, `path`, `input`, `result`, `labels`, plus the `policy` that
//! decided), written as a JSON line on standard output and, optionally, POSTed in batches to a
//! collector that speaks OPA's decision log service API (a gzip-compressed JSON array to
//! `<url>/logs`).
//!
//! The webhook's YAML configuration:
//!
//! ```yaml
//! decision_logs:
//!   console: true                    # one JSON line per review on standard output
//!   service:                         # optional
//!     url: https://collector:8443    # batches go to <url>/logs
//!     batch_size: 100
//!     flush_interval_ms: 5000
//!     max_queue: 10000
//! ```
//!
//! Logging never blocks a review or changes its answer: events go through a bounded queue to
//! one background task; when the queue is full the event is dropped and counted
//! (`helios_admission_decision_logs_total{outcome="dropped"}`), and a batch the collector does
//! not take is counted `failed`, not retried.

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc;

use crate::admission::server::Metrics;
use crate::admission::{CheckedImage, RequestSummary, ReviewOutcome};
use crate::error::{Error, Result};
use crate::policy::PolicyRef;

/// How long one batch POST may take before it counts as failed.
pub const SERVICE_TIMEOUT: Duration = Duration::from_secs(10);

/// Events the writer takes off the queue at once (one console write for all of them).
const RECEIVE_AT_ONCE: usize = 256;

/// Bytes of the console buffer kept between writes.
const LINES_KEPT: usize = 64 * 1024;

/// The `decision_logs:` section of the webhook configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DecisionLogConfig {
    /// One JSON line per review on standard output (default `true`).
    pub console: bool,
    /// A collector the events are POSTed to in batches (off by default).
    pub service: Option<ServiceConfig>,
}

impl Default for DecisionLogConfig {
    fn default() -> Self {
        DecisionLogConfig {
            console: true,
            service: None,
        }
    }
}

/// A decision log collector (OPA's decision log service API).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceConfig {
    /// The service's base URL; batches are POSTed to `<url>/logs`.
    pub url: String,
    /// Events per batch (default 100): a full batch is sent at once.
    #[serde(default = "default_batch_size")]
    pub batch_size: usize,
    /// A batch that is not full is sent after this long (default 5000 ms).
    #[serde(default = "default_flush_interval_ms")]
    pub flush_interval_ms: u64,
    /// Events waiting at most (default 10000); more are dropped and counted.
    #[serde(default = "default_max_queue")]
    pub max_queue: usize,
}

fn default_batch_size() -> usize {
    100
}

fn default_flush_interval_ms() -> u64 {
    5000
}

fn default_max_queue() -> usize {
    10_000
}

impl DecisionLogConfig {
    /// Decision logs off: no console line, no service.
    pub fn off() -> Self {
        DecisionLogConfig {
            console: false,
            service: None,
        }
    }

    /// Checks the service's URL and sizes.
    pub fn validate(&self) -> Result<()> {
        let Some(service) = &self.service else {
            return Ok(());
        };
        let invalid = |why: &str| Err(Error::invalid("webhook config", why.to_string()));
        match reqwest::Url::parse(&service.url) {
            Ok(url) if matches!(url.scheme(), "http" | "https") => {}
            _ => return invalid("decision_logs.service.url must be an http(s) URL"),
        }
        if service.batch_size == 0 || service.max_queue == 0 || service.flush_interval_ms == 0 {
            return invalid(
                "decision_logs.service: batch_size, max_queue and flush_interval_ms must be above 0",
            );
        }
        Ok(())
    }
}

/// One decision log event (OPA's shape; `input` holds what the policy saw of the review, not the
/// object: the request's identity and each container's image, digest and scan).
#[derive(Debug, Clone, Serialize)]
pub struct DecisionEvent {
    /// A random UUID.
    pub decision_id: String,
    /// When the answer was made, RFC 3339 in UTC.
    pub timestamp: String,
    /// The decision's path: `helios/admission`.
    pub path: &'static str,
    /// The review and what was checked.
    pub input: EventInput,
    /// The answer.
    pub result: EventResult,
    /// The policy that decided (absent when no image reached the policy).
    pub policy: Option<PolicyRef>,
    /// Which webhook instance decided.
    pub labels: Labels,
    /// `timer_helios_review_ns`: the time to answer.
    pub metrics: EventMetrics,
}

/// The `input` of a decision event.
#[derive(Debug, Clone, Serialize)]
pub struct EventInput {
    /// The request reviewed.
    pub request: RequestSummary,
    /// Each checked container.
    pub images: Vec<CheckedImage>,
}

/// The `result` of a decision event.
#[derive(Debug, Clone, Serialize)]
pub struct EventResult {
    /// Whether the review was allowed.
    pub allowed: bool,
    /// The verdict (`allow`, `deny`, `warn`, `audit`, `skip`, `fail_open`, `fail_closed`).
    pub verdict: &'static str,
    /// The mode that applied.
    pub mode: &'static str,
    /// The kind of each failure (`scan`, `policy`, `deadline`, …).
    pub failures: Vec<&'static str>,
    /// Why nothing was checked, for a skipped review.
    pub reason: Option<String>,
}

/// The `labels` of a decision event.
#[derive(Debug, Clone, Serialize)]
pub struct Labels {
    /// `helios`.
    pub app: &'static str,
    /// The instance: `$HOSTNAME` (the Pod's name) or a random UUID.
    pub id: String,
    /// The Helios version.
    pub version: &'static str,
}

/// The `metrics` of a decision event.
#[derive(Debug, Clone, Serialize)]
pub struct EventMetrics {
    /// Nanoseconds to answer the review.
    pub timer_helios_review_ns: u64,
}

/// Sends decision events to their writer task; cheap to clone.
#[derive(Clone)]
pub struct DecisionLogger {
    queue: mpsc::Sender<DecisionEvent>,
    labels: Labels,
    metrics: Arc<Metrics>,
}

impl std::fmt::Debug for DecisionLogger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DecisionLogger")
            .field("instance", &self.labels.id)
            .finish_non_exhaustive()
    }
}

impl DecisionLogger {
    /// Starts the writer task (on the current tokio runtime). Returns `None` when `config` logs
    /// nowhere; the task ends, after sending what is queued, once every logger is dropped.
    pub fn start(
        config: &DecisionLogConfig,
        metrics: Arc<Metrics>,
    ) -> Result<Option<(Self, tokio::task::JoinHandle<()>)>> {
        config.validate()?;
        if !config.console && config.service.is_none() {
            return Ok(None);
        }
        let capacity = config
            .service
            .as_ref()
            .map_or_else(default_max_queue, |s| s.max_queue);
        let (queue, events) = mpsc::channel(capacity);
        let client = reqwest::Client::builder()
            .use_rustls_tls()
            .timeout(SERVICE_TIMEOUT)
            .build()
            .map_err(|e| Error::invalid("decision log client", e.to_string()))?;
        let writer = Writer {
            console: config.console,
            service: config.service.clone(),
            client,
            metrics: metrics.clone(),
        };
        let task = tokio::spawn(writer.run(events));
        let id = std::env::var("HOSTNAME")
            .ok()
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
        let labels = Labels {
            app: "helios",
            id,
            version: env!("CARGO_PKG_VERSION"),
        };
        Ok(Some((
            DecisionLogger {
                queue,
                labels,
                metrics,
            },
            task,
        )))
    }

    /// Queues the event of one answered review; never waits. A full queue drops it (counted).
    pub fn log(&self, outcome: &ReviewOutcome) {
        let event = DecisionEvent {
            decision_id: uuid::Uuid::new_v4().to_string(),
            timestamp: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true),
            path: "helios/admission",
            input: EventInput {
                request: outcome.request.clone(),
                images: outcome.checked.clone(),
            },
            result: EventResult {
                allowed: outcome.allowed(),
                verdict: outcome.verdict.as_str(),
                mode: outcome.mode.as_str(),
                failures: outcome.failures.iter().map(|f| f.as_str()).collect(),
                reason: outcome.reason.clone(),
            },
            policy: outcome.policy.clone(),
            labels: self.labels.clone(),
            metrics: EventMetrics {
                timer_helios_review_ns: u64::try_from(outcome.duration.as_nanos())
                    .unwrap_or(u64::MAX),
            },
        };
        if self.queue.try_send(event).is_err() {
            self.metrics.record_decision_logs("dropped", 1);
        }
    }
}

/// The writer task: console lines, and batches for the service.
struct Writer {
    console: bool,
    service: Option<ServiceConfig>,
    client: reqwest::Client,
    metrics: Arc<Metrics>,
}

impl Writer {
    async fn run(self, mut events: mpsc::Receiver<DecisionEvent>) {
        let mut stdout = tokio::io::stdout();
        let mut batch: Vec<serde_json::Value> = Vec::new();
        let (batch_size, interval) = self
            .service
            .as_ref()
            .map_or((1, 5000), |s| (s.batch_size, s.flush_interval_ms));
        let mut tick = tokio::time::interval(Duration::from_millis(interval));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut received = Vec::with_capacity(RECEIVE_AT_ONCE);
        let mut lines = Vec::new();
        loop {
            tokio::select! {
                n = events.recv_many(&mut received, RECEIVE_AT_ONCE) => {
                    if n == 0 {
                        break;
                    }
                    // Everything queued at once: one write (and one trip through tokio's
                    // blocking pool) for all their console lines, so the writer keeps up with
                    // the reviews and the queue stays short.
                    for event in received.drain(..) {
                        let Ok(value) = serde_json::to_value(&event) else { continue };
                        if self.console && serde_json::to_writer(&mut lines, &value).is_ok() {
                            lines.push(b'\n');
                        }
                        if self.service.is_some() {
                            batch.push(value);
                            if batch.len() >= batch_size {
                                self.flush(&mut batch).await;
                            }
                        }
                    }
                    if !lines.is_empty() {
                        let _ = stdout.write_all(&lines).await;
                        let _ = stdout.flush().await;
                        lines.clear();
                        // A burst's buffer is not kept for the next (lines are ~1 KiB each).
                        lines.shrink_to(LINES_KEPT);
                    }
                }
                _ = tick.tick() => self.flush(&mut batch).await,
            }
        }
        self.flush(&mut batch).await;
    }

    /// POSTs the batch (gzip JSON array) to `<url>/logs`; counts it `sent` or `failed`.
    async fn flush(&self, batch: &mut Vec<serde_json::Value>) {
        let Some(service) = &self.service else {
            return;
        };
        if batch.is_empty() {
            return;
        }
        let entries = std::mem::take(batch);
        let count = entries.len() as u64;
        let sent = match gzip_json(&entries) {
            Ok(body) => self
                .client
                .post(format!("{}/logs", service.url.trim_end_matches('/')))
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .header(reqwest::header::CONTENT_ENCODING, "gzip")
                .body(body)
                .send()
                .await
                .map_err(|e| crate::http::causes(&e))
                .and_then(|r| {
                    if r.status().is_success() {
                        Ok(())
                    } else {
                        Err(format!("HTTP {}", r.status().as_u16()))
                    }
                }),
            Err(e) => Err(e.to_string()),
        };
        match sent {
            Ok(()) => self.metrics.record_decision_logs("sent", count),
            Err(error) => {
                tracing::warn!(target: "helios::admission", %error, entries = count, "decision log batch not delivered");
                self.metrics.record_decision_logs("failed", count);
            }
        }
    }
}

fn gzip_json(entries: &[serde_json::Value]) -> std::io::Result<Vec<u8>> {
    use std::io::Write as _;
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    serde_json::to_writer(&mut gz, entries)?;
    gz.flush()?;
    gz.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::admission::config::WebhookConfig;

    #[test]
    fn the_yaml_section_reads_with_defaults_and_is_validated() -> Result<()> {
        let config = WebhookConfig::from_yaml(
            "decision_logs: {console: false, service: {url: http://c:8181}}\n",
        )?;
        assert_eq!(
            config.decision_logs,
            DecisionLogConfig {
                console: false,
                service: Some(ServiceConfig {
                    url: "http://c:8181".into(),
                    batch_size: 100,
                    flush_interval_ms: 5000,
                    max_queue: 10_000,
                }),
            }
        );
        config.validate()?;
        assert!(WebhookConfig::from_yaml("{}")?.decision_logs.console);
        for bad in [
            "decision_logs: {service: {url: 'not a url'}}",
            "decision_logs: {service: {url: 'ftp://c'}}",
            "decision_logs: {service: {url: 'http://c', max_queue: 0}}",
        ] {
            let read = WebhookConfig::from_yaml(bad).and_then(WebhookConfig::validate);
            assert!(read.is_err(), "{bad}");
        }
        assert!(WebhookConfig::from_yaml("decision_logs: {consol: true}").is_err());
        Ok(())
    }
}
