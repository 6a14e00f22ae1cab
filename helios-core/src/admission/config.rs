//! The webhook's YAML configuration file (`helios webhook --config FILE`).
//!
//! ```yaml
//! listen: 0.0.0.0:8443
//! tls: {cert: /etc/helios/tls/tls.crt, key: /etc/helios/tls/tls.key}
//! server:
//!   shutdown_delay_ms: 5000                      # after SIGTERM: /readyz 503, serve on 5 s
//! policy: {paths: [/etc/helios/policy]}          # or {opa_url: https://opa:8181}
//! scans: {dir: /var/lib/helios/scans}            # or {lacework: true}: credentials from env
//!                                                # lacework_requests_per_hour: 480 (own budget)
//! admission:
//!   mode: enforce                                # enforce | warn | audit
//!   namespace_modes: {staging: warn}
//!   failure_policy: closed                       # closed | open
//!   excluded_namespaces: [kube-system, helios-system]
//!   deadline_ms: 2500
//! registry:                                      # tag -> digest resolution (see registry docs)
//!   resolve: true                                # resolve tag-only images before the lookup
//!   pin_digests: false                           # /mutate pins tags to digests (opt-in)
//!   docker_config: /etc/helios/registry          # mounted kubernetes.io/dockerconfigjson Secret
//!   platform: linux/amd64
//!   cache_ttl_secs: 30
//! cache:                                         # scale-out (docs/scale-out.md); off by default
//!   redis: redis://helios-redis:6379             # or rediss:// (TLS); shared cache and budget
//! decision_logs:                                 # one event per review (see decision_log)
//!   console: true                                # JSON lines on standard output
//!   service: {url: https://collector:8443}       # optional: gzip batches POSTed to <url>/logs
//! ```
//!
//! Every field has a default; unknown fields are errors, so a typo never silently changes
//! behaviour. The file describes the webhook only: a program reading it applies its own
//! settings to the [`WebhookConfig`] (the `helios` CLI's flags and environment variables replace
//! the file's values), then calls [`WebhookConfig::validate`]. The configuration builds the
//! parts (controller, scan source, evaluator, resolver); the HTTPS server takes them built.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::admission::decision_log::DecisionLogConfig;
use crate::admission::{AdmissionController, ControllerConfig};
use crate::error::{Error, Result};
use crate::policy::{EvaluatorOptions, PolicyEvaluator};
use crate::registry::{RegistryConfig, Resolver};
use crate::scan::lacework::{ClientBuilder, DEFAULT_REQUESTS_PER_HOUR, NoScan};
use crate::scan::{DirSource, ScanSource};

/// The whole webhook configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WebhookConfig {
    /// Listen address.
    pub listen: SocketAddr,
    /// Serving certificate.
    pub tls: TlsConfig,
    /// How the HTTPS server stops.
    pub server: ServerConfig,
    /// Which policy decides.
    pub policy: EvaluatorOptions,
    /// Where scans come from.
    pub scans: ScanConfig,
    /// How reviews are decided.
    pub admission: ControllerConfig,
    /// How tags are resolved to digests, and whether `/mutate` pins them.
    pub registry: RegistryConfig,
    /// The scan cache shared by the fleet's replicas on Redis (off by default); see
    /// docs/scale-out.md.
    pub cache: crate::scan::shared::CacheConfig,
    /// Decision logs: one event per review on standard output and/or to a collector.
    pub decision_logs: DecisionLogConfig,
    /// The background audit loop (off unless `interval` is set); see docs/admission.md.
    #[cfg(feature = "audit")]
    pub audit: crate::audit::background::AuditConfig,
}

impl Default for WebhookConfig {
    fn default() -> Self {
        WebhookConfig {
            listen: SocketAddr::from(([0, 0, 0, 0], 8443)),
            tls: TlsConfig::default(),
            server: ServerConfig::default(),
            policy: EvaluatorOptions::default(),
            scans: ScanConfig::default(),
            admission: ControllerConfig::default(),
            registry: RegistryConfig::default(),
            cache: Default::default(),
            decision_logs: DecisionLogConfig::default(),
            #[cfg(feature = "audit")]
            audit: Default::default(),
        }
    }
}

/// TLS files of the webhook (a `kubernetes.io/tls` Secret mounted as files).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM certificate chain.
    pub cert: PathBuf,
    /// PEM private key.
    pub key: PathBuf,
    /// How often to check the files for a rotated certificate, in milliseconds.
    pub reload_interval_ms: u64,
}

impl Default for TlsConfig {
    fn default() -> Self {
        TlsConfig {
            cert: "/etc/helios/tls/tls.crt".into(),
            key: "/etc/helios/tls/tls.key".into(),
            reload_interval_ms: 10_000,
        }
    }
}

/// How the HTTPS server stops (see [`crate::admission::server::serve`]).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    /// After SIGTERM, how long the webhook keeps accepting connections and answering reviews,
    /// with `/readyz` at 503, before it stops accepting and drains, in milliseconds (default 0:
    /// stop accepting at once). In Kubernetes the endpoint of a terminating Pod is removed
    /// asynchronously, so connections keep arriving for a moment; the manifests set 5000.
    pub shutdown_delay_ms: u64,
}

impl ServerConfig {
    /// [`ServerConfig::shutdown_delay_ms`] as a duration.
    pub fn shutdown_delay(&self) -> std::time::Duration {
        std::time::Duration::from_millis(self.shutdown_delay_ms)
    }
}

/// Where scans come from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ScanConfig {
    /// A directory of scan files (one per image digest or name).
    pub dir: Option<PathBuf>,
    /// Follow symbolic links in `dir` that point outside it (default: skipped).
    pub allow_outside_symlinks: bool,
    /// Use Lacework, with credentials from the environment (`LW_ACCOUNT`, `LW_API_KEY`,
    /// `LW_API_SECRET`, from the Secret in `deploy/`).
    pub lacework: bool,
    /// Helios's own request budget for Lacework: at most this many API requests per hour
    /// (default [`DEFAULT_REQUESTS_PER_HOUR`], Lacework's documented limit of 480 per account).
    /// With `cache.redis` it is the fleet-wide budget's limit too; the per-review and per-user
    /// shares of `admission.limits` are shares of it.
    pub lacework_requests_per_hour: u32,
}

impl Default for ScanConfig {
    fn default() -> Self {
        ScanConfig {
            dir: None,
            allow_outside_symlinks: false,
            lacework: false,
            lacework_requests_per_hour: DEFAULT_REQUESTS_PER_HOUR,
        }
    }
}

impl WebhookConfig {
    /// Reads a YAML configuration file.
    pub fn from_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        Self::from_yaml(&text).map_err(|e| match e {
            Error::InvalidInput { reason, .. } => {
                Error::invalid(format!("webhook config {}", path.display()), reason)
            }
            other => other,
        })
    }

    /// Parses YAML configuration text.
    pub fn from_yaml(text: &str) -> Result<Self> {
        let de = yaml_serde::Deserializer::from_str(text);
        let config: WebhookConfig = serde_path_to_error::deserialize(de)
            .map_err(|e| Error::invalid("webhook config", e))?;
        config.validate()
    }

    /// Checks what the types alone do not (run it again after changing a parsed configuration).
    pub fn validate(self) -> Result<Self> {
        #[cfg(feature = "audit")]
        self.audit.interval()?;
        if self.admission.deadline_ms == 0 {
            return Err(Error::invalid(
                "webhook config",
                "admission.deadline_ms must be above 0",
            ));
        }
        self.admission.limits.validate()?;
        self.cache.validate()?;
        self.policy.validate()?;
        self.decision_logs.validate()?;
        if self.policy.opa_url.is_some() && !self.policy.paths.is_empty() {
            return Err(Error::invalid(
                "webhook config",
                "policy: give either paths (embedded) or opa_url, not both",
            ));
        }
        if self.registry.pin_digests && !self.registry.resolve {
            return Err(Error::invalid(
                "webhook config",
                "registry: pin_digests needs resolve (a pin is the resolved digest)",
            ));
        }
        if self.scans.lacework_requests_per_hour == 0 {
            return Err(Error::invalid(
                "webhook config",
                "scans.lacework_requests_per_hour must be above 0",
            ));
        }
        if self.scans.dir.is_some() && self.scans.lacework {
            return Err(Error::invalid(
                "webhook config",
                "scans: give either dir or lacework, not both",
            ));
        }
        Ok(self)
    }

    /// Builds the configured scan source: a directory of scan files, or Lacework (credentials
    /// from the environment) behind a cache. At admission a missing Lacework scan is requested
    /// (answered `pending`), except for dry runs.
    pub fn scan_source(&self) -> Result<Arc<dyn ScanSource>> {
        if let Some(dir) = &self.scans.dir {
            return Ok(Arc::new(
                DirSource::open(dir.clone())?
                    .allow_outside_symlinks(self.scans.allow_outside_symlinks)?,
            ));
        }
        if self.scans.lacework {
            let client = ClientBuilder::from_env()?
                .request_budget(
                    self.scans.lacework_requests_per_hour,
                    std::time::Duration::from_secs(3600),
                )
                .build()?;
            return self.cache.scan_source(client, NoScan::RequestScan);
        }
        Err(Error::invalid(
            "webhook config",
            "scans: set dir (a directory of scan files) or lacework: true (or --scan-dir / --lacework)",
        ))
    }

    /// The tag resolver of this configuration (`None` when `registry.resolve` is off).
    pub fn resolver(&self) -> Result<Option<Resolver>> {
        Ok(if self.registry.resolve {
            Some(Resolver::new(self.registry.clone())?)
        } else {
            None
        })
    }

    /// Builds the admission controller this configuration describes.
    pub fn controller(&self) -> Result<AdmissionController> {
        let resolver = self.resolver()?;
        Ok(AdmissionController::new(
            self.scan_source()?,
            self.evaluator()?,
            self.admission.clone(),
        )
        .with_resolver(resolver)
        .with_pinning(self.registry.pin_digests))
    }

    /// Builds the configured policy evaluator ([`EvaluatorOptions::build`]).
    pub fn evaluator(&self) -> Result<Arc<dyn PolicyEvaluator>> {
        Ok(Arc::new(self.policy.build()?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::admission::{FailurePolicy, Mode};

    #[test]
    fn yaml_with_defaults_and_overrides() -> Result<()> {
        let cfg = WebhookConfig::from_yaml(
            "listen: 127.0.0.1:9443\nadmission:\n  mode: warn\n  namespace_modes: {prod: enforce}\n  failure_policy: open\n",
        )?;
        assert_eq!(cfg.listen.port(), 9443);
        assert_eq!(cfg.admission.mode, Mode::Warn);
        assert_eq!(cfg.admission.mode_of(Some("prod")), Mode::Enforce);
        assert_eq!(cfg.admission.failure_policy, FailurePolicy::Open);
        assert!(cfg.admission.excluded_namespaces.contains("kube-system"));
        assert_eq!(cfg.admission.deadline_ms, 2500);
        // The issue's name for the setting is accepted too.
        let cfg = WebhookConfig::from_yaml("admission:\n  skip_controlled_pods: false\n")?;
        assert!(!cfg.admission.skip_controlled_objects);
        Ok(())
    }

    #[test]
    fn review_limits_and_scan_dir_symlinks_are_configurable() -> Result<()> {
        let cfg = WebhookConfig::from_yaml(
            "scans:\n  allow_outside_symlinks: true\nadmission:\n  limits:\n    max_containers: 10\n    lacework_share_per_user: 0.5\n",
        )?;
        assert_eq!(cfg.admission.limits.max_containers, 10);
        assert_eq!(cfg.admission.limits.max_images, 32);
        assert!(cfg.scans.allow_outside_symlinks);
        let err = WebhookConfig::from_yaml("admission:\n  limits:\n    max_images: 0\n").err();
        assert!(err.is_some_and(|e| e.to_string().contains("max_images")));
        Ok(())
    }

    #[test]
    fn the_shutdown_delay_defaults_to_zero_and_is_read_in_milliseconds() -> Result<()> {
        assert_eq!(
            WebhookConfig::default().server.shutdown_delay(),
            std::time::Duration::ZERO
        );
        let cfg = WebhookConfig::from_yaml("server:\n  shutdown_delay_ms: 5000\n")?;
        assert_eq!(
            cfg.server.shutdown_delay(),
            std::time::Duration::from_secs(5)
        );
        let err = WebhookConfig::from_yaml("server:\n  shutdown_delay: 5s\n").err();
        assert!(err.is_some_and(|e| e.to_string().contains("shutdown_delay")));
        Ok(())
    }

    #[test]
    fn the_lacework_request_budget_is_configurable() -> Result<()> {
        let cfg = WebhookConfig::from_yaml("scans: {lacework: true}\n")?;
        assert_eq!(cfg.scans.lacework_requests_per_hour, 480);
        let cfg = WebhookConfig::from_yaml(
            "scans:\n  lacework: true\n  lacework_requests_per_hour: 100000\n",
        )?;
        assert_eq!(cfg.scans.lacework_requests_per_hour, 100_000);
        let err = WebhookConfig::from_yaml("scans:\n  lacework_requests_per_hour: 0\n").err();
        assert!(err.is_some_and(|e| e.to_string().contains("lacework_requests_per_hour")));
        Ok(())
    }

    #[test]
    fn typos_are_errors_naming_the_field() {
        let err = WebhookConfig::from_yaml("admission:\n  mdoe: warn\n").err();
        assert!(err.is_some_and(|e| e.to_string().contains("mdoe")));
        let err = WebhookConfig::from_yaml("admission:\n  mode: block\n").err();
        assert!(err.is_some_and(|e| e.to_string().contains("admission.mode")));
    }
}
