//! The audit loop inside the webhook process (`audit: {interval: 1h}` in the webhook
//! configuration): the same audit as `helios audit`, every interval, sharing the webhook's scan
//! cache, its policy and its `/metrics` endpoint (the `helios_audit_*` gauges).

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::audit::{AuditMetrics, Auditor, Lister, policy_report};
use crate::error::{Error, Result};

/// Shortest interval accepted: an audit lists the whole cluster and looks up every image, so a
/// tighter loop would only load the API server and spend the Lacework budget.
pub const MIN_INTERVAL: Duration = Duration::from_secs(60);

/// When to write PolicyReports.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PolicyReports {
    /// When the `wgpolicyk8s.io` PolicyReport CRD is installed (checked on every audit).
    #[default]
    Auto,
    /// Always: an audit fails when the CRD is missing.
    Always,
    /// Never.
    Never,
}

/// The `audit:` section of the webhook configuration. Without `interval` there is no loop.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuditConfig {
    /// Time between audits: `90s`, `10m`, `1h`, or seconds as a number; at least a minute.
    /// `null` (the default) runs no audit in the webhook.
    pub interval: Option<IntervalText>,
    /// Scan lookups and policy evaluations in flight at once.
    pub concurrency: usize,
    /// Objects per list page.
    pub page_size: u32,
    /// When to write PolicyReports.
    pub policy_reports: PolicyReports,
}

impl Default for AuditConfig {
    fn default() -> Self {
        AuditConfig {
            interval: None,
            concurrency: crate::audit::DEFAULT_CONCURRENCY,
            page_size: crate::audit::lister::DEFAULT_PAGE_SIZE,
            policy_reports: PolicyReports::Auto,
        }
    }
}

/// An interval as written in the configuration (`10m`, or a number of seconds).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum IntervalText {
    /// Seconds.
    Seconds(u64),
    /// A number with a unit `s`, `m` or `h`.
    Text(String),
}

impl AuditConfig {
    /// The interval, validated; `None` when no loop is configured.
    pub fn interval(&self) -> Result<Option<Duration>> {
        let Some(text) = &self.interval else {
            return Ok(None);
        };
        let invalid =
            |reason: String| Error::invalid("webhook config", format!("audit.interval: {reason}"));
        let seconds = match text {
            IntervalText::Seconds(s) => *s,
            IntervalText::Text(t) => {
                let t = t.trim();
                let (number, unit) =
                    t.split_at(t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len()));
                let n: u64 = number
                    .parse()
                    .map_err(|_| invalid(format!("{t:?}: expected e.g. 90s, 10m, 1h")))?;
                let scale = match unit {
                    "" | "s" => 1,
                    "m" => 60,
                    "h" => 3600,
                    _ => return Err(invalid(format!("{t:?}: the unit must be s, m or h"))),
                };
                n.saturating_mul(scale)
            }
        };
        let interval = Duration::from_secs(seconds);
        if interval < MIN_INTERVAL {
            return Err(invalid(format!(
                "{} s is below the minimum of {} s",
                seconds,
                MIN_INTERVAL.as_secs()
            )));
        }
        Ok(Some(interval))
    }
}

/// Runs one audit: list, judge, record the gauges, write PolicyReports as configured.
pub async fn run_once(
    auditor: &Auditor,
    lister: &Lister,
    reports: PolicyReports,
    metrics: &AuditMetrics,
) -> Result<crate::audit::AuditReport> {
    let objects = lister.list(&auditor.config().excluded_namespaces).await?;
    let report = auditor.audit(&objects).await;
    metrics.record(&report);
    let write = match reports {
        PolicyReports::Never => false,
        PolicyReports::Always => true,
        PolicyReports::Auto => policy_report::is_installed(lister.client()).await?,
    };
    if write {
        let synced = policy_report::sync(lister.client(), &report).await?;
        tracing::info!(
            target: "helios::audit",
            created = synced.created.len(),
            updated = synced.updated.len(),
            pruned = synced.pruned.len(),
            "policyreports"
        );
    }
    Ok(report)
}

/// Starts the loop: the first audit right away, then one every `interval` (a run that takes
/// longer delays the next rather than overlapping it). A failed audit is logged and retried at
/// the next tick; the webhook keeps serving either way.
pub fn spawn(
    auditor: Auditor,
    lister: Lister,
    interval: Duration,
    reports: PolicyReports,
    metrics: Arc<AuditMetrics>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            if let Err(e) = run_once(&auditor, &lister, reports, &metrics).await {
                tracing::warn!(target: "helios::audit", code = e.code(), error = %e, "audit failed");
            }
        }
    })
}

/// Starts the loop the webhook configuration asks for (none without `audit.interval`), with the
/// webhook's own scan source (one cache for admission and audit) and policy, listing through
/// the pod's service account (or `KUBECONFIG`). Fails when the interval or the Kubernetes
/// client configuration is wrong, so a misconfigured webhook does not start.
#[cfg(feature = "webhook")]
pub async fn start(
    config: &crate::admission::config::WebhookConfig,
    controller: &crate::admission::AdmissionController,
    metrics: &crate::admission::server::Metrics,
) -> Result<Option<tokio::task::JoinHandle<()>>> {
    let Some(interval) = config.audit.interval()? else {
        return Ok(None);
    };
    let lister = Lister::infer().await?.page_size(config.audit.page_size);
    let auditor = Auditor::new(
        controller.scan_source(),
        controller.evaluator(),
        config.admission.clone(),
    )
    .with_resolver(controller.resolver().cloned())
    .concurrency(config.audit.concurrency);
    tracing::info!(target: "helios::audit", interval_s = interval.as_secs(), "audit loop started");
    Ok(Some(spawn(
        auditor,
        lister,
        interval,
        config.audit.policy_reports,
        Arc::clone(metrics.audit()),
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn interval(text: &str) -> Result<Option<Duration>> {
        let config: AuditConfig =
            serde_json::from_str(text).map_err(|e| Error::invalid("test", e))?;
        config.interval()
    }

    #[test]
    fn intervals_parse_with_units_and_refuse_tight_loops() -> Result<()> {
        assert_eq!(interval(r#"{}"#)?, None);
        assert_eq!(
            interval(r#"{"interval": "10m"}"#)?,
            Some(Duration::from_secs(600))
        );
        assert_eq!(
            interval(r#"{"interval": "1h"}"#)?,
            Some(Duration::from_secs(3600))
        );
        assert_eq!(
            interval(r#"{"interval": 90}"#)?,
            Some(Duration::from_secs(90))
        );
        for bad in [r#""5s""#, r#""10 parsecs""#, r#""m""#, "3"] {
            let err = interval(&format!(r#"{{"interval": {bad}}}"#));
            assert!(
                matches!(&err, Err(Error::InvalidInput { reason, .. }) if reason.contains("audit.interval")),
                "{bad}: {err:?}"
            );
        }
        Ok(())
    }

    #[cfg(feature = "webhook")]
    #[test]
    fn the_webhook_configuration_has_an_audit_section() -> Result<()> {
        use crate::admission::config::WebhookConfig;
        let config = WebhookConfig::from_yaml(
            "audit:\n  interval: 2h\n  concurrency: 4\n  policy_reports: never\n",
        )?;
        assert_eq!(config.audit.interval()?, Some(Duration::from_secs(7200)));
        assert_eq!(config.audit.policy_reports, PolicyReports::Never);
        assert_eq!(WebhookConfig::default().audit.interval()?, None);
        assert!(WebhookConfig::from_yaml("audit:\n  interval: 1s\n").is_err());
        assert!(WebhookConfig::from_yaml("audit:\n  intervall: 1h\n").is_err());
        Ok(())
    }
}
