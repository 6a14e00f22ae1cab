//! `helios webhook` (the HTTPS admission webhook) and `helios review` (one AdmissionReview
//! through the same controller, offline), sharing their settings.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use helios_core::admission::config::WebhookConfig;
use helios_core::admission::server::{Metrics, ServerOptions, serve};
use helios_core::admission::{AdmissionReview, FailurePolicy, Mode};
use helios_core::{Error, Result};

/// How long in-flight reviews may take to finish once the webhook stops accepting (after SIGTERM
/// and the shutdown delay): with the manifests' 5 s delay, within the Pod's default termination
/// grace period of 30 s.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// Settings of the admission controller: a YAML file, overridden by flags and environment.
#[derive(Debug, Args)]
pub struct AdmissionArgs {
    /// YAML configuration file (see docs/admission.md).
    #[arg(long, env = "HELIOS_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Embedded policy: a .rego file, data file or directory (repeatable).
    #[arg(
        long = "policy",
        env = "HELIOS_POLICY",
        value_name = "PATH",
        value_delimiter = ','
    )]
    pub policy: Vec<PathBuf>,
    /// A JSON or YAML data document merged under `data` (repeatable), as for `helios gate`.
    #[arg(long = "data", short = 'd', value_name = "FILE")]
    pub data: Vec<PathBuf>,
    /// The package whose document is the decision (default `helios`).
    #[arg(long, value_name = "NAME")]
    pub package: Option<String>,
    /// Parse policies as Rego v0 (pre-1.0 syntax).
    #[arg(long)]
    pub rego_v0: bool,
    /// Execution time limit of one evaluation, in milliseconds (default 250).
    #[arg(long, value_name = "MS")]
    pub time_limit_ms: Option<u64>,
    /// Evaluate on this OPA server instead of in-process.
    #[arg(long, env = "HELIOS_OPA_URL", value_name = "URL")]
    pub opa_url: Option<String>,
    /// Read scans from this directory of scan files.
    #[arg(long, env = "HELIOS_SCAN_DIR", value_name = "DIR")]
    pub scan_dir: Option<PathBuf>,
    /// Read scans from Lacework (credentials from LW_ACCOUNT, LW_API_KEY, LW_API_SECRET).
    #[arg(long, env = "HELIOS_LACEWORK")]
    pub lacework: bool,
    /// Helios's own Lacework request budget: at most this many API requests per hour (default
    /// 480, Lacework's documented limit; with `cache.redis`, the fleet's limit).
    #[arg(long, env = "HELIOS_LACEWORK_REQUESTS_PER_HOUR", value_name = "N")]
    pub lacework_requests_per_hour: Option<u32>,
    /// Default mode: enforce, warn or audit.
    #[arg(long, env = "HELIOS_MODE", value_name = "MODE")]
    pub mode: Option<String>,
    /// What an image that cannot be checked means: closed (deny) or open (allow).
    #[arg(long, env = "HELIOS_FAILURE_POLICY", value_name = "POLICY")]
    pub failure_policy: Option<String>,
    /// Time for one review, in milliseconds.
    #[arg(long, env = "HELIOS_DEADLINE_MS", value_name = "MS")]
    pub deadline_ms: Option<u64>,
    /// Look tag-only images up as written instead of resolving them at their registry.
    #[arg(long, env = "HELIOS_NO_RESOLVE")]
    pub no_resolve: bool,
    /// Answer `/mutate` with JSONPatches pinning each checked tag to its resolved digest.
    #[arg(long, env = "HELIOS_PIN_DIGESTS")]
    pub pin_digests: bool,
}

/// `helios webhook` flags.
#[derive(Debug, Args)]
pub struct WebhookArgs {
    #[command(flatten)]
    pub admission: AdmissionArgs,
    /// Listen address.
    #[arg(long, env = "HELIOS_LISTEN", value_name = "ADDR")]
    pub listen: Option<SocketAddr>,
    /// PEM certificate chain (reloaded when the file changes).
    #[arg(long, env = "HELIOS_TLS_CERT", value_name = "FILE")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key.
    #[arg(long, env = "HELIOS_TLS_KEY", value_name = "FILE")]
    pub tls_key: Option<PathBuf>,
    /// After SIGTERM, keep accepting and answering (with /readyz at 503) this long before
    /// draining, e.g. 5s or 500ms (default 0, or the file's server.shutdown_delay_ms). A second
    /// SIGTERM or Ctrl-C skips the rest.
    #[arg(long, env = "HELIOS_SHUTDOWN_DELAY", value_name = "DURATION", value_parser = parse_delay)]
    pub shutdown_delay: Option<Duration>,
}

/// A delay with its unit: `500ms`, `5s`, or `0`.
fn parse_delay(text: &str) -> std::result::Result<Duration, String> {
    let text = text.trim();
    let (number, unit) = text.split_at(
        text.find(|c: char| !c.is_ascii_digit())
            .unwrap_or(text.len()),
    );
    let n: u64 = number
        .parse()
        .map_err(|_| format!("{text:?}: expected e.g. 5s or 500ms"))?;
    match unit {
        "ms" => Ok(Duration::from_millis(n)),
        "s" => Ok(Duration::from_secs(n)),
        "" if n == 0 => Ok(Duration::ZERO),
        _ => Err(format!("{text:?}: give the unit, s or ms (e.g. 5s)")),
    }
}

/// `helios review` flags.
#[derive(Debug, Args)]
pub struct ReviewArgs {
    /// An AdmissionReview request (JSON), or `-` for standard input.
    pub file: PathBuf,
    #[command(flatten)]
    pub admission: AdmissionArgs,
}

impl AdmissionArgs {
    /// The configuration file (or the defaults), with these flags applied, validated.
    pub(crate) fn config(&self) -> Result<WebhookConfig> {
        let mut config = self.base()?;
        self.apply(&mut config)?;
        config.validate()
    }

    fn base(&self) -> Result<WebhookConfig> {
        match &self.config {
            Some(path) => WebhookConfig::from_file(path),
            None => Ok(WebhookConfig::default()),
        }
    }

    /// Replaces the file's values with those given as flags or in the environment.
    fn apply(&self, config: &mut WebhookConfig) -> Result<()> {
        if !self.policy.is_empty() {
            config.policy.paths = self.policy.clone();
            config.policy.opa_url = None;
        }
        if let Some(url) = &self.opa_url {
            config.policy.opa_url = Some(url.clone());
            config.policy.paths.clear();
        }
        // Data joins whichever paths were chosen (the file's or `--policy`), as it does for
        // `helios gate --policy … --data …`; with `opa_url` it is refused by `validate`.
        config.policy.paths.extend(self.data.iter().cloned());
        if let Some(package) = &self.package {
            config.policy.package = package.clone();
        }
        if self.rego_v0 {
            config.policy.rego_v0 = true;
        }
        if let Some(ms) = self.time_limit_ms {
            config.policy.time_limit_ms = ms;
        }
        if let Some(dir) = &self.scan_dir {
            config.scans.dir = Some(dir.clone());
            config.scans.lacework = false;
        }
        if self.lacework {
            config.scans.lacework = true;
            config.scans.dir = None;
        }
        if let Some(n) = self.lacework_requests_per_hour {
            config.scans.lacework_requests_per_hour = n;
        }
        if let Some(mode) = &self.mode {
            config.admission.mode = mode.parse::<Mode>()?;
        }
        if let Some(fp) = &self.failure_policy {
            config.admission.failure_policy = fp.parse::<FailurePolicy>()?;
        }
        if let Some(ms) = self.deadline_ms {
            config.admission.deadline_ms = ms;
        }
        if self.no_resolve {
            config.registry.resolve = false;
        }
        if self.pin_digests {
            config.registry.pin_digests = true;
        }
        Ok(())
    }
}

impl WebhookArgs {
    /// The webhook's configuration: the file, the admission flags, then the listener's.
    fn config(&self) -> Result<WebhookConfig> {
        let mut config = self.admission.base()?;
        self.admission.apply(&mut config)?;
        if let Some(listen) = self.listen {
            config.listen = listen;
        }
        if let Some(cert) = &self.tls_cert {
            config.tls.cert = cert.clone();
        }
        if let Some(key) = &self.tls_key {
            config.tls.key = key.clone();
        }
        if let Some(delay) = self.shutdown_delay {
            config.server.shutdown_delay_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX);
        }
        config.validate()
    }
}

/// Logs as one JSON object per line on standard error (`RUST_LOG` filters, default `info`).
fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .json()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

/// Runs the webhook until SIGTERM / Ctrl-C: not ready at once, serving on for the shutdown delay
/// (a second signal skips the rest), then drains in-flight reviews (up to [`SHUTDOWN_GRACE`]).
pub async fn run_webhook(args: WebhookArgs) -> Result<u8> {
    init_logging();
    let config = args.config()?;
    let controller = config.controller()?;
    let metrics = Arc::new(Metrics::new());
    let _audit = helios_core::audit::background::start(&config, &controller, &metrics).await?;
    let listener = std::net::TcpListener::bind(config.listen).map_err(|e| {
        Error::unavailable(
            format!("webhook listener on {}", config.listen),
            e.to_string(),
        )
        .with_source(e)
    })?;
    let options = ServerOptions {
        tls_cert: config.tls.cert.clone(),
        tls_key: config.tls.key.clone(),
        reload_interval: Duration::from_millis(config.tls.reload_interval_ms),
        shutdown_delay: config.server.shutdown_delay(),
        grace: SHUTDOWN_GRACE,
        limits: Default::default(),
        decision_logs: Some(config.decision_logs.clone()),
    };
    let task = serve(listener, controller, options, metrics, stop_signals()).await?;
    match task.await {
        Ok(result) => result?,
        Err(e) => {
            return Err(Error::unavailable("webhook server", e.to_string()).with_source(e));
        }
    }
    Ok(0)
}

/// One item per SIGTERM (what Kubernetes sends a terminating Pod) or Ctrl-C.
fn stop_signals() -> impl futures_util::Stream<Item = ()> + Send + 'static {
    futures_util::stream::unfold(Signals::new(), |mut signals| async move {
        signals.next().await;
        Some(((), signals))
    })
}

/// SIGTERM and Ctrl-C.
struct Signals {
    #[cfg(unix)]
    term: Option<tokio::signal::unix::Signal>,
}

impl Signals {
    fn new() -> Self {
        Signals {
            #[cfg(unix)]
            term: tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok(),
        }
    }

    /// Completes at the next signal.
    async fn next(&mut self) {
        #[cfg(unix)]
        if let Some(term) = &mut self.term {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
            return;
        }
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Reviews one AdmissionReview and prints the response review. Exit 0 whenever a response was
/// produced (allowed or not); an invalid review is an error (exit 2).
pub async fn run_review(args: ReviewArgs) -> Result<u8> {
    init_logging();
    let config = args.admission.config()?;
    let text = super::read_input(&args.file)?;
    let review = AdmissionReview::from_slice(text.as_bytes())?;
    let controller = config.controller()?;
    let (response, _outcome) = controller.review(review).await?;
    println!("{}", super::to_json(&response));
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shutdown_delays_take_a_unit_but_zero() {
        assert_eq!(parse_delay("5s"), Ok(Duration::from_secs(5)));
        assert_eq!(parse_delay("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_delay("0"), Ok(Duration::ZERO));
        assert!(parse_delay("5").is_err_and(|e| e.contains("unit")));
        assert!(parse_delay("5m").is_err());
        assert!(parse_delay("-1s").is_err());
    }
}
