//! `helios webhook` (the HTTPS admission webhook) and `helios review` (one AdmissionReview
//! through the same controller, offline), sharing their settings.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Args;
use helios_core::Result;
use helios_core::admission::config::{Overrides, WebhookConfig};
use helios_core::admission::{AdmissionReview, FailurePolicy, Mode};

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
    pub(crate) fn config(&self, mut overrides: Overrides) -> Result<WebhookConfig> {
        let base = match &self.config {
            Some(path) => WebhookConfig::from_file(path)?,
            None => WebhookConfig::default(),
        };
        overrides.policy = self.policy.clone();
        overrides.opa_url = self.opa_url.clone();
        overrides.data = self.data.clone();
        overrides.package = self.package.clone();
        overrides.rego_v0 = self.rego_v0;
        overrides.time_limit_ms = self.time_limit_ms;
        overrides.scan_dir = self.scan_dir.clone();
        overrides.lacework = self.lacework;
        overrides.mode = self.mode.as_deref().map(str::parse::<Mode>).transpose()?;
        overrides.failure_policy = self
            .failure_policy
            .as_deref()
            .map(str::parse::<FailurePolicy>)
            .transpose()?;
        overrides.deadline_ms = self.deadline_ms;
        overrides.no_resolve = self.no_resolve;
        overrides.pin_digests = self.pin_digests;
        base.with_overrides(overrides)
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

/// Runs the webhook until SIGTERM / Ctrl-C.
pub async fn run_webhook(args: WebhookArgs) -> Result<u8> {
    init_logging();
    let config = args.admission.config(Overrides {
        listen: args.listen,
        tls_cert: args.tls_cert,
        tls_key: args.tls_key,
        ..Default::default()
    })?;
    helios_core::admission::server::run(&config).await?;
    Ok(0)
}

/// Reviews one AdmissionReview and prints the response review. Exit 0 whenever a response was
/// produced (allowed or not); an invalid review is an error (exit 2).
pub async fn run_review(args: ReviewArgs) -> Result<u8> {
    init_logging();
    let config = args.admission.config(Overrides::default())?;
    let text = super::read_input(&args.file)?;
    let review = AdmissionReview::from_slice(text.as_bytes())?;
    let controller = config.controller()?;
    let (response, _outcome) = controller.review(review).await?;
    println!("{}", super::to_json(&response));
    Ok(0)
}
