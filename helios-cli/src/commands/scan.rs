//! `helios scan`: the Lacework scan of one image, as `ScanReport` JSON; and the Lacework lookup
//! `helios gate` uses when no `--scan-file` is given.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use clap::Args;
use helios_core::Result;
use helios_core::image::ImageRef;
use helios_core::registry::resolve_with;
use helios_core::scan::lacework::ServiceFailure;
use helios_core::scan::shared::CacheConfig;
use helios_core::scan::{DEFAULT_WAIT_SECS, ScanOptions, ScanReport, ScanStatus};

use super::to_json;
use crate::registry_args::RegistryArgs;

/// How to reach Lacework and what to do when it has no scan (shared by `scan` and `gate`).
#[derive(Debug, Clone, Args)]
pub struct LaceworkArgs {
    /// Seconds to wait for an on-demand scan when Lacework has no record of the image (0:
    /// request it and answer `pending` at once). Lacework scans can take several minutes. An
    /// image scanned clean, failed or unsupported is a record: it is never scanned again.
    #[arg(long, value_name = "SECONDS", default_value_t = DEFAULT_WAIT_SECS)]
    wait: u64,

    /// Never request an on-demand scan: an image Lacework has no record of is `not_found`.
    #[arg(long)]
    no_scan: bool,

    /// The Lacework CLI profile of ~/.lacework.toml to use (default: `LW_PROFILE`, else
    /// `default`); `LW_ACCOUNT`, `LW_API_KEY`, `LW_API_SECRET`, `LW_SUBACCOUNT` override it.
    #[arg(long, value_name = "NAME")]
    profile: Option<String>,

    /// Share the lookup with every job using this Redis (`redis://…`, `rediss://…` for TLS):
    /// one Lacework lookup per digest and one request budget for the fleet (docs/scale-out.md).
    #[arg(long, value_name = "URL", env = "HELIOS_CACHE_REDIS")]
    cache_redis: Option<String>,
}

impl LaceworkArgs {
    /// The core's scan options for these flags and an optional scan file or directory.
    pub fn options(&self, scan_file: Option<PathBuf>, scan_dir: Option<PathBuf>) -> ScanOptions {
        ScanOptions {
            scan_file,
            scan_dir,
            wait: self.wait as f64,
            no_scan: self.no_scan,
            profile: self.profile.clone(),
            cache_redis: self.cache_redis.clone(),
        }
    }

    /// Runs `lookup` with a spinner on a terminal while Lacework takes long (`asking`: only
    /// when Lacework is asked).
    pub async fn with_spinner<T>(
        image: &ImageRef,
        asking: bool,
        lookup: impl std::future::Future<Output = Result<T>>,
    ) -> Result<T> {
        let spinner =
            asking.then(|| Spinner::start(&format!("asking Lacework about {}", image.reference)));
        let report = lookup.await;
        if let Some(spinner) = spinner {
            spinner.stop();
        }
        report
    }
}

/// Arguments of `helios scan`.
#[derive(Debug, Args)]
pub struct ScanArgs {
    /// The image reference; with a digest (`…@sha256:…`) the scan of exactly that image.
    #[arg(value_name = "IMAGE")]
    image: String,

    #[command(flatten)]
    lacework: LaceworkArgs,

    #[command(flatten)]
    registry: Box<RegistryArgs>,
}

/// Prints the report; exit 0 when one was obtained (whatever its status), 2 when Lacework could
/// not be asked (`unavailable`).
pub async fn run(args: ScanArgs) -> Result<u8> {
    let image = ImageRef::parse(&args.image)?;
    let image = resolve_with(args.registry.resolver()?.as_ref(), image).await?;
    // Service failures become `unavailable` reports (exit 2).
    let options = args.lacework.options(None, None);
    let lookup = options.lacework(ServiceFailure::Report)?;
    // With --cache-redis the lookup is shared with the fleet; without, it is `scan_image`.
    let cache = CacheConfig {
        redis: options.cache_redis,
        ..CacheConfig::default()
    };
    cache.validate()?;
    let report: ScanReport =
        LaceworkArgs::with_spinner(&image, true, cache.scan_image(&image, &lookup)).await?;
    println!("{}", to_json(&report));
    Ok(if report.status == ScanStatus::Unavailable {
        2
    } else {
        0
    })
}

/// A one-line spinner on standard error, only when it is a terminal (CI logs stay clean).
struct Spinner {
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Spinner {
    fn start(message: &str) -> Self {
        if !std::io::stderr().is_terminal() {
            return Spinner { task: None };
        }
        let message = message.to_string();
        let task = tokio::spawn(async move {
            let frames = ['⠋', '⠙', '⠹', '⠸', '⠼', '⠴', '⠦', '⠧', '⠇', '⠏'];
            let started = Instant::now();
            for i in 0usize.. {
                // Quick answers need no spinner.
                if started.elapsed() > Duration::from_millis(300) {
                    eprint!(
                        "\r{} {message} ({} s)",
                        frames[i % frames.len()],
                        started.elapsed().as_secs()
                    );
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        });
        Spinner { task: Some(task) }
    }

    fn stop(self) {
        if let Some(task) = self.task {
            task.abort();
            // Clear the spinner line.
            eprint!("\r\x1b[2K");
        }
    }
}
