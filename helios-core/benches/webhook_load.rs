//! A short local load run of the HTTPS admission webhook (not a timed test):
//!
//! ```text
//! cargo bench -p helios-core --features webhook --bench webhook_load [-- SECONDS CONCURRENCY]
//! ```
//!
//! Starts the webhook in-process on loopback TLS with the shipped default policy and the
//! directory scan source (`tests/fixtures/admission-scans`) behind the scan cache, then posts
//! reviews from CONCURRENCY clients for SECONDS (default 10 s, 8 clients) and prints latency
//! percentiles as seen by the client, per review shape.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use helios_core::admission::server::{Metrics, ServerOptions, serve};
use helios_core::admission::{AdmissionController, ControllerConfig};
use helios_core::policy::EmbeddedEvaluator;
use helios_core::scan::{CachedSource, DirSource};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    // `cargo bench` passes `--bench`; keep only numbers.
    let nums: Vec<u64> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let seconds = nums.first().copied().unwrap_or(10);
    let concurrency = nums.get(1).copied().unwrap_or(8) as usize;

    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let dir = tempfile::tempdir()?;
    let key = rcgen::generate_simple_self_signed(vec!["localhost".to_string()])?;
    std::fs::write(dir.path().join("tls.crt"), key.cert.pem())?;
    std::fs::write(dir.path().join("tls.key"), key.signing_key.serialize_pem())?;

    let controller = AdmissionController::new(
        Arc::new(CachedSource::new(DirSource::open(
            root.join("tests/fixtures/admission-scans"),
        )?)),
        Arc::new(EmbeddedEvaluator::default_policy()?),
        ControllerConfig::default(),
    );
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let _task = serve(
        listener,
        controller,
        ServerOptions {
            tls_cert: dir.path().join("tls.crt"),
            tls_key: dir.path().join("tls.key"),
            reload_interval: Duration::from_secs(10),
            shutdown_delay: Duration::ZERO,
            grace: Duration::from_secs(1),
            limits: Default::default(),
            decision_logs: None,
        },
        Arc::new(Metrics::new()),
        futures_util::stream::once(async {
            let _ = stopped.await;
        }),
    )
    .await?;
    let url = format!("https://localhost:{}/validate", addr.port());

    let shapes = [
        (
            "deny: 1 image, critical (cached scan)",
            "deployment-digest-critical.json",
        ),
        (
            "allow: 1 image, clean (cached scan)",
            "deployment-digest-clean.json",
        ),
        ("deny: 3 images, 1 unscanned tag", "pod-create.json"),
    ];
    println!(
        "webhook load: {seconds} s per shape, {concurrency} concurrent clients, loopback TLS (keep-alive), {} cores",
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    );
    println!("| review | requests | req/s | p50 | p90 | p99 | max |");
    println!("|---|---|---|---|---|---|---|");
    for (label, file) in shapes {
        let body = Arc::new(std::fs::read(
            root.join("tests/fixtures/admission").join(file),
        )?);
        let client = reqwest::Client::builder()
            .use_rustls_tls()
            .add_root_certificate(reqwest::Certificate::from_pem(key.cert.pem().as_bytes())?)
            .resolve("localhost", addr)
            .build()?;
        // Warm up: connections, the scan cache, the policy engine.
        for _ in 0..20 {
            client
                .post(&url)
                .body(body.to_vec())
                .send()
                .await?
                .bytes()
                .await?;
        }
        let stop = Instant::now() + Duration::from_secs(seconds);
        let started = Instant::now();
        let mut tasks = Vec::new();
        for _ in 0..concurrency {
            let (client, url, body) = (client.clone(), url.clone(), body.clone());
            tasks.push(tokio::spawn(async move {
                let mut lat = Vec::new();
                while Instant::now() < stop {
                    let t = Instant::now();
                    let resp = client.post(&url).body(body.to_vec()).send().await?;
                    if resp.status() != 200 {
                        return Err::<_, BoxError>(format!("status {}", resp.status()).into());
                    }
                    resp.bytes().await?;
                    lat.push(t.elapsed());
                }
                Ok(lat)
            }));
        }
        let mut all = Vec::new();
        for t in tasks {
            all.extend(t.await??);
        }
        let elapsed = started.elapsed();
        all.sort();
        println!(
            "| {label} | {} | {:.0} | {} | {} | {} | {} |",
            all.len(),
            all.len() as f64 / elapsed.as_secs_f64(),
            ms(percentile(&all, 0.50)),
            ms(percentile(&all, 0.90)),
            ms(percentile(&all, 0.99)),
            ms(all.last().copied().unwrap_or_default()),
        );
    }
    let _ = stop.send(());
    Ok(())
}
