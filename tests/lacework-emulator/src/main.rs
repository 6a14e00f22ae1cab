//! `helios-lacework-emulator`: the Lacework API v2 emulator on a loopback port, for the Python
//! and Node suites. Prints one JSON line, `{"port": N, "url": "http://127.0.0.1:N", "key_id":
//! ..., "secret": ...}`, then serves until killed (or until stdin closes with `--stdin-lifetime`).

use std::net::SocketAddr;
use std::time::Duration;

use clap::Parser;
use helios_lacework_emulator::EmulatorBuilder;

/// Command-line options.
#[derive(Parser, Debug)]
#[command(version, about = "Lacework API v2 emulator for Helios tests")]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    host: std::net::IpAddr,
    /// Port (0 picks a free one; the chosen port is printed).
    #[arg(long, default_value_t = 0)]
    port: u16,
    /// Accepted API key id.
    #[arg(long, default_value = helios_lacework_emulator::DEFAULT_KEY_ID)]
    key_id: String,
    /// Accepted API secret.
    #[arg(long, default_value = helios_lacework_emulator::DEFAULT_SECRET)]
    secret: String,
    /// Rows per search page.
    #[arg(long, default_value_t = 5000)]
    page_size: usize,
    /// Duration of on-demand scans, in milliseconds.
    #[arg(long, default_value_t = 200)]
    scan_duration_ms: u64,
    /// Cap on token lifetimes, in seconds.
    #[arg(long)]
    token_ttl_cap_secs: Option<f64>,
    /// Requests per hour before HTTP 429.
    #[arg(long, default_value_t = 480)]
    rate_limit: u32,
    /// Extra directories of search responses to serve.
    #[arg(long = "data-dir")]
    data_dirs: Vec<std::path::PathBuf>,
    /// Do not serve the project (and shared) fixtures.
    #[arg(long)]
    no_default_data: bool,
    /// Exit when standard input closes (so a test runner's child never outlives it).
    #[arg(long)]
    stdin_lifetime: bool,
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let args = Args::parse();
    let mut builder = EmulatorBuilder::new()
        .credentials(&args.key_id, &args.secret)
        .page_size(args.page_size)
        .scan_duration(Duration::from_millis(args.scan_duration_ms))
        .rate_limit(args.rate_limit);
    if let Some(cap) = args.token_ttl_cap_secs {
        builder = builder.token_ttl_cap(Duration::from_secs_f64(cap.max(0.0)));
    }
    if args.no_default_data {
        builder = builder.without_default_data();
    }
    for dir in args.data_dirs {
        builder = builder.data_dir(dir);
    }
    let emulator = builder
        .start_on(SocketAddr::new(args.host, args.port))
        .await?;
    println!(
        "{}",
        serde_json::json!({
            "port": emulator.addr().port(),
            "url": emulator.url(),
            "key_id": args.key_id,
            "secret": args.secret,
        })
    );
    use std::io::Write;
    std::io::stdout().flush()?;

    if args.stdin_lifetime {
        let mut sink = tokio::io::sink();
        let _ = tokio::io::copy(&mut tokio::io::stdin(), &mut sink).await;
    } else {
        let _ = tokio::signal::ctrl_c().await;
    }
    drop(emulator);
    Ok(())
}
