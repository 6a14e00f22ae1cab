//! `helios audit`: judge every workload already in the cluster against today's scans.

use std::path::PathBuf;

use clap::{Args, ValueEnum};
use helios_core::audit::{AuditMetrics, Auditor, Lister, policy_report};
use helios_core::{Error, Result};

use super::webhook::AdmissionArgs;

/// Output format on standard output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Markdown (also readable as text).
    Markdown,
    /// The JSON report.
    Json,
    /// Nothing (reports go to `--report` files only).
    None,
}

/// When to write PolicyReports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PolicyReports {
    /// When the `wgpolicyk8s.io` PolicyReport CRD is installed.
    Auto,
    /// Always (an error when the CRD is missing).
    Always,
    /// Never.
    Never,
}

/// `helios audit` flags.
#[derive(Debug, Args)]
pub struct AuditArgs {
    #[command(flatten)]
    pub admission: AdmissionArgs,
    /// kubeconfig file (default: KUBECONFIG, ~/.kube/config, else the in-cluster service
    /// account).
    #[arg(long, value_name = "FILE")]
    pub kubeconfig: Option<PathBuf>,
    /// kubeconfig context (with --kubeconfig).
    #[arg(long, value_name = "NAME", requires = "kubeconfig")]
    pub context: Option<String>,
    /// What to print on standard output.
    #[arg(long, value_enum, default_value_t = Format::Markdown)]
    pub format: Format,
    /// Write the report to FILE too, format by extension (`.json`, `.md`); repeatable.
    #[arg(long = "report", value_name = "FILE")]
    pub reports: Vec<PathBuf>,
    /// Write the `helios_audit_*` gauges to FILE (OpenMetrics text, e.g. for a node exporter's
    /// textfile collector).
    #[arg(long, value_name = "FILE")]
    pub metrics: Option<PathBuf>,
    /// Create, update and prune one PolicyReport per namespace.
    #[arg(long, value_enum, default_value_t = PolicyReports::Auto)]
    pub policy_reports: PolicyReports,
    /// Scan lookups and policy evaluations in flight at once.
    #[arg(long, value_name = "N", default_value_t = helios_core::audit::DEFAULT_CONCURRENCY)]
    pub concurrency: usize,
    /// Exit 0 whenever the audit ran, findings or not (for a CronJob, where findings go to the
    /// reports and gauges rather than to the Job's status).
    #[arg(long)]
    pub exit_zero: bool,
    /// Objects per list page.
    #[arg(long, value_name = "N", default_value_t = helios_core::audit::lister::DEFAULT_PAGE_SIZE)]
    pub page_size: u32,
}

/// Runs one audit. Exit 0 when no workload would be denied, 1 when some would (verdict `deny`
/// or `fail_closed`; 0 with `--exit-zero`), 2 on errors.
pub async fn run(args: AuditArgs) -> Result<u8> {
    let config = args.admission.config()?;
    let lister = match &args.kubeconfig {
        Some(path) => Lister::from_kubeconfig(path, args.context.as_deref()).await?,
        None => Lister::infer().await?,
    }
    .page_size(args.page_size);
    let auditor = Auditor::new(
        config.scan_source()?,
        config.evaluator()?,
        config.admission.clone(),
    )
    .with_resolver(config.resolver()?)
    .concurrency(args.concurrency);
    let objects = lister.list(&auditor.config().excluded_namespaces).await?;
    let report = auditor.audit(&objects).await;

    let write_reports = match args.policy_reports {
        PolicyReports::Never => false,
        PolicyReports::Always => {
            if !policy_report::is_installed(lister.client()).await? {
                return Err(Error::InvalidInput {
                    what: "--policy-reports always".into(),
                    reason: "the PolicyReport CRD (policyreports.wgpolicyk8s.io, v1alpha2) is not installed in the cluster".into(),
                });
            }
            true
        }
        PolicyReports::Auto => policy_report::is_installed(lister.client()).await?,
    };
    if write_reports {
        let outcome = policy_report::sync(lister.client(), &report).await?;
        eprintln!(
            "helios: policyreports: {} created, {} updated, {} pruned",
            outcome.created.len(),
            outcome.updated.len(),
            outcome.pruned.len()
        );
    }

    for path in &args.reports {
        let text = match path.extension().and_then(|e| e.to_str()) {
            Some("json") => report.to_json(),
            Some("md" | "markdown") => report.to_markdown(),
            _ => {
                return Err(Error::InvalidInput {
                    what: format!("report file {}", path.display()),
                    reason: "the extension must be .json or .md".into(),
                });
            }
        };
        write(path, &text)?;
    }
    if let Some(path) = &args.metrics {
        let metrics = AuditMetrics::new();
        metrics.record(&report);
        write(path, &metrics.encode())?;
    }
    match args.format {
        Format::Markdown => print!("{}", report.to_markdown()),
        Format::Json => println!("{}", report.to_json()),
        Format::None => {}
    }
    let denied = report
        .findings
        .iter()
        .any(|w| matches!(w.verdict.as_str(), "deny" | "fail_closed"));
    Ok(u8::from(denied && !args.exit_zero))
}

fn write(path: &std::path::Path, text: &str) -> Result<()> {
    std::fs::write(path, text).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })
}
